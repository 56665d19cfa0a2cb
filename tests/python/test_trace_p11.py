"""test_trace_p11.py - torch.jit.trace of models with PointwiseNorm (last
dimension and channels first) and dnc.torch.pointwise: no TracerWarning
from dnc.torch's own code (its shape checks, and on PyTorch 1.13 the
bookkeeping inside its autograd.Function, said "might cause the trace to
be incorrect" 5 to 10 times per norm), and the trace is indeed right: it
runs other shapes and follows parameter updates; the caller's own
TracerWarnings still come through."""
import os
import warnings

import pytest
import torch
from torch import nn

import dnc.torch as dt

DNC_DIR = os.path.dirname(os.path.abspath(dt.__file__))


class Net(nn.Module):
    def __init__(self, own_branch=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.cf = dt.PointwiseNorm(8, "derf", channels_last=False)
        self.lin = nn.Linear(8, 8)
        self.norm = dt.PointwiseNorm(8, "dyt")
        self.own_branch = own_branch

    def forward(self, x):
        h = self.cf(self.conv(x))                  # N x 8 x H x W
        h = self.norm(self.lin(h.permute(0, 2, 3, 1)))
        h = dt.pointwise(h, "dyisru", beta=2.0)
        if self.own_branch and bool(h.sum() > 0):  # the caller's own branch
            h = h * 2
        return h


def _trace(model, x):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        traced = torch.jit.trace(model, x)
    tracer = [w for w in got if issubclass(w.category,
                                           torch.jit.TracerWarning)]
    return traced, tracer


@pytest.mark.parametrize("grad", [True, False])
def test_no_tracer_warnings_from_dnc_and_the_trace_is_right(grad):
    torch.manual_seed(0)
    model = Net()
    with torch.set_grad_enabled(grad):
        traced, tracer = _trace(model, torch.randn(2, 3, 4, 4))
    mine = ["%s:%d: %s" % (w.filename, w.lineno, w.message) for w in tracer
            if os.path.abspath(w.filename).startswith(DNC_DIR)]
    assert not mine, "\n".join(mine)
    assert not tracer, [str(w.message) for w in tracer]
    # another batch and spatial size than the example input
    x = torch.randn(3, 3, 5, 2)
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x), atol=1e-6)
        # the parameters are read at each call, not baked in
        model.cf.alpha.fill_(1.3)
        model.norm.weight.uniform_(0.5, 1.5)
        assert torch.allclose(traced(x), model(x), atol=1e-6)
        want = model.lin(torch.erf(1.3 * model.conv(x)).permute(0, 2, 3, 1))
        want = model.norm.weight * torch.tanh(0.5 * want)
        want = want / torch.sqrt(2.0 + want * want)
        assert torch.allclose(traced(x), want, atol=1e-5)


def test_the_callers_own_tracer_warnings_remain():
    _, tracer = _trace(Net(own_branch=True), torch.randn(2, 3, 4, 4))
    assert tracer, "the model's own data-dependent branch was not warned of"
    assert all(not os.path.abspath(w.filename).startswith(DNC_DIR)
               for w in tracer)
