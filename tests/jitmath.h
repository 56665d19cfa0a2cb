/*
 * jitmath.h - the JIT's own vector math (vmath.c) as scalar functions, for
 * the C evaluation of the kernels' operations (dnc_rt_eval_f32/f64) to use
 * in their place, so that whole kernels can be compared to the bit. Each
 * function runs a one-element forward kernel of `fn f(x) = op(x)` (ops of
 * two operands: `fn f(x; b = 1) = x^b` or `op(x, b)`, b the second
 * operand), one for each op with vector math (ops.h's RT): a lane computes
 * the same whatever its position in a vector.
 *
 * jm_table_lowp[0] and [1] are the math of bf16 and f16 kernels (computed
 * in f32 with shorter approximations, vmath.c): the f32 kernels of
 * contexts for the same CPU with math_bits 8 and 11; bf16's also has
 * division and rsqrt (estimates on AVX-512, vmath.c). jm_table also has
 * f32's rsqrt (refined from an estimate on AVX-512).
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
static int jm_target; /* the context's DNC_TARGET_* flags (dnc_int.h) */
/* bf16's and f16's math: [0] bf16, [1] f16 */
static dnc_context *jm_lowp_ctx[2];
static dnc_module *jm_lowp_modules[2][OP__COUNT];
static dnc_forward_fn jm_lowp_kernel[2][OP__COUNT];
static dnc_rt_fn32 jm_table_lowp[2][OP__COUNT];

/* the f32 kernel of lowp context L's one-op function, as a scalar one */
#define JM_LOWP(PREFIX, L, OP)                      \
  static float PREFIX##_##OP(float x, float b)      \
  {                                                 \
    float y;                                        \
    double p = b;                                   \
    jm_lowp_kernel[L][OP_##OP](&x, &y, 1, &p);      \
    return y;                                       \
  }

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
  }                                                 \
  JM_LOWP(jmbf, 0, OP)                              \
  JM_LOWP(jmh, 1, OP)
/* bf16's division and rsqrt (vmath.c's estimates where the CPU has them) */
JM_LOWP(jmbf, 0, DIV)
JM_LOWP(jmbf, 0, RSQRT)
/* f32's rsqrt (a refined estimate where the target has DNC_TARGET_RSQRT,
 * else 1 / sqrt(x), which rtmath.c's formula gives too) */
static float jm_rsqrt32(float x, float b)
{
  float y;
  double p = b;
  jm_kernel[0][OP_RSQRT](&x, &y, 1, &p);
  return y;
}

/* one for each op of ops.h with vector math (RT) */
#define JM_0(OP)
#define JM_1(OP) JM_FN(OP)
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  JM_##RT(NAME)
DNC_OPS(X)
#undef X
#undef JM_FN

static void jm_source(int op, char *src, size_t n)
{
  const char *sp = dnc_ops[op].spell;
  if (dnc_ops[op].arity == 1)
    snprintf(src, n, "fn f(x) = %s(x)", sp);
  else if (dnc_ops[op].form == FORM_INFIX)
    snprintf(src, n, "fn f(x; b = 1) = x %s b", sp);
  else
    snprintf(src, n, "fn f(x; b = 1) = %s(x, b)", sp);
}

/* op's one-op function compiled in c into *m, its f32 forward kernel in
 * *fwd; 0 on failure */
static int jm_f32(dnc_context *c, int op, dnc_module **m, dnc_forward_fn *fwd)
{
  char src[64];
  dnc_kernels k;
  jm_source(op, src, sizeof src);
  if (dnc_compile_string(c, "jitmath", src, strlen(src), m) ||
      dnc_function_kernels(dnc_module_find(*m, "f"), DNC_F32, &k))
    return 0;
  *fwd = k.forward;
  return 1;
}

/* Fills the tables with the math of ctx's kernels; 0 on failure. */
static int jm_init(dnc_context *ctx)
{
#define E(OP) {OP_##OP, jm_##OP, jm64_##OP, {jmbf_##OP, jmh_##OP}}
  static const struct {
    int op;
    dnc_rt_fn32 fn;
    dnc_rt_fn64 fn64;
    dnc_rt_fn32 lowp[2];
  } ops[] = {
#define E_0(OP)
#define E_1(OP) E(OP),
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  E_##RT(NAME)
      DNC_OPS(X)
#undef X
  };
#undef E
  jm_target = dnc_jit_target_flags(ctx->jit);
  for (int l = 0; l < 2; l++) {
    dnc_options o;
    dnc_options_init(&o);
    o.threads = 1;
    o.cpu = dnc_context_cpu(ctx);
    o.features = dnc_context_features(ctx);
    o.math_bits = l ? 11 : 8;
    if (dnc_context_create(&o, &jm_lowp_ctx[l]))
      return 0;
  }
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int op = ops[i].op;
    char src[64];
    jm_source(op, src, sizeof src);
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
    if (!dnc_vm_native(op, 0))
      continue;
    for (int l = 0; l < 2; l++) {
      if (!jm_f32(jm_lowp_ctx[l], op, &jm_lowp_modules[l][op],
                  &jm_lowp_kernel[l][op]))
        return 0;
      jm_table_lowp[l][op] = ops[i].lowp[l];
    }
  }
  if (!jm_f32(ctx, OP_RSQRT, &jm_modules[OP_RSQRT], &jm_kernel[0][OP_RSQRT]))
    return 0;
  jm_table[OP_RSQRT] = jm_rsqrt32;
  static const struct {
    int op;
    dnc_rt_fn32 fn;
  } est[] = {{OP_DIV, jmbf_DIV}, {OP_RSQRT, jmbf_RSQRT}};
  for (size_t i = 0; i < sizeof est / sizeof est[0]; i++) {
    int op = est[i].op;
    if (!jm_f32(jm_lowp_ctx[0], op, &jm_lowp_modules[0][op],
                &jm_lowp_kernel[0][op]))
      return 0;
    jm_table_lowp[0][op] = est[i].fn;
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
    for (int l = 0; l < 2; l++) {
      dnc_module_free(jm_lowp_modules[l][i]);
      jm_lowp_modules[l][i] = NULL;
      jm_table_lowp[l][i] = NULL;
    }
  }
  for (int l = 0; l < 2; l++) {
    dnc_context_free(jm_lowp_ctx[l]);
    jm_lowp_ctx[l] = NULL;
  }
}

#endif
