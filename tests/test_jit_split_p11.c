/*
 * test_jit_split_p11.c - a cold compile on two CPUs (compiler/jit.c,
 * compile_object) makes the forward's kernels and the backward's in two
 * modules, the backward's on a second thread; on one CPU, or with an IR
 * dump, it makes one module. The code must be the same either way: every
 * kernel (element-wise and layer, with and without gamma and beta, a
 * per-channel parameter, tails) of a context that splits gives the bits
 * of one that does not, in every dtype; a split compile's cache entry
 * (two objects) is read back by a context on one CPU, as a hit, with
 * those bits; and compiles from several threads at once (only one of
 * which may split) agree too.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnc.h"
#include "dnc_int.h"
#include "dtypes.h"
#include "tap.h"
#include "tmpdir.h"

static const char *const src =
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
    "fn derf(x; alpha = 0.5, s = 0.1) = erf(alpha * x + s)\n"
    "fn dyisru(x; beta = 3.5) = x / sqrt(beta + x^2)\n"
    "fn pc(x; a[] = 0.5, s = 0.2) = x * sigmoid(a * x + s)\n";
enum { NFN = 4, ROWS = 3, COLS = 37, N = ROWS * COLS };

static const dnc_dtype dts[] = {DNC_F32, DNC_F64, DNC_BF16, DNC_F16};
enum { NDT = sizeof dts / sizeof *dts };

/* everything one context's kernels give for one function and dtype */
typedef struct result {
  unsigned char y[2][N * 8], dx[2][N * 8], py[N * 8], pdx[N * 8];
  double dp[2][4], pdp[4], dch[2][4][COLS], dg[2][COLS], db[2][COLS];
} result;

static size_t dt_size(dnc_dtype t)
{
  return t == DNC_F64 ? 8 : t == DNC_F32 ? 4 : 2;
}

static void bail(const char *why)
{
  printf("Bail out! %s\n", why);
  exit(1);
}

static dnc_context *context(const char *dump, const char *cache)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  o.cache = cache ? 1 : -1;
  o.cache_dir = cache;
  o.dump_ir = dump;
  dnc_context *ctx;
  if (dnc_context_create(&o, &ctx) != DNC_OK)
    bail("context");
  return ctx;
}

static void run(dnc_context *ctx, int fi, int di, result *r)
{
  dnc_module *m;
  if (dnc_compile_string(ctx, "split.dn", src, strlen(src), &m) != DNC_OK)
    bail("compile");
  dnc_kernels k;
  if (dnc_function_kernels(dnc_module_function(m, fi), dts[di], &k) != DNC_OK)
    bail(dnc_last_error());
  memset(r, 0, sizeof *r);
  unsigned char x[N * 8], dy[N * 8];
  float gamma32[COLS], beta32[COLS], ch32[COLS];
  double gamma64[COLS], beta64[COLS], ch64[COLS];
  for (int i = 0; i < N; i++) {
    store(dts[di], (i % 23 - 11) * 0.37 + (i == 5 ? 40 : 0), x + i * dt_size(dts[di]));
    store(dts[di], ((i * 7) % 13 - 6) * 0.11, dy + i * dt_size(dts[di]));
  }
  for (int c = 0; c < COLS; c++) {
    gamma32[c] = (float)(gamma64[c] = 1 + c * 0.01);
    beta32[c] = (float)(beta64[c] = 0.1 * c - 1);
    ch32[c] = (float)(ch64[c] = 0.25 + c * 0.02);
  }
  int f64 = dts[di] == DNC_F64;
  const void *gamma = f64 ? (void *)gamma64 : gamma32;
  const void *beta = f64 ? (void *)beta64 : beta32;
  const void *ch[2] = {f64 ? (void *)ch64 : ch32, NULL};
  double p[2] = {0.5, 0.2};
  if (fi == 1)
    p[1] = 0.1;
  if (fi == 2)
    p[0] = 3.5;
  for (int aff = 0; aff < 2; aff++) {
    double *dch[2] = {r->dch[aff][0], NULL};
    k.layer_forward(x, COLS, r->y[aff], COLS, ROWS, COLS, p, ch,
                    aff ? gamma : NULL, aff ? beta : NULL);
    k.layer_backward(x, COLS, dy, COLS, r->dx[aff], COLS, ROWS, COLS, p, ch,
                     aff ? gamma : NULL, aff ? beta : NULL, r->dp[aff], dch,
                     r->dg[aff], r->db[aff]);
  }
  if (fi != 3) { /* the element-wise kernels take no per-channel values */
    k.forward(x, r->py, N, p);
    k.backward(x, dy, r->pdx, N, p, r->pdp);
  }
  dnc_module_free(m);
}

static int one_cpu(void)
{
  cpu_set_t s;
  CPU_ZERO(&s);
  if (sched_getaffinity(0, sizeof s, &s))
    return -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &s)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      return sched_setaffinity(0, sizeof one, &one);
    }
  return -1;
}

/* cache entries (*.dko) in dir whose object code is two objects: the
 * header jit.c writes for them, "dnc2obj" and its NUL */
static int count_two_object_entries(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 4, ".dko"))
      continue;
    size_t got;
    char *buf = tmpdir_read(dir, e->d_name, &got);
    if (!buf)
      continue;
    n += memmem(buf, got, "dnc2obj", 8) != NULL;
    free(buf);
  }
  closedir(d);
  return n;
}

static result want[NFN][NDT], got[NFN][NDT];

typedef struct job {
  dnc_context *ctx;
  int fi;
} job;

static void *compile_thread(void *p)
{
  job *j = p;
  for (int di = 0; di < NDT; di++)
    run(j->ctx, j->fi, di, &got[j->fi][di]);
  return NULL;
}

int main(void)
{
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof all, &all))
    bail("sched_getaffinity");
  int cpus = CPU_COUNT(&all);

  /* one module: an IR dump */
  char *dump = tmpdir_make("dnc-split");
  dnc_context *single = context(dump, NULL);
  for (int fi = 0; fi < NFN; fi++)
    for (int di = 0; di < NDT; di++)
      run(single, fi, di, &want[fi][di]);
  dnc_context_free(single);
  tmpdir_remove(dump);
  free(dump);

  /* split where this process may use two CPUs, into a cache */
  char *cache = tmpdir_make("dnc-split");
  dnc_context *split = context(NULL, cache);
  for (int fi = 0; fi < NFN; fi++)
    for (int di = 0; di < NDT; di++) {
      run(split, fi, di, &got[fi][di]);
      ok(!memcmp(&got[fi][di], &want[fi][di], sizeof(result)),
         "fn %d, %s: the kernels of a %s compile have the bits of one "
         "module's", fi, dnc_dtype_name(dts[di]),
         cpus > 1 ? "split" : "(one CPU: unsplit)");
    }
  dnc_context_free(split);
  int two = count_two_object_entries(cache);
  if (cpus > 1)
    is_int(two, NFN * NDT, "every entry the split compiles wrote holds two "
           "objects (the forward's and the backward's)");
  else
    is_int(two, 0, "on one CPU no entry holds two objects");

  /* several threads compiling at once in one context */
  dnc_context *threads = context(NULL, NULL);
  pthread_t th[NFN];
  job jobs[NFN];
  memset(got, 0, sizeof got);
  for (int fi = 0; fi < NFN; fi++) {
    jobs[fi] = (job){threads, fi};
    if (pthread_create(&th[fi], NULL, compile_thread, &jobs[fi]))
      bail("pthread_create");
  }
  for (int fi = 0; fi < NFN; fi++)
    pthread_join(th[fi], NULL);
  dnc_context_free(threads);
  int same = 1;
  for (int fi = 0; fi < NFN; fi++)
    for (int di = 0; di < NDT; di++)
      same &= !memcmp(&got[fi][di], &want[fi][di], sizeof(result));
  ok(same, "compiles from %d threads at once give the same bits", NFN);

  /* the split compile's entries, read on one CPU */
  if (one_cpu())
    bail("sched_setaffinity");
  unsigned long c0[4], c1[4];
  dnc_kcache_counts(c0);
  dnc_context *reader = context(NULL, cache);
  for (int fi = 0; fi < NFN; fi++)
    for (int di = 0; di < NDT; di++) {
      run(reader, fi, di, &got[fi][di]);
      ok(!memcmp(&got[fi][di], &want[fi][di], sizeof(result)),
         "fn %d, %s: read from the cache on one CPU, the same bits", fi,
         dnc_dtype_name(dts[di]));
    }
  dnc_context_free(reader);
  dnc_kcache_counts(c1);
  ok(c1[DNC_KCACHE_HIT] - c0[DNC_KCACHE_HIT] == NFN * NDT &&
         c1[DNC_KCACHE_WRITTEN] == c0[DNC_KCACHE_WRITTEN],
     "every entry was a hit (%lu hits, %lu written)",
     c1[DNC_KCACHE_HIT] - c0[DNC_KCACHE_HIT],
     c1[DNC_KCACHE_WRITTEN] - c0[DNC_KCACHE_WRITTEN]);

  /* on one CPU nothing splits: the same bits again, compiled */
  dnc_context *lone = context(NULL, NULL);
  same = 1;
  for (int fi = 0; fi < NFN; fi++)
    for (int di = 0; di < NDT; di++) {
      run(lone, fi, di, &got[fi][di]);
      same &= !memcmp(&got[fi][di], &want[fi][di], sizeof(result));
    }
  ok(same, "compiled on one CPU, the same bits");
  dnc_context_free(lone);
  sched_setaffinity(0, sizeof all, &all);
  tmpdir_remove(cache);
  free(cache);
  return done_testing();
}
