/*
 * vmath.c - the vector math interface: how each transcendental op (and pow
 * with a general exponent) becomes IR on vectors of the compute type.
 *
 * The kernel builder (codegen.c) calls dnc_vm_emit and nothing else for
 * these ops, so a lowering changed here changes every kernel at once.
 *
 * f32: dnc's own branch-free implementations, below, for exp, expm1, log,
 * log1p, tanh, sigmoid, softplus, erf, erfc, sinh, cosh, asinh, atan, sin
 * and cos (and pow, through double: vm_pow32): a range reduction, a
 * minimax polynomial (coefficients from tools/remez.py, in vmath_coef.h),
 * and a reconstruction, with ±0, ±inf, NaN, subnormals and the overflow
 * and saturation edges handled by selects. Fused multiply-adds are used
 * where the target has them (the results may then differ in the last bit
 * from a target without). Their maximum error over every f32 input is in
 * docs/accuracy.md (`make check-math` measures it).
 *
 * f64: the same design for every one of them (double coefficients; log
 * through s = f/(2+f) as fdlibm does; erfc's tail in four pieces; atan
 * reduced to |t| <= tan(pi/8); sin and cos with the reduced argument in
 * two doubles).
 *
 * bf16's math (math_bits 8) on 16-lane AVX-512 also divides and takes
 * reciprocal square roots for codegen.c (dnc_vm_div, dnc_vm_rsqrt) with
 * the 14-bit estimates vrcp14ps and vrsqrt14ps instead of the one divider;
 * f32's rsqrt there is vrsqrt14ps refined by a Newton step (1.04 ulp).
 *
 * f64 pow calls the scalar function of rtmath.c lane by lane: correct,
 * but not vector code (it needs log in double-double). So do sin and cos
 * beyond |x| = 2^17 (2^10 without FMA;
 * f64: 2^30, 2^20), behind a branch on "any lane". LLVM 19 has no vector
 * tanh or erf on x86, and its vector
 * exp/log/sin/cos intrinsics become the same scalar calls without a vector
 * library, so there is nothing better to borrow from it.
 */
#include <math.h>
#include <string.h>

#include "codegen.h"
#include "vmath_coef.h"

/* ------------------------------------------------------------ builders */

typedef struct vm {
  dnc_cg *cg;
  LLVMBuilderRef b;
  LLVMTypeRef ft, it; /* <lanes x float|double>, <lanes x i32|i64> */
  int d;              /* double precision */
  LLVMTypeRef ie;     /* i32 or i64 */
  int lowp;           /* f32 for bf16 (8) or f16 (11) results; else 0 */
} vm;

/* c splatted in v's type (rounded to float for f32, as dnc_cg_splat) */
static LLVMValueRef K(vm *v, double c)
{
  LLVMValueRef e[64];
  LLVMValueRef k = LLVMConstReal(LLVMGetElementType(v->ft), v->d ? c : (double)(float)c);
  for (unsigned i = 0; i < v->cg->lanes; i++)
    e[i] = k;
  return LLVMConstVector(e, v->cg->lanes);
}

static LLVMValueRef KI(vm *v, long long c)
{
  LLVMValueRef e[64];
  for (unsigned i = 0; i < v->cg->lanes; i++)
    e[i] = LLVMConstInt(v->ie, (unsigned long long)(long long)c, 1);
  return LLVMConstVector(e, v->cg->lanes);
}

static LLVMValueRef add(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildFAdd(v->b, a, b, "");
}
static LLVMValueRef sub(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildFSub(v->b, a, b, "");
}
static LLVMValueRef mul(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildFMul(v->b, a, b, "");
}
static LLVMValueRef vdiv(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildFDiv(v->b, a, b, "");
}
static LLVMValueRef sel(vm *v, LLVMValueRef m, LLVMValueRef a, LLVMValueRef b)
{
  return LLVMBuildSelect(v->b, m, a, b, "");
}
static LLVMValueRef cmp(vm *v, LLVMRealPredicate p, LLVMValueRef a,
                        LLVMValueRef b)
{
  return LLVMBuildFCmp(v->b, p, a, b, "");
}

static LLVMValueRef call_intr(vm *v, const char *name, LLVMValueRef *args,
                              int n)
{
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef t = LLVMTypeOf(args[0]);
  return LLVMBuildCall2(v->b, LLVMIntrinsicGetType(v->cg->ctx, id, &t, 1),
                        LLVMGetIntrinsicDeclaration(v->cg->mod, id, &t, 1),
                        args, (unsigned)n, "");
}

/* a * b + c: one rounding where the target fuses, else two */
static LLVMValueRef fma3(vm *v, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
  if (!v->cg->fma)
    return add(v, mul(v, a, b), c);
  LLVMValueRef args[3] = {a, b, c};
  return call_intr(v, "llvm.fma", args, 3);
}

static LLVMValueRef vabs(vm *v, LLVMValueRef a)
{
  return call_intr(v, "llvm.fabs", &a, 1);
}

static LLVMValueRef vcopysign(vm *v, LLVMValueRef mag, LLVMValueRef sgn)
{
  LLVMValueRef args[2] = {mag, sgn};
  return call_intr(v, "llvm.copysign", args, 2);
}

/* c[0] + c[1] t + ... + c[n-1] t^(n-1), by Horner's rule */
static LLVMValueRef poly(vm *v, LLVMValueRef t, const double *c, int n)
{
  LLVMValueRef r = K(v, c[n - 1]);
  for (int i = n - 2; i >= 0; i--)
    r = fma3(v, r, t, K(v, c[i]));
  return r;
}

static LLVMValueRef as_int(vm *v, LLVMValueRef a)
{
  return LLVMBuildBitCast(v->b, a, v->it, "");
}
static LLVMValueRef as_float(vm *v, LLVMValueRef a)
{
  return LLVMBuildBitCast(v->b, a, v->ft, "");
}

/* 2^n for integer-valued n in [-126, 127] (f64: [-1022, 1023]) */
static LLVMValueRef pow2i(vm *v, LLVMValueRef n)
{
  LLVMValueRef i = LLVMBuildFPToSI(v->b, n, v->it, "");
  i = LLVMBuildAdd(v->b, i, KI(v, v->d ? 1023 : 127), "");
  return as_float(v, LLVMBuildShl(v->b, i, KI(v, v->d ? 52 : 23), ""));
}

static LLVMValueRef isnan_(vm *v, LLVMValueRef a)
{
  return cmp(v, LLVMRealUNO, a, a);
}

/* ------------------------------------------------------ exp and expm1 */

/* x = n ln2 + r, |r| <= ln2/2 (a little more), n integer-valued; x must be
 * within [-104, 89]. ln2 is split Cody-Waite style so that n * C1 is exact
 * (C1 has 9 significant bits) with or without fused multiply-add. */
static void exp_reduce(vm *v, LLVMValueRef x, LLVMValueRef *n, LLVMValueRef *r)
{
  /* adding the shifter rounds to an integer; f64: fdlibm's ln2 split,
   * whose high part times any n here is exact */
  const double shifter = v->d ? 0x1.8p52 : 0x1.8p23;
  const double l2e = v->d ? 0x1.71547652b82fep+0 : 0x1.715476p+0;
  const double c1 = v->d ? 6.93147180369123816490e-01 : 0.693359375;
  const double c2 = v->d ? 1.90821492927058770002e-10 : -2.12194440e-4;
  LLVMValueRef z = fma3(v, x, K(v, l2e), K(v, shifter));
  *n = sub(v, z, K(v, shifter));
  LLVMValueRef t = fma3(v, LLVMBuildFNeg(v->b, *n, ""), K(v, c1), x);
  *r = fma3(v, LLVMBuildFNeg(v->b, *n, ""), K(v, c2), t);
}

/* expm1(r) for the reduced r */
static LLVMValueRef expm1_r(vm *v, LLVMValueRef r)
{
  LLVMValueRef p = v->d           ? poly(v, r, vm_exp_p64, 11)
                   : v->lowp == 8  ? poly(v, r, vm_exp_p32_bf16, 3)
                   : v->lowp == 11 ? poly(v, r, vm_exp_p32_f16, 4)
                                   : poly(v, r, vm_exp_p32, 6);
  return fma3(v, mul(v, r, r), p, r);
}

/* exp(r) for the reduced r. With fused multiply-add: 1 + r (1 + r P(r)),
 * Horner's rule to the end; f32's P is one degree lower than expm1's,
 * fitted to the error it gives exp (tools/remez.py). Six operations where
 * 1 + (r + r^2 P(r)) took eight, and one rounding at the end where that
 * had two: 0.891 ulp over every f32 input instead of 0.987 (f64: 0.842
 * instead of 0.968, with expm1's P). A search over the f32 coefficients'
 * last bits was measured and not kept (docs/performance.md, round ten). */
static LLVMValueRef exp_r_q(vm *v, LLVMValueRef r, LLVMValueRef *qq, LLVMValueRef *em)
{
  *qq = *em = NULL;
  if (v->lowp || !v->cg->fma) { /* without fused multiply-add, 1 + r Q
                                * rounds r Q too: 1.16 ulp (f64 1.12) */
    LLVMValueRef m = expm1_r(v, r);
    if (!v->lowp)
      *em = m;
    return add(v, K(v, 1.0), m);
  }
  LLVMValueRef p = v->d ? poly(v, r, vm_exp_p64, 11) : poly(v, r, vm_exp_e32, 5);
  LLVMValueRef q = fma3(v, p, r, K(v, 1.0));
  *qq = q;
  return fma3(v, r, q, K(v, 1.0));
}


/* max(x, lo) with a NaN x passing */
static LLVMValueRef at_least(vm *v, LLVMValueRef x, double lo)
{
  return sel(v, cmp(v, LLVMRealOLT, x, K(v, lo)), K(v, lo), x);
}

static LLVMValueRef clampf(vm *v, LLVMValueRef x, double lo, double hi)
{
  x = at_least(v, x, lo);
  return sel(v, cmp(v, LLVMRealOGT, x, K(v, hi)), K(v, hi), x);
}

/* p 2^n rounded once (vscalefps/pd: subnormals and overflow included;
 * NaN if p or n is NaN), for AVX-512 with full-width vectors */
static int has_scalef(vm *v)
{
  return v->cg->avx512 && v->cg->lanes == (v->d ? 8u : 16u);
}

static LLVMValueRef scalef(vm *v, LLVMValueRef p, LLVMValueRef n)
{
  LLVMTypeRef mt = v->d ? LLVMInt8TypeInContext(v->cg->ctx) : LLVMInt16TypeInContext(v->cg->ctx);
  LLVMValueRef args[5] = {p, n, LLVMGetPoison(v->ft), LLVMConstAllOnes(mt),
                          LLVMConstInt(v->cg->i32, 4, 0)}; /* current rounding */
  const char *name = v->d ? "llvm.x86.avx512.mask.scalef.pd.512"
                          : "llvm.x86.avx512.mask.scalef.ps.512";
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  return LLVMBuildCall2(v->b, LLVMIntrinsicGetType(v->cg->ctx, id, NULL, 0),
                        LLVMGetIntrinsicDeclaration(v->cg->mod, id, NULL, 0), args, 5, "");
}

/* What a caller knows of exp's argument, so that clamps that cannot
 * matter are left out: anything; at most 0 (or NaN); within
 * [-104, 88] (f64: [-745, 709]) (or NaN). */
enum { EXP_ANY, EXP_NONPOS, EXP_INRANGE };

/* exp(x) 2^adj: (1 + expm1(r)) 2^(n + adj), the scaling in two steps so
 * that results near overflow and in the subnormal range are rounded once
 * (adj = -1 lets sinh and cosh reach past exp's overflow). */
/* The reduction of exp(y) for y <= 0 (or NaN): under, the lanes below
 * -104 (f32; -746 f64), whose exp is 0 and which are reduced as y = 0
 * (vm_exp_in has why); n and r of the others. Once per y in a body
 * (dnc_cg.red): exp(y) for a derivative and tanh's expm1 of the same y in
 * bf16 and f16 (vm_tanh_lowp) share it, which LLVM does not find for them
 * across the blocks of the division between them. */
static int reduced_nonpos(vm *v, LLVMValueRef y, LLVMValueRef *under,
                          LLVMValueRef *n, LLVMValueRef *r)
{
  dnc_cg *cg = v->cg;
  for (int i = 0; i < cg->nred; i++)
    if (cg->red[i].y == y) {
      *under = cg->red[i].under;
      *n = cg->red[i].n;
      *r = cg->red[i].r;
      return 1;
    }
  return 0;
}

/* Where an underflowing scaling costs nothing extra (DNC_TARGET_UNDERFLOW,
 * with vscalefps), exp's argument is clamped to -112 (f64: -760) instead
 * of the lanes below -104 (-746) taking 0 after (vm_exp_in): one
 * vmaxps where the other takes a comparison and a masked move of the
 * argument and of each result (exp's 0, tanh's expm1 of -1 in bf16 and
 * f16). The same bits: 2^n (1 + p) with n <= -161 (-1095) rounds to 0
 * as exp(y) does below -104, and expm1's 2^n p + (2^n - 1) to -1. On
 * Intel's cores a scaling to a subnormal or 0 takes a microcode assist
 * for the vector (DyT's backward with 1 % of |x| ~ 1000: 0.70 -> 1.44
 * ns an element, round nine); on Zen 5, vscalefps to 2^-160 costs the
 * cycle that 2^-10 does (measured, round twenty-two). 0: no clamp. */
static double exp_clamp(vm *v)
{
  if (!has_scalef(v) || !(v->cg->target & DNC_TARGET_UNDERFLOW))
    return 0;
  return v->d ? -760.0 : -112.0;
}

/* y's operand where y is a negation (the Gaussian's -(u u) in bf16's
 * math, codegen.c lw_neg), else NULL */
static LLVMValueRef fneg_of(LLVMValueRef y)
{
  return LLVMIsAUnaryOperator(y) && LLVMGetInstructionOpcode(y) == LLVMFNeg
             ? LLVMGetOperand(y, 0)
             : NULL;
}

static void reduce_nonpos(vm *v, LLVMValueRef y, LLVMValueRef *under,
                          LLVMValueRef *n, LLVMValueRef *r)
{
  dnc_cg *cg = v->cg;
  if (reduced_nonpos(v, y, under, n, r))
    return;
  /* y = -h: the clamp or the select on h, negated after, a sign the
   * reduction's fused multiply-adds take (on y itself the negation was
   * a vxorps of its own); the same values, NaN passing */
  LLVMValueRef h = fneg_of(y), a;
  double lo = exp_clamp(v), b = v->d ? -746.0 : -104.0;
  if (lo) {
    *under = NULL;
    a = h ? LLVMBuildFNeg(v->b, sel(v, cmp(v, LLVMRealOGT, h, K(v, -lo)), K(v, -lo), h), "")
          : at_least(v, y, lo);
  } else {
    *under = h ? cmp(v, LLVMRealOGT, h, K(v, -b)) : cmp(v, LLVMRealOLT, y, K(v, b));
    a = h ? LLVMBuildFNeg(v->b, sel(v, *under, K(v, -0.0), h), "")
          : sel(v, *under, K(v, 0.0), y);
  }
  exp_reduce(v, a, n, r);
  if (cg->nred < (int)(sizeof cg->red / sizeof cg->red[0]))
    cg->red[cg->nred++] = (__typeof__(cg->red[0])){y, *under, *n, *r, NULL, NULL};
}

static LLVMValueRef vm_exp_in(vm *v, LLVMValueRef x, int adj, int range)
{
  LLVMValueRef n, r;
  /* up to 711 (f64), 90 (f32): exp(x)/2 of sinh and cosh is finite a
   * little beyond exp's own overflow; NaN passes both clamps */
  double lo = v->d ? -746.0 : -104.0, hi = v->d ? 711.0 : 90.0;
  LLVMValueRef xc = x, under = NULL;
  /* below lo the result is +0: those lanes compute exp(0) and take 0
   * after, since a scaling into the subnormals or to 0 costs a microcode
   * assist for the whole vector (DyT's backward, whose exp(-2|u|) is 0
   * once |u| > 52: 0.70 -> 1.44 ns/el with 1 % of |x| ~ 1000, as LLMs'
   * massive activations; docs/performance.md, round nine); where that
   * costs nothing, the argument is clamped instead (exp_clamp) */
  if (range == EXP_NONPOS) {
    reduce_nonpos(v, x, &under, &n, &r);
  } else {
    double clamp = exp_clamp(v);
    if (range != EXP_INRANGE && clamp) {
      xc = at_least(v, xc, clamp);
    } else if (range != EXP_INRANGE) {
      under = cmp(v, LLVMRealOLT, xc, K(v, lo));
      xc = sel(v, under, K(v, 0.0), xc);
    }
    if (range == EXP_ANY)
      xc = sel(v, cmp(v, LLVMRealOGT, xc, K(v, hi)), K(v, hi), xc);
    exp_reduce(v, xc, &n, &r);
  }
  LLVMValueRef q, em, p = exp_r_q(v, r, &q, &em);
  if (range == EXP_NONPOS)
    for (int i = 0; i < v->cg->nred; i++)
      if (v->cg->red[i].y == x)
        v->cg->red[i].q = q, v->cg->red[i].em = em;
  if (adj)
    n = add(v, n, K(v, adj));
  /* vscalef: a NaN x makes n and p NaN, and the result a (quiet) NaN: no
   * select needed */
  if (has_scalef(v))
    return under ? sel(v, under, K(v, 0.0), scalef(v, p, n)) : scalef(v, p, n);
  /* n1 = trunc(n / 2), n2 = n - n1: both within [-76, 65] (f64: [-538,
   * 514]); NaN lanes (fptosi of NaN is poison) are replaced by x */
  LLVMValueRef n1 = call_intr(v, "llvm.trunc", (LLVMValueRef[]){mul(v, n, K(v, 0.5))}, 1);
  LLVMValueRef n2 = sub(v, n, n1);
  LLVMValueRef y = mul(v, mul(v, p, pow2i(v, n1)), pow2i(v, n2));
  if (under)
    y = sel(v, under, K(v, 0.0), y);
  return sel(v, isnan_(v, x), x, y);
}

static LLVMValueRef vm_exp_adj(vm *v, LLVMValueRef x, int adj)
{
  return vm_exp_in(v, x, adj, EXP_ANY);
}

static LLVMValueRef vm_exp(vm *v, LLVMValueRef x)
{
  return vm_exp_in(v, x, 0, EXP_ANY);
}

/* expm1(x) = 2^n expm1(r) + (2^n - 1), exact in its last step for the n
 * where it matters; beyond n = 126 it is exp(x). */
static LLVMValueRef vm_expm1(vm *v, LLVMValueRef x)
{
  LLVMValueRef n, r;
  double top = v->d ? 1022 : 126;
  LLVMValueRef xc = v->d ? clampf(v, x, -40.0, 710.0) : clampf(v, x, -30.0, 89.0);
  exp_reduce(v, xc, &n, &r);
  LLVMValueRef em = expm1_r(v, r);
  LLVMValueRef nn = sel(v, cmp(v, LLVMRealOGT, n, K(v, top)), K(v, top), n);
  LLVMValueRef s = pow2i(v, nn);
  LLVMValueRef y = fma3(v, s, em, sub(v, s, K(v, 1.0)));
  y = sel(v, cmp(v, LLVMRealOGT, n, K(v, top)), vm_exp(v, xc), y);
  /* keep -0 and tiny x exact: expm1(x) = x below half an ulp of 1 */
  y = sel(v, cmp(v, LLVMRealOLT, vabs(v, x), K(v, v->d ? 0x1p-54 : 0x1p-25)), x, y);
  return sel(v, isnan_(v, x), x, y);
}

/* ------------------------------------------------------ log and log1p */

/* log of a positive normal or subnormal u, plus the correction c (added
 * to the log1p(f) part): e ln2 + log1p(f) + c with u = 2^e (1 + f),
 * f in [sqrt(1/2) - 1, sqrt(2) - 1]. Zero, negative, inf and NaN inputs
 * are fixed by the callers. */
static LLVMValueRef log_core(vm *v, LLVMValueRef u, LLVMValueRef c)
{
  /* subnormals: scale by 2^23 (f64: 2^52) first */
  int mant = v->d ? 52 : 23;
  LLVMValueRef sub_ = cmp(v, LLVMRealOLT, u, K(v, v->d ? 0x1p-1022 : 0x1p-126));
  u = sel(v, sub_, mul(v, u, K(v, ldexp(1, mant))), u);
  LLVMValueRef ebias = sel(v, sub_, K(v, -mant), K(v, 0.0));
  LLVMValueRef bits = as_int(v, u);
  /* m in [sqrt(1/2), sqrt(2)): subtract the exponent of (bits - sqrt(1/2)'s) */
  LLVMValueRef off = LLVMBuildSub(v->b, bits,
                                  KI(v, v->d ? 0x3fe6a09e667f3bcdll : 0x3f3504f3), "");
  LLVMValueRef ei = LLVMBuildAShr(v->b, off, KI(v, mant), "");
  LLVMValueRef mbits = LLVMBuildSub(v->b, bits, LLVMBuildShl(v->b, ei, KI(v, mant), ""), "");
  LLVMValueRef m = as_float(v, mbits);
  LLVMValueRef e = add(v, LLVMBuildSIToFP(v->b, ei, v->ft, ""), ebias);
  LLVMValueRef f = sub(v, m, K(v, 1.0));
  if (v->d) {
    /* log1p(f) = 2s + s R, s = f / (2 + f), R = s^2 L(s^2), written as
     * fdlibm does: f - (hfsq - s (hfsq + R)), hfsq = f^2/2, so that the
     * exact f carries the result and the rounded s only the small part */
    LLVMValueRef s2 = vdiv(v, f, add(v, K(v, 2.0), f));
    LLVMValueRef u2 = mul(v, s2, s2);
    LLVMValueRef R = mul(v, u2, poly(v, u2, vm_log_l64, 9));
    LLVMValueRef hfsq = mul(v, K(v, 0.5), mul(v, f, f));
    LLVMValueRef t = fma3(v, s2, add(v, hfsq, R), c);
    LLVMValueRef lf = sub(v, f, sub(v, hfsq, t));
    LLVMValueRef y = fma3(v, e, K(v, 1.90821492927058770002e-10), lf);
    return fma3(v, e, K(v, 6.93147180369123816490e-01), y);
  }
  LLVMValueRef f2 = mul(v, f, f);
  LLVMValueRef q = poly(v, f, vm_log_q32, 9);
  /* log1p(f) = f - f^2/2 + f^3 q */
  LLVMValueRef t = fma3(v, mul(v, f2, f), q, c);
  t = fma3(v, K(v, -0.5), f2, t);
  LLVMValueRef lf = add(v, f, t);
  /* e ln2 with ln2 split so that e * hi is exact */
  LLVMValueRef y = fma3(v, e, K(v, -2.12194440e-4), lf);
  return fma3(v, e, K(v, 0.693359375), y);
}

static LLVMValueRef log_specials(vm *v, LLVMValueRef u, LLVMValueRef y)
{
  y = sel(v, cmp(v, LLVMRealOEQ, u, K(v, 0.0)), K(v, -INFINITY), y);
  y = sel(v, cmp(v, LLVMRealOLT, u, K(v, 0.0)), K(v, NAN), y);
  y = sel(v, cmp(v, LLVMRealOEQ, u, K(v, INFINITY)), u, y);
  return sel(v, isnan_(v, u), u, y);
}

static LLVMValueRef vm_log(vm *v, LLVMValueRef x)
{
  LLVMValueRef safe = sel(v, cmp(v, LLVMRealOGT, x, K(v, 0.0)), x, K(v, 1.0));
  safe = sel(v, cmp(v, LLVMRealOEQ, safe, K(v, INFINITY)), K(v, 1.0), safe);
  return log_specials(v, x, log_core(v, safe, K(v, 0.0)));
}

/* log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x rounded */
static LLVMValueRef vm_log1p(vm *v, LLVMValueRef x)
{
  LLVMValueRef u = add(v, K(v, 1.0), x);
  LLVMValueRef ok = cmp(v, LLVMRealOGT, u, K(v, 0.0));
  ok = LLVMBuildAnd(v->b, ok, cmp(v, LLVMRealONE, u, K(v, INFINITY)), "");
  LLVMValueRef safe = sel(v, ok, u, K(v, 1.0));
  LLVMValueRef c = vdiv(v, sub(v, x, sub(v, safe, K(v, 1.0))), safe);
  c = sel(v, ok, c, K(v, 0.0));
  LLVMValueRef y = log_core(v, safe, c);
  /* tiny x (and -0): log1p(x) = x */
  y = sel(v, cmp(v, LLVMRealOLT, vabs(v, x), K(v, v->d ? 0x1p-54 : 0x1p-24)), x, y);
  return log_specials(v, u, sel(v, isnan_(v, x), x, y));
}

/* ---------------------------------------------- tanh, sigmoid, softplus */

/* sign(x) (|x| < edge ? |x| + |x|^3 T(x^2) : big), T of n coefficients:
 * the sign put on once, after the choice (tanh(-0) = -0) */
static LLVMValueRef tanh_join(vm *v, LLVMValueRef x, const double *t, int n,
                              double edge, LLVMValueRef big)
{
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef u = mul(v, x, x);
  LLVMValueRef small = fma3(v, mul(v, ax, u), poly(v, u, t, n), ax);
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOLT, ax, K(v, edge)), small, big);
  return vcopysign(v, y, x);
}

/* ------------------------------------------------------- rare lanes */

/* y, or where some lane of mask is set (a vector any lane of which is
 * rare: one branch that ordinary inputs never take), select(mask, slow,
 * y) with slow built by fn(v, arg) in a block of its own: a lane's result
 * never depends on the others. name: the blocks' and the result's. */
static LLVMValueRef rare_lanes(vm *v, LLVMValueRef mask, LLVMValueRef y,
                               LLVMValueRef (*fn)(vm *, const void *),
                               const void *arg, const char *name)
{
  LLVMValueRef any = call_intr(v, "llvm.vector.reduce.or", &mask, 1);
  LLVMBasicBlockRef here = LLVMGetInsertBlock(v->b);
  LLVMValueRef f = LLVMGetBasicBlockParent(here);
  LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(v->cg->ctx, f, name);
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(v->cg->ctx, f, name);
  LLVMBuildCondBr(v->b, any, slow, join);
  LLVMPositionBuilderAtEnd(v->b, slow);
  LLVMValueRef ys = sel(v, mask, fn(v, arg), y);
  LLVMBasicBlockRef slow_end = LLVMGetInsertBlock(v->b);
  LLVMBuildBr(v->b, join);
  LLVMPositionBuilderAtEnd(v->b, join);
  LLVMValueRef phi = LLVMBuildPhi(v->b, v->ft, name);
  LLVMValueRef vals[2] = {y, ys};
  LLVMBasicBlockRef blocks[2] = {here, slow_end};
  LLVMAddIncoming(phi, vals, blocks, 2);
  return phi;
}

/* ------------------------------------------ tables of 16 and 32 pieces */

/* A float table of 16 as a constant vector (16 lanes). */
static LLVMValueRef table16(vm *v, const float *t)
{
  LLVMValueRef e[16];
  for (int i = 0; i < 16; i++)
    e[i] = LLVMConstReal(v->cg->f32, t[i]);
  return LLVMConstVector(e, 16);
}

static LLVMValueRef x86_call(vm *v, const char *name, LLVMValueRef *args, int n)
{
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(v->cg->mod, id, NULL, 0);
  return LLVMBuildCall2(v->b, LLVMIntrinsicGetType(v->cg->ctx, id, NULL, 0), f,
                        args, (unsigned)n, "");
}

/* A float table of 32 at index idx's low five bits: one two-table
 * permute (vpermi2ps / vpermt2ps: one operation, as vpermps is for a
 * table of 16). Round eighteen's tables have 32 pieces of half round
 * five's width, two polynomial degrees lower (docs/performance.md). */
static LLVMValueRef tab(vm *v, const float *t, LLVMValueRef idx)
{
  LLVMValueRef a[3] = {table16(v, t), idx, table16(v, t + 16)};
  return x86_call(v, "llvm.x86.avx512.vpermi2var.ps.512", a, 3);
}

/* The tables' vector code: f32 with 16 lanes (AVX-512). */
static int table_ok(const vm *v)
{
  return !v->d && v->cg->avx512 && v->cg->lanes == 16;
}

/* ------------------------ bf16's division and reciprocal square root */

/* bf16 kernels (math_bits 8) on 16-lane AVX-512 divide and take
 * reciprocal square roots with the hardware's 14-bit estimates instead of
 * vdivps and vsqrtps, which share one divider that takes 11 cycles for
 * each: that divider bounded DyISRU's bf16 kernels (a sqrt and a division
 * per 16 elements forward, docs/performance.md, round six). Each estimate
 * is within 2^-14 relative (vrcp14ps, vrsqrt14ps), 2^-14 + 2^-24 after
 * the product that uses it, as bf16's other math (about 2^-15, docs/
 * accuracy.md); specials, signed zeros and subnormals as IEEE division
 * gives them. sqrt itself stays vsqrtps: an estimate of it (x rsqrt14(x))
 * took `if t3 > sqrt(1 + t1^2)` the wrong way where the two were 1e-5
 * apart (test_differential), a branch, not an error of 2^-14, where a
 * condition compares a root; DyISRU's roots are rsqrt there anyway
 * (rewrite.c). f16's math (11 bits) keeps the exact operations. */
static int estimates_ok(const vm *v)
{
  return v->lowp == 8 && table_ok(v);
}

static LLVMValueRef rcp14(vm *v, LLVMValueRef x)
{
  LLVMValueRef a[3] = {x, LLVMGetPoison(v->ft), LLVMConstAllOnes(v->cg->i16)};
  return x86_call(v, "llvm.x86.avx512.rcp14.ps.512", a, 3);
}

/* a / b = a rcp14(b), where b = +-0 gives +-inf (NaN for a = 0), b =
 * +-inf +-0 (NaN for an infinite a), NaNs pass, and a reciprocal that is
 * subnormal (|b| > 2^126) still has 21 bits. A subnormal b's reciprocal
 * overflows while a / b need not: a vector with one goes to a block that
 * divides (vdivps) and takes that quotient in those lanes, so that a lane's
 * result never depends on the others. Handling it without the branch
 * (scaling b and the quotient by 2^64, or getmant, getexp and scalef)
 * cost as much as the division it replaces. */
static LLVMValueRef exact_quotient(vm *v, const void *ab)
{
  const LLVMValueRef *q = ab;
  return vdiv(v, q[0], q[1]);
}

static LLVMValueRef div_est(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  LLVMValueRef fc[2] = {b, LLVMConstInt(v->cg->i32, 0x20, 0)}; /* class: denormal */
  LLVMValueRef ab[2] = {a, b};
  return rare_lanes(v, x86_call(v, "llvm.x86.avx512.fpclass.ps.512", fc, 2),
                    mul(v, a, rcp14(v, b)), exact_quotient, ab, "div.subnormal");
}

/* rsqrt14 is right for every special: +-0, +inf, negative, NaN, and
 * subnormals (whose reciprocal square roots are normal) */
static LLVMValueRef rsqrt_est(vm *v, LLVMValueRef x)
{
  LLVMValueRef a[3] = {x, LLVMGetPoison(v->ft), LLVMConstAllOnes(v->cg->i16)};
  return x86_call(v, "llvm.x86.avx512.rsqrt14.ps.512", a, 3);
}

/* |x| clamped to lim (a NaN passes), its piece i = min(floor(scale |x|),
 * 31) and t = |x| - center[i] (exact: Sterbenz). The conversion is
 * vcvttps2dq itself, defined for a NaN (0x80000000, where LLVM's fptosi
 * is poison), and the index's min an unsigned integer one (vpminud),
 * which takes that to 31, as the float min to 31.5 would. Where scale lim
 * < 32 (erf's 8 x 3.95) the clamp alone keeps the index within 31 and
 * there is no min: a NaN reads piece 0 (vpermi2ps reads the low five
 * bits), where t and the result are NaN anyway. Both keep the kernels'
 * bottleneck, the multiply-add ports (FP0 and FP1 on Zen 4, where a
 * 512-bit operation holds one for two cycles; vminps runs there, vpminud
 * and vcvttps2dq on FP2 and FP3), one operation lighter per vector. */
static LLVMValueRef table_arg(vm *v, LLVMValueRef x, double lim, double scale,
                              const float *center, LLVMValueRef *idx)
{
  LLVMValueRef ax = vabs(v, x);
  ax = sel(v, cmp(v, LLVMRealOGT, ax, K(v, lim)), K(v, lim), ax);
  LLVMTypeRef i32v = LLVMVectorType(v->cg->i32, 16);
  LLVMValueRef c[4] = {mul(v, ax, K(v, scale)), LLVMGetUndef(i32v),
                       LLVMConstAllOnes(v->cg->i16),
                       LLVMConstInt(v->cg->i32, 4, 0)};
  *idx = x86_call(v, "llvm.x86.avx512.mask.cvttps2dq.512", c, 4);
  if (scale * lim >= 32.0)
    *idx = call_intr(v, "llvm.umin", (LLVMValueRef[]){*idx, KI(v, 31)}, 2);
  return sub(v, ax, tab(v, center, *idx));
}

/* sum of rows[k][i] t^k, k < n, by Horner */
static LLVMValueRef table_poly(vm *v, const float (*rows)[32], int n,
                               LLVMValueRef t, LLVMValueRef idx)
{
  LLVMValueRef r = tab(v, rows[n - 1], idx);
  for (int k = n - 2; k >= 0; k--)
    r = fma3(v, r, t, tab(v, rows[k], idx));
  return r;
}

/* f32 tanh on 16 lanes (AVX-512): |x| clamped to 9.1 (tanh is 1 there in
 * f32; a NaN passes), piece i = min(floor(4|x|), 31) of tools/remez.py's
 * table (tanh_table), t = |x| - center[i] (exact), and
 * tanh = fma(t, fma(t, R(t), c1), fma(w, t, c0)): t + t^2 R(t) in pieces
 * 0 and 1 (|x| < 1/2), c0 + t (c1 + t R(t)) above, each coefficient a
 * vpermi2ps of its row. No exp, no division, no select: 0.75 ulp over
 * every float, where the two forms of vm_tanh side by side gave 1.03
 * (round five's 16 pieces of width 1/2, R of degree 6: 0.80, and a fifth
 * faster than those in DyT's forward; round eighteen's 32, R of degree
 * 4: four operations fewer a vector; docs/performance.md). */
static LLVMValueRef vm_tanh_table(vm *v, LLVMValueRef x)
{
  LLVMValueRef i, t = table_arg(v, x, 9.1, 4.0, vm_tanh_tab_center, &i);
  enum { NR = sizeof vm_tanh_tab_r / sizeof vm_tanh_tab_r[0] };
  LLVMValueRef r = table_poly(v, vm_tanh_tab_r, NR, t, i);
  LLVMValueRef V = fma3(v, t, r, tab(v, vm_tanh_tab_c1, i));
  LLVMValueRef W = fma3(v, tab(v, vm_tanh_tab_w, i), t, tab(v, vm_tanh_tab_c0, i));
  return vcopysign(v, fma3(v, t, V, W), x);
}

/* |x| < 1: x + x^3 T(x^2); above: sign(x) (1 - 2e / (1 + e)) with
 * e = exp(-2|x|) <= 0.136, whose error then weighs little. The sign is
 * put on once, after the choice (tanh(-0) = -0). A NaN x (then e is NaN
 * too: it is exp(-2|x|) computed from x or from x = s t) takes the
 * second form, which is NaN: no select for it. With 16-lane f32 vectors
 * (AVX-512), the table of vm_tanh_table instead (e is then not used). */
static LLVMValueRef vm_tanh(vm *v, LLVMValueRef x, LLVMValueRef e)
{
  if (table_ok(v))
    return vm_tanh_table(v, x);
  LLVMValueRef big = sub(v, K(v, 1.0), vdiv(v, add(v, e, e), add(v, K(v, 1.0), e)));
  return v->d ? tanh_join(v, x, vm_tanh_t64, 16, 1.0, big)
              : tanh_join(v, x, vm_tanh_t32, 7, 1.0, big);
}

/* 2^n for an integer-valued n <= 0 from exp's reduction (f32): exact by
 * vscalefps, else by the exponent's bits (pow2i), which need n >= -126:
 * below, 2^-126, which the callers' 1 - 2^n and 2^n - 1 round as they
 * would the smaller power. NaN n: NaN with vscalefps, else garbage that
 * the callers select away. */
static LLVMValueRef pow2_floor126(vm *v, LLVMValueRef n)
{
  if (has_scalef(v))
    return scalef(v, K(v, 1.0), n);
  return pow2i(v, sel(v, cmp(v, LLVMRealOLT, n, K(v, -126.0)), K(v, -126.0), n));
}

/* tanh's Taylor series, (tanh(x) - x)/x^3 to x^6: below |x| = 1/4 its
 * remainder is under 0.15 ulp of tanh */
static const double vm_tanh_taylor[4] = {-1.0 / 3, 2.0 / 15, -17.0 / 315,
                                         62.0 / 2835};

/* tanh for the backward's f (dnc_vm_with_q), sign(x) (1 - e) / (1 + e)
 * with e = exp(y), y = -2|x|, the exp the derivative's quotient took:
 * 1 - e is -expm1(y) = (1 - s) - s expm1(r), s = 2^n, from exp's own
 * reduction y = n ln2 + r and inner value q (exp(r) = 1 + r q, exp_r_q;
 * expm1(r) = r q), one fused multiply-add that cancels nothing, near 0
 * (n = 0: -r q) or away from it (1 - s >= 1/2, exact). No polynomial
 * of its own, and with vscalefps and exp's clamp (Zen) no select: 1 + e
 * is shared, the lanes below exp's range take 1 by one select where exp
 * has none (`under`), and without vscalefps a NaN lane is selected; the
 * one division goes to the divider, which the backward leaves idle. f32:
 * within 2.2 ulp of tanh measured (tests/test_kernels.c holds it to 3);
 * the form before round twenty-seven, 1 - 2 q d with the Taylor
 * series below 1/4, was 4.1 and six vector operations more. f64 keeps that form (0.89 ulp, with
 * vm_tanh's polynomial below 1, where this one measured 2.6), as does a
 * body whose exp of y is not at hand (y NULL, or no reduction of it
 * recorded): above |x| = 1/4 (1 in f64) 1 - 2 q d, below x + x^3 P(x^2),
 * P the Taylor series (vm_tanh_taylor) in f32. Without fused
 * multiply-add expm1(r) is exp's own (exp_r_q's em): 1.8 ulp on
 * x86-64-v2, where the older form was 3.4. */
static LLVMValueRef vm_tanh_q(vm *v, LLVMValueRef x, LLVMValueRef e, LLVMValueRef y)
{
  LLVMValueRef d = add(v, K(v, 1.0), e);
  LLVMValueRef under = NULL, n = NULL, r = NULL, em = NULL;
  for (int i = 0; y && !v->d && i < v->cg->nred; i++)
    if (v->cg->red[i].y == y) {
      under = v->cg->red[i].under, n = v->cg->red[i].n, r = v->cg->red[i].r;
      em = v->cg->red[i].em ? v->cg->red[i].em
           : v->cg->red[i].q ? mul(v, r, v->cg->red[i].q) : NULL;
    }
  if (em) {
    /* 1 - e = -expm1(y) = (1 - s) - s expm1(r), s = 2^n: exact but for
     * one rounding and expm1(r) = r q's own (q exp's inner value) */
    LLVMValueRef s = pow2_floor126(v, n); /* 2^-126 for less: 1 - e is 1 */
    LLVMValueRef ome = fma3(v, LLVMBuildFNeg(v->b, s, ""), em, sub(v, K(v, 1.0), s));
    if (under)
      ome = sel(v, under, K(v, 1.0), ome); /* y below exp's range: tanh 1 */
    LLVMValueRef t = vcopysign(v, vdiv(v, ome, d), x);
    if (has_scalef(v))
      return t; /* NaN made n, s and t NaN */
    return sel(v, isnan_(v, x), x, t);
  }
  LLVMValueRef q = vdiv(v, e, mul(v, d, d));
  LLVMValueRef big = fma3(v, mul(v, q, K(v, -2.0)), d, K(v, 1.0));
  return v->d ? tanh_join(v, x, vm_tanh_t64, 16, 1.0, big)
              : tanh_join(v, x, vm_tanh_taylor, 4, 0.25, big);
}

/* sigmoid for the backward's f: 1 - q d for x >= 0, q d below */
static LLVMValueRef vm_sigmoid_q(vm *v, LLVMValueRef x, LLVMValueRef e)
{
  LLVMValueRef d = add(v, K(v, 1.0), e);
  LLVMValueRef q = vdiv(v, e, mul(v, d, d));
  LLVMValueRef pos = fma3(v, LLVMBuildFNeg(v->b, q, ""), d, K(v, 1.0));
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOGE, x, K(v, 0.0)), pos, mul(v, q, d));
  return sel(v, isnan_(v, x), x, y);
}

/* tanh for bf16 and f16 results: sign(x) (-E / (2 + E)), E = expm1(-2|x|)
 * = 2^n expm1(r) + (2^n - 1) with exp's reduction and its short
 * polynomial, one form for every x (no cancellation: E is accurate
 * relative to itself near 0, and -E/(2 + E) has no subtraction). The
 * relative error is expm1(r)'s plus three roundings (measured: 2^-14.7
 * for bf16's polynomial, 2^-19.7 for f16's); below y = -30, E = -1 and
 * the result 1. y = -2|x| is given as codegen gives it to exp(y)
 * (dnc_vm_expneg) for the derivative: where that exp was built already
 * (DyT's backward, whose tanh for dgamma follows its derivative), its
 * reduction is taken (reduce_nonpos), the lanes below -104 set to E = -1
 * after; alone (the forward), y is clamped to -104 (E = -1 there too),
 * one operation where the other form has two. The same bits either way. */
static LLVMValueRef vm_tanh_lowp(vm *v, LLVMValueRef x, LLVMValueRef y)
{
  LLVMValueRef under = NULL, n, r;
  if (!reduced_nonpos(v, y, &under, &n, &r)) {
    y = sel(v, cmp(v, LLVMRealOLT, y, K(v, -104.0)), K(v, -104.0), y);
    exp_reduce(v, y, &n, &r);
  }
  /* 2^-126 instead of a smaller 2^n still gives E = -1 */
  LLVMValueRef s = pow2_floor126(v, n);
  LLVMValueRef em = fma3(v, s, expm1_r(v, r), sub(v, s, K(v, 1.0)));
  if (under)
    em = sel(v, under, K(v, -1.0), em); /* y < -104: expm1(y) is -1 */
  LLVMValueRef t = vcopysign(v, vdiv(v, em, add(v, K(v, 2.0), em)), x);
  if (has_scalef(v))
    return t; /* NaN made n, s and t NaN */
  return sel(v, isnan_(v, x), x, t);
}

/* 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|) */
static LLVMValueRef vm_sigmoid(vm *v, LLVMValueRef x, LLVMValueRef e)
{
  LLVMValueRef num = sel(v, cmp(v, LLVMRealOGE, x, K(v, 0.0)), K(v, 1.0), e);
  LLVMValueRef y = vdiv(v, num, add(v, K(v, 1.0), e));
  return sel(v, isnan_(v, x), x, y);
}

/* max(x, 0) + log1p(e), e = exp(-|x|) */
static LLVMValueRef vm_softplus(vm *v, LLVMValueRef x, LLVMValueRef e)
{
  LLVMValueRef pos = sel(v, cmp(v, LLVMRealOGT, x, K(v, 0.0)), x, K(v, 0.0));
  LLVMValueRef y = add(v, pos, vm_log1p(v, e));
  return sel(v, isnan_(v, x), x, y);
}

/* ------------------------------------------------------- erf and erfc */

/* the rounding error of a * b = hi: exact with a fused multiply-add,
 * else by Dekker's product (Veltkamp's split of a and b in halves) */
static LLVMValueRef prod_err(vm *v, LLVMValueRef a, LLVMValueRef b, LLVMValueRef hi)
{
  if (v->cg->fma)
    return fma3(v, a, b, LLVMBuildFNeg(v->b, hi, ""));
  LLVMValueRef ab[2] = {a, b}, h[2], l[2];
  for (int i = 0; i < 2; i++) {
    LLVMValueRef c = mul(v, ab[i], K(v, v->d ? 0x1p27 + 1 : 0x1p12 + 1));
    h[i] = sub(v, c, sub(v, c, ab[i]));
    l[i] = sub(v, ab[i], h[i]);
  }
  LLVMValueRef e = sub(v, mul(v, h[0], h[1]), hi);
  e = add(v, e, mul(v, h[0], l[1]));
  e = add(v, e, mul(v, l[0], h[1]));
  return add(v, e, mul(v, l[0], l[1]));
}

static LLVMValueRef vm_erf64(vm *v, LLVMValueRef x);
static LLVMValueRef vm_erfc64(vm *v, LLVMValueRef x);

/* erfc(a) for a in [0.5, 10.1]: exp(-a^2) C(1/a - m) / a, with a^2 split
 * into hi + lo so that exp sees it exactly: exp(-hi) (1 - lo) (without
 * fused multiply-add, lo = 0 made erfc 64 ulp off near 9) */
static LLVMValueRef erfc_tail(vm *v, LLVMValueRef a)
{
  LLVMValueRef s = vdiv(v, K(v, 1.0), a);
  LLVMValueRef first = cmp(v, LLVMRealOGE, s, K(v, 0.5)); /* a <= 2 */
  LLVMValueRef t = sub(v, s, sel(v, first, K(v, vm_erfc_a32_mid), K(v, vm_erfc_b32_mid)));
  LLVMValueRef c = sel(v, first, K(v, vm_erfc_a32[12]), K(v, vm_erfc_b32[12]));
  for (int i = 11; i >= 0; i--)
    c = fma3(v, c, t, sel(v, first, K(v, vm_erfc_a32[i]), K(v, vm_erfc_b32[i])));
  LLVMValueRef hi = mul(v, a, a);
  LLVMValueRef lo = prod_err(v, a, a, hi);
  LLVMValueRef ex = vm_exp(v, LLVMBuildFNeg(v->b, hi, ""));
  ex = fma3(v, ex, LLVMBuildFNeg(v->b, lo, ""), ex);
  return mul(v, ex, mul(v, c, s));
}

/* erf(x) for |x| <= 1: x (c0 + u E(u)), u = x^2, with c0 = 2/sqrt(pi)
 * carried as hi + lo */
static LLVMValueRef erf_small(vm *v, LLVMValueRef x)
{
  LLVMValueRef u = mul(v, x, x);
  LLVMValueRef e = v->lowp == 8  ? poly(v, u, vm_erf_e32_bf16, 4)
                 : v->lowp == 11 ? poly(v, u, vm_erf_e32_f16, 5)
                                 : poly(v, u, vm_erf_e32, 6);
  LLVMValueRef t = fma3(v, u, e, K(v, vm_erf_c0lo));
  return vcopysign(v, fma3(v, x, K(v, vm_erf_c0hi), mul(v, x, t)), x); /* ±0 */
}

/* erf for bf16 results: x (c0 + u E(u - 5.12)), u = x^2, for |x| <= 3.2,
 * sign(x) above (where 1 - erf(x) < 2^-17.3): one polynomial of degree
 * 8, within 2^-16.4 relative, instead of erf_small and the tail's
 * polynomial and exp side by side (Derf's bf16 layer forward 20% faster;
 * docs/performance.md, round four). c0 = 2/sqrt(pi) is carried as hi + lo
 * as in erf_small, so that tiny x are rounded as f32's erf rounds them
 * (with erf(x)/x as one polynomial, 234 bf16 inputs below 0.06 were not
 * correctly rounded). A NaN x fails the comparison and gives NaN; the
 * sign is put on last, for -0. */
static LLVMValueRef erf_bf16(vm *v, LLVMValueRef x)
{
  LLVMValueRef u = mul(v, x, x);
  LLVMValueRef e = poly(v, sub(v, u, K(v, vm_erf_w32_bf16_mid)), vm_erf_w32_bf16, 9);
  LLVMValueRef t = fma3(v, u, e, K(v, vm_erf_c0lo));
  LLVMValueRef y = fma3(v, x, K(v, vm_erf_c0hi), mul(v, x, t));
  y = sel(v, cmp(v, LLVMRealOGT, vabs(v, x), K(v, 3.2)), K(v, 1.0), y);
  return vcopysign(v, y, x); /* ±0; NaN stays NaN */
}

/* erf's table (tools/remez.py, erf_table): |x| clamped to 3.95 (erf is 1
 * there in f32; a NaN passes), piece i = floor(8|x|) of 32 (at most 31:
 * no index clamp; a NaN reads piece 0, where t is NaN), t = |x| -
 * center[i] (exact: Sterbenz), P(t) by Horner with p0 for P's first
 * coefficient in piece 0; *i the piece, *c0 its constant term */
static LLVMValueRef erf_pieces(vm *v, LLVMValueRef x, float p0,
                               LLVMValueRef *t, LLVMValueRef *i,
                               LLVMValueRef *c0)
{
  enum { NP = sizeof vm_erf_tab_p / sizeof vm_erf_tab_p[0] };
  float p[NP][32];
  memcpy(p, vm_erf_tab_p, sizeof p);
  p[0][0] = p0;
  *t = table_arg(v, x, 3.95, 8.0, vm_erf_tab_center, i);
  *c0 = tab(v, vm_erf_tab_c0, *i);
  return table_poly(v, (const float(*)[32])p, NP, *t, *i);
}

/* f32 erf on 16 lanes (AVX-512), from erf_pieces: fma(t, c0hi, t P) in
 * piece 0 (P's first coefficient is 2/sqrt(pi)'s low part), c0 + t P
 * above, as fma(t, A, B) with A and B chosen by piece 0's mask. No exp
 * and no division: 1.000 ulp over every float (at x = 1.2e-38, where x
 * c0's low part is subnormal; 1.450 before round five). Round
 * eighteen's 32 pieces of degree 5 take 22 operations a vector where
 * round five's 16 of degree 7 took 28 (docs/performance.md). */
static LLVMValueRef vm_erf_table(vm *v, LLVMValueRef x)
{
  LLVMValueRef t, i, c0;
  LLVMValueRef p = erf_pieces(v, x, vm_erf_tab_p[0][0], &t, &i, &c0);
  LLVMValueRef z = LLVMBuildICmp(v->b, LLVMIntEQ, i, KI(v, 0), "");
  LLVMValueRef A = sel(v, z, K(v, vm_erf_c0hi), p);
  LLVMValueRef B = sel(v, z, mul(v, t, p), c0);
  return vcopysign(v, fma3(v, t, A, B), x);
}

/* f32 erf for the layer backward's dγ (dnc_vm_erf_dgamma): the same
 * pieces in one form, c0 + t P(t), piece 0's first coefficient 2/sqrt(pi)
 * as one float (the forward carries its low part too), which costs that
 * piece about an ulp: within 2.5 ulp of erf (tests/test_kernels.c), a dγ
 * term's error as dnc_vm_with_q's tanh; 18 operations a vector. */
static LLVMValueRef vm_erf_table_dgamma(vm *v, LLVMValueRef x)
{
  LLVMValueRef t, i, c0;
  float p0 = (float)((double)vm_erf_c0hi + (double)vm_erf_tab_p[0][0]);
  LLVMValueRef p = erf_pieces(v, x, p0, &t, &i, &c0);
  return vcopysign(v, fma3(v, t, p, c0), x);
}

/* erf(x) = erf_small for |x| <= 1, else sign(x) (1 - exp(-a^2) F(a)) for
 * a = |x| up to 3.92, where erf rounds to 1: erfc needs only ~1e-7 of
 * relative accuracy there, so one polynomial in a serves, without a
 * division */
static LLVMValueRef vm_erf(vm *v, LLVMValueRef x)
{
  if (v->d)
    return vm_erf64(v, x);
  /* f16's math takes f32's table too: its own form, erf_small and the
   * tail's polynomial and exp side by side, took Derf's f16 layer forward
   * 4.3 ns a vector in cache against 2.9 (round twenty-two); bf16's one
   * polynomial is cheaper than the table */
  if (v->lowp != 8 && table_ok(v))
    return vm_erf_table(v, x);
  if (v->lowp == 8)
    return erf_bf16(v, x);
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef small = erf_small(v, x);
  LLVMValueRef a = clampf(v, ax, 1.0, 3.92);
  LLVMValueRef at = sub(v, a, K(v, 2.46));
  LLVMValueRef f = v->lowp == 11 ? poly(v, at, vm_erf_t32_f16, 9)
                                 : poly(v, at, vm_erf_t32, 9);
  /* exp(-x^2) from x itself, not the clamped a (the same where big is
   * taken), built as the derivative's exp(-(u^2)) is (lw_math in
   * codegen.c), so that a kernel with both computes it once */
  LLVMValueRef ec = mul(v, vm_exp_in(v, LLVMBuildFNeg(v->b, mul(v, x, x), ""), 0, EXP_NONPOS),
                         f);
  LLVMValueRef big = vcopysign(v, sub(v, K(v, 1.0), ec), x);
  big = sel(v, cmp(v, LLVMRealOGT, ax, K(v, 3.92)), vcopysign(v, K(v, 1.0), x), big);
  /* a NaN x takes big, which is NaN: the clamp and the comparisons pass
   * it through */
  return sel(v, cmp(v, LLVMRealOLE, ax, K(v, 1.0)), small, big);
}

/* erfc(x) = 1 - x E(x^2) for |x| < 0.5; the tail for x >= 0.5 (0 beyond
 * 10.1, where erfc rounds to 0); 2 - tail(-x) for x <= -0.5 */
static LLVMValueRef vm_erfc(vm *v, LLVMValueRef x)
{
  if (v->d)
    return vm_erfc64(v, x);
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef small = sub(v, K(v, 1.0), erf_small(v, x));
  LLVMValueRef tail = erfc_tail(v, clampf(v, ax, 0.5, 10.1));
  tail = sel(v, cmp(v, LLVMRealOGT, ax, K(v, 10.1)), K(v, 0.0), tail);
  LLVMValueRef big = sel(v, cmp(v, LLVMRealOGT, x, K(v, 0.0)), tail,
                         sub(v, K(v, 2.0), tail));
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOLT, ax, K(v, 0.5)), small, big);
  return sel(v, isnan_(v, x), x, y);
}

/* f64 -------------------------------------------------------------- */

/* a where pa, else b where pb, else c where pc, else d */
static LLVMValueRef pick4(vm *v, LLVMValueRef pa, LLVMValueRef pb, LLVMValueRef pc,
                          double a, double b, double c, double d)
{
  return sel(v, pa, K(v, a), sel(v, pb, K(v, b), sel(v, pc, K(v, c), K(v, d))));
}

/* erfc(a) for a in [0.5, 27.3] in f64: exp(-a^2) C(1/a - m) / a as in
 * f32, C in four pieces of 1/a ([1, 2], [1/2, 1], [1/4, 1/2], below),
 * the coefficients chosen per lane */
static LLVMValueRef erfc_tail64(vm *v, LLVMValueRef a)
{
  LLVMValueRef s = vdiv(v, K(v, 1.0), a);
  LLVMValueRef pa = cmp(v, LLVMRealOGE, s, K(v, 1.0));
  LLVMValueRef pb = cmp(v, LLVMRealOGE, s, K(v, 0.5));
  LLVMValueRef pc = cmp(v, LLVMRealOGE, s, K(v, 0.25));
  LLVMValueRef t = sub(v, s, pick4(v, pa, pb, pc, vm_erfc_a64_mid, vm_erfc_b64_mid,
                                   vm_erfc_c64_mid, vm_erfc_d64_mid));
  LLVMValueRef c = pick4(v, pa, pb, pc, vm_erfc_a64[18], vm_erfc_b64[18],
                         vm_erfc_c64[18], vm_erfc_d64[18]);
  for (int i = 17; i >= 0; i--)
    c = fma3(v, c, t, pick4(v, pa, pb, pc, vm_erfc_a64[i], vm_erfc_b64[i],
                            vm_erfc_c64[i], vm_erfc_d64[i]));
  /* C/a as c (s + s_lo), s_lo = (1 - s a)/a: one rounding, not two */
  LLVMValueRef slo = mul(v, fma3(v, LLVMBuildFNeg(v->b, s, ""), a, K(v, 1.0)), s);
  LLVMValueRef cs = fma3(v, c, s, mul(v, c, slo));
  /* exp(-a^2) 2^64, so that the product is rounded once into the
   * subnormals, by the last scaling (a <= 27.3: a^2 within exp's range) */
  LLVMValueRef hi = mul(v, a, a);
  LLVMValueRef lo = prod_err(v, a, a, hi);
  LLVMValueRef p = mul(v, vm_exp_adj(v, LLVMBuildFNeg(v->b, hi, ""), 64), cs);
  p = fma3(v, p, LLVMBuildFNeg(v->b, lo, ""), p); /* exp(-lo) = 1 - lo */
  return mul(v, p, K(v, 0x1p-64));
}

/* erf(x) for |x| <= 1: x c0 + x (c0lo + u E(u)); erfc: 1 - x c0 with one
 * rounding, then the rest */
static LLVMValueRef erf_small64(vm *v, LLVMValueRef x, int is_erfc)
{
  LLVMValueRef u = mul(v, x, x);
  LLVMValueRef t = fma3(v, u, poly(v, u, vm_erf_e64, 12), K(v, vm_erf_c0lo64));
  if (is_erfc) {
    LLVMValueRef nx = LLVMBuildFNeg(v->b, x, "");
    return fma3(v, nx, t, fma3(v, nx, K(v, vm_erf_c0hi64), K(v, 1.0)));
  }
  return vcopysign(v, fma3(v, x, K(v, vm_erf_c0hi64), mul(v, x, t)), x); /* ±0 */
}

/* erf = sign(x) (1 - erfc_tail(|x|)) from 1 to 6, where it rounds to 1 */
static LLVMValueRef vm_erf64(vm *v, LLVMValueRef x)
{
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef small = erf_small64(v, x, 0);
  LLVMValueRef tail = erfc_tail64(v, clampf(v, ax, 1.0, 6.0));
  LLVMValueRef big = vcopysign(v, sub(v, K(v, 1.0), tail), x);
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOLE, ax, K(v, 1.0)), small, big);
  return sel(v, isnan_(v, x), x, y);
}

/* erfc: 1 - erf for |x| < 0.5, the tail above (0 beyond 27.3, where
 * erfc is below half the smallest subnormal), 2 - tail(-x) below -0.5 */
static LLVMValueRef vm_erfc64(vm *v, LLVMValueRef x)
{
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef small = erf_small64(v, x, 1);
  LLVMValueRef tail = erfc_tail64(v, clampf(v, ax, 0.5, 27.3));
  tail = sel(v, cmp(v, LLVMRealOGT, ax, K(v, 27.3)), K(v, 0.0), tail);
  LLVMValueRef big = sel(v, cmp(v, LLVMRealOGT, x, K(v, 0.0)), tail,
                         sub(v, K(v, 2.0), tail));
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOLT, ax, K(v, 0.5)), small, big);
  return sel(v, isnan_(v, x), x, y);
}

/* ------------------------------------------- sinh, cosh, asinh, atan */

/* |x| < 1: x + x^3 S(x^2); above: sign(x) (h - 1/(4h)), h = exp(|x|)/2 */
static LLVMValueRef vm_sinh(vm *v, LLVMValueRef x)
{
  LLVMValueRef ax = vabs(v, x);
  LLVMValueRef u = mul(v, x, x);
  LLVMValueRef small = fma3(v, mul(v, x, u),
                            v->d ? poly(v, u, vm_sinh_s64, 7) : poly(v, u, vm_sinh_s32, 5), x);
  LLVMValueRef h = vm_exp_adj(v, ax, -1);
  LLVMValueRef big = sub(v, h, vdiv(v, K(v, 0.25), h));
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOLT, ax, K(v, 1.0)), small, big);
  return sel(v, isnan_(v, x), x, vcopysign(v, y, x));
}

/* h + 1/(4h), h = exp(|x|)/2: no cancellation, and finite up to 89.4
 * (f64: 710.4) */
static LLVMValueRef vm_cosh(vm *v, LLVMValueRef x)
{
  LLVMValueRef h = vm_exp_adj(v, vabs(v, x), -1);
  LLVMValueRef y = add(v, h, vdiv(v, K(v, 0.25), h));
  return sel(v, isnan_(v, x), x, y);
}

/* sign(x) log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x|; log(a) + ln2
 * above 2^12 (f64: 2^28), where 1/(4a^2) no longer matters (and a^2
 * would overflow further up); x below 2^-12 (2^-28), where a^3/6 does
 * not */
static LLVMValueRef vm_asinh(vm *v, LLVMValueRef x)
{
  LLVMValueRef a = vabs(v, x);
  double big = v->d ? 0x1p28 : 0x1p12, tiny = v->d ? 0x1p-28 : 0x1p-12;
  LLVMValueRef mid = sel(v, cmp(v, LLVMRealOGT, a, K(v, big)), K(v, 1.0), a);
  LLVMValueRef a2 = mul(v, mid, mid);
  LLVMValueRef sq = call_intr(v, "llvm.sqrt", (LLVMValueRef[]){add(v, K(v, 1.0), a2)}, 1);
  LLVMValueRef ym = vm_log1p(v, add(v, mid, vdiv(v, a2, add(v, K(v, 1.0), sq))));
  LLVMValueRef yl = add(v, vm_log(v, a), K(v, v->d ? 0x1.62e42fefa39efp-1 : 0x1.62e430p-1));
  LLVMValueRef y = sel(v, cmp(v, LLVMRealOGT, a, K(v, big)), yl, ym);
  y = sel(v, cmp(v, LLVMRealOLT, a, K(v, tiny)), a, y);
  return sel(v, isnan_(v, x), x, vcopysign(v, y, x));
}

/* m sqrt(1 + r^2), m = max(|a|, |b|), r = min(|a|, |b|) / m: no
 * overflow or underflow of a^2; 0 where both are 0, inf where either is
 * inf (NaN or not: C's hypot), NaN where one is NaN and neither inf
 * (hypot(NaN, 0) too: m is then 0 and n NaN) */
static LLVMValueRef vm_hypot(vm *v, LLVMValueRef a, LLVMValueRef b)
{
  LLVMValueRef aa = vabs(v, a), ab = vabs(v, b);
  LLVMValueRef agt = cmp(v, LLVMRealOGT, aa, ab);
  LLVMValueRef m = sel(v, agt, aa, ab), n = sel(v, agt, ab, aa);
  LLVMValueRef r = vdiv(v, n, m);
  LLVMValueRef h = mul(v, m, call_intr(v, "llvm.sqrt",
                                       (LLVMValueRef[]){fma3(v, r, r, K(v, 1.0))}, 1));
  h = sel(v, cmp(v, LLVMRealOEQ, add(v, aa, ab), K(v, 0.0)), m, h);
  LLVMValueRef inf = LLVMBuildOr(v->b, cmp(v, LLVMRealOEQ, aa, K(v, INFINITY)),
                                 cmp(v, LLVMRealOEQ, ab, K(v, INFINITY)), "");
  return sel(v, inf, K(v, INFINITY), h);
}

/* a = |x|: a + a^3 A(a^2) up to 1; pi/2 - atan(1/a) above (pi/2 as two
 * floats) */
static LLVMValueRef vm_atan64(vm *v, LLVMValueRef x);

static LLVMValueRef vm_atan(vm *v, LLVMValueRef x)
{
  if (v->d)
    return vm_atan64(v, x);
  LLVMValueRef a = vabs(v, x);
  LLVMValueRef inv = cmp(v, LLVMRealOGT, a, K(v, 1.0));
  LLVMValueRef y = sel(v, inv, vdiv(v, K(v, 1.0), a), a);
  LLVMValueRef u = mul(v, y, y);
  LLVMValueRef t = fma3(v, mul(v, y, u), poly(v, u, vm_atan_a32, 11), y);
  LLVMValueRef far = add(v, sub(v, K(v, 0x1.921fb6p+0), t), K(v, -0x1.777a5cp-25));
  LLVMValueRef r = sel(v, inv, far, t);
  return sel(v, isnan_(v, x), x, vcopysign(v, r, x));
}

/* f64: a = |x| reduced to |t| <= tan(pi/8), where a polynomial of degree
 * 11 in t^2 suffices (on [0, 1] it would need twice that): t = a below
 * tan(pi/8), (a - 1)/(a + 1) (plus pi/4) up to tan(3pi/8), -1/a (plus
 * pi/2) above, one division for all three (fdlibm's atan, with three
 * ranges instead of five). The quotient's rounding error t_lo (from the
 * exact residual of a fused multiply-add and the roundings of a +- 1) and
 * the rounding error of base + t (Fast2Sum: |base| >= |t|) join the small
 * terms, so that t near -tan(pi/8), where pi/4 + atan(t) loses a bit,
 * costs nothing. */
static LLVMValueRef vm_atan64(vm *v, LLVMValueRef x)
{
  LLVMValueRef a = vabs(v, x);
  LLVMValueRef mid = cmp(v, LLVMRealOGT, a, K(v, 0x1.a827999fcef32p-2));  /* tan(pi/8) */
  LLVMValueRef far = cmp(v, LLVMRealOGT, a, K(v, 0x1.3504f333f9de6p+1)); /* tan(3pi/8) */
  /* a - 1 rounds below 1/2 (Fast2Sum gives its error, 0 above 1) */
  LLVMValueRef am1 = sub(v, a, K(v, 1.0));
  LLVMValueRef nlo = sel(v, mid, sel(v, far, K(v, 0.0), sub(v, a, add(v, am1, K(v, 1.0)))),
                         K(v, 0.0));
  LLVMValueRef num = sel(v, far, K(v, -1.0), sel(v, mid, am1, a));
  LLVMValueRef a1 = add(v, a, K(v, 1.0));
  LLVMValueRef bb = sub(v, a1, a); /* TwoSum: a + 1 = a1 + a1lo */
  LLVMValueRef a1lo = add(v, sub(v, a, sub(v, a1, bb)), sub(v, K(v, 1.0), bb));
  /* a beyond 2^60 as 2^60: pi/2 either way, and 1/a stays finite */
  LLVMValueRef ac = sel(v, cmp(v, LLVMRealOGT, a, K(v, 0x1p60)), K(v, 0x1p60), a);
  LLVMValueRef den = sel(v, far, ac, sel(v, mid, a1, K(v, 1.0)));
  LLVMValueRef dlo = sel(v, mid, sel(v, far, K(v, 0.0), a1lo), K(v, 0.0));
  LLVMValueRef rden = vdiv(v, K(v, 1.0), den);
  LLVMValueRef t = mul(v, num, rden);
  /* (num + nlo)/(den + dlo) = t + (num - t den + nlo - t dlo)/den, to
   * first order */
  LLVMValueRef rho = add(v, fma3(v, LLVMBuildFNeg(v->b, t, ""), den, num), nlo);
  LLVMValueRef tlo = mul(v, fma3(v, LLVMBuildFNeg(v->b, t, ""), dlo, rho), rden);
  LLVMValueRef hi = sel(v, far, K(v, 0x1.921fb54442d18p+0),
                        sel(v, mid, K(v, 0x1.921fb54442d18p-1), K(v, 0.0)));
  LLVMValueRef lo = sel(v, far, K(v, 0x1.1a62633145c07p-54),
                        sel(v, mid, K(v, 0x1.1a62633145c07p-55), K(v, 0.0)));
  LLVMValueRef u = mul(v, t, t);
  LLVMValueRef tail = mul(v, mul(v, t, u), poly(v, u, vm_atan_a64, 12));
  LLVMValueRef s = add(v, hi, t);
  LLVMValueRef err = add(v, sub(v, hi, s), t);
  /* atan(t + tlo) = atan(t) + tlo/(1 + t^2) */
  LLVMValueRef corr = fma3(v, LLVMBuildFNeg(v->b, tlo, ""), u, tlo);
  LLVMValueRef r = add(v, s, add(v, add(v, add(v, err, lo), corr), tail));
  return sel(v, isnan_(v, x), x, vcopysign(v, r, x));
}

/* ------------------------------------------------------------ sin, cos */

static LLVMValueRef lane_by_lane(dnc_cg *cg, int op, LLVMValueRef a,
                                 LLVMValueRef b);

/* x = n pi/2 + r for |x| below `bound`, with pi/2 in parts (from the
 * exact value, mpmath) such that the leading products are exact: with
 * fused multiply-add, pi/2 rounded to a float and two float remainders,
 * n < 2^17; without, three 12-bit parts and a float, n < 2^10. f64 (see
 * trig_reduce64): with fused multiply-add three doubles, each the rounding
 * of what the ones before leave (x - n C1 is exact for any n here), up
 * to |x| = 2^30, where n from the rounded x 2/pi still leaves r inside
 * the polynomials' interval (pi/4 and a thousandth); without, three
 * 32-bit parts and a double, n < 2^20 (tools/remez.py makes both).
 * Inputs beyond take the scalar path (vm_sincos). */
static double trig_bound(vm *v)
{
  return v->d ? (v->cg->fma ? 0x1p30 : 0x1p20) : (v->cg->fma ? 0x1p17 : 0x1p10);
}

static void trig_reduce(vm *v, LLVMValueRef x, LLVMValueRef *n, LLVMValueRef *r)
{
  static const double fused[] = {0x1.921fb6p+0, -0x1.777a5cp-25, -0x1.ee59dap-50};
  static const double split[] = {0x1.92p+0, 0x1.fb4p-12, 0x1.444p-24, 0x1.68c234p-39};
  const double *c = v->cg->fma ? fused : split;
  int nc = v->cg->fma ? 3 : 4;
  const double shifter = 0x1.8p23;
  LLVMValueRef z = fma3(v, x, K(v, 0x1.45f306p-1), K(v, shifter)); /* 2/pi */
  *n = sub(v, z, K(v, shifter));
  LLVMValueRef m = LLVMBuildFNeg(v->b, *n, "");
  LLVMValueRef t = x;
  for (int i = 0; i < nc; i++)
    t = fma3(v, m, K(v, c[i]), t);
  *r = t;
}

/* f64: r carried as rh + rl, so that its roundings (one per part of
 * pi/2 after the first) cost nothing: each n * part is exact, or its
 * error is (a fused multiply-add gives it), and each subtraction is a
 * TwoSum (Knuth) whose error goes to rl; the last part only to rl. */
static void trig_reduce64(vm *v, LLVMValueRef x, LLVMValueRef *n, LLVMValueRef *rh,
                          LLVMValueRef *rl)
{
  const double *c = v->cg->fma ? vm_pio2_fma64 : vm_pio2_split64;
  int nc = v->cg->fma ? 3 : 4;
  LLVMValueRef z = fma3(v, x, K(v, 0x1.45f306dc9c883p-1), K(v, 0x1.8p52)); /* 2/pi */
  *n = sub(v, z, K(v, 0x1.8p52));
  LLVMValueRef m = LLVMBuildFNeg(v->b, *n, "");
  LLVMValueRef t = fma3(v, m, K(v, c[0]), x); /* exact */
  LLVMValueRef lo = K(v, 0.0);
  for (int i = 1; i < nc - 1; i++) {
    LLVMValueRef p = mul(v, *n, K(v, c[i]));
    if (v->cg->fma)
      lo = sub(v, lo, prod_err(v, *n, K(v, c[i]), p));
    LLVMValueRef s = sub(v, t, p);
    LLVMValueRef bb = sub(v, s, t);
    LLVMValueRef e = add(v, sub(v, t, sub(v, s, bb)), sub(v, LLVMBuildFNeg(v->b, p, ""), bb));
    lo = add(v, lo, e);
    t = s;
  }
  lo = fma3(v, m, K(v, c[nc - 1]), lo);
  *rh = add(v, t, lo);
  *rl = sub(v, lo, sub(v, *rh, t));
}

/* beyond the bound: the scalar functions, lane by lane */
typedef struct trig_args {
  LLVMValueRef x;
  int is_cos;
} trig_args;

static LLVMValueRef trig_scalar(vm *v, const void *arg)
{
  const trig_args *t = arg;
  return lane_by_lane(v->cg, t->is_cos ? OP_COS : OP_SIN, t->x, NULL);
}

/* sin (cos: is_cos) from the quadrant n mod 4 and r in [-pi/4, pi/4] */
static LLVMValueRef vm_sincos(vm *v, LLVMValueRef x, int is_cos)
{
  LLVMValueRef n, r;
  double bound = trig_bound(v);
  /* the lanes beyond the bound are replaced below; reduce 0 for them */
  LLVMValueRef xs = sel(v, cmp(v, LLVMRealOLT, vabs(v, x), K(v, bound)), x, K(v, 0.0));
  LLVMValueRef sn, cs;
  if (v->d) {
    /* sin(rh + rl) = rh + (rh^3 S + rl (1 - u/2)); cos(rh + rl) = w +
     * (w_lo + u^2 C - rh rl), w = 1 - u/2 with its rounding error w_lo
     * (that of u = rh^2 included), as fdlibm's kernels do */
    LLVMValueRef rh, rl;
    trig_reduce64(v, xs, &n, &rh, &rl);
    LLVMValueRef u = mul(v, rh, rh);
    LLVMValueRef hu = mul(v, K(v, 0.5), u);
    LLVMValueRef st = fma3(v, mul(v, rh, u), poly(v, u, vm_sin_s64, 7),
                           fma3(v, LLVMBuildFNeg(v->b, rl, ""), hu, rl));
    sn = add(v, rh, st);
    LLVMValueRef w = sub(v, K(v, 1.0), hu);
    LLVMValueRef wlo = sub(v, sub(v, sub(v, K(v, 1.0), w), hu),
                           mul(v, K(v, 0.5), prod_err(v, rh, rh, u)));
    LLVMValueRef ct = fma3(v, mul(v, u, u), poly(v, u, vm_cos_c64, 7),
                           fma3(v, LLVMBuildFNeg(v->b, rh, ""), rl, wlo));
    cs = add(v, w, ct);
  } else {
    trig_reduce(v, xs, &n, &r);
    LLVMValueRef u = mul(v, r, r);
    sn = fma3(v, mul(v, r, u), poly(v, u, vm_sin_s32, 5), r);
    cs = add(v, K(v, 1.0),
             fma3(v, mul(v, u, u), poly(v, u, vm_cos_c32, 5), mul(v, K(v, -0.5), u)));
  }
  LLVMValueRef q = LLVMBuildFPToSI(v->b, n, v->it, "");
  if (is_cos)
    q = LLVMBuildAdd(v->b, q, KI(v, 1), "");
  LLVMValueRef odd = LLVMBuildICmp(v->b, LLVMIntNE,
                                   LLVMBuildAnd(v->b, q, KI(v, 1), ""), KI(v, 0), "");
  LLVMValueRef neg = LLVMBuildICmp(v->b, LLVMIntNE,
                                   LLVMBuildAnd(v->b, q, KI(v, 2), ""), KI(v, 0), "");
  LLVMValueRef y = sel(v, odd, cs, sn);
  y = sel(v, neg, LLVMBuildFNeg(v->b, y, ""), y);
  if (!is_cos) /* sin(±0) = ±0 */
    y = sel(v, cmp(v, LLVMRealOEQ, x, K(v, 0.0)), x, y);
  y = sel(v, cmp(v, LLVMRealUNO, x, x), x, y);
  /* |x| at or beyond the bound (inf too): the scalar functions, for the
   * whole vector, behind one branch that ordinary inputs never take */
  LLVMValueRef big = cmp(v, LLVMRealOGE, vabs(v, x), K(v, bound));
  trig_args ta = {x, is_cos};
  return rare_lanes(v, big, y, trig_scalar, &ta, "trig.big");
}

/* ------------------------------------------------------------------ pow */

/* f32 pow(x, y) = exp(y log|x|) computed in double on the same lanes
 * (LLVM splits the wider vectors): the error of y log|x| is then below
 * 2^-44 relative where the result is a finite float, so the result is
 * the exact value rounded to float but for a rare double rounding, as
 * glibc's powf does (Szabolcs Nagy's, with tables). The sign, and the
 * cases of C99 Annex F that exp and log do not give by themselves, are
 * selects on x and y in float. */
static LLVMValueRef vm_pow32(vm *v, LLVMValueRef x, LLVMValueRef y)
{
  LLVMTypeRef i64 = v->cg->i64;
  vm d = {v->cg, v->b, LLVMVectorType(v->cg->f64t, v->cg->lanes),
          LLVMVectorType(i64, v->cg->lanes), 1, i64, 0};
  LLVMValueRef xd = LLVMBuildFPExt(v->b, x, d.ft, "");
  LLVMValueRef yd = LLVMBuildFPExt(v->b, y, d.ft, "");
  /* log(0) = -inf and log(inf) = inf give 0 and inf through exp */
  LLVMValueRef z = mul(&d, yd, vm_log(&d, vabs(&d, xd)));
  LLVMValueRef r = LLVMBuildFPTrunc(v->b, vm_exp(&d, z), v->ft, "");
  LLVMValueRef ty = call_intr(v, "llvm.trunc", &y, 1);
  LLVMValueRef yint = cmp(v, LLVMRealOEQ, ty, y); /* ±inf included */
  LLVMValueRef hy = mul(v, y, K(v, 0.5));
  LLVMValueRef yodd = LLVMBuildAnd(v->b, yint,
                                   cmp(v, LLVMRealUNE, call_intr(v, "llvm.trunc", &hy, 1), hy), "");
  /* x with its sign bit set (-0 and -inf too) and y odd: -|x|^y */
  LLVMValueRef xneg = cmp(v, LLVMRealOLT, vcopysign(v, K(v, 1.0), x), K(v, 0.0));
  r = sel(v, LLVMBuildAnd(v->b, yodd, xneg, ""), LLVMBuildFNeg(v->b, r, ""), r);
  /* finite x < 0, finite y not an integer: NaN */
  LLVMValueRef bad = LLVMBuildAnd(v->b, cmp(v, LLVMRealOLT, x, K(v, 0.0)),
                                  cmp(v, LLVMRealOGT, x, K(v, -INFINITY)), "");
  LLVMValueRef yfin = cmp(v, LLVMRealOLT, vabs(v, y), K(v, INFINITY));
  bad = LLVMBuildAnd(v->b, bad, LLVMBuildAnd(v->b, yfin, LLVMBuildNot(v->b, yint, ""), ""), "");
  r = sel(v, bad, K(v, NAN), r);
  /* 1 for y = ±0 (x NaN too), x = 1 (y NaN too), x = -1 with y = ±inf,
   * where y log|x| would be NaN */
  LLVMValueRef one = LLVMBuildOr(v->b, cmp(v, LLVMRealOEQ, y, K(v, 0.0)),
                                 cmp(v, LLVMRealOEQ, x, K(v, 1.0)), "");
  one = LLVMBuildOr(v->b, one,
                    LLVMBuildAnd(v->b, cmp(v, LLVMRealOEQ, x, K(v, -1.0)),
                                 cmp(v, LLVMRealOEQ, vabs(v, y), K(v, INFINITY)), ""), "");
  return sel(v, one, K(v, 1.0), r);
}

/* ------------------------------------------------------------ fallback */

static LLVMValueRef scalar_fn(dnc_cg *cg, int op, LLVMTypeRef *ft)
{
  const char *name = dnc_rt_name(op, cg->f64);
  DNC_ASSERT(name);
  LLVMTypeRef args[2] = {cg->ct, cg->ct};
  *ft = LLVMFunctionType(cg->ct, args, (unsigned)dnc_ops[op].arity, 0);
  LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
  if (!fn) {
    fn = LLVMAddFunction(cg->mod, name, *ft);
    unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, kind, 0));
    kind = LLVMGetEnumAttributeKindForName("memory", 6);
    /* memory(none): the functions read and write nothing but registers */
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, kind, 0));
  }
  return fn;
}

/* Each lane calls the scalar function of rtmath.c. */
static LLVMValueRef lane_by_lane(dnc_cg *cg, int op, LLVMValueRef a,
                                 LLVMValueRef b)
{
  LLVMTypeRef ft;
  LLVMValueRef fn = scalar_fn(cg, op, &ft);
  LLVMValueRef r = LLVMGetPoison(cg->vt);
  for (unsigned l = 0; l < cg->lanes; l++) {
    LLVMValueRef idx = LLVMConstInt(cg->i32, l, 0);
    LLVMValueRef args[2] = {LLVMBuildExtractElement(cg->b, a, idx, ""),
                            b ? LLVMBuildExtractElement(cg->b, b, idx, "")
                              : NULL};
    LLVMValueRef v = LLVMBuildCall2(cg->b, ft, fn, args, b ? 2 : 1, "");
    r = LLVMBuildInsertElement(cg->b, r, v, idx, "");
  }
  return r;
}

static vm vm_of(dnc_cg *cg)
{
  LLVMTypeRef ie = cg->f64 ? cg->i64 : cg->i32;
  vm v = {cg, cg->b, cg->vt, LLVMVectorType(ie, cg->lanes), cg->f64, ie,
          cg->f64 ? 0 : cg->lowp};
  return v;
}

LLVMValueRef dnc_vm_expneg(dnc_cg *cg, LLVMValueRef y)
{
  vm v = vm_of(cg);
  return vm_exp_in(&v, y, 0, EXP_NONPOS);
}

LLVMValueRef dnc_vm_with_e(dnc_cg *cg, int op, LLVMValueRef x, LLVMValueRef e,
                           LLVMValueRef y)
{
  vm v = vm_of(cg);
  switch (op) {
  case OP_TANH: return v.lowp ? vm_tanh_lowp(&v, x, y) : vm_tanh(&v, x, e);
  case OP_SIGMOID: return vm_sigmoid(&v, x, e);
  default: return vm_softplus(&v, x, e);
  }
}

LLVMValueRef dnc_vm_with_q(dnc_cg *cg, int op, LLVMValueRef x, LLVMValueRef e,
                          LLVMValueRef y)
{
  vm v = vm_of(cg);
  DNC_ASSERT(!v.lowp && (op == OP_TANH || op == OP_SIGMOID));
  return op == OP_TANH ? vm_tanh_q(&v, x, e, y) : vm_sigmoid_q(&v, x, e);
}

LLVMValueRef dnc_vm_emit(dnc_cg *cg, int op, LLVMValueRef a, LLVMValueRef b)
{
  if (!dnc_vm_native(op, cg->f64))
    return lane_by_lane(cg, op, a, b);
  vm v = vm_of(cg);
  switch (op) {
  case OP_EXP: return vm_exp(&v, a);
  case OP_EXPM1: return vm_expm1(&v, a);
  case OP_LOG: return vm_log(&v, a);
  case OP_LOG1P: return vm_log1p(&v, a);
  case OP_TANH:
  case OP_SIGMOID:
  case OP_SOFTPLUS: {
    LLVMValueRef k = K(&v, op == OP_TANH ? 2.0 : 1.0);
    LLVMValueRef y = LLVMBuildFNeg(cg->b, mul(&v, vabs(&v, a), k), "");
    if (v.lowp && op == OP_TANH)
      return vm_tanh_lowp(&v, a, y);
    LLVMValueRef e = vm_exp_in(&v, y, 0, EXP_NONPOS);
    return dnc_vm_with_e(cg, op, a, e, y);
  }
  case OP_ERF: return vm_erf(&v, a);
  case OP_SINH: return vm_sinh(&v, a);
  case OP_COSH: return vm_cosh(&v, a);
  case OP_ASINH: return vm_asinh(&v, a);
  case OP_ATAN: return vm_atan(&v, a);
  case OP_SIN: return vm_sincos(&v, a, 0);
  case OP_COS: return vm_sincos(&v, a, 1);
  case OP_POW: return vm_pow32(&v, a, b);
  case OP_ERFC: return vm_erfc(&v, a);
  case OP_HYPOT: return vm_hypot(&v, a, b);
  default: DNC_ASSERT(!"an op without vector math"); return NULL;
  }
}

LLVMValueRef dnc_vm_erf_dgamma(dnc_cg *cg, LLVMValueRef x)
{
  vm v = vm_of(cg);
  return v.lowp != 8 && table_ok(&v) ? vm_erf_table_dgamma(&v, x) : NULL;
}

LLVMValueRef dnc_vm_div(dnc_cg *cg, LLVMValueRef a, LLVMValueRef b,
                        int b_normal)
{
  vm v = vm_of(cg);
  if (!estimates_ok(&v))
    return LLVMBuildFDiv(cg->b, a, b, "");
  /* no subnormal divisor, no branch for one (div_est's) */
  return b_normal ? mul(&v, a, rcp14(&v, b)) : div_est(&v, a, b);
}

/* f32's rsqrt where the target has DNC_TARGET_RSQRT (16-lane AVX-512 with
 * FMA): the estimate r0 and one Newton step, written so that the step's own
 * roundings are scaled by the estimate's error: e = 1 - (x r0) r0 (fma),
 * r = r0 + (r0 / 2) e (fma). 1.04 ulp at most over every float, where
 * 1 / sqrt(x) was 1.49 (its two roundings), with half as many results not
 * correctly rounded; and no divider: vdivps and vsqrtps share one that
 * takes 11 cycles a vector, and it bounded DyISRU's f32 kernels (rewrite.c,
 * docs/performance.md, round nine). +-0 and +inf: r0 is exact (+-inf, 0)
 * and e NaN, so r0 is taken; negative and NaN x: r0 is NaN. */
static LLVMValueRef rsqrt_refined(vm *v, LLVMValueRef x)
{
  LLVMValueRef r0 = rsqrt_est(v, x);
  LLVMValueRef t = mul(v, x, r0);
  LLVMValueRef e = fma3(v, LLVMBuildFNeg(v->b, t, ""), r0, K(v, 1.0));
  return sel(v, cmp(v, LLVMRealUNO, e, e), r0,
             fma3(v, mul(v, r0, K(v, 0.5)), e, r0));
}

LLVMValueRef dnc_vm_rsqrt(dnc_cg *cg, LLVMValueRef x)
{
  vm v = vm_of(cg);
  if (estimates_ok(&v))
    return rsqrt_est(&v, x);
  if (!v.lowp && table_ok(&v) && (cg->target & DNC_TARGET_RSQRT))
    return rsqrt_refined(&v, x);
  return NULL;
}
