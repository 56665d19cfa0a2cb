/*
 * test_kcache.c - the on-disk kernel cache (compiler/kcache.c, jit.c):
 * a miss compiles and writes an entry, a new context hits it and runs the
 * same code (results bit for bit those of a cache-less context), a
 * corrupt, truncated or foreign entry is rejected and rewritten, writers
 * in concurrent processes leave one whole entry, the switch turns it off,
 * and XDG_CACHE_HOME / DNC_CACHE_DIR choose the directory. Every cache
 * here is in a temporary directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dnc.h"
#include "dnc_int.h"
#include "tap.h"
#include "tmpdir.h"

static const char *const src =
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
    "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n"
    "fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)\n";
static const char *const names[3] = {"dyt", "derf", "dyisru"};

enum { N = 999 }; /* a vector loop and a tail */
static float xs[N];

static void bail(const char *why)
{
  printf("Bail out! %s\n", why);
  exit(1);
}

/* Files in dir ending in suffix (the first one's name in *first). */
static int count_files(const char *dir, const char *suffix, char *first,
                       size_t nfirst)
{
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int n = 0;
  struct dirent *e;
  size_t ns = strlen(suffix);
  while ((e = readdir(d))) {
    size_t k = strlen(e->d_name);
    if (k >= ns && !strcmp(e->d_name + k - ns, suffix)) {
      if (!n && first)
        snprintf(first, nfirst, "%s/%s", dir, e->d_name);
      n++;
    }
  }
  closedir(d);
  return n;
}

static dnc_context *context(int cache, const char *dir)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 1;
  o.cache = cache;
  o.cache_dir = dir;
  dnc_context *ctx = NULL;
  if (dnc_context_create(&o, &ctx) != DNC_OK)
    return NULL;
  return ctx;
}

static dnc_module *compile(dnc_context *ctx, const char *text)
{
  dnc_module *m = NULL;
  if (dnc_compile_string(ctx, "kcache.dn", text, strlen(text), &m) != DNC_OK) {
    dnc_module_free(m);
    return NULL;
  }
  return m;
}

/* f's f32 forward over xs into y, through its kernels (JIT or cache);
 * 0 when they could not be had. */
static int run_forward(const dnc_module *m, const char *name, float *y)
{
  const dnc_function *f = dnc_module_find(m, name);
  dnc_kernels k;
  if (!f || dnc_function_kernels(f, DNC_F32, &k) != DNC_OK)
    return 0;
  double p[2] = {0.7, 0.125};
  if (!strcmp(name, "dyisru"))
    p[0] = 301.1;
  k.forward(xs, y, N, p);
  return 1;
}

static float want[3][N]; /* each function's forward without a cache */

static int matches(int fi, const float *y)
{
  return !memcmp(y, want[fi], sizeof want[fi]);
}

static void counts(unsigned long c[4])
{
  dnc_kcache_counts(c);
}

/* Four processes compile the same three functions into one empty cache at
 * once: each gets correct kernels, and the directory ends with exactly one
 * whole entry per function and no temporary file. Run before this
 * process starts LLVM or any thread, so that fork is plain. */
static void test_concurrent_writers(void)
{
  char *dir = tmpdir_make("dnc-kcache");
  enum { P = 4 };
  pid_t pid[P];
  for (int i = 0; i < P; i++) {
    pid[i] = fork();
    if (pid[i] == 0) {
      dnc_context *ctx = context(1, dir);
      dnc_module *m = ctx ? compile(ctx, src) : NULL;
      float y[N];
      int good = m != NULL;
      for (int fi = 0; fi < 3 && good; fi++)
        good = run_forward(m, names[fi], y) && matches(fi, y);
      dnc_module_free(m);
      dnc_context_free(ctx);
      _exit(good ? 0 : 1);
    }
  }
  int all = 1;
  for (int i = 0; i < P; i++) {
    int st;
    all &= pid[i] > 0 && waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st) &&
           WEXITSTATUS(st) == 0;
  }
  ok(all, "four processes writing one cache at once all get correct kernels");
  is_int(count_files(dir, ".dko", NULL, 0), 3,
         "the concurrent writers leave one entry per function");
  is_int(count_files(dir, "", NULL, 0) - 2, 3,
         "and no temporary file beside them");

  unsigned long c0[4], c1[4];
  counts(c0);
  dnc_context *ctx = context(1, dir);
  dnc_module *m = compile(ctx, src);
  float y[N];
  int good = 1;
  for (int fi = 0; fi < 3; fi++)
    good &= run_forward(m, names[fi], y) && matches(fi, y);
  counts(c1);
  ok(good && c1[DNC_KCACHE_HIT] - c0[DNC_KCACHE_HIT] == 3 &&
         c1[DNC_KCACHE_WRITTEN] == c0[DNC_KCACHE_WRITTEN],
     "a new process hits all three entries the writers left");
  dnc_module_free(m);
  dnc_context_free(ctx);
  tmpdir_remove(dir);
  free(dir);
}

static void reference_results(void)
{
  for (int i = 0; i < N; i++)
    xs[i] = -12.0f + 24.0f * (float)i / (N - 1);
  dnc_context *ctx = context(-1, NULL);
  dnc_module *m = compile(ctx, src);
  int good = m != NULL;
  for (int fi = 0; fi < 3 && good; fi++)
    good = run_forward(m, names[fi], want[fi]);
  if (!good)
    bail("the reference kernels do not compile");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

static void test_miss_hit(const char *dir)
{
  unsigned long c0[4], c1[4], c2[4];
  float y[N];
  counts(c0);
  dnc_context *ctx = context(1, dir);
  dnc_module *m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && matches(0, y), "a miss compiles correct kernels");
  counts(c1);
  ok(c1[DNC_KCACHE_MISS] - c0[DNC_KCACHE_MISS] == 1 &&
         c1[DNC_KCACHE_WRITTEN] - c0[DNC_KCACHE_WRITTEN] == 1,
     "a miss is counted and writes an entry");
  is_int(count_files(dir, ".dko", NULL, 0), 1, "one entry is in the directory");

  /* a second module of the same context shares the linked code */
  dnc_module *m2 = compile(ctx, src);
  ok(run_forward(m2, "dyt", y) && matches(0, y),
     "a second module of the context gets the same kernels");
  dnc_module_free(m);
  ok(run_forward(m2, "dyt", y) && matches(0, y),
     "which keep working when the first module is freed");
  counts(c2);
  ok(c2[DNC_KCACHE_MISS] == c1[DNC_KCACHE_MISS] &&
         c2[DNC_KCACHE_HIT] == c1[DNC_KCACHE_HIT],
     "the context's second request reads no file");
  dnc_module_free(m2);
  dnc_context_free(ctx);

  /* a new context (as a new process) reads the entry */
  ctx = context(1, dir);
  m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && matches(0, y),
     "a hit runs kernels with bit-for-bit the results of a compile");
  counts(c1);
  ok(c1[DNC_KCACHE_HIT] - c2[DNC_KCACHE_HIT] == 1 &&
         c1[DNC_KCACHE_WRITTEN] == c2[DNC_KCACHE_WRITTEN],
     "a hit is counted and compiles nothing");

  /* the key is the DAG, not the names */
  m2 = compile(ctx, "fn other(z; a = 3) = tanh(a * z)");
  ok(run_forward(m2, "other", y) && matches(0, y),
     "the same DAG under other names runs the same kernels");
  counts(c2);
  ok(c2[DNC_KCACHE_HIT] - c1[DNC_KCACHE_HIT] == 0 &&
         c2[DNC_KCACHE_MISS] == c1[DNC_KCACHE_MISS],
     "and shares the entry the context has linked");
  dnc_module_free(m);
  dnc_module_free(m2);
  dnc_context_free(ctx);
  ctx = context(1, dir);
  m = compile(ctx, "fn other(z; a = 3) = tanh(a * z)");
  ok(run_forward(m, "other", y) && matches(0, y), "or, in a new context, its file");
  counts(c1);
  ok(c1[DNC_KCACHE_HIT] - c2[DNC_KCACHE_HIT] == 1, "which is a hit");
  dnc_module_free(m);

  /* another dtype: another entry */
  m = compile(ctx, src);
  const dnc_function *f = m ? dnc_module_find(m, "dyt") : NULL;
  dnc_kernels k;
  ok(f && dnc_function_kernels(f, DNC_BF16, &k) == DNC_OK,
     "a bf16 request compiles");
  counts(c2);
  ok(c2[DNC_KCACHE_MISS] - c1[DNC_KCACHE_MISS] == 1,
     "another dtype is another entry (a miss)");
  is_int(count_files(dir, ".dko", NULL, 0), 2, "two entries are in the directory");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

/* Replaces the entry of dyt's f32 kernels (the only one in dir) by what
 * damage does, then checks that a new context rejects it, compiles, gets
 * correct kernels and leaves a valid entry. */
static void damaged(const char *dir, const char *what,
                    void (*damage)(const char *path, const char *dir))
{
  char path[1024];
  count_files(dir, ".dko", path, sizeof path);
  damage(path, dir);
  unsigned long c0[4], c1[4];
  counts(c0);
  dnc_context *ctx = context(1, dir);
  dnc_module *m = compile(ctx, src);
  float y[N];
  ok(run_forward(m, "dyt", y) && matches(0, y),
     "%s: rejected and recompiled, the kernels are correct", what);
  counts(c1);
  ok(c1[DNC_KCACHE_REJECTED] - c0[DNC_KCACHE_REJECTED] == 1 &&
         c1[DNC_KCACHE_HIT] == c0[DNC_KCACHE_HIT] &&
         c1[DNC_KCACHE_WRITTEN] - c0[DNC_KCACHE_WRITTEN] == 1,
     "%s: counted as rejected, and written again", what);
  dnc_module_free(m);
  dnc_context_free(ctx);
  ctx = context(1, dir);
  m = compile(ctx, src);
  counts(c0);
  ok(run_forward(m, "dyt", y) && matches(0, y), "%s: the rewritten entry runs", what);
  counts(c1);
  ok(c1[DNC_KCACHE_HIT] - c0[DNC_KCACHE_HIT] == 1, "%s: and is a hit", what);
  dnc_module_free(m);
  dnc_context_free(ctx);
}

static void flip_object_bytes(const char *path, const char *dir)
{
  (void)dir;
  int fd = open(path, O_RDWR);
  struct stat st;
  fstat(fd, &st);
  /* in the object code, past the header and the key: x86 int3 */
  unsigned char cc[64];
  memset(cc, 0xcc, sizeof cc);
  if (pwrite(fd, cc, sizeof cc, st.st_size - 200) != (ssize_t)sizeof cc)
    abort();
  close(fd);
}

static void truncate_entry(const char *path, const char *dir)
{
  (void)dir;
  struct stat st;
  stat(path, &st);
  if (truncate(path, st.st_size / 2))
    abort();
}

static void garbage_entry(const char *path, const char *dir)
{
  (void)dir;
  FILE *f = fopen(path, "w");
  fputs("not a dnc kernel cache entry\n", f);
  fclose(f);
}

/* a FIFO under the entry's name: opening it for reading must not wait for
 * a writer that never comes */
static void fifo_entry(const char *path, const char *dir)
{
  (void)dir;
  if (unlink(path) || mkfifo(path, 0600))
    abort();
}

/* a sparse file of 1 TiB: rejected unread, not allocated for */
static void huge_entry(const char *path, const char *dir)
{
  (void)dir;
  if (truncate(path, (off_t)1 << 40))
    abort();
}

/* derf's valid entry (another key) under dyt's name */
static void foreign_entry(const char *path, const char *dir)
{
  char other[1024];
  snprintf(other, sizeof other, "%s/derf", dir);
  mkdir(other, 0700);
  dnc_context *ctx = context(1, other);
  dnc_module *m = compile(ctx, src);
  float y[N];
  if (!run_forward(m, "derf", y))
    abort();
  dnc_module_free(m);
  dnc_context_free(ctx);
  char from[1024];
  count_files(other, ".dko", from, sizeof from);
  if (rename(from, path))
    abort();
  tmpdir_remove(other);
}

/* the entry owned by another user (nobody): rejected, whatever it holds */
static void other_owner(const char *path, const char *dir)
{
  (void)dir;
  if (chown(path, 65534, 65534))
    abort();
}

static void test_rejected(void)
{
  char *dir = tmpdir_make("dnc-kcache");
  dnc_context *ctx = context(1, dir);
  dnc_module *m = compile(ctx, "fn dyt(x; alpha = 0.5) = tanh(alpha * x)");
  float y[N];
  run_forward(m, "dyt", y);
  dnc_module_free(m);
  dnc_context_free(ctx);
  damaged(dir, "corrupt object code", flip_object_bytes);
  damaged(dir, "a truncated entry", truncate_entry);
  damaged(dir, "a file that is no entry", garbage_entry);
  damaged(dir, "another function's entry", foreign_entry);
  damaged(dir, "a FIFO", fifo_entry);
  damaged(dir, "a sparse file of 1 TiB", huge_entry);
  if (geteuid() == 0)
    damaged(dir, "a valid entry another user owns", other_owner);
  else
    skip(4, "an entry of another user's needs root to make (chown)");
  tmpdir_remove(dir);
  free(dir);
}

static void test_off(void)
{
  char *dir = tmpdir_make("dnc-kcache");
  float y[N];
  dnc_context *ctx = context(-1, dir);
  dnc_module *m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && matches(0, y), "cache = -1: the kernels compile");
  is_int(count_files(dir, "", NULL, 0) - 2, 0, "cache = -1 writes nothing");
  dnc_module_free(m);
  dnc_context_free(ctx);

  setenv("DNC_CACHE", "0", 1);
  ctx = context(0, dir);
  m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && matches(0, y), "DNC_CACHE=0: the kernels compile");
  is_int(count_files(dir, "", NULL, 0) - 2, 0, "DNC_CACHE=0 writes nothing");
  dnc_module_free(m);
  dnc_context_free(ctx);

  ctx = context(1, dir);
  m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && count_files(dir, ".dko", NULL, 0) == 1,
     "cache = 1 turns it on whatever DNC_CACHE says");
  dnc_module_free(m);
  dnc_context_free(ctx);

  dnc_options o;
  dnc_options_init(&o);
  o.cache = 2;
  ok(dnc_context_create(&o, &ctx) == DNC_ERR_ARGUMENT &&
         strstr(dnc_last_error(), "cache"),
     "cache = 2 is refused with a message");
  tmpdir_remove(dir);
  free(dir);
}

static void test_directory(void)
{
  char *xdg = tmpdir_make("dnc-kcache"), *env = tmpdir_make("dnc-kcache");
  char sub[1024];
  float y[N];
  setenv("DNC_CACHE", "1", 1);
  unsetenv("DNC_CACHE_DIR");
  setenv("XDG_CACHE_HOME", xdg, 1);
  dnc_context *ctx = context(0, NULL);
  dnc_module *m = compile(ctx, src);
  snprintf(sub, sizeof sub, "%s/dnc", xdg);
  ok(run_forward(m, "dyt", y) && count_files(sub, ".dko", NULL, 0) == 1,
     "DNC_CACHE=1: the entry is in $XDG_CACHE_HOME/dnc");
  dnc_module_free(m);
  dnc_context_free(ctx);

  setenv("DNC_CACHE_DIR", env, 1);
  ctx = context(0, NULL);
  m = compile(ctx, src);
  ok(run_forward(m, "derf", y) && count_files(env, ".dko", NULL, 0) == 1 &&
         count_files(sub, ".dko", NULL, 0) == 1,
     "$DNC_CACHE_DIR comes before $XDG_CACHE_HOME");
  dnc_module_free(m);
  dnc_context_free(ctx);

  /* a directory that cannot be made: the cache is best effort */
  char file[1024];
  snprintf(file, sizeof file, "%s/a-file", env);
  FILE *fp = fopen(file, "w");
  fclose(fp);
  ctx = context(1, file);
  m = compile(ctx, src);
  ok(run_forward(m, "dyt", y) && matches(0, y),
     "an unusable cache directory still gives correct kernels");
  dnc_module_free(m);
  dnc_context_free(ctx);
  setenv("DNC_CACHE", "0", 1);
  unsetenv("DNC_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/nonexistent/dnc-tests", 1);
  tmpdir_remove(xdg);
  tmpdir_remove(env);
  free(xdg);
  free(env);
}

static void test_key(void)
{
  dnc_mod *a = dnc_mod_new(), *b = dnc_mod_new();
  const char *sa = "fn f(x; a = 1, c[] = 2) = tanh(a * x) * exp(c - x)\n";
  /* other names, another creation order of the same nodes */
  const char *sb = "fn h(x) = exp(2 - x)\n"
                   "fn g(y; q = 5, r[] = 0) = tanh(q * y) * exp(r - y)\n";
  dnc_mod_add_source(a, "a.dn", sa, strlen(sa));
  dnc_mod_add_source(b, "b.dn", sb, strlen(sb));
  if (dnc_mod_build(a) || dnc_mod_build(b))
    bail("the key test's sources do not build");
  char *ka = dnc_kcache_key(a, a->fns[0], "f32", "t\n");
  char *kb = dnc_kcache_key(b, b->fns[1], "f32", "t\n");
  char *kc = dnc_kcache_key(b, b->fns[1], "bf16", "t\n");
  char *kd = dnc_kcache_key(b, b->fns[0], "f32", "t\n");
  is_str(ka, kb, "the key is the DAG's structure, not names or node order");
  ok(strcmp(kb, kc) != 0, "the dtype is in the key");
  ok(strcmp(kb, kd) != 0, "another DAG has another key");
  free(ka);
  free(kb);
  free(kc);
  free(kd);
  dnc_mod_free(a);
  dnc_mod_free(b);

  unsigned char d[32];
  dnc_sha256("abc", 3, d);
  ok(d[0] == 0xba && d[1] == 0x78 && d[30] == 0x15 && d[31] == 0xad,
     "SHA-256 of \"abc\" is the standard's");
}

/* Total bytes of the entries in dir. */
static long long dir_bytes(const char *dir)
{
  DIR *d = opendir(dir);
  long long n = 0;
  struct dirent *e;
  struct stat st;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".dko") && !fstatat(dirfd(d), e->d_name, &st, 0))
      n += st.st_size;
  if (d)
    closedir(d);
  return n;
}

/* One new context running name's f32 kernels (compiled from text):
 * whether its entry was read (1), missed (0), or the run failed (-1). */
static int hit(const char *dir, const char *text, const char *name)
{
  unsigned long c0[4], c1[4];
  float y[N];
  /* a file's times advance by the kernel's tick (4 ms here): uses in
   * one tick are ties */
  struct timespec tick = {0, 20000000};
  nanosleep(&tick, NULL);
  counts(c0);
  dnc_context *ctx = context(1, dir);
  dnc_module *m = compile(ctx, text);
  int r = m && run_forward(m, name, y) ? 1 : -1;
  dnc_module_free(m);
  dnc_context_free(ctx);
  counts(c1);
  return r < 0 ? r : c1[DNC_KCACHE_HIT] > c0[DNC_KCACHE_HIT];
}

/* $DNC_CACHE_MAX bounds the directory: a write past it removes the least
 * recently used entries (a read counts as a use) down to 3/4 of it, never
 * the one just written; 0 is no bound; a value that is no size is
 * refused at context creation, where the cache is on. */
static void test_bound(void)
{
  char *dir = tmpdir_make("dnc-kcache-max");
  const char *other = "fn other(x; a = 1) = atan(a * x)";
  unsetenv("DNC_CACHE_MAX");
  ok(hit(dir, src, "dyt") == 0 && hit(dir, src, "derf") == 0 &&
         hit(dir, src, "dyisru") == 0,
     "three entries written under the default bound");
  long long three = dir_bytes(dir);
  /* dyt read again: now the most recently used, derf the least */
  struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".dko"))
      utimensat(dirfd(d), e->d_name, old, 0);
  if (d)
    closedir(d);
  ok(hit(dir, src, "dyisru") == 1 && hit(dir, src, "dyt") == 1,
     "dyisru, then dyt, read (each a use)");
  char v[64];
  snprintf(v, sizeof v, "%lld", three + 100);
  setenv("DNC_CACHE_MAX", v, 1);
  ok(hit(dir, src, "derf") == 1, "within the bound, nothing was removed");
  ok(hit(dir, other, "other") == 0, "a fourth entry written past the bound");
  ok(dir_bytes(dir) <= (three + 100) / 4 * 3,
     "the directory is within 3/4 of the bound after it (%lld of %lld bytes)",
     dir_bytes(dir), three + 100);
  ok(hit(dir, other, "other") == 1, "the entry just written is kept");
  ok(hit(dir, src, "derf") == 1, "so is the most recently read one");
  ok(hit(dir, src, "dyisru") == 0, "the least recently used one was removed");
  setenv("DNC_CACHE_MAX", "0", 1);
  int before = count_files(dir, ".dko", NULL, 0);
  ok(hit(dir, "fn g(x; a = 1) = asinh(a * x)", "g") == 0 &&
         hit(dir, "fn h(x; a = 1) = sigmoid(a * x)", "h") == 0 &&
         count_files(dir, ".dko", NULL, 0) == before + 2,
     "DNC_CACHE_MAX=0: no bound, entries are only added");
  static const char *const bad[] = {"12X", "-5", "abc", "1e9", " 5", "5MB",
                                    "99999999999999999999", "9999999999999T"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("DNC_CACHE_MAX", bad[i], 1);
    dnc_context *ctx = context(1, dir);
    ok(!ctx && strstr(dnc_last_error(), "$DNC_CACHE_MAX is") != NULL,
       "DNC_CACHE_MAX='%s' is refused: %s", bad[i], dnc_last_error());
    dnc_context_free(ctx);
  }
  dnc_context *ctx = context(-1, dir);
  ok(ctx != NULL, "... but not where the cache is off");
  dnc_context_free(ctx);
  static const char *const good[] = {"512M", "1g", "64k", "2T", "1048576"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    setenv("DNC_CACHE_MAX", good[i], 1);
    ctx = context(1, dir);
    ok(ctx != NULL, "DNC_CACHE_MAX='%s' is a size", good[i]);
    dnc_context_free(ctx);
  }
  unsetenv("DNC_CACHE_MAX");
  tmpdir_remove(dir);
  free(dir);
}

int main(void)
{
  for (int i = 0; i < N; i++)
    xs[i] = -12.0f + 24.0f * (float)i / (N - 1);
  /* the concurrent writers compare with the references, which need a JIT:
   * a child computes them for the parent before any fork of its own */
  int pfd[2];
  if (pipe(pfd))
    abort();
  pid_t ref = fork();
  if (ref == 0) {
    reference_results();
    ssize_t k = write(pfd[1], want, sizeof want);
    _exit(k == (ssize_t)sizeof want ? 0 : 1);
  }
  size_t got = 0;
  while (got < sizeof want) {
    ssize_t k = read(pfd[0], (char *)want + got, sizeof want - got);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  int st;
  waitpid(ref, &st, 0);
  if (got != sizeof want || !WIFEXITED(st) || WEXITSTATUS(st))
    bail("the reference kernels do not compile");
  test_concurrent_writers();
  char *dir = tmpdir_make("dnc-kcache");
  test_miss_hit(dir);
  tmpdir_remove(dir);
  free(dir);
  test_rejected();
  test_off();
  test_directory();
  test_key();
  test_bound();
  return done_testing();
}
