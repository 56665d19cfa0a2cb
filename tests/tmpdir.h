/*
 * tmpdir.h - temporary directories for the C tests: made under /tmp with
 * mkdtemp, removed with everything in them (subdirectories too; a link
 * is removed, never followed), and the files in them read whole.
 */
#ifndef DNC_TMPDIR_H
#define DNC_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "/tmp/<prefix>-XXXXXX", made (malloc'd); aborts when it cannot be */
static inline char *tmpdir_make(const char *prefix)
{
  char *d = malloc(strlen(prefix) + 16);
  if (!d)
    abort();
  sprintf(d, "/tmp/%s-XXXXXX", prefix);
  if (!mkdtemp(d))
    abort();
  return d;
}

static inline void tmpdir_remove(const char *dir)
{
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      size_t n = strlen(dir) + strlen(e->d_name) + 2;
      char *p = malloc(n);
      if (!p)
        abort();
      snprintf(p, n, "%s/%s", dir, e->d_name);
      struct stat st;
      if (!lstat(p, &st) && S_ISDIR(st.st_mode))
        tmpdir_remove(p);
      else
        unlink(p);
      free(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* The contents of dir/name with a NUL after them (malloc'd; *len: their
 * length), or NULL where the file cannot be read. */
static inline char *tmpdir_read(const char *dir, const char *name, size_t *len)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      char *b = realloc(buf, 2 * cap + 1);
      if (!b)
        free(buf);
      buf = b;
      cap *= 2;
    }
  }
  fclose(f);
  if (!buf)
    abort();
  buf[n] = 0;
  *len = n;
  return buf;
}

#endif
