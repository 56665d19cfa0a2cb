/*
 * test_fit.c - dnc_fit (fit.c): parameters recovered from points made by
 * the function itself, exactly without noise (computed in double too:
 * an exact fit, not a stall) and within the reported standard errors with
 * noise; the reference points of LayerNorm and
 * RMSNorm; the fit's own failures (ill-posed, too few points, not finite,
 * iteration limit).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "testlib.h"
#include "dnc_int.h"

/* a seeded normal deviate (Box-Muller over a 64-bit LCG) */
static uint64_t rng = 12345;
static double unit(void)
{
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return ((double)(rng >> 11) + 0.5) * 0x1p-53;
}
static double normal(void)
{
  return sqrt(-2 * log(unit())) * cos(2 * M_PI * unit());
}

/* n points of f with parameters p on [lo, hi], plus noise * N(0, 1) */
static void points(const dnc_fn *f, const double *p, double gain, int n,
                   double lo, double hi, double noise, double *x, double *y)
{
  for (int i = 0; i < n; i++) {
    x[i] = lo + (hi - lo) * i / (n - 1);
    y[i] = gain * dnc_interp(f, x[i], p) + noise * normal();
  }
}

static dnc_fit_result fit(dnc_mod *m, const char *name, const double *x,
                          const double *y, int n, const double *p0,
                          const int *fixed, int gain)
{
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  o.gain = gain;
  dnc_fit_result r;
  dnc_fit(m, dnc_mod_find(m, name), x, y, n, p0, fixed, &o, &r);
  return r;
}

/* the functions of src below, computed in double */
static double derf_double(double x, const double *p)
{
  return erf(p[0] * x + p[1]);
}
static double dyt_double(double x, const double *p)
{
  return tanh(p[0] * x);
}
static double decay_double(double x, const double *p)
{
  return p[0] * exp(-p[1] * x);
}

static const char *src =
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
    "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n"
    "fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)\n"
    "fn decay(x; a = 1, b = 1) = a * exp(-b * x)\n"
    "fn both(x; a = 1, b = 1) = a * b * x\n"
    "fn unused(x; a = 1, b = 1) = a * x\n"
    "fn logshift(x; a = 1) = log(x - a)\n"
    "fn rational(x; a = 1, b = 1, c = 1) = (a * x + b) / (1 + c * x^2)\n"
    "fn power(x; a = 1, b = 1) = sqrt(a * abs(x)) * b\n";

static void exact_recovery(dnc_mod *m)
{
  double x[60], y[60];
  struct {
    const char *fn;
    double truth[3], start[3];
    int gain;
    double tol;
  } cases[] = {
      {"dyt", {0.7}, {0.5}, 0, 1e-13},
      {"derf", {0.8, 0.3}, {0.5, 0}, 0, 1e-12},
      {"decay", {2.5, 0.4}, {1, 1}, 0, 1e-12},
      {"rational", {1.5, -0.5, 0.25}, {1, 1, 1}, 0, 1e-11},
      {"dyisru", {50, 3}, {301.1, 1}, 1, 1e-10}, /* beta and the gain */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const dnc_fn *f = dnc_mod_find(m, cases[c].fn);
    int np = f->nparams;
    double g = cases[c].gain ? cases[c].truth[np] : 1;
    points(f, cases[c].truth, g, 60, -5, 5, 0, x, y);
    dnc_fit_result r = fit(m, cases[c].fn, x, y, 60, cases[c].start, NULL,
                           cases[c].gain);
    is_int(r.status, DNC_FIT_OK, "%s: converges without noise (%s)",
           cases[c].fn, r.why);
    for (int j = 0; j < np + cases[c].gain; j++)
      is_double(r.value[j], cases[c].truth[j],
                cases[c].tol * fabs(cases[c].truth[j]),
                "%s: parameter %d recovered exactly", cases[c].fn, j);
    ok(r.rms < 1e-12, "%s: residual %.3g is rounding only", cases[c].fn,
       r.rms);
    dnc_fit_result_free(&r);
  }
}

static void noisy_recovery(dnc_mod *m)
{
  enum { N = 400 };
  double x[N], y[N];
  struct {
    const char *fn;
    double truth[2], start[2];
  } cases[] = {
      {"derf", {0.8, 0.3}, {0.5, 0}},
      {"decay", {2.5, 0.4}, {1, 1}},
      {"dyt", {0.7, 0}, {0.5, 0}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const dnc_fn *f = dnc_mod_find(m, cases[c].fn);
    points(f, cases[c].truth, 1, N, -4, 4, 0.02, x, y);
    dnc_fit_result r = fit(m, cases[c].fn, x, y, N, cases[c].start, NULL, 0);
    is_int(r.status, DNC_FIT_OK, "%s with noise: converges", cases[c].fn);
    for (int j = 0; j < f->nparams; j++) {
      double err = fabs(r.value[j] - cases[c].truth[j]);
      ok(r.se[j] > 0 && err <= 3 * r.se[j],
         "%s with noise: parameter %s = %.6g within 3 standard errors "
         "(%.3g) of %g", cases[c].fn, f->params[j].name, r.value[j],
         r.se[j], cases[c].truth[j]);
    }
    /* the noise is 0.02: the residual says so */
    is_double(r.rms, 0.02, 0.002, "%s with noise: rms residual near the "
              "noise's 0.02", cases[c].fn);
    dnc_fit_result_free(&r);
  }
}

/* Points computed in double, as a user's script computes them (math.erf,
 * numpy.tanh): the fit matches them to rounding, where no step lowers the
 * sum of squares and the gradient's cosine is that of rounding noise.
 * That is an exact fit; it was reported stalled (cosine 0.2 for erf, 0.003
 * for tanh). */
static void exact_in_double(dnc_mod *m)
{
  enum { N = 400 };
  double x[N], y[N];
  struct {
    const char *fn;
    double (*g)(double, const double *);
    double truth[2], start[2];
  } cases[] = {
      {"derf", derf_double, {0.8, 0.1}, {0.5, 0}},
      {"dyt", dyt_double, {0.8}, {0.5}},
      {"decay", decay_double, {2.5, 0.4}, {1, 1}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const dnc_fn *f = dnc_mod_find(m, cases[c].fn);
    for (int i = 0; i < N; i++) {
      x[i] = -4 + 8.0 * i / (N - 1);
      y[i] = cases[c].g(x[i], cases[c].truth);
    }
    dnc_fit_result r = fit(m, cases[c].fn, x, y, N, cases[c].start, NULL, 0);
    is_int(r.status, DNC_FIT_OK, "%s, points in double: an exact fit (%s)",
           cases[c].fn, r.why);
    ok(strstr(r.why, "exact fit") != NULL, "... said to be exact (%s)",
       r.why);
    for (int j = 0; j < f->nparams; j++)
      is_double(r.value[j], cases[c].truth[j], 1e-13 * fabs(cases[c].truth[j]),
                "... parameter %s recovered", f->params[j].name);
    ok(r.rms < 1e-15, "... residual %.3g is rounding only", r.rms);
    dnc_fit_result_free(&r);
  }
  /* noise of 1e-10, far above rounding and far below the 0.02 above: the
   * fit converges by the other tests, not called exact */
  for (int i = 0; i < N; i++) {
    x[i] = -4 + 8.0 * i / (N - 1);
    y[i] = erf(0.8 * x[i] + 0.1) + 1e-10 * normal();
  }
  double start[2] = {0.5, 0};
  dnc_fit_result r = fit(m, "derf", x, y, N, start, NULL, 0);
  is_int(r.status, DNC_FIT_OK, "derf with noise of 1e-10: converges (%s)",
         r.why);
  ok(strstr(r.why, "exact fit") == NULL, "... not called exact (%s)", r.why);
  is_double(r.rms, 1e-10, 2e-11, "... rms residual near the noise's 1e-10");
  dnc_fit_result_free(&r);
}

static void fixed_parameter(dnc_mod *m)
{
  double x[40], y[40];
  double truth[2] = {0.8, 0.3};
  points(dnc_mod_find(m, "derf"), truth, 1, 40, -3, 3, 0, x, y);
  double start[2] = {0.5, 0.3};
  int fixed[2] = {0, 1};
  dnc_fit_result r = fit(m, "derf", x, y, 40, start, fixed, 0);
  is_double(r.value[0], 0.8, 1e-12, "--fix: the free parameter recovered");
  is_double(r.value[1], 0.3, 0, "--fix: the fixed one kept to the bit");
  ok(isnan(r.se[1]), "--fix: no standard error for a fixed parameter");
  dnc_fit_result_free(&r);
}

static void failures(dnc_mod *m)
{
  double x[20], y[20];
  for (int i = 0; i < 20; i++) {
    x[i] = i;
    y[i] = 2 * i + 1;
  }
  double p[3] = {1, 1, 1};
  dnc_fit_result r = fit(m, "both", x, y, 20, p, NULL, 0);
  is_int(r.status, DNC_FIT_ILLPOSED, "a * b * x: ill-posed");
  ok(r.bad_param == 0 || r.bad_param == 1, "... naming a or b");
  dnc_fit_result_free(&r);
  r = fit(m, "unused", x, y, 20, p, NULL, 0);
  is_int(r.status, DNC_FIT_ILLPOSED, "a parameter f does not use: ill-posed");
  is_int(r.bad_param, 1, "... naming it");
  dnc_fit_result_free(&r);
  r = fit(m, "derf", x, y, 1, p, NULL, 0);
  is_int(r.status, DNC_FIT_TOOFEW, "1 point for 2 parameters: too few");
  dnc_fit_result_free(&r);
  r = fit(m, "logshift", x, y, 20, p, NULL, 0);
  is_int(r.status, DNC_FIT_NONFINITE, "log(x - 1) at x = 0: not finite");
  is_int(r.bad_point, 0, "... at the first point");
  is_int(r.bad_param, -1, "... f itself, not a derivative");
  dnc_fit_result_free(&r);
  /* sqrt(a |x|) b is 0 at x = 0, its derivative in a |x| / (2 sqrt(a
   * |x|)) b: 0 / 0 */
  r = fit(m, "power", x, y, 20, p, NULL, 0);
  is_int(r.status, DNC_FIT_NONFINITE,
         "d/da sqrt(a |x|) at x = 0: not finite (%s)", r.why);
  is_int(r.bad_point, 0, "... at the first point");
  is_int(r.bad_param, 0, "... naming a, whose derivative it is");
  dnc_fit_result_free(&r);
  /* a point that is not finite: refused as such, not blamed on f or a
   * derivative "at the start" */
  for (int k = 0; k < 2; k++) {
    double xs = x[3], ys = y[3];
    (k ? y : x)[3] = k ? NAN : INFINITY;
    r = fit(m, "derf", x, y, 20, p, NULL, 0);
    is_int(r.status, DNC_FIT_NONFINITE, "a point with %s: not finite",
           k ? "y = nan" : "x = inf");
    ok(r.bad_point == 3 && r.bad_param == -1 &&
           strstr(r.why, "point 4 (x = ") &&
           strstr(r.why, "is not finite; the points must be finite"),
       "... naming the point, not a parameter (%s)", r.why);
    dnc_fit_result_free(&r);
    x[3] = xs;
    y[3] = ys;
  }
  dnc_fit_result_free(NULL); /* does nothing */
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  o.max_iter = 1;
  for (int i = 0; i < 20; i++)
    y[i] = 2.5 * exp(-0.4 * x[i]);
  dnc_fit(m, dnc_mod_find(m, "decay"), x, y, 20, p, NULL, &o, &r);
  is_int(r.status, DNC_FIT_MAXITER, "one iteration allowed: the iteration "
         "limit (%s)", r.why);
  ok(r.rms > 0, "... and a result to show all the same");
  dnc_fit_result_free(&r);
  /* erf(5 x + 5) is 1 to the last bit at every point: f is flat in its
   * parameters, yet far from the points */
  double start[2] = {5, 5};
  for (int i = 0; i < 20; i++)
    y[i] = erf(0.8 * (x[i] - 10) / 4 + 0.3);
  dnc_fit(m, dnc_mod_find(m, "derf"), x, y, 20, start, NULL, NULL, &r);
  is_int(r.status, DNC_FIT_STALLED, "a saturated start: stalled (%s)",
         r.why);
  dnc_fit_result_free(&r);
}

/* a exp(-b x) started at b = -50 (exp(50 x): the model 1e106 times the
 * points at the far end): the step in a shrinks a by orders of magnitude
 * while the damping, scaled by the largest curvature so far, keeps the
 * steps tiny. A tiny step there is not convergence: it was reported as
 * one, status OK with an rms residual of 1e89 (points of size 2.5). A
 * fit said to converge is no worse than a = 0 (the model 0). */
static void no_false_convergence(dnc_mod *m)
{
  double x[50], y[50], yy = 0;
  for (int i = 0; i < 50; i++) {
    x[i] = i / 10.0;
    y[i] = 2.5 * exp(-0.7 * x[i]);
    yy += y[i] * y[i];
  }
  static const double starts[] = {-20, -30, -50, -100};
  for (int t = 0; t < 4; t++) {
    double p[2] = {1, starts[t]};
    dnc_fit_result r = fit(m, "decay", x, y, 50, p, NULL, 0);
    ok(r.status != DNC_FIT_OK || r.ssq <= yy * (1 + 1e-12),
       "a exp(-b x) from b = %g: converged only where it fits no worse "
       "than 0 (status %d, ssq %g against %g: %s)", starts[t], r.status,
       r.ssq, yy, r.why);
    dnc_fit_result_free(&r);
  }
  double p[2] = {1, -1};
  dnc_fit_result r = fit(m, "decay", x, y, 50, p, NULL, 0);
  ok(r.status == DNC_FIT_OK && fabs(r.value[0] - 2.5) < 1e-12 &&
         fabs(r.value[1] - 0.7) < 1e-12,
     "... and from b = -1, a = 2.5 and b = 0.7 recovered (%s)", r.why);
  dnc_fit_result_free(&r);
}

static void reference_points(dnc_mod *m)
{
  dnc_refpoints t;
  dnc_ref_defaults(&t);
  double *x, *y;
  int n;
  dnc_ref_points(&t, &x, &y, &n);
  is_int(n, 2 * t.steps, "layernorm: 2 * steps points");
  int mirrored = 1, rising = 1, below = 1;
  for (int i = 0; i < n; i++) {
    mirrored &= x[i] == -x[n - 1 - i] && y[i] == -y[n - 1 - i];
    if (i)
      rising &= x[i] > x[i - 1] && (i == n / 2 || y[i] > y[i - 1]);
    below &= fabs(y[i]) < sqrt((double)t.channels);
  }
  ok(mirrored, "layernorm: the points are mirrored");
  ok(rising, "layernorm: x and the normalized outlier rise together");
  ok(below, "layernorm: |y| < sqrt(C)");
  is_double(x[n - 1], 4 * sqrt(512.0), 1e-12, "layernorm: the outlier "
            "reaches 4 sqrt(C)");
  double p[2] = {0.5, 301.1};
  dnc_fit_result dyt = fit(m, "dyt", x, y, n, p, NULL, 1);
  dnc_fit_result isru = fit(m, "dyisru", x, y, n, p + 1, NULL, 1);
  ok(dyt.status == DNC_FIT_OK && isru.status == DNC_FIT_OK,
     "layernorm: both fits converge");
  ok(isru.rms * 20 < dyt.rms, "layernorm: DyISRU (rms %.3g) is far closer "
     "than DyT (rms %.3g)", isru.rms, dyt.rms);
  is_double(isru.gain, sqrt(512.0), 0.01 * sqrt(512.0), "layernorm: "
            "DyISRU's gain is about sqrt(C)");
  dnc_fit_result_free(&dyt);
  dnc_fit_result_free(&isru);
  free(x);
  free(y);

  /* RMSNorm's outlier is exactly sqrt(C) x / sqrt(S + C eps + x^2): DyISRU
   * with gamma = sqrt(C) */
  t.kind = DNC_TARGET_RMSNORM;
  t.channels = 64;
  t.dist = DNC_DIST_UNIFORM;
  dnc_ref_points(&t, &x, &y, &n);
  isru = fit(m, "dyisru", x, y, n, p + 1, NULL, 1);
  is_double(isru.gain, 8, 1e-9, "rmsnorm: DyISRU's gain is sqrt(C) = 8");
  ok(isru.rms < 1e-12, "rmsnorm: DyISRU fits exactly (rms %.3g)", isru.rms);
  dnc_fit_result_free(&isru);
  free(x);
  free(y);

  /* seeded: the same seed gives the same points, another seed others */
  double *x2, *y2, *x3, *y3;
  t.seed = 7;
  dnc_ref_points(&t, &x, &y, &n);
  dnc_ref_points(&t, &x2, &y2, &n);
  t.seed = 8;
  dnc_ref_points(&t, &x3, &y3, &n);
  ok(!memcmp(x, x2, sizeof *x * n) && !memcmp(y, y2, sizeof *y * n),
     "the same seed gives the same points");
  ok(memcmp(y, y3, sizeof *y * n) != 0, "another seed gives other points");
  free(x);
  free(y);
  free(x2);
  free(y2);
  free(x3);
  free(y3);
}

int main(void)
{
  dnc_mod *m = build(src);
  if (!m) {
    ok(0, "the test source builds");
    return done_testing();
  }
  exact_recovery(m);
  noisy_recovery(m);
  exact_in_double(m);
  fixed_parameter(m);
  failures(m);
  no_false_convergence(m);
  reference_points(m);
  dnc_mod_free(m);
  return done_testing();
}
