/*
 * search.h - the search engine (docs/search.md): search.c (the spec and
 * the candidates) and search_eval.c (measuring them), in libdnc; the
 * `dnc search` command (cli/search_cmd.c) and tests/test_search.c use it.
 * First what a user of the engine sees, then the inside of a space.
 */
#ifndef DNC_SEARCH_H
#define DNC_SEARCH_H

#include "dnc_int.h"

/* ------------------------------------------ what the rest of dnc sees */

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

/* ------------------------------------------------- inside a space */

/* The transformations a stage may offer (docs/search.md). ORDER: the
 * names in search.c's xform table. */
typedef enum {
  X_ID, X_SCALE, X_SHIFT, X_GAIN, X_OFFSET, X_MIRROR, X_FLIP, X_CLIP, X_MIX,
  X_COMPOSE, X_INSIDE, X_TIMES, X_FLAT, X_HUMP, X_WAVE, X__COUNT
} xform_kind;

typedef struct alt {
  xform_kind kind;
  double v;  /* the grid value */
  int base;  /* X_COMPOSE, X_INSIDE, X_TIMES: which base */
} alt;

typedef struct stage {
  const char *name;
  int nalt;
  alt *alts;
  uint32_t at; /* its name's place in the spec, for errors about it */
} stage;

/* Settings: `set NAME = VALUE`. ORDER: the table in search.c. */
enum {
  S_GRID_RANGE, S_GRID_POINTS, S_ZERO_TOL, S_ODD_TOL, S_BOUND_MAX,
  S_GROWTH_TOL, S_DECADES, S_PER_DECADE, S_CENTER_WIDTH, S_CENTER_SLOPE,
  S_MONO_TOL, S_LN_CHANNELS, S_LN_STEPS, S_LN_SEED, S_SCORE_POINTS,
  S__COUNT
};

typedef struct rank_key {
  int column; /* a measure, or DNC_M__COUNT + score */
  int desc;
} rank_key;

struct dnc_space {
  const char *path;
  dnc_mod *m;           /* the bases and scores, as functions */
  const dnc_source *text; /* the spec as written */
  int nbases;
  dnc_fn **bases;
  int nstages;
  stage *stages;
  double set[S__COUNT];
  int nscores;
  const char **score_names;
  const char *score_text; /* the spec with all but base and score lines
                             blanked, for candidates' score modules */
  int nkeys;
  rank_key *keys;
  int64_t size;
};

#endif
