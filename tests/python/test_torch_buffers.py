"""test_torch_buffers.py - the tensors dnc.torch's CPU kernels write: made
on the CPU in the dtypes the layer defines, whatever PyTorch's defaults
(torch.set_default_device, torch.set_default_dtype) say, by the C++
layer call and by the Python one (DNC_TORCH_EXT=0, PyTorch 1.13, the
portable wheel) alike; and fresh, never the input itself."""
import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

# a scalar and a per-channel parameter: both kinds of gradient buffer
SRC = "fn f(x; a = 0.5, s[] = 0.25) = tanh(a * x + s)"


@pytest.fixture(params=["ext", "python"])
def call_path(request, monkeypatch):
    """The C++ layer call, or dnc.torch's Python kernels' calls."""
    if request.param == "python":
        monkeypatch.setattr(dt, "_ext", None)
    elif dt._ext is None:
        pytest.skip("no C++ layer call here")
    return request.param


def _layer_results(cf, dtype=torch.float32):
    """y, dx and every parameter's gradient of a CPU PointwiseNorm
    (channels first or last) and pointwise()'s y, all made with explicit
    devices and dtypes."""
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(8, SRC, channels_last=not cf, device="cpu",
                            dtype=dtype)
    shape = (2, 8, 3, 3) if cf else (4, 8)
    x = torch.randn(shape, device="cpu", dtype=torch.float64).to(dtype)
    with torch.no_grad():
        y0 = norm(x)
    xg = x.clone().requires_grad_(True)
    y = norm(xg)
    y.backward(torch.ones(shape, device="cpu", dtype=dtype))
    grads = [xg.grad] + [p.grad for p in norm.parameters()]
    pw = dt.pointwise(x if not cf else x.movedim(1, -1), SRC)
    return [y0, y.detach()] + grads + [pw]


def _same(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        ok(g.device.type == "cpu" and g.dtype == w.dtype and
           torch.equal(g, w), "%s: result %d on the CPU, as without it"
           % (what, i), lambda: (g.device, g.dtype, g, w))


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
def test_cpu_kernels_under_another_default_device(call_path, cf):
    """Under torch.set_default_device("meta") (as "cuda" in a GPU script)
    a CPU layer still computes on the CPU: its outputs and gradient
    buffers were made on the default device, and the kernels failed with
    "NULL data" (on CUDA they would have been given a GPU pointer)."""
    if not hasattr(torch, "set_default_device"):
        pytest.skip("torch.set_default_device is PyTorch 2's")
    want = _layer_results(cf)
    torch.set_default_device("meta")
    try:
        got = _layer_results(cf)
    finally:
        torch.set_default_device(None)
    _same(got, want, "set_default_device('meta')")


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16],
                         ids=["f32", "bf16"])
def test_cpu_kernels_under_another_default_dtype(call_path, cf, dtype):
    """torch.set_default_dtype(torch.float64) changes no dtype dnc.torch
    makes: y and dx in x's, the gradients in the parameters'."""
    want = _layer_results(cf, dtype)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = _layer_results(cf, dtype)
    finally:
        torch.set_default_dtype(old)
    _same(got, want, "set_default_dtype(torch.float64)")


@pytest.mark.parametrize("form", ["kernels", "decomposed"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_the_output_is_never_the_input(form, grad):
    """f = x without weight or bias: the decomposed form returned x itself
    (under no_grad, and from pointwise), so that y.add_(1) changed x; the
    kernels give a fresh tensor, and so does it now."""
    src = "fn idt(x) = x"
    norm = dt.PointwiseNorm(4, src, elementwise_affine=False)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.ones(2, 4, dtype=dtype, requires_grad=grad)
        with dt.decomposed(form == "decomposed"), \
                torch.set_grad_enabled(grad):
            ys = [("PointwiseNorm", norm.to(dtype)(x)),
                  ("pointwise", dt.pointwise(x, src))]
        for what, y in ys:
            ok(y is not x and y.data_ptr() != x.data_ptr(),
               "%s %s %s: y is not x" % (form, what, dtype))
            with torch.no_grad():
                y.add_(1)
            ok(torch.equal(x, torch.ones(2, 4, dtype=dtype)),
               "%s %s %s: y.add_(1) leaves x as it was"
               % (form, what, dtype), x)
            if grad:
                g, = torch.autograd.grad(y.sum(), x)
                ok(torch.equal(g, torch.ones_like(x)),
                   "%s %s %s: dy/dx = 1" % (form, what, dtype), g)
