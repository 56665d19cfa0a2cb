/*
 * fit_cmd.c - `dnc fit`: a function's parameters fitted to points from a
 * CSV file, or to the reference points of LayerNorm or RMSNorm (fit.c
 * does the work; docs/fit.md is the manual).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fit_bounds.h"

static const char usage[] =
    "usage: dnc fit FILE [-f NAME] (--data POINTS.csv [--x COL] [--y COL]\n"
    "               | --target layernorm|rmsnorm [target options])\n"
    "               [--init P=V]... [--fix P=V]... [--bounds P=LO:HI]...\n"
    "               [--gain] [--max-iter N] [--format text|json|csv]\n"
    "               [--points OUT.csv]\n"
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
    "  --bounds P=LO:HI     keep the fitted P within [LO, HI]; an end left\n"
    "                       empty (or inf, -inf) is no bound: beta=0:\n"
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

enum { FMT_TEXT, FMT_JSON, FMT_CSV }; /* ORDER: formats */

typedef struct setting {
  char *name;
  double v;
  double hi; /* --bounds: v is the lower bound, hi the upper */
} setting;

typedef struct fit_args {
  const char *file, *fn, *data, *xcol, *ycol, *points;
  int target; /* -1: --data */
  dnc_refpoints t;
  int target_opts; /* a target option was given */
  int gain, fmt;
  dnc_fit_options o;
  setting *init, *fix, *bounds;
  int ninit, nfix, nbounds;
} fit_args;

/* What the fit prints: the function, the data, the result. */
typedef struct report {
  const fit_args *a;
  const dnc_fn *f;
  const int *fixed;
  const double *lo, *hi;  /* the bounds (np + 1 each) */
  const int *at_bound;    /* per variable: -1 lower, 1 upper, 0 */
  int bounded;            /* --bounds was given */
  const dnc_fit_result *r;
  int n;
  const char *what; /* the data, in words */
  const double *x, *y;
} report;

static int add_setting(setting *s, int *n, const char *v)
{
  if (!dnc_cli_setting(v, &s[*n].name, &s[*n].v))
    return 0;
  if (!isfinite(s[*n].v)) {
    free(s[*n].name);
    return 0;
  }
  ++*n;
  return 1;
}

static int opt_init(void *arg, const char *opt, const char *v)
{
  (void)opt;
  fit_args *a = arg;
  return add_setting(a->init, &a->ninit, v) ? 0 : -1;
}

/* NAME=LO:HI, either end empty for none (inf and -inf too); NaN is
 * taken here and refused with the parameter's name (dnc_fit_bounds_check) */
static int end_of(const char *s, size_t len, double none, double *v)
{
  char buf[64];
  while (len && (*s == ' ' || *s == '\t'))
    s++, len--;
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  if (!len) {
    *v = none;
    return 1;
  }
  if (len >= sizeof buf)
    return 0;
  memcpy(buf, s, len);
  buf[len] = 0;
  return dnc_cli_number(buf, v);
}

static int opt_bounds(void *arg, const char *opt, const char *v)
{
  (void)opt;
  fit_args *a = arg;
  const char *eq = strchr(v, '='), *colon = eq ? strchr(eq, ':') : NULL;
  setting *b = &a->bounds[a->nbounds];
  if (!eq || eq == v || !colon ||
      !end_of(eq + 1, (size_t)(colon - eq - 1), -INFINITY, &b->v) ||
      !end_of(colon + 1, strlen(colon + 1), INFINITY, &b->hi))
    return -1;
  b->name = strndup(v, (size_t)(eq - v));
  a->nbounds++;
  return 0;
}

static int opt_fix(void *arg, const char *opt, const char *v)
{
  (void)opt;
  fit_args *a = arg;
  return add_setting(a->fix, &a->nfix, v) ? 0 : -1;
}

/* a finite number > 0 (--scale, --reach), >= 0 (--eps) */
static int positive(const char *v, double *d)
{
  return dnc_cli_number(v, d) && *d > 0 && isfinite(*d) ? 0 : -1;
}

static int opt_scale(void *arg, const char *opt, const char *v)
{
  (void)opt;
  return positive(v, &((fit_args *)arg)->t.scale);
}

static int opt_reach(void *arg, const char *opt, const char *v)
{
  (void)opt;
  return positive(v, &((fit_args *)arg)->t.reach);
}

static int opt_eps(void *arg, const char *opt, const char *v)
{
  (void)opt;
  double d;
  if (!dnc_cli_number(v, &d) || !(d >= 0) || !isfinite(d))
    return -1;
  ((fit_args *)arg)->t.eps = d;
  return 0;
}

static int opt_seed(void *arg, const char *opt, const char *v)
{
  (void)opt;
  unsigned long long s;
  if (!dnc_cli_uint64(v, &s))
    return -1;
  ((fit_args *)arg)->t.seed = s;
  return 0;
}

/* FILE: one at a time */
static int fit_arg(const dnc_cli *c, void *arg, const char *s)
{
  fit_args *a = arg;
  if (dnc_cli_dashed(s))
    return DNC_CLI_UNKNOWN;
  if (a->file)
    return dnc_cli_usage_error(c, "one source file at a time ('%s' and "
                                  "'%s')", a->file, s);
  a->file = s;
  return -1;
}

static const char *const targets[] = {"layernorm", "rmsnorm", NULL};
static const char *const dists[] = {"normal", "uniform", "laplace", NULL};
static const char *const formats[] = {"text", "json", "csv", NULL};

static int parse(const dnc_cli *c, int argc, char **argv, fit_args *a)
{
  dnc_ref_defaults(&a->t);
  dnc_fit_options_init(&a->o);
  a->target = -1;
  long channels = a->t.channels, steps = a->t.steps, max_iter = a->o.max_iter;
  int dist = (int)a->t.dist;
  int *tg = &a->target_opts; /* a target option was given */
  const dnc_opt opts[] = {
      {.s = "-f", .l = "--function", .kind = DNC_OPT_STRING, .dest = &a->fn,
       .what = "a function name"},
      {.l = "--data", .kind = DNC_OPT_STRING, .dest = &a->data,
       .what = "a CSV file"},
      {.l = "--x", .kind = DNC_OPT_STRING, .dest = &a->xcol,
       .what = "a column name or number"},
      {.l = "--y", .kind = DNC_OPT_STRING, .dest = &a->ycol,
       .what = "a column name or number"},
      {.l = "--target", .kind = DNC_OPT_CHOICE, .dest = &a->target,
       .choices = targets},
      {.l = "--channels", .kind = DNC_OPT_INT, .dest = &channels, .lo = 2,
       .hi = 1 << 24, .what = "a whole number from %ld to %ld", .given = tg},
      {.l = "--dist", .kind = DNC_OPT_CHOICE, .dest = &dist, .choices = dists,
       .given = tg},
      {.l = "--scale", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_scale,
       .what = "a positive number", .given = tg},
      {.l = "--steps", .kind = DNC_OPT_INT, .dest = &steps, .lo = 2,
       .hi = 1 << 20, .what = "a whole number from %ld to %ld", .given = tg},
      {.l = "--reach", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_reach,
       .what = "a positive number", .given = tg},
      {.l = "--eps", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_eps,
       .what = "a number >= 0", .given = tg},
      {.l = "--seed", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_seed,
       .what = "a whole number from 0 to 2^64 - 1", .given = tg},
      {.l = "--init", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_init,
       .repeat = 1,
       .what = "NAME=NUMBER (a finite number)"},
      {.l = "--fix", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_fix,
       .repeat = 1,
       .what = "NAME=NUMBER (a finite number)"},
      {.l = "--bounds", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_bounds,
       .repeat = 1,
       .what = "NAME=LOW:HIGH (numbers; an end left empty is no bound)"},
      {.l = "--gain", .kind = DNC_OPT_FLAG, .dest = &a->gain},
      {.l = "--max-iter", .kind = DNC_OPT_INT, .dest = &max_iter, .lo = 1,
       .hi = 1000000, .what = "a whole number from %ld to %ld"},
      {.l = "--format", .kind = DNC_OPT_CHOICE, .dest = &a->fmt,
       .choices = formats},
      {.l = "--points", .kind = DNC_OPT_STRING, .dest = &a->points,
       .what = "a file name"},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, fit_arg, a);
  if (rc >= 0)
    return rc;
  a->t.channels = (int)channels;
  a->t.steps = (int)steps;
  a->t.dist = (dnc_dist)dist;
  a->o.max_iter = (int)max_iter;
  if (a->target >= 0)
    a->t.kind = (dnc_ref_kind)a->target; /* ORDER: targets */
  if (!a->file)
    return dnc_cli_usage_error(c, "no input file");
  if (a->data && a->target >= 0)
    return dnc_cli_usage_error(c, "--data and --target are two sources of "
                                  "points; give one");
  if (!a->data && a->target < 0)
    return dnc_cli_usage_error(c, "no points to fit: give --data FILE.csv or "
                                  "--target layernorm|rmsnorm");
  if (a->target_opts && a->target < 0)
    return dnc_cli_usage_error(c, "--channels, --dist, --scale, --steps, "
                                  "--reach, --eps and --seed go with --target");
  if ((a->xcol || a->ycol) && !a->data)
    return dnc_cli_usage_error(c, "--x and --y choose columns of --data");
  if (a->data && !strcmp(a->file, "-") && !strcmp(a->data, "-"))
    return dnc_cli_usage_error(c, "the source and --data cannot both be "
                                  "standard input ('-')");
  if (a->target >= 0)
    a->gain = 1; /* the layer's gain: f alone has its own range */
  return -1;
}

static int has_column(const dnc_csv *csv, const char *name)
{
  for (int k = 0; k < csv->ncols; k++)
    if (!strcmp(csv->head[k], name))
      return 1;
  return 0;
}

/* The columns of x and y: --x and --y, else those named x and y; in a
 * two-column file, one that is neither given nor named is the column the
 * other is not (so 'target,x' is y then x). 0 on errors (reported), and
 * when x and y would be one column. */
static int choose_columns(dnc_mod *m, const dnc_csv *csv, const fit_args *a,
                          int *cx, int *cy)
{
  int two = csv->ncols == 2;
  const char *xn = a->xcol ? a->xcol
                   : !two || has_column(csv, "x") ? "x" : NULL;
  const char *yn = a->ycol ? a->ycol
                   : !two || has_column(csv, "y") ? "y" : NULL;
  /* the option named in the error: --x 0 --y 0 said the same twice */
  *cx = xn ? dnc_csv_column(m, csv, xn, a->xcol ? "--x" : NULL) : -1;
  *cy = yn ? dnc_csv_column(m, csv, yn, a->ycol ? "--y" : NULL) : -1;
  if ((xn && *cx < 0) || (yn && *cy < 0))
    return 0;
  if (!xn)
    *cx = yn ? 1 - *cy : 0;
  if (!yn)
    *cy = 1 - *cx;
  if (*cx == *cy) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, csv->src, csv->head_loc[*cx],
                 "x and y would both be column %d, '%s'; choose them with "
                 "--x and --y", *cx + 1, csv->head[*cx]);
    return 0;
  }
  return 1;
}

/* Every field of the header reads whole as a finite number: a file
 * without a header line, whose first point would otherwise be taken for
 * the column names and dropped. */
static int header_is_numbers(const dnc_csv *csv)
{
  for (int k = 0; k < csv->ncols; k++) {
    const char *s = csv->head[k];
    char *end;
    while (*s == ' ' || *s == '\t')
      s++;
    if (!*s)
      return 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
      end++;
    if (*end || !isfinite(v))
      return 0;
  }
  return 1;
}

/* The points of --data: 0 on errors (reported). */
static int read_points(const dnc_cli *c, const fit_args *a, double **x,
                       double **y, int *n)
{
  dnc_mod *m = dnc_mod_new();
  dnc_csv csv;
  int ok = dnc_csv_read(m, a->data, &csv);
  int cx = -1, cy = -1;
  if (ok && header_is_numbers(&csv)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, csv.src, csv.head_loc[0],
                 "the first line holds numbers, not column names: --data "
                 "reads a CSV file whose first line is a header (x,y); "
                 "add one, or that line's point would be lost");
    ok = 0;
  }
  if (ok && csv.nrows == 0) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, csv.src, csv.head_loc[0],
                 "no data: the file has a header line and no points");
    ok = 0;
  }
  if (ok)
    ok = choose_columns(m, &csv, a, &cx, &cy);
  if (ok) {
    *x = malloc(sizeof **x * (size_t)csv.nrows);
    *y = malloc(sizeof **y * (size_t)csv.nrows);
    for (int i = 0; i < csv.nrows && ok; i++)
      ok = dnc_csv_number(m, &csv, i, cx, 1, &(*x)[i]) &&
           dnc_csv_number(m, &csv, i, cy, 1, &(*y)[i]);
    *n = csv.nrows;
    if (!ok) {
      free(*x);
      free(*y);
      *x = *y = NULL;
    }
  }
  fflush(stdout);
  dnc_cli_show(c, &m->diags);
  dnc_mod_free(m);
  return ok;
}

static void json_number(FILE *out, double v)
{
  char buf[40];
  if (!isfinite(v)) {
    fputs("null", out);
    return;
  }
  dnc_format_number(buf, sizeof buf, v);
  fputs(buf, out);
}

static const char *pname(const report *rp, int j)
{
  return j < rp->f->nparams ? rp->f->params[j].name : "gamma";
}

static int shown(const report *rp, int j)
{
  return j < rp->f->nparams || rp->a->gain;
}

static int is_fixed(const report *rp, int j)
{
  return j < rp->f->nparams ? rp->fixed[j] : rp->a->o.gain_fixed;
}

/* "lower", "upper" or NULL: where variable j ended */
static const char *bound_word(const report *rp, int j)
{
  int b = rp->bounded ? rp->at_bound[j] : 0;
  return b < 0 ? "lower" : b > 0 ? "upper" : NULL;
}

/* bounds: beta >= 0, 0 <= s <= 1 (the variables given --bounds) */
static void print_bounds(FILE *out, const report *rp)
{
  int first = 1;
  for (int j = 0; j <= rp->f->nparams; j++) {
    if (!shown(rp, j) || (rp->lo[j] == -INFINITY && rp->hi[j] == INFINITY))
      continue;
    char l[40], h[40];
    dnc_format_number(l, sizeof l, rp->lo[j]);
    dnc_format_number(h, sizeof h, rp->hi[j]);
    fputs(first ? "bounds: " : ", ", out);
    first = 0;
    if (rp->lo[j] == -INFINITY)
      fprintf(out, "%s <= %s", pname(rp, j), h);
    else if (rp->hi[j] == INFINITY)
      fprintf(out, "%s >= %s", pname(rp, j), l);
    else
      fprintf(out, "%s <= %s <= %s", l, pname(rp, j), h);
  }
  if (!first)
    fputc('\n', out);
}

static void print_text(FILE *out, const report *rp)
{
  const dnc_fit_result *r = rp->r;
  int np = rp->f->nparams;
  fprintf(out, "fit of %s to %d point%s of %s\n", rp->f->name, rp->n,
          rp->n == 1 ? "" : "s", rp->what);
  fprintf(out, "model: %s%s(%s", rp->a->gain ? "gamma * " : "", rp->f->name,
          rp->f->input);
  for (int j = 0; j < np; j++)
    fprintf(out, "%s%s", j ? ", " : "; ", rp->f->params[j].name);
  fputs(")\n", out);
  if (rp->bounded)
    print_bounds(out, rp);
  fprintf(out, "  %-12s %-24s %s\n", "parameter", "value", "std. error");
  for (int j = 0; j <= np; j++) {
    if (!shown(rp, j))
      continue;
    char v[40], se[40];
    dnc_format_number(v, sizeof v, r->value[j]);
    if (is_fixed(rp, j))
      snprintf(se, sizeof se, "(fixed)");
    else if (bound_word(rp, j))
      snprintf(se, sizeof se, "- (at its %s bound)", bound_word(rp, j));
    else if (isnan(r->se[j]))
      snprintf(se, sizeof se, "- (as many points as parameters)");
    else
      snprintf(se, sizeof se, "%.3g", r->se[j]);
    fprintf(out, "  %-12s %-24s %s\n", pname(rp, j), v, se);
  }
  fprintf(out, "residual: mean |r| %.6g, max |r| %.6g, rms %.6g\n",
          r->mean_abs, r->max_abs, r->rms);
  fprintf(out, "stopped after %d iteration%s: %s\n", r->iterations,
          r->iterations == 1 ? "" : "s", r->why);
  /* a parameter the points barely determine (the sum of squares flat in
   * it, as where f saturates for every point): its value is one of many
   * as good, which the table alone does not make plain */
  for (int j = 0; j <= np; j++)
    if (shown(rp, j) && !is_fixed(rp, j) && isfinite(r->se[j]) &&
        r->se[j] > 1e6 * fmax(fabs(r->value[j]), 1.0))
      fprintf(out, "note: the points barely determine %s (its standard "
              "error is %.3g): other values fit as well\n", pname(rp, j),
              r->se[j]);
}

static void print_json(FILE *out, const report *rp)
{
  const dnc_fit_result *r = rp->r;
  int np = rp->f->nparams;
  fputs("{\n  \"function\": ", out);
  dnc_cli_json_string(out, rp->f->name);
  fputs(",\n  \"data\": ", out);
  dnc_cli_json_string(out, rp->what);
  fprintf(out, ",\n  \"points\": %d,\n  \"gain\": %s,\n  \"parameters\": [",
          rp->n, rp->a->gain ? "true" : "false");
  int first = 1;
  for (int j = 0; j <= np; j++) {
    if (!shown(rp, j))
      continue;
    fprintf(out, "%s\n    {\"name\": ", first ? "" : ",");
    first = 0;
    dnc_cli_json_string(out, pname(rp, j));
    fputs(", \"value\": ", out);
    json_number(out, r->value[j]);
    fputs(", \"stderr\": ", out);
    json_number(out, r->se[j]);
    fprintf(out, ", \"fixed\": %s", is_fixed(rp, j) ? "true" : "false");
    if (rp->bounded) { /* an infinite bound, none, is null */
      fputs(", \"lower\": ", out);
      json_number(out, rp->lo[j]);
      fputs(", \"upper\": ", out);
      json_number(out, rp->hi[j]);
      fputs(", \"at_bound\": ", out);
      if (bound_word(rp, j))
        dnc_cli_json_string(out, bound_word(rp, j));
      else
        fputs("null", out);
    }
    fputc('}', out);
  }
  fputs("\n  ],\n  \"mean_abs_residual\": ", out);
  json_number(out, r->mean_abs);
  fputs(",\n  \"max_abs_residual\": ", out);
  json_number(out, r->max_abs);
  fputs(",\n  \"rms_residual\": ", out);
  json_number(out, r->rms);
  fprintf(out, ",\n  \"iterations\": %d,\n  \"converged\": %s,\n"
               "  \"stopped\": ", r->iterations,
          r->status == DNC_FIT_OK ? "true" : "false");
  dnc_cli_json_string(out, r->why);
  fputs("\n}\n", out);
}

static void print_csv(FILE *out, const report *rp)
{
  const dnc_fit_result *r = rp->r;
  int np = rp->f->nparams;
  char buf[40];
  fputs("function,data,points", out);
  for (int j = 0; j <= np; j++)
    if (shown(rp, j)) {
      fprintf(out, ",%s,%s_stderr", pname(rp, j), pname(rp, j));
      if (rp->bounded)
        fprintf(out, ",%s_at_bound", pname(rp, j));
    }
  fputs(",mean_abs_residual,max_abs_residual,rms_residual,iterations,"
        "converged,stopped\n", out);
  dnc_cli_csv_field(out, rp->f->name);
  fputc(',', out);
  dnc_cli_csv_field(out, rp->what);
  fprintf(out, ",%d", rp->n);
  for (int j = 0; j <= np; j++) {
    if (!shown(rp, j))
      continue;
    dnc_format_number(buf, sizeof buf, r->value[j]);
    fprintf(out, ",%s", buf);
    dnc_format_number(buf, sizeof buf, r->se[j]);
    fprintf(out, ",%s", buf);
    if (rp->bounded)
      fprintf(out, ",%s", bound_word(rp, j) ? bound_word(rp, j) : "");
  }
  double v[3] = {r->mean_abs, r->max_abs, r->rms};
  for (int k = 0; k < 3; k++) {
    dnc_format_number(buf, sizeof buf, v[k]);
    fprintf(out, ",%s", buf);
  }
  fprintf(out, ",%d,%d,", r->iterations, r->status == DNC_FIT_OK);
  dnc_cli_csv_field(out, r->why);
  fputc('\n', out);
}

/* --points: x, y, the fitted model and the residual at each point */
static int write_points(FILE *out, void *arg)
{
  const report *rp = arg;
  const double *p = rp->r->value;
  double g = rp->a->gain ? p[rp->f->nparams] : 1;
  fputs("x,y,fit,residual\n", out);
  for (int i = 0; i < rp->n; i++) {
    double m = g * dnc_interp(rp->f, rp->x[i], p);
    char b[4][40];
    double v[4] = {rp->x[i], rp->y[i], m, rp->y[i] - m};
    for (int k = 0; k < 4; k++)
      dnc_format_number(b[k], sizeof b[k], v[k]);
    fprintf(out, "%s,%s,%s,%s\n", b[0], b[1], b[2], b[3]);
  }
  return 0;
}

/* The usage error of a parameter name f lacks, with a suggestion. */
static int no_param(const dnc_cli *c, const fit_args *a, const dnc_fn *f,
                    const char *name)
{
  int np = f->nparams;
  const char **cands = calloc((size_t)np + 2, sizeof *cands);
  for (int k = 0; k < np; k++)
    cands[k] = f->params[k].name;
  if (a->gain)
    cands[np] = "gamma";
  const char *best = dnc_did_you_mean(name, cands, np + a->gain);
  char hint[120] = "";
  if (!a->gain && !strcmp(name, "gamma"))
    snprintf(hint, sizeof hint, "; the gain gamma is fitted with "
                                "--gain (and with --target)");
  else if (best)
    snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
  free(cands);
  return dnc_cli_usage_error(c, "'%s' has no parameter '%s'%s", f->name,
                             name, hint);
}

/* --bounds into lo and hi (np + 1 each, -inf and inf where none); a usage
 * error for a name f lacks, a parameter bounded twice, and bounds that
 * dnc_fit_bounds_check refuses (NaN, LO >= HI, on a --fix'ed parameter, a
 * start outside them), named. */
static int apply_bounds(const dnc_cli *c, const fit_args *a, const dnc_fn *f,
                        const double *p0, const int *fixed, double *lo,
                        double *hi)
{
  int np = f->nparams;
  for (int j = 0; j <= np; j++) {
    lo[j] = -INFINITY;
    hi[j] = INFINITY;
  }
  for (int i = 0; i < a->nbounds; i++) {
    const setting *b = &a->bounds[i];
    for (int k = 0; k < i; k++)
      if (!strcmp(a->bounds[k].name, b->name))
        return dnc_cli_usage_error(c, "two --bounds for '%s'; give one",
                                   b->name);
    int j = dnc_fn_param_index(f, b->name);
    if (j < 0 && a->gain && !strcmp(b->name, "gamma"))
      j = np;
    if (j < 0)
      return no_param(c, a, f, b->name);
    lo[j] = b->v;
    hi[j] = b->hi;
  }
  char why[300];
  int j = a->nbounds ? dnc_fit_bounds_check(f, p0, fixed, &a->o, lo, hi, why,
                                            sizeof why)
                     : -1;
  if (j >= 0 && !strncmp(why, "the start of", 12)) /* where it comes from */
    return dnc_cli_usage_error(c, "--bounds: %s with --init %s=V", why,
                               j < np ? f->params[j].name : "gamma");
  if (j >= 0)
    return dnc_cli_usage_error(c, "--bounds: %s", why);
  return -1;
}

/* The initial and fixed values into p0 and fixed; a usage error for a
 * name f lacks. */
static int apply_settings(const dnc_cli *c, fit_args *a, const dnc_fn *f,
                          double *p0, int *fixed)
{
  int np = f->nparams;
  for (int j = 0; j < np; j++)
    p0[j] = f->params[j].def;
  /* a parameter named twice: --fix held it whatever --init said, in
   * either order, and the last of two values won; which is meant? */
  int nall = a->ninit + a->nfix;
  for (int i = 0; i < nall; i++)
    for (int k = i + 1; k < nall; k++) {
      int fi = i >= a->ninit, fk = k >= a->ninit;
      const setting *si = fi ? &a->fix[i - a->ninit] : &a->init[i];
      const setting *sk = fk ? &a->fix[k - a->ninit] : &a->init[k];
      if (strcmp(si->name, sk->name) || (fi == fk && si->v == sk->v))
        continue;
      if (fi != fk)
        return dnc_cli_usage_error(
            c, "'%s' is given to both --init and --fix: --init %s=V starts "
               "it at V, --fix %s=V holds it there; give one",
            si->name, si->name, si->name);
      char v1[40], v2[40];
      dnc_format_double(v1, sizeof v1, si->v);
      dnc_format_double(v2, sizeof v2, sk->v);
      return dnc_cli_usage_error(c, "two values for '%s' in %s (%s and %s); "
                                    "give one",
                                 si->name, fi ? "--fix" : "--init", v1, v2);
    }
  for (int pass = 0; pass < 2; pass++) {
    setting *s = pass ? a->fix : a->init;
    int ns = pass ? a->nfix : a->ninit;
    for (int i = 0; i < ns; i++) {
      int j = dnc_fn_param_index(f, s[i].name);
      if (j < 0 && a->gain && !strcmp(s[i].name, "gamma")) {
        a->o.gain_init = s[i].v;
        a->o.gain_fixed |= pass;
        continue;
      }
      if (j < 0)
        return no_param(c, a, f, s[i].name);
      p0[j] = s[i].v;
      fixed[j] |= pass;
    }
  }
  return -1;
}

static const char *status_advice(dnc_fit_status s)
{
  switch (s) {
  case DNC_FIT_MAXITER:
    return "; allow more with --max-iter, or start elsewhere with --init";
  case DNC_FIT_STALLED:
    return "; the model may not be smooth near these parameters: try other "
           "--init values";
  default:
    return "";
  }
}

/* The fit's own errors, in words; 0 when it succeeded. */
static int explain(const report *rp)
{
  const dnc_fit_result *r = rp->r;
  const dnc_fn *f = rp->f;
  switch (r->status) {
  case DNC_FIT_OK:
    return 0;
  case DNC_FIT_NONFINITE: {
    char x[40];
    dnc_format_number(x, sizeof x, rp->x[r->bad_point]);
    if (r->bad_param >= 0) { /* f is finite there, a derivative is not */
      const char *p = r->bad_param < f->nparams ? f->params[r->bad_param].name
                                                : "gamma";
      return dnc_cli_error("the derivative of %s with respect to '%s' is "
                           "not finite at x = %s (point %d) with the "
                           "starting parameters; choose others with --init, "
                           "hold it with --fix %s=V, or leave that point out",
                           f->name, p, x, r->bad_point + 1, p);
    }
    return dnc_cli_error("%s is not finite at x = %s (point %d) with the "
                         "starting parameters; choose others with --init, "
                         "or leave that point out", f->name, x,
                         r->bad_point + 1);
  }
  case DNC_FIT_TOOFEW:
    return dnc_cli_error("cannot fit %s: %s", f->name, r->why);
  case DNC_FIT_ILLPOSED: {
    const char *p = r->bad_param < f->nparams ? f->params[r->bad_param].name
                                              : "gamma";
    /* not a parameter without effect: the fit ran off to a limit, where
     * the parameters stop mattering one by one */
    if (!strncmp(r->why, DNC_FIT_WHY_GREW, strlen(DNC_FIT_WHY_GREW)))
      return dnc_cli_error("the fit of %s ran off after %d iteration%s: %s; "
                           "hold one with --fix %s=V, or keep them within "
                           "--bounds", f->name, r->iterations,
                           r->iterations == 1 ? "" : "s", r->why, p);
    if (!strncmp(r->why, DNC_FIT_WHY_DRIFTED, strlen(DNC_FIT_WHY_DRIFTED)))
      return dnc_cli_error("the fit of %s drifted off after %d iteration%s: "
                           "%s; the start is on a plateau, not near a fit: "
                           "start elsewhere with --init, or keep the "
                           "parameters within --bounds", f->name,
                           r->iterations, r->iterations == 1 ? "" : "s",
                           r->why);
    /* it may be where the fit is (a saturated erf, a huge beta) rather
     * than the model: both remedies */
    return dnc_cli_error("ill-posed fit: parameter '%s' of %s is not "
                         "determined by the points %s(it has no effect on "
                         "them, or the same effect as other parameters); "
                         "hold it with --fix %s=V, or, where it should "
                         "matter, start elsewhere with --init", p, f->name,
                         r->iterations == 0 ? "at the starting values " : "",
                         p);
  }
  case DNC_FIT_STALLED:
    return dnc_cli_error("the fit of %s stalled: %s%s", f->name, r->why,
                         status_advice(r->status));
  default:
    return dnc_cli_error("the fit of %s %s%s", f->name, r->why,
                         status_advice(r->status));
  }
}

static int run(const dnc_cli *c, int argc, char **argv)
{
  fit_args a = {0};
  a.init = calloc((size_t)argc + 1, sizeof *a.init);
  a.fix = calloc((size_t)argc + 1, sizeof *a.fix);
  a.bounds = calloc((size_t)argc + 1, sizeof *a.bounds);
  double *x = NULL, *y = NULL, *p0 = NULL, *lo = NULL, *hi = NULL;
  int *fixed = NULL, *at_bound = NULL, n = 0;
  dnc_mod *m = NULL;
  char *what = NULL;
  int rc = parse(c, argc, argv, &a);
  if (rc >= 0)
    goto out;
  rc = DNC_EXIT_INPUT;
  /* --points never overwrites the source or the data it was fitted to:
   * refused before the fit, not after its report was printed */
  const char *inputs[2] = {a.file, a.data}; /* "-": standard input's file */
  dnc_cli_inputs = inputs;
  dnc_cli_ninputs = 2;
  if (a.points && dnc_cli_check_output_dir(a.points))
    goto out;
  if (!(m = dnc_cli_load(c, (char **)&a.file, 1)))
    goto out;
  dnc_fn *f = dnc_cli_function(c, m, a.file, a.fn);
  if (!f) {
    rc = m->nfns == 0 ? DNC_EXIT_INPUT : DNC_EXIT_USAGE;
    goto out;
  }
  if (a.gain && dnc_fn_param_index(f, "gamma") >= 0) {
    rc = dnc_cli_error("%s has a parameter named 'gamma', the name of the "
                       "layer's gain that the fit adds%s", f->name,
                       a.target >= 0 ? "" : "; fit without --gain");
    goto out;
  }
  p0 = calloc((size_t)f->nparams + 1, sizeof *p0);
  fixed = calloc((size_t)f->nparams + 1, sizeof *fixed);
  if ((rc = apply_settings(c, &a, f, p0, fixed)) >= 0)
    goto out;
  a.o.gain = a.gain;
  lo = calloc((size_t)f->nparams + 1, sizeof *lo);
  hi = calloc((size_t)f->nparams + 1, sizeof *hi);
  at_bound = calloc((size_t)f->nparams + 1, sizeof *at_bound);
  if ((rc = apply_bounds(c, &a, f, p0, fixed, lo, hi)) >= 0)
    goto out;
  rc = DNC_EXIT_INPUT;
  if (a.data) {
    if (!read_points(c, &a, &x, &y, &n))
      goto out;
    what = strdup(strcmp(a.data, "-") ? a.data : "<stdin>");
  } else {
    dnc_ref_points(&a.t, &x, &y, &n);
    if (!(x[n - 1] > x[n / 2])) {
      rc = dnc_cli_error("--reach %g is not beyond the largest channel value "
                         "%g; the outlier must grow", a.t.reach, x[n / 2]);
      goto out;
    }
    char sc[40], ep[40];
    dnc_format_number(sc, sizeof sc, a.t.scale);
    dnc_format_number(ep, sizeof ep, a.t.eps);
    if (asprintf(&what, "%s (C = %d, %s, scale %s, seed %llu, outlier to "
                 "%.6g, eps %s)", dnc_ref_name(a.t.kind), a.t.channels,
                 dnc_dist_name(a.t.dist), sc, (unsigned long long)a.t.seed,
                 x[n - 1], ep) < 0)
      dnc_die(__FILE__, __LINE__, "out of memory");
  }
  dnc_fit_result r;
  dnc_fit_bounded(m, f, x, y, n, p0, fixed, lo, hi, &a.o, &r, at_bound);
  report rp = {&a, f, fixed, lo, hi, at_bound, a.nbounds > 0,
               &r, n, what, x, y};
  int printable = r.status == DNC_FIT_OK || r.status == DNC_FIT_MAXITER ||
                  r.status == DNC_FIT_STALLED;
  if (printable) {
    if (a.fmt == FMT_TEXT)
      print_text(stdout, &rp);
    else if (a.fmt == FMT_JSON)
      print_json(stdout, &rp);
    else
      print_csv(stdout, &rp);
  }
  rc = explain(&rp);
  if (!rc && a.points && dnc_cli_write_file(a.points, write_points, &rp))
    rc = DNC_EXIT_INPUT;
  dnc_fit_result_free(&r);
out:
  for (int i = 0; i < a.ninit; i++)
    free(a.init[i].name);
  for (int i = 0; i < a.nfix; i++)
    free(a.fix[i].name);
  for (int i = 0; i < a.nbounds; i++)
    free(a.bounds[i].name);
  free(a.init);
  free(a.fix);
  free(a.bounds);
  free(lo);
  free(hi);
  free(at_bound);
  free(x);
  free(y);
  free(p0);
  free(fixed);
  free(what);
  dnc_mod_free(m);
  return rc;
}

const dnc_command dnc_cmd_fit = {
    "fit", "fit a function's parameters to points, or to LayerNorm", usage,
    run};
