/*
 * test_ops.c - every row of ops.h through every place an op has meaning:
 * the reference interpreter, rtmath.c's double and float evaluators, the
 * search evaluator (search_eval.c), the differentiator, the JIT's forward
 * and backward kernels (f64 and f32), and the four printers (the DSL
 * printer parsed back, the C printer compiled with the system's C compiler
 * and run, LaTeX and PyTorch). The function that uses each op is made
 * from its row (spelling, form, arity, type), so an op added to ops.h
 * gets its tests without an edit here; one missing anywhere fails.
 *
 * Reference: the interpreter (long double). Sample points are inside every
 * op's domain and away from the breaks of the piecewise ones (0.75 and
 * 2.25, the parameters), so finite differences check the derivatives.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "search.h"
#include "tap.h"

static const double xs[] = {0.25, 0.5, 1.0, 1.5, 2.0, 3.0};
enum { NX = sizeof xs / sizeof xs[0] };
static const double P = 0.75, Q = 2.25; /* the parameters p and q */

static dnc_context *ctx;

/* `fn f(x; p, q) = ...` using op once, with x, p, q as its number operands
 * (in that order) and x < p, x > q as its truth-valued ones; a truth-
 * valued op is the condition of an `if`. */
static void op_source(int op, char *buf, size_t n)
{
  const dnc_opinfo *oi = &dnc_ops[op];
  static const char *const num[3] = {"x", "p", "q"};
  static const char *const cond[3] = {"(x < p)", "(x > q)", "(x < q)"};
  const char *a[3];
  for (int k = 0; k < oi->arity; k++) {
    /* truth-valued operands: and, or, not; `if`'s condition */
    int is_bool = op == OP_AND || op == OP_OR || op == OP_NOT ||
                  (op == OP_SELECT && k == 0);
    a[k] = is_bool ? cond[k] : num[k];
  }
  char e[160];
  switch (oi->form) {
  case FORM_CALL:
    snprintf(e, sizeof e, "%s(%s%s%s%s%s)", oi->spell, a[0],
             oi->arity > 1 ? ", " : "", oi->arity > 1 ? a[1] : "",
             oi->arity > 2 ? ", " : "", oi->arity > 2 ? a[2] : "");
    break;
  case FORM_INFIX: snprintf(e, sizeof e, "(%s %s %s)", a[0], oi->spell, a[1]); break;
  case FORM_PREFIX: snprintf(e, sizeof e, "(%s %s)", oi->spell, a[0]); break;
  case FORM_IFELSE: snprintf(e, sizeof e, "if %s then %s else %s", a[0], a[1], a[2]); break;
  default: snprintf(e, sizeof e, "x"); break;
  }
  if (oi->type == TYPE_BOOL)
    snprintf(buf, n, "fn f(x; p = 0.75, q = 2.25) = if %s then x * p else q\n", e);
  else
    snprintf(buf, n, "fn f(x; p = 0.75, q = 2.25) = %s + 0 * (p + q)\n", e);
}

static int uses_op(const dnc_node *e, int op)
{
  if (e->op == op)
    return 1;
  for (int k = 0; k < e->nargs; k++)
    if (uses_op(e->arg[k], op))
      return 1;
  return 0;
}

static char *printed(void (*print)(FILE *, const dnc_fn *, const char *,
                                   const dnc_node *),
                     const dnc_fn *f, const dnc_node *body)
{
  char *text = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&text, &len);
  print(o, f, "f", body);
  fclose(o);
  return text;
}

static void print_latex_x(FILE *o, const dnc_fn *f, const char *name,
                          const dnc_node *body)
{
  (void)name;
  int wrt = DNC_WRT_X;
  dnc_print_latex(o, f, &wrt, 1, body);
}

/* the search evaluator over the interpreter's program, the parameters as
 * constants (its candidates have none) */
static void search_eval(const dnc_fn *f, const double *p, double *y)
{
  const dnc_prog *pr = f->prog;
  dnc_vprog v = {(int)pr->n, (int)pr->n - 1, (int)pr->n - 1,
                 malloc(sizeof(dnc_vinsn) * pr->n)};
  for (uint32_t i = 0; i < pr->n; i++) {
    const dnc_insn *in = &pr->insn[i];
    v.insn[i].op = in->op == OP_PARAM ? OP_CONST : in->op;
    v.insn[i].value = in->op == OP_PARAM ? p[in->param] : in->value;
    memcpy(v.insn[i].arg, in->arg, sizeof in->arg);
  }
  double *w = malloc(sizeof *w * pr->n * NX);
  dnc_vprog_eval(&v, xs, NX, w);
  memcpy(y, w + (size_t)v.rf * NX, sizeof *y * NX);
  free(w);
  free(v.insn);
}

/* max over the points of |got - want| / max(1, |want|) */
static double max_err(const double *got, const double *want)
{
  double e = 0;
  for (int i = 0; i < NX; i++) {
    double d = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
    e = isnan(d) || isnan(e) ? NAN : fmax(e, d);
  }
  return e;
}

static FILE *csrc;   /* the C printer's functions, compiled at the end */
static double cwant[OP__COUNT][NX];

static void test_op(int op)
{
  const char *name = dnc_ops[op].name;
  char src[256];
  op_source(op, src, sizeof src);
  dnc_module *mod;
  if (dnc_compile_string(ctx, "ops.dn", src, strlen(src), &mod) != DNC_OK) {
    ok(0, "%s: `%s` compiles (%s)", name, src, dnc_last_error());
    return;
  }
  dnc_mod *m = mod->m;
  dnc_fn *f = m->fns[0];
  const double p[2] = {P, Q};
  ok(uses_op(f->body, op), "%s: the function made from its row uses it", name);

  /* evaluators: interpreter, rtmath (double, float), search */
  double ref[NX], y[NX];
  for (int i = 0; i < NX; i++)
    ref[i] = dnc_interp(f, xs[i], p);
  dnc_prog *r64 = dnc_rt_prog(m, f->body, 1, 0, 0);
  for (int i = 0; i < NX; i++)
    y[i] = dnc_rt_eval_f64(r64, xs[i], p, NULL);
  ok(max_err(y, ref) <= 1e-15, "%s: rtmath's double evaluator agrees with the interpreter", name);
  const float p32[2] = {(float)P, (float)Q};
  dnc_prog *r32 = dnc_rt_prog(m, f->body, 0, 0, 0);
  for (int i = 0; i < NX; i++)
    y[i] = dnc_rt_eval_f32(r32, (float)xs[i], p32, NULL);
  ok(max_err(y, ref) <= 1e-6, "%s: rtmath's float evaluator agrees with the interpreter", name);
  search_eval(f, p, y);
  ok(max_err(y, ref) <= 1e-15, "%s: the search evaluator agrees with the interpreter", name);

  /* the differentiator, against central differences of the interpreter */
  dnc_node *dx = dnc_diff(&m->dag, f->body, DNC_WRT_X);
  double want_dx[NX], got_dx[NX];
  dnc_prog *dpr = dx ? dnc_prog_build(&m->dag, m->arena, dx) : NULL;
  for (int i = 0; i < NX; i++) {
    double h = 1e-6 * fmax(1, fabs(xs[i]));
    want_dx[i] = (dnc_interp(f, xs[i] + h, p) - dnc_interp(f, xs[i] - h, p)) / (2 * h);
    got_dx[i] = dpr ? (double)dnc_prog_eval(dpr, xs[i], p) : 0.0;
  }
  ok(max_err(got_dx, want_dx) <= 1e-6, "%s: its derivative matches finite differences", name);

  /* the JIT: forward and backward, f64 and f32 */
  const dnc_function *jf = dnc_module_find(mod, "f");
  dnc_kernels k64, k32;
  int built = jf && dnc_function_kernels(jf, DNC_F64, &k64) == DNC_OK &&
              dnc_function_kernels(jf, DNC_F32, &k32) == DNC_OK;
  ok(built, "%s: the JIT builds its kernels", name);
  if (built) {
    double dy[NX], kdx[NX], dp[2];
    k64.forward(xs, y, NX, p);
    ok(max_err(y, ref) <= 1e-14, "%s: the f64 forward kernel agrees with the interpreter", name);
    for (int i = 0; i < NX; i++)
      dy[i] = 1;
    k64.backward(xs, dy, kdx, NX, p, dp);
    double ddx[NX];
    for (int i = 0; i < NX; i++)
      ddx[i] = dpr ? (double)dnc_prog_eval(dpr, xs[i], p) : 0.0;
    ok(max_err(kdx, ddx) <= 1e-14, "%s: the f64 backward kernel agrees with the interpreter", name);
    float fx[NX], fy[NX];
    for (int i = 0; i < NX; i++)
      fx[i] = (float)xs[i];
    k32.forward(fx, fy, NX, p);
    for (int i = 0; i < NX; i++)
      y[i] = fy[i];
    ok(max_err(y, ref) <= 1e-6, "%s: the f32 forward kernel agrees with the interpreter", name);
  } else {
    skip(3, "no kernels");
  }

  /* printers: DSL (parsed back), C (compiled at the end), LaTeX, torch */
  char *dsl = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&dsl, &len);
  dnc_print_fn(o, f);
  fclose(o);
  dnc_mod *back = dnc_mod_new();
  dnc_mod_add_source(back, "printed.dn", dsl, strlen(dsl));
  int same = !dnc_mod_build(back) && back->nfns == 1;
  for (int i = 0; same && i < NX; i++)
    same = dnc_interp(back->fns[0], xs[i], p) == ref[i];
  ok(same, "%s: the DSL printer's text parses back to the same values", name);
  if (!same)
    diag("printed:\n%s", dsl);
  dnc_mod_free(back);
  free(dsl);

  char *c = printed(dnc_print_c, f, f->body);
  fprintf(csrc, "%s", c);
  fprintf(csrc, "static double call_%s(double x) { return f_%s(x, %.17g, %.17g); }\n", name,
          name, P, Q);
  free(c);
  memcpy(cwant[op], ref, sizeof ref);

  char *tex = printed(print_latex_x, f, f->body);
  ok(tex && strlen(tex) > 20 && !strstr(tex, "(null)"), "%s: the LaTeX printer writes it", name);
  free(tex);
  char *py = printed(dnc_print_torch, f, f->body);
  int has = py && !strstr(py, "(null)");
  if (dnc_ops[op].torch[0])
    has = has && strstr(py, dnc_ops[op].torch);
  ok(has, "%s: the PyTorch printer writes it%s%s", name, dnc_ops[op].torch[0] ? " as " : "",
     dnc_ops[op].torch);
  if (!has)
    diag("printed:\n%s", py);
  free(py);
  dnc_module_free(mod);
}

/* The C printer's text of every op, compiled with the system's compiler
 * and run: each must print the interpreter's values. */
static void test_c_printer(const char *cfile, const int *ops, int nops)
{
  char dir[] = "/tmp/dnc-test-ops.XXXXXX";
  if (!mkdtemp(dir)) {
    skip(nops, "no temporary directory");
    return;
  }
  char cmd[1024], exe[300];
  snprintf(exe, sizeof exe, "%s/ops", dir);
  const char *cc = getenv("CC") ? getenv("CC") : "cc";
  snprintf(cmd, sizeof cmd,
           "%s -std=c99 -Wall -Werror -Wno-unused-function -o %s %s -lm 2>&1 | sed 's/^/# /'; "
           "test -x %s", cc, exe, cfile, exe);
  int rc = system(cmd);
  ok(rc == 0, "the C printer's functions of every op compile (%s)", cc);
  FILE *run = rc == 0 ? popen(exe, "r") : NULL;
  for (int i = 0; i < nops; i++) {
    int op = ops[i];
    double got[NX];
    int n = 0;
    for (int j = 0; run && j < NX; j++)
      n += fscanf(run, "%la", &got[j]) == 1;
    ok(n == NX && max_err(got, cwant[op]) <= 1e-15,
       "%s: the C printer's function computes the interpreter's values", dnc_ops[op].name);
  }
  if (run)
    pclose(run);
  unlink(exe);
  rmdir(dir);
}

int main(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  if (dnc_context_create(&o, &ctx) != DNC_OK) {
    printf("Bail out! no context: %s\n", dnc_last_error());
    return 1;
  }
  char cfile[] = "/tmp/dnc-test-ops-XXXXXX.c";
  int fd = mkstemps(cfile, 2);
  csrc = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!csrc) {
    printf("Bail out! no temporary file\n");
    return 1;
  }
  dnc_print_c_prelude(csrc);
  int ops[OP__COUNT], nops = 0;
  for (int op = 0; op < OP__COUNT; op++) {
    if (dnc_ops[op].arity == 0) /* leaves: in every function below */
      continue;
    /* rename the printed function per op */
    fprintf(csrc, "#define f f_%s\n", dnc_ops[op].name);
    test_op(op);
    fprintf(csrc, "#undef f\n");
    ops[nops++] = op;
  }
  fputs("#include <stdio.h>\nint main(void)\n{\n", csrc);
  for (int i = 0; i < nops; i++)
    for (int j = 0; j < NX; j++)
      fprintf(csrc, "  printf(\"%%a\\n\", call_%s(%.17g));\n", dnc_ops[ops[i]].name, xs[j]);
  fputs("  return 0;\n}\n", csrc);
  fclose(csrc);
  test_c_printer(cfile, ops, nops);
  unlink(cfile);

  /* aot.c defines a runtime function in IR over the C library function
   * of the op's C spelling: one that is a prelude helper must never be
   * called, so vmath.c lowers it natively in both precisions */
  for (int op = 0; op < OP__COUNT; op++)
    if (dnc_ops[op].rt && !strncmp(dnc_ops[op].c, "dnc_", 4))
      ok(dnc_vm_native(op, 0) && dnc_vm_native(op, 1),
         "%s: no C library function, so vmath.c lowers it in f32 and f64", dnc_ops[op].name);
  dnc_context_free(ctx);
  return done_testing();
}
