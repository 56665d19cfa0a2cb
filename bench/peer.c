/*
 * peer.c - the peer a C programmer would write: DyT, Derf and DyISRU as
 * layers (y = gamma[c] * f(x) + beta[c]) with their fused backward, one
 * plain loop each, compiled with gcc -O3 -march=native -ffast-math so
 * that tanhf, erff and expf become glibc's libmvec calls, float sums, and
 * the textbook derivatives (1 - t^2 for tanh). bench/kernels.c times it
 * against dnc's kernels in the same run (peer_c/<fn>/fwdbwd_vs_dnc).
 */
#include <math.h>

#include "peer.h"

void peer_forward(int fn, const float *restrict x, float *restrict y, long rows, long cols,
                  const float *restrict p, const float *restrict g,
                  const float *restrict b)
{
  float p0 = p[0], p1 = p[1];
  for (long r = 0; r < rows; r++) {
    const float *restrict xr = x + r * cols;
    float *restrict yr = y + r * cols;
    if (fn == PEER_DYT)
      for (long c = 0; c < cols; c++)
        yr[c] = g[c] * tanhf(p0 * xr[c]) + b[c];
    else if (fn == PEER_DERF)
      for (long c = 0; c < cols; c++)
        yr[c] = g[c] * erff(p0 * xr[c] + p1) + b[c];
    else
      for (long c = 0; c < cols; c++)
        yr[c] = g[c] * (xr[c] / sqrtf(p0 + xr[c] * xr[c])) + b[c];
  }
}

void peer_backward(int fn, const float *restrict x, const float *restrict dy,
                   float *restrict dx, long rows, long cols,
                   const float *restrict p, const float *restrict g,
                   float *restrict dp, float *restrict dg, float *restrict db)
{
  float d0 = 0, d1 = 0, p0 = p[0], p1 = p[1];
  for (long c = 0; c < cols; c++)
    dg[c] = db[c] = 0;
  for (long r = 0; r < rows; r++) {
    const float *restrict xr = x + r * cols, *restrict dyr = dy + r * cols;
    float *restrict dxr = dx + r * cols;
    if (fn == PEER_DYT) {
      for (long c = 0; c < cols; c++) {
        float t = tanhf(p0 * xr[c]);
        float gd = dyr[c] * g[c] * (1 - t * t);
        dxr[c] = gd * p0;
        d0 += gd * xr[c];
        dg[c] += dyr[c] * t;
        db[c] += dyr[c];
      }
    } else if (fn == PEER_DERF) {
      for (long c = 0; c < cols; c++) {
        float u = p0 * xr[c] + p1;
        float gd = dyr[c] * g[c] * 1.1283791670955126f * expf(-u * u);
        dxr[c] = gd * p0;
        d0 += gd * xr[c];
        d1 += gd;
        dg[c] += dyr[c] * erff(u);
        db[c] += dyr[c];
      }
    } else {
      for (long c = 0; c < cols; c++) {
        float q = p0 + xr[c] * xr[c];
        float rs = 1 / sqrtf(q);
        float f = xr[c] * rs;
        float gd = dyr[c] * g[c] * rs / q;
        dxr[c] = gd * p0;
        d0 += -0.5f * gd * xr[c];
        dg[c] += dyr[c] * f;
        db[c] += dyr[c];
      }
    }
  }
  dp[0] = d0;
  dp[1] = d1;
}
