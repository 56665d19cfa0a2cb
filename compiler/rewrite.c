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
 *   the chain rule's products: a product with a factor g bounded by 1
 *     (a Gaussian, a sigmoid pair) as ((g V) I) (((g v1) v2) I where
 *     more than one factor varies), V the factors that vary
 *     (the input), I the constants (1/4 <= |K| <= 16) and parameters
 *     (chain_form), so that the derivatives of erf(alpha x + s) are G
 *     (2/sqrt(pi) alpha), (G x) 2/sqrt(pi) and G 2/sqrt(pi), and DyT's Q
 *     (4 alpha) and (Q x) 4: codegen's backward multiplies dL/df by G once
 *     for all of them and makes I once a kernel (codegen.c,
 *     chain_factor). The same number of roundings; for a power of two K
 *     (DyT's 4) the same bits but in the subnormals.
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
 *     The same for the spellings users write (isru_match): n / sqrt(c +
 *     t), n * rsqrt(c + t), n / (c + t)^0.5 and n * (c + t)^-0.5 with t
 *     of degree 2 in the input x (beta x^2, (2 x)^2, (alpha x)^2, x^2 /
 *     s) or the square of a node, n of degree 1 in it or any node: t
 *     and n are computed from x k (subst), c k k as above, so that k = 1
 *     is again the original's operations; their derivatives n / (v
 *     sqrt(v)) with n of degree 1 to 3 (a parameter in the square: -x^3
 *     beta'/2); the rational forms n / (c + t), n of degree 1 or 2
 *     (x / (1 + (a x)^2), x^2 / (beta + x^2), v'/v). The matcher
 *     (dnc_isru_shape_of) is the decomposed PyTorch form's too
 *     (print_torch.c), which scales the same shapes by powers of two
 *     in Python. Not the roots alone: sqrt(1 + x^2) is inf where x^2
 *     overflows, as the decomposed PyTorch form (tests/python/
 *     test_torch_form.py holds the two equal), and rsqrt(1 + x^2) 0 (kept finite, it turned the
 *     NaN of 1 / rsqrt(1 + x^2)'s quotient rule into a finite wrong
 *     value: tests/test_differential.c, seed 20).
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

/* b = (-p) q or p (-q) where a = p q, the operands in either order */
static int one_factor_negated(const dnc_node *a, const dnc_node *b)
{
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      const dnc_node *n = b->arg[j];
      if (n->op == OP_NEG && n->arg[0] == a->arg[i] &&
          b->arg[1 - j] == a->arg[1 - i])
        return 1;
    }
  return 0;
}

int dnc_negated_factor(const dnc_node *a, const dnc_node *b)
{
  return a->op == OP_MUL && b->op == OP_MUL &&
         (one_factor_negated(a, b) || one_factor_negated(b, a));
}

/* b = -a for every input, bit for bit: one is the other negated, or both
 * are products of the same t with opposite constants (rounded to the
 * compute type), or one has a factor of the other negated ((-a) x and
 * a x: -a * x parses so) */
static int opposite(const dnc_node *a, const dnc_node *b, int f64)
{
  if ((a->op == OP_NEG && a->arg[0] == b) || (b->op == OP_NEG && b->arg[0] == a))
    return 1;
  if (dnc_negated_factor(a, b))
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

/* Not in bf16's math (lowp 8): there lo weighs at most |hi| 2^-24 <=
 * 2^-18 against r (r is 0 once hi > 104), below the 2^-15 to which
 * bf16's exp is computed (docs/accuracy.md), and its four operations
 * (lo, its two clamps, the fused multiply-add) were a tenth of Derf's
 * bf16 backward. f16's math (2^-19) keeps it. */
static dnc_node *gauss(rewriter *rw, const dnc_node *e)
{
  const dnc_node *u0 = rw->target & DNC_TARGET_FMA && rw->lowp != 8 ? gauss_base(e) : NULL;
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

/* Whether h reaches the node u (1 too past the budget: callers take
 * that as "may") */
static int reaches(const dnc_node *h, const dnc_node *u, int *budget)
{
  if (h == u)
    return 1;
  if (h->id < u->id || !h->nargs)
    return 0;
  if (--*budget < 0)
    return 1;
  for (int k = 0; k < h->nargs; k++)
    if (reaches(h->arg[k], u, budget))
      return 1;
  return 0;
}

int dnc_reaches(const dnc_node *h, const dnc_node *u)
{
  int budget = 256;
  return reaches(h, u, &budget);
}

/* The degree of h in the node u: d where h, as a function of u with
 * every other node held fixed, is homogeneous of degree d (h(u k) = k^d
 * h(u) for k > 0): built of +, -, *, /, abs, integer powers, sqrt and
 * hypot from u and nodes of degree 0 (any function of those, and any
 * node that does not reach u: ids are topological, an operand's below
 * its user's). DNC_DEG_NO otherwise or past the budget of nodes looked at.
 * h computed with u k in place of u (subst) is then h k^d exactly where
 * k is a power of two and nothing overflows or underflows: each
 * operation's rounding commutes with the scaling. */
static int degree(const dnc_node *h, const dnc_node *u, int depth, int *budget)
{
  if (h == u)
    return 1;
  if (h->id < u->id || !h->nargs)
    return 0;
  if (depth > 24 || --*budget < 0)
    return DNC_DEG_NO;
  int d[3] = {0, 0, 0};
  for (int k = 0; k < h->nargs; k++)
    if ((d[k] = degree(h->arg[k], u, depth + 1, budget)) == DNC_DEG_NO)
      return DNC_DEG_NO;
  switch (h->op) {
  case OP_NEG:
  case OP_ABS:
    return d[0];
  case OP_MUL:
    return d[0] + d[1];
  case OP_DIV:
    return d[0] - d[1];
  case OP_ADD:
  case OP_SUB:
  case OP_HYPOT:
    return d[0] == d[1] ? d[0] : DNC_DEG_NO;
  case OP_SQRT:
    return d[0] % 2 == 0 ? d[0] / 2 : DNC_DEG_NO;
  case OP_POW:
    if (d[1] == 0 && h->arg[1]->op == OP_CONST) {
      double p = d[0] * h->arg[1]->value;
      if (p == rint(p) && fabs(p) <= 8)
        return (int)p;
    }
    return DNC_DEG_NO;
  default: /* any function of degree-0 operands is of degree 0 */
    return d[0] == 0 && d[1] == 0 && d[2] == 0 ? 0 : DNC_DEG_NO;
  }
}

static int deg_of(const dnc_node *h, const dnc_node *u)
{
  int budget = 256;
  return degree(h, u, 0, &budget);
}

/* h computed with us = u k in place of u; the rewritten nodes where u is
 * not reached (so that a rewrite inside them is kept) */
static dnc_node *subst(rewriter *rw, const dnc_node *h, const dnc_node *u,
                       dnc_node *us)
{
  int budget = 256;
  if (h == u)
    return us;
  if (!reaches(h, u, &budget))
    return rw->map[h->id];
  dnc_node *a[3] = {NULL, NULL, NULL};
  for (int k = 0; k < h->nargs; k++)
    a[k] = subst(rw, h->arg[k], u, us);
  return N(h->op, a[0], a[1], a[2]);
}

/* the function's input where t reaches it, else NULL */
static const dnc_node *input_in(const dnc_node *t, int *budget)
{
  if (t->op == OP_INPUT)
    return t;
  if (--*budget < 0)
    return NULL;
  for (int k = 0; k < t->nargs; k++) {
    const dnc_node *x = input_in(t->arg[k], budget);
    if (x)
      return x;
  }
  return NULL;
}

/* v = c + t (either order) with t of degree 2 in u: u^2 (pure: t is
 * the square of u, m->t NULL; isru_scaled's first form), or (2 x)^2,
 * beta x^2, (alpha x)^2, x^2 / s, ... in u = x, the function's input; c
 * is any node (c k k is exact). m->dn: the degree of the numerator in
 * u, or DNC_DEG_NO.
 * u for v: the input where t reaches it and is of degree 2 in it (the
 * parameters are fixed and x is what grows: x^2, beta x^2, (2 x)^2,
 * (a x)^2, where a x itself may overflow), then the base of the square
 * where t is one (x - mu), then the bases of squares in t; a candidate
 * that does not reach the input (alpha in alpha^2 x^2) is not one. The
 * first candidate in which n is of a degree from dmin to dmax, or the
 * input where n is of degree 0 in it (1, beta: n k, with dn = DNC_DEG_NO),
 * is taken, so that a quotient and its derivatives share S and its sqrt
 * (the oracle rewrites each root alone: the choice cannot depend on the
 * other roots); else the first valid candidate with dn = DNC_DEG_NO. 0 when
 * v is not of the shape. */
static int isru_match(const dnc_node *v, const dnc_node *n, int dmin, int dmax,
                      dnc_isru_shape *m)
{
  if (v->op != OP_ADD)
    return 0;
  int have = 0;
  for (int i = 0; i < 2; i++) {
    const dnc_node *t = v->arg[i], *pure = dnc_square_of(t), *cand[4];
    int nc = 0, budget = 256;
    const dnc_node *x = input_in(t, &budget);
    if (x)
      cand[nc++] = x;
    if (pure && pure != x)
      cand[nc++] = pure;
    if (!pure && t->op == OP_MUL)
      for (int j = 0; j < 2; j++)
        if (dnc_square_of(t->arg[j]))
          cand[nc++] = dnc_square_of(t->arg[j]);
    for (int j = 0; j < nc; j++) {
      const dnc_node *u = cand[j];
      budget = 256;
      if ((u != pure && deg_of(t, u) != 2) || !input_in(u, &budget))
        continue; /* not a base that grows with x: alpha in alpha^2 x^2 */
      dnc_isru_shape cur = {0};
      cur.n = n, cur.v = v, cur.u = u, cur.c = v->arg[1 - i];
      cur.t = u == pure ? NULL : t, cur.base = u == pure ? NULL : pure;
      cur.dn = n ? deg_of(n, u) : 0;
      int take = cur.dn >= dmin && cur.dn <= dmax;
      if (!take && u == x && cur.dn == 0) {
        cur.dn = DNC_DEG_NO;
        take = 1;
      }
      if (take) {
        *m = cur;
        return 1;
      }
      if (!have) {
        cur.dn = DNC_DEG_NO;
        *m = cur;
        have = 1;
      }
    }
  }
  return have;
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
 * For a t other than u^2 (m->t: s u^2, (2 x)^2, ...) the test is on |t|
 * against the squares of those bounds (t computed as written, inf where
 * it overflows), not on |u|, so that a small coefficient (1 + 1e-20 x^2
 * at x = 1e12) is not scaled below the range, and the scaled t is t
 * computed from u k (subst): c k k + t(u k). There k is 2^-80 (2^-676)
 * up to |u| = 2^86 (2^682) and 2^-126 (2^-1022) above, so that u k and
 * (u k)^3, a numerator of degree 3, stay normal numbers up to |u| =
 * FLT_MAX (DBL_MAX): d/dbeta of x / sqrt(1 + beta x^2) tends to -1/(2
 * beta^1.5), not to 0, and S sqrt(S) >= 2^-120 (2^-1014), where t >
 * 2^84 (2^680). Where t is the square of a base b of degree 1 in u
 * ((a x)^2 in ISRU, a x / sqrt(c + (a x)^2), with u = x), the tests are
 * those of u^2 on |b| (b as written: inf where it overflows) and k is
 * 2^-84 (2^-680), one compare as for u^2, but for a numerator of degree
 * 3 (deep). *kh (when asked): sqrt(k), by the same tests.
 * The nodes are hash-consed: the quotient and its derivatives get the
 * same ones, so their sqrt is computed once. */
static dnc_node *isru_scaled(rewriter *rw, const dnc_isru_shape *m,
                             dnc_node **k, dnc_node **us, dnc_node **kh)
{
  int deep = m->deep;
  dnc_node *mu = rw->map[m->u->id], *mc = rw->map[m->c->id];
  /* t = b^2, b of degree 1 in u: the tests on |b| as for u^2 */
  dnc_node *au = N(OP_ABS, rw->map[(m->base && !deep ? m->base : m->u)->id],
                   NULL, NULL);
  double big = rw->f64 ? 0x1p340 : 0x1p42, kbig = rw->f64 ? 0x1p-680 : 0x1p-84;
  double tiny = rw->f64 ? 0x1p-340 : 0x1p-42, ctiny = rw->f64 ? 0x1p-680 : 0x1p-84;
  double ksmall = rw->f64 ? 0x1p300 : 0x1p50;
  dnc_node *small = N(OP_AND, N(OP_LT, au, dnc_const(rw->g, tiny), NULL),
                      N(OP_LT, N(OP_ABS, mc, NULL, NULL), dnc_const(rw->g, ctiny), NULL),
                      NULL);
  dnc_node *large = N(OP_GT, au, dnc_const(rw->g, big), NULL);
  dnc_node *kl = dnc_const(rw->g, kbig), *khl = dnc_const(rw->g, sqrt(kbig));
  if (m->t && (deep || !m->base)) {
    dnc_node *at = N(OP_ABS, rw->map[m->t->id], NULL, NULL);
    au = N(OP_ABS, mu, NULL, NULL);
    double top = rw->f64 ? 0x1p682 : 0x1p86, ktop = rw->f64 ? 0x1p-1022 : 0x1p-126;
    kbig = rw->f64 ? 0x1p-676 : 0x1p-80;
    large = N(OP_GT, at, dnc_const(rw->g, big * big), NULL);
    small = N(OP_AND, small, N(OP_LT, at, dnc_const(rw->g, tiny * tiny), NULL),
              NULL);
    dnc_node *higher = N(OP_GT, au, dnc_const(rw->g, top), NULL);
    kl = N(OP_SELECT, higher, dnc_const(rw->g, ktop), dnc_const(rw->g, kbig));
    khl = N(OP_SELECT, higher, dnc_const(rw->g, sqrt(ktop)),
            dnc_const(rw->g, sqrt(kbig)));
  }
  *k = N(OP_SELECT, large, kl,
         N(OP_SELECT, small, dnc_const(rw->g, ksmall), dnc_const(rw->g, 1.0)));
  if (kh)
    *kh = N(OP_SELECT, large, khl,
            N(OP_SELECT, small, dnc_const(rw->g, sqrt(ksmall)),
              dnc_const(rw->g, 1.0)));
  *us = N(OP_MUL, mu, *k, NULL);
  dnc_node *cs = N(OP_MUL, N(OP_MUL, mc, *k, NULL), *k, NULL);
  dnc_node *ts = m->t ? subst(rw, m->t, m->u, *us)
                      : N(OP_POW, *us, dnc_const(rw->g, 2.0), NULL);
  return N(OP_ADD, cs, ts, NULL);
}

/* f32 compute with f32's math on a target whose rsqrt is refined from an
 * estimate (vmath.c) and so costs no division */
static int rsqrt_cheap(const rewriter *rw)
{
  return !rw->f64 && !rw->lowp && (rw->target & DNC_TARGET_RSQRT);
}

/* v when t is v^p, else NULL */
static const dnc_node *pow_of(const dnc_node *t, double p)
{
  return t->op == OP_POW && t->arg[1]->op == OP_CONST && t->arg[1]->value == p
             ? t->arg[0] : NULL;
}

/* The quotients: n / sqrt(c + t), n * rsqrt(c + t) (or rsqrt(c + t) *
 * n: a function's body keeps the order it was written in), n / (c +
 * t)^0.5 and n * (c + t)^-0.5, t of degree 2 in some u (isru_match),
 * n of degree 1 in it or anything: the inverse square root unit u /
 * sqrt(c + u^2), x / sqrt(1 + beta x^2), x / sqrt(beta + (2 x)^2). */
static int quotient_shape(const dnc_node *e, dnc_isru_shape *s)
{
  const dnc_node *n = NULL, *v = NULL;
  int form = -1; /* 0 sqrt, 1 rsqrt, 2 ^0.5, 3 ^-0.5 */
  if (e->op == OP_DIV) {
    n = e->arg[0];
    const dnc_node *r = e->arg[1];
    if (r->op == OP_SQRT)
      v = r->arg[0], form = 0;
    else if ((v = pow_of(r, 0.5)))
      form = 2;
  } else if (e->op == OP_MUL) {
    for (int j = 1; j >= 0 && form < 0; j--) {
      const dnc_node *r = e->arg[j];
      n = e->arg[1 - j];
      if (r->op == OP_RSQRT)
        v = r->arg[0], form = 1;
      else if ((v = pow_of(r, -0.5)))
        form = 3;
    }
  }
  if (form < 0 || !isru_match(v, n, 1, 1, s))
    return 0;
  s->kind = DNC_ISRU_QUOTIENT;
  s->root = form;
  return 1;
}

/* The derivatives of the quotients (diff.c's div_isru): n / (v
 * sqrt(v)), v = c + t as above, n of degree 1 to 3 in u or anything
 * (-x^3 beta'/2 for a parameter in the square). */
static int deriv_shape(const dnc_node *e, dnc_isru_shape *s)
{
  const dnc_node *d = e->arg[1];
  if (e->op != OP_DIV || d->op != OP_MUL)
    return 0;
  for (int j = 0; j < 2; j++) {
    const dnc_node *v = d->arg[j], *sq = d->arg[1 - j];
    if (sq->op == OP_SQRT && sq->arg[0] == v &&
        isru_match(v, e->arg[0], 1, 3, s)) {
      s->kind = DNC_ISRU_DERIV;
      s->deep = s->dn == 3;
      return 1;
    }
  }
  return 0;
}

/* The rational forms n / (c + t), n of degree 1 or 2 in u: x / (1 +
 * (a x)^2), x^2 / (beta + x^2), v'/v in the derivatives of the
 * quotients (diff.c's div_v32). */
static int rational_shape(const dnc_node *e, dnc_isru_shape *s)
{
  if (e->op != OP_DIV || !isru_match(e->arg[1], e->arg[0], 1, 2, s) ||
      s->dn == DNC_DEG_NO)
    return 0;
  s->kind = DNC_ISRU_RATIONAL;
  return 1;
}

int dnc_isru_shape_of(const dnc_node *e, dnc_isru_shape *s)
{
  if (e->op != OP_DIV && e->op != OP_MUL)
    return 0;
  return quotient_shape(e, s) || deriv_shape(e, s) || rational_shape(e, s);
}

/* A quotient scaled where t would overflow (the comment at the top): n k
 * / sqrt(c k k + t k k), n k computed as n(u k) where n is of degree 1
 * in u, else as n times k. u k rsqrt(...) in bf16's math and where
 * rsqrt is cheap for u / sqrt(c + u^2) itself; a power stays a power. */
static dnc_node *isru(rewriter *rw, const dnc_isru_shape *m)
{
  const dnc_node *n = m->n, *s = m->v;
  dnc_node *k, *us, *sum = isru_scaled(rw, m, &k, &us, NULL);
  dnc_node *ns = m->dn == 1 ? subst(rw, n, m->u, us)
                            : N(OP_MUL, rw->map[n->id], k, NULL);
  switch (m->root) {
  case 2:
    return N(OP_DIV, ns, N(OP_POW, sum, dnc_const(rw->g, 0.5), NULL), NULL);
  case 3:
    return N(OP_MUL, ns, N(OP_POW, sum, dnc_const(rw->g, -0.5), NULL), NULL);
  }
  /* u / sqrt(c + u^2) itself as u k rsqrt(S) in bf16's math and where
   * rsqrt is cheap; the other spellings keep their operation (1 /
   * sqrt(beta + x^2) - 1 / sqrt(beta) is 0 at x = 0 as written) */
  int own = dnc_square_of(s->arg[0]) == n || dnc_square_of(s->arg[1]) == n;
  if (m->root == 1 || ((rw->lowp == 8 || rsqrt_cheap(rw)) && own))
    return N(OP_MUL, ns, N(OP_RSQRT, sum, NULL, NULL), NULL);
  return N(OP_DIV, ns, N(OP_SQRT, sum, NULL, NULL), NULL);
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

/* n k for a numerator of no degree in u: a product p q (or its negation)
 * as (p sqrt(k)) (q sqrt(k)), which stays finite where p q overflows and
 * k < 1 (x c in d/da of a x / sqrt(c + (a x)^2), x = c = 1e20 in f32) */
static dnc_node *times_k(rewriter *rw, const dnc_node *n, dnc_node *k,
                         dnc_node *kh)
{
  if (n->op == OP_NEG)
    return N(OP_NEG, times_k(rw, n->arg[0], k, kh), NULL, NULL);
  if (n->op == OP_MUL && n->arg[0]->op != OP_CONST && n->arg[1]->op != OP_CONST)
    return N(OP_MUL, N(OP_MUL, rw->map[n->arg[0]->id], kh, NULL),
             N(OP_MUL, rw->map[n->arg[1]->id], kh, NULL), NULL);
  return N(OP_MUL, rw->map[n->id], k, NULL);
}

/* A derivative n / (v sqrt(v)) becomes (n k^3) (1 / (S sqrt(S))) with
 * the quotient's own k and scaled sum S, so that a backward computes
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
 * smallest subnormal there), or NaN for an infinite n. n k^3 is n(u k)
 * k^(3-d) where n is of degree d = 1..3 in u (-x^3/2, d/dbeta of x /
 * sqrt(1 + beta x^2), overflows from x = 7e12 in f32), else (n k) k k
 * (times_k). */
static dnc_node *isru_deriv(rewriter *rw, const dnc_isru_shape *m)
{
  const dnc_node *n = m->n;
  dnc_node *k, *us, *kh, *S = isru_scaled(rw, m, &k, &us, &kh);
  dnc_node *r = rsqrt_cheap(rw) ? rsqrt_cubed(rw, S)
                : rw->lowp == 8
                    ? N(OP_MUL, N(OP_RSQRT, S, NULL, NULL),
                        N(OP_DIV, dnc_const(rw->g, 1.0), S, NULL), NULL)
                    : N(OP_DIV, dnc_const(rw->g, 1.0),
                        N(OP_MUL, S, N(OP_SQRT, S, NULL, NULL), NULL), NULL);
  /* degree 3: the derivative does not tend to 0 (-1/(2 beta^1.5)
   * above), and 1 / (S sqrt(S)) is below the range where (u k)^3 is
   * near its top: (n(u k) / S) / sqrt(S) */
  if (m->dn == 3)
    return N(OP_DIV, N(OP_DIV, subst(rw, n, m->u, us), S, NULL),
             N(OP_SQRT, S, NULL, NULL), NULL);
  dnc_node *rk = N(OP_MUL, r, k, NULL);
  if (m->dn == 2)
    return N(OP_MUL, subst(rw, n, m->u, us), rk, NULL);
  /* n k^3 r as ((n k) (r k)) k: k^3 itself is outside the range,
   * and so may be n k r */
  dnc_node *nk = m->dn == 1 ? subst(rw, n, m->u, us) : times_k(rw, n, k, kh);
  return N(OP_MUL, N(OP_MUL, nk, rk, NULL), k, NULL);
}

/* A rational form: as written, t overflows and the quotient is 0 (1e-20
 * at x = 1e20 in f32) or inf/inf = NaN (1); scaled as in isru: n(u k) /
 * S times k for degree 1, n(u k) / S for degree 2 (k = 1: the
 * original's operations). */
static dnc_node *rational(rewriter *rw, const dnc_isru_shape *m)
{
  dnc_node *k, *us, *S = isru_scaled(rw, m, &k, &us, NULL);
  dnc_node *q = N(OP_DIV, subst(rw, m->n, m->u, us), S, NULL);
  return m->dn == 2 ? q : N(OP_MUL, q, k, NULL);
}

static dnc_node *isru_lower(rewriter *rw, const dnc_node *e)
{
  dnc_isru_shape m;
  if (!dnc_isru_shape_of(e, &m))
    return NULL;
  switch (m.kind) {
  case DNC_ISRU_QUOTIENT:
    return isru(rw, &m);
  case DNC_ISRU_DERIV:
    return isru_deriv(rw, &m);
  default:
    return rational(rw, &m);
  }
}


/* at most 1 in magnitude for every input: a Gaussian exp(-(u^2)), or
 * sigmoid(a) sigmoid(-a) (at most 1/4) */
static int unit_bounded(const rewriter *rw, const dnc_node *g)
{
  if (gauss_base(g))
    return 1;
  return g->op == OP_MUL && g->arg[0]->op == OP_SIGMOID &&
         g->arg[1]->op == OP_SIGMOID &&
         opposite(g->arg[0]->arg[0], g->arg[1]->arg[0], rw->f64);
}

/* A product with a factor g bounded by 1 (unit_bounded) as ((g V) I):
 * V the factors that are neither constants nor parameters (x), I the
 * constants' product K, 1/4 <= |K| <= 16, times the parameters; V or I
 * left out where there are none. The derivatives of erf(alpha x + s),
 * 2/sqrt(pi) (alpha G), 2/sqrt(pi) (x G) and 2/sqrt(pi) G, become G
 * (2/sqrt(pi) alpha), (G x) 2/sqrt(pi) and G 2/sqrt(pi); DyT's 4 (alpha
 * Q) and 4 (x Q), Q (4 alpha) and (Q x) 4. Codegen's backward then
 * multiplies dL/df by G once for every output, makes I once a kernel
 * where it is made of scalars, and adds a sum's terms G x by a fused
 * multiply-add with I after the sum (codegen.c, chain_factor): DyT's dx
 * and d(alpha) take three vector operations where they took six. More
 * than one V are taken one at a time, g first, (((g v1) v2) ...) I: a
 * product of the V alone could overflow where g's would not (x x G at
 * |x| > 1.8e19 in f32 was inf, and G = 0 there made it NaN; x (x G), as
 * written, is 0), and |g v1 ... vj| <= |v1 ... vj|. Such a product is no
 * longer one codegen factors (it takes one V), as rare as it is (the
 * derivative of x sigmoid(a x) by a). K cannot overflow by itself; each
 * output is rounded as often as before, in another order (for DyT's K =
 * 4 the same bits but in the subnormals). */
enum { CHAIN_MAX = 8 };
typedef struct chain_leaves {
  const dnc_node *g;               /* the factor bounded by 1 */
  int ng, nk, np, nv;
  double k;                        /* the constants' product */
  const dnc_node *p[CHAIN_MAX];    /* parameters */
  const dnc_node *v[CHAIN_MAX];    /* the others */
} chain_leaves;

static int chain_split(const rewriter *rw, const dnc_node *e, chain_leaves *c)
{
  if (unit_bounded(rw, e)) {
    c->g = e;
    return ++c->ng == 1;
  }
  if (e->op == OP_MUL)
    return chain_split(rw, e->arg[0], c) && chain_split(rw, e->arg[1], c);
  if (e->op == OP_CONST) {
    c->k *= e->value;
    c->nk++;
    return 1;
  }
  if (e->op == OP_PARAM) {
    if (c->np == CHAIN_MAX)
      return 0;
    c->p[c->np++] = e;
    return 1;
  }
  if (c->nv == CHAIN_MAX)
    return 0;
  c->v[c->nv++] = e;
  return 1;
}

/* e's leaves where chain_form rewrites e */
static int chain_leaves_of(const rewriter *rw, const dnc_node *e,
                           chain_leaves *c)
{
  *c = (chain_leaves){.k = 1.0};
  return chain_split(rw, e, c) && c->ng == 1 && c->g != e &&
         !(c->nk && (fabs(c->k) < 0.25 || fabs(c->k) > 16));
}

int dnc_chain_product(const dnc_node *e, int f64)
{
  rewriter rw = {.f64 = f64};
  chain_leaves c;
  return e->op == OP_MUL && chain_leaves_of(&rw, e, &c);
}

static dnc_node *chain_form(rewriter *rw, const dnc_node *e)
{
  chain_leaves c;
  if (!chain_leaves_of(rw, e, &c))
    return NULL;
  dnc_node *r = rw->map[c.g->id], *inv = NULL;
  for (int i = 0; i < c.nv; i++)
    r = N(OP_MUL, r, rw->map[c.v[i]->id], NULL);
  if (c.nk && c.k != 1.0)
    inv = dnc_const(rw->g, c.k);
  for (int i = 0; i < c.np; i++)
    inv = inv ? N(OP_MUL, inv, rw->map[c.p[i]->id], NULL) : rw->map[c.p[i]->id];
  return inv ? N(OP_MUL, r, inv, NULL) : r;
}

/* a product, or an integer power of 2 or more (computed by products:
 * x^2 is x x rounded once), negated or not */
static int product_like(const dnc_node *c)
{
  if (c->op == OP_NEG)
    c = c->arg[0];
  if (c->op == OP_MUL)
    return 1;
  if (c->op != OP_POW || c->arg[1]->op != OP_CONST)
    return 0;
  double p = c->arg[1]->value;
  return p == rint(p) && fabs(p) >= 2;
}

/* a b + c (and c + a b, a b - c, c - a b) as one fused multiply-add
 * where the target has it: one rounding where there were two, and one
 * operation (Derf's alpha x + s, in its forward and its backward). Not
 * where both terms are products, or powers: fma(a, b, -(c d)) is not
 * c d - a b with its sign changed, and x x - x x, or x x - x^2, would no
 * longer be 0 (the fma's exact x x less x^2 rounded). */
static dnc_node *fused(rewriter *rw, const dnc_node *e)
{
  if (!(rw->target & DNC_TARGET_FMA))
    return NULL;
  const dnc_node *l = e->arg[0], *r = e->arg[1];
  if ((l->op == OP_MUL) == (r->op == OP_MUL))
    return NULL;
  int lm = l->op == OP_MUL;
  const dnc_node *m = lm ? l : r, *c = lm ? r : l;
  if (product_like(c))
    return NULL;
  dnc_node *a = rw->map[m->arg[0]->id], *b = rw->map[m->arg[1]->id];
  dnc_node *cc = rw->map[c->id];
  /* not a product the rewrites above wrote otherwise: the scaled inverse
   * square root unit (x rsqrt(a + x^2) + c was fma(x, rsqrt(inf), c) = c
   * past x^2's overflow, where the unit is 1), a sigmoid pair, a chain
   * form; they keep their own form, unfused */
  const dnc_node *pm = rw->map[m->id];
  if (pm->op != OP_MUL || !((pm->arg[0] == a && pm->arg[1] == b) ||
                            (pm->arg[0] == b && pm->arg[1] == a)))
    return NULL;
  if (e->op == OP_SUB) {
    if (lm)
      cc = N(OP_NEG, cc, NULL, NULL);
    else
      a = N(OP_NEG, a, NULL, NULL);
  }
  return N(OP_FMA, a, b, cc);
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
    if (!r && e->op == OP_MUL)
      r = chain_form(rw, e);
    else if (e->op == OP_EXP)
      r = gauss(rw, e);
    if (!r)
      r = isru_lower(rw, e);
    if (!r && (e->op == OP_ADD || e->op == OP_SUB))
      r = fused(rw, e);
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
