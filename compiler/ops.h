/*
 * ops.h - the one table of expression operations.
 *
 * Every pass that switches over operations reads its column from this
 * X-macro list; a switch names the ops it treats specially (simplify.c's
 * rewrites, a printer's own forms) and leaves every other op to the
 * columns, so none has a `default:` that hides a missing op.
 *
 * Columns:
 *   NAME   enum suffix (OP_NAME)
 *   ARITY  number of operands (0 for leaves)
 *   SPELL  DSL spelling: the operator token, or the built-in function name
 *          (sema.c looks built-in calls up by it)
 *   FORM   how it is written: LEAF, PREFIX (unary operator), INFIX, CALL,
 *          IFELSE (if c then a else b)
 *   PREC   printing/parsing precedence for PREFIX and INFIX (higher binds
 *          tighter); 0 otherwise
 *   TYPE   result type: NUM or BOOL (operands of AND/OR/NOT/SELECT's
 *          condition are BOOL, all others NUM)
 *   COMM   1 when the operands commute bit for bit (simplify.c orders them,
 *          search.c hashes them alike); min and max do not (ties, NaN)
 *   MATH   the op's scalar meaning: DNC_OPM_<MATH> in opmath.h, expanded
 *          for long double (interp.c), double (search_eval.c, rtmath.c,
 *          the C printer's prelude) and float (rtmath.c)
 *   C      its C99 spelling for print_c.c: an operator, a <math.h>
 *          function, or a dnc_ helper of the prelude (written from MATH)
 *   TORCH  the PyTorch function print_torch.c calls for a CALL, with the
 *          same operands: a torch function, or a dnc_ helper of its
 *          prelude where torch's has other semantics or no ONNX export
 *          ("" where the printer has its own form)
 *   RT     1 when rtmath.c has a scalar runtime function dnc_rt_<MATH>_f32
 *          /_f64 (transcendentals and pow, lowered by vmath.c, which may
 *          call it lane by lane; the JIT binds it, aot.c defines it in IR
 *          over the C library function C)
 *   DIFF   derivative rule in diff.c: builds d(op(a, b, c)) from the
 *          operands and their derivatives
 *   LOWER  IR lowering in codegen.c; lw_math hands the op to the vector
 *          math interface (vmath.c), one entry per transcendental
 *
 * Adding a built-in touches: one row here; its formula DNC_OPM_<MATH> in
 * opmath.h; its DIFF rule in diff.c; its lowering (an lw_ function in
 * codegen.c, or for lw_math a vector implementation in vmath.c); a
 * PyTorch form in print_torch.c when it is not a one-operand torch
 * function (TORCH); sympy's name in tests/sympy_check.py; and the
 * language reference (docs/language.md, README.md). Everything else
 * (parsing, the interpreter, rtmath.c's runtime functions and oracle, the
 * search evaluator, the DSL, C and LaTeX printers, the JIT's symbol table,
 * the AOT runtime) follows from the row. fma, the last row, was added so:
 * row, formula, df_fma, lw_fma, its torch.addcmul form, docs; hypot, for
 * asinh's derivative 1/hypot(1, u), with vm_hypot (vmath.c) as its
 * lowering.
 * tests/test_ops.c walks every row through every evaluator, printer, the
 * differentiator and the JIT, so a missing piece fails a test.
 *
 * ORDER: the precedence numbers must agree with the %left/%right lists in
 * grammar/parser.y.
 */
#ifndef DNC_OPS_H
#define DNC_OPS_H

#define DNC_PREC_IF 0
#define DNC_PREC_OR 1
#define DNC_PREC_AND 2
#define DNC_PREC_NOT 3
#define DNC_PREC_CMP 4
#define DNC_PREC_ADD 5
#define DNC_PREC_MUL 6
#define DNC_PREC_NEG 7
#define DNC_PREC_POW 8
#define DNC_PREC_ATOM 9

/*    NAME    ARITY SPELL      FORM    PREC           TYPE COMM MATH     C              TORCH        RT DIFF         LOWER */
#define DNC_OPS(X)                                                                                                       \
  X(CONST,    0, "",         LEAF,   DNC_PREC_ATOM, NUM,  0, konst,     "",             "",              0, df_const,    lw_leaf)   \
  X(INPUT,    0, "x",        LEAF,   DNC_PREC_ATOM, NUM,  0, input,     "",             "",              0, df_input,    lw_leaf)   \
  X(PARAM,    0, "",         LEAF,   DNC_PREC_ATOM, NUM,  0, param,     "",             "",              0, df_param,    lw_leaf)   \
  X(NEG,      1, "-",        PREFIX, DNC_PREC_NEG,  NUM,  0, neg,      "-",            "",              0, df_neg,      lw_neg)    \
  X(ADD,      2, "+",        INFIX,  DNC_PREC_ADD,  NUM,  1, add,      "+",            "",              0, df_add,      lw_add)    \
  X(SUB,      2, "-",        INFIX,  DNC_PREC_ADD,  NUM,  0, sub,      "-",            "",              0, df_sub,      lw_sub)    \
  X(MUL,      2, "*",        INFIX,  DNC_PREC_MUL,  NUM,  1, mul,      "*",            "",              0, df_mul,      lw_mul)    \
  X(DIV,      2, "/",        INFIX,  DNC_PREC_MUL,  NUM,  0, div,      "/",            "",              0, df_div,      lw_div)    \
  X(POW,      2, "^",        INFIX,  DNC_PREC_POW,  NUM,  0, pow,      "pow",          "",              1, df_pow,      lw_pow)    \
  X(ABS,      1, "abs",      CALL,   DNC_PREC_ATOM, NUM,  0, abs,      "fabs",         "torch.abs",     0, df_abs,      lw_abs)    \
  X(SIGN,     1, "sign",     CALL,   DNC_PREC_ATOM, NUM,  0, sign,     "dnc_sign",     "dnc_sign",      0, df_sign,     lw_sign)   \
  X(MIN,      2, "min",      CALL,   DNC_PREC_ATOM, NUM,  0, min,      "dnc_min",      "",              0, df_min,      lw_min)    \
  X(MAX,      2, "max",      CALL,   DNC_PREC_ATOM, NUM,  0, max,      "dnc_max",      "",              0, df_max,      lw_max)    \
  X(CLAMP,    3, "clamp",    CALL,   DNC_PREC_ATOM, NUM,  0, clamp,    "dnc_clamp",    "",              0, df_clamp,    lw_clamp)  \
  X(EXP,      1, "exp",      CALL,   DNC_PREC_ATOM, NUM,  0, exp,      "exp",          "torch.exp",     1, df_exp,      lw_math)   \
  X(EXPM1,    1, "expm1",    CALL,   DNC_PREC_ATOM, NUM,  0, expm1,    "expm1",        "torch.expm1",   1, df_expm1,    lw_math)   \
  X(LOG,      1, "log",      CALL,   DNC_PREC_ATOM, NUM,  0, log,      "log",          "torch.log",     1, df_log,      lw_math)   \
  X(LOG1P,    1, "log1p",    CALL,   DNC_PREC_ATOM, NUM,  0, log1p,    "log1p",        "torch.log1p",   1, df_log1p,    lw_math)   \
  X(SQRT,     1, "sqrt",     CALL,   DNC_PREC_ATOM, NUM,  0, sqrt,     "sqrt",         "torch.sqrt",    0, df_sqrt,     lw_sqrt)   \
  X(RSQRT,    1, "rsqrt",    CALL,   DNC_PREC_ATOM, NUM,  0, rsqrt,    "dnc_rsqrt",    "torch.rsqrt",   0, df_rsqrt,    lw_rsqrt)  \
  X(TANH,     1, "tanh",     CALL,   DNC_PREC_ATOM, NUM,  0, tanh,     "tanh",         "torch.tanh",    1, df_tanh,     lw_math)   \
  X(SINH,     1, "sinh",     CALL,   DNC_PREC_ATOM, NUM,  0, sinh,     "sinh",         "dnc_sinh",      1, df_sinh,     lw_math)   \
  X(COSH,     1, "cosh",     CALL,   DNC_PREC_ATOM, NUM,  0, cosh,     "cosh",         "dnc_cosh",      1, df_cosh,     lw_math)   \
  X(ASINH,    1, "asinh",    CALL,   DNC_PREC_ATOM, NUM,  0, asinh,    "asinh",        "dnc_asinh",     1, df_asinh,    lw_math)   \
  X(ATAN,     1, "atan",     CALL,   DNC_PREC_ATOM, NUM,  0, atan,     "atan",         "torch.atan",    1, df_atan,     lw_math)   \
  X(ERF,      1, "erf",      CALL,   DNC_PREC_ATOM, NUM,  0, erf,      "erf",          "torch.erf",     1, df_erf,      lw_math)   \
  X(ERFC,     1, "erfc",     CALL,   DNC_PREC_ATOM, NUM,  0, erfc,     "erfc",         "torch.erfc",    1, df_erfc,     lw_math)   \
  X(SIGMOID,  1, "sigmoid",  CALL,   DNC_PREC_ATOM, NUM,  0, sigmoid,  "dnc_sigmoid",  "torch.sigmoid", 1, df_sigmoid,  lw_math)   \
  X(SOFTPLUS, 1, "softplus", CALL,   DNC_PREC_ATOM, NUM,  0, softplus, "dnc_softplus", "dnc_softplus",  1, df_softplus, lw_math)   \
  X(SIN,      1, "sin",      CALL,   DNC_PREC_ATOM, NUM,  0, sin,      "sin",          "torch.sin",     1, df_sin,      lw_math)   \
  X(COS,      1, "cos",      CALL,   DNC_PREC_ATOM, NUM,  0, cos,      "cos",          "torch.cos",     1, df_cos,      lw_math)   \
  X(LT,       2, "<",        INFIX,  DNC_PREC_CMP,  BOOL, 0, lt,       "<",            "",              0, df_lt,       lw_cmp)    \
  X(LE,       2, "<=",       INFIX,  DNC_PREC_CMP,  BOOL, 0, le,       "<=",           "",              0, df_le,       lw_cmp)    \
  X(GT,       2, ">",        INFIX,  DNC_PREC_CMP,  BOOL, 0, gt,       ">",            "",              0, df_gt,       lw_cmp)    \
  X(GE,       2, ">=",       INFIX,  DNC_PREC_CMP,  BOOL, 0, ge,       ">=",           "",              0, df_ge,       lw_cmp)    \
  X(EQ,       2, "==",       INFIX,  DNC_PREC_CMP,  BOOL, 1, eq,       "==",           "",              0, df_eq,       lw_cmp)    \
  X(NE,       2, "!=",       INFIX,  DNC_PREC_CMP,  BOOL, 1, ne,       "!=",           "",              0, df_ne,       lw_cmp)    \
  X(AND,      2, "and",      INFIX,  DNC_PREC_AND,  BOOL, 1, and,      "&&",           "",              0, df_and,      lw_and)    \
  X(OR,       2, "or",       INFIX,  DNC_PREC_OR,   BOOL, 1, or,       "||",           "",              0, df_or,       lw_or)     \
  X(NOT,      1, "not",      PREFIX, DNC_PREC_NOT,  BOOL, 0, not,      "!",            "",              0, df_not,      lw_not)    \
  X(SELECT,   3, "if",       IFELSE, DNC_PREC_IF,   NUM,  0, select,   "?:",           "",              0, df_select,   lw_select) \
  X(FMA,      3, "fma",      CALL,   DNC_PREC_ATOM, NUM,  0, fma,      "fma",          "",              0, df_fma,      lw_fma)    \
  X(HYPOT,    2, "hypot",    CALL,   DNC_PREC_ATOM, NUM,  0, hypot,    "hypot",        "dnc_hypot",     1, df_hypot,    lw_math)  

#endif
