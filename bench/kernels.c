/*
 * kernels.c - `make bench`: the layer kernels of DyT, Derf and DyISRU
 * against a memory copy of the same size, and the JIT's compile latency.
 *
 * Times are reported as ratios to a copy measured in the same run,
 * interleaved with the kernel runs, because the machines are shared and
 * noisy: a bare time means little, a ratio to the copy moved by the same
 * noise means more. The all-threads copy is split across as many threads
 * as the kernels' pool has, so the ratio compares like with like.
 *
 * Usage: kernels [out.json]   (default build/bench/kernels.json)
 * Environment: DNC_BENCH_ROWS, DNC_BENCH_COLS (8192 x 4096),
 * DNC_BENCH_REPS (9). bench/README.md has the details and the results.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "dnc.h"
#include "peer.h"

enum {
  DEFAULT_ROWS = 8192,
  DEFAULT_COLS = 4096,
  DEFAULT_REPS = 9,
  JIT_REPS = 21, /* >= 20, odd so that the median is one sample */
  CACHED_REPS = 9, /* new processes that find the kernels in the cache */
  CHECK_POINTS = 256,
  NFUNCS = 3
};

typedef struct bench_func {
  const char *name;
  const char *source;
} bench_func;

/* The functions of examples/norms.dn, each alone so that the JIT latency
 * is that of one function. */
static const bench_func funcs[NFUNCS] = {
    {"dyt", "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"},
    {"derf", "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n"},
    {"dyisru", "fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)\n"},
};

/* ------------------------------------------------------------ failures */

static void die(const char *what)
{
  fprintf(stderr, "bench: %s\n", what);
  exit(1);
}

static void check(dnc_status st, const char *what)
{
  if (st == DNC_OK)
    return;
  const char *more = dnc_last_error();
  fprintf(stderr, "bench: %s: %s%s%s\n", what, dnc_status_string(st),
          *more ? ": " : "", more);
  exit(1);
}

/* -------------------------------------------------------------- helpers */

static double now_ms(void)
{
  return 1e3 * bench_now();
}

/* A positive integer from the environment, or def when unset. */
static long env_long(const char *name, long def, long max)
{
  const char *s = getenv(name);
  if (!s || !*s)
    return def;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < 1 || v > max) {
    fprintf(stderr, "bench: %s must be an integer in 1..%ld, not '%s'\n",
            name, max, s);
    exit(2);
  }
  return v;
}

/* A deterministic value in [-1, 1) for index i (a 64-bit mix), so that
 * runs are comparable and no page is left untouched. */
static float hash_unit(uint64_t i)
{
  i += 0x9e3779b97f4a7c15u;
  i = (i ^ (i >> 30)) * 0xbf58476d1ce4e5b9u;
  i = (i ^ (i >> 27)) * 0x94d049bb133111ebu;
  i ^= i >> 31;
  return (float)((double)(i >> 11) * 0x1p-52 - 1.0);
}

/* n floats, page aligned, each written scale * hash + offset: writing
 * every element takes the page faults before any timing. */
static float *alloc_filled(size_t n, uint64_t seed, float scale, float offset)
{
  size_t bytes = (n * sizeof(float) + 4095) & ~(size_t)4095;
  float *a = aligned_alloc(4096, bytes);
  if (!a)
    die("out of memory for the tensors");
  for (size_t i = 0; i < n; i++)
    a[i] = scale * hash_unit(seed * n + i) + offset;
  return a;
}

/* Creates every directory above the file `path` (mkdir -p of its dirname). */
static void make_parent_dirs(const char *path)
{
  char buf[4096];
  if (strlen(path) >= sizeof buf)
    die("output path too long");
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
      fprintf(stderr, "bench: cannot create %s: %s\n", buf, strerror(errno));
      exit(1);
    }
    *p = '/';
  }
}

/* ---------------------------------------------------- the copy baseline */

/* A team of threads that copy one buffer in equal slices. The workers
 * live as long as the team and wait on a barrier between copies, as the
 * kernels' pool keeps its workers, so that thread creation is in neither
 * measurement. The caller is one of the team, as it is in the pool. */
typedef struct copy_team copy_team;

typedef struct copy_worker {
  copy_team *team;
  int index;
  pthread_t thread;
} copy_worker;

struct copy_team {
  int n; /* threads, the caller included */
  copy_worker *workers; /* n - 1 of them, indices 1..n-1 */
  pthread_barrier_t start, done;
  char *dst;
  const char *src;
  size_t bytes;
  int stop;
};

/* Slice i of n, cut at 4 KiB boundaries so that no two threads write to
 * one page (or cache line). */
static void copy_slice(copy_team *t, int i)
{
  size_t pages = (t->bytes + 4095) / 4096;
  size_t lo = pages * (size_t)i / (size_t)t->n * 4096;
  size_t hi = pages * (size_t)(i + 1) / (size_t)t->n * 4096;
  if (hi > t->bytes)
    hi = t->bytes;
  if (lo < hi)
    memcpy(t->dst + lo, t->src + lo, hi - lo);
}

static void *copy_worker_main(void *arg)
{
  copy_worker *w = arg;
  for (;;) {
    pthread_barrier_wait(&w->team->start);
    if (w->team->stop)
      return NULL;
    copy_slice(w->team, w->index);
    pthread_barrier_wait(&w->team->done);
  }
}

static void copy_team_init(copy_team *t, int n)
{
  memset(t, 0, sizeof *t);
  t->n = n;
  t->workers = calloc((size_t)n, sizeof *t->workers);
  if (!t->workers || pthread_barrier_init(&t->start, NULL, (unsigned)n) ||
      pthread_barrier_init(&t->done, NULL, (unsigned)n))
    die("cannot set up the copy threads");
  for (int i = 1; i < n; i++) {
    t->workers[i].team = t;
    t->workers[i].index = i;
    if (pthread_create(&t->workers[i].thread, NULL, copy_worker_main,
                       &t->workers[i]))
      die("cannot start a copy thread");
  }
}

/* With one thread this is a plain memcpy on the caller. */
static void copy_team_run(copy_team *t, void *dst, const void *src,
                          size_t bytes)
{
  t->dst = dst;
  t->src = src;
  t->bytes = bytes;
  pthread_barrier_wait(&t->start); /* publishes the fields above */
  copy_slice(t, 0);
  pthread_barrier_wait(&t->done);
}

static void copy_team_free(copy_team *t)
{
  t->stop = 1;
  pthread_barrier_wait(&t->start);
  for (int i = 1; i < t->n; i++)
    pthread_join(t->workers[i].thread, NULL);
  pthread_barrier_destroy(&t->start);
  pthread_barrier_destroy(&t->done);
  free(t->workers);
}

/* -------------------------------------------------------- the workload */

/* The dtypes measured: f32, and bf16 (what training runs in). */
enum { NDTYPES = 2 };
static const dnc_dtype dtypes[NDTYPES] = {DNC_F32, DNC_BF16};

/* The tensors of one layer, shared by every function and thread count:
 * x, y, dy, dx in each dtype (the bf16 ones the f32 values rounded to
 * nearest even), gamma and beta and their gradients in float for both. */
typedef struct workload {
  int64_t rows, cols;
  size_t n;
  float *x, *y, *dy, *dx;
  uint16_t *hx, *hy, *hdy, *hdx;
  float *gamma, *beta, *dgamma, *dbeta;
  double dparams[4];
  dnc_tensor tx[NDTYPES], ty[NDTYPES], tdy[NDTYPES], tdx[NDTYPES];
  dnc_layer layer;
  dnc_layer_grad grad;
} workload;

static dnc_tensor tensor_of(void *data, dnc_dtype dt, int64_t rows,
                            int64_t cols)
{
  dnc_tensor t = {data, dt, rows, cols, 0};
  return t;
}

static size_t dtype_size(dnc_dtype dt)
{
  return dt == DNC_F32 ? 4 : 2;
}

static uint16_t to_bf16(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1); /* finite inputs only */
  return (uint16_t)(u >> 16);
}

static double from_bf16(uint16_t h)
{
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Element i of the view t, as a double. */
static double elem(const dnc_tensor *t, size_t i)
{
  return t->dtype == DNC_F32 ? ((const float *)t->data)[i]
                             : from_bf16(((const uint16_t *)t->data)[i]);
}

static uint16_t *alloc_bf16(const float *src, size_t n)
{
  size_t bytes = (n * 2 + 4095) & ~(size_t)4095;
  uint16_t *a = aligned_alloc(4096, bytes);
  if (!a)
    die("out of memory for the tensors");
  for (size_t i = 0; i < n; i++)
    a[i] = to_bf16(src[i]);
  return a;
}

/* x spans [-8, 8): beyond alpha*x = +-1 where tanh and erf bend, and
 * around sqrt(beta) ~ 17 for DyISRU's scale; dy is a gradient in [-1, 1);
 * gamma and beta are near their initial 1 and 0 but not equal to them. */
static void workload_init(workload *w, int64_t rows, int64_t cols)
{
  memset(w, 0, sizeof *w);
  w->rows = rows;
  w->cols = cols;
  w->n = (size_t)rows * (size_t)cols;
  w->x = alloc_filled(w->n, 1, 8.0f, 0.0f);
  w->y = alloc_filled(w->n, 2, 0.0f, 0.0f);
  w->dy = alloc_filled(w->n, 3, 1.0f, 0.0f);
  w->dx = alloc_filled(w->n, 4, 0.0f, 0.0f);
  w->gamma = alloc_filled((size_t)cols, 5, 0.25f, 1.0f);
  w->beta = alloc_filled((size_t)cols, 6, 0.1f, 0.0f);
  w->dgamma = alloc_filled((size_t)cols, 7, 0.0f, 0.0f);
  w->dbeta = alloc_filled((size_t)cols, 8, 0.0f, 0.0f);
  w->hx = alloc_bf16(w->x, w->n);
  w->hy = alloc_bf16(w->y, w->n);
  w->hdy = alloc_bf16(w->dy, w->n);
  w->hdx = alloc_bf16(w->dx, w->n);
  void *data[NDTYPES][4] = {{w->x, w->y, w->dy, w->dx},
                            {w->hx, w->hy, w->hdy, w->hdx}};
  for (int d = 0; d < NDTYPES; d++) {
    w->tx[d] = tensor_of(data[d][0], dtypes[d], rows, cols);
    w->ty[d] = tensor_of(data[d][1], dtypes[d], rows, cols);
    w->tdy[d] = tensor_of(data[d][2], dtypes[d], rows, cols);
    w->tdx[d] = tensor_of(data[d][3], dtypes[d], rows, cols);
  }
  w->layer.gamma = w->gamma;
  w->layer.beta = w->beta;
  w->grad.params = w->dparams;
  w->grad.gamma = w->dgamma;
  w->grad.beta = w->dbeta;
}

static void workload_free(workload *w)
{
  free(w->x);
  free(w->y);
  free(w->dy);
  free(w->dx);
  free(w->hx);
  free(w->hy);
  free(w->hdy);
  free(w->hdx);
  free(w->gamma);
  free(w->beta);
  free(w->dgamma);
  free(w->dbeta);
}

static void run_forward(const dnc_function *f, workload *w, int d)
{
  check(dnc_layer_forward(f, &w->tx[d], &w->ty[d], &w->layer),
        "layer forward");
}

/* What a training step runs: the forward, then the backward with every
 * gradient wanted (dx, the parameters', dgamma and dbeta). */
static void run_forward_backward(const dnc_function *f, workload *w, int d)
{
  run_forward(f, w, d);
  check(dnc_layer_backward(f, &w->tx[d], &w->tdy[d], &w->tdx[d], &w->layer,
                           &w->grad),
        "layer backward");
}

/* ---------------------------------------------------- the spot check */

/* f(v) with the default parameters, through the reference interpreter. */
static double eval_at(const dnc_function *f, double v)
{
  double out;
  check(dnc_function_eval(f, &v, &out, 1, NULL), "reference evaluation");
  return out;
}

static int close_to(double got, double want, double tol)
{
  return fabs(got - want) <= tol * (1.0 + fabs(want));
}

/* A timing is worth nothing if the kernel computes something else: checks
 * y and dx at spread-out points (dx against a central difference) and
 * dgamma, dbeta of column 0 against sums in double. Expects the gradients
 * zeroed before the run it checks. */
static void spot_check(const dnc_function *f, const workload *w, int d,
                       const char *label)
{
  const double h = 1e-4; /* difference error ~h^2, far below f32's */
  /* f32: a few ulp; bf16: the result rounded to 8 bits */
  const double tol_y = dtypes[d] == DNC_F32 ? 1e-5 : 1e-2;
  const double tol_dx = dtypes[d] == DNC_F32 ? 1e-4 : 1e-2;
  int bad = 0;
  for (size_t k = 0; k < CHECK_POINTS && !bad; k++) {
    size_t i = (k * 2654435761u + 12345) % w->n;
    size_t c = i % (size_t)w->cols;
    double x = elem(&w->tx[d], i), g = w->gamma[c];
    double y = g * eval_at(f, x) + w->beta[c];
    double df = (eval_at(f, x + h) - eval_at(f, x - h)) / (2 * h);
    double dx = elem(&w->tdy[d], i) * g * df;
    double gy = elem(&w->ty[d], i), gdx = elem(&w->tdx[d], i);
    if (!close_to(gy, y, tol_y) || !close_to(gdx, dx, tol_dx)) {
      fprintf(stderr, "bench: %s: at %zu x=%.9g: y %.9g (want %.9g), "
              "dx %.9g (want %.9g)\n", label, i, x, gy, y, gdx, dx);
      bad = 1;
    }
  }
  double sg = 0, sb = 0;
  for (int64_t r = 0; r < w->rows; r++) {
    size_t i = (size_t)r * (size_t)w->cols;
    sg += elem(&w->tdy[d], i) * eval_at(f, elem(&w->tx[d], i));
    sb += elem(&w->tdy[d], i);
  }
  double tol = 1e-6 * (double)w->rows; /* float sums of rows terms */
  if (fabs(w->dgamma[0] - sg) > tol || fabs(w->dbeta[0] - sb) > tol) {
    fprintf(stderr, "bench: %s: dgamma[0] %.9g (want %.9g), dbeta[0] %.9g "
            "(want %.9g)\n", label, w->dgamma[0], sg, w->dbeta[0], sb);
    bad = 1;
  }
  if (bad)
    die("a kernel's result is wrong; its timing would mean nothing");
}

/* ---------------------------------------------------- the measurement */

typedef struct result {
  const char *fn;
  dnc_dtype dtype;
  int threads;
  double copy_ms, fwd_ms, fwdbwd_ms; /* medians */
} result;

/* The copy of x to y in dtype d: the same bytes the forward moves. */
static double time_copy(copy_team *team, workload *w, int d)
{
  double t0 = now_ms();
  copy_team_run(team, w->ty[d].data, w->tx[d].data,
                w->n * dtype_size(dtypes[d]));
  return now_ms() - t0;
}

static double time_forward(const dnc_function *f, workload *w, int d)
{
  double t0 = now_ms();
  run_forward(f, w, d);
  return now_ms() - t0;
}

static double time_forward_backward(const dnc_function *f, workload *w, int d)
{
  double t0 = now_ms();
  run_forward_backward(f, w, d);
  return now_ms() - t0;
}

/* One warm-up of each (the kernels are compiled on first use, and the
 * warm-up's results are checked), then reps rounds of copy, forward and
 * forward+backward. Odd rounds run in the reverse order, so that neither
 * the copy nor a kernel always follows the other and inherits its caches
 * or clock state. */
static result measure(const dnc_function *f, const char *fn, int d,
                      int threads, copy_team *team, workload *w, int reps)
{
  memset(w->dgamma, 0, (size_t)w->cols * sizeof(float));
  memset(w->dbeta, 0, (size_t)w->cols * sizeof(float));
  time_copy(team, w, d);
  run_forward_backward(f, w, d);
  char label[64];
  snprintf(label, sizeof label, "%s/%s/%d threads", fn,
           dnc_dtype_name(dtypes[d]), threads);
  spot_check(f, w, d, label);

  double *copy = malloc((size_t)reps * sizeof *copy);
  double *fwd = malloc((size_t)reps * sizeof *fwd);
  double *fwdbwd = malloc((size_t)reps * sizeof *fwdbwd);
  if (!copy || !fwd || !fwdbwd)
    die("out of memory");
  for (int r = 0; r < reps; r++) {
    if (r % 2 == 0) {
      copy[r] = time_copy(team, w, d);
      fwd[r] = time_forward(f, w, d);
      fwdbwd[r] = time_forward_backward(f, w, d);
    } else {
      fwdbwd[r] = time_forward_backward(f, w, d);
      fwd[r] = time_forward(f, w, d);
      copy[r] = time_copy(team, w, d);
    }
  }
  result res = {fn, dtypes[d], threads, median(copy, reps), median(fwd, reps),
                median(fwdbwd, reps)};
  free(copy);
  free(fwd);
  free(fwdbwd);
  return res;
}

static double cpu_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* the process's: a cold compile may generate the backward's code on a
 * second thread (compiler/jit.c, compile_object) */
static double process_cpu_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Median time of compiling one function's source into a fresh module and
 * JIT-compiling its f32 kernels (forward, backward and the layer forms),
 * and the same in the process's CPU time (*cpu), less sensitive than the
 * wall time to other processes on a shared machine. */
static double jit_latency_ms(dnc_context *ctx, const bench_func *bf, double *cpu)
{
  double t[JIT_REPS], c[JIT_REPS];
  for (int r = 0; r < JIT_REPS; r++) {
    dnc_module *m = NULL;
    dnc_kernels k;
    double t0 = now_ms(), c0 = process_cpu_ms();
    check(dnc_compile_string(ctx, bf->name, bf->source, strlen(bf->source), &m),
          "compile");
    const dnc_function *f = dnc_module_find(m, bf->name);
    if (!f)
      die("a compiled function is missing");
    check(dnc_function_kernels(f, DNC_F32, &k), "JIT compile");
    t[r] = now_ms() - t0;
    c[r] = process_cpu_ms() - c0;
    dnc_module_free(m);
  }
  *cpu = median(c, JIT_REPS);
  return median(t, JIT_REPS);
}

/* `kernels --first-call`, run by cached_latency_ms in a new process with
 * the cache on: for each function, the time from its source to its f32
 * kernels (as jit_latency_ms measures), one line "name ms" each. The
 * context (LLVM's JIT, the thread pool) is made first and not counted. */
static int first_call(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  o.cache = 1;
  dnc_context *ctx;
  check(dnc_context_create(&o, &ctx), "context");
  for (int i = 0; i < NFUNCS; i++) {
    dnc_module *m = NULL;
    dnc_kernels k;
    double t0 = now_ms();
    check(dnc_compile_string(ctx, funcs[i].name, funcs[i].source,
                             strlen(funcs[i].source), &m), "compile");
    const dnc_function *f = dnc_module_find(m, funcs[i].name);
    if (!f)
      die("a compiled function is missing");
    check(dnc_function_kernels(f, DNC_F32, &k), "JIT compile");
    printf("%s %.4f\n", funcs[i].name, now_ms() - t0);
    dnc_module_free(m);
  }
  dnc_context_free(ctx);
  return 0;
}

/* Each function's median first-call time over CACHED_REPS new processes
 * whose kernels are in a cache (a temporary directory, filled by one
 * process before). */
static void cached_latency_ms(double *ms)
{
  char dir[] = "/tmp/dnc-bench-cache-XXXXXX";
  if (!mkdtemp(dir))
    die("cannot make a temporary cache directory");
  setenv("DNC_CACHE_DIR", dir, 1);
  char self[4096], cmd[4200];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || n >= (ssize_t)sizeof self - 1)
    die("cannot find this program's path");
  self[n] = 0; /* readlink does not end it: strchr read past it */
  if (strchr(self, '\''))
    die("this program's path has a quote in it");
  snprintf(cmd, sizeof cmd, "exec '%s' --first-call", self);
  double t[NFUNCS][CACHED_REPS];
  for (int r = -1; r < CACHED_REPS; r++) {
    FILE *p = popen(cmd, "r");
    if (!p)
      die("cannot start a new process");
    char name[64];
    double v;
    for (int i = 0; i < NFUNCS; i++) {
      if (fscanf(p, "%63s %lf", name, &v) != 2 || strcmp(name, funcs[i].name))
        die("the first-call process gave no time");
      if (r >= 0)
        t[i][r] = v;
    }
    if (pclose(p) != 0)
      die("the first-call process failed");
  }
  for (int i = 0; i < NFUNCS; i++)
    ms[i] = median(t[i], CACHED_REPS);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench: could not remove %s\n", dir);
  unsetenv("DNC_CACHE_DIR");
}

/* The hand-written C layer of bench/peer.c against dnc's f32 kernels on
 * one thread (f from a one-thread context), forward + backward, reps
 * rounds alternating which runs first: the peer's median time over dnc's,
 * in this thread's CPU time (both run on this thread alone; on a shared
 * machine the wall time also counts other processes' turns).
 * The peer's y is checked against dnc's first (libmvec promises 4 ulp). */
static double peer_ratio(const dnc_function *f, int fi, workload *w, int reps)
{
  static const float params[NFUNCS][2] = {{0.5f, 0}, {0.5f, 0}, {301.1f, 0}};
  const float *p = params[fi];
  /* the peer's gradient arrays at a fixed place, 2 KiB into a page:
   * malloc'ed, they fell where the rest of the run's allocations left
   * room, and the peer's Derf took 81-82 ms in one build of dnc and
   * 94-102 ms in the next (likely its stores to dg and db aliasing its
   * loads of x and dy 4 KiB apart); placed here it takes 78-81 ms */
  size_t gbytes = ((size_t)w->cols * sizeof(float) + 4095) / 4096 * 4096 + 4096;
  char *gmem = aligned_alloc(4096, 2 * gbytes);
  if (!gmem)
    die("out of memory");
  float *dg = (float *)(gmem + 2048), *db = (float *)(gmem + gbytes + 2048);
  float dp[2];
  run_forward_backward(f, w, 0);
  float want[64];
  for (int k = 0; k < 64; k++)
    want[k] = w->y[(size_t)k * (w->n / 64)];
  peer_forward(fi, w->x, w->y, (long)w->rows, (long)w->cols, p, w->gamma, w->beta);
  for (int k = 0; k < 64; k++) {
    float got = w->y[(size_t)k * (w->n / 64)];
    if (!(fabsf(got - want[k]) <= 1e-5f + 1e-5f * fabsf(want[k])))
      die("the C peer's forward disagrees with dnc's");
  }
  double *tp = malloc((size_t)reps * sizeof *tp), *td = malloc((size_t)reps * sizeof *td);
  if (!tp || !td)
    die("out of memory");
  for (int r = 0; r < reps; r++) {
    for (int k = 0; k < 2; k++) {
      if ((k + r) % 2 == 0) {
        double t0 = cpu_ms();
        run_forward_backward(f, w, 0);
        td[r] = cpu_ms() - t0;
      } else {
        double t0 = cpu_ms();
        peer_forward(fi, w->x, w->y, (long)w->rows, (long)w->cols, p, w->gamma,
                     w->beta);
        peer_backward(fi, w->x, w->dy, w->dx, (long)w->rows, (long)w->cols, p,
                      w->gamma, dp, dg, db);
        tp[r] = cpu_ms() - t0;
      }
    }
  }
  double ratio = median(tp, reps) / median(td, reps);
  printf("  %-7s %9.2f %9.2f %9.2f\n", funcs[fi].name, median(tp, reps),
         median(td, reps), ratio);
  free(tp);
  free(td);
  free(gmem);
  return ratio;
}

/* ------------------------------------------------------------- output */

static dnc_context *context_with_threads(int threads)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = threads;
  o.cache = -1; /* cold compiles; the cached ones have their own processes */
  dnc_context *ctx;
  check(dnc_context_create(&o, &ctx), "context");
  return ctx;
}

/* All three functions in one module of ctx. */
static dnc_module *compile_all(dnc_context *ctx)
{
  char src[1024] = "";
  for (int i = 0; i < NFUNCS; i++)
    strcat(src, funcs[i].source);
  dnc_module *m = NULL;
  dnc_status st = dnc_compile_string(ctx, "bench", src, strlen(src), &m);
  if (st == DNC_ERR_SOURCE) {
    char diag[2048];
    dnc_module_format_diagnostics(m, diag, sizeof diag);
    fprintf(stderr, "%s", diag);
  }
  check(st, "compile");
  return m;
}

static void print_row(const result *r)
{
  printf("%-7s %-5s %7d %9.2f %8.2f %10.2f %11.2f %9.2f\n", r->fn,
         dnc_dtype_name(r->dtype), r->threads,
         r->fwd_ms, r->fwd_ms / r->copy_ms, r->fwdbwd_ms,
         r->fwdbwd_ms / r->copy_ms, r->copy_ms);
}

/* Keys name the thread count itself: t1 and t<all threads>. */
static void write_json(const char *path, const result *results, int nresults,
                       const double *jit_ms, const double *jit_cpu,
                       const double *cached_ms, const double *peer)
{
  make_parent_dirs(path);
  FILE *fp = fopen(path, "w");
  if (!fp) {
    fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  fprintf(fp, "{\n");
  for (int i = 0; i < nresults; i++) {
    const result *r = &results[i];
    const char *dt = dnc_dtype_name(r->dtype);
    fprintf(fp, "  \"%s/%s/t%d/fwd_over_copy\": %.4f,\n", r->fn, dt,
            r->threads, r->fwd_ms / r->copy_ms);
    fprintf(fp, "  \"%s/%s/t%d/fwdbwd_over_copy\": %.4f,\n", r->fn, dt,
            r->threads, r->fwdbwd_ms / r->copy_ms);
    /* the times themselves, for peers timed later in the same `make bench`
     * (bench/torch_eager.py) */
    fprintf(fp, "  \"%s/%s/t%d/fwdbwd_ms\": %.4f,\n", r->fn, dt,
            r->threads, r->fwdbwd_ms);
  }
  for (int i = 0; i < NFUNCS; i++)
    fprintf(fp, "  \"jit_ms/%s\": %.3f,\n  \"jit_cpu_ms/%s\": %.3f,\n",
            funcs[i].name, jit_ms[i], funcs[i].name, jit_cpu[i]);
  for (int i = 0; i < NFUNCS; i++)
    fprintf(fp, "  \"peer_c/%s/fwdbwd_vs_dnc\": %.4f,\n", funcs[i].name, peer[i]);
  for (int i = 0; i < NFUNCS; i++)
    fprintf(fp, "  \"jit_cached_ms/%s\": %.4f%s\n", funcs[i].name, cached_ms[i],
            i + 1 < NFUNCS ? "," : "");
  fprintf(fp, "}\n");
  if (fclose(fp) != 0)
    die("cannot finish writing the JSON");
}

/* The table: each function in each dtype on 1 thread, then on all of
 * them; results[(i * NDTYPES + d) * 2 + t]. */
static void run_table(dnc_context *const ctx[2], dnc_module *const mod[2],
                      copy_team team[2], workload *w, int reps,
                      result *results)
{
  printf("fn      dtype threads    fwd ms fwd/copy  fwdbwd ms fwdbwd/copy"
         "   copy ms\n");
  for (int i = 0; i < NFUNCS; i++) {
    for (int d = 0; d < NDTYPES; d++) {
      for (int t = 0; t < 2; t++) {
        const dnc_function *f = dnc_module_find(mod[t], funcs[i].name);
        if (!f)
          die("a compiled function is missing");
        result *r = &results[(i * NDTYPES + d) * 2 + t];
        *r = measure(f, funcs[i].name, d, dnc_context_threads(ctx[t]),
                     &team[t], w, reps);
        print_row(r);
        fflush(stdout);
      }
    }
  }
}

int main(int argc, char **argv)
{
  if (argc == 2 && !strcmp(argv[1], "--first-call"))
    return first_call();
  if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
    /* an option is not an output file name (--help had been one) */
    fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
            "usage: %s [OUT.json]  (default build/bench/kernels.json; "
            "DNC_BENCH_ROWS, DNC_BENCH_COLS, DNC_BENCH_REPS)\n", argv[0]);
    return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
  }
  const char *out = argc > 1 ? argv[1] : "build/bench/kernels.json";
  int64_t rows = env_long("DNC_BENCH_ROWS", DEFAULT_ROWS, 1L << 24);
  int64_t cols = env_long("DNC_BENCH_COLS", DEFAULT_COLS, 1L << 24);
  int reps = (int)env_long("DNC_BENCH_REPS", DEFAULT_REPS, 1000);
  if (rows * cols > (1LL << 31)) /* four tensors of 8 GiB each */
    die("DNC_BENCH_ROWS * DNC_BENCH_COLS is over 2^31 elements");

  dnc_context *ctx[2] = {context_with_threads(1), context_with_threads(0)};
  int tmax = dnc_context_threads(ctx[1]);
  dnc_module *mod[2] = {compile_all(ctx[0]), compile_all(ctx[1])};
  copy_team team[2];
  copy_team_init(&team[0], 1);
  copy_team_init(&team[1], tmax);
  workload w;
  workload_init(&w, rows, cols);

  printf("dnc %s kernels: cpu %s, %d-bit vectors, %d threads\n",
         dnc_version(), dnc_context_cpu(ctx[0]),
         dnc_context_vector_bits(ctx[0]), tmax);
  printf("layer [%lld x %lld] (%.1f MiB per f32 tensor), median of %d, "
         "ratios to a copy of the same bytes on as many threads\n\n",
         (long long)rows, (long long)cols,
         (double)w.n * sizeof(float) / (1 << 20), reps);
  result results[2 * NDTYPES * NFUNCS];
  run_table(ctx, mod, team, &w, reps, results);

  double peer[NFUNCS];
  printf("\nhand-written C layer (bench/peer.c: gcc -O3 -march=native "
         "-ffast-math, libmvec), f32, 1 thread, forward + backward, CPU time, median of %d\n"
         "fn         peer ms    dnc ms  peer/dnc\n", reps);
  for (int i = 0; i < NFUNCS; i++)
    peer[i] = peer_ratio(dnc_module_find(mod[0], funcs[i].name), i, &w, reps);

  double jit_ms[NFUNCS];
  double jit_cpu[NFUNCS];
  printf("\nJIT compile, f32 forward + backward + layer kernels "
         "(median of %d, ms; wall and the process's CPU time):\n", JIT_REPS);
  /* a context of its own: ctx[0] has these kernels linked already */
  dnc_context *jctx = context_with_threads(1);
  for (int i = 0; i < NFUNCS; i++) {
    jit_ms[i] = jit_latency_ms(jctx, &funcs[i], &jit_cpu[i]);
    printf("  %-7s %8.2f %8.2f\n", funcs[i].name, jit_ms[i], jit_cpu[i]);
  }
  dnc_context_free(jctx);
  double cached_ms[NFUNCS];
  cached_latency_ms(cached_ms);
  printf("\nThe same from the kernel cache, first call in a new process "
         "(median of %d processes, ms):\n", CACHED_REPS);
  for (int i = 0; i < NFUNCS; i++)
    printf("  %-7s %8.3f\n", funcs[i].name, cached_ms[i]);
  write_json(out, results, 2 * NDTYPES * NFUNCS, jit_ms, jit_cpu, cached_ms, peer);
  printf("\nwrote %s\n", out);

  workload_free(&w);
  for (int t = 0; t < 2; t++) {
    copy_team_free(&team[t]);
    dnc_module_free(mod[t]);
    dnc_context_free(ctx[t]);
  }
  return 0;
}
