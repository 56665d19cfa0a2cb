/*
 * rewrite.c - the lowering rewrites: DAG-to-DAG passes that put a
 * function in the form its kernels compute for one precision and target.
 *
 * Code generation (codegen.c) lowers the rewritten DAG op by op; the
 * bit-exact oracle (rtmath.c, dnc_rt_prog) evaluates the same rewritten
 * DAG with its own per-op code. Neither copies the other's patterns: a
 * wrong rewrite shows against the reference interpreter, which sees the
 * DAG before this pass, and a wrong lowering against the oracle.
 *
 *   sigmoid pairs: sigmoid(a) * sigmoid(b) with b = -a for every input,
 *     bit for bit (the derivative of sigmoid, and of tanh as
 *     4 sigmoid(2u) sigmoid(-2u)), becomes e / ((1 + e) (1 + e)) with
 *     e = exp(-(|t| * k)), a = s t, k = |s|: one exp and one division
 *     instead of two sigmoids, and |round(s t)| = round(|s| |t|), so e
 *     has the bits of exp(-|a|). The exponent is written over t, so
 *     codegen computes e once with tanh(u), sigmoid(a) and softplus(a)
 *     of the same t (they use exp(-k|t|) too).
 *   the Gaussian, with fused multiply-add: exp(-(u^2)) loses |u^2| times
 *     the rounding error of hi = u^2 (up to ~100 ulp where the result is
 *     still a normal f32); lo = fma(u, u, -hi) is that error exactly, and
 *     exp(-hi - lo) = r (1 - lo), r = exp(-hi), to within the rounding:
 *     fma(r, -lo, r). lo matters only where r is not 0 (|lo| < 1e-13
 *     there); where u^2 overflows or u is infinite it is -inf or NaN, and
 *     r * inf would be NaN, so lo is clamped to [-1, 1] with NaN taken as
 *     -1 (if lo > -1 then lo else -1, then the same against 1: r is 0
 *     there, and x86 selects each as one vmaxps/vminps).
 *   the inverse square root unit: u / sqrt(c + u^2) (or u * rsqrt(...))
 *     tends to sign(u), but u^2 overflows past |u| ~ 1.8e19 in f32 (1.3e154
 *     in f64) and the quotient became 0. Where |u| > T the quotient is
 *     taken of u k and c k k instead, k a power of two (exact scaling, the
 *     same quotient but for c k k, which is then far below (u k)^2):
 *     T = 2^42, k = 2^-84 in f32; T = 2^340, k = 2^-680 in f64; and
 *     where u and c are both tiny, k > 1 (isru_scaled). Elsewhere
 *     k = 1 and every operation is the original's, bit for bit. Its
 *     derivatives, n / (v sqrt(v)) with v = c + u^2, take the same k and
 *     scaled sum, and one reciprocal for all of them (isru_deriv): one
 *     sqrt and two divisions in DyISRU's backward instead of two and
 *     three. In bf16's math (math_bits 8), whose division and rsqrt are
 *     14-bit estimates (vmath.c), the quotient is u k rsqrt(S) and the
 *     reciprocal rsqrt(S) (1 / S), S the scaled sum: one estimate fewer
 *     each, so DyISRU's bf16 forward is a third faster (docs/
 *     performance.md, round six).
 */
#include <math.h>
#include <stdlib.h>

#include "dnc_int.h"

double dnc_split_scale(const dnc_node *a, const dnc_node **t)
{
  if (a->op == OP_NEG) {
    *t = a->arg[0];
    return -1;
  }
  for (int k = 0; k < 2; k++)
    if (a->op == OP_MUL && a->arg[k]->op == OP_CONST) {
      *t = a->arg[1 - k];
      return a->arg[k]->value;
    }
  *t = a;
  return 1;
}

/* b = -a for every input, bit for bit: one is the other negated, or both
 * are products of the same t with opposite constants (rounded to the
 * compute type) */
static int opposite(const dnc_node *a, const dnc_node *b, int f64)
{
  if ((a->op == OP_NEG && a->arg[0] == b) || (b->op == OP_NEG && b->arg[0] == a))
    return 1;
  const dnc_node *ta, *tb;
  double sa = dnc_split_scale(a, &ta), sb = dnc_split_scale(b, &tb);
  if (!f64)
    sa = (float)sa, sb = (float)sb;
  return ta == tb && sa == -sb && sa != 0 && !isnan(sa);
}

/* The base u when e is exp(-(u^2)), else NULL. */
static const dnc_node *gauss_base(const dnc_node *e)
{
  if (e->op != OP_EXP || e->arg[0]->op != OP_NEG)
    return NULL;
  const dnc_node *sq = e->arg[0]->arg[0];
  if (sq->op == OP_POW && sq->arg[1]->op == OP_CONST && sq->arg[1]->value == 2)
    return sq->arg[0];
  return NULL;
}

int dnc_expneg_of(const dnc_node *y, const dnc_node **t, double *k)
{
  if (y->op != OP_NEG || y->arg[0]->op != OP_MUL)
    return 0;
  const dnc_node *m = y->arg[0];
  if (m->arg[0]->op == OP_ABS && m->arg[1]->op == OP_CONST &&
      m->arg[1]->value >= 0) {
    *t = m->arg[0]->arg[0];
    *k = m->arg[1]->value;
    return 1;
  }
  return 0;
}

const dnc_node *dnc_square_of(const dnc_node *e)
{
  if (e->op == OP_POW && e->arg[1]->op == OP_CONST && e->arg[1]->value == 2)
    return e->arg[0];
  if (e->op == OP_MUL && e->arg[0] == e->arg[1])
    return e->arg[0];
  return NULL;
}

typedef struct rewriter {
  dnc_dag *g;
  int f64, lowp, target; /* target: DNC_TARGET_* flags */
  dnc_node **map; /* by id of an original node: its rewritten form */
} rewriter;

#define N(op, a, b, c) dnc_node_op(rw->g, op, a, b, c)

static dnc_node *sigmoid_pair(rewriter *rw, const dnc_node *e)
{
  const dnc_node *l = e->arg[0], *r = e->arg[1];
  if (l->op != OP_SIGMOID || r->op != OP_SIGMOID ||
      !dnc_vm_native(OP_SIGMOID, rw->f64) ||
      !opposite(l->arg[0], r->arg[0], rw->f64))
    return NULL;
  const dnc_node *t;
  double s = dnc_split_scale(l->arg[0], &t);
  if (!rw->f64)
    s = (float)s;
  dnc_node *y = N(OP_NEG, N(OP_MUL, N(OP_ABS, rw->map[t->id], NULL, NULL),
                            dnc_const(rw->g, fabs(s)), NULL),
                  NULL, NULL);
  dnc_node *ex = N(OP_EXP, y, NULL, NULL);
  dnc_node *d = N(OP_ADD, dnc_const(rw->g, 1.0), ex, NULL);
  return N(OP_DIV, ex, N(OP_MUL, d, d, NULL), NULL);
}

static dnc_node *gauss(rewriter *rw, const dnc_node *e)
{
  const dnc_node *u0 = rw->target & DNC_TARGET_FMA ? gauss_base(e) : NULL;
  if (!u0)
    return NULL;
  dnc_node *u = rw->map[u0->id];
  dnc_node *y = rw->map[e->arg[0]->id]; /* -hi */
  dnc_node *r = N(OP_EXP, y, NULL, NULL);
  dnc_node *lo = N(OP_FMA, u, u, y);
  dnc_node *m1 = dnc_const(rw->g, -1.0), *p1 = dnc_const(rw->g, 1.0);
  lo = N(OP_SELECT, N(OP_GT, lo, m1, NULL), lo, m1);
  lo = N(OP_SELECT, N(OP_LT, lo, p1, NULL), lo, p1);
  return N(OP_FMA, r, N(OP_NEG, lo, NULL, NULL), r);
}

/* c when s is c + u^2 (either order), else NULL */
static const dnc_node *isru_base(const dnc_node *s, const dnc_node *u)
{
  if (s->op != OP_ADD)
    return NULL;
  for (int k = 0; k < 2; k++)
    if (dnc_square_of(s->arg[k]) == u)
      return s->arg[1 - k];
  return NULL;
}

/* The scale k and the scaled sum c k k + (u k)^2 of the rewritten u and
 * c; *us: u k. k is a power of two, so the scaling is exact:
 *   - where |u| > 2^42 (f32; 2^340 in f64), k = 2^-84 (2^-680): u^2
 *     overflows from 1.8e19 (1.3e154) and v sqrt(v) from 7e12 (2e102),
 *     while the derivatives (-u/(2 v^1.5) is DyISRU's d/dbeta) are
 *     normal numbers far beyond; (u k)^3 stays within the normal range
 *     up to |u| = 2^126 (2^1020), where the derivatives are 0 anyway;
 *   - where |u| < 2^-42 and |c| < 2^-84 (2^-340 and 2^-680), k = 2^50
 *     (2^300): v sqrt(v) underflows (DyISRU with beta below 2e-26 at x
 *     = 0, whose dx 1/sqrt(beta) was inf and d/dbeta NaN);
 *   - elsewhere k = 1, and every operation is the original's.
 * The nodes are hash-consed: the quotient and its derivatives get the
 * same ones, so their sqrt is computed once. */
static dnc_node *isru_scaled(rewriter *rw, const dnc_node *u, const dnc_node *c,
                             dnc_node **k, dnc_node **us)
{
  dnc_node *mu = rw->map[u->id], *mc = rw->map[c->id];
  dnc_node *au = N(OP_ABS, mu, NULL, NULL);
  double big = rw->f64 ? 0x1p340 : 0x1p42, kbig = rw->f64 ? 0x1p-680 : 0x1p-84;
  double tiny = rw->f64 ? 0x1p-340 : 0x1p-42, ctiny = rw->f64 ? 0x1p-680 : 0x1p-84;
  double ksmall = rw->f64 ? 0x1p300 : 0x1p50;
  dnc_node *small = N(OP_AND, N(OP_LT, au, dnc_const(rw->g, tiny), NULL),
                      N(OP_LT, N(OP_ABS, mc, NULL, NULL), dnc_const(rw->g, ctiny), NULL),
                      NULL);
  *k = N(OP_SELECT, N(OP_GT, au, dnc_const(rw->g, big), NULL),
         dnc_const(rw->g, kbig),
         N(OP_SELECT, small, dnc_const(rw->g, ksmall), dnc_const(rw->g, 1.0)));
  *us = N(OP_MUL, mu, *k, NULL);
  dnc_node *cs = N(OP_MUL, N(OP_MUL, mc, *k, NULL), *k, NULL);
  return N(OP_ADD, cs, N(OP_POW, *us, dnc_const(rw->g, 2.0), NULL), NULL);
}

/* f32 compute with f32's math on a target whose rsqrt is refined from an
 * estimate (vmath.c) and so costs no division */
static int rsqrt_cheap(const rewriter *rw)
{
  return !rw->f64 && !rw->lowp && (rw->target & DNC_TARGET_RSQRT);
}

/* u / sqrt(c + u^2) or u * rsqrt(c + u^2) (or rsqrt(c + u^2) * u: a
 * function's body keeps the order it was written in), scaled where u^2
 * would overflow (the comment at the top); u * rsqrt(...) in bf16's math
 * and where rsqrt is cheap */
static dnc_node *isru(rewriter *rw, const dnc_node *e)
{
  const dnc_node *u = e->arg[0], *r = e->arg[1];
  if (e->op == OP_MUL && u->op == OP_RSQRT && r->op != OP_RSQRT) {
    u = e->arg[1];
    r = e->arg[0];
  }
  if (!((e->op == OP_DIV && r->op == OP_SQRT) ||
        (e->op == OP_MUL && r->op == OP_RSQRT)))
    return NULL;
  const dnc_node *c = isru_base(r->arg[0], u);
  if (!c)
    return NULL;
  dnc_node *k, *us, *sum = isru_scaled(rw, u, c, &k, &us);
  if (rw->lowp == 8 || rsqrt_cheap(rw))
    return N(OP_MUL, us, N(OP_RSQRT, sum, NULL, NULL), NULL);
  return e->op == OP_DIV ? N(OP_DIV, us, N(OP_SQRT, sum, NULL, NULL), NULL)
                         : N(OP_MUL, us, N(OP_RSQRT, sum, NULL, NULL), NULL);
}

/* 1 / (S sqrt(S)) = r^3 from r = rsqrt(S), where rsqrt is cheap: c = (r r)
 * r carries three times r's error, and e = 1 - S (r r) (fma) is -2 times
 * it (to the rounding of r r), so c (1 + 1.5 e) (fma) takes it out: DyISRU's
 * f32 backward 4.5-4.9 ulp against 4.4-4.7 from the division (r r r alone:
 * 5.3-6.0; docs/accuracy.md). S = +-0 or +inf: r r S is NaN, and c (inf or
 * 0) is the result, as 1 / (S sqrt(S)) gives. */
static dnc_node *rsqrt_cubed(rewriter *rw, dnc_node *S)
{
  dnc_node *r = N(OP_RSQRT, S, NULL, NULL);
  dnc_node *r2 = N(OP_MUL, r, r, NULL);
  dnc_node *c = N(OP_MUL, r2, r, NULL);
  dnc_node *e = N(OP_FMA, N(OP_NEG, S, NULL, NULL), r2, dnc_const(rw->g, 1.0));
  dnc_node *fix = N(OP_FMA, c, N(OP_MUL, dnc_const(rw->g, 1.5), e, NULL), c);
  return N(OP_SELECT, N(OP_LT, e, dnc_const(rw->g, 1.0), NULL), fix, c);
}

/* n / (v sqrt(v)), v = c + u^2: the derivatives of
 * u / sqrt(c + u^2) (diff.c's div_isru) become (n k^3) (1 / (S sqrt(S)))
 * with the quotient's own k and scaled sum S, so that a backward computes
 * sqrt(S) once for f and its derivatives instead of twice, and one
 * division for all the derivatives (DyISRU's dx and dbeta) instead of
 * one each: the divider is what bounds DyISRU's backward. Where k = 1
 * the operations are the original's (n 1 1 1 = n, c 1 1 + (u 1)^2 = v)
 * but for the reciprocal's one rounding more (DyISRU's f32 backward 3.1
 * -> 3.5 ulp, tests/test_jit.c). Where k != 1, v sqrt(v) would overflow
 * (|u| > 2^42 in f32, 2^340 in f64) or underflow (u and c tiny), and
 * the original be 0, NaN or inf where the derivative is a normal
 * number; S sqrt(S) is then within the normal range (tests/
 * test_specials.c), up to |u| = 2^126 (2^1020), beyond which it
 * overflows and the result is 0 (the derivatives are below the
 * smallest subnormal there), or NaN for an infinite n. */
static dnc_node *isru_deriv(rewriter *rw, const dnc_node *e)
{
  const dnc_node *d = e->arg[1];
  if (e->op != OP_DIV || d->op != OP_MUL)
    return NULL;
  for (int j = 0; j < 2; j++) {
    const dnc_node *v = d->arg[j], *sq = d->arg[1 - j];
    if (sq->op != OP_SQRT || sq->arg[0] != v || v->op != OP_ADD)
      continue;
    for (int i = 0; i < 2; i++) {
      const dnc_node *u = dnc_square_of(v->arg[i]);
      /* c as isru() takes it from the same sum, so that S is its node */
      const dnc_node *c = u ? isru_base(v, u) : NULL;
      if (!c)
        continue;
      dnc_node *k, *us, *S = isru_scaled(rw, u, c, &k, &us);
      dnc_node *r = rsqrt_cheap(rw) ? rsqrt_cubed(rw, S)
                    : rw->lowp == 8
                        ? N(OP_MUL, N(OP_RSQRT, S, NULL, NULL),
                            N(OP_DIV, dnc_const(rw->g, 1.0), S, NULL), NULL)
                        : N(OP_DIV, dnc_const(rw->g, 1.0),
                            N(OP_MUL, S, N(OP_SQRT, S, NULL, NULL), NULL), NULL);
      /* n k^3 r as ((n k) (r k)) k: k^3 itself is outside the range,
       * and so may be n k r */
      dnc_node *nk = N(OP_MUL, rw->map[e->arg[0]->id], k, NULL);
      return N(OP_MUL, N(OP_MUL, nk, N(OP_MUL, r, k, NULL), NULL), k, NULL);
    }
  }
  return NULL;
}

static void rewrite_root(rewriter *rw, dnc_arena *scratch, dnc_node **root)
{
  uint32_t n;
  dnc_node **s = dnc_schedule(rw->g, scratch, *root, &n);
  for (uint32_t i = 0; i < n; i++) {
    dnc_node *e = s[i];
    if (rw->map[e->id])
      continue;
    dnc_node *r = NULL;
    if (e->op == OP_MUL)
      r = sigmoid_pair(rw, e);
    else if (e->op == OP_EXP)
      r = gauss(rw, e);
    if (!r && (e->op == OP_DIV || e->op == OP_MUL))
      r = isru(rw, e);
    if (!r && e->op == OP_DIV)
      r = isru_deriv(rw, e);
    if (!r && e->nargs) {
      dnc_node *a[3] = {NULL, NULL, NULL};
      int same = 1;
      for (int k = 0; k < e->nargs; k++) {
        a[k] = rw->map[e->arg[k]->id];
        same &= a[k] == e->arg[k];
      }
      r = same ? e : N(e->op, a[0], a[1], a[2]);
    }
    rw->map[e->id] = r ? r : e;
  }
  *root = rw->map[(*root)->id];
}

int dnc_rewrite(dnc_dag *g, int f64, int lowp, int target, dnc_node **roots,
                int n)
{
  uint32_t top = 0;
  for (int i = 0; i < n; i++)
    if (roots[i] && roots[i]->id + 1 > top)
      top = roots[i]->id + 1;
  uint32_t limit0 = dnc_dag_budget(g, DNC_MAX_DIFF_NODES);
  dnc_arena *scratch = dnc_arena_new();
  rewriter rw = {g, f64, lowp, target,
                 dnc_arena_alloc(scratch, sizeof(dnc_node *) * (top + 1))};
  for (uint32_t i = 0; i <= top; i++)
    rw.map[i] = NULL;
  for (int i = 0; i < n && !g->over; i++)
    if (roots[i])
      rewrite_root(&rw, scratch, &roots[i]);
  dnc_arena_free(scratch);
  int over = g->over;
  dnc_dag_budget_end(g, limit0);
  return over ? -1 : 0;
}
