/*
 * test_threads_p10.c - an embedder's threads: 8 threads at once, on one
 * shared context, each compile the same source (their own module), call
 * every kernel form of a shared module's functions on first use (the
 * first calls race to compile them), take the raw kernels, refuse bad
 * arguments (dnc_last_error() is per thread), and on contexts of their
 * own; then the shared context is freed while its modules are still in
 * use by the other threads. `make SANITIZE=thread build/tsan/tests/
 * test_threads_p10` runs it under ThreadSanitizer.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnc.h"
#include "tap.h"

static const char *const src =
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
    "fn derf(x; alpha = 0.5, s[] = 0) = erf(alpha * x + s)\n"
    "fn dyisru(x; beta = 3) = x / sqrt(beta + x^2)\n";

enum { THREADS = 8, ROWS = 33, COLS = 70, ROUNDS = 3 };

static dnc_context *shared_ctx;
static dnc_module *shared_mod;
static pthread_barrier_t start;

typedef struct job {
  int id;
  int bad;
  char why[200];
} job;

#define FAIL(...)                                                          \
  do {                                                                     \
    if (!j->bad)                                                           \
      snprintf(j->why, sizeof j->why, __VA_ARGS__);                        \
    j->bad++;                                                              \
  } while (0)

/* y = f(x) by the kernels (every form and the raw kernel) in dtype f32 and
 * f64, against the interpreter */
static void call_all(job *j, const dnc_function *f)
{
  float x[ROWS * COLS], y[ROWS * COLS], dy[ROWS * COLS], dx[ROWS * COLS];
  double xd[ROWS * COLS], yd[ROWS * COLS], ref[ROWS * COLS];
  for (int i = 0; i < ROWS * COLS; i++) {
    x[i] = (float)((i * 37 % 101) - 50) / 13.0f;
    xd[i] = x[i];
    dy[i] = 1;
  }
  dnc_function_eval(f, xd, ref, ROWS * COLS, NULL);
  dnc_tensor tx = {x, DNC_F32, ROWS, COLS, 0}, ty = {y, DNC_F32, ROWS, COLS, 0};
  dnc_tensor tdy = {dy, DNC_F32, ROWS, COLS, 0}, tdx = {dx, DNC_F32, ROWS, COLS, 0};
  dnc_tensor txd = {xd, DNC_F64, ROWS, COLS, 0}, tyd = {yd, DNC_F64, ROWS, COLS, 0};
  if (dnc_forward(f, &tx, &ty, NULL) != DNC_OK)
    FAIL("%s forward: %s", dnc_function_name(f), dnc_last_error());
  for (int i = 0; i < ROWS * COLS; i++)
    if (fabs(y[i] - ref[i]) > 1e-6) {
      FAIL("%s forward f32 [%d]: %g, not %g", dnc_function_name(f), i, y[i], ref[i]);
      break;
    }
  if (dnc_forward(f, &txd, &tyd, NULL) != DNC_OK)
    FAIL("%s forward f64: %s", dnc_function_name(f), dnc_last_error());
  for (int i = 0; i < ROWS * COLS; i++)
    if (fabs(yd[i] - ref[i]) > 1e-14) {
      FAIL("%s forward f64 [%d]", dnc_function_name(f), i);
      break;
    }
  double dp[2] = {0, 0};
  if (dnc_backward(f, &tx, &tdy, &tdx, NULL, dp) != DNC_OK)
    FAIL("%s backward: %s", dnc_function_name(f), dnc_last_error());
  float gamma[COLS], dgamma[COLS] = {0}, dbeta[COLS] = {0};
  for (int c = 0; c < COLS; c++)
    gamma[c] = 1;
  dnc_layer layer = {.gamma = gamma};
  dnc_layer_grad grad = {.gamma = dgamma, .beta = dbeta};
  if (dnc_layer_forward(f, &tx, &ty, &layer) != DNC_OK ||
      dnc_layer_backward(f, &tx, &tdy, &tdx, &layer, &grad) != DNC_OK)
    FAIL("%s layer: %s", dnc_function_name(f), dnc_last_error());
  for (int i = 0; i < ROWS * COLS; i++)
    if (fabs(y[i] - ref[i]) > 1e-6) {
      FAIL("%s layer forward [%d]", dnc_function_name(f), i);
      break;
    }
  for (int c = 0; c < COLS; c++)
    if (dbeta[c] != ROWS) {
      FAIL("%s dbeta[%d] = %g, not %d", dnc_function_name(f), c, dbeta[c], ROWS);
      break;
    }
  dnc_kernels k;
  if (dnc_function_kernels(f, DNC_F32, &k) != DNC_OK)
    FAIL("%s kernels: %s", dnc_function_name(f), dnc_last_error());
  else {
    double p[2];
    for (int i = 0; i < dnc_function_param_count(f); i++) {
      dnc_param_info pi;
      dnc_function_param(f, i, &pi);
      p[i] = pi.default_value;
    }
    k.forward(x, y, ROWS * COLS, p);
    for (int i = 0; i < ROWS * COLS; i++)
      if (fabs(y[i] - ref[i]) > 1e-6) {
        FAIL("%s raw forward [%d]", dnc_function_name(f), i);
        break;
      }
  }
}

/* each thread's own refusal, read back on that thread */
static void refuse(job *j)
{
  char want[64];
  snprintf(want, sizeof want, "channels is -%d,", j->id + 1);
  float x[4];
  dnc_tensor t = {x, DNC_F32, 1, 4, 0};
  const dnc_function *f = dnc_module_find(shared_mod, "dyt");
  for (int r = 0; r < 50; r++) {
    if (dnc_layer_forward_cm(f, &t, &t, -(j->id + 1), NULL) != DNC_ERR_ARGUMENT ||
        !strstr(dnc_last_error(), want)) {
      FAIL("thread %d read another thread's error: %s", j->id, dnc_last_error());
      return;
    }
  }
}

static void *worker(void *arg)
{
  job *j = arg;
  pthread_barrier_wait(&start);
  for (int r = 0; r < ROUNDS; r++) {
    /* the shared module's functions: the first calls compile them */
    for (int i = 0; i < dnc_module_function_count(shared_mod); i++)
      call_all(j, dnc_module_function(shared_mod, (i + j->id) % 3));
    /* a module of its own in the shared context */
    dnc_module *m;
    if (dnc_compile_string(shared_ctx, "own.dn", src, strlen(src), &m) != DNC_OK)
      FAIL("compile in the shared context");
    else {
      call_all(j, dnc_module_find(m, "derf"));
      dnc_module_free(m);
    }
    refuse(j);
    /* a context of its own */
    dnc_options o;
    dnc_options_init(&o);
    o.threads = 1 + j->id % 3;
    dnc_context *c;
    if (dnc_context_create(&o, &c) != DNC_OK ||
        dnc_compile_string(c, "mine.dn", src, strlen(src), &m) != DNC_OK) {
      FAIL("own context: %s", dnc_last_error());
      continue;
    }
    dnc_context_free(c); /* the module keeps it alive */
    call_all(j, dnc_module_find(m, "dyisru"));
    dnc_module_free(m);
  }
  return NULL;
}

/* fork() while another thread compiles: the child compiles and runs in
 * the context it inherited (docs/c-api.md allows it). A child had waited
 * for ever on the JIT's lock, held by the parent's compiling thread at
 * the fork (2 of 60 here); fork now waits for compiles in progress
 * (api.c, the fork gate). */
static dnc_context *fork_ctx;
static atomic_int fork_stop;

static void *compile_loop(void *arg)
{
  (void)arg;
  for (int i = 0; !atomic_load(&fork_stop); i++) {
    char s[128];
    snprintf(s, sizeof s, "fn g(x; a = %d) = tanh(a * x) + sin(%d * x)",
             i + 1, i + 2);
    dnc_module *m;
    if (dnc_compile_string(fork_ctx, NULL, s, strlen(s), &m) != DNC_OK)
      continue;
    dnc_kernels k;
    dnc_function_kernels(dnc_module_find(m, "g"), (dnc_dtype)(i % 4), &k);
    dnc_module_free(m);
  }
  return NULL;
}

static void test_fork_while_compiling(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.cache = -1; /* every compile a cold one, the longest */
  o.threads = 2;
  if (dnc_context_create(&o, &fork_ctx) != DNC_OK) {
    ok(0, "fork: a context: %s", dnc_last_error());
    return;
  }
  pthread_t t;
  pthread_create(&t, NULL, compile_loop, NULL);
  int hung = 0, failed = 0;
  for (int r = 0; r < 24; r++) {
    usleep(15000 + (unsigned)(r * 7919) % 60000);
    pid_t p = fork();
    if (p == 0) {
      alarm(60);
      char s[64];
      snprintf(s, sizeof s, "fn h(x) = erf(x) * %d", r + 3);
      dnc_module *m;
      float x[4] = {0.5f, 1, 2, 3}, y[4];
      dnc_tensor a = {x, DNC_F32, 1, 4, 0}, b = {y, DNC_F32, 1, 4, 0};
      int good = dnc_compile_string(fork_ctx, NULL, s, strlen(s), &m) ==
                     DNC_OK &&
                 dnc_forward(dnc_module_find(m, "h"), &a, &b, NULL) == DNC_OK &&
                 fabsf(y[1] - erff(1) * (float)(r + 3)) < 1e-5f;
      _exit(good ? 0 : 1);
    }
    int ws = 0;
    if (p < 0 || waitpid(p, &ws, 0) != p)
      failed++;
    else if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM)
      hung++;
    else if (WIFSIGNALED(ws))
      failed++;
    else if (WEXITSTATUS(ws))
      failed++;
  }
  atomic_store(&fork_stop, 1);
  pthread_join(t, NULL);
  ok(hung == 0 && failed == 0, "fork while another thread compiles: 24 "
     "children compile and run (%d hung, %d failed)", hung, failed);
  dnc_context_free(fork_ctx);
}

int main(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 3;
  if (dnc_context_create(&o, &shared_ctx) != DNC_OK ||
      dnc_compile_string(shared_ctx, "shared.dn", src, strlen(src), &shared_mod) != DNC_OK) {
    printf("Bail out! %s\n", dnc_last_error());
    return 1;
  }
  pthread_barrier_init(&start, NULL, THREADS);
  pthread_t th[THREADS];
  job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (job){.id = i};
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    ok(!jobs[i].bad, "thread %d: every call right%s%s", i,
       jobs[i].bad ? ": " : "", jobs[i].why);
  }
  dnc_kernels a, b;
  const dnc_function *f = dnc_module_find(shared_mod, "dyt");
  ok(dnc_function_kernels(f, DNC_F32, &a) == DNC_OK &&
         dnc_function_kernels(f, DNC_F32, &b) == DNC_OK && a.forward == b.forward,
     "the shared module's kernels were compiled once");
  /* the handle goes first, the module after: it keeps working */
  dnc_context_free(shared_ctx);
  job j0 = {0};
  call_all(&j0, dnc_module_find(shared_mod, "derf"));
  ok(!j0.bad, "a module outlives its freed context%s%s", j0.bad ? ": " : "", j0.why);
  dnc_module_free(shared_mod);
  test_fork_while_compiling();
  done_testing();
}
