/*
 * phases.c - whether DyT's f32 layer backward, written in C with AVX-512
 * intrinsics, runs faster when its dependent chain is split from the rest
 * (docs/performance.md, round twenty-eight).
 *
 *   build/bench/phases [ROWS COLS]      (default 32 512: in L1 and L2)
 *
 * The loop is the arithmetic of dnc's DyT backward (u = alpha x; exp(-2|u|)
 * by a shifter's reduction and a degree-7 Horner chain; 1 - e from the
 * reduction; tanh = (1 - e) / (1 + e) and the quotient e / (1 + e)^2; dx,
 * the per-channel sums of dgamma and dbeta in f32 arrays, the scalar sum of
 * dalpha), with Taylor coefficients: the timing is the point, not the last
 * bit. Four orders of the same operations, each vector's results the same:
 *
 *   straight     one vector after another
 *   blocks of K  for each K vectors, first the part that needs x alone
 *                (u, exp, 1 - e: the long chain) for all K, kept in
 *                registers, then the part with dy for all K
 *   pipelined    the first part of vector i + 1 beside the second of i
 *
 * and a fifth loop of other arithmetic, one vector after another:
 *
 *   table        (one vector after another, and in blocks of 4 as above)
 *                tanh and its derivative from a table of 32 pieces of
 *                width 1/4 (a two-table permute per coefficient, as
 *                dnc's forward tanh), no exp and no division: in each
 *                piece a degree-6 polynomial in |u| - center of tanh(|u|)
 *                below 1/2 and of 1 - tanh(|u|) above (each accurate
 *                relative to itself), then tanh and 1 - tanh by one
 *                subtraction and two blends and sech^2 = (1 - t)(1 + t).
 *                Taylor coefficients at each center, made at start; |u|
 *                clamped below 8 (a kernel would take exp's form above,
 *                where sech^2 is under 5e-7, and piece 0 in the form
 *                t + t^2 R(t), as dnc's forward tanh does: this one's
 *                c0 + c1 t cancels to 1e-5 relative near 0; the same
 *                operations). Its dalpha differs.
 *
 * Prints the straight loop's nanoseconds an element and each other loop's
 * time over it (best of the rounds, the loops alternating in every round).
 * Without AVX-512 (F, DQ) and FMA it says so and exits 0.
 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TGT __attribute__((target("avx512f,avx512dq,fma")))
#define INL static inline __attribute__((always_inline)) TGT

typedef __m512 V;

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* the part that needs x alone: u = alpha x, e = exp(-2|u|), om = 1 - e */
INL void first(V x, V al, V *e, V *om, V *u)
{
  V one = _mm512_set1_ps(1.f);
  V absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  *u = _mm512_mul_ps(al, x);
  V y = _mm512_mul_ps(_mm512_and_ps(*u, absm), _mm512_set1_ps(-2.f));
  y = _mm512_max_ps(y, _mm512_set1_ps(-100.f));
  V sh = _mm512_set1_ps(12582912.f);
  V n = _mm512_sub_ps(_mm512_fmadd_ps(y, _mm512_set1_ps(1.44269504f), sh), sh);
  V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), y);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  static const float c[6] = {1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, .5f, 1.f};
  V p = _mm512_set1_ps(1.f / 5040);
  for (int k = 0; k < 6; k++)
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[k]));
  *e = _mm512_scalef_ps(_mm512_fmadd_ps(p, r, one), n);
  V s = _mm512_scalef_ps(one, n);
  *om = _mm512_fnmadd_ps(s, _mm512_mul_ps(r, p), _mm512_sub_ps(one, s));
}

/* the part with dy: the two quotients, dx and the sums */
INL void second(V x, V dy, V u, V e, V om, V g, V a4, float *dg, float *db,
                float *dx, V *dal)
{
  V absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  V d = _mm512_add_ps(_mm512_set1_ps(1.f), e);
  V f = _mm512_div_ps(om, d);
  V q = _mm512_div_ps(e, _mm512_mul_ps(d, d));
  /* tanh(u)'s sign from u */
  f = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(absm), _mm512_castps_si512(f), _mm512_castps_si512(u), 226));
  _mm512_storeu_ps(dg, _mm512_fmadd_ps(dy, f, _mm512_loadu_ps(dg)));
  _mm512_storeu_ps(db, _mm512_add_ps(dy, _mm512_loadu_ps(db)));
  V t = _mm512_mul_ps(_mm512_mul_ps(dy, g), q);
  *dal = _mm512_fmadd_ps(x, t, *dal);
  _mm512_storeu_ps(dx, _mm512_mul_ps(t, a4));
}

typedef struct args {
  const float *x, *dy, *g;
  float *dx, *dg, *db;
  long rows, cols;
} args;

static const float ALPHA = 0.7f;

TGT static float reduce(V v)
{
  return _mm512_reduce_add_ps(v);
}

TGT __attribute__((noinline)) static float straight(const args *a)
{
  V al = _mm512_set1_ps(ALPHA), a4 = _mm512_set1_ps(4 * ALPHA);
  V dal = _mm512_setzero_ps();
  for (long i = 0; i < a->rows; i++) {
    const float *x = a->x + i * a->cols, *dy = a->dy + i * a->cols;
    float *dx = a->dx + i * a->cols;
    for (long j = 0; j < a->cols; j += 16) {
      V xv = _mm512_loadu_ps(x + j), e, om, u;
      first(xv, al, &e, &om, &u);
      second(xv, _mm512_loadu_ps(dy + j), u, e, om, _mm512_loadu_ps(a->g + j),
             a4, a->dg + j, a->db + j, dx + j, &dal);
    }
  }
  return reduce(dal);
}

/* blocks of K vectors in two phases (FIRST for all K, then SECOND for
 * all K, MUL dx's factor); a row's last cols % (16 K) columns one vector
 * after another */
#define BLOCKS(NAME, K, FIRST, SECOND, MUL)                                    \
  TGT __attribute__((noinline)) static float NAME(const args *a)               \
  {                                                                            \
    V al = _mm512_set1_ps(ALPHA), m = _mm512_set1_ps(MUL);                     \
    V dal = _mm512_setzero_ps(), eb[K], omb[K], ub[K];                         \
    for (long i = 0; i < a->rows; i++) {                                       \
      const float *x = a->x + i * a->cols, *dy = a->dy + i * a->cols;          \
      float *dx = a->dx + i * a->cols;                                         \
      long j0 = 0;                                                             \
      for (; j0 + 16 * K <= a->cols; j0 += 16 * K) {                           \
        for (int k = 0; k < K; k++)                                            \
          FIRST(_mm512_loadu_ps(x + j0 + 16 * k), al, &eb[k], &omb[k], &ub[k]); \
        for (int k = 0; k < K; k++) {                                          \
          long j = j0 + 16 * k;                                                \
          SECOND(_mm512_loadu_ps(x + j), _mm512_loadu_ps(dy + j), ub[k], eb[k], \
                 omb[k], _mm512_loadu_ps(a->g + j), m, a->dg + j, a->db + j,   \
                 dx + j, &dal);                                                \
        }                                                                      \
      }                                                                        \
      for (long j = j0; j < a->cols; j += 16) {                                \
        V xv = _mm512_loadu_ps(x + j), e, om, u;                               \
        FIRST(xv, al, &e, &om, &u);                                            \
        SECOND(xv, _mm512_loadu_ps(dy + j), u, e, om,                          \
               _mm512_loadu_ps(a->g + j), m, a->dg + j, a->db + j, dx + j,     \
               &dal);                                                          \
      }                                                                        \
    }                                                                          \
    return reduce(dal);                                                        \
  }
BLOCKS(blocks4, 4, first, second, 4 * ALPHA)
BLOCKS(blocks8, 8, first, second, 4 * ALPHA)
BLOCKS(blocks16, 16, first, second, 4 * ALPHA)

/* the first part of vector i + 1 beside the second of vector i */
TGT __attribute__((noinline)) static float pipelined(const args *a)
{
  V al = _mm512_set1_ps(ALPHA), a4 = _mm512_set1_ps(4 * ALPHA);
  V dal = _mm512_setzero_ps();
  long n = a->rows * a->cols;
  V xv = _mm512_loadu_ps(a->x), e, om, u;
  first(xv, al, &e, &om, &u);
  for (long i = 0; i < n; i += 16) {
    long c = i % a->cols;
    V xn = xv, en = e, omn = om, un = u;
    if (i + 16 < n) {
      xn = _mm512_loadu_ps(a->x + i + 16);
      first(xn, al, &en, &omn, &un);
    }
    second(xv, _mm512_loadu_ps(a->dy + i), u, e, om, _mm512_loadu_ps(a->g + c),
           a4, a->dg + c, a->db + c, a->dx + i, &dal);
    xv = xn, e = en, om = omn, u = un;
  }
  return reduce(dal);
}


/* the table loop's rows: H[k][i] the k-th Taylor coefficient at piece i's
 * center c = (i + 1/2) / 4 of tanh (pieces 0 and 1) or 1 - tanh (the
 * rest). tanh's k-th derivative is P_k(T), T = tanh(c), P_0 = T and
 * P_k+1 = P_k'(T) (1 - T^2): polynomials in T, in double. */
enum { HDEG = 6 };
static float H[HDEG + 1][32] __attribute__((aligned(64)));
static float CEN[32] __attribute__((aligned(64)));

static void table_init(void)
{
  double p[HDEG + 2][HDEG + 3] = {{0, 1}}; /* p[k][j]: T^j's coefficient */
  for (int k = 0; k <= HDEG; k++)          /* p[k+1] = p[k]' (1 - T^2) */
    for (int j = 1; j <= k + 1; j++) {
      p[k + 1][j - 1] += j * p[k][j];
      p[k + 1][j + 1] -= j * p[k][j];
    }
  for (int i = 0; i < 32; i++) {
    double c = (i + .5) / 4, T = tanh(c), fact = 1;
    CEN[i] = (float)c;
    for (int k = 0; k <= HDEG; k++) {
      double d = 0, tk = 1;
      for (int j = 0; j <= k + 1; j++, tk *= T)
        d += p[k][j] * tk;
      fact *= k ? k : 1;
      /* 1 - tanh: 2 / (exp(2c) + 1), no cancellation */
      double v = k ? d / fact : T;
      if (i >= 2)
        v = k ? -v : 2 / (exp(2 * c) + 1);
      H[k][i] = (float)v;
    }
  }
}

INL V tb(const float *t, __m512i i)
{
  return _mm512_permutex2var_ps(_mm512_load_ps(t), i, _mm512_load_ps(t + 16));
}

/* the table loop's first part: |tanh(u)| and sech^2(u) */
INL void first_tab(V x, V al, V *ta, V *s2, V *u)
{
  V absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  *u = _mm512_mul_ps(al, x);
  V a = _mm512_min_ps(_mm512_and_ps(*u, absm), _mm512_set1_ps(7.99f));
  __m512i i = _mm512_cvttps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(4.f)));
  V t = _mm512_sub_ps(a, tb(CEN, i)), h = tb(H[HDEG], i);
  for (int k = HDEG - 1; k >= 0; k--)
    h = _mm512_fmadd_ps(h, t, tb(H[k], i));
  __mmask16 m = _mm512_cmplt_epi32_mask(i, _mm512_set1_epi32(2));
  V g = _mm512_sub_ps(_mm512_set1_ps(1.f), h);
  V om = _mm512_mask_blend_ps(m, h, g); /* 1 - tanh */
  *ta = _mm512_mask_blend_ps(m, g, h);
  *s2 = _mm512_mul_ps(om, _mm512_sub_ps(_mm512_set1_ps(2.f), om));
}

/* the table against tanh and sech^2 in double at 4096 points of [-7.9, 7.9):
 * the largest relative error of either */
TGT static double table_error(void)
{
  double worst = 0;
  for (int k = 0; k < 4096; k += 16) {
    float xs[16], ta[16], s2[16];
    for (int l = 0; l < 16; l++)
      xs[l] = (float)((k + l) / 256.0 * 0.9875 - 7.9);
    V t, s, u;
    first_tab(_mm512_loadu_ps(xs), _mm512_set1_ps(1.f), &t, &s, &u);
    _mm512_storeu_ps(ta, t);
    _mm512_storeu_ps(s2, s);
    for (int l = 0; l < 16; l++) {
      double tt = fabs(tanh((double)xs[l])), ss = 1 / cosh((double)xs[l]);
      double e1 = tt ? fabs(ta[l] - tt) / tt : fabs(ta[l]);
      double e2 = fabs(s2[l] - ss * ss) / (ss * ss);
      worst = e1 > worst ? e1 : worst;
      worst = e2 > worst ? e2 : worst;
    }
  }
  return worst;
}

/* the table loop's second part: the sums and dx, as second's */
INL void second_tab(V x, V dy, V u, V ta, V s2, V g, V al, float *dg,
                    float *db, float *dx, V *dal)
{
  V absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  V f = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(absm), _mm512_castps_si512(ta), _mm512_castps_si512(u), 226));
  _mm512_storeu_ps(dg, _mm512_fmadd_ps(dy, f, _mm512_loadu_ps(dg)));
  _mm512_storeu_ps(db, _mm512_add_ps(dy, _mm512_loadu_ps(db)));
  V t = _mm512_mul_ps(_mm512_mul_ps(dy, g), s2);
  *dal = _mm512_fmadd_ps(x, t, *dal);
  _mm512_storeu_ps(dx, _mm512_mul_ps(t, al));
}

/* the table loop, one vector after another and in blocks of 4 */
BLOCKS(table1, 1, first_tab, second_tab, ALPHA)
BLOCKS(table4, 4, first_tab, second_tab, ALPHA)

static long arg_long(const char *s, const char *what)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end || v < 1 || v > (1l << 24)) {
    fprintf(stderr, "phases: %s must be a whole number from 1 to %ld, "
            "not '%s'\n", what, 1l << 24, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  if (argc != 1 && argc != 3) {
    fprintf(stderr, "usage: phases [ROWS COLS]\n");
    return 2;
  }
  long rows = argc == 3 ? arg_long(argv[1], "ROWS") : 32;
  long cols = argc == 3 ? arg_long(argv[2], "COLS") : 512;
  if (cols % 16 || rows * cols > (1l << 26)) {
    fprintf(stderr, "phases: COLS must be a multiple of 16 and ROWS x COLS "
            "at most 2^26, not %ld x %ld\n", rows, cols);
    return 2;
  }
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq") ||
      !__builtin_cpu_supports("fma")) {
    printf("phases: no AVX-512 on this CPU\n");
    return 0;
  }
  table_init();
  double terr = table_error();
  if (!(terr < 3e-5)) {
    fprintf(stderr, "phases: the table loop's tanh or sech^2 is %g off, "
            "relative\n", terr);
    return 1;
  }
  size_t n = (size_t)(rows * cols);
  float *buf = aligned_alloc(64, (3 * n + 3 * (size_t)cols) * sizeof *buf);
  if (!buf) {
    fprintf(stderr, "phases: out of memory\n");
    return 1;
  }
  /* x, dy (n each), gamma (cols), dx (n), the two sums (cols each) */
  args a = {buf, buf + n, buf + 2 * n, buf + 2 * n + cols, buf + 3 * n + cols,
            buf + 3 * n + 2 * cols, rows, cols};
  float *x = buf, *dy = buf + n, *g = buf + 2 * n;
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)((i * 2654435761u % 10000) / 2500.0 - 2);
    dy[i] = (float)((i * 40503u % 1000) / 1000.0 - .5);
  }
  for (long c = 0; c < cols; c++)
    g[c] = 1 + (float)c * 1e-3f;
  static float (*const fs[])(const args *) = {straight, blocks4, blocks8,
                                               blocks16, pipelined, table1, table4};
  enum { NV = sizeof fs / sizeof *fs };
  double best[NV];
  float sum[NV];
  for (int v = 0; v < NV; v++)
    best[v] = 1e30;
  long inner = 20000000 / (long)n;
  inner = inner < 1 ? 1 : inner;
  int rounds = n <= (1u << 20) ? 60 : 15;
  for (int r = 0; r < rounds; r++)
    for (int v = 0; v < NV; v++) {
      memset(a.dg, 0, 2 * (size_t)cols * sizeof *a.dg);
      double t = now();
      float s = 0;
      for (long k = 0; k < inner; k++)
        s += fs[v](&a);
      t = (now() - t) / (double)inner;
      best[v] = t < best[v] ? t : best[v];
      sum[v] = s;
    }
  for (int v = 1; v < NV - 2; v++) /* not the table loops' */
    if (sum[v] != sum[0]) {
      fprintf(stderr, "phases: order %d summed dalpha to %g, not %g\n", v,
              (double)sum[v], (double)sum[0]);
      return 1;
    }
  printf("phases [%ld x %ld]: straight %.4f ns an element; over it: blocks "
         "of 4 %.3f, of 8 %.3f, of 16 %.3f, pipelined %.3f; table %.3f, in blocks of 4 %.3f\n", rows, cols,
         best[0] * 1e9 / (double)n, best[1] / best[0], best[2] / best[0],
         best[3] / best[0], best[4] / best[0], best[5] / best[0], best[6] / best[0]);
  free(buf);
  return 0;
}
