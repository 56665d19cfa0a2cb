/*
 * api.c - the public C API over the compiler's internals.
 */
#include <dlfcn.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dnc_aot.h"
#include "runtime.h"
#include "fit_bounds.h"

/* fork() while another thread compiles: that thread holds a module's
 * lock, the JIT's and LLVM's own, and in the child nobody releases them,
 * so the child's first compile (in a context it inherited, or a new one)
 * waited for ever. Whatever takes those locks (compiling, differentiating,
 * making or freeing a JIT or its code) holds this gate shared; fork()
 * takes it exclusively (pthread_atfork), so that it happens between such
 * work only. Writer-preferring: a thread compiling in a loop must not
 * keep fork() waiting for ever (glibc's default prefers readers); held
 * once a thread (gate_depth), since freeing a module may release its
 * context. The child makes the gate anew: its thread is not the one that
 * locked it. */
static pthread_rwlock_t fork_gate =
    PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_once_t fork_gate_once = PTHREAD_ONCE_INIT;
static _Thread_local int gate_depth;

static void gate_prepare(void) { pthread_rwlock_wrlock(&fork_gate); }
static void gate_parent(void) { pthread_rwlock_unlock(&fork_gate); }
static void gate_child(void)
{
  static const pthread_rwlock_t fresh =
      PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  memcpy(&fork_gate, &fresh, sizeof fresh);
}
static void gate_init(void)
{
  pthread_atfork(gate_prepare, gate_parent, gate_child);
}
static void gate_enter(void)
{
  pthread_once(&fork_gate_once, gate_init);
  if (gate_depth++ == 0)
    pthread_rwlock_rdlock(&fork_gate);
}
static void gate_leave(void)
{
  if (--gate_depth == 0)
    pthread_rwlock_unlock(&fork_gate);
}

/* a module's lock, inside the fork gate: what is done under it grows
 * the module's DAG or compiles */
static void mod_lock(dnc_module *mod)
{
  gate_enter();
  pthread_mutex_lock(&mod->lock);
}
static void mod_unlock(dnc_module *mod)
{
  pthread_mutex_unlock(&mod->lock);
  gate_leave();
}

/* a JIT freed inside the fork gate (LLVM's locks) */
static void jit_free(dnc_jit *j)
{
  gate_enter();
  dnc_jit_free(j);
  gate_leave();
}

static _Thread_local char last_error[512];

const char *dnc_last_error(void)
{
  return last_error;
}

void dnc_set_last_error(const char *msg)
{
  snprintf(last_error, sizeof last_error, "%s", msg ? msg : "");
}

dnc_status dnc_refuse(dnc_status st, const char *who, const char *fmt, ...)
{
  int n = who ? snprintf(last_error, sizeof last_error, "%s: ", who) : 0;
  if (n < 0 || (size_t)n >= sizeof last_error)
    n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
  va_end(ap);
  return st;
}

const char *dnc_version(void)
{
  return DNC_VERSION_STRING;
}

int dnc_abi_version(void)
{
  return DNC_ABI_VERSION;
}

const char *dnc_status_string(dnc_status s)
{
  switch (s) {
  case DNC_OK: return "success";
  case DNC_ERR_SOURCE: return "the source has errors";
  case DNC_ERR_ARGUMENT: return "invalid argument";
  case DNC_ERR_NOT_FOUND: return "not found";
  case DNC_ERR_DTYPE: return "unknown or mismatched dtype";
  case DNC_ERR_SHAPE: return "mismatched tensor shapes";
  case DNC_ERR_COMPILE: return "code generation failed";
  case DNC_ERR_MEMORY: return "out of memory";
  case DNC_ERR_LOAD: return "the library cannot be loaded";
  }
  return "unknown status";
}

void dnc_options_init(dnc_options *o)
{
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->opt_level = 2;
}

/* stream_bytes 0: $DNC_STREAM_BYTES (-1, or a size as $DNC_CACHE_MAX
 * writes one: 64M), else the last-level cache's size capped at 64 MiB.
 * Larger outputs would leave the caches before they are read anyway:
 * written past them, they cost no read for ownership (docs/performance.md,
 * round five, has where the cap comes from). */
static dnc_status stream_default(const char *who, long long *out)
{
  const char *env = getenv("DNC_STREAM_BYTES");
  if (env && *env) {
    long long v = -1;
    if (strcmp(env, "-1") && dnc_size_parse(env, &v))
      return dnc_refuse(DNC_ERR_ARGUMENT, who, "$DNC_STREAM_BYTES is "
                        "'%.40s%s': it must be -1 (never), 0 (the default) "
                        "or a size in bytes (with K, M, G or T for 2^10 to "
                        "2^40: 64M)", env, strlen(env) > 40 ? "..." : "");
    if (v) {
      *out = v;
      return 0;
    }
  }
  long llc = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
  llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0)
    llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  long long cap = 64ll << 20;
  *out = llc > 0 && llc < cap ? llc : cap;
  return 0;
}

/* $DNC_SPIN_US: how long the pool's waiting threads spin (pool.c), an
 * integer from 0 to DNC_SPIN_US_MAX; unset or empty: the default. who:
 * the call, for dnc_last_error(), as in stream_default */
static dnc_status spin_default(const char *who, int *out)
{
  const char *env = getenv("DNC_SPIN_US");
  *out = DNC_SPIN_US_DEFAULT;
  if (!env || !*env)
    return 0;
  char *end;
  errno = 0;
  long v = strtol(env, &end, 10);
  if (errno || *end || !isdigit((unsigned char)*env) || v > DNC_SPIN_US_MAX)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "$DNC_SPIN_US is '%.40s%s': it "
                      "must be an integer from 0 (no spinning) to %d "
                      "microseconds", env, strlen(env) > 40 ? "..." : "",
                      DNC_SPIN_US_MAX);
  *out = (int)v;
  return 0;
}

dnc_status dnc_context_create(const dnc_options *o, dnc_context **out)
{
  if (!out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_context_create", "out is NULL");
  *out = NULL;
  dnc_options def;
  if (!o) {
    dnc_options_init(&def);
    o = &def;
  }
  static const char who[] = "dnc_context_create";
  if (o->opt_level < 0 || o->opt_level > 3)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "opt_level is %d, not 0..3",
                      o->opt_level);
  if (o->threads < 0 || o->threads > 1024)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "threads is %d, not 0 (the "
                      "default) to 1024", o->threads);
  if (o->math_bits != 0 && o->math_bits != 8 && o->math_bits != 11 &&
      o->math_bits != 24)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "math_bits is %d, not 0, 8, 11 "
                      "or 24", o->math_bits);
  if (o->cache < -1 || o->cache > 1)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "cache is %d, not 0 (as $DNC_CACHE "
                      "says), 1 (on) or -1 (off)", o->cache);
  long long stream = o->stream_bytes;
  if (stream < -1)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "stream_bytes is %lld, not -1 "
                      "(never), 0 (as $DNC_STREAM_BYTES says) or a size in "
                      "bytes", stream);
  int spin_us;
  if ((!stream && stream_default(who, &stream)) || spin_default(who, &spin_us))
    return DNC_ERR_ARGUMENT;
  if (dnc_kcache_enabled(o->cache) && dnc_kcache_max() < 0) {
    const char *env = getenv("DNC_CACHE_MAX");
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "$DNC_CACHE_MAX is '%.40s%s': it "
                      "must be a size in bytes (with K, M, G or T for 2^10 to "
                      "2^40: 512M) or 0 (no bound)", env,
                      strlen(env) > 40 ? "..." : "");
  }
  dnc_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return DNC_ERR_MEMORY;
  ctx->stream_bytes = stream;
  dnc_jit_options jo = {o->opt_level, o->cpu, o->features,
                        o->dump_ir ? o->dump_ir : getenv("DNC_DUMP_IR"),
                        o->math_bits, o->cache, o->cache_dir};
  char *err = NULL;
  int bad_name;
  gate_enter();
  ctx->jit = dnc_jit_new(&jo, &err, &bad_name);
  gate_leave();
  if (!ctx->jit) {
    /* named as the other refusals are (section 3 of docs/c-api.md) */
    if (err && strncmp(err, who, strlen(who)))
      dnc_refuse(DNC_OK, who, "%s", err);
    else
      dnc_set_last_error(err);
    free(err);
    free(ctx);
    return bad_name ? DNC_ERR_ARGUMENT : DNC_ERR_COMPILE;
  }
  ctx->pool = dnc_pool_new(o->threads ? o->threads : dnc_pool_default_threads(),
                           spin_us);
  if (!ctx->pool) {
    jit_free(ctx->jit);
    free(ctx);
    return DNC_ERR_MEMORY;
  }
  atomic_init(&ctx->refs, 1);
  atomic_init(&ctx->handle_freed, 0);
  ctx->magic = DNC_CONTEXT_LIVE;
  dnc_set_last_error(NULL);
  *out = ctx;
  return DNC_OK;
}

dnc_context *dnc_context_new(void)
{
  dnc_context *ctx;
  return dnc_context_create(NULL, &ctx) == DNC_OK ? ctx : NULL;
}

/* Freed handles: a context given up by dnc_context_free is refused by
 * every entry that takes one (its modules keep it alive meanwhile). Once
 * released, its memory is not given back at once: the last QUARANTINE
 * released contexts stay allocated with magic DNC_CONTEXT_DEAD, so that a
 * use of such a handle reads memory that is still allocated and is
 * refused; the oldest is freed as a new one comes in. Past that, a freed
 * handle is undefined behaviour, as in C generally (docs/c-api.md). */
enum { QUARANTINE = 64 };
static dnc_context *quarantine[QUARANTINE];
static unsigned quarantine_next;
static pthread_mutex_t quarantine_lock = PTHREAD_MUTEX_INITIALIZER;

static void context_release(dnc_context *ctx)
{
  if (atomic_fetch_sub(&ctx->refs, 1) != 1)
    return;
  dnc_pool_free(ctx->pool);
  jit_free(ctx->jit);
  ctx->pool = NULL;
  ctx->jit = NULL;
  ctx->magic = DNC_CONTEXT_DEAD;
  pthread_mutex_lock(&quarantine_lock);
  dnc_context *old = quarantine[quarantine_next];
  quarantine[quarantine_next] = ctx;
  quarantine_next = (quarantine_next + 1) % QUARANTINE;
  pthread_mutex_unlock(&quarantine_lock);
  free(old);
}

/* 1 when ctx may be used; else 0, with dnc_last_error saying why, named
 * after who (the call) */
static int context_usable(const dnc_context *ctx, const char *who)
{
  if (!ctx) {
    dnc_refuse(DNC_ERR_ARGUMENT, who, "the context is NULL");
    return 0;
  }
  if (ctx->magic != DNC_CONTEXT_LIVE || atomic_load(&ctx->handle_freed)) {
    dnc_refuse(DNC_ERR_ARGUMENT, who, "this context was freed "
               "(dnc_context_free) and cannot be used");
    return 0;
  }
  return 1;
}

void dnc_context_free(dnc_context *ctx)
{
  if (!ctx || !context_usable(ctx, "dnc_context_free"))
    return; /* a second free: refused, not released twice */
  if (atomic_exchange(&ctx->handle_freed, 1)) {
    dnc_refuse(DNC_ERR_ARGUMENT, "dnc_context_free", "this context was freed "
               "(dnc_context_free) and cannot be used");
    return;
  }
  context_release(ctx);
}

dnc_status dnc_context_use_openmp(dnc_context *ctx, const char *library)
{
  if (!context_usable(ctx, "dnc_context_use_openmp"))
    return DNC_ERR_ARGUMENT;
  void *parallel = NULL;
  if (library) {
    if (!*library) {
      dnc_set_last_error("dnc_context_use_openmp: the library's name is "
                         "empty (NULL goes back to dnc's own threads)");
      return DNC_ERR_ARGUMENT;
    }
    /* only a runtime the process already has: a second one would start
     * its own threads, the competition this is meant to end */
    void *h = dlopen(library, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
    if (!h)
      return dnc_refuse(DNC_ERR_NOT_FOUND, "dnc_context_use_openmp", "'%s' is "
                        "not loaded in this process (dnc joins an OpenMP "
                        "runtime that is already there)", library);
    /* RTLD_NODELETE: the runtime is never unloaded from now on (its
     * threads live on, in its code); the handle can go */
    parallel = dlsym(h, "GOMP_parallel");
    dlclose(h);
    if (!parallel)
      return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_context_use_openmp", "'%s' has "
                        "no GOMP_parallel: not an OpenMP runtime dnc can use "
                        "(libgomp, LLVM's libomp, Intel's libiomp5)", library);
  }
  dnc_pool_use_omp(ctx->pool, parallel);
  dnc_set_last_error(NULL);
  return DNC_OK;
}

int dnc_context_threads(const dnc_context *ctx)
{
  return context_usable(ctx, "dnc_context_threads")
             ? dnc_pool_threads(ctx->pool) : 0;
}

const char *dnc_context_cpu(const dnc_context *ctx)
{
  return context_usable(ctx, "dnc_context_cpu")
             ? dnc_jit_cpu(ctx->jit) : NULL;
}

const char *dnc_context_features(const dnc_context *ctx)
{
  return context_usable(ctx, "dnc_context_features")
             ? dnc_jit_features(ctx->jit) : NULL;
}

int dnc_context_vector_bits(const dnc_context *ctx)
{
  return context_usable(ctx, "dnc_context_vector_bits")
             ? (int)dnc_jit_vector_bits(ctx->jit) : 0;
}

static dnc_status wrap(dnc_context *ctx, dnc_mod *m, dnc_module **out)
{
  dnc_module *mod = calloc(1, sizeof *mod);
  if (!mod) {
    dnc_mod_free(m);
    *out = NULL;
    return DNC_ERR_MEMORY;
  }
  mod->m = m;
  mod->ctx = ctx;
  atomic_fetch_add(&ctx->refs, 1);
  pthread_mutex_init(&mod->lock, NULL);
  for (dnc_diag *d = m->diags.head; d; d = d->next)
    mod->ndiags++;
  mod->diags = calloc(mod->ndiags + 1, sizeof *mod->diags);
  if (!mod->diags) {
    dnc_module_free(mod);
    *out = NULL;
    return DNC_ERR_MEMORY;
  }
  size_t i = 0;
  for (dnc_diag *d = m->diags.head; d; d = d->next, i++) {
    mod->diags[i].severity = (dnc_diag_severity)d->sev;
    mod->diags[i].file = d->src ? d->src->name : "";
    mod->diags[i].line = d->line;
    mod->diags[i].column = d->col;
    mod->diags[i].message = d->msg;
  }
  if (m->diags.nerrors) {
    m->nfns = 0; /* a module with errors exposes no functions */
    /* the first error, as FILE:LINE:COL: MESSAGE (FILE: MESSAGE for one
     * about the whole file, as dnc_diag_render writes it), so that
     * dnc_last_error does not keep an earlier call's (the diagnostics
     * have them all) */
    for (dnc_diag *d = m->diags.head; d; d = d->next)
      if (d->sev == DNC_SEV_ERROR) {
        if (d->src && d->loc.start == DNC_NOLOC.start)
          dnc_refuse(DNC_ERR_SOURCE, NULL, "%s: %s", d->src->name, d->msg);
        else if (d->src)
          dnc_refuse(DNC_ERR_SOURCE, NULL, "%s:%d:%d: %s", d->src->name,
                     d->line, d->col, d->msg);
        else
          dnc_set_last_error(d->msg);
        break;
      }
    *out = mod;
    return DNC_ERR_SOURCE;
  }
  mod->kernels = calloc((size_t)m->nfns * DNC_DT__COUNT + 1,
                        sizeof *mod->kernels);
  if (!mod->kernels) {
    dnc_module_free(mod);
    *out = NULL;
    return DNC_ERR_MEMORY;
  }
  for (int i = 0; i < m->nfns; i++) {
    m->fns[i]->owner = mod;
    m->fns[i]->index = i;
  }
  *out = mod;
  return DNC_OK;
}

dnc_status dnc_compile_string(dnc_context *ctx, const char *name,
                              const char *source, size_t len, dnc_module **out)
{
  if (!out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_compile_string", "out is NULL");
  *out = NULL;
  if (!context_usable(ctx, "dnc_compile_string"))
    return DNC_ERR_ARGUMENT;
  if (!source && len)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_compile_string", "source is NULL "
                  "and len is %zu", len);
  dnc_mod *m = dnc_mod_new();
  if (len > DNC_MAX_SOURCE_BYTES)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "source is too large: %zu bytes, at most %u are accepted",
                 len, DNC_MAX_SOURCE_BYTES);
  else
    dnc_mod_add_source(m, name ? name : "<string>", source ? source : "", len);
  if (m->diags.nerrors == 0)
    dnc_mod_build(m);
  return wrap(ctx, m, out);
}

dnc_status dnc_compile_file(dnc_context *ctx, const char *path,
                            dnc_module **out)
{
  if (!out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_compile_file", "out is NULL");
  *out = NULL;
  if (!context_usable(ctx, "dnc_compile_file"))
    return DNC_ERR_ARGUMENT;
  if (!path)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_compile_file", "path is NULL");
  dnc_mod *m = dnc_mod_new();
  dnc_mod_read_file(m, path);
  if (m->diags.nerrors == 0)
    dnc_mod_build(m);
  return wrap(ctx, m, out);
}

dnc_status dnc_module_wrap(dnc_context *ctx, dnc_mod *m, dnc_module **out)
{
  return wrap(ctx, m, out);
}

void dnc_module_free(dnc_module *mod)
{
  if (!mod)
    return;
  gate_enter();
  dnc_jit_lib_free(mod->lib); /* frees the kernels' code */
  gate_leave();
  if (mod->kernels)
    for (size_t i = 0; i < (size_t)mod->m->nfns * DNC_DT__COUNT; i++)
      free(atomic_load(&mod->kernels[i]));
  free(mod->kernels);
  pthread_mutex_destroy(&mod->lock);
  dnc_mod_free(mod->m);
  free(mod->diags);
  context_release(mod->ctx);
  if (mod->dl)
    dlclose(mod->dl); /* after the last use of its strings */
  free(mod);
}

const char *dnc_module_cpu(const dnc_module *mod)
{
  if (!mod)
    return NULL;
  return mod->dl ? mod->aot_cpu : dnc_jit_cpu(mod->ctx->jit);
}

/* Whether the library's table describes the functions of m, as compiled
 * from its sources by this dnc: "" if so, else what differs. */
static const char *aot_mismatch(const dnc_aot_module *d, const dnc_mod *m,
                                char *buf, size_t n)
{
  if ((int)d->nfunctions != m->nfns) {
    snprintf(buf, n, "it lists %u functions, its sources define %d",
             d->nfunctions, m->nfns);
    return buf;
  }
  for (int i = 0; i < m->nfns; i++) {
    const dnc_aot_function *af = &d->functions[i];
    const dnc_fn *f = m->fns[i];
    if (strcmp(af->name, f->name) || af->nparams != f->nparams) {
      snprintf(buf, n, "function %d is '%s' with %d parameters in its table, "
               "'%s' with %d in its sources", i, af->name, af->nparams,
               f->name, f->nparams);
      return buf;
    }
    for (int k = 0; k < f->nparams; k++) {
      const dnc_aot_param *ap = &af->params[k];
      if (strcmp(ap->name, f->params[k].name) ||
          ap->per_channel != f->params[k].per_channel ||
          ap->default_value != f->params[k].def) {
        snprintf(buf, n, "parameter '%s' of '%s' differs between its table "
                 "and its sources", ap->name, f->name);
        return buf;
      }
    }
  }
  return "";
}

static dnc_status load_error(const char *path, const char *why)
{
  return dnc_refuse(DNC_ERR_LOAD, path, "%s", why);
}

/* ORDER: DNC_K_* */
static void set_kernels(dnc_kernels *k, void *const *fns)
{
  k->forward = (dnc_forward_fn)fns[DNC_K_FWD];
  k->backward = (dnc_backward_fn)fns[DNC_K_BWD];
  k->layer_forward = (dnc_layer_forward_fn)fns[DNC_K_LAYER_FWD];
  k->layer_backward = (dnc_layer_backward_fn)fns[DNC_K_LAYER_BWD];
}

/* Whether the image of the loaded library h was mapped from the file
 * (dev, ino): the mapping of one of its symbols in /proc/self/maps. 0
 * where that cannot be told. */
static int mapped_from(void *h, dev_t dev, ino_t ino)
{
  void *sym = dlsym(h, "dnc_aot_module_get");
  FILE *fp = sym ? fopen("/proc/self/maps", "re") : NULL;
  if (!fp)
    return 0;
  char line[4352];
  int same = 0;
  while (fgets(line, sizeof line, fp)) {
    unsigned long lo, hi, off, ino_m;
    unsigned maj, mnr;
    if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &mnr,
               &ino_m) == 6 &&
        (uintptr_t)sym >= lo && (uintptr_t)sym < hi) {
      same = ino_m == (unsigned long)ino && makedev(maj, mnr) == dev;
      break;
    }
  }
  fclose(fp);
  return same;
}

/* Removes and frees private_copy's file and directory (NULL: none) */
static void drop_copy(char *file, char *dir)
{
  if (file) {
    unlink(file);
    rmdir(dir);
  }
  free(file);
  free(dir);
}

/* A copy of the file src in a new private directory, whose path is
 * returned (malloc'ed; *dir the directory's, for the caller to remove);
 * NULL with errno set where it cannot be made. */
static char *private_copy(const char *src, char **dir)
{
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  size_t n = strlen(tmp) + 32;
  char *d = malloc(n), *f = malloc(n);
  if (!d || !f) {
    free(d);
    free(f);
    errno = ENOMEM;
    return NULL;
  }
  snprintf(d, n, "%s/dnc-load.XXXXXX", tmp);
  int ok = 0, in = -1, to = -1;
  if (mkdtemp(d)) {
    snprintf(f, n, "%s/lib.so", d);
    in = open(src, O_RDONLY | O_CLOEXEC);
    /* a copy past the file-size limit had ended the process */
    struct stat st;
    if (in >= 0 && !fstat(in, &st) &&
        dnc_past_fsize_limit((uint64_t)st.st_size)) {
      close(in);
      in = -1;
    }
    if (in >= 0)
      to = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    ok = to >= 0;
    char buf[1 << 16];
    while (ok) {
      ssize_t r = read(in, buf, sizeof buf);
      if (r == 0)
        break;
      if (r < 0) {
        ok = errno == EINTR;
        continue;
      }
      ok = !dnc_write_fd(to, buf, (size_t)r); /* one that wrote nothing
                                                   looped forever */
    }
    int e = errno;
    if (to >= 0 && close(to))
      ok = 0;
    if (in >= 0)
      close(in);
    if (!ok) {
      unlink(f);
      rmdir(d);
    }
    errno = e;
  }
  if (!ok) {
    free(d);
    free(f);
    return NULL;
  }
  *dir = d;
  return f;
}

dnc_status dnc_module_load(dnc_context *ctx, const char *path,
                           dnc_module **out)
{
  if (!out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_module_load", "out is NULL");
  *out = NULL;
  if (!context_usable(ctx, "dnc_module_load"))
    return DNC_ERR_ARGUMENT;
  if (!path || !*path)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_module_load", "path is %s",
                  path ? "empty" : "NULL");
  /* dlopen searches the library path for a bare name; a file is meant */
  char *full = malloc(strlen(path) + 3);
  if (!full)
    return DNC_ERR_MEMORY;
  sprintf(full, "%s%s", strchr(path, '/') ? "" : "./", path);
  /* before dlopen runs any of its code: whole, sealed, this ABI */
  char bad[256];
  if (dnc_aot_check_file(full, bad, sizeof bad)) {
    free(full);
    return load_error(path, bad);
  }
  /* dlopen hands back a library already loaded under this name without
   * reading the file: after a rebuild renamed over it (dnc compile
   * writes so) that is the old library, its old sources and kernels, as
   * long as a module of it lives (a notebook that compiles again). A
   * file other than the loaded image's is loaded from a private copy. */
  char *copy = NULL, *copy_dir = NULL;
  struct stat now;
  void *old = dlopen(full, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
  if (old) {
    int same = !stat(full, &now) && mapped_from(old, now.st_dev, now.st_ino);
    dlclose(old);
    if (!same) {
      copy = private_copy(full, &copy_dir);
      if (!copy || dnc_aot_check_file(copy, bad, sizeof bad)) {
        dnc_status st = load_error(
            path, copy ? bad : "another library loaded from this path is "
                               "still in use, and a private copy of the "
                               "new one could not be made in $TMPDIR");
        drop_copy(copy, copy_dir);
        free(full);
        return st;
      }
    }
  }
  void *dl = dlopen(copy ? copy : full, RTLD_NOW | RTLD_LOCAL);
  free(full);
  drop_copy(copy, copy_dir); /* mapped now, or refused: not needed */
  if (!dl) {
    const char *e = dlerror();
    return load_error(path, e ? e : "dlopen failed");
  }
  const dnc_aot_module *(*get)(void) =
      (const dnc_aot_module *(*)(void))dlsym(dl, "dnc_aot_module_get");
  const dnc_aot_module *d = get ? get() : NULL;
  const char *why = NULL;
  char buf[256];
  if (!d)
    why = "not a library written by dnc compile (no dnc_aot_module_get)";
  else if (d->abi != DNC_AOT_ABI) {
    snprintf(buf, sizeof buf, "written for library ABI %u (dnc %s); this "
             "libdnc reads ABI %d: compile it again", d->abi,
             d->dnc_version ? d->dnc_version : "?", DNC_AOT_ABI);
    why = buf;
  } else if (!d->functions) {
    snprintf(buf, sizeof buf, "no level for this CPU: %s",
             d->error ? d->error : "unknown reason");
    why = buf;
  }
  if (why) {
    dnc_status st = load_error(path, why);
    dlclose(dl);
    return st;
  }
  /* the front end again, from the sources the library carries: the
   * functions, their parameters and the reference interpreter */
  dnc_mod *m = dnc_mod_new();
  for (uint32_t i = 0; i < d->nsources; i++)
    dnc_mod_add_source(m, d->sources[i].name, d->sources[i].text,
                       (size_t)d->sources[i].len);
  if (dnc_mod_build(m) == 0)
    why = aot_mismatch(d, m, buf, sizeof buf);
  else
    why = "its sources do not compile with this dnc";
  if (*why) {
    dnc_status st = load_error(path, why);
    dnc_mod_free(m);
    dlclose(dl);
    return st;
  }
  dnc_module *mod;
  dnc_status st = wrap(ctx, m, &mod);
  if (st != DNC_OK) {
    dnc_module_free(mod);
    dlclose(dl);
    return st;
  }
  mod->dl = dl;
  mod->aot_cpu = d->cpu;
  for (int i = 0; i < m->nfns; i++)
    for (int t = 0; t < DNC_DT__COUNT; t++) {
      dnc_kset *ks = calloc(1, sizeof *ks);
      if (!ks) {
        dnc_module_free(mod);
        return DNC_ERR_MEMORY;
      }
      /* ORDER: DNC_K_*, DNC_AOT_FORMS */
      set_kernels(&ks->k, d->functions[i].kernels + t * DNC_AOT_FORMS);
      atomic_init(&ks->stream_state, -1); /* not in the library */
      atomic_store(&mod->kernels[i * DNC_DT__COUNT + t], ks);
    }
  dnc_set_last_error(NULL);
  *out = mod;
  return DNC_OK;
}

dnc_module *dnc_function_module(const dnc_function *f)
{
  return f->owner;
}

const char *dnc_dtype_name(dnc_dtype t)
{
  return (unsigned)t < DNC_DT__COUNT ? dnc_dtype_names[t] : NULL;
}

dnc_status dnc_get_kernels(const dnc_function *f, int t, const dnc_kernels **out)
{
  dnc_module *mod = f->owner;
  if (!mod)
    return DNC_ERR_ARGUMENT;
  _Atomic(dnc_kset *) *slot = &mod->kernels[f->index * DNC_DT__COUNT + t];
  dnc_kset *ks = atomic_load_explicit(slot, memory_order_acquire);
  if (ks) {
    *out = &ks->k;
    return DNC_OK;
  }
  dnc_status st = DNC_OK;
  mod_lock(mod);
  ks = atomic_load_explicit(slot, memory_order_acquire);
  if (!ks) {
    if (!mod->lib)
      mod->lib = dnc_jit_lib_new(mod->ctx->jit);
    void *fns[DNC_K__COUNT];
    char *err = NULL;
    if (dnc_jit_compile(mod->lib, mod->m, (dnc_fn *)f, t, 0, fns, &err)) {
      dnc_set_last_error(err);
      free(err);
      st = DNC_ERR_COMPILE;
    } else if (!(ks = calloc(1, sizeof *ks))) {
      st = DNC_ERR_MEMORY;
    } else {
      set_kernels(&ks->k, fns);
      atomic_store_explicit(slot, ks, memory_order_release);
    }
  }
  mod_unlock(mod);
  if (ks)
    *out = &ks->k;
  return st;
}

const dnc_kernels *dnc_get_stream_kernels(const dnc_function *f, int t)
{
  const dnc_kernels *k;
  if (dnc_get_kernels(f, t, &k) != DNC_OK)
    return NULL;
  dnc_kset *ks = (dnc_kset *)k; /* k is its first member */
  int state = atomic_load_explicit(&ks->stream_state, memory_order_acquire);
  if (state)
    return state > 0 ? &ks->stream : NULL;
  dnc_module *mod = f->owner;
  mod_lock(mod);
  state = atomic_load_explicit(&ks->stream_state, memory_order_acquire);
  if (!state) {
    void *fns[DNC_K__COUNT];
    char *err = NULL;
    state = -1;
    if (dnc_jit_compile(mod->lib, mod->m, (dnc_fn *)f, t, 1, fns, &err) == 0) {
      set_kernels(&ks->stream, fns);
      state = 1;
    }
    free(err); /* the plain kernels, which compiled, serve instead */
    atomic_store_explicit(&ks->stream_state, state, memory_order_release);
  }
  mod_unlock(mod);
  return state > 0 ? &ks->stream : NULL;
}

dnc_status dnc_function_kernels(const dnc_function *f, dnc_dtype t,
                                dnc_kernels *out)
{
  if (!f || !out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_kernels", "%s",
                      f ? "out is NULL" : "the function is NULL");
  if ((unsigned)t >= DNC_DT__COUNT)
    return dnc_refuse(DNC_ERR_DTYPE, "dnc_function_kernels", "dtype %d is "
                      "none of f32, f64, bf16, f16", (int)t);
  const dnc_kernels *k;
  dnc_status st = dnc_get_kernels(f, (int)t, &k);
  if (st == DNC_OK)
    *out = *k;
  return st;
}

size_t dnc_module_diagnostic_count(const dnc_module *mod)
{
  return mod ? mod->ndiags : 0;
}

const dnc_diagnostic *dnc_module_diagnostic(const dnc_module *mod, size_t i)
{
  return mod && i < mod->ndiags ? &mod->diags[i] : NULL;
}

/* snprintf-style: at most n-1 bytes of text and a NUL into buf; frees
 * text; returns len. */
static size_t copy_text(char *text, size_t len, char *buf, size_t n)
{
  if (buf && n) {
    size_t k = len < n - 1 ? len : n - 1;
    memcpy(buf, text, k);
    buf[k] = 0;
  }
  free(text);
  return len;
}

size_t dnc_module_format_diagnostics(const dnc_module *mod, char *buf, size_t n)
{
  if (!mod)
    return 0;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return 0;
  dnc_diags_render(f, &mod->m->diags);
  fclose(f);
  return copy_text(text, len, buf, n);
}

int dnc_module_function_count(const dnc_module *mod)
{
  return mod ? mod->m->nfns : 0;
}

const dnc_function *dnc_module_function(const dnc_module *mod, int i)
{
  if (!mod || i < 0 || i >= mod->m->nfns)
    return NULL;
  return mod->m->fns[i];
}

const dnc_function *dnc_module_find(const dnc_module *mod, const char *name)
{
  if (!mod || !name)
    return NULL;
  return dnc_mod_find(mod->m, name);
}

const char *dnc_function_name(const dnc_function *f)
{
  return f ? f->name : NULL;
}

int dnc_function_param_count(const dnc_function *f)
{
  return f ? f->nparams : 0;
}

dnc_status dnc_function_param(const dnc_function *f, int i, dnc_param_info *out)
{
  if (!f || !out)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_param", "%s is NULL",
                  f ? "out" : "f");
  if (i < 0 || i >= f->nparams)
    return dnc_refuse(DNC_ERR_NOT_FOUND, "dnc_function_param", "%s has %d "
                  "parameter%s; there is no index %d", f->name, f->nparams,
                  f->nparams == 1 ? "" : "s", i);
  out->name = f->params[i].name;
  out->default_value = f->params[i].def;
  out->kind = f->params[i].per_channel ? DNC_PARAM_PER_CHANNEL
                                       : DNC_PARAM_SCALAR;
  return DNC_OK;
}

int dnc_function_param_index(const dnc_function *f, const char *name)
{
  if (!f || !name)
    return -1;
  return dnc_fn_param_index(f, name);
}

/* do a[0..na) and b[0..nb) share an element? */
static int spans_overlap(const double *a, size_t na, const double *b, size_t nb)
{
  uintptr_t p = (uintptr_t)a, q = (uintptr_t)b;
  return p < q ? (q - p) / sizeof *a < na : (p - q) / sizeof *a < nb;
}

dnc_status dnc_function_eval(const dnc_function *f, const double *x, double *y,
                             size_t n, const double *params)
{
  if (!f || (n && (!x || !y)))
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_eval", "%s is NULL%s",
                  !f ? "f" : !x ? "x" : "y", f ? " and n is not 0" : "");
  /* y[i] is written before x[i + 1] is read: y may be x, not a shifted
   * x (y = x + 1 overwrote each input with the previous result, and gave
   * DNC_OK); nor may y hold params */
  if (n && y != x && spans_overlap(x, n, y, n))
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_eval",
                      "y overlaps x without being the same array");
  if (n && params && spans_overlap(params, (size_t)f->nparams, y, n))
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_eval", "y overlaps params");
  double defaults[64];
  double *heap = NULL;
  if (!params) {
    double *d = defaults;
    if (f->nparams > 64) {
      d = heap = malloc(sizeof *heap * (size_t)f->nparams);
      if (!d)
        return DNC_ERR_MEMORY;
    }
    for (int i = 0; i < f->nparams; i++)
      d[i] = f->params[i].def;
    params = d;
  }
  for (size_t i = 0; i < n; i++)
    y[i] = dnc_interp(f, x[i], params);
  free(heap);
  return DNC_OK;
}

size_t dnc_function_source(const dnc_function *f, char *buf, size_t n)
{
  char *text = NULL;
  size_t len = 0;
  FILE *o;
  if (!f || !(o = open_memstream(&text, &len)))
    return 0;
  dnc_print_fn(o, f);
  fclose(o);
  return copy_text(text, len, buf, n);
}

dnc_status dnc_function_diff(const dnc_function *f, const char *wrt,
                             int order, dnc_format format, char *buf,
                             size_t n, size_t *len)
{
  if (len)
    *len = 0;
  if (!f || !f->owner || !wrt || (unsigned)format > DNC_FORMAT_TORCH)
    return dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_diff", "%s",
                  !f ? "f is NULL" : !f->owner ? "f's module is gone"
                  : !wrt ? "wrt is NULL" : "an unknown format");
  enum { MAXSPEC = 4096 };
  dnc_dspec *specs = malloc(MAXSPEC * sizeof *specs);
  if (!specs)
    return DNC_ERR_MEMORY;
  char err[256];
  int ns;
  dnc_status st = DNC_OK;
  if (dnc_dspec_parse(f, wrt, order, specs, MAXSPEC, &ns, err,
                      sizeof err) < 0) {
    free(specs);
    return dnc_refuse(strstr(err, "has no variable") ? DNC_ERR_NOT_FOUND
                                                     : DNC_ERR_ARGUMENT,
                      "dnc_function_diff", "%s", err);
  }
  char *text = NULL;
  size_t tlen = 0;
  FILE *o = open_memstream(&text, &tlen);
  if (!o) {
    free(specs);
    return DNC_ERR_MEMORY;
  }
  dnc_print_prelude(o, (int)format);
  /* differentiation grows the module's DAG, as compiling kernels does */
  dnc_module *mod = f->owner;
  mod_lock(mod);
  dnc_print_head(o, f, (int)format);
  dnc_node **ds = malloc(sizeof *ds * (size_t)(ns > 0 ? ns : 1));
  if (!ds)
    st = DNC_ERR_MEMORY;
  for (int j = 0; j < ns && st == DNC_OK; j++) {
    dnc_node *e = dnc_dspec_derive(mod->m, (dnc_fn *)f, &specs[j]);
    if (!e) {
      dnc_diff_too_large_msg(err, sizeof err, f);
      st = dnc_refuse(DNC_ERR_ARGUMENT, "dnc_function_diff", "%s", err);
    } else if (dnc_dspec_print(o, f, &specs[j], e, (int)format, 0) < 0) {
      st = DNC_ERR_MEMORY;
    }
    ds[j] = e;
  }
  if (st == DNC_OK &&
      dnc_dspec_print_all(o, f, specs, ds, ns, (int)format) < 0)
    st = DNC_ERR_MEMORY;
  free(ds);
  mod_unlock(mod);
  fclose(o);
  free(specs);
  if (st != DNC_OK) {
    free(text);
    return st;
  }
  size_t l = copy_text(text, tlen, buf, n);
  if (len)
    *len = l;
  return DNC_OK;
}

/* dnc_function_fit and dnc_function_fit_bounded, named who */
static dnc_status fit_call(const char *who, const dnc_function *f,
                           const double *x, const double *y, size_t n,
                           const double *params, const int *fixed,
                           const double *lower, const double *upper,
                           const dnc_fit_options *o, dnc_fit_result *r,
                           int *at_bound)
{
  /* a refused call leaves nothing to free, and r safe to free anyway */
  if (r)
    memset(r, 0, sizeof *r);
  if (!f || !f->owner || !x || !y || !r || n > INT_MAX)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "%s",
                  !f ? "f is NULL" : !f->owner ? "f's module is gone"
                  : !x ? "x is NULL" : !y ? "y is NULL" : !r ? "r is NULL"
                  : "more than INT_MAX points");
  if (o && o->max_iter < 0)
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "max_iter is "
                      "%d, not 0 or more", o->max_iter);
  if (o && (!(o->ftol >= 0) || !(o->xtol >= 0) || !(o->gtol >= 0)))
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "%s is %g, "
                      "not 0 or more", !(o->ftol >= 0) ? "ftol"
                      : !(o->xtol >= 0) ? "xtol" : "gtol",
                      !(o->ftol >= 0) ? o->ftol : !(o->xtol >= 0) ? o->xtol
                      : o->gtol);
  dnc_fn *fn = (dnc_fn *)f;
  double *p0 = malloc(sizeof *p0 * ((size_t)fn->nparams + 1));
  if (!p0)
    return DNC_ERR_MEMORY;
  for (int j = 0; j < fn->nparams; j++)
    p0[j] = params ? params[j] : fn->params[j].def;
  char why[300];
  if (dnc_fit_bounds_check(fn, p0, fixed, o, lower, upper, why,
                           sizeof why) >= 0) {
    free(p0);
    return dnc_refuse(DNC_ERR_ARGUMENT, who, "%s", why);
  }
  /* the Jacobian's derivatives grow the module's DAG: made here under its
   * lock, they are kept (dnc_derive_prog), and dnc_fit only reads them */
  dnc_module *mod = f->owner;
  mod_lock(mod);
  for (int j = 0; j < fn->nparams; j++)
    if (!fixed || !fixed[j])
      dnc_derive_prog(mod->m, fn, j);
  mod_unlock(mod);
  dnc_fit_bounded(mod->m, fn, x, y, (int)n, p0, fixed, lower, upper, o, r,
                  at_bound);
  free(p0);
  return DNC_OK;
}

dnc_status dnc_function_fit(const dnc_function *f, const double *x,
                            const double *y, size_t n, const double *params,
                            const int *fixed, const dnc_fit_options *o,
                            dnc_fit_result *r)
{
  return fit_call("dnc_function_fit", f, x, y, n, params, fixed, NULL, NULL,
                  o, r, NULL);
}

dnc_status dnc_function_fit_bounded(const dnc_function *f, const double *x,
                                    const double *y, size_t n,
                                    const double *params, const int *fixed,
                                    const double *lower, const double *upper,
                                    const dnc_fit_options *o,
                                    dnc_fit_result *r, int *at_bound)
{
  return fit_call("dnc_function_fit_bounded", f, x, y, n, params, fixed,
                  lower, upper, o, r, at_bound);
}
