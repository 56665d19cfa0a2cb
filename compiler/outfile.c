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
 *   - a directory, a socket, a dangling link: refused;
 *   - a file that is one of the inputs (the same device and inode): refused,
 *     so `dnc compile in.dn -o in.dn` cannot overwrite its source.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnc_int.h"

int dnc_outpath_resolve(const char *path, const char *const *inputs,
                        int ninputs, dnc_outpath *o, char *err, size_t n)
{
  memset(o, 0, sizeof *o);
  struct stat ls, st;
  if (lstat(path, &ls)) {
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
  } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    o->target = strdup(path);
    o->in_place = 1;
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(err, n, "cannot write '%s': it is not a regular file", path);
    return -1;
  } else {
    for (int i = 0; i < ninputs; i++) {
      struct stat is;
      if (inputs[i] && !stat(inputs[i], &is) && is.st_dev == st.st_dev &&
          is.st_ino == st.st_ino) {
        snprintf(err, n, "the output '%s' is the input '%s': refusing to "
                 "overwrite it", path, inputs[i]);
        return -1;
      }
    }
    o->target = S_ISLNK(ls.st_mode) ? realpath(path, NULL) : strdup(path);
  }
  if (!o->target)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return 0;
}

char *dnc_outpath_temp(const dnc_outpath *o)
{
  char *t = NULL;
  int r;
  if (o->in_place) {
    const char *base = getenv("TMPDIR");
    r = asprintf(&t, "%s/dnc-out.XXXXXX", base && *base ? base : "/tmp");
  } else {
    const char *slash = strrchr(o->target, '/');
    r = slash ? asprintf(&t, "%.*s/.%s.XXXXXX", (int)(slash - o->target),
                         o->target, slash + 1)
              : asprintf(&t, ".%s.XXXXXX", o->target);
  }
  if (r < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int fd = mkstemp(t);
  if (fd < 0) {
    free(t);
    return NULL;
  }
  close(fd);
  return t;
}

/* tmp's bytes into the device or FIFO o->target */
static int copy_in_place(const char *tmp, const char *target)
{
  int in = open(tmp, O_RDONLY), out = in < 0 ? -1 : open(target, O_WRONLY);
  int rc = in < 0 || out < 0 ? -1 : 0;
  char buf[65536];
  for (ssize_t got; !rc && (got = read(in, buf, sizeof buf)) != 0;) {
    if (got < 0) {
      rc = -1;
      break;
    }
    for (ssize_t put = 0, w; put < got && !rc; put += w)
      if ((w = write(out, buf + put, (size_t)(got - put))) < 0)
        rc = -1;
  }
  int e = errno;
  if (in >= 0)
    close(in);
  if (out >= 0 && close(out))
    rc = -1, e = errno;
  errno = e;
  return rc;
}

int dnc_outpath_commit(const dnc_outpath *o, const char *tmp)
{
  if (!o->in_place)
    return rename(tmp, o->target);
  int rc = copy_in_place(tmp, o->target);
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
