/*
 * simplify.c - a simplifying node constructor, and a pass that rebuilds a
 * DAG through it.
 *
 * Every rewrite here keeps the IEEE result of the expression for every
 * input, NaN, infinities and signed zeros included, except where a comment
 * says it changes rounding only (collecting c1*a + c2*a, folding constants
 * in extended precision). So there is no `0 * a -> 0` (NaN and infinite a),
 * no `a - a -> 0` (NaN for infinite a), no `a + 0 -> a` (-0 + 0 is +0), no
 * `a / a -> 1`. What is done:
 *   - constants fold (each operation computed in long double, its result
 *     rounded to double, so a nested constant is rounded at every step:
 *     (1 + 1e-17) - 1 is 0) when the result is finite; NaN- or
 *     inf-producing constant expressions stay visible, and conditions are
 *     never folded into numbers;
 *   - identities that are exact in IEEE arithmetic: a*1, a/1, a^1, a - 0,
 *     a + -0 -> a; a^0, 1^a -> 1; -(-a) -> a; -1*a -> -a; a + -b -> a - b;
 *     a - -b -> a + b; -a + b -> b - a; a + (-c)*b -> a - c*b; (-a)*b, a*(-b) -> -(a*b); same for /;
 *     abs(-a), abs(abs(a)) -> abs(a); `if c then a else a` -> a;
 *     a / 2^k -> 2^-k * a when 2^-k is finite (exact);
 *   - like terms and powers: a + a -> 2*a; c1*a + c2*a -> (c1+c2)*a when
 *     c1 and c2 have one sign (3a - 2a is NaN at a = inf, a is not);
 *     c1*(c2*a) -> (c1*c2)*a when the product neither overflows nor
 *     underflows (to 0 or to a subnormal);
 *     constant factors move to the front: a*(c*b) -> c*(a*b),
 *     (c*a)/b -> c*(a/b), a/(2^k*b) -> 2^-k*(a/b), -(c*a) -> (-c)*a
 *     (these change rounding, and where an intermediate overflows, the
 *     point at which the result does);
 *     a*a -> a^2; a^p * a -> a^(p+1) and a^p * a^q -> a^(p+q) for integer
 *     p, q of one sign (0^-1 * 0^1 is NaN where 0^0 is 1; (-1)^0.5 *
 *     (-1)^1.5 is NaN where (-1)^2 is 1);
 *   - commutative operands (+ * == != and or) in a canonical order:
 *     constants, then parameters, then x, then other nodes by id; so that
 *     a*x and x*a are one node.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "dnc_int.h"

static int is_const(const dnc_node *n, double v)
{
  return n && n->op == OP_CONST && n->value == v &&
         signbit(n->value) == signbit(v);
}

static int is_konst(const dnc_node *n)
{
  return n && n->op == OP_CONST;
}

static int rank(const dnc_node *n)
{
  switch (n->op) {
  case OP_CONST: return 0;
  case OP_PARAM: return 1;
  case OP_INPUT: return 2;
  default: return 3;
  }
}

/* a before b in the canonical order of commutative operands */
static int before(const dnc_node *a, const dnc_node *b)
{
  int ra = rank(a), rb = rank(b);
  if (ra != rb)
    return ra < rb;
  if (a->op == OP_PARAM)
    return a->param <= b->param;
  return a->id <= b->id;
}

/* a term as coefficient * base: c*b gives (c, b), -b gives (-1, b). */
static dnc_node *split(dnc_node *t, double *c)
{
  if (t->op == OP_MUL && is_konst(t->arg[0]) && isfinite(t->arg[0]->value)) {
    *c = t->arg[0]->value;
    return t->arg[1];
  }
  if (t->op == OP_NEG) {
    *c = -1;
    return t->arg[0];
  }
  *c = 1;
  return t;
}

/* a power as base^p with constant p: a^p gives (a, p), a gives (a, 1). */
static dnc_node *power(dnc_node *t, double *p)
{
  if (t->op == OP_POW && is_konst(t->arg[1])) {
    *p = t->arg[1]->value;
    return t->arg[0];
  }
  *p = 1;
  return t;
}

static int is_pow2(double v)
{
  int e;
  return isfinite(v) && v != 0 && fabs(frexp(v, &e)) == 0.5;
}

/* c1*a + c2*a = (c1+c2)*a only when c1 and c2 have one sign: else at
 * a = inf the left side is inf - inf = NaN and the right side is not */
static int same_sign(double c1, double c2)
{
  return (c1 > 0 && c2 > 0) || (c1 < 0 && c2 < 0);
}

/* c1*(c2*a) = (c1*c2)*a unless the product overflows or underflows
 * (then at a = inf or a = 0 the sides differ; and a subnormal product
 * keeps only some of its digits: 1e-160*(1e-160*x) was 1e-320*x, 1e-5
 * off at x = 1e300) */
static int product_safe(double c1, double c2)
{
  double p = c1 * c2;
  return isfinite(p) && (fabs(p) >= DBL_MIN || c1 == 0 || c2 == 0);
}

#define S(op, a, b) dnc_simp(g, op, a, b, NULL)

dnc_node *dnc_simp(dnc_dag *g, int op, dnc_node *a, dnc_node *b, dnc_node *c)
{
  int n = dnc_ops[op].arity;
  if (dnc_ops[op].commutative && !before(a, b)) {
    dnc_node *t = a;
    a = b;
    b = t;
  }
  /* fold constants; never a condition into a number */
  if (dnc_ops[op].type == TYPE_NUM && op != OP_SELECT) {
    int all = 1;
    dnc_node *args[3] = {a, b, c};
    long double v[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
      all &= is_konst(args[i]);
      if (all)
        v[i] = args[i]->value;
    }
    if (all) {
      double r = (double)dnc_eval_op(op, v[0], v[1], v[2]);
      if (isfinite(r))
        return dnc_const(g, r);
    }
  }
  double ca, cb, pa, pb;
  dnc_node *ba, *bb;
  switch (op) {
  case OP_NEG:
    if (a->op == OP_NEG)
      return a->arg[0];
    if (a->op == OP_MUL && is_konst(a->arg[0]))
      return S(OP_MUL, dnc_const(g, -a->arg[0]->value), a->arg[1]);
    break;
  case OP_ADD:
    if (is_const(b, -0.0))
      return a;
    if (is_const(a, -0.0))
      return b;
    if (b->op == OP_NEG)
      return S(OP_SUB, a, b->arg[0]);
    if (a->op == OP_NEG)
      return S(OP_SUB, b, a->arg[0]);
    if (b->op == OP_MUL && is_konst(b->arg[0]) && b->arg[0]->value < 0)
      return S(OP_SUB, a, S(OP_MUL, dnc_const(g, -b->arg[0]->value), b->arg[1]));
    ba = split(a, &ca);
    bb = split(b, &cb);
    if (ba == bb && same_sign(ca, cb) && isfinite(ca + cb)) /* rounding only */
      return S(OP_MUL, dnc_const(g, ca + cb), ba);
    break;
  case OP_SUB:
    if (is_const(b, 0.0))
      return a;
    if (b->op == OP_NEG)
      return S(OP_ADD, a, b->arg[0]);
    ba = split(a, &ca);
    bb = split(b, &cb);
    if (ba == bb && same_sign(ca, -cb) && isfinite(ca - cb)) /* rounding only */
      return S(OP_MUL, dnc_const(g, ca - cb), ba);
    break;
  case OP_MUL:
    if (is_const(a, 1.0))
      return b;
    if (is_const(a, -1.0))
      return S(OP_NEG, b, NULL);
    if (a->op == OP_NEG)
      return S(OP_NEG, S(OP_MUL, a->arg[0], b), NULL);
    if (b->op == OP_NEG)
      return S(OP_NEG, S(OP_MUL, a, b->arg[0]), NULL);
    if (is_konst(a) && b->op == OP_MUL && is_konst(b->arg[0]) &&
        product_safe(a->value, b->arg[0]->value)) /* rounding only */
      return S(OP_MUL, dnc_const(g, a->value * b->arg[0]->value), b->arg[1]);
    if (!is_konst(a) && b->op == OP_MUL && is_konst(b->arg[0]))
      return S(OP_MUL, b->arg[0], S(OP_MUL, a, b->arg[1]));
    if (a == b)
      return S(OP_POW, a, dnc_const(g, 2.0));
    ba = power(a, &pa);
    bb = power(b, &pb);
    if (ba == bb && !is_konst(ba) && (pa > 0) == (pb > 0) && pa != 0 &&
        pb != 0 && pa == rint(pa) && pb == rint(pb) && fabs(pa + pb) < 0x1p52)
      return S(OP_POW, ba, dnc_const(g, pa + pb));
    break;
  case OP_DIV:
    if (is_const(b, 1.0))
      return a;
    if (a->op == OP_NEG)
      return S(OP_NEG, S(OP_DIV, a->arg[0], b), NULL);
    if (b->op == OP_NEG)
      return S(OP_NEG, S(OP_DIV, a, b->arg[0]), NULL);
    if (is_konst(b) && is_pow2(b->value) && isfinite(1.0 / b->value) &&
        !is_konst(a))
      return S(OP_MUL, dnc_const(g, 1.0 / b->value), a);
    if (a->op == OP_MUL && is_konst(a->arg[0]) && !is_konst(b))
      return S(OP_MUL, a->arg[0], S(OP_DIV, a->arg[1], b));
    if (b->op == OP_MUL && is_konst(b->arg[0]) && is_pow2(b->arg[0]->value) &&
        isfinite(1.0 / b->arg[0]->value))
      return S(OP_MUL, dnc_const(g, 1.0 / b->arg[0]->value),
               S(OP_DIV, a, b->arg[1]));
    break;
  case OP_POW:
    if (is_const(b, 1.0))
      return a;
    if (is_const(b, 0.0) || is_const(b, -0.0) || is_const(a, 1.0))
      return dnc_const(g, 1.0);
    break;
  case OP_ABS:
    if (a->op == OP_NEG || a->op == OP_ABS)
      return S(OP_ABS, a->arg[0], NULL);
    break;
  case OP_SELECT:
    if (b == c)
      return b;
    break;
  default:
    break;
  }
  return dnc_node_op(g, op, a, b, c);
}

dnc_node *dnc_simplify(dnc_dag *g, dnc_node *root)
{
  if (!root)
    return NULL;
  uint32_t limit0 = dnc_dag_budget(g, DNC_MAX_DIFF_NODES);
  dnc_arena *scratch = dnc_arena_new();
  uint32_t n;
  dnc_node **s = dnc_schedule(g, scratch, root, &n);
  dnc_node **map = dnc_arena_alloc(scratch, sizeof *map * ((size_t)root->id + 1));
  for (uint32_t i = 0; i < n; i++) {
    dnc_node *e = s[i];
    if (e->nargs == 0) {
      map[e->id] = e;
      continue;
    }
    dnc_node *a[3] = {NULL, NULL, NULL};
    for (int k = 0; k < e->nargs; k++)
      a[k] = map[e->arg[k]->id];
    map[e->id] = dnc_simp(g, e->op, a[0], a[1], a[2]);
  }
  dnc_node *r = map[root->id];
  dnc_arena_free(scratch);
  dnc_dag_budget_end(g, limit0);
  return g->over ? NULL : r;
}
