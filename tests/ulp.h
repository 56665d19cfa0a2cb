/*
 * ulp.h - the unit in the last place that the C tests measure errors in:
 * of a float's or a double's binade at v, the subnormal spacing at the
 * bottom.
 */
#ifndef DNC_TEST_ULP_H
#define DNC_TEST_ULP_H

#include <float.h>
#include <math.h>

static inline double ulp32(double v)
{
  v = fabs(v);
  if (v < FLT_MIN)
    return 0x1p-149;
  int e;
  frexp(v, &e);
  return ldexp(1, e - 24);
}

static inline double ulp64(long double v)
{
  v = fabsl(v);
  if (v < DBL_MIN)
    return 0x1p-1074;
  int e;
  frexpl(v, &e);
  return ldexp(1, e - 53);
}

#endif
