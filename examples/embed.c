/*
 * embed.c - libdnc inside a C program: compile DyT from a source string,
 * run its layer kernels forward and backward on a [4096 x 1024] f32
 * tensor, and check every output and gradient against a plain C reference
 * computed in double.
 *
 *   make examples         builds build/examples/embed and runs it
 *
 * Only runtime/dnc.h is used; docs/c-api.md is its manual. Exit status: 0
 * when everything matches, 1 otherwise (with a message on stderr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnc.h"

enum { ROWS = 4096, COLS = 1024 }; /* a [tokens x channels] activation */

static const char source[] = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
static const double alpha = 0.8; /* instead of the default 0.5 */

/* Tolerances. The kernels compute in f32, so an output may differ from the
 * double reference by a few units in the last place: at most 1e-6 of the
 * largest reference value (about 8 ulp). A gradient sum is accumulated in
 * double, so its error is that of its f32 terms: at most 1e-5 of the sum of
 * the terms' magnitudes (the scale of a sum whose terms may cancel). */
#define OUT_TOL 1e-6
#define SUM_TOL 1e-5

static void fail(const char *what, dnc_status st)
{
  /* dnc_last_error() says more after DNC_ERR_COMPILE, "" otherwise */
  const char *more = dnc_last_error();
  fprintf(stderr, "embed: %s: %s%s%s\n", what, dnc_status_string(st),
          *more ? ": " : "", more);
  exit(1);
}

/* Deterministic inputs: a 32-bit linear congruential generator (Numerical
 * Recipes' constants), scaled to [lo, hi). */
static float uniform(float lo, float hi)
{
  static uint32_t state = 12345;
  state = state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(state >> 8) / 16777216.0f;
}

/* |a - b| / scale, the largest seen so far kept in *worst */
static void track(double *worst, double a, double b, double scale)
{
  double e = fabs(a - b) / (scale > 0 ? scale : 1);
  if (!(e <= *worst)) /* a NaN counts as the worst */
    *worst = e;
}

int main(void)
{
  /* 1. A context (JIT and thread pool) and a module compiled in it. */
  dnc_context *ctx = dnc_context_new();
  if (!ctx) {
    fprintf(stderr, "embed: no context: %s\n", dnc_last_error());
    return 1;
  }
  dnc_module *mod = NULL;
  dnc_status st = dnc_compile_string(ctx, "dyt.dn", source, strlen(source), &mod);
  if (st != DNC_OK) {
    /* the diagnostics as dnc prints them: the length first, snprintf-style,
     * then the text (mod is NULL only when st is not DNC_ERR_SOURCE) */
    size_t len = dnc_module_format_diagnostics(mod, NULL, 0);
    char *text = malloc(len + 1);
    if (text && mod) {
      dnc_module_format_diagnostics(mod, text, len + 1);
      fputs(text, stderr);
    }
    fail("dyt.dn does not compile", st);
  }
  const dnc_function *dyt = dnc_module_find(mod, "dyt");
  int ia = dnc_function_param_index(dyt, "alpha"); /* 0: its only parameter */

  /* 2. Tensors: x and dy are inputs; y and dx receive the kernels' outputs.
   * gamma and beta (and their gradients) hold one value per channel, in
   * the compute type, float for f32 tensors. */
  size_t n = (size_t)ROWS * COLS;
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  float *dy = malloc(n * sizeof *dy), *dx = malloc(n * sizeof *dx);
  float gamma[COLS], beta[COLS], dgamma[COLS] = {0}, dbeta[COLS] = {0};
  if (!x || !y || !dy || !dx)
    fail("tensors", DNC_ERR_MEMORY);
  for (size_t i = 0; i < n; i++) {
    x[i] = uniform(-4, 4);
    dy[i] = uniform(-1, 1);
  }
  for (int c = 0; c < COLS; c++) {
    gamma[c] = uniform(0.5f, 1.5f);
    beta[c] = uniform(-0.5f, 0.5f);
  }
  dnc_tensor tx = {x, DNC_F32, ROWS, COLS, 0}; /* stride 0: rows are packed */
  dnc_tensor ty = {y, DNC_F32, ROWS, COLS, 0};
  dnc_tensor tdy = {dy, DNC_F32, ROWS, COLS, 0};
  dnc_tensor tdx = {dx, DNC_F32, ROWS, COLS, 0};

  /* 3. Forward, y = gamma * dyt(x; alpha) + beta, then the fused backward:
   * one pass gives dx and adds the parameter gradients to dparams, dgamma
   * and dbeta (which is why they start at zero). */
  double params[1], dparams[1] = {0};
  params[ia] = alpha;
  dnc_layer layer = {.params = params, .gamma = gamma, .beta = beta};
  dnc_layer_grad grad = {.params = dparams, .gamma = dgamma, .beta = dbeta};
  if ((st = dnc_layer_forward(dyt, &tx, &ty, &layer)))
    fail("dnc_layer_forward", st);
  if ((st = dnc_layer_backward(dyt, &tx, &tdy, &tdx, &layer, &grad)))
    fail("dnc_layer_backward", st);

  /* 4. The reference, in double, from the same f32 inputs; t = tanh(u) and
   * dt/du = 1 - t^2. The scales are the largest |y| and |dx| and, for each
   * sum, the sum of its terms' magnitudes. */
  static double rgamma[COLS], rbeta[COLS], mgamma[COLS], mbeta[COLS];
  double ralpha = 0, malpha = 0, ymax = 0, dxmax = 0, yerr = 0, dxerr = 0;
  for (int r = 0; r < ROWS; r++)
    for (int c = 0; c < COLS; c++) {
      size_t i = (size_t)r * COLS + c;
      double t = tanh(alpha * x[i]), g = dy[i] * (double)gamma[c];
      double yr = gamma[c] * t + beta[c], dxr = g * alpha * (1 - t * t);
      double da = g * x[i] * (1 - t * t);
      track(&yerr, y[i], yr, 1);
      track(&dxerr, dx[i], dxr, 1);
      ymax = fmax(ymax, fabs(yr));
      dxmax = fmax(dxmax, fabs(dxr));
      ralpha += da, malpha += fabs(da);
      rgamma[c] += dy[i] * t, mgamma[c] += fabs(dy[i] * t);
      rbeta[c] += dy[i], mbeta[c] += fabs(dy[i]);
    }
  yerr /= ymax, dxerr /= dxmax;
  double aerr = 0, cerr = 0; /* dalpha; dgamma and dbeta */
  track(&aerr, dparams[ia], ralpha, malpha);
  for (int c = 0; c < COLS; c++) {
    track(&cerr, dgamma[c], rgamma[c], mgamma[c]);
    track(&cerr, dbeta[c], rbeta[c], mbeta[c]);
  }

  /* 5. The verdict. */
  int threads = dnc_context_threads(ctx);
  if (!(yerr <= OUT_TOL && dxerr <= OUT_TOL && aerr <= SUM_TOL &&
        cerr <= SUM_TOL)) {
    fprintf(stderr,
            "embed: MISMATCH with the C reference: y err %.2g, dx err %.2g "
            "(limit %g of the largest value), dalpha err %.2g, "
            "dgamma/dbeta err %.2g (limit %g of the sum of magnitudes)\n",
            yerr, dxerr, OUT_TOL, aerr, cerr, SUM_TOL);
    return 1;
  }
  printf("embed: dyt [%d x %d] f32, %d thread%s: forward and backward match "
         "the C reference (max y err %.1e, max dx err %.1e, dalpha rel err "
         "%.1e, dgamma/dbeta rel err %.1e)\n",
         ROWS, COLS, threads, threads == 1 ? "" : "s", yerr, dxerr, aerr,
         cerr);

  /* 6. Modules before their context (either order works: the context
   * lives until its last module is freed). */
  free(x), free(y), free(dy), free(dx);
  dnc_module_free(mod);
  dnc_context_free(ctx);
  return 0;
}
