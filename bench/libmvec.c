/*
 * libmvec.c - the peer a C programmer gets for free: plain loops over
 * tanhf, erff and expf, compiled with gcc -O3 -march=native -ffast-math,
 * which vectorises them into calls of glibc's libmvec (_ZGV..._tanhf and
 * friends). Built with those flags alone (see the Makefile); used by
 * bench/incache.c.
 */
#include <math.h>

void libmvec_tanhf(const float *restrict x, float *restrict y, int n)
{
  for (int i = 0; i < n; i++)
    y[i] = tanhf(x[i]);
}

void libmvec_erff(const float *restrict x, float *restrict y, int n)
{
  for (int i = 0; i < n; i++)
    y[i] = erff(x[i]);
}

void libmvec_expf(const float *restrict x, float *restrict y, int n)
{
  for (int i = 0; i < n; i++)
    y[i] = expf(x[i]);
}
