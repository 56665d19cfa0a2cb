/*
 * test_spec_p12.c - the inverse square root unit's scale k (rewrite.c,
 * isru_scaled) is 1 on ordinary input, and codegen.c (speculate)
 * branches each full vector on k's conditions: to a body with k = 1
 * folded away where no lane of the vector needs scaling, to the loop's
 * general body (its masked tail's, every lane live, then back into the
 * loop) where some lane does. A lane's result must not depend on its
 * neighbours, nor a vector's on the rare one before it: each kernel
 * (element-wise and layer, with
 * gamma and beta and a per-channel parameter, f32, f64, bf16, f16) run
 * over vectors with no rare lane, one rare lane in each position, and all
 * lanes rare (|x| past 2^42; x and the parameter both tiny),
 * gives for every element the bits that the element gives alone (a call
 * of one element, which the masked tail computes with k as it is), and
 * parameter sums equal to the sums of the elements' terms; on the host's
 * vectors and on x86-64-v2's. The IR dump shows the branch for these
 * functions and none for DyT.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnc.h"
#include "dtypes.h"
#include "tap.h"
#include "tmpdir.h"

static const char *const src =
    "fn dyisru(x; beta = 3.5) = x / sqrt(beta + x^2)\n"
    "fn coef(x; beta = 3) = x / sqrt(1 + beta * x^2)\n"
    "fn ratl(x; a = 2) = x / (1 + (a * x)^2)\n"
    "fn dyisru_dx(x; beta = 301.1) = beta / ((beta + x^2) * sqrt(beta + x^2))\n"
    "fn isru_pc(x; a[] = 1.5, c = 2) = a * x / sqrt(c + (a * x)^2)\n"
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
enum { NFN = 6, PC_FN = 4, DYT = 5 };

static const dnc_dtype dts[] = {DNC_F32, DNC_F64, DNC_BF16, DNC_F16};
enum { NDT = sizeof dts / sizeof *dts };
/* 12 vectors of 16 lanes (24 of 8) and a tail; the layer's rows are
 * COLS long, three full vectors of 16 and a tail of 5 */
enum { N = 197, COLS = 53, ROWS = 3, NL = ROWS * COLS };

static size_t dt_size(dnc_dtype t)
{
  return t == DNC_F64 ? 8 : t == DNC_F32 ? 4 : 2;
}

static void bail(const char *why)
{
  printf("Bail out! %s\n", why);
  exit(1);
}

/* element i of a run: ordinary values, with rare ones in vectors 1..10
 * (16 lanes: lane v - 1 of vector v, then every lane of vector 11, and
 * one in the tail); tiny: the parameters are tiny too, and the rare
 * values are tiny (k > 1) */
static double value(int i, int tiny)
{
  double ord = ((i * 37) % 29 - 14) * 0.41 + 0.05;
  int v = i / 16, l = i % 16;
  double rare = tiny ? ((i & 1) ? 1e-20 : -3e-25)
                     : (i % 3 == 0 ? 1e20 : i % 3 == 1 ? -7e25 : 3e30);
  if ((v >= 1 && v <= 10 && l == (v - 1) * 3 % 16) || v == 11 || i == N - 2)
    return rare;
  return ord;
}

typedef struct res {
  unsigned char y[N * 8], dx[N * 8];
  double dp[2], terms[2];
} res;

/* same: the bits, or both NaN (a NaN's payload is not compared) */
static int same(dnc_dtype t, const unsigned char *a, const unsigned char *b)
{
  double x = load(t, a), y = load(t, b);
  if (isnan(x) || isnan(y))
    return isnan(x) && isnan(y);
  return !memcmp(a, b, dt_size(t));
}

static int close_sum(double got, double want, double mag)
{
  if (isnan(want) || isnan(got))
    return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got))
    return got == want;
  return fabs(got - want) <= 1e-6 * mag + 1e-300;
}

static void elementwise(const dnc_kernels *k, dnc_dtype t, const double *p,
                        int np, int tiny, const char *name)
{
  size_t sz = dt_size(t);
  unsigned char x[N * 8], dy[N * 8], y[N * 8], dx[N * 8];
  for (int i = 0; i < N; i++) {
    store(t, value(i, tiny), x + i * sz);
    store(t, ((i * 7) % 13 - 6) * 0.11 + 0.03, dy + i * sz);
  }
  double dp[2] = {0, 0};
  k->forward(x, y, N, p);
  k->backward(x, dy, dx, N, p, dp);
  int bad_y = 0, bad_dx = 0;
  double want[2] = {0, 0}, mag[2] = {0, 0};
  for (int i = 0; i < N; i++) {
    unsigned char y1[8], dx1[8];
    double dp1[2] = {0, 0};
    k->forward(x + i * sz, y1, 1, p);
    k->backward(x + i * sz, dy + i * sz, dx1, 1, p, dp1);
    if (!same(t, y + i * sz, y1) && bad_y++ < 3)
      diag("%s %s: y[%d] (x = %g) is %g alone, %g in the vector", name,
           dnc_dtype_name(t), i, load(t, x + i * sz), load(t, y1),
           load(t, y + i * sz));
    if (!same(t, dx + i * sz, dx1) && bad_dx++ < 3)
      diag("%s %s: dx[%d] (x = %g) is %g alone, %g in the vector", name,
           dnc_dtype_name(t), i, load(t, x + i * sz), load(t, dx1),
           load(t, dx + i * sz));
    for (int j = 0; j < np; j++) {
      want[j] += dp1[j];
      mag[j] += fabs(dp1[j]);
    }
  }
  ok(!bad_y && !bad_dx, "%s %s%s: forward and backward, each element as "
     "it is alone", name, dnc_dtype_name(t), tiny ? " (tiny)" : "");
  for (int j = 0; j < np; j++)
    ok(close_sum(dp[j], want[j], mag[j]), "%s %s%s: d/dp%d %.17g, the sum "
       "of the elements' terms %.17g", name, dnc_dtype_name(t),
       tiny ? " (tiny)" : "", j, dp[j], want[j]);
}

/* the layer kernels over [ROWS x COLS], each element against a call of
 * one row of one column with that column's per-channel values */
static void layer(const dnc_kernels *k, dnc_dtype t, const double *p, int np,
                  int pc, int tiny, const char *name)
{
  size_t sz = dt_size(t);
  int f64 = t == DNC_F64;
  unsigned char x[NL * 8], dy[NL * 8], y[NL * 8], dx[NL * 8];
  double g64[COLS], b64[COLS], c64[COLS];
  float g32[COLS], b32[COLS], c32[COLS];
  for (int i = 0; i < NL; i++) {
    store(t, value((i * 5) % N, tiny), x + i * sz);
    store(t, ((i * 11) % 17 - 8) * 0.07 - 0.02, dy + i * sz);
  }
  for (int c = 0; c < COLS; c++) {
    g32[c] = (float)(g64[c] = 1 + c * 0.01);
    b32[c] = (float)(b64[c] = 0.1 * c - 1);
    c32[c] = (float)(c64[c] = tiny ? 1e-30 : 0.75 + c * 0.02);
  }
  const char *g = f64 ? (void *)g64 : (void *)g32;
  const char *b = f64 ? (void *)b64 : (void *)b32;
  const char *ch = f64 ? (void *)c64 : (void *)c32;
  size_t cs = f64 ? 8 : 4;
  double dp[2] = {0, 0}, dch[COLS], dg[COLS], db[COLS];
  memset(dch, 0, sizeof dch);
  memset(dg, 0, sizeof dg);
  memset(db, 0, sizeof db);
  const void *chs[2] = {pc ? ch : NULL, NULL};
  double *dchs[2] = {pc ? dch : NULL, NULL};
  k->layer_forward(x, COLS, y, COLS, ROWS, COLS, p, chs, g, b);
  k->layer_backward(x, COLS, dy, COLS, dx, COLS, ROWS, COLS, p, chs, g, b,
                    dp, dchs, dg, db);
  int bad = 0;
  double want[2] = {0, 0}, mag[2] = {0, 0};
  double wg[COLS] = {0}, mg[COLS] = {0}, wc[COLS] = {0}, mc[COLS] = {0};
  for (int i = 0; i < NL; i++) {
    int c = i % COLS;
    unsigned char y1[8], dx1[8];
    double dp1[2] = {0, 0}, dch1 = 0, dg1 = 0, db1 = 0;
    const void *chs1[2] = {pc ? ch + c * cs : NULL, NULL};
    double *dchs1[2] = {pc ? &dch1 : NULL, NULL};
    k->layer_forward(x + i * sz, 1, y1, 1, 1, 1, p, chs1, g + c * cs,
                     b + c * cs);
    k->layer_backward(x + i * sz, 1, dy + i * sz, 1, dx1, 1, 1, 1, p, chs1,
                      g + c * cs, b + c * cs, dp1, dchs1, &dg1, &db1);
    if ((!same(t, y + i * sz, y1) || !same(t, dx + i * sz, dx1)) && bad++ < 3)
      diag("%s %s layer: element %d (x = %g): y %g alone, %g in the row; "
           "dx %g, %g", name, dnc_dtype_name(t), i, load(t, x + i * sz),
           load(t, y1), load(t, y + i * sz), load(t, dx1),
           load(t, dx + i * sz));
    for (int j = 0; j < np; j++) {
      want[j] += dp1[j];
      mag[j] += fabs(dp1[j]);
    }
    wg[c] += dg1;
    mg[c] += fabs(dg1);
    wc[c] += dch1;
    mc[c] += fabs(dch1);
  }
  ok(!bad, "%s %s%s layer: y and dx, each element as it is alone", name,
     dnc_dtype_name(t), tiny ? " (tiny)" : "");
  int bad_sums = 0;
  for (int j = 0; j < np; j++)
    if (!(pc && j == 0))
      bad_sums += !close_sum(dp[j], want[j], mag[j]);
  for (int c = 0; c < COLS; c++) {
    bad_sums += !close_sum(dg[c], wg[c], mg[c]);
    if (pc)
      bad_sums += !close_sum(dch[c], wc[c], mc[c]);
  }
  ok(!bad_sums, "%s %s%s layer: the parameter, per-channel and gamma sums "
     "are the sums of the elements' terms", name, dnc_dtype_name(t),
     tiny ? " (tiny)" : "");
}

/* the IR dump of fn's f32 kernels holds the branch (or not) */
static int dumped_branch(const char *dir, const char *fn)
{
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  char want[128];
  snprintf(want, sizeof want, "_%s_f32.before.ll", fn);
  int found = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *s = strstr(e->d_name, want);
    if (!s || strcmp(s, want))
      continue;
    size_t len;
    char *ir = tmpdir_read(dir, e->d_name, &len);
    if (!ir)
      continue;
    found = strstr(ir, "scale.one") != NULL;
    free(ir);
  }
  closedir(d);
  return found;
}

int main(void)
{
  /* the host's vectors (16 lanes of f32 with AVX-512) and x86-64-v2's (4) */
  static const char *const cpus[] = {NULL, "x86-64-v2"};
  for (int ci = 0; ci < 2; ci++) {
    char *dump = tmpdir_make("dnc-spec");
    dnc_options o;
    dnc_options_init(&o);
    o.threads = 1;
    o.cache = -1;
    o.cpu = cpus[ci];
    o.dump_ir = dump;
    dnc_context *ctx;
    if (dnc_context_create(&o, &ctx) != DNC_OK)
      bail(dnc_last_error());
    dnc_module *m;
    if (dnc_compile_string(ctx, "spec.dn", src, strlen(src), &m) != DNC_OK)
      bail(dnc_last_error());
    diag("cpu: %s", cpus[ci] ? cpus[ci] : "the host's");
    for (int fi = 0; fi < NFN; fi++) {
      const dnc_function *f = dnc_module_function(m, fi);
      const char *name = dnc_function_name(f);
      int np = dnc_function_param_count(f);
      for (int di = 0; di < NDT; di++) {
        dnc_kernels k;
        if (dnc_function_kernels(f, dts[di], &k) != DNC_OK)
          bail(dnc_last_error());
        for (int tiny = 0; tiny < 2; tiny++) {
          double p[2];
          for (int j = 0; j < np; j++)
            p[j] = tiny ? 1e-30 : j ? 2.0 : 3.5;
          if (fi != PC_FN)
            elementwise(&k, dts[di], p, np, tiny, name);
          layer(&k, dts[di], p, np, fi == PC_FN, tiny, name);
        }
      }
      is_int(dumped_branch(dump, name), fi != DYT,
             "%s: the f32 kernels %s the branch on k's conditions", name,
             fi != DYT ? "have" : "do not have");
    }
    dnc_module_free(m);
    dnc_context_free(ctx);
    tmpdir_remove(dump);
    free(dump);
  }
  done_testing();
  return 0;
}
