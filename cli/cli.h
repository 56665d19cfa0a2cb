/*
 * cli.h - the dnc command: what its files share, a section per file.
 *
 * main.c reads as the pipeline's front: it picks a command from its table
 * and hands it the -w setting and its usage text (dnc_cli). Each command
 * lives in its own file with its usage text and parses its options from a
 * table (dnc_cli_parse): check_cmd.c, print_cmd.c, eval_cmd.c,
 * diff_cmd.c, compile_cmd.c, fit_cmd.c, search_cmd.c, plot_cmd.c. They
 * call libdnc's passes (dnc_int.h; search.h for the search engine); cli.c
 * and csv.c are what they share. None of this is in libdnc.
 */
#ifndef DNC_CLI_H
#define DNC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dnc_int.h"

/* ------------------------------------------------------------ commands */

/* What a command gets from main.c. */
typedef struct dnc_cli {
  const char *usage;
  int no_warnings; /* -w */
} dnc_cli;

/* A command: its name, its line in `dnc --help` (continuation lines
 * indented by 10 spaces), its usage text and its entry point, which
 * returns the exit status. */
typedef struct dnc_command {
  const char *name, *summary, *usage;
  int (*run)(const dnc_cli *c, int argc, char **argv);
} dnc_command;
/* ORDER: as `dnc --help` lists them (main.c's table). */
extern const dnc_command dnc_cmd_check, dnc_cmd_print, dnc_cmd_eval,
    dnc_cmd_diff, dnc_cmd_compile, dnc_cmd_fit, dnc_cmd_search, dnc_cmd_plot;

enum { DNC_EXIT_INPUT = 1, DNC_EXIT_USAGE = 2 };

/* ------------------------------------------------------------------ cli.c */

/* One option of a command's table (dnc_cli_parse). A value is given as
 * "-s V", "--long V" or "--long=V". Errors are usage errors, worded from
 * the table: "NAME needs WHAT" (an empty string), "NAME needs WHAT, not
 * 'V'" (a bad number; for DNC_OPT_INT, WHAT is a printf format given lo
 * and hi), "NAME is A, B or C, not 'V'" (a choice). NAME is .name, else
 * the short spelling, else the long one. */
typedef enum {
  DNC_OPT_FLAG,   /* no value: *(int *)dest = 1 */
  DNC_OPT_STRING, /* *(const char **)dest; with what set, "" is refused */
  DNC_OPT_CHOICE, /* *(int *)dest = the value's index in choices */
  DNC_OPT_INT,    /* *(long *)dest, a whole number in [lo, hi] */
  DNC_OPT_CALL,   /* call(arg, spelling, value): 0 done; -1 the "needs
                     WHAT, not 'V'" error; else an exit status, reported.
                     Without takes, a flag (value NULL) */
} dnc_opt_kind;

typedef struct dnc_opt {
  const char *s, *l; /* "-f" (or NULL) and "--function"; l NULL ends */
  dnc_opt_kind kind;
  void *dest;
  const char *what;
  long lo, hi;
  const char *const *choices; /* NULL-terminated */
  int *given;                 /* set to 1 when given (or NULL) */
  int takes;                  /* DNC_OPT_CALL: it takes a value */
  int (*call)(void *arg, const char *opt, const char *v);
  const char *name;           /* in errors, when not the first spelling */
  int repeat;                 /* may be given more than once (-p N=V) */
  int group;                  /* nonzero: the options of one group are one
                                 setting given in several spellings
                                 (-O0 .. -O3), their value the spelling */
} dnc_opt;

/* What an argument that is no option is, for dnc_cli_parse's caller:
 * -1 taken; DNC_CLI_UNKNOWN an unknown option (the parser says so); else
 * an exit status, reported. */
enum { DNC_CLI_UNKNOWN = -2 };
typedef int (*dnc_cli_arg_fn)(const dnc_cli *c, void *arg, const char *a);

/* Parses argv[1..argc) in order: -h/--help prints the usage (returns 0),
 * an option of opts sets what it says, any other argument goes to
 * positional. An option that takes a value (and is not .repeat), or a
 * .group, given twice with two values is the usage error "NAME is given
 * twice ('A' and 'B'); give it once" (the same value twice is once).
 * -1 to go on; else the exit status, the error reported. */
int dnc_cli_parse(const dnc_cli *c, int argc, char **argv,
                  const dnc_opt *opts, dnc_cli_arg_fn positional, void *arg);
/* set by dnc_cli_parse once it has read "--": every argument after it is
 * positional, a file named -x or a point -1 */
extern int dnc_cli_options_ended;
/* Is a, an argument that is not an option of the table, one that looks
 * like an option (-x, --y)? Not after "--". */
int dnc_cli_dashed(const char *a);
/* positional for commands that take source files: each one into
 * ((dnc_cli_files *)arg); options starting with '-' are unknown. */
typedef struct dnc_cli_files {
  int n;
  char **files; /* argc entries, malloc'd by the caller */
} dnc_cli_files;
int dnc_cli_file_arg(const dnc_cli *c, void *arg, const char *a);

/* "dnc: MESSAGE" and the usage on stderr; returns DNC_EXIT_USAGE. */
int dnc_cli_usage_error(const dnc_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "dnc: error: MESSAGE" on stderr; returns DNC_EXIT_INPUT. */
int dnc_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dnc_cli_is_help(const char *a);
/* a is -w or --no-warnings (hide warnings; main.c reads it before --) */
int dnc_cli_is_no_warnings(const char *a);
/* A whole string as a double (inf and nan included). */
int dnc_cli_number(const char *s, double *v);
/* A whole string as an integer in [lo, hi]: an optional sign and digits,
 * no white space. */
int dnc_cli_int(const char *s, long lo, long hi, long *v);
/* The same for an integer in [0, 2^64 - 1], digits only. */
int dnc_cli_uint64(const char *s, unsigned long long *v);
/* The value of "-s V", "--long V" or "--long=V" at argv[*i] ("" when the
 * value is missing), or NULL when argv[*i] is another option. */
const char *dnc_cli_opt(int argc, char **argv, int *i, const char *s,
                        const char *l);
/* Reads and builds source files as one module, showing its diagnostics;
 * NULL on errors. */
dnc_mod *dnc_cli_load(const dnc_cli *c, char **files, int nfiles);
/* The end of a command's parsing over source files: *rc is
 * dnc_cli_parse's result or a later usage error's (-1: none); with none,
 * "no input files" where there are none, else the files loaded as one
 * module. Frees in->files. The module, or NULL with *rc the exit
 * status. */
dnc_mod *dnc_cli_load_files(const dnc_cli *c, dnc_cli_files *in, int *rc);
/* The function called name (or the only one when name is NULL); reports
 * and returns NULL when there is none. */
dnc_fn *dnc_cli_function(const dnc_cli *c, dnc_mod *m, const char *file,
                         const char *name);
/* The functions "-f a,b" names (in that order; a name given twice is
 * there twice with repeat set, else once), or all of m's when names is
 * NULL, into *fns (malloc'd) and *n; 0 after reporting a name m lacks
 * (with a did-you-mean, one line) or a list without a name or with an
 * empty one (usage errors, with the usage). */
int dnc_cli_functions(const dnc_cli *c, dnc_mod *m, const char *names,
                      int repeat, dnc_fn ***fns, int *n);
/* "dnc: error: no function 'name'[ in 'file']; did you mean 'x'?" */
void dnc_cli_no_function(const dnc_mod *m, const char *name,
                         const char *file);
/* Renders the diagnostics of d; returns its number of errors. */
int dnc_cli_show(const dnc_cli *c, const dnc_diags *d);
/* Writes path through write(out, arg) into a temporary file beside it,
 * renamed over path only when everything was written: a reader never sees
 * half a file. A symlink's target is replaced (the link stays), a device
 * or FIFO written in place; a directory, or one of the dnc_cli_inputs
 * (which a command sets to its input files), is refused (outfile.c).
 * Returns 0, or reports and returns -1. */
extern const char *const *dnc_cli_inputs;
extern int dnc_cli_ninputs;
int dnc_cli_write_file(const char *path, int (*write)(FILE *out, void *arg),
                       void *arg);
/* Whether dnc_cli_write_file(path) would be refused as it stands (a
 * directory, one of the dnc_cli_inputs, ...): the check made before any
 * work, so that a command refuses an output before it prints. Returns 0,
 * or reports and returns -1. */
int dnc_cli_check_output(const char *path);
/* The same, and the directory it goes in is there: for an output written
 * after long work that has printed (fit --points in a missing directory
 * was found once the fit had run and printed its results). */
int dnc_cli_check_output_dir(const char *path);
/* "name=value" into *name (malloc'd) and *v; 0 when malformed. */
int dnc_cli_setting(const char *s, char **name, double *v);
/* A second value `now` for the parameter `name` of --param, which had
 * `was`: 0 where they are the same (the same value twice is once), else
 * the error "two values for 'NAME' in --param (A and B); give one" and
 * DNC_EXIT_USAGE (eval and plot), a usage error as every other */
int dnc_cli_param_again(const dnc_cli *c, const char *name, double was,
                        double now);
/* A JSON string (quotes included); a byte that is no part of well-formed
 * UTF-8 is written as \ufffd, the replacement character. */
void dnc_cli_json_string(FILE *out, const char *s);
/* A CSV field, quoted when it must be. */
void dnc_cli_csv_field(FILE *out, const char *s);
/* One line of f without its newline, a byte at a time (a line may hold NUL
 * bytes): its first cap - 1 bytes into buf, NUL-terminated, and its length
 * in *len. stop > 0 stops reading a line once it has stop bytes (the rest
 * left unread: the bound on an input that never ends a line). 1: a line;
 * 0: the end of the input, after a last line without a newline when
 * *len > 0; -1: a read error (errno); 2: stopped at stop bytes. */
int dnc_cli_read_line(FILE *f, char *buf, size_t cap, size_t *len,
                      size_t stop);

/* ------------------------------------------------------------------ csv.c */

/* A CSV file with a header line: comma-separated fields, optionally in
 * double quotes ("" is a quote inside them), blank lines skipped, CRLF or LF.
 * Every field keeps its location for diagnostics. */
typedef struct dnc_csv {
  const dnc_source *src;
  int ncols, nrows;
  char **head;       /* column names */
  dnc_loc *head_loc;
  char **cell;       /* nrows x ncols, unquoted */
  dnc_loc *cell_loc;
} dnc_csv;

/* Reads path into c (its memory from m's arena, its errors in m's
 * diagnostics); 0 on errors. */
int dnc_csv_read(dnc_mod *m, const char *path, dnc_csv *c);
/* The same for the header and the first nrows rows only: the file is read
 * no further than they end, so it may be of any size (they must fit in
 * DNC_MAX_SOURCE_BYTES). */
int dnc_csv_read_head(dnc_mod *m, const char *path, int nrows, dnc_csv *c);
/* The column named name, or its 1-based number; -1 with an error (naming
 * the columns there are, and opt, the option that gave the name, unless
 * NULL) otherwise. */
int dnc_csv_column(dnc_mod *m, const dnc_csv *c, const char *name,
                   const char *opt);
/* The number in a cell; 0 with a located error when it is not one, or when
 * it is NaN or infinite and finite is set. */
int dnc_csv_number(dnc_mod *m, const dnc_csv *c, int row, int col,
                   int finite, double *v);

#endif
