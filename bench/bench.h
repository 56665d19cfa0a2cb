/*
 * bench.h - what the C benchmarks share: the clocks, a library's symbols,
 * medians, and their results, "key": value pairs added to the JSON object
 * in a file (build/bench/kernels.json), as bench/results.py does for the
 * Python ones.
 */
#ifndef DNC_BENCH_H
#define DNC_BENCH_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* seconds on the monotonic clock */
static inline double bench_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* seconds of this thread's CPU time (what a best-of-rounds comparison of
 * two kernels on one thread reads: another process's time slices do not
 * count) */
static inline double bench_cpu_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* name in the library h (dlopen), or "PROG: NAME: why" and exit 1 */
static inline void *bench_sym(const char *prog, void *h, const char *name)
{
  void *p = dlsym(h, name);
  if (!p) {
    fprintf(stderr, "%s: %s: %s\n", prog, name, dlerror());
    exit(1);
  }
  return p;
}

static inline int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of v[0..n), n > 0; sorts v in place. */
static inline double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Adds "key": value pairs to the JSON object in path (a new one if the
 * file is missing), rewriting it whole. */
static inline void json_add(const char *prog, const char *path, char keys[][64], const double *vals, int n)
{
  char *old = NULL;
  size_t len = 0;
  FILE *f = fopen(path, "r");
  if (f) {
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    old = calloc(len + 1, 1);
    if (!old || fread(old, 1, len, f) != len)
      len = 0;
    fclose(f);
  }
  char *end = old && len ? strrchr(old, '}') : NULL;
  int first = 1;
  if (end) {
    *end = 0; /* keep what was there, up to the closing brace */
    for (char *q = end - 1; q >= old && (*q == ' ' || *q == '\n'); q--)
      *q = 0;
    first = strchr(old, ':') == NULL;
  }
  f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "%s: cannot write %s\n", prog, path);
    exit(1);
  }
  fputs(end ? old : "{", f);
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s\n  \"%s\": %.4f", first ? "" : ",", keys[i], vals[i]);
    first = 0;
  }
  fputs("\n}\n", f);
  if (fclose(f)) {
    fprintf(stderr, "%s: cannot write %s\n", prog, path);
    exit(1);
  }
  free(old);
}

#endif
