/*
 * kcache.c - the on-disk kernel cache: keys, entries, the directory.
 *
 * An entry holds the object code of one function's kernels in one dtype,
 * as the JIT (jit.c) emitted it, and is found by the SHA-256 of its key:
 * a text naming everything the code depends on (dnc's version and build,
 * LLVM's version, the target machine, the options, the dtype, and the
 * function's canonical DAG). The file is
 *
 *   "DNCKC\0\0\1"  magic and format version            8 bytes
 *   key length, object length (little-endian u64)      16 bytes
 *   SHA-256 of the key and the object together         32 bytes
 *   the key, then the object
 *
 * A reader accepts an entry only when it is a regular file of at most
 * 256 MiB (a FIFO or a device under its name is not waited on, a huge
 * file not read), owned by the process's effective user (another user's
 * file is never linked into this process), and its length, magic, key (compared
 * byte for byte, so a hash collision or an entry of another build is a
 * miss) and digest all match; anything else is reported as rejected, and
 * the JIT compiles and writes the entry again. A writer writes a
 * temporary file in the same directory and renames it into place, so
 * concurrent processes see either no entry or a whole one; an entry
 * larger than the process's file-size limit is not written (SIGXFSZ).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dnc_int.h"

/* ------------------------------------------------------------- SHA-256 */

typedef struct sha256 {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t nbuf;
} sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(sha256 *s, const unsigned char *p)
{
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4],
           f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) +
                  sha_k[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

static void sha_init(sha256 *s)
{
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->len = 0;
  s->nbuf = 0;
}

static void sha_update(sha256 *s, const void *data, size_t n)
{
  const unsigned char *p = data;
  s->len += n;
  while (n) {
    size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
    memcpy(s->buf + s->nbuf, p, k);
    s->nbuf += k;
    p += k;
    n -= k;
    if (s->nbuf == 64) {
      sha_block(s, s->buf);
      s->nbuf = 0;
    }
  }
}

static void sha_final(sha256 *s, unsigned char out[32])
{
  uint64_t bits = s->len * 8;
  unsigned char pad = 0x80;
  sha_update(s, &pad, 1);
  pad = 0;
  while (s->nbuf != 56)
    sha_update(s, &pad, 1);
  unsigned char l[8];
  for (int i = 0; i < 8; i++)
    l[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_update(s, l, 8);
  for (int i = 0; i < 8; i++)
    for (int k = 0; k < 4; k++)
      out[4 * i + k] = (unsigned char)(s->h[i] >> (24 - 8 * k));
}

void dnc_sha256(const void *p, size_t n, unsigned char out[32])
{
  sha256 s;
  sha_init(&s);
  sha_update(&s, p, n);
  sha_final(&s, out);
}

/* ----------------------------------------------------------------- keys */

typedef struct sbuf {
  char *s;
  size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0)
      dnc_die(__FILE__, __LINE__, "vsnprintf failed");
    if (b->s && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->n + (size_t)k)
      cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
      dnc_die(__FILE__, __LINE__, "out of memory");
    b->s = s;
    b->cap = cap;
  }
}

/* The DAG under f's body in a canonical order: operands before users,
 * first operand first, each node once; a node is "op operand-positions"
 * with constants as hexadecimal floats (exact) and parameters by index.
 * Two functions whose bodies are structurally equal get the same text
 * whatever their names, their module, or the order their nodes were
 * created in. */
static void key_dag(sbuf *b, const dnc_mod *m, const dnc_fn *f)
{
  uint32_t cap = m->dag.count + 1;
  uint32_t *pos = calloc(cap, sizeof *pos); /* 0: not yet written */
  const dnc_node **stack = malloc(sizeof *stack * cap);
  int *next = malloc(sizeof *next * cap);
  if (!pos || !stack || !next)
    dnc_die(__FILE__, __LINE__, "out of memory");
  uint32_t written = 0, sp = 0;
  stack[sp] = f->body;
  next[sp++] = 0;
  while (sp) {
    const dnc_node *e = stack[sp - 1];
    if (pos[e->id]) {
      sp--;
      continue;
    }
    if (next[sp - 1] < e->nargs) {
      const dnc_node *a = e->arg[next[sp - 1]++];
      if (!pos[a->id]) {
        DNC_ASSERT(sp < cap);
        stack[sp] = a;
        next[sp++] = 0;
      }
      continue;
    }
    pos[e->id] = ++written;
    sb_printf(b, "%s", dnc_ops[e->op].name);
    if (e->op == OP_CONST)
      sb_printf(b, " %a", e->value);
    else if (e->op == OP_PARAM)
      sb_printf(b, " p%d", e->param);
    for (int k = 0; k < e->nargs; k++)
      sb_printf(b, " %u", pos[e->arg[k]->id]);
    sb_printf(b, "\n");
    sp--;
  }
  free(pos);
  free(stack);
  free(next);
}

char *dnc_kcache_key(const dnc_mod *m, const dnc_fn *f, const char *dtype,
                     const char *target)
{
  sbuf b = {0};
  sb_printf(&b, "dnc kernel cache %d\n%sdtype %s\nforms fwd bwd layer_fwd "
            "layer_bwd\nparams %d", DNC_KCACHE_FORMAT, target, dtype,
            f->nparams);
  for (int i = 0; i < f->nparams; i++)
    sb_printf(&b, " %s", f->params[i].per_channel ? "c" : "s");
  sb_printf(&b, "\ndag\n");
  key_dag(&b, m, f);
  return b.s;
}

void dnc_kcache_name(const char *key, char hex[DNC_KCACHE_NAME_LEN + 1])
{
  unsigned char d[32];
  dnc_sha256(key, strlen(key), d);
  for (int i = 0; i < DNC_KCACHE_NAME_LEN / 2; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------ directory */

static char *path_join(const char *a, const char *b)
{
  size_t n = strlen(a) + strlen(b) + 2;
  char *s = malloc(n);
  if (!s)
    dnc_die(__FILE__, __LINE__, "out of memory");
  snprintf(s, n, "%s/%s", a, b);
  return s;
}

int dnc_kcache_enabled(int option)
{
  if (option)
    return option > 0;
  /* in any case: DNC_CACHE=False or OFF turned nothing off before */
  const char *e = getenv("DNC_CACHE");
  return !(e && (!strcmp(e, "0") || !strcasecmp(e, "off") ||
                 !strcasecmp(e, "no") || !strcasecmp(e, "false")));
}

char *dnc_kcache_dir(const char *option)
{
  if (option && *option)
    return path_join(option, "");
  const char *e = getenv("DNC_CACHE_DIR");
  if (e && *e)
    return path_join(e, "");
  /* XDG: a relative $XDG_CACHE_HOME is invalid and ignored */
  e = getenv("XDG_CACHE_HOME");
  if (e && *e == '/')
    return path_join(e, "dnc/");
  e = getenv("HOME");
  if (e && *e == '/')
    return path_join(e, ".cache/dnc/");
  return NULL;
}

/* mkdir -p, private to the user (0700) where it creates */
static int make_dirs(const char *dir)
{
  char *p = strdup(dir);
  if (!p)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s == '/' || !*s) {
      char c = *s;
      *s = 0;
      if (mkdir(p, 0700) && errno != EEXIST) {
        free(p);
        return -1;
      }
      *s = c;
      if (!c)
        break;
    }
  }
  free(p);
  return 0;
}

/* -------------------------------------------------------------- entries */

static const unsigned char magic[8] = {'D', 'N', 'C', 'K', 'C', 0, 0, 1};
enum { HEADER = 8 + 16 + 32 };
/* No entry is this large (a function's four kernels are kilobytes to a
 * few megabytes): a larger file is rejected unread. */
#define DNC_KCACHE_MAX_BYTES ((off_t)256 << 20)

static atomic_ulong counts[4]; /* DNC_KCACHE_HIT... */

void dnc_kcache_counts(unsigned long out[4])
{
  for (int i = 0; i < 4; i++)
    out[i] = atomic_load(&counts[i]);
}

static void put_u64(unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void entry_digest(const char *key, size_t nkey, const void *obj,
                         size_t nobj, unsigned char d[32])
{
  sha256 s;
  sha_init(&s);
  sha_update(&s, key, nkey);
  sha_update(&s, obj, nobj);
  sha_final(&s, d);
}

/* Reads (writing 0) or writes n bytes at the file's current offset, as
 * many calls as it takes; 0 when all went. */
static int transfer_all(int fd, void *p, size_t n, int writing)
{
  char *s = p;
  while (n) {
    ssize_t k = writing ? write(fd, s, n) : read(fd, s, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n)
{
  return transfer_all(fd, p, n, 0);
}

static int write_all(int fd, const void *p, size_t n)
{
  return transfer_all(fd, (void *)p, n, 1); /* only read from */
}

int dnc_kcache_read(const char *dir, const char *name, const char *key,
                    void **obj, size_t *nobj)
{
  *obj = NULL;
  *nobj = 0;
  char file[DNC_KCACHE_NAME_LEN + 8];
  snprintf(file, sizeof file, "%s.dko", name);
  char *path = path_join(dir, file);
  /* O_NONBLOCK: a FIFO or a device under the entry's name must not block
   * the open; anything but a regular file is then rejected */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  free(path);
  if (fd < 0) {
    atomic_fetch_add(&counts[DNC_KCACHE_MISS], 1);
    return 0;
  }
  int ok = 0;
  unsigned char h[HEADER], *data = NULL;
  struct stat st;
  size_t nkey = strlen(key);
  /* the header first: a file whose lengths do not add up to its size, or
   * that is larger than any entry, is rejected before anything is
   * allocated for it; and so is one another user owns, in a cache
   * directory others may write to (DNC_CACHE_DIR=/tmp/...): the digest
   * is no signature, anyone can compute it for code of their own */
  if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      st.st_size >= HEADER &&
      st.st_size <= DNC_KCACHE_MAX_BYTES && !read_all(fd, h, HEADER) &&
      !memcmp(h, magic, 8) && get_u64(h + 8) == nkey &&
      (uint64_t)st.st_size - HEADER >= nkey &&
      get_u64(h + 16) == (uint64_t)st.st_size - HEADER - nkey) {
    size_t n = (size_t)st.st_size - HEADER;
    data = malloc(n ? n : 1);
    if (!data)
      dnc_die(__FILE__, __LINE__, "out of memory");
    unsigned char d[32];
    ok = !read_all(fd, data, n) && !memcmp(data, key, nkey);
    if (ok) {
      entry_digest(key, nkey, data + nkey, n - nkey, d);
      ok = !memcmp(d, h + 24, 32);
    }
    if (ok) /* used now: the bound removes the least recently used */
      futimens(fd, NULL);
    if (ok) { /* the object alone, in the same allocation */
      *nobj = n - nkey;
      memmove(data, data + nkey, *nobj);
      *obj = data;
      data = NULL;
    }
  }
  free(data);
  close(fd);
  atomic_fetch_add(&counts[ok ? DNC_KCACHE_HIT : DNC_KCACHE_REJECTED], 1);
  return ok ? 1 : -1;
}

/* The temporaries of writers that died before their rename (SIGKILL, a
 * crash, power loss): "<name>.tmp.<pid>.<hex>" whose pid no longer exists
 * and that is over a minute old. Removed by the next writer, as dnc
 * compile removes its own; best effort like the rest of the cache. */
static void remove_stale_temps(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  time_t now = time(NULL);
  while ((e = readdir(d))) {
    const char *t = strstr(e->d_name, ".tmp.");
    if (!t || t - e->d_name != DNC_KCACHE_NAME_LEN)
      continue;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    struct stat st;
    /* a live writer's (kill: 0, or EPERM: another user's), and one
     * younger than a minute (a writer in another pid namespace, sharing
     * the directory, writes an entry in milliseconds): kept */
    if (*end != '.' || pid <= 0 || !kill((pid_t)pid, 0) || errno != ESRCH ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
        !S_ISREG(st.st_mode) || st.st_uid != geteuid() || now - st.st_mtime < 60)
      continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* ------------------------------------------------------------ the bound */

int dnc_size_parse(const char *s, long long *out)
{
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || !isdigit((unsigned char)*s) || v < 0)
    return -1;
  int shift = 0;
  switch (*end) {
  case 'k': case 'K': shift = 10, end++; break;
  case 'm': case 'M': shift = 20, end++; break;
  case 'g': case 'G': shift = 30, end++; break;
  case 't': case 'T': shift = 40, end++; break;
  }
  if (*end || v > LLONG_MAX >> shift)
    return -1;
  *out = v << shift;
  return 0;
}

long long dnc_kcache_max(void)
{
  const char *e = getenv("DNC_CACHE_MAX");
  long long v;
  if (!e || !*e)
    return DNC_KCACHE_MAX_DEFAULT;
  return dnc_size_parse(e, &v) ? -1 : v;
}

typedef struct {
  struct timespec used; /* mtime: written, or last read (dnc_kcache_read) */
  off_t size;
  char name[DNC_KCACHE_NAME_LEN + 8];
} kentry;

static int older(const void *a, const void *b)
{
  const kentry *x = a, *y = b;
  if (x->used.tv_sec != y->used.tv_sec)
    return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
  if (x->used.tv_nsec != y->used.tv_nsec)
    return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The entries of dir (this user's, <32 hex digits>.dko) larger together
 * than max bytes: the least recently used removed until they are within
 * 3/4 of it, never keep (the entry just written). A process reading one
 * as it goes keeps its open file; one that looks for it later compiles
 * again. Concurrent trims remove a file once (ENOENT is nothing). */
static void trim(const char *dir, long long max, const char *keep)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  kentry *v = NULL;
  size_t n = 0, cap = 0;
  long long total = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t k = strlen(e->d_name);
    struct stat st;
    if (k != DNC_KCACHE_NAME_LEN + 4 || strcmp(e->d_name + DNC_KCACHE_NAME_LEN, ".dko") ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
        !S_ISREG(st.st_mode) || st.st_uid != geteuid())
      continue;
    if (n == cap) {
      kentry *w = realloc(v, (cap = cap ? 2 * cap : 256) * sizeof *v);
      if (!w)
        break; /* best effort: trim what was listed */
      v = w;
    }
    v[n].used = st.st_mtim;
    v[n].size = st.st_size;
    memcpy(v[n].name, e->d_name, k + 1);
    total += st.st_size;
    n++;
  }
  if (total > max) {
    qsort(v, n, sizeof *v, older);
    for (size_t i = 0; i < n && total > max / 4 * 3; i++) {
      if (!strncmp(v[i].name, keep, DNC_KCACHE_NAME_LEN))
        continue;
      if (!unlinkat(dirfd(d), v[i].name, 0) || errno == ENOENT)
        total -= v[i].size;
    }
  }
  free(v);
  closedir(d);
}

int dnc_kcache_write(const char *dir, const char *name, const char *key,
                     const void *obj, size_t nobj)
{
  size_t nkey = strlen(key);
  /* a file-size limit (ulimit -f) the entry would pass: writing past it
   * raises SIGXFSZ, which ends the process; the cache is best effort, so
   * such an entry is not written at all */
  if (dnc_past_fsize_limit((uint64_t)HEADER + nkey + nobj))
    return -1;
  if (make_dirs(dir))
    return -1;
  unsigned char h[HEADER];
  memcpy(h, magic, 8);
  put_u64(h + 8, nkey);
  put_u64(h + 16, nobj);
  entry_digest(key, nkey, obj, nobj, h + 24);

  char file[DNC_KCACHE_NAME_LEN + 64];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(file, sizeof file, "%s.tmp.%ld.%lx", name, (long)getpid(),
           (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)&ts);
  char *tmp = path_join(dir, file);
  snprintf(file, sizeof file, "%s.dko", name);
  char *path = path_join(dir, file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int bad = fd < 0;
  if (!bad) {
    bad = write_all(fd, h, HEADER) || write_all(fd, key, nkey) ||
          write_all(fd, obj, nobj);
    bad |= close(fd) != 0;
    /* the rename is atomic: readers see the old entry, none, or this one */
    if (bad || rename(tmp, path))
      bad = 1, unlink(tmp);
  }
  if (!bad) {
    /* once per process: a search writes thousands of entries */
    static atomic_int swept;
    /* the bound: looked at with a process's first entry (a directory
     * left over it by a larger bound, or by older processes) and then
     * each time its entries since add up to a sixteenth of it */
    static atomic_ullong since;
    int first = !atomic_exchange(&swept, 1);
    if (first)
      remove_stale_temps(dir);
    long long max = dnc_kcache_max();
    unsigned long long w = atomic_fetch_add(&since, HEADER + nkey + nobj) +
                           HEADER + nkey + nobj;
    if (max > 0 && (first || w >= (unsigned long long)max / 16)) {
      atomic_store(&since, 0);
      trim(dir, max, name);
    }
    atomic_fetch_add(&counts[DNC_KCACHE_WRITTEN], 1);
  }
  free(tmp);
  free(path);
  return bad ? -1 : 0;
}
