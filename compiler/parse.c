/*
 * parse.c - AST construction and the parse driver over the generated
 * scanner (build/lexer.c) and parser (build/parser.c).
 */
#include <string.h>

#include "dnc_int.h"
#include "parser.h"
#include "lexer.h"

static dnc_ast *ast_new(dnc_parse_state *ps, dnc_ast_kind kind, dnc_loc loc)
{
  dnc_ast *e = dnc_arena_alloc(ps->arena, sizeof *e);
  e->kind = kind;
  e->loc = loc;
  e->depth = 1;
  return e;
}

/* Bounds the syntactic depth, so that every later recursive walk of a tree
 * is bounded too; reported once per source. */
static void set_depth(dnc_parse_state *ps, dnc_ast *e, int d)
{
  e->depth = d;
  if (d > DNC_MAX_NEST && !ps->nest_reported) {
    ps->nest_reported = 1;
    dnc_diag_add(ps->diags, DNC_SEV_ERROR, ps->src, e->loc,
                 "expression nested too deeply: more than %d levels",
                 DNC_MAX_NEST);
  }
}

dnc_ast *dnc_ast_num(dnc_parse_state *ps, dnc_loc loc, double v)
{
  dnc_ast *e = ast_new(ps, AST_NUM, loc);
  e->num = v;
  return e;
}

dnc_ast *dnc_ast_name(dnc_parse_state *ps, dnc_loc loc, const char *name)
{
  dnc_ast *e = ast_new(ps, AST_NAME, loc);
  e->name = name;
  return e;
}

dnc_ast *dnc_ast_op(dnc_parse_state *ps, dnc_loc loc, int op, int nargs,
                    dnc_ast *a, dnc_ast *b, dnc_ast *c)
{
  dnc_ast *e = ast_new(ps, AST_OP, loc);
  e->op = op;
  e->nargs = nargs;
  e->args = dnc_arena_alloc(ps->arena, sizeof *e->args * 3);
  e->args[0] = a;
  e->args[1] = b;
  e->args[2] = c;
  int d = 0;
  for (int i = 0; i < nargs; i++)
    if (e->args[i]->depth > d)
      d = e->args[i]->depth;
  set_depth(ps, e, d + 1);
  return e;
}

dnc_ast *dnc_ast_call(dnc_parse_state *ps, dnc_loc loc, dnc_loc name_loc,
                      const char *name, dnc_ast **args, int nargs,
                      dnc_named_arg *named)
{
  dnc_ast *e = ast_new(ps, AST_CALL, loc);
  e->name = name;
  e->name_loc = name_loc;
  e->args = args;
  e->nargs = nargs;
  e->named = named;
  int d = 0;
  for (int i = 0; i < nargs; i++)
    if (args[i]->depth > d)
      d = args[i]->depth;
  for (dnc_named_arg *n = named; n; n = n->next)
    if (n->value->depth > d)
      d = n->value->depth;
  set_depth(ps, e, d + 1);
  return e;
}

dnc_ast_fn *dnc_parse(dnc_arena *a, dnc_diags *d, const dnc_source *src)
{
  dnc_parse_state ps;
  memset(&ps, 0, sizeof ps);
  ps.arena = a;
  ps.diags = d;
  ps.src = src;
  yyscan_t scanner;
  if (dnc_yylex_init_extra(&ps, &scanner))
    dnc_die(__FILE__, __LINE__, "cannot create the scanner");
  /* a UTF-8 byte order mark at the start (as some editors write) is not
   * scanned; locations stay offsets into the whole text */
  ps.off = (uint32_t)dnc_source_bom_len(src);
  YY_BUFFER_STATE buf = dnc_yy_scan_bytes(src->text + ps.off,
                                          (int)(src->len - ps.off), scanner);
  int errors_before = d->nerrors;
  int rc = dnc_yyparse(scanner, &ps);
  dnc_yy_delete_buffer(buf, scanner);
  dnc_yylex_destroy(scanner);
  if (rc != 0 && d->nerrors == errors_before)
    dnc_diag_add(d, DNC_SEV_ERROR, src, DNC_NOLOC, "cannot parse this file");
  return ps.fns;
}
