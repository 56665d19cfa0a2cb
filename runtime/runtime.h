/*
 * runtime.h - what the runtime's files share: the objects behind the public
 * handles (api.c), the thread pool (pool.c) and the kernel entry points
 * (kernels.c).
 */
#ifndef DNC_RUNTIME_H
#define DNC_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dnc.h"
#include "dnc_int.h"

/* ---------------------------------------------------------------- pool.c */

typedef struct dnc_pool dnc_pool;
/* nthreads counts the caller, which works on its own jobs: 1 means no
 * worker threads. spin_us: how long a waiting thread spins before it
 * sleeps (an idle worker spin_us, a caller waiting for its job's end
 * twice that); 0: it sleeps at once. NULL when out of memory. */
enum { DNC_SPIN_US_DEFAULT = 100, DNC_SPIN_US_MAX = 100000 };
dnc_pool *dnc_pool_new(int nthreads, int spin_us);
void dnc_pool_free(dnc_pool *p);
int dnc_pool_threads(const dnc_pool *p);
/* Runs fn(arg, t) for t in [0, ntasks), on the caller and the workers;
 * returns when all have run. */
void dnc_pool_run(dnc_pool *p, int64_t ntasks, void (*fn)(void *, int64_t),
                  void *arg);
/* Runs later jobs as regions of an OpenMP runtime: parallel is its
 * GOMP_parallel (from dlsym); NULL goes back to the pool's threads. */
void dnc_pool_use_omp(dnc_pool *p, void *parallel);

/* ----------------------------------------------------------------- api.c */

struct dnc_context {
  uint32_t magic; /* DNC_CONTEXT_LIVE; DNC_CONTEXT_DEAD once released */
  atomic_int handle_freed; /* dnc_context_free was called */
  dnc_jit *jit;
  dnc_pool *pool;
  atomic_int refs; /* the handle, and one per module */
  long long stream_bytes; /* outputs of this many bytes or more are written
                             by the stream kernels; -1: never */
};
#define DNC_CONTEXT_LIVE 0x636e6464u
#define DNC_CONTEXT_DEAD 0xdeadc0deu

/* The kernels of one function in one dtype, compiled on first use. */
typedef struct dnc_kset {
  dnc_kernels k;
  /* the same with non-temporal stores (codegen.h, dnc_target.stream),
   * compiled when first wanted: stream_state 0 not yet, 1 there, -1
   * unavailable (a loaded library, or its compile failed) */
  dnc_kernels stream;
  atomic_int stream_state;
} dnc_kset;

struct dnc_module {
  dnc_context *ctx;
  dnc_mod *m;
  size_t ndiags;
  dnc_diagnostic *diags;
  pthread_mutex_t lock; /* compiling kernels (the DAG grows) */
  dnc_jit_lib *lib;     /* created with the first kernel */
  _Atomic(dnc_kset *) *kernels; /* nfns x DNC_DT__COUNT */
  void *dl;             /* a loaded library (dnc_module_load), or NULL */
  const char *aot_cpu;  /* its chosen level */
};

/* A public module over m, which must be built (dnc_mod_build); m now
 * belongs to *out (also when an error is returned with *out set). */
dnc_status dnc_module_wrap(dnc_context *ctx, dnc_mod *m, dnc_module **out);
/* Sets the calling thread's dnc_last_error text. */
void dnc_set_last_error(const char *msg);
/* st, with dnc_last_error() set to "WHO: " (who NULL: nothing) and the
 * printf-style rest: how every refusal says which call and why. */
dnc_status dnc_refuse(dnc_status st, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The module a function belongs to. */
dnc_module *dnc_function_module(const dnc_function *f);
/* The compiled kernels of f in dtype t (compiling them if needed). */
dnc_status dnc_get_kernels(const dnc_function *f, int t, const dnc_kernels **k);
/* The stream kernels of f in dtype t, compiled on first use; NULL when
 * there are none (then the plain ones serve: the same results). */
const dnc_kernels *dnc_get_stream_kernels(const dnc_function *f, int t);

#endif
