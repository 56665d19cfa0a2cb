/*
 * fuzz_frontend.c - libFuzzer target for the dnc front end (`make fuzz`).
 *
 * For every input:
 *   1. the bytes become a module: scanned, parsed, checked, lowered to DAGs;
 *   2. the diagnostics are rendered (to /dev/null), whatever the outcome;
 *   3. when the build succeeded, every function is printed back as dnc
 *      source, the text is built again in a fresh module, and the round trip
 *      must give one function, with no error, with the same name, input and
 *      parameters (names, defaults bit for bit, per-channel marks) and a body
 *      structurally equal to the original's (dnc_node_equal);
 *   4. each function is evaluated by the reference interpreter at a few
 *      inputs with its default parameters;
 *   5. its first derivatives are made within their node budget (issue 20)
 *      and df/dx evaluated.
 * A failed round trip abort()s with the printed text on stderr, so that
 * libFuzzer saves the input. Crashes, hangs, leaks and UB are caught by
 * libFuzzer and the sanitizers.
 *
 * DNC_FUZZ_SKIP_KNOWN=1 in the environment steps around the issues already
 * reported (see tests/fuzz/crashes/README), so that a run can look past
 * them: the round trip is skipped for bodies deeper than DNC_MAX_NEST and
 * for functions whose input or a parameter is named inf or nan, and
 * bodies are compared with a memoised equality instead of dnc_node_equal.
 * Without the variable the target checks everything.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

static FILE *devnull;
static int skip_known;

/* Structural equality memoised on pairs of node ids, linear in the size of
 * the DAGs (used only with DNC_FUZZ_SKIP_KNOWN). */
typedef struct eqmemo {
  uint64_t *keys; /* (a->id << 32 | b->id) + 1; 0 empty */
  size_t cap, n;
} eqmemo;

static int memo_insert(eqmemo *mo, uint64_t key)
{
  if (2 * (mo->n + 1) > mo->cap) {
    eqmemo nm = {calloc(mo->cap ? 2 * mo->cap : 1024, sizeof *nm.keys),
                 mo->cap ? 2 * mo->cap : 1024, 0};
    if (!nm.keys)
      abort();
    for (size_t i = 0; i < mo->cap; i++)
      if (mo->keys[i])
        memo_insert(&nm, mo->keys[i] - 1);
    free(mo->keys);
    *mo = nm;
  }
  size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (mo->cap - 1);
  for (; mo->keys[i]; i = (i + 1) & (mo->cap - 1))
    if (mo->keys[i] == key + 1)
      return 0;
  mo->keys[i] = key + 1;
  mo->n++;
  return 1;
}

static int equal_memo(eqmemo *mo, const dnc_node *a, const dnc_node *b)
{
  for (;;) {
    if (!memo_insert(mo, (uint64_t)a->id << 32 | b->id))
      return 1; /* already compared, or being compared further up */
    if (a->op != b->op || a->nargs != b->nargs || a->param != b->param ||
        memcmp(&a->value, &b->value, sizeof a->value))
      return 0;
    if (a->nargs == 0)
      return 1;
    for (int i = 1; i < a->nargs; i++)
      if (!equal_memo(mo, a->arg[i], b->arg[i]))
        return 0;
    a = a->arg[0];
    b = b->arg[0];
  }
}

static int bodies_equal(const dnc_node *a, const dnc_node *b)
{
  if (!skip_known)
    return dnc_node_equal(a, b);
  eqmemo mo = {0};
  int r = equal_memo(&mo, a, b);
  free(mo.keys);
  return r;
}

static int is_inf_or_nan(const char *name)
{
  return !strcmp(name, "inf") || !strcmp(name, "nan");
}

/* A function the known printer issues apply to. */
static int known_issue(const dnc_fn *f)
{
  if (f->body->depth >= DNC_MAX_NEST)
    return 1;
  if (is_inf_or_nan(f->input))
    return 1;
  for (int i = 0; i < f->nparams; i++)
    if (is_inf_or_nan(f->params[i].name))
      return 1;
  return 0;
}

static void fail(const char *what, const dnc_fn *f, const char *text,
                 const dnc_mod *m2)
{
  fprintf(stderr, "fuzz_frontend: round trip of '%s' failed: %s\n",
          f ? f->name : "?", what);
  if (text)
    fprintf(stderr, "--- printed text ---\n%s--- end ---\n", text);
  if (m2) {
    fprintf(stderr, "--- diagnostics of the printed text ---\n");
    dnc_diags_render(stderr, &m2->diags);
    fprintf(stderr, "--- end ---\n");
  }
  abort();
}

static int same_bits(double a, double b)
{
  return memcmp(&a, &b, sizeof a) == 0;
}

/* Prints f, builds the text again and compares the result with f. */
static void round_trip(const dnc_fn *f)
{
  if (skip_known && known_issue(f))
    return;
  char *text = NULL;
  size_t len = 0;
  FILE *ms = open_memstream(&text, &len);
  if (!ms)
    abort();
  dnc_print_fn(ms, f);
  if (fclose(ms) != 0)
    abort();

  dnc_mod *m2 = dnc_mod_new();
  dnc_mod_add_source(m2, "printed.dn", text, len);
  int errors = dnc_mod_build(m2);
  dnc_diags_render(devnull, &m2->diags);
  if (errors != 0)
    fail("the printed text does not build", f, text, m2);
  if (m2->nfns != 1)
    fail("the printed text does not define exactly one function", f, text, m2);
  const dnc_fn *g = m2->fns[0];
  if (strcmp(g->name, f->name) || strcmp(g->input, f->input))
    fail("name or input differs", f, text, m2);
  if (g->nparams != f->nparams)
    fail("number of parameters differs", f, text, m2);
  for (int i = 0; i < f->nparams; i++)
    if (strcmp(g->params[i].name, f->params[i].name) ||
        !same_bits(g->params[i].def, f->params[i].def) ||
        g->params[i].per_channel != f->params[i].per_channel)
      fail("a parameter differs", f, text, m2);
  if (!bodies_equal(f->body, g->body))
    fail("the body is not structurally equal", f, text, m2);

  dnc_mod_free(m2);
  free(text);
}

static void evaluate(const dnc_fn *f)
{
  static const double xs[] = {0.0, 1.0, -2.5, 1e300, NAN};
  double *p = calloc((size_t)f->nparams + 1, sizeof *p);
  if (!p)
    abort();
  for (int i = 0; i < f->nparams; i++)
    p[i] = f->params[i].def;
  volatile double sink = 0;
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
    sink += dnc_interp(f, xs[i], p);
  (void)sink;
  free(p);
}

/* The first derivatives, within their budget (NULL past it), and the
 * kernel-size check codegen makes: bounded work whatever the source. */
static void differentiate(dnc_mod *m, dnc_fn *f)
{
  char why[256];
  dnc_kernel_check(m, f, why, sizeof why);
  dnc_node *d = dnc_derive(m, f, DNC_WRT_X);
  if (d && d->depth <= DNC_MAX_DAG_DEPTH) {
    dnc_prog *p = dnc_prog_build(&m->dag, m->arena, d);
    double *pv = calloc((size_t)f->nparams + 1, sizeof *pv);
    if (!pv)
      abort();
    volatile double sink = (double)dnc_prog_eval(p, 0.5, pv);
    (void)sink;
    free(pv);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  devnull = fopen("/dev/null", "w");
  if (!devnull)
    abort();
  const char *sk = getenv("DNC_FUZZ_SKIP_KNOWN");
  skip_known = sk && *sk && strcmp(sk, "0");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > DNC_MAX_SOURCE_BYTES)
    return 0;
  dnc_mod *m = dnc_mod_new();
  dnc_mod_add_source(m, "fuzz.dn", (const char *)data, size);
  int errors = dnc_mod_build(m);
  dnc_diags_render(devnull, &m->diags);
  if (errors == 0) {
    for (int i = 0; i < m->nfns; i++) {
      round_trip(m->fns[i]);
      evaluate(m->fns[i]);
      differentiate(m, m->fns[i]);
    }
  }
  dnc_mod_free(m);
  return 0;
}
