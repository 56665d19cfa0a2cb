/*
 * ulp.h - the unit in the last place that the C tests measure errors in:
 * of v's binade in a format of p significand bits and least normal
 * exponent emin, the subnormal spacing below; ulp32 and ulp64 for float
 * and double, whose ulp at 0 is the subnormal spacing too.
 */
#ifndef DNC_TEST_ULP_H
#define DNC_TEST_ULP_H

#include <math.h>

static inline double ulp_fmt(long double v, int p, int emin)
{
  int e;
  frexpl(fabsl(v), &e);
  if (e - 1 < emin)
    e = emin + 1;
  return ldexp(1, e - p);
}

static inline double ulp32(double v)
{
  return v == 0 ? 0x1p-149 : ulp_fmt(v, 24, -126);
}

static inline double ulp64(long double v)
{
  return v == 0 ? 0x1p-1074 : ulp_fmt(v, 53, -1022);
}

#endif
