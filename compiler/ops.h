/*
 * ops.h - the one table of expression operations.
 *
 * Every pass that switches over operations (the DAG builder, the interpreter,
 * the printers, and later differentiation and IR lowering) reads its column
 * from this X-macro list, so adding a built-in is one row here plus its math.
 *
 * Columns:
 *   NAME   enum suffix (OP_NAME)
 *   ARITY  number of operands (0 for leaves)
 *   SPELL  DSL spelling: the operator token, or the built-in function name
 *   FORM   how it is written: LEAF, PREFIX (unary operator), INFIX, CALL,
 *          IFELSE (if c then a else b)
 *   PREC   printing/parsing precedence for PREFIX and INFIX (higher binds
 *          tighter); 0 otherwise
 *   TYPE   result type: NUM or BOOL (operands of AND/OR/NOT/SELECT's
 *          condition are BOOL, all others NUM)
 *   EVAL   reference-interpreter function name in interp.c
 *   DIFF   derivative rule in diff.c: builds d(op(a, b, c)) from the
 *          operands and their derivatives
 *   LOWER  IR lowering in codegen.c; lw_math hands the op to the vector
 *          math interface (vmath.c), one entry per transcendental
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

/*    NAME      ARITY SPELL       FORM    PREC            TYPE EVAL         DIFF         LOWER */
#define DNC_OPS(X)                                                        \
  X(CONST,      0, "",          LEAF,   DNC_PREC_ATOM,  NUM,  ev_none, df_const, lw_leaf)       \
  X(INPUT,      0, "x",         LEAF,   DNC_PREC_ATOM,  NUM,  ev_none, df_input, lw_leaf)       \
  X(PARAM,      0, "",          LEAF,   DNC_PREC_ATOM,  NUM,  ev_none, df_param, lw_leaf)       \
  X(NEG,        1, "-",         PREFIX, DNC_PREC_NEG,   NUM,  ev_neg, df_neg, lw_neg)          \
  X(ADD,        2, "+",         INFIX,  DNC_PREC_ADD,   NUM,  ev_add, df_add, lw_add)          \
  X(SUB,        2, "-",         INFIX,  DNC_PREC_ADD,   NUM,  ev_sub, df_sub, lw_sub)          \
  X(MUL,        2, "*",         INFIX,  DNC_PREC_MUL,   NUM,  ev_mul, df_mul, lw_mul)          \
  X(DIV,        2, "/",         INFIX,  DNC_PREC_MUL,   NUM,  ev_div, df_div, lw_div)          \
  X(POW,        2, "^",         INFIX,  DNC_PREC_POW,   NUM,  ev_pow, df_pow, lw_pow)          \
  X(ABS,        1, "abs",       CALL,   DNC_PREC_ATOM,  NUM,  ev_abs, df_abs, lw_abs)          \
  X(SIGN,       1, "sign",      CALL,   DNC_PREC_ATOM,  NUM,  ev_sign, df_sign, lw_sign)        \
  X(MIN,        2, "min",       CALL,   DNC_PREC_ATOM,  NUM,  ev_min, df_min, lw_min)          \
  X(MAX,        2, "max",       CALL,   DNC_PREC_ATOM,  NUM,  ev_max, df_max, lw_max)          \
  X(CLAMP,      3, "clamp",     CALL,   DNC_PREC_ATOM,  NUM,  ev_clamp, df_clamp, lw_clamp)      \
  X(EXP,        1, "exp",       CALL,   DNC_PREC_ATOM,  NUM,  ev_exp, df_exp, lw_math)          \
  X(EXPM1,      1, "expm1",     CALL,   DNC_PREC_ATOM,  NUM,  ev_expm1, df_expm1, lw_math)      \
  X(LOG,        1, "log",       CALL,   DNC_PREC_ATOM,  NUM,  ev_log, df_log, lw_math)          \
  X(LOG1P,      1, "log1p",     CALL,   DNC_PREC_ATOM,  NUM,  ev_log1p, df_log1p, lw_math)      \
  X(SQRT,       1, "sqrt",      CALL,   DNC_PREC_ATOM,  NUM,  ev_sqrt, df_sqrt, lw_sqrt)        \
  X(RSQRT,      1, "rsqrt",     CALL,   DNC_PREC_ATOM,  NUM,  ev_rsqrt, df_rsqrt, lw_rsqrt)      \
  X(TANH,       1, "tanh",      CALL,   DNC_PREC_ATOM,  NUM,  ev_tanh, df_tanh, lw_math)        \
  X(SINH,       1, "sinh",      CALL,   DNC_PREC_ATOM,  NUM,  ev_sinh, df_sinh, lw_math)        \
  X(COSH,       1, "cosh",      CALL,   DNC_PREC_ATOM,  NUM,  ev_cosh, df_cosh, lw_math)        \
  X(ASINH,      1, "asinh",     CALL,   DNC_PREC_ATOM,  NUM,  ev_asinh, df_asinh, lw_math)      \
  X(ATAN,       1, "atan",      CALL,   DNC_PREC_ATOM,  NUM,  ev_atan, df_atan, lw_math)        \
  X(ERF,        1, "erf",       CALL,   DNC_PREC_ATOM,  NUM,  ev_erf, df_erf, lw_math)          \
  X(ERFC,       1, "erfc",      CALL,   DNC_PREC_ATOM,  NUM,  ev_erfc, df_erfc, lw_math)        \
  X(SIGMOID,    1, "sigmoid",   CALL,   DNC_PREC_ATOM,  NUM,  ev_sigmoid, df_sigmoid, lw_math)  \
  X(SOFTPLUS,   1, "softplus",  CALL,   DNC_PREC_ATOM,  NUM,  ev_softplus, df_softplus, lw_math) \
  X(SIN,        1, "sin",       CALL,   DNC_PREC_ATOM,  NUM,  ev_sin, df_sin, lw_math)          \
  X(COS,        1, "cos",       CALL,   DNC_PREC_ATOM,  NUM,  ev_cos, df_cos, lw_math)          \
  X(LT,         2, "<",         INFIX,  DNC_PREC_CMP,   BOOL, ev_lt, df_lt, lw_cmp)            \
  X(LE,         2, "<=",        INFIX,  DNC_PREC_CMP,   BOOL, ev_le, df_le, lw_cmp)            \
  X(GT,         2, ">",         INFIX,  DNC_PREC_CMP,   BOOL, ev_gt, df_gt, lw_cmp)            \
  X(GE,         2, ">=",        INFIX,  DNC_PREC_CMP,   BOOL, ev_ge, df_ge, lw_cmp)            \
  X(EQ,         2, "==",        INFIX,  DNC_PREC_CMP,   BOOL, ev_eq, df_eq, lw_cmp)            \
  X(NE,         2, "!=",        INFIX,  DNC_PREC_CMP,   BOOL, ev_ne, df_ne, lw_cmp)            \
  X(AND,        2, "and",       INFIX,  DNC_PREC_AND,   BOOL, ev_and, df_and, lw_and)          \
  X(OR,         2, "or",        INFIX,  DNC_PREC_OR,    BOOL, ev_or, df_or, lw_or)            \
  X(NOT,        1, "not",       PREFIX, DNC_PREC_NOT,   BOOL, ev_not, df_not, lw_not)          \
  X(SELECT,     3, "if",        IFELSE,  DNC_PREC_IF,    NUM,  ev_select, df_select, lw_select)

#endif
