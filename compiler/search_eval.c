/*
 * search_eval.c - measuring a candidate: its program evaluated over whole
 * grids at once, one instruction at a time across all points (so that the
 * switch on the operation is paid once per instruction, not per point),
 * in double precision; then the four properties, the fit to LayerNorm and
 * the spec's scores (docs/search.md defines each, with its setting).
 *
 * The grids, in one array of x values:
 *   dense: grid_points points on [-grid_range, grid_range], symmetric
 *          (x[h + k] = -x[h - k] exactly) with 0 in the middle;
 *   far:   +-10^(j / per_decade) for j = 0 .. decades * per_decade;
 *   ln:    the reference points of LayerNorm (fit.c's dnc_ref_points with
 *          C = ln_channels, ln_steps, seed ln_seed, the other defaults).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"

/* ORDER: DNC_M_* */
static const char *const measure_names[DNC_M__COUNT] = {
    "zero_centred", "bounded", "center_sensitive", "monotonic", "props",
    "finite", "f0", "odd_err", "sup", "growth", "slope0",
    "center_min_slope", "min_slope", "max_slope", "residual", "gain",
};

const char *dnc_measure_name(int k)
{
  return measure_names[k];
}

struct dnc_grids {
  int n;
  double *x;
  int ndense, far0, nfar, ln0, nln;
  double *ly, ly2;
  int nscore;
  double *score_x;
};

dnc_grids *dnc_grids_new(const dnc_space *s)
{
  dnc_grids *g = calloc(1, sizeof *g);
  g->ndense = (int)s->set[S_GRID_POINTS];
  int pd = (int)s->set[S_PER_DECADE], dec = (int)s->set[S_DECADES];
  g->nfar = 2 * (dec * pd + 1);
  dnc_refpoints t;
  dnc_ref_defaults(&t);
  t.channels = (int)s->set[S_LN_CHANNELS];
  t.steps = (int)s->set[S_LN_STEPS];
  t.seed = (uint64_t)s->set[S_LN_SEED];
  double *lx;
  dnc_ref_points(&t, &lx, &g->ly, &g->nln);
  g->n = g->ndense + g->nfar + g->nln;
  g->far0 = g->ndense;
  g->ln0 = g->far0 + g->nfar;
  g->x = malloc(sizeof *g->x * (size_t)g->n);
  int h = g->ndense / 2;
  double R = s->set[S_GRID_RANGE];
  g->x[h] = 0;
  for (int k = 1; k <= h; k++) {
    g->x[h + k] = R * k / h;
    g->x[h - k] = -(R * k / h);
  }
  for (int j = 0; j <= dec * pd; j++) {
    double v = pow(10, (double)j / pd);
    g->x[g->far0 + 2 * j] = v;
    g->x[g->far0 + 2 * j + 1] = -v;
  }
  memcpy(g->x + g->ln0, lx, sizeof *lx * (size_t)g->nln);
  free(lx);
  g->ly2 = 0;
  for (int i = 0; i < g->nln; i++)
    g->ly2 += g->ly[i] * g->ly[i];
  g->nscore = (int)s->set[S_SCORE_POINTS];
  g->score_x = malloc(sizeof *g->score_x * (size_t)g->nscore);
  for (int i = 0; i < g->nscore; i++)
    g->score_x[i] = -R + 2 * R * i / (g->nscore - 1);
  return g;
}

void dnc_grids_free(dnc_grids *g)
{
  if (!g)
    return;
  free(g->x);
  free(g->ly);
  free(g->score_x);
  free(g);
}

#define DNC_OPM_T double
#define DNC_OPM_ONE 1.0
#define DNC_OPM_F DNC_OPM_LIBM_D
#define DNC_OPM_NAME(m) sv_##m
#include "opmath_def.h"

void dnc_vprog_eval(const dnc_vprog *p, const double *x, int n, double *w)
{
  for (int i = 0; i < p->n; i++) {
    const dnc_vinsn *in = &p->insn[i];
    double *r = w + (size_t)i * n;
    const double *a = w + (size_t)in->arg[0] * n;
    const double *b = w + (size_t)in->arg[1] * n;
    const double *c = w + (size_t)in->arg[2] * n;
    switch (in->op) {
    case OP_CONST:
      for (int j = 0; j < n; j++)
        r[j] = in->value;
      break;
    case OP_INPUT: memcpy(r, x, sizeof *r * (size_t)n); break;
    case OP_PARAM: DNC_ASSERT(!"a candidate has no parameters"); break;
      /* every other op: its formula (opmath.h), inlined in its own loop */
#define OP_LOOP_0(NAME, MATH)
#define OP_LOOP_1(NAME, MATH)                                              \
  case OP_##NAME:                                                          \
    for (int j = 0; j < n; j++)                                            \
      r[j] = sv_##MATH(a[j], 0, 0);                                        \
    break;
#define OP_LOOP_2(NAME, MATH)                                              \
  case OP_##NAME:                                                          \
    for (int j = 0; j < n; j++)                                            \
      r[j] = sv_##MATH(a[j], b[j], 0);                                     \
    break;
#define OP_LOOP_3(NAME, MATH)                                              \
  case OP_##NAME:                                                          \
    for (int j = 0; j < n; j++)                                            \
      r[j] = sv_##MATH(a[j], b[j], c[j]);                                  \
    break;
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, \
          DIFF, LOWER)                                                    \
  OP_LOOP_##ARITY(NAME, MATH)
      DNC_OPS(X)
#undef X
    }
  }
}

/* The spec's scores: each the mean of its expression over the score grid,
 * with f and df the candidate and its derivative. */
static void scores(const dnc_space *s, const dnc_grids *g, const dnc_cand *c,
                   double *out)
{
  dnc_mod *m = dnc_mod_new();
  dnc_mod_add_source(m, s->path, s->score_text, strlen(s->score_text));
  dnc_mod_add_source(m, "<candidate>", c->score_src, strlen(c->score_src));
  int errors = dnc_mod_build(m);
  double *p = NULL;
  for (int k = 0; k < s->nscores; k++) {
    dnc_fn *f = errors ? NULL : dnc_mod_find(m, s->score_names[k]);
    long double sum = 0;
    for (int i = 0; f && i < g->nscore; i++)
      sum += dnc_interp(f, g->score_x[i], p);
    out[k] = f ? (double)(sum / g->nscore) : NAN;
  }
  dnc_mod_free(m);
}

/* +1 or -1 where one side's f' grows without bound towards 0 with that
 * sign, else 0. a, b, c: 2 f'(h) - f'(2h) at |h| = 2^-40, 2^-45, 2^-50.
 * Growing: |a| < |b| < |c| (or c infinite) with one sign, the step from b
 * to c not smaller than 0.999 of the one from a to b (a limit c + k h^p
 * is approached in ever smaller steps, by 2^(-5p) each: 0.93 for x -
 * sign(x) |x|^1.02 / 1.02, whose slope is 1, where 0.9 took it for a
 * divergence; log's steps are equal but for rounding), and by
 * less than a factor 24 a step: f' of a continuous f grows slower than
 * 1/h (32 a step), and so does rounding's noise in f' not. */
static int side_diverges(double a, double b, double c)
{
  if (!isfinite(a) || isnan(b) || isnan(c) || a * b <= 0 || b * c <= 0)
    return 0;
  int sgn = c > 0 ? 1 : -1;
  if (isinf(c))
    return isfinite(b) && fabs(b) > fabs(a) ? sgn : 0;
  double ab = fabs(b) - fabs(a), bc = fabs(c) - fabs(b);
  return isfinite(b) && ab > 1e-6 * fabs(b) && bc >= 0.999 * ab &&
                 fabs(c) < 24 * fabs(b)
             ? sgn
             : 0;
}

/* f'(0) where the language's conventions give another value at 0
 * exactly than f' has on both sides of it: sign(x) g(|x|) (a `mirror`,
 * an odd extension) has the slope g'(0) at 0, where its derivative
 * sign(x)^2 g'(|x|) is sign(0)^2 g'(0) = 0, which made every mirror
 * candidate not center-sensitive (erf's odd extension is erf itself).
 * The limit is taken where f is continuous at 0 and f' has one limit
 * there: each side's, 2 f'(h) - f'(2h) at h = +-2^-40 (the linear term
 * out: 0.5 for a mirror's g'(0) = 0.5, where f'(h) alone was 0.5 -
 * 4.5e-13), the two within 1e-6 relative; where it has two (|x|, a kink
 * at 0) or f jumps, the convention's d0 stays, and so it does where it
 * equals that limit but for 1e-6 of the slope's size or of 1e-9 (x^3's
 * 0, whose limit so taken is -6 h^2, not 0). Where f' grows without
 * bound on a side (sign(x) |x|^0.5, x log|x|), the value at 2^-40 is no
 * limit: the slope is that side's infinity where both sides have the
 * same one, else NaN (a cusp), so that f' is not finite at 0. */
static double slope_at_0(const dnc_vprog *p, double d0)
{
  enum { N = 13 };
  static const double xs[N] = {-0x1p-39, -0x1p-40, 0x1p-40, 0x1p-39,
                               0,        -0x1p-44, -0x1p-45, 0x1p-45,
                               0x1p-44,  -0x1p-49, -0x1p-50, 0x1p-50,
                               0x1p-49};
  double *w = malloc(sizeof *w * N * p->n);
  if (!w)
    dnc_die(__FILE__, __LINE__, "out of memory");
  dnc_vprog_eval(p, xs, N, w);
  const double *f = w + (size_t)p->rf * N, *d = w + (size_t)p->rdf * N;
  double l = 2 * d[1] - d[0], r = 2 * d[2] - d[3];
  double ds = fmax(fabs(l), fabs(r));
  double fs = fmax(1, fmax(fabs(f[1]), fabs(f[2])));
  int one_limit = isfinite(l) && isfinite(r) && fabs(l - r) <= 1e-6 * ds &&
                  isfinite(f[4]) && fabs(f[1] - f[4]) <= 1e-6 * fs &&
                  fabs(f[2] - f[4]) <= 1e-6 * fs;
  int dl = side_diverges(l, 2 * d[6] - d[5], 2 * d[10] - d[9]);
  int dr = side_diverges(r, 2 * d[7] - d[8], 2 * d[11] - d[12]);
  /* continuous: f(+-2^-50) near f(0), or nearer than f(+-2^-40) is
   * (sign(x) |x|^0.1 is 0.06 from f(0) at 2^-40; a jump keeps its size) */
  int cont = isfinite(f[4]);
  for (int k = 0; k < 2; k++) {
    double near = fabs(f[10 + k] - f[4]), far = fabs(f[1 + k] - f[4]);
    cont &= near <= 1e-6 * fs || near <= 0.5 * far;
  }
  free(w);
  if ((dl || dr) && cont) {
    double inf = dl == dr ? dl * INFINITY : NAN;
    return inf == d0 ? d0 : inf;
  }
  double lim = (l + r) / 2;
  return one_limit && !(fabs(d0 - lim) <= 1e-6 * fmax(ds, 1e-9)) ? lim : d0;
}

/* Whether f cannot be continuous between neighbouring grid points i and
 * j: both derivatives there disagree in sign with the secant (f would
 * have to turn twice within the step, or jump: a pole of tan between
 * grid points, a mirror's jump at 0). */
static int broken(const double *f, const double *d, int i, int j)
{
  double sec = f[j] - f[i];
  return isfinite(sec) && isfinite(d[i]) && isfinite(d[j]) &&
         sec * d[i] < 0 && sec * d[j] < 0;
}

/* max |f| on [a, b], zoomed in eight times around the largest of 33
 * samples: beyond any bound near a pole (1/(x - c) reaches 1e6 / (b - a)
 * and more), a jump's sides elsewhere; inf where f is not finite. */
static double zoom_max(const dnc_vprog *p, double a, double b)
{
  enum { K = 33 };
  double xs[K], best = 0;
  double *w = malloc(sizeof *w * K * p->n);
  if (!w)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int round = 0; round < 8 && b > a; round++) {
    for (int k = 0; k < K; k++)
      xs[k] = a + (b - a) * k / (K - 1);
    dnc_vprog_eval(p, xs, K, w);
    const double *f = w + (size_t)p->rf * K;
    int at = 0;
    for (int k = 0; k < K; k++) {
      if (!isfinite(f[k])) {
        free(w);
        return INFINITY;
      }
      if (fabs(f[k]) > fabs(f[at]))
        at = k;
    }
    best = fmax(best, fabs(f[at]));
    a = xs[at > 0 ? at - 1 : 0], b = xs[at < K - 1 ? at + 1 : K - 1];
  }
  free(w);
  return best;
}

/* Whether f's values on the n grid points first, first + step, ... (x
 * increasing) rise (up) or fall with x, to mono_tol of the slope and
 * rounding. A NaN value (f undefined there: x / sqrt(400 - x^2) beyond
 * 20, on the far grid) neither rises nor falls: every comparison with it
 * was false, and such a function was monotonic. */
static int values_monotone(const double *x, const double *f, int first,
                           int step, int n, int up, double tol)
{
  for (int k = 1, i = first + step; k < n; k++, i += step) {
    double a = f[i - step], b = f[i];
    if (isnan(a) || isnan(b))
      return 0;
    double slack = tol * (x[i] - x[i - step]) +
                   4 * DBL_EPSILON * (fabs(a) + fabs(b));
    if (up ? b < a - slack : b > a + slack)
      return 0;
  }
  return 1;
}

void dnc_measure(const dnc_space *s, const dnc_grids *g, const dnc_cand *c,
                 double **work, size_t *cap, double *out)
{
  const dnc_vprog *p = &c->prog;
  size_t need = (size_t)p->n * g->n;
  if (need > *cap) {
    free(*work);
    *work = malloc(sizeof **work * need);
    if (!*work)
      dnc_die(__FILE__, __LINE__, "out of memory");
    *cap = need;
  }
  dnc_vprog_eval(p, g->x, g->n, *work);
  const double *f = *work + (size_t)p->rf * g->n;
  const double *d = *work + (size_t)p->rdf * g->n;
  int nd = g->ndense, h = nd / 2;
  int finite = 1;
  double d0 = g->x[h] == 0 ? slope_at_0(p, d[h]) : d[h];
  double maxabs = 0, odd = 0, cmin = INFINITY, dmin = INFINITY,
         dmax = -INFINITY;
  double cw = s->set[S_CENTER_WIDTH];
  for (int i = 0; i < nd; i++) {
    double di = i == h ? d0 : d[i];
    if (!isfinite(f[i]) || !isfinite(di)) {
      finite = 0;
      continue;
    }
    maxabs = fmax(maxabs, fabs(f[i]));
    dmin = fmin(dmin, di);
    dmax = fmax(dmax, di);
    if (fabs(g->x[i]) <= cw)
      cmin = fmin(cmin, fabs(di));
  }
  for (int k = 1; k <= h; k++)
    odd = fmax(odd, fabs(f[h + k] + f[h - k]));
  odd /= fmax(1, maxabs);
  out[DNC_M_FINITE] = finite;
  out[DNC_M_F0] = f[h];
  out[DNC_M_ODD] = finite ? odd : NAN;
  out[DNC_M_SLOPE0] = d0;
  out[DNC_M_CMIN] = finite ? cmin : NAN;
  out[DNC_M_MINSLOPE] = finite ? dmin : NAN;
  out[DNC_M_MAXSLOPE] = finite ? dmax : NAN;
  out[DNC_M_ZERO] = finite && fabs(f[h]) <= s->set[S_ZERO_TOL] &&
                    odd <= s->set[S_ODD_TOL];
  out[DNC_M_CENTER] = finite && cmin >= s->set[S_CENTER_SLOPE];
  /* monotonic: f' of one sign, and f's values rising or falling with it
   * on the dense grid and along each side of the far one: f' at the grid
   * points alone took tan (poles between them) and a mirror of a
   * shifted g (a jump at 0) for monotonic */
  double mt = s->set[S_MONO_TOL];
  int nf = g->nfar / 2, mono = 0;
  for (int up = 1; up >= 0 && finite && !mono; up--) {
    if (up ? dmin < -mt : dmax > mt)
      continue;
    /* the dense grid; the far one's x > 0 (1 ... 10^8, every other
     * point from far0) and x < 0 (-10^8 ... -1, walked back) */
    mono = values_monotone(g->x, f, 0, 1, nd, up, mt) &&
           values_monotone(g->x, f, g->far0, 2, nf, up, mt) &&
           values_monotone(g->x, f, g->far0 + 2 * (nf - 1) + 1, -2, nf, up, mt);
  }
  out[DNC_M_MONO] = mono;
  /* bounded: the far grid's last decade against everything nearer */
  int pd = (int)s->set[S_PER_DECADE], dec = (int)s->set[S_DECADES];
  double last = 0, rest = maxabs;
  int far_finite = 1;
  for (int j = 0; j <= dec * pd; j++)
    for (int sgn = 0; sgn < 2; sgn++) {
      double v = fabs(f[g->far0 + 2 * j + sgn]);
      if (!isfinite(v))
        far_finite = 0;
      else if (j > (dec - 1) * pd)
        last = fmax(last, v);
      else
        rest = fmax(rest, v);
    }
  /* a pole between neighbouring points (tan's at pi/2, x / (x^2 - 2)'s
   * at sqrt(2)) is no sample's: where f cannot be continuous between
   * them, the largest |f| found there, zoomed in (at most 16 places) */
  int looked = 0;
  for (int i = 0; i + 1 < nd && looked < 16; i++)
    if (broken(f, d, i, i + 1))
      rest = fmax(rest, zoom_max(p, g->x[i], g->x[i + 1])), looked++;
  for (int sgn = 0; sgn < 2; sgn++)
    for (int j = 0; j < dec * pd && looked < 16; j++) {
      int i = g->far0 + 2 * j + sgn, k = i + 2;
      if (broken(f, d, sgn ? k : i, sgn ? i : k))
        rest = fmax(rest, zoom_max(p, fmin(g->x[i], g->x[k]),
                                   fmax(g->x[i], g->x[k]))),
        looked++;
    }
  double sup = fmax(last, rest);
  double growth = rest > 0 ? last / rest : last > 0 ? INFINITY : 1;
  out[DNC_M_SUP] = finite && far_finite ? sup : INFINITY;
  out[DNC_M_GROWTH] = finite && far_finite ? growth : INFINITY;
  out[DNC_M_BOUNDED] = finite && far_finite && sup <= s->set[S_BOUND_MAX] &&
                       growth <= 1 + s->set[S_GROWTH_TOL];
  out[DNC_M_PROPS] = out[DNC_M_ZERO] + out[DNC_M_BOUNDED] +
                     out[DNC_M_CENTER] + out[DNC_M_MONO];
  /* the fit to LayerNorm with the best gain: y ~ gain * f */
  long double sff = 0, sfy = 0;
  int ln_finite = 1;
  for (int i = 0; i < g->nln; i++) {
    double v = f[g->ln0 + i];
    ln_finite &= isfinite(v);
    sff += (long double)v * v;
    sfy += (long double)v * g->ly[i];
  }
  double gain = ln_finite && sff > 0 ? (double)(sfy / sff) : NAN;
  double res = NAN;
  if (ln_finite && sff > 0) {
    long double r2 = 0;
    for (int i = 0; i < g->nln; i++) {
      long double r = g->ly[i] - gain * f[g->ln0 + i];
      r2 += r * r;
    }
    res = sqrt((double)(r2 / g->ly2));
  }
  out[DNC_M_RESIDUAL] = res;
  out[DNC_M_GAIN] = gain;
  if (s->nscores)
    scores(s, g, c, out + DNC_M__COUNT);
}

int dnc_space_compare(const dnc_space *s, const double *a, int64_t ida,
                      const double *b, int64_t idb)
{
  for (int k = 0; k < s->nkeys; k++) {
    double x = a[s->keys[k].column], y = b[s->keys[k].column];
    if (isnan(x) || isnan(y)) {
      if (isnan(x) != isnan(y))
        return isnan(x) ? 1 : -1; /* NaN last, either way */
      continue;
    }
    if (x != y)
      return (x < y) != s->keys[k].desc ? -1 : 1;
  }
  return ida < idb ? -1 : ida > idb;
}
