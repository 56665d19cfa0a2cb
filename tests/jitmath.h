/*
 * jitmath.h - the JIT's own vector math (vmath.c) as scalar functions, for
 * the C evaluation of the kernels' operations (dnc_rt_eval_f32/f64) to use
 * in their place, so that whole kernels can be compared to the bit. Each
 * function runs a one-element forward kernel of `fn f(x) = op(x)` (pow:
 * `fn f(x; b = 1) = x^b`, b the second operand): a lane computes the same
 * whatever its position in a vector.
 */
#ifndef DNC_JITMATH_H
#define DNC_JITMATH_H

#include <stdio.h>
#include <string.h>

#include "runtime.h"

static dnc_forward_fn jm_kernel[2][OP__COUNT];
static dnc_module *jm_modules[OP__COUNT];
static dnc_rt_fn32 jm_table[OP__COUNT];
static dnc_rt_fn64 jm_table64[OP__COUNT];
static int jm_fma; /* the context's target fuses multiply-adds */

#define JM_FN(OP)                                   \
  static float jm_##OP(float x, float b)            \
  {                                                 \
    float y;                                        \
    double p = b;                                   \
    jm_kernel[0][OP_##OP](&x, &y, 1, &p);           \
    return y;                                       \
  }                                                 \
  static double jm64_##OP(double x, double b)       \
  {                                                 \
    double y, p = b;                                \
    jm_kernel[1][OP_##OP](&x, &y, 1, &p);           \
    return y;                                       \
  }
JM_FN(EXP) JM_FN(EXPM1) JM_FN(LOG) JM_FN(LOG1P) JM_FN(TANH) JM_FN(SIGMOID)
JM_FN(SOFTPLUS) JM_FN(ERF) JM_FN(ERFC) JM_FN(SINH) JM_FN(COSH) JM_FN(ASINH)
JM_FN(ATAN) JM_FN(SIN) JM_FN(COS) JM_FN(POW)
#undef JM_FN

/* Fills the tables with the math of ctx's kernels; 0 on failure. */
static int jm_init(dnc_context *ctx)
{
#define E(OP) {OP_##OP, jm_##OP, jm64_##OP}
  static const struct { int op; dnc_rt_fn32 fn; dnc_rt_fn64 fn64; } ops[] = {
      E(EXP), E(EXPM1), E(LOG), E(LOG1P), E(TANH), E(SIGMOID), E(SOFTPLUS),
      E(ERF), E(ERFC), E(SINH), E(COSH), E(ASINH), E(ATAN), E(SIN), E(COS),
      E(POW)};
#undef E
  jm_fma = dnc_jit_has_fma(ctx->jit);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int op = ops[i].op;
    char src[64];
    if (op == OP_POW)
      snprintf(src, sizeof src, "fn f(x; b = 1) = x^b");
    else
      snprintf(src, sizeof src, "fn f(x) = %s(x)", dnc_ops[op].spell);
    if (dnc_compile_string(ctx, "jitmath", src, strlen(src), &jm_modules[op]))
      return 0;
    const dnc_function *f = dnc_module_find(jm_modules[op], "f");
    for (int d = 0; d < 2; d++) {
      if (!dnc_vm_native(op, d))
        continue;
      dnc_kernels k;
      if (dnc_function_kernels(f, d ? DNC_F64 : DNC_F32, &k))
        return 0;
      jm_kernel[d][op] = k.forward;
      if (d)
        jm_table64[op] = ops[i].fn64;
      else
        jm_table[op] = ops[i].fn;
    }
  }
  return 1;
}

static void jm_free(void)
{
  for (int i = 0; i < OP__COUNT; i++) {
    dnc_module_free(jm_modules[i]);
    jm_modules[i] = NULL;
    jm_table[i] = NULL;
    jm_table64[i] = NULL;
  }
}

#endif
