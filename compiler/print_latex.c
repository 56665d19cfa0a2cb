/*
 * print_latex.c - expressions as LaTeX, for papers and notebooks.
 *
 * Output is an `aligned` block: one line per shared subexpression
 * (t_{1} = ...), then `lhs &= body`. Greek parameter names become Greek
 * letters; `if` becomes a `cases` block.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

typedef struct lprinter {
  FILE *out;
  const dnc_fn *f;
  const dnc_sharing *sh;
} lprinter;

static const char *const greek[] = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau",
    "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta",
    "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"};

static void lname(FILE *o, const char *name)
{
  for (size_t i = 0; i < sizeof greek / sizeof *greek; i++)
    if (!strcmp(name, greek[i])) {
      fprintf(o, "\\%s", name);
      return;
    }
  if (strlen(name) == 1) {
    fputs(name[0] == '_' ? "\\_" : name, o);
    return;
  }
  fputs("\\mathit{", o);
  for (const char *p = name; *p; p++) {
    if (*p == '_')
      fputc('\\', o);
    fputc(*p, o);
  }
  fputc('}', o);
}

static void lnumber(FILE *o, double v)
{
  char buf[40];
  dnc_format_double(buf, sizeof buf, v);
  char *e = strchr(buf, 'e');
  if (!e) {
    fputs(buf, o);
    return;
  }
  *e = 0;
  int ex = atoi(e + 1);
  if (strcmp(buf, "1"))
    fprintf(o, "%s \\times ", buf);
  fprintf(o, "10^{%d}", ex);
}

static int lprec(const lprinter *p, const dnc_node *e)
{
  if (p->sh->name[e->id])
    return DNC_PREC_ATOM;
  if (e->op == OP_CONST)
    return signbit(e->value) ? DNC_PREC_NEG : DNC_PREC_ATOM;
  if (e->op == OP_DIV)
    return DNC_PREC_ATOM; /* \frac groups itself */
  return dnc_ops[e->op].prec;
}

static void lp(lprinter *p, const dnc_node *e, int need);

static void lcall(lprinter *p, const char *fn, const dnc_node *e)
{
  fprintf(p->out, "%s\\left(", fn);
  for (int i = 0; i < e->nargs; i++) {
    if (i)
      fputs(", ", p->out);
    lp(p, e->arg[i], 0);
  }
  fputs("\\right)", p->out);
}

static void linner(lprinter *p, const dnc_node *e)
{
  FILE *o = p->out;
  const dnc_node *const *a = (const dnc_node *const *)e->arg;
  switch (e->op) {
  case OP_CONST: {
    double v = e->value;
    if (signbit(v)) {
      fputc('-', o);
      v = -v;
    }
    const char *n = dnc_const_name(p->f, v);
    if (n && !strcmp(n, "pi"))
      fputs("\\pi", o);
    else if (n && !strcmp(n, "inf"))
      fputs("\\infty", o);
    else if (n && !strcmp(n, "nan"))
      fputs("\\mathrm{NaN}", o);
    else if (n)
      fputs(n, o);
    else
      lnumber(o, v);
    break;
  }
  case OP_INPUT: lname(o, p->f->input); break;
  case OP_PARAM: lname(o, p->f->params[e->param].name); break;
  case OP_NEG: fputc('-', o); lp(p, a[0], DNC_PREC_POW); break;
  case OP_ADD: lp(p, a[0], DNC_PREC_ADD); fputs(" + ", o); lp(p, a[1], DNC_PREC_ADD + 1); break;
  case OP_SUB: lp(p, a[0], DNC_PREC_ADD); fputs(" - ", o); lp(p, a[1], DNC_PREC_ADD + 1); break;
  case OP_MUL: lp(p, a[0], DNC_PREC_MUL); fputs(" \\cdot ", o); lp(p, a[1], DNC_PREC_MUL + 1); break;
  case OP_DIV:
    fputs("\\frac{", o);
    lp(p, a[0], 0);
    fputs("}{", o);
    lp(p, a[1], 0);
    fputc('}', o);
    break;
  case OP_POW:
    fputc('{', o);
    lp(p, a[0], DNC_PREC_ATOM);
    fputs("}^{", o);
    lp(p, a[1], 0);
    fputc('}', o);
    break;
  case OP_ABS: fputs("\\left|", o); lp(p, a[0], 0); fputs("\\right|", o); break;
  case OP_SQRT: fputs("\\sqrt{", o); lp(p, a[0], 0); fputc('}', o); break;
  case OP_RSQRT: fputs("\\frac{1}{\\sqrt{", o); lp(p, a[0], 0); fputs("}}", o); break;
  case OP_EXP: lcall(p, "\\exp", e); break;
  case OP_LOG: lcall(p, "\\log", e); break;
  case OP_TANH: lcall(p, "\\tanh", e); break;
  case OP_SINH: lcall(p, "\\sinh", e); break;
  case OP_COSH: lcall(p, "\\cosh", e); break;
  case OP_ATAN: lcall(p, "\\arctan", e); break;
  case OP_SIN: lcall(p, "\\sin", e); break;
  case OP_COS: lcall(p, "\\cos", e); break;
  case OP_MIN: lcall(p, "\\min", e); break;
  case OP_MAX: lcall(p, "\\max", e); break;
  case OP_SIGMOID: lcall(p, "\\sigma", e); break;
  case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE: {
    static const char *const rel[] = {"<", "\\le", ">", "\\ge", "=", "\\ne"};
    lp(p, a[0], DNC_PREC_CMP + 1);
    fprintf(o, " %s ", rel[e->op - OP_LT]);
    lp(p, a[1], DNC_PREC_CMP + 1);
    break;
  }
  case OP_AND: lp(p, a[0], DNC_PREC_AND); fputs(" \\land ", o); lp(p, a[1], DNC_PREC_AND + 1); break;
  case OP_OR: lp(p, a[0], DNC_PREC_OR); fputs(" \\lor ", o); lp(p, a[1], DNC_PREC_OR + 1); break;
  /* the operand in parentheses unless it is a name or a call: \lnot x
   * < c reads as (\lnot x) < c */
  case OP_NOT: fputs("\\lnot ", o); lp(p, a[0], DNC_PREC_ATOM); break;
  case OP_SELECT:
    fputs("\\begin{cases} ", o);
    lp(p, a[1], 0);
    fputs(" & \\text{if } ", o);
    lp(p, a[0], 0);
    fputs(" \\\\ ", o);
    lp(p, a[2], 0);
    fputs(" & \\text{otherwise} \\end{cases}", o);
    break;
  default: { /* the other built-ins as named operators */
    char fn[48];
    snprintf(fn, sizeof fn, "\\operatorname{%s}", dnc_ops[e->op].spell);
    lcall(p, fn, e);
  }
  }
}

static void lp(lprinter *p, const dnc_node *e, int need)
{
  if (p->sh->name[e->id]) {
    fputs(p->sh->name[e->id], p->out);
    return;
  }
  int paren = lprec(p, e) < need;
  if (paren)
    fputs("\\left(", p->out);
  linner(p, e);
  if (paren)
    fputs("\\right)", p->out);
}

/* \frac{\partial^{2} \operatorname{f}}{\partial x \, \partial \alpha}:
 * each variable once, with its count, in the order first applied */
static void lhs(FILE *o, const dnc_fn *f, const int *vars, int n)
{
  fputs("\\frac{\\partial", o);
  if (n > 1)
    fprintf(o, "^{%d}", n);
  fputs(" \\operatorname{", o);
  for (const char *c = f->name; *c; c++)
    fprintf(o, *c == '_' ? "\\_" : "%c", *c);
  fputs("}}{", o);
  for (int i = 0, first = 1; i < n; i++) {
    int seen = 0, count = 0;
    for (int j = 0; j < i; j++)
      seen |= vars[j] == vars[i];
    if (seen)
      continue;
    for (int j = i; j < n; j++)
      count += vars[j] == vars[i];
    fputs(first ? "\\partial " : " \\, \\partial ", o);
    lname(o, vars[i] == DNC_WRT_X ? f->input : f->params[vars[i]].name);
    if (count > 1)
      fprintf(o, "^{%d}", count);
    first = 0;
  }
  fputc('}', o);
}

void dnc_print_latex(FILE *out, const dnc_fn *f, const int *vars, int nvars,
                     const dnc_node *body)
{
  dnc_sharing sh;
  dnc_sharing_init(&sh, body);
  dnc_arena *scratch = dnc_arena_new();
  lprinter p = {out, f, &sh};
  fputs("\\begin{aligned}\n", out);
  int counter = 0;
  for (uint32_t i = 0; i < sh.maxid; i++) {
    if (!dnc_sharing_bound(&sh, i))
      continue;
    const char *name = dnc_arena_printf(scratch, "t_{%d}", ++counter);
    fprintf(out, "  %s &= ", name);
    lp(&p, sh.byid[i], 0);
    fputs(" \\\\\n", out);
    sh.name[i] = name;
  }
  fputs("  ", out);
  lhs(out, f, vars, nvars);
  fputs(" &= ", out);
  lp(&p, body, 0);
  fputs("\n\\end{aligned}\n", out);
  dnc_sharing_free(&sh);
  dnc_arena_free(scratch);
}
