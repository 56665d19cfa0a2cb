"""test_training_reinit_p12.py - re-initialising a PointwiseNorm in a
training script (reset_parameters(), model.apply of it) when its
parameters are parametrized, as a practitioner constrains DyT's alpha to
be positive or puts weight normalisation on the norm's weight (dnc.convert
keeps such parametrizations): reset_parameters wrote the initial values
into the tensors the parametrizations had computed, which were thrown
away, and left alpha and weight as trained, without a word. Now they are
set through the parametrization; a parametrization without right_inverse,
and the old hook-based weight_norm / spectral_norm / prune, are refused
with a ValueError saying why. And norm.threads = n between epochs, which
had been a new attribute that nothing read."""
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok, raises  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402


class Softplus(nn.Module):
    """alpha = softplus(raw), positive."""

    def forward(self, x):
        return nn.functional.softplus(x)

    def right_inverse(self, y):
        return torch.log(torch.expm1(y))


class Double(nn.Module):
    def forward(self, x):
        return 2 * x

    def right_inverse(self, y):
        return y / 2


class NoInverse(nn.Module):
    def forward(self, x):
        return x.abs()


def _trained(norm):
    opt = torch.optim.SGD(norm.parameters(), lr=0.5)
    x = torch.randn(4, 8, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        norm(x).pow(2).sum().backward()
        opt.step()


def test_reset_through_parametrizations():
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(8, "derf", alpha=0.7, dtype=torch.float64)
    parametrize.register_parametrization(norm, "alpha", Softplus())
    parametrize.register_parametrization(norm, "bias", Double())
    if hasattr(torch.nn.utils.parametrizations, "weight_norm"):
        torch.nn.utils.parametrizations.weight_norm(norm, "weight", dim=0)
    else:   # PyTorch 1.13 has no weight_norm parametrization
        parametrize.register_parametrization(norm, "weight", Double())
    _trained(norm)
    ok(abs(float(norm.alpha.detach()) - 0.7) > 1e-3, "training moved alpha")
    ok(not torch.equal(norm.weight.detach(), torch.ones(8,
                                                        dtype=torch.float64)),
       "training moved weight")
    nn.Sequential(norm).apply(
        lambda m: m.reset_parameters() if isinstance(m, dt.PointwiseNorm)
        else None)
    alpha = float(norm.alpha.detach())
    ok(abs(alpha - 0.7) < 1e-12, "alpha reset through softplus", alpha)
    ok(float(norm.shift.detach()) == 0.0, "shift (not parametrized) reset")
    ok(torch.allclose(norm.weight, torch.ones(8, dtype=torch.float64),
                      atol=1e-12), "weight reset through its parametrization",
       norm.weight)
    ok(torch.equal(norm.bias, torch.zeros(8, dtype=torch.float64)),
       "bias reset through its parametrization", norm.bias)
    ok(not norm.parametrizations.bias.original.detach().any(),
       "bias original is right_inverse(0)")
    # and it trains from there as a fresh one does
    _trained(norm)
    alpha = float(norm.alpha.detach())
    ok(math.isfinite(alpha) and alpha > 0, "alpha stays positive", alpha)


def test_reset_without_right_inverse_is_refused():
    norm = dt.PointwiseNorm(8, "dyt")
    parametrize.register_parametrization(norm, "alpha", NoInverse(),
                                         unsafe=True)
    with torch.no_grad():
        norm.parametrizations.alpha.original.fill_(-3)
    raises(ValueError, norm.reset_parameters, "no right_inverse",
           "NoInverse, which has no right_inverse")
    ok(float(norm.parametrizations.alpha.original.detach()) == -3,
       "nothing changed by the refused reset")


@pytest.mark.parametrize("hook", ["weight_norm", "spectral_norm", "prune"])
def test_reset_of_a_hook_computed_weight_is_refused(hook):
    norm = dt.PointwiseNorm(8, "dyt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hook == "weight_norm":
            torch.nn.utils.weight_norm(norm, "weight", dim=0)
        elif hook == "spectral_norm":
            torch.nn.utils.spectral_norm(norm, "weight", dim=0)
        else:
            torch.nn.utils.prune.l1_unstructured(norm, "weight", amount=0.5)
    raises(ValueError, norm.reset_parameters, hook,
           "'weight' is not a parameter of this module")


def test_threads_set_mid_training():
    """norm.threads = n, as a script changes its thread count between
    epochs: it had been a new attribute that nothing read (the kernels
    kept the constructor's count, and the repr said so); now it is the
    module's thread count, checked as the constructor checks it."""
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(8, "dyt", threads=2)
    ref = dt.PointwiseNorm(8, "dyt", threads=1)
    x = torch.randn(6, 8)
    norm.threads = 1
    ok(norm.threads == 1 and norm.fn.module.context.threads == 1,
       "the kernels run on the thread count set", norm.fn.module.context)
    ok("threads=1" in repr(norm), "repr shows it", repr(norm))
    ok(torch.equal(norm(x), ref(x)), "same output")
    norm.threads = None
    ok(norm.threads is None and
       norm.fn.module.context.threads == torch.get_num_threads(),
       "None follows torch.get_num_threads()")
    for bad in (0, -1, 2.0, "4", 5000):
        raises(ValueError, lambda: setattr(norm, "threads", bad),
               "threads = %r" % (bad,), "threads is None or an int")
    ok(norm.threads is None, "a refused value changes nothing")


def test_unconverted_checkpoint_into_a_converted_model():
    """docs/python.md: strict=True lists f's parameters as missing;
    strict=False loads weight and bias, leaves alpha as it was, and gives
    what convert(keep_affine=True) of the loaded model gives."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    with torch.no_grad():
        plain[1].weight.uniform_(0.5, 1.5)
        plain[1].bias.uniform_(-0.5, 0.5)
    state = plain.state_dict()
    conv = dt.convert(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8),
                                    nn.Linear(8, 3)), "dyt")
    raises(RuntimeError, lambda: conv.load_state_dict(state), "strict",
           '"1.alpha"')
    r = conv.load_state_dict(state, strict=False)
    ok(r.missing_keys == ["1.alpha"] and not r.unexpected_keys,
       "missing_keys", r)
    kept = dt.convert(plain, "dyt", keep_affine=True)
    for (n, p), (_, q) in zip(conv.named_parameters(),
                              kept.named_parameters()):
        ok(torch.equal(p, q), "%s as keep_affine gives" % n)
    ok(float(conv[1].alpha.detach()) == 0.5, "alpha at its initial value")


class GemmaRMSNorm(nn.Module):
    """Gemma's RMSNorm: scales by 1 + weight, weight starting at 0."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float())
        output = output * (1.0 + self.weight.float())
        return output.type_as(x)


def _gemma_converted():
    m = dt.convert(nn.Sequential(nn.Linear(8, 8), GemmaRMSNorm(8)), "dyt")
    parametrize.register_parametrization(m[1], "alpha", Softplus())
    return m


@pytest.mark.parametrize("sharded", [False, True])
def test_gemma_converted_with_parametrized_alpha_reloads_its_own(sharded):
    """A model converted from Gemma's, alpha kept positive by a
    parametrization, saved as a plain dict (safetensors): its state_dict
    holds alpha as 'parametrizations.alpha.original', which the load hook
    did not count as f's parameter, so took the state_dict for Gemma's
    own and added 1 to the saved scale (2.0 loaded as 3.0), warning that
    f's parameters were missing. Now it loads as saved, without that
    warning; sharded (alpha's original in one call, the weight in a
    later one) too, with the warning every such sharded load gives."""
    saved = _gemma_converted()
    with torch.no_grad():
        saved[1].weight.fill_(2.0)
        saved[1].alpha = torch.tensor([0.8])
    state = dict(saved.state_dict())
    ok("1.parametrizations.alpha.original" in state, "key", list(state))
    fresh = _gemma_converted()
    if sharded:   # (the warning of any sharded load, documented)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fresh.load_state_dict({k: v for k, v in state.items()
                                   if k != "1.weight"}, strict=False)
        with pytest.warns(UserWarning, match="came without it in an "
                          "earlier load_state_dict call"):
            fresh.load_state_dict({"1.weight": state["1.weight"]},
                                  strict=False)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fresh.load_state_dict(state)
    ok(torch.equal(fresh[1].weight, saved[1].weight), "weight as saved",
       fresh[1].weight)
    ok(abs(float(fresh[1].alpha.detach()) - 0.8) < 1e-6, "alpha as saved")
    # Gemma's own checkpoint still loads as 1 + weight
    gemma = nn.Sequential(nn.Linear(8, 8), GemmaRMSNorm(8))
    with torch.no_grad():
        gemma[1].weight.fill_(0.25)
    fresh.load_state_dict(gemma.state_dict(), strict=False)
    ok(torch.allclose(fresh[1].weight, torch.full((8,), 1.25)),
       "Gemma's checkpoint: 1 + weight", fresh[1].weight)


def test_reset_of_a_weight_frozen_as_a_buffer():
    """A weight a script froze by making it a buffer is reset as before
    (filled with ones), not refused as a hook's."""
    norm = dt.PointwiseNorm(4, "dyt")
    del norm.weight
    norm.register_buffer("weight", torch.full((4,), 3.0))
    with torch.no_grad():
        norm.alpha.fill_(2)
    norm.reset_parameters()
    ok(torch.equal(norm.weight, torch.ones(4)), "buffer weight reset")
    ok(float(norm.alpha.detach()) == 0.5, "alpha reset")


def test_reset_of_a_plain_tensor_in_a_parameters_place():
    """A plain tensor put where the weight was (as FSDP1's flat-parameter
    views and a functional_call's swap do), with no hook's tensors beside
    it, is set as it is: only a weight computed by a hook is refused."""
    norm = dt.PointwiseNorm(4, "dyt")
    del norm.weight
    norm.weight = torch.full((4,), 3.0)
    norm.reset_parameters()
    ok(torch.equal(norm.weight, torch.ones(4)), "plain weight reset",
       norm.weight)
