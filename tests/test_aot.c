/*
 * test_aot.c - libraries written by `dnc compile`: examples/norms.dn and
 * tests/aot/extra.dn compiled into one .so with the default levels
 * (x86-64-v2, -v3, -v4), on two threads, and loaded back
 *   - through dnc_module_load, each level forced with DNC_AOT_CPU (the
 *     levels this CPU runs): every kernel of every function, form and
 *     dtype gives the same bits as the JIT's for the same CPU level;
 *   - with dlopen and dlsym, by the exported C names, as a program
 *     linking the library would;
 * the loaded module's API (functions, parameters, the interpreter, the
 * checked and threaded entry points), and the errors of dnc_module_load.
 * The command line (options, errors, atomic output, the header, cross
 * compiling) is tests/aot.sh's.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnc.h"
#include "dnc_aot.h"
#include "tap.h"

enum { N = 1031, ROWS = 7, COLS = 37, LD = 41, MAXP = 8 };

static const char *const levels[] = {"x86-64-v2", "x86-64-v3", "x86-64-v4"};

static int level_runs(int i)
{
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (i >= 0 && !(__builtin_cpu_supports("sse4.2") &&
                  __builtin_cpu_supports("popcnt")))
    return 0;
  if (i >= 1 && !(__builtin_cpu_supports("avx2") &&
                  __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")))
    return 0;
  if (i >= 2 && !(__builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd")))
    return 0;
  return 1;
#else
  (void)i;
  return 0;
#endif
}

static uint64_t rng = 0x243f6a8885a308d3u;
static uint64_t next(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static size_t esize(dnc_dtype t)
{
  return t == DNC_F64 ? 8 : t == DNC_F32 ? 4 : 2;
}

/* n elements of dtype t: values in [-6, 6), and the special ones first. */
static void fill(void *buf, dnc_dtype t, size_t n)
{
  static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN,
                                   1e-40, -3e-39, 1e30, -1e30, 1.0, -1.0,
                                   0.5, 20.0, -20.0};
  for (size_t i = 0; i < n; i++) {
    double v = i < sizeof special / sizeof special[0]
                   ? special[i]
                   : ((double)(next() >> 11) * 0x1p-53 - 0.5) * 12;
    if (t == DNC_F32)
      ((float *)buf)[i] = (float)v;
    else if (t == DNC_F64)
      ((double *)buf)[i] = v;
    else if (i >= sizeof special / sizeof special[0])
      ((uint16_t *)buf)[i] = (uint16_t)next(); /* every bit pattern */
    else {
      float f = (float)v;
      uint32_t u;
      memcpy(&u, &f, 4);
      ((uint16_t *)buf)[i] = (uint16_t)(t == DNC_BF16 ? u >> 16 : 0x3c00);
    }
  }
}

/* a[0..n) and b[0..n), elements of dtype t (doubles for DNC_F64 and the
 * sums), are the same bits, except that any NaN equals any NaN: which
 * operand's NaN an addition passes on depends on the order the code
 * generator gives a commutative operation's operands, and the JIT and
 * the library unroll the layer loops differently (dnc_target.unroll:
 * four vectors a turn and two), so a column's sum over NaNs may keep
 * another one's payload. Every number is the same bits. */
static int same_out(const void *a, const void *b, size_t n, dnc_dtype t)
{
  size_t es = esize(t);
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = (const unsigned char *)a + i * es,
                        *q = (const unsigned char *)b + i * es;
    if (!memcmp(p, q, es))
      continue;
    int np, nq;
    if (t == DNC_F64) {
      double u, v;
      memcpy(&u, p, 8), memcpy(&v, q, 8);
      np = isnan(u), nq = isnan(v);
    } else if (t == DNC_F32) {
      float u, v;
      memcpy(&u, p, 4), memcpy(&v, q, 4);
      np = isnan(u), nq = isnan(v);
    } else { /* bf16: exponent 8 bits of 0x7f80; f16: 5 bits of 0x7c00 */
      uint16_t u, v, e = t == DNC_BF16 ? 0x7f80 : 0x7c00;
      memcpy(&u, p, 2), memcpy(&v, q, 2);
      np = (u & e) == e && (u & ~e & 0x7fff);
      nq = (v & e) == e && (v & ~e & 0x7fff);
    }
    if (!(np && nq))
      return 0;
  }
  return 1;
}

/* The same inputs through a's and b's kernels of one dtype, every form:
 * 1 when all outputs are the same bits (same_out). */
static int same_kernels(const dnc_function *f, dnc_dtype t,
                        const dnc_kernels *a, const dnc_kernels *b,
                        const char **what)
{
  size_t es = esize(t), cs = t == DNC_F64 ? 8 : 4;
  size_t big = (size_t)ROWS * LD > N ? (size_t)ROWS * LD : N;
  char *x = malloc(big * es), *dy = malloc(big * es);
  char *o[2], *o2[2];
  double dp[2][MAXP], *dg[2], *db[2], *dch[2][MAXP];
  char *gamma = malloc(COLS * cs), *beta = malloc(COLS * cs);
  char *chan[MAXP];
  const void *chanp[MAXP];
  int np = dnc_function_param_count(f);
  double p[MAXP];
  fill(x, t, big);
  fill(dy, t, big);
  fill(gamma, t == DNC_F64 ? DNC_F64 : DNC_F32, COLS);
  fill(beta, t == DNC_F64 ? DNC_F64 : DNC_F32, COLS);
  for (int k = 0; k < np; k++) {
    dnc_param_info pi;
    dnc_function_param(f, k, &pi);
    p[k] = pi.default_value + 0.125;
    chan[k] = malloc(COLS * cs);
    fill(chan[k], t == DNC_F64 ? DNC_F64 : DNC_F32, COLS);
    chanp[k] = pi.kind == DNC_PARAM_PER_CHANNEL ? chan[k] : NULL;
  }
  const dnc_kernels *ks[2] = {a, b};
  int same = 1;
  for (int s = 0; s < 2; s++) {
    o[s] = calloc(big, es);
    o2[s] = calloc(big, es);
    dg[s] = calloc(COLS, 8);
    db[s] = calloc(COLS, 8);
    for (int k = 0; k < np; k++)
      dch[s][k] = chanp[k] ? calloc(COLS, 8) : NULL;
  }
  *what = "forward";
  for (int s = 0; s < 2; s++)
    ks[s]->forward(x, o[s], N, p);
  same &= same_out(o[0], o[1], N, t);
  if (same) {
    *what = "backward";
    for (int s = 0; s < 2; s++)
      ks[s]->backward(x, dy, o[s], N, p, dp[s]);
    same &= same_out(o[0], o[1], N, t) &&
            same_out(dp[0], dp[1], (size_t)np, DNC_F64);
  }
  if (same) {
    *what = "layer forward";
    for (int s = 0; s < 2; s++)
      ks[s]->layer_forward(x, LD, o[s], LD, ROWS, COLS, p, chanp, gamma, beta);
    same &= same_out(o[0], o[1], (size_t)ROWS * LD, t);
  }
  if (same) {
    *what = "layer backward";
    for (int s = 0; s < 2; s++)
      ks[s]->layer_backward(x, LD, dy, LD, o2[s], LD, ROWS, COLS, p, chanp,
                            gamma, beta, dp[s], dch[s], dg[s], db[s]);
    same &= same_out(o2[0], o2[1], (size_t)ROWS * LD, t) &&
            same_out(dp[0], dp[1], (size_t)np, DNC_F64) &&
            same_out(dg[0], dg[1], COLS, DNC_F64) &&
            same_out(db[0], db[1], COLS, DNC_F64);
    for (int k = 0; k < np; k++)
      if (chanp[k])
        same &= same_out(dch[0][k], dch[1][k], COLS, DNC_F64);
  }
  for (int s = 0; s < 2; s++) {
    free(o[s]);
    free(o2[s]);
    free(dg[s]);
    free(db[s]);
    for (int k = 0; k < np; k++)
      free(dch[s][k]);
  }
  for (int k = 0; k < np; k++)
    free(chan[k]);
  free(x);
  free(dy);
  free(gamma);
  free(beta);
  return same;
}

static dnc_context *context_for(const char *cpu, int threads)
{
  dnc_options o;
  dnc_options_init(&o);
  o.cpu = cpu;
  o.threads = threads;
  dnc_context *c = NULL;
  if (dnc_context_create(&o, &c) != DNC_OK) {
    printf("Bail out! no context for %s: %s\n", cpu ? cpu : "host",
           dnc_last_error());
    exit(1);
  }
  return c;
}

static dnc_module *compile_sources(dnc_context *c)
{
  static const char *const files[] = {"examples/norms.dn", "tests/aot/extra.dn"};
  char *src = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&src, &len);
  for (int i = 0; i < 2; i++) {
    FILE *fp = fopen(files[i], "r");
    if (!fp) {
      printf("Bail out! cannot read %s (run from the repository root)\n",
             files[i]);
      exit(1);
    }
    int ch;
    while ((ch = fgetc(fp)) != EOF)
      fputc(ch, mem);
    fclose(fp);
  }
  fclose(mem);
  dnc_module *m = NULL;
  if (dnc_compile_string(c, "all.dn", src, len, &m) != DNC_OK) {
    printf("Bail out! the sources do not compile\n");
    exit(1);
  }
  free(src);
  return m;
}

/* Every function, dtype and form of the loaded module against the JIT's
 * module compiled for the same CPU. */
static void compare_modules(dnc_module *jit, dnc_module *lib, const char *level)
{
  int bad = 0, count = 0;
  for (int i = 0; i < dnc_module_function_count(lib); i++) {
    const dnc_function *fl = dnc_module_function(lib, i);
    const dnc_function *fj = dnc_module_find(jit, dnc_function_name(fl));
    for (int t = 0; t < 4 && fj; t++) {
      dnc_kernels kj, kl;
      const char *what = "";
      if (dnc_function_kernels(fj, (dnc_dtype)t, &kj) != DNC_OK ||
          dnc_function_kernels(fl, (dnc_dtype)t, &kl) != DNC_OK) {
        bad++;
        continue;
      }
      count++;
      if (!same_kernels(fl, (dnc_dtype)t, &kj, &kl, &what)) {
        if (bad++ < 5)
          diag("%s %s %s: the library's %s differs from the JIT's", level,
               dnc_function_name(fl), dnc_dtype_name((dnc_dtype)t), what);
      }
    }
    if (!fj)
      bad++;
  }
  ok(bad == 0 && count == 13 * 4,
     "%s: the library's kernels equal the JIT's to the bit, NaN for NaN (%d functions x "
     "dtypes x 4 forms, %d differ)", level, count, bad);
}

static void test_levels(const char *lib)
{
  for (int l = 0; l < 3; l++) {
    if (!level_runs(l)) {
      skip(2, "this CPU does not run the level");
      continue;
    }
    setenv("DNC_AOT_CPU", levels[l], 1);
    dnc_context *cj = context_for(levels[l], 1), *cl = context_for(NULL, 1);
    dnc_module *mj = compile_sources(cj), *ml = NULL;
    dnc_status st = dnc_module_load(cl, lib, &ml);
    if (!is_int(st, DNC_OK, "DNC_AOT_CPU=%s: the library loads", levels[l])) {
      diag("%s", dnc_last_error());
      skip(1, "not loaded");
    } else {
      is_str(dnc_module_cpu(ml), levels[l], "it runs level %s", levels[l]);
      compare_modules(mj, ml, levels[l]);
    }
    dnc_module_free(ml);
    dnc_module_free(mj);
    dnc_context_free(cj);
    dnc_context_free(cl);
  }
  unsetenv("DNC_AOT_CPU");
}

/* The loaded module has the API of the compiled one. */
static void test_api(const char *lib)
{
  dnc_context *c = context_for(NULL, 3);
  dnc_module *ml = NULL, *mj = compile_sources(c);
  if (!is_int(dnc_module_load(c, lib, &ml), DNC_OK, "the library loads with "
              "the best level")) {
    diag("%s", dnc_last_error());
    dnc_module_free(mj);
    dnc_context_free(c);
    return;
  }
  const char *best = "";
  for (int l = 0; l < 3; l++)
    if (level_runs(l))
      best = levels[l];
  is_str(dnc_module_cpu(ml), best, "without DNC_AOT_CPU it picks the best "
         "level this CPU runs");
  is_int(dnc_module_function_count(ml), 13, "13 functions from two files");
  const dnc_function *f = dnc_module_find(ml, "fallback");
  ok(f != NULL, "functions are found by name");
  dnc_param_info pi;
  ok(f && dnc_function_param(f, 1, &pi) == DNC_OK && !strcmp(pi.name, "s") &&
         pi.kind == DNC_PARAM_PER_CHANNEL && pi.default_value == 0.25,
     "parameters keep their names, kinds and defaults");
  double xs[3] = {-1.5, 0.25, 4}, yl[3], yj[3];
  const dnc_function *fj = dnc_module_find(mj, "fallback");
  ok(f && dnc_function_eval(f, xs, yl, 3, NULL) == DNC_OK &&
         dnc_function_eval(fj, xs, yj, 3, NULL) == DNC_OK &&
         !memcmp(yl, yj, sizeof yl),
     "the reference interpreter works on the loaded module");

  /* the checked, threaded entry points over the library's kernels */
  f = dnc_module_find(ml, "derf_pc");
  fj = dnc_module_find(mj, "derf_pc");
  enum { R = 300, C = 64 };
  float *x = malloc(sizeof(float) * R * C), *y1 = malloc(sizeof(float) * R * C);
  fill(x, DNC_F32, R * C);
  float s[C], g[C], b[C];
  for (int i = 0; i < C; i++) {
    s[i] = (float)(i - 32) / 16;
    g[i] = 1 + (float)i / 64;
    b[i] = (float)(i % 5) / 8;
  }
  const void *chan[2] = {NULL, s};
  dnc_layer layer = {NULL, chan, g, b};
  dnc_tensor tx = {x, DNC_F32, R, C, 0}, t1 = {y1, DNC_F32, R, C, 0};
  ok(dnc_layer_forward(f, &tx, &t1, &layer) == DNC_OK,
     "dnc_layer_forward runs the loaded kernels on 3 threads");
  double worst = 0;
  for (int i = 0; i < R * C; i++) {
    if (!isfinite(x[i]))
      continue;
    double xi = x[i], p2[2] = {0.5, s[i % C]}, ref;
    dnc_function_eval(f, &xi, &ref, 1, p2);
    ref = g[i % C] * ref + b[i % C];
    double e = fabs(y1[i] - ref) / (fabs(ref) + fabs(b[i % C]) + 1e-30);
    if (e > worst)
      worst = e;
  }
  ok(worst < 1e-6, "its results agree with the interpreter (max relative "
     "error %.3g)", worst);
  dnc_tensor bad = {y1, DNC_F32, R, C + 1, 0};
  is_int(dnc_layer_forward(f, &tx, &bad, &layer), DNC_ERR_SHAPE,
         "the entry points check shapes over a loaded module too");
  free(x);
  free(y1);
  dnc_module_free(ml);
  dnc_module_free(mj);
  dnc_context_free(c);
}

/* dlopen and dlsym by the documented names, as a program would. */
static void test_dlopen(const char *lib)
{
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!ok(h != NULL, "dlopen loads the library")) {
    diag("%s", dlerror());
    skip(3, "not loaded");
    return;
  }
  const dnc_aot_module *(*get)(void) =
      (const dnc_aot_module *(*)(void))dlsym(h, "dnc_aot_module_get");
  const dnc_aot_module *d = get ? get() : NULL;
  ok(d && d->abi == DNC_AOT_ABI && d->nfunctions == 13 && d->nsources == 2 &&
         !strcmp(d->levels, "x86-64-v2,x86-64-v3,x86-64-v4") && d->cpu,
     "its descriptor: ABI, 13 functions, 2 sources, 3 levels, one chosen");
  typedef void (*fwd)(const float *, float *, int64_t, const double *);
  fwd k = (fwd)dlsym(h, "dnc_dyt_f32_fwd");
  ok(k != NULL, "dnc_dyt_f32_fwd is exported");
  int good = k != NULL && d && d->cpu;
  if (good) {
    dnc_context *c = context_for(d->cpu, 1);
    dnc_module *mj = compile_sources(c);
    dnc_kernels kj;
    dnc_function_kernels(dnc_module_find(mj, "dyt"), DNC_F32, &kj);
    float x[N], y1[N], y2[N];
    double p[1] = {0.5};
    fill(x, DNC_F32, N);
    k(x, y1, N, p);
    kj.forward(x, y2, N, p);
    good = !memcmp(y1, y2, sizeof y1);
    dnc_module_free(mj);
    dnc_context_free(c);
  }
  ok(good, "called by its C name it gives the JIT's bits for level %s",
     d && d->cpu ? d->cpu : "?");
  dlclose(h);
}

static void test_errors(const char *lib, const char *dir)
{
  dnc_context *c = context_for(NULL, 1);
  dnc_module *m = (dnc_module *)1;
  is_int(dnc_module_load(c, "no/such/lib.so", &m), DNC_ERR_LOAD,
         "a missing file is DNC_ERR_LOAD");
  ok(m == NULL && strstr(dnc_last_error(), "no/such/lib.so"),
     "with the path in dnc_last_error: %s", dnc_last_error());
  char path[512];
  snprintf(path, sizeof path, "%s/not-a-library.so", dir);
  FILE *fp = fopen(path, "w");
  fputs("not ELF\n", fp);
  fclose(fp);
  is_int(dnc_module_load(c, path, &m), DNC_ERR_LOAD, "a file that is not a "
         "library is DNC_ERR_LOAD");
  is_int(dnc_module_load(c, "libm.so.6", &m), DNC_ERR_LOAD,
         "a bare name is a file in the current directory, not a search");
  /* a FIFO: the seal check's open waited for a writer forever (the
   * alarm ends a test that hangs) */
  char fifo[512];
  snprintf(fifo, sizeof fifo, "%s/fifo.so", dir);
  if (!mkfifo(fifo, 0600)) {
    alarm(60);
    is_int(dnc_module_load(c, fifo, &m), DNC_ERR_LOAD,
           "a FIFO is DNC_ERR_LOAD, at once");
    alarm(0);
    ok(strstr(dnc_last_error(), "not a regular file") != NULL,
       "saying so: %s", dnc_last_error());
    unlink(fifo);
  } else {
    skip(2, "cannot make a FIFO");
  }
  /* a real library that is not dnc's: the C library's libm */
  Dl_info info;
  double (*cosp)(double) = cos;
  if (dladdr((void *)cosp, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
    is_int(dnc_module_load(c, info.dli_fname, &m), DNC_ERR_LOAD,
           "a library that is not dnc's is DNC_ERR_LOAD");
    ok(strstr(dnc_last_error(), "not a library written by dnc compile") != NULL,
       "saying so: %s", dnc_last_error());
  } else {
    skip(2, "libm's path is not known");
  }
  setenv("DNC_AOT_CPU", "pentium", 1);
  is_int(dnc_module_load(c, lib, &m), DNC_ERR_LOAD,
         "DNC_AOT_CPU naming a level the library lacks is DNC_ERR_LOAD");
  ok(strstr(dnc_last_error(), "not a level of this library") != NULL,
     "saying so: %s", dnc_last_error());
  unsetenv("DNC_AOT_CPU");
  is_int(dnc_module_load(NULL, lib, &m), DNC_ERR_ARGUMENT, "no context");
  is_int(dnc_module_load(c, lib, NULL), DNC_ERR_ARGUMENT, "no out pointer");
  ok(dnc_module_cpu(NULL) == NULL, "dnc_module_cpu(NULL) is NULL");
  unlink(path);
  dnc_context_free(c);
}

/* issue 20: what can be checked before dlopen runs a library's code is
 * checked: a truncated copy (SIGBUS inside dlopen before), a flipped byte
 * (SIGSEGV, SIGILL or wrong results), an edited embedded source (which
 * disagreed with its own derivatives), a library without the seal (an
 * older dnc's), with its seal never filled in or for another ABI are each
 * refused with DNC_ERR_LOAD and a reason. What strip does is accepted
 * (tests/aot_strip_p11.sh). */
/* f(1) of the library module m's only function, as its f64 forward */
static double f_at_1(dnc_module *m)
{
  double x = 1, y = NAN;
  dnc_tensor tx = {&x, DNC_F64, 1, 1, 0}, ty = {&y, DNC_F64, 1, 1, 0};
  const dnc_function *f = dnc_module_function(m, 0);
  if (!f || dnc_forward(f, &tx, &ty, NULL) != DNC_OK)
    return NAN;
  return y;
}

/* A library rebuilt and renamed over the path of one still loaded (a
 * notebook that compiles again): dlopen had handed back the old image,
 * its old sources and kernels, and DNC_OK */
static void test_reload(const char *build, const char *dir)
{
  char src[512], lib[512], next[512], cmd[2048];
  dnc_context *c = context_for(NULL, 1);
  dnc_module *m1 = NULL, *m2 = NULL, *m3 = NULL;
  snprintf(lib, sizeof lib, "%s/reload.so", dir);
  snprintf(next, sizeof next, "%s/reload.next.so", dir);
  for (int k = 2; k <= 3; k++) {
    snprintf(src, sizeof src, "%s/reload%d.dn", dir, k);
    FILE *fp = fopen(src, "w");
    if (fp) {
      fprintf(fp, "fn f(x) = %d * x\n", k);
      fclose(fp);
    }
    snprintf(cmd, sizeof cmd, "%s/dnc compile %s -o %s --cpu x86-64-v2",
             build, src, k == 2 ? lib : next);
    if (!is_int(system(cmd), 0, "reload: dnc compile of f(x) = %d x", k))
      goto done;
    if (k == 2) {
      is_int(dnc_module_load(c, lib, &m1), DNC_OK, "reload: the first loads");
      unlink(src);
    } else {
      unlink(src);
      ok(!rename(next, lib), "reload: the second renamed over the first");
    }
  }
  is_int(dnc_module_load(c, lib, &m2), DNC_OK,
         "reload: the new file loads while the old one's module lives");
  is_int(dnc_module_load(c, lib, &m3), DNC_OK, "reload: and again");
  ok(m1 && m2 && m3 && f_at_1(m1) == 2 && f_at_1(m2) == 3 &&
         f_at_1(m3) == 3,
     "reload: the old module computes 2 x, the new ones 3 x (%g %g %g)",
     m1 ? f_at_1(m1) : NAN, m2 ? f_at_1(m2) : NAN, m3 ? f_at_1(m3) : NAN);
  char text[256] = "";
  if (m2)
    dnc_function_source(dnc_module_function(m2, 0), text, sizeof text);
  ok(strstr(text, "3 * x") != NULL,
     "reload: the new module's source is the new one: %s", text);
done:
  dnc_module_free(m1);
  dnc_module_free(m2);
  dnc_module_free(m3);
  dnc_context_free(c);
  unlink(lib);
}

static unsigned char *slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  unsigned char *b = malloc((size_t)len + 1);
  *n = b ? fread(b, 1, (size_t)len, f) : 0;
  fclose(f);
  return b;
}

static void damaged(const char *dir, const char *name, const unsigned char *b,
                    size_t n, const char *want)
{
  char path[512];
  snprintf(path, sizeof path, "%s/%s.so", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
  dnc_context *c = dnc_context_new();
  dnc_module *m = NULL;
  is_int(dnc_module_load(c, path, &m), DNC_ERR_LOAD, "%s: DNC_ERR_LOAD", name);
  ok(m == NULL && strstr(dnc_last_error(), want) != NULL, "... saying: %s",
     dnc_last_error());
  dnc_context_free(c);
  unlink(path);
}

static void test_damaged(const char *lib, const char *dir)
{
  size_t n = 0;
  unsigned char *b = slurp(lib, &n);
  if (!ok(b && n > 4096, "the library read back"))
    return;
  damaged(dir, "half", b, n / 2, "truncated?");
  /* the section headers, last in the file: nothing loads them, but a
   * copy cut short loses them first */
  damaged(dir, "short", b, n - 27, "truncated?");
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  c[n / 3] ^= 0x10;
  damaged(dir, "flipped", c, n, "its digest differs");
  memcpy(c, b, n);
  c[5] = 0x2a; /* EI_DATA: neither byte order (was "another architecture") */
  damaged(dir, "byteorder", c, n, "byte order is neither");
  memcpy(c, b, n);
  unsigned char *src = memmem(c, n, "tanh(alpha * x)", 15);
  ok(src != NULL, "the embedded source found");
  if (src)
    memcpy(src, "sinh", 4);
  damaged(dir, "edited", c, n, "its digest differs");
  memcpy(c, b, n);
  /* the seal note's descriptor (compiler/aotseal.c): "DNCSEAL\0", the
   * ABI, the loaded segments, the digest in hex, the dnc version */
  unsigned char *seal = memmem(c, n, "DNCSEAL", 8);
  ok(seal && !memmem(seal + 1, n - (size_t)(seal + 1 - c), "DNCSEAL", 8),
     "one seal in the library");
  if (seal) {
    memset(seal + 16, 0, 16);
    damaged(dir, "unsealed", c, n, "its dnc seal was never filled in");
    memcpy(c, b, n);
    seal[8] = 99;
    damaged(dir, "abi", c, n, "for library ABI 99; this libdnc");
    memcpy(c, b, n);
    seal[0] = 'X';
    damaged(dir, "noseal", c, n, "it has no dnc seal");
  }
  memcpy(c, b, n);
  c[18] = 183; /* e_machine: EM_AARCH64 */
  c[19] = 0;
  damaged(dir, "aarch64", c, n,
          "built for another architecture (ELF machine 183, little-endian)");
  memcpy(c, b, n);
  c[4] = 1; /* EI_CLASS: ELFCLASS32 */
  damaged(dir, "elf32", c, n, "not a 64-bit ELF shared library");
  memcpy(c, b, n);
  c[0] = 0;
  damaged(dir, "notelf", c, n, "not an ELF shared library");
  free(c);
  free(b);
  dnc_context *ctx = dnc_context_new();
  dnc_module *m = NULL;
  is_int(dnc_module_load(ctx, lib, &m), DNC_OK, "the intact library loads");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

int main(void)
{
  const char *build = getenv("DNC_BUILD");
  build = build && *build ? build : "build";
  char dir[] = "/tmp/dnc-test-aot.XXXXXX";
  if (!mkdtemp(dir)) {
    printf("Bail out! no temporary directory\n");
    return 1;
  }
  char lib[512], cmd[2048];
  snprintf(lib, sizeof lib, "%s/norms.so", dir);
  /* the sanitizer runtime must not be preloaded into the C compiler; two
   * threads, whatever the machine: the 13 functions are 4 chunks of up
   * to 4 per level, 12 objects made by either thread (aot.c) */
  snprintf(cmd, sizeof cmd, "DNC_NUM_THREADS=2 %s/dnc compile "
           "examples/norms.dn tests/aot/extra.dn -o %s", build, lib);
  int rc = system(cmd);
  if (!is_int(rc, 0, "dnc compile writes the library")) {
    printf("Bail out! %s failed\n", cmd);
    return 1;
  }
  test_reload(build, dir);
  test_levels(lib);
  test_api(lib);
  test_dlopen(lib);
  test_errors(lib, dir);
  test_damaged(lib, dir);
  unlink(lib);
  rmdir(dir);
  return done_testing();
}
