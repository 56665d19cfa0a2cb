/*
 * vmath.c - the vector math interface: how each transcendental op (and pow
 * with a general exponent) becomes IR on vectors of the compute type.
 *
 * The kernel builder (codegen.c) calls dnc_vm_emit and nothing else for
 * these ops, so replacing a lowering here changes every kernel at once.
 *
 * Today's lowering is correct rather than fast: LLVM 19 has no vector
 * tanh or erf on x86 (and its vector exp/log/sin/cos intrinsics become the
 * same scalar calls without a vector library), so each lane calls the
 * scalar function of rtmath.c, declared here by name and resolved by the
 * JIT (jit.c defines the symbols). dnc's own branch-free vector
 * implementations replace these bodies in the vector-math issue.
 */
#include "codegen.h"

static LLVMValueRef scalar_fn(dnc_cg *cg, int op, LLVMTypeRef *ft)
{
  const char *name = dnc_rt_name(op, cg->f64);
  DNC_ASSERT(name);
  LLVMTypeRef args[2] = {cg->ct, cg->ct};
  *ft = LLVMFunctionType(cg->ct, args, op == OP_POW ? 2 : 1, 0);
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

LLVMValueRef dnc_vm_emit(dnc_cg *cg, int op, LLVMValueRef a, LLVMValueRef b)
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
