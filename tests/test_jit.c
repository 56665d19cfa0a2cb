/*
 * test_jit.c - JIT kernels against the interpreter and against the same
 * operations evaluated in C.
 *
 * Two references per function and dtype:
 *   - dnc_rt_eval_f32/f64 (rtmath.c) perform exactly the kernels'
 *     operations one at a time in float or double: the kernels must agree
 *     with them to the bit (NaN with NaN) at every point, specials included;
 *   - the double (long double) interpreter: the error of the f32 and f64
 *     kernels against it is measured (max ulp, max relative error) and
 *     bounded for the published functions.
 * bf16 and f16 kernels compute in f32 with their own, shorter vector
 * math (vmath.c): their output must be the C evaluation in float with
 * that math (jitmath.h's jm_table_lowp) rounded once to nearest even; in
 * a context with math_bits = 24, the f32 kernels' output rounded once.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "jitmath.h"
#include "runtime.h"
#include "tap.h"
#include "ulp.h"

enum { POINTS = 100000 };

static dnc_context *ctx;

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static double uniform(double lo, double hi)
{
  return lo + (hi - lo) * (double)(rnd() >> 11) / 9007199254740992.0;
}

/* ±0, ±inf, NaN, subnormals, the largest values, the overflow and
 * saturation edges of exp and tanh, then random bit patterns (every
 * exponent), [-10, 10] and [-1, 1]. */
static void points_f32(float *x, int n)
{
  static const float special[] = {
      0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, FLT_MIN, -FLT_MIN,
      1e-45f, -1e-45f, 1e-40f, -1e-40f, FLT_MAX, -FLT_MAX, 1e30f, -1e30f,
      88.72f, -88.72f, 89.0f, -103.9f, 9.0f, -9.0f, 1.0f, -1.0f, 0.5f,
      3.14159265f, 1e-8f, -1e-8f, 40.0f, -40.0f};
  int ns = (int)(sizeof special / sizeof special[0]);
  for (int i = 0; i < n; i++) {
    if (i < ns) {
      x[i] = special[i];
      continue;
    }
    switch (i % 5) {
    case 0:
    case 1: {
      uint32_t b = (uint32_t)rnd();
      memcpy(&x[i], &b, 4);
      break;
    }
    case 2:
    case 3: x[i] = (float)uniform(-10, 10); break;
    default: x[i] = (float)uniform(-1, 1); break;
    }
  }
}

static void points_f64(double *x, int n)
{
  static const double special[] = {
      0.0, -0.0, INFINITY, -INFINITY, NAN, DBL_MIN, -DBL_MIN, 5e-324,
      -5e-324, 1e-310, DBL_MAX, -DBL_MAX, 1e300, -1e300, 709.78, -709.78,
      710.0, -745.2, 20.0, -20.0, 1.0, -1.0, 0.5, 1e-17, -1e-17};
  int ns = (int)(sizeof special / sizeof special[0]);
  for (int i = 0; i < n; i++) {
    if (i < ns) {
      x[i] = special[i];
      continue;
    }
    switch (i % 5) {
    case 0:
    case 1: {
      uint64_t b = rnd();
      memcpy(&x[i], &b, 8);
      break;
    }
    case 2:
    case 3: x[i] = uniform(-10, 10); break;
    default: x[i] = uniform(-1, 1); break;
    }
  }
}

static int same32(float a, float b)
{
  if (isnan(a) && isnan(b))
    return 1;
  return memcmp(&a, &b, 4) == 0;
}
static int same64(double a, double b)
{
  if (isnan(a) && isnan(b))
    return 1;
  return memcmp(&a, &b, 8) == 0;
}

/* Errors in ulps of the dtype at the reference value. `work` counts only
 * the working range |x| <= 1e4, where no intermediate of the published
 * functions overflows; `all` every point where kernel and reference are
 * finite (there, x^2 overflowing in f32 where the interpreter's long
 * double does not makes x/sqrt(b + x^2) 0 instead of ±1). */
typedef struct errstat {
  double max_ulp, at_x;
} errstat;
typedef struct errpair {
  errstat all, work;
} errpair;

static void note_err(errpair *s, double u, double x)
{
  if (u > s->all.max_ulp) {
    s->all.max_ulp = u;
    s->all.at_x = x;
  }
  if (fabs(x) <= 1e4 && u > s->work.max_ulp) {
    s->work.max_ulp = u;
    s->work.at_x = x;
  }
}

static void err32(errpair *s, float got, long double ref, double x)
{
  if (!isfinite(ref) || !isfinite(got) || fabsl(ref) > FLT_MAX)
    return;
  note_err(s, (double)(fabsl((long double)got - ref) / ulp32((double)ref)), x);
}

static void err64(errpair *s, double got, long double ref, double x)
{
  if (!isfinite(ref) || !isfinite(got) || fabsl(ref) > DBL_MAX)
    return;
  note_err(s, (double)(fabsl((long double)got - ref) / ulp64(ref)), x);
}

static float round_bf16(float v)
{
  uint32_t b;
  memcpy(&b, &v, 4);
  if (isnan(v))
    b = (b | 0x400000u) & 0xffff0000u;
  else
    b = (b + 0x7fffu + ((b >> 16) & 1)) & 0xffff0000u;
  memcpy(&v, &b, 4);
  return v;
}
static float bf16_to_f32(uint16_t h)
{
  uint32_t b = (uint32_t)h << 16;
  float v;
  memcpy(&v, &b, 4);
  return v;
}
static uint16_t f32_to_bf16_bits(float v)
{
  v = round_bf16(v);
  uint32_t b;
  memcpy(&b, &v, 4);
  return (uint16_t)(b >> 16);
}

/* The derivative of f's body with respect to x (NULL: 0). */
static dnc_node *deriv(dnc_mod *m, dnc_fn *f, int wrt)
{
  dnc_node *d = dnc_diff(&m->dag, f->body, wrt);
  return d ? dnc_simplify(&m->dag, d) : NULL;
}

typedef struct fnreport {
  int mismatches; /* against the C evaluation, all dtypes */
  errpair f32_fwd, f32_bwd, f64_fwd, f64_bwd;
  int lowp_mismatches; /* bf16/f16 against the rounded f32 result */
} fnreport;

/* the math the bf16 and f16 kernels are compared with: [0] bf16, [1] f16 */
static const dnc_rt_fn32 *lowp_math[2];
/* the precision bf16's and f16's kernels compute in: their math_bits (8
 * and 11; 0 in a context with math_bits = 24), which the lowering
 * rewrites see too (rewrite.c: bf16's u / sqrt(v) is u rsqrt(v)) */
static int lowp_bits[2] = {8, 11};

static float *fx, *fy, *fdy, *fdx;
static double *dx64, *dy64, *ddy64, *ddx64;
static uint16_t *hx, *hy, *hdy, *hdx;

static dnc_tensor vec(void *data, dnc_dtype t, int64_t n)
{
  dnc_tensor v = {data, t, 1, n, 0};
  return v;
}

/* Checks f at POINTS points in every dtype; returns 0 when a call failed. */
static int check_function(dnc_module *mod, const dnc_function *f, fnreport *rep)
{
  dnc_mod *m = mod->m;
  dnc_fn *fn = (dnc_fn *)f;
  /* the interpreter's programs, and the kernels' (rewritten) ones for
   * f32 compute and f64 */
  dnc_prog *pf = fn->prog;
  dnc_node *dn = deriv(m, fn, DNC_WRT_X);
  dnc_prog *pd = dn ? dnc_prog_build(&m->dag, m->arena, dn) : NULL;
  dnc_prog *kf32 = dnc_rt_prog(m, fn->body, 0, 0, jm_target);
  dnc_prog *kd32 = dn ? dnc_rt_prog(m, dn, 0, 0, jm_target) : NULL;
  dnc_prog *kf64 = dnc_rt_prog(m, fn->body, 1, 0, jm_target);
  dnc_prog *kd64 = dn ? dnc_rt_prog(m, dn, 1, 0, jm_target) : NULL;
  double p[DNC_MAX_PARAMS];
  float p32[DNC_MAX_PARAMS];
  for (int k = 0; k < fn->nparams; k++) {
    p[k] = fn->params[k].def;
    p32[k] = (float)p[k];
  }
  int n = POINTS;
  for (int i = 0; i < n; i++)
    fdy[i] = 1.0f, ddy64[i] = 1.0;

  /* f32 */
  points_f32(fx, n);
  dnc_tensor tx = vec(fx, DNC_F32, n), ty = vec(fy, DNC_F32, n),
             tdy = vec(fdy, DNC_F32, n), tdx = vec(fdx, DNC_F32, n);
  if (dnc_forward(f, &tx, &ty, p) || dnc_backward(f, &tx, &tdy, &tdx, p, NULL))
    return 0;
  for (int i = 0; i < n; i++) {
    float ef = dnc_rt_eval_f32(kf32, fx[i], p32, jm_table);
    float ed = pd ? dnc_rt_eval_f32(kd32, fx[i], p32, jm_table) : 0.0f;
    if (!same32(fy[i], ef) || !same32(fdx[i], ed)) {
      if (rep->mismatches++ < 3)
        diag("%s f32 at x = %.9g: kernel %.9g %.9g, C %.9g %.9g", fn->name,
             fx[i], fy[i], fdx[i], ef, ed);
    }
    err32(&rep->f32_fwd, fy[i], dnc_prog_eval(pf, fx[i], p), fx[i]);
    if (pd)
      err32(&rep->f32_bwd, fdx[i], dnc_prog_eval(pd, fx[i], p), fx[i]);
  }

  /* bf16 and f16: the f32 evaluation with their math at the same
   * (representable) input, rounded once */
  for (int dt = DNC_BF16; dt <= DNC_F16; dt++) {
    for (int i = 0; i < n; i++) {
      if (dt == DNC_BF16) {
        hx[i] = f32_to_bf16_bits(fx[i]);
        fx[i] = bf16_to_f32(hx[i]);
        hdy[i] = 0x3f80; /* 1.0 */
      } else {
        _Float16 h = (_Float16)fx[i];
        memcpy(&hx[i], &h, 2);
        fx[i] = (float)h;
        h = 1.0f16;
        memcpy(&hdy[i], &h, 2);
      }
    }
    dnc_tensor hxt = vec(hx, (dnc_dtype)dt, n), hyt = vec(hy, (dnc_dtype)dt, n),
               hdyt = vec(hdy, (dnc_dtype)dt, n), hdxt = vec(hdx, (dnc_dtype)dt, n);
    if (dnc_forward(f, &hxt, &hyt, p) || dnc_backward(f, &hxt, &hdyt, &hdxt, p, NULL))
      return 0;
    const dnc_rt_fn32 *lm = lowp_math[dt == DNC_F16];
    int bits = lowp_bits[dt == DNC_F16];
    dnc_prog *kfl = dnc_rt_prog(m, fn->body, 0, bits, jm_target);
    dnc_prog *kdl = dn ? dnc_rt_prog(m, dn, 0, bits, jm_target) : NULL;
    for (int i = 0; i < n; i++) {
      fy[i] = dnc_rt_eval_f32(kfl, fx[i], p32, lm);
      fdx[i] = pd ? dnc_rt_eval_f32(kdl, fx[i], p32, lm) : 0.0f;
    }
    for (int i = 0; i < n; i++) {
      float got_y, got_dx, want_y, want_dx;
      if (dt == DNC_BF16) {
        got_y = bf16_to_f32(hy[i]);
        got_dx = bf16_to_f32(hdx[i]);
        want_y = round_bf16(fy[i]);
        want_dx = round_bf16(fdx[i]);
      } else {
        _Float16 a, b;
        memcpy(&a, &hy[i], 2);
        memcpy(&b, &hdx[i], 2);
        got_y = (float)a;
        got_dx = (float)b;
        want_y = (float)(_Float16)fy[i];
        want_dx = (float)(_Float16)fdx[i];
      }
      if (!same32(got_y, want_y) || !same32(got_dx, want_dx)) {
        if (rep->lowp_mismatches++ < 3)
          diag("%s %s at x = %.9g: kernel %.9g %.9g, C rounded %.9g %.9g",
               fn->name, dt == DNC_BF16 ? "bf16" : "f16", fx[i], got_y,
               got_dx, want_y, want_dx);
      }
    }
  }

  /* f64 */
  points_f64(dx64, n);
  dnc_tensor ux = vec(dx64, DNC_F64, n), uy = vec(dy64, DNC_F64, n),
             udy = vec(ddy64, DNC_F64, n), udx = vec(ddx64, DNC_F64, n);
  if (dnc_forward(f, &ux, &uy, p) || dnc_backward(f, &ux, &udy, &udx, p, NULL))
    return 0;
  for (int i = 0; i < n; i++) {
    double ef = dnc_rt_eval_f64(kf64, dx64[i], p, jm_table64);
    double ed = pd ? dnc_rt_eval_f64(kd64, dx64[i], p, jm_table64) : 0.0;
    if (!same64(dy64[i], ef) || !same64(ddx64[i], ed)) {
      if (rep->mismatches++ < 3)
        diag("%s f64 at x = %.17g: kernel %.17g %.17g, C %.17g %.17g",
             fn->name, dx64[i], dy64[i], ddx64[i], ef, ed);
    }
    err64(&rep->f64_fwd, dy64[i], dnc_prog_eval(pf, dx64[i], p), dx64[i]);
    if (pd)
      err64(&rep->f64_bwd, ddx64[i], dnc_prog_eval(pd, dx64[i], p), dx64[i]);
  }
  return 1;
}

static void merge1(errstat *a, const errstat *b)
{
  if (b->max_ulp > a->max_ulp)
    *a = *b;
}
static void merge(errpair *a, const errpair *b)
{
  merge1(&a->all, &b->all);
  merge1(&a->work, &b->work);
}

static char *read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s)
    s[n] = 0;
  fclose(f);
  return s;
}

/* Accuracy bounds of the examples against the interpreter, in ulps for
 * |x| <= 1e4: {forward, backward}; the f32 ones include the vector math's
 * own error (docs/accuracy.md) and the rounding of alpha * x before it.
 * derf's backward, exp(-u^2), is exact to a few ulp because codegen
 * carries the rounding error of u^2 (lw_math). The larger ones:
 *   dyisru, isru, algebraic: the derivative of x/sqrt(b + x^2) is built
 *     as b/(v sqrt v), v = b + x^2 (diff.c), not as the quotient rule's
 *     (1 - (x/t)^2)/t, which cancels where x^2 >> b (690,000 ulp). */
struct bound {
  const char *name;
  double f32[2], f64[2];
};
static const struct bound bounds[] = {
    {"dyt", {1.5, 4}, {3, 6}},        {"tanh_plain", {1.5, 4}, {3, 6}},
    {"derf", {2, 3}, {2, 2}},         {"derf_pc", {2, 3}, {2, 2}},
    {"dyisru", {3, 4}, {3, 4}},       {"isru", {3, 5}, {3, 5}},
    {"algebraic", {3, 5}, {3, 5}},  {"arctan", {2.5, 3}, {2, 3}},
    {"satursin", {1.5, 1.5}, {1, 1}}, {"asinh_clip", {1.5, 3}, {2, 3}},
    {"sine", {1.5, 1.5}, {1, 1}},     {"linear", {0, 0}, {0, 0}},
};

static const struct bound *bound_of(const char *name)
{
  for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
    if (!strcmp(bounds[i].name, name))
      return &bounds[i];
  return NULL;
}

/* The published functions: bitwise against C, bounded against the
 * interpreter. */
static void test_examples(void)
{
  char *src = read_file("examples/norms.dn");
  if (!ok(src != NULL, "examples/norms.dn is readable"))
    return;
  dnc_module *mod;
  dnc_status st = dnc_compile_string(ctx, "norms.dn", src, strlen(src), &mod);
  free(src);
  if (!is_int(st, DNC_OK, "examples/norms.dn compiles"))
    return;
  int nf = dnc_module_function_count(mod);
  for (int i = 0; i < nf; i++) {
    const dnc_function *f = dnc_module_function(mod, i);
    fnreport r = {0};
    int called = check_function(mod, f, &r);
    const char *name = dnc_function_name(f);
    ok(called && r.mismatches == 0 && r.lowp_mismatches == 0,
       "%s: f32, f64, bf16, f16 forward and backward at %d points each "
       "match the C evaluation bit for bit (%d, %d differ)",
       name, POINTS, r.mismatches, r.lowp_mismatches);
    diag("%-10s max ulp |x|<=1e4: f32 fwd %.2f bwd %.2f, f64 fwd %.2f bwd "
         "%.2f; all x: f32 %.3g %.3g (x=%.3g), f64 %.3g %.3g",
         name, r.f32_fwd.work.max_ulp, r.f32_bwd.work.max_ulp,
         r.f64_fwd.work.max_ulp, r.f64_bwd.work.max_ulp,
         r.f32_fwd.all.max_ulp, r.f32_bwd.all.max_ulp, r.f32_bwd.all.at_x,
         r.f64_fwd.all.max_ulp, r.f64_bwd.all.max_ulp);
    const struct bound *b = bound_of(name);
    if (!b) {
      ok(0, "%s: no stated accuracy bound", name);
      continue;
    }
    ok(r.f32_fwd.work.max_ulp <= b->f32[0] && r.f64_fwd.work.max_ulp <= b->f64[0],
       "%s: forward within %g ulp (f32) and %g ulp (f64) of the interpreter "
       "for |x| <= 1e4", name, b->f32[0], b->f64[0]);
    if (b->f32[1] >= 0)
      ok(r.f32_bwd.work.max_ulp <= b->f32[1] && r.f64_bwd.work.max_ulp <= b->f64[1],
         "%s: backward within %g ulp (f32) and %g ulp (f64) of the interpreter "
         "for |x| <= 1e4", name, b->f32[1], b->f64[1]);
  }
  dnc_module_free(mod);
}

/* math_bits = 24: f32's vector math in the bf16 and f16 kernels too,
 * whose outputs are then the f32 evaluation rounded once */
static void test_full_math(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.math_bits = 24;
  dnc_context *full;
  if (!is_int(dnc_context_create(&o, &full), DNC_OK, "a context with math_bits = 24"))
    return;
  o.math_bits = 12;
  dnc_context *bad = NULL;
  is_int(dnc_context_create(&o, &bad), DNC_ERR_ARGUMENT, "math_bits = 12: DNC_ERR_ARGUMENT");
  char *src = read_file("examples/norms.dn");
  dnc_module *mod = NULL;
  if (src && !dnc_compile_string(full, "norms.dn", src, strlen(src), &mod)) {
    const dnc_rt_fn32 *saved[2] = {lowp_math[0], lowp_math[1]};
    lowp_math[0] = lowp_math[1] = jm_table;
    lowp_bits[0] = lowp_bits[1] = 0;
    int bad_fns = 0, n = dnc_module_function_count(mod);
    for (int i = 0; i < n; i++) {
      fnreport r = {0};
      bad_fns += !check_function(mod, dnc_module_function(mod, i), &r) || r.mismatches ||
                 r.lowp_mismatches;
    }
    lowp_math[0] = saved[0];
    lowp_math[1] = saved[1];
    lowp_bits[0] = 8;
    lowp_bits[1] = 11;
    ok(n > 0 && bad_fns == 0, "math_bits = 24: the published functions' bf16 and f16 "
       "kernels give the f32 evaluation rounded once (%d of %d differ)", bad_fns, n);
  } else {
    ok(0, "examples/norms.dn compiles with math_bits = 24");
  }
  free(src);
  dnc_module_free(mod);
  dnc_context_free(full);
}

/* sigmoid(a) * sigmoid(-a) is lowered as e/(1+e)^2 from one exp (lw_mul
 * in codegen.c, sigmoid_pair in rtmath.c) when b = -a is recognised: a
 * negation, or opposite constant factors of the same term; not otherwise.
 * Kernels and the C evaluation must agree to the bit whichever way each
 * recognises a pair, and sigmoid(x) sigmoid(-x) stays within 4.5 ulp of
 * the interpreter in f32 and f64. */
static void test_sigmoid_pairs(void)
{
  static const char src[] =
      "fn neg(x; a = 1.5) = sigmoid(a * x) * sigmoid(-(a * x))\n"
      "fn plain(x) = sigmoid(x) * sigmoid(-x)\n"
      "fn consts(x) = sigmoid(3 * x) * sigmoid(-3 * x)\n"
      "fn other(x) = sigmoid(3 * x) * sigmoid(-2 * x)\n"
      "fn dsig(x; b = 0.7) = sigmoid(b * x + 1)\n";
  dnc_module *mod;
  if (!is_int(dnc_compile_string(ctx, "pairs.dn", src, strlen(src), &mod), DNC_OK,
              "the sigmoid pairs compile"))
    return;
  for (int i = 0; i < dnc_module_function_count(mod); i++) {
    const dnc_function *f = dnc_module_function(mod, i);
    fnreport r = {0};
    int called = check_function(mod, f, &r);
    const char *name = dnc_function_name(f);
    ok(called && r.mismatches == 0 && r.lowp_mismatches == 0,
       "%s: kernels match the C evaluation bit for bit (%d, %d differ)", name,
       r.mismatches, r.lowp_mismatches);
    /* the others' errors are mostly their arguments' rounding, which the
     * pair's condition number (about |a|) multiplies */
    if (!strcmp(name, "plain"))
      ok(r.f32_fwd.work.max_ulp <= 4.5 && r.f64_fwd.work.max_ulp <= 4.5,
         "plain: sigmoid(x) sigmoid(-x) within 4.5 ulp of the interpreter "
         "(f32 %.2f, f64 %.2f)", r.f32_fwd.work.max_ulp, r.f64_fwd.work.max_ulp);
  }
  dnc_module_free(mod);
}

static void test_corpus(int count)
{
  char buf[8192];
  int bad = 0, lowp_bad = 0, compiled = 0, failed_calls = 0;
  errpair f32f = {0}, f32b = {0}, f64f = {0}, f64b = {0};
  for (int i = 0; i < count; i++) {
    corpus_function(1, i, buf, sizeof buf);
    dnc_module *mod;
    if (dnc_compile_string(ctx, "corpus", buf, strlen(buf), &mod)) {
      dnc_module_free(mod);
      continue;
    }
    compiled++;
    fnreport r = {0};
    if (!check_function(mod, dnc_module_function(mod, 0), &r))
      failed_calls++;
    if (r.mismatches && bad++ < 3)
      diag("C evaluation mismatch in %s", buf);
    if (r.lowp_mismatches && lowp_bad++ < 3)
      diag("bf16/f16 mismatch in %s", buf);
    merge(&f32f, &r.f32_fwd);
    merge(&f32b, &r.f32_bwd);
    merge(&f64f, &r.f64_fwd);
    merge(&f64b, &r.f64_bwd);
    dnc_module_free(mod);
  }
  ok(compiled == count && failed_calls == 0,
     "%d random functions compile and run (%d compiled, %d failed calls)",
     count, compiled, failed_calls);
  ok(bad == 0, "random functions: f32 and f64 kernels match the C evaluation "
               "bit for bit at %d points each (%d functions differ)",
     POINTS, bad);
  ok(lowp_bad == 0, "random functions: bf16 and f16 kernels give the f32 "
                    "result rounded once (%d functions differ)", lowp_bad);
  diag("random functions against the interpreter, |x| <= 1e4, where both "
       "are finite (ill-conditioned points included): max ulp f32 %.3g fwd, "
       "%.3g bwd; f64 %.3g fwd, %.3g bwd",
       f32f.work.max_ulp, f32b.work.max_ulp, f64f.work.max_ulp,
       f64b.work.max_ulp);
}

int main(void)
{
  ctx = dnc_context_new();
  if (!ctx) {
    printf("Bail out! no context: %s\n", dnc_last_error());
    return 1;
  }
  fx = malloc(sizeof *fx * POINTS);
  fy = malloc(sizeof *fy * POINTS);
  fdy = malloc(sizeof *fdy * POINTS);
  fdx = malloc(sizeof *fdx * POINTS);
  dx64 = malloc(sizeof *dx64 * POINTS);
  dy64 = malloc(sizeof *dy64 * POINTS);
  ddy64 = malloc(sizeof *ddy64 * POINTS);
  ddx64 = malloc(sizeof *ddx64 * POINTS);
  hx = malloc(2 * POINTS);
  hy = malloc(2 * POINTS);
  hdy = malloc(2 * POINTS);
  hdx = malloc(2 * POINTS);
  if (!jm_init(ctx)) {
    printf("Bail out! the vector math kernels do not compile: %s\n", dnc_last_error());
    return 1;
  }
  const char *env = getenv("DNC_JIT_CORPUS");
  int count = env ? atoi(env) : 100;

  lowp_math[0] = jm_table_lowp[0];
  lowp_math[1] = jm_table_lowp[1];
  test_examples();
  test_full_math();
  test_sigmoid_pairs();
  test_corpus(count);

  free(fx); free(fy); free(fdy); free(fdx);
  free(dx64); free(dy64); free(ddy64); free(ddx64);
  free(hx); free(hy); free(hdy); free(hdx);
  jm_free();
  dnc_context_free(ctx);
  return done_testing();
}
