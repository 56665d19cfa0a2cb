/*
 * opmath_def.h - opmath.h's formulas as functions of one type.
 *
 * Include with DNC_OPM_T (the type), DNC_OPM_ONE (1 in it), DNC_OPM_F (the
 * C library by type, e.g. DNC_OPM_LIBM_LD) and DNC_OPM_NAME(m) (the
 * function for ops.h's MATH column m) defined; it defines
 *   static inline T DNC_OPM_NAME(m)(T a, T b, T c)
 * for every op, and undefines the four. May be included several times.
 */
#include "opmath.h"

#define X(NAME, ARITY, SPELL, FORM, PREC, TYPE, COMM, MATH, C, TORCH, RT,  \
          DIFF, LOWER)                                                     \
  static inline DNC_OPM_T DNC_OPM_NAME(MATH)(DNC_OPM_T a, DNC_OPM_T b,     \
                                             DNC_OPM_T c)                  \
  {                                                                        \
    (void)a;                                                               \
    (void)b;                                                               \
    (void)c;                                                               \
    DNC_OPM_##MATH(DNC_OPM_T, DNC_OPM_ONE, DNC_OPM_F)                      \
  }
DNC_OPS(X)
#undef X

#undef DNC_OPM_T
#undef DNC_OPM_ONE
#undef DNC_OPM_F
#undef DNC_OPM_NAME
