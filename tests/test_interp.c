/*
 * test_interp.c - the reference interpreter against the C library at chosen
 * points, special values included, and its IEEE conventions.
 *
 * The interpreter computes in long double and rounds once, so it must be at
 * least as accurate as libm's double functions: the tolerance is 4 ulp of
 * double (glibc's double functions are within 1-2 ulp), except where a
 * function is ill-conditioned at the point, which none chosen here is.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "tap.h"
#include "testlib.h"

static double eval1(const char *src, double x)
{
  dnc_mod *m = build(src);
  if (!m)
    return -12345.0;
  double p[8];
  for (int i = 0; i < m->fns[0]->nparams; i++)
    p[i] = m->fns[0]->params[i].def;
  double y = dnc_interp(m->fns[0], x, p);
  dnc_mod_free(m);
  return y;
}

/* |a - b| in units of the last place of b */
static double ulps(double a, double b)
{
  if (a == b)
    return 0;
  double u = nextafter(fabs(b), INFINITY) - fabs(b);
  if (b == 0 || u == 0)
    u = DBL_TRUE_MIN;
  return fabs(a - b) / u;
}

static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double ref_rsqrt(double x) { return 1 / sqrt(x); }

static const struct {
  const char *name;
  double (*ref)(double);
} unary[] = {
    {"exp", exp},     {"expm1", expm1}, {"log", log},   {"log1p", log1p},
    {"sqrt", sqrt},   {"rsqrt", ref_rsqrt}, {"tanh", tanh}, {"sinh", sinh},
    {"cosh", cosh},   {"asinh", asinh}, {"atan", atan}, {"erf", erf},
    {"erfc", erfc},   {"sigmoid", ref_sigmoid}, {"softplus", ref_softplus},
    {"sin", sin},     {"cos", cos},     {"abs", fabs},
};

static void test_against_libm(void)
{
  static const double pts[] = {0.0,  -0.0,  1e-300, 1e-8, 0.001, 0.1,  0.5,
                               0.75, 1.0,   1.5,    2.0,  3.0,   5.5,  10.0,
                               20.0, 100.0, -1e-8,  -0.3, -1.0,  -2.5, -7.0,
                               -30.0, 4.9e-324};
  for (size_t i = 0; i < sizeof unary / sizeof *unary; i++) {
    char src[64];
    snprintf(src, sizeof src, "fn f(x) = %s(x)", unary[i].name);
    dnc_mod *m = build(src);
    if (!m) {
      ok(0, "%s builds", unary[i].name);
      continue;
    }
    double worst = 0, at = 0;
    int nan_ok = 1;
    for (size_t k = 0; k < sizeof pts / sizeof *pts; k++) {
      double x = pts[k], want = unary[i].ref(x), got = dnc_interp(m->fns[0], x, NULL);
      if (isnan(want) || isnan(got)) {
        nan_ok &= isnan(want) && isnan(got);
        continue;
      }
      if (isinf(want) || want == 0) {
        nan_ok &= got == want && signbit(got) == signbit(want);
        continue;
      }
      double u = ulps(got, want);
      if (u > worst) {
        worst = u;
        at = x;
      }
    }
    ok(worst <= 4, "%s agrees with libm within 4 ulp at %zu points (worst "
                   "%.2g ulp at %g)", unary[i].name, sizeof pts / sizeof *pts,
       worst, at);
    ok(nan_ok, "%s: NaN, infinite and zero results match libm exactly",
       unary[i].name);
    dnc_mod_free(m);
  }
}

static void test_special_values(void)
{
  const double inf = INFINITY, nan = NAN;
  static const struct {
    const char *src;
    double x, want;
  } cases[] = {
      {"fn f(x) = tanh(x)", INFINITY, 1.0},
      {"fn f(x) = tanh(x)", -INFINITY, -1.0},
      {"fn f(x) = tanh(x)", -0.0, -0.0},
      {"fn f(x) = erf(x)", -INFINITY, -1.0},
      {"fn f(x) = erf(x)", -0.0, -0.0},
      {"fn f(x) = erfc(x)", INFINITY, 0.0},
      {"fn f(x) = erfc(x)", -INFINITY, 2.0},
      {"fn f(x) = exp(x)", 1000.0, INFINITY},
      {"fn f(x) = exp(x)", -INFINITY, 0.0},
      {"fn f(x) = expm1(x)", -INFINITY, -1.0},
      {"fn f(x) = expm1(x)", -0.0, -0.0},
      {"fn f(x) = log(x)", 0.0, -INFINITY},
      {"fn f(x) = log(x)", -1.0, NAN},
      {"fn f(x) = log(x)", INFINITY, INFINITY},
      {"fn f(x) = log1p(x)", -1.0, -INFINITY},
      {"fn f(x) = sqrt(x)", -0.0, -0.0},
      {"fn f(x) = sqrt(x)", -1.0, NAN},
      {"fn f(x) = rsqrt(x)", 0.0, INFINITY},
      {"fn f(x) = rsqrt(x)", -0.0, -INFINITY},
      {"fn f(x) = rsqrt(x)", INFINITY, 0.0},
      {"fn f(x) = sigmoid(x)", -INFINITY, 0.0},
      {"fn f(x) = sigmoid(x)", INFINITY, 1.0},
      {"fn f(x) = sigmoid(x)", 0.0, 0.5},
      {"fn f(x) = sigmoid(x)", -800.0, 0.0}, /* underflows in double */
      {"fn f(x) = sigmoid(x)", -700.0, 9.8596765437597708e-305}, /* = e^-700 */
      {"fn f(x) = softplus(x)", 1000.0, 1000.0},
      {"fn f(x) = softplus(x)", -1000.0, 0.0},
      {"fn f(x) = softplus(x)", INFINITY, INFINITY},
      {"fn f(x) = softplus(x)", 0.0, 0.69314718055994531},
      {"fn f(x) = asinh(x)", -INFINITY, -INFINITY},
      {"fn f(x) = atan(x)", INFINITY, 1.5707963267948966},
      {"fn f(x) = sinh(x)", -0.0, -0.0},
      {"fn f(x) = cosh(x)", -INFINITY, INFINITY},
      {"fn f(x) = sin(x)", INFINITY, NAN},
      {"fn f(x) = cos(x)", -0.0, 1.0},
      {"fn f(x) = abs(x)", -0.0, 0.0},
      {"fn f(x) = abs(x)", -INFINITY, INFINITY},
      {"fn f(x) = sign(x)", -0.0, -0.0},
      {"fn f(x) = sign(x)", 0.0, 0.0},
      {"fn f(x) = sign(x)", -3.0, -1.0},
      {"fn f(x) = sign(x)", INFINITY, 1.0},
      {"fn f(x) = sign(x)", NAN, NAN},
      {"fn f(x) = 1 / x", 0.0, INFINITY},
      {"fn f(x) = 1 / x", -0.0, -INFINITY},
      {"fn f(x) = x / x", 0.0, NAN},
      {"fn f(x) = x - x", INFINITY, NAN},
      {"fn f(x) = 0 * x", INFINITY, NAN},
      {"fn f(x) = 0 * x", -2.0, -0.0},
      {"fn f(x) = x * 1", -0.0, -0.0},
      {"fn f(x) = x + 0", -0.0, 0.0},
      {"fn f(x) = x - 0", -0.0, -0.0},
      {"fn f(x) = -x", 0.0, -0.0},
      {"fn f(x) = x^2", -3.0, 9.0},
      {"fn f(x) = x^0.5", -4.0, NAN},
      {"fn f(x) = x^-1", 0.0, INFINITY},
      {"fn f(x) = x^0", NAN, 1.0},
      {"fn f(x) = 2^x", -INFINITY, 0.0},
      {"fn f(x) = min(x, 1)", NAN, NAN},
      {"fn f(x) = min(1, x)", NAN, NAN},
      {"fn f(x) = max(x, 1)", NAN, NAN},
      {"fn f(x) = min(x, 1)", -INFINITY, -INFINITY},
      {"fn f(x) = max(x, 1)", 0.5, 1.0},
      {"fn f(x) = min(x, 0)", -0.0, -0.0},
      {"fn f(x) = min(0, x)", -0.0, 0.0},
      {"fn f(x) = max(x, -0)", 0.0, 0.0},
      {"fn f(x) = clamp(x, -1, 1)", 5.0, 1.0},
      {"fn f(x) = clamp(x, -1, 1)", -5.0, -1.0},
      {"fn f(x) = clamp(x, -1, 1)", 0.25, 0.25},
      {"fn f(x) = clamp(x, -1, 1)", NAN, NAN},
      {"fn f(x) = clamp(x, 1, -1)", 0.0, -1.0},
      {"fn f(x) = if x < 0 then 1 else 2", NAN, 2.0},
      {"fn f(x) = if x > 0 then 1 else 2", NAN, 2.0},
      {"fn f(x) = if x == x then 1 else 2", NAN, 2.0},
      {"fn f(x) = if x != x then 1 else 2", NAN, 1.0},
      {"fn f(x) = if not x < 0 then 1 else 2", NAN, 1.0},
      {"fn f(x) = if x >= 0 and x <= 1 then 1 else 2", 1.0, 1.0},
      {"fn f(x) = if x < 0 or x > 1 then 1 else 2", 0.5, 2.0},
      {"fn f(x) = if x == 0 then 1 else 2", -0.0, 1.0},
      {"fn f(x) = x + inf", -INFINITY, NAN},
      {"fn f(x) = x * nan", 0.0, NAN},
      {"fn f(x) = 1e308 * x", 10.0, INFINITY},
      {"fn f(x) = x / 2", 4.9406564584124654e-324, 0.0},
  };
  (void)inf;
  (void)nan;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    is_double(eval1(cases[i].src, cases[i].x), cases[i].want, 0,
              "%s at %g is %g", cases[i].src, cases[i].x, cases[i].want);
}

static void test_compositions(void)
{
  /* values of the published functions against direct double formulas */
  static const double xs[] = {-50, -3, -1, -0.25, 0, 0.5, 2, 7, 300};
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
    double x = xs[i];
    is_double(eval1("fn dyt(x; alpha = 0.5) = tanh(alpha * x)", x),
              tanh(0.5 * x), 4e-16, "dyt(%g)", x);
    is_double(eval1("fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)", x),
              x / sqrt(301.1 + x * x), 4e-16, "dyisru(%g)", x);
    is_double(eval1("fn derf(x; alpha = 0.5, s = 0.1) = erf(alpha * x + s)", x),
              erf(0.5 * x + 0.1), 4e-16, "derf(%g)", x);
    is_double(eval1("fn f(x) { let u = 2 * x\n if abs(u) < pi / 2 then sin(u) "
                    "else sign(u) }", x),
              fabs(2 * x) < M_PI / 2 ? sin(2 * x) : (x > 0 ? 1.0 : x < 0 ? -1.0 : x),
              4e-16, "saturating sine(%g)", x);
  }
  /* parameters: the interpreter reads them by index */
  dnc_mod *m = build("fn f(x; a = 1, s[] = 0) = a * x + s");
  double p[2] = {3.0, -0.5};
  ok(m && dnc_interp(m->fns[0], 2.0, p) == 5.5,
     "parameter values are read from the array, per-channel ones included");
  dnc_mod_free(m);
  /* extended precision: (1 + 1e-17) - 1 is 0 in double, not in long double */
  ok(eval1("fn f(x) = (1 + x) - 1", 1e-17) != 0,
     "the interpreter computes in extended precision before rounding");
}

int main(void)
{
  test_against_libm();
  test_special_values();
  test_compositions();
  return done_testing();
}
