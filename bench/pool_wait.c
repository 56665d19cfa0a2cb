/*
 * pool_wait.c - what waking the thread pool's threads costs on calls of a
 * training step's size: DyT's layer forward + backward (f32, gamma and
 * beta, every gradient) on [rows x 512], steps back to back, on two
 * contexts of the same thread count: one whose waiting threads spin for
 * a while before they sleep (the default, runtime/pool.c), one made with
 * $DNC_SPIN_US=0, whose threads sleep at once (the pool before it spun).
 * The same process alternates blocks of 10 steps on each, 2 ms apart (so
 * that the other pool's threads have gone to sleep), DNC_BENCH_REPS
 * blocks each (default 40); the figure is the median step without
 * spinning over the median step with it.
 *
 *   build/bench/pool_wait [OUT.json]  adds "pool/<rows>x512/nospin_over_spin"
 *                                     to the JSON object in OUT.json
 *
 * Threads: $DNC_NUM_THREADS, else every CPU; with 1 there is nothing to
 * compare.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnc.h"
#include "bench.h"

enum { COLS = 512, BLOCK_STEPS = 10 };

typedef struct step {
  const dnc_function *f;
  dnc_tensor x, y, dy, dx;
  dnc_layer L;
  dnc_layer_grad G;
} step;

static double run(const step *s)
{
  double t = bench_now();
  if (dnc_layer_forward(s->f, &s->x, &s->y, &s->L) != DNC_OK ||
      dnc_layer_backward(s->f, &s->x, &s->dy, &s->dx, &s->L, &s->G) != DNC_OK) {
    fprintf(stderr, "pool_wait: a layer call failed\n");
    exit(1);
  }
  return bench_now() - t;
}

static const dnc_function *dyt(dnc_context *ctx, dnc_module **m)
{
  static const char src[] = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
  if (dnc_compile_string(ctx, "dyt.dn", src, strlen(src), m) != DNC_OK) {
    fprintf(stderr, "pool_wait: dyt does not compile\n");
    exit(1);
  }
  return dnc_module_find(*m, "dyt");
}

int main(int argc, char **argv)
{
  const char *env = getenv("DNC_BENCH_REPS");
  int reps = env && atoi(env) > 0 ? atoi(env) : 40;
  dnc_options o;
  dnc_options_init(&o);
  o.cache = -1;
  dnc_context *spin, *nospin;
  const char *user = getenv("DNC_SPIN_US");
  char *saved = user ? strdup(user) : NULL;
  unsetenv("DNC_SPIN_US");
  int made = dnc_context_create(&o, &spin) == DNC_OK;
  setenv("DNC_SPIN_US", "0", 1);
  made = made && dnc_context_create(&o, &nospin) == DNC_OK;
  if (saved)
    setenv("DNC_SPIN_US", saved, 1);
  else
    unsetenv("DNC_SPIN_US");
  free(saved);
  if (!made) {
    fprintf(stderr, "pool_wait: no context: %s\n", dnc_last_error());
    return 1;
  }
  int threads = dnc_context_threads(spin);
  if (threads < 2) {
    printf("pool_wait: one thread, nothing to compare\n");
    return 0;
  }
  dnc_module *m1, *m2;
  const dnc_function *f_spin = dyt(spin, &m1), *f_nospin = dyt(nospin, &m2);
  static const long shapes[] = {1024, 4096};
  int n_steps = reps * BLOCK_STEPS;
  double *t_spin = malloc(sizeof(double) * (size_t)n_steps);
  double *t_nospin = malloc(sizeof(double) * (size_t)n_steps);
  printf("DyT layer forward + backward, f32, %d threads: threads that sleep "
         "at once over threads that spin first\n", threads);
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    int64_t rows = shapes[k], n = rows * COLS;
    float *buf = malloc(sizeof(float) * (size_t)(4 * n + 4 * COLS));
    if (!buf || !t_spin || !t_nospin)
      return 1;
    float *x = buf, *y = x + n, *dy = y + n, *dx = dy + n, *g = dx + n;
    float *b = g + COLS, *dg = b + COLS, *db = dg + COLS;
    for (int64_t i = 0; i < n; i++) {
      x[i] = (float)((i * 7919) % 2001 - 1000) / 250.0f;
      dy[i] = (float)((i * 104729) % 2001 - 1000) / 1000.0f;
    }
    for (int c = 0; c < COLS; c++)
      g[c] = 1.0f, b[c] = 0.0f, dg[c] = db[c] = 0.0f;
    double dalpha = 0;
    step s = {f_spin,
              {x, DNC_F32, rows, COLS, 0},
              {y, DNC_F32, rows, COLS, 0},
              {dy, DNC_F32, rows, COLS, 0},
              {dx, DNC_F32, rows, COLS, 0},
              {NULL, NULL, g, b},
              {&dalpha, NULL, dg, db}};
    step s2 = s;
    s2.f = f_nospin;
    run(&s), run(&s2); /* compiled, touched */
    struct timespec gap = {0, 2000000};
    for (int r = 0, k = 0; r < reps; r++, k += BLOCK_STEPS)
      for (int half = 0; half < 2; half++) {
        int first = (r + half) % 2; /* which goes first alternates */
        nanosleep(&gap, NULL);
        for (int i = 0; i < BLOCK_STEPS; i++)
          (first ? t_spin : t_nospin)[k + i] = run(first ? &s : &s2);
      }
    double a = median(t_nospin, n_steps), c = median(t_spin, n_steps);
    printf("  [%lld x %d]  sleeping %.3f ms  spinning %.3f ms  ratio %.2f\n",
           (long long)rows, COLS, a * 1e3, c * 1e3, a / c);
    char key[1][64];
    snprintf(key[0], sizeof key[0], "pool/%lldx%d/nospin_over_spin", (long long)rows, COLS);
    double v = a / c;
    if (argc > 1)
      json_add("pool_wait", argv[1], key, &v, 1);
    free(buf);
  }
  free(t_spin);
  free(t_nospin);
  dnc_module_free(m1);
  dnc_module_free(m2);
  dnc_context_free(spin);
  dnc_context_free(nospin);
  return 0;
}
