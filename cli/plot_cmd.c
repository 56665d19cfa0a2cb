/*
 * plot_cmd.c - `dnc plot`: functions and their derivatives as an SVG image,
 * written by hand: a frame with ticks at 1-2-5 steps, grid lines, the axes
 * through 0, one polyline per curve (broken where a value is NaN or
 * infinite), derivatives dashed in their function's colour, a legend.
 *
 * The y range covers the values between their 0.5th and 99.5th
 * percentiles (and 8% more), so that a pole does not flatten the rest;
 * what lies beyond is clipped. Values come from the reference interpreter,
 * the derivatives from the derivative step (dnc_derive_prog), at 801
 * points.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: dnc plot FILE [-f NAME[,NAME...]] [-p P=V]... [--range A:B]\n"
    "                [--deriv] [--top K] [--title T] -o OUT.svg\n"
    "\n"
    "Draws functions (and with --deriv their derivatives, dashed) as an SVG\n"
    "image with axes, ticks and a legend. FILE may also be the ranked CSV of\n"
    "'dnc search': then the top K candidates are drawn.\n"
    "\n"
    "  -f, --function NAMES  the functions (default: every one in FILE)\n"
    "  -p, --param P=V       set parameter P of the functions that have it\n"
    "  --range A:B           the x range (default -6:6)\n"
    "  --deriv               also draw df/dx\n"
    "  --top K               with a search's CSV: its first K rows (default 5)\n"
    "  --title T             a title above the plot\n"
    "  -o, --output OUT.svg  the image to write\n";

enum { NPTS = 801, MAXCURVES = 64 };
#define PLOT_MIN_WIDTH 1e-9 /* of a --range, relative to its magnitude */
/* and absolute: the step between points, an eighth of the range for the
 * ticks, and their labels are normal doubles (not 0, not subnormal) */
#define PLOT_MIN_ABS_WIDTH 1e-300
enum { W = 820, H = 500, ML = 72, MR = 190, MT = 44, MB = 52 };

typedef struct curve {
  const char *label;
  int color, dashed;
  double y[NPTS];
} curve;

typedef struct plot {
  const char *title;
  double x0, x1, y0, y1;
  int ncurves;
  curve *c;
} plot;

static const char *const palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
};

static void xml_text(FILE *out, const char *s)
{
  const unsigned char *t = (const unsigned char *)s;
  for (size_t i = 0, n = strlen(s); i < n;) {
    size_t l = dnc_utf8_len(t + i, n - i);
    /* XML text cannot hold a control character, even as a reference, nor
     * a byte that is not UTF-8: a label from a CSV file may have either,
     * and the file would not open. U+FFFD stands for it. */
    if (!l || (t[i] < 0x20 && t[i] != '\t' && t[i] != '\n')) {
      fputs("&#xFFFD;", out);
      i += l ? l : 1;
      continue;
    }
    switch (t[i]) {
    case '&': fputs("&amp;", out); break;
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '"': fputs("&quot;", out); break;
    default: fwrite(t + i, 1, l, out);
    }
    i += l;
  }
}

/* Coordinates in halves, so that a range up to +-DBL_MAX does not overflow
 * (y1 - y0 would be infinite, and inf/inf NaN). */
static double xpx(const plot *p, double x)
{
  return ML + (x / 2 - p->x0 / 2) / (p->x1 / 2 - p->x0 / 2) * (W - ML - MR);
}

static double ypx(const plot *p, double y)
{
  double v = MT + (p->y1 / 2 - y / 2) / (p->y1 / 2 - p->y0 / 2) * (H - MT - MB);
  /* far beyond the frame: clipped anyway, but keep the numbers sane */
  return v < -1e5 ? -1e5 : v > 1e5 ? 1e5 : v;
}

/* A tick step of 1, 2 or 5 times a power of ten, for about 8 ticks (finite
 * for any finite lo < hi: the width is taken in eighths). */
static double tick_step(double lo, double hi)
{
  double raw = hi / 8 - lo / 8, p = pow(10, floor(log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}


/* The i-th of the NPTS sample points, from the nearer end by the
 * half-width, so that nothing overflows when B - A does. */
static double sample_x(const plot *p, int i)
{
  double h = p->x1 / 2 - p->x0 / 2;
  return 2 * i <= NPTS - 1 ? p->x0 + h * (2.0 * i / (NPTS - 1))
                           : p->x1 - h * (2.0 * (NPTS - 1 - i) / (NPTS - 1));
}

/* The ticks k*step in [lo, hi], counted by an integer: `t += step` stops
 * advancing once step is below one ulp of t. At most MAXTICKS. */
enum { MAXTICKS = 32 };
static int ticks(double lo, double hi, double step, double *t)
{
  double k0 = ceil(lo / step), k1 = floor(hi / step + 1e-9);
  int n = 0;
  if (!(k1 - k0 < MAXTICKS)) /* also NaN */
    return 0;
  for (long long i = 0; k0 + (double)i <= k1 && n < MAXTICKS; i++)
    t[n++] = (k0 + (double)i) * step;
  return n;
}

/* v's label: as many decimals as the step needs, or in %g form, with
 * prec significant digits, for large and small numbers */
static void tick_label(char *buf, size_t n, double v, double step, int prec)
{
  int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (fabs(v) < step / 2)
    v = 0;
  if (fabs(v) >= 1e6 || (v != 0 && fabs(v) < 1e-4) || dec > 12)
    snprintf(buf, n, "%.*g", prec, v);
  else
    snprintf(buf, n, "%.*f", dec, v);
}

/* The n ticks' labels, in %g form with the fewest significant digits
 * (6 at least, %g's) that tell neighbours apart: 1e7 + 0.1 k were all
 * "1e+07" with %g's 6. */
enum { LABEL = 40 };
static void tick_labels(char (*lab)[LABEL], const double *t, int n,
                        double step)
{
  for (int prec = 6;; prec++) {
    int same = 0;
    for (int j = 0; j < n; j++) {
      tick_label(lab[j], LABEL, t[j], step, prec);
      same |= j > 0 && !strcmp(lab[j - 1], lab[j]);
    }
    if (!same || prec == 17) /* 17 digits tell every two doubles apart */
      return;
  }
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The y range from the curves' values (see the top of the file). */
static void y_range(plot *p)
{
  double *v = malloc(sizeof *v * (size_t)p->ncurves * NPTS + 1);
  size_t n = 0;
  for (int c = 0; c < p->ncurves; c++)
    for (int i = 0; i < NPTS; i++)
      if (isfinite(p->c[c].y[i]))
        v[n++] = p->c[c].y[i];
  double lo = -1, hi = 1;
  if (n) {
    qsort(v, n, sizeof *v, cmp_double);
    lo = v[(size_t)(0.005 * (n - 1))];
    hi = v[(size_t)(0.995 * (n - 1) + 0.5)];
  }
  free(v);
  /* centre and half-width, so that nothing overflows near +-DBL_MAX */
  double c = lo / 2 + hi / 2, h = hi / 2 - lo / 2;
  if (!(h > 1e-12 * fmax(1, fabs(c))))
    h = fmax(1, fabs(c)) * 0.5;
  h *= 1.08;
  p->y0 = fmax(c - h, -DBL_MAX);
  p->y1 = fmin(c + h, DBL_MAX);
}

static int write_svg(FILE *out, void *arg)
{
  plot *p = arg;
  y_range(p);
  int fw = W - ML - MR, fh = H - MT - MB;
  fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n", W, H, W, H);
  fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
  fprintf(out, "<defs><clipPath id=\"frame\"><rect x=\"%d\" y=\"%d\" "
               "width=\"%d\" height=\"%d\"/></clipPath></defs>\n", ML, MT, fw,
          fh);
  if (p->title) {
    fprintf(out, "<text class=\"title\" x=\"%d\" y=\"%d\" "
                 "text-anchor=\"middle\" font-size=\"15\">", ML + fw / 2,
            MT - 16);
    xml_text(out, p->title);
    fputs("</text>\n", out);
  }
  /* grid and ticks */
  fputs("<g class=\"xticks\" stroke=\"#e4e4e4\">\n", out);
  double sx = tick_step(p->x0, p->x1), sy = tick_step(p->y0, p->y1);
  double tk[MAXTICKS];
  char lab[MAXTICKS][LABEL];
  int ntk = ticks(p->x0, p->x1, sx, tk);
  tick_labels(lab, tk, ntk, sx);
  for (int j = 0; j < ntk; j++) {
    double t = tk[j], px = xpx(p, t);
    const char *buf = lab[j];
    fprintf(out, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
                 "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" "
                 "stroke=\"none\" fill=\"#333\">%s</text>\n",
            px, MT, px, MT + fh, px, MT + fh + 17, buf);
  }
  fputs("</g>\n<g class=\"yticks\" stroke=\"#e4e4e4\">\n", out);
  ntk = ticks(p->y0, p->y1, sy, tk);
  tick_labels(lab, tk, ntk, sy);
  for (int j = 0; j < ntk; j++) {
    double t = tk[j], py = ypx(p, t);
    const char *buf = lab[j];
    fprintf(out, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>"
                 "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\" "
                 "stroke=\"none\" fill=\"#333\">%s</text>\n",
            ML, py, ML + fw, py, ML - 6, py + 4, buf);
  }
  fputs("</g>\n", out);
  /* the axes through 0, when 0 is in range */
  if (p->x0 < 0 && p->x1 > 0)
    fprintf(out, "<line class=\"axis\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" "
                 "y2=\"%d\" stroke=\"#888\"/>\n", xpx(p, 0), MT, xpx(p, 0),
            MT + fh);
  if (p->y0 < 0 && p->y1 > 0)
    fprintf(out, "<line class=\"axis\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" "
                 "y2=\"%.2f\" stroke=\"#888\"/>\n", ML, ypx(p, 0), ML + fw,
            ypx(p, 0));
  fprintf(out, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" "
               "height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT, fw,
          fh);
  fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">x</text>\n",
          ML + fw / 2, H - 10);
  /* curves */
  fputs("<g clip-path=\"url(#frame)\" fill=\"none\" stroke-width=\"2\">\n",
        out);
  for (int c = 0; c < p->ncurves; c++) {
    const curve *cv = &p->c[c];
    int open = 0;
    for (int i = 0; i < NPTS; i++) {
      double x = sample_x(p, i);
      if (!isfinite(cv->y[i])) {
        if (open)
          fputs("\"/>\n", out);
        open = 0;
        continue;
      }
      if (!open) {
        fprintf(out, "<polyline class=\"curve\" data-label=\"");
        xml_text(out, cv->label);
        fprintf(out, "\" stroke=\"%s\"%s points=\"",
                palette[cv->color % 10],
                cv->dashed ? " stroke-dasharray=\"7 4\"" : "");
        open = 1;
      } else {
        fputc(' ', out);
      }
      fprintf(out, "%.2f,%.2f", xpx(p, x), ypx(p, cv->y[i]));
    }
    if (open)
      fputs("\"/>\n", out);
  }
  fputs("</g>\n", out);
  /* legend */
  fputs("<g class=\"legend\">\n", out);
  for (int c = 0; c < p->ncurves; c++) {
    int ly = MT + 8 + 20 * c, lx = W - MR + 14;
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                 "stroke=\"%s\" stroke-width=\"2\"%s/>"
                 "<text x=\"%d\" y=\"%d\">", lx, ly, lx + 26, ly,
            palette[p->c[c].color % 10],
            p->c[c].dashed ? " stroke-dasharray=\"7 4\"" : "", lx + 32,
            ly + 4);
    xml_text(out, p->c[c].label);
    fputs("</text>\n", out);
  }
  fputs("</g>\n</svg>\n", out);
  return 0;
}

/* f (and its derivative) sampled into new curves; -1 (reported) when the
 * derivative is too large */
static int add_curves(plot *p, dnc_mod *m, dnc_fn *f,
                       const double *params, const char *label, int deriv,
                       dnc_arena *a)
{
  int color = p->ncurves / (deriv ? 2 : 1);
  curve *c = &p->c[p->ncurves++];
  c->label = label;
  c->color = color;
  for (int i = 0; i < NPTS; i++)
    c->y[i] = dnc_interp(f, sample_x(p, i), params);
  if (!deriv)
    return 0;
  const dnc_prog *pr = dnc_derive_prog(m, f, DNC_WRT_X);
  if (!pr) {
    dnc_diff_too_large(m, f);
    return -1;
  }
  c = &p->c[p->ncurves++];
  c->label = dnc_arena_printf(a, "d/dx %s", label);
  c->color = color;
  c->dashed = 1;
  for (int i = 0; i < NPTS; i++)
    c->y[i] = (double)dnc_prog_eval(
        pr, sample_x(p, i), params);
  return 0;
}

typedef struct plot_args {
  const dnc_cli *c;
  const char *file, *names, *out, *title;
  double x0, x1;
  int deriv;
  long top;
  int top_given; /* --top was given (it chooses rows of a CSV only) */
  int nset;
  char **set_name;
  double *set_v;
} plot_args;

/* -f NAMES: checked once the file is read (dnc_cli_functions), as by
 * print, eval and diff: `-f ,` is one line, `-f dyt,` an empty name */
static int opt_functions(void *arg, const char *opt, const char *v)
{
  (void)opt;
  plot_args *a = arg;
  if (!*v)
    return dnc_cli_usage_error(a->c, "-f needs function names");
  a->names = v;
  return 0;
}

/* -p P=V: two values for one parameter are refused, as eval's (the last
 * one was taken, silently); the same value twice is once */
static int opt_param(void *arg, const char *opt, const char *v)
{
  (void)opt;
  plot_args *a = arg;
  if (!dnc_cli_setting(v, &a->set_name[a->nset], &a->set_v[a->nset]))
    return -1;
  for (int i = 0; i < a->nset; i++)
    if (!strcmp(a->set_name[i], a->set_name[a->nset])) {
      free(a->set_name[a->nset]);
      return dnc_cli_param_again(a->c, a->set_name[i], a->set_v[i],
                                 a->set_v[a->nset]);
    }
  a->nset++;
  return 0;
}

static int opt_range(void *arg, const char *opt, const char *v)
{
  (void)opt;
  plot_args *a = arg;
  const char *colon = strchr(v, ':');
  char *lo = colon ? strndup(v, (size_t)(colon - v)) : NULL;
  int okr = colon && dnc_cli_number(lo, &a->x0) &&
            dnc_cli_number(colon + 1, &a->x1) && isfinite(a->x0) &&
            isfinite(a->x1) && a->x0 < a->x1;
  free(lo);
  if (!okr)
    return -1;
  /* NPTS distinct points and distinct tick labels need some width */
  double h = a->x1 / 2 - a->x0 / 2;
  if (h < PLOT_MIN_WIDTH / 2 * fmax(fabs(a->x0), fabs(a->x1)) ||
      !(h >= PLOT_MIN_ABS_WIDTH / 2))
    return dnc_cli_usage_error(a->c, "--range %s is too narrow to plot: B - A "
                                     "must be at least %g times the larger "
                                     "of |A| and |B|, and at least %g", v,
                               PLOT_MIN_WIDTH, PLOT_MIN_ABS_WIDTH);
  return 0;
}

/* FILE: one at a time */
static int plot_arg(const dnc_cli *c, void *arg, const char *s)
{
  plot_args *a = arg;
  if (dnc_cli_dashed(s))
    return DNC_CLI_UNKNOWN;
  if (a->file)
    return dnc_cli_usage_error(c, "one input file at a time ('%s' and "
                                  "'%s')", a->file, s);
  a->file = s;
  return -1;
}

static int parse(const dnc_cli *c, int argc, char **argv, plot_args *a)
{
  a->c = c;
  a->x0 = -6;
  a->x1 = 6;
  a->top = 5;
  const dnc_opt opts[] = {
      {.s = "-f", .l = "--function", .kind = DNC_OPT_CALL, .takes = 1,
       .call = opt_functions, .what = "function names"},
      {.s = "-o", .l = "--output", .kind = DNC_OPT_STRING, .dest = &a->out,
       .what = "a file name"},
      {.l = "--title", .kind = DNC_OPT_STRING, .dest = &a->title},
      {.s = "-p", .l = "--param", .kind = DNC_OPT_CALL, .takes = 1,
       .call = opt_param, .name = "--param", .what = "NAME=NUMBER",
       .repeat = 1},
      {.l = "--range", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_range,
       .what = "A:B with finite A < B"},
      {.l = "--deriv", .kind = DNC_OPT_FLAG, .dest = &a->deriv},
      {.l = "--top", .kind = DNC_OPT_INT, .dest = &a->top, .lo = 1,
       .hi = MAXCURVES / 2, .what = "a whole number from %ld to %ld",
       .given = &a->top_given},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, plot_arg, a);
  if (rc >= 0)
    return rc;
  if (!a->file)
    return dnc_cli_usage_error(c, "no input file");
  if (!a->out)
    return dnc_cli_usage_error(c, "no output file (-o OUT.svg)");
  /* the title goes into the SVG as XML text: a control character (XML
   * has no way to write one) or a byte that is not UTF-8 would make the
   * file ill-formed, and no viewer would open it */
  const unsigned char *t = (const unsigned char *)a->title;
  for (size_t i = 0, n = t ? strlen(a->title) : 0; i < n;) {
    size_t l = dnc_utf8_len(t + i, n - i);
    if (!l || (t[i] < 0x20 && t[i] != '\t' && t[i] != '\n'))
      return dnc_cli_usage_error(c, "--title needs UTF-8 text without "
                                    "control characters (byte 0x%02X)",
                                 t[i]);
    i += l;
  }
  return -1;
}

static int ends_with(const char *s, const char *t)
{
  size_t ls = strlen(s), lt = strlen(t);
  return ls >= lt && !strcmp(s + ls - lt, t);
}

/* Whether row r's source cell is not blank. */
static int has_source(const dnc_csv *csv, int r, int cs)
{
  const char *s = csv->cell[(size_t)r * csv->ncols + cs];
  return s[strspn(s, " \t\r\n")] != 0;
}

/* A search's ranked CSV: the sources of its first rows that have one, in
 * one module; fns[i] the function of the i-th of them. A row with an empty
 * source (results.csv's LayerNorm baseline, which is no dnc function) is
 * not drawn, and a note says so. */
static dnc_mod *load_ranked(const plot_args *a, dnc_mod *csvmod,
                            char ***labels, dnc_fn ***fns, int *n)
{
  dnc_csv csv;
  /* a search's CSV holds every candidate: read only the rows drawn */
  if (!dnc_csv_read_head(csvmod, a->file, (int)a->top, &csv))
    return NULL;
  int cs = dnc_csv_column(csvmod, &csv, "source", NULL);
  /* rows without a source among the first K (results.csv's baseline):
   * read as many more, until K have one or the file ends */
  for (int want = (int)a->top, pass = 0; cs >= 0 && pass < 4; pass++) {
    int have = 0;
    for (int r = 0; r < csv.nrows; r++)
      have += has_source(&csv, r, cs);
    if (have >= a->top || csv.nrows < want)
      break;
    want += (int)a->top - have;
    if (!dnc_csv_read_head(csvmod, a->file, want, &csv))
      return NULL;
  }
  int cn = cs >= 0 ? dnc_csv_column(csvmod, &csv, "name", NULL) : -1;
  if (cn < 0)
    return NULL;
  if (csv.nrows == 0) {
    dnc_diag_add(&csvmod->diags, DNC_SEV_ERROR, csv.src, csv.head_loc[0],
                 "no candidates: the file has a header line and no rows");
    return NULL;
  }
  /* row[i]: the CSV row of the i-th drawn */
  int *row = malloc(sizeof *row * (size_t)(csv.nrows + 1)), k = 0;
  for (int r = 0; r < csv.nrows && k < a->top; r++) {
    size_t cell = (size_t)r * csv.ncols + cs;
    if (has_source(&csv, r, cs))
      row[k++] = r;
    else
      dnc_diag_add(&csvmod->diags, DNC_SEV_NOTE, csv.src, csv.cell_loc[cell],
                   "'%s' has no source (a baseline, not a dnc function): "
                   "not drawn", csv.cell[(size_t)r * csv.ncols + cn]);
  }
  if (k == 0) {
    dnc_diag_add(&csvmod->diags, DNC_SEV_ERROR, csv.src, csv.head_loc[cs],
                 "no candidates to draw: none of the %d row%s read has "
                 "a source", csv.nrows, csv.nrows == 1 ? "" : "s");
    free(row);
    return NULL;
  }
  dnc_mod *m = dnc_mod_new();
  for (int i = 0; i < k; i++) {
    const char *s = csv.cell[(size_t)row[i] * csv.ncols + cs];
    dnc_mod_add_source(m, "row", s, strlen(s));
  }
  int errors = dnc_mod_build(m);
  /* each row's first error, or a row without a function, pointed at in
   * its cell (at the very character when the cell is not quoted) */
  for (int r = 0; r < k; r++) {
    size_t cell = (size_t)row[r] * csv.ncols + cs;
    dnc_loc at = csv.cell_loc[cell];
    const dnc_diag *d = m->diags.head;
    while (d && !(d->sev == DNC_SEV_ERROR && d->src == m->sources[r]))
      d = d->next;
    int has_fn = 0;
    for (int i = 0; i < m->nfns; i++)
      has_fn |= m->fns[i]->src == m->sources[r];
    if (d && d->loc.start != UINT32_MAX &&
        at.end - at.start == strlen(csv.cell[cell]))
      at = (dnc_loc){at.start + d->loc.start, at.start + d->loc.end};
    if (d)
      dnc_diag_add(&csvmod->diags, DNC_SEV_ERROR, csv.src, at,
                   "this candidate's source does not compile: %s", d->msg);
    else if (!errors && !has_fn)
      dnc_diag_add(&csvmod->diags, DNC_SEV_ERROR, csv.src, at,
                   "this candidate's source defines no function");
  }
  if (csvmod->diags.nerrors) {
    free(row);
    dnc_mod_free(m);
    return NULL;
  }
  *n = k;
  *labels = calloc((size_t)k + 1, sizeof **labels);
  *fns = calloc((size_t)k + 1, sizeof **fns);
  for (int r = 0; r < k; r++) {
    (*labels)[r] = csv.cell[(size_t)row[r] * csv.ncols + cn];
    for (int i = m->nfns; i-- > 0;)
      if (m->fns[i]->src == m->sources[r])
        (*fns)[r] = m->fns[i]; /* the first one the row defines */
  }
  free(row);
  return m;
}

static int run(const dnc_cli *c, int argc, char **argv)
{
  plot_args a = {0};
  a.set_name = calloc((size_t)argc + 1, sizeof *a.set_name);
  a.set_v = calloc((size_t)argc + 1, sizeof *a.set_v);
  plot p = {0};
  dnc_mod *m = NULL, *csvmod = NULL;
  dnc_arena *arena = dnc_arena_new();
  char **labels = NULL;
  dnc_fn **fns = NULL;
  double *params = NULL;
  int nf = 0, *applied = calloc((size_t)argc + 1, sizeof *applied);
  int rc = parse(c, argc, argv, &a);
  if (rc >= 0)
    goto out;
  rc = DNC_EXIT_INPUT;
  if (ends_with(a.file, ".csv")) {
    if (a.names) {
      rc = dnc_cli_usage_error(c, "-f chooses functions of a source file; "
                                  "with a search's CSV, --top chooses rows");
      goto out;
    }
    csvmod = dnc_mod_new();
    m = load_ranked(&a, csvmod, &labels, &fns, &nf);
    fflush(stdout);
    dnc_cli_show(c, &csvmod->diags);
    if (!m)
      goto out;
  } else {
    if (a.top_given) {
      /* it was passed over: every function drawn, not the first K */
      rc = dnc_cli_usage_error(c, "--top chooses rows of a search's CSV; "
                                  "with a source file, -f chooses functions");
      goto out;
    }
    if (!(m = dnc_cli_load(c, (char **)&a.file, 1)))
      goto out;
    if (!dnc_cli_functions(c, m, a.names, 0, &fns, &nf)) {
      rc = DNC_EXIT_USAGE; /* as -f of the other commands */
      goto out;
    }
    labels = calloc((size_t)nf + 1, sizeof *labels);
    for (int k = 0; k < nf; k++)
      labels[k] = (char *)fns[k]->name;
  }
  if (nf * (a.deriv ? 2 : 1) > MAXCURVES) {
    rc = dnc_cli_usage_error(c, "%d curves; at most %d in one plot",
                             nf * (a.deriv ? 2 : 1), MAXCURVES);
    goto out;
  }
  p.title = a.title;
  p.x0 = a.x0;
  p.x1 = a.x1;
  p.c = calloc((size_t)nf * 2 + 1, sizeof *p.c);
  params = calloc(DNC_MAX_PARAMS + 1, sizeof *params);
  for (int k = 0; k < nf; k++) {
    for (int j = 0; j < fns[k]->nparams; j++)
      params[j] = fns[k]->params[j].def;
    for (int s = 0; s < a.nset; s++) {
      int j = dnc_fn_param_index(fns[k], a.set_name[s]);
      if (j >= 0) {
        params[j] = a.set_v[s];
        applied[s] = 1;
      }
    }
    if (add_curves(&p, m, fns[k], params, labels[k], a.deriv, arena)) {
      rc = DNC_EXIT_INPUT;
      goto out;
    }
  }
  for (int s = 0; s < a.nset; s++)
    if (!applied[s]) {
      rc = dnc_cli_usage_error(c, "no function plotted has a parameter '%s'",
                               a.set_name[s]);
      goto out;
    }
  /* a curve with no finite point has a legend entry and no line: say so */
  for (int k = 0; k < p.ncurves && !c->no_warnings; k++) {
    int finite = 0;
    for (int i = 0; i < NPTS && !finite; i++)
      finite = isfinite(p.c[k].y[i]);
    if (!finite) {
      char r0[32], r1[32];
      dnc_format_number(r0, sizeof r0, p.x0);
      dnc_format_number(r1, sizeof r1, p.x1);
      fprintf(stderr, "dnc: warning: '%s' is NaN or infinite at every point "
                      "of %s:%s; it has no line\n", p.c[k].label, r0, r1);
    }
  }
  const char *inputs[1] = {a.file};
  dnc_cli_inputs = inputs;
  dnc_cli_ninputs = 1;
  rc = dnc_cli_write_file(a.out, write_svg, &p) ? DNC_EXIT_INPUT : 0;
out:
  for (int s = 0; s < a.nset; s++)
    free(a.set_name[s]);
  free(a.set_name);
  free(a.set_v);
  free(applied);
  free(p.c);
  free(params);
  free(fns);
  free(labels);
  dnc_mod_free(m);
  dnc_mod_free(csvmod);
  dnc_arena_free(arena);
  return rc;
}

const dnc_command dnc_cmd_plot = {
    "plot", "draw functions and their derivatives as SVG", usage, run};
