/*
 * search.c - a search space: its spec file, and its candidates built as
 * simplified DAGs (docs/search.md).
 *
 * A spec is lines of directives: `base NAME(x) = EXPR` (a function in dnc's
 * language), `stage NAME: ALT | ALT ...` (transformations, one of which
 * each candidate takes), `set NAME = NUMBER`, `score NAME(x) = EXPR`,
 * `rank COLUMN [asc|desc], ...`. The base and score lines are compiled as
 * one dnc source: the spec's text with every other line blanked and the
 * keyword overwritten by `fn`, so that their diagnostics point into the
 * spec itself.
 *
 * Candidate id counts bases times stages' alternatives in mixed radix,
 * the last stage fastest. Each candidate is built in a DAG of its own
 * through the simplifying constructor, differentiated, flattened into a
 * program for search_eval.c and printed as dnc source; the DAG is then
 * freed, so memory does not grow with the DAG of every earlier candidate.
 * Its key, which the command deduplicates on, is the DAG written out in a
 * canonical order (commutative operands by a structural hash), so that
 * a*b and b*a built in different orders are one candidate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"

#define MAX_CANDIDATES 4000000
#define MAX_STAGES 64

/* ORDER: xform_kind */
static const struct {
  const char *name;
  int takes; /* 0: nothing, 1: numbers, 2: base names */
} xforms[X__COUNT] = {
    {"id", 0},      {"scale", 1},   {"shift", 1}, {"gain", 1},
    {"offset", 1},  {"mirror", 0},  {"flip", 0},  {"clip", 1},
    {"mix", 1},     {"compose", 2}, {"inside", 2}, {"times", 2},
    {"flat", 1},    {"hump", 1},    {"wave", 1},
};

/* ORDER: S_* */
static const struct {
  const char *name;
  double def, lo, hi;
  int whole;
} settings[S__COUNT] = {
    {"grid_range", 10, 1e-3, 1e6, 0},
    {"grid_points", 1001, 11, 100001, 1},
    {"zero_tol", 1e-9, 0, 1e300, 0},
    {"odd_tol", 1e-6, 0, 1e300, 0},
    {"bound_max", 1e6, 0, 1e300, 0},
    {"growth_tol", 0.05, 0, 1e300, 0},
    {"decades", 8, 1, 30, 1},
    {"per_decade", 8, 1, 100, 1},
    {"center_width", 0.5, 0, 1e6, 0},
    {"center_slope", 0.1, 0, 1e300, 0},
    {"mono_tol", 1e-9, 0, 1e300, 0},
    {"ln_channels", 512, 2, 1 << 20, 1},
    {"ln_steps", 100, 2, 100000, 1},
    {"ln_seed", 0, 0, 1e15, 1},
    {"score_points", 201, 3, 100001, 1},
};

/* ------------------------------------------------------- reading lines */

typedef struct scan {
  dnc_mod *m; /* diagnostics */
  const dnc_source *src;
  size_t i, end; /* the current line's rest */
} scan;

static void err(scan *s, size_t a, size_t b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err(scan *s, size_t a, size_t b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (b <= a)
    b = a + 1;
  dnc_diag_vadd(&s->m->diags, DNC_SEV_ERROR, s->src,
                (dnc_loc){(uint32_t)a, (uint32_t)b}, fmt, ap);
  va_end(ap);
}

static void blank(scan *s)
{
  while (s->i < s->end && (s->src->text[s->i] == ' ' ||
                           s->src->text[s->i] == '\t' ||
                           s->src->text[s->i] == '\r'))
    s->i++;
  if (s->i < s->end && s->src->text[s->i] == '#')
    s->i = s->end; /* a comment to the end of the line */
}

static int is_id(char c, int first)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

/* An identifier at the cursor: its text (arena) and start, or NULL. */
static const char *ident(scan *s, size_t *at)
{
  blank(s);
  size_t a = s->i;
  if (a >= s->end || !is_id(s->src->text[a], 1))
    return NULL;
  while (s->i < s->end && is_id(s->src->text[s->i], 0))
    s->i++;
  if (at)
    *at = a;
  return dnc_arena_strndup(s->m->arena, s->src->text + a, s->i - a);
}

static int punct(scan *s, char c)
{
  blank(s);
  if (s->i < s->end && s->src->text[s->i] == c) {
    s->i++;
    return 1;
  }
  return 0;
}

static int at_end(scan *s)
{
  blank(s);
  return s->i >= s->end;
}

/* A number (as strtod reads it, no further than the line) */
static int number(scan *s, double *v)
{
  blank(s);
  size_t a = s->i;
  char buf[64];
  size_t n = 0;
  while (a + n < s->end && n < sizeof buf - 1 &&
         strchr("0123456789+-.eEinfatyINFATY", s->src->text[a + n]))
    n++;
  memcpy(buf, s->src->text + a, n);
  buf[n] = 0;
  char *e;
  *v = strtod(buf, &e);
  if (e == buf) {
    err(s, a, a + (n ? n : 1), "a number was expected here");
    return 0;
  }
  if (!isfinite(*v)) {
    err(s, a, a + (size_t)(e - buf), "a finite number was expected here");
    return 0;
  }
  s->i = a + (size_t)(e - buf);
  return 1;
}

/* "what was expected" at the cursor */
static void expected(scan *s, const char *what)
{
  size_t last = s->i; /* after the last token: where it was expected */
  blank(s);
  size_t b = s->i;
  while (b < s->end && s->src->text[b] != ' ' && s->src->text[b] != '\t')
    b++;
  if (s->i >= s->end) /* the caret after the line's last token, not on it */
    err(s, last, last, "%s expected at the end of the line", what);
  else
    err(s, s->i, b, "%s expected here", what);
}

/* --------------------------------------------------------- directives */

static int find_base(const dnc_space *sp, const char *name)
{
  for (int b = 0; b < sp->nbases; b++)
    if (!strcmp(sp->bases[b]->name, name))
      return b;
  return -1;
}

static void unknown_name(scan *s, size_t at, const char *what,
                         const char *name, const char *const *cands, int n)
{
  const char *best = dnc_did_you_mean(name, cands, n);
  err(s, at, at + strlen(name), "unknown %s '%s'%s%s%s", what, name,
      best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
}

/* stage NAME: ALT | ALT ... */
static int parse_stage(dnc_space *sp, scan *s)
{
  stage st = {0};
  size_t at;
  if (!(st.name = ident(s, &at))) {
    expected(s, "a stage name");
    return 0;
  }
  st.at = (uint32_t)at;
  if (sp->nstages == MAX_STAGES) {
    /* a candidate's choices are MAX_STAGES at most (dnc_space_build): the
     * 65th stage was an internal error once the space was expanded */
    err(s, at, at + strlen(st.name), "a stage beyond the %d a spec may "
        "have; fold some into one stage", MAX_STAGES);
    return 0;
  }
  for (int k = 0; k < sp->nstages; k++)
    if (!strcmp(sp->stages[k].name, st.name)) {
      /* two were taken as two stages, and their candidates' names
       * (base|alt|alt) do not say which was which */
      err(s, at, at + strlen(st.name), "a second stage named '%s'; each "
          "stage has a name of its own", st.name);
      return 0;
    }
  if (!punct(s, ':')) {
    expected(s, "':' after the stage's name");
    return 0;
  }
  int cap = 8;
  st.alts = malloc(sizeof *st.alts * (size_t)cap);
  for (;;) {
    const char *w = ident(s, &at);
    if (!w) {
      expected(s, "a transformation (id, scale, shift, gain, offset, mirror, "
                  "flip, clip, mix, compose, inside, times, flat, hump, "
                  "wave)");
      goto fail;
    }
    int k = 0;
    while (k < X__COUNT && strcmp(xforms[k].name, w))
      k++;
    if (k == X__COUNT) {
      const char *names[X__COUNT];
      for (int j = 0; j < X__COUNT; j++)
        names[j] = xforms[j].name;
      unknown_name(s, at, "transformation", w, names, X__COUNT);
      goto fail;
    }
    if (xforms[k].takes == 0) {
      if (st.nalt == cap)
        st.alts = realloc(st.alts, sizeof *st.alts * (size_t)(cap *= 2));
      st.alts[st.nalt++] = (alt){(xform_kind)k, 0, -1};
    } else {
      if (!punct(s, '(')) {
        expected(s, xforms[k].takes == 1 ? "'(' and a list of numbers"
                                         : "'(' and a list of base names");
        goto fail;
      }
      do {
        alt a = {(xform_kind)k, 0, -1};
        if (xforms[k].takes == 1) {
          blank(s);
          size_t nat = s->i;
          if (!number(s, &a.v))
            goto fail;
          if (k == X_FLAT && a.v < 0) {
            err(s, nat, s->i, "flat's width must be 0 or more, not %g", a.v);
            goto fail;
          }
          /* clip(a) is clamp(g, -a, a): a negative a was taken as |a|,
           * the candidate's name keeping the sign */
          if (k == X_CLIP && !(a.v > 0)) {
            err(s, nat, s->i, "clip's bound must be more than 0, not %g",
                a.v);
            goto fail;
          }
        } else {
          const char *b = ident(s, &at);
          if (!b) {
            expected(s, "a base name");
            goto fail;
          }
          if ((a.base = find_base(sp, b)) < 0) {
            const char **names = calloc((size_t)sp->nbases + 1, sizeof *names);
            for (int j = 0; j < sp->nbases; j++)
              names[j] = sp->bases[j]->name;
            unknown_name(s, at, "base", b, names, sp->nbases);
            free(names);
            goto fail;
          }
        }
        if (st.nalt == cap)
          st.alts = realloc(st.alts, sizeof *st.alts * (size_t)(cap *= 2));
        st.alts[st.nalt++] = a;
      } while (punct(s, ','));
      if (!punct(s, ')')) {
        expected(s, "',' or ')'");
        goto fail;
      }
    }
    if (at_end(s))
      break;
    if (!punct(s, '|')) {
      expected(s, "'|' between alternatives");
      goto fail;
    }
  }
  sp->stages = realloc(sp->stages, sizeof *sp->stages * (size_t)(sp->nstages + 1));
  sp->stages[sp->nstages++] = st;
  return 1;
fail:
  free(st.alts);
  return 0;
}

/* set NAME = NUMBER. seen[k]: 1 + where setting k's name was, on its
 * first line; a setting given twice is refused (the last had won
 * silently, over a first one the user may have read instead) */
static int parse_set(dnc_space *sp, scan *s, size_t *seen)
{
  size_t at;
  const char *w = ident(s, &at);
  if (!w) {
    expected(s, "a setting's name");
    return 0;
  }
  int k = 0;
  while (k < S__COUNT && strcmp(settings[k].name, w))
    k++;
  if (k == S__COUNT) {
    const char *names[S__COUNT];
    for (int j = 0; j < S__COUNT; j++)
      names[j] = settings[j].name;
    unknown_name(s, at, "setting", w, names, S__COUNT);
    return 0;
  }
  if (seen[k]) {
    err(s, at, at + strlen(w), "%s is set already; a setting is set once",
        w);
    dnc_diag_add(&s->m->diags, DNC_SEV_NOTE, s->src,
                 (dnc_loc){(uint32_t)(seen[k] - 1),
                           (uint32_t)(seen[k] - 1 + strlen(w))},
                 "'%s' was set here", w);
    return 0;
  }
  seen[k] = at + 1;
  if (!punct(s, '=')) {
    expected(s, "'='");
    return 0;
  }
  size_t vat = s->i;
  blank(s);
  vat = s->i;
  double v;
  if (!number(s, &v))
    return 0;
  if (v < settings[k].lo || v > settings[k].hi ||
      (settings[k].whole && v != floor(v)) ||
      (k == S_GRID_POINTS && fmod(v, 2) != 1)) {
    err(s, vat, s->i, "%s is a %snumber from %g to %g%s", w,
        settings[k].whole ? "whole " : "", settings[k].lo, settings[k].hi,
        k == S_GRID_POINTS ? ", odd (0 is a grid point)" : "");
    return 0;
  }
  if (!at_end(s)) {
    expected(s, "the end of the line");
    return 0;
  }
  sp->set[k] = v;
  return 1;
}

const char *dnc_space_column(const dnc_space *s, int k)
{
  return k < DNC_M__COUNT ? dnc_measure_name(k)
                          : s->score_names[k - DNC_M__COUNT];
}

int dnc_space_nmeasures(const dnc_space *s)
{
  return DNC_M__COUNT + s->nscores;
}

/* rank COLUMN [asc|desc], ... */
static int parse_rank(dnc_space *sp, scan *s)
{
  sp->nkeys = 0;
  do {
    size_t at;
    const char *w = ident(s, &at);
    if (!w) {
      expected(s, "a column to rank by");
      return 0;
    }
    int n = dnc_space_nmeasures(sp), k = 0;
    while (k < n && strcmp(dnc_space_column(sp, k), w))
      k++;
    if (k == n) {
      const char **names = calloc((size_t)n + 1, sizeof *names);
      for (int j = 0; j < n; j++)
        names[j] = dnc_space_column(sp, j);
      unknown_name(s, at, "column", w, names, n);
      free(names);
      return 0;
    }
    for (int j = 0; j < sp->nkeys; j++)
      if (sp->keys[j].column == k) {
        /* a second key of one column never decides anything (and its
         * order contradicts or repeats the first's) */
        err(s, at, at + strlen(w), "'%s' is ranked by already, earlier in "
            "this line", w);
        return 0;
      }
    rank_key key = {k, 0};
    size_t dat;
    const char *d = ident(s, &dat);
    if (d && !strcmp(d, "desc"))
      key.desc = 1;
    else if (d && strcmp(d, "asc")) {
      err(s, dat, dat + strlen(d), "'asc' or 'desc' expected, not '%s'", d);
      return 0;
    }
    sp->keys = realloc(sp->keys, sizeof *sp->keys * (size_t)(sp->nkeys + 1));
    sp->keys[sp->nkeys++] = key;
  } while (punct(s, ','));
  if (!at_end(s)) {
    expected(s, "',' or the end of the line");
    return 0;
  }
  return 1;
}

/* ------------------------------------------------------------ loading */

typedef struct line {
  size_t start, end, body; /* body: after the keyword */
  int kind;                /* 0 base, 1 stage, 2 set, 3 score, 4 rank */
} line;

static const char *const directives[] = {"base", "stage", "set", "score",
                                         "rank"};

/* The base and score lines as dnc source at the spec's offsets. */
static char *blanked(const dnc_source *src, const line *ls, int n)
{
  char *t = malloc(src->len + 1);
  for (size_t i = 0; i < src->len; i++)
    t[i] = src->text[i] == '\n' ? '\n' : ' ';
  t[src->len] = 0;
  for (int k = 0; k < n; k++) {
    if (ls[k].kind != 0 && ls[k].kind != 3)
      continue;
    memcpy(t + ls[k].start, src->text + ls[k].start, ls[k].end - ls[k].start);
    t[ls[k].start] = 'f';
    t[ls[k].start + 1] = 'n';
    for (size_t i = ls[k].start + 2; i < ls[k].body; i++)
      t[i] = ' ';
  }
  return t;
}

static int classify(scan *s, line *l)
{
  size_t at;
  const char *w = ident(s, &at);
  if (!w) {
    expected(s, "a directive (base, stage, set, score, rank)");
    return 0;
  }
  for (int k = 0; k < 5; k++)
    if (!strcmp(w, directives[k])) {
      l->kind = k;
      l->body = s->i;
      return 1;
    }
  unknown_name(s, at, "directive", w, directives, 5);
  return 0;
}

/* Where f's name is in the spec (after `base` or `score`). */
static dnc_loc name_loc(const dnc_space *sp, const dnc_fn *f)
{
  size_t i = f->loc.start;
  while (i < sp->text->len && is_id(sp->text->text[i], 0))
    i++;
  while (i < sp->text->len && (sp->text->text[i] == ' ' ||
                               sp->text->text[i] == '\t'))
    i++;
  return (dnc_loc){(uint32_t)i, (uint32_t)(i + strlen(f->name))};
}

/* A column that every table has: a score may not take its name. */
static int is_table_column(const char *name)
{
  static const char *const fixed[] = {"rank", "id", "name", "source"};
  for (int k = 0; k < 4; k++)
    if (!strcmp(name, fixed[k]))
      return 1;
  for (int k = 0; k < DNC_M__COUNT; k++)
    if (!strcmp(name, dnc_measure_name(k)))
      return 1;
  return 0;
}

/* Compiles the base and score lines; their functions into sp. */
static int compile_functions(dnc_space *sp, dnc_mod *m, const line *ls,
                             int nl)
{
  int nbase_lines = 0, nscore_lines = 0, clash = 0;
  for (int k = 0; k < nl; k++) {
    nbase_lines += ls[k].kind == 0;
    nscore_lines += ls[k].kind == 3;
  }
  if (!nbase_lines) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, sp->text, DNC_NOLOC,
                 "no base function: a spec has at least one line "
                 "'base NAME(x) = EXPR'");
    return 0;
  }
  for (int k = 0; k < nl && nscore_lines; k++) {
    if (ls[k].kind != 0 && ls[k].kind != 3)
      continue;
    scan sc = {m, sp->text, ls[k].body, ls[k].end};
    size_t at;
    const char *name = ident(&sc, &at);
    if (name && (!strcmp(name, "f") || !strcmp(name, "df"))) {
      err(&sc, at, at + strlen(name), "'%s' names the candidate in scores; "
          "call this %s something else", name, ls[k].kind ? "score" : "base");
      clash = 1;
    } else if (name && ls[k].kind == 3 && is_table_column(name)) {
      /* the tables would have two columns of that name, and rank and
         the JSON's keys would pick one of them */
      err(&sc, at, at + strlen(name), "'%s' is a column of the table; call "
          "this score something else", name);
      clash = 1;
    }
  }
  if (clash)
    return 0;
  char *t = blanked(sp->text, ls, nl);
  sp->score_text = dnc_arena_strdup(m->arena, t);
  sp->m = dnc_mod_new();
  dnc_mod_add_source(sp->m, sp->path, t, sp->text->len);
  free(t);
  if (nscore_lines) {
    static const char dummy[] = "fn f(x) = x\nfn df(x) = 1\n";
    dnc_mod_add_source(sp->m, "<candidate>", dummy, sizeof dummy - 1);
  }
  dnc_mod_build(sp->m);
  /* the diagnostics, shown on the spec as written */
  for (const dnc_diag *d = sp->m->diags.head; d; d = d->next)
    dnc_diag_add(&m->diags, d->sev, d->src == sp->m->sources[0] ? sp->text
                                                                 : d->src,
                 d->loc, "%s", d->msg);
  if (sp->m->diags.nerrors)
    return 0;
  sp->bases = calloc((size_t)sp->m->nfns + 1, sizeof *sp->bases);
  sp->score_names = calloc((size_t)sp->m->nfns + 1, sizeof *sp->score_names);
  int ok = 1;
  for (int i = 0; i < sp->m->nfns; i++) {
    dnc_fn *f = sp->m->fns[i];
    if (f->src != sp->m->sources[0])
      continue;
    int score = sp->text->text[f->loc.start] == 's';
    if (f->nparams) {
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, sp->text, name_loc(sp, f),
                   "a %s takes x alone: write constants into it, and let "
                   "the stages vary them", score ? "score" : "base");
      ok = 0;
    }
    if (score)
      sp->score_names[sp->nscores++] = f->name;
    else
      sp->bases[sp->nbases++] = f;
  }
  return ok;
}

dnc_space *dnc_space_load(dnc_mod *m, const char *path)
{
  const dnc_source *src = dnc_mod_read_file(m, path);
  if (!src || !dnc_source_check_bytes(&m->diags, src))
    return NULL;
  dnc_space *sp = calloc(1, sizeof *sp);
  sp->path = dnc_arena_strdup(m->arena, path);
  sp->text = src;
  for (int k = 0; k < S__COUNT; k++)
    sp->set[k] = settings[k].def;
  line *ls = malloc(sizeof *ls * (src->len + 1));
  int nl = 0, errors0 = m->diags.nerrors;
  for (size_t i = dnc_source_bom_len(src); i < src->len;) {
    size_t e = i;
    while (e < src->len && src->text[e] != '\n')
      e++;
    scan s = {m, src, i, e};
    if (!at_end(&s)) {
      line l = {s.i, e, 0, 0};
      if (classify(&s, &l))
        ls[nl++] = l;
    }
    i = e + 1;
  }
  if (m->diags.nerrors == errors0 && compile_functions(sp, m, ls, nl)) {
    size_t seen[S__COUNT] = {0};
    const line *ranked = NULL;
    for (int pass = 0; pass < 3; pass++) /* set, stage, rank */
      for (int k = 0; k < nl; k++) {
        static const int order[3] = {2, 1, 4};
        if (ls[k].kind != order[pass])
          continue;
        scan s = {m, src, ls[k].body, ls[k].end};
        if (pass == 0)
          parse_set(sp, &s, seen);
        else if (pass == 1)
          parse_stage(sp, &s);
        else if (ranked) {
          /* a second rank line replaced the first, whose keys were
           * silently not the table's order */
          err(&s, ls[k].start, ls[k].body,
              "a second 'rank' line; one line lists every key, the first "
              "deciding (rank props desc, residual asc)");
          dnc_diag_add(&m->diags, DNC_SEV_NOTE, src,
                       (dnc_loc){(uint32_t)ranked->start,
                                 (uint32_t)ranked->body},
                       "the first 'rank' line");
        } else {
          ranked = &ls[k];
          parse_rank(sp, &s);
        }
      }
  }
  free(ls);
  if (!sp->nkeys) { /* the default ranking */
    sp->keys = malloc(sizeof *sp->keys * 2);
    sp->keys[0] = (rank_key){DNC_M_PROPS, 1};
    sp->keys[1] = (rank_key){DNC_M_RESIDUAL, 0};
    sp->nkeys = 2;
  }
  sp->size = sp->nbases;
  for (int k = 0; k < sp->nstages && m->diags.nerrors == errors0; k++) {
    sp->size *= sp->stages[k].nalt;
    if (sp->size > MAX_CANDIDATES) {
      const stage *st = &sp->stages[k];
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, src,
                   (dnc_loc){st->at, st->at + (uint32_t)strlen(st->name)},
                   "the space holds over %d candidates by stage '%s'; "
                   "split it into several specs", MAX_CANDIDATES, st->name);
    }
  }
  if (m->diags.nerrors != errors0) {
    dnc_space_free(sp);
    return NULL;
  }
  return sp;
}

void dnc_space_free(dnc_space *sp)
{
  if (!sp)
    return;
  for (int k = 0; k < sp->nstages; k++)
    free(sp->stages[k].alts);
  free(sp->stages);
  free(sp->bases);
  free(sp->score_names);
  free(sp->keys);
  dnc_mod_free(sp->m);
  free(sp);
}

int64_t dnc_space_size(const dnc_space *s)
{
  return s->size;
}

uint64_t dnc_space_hash(const dnc_space *s)
{
  uint64_t h = 0xcbf29ce484222325ull;
  const char *v = "dnc-search 1\n";
  for (const char *p = v; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  for (size_t i = 0; i < s->text->len; i++)
    h = (h ^ (unsigned char)s->text->text[i]) * 0x100000001b3ull;
  return h;
}

/* --------------------------------------------------------- candidates */

/* A map from nodes to nodes or hashes, for one rebuild or one key. */
typedef struct memo {
  const dnc_node **k;
  void **v;
  uint64_t *h;
  size_t cap, n;
} memo;

static void memo_init(memo *m)
{
  m->cap = 64;
  m->n = 0;
  m->k = calloc(m->cap, sizeof *m->k);
  m->v = calloc(m->cap, sizeof *m->v);
  m->h = calloc(m->cap, sizeof *m->h);
}

static void memo_free(memo *m)
{
  free(m->k);
  free(m->v);
  free(m->h);
}

static size_t slot(const memo *m, const dnc_node *e)
{
  size_t i = ((uintptr_t)e >> 4) * 0x9E3779B97F4A7C15ull % m->cap;
  while (m->k[i] && m->k[i] != e)
    i = (i + 1) % m->cap;
  return i;
}

static size_t memo_put(memo *m, const dnc_node *e)
{
  if (2 * (m->n + 1) > m->cap) {
    memo old = *m;
    m->cap *= 2;
    m->n = 0;
    m->k = calloc(m->cap, sizeof *m->k);
    m->v = calloc(m->cap, sizeof *m->v);
    m->h = calloc(m->cap, sizeof *m->h);
    for (size_t i = 0; i < old.cap; i++)
      if (old.k[i]) {
        size_t j = slot(m, old.k[i]);
        m->k[j] = old.k[i];
        m->v[j] = old.v[i];
        m->h[j] = old.h[i];
        m->n++;
      }
    memo_free(&old);
  }
  size_t i = slot(m, e);
  if (!m->k[i]) {
    m->k[i] = e;
    m->n++;
  }
  return i;
}

/* e (of any DAG) rebuilt in g through the simplifier, x replaced by xr */
static dnc_node *rebuild(dnc_dag *g, const dnc_node *e, dnc_node *xr,
                         memo *mm)
{
  size_t i = slot(mm, e);
  if (mm->k[i])
    return mm->v[i];
  dnc_node *r;
  if (e->op == OP_INPUT) {
    r = xr;
  } else if (e->op == OP_CONST) {
    r = dnc_const(g, e->value);
  } else {
    dnc_node *a[3] = {NULL, NULL, NULL};
    for (int k = 0; k < e->nargs; k++)
      a[k] = rebuild(g, e->arg[k], xr, mm);
    r = dnc_simp(g, e->op, a[0], a[1], a[2]);
  }
  /* the slot first: memo_put may move v (a grown table), and in
   * mm->v[memo_put(...)] the old v could be read before the call */
  size_t j = memo_put(mm, e);
  mm->v[j] = r;
  return r;
}

static dnc_node *subst(dnc_dag *g, const dnc_node *e, dnc_node *xr)
{
  memo mm;
  memo_init(&mm);
  dnc_node *r = rebuild(g, e, xr, &mm);
  memo_free(&mm);
  return r;
}

static dnc_node *apply(const dnc_space *sp, dnc_dag *g, dnc_node *f,
                       const alt *a)
{
  dnc_node *x = dnc_input(g);
#define S2(op, p, q) dnc_simp(g, op, p, q, NULL)
#define K(v) dnc_const(g, v)
  /* a transformation at its neutral value is id, as flat(0) is: built,
   * g(x + 0), g(x) + 0, 1 g(x) + 0 x, g(x) + 0 x exp(-x^2) and g(x) + 0
   * sin(pi x) are DAGs of their own (the simplifier keeps x + 0, which is
   * +0 at -0, and 0 x, NaN at infinities), and each was a candidate of
   * its own beside id: the same function, measured and trained twice */
  if (a->v == 0 && (a->kind == X_SHIFT || a->kind == X_OFFSET ||
                    a->kind == X_MIX || a->kind == X_HUMP ||
                    a->kind == X_WAVE))
    return f;
  switch (a->kind) {
  case X_ID: return f;
  case X_SCALE: return subst(g, f, S2(OP_MUL, K(a->v), x));
  case X_SHIFT: return subst(g, f, S2(OP_ADD, x, K(a->v)));
  case X_GAIN: return S2(OP_MUL, K(a->v), f);
  case X_OFFSET: return S2(OP_ADD, f, K(a->v));
  case X_MIRROR: /* the odd extension of the right half */
    return S2(OP_MUL, S2(OP_SIGN, x, NULL), subst(g, f, S2(OP_ABS, x, NULL)));
  case X_FLIP: return subst(g, f, S2(OP_NEG, x, NULL));
  case X_CLIP:
    return dnc_simp(g, OP_CLAMP, f, K(-fabs(a->v)), K(fabs(a->v)));
  case X_MIX:
    return S2(OP_ADD, S2(OP_MUL, K(1 - a->v), f), S2(OP_MUL, K(a->v), x));
  case X_COMPOSE: return subst(g, sp->bases[a->base]->body, f);
  case X_INSIDE: return subst(g, f, subst(g, sp->bases[a->base]->body, x));
  case X_TIMES: return S2(OP_MUL, f, subst(g, sp->bases[a->base]->body, x));
  case X_FLAT: /* g(x - clamp(x, -w/2, w/2)): g(0) on |x| < w/2, g moved
                  outward by w/2 on either side beyond */
    if (a->v == 0)
      return f;
    return subst(g, f,
                 S2(OP_SUB, x,
                    dnc_simp(g, OP_CLAMP, x, K(-a->v / 2), K(a->v / 2))));
  case X_HUMP: /* g(x) + a x exp(-x^2): an odd bump near 0 */
    return S2(OP_ADD, f,
              S2(OP_MUL, S2(OP_MUL, K(a->v), x),
                 S2(OP_EXP, S2(OP_NEG, S2(OP_MUL, x, x), NULL), NULL)));
  case X_WAVE: /* g(x) + a sin(pi x): an oscillation of period 2 */
    return S2(OP_ADD, f,
              S2(OP_MUL, K(a->v), S2(OP_SIN, S2(OP_MUL, K(M_PI), x), NULL)));
  default: DNC_ASSERT(0); return f;
  }
#undef S2
#undef K
}

/* a structural hash: commutative operands in either order hash alike */
static uint64_t shash(const dnc_node *e, memo *mm)
{
  size_t i = slot(mm, e);
  if (mm->k[i])
    return mm->h[i];
  uint64_t h = 0x9E3779B97F4A7C15ull * (e->op + 1);
  if (e->op == OP_CONST) {
    uint64_t b;
    memcpy(&b, &e->value, 8);
    h ^= b + 0x632BE59BD9B4E019ull;
  }
  uint64_t a[3] = {0, 0, 0};
  for (int k = 0; k < e->nargs; k++)
    a[k] = shash(e->arg[k], mm);
  if (e->nargs == 2 && dnc_ops[e->op].commutative && a[0] > a[1]) {
    uint64_t t = a[0];
    a[0] = a[1];
    a[1] = t;
  }
  for (int k = 0; k < e->nargs; k++) {
    h ^= a[k] + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
  }
  size_t j = memo_put(mm, e);
  mm->h[j] = h;
  return h;
}

typedef struct buf {
  unsigned char *p;
  size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p)
      dnc_die(__FILE__, __LINE__, "out of memory");
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

/* The DAG under e in post-order, commutative operands ordered by their
 * structural hash, each node once; returns e's number. */
static int32_t serialize(const dnc_node *e, memo *hm, memo *num, buf *b,
                         int32_t *count)
{
  size_t i = slot(num, e);
  if (num->k[i])
    return (int32_t)(intptr_t)num->v[i];
  int order[3] = {0, 1, 2};
  if (e->nargs == 2 && shash(e->arg[0], hm) > shash(e->arg[1], hm) &&
      dnc_ops[e->op].commutative) {
    order[0] = 1;
    order[1] = 0;
  }
  int32_t a[3];
  for (int k = 0; k < e->nargs; k++)
    a[k] = serialize(e->arg[order[k]], hm, num, b, count);
  uint16_t op = e->op;
  put(b, &op, sizeof op);
  if (e->op == OP_CONST)
    put(b, &e->value, sizeof e->value);
  put(b, a, sizeof *a * (size_t)e->nargs);
  int32_t me = (*count)++;
  size_t j = memo_put(num, e); /* (before num->v: it may move it) */
  num->v[j] = (void *)(intptr_t)me;
  return me;
}

/* f and df flattened: the nodes under either, by id (operands first) */
static void flatten(const dnc_dag *g, dnc_node *f, dnc_node *df, dnc_vprog *p)
{
  uint32_t top = f->id > df->id ? f->id : df->id;
  int32_t *pos = malloc(sizeof *pos * ((size_t)top + 1));
  unsigned char *mark = calloc((size_t)top + 1, 1);
  mark[f->id] = mark[df->id] = 1;
  int n = 0;
  for (uint32_t i = top + 1; i-- > 0;) {
    if (!mark[i])
      continue;
    n++;
    for (int k = 0; k < g->nodes[i]->nargs; k++)
      mark[g->nodes[i]->arg[k]->id] = 1;
  }
  p->n = n;
  p->insn = malloc(sizeof *p->insn * (size_t)n);
  int j = 0;
  for (uint32_t i = 0; i <= top; i++) {
    if (!mark[i])
      continue;
    const dnc_node *e = g->nodes[i];
    dnc_vinsn *in = &p->insn[j];
    in->op = e->op;
    in->value = e->value;
    in->arg[0] = in->arg[1] = in->arg[2] = 0;
    for (int k = 0; k < e->nargs; k++)
      in->arg[k] = pos[e->arg[k]->id];
    pos[i] = j++;
  }
  p->rf = pos[f->id];
  p->rdf = pos[df->id];
  free(pos);
  free(mark);
}

/* `fn NAME(x) = ...` on one line: a block's lines joined by `;` */
static char *print_one_line(const dnc_fn *proto, const char *name,
                            const dnc_node *body)
{
  char *t = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&t, &len);
  dnc_print_def(o, proto, name, body);
  fclose(o);
  char *w = t;
  for (char *r = t; *r; r++) {
    if (*r == '\n') {
      while (w > t && w[-1] == ' ')
        w--;
      int more = r[1] != 0;
      int brace_next = r[1] == '}';
      while (r[1] == ' ')
        r++;
      if (!more)
        break;
      /* after "{": a space; before "}": a space; else "; " */
      if (w > t && w[-1] == '{')
        *w++ = ' ';
      else if (brace_next)
        *w++ = ' ';
      else {
        *w++ = ';';
        *w++ = ' ';
      }
      continue;
    }
    *w++ = *r;
  }
  *w = 0;
  return t;
}

int dnc_space_build(const dnc_space *sp, int64_t id, dnc_cand *c,
                    int (*keep)(const unsigned char *key, size_t nkey,
                                void *arg),
                    void *arg)
{
  DNC_ASSERT(id >= 0 && id < sp->size && sp->nstages <= MAX_STAGES);
  int pick[MAX_STAGES];
  int64_t rem = id;
  for (int k = sp->nstages; k-- > 0;) {
    pick[k] = (int)(rem % sp->stages[k].nalt);
    rem /= sp->stages[k].nalt;
  }
  int base = (int)rem;
  dnc_arena *a = dnc_arena_new();
  dnc_dag g;
  dnc_dag_init(&g, a);
  dnc_node *f = subst(&g, sp->bases[base]->body, dnc_input(&g));
  for (int k = 0; k < sp->nstages; k++)
    f = apply(sp, &g, f, &sp->stages[k].alts[pick[k]]);
  /* NULL: past the DAG's node budget (dnc_diff), not a candidate */
  dnc_node *df = g.over ? NULL : dnc_derivative(&g, f, DNC_WRT_X);
  int kept = df != NULL;
  if (keep && kept) {
    memo hm, num;
    memo_init(&hm);
    memo_init(&num);
    buf b = {0};
    int32_t count = 0;
    serialize(f, &hm, &num, &b, &count);
    memo_free(&hm);
    memo_free(&num);
    kept = keep(b.p, b.n, arg);
    free(b.p);
  }
  if (kept) {
    char *name = NULL;
    size_t nlen = 0;
    FILE *o = open_memstream(&name, &nlen);
    fputs(sp->bases[base]->name, o);
    for (int k = 0; k < sp->nstages; k++) {
      const alt *al = &sp->stages[k].alts[pick[k]];
      if (al->kind == X_ID)
        continue;
      fprintf(o, "|%s", xforms[al->kind].name);
      if (xforms[al->kind].takes == 1) {
        char v[40];
        dnc_format_number(v, sizeof v, al->v);
        fprintf(o, "(%s)", v);
      } else if (xforms[al->kind].takes == 2) {
        fprintf(o, "(%s)", sp->bases[al->base]->name);
      }
    }
    fclose(o);
    memset(c, 0, sizeof *c);
    c->id = id;
    c->name = name;
    flatten(&g, f, df, &c->prog);
    dnc_fn proto = {0};
    proto.input = "x";
    char fname[32];
    snprintf(fname, sizeof fname, "c%lld", (long long)id);
    proto.name = fname;
    c->source = print_one_line(&proto, fname, f);
    if (sp->nscores) {
      char *s1 = print_one_line(&proto, "f", f);
      char *s2 = print_one_line(&proto, "df", df);
      if (asprintf(&c->score_src, "%s\n%s\n", s1, s2) < 0)
        dnc_die(__FILE__, __LINE__, "out of memory");
      free(s1);
      free(s2);
    }
  }
  dnc_dag_free(&g);
  dnc_arena_free(a);
  return kept;
}

void dnc_cand_free(dnc_cand *c)
{
  free(c->name);
  free(c->source);
  free(c->score_src);
  free(c->prog.insn);
  memset(c, 0, sizeof *c);
}
