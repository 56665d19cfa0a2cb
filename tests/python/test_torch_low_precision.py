"""test_torch_low_precision.py - values at the edges of a dtype's range in
dnc.torch: a parameter's gradient beyond float16's (or float32's) range
is inf, as PyTorch's own gradients overflow, never an error; a float16
layer's derivatives at every order (create_graph, torch.func, forward
mode) computed in float32 and rounded once, as its backward."""
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
