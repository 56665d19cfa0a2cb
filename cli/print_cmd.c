/*
 * print_cmd.c - `dnc print`: each function's DAG back as dnc source.
 */
#include <stdlib.h>

#include "cli.h"

static const char usage[] =
    "usage: dnc print [-f NAME[,NAME...]] FILE...\n"
    "\n"
    "Prints each function (or the named ones) as dnc source that parses\n"
    "back to the same expression DAG: lets and calls resolved away, shared\n"
    "subexpressions bound once with 'let'.\n";

static int run(const dnc_cli *c, int argc, char **argv)
{
  const char *names = NULL;
  dnc_cli_files in = {0, calloc((size_t)argc + 1, sizeof *in.files)};
  const dnc_opt opts[] = {
      {.s = "-f", .l = "--function", .kind = DNC_OPT_STRING, .dest = &names,
       .what = "function names"},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, dnc_cli_file_arg, &in);
  dnc_mod *m = dnc_cli_load_files(c, &in, &rc);
  if (!m)
    return rc;
  dnc_fn **fns;
  int n;
  int ok = dnc_cli_functions(c, m, names, 0, &fns, &n);
  for (int i = 0; ok && i < n; i++)
    dnc_print_fn(stdout, fns[i]);
  free(fns);
  dnc_mod_free(m);
  return ok ? 0 : DNC_EXIT_USAGE;
}

const dnc_command dnc_cmd_print = {
    "print", "print each function's expression DAG back as dnc source",
    usage, run};
