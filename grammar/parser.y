/*
 * parser.y - the dnc grammar: a pure bison parser over the reentrant scanner.
 *
 * No shift/reduce conflicts are tolerated (%expect 0): precedence and
 * associativity come from the declarations below, in the order of
 * DNC_PREC_* in compiler/ops.h.
 *
 * Errors: the parser reports a located message and goes on after an error
 * (an `item: error` production resynchronises at the next `fn`), so that one
 * run shows several mistakes. AST nodes come from the arena of the
 * compilation, so what error recovery drops needs no %destructor; a tree
 * parsed with errors is never used.
 */
%code requires {
#include "dnc_int.h"
typedef void *yyscan_t;
#define DNC_YYLTYPE dnc_loc
#define DNC_YYLTYPE_IS_DECLARED 1
/* a call's argument list while it is being parsed */
typedef struct dnc_arglist { dnc_ast **v; int n, cap; } dnc_arglist;
}

%code provides {
int dnc_yylex(DNC_YYSTYPE *lval, dnc_loc *lloc, yyscan_t scanner);
}

%code {
#include <string.h>
#define YYLLOC_DEFAULT(Cur, Rhs, N)                   \
  do {                                                \
    if (N) {                                          \
      (Cur).start = YYRHSLOC(Rhs, 1).start;           \
      (Cur).end = YYRHSLOC(Rhs, N).end;               \
    } else {                                          \
      (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end; \
    }                                                 \
  } while (0)

static void dnc_yyerror(dnc_loc *loc, yyscan_t scanner, dnc_parse_state *ps,
                        const char *msg);
static void args_push(dnc_parse_state *ps, dnc_arglist *l, dnc_ast *e);
static dnc_ast_param *reverse_params(dnc_ast_param *l);
static dnc_ast_let *reverse_lets(dnc_ast_let *l);
static dnc_named_arg *reverse_named(dnc_named_arg *l);
static dnc_ast_fn *make_fn(dnc_parse_state *ps, dnc_loc loc, char *name,
                           dnc_loc name_loc, char *input, dnc_loc input_loc,
                           dnc_ast_param *params, dnc_ast_let *lets,
                           dnc_ast *body);
#define BIN(op, l, a, b) dnc_ast_op(ps, l, op, 2, a, b, NULL)
}

%define api.pure full
%define api.prefix {dnc_yy}
%define parse.error custom
/* lookahead correction: "expected ..." lists every token that could follow,
 * not only those left after default reductions */
%define parse.lac full
%locations
%lex-param {yyscan_t scanner}
%parse-param {yyscan_t scanner} {dnc_parse_state *ps}
%expect 0
%initial-action { @$ = (dnc_loc){0, 0}; }

%union {
  double num;
  char *str;
  dnc_ast *ast;
  dnc_ast_param *param;
  dnc_ast_let *let;
  dnc_named_arg *named;
  dnc_arglist args;
}

%token END 0 "end of file"
%token FN "'fn'" LET "'let'" IF "'if'" THEN "'then'" ELSE "'else'"
%token AND "'and'" OR "'or'" NOT "'not'"
%token LE "'<='" GE "'>='" EQ "'=='" NE "'!='"
%token <str> IDENT "name"
%token <num> NUMBER "number"

%type <ast> expr primary
%type <param> params_opt param_list param
%type <let> lets
%type <named> named_list named
%type <args> expr_list

%precedence IF_ELSE
%left OR
%left AND
%precedence NOT
%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%left '*' '/'
%precedence NEG
%right '^'

%%

/* file = { fndef } */
file:
  %empty
| file item
;

item:
  fndef
| error
;

/* fndef = "fn" name "(" input [ ";" params ] ")" ( "=" expr | block ) */
fndef:
  FN IDENT '(' IDENT params_opt ')' '=' expr {
    make_fn(ps, @$, $2, @2, $4, @4, $5, NULL, $8);
  }
| FN IDENT '(' IDENT params_opt ')' '{' semis_opt lets expr semis_opt '}' {
    make_fn(ps, @$, $2, @2, $4, @4, $5, $9, $10);
  }
;

params_opt:
  %empty { $$ = NULL; }
| ';' param_list { $$ = $2; }
;

param_list:
  param { $$ = $1; }
| param_list ',' param { $3->next = $1; $$ = $3; } /* reversed: make_fn */
;

/* param = name [ "[" "]" ] [ "=" expr ] ; a missing default is a sema error */
param:
  IDENT '=' expr { $$ = dnc_arena_alloc(ps->arena, sizeof *$$);
                   $$->name = $1; $$->loc = @1; $$->def = $3; }
| IDENT '[' ']' '=' expr { $$ = dnc_arena_alloc(ps->arena, sizeof *$$);
                   $$->name = $1; $$->loc = @1; $$->def = $5;
                   $$->per_channel = 1; }
| IDENT { $$ = dnc_arena_alloc(ps->arena, sizeof *$$);
          $$->name = $1; $$->loc = @1; }
| IDENT '[' ']' { $$ = dnc_arena_alloc(ps->arena, sizeof *$$);
          $$->name = $1; $$->loc = @1; $$->per_channel = 1; }
;

/* block = "{" { "let" name "=" expr sep } expr "}" */
lets:
  %empty { $$ = NULL; }
| lets LET IDENT '=' expr semis {
    dnc_ast_let *l = dnc_arena_alloc(ps->arena, sizeof *l);
    l->name = $3;
    l->loc = @3;
    l->value = $5;
    l->next = $1; /* reversed, as the other lists: make_fn */
    $$ = l;
  }
;

semis: ';' | semis ';' ;
semis_opt: %empty | semis ;

expr:
  primary
| '-' expr %prec NEG        { $$ = dnc_ast_op(ps, @$, OP_NEG, 1, $2, NULL, NULL); }
| NOT expr                  { $$ = dnc_ast_op(ps, @$, OP_NOT, 1, $2, NULL, NULL); }
| expr '+' expr             { $$ = BIN(OP_ADD, @$, $1, $3); }
| expr '-' expr             { $$ = BIN(OP_SUB, @$, $1, $3); }
| expr '*' expr             { $$ = BIN(OP_MUL, @$, $1, $3); }
| expr '/' expr             { $$ = BIN(OP_DIV, @$, $1, $3); }
| expr '^' expr             { $$ = BIN(OP_POW, @$, $1, $3); }
| expr '<' expr             { $$ = BIN(OP_LT, @$, $1, $3); }
| expr LE expr              { $$ = BIN(OP_LE, @$, $1, $3); }
| expr '>' expr             { $$ = BIN(OP_GT, @$, $1, $3); }
| expr GE expr              { $$ = BIN(OP_GE, @$, $1, $3); }
| expr EQ expr              { $$ = BIN(OP_EQ, @$, $1, $3); }
| expr NE expr              { $$ = BIN(OP_NE, @$, $1, $3); }
| expr AND expr             { $$ = BIN(OP_AND, @$, $1, $3); }
| expr OR expr              { $$ = BIN(OP_OR, @$, $1, $3); }
| IF expr THEN expr ELSE expr %prec IF_ELSE {
    $$ = dnc_ast_op(ps, @$, OP_SELECT, 3, $2, $4, $6);
  }
;

/* primary = number | name | name "(" [ args [ ";" named ] ] ")" | "(" expr ")" */
primary:
  NUMBER                    { $$ = dnc_ast_num(ps, @$, $1); }
| IDENT                     { $$ = dnc_ast_name(ps, @$, $1); }
| IDENT '(' ')'             { $$ = dnc_ast_call(ps, @$, @1, $1, NULL, 0, NULL); }
| IDENT '(' expr_list ')'   { $$ = dnc_ast_call(ps, @$, @1, $1, $3.v, $3.n, NULL); }
| IDENT '(' expr_list ';' named_list ')' {
    $$ = dnc_ast_call(ps, @$, @1, $1, $3.v, $3.n, reverse_named($5));
  }
| '(' expr ')'              { $$ = $2; $$->loc = @$; }
;

expr_list:
  expr                      { $$ = (dnc_arglist){0}; args_push(ps, &$$, $1); }
| expr_list ',' expr        { $$ = $1; args_push(ps, &$$, $3); }
;

named_list:
  named                     { $$ = $1; }
| named_list ',' named { $3->next = $1; $$ = $3; } /* reversed */
;

named:
  IDENT '=' expr {
    $$ = dnc_arena_alloc(ps->arena, sizeof *$$);
    $$->name = $1;
    $$->loc = @1;
    $$->value = $3;
  }
;

%%

/* Lists are built latest first, each item put in front in O(1) (an
 * append walking to the tail made 100,000 lets quadratic), and turned
 * around once complete. */
#define REVERSE(type, list)                 \
  do {                                      \
    type *prev_ = NULL, *next_;             \
    for (; list; list = next_) {            \
      next_ = list->next;                   \
      list->next = prev_;                   \
      prev_ = list;                         \
    }                                       \
    list = prev_;                           \
  } while (0)

static dnc_ast_param *reverse_params(dnc_ast_param *l)
{
  REVERSE(dnc_ast_param, l);
  return l;
}

static dnc_ast_let *reverse_lets(dnc_ast_let *l)
{
  REVERSE(dnc_ast_let, l);
  return l;
}

static dnc_named_arg *reverse_named(dnc_named_arg *l)
{
  REVERSE(dnc_named_arg, l);
  return l;
}

static void args_push(dnc_parse_state *ps, dnc_arglist *l, dnc_ast *e)
{
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 4;
    dnc_ast **v = dnc_arena_alloc(ps->arena, sizeof *v * (size_t)cap);
    if (l->n)
      memcpy(v, l->v, sizeof *v * (size_t)l->n);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = e;
}

static dnc_ast_fn *make_fn(dnc_parse_state *ps, dnc_loc loc, char *name,
                           dnc_loc name_loc, char *input, dnc_loc input_loc,
                           dnc_ast_param *params, dnc_ast_let *lets,
                           dnc_ast *body)
{
  dnc_ast_fn *f = dnc_arena_alloc(ps->arena, sizeof *f);
  f->name = name;
  f->loc = loc;
  f->name_loc = name_loc;
  f->input = input;
  f->input_loc = input_loc;
  f->params = reverse_params(params);
  f->lets = reverse_lets(lets);
  f->body = body;
  if (ps->fns_tail)
    ps->fns_tail->next = f;
  else
    ps->fns = f;
  ps->fns_tail = f;
  return f;
}

static void dnc_yyerror(dnc_loc *loc, yyscan_t scanner, dnc_parse_state *ps,
                        const char *msg)
{
  (void)scanner;
  if (!strcmp(msg, "memory exhausted")) {
    /* bison's stack limit: only a pathologically nested expression */
    if (!ps->nest_reported)
      dnc_diag_add(ps->diags, DNC_SEV_ERROR, ps->src, *loc,
                   "expression nested too deeply");
    ps->nest_reported = 1;
    return;
  }
  dnc_diag_add(ps->diags, DNC_SEV_ERROR, ps->src, *loc, "%s", msg);
}

/* Single-character tokens are compared by their display name, "';'". */
static int sym_is(yysymbol_kind_t k, const char *name)
{
  return !strcmp(yysymbol_name(k), name);
}

/* The offset just past the last character before `at` that is neither
 * white space nor in a comment (0 at the start of the text); *nl is set
 * when a newline lies between. Comments run from the first '#' of a line
 * (the language has no strings). */
static uint32_t prev_char_end(const dnc_parse_state *ps, uint32_t at, int *nl)
{
  const char *t = ps->src->text;
  uint32_t i = at;
  *nl = 0;
  for (;;) {
    uint32_t ls = i;
    while (ls > 0 && t[ls - 1] != '\n')
      ls--;
    for (uint32_t k = ls; k < i; k++)
      if (t[k] == '#') {
        i = k;
        break;
      }
    while (i > ls && strchr(" \t\r\f\v", t[i - 1]))
      i--;
    if (i > ls || ls == 0)
      return i;
    *nl = 1;
    i = ls - 1; /* the newline before the line, which was blank */
  }
}

/* The name or keyword that ends at `end` (empty when none), at most n-1
 * characters of it; where it starts. */
static uint32_t word_before(const dnc_parse_state *ps, uint32_t end, char *w,
                        size_t n)
{
  const char *t = ps->src->text;
  uint32_t s = end;
  while (s > 0 && (t[s - 1] == '_' || (t[s - 1] >= 'a' && t[s - 1] <= 'z') ||
                   (t[s - 1] >= 'A' && t[s - 1] <= 'Z') ||
                   (t[s - 1] >= '0' && t[s - 1] <= '9')))
    s--;
  size_t l = end - s < n - 1 ? end - s : n - 1;
  memcpy(w, t + s, l);
  w[l] = 0;
  return s;
}

/* "unexpected X, expected A, B or C", plus a hint for common mistakes. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner,
                                 dnc_parse_state *ps)
{
  (void)scanner;
  if (ps->aborted)
    return 0; /* the scanner has reported why it stopped */
  /* A character the scanner reported and skipped stood for something:
   * the syntax error that follows in its definition is that one mistake
   * again ('x + @' is not also "unexpected end of file", 'x + @ + 1' not
   * "unexpected '+'"). Recovery resumes at the next 'fn', which clears
   * dropped, so a later definition's errors are still reported; an error
   * at that 'fn' (the definition before it unfinished) is the one
   * before's. */
  if (yypcontext_token(ctx) == YYSYMBOL_FN && !ps->fn_misused
          ? ps->dropped_before
          : ps->dropped)
    return 0;
  enum { MAXEXP = 8 };
  yysymbol_kind_t exp[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
  yysymbol_kind_t tok = yypcontext_token(ctx);
  const dnc_loc *loc = yypcontext_location(ctx);
  const char *text = ps->src->text;
  /* the ';' that a newline in a block stands for (zero-width, at it) */
  int eol = sym_is(tok, "';'") && loc->start == loc->end &&
            text[loc->start] == '\n';
  int want_else = 0, want_expr = 0, want_rbrace = 0;
  for (int i = 0; i < n; i++) {
    want_else |= exp[i] == YYSYMBOL_ELSE;
    want_expr |= exp[i] == YYSYMBOL_IDENT;
    want_rbrace |= sym_is(exp[i], "'}'");
  }
  char buf[512];
  size_t len = 0;
  if (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_NUMBER) {
    size_t tl = loc->end - loc->start;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "unexpected %s '%.*s'",
                            yysymbol_name(tok), tl > 40 ? 40 : (int)tl,
                            text + loc->start);
  } else {
    len += (size_t)snprintf(buf + len, sizeof buf - len, "unexpected %s",
                            eol ? "end of line" : yysymbol_name(tok));
  }
  if (n > 0 && n < MAXEXP) {
    for (int i = 0; i < n && len < sizeof buf; i++)
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
                              i == 0 ? ", expected " : i == n - 1 ? " or " : ", ",
                              yysymbol_name(exp[i]));
  }
  dnc_diag_add(ps->diags, DNC_SEV_ERROR, ps->src, *loc, "%s", buf);

  /* what comes before the unexpected token */
  int nl, nl2;
  char word[64];
  uint32_t pe = prev_char_end(ps, loc->start, &nl);
  char pc = pe > 0 ? text[pe - 1] : 0;
  uint32_t ws = word_before(ps, pe, word, sizeof word);
  uint32_t pe2 = prev_char_end(ps, ws, &nl2);
  char pc2 = pe2 > 0 ? text[pe2 - 1] : 0;

  if (sym_is(tok, "'<'") || sym_is(tok, "'>'") || tok == YYSYMBOL_LE ||
      tok == YYSYMBOL_GE || tok == YYSYMBOL_EQ || tok == YYSYMBOL_NE)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "comparisons do not chain: write 'a < b and b < c'");
  else if (sym_is(tok, "','") && ps->in_header)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "parameters follow the input after ';', as in "
                 "'fn f(x; a = 1, b = 2)'");
  else if ((tok == YYSYMBOL_IDENT || tok == YYSYMBOL_NUMBER ||
            sym_is(tok, "'('")) && ps->prev_ends_expr &&
           !strcmp(word, "return") && !nl)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "there is no 'return': the value of a block is the "
                 "expression after its 'let's");
  else if ((tok == YYSYMBOL_IDENT || tok == YYSYMBOL_NUMBER ||
            sym_is(tok, "'('")) && ps->prev_ends_expr)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "an operator may be missing before this; a product is "
                 "written with '*'");
  else if (tok == YYSYMBOL_FN && ps->fn_misused)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "'fn' is a keyword: it cannot name a parameter or a "
                 "binding");
  else if (sym_is(tok, "';'") && !eol && ps->brace_depth == 0 &&
           ps->paren_depth == 0 && !ps->in_header)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "definitions are separated by new lines; ';' separates "
                 "the statements of a block '{ ... }'");
  else if ((tok == YYSYMBOL_YYEOF && ps->paren_depth > 0) ||
           (tok == YYSYMBOL_FN && ps->paren_cut))
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, ps->open_paren,
                 "the parenthesis opened here is not closed");
  else if (sym_is(tok, "'-'") && nl && ps->brace_depth > 0)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "in a block, a line that starts with '-' starts a new "
                 "statement; to continue a subtraction, end the line "
                 "before with '-', or put the expression in parentheses");
  else if (tok == YYSYMBOL_LET && ps->brace_depth > 0 && pe > 0 &&
           want_rbrace) {
    /* a let after the block's value: often a line starting with '-' that
     * was meant to continue the let before it */
    uint32_t k = pe - 1;
    while (k > 0 && text[k - 1] != '\n')
      k--;
    while (text[k] == ' ' || text[k] == '\t')
      k++;
    if (text[k] == '-' && k > 0)
      dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, (dnc_loc){k, k + 1},
                   "this line starts with '-', so it is not part of the "
                   "'let' before it but a new statement, the block's value; "
                   "to continue a subtraction, end the line before with '-', "
                   "or put the expression in parentheses");
    else
      dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                   "the value of a block is its last statement: every "
                   "'let' comes before it");
  } else if (want_else)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "'if ... then ...' needs an 'else': write 'if c then a "
                 "else b'");
  else if ((tok == YYSYMBOL_YYEOF && ps->brace_depth > 0) ||
           (tok == YYSYMBOL_FN && ps->brace_cut))
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, ps->open_brace,
                 "the block opened here is not closed");
  else if (sym_is(tok, "'}'") && want_expr && !ps->in_header &&
           (pc == ';' || pc == '{' || (nl && (pc == ')' || word[0] ||
                                              (pc >= '0' && pc <= '9') ||
                                              pc == '.'))))
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "a block ends with an expression, its value, after its "
                 "'let's");
  else if (sym_is(tok, "'}'") && ps->in_let && !nl && !ps->in_header &&
           ps->prev_ends_expr && ps->paren_depth == 0)
    /* fn f(x) { let a = 1 }: the let's line goes on to the '}' */
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "a block ends with an expression, its value, after its "
                 "'let's");
  else if (sym_is(tok, "'='") && ps->in_header && ps->paren_depth > 0)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "parameters follow the input after ';', as in "
                 "'fn f(x; a = 1, b = 2)'");
  else if (sym_is(tok, "'='") && !ps->prev_ends_expr)
    ; /* after an operator or a keyword: no guess */
  else if (sym_is(tok, "'='") && word[0] && word[0] > '9' &&
           (pc2 == '{' || pc2 == ';' || (nl2 && ps->brace_depth > 0)) &&
           ps->paren_depth == 0)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "a binding is written 'let %s = ...'", word);
  else if (sym_is(tok, "'='") && word[0] && word[0] > '9' &&
           (pc2 == ',' || pc2 == '(') && ps->paren_depth > 0)
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "named arguments come after the input and a ';', not a "
                 "',': '(x; %s = ...)'", word);
  else if (sym_is(tok, "'='"))
    dnc_diag_add(ps->diags, DNC_SEV_NOTE, ps->src, *loc,
                 "equality is tested with '=='");
  return 0;
}
