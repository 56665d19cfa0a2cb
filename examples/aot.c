/*
 * aot.c - a plain C program over a library `dnc compile` wrote: no LLVM,
 * no libdnc, only the header and the .so (`make examples` builds both from
 * examples/norms.dn and runs this):
 *
 *   dnc compile examples/norms.dn -o libnorms.so -H norms.h
 *   cc -std=c99 aot.c -L. -lnorms -Wl,-rpath,'$ORIGIN' -lm
 *
 * It runs DyT's forward and backward and Derf's layer forward in f32 and
 * checks them against the formulas in double.
 */
#include <math.h>
#include <stdio.h>

#include "norms.h"

enum { N = 9, C = 3 };

int main(void)
{
  const float x[N] = {-8, -2, -1, -0.25f, 0, 0.25f, 1, 2, 8};
  float y[N], dy[N], dx[N];
  double p[DNC_NPARAMS_dyt] = {DNC_DEFAULT_dyt_alpha}, dp[DNC_NPARAMS_dyt];
  double worst = 0;

  dnc_dyt_f32_fwd(x, y, N, p);
  for (int i = 0; i < N; i++)
    dy[i] = 1;
  dnc_dyt_f32_bwd(x, dy, dx, N, p, dp);
  printf("DyT, alpha = %g:\n     x        y = tanh(alpha x)   dy/dx\n", p[0]);
  for (int i = 0; i < N; i++) {
    double t = tanh(p[0] * x[i]);
    double e = fabs(y[i] - t) + fabs(dx[i] - p[0] * (1 - t * t));
    worst = e > worst ? e : worst;
    printf("%6g   %16.9f   %12.9f\n", x[i], y[i], dx[i]);
  }

  /* Derf as a layer over 3 rows of 3 channels: y = gamma erf(alpha x + s)
   * + beta */
  const float gamma[C] = {1, 0.5f, 2}, beta[C] = {0, 1, -1};
  double pd[DNC_NPARAMS_derf] = {DNC_DEFAULT_derf_alpha, DNC_DEFAULT_derf_shift};
  float out[N];
  dnc_derf_f32_layer_fwd(x, C, out, C, N / C, C, pd, NULL, gamma, beta);
  for (int i = 0; i < N; i++) {
    double want = gamma[i % C] * erf(pd[0] * x[i] + pd[1]) + beta[i % C];
    double e = fabs(out[i] - want);
    worst = e > worst ? e : worst;
  }
  printf("Derf layer, 3 x 3: row 0 = %.6f %.6f %.6f\n", out[0], out[1], out[2]);
  if (worst > 1e-6) {
    printf("the kernels differ from the formulas by %g\n", worst);
    return 1;
  }
  printf("the library's kernels match the formulas (max error %.2g)\n", worst);
  return 0;
}
