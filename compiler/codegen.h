/*
 * codegen.h - what the LLVM-facing files share: code generation
 * (codegen.c), the vector math interface (vmath.c) and the JIT (jit.c).
 * Kept apart from dnc_int.h so that the rest of the compiler, the
 * runtime and the command line build without LLVM's headers: what they
 * need of code generation (dtypes, kernel forms, the AOT options) is in
 * dnc_int.h.
 */
#ifndef DNC_CODEGEN_H
#define DNC_CODEGEN_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/TargetMachine.h>

#include "dnc_int.h"

/* What one kernel body is being built with. */
typedef struct dnc_cg {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  int dtype;
  int f64;       /* compute in double (else float) */
  unsigned lanes; /* vector width in elements of the compute type */
  int fma;        /* the target has fused multiply-add */
  int target;     /* its DNC_TARGET_* flags (dnc_target_flags) */
  int avx512;     /* x86 with AVX-512F: vscalefps scales by 2^n in one step */
  int bf16cvt;    /* AVX512-BF16 with 16 lanes: vcvtneps2bf16 (store_data) */
  int lowp;       /* 8 or 11: the vector math's results are for bf16 or f16
                     (shorter polynomials, vmath.c); 0: full precision */
  LLVMTypeRef i1, i16, i32, i64, f32, f64t, ptr, voidt;
  LLVMTypeRef ct;  /* compute scalar type */
  LLVMTypeRef vt;  /* <lanes x ct> */
  LLVMTypeRef mt;  /* <lanes x i1> */
  LLVMTypeRef st;  /* storage scalar type (i16 for bf16, half for f16) */
  LLVMTypeRef accv; /* <lanes x double>: reduction accumulators */
  /* per emitted body */
  LLVMValueRef *memo; /* by node id */
  uint32_t memo_n;
  LLVMValueRef x;       /* the input vector */
  LLVMValueRef *params; /* by parameter index: a vector */
  const dnc_fn *fn;
  /* exp(-k |t|) already built in this body, shared by tanh, sigmoid and
   * softplus of +-s*t (DyT's backward needs tanh(u), sigmoid(2u) and
   * sigmoid(-2u): one exp) */
  struct {
    uint32_t t;
    double k;
    LLVMValueRef y, v; /* y = -k |t|, v = exp(y) */
  } expneg[16];
  int nexpneg;
  /* exp's argument reduction of a y <= 0 (vmath.c, reduce_nonpos), once
   * per y in a body: exp(y) and bf16/f16's tanh of the same y (DyT's
   * backward) share it; where exp(y) was built from it (f32, f64), q,
   * exp's inner value with fused multiply-add (exp(r) = 1 + r q,
   * vmath.c exp_r_q), or em = expm1(r) without, from which the layer
   * backward's tanh takes expm1(r) (r q or em) */
  struct {
    LLVMValueRef y, under, n, r, q, em;
  } red[4];
  int nred;
  /* the bf16 stores of an unrolled turn (emit_turn), where late_on: each
   * vector is stored as vcvtneps2bf16 rounds it, and kept here with its
   * subnormal lanes, for one branch after the turn (late_fixup) instead
   * of one per vector (bf16_round) */
  struct {
    LLVMValueRef base, idx, v, sub;
  } late[16];
  int nlate, late_on;
  int stream;   /* dnc_target.stream */
  int nt_store; /* store_data is writing an output (y or dx) */
  int dgamma_f; /* the layer backward's f for dgamma alone is being built:
                   tanh and sigmoid may take the derivative's quotient
                   (dnc_vm_with_e) */
} dnc_cg;

/* The vector-math interface (vmath.c): one lowering per transcendental op
 * (ops.h's RT) and pow, on vectors of the compute type: dnc's own vector
 * code where dnc_vm_native(op, f64) says so, else a lane-by-lane call of
 * rtmath.c's scalar function (f64 pow). */
LLVMValueRef dnc_vm_emit(dnc_cg *cg, int op, LLVMValueRef a, LLVMValueRef b);
/* The same for tanh (e = exp(-2|x|)), sigmoid and softplus (e =
 * exp(-|x|)) given e = exp(y) and y = -k|x|, which codegen shares between
 * them (bf16 and f16 kernels' tanh uses y, not e); dnc_vm_emit computes e
 * as dnc_vm_expneg(-(k |x|)) and calls these. Only where
 * dnc_vm_native(op, f64) says so. */
LLVMValueRef dnc_vm_expneg(dnc_cg *cg, LLVMValueRef y); /* exp(y), y <= 0 */
LLVMValueRef dnc_vm_with_e(dnc_cg *cg, int op, LLVMValueRef x, LLVMValueRef e,
                           LLVMValueRef y);
/* tanh (e = exp(-2|x|)) and sigmoid (e = exp(-|x|)) as the layer
 * backward's f for dgamma, from what their derivatives (rewrite.c's
 * sigmoid pairs, q = e / (d d), d = 1 + e) computed already: f32's tanh
 * as (1 - e) / d with 1 - e from exp's reduction of y (vmath.c,
 * vm_tanh_q), no polynomial of its own; f64's 1 - 2 q d (its polynomial
 * below 1); sigmoid's e/d = q d and 1/d = 1 - q d, no division of its
 * own. Within 3 ulp of tanh and 3.5 of sigmoid in f32 (measured 2.2 and
 * 2.6, against dnc_vm_with_e's 1.03 and 1; tests/test_kernels.c): a
 * dgamma term's error, not the forward's. Only for f32 and f64 results;
 * y is the exp's argument -k|x|. */
LLVMValueRef dnc_vm_with_q(dnc_cg *cg, int op, LLVMValueRef x, LLVMValueRef e,
                          LLVMValueRef y);

/* erf as the layer backward's f for dγ where the target has erf's table
 * (f32 and f16 kernels, 16 lanes): pieces of one form, within 2.5 ulp of
 * f32 (vmath.c, vm_erf_table_dgamma); NULL elsewhere (the forward's erf
 * is taken) */
LLVMValueRef dnc_vm_erf_dgamma(dnc_cg *cg, LLVMValueRef x);

/* a / b and 1/sqrt as the kernels compute them: IEEE's, except in bf16's
 * math (math_bits 8) on 16-lane AVX-512, where they come from the 14-bit
 * estimates (vmath.c, estimates_ok). dnc_vm_rsqrt returns NULL where the
 * exact operation is to be emitted. b_normal: b is never subnormal (the
 * estimate needs no branch for one). */
LLVMValueRef dnc_vm_div(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b,
                        int b_normal);
LLVMValueRef dnc_vm_rsqrt(dnc_cg *cg, LLVMValueRef x);

/* Splat a compute-type constant. */
LLVMValueRef dnc_cg_splat(dnc_cg *cg, double v);

/* dnc_target.unroll of the JIT and of `dnc compile` (docs/performance.md,
 * round sixteen), and the JIT's lowp_unroll (round twenty-two) */
enum { DNC_JIT_UNROLL = 4, DNC_JIT_LOWP_UNROLL = 8, DNC_AOT_UNROLL = 2 };

/* Target description for one compile: the machine, its vector width. */
typedef struct dnc_target {
  char *triple, *cpu, *features;
  int opt_level; /* 0..3 */
  unsigned vector_bits;
  int has_fma; /* fused multiply-add in hardware (else mul and add) */
  int math_bits; /* 0: the vector math matched to each dtype (8 bits for
                    bf16 kernels, 11 for f16, full for f32 and f64); 24:
                    f32's in every f32-computed kernel; 8 or 11: that in
                    every one (dnc_options.math_bits) */
  int unroll; /* full vectors a turn of a layer loop with γ that does not
                 speculate, outside the stream kernels (codegen.c,
                 layer_unroll): the JIT's 4, `dnc compile`'s 2 (its bar is
                 compile time: a search's thousands of candidates in one
                 library); a loop without γ takes at most 2; 0 or 1, and
                 opt_level 0: one */
  int lowp_unroll; /* the same for kernels with bf16's or f16's math
                      (math_bits 8 or 11): the JIT's 8, where DyT's bf16
                      layer backward took 4.5 ns a vector in cache with
                      4 and 3.7 with 8 (f32's Derf, whose body needs more
                      registers, 4.8 and 5.2); 0: unroll */
  int stream; /* x86: the kernels write y and dx with non-temporal stores
                 (every full vector; a row's masked tail as usual) and
                 end with sfence. They then need every row of y and dx
                 aligned to a vector of the storage type: the runtime
                 calls them only so (kernels.c, pick_stream), and only for
                 outputs too large to stay in the caches. */
} dnc_target;

/* t's DNC_TARGET_* flags (dnc_int.h), for the lowering rewrites */
int dnc_target_flags(const dnc_target *t);

/* Kernel forms for dnc_codegen, as bits 1 << DNC_K_*: all of them, and
 * the forward's and the backward's (a plain form calls its layer form, so
 * they go together) */
#define DNC_FORMS_ALL ((1u << DNC_K__COUNT) - 1)
#define DNC_FORMS_FWD (1u << DNC_K_FWD | 1u << DNC_K_LAYER_FWD)
#define DNC_FORMS_BWD (1u << DNC_K_BWD | 1u << DNC_K_LAYER_BWD)

/* Builds the module holding every kernel of f in dtype dt, with symbol
 * names "<prefix>_<form>": differentiates f (into m's DAG; the caller
 * holds the module's lock), applies the lowering rewrites (rewrite.c) for
 * the dtype's compute precision and t's FMA, and lowers each node (ops.h's
 * LOWER). Runs the verifier; returns NULL with *err set (malloc'd) on
 * failure. The module belongs to ctx. */
LLVMModuleRef dnc_codegen(LLVMContextRef ctx, dnc_mod *m, dnc_fn *f, int dt,
                          const dnc_target *t, const char *prefix,
                          char **err);
/* The DAG nodes dnc_codegen_forms makes for f in dt on t (f's derivatives
 * and the lowering rewrites), made now. aot.c makes them for every
 * function, dtype and level in the order one thread takes them, before
 * its threads start: the nodes' ids, which order the operands of
 * commutative operations (simplify.c) and so the code, were those of
 * whichever thread came first, and a library compiled on several
 * threads differed from one compiled on one (in 2 of 12 compiles of
 * tests/aot.sh's ten functions). 0, or -1 past a limit (the compile says
 * which). The caller holds the module. */
int dnc_codegen_prepare(dnc_mod *m, dnc_fn *f, int dt, const dnc_target *t);

/* The same with only the kernels whose bits are in forms (DNC_FORMS_*) */
LLVMModuleRef dnc_codegen_forms(LLVMContextRef ctx, dnc_mod *m, dnc_fn *f,
                                int dt, const dnc_target *t, unsigned forms,
                                const char *prefix, char **err);

/* jit.c --------------------------------------------------------------- */

/* Initialises LLVM's native target once per process. */
void dnc_llvm_init(void);
/* Every target LLVM was built with (cross-compiling), once per process. */
void dnc_llvm_init_all(void);
/* NULL when LLVM knows the CPU and features for the triple, else a
 * malloc'd message (with a suggestion where one is close). */
char *dnc_check_target_names(const char *triple, const char *cpu,
                             const char *features);
/* The vector width in bits that code for t uses, and whether it has fused
 * multiply-add (*fma), found by compiling a probe for t's CPU. */
unsigned dnc_target_probe(const dnc_target *t, int *fma);
/* NULL, or why a target with 512-bit vectors lacking AVX512-VL, -DQ or
 * -BW is refused (LLVM aborts compiling dnc's kernels there) */
char *dnc_check_avx512_subset(const dnc_target *t, const char *what);
/* A malloc'd copy of an LLVM error's message; the error is consumed. */
char *dnc_llvm_error(LLVMErrorRef e);
/* The target machine for t (NULL with *err set on failure). */
LLVMTargetMachineRef dnc_target_machine(const dnc_target *t, char **err);
/* The pass pipeline dnc_optimize runs for t, in opt's -passes syntax. */
void dnc_pipeline(const dnc_target *t, char *buf, size_t n);
/* Runs that pipeline. */
int dnc_optimize(LLVMModuleRef m, const dnc_target *t, char **err);
/* Vector width in bits for a triple and feature string, and whether it
 * has fused multiply-add. */
unsigned dnc_vector_bits(const char *triple, const char *features);
int dnc_has_fma(const char *triple, const char *features);
/* x86 with AVX512-BF16 named in the features: vcvtneps2bf16 rounds 16
 * floats to bf16 in one instruction */
int dnc_has_bf16_convert(const char *triple, const char *features);

#endif
