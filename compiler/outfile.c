/*
 * outfile.c - where an output file goes, and putting it there whole.
 *
 * An output is written to a temporary file and moved into place only when
 * complete, so a failure leaves the old file as it was. What is at the
 * output's name decides how:
 *   - nothing, or a regular file: rename(2) over it;
 *   - a symbolic link: its target, renamed over (the link stays a link);
 *   - a character device or FIFO (/dev/null, /dev/stdout): written in
 *     place, copied from the temporary once it is complete;
 *   - "-": standard output, written once complete (as cc -o -);
 *   - the file that standard output or error is (/dev/stdout when the
 *     shell redirected it to a file, or that file's own name): written to
 *     that descriptor, at its offset, once complete. Renaming over it, or
 *     opening it again at offset 0, would lose what the process and the
 *     shell write there before and after;
 *   - a directory, a socket, a dangling link: refused;
 *   - a file that is one of the inputs (the same device and inode): refused,
 *     so `dnc compile in.dn -o in.dn` cannot overwrite its source; an
 *     input "-" is the file standard input is, so neither can
 *     `dnc compile - -o in.dn < in.dn`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnc_int.h"

/* 1 or 2 when st is the file that standard output or error is open on */
static int std_stream_of(const struct stat *st)
{
  for (int fd = 1; fd <= 2; fd++) {
    struct stat ss;
    if (!fstat(fd, &ss) && ss.st_dev == st->st_dev && ss.st_ino == st->st_ino)
      return fd;
  }
  return 0;
}

int dnc_input_stat(const char *name, struct stat *st)
{
  return strcmp(name, "-") ? stat(name, st) : fstat(0, st);
}

int dnc_outpath_resolve(const char *path, const char *const *inputs,
                        int ninputs, dnc_outpath *o, char *err, size_t n)
{
  memset(o, 0, sizeof *o);
  struct stat ls, st;
  if (!strcmp(path, "-")) { /* standard output, as for cc -o - */
    o->target = strdup(path);
    o->in_place = 1;
    o->std_fd = 1;
  } else if (lstat(path, &ls)) {
    if (errno != ENOENT) {
      snprintf(err, n, "cannot write '%s': %s", path, strerror(errno));
      return -1;
    }
    o->target = strdup(path); /* a new file */
  } else if (stat(path, &st)) {
    snprintf(err, n, "cannot write '%s': it is a symbolic link to nothing "
             "(%s)", path, strerror(errno));
    return -1;
  } else if (S_ISDIR(st.st_mode)) {
    snprintf(err, n, "cannot write '%s': it is a directory", path);
    return -1;
  } else if ((o->std_fd = std_stream_of(&st))) {
    o->target = strdup(path);
    o->in_place = 1;
  } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    o->target = strdup(path);
    o->in_place = 1;
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(err, n, "cannot write '%s': it is not a regular file", path);
    return -1;
  } else {
    for (int i = 0; i < ninputs; i++) {
      /* "-" has no name to stat: standard input's own file, which
       * `dnc compile - -o in.dn < in.dn` had overwritten */
      struct stat is;
      if (inputs[i] && !dnc_input_stat(inputs[i], &is) &&
          is.st_dev == st.st_dev && is.st_ino == st.st_ino) {
        snprintf(err, n, "the output '%s' is the input '%s': refusing to "
                 "overwrite it", path,
                 strcmp(inputs[i], "-") ? inputs[i] : "<stdin>");
        return -1;
      }
    }
    o->target = S_ISLNK(ls.st_mode) ? realpath(path, NULL) : strdup(path);
  }
  if (!o->target)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return 0;
}

/* ---- temporaries: named with the pid, removed on a signal (when the
 * command asks) and, after SIGKILL, by the next run */

enum { NTEMPS = 64 };
static char *volatile temps[NTEMPS]; /* files, then directories */
static volatile sig_atomic_t tracking;

void dnc_temps_track(int on)
{
  tracking = on;
}

void dnc_temp_add(const char *path)
{
  if (!tracking)
    return;
  for (int i = 0; i < NTEMPS; i++)
    if (!temps[i]) {
      char *p = strdup(path);
      if (!p)
        dnc_die(__FILE__, __LINE__, "out of memory");
      temps[i] = p;
      return;
    }
}

void dnc_temp_forget(const char *path)
{
  for (int i = 0; i < NTEMPS; i++)
    if (temps[i] && !strcmp(temps[i], path)) {
      char *p = temps[i];
      temps[i] = NULL;
      free(p);
    }
}

/* One numbered series, "<prefix><i><suffix>" for i < count: the AOT's
 * objects, one per job, more than NTEMPS for a large library. */
static char series_prefix[PATH_MAX], series_suffix[16];
static volatile sig_atomic_t series_count;

void dnc_temp_add_series(const char *prefix, const char *suffix, int count)
{
  if (!tracking || strlen(prefix) + 12 + strlen(suffix) >= PATH_MAX ||
      strlen(suffix) >= sizeof series_suffix)
    return;
  series_count = 0;
  strcpy(series_prefix, prefix);
  strcpy(series_suffix, suffix);
  series_count = count;
}

/* async-signal-safe: unlink and rmdir only */
void dnc_temps_remove_now(void)
{
  for (int i = 0; i < NTEMPS; i++)
    if (temps[i])
      unlink(temps[i]);
  static char name[PATH_MAX];
  for (int i = 0; i < series_count; i++) {
    size_t n = strlen(series_prefix);
    memcpy(name, series_prefix, n);
    char digits[12];
    int nd = 0;
    for (int v = i; nd == 0 || v; v /= 10)
      digits[nd++] = (char)('0' + v % 10);
    while (nd)
      name[n++] = digits[--nd];
    strcpy(name + n, series_suffix);
    unlink(name);
  }
  for (int i = NTEMPS; i-- > 0;)
    if (temps[i])
      rmdir(temps[i]);
}

/* Entries of dir named prefix<pid>.XXXXXX whose process is gone: left by
 * a dnc killed with SIGKILL; removed (a directory with its files). */
void dnc_temps_sweep(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  size_t pl = strlen(prefix);
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, prefix, pl))
      continue;
    char *end;
    long pid = strtol(e->d_name + pl, &end, 10);
    if (end == e->d_name + pl || *end != '.' || strlen(end) != 7 ||
        pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    char *p;
    if (asprintf(&p, "%s/%s", dir, e->d_name) < 0)
      continue;
    if (unlink(p) && errno == EISDIR) {
      DIR *sub = opendir(p);
      for (struct dirent *f; sub && (f = readdir(sub));) {
        char *q;
        if (f->d_name[0] != '.' && asprintf(&q, "%s/%s", p, f->d_name) >= 0) {
          unlink(q);
          free(q);
        }
      }
      if (sub)
        closedir(sub);
      rmdir(p);
    }
    free(p);
  }
  closedir(d);
}

char *dnc_outpath_temp(const dnc_outpath *o)
{
  char *t = NULL, *dir = NULL, *prefix = NULL;
  int r;
  long pid = (long)getpid();
  if (o->in_place) {
    const char *base = getenv("TMPDIR");
    r = asprintf(&dir, "%s", base && *base ? base : "/tmp");
    r |= asprintf(&prefix, "dnc-out.");
  } else {
    const char *slash = strrchr(o->target, '/');
    r = slash ? asprintf(&dir, "%.*s", (int)(slash - o->target), o->target)
              : asprintf(&dir, ".");
    r |= asprintf(&prefix, ".%s.", slash ? slash + 1 : o->target);
  }
  if (r < 0 || asprintf(&t, "%s/%s%ld.XXXXXX", dir, prefix, pid) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  if (tracking)
    dnc_temps_sweep(dir, prefix);
  free(dir);
  free(prefix);
  int fd = mkstemp(t);
  if (fd < 0) {
    free(t);
    return NULL;
  }
  close(fd);
  dnc_temp_add(t);
  return t;
}

int dnc_past_fsize_limit(uint64_t n)
{
  struct rlimit rl;
  if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
      n > (uint64_t)rl.rlim_cur) {
    errno = EFBIG;
    return 1;
  }
  return 0;
}

int dnc_write_fd(int fd, const void *data, size_t n)
{
  const char *p = data;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (!w)
        errno = ENOSPC;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int dnc_write_whole(const char *path, const void *data, size_t n)
{
  if (dnc_past_fsize_limit(n)) /* an IR dump had ended the process */
    return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    return -1;
  int rc = dnc_write_fd(fd, data, n);
  int e = errno;
  if (close(fd) && !rc)
    rc = -1, e = errno;
  errno = e;
  return rc;
}

/* tmp's bytes into the device or FIFO o->target, or into standard output
 * or error (std_fd 1 or 2) after what stdio holds for it */
static int copy_in_place(const char *tmp, const char *target, int std_fd)
{
  if (std_fd && fflush(std_fd == 1 ? stdout : stderr))
    return -1;
  int in = open(tmp, O_RDONLY);
  int out = in < 0 ? -1 : std_fd ? std_fd : open(target, O_WRONLY);
  int rc = in < 0 || out < 0 ? -1 : 0;
  char buf[65536];
  for (ssize_t got; !rc && (got = read(in, buf, sizeof buf)) != 0;) {
    if (got < 0) {
      rc = -1;
      break;
    }
    rc = dnc_write_fd(out, buf, (size_t)got);
  }
  int e = errno;
  if (in >= 0)
    close(in);
  if (out >= 0 && !std_fd && close(out))
    rc = -1, e = errno;
  errno = e;
  return rc;
}

int dnc_outpath_commit(const dnc_outpath *o, const char *tmp)
{
  if (!o->in_place) {
    int rc = rename(tmp, o->target);
    if (!rc)
      dnc_temp_forget(tmp);
    return rc;
  }
  int rc = copy_in_place(tmp, o->target, o->std_fd);
  int e = errno;
  unlink(tmp);
  errno = e;
  return rc;
}

void dnc_outpath_free(dnc_outpath *o)
{
  free(o->target);
  o->target = NULL;
}
