/*
 * diff.c - symbolic differentiation of the DAG.
 *
 * Forward accumulation over the nodes reachable from the root, in id
 * (topological) order: each node's derivative is built from its operands
 * and their derivatives by the rule in its row of the op table (DIFF in
 * ops.h). A NULL derivative means "exactly zero": the node does not depend
 * on the variable, so the terms it would multiply are left out rather than
 * written as 0*t (which is NaN for infinite t). New nodes go through the
 * simplifying constructor and are hash-consed, so the derivative shares
 * subterms with the function: the derivative of exp(u) is exp(u) * u', with
 * the same exp(u) node.
 *
 * Conventions where a function is not differentiable (docs/language.md):
 *   abs'(0) = sign(0) = 0;  sign' = 0 (but an odd extension sign(u)
 *   g(|u|), continuous at 0, has g'(0+) u' there: mul_odd);  comparisons
 *   and conditions have no
 *   derivative; `if c then a else b` differentiates each branch, not c;
 *   min(a, b) sends the gradient to the operand it returns: b where b < a,
 *   else a (so a tie goes to the first operand); max likewise;
 *   clamp(v, lo, hi) = min(max(v, lo), hi) follows: at an edge (v == lo or
 *   v == hi) the gradient goes to v.
 *
 * Accuracy: where two equal forms differ in accuracy the accurate one is
 * built (see the rules for tanh, sigmoid, expm1, and isru_rule for
 * x / sqrt(c + x^2) and x * rsqrt(c + x^2)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

typedef struct dctx {
  dnc_dag *g;
  int wrt;         /* -1: x; k >= 0: parameter k */
  dnc_node **dv;   /* derivatives so far, by node id (NULL: zero) */
  unsigned char *done; /* by node id up to nids: dv[id] is made */
  uint32_t nids;
  dnc_arena *scratch; /* dv and done, grown by made() */
  int budget;         /* node visits left to pdeg() and resid() */
  int odd;            /* mul_odd() is used (not within its own pass) */
} dctx;

typedef dnc_node *(*rule_fn)(dctx *d, dnc_node *e, dnc_node *const *a,
                             dnc_node *const *da);

#define S(op, x, y) dnc_simp(d->g, op, x, y, NULL)
#define K(v) dnc_const(d->g, v)

/* arithmetic in which NULL is an exact zero */
static dnc_node *add(dctx *d, dnc_node *x, dnc_node *y)
{
  return !x ? y : !y ? x : S(OP_ADD, x, y);
}

static dnc_node *sub(dctx *d, dnc_node *x, dnc_node *y)
{
  return !y ? x : !x ? S(OP_NEG, y, NULL) : S(OP_SUB, x, y);
}

static dnc_node *mul(dctx *d, dnc_node *x, dnc_node *y)
{
  return x && y ? S(OP_MUL, x, y) : NULL;
}

static dnc_node *divide(dctx *d, dnc_node *x, dnc_node *y)
{
  return x ? S(OP_DIV, x, y) : NULL;
}

static dnc_node *zero_if_null(dctx *d, dnc_node *x)
{
  return x ? x : K(0.0);
}

/* every rule has the same signature; most use only some of it */
#define U __attribute__((unused))
#define RULE(name)                                                      \
  static dnc_node *name(U dctx *d, U dnc_node *e, U dnc_node *const *a, \
                        U dnc_node *const *da)

RULE(df_const) { return NULL; }
RULE(df_input) { return d->wrt < 0 ? K(1.0) : NULL; }
RULE(df_param) { return e->param == d->wrt ? K(1.0) : NULL; }
RULE(df_neg) { return da[0] ? S(OP_NEG, da[0], NULL) : NULL; }
RULE(df_add) { return add(d, da[0], da[1]); }
RULE(df_sub) { return sub(d, da[0], da[1]); }
/* a' c - a (s c'), the numerator the quotient-like rules below share;
 * NULL when it is 0 */
static dnc_node *cross(dctx *d, dnc_node *a, dnc_node *da, dnc_node *c, double s)
{
  dnc_node *dc = d->dv[c->id];
  return sub(d, mul(d, da, c), mul(d, a, s == 1 ? dc : mul(d, K(s), dc)));
}

static int homogeneous(dctx *d, const dnc_node *h, const dnc_node *a);

/* b = k(a) or a = k(b), k positively homogeneous of degree 1 with
 * coefficients independent of the variable (homogeneous(), below):
 * then a' b^2 - a b b' = 0 (Euler: b' a = b a'), so the isru and hypot
 * rules below hold for a / sqrt(c + b^2) and a / hypot(c, b), as for b =
 * a: x / sqrt(1 + (x/c)^2), x / sqrt(1 + (alpha x)^2), alpha x / sqrt(1 +
 * alpha^2 x^2) (for d/dx) */
static int related(dctx *d, const dnc_node *b, const dnc_node *a)
{
  return b == a || homogeneous(d, b, a) || homogeneous(d, a, b);
}

/* a when e is a^2 or a * a, or s a^2 (either order) with s independent
 * of the variable (x / sqrt(beta + alpha x^2)): v' = c' + 2 s a a' then,
 * and the isru rule's numerator a' c - a c'/2 is the same */
static const dnc_node *scaled_square_of(dctx *d, const dnc_node *e)
{
  const dnc_node *a = dnc_square_of(e);
  if (a || e->op != OP_MUL)
    return a;
  for (int k = 0; k < 2; k++) {
    a = dnc_square_of(e->arg[k]);
    if (a && !d->dv[e->arg[1 - k]->id])
      return a;
  }
  return NULL;
}

/* The degree of h in w, a node that the variable reaches: d where h is
 * homogeneous of degree d in w with every other operand independent of
 * the variable (built of +, -, *, /, integer powers and sqrt; not abs:
 * rewrite.c does not scale div_rational's t through it, so that x / (1
 * + abs(x^2)) keeps the quotient rule; pdeg, below, is the degree of
 * positive homogeneity), else -1000.
 * Then Euler's h' = d (h / w) w' holds. w NULL: the degree in the
 * function's input, the parameters and constants fixed (no sqrt). */
static int hdeg(dctx *d, const dnc_node *h, const dnc_node *w, int depth)
{
  if (w ? h == w : h->op == OP_INPUT)
    return 1;
  if (w ? !d->dv[h->id] : h->op == OP_CONST || h->op == OP_PARAM)
    return 0;
  if (!h->nargs || depth > 16)
    return -1000;
  int a = hdeg(d, h->arg[0], w, depth + 1);
  int b = h->nargs > 1 ? hdeg(d, h->arg[1], w, depth + 1) : 0;
  if (a == -1000 || b == -1000)
    return -1000;
  switch (h->op) {
  case OP_NEG:
    return a;
  case OP_MUL:
    return a + b;
  case OP_DIV:
    return a - b;
  case OP_ADD:
  case OP_SUB:
    return a == b ? a : -1000;
  case OP_SQRT:
    return w && a % 2 == 0 ? a / 2 : -1000;
  case OP_POW:
    if (b == 0 && h->arg[1]->op == OP_CONST && h->arg[1]->value == rint(h->arg[1]->value) &&
        fabs(h->arg[1]->value) <= 8)
      return a * (int)h->arg[1]->value;
    return -1000;
  default:
    return -1000;
  }
}


/* Degrees of positive homogeneity that may name a parameter: r n^s,
 * where n is a node independent of the variable and s is -1, 0 or 1
 * (|x|^p has degree p, (...)^(1/p) scales a degree by 1/p); r NaN where
 * there is none. */
typedef struct hdeg_t {
  double r;
  const dnc_node *n;
  int s;
} hdeg_t;

static const hdeg_t no_deg = {NAN, NULL, 0};

/* pdeg() and resid() walk the DAG as a tree: at most this many nodes a
 * rule (a derivative's own nodes share subterms, and a walk of them
 * would be exponential: `dnc diff --order 16` of sin(a cos(b sin(a cos(b
 * x)))) took 125 s, not 1) */
#define RESID_BUDGET 64

static hdeg_t deg_num(double r) { return (hdeg_t){r, NULL, 0}; }
static int deg_ok(hdeg_t a) { return !isnan(a.r); }
static int deg_zero(hdeg_t a) { return a.r == 0; }

static hdeg_t deg_mul(hdeg_t a, hdeg_t b)
{
  if (!deg_ok(a) || !deg_ok(b))
    return no_deg;
  if (deg_zero(a) || deg_zero(b))
    return deg_num(0);
  if (!a.s || !b.s)
    return (hdeg_t){a.r * b.r, a.s ? a.n : b.n, a.s ? a.s : b.s};
  if (a.n == b.n && a.s == -b.s)
    return deg_num(a.r * b.r);
  return no_deg;
}

static hdeg_t deg_inv(hdeg_t a)
{
  return deg_ok(a) && !deg_zero(a) ? (hdeg_t){1 / a.r, a.n, -a.s} : no_deg;
}

static hdeg_t deg_add(hdeg_t a, hdeg_t b, double sb)
{
  if (!deg_ok(a) || !deg_ok(b))
    return no_deg;
  if (deg_zero(b))
    return a;
  if (deg_zero(a))
    return (hdeg_t){sb * b.r, b.n, b.s};
  if (a.s != b.s || (a.s && a.n != b.n))
    return no_deg;
  double r = a.r + sb * b.r;
  return r == 0 ? deg_num(0) : (hdeg_t){r, a.n, a.s};
}

static int deg_eq(hdeg_t a, hdeg_t b)
{
  hdeg_t z = deg_add(a, b, -1);
  return deg_ok(z) && deg_zero(z);
}

/* the exponent q, independent of the variable, as a degree factor:
 * constants, one other node (a parameter), and their products and
 * quotients (1 / 3, -1 / p, 2 / p) */
static hdeg_t deg_exponent(const dnc_node *q, int depth)
{
  if (q->op == OP_CONST)
    return isfinite(q->value) ? deg_num(q->value) : no_deg;
  if (depth > 16)
    return no_deg;
  if (q->op == OP_NEG)
    return deg_mul(deg_num(-1), deg_exponent(q->arg[0], depth + 1));
  if (q->op == OP_MUL)
    return deg_mul(deg_exponent(q->arg[0], depth + 1), deg_exponent(q->arg[1], depth + 1));
  if (q->op == OP_DIV)
    return deg_mul(deg_exponent(q->arg[0], depth + 1),
                   deg_inv(deg_exponent(q->arg[1], depth + 1)));
  return (hdeg_t){1, q, 1};
}

/* h's degree of positive homogeneity in w, the variable's leaf (abs, any
 * constant or parameter power, sqrt and rsqrt allowed), else no_deg */
static hdeg_t pdeg(dctx *d, const dnc_node *h, const dnc_node *w, int depth)
{
  if (h == w)
    return deg_num(1);
  if (!d->dv[h->id])
    return deg_num(0);
  if (!h->nargs || depth > 16 || --d->budget < 0)
    return no_deg;
  hdeg_t a = pdeg(d, h->arg[0], w, depth + 1);
  switch (h->op) {
  case OP_NEG:
  case OP_ABS:
    return a;
  case OP_SQRT:
    return deg_mul(a, deg_num(0.5));
  case OP_RSQRT:
    return deg_mul(a, deg_num(-0.5));
  case OP_POW:
    return d->dv[h->arg[1]->id] ? no_deg : deg_mul(a, deg_exponent(h->arg[1], 0));
  case OP_MUL:
    return deg_add(a, pdeg(d, h->arg[1], w, depth + 1), 1);
  case OP_DIV:
    return deg_add(a, pdeg(d, h->arg[1], w, depth + 1), -1);
  case OP_ADD:
  case OP_SUB: {
    hdeg_t b = pdeg(d, h->arg[1], w, depth + 1);
    return deg_eq(a, b) ? a : no_deg;
  }
  default:
    return no_deg;
  }
}

/* the variable's own node (the input or the parameter) where h reaches
 * it, else NULL */
static const dnc_node *var_leaf(dctx *d, const dnc_node *h, int depth)
{
  if (!d->dv[h->id] || depth > 16)
    return NULL;
  if (h->op == OP_INPUT || h->op == OP_PARAM)
    return h;
  for (int k = 0; k < h->nargs; k++) {
    const dnc_node *w = var_leaf(d, h->arg[k], depth + 1);
    if (w)
      return w;
  }
  return NULL;
}

/* a' t - a t'/2 = 0: t of degree 2 and a of degree 1 in a or in the
 * variable itself (x / sqrt(1 + beta x x), x / sqrt(1 + x^2 / s),
 * 2 x / sqrt(1 + (3 x)^2), alpha x / sqrt(1 + alpha^2 x^2) for
 * d/dalpha) */
static int euler2(dctx *d, const dnc_node *t, const dnc_node *a)
{
  if (hdeg(d, t, a, 0) == 2)
    return 1;
  const dnc_node *w = var_leaf(d, a, 0);
  return w && hdeg(d, a, w, 0) == 1 && hdeg(d, t, w, 0) == 2;
}

/* The derivative of a / sqrt(v) = a * rsqrt(v), v = c + a^2 (DyISRU,
 * ISRU), as (a' c - a c'/2) / (v sqrt(v)): the quotient rule's form
 * (a' - (a/t)^2 a' - ...)/t, and the product rule's rsqrt(v) - a^2
 * rsqrt(v)/v, cancel where a^2 >> c, losing every digit (and the
 * product's 2a overflows to inf * 0 = NaN before v does). NULL when v is
 * not of that shape; the constant 0 when the derivative is 0. */
static dnc_node *isru_rule(dctx *d, dnc_node *a, dnc_node *da, dnc_node *v,
                           dnc_node *t)
{
  if (v->op != OP_ADD)
    return NULL;
  /* h, the part of a that the square's base is related to: a itself, or
   * for a centred unit ((x - m) / sqrt(v + x^2)) h in a = h + kk or h -
   * kk, kk not varying, whose numerator is then a' c - a c'/2 - kk t'/2,
   * as a' t - h t'/2 = 0; there the quotient rule's 1 - ((x - m) / r) (x
   * / r) lost every digit where x^2 >> v (0 from x = 1e7 in f32, 1e18 in
   * f64, and the wrong sign further out, where the derivative is -m x /
   * |x|^3) */
  int split = da && (a->op == OP_ADD || a->op == OP_SUB);
  for (int j = -1; j < (split ? 2 : 0); j++) {
    dnc_node *h = j < 0 ? a : a->arg[j], *kk = j < 0 ? NULL : a->arg[1 - j];
    if (kk && (d->dv[kk->id] || !d->dv[h->id]))
      continue;
    for (int k = 0; k < 2; k++) {
      dnc_node *sq = v->arg[k], *c = v->arg[1 - k];
      const dnc_node *b = scaled_square_of(d, sq); /* b^2, b * b or s b^2 */
      if ((kk && !d->dv[sq->id]) ||
          !((b && related(d, b, h)) || (d->dv[sq->id] && euler2(d, sq, h))))
        continue;
      dnc_node *num = cross(d, a, da, c, 0.5);
      if (kk) {
        dnc_node *kt = mul(d, kk, mul(d, K(0.5), d->dv[sq->id]));
        num = a->op == OP_SUB && j == 0 ? add(d, num, kt) : sub(d, num, kt);
      }
      if (!t)
        t = S(OP_SQRT, v, NULL);
      return num ? S(OP_DIV, num, S(OP_MUL, v, t)) : K(0.0);
    }
  }
  /* a' = 0 (a parameter in the square: d/dbeta of x / sqrt(1 + beta
   * x^2), d/dalpha of x / sqrt(1 + (alpha x)^2)): -(a v'/2) / (v
   * sqrt(v)), where the quotient rule's q (v'/(2 sqrt(v))) / sqrt(v) was
   * 0 * inf / inf = NaN once v' overflowed; in this form rewrite.c
   * scales the numerator (of degree 3 in x) with the sum */
  dnc_node *dv = d->dv[v->id];
  if (!da && dv)
    for (int k = 0; k < 2; k++) {
      if (hdeg(d, v->arg[k], NULL, 0) == 2) {
        if (!t)
          t = S(OP_SQRT, v, NULL);
        dnc_node *num = S(OP_NEG, S(OP_MUL, K(0.5), S(OP_MUL, a, dv)), NULL);
        return S(OP_DIV, num, S(OP_MUL, v, t));
      }
    }
  return NULL;
}

/* v^p for a constant p: v, else NULL */
static dnc_node *pow_base(dnc_node *t, double p)
{
  return t->op == OP_POW && t->arg[1]->op == OP_CONST && t->arg[1]->value == p
             ? t->arg[0] : NULL;
}

/* a / sqrt(c + a^2), or a / (c + a^2)^0.5 */
static dnc_node *div_isru(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  dnc_node *t = a[1], *v = pow_base(t, 0.5);
  if (t->op == OP_SQRT)
    return isru_rule(d, a[0], da[0], t->arg[0], t);
  return v ? isru_rule(d, a[0], da[0], v, NULL) : NULL;
}

/* a * rsqrt(c + a^2), or a * (c + a^2)^-0.5, either order: as div_isru */
static dnc_node *mul_isru(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  for (int k = 0; k < 2; k++) {
    dnc_node *t = a[1 - k], *v = t->op == OP_RSQRT ? t->arg[0] : pow_base(t, -0.5);
    dnc_node *r = v ? isru_rule(d, a[k], da[k], v, NULL) : NULL;
    if (r)
      return r;
  }
  return NULL;
}

static dnc_node *zero_where(dctx *d, dnc_node *f, dnc_node *t);
static int plain(const dnc_node *v);
static dnc_node *factor_out(dctx *d, dnc_node *e, const dnc_node *f, int depth);

/* sigmoid(p) sigmoid(-p) (tanh' = 4 s(2u) s(-2u), sigmoid' = s(u)
 * s(-u)): the product rule's s s (s(-p) - s(p)) p' cancels where p -> 0
 * (tanh'' at x = 1e-30 was 0 in f64, not -2e-30), and s(-p) - s(p) =
 * -tanh(p/2): -(s s) tanh(p/2) p', every factor accurate. The opposite
 * arguments as rewrite.c's sigmoid pairs: -b and b, c t and -c t, or
 * a x and (-a) x.
 * NULL when e is not of that shape. */
static dnc_node *sigmoid_pair_rule(dctx *d, dnc_node *e, dnc_node *const *a)
{
  if (a[0]->op != OP_SIGMOID || a[1]->op != OP_SIGMOID)
    return NULL;
  dnc_node *p = a[0]->arg[0];
  const dnc_node *tl, *tr;
  double sl = dnc_split_scale(p, &tl), sr = dnc_split_scale(a[1]->arg[0], &tr);
  if (dnc_negated_factor(p, a[1]->arg[0])) /* a x and (-a) x */
    tl = tr = p, sl = 1, sr = -1;
  if (tl != tr || sl != -sr || sl == 0 || !isfinite(sl) || !d->dv[p->id])
    return NULL;
  if (sl < 0) { /* the same with -p for p: tanh(u), not tanh(-u) */
    p = a[1]->arg[0];
    sl = sr;
  }
  dnc_node *half = S(OP_MUL, K(sl / 2), (dnc_node *)tl);
  dnc_node *fp = S(OP_NEG, S(OP_MUL, e, S(OP_TANH, half, NULL)), NULL);
  /* always guarded (s s underflows where p' = 2x overflows: 0 * inf),
   * unlike chain0's plain p': a second derivative, no DyT kernel's */
  return zero_where(d, e, S(OP_MUL, fp, d->dv[p->id]));
}

static dnc_node *div_exact(dctx *d, dnc_node *e, dnc_node *const *a,
                           dnc_node *const *da);
static dnc_node *mul_resid(dctx *d, dnc_node *const *a, dnc_node *const *da);
static dnc_node *div_resid(dctx *d, dnc_node *const *a, dnc_node *const *da);
static dnc_node *mul_scaled(dctx *d, dnc_node *const *a, dnc_node *const *da);
static dnc_node *df_tanh(dctx *d, dnc_node *e, dnc_node *const *a,
                         dnc_node *const *da);
static const rule_fn rules[OP__COUNT];

/* p n as a node whose derivative is made, for mul_quotient: the
 * function's own node, or a new one (a x in a (x / sqrt(1 + a^2 x^2))),
 * its derivative p' n + p n' recorded. Only a product of p and n
 * themselves, whose operands' derivatives are made: a node the
 * simplifier made of something else would have operands the rules would
 * take for constants. NULL where it is not. */
static dnc_node *made(dctx *d, dnc_node *p, dnc_node *n)
{
  dnc_node *pn = S(OP_MUL, p, n);
  if (pn->id < d->nids && d->done[pn->id])
    return d->dv[pn->id] ? pn : NULL;
  if (pn->op != OP_MUL || !((pn->arg[0] == p && pn->arg[1] == n) ||
                            (pn->arg[0] == n && pn->arg[1] == p)))
    return NULL;
  dnc_node *dpn = add(d, mul(d, d->dv[p->id], n), mul(d, p, d->dv[n->id]));
  if (!dpn)
    return NULL;
  if (pn->id >= d->nids) {
    /* by half again at least: grown to each new node's id alone, the
     * copies left in the arena were quadratic in a derivative's size (2.5
     * GB for `dnc diff --order 16` of a one-line function) */
    uint32_t m = pn->id + 1, half = d->nids + d->nids / 2;
    if (m < half)
      m = half;
    dnc_node **dv = dnc_arena_alloc(d->scratch, sizeof *dv * m);
    unsigned char *done = dnc_arena_alloc(d->scratch, m);
    memcpy(dv, d->dv, sizeof *dv * d->nids);
    memcpy(done, d->done, d->nids);
    d->dv = dv, d->done = done, d->nids = m;
  }
  d->dv[pn->id] = dpn;
  d->done[pn->id] = 1;
  return pn;
}

/* p times a quotient (n / b, or n rsqrt(v)), both depending on the
 * variable: d/da of a (x / sqrt(1 + (a x)^2)), of the inlined call a
 * g(x; c = a) with g(u; c) = u / hypot(1, c u), of a (x / (1 + |a x|)).
 * The product rule's p' q + p q' cancels there as the quotient rule
 * does (x / s - a x (a x^2) / s^3, all digits gone from |a x| ~ 1e4 in
 * f32, the wrong sign at 1e5), while the same function written (a x) /
 * sqrt(1 + (a x)^2) takes the exact rules above: its derivative, taken
 * as that of (p n) / b (made(): p n with its derivative); NULL where no
 * exact rule (div_exact) takes (p n) / b. */
static dnc_node *mul_quotient(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  if (!da[0] || !da[1])
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *p = a[k], *q = a[1 - k];
    for (int j = 0; j < 2 && q->op == OP_MUL; j++) {
      dnc_node *t = q->arg[1 - j];
      if (t->op != OP_RSQRT && !pow_base(t, -0.5))
        continue;
      dnc_node *pn = made(d, p, q->arg[j]);
      if (!pn)
        continue;
      dnc_node *b[2] = {pn, t}, *db[2] = {d->dv[pn->id], d->dv[t->id]};
      dnc_node *r = mul_isru(d, b, db);
      if (r)
        return r;
    }
    if (q->op != OP_DIV)
      continue;
    dnc_node *pn = made(d, p, q->arg[0]);
    if (!pn)
      continue;
    dnc_node *b[2] = {pn, q->arg[1]};
    dnc_node *db[2] = {d->dv[pn->id], d->dv[q->arg[1]->id]};
    dnc_node *r = div_exact(d, S(OP_DIV, pn, q->arg[1]), b, db);
    if (r)
      return r;
  }
  return NULL;
}

/* Does n not depend on the variable, as a factor of a scale k? Not
 * sign(y) with y depending on it: its derivative is NULL too, but it is 0
 * where y is (|sign(x) x| is |x|, not |sign(x)| |x|, 0 at 0 as x -> 0). */
static int scale_factor(dctx *d, const dnc_node *n)
{
  return !d->dv[n->id] && !(n->op == OP_SIGN && d->dv[n->arg[0]->id]);
}

/* Is |w| = |u| as written, w the same sum, product or difference as u
 * with its operands swapped (abs(s + x) beside sign(x + s), abs(s - x)
 * beside sign(x - s))? */
static int same_abs(const dnc_node *w, const dnc_node *u)
{
  if (w == u)
    return 1;
  if (w->op != u->op || w->nargs != 2 ||
      (w->op != OP_ADD && w->op != OP_MUL && w->op != OP_SUB))
    return 0;
  return w->arg[0] == u->arg[1] && w->arg[1] == u->arg[0];
}

/* op(k) (|k| for OP_ABS, sign(k) for OP_SIGN) where w is k u, k made of
 * products, quotients and negations of nodes whose derivative is NULL
 * (constants, parameters: abs(a x), abs(x / b), abs(-x)); NULL where w
 * is not of that shape. 1 for u. */
static dnc_node *scale_of(dctx *d, dnc_node *w, const dnc_node *u, int op,
                          int depth)
{
  if (w == u || (op == OP_ABS && same_abs(w, u)))
    return K(1.0);
  if (depth > 8 || !d->dv[w->id])
    return NULL;
  dnc_node *y;
  switch (w->op) {
  case OP_NEG:
    y = scale_of(d, w->arg[0], u, op, depth + 1);
    return y && op == OP_SIGN ? S(OP_NEG, y, NULL) : y;
  case OP_MUL:
    for (int k = 0; k < 2; k++)
      if (scale_factor(d, w->arg[1 - k]) &&
          (y = scale_of(d, w->arg[k], u, op, depth + 1)))
        return S(OP_MUL, y, S(op, w->arg[1 - k], NULL));
    return NULL;
  case OP_DIV:
    if (!scale_factor(d, w->arg[1]) ||
        !(y = scale_of(d, w->arg[0], u, op, depth + 1)))
      return NULL;
    return S(OP_DIV, y, S(op, w->arg[1], NULL));
  default:
    return NULL;
  }
}

static dnc_node *abs_scale(dctx *d, dnc_node *w, const dnc_node *u, int depth)
{
  return scale_of(d, w, u, OP_ABS, depth);
}

/* r with w = k r as scale_of takes k, r itself not such a product: the
 * variable's part of w (x in a x, 2 a x, -x / b; a in a x by a) */
static dnc_node *scale_core(dctx *d, dnc_node *w, int depth)
{
  if (depth > 8)
    return w;
  switch (w->op) {
  case OP_NEG:
    return scale_core(d, w->arg[0], depth + 1);
  case OP_MUL:
    for (int k = 0; k < 2; k++)
      if (scale_factor(d, w->arg[1 - k]) && d->dv[w->arg[k]->id])
        return scale_core(d, w->arg[k], depth + 1);
    return w;
  case OP_DIV:
    if (scale_factor(d, w->arg[1]) && d->dv[w->arg[0]->id])
      return scale_core(d, w->arg[0], depth + 1);
    return w;
  default:
    return w;
  }
}

/* Does n depend on the variable only through abs(u), or abs(w) with w
 * a scale of u (abs_scale) or of u's core r (w = k r, u = k0 r:
 * abs(2 a x) beside sign(a x))? seen[id]: 1 yes (n is above such a
 * node), 3 n is such a node, 2 no; 0 not yet known. A node whose
 * derivative is NULL (independent of the variable, or sign(u), a
 * condition) is not marked: it is left as it is. *ab is set to one such
 * abs node. */
static int via_abs(dctx *d, dnc_node *n, const dnc_node *u,
                   dnc_node *r, const dnc_node **ab, unsigned char *seen,
                   int depth, int *budget)
{
  if (!d->dv[n->id])
    return 1;
  if (seen[n->id])
    return seen[n->id] != 2;
  if (n->op == OP_ABS && (abs_scale(d, n->arg[0], u, 0) ||
                          same_abs(scale_core(d, n->arg[0], 0), r))) {
    *ab = n;
    seen[n->id] = 3;
    return 1;
  }
  if (!n->nargs || depth > 64 || --*budget < 0)
    return (seen[n->id] = 2) == 1;
  for (int k = 0; k < n->nargs; k++)
    if (!via_abs(d, n->arg[k], u, r, ab, seen, depth + 1, budget))
      return (seen[n->id] = 2) == 1;
  return seen[n->id] = 1;
}

/* an odd power sign(u)^n of sign(u), n = 1, 3, 5, ...: sign(u)^n is
 * sign(u) for every u */
static int odd_sign_power(const dnc_node *p)
{
  if (p->op != OP_POW || p->arg[0]->op != OP_SIGN ||
      p->arg[1]->op != OP_CONST)
    return 0;
  double n = p->arg[1]->value;
  return n > 0 && n < 0x1p52 && n == rint(n) && fmod(n, 2.0) == 1.0;
}

/* a factor sign(u) of p, u depending on the variable, or an odd power of
 * one (sign(x)^3), found through p's products, negations and numerators,
 * or NULL; *fac is the factor (the sign, or its power) */
static const dnc_node *sign_factor(dctx *d, const dnc_node *p,
                                   const dnc_node **fac, int depth)
{
  if (odd_sign_power(p)) {
    *fac = p;
    p = p->arg[0];
    return d->dv[p->arg[0]->id] ? p : NULL;
  }
  if (p->op == OP_SIGN) {
    *fac = p;
    return d->dv[p->arg[0]->id] ? p : NULL;
  }
  if (depth > 8)
    return NULL;
  switch (p->op) {
  case OP_NEG:
  case OP_DIV:
    return sign_factor(d, p->arg[0], fac, depth + 1);
  case OP_MUL: {
    const dnc_node *s = sign_factor(d, p->arg[0], fac, depth + 1);
    return s ? s : sign_factor(d, p->arg[1], fac, depth + 1);
  }
  default:
    return NULL;
  }
}

/* y with e = f y (factor_out's), and *dy its derivative, from those of
 * e's nodes in d (made, as within mul_odd's pass: each is below e) */
static dnc_node *strip_sign(dctx *d, dnc_node *e, const dnc_node *f,
                            dnc_node **dy, int depth)
{
  if (e == f) {
    *dy = NULL;
    return K(1.0);
  }
  if (depth > 8)
    return NULL;
  dnc_node *y, *dz = NULL;
  switch (e->op) {
  case OP_NEG:
    if (!(y = strip_sign(d, e->arg[0], f, &dz, depth + 1)))
      return NULL;
    *dy = dz ? S(OP_NEG, dz, NULL) : NULL;
    return S(OP_NEG, y, NULL);
  case OP_MUL:
    for (int k = 0; k < 2; k++)
      if (e->arg[k] == f) {
        *dy = d->dv[e->arg[1 - k]->id];
        return e->arg[1 - k];
      }
    for (int k = 0; k < 2; k++)
      if ((y = strip_sign(d, e->arg[k], f, &dz, depth + 1))) {
        dnc_node *b = e->arg[1 - k];
        *dy = add(d, mul(d, dz, b), mul(d, y, d->dv[b->id]));
        return S(OP_MUL, y, b);
      }
    return NULL;
  case OP_DIV:
    if (!(y = strip_sign(d, e->arg[0], f, &dz, depth + 1)))
      return NULL;
    {
      dnc_node *b = e->arg[1], *q = S(OP_DIV, y, b);
      *dy = divide(d, sub(d, dz, mul(d, q, d->dv[b->id])), b);
      return q;
    }
  default:
    return NULL;
  }
}

/* sign(u) v, or c sign(u) v with c not depending on the variable, where v
 * depends on the variable only through abs(u): the odd extension sign(x)
 * g(|x|) of a function g of |x| (sign(x) log1p(abs(x)), sign(x) (1 -
 * exp(-abs(x))), sign(x) abs(x)^p). The product rule gives sign(u) v' =
 * sign(u)^2 g'(|u|) u', 0 at u = 0 by abs'(0) = sign(0) = 0 (NaN for
 * abs(x)^p, p < 1: 0 times inf), while the function, continuous there
 * where g(0) = 0, has the slope g'(0) u' on both sides: the symlog
 * sign(x) log1p(|x|) had d/dx 0 at x = 0, not 1, so every element that
 * was exactly 0 got no gradient. Its derivative is written g'(|u|) u':
 * v's derivative taken with abs(u)' = u' (v' is that times sign(u)),
 * equal to sign(u) v' wherever u is not 0; at u = 0 it is used where v
 * is 0 there (f continuous), and 0 where not (a jump, sign' = 0 there as
 * before). NULL where e is not of that shape.
 *
 * g'(0) is g's slope from the right, t = |u| -> 0+, so within v:
 * - abs(w) with w = k r, u = k0 r (sign(a x) log1p(abs(2 a x))) has
 *   |w| = |k| |r|, taken as |k| sign(k0) r' (|k / k0| u', without the
 *   division, 0 where k0 is: u is 0 for every value of the variable);
 * - another abs(y) (abs(k abs(x)), the inner abs of an odd extension
 *   within g) has the slope sign(y) y', but |y'| (the slope of |y| from
 *   the right) where u = 0 and y = 0, y' by t; sign(x) abs(k abs(x)),
 *   which is |k| x, had d/dx 0 at 0;
 * - in such an abs(y), y = s m with s a sign(u2), u2 of u's core, is
 *   |m| for u not 0 (sign(x) log1p(abs(sign(x) log1p(abs(x))))), taken
 *   as abs(m); where m is not 0 at u = 0, |y| jumps there, the
 *   derivative 0 as for any jump. */
static dnc_node *mul_odd(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  for (int k = 0; k < 2 && d->odd; k++) {
    dnc_node *p = a[k], *v = a[1 - k];
    if (da[k] || !da[1 - k])
      continue;
    /* p = c sign(u), c made of p's other factors, in any order (sign(x)
     * a, a b sign(x), -a sign(x), sign(x) / a, exp(a) sign(x)); an odd
     * power of sign(u) is sign(u) */
    const dnc_node *fac = NULL;
    const dnc_node *s = sign_factor(d, p, &fac, 0);
    if (!s)
      continue;
    dnc_node *c = factor_out(d, p, fac, 0);
    /* more factors sign(u) in c (sign(x) sign(x) sign(x) a): one
     * sign(u) if their number is odd; sign(u)^2 (0 at 0) is none */
    int odd = 1;
    for (int j = 0; c && j < 16; j++) {
      const dnc_node *f2 = NULL, *s2 = sign_factor(d, c, &f2, 0);
      if (s2 != s)
        break;
      c = factor_out(d, c, f2, 0);
      odd ^= 1;
    }
    if (!c || !odd)
      continue;
    dnc_node *u = s->arg[0], *r = scale_core(d, u, 0);
    /* a pass over v, each: 15000 of them in one sum, the most the limits
     * on nodes allow, take 0.2 s */
    dnc_arena *scratch = dnc_arena_new();
    uint32_t n, m = v->id + 1;
    unsigned char *seen = dnc_arena_alloc(scratch, m);
    memset(seen, 0, m);
    const dnc_node *ab = NULL;
    int budget = 4096;
    dnc_node *w = NULL, *jump = S(OP_NE, v, K(0.0));
    dnc_node *at0 = S(OP_EQ, u, K(0.0));
    if (via_abs(d, v, u, r, &ab, seen, 0, &budget) && ab) {
      dnc_node **sch = dnc_schedule(d->g, scratch, v, &n);
      /* no mul_odd within: there the derivatives are by |u|, not by the
       * variable, and an inner sign(u) g(|u|)'s is sign(u) g'(|u|) (the
       * product rule's), where mul_odd would drop the sign(u) */
      dctx sub = {d->g, d->wrt, NULL, NULL, m, scratch, 0, 0};
      sub.dv = dnc_arena_alloc(scratch, sizeof *sub.dv * m);
      sub.done = dnc_arena_alloc(scratch, m);
      memset(sub.done, 0, m);
      for (uint32_t i = 0; i < n && !d->g->over; i++) {
        dnc_node *t = sch[i];
        dnc_node *dt;
        if (seen[t->id] == 3) { /* abs(k u)' taken as |k| u' */
          dnc_node *ks = abs_scale(d, t->arg[0], u, 0);
          if (ks)
            dt = mul(d, ks, d->dv[u->id]);
          else /* abs(k r)' as |k| sign(k0) r' */
            dt = mul(d, mul(d, abs_scale(d, t->arg[0], r, 0),
                            scale_of(d, u, r, OP_SIGN, 0)),
                     d->dv[r->id]);
        } else if (seen[t->id] != 1)
          dt = d->dv[t->id]; /* below abs(u), or not depending on it */
        else if (t->op == OP_ABS) {
          dnc_node *y = t->arg[0], *my = y;
          const dnc_node *f2 = NULL, *s2 = sign_factor(d, y, &f2, 0);
          dnc_node *dy = sub.dv[y->id];
          if (s2 && same_abs(scale_core(d, s2->arg[0], 0), r)) {
            dnc_node *dm = NULL, *m2 = strip_sign(&sub, y, f2, &dm, 0);
            /* u2 = k2 r2: sign(u2) is 0 for every value of the variable
             * where k2 is (sign(b x) at b = 0), y then 0, not +-m:
             * |sign(k2)| m, whose derivative is 0 there */
            dnc_node *u2 = s2->arg[0];
            dnc_node *k2 = scale_of(d, u2, scale_core(d, u2, 0), OP_SIGN, 0);
            if (m2 && k2) {
              dnc_node *on = S(OP_ABS, k2, NULL);
              my = S(OP_MUL, on, m2), dy = mul(d, on, dm);
              jump = S(OP_OR, jump, S(OP_NE, my, K(0.0)));
            }
          }
          dt = !dy ? NULL
                   : dnc_simp(d->g, OP_SELECT,
                              S(OP_AND, at0, S(OP_EQ, my, K(0.0))),
                              mul(d, S(OP_ABS, dy, NULL),
                                  S(OP_SIGN, d->dv[u->id], NULL)),
                              mul(d, S(OP_SIGN, my, NULL), dy));
        } else {
          dnc_node *dta[3] = {NULL, NULL, NULL};
          for (int j = 0; j < t->nargs; j++)
            dta[j] = sub.dv[t->arg[j]->id];
          dt = rules[t->op](&sub, t, t->arg, dta);
        }
        sub.dv[t->id] = dt;
        sub.done[t->id] = 1;
      }
      w = d->g->over ? NULL : sub.dv[v->id];
    }
    dnc_arena_free(scratch);
    if (!w)
      continue;
    /* at u = 0 with v not 0 (sign(x) (1 + abs(x)), a jump) the
     * convention sign' = 0 stays: 0 there */
    jump = S(OP_AND, at0, jump);
    return mul(d, c, dnc_simp(d->g, OP_SELECT, jump, K(0.0), w));
  }
  return NULL;
}

RULE(df_mul)
{
  dnc_node *r = mul_odd(d, a, da);
  if (r)
    return r;
  r = mul_isru(d, a, da);
  if (!r)
    r = mul_quotient(d, a, da);
  if (!r)
    r = mul_resid(d, a, da);
  if (!r)
    r = mul_scaled(d, a, da);
  if (r)
    return r->op == OP_CONST && r->value == 0 ? NULL : r;
  if ((r = sigmoid_pair_rule(d, e, a)))
    return r;
  return add(d, mul(d, da[0], a[1]), mul(d, a[0], da[1]));
}
/* Is h, as a function of the variable, k(a) with k positively
 * homogeneous of degree 1 and its coefficients independent of the
 * variable (h = a, -a, c a, a / c, |h'|, ...)? Then a' h - a h' is 0
 * exactly: |m| = sign(m) m and (c m)' = c m'. */
static int homogeneous(dctx *d, const dnc_node *h, const dnc_node *a)
{
  for (int depth = 0; depth < 16; depth++) {
    if (h == a)
      return 1;
    switch (h->op) {
    case OP_ABS:
    case OP_NEG:
      h = h->arg[0];
      continue;
    case OP_MUL:
      if (!d->dv[h->arg[0]->id])
        h = h->arg[1];
      else if (!d->dv[h->arg[1]->id])
        h = h->arg[0];
      else
        return 0;
      continue;
    case OP_DIV:
      if (d->dv[h->arg[1]->id])
        return 0;
      h = h->arg[0];
      continue;
    default:
      return 0;
    }
  }
  return 0;
}

/* a and h positively homogeneous of one degree in the variable (pdeg):
 * then a' h - a h' = 0 by Euler's theorem (a' = k a / w, h' = k h / w):
 * a x / (b + a x^2) and x^2 / (b + x^2) for d/da and d/dx,
 * a x / (b + abs(x)) for d/dx, whose quotient rule cancelled (the wrong
 * sign at x = -1e10 in f64 for the first, at 1e10 in bf16 for the last) */
static int same_degree(dctx *d, const dnc_node *h, const dnc_node *a)
{
  const dnc_node *w = var_leaf(d, a, 0);
  d->budget = RESID_BUDGET;
  hdeg_t k = w ? pdeg(d, a, w, 0) : no_deg;
  return deg_ok(k) && deg_eq(k, pdeg(d, h, w, 0));
}

/* a / (c + h) or a / (c - h), h homogeneous in a (softsign x / (1 +
 * |x|), a x / (1 + |a x|)) or of a's degree in the variable
 * (same_degree): the derivative is (a' c - a c') / b^2, as
 * a' h - a h' = 0, computed (a' c - a c') / b / b. The quotient rule's
 * a' - (a/b) b' = 1 - |x| / (1 + |x|) for softsign lost every digit (0
 * from |x| = 1e8 in f32, 1e16 in f64, 1/x^2 a normal number); and NaN
 * (inf/inf) at x = inf, where the limit is 0. NULL when b is not of that
 * shape. */
static dnc_node *div_homogeneous(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  const dnc_node *b = a[1];
  if (!da[0] || (b->op != OP_ADD && b->op != OP_SUB))
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *h = b->arg[k], *c = b->arg[1 - k];
    if (!d->dv[h->id] ||
        !(homogeneous(d, h, a[0]) || same_degree(d, h, a[0])))
      continue;
    /* c depending on the variable: a' c - a c' may cancel as well
     * (x |x| / (x^2 + 2.5 + b x^2), 2.6e-6 off at -3e7 in long
     * double), where the residual drops every term of a's degree */
    dnc_node *r = d->dv[c->id] ? div_resid(d, a, da) : NULL;
    if (r)
      return r;
    dnc_node *num = cross(d, a[0], da[0], c, 1);
    if (!num)
      return K(0.0);
    if (b->op == OP_SUB && k == 0) /* h - c */
      num = S(OP_NEG, num, NULL);
    return S(OP_DIV, S(OP_DIV, num, a[1]), a[1]);
  }
  return NULL;
}

/* a / hypot(c, a) (either order), the inverse square root unit written
 * with hypot: the derivative is c (a' c - a c') / h^3, computed
 * (c / h) ((a' / h) c - (a / h) c') / h, which neither overflows (|c/h|
 * and |a/h| <= 1) nor cancels; the quotient rule's 1 - (a/h)^2 lost every digit where
 * |a| >> |c| (0 from |x| = 1e4 in f32, 1e8 in f64). NULL when b is not
 * of that shape. */
static dnc_node *div_hypot(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  dnc_node *h = a[1];
  if (!da[0] || h->op != OP_HYPOT)
    return NULL;
  for (int k = 0; k < 2; k++) {
    if (!related(d, h->arg[k], a[0]))
      continue;
    dnc_node *c = h->arg[1 - k];
    /* (a' / h) c - (a / h) c': a' c overflowed where a' is the input
     * (d/da of a x / hypot(c, a x) at x = 3e38, c = 1.5 in f32 was inf,
     * not 7e-77) */
    dnc_node *num = sub(d, mul(d, S(OP_DIV, da[0], h), c),
                        mul(d, S(OP_DIV, a[0], h), d->dv[c->id]));
    if (!num)
      return K(0.0);
    return S(OP_DIV, S(OP_MUL, S(OP_DIV, c, h), num), h);
  }
  return NULL;
}

/* a / (c + t), t of degree 2 in a or in the variable (x / (1 + (a
 * x)^2), 2 x / (beta + x^2)): (a' c - a c' - a' t) / b^2 (Euler: a t' =
 * 2 a' t), computed ((a' c - a c') / b) / b - a' (t / b) / b. The quotient
 * rule's a' - q b' was 0 * inf = NaN where b' overflowed and q
 * underflowed (x / (1 + (a x)^2), a x = 1e24 in f32); here t / b is
 * rewrite.c's rational form, 1 there. Where a does not depend on the
 * variable (d/da of x / (1 + (a x)^2)): -q (b' / b), q = a / b, b' / b
 * a rational form too. NULL when b is not of that shape. */
static dnc_node *div_rational(dctx *d, dnc_node *e, dnc_node *const *a,
                              dnc_node *const *da)
{
  dnc_node *b = a[1];
  if (b->op != OP_ADD || !d->dv[b->id])
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *t = b->arg[k], *c = b->arg[1 - k];
    if (!d->dv[t->id] || hdeg(d, t, NULL, 0) != 2)
      continue;
    if (!da[0]) /* a parameter in t: -q (b' / b), both rational forms */
      return S(OP_NEG, S(OP_MUL, e, S(OP_DIV, d->dv[b->id], b)), NULL);
    if (!euler2(d, t, a[0]))
      continue;
    dnc_node *num = cross(d, a[0], da[0], c, 1);
    dnc_node *first = num ? S(OP_DIV, S(OP_DIV, num, b), b) : NULL;
    return sub(d, first, S(OP_DIV, S(OP_MUL, da[0], S(OP_DIV, t, b)), b));
  }
  return NULL;
}

/* a / (v sqrt(v)), the isru rule's derivatives: (a' - 1.5 a (v'/v)) /
 * (v sqrt(v)), not the quotient rule's (a' - q b') / b with b' = v'
 * sqrt(v) + v (v' / (2 sqrt(v))): q is 0 and b' inf where v overflows,
 * 0 * inf = NaN (DyISRU's second derivative at x = 1e20 in f32), where
 * v'/v is rewrite.c's rational form and the quotient its isru_deriv.
 * NULL when b is not of that shape; the constant 0 for a zero. */
static dnc_node *div_v32(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  dnc_node *b = a[1];
  if (b->op != OP_MUL)
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *v = b->arg[k], *t = b->arg[1 - k];
    if (t->op != OP_SQRT || t->arg[0] != v)
      continue;
    dnc_node *q = divide(d, d->dv[v->id], v);
    dnc_node *num = sub(d, da[0], mul(d, K(1.5), mul(d, a[0], q)));
    return num ? S(OP_DIV, num, b) : K(0.0);
  }
  return NULL;
}

/* Euler's residual of b at degree m: *r = b - (w/m) b', built so that it
 * holds exactly (NULL: 0), where b is made of sums, products, quotients
 * and powers of terms positively homogeneous in the variable w and of
 * terms independent of it. *cut is set where a term of degree m dropped
 * out (the cancellation that the quotient and product rules leave to
 * the arithmetic). 0 where b is not of that shape. */
static int resid(dctx *d, dnc_node *b, const dnc_node *w, hdeg_t m,
                 dnc_node **r, int *cut, int depth)
{
  if (!d->dv[b->id]) {
    *r = b;
    return 1;
  }
  if (depth > 16 || !deg_ok(m) || deg_zero(m) || --d->budget < 0)
    return 0;
  hdeg_t db = pdeg(d, b, w, depth);
  if (deg_ok(db)) {
    /* b - (w/m) b' = (1 - D/m) b; D/m may name a parameter (x^2 in (1
     * + x^2)^-p at degree 1/p: 1 - 2 p, 0 for DyISRU's p = 1/2) */
    hdeg_t q = deg_mul(db, deg_inv(m));
    if (!deg_ok(q))
      return 0;
    if (q.s) {
      dnc_node *dq = S(q.s > 0 ? OP_MUL : OP_DIV, K(q.r), (dnc_node *)q.n);
      *cut = 1;
      *r = S(OP_MUL, S(OP_SUB, K(1.0), dq), b);
      return 1;
    }
    double f = 1 - q.r;
    *cut |= fabs(f) <= 0x1p-40; /* 1/3 rounded: a residue left */
    *r = f == 0 ? NULL : f == 1 ? b : S(OP_MUL, K(f), b);
    return 1;
  }
  dnc_node *r0, *r1, *u = b->arg[0];
  switch (b->op) {
  case OP_NEG:
    if (!resid(d, u, w, m, &r0, cut, depth + 1))
      return 0;
    *r = r0 ? S(OP_NEG, r0, NULL) : NULL;
    return 1;
  case OP_ABS: /* sign(u) (u - (w/m) u') */
    if (!resid(d, u, w, m, &r0, cut, depth + 1))
      return 0;
    *r = mul(d, S(OP_SIGN, u, NULL), r0);
    return 1;
  case OP_ADD:
  case OP_SUB:
    if (!resid(d, u, w, m, &r0, cut, depth + 1) ||
        !resid(d, b->arg[1], w, m, &r1, cut, depth + 1))
      return 0;
    *r = b->op == OP_ADD ? add(d, r0, r1) : sub(d, r0, r1);
    return 1;
  case OP_MUL:
  case OP_DIV: {
    dnc_node *v = b->arg[1];
    if (d->dv[u->id] && !d->dv[v->id]) /* v k, v / k */
      v = u, u = b->arg[1];
    else if (b->op == OP_DIV && !d->dv[u->id]) {
      /* c / v = c v^-1: (c / v) (R / v), R the residual of v at -m */
      if (!resid(d, v, w, deg_mul(m, deg_num(-1)), &r0, cut, depth + 1))
        return 0;
      *r = r0 ? S(OP_MUL, b, S(OP_DIV, r0, v)) : NULL;
      return 1;
    } else if (d->dv[u->id])
      return 0;
    /* k v or v k, v / k: u is the constant factor k */
    if (!resid(d, v, w, m, &r0, cut, depth + 1))
      return 0;
    *r = !r0 ? NULL : b->op == OP_MUL ? S(OP_MUL, u, r0) : S(OP_DIV, r0, u);
    return 1;
  }
  case OP_SQRT:
  case OP_RSQRT:
  case OP_POW: {
    /* u^q - (w/m) q u^(q-1) u' = u^(q-1) (u - (w/(m/q)) u') */
    hdeg_t q;
    if (b->op == OP_POW) {
      if (d->dv[b->arg[1]->id])
        return 0;
      q = deg_exponent(b->arg[1], 0);
    } else
      q = deg_num(b->op == OP_SQRT ? 0.5 : -0.5);
    if (!resid(d, u, w, deg_mul(m, deg_inv(q)), &r0, cut, depth + 1))
      return 0;
    if (!r0)
      *r = NULL;
    else if (!q.s && q.r >= 1) /* no 0/0 where u is 0 */
      *r = q.r == 1 ? r0 : S(OP_MUL, S(OP_POW, u, K(q.r - 1)), r0);
    else { /* u^(q-1) R as b (R / u); within a sum, 0 where u is, its
            * limit there when u vanishes with w and q > 0 (x / (1 +
            * sqrt(abs(x) + x^2)) at 0, whose derivative is 1, not NaN;
            * for q < 0, b is infinite there); b itself, the quotient's
            * denominator or the product's factor, makes the function 0/0
            * or 0 inf there */
      *r = S(OP_MUL, b, S(OP_DIV, r0, u));
      if (depth)
        *r = zero_where(d, u, *r);
    }
    return 1;
  }
  default:
    return 0;
  }
}

/* a / b, a positively homogeneous of a degree m != 0 in the variable
 * and b built as resid() takes, with a term of degree m in it: a' b - a
 * b' = a' (b - (w/m) b'), Euler's a = (w/m) a', and that residual is
 * built without the cancelling term, computed a' R / b / b. The
 * generalised softsign x / (1 + |x|^p)^(1/p): R = b / u, u = 1 + |x|^p
 * (the quotient rule's 1 - |x|^p / u lost every digit: 0 from x = 1e4
 * in f32); x / (c + sqrt(b + x^2)): R = c + sqrt(b + x^2) b / (b + x^2)
 * (5 % off at x = 1e6 in f32). NULL where the shape is not that. */
static dnc_node *div_resid(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  d->budget = RESID_BUDGET;
  const dnc_node *w = da[0] && d->dv[a[1]->id] ? var_leaf(d, a[0], 0) : NULL;
  hdeg_t m = w ? pdeg(d, a[0], w, 0) : no_deg;
  dnc_node *r;
  int cut = 0;
  if (!deg_ok(m) || deg_zero(m) || !resid(d, a[1], w, m, &r, &cut, 0) || !cut)
    return NULL;
  if (!r) /* a / b homogeneous of degree 0 (x / x, x / abs(x)): the
           * quotient rule, NaN where a / b is */
    return NULL;
  if (r->op == OP_MUL && (r->arg[0] == a[1] || r->arg[1] == a[1])) /* b X */
    return S(OP_DIV, mul(d, da[0], r->arg[r->arg[0] == a[1]]), a[1]);
  return S(OP_DIV, S(OP_DIV, mul(d, da[0], r), a[1]), a[1]);
}

/* a v, a as div_resid's and v made as resid() takes at degree -m, with
 * a term of degree -m in it (x (1 + |x|^p)^(-1/p), x rsqrt(c + x^2 +
 * |x|)): a' v + a v' = a' (v + (w/m) v'), the residual of v at -m. NULL
 * where the shape is not that. */
static dnc_node *mul_resid(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  for (int k = 0; k < 2; k++) {
    d->budget = RESID_BUDGET;
    int op = a[1 - k]->op; /* a power of a sum, the cases that cancel */
    if (op != OP_POW && op != OP_SQRT && op != OP_RSQRT && op != OP_DIV)
      continue;
    const dnc_node *w = da[k] && d->dv[a[1 - k]->id] ? var_leaf(d, a[k], 0) : NULL;
    hdeg_t m = w ? pdeg(d, a[k], w, 0) : no_deg;
    dnc_node *r;
    int cut = 0;
    if (!deg_ok(m) || deg_zero(m) ||
        !resid(d, a[1 - k], w, deg_mul(m, deg_num(-1)), &r, &cut, 0) || !cut)
      continue;
    if (r) /* not where a v is of degree 0: as div_resid */
      return S(OP_MUL, da[k], r);
  }
  return NULL;
}

/* g(u) - u g'(u), where a parameter scales both the input and the output
 * of g (cap tanh(x / cap) by cap, tanh(a x) / a, softplus(b x) / b by
 * the parameter). Where g(0) = 0 the difference cancels for small u
 * (tanh: about -2 c3 u^3, computed with an error of a few ulp of u: 0 or
 * the wrong sign below |u| = 2.5e-4 in f32; expm1 and log1p: -u^2 / 2
 * and u^2 / 2). Below |u| = lim the Taylor series of the difference, sum
 * (1 - n) g_n u^n over n >= 2 (odd n >= 3 for odd g), to 2^-56 of its
 * first term there; above, the difference (within about 24 ulp at the
 * switch in f32, 45 for sinh at 1/4, so sin and sinh switch at 1/2).
 * softplus has no series: its difference softplus(u) - u sigmoid(u) is
 * softplus(-|u|) + |u| sigmoid(-|u|), two positive terms, exact at every
 * u (the difference lost every digit for large |u|: 0 from u = 17 in
 * f32, where it is about u e^-u). NULL for another g, among them those
 * whose difference does not cancel (cos, sigmoid, erfc). */
static const struct {
  int op, odd, n; /* the series is u^2 P(u), or u^3 P(u^2) for odd g */
  double lim, c[29];
} scale_series[] = {
  {OP_TANH, 1, 12, 0.25, {0.6666666666666666, -0.5333333333333333, 0.3238095238095238, -0.17495590828924162, 0.08863235529902197, -0.043105536438869774, 0.020381681418718454, -0.009440439055129375, 0.004304324056383944, -0.0019383075913858901, 0.0008641231254329704, -0.00038205372166389513}},
  {OP_ERF, 1, 9, 0.25, {0.7522527780636751, -0.45135166683820505, 0.16119702387078752, -0.0417918210035375, 0.008548327023450852, -0.0014466399578147598, 0.00020895910501768752, -2.6339382985422794e-05, 2.9458520444222863e-06}},
  {OP_ATAN, 1, 15, 0.25, {0.6666666666666666, -0.8, 0.8571428571428571, -0.8888888888888888, 0.9090909090909091, -0.9230769230769231, 0.9333333333333333, -0.9411764705882353, 0.9473684210526315, -0.9523809523809523, 0.9565217391304348, -0.96, 0.9629629629629629, -0.9655172413793104, 0.967741935483871}},
  {OP_ASINH, 1, 14, 0.25, {0.3333333333333333, -0.3, 0.26785714285714285, -0.24305555555555555, 0.2237215909090909, -0.20823317307692307, 0.1955078125, -0.18482881433823528, 0.17570897152549342, -0.1678067161923363, 0.1608755692191746, -0.15473304748535155, 0.14924097944189002, -0.1442926711049573}},
  {OP_SIN, 1, 9, 0.5, {0.3333333333333333, -0.03333333333333333, 0.0011904761904761906, -2.2045855379188714e-05, 2.505210838544172e-07, -1.9270852604185937e-09, 1.0706029224547743e-11, -4.498331606952833e-14, 1.4797143443923793e-16}},
  {OP_SINH, 1, 9, 0.5, {-0.3333333333333333, -0.03333333333333333, -0.0011904761904761906, -2.2045855379188714e-05, -2.505210838544172e-07, -1.9270852604185937e-09, -1.0706029224547743e-11, -4.498331606952833e-14, -1.4797143443923793e-16}},
  {OP_EXPM1, 0, 14, 0.25, {-0.5, -0.3333333333333333, -0.125, -0.03333333333333333, -0.006944444444444444, -0.0011904761904761906, -0.00017361111111111112, -2.2045855379188714e-05, -2.48015873015873e-06, -2.505210838544172e-07, -2.296443268665491e-08, -1.9270852604185937e-09, -1.4911969277048643e-10, -1.0706029224547743e-11}},
  {OP_LOG1P, 0, 29, 0.25, {0.5, -0.6666666666666666, 0.75, -0.8, 0.8333333333333334, -0.8571428571428571, 0.875, -0.8888888888888888, 0.9, -0.9090909090909091, 0.9166666666666666, -0.9230769230769231, 0.9285714285714286, -0.9333333333333333, 0.9375, -0.9411764705882353, 0.9444444444444444, -0.9473684210526315, 0.95, -0.9523809523809523, 0.9545454545454546, -0.9565217391304348, 0.9583333333333334, -0.96, 0.9615384615384616, -0.9629629629629629, 0.9642857142857143, -0.9655172413793104, 0.9666666666666667}},
};

static dnc_node *minus_tangent(dctx *d, dnc_node *g, dnc_node *over)
{
  dnc_node *u = g->arg[0], *one = K(1.0);
  if (g->op == OP_SOFTPLUS) {
    dnc_node *v = S(OP_NEG, S(OP_ABS, u, NULL), NULL);
    dnc_node *sv = S(OP_SIGMOID, v, NULL);
    dnc_node *r = S(OP_SUB, S(OP_SOFTPLUS, v, NULL), zero_where(d, sv, S(OP_MUL, v, sv)));
    return over ? S(OP_DIV, S(OP_DIV, r, over), over) : r;
  }
  for (size_t i = 0; i < sizeof scale_series / sizeof *scale_series; i++) {
    if (g->op != scale_series[i].op)
      continue;
    int odd = scale_series[i].odd;
    dnc_node *t = odd ? S(OP_POW, u, K(2.0)) : u;
    dnc_node *poly = K(scale_series[i].c[scale_series[i].n - 1]);
    for (int k = scale_series[i].n - 2; k >= 0; k--)
      poly = S(OP_ADD, K(scale_series[i].c[k]), S(OP_MUL, t, poly));
    dnc_node *gp = rules[g->op](d, g, &u, &one);
    dnc_node *small = S(OP_LT, S(OP_ABS, u, NULL), K(scale_series[i].lim));
    /* u g'(u) is 0 where g' is (inf * 0 = NaN where u overflowed: atan(a
     * x) / a by a at a x = inf, 3e38 in f32, was NaN, not -pi / (2 a^2)) */
    dnc_node *series, *diff = S(OP_SUB, g, zero_where(d, gp, S(OP_MUL, u, gp)));
    if (over) { /* divided by over^2, over of u's degree (x / erf(x)'s
                 * erf(x)): (u / over)^2 u^(n-2) P, not u^n P / over^2,
                 * whose u^3 underflowed in f32 from |u| = 1e-13 */
      dnc_node *r = S(OP_DIV, u, over);
      series = S(OP_MUL, S(OP_MUL, r, r), odd ? S(OP_MUL, u, poly) : poly);
      diff = S(OP_DIV, S(OP_DIV, diff, over), over);
    } else
      series = S(OP_MUL, S(OP_POW, u, K(odd ? 3.0 : 2.0)), poly);
    return dnc_simp(d->g, OP_SELECT, small, series, diff);
  }
  return NULL;
}

/* p g(u), p of degree m != 0 in the variable and u of degree -m (cap
 * tanh(x / cap) by cap): p' g + p g' u' = p' (g - u g'), Euler's p = (w/m)
 * p' and u' = -(m/w) u, with minus_tangent's g - u g'. NULL where the
 * product is not of that shape. */
static dnc_node *mul_scaled(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  for (int k = 0; k < 2; k++) {
    dnc_node *g = a[1 - k];
    if (!da[k] || g->nargs != 1 || !d->dv[g->id])
      continue;
    d->budget = RESID_BUDGET;
    const dnc_node *w = var_leaf(d, a[k], 0);
    hdeg_t m = w ? pdeg(d, a[k], w, 0) : no_deg;
    if (!deg_ok(m) || deg_zero(m) ||
        !deg_eq(pdeg(d, g->arg[0], w, 0), deg_mul(m, deg_num(-1))))
      continue;
    dnc_node *phi = minus_tangent(d, g, NULL);
    if (phi)
      return S(OP_MUL, da[k], phi);
  }
  return NULL;
}

/* g(u) / b, b and u of one degree m != 0 in the variable (tanh(a x) / a
 * by a, sinh(x) / x by x): (g' u' b - g b') / b^2 = -b' (g - u g') / b^2,
 * Euler's u' = (m/w) u and b' = (m/w) b; and b / g(u) likewise. NULL
 * where the quotient is not of either shape. */
static dnc_node *div_scaled(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  dnc_node *g = a[0];
  if (!da[0] || !da[1])
    return NULL;
  if (a[1]->nargs == 1) {
    /* b / g(u), b and u of one degree m (x / erf(x), x / tanh(x), whose
     * value is a removable 0/0 at 0): (b' g - b g' u') / g^2 = b' (g - u
     * g') / g^2; the quotient rule's 1 - q g' had no digit left near 0
     * (d/dx of x / erf(x) at 1e-20 was 1206, not 6e-21) */
    dnc_node *h = a[1];
    d->budget = RESID_BUDGET;
    const dnc_node *w = var_leaf(d, a[0], 0);
    hdeg_t m = w ? pdeg(d, a[0], w, 0) : no_deg;
    dnc_node *phi = deg_ok(m) && !deg_zero(m) && deg_eq(pdeg(d, h->arg[0], w, 0), m)
                        ? minus_tangent(d, h, h) : NULL;
    if (phi)
      return mul(d, da[0], phi);
  }
  /* k g(u) / b with k not depending on the variable (sign(x) log1p(a
   * |x|) / a by a, the odd extension of log1p(a x) / a): k times g(u) /
   * b's derivative; the quotient rule's had no digit left from a |x| =
   * 1e-8 in f32 (0, not -5e-17) */
  dnc_node *k = NULL;
  if (g->op == OP_MUL)
    for (int j = 0; j < 2 && !k; j++)
      if (!d->dv[g->arg[j]->id] && g->arg[1 - j]->nargs == 1)
        k = g->arg[j], g = g->arg[1 - j];
  if (g->nargs != 1)
    return NULL;
  d->budget = RESID_BUDGET;
  const dnc_node *w = var_leaf(d, a[1], 0);
  hdeg_t m = w ? pdeg(d, a[1], w, 0) : no_deg;
  if (!deg_ok(m) || deg_zero(m) || !deg_eq(pdeg(d, g->arg[0], w, 0), m))
    return NULL;
  dnc_node *phi = minus_tangent(d, g, a[1]);
  if (!phi)
    return NULL;
  dnc_node *r = S(OP_NEG, S(OP_MUL, da[1], phi), NULL);
  return k ? S(OP_MUL, k, r) : r;
}

/* sinh(u) / cosh(u) and cosh(u) / sinh(u), tanh and coth written out:
 * tanh's own rule for the first, -u' / sinh(u) / sinh(u) for the second.
 * The quotient rule computes 1 - (sinh/cosh)^2, no digit left once the
 * quotient rounds to 1 (|u| from 9 in f32), where the derivative, about
 * 4 e^(-2|u|), is a normal number. NULL for other quotients. */
static dnc_node *div_hyperbolic(dctx *d, dnc_node *const *a)
{
  const dnc_node *x = a[0], *y = a[1];
  if (x->nargs != 1 || y->nargs != 1 || x->arg[0] != y->arg[0] ||
      !d->dv[x->arg[0]->id])
    return NULL;
  dnc_node *u[1] = {x->arg[0]}, *du[1] = {d->dv[x->arg[0]->id]};
  if (x->op == OP_SINH && y->op == OP_COSH)
    return df_tanh(d, NULL, u, du);
  if (x->op == OP_COSH && y->op == OP_SINH)
    return S(OP_NEG, S(OP_DIV, S(OP_DIV, du[0], a[1]), a[1]), NULL);
  return NULL;
}

/* The quotient e = a / b's derivative by the first exact rule above
 * that takes its shape, else NULL */
static dnc_node *div_exact(dctx *d, dnc_node *e, dnc_node *const *a,
                           dnc_node *const *da)
{
  dnc_node *r = div_isru(d, a, da);
  if (!r)
    r = div_homogeneous(d, a, da);
  if (!r)
    r = div_hypot(d, a, da);
  if (!r)
    r = div_v32(d, a, da);
  if (!r)
    r = div_rational(d, e, a, da);
  if (!r)
    r = div_resid(d, a, da);
  if (!r)
    r = div_hyperbolic(d, a);
  if (!r)
    r = div_scaled(d, a, da);
  return r;
}

/* (a/b)' = (a' - (a/b) b') / b: reuses the quotient instead of a/b^2.
 * Where b' is not plain, (a/b) b' is 0 where a/b is 0: where b overflows
 * with its derivative (x / (1 + exp(a x)) from a x = 89 in f32, x /
 * cosh(x / 2)), a/b is 0 and b' inf, and 0 * inf made the derivative
 * NaN where it is about 0, and with it the summed gradient of every
 * parameter over a batch that held one such x; a' / b is then the
 * result (0 there), as it is where a is 0 and b' overflows at a finite b
 * (x / (1 + sqrt(abs(x))) at x = 0: 1, not NaN). */
/* (a/b) b' as ((a/b) t) y where b = c + t with c independent of the
 * variable and b' = t y (b = 1 + exp(u): t = exp(u), y = u'): t/b is at
 * most about 1, where t y alone overflows before b does (d/da of x / (1
 * + exp(-a x)) was inf for x from -88.7 to -84.2 in f32, where it is
 * about 1e-35: x exp(-a x) overflowed). NULL for another shape. */
static dnc_node *quotient_times_summand(dctx *d, dnc_node *q, const dnc_node *b,
                                        dnc_node *db)
{
  if (b->op != OP_ADD || !db)
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *t = b->arg[k];
    if (d->dv[b->arg[1 - k]->id] || !d->dv[t->id] || t->op == OP_CONST)
      continue;
    dnc_node *y = factor_out(d, db, t, 0);
    if (y && !(y->op == OP_CONST && y->value == 1))
      return S(OP_MUL, S(OP_MUL, q, t), y);
  }
  return NULL;
}

RULE(df_div)
{
  dnc_node *r = div_exact(d, e, a, da);
  if (r)
    return r->op == OP_CONST && r->value == 0 ? NULL : r;
  dnc_node *qb = quotient_times_summand(d, e, a[1], da[1]);
  if (!qb)
    qb = mul(d, e, da[1]);
  if (qb && !plain(da[1]))
    qb = zero_where(d, e, qb);
  return divide(d, sub(d, da[0], qb), a[1]);
}
/* log(b), as log1p(t) where b is 1 + t: d/dp (1 + x^2)^p took the log
 * of the rounded sum, no digit of x^2 left below 1e-8 in f32 (4.6 % off
 * at x = 1e-3 there); likewise for c + t, below */
static dnc_node *log_of(dctx *d, dnc_node *b)
{
  for (int k = 0; k < 2 && b->op == OP_ADD; k++)
    if (b->arg[k]->op == OP_CONST && b->arg[k]->value == 1)
      return S(OP_LOG1P, b->arg[1 - k], NULL);
  /* c + t with c a parameter (x / (beta + x^2)^p by p, at beta = 1 the
   * same loss): log(c) + log1p(t / c) where |t| < c, which keeps t's
   * digits (d/dp at x = 1e-20 was 0, not -1e-60, even in the
   * interpreter), the log of the sum elsewhere (c <= 0 included) */
  for (int k = 0; k < 2 && b->op == OP_ADD; k++) {
    dnc_node *c = b->arg[k], *t = b->arg[1 - k];
    if (c->op != OP_PARAM)
      continue;
    dnc_node *split = S(OP_ADD, S(OP_LOG, c, NULL),
                        S(OP_LOG1P, S(OP_DIV, t, c), NULL));
    return dnc_simp(d->g, OP_SELECT, S(OP_LT, S(OP_ABS, t, NULL), c), split,
                    S(OP_LOG, b, NULL));
  }
  return S(OP_LOG, b, NULL);
}

/* (c + B^q)^(k/q) by a variable in q alone (c, B and k independent of
 * it: the generalised softsign x / (1 + |x|^p)^(1/p) by p): with t = B^q
 * and L = q log B = log t, the rule's two terms are -(k/q^2) q' v (log(c
 * + t) - t L / (c + t)), whose difference lost every digit for t >> c
 * (both about log t: d/dp of the softsign at x = 1e4 in f32 was 40 %
 * off, then 0). Written as two positive terms there, log1p(c/t) + c L /
 * (c + t); below, as it is (t L is 0 where t is: x = 0). NULL for
 * another shape. */
static dnc_node *pow_scaled_root(dctx *d, dnc_node *e, dnc_node *const *a)
{
  const dnc_node *b = a[0], *ex = a[1];
  if (b->op != OP_ADD || ex->op != OP_DIV || ex->arg[0]->op != OP_CONST)
    return NULL;
  for (int k = 0; k < 2; k++) {
    dnc_node *c = b->arg[k], *t = b->arg[1 - k];
    if (d->dv[c->id] || t->op != OP_POW || t->arg[1] != ex->arg[1] ||
        d->dv[t->arg[0]->id])
      continue;
    dnc_node *q = t->arg[1], *dq = d->dv[q->id];
    if (!dq)
      return NULL;
    dnc_node *L = S(OP_MUL, q, S(OP_LOG, t->arg[0], NULL));
    dnc_node *big = S(OP_ADD, S(OP_LOG1P, S(OP_DIV, c, t), NULL),
                      S(OP_DIV, S(OP_MUL, c, L), a[0]));
    dnc_node *lg = c->op == OP_CONST && c->value == 1
                       ? S(OP_LOG1P, t, NULL) /* log(c + t) for t <= c */
                       : S(OP_ADD, S(OP_LOG, c, NULL), S(OP_LOG1P, S(OP_DIV, t, c), NULL));
    dnc_node *small = S(OP_SUB, lg, zero_where(d, t, S(OP_DIV, S(OP_MUL, t, L), a[0])));
    dnc_node *h = dnc_simp(d->g, OP_SELECT, S(OP_GT, t, c), big, small);
    dnc_node *f = S(OP_DIV, S(OP_DIV, S(OP_MUL, ex->arg[0], dq), q), q);
    return S(OP_NEG, S(OP_MUL, f, S(OP_MUL, e, h)), NULL);
  }
  return NULL;
}

/* t, the derivative of h(abs(w)) with h' infinite at 0 (abs(w)^p, p
 * < 1, sqrt(abs(w))), 0 where w' is 0: the chain rule's h'(0) sign(0)
 * w' = inf * 0 was NaN where w and w' are 0, d/da of abs(a x)^0.5 or
 * sqrt(abs(a x)) at x = 0 (the function 0 there for every a), and d/dx
 * everywhere at a = 0, and with it the summed gradient of a over a batch
 * holding one such element. Where w' is a constant not 0 (d/dx of
 * abs(x)^0.5: a cusp, slopes -inf and inf) t stays, NaN at 0. */
static dnc_node *still_abs(dctx *d, const dnc_node *base, dnc_node *t)
{
  if (!t || base->op != OP_ABS)
    return t;
  dnc_node *dw = d->dv[base->arg[0]->id];
  if (!dw || (dw->op == OP_CONST && dw->value != 0.0))
    return t;
  return zero_where(d, dw, t);
}

RULE(df_pow)
{
  if (!da[1]) { /* a^b with b constant here: b a^(b-1) a' */
    /* a^0 is 1 for every a, NaN and inf included: no term, where
     * 0 * a^(-1) * a' would be NaN at a = 0 or where a' is not finite.
     * The exponent as written may be a constant expression (x^(1 - 1)). */
    dnc_node *b = a[1];
    if (b->op != OP_CONST && b->op != OP_PARAM) {
      int over = d->g->over; /* a nested budget clears the flag */
      b = dnc_simplify(d->g, b);
      d->g->over |= over;
    }
    if (b && b->op == OP_CONST && b->value == 0.0)
      return NULL;
    dnc_node *t = mul(d, mul(d, a[1], S(OP_POW, a[0], S(OP_SUB, a[1], K(1.0)))), da[0]);
    if (!b || b->op != OP_CONST || (b->value > 0.0 && b->value < 1.0))
      t = still_abs(d, a[0], t); /* p < 1, or a parameter's value */
    return t;
  }
  dnc_node *r = pow_scaled_root(d, e, a);
  if (r)
    return r;
  /* (a^b)' = a^b b' log a + a^b b a'/a. The first term is 0 where a^b
   * is 0 (a = 0 and b > 0, or an underflow), its limit there, instead of
   * 0 * -inf = NaN at a = 0: one x = 0 in a batch would make the whole
   * gradient of a parameter in the exponent NaN. A NaN a^b stays NaN. */
  dnc_node *t = mul(d, e, mul(d, da[1], log_of(d, a[0])));
  if (t)
    t = dnc_simp(d->g, OP_SELECT, S(OP_EQ, e, K(0.0)), K(0.0), t);
  return add(d, t, mul(d, e, divide(d, mul(d, a[1], da[0]), a[0])));
}
RULE(df_abs) { return mul(d, S(OP_SIGN, a[0], NULL), da[0]); }
RULE(df_sign) { return NULL; }
/* min returns b where b < a, else a: the gradient follows the choice */
RULE(df_min)
{
  if (!da[0] && !da[1])
    return NULL;
  return dnc_simp(d->g, OP_SELECT, S(OP_LT, a[1], a[0]), zero_if_null(d, da[1]),
                  zero_if_null(d, da[0]));
}
RULE(df_max)
{
  if (!da[0] && !da[1])
    return NULL;
  return dnc_simp(d->g, OP_SELECT, S(OP_GT, a[1], a[0]), zero_if_null(d, da[1]),
                  zero_if_null(d, da[0]));
}
/* clamp(v, lo, hi) = min(max(v, lo), hi) */
RULE(df_clamp)
{
  if (!da[0] && !da[1] && !da[2])
    return NULL;
  dnc_node *m = S(OP_MAX, a[0], a[1]);
  dnc_node *dm = dnc_simp(d->g, OP_SELECT, S(OP_GT, a[1], a[0]),
                          zero_if_null(d, da[1]), zero_if_null(d, da[0]));
  return dnc_simp(d->g, OP_SELECT, S(OP_LT, a[2], m), zero_if_null(d, da[2]), dm);
}
/* if f == 0 then 0 else t: t is a product with the factor f, which is 0
 * where a saturating function's derivative underflows (exp(-u^2),
 * sigmoid(u) sigmoid(-u), exp(u) for u -> -inf) while another factor
 * overflowed to inf: 0 * inf = NaN, where the true product is 0 */
static dnc_node *zero_where(dctx *d, dnc_node *f, dnc_node *t)
{
  return dnc_simp(d->g, OP_SELECT, S(OP_EQ, f, K(0.0)), K(0.0), t);
}

/* u' that cannot overflow where the function is finite: a constant, the
 * input or a parameter, or a constant times one (d/dx of tanh(a x) is
 * a, d/da is x). Any other u' (a x^2, x + c x^3, ...) can be inf at a
 * finite x, where f'(u) has underflowed to 0. */
static int plain(const dnc_node *v)
{
  if (v->op == OP_NEG)
    v = v->arg[0];
  if (v->op == OP_MUL && v->arg[0]->op == OP_CONST)
    v = v->arg[1];
  return v->op == OP_CONST || v->op == OP_INPUT || v->op == OP_PARAM;
}

/* the chain rule f'(u) u' for an f' that goes to 0 (tanh, erf, sigmoid,
 * exp, ...): f'(u) u', and 0 where f'(u) is 0 unless u' is plain (so
 * DyT's and Derf's derivatives, whose u' is a or x, are as before; at
 * x = inf their d/da is inf * 0 = NaN, as in PyTorch). z is f'(u)
 * without its constant factor, the node tested. */
static dnc_node *chain0(dctx *d, dnc_node *z, dnc_node *fp, dnc_node *du)
{
  if (!du)
    return NULL;
  dnc_node *t = S(OP_MUL, fp, du);
  return plain(du) ? t : zero_where(d, z, t);
}

/* exp(-u^2)' = -2 (e u) u', e u first: it is bounded (|e u| < 0.43), so
 * the product is 0, not 0 * inf = NaN, where u u' overflows and e is 0
 * (d/da of exp(-(a x)^2) at huge x); and 0 where e is 0, not inf * 0 =
 * NaN where u itself overflowed (a x = 2 * 3e38 in f32). u^2 is u^2 or
 * u * u. */
RULE(df_exp)
{
  const dnc_node *sq = a[0]->op == OP_NEG ? a[0]->arg[0] : NULL;
  dnc_node *u = sq ? (dnc_node *)dnc_square_of(sq) : NULL;
  if (u && d->dv[u->id])
    return S(OP_MUL, K(-2.0),
             zero_where(d, e, S(OP_MUL, S(OP_MUL, e, u), d->dv[u->id])));
  return chain0(d, e, e, da[0]);
}
/* expm1' = exp, not expm1 + 1, which cancels where expm1 -> -1 */
RULE(df_expm1)
{
  dnc_node *g = S(OP_EXP, a[0], NULL);
  return chain0(d, g, g, da[0]);
}
/* log1p(exp(u))' = log(1 + exp(u))' = sigmoid(u) u', not exp(u) u' /
 * (1 + exp(u)): inf/inf = NaN where exp(u) overflows (u > 88.7 in f32),
 * where the derivative is u'. NULL when f is not exp(u) or 1 + exp(u). */
static dnc_node *softplus_rule(dctx *d, const dnc_node *f, int log1p)
{
  if (!log1p) { /* 1 + exp(u), either order: a function is as written */
    if (f->op != OP_ADD)
      return NULL;
    int k = f->arg[0]->op == OP_CONST ? 0 : 1;
    if (f->arg[k]->op != OP_CONST || f->arg[k]->value != 1)
      return NULL;
    f = f->arg[1 - k];
  }
  if (f->op != OP_EXP || !d->dv[f->arg[0]->id])
    return NULL;
  dnc_node *u = f->arg[0];
  return S(OP_MUL, S(OP_SIGMOID, u, NULL), d->dv[u->id]);
}

/* log(f)' = f'/f, but log(cosh u)' = tanh(u) u' and log(sigmoid u)' =
 * sigmoid(-u) u': the quotient cancels where they do not (cosh^2 - sinh^2
 * in log(cosh u)'', whose f64 kernel gave 0 for sech^2 at u = 20;
 * 0/0 where sigmoid(u) underflows, inf/inf where cosh overflows) */
RULE(df_log)
{
  const dnc_node *f = a[0];
  if ((f->op == OP_COSH || f->op == OP_SIGMOID) && d->dv[f->arg[0]->id]) {
    dnc_node *u = f->arg[0];
    dnc_node *q = f->op == OP_COSH ? S(OP_TANH, u, NULL)
                                   : S(OP_SIGMOID, S(OP_NEG, u, NULL), NULL);
    return mul(d, q, d->dv[u->id]);
  }
  dnc_node *r = softplus_rule(d, f, 0);
  return r ? r : divide(d, da[0], a[0]);
}
RULE(df_log1p)
{
  dnc_node *r = softplus_rule(d, a[0], 1);
  return r ? r : divide(d, da[0], S(OP_ADD, K(1.0), a[0]));
}
RULE(df_sqrt)
{
  return still_abs(d, a[0], divide(d, da[0], S(OP_MUL, K(2.0), e)));
}
/* rsqrt(a)' = -rsqrt(a) / (2a); for a sum (rsqrt(beta + x^2)) -(a'/2) /
 * (a sqrt(a)), the form rewrite.c scales where a overflows (a' = 2x
 * overflowed too, inf * 0 = NaN at x = 3e38 in f32) */
RULE(df_rsqrt)
{
  if (da[0] && a[0]->op == OP_ADD)
    return S(OP_DIV, S(OP_MUL, K(-0.5), da[0]),
             S(OP_MUL, a[0], S(OP_SQRT, a[0], NULL)));
  return mul(d, S(OP_MUL, K(-0.5), S(OP_DIV, e, a[0])), da[0]);
}
/* tanh' = 1 - tanh^2 = (1 - t)(1 + t), where 1 - t = 2 sigmoid(-2u) and
 * 1 + t = 2 sigmoid(2u). Computed from t, 1 - t^2 has no correct digit
 * once t rounds to 1 (|u| > 9 in f32, > 4 in bf16), while the true value
 * is 4e^(-2|u|); the sigmoid form keeps full relative accuracy there, and
 * its own derivatives stay products of bounded terms (no inf/inf). */
RULE(df_tanh)
{
  dnc_node *u2 = S(OP_MUL, K(2.0), a[0]);
  dnc_node *q = S(OP_MUL, S(OP_SIGMOID, u2, NULL),
                  S(OP_SIGMOID, S(OP_NEG, u2, NULL), NULL));
  return chain0(d, q, S(OP_MUL, K(4.0), q), da[0]);
}
RULE(df_sinh) { return mul(d, S(OP_COSH, a[0], NULL), da[0]); }
RULE(df_cosh) { return mul(d, S(OP_SINH, a[0], NULL), da[0]); }
/* asinh' = 1 / sqrt(1 + u^2) = 1 / hypot(1, u): 1 + u^2 would overflow
 * from |u| = 1.3e154 (f32: 1.8e19) and give 0, not 1/|u| */
RULE(df_asinh)
{
  return divide(d, da[0], S(OP_HYPOT, K(1.0), a[0]));
}
/* atan' = 1 / (1 + u^2), but 1 + u^2 overflows from |u| = 1.8e19 in f32
 * (1.3e154 in f64) while u'/u^2 is still a normal number (d/da of
 * atan(a x) at a = 1e10, x = 1e10 is 1e-30, and was 0). Above |u| = 1e12,
 * where 1 + u^2 rounds to u^2 in every format (long double's from 2^32)
 * and u^2 is still finite in f32, it is (u'/u)/u, which does not
 * overflow; below, the quotient as before. */
RULE(df_atan)
{
  if (!da[0])
    return NULL;
  dnc_node *big = S(OP_GT, S(OP_ABS, a[0], NULL), K(1e12));
  return dnc_simp(d->g, OP_SELECT, big, S(OP_DIV, S(OP_DIV, da[0], a[0]), a[0]),
                  S(OP_DIV, da[0], S(OP_ADD, K(1.0), S(OP_POW, a[0], K(2.0)))));
}
/* erf' = 2/sqrt(pi) e^(-u^2): no cancellation anywhere */
RULE(df_erf)
{
  dnc_node *g = S(OP_EXP, S(OP_NEG, S(OP_POW, a[0], K(2.0)), NULL), NULL);
  return chain0(d, g, S(OP_MUL, K(1.1283791670955126), g), da[0]);
}
RULE(df_erfc)
{
  dnc_node *g = S(OP_EXP, S(OP_NEG, S(OP_POW, a[0], K(2.0)), NULL), NULL);
  return chain0(d, g, S(OP_MUL, K(-1.1283791670955126), g), da[0]);
}
/* sigmoid' = s (1 - s) = s sigmoid(-u): 1 - s cancels where s -> 1 */
RULE(df_sigmoid)
{
  dnc_node *q = S(OP_MUL, e, S(OP_SIGMOID, S(OP_NEG, a[0], NULL), NULL));
  return chain0(d, q, q, da[0]);
}
RULE(df_softplus)
{
  dnc_node *s = S(OP_SIGMOID, a[0], NULL);
  return chain0(d, s, s, da[0]);
}
RULE(df_sin) { return mul(d, S(OP_COS, a[0], NULL), da[0]); }
RULE(df_cos)
{
  dnc_node *t = mul(d, S(OP_SIN, a[0], NULL), da[0]);
  return t ? S(OP_NEG, t, NULL) : NULL;
}
/* hypot(a, b)' = (a/h) a' + (b/h) b', h = hypot(a, b): |a/h| <= 1, so
 * nothing overflows (NaN at a = b = 0, where hypot has no derivative) */
RULE(df_hypot)
{
  return add(d, mul(d, S(OP_DIV, a[0], e), da[0]), mul(d, S(OP_DIV, a[1], e), da[1]));
}
/* fma(a, b, c)' = a' b + a b' + c' */
RULE(df_fma)
{
  return add(d, add(d, mul(d, da[0], a[1]), mul(d, a[0], da[1])), da[2]);
}
/* conditions have no derivative */
RULE(df_lt) { return NULL; }
#define df_le df_lt
#define df_gt df_lt
#define df_ge df_lt
#define df_eq df_lt
#define df_ne df_lt
#define df_and df_lt
#define df_or df_lt
#define df_not df_lt
/* y with e = f y, built from e's products, quotients and negations with
 * the factor f in them, or NULL */
static dnc_node *factor_out(dctx *d, dnc_node *e, const dnc_node *f, int depth)
{
  if (e == f)
    return K(1.0);
  if (depth > 8)
    return NULL;
  dnc_node *y;
  switch (e->op) {
  case OP_NEG:
    y = factor_out(d, e->arg[0], f, depth + 1);
    return y ? S(OP_NEG, y, NULL) : NULL;
  case OP_MUL:
    for (int k = 0; k < 2; k++)
      if (e->arg[k] == f)
        return e->arg[1 - k];
    for (int k = 0; k < 2; k++)
      if ((y = factor_out(d, e->arg[k], f, depth + 1)))
        return S(OP_MUL, y, e->arg[1 - k]);
    return NULL;
  case OP_DIV:
    y = factor_out(d, e->arg[0], f, depth + 1);
    return y ? S(OP_DIV, y, e->arg[1]) : NULL;
  default:
    return NULL;
  }
}

/* if f == 0 then 0 else f y (zero_where's guard, or the same written by
 * hand) is f y wherever y is finite, so its derivative is f' y + f y':
 * f' y where f is 0 (the f y' term 0 there, as the guard has it), (f
 * y)' elsewhere. Each branch's own derivative, 0 where f is 0, dropped
 * f' y there: d2/dx2 of x / (1 + exp(-x)) at 0 was 0.25, not 0.5, in the
 * interpreter, the kernels and PyTorch's double backward. NULL where e
 * is not of that shape. */
static dnc_node *guard_rule(dctx *d, dnc_node *const *a, dnc_node *const *da)
{
  const dnc_node *c = a[0];
  if (c->op != OP_EQ || a[1]->op != OP_CONST || a[1]->value != 0 || !da[2])
    return NULL;
  int k = c->arg[0]->op == OP_CONST && c->arg[0]->value == 0 ? 1
          : c->arg[1]->op == OP_CONST && c->arg[1]->value == 0 ? 0 : -1;
  dnc_node *f = k < 0 ? NULL : c->arg[k], *df = f ? d->dv[f->id] : NULL;
  dnc_node *y = df ? factor_out(d, a[2], f, 0) : NULL;
  if (!y)
    return NULL;
  /* where f' y is NaN (y has f as a factor too: x^2 log|x| at 0, y = x
   * log|x| = 0 (-inf)), the then-branch's 0 as before: a zero input would
   * have made a batch's gradients NaN; an infinite f' y (x log|x|' at
   * 0) is the limit and stays */
  dnc_node *r = zero_where(d, df, S(OP_MUL, df, y));
  r = dnc_simp(d->g, OP_SELECT, S(OP_NE, r, r), K(0.0), r);
  return dnc_simp(d->g, OP_SELECT, a[0], r, da[2]);
}

/* each branch, not the condition */
RULE(df_select)
{
  if (!da[1] && !da[2])
    return NULL;
  dnc_node *r = guard_rule(d, a, da);
  if (r)
    return r;
  return dnc_simp(d->g, OP_SELECT, a[0], zero_if_null(d, da[1]),
                  zero_if_null(d, da[2]));
}

static const rule_fn rules[OP__COUNT] = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, DIFF, LOWER) DIFF,
    DNC_OPS(X)
#undef X
};

void dnc_diff_too_large_msg(char *buf, size_t n, const dnc_fn *f)
{
  snprintf(buf, n, "a derivative of '%s' is too large: more than %u nodes "
           "(or all derivatives of its module more than %u)", f->name,
           DNC_MAX_DIFF_NODES, DNC_MAX_DAG_NODES);
}

void dnc_diff_too_large(dnc_mod *m, const dnc_fn *f)
{
  char msg[200];
  dnc_diff_too_large_msg(msg, sizeof msg, f);
  dnc_diag_add(&m->diags, DNC_SEV_ERROR, f->src, f->loc, "%s", msg);
  dnc_diag_render(stderr, m->diags.tail);
}

dnc_node *dnc_derivative(dnc_dag *g, dnc_node *root, int wrt)
{
  return dnc_simplify(g, dnc_diff(g, root, wrt));
}

/* f's first derivatives, made once each: d1[wrt + 1] (NULL when past the
 * budget, which d1done tells from not made) and their programs for the
 * interpreter, allocated in m's arena with the first one. */
static int derive_slot(dnc_mod *m, dnc_fn *f, int wrt)
{
  DNC_ASSERT(wrt >= DNC_WRT_X && wrt < f->nparams);
  if (!f->d1) {
    size_t n = (size_t)f->nparams + 1;
    f->d1 = dnc_arena_alloc(m->arena, sizeof *f->d1 * n);
    f->d1prog = dnc_arena_alloc(m->arena, sizeof *f->d1prog * n);
    f->d1done = dnc_arena_alloc(m->arena, n);
  }
  int i = wrt + 1;
  if (!f->d1done[i]) {
    f->d1[i] = dnc_derivative(&m->dag, f->body, wrt);
    f->d1done[i] = 1;
  }
  return i;
}

dnc_node *dnc_derive(dnc_mod *m, dnc_fn *f, int wrt)
{
  int i = derive_slot(m, f, wrt); /* allocates f->d1 */
  return f->d1[i];
}

const dnc_prog *dnc_derive_prog(dnc_mod *m, dnc_fn *f, int wrt)
{
  int i = derive_slot(m, f, wrt);
  if (f->d1[i] && !f->d1prog[i])
    f->d1prog[i] = dnc_prog_build(&m->dag, m->arena, f->d1[i]);
  return f->d1prog[i];
}

int dnc_kernel_check(dnc_mod *m, dnc_fn *f, char *err, size_t n)
{
  uint32_t size = dnc_node_count(f->body);
  for (int v = DNC_WRT_X; v < f->nparams; v++) {
    dnc_node *d = dnc_derive(m, f, v);
    if (!d) {
      dnc_diff_too_large_msg(err, n, f);
      return -1;
    }
    size += dnc_node_count(d);
  }
  if (size > DNC_MAX_KERNEL_NODES) {
    snprintf(err, n, "'%s' is too large to compile: with its derivatives it "
             "has %u nodes, more than %u", f->name, size,
             DNC_MAX_KERNEL_NODES);
    return -1;
  }
  return 0;
}

dnc_node *dnc_diff(dnc_dag *g, dnc_node *root, int wrt)
{
  if (!root)
    return NULL;
  uint32_t limit0 = dnc_dag_budget(g, DNC_MAX_DIFF_NODES);
  dnc_arena *scratch = dnc_arena_new();
  uint32_t n;
  dnc_node **s = dnc_schedule(g, scratch, root, &n);
  dctx d = {g, wrt, NULL, NULL, root->id + 1, scratch, 0, 1};
  d.dv = dnc_arena_alloc(scratch, sizeof *d.dv * ((size_t)root->id + 1));
  d.done = dnc_arena_alloc(scratch, (size_t)root->id + 1);
  for (uint32_t i = 0; i < n && !g->over; i++) {
    dnc_node *e = s[i];
    dnc_node *da[3] = {NULL, NULL, NULL};
    for (int k = 0; k < e->nargs; k++)
      da[k] = d.dv[e->arg[k]->id];
    dnc_node *de = rules[e->op](&d, e, e->arg, da);
    d.dv[e->id] = de; /* (d.dv may have grown in the rule) */
    d.done[e->id] = 1;
  }
  dnc_node *r = d.dv[root->id];
  dnc_arena_free(scratch);
  if (!r && !g->over)
    r = dnc_const(g, 0.0);
  dnc_dag_budget_end(g, limit0);
  /* the size of the result, shared nodes once, is the budget too (a
   * derivative of a derivative grows without adding many new nodes) */
  if (!g->over && dnc_node_count(r) > DNC_MAX_DIFF_NODES)
    g->over = 1;
  return g->over ? NULL : r;
}
