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
/* A number as dnc prints it: shortest round trip, nan, inf, -inf. */
void dnc_cli_format(char *buf, size_t n, double v);
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

/* ------------------------------------------------------------------ fit.c */

/* Reference points that stand for a normalization layer (docs/fit.md): C
 * channel values drawn from a seeded distribution, the largest moved out
 * in steps; x the outlier's input, y its normalized output; mirrored. */
typedef enum { DNC_TARGET_LAYERNORM, DNC_TARGET_RMSNORM } dnc_ref_kind;
typedef enum { DNC_DIST_NORMAL, DNC_DIST_UNIFORM, DNC_DIST_LAPLACE } dnc_dist;
typedef struct dnc_refpoints {
  dnc_ref_kind kind;
  int channels;     /* C */
  dnc_dist dist;
  double scale;     /* the distribution's standard deviation */
  int steps;        /* outlier positions (2 * steps points, mirrored) */
  double reach;     /* the outlier's largest input; 0: 4 * sqrt(C) * scale */
  double eps;       /* added to the variance */
  uint64_t seed;
} dnc_refpoints;
void dnc_ref_defaults(dnc_refpoints *t);
/* Fills x, y with 2 * t->steps points (malloc'd). */
void dnc_ref_points(const dnc_refpoints *t, double **x, double **y, int *n);
const char *dnc_ref_name(dnc_ref_kind k);
const char *dnc_dist_name(dnc_dist d);

typedef enum {
  DNC_FIT_OK,         /* converged; why says by which test */
  DNC_FIT_MAXITER,    /* the iteration limit came first */
  DNC_FIT_STALLED,    /* no step lowers the sum of squares, gradient not 0 */
  DNC_FIT_ILLPOSED,   /* a parameter is not determined by the points */
  DNC_FIT_NONFINITE,  /* f is NaN or infinite at a point at the start */
  DNC_FIT_TOOFEW,     /* fewer points than free parameters */
  DNC_FIT_TOOLARGE,   /* a derivative passes DNC_MAX_DIFF_NODES */
} dnc_fit_status;

typedef struct dnc_fit_options {
  int max_iter;     /* default 200 */
  double ftol;      /* relative decrease of the sum of squares; 1e-14 */
  double xtol;      /* relative step; 1e-12 */
  double gtol;      /* cosine of the residual and the Jacobian; 1e-12 */
  int gain;         /* fit gamma * f(x) with gamma free */
  double gain_init; /* its start (and value when fixed); default 1 */
  int gain_fixed;
} dnc_fit_options;
void dnc_fit_options_init(dnc_fit_options *o);

typedef struct dnc_fit_result {
  dnc_fit_status status;
  char why[200];      /* how it stopped, in words */
  int iterations;
  double *value;      /* nparams (+1 for gamma, last), malloc'd */
  double *se;         /* standard errors; NaN for fixed ones or when
                         there are no more points than free parameters */
  double gain, gain_se;
  double ssq, mean_abs, max_abs, rms;
  int bad_point;      /* DNC_FIT_NONFINITE: the point; ILLPOSED: -1 */
  int bad_param;      /* DNC_FIT_ILLPOSED: the parameter (nparams: gamma) */
} dnc_fit_result;

/* Fits f's parameters (start: p0; fixed[k] holds parameter k at p0[k]) to
 * the n points by Levenberg-Marquardt with f's symbolic derivatives (built
 * in m's DAG) as the Jacobian. o NULL: the defaults. */
void dnc_fit(dnc_mod *m, const dnc_fn *f, const double *x, const double *y,
             int n, const double *p0, const int *fixed,
             const dnc_fit_options *o, dnc_fit_result *r);
void dnc_fit_result_free(dnc_fit_result *r);

int dnc_cmd_fit(const dnc_cli *c, int argc, char **argv);

/* ----------------------------------------------------------------- plot.c */

int dnc_cmd_plot(const dnc_cli *c, int argc, char **argv);

/* --------------------------------------------------------------- search.c */

/* A search space (docs/search.md): base functions, stages of
 * transformations, settings, scores and the ranking, read from a spec. */
typedef struct dnc_space dnc_space;

/* A candidate's program for batched evaluation: f and df/dx flattened
 * together (operands before their users), the roots at rf and rdf. */
typedef struct dnc_vinsn {
  uint16_t op;
  int32_t arg[3];
  double value;
} dnc_vinsn;
typedef struct dnc_vprog {
  int n, rf, rdf;
  dnc_vinsn *insn; /* malloc'd */
} dnc_vprog;

/* One distinct candidate: its place in the expansion, how it was built
 * (base|transformation|...), its dnc source, its program. */
typedef struct dnc_cand {
  int64_t id;
  char *name, *source; /* source: one line, `fn cID(x) = ...` */
  char *score_src;     /* `fn f(x) = ...` and `fn df(x) = ...`; NULL
                          when the space has no scores */
  dnc_vprog prog;
} dnc_cand;

/* Reads a spec; NULL with located errors in m's diagnostics. */
dnc_space *dnc_space_load(dnc_mod *m, const char *path);
void dnc_space_free(dnc_space *s);
/* Candidates before deduplication: bases x the alternatives of each stage. */
int64_t dnc_space_size(const dnc_space *s);
/* Builds candidate id (0 <= id < size) simplified, after asking
 * keep(key, nkey, arg) with its key: equal keys, equal simplified DAGs
 * (commutative operands in either order). When keep returns 0 the
 * candidate is not finished and 0 is returned; else 1 with c filled. */
int dnc_space_build(const dnc_space *s, int64_t id, dnc_cand *c,
                    int (*keep)(const unsigned char *key, size_t nkey,
                                void *arg),
                    void *arg);
void dnc_cand_free(dnc_cand *c);
/* The spec's text hashed with the format's version: a journal is only
 * resumed by the same search. */
uint64_t dnc_space_hash(const dnc_space *s);

/* What is measured of each candidate, in this order (ORDER: names in
 * search_eval.c), then one value per score of the spec. */
enum {
  DNC_M_ZERO, DNC_M_BOUNDED, DNC_M_CENTER, DNC_M_MONO, DNC_M_PROPS,
  DNC_M_FINITE, DNC_M_F0, DNC_M_ODD, DNC_M_SUP, DNC_M_GROWTH, DNC_M_SLOPE0,
  DNC_M_CMIN, DNC_M_MINSLOPE, DNC_M_MAXSLOPE, DNC_M_RESIDUAL, DNC_M_GAIN,
  DNC_M__COUNT
};
const char *dnc_measure_name(int k);
int dnc_space_nmeasures(const dnc_space *s); /* DNC_M__COUNT + scores */
const char *dnc_space_column(const dnc_space *s, int k); /* its name */

/* search_eval.c: the grids a space measures on, shared by all threads. */
typedef struct dnc_grids dnc_grids;
dnc_grids *dnc_grids_new(const dnc_space *s);
void dnc_grids_free(dnc_grids *g);
/* Evaluates every instruction of p at the n points x into work (p->n * n
 * doubles): double arithmetic, the interpreter's semantics otherwise. */
void dnc_vprog_eval(const dnc_vprog *p, const double *x, int n, double *work);
/* Measures candidate c into out[0 .. dnc_space_nmeasures); *work (of
 * *cap doubles) is scratch, grown as needed, reused across calls. */
void dnc_measure(const dnc_space *s, const dnc_grids *g, const dnc_cand *c,
                 double **work, size_t *cap, double *out);
/* The ranking's order: <0 when a ranks before b (ids break ties). */
int dnc_space_compare(const dnc_space *s, const double *a, int64_t ida,
                      const double *b, int64_t idb);

int dnc_cmd_search(const dnc_cli *c, int argc, char **argv);

#endif
