/*
 * tools.h - the fit, search and plot commands and what they share: a
 * section per file. The commands' usage texts live in main.c, which hands
 * them over with the -w setting (dnc_cli).
 */
#ifndef DNC_TOOLS_H
#define DNC_TOOLS_H

#include <stdint.h>
#include <stdio.h>

#include "dnc_int.h"

/* ------------------------------------------------------------------ cli.c */

/* What a command gets from main.c. */
typedef struct dnc_cli {
  const char *usage;
  int no_warnings; /* -w */
} dnc_cli;

enum { DNC_EXIT_INPUT = 1, DNC_EXIT_USAGE = 2 };

/* "dnc: MESSAGE" and the usage on stderr; returns DNC_EXIT_USAGE. */
int dnc_cli_usage_error(const dnc_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "dnc: error: MESSAGE" on stderr; returns DNC_EXIT_INPUT. */
int dnc_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dnc_cli_is_help(const char *a);
/* A whole string as a double (inf and nan included). */
int dnc_cli_number(const char *s, double *v);
/* A whole string as an integer in [lo, hi]. */
int dnc_cli_int(const char *s, long lo, long hi, long *v);
/* The value of "-s V", "--long V" or "--long=V" at argv[*i] ("" when the
 * value is missing), or NULL when argv[*i] is another option. */
const char *dnc_cli_opt(int argc, char **argv, int *i, const char *s,
                        const char *l);
/* Reads and builds one source file, showing its diagnostics; NULL on
 * errors. */
dnc_mod *dnc_cli_load(const dnc_cli *c, const char *file);
/* The function called name (or the only one when name is NULL); reports
 * and returns NULL when there is none. */
dnc_fn *dnc_cli_function(const dnc_cli *c, dnc_mod *m, const char *file,
                         const char *name);
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
/* "name=value" into *name (malloc'd) and *v; 0 when malformed. */
int dnc_cli_setting(const char *s, char **name, double *v);
/* A JSON string (quotes included). */
void dnc_cli_json_string(FILE *out, const char *s);
/* A CSV field, quoted when it must be. */
void dnc_cli_csv_field(FILE *out, const char *s);

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
/* The column named name, or its 1-based number; -1 with an error (naming
 * the columns there are) otherwise. */
int dnc_csv_column(dnc_mod *m, const dnc_csv *c, const char *name);
/* The number in a cell; 0 with a located error when it is not one, or when
 * it is NaN or infinite and finite is set. */
int dnc_csv_number(dnc_mod *m, const dnc_csv *c, int row, int col,
                   int finite, double *v);

/* ------------------------------------------------------------ commands */

/* Each command's entry point, in its own file with its usage text
 * (fit_cmd.c, plot.c, search_cmd.c). */
int dnc_cmd_fit(const dnc_cli *c, int argc, char **argv);

/* ----------------------------------------------------------------- plot.c */

int dnc_cmd_plot(const dnc_cli *c, int argc, char **argv);

int dnc_cmd_search(const dnc_cli *c, int argc, char **argv);

#endif
