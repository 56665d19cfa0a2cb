/*
 * interp.c - the reference interpreter: the oracle every kernel is checked
 * against.
 *
 * It computes in long double (x87 extended on x86-64, 64-bit mantissa) and
 * rounds once to double at the end, so that its result is a better
 * reference for f64 kernels than a double evaluation would be. Semantics:
 *   - IEEE for NaN, infinities and signed zeros, as the C library gives them;
 *   - min and max propagate NaN (as torch.minimum does, unlike fmin), and on
 *     a tie return their first operand;
 *   - clamp(v, lo, hi) = min(max(v, lo), hi);
 *   - sign(±0) = ±0, sign(NaN) = NaN;
 *   - comparisons with NaN are false, except != which is true;
 *   - `if` evaluates both branches (they have no side effects) and selects.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

typedef long double ld;

static ld ev_none(ld a, ld b, ld c) { (void)a; (void)b; (void)c; return NAN; }
static ld ev_neg(ld a, ld b, ld c) { (void)b; (void)c; return -a; }
static ld ev_add(ld a, ld b, ld c) { (void)c; return a + b; }
static ld ev_sub(ld a, ld b, ld c) { (void)c; return a - b; }
static ld ev_mul(ld a, ld b, ld c) { (void)c; return a * b; }
static ld ev_div(ld a, ld b, ld c) { (void)c; return a / b; }
static ld ev_pow(ld a, ld b, ld c) { (void)c; return powl(a, b); }
static ld ev_abs(ld a, ld b, ld c) { (void)b; (void)c; return fabsl(a); }
static ld ev_sign(ld a, ld b, ld c)
{
  (void)b; (void)c;
  return a > 0 ? 1.0L : a < 0 ? -1.0L : a; /* ±0 and NaN pass through */
}
static ld ev_min(ld a, ld b, ld c)
{
  (void)c;
  if (isnan(a) || isnan(b))
    return a + b;
  return b < a ? b : a;
}
static ld ev_max(ld a, ld b, ld c)
{
  (void)c;
  if (isnan(a) || isnan(b))
    return a + b;
  return b > a ? b : a;
}
static ld ev_clamp(ld a, ld b, ld c) { return ev_min(ev_max(a, b, 0), c, 0); }
static ld ev_exp(ld a, ld b, ld c) { (void)b; (void)c; return expl(a); }
static ld ev_expm1(ld a, ld b, ld c) { (void)b; (void)c; return expm1l(a); }
static ld ev_log(ld a, ld b, ld c) { (void)b; (void)c; return logl(a); }
static ld ev_log1p(ld a, ld b, ld c) { (void)b; (void)c; return log1pl(a); }
static ld ev_sqrt(ld a, ld b, ld c) { (void)b; (void)c; return sqrtl(a); }
static ld ev_rsqrt(ld a, ld b, ld c) { (void)b; (void)c; return 1.0L / sqrtl(a); }
static ld ev_tanh(ld a, ld b, ld c) { (void)b; (void)c; return tanhl(a); }
static ld ev_sinh(ld a, ld b, ld c) { (void)b; (void)c; return sinhl(a); }
static ld ev_cosh(ld a, ld b, ld c) { (void)b; (void)c; return coshl(a); }
static ld ev_asinh(ld a, ld b, ld c) { (void)b; (void)c; return asinhl(a); }
static ld ev_atan(ld a, ld b, ld c) { (void)b; (void)c; return atanl(a); }
static ld ev_erf(ld a, ld b, ld c) { (void)b; (void)c; return erfl(a); }
static ld ev_erfc(ld a, ld b, ld c) { (void)b; (void)c; return erfcl(a); }
static ld ev_sigmoid(ld a, ld b, ld c)
{
  (void)b; (void)c;
  /* for a < 0 the form e/(1+e) keeps the relative accuracy of tiny values */
  if (a < 0) {
    ld e = expl(a);
    return e / (1.0L + e);
  }
  return 1.0L / (1.0L + expl(-a));
}
static ld ev_softplus(ld a, ld b, ld c)
{
  (void)b; (void)c;
  /* log(1 + e^a) without overflow: a + log1p(e^-a) for a > 0 */
  return a > 0 ? a + log1pl(expl(-a)) : log1pl(expl(a));
}
static ld ev_sin(ld a, ld b, ld c) { (void)b; (void)c; return sinl(a); }
static ld ev_cos(ld a, ld b, ld c) { (void)b; (void)c; return cosl(a); }
static ld ev_lt(ld a, ld b, ld c) { (void)c; return a < b; }
static ld ev_le(ld a, ld b, ld c) { (void)c; return a <= b; }
static ld ev_gt(ld a, ld b, ld c) { (void)c; return a > b; }
static ld ev_ge(ld a, ld b, ld c) { (void)c; return a >= b; }
static ld ev_eq(ld a, ld b, ld c) { (void)c; return a == b; }
static ld ev_ne(ld a, ld b, ld c) { (void)c; return a != b; }
static ld ev_and(ld a, ld b, ld c) { (void)c; return a != 0 && b != 0; }
static ld ev_or(ld a, ld b, ld c) { (void)c; return a != 0 || b != 0; }
static ld ev_not(ld a, ld b, ld c) { (void)b; (void)c; return a == 0; }
static ld ev_select(ld a, ld b, ld c) { return a != 0 ? b : c; }

static ld (*const eval_fn[OP__COUNT])(ld, ld, ld) = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, EVAL, DIFF, LOWER) EVAL,
    DNC_OPS(X)
#undef X
};

ld dnc_eval_op(int op, ld a, ld b, ld c)
{
  DNC_ASSERT(op > OP_PARAM && op < OP__COUNT);
  return eval_fn[op](a, b, c);
}

dnc_prog *dnc_prog_build(const dnc_dag *g, dnc_arena *a, dnc_node *root)
{
  uint32_t n;
  dnc_node **s = dnc_schedule(g, a, root, &n);
  int32_t *pos = malloc(sizeof *pos * ((size_t)root->id + 1));
  if (!pos)
    dnc_die(__FILE__, __LINE__, "out of memory");
  dnc_prog *pr = dnc_arena_alloc(a, sizeof *pr);
  pr->n = n;
  pr->insn = dnc_arena_alloc(a, sizeof *pr->insn * n);
  for (uint32_t i = 0; i < n; i++) {
    dnc_node *e = s[i];
    dnc_insn *in = &pr->insn[i];
    pos[e->id] = (int32_t)i;
    in->op = e->op;
    in->value = e->value;
    in->param = e->param;
    for (int k = 0; k < e->nargs; k++)
      in->arg[k] = pos[e->arg[k]->id];
  }
  free(pos);
  return pr;
}

static ld run(const dnc_prog *pr, ld *v, ld x, const double *p)
{
  for (uint32_t i = 0; i < pr->n; i++) {
    const dnc_insn *in = &pr->insn[i];
    switch (in->op) {
    case OP_CONST: v[i] = in->value; break;
    case OP_INPUT: v[i] = x; break;
    case OP_PARAM: v[i] = p[in->param]; break;
    default: /* unused operand slots are 0, a valid index */
      v[i] = eval_fn[in->op](v[in->arg[0]], v[in->arg[1]], v[in->arg[2]]);
    }
  }
  return v[pr->n - 1];
}

ld dnc_prog_eval(const dnc_prog *pr, ld x, const double *p)
{
  ld local[256];
  if (pr->n <= 256)
    return run(pr, local, x, p);
  ld *v = malloc(sizeof *v * pr->n);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  ld r = run(pr, v, x, p);
  free(v);
  return r;
}

double dnc_interp(const dnc_fn *f, double x, const double *p)
{
  return (double)dnc_prog_eval(f->prog, x, p);
}
