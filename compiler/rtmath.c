/*
 * rtmath.c - the scalar math that generated kernels call, and the same
 * semantics evaluated in C one operation at a time.
 *
 * Kernels compute transcendentals with dnc's own vector code (vmath.c);
 * the few cases it leaves to scalar code (f64 pow, sin and cos of huge
 * arguments) call the runtime functions here lane by lane: f32 versions
 * compute in double and round once, f64 versions are the formulas of
 * opmath.h over the C library.
 *
 * dnc_rt_eval_f32/f64 evaluate a flattened function in float or double
 * with exactly the operations the kernels perform, so a kernel can be
 * checked against them to the bit, apart from the vector math, which the
 * caller passes in (or the runtime functions stand in for) and which is
 * checked against the interpreter. The function is the one the kernels
 * lower: dnc_rt_prog applies the same DAG rewrites (rewrite.c) first;
 * what follows here is each op's own formula, not a copy of codegen's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

#define DNC_OPM_T double
#define DNC_OPM_ONE 1.0
#define DNC_OPM_F DNC_OPM_LIBM_D
#define DNC_OPM_NAME(m) d_##m
#include "opmath_def.h"

#define DNC_OPM_T float
#define DNC_OPM_ONE 1.0f
#define DNC_OPM_F DNC_OPM_LIBM_F
#define DNC_OPM_NAME(m) f_##m
#include "opmath_def.h"

/* each op's formula by type; a float transcendental (RT) is its double
 * formula rounded once (rt_<m>_f32), not the float expansion */
static double (*const d_fn[OP__COUNT])(double, double, double) = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  d_##MATH,
    DNC_OPS(X)
#undef X
};
static float (*const f_fn[OP__COUNT])(float, float, float) = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  f_##MATH,
    DNC_OPS(X)
#undef X
};

/* The runtime functions of the ops with RT set, of their arity: the f32
 * ones compute in double and round once (within 0.5 ulp plus a rare
 * double rounding; powf through double is exact for the products of two
 * floats that matter here). */
#define RT_FN1(M)                                                          \
  static float rt_##M##_f32(float a) { return (float)d_##M(a, 0, 0); }     \
  static double rt_##M##_f64(double a) { return d_##M(a, 0, 0); }
#define RT_FN2(M)                                                          \
  static float rt_##M##_f32(float a, float b)                              \
  {                                                                        \
    return (float)d_##M(a, b, 0);                                          \
  }                                                                        \
  static double rt_##M##_f64(double a, double b) { return d_##M(a, b, 0); }
#define RT_DEF_0(ARITY, M)
#define RT_DEF_1(ARITY, M) RT_FN##ARITY(M)
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT,  \
          DIFF, LOWER)                                                     \
  RT_DEF_##RT(ARITY, MATH)
DNC_OPS(X)
#undef X

static const struct rt_entry {
  int op;
  const char *name32, *name64;
  void *f32, *f64;
} rt_table[] = {
#define RT_ENTRY_0(OP, M)
#define RT_ENTRY_1(OP, M)                                                  \
  {OP, "dnc_rt_" #M "_f32", "dnc_rt_" #M "_f64", (void *)rt_##M##_f32,     \
   (void *)rt_##M##_f64},
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT,  \
          DIFF, LOWER)                                                     \
  RT_ENTRY_##RT(OP_##NAME, MATH)
    DNC_OPS(X)
#undef X
};

int dnc_rt_count(void)
{
  return (int)(sizeof rt_table / sizeof rt_table[0]);
}

void dnc_rt_entry(int i, int f64, const char **name, void **addr)
{
  DNC_ASSERT(i >= 0 && i < dnc_rt_count());
  *name = f64 ? rt_table[i].name64 : rt_table[i].name32;
  *addr = f64 ? rt_table[i].f64 : rt_table[i].f32;
}

const char *dnc_rt_name(int op, int f64)
{
  for (int i = 0; i < dnc_rt_count(); i++)
    if (rt_table[i].op == op)
      return f64 ? rt_table[i].name64 : rt_table[i].name32;
  return NULL;
}

/* vmath.c's vector code covers every op with a runtime function (ops.h's
 * RT) but f64 pow; here, not there, so that the passes that ask (rewrite.c)
 * build without LLVM */
int dnc_vm_native(int op, int f64)
{
  return dnc_ops[op].rt && !(op == OP_POW && f64);
}

/* pow with a constant exponent the kernels lower to arithmetic: 1 x, 2 x*x,
 * 3 (x*x)*x, -1 1/x, -2 (1/x)/x (two roundings, as 1/(x*x), but no
 * overflow of x*x where x^-2 is a subnormal); 0 if none */
int dnc_pow_special(double e)
{
  if (e == 1 || e == 2 || e == 3 || e == -1 || e == -2)
    return (int)e;
  return 0;
}

#define EVAL_BODY(T, ONE, FN)                                               \
  for (uint32_t i = 0; i < pr->n; i++) {                                    \
    const dnc_insn *in = &pr->insn[i];                                      \
    T a = in->op > OP_PARAM ? v[in->arg[0]] : 0;                            \
    T b = in->op > OP_PARAM && dnc_ops[in->op].arity > 1 ? v[in->arg[1]] : 0; \
    T c = in->op > OP_PARAM && dnc_ops[in->op].arity > 2 ? v[in->arg[2]] : 0; \
    T r;                                                                    \
    switch (in->op) {                                                       \
    case OP_CONST: r = (T)in->value; break;                                 \
    case OP_INPUT: r = x; break;                                            \
    case OP_PARAM: r = p[in->param]; break;                                 \
    case OP_POW: {                                                          \
      const dnc_insn *e = &pr->insn[in->arg[1]];                            \
      int k = e->op == OP_CONST ? dnc_pow_special(e->value) : 0;            \
      r = k == 1 ? a : k == 2 ? a * a : k == 3 ? (a * a) * a                \
        : k == -1 ? ONE / a : k == -2 ? (ONE / a) / a : POW(a, b);         \
      break;                                                                \
    }                                                                       \
    default: /* every other op: its formula, opmath.h, or the caller's   \
                math where it gives one (bf16's division, rsqrt) */         \
      r = dnc_ops[in->op].rt || (m && m[in->op]) ? MATH(in->op, a, b)      \
                                                 : FN[in->op](a, b, c);    \
      break;                                                                \
    }                                                                       \
    v[i] = r;                                                               \
  }                                                                         \
  return v[pr->n - 1];

dnc_prog *dnc_rt_prog(dnc_mod *m, dnc_node *root, int f64, int lowp,
                      int target)
{
  if (dnc_rewrite(&m->dag, f64, lowp, target, &root, 1))
    dnc_die(__FILE__, __LINE__, "the rewritten function is too large");
  return dnc_prog_build(&m->dag, m->arena, root);
}

#define MATH(op, a, b) (m && m[op] ? m[op](a, b) : (float)d_fn[op](a, b, 0))
#define POW(a, b) (m && m[OP_POW] ? m[OP_POW](a, b) : rt_pow_f32(a, b))
static float eval_f32(const dnc_prog *pr, float *v, float x, const float *p,
                      const dnc_rt_fn32 *m)
{
  EVAL_BODY(float, 1.0f, f_fn)
}
#undef MATH
#undef POW

#define MATH(op, a, b) (m && m[op] ? m[op](a, b) : d_fn[op](a, b, 0))
#define POW(a, b) (m && m[OP_POW] ? m[OP_POW](a, b) : rt_pow_f64(a, b))
static double eval_f64(const dnc_prog *pr, double *v, double x,
                       const double *p, const dnc_rt_fn64 *m)
{
  EVAL_BODY(double, 1.0, d_fn)
}
#undef MATH
#undef POW

float dnc_rt_eval_f32(const dnc_prog *pr, float x, const float *p,
                      const dnc_rt_fn32 *math32)
{
  float local[256];
  if (pr->n <= 256)
    return eval_f32(pr, local, x, p, math32);
  float *v = malloc(sizeof *v * pr->n);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  float r = eval_f32(pr, v, x, p, math32);
  free(v);
  return r;
}

double dnc_rt_eval_f64(const dnc_prog *pr, double x, const double *p,
                       const dnc_rt_fn64 *math64)
{
  double local[256];
  if (pr->n <= 256)
    return eval_f64(pr, local, x, p, math64);
  double *v = malloc(sizeof *v * pr->n);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  double r = eval_f64(pr, v, x, p, math64);
  free(v);
  return r;
}
