/*
 * check_cmd.c - `dnc check`: parse and check source files as one module.
 */
#include <stdlib.h>

#include "cli.h"

static const char usage[] =
    "usage: dnc check [-v] FILE...\n"
    "\n"
    "Parses and checks the files as one module (functions may call each\n"
    "other across files) and prints errors and warnings to stderr.\n"
    "'-' reads standard input.\n"
    "\n"
    "  -v, --verbose  also list each function's signature on success\n";

static int run(const dnc_cli *c, int argc, char **argv)
{
  int verbose = 0;
  dnc_cli_files in = {0, calloc((size_t)argc + 1, sizeof *in.files)};
  const dnc_opt opts[] = {
      {.s = "-v", .l = "--verbose", .kind = DNC_OPT_FLAG, .dest = &verbose},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, dnc_cli_file_arg, &in);
  dnc_mod *m = dnc_cli_load_files(c, &in, &rc);
  if (!m)
    return rc;
  for (int i = 0; verbose && i < m->nfns; i++) {
    dnc_print_signature(stdout, m->fns[i], m->fns[i]->name);
    fputc('\n', stdout);
  }
  dnc_mod_free(m);
  return 0;
}

const dnc_command dnc_cmd_check = {
    "check", "parse and check source files; report errors and warnings",
    usage, run};
