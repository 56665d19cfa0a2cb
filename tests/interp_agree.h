/*
 * interp_agree.h - a kernel's value against the interpreter's (long
 * double) in one dtype, for the overflow tests (test_overflow_p10.c,
 * test_isru_p11.c): the same class (NaN, +-inf, finite), and finite ones
 * within the dtype's relative tolerance plus two of its smallest normals;
 * and the interpreter's first derivatives, compiled from dnc_function_diff.
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

static int klass(double v)
{
  return isnan(v) ? 0 : isinf(v) ? (v > 0 ? 1 : -1) : 2;
}

static int agree(dnc_dtype t, double got, double want)
{
  if (klass(got) != klass(want))
    return 0;
  if (klass(got) != 2)
    return 1;
  return fabs(got - want) <= rel_tol[t] * fabs(want) + 2 * min_normal[t];
}

/* f's first derivative with respect to wrt, compiled into *keep in ctx
 * (the interpreter evaluates it); NULL when it cannot be had */
static const dnc_function *derivative(dnc_context *ctx, const dnc_function *f,
                                      const char *wrt, dnc_module **keep)
{
  char text[16384];
  size_t len;
  if (dnc_function_diff(f, wrt, 1, DNC_FORMAT_DSL, text, sizeof text, &len) !=
          DNC_OK ||
      dnc_compile_string(ctx, "d.dn", text, len, keep) != DNC_OK)
    return NULL;
  return dnc_module_function(*keep, 0);
}

static const char *param_name(const dnc_function *f, int k)
{
  dnc_param_info pi;
  return dnc_function_param(f, k, &pi) == DNC_OK ? pi.name : "?";
}

#endif
