/*
 * eval_cmd.c - `dnc eval`: functions evaluated at points by the reference
 * interpreter, or by their JIT-compiled kernels in a dtype.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime.h"

static const char usage[] =
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

/* ORDER: dnc_dtype */
static const char *const dtypes[] = {"f32", "f64", "bf16", "f16", NULL};

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

/* At most the first 60 bytes of s[0..n), not cutting a UTF-8 character,
 * control bytes shown as \xHH (a NUL too: \0 before a digit read as an
 * octal escape, '1\02' for 1, NUL, 2): the line
 * may be any data, and an escape sequence must not reach the terminal. */
static void put_shown(FILE *out, const char *s, size_t n)
{
  size_t end = n < 60 ? n : 60;
  /* s[end] continues a character: leave all of it out (at most 3 bytes
   * back; a run of stray continuation bytes is shown as \xHH) */
  for (size_t k = 0; k < 3 && end < n && end > 0 &&
                     ((unsigned char)s[end] & 0xC0) == 0x80; k++)
    end--;
  for (size_t i = 0; i < end;) {
    unsigned char c = (unsigned char)s[i];
    /* a byte that is not UTF-8 is shown as a control byte is: raw, it
     * would reach the terminal as garbage */
    size_t l = c < 0x80 ? 1 : dnc_utf8_len((const unsigned char *)s + i,
                                           end - i);
    if (c < 0x20 || c == 0x7f || !l)
      fprintf(out, "\\x%02X", c);
    else
      fwrite(s + i, 1, l, out);
    i += l ? l : 1;
  }
}

/* The longest line of X values read from standard input, its newline not
 * counted (docs/cli.md): far more than a number and the white space around
 * it need, and the bound on the memory an input that never ends a line
 * takes. */
#define MAX_LINE ((size_t)1 << 20)

/* Evaluates at the values of standard input, one per line, blank lines
 * skipped; an exit status. */
static int eval_stdin(const evaluator *ev, dnc_fn **fns, int n,
                      double **params)
{
  char *line = malloc(MAX_LINE + 1);
  if (!line)
    dnc_die(__FILE__, __LINE__, "out of memory");
  size_t l;
  unsigned long long lineno = 0; /* an int would overflow on 2^31 lines */
  int rc = 0, got;
  /* 0 with l > 0: a last line without its newline. A failed write of the
   * results stops it (main.c says why): an endless input to a full disk
   * was read forever */
  while (!rc && !ferror(stdout) &&
         ((got = dnc_cli_read_line(stdin, line, MAX_LINE + 1, &l,
                                          MAX_LINE + 1)) != 0 || l > 0)) {
    lineno++;
    if (got == 2 || got < 0) {
      int saved_errno = errno;
      fflush(stdout);
      if (got == 2)
        fprintf(stderr, "<stdin>:%llu: error: line too long (more than %zu "
                        "bytes)\n", lineno, MAX_LINE);
      else
        fprintf(stderr, "dnc: error: cannot read '<stdin>': %s\n",
                strerror(saved_errno));
      rc = DNC_EXIT_INPUT;
      break;
    }
    while (l && (line[l - 1] == '\r' || line[l - 1] == ' ' ||
                 line[l - 1] == '\t'))
      line[--l] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (p == line + l)
      continue;
    double d;
    if (memchr(p, 0, l - (size_t)(p - line)) || !dnc_cli_number(p, &d)) {
      fflush(stdout);
      fprintf(stderr, "<stdin>:%llu: error: not a number: '", lineno);
      put_shown(stderr, p, l - (size_t)(p - line));
      fputs("'\n", stderr);
      rc = DNC_EXIT_INPUT;
    } else if (!eval_row(ev, fns, n, params, d)) {
      rc = DNC_EXIT_INPUT;
    }
  }
  free(line);
  return rc;
}

/* What eval's arguments fill besides the table's options. */
typedef struct eval_args {
  const char *file;
  double *xs; /* the points given as arguments */
  int nx;
  setting *set; /* -p NAME=V */
  int nset;
  const dnc_cli *c; /* for a usage error from -p */
} eval_args;

static int add_param(void *arg, const char *opt, const char *v)
{
  (void)opt;
  eval_args *a = arg;
  const char *eq = strchr(v, '=');
  double d;
  if (!eq || eq == v || !dnc_cli_number(eq + 1, &d))
    return -1;
  size_t len = (size_t)(eq - v);
  for (int i = 0; i < a->nset; i++) /* the last of two was taken, silently */
    if (strlen(a->set[i].name) == len && !strncmp(a->set[i].name, v, len))
      return dnc_cli_param_again(a->c, a->set[i].name, a->set[i].value, d);
  a->set[a->nset].name = strndup(v, len);
  a->set[a->nset++].value = d;
  return 0;
}

/* FILE, then the points (a number that looks like an option, -1, is a
 * point once FILE is known) */
static int eval_arg(const dnc_cli *c, void *arg, const char *s)
{
  eval_args *a = arg;
  double d;
  if (a->file && dnc_cli_number(s, &d))
    a->xs[a->nx++] = d;
  else if (dnc_cli_dashed(s))
    return DNC_CLI_UNKNOWN;
  else if (!a->file)
    a->file = s;
  else
    return dnc_cli_usage_error(c, "not a number: '%s'", s);
  return -1;
}

static int run(const dnc_cli *c, int argc, char **argv)
{
  const char *names = NULL, *file = NULL, *dump_ir = NULL;
  int nx = 0, nset = 0, rc = 0;
  evaluator ev = {0, DNC_F64};
  dnc_context *ctx = NULL;
  dnc_module *jm = NULL;
  double *xs = calloc((size_t)argc + 1, sizeof *xs);
  setting *set = calloc((size_t)argc + 1, sizeof *set);
  eval_args ea = {NULL, xs, 0, set, 0, c};
  const dnc_opt opts[] = {
      {.s = "-f", .l = "--function", .kind = DNC_OPT_STRING, .dest = &names,
       .what = "function names"},
      {.s = "-p", .l = "--param", .kind = DNC_OPT_CALL, .takes = 1,
       .call = add_param, .name = "--param", .what = "NAME=NUMBER",
       .repeat = 1},
      {.l = "--jit", .kind = DNC_OPT_FLAG, .dest = &ev.jit},
      {.l = "--dtype", .kind = DNC_OPT_CHOICE, .dest = &ev.dtype,
       .choices = dtypes, .given = &ev.jit},
      {.l = "--dump-ir", .kind = DNC_OPT_STRING, .dest = &dump_ir,
       .what = "a directory", .given = &ev.jit},
      {0},
  };
  rc = dnc_cli_parse(c, argc, argv, opts, eval_arg, &ea);
  file = ea.file;
  nx = ea.nx;
  nset = ea.nset; /* freed at out */
  if (rc >= 0)
    goto out;
  rc = 0;
  if (!file) {
    rc = dnc_cli_usage_error(c, "no input file");
    goto out;
  }
  /* standard input holds the source: no values could follow it there */
  if (!strcmp(file, "-") && !nx) {
    rc = dnc_cli_usage_error(c, "the source is read from standard input "
                                "('-'), so the values of x must be given "
                                "as arguments");
    goto out;
  }
  dnc_mod *m = dnc_cli_load(c, (char **)&file, 1);
  if (!m) {
    rc = DNC_EXIT_INPUT;
    goto out;
  }
  dnc_fn **fns;
  int n;
  if (!dnc_cli_functions(c, m, names, 1, &fns, &n)) {
    rc = DNC_EXIT_USAGE;
  } else if (!names && n > 1) {
    rc = dnc_cli_usage_error(c, "'%s' defines %d functions; choose with -f",
                             strcmp(file, "-") ? file : "<stdin>", n);
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
        rc = dnc_cli_usage_error(c, "no function evaluated has a "
                                    "parameter '%s'", set[s].name);
    /* a kernel too large to compile is refused at its definition, as
     * dnc compile refuses it, and before any row (or the header) is
     * printed: the JIT would only find it at the first point */
    for (int k = 0; k < n && !rc && ev.jit; k++) {
      char why[256];
      if (dnc_kernel_check(m, fns[k], why, sizeof why)) {
        dnc_diag_add(&m->diags, DNC_SEV_ERROR, fns[k]->src, fns[k]->loc,
                     "%s", why);
        dnc_diag_render(stderr, m->diags.tail);
        rc = DNC_EXIT_INPUT;
      }
    }
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
        rc = DNC_EXIT_INPUT;
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
          rc = DNC_EXIT_INPUT;
    } else if (!rc) {
      rc = eval_stdin(&ev, fns, n, params);
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

const dnc_command dnc_cmd_eval = {
    "eval", "evaluate functions with the reference interpreter", usage, run};
