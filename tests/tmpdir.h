/*
 * tmpdir.h - temporary directories for the C tests: made under /tmp with
 * mkdtemp, removed with everything in them (subdirectories too; a link
 * is removed, never followed).
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

#endif
