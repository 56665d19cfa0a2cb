/*
 * print.c - the DAG printed back as dnc source.
 *
 * The output parses back to the same DAG: every node that is used more than
 * once becomes a `let` (so a derivative that shares the forward value
 * prints it once), operators get exactly the parentheses that precedence
 * and associativity require, and constants print as the shortest decimal
 * that reads back as the same double (or as pi, e, inf, nan).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

/* The fewest significant digits that read back as v, written like %g
 * (plain for exponents from -5 to 16, 1e-06 and 1e+17 beyond), so that 10
 * is "10" and not "1e+01". */
void dnc_format_double(char *buf, size_t n, double v)
{
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, n, "%.0f", v); /* whole numbers, often flags: fast */
    return;
  }
  /* the fewest digits that read back, found by bisection (a precision
   * that reads back stays so with more digits) */
  int lo = 1, hi = 17;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    snprintf(buf, n, "%.*e", mid - 1, v);
    if (strtod(buf, NULL) == v)
      hi = mid;
    else
      lo = mid + 1;
  }
  snprintf(buf, n, "%.*e", lo - 1, v);
  int ex = atoi(strchr(buf, 'e') + 1);
  if (ex >= -5 && ex <= 16)
    snprintf(buf, n, "%.*f", lo - 1 - ex > 0 ? lo - 1 - ex : 0, v);
  else
    snprintf(buf, n, "%.*g", lo, v);
}

void dnc_format_number(char *buf, size_t n, double v)
{
  if (isnan(v))
    snprintf(buf, n, "%snan", signbit(v) ? "-" : "");
  else if (isinf(v))
    snprintf(buf, n, "%sinf", v < 0 ? "-" : "");
  else
    dnc_format_double(buf, n, v);
}

typedef struct printer {
  FILE *out;
  const dnc_fn *f;
  const char **letname; /* by node id; NULL when printed inline */
  uint32_t maxid;
} printer;

static int name_taken(const dnc_fn *f, const char *name)
{
  if (!strcmp(f->input, name))
    return 1;
  return dnc_fn_param_index(f, name) >= 0;
}

/* The spelling of a constant, or NULL to print digits. A named constant is
 * used only where no parameter or input hides it. */
const char *dnc_const_name(const dnc_fn *f, double v)
{
  static const char *const names[] = {"pi", "e", "inf", "nan"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    double c;
    dnc_named_constant(names[i], &c);
    int same = isnan(c) ? isnan(v) : c == v;
    if (same && !name_taken(f, names[i]))
      return names[i];
  }
  return NULL;
}

static int node_prec(const printer *p, const dnc_node *e)
{
  if (p->letname[e->id])
    return DNC_PREC_ATOM;
  if (e->op == OP_CONST)
    return signbit(e->value) ? DNC_PREC_NEG : DNC_PREC_ATOM;
  return dnc_ops[e->op].prec;
}

static void pr(printer *p, const dnc_node *e, int need);

static void pr_const(printer *p, double v)
{
  if (signbit(v)) {
    fputc('-', p->out);
    v = -v;
  }
  const char *name = dnc_const_name(p->f, v);
  if (name) {
    fputs(name, p->out);
    return;
  }
  char buf[40];
  dnc_format_double(buf, sizeof buf, v);
  fputs(buf, p->out);
}

static void pr_inner(printer *p, const dnc_node *e)
{
  const dnc_opinfo *oi = &dnc_ops[e->op];
  FILE *o = p->out;
  switch (oi->form) {
  case FORM_LEAF:
    if (e->op == OP_CONST)
      pr_const(p, e->value);
    else if (e->op == OP_INPUT)
      fputs(p->f->input, o);
    else
      fputs(p->f->params[e->param].name, o);
    break;
  case FORM_PREFIX:
    if (e->op == OP_NEG) {
      fputc('-', o);
      pr(p, e->arg[0], DNC_PREC_POW);
    } else {
      fprintf(o, "%s ", oi->spell);
      pr(p, e->arg[0], oi->prec);
    }
    break;
  case FORM_INFIX: {
    int lneed = oi->prec, rneed = oi->prec + 1;
    if (e->op == OP_POW) { /* right associative */
      lneed = oi->prec + 1;
      rneed = oi->prec;
    } else if (oi->prec == DNC_PREC_CMP) { /* non-associative */
      lneed = oi->prec + 1;
    }
    pr(p, e->arg[0], lneed);
    if (e->op == OP_POW)
      fputc('^', o);
    else
      fprintf(o, " %s ", oi->spell);
    pr(p, e->arg[1], rneed);
    break;
  }
  case FORM_CALL:
    fprintf(o, "%s(", oi->spell);
    for (int i = 0; i < e->nargs; i++) {
      if (i)
        fputs(", ", o);
      pr(p, e->arg[i], 0);
    }
    fputc(')', o);
    break;
  case FORM_IFELSE:
    fputs("if ", o);
    pr(p, e->arg[0], DNC_PREC_OR);
    fputs(" then ", o);
    pr(p, e->arg[1], DNC_PREC_OR);
    fputs(" else ", o);
    pr(p, e->arg[2], DNC_PREC_IF);
    break;
  }
}

static void pr(printer *p, const dnc_node *e, int need)
{
  if (p->letname[e->id]) {
    fputs(p->letname[e->id], p->out);
    return;
  }
  int paren = node_prec(p, e) < need;
  if (paren)
    fputc('(', p->out);
  pr_inner(p, e);
  if (paren)
    fputc(')', p->out);
}

void dnc_print_fn(FILE *out, const dnc_fn *f)
{
  dnc_print_def(out, f, f->name, f->body);
}

void dnc_sharing_init(dnc_sharing *s, const dnc_node *root)
{
  dnc_sharing_init_by(s, root, NULL);
}

void dnc_sharing_init_by(dnc_sharing *s, const dnc_node *root,
                         int (*operands)(const dnc_node *e,
                                         const dnc_node **ops))
{
  dnc_sharing_init_roots(s, &root, 1, operands);
}

void dnc_sharing_init_roots(dnc_sharing *s, const dnc_node *const *roots,
                            int nroots,
                            int (*operands)(const dnc_node *e,
                                            const dnc_node **ops))
{
  /* one root: never bound (id + 1 == maxid). Several: each is used once
   * by the tuple they are returned in, and maxid is one past the last,
   * so that a root that another root uses too is bound like any node */
  uint32_t top = 0;
  for (int r = 0; r < nroots; r++)
    if (roots[r]->id > top)
      top = roots[r]->id;
  s->maxid = top + (nroots > 1 ? 2 : 1);
  s->byid = calloc(s->maxid, sizeof *s->byid);
  s->uses = calloc(s->maxid, sizeof *s->uses);
  s->name = calloc(s->maxid, sizeof *s->name);
  if (!s->byid || !s->uses || !s->name)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int r = 0; r < nroots; r++) {
    s->byid[roots[r]->id] = roots[r];
    if (nroots > 1)
      s->uses[roots[r]->id]++;
  }
  /* operands have smaller ids, so one pass down from the last root's id
   * sees every user of a node before the node */
  for (uint32_t i = s->maxid; i-- > 0;) {
    const dnc_node *e = s->byid[i];
    if (!e)
      continue;
    const dnc_node *ops[DNC_SHARING_MAX_OPS];
    int n = operands ? operands(e, ops) : 0;
    if (!operands || n < 0)
      for (n = 0; n < e->nargs; n++)
        ops[n] = e->arg[n];
    for (int k = 0; k < n; k++) {
      DNC_ASSERT(ops[k]->id < e->id);
      s->uses[ops[k]->id]++;
      s->byid[ops[k]->id] = ops[k];
    }
  }
}

int dnc_sharing_bound(const dnc_sharing *s, uint32_t id)
{
  const dnc_node *e = s->byid[id];
  return e && e->nargs > 0 && s->uses[id] >= 2 && id + 1 != s->maxid;
}

void dnc_sharing_free(dnc_sharing *s)
{
  free(s->byid);
  free(s->uses);
  free(s->name);
}

void dnc_print_locals(dnc_sharing *sh, dnc_arena *scratch, const dnc_fn *f,
                      const char *input,
                      void (*bind)(void *ctx, const char *name,
                                   const dnc_node *e),
                      void *ctx)
{
  dnc_print_locals_hook(sh, scratch, f, input, bind, NULL, ctx);
}

void dnc_print_locals_hook(dnc_sharing *sh, dnc_arena *scratch,
                           const dnc_fn *f, const char *input,
                           void (*bind)(void *ctx, const char *name,
                                        const dnc_node *e),
                           void (*before)(void *ctx, uint32_t id),
                           void *ctx)
{
  int counter = 0;
  for (uint32_t i = 0; i < sh->maxid; i++) {
    if (!dnc_sharing_bound(sh, i))
      continue;
    if (before)
      before(ctx, i);
    const char *tname;
    do
      tname = dnc_arena_printf(scratch, "t%d", ++counter);
    while (!strcmp(input, tname) || dnc_fn_param_index(f, tname) >= 0);
    bind(ctx, tname, sh->byid[i]);
    sh->name[i] = tname;
  }
  if (before)
    before(ctx, sh->maxid);
}

uint32_t dnc_node_count(const dnc_node *root)
{
  dnc_sharing s;
  dnc_sharing_init(&s, root);
  uint32_t count = 0;
  for (uint32_t i = 0; i < s.maxid; i++)
    count += s.byid[i] != NULL;
  dnc_sharing_free(&s);
  return count;
}

void dnc_print_stat(FILE *out, int format, const char *name, uint32_t nodes)
{
  static const char *const open[] = {"# ", "% ", "/* ", "# "};
  fprintf(out, "%s%s: %u node%s%s\n", open[format], name, nodes,
          nodes == 1 ? "" : "s", format == 2 ? " */" : "");
}

void dnc_print_signature(FILE *out, const dnc_fn *f, const char *name)
{
  fprintf(out, "%s(%s", name, f->input);
  for (int i = 0; i < f->nparams; i++) {
    char buf[40];
    dnc_format_double(buf, sizeof buf, f->params[i].def);
    fprintf(out, "%s%s%s = %s", i ? ", " : "; ", f->params[i].name,
            f->params[i].per_channel ? "[]" : "", buf);
  }
  fputc(')', out);
}

void dnc_print_def(FILE *out, const dnc_fn *f, const char *name,
                   const dnc_node *body)
{
  fputs("fn ", out);
  dnc_print_signature(out, f, name);

  dnc_sharing sh;
  dnc_sharing_init(&sh, body);
  dnc_arena *scratch = dnc_arena_new();
  printer p = {out, f, sh.name, sh.maxid};
  /* depth[id]: the syntactic depth the node prints with (a `let` name 1, a
   * negative constant 2, as `-c`). A DAG may be far deeper
   * (DNC_MAX_DAG_DEPTH) than one expression may nest (DNC_MAX_NEST), so a
   * node that would print too deep becomes a `let` as well. */
  uint32_t *depth = calloc(sh.maxid, sizeof *depth);
  if (!depth)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int n = 0, counter = 0;
  for (uint32_t i = 0; i < sh.maxid; i++) {
    const dnc_node *e = sh.byid[i];
    if (!e)
      continue;
    uint32_t d = e->op == OP_CONST && signbit(e->value) ? 2 : 1;
    for (int k = 0; k < e->nargs; k++) {
      uint32_t id = e->arg[k]->id;
      uint32_t dk = 1 + (sh.name[id] ? 1 : depth[id]);
      if (dk > d)
        d = dk;
    }
    depth[i] = d;
    if (!dnc_sharing_bound(&sh, i) &&
        (e->nargs == 0 || e == body || d < DNC_MAX_NEST))
      continue;
    const char *tname;
    do
      tname = dnc_arena_printf(scratch, "t%d", ++counter);
    while (name_taken(f, tname));
    if (n++ == 0)
      fputs(" {\n", out);
    fprintf(out, "  let %s = ", tname);
    pr(&p, sh.byid[i], 0);
    fputc('\n', out);
    sh.name[i] = tname;
  }
  if (n) {
    fputs("  ", out);
    pr(&p, body, 0);
    fputs("\n}\n", out);
  } else {
    fputs(" = ", out);
    pr(&p, body, 0);
    fputc('\n', out);
  }
  free(depth);
  dnc_sharing_free(&sh);
  dnc_arena_free(scratch);
}
