/*
 * interp_agree.h - a kernel's value against the interpreter's (long
 * double) in one dtype, for the overflow tests (test_overflow_p10.c,
 * test_isru_p11.c): the same class (NaN, +-inf, finite), and finite ones
 * within the dtype's relative tolerance plus two of its smallest normals;
 * and the interpreter's first derivatives, compiled from dnc_function_diff.
 * test_specials.c takes it with its own tolerances (agree_rel).
 */
#ifndef DNC_INTERP_AGREE_H
#define DNC_INTERP_AGREE_H

#include <float.h>
#include <math.h>

#include "dnc.h"

static const double rel_tol[] = {[DNC_F32] = 4e-6, [DNC_F64] = 1e-13,
                                 [DNC_BF16] = 1.6e-2, [DNC_F16] = 2e-3};
static const double min_normal[] = {[DNC_F32] = FLT_MIN, [DNC_F64] = DBL_MIN,
                                     [DNC_BF16] = FLT_MIN,
                                     [DNC_F16] = 6.103515625e-05};

static const double min_subnormal[] = {[DNC_F32] = 0x1p-149,
                                       [DNC_F64] = 0x1p-1074,
                                       [DNC_BF16] = 0x1p-133,
                                       [DNC_F16] = 0x1p-24};

static inline int klass(double v)
{
  return isnan(v) ? 0 : isinf(v) ? (v > 0 ? 1 : -1) : 2;
}

/* the same class and, finite, within rel relative plus two smallest
 * normals; with nonzero set, a want that the dtype holds, if only as a
 * subnormal, is not given as 0 (x^-2 was 0 where x*x overflows) */
static inline int agree_rel(dnc_dtype t, double got, double want,
                            double rel, int nonzero)
{
  if (klass(got) != klass(want))
    return 0;
  if (klass(got) != 2)
    return 1;
  if (nonzero && got == 0 && fabs(want) >= 2 * min_subnormal[t])
    return 0;
  return fabs(got - want) <= rel * fabs(want) + 2 * min_normal[t];
}

static inline int agree(dnc_dtype t, double got, double want)
{
  return agree_rel(t, got, want, rel_tol[t], 0);
}

/* f's first derivative with respect to wrt, compiled into *keep in ctx
 * (the interpreter evaluates it); NULL when it cannot be had */
static inline const dnc_function *derivative(dnc_context *ctx,
                                             const dnc_function *f,
                                             const char *wrt,
                                             dnc_module **keep)
{
  char text[16384];
  size_t len;
  if (dnc_function_diff(f, wrt, 1, DNC_FORMAT_DSL, text, sizeof text, &len) !=
          DNC_OK ||
      dnc_compile_string(ctx, "d.dn", text, len, keep) != DNC_OK)
    return NULL;
  return dnc_module_function(*keep, 0);
}

static inline const char *param_name(const dnc_function *f, int k)
{
  dnc_param_info pi;
  return dnc_function_param(f, k, &pi) == DNC_OK ? pi.name : "?";
}

#endif
