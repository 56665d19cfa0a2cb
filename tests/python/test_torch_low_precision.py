"""test_torch_low_precision.py - values at the edges of a dtype's range in
dnc.torch: a parameter's gradient beyond float16's (or float32's) range
is inf, as PyTorch's own gradients overflow, never an error; a float16
layer's derivatives at every order (create_graph, torch.func, forward
mode) computed in float32 and rounded once, as its backward; and
pointwise()'s numbers keeping their values in float32, where a bfloat16 or
float16 layer computes."""
import math

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402


@pytest.fixture(params=["ext", "python"])
def call_path(request, monkeypatch):
    """The C++ layer call, or dnc.torch's Python kernels' calls (PyTorch
    1.13, DNC_TORCH_EXT=0)."""
    if request.param == "python":
        monkeypatch.setattr(dt, "_ext", None)
    elif dt._ext is None:
        pytest.skip("no C++ layer call here")
    return request.param


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("dtype,scale", [(torch.float16, 8.0),
                                         (torch.float32, 1e37)],
                         ids=["f16", "f32"])
def test_scalar_gradient_beyond_the_range_is_inf(call_path, cf, dtype,
                                                 scale):
    """DyT's alpha gradient, sum dy x sech^2(alpha x) over 4096 x 64
    ordinary inputs, is about 1.4e6 for dy = 8: beyond float16's 65504.
    PyTorch 1.13's torch.full refused it ("value cannot be converted to
    type at::Half without overflow"), and every PyTorch's refuses a float32
    one beyond 3.4e38 (dy = 1e37): both are inf now, as PyTorch's own
    sums overflow."""
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(64, "dyt", dtype=dtype, channels_last=not cf)
    x = torch.randn(4096, 64).abs().to(dtype)
    if cf:
        x = x.reshape(64, 64, 8, 8)
    y = norm(x.requires_grad_(True))
    y.backward(torch.full(y.shape, scale, dtype=dtype))
    g = norm.alpha.grad
    ok(g.dtype == dtype and g.shape == (1,) and math.isinf(g.item()) and
       g.item() > 0, "the alpha gradient beyond %s's range: inf" % dtype, g)
    ok(torch.isfinite(x.grad).all(), "dx is finite")


# DyT (alpha 0.5) at x where f' = 0.5 sech^2(0.5 x) is below float16's
# normal range, and a scaled loss's dy: dy f' is a float16 number
XS = [9.0, 12.0, 16.0, 20.0]
DY = 4096.0


def _dx_exact():
    x = torch.tensor(XS, dtype=torch.float64)
    return DY * 0.5 / torch.cosh(0.5 * x) ** 2


def _near(got, want, dtype, what):
    """got within two units in the last place of dtype (absolute, the
    least subnormal's step, where it is below the normal range)."""
    tol = 2.0 ** -10 if dtype == torch.float16 else 2.0 ** -7
    tiny = 2.0 ** -24 if dtype == torch.float16 else 0.0
    err = (got.double().reshape(-1) - want).abs()
    ok(got.dtype == dtype and bool((err <= tol * want.abs() + tiny).all()),
       what, lambda: "got %s\nwant %s" % (got.reshape(-1).tolist(),
                                          want.tolist()))


def _norm_and_x(dtype, cf):
    norm = dt.PointwiseNorm(4, "dyt", dtype=dtype, elementwise_affine=False,
                            channels_last=not cf)
    x = torch.tensor([XS], dtype=dtype)
    return norm, (x.reshape(1, 4, 1, 1) if cf else x)


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("form", ["kernels", "decomposed"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16],
                         ids=["f16", "bf16"])
def test_create_graph_gradient_is_rounded_once(call_path, dtype, form, cf):
    """A float16 layer's dx with create_graph=True (and torch.func.grad,
    and forward mode) was dy times f' rounded to float16 first: f' below
    float16's normal range lost its digits or was 0 (0.0009766 for
    0.0009219, 0 for 1.7e-5), where loss.backward() computes in float32
    and rounds once, as docs/python.md says of bfloat16 and float16."""
    want = _dx_exact()
    norm, x0 = _norm_and_x(dtype, cf)
    x = x0.clone().requires_grad_(True)
    dy = torch.full_like(x0, DY)
    with dt.decomposed(form == "decomposed"):
        y = norm(x)
        g1, = torch.autograd.grad(y, x, dy, retain_graph=True)
        g2, = torch.autograd.grad(y, x, dy, create_graph=True)
        _near(g1, want, dtype, "backward")
        _near(g2, want, dtype, "create_graph=True")
        # the second derivative goes through the wide type back to x
        h, = torch.autograd.grad(g2.float().sum(), x)
        ok(h.dtype == dtype and torch.isfinite(h).all(),
           "the second derivative reaches x", h)
        if form == "kernels" or dt.HAS_CUSTOM_OPS:
            # (PyTorch 1.13's decomposed form has no forward mode)
            fwad = torch.autograd.forward_ad
            with fwad.dual_level():
                t = fwad.unpack_dual(norm(fwad.make_dual(x0, dy))).tangent
            _near(t, want, dtype, "forward mode's tangent")
        if hasattr(torch, "func"):
            g3 = torch.func.grad(lambda v: (norm(v) * dy).sum())(x0)
            _near(g3, want, dtype, "torch.func.grad")
            _, t = torch.func.jvp(norm, (x0,), (dy,))
            _near(t, want, dtype, "torch.func.jvp")


@pytest.mark.parametrize("form", ["kernels", "decomposed"])
def test_create_graph_parameter_gradients_in_float16(call_path, form):
    """The parameters' gradients with create_graph=True agree with
    loss.backward()'s in float16 (each df/dp in float32, summed there)."""
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(8, "dyt", dtype=torch.float16)
    x = (torch.randn(64, 8) * 8).half().requires_grad_(True)
    dy = torch.full((64, 8), 256.0, dtype=torch.float16)
    with dt.decomposed(form == "decomposed"):
        y = norm(x)
        g1 = torch.autograd.grad(y, list(norm.parameters()), dy,
                                 retain_graph=True)
        g2 = torch.autograd.grad(y, list(norm.parameters()), dy,
                                 create_graph=True)
    for (n, _), a, b in zip(norm.named_parameters(), g1, g2):
        ok(a.dtype == b.dtype == torch.float16 and
           torch.allclose(a.float(), b.float(), rtol=2 ** -9, atol=0),
           "d%s: create_graph's as backward's" % n, (a, b))


@pytest.mark.parametrize("form", ["kernels", "decomposed"])
def test_pointwise_number_keeps_its_value_in_float16(form):
    """pointwise(x_f16, "dyisru", beta=1e5): the number was made a float16
    tensor, inf, and y was 0; it keeps its value in float32, where the
    layer computes (as PointwiseNorm's float32 parameters do)."""
    x = torch.tensor([[1.0, 2.0, 100.0, 1000.0]], dtype=torch.float16)
    want = dt.pointwise(x.double(), "dyisru", beta=1e5)
    with dt.decomposed(form == "decomposed"):
        y = dt.pointwise(x, "dyisru", beta=1e5)
        norm = dt.PointwiseNorm(4, "dyisru", beta=1e5,
                                elementwise_affine=False)
        ym = norm(x)
    _near(y, want.reshape(-1), torch.float16, "pointwise, beta = 1e5")
    _near(ym, want.reshape(-1), torch.float16, "PointwiseNorm, beta = 1e5")
    if hasattr(torch, "func"):
        # the custom operator's path (torch.func), which checks the
        # float32 parameter of a float16 x too
        g = torch.func.grad(lambda v: dt.pointwise(v, "dyisru", beta=1e5)
                            .float().sum())(x)
        gw = torch.func.grad(lambda v: dt.pointwise(v, "dyisru", beta=1e5)
                             .sum())(x.double())
        _near(g, gw.reshape(-1), torch.float16, "torch.func.grad")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16],
                         ids=["bf16", "f16"])
def test_pointwise_numbers_as_float32_tensors(dtype):
    """A number, a source's default, a weight or bias given as numbers:
    the same results as the same values given as float32 tensors (DyT's
    alpha = 0.3 was 0.30078125 in bfloat16, DyISRU's default beta 301.1
    was 301: y and the float32 weight's gradient differed)."""
    torch.manual_seed(0)
    C = 8
    x = (torch.randn(512, C) * 3).to(dtype)
    w = torch.linspace(0.5, 1.5, C)
    for src, num, ten in [("dyt", {"alpha": 0.3},
                           {"alpha": torch.tensor([0.3])}),
                          ("dyisru", {}, {"beta": torch.tensor([301.1])}),
                          ("dyisru", {"beta": 301.1},
                           {"beta": torch.tensor([301.1])})]:
        ys, gs = [], []
        for kw in (num, ten):
            xr = x.clone().requires_grad_(True)
            wr = w.clone().requires_grad_(True)
            y = dt.pointwise(xr, src, weight=wr, **kw)
            y.float().sum().backward()
            ys.append(y)
            gs.append((xr.grad, wr.grad))
        what = "%s %s %s" % (dtype, src, num)
        ok(ys[0].dtype == dtype and torch.equal(ys[0], ys[1]),
           what + ": y", lambda: (ys[0] - ys[1]).abs().max())
        ok(torch.equal(gs[0][0], gs[1][0]) and torch.equal(gs[0][1],
                                                           gs[1][1]),
           what + ": dx and dweight", gs)
        norm = dt.PointwiseNorm(C, src, **{k: float(v) for k, v in
                                           ten.items()})
        with torch.no_grad():
            norm.weight.copy_(w)
        ok(torch.equal(norm(x), ys[0]), what + ": PointwiseNorm's y")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ya = dt.pointwise(x, src, weight=w, **num)
            yb = dt.pointwise(x, src, weight=w, **ten)
        ok(torch.equal(ya, yb), what + ": under autocast",
           lambda: (ya - yb).abs().max())


def test_pointwise_weight_and_bias_numbers_keep_their_values():
    """weight and bias given as numbers are float32 for a float16 x too:
    a weight of 1e5 (inf in float16) scaling f = 1e-6 x gave inf, a bias
    of 0.001 (0.0010004 in float16) cancelling f = x - 0.001 left 4e-7."""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float16)
    y = dt.pointwise(x, "fn g(x) = x * 1e-6", weight=[1e5] * 4)
    _near(y, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64),
          torch.float16, "weight 1e5")
    z = torch.zeros(1, 4, dtype=torch.float16)
    y = dt.pointwise(z, "fn g(x; c = 0.001) = x - c", bias=[0.001] * 4,
                     c=torch.tensor([0.001]))
    ok(torch.equal(y, z), "bias 0.001 cancels f = -0.001", y)
    y = dt.pointwise(z, "fn g(x; c = 0.001) = x - c", bias=[0.001] * 4)
    ok(torch.equal(y, z), "bias and c as numbers", y)
