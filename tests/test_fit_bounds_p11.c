/*
 * test_fit_bounds_p11.c - dnc_function_fit_bounded (fit.c, api.c): a fit
 * whose minimum without bounds lies outside them ends on the bound, with
 * the other parameters those of the fit that holds it there (and, for
 * Derf, scipy.optimize.least_squares(bounds=...)'s); a fit within its
 * bounds is the fit without them; a parameter at a bound is reported, with
 * no standard error; every refused bound is DNC_ERR_ARGUMENT with the
 * parameter named in dnc_last_error() and the result cleared.
 */
#include <math.h>
#include <string.h>

#include "dnc.h"
#include "tap.h"

static const char *src =
    "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n"
    "fn dyisru(x; beta = 1) = x / sqrt(beta + x^2)\n"
    "fn decay(x; a = 1, b = 1) = a * exp(-b * x)\n"
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";

static const dnc_function *derf, *dyisru, *decay, *dyt;

/* n points of f with parameters p on [lo, hi], times gain */
static void points(const dnc_function *f, const double *p, double gain,
                   int n, double lo, double hi, double *x, double *y)
{
  for (int i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * i / (n - 1);
  dnc_function_eval(f, x, y, (size_t)n, p);
  for (int i = 0; i < n; i++)
    y[i] *= gain;
}

static int contains(const char *s, const char *part)
{
  return s && strstr(s, part) != NULL;
}

/* Derf fitted to erf(0.8 x - 0.3) with s in [0, 1]: s ends at 0 (scipy's
 * least_squares(bounds=([-inf, 0], [inf, 1])) too, active_mask -1), alpha
 * where the fit with s fixed at 0 puts it: the root of dS/dalpha at s = 0,
 * 0.73409551823719597533 (mpmath, 40 digits; scipy's dogbox and trf,
 * tolerances 1e-15, stop 1.5e-9 short of it, at 0.73409551672438933) */
static void lower_bound_active(void)
{
  double x[60], y[60], truth[2] = {0.8, -0.3}, start[2] = {0.5, 0.5};
  points(derf, truth, 1, 60, -5, 5, x, y);
  double lo[2] = {-INFINITY, 0}, hi[2] = {INFINITY, 1};
  int at[3] = {7, 7, 7};
  dnc_fit_result r, rf;
  is_int(dnc_function_fit_bounded(derf, x, y, 60, start, NULL, lo, hi, NULL,
                                  &r, at), DNC_OK, "derf, s in [0, 1]: runs");
  is_int(r.status, DNC_FIT_OK, "derf, s in [0, 1]: converges (%s)", r.why);
  ok(r.value[1] == 0, "derf: s ends exactly at its lower bound 0 (%.17g), "
     "not at the unbounded -0.3", r.value[1]);
  is_int(at[1], -1, "derf: at_bound says s is at its lower bound");
  is_int(at[0], 0, "derf: alpha is not at a bound");
  is_int(at[2], 0, "derf: gamma (no gain) is not at a bound");
  ok(isnan(r.se[1]), "derf: s at its bound has no standard error");
  is_double(r.value[0], 0.73409551823719597533, 1e-14, "derf: alpha = "
            "%.17g, the constrained minimum (scipy: within 2e-9)",
            r.value[0]);
  double s0[2] = {0.5, 0};
  int fixed[2] = {0, 1};
  dnc_function_fit(derf, x, y, 60, s0, fixed, NULL, &rf);
  is_double(r.value[0], rf.value[0], 1e-13 * rf.value[0], "derf: alpha "
            "is that of the fit with s fixed at 0 (%.17g)", rf.value[0]);
  is_double(r.se[0], rf.se[0], 1e-9 * rf.se[0], "derf: alpha's standard "
            "error is that with s held at its bound (%.6g)", rf.se[0]);
  is_double(r.ssq, rf.ssq, 1e-12 * rf.ssq, "derf: the same sum of squares");
  dnc_fit_result_free(&r);
  dnc_fit_result_free(&rf);
}

/* a exp(-b x) fitted to 2.5 exp(-0.4 x) with a <= 2: a ends at 2 */
static void upper_bound_active(void)
{
  double x[40], y[40], truth[2] = {2.5, 0.4}, start[2] = {1, 1};
  points(decay, truth, 1, 40, 0, 5, x, y);
  double hi[2] = {2, INFINITY};
  int at[3];
  dnc_fit_result r, rf;
  dnc_function_fit_bounded(decay, x, y, 40, start, NULL, NULL, hi, NULL, &r,
                           at);
  is_int(r.status, DNC_FIT_OK, "decay, a <= 2: converges (%s)", r.why);
  ok(r.value[0] == 2 && at[0] == 1, "decay: a ends at its upper bound 2 "
     "(%.17g, at_bound %d)", r.value[0], at[0]);
  double s2[2] = {2, 1};
  int fixed[2] = {1, 0};
  dnc_function_fit(decay, x, y, 40, s2, fixed, NULL, &rf);
  is_double(r.value[1], rf.value[1], 1e-12 * rf.value[1], "decay: b = "
            "%.17g, that of the fit with a fixed at 2", rf.value[1]);
  ok(r.value[1] < 0.4, "decay: b (%.6g) below the truth 0.4, to make up "
     "for the smaller a", r.value[1]);
  dnc_fit_result_free(&r);
  dnc_fit_result_free(&rf);
}

/* DyISRU fitted to x / sqrt(x^2 - 0.3) for 1 <= |x| <= 4.9: without
 * bounds beta = -0.3 exactly (NaN for |x| < 0.55); with beta >= 0 it ends
 * at 0, whose sum of squares is below that of beta = 1e-3 */
static void dyisru_beta(void)
{
  double x[80], y[80];
  for (int i = 0; i < 40; i++) {
    double v = 1 + i * 0.1;
    x[2 * i] = -v;
    x[2 * i + 1] = v;
    y[2 * i] = -v / sqrt(v * v - 0.3);
    y[2 * i + 1] = v / sqrt(v * v - 0.3);
  }
  double start = 1, lo = 0;
  int at[2];
  dnc_fit_result r;
  dnc_function_fit(dyisru, x, y, 80, &start, NULL, NULL, &r);
  is_double(r.value[0], -0.3, 1e-12, "dyisru: without bounds beta walks to "
            "-0.3");
  dnc_fit_result_free(&r);
  dnc_function_fit_bounded(dyisru, x, y, 80, &start, NULL, &lo, NULL, NULL,
                           &r, at);
  is_int(r.status, DNC_FIT_OK, "dyisru, beta >= 0: converges (%s)", r.why);
  ok(r.value[0] == 0 && at[0] == -1, "dyisru: beta ends at its lower bound "
     "0 (%.17g)", r.value[0]);
  double m[80], b1 = 1e-3, s1 = 0;
  dnc_function_eval(dyisru, x, m, 80, &b1);
  for (int i = 0; i < 80; i++)
    s1 += (y[i] - m[i]) * (y[i] - m[i]);
  ok(r.ssq < s1, "dyisru: the sum of squares at the bound (%.6g) is below "
     "that just inside it (%.6g)", r.ssq, s1);
  dnc_fit_result_free(&r);
}

/* bounds that are not reached change nothing: Derf to erf(0.8 x + 0.3)
 * with alpha in [0, 5] and s in [-1, 1]; also a start on a bound that the
 * gradient leads away from */
static void inactive_bounds(void)
{
  double x[60], y[60], truth[2] = {0.8, 0.3}, start[2] = {0.5, 0};
  points(derf, truth, 1, 60, -5, 5, x, y);
  double lo[2] = {0, -1}, hi[2] = {5, 1};
  int at[3];
  dnc_fit_result r, ru;
  dnc_function_fit(derf, x, y, 60, start, NULL, NULL, &ru);
  dnc_function_fit_bounded(derf, x, y, 60, start, NULL, lo, hi, NULL, &r,
                           at);
  is_int(r.status, DNC_FIT_OK, "derf within bounds: converges (%s)", r.why);
  for (int j = 0; j < 2; j++) {
    is_double(r.value[j], ru.value[j], 1e-13, "derf within bounds: "
              "parameter %d as without bounds (%.17g)", j, ru.value[j]);
    is_double(r.se[j], ru.se[j], 1e-9 * ru.se[j], "derf within bounds: "
              "standard error %d as without bounds", j);
    is_int(at[j], 0, "derf within bounds: parameter %d not at a bound", j);
  }
  dnc_fit_result_free(&r);
  double lo2[2] = {0.5, -1};
  dnc_function_fit_bounded(derf, x, y, 60, start, NULL, lo2, hi, NULL, &r,
                           at);
  is_double(r.value[0], 0.8, 1e-12, "derf started on alpha's lower bound "
            "0.5: leaves it for the truth 0.8");
  is_int(at[0], 0, "... and is not reported at the bound");
  dnc_fit_result_free(&r);
  dnc_fit_result_free(&ru);
}

/* the gain's bound: gamma <= 2.5 for 3 dyisru(x; 2) */
static void gain_bound(void)
{
  double x[60], y[60], truth = 2, start = 1;
  points(dyisru, &truth, 3, 60, -5, 5, x, y);
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  o.gain = 1;
  double lo[2] = {0, -INFINITY}, hi[2] = {INFINITY, 2.5};
  int at[2];
  dnc_fit_result r, rf;
  is_int(dnc_function_fit_bounded(dyisru, x, y, 60, &start, NULL, lo, hi, &o,
                                  &r, at), DNC_OK, "gain bounded: runs");
  is_int(r.status, DNC_FIT_OK, "gain bounded: converges (%s)", r.why);
  ok(r.gain == 2.5 && at[1] == 1 && isnan(r.gain_se), "gamma ends at its "
     "upper bound 2.5, no standard error (%.17g)", r.gain);
  o.gain_fixed = 1;
  o.gain_init = 2.5;
  dnc_function_fit(dyisru, x, y, 60, &start, NULL, &o, &rf);
  is_double(r.value[0], rf.value[0], 1e-10 * rf.value[0], "beta = %.17g, "
            "that with gamma fixed at 2.5", rf.value[0]);
  dnc_fit_result_free(&r);
  dnc_fit_result_free(&rf);
}

/* A least-squares gain outside gamma's bounds: gamma starts from
 * gain_init (put within them), not from the bound. Points of -3 tanh(0.7
 * x) = 3 tanh(-0.7 x) from alpha = 0.5 have a negative least-squares
 * gain; clipped onto gamma >= 0 it was 0, where alpha has no effect: "not
 * determined by the points at the starting values"; onto gamma >= 0.001,
 * alpha ran off to -3446 and stalled. */
static void gain_start_outside(void)
{
  double x[50], y[50], start = 0.5;
  for (int i = 0; i < 50; i++)
    x[i] = -4 + 8.0 * i / 49, y[i] = -3 * tanh(0.7 * x[i]);
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  o.gain = 1;
  for (int k = 0; k < 2; k++) {
    double lo[2] = {-INFINITY, k ? 0.001 : 0}, hi[2] = {INFINITY, INFINITY};
    dnc_fit_result r;
    int at[2];
    is_int(dnc_function_fit_bounded(dyt, x, y, 50, &start, NULL, lo, hi, &o,
                                    &r, at), DNC_OK, "-3 tanh(0.7 x), gamma "
           ">= %g: runs", lo[1]);
    is_int(r.status, DNC_FIT_OK, "  converges (%s)", r.why);
    ok(fabs(r.value[0] + 0.7) < 1e-9 && fabs(r.gain - 3) < 1e-9,
       "  alpha -0.7, gamma 3 (%.17g, %.17g)", r.value[0], r.gain);
    dnc_fit_result_free(&r);
  }
}

/* A fit that never ran (one point for two parameters) has no residuals
 * (NaN, not the 0 of an exact fit) and no parameter at a bound, though s
 * starts on its lower one */
static void never_ran(void)
{
  double x = 0.5, y = 0.4, start[2] = {0.5, 0};
  double lo[2] = {-INFINITY, 0}, hi[2] = {INFINITY, 1};
  int at[3] = {7, 7, 7};
  dnc_fit_result r;
  is_int(dnc_function_fit_bounded(derf, &x, &y, 1, start, NULL, lo, hi, NULL,
                                  &r, at), DNC_OK, "one point: runs");
  is_int(r.status, DNC_FIT_TOOFEW, "  too few points");
  ok(isnan(r.rms) && isnan(r.max_abs) && isnan(r.mean_abs) && isnan(r.ssq),
     "  rms, max_abs, mean_abs, ssq NaN (%g %g %g %g)", r.rms, r.max_abs,
     r.mean_abs, r.ssq);
  ok(at[0] == 0 && at[1] == 0 && at[2] == 0, "  at_bound all 0 (%d %d %d)",
     at[0], at[1], at[2]);
  dnc_fit_result_free(&r);
}

/* one refused call: DNC_ERR_ARGUMENT, the result cleared, the reason */
static void refused(const dnc_function *f, const double *start,
                    const int *fixed, const double *lo, const double *hi,
                    const dnc_fit_options *o, const char *part,
                    const char *what)
{
  double x[4] = {0, 1, 2, 3}, y[4] = {0, 0.5, 0.8, 0.9};
  dnc_fit_result r;
  memset(&r, 0x55, sizeof r);
  int at[3];
  dnc_status st = dnc_function_fit_bounded(f, x, y, 4, start, fixed, lo, hi,
                                           o, &r, at);
  is_int(st, DNC_ERR_ARGUMENT, "%s: refused", what);
  ok(r.value == NULL && r.se == NULL, "%s: the result is cleared", what);
  ok(contains(dnc_last_error(), "dnc_function_fit_bounded: ") &&
     contains(dnc_last_error(), part), "%s: '%s'", what, dnc_last_error());
  dnc_fit_result_free(&r);
}

static void refusals(void)
{
  double start[2] = {0.5, 0};
  double inf = INFINITY;
  refused(derf, start, NULL, (double[]){2, -inf}, (double[]){1, inf}, NULL,
          "the lower bound of 'alpha' (2) is above its upper bound (1)",
          "lower > upper");
  refused(derf, start, NULL, (double[]){-inf, NAN}, NULL, NULL,
          "the lower bound of 's' is NaN", "a NaN lower bound");
  refused(derf, start, NULL, NULL, (double[]){NAN, inf}, NULL,
          "the upper bound of 'alpha' is NaN", "a NaN upper bound");
  refused(derf, start, NULL, (double[]){inf, -inf}, NULL, NULL,
          "the lower bound of 'alpha' is inf", "a lower bound of +inf");
  refused(derf, start, NULL, NULL, (double[]){inf, -inf}, NULL,
          "the upper bound of 's' is -inf", "an upper bound of -inf");
  refused(derf, start, NULL, (double[]){0.5, -inf}, (double[]){0.5, inf},
          NULL, "the bounds of 'alpha' are equal (0.5)", "lower == upper");
  refused(derf, start, (int[]){0, 1}, (double[]){-inf, -1},
          (double[]){inf, 1}, NULL, "'s' is bounded but not fitted",
          "a bound on a fixed parameter");
  refused(derf, start, NULL, (double[]){1, -inf}, NULL, NULL,
          "the start of 'alpha', 0.5, is outside its bounds [1, inf]",
          "a start below the lower bound");
  refused(derf, NULL, NULL, NULL, (double[]){inf, -1}, NULL,
          "the start of 's', 0, is outside its bounds [-inf, -1]",
          "the source's default above the upper bound");
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  o.gain = 1;
  /* a free gamma starts at the least-squares gain within its bounds:
   * gain_init, only a fallback there, is not its start, and a default
   * 1 outside gamma's bounds [2, 4] was refused all the same */
  for (int k = 0; k < 3; k++) {
    o.gain_init = k == 0 ? 3 : k == 1 ? 1 : NAN;
    double gx[20], gy[20];
    for (int i = 0; i < 20; i++)
      gx[i] = -2 + 0.2 * i, gy[i] = 3 * erf(0.7 * gx[i]);
    dnc_fit_result r;
    int at[3];
    is_int(dnc_function_fit_bounded(derf, gx, gy, 20, start, NULL,
                                    (double[]){-inf, -inf, 2},
                                    (double[]){inf, inf, 4}, &o, &r, at),
           DNC_OK, "a free gamma in [2, 4] with gain_init %g: fitted",
           o.gain_init);
    ok(r.value && fabs(r.gain - 3) < 1e-6, "  gamma 3 (%g)",
       r.value ? r.gain : NAN);
    dnc_fit_result_free(&r);
  }
  o.gain_fixed = 1;
  o.gain_init = 1;
  refused(derf, start, NULL, NULL, (double[]){inf, inf, 2}, &o,
          "'gamma' is bounded but not fitted", "a bound on a fixed gamma");
  /* without a gain gamma's entry is not read: two values suffice */
  double x[4] = {0, 1, 2, 3}, y[4] = {0, 0.5, 0.8, 0.9};
  dnc_fit_result r;
  int at[3] = {9, 9, 9};
  is_int(dnc_function_fit_bounded(derf, x, y, 4, start, NULL, NULL, NULL,
                                  NULL, &r, at), DNC_OK,
         "no bounds at all: the fit of dnc_function_fit");
  ok(at[0] == 0 && at[1] == 0 && at[2] == 0, "... and at_bound all 0");
  dnc_fit_result_free(&r);
  /* the old entry point keeps its name in its refusals */
  dnc_fit_options bad;
  dnc_fit_options_init(&bad);
  bad.xtol = NAN;
  is_int(dnc_function_fit(derf, x, y, 4, start, NULL, &bad, &r),
         DNC_ERR_ARGUMENT, "dnc_function_fit still refuses a NaN xtol");
  ok(contains(dnc_last_error(), "dnc_function_fit: xtol is nan"),
     "... naming dnc_function_fit ('%s')", dnc_last_error());
}

int main(void)
{
  dnc_context *ctx = dnc_context_new();
  dnc_module *mod = NULL;
  if (!ctx ||
      dnc_compile_string(ctx, "bounds.dn", src, strlen(src), &mod) != DNC_OK) {
    ok(0, "the test source compiles");
    return done_testing();
  }
  derf = dnc_module_find(mod, "derf");
  dyisru = dnc_module_find(mod, "dyisru");
  decay = dnc_module_find(mod, "decay");
  dyt = dnc_module_find(mod, "dyt");
  lower_bound_active();
  upper_bound_active();
  dyisru_beta();
  inactive_bounds();
  gain_bound();
  gain_start_outside();
  never_ran();
  refusals();
  dnc_module_free(mod);
  dnc_context_free(ctx);
  return done_testing();
}
