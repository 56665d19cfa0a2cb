/*
 * json.h - the C benchmarks' results: "key": value pairs added to the JSON
 * object in a file (build/bench/kernels.json), as bench/results.py does
 * for the Python ones.
 */
#ifndef DNC_BENCH_JSON_H
#define DNC_BENCH_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds "key": value pairs to the JSON object in path (a new one if the
 * file is missing), rewriting it whole. */
static void json_add(const char *prog, const char *path, char keys[][64], const double *vals, int n)
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
