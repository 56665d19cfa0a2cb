/*
 * corpus.h - a seeded generator of random dnc functions over x and the
 * parameters a, b, c, using every built-in and operator. The same seed
 * gives the same corpus on every machine (its own xorshift generator).
 * Arguments of log, sqrt, rsqrt, log1p and non-integer powers are mostly
 * kept in their domain, so that most points are regular; the checks skip
 * the points where a function is not finite or not smooth.
 */
#ifndef DNC_CORPUS_H
#define DNC_CORPUS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct corpus_rng {
  uint64_t s;
} corpus_rng;

static uint64_t corpus_next(corpus_rng *r)
{
  uint64_t x = r->s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return r->s = x;
}

static int corpus_pick(corpus_rng *r, int n)
{
  return (int)(corpus_next(r) % (uint64_t)n);
}

typedef struct corpus_buf {
  char *p;
  size_t len, cap;
} corpus_buf;

static void corpus_put(corpus_buf *b, const char *s)
{
  size_t l = strlen(s);
  if (b->len + l + 1 > b->cap)
    return; /* callers size the buffer for the depth they ask for */
  memcpy(b->p + b->len, s, l + 1);
  b->len += l;
}

static void corpus_expr(corpus_rng *r, corpus_buf *b, int depth);

static void corpus_leaf(corpus_rng *r, corpus_buf *b)
{
  static const char *const leaves[] = {"x", "x", "x", "a", "b", "c",
                                       "0.5", "2", "3", "1.5", "pi", "0.25"};
  corpus_put(b, leaves[corpus_pick(r, sizeof leaves / sizeof *leaves)]);
}

/* an argument that is positive at most points: 1 + u^2, or exp(u), or u */
static void corpus_positive(corpus_rng *r, corpus_buf *b, int depth)
{
  int k = corpus_pick(r, 10);
  if (k < 6) {
    corpus_put(b, "1 + (");
    corpus_expr(r, b, depth);
    corpus_put(b, ")^2");
  } else if (k < 8) {
    corpus_put(b, "exp(");
    corpus_expr(r, b, depth);
    corpus_put(b, ")");
  } else {
    corpus_expr(r, b, depth);
  }
}

static void corpus_expr(corpus_rng *r, corpus_buf *b, int depth)
{
  if (depth <= 0 || (depth < 4 && corpus_pick(r, 5) == 0)) {
    corpus_leaf(r, b);
    return;
  }
  static const char *const unary[] = {
      "abs", "sign", "exp", "expm1", "tanh", "sinh", "cosh", "asinh", "atan",
      "erf", "erfc", "sigmoid", "softplus", "sin", "cos"};
  static const char *const positive[] = {"log", "log1p", "sqrt", "rsqrt"};
  int k = corpus_pick(r, 24);
  if (k < 8) { /* binary operator */
    static const char *const ops[] = {" + ", " - ", " * ", " / "};
    corpus_put(b, "(");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ops[corpus_pick(r, 4)]);
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ")");
  } else if (k < 14) {
    corpus_put(b, unary[corpus_pick(r, sizeof unary / sizeof *unary)]);
    corpus_put(b, "(");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ")");
  } else if (k < 17) {
    corpus_put(b, positive[corpus_pick(r, sizeof positive / sizeof *positive)]);
    corpus_put(b, "(");
    corpus_positive(r, b, depth - 1);
    corpus_put(b, ")");
  } else if (k < 19) { /* powers: integer of anything, real of a positive */
    static const char *const ints[] = {"2", "3", "-1", "-2", "4"};
    static const char *const reals[] = {"0.5", "1.5", "-0.5", "a", "b"};
    corpus_put(b, "(");
    if (corpus_pick(r, 2)) {
      corpus_expr(r, b, depth - 1);
      corpus_put(b, ")^");
      corpus_put(b, ints[corpus_pick(r, 5)]);
    } else {
      corpus_positive(r, b, depth - 1);
      corpus_put(b, ")^");
      corpus_put(b, reals[corpus_pick(r, 5)]);
    }
  } else if (k < 21) {
    static const char *const mm[] = {"min(", "max("};
    corpus_put(b, mm[corpus_pick(r, 2)]);
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ", ");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ")");
  } else if (k < 22) {
    corpus_put(b, "clamp(");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ", -1, 2)");
  } else if (k < 23) {
    static const char *const cmp[] = {" < ", " <= ", " > ", " >= "};
    corpus_put(b, "(if ");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, cmp[corpus_pick(r, 4)]);
    corpus_leaf(r, b);
    corpus_put(b, corpus_pick(r, 2) ? " and x != 7 then " : " or x == 7 then ");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, " else ");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ")");
  } else {
    corpus_put(b, "-");
    corpus_put(b, "(");
    corpus_expr(r, b, depth - 1);
    corpus_put(b, ")");
  }
}

/* Does the text use the name x (not as part of exp, max...)? */
static int corpus_uses_x(const char *s)
{
  for (const char *p = strchr(s, '='); p && *p; p++)
    if (*p == 'x' && !((p[-1] >= 'a' && p[-1] <= 'z')) &&
        !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= '0' && p[1] <= '9')))
      return 1;
  return 0;
}

/* Writes function number i of the corpus of `seed` into buf (>= 4096):
 * an expression of depth up to 4 that uses x. */
static void corpus_function(uint64_t seed, int i, char *buf, size_t cap)
{
  corpus_rng r = {seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull + 1};
  for (int k = 0; k < 4; k++)
    corpus_next(&r);
  do {
    corpus_buf b = {buf, 0, cap};
    buf[0] = 0;
    char head[96];
    snprintf(head, sizeof head, "fn r%d(x; a = 0.75, b = 1.25, c = -0.5) = ", i);
    corpus_put(&b, head);
    corpus_expr(&r, &b, 4);
    corpus_put(&b, "\n");
  } while (!corpus_uses_x(buf));
}

#endif
