/*
 * search.h - the inside of a search space, shared by search.c (the spec
 * and the candidates), search_eval.c (measuring them) and search_cmd.c
 * (the command). The rest of dnc sees tools.h only.
 */
#ifndef DNC_SEARCH_H
#define DNC_SEARCH_H

#include "tools.h"

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
