/* peer.h - bench/peer.c's hand-written C layers (gcc -O3 -march=native
 * -ffast-math, libmvec). p: alpha (and s) for DyT and Derf, beta for
 * DyISRU; dp: their sums. */
#ifndef DNC_BENCH_PEER_H
#define DNC_BENCH_PEER_H
enum { PEER_DYT, PEER_DERF, PEER_DYISRU };
void peer_forward(int fn, const float *restrict x, float *restrict y, long rows, long cols,
                  const float *restrict p, const float *restrict g,
                  const float *restrict b);
void peer_backward(int fn, const float *restrict x, const float *restrict dy,
                   float *restrict dx, long rows, long cols,
                   const float *restrict p, const float *restrict g,
                   float *restrict dp, float *restrict dg, float *restrict db);
#endif
