/*
 * aot.c - ahead of time: `dnc compile FILE... -o OUT`.
 *
 * The kernels are the JIT's (codegen.c, the same target settings, the same
 * pass pipeline), emitted with LLVMTargetMachineEmitToMemoryBuffer and
 * written to a file instead of handed to an LLJIT, so that a library and a
 * JIT context for the same CPU compute the same bits.
 *
 * A shared library (--emit=so, the default) carries one copy of every
 * kernel per CPU level: x86-64-v2, -v3 and -v4 unless --cpu says
 * otherwise, as hidden symbols "dncL<level>_<fn>_<dtype>_<form>",
 * compiled in jobs of up to 8 functions for one level, each job an object
 * file of its own, on every CPU (compile_objects). A C file written here holds
 * the descriptor of runtime/dnc_aot.h (copied in verbatim), the seal note
 * that aotseal.c fills in after the link and dnc_module_load checks, a
 * constructor that picks the best level this CPU runs (or $DNC_AOT_CPU)
 * when the library is loaded, and the exported entry points
 * "dnc_<fn>_<dtype>_<form>", each a call through the chosen level's table:
 * a load-time dispatch table rather than an ifunc, because choosing reads
 * the environment, which an ifunc resolver may not. The system's C
 * compiler driver ($CC, else cc) compiles that file and links it with the
 * objects into the library (-static-libgcc, so the library needs only libc
 * and libm).
 *
 * The scalar fallbacks the kernels call (rtmath.c's dnc_rt_*, for the
 * operations without vector code) are defined in each object as internal
 * functions over the C library's double functions, exactly as rtmath.c
 * computes them.
 *
 * --emit=obj, asm and llvm write one CPU's kernels under the exported
 * names, without descriptor or dispatch: for linking into a program, and
 * for cross-compiling to any target LLVM has. --emit=header (or -H) writes
 * the C header.
 *
 * Outputs go to a temporary file in the output's directory, renamed over
 * the output only when everything succeeded; intermediate files live in a
 * temporary directory removed on every path.
 */
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>

#include "aotseal.h"
#include "codegen.h"
#include "dnc.h"
#include "dnc_aot_h.inc" /* dnc_aot_h_text: runtime/dnc_aot.h (Makefile) */

extern char **environ;

enum { MAX_LEVELS = 4 };

/* One CPU level: its target and the prefix of its kernels' symbols. */
typedef struct level {
  dnc_target t;
  char *name; /* as the descriptor and $DNC_AOT_CPU say it */
} level;

typedef struct aot {
  dnc_mod *m;
  const dnc_aot_options *o;
  char *triple;
  int nlevels;
  level lv[MAX_LEVELS];
  char *tmpdir; /* intermediate files; NULL until made */
  int njobs;    /* the objects in it, k0.o .. (compile_objects) */
  pthread_mutex_t *dag_lock; /* m's DAG, while several threads compile */
  char *err;
} aot;

/* ------------------------------------------------------------ helpers */

static char *xstrdup(const char *s)
{
  char *r = strdup(s);
  if (!r)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return r;
}

/* A malloc'd printf. */
static char *xprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  va_end(ap);
  return s;
}

/* Records the first error; returns -1. */
static int fail(aot *a, const char *fmt, ...)
{
  if (a->err)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&a->err, fmt, ap) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  va_end(ap);
  return -1;
}

/* The architectures dnc compiles for (the triple's first part, by
 * prefix): those whose LLVM back ends take dnc's kernels. Others are
 * refused before any work: LLVM 19 crashed on some (avr, ve: signals;
 * s390x: f16 loads it cannot select; xcore, bpf, amdgcn, r600: internal
 * errors). */
static const char *const arch_ok[] = {
    "x86_64", "i386", "i486", "i586", "i686", "aarch64", "arm64", "arm",
    "thumb", "riscv32", "riscv64", "powerpc64le", "ppc64le", "powerpc64",
    "ppc64", "mips", "wasm32", "wasm64", "nvptx"};

static int arch_supported(const char *triple)
{
  if (!strncmp(triple, "aarch64_be", 10) || !strncmp(triple, "armeb", 5) ||
      !strncmp(triple, "thumbeb", 7))
    return 0; /* big-endian ARM: untested */
  for (size_t i = 0; i < sizeof arch_ok / sizeof arch_ok[0]; i++)
    if (!strncmp(triple, arch_ok[i], strlen(arch_ok[i])))
      return 1;
  return 0;
}

static int is_x86_64(const char *triple)
{
  return !strncmp(triple, "x86_64", 6);
}

/* The x86-64 micro-architecture levels, in increasing order: those the
 * dispatch can check at load time. */
static const char *const x86_levels[] = {"x86-64", "x86-64-v2", "x86-64-v3",
                                         "x86-64-v4"};

static int x86_level_index(const char *cpu)
{
  for (int i = 0; i < 4; i++)
    if (!strcmp(cpu, x86_levels[i]))
      return i;
  return -1;
}

/* Closes fp: nonzero, errno set, when anything written to it failed. */
static int write_failed(FILE *fp)
{
  int bad = fflush(fp) != 0 || ferror(fp);
  int e = errno;
  if (fclose(fp) != 0)
    return 1;
  errno = e;
  return bad;
}

/* ---------------------------------------------------------- temp files */

/* A temporary file name beside path ("dir/.name.XXXXXX"), created empty
 * with mkstemp: proves the directory writable before any work. */
static int make_tmpdir(aot *a)
{
  const char *base = getenv("TMPDIR");
  base = base && *base ? base : "/tmp";
  /* named with the pid: a later dnc removes it if this one is killed */
  dnc_temps_sweep(base, "dnc-compile.");
  char *d = xprintf("%s/dnc-compile.%ld.XXXXXX", base, (long)getpid());
  if (!mkdtemp(d)) {
    fail(a, "cannot make a temporary directory in %s: %s", base,
         strerror(errno));
    free(d);
    return -1;
  }
  a->tmpdir = d;
  dnc_temp_add(d);
  char *p = xprintf("%s/dispatch.c", d);
  dnc_temp_add(p);
  free(p);
  return 0;
}

/* The object file of job j (compile_objects). */
static char *job_path(const aot *a, int j)
{
  return xprintf("%s/k%d.o", a->tmpdir, j);
}

/* Removes the files dnc wrote into the temporary directory, then it. */
static void remove_tmpdir(aot *a)
{
  if (!a->tmpdir)
    return;
  for (int j = -1; j < a->njobs; j++) {
    char *p = j < 0 ? xprintf("%s/dispatch.c", a->tmpdir) : job_path(a, j);
    unlink(p);
    free(p);
  }
  rmdir(a->tmpdir);
  free(a->tmpdir);
  a->tmpdir = NULL;
}

/* --------------------------------------------------------- the levels */

static int add_level(aot *a, const char *cpu, const char *features)
{
  if (a->nlevels == MAX_LEVELS)
    return fail(a, "--cpu names more than %d CPUs", MAX_LEVELS);
  for (int i = 0; i < a->nlevels; i++)
    if (!strcmp(a->lv[i].name, cpu))
      return fail(a, "--cpu names '%s' twice", cpu);
  char *bad = dnc_check_target_names(a->triple, cpu, features);
  if (bad) {
    fail(a, "%s", bad);
    free(bad);
    return -1;
  }
  level *l = &a->lv[a->nlevels++];
  l->name = xstrdup(cpu);
  l->t.triple = a->triple;
  l->t.cpu = xstrdup(cpu);
  l->t.features = xstrdup(features);
  l->t.opt_level = a->o->opt_level;
  l->t.unroll = DNC_AOT_UNROLL;
  l->t.vector_bits = dnc_target_probe(&l->t, &l->t.has_fma);
  char what[300];
  snprintf(what, sizeof what, "CPU '%.100s'%s%.100s%s", cpu,
           *features ? " with features '" : "", features, *features ? "'" : "");
  if ((bad = dnc_check_avx512_subset(&l->t, what))) {
    fail(a, "%s", bad);
    free(bad);
    return -1;
  }
  return 0;
}

/* The baseline CPU and features of a triple, as clang has them: its
 * objects must link with the platform's. LLVM's "generic" RISC-V has no
 * F and D, so its objects had the soft-float ABI, which a linker refuses
 * to mix with the lp64d/ilp32d of every Linux distribution's code; with
 * +d, LLVM takes the ABI with hardware doubles. NVPTX has no "generic":
 * LLVM warned that it ignored it, once per module, and wrote `.target
 * generic` into the PTX, which ptxas refuses; sm_52 is clang 19's
 * default GPU for CUDA (--cuda-gpu-arch), and its PTX runs on later GPUs. */
static void baseline(const char *triple, const char **cpu,
                     const char **features)
{
  *features = "";
  if (is_x86_64(triple))
    *cpu = "x86-64";
  else if (!strncmp(triple, "riscv64", 7) || !strncmp(triple, "riscv32", 7)) {
    *cpu = triple[5] == '6' ? "generic-rv64" : "generic-rv32";
    *features = "+m,+a,+f,+d,+c";
  } else if (!strncmp(triple, "nvptx", 5))
    *cpu = "sm_52";
  else
    *cpu = "generic";
}

/* --cpu: one name, "native", or (for a library) a comma-separated list of
 * x86-64 levels; none: x86-64-v2,-v3,-v4 for an x86-64 library, else the
 * target's baseline (x86-64, rv64gc or rv32gc, sm_52, or LLVM's
 * "generic"). */
static int choose_levels(aot *a)
{
  const char *cpu = a->o->cpu;
  int lib = a->o->emit == DNC_EMIT_SO;
  if (!cpu) {
    if (lib && is_x86_64(a->triple)) {
      for (int i = 1; i < 4; i++)
        if (add_level(a, x86_levels[i], ""))
          return -1;
      return 0;
    }
    const char *base, *features;
    baseline(a->triple, &base, &features);
    return add_level(a, base, features);
  }
  if (!strcmp(cpu, "native")) {
    char *host = LLVMGetDefaultTargetTriple();
    int same = !strcmp(host, a->triple);
    LLVMDisposeMessage(host);
    if (!same)
      return fail(a, "--cpu native compiles for this machine, not for "
                     "--target %s", a->triple);
    if (add_level(a, dnc_host_cpu(), dnc_host_features()))
      return -1;
    return 0;
  }
  size_t len = strlen(cpu);
  if (!len)
    return fail(a, "--cpu needs a CPU name");
  if (cpu[0] == ',' || cpu[len - 1] == ',' || strstr(cpu, ",,"))
    return fail(a, "--cpu needs CPU names separated by commas, none empty, "
                   "not '%s'", cpu);
  if (!strchr(cpu, ','))
    return add_level(a, cpu, "");
  if (!lib)
    return fail(a, "several CPUs need --emit=so (one object holds one CPU's "
                   "kernels)");
  char *copy = xstrdup(cpu);
  int rc = 0;
  for (char *save, *c = strtok_r(copy, ",", &save); c && !rc;
       c = strtok_r(NULL, ",", &save)) {
    if (x86_level_index(c) < 0 || !is_x86_64(a->triple))
      rc = fail(a, "'%s' in --cpu %s: a library with several CPUs can hold "
                   "x86-64, x86-64-v2, x86-64-v3 and x86-64-v4 (the levels it "
                   "can tell apart when loaded)", c, cpu);
    else
      rc = add_level(a, c, "");
  }
  free(copy);
  if (!rc) /* the dispatch takes the last level that runs: sort them */
    for (int i = 1; i < a->nlevels; i++)
      for (int j = i; j > 0 && x86_level_index(a->lv[j].name) <
                                   x86_level_index(a->lv[j - 1].name); j--) {
        level t = a->lv[j];
        a->lv[j] = a->lv[j - 1];
        a->lv[j - 1] = t;
      }
  return rc;
}

/* ------------------------------------------------ runtime fallbacks */

/* rtmath.c's dnc_rt_<math>_f32/f64 as IR over the C library's double
 * function (ops.h's C spelling of the op): the f32 ones compute in double
 * and round once, as rtmath.c does. Only ops vmath.c leaves to scalar code
 * get here (f64 pow, sin and cos of huge arguments); an op whose C
 * spelling is a prelude helper (sigmoid, softplus) has no C library
 * function, and vmath.c lowers it natively (tests/test_ops.c checks). */

static LLVMValueRef libm_decl(LLVMModuleRef mod, const char *name, int arity)
{
  LLVMContextRef c = LLVMGetModuleContext(mod);
  LLVMTypeRef d = LLVMDoubleTypeInContext(c);
  LLVMTypeRef args[2] = {d, d};
  LLVMTypeRef ft = LLVMFunctionType(d, args, (unsigned)arity, 0);
  LLVMValueRef f = LLVMGetNamedFunction(mod, name);
  return f ? f : LLVMAddFunction(mod, name, ft);
}

static LLVMValueRef call_libm(LLVMBuilderRef b, LLVMModuleRef mod,
                              const char *name, LLVMValueRef *args, int n)
{
  LLVMContextRef c = LLVMGetModuleContext(mod);
  LLVMTypeRef d = LLVMDoubleTypeInContext(c);
  LLVMTypeRef at[2] = {d, d};
  return LLVMBuildCall2(b, LLVMFunctionType(d, at, (unsigned)n, 0),
                        libm_decl(mod, name, n), args, (unsigned)n, "");
}

/* the C library function of the op whose MATH name is `math` */
static const char *libm_name(const char *math)
{
  for (int op = 0; op < OP__COUNT; op++)
    if (dnc_ops[op].rt && !strcmp(dnc_ops[op].math, math)) {
      if (!strncmp(dnc_ops[op].c, "dnc_", 4))
        dnc_die(__FILE__, __LINE__, "a kernel calls a runtime function the "
                "C library does not have");
      return dnc_ops[op].c;
    }
  dnc_die(__FILE__, __LINE__, "a kernel calls an unknown runtime function");
}

static void define_runtime(LLVMModuleRef mod)
{
  LLVMContextRef c = LLVMGetModuleContext(mod);
  LLVMTypeRef d = LLVMDoubleTypeInContext(c);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
    size_t len;
    const char *name = LLVMGetValueName2(f, &len);
    if (!LLVMIsDeclaration(f) || strncmp(name, "dnc_rt_", 7))
      continue;
    /* "dnc_rt_<op>_f32" or "_f64", one of rtmath.c's */
    int f64 = !strcmp(name + len - 4, "_f64"), known = 0;
    for (int i = 0; i < dnc_rt_count(); i++) {
      const char *rt;
      void *addr;
      dnc_rt_entry(i, f64, &rt, &addr);
      known |= !strcmp(rt, name);
    }
    if (!known)
      dnc_die(__FILE__, __LINE__, "a kernel calls an unknown runtime function");
    char *lib = xprintf("%.*s", (int)(len - 7 - 4), name + 7);
    unsigned n = LLVMCountParams(f);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, f, "entry"));
    LLVMValueRef args[2];
    for (unsigned i = 0; i < n && i < 2; i++) {
      args[i] = LLVMGetParam(f, i);
      if (!f64)
        args[i] = LLVMBuildFPExt(b, args[i], d, "");
    }
    LLVMValueRef r = call_libm(b, mod, libm_name(lib), args, (int)n);
    free(lib);
    if (!f64)
      r = LLVMBuildFPTrunc(b, r, LLVMFloatTypeInContext(c), "");
    LLVMBuildRet(b, r);
  }
  LLVMDisposeBuilder(b);
}

/* -------------------------------------------------------------- kernels */

/* Links mods[0..n) (each consumed) into one, in their order, as a balanced
 * tree: LLVM's linker walks the whole destination module on every call, so
 * linking n modules one by one into a growing one costs n^2 (a third of
 * the compile of 200 functions into one module). mods[k] holds function
 * k / DNC_DT__COUNT of [f0, ...). Returns the result in mods[0], or -1
 * (all disposed). */
static int link_tree(aot *a, LLVMModuleRef *mods, int n, int f0)
{
  int rc = 0;
  for (int step = 1; step < n && !rc; step *= 2)
    for (int i = 0; i + step < n && !rc; i += 2 * step) {
      /* the source is consumed, linked or not */
      if (LLVMLinkModules2(mods[i], mods[i + step]))
        rc = fail(a, "%s: the kernels' modules do not link",
                  a->m->fns[f0 + (i + step) / DNC_DT__COUNT]->name);
      mods[i + step] = NULL;
    }
  if (rc)
    for (int i = 0; i < n; i++)
      if (mods[i])
        LLVMDisposeModule(mods[i]);
  return rc;
}

/* The kernels of functions [f0, f1) in every dtype for level l in one
 * module: symbols "<prefix><fn>_<dtype>_<form>", hidden when hidden is
 * set. dnc_codegen grows the module's DAG (the derivatives): with several
 * threads it runs under a->dag_lock; the rest of the work is the thread's
 * own, in its own LLVM context. */
static LLVMModuleRef build_range(aot *a, LLVMContextRef c, const level *l,
                                 int f0, int f1, const char *prefix,
                                 int hidden)
{
  int n = (f1 - f0) * DNC_DT__COUNT;
  LLVMModuleRef *mods = calloc((size_t)n, sizeof *mods);
  if (!mods)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int rc = 0;
  for (int k = 0; k < n && !rc; k++) {
    dnc_fn *f = a->m->fns[f0 + k / DNC_DT__COUNT];
    int dt = k % DNC_DT__COUNT;
    char *p = xprintf("%s%s_%s", prefix, f->name, dnc_dtype_names[dt]);
    char *err = NULL;
    if (a->dag_lock)
      pthread_mutex_lock(a->dag_lock);
    LLVMModuleRef mod = dnc_codegen(c, a->m, f, dt, &l->t, p, &err);
    if (a->dag_lock)
      pthread_mutex_unlock(a->dag_lock);
    if (mod && dnc_optimize(mod, &l->t, &err)) {
      LLVMDisposeModule(mod);
      mod = NULL;
    }
    if (!mod) {
      rc = fail(a, "%s (%s, %s): %s", f->name, dnc_dtype_names[dt], l->name,
                err ? err : "code generation failed");
      for (int j = 0; j < k; j++)
        LLVMDisposeModule(mods[j]);
    }
    mods[k] = mod;
    free(err);
    free(p);
  }
  if (!rc)
    rc = link_tree(a, mods, n, f0);
  if (rc) {
    free(mods);
    return NULL;
  }
  /* into a module named as before, for --emit=llvm's text */
  LLVMModuleRef all = LLVMModuleCreateWithNameInContext("dnc", c);
  LLVMSetTarget(all, LLVMGetTarget(mods[0]));
  LLVMSetDataLayout(all, LLVMGetDataLayoutStr(mods[0]));
  if (LLVMLinkModules2(all, mods[0])) { /* consumes mods[0] */
    fail(a, "%s: the kernels' modules do not link", a->m->fns[f0]->name);
    LLVMDisposeModule(all);
    free(mods);
    return NULL;
  }
  free(mods);
  for (LLVMValueRef f = LLVMGetFirstFunction(all); f; f = LLVMGetNextFunction(f))
    if (!LLVMIsDeclaration(f) && hidden)
      LLVMSetVisibility(f, LLVMHiddenVisibility);
  define_runtime(all);
  char *msg = NULL;
  if (LLVMVerifyModule(all, LLVMReturnStatusAction, &msg)) {
    fail(a, "internal error: invalid IR after linking: %s", msg);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(all);
    return NULL;
  }
  LLVMDisposeMessage(msg);
  return all;
}

/* Writes the kernels of functions [f0, f1) for level l to path as an
 * object, assembly or IR; shown names path in errors. LLVM makes the
 * bytes in memory and dnc_write_whole writes them: LLVM's own file output
 * ends the process on a write error (a full disk), leaving temporaries. */
static int emit_range(aot *a, const level *l, int f0, int f1,
                      const char *prefix, int hidden, int emit,
                      const char *path, const char *shown)
{
  LLVMContextRef c = LLVMContextCreate();
  LLVMModuleRef mod = build_range(a, c, l, f0, f1, prefix, hidden);
  int rc = -1;
  if (mod) {
    char *msg = NULL, *text = NULL;
    LLVMMemoryBufferRef buf = NULL;
    const char *data = NULL;
    size_t size = 0;
    if (emit == DNC_EMIT_LLVM) {
      text = LLVMPrintModuleToString(mod);
      data = text;
      size = strlen(text);
    } else {
      char *err = NULL;
      LLVMTargetMachineRef tm = dnc_target_machine(&l->t, &err);
      if (!tm) {
        fail(a, "%s", err);
        free(err);
      } else {
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod,
                                                emit == DNC_EMIT_ASM
                                                    ? LLVMAssemblyFile
                                                    : LLVMObjectFile,
                                                &msg, &buf))
          fail(a, "LLVM could not emit the kernels' code: %s",
               msg ? msg : "");
        else {
          data = LLVMGetBufferStart(buf);
          size = LLVMGetBufferSize(buf);
        }
        LLVMDisposeTargetMachine(tm);
      }
    }
    if (data && dnc_write_whole(path, data, size))
      fail(a, "cannot write '%s': %s", shown, strerror(errno));
    else if (data)
      rc = 0;
    if (buf)
      LLVMDisposeMemoryBuffer(buf);
    LLVMDisposeMessage(text);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(mod);
  }
  LLVMContextDispose(c);
  return rc;
}

/* ------------------------------------------- a library's objects, in jobs */

/* A library's kernels are compiled in jobs, each the kernels of at most
 * CHUNK functions for one level, into an object file of its own
 * ("<tmpdir>/k<job>.o"), on as many threads as there are CPUs
 * ($DNC_NUM_THREADS, as the kernels' pool), each thread with its own LLVM
 * context. A thread holds one job's IR and machine code at a time, so the
 * memory is bounded whatever the number of functions; the linker joins the
 * objects, in job order, whichever thread made them. Job j is chunk
 * j % nchunks of level j / nchunks: the order a single thread would take. */
enum { CHUNK = 8, MAX_WORKERS = 64 };

typedef struct aot_jobs {
  aot *a;
  int chunk, nchunks, njobs;
  pthread_mutex_t lock; /* next and failed, err */
  int next;             /* the next job to take */
  int failed;           /* the lowest job that failed (njobs: none) */
  char *err;            /* its message */
} aot_jobs;

/* One job, its error in a copy of *a: whichever thread fails first, the
 * error reported is that of the lowest job that fails, as with one thread
 * (every job below a failed one still runs). */
/* job j's level and functions f0 .. f1 - 1 */
static int job_range(const aot_jobs *q, int j, int *f0, int *f1)
{
  *f0 = j % q->nchunks * q->chunk;
  *f1 = *f0 + q->chunk < q->a->m->nfns ? *f0 + q->chunk : q->a->m->nfns;
  return j / q->nchunks;
}

static void run_job(aot_jobs *q, int j)
{
  aot a = *q->a;
  a.err = NULL;
  int f0, f1, l = job_range(q, j, &f0, &f1);
  char *path = job_path(&a, j), *prefix = xprintf("dncL%d_", l);
  emit_range(&a, &a.lv[l], f0, f1, prefix, 1, DNC_EMIT_OBJ, path, path);
  free(prefix);
  free(path);
  pthread_mutex_lock(&q->lock);
  if (a.err && j < q->failed) {
    free(q->err);
    q->err = a.err;
    q->failed = j;
  } else {
    free(a.err);
  }
  pthread_mutex_unlock(&q->lock);
}

static void *job_worker(void *arg)
{
  aot_jobs *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->lock);
    int j = q->next < q->failed ? q->next++ : -1;
    pthread_mutex_unlock(&q->lock);
    if (j < 0)
      return NULL;
    run_job(q, j);
  }
}

/* The address space this process maps now (VmSize), in bytes; 0 when
 * /proc cannot say. */
static uint64_t mapped_now(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long pages = 0;
  if (!f)
    return 0;
  if (fscanf(f, "%llu", &pages) != 1)
    pages = 0;
  fclose(f);
  return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* How many threads compile a library's objects within the address-space
 * limit (ulimit -v, RLIMIT_AS), when there is one: LLVM cannot recover
 * from an allocation that fails (std::bad_alloc ends the process), so
 * the threads are no more than the room left holds. Measured on
 * examples/norms.dn (12 functions; x86-64, glibc, LLVM 19): the least
 * ulimit -v that compiles is 211 MB on one thread, 430 MB on 4 and 730 MB
 * on 8, some 74 MB a thread (glibc's 64 MiB malloc arena a thread
 * reserves, the 8 MiB stack below, and LLVM's working set for one job).
 * AOT_THREAD_BYTES is that with room for larger jobs (CHUNK functions);
 * the main thread's own job needs about as much again beyond what is
 * mapped when the threads start. */
enum { AOT_THREAD_BYTES = 96 << 20 };

static int threads_within_limit(int want)
{
  struct rlimit rl;
  if (want <= 1 || getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY)
    return want;
  uint64_t used = mapped_now();
  uint64_t room = rl.rlim_cur > used ? rl.rlim_cur - used : 0;
  /* the main thread's job first, then one thread per AOT_THREAD_BYTES */
  uint64_t fit = room / AOT_THREAD_BYTES;
  return fit < 1 ? 1 : fit < (uint64_t)want ? (int)fit : want;
}

/* Every level's objects, k0.o .. k<njobs - 1>.o in the temporary
 * directory. */
static int compile_objects(aot *a)
{
  aot_jobs q = {0};
  q.a = a;
  int threads = dnc_pool_default_threads();
  /* up to four chunks per level when the functions are few (work for
   * several threads), else chunks of CHUNK functions; not a function of
   * the thread count, so that the library is the same bytes on any
   * machine */
  q.chunk = (a->m->nfns + 3) / 4;
  q.chunk = q.chunk < 1 ? 1 : q.chunk > CHUNK ? CHUNK : q.chunk;
  q.nchunks = (a->m->nfns + q.chunk - 1) / q.chunk;
  q.njobs = q.nchunks * a->nlevels;
  q.failed = q.njobs;
  a->njobs = q.njobs;
  char *series = xprintf("%s/k", a->tmpdir);
  dnc_temp_add_series(series, ".o", q.njobs);
  free(series);
  pthread_mutex_init(&q.lock, NULL);
  pthread_mutex_t dag_lock;
  pthread_mutex_init(&dag_lock, NULL);
  /* every node the jobs' code generation makes, in the order of one
   * thread (dnc_codegen_prepare): the same library on any thread count */
  for (int j = 0; j < q.njobs; j++) {
    int f0, f1, l = job_range(&q, j, &f0, &f1);
    for (int i = f0; i < f1; i++)
      for (int dt = 0; dt < DNC_DT__COUNT; dt++)
        dnc_codegen_prepare(a->m, a->m->fns[i], dt, &a->lv[l].t);
  }
  int nw = threads < q.njobs ? threads : q.njobs;
  nw = threads_within_limit(nw > MAX_WORKERS ? MAX_WORKERS : nw);
  pthread_t tid[MAX_WORKERS];
  int started = 0;
  if (nw > 1) {
    a->dag_lock = &dag_lock;
    /* LLVM's code generator recurses: the stack of a main thread */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 << 20);
    for (int i = 1; i < nw; i++)
      if (pthread_create(&tid[started], &attr, job_worker, &q) == 0)
        started++;
    pthread_attr_destroy(&attr);
  }
  job_worker(&q); /* this thread too */
  for (int i = 0; i < started; i++)
    pthread_join(tid[i], NULL);
  a->dag_lock = NULL;
  pthread_mutex_destroy(&dag_lock);
  pthread_mutex_destroy(&q.lock);
  if (q.err) {
    fail(a, "%s", q.err);
    free(q.err);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------- the C of a library */

/* v with the fewest digits that read back as v (301.1, not
 * 301.10000000000002). */
static void put_double(FILE *fp, double v)
{
  char buf[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      break;
  }
  fputs(buf, fp);
  if (!strpbrk(buf, ".e"))
    fputs(".0", fp); /* a double constant, not an int */
}

/* s as a C string literal (several, one per line of source), escaping
 * everything but printable ASCII. */
static void put_c_string(FILE *fp, const char *s, size_t n)
{
  fputs("\"", fp);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n')
      fputs(i + 1 < n ? "\\n\"\n    \"" : "\\n", fp);
    else if (ch == '"' || ch == '\\' || ch == '?')
      fprintf(fp, "\\%c", ch);
    else if (ch >= 0x20 && ch < 0x7f)
      fputc(ch, fp);
    else
      fprintf(fp, "\\%03o", ch);
  }
  fputs("\"", fp);
}

/* The storage type of a dtype in C, and the compute type. */
static const char *storage_c(int dt)
{
  return dt == DNC_DT_F32 ? "float" : dt == DNC_DT_F64 ? "double" : "uint16_t";
}

static const char *compute_c(int dt)
{
  return dt == DNC_DT_F64 ? "double" : "float";
}

/* The parameter list of a kernel form, typed for dtype dt (or with void
 * pointers when dt < 0), with the names of dnc.h's raw kernels. */
static void put_params(FILE *fp, int form, int dt)
{
  const char *T = dt < 0 ? "void" : storage_c(dt);
  const char *C = dt < 0 ? "void" : compute_c(dt);
  switch (form) {
  case DNC_K_FWD:
    fprintf(fp, "const %s *x, %s *y, int64_t n, const double *p", T, T);
    break;
  case DNC_K_BWD:
    fprintf(fp, "const %s *x, const %s *dy, %s *dx, int64_t n, "
            "const double *p, double *dp", T, T, T);
    break;
  case DNC_K_LAYER_FWD:
    fprintf(fp, "const %s *x, int64_t ldx, %s *y, int64_t ldy, int64_t rows, "
            "int64_t cols, const double *p, const void *const *channel, "
            "const %s *gamma, const %s *beta", T, T, C, C);
    break;
  default:
    fprintf(fp, "const %s *x, int64_t ldx, const %s *dy, int64_t lddy, "
            "%s *dx, int64_t lddx, int64_t rows, int64_t cols, "
            "const double *p, const void *const *channel, const %s *gamma, "
            "const %s *beta, double *dp, double *const *dchannel, "
            "double *dgamma, double *dbeta", T, T, T, C, C);
  }
}

static const char *const form_args[DNC_K__COUNT] = {
    "x, y, n, p", "x, dy, dx, n, p, dp",
    "x, ldx, y, ldy, rows, cols, p, channel, gamma, beta",
    "x, ldx, dy, lddy, dx, lddx, rows, cols, p, channel, gamma, beta, dp, "
    "dchannel, dgamma, dbeta"};

/* gcc's and clang's __builtin_cpu_supports names for what each x86-64
 * level adds (cx16, lahf, f16c, lzcnt, movbe and xsave have no name
 * there; every CPU with the others has them). */
static const char *const level_features[4][6] = {
    {NULL},
    {"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", NULL},
    {"avx", "avx2", "fma", "bmi", "bmi2", NULL},
    {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", NULL}};

static void put_level_check(FILE *fp, const char *name)
{
  int k = x86_level_index(name);
  fprintf(fp, "  /* %s */\n", name);
  for (int i = 1; i <= k; i++)
    for (const char *const *t = level_features[i]; *t; t++)
      fprintf(fp, "  if (!__builtin_cpu_supports(\"%s\"))\n    return \"%s\";\n",
              *t, *t);
}

/* Features beyond the levels' that a CPU's features may name and that
 * gcc's and clang's __builtin_cpu_supports know (gcc from 11 for the
 * second group: an older gcc does not check those). */
static const char *const other_features[] = {
    "sse4a", "fma4", "xop", "aes", "pclmul", "avx512vbmi", "avx512ifma",
    "avx512vpopcntdq", NULL};
static const char *const newer_features[] = {
    "avx512vnni", "avx512vbmi2", "avx512bitalg", "gfni", "vpclmulqdq",
    "avx512bf16", NULL};

static void put_supports(FILE *fp, const char *name)
{
  fprintf(fp, "  if (!__builtin_cpu_supports(\"%s\"))\n    return \"%s\";\n",
          name, name);
}

/* Whether the LLVM feature string f holds +name. */
static int enables(const char *f, const char *name)
{
  size_t n = strlen(name);
  for (const char *p = f; (p = strstr(p, name)); p += n)
    if (p > f && p[-1] == '+' && (p[n] == ',' || !p[n]))
      return 1;
  return 0;
}

/* One named CPU (or native) on x86-64: the features its kernels may use,
 * checked as a level's are, so that a library built for another CPU is
 * refused when loaded instead of dying of SIGILL in a kernel. With the
 * features spelled out (native: the host's), each one that
 * __builtin_cpu_supports knows; for a CPU named alone, whose features
 * LLVM's C API does not list, what the probe saw its code use: zmm
 * registers (avx512f), ymm (avx), multiply-adds (fma) and AVX512-FP16's
 * f16 conversions, and for bdver1..4 FMA4 and XOP. */
int dnc_target_uses_avx512fp16(const dnc_target *t); /* jit.c */

static void put_cpu_check(FILE *fp, const level *l)
{
  fprintf(fp, "  /* %s: the features its code may use */\n", l->name);
  const char *f = l->t.features ? l->t.features : "";
  for (int i = 1; i < 4; i++)
    for (const char *const *t = level_features[i]; *t; t++)
      if (enables(f, *t))
        put_supports(fp, *t);
  for (const char *const *t = other_features; *t; t++)
    if (enables(f, *t))
      put_supports(fp, *t);
  int newer = 0;
  for (const char *const *t = newer_features; *t; t++)
    newer |= enables(f, *t);
  if (newer) {
    fputs("#if defined(__clang__) || __GNUC__ >= 11\n", fp);
    for (const char *const *t = newer_features; *t; t++)
      if (enables(f, *t))
        put_supports(fp, *t);
    fputs("#endif\n", fp);
  }
  /* AVX512-FP16 (sapphirerapids' f16 conversions), which AMD's AVX-512
   * CPUs lack and older compilers' __builtin_cpu_supports do not know:
   * CPUID leaf 7, EDX bit 23 */
  if (enables(f, "avx512fp16") || dnc_target_uses_avx512fp16(&l->t))
    fputs("  {\n    unsigned a_, b_, c_, d_;\n"
          "    if (!__get_cpuid_count(7, 0, &a_, &b_, &c_, &d_) || !(d_ >> 23 & 1))\n"
          "      return \"avx512fp16\";\n  }\n", fp);
  /* AMD's Bulldozers: their code uses FMA4 and XOP, which no later CPU
   * has (a bdver2 library died of SIGILL in dnc_module_load on Zen) */
  if (!strncmp(l->t.cpu, "bdver", 5) && !enables(f, "fma4"))
    put_supports(fp, "fma4");
  if (!strncmp(l->t.cpu, "bdver", 5) && !enables(f, "xop"))
    put_supports(fp, "xop");
  if (l->t.vector_bits >= 512)
    put_supports(fp, "avx512f");
  if (l->t.vector_bits >= 256)
    put_supports(fp, "avx");
  if (l->t.has_fma)
    put_supports(fp, "fma");
}

static int write_dispatch_c(aot *a, const char *path)
{
  FILE *fp = fopen(path, "w");
  if (!fp)
    return fail(a, "cannot write '%s': %s", path, strerror(errno));
  dnc_mod *m = a->m;
  fprintf(fp, "/* Written by dnc %s: the descriptor and load-time dispatch "
          "of a dnc library. */\n", DNC_VERSION_STRING);
  fputs("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
        "#include <string.h>\n", fp);
  if (is_x86_64(a->triple))
    fputs("#include <cpuid.h>\n", fp);
  fputs("\n", fp);
  fputs(dnc_aot_h_text, fp);
  fputs("\n#define EXPORT __attribute__((visibility(\"default\")))\n\n", fp);
  dnc_aot_seal_note_c(fp);

  /* the kernels of each level, and their tables */
  for (int l = 0; l < a->nlevels; l++)
    for (int i = 0; i < m->nfns; i++) {
      for (int dt = 0; dt < DNC_DT__COUNT; dt++)
        for (int k = 0; k < DNC_K__COUNT; k++)
          fprintf(fp, "void dncL%d_%s_%s_%s(void);\n", l, m->fns[i]->name,
                  dnc_dtype_names[dt], dnc_kernel_forms[k]);
      fprintf(fp, "static void *const k%d_%d[] = {\n", l, i);
      for (int dt = 0; dt < DNC_DT__COUNT; dt++)
        for (int k = 0; k < DNC_K__COUNT; k++)
          fprintf(fp, "    (void *)dncL%d_%s_%s_%s,\n", l, m->fns[i]->name,
                  dnc_dtype_names[dt], dnc_kernel_forms[k]);
      fputs("};\n", fp);
    }
  for (int i = 0; i < m->nfns; i++) {
    const dnc_fn *f = m->fns[i];
    if (!f->nparams)
      continue;
    fprintf(fp, "static const dnc_aot_param params%d[] = {\n", i);
    for (int k = 0; k < f->nparams; k++) {
      fprintf(fp, "    {\"%s\", %d, ", f->params[k].name,
              f->params[k].per_channel);
      put_double(fp, f->params[k].def);
      fputs("},\n", fp);
    }
    fputs("};\n", fp);
  }
  for (int l = 0; l < a->nlevels; l++) {
    fprintf(fp, "static const dnc_aot_function fns%d[] = {\n", l);
    for (int i = 0; i < m->nfns; i++) {
      char pn[32] = "NULL";
      if (m->fns[i]->nparams)
        snprintf(pn, sizeof pn, "params%d", i);
      fprintf(fp, "    {\"%s\", %d, %s, k%d_%d},\n", m->fns[i]->name,
              m->fns[i]->nparams, pn, l, i);
    }
    fputs("};\n", fp);
  }
  for (int s = 0; s < m->nsources; s++) {
    fprintf(fp, "static const char text%d[] =\n    ", s);
    put_c_string(fp, m->sources[s]->text, m->sources[s]->len);
    fputs(";\n", fp);
  }
  fputs("static const dnc_aot_source sources[] = {\n", fp);
  for (int s = 0; s < m->nsources; s++) {
    fputs("    {", fp);
    put_c_string(fp, m->sources[s]->name, strlen(m->sources[s]->name));
    fprintf(fp, ", text%d, %zu},\n", s, m->sources[s]->len);
  }
  fputs("};\n\n", fp);

  fputs("static const char *const level_names[] = {", fp);
  for (int l = 0; l < a->nlevels; l++)
    fprintf(fp, "\"%s\", ", a->lv[l].name);
  fputs("};\nstatic const dnc_aot_function *const level_fns[] = {", fp);
  for (int l = 0; l < a->nlevels; l++)
    fprintf(fp, "fns%d, ", l);
  fputs("};\n", fp);
  fprintf(fp, "static dnc_aot_module desc = {DNC_AOT_ABI, %d, %d, NULL, "
          "sources, \"%s\", \"", m->nfns, m->nsources, DNC_VERSION_STRING);
  for (int l = 0; l < a->nlevels; l++)
    fprintf(fp, "%s%s", l ? "," : "", a->lv[l].name);
  fprintf(fp, "\", NULL, NULL, %d};\n\n", a->o->opt_level);

  /* the level checks: a missing feature's name, or NULL */
  int x86 = is_x86_64(a->triple);
  fputs("/* The first feature level i needs that this CPU lacks, or NULL. */\n"
        "static const char *level_missing(int i)\n{\n", fp);
  if (x86)
    fputs("  __builtin_cpu_init();\n", fp);
  fputs("  switch (i) {\n", fp);
  for (int l = 0; l < a->nlevels; l++) {
    fprintf(fp, "  case %d: {\n", l);
    if (x86 && x86_level_index(a->lv[l].name) >= 0)
      put_level_check(fp, a->lv[l].name);
    else if (x86)
      put_cpu_check(fp, &a->lv[l]);
    else /* another architecture: the builder's word for it */
      fprintf(fp, "  /* %s: not checked */\n", a->lv[l].name);
    fputs("  } break;\n", fp);
  }
  fputs("  }\n  return NULL;\n}\n\n", fp);
  fprintf(fp, "static char error_text[256];\n\n"
          "__attribute__((constructor)) static void dnc_aot_select(void)\n{\n"
          "  const int n = %d;\n"
          "  const char *force = getenv(\"DNC_AOT_CPU\"), *miss;\n"
          "  if (force && *force) {\n"
          "    for (int i = 0; i < n; i++)\n"
          "      if (!strcmp(force, level_names[i])) {\n"
          "        if ((miss = level_missing(i))) {\n"
          "          snprintf(error_text, sizeof error_text, \"DNC_AOT_CPU=%%s, "
          "but this CPU lacks %%s\", force, miss);\n"
          "          desc.error = error_text;\n"
          "          return;\n"
          "        }\n"
          "        desc.cpu = level_names[i];\n"
          "        desc.functions = level_fns[i];\n"
          "        return;\n"
          "      }\n"
          "    snprintf(error_text, sizeof error_text, \"DNC_AOT_CPU=%%.60s is not "
          "a level of this library (it has %%s)\", force, desc.levels);\n"
          "    desc.error = error_text;\n"
          "    return;\n"
          "  }\n"
          "  for (int i = n - 1; i >= 0; i--)\n"
          "    if (!level_missing(i)) {\n"
          "      desc.cpu = level_names[i];\n"
          "      desc.functions = level_fns[i];\n"
          "      return;\n"
          "    }\n"
          "  miss = level_missing(0);\n"
          "  snprintf(error_text, sizeof error_text, \"this CPU lacks %%s, which "
          "every level of this library (%%s) needs\", miss ? miss : \"a "
          "feature\", desc.levels);\n"
          "  desc.error = error_text;\n"
          "}\n\n"
          "EXPORT const dnc_aot_module *dnc_aot_module_get(void)\n{\n"
          "  return &desc;\n}\n\n"
          "static void *kernel(int f, int k)\n{\n"
          "  if (!desc.functions) {\n"
          "    fprintf(stderr, \"dnc library: %%s\\n\", desc.error);\n"
          "    abort();\n"
          "  }\n"
          "  return desc.functions[f].kernels[k];\n}\n\n",
          a->nlevels);
  static const char *const types[DNC_K__COUNT] = {"fwd_t", "bwd_t", "lfwd_t",
                                                  "lbwd_t"};
  for (int k = 0; k < DNC_K__COUNT; k++) {
    fprintf(fp, "typedef void (*%s)(", types[k]);
    put_params(fp, k, -1);
    fputs(");\n", fp);
  }
  for (int i = 0; i < m->nfns; i++)
    for (int dt = 0; dt < DNC_DT__COUNT; dt++)
      for (int k = 0; k < DNC_K__COUNT; k++) {
        fprintf(fp, "EXPORT void dnc_%s_%s_%s(", m->fns[i]->name,
                dnc_dtype_names[dt], dnc_kernel_forms[k]);
        put_params(fp, k, -1);
        fprintf(fp, ")\n{\n  ((%s)kernel(%d, %d))(%s);\n}\n", types[k], i,
                dt * DNC_K__COUNT + k, form_args[k]);
      }
  if (write_failed(fp))
    return fail(a, "cannot write '%s': %s", path, strerror(errno));
  return 0;
}

/* --------------------------------------------------- running the linker */

/* the C compiler running, for dnc_aot_stop_child; 0 when none */
static volatile sig_atomic_t child_pid;

void dnc_aot_stop_child(void)
{
  pid_t p = (pid_t)child_pid;
  if (p > 0) {
    kill(p, SIGTERM);
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
      ;
    child_pid = 0;
  }
}

/* Runs argv (argv[0] looked up on PATH), its output going to ours; 0 when
 * it exits 0. */
static int run(aot *a, char **argv)
{
  pid_t pid;
  int e = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
  if (e)
    return fail(a, "cannot run the C compiler '%s' (set CC): %s", argv[0],
                strerror(e));
  child_pid = (sig_atomic_t)pid;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      child_pid = 0;
      return fail(a, "waiting for '%s': %s", argv[0], strerror(errno));
    }
  child_pid = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail(a, "the C compiler '%s' failed linking the library%s", argv[0],
                is_x86_64(a->triple) ? "" : " (for another target, set CC to "
                                            "its cross compiler)");
  return 0;
}

static int link_library(aot *a, const char *out)
{
  char *c_path = xprintf("%s/dispatch.c", a->tmpdir);
  int rc = write_dispatch_c(a, c_path);
  if (!rc)
    rc = compile_objects(a);
  if (!rc) {
    /* CC may carry words ("ccache gcc"): split it on spaces */
    const char *cc = a->o->cc ? a->o->cc : getenv("CC");
    char *ccw = xstrdup(cc && *cc ? cc : "cc");
    /* -O1: the dispatch's C is tables and one-call wrappers, which -O2
     * took twice as long to compile for nothing (1,000 functions: 48,000
     * wrappers) */
    static const char *const flags[] = {"-shared", "-fPIC", "-O1",
                                        "-static-libgcc", "-Wl,--no-undefined",
                                        "-Wl,-z,noexecstack", "-o"};
    enum { NFLAGS = sizeof flags / sizeof flags[0] };
    char **argv = calloc(32 + NFLAGS + 4 + (size_t)a->njobs, sizeof *argv);
    char **objs = calloc((size_t)a->njobs + 1, sizeof *objs);
    if (!argv || !objs)
      dnc_die(__FILE__, __LINE__, "out of memory");
    int n = 0;
    for (char *save, *t = strtok_r(ccw, " \t", &save); t && n < 32;
         t = strtok_r(NULL, " \t", &save))
      argv[n++] = t;
    int words = n;
    for (size_t i = 0; i < NFLAGS; i++)
      argv[n++] = (char *)flags[i];
    argv[n++] = (char *)out;
    argv[n++] = c_path;
    for (int j = 0; j < a->njobs; j++)
      argv[n++] = objs[j] = job_path(a, j);
    argv[n++] = "-lm";
    argv[n] = NULL;
    rc = words > 0 ? run(a, argv) : fail(a, "CC is empty");
    for (int j = 0; j < a->njobs; j++)
      free(objs[j]);
    free(objs);
    free(argv);
    free(ccw);
  }
  free(c_path);
  return rc;
}

/* ------------------------------------------------------------ the header */

/* n bytes of s inside a C block comment, each newline followed by nl:
 * what would end the comment (a star and a slash), start one inside it
 * (a slash and a star: -Wcomment) or begin a trigraph (two question
 * marks: -std=c99 converts them, and -Wall warns of one that ends a line)
 * is broken by a space or a backslash; CRs are dropped. A source's
 * comment or a file's name may hold any of them, and the header must
 * compile with -Wall -Werror. */
static void put_comment_text(FILE *fp, const char *s, size_t n, const char *nl)
{
  for (size_t i = 0; i < n; i++) {
    char c = s[i], next = i + 1 < n ? s[i + 1] : 0;
    if (c == '\n')
      fputs(nl, fp);
    else if ((c == '*' && next == '/') || (c == '/' && next == '*'))
      fprintf(fp, "%c ", c);
    else if (c == '?' && next == '?')
      fputs("?\\", fp);
    else if (c != '\r')
      fputc(c, fp);
  }
}

/* The definition of f as written: from the line where it starts to the
 * line before the next definition (or the end), trailing blank and comment
 * lines left out. */
static void put_definition(FILE *fp, const dnc_fn *f)
{
  const char *t = f->src->text;
  size_t n = f->src->len, start = f->loc.start < n ? f->loc.start : 0;
  while (start > 0 && t[start - 1] != '\n')
    start--;
  size_t last = start; /* after the last code line */
  for (size_t ln = start; ln < n;) {
    size_t e = ln;
    while (e < n && t[e] != '\n')
      e++;
    size_t k = ln;
    while (k < e && (t[k] == ' ' || t[k] == '\t' || t[k] == '\r'))
      k++;
    if (ln > start && e - k >= 3 && !strncmp(t + k, "fn", 2) &&
        (t[k + 2] == ' ' || t[k + 2] == '\t'))
      break;
    if (k < e && t[k] != '#')
      last = e;
    ln = e + 1;
  }
  fputs(" *   ", fp);
  put_comment_text(fp, t + start, last - start, "\n *   ");
  fputc('\n', fp);
}

/* The header into path; shown names it in errors. */
/* The header's DNC_DEFAULT_<fn>_<param> names, one per parameter of every
 * function: two alike ('a_b' with 'c', 'a' with 'b_c') would define one
 * macro twice, the second value silently the one a C program sees. -1
 * with a diagnostic at the second function (and a note at the first). */
typedef struct default_name {
  char *name;
  int fn, param;
} default_name;

static int cmp_default_name(const void *x, const void *y)
{
  const default_name *a = x, *b = y;
  int c = strcmp(a->name, b->name);
  return c ? c : a->fn != b->fn ? (a->fn > b->fn) - (a->fn < b->fn)
                                 : (a->param > b->param) - (a->param < b->param);
}

static int check_default_names(aot *a)
{
  dnc_mod *m = a->m;
  size_t n = 0;
  for (int i = 0; i < m->nfns; i++)
    n += (size_t)m->fns[i]->nparams;
  default_name *v = calloc(n + 1, sizeof *v);
  if (!v)
    dnc_die(__FILE__, __LINE__, "out of memory");
  n = 0;
  for (int i = 0; i < m->nfns; i++)
    for (int k = 0; k < m->fns[i]->nparams; k++) {
      if (asprintf(&v[n].name, "%s_%s", m->fns[i]->name,
                   m->fns[i]->params[k].name) < 0)
        dnc_die(__FILE__, __LINE__, "out of memory");
      v[n].fn = i;
      v[n++].param = k;
    }
  qsort(v, n, sizeof *v, cmp_default_name);
  int rc = 0;
  for (size_t j = 1; j < n && !rc; j++) {
    if (strcmp(v[j - 1].name, v[j].name))
      continue;
    const dnc_fn *f0 = m->fns[v[j - 1].fn], *f1 = m->fns[v[j].fn];
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, f1->src, f1->loc,
                 "the header would define DNC_DEFAULT_%s twice: for "
                 "parameter '%s' of '%s' and parameter '%s' of '%s'; rename "
                 "one of them", v[j].name, f1->params[v[j].param].name,
                 f1->name, f0->params[v[j - 1].param].name, f0->name);
    dnc_diag_add(&m->diags, DNC_SEV_NOTE, f0->src, f0->loc,
                 "'%s' is defined here", f0->name);
    rc = fail(a, "the header would define DNC_DEFAULT_%s twice", v[j].name);
  }
  for (size_t j = 0; j < n; j++)
    free(v[j].name);
  free(v);
  return rc;
}

/* The header's declarations: each function's comment, macros and
 * kernels, and the descriptor's getter. */
static void put_declarations(FILE *fp, const dnc_mod *m)
{
  for (int i = 0; i < m->nfns; i++) {
    const dnc_fn *f = m->fns[i];
    int line, col;
    dnc_loc_linecol(f->src, f->loc.start, &line, &col);
    fprintf(fp, "\n/* %s, from ", f->name);
    put_comment_text(fp, f->src->name, strlen(f->src->name), "\n *   ");
    fprintf(fp, ":%d:\n", line);
    put_definition(fp, f);
    if (f->nparams) {
      fputs(" * p[]:", fp);
      for (int k = 0; k < f->nparams; k++)
        fprintf(fp, " %s%s%s", f->params[k].name,
                f->params[k].per_channel ? " (per channel)" : "",
                k + 1 < f->nparams ? "," : "");
      fputc('\n', fp);
    }
    fputs(" */\n", fp);
    fprintf(fp, "#define DNC_NPARAMS_%s %d\n", f->name, f->nparams);
    for (int k = 0; k < f->nparams; k++) {
      /* a negative one in parentheses, as a macro's value must be:
       * 2-DNC_DEFAULT_f_a was 2--1.0, a decrement */
      double d = f->params[k].def;
      fprintf(fp, "#define DNC_DEFAULT_%s_%s %s", f->name, f->params[k].name,
              signbit(d) ? "(" : "");
      put_double(fp, d);
      fputs(signbit(d) ? ")\n" : "\n", fp);
    }
    for (int dt = 0; dt < DNC_DT__COUNT; dt++)
      for (int k = 0; k < DNC_K__COUNT; k++) {
        fprintf(fp, "void dnc_%s_%s_%s(", f->name, dnc_dtype_names[dt],
                dnc_kernel_forms[k]);
        put_params(fp, k, dt);
        fputs(");\n", fp);
      }
  }
  fputs("\n/* The library's descriptor, for dnc_module_load (dnc_aot.h). */\n"
        "struct dnc_aot_module;\n"
        "const struct dnc_aot_module *dnc_aot_module_get(void);\n", fp);
}

/* The include guard: DNC_KERNELS_, the header's file name in capitals
 * (a run of other bytes one '_'), and 16 hex digits of the SHA-256 of
 * its declarations. The name alone was the guard: ia/kernels.h and
 * ib/kernels.h, the headers of two libraries, were both
 * DNC_KERNELS_KERNELS_H, and a file including both silently lost the
 * second's declarations. Headers with the same declarations share it
 * (including both, the second is the first again). One '_' for a run:
 * __k.h or é.h gave DNC_KERNELS___K_H, an identifier C++ reserves
 * (clang++ -Weverything: -Wreserved-macro-identifier). */
static void header_guard(char *guard, size_t n, const char *base,
                         const char *decls, size_t ndecls)
{
  unsigned char h[32];
  dnc_sha256(decls, ndecls, h);
  size_t g = (size_t)snprintf(guard, n, "DNC_KERNELS_");
  for (const char *p = base; *p && g + 18 < n; p++) {
    char c = (char)((*p >= 'a' && *p <= 'z') ? *p - 32
                    : ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
                        ? *p
                        : '_');
    if (c != '_' || guard[g - 1] != '_')
      guard[g++] = c;
  }
  if (guard[g - 1] != '_')
    guard[g++] = '_';
  for (int i = 0; i < 8 && g + 2 < n; i++, g += 2)
    snprintf(guard + g, 3, "%02X", h[i]);
  guard[g] = 0;
}

static int write_header(aot *a, const char *path, const char *shown)
{
  const dnc_mod *m = a->m;
  /* the declarations first, in memory: the guard names their digest */
  char *decls = NULL;
  size_t ndecls = 0;
  FILE *dp = open_memstream(&decls, &ndecls);
  if (!dp)
    dnc_die(__FILE__, __LINE__, "out of memory");
  put_declarations(dp, m);
  if (fclose(dp))
    dnc_die(__FILE__, __LINE__, "out of memory");
  const char *base = strrchr(a->o->header ? a->o->header : a->o->output, '/');
  base = base ? base + 1 : a->o->header ? a->o->header : a->o->output;
  char guard[128];
  header_guard(guard, sizeof guard, base, decls, ndecls);
  FILE *fp = fopen(path, "w");
  if (!fp) {
    free(decls);
    return fail(a, "cannot write '%s': %s", shown, strerror(errno));
  }
  fprintf(fp, "/*\n * Written by dnc %s (`dnc compile`) from", DNC_VERSION_STRING);
  for (int s = 0; s < m->nsources; s++) {
    fputc(' ', fp);
    put_comment_text(fp, m->sources[s]->name, strlen(m->sources[s]->name),
                     "\n *   ");
  }
  fputs(": do not edit.\n"
        " *\n"
        " * The kernels of the library built with it, for every function\n"
        " * below in f32 (float), f64 (double), bf16 and f16 (uint16_t\n"
        " * bits); forms and arguments as dnc.h's raw kernels:\n"
        " *   <fn>_<dtype>_fwd        y[i] = f(x[i]; p)\n"
        " *   <fn>_<dtype>_bwd        dx[i] = dy[i] f'(x[i]); dp[k] = sum of\n"
        " *                           dy df/dp_k (stored)\n"
        " *   <fn>_<dtype>_layer_fwd  y = gamma[c] f(x; p, channel) + beta[c]\n"
        " *   <fn>_<dtype>_layer_bwd  dx, dp (stored), dchannel, dgamma,\n"
        " *                           dbeta (added to)\n"
        " * p: every parameter's value, in the order listed; the defaults are\n"
        " * the DNC_DEFAULT_<fn>_<param> constants. No checks, no threads:\n"
        " * libdnc's dnc_module_load() adds both.\n"
        " */\n", fp);
  fprintf(fp, "#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n"
          "#ifdef __cplusplus\nextern \"C\" {\n#endif\n", guard, guard);
  fwrite(decls, 1, ndecls, fp);
  free(decls);
  fprintf(fp, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
  if (write_failed(fp))
    return fail(a, "cannot write '%s': %s", shown, strerror(errno));
  return 0;
}

/* ---------------------------------------------------------------- entry */

int dnc_aot_compile(dnc_mod *m, const dnc_aot_options *o, char **err)
{
  aot a = {0};
  a.m = m;
  a.o = o;
  *err = NULL;
  dnc_llvm_init_all();
  char *host = LLVMGetDefaultTargetTriple();
  a.triple = xstrdup(o->triple && *o->triple ? o->triple : host);
  LLVMDisposeMessage(host);

  char *tmp_out = NULL, *tmp_h = NULL;
  int rc = 0;
  if (o->emit != DNC_EMIT_HEADER) {
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(a.triple, &target, &msg))
      rc = fail(&a, "unknown target '%s': %s", a.triple, msg ? msg : "");
    else if (!arch_supported(a.triple))
      rc = fail(&a, "dnc compile does not support target '%s' (it compiles "
                "for x86_64, i686, aarch64, arm, riscv32, riscv64, "
                "powerpc64(le), mips, wasm32, wasm64 and nvptx)", a.triple);
    LLVMDisposeMessage(msg);
    if (!rc)
      rc = choose_levels(&a);
    /* the dispatch needs a level to choose */
    DNC_ASSERT(rc || a.nlevels > 0);
  }
  /* what the outputs' names are, before any work: never an input, a
   * directory or the other output; a link's target, a device in place */
  dnc_outpath out = {0}, hdr = {0};
  const char **inputs = calloc((size_t)m->nsources + 1, sizeof *inputs);
  for (int i = 0; i < m->nsources; i++)
    inputs[i] = m->sources[i]->from_stdin ? "-" : m->sources[i]->name;
  char why[600];
  if (!rc && dnc_outpath_resolve(o->output, inputs, m->nsources, &out, why,
                                 sizeof why))
    rc = fail(&a, "%s", why);
  if (!rc && o->header &&
      dnc_outpath_resolve(o->header, inputs, m->nsources, &hdr, why,
                          sizeof why))
    rc = fail(&a, "%s", why);
  free(inputs);
  if (!rc && o->header && !out.in_place && !strcmp(out.target, hdr.target))
    rc = fail(&a, "the library and the header are the same file '%s'",
              o->header);
  /* the header's macro names, before any work */
  if (!rc && (o->header || o->emit == DNC_EMIT_HEADER))
    rc = check_default_names(&a);
  /* every kernel's size before any is made: LLVM's time grows with it;
   * a function too large is also a diagnostic at its definition */
  for (int i = 0; i < m->nfns && !rc && o->emit != DNC_EMIT_HEADER; i++) {
    char msg[256];
    if (dnc_kernel_check(m, m->fns[i], msg, sizeof msg)) {
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, m->fns[i]->src, m->fns[i]->loc,
                   "%s", msg);
      rc = fail(&a, "%s", msg);
    }
  }
  /* the temporary outputs prove the directories writable before the work */
  if (!rc && !(tmp_out = dnc_outpath_temp(&out)))
    rc = fail(&a, "cannot write '%s': %s", o->output, strerror(errno));
  if (!rc && o->header && !(tmp_h = dnc_outpath_temp(&hdr)))
    rc = fail(&a, "cannot write '%s': %s", o->header, strerror(errno));
  if (!rc) {
    switch (o->emit) {
    case DNC_EMIT_SO:
      rc = make_tmpdir(&a);
      if (!rc)
        rc = link_library(&a, tmp_out);
      if (!rc && dnc_aot_seal(tmp_out, why, sizeof why))
        rc = fail(&a, "%s: %s", o->output, why);
      break;
    case DNC_EMIT_HEADER:
      rc = write_header(&a, tmp_out, o->output);
      break;
    default:
      rc = emit_range(&a, &a.lv[0], 0, m->nfns, "dnc_", 0, o->emit, tmp_out,
                      o->output);
    }
  }
  if (!rc && tmp_h)
    rc = write_header(&a, tmp_h, o->header);
  /* everything written: the modes a new file gets (mkstemp made them
   * 0600), then into place */
  mode_t mask = umask(0);
  umask(mask);
  if (!rc && chmod(tmp_out, (o->emit == DNC_EMIT_SO ? 0777 : 0666) & ~mask))
    rc = fail(&a, "cannot write '%s': %s", o->output, strerror(errno));
  if (!rc && tmp_h && chmod(tmp_h, 0666 & ~mask))
    rc = fail(&a, "cannot write '%s': %s", o->header, strerror(errno));
  /* both outputs or neither: the old library is kept (a hard link) until
   * the header is in place, and put back if it cannot be */
  char *bak = NULL;
  if (!rc && tmp_h && !out.in_place && access(out.target, F_OK) == 0 &&
      (!(bak = dnc_outpath_temp(&out)) || unlink(bak) ||
       link(out.target, bak)))
    rc = fail(&a, "cannot write '%s': %s", o->output, strerror(errno));
  if (!rc && dnc_outpath_commit(&out, tmp_out))
    rc = fail(&a, "cannot write '%s': %s", o->output, strerror(errno));
  else if (!rc && tmp_h && dnc_outpath_commit(&hdr, tmp_h)) {
    rc = fail(&a, "cannot write '%s': %s", o->header, strerror(errno));
    if (bak && !rename(bak, out.target))
      free(bak), bak = NULL; /* the old library is back */
    else if (!out.in_place)
      unlink(out.target); /* there was none */
  }
  if (bak) {
    unlink(bak);
    free(bak);
  }
  dnc_outpath_free(&out);
  dnc_outpath_free(&hdr);
  if (rc) {
    if (tmp_out)
      unlink(tmp_out);
    if (tmp_h)
      unlink(tmp_h);
  }
  remove_tmpdir(&a);
  free(tmp_out);
  free(tmp_h);
  for (int l = 0; l < a.nlevels; l++) {
    free(a.lv[l].name);
    free(a.lv[l].t.cpu);
    free(a.lv[l].t.features);
  }
  free(a.triple);
  *err = a.err;
  return rc;
}
