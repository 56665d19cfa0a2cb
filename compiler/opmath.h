/*
 * opmath.h - the scalar meaning of every operation, written once.
 *
 * DNC_OPM_<MATH>(T, ONE, F) (MATH is ops.h's column) is the body of a C
 * function of the operands a, b, c (type T), with ONE the constant 1 of T
 * and F(fn) the C library's function fn for T (exp -> expl for long
 * double). It is expanded:
 *   - for long double by the reference interpreter (interp.c);
 *   - for double and float by rtmath.c (the kernels' scalar runtime and the
 *     bit-exact oracle) and for double by search_eval.c;
 *   - as text, for double, into the C printer's prelude (print_c.c), so the
 *     printed helpers are these bodies (DNC_OPM_TEXT).
 * opmath_def.h turns the bodies into functions for one type.
 *
 * Semantics (what the kernels do too):
 *   - IEEE for NaN, infinities and signed zeros, as the C library gives them;
 *   - min and max propagate NaN (as torch.minimum does, unlike fmin), and on
 *     a tie return their first operand; clamp(v, lo, hi) = min(max(v, lo), hi);
 *   - sign(±0) = ±0, sign(NaN) = NaN;
 *   - sigmoid and softplus without overflow or loss of tiny values;
 *   - comparisons with NaN are false, except != which is true; a BOOL is
 *     0 or 1; `if` evaluates both branches (they have no side effects).
 * A transcendental op of a float kernel means its double formula rounded
 * once to float (rtmath.c); the float expansions here serve the arithmetic
 * ops.
 */
#ifndef DNC_OPMATH_H
#define DNC_OPMATH_H

#define DNC_OPM_STR_(x) #x
/* the text of a body after macro expansion */
#define DNC_OPM_TEXT(x) DNC_OPM_STR_(x)

/* leaves are read, not computed */
#define DNC_OPM_konst(T, ONE, F) return 0;
#define DNC_OPM_input(T, ONE, F) return 0;
#define DNC_OPM_param(T, ONE, F) return 0;
#define DNC_OPM_neg(T, ONE, F) return -a;
#define DNC_OPM_add(T, ONE, F) return a + b;
#define DNC_OPM_sub(T, ONE, F) return a - b;
#define DNC_OPM_mul(T, ONE, F) return a * b;
#define DNC_OPM_div(T, ONE, F) return a / b;
#define DNC_OPM_pow(T, ONE, F) return F(pow)(a, b);
#define DNC_OPM_abs(T, ONE, F) return F(fabs)(a);
#define DNC_OPM_sign(T, ONE, F) return a > 0 ? ONE : a < 0 ? -ONE : a;
#define DNC_OPM_min(T, ONE, F) return isnan(a) || isnan(b) ? a + b : b < a ? b : a;
#define DNC_OPM_max(T, ONE, F) return isnan(a) || isnan(b) ? a + b : b > a ? b : a;
/* min(max(a, b), c), written out: the prelude names it dnc_clamp(v, lo, hi) */
#define DNC_OPM_clamp(T, ONE, F)                                           \
  T m = isnan(a) || isnan(b) ? a + b : b > a ? b : a;                     \
  return isnan(m) || isnan(c) ? m + c : c < m ? c : m;
#define DNC_OPM_exp(T, ONE, F) return F(exp)(a);
#define DNC_OPM_expm1(T, ONE, F) return F(expm1)(a);
#define DNC_OPM_log(T, ONE, F) return F(log)(a);
#define DNC_OPM_log1p(T, ONE, F) return F(log1p)(a);
#define DNC_OPM_sqrt(T, ONE, F) return F(sqrt)(a);
#define DNC_OPM_rsqrt(T, ONE, F) return ONE / F(sqrt)(a);
#define DNC_OPM_tanh(T, ONE, F) return F(tanh)(a);
#define DNC_OPM_sinh(T, ONE, F) return F(sinh)(a);
#define DNC_OPM_cosh(T, ONE, F) return F(cosh)(a);
#define DNC_OPM_asinh(T, ONE, F) return F(asinh)(a);
#define DNC_OPM_atan(T, ONE, F) return F(atan)(a);
#define DNC_OPM_erf(T, ONE, F) return F(erf)(a);
#define DNC_OPM_erfc(T, ONE, F) return F(erfc)(a);
/* for a < 0 the form e/(1+e) keeps the relative accuracy of tiny values */
#define DNC_OPM_sigmoid(T, ONE, F) if (a < 0) { T e = F(exp)(a); return e / (ONE + e); } return ONE / (ONE + F(exp)(-a));
/* log(1 + e^a) without overflow: a + log1p(e^-a) for a > 0 */
#define DNC_OPM_softplus(T, ONE, F) return a > 0 ? a + F(log1p)(F(exp)(-a)) : F(log1p)(F(exp)(a));
#define DNC_OPM_sin(T, ONE, F) return F(sin)(a);
#define DNC_OPM_cos(T, ONE, F) return F(cos)(a);
#define DNC_OPM_lt(T, ONE, F) return a < b;
#define DNC_OPM_le(T, ONE, F) return a <= b;
#define DNC_OPM_gt(T, ONE, F) return a > b;
#define DNC_OPM_ge(T, ONE, F) return a >= b;
#define DNC_OPM_eq(T, ONE, F) return a == b;
#define DNC_OPM_ne(T, ONE, F) return a != b;
#define DNC_OPM_and(T, ONE, F) return a != 0 && b != 0;
#define DNC_OPM_or(T, ONE, F) return a != 0 || b != 0;
#define DNC_OPM_not(T, ONE, F) return a == 0;
#define DNC_OPM_select(T, ONE, F) return a != 0 ? b : c;
/* a * b + c rounded once */
#define DNC_OPM_fma(T, ONE, F) return F(fma)(a, b, c);
/* sqrt(a^2 + b^2) without overflow or underflow; inf if either is inf */
#define DNC_OPM_hypot(T, ONE, F) return F(hypot)(a, b);

/* the C library's function names by type */
#define DNC_OPM_LIBM_D(fn) fn
#define DNC_OPM_LIBM_F(fn) fn##f
#define DNC_OPM_LIBM_LD(fn) fn##l

#endif
