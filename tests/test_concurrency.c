/*
 * test_concurrency.c - compiling and calling from 8 threads at once: each
 * thread compiles its own module (same function names, so symbol names
 * must be unique per module) in one shared context and runs its kernels on
 * the shared thread pool, while all threads also ask one shared module for
 * the same kernels (compiled once, on first use) and call them, and fit
 * the shared module's derf by least squares (dnc_function_fit, whose
 * derivatives grow the module as compiling does). Every result is checked
 * against the C evaluation, every fit against the parameters that made
 * its points. Then one caller posts layer jobs to a pool whose threads
 * spin a while before they sleep (pool.c), at gaps that find them
 * spinning, asleep, and freed right after a call. `make tsan` runs this
 * under ThreadSanitizer.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jitmath.h"
#include "runtime.h"
#include "tap.h"

enum { THREADS = 8, N = 200003 };

static dnc_context *ctx;
static dnc_module *shared;

typedef struct result {
  int id;
  int compiled, own_bad, shared_bad, calls_failed, fits_bad;
} result;

/* derf fitted to points of derf(x; 1.3, -0.2): 0 when recovered */
static int fit_shared(void)
{
  const dnc_function *f = dnc_module_find(shared, "derf");
  enum { NP = 61 };
  double x[NP], y[NP], truth[2] = {1.3, -0.2};
  for (int i = 0; i < NP; i++)
    x[i] = -3 + 0.1 * i;
  dnc_function_eval(f, x, y, NP, truth);
  dnc_fit_result r;
  if (dnc_function_fit(f, x, y, NP, NULL, NULL, NULL, &r) != DNC_OK)
    return 1;
  int bad = r.status != DNC_FIT_OK || fabs(r.value[0] - 1.3) > 1e-9 ||
            fabs(r.value[1] + 0.2) > 1e-9;
  dnc_fit_result_free(&r);
  return bad;
}

static int check(const dnc_function *f, float scale)
{
  int bad = 0;
  dnc_fn *fn = (dnc_fn *)f;
  float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
  for (int i = 0; i < N; i++)
    x[i] = scale * (float)(i - N / 2) / (float)N;
  dnc_tensor tx = {x, DNC_F32, 1, N, 0}, ty = {y, DNC_F32, 1, N, 0};
  float p32[DNC_MAX_PARAMS];
  for (int k = 0; k < fn->nparams; k++)
    p32[k] = (float)fn->params[k].def;
  if (dnc_forward(f, &tx, &ty, NULL) != DNC_OK)
    bad = -1;
  /* f as the f32 kernels compute it; the module's DAG grows: its lock */
  dnc_module *owner = fn->owner;
  pthread_mutex_lock(&owner->lock);
  dnc_prog *pr = dnc_rt_prog(owner->m, fn->body, 0, 0, jm_target);
  pthread_mutex_unlock(&owner->lock);
  for (int i = 0; i < N && bad >= 0; i++) {
    float want = dnc_rt_eval_f32(pr, x[i], p32, jm_table);
    if (memcmp(&want, &y[i], 4) && !(isnan(want) && isnan(y[i])))
      bad++;
  }
  free(x);
  free(y);
  return bad;
}

static void *worker(void *arg)
{
  result *r = arg;
  char src[256];
  static const char *bodies[4] = {"tanh(a * x)", "erf(a * x + 0.25)",
                                  "x / sqrt(a + x^2)", "a * sigmoid(x) - x"};
  for (int round = 0; round < 3; round++) {
    int which = (r->id + round) % 4;
    snprintf(src, sizeof src, "fn g(x; a = %d.5) = %s\n", round + 1, bodies[which]);
    dnc_module *m;
    if (dnc_compile_string(ctx, "t.dn", src, strlen(src), &m) != DNC_OK) {
      dnc_module_free(m);
      continue;
    }
    r->compiled++;
    int b = check(dnc_module_find(m, "g"), 20);
    if (b < 0)
      r->calls_failed++;
    else
      r->own_bad += b;
    dnc_module_free(m);
    r->fits_bad += fit_shared();
    for (int k = 0; k < dnc_module_function_count(shared); k++) {
      b = check(dnc_module_function(shared, k), 8);
      if (b < 0)
        r->calls_failed++;
      else
        r->shared_bad += b;
    }
  }
  return NULL;
}

/* a layer backward of dyt on [R x C] with gamma: dx and dgamma */
enum { R = 300, C = 512 };
typedef struct layer_out {
  float dx[R * C];
  float dgamma[C], dbeta[C];
  double dalpha;
} layer_out;

static int layer_call(const dnc_function *f, const float *x, const float *dy,
                      const float *gamma, layer_out *o)
{
  memset(o, 0, sizeof *o);
  dnc_tensor tx = {(void *)x, DNC_F32, R, C, 0}, tdy = {(void *)dy, DNC_F32, R, C, 0},
             tdx = {o->dx, DNC_F32, R, C, 0};
  dnc_layer L = {NULL, NULL, gamma, NULL};
  dnc_layer_grad G = {&o->dalpha, NULL, o->dgamma, o->dbeta};
  return dnc_layer_backward(f, &tx, &tdy, &tdx, &L, &G) == DNC_OK;
}

static void pause_us(long us)
{
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

/* jobs posted after gaps of 0 to 3 ms, and a context freed right after a
 * call, while its threads spin (spin_us NULL: the default) or with
 * $DNC_SPIN_US=0, where they sleep at once: the same bits as one
 * thread's */
static void pool_waits(const float *x, const float *dy,
                       const float *gamma, const layer_out *ref, const char *spin_us)
{
  static const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
  static layer_out got;
  const char *how = spin_us ? "threads that sleep at once" : "spinning threads";
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 3;
  if (spin_us)
    setenv("DNC_SPIN_US", spin_us, 1);
  dnc_context *three;
  dnc_module *m3;
  int made = dnc_context_create(&o, &three) == DNC_OK;
  unsetenv("DNC_SPIN_US");
  made = made && dnc_compile_string(three, "p.dn", src, strlen(src), &m3) == DNC_OK;
  ok(made, "a context of 3 threads, %s", how);
  if (!made)
    return;
  static const long gaps[] = {0, 20, 150, 400, 3000, 0, 0, 1000};
  int calls = 0, same = 0;
  for (int round = 0; round < 5; round++)
    for (size_t g = 0; g < sizeof gaps / sizeof *gaps; g++) {
      pause_us(gaps[g]);
      calls += layer_call(dnc_module_find(m3, "dyt"), x, dy, gamma, &got);
      same += memcmp(&got, ref, sizeof got) == 0;
    }
  is_int(calls, 40, "40 calls on 3 %s after gaps of 0 to 3 ms", how);
  is_int(same, 40, "  each gives one thread's bits (dx, dalpha, dgamma, dbeta)");
  layer_call(dnc_module_find(m3, "dyt"), x, dy, gamma, &got);
  dnc_module_free(m3);
  dnc_context_free(three);
  ok(1, "  a context freed right after a call is freed");
}

/* fork()ed children of a process whose pool has just run a call (its
 * threads spinning, taking the lock to sleep, asleep): each computes a
 * call, alone, and frees the module and the context, within 10 s (a
 * child froze in dnc_context_free, joining threads that a child does not
 * have, and could in a call, on a lock a parent's thread held) */
static void fork_children(const float *x, const float *dy, const float *gamma,
                          const layer_out *ref)
{
  static const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
  static layer_out got;
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 3;
  dnc_context *three;
  dnc_module *m3;
  if (dnc_context_create(&o, &three) != DNC_OK ||
      dnc_compile_string(three, "p.dn", src, strlen(src), &m3) != DNC_OK) {
    ok(0, "a context of 3 threads to fork");
    return;
  }
  static const long gaps[] = {0, 30, 90, 120, 180, 250, 1000};
  int good = 0, n = 0;
  for (int round = 0; round < 3; round++)
    for (size_t g = 0; g < sizeof gaps / sizeof *gaps; g++, n++) {
      layer_call(dnc_module_find(m3, "dyt"), x, dy, gamma, &got);
      pause_us(gaps[g]);
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0) {
        alarm(10);
        int same = layer_call(dnc_module_find(m3, "dyt"), x, dy, gamma, &got) &&
                   memcmp(&got, ref, sizeof got) == 0;
        dnc_module_free(m3);
        dnc_context_free(three);
        _exit(same ? 0 : 1);
      }
      int st = 0;
      good += pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
              WEXITSTATUS(st) == 0;
    }
  is_int(good, n, "%d fork()ed children each compute one thread's bits and "
                  "free their context", n);
  dnc_module_free(m3);
  dnc_context_free(three);
}

/* $DNC_SPIN_US: an integer of microseconds from 0 to 100000, or refused */
static void spin_env(void)
{
  static const char *bad[] = {"abc", "-1", "100001", "5us", " 7", "1e3"};
  static const char *good[] = {"0", "250", "100000", ""};
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 2;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    dnc_context *c = NULL;
    setenv("DNC_SPIN_US", bad[i], 1);
    is_int(dnc_context_create(&o, &c), DNC_ERR_ARGUMENT, "$DNC_SPIN_US='%s' is refused", bad[i]);
    ok(!c && strstr(dnc_last_error(), "$DNC_SPIN_US is '") &&
           strstr(dnc_last_error(), "from 0 (no spinning) to 100000 microseconds"),
       "  naming it: %s", dnc_last_error());
  }
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    dnc_context *c = NULL;
    setenv("DNC_SPIN_US", good[i], 1);
    is_int(dnc_context_create(&o, &c), DNC_OK, "$DNC_SPIN_US='%s' is taken", good[i]);
    dnc_context_free(c);
  }
  unsetenv("DNC_SPIN_US");
}

static void pool_tests(void)
{
  static const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
  static float x[R * C], dy[R * C], gamma[C];
  static layer_out ref;
  for (int i = 0; i < R * C; i++) {
    x[i] = (float)((i * 7919LL) % 2001 - 1000) / 200.0f;
    dy[i] = (float)((i * 104729LL) % 2001 - 1000) / 1000.0f;
  }
  for (int c = 0; c < C; c++)
    gamma[c] = 1.0f + (float)c / C;
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  dnc_context *one;
  dnc_module *m1;
  int made = dnc_context_create(&o, &one) == DNC_OK &&
             dnc_compile_string(one, "p.dn", src, strlen(src), &m1) == DNC_OK;
  ok(made, "a context of 1 thread");
  if (!made)
    return;
  const dnc_function *f1 = dnc_module_find(m1, "dyt");
  ok(layer_call(f1, x, dy, gamma, &ref), "one thread's layer backward");
  pool_waits(x, dy, gamma, &ref, NULL);
  pool_waits(x, dy, gamma, &ref, "0");
  fork_children(x, dy, gamma, &ref);
  spin_env();
  dnc_module_free(m1);
  dnc_context_free(one);
}

int main(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 3;
  if (dnc_context_create(&o, &ctx) != DNC_OK) {
    printf("Bail out! no context: %s\n", dnc_last_error());
    return 1;
  }
  if (!jm_init(ctx)) {
    printf("Bail out! the vector math kernels do not compile\n");
    return 1;
  }
  const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
                    "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n"
                    "fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)\n";
  if (dnc_compile_string(ctx, "shared.dn", src, strlen(src), &shared) != DNC_OK) {
    printf("Bail out! the shared source does not compile\n");
    return 1;
  }
  pthread_t t[THREADS];
  result r[THREADS];
  memset(r, 0, sizeof r);
  for (int i = 0; i < THREADS; i++) {
    r[i].id = i;
    pthread_create(&t[i], NULL, worker, &r[i]);
  }
  int compiled = 0, own_bad = 0, shared_bad = 0, failed = 0, fits_bad = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    compiled += r[i].compiled;
    own_bad += r[i].own_bad;
    shared_bad += r[i].shared_bad;
    failed += r[i].calls_failed;
    fits_bad += r[i].fits_bad;
  }
  is_int(compiled, THREADS * 3, "8 threads each compiled 3 modules at once");
  is_int(failed, 0, "no kernel call failed");
  is_int(own_bad, 0, "each thread's own kernels give exact results");
  is_int(shared_bad, 0, "kernels of the shared module, first asked for by 8 "
                        "threads at once, give exact results");
  is_int(fits_bad, 0, "24 fits of the shared module's derf, alongside its "
                      "kernels' compiling, recover its parameters");
  dnc_kernels a, b;
  dnc_function_kernels(dnc_module_find(shared, "dyt"), DNC_F32, &a);
  dnc_function_kernels(dnc_module_find(shared, "dyt"), DNC_F32, &b);
  ok(a.forward == b.forward, "the shared module compiled dyt once");
  dnc_module_free(shared);
  jm_free();
  dnc_context_free(ctx);
  pool_tests();
  return done_testing();
}
