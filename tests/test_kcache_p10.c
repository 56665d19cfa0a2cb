/*
 * test_kcache_p10.c - the kernel cache where writing it is not possible:
 * a file-size limit (ulimit -f) smaller than an entry must cost the cache
 * entry and nothing else (writing past the limit raises SIGXFSZ, which
 * used to end the process), and threads with their own contexts on one
 * cache directory, compiling the same functions at once, all get correct
 * kernels and leave one whole entry per function and dtype, no temporary
 * file; and $DNC_CACHE turns the cache off in any case (False, OFF).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnc.h"
#include "tap.h"
#include "tmpdir.h"

static const char *const src =
    "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
    "fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)\n";

enum { N = 37 };

/* files in dir whose names end in suffix */
static int count_files(const char *dir, const char *suffix)
{
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int n = 0;
  struct dirent *e;
  size_t ns = strlen(suffix);
  while ((e = readdir(d))) {
    size_t k = strlen(e->d_name);
    if (e->d_name[0] != '.' && k >= ns && !strcmp(e->d_name + k - ns, suffix))
      n++;
  }
  closedir(d);
  return n;
}

/* Compiles src in a context with the cache on in dir, runs both functions
 * forward in dtype t and checks them against the interpreter: 1 when all
 * is well. */
static int cache_option = 1;

static int run(const char *dir, dnc_dtype t)
{
  dnc_options o;
  dnc_options_init(&o);
  o.cache = cache_option;
  o.cache_dir = dir;
  o.threads = 1;
  dnc_context *ctx;
  if (dnc_context_create(&o, &ctx) != DNC_OK)
    return 0;
  dnc_module *m;
  int good = dnc_compile_string(ctx, "p10.dn", src, strlen(src), &m) == DNC_OK;
  for (int i = 0; good && i < 2; i++) {
    const dnc_function *f = dnc_module_function(m, i);
    double xd[N], yd[N], ref[N];
    float xf[N], yf[N];
    for (int j = 0; j < N; j++)
      xd[j] = xf[j] = (float)(j - N / 2) / 7.0f;
    dnc_function_eval(f, xd, ref, N, NULL);
    dnc_tensor tx = {t == DNC_F64 ? (void *)xd : xf, t, 1, N, 0};
    dnc_tensor ty = {t == DNC_F64 ? (void *)yd : yf, t, 1, N, 0};
    good = dnc_forward(f, &tx, &ty, NULL) == DNC_OK;
    for (int j = 0; good && j < N; j++)
      good = fabs((t == DNC_F64 ? yd[j] : yf[j]) - ref[j]) < 1e-6;
  }
  dnc_module_free(m);
  dnc_context_free(ctx);
  return good;
}

static void file_size_limit(void)
{
  char *dir = tmpdir_make("dnc-kcache-p10");
  pid_t pid = fork();
  if (pid == 0) {
    /* 4 KiB: less than any entry */
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl))
      _exit(3);
    _exit(run(dir, DNC_F32) ? 0 : 4);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
     "under a 4 KiB file-size limit the kernels compile and run (status "
     "%#x%s)",
     status, WIFSIGNALED(status) ? ", killed by a signal" : "");
  is_int(count_files(dir, ""), 0, "and nothing is left in the cache directory");
  ok(run(dir, DNC_F32) && count_files(dir, ".dko") == 2,
     "without the limit, the entries are written");
  tmpdir_remove(dir);
  free(dir);
}

enum { THREADS = 8 };
static const char *shared_dir;
static int thread_good[THREADS];

static void *worker(void *arg)
{
  int i = (int)(intptr_t)arg;
  thread_good[i] = run(shared_dir, i % 2 ? DNC_F64 : DNC_F32);
  return NULL;
}

static void threads_one_dir(void)
{
  char *dir = tmpdir_make("dnc-kcache-p10");
  shared_dir = dir;
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
  int all = 1;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    all &= thread_good[i];
  }
  ok(all, "%d threads, each its own context, one cache directory: correct "
          "kernels in f32 and f64",
     THREADS);
  is_int(count_files(dir, ".dko"), 4, "one entry per function and dtype");
  is_int(count_files(dir, ""), 4, "and no temporary file");
  ok(run(dir, DNC_F32) && run(dir, DNC_F64), "a later context runs from them");
  tmpdir_remove(dir);
  free(dir);
}

/* $DNC_CACHE=False (Python's spelling) or OFF used to leave the cache on */
static void env_spellings(void)
{
  const char *off[] = {"False", "OFF", "No", "0", "off"};
  cache_option = 0; /* the environment decides */
  for (int i = 0; i < 5; i++) {
    char *dir = tmpdir_make("dnc-kcache-p10");
    setenv("DNC_CACHE", off[i], 1);
    ok(run(dir, DNC_F32) && count_files(dir, "") == 0,
       "DNC_CACHE=%s: the cache is off, nothing written", off[i]);
    tmpdir_remove(dir);
    free(dir);
  }
  char *dir = tmpdir_make("dnc-kcache-p10");
  setenv("DNC_CACHE", "1", 1);
  ok(run(dir, DNC_F32) && count_files(dir, ".dko") == 2,
     "DNC_CACHE=1: the cache is on");
  setenv("DNC_CACHE", "0", 1);
  cache_option = 1;
  tmpdir_remove(dir);
  free(dir);
}

/* a temporary "<name>.tmp.<pid>.<hex>" of dir, with mtime age s ago */
static void temp_file(const char *dir, long pid, const char *tag, int age,
                      char *path, size_t n)
{
  snprintf(path, n, "%s/0123456789abcdef0123456789abcdef.tmp.%ld.%s", dir,
           pid, tag);
  FILE *fp = fopen(path, "w");
  if (fp) {
    fputs("half an entry", fp);
    fclose(fp);
  }
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= age;
  t[1] = t[0];
  utimensat(AT_FDCWD, path, t, 0);
}

/* in a new process (the sweep is once a process): run in dtype t */
static int run_child(const char *dir, dnc_dtype t)
{
  pid_t p = fork();
  if (p == 0)
    _exit(run(dir, t) ? 0 : 1);
  int ws = 0;
  return p > 0 && waitpid(p, &ws, 0) == p && WIFEXITED(ws) &&
         WEXITSTATUS(ws) == 0;
}

/* A writer killed before its rename left its temporary for good: the
 * first entry a process writes now removes those of writers that no
 * longer exist, a minute old or more; not a live writer's, nor a young
 * one (a writer in another pid namespace sharing the directory) */
static void stale_temps(void)
{
  char *dir = tmpdir_make("dnc-kcache-stale");
  pid_t gone = fork();
  if (gone == 0)
    _exit(0);
  waitpid(gone, NULL, 0);
  char dead[512], young[512], live[512];
  temp_file(dir, (long)gone, "a1", 120, dead, sizeof dead);
  temp_file(dir, (long)gone, "b2", 0, young, sizeof young);
  temp_file(dir, (long)getpid(), "c3", 120, live, sizeof live);
  ok(run_child(dir, DNC_F32), "a process writes entries beside others' "
     "temporaries");
  ok(access(dead, F_OK) != 0, "a dead writer's old temporary is removed");
  ok(access(young, F_OK) == 0 && access(live, F_OK) == 0,
     "a young one and a live writer's are kept");
  tmpdir_remove(dir);
  free(dir);
}

int main(void)
{
  stale_temps();
  env_spellings();
  file_size_limit();
  threads_one_dir();
  done_testing();
}
