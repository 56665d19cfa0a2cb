/*
 * incache.c - throughput of dnc's vector math with the data in cache: a
 * 16 KiB input (4096 floats) run through tanh, erf and exp again and
 * again, in elements per nanosecond, against two peers in the same run:
 * gcc -O3 -march=native -ffast-math loops (glibc's libmvec, bench/libmvec.c)
 * and SLEEF's u10 vector functions (libsleef-dev, 1.0-ulp class).
 *
 *   build/bench/incache [OUT.json]     adds "incache/<op>/vs_libmvec" and
 *                                      "incache/<op>/vs_sleef" (dnc's
 *                                      throughput over the peer's) to the
 *                                      JSON object in OUT.json (made if
 *                                      missing)
 *
 * The peers are timed in the same loop as dnc, alternating, each the
 * median of DNC_BENCH_REPS rounds (default 15).
 */
#include <immintrin.h>
#include <sleef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnc.h"
#include "bench.h"

void libmvec_tanhf(const float *x, float *y, int n);
void libmvec_erff(const float *x, float *y, int n);
void libmvec_expf(const float *x, float *y, int n);

enum { N = 4096, INNER = 2000 };

#if defined(__AVX512F__)
#define SLEEF_LOOP(NAME, FN)                                            \
  static void NAME(const float *x, float *y, int n)                     \
  {                                                                     \
    for (int i = 0; i < n; i += 16)                                     \
      _mm512_storeu_ps(y + i, FN##16_u10(_mm512_loadu_ps(x + i)));      \
  }
#elif defined(__AVX2__)
#define SLEEF_LOOP(NAME, FN)                                            \
  static void NAME(const float *x, float *y, int n)                     \
  {                                                                     \
    for (int i = 0; i < n; i += 8)                                      \
      _mm256_storeu_ps(y + i, FN##8_u10(_mm256_loadu_ps(x + i)));       \
  }
#else
#define SLEEF_LOOP(NAME, FN)                                            \
  static void NAME(const float *x, float *y, int n)                     \
  {                                                                     \
    for (int i = 0; i < n; i += 4)                                      \
      _mm_storeu_ps(y + i, FN##4_u10(_mm_loadu_ps(x + i)));             \
  }
#endif
SLEEF_LOOP(sleef_tanh, Sleef_tanhf)
SLEEF_LOOP(sleef_erf, Sleef_erff)
SLEEF_LOOP(sleef_exp, Sleef_expf)

typedef void (*loop_fn)(const float *, float *, int);

static dnc_forward_fn dnc_k;
static void dnc_loop(const float *x, float *y, int n)
{
  double p = 0;
  dnc_k(x, y, n, &p);
}

/* elements per ns of one INNER-fold pass */
static double rate(loop_fn f, const float *x, float *y)
{
  double t0 = bench_now();
  for (int r = 0; r < INNER; r++)
    f(x, y, N);
  return (double)N * INNER / ((bench_now() - t0) * 1e9);
}

int main(int argc, char **argv)
{
  const char *out = argc > 1 ? argv[1] : NULL;
  int reps = getenv("DNC_BENCH_REPS") ? atoi(getenv("DNC_BENCH_REPS")) : 15;
  if (reps < 1 || reps > 1000)
    reps = 15;
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  dnc_context *ctx;
  if (dnc_context_create(&o, &ctx)) {
    fprintf(stderr, "incache: no context: %s\n", dnc_last_error());
    return 1;
  }
  static const struct {
    const char *op;
    double lo, hi;
    loop_fn mvec, sleef;
  } ops[] = {{"tanh", -5, 5, libmvec_tanhf, sleef_tanh},
             {"erf", -4, 4, libmvec_erff, sleef_erf},
             {"exp", -10, 10, libmvec_expf, sleef_exp}};
  float *x = aligned_alloc(64, sizeof(float) * N), *y = aligned_alloc(64, sizeof(float) * N);
  char keys[8][64];
  double vals[8];
  int nk = 0;
  printf("in-cache f32, %d elements (16 KiB) x %d passes, median of %d, 1 thread; "
         "cpu %s, %d-bit vectors\n", N, INNER, reps, dnc_context_cpu(ctx),
         dnc_context_vector_bits(ctx));
  printf("%-6s %12s %12s %12s %12s %12s\n", "op", "dnc el/ns", "libmvec", "SLEEF u10",
         "vs libmvec", "vs SLEEF");
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    char src[64];
    snprintf(src, sizeof src, "fn f(x) = %s(x)", ops[i].op);
    dnc_module *m;
    dnc_kernels k;
    if (dnc_compile_string(ctx, "incache", src, strlen(src), &m) ||
        dnc_function_kernels(dnc_module_find(m, "f"), DNC_F32, &k)) {
      fprintf(stderr, "incache: %s does not compile\n", ops[i].op);
      return 1;
    }
    dnc_k = k.forward;
    uint64_t s = 88172645463325252ull;
    for (int j = 0; j < N; j++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      x[j] = (float)(ops[i].lo + (ops[i].hi - ops[i].lo) * (double)(s >> 11) * 0x1p-53);
    }
    double *rd = malloc(sizeof(double) * (size_t)reps), *rm = malloc(sizeof(double) * (size_t)reps),
           *rs = malloc(sizeof(double) * (size_t)reps);
    rate(dnc_loop, x, y), rate(ops[i].mvec, x, y), rate(ops[i].sleef, x, y); /* warm */
    for (int r = 0; r < reps; r++) {
      rd[r] = rate(dnc_loop, x, y);
      rm[r] = rate(ops[i].mvec, x, y);
      rs[r] = rate(ops[i].sleef, x, y);
    }
    double d = median(rd, reps), mv = median(rm, reps), sl = median(rs, reps);
    printf("%-6s %12.3f %12.3f %12.3f %12.2f %12.2f\n", ops[i].op, d, mv, sl, d / mv, d / sl);
    snprintf(keys[nk], sizeof keys[nk], "incache/%s/vs_libmvec", ops[i].op);
    vals[nk++] = d / mv;
    snprintf(keys[nk], sizeof keys[nk], "incache/%s/vs_sleef", ops[i].op);
    vals[nk++] = d / sl;
    free(rd), free(rm), free(rs);
    dnc_module_free(m);
  }
  if (out)
    json_add("incache", out, keys, vals, nk);
  free(x);
  free(y);
  dnc_context_free(ctx);
  return 0;
}
