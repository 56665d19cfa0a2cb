/*
 * pool.c - a fixed pool of worker threads that run the tasks of a job.
 *
 * A job is n independent tasks (the blocks of a fixed grid: which block a
 * thread runs never changes a result, see kernels.c). The calling thread
 * posts its job and works on it too, so a job always progresses even when
 * every worker is busy with other callers' jobs, and several threads may
 * run jobs on one pool at once. Tasks are claimed with an atomic counter.
 *
 * A job lives on its caller's stack; the caller returns only when every
 * task is done and no worker holds the job any more (`users`).
 *
 * Waiting spins a little before it sleeps: an idle worker watches for a
 * new job for up to spin_us (100 us unless $DNC_SPIN_US says otherwise,
 * api.c), and a caller whose own tasks are done watches for the job's
 * end for up to twice that, before each blocks on its condition
 * variable. Waking a sleeping thread took about 50 us on
 * the development VM (the futex, and the hypervisor starting an idle
 * vCPU), and a layer call on [4096 x 512] paid it twice, once for the
 * worker and once for the caller: 2-thread forward + backward calls
 * back to back ran at 1.0 to 1.15 times a spinning OpenMP team's speed
 * before (docs/performance.md, round eight). A poster signals only when
 * a worker sleeps, and a worker only when the caller sleeps.
 *
 * A pool may instead run its jobs on an OpenMP runtime that the process
 * already has (dnc_pool_use_omp): each job is one GOMP_parallel region
 * of nthreads threads, the caller's team, whose members claim tasks from
 * the same counter. Where the process's other parallel code runs on that
 * runtime (PyTorch's ATen), its threads, which spin for a while after
 * each region, then take dnc's tasks instead of competing with dnc's own
 * workers for the cores (docs/performance.md, round seven).
 *
 * A child process made by fork() runs a pool's jobs on the caller alone:
 * the pool's workers do not exist there (nor need an OpenMP team), and
 * its lock may have been held by one of them at the fork. Freeing the
 * pool there frees its memory only; joining the parent's workers hung.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

typedef struct job {
  void (*fn)(void *arg, int64_t task);
  void *arg;
  int64_t ntasks;
  atomic_llong next; /* the next task to claim */
  int64_t done;      /* under the pool's lock */
  int users;         /* workers inside the job, under the lock */
  atomic_uint over;  /* every task done and no worker inside: set under
                        the lock, read without it by the spinning caller */
  struct job *link;
} job;

/* an OpenMP runtime's fork-join entry: libgomp's GOMP_parallel, which
 * LLVM's libomp and Intel's libiomp5 export too */
typedef void (*omp_parallel_fn)(void (*fn)(void *), void *data,
                                unsigned nthreads, unsigned flags);

struct dnc_pool {
  int nthreads; /* including the caller */
  pthread_t *threads;
  atomic_int workers; /* started: on the first job that needs them */
  pthread_mutex_t lock;
  pthread_cond_t work, finished;
  job *jobs; /* jobs with tasks left to claim */
  int stop;
  int64_t spin_ns;    /* an idle worker's spin; a caller's: twice it */
  int sleepers;       /* workers waiting on `work`, under the lock */
  int joiners;        /* callers waiting on `finished`, under the lock */
  atomic_uint posted; /* jobs posted and stops, for the spinning workers */
  _Atomic(omp_parallel_fn) omp; /* NULL: the pool's own threads */
  unsigned born;                /* forks seen when the pool was made */
};

/* fork()s seen by this process: counted in the child */
static atomic_uint forks;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
  atomic_fetch_add(&forks, 1);
}

static void watch_forks(void)
{
  pthread_atfork(NULL, NULL, count_fork);
}

static void unlink_job(dnc_pool *p, job *j)
{
  for (job **q = &p->jobs; *q; q = &(*q)->link)
    if (*q == j) {
      *q = j->link;
      return;
    }
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until *a differs from seen, for at most ns; returns whether it
 * changed. Once per 64 rounds it reads the clock and yields the CPU: on
 * a machine with more runnable threads than CPUs a spinning thread would
 * otherwise hold a CPU that the thread it waits for may need. */
static int spin_while_equal(atomic_uint *a, unsigned seen, int64_t ns)
{
  int64_t end = now_ns() + ns;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(a, memory_order_acquire) != seen)
      return 1;
    cpu_relax();
    if (i % 64 == 0) {
      if (now_ns() >= end)
        return 0;
      sched_yield(); /* a thread waiting for this CPU runs first */
    }
  }
}

/* under the lock: the job's last task is done and no worker is inside;
 * after the store j may be gone (its caller returns), so the sleeping
 * caller is woken through the pool only */
static void finish_if_over(dnc_pool *p, job *j)
{
  if (j->done == j->ntasks && j->users == 0) {
    atomic_store_explicit(&j->over, 1, memory_order_release);
    if (p->joiners)
      pthread_cond_broadcast(&p->finished);
  }
}

/* Runs tasks of j until none is left to claim; returns how many it ran. */
static int64_t work_on(job *j)
{
  int64_t ran = 0;
  for (;;) {
    int64_t t = atomic_fetch_add(&j->next, 1);
    if (t >= j->ntasks)
      return ran;
    j->fn(j->arg, t);
    ran++;
  }
}

static void *worker(void *arg)
{
  dnc_pool *p = arg;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (p->stop)
      break;
    if (!p->jobs) {
      unsigned seen = atomic_load_explicit(&p->posted, memory_order_acquire);
      pthread_mutex_unlock(&p->lock);
      if (p->spin_ns)
        spin_while_equal(&p->posted, seen, p->spin_ns);
      pthread_mutex_lock(&p->lock);
      if (!p->jobs && !p->stop) {
        p->sleepers++;
        pthread_cond_wait(&p->work, &p->lock);
        p->sleepers--;
      }
      continue;
    }
    job *j = p->jobs;
    j->users++;
    pthread_mutex_unlock(&p->lock);
    int64_t ran = work_on(j);
    pthread_mutex_lock(&p->lock);
    unlink_job(p, j); /* every task is claimed */
    j->done += ran;
    j->users--;
    finish_if_over(p, j);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

dnc_pool *dnc_pool_new(int nthreads, int spin_us)
{
  dnc_pool *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  pthread_once(&fork_once, watch_forks);
  p->born = atomic_load(&forks);
  p->nthreads = nthreads < 1 ? 1 : nthreads;
  p->spin_ns = spin_us > 0 ? (int64_t)spin_us * 1000 : 0;
  atomic_init(&p->omp, NULL);
  atomic_init(&p->posted, 0);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->finished, NULL);
  atomic_init(&p->workers, -1);
  if (p->nthreads > 1) {
    p->threads = calloc((size_t)p->nthreads - 1, sizeof *p->threads);
    if (!p->threads) {
      dnc_pool_free(p);
      return NULL;
    }
  }
  return p;
}

/* The workers, started by the first job that runs on them, not with the
 * pool: a context whose jobs go to an OpenMP team (dnc.torch's, one per
 * thread count) never starts its own, which idled beside the team (7
 * for threads=8; 122 threads in a process that had set 16 thread
 * counts). Those that start are the team: a failed pthread_create leaves
 * fewer, which claim every task as they come. */
static void start_workers(dnc_pool *p)
{
  pthread_mutex_lock(&p->lock);
  if (atomic_load(&p->workers) < 0) {
    int n = 0;
    while (n + 1 < p->nthreads && !pthread_create(&p->threads[n], NULL, worker, p))
      n++;
    atomic_store(&p->workers, n);
  }
  pthread_mutex_unlock(&p->lock);
}

/* whether this process is a fork() of the one that made p: its workers
 * do not exist here, and its lock may have been held by one of them at
 * the fork */
static int forked(const dnc_pool *p)
{
  return atomic_load(&forks) != p->born;
}

void dnc_pool_free(dnc_pool *p)
{
  if (!p)
    return;
  if (forked(p)) { /* nothing to stop or join; the lock is left as it is */
    free(p->threads);
    free(p);
    return;
  }
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  atomic_fetch_add_explicit(&p->posted, 1, memory_order_release);
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < atomic_load(&p->workers); i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->finished);
  free(p);
}

int dnc_pool_threads(const dnc_pool *p)
{
  return p->nthreads;
}

void dnc_pool_use_omp(dnc_pool *p, void *parallel)
{
  omp_parallel_fn f = NULL;
  if (parallel)
    memcpy(&f, &parallel, sizeof f); /* dlsym's object pointer */
  atomic_store_explicit(&p->omp, f, memory_order_release);
}

static void omp_member(void *j)
{
  work_on(j);
}

void dnc_pool_run(dnc_pool *p, int64_t ntasks, void (*fn)(void *, int64_t),
                  void *arg)
{
  if (ntasks <= 0)
    return;
  if (p->nthreads == 1 || ntasks == 1 || forked(p)) {
    for (int64_t t = 0; t < ntasks; t++)
      fn(arg, t);
    return;
  }
  job j = {.fn = fn, .arg = arg, .ntasks = ntasks};
  atomic_init(&j.next, 0);
  atomic_init(&j.over, 0);
  omp_parallel_fn omp = atomic_load_explicit(&p->omp, memory_order_acquire);
  if (omp) { /* not forked since: the pool is older than omp's setting */
    /* the region ends when every member has run out of tasks */
    unsigned n = (unsigned)(ntasks < p->nthreads ? ntasks : p->nthreads);
    omp(omp_member, &j, n, 0);
    return;
  }
  if (atomic_load_explicit(&p->workers, memory_order_acquire) < 0)
    start_workers(p);
  pthread_mutex_lock(&p->lock);
  j.link = p->jobs;
  p->jobs = &j;
  atomic_fetch_add_explicit(&p->posted, 1, memory_order_release);
  if (p->sleepers)
    pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);
  int64_t ran = work_on(&j);
  pthread_mutex_lock(&p->lock);
  unlink_job(p, &j);
  j.done += ran;
  finish_if_over(p, &j);
  pthread_mutex_unlock(&p->lock);
  if (p->spin_ns && spin_while_equal(&j.over, 0, 2 * p->spin_ns))
    return;
  pthread_mutex_lock(&p->lock);
  p->joiners++;
  while (!atomic_load_explicit(&j.over, memory_order_relaxed))
    pthread_cond_wait(&p->finished, &p->lock);
  p->joiners--;
  pthread_mutex_unlock(&p->lock);
}

int dnc_pool_default_threads(void)
{
  const char *env = getenv("DNC_NUM_THREADS");
  if (env && *env) {
    char *end;
    long n = strtol(env, &end, 10);
    if (!*end && n >= 1 && n <= 1024)
      return (int)n;
  }
  /* the CPUs this process may run on (taskset, a container's cpuset,
   * numactl), as OpenMP and nproc count them; the online CPUs where
   * that cannot be read */
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1 &&
      (n < 1 || CPU_COUNT(&set) < n))
    n = CPU_COUNT(&set);
  return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}
