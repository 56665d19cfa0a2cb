"""test_user_paths_p11.py - what training scripts do around a norm, not
covered elsewhere: activation checkpointing (torch.utils.checkpoint,
reentrant or not, both layouts, eager and compiled), torch.compile's
CPU modes with dynamic shapes, a full backward hook, gradient
accumulation and frozen parameters, each against the same layer written
in plain PyTorch."""
import warnings

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import dnc.torch as dt


def _plain(norm, x):
    """norm's function in plain PyTorch (derf: erf(alpha x + shift))."""
    if norm.channels_last:
        w, b = norm.weight, norm.bias
    else:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        w, b = norm.weight.reshape(shape), norm.bias.reshape(shape)
    return w * torch.erf(norm.alpha * x + norm.shift) + b


def _norm(cf):
    torch.manual_seed(0)
    n = dt.PointwiseNorm(4, "derf", channels_last=not cf, alpha=0.7,
                         shift=0.1).double()
    with torch.no_grad():
        n.weight.uniform_(0.5, 1.5)
        n.bias.uniform_(-0.5, 0.5)
    return n


def _grads(norm, run, x):
    norm.zero_grad()
    x = x.detach().clone().requires_grad_()
    run(x).square().sum().backward()
    return [x.grad] + [p.grad.clone() for p in norm.parameters()]


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-10, atol=1e-12), (g, w)


@pytest.mark.parametrize("cf", [False, True])
@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing(cf, reentrant):
    norm = _norm(cf)
    lin = nn.Linear(4, 4).double() if not cf else nn.Conv2d(4, 4, 1).double()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64) if cf else \
        torch.randn(3, 5, 4, dtype=torch.float64)

    def block(t):
        return norm(lin(t))
    want = _grads(norm, lambda t: _plain(norm, lin(t)), x)
    _same(_grads(norm, block, x), want)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1.13: use_reentrant's notes
        _same(_grads(norm, lambda t: checkpoint(block, t,
                                                use_reentrant=reentrant),
                     x), want)


@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS,
                    reason="torch.compile needs PyTorch 2 (custom ops)")
@pytest.mark.parametrize("cf", [False, True])
def test_checkpoint_inside_torch_compile(cf):
    import torch._dynamo
    torch._dynamo.reset()
    norm = _norm(cf)
    x = torch.randn(2, 4, 3, dtype=torch.float64) if cf else \
        torch.randn(3, 4, dtype=torch.float64)
    want = _grads(norm, lambda t: _plain(norm, t), x)
    run = torch.compile(lambda t: checkpoint(norm, t, use_reentrant=False),
                        backend="aot_eager", fullgraph=True)
    _same(_grads(norm, run, x), want)


@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS,
                    reason="torch.compile needs PyTorch 2 (custom ops)")
@pytest.mark.parametrize("mode", ["reduce-overhead",
                                  "max-autotune-no-cudagraphs"])
def test_compile_modes_dynamic_on_cpu(mode):
    import torch._dynamo
    torch._dynamo.reset()
    norm = _norm(False).float()
    compiled = torch.compile(norm, mode=mode, dynamic=True, fullgraph=True)
    for shape in ((3, 4), (5, 4), (2, 3, 4)):
        x = torch.randn(shape)
        want = _grads(norm, lambda t: _plain(norm, t), x)
        got = _grads(norm, compiled, x)
        for g, w in zip(got, want):
            assert torch.allclose(g, w, rtol=1e-5, atol=1e-5), shape


def test_full_backward_hook_sees_the_gradients():
    for cf in (False, True):
        norm = _norm(cf)
        seen = []
        h = norm.register_full_backward_hook(
            lambda m, gin, gout: seen.append((gin[0].clone(),
                                              gout[0].clone())))
        x = torch.randn(2, 4, 3, dtype=torch.float64) if cf else \
            torch.randn(3, 4, dtype=torch.float64)
        x.requires_grad_()
        y = norm(x)
        y.square().sum().backward()
        h.remove()
        assert len(seen) == 1
        gin, gout = seen[0]
        assert torch.allclose(gout, 2 * y.detach())
        assert torch.allclose(gin, x.grad)
        xr = x.detach().clone().requires_grad_()
        _plain(norm, xr).square().sum().backward()
        assert torch.allclose(gin, xr.grad, rtol=1e-12, atol=1e-14)


def test_accumulation_and_frozen_parameters():
    norm = _norm(False)
    norm.alpha.requires_grad_(False)
    x1 = torch.randn(3, 4, dtype=torch.float64)
    x2 = torch.randn(5, 4, dtype=torch.float64)
    norm(x1).square().sum().backward()
    norm(x2).square().sum().backward()
    assert norm.alpha.grad is None
    acc = [norm.shift.grad.clone(), norm.weight.grad.clone(),
           norm.bias.grad.clone()]
    norm.zero_grad()
    _plain(norm, torch.cat([x1, x2])).square().sum().backward()
    _same(acc, [norm.shift.grad, norm.weight.grad, norm.bias.grad])
    assert norm.alpha.grad is None
