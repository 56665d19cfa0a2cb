/*
 * codegen.c - from a function's DAG to vectorized kernels in LLVM IR.
 *
 * One LLVM module per (function, dtype) holds four kernels (the C types are
 * in runtime/kernel.h; the runtime's chunking and the public entry points
 * are in runtime/):
 *
 *   fwd        y[i] = f(x[i]; p)                       element-wise
 *   bwd        dx[i] = dy[i] * df/dx,  dp[k] = sum_i dy[i] * df/dp_k
 *   layer_fwd  y[r,c] = gamma[c] * f(x[r,c]; p, pc[c]) + beta[c]
 *   layer_bwd  one pass over x and dy: dx, the scalar sums dp[k], and the
 *              per-channel sums dpc[k][c], dgamma[c] = sum_r dy * f,
 *              dbeta[c] = sum_r dy
 *
 * Loops are explicit vectors of the target's widest useful width, with one
 * masked iteration for the tail; LLVM's vectorizers are not relied on. The
 * storage type is f32, f64, bf16 or f16; bf16 and f16 are computed in f32
 * and rounded to nearest even when stored. Reductions accumulate in double
 * lanes, after groups of 8 terms in f32 (SUM_VECS, emit_tiles), and are
 * summed lane by lane in a fixed order, so a kernel's result does not
 * depend on how the caller chunks other work.
 *
 * Every derivative the backward needs is emitted into one body with one
 * memo over node ids: the hash-consed DAG makes tanh(alpha*x) the same node
 * in f, df/dx and df/dalpha, and it is computed once per vector. Before
 * lowering, the roots go through the lowering rewrites of rewrite.c (the
 * sigmoid pairs, the Gaussian's FMA correction), which the bit-exact
 * oracle (rtmath.c) applies too; here each node is lowered on its own
 * (ops.h's LOWER), exp choosing its short form where its argument is
 * known to be <= 0. With --dump-ir, values are named after their op.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>

#include "codegen.h"

const char *const dnc_dtype_names[DNC_DT__COUNT] = {"f32", "f64", "bf16",
                                                     "f16"};
const char *const dnc_kernel_forms[DNC_K__COUNT] = {"fwd", "bwd", "layer_fwd",
                                                    "layer_bwd"};

/* ------------------------------------------------------------ helpers */

static LLVMValueRef i64c(dnc_cg *cg, long long v)
{
  return LLVMConstInt(cg->i64, (unsigned long long)v, 1);
}

static LLVMValueRef splat_value(dnc_cg *cg, LLVMValueRef s, LLVMTypeRef vt)
{
  LLVMValueRef v = LLVMBuildInsertElement(cg->b, LLVMGetPoison(vt), s,
                                          LLVMConstInt(cg->i32, 0, 0), "");
  LLVMValueRef zero = LLVMConstNull(LLVMVectorType(cg->i32, cg->lanes));
  return LLVMBuildShuffleVector(cg->b, v, LLVMGetPoison(vt), zero, "splat");
}

static LLVMValueRef const_splat(LLVMValueRef c, unsigned n)
{
  LLVMValueRef v[64];
  DNC_ASSERT(n <= 64);
  for (unsigned i = 0; i < n; i++)
    v[i] = c;
  return LLVMConstVector(v, n);
}

LLVMValueRef dnc_cg_splat(dnc_cg *cg, double v)
{
  return const_splat(LLVMConstReal(cg->ct, cg->f64 ? v : (double)(float)v),
                     cg->lanes);
}

static LLVMValueRef intrinsic(dnc_cg *cg, const char *name, LLVMTypeRef *ov,
                              int nov, LLVMValueRef *args, int nargs)
{
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  DNC_ASSERT(id != 0);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, ov, (size_t)nov);
  LLVMTypeRef ty = LLVMIntrinsicGetType(cg->ctx, id, ov, (size_t)nov);
  return LLVMBuildCall2(cg->b, ty, fn, args, (unsigned)nargs, "");
}

static LLVMValueRef unary_intrinsic(dnc_cg *cg, const char *name,
                                    LLVMValueRef a)
{
  LLVMTypeRef t = LLVMTypeOf(a);
  return intrinsic(cg, name, &t, 1, &a, 1);
}

/* a three-operand intrinsic overloaded on its operands' type (fma) */
static LLVMValueRef unary3(dnc_cg *cg, const char *name, LLVMValueRef a,
                           LLVMValueRef b, LLVMValueRef c)
{
  LLVMTypeRef t = LLVMTypeOf(a);
  LLVMValueRef args[3] = {a, b, c};
  return intrinsic(cg, name, &t, 1, args, 3);
}

/* A vector load of `lanes` elements of type et at base[idx], masked when
 * mask is not NULL (the dead lanes read as zero). */
static LLVMValueRef load_vec(dnc_cg *cg, LLVMTypeRef et, LLVMValueRef base,
                             LLVMValueRef idx, LLVMValueRef mask)
{
  LLVMTypeRef vt = LLVMVectorType(et, cg->lanes);
  LLVMValueRef p = LLVMBuildGEP2(cg->b, et, base, &idx, 1, "");
  unsigned align = LLVMABISizeOfType(LLVMGetModuleDataLayout(cg->mod), et);
  if (!mask) {
    LLVMValueRef v = LLVMBuildLoad2(cg->b, vt, p, "");
    LLVMSetAlignment(v, align);
    return v;
  }
  LLVMTypeRef ov[2] = {vt, cg->ptr};
  LLVMValueRef args[4] = {p, LLVMConstInt(cg->i32, align, 0), mask,
                          LLVMConstNull(vt)};
  return intrinsic(cg, "llvm.masked.load", ov, 2, args, 4);
}

static void store_vec(dnc_cg *cg, LLVMTypeRef et, LLVMValueRef base,
                      LLVMValueRef idx, LLVMValueRef v, LLVMValueRef mask)
{
  LLVMValueRef p = LLVMBuildGEP2(cg->b, et, base, &idx, 1, "");
  unsigned align = LLVMABISizeOfType(LLVMGetModuleDataLayout(cg->mod), et);
  if (!mask) {
    LLVMValueRef s = LLVMBuildStore(cg->b, v, p);
    LLVMSetAlignment(s, align);
    if (cg->nt_store) {
      /* a whole vector, aligned (dnc_target.stream): movntps and kin */
      LLVMSetAlignment(s, (unsigned)LLVMABISizeOfType(
                              LLVMGetModuleDataLayout(cg->mod), LLVMTypeOf(v)));
      LLVMMetadataRef one = LLVMValueAsMetadata(LLVMConstInt(cg->i32, 1, 0));
      LLVMSetMetadata(s, LLVMGetMDKindIDInContext(cg->ctx, "nontemporal", 11),
                      LLVMMetadataAsValue(cg->ctx,
                                          LLVMMDNodeInContext2(cg->ctx, &one, 1)));
    }
    return;
  }
  LLVMTypeRef ov[2] = {LLVMTypeOf(v), cg->ptr};
  LLVMValueRef args[4] = {v, p, LLVMConstInt(cg->i32, align, 0), mask};
  intrinsic(cg, "llvm.masked.store", ov, 2, args, 4);
}

/* Storage to compute type. */
static LLVMValueRef load_data(dnc_cg *cg, LLVMValueRef base, LLVMValueRef idx,
                              LLVMValueRef mask)
{
  LLVMValueRef v = load_vec(cg, cg->st, base, idx, mask);
  switch (cg->dtype) {
  case DNC_DT_BF16: {
    LLVMTypeRef v32 = LLVMVectorType(cg->i32, cg->lanes);
    v = LLVMBuildZExt(cg->b, v, v32, "");
    v = LLVMBuildShl(cg->b, v, const_splat(LLVMConstInt(cg->i32, 16, 0),
                                           cg->lanes), "");
    return LLVMBuildBitCast(cg->b, v, cg->vt, "");
  }
  case DNC_DT_F16:
    return LLVMBuildFPExt(cg->b, v, cg->vt, "");
  default:
    return v;
  }
}

/* f32 to bf16 bits, rounded to nearest even with integer operations
 * (subnormals included); NaN stays a NaN, made quiet. */
static LLVMValueRef bf16_round_int(dnc_cg *cg, LLVMValueRef v)
{
  LLVMTypeRef v32 = LLVMVectorType(cg->i32, cg->lanes);
  LLVMValueRef k16 = const_splat(LLVMConstInt(cg->i32, 16, 0), cg->lanes);
  LLVMValueRef bits = LLVMBuildBitCast(cg->b, v, v32, "bits");
  LLVMValueRef odd = LLVMBuildAnd(
      cg->b, LLVMBuildLShr(cg->b, bits, k16, ""),
      const_splat(LLVMConstInt(cg->i32, 1, 0), cg->lanes), "");
  LLVMValueRef bias = LLVMBuildAdd(
      cg->b, odd, const_splat(LLVMConstInt(cg->i32, 0x7fff, 0), cg->lanes), "");
  LLVMValueRef rounded =
      LLVMBuildLShr(cg->b, LLVMBuildAdd(cg->b, bits, bias, ""), k16, "");
  LLVMValueRef quiet = LLVMBuildOr(
      cg->b, LLVMBuildLShr(cg->b, bits, k16, ""),
      const_splat(LLVMConstInt(cg->i32, 0x40, 0), cg->lanes), "");
  LLVMValueRef nan = LLVMBuildFCmp(cg->b, LLVMRealUNO, v, v, "isnan");
  LLVMValueRef r = LLVMBuildSelect(cg->b, nan, quiet, rounded, "");
  return LLVMBuildTrunc(cg->b, r, LLVMVectorType(cg->i16, cg->lanes), "bf16");
}

/* vcvtneps2bf16 of v, and *sub its subnormal lanes (the instruction reads
 * them as zero) */
static LLVMValueRef bf16_hw(dnc_cg *cg, LLVMValueRef v, LLVMValueRef *sub)
{
  LLVMValueRef hw = intrinsic(cg, "llvm.x86.avx512bf16.cvtneps2bf16.512", NULL, 0,
                              &v, 1);
  LLVMValueRef cargs[2] = {v, LLVMConstInt(cg->i32, 0x20, 0)}; /* ±subnormal */
  *sub = intrinsic(cg, "llvm.x86.avx512.fpclass.ps.512", NULL, 0, cargs, 2);
  return LLVMBuildBitCast(cg->b, hw, LLVMVectorType(cg->i16, cg->lanes), "bf16.hw");
}

static LLVMValueRef any_lane(dnc_cg *cg, LLVMValueRef m)
{
  LLVMTypeRef mt = LLVMTypeOf(m);
  return intrinsic(cg, "llvm.vector.reduce.or", &mt, 1, &m, 1);
}

/* The same bits in one vcvtneps2bf16 where the target has AVX512-BF16.
 * That instruction rounds to nearest even and quiets NaN as above, but
 * reads subnormal inputs as zero (checked over all 2^32 floats); a
 * vector with a subnormal lane, which ordinary data never has, takes the
 * integer path behind one branch. The test is one vfpclassps (class
 * 0x20, denormal): LLVM lowers llvm.is.fpclass of the same class to
 * three integer operations, for every vector stored. */
static LLVMValueRef bf16_round(dnc_cg *cg, LLVMValueRef v)
{
  if (!cg->bf16cvt)
    return bf16_round_int(cg, v);
  LLVMTypeRef i16v = LLVMVectorType(cg->i16, cg->lanes);
  LLVMValueRef sub, hw = bf16_hw(cg, v, &sub);
  LLVMValueRef any = any_lane(cg, sub);
  LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
  LLVMValueRef fn = LLVMGetBasicBlockParent(here);
  LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(cg->ctx, fn, "bf16.subnormal");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "bf16.join");
  LLVMBuildCondBr(cg->b, any, slow, join);
  LLVMPositionBuilderAtEnd(cg->b, slow);
  LLVMValueRef si = bf16_round_int(cg, v);
  LLVMBuildBr(cg->b, join);
  LLVMPositionBuilderAtEnd(cg->b, join);
  LLVMValueRef phi = LLVMBuildPhi(cg->b, i16v, "bf16");
  LLVMValueRef vals[2] = {hw, si};
  LLVMBasicBlockRef blocks[2] = {here, slow};
  LLVMAddIncoming(phi, vals, blocks, 2);
  return phi;
}

static void unlikely(dnc_cg *cg, LLVMValueRef br);

/* After an unrolled turn's bodies: where a vector stored by store_data
 * under late_on had a subnormal lane, which vcvtneps2bf16 read as zero,
 * the turn's vectors are stored again through the integer path (the same
 * bits as bf16_round's branch), behind one branch. The bodies then stay
 * in one block, which emit_turn interleaves: with a branch a vector, a
 * bf16 kernel ran one vector's chain at a time, and its math took longer
 * than f32's (DyT's bf16 forward 3.7 ns a vector in cache against the
 * same math in an f32 kernel's 2.1; docs/performance.md, round
 * twenty-two). */
static void late_fixup(dnc_cg *cg)
{
  int n = cg->nlate;
  cg->nlate = 0;
  if (!n)
    return;
  LLVMValueRef any = cg->late[0].sub;
  for (int i = 1; i < n; i++)
    any = LLVMBuildOr(cg->b, any, cg->late[i].sub, "");
  any = any_lane(cg, any);
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(cg->ctx, fn, "bf16.subnormal");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "bf16.join");
  unlikely(cg, LLVMBuildCondBr(cg->b, any, slow, join));
  LLVMPositionBuilderAtEnd(cg->b, slow);
  for (int i = 0; i < n; i++)
    store_vec(cg, cg->st, cg->late[i].base, cg->late[i].idx,
              bf16_round_int(cg, cg->late[i].v), NULL);
  LLVMBuildBr(cg->b, join);
  LLVMPositionBuilderAtEnd(cg->b, join);
}

/* Compute to storage type; bf16 rounds to nearest even and keeps NaN a
 * (quiet) NaN, f16 rounds through fptrunc (IEEE nearest even). Every
 * store_data is of an output, y or dx: streamed in stream kernels. */
static void store_data(dnc_cg *cg, LLVMValueRef base, LLVMValueRef idx,
                       LLVMValueRef v, LLVMValueRef mask)
{
  switch (cg->dtype) {
  case DNC_DT_BF16:
    if (cg->bf16cvt && cg->late_on && !mask &&
        cg->nlate < (int)(sizeof cg->late / sizeof cg->late[0])) {
      LLVMValueRef sub, hw = bf16_hw(cg, v, &sub);
      cg->late[cg->nlate++] = (__typeof__(cg->late[0])){base, idx, v, sub};
      v = hw;
    } else {
      v = bf16_round(cg, v);
    }
    break;
  case DNC_DT_F16:
    v = LLVMBuildFPTrunc(cg->b, v, LLVMVectorType(cg->st, cg->lanes), "f16");
    break;
  default:
    break;
  }
  cg->nt_store = cg->stream;
  store_vec(cg, cg->st, base, idx, v, mask);
  cg->nt_store = 0;
}

/* ------------------------------------------------- lowering of one node */

typedef LLVMValueRef (*lower_fn)(dnc_cg *cg, const dnc_node *e,
                                 LLVMValueRef *a);

static LLVMValueRef lw_leaf(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)a;
  switch (e->op) {
  case OP_CONST: return dnc_cg_splat(cg, e->value);
  case OP_INPUT: return cg->x;
  default: return cg->params[e->param];
  }
}

/* -(a k) for a constant k as a (-k), the same value in one operation
 * (the sigmoid pair's exp(-(|t| k)): tanh's -2|u|) */
static LLVMValueRef lw_neg(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  const dnc_node *m = e->arg[0];
  /* -(t t) (the Gaussian's exponent) as fma(-t, t, -0), where the target
   * fuses: the same value and sign of zero, one operation where the
   * square and the negation were two */
  const dnc_node *sq = m->op == OP_MUL && m->arg[0] == m->arg[1] ? m->arg[0]
                       : m->op == OP_POW && m->arg[1]->op == OP_CONST &&
                               m->arg[1]->value == 2.0 ? m->arg[0]
                                                       : NULL;
  /* in bf16's math, -(t t) as -(t t) itself: erf(t) squares the same t
   * (vmath.c, erf_bf16), and LLVM computes the square once for both; the
   * negation becomes the sign of the exp's reduction (vmath.c,
   * reduce_nonpos). Derf's bf16 backward: one operation a vector fewer
   * (4.93 -> 4.70 ns in cache). */
  if (sq && cg->lowp == 8 && cg->memo[sq->id])
    return LLVMBuildFNeg(cg->b, LLVMBuildFMul(cg->b, cg->memo[sq->id],
                                              cg->memo[sq->id], ""), "");
  if (sq && cg->fma && cg->memo[sq->id]) {
    LLVMValueRef t = cg->memo[sq->id];
    LLVMTypeRef vt = LLVMTypeOf(t);
    return intrinsic(cg, "llvm.fma", &vt, 1,
                     (LLVMValueRef[]){LLVMBuildFNeg(cg->b, t, ""), t,
                                      dnc_cg_splat(cg, -0.0)}, 3);
  }
  if (m->op == OP_MUL)
    for (int i = 0; i < 2; i++)
      if (m->arg[i]->op == OP_CONST && cg->memo[m->arg[1 - i]->id])
        return LLVMBuildFMul(cg->b, cg->memo[m->arg[1 - i]->id],
                             dnc_cg_splat(cg, -m->arg[i]->value), "");
  return LLVMBuildFNeg(cg->b, a[0], "");
}
static LLVMValueRef lw_add(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildFAdd(cg->b, a[0], a[1], "");
}
static LLVMValueRef lw_sub(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildFSub(cg->b, a[0], a[1], "");
}
/* at least 1 or NaN for every input: c + exp(y) or exp(y) + c for a
 * constant c >= 1 (the sigmoid pair's 1 + e), a constant >= 1, and
 * products of those */
static int at_least_one(const dnc_node *b)
{
  switch (b->op) {
  case OP_CONST: return b->value >= 1.0;
  case OP_MUL: return at_least_one(b->arg[0]) && at_least_one(b->arg[1]);
  case OP_ADD:
    for (int i = 0; i < 2; i++)
      if (b->arg[i]->op == OP_CONST && b->arg[i]->value >= 1.0 &&
          b->arg[1 - i]->op == OP_EXP)
        return 1;
    return 0;
  default: return 0;
  }
}

/* the sigmoid pair's e / ((1 + e) (1 + e)) divides by at least 1: bf16's
 * estimate without its branch for a subnormal divisor */
static LLVMValueRef lw_div(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  return dnc_vm_div(cg, a[0], a[1], at_least_one(e->arg[1]));
}

/* Small constant integer exponents become multiplications (the same
 * choice rtmath.c's evaluators make, see dnc_pow_special). */
static LLVMValueRef lw_pow(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  const dnc_node *ex = e->arg[1];
  int k = ex->op == OP_CONST ? dnc_pow_special(ex->value) : 0;
  LLVMValueRef one = dnc_cg_splat(cg, 1.0);
  switch (k) {
  case 1: return a[0];
  case 2: return LLVMBuildFMul(cg->b, a[0], a[0], "sq");
  case 3:
    return LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, a[0], a[0], ""), a[0],
                         "cube");
  case -1: return LLVMBuildFDiv(cg->b, one, a[0], "");
  case -2: /* (1/x)/x: 1/(x*x) would be 0 where x*x overflows */
    return LLVMBuildFDiv(cg->b, LLVMBuildFDiv(cg->b, one, a[0], ""), a[0], "invsq");
  }
  return dnc_vm_emit(cg, OP_POW, a[0], a[1]);
}

static LLVMValueRef lw_abs(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return unary_intrinsic(cg, "llvm.fabs", a[0]);
}

/* sign(a) = 1, -1, or a itself for ±0 and NaN */
static LLVMValueRef lw_sign(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  LLVMValueRef zero = dnc_cg_splat(cg, 0.0);
  LLVMValueRef neg = LLVMBuildSelect(
      cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, a[0], zero, ""),
      dnc_cg_splat(cg, -1.0), a[0], "");
  return LLVMBuildSelect(cg->b,
                         LLVMBuildFCmp(cg->b, LLVMRealOGT, a[0], zero, ""),
                         dnc_cg_splat(cg, 1.0), neg, "sign");
}

/* min and max propagate NaN (as a + b) and return the first operand on a
 * tie, like the interpreter */
static LLVMValueRef minmax(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b,
                           LLVMRealPredicate pick_b)
{
  LLVMValueRef t = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, pick_b, b, a, ""),
                                   b, a, "");
  LLVMValueRef nan = LLVMBuildFCmp(cg->b, LLVMRealUNO, a, b, "");
  return LLVMBuildSelect(cg->b, nan, LLVMBuildFAdd(cg->b, a, b, ""), t, "");
}
static LLVMValueRef lw_min(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return minmax(cg, a[0], a[1], LLVMRealOLT);
}
static LLVMValueRef lw_max(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return minmax(cg, a[0], a[1], LLVMRealOGT);
}
static LLVMValueRef lw_clamp(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return minmax(cg, minmax(cg, a[0], a[1], LLVMRealOGT), a[2], LLVMRealOLT);
}
static LLVMValueRef lw_sqrt(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return unary_intrinsic(cg, "llvm.sqrt", a[0]);
}
static LLVMValueRef lw_rsqrt(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  LLVMValueRef r = dnc_vm_rsqrt(cg, a[0]);
  return r ? r : LLVMBuildFDiv(cg->b, dnc_cg_splat(cg, 1.0),
                               unary_intrinsic(cg, "llvm.sqrt", a[0]), "rsqrt");
}
/* e = exp(-k |a|) for a = s t, built once per (t, k |s|): |round(s t)| k
 * = round(|s| k |t|) for k = 1 or 2, so e has the same bits as when
 * computed from a alone. *y: its argument, -k |a|. */
static LLVMValueRef expneg_t(dnc_cg *cg, const dnc_node *t, double k,
                             LLVMValueRef have_y, LLVMValueRef *y, int want_e);

/* want_e 0: only *y, -k |a| (the one of an exp built already in this body,
 * else a new one), and NULL */
static LLVMValueRef expneg_of(dnc_cg *cg, const dnc_node *a, double k,
                              LLVMValueRef *y, int want_e)
{
  const dnc_node *t;
  double s = dnc_split_scale(a, &t);
  if (!cg->f64)
    s = (float)s;
  return expneg_t(cg, t, k * fabs(s), NULL, y, want_e);
}

/* exp(-k |t|), once per (t, k) in a body; have_y: -(|t| k) where the
 * caller has it already */
static LLVMValueRef expneg_t(dnc_cg *cg, const dnc_node *t, double k,
                             LLVMValueRef have_y, LLVMValueRef *y, int want_e)
{
  for (int i = 0; i < cg->nexpneg; i++)
    if (cg->expneg[i].t == t->id && cg->expneg[i].k == k) {
      *y = cg->expneg[i].y;
      return want_e ? cg->expneg[i].v : NULL;
    }
  if (have_y) {
    *y = have_y;
  } else {
    LLVMValueRef tv = cg->memo[t->id];
    *y = LLVMBuildFMul(cg->b, unary_intrinsic(cg, "llvm.fabs", tv),
                       dnc_cg_splat(cg, -k), "");
  }
  if (!want_e)
    return NULL;
  LLVMValueRef ev = dnc_vm_expneg(cg, *y);
  if (LLVMIsAInstruction(ev))
    LLVMSetValueName2(ev, "expneg", 6);
  if (cg->nexpneg < (int)(sizeof cg->expneg / sizeof cg->expneg[0])) {
    cg->expneg[cg->nexpneg].t = t->id;
    cg->expneg[cg->nexpneg].k = k;
    cg->expneg[cg->nexpneg].y = *y;
    cg->expneg[cg->nexpneg++].v = ev;
  }
  return ev;
}

/* tanh, sigmoid and softplus of a through e = exp(-k |a|), k = 2 for
 * tanh, shared between them (an e no one uses is left to LLVM to drop).
 * bf16's and f16's tanh takes no e but its argument -2|a|, and the
 * reduction of an exp of it built already (vmath.c, reduce_nonpos) */
static LLVMValueRef lower_with_e(dnc_cg *cg, const dnc_node *e, LLVMValueRef a)
{
  LLVMValueRef y;
  if (cg->lowp && e->op == OP_TANH) {
    expneg_of(cg, e->arg[0], 2.0, &y, 0);
    return dnc_vm_with_e(cg, e->op, a, NULL, y);
  }
  LLVMValueRef ev = expneg_of(cg, e->arg[0], e->op == OP_TANH ? 2.0 : 1.0, &y, 1);
  if (cg->dgamma_f && !cg->lowp && e->op != OP_SOFTPLUS)
    return dnc_vm_with_q(cg, e->op, a, ev, y);
  return dnc_vm_with_e(cg, e->op, a, ev, y);
}

/* x 1 = x: a speculated scale (speculate) is the constant 1 */
static LLVMValueRef mul1(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b);

static LLVMValueRef lw_mul(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return mul1(cg, a[0], a[1]);
}

static LLVMValueRef lw_fma(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return unary3(cg, "llvm.fma", a[0], a[1], a[2]);
}

/* exp of an argument known to be <= 0: -(|t| k) (rewrite.c's sigmoid
 * pairs), shared with tanh, sigmoid and softplus of t; -(u^2) (the
 * Gaussian), whose IR is the one erf(u) builds for its own exp(-u^2)
 * (vm_erf), which LLVM then computes once for both */
static LLVMValueRef lw_exp_nonpos(dnc_cg *cg, const dnc_node *e, LLVMValueRef a)
{
  const dnc_node *t;
  double k;
  LLVMValueRef y;
  if (dnc_expneg_of(e->arg[0], &t, &k))
    return expneg_t(cg, t, k, a, &y, 1);
  const dnc_node *sq = e->arg[0]->op == OP_NEG ? e->arg[0]->arg[0] : NULL;
  if (sq && sq->op == OP_POW && sq->arg[1]->op == OP_CONST && sq->arg[1]->value == 2)
    return dnc_vm_expneg(cg, a);
  return NULL;
}

static LLVMValueRef lw_math(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  if ((e->op == OP_TANH || e->op == OP_SIGMOID || e->op == OP_SOFTPLUS) &&
      dnc_vm_native(e->op, cg->f64))
    return lower_with_e(cg, e, a[0]);
  LLVMValueRef r = e->op == OP_EXP ? lw_exp_nonpos(cg, e, a[0])
                   : e->op == OP_ERF && cg->dgamma_f ? dnc_vm_erf_dgamma(cg, a[0])
                                                     : NULL;
  return r ? r : dnc_vm_emit(cg, e->op, a[0], a[1]);
}

/* comparisons are ordered (false with NaN) except !=, which is true */
static LLVMValueRef lw_cmp(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  LLVMRealPredicate p;
  switch (e->op) {
  case OP_LT: p = LLVMRealOLT; break;
  case OP_LE: p = LLVMRealOLE; break;
  case OP_GT: p = LLVMRealOGT; break;
  case OP_GE: p = LLVMRealOGE; break;
  case OP_EQ: p = LLVMRealOEQ; break;
  case OP_NE: p = LLVMRealUNE; break;
  default: DNC_ASSERT(!"lw_cmp of an op that is not a comparison");
  }
  return LLVMBuildFCmp(cg->b, p, a[0], a[1], "");
}
static LLVMValueRef lw_and(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildAnd(cg->b, a[0], a[1], "");
}
static LLVMValueRef lw_or(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildOr(cg->b, a[0], a[1], "");
}
static LLVMValueRef lw_not(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildNot(cg->b, a[0], "");
}
static LLVMValueRef lw_select(dnc_cg *cg, const dnc_node *e, LLVMValueRef *a)
{
  (void)e;
  return LLVMBuildSelect(cg->b, a[0], a[1], a[2], "");
}

static const lower_fn lower[OP__COUNT] = {
#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT, DIFF, LOWER) LOWER,
    DNC_OPS(X)
#undef X
};

/* The value of node e in the current body: operands first, in the
 * schedule's topological order, each node once. */
static LLVMValueRef emit_node(dnc_cg *cg, dnc_mod *m, dnc_node *root)
{
  if (cg->memo[root->id])
    return cg->memo[root->id];
  uint32_t n;
  dnc_node **s = dnc_schedule(&m->dag, m->arena, root, &n);
  for (uint32_t i = 0; i < n; i++) {
    dnc_node *e = s[i];
    if (cg->memo[e->id])
      continue;
    LLVMValueRef a[3] = {NULL, NULL, NULL};
    for (int k = 0; k < e->nargs; k++)
      a[k] = cg->memo[e->arg[k]->id];
    LLVMValueRef v = lower[e->op](cg, e, a);
    size_t len;
    /* --dump-ir: each node's value named after its op (exp, mul, ...),
     * or the parameter's name */
    if (LLVMIsAInstruction(v) && (LLVMGetValueName2(v, &len), len == 0)) {
      const char *name = e->op == OP_PARAM ? cg->fn->params[e->param].name
                                           : dnc_ops[e->op].math;
      LLVMSetValueName2(v, name, strlen(name));
    }
    cg->memo[e->id] = v;
  }
  return cg->memo[root->id];
}

/* ------------------------------------------------------ loop structure */

typedef struct kbody kbody;
typedef void (*body_fn)(dnc_cg *cg, kbody *k, LLVMValueRef col,
                        LLVMValueRef mask);

/* What a kernel's body reads: arguments, roots, accumulators. */
struct kbody {
  dnc_mod *m;
  dnc_fn *f;
  int layer, affine;
  LLVMValueRef x, y, dy, dx;       /* current row (layer) or whole arrays */
  LLVMValueRef p, gamma, beta;     /* gamma/beta: compute-type arrays */
  LLVMValueRef *pc;                /* by param: per-channel array or NULL */
  LLVMValueRef *dpc;               /* by param: per-channel sums (double) */
  LLVMValueRef dgamma, dbeta;
  LLVMTypeRef sum_t;               /* dpc, dgamma, dbeta's element type */
  LLVMValueRef sumtmp;             /* the backward's f32 tiles (emit_tiles) */
  struct tile_sums *tiles;         /* what body_flush adds where */
  LLVMValueRef *acc;               /* by param: alloca'd <lanes x double> */
  LLVMValueRef *acc32;             /* by param: <lanes x ct>, SUM_VECS terms
                                    * before they go to acc (not f64) */
  LLVMValueRef nacc;               /* vectors added to acc32 since the
                                    * last flush_scalars */
  LLVMValueRef *splats;            /* by param: the scalar value, splatted */
  LLVMValueRef layer_fn[2];        /* the layer forward and backward */
  dnc_node *froot;                 /* f */
  dnc_node *dfdx;                  /* NULL: exactly zero */
  dnc_node **dfdp;                 /* by param, NULL: exactly zero */
  struct spec_set *spec[2];        /* the forward's and backward's rare
                                    * scales (find_spec) */
  LLVMBasicBlockRef gen;           /* the vector loop's general body (its
                                    * tail's), where speculate sends a
                                    * vector with a rare lane; NULL: none */
  LLVMBasicBlockRef gen_from;      /* the block that does (or NULL) */
  int unroll;                      /* full vectors a turn of the layer
                                    * loops (layer_unroll), 1: one */
  int counted;                     /* rest_bwd leaves count_scalars to
                                    * the loop (an unrolled turn) */
  struct chain_fac *cf;            /* the backward's shared factor
                                    * (chain_factor), NULL: none */
  int chain;                       /* every nonzero derivative was a
                                    * dnc_chain_product before the
                                    * rewrites */
};

/* ------------------------------------------- rare scales, speculated */

/* rewrite.c scales the inverse square root unit by k = select(large, kl,
 * select(small, ks, 1)) so that its squares neither overflow nor
 * underflow; on ordinary input k is 1 in every lane, and its products
 * (x k, c k k, r k, ...) were a third of DyISRU's forward and a quarter
 * of its backward. In a vector loop whose body reaches such a node, a
 * full vector branches on the node's conditions: where no lane meets
 * any of them, it runs a body in which the node is the constant 1 and
 * its products fold away (lw_mul); else the loop's general body, the
 * one its masked tail runs, with every lane live (emit_vector_loop): one
 * body more than before, and a smaller one, not a copy of the general
 * body (which had cost a tenth more compile time). The same bits either
 * way: in every lane of the first k is 1, and x 1 = x. A node is taken
 * when it is a chain select(c1, K1, select(c2, K2, ... 1)), each Ki a
 * constant or a select of constants: it is 1 wherever c1, c2, ... are
 * all false. */
typedef struct spec_set {
  int n, nc;
  dnc_node **node; /* the chains */
  dnc_node **cond; /* their conditions, each once */
  int size;        /* the nodes the roots reach (layer_unroll) */
} spec_set;

static int const_tree(const dnc_node *e)
{
  if (e->op == OP_CONST)
    return 1;
  return e->op == OP_SELECT && const_tree(e->arg[1]) && const_tree(e->arg[2]);
}

/* 1 when e is a chain that is 1 where its conditions are false; adds
 * them to s->cond (seen: by node id, 2 for a condition listed) */
static int spec_chain(const dnc_node *e, spec_set *s, unsigned char *seen)
{
  const dnc_node *c = e;
  while (c->op == OP_SELECT && const_tree(c->arg[1]))
    c = c->arg[2];
  if (c == e || c->op != OP_CONST || c->value != 1.0)
    return 0;
  for (c = e; c->op == OP_SELECT && const_tree(c->arg[1]); c = c->arg[2])
    if (!(seen[c->arg[0]->id] & 2)) {
      seen[c->arg[0]->id] |= 2;
      s->cond[s->nc++] = c->arg[0];
    }
  return 1;
}

/* The chains among the nodes that roots reach (NULL roots skipped). */
/* (malloc'd, spec_free: the module's arena outlives codegen, and a
 * search compiles thousands of modules) */
static spec_set *find_spec(dnc_cg *cg, dnc_mod *m, dnc_node **roots, int nr)
{
  spec_set *s = malloc(sizeof *s);
  unsigned char *seen = calloc(cg->memo_n, 1);
  if (!s || !seen || !(s->node = malloc(sizeof *s->node * cg->memo_n)) ||
      !(s->cond = malloc(sizeof *s->cond * cg->memo_n)))
    dnc_die(__FILE__, __LINE__, "out of memory");
  s->n = s->nc = s->size = 0;
  for (int r = 0; r < nr; r++) {
    if (!roots[r])
      continue;
    uint32_t n;
    dnc_node **sch = dnc_schedule(&m->dag, m->arena, roots[r], &n);
    for (uint32_t i = 0; i < n; i++) {
      dnc_node *e = sch[i];
      if (seen[e->id] & 1)
        continue;
      seen[e->id] |= 1;
      s->size++;
      if (e->op == OP_SELECT && spec_chain(e, s, seen))
        s->node[s->n++] = e;
    }
  }
  free(seen);
  return s;
}

static void spec_free(spec_set *s)
{
  free(s->node);
  free(s->cond);
  free(s);
}

static void reset_memo(dnc_cg *cg)
{
  memset(cg->memo, 0, sizeof *cg->memo * cg->memo_n);
  cg->nexpneg = 0;
  cg->nred = 0;
}

/* Per-vector parameter values: splats made at entry, or per-channel loads. */
static void load_params(dnc_cg *cg, kbody *k, LLVMValueRef col,
                        LLVMValueRef mask)
{
  for (int i = 0; i < k->f->nparams; i++)
    cg->params[i] = k->pc && k->pc[i]
                        ? load_vec(cg, cg->ct, k->pc[i], col, mask)
                        : k->splats[i];
}

/* A scalar parameter's sum: each lane adds its terms in double (f64), or
 * in the compute type over SUM_VECS vectors and then into its double
 * (flush_scalars). Widening every vector of terms and adding it in double
 * (two conversions and two additions per 16 elements and parameter) was
 * a tenth of DyT's f32 backward in cache. A sum is off by at most 7 2^-24
 * of its terms' magnitudes more than in double, as the per-channel sums
 * (emit_tiles). */
enum { SUM_VECS = 8 };

static int has_scalar_sums(const kbody *k);
static void count_scalars(dnc_cg *cg, kbody *k, int by);

/* at most SUM_VECS: a turn ends where the scalar sums' count reaches it
 * (emit_vector_loop) */
enum { DNC_UNROLL_MAX = 8 };
_Static_assert((int)DNC_UNROLL_MAX <= (int)SUM_VECS, "a turn longer than the sums' group");

/* The memory an instruction loads from or stores to, or NULL */
static LLVMValueRef mem_of(LLVMValueRef ins)
{
  return LLVMIsALoadInst(ins)    ? LLVMGetOperand(ins, 0)
         : LLVMIsAStoreInst(ins) ? LLVMGetOperand(ins, 1)
                                 : NULL;
}

/* ins may go next: its operands placed, and (an access of an alloca: a
 * scalar sum) no earlier body's access of the same alloca still waiting */
static int ready(LLVMValueRef ins, LLVMValueRef *all, const int *pos,
                 const int *end, int s)
{
  for (int o = 0, no = LLVMGetNumOperands(ins); o < no; o++) {
    LLVMValueRef op = LLVMGetOperand(ins, o);
    if (LLVMIsAInstruction(op) && !LLVMGetInstructionParent(op))
      return 0; /* taken out by interleave and not yet put back */
  }
  LLVMValueRef m = mem_of(ins);
  if (m && LLVMIsAAllocaInst(m))
    for (int t = 0; t < s; t++)
      for (int j = pos[t]; j < end[t]; j++)
        if (all[j] && mem_of(all[j]) == m)
          return 0;
  return 1;
}

/* ins is a call of llvm.prefetch (prefetch) */
static int is_prefetch(LLVMValueRef ins)
{
  if (!LLVMIsACallInst(ins))
    return 0;
  size_t len;
  const char *name = LLVMGetValueName2(LLVMGetCalledValue(ins), &len);
  return len >= 13 && !strncmp(name, "llvm.prefetch", 13);
}

/* all[0..n) is the one block's body of an unrolled turn, body b's
 * instructions from at[b] on: put them back one from each body in turn,
 * each body's own in its order. The bodies share no value (each computes
 * its own, reset_memo) and touch different elements of every array; what
 * they share is a scalar sum's alloca, whose accesses keep the bodies'
 * order (ready). So four vectors' dependent chains (tanh's or erf's, some
 * forty operations each) run side by side, where the core's scheduler
 * did not hold enough of the next vector's work while one chain waited on
 * the last result (docs/performance.md, rounds fourteen and sixteen).
 * The prefetches, the first instructions of every body, are spread over
 * the turn instead, in their order, as far apart as the vectors they were
 * one after another: all at its start, the memory-bound sizes (48 MiB a
 * tensor and more here) ran their forward 15 to 24 % slower than one
 * vector a turn. all's entries are NULL as they are placed. */
static void interleave(dnc_cg *cg, LLVMValueRef *all, int n, const int *at,
                       int nb)
{
  int pos[DNC_UNROLL_MAX], end[DNC_UNROLL_MAX];
  for (int b = 0; b < nb; b++) {
    pos[b] = at[b];
    end[b] = b + 1 < nb ? at[b + 1] : n;
  }
  LLVMValueRef *pf = malloc(sizeof *pf * (size_t)(n + 1));
  if (!pf)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int npf = 0, ipf = 0;
  for (int j = 0; j < n; j++) {
    LLVMInstructionRemoveFromParent(all[j]);
    if (is_prefetch(all[j]))
      pf[npf++] = all[j], all[j] = NULL;
  }
  int rest = n - npf, placed = 0;
  for (int b = 0; placed < rest || ipf < npf;) {
    /* the k-th prefetch once k/npf of the rest is placed (and its
     * address) */
    if (ipf < npf && (long)placed * npf >= (long)ipf * rest &&
        ready(pf[ipf], all, pos, end, 0)) {
      LLVMInsertIntoBuilder(cg->b, pf[ipf++]);
      continue;
    }
    int one = 0;
    for (int d = 0; d < nb && !one; d++) {
      int s = (b + d) % nb;
      while (pos[s] < end[s] && !all[pos[s]])
        pos[s]++;
      if (pos[s] < end[s] && ready(all[pos[s]], all, pos, end, s)) {
        LLVMInsertIntoBuilder(cg->b, all[pos[s]]);
        all[pos[s]++] = NULL;
        placed++;
        one = 1;
        b = (s + 1) % nb;
      }
    }
    if (!one && ipf < npf && ready(pf[ipf], all, pos, end, 0)) {
      LLVMInsertIntoBuilder(cg->b, pf[ipf++]);
      continue;
    }
    if (!one) /* the first body's next is always ready */
      dnc_die(__FILE__, __LINE__, "interleave: no instruction ready");
  }
  free(pf);
}

/* One turn of nb full vectors from i: the bodies one after the other,
 * then (where each stayed in the one block: no rare-lane branch)
 * interleaved. */
static void emit_turn(dnc_cg *cg, kbody *k, LLVMValueRef i, body_fn body,
                      int nb)
{
  LLVMBasicBlockRef bb = LLVMGetInsertBlock(cg->b);
  int at[DNC_UNROLL_MAX], one = 1;
  LLVMValueRef mark[DNC_UNROLL_MAX];
  k->counted = 1;
  cg->late_on = 1;
  cg->nlate = 0;
  for (int b = 0; b < nb; b++) {
    reset_memo(cg);
    mark[b] = LLVMGetLastInstruction(LLVMGetInsertBlock(cg->b));
    LLVMValueRef col = b ? LLVMBuildNSWAdd(cg->b, i, i64c(cg, b * (int)cg->lanes), "")
                         : i;
    body(cg, k, col, NULL);
    one &= LLVMGetInsertBlock(cg->b) == bb;
  }
  k->counted = 0;
  cg->late_on = 0;
  if (!one) {
    late_fixup(cg);
    return;
  }
  int n = 0, cap = 0;
  LLVMValueRef *all = NULL;
  for (LLVMValueRef ins = LLVMGetFirstInstruction(bb); ins; ins = LLVMGetNextInstruction(ins)) {
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      all = realloc(all, sizeof *all * (size_t)cap);
      if (!all)
        dnc_die(__FILE__, __LINE__, "out of memory");
    }
    all[n++] = ins;
  }
  for (int b = 0, j = 0; b < nb; b++) {
    if (mark[b])
      while (all[j] != mark[b])
        j++;
    at[b] = mark[b] ? j + 1 : 0;
  }
  interleave(cg, all, n, at, nb);
  free(all);
  late_fixup(cg);
}

/* for (i = 0; i + lanes <= n; i += lanes) body(i); then one masked body
 * for the remaining n - i < lanes elements. Where the body speculates
 * (speculate), a full vector with a rare lane runs that masked body too,
 * with every lane live, and goes back to the loop. With unroll > 1 (a
 * layer loop whose body does not speculate: layer_unroll), each turn
 * takes that many full vectors (emit_turn) while as many are left, and
 * the scalar sums' count allows (it must reach SUM_VECS at a turn's end, not inside it, so
 * that the sums are flushed after the same vectors as one at a time and
 * have the same bits); the vectors before and after go through the masked
 * body one at a time, a full one with every lane live. */
static void emit_vector_loop(dnc_cg *cg, kbody *k, LLVMValueRef n,
                             LLVMValueRef ivar, body_fn body, int unroll)
{
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(cg->ctx, fn, "vec.head");
  LLVMBasicBlockRef vbody = LLVMAppendBasicBlockInContext(cg->ctx, fn, "vec.body");
  LLVMBasicBlockRef tchk = LLVMAppendBasicBlockInContext(cg->ctx, fn, "tail.check");
  LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(cg->ctx, fn, "tail");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "vec.exit");
  int turn = unroll > 1;
  LLVMBuildStore(cg->b, i64c(cg, 0), ivar);
  LLVMBuildBr(cg->b, head);

  LLVMPositionBuilderAtEnd(cg->b, head);
  LLVMValueRef i = LLVMBuildLoad2(cg->b, cg->i64, ivar, "i");
  LLVMValueRef next = LLVMBuildNSWAdd(cg->b, i, i64c(cg, cg->lanes), "i.next");
  LLVMBasicBlockRef rare_from = NULL;
  if (turn) {
    LLVMValueRef end = LLVMBuildNSWAdd(cg->b, i, i64c(cg, unroll * (int)cg->lanes),
                                       "i.turn");
    LLVMValueRef go = LLVMBuildICmp(cg->b, LLVMIntSLE, end, n, "");
    int sums = k->nacc && !cg->f64 && has_scalar_sums(k);
    if (sums)
      go = LLVMBuildAnd(cg->b, go,
                        LLVMBuildICmp(cg->b, LLVMIntSLE,
                                      LLVMBuildLoad2(cg->b, cg->i32, k->nacc, ""),
                                      LLVMConstInt(cg->i32, SUM_VECS - (unsigned)unroll, 0),
                                      ""),
                        "");
    LLVMBuildCondBr(cg->b, go, vbody, tchk);
    LLVMPositionBuilderAtEnd(cg->b, vbody);
    emit_turn(cg, k, i, body, unroll);
    if (sums)
      count_scalars(cg, k, unroll);
    LLVMBuildStore(cg->b, end, ivar);
    LLVMBuildBr(cg->b, head);
  } else {
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLE, next, n, ""), vbody,
                    tchk);
    LLVMPositionBuilderAtEnd(cg->b, vbody);
    reset_memo(cg);
    k->gen = tail;
    k->gen_from = NULL;
    body(cg, k, i, NULL);
    rare_from = k->gen_from;
    k->gen = NULL;
    LLVMBuildStore(cg->b, next, ivar);
    LLVMBuildBr(cg->b, head);
  }

  LLVMPositionBuilderAtEnd(cg->b, tchk);
  LLVMValueRef lane[64];
  for (unsigned l = 0; l < cg->lanes; l++)
    lane[l] = LLVMConstInt(cg->i64, l, 0);
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, cg->lanes);
  LLVMValueRef idx = LLVMBuildAdd(cg->b, splat_value(cg, i, v64),
                                  LLVMConstVector(lane, cg->lanes), "");
  LLVMValueRef mask = LLVMBuildICmp(cg->b, LLVMIntSLT, idx,
                                    splat_value(cg, n, v64), "mask");
  LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, i, n, ""), tail,
                  exit);

  LLVMPositionBuilderAtEnd(cg->b, tail);
  LLVMValueRef inloop = NULL;
  if (rare_from) {
    LLVMValueRef m = LLVMBuildPhi(cg->b, cg->mt, "mask.all");
    LLVMValueRef mv[2] = {mask, LLVMConstAllOnes(cg->mt)};
    LLVMBasicBlockRef mb[2] = {tchk, rare_from};
    LLVMAddIncoming(m, mv, mb, 2);
    inloop = LLVMBuildPhi(cg->b, cg->i1, "in.loop");
    LLVMValueRef iv[2] = {LLVMConstInt(cg->i1, 0, 0), LLVMConstInt(cg->i1, 1, 0)};
    LLVMAddIncoming(inloop, iv, mb, 2);
    mask = m;
  }
  reset_memo(cg);
  body(cg, k, i, mask);
  if (turn)
    inloop = LLVMBuildICmp(cg->b, LLVMIntSLT, next, n, "");
  if (inloop) {
    LLVMBasicBlockRef latch = LLVMAppendBasicBlockInContext(cg->ctx, fn, "rare.next");
    LLVMBuildCondBr(cg->b, inloop, latch, exit);
    LLVMPositionBuilderAtEnd(cg->b, latch);
    LLVMBuildStore(cg->b, next, ivar);
    LLVMBuildBr(cg->b, head);
  } else {
    LLVMBuildBr(cg->b, exit);
  }

  LLVMPositionBuilderAtEnd(cg->b, exit);
}

/* parameter i has a scalar sum (not per-channel, and not exactly 0) */
static int scalar_sum(const kbody *k, int i)
{
  return k->dfdp[i] && !(k->dpc && k->dpc[i]);
}

static int has_scalar_sums(const kbody *k)
{
  for (int i = 0; i < k->f->nparams; i++)
    if (scalar_sum(k, i))
      return 1;
  return 0;
}

/* The double sums of a kernel whose compute type is narrower (acc, which
 * flush_scalars adds to every SUM_VECS-th vector) stay in the stack frame:
 * their loads and stores are volatile, so that mem2reg (dnc_pipeline)
 * leaves them there. Promoted, they held two to four vector registers
 * across the whole loop for an addition every eighth vector, and Derf's
 * backward, which needs nearly every register for its constants, read a
 * dozen of those from memory each vector instead (12 % slower; the
 * counters and acc32 in registers, the rest of what mem2reg promotes, are
 * what pays). */
static LLVMValueRef sum_mem(dnc_cg *cg, LLVMValueRef access)
{
  if (!cg->f64)
    LLVMSetVolatile(access, 1);
  return access;
}

/* acc += v, dead lanes left out; acc in memory (sum_mem) where mem */
static void accumulate(dnc_cg *cg, LLVMValueRef acc, LLVMValueRef v,
                       LLVMValueRef mask, int mem)
{
  LLVMTypeRef t = LLVMTypeOf(v);
  if (mask)
    v = LLVMBuildSelect(cg->b, mask, v, LLVMConstNull(t), "");
  LLVMValueRef old = LLVMBuildLoad2(cg->b, t, acc, "");
  LLVMValueRef st = LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, old, v, ""), acc);
  if (mem) {
    sum_mem(cg, old);
    sum_mem(cg, st);
  }
}

/* acc[i] += (double) acc32[i]; acc32[i] = 0 */
static void flush_scalars(dnc_cg *cg, kbody *k)
{
  for (int i = 0; i < k->f->nparams; i++) {
    if (!scalar_sum(k, i))
      continue;
    LLVMValueRef a = LLVMBuildLoad2(cg->b, cg->vt, k->acc32[i], "");
    accumulate(cg, k->acc[i], LLVMBuildFPExt(cg->b, a, cg->accv, ""), NULL, 1);
    LLVMBuildStore(cg->b, LLVMConstNull(cg->vt), k->acc32[i]);
  }
}

/* after `by` vectors' terms: every SUM_VECS-th vector, flush_scalars
 * (an unrolled turn is taken only where the count reaches SUM_VECS at
 * its end or after: emit_vector_loop) */
static void count_scalars(dnc_cg *cg, kbody *k, int by)
{
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  LLVMBasicBlockRef flush = LLVMAppendBasicBlockInContext(cg->ctx, fn, "sums.flush");
  LLVMBasicBlockRef cont = LLVMAppendBasicBlockInContext(cg->ctx, fn, "sums.cont");
  LLVMValueRef n = LLVMBuildAdd(cg->b, LLVMBuildLoad2(cg->b, cg->i32, k->nacc, ""),
                                LLVMConstInt(cg->i32, (unsigned)by, 0), "");
  LLVMValueRef full = LLVMBuildICmp(cg->b, LLVMIntEQ, n,
                                    LLVMConstInt(cg->i32, SUM_VECS, 0), "");
  LLVMBuildStore(cg->b, LLVMBuildSelect(cg->b, full, LLVMConstInt(cg->i32, 0, 0), n, ""),
                 k->nacc);
  LLVMBuildCondBr(cg->b, full, flush, cont);
  LLVMPositionBuilderAtEnd(cg->b, flush);
  flush_scalars(cg, k);
  LLVMBuildBr(cg->b, cont);
  LLVMPositionBuilderAtEnd(cg->b, cont);
}

/* sums[col..] += v: per-channel accumulation in memory, in double, or in
 * the compute type where sums are emit_tiles' */
static void accumulate_mem(dnc_cg *cg, kbody *k, LLVMValueRef sums,
                           LLVMValueRef col, LLVMValueRef v, LLVMValueRef mask)
{
  LLVMTypeRef vt = LLVMVectorType(k->sum_t, cg->lanes);
  if (LLVMTypeOf(v) != vt)
    v = LLVMBuildFPExt(cg->b, v, vt, "");
  LLVMValueRef old = load_vec(cg, k->sum_t, sums, col, mask);
  store_vec(cg, k->sum_t, sums, col, LLVMBuildFAdd(cg->b, old, v, ""), mask);
}

/* sums[col..] += a b, by a fused multiply-add where the target has one
 * and the sums are of the compute type (the f32 tiles); else as
 * accumulate_mem. One rounding where there were two, one operation
 * fewer a vector. */
static void accumulate_mem_fma(dnc_cg *cg, kbody *k, LLVMValueRef sums,
                               LLVMValueRef col, LLVMValueRef a, LLVMValueRef b,
                               LLVMValueRef mask)
{
  if (!cg->fma || k->sum_t != cg->ct) {
    accumulate_mem(cg, k, sums, col, LLVMBuildFMul(cg->b, a, b, ""), mask);
    return;
  }
  LLVMTypeRef vt = LLVMTypeOf(a);
  LLVMValueRef args[3] = {a, b, load_vec(cg, k->sum_t, sums, col, mask)};
  store_vec(cg, k->sum_t, sums, col, intrinsic(cg, "llvm.fma", &vt, 1, args, 3), mask);
}

/* Software prefetch, `bytes` ahead of element col of base, in the full
 * vectors' loop only (mask NULL): for reading (rw 0) or writing (rw 1).
 * The hardware prefetchers alone left a compute-heavy loop waiting on
 * memory: with the inputs fetched 4 KiB ahead and the outputs 2 KiB,
 * DyT's and Derf's layer forward on [8192 x 4096] f32 ran 25 to 30%
 * faster and their backward 13 to 15% (docs/performance.md); in cache
 * they cost one instruction per stream. Past the end of a row the
 * address runs on into what follows it in memory: the next row where
 * rows are contiguous. The backward walks rows wider than its sums' tile
 * (4096 f32 columns) a tile at a time, where this fetches the next tile's
 * columns at the end of each row's part: the backward once chose the
 * next row's part there, four scalar operations per stream and vector
 * that cost its loop more than the rare tensor gained (docs/
 * performance.md, round sixteen). A prefetch past the end of an array
 * does not fault. */
static void prefetch(dnc_cg *cg, LLVMValueRef base, LLVMValueRef col,
                     LLVMValueRef mask, int bytes, int rw)
{
  if (mask || (rw && cg->stream)) /* a streamed output is never read */
    return;
  unsigned es = LLVMABISizeOfType(LLVMGetModuleDataLayout(cg->mod), cg->st);
  LLVMValueRef idx = LLVMBuildAdd(cg->b, col, i64c(cg, bytes / (int)es), "");
  LLVMValueRef args[4] = {LLVMBuildGEP2(cg->b, cg->st, base, &idx, 1, ""),
                          LLVMConstInt(cg->i32, (unsigned)rw, 0),
                          LLVMConstInt(cg->i32, 3, 0),  /* keep in all caches */
                          LLVMConstInt(cg->i32, 1, 0)}; /* data */
  intrinsic(cg, "llvm.prefetch", &cg->ptr, 1, args, 4);
}

enum { PREFETCH_IN = 4096, PREFETCH_OUT = 2048 };

/* a body's part after its loads (x, dy, the parameters) */
typedef void (*rest_fn)(dnc_cg *cg, kbody *k, LLVMValueRef col,
                        LLVMValueRef mask, LLVMValueRef dy);
static void rest_fwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask,
                     LLVMValueRef dy);
static void rest_bwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask,
                     LLVMValueRef dy);

/* br's first successor as one that is almost never taken (branch
 * weights), so that the code generator lays out the other as the
 * fall-through */
static void unlikely(dnc_cg *cg, LLVMValueRef br)
{
  LLVMMetadataRef md[3] = {
      LLVMMDStringInContext2(cg->ctx, "branch_weights", 14),
      LLVMValueAsMetadata(LLVMConstInt(cg->i32, 1, 0)),
      LLVMValueAsMetadata(LLVMConstInt(cg->i32, 1 << 20, 0))};
  LLVMValueRef node = LLVMMetadataAsValue(cg->ctx,
                                          LLVMMDNodeInContext2(cg->ctx, md, 3));
  LLVMSetMetadata(br, LLVMGetMDKindIDInContext(cg->ctx, "prof", 4), node);
}

/* rest, or (a full vector in a loop whose tail is k->gen, and s has
 * chains) the branch on s's conditions: where no lane of the vector meets
 * one, rest with the chains as 1; else to the loop's general body,
 * which the masked tail is too (emit_vector_loop), with every lane live:
 * one general body for both, as the comment at spec_set says. */
static void speculate(dnc_cg *cg, kbody *k, const spec_set *s,
                      LLVMValueRef col, LLVMValueRef mask, LLVMValueRef dy,
                      rest_fn rest)
{
  if (mask || !s || !s->n || !k->gen) {
    rest(cg, k, col, mask, dy);
    return;
  }
  LLVMValueRef rare = NULL;
  for (int i = 0; i < s->nc; i++) {
    LLVMValueRef c = emit_node(cg, k->m, s->cond[i]);
    rare = rare ? LLVMBuildOr(cg->b, rare, c, "") : c;
  }
  LLVMTypeRef mt = LLVMTypeOf(rare);
  LLVMValueRef any = intrinsic(cg, "llvm.vector.reduce.or", &mt, 1, &rare, 1);
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  LLVMBasicBlockRef fast = LLVMAppendBasicBlockInContext(cg->ctx, fn, "scale.one");
  k->gen_from = LLVMGetInsertBlock(cg->b);
  unlikely(cg, LLVMBuildCondBr(cg->b, any, k->gen, fast));
  LLVMPositionBuilderAtEnd(cg->b, fast);
  LLVMValueRef one = dnc_cg_splat(cg, 1.0);
  for (int i = 0; i < s->n; i++)
    cg->memo[s->node[i]->id] = one;
  rest(cg, k, col, mask, dy);
}

/* ------------------------------------------- the chain rule's factor */

/* By the chain rule, df/dx and each df/dp_k of f = g(u(x, p)) are g'(u)
 * times du/dx or du/dp_k, and rewrite.c (chain_form) writes each such
 * product as ((G V) I): G the factor bounded by 1 that they share (a
 * Gaussian, a sigmoid pair: Derf's exp(-u^2), DyT's quotient), V what
 * else varies (x; absent for dx and ds), I the constants and parameters
 * (2/sqrt(pi) alpha, 4; absent where 1). rest_bwd then multiplies dL/df
 * by G once a vector, T; dx is T V I, I made once at the kernel's entry
 * where its parameters are scalars; a scalar sum adds T V by a fused
 * multiply-add, and its I multiplies the double sum once, at its end.
 * DyT's f32 backward: six vector operations a vector for dx and d(alpha)
 * become three; Derf's eight become four. With dL/df = 1, T V I is the
 * rewritten derivative's own evaluation, bit for bit (the oracle's); a
 * sum's terms are rounded once fewer. */
typedef struct chain_fac {
  dnc_node *g;                          /* G */
  dnc_node *v[DNC_MAX_PARAMS + 1];      /* by output (dx, then each dp_k):
                                         * V, or NULL */
  dnc_node *inv[DNC_MAX_PARAMS + 1];    /* I, or NULL */
  LLVMValueRef invv[DNC_MAX_PARAMS + 1]; /* I made at the kernel's entry
                                          * (NULL: in the body) */
  LLVMValueRef invs[DNC_MAX_PARAMS + 1]; /* and as a double, for a sum */
} chain_fac;

/* a product of constants and parameters alone */
static int inv_only(const dnc_node *e)
{
  if (e->op == OP_MUL)
    return inv_only(e->arg[0]) && inv_only(e->arg[1]);
  return e->op == OP_CONST || e->op == OP_PARAM;
}

/* e as chain_form writes it over g: 1 and V, I set (NULL where absent) */
static int chain_parts(const dnc_node *e, const dnc_node *g, dnc_node **v,
                       dnc_node **inv)
{
  *v = *inv = NULL;
  if (e == g)
    return 1;
  if (e->op != OP_MUL)
    return 0;
  if (e->arg[0] == g) {
    if (inv_only(e->arg[1]))
      *inv = e->arg[1];
    else
      *v = e->arg[1];
    return 1;
  }
  const dnc_node *a = e->arg[0];
  if (a->op != OP_MUL || a->arg[0] != g || inv_only(a->arg[1]) ||
      !inv_only(e->arg[1]))
    return 0;
  *v = a->arg[1];
  *inv = e->arg[1];
  return 1;
}

/* The backward's factoring (chain_fac) where every output that is not
 * zero, two at least, was a chain_form product before the rewrites
 * (k->chain: G bounded by 1) and is one over the same G now; else NULL. */
static chain_fac *chain_factor(const kbody *k)
{
  if (!k->chain)
    return NULL;
  dnc_node *out[DNC_MAX_PARAMS + 1];
  int nout = 0;
  out[0] = k->dfdx;
  for (int i = 0; i < k->f->nparams; i++)
    out[i + 1] = k->dfdp[i];
  dnc_node *e = NULL;
  for (int j = 0; j <= k->f->nparams; j++)
    if (out[j]) {
      nout++;
      e = e ? e : out[j];
    }
  if (nout < 2)
    return NULL;
  /* G is the first output's first operand's first operand, its first
   * operand, or itself: innermost first, where chain_form puts the
   * bounded factor */
  dnc_node *cand[3] = {e->op == OP_MUL && e->arg[0]->op == OP_MUL
                           ? e->arg[0]->arg[0] : NULL,
                       e->op == OP_MUL ? e->arg[0] : NULL, e};
  chain_fac *cf = calloc(1, sizeof *cf);
  if (!cf)
    dnc_die(__FILE__, __LINE__, "out of memory");
  for (int c = 0; c < 3; c++) {
    dnc_node *g = cand[c];
    if (!g || g->op == OP_CONST || g->op == OP_PARAM || g->op == OP_INPUT)
      continue;
    int ok = 1;
    for (int j = 0; j <= k->f->nparams && ok; j++)
      ok = !out[j] || chain_parts(out[j], g, &cf->v[j], &cf->inv[j]);
    if (ok) {
      cf->g = g;
      return cf;
    }
  }
  free(cf);
  return NULL;
}

/* a product of constants and parameters whose parameters this kernel
 * reads as scalars */
static int scalar_inv(const kbody *k, const dnc_node *e)
{
  if (e->op == OP_MUL)
    return scalar_inv(k, e->arg[0]) && scalar_inv(k, e->arg[1]);
  return e->op == OP_CONST || !(k->pc && k->pc[e->param]);
}

/* The I that are scalars, made at the kernel's entry as a body would
 * make them (the parameters' splats for the parameters) */
static void chain_invariants(dnc_cg *cg, kbody *k)
{
  chain_fac *cf = k->cf;
  if (!cf)
    return;
  for (int i = 0; i < k->f->nparams; i++)
    cg->params[i] = k->splats[i];
  for (int j = 0; j <= k->f->nparams; j++) {
    if (!cf->inv[j] || !scalar_inv(k, cf->inv[j]))
      continue;
    reset_memo(cg);
    LLVMValueRef v = emit_node(cg, k->m, cf->inv[j]);
    LLVMValueRef s = LLVMBuildExtractElement(cg->b, v, i64c(cg, 0), "");
    cf->invv[j] = v;
    cf->invs[j] = cg->f64 ? s : LLVMBuildFPExt(cg->b, s, cg->f64t, "");
  }
  reset_memo(cg);
}

static void body_fwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask)
{
  prefetch(cg, k->x, col, mask, PREFETCH_IN, 0);
  prefetch(cg, k->y, col, mask, PREFETCH_OUT, 1);
  cg->x = load_data(cg, k->x, col, mask);
  load_params(cg, k, col, mask);
  speculate(cg, k, k->spec[0], col, mask, NULL, rest_fwd);
}

static void rest_fwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask,
                     LLVMValueRef dy)
{
  (void)dy;
  LLVMValueRef y = emit_node(cg, k->m, k->froot);
  if (k->affine) {
    LLVMValueRef g = load_vec(cg, cg->ct, k->gamma, col, mask);
    LLVMValueRef b = load_vec(cg, cg->ct, k->beta, col, mask);
    /* one rounding where the target has fused multiply-add */
    if (cg->fma) {
      LLVMTypeRef vt = LLVMTypeOf(y);
      y = intrinsic(cg, "llvm.fma", &vt, 1, (LLVMValueRef[]){g, y, b}, 3);
    } else {
      y = LLVMBuildFAdd(cg->b, LLVMBuildFMul(cg->b, g, y, ""), b, "y");
    }
  }
  store_data(cg, k->y, col, y, mask);
}

static void body_bwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask)
{
  prefetch(cg, k->x, col, mask, PREFETCH_IN, 0);
  prefetch(cg, k->dy, col, mask, PREFETCH_IN, 0);
  prefetch(cg, k->dx, col, mask, PREFETCH_OUT, 1);
  cg->x = load_data(cg, k->x, col, mask);
  LLVMValueRef dy = load_data(cg, k->dy, col, mask);
  load_params(cg, k, col, mask);
  speculate(cg, k, k->spec[1], col, mask, dy, rest_bwd);
}

/* a b, where either may be the splat 1 that speculate puts for a rare
 * scale: then the other */
static LLVMValueRef mul1(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
  LLVMValueRef one = dnc_cg_splat(cg, 1.0);
  if (a == one || b == one)
    return a == one ? b : a;
  return LLVMBuildFMul(cg->b, a, b, "");
}

/* acc += a b (b NULL: a), by a fused multiply-add where the target has
 * one; dead lanes left out */
static void accumulate_fma(dnc_cg *cg, LLVMValueRef acc, LLVMValueRef a,
                           LLVMValueRef b, LLVMValueRef mask, int mem)
{
  if (!b || !cg->fma) {
    accumulate(cg, acc, b ? LLVMBuildFMul(cg->b, a, b, "") : a, mask, mem);
    return;
  }
  LLVMTypeRef t = LLVMTypeOf(a);
  if (mask) {
    a = LLVMBuildSelect(cg->b, mask, a, LLVMConstNull(t), "");
    b = LLVMBuildSelect(cg->b, mask, b, LLVMConstNull(t), "");
  }
  LLVMValueRef old = LLVMBuildLoad2(cg->b, t, acc, "");
  LLVMValueRef args[3] = {a, b, old};
  LLVMValueRef st = LLVMBuildStore(cg->b, intrinsic(cg, "llvm.fma", &t, 1, args, 3), acc);
  if (mem) {
    sum_mem(cg, old);
    sum_mem(cg, st);
  }
}

/* f for dgamma: after the derivative, whose intermediates it may take: a
 * tanh or sigmoid that is f itself (not one inside it, whose error f's
 * expression could magnify) is built from the derivative's quotient
 * (dnc_vm_with_q) */
static void dgamma_dbeta(dnc_cg *cg, kbody *k, LLVMValueRef col,
                         LLVMValueRef mask, LLVMValueRef dy)
{
  int op = k->froot->op;
  cg->dgamma_f = (op == OP_TANH || op == OP_SIGMOID || op == OP_ERF) &&
                 !cg->memo[k->froot->id];
  LLVMValueRef f = emit_node(cg, k->m, k->froot);
  cg->dgamma_f = 0;
  accumulate_mem_fma(cg, k, k->dgamma, col, dy, f, mask);
  accumulate_mem(cg, k, k->dbeta, col, dy, mask);
}

/* rest_bwd with the chain rule's factor (chain_factor) */
static void rest_bwd_factored(dnc_cg *cg, kbody *k, LLVMValueRef col,
                              LLVMValueRef mask, LLVMValueRef dy)
{
  chain_fac *cf = k->cf;
  LLVMValueRef g = emit_node(cg, k->m, cf->g);
  LLVMValueRef dyf = dy; /* dL/df */
  if (k->affine) {
    dyf = LLVMBuildFMul(cg->b, dy, load_vec(cg, cg->ct, k->gamma, col, mask), "dyf");
    dgamma_dbeta(cg, k, col, mask, dy);
  }
  LLVMValueRef t = mul1(cg, dyf, g);
  LLVMValueRef dx = dnc_cg_splat(cg, 0.0);
  for (int j = 0; j <= k->f->nparams; j++) {
    if (j ? !k->dfdp[j - 1] : !k->dfdx)
      continue;
    LLVMValueRef v = cf->v[j] ? emit_node(cg, k->m, cf->v[j]) : NULL;
    LLVMValueRef inv = !cf->inv[j] ? NULL
                       : cf->invv[j] ? cf->invv[j]
                                     : emit_node(cg, k->m, cf->inv[j]);
    int i = j - 1;
    if (j && !(k->dpc && k->dpc[i]) && (cf->invv[j] || !inv)) {
      /* a scalar sum: I after it (store_sums) */
      accumulate_fma(cg, cg->f64 ? k->acc[i] : k->acc32[i], t, v, mask, cg->f64);
      continue;
    }
    LLVMValueRef d = v ? mul1(cg, t, v) : t;
    if (inv)
      d = mul1(cg, d, inv);
    if (!j)
      dx = d;
    else if (k->dpc && k->dpc[i])
      accumulate_mem(cg, k, k->dpc[i], col, d, mask);
    else
      accumulate(cg, cg->f64 ? k->acc[i] : k->acc32[i], d, mask, cg->f64);
  }
  store_data(cg, k->dx, col, dx, mask);
  if (!cg->f64 && has_scalar_sums(k) && !k->counted)
    count_scalars(cg, k, 1);
}

static void rest_bwd(dnc_cg *cg, kbody *k, LLVMValueRef col, LLVMValueRef mask,
                     LLVMValueRef dy)
{
  if (k->cf) {
    rest_bwd_factored(cg, k, col, mask, dy);
    return;
  }
  LLVMValueRef dyf = dy; /* dL/df */
  LLVMValueRef dfdx = k->dfdx ? emit_node(cg, k->m, k->dfdx) : NULL;
  if (k->affine) {
    LLVMValueRef g = load_vec(cg, cg->ct, k->gamma, col, mask);
    dyf = LLVMBuildFMul(cg->b, dy, g, "dyf");
    dgamma_dbeta(cg, k, col, mask, dy);
  }
  LLVMValueRef dx = dfdx ? LLVMBuildFMul(cg->b, dyf, dfdx, "dx") : dnc_cg_splat(cg, 0.0);
  store_data(cg, k->dx, col, dx, mask);
  for (int i = 0; i < k->f->nparams; i++) {
    if (!k->dfdp[i])
      continue;
    LLVMValueRef t = LLVMBuildFMul(cg->b, dyf, emit_node(cg, k->m, k->dfdp[i]), "");
    if (k->dpc && k->dpc[i])
      accumulate_mem(cg, k, k->dpc[i], col, t, mask);
    else if (cg->f64)
      accumulate(cg, k->acc[i], t, mask, 1);
    else
      accumulate(cg, k->acc32[i], t, mask, 0);
  }
  if (!cg->f64 && has_scalar_sums(k) && !k->counted)
    count_scalars(cg, k, 1);
}

/* ----------------------------------------------------- kernel functions */

static LLVMValueRef new_function(dnc_cg *cg, const dnc_target *t,
                                 const char *name, LLVMTypeRef *params,
                                 unsigned n)
{
  LLVMTypeRef ft = LLVMFunctionType(cg->voidt, params, n, 0);
  LLVMValueRef fn = LLVMAddFunction(cg->mod, name, ft);
  LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", t->cpu);
  LLVMAddTargetDependentFunctionAttr(fn, "target-features", t->features);
  char w[16];
  snprintf(w, sizeof w, "%u", t->vector_bits);
  LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", w);
  unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(cg->ctx, kind, 0));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry");
  LLVMPositionBuilderAtEnd(cg->b, entry);
  return fn;
}

static LLVMValueRef alloca_entry(dnc_cg *cg, LLVMTypeRef t, const char *name)
{
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(cg->b);
  LLVMValueRef fn = LLVMGetBasicBlockParent(cur);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(fn);
  LLVMBuilderRef eb = LLVMCreateBuilderInContext(cg->ctx);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first)
    LLVMPositionBuilderBefore(eb, first);
  else
    LLVMPositionBuilderAtEnd(eb, entry);
  LLVMValueRef a = LLVMBuildAlloca(eb, t, name);
  LLVMDisposeBuilder(eb);
  return a;
}

/* The scalar sums' accumulators, zeroed */
static void new_accumulators(dnc_cg *cg, kbody *k, LLVMValueRef *acc,
                             LLVMValueRef *acc32)
{
  for (int i = 0; i < k->f->nparams; i++) {
    acc[i] = alloca_entry(cg, cg->accv, "acc");
    sum_mem(cg, LLVMBuildStore(cg->b, LLVMConstNull(cg->accv), acc[i]));
    acc32[i] = alloca_entry(cg, cg->vt, "acc32");
    LLVMBuildStore(cg->b, LLVMConstNull(cg->vt), acc32[i]);
  }
  k->acc = acc;
  k->acc32 = acc32;
  k->nacc = alloca_entry(cg, cg->i32, "nacc");
  LLVMBuildStore(cg->b, LLVMConstInt(cg->i32, 0, 0), k->nacc);
}

/* Splatted scalar parameter values p[k], converted to the compute type. */
static void param_splats(dnc_cg *cg, dnc_fn *f, LLVMValueRef p,
                         LLVMValueRef *out)
{
  for (int i = 0; i < f->nparams; i++) {
    LLVMValueRef idx = i64c(cg, i);
    LLVMValueRef v = LLVMBuildLoad2(
        cg->b, cg->f64t, LLVMBuildGEP2(cg->b, cg->f64t, p, &idx, 1, ""),
        f->params[i].name);
    if (!cg->f64)
      v = LLVMBuildFPTrunc(cg->b, v, cg->f32, "");
    out[i] = splat_value(cg, v, cg->vt);
  }
}

static LLVMValueRef load_ptr_at(dnc_cg *cg, LLVMValueRef arr, int i)
{
  LLVMValueRef idx = i64c(cg, i);
  return LLVMBuildLoad2(cg->b, cg->ptr,
                        LLVMBuildGEP2(cg->b, cg->ptr, arr, &idx, 1, ""), "");
}

/* Horizontal sums of the accumulators into dp[k], lane by lane in order
 * (after what acc32 still holds). */
static void store_sums(dnc_cg *cg, kbody *k, LLVMValueRef dp)
{
  if (!cg->f64)
    flush_scalars(cg, k);
  for (int i = 0; i < k->f->nparams; i++) {
    if (k->dpc && k->dpc[i])
      continue;
    LLVMValueRef s = LLVMConstReal(cg->f64t, 0.0);
    if (k->dfdp[i]) {
      LLVMValueRef v = sum_mem(cg, LLVMBuildLoad2(cg->b, cg->accv, k->acc[i], ""));
      LLVMTypeRef ov = cg->accv;
      LLVMValueRef args[2] = {LLVMConstReal(cg->f64t, -0.0), v};
      s = intrinsic(cg, "llvm.vector.reduce.fadd", &ov, 1, args, 2);
      if (k->cf && k->cf->invs[i + 1]) /* its I (rest_bwd_factored) */
        s = LLVMBuildFMul(cg->b, s, k->cf->invs[i + 1], "");
    }
    LLVMValueRef idx = i64c(cg, i);
    LLVMBuildStore(cg->b, s, LLVMBuildGEP2(cg->b, cg->f64t, dp, &idx, 1, ""));
  }
}

/* A function without per-channel parameters has its forward and
 * backward as calls of its layer kernels on one row without gamma and
 * beta (the same body, so the same bits): the vector math is emitted for
 * the layer forms only, and compiled a third less often (docs/
 * performance.md, "Compile latency"). With one, the plain forms read it
 * as a scalar and keep their own loops. */
static int plain_as_layer(const kbody *k)
{
  for (int i = 0; i < k->f->nparams; i++)
    if (k->f->params[i].per_channel)
      return 0;
  return 1;
}

/* A kernel's return: a stream kernel's non-temporal stores are weakly
 * ordered, so it makes them visible first (sfence), as callers of
 * memcpy-like routines expect. */
static void kernel_ret(dnc_cg *cg)
{
  if (cg->stream) {
    unsigned id = LLVMLookupIntrinsicID("llvm.x86.sse.sfence", 19);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMBuildCall2(cg->b, LLVMIntrinsicGetType(cg->ctx, id, NULL, 0), f, NULL, 0, "");
  }
  LLVMBuildRetVoid(cg->b);
}

static void call_layer(dnc_cg *cg, LLVMValueRef layer, LLVMValueRef *args,
                       unsigned n)
{
  LLVMValueRef c = LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(layer), layer,
                                  args, n, "");
  LLVMSetTailCall(c, 1);
  LLVMBuildRetVoid(cg->b);
}

static void build_fwd(dnc_cg *cg, kbody *k, const dnc_target *t,
                      const char *name)
{
  LLVMTypeRef pt[4] = {cg->ptr, cg->ptr, cg->i64, cg->ptr};
  LLVMValueRef fn = new_function(cg, t, name, pt, 4);
  if (plain_as_layer(k)) {
    /* layer_fwd(x, n, y, n, 1, n, p, NULL, NULL, NULL) */
    LLVMValueRef n = LLVMGetParam(fn, 2), null = LLVMConstNull(cg->ptr);
    LLVMValueRef a[10] = {LLVMGetParam(fn, 0), n, LLVMGetParam(fn, 1), n,
                          i64c(cg, 1), n, LLVMGetParam(fn, 3), null, null, null};
    call_layer(cg, k->layer_fn[0], a, 10);
    return;
  }
  LLVMValueRef splats[DNC_MAX_PARAMS];
  k->x = LLVMGetParam(fn, 0);
  k->y = LLVMGetParam(fn, 1);
  param_splats(cg, k->f, LLVMGetParam(fn, 3), splats);
  k->splats = splats;
  k->pc = NULL;
  k->affine = 0;
  LLVMValueRef ivar = alloca_entry(cg, cg->i64, "i.addr");
  emit_vector_loop(cg, k, LLVMGetParam(fn, 2), ivar, body_fwd, 1);
  kernel_ret(cg);
}

static void build_bwd(dnc_cg *cg, kbody *k, const dnc_target *t,
                      const char *name)
{
  LLVMTypeRef pt[6] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->ptr, cg->ptr};
  LLVMValueRef fn = new_function(cg, t, name, pt, 6);
  if (plain_as_layer(k)) {
    /* layer_bwd(x, n, dy, n, dx, n, 1, n, p, NULL, NULL, NULL, dp, NULL,
     * NULL, NULL): its plain form stores the scalar sums in dp */
    LLVMValueRef n = LLVMGetParam(fn, 3), null = LLVMConstNull(cg->ptr);
    LLVMValueRef a[16] = {LLVMGetParam(fn, 0), n, LLVMGetParam(fn, 1), n,
                          LLVMGetParam(fn, 2), n, i64c(cg, 1), n,
                          LLVMGetParam(fn, 4), null, null, null,
                          LLVMGetParam(fn, 5), null, null, null};
    call_layer(cg, k->layer_fn[1], a, 16);
    return;
  }
  LLVMValueRef acc[DNC_MAX_PARAMS], acc32[DNC_MAX_PARAMS], splats[DNC_MAX_PARAMS];
  k->x = LLVMGetParam(fn, 0);
  k->dy = LLVMGetParam(fn, 1);
  k->dx = LLVMGetParam(fn, 2);
  param_splats(cg, k->f, LLVMGetParam(fn, 4), splats);
  k->splats = splats;
  k->pc = NULL;
  k->dpc = NULL;
  k->affine = 0;
  k->cf = chain_factor(k);
  chain_invariants(cg, k);
  new_accumulators(cg, k, acc, acc32);
  LLVMValueRef ivar = alloca_entry(cg, cg->i64, "i.addr");
  emit_vector_loop(cg, k, LLVMGetParam(fn, 3), ivar, body_bwd, 1);
  store_sums(cg, k, LLVMGetParam(fn, 5));
  free(k->cf);
  k->cf = NULL;
  kernel_ret(cg);
}

/* for (i = 0; i < n; i += step) { ... }: loop_begin leaves the builder in
 * the body, with the counter in l->i; loop_end closes it. */
typedef struct loop {
  LLVMValueRef var, i, step;
  LLVMBasicBlockRef head, exit;
} loop;

static void loop_begin(dnc_cg *cg, loop *l, LLVMValueRef n, int64_t step,
                       const char *name)
{
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  l->var = alloca_entry(cg, cg->i64, name);
  l->step = i64c(cg, step);
  l->head = LLVMAppendBasicBlockInContext(cg->ctx, fn, "loop.head");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, fn, "loop.body");
  l->exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "loop.exit");
  LLVMBuildStore(cg->b, i64c(cg, 0), l->var);
  LLVMBuildBr(cg->b, l->head);
  LLVMPositionBuilderAtEnd(cg->b, l->head);
  l->i = LLVMBuildLoad2(cg->b, cg->i64, l->var, name);
  LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, l->i, n, ""), body,
                  l->exit);
  LLVMPositionBuilderAtEnd(cg->b, body);
}

static void loop_end(dnc_cg *cg, loop *l)
{
  LLVMBuildStore(cg->b, LLVMBuildNSWAdd(cg->b, l->i, l->step, ""), l->var);
  LLVMBuildBr(cg->b, l->head);
  LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

static LLVMValueRef min_i64(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, a, b, ""), a,
                         b, "");
}

/* for (r = 0; r < rows; r++) { row pointers; vector loop over cols } */
static void emit_rows(dnc_cg *cg, kbody *k, LLVMValueRef rows,
                      LLVMValueRef cols, LLVMValueRef *base, LLVMValueRef *ld,
                      LLVMValueRef **rowp, int nrowp, body_fn body)
{
  LLVMValueRef ivar = alloca_entry(cg, cg->i64, "i.addr");
  loop lr;
  loop_begin(cg, &lr, rows, 1, "r");
  for (int i = 0; i < nrowp; i++) {
    LLVMValueRef off = LLVMBuildNSWMul(cg->b, lr.i, ld[i], "");
    *rowp[i] = LLVMBuildGEP2(cg->b, cg->st, base[i], &off, 1, "row");
  }
  emit_vector_loop(cg, k, cols, ivar, body, k->unroll);
  loop_end(cg, &lr);
}

/* Branches once on gamma != NULL into an affine and a plain copy of the
 * loops; `emit` builds one copy. */
static void split_affine(dnc_cg *cg, kbody *k, LLVMValueRef gamma,
                         void (*emit)(dnc_cg *, kbody *, void *), void *ud)
{
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
  LLVMBasicBlockRef aff = LLVMAppendBasicBlockInContext(cg->ctx, fn, "affine");
  LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(cg->ctx, fn, "plain");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, fn, "done");
  LLVMBuildCondBr(cg->b, LLVMBuildIsNotNull(cg->b, gamma, "has.gamma"), aff,
                  plain);
  LLVMPositionBuilderAtEnd(cg->b, aff);
  k->affine = 1;
  emit(cg, k, ud);
  LLVMBuildBr(cg->b, done);
  LLVMPositionBuilderAtEnd(cg->b, plain);
  k->affine = 0;
  /* without γ (dnc.torch.pointwise, the C API's element-wise calls): at
   * most two vectors a turn, a compile-time economy */
  int unroll = k->unroll;
  k->unroll = unroll < 2 ? unroll : 2;
  emit(cg, k, ud);
  k->unroll = unroll;
  LLVMBuildBr(cg->b, done);
  LLVMPositionBuilderAtEnd(cg->b, done);
}

typedef struct layer_args {
  LLVMValueRef fn, rows, cols;
  LLVMValueRef base[3], ld[3];
  LLVMValueRef *rowp[3];
  int nrowp;
  body_fn body;
} layer_args;

static void emit_layer_copy(dnc_cg *cg, kbody *k, void *ud)
{
  layer_args *la = ud;
  emit_rows(cg, k, la->rows, la->cols, la->base, la->ld, la->rowp, la->nrowp,
            la->body);
}

/* The layer backward's per-channel sums (dgamma, dbeta and those of
 * per-channel parameters) in f32, bf16 and f16. Widening each term to
 * double and adding it to a double in memory (per 16 elements and sum:
 * two conversions, two additions, two loads and two stores) took a sixth
 * of DyT's f32 backward in cache. The block is walked instead in tiles
 * of SUM_ROWS rows by at most SUM_FLOATS / slots columns, whose sums are
 * added in f32 into an array on the stack (sumtmp) and from there into
 * the double sums, clearing it, once per tile (body_flush): the backward
 * ran 6 to 15% faster (docs/performance.md, round four). A sum is then
 * off by at most 7 2^-24 of its terms' magnitudes from the f32 additions
 * (plus n 2^-53 from the double ones, as before); each term itself is
 * rounded to f32 either way. A row longer than the tile (4096 columns for
 * dgamma and dbeta alone) is walked a tile's width at a time, with the
 * prefetches past the tile's end sent to the next row's part (without
 * that, 8192 columns ran 12% slower than before; with it, 4% faster). */
enum { SUM_ROWS = 8, SUM_FLOATS = 8192 };

typedef struct tile_sums {
  int n;
  LLVMValueRef tmp[DNC_MAX_PARAMS + 2], dst[DNC_MAX_PARAMS + 2];
} tile_sums;

/* dst[col..] += (double) tmp[col..]; tmp[col..] = 0 */
static void body_flush(dnc_cg *cg, kbody *k, LLVMValueRef col,
                       LLVMValueRef mask)
{
  for (int s = 0; s < k->tiles->n; s++) {
    LLVMValueRef t = load_vec(cg, cg->ct, k->tiles->tmp[s], col, mask);
    LLVMValueRef d = load_vec(cg, cg->f64t, k->tiles->dst[s], col, mask);
    d = LLVMBuildFAdd(cg->b, d, LLVMBuildFPExt(cg->b, t, cg->accv, ""), "");
    store_vec(cg, cg->f64t, k->tiles->dst[s], col, d, mask);
    store_vec(cg, cg->ct, k->tiles->tmp[s], col, LLVMConstNull(cg->vt), mask);
  }
}

static LLVMValueRef offset(dnc_cg *cg, LLVMTypeRef et, LLVMValueRef p,
                           LLVMValueRef i)
{
  return LLVMBuildGEP2(cg->b, et, p, &i, 1, "");
}

static void emit_tiles(dnc_cg *cg, kbody *k, layer_args *la,
                       LLVMValueRef **slot, int n)
{
  tile_sums ts = {.n = n};
  int64_t ch = SUM_FLOATS / n / 64 * 64;
  unsigned es = LLVMABISizeOfType(LLVMGetModuleDataLayout(cg->mod), cg->ct);
  /* each slot's tile cleared as far as a tile of these columns reaches
   * (body_flush clears what it used): a call on a narrow tensor (the
   * channel-major layer calls the kernel once per channel, on HW
   * columns) cleared all 32 KiB of the array each time, most of a
   * [1 x 96 x 14 x 14] backward */
  LLVMValueRef zero8 = LLVMConstInt(LLVMInt8TypeInContext(cg->ctx), 0, 0);
  LLVMValueRef cols = LLVMBuildSelect(
      cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, la->cols, i64c(cg, 0), ""),
      la->cols, i64c(cg, 0), "");
  LLVMValueRef used = LLVMBuildNSWMul(cg->b, min_i64(cg, i64c(cg, ch), cols),
                                      i64c(cg, (int64_t)es), "");
  for (int s = 0; s < n; s++)
    LLVMBuildMemSet(cg->b, offset(cg, cg->ct, k->sumtmp, i64c(cg, s * ch)),
                    zero8, used, 64);
  LLVMValueRef dst[DNC_MAX_PARAMS + 2], pc[DNC_MAX_PARAMS];
  LLVMValueRef gamma = k->gamma, beta = k->beta;
  for (int s = 0; s < n; s++)
    dst[s] = *slot[s];
  memcpy(pc, k->pc, sizeof *pc * (size_t)k->f->nparams);
  LLVMValueRef ivar = alloca_entry(cg, cg->i64, "i.addr");
  loop lc, lr;
  loop_begin(cg, &lc, la->cols, ch, "c0");
  LLVMValueRef c0 = lc.i;
  LLVMValueRef w = min_i64(cg, i64c(cg, ch), LLVMBuildNSWSub(cg->b, la->cols, c0, ""));
  for (int s = 0; s < n; s++) {
    ts.dst[s] = offset(cg, cg->f64t, dst[s], c0);
    ts.tmp[s] = offset(cg, cg->ct, k->sumtmp, i64c(cg, s * ch));
  }
  for (int i = 0; i < k->f->nparams; i++)
    if (pc[i])
      k->pc[i] = offset(cg, cg->ct, pc[i], c0);
  if (k->affine) {
    k->gamma = offset(cg, cg->ct, gamma, c0);
    k->beta = offset(cg, cg->ct, beta, c0);
  }
  loop_begin(cg, &lr, la->rows, SUM_ROWS, "r0");
  LLVMValueRef nr = min_i64(cg, i64c(cg, SUM_ROWS), LLVMBuildNSWSub(cg->b, la->rows, lr.i, ""));
  LLVMValueRef base[3];
  for (int j = 0; j < la->nrowp; j++)
    base[j] = offset(cg, cg->st, la->base[j],
                     LLVMBuildNSWAdd(cg->b, LLVMBuildNSWMul(cg->b, lr.i, la->ld[j], ""), c0, ""));
  for (int s = 0; s < n; s++)
    *slot[s] = ts.tmp[s];
  k->sum_t = cg->ct;
  emit_rows(cg, k, nr, w, base, la->ld, la->rowp, la->nrowp, la->body);
  k->sum_t = cg->f64t;
  k->tiles = &ts;
  emit_vector_loop(cg, k, w, ivar, body_flush, 1);
  k->tiles = NULL;
  loop_end(cg, &lr);
  loop_end(cg, &lc);
  for (int s = 0; s < n; s++)
    *slot[s] = dst[s];
  memcpy(k->pc, pc, sizeof *pc * (size_t)k->f->nparams);
  k->gamma = gamma;
  k->beta = beta;
}

/* The backward's copy: in tiles (emit_tiles) where it has per-channel
 * sums in a type narrower than double */
static void emit_layer_bwd_copy(dnc_cg *cg, kbody *k, void *ud)
{
  layer_args *la = ud;
  LLVMValueRef *slot[DNC_MAX_PARAMS + 2];
  int n = 0;
  if (k->affine) {
    slot[n++] = &k->dgamma;
    slot[n++] = &k->dbeta;
  }
  for (int i = 0; i < k->f->nparams; i++)
    if (k->dpc[i] && k->dfdp[i])
      slot[n++] = &k->dpc[i];
  if (cg->f64 || !n)
    emit_layer_copy(cg, k, la);
  else
    emit_tiles(cg, k, la, slot, n);
}

/* eight vectors a turn (lowp_unroll) only for bodies of at most this
 * many DAG nodes before lowering: DyT's backward has 18, Derf's 15,
 * while a function of 3000 to 5000 nodes took two to four times its f32
 * compile time with eight (9.9 and 16.9 s in bf16 and f16 against 7.5
 * s, round twenty-two's audit); larger bodies take the target's unroll */
enum { LOWP_UNROLL_NODES = 200 };

/* full vectors a turn of a layer loop: the target's (dnc_target.unroll,
 * lowp_unroll); one where the body has a speculated chain (its rare
 * vectors go to the general body one at a time: speculate). The stream
 * kernels, which the runtime calls on outputs too large for the caches,
 * took one vector a turn until round twenty-two: on the Xeon of round
 * sixteen a loop bound by memory gained nothing from the overlap, but on
 * Zen 5, where a copy is twice as fast a thread, DyT's and Derf's f32
 * layer backward at [8192 x 4096] took 6.2 and 6.65 ns a vector with one
 * and 5.7 and 6.35 with four (DyISRU's 4.95 and 5.0; docs/performance.md) */
static int layer_unroll(const dnc_cg *cg, const dnc_target *t, const spec_set *s)
{
  if ((s && s->n) || !t->opt_level)
    return 1;
  int u = cg->lowp && t->lowp_unroll && s && s->size <= LOWP_UNROLL_NODES
              ? t->lowp_unroll : t->unroll;
  return u < 1 ? 1 : u > DNC_UNROLL_MAX ? DNC_UNROLL_MAX : u;
}

static void build_layer_fwd(dnc_cg *cg, kbody *k, const dnc_target *t,
                            const char *name)
{
  k->unroll = layer_unroll(cg, t, k->spec[0]);
  k->nacc = NULL; /* no sums */
  /* x, ldx, y, ldy, rows, cols, p, pc, gamma, beta */
  LLVMTypeRef pt[10] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64,
                        cg->i64, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
  LLVMValueRef fn = new_function(cg, t, name, pt, 10);
  k->layer_fn[0] = fn;
  LLVMValueRef splats[DNC_MAX_PARAMS], pc[DNC_MAX_PARAMS];
  param_splats(cg, k->f, LLVMGetParam(fn, 6), splats);
  for (int i = 0; i < k->f->nparams; i++)
    pc[i] = k->f->params[i].per_channel ? load_ptr_at(cg, LLVMGetParam(fn, 7), i)
                                        : NULL;
  k->pc = pc;
  k->splats = splats;
  k->gamma = LLVMGetParam(fn, 8);
  k->beta = LLVMGetParam(fn, 9);
  layer_args la = {fn, LLVMGetParam(fn, 4), LLVMGetParam(fn, 5),
                   {LLVMGetParam(fn, 0), LLVMGetParam(fn, 2)},
                   {LLVMGetParam(fn, 1), LLVMGetParam(fn, 3)},
                   {&k->x, &k->y}, 2, body_fwd};
  split_affine(cg, k, k->gamma, emit_layer_copy, &la);
  kernel_ret(cg);
}

static void build_layer_bwd(dnc_cg *cg, kbody *k, const dnc_target *t,
                            const char *name)
{
  k->unroll = layer_unroll(cg, t, k->spec[1]);
  /* x, ldx, dy, lddy, dx, lddx, rows, cols, p, pc, gamma, beta,
   * dp, dpc, dgamma, dbeta */
  LLVMTypeRef pt[16] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64,
                        cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr, cg->ptr,
                        cg->ptr, cg->ptr, cg->ptr, cg->ptr};
  LLVMValueRef fn = new_function(cg, t, name, pt, 16);
  k->layer_fn[1] = fn;
  LLVMValueRef pc[DNC_MAX_PARAMS], dpc[DNC_MAX_PARAMS], acc[DNC_MAX_PARAMS];
  LLVMValueRef acc32[DNC_MAX_PARAMS], splats[DNC_MAX_PARAMS];
  param_splats(cg, k->f, LLVMGetParam(fn, 8), splats);
  k->splats = splats;
  for (int i = 0; i < k->f->nparams; i++) {
    int pcp = k->f->params[i].per_channel;
    pc[i] = pcp ? load_ptr_at(cg, LLVMGetParam(fn, 9), i) : NULL;
    dpc[i] = pcp ? load_ptr_at(cg, LLVMGetParam(fn, 13), i) : NULL;
  }
  k->pc = pc;
  k->dpc = dpc;
  k->cf = chain_factor(k);
  chain_invariants(cg, k);
  new_accumulators(cg, k, acc, acc32);
  k->gamma = LLVMGetParam(fn, 10);
  k->beta = LLVMGetParam(fn, 11);
  k->dgamma = LLVMGetParam(fn, 14);
  k->dbeta = LLVMGetParam(fn, 15);
  k->sum_t = cg->f64t;
  if (!cg->f64) {
    k->sumtmp = alloca_entry(cg, LLVMArrayType(cg->ct, SUM_FLOATS), "sums.tile");
    LLVMSetAlignment(k->sumtmp, 64);
  }
  layer_args la = {fn, LLVMGetParam(fn, 6), LLVMGetParam(fn, 7),
                   {LLVMGetParam(fn, 0), LLVMGetParam(fn, 2), LLVMGetParam(fn, 4)},
                   {LLVMGetParam(fn, 1), LLVMGetParam(fn, 3), LLVMGetParam(fn, 5)},
                   {&k->x, &k->dy, &k->dx}, 3, body_bwd};
  split_affine(cg, k, k->gamma, emit_layer_bwd_copy, &la);
  store_sums(cg, k, LLVMGetParam(fn, 12));
  free(k->cf);
  k->cf = NULL;
  kernel_ret(cg);
}

/* ------------------------------------------------------------- driver */

static void cg_types(dnc_cg *cg, int dt, unsigned vector_bits)
{
  LLVMContextRef c = cg->ctx;
  cg->dtype = dt;
  cg->f64 = dt == DNC_DT_F64;
  cg->i1 = LLVMInt1TypeInContext(c);
  cg->i16 = LLVMInt16TypeInContext(c);
  cg->i32 = LLVMInt32TypeInContext(c);
  cg->i64 = LLVMInt64TypeInContext(c);
  cg->f32 = LLVMFloatTypeInContext(c);
  cg->f64t = LLVMDoubleTypeInContext(c);
  cg->ptr = LLVMPointerTypeInContext(c, 0);
  cg->voidt = LLVMVoidTypeInContext(c);
  cg->ct = cg->f64 ? cg->f64t : cg->f32;
  cg->lanes = vector_bits / (cg->f64 ? 64 : 32);
  if (cg->lanes < 1)
    cg->lanes = 1;
  cg->vt = LLVMVectorType(cg->ct, cg->lanes);
  cg->mt = LLVMVectorType(cg->i1, cg->lanes);
  cg->accv = LLVMVectorType(cg->f64t, cg->lanes);
  switch (dt) {
  case DNC_DT_BF16: cg->st = cg->i16; break;
  case DNC_DT_F16: cg->st = LLVMHalfTypeInContext(c); break;
  default: cg->st = cg->ct; break;
  }
}

int dnc_target_flags(const dnc_target *t)
{
  int x86 = !strncmp(t->triple, "x86_64", 6);
  int avx512 = x86 && t->vector_bits == 512;
  return (t->has_fma ? DNC_TARGET_FMA : 0) |
         (avx512 && t->has_fma ? DNC_TARGET_RSQRT : 0) |
         (x86 && !strncmp(t->cpu, "znver", 5) ? DNC_TARGET_UNDERFLOW : 0);
}

LLVMModuleRef dnc_codegen(LLVMContextRef ctx, dnc_mod *m, dnc_fn *f, int dt,
                          const dnc_target *t, const char *prefix, char **err)
{
  return dnc_codegen_forms(ctx, m, f, dt, t, DNC_FORMS_ALL, prefix, err);
}

/* the vector math's precision for dt on t (dnc_cg.lowp): 8 (bf16), 11
 * (f16) or 0 (f32's, f64's) */
static int lowp_bits(int dt, const dnc_target *t)
{
  int bits = t->math_bits ? t->math_bits
             : dt == DNC_DT_BF16 ? 8 : dt == DNC_DT_F16 ? 11 : 24;
  return dt != DNC_DT_F64 && bits <= 11 ? bits : 0;
}

/* The kernels' roots in m's DAG: f, df/dx, df/dp_k (roots[]), after the
 * lowering rewrites (rewrite.c) for dt on t, as the oracle sees them too;
 * *chain: whether each derivative was a chain-rule product before them.
 * The derivatives are made first and the kernel's size is checked before
 * LLVM's time grows with it. 0; or -1 with why, past a limit. */
static int kernel_roots(dnc_mod *m, dnc_fn *f, int dt, const dnc_target *t,
                        dnc_node **roots, int *chain, char *why, size_t n)
{
  roots[0] = f->body;
  roots[1] = dnc_derive(m, f, DNC_WRT_X);
  for (int i = 0; i < f->nparams; i++)
    roots[i + 2] = dnc_derive(m, f, i);
  if (dnc_kernel_check(m, f, why, n) || m->dag.too_deep) {
    if (m->dag.too_deep)
      snprintf(why, n, "the derivative of '%s' is too deep to compile",
               f->name);
    return -1;
  }
  *chain = 1;
  for (int i = 1; i < f->nparams + 2; i++)
    *chain &= !roots[i] || dnc_chain_product(roots[i], dt == DNC_DT_F64);
  if (dnc_rewrite(&m->dag, dt == DNC_DT_F64, lowp_bits(dt, t),
                  dnc_target_flags(t), roots, f->nparams + 2)) {
    snprintf(why, n, "the kernels' DAG after its lowering rewrites is too "
             "large");
    return -1;
  }
  return 0;
}

int dnc_codegen_prepare(dnc_mod *m, dnc_fn *f, int dt, const dnc_target *t)
{
  dnc_node *roots[DNC_MAX_PARAMS + 2];
  char why[256];
  int chain;
  return kernel_roots(m, f, dt, t, roots, &chain, why, sizeof why);
}

LLVMModuleRef dnc_codegen_forms(LLVMContextRef ctx, dnc_mod *m, dnc_fn *f,
                                int dt, const dnc_target *t, unsigned forms,
                                const char *prefix, char **err)
{
  DNC_ASSERT(f->nparams <= DNC_MAX_PARAMS);
  /* a plain form calls its layer form: both in one module */
  DNC_ASSERT(!(forms & 1u << DNC_K_FWD) || forms & 1u << DNC_K_LAYER_FWD);
  DNC_ASSERT(!(forms & 1u << DNC_K_BWD) || forms & 1u << DNC_K_LAYER_BWD);
  dnc_cg cg = {0};
  cg.ctx = ctx;
  cg.fn = f;
  char *mname = dnc_arena_printf(m->arena, "%s_%s", f->name, dnc_dtype_names[dt]);
  cg.mod = LLVMModuleCreateWithNameInContext(mname, ctx);
  LLVMSetTarget(cg.mod, t->triple);
  LLVMTargetMachineRef tm = dnc_target_machine(t, err);
  if (!tm) {
    LLVMDisposeModule(cg.mod);
    return NULL;
  }
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(cg.mod, td);
  LLVMDisposeTargetData(td);
  LLVMDisposeTargetMachine(tm);
  cg.b = LLVMCreateBuilderInContext(ctx);
  cg_types(&cg, dt, t->vector_bits);
  cg.fma = t->has_fma;
  cg.target = dnc_target_flags(t);
  cg.avx512 = !strncmp(t->triple, "x86_64", 6) && t->vector_bits == 512;
  /* precision-matched vector math: bf16 and f16 kernels (or any f32
   * compute when the context asks, for testing) use the short forms */
  cg.lowp = lowp_bits(dt, t);
  cg.stream = t->stream && !strncmp(t->triple, "x86_64", 6);
  cg.bf16cvt = cg.avx512 && cg.lanes == 16 && dt == DNC_DT_BF16 &&
               dnc_has_bf16_convert(t->triple, t->features);

  /* the backward's roots: f, df/dx, df/dp_k (module DAG; the caller holds
   * the module's lock) */
  dnc_node *dfdp[DNC_MAX_PARAMS];
  kbody k = {0};
  k.m = m;
  k.f = f;
  k.dfdp = dfdp;
  dnc_node *roots[DNC_MAX_PARAMS + 2];
  char why[256];
  if (kernel_roots(m, f, dt, t, roots, &k.chain, why, sizeof why)) {
    *err = strdup(why);
    LLVMDisposeBuilder(cg.b);
    LLVMDisposeModule(cg.mod);
    return NULL;
  }
  k.froot = roots[0];
  k.dfdx = roots[1];
  for (int i = 0; i < f->nparams; i++)
    dfdp[i] = roots[i + 2];
  cg.memo_n = m->dag.count + 1;
  k.spec[0] = find_spec(&cg, m, roots, 1);
  k.spec[1] = find_spec(&cg, m, roots, f->nparams + 2);
  cg.memo = calloc(cg.memo_n, sizeof *cg.memo);
  cg.params = calloc((size_t)f->nparams + 1, sizeof *cg.params);
  if (!cg.memo || !cg.params)
    dnc_die(__FILE__, __LINE__, "out of memory");

  void (*build[DNC_K__COUNT])(dnc_cg *, kbody *, const dnc_target *,
                              const char *) = {build_fwd, build_bwd,
                                               build_layer_fwd, build_layer_bwd};
  /* the layer forms first: the plain ones may call them */
  static const int order[DNC_K__COUNT] = {DNC_K_LAYER_FWD, DNC_K_LAYER_BWD,
                                          DNC_K_FWD, DNC_K_BWD};
  for (int j = 0; j < DNC_K__COUNT; j++) {
    int i = order[j];
    if (!(forms & 1u << i))
      continue;
    char *name = dnc_arena_printf(m->arena, "%s_%s", prefix, dnc_kernel_forms[i]);
    build[i](&cg, &k, t, name);
  }
  free(cg.memo);
  free(cg.params);
  spec_free(k.spec[0]);
  spec_free(k.spec[1]);
  LLVMDisposeBuilder(cg.b);

  char *msg = NULL;
  if (LLVMVerifyModule(cg.mod, LLVMReturnStatusAction, &msg)) {
    *err = dnc_arena_printf(m->arena, "internal error: invalid IR: %s", msg);
    *err = strdup(*err);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(cg.mod);
    return NULL;
  }
  LLVMDisposeMessage(msg);
  return cg.mod;
}
