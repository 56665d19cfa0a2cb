/*
 * test_concurrency.c - compiling and calling from 8 threads at once: each
 * thread compiles its own module (same function names, so symbol names
 * must be unique per module) in one shared context and runs its kernels on
 * the shared thread pool, while all threads also ask one shared module for
 * the same kernels (compiled once, on first use) and call them, and fit
 * the shared module's derf by least squares (dnc_function_fit, whose
 * derivatives grow the module as compiling does). Every result is checked
 * against the C evaluation, every fit against the parameters that made
 * its points. `make tsan` runs this under
 * ThreadSanitizer.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
  dnc_prog *pr = dnc_rt_prog(owner->m, fn->body, 0, 0, jm_fma);
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
  return done_testing();
}
