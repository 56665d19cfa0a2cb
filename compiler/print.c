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

void dnc_format_double(char *buf, size_t n, double v)
{
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
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
static const char *const_name(const dnc_fn *f, double v)
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
  const char *name = const_name(p->f, v);
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
  fprintf(out, "fn %s(%s", f->name, f->input);
  for (int i = 0; i < f->nparams; i++) {
    char buf[40];
    dnc_format_double(buf, sizeof buf, f->params[i].def);
    fprintf(out, "%s%s%s = %s", i ? ", " : "; ", f->params[i].name,
            f->params[i].per_channel ? "[]" : "", buf);
  }
  fputc(')', out);

  /* count the uses of each node reachable from the body: operands have
   * smaller ids, so one pass down from the root's id sees every user of a
   * node before the node */
  dnc_arena *scratch = dnc_arena_new();
  uint32_t n;
  const dnc_node *root = f->body;
  uint32_t maxid = root->id + 1;
  uint32_t *uses = calloc(maxid, sizeof *uses);
  const dnc_node **byid = calloc(maxid, sizeof *byid);
  if (!uses || !byid)
    dnc_die(__FILE__, __LINE__, "out of memory");
  byid[root->id] = root;
  for (uint32_t i = maxid; i-- > 0;) {
    const dnc_node *e = byid[i];
    if (!e)
      continue;
    for (int k = 0; k < e->nargs; k++) {
      uses[e->arg[k]->id]++;
      byid[e->arg[k]->id] = e->arg[k];
    }
  }
  printer p = {out, f, calloc(maxid, sizeof(char *)), maxid};
  if (!p.letname)
    dnc_die(__FILE__, __LINE__, "out of memory");
  n = 0;
  int counter = 0;
  for (uint32_t i = 0; i < maxid; i++) {
    const dnc_node *e = byid[i];
    if (!e || e->nargs == 0 || uses[i] < 2 || e == root)
      continue;
    const char *name;
    do
      name = dnc_arena_printf(scratch, "t%d", ++counter);
    while (name_taken(f, name));
    if (n++ == 0)
      fputs(" {\n", out);
    fprintf(out, "  let %s = ", name);
    pr(&p, e, 0);
    fputc('\n', out);
    p.letname[i] = name;
  }
  if (n) {
    fputs("  ", out);
    pr(&p, root, 0);
    fputs("\n}\n", out);
  } else {
    fputs(" = ", out);
    pr(&p, root, 0);
    fputc('\n', out);
  }
  free(uses);
  free(byid);
  free(p.letname);
  dnc_arena_free(scratch);
}
