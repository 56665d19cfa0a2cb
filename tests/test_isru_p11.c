/*
 * test_isru_p11.c - the inverse square root unit as users spell it,
 * where u^2 overflows (|x| > 1.8e19 in f32, 1.3e154 in f64): the
 * quotient was 0, not its finite limit, and its derivatives 0 or NaN,
 * for every spelling but u / sqrt(c + u^2) and u * rsqrt(c + u^2) with
 * the same u in both places:
 *
 *   x / (beta + x^2)^0.5         0, not 1, at x = 1e20 in f32
 *   x / sqrt(1 + beta x^2)       0, not 1/sqrt(beta)
 *   x / sqrt(beta + (2 x)^2)     0, not 0.5
 *
 * rewrite.c's isru now takes n / sqrt(c + t) (and n * rsqrt, n / (..)^0.5,
 * n * (..)^-0.5) with t of degree 2 in some u (the input, or the base of
 * a square), and isru_deriv the derivatives n / (v sqrt(v)) with n of
 * degree 1 to 3; diff.c's isru_rule writes d/dparam of a parameter in
 * the square in that form. Each kernel (element-wise and layer, f32,
 * f64, bf16, f16, x86-64-v2 and the host) must give the interpreter's
 * forward and derivatives (long double, where nothing overflows) at the
 * overflow points and at ordinary ones: the same class, and within a
 * few ulp of the dtype or its smallest normal.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnc.h"
#include "dtypes.h"
#include "interp_agree.h"
#include "tap.h"

static const char *src =
    "fn pow_half(x; beta = 3) = x / (beta + x^2)^0.5\n"
    "fn pow_mhalf(x; beta = 3) = x * (beta + x^2)^-0.5\n"
    "fn coef(x; beta = 3) = x / sqrt(1 + beta * x^2)\n"
    "fn coef_r(x; beta = 3) = x * rsqrt(1 + beta * x * x)\n"
    "fn coef_div(x; s = 0.25) = x / sqrt(1 + x^2 / s)\n"
    "fn twox(x; beta = 3) = x / sqrt(beta + (2 * x)^2)\n"
    "fn alphax(x; alpha = 2) = x / sqrt(1 + (alpha * x)^2)\n"
    "fn alpha2(x; alpha = 2) = alpha * x / sqrt(1 + alpha^2 * x^2)\n"
    "fn gain(x; g = 1.5, beta = 3) = g * x / sqrt(beta + x^2)\n"
    "fn rev(x; beta = 3) = x / sqrt(x^2 + beta)\n"
    "fn recip(x; beta = 3) = 1 / sqrt(beta + x^2)\n"
    "fn shifted(x; mu = 0.5, beta = 3) = (x - mu) / sqrt(beta + (x - mu)^2)\n"
    "fn isru_a(x; a = 1.5, c = 2) = a * x / sqrt(c + (a * x)^2)\n"
    /* d/da is x c / (v sqrt(v)): x c overflowed in f32 (x = c = 1e20) */
    "fn isru_c(x; a = 1, c = 1e20) = a * x / sqrt(c + (a * x)^2)\n"
    /* the rational forms: 0, not 1/(a^2 x), and NaN (inf/inf), not 1;
     * their derivatives 0 * inf = NaN by the quotient rule */
    "fn ratl(x; a = 2) = x / (1 + (a * x)^2)\n"
    "fn ratl2(x; beta = 3) = x^2 / (beta + x^2)\n"
    /* DyISRU's derivative as a function: its derivatives (DyISRU's
     * second) were 0 * inf = NaN where v overflows (x = 1e20 in f32) */
    "fn dyisru_dx(x; beta = 301.1) = beta / ((beta + x^2) * sqrt(beta + x^2))\n"
    "fn dyisru_db(x; beta = 301.1) = -0.5 * (x / ((beta + x^2) * sqrt(beta + x^2)))\n"
    /* tanh' and sigmoid' as functions: their derivatives by the product
     * rule cancelled near 0 (diff.c's sigmoid_pair_rule) */
    "fn dyt_dx(x; alpha = 1) = 4 * (alpha * (sigmoid(-2 * (alpha * x)) * "
    "sigmoid(2 * (alpha * x))))\n"
    "fn sig_dx(x; a = 1) = sigmoid(a * x) * sigmoid(-(a * x))\n"
    /* a x itself overflows (4 * 3e38 in f32): u is x, not a x */
    "fn big_a(x; a = 4) = a * x / sqrt(1 + (a * x)^2)\n";

static const double xs[] = {0.0, 1e-30, 0.5, 3, 30, 1e6, 1e10, 1e13, 1e19,
                            1e20, 1e30, 1e38, 3e38, 1e103, 1e155, 1e200,
                            1e300, DBL_MAX};

static void check_fn(dnc_context *ctx, const char *cpu, const dnc_function *f)
{
  const char *name = dnc_function_name(f);
  int np = dnc_function_param_count(f);
  dnc_module *dm[3] = {0};
  const dnc_function *dfx = derivative(ctx, f, "x", &dm[0]);
  const dnc_function *dfp[2] = {0};
  for (int k = 0; k < np && k < 2; k++)
    dfp[k] = derivative(ctx, f, param_name(f, k), &dm[k + 1]);
  if (!ok(dfx != NULL && (np < 1 || dfp[0]) && (np < 2 || dfp[1]),
          "%s: the interpreter's derivatives", name))
    return;
  for (int t = 0; t < 4; t++) {
    int bad = 0, n = 0, shown = 0;
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
      for (int sign = 1; sign >= -1; sign -= 2) {
        char xb[8], yb[8], lyb[8], dyb[8], dxb[8], ldxb[8];
        double x = store(t, sign * xs[i], xb);
        if (!isfinite(x)) /* beyond the dtype */
          continue;
        store(t, 1.0, dyb);
        dnc_tensor tx = {xb, t, 1, 1, 0}, ty = {yb, t, 1, 1, 0},
                   ly = {lyb, t, 1, 1, 0}, tdy = {dyb, t, 1, 1, 0},
                   tdx = {dxb, t, 1, 1, 0}, ldx = {ldxb, t, 1, 1, 0};
        double dp[2] = {0}, ldp[2] = {0}, want;
        dnc_layer_grad g = {ldp, NULL, NULL, NULL};
        if (dnc_forward(f, &tx, &ty, NULL) != DNC_OK ||
            dnc_layer_forward(f, &tx, &ly, NULL) != DNC_OK ||
            dnc_backward(f, &tx, &tdy, &tdx, NULL, dp) != DNC_OK ||
            dnc_layer_backward(f, &tx, &tdy, &ldx, NULL, &g) != DNC_OK) {
          bad++;
          continue;
        }
        const char *what[8];
        double gv[8], wv[8];
        int nv = 0;
        dnc_function_eval(f, &x, &want, 1, NULL);
        what[nv] = "f", gv[nv] = load(t, yb), wv[nv++] = round_to(t, want);
        what[nv] = "f (layer)", gv[nv] = load(t, lyb), wv[nv++] = round_to(t, want);
        dnc_function_eval(dfx, &x, &want, 1, NULL);
        what[nv] = "df/dx", gv[nv] = load(t, dxb), wv[nv++] = round_to(t, want);
        what[nv] = "df/dx (layer)", gv[nv] = load(t, ldxb), wv[nv++] = round_to(t, want);
        for (int k = 0; k < np && k < 2; k++) {
          dnc_function_eval(dfp[k], &x, &want, 1, NULL);
          double w = t == DNC_F64 ? want : (double)(float)want;
          what[nv] = param_name(f, k), gv[nv] = dp[k], wv[nv++] = w;
          what[nv] = "layer sum", gv[nv] = ldp[k], wv[nv++] = w;
        }
        for (int v = 0; v < nv; v++) {
          n++;
          if (!agree(t, gv[v], wv[v])) {
            bad++;
            if (shown++ < 4)
              diag("%s %s %s at x = %g: %s kernel %.17g, interpreter %.17g",
                   cpu, name, dnc_dtype_name(t), x, what[v], gv[v], wv[v]);
          }
        }
      }
    ok(bad == 0, "%s, %s, %s: %d values of f and its derivatives as the "
       "interpreter's, ordinary x and x whose square overflows", cpu, name,
       dnc_dtype_name(t), n);
  }
  for (int k = 0; k < 3; k++)
    dnc_module_free(dm[k]);
}

int main(void)
{
  const char *cpus[] = {"x86-64-v2", NULL};
  for (int c = 0; c < 2; c++) {
    dnc_options o;
    dnc_options_init(&o);
    o.cpu = cpus[c];
    o.threads = 1;
    dnc_context *ctx;
    if (dnc_context_create(&o, &ctx) != DNC_OK) {
      ok(1, "# SKIP no context for %s: %s", cpus[c], dnc_last_error());
      continue;
    }
    dnc_module *m;
    if (dnc_compile_string(ctx, "s.dn", src, strlen(src), &m) != DNC_OK) {
      printf("Bail out! the test source does not compile\n");
      return 1;
    }
    for (int i = 0; i < dnc_module_function_count(m); i++)
      check_fn(ctx, cpus[c] ? cpus[c] : "host", dnc_module_function(m, i));
    dnc_module_free(m);
    dnc_context_free(ctx);
  }
  return done_testing();
}
