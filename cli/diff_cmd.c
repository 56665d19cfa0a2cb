/*
 * diff_cmd.c - `dnc diff`: the derivatives of functions, simplified, in
 * dnc source, LaTeX, C or PyTorch (dspec.c chooses and prints them).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
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

/* ORDER: DNC_FMT_* */
static const char *const formats[] = {"dsl", "latex", "c", "torch", NULL};

/* The derivatives --wrt and --order ask of f, into specs[0..*ns); a usage
 * error (and its status) when f lacks a variable. */
static int fn_specs(const dnc_cli *c, const dnc_fn *f, const char *wrt,
                    int order, dnc_dspec *specs, int max, int *ns)
{
  char err[256];
  int k;
  if (dnc_dspec_parse(f, wrt, order, specs, max, &k, err, sizeof err) < 0)
    return dnc_cli_usage_error(c, "%s", err);
  if (ns)
    *ns = k;
  return 0;
}

/* Whether a name would be printed twice: two derivatives', or, in the
 * PyTorch form, which prints the functions themselves and f__all too, a
 * derivative's (f__dx) and a function's (a second def of a name replaced
 * the first: f__dx(2) gave the user's f__dx, silently). 1, reported,
 * when one is. */
static int names_clash(dnc_fn **fns, int n, const char *wrt, int order,
                       int fmt, dnc_dspec *specs, int max, const dnc_cli *c)
{
  size_t cap = 0, nn = 0;
  char **names = NULL;
  const char **whose = NULL;
  int clash = 0;
  for (int k = 0; k < n && !clash; k++) {
    int ns = 0, torch = fmt == DNC_FMT_TORCH;
    fn_specs(c, fns[k], wrt, order, specs, max, &ns);
    /* the function and f__all (torch), then its derivatives */
    for (int j = torch ? -2 : 0; j < ns && !clash; j++) {
      char *name = j >= 0 ? dnc_dspec_name(fns[k], &specs[j])
                          : malloc(strlen(fns[k]->name) + sizeof "__all");
      if (!name)
        dnc_die(__FILE__, __LINE__, "out of memory");
      if (j < 0)
        sprintf(name, "%s%s", fns[k]->name, j == -1 ? "__all" : "");
      for (size_t i = 0; i < nn && !clash; i++)
        if (!strcmp(names[i], name)) {
          fprintf(stderr, "dnc: error: '%s' would be printed twice, for "
                  "'%s' and for '%s': rename the function that has a "
                  "derivative's name\n", name, whose[i], fns[k]->name);
          clash = 1;
        }
      if (nn == cap) {
        cap = cap ? 2 * cap : 64;
        names = realloc(names, cap * sizeof *names);
        whose = realloc(whose, cap * sizeof *whose);
        if (!names || !whose)
          dnc_die(__FILE__, __LINE__, "out of memory");
      }
      names[nn] = name;
      whose[nn++] = fns[k]->name;
    }
  }
  for (size_t i = 0; i < nn; i++)
    free(names[i]);
  free(names);
  free(whose);
  return clash;
}

/* Every function's derivatives, made (within the DAG's budget) before any
 * is printed, so that one too large prints nothing but the error; then
 * printed. */
static int derive_and_print(const dnc_cli *c, dnc_mod *m, dnc_fn **fns,
                            int n, const char *wrt, int order, int fmt,
                            int stats)
{
  enum { MAXSPEC = 4096 };
  dnc_dspec *specs = calloc(MAXSPEC, sizeof *specs);
  int rc = 0;
  /* every function's variables are checked before anything is printed */
  for (int k = 0; k < n && !rc; k++)
    rc = fn_specs(c, fns[k], wrt, order, specs, MAXSPEC, NULL);
  if (!rc && names_clash(fns, n, wrt, order, fmt, specs, MAXSPEC, c))
    rc = DNC_EXIT_INPUT;
  dnc_node **ds = NULL;
  size_t nd = 0;
  for (int k = 0; k < n && !rc; k++) {
    int ns = 0;
    fn_specs(c, fns[k], wrt, order, specs, MAXSPEC, &ns);
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
    fn_specs(c, f, wrt, order, specs, MAXSPEC, &ns);
    if (stats)
      dnc_print_stat(stdout, fmt, f->name, dnc_node_count(f->body));
    dnc_print_head(stdout, f, fmt);
    for (int j = 0; j < ns; j++)
      dnc_dspec_print(stdout, f, &specs[j], ds[nd++], fmt, stats);
    if (dnc_dspec_print_all(stdout, f, specs, ds + nd - ns, ns, fmt) < 0)
      dnc_die(__FILE__, __LINE__, "out of memory");
  }
  free(ds);
  free(specs);
  return rc;
}

static int run(const dnc_cli *c, int argc, char **argv)
{
  const char *names = NULL, *wrt = "all";
  long order = 0;
  int fmt = DNC_FMT_DSL, stats = 0;
  dnc_cli_files in = {0, calloc((size_t)argc + 1, sizeof *in.files)};
  const dnc_opt opts[] = {
      {.s = "-f", .l = "--function", .kind = DNC_OPT_STRING, .dest = &names,
       .what = "function names"},
      {.l = "--wrt", .kind = DNC_OPT_STRING, .dest = &wrt,
       .what = "a variable"},
      {.l = "--order", .kind = DNC_OPT_INT, .dest = &order, .lo = 1,
       .hi = DNC_DSPEC_MAX, .what = "a number from %ld to %ld"},
      {.l = "--format", .kind = DNC_OPT_CHOICE, .dest = &fmt,
       .choices = formats},
      {.l = "--stats", .kind = DNC_OPT_FLAG, .dest = &stats},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, dnc_cli_file_arg, &in);
  if (rc < 0 && in.n && strchr(wrt, ',') && order)
    rc = dnc_cli_usage_error(c, "--wrt with a list gives one mixed "
                                "derivative; it takes no --order");
  dnc_mod *m = dnc_cli_load_files(c, &in, &rc);
  if (!m)
    return rc;
  dnc_fn **fns;
  int n;
  if (!dnc_cli_functions(c, m, names, 0, &fns, &n))
    rc = DNC_EXIT_USAGE;
  else
    rc = derive_and_print(c, m, fns, n, wrt, order ? (int)order : 1, fmt,
                          stats);
  free(fns);
  dnc_mod_free(m);
  return rc;
}

const dnc_command dnc_cmd_diff = {
    "diff", "print derivatives with respect to x and the parameters", usage,
    run};
