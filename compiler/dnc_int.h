/*
 * dnc_int.h - the compiler's one internal header, a section per file.
 * codegen.h adds what only the LLVM-facing files share.
 *
 * The pipeline, in the order a module goes through it (module.c's
 * dnc_mod_build runs the first three; the API, runtime/api.c, and the
 * command line, cli/, run the rest on demand):
 *
 *   source --lexer.l/parser.y (parse.c)--> AST
 *          --sema.c--> expression DAG (expr.c: hash-consed; ops.h)
 *          --interp.c--> the reference interpreter's program (dnc_prog)
 *   DAG    --diff.c, simplify.c (dnc_derive)--> first derivatives, kept
 *          in the function; dspec.c for higher and mixed ones
 *   DAG and derivatives
 *          --> printers (print.c, print_latex.c, print_c.c, print_torch.c)
 *          --> fit.c (least squares), search.c/search_eval.c (search.h)
 *          --> codegen.c + vmath.c (LLVM IR) --> jit.c (ORC, kcache.c) or
 *              aot.c (a shared library, aotseal.c)
 */
#ifndef DNC_INT_H
#define DNC_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>

#include "dnc.h"
#include "ops.h"

/* Internal invariants die loudly with file and line; user errors never do. */
#define DNC_ASSERT(c) \
  ((c) ? (void)0 : dnc_die(__FILE__, __LINE__, "assertion failed: " #c))
_Noreturn void dnc_die(const char *file, int line, const char *msg);

/* Limits that turn hostile input into errors instead of crashes. */
#define DNC_MAX_SOURCE_BYTES (4u << 20) /* 4 MiB per source file */
#define DNC_MAX_NEST 1000               /* syntactic nesting of an expression */
#define DNC_MAX_LOWER_DEPTH 8000        /* AST levels walked, calls inlined */
#define DNC_MAX_CALL_DEPTH 64           /* inlined fn calls inside each other */
#define DNC_MAX_DAG_DEPTH 10000         /* longest operand chain in a DAG */
#define DNC_MAX_LITERAL 100             /* characters in a numeric literal */
#define DNC_MAX_ERRORS 50               /* then stop reporting */
#define DNC_MAX_PARAMS 64               /* parameters of one function */
#define DNC_MAX_DAG_NODES (1u << 21)    /* nodes of one module's DAG */
#define DNC_MAX_FN_NODES 100000u        /* new nodes lowering one fn */
#define DNC_MAX_DIFF_NODES 100000u      /* new nodes of one derivative */
#define DNC_MAX_KERNEL_NODES 5000u      /* f and its first derivatives, compiled */

/* ---------------------------------------------------------------- arena.c */

typedef struct dnc_arena dnc_arena;
dnc_arena *dnc_arena_new(void);
void dnc_arena_free(dnc_arena *a);
void *dnc_arena_alloc(dnc_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *dnc_arena_strndup(dnc_arena *a, const char *s, size_t n);
char *dnc_arena_strdup(dnc_arena *a, const char *s);
char *dnc_arena_printf(dnc_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ----------------------------------------------------------------- diag.c */

/* A location is a byte range into one source; it becomes line and column
 * only when a diagnostic is rendered. */
typedef struct dnc_loc {
  uint32_t start, end; /* byte offsets, end exclusive */
} dnc_loc;
/* A diagnostic about a whole file (cannot open it, too large). */
#define DNC_NOLOC ((dnc_loc){UINT32_MAX, UINT32_MAX})

typedef struct dnc_source {
  const char *name; /* file name as given, or "<string>" */
  const char *text; /* NUL-terminated copy; may contain NULs before len */
  size_t len;
  int from_stdin; /* read from standard input (name "<stdin>") */
} dnc_source;

typedef enum { DNC_SEV_ERROR, DNC_SEV_WARNING, DNC_SEV_NOTE } dnc_severity;

typedef struct dnc_diag {
  dnc_severity sev;
  const dnc_source *src; /* NULL: not tied to a source text */
  dnc_loc loc;
  int line, col; /* 1-based; 0 when src is NULL */
  char *msg;
  struct dnc_diag *next;
} dnc_diag;

typedef struct dnc_diags {
  dnc_arena *arena;
  dnc_diag *head, *tail;
  int nerrors, nwarnings;
  int suppressed; /* errors not recorded past DNC_MAX_ERRORS */
  /* where the last diagnostic's line and column were counted to, so that
   * diagnostics in source order cost one pass over the source in all */
  const struct dnc_source *lc_src;
  uint32_t lc_off;
  int lc_line, lc_col;
} dnc_diags;

void dnc_diag_add(dnc_diags *d, dnc_severity sev, const dnc_source *src,
                  dnc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void dnc_diag_vadd(dnc_diags *d, dnc_severity sev, const dnc_source *src,
                   dnc_loc loc, const char *fmt, va_list ap);
void dnc_loc_linecol(const dnc_source *src, uint32_t off, int *line, int *col);
/* gcc style: "file:line:col: error: msg", the source line, a caret. */
void dnc_diag_render(FILE *out, const dnc_diag *dg);
void dnc_diags_render(FILE *out, const dnc_diags *d);
/* The closest of n candidate names to `name`, or NULL when none is close. */
const char *dnc_did_you_mean(const char *name, const char *const *cands, int n);

/* ---------------------------------------------------- the AST (parse.c) */

typedef enum {
  AST_NUM,    /* num */
  AST_NAME,   /* name: a parameter, let, the input, or a constant */
  AST_OP,     /* op with nargs operands in arg[] (unary, binary, if) */
  AST_CALL,   /* name(arg; named...) - built-in or user fn, resolved in sema */
} dnc_ast_kind;

typedef struct dnc_ast dnc_ast;
typedef struct dnc_named_arg {
  const char *name;
  dnc_loc loc;
  dnc_ast *value;
  struct dnc_named_arg *next;
} dnc_named_arg;

struct dnc_ast {
  dnc_ast_kind kind;
  int op; /* AST_OP: an OP_* */
  int nargs;
  int depth; /* syntactic depth, bounded by DNC_MAX_NEST */
  dnc_loc loc;
  dnc_loc name_loc; /* AST_CALL: the callee name */
  double num;
  const char *name;
  dnc_ast **args;
  dnc_named_arg *named; /* AST_CALL: `; p = expr, ...` */
};

typedef struct dnc_ast_param {
  const char *name;
  dnc_loc loc;
  int per_channel; /* declared `name[] = default` */
  dnc_ast *def;    /* NULL when the default is missing */
  struct dnc_ast_param *next;
} dnc_ast_param;

typedef struct dnc_ast_let {
  const char *name;
  dnc_loc loc;
  dnc_ast *value;
  struct dnc_ast_let *next;
} dnc_ast_let;

typedef struct dnc_ast_fn {
  const char *name;
  dnc_loc loc;      /* the whole definition */
  dnc_loc name_loc;
  const char *input;
  dnc_loc input_loc;
  dnc_ast_param *params;
  dnc_ast_let *lets;
  dnc_ast *body;
  struct dnc_ast_fn *next;
} dnc_ast_fn;

/* ---------------------------------------------------------------- parse.c */

/* Parse one source; errors go to diags. Returns the list of definitions (in
 * source order); a list parsed with errors must not be used. The AST
 * constructors below are called by the grammar's actions. */
dnc_ast_fn *dnc_parse(dnc_arena *a, dnc_diags *d, const dnc_source *src);

/* State shared by the scanner and the parser (parse.c, lexer.l, parser.y). */
typedef struct dnc_parse_state {
  dnc_arena *arena;
  dnc_diags *diags;
  const dnc_source *src;
  dnc_ast_fn *fns, *fns_tail;
  int paren_depth, brace_depth;
  uint32_t off;       /* byte offset of the scanner */
  int last_ends_expr; /* the last token can end an expression */
  int prev_ends_expr; /* ... and the one before it */
  int in_header;      /* between 'fn' and the ')' closing its input list */
  int aborted;        /* the scanner gave up (nesting); already reported */
  int nest_reported;
  dnc_loc open_brace; /* innermost unclosed '{' */
  dnc_loc open_paren; /* outermost unclosed '(' */
  int paren_cut;      /* a 'fn' closed an unclosed '(' (for the note) */
  uint32_t tok_end;   /* end of the last token (not of white space) */
  int brace_cut;      /* a 'fn' closed an unclosed '{' (for the note) */
  int in_let;         /* since a 'let', no ';' or end of line yet */
  int fn_misused;     /* the last 'fn' stood where a name goes */
  int bar_reported;   /* a '|' has been reported */
  int dropped;        /* this definition has a character that the scanner
                         reported and skipped ('@') */
  int dropped_before; /* ... the definition before this one had */
} dnc_parse_state;

dnc_ast *dnc_ast_num(dnc_parse_state *ps, dnc_loc loc, double v);
dnc_ast *dnc_ast_name(dnc_parse_state *ps, dnc_loc loc, const char *name);
dnc_ast *dnc_ast_op(dnc_parse_state *ps, dnc_loc loc, int op, int nargs,
                    dnc_ast *a, dnc_ast *b, dnc_ast *c);
dnc_ast *dnc_ast_call(dnc_parse_state *ps, dnc_loc loc, dnc_loc name_loc,
                      const char *name, dnc_ast **args, int nargs,
                      dnc_named_arg *named);

/* ----------------------------------------------------------------- expr.c */

typedef enum {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, DIFF, LOWER) OP_##NAME,
  DNC_OPS(X)
#undef X
  OP__COUNT
} dnc_op;

typedef enum { FORM_LEAF, FORM_PREFIX, FORM_INFIX, FORM_CALL, FORM_IFELSE } dnc_form;
typedef enum { TYPE_NUM, TYPE_BOOL } dnc_type;

typedef struct dnc_opinfo {
  const char *name; /* enum name, lower case */
  int arity;
  const char *spell;
  dnc_form form;
  int prec;
  dnc_type type;
  int commutative;  /* ops.h's COMM */
  const char *math; /* ops.h's MATH: the formula's name in opmath.h */
  const char *c;    /* C99 spelling (print_c.c) */
  const char *torch; /* PyTorch function of a one-operand call, or "" */
  int rt;           /* rtmath.c has dnc_rt_<math>_f32/_f64 */
} dnc_opinfo;
extern const dnc_opinfo dnc_ops[OP__COUNT];

/* A DAG node. Immutable after creation and hash-consed within its module:
 * structurally equal nodes are the same pointer. Operands are created before
 * the node, so id order is a topological order. */
typedef struct dnc_node {
  uint32_t id;
  uint16_t op;
  uint16_t nargs;
  uint32_t depth; /* 1 + the deepest operand */
  uint32_t hash;
  double value; /* OP_CONST */
  int param;    /* OP_PARAM: index into the function's parameters */
  struct dnc_node *arg[3];
  struct dnc_node *chain; /* hash bucket */
} dnc_node;

typedef struct dnc_dag {
  dnc_arena *arena;
  dnc_node **buckets;
  uint32_t nbuckets, count;
  dnc_node **nodes; /* by id */
  uint32_t cap;
  int too_deep; /* a node past DNC_MAX_DAG_DEPTH was requested */
  /* The node budget: a node that would make count pass limit is not
   * made; over is set and a placeholder (a NaN constant) returned, so a
   * pass stops growing the DAG at once and its caller reports the error.
   * limit is DNC_MAX_DAG_NODES, or less within dnc_dag_budget. */
  uint32_t limit;
  int over;
  dnc_node *placeholder;
} dnc_dag;

void dnc_dag_init(dnc_dag *g, dnc_arena *a);
void dnc_dag_free(dnc_dag *g); /* the table only; nodes live in the arena */
/* A pass that may add at most `more` nodes: sets the limit (never above
 * DNC_MAX_DAG_NODES) and clears over; returns the limit to restore with
 * dnc_dag_budget_end. Over stays set until the next budget. */
uint32_t dnc_dag_budget(dnc_dag *g, uint32_t more);
void dnc_dag_budget_end(dnc_dag *g, uint32_t limit);
dnc_node *dnc_const(dnc_dag *g, double v);
dnc_node *dnc_input(dnc_dag *g);
dnc_node *dnc_param(dnc_dag *g, int k);
/* Any op with its operands; the only folding done here is -(constant),
 * which is exact in IEEE arithmetic. */
dnc_node *dnc_node_op(dnc_dag *g, int op, dnc_node *a, dnc_node *b, dnc_node *c);
/* Structural equality across two DAGs (different modules). */
int dnc_node_equal(const dnc_node *a, const dnc_node *b);
/* The nodes reachable from root, operands first; *n receives the count. */
dnc_node **dnc_schedule(const dnc_dag *g, dnc_arena *a, dnc_node *root,
                        uint32_t *n);

/* ------------------------------------------- the module (module.c, sema.c) */

typedef struct dnc_fparam {
  const char *name;
  double def;
  int per_channel;
} dnc_fparam;

typedef struct dnc_function {
  const char *name;
  const char *input;
  int nparams;
  dnc_fparam *params;
  dnc_node *body;
  const dnc_source *src;
  dnc_loc loc;
  struct dnc_prog *prog; /* the body for the reference interpreter */
  /* first derivatives by wrt + 1 (diff.c's dnc_derive), made on demand */
  dnc_node **d1;
  struct dnc_prog **d1prog;
  unsigned char *d1done;
  void *owner;           /* the runtime's module (runtime/api.c) */
  int index;             /* in the module's fns */
} dnc_fn;

typedef struct dnc_mod {
  dnc_arena *arena;
  dnc_diags diags;
  dnc_dag dag;
  int nsources;
  dnc_source **sources;
  int nfns;
  dnc_fn **fns;
} dnc_mod;

dnc_mod *dnc_mod_new(void);
void dnc_mod_free(dnc_mod *m);
/* Adds a source (copied) to the module; returns it. */
dnc_source *dnc_mod_add_source(dnc_mod *m, const char *name, const char *text,
                               size_t len);
/* Reads a file into a new source, or records a located error and returns
 * NULL (missing, a directory, unreadable, too large). */
dnc_source *dnc_mod_read_file(dnc_mod *m, const char *path);
/* f read to its end into a malloc'd buffer of *len bytes (the first of
 * cap bytes, then doubled), stopping at most one byte past max so that a
 * stream is bounded too (*too_large then); *err: errno where reading
 * failed, else 0. */
char *dnc_read_bounded(FILE *f, size_t cap, size_t max, size_t *len,
                       int *too_large, int *err);
/* Parses and checks every added source, building one DAG per fn.
 * Returns the number of errors (0: the module is usable). */
int dnc_mod_build(dnc_mod *m);
dnc_fn *dnc_mod_find(const dnc_mod *m, const char *name);
int dnc_fn_param_index(const dnc_fn *f, const char *name);

/* Length of the UTF-8 sequence starting at p (at most n bytes), or 0 when
 * it is not well formed (overlong forms and surrogates included). */
size_t dnc_utf8_len(const unsigned char *p, size_t n);
/* Checks that the raw bytes are fit to scan (no NUL, valid UTF-8);
 * records an error and returns 0 otherwise. */
int dnc_source_check_bytes(dnc_diags *d, const dnc_source *src);
/* 3 when the text starts with a UTF-8 byte order mark (as some editors and
 * spreadsheets write), else 0: the scanners start after it, and no column
 * counts it (diag.c) */
size_t dnc_source_bom_len(const dnc_source *src);

/* sema.c: checks the parsed definitions of all sources and lowers each to
 * one DAG, appending to m->fns. Returns the number of new errors. */
typedef struct dnc_parsed {
  const dnc_source *src;
  dnc_ast_fn *fns;
} dnc_parsed;
int dnc_sema(dnc_mod *m, const dnc_parsed *parsed, int nparsed);
/* The op of the built-in function called `name`, or -1. */
int dnc_builtin_op(const char *name);
/* The value of a named constant (pi, e, inf, nan); 0 when not one. */
int dnc_named_constant(const char *name, double *v);

/* ------------------------------------------------------------- simplify.c */

/* Builds op(a, b, c) simplified by rewrites that keep every IEEE result
 * (see the list at the top of simplify.c); the result is hash-consed. */
dnc_node *dnc_simp(dnc_dag *g, int op, dnc_node *a, dnc_node *b, dnc_node *c);
/* Rebuilds the DAG under root through dnc_simp. */
dnc_node *dnc_simplify(dnc_dag *g, dnc_node *root);

/* ----------------------------------------------------------------- diff.c */

#define DNC_WRT_X (-1)
/* The derivative of root with respect to x (wrt = DNC_WRT_X) or parameter
 * wrt, as nodes of the same DAG that share subterms with root; NULL when
 * it would need more than DNC_MAX_DIFF_NODES new nodes (the work stops
 * there), when it has more than DNC_MAX_DIFF_NODES nodes, or when the DAG
 * is full; the caller reports it. */
dnc_node *dnc_diff(dnc_dag *g, dnc_node *root, int wrt);
/* dnc_diff, then dnc_simplify: a derivative of any root in any DAG. */
dnc_node *dnc_derivative(dnc_dag *g, dnc_node *root, int wrt);

/* The derivative step of the pipeline, between the DAG and its users:
 * f's first derivative with respect to x (DNC_WRT_X) or parameter wrt,
 * simplified, made in m's DAG once and kept in f, so that code
 * generation, the kernel check, the fit and the plot share it (and dnc
 * diff's first step). NULL when it passes dnc_diff's budget. It grows m:
 * where others may use m, the caller holds the module's lock (the API's
 * functions do). dnc_derive_prog: the same as a program for the
 * interpreter (NULL likewise). */
dnc_node *dnc_derive(dnc_mod *m, dnc_fn *f, int wrt);
const struct dnc_prog *dnc_derive_prog(dnc_mod *m, dnc_fn *f, int wrt);
/* For the commands: that error, located at f's definition, added to m's
 * diagnostics and printed to stderr. */
void dnc_diff_too_large(dnc_mod *m, const dnc_fn *f);
/* The same error as a sentence, for the library's dnc_last_error. */
void dnc_diff_too_large_msg(char *buf, size_t n, const dnc_fn *f);
/* Whether f's kernels are within the limits, before any code is made:
 * each first derivative (dnc_derive) within dnc_diff's budget, and f with
 * them at most DNC_MAX_KERNEL_NODES nodes (LLVM's time grows with it). 0,
 * or -1 with the reason in err. */
int dnc_kernel_check(dnc_mod *m, dnc_fn *f, char *err, size_t n);

/* ---------------------------------------------------------------- dspec.c */

/* One derivative: the variables (DNC_WRT_X or a parameter index) in the
 * order they are applied. */
#define DNC_DSPEC_MAX 16
typedef struct dnc_dspec {
  int n;
  int var[DNC_DSPEC_MAX];
} dnc_dspec;

/* The output formats of derivatives (and of `dnc diff --format`). */
enum { DNC_FMT_DSL = 0, DNC_FMT_LATEX = 1, DNC_FMT_C = 2, DNC_FMT_TORCH = 3 };

/* The derivatives that `wrt` ("all", "v" or "v1,v2") and order (1..16) ask
 * of f, into specs[0..*ns); -1 with a message in err when f lacks a
 * variable or they are too many (more than max). */
int dnc_dspec_parse(const dnc_fn *f, const char *wrt, int order,
                    dnc_dspec *specs, int max, int *ns, char *err, size_t nerr);
/* "f__dx2_dalpha": each variable once, with its count when above 1
 * (malloc'd; NULL when out of memory). */
char *dnc_dspec_name(const dnc_fn *f, const dnc_dspec *d);
/* Differentiates f's body in m's DAG (which grows) and simplifies; NULL
 * when a step passes the budget (dnc_diff), the work stopping there. A
 * first derivative is dnc_derive's. */
dnc_node *dnc_dspec_derive(dnc_mod *m, dnc_fn *f, const dnc_dspec *d);
/* Prints that derivative e in a DNC_FMT_* format (with a node-count
 * comment first when stats); -1 when out of memory. */
int dnc_dspec_print(FILE *out, const dnc_fn *f, const dnc_dspec *d,
                    dnc_node *e, int format, int stats);
/* After the derivatives ds of specs (ns of them) in the torch format:
 * where each is a first derivative, NAME__all(x, params) returning f and
 * them as one tuple, their shared operations once. 0, or -1 (memory). */
int dnc_dspec_print_all(FILE *out, const dnc_fn *f, const dnc_dspec *specs,
                        dnc_node *const *ds, int ns, int format);

/* ------------------------------------------------------------------ fit.c */

/* Reference points that stand for a normalization layer (docs/fit.md): C
 * channel values drawn from a seeded distribution, the largest moved out
 * in steps; x the outlier's input, y its normalized output; mirrored. */
typedef enum { DNC_TARGET_LAYERNORM, DNC_TARGET_RMSNORM } dnc_ref_kind;
typedef enum { DNC_DIST_NORMAL, DNC_DIST_UNIFORM, DNC_DIST_LAPLACE } dnc_dist;
typedef struct dnc_refpoints {
  dnc_ref_kind kind;
  int channels;     /* C */
  dnc_dist dist;
  double scale;     /* the distribution's standard deviation */
  int steps;        /* outlier positions (2 * steps points, mirrored) */
  double reach;     /* the outlier's largest input; 0: 4 * sqrt(C) * scale */
  double eps;       /* added to the variance */
  uint64_t seed;
} dnc_refpoints;
void dnc_ref_defaults(dnc_refpoints *t);
/* Fills x, y with 2 * t->steps points (malloc'd). */
void dnc_ref_points(const dnc_refpoints *t, double **x, double **y, int *n);
const char *dnc_ref_name(dnc_ref_kind k);
const char *dnc_dist_name(dnc_dist d);

/* Fits f's parameters (start: p0; fixed[k] holds parameter k at p0[k]) to
 * the n points by Levenberg-Marquardt with f's symbolic derivatives as the
 * Jacobian: dnc_function_fit (runtime/dnc.h) over the compiler's objects.
 * It grows m only through dnc_derive_prog of the free parameters, whose
 * results are kept: made first, under the module's lock, they leave
 * nothing for dnc_fit to change in m. o NULL: the defaults. (fit.c also
 * defines the API's dnc_fit_options_init and dnc_fit_result_free.) */
void dnc_fit(dnc_mod *m, dnc_fn *f, const double *x, const double *y,
             int n, const double *p0, const int *fixed,
             const dnc_fit_options *o, dnc_fit_result *r);


/* --------------------------------------------------------------- interp.c */

/* A DAG flattened for evaluation: one instruction per reachable node, in
 * topological order, operands named by their position. */
typedef struct dnc_insn {
  uint16_t op;
  int32_t arg[3];
  int32_t param;
  double value;
} dnc_insn;

typedef struct dnc_prog {
  uint32_t n;
  dnc_insn *insn;
} dnc_prog;

dnc_prog *dnc_prog_build(const dnc_dag *g, dnc_arena *a, dnc_node *root);
/* Evaluates in long double with parameter values p[0..); IEEE semantics for
 * NaN, inf and signed zeros. */
long double dnc_prog_eval(const dnc_prog *pr, long double x, const double *p);
/* Rounded to double: the reference value of f at x. */
double dnc_interp(const dnc_fn *f, double x, const double *p);
/* One operation on long doubles (constant folding uses it too). */
long double dnc_eval_op(int op, long double a, long double b, long double c);

/* ---------------------------------------------------------------- print.c */

/* Writes f as dnc source that parses back to the same DAG. Shared
 * subexpressions become `let` bindings. */
void dnc_print_fn(FILE *out, const dnc_fn *f);
/* "name(x; a = 0.5, s[] = 0)" */
void dnc_print_signature(FILE *out, const dnc_fn *f, const char *name);
/* The same for another body over f's input and parameters (a derivative),
 * under another name. */
void dnc_print_def(FILE *out, const dnc_fn *f, const char *name,
                   const dnc_node *body);
/* Number of distinct nodes reachable from root. */
uint32_t dnc_node_count(const dnc_node *root);

/* Which nodes under a root are printed once and named: those used more
 * than once (not leaves, not the root). name[id] is set by the printer. */
typedef struct dnc_sharing {
  uint32_t maxid;
  const dnc_node **byid; /* reachable nodes by id, NULL elsewhere */
  uint32_t *uses;
  const char **name;
} dnc_sharing;
void dnc_sharing_init(dnc_sharing *s, const dnc_node *root);
/* The same where a printer prints some nodes with other operands than
 * their own (print_torch.c's helpers): operands(e, ops) stores the
 * operands e is printed with (at most DNC_SHARING_MAX_OPS, each of a
 * smaller id than e) and returns their count, or -1 for e's own. */
#define DNC_SHARING_MAX_OPS 16
void dnc_sharing_init_by(dnc_sharing *s, const dnc_node *root,
                         int (*operands)(const dnc_node *e,
                                         const dnc_node **ops));
/* The same over several roots printed together (a tuple of them): a
 * node that two of them use, a root among them, is bound once. */
void dnc_sharing_init_roots(dnc_sharing *s, const dnc_node *const *roots,
                            int nroots,
                            int (*operands)(const dnc_node *e,
                                            const dnc_node **ops));
int dnc_sharing_bound(const dnc_sharing *s, uint32_t id); /* gets a name */
void dnc_sharing_free(dnc_sharing *s);
/* How many threads work when none were asked for: $DNC_NUM_THREADS if it
 * is a whole number in [1, 1024], else the CPUs online (at most 1024); a
 * context's kernel pool and `dnc compile`'s jobs (runtime/pool.c). */
int dnc_pool_default_threads(void);
/* The C and PyTorch printers' locals: each node that sh binds, in id
 * order, named tN (N counting from 1, skipping the input's printed name
 * `input` and the parameters' names), printed by bind(ctx, name, node)
 * and recorded in sh->name. The names live in scratch. */
void dnc_print_locals(dnc_sharing *sh, dnc_arena *scratch, const dnc_fn *f,
                      const char *input,
                      void (*bind)(void *ctx, const char *name,
                                   const dnc_node *e),
                      void *ctx);
/* The same, calling before(ctx, id) ahead of each local's node id, and
 * once with sh->maxid after the last (where a printer adds its own). */
void dnc_print_locals_hook(dnc_sharing *sh, dnc_arena *scratch,
                           const dnc_fn *f, const char *input,
                           void (*bind)(void *ctx, const char *name,
                                        const dnc_node *e),
                           void (*before)(void *ctx, uint32_t id),
                           void *ctx);
/* "# NAME: N nodes" in the comment syntax of a format (0 dsl, 1 latex, 2 c,
 * 3 torch) */
void dnc_print_stat(FILE *out, int format, const char *name, uint32_t nodes);

/* print_latex.c: the derivative of f with respect to vars[0..nvars), in
 * that order, as `\frac{\partial f}{\partial x} &= body` in an aligned
 * block, shared subexpressions first */
void dnc_print_latex(FILE *out, const dnc_fn *f, const int *vars, int nvars,
                     const dnc_node *body);
/* print_c.c: a C99 function `double name(double x, double p...)`; the
 * prelude defines the helpers (sigmoid, NaN-propagating min...) it uses */
void dnc_print_c_prelude(FILE *out);
void dnc_print_c(FILE *out, const dnc_fn *f, const char *name,
                 const dnc_node *body);
/* print_torch.c: a Python function `def name(x, p...)` over PyTorch
 * tensors; the prelude imports torch and defines the helpers it uses */
void dnc_print_torch_prelude(FILE *out);
void dnc_print_torch(FILE *out, const dnc_fn *f, const char *name,
                     const dnc_node *body);
/* f and its first derivatives as one PyTorch function NAME(x, params)
 * returning the tuple (roots[0], ..., roots[n-1]), their shared
 * operations computed once (dnc.torch's backward on the devices its
 * kernels cannot run on). */
void dnc_print_torch_roots(FILE *out, const dnc_fn *f, const char *name,
                           const char *comment, const dnc_node *const *roots,
                           int n);
/* The prelude of a format (C's helpers, torch's import), if it has one;
 * and what a format prints of f before its derivatives (torch: f itself,
 * so that the output is a complete PyTorch form of f). */
void dnc_print_prelude(FILE *out, int format);
void dnc_print_head(FILE *out, const dnc_fn *f, int format);
/* "pi", "e", "inf" or "nan" when v is that constant and f has no
 * parameter or input of that name; else NULL. */
const char *dnc_const_name(const dnc_fn *f, double v);
/* Shortest decimal that reads back as exactly v (finite v). */
void dnc_format_double(char *buf, size_t n, double v);
/* Any number as dnc writes it in its outputs (dnc eval, fit, search):
 * dnc_format_double, or nan, -nan (the sign bit set), inf, -inf. */
void dnc_format_number(char *buf, size_t n, double v);

/* --------------------------------------------------------------- rtmath.c */

/* The scalar functions kernels may call (ops.h's RT: vmath.c leaves f64
 * pow, and sin and cos of huge arguments, to them): entry i's symbol
 * name and address. */
int dnc_rt_count(void);
void dnc_rt_entry(int i, int f64, const char **name, void **addr);
/* The symbol name of op's scalar function, or NULL when op has none. */
const char *dnc_rt_name(int op, int f64);
/* pow(x, e) for a constant e that kernels lower to arithmetic (returns e:
 * 1, 2, 3, -1, -2), else 0. */
int dnc_pow_special(double e);
/* Whether the f32 (f64: f64 = 1) kernels compute op with dnc's own
 * vector code (vmath.c) rather than rtmath.c's scalar function. */
int dnc_vm_native(int op, int f64);
/* root as the kernels of one precision (f64, else f32 compute: f32, bf16,
 * f16; lowp: their math's bits, as dnc_rewrite) for a target (its
 * DNC_TARGET_* flags) compute it: the
 * lowering rewrites of rewrite.c applied, then flattened (module DAG and
 * arena; the caller holds the module's lock where others may use it). */
dnc_prog *dnc_rt_prog(dnc_mod *m, dnc_node *root, int f64, int lowp,
                      int target);
/* Such a program evaluated in float or double, each op by its formula
 * (opmath.h) as the kernels lower it (pow with small integer exponents as
 * arithmetic, dnc_pow_special). math32: for each op, the float function
 * to use in place of rtmath.c's (NULL entries, or NULL: rtmath.c's); tests
 * pass the JIT's own vector math here so that kernels can be compared to
 * the bit, and for bf16's math its division and rsqrt too (ops
 * without a runtime function, which are otherwise IEEE's). The functions
 * take both operands: pow and division use the second, the unary ops
 * ignore it. */
typedef float (*dnc_rt_fn32)(float, float);
typedef double (*dnc_rt_fn64)(double, double);
float dnc_rt_eval_f32(const dnc_prog *pr, float x, const float *p,
                      const dnc_rt_fn32 *math32);
double dnc_rt_eval_f64(const dnc_prog *pr, double x, const double *p,
                       const dnc_rt_fn64 *math64);

/* -------------------------------------------------------------- rewrite.c */

/* a = s * t for a constant s (1 when a is not a product with one, -1 for
 * a negation): returns s, sets *t */
double dnc_split_scale(const dnc_node *a, const dnc_node **t);
/* a and b products equal but for one factor negated: p q and (-p) q (the
 * parse of -a * x), either order; then b = -a bit for bit */
int dnc_negated_factor(const dnc_node *a, const dnc_node *b);
/* y = -(|t| * k) for a constant k >= 0, as the sigmoid-pair rewrite
 * writes exp(-k|t|)'s argument: 1 and *t, *k set; else 0 */
int dnc_expneg_of(const dnc_node *y, const dnc_node **t, double *k);
/* u when e is u^2 or u * u, else NULL */
const dnc_node *dnc_square_of(const dnc_node *e);
/* Whether h reaches the node u (1 too where the walk's budget ran out:
 * callers take that as "may") */
int dnc_reaches(const dnc_node *h, const dnc_node *u);
/* The inverse square root unit's shapes that rewrite.c scales where
 * c + t would overflow (its top comment), as the kernels and the
 * decomposed PyTorch form (print_torch.c) both take them: one matcher,
 * so the two cannot disagree on which nodes are scaled or how. */
enum {
  DNC_ISRU_QUOTIENT = 1, /* n / sqrt(v), n * rsqrt(v), n / v^0.5, n * v^-0.5 */
  DNC_ISRU_DERIV,        /* n / (v sqrt(v)) */
  DNC_ISRU_RATIONAL      /* n / v */
};
#define DNC_DEG_NO (-1000) /* no degree in u (a node that is not homogeneous) */
typedef struct dnc_isru_shape {
  int kind;  /* DNC_ISRU_* */
  int root;  /* a quotient's: 0 sqrt, 1 rsqrt, 2 ^0.5, 3 ^-0.5 */
  const dnc_node *n, *v; /* the numerator and v = c + t */
  const dnc_node *u, *c; /* the base that grows, and the other term */
  const dnc_node *t;     /* t of degree 2 in u; NULL where t is u^2 */
  const dnc_node *base;  /* t = base^2, base of degree 1 in u; else NULL */
  int dn;    /* n's degree in u (1 to 3), or DNC_DEG_NO */
  int deep;  /* a derivative with dn 3: k is chosen by |t|, not |base| */
} dnc_isru_shape;
/* 1 with *s when e is one of the shapes (a DIV or MUL node), else 0 */
int dnc_isru_shape_of(const dnc_node *e, dnc_isru_shape *s);
/* What of a target the lowering rewrites depend on (dnc_target_flags):
 *   DNC_TARGET_FMA    fused multiply-add in hardware
 *   DNC_TARGET_RSQRT  f32's rsqrt is vmath.c's refined estimate (16-lane
 *                     AVX-512 with FMA), as cheap as a multiplication,
 *                     while division and sqrt share one slow divider
 *   DNC_TARGET_UNDERFLOW  a result that underflows (to a subnormal or 0)
 *                     costs what any other does: AMD's Zen (LLVM's znver
 *                     CPUs), where Intel's cores take a microcode assist
 *                     for the vector (vmath.c, exp_clamp) */
enum { DNC_TARGET_FMA = 1, DNC_TARGET_RSQRT = 2, DNC_TARGET_UNDERFLOW = 4 };
/* Whether dnc_rewrite writes e (before it) as ((g V) I), g a factor
 * bounded by 1 (a Gaussian, a sigmoid pair), V what varies, I constants
 * and parameters (rewrite.c, chain_form): codegen factors the backward
 * over g only then, where dL/df g cannot overflow. */
int dnc_chain_product(const dnc_node *e, int f64);
/* The lowering rewrites (rewrite.c) for f64 or f32 compute, the vector
 * math's precision in f32 (lowp: 8 for bf16's, 11 for f16's, else 0) and a
 * target's DNC_TARGET_* flags, applied to roots[0..n) in place
 * (NULL entries skipped; shared nodes rewritten once); -1 when the DAG's
 * node budget ran out. */
int dnc_rewrite(dnc_dag *g, int f64, int lowp, int target, dnc_node **roots,
                int n);

/* ------------------------------------------- kernels (codegen.c, aot.c) */

/* Kernel dtypes: the storage type of x, y, dy, dx. ORDER: dnc_dtype in
 * runtime/dnc.h. */
enum { DNC_DT_F32, DNC_DT_F64, DNC_DT_BF16, DNC_DT_F16, DNC_DT__COUNT };
extern const char *const dnc_dtype_names[DNC_DT__COUNT];

/* Kernel form names, in the order of dnc_kernels' members. */
enum { DNC_K_FWD, DNC_K_BWD, DNC_K_LAYER_FWD, DNC_K_LAYER_BWD, DNC_K__COUNT };
extern const char *const dnc_kernel_forms[DNC_K__COUNT];

/* aot.c: `dnc compile`. What it writes: */
enum { DNC_EMIT_SO, DNC_EMIT_OBJ, DNC_EMIT_ASM, DNC_EMIT_LLVM, DNC_EMIT_HEADER };

typedef struct dnc_aot_options {
  int emit;             /* DNC_EMIT_* for output */
  const char *output;   /* the file to write */
  const char *header;   /* -H: also a C header, or NULL */
  const char *triple;   /* NULL: the host's */
  const char *cpu;      /* NULL: the default levels (see aot.c) */
  int opt_level;        /* 0..3 */
  const char *cc;       /* the C compiler driver; NULL: $CC, else cc */
} dnc_aot_options;

/* Compiles every function of m (built, without errors) as o says. Writes
 * each output to a temporary file beside it and renames it into place
 * only when all succeeded. Returns 0, or -1 with *err malloc'd; an error
 * that has a place in the source (a function too large to compile) is
 * also added to m's diagnostics. */
int dnc_aot_compile(dnc_mod *m, const dnc_aot_options *o, char **err);
/* Ends the C compiler dnc_aot_compile is running, if any, and waits for
 * it (async-signal-safe: for dnc compile's signal handler, before it
 * removes the temporaries the linker reads and writes) */
void dnc_aot_stop_child(void);

/* ------------------------------------------------------------------ jit.c */

/* A JIT: one LLJIT with its target machine, safe to use from several
 * threads. Modules' kernels live in libraries: one resource tracker each,
 * with symbol names unique to the library. */
typedef struct dnc_jit dnc_jit;
typedef struct dnc_jit_lib dnc_jit_lib;
typedef struct dnc_jit_options {
  int opt_level;        /* 0..3 */
  const char *cpu;      /* NULL: the host's */
  const char *features; /* NULL: the host's when cpu is NULL, else "" */
  const char *dump_dir; /* write IR before and after optimisation; NULL: no */
  int math_bits;        /* dnc_target.math_bits */
  int cache;             /* dnc_options.cache: 0 $DNC_CACHE, 1 on, -1 off */
  const char *cache_dir; /* dnc_options.cache_dir */
} dnc_jit_options;

/* NULL with *err malloc'd on failure; *bad_name is set when the reason
 * is a CPU or feature name LLVM does not know. */
dnc_jit *dnc_jit_new(const dnc_jit_options *o, char **err, int *bad_name);
void dnc_jit_free(dnc_jit *j);
const char *dnc_jit_cpu(const dnc_jit *j);
const char *dnc_jit_features(const dnc_jit *j);
unsigned dnc_jit_vector_bits(const dnc_jit *j);
/* The DNC_TARGET_* flags of the JIT's target (dnc_target_flags) */
int dnc_jit_target_flags(const dnc_jit *j);
dnc_jit_lib *dnc_jit_lib_new(dnc_jit *j);
/* Frees the library's code. */
void dnc_jit_lib_free(dnc_jit_lib *l);
/* Compiles f's four kernels in dtype dt (a DNC_DT_*) into l and stores
 * their addresses in fns[DNC_K_*]; stream: the variant that writes its
 * outputs with non-temporal stores (codegen.h, dnc_target.stream). The
 * caller holds m's lock: the derivatives are added to m's DAG. Returns 0,
 * or -1 with *err malloc'd. */
int dnc_jit_compile(dnc_jit_lib *l, dnc_mod *m, dnc_fn *f, int dt, int stream,
                    void **fns, char **err);

/* -------------------------------------------------------------- kcache.c */

/* The on-disk kernel cache (kcache.c has the format; jit.c uses it). */
#define DNC_KCACHE_FORMAT 1
#define DNC_KCACHE_NAME_LEN 32 /* hex digits of an entry's file name */
enum { DNC_KCACHE_HIT, DNC_KCACHE_MISS, DNC_KCACHE_REJECTED, DNC_KCACHE_WRITTEN };
void dnc_sha256(const void *p, size_t n, unsigned char out[32]);
/* The key of f's kernels in one dtype: `target` (lines describing the
 * build, the target machine and the options) and f's canonical DAG
 * (malloc'd). */
char *dnc_kcache_key(const dnc_mod *m, const dnc_fn *f, const char *dtype,
                     const char *target);
/* The entry's file name (without ".dko"): hex digits of SHA-256(key). */
void dnc_kcache_name(const char *key, char hex[DNC_KCACHE_NAME_LEN + 1]);
/* Whether the cache is on: option 1 on, -1 off, 0 unless $DNC_CACHE is
 * 0, off, no or false. */
int dnc_kcache_enabled(int option);
/* The directory, with a trailing '/' (malloc'd): option, else
 * $DNC_CACHE_DIR, else $XDG_CACHE_HOME/dnc, else $HOME/.cache/dnc; NULL
 * when none can be named. */
char *dnc_kcache_dir(const char *option);
/* 1 and the object (malloc'd) when a valid entry for exactly this key is
 * there; 0 when there is none; -1 when one is there but rejected (short,
 * corrupt, another key). */
int dnc_kcache_read(const char *dir, const char *name, const char *key,
                    void **obj, size_t *nobj);
/* Writes the entry through a temporary file renamed into place (creating
 * the directory); 0, or -1 when it could not (the cache is best effort). */
int dnc_kcache_write(const char *dir, const char *name, const char *key,
                     const void *obj, size_t nobj);
/* The bound on a cache directory's entries, in bytes: $DNC_CACHE_MAX (a
 * number, with K, M, G or T for 2^10 ... 2^40; 0: no bound), unset or
 * empty DNC_KCACHE_MAX_DEFAULT; -1 when it is none of these (context
 * creation refuses it). A write past it removes the least recently used
 * entries (read or written) down to 3/4 of it. */
#define DNC_KCACHE_MAX_DEFAULT (1LL << 30)
long long dnc_kcache_max(void);
/* A size in bytes as $DNC_CACHE_MAX and $DNC_STREAM_BYTES write it:
 * decimal digits, optionally followed by K, M, G or T (either case) for
 * 2^10 ... 2^40, and nothing else. 0 and the size in *out; -1 for
 * anything else or a size past LLONG_MAX. */
int dnc_size_parse(const char *s, long long *out);
/* Process-wide counts of reads that hit, missed and were rejected, and
 * of entries written, indexed by DNC_KCACHE_* (for tests). */
void dnc_kcache_counts(unsigned long out[4]);

/* ------------------------------------------------------------ llvm_host.c */

/* LLVM version, and the host CPU name and features that code generation
 * targets. Strings are static and valid for the process. */
const char *dnc_llvm_version(void);
/* This build of dnc: the file holding its code (libdnc.so, or the program
 * libdnc.a is linked into) by path, size and modification time (jit.c;
 * the kernel cache's keys and dnc search's journal take it) */
const char *dnc_build_id(void);
const char *dnc_host_cpu(void);
const char *dnc_host_features(void);

/* ------------------------------------------------------------ outfile.c */

/* Where an output named path goes (see outfile.c): target is the file to
 * rename over (a symlink's target), or, with in_place, a device or FIFO
 * to write into, or (std_fd 1 or 2) the file standard output or error is,
 * written through that descriptor. -1 with err set for a directory,
 * another non-regular file, a dangling link, or one of the inputs
 * (ninputs file names, NULL for none; "-" is standard input). */
typedef struct dnc_outpath {
  char *target;
  int in_place;
  int std_fd;
} dnc_outpath;
int dnc_outpath_resolve(const char *path, const char *const *inputs,
                        int ninputs, dnc_outpath *o, char *err, size_t n);
/* A new empty temporary file for it (malloc'd name; NULL, errno set) */
char *dnc_outpath_temp(const dnc_outpath *o);
/* The complete temporary into place; -1 with errno set. */
int dnc_outpath_commit(const dnc_outpath *o, const char *tmp);
void dnc_outpath_free(dnc_outpath *o);
struct stat;
/* stat() of an input named name, or fstat(0) for "-" (standard input's
 * own file): what an output must not be (0, or -1 with errno set) */
int dnc_input_stat(const char *name, struct stat *st);
/* Writes n bytes to path (created, or truncated) and closes it: a short
 * write, a full disk or a file size limit is -1 with errno set, never
 * LLVM's report_fatal_error (which its raw_fd_ostream calls on a write
 * error): LLVM's outputs are made in memory and written with this. */
int dnc_write_whole(const char *path, const void *data, size_t n);
/* All n bytes of data to fd, through short writes and EINTR: 0, or -1
 * with errno (ENOSPC for a write that wrote nothing without an error) */
int dnc_write_fd(int fd, const void *data, size_t n);
/* whether a file of n bytes would pass the process's file-size limit
 * (ulimit -f), where writing raises SIGXFSZ, which ends the process: the
 * writers refuse such a file first (errno EFBIG) */
int dnc_past_fsize_limit(uint64_t n);
/* Temporaries (named PREFIX<pid>.XXXXXX) a command removes when a signal
 * ends it: with tracking on (the command's choice; a library leaves it
 * off), dnc_outpath_temp and the AOT's temporary directory register theirs,
 * dnc_temps_remove_now (async-signal-safe) removes them, and a new
 * temporary's directory is first swept of those of dead processes. */
void dnc_temps_track(int on);
void dnc_temp_add(const char *path);
void dnc_temp_forget(const char *path);
/* "<prefix><i><suffix>" for every i < count (one series at a time) */
void dnc_temp_add_series(const char *prefix, const char *suffix, int count);
void dnc_temps_remove_now(void);
void dnc_temps_sweep(const char *dir, const char *prefix);

/* ------------------------------------------------------------ aotseal.c */

/* Fills in the seal note (ABI, loaded segments, digest of what the loader
 * reads) of a library just linked; 0, or -1 with err set. */
int dnc_aot_seal(const char *path, char *err, size_t nerr);
/* What can be checked of a library before dlopen runs its code: a regular
 * ELF shared object of this machine, whole, with an intact seal of this
 * ABI. 0, or -1 with the reason in err. */
int dnc_aot_check_file(const char *path, char *err, size_t nerr);

#endif
