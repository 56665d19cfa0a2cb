/*
 * expr.c - the hash-consed expression DAG.
 *
 * Nodes are immutable and unique per module: dnc_node_op returns the existing
 * node when an equal one exists, so equal subterms are one node, common
 * subexpressions are shared for free, and a node's operands always have
 * smaller ids than the node (id order is a topological order).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

const dnc_opinfo dnc_ops[OP__COUNT] = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT,  \
          DIFF, LOWER)                                                     \
  {#NAME, ARITY, SPELL, FORM_##FORM, PREC, TYPE_##TYPE, COMM, #MATH, C, TORCH, RT},
    DNC_OPS(X)
#undef X
};

static uint32_t mix(uint32_t h, uint64_t v)
{
  /* 64-bit to 32-bit multiplicative mixing (splitmix-style finaliser) */
  uint64_t z = (uint64_t)h * 0x9E3779B97F4A7C15ull ^ v;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (uint32_t)(z ^ (z >> 31));
}

static uint64_t bits(double v)
{
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static uint32_t node_hash(int op, double value, int param, dnc_node *const *a,
                          int n)
{
  uint32_t h = mix((uint32_t)op, bits(value));
  h = mix(h, (uint64_t)(int64_t)param);
  for (int i = 0; i < n; i++)
    h = mix(h, a[i]->id);
  return h;
}

void dnc_dag_init(dnc_dag *g, dnc_arena *a)
{
  memset(g, 0, sizeof *g);
  g->arena = a;
  g->nbuckets = 256;
  g->buckets = calloc(g->nbuckets, sizeof *g->buckets);
  g->cap = 256;
  g->nodes = malloc(sizeof *g->nodes * g->cap);
  if (!g->buckets || !g->nodes)
    dnc_die(__FILE__, __LINE__, "out of memory");
  g->limit = DNC_MAX_DAG_NODES;
}

uint32_t dnc_dag_budget(dnc_dag *g, uint32_t more)
{
  uint32_t old = g->limit;
  g->limit = g->count < DNC_MAX_DAG_NODES - more ? g->count + more
                                                 : DNC_MAX_DAG_NODES;
  if (g->limit > old)
    g->limit = old; /* a budget within a budget */
  g->over = 0;
  return old;
}

void dnc_dag_budget_end(dnc_dag *g, uint32_t limit)
{
  g->limit = limit;
}

void dnc_dag_free(dnc_dag *g)
{
  free(g->buckets);
  free(g->nodes);
  g->buckets = NULL;
  g->nodes = NULL;
}

static void grow(dnc_dag *g)
{
  uint32_t nb = g->nbuckets * 2;
  dnc_node **b = calloc(nb, sizeof *b);
  if (!b)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (uint32_t i = 0; i < g->nbuckets; i++) {
    for (dnc_node *n = g->buckets[i], *next; n; n = next) {
      next = n->chain;
      n->chain = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  }
  free(g->buckets);
  g->buckets = b;
  g->nbuckets = nb;
}

/* Bitwise equality of constants: -0.0 and 0.0 are different nodes, and a
 * NaN constant equals itself. */
static dnc_node *intern(dnc_dag *g, int op, double value, int param,
                        dnc_node *const *args, int n)
{
  uint32_t h = node_hash(op, value, param, args, n);
  for (dnc_node *e = g->buckets[h & (g->nbuckets - 1)]; e; e = e->chain) {
    if (e->hash != h || e->op != op || e->nargs != n || e->param != param ||
        bits(e->value) != bits(value))
      continue;
    int same = 1;
    for (int i = 0; i < n; i++)
      same &= e->arg[i] == args[i];
    if (same)
      return e;
  }
  if (g->count >= g->limit) {
    g->over = 1;
    if (!g->placeholder) {
      uint32_t limit = g->limit;
      g->limit = UINT32_MAX;
      g->placeholder = dnc_const(g, NAN);
      g->limit = limit;
    }
    return g->placeholder;
  }
  dnc_node *e = dnc_arena_alloc(g->arena, sizeof *e);
  e->id = g->count;
  e->op = (uint16_t)op;
  e->nargs = (uint16_t)n;
  e->hash = h;
  e->value = value;
  e->param = param;
  uint32_t depth = 0;
  for (int i = 0; i < n; i++) {
    e->arg[i] = args[i];
    if (args[i]->depth > depth)
      depth = args[i]->depth;
  }
  e->depth = depth + 1;
  if (e->depth > DNC_MAX_DAG_DEPTH)
    g->too_deep = 1;
  if (g->count == g->cap) {
    g->cap *= 2;
    dnc_node **nv = realloc(g->nodes, sizeof *nv * g->cap);
    if (!nv)
      dnc_die(__FILE__, __LINE__, "out of memory");
    g->nodes = nv;
  }
  g->nodes[g->count++] = e;
  e->chain = g->buckets[h & (g->nbuckets - 1)];
  g->buckets[h & (g->nbuckets - 1)] = e;
  if (g->count > g->nbuckets)
    grow(g);
  return e;
}

dnc_node *dnc_const(dnc_dag *g, double v)
{
  return intern(g, OP_CONST, v, -1, NULL, 0);
}

dnc_node *dnc_input(dnc_dag *g)
{
  return intern(g, OP_INPUT, 0.0, -1, NULL, 0);
}

dnc_node *dnc_param(dnc_dag *g, int k)
{
  return intern(g, OP_PARAM, 0.0, k, NULL, 0);
}

dnc_node *dnc_node_op(dnc_dag *g, int op, dnc_node *a, dnc_node *b, dnc_node *c)
{
  DNC_ASSERT(op > OP_PARAM && op < OP__COUNT);
  int n = dnc_ops[op].arity;
  dnc_node *args[3] = {a, b, c};
  for (int i = 0; i < n; i++)
    DNC_ASSERT(args[i] != NULL);
  /* -(c) is an exact sign flip, NaN and zeros included */
  if (op == OP_NEG && a->op == OP_CONST)
    return dnc_const(g, -a->value);
  return intern(g, op, 0.0, -1, args, n);
}

/* match[a->id]: the node of b's DAG that a is being or has been compared
 * with. Nodes are hash-consed, so distinct nodes of b's DAG differ and a can
 * equal at most one of them; a pair seen again is not compared again. A
 * pair is recorded before its operands are compared: if they differ, the
 * whole comparison returns 0, so the record is never trusted wrongly. Each
 * node of a is thus compared once: linear in the DAG, not in the tree it
 * unfolds to (exponential in the depth for `let u = v + v` chains). */
static int node_equal(const dnc_node *a, const dnc_node *b,
                      const dnc_node **match)
{
  /* iterative over the first operands, recursive over the rest: the depth
   * of a DAG is bounded by DNC_MAX_DAG_DEPTH */
  for (;;) {
    if (match[a->id])
      return match[a->id] == b;
    match[a->id] = b;
    if (a->op != b->op || a->nargs != b->nargs || a->param != b->param ||
        bits(a->value) != bits(b->value))
      return 0;
    if (a->nargs == 0)
      return 1;
    for (int i = 1; i < a->nargs; i++)
      if (!node_equal(a->arg[i], b->arg[i], match))
        return 0;
    a = a->arg[0];
    b = b->arg[0];
  }
}

int dnc_node_equal(const dnc_node *a, const dnc_node *b)
{
  const dnc_node **match = calloc((size_t)a->id + 1, sizeof *match);
  if (!match)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int r = node_equal(a, b, match);
  free(match);
  return r;
}

dnc_node **dnc_schedule(const dnc_dag *g, dnc_arena *a, dnc_node *root,
                        uint32_t *n)
{
  uint32_t top = root->id;
  DNC_ASSERT(top < g->count && g->nodes[top] == root);
  unsigned char *mark = calloc((size_t)top + 1, 1);
  if (!mark)
    dnc_die(__FILE__, __LINE__, "out of memory");
  mark[top] = 1;
  uint32_t count = 0;
  for (uint32_t i = top + 1; i-- > 0;) {
    if (!mark[i])
      continue;
    count++;
    dnc_node *e = g->nodes[i];
    for (int k = 0; k < e->nargs; k++)
      mark[e->arg[k]->id] = 1;
  }
  dnc_node **s = dnc_arena_alloc(a, sizeof *s * count);
  uint32_t j = 0;
  for (uint32_t i = 0; i <= top; i++)
    if (mark[i])
      s[j++] = g->nodes[i];
  free(mark);
  *n = count;
  return s;
}
