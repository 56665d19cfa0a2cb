"""test_torch_form.py - the decomposed form (`dnc diff --format torch`, the
PyTorch operations dnc.torch runs where its kernels cannot) against dnc's
kernels on CPU: the forward and every gradient (input, weight, bias, each
parameter), float32 and float64, for the published functions, a
per-channel parameter, and one function that uses every operation of
compiler/ops.h. Runs under PyTorch 1.13 and 2."""
import re
import subprocess

import pytest

torch = pytest.importorskip("torch")
import dnc  # noqa: E402
import dnc.torch as dt  # noqa: E402
from checks import ok, onnx_run  # noqa: E402

# every operation of ops.h at least once (the test below checks that),
# with values that stay finite on the sample
EVERY_OP = """\
fn every(x; a = 0.7, b[] = 0.3) {
  let u = a * x + b
  let w = abs(u) + 1
  let s = if u < 0 and not (x > 2) or x == 1.5 then sigmoid(u)
          else if u <= -3 or u >= 3 or x != x then softplus(u)
          else clamp(u, -1, b) + min(u, 0.5) + max(u, b) + sign(u) * 0.1
  let p = s + exp(-u^2) + expm1(u / 4) + log(w) + log1p(u^2) + sqrt(w)
  let q = rsqrt(w) - tanh(u) + sinh(u / 3) + cosh(u / 3) + asinh(u)
  p + q + atan(u) + erf(u) + erfc(u) + sin(u) * cos(u) + w^a / (2 + u^2) - (-u)
    + hypot(u, a) + fma(u, b, 0.5)
}
"""

FUNCTIONS = [("dyt", None), ("derf", None), ("dyisru", None),
             ("derf_pc", "fn derf_pc(x; alpha = 0.5, s[] = 0) = "
                         "erf(alpha * x + s)"),
             ("every", EVERY_OP)]


def test_every_op_is_used():
    ops = re.findall(r"X\((\w+),", open("compiler/ops.h").read())
    spell = {"NEG": "(-u)", "ADD": "+", "SUB": " - ", "MUL": "*",
             "DIV": "/", "POW": "^", "LT": "<", "LE": "<=", "GT": ">",
             "GE": ">=", "EQ": "==", "NE": "!=", "AND": " and ",
             "OR": " or ", "NOT": "not ", "SELECT": "if ", "CONST": "1",
             "INPUT": "x", "PARAM": "a"}
    missing = [o for o in ops
               if spell.get(o, o.lower() + "(") not in EVERY_OP]
    ok(not missing, "EVERY_OP uses every operation of ops.h", missing)


def module(name, src, dtype, cf=False):
    """A PointwiseNorm of 6 channels (over dimension 1 where cf) with
    weight, bias and parameters drawn near their defaults."""
    fn = dt.resolve(src) if src else name
    m = dt.PointwiseNorm(6, fn, dtype=dtype, channels_last=not cf)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
        for p in m._dnc_params:
            t = getattr(m, p.name)
            t.mul_(1 + 0.2 * (2 * torch.rand_like(t) - 1))
    return m


def run(m, x, dy):
    xx = x.clone().requires_grad_()
    for p in m.parameters():
        p.grad = None
    y = m(xx)
    y.backward(dy)
    return [y.detach(), xx.grad] + [p.grad for p in m.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,src", FUNCTIONS)
def test_decomposed_equals_kernels(name, src, dtype):
    torch.manual_seed(3)
    m = module(name, src, dtype)
    x = torch.randn(7, 5, 6, dtype=dtype) * 2.5
    x[0, 0, 0] = 1.5  # the x == 1.5 branch of EVERY_OP
    if name == "dyisru":
        x = x * 20
    dy = torch.randn(7, 5, 6, dtype=dtype)
    k = run(m, x, dy)
    with dt.decomposed():
        d = run(m, x, dy)
    names = ["y", "dx"] + ["d" + n for n, _ in m.named_parameters()]
    # float64: a few ulp apart (each side's own tanh, erf...); the sums
    # are added in another order. float32: the kernels' vector math is
    # within a few ulp, and the parameter sums (over 35 rows) are added in
    # double by dnc, in float32 by PyTorch.
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else \
        dict(rtol=2e-5, atol=2e-5)
    for what, a, b in zip(names, k, d):
        scale = max(1.0, float(a.abs().max()))
        ok(a.dtype == b.dtype and a.shape == b.shape and
           torch.allclose(a / scale, b / scale, **tol),
           "%s %s: %s of the decomposed form = the kernels'" % (
               name, dtype, what),
           lambda: "max difference %g" % (a - b).abs().max())


def test_accurate_tanh_derivative():
    # 1 - tanh^2 in float32 is 0 from |alpha x| > 9; dnc's form is not
    m = dt.PointwiseNorm(1, "dyt", dtype=torch.float32)
    x = torch.tensor([[30.0]], requires_grad=True)
    with dt.decomposed():
        m(x).backward(torch.ones(1, 1))
    want = 0.5 * 4 / (torch.tensor(15.0, dtype=torch.float64).exp() +
                      torch.tensor(-15.0, dtype=torch.float64).exp()) ** 2
    ok(float(x.grad) > 0 and abs(float(x.grad) - float(want)) <=
       1e-5 * float(want), "dDyT/dx at alpha x = 15 is 2 sech^2(15), not 0",
       float(x.grad))


def test_printed_text_runs():
    # the text of `dnc diff --format torch`, executed as it is printed
    text = subprocess.run(["build/dnc" if not __import__("os").environ.get(
        "DNC_BUILD") else __import__("os").environ["DNC_BUILD"] + "/dnc",
        "diff", "--format", "torch", "-"], input=EVERY_OP,
        capture_output=True, text=True).stdout
    scope = {}
    exec(text, scope)
    fn = dnc.compile(EVERY_OP)["every"]
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)
    a = torch.tensor([0.7], dtype=torch.float64)
    b = torch.tensor([0.3], dtype=torch.float64)
    ok(torch.allclose(scope["every"](x, a, b),
                      torch.from_numpy(fn.eval(x.numpy())), rtol=1e-13,
                      atol=1e-13), "the printed f = the interpreter")
    d = fn.derivative("a")
    ok(torch.allclose(scope["every__da"](x, a, b),
                      torch.from_numpy(d.eval(x.numpy())), rtol=1e-12,
                      atol=1e-12), "the printed df/da = the interpreter's")



def _printed(src):
    """The names `dnc diff --format torch` of src defines, executed."""
    import os
    exe = os.environ.get("DNC_BUILD", "build") + "/dnc"
    text = subprocess.run([exe, "diff", "--format", "torch", "-"], input=src,
                          capture_output=True, text=True, check=True).stdout
    scope = {}
    exec(text, scope)
    return scope


def test_function_names_that_python_or_the_prelude_use():
    # a function named as a prelude helper (dnc_sign), the module (torch)
    # or a builtin (float) is printed under another name (v_...), so that
    # it neither replaces the helper another function's sign() calls nor
    # hides torch
    src = ("fn dnc_sign(x) = 3 * x\n"
           "fn g(x; a = 1) = sign(a * x) * x\n"
           "fn torch(x) = tanh(x)\n"
           "fn float(x) = x * x\n")
    scope = _printed(src)
    x = torch.tensor([-2.0, 3.0], dtype=torch.float64)
    a = torch.tensor([1.0], dtype=torch.float64)
    ok(torch.equal(scope["g__dx"](x, a), torch.tensor([-1.0, 1.0],
                                                      dtype=torch.float64)),
       "g's derivative calls the prelude's dnc_sign, not the user's")
    ok(torch.equal(scope["v_dnc_sign"](x), 3 * x), "dnc_sign as v_dnc_sign")
    ok(torch.allclose(scope["v_torch"](x), torch.tanh(x)), "torch as v_torch")
    ok(torch.equal(scope["v_float"](x), x * x), "float as v_float")
    for name in ("dnc_sign", "torch", "float"):
        fs = dt.torch_form(dnc.compile(src)[name])
        ok(len(fs[2]) == 0 and torch.allclose(fs[0](x), scope["v_" + name](x)),
           "dnc.torch's decomposed form of %s" % name)

def test_builtin_names_and_huge_constants():
    """A function named like a builtin the prelude calls (range) replaced
    it, so that the unit's helper raised a TypeError; a constant beyond
    float32's range (1e300) made torch.full_like and clamp raise in
    float32, where the kernels give inf: the decomposed form (CUDA, meta,
    ONNX) failed on both."""
    src = ("fn range(x) = 2 * x\n"
           "fn isru(x; a = 1, c = 1) = a * x / sqrt(c + (a * x)^2)\n"
           "fn big(x) = x * 1e300\n"
           "fn capped(x) = min(x^2, 1e300) + clamp(x, -1e300, 1e300)\n"
           "fn sel(x) = if x > 0 then 1e300 else x\n")
    scope = _printed(src)
    x = torch.tensor([0.5, 2.0], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    ok(torch.allclose(scope["isru"](x, one, one), x / torch.sqrt(1 + x * x)),
       "the unit's helper with a function named range")
    ok(torch.equal(scope["v_range"](x), 2 * x), "range as v_range")
    m = dnc.compile(src)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        xs = torch.tensor([-3.0, 0.5, 2.0], dtype=dtype)
        for name in ("big", "capped", "sel"):
            f = m[name]
            fs = dt.torch_form(f)
            y = fs[0](xs)
            want = torch.from_numpy(f.forward(xs.double().numpy()))
            if dtype != torch.float64:
                want = want.to(dtype)
            ok(torch.equal(y, want), "%s, %s: the decomposed form as the "
               "kernels round it: %s, want %s" % (name, dtype, y, want))
            dx = scope[name + "__dx"](xs)
            ok(dx.dtype == dtype, "%s's derivative runs in %s" % (name, dtype))

def test_meta_and_moving():
    # built on meta, moved to the CPU and initialised there
    m = dt.PointwiseNorm(16, "derf", device="meta", alpha=0.7)
    y = m(torch.randn(2, 3, 16, device="meta"))
    ok(y.device.type == "meta" and y.shape == (2, 3, 16),
       "a module on meta computes shapes on meta tensors")
    m = m.to_empty(device="cpu")
    m.reset_parameters()
    ref = dt.PointwiseNorm(16, "derf", alpha=0.7)
    x = torch.randn(4, 16)
    ok(torch.equal(m(x), ref(x)), "to_empty + reset_parameters gives the "
       "module built on the CPU")


# ------------------------------------------- edges: overflow, ±0, ±inf

INF = float("inf")
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def _cpu_has(dtype):
    try:
        x = torch.ones(1, dtype=dtype)
        torch.rsqrt(x), torch.tanh(x), torch.exp(x), torch.log1p(x)
        return True
    except RuntimeError:  # PyTorch 1.13 has no f16 rsqrt, tanh... on CPU
        return False


# the dtypes the printed form can be called with directly here
FORM_DTYPES = [d for d in DTYPES if _cpu_has(d)]


def form(src):
    return dt.torch_form(dt.resolve(src))


def same_mask(a, b):
    """equal values, NaN equal to NaN, the sign of a zero included"""
    return (a == b) & (torch.signbit(a) == torch.signbit(b)) | \
        (torch.isnan(a) & torch.isnan(b))


def same_bits(a, b):
    return a.shape == b.shape and bool(torch.all(same_mask(a, b)))


def same_edges(a, b, rtol):
    """same_bits where either is 0, inf or NaN; within rtol elsewhere (each
    side's own pow or sinh)"""
    edge = (a == 0) | (b == 0) | ~torch.isfinite(a) | ~torch.isfinite(b)
    return a.shape == b.shape and bool(torch.all(torch.where(
        edge, same_mask(a, b), (a - b).abs() <= rtol * b.abs())))


def near(got, want, dtype, ulps=2):
    """got within ulps of the float64 want rounded to dtype (inf and NaN
    where want has them)"""
    w = want.to(dtype).double()
    g = got.double()
    e = torch.finfo(dtype).eps * ulps
    tiny = torch.finfo(dtype).tiny
    return bool(torch.all(same_mask(g, w) | ((g - w).abs() <=
                e * w.abs() + tiny)))


def isru_ref(x, b):
    # x / sqrt(b + x^2) in float64 without overflow, and its derivative
    # b / (b + x^2)^1.5
    s = x.abs().clamp(min=1.0)
    q = b / s / s + (x / s) ** 2
    return (x / s) * q.rsqrt(), b / s / s / s * q.rsqrt() / q


@pytest.mark.parametrize("dtype", FORM_DTYPES)
def test_isru_at_huge_u(dtype):
    # u^2 overflows far below the end of the dtype's range (1.8e19 in f32,
    # 255 in f16): the torch form must still give ±1 and the derivatives
    f, dfdx, (dfdb,) = form("fn f(x; b = 1.5) = x / sqrt(b + x^2)")
    g, dgdx, _ = form("fn g(x; b = 1.5) = sqrt(b + x^2)")
    r, drdx, _ = form("fn r(x; b = 1.5) = x * rsqrt(b + x^2)")
    big = torch.finfo(dtype).max
    xs = [0.0, -0.0, 0.5, -1.0, 3.0, 200.0, 1e4, -1e13, 1e20, 1e36, 1e160,
          1e300, big, -big]
    x = torch.tensor(xs, dtype=torch.float64).clamp(-big, big).to(dtype)
    b = torch.tensor([1.5], dtype=dtype)
    y, dy = isru_ref(x.double(), 1.5)
    for what, got, want in [("f", f(x, b), y), ("g'", dgdx(x, b), x.double()
                             / (1.5 + x.double() ** 2).sqrt()
                             if dtype != torch.float64 else y),
                            ("rsqrt form", r(x, b), y), ("f'", dfdx(x, b), dy),
                            ("df/db", dfdb(x, b), -0.5 * x.double() * dy / 1.5)]:
        if what == "g'" and dtype != torch.float64:
            want = y  # the same function: x / sqrt(b + x^2)
        ok(near(got, want, dtype, ulps=4),
           "%s: %s of the isru at |x| up to the largest finite" % (dtype, what),
           lambda: list(zip(xs, got.tolist(), want.tolist())))
    r_inf = f(torch.tensor([INF, -INF], dtype=dtype), b)
    ok(bool(torch.isnan(r_inf).all()), "%s: isru(±inf) is NaN, as "
       "inf / sqrt(inf) and the kernels" % dtype, r_inf)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_isru_at_huge_u_equals_kernels(dtype):
    big = 1e20 if dtype == torch.float32 else 1e160
    x = torch.tensor([[big, -big, 1e13, -3.0]], dtype=dtype)
    for src in ("fn f(x; b = 1) = x / sqrt(b + x^2)",
                "fn f(x; b = 1) = sqrt(b + x^2)",
                "fn f(x; a = 1, c = 1) { let u = a * x\n u * rsqrt(c + u^2) }"):
        k = grads(src, x, False)
        d = grads(src, x, True)
        # subnormal results (f' at 1e13 in f32, 1e-39) may be 0 in the kernels
        tiny = torch.finfo(dtype).tiny
        ok(all(torch.allclose(a, b, rtol=1e-5, atol=tiny, equal_nan=True)
               for a, b in zip(k, d)),
           "%s %s at |x| = %g: the torch form = the kernels" % (src, dtype, big),
           lambda: (k, d))


def grads(src, x, dec):
    """f and its gradients (x, then each parameter's) at x, as tensors"""
    fn = dt.resolve(src)
    xx = x.clone().requires_grad_()
    ps = [torch.tensor([p.default], dtype=x.dtype, requires_grad=True)
          for p in fn.params]
    kw = {p.name: t for p, t in zip(fn.params, ps)}
    with dt.decomposed(dec):
        y = dt.pointwise(xx, fn, **kw)
        g = torch.autograd.grad(y.sum(), [xx] + ps)
    return [y.detach()] + list(g)


# the language's conventions at ±0 and ±inf (docs/language.md 5.3 and the
# table of built-ins), where torch's functions have others
CONVENTIONS = [
    "fn f(x) = x^0.5", "fn f(x) = x^-0.5", "fn f(x) = x^(1/3)",
    "fn f(x) = x^1.5", "fn f(x) = x^-2.5", "fn f(x) = x^3 + x^-3",
    "fn f(x) = sign(x) * abs(x)^(1/3)", "fn f(x) = sign(x)",
    "fn f(x) = min(0, x)", "fn f(x) = max(0, x)", "fn f(x) = min(x, 0)",
    "fn f(x) = max(x, 0)", "fn f(x) = min(-0, x) + max(-0, x)",
    "fn f(x) = sinh(x) + asinh(x) + cosh(x) * 0"]
EDGES = [-0.0, 0.0, -INF, INF, float("nan"), -2.0, 2.0]


@pytest.mark.parametrize("src", CONVENTIONS)
def test_conventions_at_zero_and_inf_equal_kernels(src):
    for dtype in DTYPES:
        x = torch.tensor([EDGES], dtype=dtype)
        k = grads(src, x, False)
        d = grads(src, x, True)
        # the gradients with respect to x: the forward's edges again
        rtol = 8 * torch.finfo(dtype).eps
        ok(same_edges(k[0], d[0], rtol) and same_edges(k[1], d[1], rtol),
           "%s %s at %s: the torch form = the kernels, signed zeros "
           "included" % (src, dtype, EDGES), lambda: (k[:2], d[:2]))


def test_documented_values():
    x = torch.tensor([-0.0, -INF], dtype=torch.float64)
    ok(same_bits(form("fn f(x) = x^0.5")[0](x), torch.tensor([0.0, INF],
                 dtype=torch.float64)), "(-0)^0.5 = 0, (-inf)^0.5 = inf")
    ok(same_bits(form("fn f(x) = x^-0.5")[0](x), torch.tensor([INF, 0.0],
                 dtype=torch.float64)), "(-0)^-0.5 = inf, (-inf)^-0.5 = 0")
    z = torch.tensor([-0.0, 0.0], dtype=torch.float64)
    ok(same_bits(form("fn f(x) = min(0, x)")[0](z), torch.zeros(2,
                 dtype=torch.float64)), "min(0, -0) = 0: the first operand")
    ok(same_bits(form("fn f(x) = max(-0, x)")[0](z), -torch.zeros(2,
                 dtype=torch.float64)), "max(-0, 0) = -0: the first operand")


HELPERS = [("sinh", torch.sinh), ("cosh", torch.cosh), ("asinh", torch.asinh),
           ("hypot", None)]


@pytest.mark.parametrize("name,ref", HELPERS)
def test_exportable_forms_are_accurate(name, ref):
    # dnc_sinh, dnc_cosh, dnc_asinh, dnc_hypot (ONNX-exportable forms)
    # within 2 ulp of float64 in each dtype, over the whole range
    src = "fn f(x; b = 0.75) = hypot(x, b)" if name == "hypot" else \
        "fn f(x) = %s(x)" % name
    f = form(src)[0]
    v = torch.cat([torch.tensor([0.0, 1e-300, 1e-30, 1e-7, 0.3, 0.999, 1.0,
                                 1.001, 2.5, 11.0, 88.5, 89.5, 700.0, 709.9,
                                 710.4, 711.0, 1e20, 1e200, INF]),
                   torch.logspace(-8, 3, 200, dtype=torch.float64)])
    v = torch.cat([v, -v, torch.tensor([float("nan")])])
    for dtype in FORM_DTYPES:
        x = v.to(dtype)
        want = x.double().hypot(torch.tensor(0.75, dtype=torch.float64)) \
            if ref is None else ref(x.double())
        got = f(x, torch.tensor([0.75], dtype=dtype)) if ref is None else f(x)
        ok(got.dtype == dtype and near(got, want, dtype),
           "%s in %s: within 2 ulp of float64" % (name, dtype),
           lambda: [(a, b, c) for a, b, c in zip(x.tolist(), got.tolist(),
                    want.tolist()) if not near(torch.tensor([b], dtype=dtype),
                    torch.tensor([c], dtype=torch.float64), dtype)][:5])


def test_forms_on_meta():
    src = ("fn f(x; b = 1) = hypot(x, b) + sinh(x) + cosh(x) + asinh(x) + "
           "x / sqrt(b + x^2) + x^0.5 + min(0, x)")
    fs = form(src)
    x = torch.empty(3, 4, device="meta")
    b = torch.empty(1, device="meta")
    ok(all(f(x, b).shape == (3, 4) and f(x, b).device.type == "meta"
           for f in [fs[0], fs[1]] + fs[2]), "the helpers run on meta tensors")


def test_onnx_export_legacy():
    ort = pytest.importorskip("onnxruntime")
    for src, x in [
            ("fn f(x; b = 1.5) = hypot(x, b) + sinh(x) + cosh(x) + asinh(x) + "
             "abs(x)^0.5 + min(0, x) + sign(x)", torch.linspace(-3, 3, 16)),
            ("fn f(x; b = 1.5) = x / sqrt(b + x^2)",
             torch.tensor([1e20, -1e20, 1e30, -3.0] * 4))]:
        m = dt.PointwiseNorm(8, src).eval()
        x = x.reshape(2, 8)
        y = onnx_run(ort, m, x)
        with torch.no_grad():
            want = m(x)
        ok(torch.allclose(y, want, rtol=1e-5, atol=1e-5),
           "%s: the legacy ONNX export runs in onnxruntime as in PyTorch" % src,
           lambda: (y, want))


def test_onnx_softplus_keeps_infinities():
    # softplus was printed with torch.clamp(a, min=0), which onnxruntime's
    # Clip makes 3.4e38 at inf; torch.relu keeps it
    ort = pytest.importorskip("onnxruntime")
    m = dt.PointwiseNorm(4, "fn sp(x; a = 1) = softplus(a * x)",
                         elementwise_affine=False).eval()
    x = torch.tensor([[float("inf"), -float("inf"), 30.0, -30.0]])
    y = onnx_run(ort, m, x)
    ok(y[0, 0] == float("inf") and y[0, 1] == 0 and
       torch.allclose(y, m(x).detach(), rtol=1e-6),
       "softplus of +-inf in onnxruntime: inf and 0", y)


# tuples whose members are constants, x itself, a parameter, or one node
# twice (exp's derivative is exp)
TUPLE_EDGES = """\
fn lin(x; b = 1) = x + b
fn ex(x) = exp(x)
fn sq(x) = x^2 / 2
fn k(x) = 3
fn same(x) = x
fn pc(x; s[] = 0.5) = s * x
"""


@pytest.mark.parametrize("name", ["lin", "ex", "sq", "k", "same", "pc"])
def test_decomposed_edges_equal_kernels(name):
    # the decomposed backward through NAME__all where its members are
    # constants, x, a per-channel parameter or one shared node
    torch.manual_seed(4)
    m = module(name, dt.resolve(name, dnc.compile(TUPLE_EDGES)),
               torch.float64)
    x = torch.randn(7, 5, 6, dtype=torch.float64)
    dy = torch.randn(7, 5, 6, dtype=torch.float64)
    k = run(m, x, dy)
    with dt.decomposed():
        d = run(m, x, dy)
    for i, (a, b) in enumerate(zip(k, d)):
        ok(a.shape == b.shape and torch.allclose(a, b, rtol=1e-12,
                                                 atol=1e-12),
           "%s: result %d of the decomposed form = the kernels'" % (name, i),
           lambda: "%s\n%s" % (a, b))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32,
                                   torch.bfloat16, torch.float16],
                         ids=lambda d: str(d)[6:])
def test_all_is_the_separate_functions_bit_for_bit(dtype):
    # NAME__all(x, params) = (f, df/dx, df/dp...) computed together (their
    # shared operations, an inverse square root unit's scale, once): the
    # same bits as the separate functions, for the published functions,
    # the ISRU spellings, and every operation
    if dtype == torch.float16 and torch.__version__ < "2":
        pytest.skip("PyTorch 1.13 has no float16 tanh on the CPU")
    from test_torch_form_isru_p12 import SPELLINGS
    srcs = [open("examples/norms.dn").read(), EVERY_OP, TUPLE_EDGES] + \
        list(SPELLINGS.values())
    vals = [0.0, -0.0, 1e-30, 0.3, 1.5, -2.0, 7.0, 1e3, 1e6, 1e19, 1e20,
            1e30, 3e38, 1e100, 1e300, float("inf"), -float("inf"),
            float("nan")]
    x = torch.tensor(vals + [-v for v in vals], dtype=torch.float64)
    x = x.to(dtype)
    checked = 0
    for src in srcs:
        for fn in dnc.compile(src):
            text = fn.diff("all", 1, "torch")
            names = [n for n in re.findall(r"^def (\w+)\(", text, re.M)
                     if not n.startswith("dnc_")]
            ok(names[-1].endswith("__all") and
               len(names) == len(fn.params) + 3,
               "%s: f, its first derivatives, then %s__all" % (
                   fn.name, fn.name), names)
            scope = {}
            exec(text, scope)
            ps = [torch.tensor([0.7 + 0.1 * i], dtype=dtype)
                  for i in range(len(fn.params))]
            sep = [scope[n](x, *ps) for n in names[:-1]]
            together = scope[names[-1]](x, *ps)
            ok(len(together) == len(sep), "%s__all's tuple" % fn.name)
            for n, a, b in zip(names, together, sep):
                a, b = torch.broadcast_tensors(a, b)
                ok(a.dtype == b.dtype and torch.equal(
                    a.nan_to_num(1.25), b.nan_to_num(1.25)) and
                   torch.equal(torch.signbit(a), torch.signbit(b)),
                   "%s: %s__all's %s = %s's bits (%s)" % (
                       fn.name, fn.name, n, n, dtype),
                   lambda: "%s\n%s" % (a, b))
                checked += 1
    ok(checked > 90, "checked every function's derivatives", checked)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_helpers_at_subnormals_equal_kernels(dtype):
    """The printed sinh, asinh and softplus at subnormal arguments: sinh's
    tanh(a / 2) rounded them (sinh(x) / x was 0 at 1.4e-45 in f32), and
    PyTorch's CPU log1p gives 0 for the least subnormals (asinh's and
    softplus's). Values as the kernels'."""
    tiny = torch.finfo(dtype).tiny
    sub = [tiny * 2 ** -23 if dtype == torch.float32 else 5e-324,
           3 * (tiny * 2 ** -23 if dtype == torch.float32 else 5e-324),
           tiny / 3, 0.3]
    for src, xs in (("fn f(x) = sinh(x) / x", sub),
                    ("fn f(x) = asinh(x) / x", sub),
                    ("fn f(x) = softplus(x)",
                     [-100.0, -90.0, 3.0] if dtype == torch.float32
                     else [-745.0, -720.0, 3.0])):
        x = torch.tensor(xs, dtype=dtype)
        k = dt.pointwise(x, src)
        with dt.decomposed():
            d = dt.pointwise(x, src)
        ok(torch.allclose(d, k, rtol=4 * torch.finfo(dtype).eps, atol=0),
           "%s %s at %s: the form = the kernels" % (src, dtype, xs),
           lambda: (d, k))


def test_torch_form_takes_names_and_source():
    """torch_form takes what PointwiseNorm takes: a name of STANDARD or
    dnc source, as well as a dnc.Function (a name was an AttributeError)."""
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    a = torch.tensor([0.5], dtype=torch.float64)
    f, dfdx, dps = dt.torch_form("dyt")
    g = dt.torch_form("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")[0]
    ok(torch.allclose(f(x, a), torch.tanh(0.5 * x)), "by name")
    ok(torch.equal(f(x, a), g(x, a)), "by source, the same")
