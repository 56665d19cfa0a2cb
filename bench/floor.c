/*
 * floor.c - the floor's layer backward (a PointwiseNorm of `alpha * x`:
 * dx, dalpha and the per-channel sums of dgamma and dbeta, no arithmetic
 * to speak of) in dnc against C loops of the same work, in one process
 * (docs/performance.md, round twenty-nine).
 *
 *   build/bench/floor LIBDNC.so [ROWS COLS]     (default 4096 512)
 *
 * The C loops, with AVX-512 intrinsics, write dx = dy gamma alpha and sum
 * dalpha in an f32 vector added to two double vectors every 8 vectors, as
 * dnc does;
 * they differ in the per-channel sums:
 *
 *   tile        an f32 tile of dgamma and dbeta on the stack, loaded and
 *               stored every row, added to the double sums once at the
 *               end (its error grows with the rows: not what dnc may do)
 *   tile/8      the same tile added to the double sums and cleared every
 *               8 rows (dnc's bound on a sum's error, docs/c-api.md)
 *   tile/32     every 32 rows
 *   no sums     no dgamma and dbeta at all
 *
 * Prints each one's nanoseconds an element, best of the rounds, the
 * loops alternating in every round (thread CPU time, 64-byte aligned
 * tensors), after checking that every C loop's dx has dnc's bits and its
 * sums agree with dnc's to 1e-4. Without AVX-512 it says so and exits 0.
 */
#include <dlfcn.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "dnc.h"

#define TGT __attribute__((target("avx512f,avx512dq")))

static void *sym(void *h, const char *name)
{
  return bench_sym("floor", h, name);
}

typedef struct job {
  const float *x, *dy, *g;
  float *dx;
  long rows, cols;
  double *dg, *db, da;
} job;

/* flush every `every` rows (0: only at the end); sums 0: none */
TGT static void cloop(job *j, int sums, long every)
{
  enum { MAXC = 4096 };
  float tg[MAXC] __attribute__((aligned(64))), tb[MAXC] __attribute__((aligned(64)));
  long cols = j->cols;
  memset(tg, 0, sizeof(float) * (size_t)cols);
  memset(tb, 0, sizeof(float) * (size_t)cols);
  __m512 va = _mm512_set1_ps(0.5f), sa = _mm512_setzero_ps();
  __m512d d0 = _mm512_setzero_pd(), d1 = _mm512_setzero_pd();
  int nsa = 0;
  for (long r = 0; r < j->rows; r++) {
    const float *x = j->x + r * cols, *dy = j->dy + r * cols;
    float *dx = j->dx + r * cols;
    for (long c = 0; c < cols; c += 16) {
      __m512 vx = _mm512_load_ps(x + c), vd = _mm512_load_ps(dy + c);
      __m512 dyg = _mm512_mul_ps(vd, _mm512_load_ps(j->g + c));
      _mm512_store_ps(dx + c, _mm512_mul_ps(dyg, va));
      sa = _mm512_fmadd_ps(dyg, vx, sa);
      if (++nsa == 8) {
        d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(sa)));
        d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                   _mm512_extractf64x4_pd(_mm512_castps_pd(sa), 1))));
        sa = _mm512_setzero_ps();
        nsa = 0;
      }
      if (sums) {
        __m512 f = _mm512_mul_ps(vx, va);
        _mm512_store_ps(tg + c, _mm512_fmadd_ps(vd, f, _mm512_load_ps(tg + c)));
        _mm512_store_ps(tb + c, _mm512_add_ps(vd, _mm512_load_ps(tb + c)));
      }
    }
    if (sums && ((every && (r + 1) % every == 0) || r + 1 == j->rows))
      for (long c = 0; c < cols; c += 16) {
        __m512 a = _mm512_load_ps(tg + c), b = _mm512_load_ps(tb + c);
        __m256 a1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
        __m256 b1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1));
        _mm512_storeu_pd(j->dg + c, _mm512_add_pd(_mm512_loadu_pd(j->dg + c),
                                                  _mm512_cvtps_pd(_mm512_castps512_ps256(a))));
        _mm512_storeu_pd(j->dg + c + 8, _mm512_add_pd(_mm512_loadu_pd(j->dg + c + 8),
                                                      _mm512_cvtps_pd(a1)));
        _mm512_storeu_pd(j->db + c, _mm512_add_pd(_mm512_loadu_pd(j->db + c),
                                                  _mm512_cvtps_pd(_mm512_castps512_ps256(b))));
        _mm512_storeu_pd(j->db + c + 8, _mm512_add_pd(_mm512_loadu_pd(j->db + c + 8),
                                                      _mm512_cvtps_pd(b1)));
        _mm512_store_ps(tg + c, _mm512_setzero_ps());
        _mm512_store_ps(tb + c, _mm512_setzero_ps());
      }
  }
  j->da += _mm512_reduce_add_pd(d0) + _mm512_reduce_add_pd(d1) +
           _mm512_reduce_add_ps(sa);
}

static long arg_long(const char *s, const char *what, long hi)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end || v < 1 || v > hi) {
    fprintf(stderr, "floor: %s must be a whole number from 1 to %ld, not '%s'\n",
            what, hi, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  if (argc != 2 && argc != 4) {
    fprintf(stderr, "usage: floor LIBDNC.so [ROWS COLS]\n");
    return 2;
  }
  long rows = argc == 4 ? arg_long(argv[2], "ROWS", 1l << 24) : 4096;
  long cols = argc == 4 ? arg_long(argv[3], "COLS", 4096) : 512;
  if (cols % 16 || rows * cols > (1l << 26)) {
    fprintf(stderr, "floor: COLS must be a multiple of 16 and ROWS x COLS at "
            "most 2^26, not %ld x %ld\n", rows, cols);
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "floor: %s\n", dlerror());
    return 1;
  }
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq")) {
    printf("floor: no AVX-512 on this CPU\n");
    return 0;
  }
  void (*init)(dnc_options *) = (void (*)(dnc_options *))sym(h, "dnc_options_init");
  dnc_status (*create)(const dnc_options *, dnc_context **) =
      (dnc_status(*)(const dnc_options *, dnc_context **))sym(h, "dnc_context_create");
  dnc_status (*compile)(dnc_context *, const char *, const char *, size_t,
                        dnc_module **) =
      (dnc_status(*)(dnc_context *, const char *, const char *, size_t,
                     dnc_module **))sym(h, "dnc_compile_string");
  const dnc_function *(*fn)(const dnc_module *, int) =
      (const dnc_function *(*)(const dnc_module *, int))sym(h, "dnc_module_function");
  dnc_status (*kernels)(const dnc_function *, dnc_dtype, dnc_kernels *) =
      (dnc_status(*)(const dnc_function *, dnc_dtype, dnc_kernels *))sym(
          h, "dnc_function_kernels");
  const char *(*last)(void) = (const char *(*)(void))sym(h, "dnc_last_error");
  dnc_options o;
  init(&o);
  o.threads = 1;
  o.cache = -1;
  dnc_context *ctx;
  dnc_module *m;
  dnc_kernels k;
  const char *src = "fn lin(x; alpha = 0.5) = alpha * x";
  if (create(&o, &ctx) || compile(ctx, "floor.dn", src, strlen(src), &m) ||
      kernels(fn(m, 0), DNC_F32, &k)) {
    fprintf(stderr, "floor: %s: %s\n", argv[1], last());
    return 1;
  }
  long n = rows * cols;
  size_t nb = sizeof(float) * (size_t)n;
  float *x = aligned_alloc(64, nb), *dy = aligned_alloc(64, nb);
  float *dx = aligned_alloc(64, nb), *dx0 = aligned_alloc(64, nb);
  float *g = aligned_alloc(64, sizeof(float) * 4096), *b = aligned_alloc(64, sizeof(float) * 4096);
  double *dg = calloc(4096, sizeof *dg), *db = calloc(4096, sizeof *db);
  double *dg0 = calloc(4096, sizeof *dg), *db0 = calloc(4096, sizeof *db);
  if (!x || !dy || !dx || !dx0 || !g || !b || !dg || !db || !dg0 || !db0) {
    fprintf(stderr, "floor: out of memory\n");
    return 1;
  }
  srand(1);
  for (long i = 0; i < n; i++) {
    x[i] = (float)((rand() / (double)RAND_MAX - 0.5) * 6);
    dy[i] = (float)(rand() / (double)RAND_MAX - 0.5);
  }
  for (long c = 0; c < cols; c++) {
    g[c] = 1 + (float)c * 1e-3f;
    b[c] = 0.1f;
  }
  double p[1] = {0.5}, dp[1];
  const void *pc[1] = {NULL};
  double *dpc[1] = {NULL};
  /* dnc's results, then each C loop's against them */
  k.layer_backward(x, cols, dy, cols, dx0, cols, rows, cols, p, pc, g, b, dp,
                   dpc, dg0, db0);
  static const int sums[] = {1, 1, 1, 0};
  static const long every[] = {0, 8, 32, 0};
  for (int v = 0; v < 4; v++) {
    job j = {x, dy, g, dx, rows, cols, dg, db, 0};
    memset(dg, 0, 4096 * sizeof *dg);
    memset(db, 0, 4096 * sizeof *db);
    cloop(&j, sums[v], every[v]);
    double worst = fabs(j.da - dp[0]) / fabs(dp[0]);
    for (long c = 0; sums[v] && c < cols; c++) {
      double e1 = fabs(dg[c] - dg0[c]) / (fabs(dg0[c]) + 1);
      double e2 = fabs(db[c] - db0[c]) / (fabs(db0[c]) + 1);
      worst = e1 > worst ? e1 : worst;
      worst = e2 > worst ? e2 : worst;
    }
    if (memcmp(dx, dx0, nb) || !(worst < 1e-4)) {
      fprintf(stderr, "floor: C loop %d disagrees with dnc's kernel (dx %s, "
              "sums %g apart)\n", v, memcmp(dx, dx0, nb) ? "differs" : "agrees",
              worst);
      return 1;
    }
  }
  enum { NV = 5 };
  double best[NV];
  for (int v = 0; v < NV; v++)
    best[v] = 1e30;
  long reps = 8000000 / n > 0 ? 8000000 / n : 1;
  for (int r = 0; r < 60; r++)
    for (int v = 0; v < NV; v++) {
      double t0 = bench_cpu_now();
      for (long i = 0; i < reps; i++) {
        if (v == 0) {
          k.layer_backward(x, cols, dy, cols, dx, cols, rows, cols, p, pc, g,
                           b, dp, dpc, dg, db);
        } else {
          job j = {x, dy, g, dx, rows, cols, dg, db, 0};
          cloop(&j, sums[v - 1], every[v - 1]);
        }
      }
      double t = (bench_cpu_now() - t0) / (double)reps / (double)n * 1e9;
      best[v] = t < best[v] ? t : best[v];
    }
  printf("floor [%ld x %ld], ns an element: dnc %.4f; C: tile %.4f, tile/8 "
         "%.4f, tile/32 %.4f, no sums %.4f\n", rows, cols, best[0], best[1],
         best[2], best[3], best[4]);
  return 0;
}
