/*
 * ab.c - two builds of libdnc.so side by side: the layer kernels of one
 * function, timed alternately in one process, so that a change is measured
 * against the code before it under the same load (these machines are
 * shared: two runs minutes apart differ by more than most changes).
 *
 *   build/bench/ab OLD/libdnc.so NEW/libdnc.so [SOURCE [ROWS COLS]]
 *
 * SOURCE is one function (default DyT); ROWS x COLS the layer (default
 * 256 x 512, 512 KiB a tensor: in cache). $AB_DTYPE picks f32 (default),
 * bf16 or f16, $AB_ROUNDS the number of alternations (200). Each library is
 * dlopen'ed on its own (RTLD_LOCAL) and compiles the function in its own
 * context, one thread, the kernel cache off; each round times
 * dnc_layer_forward and then dnc_layer_backward (every gradient) of each
 * in turn, with the thread's CPU clock, over enough calls for about 3 M
 * elements; the best of the rounds is printed in ns per element, with
 * NEW's over OLD's, and then whether one more call of each gave the
 * same bits (y, dx and every gradient). The tensors are 64-byte
 * aligned. A build of another commit: `git worktree add /tmp/old COMMIT
 * && make -C /tmp/old build/libdnc.so`.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "dnc.h"

typedef struct side {
  void *h;
  dnc_context *ctx;
  dnc_module *m;
  dnc_kernels k;
  int np;
  dnc_param_info par[8];
} side;

static void *sym(void *h, const char *name)
{
  return bench_sym("ab", h, name);
}

static void load(side *s, const char *lib, const char *src, dnc_dtype dt)
{
  s->h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!s->h) {
    fprintf(stderr, "ab: %s\n", dlerror());
    exit(1);
  }
  void (*init)(dnc_options *) = (void (*)(dnc_options *))sym(s->h, "dnc_options_init");
  dnc_status (*create)(const dnc_options *, dnc_context **) =
      (dnc_status(*)(const dnc_options *, dnc_context **))sym(s->h, "dnc_context_create");
  dnc_status (*compile)(dnc_context *, const char *, const char *, size_t,
                        dnc_module **) =
      (dnc_status(*)(dnc_context *, const char *, const char *, size_t,
                     dnc_module **))sym(s->h, "dnc_compile_string");
  const dnc_function *(*fn)(const dnc_module *, int) =
      (const dnc_function *(*)(const dnc_module *, int))sym(s->h, "dnc_module_function");
  dnc_status (*kernels)(const dnc_function *, dnc_dtype, dnc_kernels *) =
      (dnc_status(*)(const dnc_function *, dnc_dtype, dnc_kernels *))sym(
          s->h, "dnc_function_kernels");
  const char *(*last)(void) = (const char *(*)(void))sym(s->h, "dnc_last_error");
  int (*count)(const dnc_function *) =
      (int (*)(const dnc_function *))sym(s->h, "dnc_function_param_count");
  dnc_status (*param)(const dnc_function *, int, dnc_param_info *) =
      (dnc_status(*)(const dnc_function *, int, dnc_param_info *))sym(
          s->h, "dnc_function_param");
  dnc_options o;
  init(&o);
  o.threads = 1;
  o.cache = -1;
  dnc_module *m = NULL;
  if (create(&o, &s->ctx) || compile(s->ctx, "ab.dn", src, strlen(src), &m) ||
      kernels(fn(m, 0), dt, &s->k)) {
    fprintf(stderr, "ab: %s: %s\n", lib, last());
    exit(1);
  }
  s->np = count(fn(m, 0));
  if (s->np > 8) {
    fprintf(stderr, "ab: at most 8 parameters, not %d\n", s->np);
    exit(2);
  }
  for (int i = 0; i < s->np; i++)
    param(fn(m, 0), i, &s->par[i]);
  s->m = m;
}

static void unload(side *s)
{
  ((void (*)(dnc_module *))sym(s->h, "dnc_module_free"))(s->m);
  ((void (*)(dnc_context *))sym(s->h, "dnc_context_free"))(s->ctx);
  dlclose(s->h);
}

static long arg_long(const char *s, const char *what)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < 1 || v > (1L << 26)) {
    fprintf(stderr, "ab: %s must be an integer in 1..2^26, not '%s'\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  if (argc < 3 || argc == 5 || argc > 6) {
    fprintf(stderr, "usage: ab OLD/libdnc.so NEW/libdnc.so [SOURCE [ROWS COLS]]\n");
    return 2;
  }
  const char *src = argc > 3 ? argv[3] : "fn dyt(x; alpha = 0.5) = tanh(alpha * x)";
  long rows = argc > 5 ? arg_long(argv[4], "ROWS") : 256;
  long cols = argc > 5 ? arg_long(argv[5], "COLS") : 512;
  const char *dts = getenv("AB_DTYPE");
  int bf16 = dts && !strcmp(dts, "bf16"), f16 = dts && !strcmp(dts, "f16");
  if (dts && !bf16 && !f16 && strcmp(dts, "f32")) {
    fprintf(stderr, "ab: AB_DTYPE must be f32, bf16 or f16, not '%s'\n", dts);
    return 2;
  }
  dnc_dtype dt = bf16 ? DNC_BF16 : f16 ? DNC_F16 : DNC_F32;
  long rounds = getenv("AB_ROUNDS") ? arg_long(getenv("AB_ROUNDS"), "AB_ROUNDS") : 200;
  long n = rows * cols;
  side s[2];
  load(&s[0], argv[1], src, dt);
  load(&s[1], argv[2], src, dt);
  /* 64-byte aligned, as PyTorch's tensors are (malloc's large blocks
   * start 16 bytes into a line, and every vector load and store then
   * splits over two lines) */
  size_t nb = (sizeof(float) * (size_t)n + 63) / 64 * 64;
  float *x = aligned_alloc(64, nb), *dy = aligned_alloc(64, nb);
  float *y = aligned_alloc(64, nb), *dx = aligned_alloc(64, nb);
  float *g = malloc(sizeof *g * (size_t)cols), *b = malloc(sizeof *b * (size_t)cols);
  double *dg = calloc((size_t)cols, sizeof *dg), *db = calloc((size_t)cols, sizeof *db);
  if (!x || !dy || !y || !dx || !g || !b || !dg || !db) {
    fprintf(stderr, "ab: out of memory\n");
    return 1;
  }
  /* the parameters at their defaults (a per-channel one the same in
   * every channel), the data uniform in [-3, 3) and [-0.5, 0.5) */
  double p[8] = {0}, dp[8];
  const void *pc[8] = {0};
  double *dpc[8] = {0};
  for (int i = 0; i < s[0].np; i++) {
    p[i] = s[0].par[i].default_value;
    if (s[0].par[i].kind == DNC_PARAM_PER_CHANNEL) {
      float *a = malloc(sizeof *a * (size_t)cols);
      dpc[i] = calloc((size_t)cols, sizeof *dpc[i]);
      if (!a || !dpc[i]) {
        fprintf(stderr, "ab: out of memory\n");
        return 1;
      }
      for (long c = 0; c < cols; c++)
        a[c] = (float)p[i];
      pc[i] = a;
    }
  }
  srand(1);
  for (long i = 0; i < n; i++) {
    x[i] = (float)((rand() / (double)RAND_MAX - 0.5) * 6);
    dy[i] = (float)(rand() / (double)RAND_MAX - 0.5);
  }
  if (bf16) { /* the same values, truncated to bf16, in the arrays' first halves */
    unsigned short *xb = (unsigned short *)x, *yb = (unsigned short *)dy;
    for (long i = 0; i < n; i++) {
      unsigned u, w;
      memcpy(&u, &x[i], 4);
      memcpy(&w, &dy[i], 4);
      xb[i] = (unsigned short)(u >> 16);
      yb[i] = (unsigned short)(w >> 16);
    }
  } else if (f16) { /* rounded to f16, likewise */
    _Float16 *xh = (_Float16 *)x, *yh = (_Float16 *)dy;
    for (long i = 0; i < n; i++) {
      xh[i] = (_Float16)x[i];
      yh[i] = (_Float16)dy[i];
    }
  }
  for (long c = 0; c < cols; c++) {
    g[c] = 1 + (float)c * 1e-3f;
    b[c] = 0.1f;
  }
  double best[2][2] = {{1e9, 1e9}, {1e9, 1e9}};
  long reps = 3000000 / n > 0 ? 3000000 / n : 1;
  for (long r = 0; r < rounds; r++)
    for (int v = 0; v < 2; v++) {
      double t0 = bench_cpu_now();
      for (long i = 0; i < reps; i++)
        s[v].k.layer_forward(x, cols, y, cols, rows, cols, p, pc, g, b);
      double t1 = bench_cpu_now();
      for (long i = 0; i < reps; i++)
        s[v].k.layer_backward(x, cols, dy, cols, dx, cols, rows, cols, p, pc,
                              g, b, dp, dpc, dg, db);
      double t2 = bench_cpu_now();
      double f = (t1 - t0) / (double)reps / (double)n * 1e9;
      double bw = (t2 - t1) / (double)reps / (double)n * 1e9;
      if (f < best[v][0])
        best[v][0] = f;
      if (bw < best[v][1])
        best[v][1] = bw;
    }
  /* the results themselves, one more call of each on the same inputs:
   * a change meant to keep them (a code model, a loop's bookkeeping)
   * shows here that it did */
  long nout = 0, ndiff = 0;
  {
    size_t e = bf16 || f16 ? 2 : 4, yb = e * (size_t)n;
    unsigned char *r[2][2];
    double gsum[2][8] = {{0}}, *pcs[2][8], *gcol[2][2];
    for (int v = 0; v < 2; v++) {
      r[v][0] = malloc(yb), r[v][1] = malloc(yb);
      gcol[v][0] = calloc((size_t)cols, sizeof(double));
      gcol[v][1] = calloc((size_t)cols, sizeof(double));
      for (int i = 0; i < 8; i++)
        pcs[v][i] = dpc[i] ? calloc((size_t)cols, sizeof(double)) : NULL;
      if (!r[v][0] || !r[v][1] || !gcol[v][0] || !gcol[v][1]) {
        fprintf(stderr, "ab: out of memory\n");
        return 1;
      }
      s[v].k.layer_forward(x, cols, r[v][0], cols, rows, cols, p, pc, g, b);
      s[v].k.layer_backward(x, cols, dy, cols, r[v][1], cols, rows, cols, p,
                            pc, g, b, gsum[v], pcs[v], gcol[v][0], gcol[v][1]);
    }
    for (int o = 0; o < 2; o++)
      for (long i = 0; i < n; i++, nout++)
        ndiff += memcmp(r[0][o] + e * (size_t)i, r[1][o] + e * (size_t)i, e) != 0;
    for (int i = 0; i < s[0].np; i++, nout++)
      ndiff += memcmp(&gsum[0][i], &gsum[1][i], sizeof(double)) != 0;
    for (int o = 0; o < 2; o++)
      for (long c = 0; c < cols; c++, nout++)
        ndiff += memcmp(&gcol[0][o][c], &gcol[1][o][c], sizeof(double)) != 0;
    for (int i = 0; i < 8; i++)
      for (long c = 0; dpc[i] && c < cols; c++, nout++)
        ndiff += memcmp(&pcs[0][i][c], &pcs[1][i][c], sizeof(double)) != 0;
    for (int v = 0; v < 2; v++) {
      free(r[v][0]), free(r[v][1]), free(gcol[v][0]), free(gcol[v][1]);
      for (int i = 0; i < 8; i++)
        free(pcs[v][i]);
    }
  }
  printf("%s, [%ld x %ld], 1 thread, best of %ld alternate rounds, ns per element\n",
         bf16 ? "bf16" : f16 ? "f16" : "f32", rows, cols, rounds);
  printf("  OLD forward %.3f backward %.3f\n", best[0][0], best[0][1]);
  printf("  NEW forward %.3f backward %.3f\n", best[1][0], best[1][1]);
  printf("  NEW/OLD forward %.3f backward %.3f\n", best[1][0] / best[0][0],
         best[1][1] / best[0][1]);
  if (ndiff)
    printf("  results: %ld of %ld differ in their bits\n", ndiff, nout);
  else
    printf("  results: the same bits (%ld: y, dx, and every gradient)\n", nout);
  for (int i = 0; i < 8; i++) {
    free((void *)pc[i]);
    free(dpc[i]);
  }
  free(x), free(dy), free(y), free(dx), free(g), free(b), free(dg), free(db);
  unload(&s[1]);
  unload(&s[0]);
  return 0;
}
