/*
 * interp.c - the reference interpreter: the oracle every kernel is checked
 * against.
 *
 * It computes in long double (x87 extended on x86-64, 64-bit mantissa) and
 * rounds once to double at the end, so that its result is a better
 * reference for f64 kernels than a double evaluation would be. Each op's
 * meaning is its formula in opmath.h (semantics stated there), expanded
 * here for long double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

typedef long double ld;

#define DNC_OPM_T ld
#define DNC_OPM_ONE 1.0L
#define DNC_OPM_F DNC_OPM_LIBM_LD
#define DNC_OPM_NAME(m) ev_##m
#include "opmath_def.h"

static ld (*const eval_fn[OP__COUNT])(ld, ld, ld) = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  ev_##MATH,
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
