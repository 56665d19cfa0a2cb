/*
 * main.c - the dnc command.
 *
 *   dnc check FILE...                    parse and check
 *   dnc print [-f NAME[,NAME]] FILE...   each function as dnc source
 *   dnc eval FILE [-f NAME[,NAME]] [--param P=V]... [X...]
 *   dnc diff, compile; fit, search, plot (tools.h: fit_cmd.c, search_cmd.c,
 *   plot.c)
 *
 * Exit status: 0 success, 1 an error in the input, 2 a usage error.
 * Diagnostics go to stderr, results to stdout.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "dnc.h"
#include "runtime.h"
#include "cli.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

static const char *prog = "dnc";
static int no_warnings; /* -w: warnings (and their notes) are not shown */

static const char usage_main[] =
    "usage: dnc <command> [options] FILE...\n"
    "\n"
    "dnc compiles point-wise functions that replace normalization layers\n"
    "(DyT, DyISRU, Derf, ...) into derivatives and kernels.\n"
    "\n"
    "commands:\n"
    "  check   parse and check source files; report errors and warnings\n"
    "  print   print each function's expression DAG back as dnc source\n"
    "  eval    evaluate functions with the reference interpreter\n"
    "  diff    print derivatives with respect to x and the parameters\n"
    "  compile compile the kernels ahead of time: a shared library, an\n"
    "          object, assembly, LLVM IR or a C header\n"
    "  fit     fit a function's parameters to points, or to LayerNorm\n"
    "  search  rank the candidate functions of a search space\n"
    "  plot    draw functions and their derivatives as SVG\n"
    "\n"
    "options:\n"
    "  -h, --help     this help; 'dnc CMD --help' for a command's\n"
    "  --version      the version of dnc and of LLVM, and the host CPU\n"
    "  -w             (after the command) do not show warnings\n"
    "\n"
    "exit status: 0 success, 1 error in the input, 2 usage error\n";

static const char usage_check[] =
    "usage: dnc check [-v] FILE...\n"
    "\n"
    "Parses and checks the files as one module (functions may call each\n"
    "other across files) and prints errors and warnings to stderr.\n"
    "'-' reads standard input.\n"
    "\n"
    "  -v, --verbose  also list each function's signature on success\n";

static const char usage_print[] =
    "usage: dnc print [-f NAME[,NAME...]] FILE...\n"
    "\n"
    "Prints each function (or the named ones) as dnc source that parses\n"
    "back to the same expression DAG: lets and calls resolved away, shared\n"
    "subexpressions bound once with 'let'.\n";

static const char usage_eval[] =
    "usage: dnc eval FILE [-f NAME[,NAME...]] [--param P=V]... [--jit]\n"
    "                [--dtype f32|f64|bf16|f16] [--dump-ir DIR] [X...]\n"
    "\n"
    "Evaluates functions at each X with the reference interpreter (extended\n"
    "precision, rounded to double) and prints the results in full precision.\n"
    "With no X, reads values from standard input, one per line.\n"
    "\n"
    "  -f, --function NAMES  the functions to evaluate, separated by commas\n"
    "                        (default: the only function in FILE)\n"
    "  -p, --param P=V       set parameter P (default: its declared value)\n"
    "  --jit                 evaluate with the JIT-compiled forward kernel\n"
    "                        instead (X is rounded to the dtype first)\n"
    "  --dtype T             the kernel's dtype (default f64); implies --jit\n"
    "  --dump-ir DIR         write each kernel module's LLVM IR before and\n"
    "                        after optimisation into DIR; implies --jit\n"
    "\n"
    "With one function, prints one value per line; with several, a table\n"
    "with a header: x, then one column per function.\n";

static const char usage_diff[] =
    "usage: dnc diff [-f NAME[,NAME...]] [--wrt VARS] [--order N]\n"
    "                [--format dsl|latex|c|torch] [--stats] FILE...\n"
    "\n"
    "Prints derivatives of each function (or the named ones), simplified.\n"
    "\n"
    "  --wrt all     every variable, x and each parameter (the default);\n"
    "                with --order N, every derivative of order N (mixed\n"
    "                ones included, each once)\n"
    "  --wrt V       the input (x) or a parameter: the N-th derivative\n"
    "                with respect to V\n"
    "  --wrt V1,V2   the mixed derivative d/dV1 d/dV2 (no --order)\n"
    "  --order N     1 to 16 (default 1)\n"
    "  --format dsl  dnc source: each derivative a fn named like dyt__dx,\n"
    "                dyt__dalpha, dyt__dx2, dyt__dx_dalpha (the default)\n"
    "  --format latex   LaTeX equations\n"
    "  --format c    C99 functions over double, after static inline helpers\n"
    "                for the built-ins C lacks (sigmoid, NaN-propagating min...)\n"
    "  --format torch   Python functions over PyTorch tensors: f itself,\n"
    "                then each derivative, after `import torch` and helpers\n"
    "  --stats       also print the number of DAG nodes of f and of each\n"
    "                derivative, as comments\n";

static const char usage_compile[] =
    "usage: dnc compile FILE... -o OUT [-H HEADER] [options]\n"
    "\n"
    "Compiles the kernels of every function in FILEs (forward, backward and\n"
    "the layer forms, in f32, f64, bf16 and f16) ahead of time.\n"
    "\n"
    "options:\n"
    "  -o OUT            the file to write\n"
    "  -H HEADER         also write a C header for the kernels\n"
    "  --emit=KIND       so: a shared library (default), with a version of\n"
    "                    each kernel per CPU level picked when it is loaded,\n"
    "                    and the descriptor that dnc_module_load reads;\n"
    "                    obj, asm, llvm: one CPU's kernels; header: the header\n"
    "  -c, -S            --emit=obj, --emit=asm\n"
    "  -O0 .. -O3        optimisation level (default -O2, as the JIT)\n"
    "  --target TRIPLE   target triple, e.g. aarch64-linux-gnu (default: this\n"
    "                    machine's)\n"
    "  --cpu NAME[,...]  an LLVM CPU name, or native; for a library also a\n"
    "                    list of x86-64 levels (default: a library carries\n"
    "                    x86-64-v2,x86-64-v3,x86-64-v4; other outputs the\n"
    "                    target's baseline, x86-64 or generic)\n"
    "\n"
    "environment: CC, the C compiler driver that links a library (cc);\n"
    "DNC_AOT_CPU, when a library is loaded, forces one of its levels\n";

static const char usage_fit[] =
    "usage: dnc fit FILE [-f NAME] (--data POINTS.csv [--x COL] [--y COL]\n"
    "               | --target layernorm|rmsnorm [target options])\n"
    "               [--init P=V]... [--fix P=V]... [--gain] [--max-iter N]\n"
    "               [--format text|json|csv] [--points OUT.csv]\n"
    "\n"
    "Fits the function's parameters to (x, y) points by least squares\n"
    "(Levenberg-Marquardt, the Jacobian from dnc's symbolic derivatives) and\n"
    "prints them with their standard errors, the residuals, the iterations\n"
    "and why the fit stopped (docs/fit.md).\n"
    "\n"
    "  -f, --function NAME  the function (default: the only one in FILE)\n"
    "  --data FILE          a CSV file with a header line\n"
    "  --x COL, --y COL     its columns, by name or number (default: x and\n"
    "                       y, or the two columns of a two-column file)\n"
    "  --target KIND        points dnc makes: a normalized outlier of C\n"
    "                       channel values, layernorm or rmsnorm; the model\n"
    "                       is then gamma * f(x), gamma the layer's gain\n"
    "  --init P=V           start parameter P at V (default: its default)\n"
    "  --fix P=V            hold parameter P at V (gamma too)\n"
    "  --gain               fit gamma * f(x) to --data as well\n"
    "  --max-iter N         at most N iterations (default 200)\n"
    "  --format F           text (default), json, or csv (one row)\n"
    "  --points OUT.csv     also write x, y, the fit and the residual\n"
    "\n"
    "target options: --channels C (512), --dist normal|uniform|laplace\n"
    "(normal), --scale S (the standard deviation, 1), --steps N (200\n"
    "outlier positions, mirrored: 2N points), --reach X (the outlier's\n"
    "largest value; 4 sqrt(C) S), --eps E (1e-5), --seed N (0)\n"
    "\n"
    "exit status 1 also when the fit does not converge or is ill-posed\n";

static const char usage_search[] =
    "usage: dnc search SPEC [-o PREFIX] [--threads N] [--top K] [--quiet]\n"
    "\n"
    "Expands a search space (docs/search.md) into candidate functions,\n"
    "drops those whose simplified DAGs are equal, measures each one's\n"
    "properties (zero-centred, bounded, center-sensitive, monotonic), its\n"
    "fit to LayerNorm and the spec's scores, and ranks them. Writes\n"
    "PREFIX.csv and PREFIX.json (default PREFIX: SPEC's name without its\n"
    "extension, in the current directory) and prints the top K.\n"
    "\n"
    "  -o, --output PREFIX  where the ranked tables go\n"
    "  --threads N          worker threads (default: every CPU)\n"
    "  --top K              rows of the table printed (default 10; 0: none)\n"
    "  --quiet              no progress bar and no summary on stderr\n"
    "\n"
    "An interrupted search (SIGINT, SIGTERM, or killed) keeps what it has\n"
    "measured in PREFIX.journal; the same command resumes it.\n";

static const char usage_plot[] =
    "usage: dnc plot FILE -f NAME[,NAME...] [-p P=V]... [--range A:B]\n"
    "                [--deriv] [--top K] [--title T] -o OUT.svg\n"
    "\n"
    "Draws functions (and with --deriv their derivatives, dashed) as an SVG\n"
    "image with axes, ticks and a legend. FILE may also be the ranked CSV of\n"
    "'dnc search': then the top K candidates are drawn.\n"
    "\n"
    "  -f, --function NAMES  the functions (default: every one in FILE)\n"
    "  -p, --param P=V       set parameter P of the functions that have it\n"
    "  --range A:B           the x range (default -6:6)\n"
    "  --deriv               also draw df/dx\n"
    "  --top K               with a search's CSV: its first K rows (default 5)\n"
    "  --title T             a title above the plot\n"
    "  -o, --output OUT.svg  the image to write\n";

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *usage, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "%s", usage);
  return EXIT_USAGE;
}

/* Loads files into one module and reports diagnostics; 0 on errors. */
static dnc_mod *load(char **files, int nfiles)
{
  dnc_mod *m = dnc_mod_new();
  int ok = 1;
  for (int i = 0; i < nfiles; i++)
    ok &= dnc_mod_read_file(m, files[i]) != NULL;
  if (ok)
    dnc_mod_build(m);
  int shown = 1;
  for (const dnc_diag *d = m->diags.head; d; d = d->next) {
    if (d->sev != DNC_SEV_NOTE)
      shown = !(no_warnings && d->sev == DNC_SEV_WARNING);
    if (shown)
      dnc_diag_render(stderr, d);
  }
  if (m->diags.suppressed)
    fprintf(stderr, "dnc: note: %d more error%s not shown\n",
            m->diags.suppressed, m->diags.suppressed == 1 ? "" : "s");
  if (m->diags.nerrors) {
    dnc_mod_free(m);
    return NULL;
  }
  return m;
}

/* Resolves "-f a,b" into functions; all of them when names is NULL. */
static int select_fns(dnc_mod *m, const char *names, dnc_fn ***out, int *n)
{
  *out = calloc((size_t)m->nfns + 1, sizeof **out);
  *n = 0;
  if (!names) {
    for (int i = 0; i < m->nfns; i++)
      (*out)[(*n)++] = m->fns[i];
    return 1;
  }
  char *copy = strdup(names);
  int ok = 1;
  if (strspn(names, ",") == strlen(names)) { /* "" or "," */
    fprintf(stderr, "%s: error: -f needs function names\n", prog);
    free(copy);
    return 0;
  }
  for (char *save, *t = strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    dnc_fn *f = dnc_mod_find(m, t);
    if (!f) {
      fprintf(stderr, "%s: error: no function '%s'", prog, t);
      const char **c = calloc((size_t)m->nfns + 1, sizeof *c);
      for (int i = 0; i < m->nfns; i++)
        c[i] = m->fns[i]->name;
      const char *best = dnc_did_you_mean(t, c, m->nfns);
      free(c);
      if (best)
        fprintf(stderr, "; did you mean '%s'?", best);
      fputc('\n', stderr);
      ok = 0;
      continue;
    }
    int seen = 0;
    for (int i = 0; i < *n; i++)
      seen |= (*out)[i] == f;
    if (seen)
      continue; /* -f a,a is a */
    *out = realloc(*out, sizeof **out * (size_t)(*n + 2));
    (*out)[(*n)++] = f;
  }
  free(copy);
  return ok;
}

/* The options of the commands that read source files; each command allows
 * some of them. */
enum { O_FUNCTION = 1, O_VERBOSE = 2, O_DIFF = 4 };

typedef struct args {
  const char *names; /* -f */
  int verbose;       /* -v */
  const char *wrt;   /* diff: --wrt, --order, --format, --stats */
  int order, fmt, stats;
  int nfiles;
  char **files;
} args;

/* Parses a command's arguments: -1 to go on, else the exit status (0 after
 * --help). The caller frees a->files either way. */
static int parse_args(int argc, char **argv, const char *usage, int allowed,
                      args *a)
{
  memset(a, 0, sizeof *a);
  a->wrt = "all";
  a->fmt = DNC_FMT_DSL;
  a->files = calloc((size_t)argc + 1, sizeof *a->files);
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (dnc_cli_is_help(argv[i])) {
      fputs(usage, stdout);
      return 0;
    } else if ((allowed & O_FUNCTION) &&
               (v = dnc_cli_opt(argc, argv, &i, "-f", "--function"))) {
      if (!*v)
        return usage_error(usage, "-f needs function names");
      a->names = v;
    } else if ((allowed & O_VERBOSE) &&
               (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))) {
      a->verbose = 1;
    } else if ((allowed & O_DIFF) && (v = dnc_cli_opt(argc, argv, &i, "--wrt", "--wrt"))) {
      if (!*v)
        return usage_error(usage, "--wrt needs a variable");
      a->wrt = v;
    } else if ((allowed & O_DIFF) &&
               (v = dnc_cli_opt(argc, argv, &i, "--order", "--order"))) {
      char *end;
      long n = strtol(v, &end, 10);
      if (!*v || *end || n < 1 || n > 16)
        return usage_error(usage, "--order needs a number from 1 to 16, not "
                                  "'%s'", v);
      a->order = (int)n;
    } else if ((allowed & O_DIFF) &&
               (v = dnc_cli_opt(argc, argv, &i, "--format", "--format"))) {
      if (!strcmp(v, "dsl"))
        a->fmt = DNC_FMT_DSL;
      else if (!strcmp(v, "latex"))
        a->fmt = DNC_FMT_LATEX;
      else if (!strcmp(v, "c"))
        a->fmt = DNC_FMT_C;
      else if (!strcmp(v, "torch"))
        a->fmt = DNC_FMT_TORCH;
      else
        return usage_error(usage, "--format is dsl, latex, c or torch, not "
                                  "'%s'", v);
    } else if ((allowed & O_DIFF) && !strcmp(argv[i], "--stats")) {
      a->stats = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return usage_error(usage, "unknown option '%s'", argv[i]);
    } else {
      a->files[a->nfiles++] = argv[i];
    }
  }
  if (!a->nfiles)
    return usage_error(usage, "no input files");
  if (strchr(a->wrt, ',') && a->order)
    return usage_error(usage, "--wrt with a list gives one mixed derivative; "
                              "it takes no --order");
  return -1;
}

/* parse_args, then load the files: -1 with *m set to go on, else the exit
 * status */
static int parse_and_load(int argc, char **argv, const char *usage,
                          int allowed, args *a, dnc_mod **m)
{
  int rc = parse_args(argc, argv, usage, allowed, a);
  if (rc < 0) {
    *m = load(a->files, a->nfiles);
    rc = *m ? -1 : EXIT_INPUT;
  }
  free(a->files);
  a->files = NULL;
  return rc;
}

static int cmd_check(int argc, char **argv)
{
  args a;
  dnc_mod *m;
  int rc = parse_and_load(argc, argv, usage_check, O_VERBOSE, &a, &m);
  if (rc >= 0)
    return rc;
  for (int i = 0; a.verbose && i < m->nfns; i++) {
    dnc_print_signature(stdout, m->fns[i], m->fns[i]->name);
    fputc('\n', stdout);
  }
  dnc_mod_free(m);
  return 0;
}

static int cmd_print(int argc, char **argv)
{
  args a;
  dnc_mod *m;
  int rc = parse_and_load(argc, argv, usage_print, O_FUNCTION, &a, &m);
  if (rc >= 0)
    return rc;
  dnc_fn **fns;
  int n;
  int ok = select_fns(m, a.names, &fns, &n);
  for (int i = 0; ok && i < n; i++)
    dnc_print_fn(stdout, fns[i]);
  free(fns);
  dnc_mod_free(m);
  return ok ? 0 : EXIT_USAGE;
}

typedef struct setting {
  const char *name;
  double value;
  int applied;
} setting;

static void print_value(double v)
{
  char buf[40];
  dnc_format_number(buf, sizeof buf, v);
  fputs(buf, stdout);
}

/* x rounded to dtype t and back (bf16: to nearest even) */
static double to_dtype(int t, double x, unsigned char *store)
{
  float f = (float)x;
  switch (t) {
  case DNC_F64:
    memcpy(store, &x, 8);
    return x;
  case DNC_F32:
    memcpy(store, &f, 4);
    return f;
  case DNC_BF16: {
    uint32_t b;
    memcpy(&b, &f, 4);
    b = isnan(f) ? (b | 0x400000u) >> 16 : (b + 0x7fffu + ((b >> 16) & 1)) >> 16;
    uint16_t h = (uint16_t)b;
    memcpy(store, &h, 2);
    b <<= 16;
    memcpy(&f, &b, 4);
    return f;
  }
  default: {
    _Float16 h = (_Float16)x;
    memcpy(store, &h, 2);
    return (double)h;
  }
  }
}

static double from_dtype(int t, const unsigned char *store)
{
  switch (t) {
  case DNC_F64: {
    double d;
    memcpy(&d, store, 8);
    return d;
  }
  case DNC_F32: {
    float f;
    memcpy(&f, store, 4);
    return f;
  }
  case DNC_BF16: {
    uint16_t h;
    memcpy(&h, store, 2);
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
  }
  default: {
    _Float16 h;
    memcpy(&h, store, 2);
    return (double)h;
  }
  }
}

/* How eval computes: the interpreter, or the JIT's kernels in a dtype. */
typedef struct evaluator {
  int jit, dtype;
} evaluator;

/* Prints one row; 0 when a kernel call failed (reported). */
static int eval_row(const evaluator *ev, dnc_fn **fns, int n, double **params,
                    double x)
{
  unsigned char in[8], out[8];
  if (ev->jit)
    x = to_dtype(ev->dtype, x, in);
  double *v = calloc((size_t)n + 1, sizeof *v);
  for (int k = 0; k < n; k++) {
    if (!ev->jit) {
      v[k] = dnc_interp(fns[k], x, params[k]);
      continue;
    }
    dnc_tensor tx = {in, (dnc_dtype)ev->dtype, 1, 1, 0};
    dnc_tensor ty = {out, (dnc_dtype)ev->dtype, 1, 1, 0};
    dnc_status st = dnc_forward(fns[k], &tx, &ty, params[k]);
    if (st != DNC_OK) {
      fflush(stdout);
      fprintf(stderr, "dnc: error: cannot run the kernel of '%s': %s%s%s\n",
              fns[k]->name, dnc_status_string(st),
              *dnc_last_error() ? ": " : "", dnc_last_error());
      free(v);
      return 0;
    }
    v[k] = from_dtype(ev->dtype, out);
  }
  if (n > 1) {
    print_value(x);
    fputc('\t', stdout);
  }
  for (int k = 0; k < n; k++) {
    if (k)
      fputc('\t', stdout);
    print_value(v[k]);
  }
  fputc('\n', stdout);
  free(v);
  return 1;
}

static int cmd_eval(int argc, char **argv)
{
  const char *names = NULL, *file = NULL, *dump_ir = NULL;
  int nx = 0, nset = 0, rc = 0;
  evaluator ev = {0, DNC_F64};
  dnc_context *ctx = NULL;
  dnc_module *jm = NULL;
  double *xs = calloc((size_t)argc + 1, sizeof *xs);
  setting *set = calloc((size_t)argc + 1, sizeof *set);
  for (int i = 1; i < argc; i++) {
    const char *v;
    double d;
    if (dnc_cli_is_help(argv[i])) {
      fputs(usage_eval, stdout);
      goto out;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "-f", "--function"))) {
      if (!*v) {
        rc = usage_error(usage_eval, "-f needs function names");
        goto out;
      }
      names = v;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "-p", "--param"))) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v || !dnc_cli_number(eq + 1, &d)) {
        rc = usage_error(usage_eval, "--param needs NAME=NUMBER, not '%s'", v);
        goto out;
      }
      set[nset].name = strndup(v, (size_t)(eq - v));
      set[nset++].value = d;
    } else if (!strcmp(argv[i], "--jit")) {
      ev.jit = 1;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "--dtype", "--dtype"))) {
      int t = 0;
      while (t < 4 && strcmp(dnc_dtype_name((dnc_dtype)t), v))
        t++;
      if (t == 4) {
        rc = usage_error(usage_eval, "--dtype is f32, f64, bf16 or f16, not "
                                     "'%s'", v);
        goto out;
      }
      ev.jit = 1;
      ev.dtype = t;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "--dump-ir", "--dump-ir"))) {
      if (!*v) {
        rc = usage_error(usage_eval, "--dump-ir needs a directory");
        goto out;
      }
      ev.jit = 1;
      dump_ir = v;
    } else if (file && dnc_cli_number(argv[i], &d)) {
      xs[nx++] = d;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      rc = usage_error(usage_eval, "unknown option '%s'", argv[i]);
      goto out;
    } else if (!file) {
      file = argv[i];
    } else {
      rc = usage_error(usage_eval, "not a number: '%s'", argv[i]);
      goto out;
    }
  }
  if (!file) {
    rc = usage_error(usage_eval, "no input file");
    goto out;
  }
  dnc_mod *m = load((char **)&file, 1);
  if (!m) {
    rc = EXIT_INPUT;
    goto out;
  }
  dnc_fn **fns;
  int n;
  if (!select_fns(m, names, &fns, &n)) {
    rc = EXIT_USAGE;
  } else if (!names && n > 1) {
    rc = usage_error(usage_eval, "'%s' defines %d functions; choose with -f",
                     file, n);
  } else {
    double **params = calloc((size_t)n, sizeof *params);
    for (int k = 0; k < n; k++) {
      params[k] = calloc((size_t)fns[k]->nparams + 1, sizeof **params);
      for (int j = 0; j < fns[k]->nparams; j++)
        params[k][j] = fns[k]->params[j].def;
      for (int s = 0; s < nset; s++) {
        int j = dnc_fn_param_index(fns[k], set[s].name);
        if (j >= 0) {
          params[k][j] = set[s].value;
          set[s].applied = 1;
        }
      }
    }
    for (int s = 0; s < nset && !rc; s++)
      if (!set[s].applied)
        rc = usage_error(usage_eval, "no function evaluated has a parameter "
                                     "'%s'", set[s].name);
    if (!rc && ev.jit) {
      dnc_options o;
      dnc_options_init(&o);
      o.threads = 1;
      o.dump_ir = dump_ir;
      dnc_status st = dnc_context_create(&o, &ctx);
      if (st == DNC_OK)
        st = dnc_module_wrap(ctx, m, &jm); /* m now belongs to jm */
      m = NULL;
      if (st != DNC_OK) {
        fprintf(stderr, "dnc: error: cannot start the JIT: %s%s%s\n",
                dnc_status_string(st), *dnc_last_error() ? ": " : "",
                dnc_last_error());
        rc = EXIT_INPUT;
      }
    }
    if (!rc && n > 1) {
      fputs("x", stdout);
      for (int k = 0; k < n; k++)
        printf("\t%s", fns[k]->name);
      fputc('\n', stdout);
    }
    if (!rc && nx) {
      for (int i = 0; i < nx && !rc; i++)
        if (!eval_row(&ev, fns, n, params, xs[i]))
          rc = EXIT_INPUT;
    } else if (!rc) {
      char *line = NULL;
      size_t cap = 0;
      int lineno = 0;
      while (getline(&line, &cap, stdin) >= 0) {
        lineno++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' ||
                     line[l - 1] == ' ' || line[l - 1] == '\t'))
          line[--l] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
          p++;
        if (!*p)
          continue;
        double d;
        if (!dnc_cli_number(p, &d)) {
          fflush(stdout);
          fprintf(stderr, "<stdin>:%d: error: not a number: '%.60s'\n", lineno,
                  p);
          rc = EXIT_INPUT;
          break;
        }
        if (!eval_row(&ev, fns, n, params, d)) {
          rc = EXIT_INPUT;
          break;
        }
      }
      free(line);
    }
    for (int k = 0; k < n; k++)
      free(params[k]);
    free(params);
  }
  free(fns);
  if (m)
    dnc_mod_free(m);
  dnc_module_free(jm);
  dnc_context_free(ctx);
out:
  for (int s = 0; s < nset; s++)
    free((char *)set[s].name);
  free(set);
  free(xs);
  return rc;
}

/* The derivatives --wrt and --order ask of f, into specs[0..*ns); a usage
 * error (and its status) when f lacks a variable. */
static int fn_specs(const dnc_fn *f, const char *wrt, int order,
                    dnc_dspec *specs, int max, int *ns)
{
  char err[256];
  int k;
  if (dnc_dspec_parse(f, wrt, order, specs, max, &k, err, sizeof err) < 0)
    return usage_error(usage_diff, "%s", err);
  if (ns)
    *ns = k;
  return 0;
}

static int cmd_diff(int argc, char **argv)
{
  args a;
  dnc_mod *m;
  int rc = parse_and_load(argc, argv, usage_diff, O_FUNCTION | O_DIFF, &a, &m);
  if (rc >= 0)
    return rc;
  rc = 0;
  const char *wrt = a.wrt;
  int order = a.order ? a.order : 1, fmt = a.fmt, stats = a.stats;
  dnc_fn **fns;
  int n;
  if (!select_fns(m, a.names, &fns, &n)) {
    free(fns);
    dnc_mod_free(m);
    return EXIT_USAGE;
  }
  enum { MAXSPEC = 4096 };
  dnc_dspec *specs = calloc(MAXSPEC, sizeof *specs);
  /* every function's variables are checked before anything is printed */
  for (int k = 0; k < n && !rc; k++)
    rc = fn_specs(fns[k], wrt, order, specs, MAXSPEC, NULL);
  /* every derivative is made (within the DAG's budget) before any is
   * printed, so that one too large prints nothing but the error */
  dnc_node **ds = NULL;
  size_t nd = 0;
  for (int k = 0; k < n && !rc; k++) {
    int ns = 0;
    fn_specs(fns[k], wrt, order, specs, MAXSPEC, &ns);
    dnc_node **nds = realloc(ds, sizeof *ds * (nd + (size_t)ns + 1));
    if (!nds)
      dnc_die(__FILE__, __LINE__, "out of memory");
    ds = nds;
    for (int j = 0; j < ns && !rc; j++)
      if (!(ds[nd++] = dnc_dspec_derive(m, fns[k], &specs[j]))) {
        dnc_diff_too_large(m, fns[k]);
        rc = DNC_EXIT_INPUT;
      }
  }
  if (!rc)
    dnc_print_prelude(stdout, fmt);
  nd = 0;
  for (int k = 0; k < n && !rc; k++) {
    dnc_fn *f = fns[k];
    int ns = 0;
    fn_specs(f, wrt, order, specs, MAXSPEC, &ns);
    if (stats)
      dnc_print_stat(stdout, fmt, f->name, dnc_node_count(f->body));
    dnc_print_head(stdout, f, fmt);
    for (int j = 0; j < ns; j++)
      dnc_dspec_print(stdout, f, &specs[j], ds[nd++], fmt, stats);
  }
  free(ds);
  free(specs);
  free(fns);
  dnc_mod_free(m);
  return rc;
}

/* SIGINT, SIGTERM, SIGHUP during dnc compile: its temporaries removed,
 * then the signal's own death (status 128 + signal) */
static void compile_on_signal(int sig)
{
  dnc_temps_remove_now();
  signal(sig, SIG_DFL);
  raise(sig);
}

static int cmd_compile(int argc, char **argv)
{
  dnc_aot_options o = {DNC_EMIT_SO, NULL, NULL, NULL, NULL, 2, NULL};
  char **files = calloc((size_t)argc + 1, sizeof *files);
  int nfiles = 0, emit_set = 0;
  int rc = -1;
  for (int i = 1; i < argc && rc < 0; i++) {
    const char *v;
    const char *a = argv[i];
    int emit = -1;
    if (dnc_cli_is_help(a)) {
      fputs(usage_compile, stdout);
      rc = 0;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "-o", "--output"))) {
      if (!*v)
        rc = usage_error(usage_compile, "-o needs a file name");
      o.output = v;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "-H", "--header"))) {
      if (!*v)
        rc = usage_error(usage_compile, "-H needs a file name");
      o.header = v;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "--emit", "--emit"))) {
      static const char *const kinds[] = {"so", "obj", "asm", "llvm", "header"};
      for (int k = 0; k < 5; k++)
        if (!strcmp(v, kinds[k]))
          emit = k; /* ORDER: DNC_EMIT_* */
      if (emit < 0)
        rc = usage_error(usage_compile, "--emit is so, obj, asm, llvm or "
                                        "header, not '%s'", v);
    } else if (!strcmp(a, "-c")) {
      emit = DNC_EMIT_OBJ;
    } else if (!strcmp(a, "-S")) {
      emit = DNC_EMIT_ASM;
    } else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' &&
               !a[3]) {
      o.opt_level = a[2] - '0';
    } else if ((v = dnc_cli_opt(argc, argv, &i, "--target", "--target"))) {
      if (!*v)
        rc = usage_error(usage_compile, "--target needs a triple");
      o.triple = v;
    } else if ((v = dnc_cli_opt(argc, argv, &i, "--cpu", "--cpu"))) {
      if (!*v)
        rc = usage_error(usage_compile, "--cpu needs a CPU name");
      o.cpu = v;
    } else if (a[0] == '-' && a[1]) {
      rc = usage_error(usage_compile, "unknown option '%s'", a);
    } else {
      files[nfiles++] = argv[i];
    }
    if (emit >= 0 && rc < 0) {
      if (emit_set && (int)o.emit != emit)
        rc = usage_error(usage_compile, "one kind of output at a time "
                                        "(--emit, -c, -S)");
      o.emit = emit;
      emit_set = 1;
    }
  }
  if (rc < 0 && !nfiles)
    rc = usage_error(usage_compile, "no input files");
  if (rc < 0 && !o.output)
    rc = usage_error(usage_compile, "no output file (-o OUT)");
  if (rc < 0 && o.header && o.emit == DNC_EMIT_HEADER)
    rc = usage_error(usage_compile, "--emit=header writes the header to -o; "
                                    "-H is for another output");
  if (rc < 0 && o.header && !strcmp(o.header, o.output))
    rc = usage_error(usage_compile, "-o and -H name the same file");
  if (rc >= 0) {
    free(files);
    return rc;
  }
  dnc_mod *m = load(files, nfiles);
  free(files);
  if (!m)
    return EXIT_INPUT;
  char *err = NULL;
  rc = 0;
  dnc_temps_track(1);
  struct sigaction sa = {0};
  sa.sa_handler = compile_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (dnc_aot_compile(m, &o, &err)) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    rc = EXIT_INPUT;
  }
  free(err);
  dnc_mod_free(m);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return usage_error(usage_main, "no command given");
  const char *cmd = argv[1];
  if (dnc_cli_is_help(cmd)) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("dnc %s (ABI %d; LLVM %s; host CPU %s)\n", dnc_version(),
           dnc_abi_version(), dnc_llvm_version(), dnc_host_cpu());
    return 0;
  }
  /* -w is accepted by every command that reads sources */
  int k = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-w") || !strcmp(argv[i], "--no-warnings"))
      no_warnings = 1;
    else
      argv[k++] = argv[i];
  }
  argc = k;
  argv[argc] = NULL;
  if (!strcmp(cmd, "check"))
    return cmd_check(argc - 1, argv + 1);
  if (!strcmp(cmd, "print"))
    return cmd_print(argc - 1, argv + 1);
  if (!strcmp(cmd, "eval"))
    return cmd_eval(argc - 1, argv + 1);
  if (!strcmp(cmd, "diff"))
    return cmd_diff(argc - 1, argv + 1);
  if (!strcmp(cmd, "compile"))
    return cmd_compile(argc - 1, argv + 1);
  if (!strcmp(cmd, "fit"))
    return dnc_cmd_fit(&(dnc_cli){usage_fit, no_warnings}, argc - 1, argv + 1);
  if (!strcmp(cmd, "search"))
    return dnc_cmd_search(&(dnc_cli){usage_search, no_warnings}, argc - 1,
                          argv + 1);
  if (!strcmp(cmd, "plot"))
    return dnc_cmd_plot(&(dnc_cli){usage_plot, no_warnings}, argc - 1,
                        argv + 1);
  return usage_error(usage_main, "unknown command '%s'", cmd);
}
