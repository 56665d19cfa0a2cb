/*
 * jitmath.h - the JIT's own f32 vector math (vmath.c) as scalar functions,
 * for the C evaluation of the kernels' operations (dnc_rt_eval_f32) to
 * use in their place, so that whole kernels can be compared to the bit.
 * Each function runs a one-element forward kernel of `fn f(x) = op(x)`:
 * a lane computes the same whatever its position in a vector.
 */
#ifndef DNC_JITMATH_H
#define DNC_JITMATH_H

#include <stdio.h>
#include <string.h>

#include "runtime.h"

static dnc_forward_fn jm_kernel[OP__COUNT];
static dnc_module *jm_modules[OP__COUNT];
static dnc_rt_fn32 jm_table[OP__COUNT];
static int jm_fma; /* the context's target fuses multiply-adds */

#define JM_FN(OP)                                   \
  static float jm_##OP(float x)                     \
  {                                                 \
    float y;                                        \
    double p = 0;                                   \
    jm_kernel[OP_##OP](&x, &y, 1, &p);              \
    return y;                                       \
  }
JM_FN(EXP) JM_FN(EXPM1) JM_FN(LOG) JM_FN(LOG1P) JM_FN(TANH) JM_FN(SIGMOID)
JM_FN(SOFTPLUS) JM_FN(ERF) JM_FN(ERFC) JM_FN(SINH) JM_FN(COSH) JM_FN(ASINH)
JM_FN(ATAN) JM_FN(SIN) JM_FN(COS)
#undef JM_FN

/* Fills jm_table with the f32 math of ctx's kernels; 0 on failure. */
static int jm_init(dnc_context *ctx)
{
  jm_fma = dnc_jit_has_fma(ctx->jit);
  static const struct { int op; dnc_rt_fn32 fn; } ops[] = {
      {OP_EXP, jm_EXP},         {OP_EXPM1, jm_EXPM1}, {OP_LOG, jm_LOG},
      {OP_LOG1P, jm_LOG1P},     {OP_TANH, jm_TANH},   {OP_SIGMOID, jm_SIGMOID},
      {OP_SOFTPLUS, jm_SOFTPLUS}, {OP_ERF, jm_ERF},   {OP_ERFC, jm_ERFC},
      {OP_SINH, jm_SINH},       {OP_COSH, jm_COSH},   {OP_ASINH, jm_ASINH},
      {OP_ATAN, jm_ATAN},       {OP_SIN, jm_SIN},     {OP_COS, jm_COS}};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int op = ops[i].op;
    if (!dnc_vm_native(op, 0))
      continue;
    char src[64];
    snprintf(src, sizeof src, "fn f(x) = %s(x)", dnc_ops[op].spell);
    dnc_kernels k;
    if (dnc_compile_string(ctx, "jitmath", src, strlen(src), &jm_modules[op]) ||
        dnc_function_kernels(dnc_module_find(jm_modules[op], "f"), DNC_F32, &k))
      return 0;
    jm_kernel[op] = k.forward;
    jm_table[op] = ops[i].fn;
  }
  return 1;
}

static void jm_free(void)
{
  for (int i = 0; i < OP__COUNT; i++) {
    dnc_module_free(jm_modules[i]);
    jm_modules[i] = NULL;
    jm_table[i] = NULL;
  }
}

#endif
