/*
 * jit.c - the LLVM session and ORC LLJIT.
 *
 * LLVM's native target is initialised once per process. Each dnc_jit (one
 * per context) owns an LLJIT whose target machine carries the CPU name and
 * features (the host's unless overridden); every module built for it gets
 * that triple and data layout, is verified, optimised by the new pass
 * manager (default<On>) and then handed to the LLJIT.
 *
 * A library (one per dnc module) is a resource tracker in the main
 * JITDylib; its symbols are prefixed "dnc<serial>_" so that two modules
 * with a function of the same name never collide. Removing the tracker
 * frees the code.
 *
 * Threads: building and optimising IR happen in a ThreadSafeContext private
 * to one compile, outside any lock; adding a module to the LLJIT and
 * looking its symbols up (which runs the code generator) hold the jit's
 * lock, because the LLJIT's compiler is not known to be reentrant through
 * the C API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen.h"
#include "llvm_names.h"

struct dnc_jit {
  LLVMOrcLLJITRef lljit;
  dnc_target target;
  char *dump_dir;
  pthread_mutex_t lock;
  unsigned long serial;
};

struct dnc_jit_lib {
  dnc_jit *j;
  LLVMOrcResourceTrackerRef rt;
  unsigned long id;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;

static void init_llvm(void)
{
  if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter())
    init_failed = 1;
}

void dnc_llvm_init(void)
{
  pthread_once(&init_once, init_llvm);
}

static pthread_once_t init_all_once = PTHREAD_ONCE_INIT;

static void init_all(void)
{
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
}

void dnc_llvm_init_all(void)
{
  dnc_llvm_init();
  pthread_once(&init_all_once, init_all);
}

char *dnc_llvm_error(LLVMErrorRef e)
{
  char *msg = LLVMGetErrorMessage(e); /* consumes e */
  char *s = strdup(msg ? msg : "unknown LLVM error");
  LLVMDisposeErrorMessage(msg);
  return s;
}

static char *xstrdup(const char *s)
{
  char *r = strdup(s);
  if (!r)
    dnc_die(__FILE__, __LINE__, "out of memory");
  return r;
}

static char *fmt(const char *f, const char *a)
{
  size_t n = strlen(f) + strlen(a) + 1;
  char *s = malloc(n);
  if (!s)
    dnc_die(__FILE__, __LINE__, "out of memory");
  snprintf(s, n, f, a);
  return s;
}

static int has_feature(const char *features, const char *name)
{
  size_t n = strlen(name);
  for (const char *p = features; (p = strstr(p, name)); p += n)
    if (p > features && p[-1] == '+' && (p[n] == ',' || p[n] == 0))
      return 1;
  return 0;
}

unsigned dnc_vector_bits(const char *triple, const char *features)
{
  if (!strncmp(triple, "x86_64", 6) || !strncmp(triple, "i686", 4) ||
      !strncmp(triple, "i386", 4)) {
    if (has_feature(features, "avx512f"))
      return 512;
    if (has_feature(features, "avx2") || has_feature(features, "avx"))
      return 256;
    return 128;
  }
  return 128; /* NEON on arm64; a 128-bit vector legalises everywhere */
}

/* The names LLVM knows for the triple's architecture, or NULL (then any
 * name is passed on to LLVM). */
static const char *const *known_names(const char *triple, int features)
{
  if (!strncmp(triple, "x86_64", 6))
    return features ? llvm_x8664_features : llvm_x8664_cpus;
  if (!strncmp(triple, "aarch64", 7) || !strncmp(triple, "arm64", 5))
    return features ? llvm_aarch64_features : llvm_aarch64_cpus;
  return NULL;
}

static int name_index(const char *const *names, const char *s, size_t n)
{
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == n && !strncmp(names[i], s, n))
      return i;
  return -1;
}

static int count_names(const char *const *names)
{
  int n = 0;
  while (names[n])
    n++;
  return n;
}

/* An unknown CPU or feature makes LLVM print a warning and carry on (or
 * abort later), so both are checked here first: "" when fine, else a
 * malloc'd message. */
char *dnc_check_target_names(const char *triple, const char *cpu,
                             const char *features)
{
  char msg[512];
  const char *const *cpus = known_names(triple, 0);
  if (cpus && *cpu && name_index(cpus, cpu, strlen(cpu)) < 0) {
    const char *near = dnc_did_you_mean(cpu, cpus, count_names(cpus));
    snprintf(msg, sizeof msg, "unknown CPU '%s' for %s%s%s%s", cpu, triple,
             near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    return xstrdup(msg);
  }
  const char *const *feats = known_names(triple, 1);
  for (const char *p = features; feats && *p;) {
    size_t n = strcspn(p, ",");
    if (n && ((*p != '+' && *p != '-') || name_index(feats, p + 1, n - 1) < 0)) {
      snprintf(msg, sizeof msg, "unknown CPU feature '%.*s' for %s (features "
               "are written +name or -name, separated by commas)", (int)n, p,
               triple);
      return xstrdup(msg);
    }
    p += n + (p[n] == ',');
  }
  return NULL;
}

/* The widest vector the target machine handles natively, and whether it
 * fuses multiply-add: a <16 x float> multiply-add is compiled and its
 * assembly read (zmm, ymm or xmm registers; vfmadd). Needed when the CPU
 * is named, since LLVM's C API does not tell which features a CPU
 * implies. */
unsigned dnc_target_probe(const dnc_target *t, int *fma)
{
  *fma = dnc_has_fma(t->triple, t->features);
  if (strncmp(t->triple, "x86_64", 6))
    return dnc_vector_bits(t->triple, t->features);
  char *err = NULL;
  LLVMTargetMachineRef tm = dnc_target_machine(t, &err);
  if (!tm) {
    free(err);
    return 128;
  }
  LLVMContextRef c = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("probe", c);
  LLVMSetTarget(m, t->triple);
  LLVMTypeRef v = LLVMVectorType(LLVMFloatTypeInContext(c), 16);
  LLVMTypeRef args[2] = {v, v};
  LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(v, args, 2, 0));
  LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", "512");
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  LLVMTypeRef ov = v;
  unsigned id = LLVMLookupIntrinsicID("llvm.fmuladd", 12);
  LLVMValueRef fma_args[3] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 1),
                              LLVMGetParam(fn, 0)};
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMIntrinsicGetType(c, id, &ov, 1),
                                 LLVMGetIntrinsicDeclaration(m, id, &ov, 1),
                                 fma_args, 3, ""));
  LLVMDisposeBuilder(b);
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL;
  unsigned bits = 128;
  if (!LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &buf)) {
    size_t n = LLVMGetBufferSize(buf);
    char *text = strndup(LLVMGetBufferStart(buf), n);
    if (text && strstr(text, "zmm"))
      bits = 512;
    else if (text && strstr(text, "ymm"))
      bits = 256;
    *fma = text && strstr(text, "vfmadd") != NULL;
    free(text);
    LLVMDisposeMemoryBuffer(buf);
  }
  LLVMDisposeMessage(msg);
  LLVMDisposeModule(m);
  LLVMContextDispose(c);
  LLVMDisposeTargetMachine(tm);
  return bits;
}

int dnc_has_bf16_convert(const char *triple, const char *features)
{
  return !strncmp(triple, "x86_64", 6) && has_feature(features, "avx512f") &&
         has_feature(features, "avx512bf16");
}

int dnc_has_fma(const char *triple, const char *features)
{
  if (!strncmp(triple, "x86_64", 6))
    return has_feature(features, "fma") || has_feature(features, "avx512f");
  return !strncmp(triple, "aarch64", 7) || !strncmp(triple, "arm64", 5);
}

LLVMTargetMachineRef dnc_target_machine(const dnc_target *t, char **err)
{
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
    *err = fmt("no LLVM target for this triple: %s", msg ? msg : "");
    LLVMDisposeMessage(msg);
    return NULL;
  }
  static const LLVMCodeGenOptLevel levels[4] = {
      LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
      LLVMCodeGenLevelAggressive};
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
      target, t->triple, t->cpu, t->features, levels[t->opt_level],
      LLVMRelocPIC, LLVMCodeModelJITDefault);
  if (!tm)
    *err = xstrdup("LLVM could not create a target machine");
  return tm;
}

int dnc_optimize(LLVMModuleRef m, const dnc_target *t, char **err)
{
  LLVMTargetMachineRef tm = dnc_target_machine(t, err);
  if (!tm)
    return -1;
  char passes[32];
  snprintf(passes, sizeof passes, "default<O%d>", t->opt_level);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(m, passes, tm, po);
  LLVMDisposePassBuilderOptions(po);
  LLVMDisposeTargetMachine(tm);
  if (e) {
    *err = dnc_llvm_error(e);
    return -1;
  }
  return 0;
}

/* The scalar math of rtmath.c, by absolute address, so that kernels find it
 * whether libdnc is linked statically or dynamically. */
static LLVMErrorRef define_runtime_symbols(LLVMOrcLLJITRef j)
{
  int n = dnc_rt_count();
  LLVMOrcCSymbolMapPair *pairs = calloc(2 * (size_t)n, sizeof *pairs);
  if (!pairs)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int i = 0; i < 2 * n; i++) {
    const char *name;
    void *addr;
    dnc_rt_entry(i / 2, i % 2, &name, &addr);
    pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j, name);
    pairs[i].Sym.Address = (LLVMOrcJITTargetAddress)(uintptr_t)addr;
    pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported |
                                      LLVMJITSymbolGenericFlagsCallable;
    pairs[i].Sym.Flags.TargetFlags = 0;
  }
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, 2 * (size_t)n);
  free(pairs);
  /* mu is now owned by the JITDylib */
  return LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j), mu);
}

dnc_jit *dnc_jit_new(const dnc_jit_options *o, char **err, int *bad_name)
{
  *bad_name = 0;
  dnc_llvm_init();
  if (init_failed) {
    *err = xstrdup("LLVM's native target could not be initialised");
    return NULL;
  }
  dnc_jit *j = calloc(1, sizeof *j);
  if (!j)
    dnc_die(__FILE__, __LINE__, "out of memory");
  pthread_mutex_init(&j->lock, NULL);
  char *triple = LLVMGetDefaultTargetTriple();
  j->target.triple = xstrdup(triple);
  LLVMDisposeMessage(triple);
  j->target.cpu = xstrdup(o->cpu ? o->cpu : dnc_host_cpu());
  j->target.features = xstrdup(o->features ? o->features
                               : o->cpu   ? ""
                                          : dnc_host_features());
  j->target.opt_level = o->opt_level < 0 ? 0 : o->opt_level > 3 ? 3 : o->opt_level;
  j->target.math_bits = o->math_bits;
  if ((*err = dnc_check_target_names(j->target.triple, j->target.cpu,
                                 j->target.features))) {
    *bad_name = 1;
    dnc_jit_free(j);
    return NULL;
  }
  if (o->cpu || o->features) {
    j->target.vector_bits = dnc_target_probe(&j->target, &j->target.has_fma);
  } else {
    j->target.vector_bits = dnc_vector_bits(j->target.triple, j->target.features);
    j->target.has_fma = dnc_has_fma(j->target.triple, j->target.features);
  }
  j->dump_dir = o->dump_dir && *o->dump_dir ? xstrdup(o->dump_dir) : NULL;

  LLVMTargetMachineRef tm = dnc_target_machine(&j->target, err);
  if (!tm) {
    dnc_jit_free(j);
    return NULL;
  }
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  /* tm is now owned by the target machine builder, which the LLJIT builder
   * owns, which LLVMOrcCreateLLJIT consumes */
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder);
  if (!e)
    e = define_runtime_symbols(j->lljit);
  if (!e) {
    /* what LLVM itself may call (memset, half conversions): the process */
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
    if (!e) /* gen is now owned by the JITDylib */
      LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->lljit), gen);
  }
  if (e) {
    *err = dnc_llvm_error(e);
    dnc_jit_free(j);
    return NULL;
  }
  return j;
}

void dnc_jit_free(dnc_jit *j)
{
  if (!j)
    return;
  if (j->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e)
      free(dnc_llvm_error(e)); /* nothing to report it to at this point */
  }
  pthread_mutex_destroy(&j->lock);
  free(j->target.triple);
  free(j->target.cpu);
  free(j->target.features);
  free(j->dump_dir);
  free(j);
}

const char *dnc_jit_cpu(const dnc_jit *j) { return j->target.cpu; }
const char *dnc_jit_features(const dnc_jit *j) { return j->target.features; }
unsigned dnc_jit_vector_bits(const dnc_jit *j) { return j->target.vector_bits; }
int dnc_jit_has_fma(const dnc_jit *j) { return j->target.has_fma; }

dnc_jit_lib *dnc_jit_lib_new(dnc_jit *j)
{
  dnc_jit_lib *l = calloc(1, sizeof *l);
  if (!l)
    dnc_die(__FILE__, __LINE__, "out of memory");
  l->j = j;
  pthread_mutex_lock(&j->lock);
  l->id = ++j->serial;
  l->rt = LLVMOrcJITDylibCreateResourceTracker(
      LLVMOrcLLJITGetMainJITDylib(j->lljit));
  pthread_mutex_unlock(&j->lock);
  return l;
}

void dnc_jit_lib_free(dnc_jit_lib *l)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->j->lock);
  LLVMErrorRef e = LLVMOrcResourceTrackerRemove(l->rt);
  if (e)
    free(dnc_llvm_error(e));
  LLVMOrcReleaseResourceTracker(l->rt);
  pthread_mutex_unlock(&l->j->lock);
  free(l);
}

static int dump(const dnc_jit *j, LLVMModuleRef m, const char *prefix,
                const char *stage, char **err)
{
  if (!j->dump_dir)
    return 0;
  size_t n = strlen(j->dump_dir) + strlen(prefix) + strlen(stage) + 8;
  char *path = malloc(n);
  if (!path)
    dnc_die(__FILE__, __LINE__, "out of memory");
  snprintf(path, n, "%s/%s.%s.ll", j->dump_dir, prefix, stage);
  char *msg = NULL;
  int bad = LLVMPrintModuleToFile(m, path, &msg);
  if (bad) {
    size_t k = strlen(path) + (msg ? strlen(msg) : 0) + 64;
    *err = malloc(k);
    if (!*err)
      dnc_die(__FILE__, __LINE__, "out of memory");
    snprintf(*err, k, "cannot write the IR to '%s': %s", path, msg ? msg : "");
  }
  LLVMDisposeMessage(msg);
  free(path);
  return bad ? -1 : 0;
}

int dnc_jit_compile(dnc_jit_lib *l, dnc_mod *m, dnc_fn *f, int dt,
                    void **fns, char **err)
{
  dnc_jit *j = l->j;
  char prefix[160];
  snprintf(prefix, sizeof prefix, "dnc%lu_%.100s_%s", l->id, f->name,
           dnc_dtype_names[dt]);
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMContextRef ctx = LLVMOrcThreadSafeContextGetContext(tsc);
  LLVMModuleRef mod = dnc_codegen(ctx, m, f, dt, &j->target, prefix, err);
  if (!mod || dump(j, mod, prefix, "before", err) ||
      dnc_optimize(mod, &j->target, err) || dump(j, mod, prefix, "after", err)) {
    if (mod)
      LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
  LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps it alive */
  pthread_mutex_lock(&j->lock);
  /* tsm is now owned by the LLJIT */
  LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModuleWithRT(j->lljit, l->rt, tsm);
  for (int i = 0; i < DNC_K__COUNT && !e; i++) {
    char name[200];
    snprintf(name, sizeof name, "%s_%s", prefix, dnc_kernel_forms[i]);
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(j->lljit, &addr, name);
    fns[i] = (void *)(uintptr_t)addr;
  }
  pthread_mutex_unlock(&j->lock);
  if (e) {
    *err = dnc_llvm_error(e);
    return -1;
  }
  return 0;
}
