"""test_torch_autograd_p27.py - PyTorch 2 autograd and torch.func flows of
users against the same layer written in plain PyTorch (DyT, gamma *
tanh(alpha * x) + beta), float32 and float64: a torch.func.vjp whose vjp_fn
runs after vjp has returned, tensors that escaped a transform, and
torch.func.linearize and forward mode under a dispatch mode.
Skipped as a whole under PyTorch 1.13."""
import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no torch.library.custom_op (PyTorch 2 only)"
                % torch.__version__, allow_module_level=True)

from torch.func import functional_call, grad, vjp  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else \
        dict(rtol=1e-12, atol=1e-13)


def dyt(channels_last, dtype):
    """A DyT PointwiseNorm of random weight and bias, and the same layer as
    a function of a parameter dict in plain PyTorch."""
    torch.manual_seed(0)
    m = dt.PointwiseNorm(4, "dyt", alpha=0.7,
                         channels_last=channels_last).to(dtype)
    with torch.no_grad():
        m.weight.normal_()
        m.bias.normal_()

    def ref(p, x):
        tail = [] if channels_last else [1] * (x.dim() - 2)
        return p["weight"].view(-1, *tail) * torch.tanh(p["alpha"] * x) + \
            p["bias"].view(-1, *tail)
    return m, ref


def same(a, b, dtype):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        assert u.shape == v.shape
        assert torch.allclose(u, v, **tol(dtype)), (u - v).abs().max()


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_vjp_fn_after_the_transform(channels_last, dtype):
    """torch.func.vjp returns vjp_fn, called after the transform is over:
    its saved x is a tensor of torch.func's without storage, and the
    symbolic backward's kernels read its data pointer ("Cannot access data
    pointer of Tensor that doesn't have storage"). Also with create_graph
    (a second derivative through vjp_fn's result), and a tensor that
    escaped torch.func.grad given to the module and to pointwise after."""
    m, ref = dyt(channels_last, dtype)
    pm = dict(m.named_parameters())
    x = torch.randn((3, 5, 4) if channels_last else (3, 4, 5), dtype=dtype)
    t = torch.randn_like(x)
    results = []
    for f in (lambda p, x: functional_call(m, p, (x,)), ref):
        out = []
        _, back = vjp(lambda x: f(pm, x), x)
        out.append(back(t))
        _, back = vjp(lambda p: f(p, x), pm)
        out.append(back(t))
        _, back = vjp(f, pm, x)
        out.append(back(t))
        xx = x.clone().requires_grad_()
        _, back = vjp(lambda x: f(pm, x), xx)
        g, = back(t)
        out.append(torch.autograd.grad(g.pow(2).sum(), [xx, m.alpha]))
        leak = []
        grad(lambda x: (leak.append(x * 1), f(pm, x).sum())[1])(x)
        out.append(f(pm, leak[0]))
        results.append(out)
    same(results[0], results[1], dtype)
    leak = []
    grad(lambda x: (leak.append(x * 1), dt.pointwise(x, "dyt").sum())[1])(x)
    same(dt.pointwise(leak[0], "dyt"), torch.tanh(0.5 * x), dtype)


@pytest.mark.parametrize("decomposed", [False, True])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linearize_and_forward_mode_under_a_dispatch_mode(
        channels_last, dtype, decomposed):
    """torch.func.linearize (make_fx over forward_ad's dual tensors) of a
    PointwiseNorm and of pointwise: the layer took the custom operator,
    which refused the tangent ("dnc::layer_forward has no forward-mode
    derivative ... PointwiseNorm compute one"), and the operator's check
    of its tangents, run below autograd under make_fx, tripped PyTorch's
    internal assert. Forward mode under FlopCounterMode likewise."""
    import contextlib
    import torch.autograd.forward_ad as fwad
    from torch.func import linearize
    from torch.utils.flop_counter import FlopCounterMode
    m, ref = dyt(channels_last, dtype)
    pm = dict(m.named_parameters())
    x = torch.randn((2, 3, 5, 4) if channels_last else (2, 4, 3, 5),
                    dtype=dtype)
    t = torch.randn_like(x)
    with dt.decomposed() if decomposed else contextlib.nullcontext():
        y, f = linearize(m, x)
        y0, f0 = linearize(lambda x: ref(pm, x), x)
        same((y, f(t), f(2 * t)), (y0, f0(t), f0(2 * t)), dtype)
        with FlopCounterMode(display=False):
            with fwad.dual_level():
                tangent = fwad.unpack_dual(m(fwad.make_dual(x, t))).tangent
        same(tangent, f0(t), dtype)
        y, f = linearize(lambda x: dt.pointwise(x, "dyt", alpha=0.7), x)
        same((y, f(t)), (torch.tanh(0.7 * x), 0.7 * t / torch.cosh(0.7 * x)
                         ** 2), dtype)


@pytest.mark.parametrize("channels_last", [True, False])
def test_tensor_escaped_from_vmap(channels_last):
    """A batched tensor kept from inside torch.func.vmap and used after it
    returned (a user's error, which PyTorch's own operations refuse by
    name): the kernels' path stopped at torch's AssertionError "interpreter
    must not be None"; it is now a RuntimeError that says what happened,
    for the input, for a parameter, and for pointwise."""
    from checks import raises
    from torch.func import vmap
    m, _ = dyt(channels_last, torch.float32)
    x = torch.randn((3, 2, 5, 4) if channels_last else (3, 2, 4, 5))
    leak = []
    vmap(lambda x: (leak.append(x * 1), m(x))[1])(x)
    # (channels first, PyTorch's permute of x refuses it first, as clearly)
    raises(RuntimeError, lambda: m(leak[0]), "an escaped input",
           "the input is a batched tensor of torch.func.vmap's outside any "
           "vmap: it escaped" if channels_last else
           "escaped from inside a function being vmapped")
    raises(RuntimeError, lambda: dt.pointwise(leak[0], "dyt"),
           "an escaped input of pointwise", "escaped from inside a function")
    alphas = []
    vmap(lambda a: (alphas.append(a * 1), dt.pointwise(x, "dyt", alpha=a))[1]
         )(torch.tensor([0.5, 0.6]))
    raises(RuntimeError, lambda: dt.pointwise(x, "dyt", alpha=alphas[0]),
           "an escaped parameter", "parameter 0 is a batched tensor")


OPERATOR_JVP = r"""
import warnings
import torch
import dnc.torch as dt
warnings.simplefilter("ignore")
m = dt.PointwiseNorm(4, "dyt").double()
x = torch.randn(3, 4, dtype=torch.float64)
mod = torch.export.export(m, (x,)).module()
try:
    j = torch.func.jacfwd(mod)(x)
    print("jacobian", float(j.abs().sum()))
except NotImplementedError as e:
    print("refused:", e)
"""


def test_forward_mode_over_the_operator_refused_everywhere():
    """torch.func.jvp and jacfwd over dnc::layer_forward itself (an
    exported program's module calls it): refused on the CPU by the C++
    extension's autograd kernel, but on other devices (meta here, CUDA
    alike) and without the extension (DNC_TORCH_EXT=0, the portable
    wheel) torch.library's autograd kernel took the call and dropped the
    tangent: a Jacobian of 0, silently. Refused on every device now."""
    import os
    import subprocess
    import sys
    from checks import raises
    dyt_src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)"
    x = torch.randn(3, 4, device="meta")
    a = torch.full((1,), 0.5, device="meta")
    raises(NotImplementedError, lambda: torch.func.jvp(
        lambda z: torch.ops.dnc.layer_forward(z, None, None, [a], dyt_src,
                                              "dyt", 0), (x,), (x,)),
        "jvp over the operator on the meta device",
        "no forward-mode derivative")
    raises(NotImplementedError, lambda: torch.func.jvp(
        lambda a: torch.ops.dnc.layer_forward(x, None, None, [a], dyt_src,
                                              "dyt", 0), (a,), (a,)),
        "jvp in a parameter on the meta device", "no forward-mode derivative")
    env = dict(os.environ, DNC_TORCH_EXT="0")
    out = subprocess.run([sys.executable, "-c", OPERATOR_JVP], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: dnc.torch: dnc::layer_forward has no forward-mode " \
        "derivative" in out.stdout, out.stdout
