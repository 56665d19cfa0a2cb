/*
 * sema.c - semantic checks, and lowering of each definition to one DAG.
 *
 * Passes, each over all definitions:
 *   1. names: duplicate functions, names of built-ins, parameters (duplicate,
 *      named like the input, missing or non-constant default);
 *   2. recursion: the call graph must be acyclic; a cycle is reported once,
 *      naming it (f -> g -> f);
 *   3. lowering: `let` and calls to other fns are resolved away, types
 *      (number or condition) are checked, and unused parameters and lets and
 *      shadowing lets are warned about.
 * A called fn's body is lowered again at every call with its input bound to
 * the argument and its parameters to the named arguments or their defaults;
 * its diagnostics are reported once, when it is lowered as itself.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

typedef struct fninfo {
  dnc_ast_fn *ast;
  unsigned char *dup; /* dup[i]: parameter i repeats an earlier name */
  const dnc_source *src;
  int nparams;
  dnc_ast_param **params;
  double *defaults;
  int color; /* recursion DFS: 0 white, 1 on the stack, 2 done */
  int in_cycle;
  int height; /* the longest chain of calls below it (0: it calls no fn) */
} fninfo;

typedef struct binding {
  const char *name;
  dnc_node *node; /* NULL: its value had an error */
  dnc_loc loc;
  enum { B_INPUT, B_PARAM, B_LET } kind;
  int used;
  struct binding *next;
} binding;

typedef struct scope {
  fninfo *fi;
  binding *lets; /* latest first */
  binding *params;
  binding input;
  /* every name in scope, to its binding (a let over a parameter over the
   * input; the latest let of a name): open addressing, built by
   * lower_body, so a lookup is O(1) however many lets came before (a
   * walk of the lets made 20,000 lets quadratic) */
  binding **names;
  uint32_t ncap, nnames;
} scope;

typedef struct sema {
  dnc_mod *m;
  fninfo *fns;
  int nfns;
  int *table; /* open addressing over fns by name; -1 empty */
  uint32_t tsize;
  const dnc_source *src; /* of the definition being reported on */
  int quiet;             /* > 0 while lowering an inlined call */
  int rec;               /* recursion depth of lower() */
  int calls;             /* inlined calls nested */
  int depth_reported;
  int calls_too_deep; /* set inside, reported at the outermost call */
  const char *cycle_callee; /* a recursive fn reached inside, likewise */
  struct memo *memo; /* inlined calls already lowered (see lower_user_call) */
  uint32_t memo_cap, memo_n;
} sema;

/* An inlined call's result, keyed by the callee and the nodes bound to its
 * input and parameters: nodes are hash-consed, so equal keys lower to the
 * same node, and each distinct call is lowered once. Work is then
 * proportional to the DAG, not to the tree of calls it unfolds to (a fn
 * that calls the previous one twice, 30 deep, was 2^30 lowerings). */
typedef struct memo {
  const fninfo *fi;
  dnc_node *arg;
  dnc_node **pv; /* fi->nparams nodes, defaults included */
  uint32_t hash;
  dnc_node *result;   /* NULL: an error (reported when fi is lowered alone) */
  const char *cycle;  /* the recursive fn it reached, if any */
} memo;

static const char *const constant_names[] = {"pi", "e", "inf", "nan"};

int dnc_named_constant(const char *name, double *v)
{
  if (!strcmp(name, "pi"))
    *v = 3.14159265358979323846;
  else if (!strcmp(name, "e"))
    *v = 2.71828182845904523536;
  else if (!strcmp(name, "inf"))
    *v = INFINITY;
  else if (!strcmp(name, "nan"))
    *v = NAN;
  else
    return 0;
  return 1;
}

int dnc_builtin_op(const char *name)
{
  for (int op = 0; op < OP__COUNT; op++)
    if (dnc_ops[op].form == FORM_CALL && !strcmp(dnc_ops[op].spell, name))
      return op;
  return -1;
}

static void err(sema *s, dnc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(sema *s, dnc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(sema *s, dnc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err(sema *s, dnc_loc loc, const char *fmt, ...)
{
  if (s->quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  dnc_diag_vadd(&s->m->diags, DNC_SEV_ERROR, s->src, loc, fmt, ap);
  va_end(ap);
}

static void warn(sema *s, dnc_loc loc, const char *fmt, ...)
{
  if (s->quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  dnc_diag_vadd(&s->m->diags, DNC_SEV_WARNING, s->src, loc, fmt, ap);
  va_end(ap);
}

static void note(sema *s, dnc_loc loc, const char *fmt, ...)
{
  if (s->quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  dnc_diag_vadd(&s->m->diags, DNC_SEV_NOTE, s->src, loc, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------ fn table */

static uint32_t str_hash(const char *p)
{
  uint32_t h = 2166136261u;
  for (; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  return h;
}

static int fn_lookup(const sema *s, const char *name)
{
  for (uint32_t i = str_hash(name) & (s->tsize - 1);; i = (i + 1) & (s->tsize - 1)) {
    int k = s->table[i];
    if (k < 0)
      return -1;
    if (!strcmp(s->fns[k].ast->name, name))
      return k;
  }
}

static void fn_insert(sema *s, int k)
{
  uint32_t i = str_hash(s->fns[k].ast->name) & (s->tsize - 1);
  while (s->table[i] >= 0)
    i = (i + 1) & (s->tsize - 1);
  s->table[i] = k;
}

/* What a name brought from NumPy, C or a paper is written as here; NULL
 * for any other name (the close-name suggestion is tried then). */
static const char *borrowed_spelling(const char *name)
{
  static const char *const table[][2] = {
      {"pow", "powers are written with '^', as in 'x ^ a'"},
      {"power", "powers are written with '^', as in 'x ^ a'"},
      {"powf", "powers are written with '^', as in 'x ^ a'"},
      {"ln", "the natural logarithm is 'log'"},
      {"where", "a choice is written 'if c then a else b'"},
      {"select", "a choice is written 'if c then a else b'"},
      {"ifelse", "a choice is written 'if c then a else b'"},
      {"arctan", "did you mean 'atan'?"},
      {"arcsinh", "did you mean 'asinh'?"},
      {"fabs", "did you mean 'abs'?"},
      {"absolute", "did you mean 'abs'?"},
      {"square", "a square is written 'x ^ 2'"},
      {"sqr", "a square is written 'x ^ 2'"},
      {"relu", "ReLU is written 'max(x, 0)'"},
      {"clip", "did you mean 'clamp'?"},
      {"logistic", "did you mean 'sigmoid'?"},
      {"expit", "did you mean 'sigmoid'?"},
  };
  for (size_t i = 0; i < sizeof table / sizeof *table; i++)
    if (!strcmp(name, table[i][0]))
      return table[i][1];
  return NULL;
}

/* Suggests a close name among the user's fns and the built-ins, other
 * than the calling fn itself (which would be recursion). */
static void suggest_fn(sema *s, dnc_loc loc, const char *name, const char *self)
{
  int n = s->nfns + OP__COUNT;
  const char **c = malloc(sizeof *c * (size_t)n);
  if (!c)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int k = 0;
  for (int i = 0; i < s->nfns; i++)
    if (strcmp(s->fns[i].ast->name, self))
      c[k++] = s->fns[i].ast->name;
  for (int op = 0; op < OP__COUNT; op++)
    if (dnc_ops[op].form == FORM_CALL)
      c[k++] = dnc_ops[op].spell;
  const char *best = dnc_did_you_mean(name, c, k);
  if (best)
    note(s, loc, "did you mean '%s'?", best);
  free(c);
}

/* ------------------------------------------------ pass 1: names, defaults */

/* Evaluates a parameter's default; only numbers, named constants,
 * operators and built-ins may appear. Returns 0 after reporting. */
static int const_eval(sema *s, const char *pname, dnc_ast *e, long double *v,
                      int *is_bool)
{
  *is_bool = 0;
  switch (e->kind) {
  case AST_NUM:
    *v = e->num;
    return 1;
  case AST_NAME: {
    double c;
    if (dnc_named_constant(e->name, &c)) {
      *v = c;
      return 1;
    }
    err(s, e->loc, "the default of '%s' must be a constant; it cannot use '%s'",
        pname, e->name);
    return 0;
  }
  case AST_CALL:
  case AST_OP: {
    int op = e->kind == AST_OP ? e->op : dnc_builtin_op(e->name);
    if (op < 0) {
      err(s, e->loc, "the default of '%s' must be a constant; it cannot call "
                     "'%s'", pname, e->name);
      return 0;
    }
    if (e->kind == AST_CALL && e->named) {
      err(s, e->named->loc, "the built-in '%s' has no named parameters", e->name);
      return 0;
    }
    if (e->kind == AST_CALL && e->nargs != dnc_ops[op].arity) {
      int ar = dnc_ops[op].arity;
      err(s, e->loc, "'%s' takes %d argument%s, but %d %s given", e->name, ar,
          ar == 1 ? "" : "s", e->nargs, e->nargs == 1 ? "is" : "are");
      return 0;
    }
    long double a[3] = {0, 0, 0};
    for (int i = 0; i < e->nargs; i++) {
      int b;
      if (!const_eval(s, pname, e->args[i], &a[i], &b))
        return 0;
      int want_bool = op == OP_AND || op == OP_OR || op == OP_NOT ||
                      (op == OP_SELECT && i == 0);
      if (b != want_bool) {
        if (want_bool)
          err(s, e->args[i]->loc, "%s needs a condition (a comparison, 'and', "
                                  "'or' or 'not'), but this is a number",
              op == OP_SELECT ? "'if'" : op == OP_AND ? "'and'" :
              op == OP_OR ? "'or'" : "'not'");
        else {
          err(s, e->args[i]->loc, "expected a number, but this is a condition");
          note(s, e->args[i]->loc, "a condition becomes a number with 'if ... "
                                   "then 1 else 0'");
        }
        return 0;
      }
    }
    *v = dnc_eval_op(op, a[0], a[1], a[2]);
    *is_bool = dnc_ops[op].type == TYPE_BOOL;
    return 1;
  }
  }
  return 0;
}

/* A name of the input or a parameter that is also a constant's: pi and e
 * are hidden (with a warning); inf and nan have no other spelling, so the
 * printer could not write them, and are refused. `the` and `a` are how the
 * messages name the thing: "the input" / "parameter", "a parameter". */
static void check_constant_name(sema *s, const char *name, dnc_loc loc,
                                const char *the, const char *a)
{
  double c;
  if (!dnc_named_constant(name, &c))
    return;
  if (isfinite(c))
    warn(s, loc, "%s '%s' hides the constant '%s'", the, name, name);
  else
    err(s, loc, "%s cannot be named '%s', the constant", a, name);
}

static void check_params(sema *s, fninfo *fi)
{
  dnc_ast_fn *f = fi->ast;
  int n = 0;
  for (dnc_ast_param *p = f->params; p; p = p->next) {
    if (++n == DNC_MAX_PARAMS + 1)
      err(s, p->loc, "too many parameters: a function has at most %d",
          DNC_MAX_PARAMS);
  }
  /* past the limit, the fn is refused: the rest are not looked at (the
   * duplicate check is quadratic, and a 4 MB source holds 300,000) */
  if (n > DNC_MAX_PARAMS)
    n = DNC_MAX_PARAMS;
  fi->nparams = n;
  check_constant_name(s, f->input, f->input_loc, "the input", "the input");
  fi->params = dnc_arena_alloc(s->m->arena, sizeof *fi->params * (size_t)(n + 1));
  fi->dup = dnc_arena_alloc(s->m->arena, (size_t)n + 1);
  fi->defaults = dnc_arena_alloc(s->m->arena, sizeof *fi->defaults * (size_t)(n + 1));
  int i = 0;
  for (dnc_ast_param *p = f->params; p && i < n; p = p->next, i++) {
    fi->params[i] = p;
    if (!strcmp(p->name, f->input))
      err(s, p->loc, "parameter '%s' has the name of the input", p->name);
    for (int j = 0; j < i; j++)
      if (!strcmp(fi->params[j]->name, p->name)) {
        err(s, p->loc, "duplicate parameter '%s'", p->name);
        note(s, fi->params[j]->loc, "'%s' was declared here", p->name);
        fi->dup[i] = 1;
        break;
      }
    check_constant_name(s, p->name, p->loc, "parameter", "a parameter");
    if (!p->def) {
      err(s, p->loc, "parameter '%s' has no default value", p->name);
      note(s, p->loc, "give one, as in '%s%s = 1'", p->name,
           p->per_channel ? "[]" : "");
      continue;
    }
    long double v;
    int is_bool;
    if (!const_eval(s, p->name, p->def, &v, &is_bool))
      continue;
    if (is_bool) {
      err(s, p->def->loc, "the default of '%s' must be a number, not a "
                          "condition", p->name);
      continue;
    }
    double d = (double)v;
    if (!isfinite(d)) {
      err(s, p->def->loc, "the default of '%s' is not finite (it is %s)",
          p->name, isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
      continue;
    }
    fi->defaults[i] = d;
  }
}

/* --------------------------------------------------- pass 2: recursion */

typedef struct callsite {
  int callee;
  dnc_loc loc;
} callsite;

typedef struct calls {
  callsite *v;
  int n, cap;
} calls;

static void collect_calls(sema *s, dnc_ast *e, calls *out)
{
  if (!e)
    return;
  if (e->kind == AST_CALL) {
    int k = fn_lookup(s, e->name);
    if (k >= 0) {
      if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 8;
        out->v = realloc(out->v, sizeof *out->v * (size_t)out->cap);
        if (!out->v)
          dnc_die(__FILE__, __LINE__, "out of memory");
      }
      out->v[out->n++] = (callsite){k, e->name_loc};
    }
    for (dnc_named_arg *n = e->named; n; n = n->next)
      collect_calls(s, n->value, out);
  }
  if (e->kind == AST_CALL || e->kind == AST_OP)
    for (int i = 0; i < e->nargs; i++)
      collect_calls(s, e->args[i], out);
}

static calls fn_calls(sema *s, fninfo *fi)
{
  calls c = {0};
  for (dnc_ast_let *l = fi->ast->lets; l; l = l->next)
    collect_calls(s, l->value, &c);
  collect_calls(s, fi->ast->body, &c);
  return c;
}

/* Iterative DFS over the call graph (a chain of 10,000 fns must not
 * overflow the C stack). stack[] holds the path of fns being visited. */
typedef struct frame {
  int fn;
  calls c;
  int next;
} frame;

static void report_cycle(sema *s, frame *stack, int depth, int target,
                         dnc_loc at)
{
  int from = depth;
  while (stack[from].fn != target)
    from--;
  size_t len = 0;
  for (int i = from; i <= depth; i++)
    len += strlen(s->fns[stack[i].fn].ast->name) + 4;
  len += strlen(s->fns[target].ast->name) + 1;
  char *path = dnc_arena_alloc(s->m->arena, len);
  for (int i = from; i <= depth; i++) {
    strcat(path, s->fns[stack[i].fn].ast->name);
    strcat(path, " -> ");
    s->fns[stack[i].fn].in_cycle = 1;
  }
  strcat(path, s->fns[target].ast->name);
  s->src = s->fns[stack[depth].fn].src;
  err(s, at, "recursive call: %s", path);
  note(s, at, "calls are inlined, so recursion, direct or mutual, is not "
              "allowed");
}

static void check_recursion(sema *s)
{
  frame *stack = malloc(sizeof *stack * (size_t)(s->nfns + 1));
  if (!stack)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int root = 0; root < s->nfns; root++) {
    if (s->fns[root].color)
      continue;
    int depth = 0;
    stack[0] = (frame){root, fn_calls(s, &s->fns[root]), 0};
    s->fns[root].color = 1;
    while (depth >= 0) {
      frame *fr = &stack[depth];
      if (fr->next == fr->c.n) {
        fninfo *fi = &s->fns[fr->fn];
        for (int i = 0; i < fr->c.n; i++) {
          const fninfo *callee = &s->fns[fr->c.v[i].callee];
          if (callee->color == 2 && callee->height + 1 > fi->height)
            fi->height = callee->height + 1;
        }
        fi->color = 2;
        free(fr->c.v);
        depth--;
        continue;
      }
      callsite cs = fr->c.v[fr->next++];
      fninfo *callee = &s->fns[cs.callee];
      if (callee->color == 1) {
        report_cycle(s, stack, depth, cs.callee, cs.loc);
      } else if (callee->color == 0) {
        callee->color = 1;
        depth++;
        stack[depth] = (frame){cs.callee, fn_calls(s, callee), 0};
      }
    }
  }
  free(stack);
}

/* ------------------------------------------------------ pass 3: lowering */

static int type_of(const dnc_node *e)
{
  return dnc_ops[e->op].type;
}

static binding **name_slot(scope *sc, const char *name)
{
  uint32_t i = str_hash(name) & (sc->ncap - 1);
  while (sc->names[i] && strcmp(sc->names[i]->name, name))
    i = (i + 1) & (sc->ncap - 1);
  return &sc->names[i];
}

/* b into sc's names, in place of an earlier binding of its name */
static void name_bind(scope *sc, binding *b)
{
  if (2 * (sc->nnames + 1) > sc->ncap) {
    binding **old = sc->names;
    uint32_t n = sc->ncap;
    sc->ncap = n ? 2 * n : 64;
    sc->names = calloc(sc->ncap, sizeof *sc->names);
    if (!sc->names)
      dnc_die(__FILE__, __LINE__, "out of memory");
    for (uint32_t i = 0; i < n; i++)
      if (old[i])
        *name_slot(sc, old[i]->name) = old[i];
    free(old);
  }
  binding **slot = name_slot(sc, b->name);
  if (!*slot)
    sc->nnames++;
  *slot = b;
}

static binding *lookup(scope *sc, const char *name)
{
  return sc->ncap ? *name_slot(sc, name) : NULL;
}

static void suggest_name(sema *s, scope *sc, dnc_loc loc, const char *name)
{
  const char *c[64];
  int k = 0;
  for (binding *b = sc->lets; b && k < 56; b = b->next)
    c[k++] = b->name;
  for (binding *b = sc->params; b && k < 58; b = b->next)
    c[k++] = b->name;
  c[k++] = sc->input.name;
  for (size_t i = 0; i < sizeof constant_names / sizeof *constant_names; i++)
    c[k++] = constant_names[i];
  const char *best = dnc_did_you_mean(name, c, k);
  if (best)
    note(s, loc, "did you mean '%s'?", best);
}

static dnc_node *lower(sema *s, scope *sc, dnc_ast *e);
static dnc_node *lower_body(sema *s, scope *sc);

/* Lowers an operand that must have type `want`; NULL after an error. */
static dnc_node *operand(sema *s, scope *sc, dnc_ast *e, int want,
                         const char *what)
{
  dnc_node *n = lower(s, sc, e);
  if (!n || s->m->dag.over)
    return NULL;
  if (type_of(n) != want) {
    if (want == TYPE_NUM) {
      err(s, e->loc, "expected a number, but this is a condition");
      note(s, e->loc, "a condition becomes a number with 'if ... then 1 "
                      "else 0'");
    } else {
      err(s, e->loc, "%s needs a condition (a comparison, 'and', 'or' or "
                     "'not'), but this is a number", what);
    }
    return NULL;
  }
  return n;
}

static dnc_node *lower_op(sema *s, scope *sc, dnc_ast *e)
{
  dnc_node *a[3] = {NULL, NULL, NULL};
  int ok = 1;
  for (int i = 0; i < e->nargs; i++) {
    int want = TYPE_NUM;
    const char *what = "";
    if (e->op == OP_AND || e->op == OP_OR || e->op == OP_NOT) {
      want = TYPE_BOOL;
      what = e->op == OP_AND ? "'and'" : e->op == OP_OR ? "'or'" : "'not'";
    } else if (e->op == OP_SELECT && i == 0) {
      want = TYPE_BOOL;
      what = "'if'";
    }
    a[i] = operand(s, sc, e->args[i], want, what);
    ok &= a[i] != NULL;
  }
  if (!ok)
    return NULL;
  return dnc_node_op(&s->m->dag, e->op, a[0], a[1], a[2]);
}

static dnc_node *lower_builtin(sema *s, scope *sc, dnc_ast *e, int op)
{
  int arity = dnc_ops[op].arity;
  if (e->named) {
    err(s, e->named->loc, "the built-in '%s' has no named parameters", e->name);
    return NULL;
  }
  if (e->nargs != arity) {
    err(s, e->loc, "'%s' takes %d argument%s, but %d %s given", e->name, arity,
        arity == 1 ? "" : "s", e->nargs, e->nargs == 1 ? "is" : "are");
    return NULL;
  }
  dnc_node *a[3] = {NULL, NULL, NULL};
  int ok = 1;
  for (int i = 0; i < arity; i++) {
    a[i] = operand(s, sc, e->args[i], TYPE_NUM, "");
    ok &= a[i] != NULL;
  }
  return ok ? dnc_node_op(&s->m->dag, op, a[0], a[1], a[2]) : NULL;
}

static uint32_t memo_hash(const fninfo *fi, const dnc_node *arg,
                          dnc_node *const *pv)
{
  uint32_t h = 2166136261u ^ (uint32_t)(uintptr_t)fi;
  h = (h ^ arg->id) * 16777619u;
  for (int i = 0; i < fi->nparams; i++)
    h = (h ^ pv[i]->id) * 16777619u;
  return h ^ (h >> 15);
}

static memo *memo_find(sema *s, const fninfo *fi, dnc_node *arg,
                       dnc_node *const *pv, uint32_t h)
{
  if (!s->memo_cap)
    return NULL;
  for (uint32_t i = h & (s->memo_cap - 1);; i = (i + 1) & (s->memo_cap - 1)) {
    memo *e = &s->memo[i];
    if (!e->fi)
      return NULL;
    if (e->hash != h || e->fi != fi || e->arg != arg)
      continue;
    int same = 1;
    for (int k = 0; k < fi->nparams && same; k++)
      same = e->pv[k] == pv[k];
    if (same)
      return e;
  }
}

static void memo_add(sema *s, const memo *m)
{
  if (2 * (s->memo_n + 1) > s->memo_cap) {
    uint32_t cap = s->memo_cap ? 2 * s->memo_cap : 256;
    memo *t = calloc(cap, sizeof *t);
    if (!t)
      dnc_die(__FILE__, __LINE__, "out of memory");
    for (uint32_t i = 0; i < s->memo_cap; i++) {
      if (!s->memo[i].fi)
        continue;
      uint32_t j = s->memo[i].hash & (cap - 1);
      while (t[j].fi)
        j = (j + 1) & (cap - 1);
      t[j] = s->memo[i];
    }
    free(s->memo);
    s->memo = t;
    s->memo_cap = cap;
  }
  uint32_t j = m->hash & (s->memo_cap - 1);
  while (s->memo[j].fi)
    j = (j + 1) & (s->memo_cap - 1);
  s->memo[j] = *m;
  s->memo_n++;
}

/* Inlines a call of a user fn: its body, lowered with its input bound to
 * the argument and its parameters to the named arguments or defaults;
 * once per distinct call (struct memo). */
static dnc_node *lower_user_call(sema *s, scope *sc, dnc_ast *e, fninfo *callee)
{
  if (e->nargs != 1) {
    err(s, e->loc, "'%s' takes 1 argument, its input, but %d %s given",
        e->name, e->nargs, e->nargs == 1 ? "is" : "are");
    if (e->nargs > 1 && callee->nparams)
      note(s, e->loc, "parameters are passed by name after ';', as in "
                      "'%s(u; %s = 2)'", e->name, callee->params[0]->name);
    else if (e->nargs > 1)
      note(s, e->loc, "'%s' has no parameters", e->name);
    return NULL;
  }
  int ok = 1;
  dnc_node *arg = operand(s, sc, e->args[0], TYPE_NUM, "");
  ok &= arg != NULL;
  dnc_node **pv = dnc_arena_alloc(s->m->arena,
                                  sizeof *pv * (size_t)(callee->nparams + 1));
  for (dnc_named_arg *na = e->named; na; na = na->next) {
    int k = -1;
    for (int i = 0; i < callee->nparams; i++)
      if (!strcmp(callee->params[i]->name, na->name))
        k = i;
    dnc_node *v = operand(s, sc, na->value, TYPE_NUM, "");
    if (k < 0) {
      err(s, na->loc, "'%s' has no parameter '%s'", e->name, na->name);
      const char *c[64];
      int n = 0;
      for (int i = 0; i < callee->nparams && n < 64; i++)
        c[n++] = callee->params[i]->name;
      const char *best = dnc_did_you_mean(na->name, c, n);
      if (best)
        note(s, na->loc, "did you mean '%s'?", best);
      ok = 0;
    } else if (pv[k]) {
      err(s, na->loc, "parameter '%s' is given twice", na->name);
      ok = 0;
    }
    if (k >= 0)
      pv[k] = v;
    ok &= v != NULL;
  }
  if (!ok)
    return NULL;
  if (callee->in_cycle) {
    /* the cycle itself is reported where it closes; a caller outside it
     * learns why it cannot be compiled */
    if (s->quiet)
      s->cycle_callee = callee->ast->name;
    else
      err(s, e->name_loc, "'%s' is recursive, so this call cannot be "
                          "inlined", e->name);
    return NULL;
  }
  /* the depth of the calls below is known from the call graph: refuse
   * before inlining any of them */
  if (s->calls + callee->height >= DNC_MAX_CALL_DEPTH) {
    if (s->calls == 0)
      err(s, e->loc, "calls nested too deeply: more than %d levels of "
                     "inlining", DNC_MAX_CALL_DEPTH);
    else
      s->calls_too_deep = 1; /* not reached: the outer call was refused */
    return NULL;
  }
  for (int i = 0; i < callee->nparams; i++)
    if (!pv[i])
      pv[i] = dnc_const(&s->m->dag, callee->defaults[i]);
  if (s->m->dag.over || s->m->dag.too_deep)
    return NULL; /* pv[] may hold the DAG's placeholder */
  uint32_t h = memo_hash(callee, arg, pv);
  memo *hit = memo_find(s, callee, arg, pv, h);
  if (hit) {
    if (hit->cycle && s->quiet)
      s->cycle_callee = hit->cycle;
    else if (hit->cycle)
      err(s, e->name_loc, "'%s' calls the recursive function '%s', so this "
                          "call cannot be inlined", e->name, hit->cycle);
    return hit->result;
  }
  const char *cycle0 = s->cycle_callee;
  s->cycle_callee = NULL;
  int depth0 = s->depth_reported;
  scope inner = {0};
  inner.fi = callee;
  inner.input = (binding){callee->ast->input, arg, callee->ast->input_loc,
                          B_INPUT, 0, NULL};
  binding *tail = NULL;
  for (int i = 0; i < callee->nparams; i++) {
    binding *b = dnc_arena_alloc(s->m->arena, sizeof *b);
    b->name = callee->params[i]->name;
    b->kind = B_PARAM;
    b->loc = callee->params[i]->loc;
    b->node = pv[i];
    if (tail)
      tail->next = b;
    else
      inner.params = b;
    tail = b;
  }
  const dnc_source *saved = s->src;
  s->src = callee->src;
  s->quiet++;
  s->calls++;
  dnc_node *r = lower_body(s, &inner);
  s->calls--;
  s->quiet--;
  s->src = saved;
  /* a result cut short by a limit that depends on where the call is
   * (the lowering depth) or that stops the whole fn is not remembered */
  if (s->depth_reported == depth0 && !s->m->dag.over && !s->m->dag.too_deep)
    memo_add(s, &(memo){callee, arg, pv, h, r, s->cycle_callee});
  if (!s->cycle_callee)
    s->cycle_callee = cycle0;
  if (s->calls == 0) {
    /* inside, diagnostics were muted: say it here, where the user called */
    if (s->calls_too_deep)
      err(s, e->loc, "calls nested too deeply: more than %d levels of "
                     "inlining", DNC_MAX_CALL_DEPTH);
    else if (s->cycle_callee)
      err(s, e->name_loc, "'%s' calls the recursive function '%s', so this "
                          "call cannot be inlined", e->name, s->cycle_callee);
    s->calls_too_deep = 0;
    s->cycle_callee = NULL;
  }
  return r;
}

static dnc_node *lower_call(sema *s, scope *sc, dnc_ast *e)
{
  int op = dnc_builtin_op(e->name);
  if (op >= 0)
    return lower_builtin(s, sc, e, op);
  int k = fn_lookup(s, e->name);
  if (k >= 0)
    return lower_user_call(s, sc, e, &s->fns[k]);
  double c;
  if (lookup(sc, e->name) || dnc_named_constant(e->name, &c)) {
    err(s, e->name_loc, "'%s' is not a function", e->name);
  } else {
    err(s, e->name_loc, "unknown function '%s'", e->name);
    const char *hint = borrowed_spelling(e->name);
    if (hint)
      note(s, e->name_loc, "%s", hint);
    else
      suggest_fn(s, e->name_loc, e->name, sc->fi->ast->name);
  }
  /* the arguments' own mistakes are reported too, in the same run */
  for (int i = 0; i < e->nargs && !s->m->dag.over; i++)
    lower(s, sc, e->args[i]);
  for (dnc_named_arg *na = e->named; na && !s->m->dag.over; na = na->next)
    lower(s, sc, na->value);
  return NULL;
}

static dnc_node *lower_name(sema *s, scope *sc, dnc_ast *e)
{
  binding *b = lookup(sc, e->name);
  if (b) {
    b->used = 1;
    return b->node;
  }
  double c;
  if (dnc_named_constant(e->name, &c))
    return dnc_const(&s->m->dag, c);
  if (dnc_builtin_op(e->name) >= 0 || fn_lookup(s, e->name) >= 0) {
    err(s, e->loc, "'%s' is a function; call it as '%s(...)'", e->name,
        e->name);
    return NULL;
  }
  err(s, e->loc, "unknown name '%s'", e->name);
  if (!strcmp(e->name, "x") && sc->input.name && strcmp(sc->input.name, "x"))
    note(s, e->loc, "the input of '%s' is named '%s'", sc->fi->ast->name,
         sc->input.name);
  else
    suggest_name(s, sc, e->loc, e->name);
  return NULL;
}

static dnc_node *lower(sema *s, scope *sc, dnc_ast *e)
{
  /* past a limit the fn is refused: stop the work at once */
  if (s->depth_reported || s->m->dag.over || s->m->dag.too_deep)
    return NULL;
  if (s->rec >= DNC_MAX_LOWER_DEPTH) {
    if (!s->depth_reported) {
      s->depth_reported = 1;
      int q = s->quiet;
      s->quiet = 0;
      err(s, e->loc, "expression too deep once calls are inlined");
      s->quiet = q;
    }
    return NULL;
  }
  s->rec++;
  dnc_node *r = NULL;
  switch (e->kind) {
  case AST_NUM: r = dnc_const(&s->m->dag, e->num); break;
  case AST_NAME: r = lower_name(s, sc, e); break;
  case AST_OP: r = lower_op(s, sc, e); break;
  case AST_CALL: r = lower_call(s, sc, e); break;
  }
  s->rec--;
  return r;
}

static const char *shadow_what(scope *sc, const char *name, dnc_loc *where)
{
  static const char *const kinds[] = {"the input", "a parameter",
                                      "an earlier let"}; /* ORDER: B_* */
  binding *b = lookup(sc, name);
  if (b) {
    *where = b->loc;
    return kinds[b->kind];
  }
  double c;
  if (dnc_named_constant(name, &c)) {
    *where = DNC_NOLOC;
    return "the constant";
  }
  return NULL;
}

static dnc_node *lower_body_in(sema *s, scope *sc);

/* The fn of sc, lowered: its lets in order, then its body. */
static dnc_node *lower_body(sema *s, scope *sc)
{
  name_bind(sc, &sc->input);
  /* the first of duplicate parameters wins, as a walk of the list did */
  int n = 0;
  for (binding *b = sc->params; b; b = b->next)
    n++;
  binding **ps = calloc((size_t)n + 1, sizeof *ps);
  if (!ps)
    dnc_die(__FILE__, __LINE__, "out of memory");
  n = 0;
  for (binding *b = sc->params; b; b = b->next)
    ps[n++] = b;
  while (n-- > 0)
    name_bind(sc, ps[n]);
  free(ps);
  dnc_node *r = lower_body_in(s, sc);
  free(sc->names);
  sc->names = NULL;
  sc->ncap = sc->nnames = 0;
  return r;
}

/* Whether text[a..b) holds a newline outside comments and no ';'. */
static int newline_between(const char *text, uint32_t a, uint32_t b)
{
  int nl = 0, comment = 0;
  for (uint32_t i = a; i < b; i++) {
    if (text[i] == '\n')
      nl = 1, comment = 0;
    else if (text[i] == '#')
      comment = 1;
    else if (text[i] == ';' && !comment)
      return 0;
  }
  return nl;
}

static dnc_node *lower_body_in(sema *s, scope *sc)
{
  dnc_ast_fn *f = sc->fi->ast;
  int ok = 1;
  for (dnc_ast_let *l = f->lets; l; l = l->next) {
    dnc_loc where;
    const char *what = shadow_what(sc, l->name, &where);
    if (what) {
      warn(s, l->loc, "let '%s' shadows %s of that name", l->name, what);
      if (where.start != UINT32_MAX)
        note(s, where, "'%s' was declared here", l->name);
    }
    binding *b = dnc_arena_alloc(s->m->arena, sizeof *b);
    b->name = l->name;
    b->loc = l->loc;
    b->kind = B_LET;
    b->node = lower(s, sc, l->value);
    ok &= b->node != NULL;
    b->next = sc->lets;
    sc->lets = b;
    name_bind(sc, b);
  }
  dnc_node *body = lower(s, sc, f->body);
  if (!body || !ok)
    return NULL; /* a use may have been misspelled: no unused warnings */
  const dnc_ast_let *last = f->lets;
  while (last && last->next)
    last = last->next;
  for (binding *b = sc->lets; b; b = b->next)
    if (!b->used) {
      warn(s, b->loc, "'%s' is never used", b->name);
      /* `let a = 2 * x` then a line `- 1`: the block's value is -1, and
       * the let that was meant to continue onto it is unused */
      if (b == sc->lets && last && f->body->kind == AST_OP &&
          f->body->op == OP_NEG &&
          newline_between(s->src->text, last->value->loc.end,
                          f->body->loc.start))
        note(s, (dnc_loc){f->body->loc.start, f->body->loc.start + 1},
             "this line starts with '-', so it is a new statement, the "
             "block's value, not the continuation of '%s'; to continue a "
             "subtraction, end the line before with '-', or put the "
             "expression in parentheses", b->name);
    }
  if (type_of(body) != TYPE_NUM) {
    err(s, f->body->loc, "the value of '%s' must be a number, not a condition",
        f->name);
    note(s, f->body->loc, "a condition becomes a number with 'if ... then 1 "
                          "else 0'");
    return NULL;
  }
  return body;
}

static dnc_fn *lower_fn(sema *s, fninfo *fi)
{
  dnc_mod *m = s->m;
  scope sc = {0};
  sc.fi = fi;
  sc.input = (binding){fi->ast->input, dnc_input(&m->dag), fi->ast->input_loc,
                       B_INPUT, 0, NULL};
  binding *tail = NULL;
  for (int i = 0; i < fi->nparams; i++) {
    binding *b = dnc_arena_alloc(m->arena, sizeof *b);
    b->name = fi->params[i]->name;
    b->loc = fi->params[i]->loc;
    b->kind = B_PARAM;
    b->node = dnc_param(&m->dag, i);
    if (tail)
      tail->next = b;
    else
      sc.params = b;
    tail = b;
  }
  s->src = fi->src;
  m->dag.too_deep = 0;
  s->depth_reported = 0; /* once per function */
  int errors0 = m->diags.nerrors;
  uint32_t limit0 = dnc_dag_budget(&m->dag, DNC_MAX_FN_NODES);
  dnc_node *body = lower_body(s, &sc);
  /* the budget counts the nodes this fn made; nodes earlier fns made are
   * shared, so also count what it reaches: its size must not depend on the
   * fns before it (its printed form, built alone, must build) */
  int over = m->dag.over ||
             (body && dnc_node_count(body) + (uint32_t)fi->nparams + 1 >
                          DNC_MAX_FN_NODES);
  dnc_dag_budget_end(&m->dag, limit0);
  if (over) {
    err(s, fi->ast->loc, "'%s' is too large: once lets and calls are "
                         "resolved, it has more than %u nodes",
        fi->ast->name, DNC_MAX_FN_NODES);
    return NULL;
  }
  if (!body && m->diags.nerrors == errors0 && !m->dag.too_deep)
    err(s, fi->ast->name_loc, "'%s' could not be compiled", fi->ast->name);
  int k = 0;
  for (binding *b = sc.params; body && b; b = b->next, k++)
    if (!b->used && !fi->dup[k])
      warn(s, b->loc, "parameter '%s' is never used", b->name);
  if (m->dag.too_deep || (body && body->depth > DNC_MAX_DAG_DEPTH)) {
    err(s, fi->ast->loc, "'%s' is too deep: once lets and calls are "
                         "resolved, an operand chain is longer than %d",
        fi->ast->name, DNC_MAX_DAG_DEPTH);
    return NULL;
  }
  if (!body)
    return NULL;
  dnc_fn *f = dnc_arena_alloc(m->arena, sizeof *f);
  f->name = fi->ast->name;
  f->input = fi->ast->input;
  f->nparams = fi->nparams;
  f->params = dnc_arena_alloc(m->arena, sizeof *f->params * (size_t)(fi->nparams + 1));
  for (int i = 0; i < fi->nparams; i++) {
    f->params[i].name = fi->params[i]->name;
    f->params[i].def = fi->defaults[i];
    f->params[i].per_channel = fi->params[i]->per_channel;
  }
  f->body = body;
  f->src = fi->src;
  f->loc = fi->ast->loc;
  f->prog = dnc_prog_build(&m->dag, m->arena, body);
  return f;
}

int dnc_sema(dnc_mod *m, const dnc_parsed *parsed, int nparsed)
{
  int errors0 = m->diags.nerrors;
  sema s;
  memset(&s, 0, sizeof s);
  s.m = m;
  for (int i = 0; i < nparsed; i++)
    for (dnc_ast_fn *f = parsed[i].fns; f; f = f->next)
      s.nfns++;
  if (s.nfns == 0) {
    for (int i = 0; i < nparsed; i++)
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, parsed[i].src, DNC_NOLOC,
                   "no functions are defined (a definition reads "
                   "'fn name(x; p = 1) = ...')");
    return m->diags.nerrors - errors0;
  }
  s.fns = calloc((size_t)s.nfns, sizeof *s.fns);
  s.tsize = 16;
  while (s.tsize < 2u * (uint32_t)s.nfns)
    s.tsize *= 2;
  s.table = malloc(sizeof *s.table * s.tsize);
  if (!s.fns || !s.table)
    dnc_die(__FILE__, __LINE__, "out of memory");
  memset(s.table, 0xFF, sizeof *s.table * s.tsize);

  /* pass 1 */
  int n = 0;
  for (int i = 0; i < nparsed; i++) {
    for (dnc_ast_fn *f = parsed[i].fns; f; f = f->next) {
      s.src = parsed[i].src;
      if (dnc_builtin_op(f->name) >= 0) {
        err(&s, f->name_loc, "'%s' is a built-in function and cannot be "
                             "redefined", f->name);
        continue;
      }
      int prev = fn_lookup(&s, f->name);
      if (prev >= 0) {
        err(&s, f->name_loc, "duplicate function '%s'", f->name);
        s.src = s.fns[prev].src;
        note(&s, s.fns[prev].ast->name_loc, "'%s' was first defined here",
             f->name);
        continue;
      }
      fninfo *fi = &s.fns[n];
      fi->ast = f;
      fi->src = parsed[i].src;
      fn_insert(&s, n++);
      check_params(&s, fi);
    }
  }
  s.nfns = n;

  /* pass 2 */
  check_recursion(&s);

  /* pass 3 */
  m->fns = dnc_arena_alloc(m->arena, sizeof *m->fns * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    if (s.fns[i].in_cycle)
      continue;
    dnc_fn *f = lower_fn(&s, &s.fns[i]);
    if (f)
      m->fns[m->nfns++] = f;
  }
  free(s.fns);
  free(s.table);
  free(s.memo);
  return m->diags.nerrors - errors0;
}
