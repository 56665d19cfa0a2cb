"""test_scalar_input_p11.py - dnc.torch.pointwise on a 0-d tensor: one
channel and a 0-d result, as torch.tanh and dnc's NumPy functions take a
number (it was refused, "needs an input with a channel dimension", so
torch.func.grad of f at a point and vmap(grad(f)) over points failed).
Values and derivatives against the same function in plain PyTorch, in
float64; PointwiseNorm itself still refuses a 0-d input, as nn.LayerNorm
does."""
import math

import pytest
import torch

import dnc.torch as dt

HAS_FUNC = hasattr(torch, "func") and hasattr(torch.func, "vmap")
POINTS = [-30.0, -2.5, -0.3, 0.0, 0.4, 1.7, 25.0]


def _dyt(s, alpha=0.5):
    return torch.tanh(alpha * s)


@pytest.mark.parametrize("decomposed", [False, True])
def test_zero_dim_values_and_gradients(decomposed):
    with dt.decomposed(decomposed):
        for v in POINTS:
            x = torch.tensor(v, dtype=torch.float64, requires_grad=True)
            y = dt.pointwise(x, "dyt", alpha=0.8)
            assert y.shape == (), y.shape
            assert torch.allclose(y, _dyt(x.detach(), 0.8), rtol=1e-14,
                                  atol=1e-15), v
            a = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
            w = torch.tensor([1.3], dtype=torch.float64, requires_grad=True)
            b = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)

            def f(x, a, w, b):
                return dt.pointwise(x, "dyt", w, b, alpha=a)
            assert torch.autograd.gradcheck(f, (x, a, w, b))
            assert torch.autograd.gradgradcheck(f, (x, a, w, b))
            # the gradients are the plain function's
            got = torch.autograd.grad(f(x, a, w, b), (x, a, w, b))
            want = torch.autograd.grad(w * torch.tanh(a * x) + b,
                                       (x, a, w, b))
            for g, r in zip(got, want):
                assert g.shape == r.shape
                assert torch.allclose(g, r, rtol=1e-12, atol=1e-15), v


def test_zero_dim_low_precision_and_shapes_refused():
    y = dt.pointwise(torch.tensor(1.5, dtype=torch.bfloat16), "derf")
    assert y.shape == () and y.dtype == torch.bfloat16
    assert float(y) == float(torch.tensor(math.erf(0.75),
                                          dtype=torch.bfloat16))
    # one channel: a weight of two values does not fit
    with pytest.raises(ValueError, match="weight has shape \\(2,\\)"):
        dt.pointwise(torch.tensor(1.0), "dyt", torch.ones(2))
    # the module, as nn.LayerNorm, wants a channel dimension
    with pytest.raises(ValueError, match="not a 0-d tensor"):
        dt.PointwiseNorm(1, "dyt")(torch.tensor(1.0))


@pytest.mark.skipif(not HAS_FUNC, reason="torch.func needs PyTorch 2")
def test_func_grad_at_points():
    from torch.func import grad, vmap
    xs = torch.tensor(POINTS, dtype=torch.float64)

    def f(s):
        return dt.pointwise(s, "dyt", alpha=1.0)
    d1 = vmap(grad(f))(xs)
    d2 = vmap(grad(grad(f)))(xs)
    # sech^2, not 1 - tanh^2 (0 at -30, where dnc's is 3.5e-26, right)
    t, sech2 = torch.tanh(xs), torch.cosh(xs) ** -2
    assert torch.allclose(d1, sech2, rtol=1e-12, atol=1e-300)
    assert torch.allclose(d2, -2 * t * sech2, rtol=1e-10, atol=1e-300)
    # one point, and jvp
    assert torch.allclose(grad(f)(torch.tensor(0.5, dtype=torch.float64)),
                          1 - torch.tanh(torch.tensor(0.5,
                                                      dtype=torch.float64))
                          ** 2)
    _, tangent = torch.func.jvp(f, (torch.tensor(0.5, dtype=torch.float64),),
                                (torch.tensor(2.0, dtype=torch.float64),))
    assert torch.allclose(tangent, 2 * (1 - math.tanh(0.5) ** 2) *
                          torch.ones((), dtype=torch.float64))


@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS,
                    reason="torch.compile needs PyTorch 2 (custom ops)")
def test_zero_dim_compiled():
    import torch._dynamo
    torch._dynamo.reset()
    c = torch.compile(lambda s: dt.pointwise(s, "dyt"), fullgraph=True)
    x = torch.tensor(0.9, requires_grad=True)
    y = c(x)
    y.backward()
    assert y.shape == ()
    assert torch.allclose(y, torch.tanh(torch.tensor(0.45)))
    assert torch.allclose(x.grad, 0.5 * (1 - torch.tanh(torch.tensor(0.45))
                                         ** 2))
