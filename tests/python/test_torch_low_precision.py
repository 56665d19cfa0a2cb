"""test_torch_low_precision.py - values at the edges of a dtype's range in
dnc.torch: a parameter's gradient beyond float16's (or float32's) range
is inf, as PyTorch's own gradients overflow, never an error."""
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
