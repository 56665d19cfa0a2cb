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
from checks import ok  # noqa: E402

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


def module(name, src, dtype):
    fn = dt.resolve(src) if src else name
    m = dt.PointwiseNorm(6, fn, dtype=dtype)
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
