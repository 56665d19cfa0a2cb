/*
 * jit.c - the LLVM session and ORC LLJIT.
 *
 * LLVM's native target is initialised once per process. Each dnc_jit (one
 * per context) owns an LLJIT whose target machine carries the CPU name and
 * features (the host's unless overridden); every module built for it gets
 * that triple and data layout, is verified, optimised by the new pass
 * manager (dnc_pipeline: CFG cleanup at -O1 and -O2, LLVM's default<O3>
 * at -O3) and compiled to object code.
 *
 * Kernels are compiled to object code, which the LLJIT links. The code
 * of one function's kernels in one dtype is an entry, named by the
 * SHA-256 of its key (kcache.c: dnc's build, LLVM, the target, the
 * options, the dtype and the function's canonical DAG); its symbols are
 * "dnck<name>_<form>" and it has its own resource tracker in the main
 * JITDylib. Entries are shared: the jit keeps one per key, counted by the
 * libraries (one per dnc module) that hold it, and removing the last
 * holder's reference frees the code. With the on-disk cache on, the
 * object code is read from it when a valid entry is there, else compiled
 * and written to it.
 *
 * Threads: building and optimising IR happen in a ThreadSafeContext private
 * to one compile, outside any lock; adding a module to the LLJIT and
 * looking its symbols up (which runs the code generator) hold the jit's
 * lock, because the LLJIT's compiler is not known to be reentrant through
 * the C API.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen.h"
#include "dnc.h"
#include "llvm_names.h"

/* One function's kernels in one dtype, linked into the LLJIT. */
typedef struct kentry {
  struct kentry *next;
  char name[DNC_KCACHE_NAME_LEN + 1];
  char *key;
  LLVMOrcResourceTrackerRef rt;
  void *fns[DNC_K__COUNT];
  int refs; /* libraries holding it (under the jit's lock) */
} kentry;

struct dnc_jit {
  LLVMOrcLLJITRef lljit;
  dnc_target target;
  char *dump_dir;
  char *cache_dir;   /* the on-disk cache, with a trailing '/'; NULL: off */
  char *target_key;  /* the key's lines about the build and the target */
  char *stream_key;  /* the same for the stream kernels (target.stream) */
  pthread_mutex_t lock;
  unsigned long serial;
  kentry *entries;
  int split; /* the process may run on two CPUs or more (compile_object) */
};

struct dnc_jit_lib {
  dnc_jit *j;
  unsigned long id;
  kentry **held;
  int nheld, cap;
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
    if (!strcmp(cpu, "native"))
      near = NULL; /* the C API's host CPU is cpu NULL */
    snprintf(msg, sizeof msg, "unknown CPU '%s' for %s%s%s%s%s", cpu, triple,
             near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "",
             !strcmp(cpu, "native") ? " (NULL means this machine's CPU)" : "");
    return xstrdup(msg);
  }
  /* LLVM knows these for x86_64 but aborts the process ("64-bit code
   * requested on a subtarget that doesn't support it") when it compiles
   * for one: llc-19 -mtriple=x86_64 -mcpu=NAME fails for exactly these */
  static const char *const x86_32_only[] = {
      "athlon", "athlon-4", "athlon-mp", "athlon-tbird", "athlon-xp", "c3",
      "c3-2", "geode", "i386", "i486", "i586", "i686", "k6", "k6-2", "k6-3",
      "lakemont", "pentium", "pentium-m", "pentium-mmx", "pentium2",
      "pentium3", "pentium3m", "pentium4", "pentium4m", "pentium_4",
      "pentium_4_sse3", "pentium_ii", "pentium_iii",
      "pentium_iii_no_xmm_regs", "pentium_m", "pentium_mmx", "pentium_pro",
      "pentiumpro", "prescott", "winchip-c6", "winchip2", "yonah", NULL};
  if (!strncmp(triple, "x86_64", 6)) {
    if (name_index(x86_32_only, cpu, strlen(cpu)) >= 0) {
      snprintf(msg, sizeof msg, "CPU '%s' cannot run 64-bit code, which %s "
               "needs", cpu, triple);
      return xstrdup(msg);
    }
    for (const char *p = features; (p = strstr(p, "-64bit")); p++)
      if ((p == features || p[-1] == ',') && (p[6] == ',' || !p[6])) {
        snprintf(msg, sizeof msg, "the feature -64bit: %s needs 64-bit code",
                 triple);
        return xstrdup(msg);
      }
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

/* One function that `body` adds to a module, compiled for t and given
 * back as assembly text (malloc'd; NULL where t has no target machine
 * or the code generator failed). */
static char *probe_asm(const dnc_target *t,
                       void (*body)(LLVMContextRef, LLVMModuleRef))
{
  char *err = NULL;
  LLVMTargetMachineRef tm = dnc_target_machine(t, &err);
  if (!tm) {
    free(err);
    return NULL;
  }
  LLVMContextRef c = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("probe", c);
  LLVMSetTarget(m, t->triple);
  body(c, m);
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL, *text = NULL;
  if (!LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &buf)) {
    text = strndup(LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
    LLVMDisposeMemoryBuffer(buf);
  }
  LLVMDisposeMessage(msg);
  LLVMDisposeModule(m);
  LLVMContextDispose(c);
  LLVMDisposeTargetMachine(tm);
  return text;
}

/* the probe function, out probe(in[, in]) with 512-bit vectors legal, and
 * a builder at its entry (*b, for the caller to dispose of) */
static LLVMValueRef probe_fn(LLVMContextRef c, LLVMModuleRef m,
                             LLVMTypeRef in, LLVMTypeRef out, unsigned nin,
                             LLVMBuilderRef *b)
{
  LLVMTypeRef args[2] = {in, in};
  LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(out, args, nin, 0));
  LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", "512");
  *b = LLVMCreateBuilderInContext(c);
  LLVMPositionBuilderAtEnd(*b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  return fn;
}

/* a * b + a on <16 x float>, by llvm.fmuladd */
static void fma_body(LLVMContextRef c, LLVMModuleRef m)
{
  LLVMTypeRef v = LLVMVectorType(LLVMFloatTypeInContext(c), 16);
  LLVMBuilderRef b;
  LLVMValueRef fn = probe_fn(c, m, v, v, 2, &b);
  LLVMTypeRef ov = v;
  unsigned id = LLVMLookupIntrinsicID("llvm.fmuladd", 12);
  LLVMValueRef fma_args[3] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 1),
                              LLVMGetParam(fn, 0)};
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMIntrinsicGetType(c, id, &ov, 1),
                                 LLVMGetIntrinsicDeclaration(m, id, &ov, 1),
                                 fma_args, 3, ""));
  LLVMDisposeBuilder(b);
}

/* the probe function returning its one argument cast by op to `out` */
static void cast_probe(LLVMContextRef c, LLVMModuleRef m, LLVMTypeRef in,
                       LLVMTypeRef out, LLVMOpcode op)
{
  LLVMBuilderRef b;
  LLVMValueRef fn = probe_fn(c, m, in, out, 1, &b);
  LLVMBuildRet(b, LLVMBuildCast(b, op, LLVMGetParam(fn, 0), out, ""));
  LLVMDisposeBuilder(b);
}

/* <16 x half> widened to <16 x float> */
static void fp16_body(LLVMContextRef c, LLVMModuleRef m)
{
  cast_probe(c, m, LLVMVectorType(LLVMHalfTypeInContext(c), 16),
             LLVMVectorType(LLVMFloatTypeInContext(c), 16), LLVMFPExt);
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
  char *text = probe_asm(t, fma_body);
  unsigned bits = 128;
  if (text) {
    bits = strstr(text, "zmm") ? 512 : strstr(text, "ymm") ? 256 : 128;
    *fma = strstr(text, "vfmadd") != NULL;
    free(text);
  }
  return bits;
}

/* <4 x i64> to <4 x double>: one vcvtqq2pd on ymm registers with
 * AVX512-DQ and -VL */
static void dqvl_body(LLVMContextRef c, LLVMModuleRef m)
{
  cast_probe(c, m, LLVMVectorType(LLVMInt64TypeInContext(c), 4),
             LLVMVectorType(LLVMDoubleTypeInContext(c), 4), LLVMSIToFP);
}

/* a <16 x i16> stored under the mask a > 0: one vmovdqu16 with AVX512-BW
 * and -VL (at 256 bits, with or without evex512) */
static void bw_body(LLVMContextRef c, LLVMModuleRef m)
{
  LLVMTypeRef v = LLVMVectorType(LLVMInt16TypeInContext(c), 16);
  LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0);
  LLVMTypeRef args[2] = {v, ptr}, over[2] = {v, ptr};
  LLVMValueRef fn = LLVMAddFunction(
      m, "probe", LLVMFunctionType(LLVMVoidTypeInContext(c), args, 2, 0));
  LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", "512");
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  LLVMValueRef a = LLVMGetParam(fn, 0);
  LLVMValueRef mask = LLVMBuildICmp(b, LLVMIntSGT, a, LLVMConstNull(v), "");
  unsigned id = LLVMLookupIntrinsicID("llvm.masked.store", 17);
  LLVMValueRef call_args[4] = {
      a, LLVMGetParam(fn, 1), LLVMConstInt(LLVMInt32TypeInContext(c), 2, 0), mask};
  LLVMBuildCall2(b, LLVMIntrinsicGetType(c, id, over, 2),
                 LLVMGetIntrinsicDeclaration(m, id, over, 2), call_args, 4, "");
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

/* A target with 512-bit vectors or +avx512f but without AVX512-VL, -DQ
 * or -BW (Knights Landing and Mill: knl, knm, mic_avx512; +avx512f added
 * to an AVX2 CPU, where LLVM 19 keeps 256-bit vectors, without evex512,
 * but AVX-512's mask registers): LLVM 19 cannot select some of the kernels' operations there
 * (masked stores, fpclass) and aborts the process in the first compile,
 * so it is refused: a malloc'd message, else NULL. `what` names it. */
char *dnc_check_avx512_subset(const dnc_target *t, const char *what)
{
  if (strncmp(t->triple, "x86_64", 6) ||
      (t->vector_bits < 512 && !has_feature(t->features, "avx512f")))
    return NULL;
  char *dq = probe_asm(t, dqvl_body), *bw = probe_asm(t, bw_body);
  const char *miss = !dq || !bw ? "AVX512-VL, -DQ and -BW"
                     : !strstr(dq, "vcvtqq2pd") ? "AVX512-DQ"
                     : !strstr(dq, "ymm") ? "AVX512-VL"
                     : !strstr(bw, "vmovdqu16") ? "AVX512-BW"
                                                    : NULL;
  free(dq);
  free(bw);
  if (!miss)
    return NULL;
  char msg[512];
  snprintf(msg, sizeof msg, "%s has AVX-512F without %s, which dnc's "
           "kernels need with it (as every AVX-512 CPU since Skylake-SP "
           "has: x86-64-v4); name such a CPU, or add the missing features, "
           "or -avx512f for AVX2 code", what, miss);
  return xstrdup(msg);
}

/* Whether the target's f16 kernels convert with AVX512-FP16's vcvtph2psx
 * and vcvtps2phx (sapphirerapids and later), which a CPU with AVX-512 but
 * without that extension (AMD's) cannot run: a <16 x half> widened to
 * float, compiled and its assembly read, as dnc_target_probe does. */
int dnc_target_uses_avx512fp16(const dnc_target *t)
{
  if (strncmp(t->triple, "x86_64", 6))
    return 0;
  char *text = probe_asm(t, fp16_body);
  int uses = text && (strstr(text, "ph2psx") || strstr(text, "ps2phx"));
  free(text);
  return uses;
}

/* Whether LLVM's host feature string says this machine lacks `name`
 * (it lists every feature it knows, "+name" or "-name"). */
static int host_lacks(const char *name)
{
  const char *f = dnc_host_features();
  size_t n = strlen(name);
  for (const char *p = f; (p = strstr(p, name)); p += n)
    if (p > f && p[-1] == '-' && (p[n] == ',' || !p[n]))
      return 1;
  return 0;
}

/* The instruction sets a kernel may use: a JIT target whose features
 * enable one the host lacks would die of SIGILL in its first kernel. */
static const char *const isa_features[] = {
    "sse3", "ssse3", "sse4.1", "sse4.2", "sse4a", "popcnt", "avx", "avx2",
    "fma", "fma4", "xop", "f16c", "bmi", "bmi2", "avx512f", "avx512bw",
    "avx512cd", "avx512dq", "avx512vl", "avx512fp16", "avx512bf16",
    "avx512vbmi", "avx512vbmi2", "avx512vnni", "avx512ifma", "avx512bitalg",
    "avx512vpopcntdq", "avxneconvert", "avxvnni", "gfni", "vpclmulqdq",
    "aes", "pclmul", NULL};

/* A JIT runs the code it compiles on this machine: a target (a named CPU
 * or features) with instructions this CPU lacks is refused, with the
 * first one named, instead of a kernel dying of SIGILL. NULL when fine. */
static char *check_host_runs(const dnc_target *t, const char *what)
{
  if (strncmp(t->triple, "x86_64", 6) || !*dnc_host_features())
    return NULL;
  const char *miss = NULL;
  for (const char *const *f = isa_features; *f && !miss; f++)
    if (has_feature(t->features, *f) && host_lacks(*f))
      miss = *f;
  if (!miss && t->vector_bits >= 512 && host_lacks("avx512f"))
    miss = "avx512f";
  if (!miss && t->vector_bits >= 256 && host_lacks("avx"))
    miss = "avx";
  if (!miss && t->has_fma && host_lacks("fma") && host_lacks("fma4"))
    miss = "fma";
  if (!miss && host_lacks("avx512fp16") && dnc_target_uses_avx512fp16(t))
    miss = "avx512fp16";
  /* what a CPU's name implies beyond the probes: the x86-64 levels'
   * instruction sets, and AMD's FMA4 and XOP for bdver1..4 */
  static const struct {
    const char *cpu, *needs[10];
  } implied[] = {
      {"x86-64-v2", {"ssse3", "sse4.1", "sse4.2", "popcnt"}},
      {"x86-64-v3", {"ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2",
                     "fma", "bmi", "bmi2", "f16c"}},
      {"x86-64-v4", {"avx2", "fma", "bmi2", "f16c", "avx512f", "avx512bw",
                     "avx512cd", "avx512dq", "avx512vl"}},
      {"bdver", {"fma4", "xop"}}};
  for (size_t i = 0; !miss && i < sizeof implied / sizeof implied[0]; i++)
    if (!strncmp(t->cpu, implied[i].cpu, strlen(implied[i].cpu)))
      for (int k = 0; !miss && k < 10 && implied[i].needs[k]; k++)
        if (host_lacks(implied[i].needs[k]))
          miss = implied[i].needs[k];
  if (!miss)
    return NULL;
  char msg[512];
  snprintf(msg, sizeof msg, "%s: its kernels would use %s, which this "
           "machine's CPU (%s) lacks; the JIT runs the code it compiles "
           "here (for another machine's CPU, use dnc compile --cpu)",
           what, miss, dnc_host_cpu());
  return xstrdup(msg);
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
  /* x86-64: the small code model, for the JIT too, whose default is the
   * large one. There every constant-pool operand took a movabsq of its
   * 64-bit address first: a kernel that needs more vector constants than
   * registers (Derf's backward) spent a dozen instructions a vector on
   * them (docs/performance.md, round sixteen). ORC's JITLink puts an
   * object's sections in one allocation and reaches other symbols
   * through its own GOT and stubs, which is what the small model needs;
   * the shared library (aot.c) is linked by the system's linker, as any
   * PIC object. */
  LLVMCodeModel cm = !strncmp(t->triple, "x86_64", 6) ? LLVMCodeModelSmall
                                                      : LLVMCodeModelJITDefault;
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
      target, t->triple, t->cpu, t->features, levels[t->opt_level],
      LLVMRelocPIC, cm);
  if (!tm)
    *err = xstrdup("LLVM could not create a target machine");
  return tm;
}

void dnc_pipeline(const dnc_target *t, char *buf, size_t n)
{
  /* dnc's IR is explicit vector code already (codegen.c): LLVM's full
   * pipeline spent half of a JIT compile and gave kernels no faster
   * (docs/performance.md, "Compile latency"); CFG cleanup is what it
   * needs before instruction selection, and mem2reg, which puts the
   * loops' counters and f32 sums (allocas in codegen.c) in registers:
   * left in the stack frame, each vector of a layer loop loaded and
   * stored them again (the backward 2 to 7 % faster, docs/
   * performance.md, round sixteen). SROA as well made Derf's backward
   * slower (round fourteen). -O3 keeps the full pipeline. */
  if (t->opt_level == 0)
    snprintf(buf, n, "default<O0>");
  else if (t->opt_level < 3)
    snprintf(buf, n, "function(mem2reg,simplifycfg)");
  else
    snprintf(buf, n, "default<O3>");
}

int dnc_optimize(LLVMModuleRef m, const dnc_target *t, char **err)
{
  LLVMTargetMachineRef tm = dnc_target_machine(t, err);
  if (!tm)
    return -1;
  char passes[192];
  dnc_pipeline(t, passes, sizeof passes);
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

/* libgcc's f16 conversions, which LLVM calls for f16's fpext and fptrunc
 * on a CPU without F16C (x86-64, x86-64-v2). The process's symbol search
 * sees only the global scope, which lacks them where libdnc.so was
 * dlopen()ed with RTLD_LOCAL (Python's ctypes), its libgcc_s with it: so
 * by address. Declared for their addresses only, never called from C. */
extern void __extendhfsf2(void);
extern void __truncsfhf2(void);
static const struct {
  const char *name;
  void (*addr)(void);
} half_conversions[] = {{"__extendhfsf2", __extendhfsf2},
                        {"__truncsfhf2", __truncsfhf2}};
#define N_HALF (int)(sizeof half_conversions / sizeof half_conversions[0])

/* The scalar math of rtmath.c and the f16 conversions, by absolute
 * address, so that kernels find them whether libdnc is linked statically
 * or dynamically, and however it was loaded. */
static LLVMErrorRef define_runtime_symbols(LLVMOrcLLJITRef j)
{
  int n = dnc_rt_count();
  LLVMOrcCSymbolMapPair *pairs = calloc(2 * (size_t)n + N_HALF,
                                        sizeof *pairs);
  if (!pairs)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int i = 0; i < 2 * n + N_HALF; i++) {
    const char *name;
    void *addr;
    if (i < 2 * n) {
      dnc_rt_entry(i / 2, i % 2, &name, &addr);
    } else {
      name = half_conversions[i - 2 * n].name;
      addr = (void *)half_conversions[i - 2 * n].addr;
    }
    pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j, name);
    pairs[i].Sym.Address = (LLVMOrcJITTargetAddress)(uintptr_t)addr;
    pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported |
                                      LLVMJITSymbolGenericFlagsCallable;
    pairs[i].Sym.Flags.TargetFlags = 0;
  }
  LLVMOrcMaterializationUnitRef mu =
      LLVMOrcAbsoluteSymbols(pairs, 2 * (size_t)n + N_HALF);
  free(pairs);
  /* mu is now owned by the JITDylib */
  return LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j), mu);
}

/* The file holding this code (libdnc.so, or the program libdnc.a is
 * linked into) by path, size and modification time, and the device and
 * inode of the file this process mapped: a rebuilt dnc whose version
 * string did not change still gets keys of its own. */
static char build_id[1200];
static pthread_once_t build_once = PTHREAD_ONCE_INIT;

/* The mapping of addr in /proc/self/maps: its file's path, device (as
 * "maj:min") and inode. The path is absolute, where dladdr names a
 * program libdnc.a is linked into by its argv[0] (`dnc` run through
 * $PATH, or a relative path after a chdir), which stat() did not find:
 * its keys said "build unknown", and two builds of one version shared
 * the cache, a rebuilt dnc linking its predecessor's kernels. 0 when not
 * found. */
static int mapped_file(const void *addr, char *path, size_t n, char *dev,
                       size_t ndev, unsigned long *ino)
{
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f)
    return 0;
  char line[1400];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    unsigned maj, mnr;
    int at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu %n", &lo, &hi, &maj, &mnr,
               ino, &at) < 5 ||
        !at || (uintptr_t)addr < lo || (uintptr_t)addr >= hi ||
        line[at] != '/')
      continue;
    line[strcspn(line, "\n")] = 0;
    snprintf(path, n, "%s", line + at);
    snprintf(dev, ndev, "%x:%x", maj, mnr);
    found = 1;
  }
  fclose(f);
  return found;
}

/* The mapped file's device and inode are in the key because the path's
 * stat describes whatever is at the path when the first context is made,
 * not what this process runs: a new libdnc.so (or a relinked program)
 * renamed into place while an old process had not made its first
 * context gave the old process the new build's key, and the new build
 * then linked kernels the old code generator had made. The inode ties
 * the key to the file mapped; size and time still tell apart builds
 * written over one inode in place. Without /proc/self/maps the mapped
 * file is unknown, and so is the build. */
static void find_build_id(void)
{
  Dl_info info;
  struct stat st;
  char path[1100], dev[32];
  unsigned long ino;
  const char *file = NULL;
  if (mapped_file((const void *)&dnc_jit_new, path, sizeof path, dev,
                  sizeof dev, &ino)) {
    if (dladdr((void *)&dnc_jit_new, &info) && info.dli_fname &&
        info.dli_fname[0] == '/' && !stat(info.dli_fname, &st))
      file = info.dli_fname;
    else if (!stat(path, &st))
      file = path;
  }
  if (file)
    snprintf(build_id, sizeof build_id, "%.1000s %lld %lld.%09ld dev %s "
             "ino %lu", file, (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, dev, ino);
  else
    snprintf(build_id, sizeof build_id, "unknown");
}

/* whether the build is known (find_build_id): without it the kernel
 * cache is not used, as two builds of one version would share entries */
static int build_known(void)
{
  pthread_once(&build_once, find_build_id);
  return strcmp(build_id, "unknown") != 0;
}

const char *dnc_build_id(void)
{
  pthread_once(&build_once, find_build_id);
  return build_id;
}

/* The lines of a kernel cache key about everything but the function: what
 * makes the same DAG compile to other code. */
static char *target_key(const dnc_target *t)
{
  pthread_once(&build_once, find_build_id);
  const char *f = "dnc %s\nbuild %s\nllvm %s\ntriple %s\ncpu %s\n"
                  "features %s\nopt %d\npipeline %s\nmath_bits %d\n"
                  "vector_bits %u\nfma %d\nstream %d\nunroll %d %d\n";
  char passes[192];
  dnc_pipeline(t, passes, sizeof passes);
  size_t n = strlen(f) + strlen(DNC_VERSION_STRING) + strlen(build_id) +
             strlen(dnc_llvm_version()) + strlen(t->triple) + strlen(t->cpu) +
             strlen(t->features) + strlen(passes) + 64;
  char *s = malloc(n);
  if (!s)
    dnc_die(__FILE__, __LINE__, "out of memory");
  snprintf(s, n, f, DNC_VERSION_STRING, build_id, dnc_llvm_version(), t->triple,
           t->cpu, t->features, t->opt_level, passes, t->math_bits,
           t->vector_bits, t->has_fma, t->stream, t->unroll, t->lowp_unroll);
  return s;
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
  j->target.unroll = DNC_JIT_UNROLL;
  j->target.lowp_unroll = DNC_JIT_LOWP_UNROLL;
  if ((*err = dnc_check_target_names(j->target.triple, j->target.cpu,
                                 j->target.features))) {
    *bad_name = 1;
    dnc_jit_free(j);
    return NULL;
  }
  if (o->cpu || o->features) {
    j->target.vector_bits = dnc_target_probe(&j->target, &j->target.has_fma);
    char what[300];
    snprintf(what, sizeof what, "%s%.100s%s%s%s%.100s%s", o->cpu ? "CPU '" : "",
             o->cpu ? o->cpu : "", o->cpu ? "'" : "",
             o->cpu && o->features ? " with " : "",
             o->features ? "features '" : "", o->features ? o->features : "",
             o->features ? "'" : "");
    if ((*err = dnc_check_avx512_subset(&j->target, what)) ||
        (*err = check_host_runs(&j->target, what))) {
      *bad_name = 1;
      dnc_jit_free(j);
      return NULL;
    }
  } else {
    j->target.vector_bits = dnc_vector_bits(j->target.triple, j->target.features);
    j->target.has_fma = dnc_has_fma(j->target.triple, j->target.features);
  }
  j->dump_dir = o->dump_dir && *o->dump_dir ? xstrdup(o->dump_dir) : NULL;
  cpu_set_t cpus;
  j->split = !sched_getaffinity(0, sizeof cpus, &cpus) && CPU_COUNT(&cpus) > 1;
  if (dnc_kcache_enabled(o->cache) && build_known())
    j->cache_dir = dnc_kcache_dir(o->cache_dir);
  j->target_key = target_key(&j->target);
  j->target.stream = 1;
  j->stream_key = target_key(&j->target);
  j->target.stream = 0;

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
    /* what else LLVM itself may call (memset): the process */
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
  while (j->entries) { /* every library was freed: none is held */
    kentry *k = j->entries;
    j->entries = k->next;
    LLVMOrcReleaseResourceTracker(k->rt);
    free(k->key);
    free(k);
  }
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
  free(j->cache_dir);
  free(j->target_key);
  free(j->stream_key);
  free(j);
}

const char *dnc_jit_cpu(const dnc_jit *j) { return j->target.cpu; }
const char *dnc_jit_features(const dnc_jit *j) { return j->target.features; }
unsigned dnc_jit_vector_bits(const dnc_jit *j) { return j->target.vector_bits; }
int dnc_jit_target_flags(const dnc_jit *j) { return dnc_target_flags(&j->target); }

dnc_jit_lib *dnc_jit_lib_new(dnc_jit *j)
{
  dnc_jit_lib *l = calloc(1, sizeof *l);
  if (!l)
    dnc_die(__FILE__, __LINE__, "out of memory");
  l->j = j;
  pthread_mutex_lock(&j->lock);
  l->id = ++j->serial;
  pthread_mutex_unlock(&j->lock);
  return l;
}

/* Under the jit's lock. */
static void lib_hold(dnc_jit_lib *l, kentry *k)
{
  if (l->nheld == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 8;
    l->held = realloc(l->held, sizeof *l->held * (size_t)l->cap);
    if (!l->held)
      dnc_die(__FILE__, __LINE__, "out of memory");
  }
  l->held[l->nheld++] = k;
  k->refs++;
}

/* Under the jit's lock: drops one reference, freeing the code with the
 * last. */
static void entry_release(dnc_jit *j, kentry *k)
{
  if (--k->refs)
    return;
  for (kentry **p = &j->entries; *p; p = &(*p)->next)
    if (*p == k) {
      *p = k->next;
      break;
    }
  LLVMErrorRef e = LLVMOrcResourceTrackerRemove(k->rt);
  if (e)
    free(dnc_llvm_error(e)); /* nothing to report it to */
  LLVMOrcReleaseResourceTracker(k->rt);
  free(k->key);
  free(k);
}

void dnc_jit_lib_free(dnc_jit_lib *l)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->j->lock);
  for (int i = 0; i < l->nheld; i++)
    entry_release(l->j, l->held[i]);
  pthread_mutex_unlock(&l->j->lock);
  free(l->held);
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
  /* made in memory: LLVMPrintModuleToFile ends the process when the
   * disk is full */
  char *text = LLVMPrintModuleToString(m);
  int bad = dnc_write_whole(path, text, strlen(text));
  if (bad && asprintf(err, "cannot write the IR to '%s': %s", path,
                      strerror(errno)) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  LLVMDisposeMessage(text);
  free(path);
  return bad ? -1 : 0;
}

/* Under the jit's lock: the entry for exactly this key, or NULL. */
static kentry *entry_find(dnc_jit *j, const char *name, const char *key)
{
  for (kentry *k = j->entries; k; k = k->next)
    if (!strcmp(k->name, name) && !strcmp(k->key, key))
      return k;
  return NULL;
}

/* A function's object code: one object, or two (compile_object) */
typedef struct objs {
  LLVMMemoryBufferRef o[2];
  int n;
} objs;

static void objs_dispose(objs *o)
{
  for (int i = 0; i < o->n; i++)
    LLVMDisposeMemoryBuffer(o->o[i]);
  o->n = 0;
}

/* Optimisation (where opt) and code generation of mod (consumed, with its
 * context) into *obj */
static int emit_object(LLVMContextRef ctx, LLVMModuleRef mod, int opt,
                       const dnc_target *t, LLVMMemoryBufferRef *obj,
                       char **err)
{
  LLVMTargetMachineRef tm = NULL;
  int bad = (opt && dnc_optimize(mod, t, err)) ||
            !(tm = dnc_target_machine(t, err));
  if (!bad) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, obj)) {
      *err = fmt("LLVM could not emit the kernels' code: %s", msg ? msg : "");
      bad = 1;
    }
    LLVMDisposeMessage(msg);
  }
  if (tm)
    LLVMDisposeTargetMachine(tm);
  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  return bad ? -1 : 0;
}

typedef struct emit_job {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  const dnc_target *t;
  LLVMMemoryBufferRef obj;
  char *err;
  int rc;
} emit_job;

static void *emit_thread(void *p)
{
  emit_job *e = p;
  e->rc = emit_object(e->ctx, e->mod, 1, e->t, &e->obj, &e->err);
  return NULL;
}

/* compiles in flight in this process (compile_object) */
static atomic_int compiling;

/* Codegen, optimisation and code generation of f's kernels in dtype dt,
 * with symbols "<sym>_<form>": the object code in *out. LLVM's code
 * generator is nine tenths of a cold compile and runs on one thread per
 * module: where the process may use two CPUs or more and no other compile
 * is in flight in it (a search's or a server's threads keep theirs), the
 * forward's kernels and the backward's are two modules, and the
 * backward's is generated on a second thread meanwhile. The wall time of
 * a cold compile is then about the backward's, 60 to 70% of the whole
 * (docs/performance.md, round eleven), and the code the same. An IR dump
 * keeps one module. */
static int compile_object(dnc_jit *j, dnc_mod *m, dnc_fn *f, int dt,
                          int stream, const char *sym, const char *dump_name,
                          objs *out, char **err)
{
  dnc_target t = j->target;
  t.stream = stream;
  int busy = atomic_fetch_add(&compiling, 1);
  int split = j->split && !busy && !j->dump_dir;
  out->n = 0;
  /* the IR of both, on this thread: codegen grows m's DAG */
  emit_job job = {NULL, NULL, &j->target, NULL, NULL, 0};
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = dnc_codegen_forms(ctx, m, f, dt, &t,
                                        split ? DNC_FORMS_FWD : DNC_FORMS_ALL,
                                        sym, err);
  if (mod && split) {
    job.ctx = LLVMContextCreate();
    job.mod = dnc_codegen_forms(job.ctx, m, f, dt, &t, DNC_FORMS_BWD, sym, err);
  }
  int bad = !mod || (split && !job.mod) ||
            dump(j, mod, dump_name, "before", err) ||
            dnc_optimize(mod, &j->target, err) ||
            dump(j, mod, dump_name, "after", err);
  if (bad) {
    if (mod)
      LLVMDisposeModule(mod);
    if (job.mod)
      LLVMDisposeModule(job.mod);
    LLVMContextDispose(ctx);
    if (job.ctx)
      LLVMContextDispose(job.ctx);
    atomic_fetch_sub(&compiling, 1);
    return -1;
  }
  pthread_t th;
  int threaded = 0;
  if (split) {
    pthread_attr_t attr;
    if (!pthread_attr_init(&attr)) {
      pthread_attr_setstacksize(&attr, 8u << 20); /* LLVM recurses */
      threaded = !pthread_create(&th, &attr, emit_thread, &job);
      pthread_attr_destroy(&attr);
    }
  }
  bad = emit_object(ctx, mod, 0, &j->target, &out->o[0], err);
  if (threaded)
    pthread_join(th, NULL);
  else if (split) /* no thread to be had: one after the other */
    emit_thread(&job);
  atomic_fetch_sub(&compiling, 1);
  if (!bad)
    out->n = 1;
  if (split && !job.rc)
    out->o[out->n++] = job.obj;
  if (bad || (split && job.rc)) {
    if (!bad)
      *err = job.err;
    else
      free(job.err);
    objs_dispose(out);
    return -1;
  }
  return 0;
}

/* A cache entry holds the object code as it is for one object; for two,
 * OBJS_MAGIC, the first's size (8 bytes, little-endian) and the two */
static const char OBJS_MAGIC[8] = "dnc2obj";

static void *objs_blob(const objs *o, size_t *n, int *owned)
{
  size_t a = LLVMGetBufferSize(o->o[0]);
  if (o->n == 1) {
    *n = a;
    *owned = 0;
    return (void *)LLVMGetBufferStart(o->o[0]);
  }
  size_t b = LLVMGetBufferSize(o->o[1]);
  unsigned char *p = malloc(16 + a + b);
  if (!p)
    dnc_die(__FILE__, __LINE__, "out of memory");
  memcpy(p, OBJS_MAGIC, 8);
  for (int i = 0; i < 8; i++)
    p[8 + i] = (unsigned char)((uint64_t)a >> (8 * i));
  memcpy(p + 16, LLVMGetBufferStart(o->o[0]), a);
  memcpy(p + 16 + a, LLVMGetBufferStart(o->o[1]), b);
  *n = 16 + a + b;
  *owned = 1;
  return p;
}

/* The objects of a cache entry's data; -1 where its sizes do not add up */
static int objs_from_blob(const unsigned char *p, size_t n, const char *name,
                          objs *o)
{
  o->n = 0;
  if (n < 16 || memcmp(p, OBJS_MAGIC, 8)) {
    o->o[o->n++] = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)p, n, name);
    return 0;
  }
  uint64_t a = 0;
  for (int i = 0; i < 8; i++)
    a |= (uint64_t)p[8 + i] << (8 * i);
  if (a == 0 || a >= n - 16)
    return -1;
  o->o[o->n++] = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)p + 16, a, name);
  o->o[o->n++] = LLVMCreateMemoryBufferWithMemoryRangeCopy(
      (const char *)p + 16 + a, n - 16 - a, name);
  return 0;
}

/* Under the jit's lock: links the object code (consumed) as a new entry
 * and looks its kernels up; NULL with *err set on failure (nothing of it
 * is left in the LLJIT then). */
static kentry *entry_link(dnc_jit *j, const char *name, char *key,
                          objs *o, char **err)
{
  kentry *k = calloc(1, sizeof *k);
  if (!k)
    dnc_die(__FILE__, __LINE__, "out of memory");
  snprintf(k->name, sizeof k->name, "%s", name);
  k->rt = LLVMOrcJITDylibCreateResourceTracker(
      LLVMOrcLLJITGetMainJITDylib(j->lljit));
  /* each object is now owned by the LLJIT, the ones after an error too */
  LLVMErrorRef e = NULL;
  for (int i = 0; i < o->n; i++)
    if (!e)
      e = LLVMOrcLLJITAddObjectFileWithRT(j->lljit, k->rt, o->o[i]);
    else
      LLVMDisposeMemoryBuffer(o->o[i]);
  o->n = 0;
  for (int i = 0; i < DNC_K__COUNT && !e; i++) {
    char sym[DNC_KCACHE_NAME_LEN + 32];
    snprintf(sym, sizeof sym, "dnck%s_%s", name, dnc_kernel_forms[i]);
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(j->lljit, &addr, sym);
    k->fns[i] = (void *)(uintptr_t)addr;
  }
  if (e) {
    *err = dnc_llvm_error(e);
    e = LLVMOrcResourceTrackerRemove(k->rt);
    if (e)
      free(dnc_llvm_error(e));
    LLVMOrcReleaseResourceTracker(k->rt);
    free(k);
    return NULL;
  }
  k->key = key;
  k->next = j->entries;
  j->entries = k;
  return k;
}

int dnc_jit_compile(dnc_jit_lib *l, dnc_mod *m, dnc_fn *f, int dt, int stream,
                    void **fns, char **err)
{
  dnc_jit *j = l->j;
  char *key = dnc_kcache_key(m, f, dnc_dtype_names[dt],
                             stream ? j->stream_key : j->target_key);
  char name[DNC_KCACHE_NAME_LEN + 1];
  dnc_kcache_name(key, name);

  pthread_mutex_lock(&j->lock);
  kentry *k = entry_find(j, name, key);
  if (k)
    lib_hold(l, k);
  pthread_mutex_unlock(&j->lock);

  objs obj = {{NULL, NULL}, 0};
  if (!k && j->cache_dir && !j->dump_dir) { /* a dump wants a compile */
    void *data;
    size_t n;
    if (dnc_kcache_read(j->cache_dir, name, key, &data, &n) == 1) {
      if (objs_from_blob(data, n, name, &obj)) /* sizes that do not add up */
        objs_dispose(&obj);
      free(data);
    }
  }
  int from_cache = obj.n != 0;
  for (int tries = 0; !k && tries < 2; tries++) {
    if (!obj.n) {
      char sym[DNC_KCACHE_NAME_LEN + 8], dump_name[160];
      snprintf(sym, sizeof sym, "dnck%s", name);
      snprintf(dump_name, sizeof dump_name, "dnc%lu_%.100s_%s%s", l->id,
               f->name, dnc_dtype_names[dt], stream ? "_stream" : "");
      if (compile_object(j, m, f, dt, stream, sym, dump_name, &obj, err)) {
        free(key);
        return -1;
      }
      from_cache = 0;
      if (j->cache_dir) {
        size_t n;
        int owned;
        void *blob = objs_blob(&obj, &n, &owned);
        dnc_kcache_write(j->cache_dir, name, key, blob, n);
        if (owned)
          free(blob);
      }
    }
    pthread_mutex_lock(&j->lock);
    /* another thread may have linked the same entry meanwhile */
    k = entry_find(j, name, key);
    if (k) {
      objs_dispose(&obj);
    } else {
      char *lerr = NULL;
      k = entry_link(j, name, key, &obj, &lerr);
      if (k) {
        key = NULL; /* now the entry's */
      } else if (from_cache) {
        free(lerr); /* a valid entry LLVM refuses: compile it anew */
      } else {
        *err = lerr;
      }
    }
    if (k)
      lib_hold(l, k);
    pthread_mutex_unlock(&j->lock);
    obj.n = 0;
    if (!k && !from_cache)
      break;
  }
  free(key);
  if (!k)
    return -1;
  memcpy(fns, k->fns, sizeof k->fns);
  return 0;
}
