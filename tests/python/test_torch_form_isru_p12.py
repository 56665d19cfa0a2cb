"""test_torch_form_isru_p12.py - the decomposed PyTorch form (`dnc diff
--format torch`, dnc.torch's path where its kernels cannot run) of the
inverse square root unit as users spell it, against dnc's kernels, where
c + t overflows: the form protected u / sqrt(c + u^2) alone (dnc_isru),
and x / sqrt(1 + beta x^2) was 0 at x = 1e20 in float32 where the kernels
give 1/sqrt(beta), x / (beta + x^2)^0.5 0 instead of 1, x / (1 + (a x)^2)
0 or NaN, their derivatives 0 or NaN. print_torch.c now takes the shapes
from rewrite.c's own matcher (dnc_isru_shape_of) and prints them through
dnc_isru, dnc_isru_d and dnc_ratl, which scale as the kernels do. Each
spelling of tests/test_isru_p11.c, f and every first derivative, float32
and float64, at its points: the same class as the kernels' (NaN, +-inf,
finite) and within a few ulp. Runs under PyTorch 1.13 and 2."""
import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import dnc  # noqa: E402
import dnc.torch as dt  # noqa: E402
from checks import ok, onnx_run  # noqa: E402

# tests/test_isru_p11.c's spellings (its `src`), each a function here
SPELLINGS = {
    "pow_half": "fn pow_half(x; beta = 3) = x / (beta + x^2)^0.5",
    "pow_mhalf": "fn pow_mhalf(x; beta = 3) = x * (beta + x^2)^-0.5",
    "coef": "fn coef(x; beta = 3) = x / sqrt(1 + beta * x^2)",
    "coef_r": "fn coef_r(x; beta = 3) = x * rsqrt(1 + beta * x * x)",
    "coef_div": "fn coef_div(x; s = 0.25) = x / sqrt(1 + x^2 / s)",
    "twox": "fn twox(x; beta = 3) = x / sqrt(beta + (2 * x)^2)",
    "alphax": "fn alphax(x; alpha = 2) = x / sqrt(1 + (alpha * x)^2)",
    "alpha2": "fn alpha2(x; alpha = 2) = alpha * x / sqrt(1 + alpha^2 * x^2)",
    "gain": "fn gain(x; g = 1.5, beta = 3) = g * x / sqrt(beta + x^2)",
    "rev": "fn rev(x; beta = 3) = x / sqrt(x^2 + beta)",
    "recip": "fn recip(x; beta = 3) = 1 / sqrt(beta + x^2)",
    "shifted": "fn shifted(x; mu = 0.5, beta = 3) = "
               "(x - mu) / sqrt(beta + (x - mu)^2)",
    "isru_a": "fn isru_a(x; a = 1.5, c = 2) = a * x / sqrt(c + (a * x)^2)",
    "isru_c": "fn isru_c(x; a = 1, c = 1e20) = a * x / sqrt(c + (a * x)^2)",
    "ratl": "fn ratl(x; a = 2) = x / (1 + (a * x)^2)",
    "ratl2": "fn ratl2(x; beta = 3) = x^2 / (beta + x^2)",
    "dyisru_dx": "fn dyisru_dx(x; beta = 301.1) = "
                 "beta / ((beta + x^2) * sqrt(beta + x^2))",
    "dyisru_db": "fn dyisru_db(x; beta = 301.1) = "
                 "-0.5 * (x / ((beta + x^2) * sqrt(beta + x^2)))",
    "big_a": "fn big_a(x; a = 4) = a * x / sqrt(1 + (a * x)^2)",
    "tiny_beta": "fn tiny_beta(x; beta = 1e-30) = x / sqrt(beta + x^2)",
}

# test_isru_p11.c's `xs`, each with both signs, those finite in the dtype
XS = [0.0, 1e-30, 0.5, 3, 30, 1e6, 1e10, 1e13, 1e19, 1e20, 1e30, 1e38,
      3e38, 1e103, 1e155, 1e200, 1e300, np.finfo(np.float64).max]
NP = {torch.float32: np.float32, torch.float64: np.float64}


def points(dtype):
    big = float(np.finfo(NP[dtype]).max)
    xs = [s * x for x in XS for s in (1.0, -1.0) if x <= big]
    return np.array(xs, dtype=NP[dtype])


def klass(v):
    return np.where(np.isnan(v), 0, np.where(np.isinf(v), np.sign(v) * 2, 1))


def agree(got, want, dtype, zero_sign, ulps=4):
    """the same class (NaN, +inf, -inf, finite) and, finite, within ulps
    of want or two smallest normals (a subnormal against 0); the same sign
    where both are 0 if zero_sign"""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    fi = np.finfo(NP[dtype])
    fin = np.isfinite(want) & np.isfinite(got)
    close = np.abs(got - want) <= ulps * float(fi.eps) * np.abs(want) + \
        2 * float(fi.tiny)
    zeros = (got == 0) & (want == 0)
    sign = ~zeros | ~zero_sign | (np.signbit(got) == np.signbit(want))
    return (klass(got) == klass(want)) & (~fin | close) & sign


def kernels(fn, x):
    """f, df/dx and df/dp for each parameter at each point of x, from dnc's
    kernels (forward, and backward one point at a time: its parameter
    gradients are sums)"""
    y = fn.forward(x)
    dx, _ = fn.backward(x, np.ones_like(x))
    dps = [np.empty(len(x)) for _ in fn.params]
    for i in range(len(x)):
        _, g = fn.backward(x[i:i + 1], np.ones(1, x.dtype))
        for k, p in enumerate(fn.params):
            dps[k][i] = g[p.name]
    return [y, dx] + dps


def decomposed(fn, x, dtype):
    f, dfdx, dfdps = dt.torch_form(fn)
    xt = torch.from_numpy(x)
    ps = [torch.tensor([p.default], dtype=dtype) for p in fn.params]
    return [g(xt, *ps).expand(xt.shape).numpy()
            for g in [f, dfdx] + list(dfdps)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_spelling_equals_kernels(name, dtype):
    fn = dnc.compile(SPELLINGS[name])[name]
    x = points(dtype)
    k = kernels(fn, x)
    d = decomposed(fn, x, dtype)
    what = ["f", "df/dx"] + ["df/d" + p.name for p in fn.params]
    for i, (w, a, b) in enumerate(zip(what, k, d)):
        # the kernels' parameter gradients are sums, from +0: no -0
        good = agree(b, a, dtype, zero_sign=i < 2)
        ok(good.all(), "%s %s: %s of the torch form = the kernels' at |x| "
           "up to the largest finite" % (name, dtype, w),
           lambda: [(float(xi), float(ai), float(bi)) for xi, ai, bi, gi in
                    zip(x, a, b, good) if not gi][:6])


def test_coef_at_1e20_float32():
    # the torch form was 0 here (beta x^2 overflows), the kernels 1/sqrt(3)
    f = dt.torch_form(dnc.compile(SPELLINGS["coef"])["coef"])[0]
    y = f(torch.tensor([1e20, -1e20, 3e38], dtype=torch.float32),
          torch.tensor([3.0]))
    want = 1 / math.sqrt(3)
    ok(torch.allclose(y, torch.tensor([want, -want, want]), rtol=1e-6,
                      atol=0), "x / sqrt(1 + beta x^2) at x = 1e20 in "
       "float32 is 1/sqrt(beta), not 0", y)


def test_every_spelling_is_printed_through_a_helper():
    # each function of the list and each derivative: the quotient, root or
    # rational is a call of dnc_isru, dnc_isru_d or dnc_ratl, never the
    # bare torch.sqrt / torch.rsqrt / dnc_pow of c + t that overflows
    for name, src in SPELLINGS.items():
        text = dnc.compile(src)[name].diff("all", 1, "torch")
        body = text[text.index("\ndef %s(" % name):]
        for fdef in re.split(r"\n(?=def )", body.strip()):
            ok(re.search(r"dnc_(isru|isru_d|ratl)\(", fdef) and
               not re.search(r"torch\.r?sqrt|dnc_pow", fdef),
               "%s: printed through the helpers" % name, fdef)


def test_forms_on_meta_and_half():
    # meta tensors (shapes only), and float16/bfloat16 computed in float32
    # and rounded once, as the kernels do
    for name, src in SPELLINGS.items():
        fn = dnc.compile(src)[name]
        fs = dt.torch_form(fn)
        x = torch.empty(3, 4, device="meta")
        ps = [torch.empty(1, device="meta") for _ in fn.params]
        for g in [fs[0], fs[1]] + list(fs[2]):
            y = g(x, *ps)
            ok(y.device.type == "meta" and y.shape == (3, 4),
               "%s: the torch form on meta tensors" % name)
    f = dt.torch_form(dnc.compile(SPELLINGS["coef"])["coef"])[0]
    for dtype in (torch.bfloat16, torch.float16):
        big = torch.finfo(dtype).max
        y = f(torch.tensor([big, -3e3, 0.5], dtype=dtype),
              torch.tensor([3.0], dtype=dtype))
        want = torch.tensor([1 / math.sqrt(3), -1 / math.sqrt(3),
                             0.5 / math.sqrt(1.75)], dtype=dtype)
        ok(y.dtype == dtype and torch.allclose(y.float(), want.float(),
                                                rtol=1e-2, atol=0),
           "coef in %s: no overflow of beta x^2 in the dtype" % dtype, y)


def test_dnc_torch_module_at_overflow():
    # PointwiseNorm's decomposed forward and backward (dnc.torch's own
    # path, the derivatives of the printed form) = its kernels at 1e20
    src = SPELLINGS["isru_a"]
    x = torch.tensor([[1e20, -1e20, 1e30, -3.0]], dtype=torch.float32)
    out = []
    for dec in (False, True):
        m = dt.PointwiseNorm(4, dt.resolve(src))
        xx = x.clone().requires_grad_()
        with dt.decomposed(dec):
            y = m(xx)
            y.backward(torch.ones_like(y))
        out.append([y.detach(), xx.grad] + [p.grad for p in m.parameters()])
    for a, b in zip(*out):
        ok(torch.allclose(a, b, rtol=1e-5, atol=1e-30) and
           bool(torch.isfinite(b).all()),
           "isru_a: dnc.torch's decomposed path = its kernels at 1e20",
           lambda: out)


@pytest.mark.skipif(not hasattr(torch, "compile"),
                    reason="torch.compile is PyTorch 2's")
def test_under_torch_compile():
    import torch._dynamo
    torch._dynamo.reset()
    fn = dnc.compile(SPELLINGS["coef"])["coef"]
    f, dfdx, (dfdb,) = dt.torch_form(fn)
    x = torch.tensor([1e20, -1e20, 0.5, 3e38], dtype=torch.float32)
    b = torch.tensor([3.0])
    for g in (f, dfdb):
        c = torch.compile(g, fullgraph=True, dynamic=False)
        want, got = g(x, b), c(x, b)
        ok(torch.allclose(got, want, rtol=1e-6, atol=0),
           "the torch form under torch.compile(fullgraph=True) = eager",
           lambda: (got, want))


def test_onnx_export_legacy():
    # the lambdas of the printed form are traced as any Python code: the
    # exported graph is the scaled one
    ort = pytest.importorskip("onnxruntime")
    m = dt.PointwiseNorm(4, dt.resolve(SPELLINGS["alphax"])).eval()
    x = torch.tensor([[1e20, -1e20, 1e30, -3.0]])
    y = onnx_run(ort, m, x)
    with torch.no_grad():
        want = m(x)
    ok(torch.allclose(y, want, rtol=1e-5, atol=0) and
       abs(float(y[0, 0]) - 0.5) < 1e-6,
       "x / sqrt(1 + (alpha x)^2) exported to ONNX: 1/alpha at 1e20",
       lambda: (y, want))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["rev", "shifted", "isru_a", "big_a"])
def test_autograd_through_the_derivatives(name, dtype):
    # a second order under torch.compile is autograd through the printed
    # first derivatives: where t is u^2 or the square of a base, the
    # helpers' k keeps S near 1 from |u| = 2^20 on (bit for bit the same
    # values), so that S^-2.5 neither underflows (-5e-37 for 1e-36 at
    # x = 1e12 in float32) nor overflows (NaN at 1e13, with the kernels'
    # k = 2^-84); against dnc's second derivatives, from the kernels
    fn = dnc.compile(SPELLINGS[name])[name]
    f, dfdx, dfdps = dt.torch_form(fn)
    fi = np.finfo(NP[dtype])
    # not the top of the range: there the kernels' second derivatives of
    # isru_a are NaN (its a x overflows in them), autograd's 0
    x = points(dtype)
    x = x[np.abs(x) < float(fi.max) / 4]
    for wrt, g in [("x", dfdx)] + [(p.name, d) for p, d in
                                    zip(fn.params, dfdps)]:
        xt = torch.from_numpy(x.copy()).requires_grad_()
        ps = [torch.tensor([p.default], dtype=dtype) for p in fn.params]
        got, = torch.autograd.grad(g(xt, *ps).sum(), xt)
        want, _ = fn.derivative(wrt).backward(x, np.ones_like(x))
        a, b = got.numpy().astype(np.float64), want.astype(np.float64)
        good = (klass(a) == klass(b)) & (
            ~np.isfinite(b) | (np.abs(a - b) <= 1e-3 * np.abs(b) +
                               4 * float(fi.tiny)))
        ok(good.all(), "%s %s: autograd through d/d%s = dnc's second "
           "derivative" % (name, dtype, wrt),
           lambda: [(float(xi), float(ai), float(bi)) for xi, ai, bi, gi in
                    zip(x, a, b, good) if not gi][:6])


def test_onnx_export_of_pytorch_1_13_loads(tmp_path):
    # dnc_isru_scale chose its scale by torch.where of Python numbers:
    # PyTorch 1.13's exporter made them doubles beside float tensors, and
    # onnxruntime refused the model ("Where ... bound to different types");
    # the constants are 0-d tensors of u's dtype now. Exported by Debian's
    # python3 with 1.13, run here
    import subprocess
    import sys
    ort = pytest.importorskip("onnxruntime")
    old = "/usr/bin/python3"
    if not re.match(r"1\.", subprocess.run(
            [old, "-c", "import torch; print(torch.__version__)"],
            capture_output=True, text=True).stdout):
        pytest.skip("no PyTorch 1.13 at /usr/bin/python3")
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    code = ("import torch, numpy as np, dnc.torch as dt\n"
            "torch.manual_seed(0)\n"
            "m = dt.PointwiseNorm(8, 'dyisru').eval()\n"
            "x = torch.randn(4, 8) * 30\n"
            "x[0, :4] = torch.tensor([1e30, -1e30, 1e-30, 0.0])\n"
            "torch.onnx.export(m, (x,), %r, opset_version=17)\n"
            "np.save(%r, x.numpy())\n"
            "np.save(%r, m(x).detach().numpy())\n"
            % (str(tmp_path / "m.onnx"), str(tmp_path / "x.npy"),
               str(tmp_path / "y.npy")))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    r = subprocess.run([old, "-c", code], capture_output=True, text=True,
                       env=env)
    ok(r.returncode == 0, "exported by PyTorch 1.13", r.stderr[-2000:])
    s = ort.InferenceSession(str(tmp_path / "m.onnx"),
                             providers=["CPUExecutionProvider"])
    x, want = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    got = s.run(None, {s.get_inputs()[0].name: x})[0]
    ok(np.allclose(got, want, rtol=1e-6, atol=0), "onnxruntime runs it",
       lambda: (got[0], want[0]))
