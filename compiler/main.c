/*
 * main.c - the dnc command.
 *
 *   dnc check FILE...                    parse and check
 *   dnc print [-f NAME[,NAME]] FILE...   each function as dnc source
 *   dnc eval FILE [-f NAME[,NAME]] [--param P=V]... [X...]
 *
 * Exit status: 0 success, 1 an error in the input, 2 a usage error.
 * Diagnostics go to stderr, results to stdout.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "dnc.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

static const char *prog = "dnc";

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
    "\n"
    "options:\n"
    "  -h, --help     this help; 'dnc CMD --help' for a command's\n"
    "  --version      the version of dnc and of LLVM, and the host CPU\n"
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
    "usage: dnc eval FILE [-f NAME[,NAME...]] [--param P=V]... [X...]\n"
    "\n"
    "Evaluates functions at each X with the reference interpreter (extended\n"
    "precision, rounded to double) and prints the results in full precision.\n"
    "With no X, reads values from standard input, one per line.\n"
    "\n"
    "  -f, --function NAMES  the functions to evaluate, separated by commas\n"
    "                        (default: the only function in FILE)\n"
    "  -p, --param P=V       set parameter P (default: its declared value)\n"
    "\n"
    "With one function, prints one value per line; with several, a table\n"
    "with a header: x, then one column per function.\n";

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

static int is_help(const char *a)
{
  return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* Parses a whole string as a double (inf and nan included). */
static int parse_number(const char *s, double *v)
{
  if (!*s)
    return 0;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  while (*end == ' ' || *end == '\t' || *end == '\r')
    end++;
  return *end == 0;
}

/* Takes the value of an option given as "-f V", "--opt V" or "--opt=V". */
static const char *opt_value(int argc, char **argv, int *i, const char *s,
                             const char *l)
{
  const char *a = argv[*i];
  size_t ll = strlen(l);
  if (!strncmp(a, l, ll) && a[ll] == '=')
    return a + ll + 1;
  if (strcmp(a, s) && strcmp(a, l))
    return NULL;
  if (*i + 1 >= argc)
    return "";
  return argv[++*i];
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
  dnc_diags_render(stderr, &m->diags);
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
    *out = realloc(*out, sizeof **out * (size_t)(*n + 2));
    (*out)[(*n)++] = f;
  }
  free(copy);
  return ok;
}

static void print_signature(FILE *o, const dnc_fn *f)
{
  fprintf(o, "%s(%s", f->name, f->input);
  for (int i = 0; i < f->nparams; i++) {
    char buf[40];
    dnc_format_double(buf, sizeof buf, f->params[i].def);
    fprintf(o, "%s%s%s = %s", i ? ", " : "; ", f->params[i].name,
            f->params[i].per_channel ? "[]" : "", buf);
  }
  fputs(")\n", o);
}

static int cmd_check(int argc, char **argv)
{
  int verbose = 0, nfiles = 0;
  char **files = calloc((size_t)argc + 1, sizeof *files);
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) {
      fputs(usage_check, stdout);
      free(files);
      return 0;
    } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
      verbose = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      free(files);
      return usage_error(usage_check, "unknown option '%s'", argv[i]);
    } else {
      files[nfiles++] = argv[i];
    }
  }
  if (!nfiles) {
    free(files);
    return usage_error(usage_check, "no input files");
  }
  dnc_mod *m = load(files, nfiles);
  free(files);
  if (!m)
    return EXIT_INPUT;
  if (verbose)
    for (int i = 0; i < m->nfns; i++)
      print_signature(stdout, m->fns[i]);
  dnc_mod_free(m);
  return 0;
}

static int cmd_print(int argc, char **argv)
{
  const char *names = NULL;
  int nfiles = 0;
  char **files = calloc((size_t)argc + 1, sizeof *files);
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (is_help(argv[i])) {
      fputs(usage_print, stdout);
      free(files);
      return 0;
    } else if ((v = opt_value(argc, argv, &i, "-f", "--function"))) {
      if (!*v) {
        free(files);
        return usage_error(usage_print, "-f needs function names");
      }
      names = v;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      free(files);
      return usage_error(usage_print, "unknown option '%s'", argv[i]);
    } else {
      files[nfiles++] = argv[i];
    }
  }
  if (!nfiles) {
    free(files);
    return usage_error(usage_print, "no input files");
  }
  dnc_mod *m = load(files, nfiles);
  free(files);
  if (!m)
    return EXIT_INPUT;
  dnc_fn **fns;
  int n;
  int ok = select_fns(m, names, &fns, &n);
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
  if (isnan(v))
    snprintf(buf, sizeof buf, "%snan", signbit(v) ? "-" : "");
  else if (isinf(v))
    snprintf(buf, sizeof buf, "%sinf", v < 0 ? "-" : "");
  else
    dnc_format_double(buf, sizeof buf, v);
  fputs(buf, stdout);
}

static void eval_row(dnc_fn **fns, int n, double **params, double x)
{
  if (n > 1) {
    print_value(x);
    fputc('\t', stdout);
  }
  for (int k = 0; k < n; k++) {
    if (k)
      fputc('\t', stdout);
    print_value(dnc_interp(fns[k], x, params[k]));
  }
  fputc('\n', stdout);
}

static int cmd_eval(int argc, char **argv)
{
  const char *names = NULL, *file = NULL;
  int nx = 0, nset = 0, rc = 0;
  double *xs = calloc((size_t)argc + 1, sizeof *xs);
  setting *set = calloc((size_t)argc + 1, sizeof *set);
  for (int i = 1; i < argc; i++) {
    const char *v;
    double d;
    if (is_help(argv[i])) {
      fputs(usage_eval, stdout);
      goto out;
    } else if ((v = opt_value(argc, argv, &i, "-f", "--function"))) {
      if (!*v) {
        rc = usage_error(usage_eval, "-f needs function names");
        goto out;
      }
      names = v;
    } else if ((v = opt_value(argc, argv, &i, "-p", "--param"))) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v || !parse_number(eq + 1, &d)) {
        rc = usage_error(usage_eval, "--param needs NAME=NUMBER, not '%s'", v);
        goto out;
      }
      set[nset].name = strndup(v, (size_t)(eq - v));
      set[nset++].value = d;
    } else if (file && parse_number(argv[i], &d)) {
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
    if (!rc && n > 1) {
      fputs("x", stdout);
      for (int k = 0; k < n; k++)
        printf("\t%s", fns[k]->name);
      fputc('\n', stdout);
    }
    if (!rc && nx) {
      for (int i = 0; i < nx; i++)
        eval_row(fns, n, params, xs[i]);
    } else if (!rc) {
      char line[512];
      int lineno = 0;
      while (fgets(line, sizeof line, stdin)) {
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
        if (!parse_number(p, &d)) {
          fflush(stdout);
          fprintf(stderr, "<stdin>:%d: error: not a number: '%.60s'\n", lineno,
                  p);
          rc = EXIT_INPUT;
          break;
        }
        eval_row(fns, n, params, d);
      }
    }
    for (int k = 0; k < n; k++)
      free(params[k]);
    free(params);
  }
  free(fns);
  dnc_mod_free(m);
out:
  for (int s = 0; s < nset; s++)
    free((char *)set[s].name);
  free(set);
  free(xs);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return usage_error(usage_main, "no command given");
  const char *cmd = argv[1];
  if (is_help(cmd)) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("dnc %s (ABI %d; LLVM %s; host CPU %s)\n", dnc_version(),
           dnc_abi_version(), dnc_llvm_version(), dnc_host_cpu());
    return 0;
  }
  if (!strcmp(cmd, "check"))
    return cmd_check(argc - 1, argv + 1);
  if (!strcmp(cmd, "print"))
    return cmd_print(argc - 1, argv + 1);
  if (!strcmp(cmd, "eval"))
    return cmd_eval(argc - 1, argv + 1);
  return usage_error(usage_main, "unknown command '%s'", cmd);
}
