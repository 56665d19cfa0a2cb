"""test_fit_data_p29.py - fitting to recorded activations.

Function.fit (and eval) of PyTorch tensors: a bfloat16 tensor (a bf16
model's activations) was torch's TypeError "Got unsupported ScalarType
BFloat16" from np.asarray, one needing grad a RuntimeError; their values
are now read in float64, which holds each exactly.

fit_initial kept every norm's inputs and outputs of every batch, in
float64, until the last batch had run, and sampled max_points of them
only then: memory grew with the batches without bound (gigabytes a batch
for a ConvNeXt's norms at 224x224). And where the norm's input was
already a float64 CPU tensor, what it kept was that tensor itself, so a
model that changed it in place after the norm (x.add_(...)) had the fit
read the changed values: a wrong fit, silently. Now each site keeps a
uniform sample of at most max_points points, copied as the norm runs."""
import gc
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import dnc
import dnc.torch as dt
from checks import ok, raises

DYT = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)"


def test_fit_of_tensors_of_any_float_dtype():
    f = dnc.compile(DYT)["dyt"]
    x = torch.linspace(-4, 4, 200)
    want = f.fit(x.double().numpy(), torch.tanh(0.8 * x).double().numpy())
    ok(want.converged and abs(want.values["alpha"] - 0.8) < 1e-6, "float64",
       want.values)
    for dt_ in (torch.bfloat16, torch.float16, torch.float32):
        xb = x.to(dt_)
        yb = torch.tanh(0.8 * xb.double()).to(dt_)
        got = f.fit(xb, yb)
        # the same as the fit of the same values given in float64
        ref = f.fit(xb.double().numpy(), yb.double().numpy())
        ok(got.converged and got.values == ref.values and got.ssq == ref.ssq,
           "a %s tensor is fitted as its values in float64" % dt_,
           lambda: (got.status, got.message, got.values, ref.values))
        ok(abs(got.values["alpha"] - 0.8) < 0.01, "near 0.8", got.values)
        e = f.eval(xb, alpha=0.8)
        ok(isinstance(e, np.ndarray) and e.dtype == np.float64 and
           np.array_equal(e, f.eval(xb.double().numpy(), alpha=0.8)),
           "eval of a %s tensor" % dt_)
    g = x.clone().requires_grad_(True)
    got = f.fit(g, torch.tanh(0.8 * g))
    ok(got.converged and abs(got.values["alpha"] - 0.8) < 1e-6,
       "a tensor that requires grad: its values", got.values)
    raises(TypeError, lambda: f.fit(torch.ones(3, dtype=torch.complex64),
                                    torch.ones(3)),
           "a complex tensor is still refused", "float64 holds")
    raises(ValueError, lambda: f.fit(torch.ones(3, device="meta"),
                                     torch.ones(3)),
           "a meta tensor has no values", "meta device")


def _live_float64_elements():
    """Elements of float64 tensors and arrays of more than 1000 that the
    collector sees (distinct storages)."""
    seen, n = set(), 0
    with warnings.catch_warnings():   # (deprecated objects' __class__)
        warnings.simplefilter("ignore")
        objs = gc.get_objects()
        objs = [o for o in objs if isinstance(o, (torch.Tensor, np.ndarray))]
    for o in objs:
        if isinstance(o, torch.Tensor) and o.dtype == torch.float64 and \
                not o.is_meta and o.numel() > 1000:
            s = o.untyped_storage()
            if s.data_ptr() not in seen:
                seen.add(s.data_ptr())
                n += s.nbytes() // 8
        elif isinstance(o, np.ndarray) and o.dtype == np.float64 and \
                o.size > 1000 and o.base is None:
            if o.ctypes.data not in seen:
                seen.add(o.ctypes.data)
                n += o.size
    return n


def test_fit_initial_keeps_a_bounded_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64))
    per_batch = 256 * 64
    live = []

    def batches():
        for _ in range(12):
            gc.collect()
            live.append(_live_float64_elements())
            yield torch.randn(256, 64) * 3
    fit = dt.fit_initial(model, "dyt", batches(), max_points=500)
    ok(set(fit) == {"1"} and 0 < fit["1"]["alpha"] < 10, "fitted", fit)
    # before: 2 x 16384 more float64 values held with every batch
    ok(max(live) - live[0] < 2 * per_batch, "memory does not grow with "
       "the batches", live)
    # the sample is a uniform one: the fit is that of all the points, near
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64))
    big = dt.fit_initial(model, "dyt", batches(), max_points=10 ** 6)
    ok(abs(fit["1"]["alpha"] - big["1"]["alpha"]) <
       0.05 * big["1"]["alpha"], "the sample's fit is near all points'",
       (fit, big))
    raises(ValueError, lambda: dt.fit_initial(model, "dyt", [torch.ones(2,
                                                                     64)],
                                              max_points=0),
           "max_points 0", "max_points")


class InPlaceAfterNorm(nn.Module):
    """A float64 block whose residual stream is updated in place after its
    norm has read it."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(32, elementwise_affine=False).double()

    def forward(self, x):
        h = self.norm(x)
        x.add_(5.0)          # the norm's input, changed after the norm
        return x + h


def test_fit_initial_reads_the_input_the_norm_saw():
    torch.manual_seed(3)
    xs = [torch.randn(64, 32, dtype=torch.float64) * 2 for _ in range(2)]
    want = dt.fit_initial(InPlaceAfterNorm(), "dyt",
                          [x.clone() for x in xs])
    # the fit to the norm's own points, computed here
    x = torch.cat(xs).reshape(-1, 32)
    y = torch.nn.functional.layer_norm(x, (32,), eps=1e-5)
    f = dnc.compile(DYT)["dyt"]
    ref = f.fit(x.reshape(-1).numpy(), y.reshape(-1).numpy())
    ok(math.isclose(want["norm"]["alpha"], ref.values["alpha"],
                    rel_tol=1e-9),
       "the fit is to the input as the norm saw it, not as changed after",
       (want, ref.values))


def test_fit_initial_refuses_one_mapping_as_the_batches():
    """One Hugging Face batch, {"input_ids": ids}, given as batches: its
    keys were run as the batches, model("input_ids"), and the error was
    the model's, about a string."""
    class Keywords(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)

        def forward(self, input_ids=None):
            return self.norm(input_ids)
    b = {"input_ids": torch.randn(4, 8)}
    raises(TypeError, lambda: dt.fit_initial(Keywords(), "dyt", b),
           "one mapping", "for one batch, pass [batch]")
    got = dt.fit_initial(Keywords(), "dyt", [b])
    ok(set(got) == {"norm"}, "a list of it is fitted", got)


def test_fit_initial_seeds():
    """seed takes what np.random.default_rng takes, as before: an int (the
    same sample each time), None, a Generator."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16),
                          nn.Linear(16, 16), nn.LayerNorm(16))
    batches = [torch.randn(64, 16) * 2 for _ in range(3)]
    a = dt.fit_initial(model, "dyt", batches, max_points=300, seed=7)
    ok(a == dt.fit_initial(model, "dyt", batches, max_points=300, seed=7),
       "the same seed, the same fit")
    for s in (None, np.random.default_rng(1)):
        got = dt.fit_initial(model, "dyt", batches, max_points=300, seed=s)
        ok(set(got) == set(a), "seed=%r" % (s,), got)
