/*
 * main.c - the dnc command: the front of the pipeline (dnc_int.h says what
 * follows). It picks the command, takes -w (warnings off) from anywhere
 * on the line, and runs the command with its usage text; each command is
 * in its own file (cli.h):
 *
 *   check, print     parse and check; print the DAG as source
 *   eval             the reference interpreter, or the JIT's kernels
 *   diff             derivatives (dnc_derive, dspec.c) in four formats
 *   compile          kernels ahead of time (aot.c)
 *   fit, search      least squares (fit.c), the search engine (search.h)
 *   plot             functions and derivatives as SVG
 *
 * Exit status: 0 success, 1 an error in the input, 2 a usage error.
 * Diagnostics go to stderr, results to stdout.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ORDER: as `dnc --help` lists them */
static const dnc_command *const commands[] = {
    &dnc_cmd_check, &dnc_cmd_print,  &dnc_cmd_eval,   &dnc_cmd_diff,
    &dnc_cmd_compile, &dnc_cmd_fit, &dnc_cmd_search, &dnc_cmd_plot,
};
enum { NCOMMANDS = sizeof commands / sizeof *commands };

/* `dnc --help`, its command list made from the table */
static char *main_usage(void)
{
  char *text = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&text, &len);
  if (!o)
    dnc_die(__FILE__, __LINE__, "out of memory");
  fputs("usage: dnc <command> [options] FILE...\n"
        "\n"
        "dnc compiles point-wise functions that replace normalization layers\n"
        "(DyT, DyISRU, Derf, ...) into derivatives and kernels.\n"
        "\n"
        "commands:\n", o);
  for (int i = 0; i < NCOMMANDS; i++)
    fprintf(o, "  %-7s %s\n", commands[i]->name, commands[i]->summary);
  fputs("\n"
        "options:\n"
        "  -h, --help     this help; 'dnc CMD --help' for a command's\n"
        "  --version      the version of dnc and of LLVM, and the host CPU\n"
        "  -w             (after the command) do not show warnings\n"
        "\n"
        "exit status: 0 success, 1 error in the input, 2 usage error\n", o);
  fclose(o);
  return text;
}

/* The results go to stdout through its buffer: a write that failed (a
 * full disk, a closed pipe's EPIPE with SIGPIPE ignored, a file size
 * limit) is seen here, after the command, and is an error of its own:
 * output that is not all there must not exit 0. */
static int finish_stdout(int rc)
{
  errno = 0;
  int e = fflush(stdout) ? errno : 0;
  if (!ferror(stdout) && !e)
    return rc;
  if (!e) {
    /* an earlier flush failed and dropped its data: ask again for why */
    clearerr(stdout);
    if (fputc('\n', stdout) == EOF || fflush(stdout))
      e = errno;
  }
  fprintf(stderr, "dnc: error: cannot write standard output%s%s\n",
          e ? ": " : "", e ? strerror(e) : "");
  return rc ? rc : DNC_EXIT_INPUT;
}

int main(int argc, char **argv)
{
  /* a file size limit (ulimit -f) is a write error like a full disk:
   * every output's write is checked, reported and its temporary removed,
   * where SIGXFSZ's default would kill the process mid-write */
  signal(SIGXFSZ, SIG_IGN);
  char *usage = main_usage();
  dnc_cli top = {usage, 0};
  int rc;
  const char *cmd = argc < 2 ? NULL : argv[1];
  if (!cmd) {
    rc = dnc_cli_usage_error(&top, "no command given");
  } else if (dnc_cli_is_help(cmd)) {
    fputs(usage, stdout);
    rc = 0;
  } else if (!strcmp(cmd, "--version")) {
    printf("dnc %s (ABI %d; LLVM %s; host CPU %s)\n", dnc_version(),
           dnc_abi_version(), dnc_llvm_version(), dnc_host_cpu());
    rc = 0;
  } else {
    const dnc_command *c = NULL;
    for (int i = 0; i < NCOMMANDS && !c; i++)
      if (!strcmp(cmd, commands[i]->name))
        c = commands[i];
    if (!c) {
      const char *names[NCOMMANDS + 1] = {NULL};
      for (int i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i]->name;
      const char *near = cmd[0] == '-' ? NULL
                                       : dnc_did_you_mean(cmd, names, NCOMMANDS);
      if (near)
        rc = dnc_cli_usage_error(&top, "unknown command '%s'; did you mean "
                                       "'%s'?", cmd, near);
      else
        rc = dnc_cli_usage_error(&top, "unknown command '%s'", cmd);
    } else {
      /* -w is accepted by every command that reads sources, anywhere
       * before --: after it, "-w" is a file (dnc check -- -w dropped the
       * file and checked the others). It stays in argv, for
       * dnc_cli_parse to skip, and to refuse as the value of the option
       * before it (--title -w). */
      dnc_cli cli = {c->usage, 0};
      for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (dnc_cli_is_no_warnings(argv[i]))
          cli.no_warnings = 1;
      rc = c->run(&cli, argc - 1, argv + 1);
    }
  }
  free(usage);
  return finish_stdout(rc);
}
