/*
 * test_diff.c - derivatives checked against finite differences in long
 * double: every built-in at many points; a seeded corpus of 1,000 random
 * functions, first and second derivatives with respect to x and each
 * parameter; the conventions at non-differentiable points; the node bound
 * for a 6th derivative; and the simplifier's IEEE promises.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "corpus.h"
#include "tap.h"
#include "testlib.h"

typedef long double ld;

/* value of `e` at x, parameters p (k >= 0: p[k] moved by dp) */
static ld at(dnc_mod *m, dnc_node *e, ld x, const double *p, int np, int k,
             ld dp)
{
  double q[8];
  for (int i = 0; i < np; i++)
    q[i] = p[i];
  ld xx = x;
  if (k >= 0)
    q[k] = (double)((ld)p[k] + dp);
  dnc_arena *a = dnc_arena_new();
  dnc_prog *pr = dnc_prog_build(&m->dag, a, e);
  ld v = dnc_prog_eval(pr, xx, q);
  dnc_arena_free(a);
  return v;
}

/* 4th-order central difference of e with respect to x (k < 0) or p[k].
 * A parameter step is rounded to double, so the step actually taken is
 * used. */
static ld fd(dnc_mod *m, dnc_node *e, ld x, const double *p, int np, int k,
             ld h)
{
  if (k < 0) {
    ld f1 = at(m, e, x + h, p, np, -1, 0), f_1 = at(m, e, x - h, p, np, -1, 0);
    ld f2 = at(m, e, x + 2 * h, p, np, -1, 0), f_2 = at(m, e, x - 2 * h, p, np, -1, 0);
    return (8 * (f1 - f_1) - (f2 - f_2)) / (12 * h);
  }
  double hp = (double)((ld)p[k] + h) - p[k]; /* the representable step */
  ld f1 = at(m, e, x, p, np, k, hp), f_1 = at(m, e, x, p, np, k, -hp);
  ld f2 = at(m, e, x, p, np, k, 2 * hp), f_2 = at(m, e, x, p, np, k, -2 * hp);
  return (8 * (f1 - f_1) - (f2 - f_2)) / (12 * (ld)hp);
}

/* Compares d(e)/d(var) with finite differences at x. Returns 1 when
 * checked and within tol, 0 when wrong, -1 when the point is not regular
 * (not finite, or the differences at h and h/2 disagree: a kink, a jump,
 * or cancellation the difference cannot resolve). */
static int check_point(dnc_mod *m, dnc_node *e, dnc_node *de, ld x,
                       const double *p, int np, int k, double tol, ld *err)
{
  /* the step follows |x| down to 0.01, so that it stays well inside the
   * distance to a pole at 0 (log, 1/x) */
  ld scale = k < 0 ? fmaxl(0.01L, fabsl(x)) : fmaxl(1, fabs(p[k]));
  ld h = 2e-4L * scale;
  ld d = at(m, de, x, p, np, -1, 0);
  ld f0 = at(m, e, x, p, np, -1, 0);
  ld a1 = fd(m, e, x, p, np, k, h), a2 = fd(m, e, x, p, np, k, h / 2);
  if (!isfinite(f0) || !isfinite(d) || !isfinite(a1) || !isfinite(a2))
    return -1;
  ld mag = 1 + fabsl(a2) + fabsl(f0) / scale;
  if (fabsl(a1 - a2) > 1e-7L * mag)
    return -1;
  *err = fabsl(d - a2) / mag;
  return *err <= tol;
}

static const char *const builtins[] = {
    "abs(x)", "sign(x)", "min(x, 0.3)", "max(0.3, x)", "clamp(x, -0.7, 0.9)",
    "exp(x)", "expm1(x)", "log(x)", "log1p(x)", "sqrt(x)", "rsqrt(x)",
    "tanh(x)", "sinh(x)", "cosh(x)", "asinh(x)", "atan(x)", "erf(x)",
    "erfc(x)", "sigmoid(x)", "softplus(x)", "sin(x)", "cos(x)", "x^3",
    "x^-2", "x^0.5", "2^x", "x^x", "-x", "x + 2", "x - 2", "3 * x", "x / 3",
    "3 / x", "if x > 0.1 then x^2 else -x",
};

static void test_builtins(void)
{
  /* points on both sides of 0, small and large, avoiding the kinks */
  static const ld xs[] = {-6.5, -3.1, -1.7, -0.9, -0.45, -0.13, -0.011, 0.017,
                          0.21, 0.55, 0.83, 1.3, 2.2, 3.7, 5.9, 11.3, 25.7};
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++) {
    char src[128];
    snprintf(src, sizeof src, "fn f(x) = %s", builtins[i]);
    dnc_mod *m = build(src);
    if (!m) {
      ok(0, "%s builds", builtins[i]);
      continue;
    }
    dnc_node *e = m->fns[0]->body;
    dnc_node *d1 = dnc_diff(&m->dag, e, DNC_WRT_X);
    dnc_node *d2 = dnc_diff(&m->dag, d1, DNC_WRT_X);
    int checked = 0, bad = 0;
    ld worst = 0, err;
    for (size_t k = 0; k < sizeof xs / sizeof *xs; k++) {
      for (int order = 1; order <= 2; order++) {
        int r = check_point(m, order == 1 ? e : d1, order == 1 ? d1 : d2, xs[k],
                            NULL, 0, -1, 1e-9, &err);
        if (r < 0)
          continue;
        checked++;
        bad += !r;
        if (err > worst)
          worst = err;
      }
    }
    /* log, sqrt, x^0.5... are checked on the positive half only */
    ok(bad == 0 && checked >= 16,
       "d/dx and d2/dx2 of %s match finite differences at %d points (worst "
       "relative error %.1Le, tolerance 1e-9)", builtins[i], checked, worst);
    dnc_mod_free(m);
  }
}

static void test_corpus(void)
{
  enum { N = 1000, POINTS = 12 };
  const double p[3] = {0.75, 1.25, -0.5};
  int exprs_checked = 0, exprs_bad = 0, points = 0, worst_fn = -1;
  ld worst = 0;
  char buf[8192];
  for (int i = 0; i < N; i++) {
    corpus_function(1, i, buf, sizeof buf);
    dnc_mod *m = build(buf);
    if (!m) {
      exprs_bad++;
      continue;
    }
    dnc_node *e = m->fns[0]->body;
    corpus_rng r = {(uint64_t)i * 7919 + 17};
    int checked = 0, bad = 0;
    for (int var = -1; var < 3; var++) {
      dnc_node *d1 = dnc_diff(&m->dag, e, var);
      /* second derivative: d/dx of d1 (mixed when var is a parameter) */
      dnc_node *d2 = dnc_diff(&m->dag, d1, DNC_WRT_X);
      /* each pair: a function, its derivative, the variable */
      dnc_node *const pairs[2][2] = {{e, d1}, {d1, d2}};
      const int vars[2] = {var, DNC_WRT_X};
      for (int t = 0; t < POINTS; t++) {
        ld x = ((ld)(corpus_next(&r) % 2000001) - 1000000) / 250000.0L; /* [-4, 4] */
        for (int k = 0; k < 2; k++) {
          ld err;
          int res = check_point(m, pairs[k][0], pairs[k][1], x, p, 3, vars[k],
                                1e-6, &err);
          if (res < 0)
            continue;
          checked++;
          bad += !res;
          if (err > worst) {
            worst = err;
            worst_fn = i;
          }
        }
      }
    }
    points += checked;
    if (checked > 0)
      exprs_checked++;
    if (bad) {
      exprs_bad++;
      if (exprs_bad <= 5)
        diag("derivative mismatch in %s", buf);
    }
    dnc_mod_free(m);
  }
  ok(exprs_bad == 0, "1,000 random functions: first and second derivatives "
                     "(x and a, b, c) match finite differences (%d bad)",
     exprs_bad);
  ok(exprs_checked >= 950, "%d of 1,000 random functions had regular points "
                           "to check", exprs_checked);
  diag("corpus: %d point checks; worst relative error %.2Le (function r%d)",
       points, worst, worst_fn);
}

static double eval_node(dnc_mod *m, dnc_node *e, double x)
{
  double p[4] = {0};
  for (int i = 0; i < m->fns[0]->nparams; i++)
    p[i] = m->fns[0]->params[i].def;
  return (double)at(m, e, x, p, m->fns[0]->nparams, -1, 0);
}

static void test_conventions(void)
{
  static const struct {
    const char *src;
    double x, want;
    const char *what;
  } cases[] = {
      {"fn f(x) = abs(x)", 0.0, 0.0, "abs'(0) = 0"},
      {"fn f(x) = abs(x)", -0.0, 0.0, "abs'(-0) = 0"},
      {"fn f(x) = abs(x)", -2.0, -1.0, "abs'(-2) = -1"},
      {"fn f(x) = sign(x)", 0.5, 0.0, "sign' = 0"},
      {"fn f(x) = 3 * sign(x) + x", 0.0, 1.0, "sign' = 0 inside a sum"},
      {"fn f(x) = min(x, 1)", 1.0, 1.0, "min tie: the gradient goes to the first operand"},
      {"fn f(x) = min(1, x)", 1.0, 0.0, "min tie, x second: no gradient to x"},
      {"fn f(x) = min(2 * x, x + 1)", 1.0, 2.0, "min tie between two uses of x: the first"},
      {"fn f(x) = max(x, 1)", 1.0, 1.0, "max tie: the first operand"},
      {"fn f(x) = max(1, x)", 1.0, 0.0, "max tie, x second"},
      {"fn f(x) = max(x, 1)", 0.5, 0.0, "max selects 1 below"},
      {"fn f(x) = clamp(x, -1, 1)", -1.0, 1.0, "clamp at the lower edge: gradient to x"},
      {"fn f(x) = clamp(x, -1, 1)", 1.0, 1.0, "clamp at the upper edge: gradient to x"},
      {"fn f(x) = clamp(x, -1, 1)", 1.5, 0.0, "clamp above: none"},
      {"fn f(x) = clamp(x, -1, 1)", -1.5, 0.0, "clamp below: none"},
      {"fn f(x; a = 1) = clamp(x, -a, a)", 0.0, 1.0, "clamp inside"},
      {"fn f(x) = if x > 0 then x^2 else 3 * x", 0.0, 3.0, "if at the switch: the branch taken"},
      {"fn f(x) = if x > 0 then x^2 else 3 * x", 2.0, 4.0, "if: the then branch"},
      {"fn f(x) = if x > 0 then 1 else 2", 5.0, 0.0, "if: the condition is not differentiated"},
      /* u^0 is 1 for every u: no term, not 0 * u^(-1) * u' (NaN at u = 0) */
      {"fn f(x) = x^0", 0.0, 0.0, "x^0 has derivative 0 at 0"},
      {"fn f(x) = x^(1 - 1)", 0.0, 0.0, "x^(1 - 1) has derivative 0 at 0"},
      {"fn f(x) = log(x)^0 + x", 0.0, 1.0, "log(x)^0 + x has derivative 1 at 0"},
      {"fn f(x) = log(x)^0 + x", -1.0, 1.0, "log(x)^0 + x has derivative 1 at -1"},
      {"fn f(x) = tanh(x)", 30.0, 3.5392166965739962e-26, "tanh'(30) keeps its digits (4e^-60)"},
      {"fn f(x) = sigmoid(x)", 40.0, 4.2483542552915889e-18, "sigmoid'(40) keeps its digits"},
      {"fn f(x) = expm1(x)", -40.0, 4.2483542552915889e-18, "expm1'(-40) = e^-40"},
      /* log(cosh)' = tanh, log(sigmoid)' = sigmoid(-x): sinh/cosh was
       * inf/inf = NaN where cosh overflows, sigmoid'/sigmoid 0/0 */
      {"fn f(x) = log(cosh(x))", 1000.0, 1.0, "log(cosh)'(1000) = tanh(1000) = 1"},
      {"fn f(x) = log(sigmoid(x))", -1000.0, 1.0, "log(sigmoid)'(-1000) = 1"},
      {"fn f(x) = log(sigmoid(x))", 3.0, 0.04742587317756678, "log(sigmoid)'(3) = sigmoid(-3)"},
      /* an odd extension sign(x) g(|x|), continuous at 0, has the slope
       * g'(0) there, not sign(0)^2 g'(0) = 0 (NaN for |x|^p, p < 1) */
      {"fn f(x) = sign(x) * log1p(abs(x))", 0.0, 1.0, "symlog: slope 1 at 0"},
      {"fn f(x) = sign(x) * log1p(abs(x))", -0.0, 1.0, "symlog: slope 1 at -0"},
      {"fn f(x) = sign(x) * log1p(abs(x))", -3.0, 0.25, "symlog: 1 / (1 + |x|) at -3"},
      {"fn f(x; a = 2) = 2 * sign(x) * (1 - exp(-a * abs(x)))", 0.0, 4.0,
       "c sign(x) g(|x|): c g'(0) at 0"},
      {"fn f(x) = -sign(x) * expm1(-abs(x))", 0.0, 1.0, "-sign(x) expm1(-|x|): 1 at 0"},
      {"fn f(x; a = 3) = sign(x) * log1p(a * abs(x)) / a", 0.0, 1.0, "sign(x) log1p(a |x|) / a: 1 at 0"},
      {"fn f(x) = sign(x) * abs(x)^0.5", 0.0, INFINITY, "sign(x) |x|^0.5: inf at 0, not NaN"},
      {"fn f(x) = sign(x) * abs(x)^0.5", 4.0, 0.25, "sign(x) |x|^0.5: 0.25 at 4"},
      {"fn f(x) = sign(x) * (1 + abs(x))", 0.0, 0.0, "sign(x) (1 + |x|), a jump at 0: sign' = 0 there"},
      {"fn f(x) = sign(x) * (1 + abs(x))", -2.0, 1.0, "sign(x) (1 + |x|): 1 beside it"},
      {"fn f(x) = sign(x) * (abs(x) + x)", 0.0, 0.0, "sign(x) (|x| + x): the product rule's"},
      /* c's factors in any order and of any form: sign(x) a, a b sign(x),
       * -a sign(x), sign(x) / a, exp(a) sign(x) (0 at 0, as if a jump) */
      {"fn f(x; a = 2) = sign(x) * a * expm1(-abs(x))", 0.0, -2.0, "sign(x) a g(|x|): a g'(0) at 0"},
      {"fn f(x; a = 2) = -a * sign(x) * expm1(-a * abs(x))", 0.0, 4.0, "-a sign(x) g(|x|): 4 at 0"},
      {"fn f(x; a = 2, b = 3) = a * b * sign(x) * log1p(abs(x))", -0.0, 6.0, "a b sign(x) g(|x|): 6 at -0"},
      {"fn f(x; a = 2) = sign(x) / a * log1p(abs(x))", 0.0, 0.5, "sign(x) / a g(|x|): 1 / a at 0"},
      {"fn f(x; a = 2) = exp(a) * sign(x) * tanh(abs(x))", 0.0, 7.38905609893065, "exp(a) sign(x) g(|x|): exp(a) at 0"},
      {"fn f(x; a = 2) = sign(x) * a * log1p(abs(x))", -3.0, 0.5, "sign(x) a g(|x|) at -3"},
      /* abs(k u) with k not depending on the variable, |k| abs(u):
       * abs(a * x) as a * abs(x) (it had the product rule's 0 at 0) */
      {"fn f(x; a = 2) = sign(x) * log1p(abs(a * x)) / a", 0.0, 1.0, "sign(x) log1p(|a x|) / a: 1 at 0"},
      {"fn f(x; a = -2) = sign(x) * log1p(abs(a * x))", 0.0, 2.0, "sign(x) log1p(|a x|), a < 0: |a| at 0"},
      {"fn f(x; a = -2) = sign(x) * log1p(abs(a * x))", -3.0, 2.0 / 7.0, "sign(x) log1p(|a x|) at -3"},
      {"fn f(x; b = 4) = sign(x) * tanh(abs(x / b))", -0.0, 0.25, "sign(x) tanh(|x / b|): 1 / b at -0"},
      {"fn f(x; a = 2) = sign(x) * (abs(x) + abs(a * x))", 0.0, 3.0, "abs(x) and abs(a x) in one v"},
      /* nested: the inner one, differentiated by |x| in the outer's v,
       * keeps its sign(x) (it lost it: the wrong sign for x < 0) */
      {"fn f(x) = sign(x) * log1p(abs(sign(x) * log1p(abs(x))))", -1.0, 0.2953080545748206,
       "nested odd extensions: the right sign at -1"},
      {"fn f(x) = sign(x) * log1p(abs(sign(x) * log1p(abs(x))))", 2.0, 0.1588351193468348,
       "nested odd extensions at 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    dnc_mod *m = build(cases[i].src);
    if (!m) {
      ok(0, "%s builds", cases[i].src);
      continue;
    }
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    is_double(eval_node(m, d, cases[i].x), cases[i].want, 1e-15, "%s", cases[i].what);
    dnc_mod_free(m);
  }
  /* second derivatives that log(f)' = f'/f would make cancel: sech^2(20)
   * from cosh^2 - sinh^2 lost every digit in double */
  static const struct {
    const char *src;
    double x, want;
  } second[] = {
      {"fn f(x) = log(cosh(x))", 20.0, 1.6993417021166355e-17},
      {"fn f(x; a = 2) = log(cosh(a * x))", 10.0, 4 * 1.6993417021166355e-17},
      {"fn f(x) = log(sigmoid(x))", -40.0, -4.2483542552915889e-18},
  };
  for (size_t i = 0; i < sizeof second / sizeof *second; i++) {
    dnc_mod *m = build(second[i].src);
    dnc_node *d1 = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    dnc_node *d2 = dnc_diff(&m->dag, d1, DNC_WRT_X);
    is_double(eval_node(m, d2, second[i].x), second[i].want, 1e-14,
              "%s: f''(%g) keeps its digits", second[i].src, second[i].x);
    dnc_mod_free(m);
  }
  /* every odd extension of a sum gets its slope at 0, not the first
   * 256 only (a limit on their number, since dropped) */
  {
    char *src = malloc(20000);
    size_t n = (size_t)sprintf(src, "fn f(x) = ");
    for (int i = 1; i <= 300; i++)
      n += (size_t)sprintf(src + n, "%ssign(x) * log1p(%d * abs(x))", i > 1 ? " + " : "", i);
    dnc_mod *m = build(src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    is_double(eval_node(m, d, 0.0), 45150.0, 1e-15, "300 odd extensions summed: slope 45150 at 0");
    dnc_mod_free(m);
    free(src);
  }
  /* odd extensions whose sign and abs are of different but proportional
   * arguments, an odd power of sign, abs within g and nested odd
   * extensions: each is continuous and differentiable at 0, with the
   * slope g'(0+) there, where the product rule's sign(0) made it 0; and
   * a parameter's derivative where the function is 0 for every value of
   * it (abs(a x)^0.5 at x = 0: it was 0 * inf = NaN) */
  {
    static const struct {
      const char *src;
      int wrt;
      double x, want;
      const char *what;
    } odd[] = {
        {"fn f(x; a = 1.5) = sign(a * x) * log1p(abs(2 * a * x))", DNC_WRT_X, 0.0, 3.0,
         "sign(a x) log1p(|2 a x|): 2a at 0"},
        {"fn f(x; a = 1.5) = sign(a * x) * log1p(abs(2 * a * x))", DNC_WRT_X, -0.0, 3.0,
         "sign(a x) log1p(|2 a x|): 2a at -0"},
        {"fn f(x; a = 1.5) = sign(a * x) * log1p(abs(2 * a * x))", DNC_WRT_X, -2.0, 3.0 / 7.0,
         "sign(a x) log1p(|2 a x|) at -2"},
        {"fn f(x; a = 1.5) = sign(a * x) * log1p(abs(2 * a * x))", 0, 0.0, 0.0,
         "sign(a x) log1p(|2 a x|) by a at x = 0"},
        {"fn f(x; a = 0) = sign(a * x) * log1p(abs(2 * a * x))", 0, 0.3, 0.6,
         "sign(a x) log1p(|2 a x|) by a at a = 0: 2x (it was 0 for every x)"},
        {"fn f(x; a = 0) = sign(a * x) * log1p(abs(2 * a * x))", DNC_WRT_X, 0.0, 0.0,
         "sign(a x) log1p(|2 a x|) at a = 0: 0 (f is 0 for every x)"},
        {"fn f(x; a = 1.5) = sign(-a * x) * log1p(abs(x * a / 3))", DNC_WRT_X, 0.0, -0.5,
         "sign(-a x) log1p(|x a / 3|): -a / 3 at 0"},
        {"fn f(x) = sign(x)^3 * log1p(abs(x))", DNC_WRT_X, 0.0, 1.0, "sign(x)^3 g(|x|): 1 at 0"},
        {"fn f(x) = sign(x)^3 * log1p(abs(x))", DNC_WRT_X, -3.0, 0.25, "sign(x)^3 g(|x|) at -3"},
        {"fn f(x; a = 2) = a * sign(x)^5 * tanh(abs(x))", DNC_WRT_X, -0.0, 2.0,
         "a sign(x)^5 g(|x|): a at -0"},
        {"fn f(x) = sign(x) * sign(x) * sign(x) * log1p(abs(x))", DNC_WRT_X, 0.0, 1.0,
         "sign(x) sign(x) sign(x) g(|x|): 1 at 0"},
        {"fn f(x; a = 2) = sign(x) * a * sign(x)^3 * sign(x) * tanh(abs(x))", DNC_WRT_X, -0.0, 2.0,
         "sign(x)^5 a g(|x|), in three factors: a at -0"},
        {"fn f(x) = sign(x) * sign(x) * log1p(abs(x))", DNC_WRT_X, -2.0, -1.0 / 3.0,
         "sign(x)^2 g(|x|) in two factors, even: the product rule's at -2"},
        {"fn f(x) = sign(x)^2 * log1p(abs(x))", DNC_WRT_X, 0.0, 0.0,
         "sign(x)^2 g(|x|), even: 0 at 0 as before"},
        {"fn f(x) = sign(x) * log1p(abs(sign(x) * log1p(abs(x))))", DNC_WRT_X, 0.0, 1.0,
         "nested odd extensions: 1 at 0"},
        {"fn f(x) = sign(x) * log1p(abs(sign(x) * log1p(abs(x))))", DNC_WRT_X, -0.0, 1.0,
         "nested odd extensions: 1 at -0"},
        {"fn f(x; a = 1.5) = sign(x) * tanh(abs(a * sign(x) * log1p(abs(x))))", DNC_WRT_X, 0.0, 1.5,
         "nested, the inner one scaled: a at 0"},
        {"fn f(x; a = 1.5) = sign(x) * tanh(abs(a * sign(x) * log1p(abs(x))))", DNC_WRT_X, -2.0,
         0.068877551020408163, "nested, the inner one scaled, at -2"},
        {"fn f(x) = sign(x) * log1p(abs(sign(x) * (1 + abs(x))))", DNC_WRT_X, 0.0, 0.0,
         "nested with a jump inside: 0 at 0, as for a jump"},
        {"fn f(x; b = 0) = sign(x) * log1p(abs(sign(b * x) * log1p(abs(x))))", DNC_WRT_X, 1.0,
         0.0, "nested, sign(b x) at b = 0: 0 (f is 0 for every x; it was 1/2)"},
        {"fn f(x; b = 0) = sign(x) * log1p(abs(sign(b * x) * log1p(abs(x))))", DNC_WRT_X, 0.0,
         0.0, "nested, sign(b x) at b = 0: 0 at 0"},
        {"fn f(x; b = -1) = sign(x) * log1p(abs(sign(b * x) * log1p(abs(x))))", DNC_WRT_X, -0.0,
         1.0, "nested, sign(b x) at b = -1: 1 at -0"},
        {"fn f(x; k = -2) = sign(x) * abs(k * abs(x))", DNC_WRT_X, 0.0, 2.0,
         "sign(x) |k |x||, which is |k| x: |k| at 0"},
        {"fn f(x) = sign(x) * abs(sin(abs(x)))", DNC_WRT_X, -0.0, 1.0,
         "sign(x) |sin(|x|)|: 1 at -0"},
        {"fn f(x) = sign(x) * abs(sin(abs(x)))", DNC_WRT_X, -4.0, -cos(4.0),
         "sign(x) |sin(|x|)| at -4, where sin(|x|) < 0"},
        /* abs of the same sum or difference, its operands swapped */
        {"fn f(x; s = 0.5) = sign(x - s) * log1p(abs(s - x))", DNC_WRT_X, 0.5, 1.0,
         "sign(x - s) log1p(|s - x|): 1 at x = s"},
        {"fn f(x; s = 0.5) = sign(x - s) * log1p(abs(s - x))", 0, 0.5, -1.0,
         "sign(x - s) log1p(|s - x|) by s: -1 at x = s"},
        {"fn f(x; s = 0.5) = sign(x + s) * log1p(abs(s + x))", DNC_WRT_X, -0.5, 1.0,
         "sign(x + s) log1p(|s + x|): 1 at x = -s"},
        {"fn f(x; s = 0.5) = sign(x + s) * log1p(abs(s + x))", DNC_WRT_X, -2.0, 0.4,
         "sign(x + s) log1p(|s + x|) at -2"},
        {"fn f(x; s = 0.5, a = 2) = sign(a * (x + s)) * tanh(abs((s + x) * a))", DNC_WRT_X, -0.5, 2.0,
         "sign(a (x + s)) tanh(|(s + x) a|): a at x = -s"},
        {"fn f(x; a = 1.5) = abs(a * x)^0.5", 0, 0.0, 0.0,
         "|a x|^0.5 by a at x = 0: 0, not NaN"},
        {"fn f(x; a = 1.5) = abs(a * x)^0.5", 0, 4.0, 0.8164965809277261, "|a x|^0.5 by a at 4"},
        {"fn f(x; a = 0) = abs(a * x)^0.5", DNC_WRT_X, 2.0, 0.0,
         "|a x|^0.5 at a = 0: 0, not NaN"},
        {"fn f(x; a = 1.5, p = 0.25) = abs(a * x)^p", 0, 0.0, 0.0,
         "|a x|^p by a at x = 0, p < 1: 0"},
        {"fn f(x; a = 1.5) = sqrt(abs(a * x))", 0, 0.0, 0.0,
         "sqrt(|a x|) by a at x = 0: 0, not NaN"},
        {"fn f(x) = abs(x)^0.5", DNC_WRT_X, 0.0, NAN,
         "|x|^0.5 at 0, a cusp (slopes -inf and inf): NaN"},
    };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
      dnc_mod *m = build(odd[i].src);
      if (!m) {
        ok(0, "%s builds", odd[i].src);
        continue;
      }
      dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, odd[i].wrt);
      is_double(eval_node(m, d, odd[i].x), odd[i].want, 1e-15, "%s", odd[i].what);
      dnc_mod_free(m);
    }
  }
  /* d/dp (beta + t)^p with beta a parameter: log(beta) + log1p(t / beta),
   * not the log of the rounded sum (0 at x = 1e-20, where it is -1e-60) */
  {
    dnc_mod *m = build("fn f(x; beta = 1, p = 0.5) = x / (beta + x^2)^p");
    dnc_node *d = dnc_derivative(&m->dag, m->fns[0]->body, 1);
    double p[2] = {1, 0.5};
    double v = (double)at(m, d, 1e-20, p, 2, -1, 0);
    ok(fabs(v / -1e-60 - 1) <= 1e-14, "x / (beta + x^2)^p by p at 1e-20: %g, want -1e-60", v);
    v = (double)at(m, d, 1e-3, p, 2, -1, 0);
    ok(fabs(v / -9.9999900000095834e-10 - 1) <= 1e-14,
       "x / (beta + x^2)^p by p at 1e-3: %.17g, want -9.9999900000095834e-10", v);
    is_double((double)at(m, d, 3, p, 2, -1, 0), -2.1844240200635405, 1e-14,
              "x / (beta + x^2)^p by p at 3");
    p[0] = -1; /* the log of the sum: NaN where it is negative */
    is_double((double)at(m, d, 3, p, 2, -1, 0), -2.2055808228042313, 1e-14,
              "x / (beta + x^2)^p by p at 3, beta = -1");
    is_double((double)at(m, d, 0.5, p, 2, -1, 0), NAN, 0, "... at 0.5, beta = -1: NaN");
    dnc_mod_free(m);
  }
  /* x rsqrt(1 + x^2)' = 1 / (v sqrt(v)), as for x / sqrt(1 + x^2): the
   * product rule's rsqrt(v) - x^2 rsqrt(v) / v cancelled, 1e-3 relative
   * at 1e8 even in long double (relative comparisons: the values are
   * tiny) */
  static const struct {
    const char *src;
    double x, want;
  } isru[] = {
      {"fn f(x) = x * rsqrt(1 + x^2)", 1e8, 9.9999999999999985e-25},
      {"fn f(x) = rsqrt(x^2 + 1) * x", 1e8, 9.9999999999999985e-25},
      {"fn f(x) = x * rsqrt(1 + x^2)", 1e4, 9.999999850000001875e-13},
      {"fn f(x) = x / sqrt(1 + x^2)", 1e8, 9.9999999999999985e-25},
      /* the same unit written with x * x or a power: the product and
       * quotient rules cancelled as above */
      {"fn f(x) = x / sqrt(1 + x * x)", 1e8, 9.9999999999999985e-25},
      {"fn f(x) = x * (1 + x^2)^-0.5", 1e8, 9.9999999999999985e-25},
      {"fn f(x) = (x^2 + 1)^-0.5 * x", 1e8, 9.9999999999999985e-25},
      {"fn f(x) = x / (1 + x^2)^0.5", 1e8, 9.9999999999999985e-25},
  };
  for (size_t i = 0; i < sizeof isru / sizeof *isru; i++) {
    dnc_mod *m = build(isru[i].src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    is_double(eval_node(m, d, isru[i].x) / isru[i].want, 1, 1e-15,
              "%s: f'(%g) keeps its digits", isru[i].src, isru[i].x);
    dnc_mod_free(m);
  }
  /* softsign's quotient rule 1 - |x| / (1 + |x|) had no digit left from
   * |x| = 1e20 even in long double (and 1e8 in f32), and was NaN at inf;
   * log1p(exp(u))' was exp(u) / (1 + exp(u)) = inf / inf where exp(u)
   * overflows (long double: u > 11356) */
  static const struct {
    const char *src;
    double x, want;
  } quot[] = {
      {"fn f(x) = x / (1 + abs(x))", 1e20, 1e-40},
      {"fn f(x) = x / (1 + abs(x))", INFINITY, 0},
      {"fn f(x) = x / (abs(x) + 1)", 1e20, 1e-40},
      {"fn f(x) = x / (1 - abs(x))", 1e20, 1e-40},
      {"fn f(x) = 2 * x / (1 + abs(2 * x))", 1e20, 5e-41},
      {"fn f(x) = x / (abs(x) - 1)", 1e20, -1e-40},
      /* x / hypot(c, x)' = c^2 / h^3: 1 - (x/h)^2 cancelled likewise */
      {"fn f(x) = x / hypot(1, x)", 1e20, 1e-60},
      {"fn f(x) = x / hypot(x, 2)", -1e20, 4e-60},
      {"fn f(x) = log1p(exp(x))", 20000, 1},
      {"fn f(x) = log(1 + exp(2 * x))", 20000, 2},
      {"fn f(x) = log(exp(x) + 1)", 20000, 1},
      /* the quotient rule's q b' is 0 where q is: b' = inf there (exp
       * overflows in long double from 11357; sqrt(|x|)' at 0), 0 * inf
       * made the derivative NaN */
      {"fn f(x) = x / (1 + exp(x))", 20000, 0},
      {"fn f(x) = x / (1 + sqrt(abs(x)))", 0, 1},
      /* a numerator and an h of one degree (2) in x: (a' c - a c') / b /
       * b; the quotient rule's 2x - (x^2/b) 2x was 0 here */
      {"fn f(x) = x^2 / (2 + x^2)", 1e30, 4e-90},
      /* and with abs (positively homogeneous): a x / (b + |x|) */
      {"fn f(x) = 3 * x / (2 + abs(x))", 1e20, 6e-40},
      /* Euler's residual (div_resid): the generalised softsign, written
       * with a constant or a parameter power, as a quotient or a
       * product, and x / (c + sqrt(b + x^2)); 1 - |x|^p / u and 1 - x^2
       * / (s D) had no digit left here */
      {"fn f(x) = x / (1 + abs(x)^3)^(1/3)", 1e20, 1e-80},
      {"fn f(x; p = 3) = x / (1 + abs(x)^p)^(1/p)", -1e20, 1e-80},
      {"fn f(x; p = 4) = x * (1 + abs(x)^p)^(-1/p)", 1e10, 1e-50},
      {"fn f(x; p = 4) = 2 * x / (3 + 2 * abs(x)^p)^(1/p)", 1e10, 2.5226892457611436e-50},
      {"fn f(x) = x / (1 + sqrt(1 + x^2))", 1e20, 1e-40},
      {"fn f(x) = x / (sqrt(4 + x^2) - 1)", 1e20, -1e-40},
      /* a root of a sum that vanishes with x: its residual's limit, 0,
       * there (0/0 = NaN without it), and exact elsewhere (1.5e-10 off
       * at 1e10 before, in long double) */
      {"fn f(x) = x / (1 + sqrt(abs(x) + x^2))", 0, 1},
      {"fn f(x) = x / (1 + sqrt(abs(x) + x^2))", 1e10, 1.499999999525e-20},
      /* a' c - a c' with c depending on x cancelled too (2.6e-6 off) */
      {"fn f(x; b = 2.5) = x * abs(x) / (x^2 + 2.5 + b * x^2)", -3e7, 1.5117157974300807e-23},
      /* a parameter exponent: 1 + x^2 (1 - 2 p), the wrong sign at 1e10
       * before (1 - x 2 x p / (1 + x^2)) */
      {"fn f(x; p = 0.5) = x * (1 + x^2)^(-p)", 1e10, 1e-30},
      {"fn f(x; p = 3) = x * (1 + x^2)^(-p / 2)", 1e12, -2.0000000000000002e-36},
      {"fn f(x; p = 1) = x / (1 + x^2)^(p / 2)", -1e10, 1e-30},
      /* tanh and coth written out: 1 - (sinh/cosh)^2 was 0 at 30 */
      {"fn f(x) = sinh(x) / cosh(x)", 30, 3.502604305078608e-26},
      {"fn f(x) = cosh(2 * x) / sinh(2 * x)", 15, -7.005208610157216e-26},
  };
  for (size_t i = 0; i < sizeof quot / sizeof *quot; i++) {
    dnc_mod *m = build(quot[i].src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    double v = eval_node(m, d, quot[i].x);
    ok(quot[i].want == 0 ? v == 0 : fabs(v / quot[i].want - 1) <= 1e-15,
       "%s: f'(%g) = %g, want %g", quot[i].src, quot[i].x, v, quot[i].want);
    dnc_mod_free(m);
  }
  /* the derivatives' printed forms: atan' divides by u twice above 1e12
   * (1 + u^2 overflows in f32 from 1.8e19, where u'/u^2 is a normal
   * number); softsign's is 1 / b / b, and with respect to a parameter
   * in the denominator -x / b / b */
  static const struct {
    const char *src, *wrt, *want;
  } forms[] = {
      {"fn f(x; a = 2) = atan(a * x)", "a",
       "fn g(x; a = 2) {\n  let t1 = a * x\n  if abs(t1) > 1000000000000 then "
       "x / t1 / t1 else x / (1 + t1^2)\n}\n"},
      {"fn f(x; s = 1) = x / (s + abs(x))", "x",
       "fn g(x; s = 1) {\n  let t1 = s + abs(x)\n  s / t1 / t1\n}\n"},
      {"fn f(x; s = 1) = x / (s + abs(x))", "s",
       "fn g(x; s = 1) {\n  let t1 = s + abs(x)\n  -(x / t1 / t1)\n}\n"},
      {"fn f(x; a = 2) = x / (1 + abs(a * x))", "x",
       "fn g(x; a = 2) {\n  let t1 = 1 + abs(a * x)\n  1 / t1 / t1\n}\n"},
      /* not homogeneous in x: the quotient rule */
      {"fn f(x) = x / (1 + abs(x^2))", "x",
       "fn g(x) {\n  let t1 = x^2\n  let t2 = 1 + abs(t1)\n  let t3 = x / t2\n  (1 - (if 0 == t3 then 0 else t3 * (2 * x * sign(t1)))) / t2\n}\n"},
      {"fn f(x; a = 1) = log1p(exp(a * x))", "a", "fn g(x; a = 1) = x * sigmoid(a * x)\n"},
      /* a x and a x^2 of degree 1 in a: b x / t1 / t1, not the quotient
       * rule's x - (a x / t1) x^2, the wrong sign at x = -1e10 in f64 */
      {"fn f(x; a = 1, b = 2) = (a * x) / (b + a * x^2)", "a",
       "fn g(x; a = 1, b = 2) {\n  let t1 = b + a * x^2\n  b * x / t1 / t1\n}\n"},
      {"fn f(x; a = 1.2, b = 2) = a * x / (b + abs(x))", "x",
       "fn g(x; a = 1.2, b = 2) {\n  let t1 = b + abs(x)\n  a * b / t1 / t1\n}\n"},
      {"fn f(x; p = 2) = x / (1 + abs(x)^p)^(1/p)", "x",
       "fn g(x; p = 2) {\n  let t1 = 1 + abs(x)^p\n  1 / t1 / t1^(1 / p)\n}\n"},
      {"fn f(x; c = 1, b = 1) = x / (c + sqrt(b + x^2))", "x",
       "fn g(x; c = 1, b = 1) {\n  let t1 = b + x^2\n  let t2 = sqrt(t1)\n  let t3 = c + t2\n"
       "  (c + (if 0 == t1 then 0 else t2 * (b / t1))) / t3 / t3\n}\n"},
      /* d/dp (1 + t)^p: log1p(t), not the log of the rounded sum */
      {"fn f(x; p = 0.5) = (1 + x^2)^p", "p",
       "fn g(x; p = 0.5) {\n  let t1 = x^2\n  let t2 = (1 + t1)^p\n  if 0 == t2 then 0 else t2 * log1p(t1)\n}\n"},
      /* of degree 0 (x / x): the quotient rule, NaN where x / x is */
      {"fn f(x) = x / abs(x)", "x",
       "fn g(x) {\n  let t1 = abs(x)\n  let t2 = x / t1\n  (1 - (if 0 == t2 then 0 else t2 * sign(x))) / t1\n}\n"},
      {"fn f(x; b = 1) = x / hypot(b, x)", "b",
       "fn g(x; b = 1) {\n  let t1 = hypot(b, x)\n  let t2 = x / t1\n  -((if 0 == t2 then 0 else t2 * (b / t1)) / t1)\n}\n"},
  };
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    dnc_mod *m = build(forms[i].src);
    int wrt = strcmp(forms[i].wrt, "x") ? 0 : DNC_WRT_X;
    dnc_node *d = dnc_derivative(&m->dag, m->fns[0]->body, wrt);
    char *text = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&text, &len);
    dnc_print_def(o, m->fns[0], "g", d);
    fclose(o);
    is_str(text, forms[i].want, "%s: d/d%s as printed", forms[i].src, forms[i].wrt);
    free(text);
    dnc_mod_free(m);
  }
  /* a parameter scaling input and output (cap tanh(x / cap), tanh(a x) /
   * a): g - u g' cancelled at small u = x / cap (0 or the wrong sign
   * below 2.5e-4 in f32); its series below |u| = 1/4 (1/2 for sin and
   * sinh); softplus's at large |u| (0 from u = 17 in f32, and in long
   * double at u = 60), now two positive terms */
  static const struct {
    const char *src;
    double x, p, want;
  } scaled[] = {
      {"fn f(x; cap = 4) = cap * tanh(x / cap)", 1e-6, 4, 1.0416666666666146e-20},
      {"fn f(x; cap = 4) = cap * tanh(x / cap)", 0.001, 4, 1.0416666145833353e-11},
      {"fn f(x; cap = 4) = cap * tanh(x / cap)", 0.3, 4, 0.00027998868423620184},
      {"fn f(x; cap = 4) = cap * tanh(x / cap)", 3, 4, 0.18770959617628875},
      {"fn f(x; g = 4) = g * erf(x / g)", 1e-6, 4, 1.1753949657244482e-20},
      {"fn f(x; g = 4) = g * erf(x / g)", 0.001, 4, 1.175394921647182e-11},
      {"fn f(x; g = 4) = g * erf(x / g)", 0.3, 4, 0.00031628771066930504},
      {"fn f(x; g = 4) = g * erf(x / g)", 3, 4, 0.22895733175710963},
      {"fn f(x; a = 2) = tanh(a * x) / a", 1e-6, 2, -1.3333333333290667e-18},
      {"fn f(x; a = 2) = tanh(a * x) / a", 0.001, 2, -1.3333290666770285e-9},
      {"fn f(x; a = 2) = tanh(a * x) / a", 0.3, 2, -0.0275257273614254},
      {"fn f(x; a = 2) = tanh(a * x) / a", 3, 2, -0.24996006309159089},
      {"fn f(x; a = 2) = atan(a * x) / a", 1e-6, 2, -1.3333333333269333e-18},
      {"fn f(x; a = 2) = atan(a * x) / a", 0.001, 2, -1.3333269333607618e-9},
      {"fn f(x; a = 2) = atan(a * x) / a", 0.3, 2, -0.024810757420587215},
      {"fn f(x; a = 2) = atan(a * x) / a", 3, 2, -0.3108713718045269},
      {"fn f(x; a = 1) = asinh(a * x) / a", 1e-6, 1, -3.3333333333303333e-19},
      {"fn f(x; a = 1) = asinh(a * x) / a", 0.001, 1, -3.3333303333360119e-10},
      {"fn f(x; a = 1) = asinh(a * x) / a", 0.3, 1, -0.0083251619970770213},
      {"fn f(x; a = 1) = asinh(a * x) / a", 3, 1, -0.86976316118155302},
      {"fn f(x; b = 2) = softplus(b * x) / b", 1e-6, 2, -0.17328679513986133},
      {"fn f(x; b = 2) = softplus(b * x) / b", 0.3, 2, -0.16252354168760209},
      {"fn f(x; b = 2) = softplus(b * x) / b", 30, 2, -1.3353678913112194e-25},
      {"fn f(x; b = 2) = softplus(b * x) / b", -30, 2, -1.3353678913112194e-25},
      {"fn f(x; cap = 4) = cap * softplus(x / cap)", 0.001, 4, 0.69314717274744537},
      {"fn f(x; cap = 4) = cap * softplus(x / cap)", 300, 4, 2.0357640909741392e-31},
      {"fn f(x; cap = 4) = cap * softplus(x / cap)", -300, 4, 2.0357640909741392e-31},
      {"fn f(x; a = 2) = expm1(a * x) / a", 1e-6, 2, 5.0000066666716662e-13},
      {"fn f(x; a = 2) = expm1(a * x) / a", 0.001, 2, 5.006671669334445e-7},
      {"fn f(x; a = 2) = expm1(a * x) / a", 0.3, 2, 0.067788119960949096},
      {"fn f(x; a = 2) = expm1(a * x) / a", 3, 2, 504.5359918659189},
      {"fn f(x; a = 2) = log1p(a * x) / a", 1e-6, 2, -4.9999866666966662e-13},
      {"fn f(x; a = 2) = log1p(a * x) / a", -0.001, 2, -5.0133633974669417e-7},
      {"fn f(x; a = 2) = log1p(a * x) / a", 0.1, 2, -0.0039137225318219903},
      {"fn f(x; a = 2) = log1p(a * x) / a", 3, 2, -0.27219182297811404},
      /* the odd extension, k g(u) / b with k = sign(x) */
      {"fn f(x; a = 2) = sign(x) * log1p(a * abs(x)) / a", 1e-6, 2, -4.9999866666966662e-13},
      {"fn f(x; a = 2) = sign(x) * log1p(a * abs(x)) / a", -1e-6, 2, 4.9999866666966662e-13},
      {"fn f(x; a = 2) = sign(x) * log1p(a * abs(x)) / a", -3, 2, 0.27219182297811404},
      {"fn f(x; a = 2) = sign(x) * tanh(a * abs(x)) / a", -1e-6, 2, 1.3333333333290667e-18},
      {"fn f(x; a = 2) = sin(a * x) / a", 1e-6, 2, -6.6666666666639991e-19},
      {"fn f(x; a = 2) = sin(a * x) / a", 0.001, 2, -6.6666640000003814e-10},
      {"fn f(x; a = 2) = sin(a * x) / a", 0.2, 2, -0.0052484861768741155},
      {"fn f(x; a = 2) = sin(a * x) / a", 3, 2, 1.5101093045252805},
      {"fn f(x; a = 2) = sinh(a * x) / a", 1e-6, 2, 6.6666666666693324e-19},
      {"fn f(x; a = 2) = sinh(a * x) / a", 0.001, 2, 6.6666693333337147e-10},
      {"fn f(x; a = 2) = sinh(a * x) / a", 0.2, 2, 0.0054191557331416047},
      {"fn f(x; a = 2) = sinh(a * x) / a", 3, 2, 252.14516484111403},
  };
  /* b / g(u), b and u of one degree (a removable 0/0 at 0): the quotient
   * rule's 1 - q g' had no digit left (d/dx of x / erf(x) at 1e-20 was
   * 1206, not 6e-21); b' (g - u g') / g^2 with the series of g - u g' */
  static const struct {
    const char *src;
    double x, want;
  } removable[] = {
      {"fn f(x) = x / erf(x)", 1e-20, 5.9081795030183864e-21},
      {"fn f(x) = x / erf(x)", 0.001, 0.00059081798968967109},
      {"fn f(x) = x / erf(x)", 0.3, 0.1782340763330436},
      {"fn f(x) = x / erf(x)", 3, 0.99960431337153282},
      {"fn f(x) = x / tanh(x)", 1e-10, 6.6666666666666669e-11},
      {"fn f(x) = x / tanh(x)", 0.2, 0.13262626415125296},
      {"fn f(x) = x / tanh(x)", 2, 0.8852710610514059},
      {"fn f(x) = sinh(x) / x", 1e-8, 3.3333333333333334e-9},
      {"fn f(x) = sinh(x) / x", 0.4, 0.1354788933285401},
      {"fn f(x) = x / expm1(x)", 1e-8, -0.49999999833333333},
      {"fn f(x) = x / expm1(x)", -0.2, -0.53328895229640306},
      {"fn f(x; a = 2) = x / atan(a * x)", 1e-7, 1.3333333333333048e-7},
      {"fn f(x; a = 2) = x / atan(a * x)", 0.1, 0.13057530147145508},
  };
  for (size_t i = 0; i < sizeof removable / sizeof *removable; i++) {
    dnc_mod *m = build(removable[i].src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, DNC_WRT_X);
    double p[1] = {2};
    double v = (double)at(m, d, removable[i].x, p, 1, -1, 0);
    ok(fabs(v / removable[i].want - 1) <= 1e-14, "%s: d/dx at %g = %.17g, want %.17g",
       removable[i].src, removable[i].x, v, removable[i].want);
    dnc_mod_free(m);
  }
  /* (c + |x|^p)^(k/p) by p (the generalised softsign): the rule's
   * log(c + t) - t log(t) / (c + t) had no digit left for t >> c */
  static const struct {
    const char *src;
    double x, p, want;
  } roots[] = {
      {"fn f(x; p = 2) = x / (1 + abs(x)^p)^(1/p)", 0.001, 2, 3.7038722086813251e-9},
      {"fn f(x; p = 2) = x / (1 + abs(x)^p)^(1/p)", 3, 2, 0.077100196834266634},
      {"fn f(x; p = 2) = x / (1 + abs(x)^p)^(1/p)", 10000.0, 2, 4.8551701144105395e-8},
      {"fn f(x; p = 2) = x / (1 + abs(x)^p)^(1/p)", 10000000000.0, 2, 1.1762925464970228e-19},
      {"fn f(x; p = 0.7) = x * (1 + abs(x)^p)^(-1/p)", 0.001, 0.7, 9.2859553257211475e-5},
      {"fn f(x; p = 0.7) = x * (1 + abs(x)^p)^(-1/p)", 3, 0.7, 0.73955668336848124},
      {"fn f(x; p = 0.7) = x * (1 + abs(x)^p)^(-1/p)", 10000000000.0, 0.7, 3.493488070144334e-6},
      {"fn f(x; p = 2, c = 3) = x / (c + abs(x)^p)^(1/p)", 0.001, 2, 0.00015857171153212909},
      {"fn f(x; p = 2, c = 3) = x / (c + abs(x)^p)^(1/p)", 10000000000.0, 2, 3.5288776394910685e-19},
  };
  for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
    dnc_mod *m = build(roots[i].src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, 0);
    double p[2] = {roots[i].p, 3};
    double v = (double)at(m, d, roots[i].x, p, 2, -1, 0);
    ok(fabs(v / roots[i].want - 1) <= 1e-14, "%s: d/dp at %g = %.17g, want %.17g",
       roots[i].src, roots[i].x, v, roots[i].want);
    dnc_mod_free(m);
  }
  for (size_t i = 0; i < sizeof scaled / sizeof *scaled; i++) {
    dnc_mod *m = build(scaled[i].src);
    dnc_node *d = dnc_diff(&m->dag, m->fns[0]->body, 0);
    double p[1] = {scaled[i].p};
    double v = (double)at(m, d, scaled[i].x, p, 1, -1, 0);
    ok(fabs(v / scaled[i].want - 1) <= 1e-14, "%s: d/dp at %g = %.17g, want %.17g",
       scaled[i].src, scaled[i].x, v, scaled[i].want);
    dnc_mod_free(m);
  }
  /* a derivative with respect to a parameter in a min: to the selected one */
  dnc_mod *m = build("fn f(x; a = 1, b = 1) = min(a * x, b * x)");
  double p[2] = {1, 1};
  dnc_node *da = dnc_diff(&m->dag, m->fns[0]->body, 0);
  dnc_node *db = dnc_diff(&m->dag, m->fns[0]->body, 1);
  ok(at(m, da, 2, p, 2, -1, 0) == 2 && at(m, db, 2, p, 2, -1, 0) == 0,
     "min tie between parameters: the gradient goes to the first");
  dnc_mod_free(m);
  /* d/dp |x|^p = |x|^p log|x|: where |x|^p is 0 (x = 0, p > 0) it is 0,
   * the limit, not 0 * -inf = NaN (which made a whole batch's gradient of
   * p NaN); elsewhere exact, NaN for NaN, and the second derivative too */
  m = build("fn f(x; p = 2) = abs(x)^p");
  dnc_node *dp = dnc_diff(&m->dag, m->fns[0]->body, 0);
  dnc_node *dp2 = dnc_diff(&m->dag, dp, 0);
  double p2[1] = {2}, pneg[1] = {-1}, pnan[1] = {NAN};
  is_double((double)at(m, dp, 0.0, p2, 1, -1, 0), 0, 0, "d/dp |x|^p at x = 0 is 0");
  is_double((double)at(m, dp, -0.0, p2, 1, -1, 0), 0, 0, "... at x = -0 too");
  is_double((double)at(m, dp2, 0.0, p2, 1, -1, 0), 0, 0,
            "... and d2/dp2 at x = 0 is 0");
  is_double((double)at(m, dp, 0.5, p2, 1, -1, 0), 0.25 * log(0.5), 1e-15,
            "... at x = 0.5 it is 0.25 log(0.5)");
  is_double((double)at(m, dp2, 0.5, p2, 1, -1, 0), 0.25 * log(0.5) * log(0.5),
            1e-15, "... and d2/dp2 0.25 log(0.5)^2");
  is_double((double)at(m, dp, NAN, p2, 1, -1, 0), NAN, 0, "... NaN at x = NaN");
  is_double((double)at(m, dp, 0.0, pnan, 1, -1, 0), NAN, 0, "... NaN at p = NaN");
  is_double((double)at(m, dp, 0.0, pneg, 1, -1, 0), -INFINITY, 0,
            "... -inf at x = 0 for p = -1 (|x|^p is inf there)");
  dnc_mod_free(m);
  /* the guard if f == 0 then 0 else f y (a zero_where of a derivative)
   * is f y wherever y is finite: its derivative at f = 0 is f' y. Each
   * branch's own dropped it: d2/dx2 of x / (1 + exp(-x)) at 0 was 0.25 */
  static const struct {
    const char *src;
    int w1, w2;
    double p[2], want;
  } guards[] = {
      {"fn f(x; a = 1) = x / (1 + exp(-a * x))", -1, -1, {1}, 0.5},
      {"fn f(x; a = 0.5) = x / (1 + exp(a * x))", -1, -1, {0.5}, -0.25},
      {"fn f(x; c = 2) = x / hypot(c, x)", 0, -1, {2}, -0.25},
      {"fn f(x; c = 0.3, b = 1.5) = x / (c + sqrt(b + x^2))", 1, -1, {0.3, 1.5},
       -0.17560222415247835},
      {"fn f(x) = if 0 == x then 0 else x * cos(x)", -1, -2, {0}, 1},
      {"fn f(x) = if x == 0 then 0 else x * log(abs(x))", -1, -2, {0}, -INFINITY},
      /* f' y NaN (y = x log|x|): the then-branch's 0, not NaN */
      {"fn f(x) = if x == 0 then 0 else x * x * log(abs(x))", -1, -2, {0}, 0},
  };
  for (size_t i = 0; i < sizeof guards / sizeof *guards; i++) {
    m = build(guards[i].src);
    dnc_node *d1 = dnc_derivative(&m->dag, m->fns[0]->body, guards[i].w1);
    dnc_node *d2 = guards[i].w2 == -2 ? d1 : dnc_derivative(&m->dag, d1, guards[i].w2);
    is_double((double)at(m, d2, 0.0, guards[i].p, 2, -1, 0), guards[i].want, 1e-15,
              "%s: %s at x = 0", guards[i].src,
              guards[i].w2 == -2 ? "d/dx" : "the second derivative");
    dnc_mod_free(m);
  }
}

static void test_sharing_and_growth(void)
{
  dnc_mod *m = build("fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
                     "fn e(x; a = 2) = exp(a * x)\n");
  dnc_node *f = m->fns[1]->body, *d = dnc_diff(&m->dag, f, DNC_WRT_X);
  ok(d->op == OP_MUL && (d->arg[0] == f || d->arg[1] == f),
     "the derivative of exp(u) reuses the node exp(u)");
  dnc_node *t = m->fns[0]->body, *dt = dnc_diff(&m->dag, t, DNC_WRT_X);
  /* d/dx tanh(a x) shares a*x with the function */
  uint32_t n;
  dnc_arena *a = dnc_arena_new();
  dnc_node **s = dnc_schedule(&m->dag, a, dt, &n);
  int shares = 0;
  for (uint32_t i = 0; i < n; i++)
    shares |= s[i] == t->arg[0];
  ok(shares, "the derivative of tanh(alpha*x) shares the node alpha*x");
  dnc_arena_free(a);
  dnc_mod_free(m);

  /* Bounded growth: the k-th x-derivative of tanh(a*erf(b*x+c)), stated
   * bound 12 k^2 + 40 nodes (measured: see the diag lines). A tree would
   * grow exponentially in k. */
  m = build("fn f(x; a = 1.5, b = 0.7, c = 0.2) = tanh(a * erf(b * x + c))");
  dnc_node *e = m->fns[0]->body;
  int within = 1;
  uint32_t counts[7];
  for (int k = 1; k <= 6; k++) {
    e = dnc_simplify(&m->dag, dnc_diff(&m->dag, e, DNC_WRT_X));
    counts[k] = dnc_node_count(e);
    within &= counts[k] <= (uint32_t)(12 * k * k + 40);
  }
  diag("nodes of the k-th derivative of tanh(a*erf(b*x+c)): %u %u %u %u %u %u",
       counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]);
  ok(within, "the 6th derivative of tanh(a*erf(b*x+c)) has %u nodes, within "
             "the bound 12k^2 + 40 = 472", counts[6]);
  double p[3] = {1.5, 0.7, 0.2};
  ld err;
  dnc_node *d5 = m->fns[0]->body;
  for (int k = 1; k <= 5; k++)
    d5 = dnc_simplify(&m->dag, dnc_diff(&m->dag, d5, DNC_WRT_X));
  int r = check_point(m, d5, e, 0.3L, p, 3, -1, 1e-6, &err);
  ok(r == 1, "and it matches a finite difference of the 5th (error %.1Le)", err);
  dnc_mod_free(m);
}

/* The simplifier keeps IEEE results: what it must not rewrite. */
static void test_simplifier(void)
{
  static const struct {
    const char *src;
    double x;
  } keep[] = {
      {"fn f(x) = 0 * x", INFINITY},  {"fn f(x) = 0 * x", NAN},
      {"fn f(x) = 0 * x", -2.0},      {"fn f(x) = x - x", INFINITY},
      {"fn f(x) = x + 0", -0.0},      {"fn f(x) = x / x", 0.0},
      {"fn f(x) = x * 1", -0.0},      {"fn f(x) = --x", -0.0},
      {"fn f(x) = x + x", -0.0},      {"fn f(x) = x - -x", INFINITY},
      {"fn f(x) = x^0", NAN},         {"fn f(x) = 1^x", NAN},
      {"fn f(x) = x^1", NAN},         {"fn f(x) = x * x", -0.0},
      {"fn f(x) = x^2 * x^3", -2.0},  {"fn f(x) = x^-1 * x", 0.0},
      {"fn f(x) = x / 4", 5e-324},    {"fn f(x) = 2 * x + 3 * x", INFINITY},
      {"fn f(x) = 2 * x - 2 * x", INFINITY}, {"fn f(x) = -x + x", -0.0},
      {"fn f(x) = abs(-x)", -0.0},    {"fn f(x) = if x > 0 then x else x", NAN},
      {"fn f(x) = log(0) + x", 1.0},  {"fn f(x) = 1 / 0 * x", 0.0},
      {"fn f(x) = x - 0", -0.0},      {"fn f(x) = x + -0", -0.0},
      {"fn f(x) = -0 + x", -0.0},     {"fn f(x) = 3 * x - 2 * x", INFINITY},
      {"fn f(x) = 1e300 * (1e300 * x)", 0.0},
      {"fn f(x) = 1e-300 * (1e-300 * x)", INFINITY},
      /* 1e-320 * x kept 3 digits of the constant */
      {"fn f(x) = 1e-160 * (1e-160 * x)", 1e300},
      {"fn f(x) = x / 5e-324", 0.0},  {"fn f(x) = x^0.5 * x^1.5", -1.0},
      {"fn f(x) = x^2 * x^3", -0.0},  {"fn f(x) = x^-2 * x^-3", INFINITY},
  };
  for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
    dnc_mod *m = build(keep[i].src);
    if (!m) {
      ok(0, "%s builds", keep[i].src);
      continue;
    }
    dnc_node *e = m->fns[0]->body, *s = dnc_simplify(&m->dag, e);
    double a = eval_node(m, e, keep[i].x), b = eval_node(m, s, keep[i].x);
    ok((isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)),
       "simplifying %s keeps its value at %g (%g, simplified %g)", keep[i].src,
       keep[i].x, a, b);
    dnc_mod_free(m);
  }
  static const struct {
    const char *src, *want, *what;
  } shapes[] = {
      {"fn f(x) = 0 * x + (x - x)", "fn g(x) = 0 * x + (x - x)\n",
       "0*x and x-x are not rewritten"},
      {"fn f(x; a = 1) = (a * x) * 1 + x * a", "fn g(x; a = 1) = 2 * (a * x)\n",
       "a*x*1 and x*a are one term, collected"},
      {"fn f(x) = 3 * x + x * 5", "fn g(x) = 8 * x\n", "like terms with coefficients"},
      {"fn f(x) = 3 * x - x * 5", "fn g(x) = 3 * x - 5 * x\n",
       "opposite-sign terms stay (NaN at x = inf, unlike -2x)"},
      {"fn f(x) = x * x * x / 2", "fn g(x) = 0.5 * x^3\n", "powers collect; /2 is *0.5"},
      {"fn f(x) = -(-x) + -(2 * x)", "fn g(x) = x - 2 * x\n", "double negation and signs"},
      {"fn f(x) = -(-x) * -(2 * x)", "fn g(x) = -2 * x^2\n", "signs out of products"},
      {"fn f(x) = 1 + 2 * 3 - pi / pi", "fn g(x) = 6\n", "constants fold"},
      {"fn f(x) = x + log(0)", "fn g(x) = x + log(0)\n", "an infinite constant is not folded"},
  };
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    dnc_mod *m = build(shapes[i].src);
    dnc_node *s = m ? dnc_simplify(&m->dag, m->fns[0]->body) : NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&text, &len);
    if (s)
      dnc_print_def(o, m->fns[0], "g", s);
    fclose(o);
    is_str(text, shapes[i].want, "simplify: %s", shapes[i].what);
    free(text);
    dnc_mod_free(m);
  }
}

/* dnc diff --format dsl: the printed derivative parses back to the same
 * DAG and evaluates to the same value, bit for bit. */
static void test_dsl_round_trip(void)
{
  char buf[8192];
  int same = 0, total = 0;
  for (int i = 0; i < 300; i++) {
    corpus_function(1, i, buf, sizeof buf);
    dnc_mod *m = build(buf);
    if (!m)
      continue;
    for (int var = -1; var < 3; var++) {
      dnc_node *d = dnc_simplify(&m->dag, dnc_diff(&m->dag, m->fns[0]->body, var));
      d = dnc_simplify(&m->dag, dnc_diff(&m->dag, d, DNC_WRT_X));
      char *text = NULL;
      size_t len = 0;
      FILE *o = open_memstream(&text, &len);
      dnc_print_def(o, m->fns[0], "g", d);
      fclose(o);
      dnc_mod *m2 = dnc_mod_new();
      dnc_mod_add_source(m2, "d.dn", text, len);
      int okk = dnc_mod_build(m2) == 0 && dnc_node_equal(d, m2->fns[0]->body);
      for (double x = -3.25; okk && x <= 3.5; x += 0.75) {
        double p[3] = {0.75, 1.25, -0.5};
        double a = (double)at(m, d, x, p, 3, -1, 0);
        double b = dnc_interp(m2->fns[0], x, p);
        okk = memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
      }
      if (!okk && total - same < 3)
        diag("round trip failed for:\n%s", text);
      same += okk;
      total++;
      free(text);
      dnc_mod_free(m2);
    }
    dnc_mod_free(m);
  }
  is_int(same, total, "%d second derivatives printed as dnc source parse back "
                      "to the same DAG and the same values", total);
}

int main(void)
{
  test_dsl_round_trip();
  test_builtins();
  test_conventions();
  test_sharing_and_growth();
  test_simplifier();
  test_corpus();
  return done_testing();
}
