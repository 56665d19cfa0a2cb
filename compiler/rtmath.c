/*
 * rtmath.c - the scalar math that generated kernels call, and the same
 * semantics evaluated in C one operation at a time.
 *
 * The JIT lowers each transcendental through one interface (vmath.c). Until
 * dnc's own vector implementations replace them, that interface calls these
 * functions lane by lane: f32 versions compute in double and round once
 * (so they are within 0.5 ulp plus a rare double rounding), f64 versions
 * are the C library's, with the same NaN-, overflow- and saturation-safe
 * forms as the reference interpreter (interp.c) for sigmoid and softplus.
 *
 * dnc_rt_eval_f32/f64 evaluate a flattened function in float or double with
 * exactly the operations the kernels perform (same lowering of pow, min,
 * max, sign), so a kernel can be checked against them to the bit, apart
 * from the vector math, which is checked against the interpreter.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

static double sigmoid64(double a)
{
  if (a < 0) {
    double e = exp(a);
    return e / (1.0 + e);
  }
  return 1.0 / (1.0 + exp(-a));
}

static double softplus64(double a)
{
  return a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
}

/* ORDER: the ops of dnc_rt_math_ops[] */
#define DNC_RT_MATH(X)                 \
  X(EXP, exp, exp)                     \
  X(EXPM1, expm1, expm1)               \
  X(LOG, log, log)                     \
  X(LOG1P, log1p, log1p)               \
  X(TANH, tanh, tanh)                  \
  X(SINH, sinh, sinh)                  \
  X(COSH, cosh, cosh)                  \
  X(ASINH, asinh, asinh)               \
  X(ATAN, atan, atan)                  \
  X(ERF, erf, erf)                     \
  X(ERFC, erfc, erfc)                  \
  X(SIGMOID, sigmoid, sigmoid64)       \
  X(SOFTPLUS, softplus, softplus64)    \
  X(SIN, sin, sin)                     \
  X(COS, cos, cos)

#define X(OP, NAME, F64)                                           \
  static float rt_##NAME##_f32(float a) { return (float)F64((double)a); } \
  static double rt_##NAME##_f64(double a) { return F64(a); }
DNC_RT_MATH(X)
#undef X

/* powf through double is exact for the products of two floats that matter
 * here and correctly rounded otherwise but for double rounding */
static float rt_pow_f32(float a, float b) { return (float)pow(a, b); }
static double rt_pow_f64(double a, double b) { return pow(a, b); }

static const struct rt_entry {
  int op;
  const char *name32, *name64;
  void *f32, *f64;
} rt_table[] = {
#define X(OP, NAME, F64)                                                  \
  {OP_##OP, "dnc_rt_" #NAME "_f32", "dnc_rt_" #NAME "_f64",                \
   (void *)rt_##NAME##_f32, (void *)rt_##NAME##_f64},
    DNC_RT_MATH(X)
#undef X
    {OP_POW, "dnc_rt_pow_f32", "dnc_rt_pow_f64", (void *)rt_pow_f32,
     (void *)rt_pow_f64},
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

/* pow with a constant exponent the kernels lower to arithmetic: 1 x, 2 x*x,
 * 3 (x*x)*x, -1 1/x, -2 1/(x*x); 0 if none */
int dnc_pow_special(double e)
{
  if (e == 1 || e == 2 || e == 3 || e == -1 || e == -2)
    return (int)e;
  return 0;
}

#define EVAL_BODY(T, SUF, ONE)                                              \
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
    case OP_NEG: r = -a; break;                                             \
    case OP_ADD: r = a + b; break;                                          \
    case OP_SUB: r = a - b; break;                                          \
    case OP_MUL: {                                                          \
      int32_t sp = sigmoid_pair(pr, in, sizeof(T) == 8);                    \
      if (sp >= 0) { /* see lw_mul in codegen.c */                          \
        T e = MATH(OP_EXP, -fabs##SUF##_(v[sp]));                           \
        T d = ONE + e;                                                      \
        r = e / (d * d);                                                    \
      } else {                                                              \
        r = a * b;                                                          \
      }                                                                     \
      break;                                                                \
    }                                                                       \
    case OP_DIV: r = a / b; break;                                          \
    case OP_POW: {                                                          \
      const dnc_insn *e = &pr->insn[in->arg[1]];                            \
      int k = e->op == OP_CONST ? dnc_pow_special(e->value) : 0;            \
      r = k == 1 ? a : k == 2 ? a * a : k == 3 ? (a * a) * a                \
        : k == -1 ? ONE / a : k == -2 ? ONE / (a * a) : POW(a, b);         \
      break;                                                                \
    }                                                                       \
    case OP_ABS: r = fabs##SUF##_(a); break;                                \
    case OP_SIGN: r = a > 0 ? ONE : a < 0 ? -ONE : a; break;                \
    case OP_MIN: r = (isnan(a) || isnan(b)) ? a + b : b < a ? b : a; break; \
    case OP_MAX: r = (isnan(a) || isnan(b)) ? a + b : b > a ? b : a; break; \
    case OP_CLAMP: {                                                        \
      T m = (isnan(a) || isnan(b)) ? a + b : b > a ? b : a;                 \
      r = (isnan(m) || isnan(c)) ? m + c : c < m ? c : m;                   \
      break;                                                                \
    }                                                                       \
    case OP_SQRT: r = sqrt##SUF##_(a); break;                               \
    case OP_RSQRT: r = ONE / sqrt##SUF##_(a); break;                        \
    case OP_LT: r = a < b; break;                                           \
    case OP_LE: r = a <= b; break;                                          \
    case OP_GT: r = a > b; break;                                           \
    case OP_GE: r = a >= b; break;                                          \
    case OP_EQ: r = a == b; break;                                          \
    case OP_NE: r = a != b; break;                                          \
    case OP_AND: r = a != 0 && b != 0; break;                               \
    case OP_OR: r = a != 0 || b != 0; break;                                \
    case OP_NOT: r = a == 0; break;                                         \
    case OP_SELECT: r = a != 0 ? b : c; break;                              \
    case OP_EXP:                                                            \
      r = MATH(in->op, a);                                                  \
      if (fused && gauss(pr, in)) { /* see lw_math in codegen.c */         \
        T u = v[pr->insn[pr->insn[in->arg[0]].arg[0]].arg[0]];             \
        T hi = v[pr->insn[in->arg[0]].arg[0]];                              \
        T lo = fmax##SUF##_(fmin##SUF##_(fma##SUF##_(u, u, -hi), 1), -1);    \
        r = fma##SUF##_(r, -lo, r);                                         \
      }                                                                     \
      break;                                                                \
    default: r = MATH(in->op, a); break;                                    \
    }                                                                       \
    v[i] = r;                                                               \
  }                                                                         \
  return v[pr->n - 1];

#define fmaf32_ fmaf
#define fmaf64_ fma
#define fmaxf32_ fmaxf
#define fmaxf64_ fmax
#define fminf32_ fminf
#define fminf64_ fmin
#define fabsf32_ fabsf
#define fabsf64_ fabs
#define sqrtf32_ sqrtf
#define sqrtf64_ sqrt

static float rt_math_f32(int op, float a)
{
  switch (op) {
#define X(OP, NAME, F64) case OP_##OP: return rt_##NAME##_f32(a);
    DNC_RT_MATH(X)
#undef X
  }
  dnc_die(__FILE__, __LINE__, "no scalar math for this op");
}

static double rt_math_f64(int op, double a)
{
  switch (op) {
#define X(OP, NAME, F64) case OP_##OP: return rt_##NAME##_f64(a);
    DNC_RT_MATH(X)
#undef X
  }
  dnc_die(__FILE__, __LINE__, "no scalar math for this op");
}

/* exp(-(u^2)) in a program, as gauss_base (codegen.c) sees it in a DAG */
static int gauss(const dnc_prog *pr, const dnc_insn *in)
{
  const dnc_insn *neg = &pr->insn[in->arg[0]];
  if (neg->op != OP_NEG)
    return 0;
  const dnc_insn *sq = &pr->insn[neg->arg[0]];
  return sq->op == OP_POW && pr->insn[sq->arg[1]].op == OP_CONST &&
         pr->insn[sq->arg[1]].value == 2;
}

/* insn i as s * t for a constant s (1 when it is not a product with one),
 * as split_scale (codegen.c) sees a node */
static double insn_scale(const dnc_prog *pr, int32_t i, int32_t *t)
{
  const dnc_insn *a = &pr->insn[i];
  if (a->op == OP_NEG) {
    *t = a->arg[0];
    return -1;
  }
  for (int k = 0; k < 2; k++)
    if (a->op == OP_MUL && pr->insn[a->arg[k]].op == OP_CONST) {
      *t = a->arg[1 - k];
      return pr->insn[a->arg[k]].value;
    }
  *t = i;
  return 1;
}

/* sigmoid(a) * sigmoid(-a) as lw_mul (codegen.c) sees it: the index of
 * a, else -1 */
static int32_t sigmoid_pair(const dnc_prog *pr, const dnc_insn *in, int f64)
{
  const dnc_insn *l = &pr->insn[in->arg[0]], *r = &pr->insn[in->arg[1]];
  if (l->op != OP_SIGMOID || r->op != OP_SIGMOID)
    return -1;
  int32_t a = l->arg[0], b = r->arg[0];
  if ((pr->insn[a].op == OP_NEG && pr->insn[a].arg[0] == b) ||
      (pr->insn[b].op == OP_NEG && pr->insn[b].arg[0] == a))
    return a;
  int32_t ta, tb;
  double sa = insn_scale(pr, a, &ta), sb = insn_scale(pr, b, &tb);
  if (!f64)
    sa = (float)sa, sb = (float)sb;
  return ta == tb && sa == -sb && sa != 0 && !isnan(sa) ? a : -1;
}

#define MATH(op, a) (m && m[op] ? m[op](a, 0) : rt_math_f32(op, a))
#define POW(a, b) (m && m[OP_POW] ? m[OP_POW](a, b) : rt_pow_f32(a, b))
static float eval_f32(const dnc_prog *pr, float *v, float x, const float *p,
                      const dnc_rt_fn32 *m, int fused)
{
  EVAL_BODY(float, f32, 1.0f)
}
#undef MATH
#undef POW

#define MATH(op, a) (m && m[op] ? m[op](a, 0) : rt_math_f64(op, a))
#define POW(a, b) (m && m[OP_POW] ? m[OP_POW](a, b) : rt_pow_f64(a, b))
static double eval_f64(const dnc_prog *pr, double *v, double x,
                       const double *p, const dnc_rt_fn64 *m, int fused)
{
  EVAL_BODY(double, f64, 1.0)
}
#undef MATH
#undef POW

float dnc_rt_eval_f32(const dnc_prog *pr, float x, const float *p,
                      const dnc_rt_fn32 *math32, int fused)
{
  float local[256];
  if (pr->n <= 256)
    return eval_f32(pr, local, x, p, math32, fused);
  float *v = malloc(sizeof *v * pr->n);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  float r = eval_f32(pr, v, x, p, math32, fused);
  free(v);
  return r;
}

double dnc_rt_eval_f64(const dnc_prog *pr, double x, const double *p,
                       const dnc_rt_fn64 *math64, int fused)
{
  double local[256];
  if (pr->n <= 256)
    return eval_f64(pr, local, x, p, math64, fused);
  double *v = malloc(sizeof *v * pr->n);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  double r = eval_f64(pr, v, x, p, math64, fused);
  free(v);
  return r;
}
