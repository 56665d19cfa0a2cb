/*
 * fma_rate.c - how many 512-bit multiply-adds this CPU starts a cycle, and
 * how long one takes: the two numbers that say whether a kernel's vector
 * loop is bound by its multiplies (docs/performance.md, round fourteen).
 *
 *   build/bench/fma_rate
 *
 * Times 12 independent chains of vfmadd231ps on zmm registers (enough to
 * cover the latency of two pipes), one dependent chain, and 4 vpermd
 * beside 8 FMAs (the tables' shuffles against the multiplies); prints
 * nanoseconds per instruction, and the rate over the dependent chain's,
 * which is FMAs started per cycle times the latency in cycles (4 on the
 * Intel and AMD cores with AVX-512: a ratio near 8 is two pipes, near 4
 * one). Without AVX-512 it says so and exits 0.
 */
#include <stdio.h>
#include <time.h>

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define F(r) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #r "\n\t"
#define P(r) "vpermd %%zmm30, %%zmm31, %%zmm" #r "\n\t"
#define CLOB "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", \
             "xmm7", "xmm8", "xmm9", "xmm10", "xmm11"

int main(void)
{
  if (!__builtin_cpu_supports("avx512f")) {
    printf("fma_rate: no AVX-512 on this CPU\n");
    return 0;
  }
  const long n = 50000000;
  double best[3] = {1e9, 1e9, 1e9};
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now();
    for (long i = 0; i < n; i++)
      __asm__ volatile(F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9)
                       F(10) F(11) ::: CLOB);
    double t1 = now();
    for (long i = 0; i < n; i++)
      __asm__ volatile(F(0) F(0) F(0) F(0) F(0) F(0) F(0) F(0) F(0) F(0)
                       F(0) F(0) ::: CLOB);
    double t2 = now();
    for (long i = 0; i < n; i++)
      __asm__ volatile(P(0) P(1) P(2) P(3) F(4) F(5) F(6) F(7) F(8) F(9)
                       F(10) F(11) ::: CLOB);
    double t3 = now();
    double d[3] = {t1 - t0, t2 - t1, t3 - t2};
    for (int k = 0; k < 3; k++)
      if (d[k] < best[k])
        best[k] = d[k];
  }
  double per = 1e9 / (12.0 * (double)n);
  printf("512-bit FMA: %.3f ns each over 12 chains, %.3f ns each in one "
         "chain (ratio %.1f); 4 vpermd + 8 FMA: %.3f ns an instruction\n",
         best[0] * per, best[1] * per, best[1] / best[0], best[2] * per);
  return 0;
}
