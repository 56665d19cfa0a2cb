"""test_convert.py - converting models (dnc.convert, through dnc.torch):
the Derf paper's point-wise functions as gamma*f(alpha*x + shift) + beta
modules against plain PyTorch, forward and every gradient, channels last
and channels first; reference DyT and Derf checkpoints loading strictly;
channels-first LayerNorm subclasses; RMSNorm; per-site and fitted initial
values; repr."""
import copy
import itertools
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import dnc.torch as dt
import dnc.convert as dconv
from checks import ok, raises


@pytest.mark.parametrize("first", ["import dnc.convert",
                                   "from dnc import convert",
                                   "from dnc.convert import convert"])
def test_convert_imported_first(first):
    """dnc.convert imported before dnc.torch, in a new process: it was a
    circular ImportError (dnc.torch re-exports convert's functions)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(dconv.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", first + "; import dnc.torch; "
                        "assert dnc.torch.convert is dnc.convert.convert"],
                       env=env, capture_output=True, text=True, timeout=300)
    ok(r.returncode == 0, "%s, then dnc.torch" % first, r.stderr[-2000:])

torch.manual_seed(0)

# The shapes the Derf paper compared, each as f(u) with u = alpha*x +
# shift: (name, dnc expression of u, the same in PyTorch).
PI = 3.141592653589793
FUNCTIONS = [
    ("erf", "erf(u)", torch.erf),
    ("tanh", "tanh(u)", torch.tanh),
    ("arctan", "2 / pi * atan(u)", lambda u: 2 / PI * torch.atan(u)),
    ("isru", "u / sqrt(1 + u^2)", lambda u: u / torch.sqrt(1 + u * u)),
    ("satursin", "if abs(u) < pi / 2 then sin(u) else sign(u)",
     lambda u: torch.where(u.abs() < PI / 2, torch.sin(u), torch.sign(u))),
    ("clip_linear", "clamp(u, -1, 1)", lambda u: torch.clamp(u, -1, 1)),
    ("clip_asinh", "clamp(asinh(u), -1.5, 1.5)",
     lambda u: torch.clamp(torch.asinh(u), -1.5, 1.5)),
    ("clip_log", "clamp(sign(u) * log1p(abs(u)), -1.2, 1.2)",
     lambda u: torch.clamp(torch.sign(u) * torch.log1p(u.abs()), -1.2, 1.2)),
    ("clip_cubic", "clamp(u - u^3 / 3, -2 / 3, 2 / 3)",
     lambda u: torch.clamp(u - u ** 3 / 3, -2 / 3, 2 / 3)),
    ("expsign", "sign(u) * (1 - exp(-abs(u)))",
     lambda u: torch.sign(u) * (1 - torch.exp(-u.abs()))),
    ("softsign", "u / (1 + abs(u))", lambda u: u / (1 + u.abs())),
    ("sigmoid2", "2 * sigmoid(u) - 1", lambda u: 2 * torch.sigmoid(u) - 1),
    ("asinh", "asinh(u)", torch.asinh),
    ("sine", "sin(u)", torch.sin),
    ("quartic_isru", "u / sqrt(sqrt(1 + u^4))",
     lambda u: u / torch.sqrt(torch.sqrt(1 + u ** 4))),
]


class Reference(nn.Module):
    """gamma * f(alpha * x + shift) + beta in plain PyTorch, with the DyT
    repository's channels_last switch."""

    def __init__(self, c, f, channels_last=True, alpha=0.5, shift=0.0):
        super().__init__()
        self.f = f
        self.channels_last = channels_last
        self.alpha = nn.Parameter(torch.ones(1) * alpha)
        self.shift = nn.Parameter(torch.ones(1) * shift)
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        y = self.f(self.alpha * x + self.shift)
        if self.channels_last:
            return y * self.weight + self.bias
        shape = (-1,) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


def _randomize(mod):
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-0.5, 0.5)
        mod.alpha.fill_(0.7)
        mod.shift.fill_(0.1)
    return mod


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("name,expr,tf", FUNCTIONS,
                         ids=[f[0] for f in FUNCTIONS])
def test_derf_paper_functions_agree_with_plain_torch(name, expr, tf,
                                                    channels_last):
    src = "fn d_%s(x; alpha = 0.5, shift = 0) { let u = alpha * x + shift\n" \
          "%s }" % (name, expr)
    c = 6
    ref = _randomize(Reference(c, tf, channels_last).double())
    mod = dt.PointwiseNorm(c, src, channels_last=channels_last,
                           dtype=torch.float64)
    mod.load_state_dict(ref.state_dict(), strict=True)
    shape = (3, 5, 4, c) if channels_last else (3, c, 5, 4)
    x = (torch.randn(shape, dtype=torch.float64) * 2).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    dy = torch.randn(shape, dtype=torch.float64)
    y, yr = mod(x), ref(x2)
    ok(torch.allclose(y, yr, rtol=1e-12, atol=1e-12),
       "%s forward, channels_last=%s" % (name, channels_last),
       lambda: "max diff %g" % (y - yr).abs().max())
    names = ["alpha", "shift", "weight", "bias"]
    g = torch.autograd.grad(y, [x] + [getattr(mod, n) for n in names], dy)
    gr = torch.autograd.grad(yr, [x2] + [getattr(ref, n) for n in names], dy)
    for n, a, b in zip(["x"] + names, g, gr):
        ok(torch.allclose(a, b, rtol=1e-9, atol=1e-9),
           "%s d/d%s, channels_last=%s" % (name, n, channels_last),
           lambda: "max diff %g" % (a - b).abs().max())


def test_channels_first_float32_and_odd_strides():
    c = 7
    ref = _randomize(Reference(c, torch.erf, channels_last=False))
    mod = dt.PointwiseNorm(c, "derf", channels_last=False)
    mod.load_state_dict(ref.state_dict())
    # a non-contiguous input (a slice along W) and a 3-D and a 5-D one
    for x in (torch.randn(2, c, 9, 12)[..., 1:10], torch.randn(4, c, 33),
              torch.randn(2, c, 3, 4, 5)):
        ok(torch.allclose(mod(x), ref(x), atol=2e-6),
           "channels first, shape %s" % (tuple(x.shape),))
    x = torch.randn(5, c)     # N x C: dimension 1 is the last one
    ok(torch.allclose(mod(x), ref(x), atol=2e-6), "N x C input")
    raises(ValueError, lambda: mod(torch.randn(2, c + 1, 3)),
           "a wrong channel dimension is refused", "dimension 1 is 8")


def test_channels_first_double_backward():
    c = 4
    mod = _randomize(dt.PointwiseNorm(c, "derf", channels_last=False,
                                      dtype=torch.float64))
    ref = Reference(c, torch.erf, channels_last=False).double()
    ref.load_state_dict(mod.state_dict())
    x = torch.randn(2, c, 3, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(mod(x).pow(2).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), mod.alpha)
    xr = x.detach().clone().requires_grad_()
    (gr,) = torch.autograd.grad(ref(xr).pow(2).sum(), xr, create_graph=True)
    (gr2,) = torch.autograd.grad(gr.sum(), ref.alpha)
    ok(torch.allclose(g, gr) and torch.allclose(g2, gr2),
       "channels-first create_graph=True: d/dx and d2/dx dalpha",
       lambda: "%s vs %s" % (g2, gr2))


# ------------------------------------------------ reference checkpoints

class DynamicTanh(nn.Module):
    """The DyT repository's module (dynamic_tanh.py), as written there."""

    def __init__(self, normalized_shape, channels_last, alpha_init_value=0.5):
        super().__init__()
        self.normalized_shape = normalized_shape
        self.alpha_init_value = alpha_init_value
        self.channels_last = channels_last
        self.alpha = nn.Parameter(torch.ones(1) * alpha_init_value)
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))

    def forward(self, x):
        x = torch.tanh(self.alpha * x)
        if self.channels_last:
            x = x * self.weight + self.bias
        else:
            x = x * self.weight[:, None, None] + self.bias[:, None, None]
        return x


class Dynamic_erf(nn.Module):
    """The Derf repository's module: erf(alpha x + shift), scalar shift."""

    def __init__(self, normalized_shape, channels_last=True,
                 alpha_init_value=0.5, shift_init_value=0.0):
        super().__init__()
        self.normalized_shape = normalized_shape
        self.channels_last = channels_last
        self.alpha = nn.Parameter(torch.ones(1) * alpha_init_value)
        self.shift = nn.Parameter(torch.ones(1) * shift_init_value)
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))

    def forward(self, x):
        x = torch.erf(self.alpha * x + self.shift)
        if self.channels_last:
            return x * self.weight + self.bias
        return x * self.weight[:, None, None] + self.bias[:, None, None]


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("cls,fn", [(DynamicTanh, "dyt"),
                                    (Dynamic_erf, "derf")])
def test_reference_checkpoints_load_strictly(cls, fn, channels_last):
    c = 8
    ref = cls(c, channels_last)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    state = copy.deepcopy(ref.state_dict())   # as a checkpoint holds it
    mod = dt.PointwiseNorm(c, fn, channels_last=channels_last)
    mod.load_state_dict(state, strict=True)
    x = torch.randn((2, 3, 4, c) if channels_last else (2, c, 4, 5))
    ok(torch.allclose(mod(x), ref(x), atol=3e-6),
       "%s's checkpoint in PointwiseNorm(%d, %r, channels_last=%s)" % (
           cls.__name__, c, fn, channels_last))
    back = cls(c, channels_last)
    back.load_state_dict(mod.state_dict(), strict=True)
    ok(torch.equal(back(x), ref(x)), "and back into %s" % cls.__name__)


# ------------------------------------------------------ LayerNorm2d

class PermutingLN(nn.LayerNorm):
    """A channels-first LayerNorm written as ConvNeXt's LayerNorm2d is."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight,
                                     self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ScaledLN(nn.LayerNorm):
    """Its own forward, no permute: the converter cannot tell."""

    def forward(self, x):
        return super().forward(x) * 2


def test_channels_first_layernorm_subclasses():
    c = 6
    model = nn.Sequential(nn.Conv2d(3, c, 1), PermutingLN(c), nn.GELU(),
                          nn.LayerNorm(c))
    ok(dconv.channels_first(model[1]) and
       not dconv.channels_first(model[3]),
       "a forward that permutes is channels first, nn.LayerNorm is not")
    conv = dt.convert_layernorm(copy.deepcopy(model), "dyt")
    ok(isinstance(conv[1], dt.PointwiseNorm) and not conv[1].channels_last
       and conv[3].channels_last, "converted with channels_last=False")
    # width = channels: the case that used to be silently wrong
    x = torch.randn(2, 3, c, c)
    ref = DynamicTanh(c, channels_last=False)
    ref.load_state_dict(conv[1].state_dict())
    h = conv[0](x)
    ok(torch.allclose(conv[1](h), ref(h), atol=2e-6),
       "LayerNorm2d-like norm over channels with H = W = C")
    raises(ValueError, lambda: dt.convert_layernorm(
        nn.Sequential(ScaledLN(c)), "dyt"),
        "an unknown forward is refused", "channels_first_classes")
    for key in (ScaledLN, "ScaledLN"):
        m = dt.convert_layernorm(nn.Sequential(ScaledLN(c)), "dyt",
                                 channels_first_classes={key: False})
        ok(m[0].channels_last, "the caller's override (%r) decides" % (key,))
    raises(ValueError, lambda: dt.convert_layernorm(
        nn.Sequential(PermutingLN(c)), "dyt",
        channels_first_classes={PermutingLN: False}),
        "an override that what the norm computes contradicts is refused",
        "channels_first_classes says PermutingLN normalizes over the last "
        "dimension, but on a probe input it computes a layernorm over "
        "dimension 1")
    m = dt.convert_layernorm(nn.Sequential(SeqFirstLN(c)), "dyt")
    ok(m[0].channels_last, "a permute that keeps the last dimension last is "
       "not taken for channels first (the probe input tells)")


class SeqFirstLN(nn.LayerNorm):
    """Permutes, but keeps the channels last: (L, B, C) <-> (B, L, C)."""

    def forward(self, x):
        y = nn.functional.layer_norm(x.permute(1, 0, 2), self.normalized_shape,
                                     self.weight, self.bias, self.eps)
        return y.permute(1, 0, 2)


def test_torchvision_layernorm2d():
    tv = pytest.importorskip("torchvision")
    from torchvision.models.convnext import LayerNorm2d
    c = 5
    m = dt.convert_layernorm(nn.Sequential(LayerNorm2d(c)), "derf")
    ok(not m[0].channels_last, "torchvision's LayerNorm2d is channels first "
       "(torchvision %s)" % tv.__version__)


# ------------------------------------------------------------ RMSNorm

class LlamaRMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
                                             + self.eps)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attention_norm = LlamaRMSNorm(d)
        self.attention = nn.Linear(d, d)
        self.ffn_norm = LlamaRMSNorm(d)
        self.feed_forward = nn.Linear(d, d)


class Llama(nn.Module):
    def __init__(self, d=8, n=2):
        super().__init__()
        self.layers = nn.ModuleList(Block(d) for _ in range(n))
        self.norm = LlamaRMSNorm(d)
        self.other = nn.LayerNorm(d)

    def forward(self, x):
        for b in self.layers:
            x = x + b.attention(b.attention_norm(x))
            x = x + b.feed_forward(b.ffn_norm(x))
        return self.other(self.norm(x))


def test_convert_rmsnorm_weight_only_and_llama_recipe():
    model = Llama()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
    conv = dt.convert_rmsnorm(copy.deepcopy(model), "dyt", keep_affine=True,
                              init={"*attention_norm": {"alpha": 0.8},
                                    "*ffn_norm": {"alpha": 0.2},
                                    "norm": {"alpha": 0.2}})
    norms = dict((p, m) for p, m in conv.named_modules()
                 if isinstance(m, dt.PointwiseNorm))
    ok(sorted(norms) == sorted(["layers.0.attention_norm",
                                "layers.0.ffn_norm", "layers.1.attention_norm",
                                "layers.1.ffn_norm", "norm"]),
       "every RMSNorm and only those (the LayerNorm stays)", sorted(norms))
    ok(isinstance(conv.other, nn.LayerNorm), "kind='rmsnorm' leaves LayerNorm")
    ok(all(m.bias is None and m.weight is not None for m in norms.values()),
       "weight only")
    ok(torch.equal(norms["norm"].weight, model.norm.weight),
       "keep_affine copies the weight")
    alphas = {p: float(m.alpha) for p, m in norms.items()}
    ok(alphas == {"layers.0.attention_norm": pytest.approx(0.8),
                  "layers.1.attention_norm": pytest.approx(0.8),
                  "layers.0.ffn_norm": pytest.approx(0.2),
                  "layers.1.ffn_norm": pytest.approx(0.2),
                  "norm": pytest.approx(0.2)},
       "DyT's LLaMA 7B recipe in one call", alphas)
    ok("fn=dyt(alpha=0.8)" in repr(norms["layers.0.attention_norm"]) and
       "bias=False" in repr(norms["norm"]), "repr shows values and no bias",
       repr(norms["norm"]))
    x = torch.randn(2, 3, 8)
    ok(conv(x).shape == x.shape, "the converted model runs")
    every = dt.convert(copy.deepcopy(model), "dyt",
                       init=lambda path, m: {"alpha": 1.5}
                       if path.endswith("norm") else None)
    ok(isinstance(every.other, dt.PointwiseNorm) and
       float(every.norm.alpha) == 1.5 and float(every.other.alpha) == 0.5,
       "kind='all' and a callable init")
    raises(TypeError, lambda: dt.convert_rmsnorm(
        copy.deepcopy(model), "dyt", init={"norm": {"beta": 1}}),
        "an unknown parameter names the site", "norm: dyt() has no parameter")
    raises(ValueError, lambda: dt.convert(model, "dyt", kind="batchnorm"),
           "an unknown kind", "kind is")


def test_nn_rmsnorm():
    if not hasattr(nn, "RMSNorm"):
        pytest.skip("this PyTorch has no nn.RMSNorm")
    model = nn.Sequential(nn.Linear(4, 6), nn.RMSNorm(6),
                          nn.RMSNorm(6, elementwise_affine=False))
    conv = dt.convert_rmsnorm(model, "derf")
    ok(conv[1].weight is not None and conv[1].bias is None and
       conv[2].weight is None, "nn.RMSNorm: weight only, or nothing")
    ok(conv(torch.randn(3, 4)).shape == (3, 6), "runs")


# ------------------------------------------------------- fitted values

def test_fit_initial_fits_each_site():
    torch.manual_seed(1)
    model = Llama(d=16)
    with torch.no_grad():   # sites that see different scales
        model.layers[0].attention.weight.mul_(4)
    batches = [torch.randn(4, 5, 16) * s for s in (0.5, 3.0)]
    fit = dt.fit_initial(model, "dyt", batches)
    ok(sorted(fit) == sorted(p for p, _, _ in dconv.find_norms(model)),
       "one entry per norm", sorted(fit))
    ok(all(set(v) == {"alpha"} and 0 < v["alpha"] < 10 for v in fit.values()),
       "a finite positive alpha per site", fit)
    # the fit beats the default at the site: least squares of tanh(a x) to
    # the norm's own output
    xs = []
    h = model.norm.register_forward_hook(lambda m, a, o: xs.append(a[0]))
    with torch.no_grad():
        for b in batches:
            model(b)
    h.remove()
    x = torch.cat([t.reshape(-1, 16) for t in xs]).double()
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def err(a):
        return float((torch.tanh(a * x) - y).pow(2).mean())
    a = fit["norm"]["alpha"]
    ok(err(a) <= err(0.5) and err(a) <= err(a * 1.05) and
       err(a) <= err(a * 0.95), "the fitted alpha is a least-squares minimum",
       lambda: "a=%g err %g, at 0.5 %g" % (a, err(a), err(0.5)))
    conv = dt.convert(copy.deepcopy(model), "dyt", init=fit)
    ok(float(conv.norm.alpha) == pytest.approx(a, rel=1e-6),
       "convert takes fit_initial's result as init")
    # Hugging Face's batches are mappings of keyword arguments: model(**b)

    class Keywords(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids=None, scale=1.0):
            return self.inner(input_ids * scale)
    kw = dt.fit_initial(Keywords(model), "dyt",
                        [{"input_ids": b} for b in batches])
    ok(kw == {"inner." + p: v for p, v in fit.items()},
       "dict batches are keyword arguments: the same fit", kw)
    derf = dt.fit_initial(model, "derf", batches[:1], params=["alpha"])
    ok(all(set(v) == {"alpha"} for v in derf.values()), "params= limits")
    raises(ValueError, lambda: dt.fit_initial(nn.Linear(2, 2), "dyt",
                                              [torch.randn(2)]),
           "a model without norms", "no LayerNorm or RMSNorm")
    raises(ValueError, lambda: dt.fit_initial(
        model, "fn f(x; s[] = 0) = tanh(x + s)", batches),
        "no scalar parameter", "no scalar parameter")
    raises(ValueError, lambda: dt.fit_initial(model, "dyt", batches,
                                              params=["beta"]),
           "an unknown parameter", "not beta")


class OnDevice(torch.Tensor):
    """Stands in for a tensor on a GPU, where there is none: operations
    on it give OnDevice tensors again, .cpu() and .to("cpu") a plain one,
    and .numpy() refuses it as PyTorch refuses a CUDA tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.numpy:
            raise TypeError("can't convert cuda:0 device type tensor to "
                            "numpy. Use Tensor.cpu() to copy the tensor to "
                            "host memory first.")
        out = super().__torch_function__(func, types, args, kwargs)
        to_cpu = func is torch.Tensor.cpu or (
            func is torch.Tensor.to and any(
                str(a) == "cpu" for a in list(args[1:]) +
                [kwargs.get("device")]))
        return out.as_subclass(torch.Tensor) if to_cpu else out


def test_fit_initial_on_a_gpu():
    """fit_initial on a model whose activations are on a GPU (OnDevice
    here): the recorded inputs went to NumPy without .cpu(), a TypeError.
    The fit is the one on the CPU."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16))
    batches = [torch.randn(32, 8) for _ in range(2)]
    want = dt.fit_initial(model, "dyt", batches)
    seen = []
    model[1].register_forward_hook(
        lambda m, a, o: seen.append(type(a[0])))
    got = dt.fit_initial(model, "dyt", [b.as_subclass(OnDevice)
                                        for b in batches])
    ok(seen == [OnDevice] * 2, "the norm's inputs stood in for a GPU's",
       seen)
    ok(got == want, "the CPU's fit", (got, want))


class ConvNeXtLayerNorm(nn.Module):
    """The ConvNeXt repositories' LayerNorm: not an nn.LayerNorm."""

    def __init__(self, c, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps
        self.data_format = data_format
        self.normalized_shape = (c,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return nn.functional.layer_norm(x, self.normalized_shape,
                                            self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class T5LayerNorm(nn.Module):
    """Hugging Face's T5LayerNorm: an RMSNorm named LayerNorm."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.variance_epsilon = eps

    def forward(self, x):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.variance_epsilon))


class TuneRMSNorm(nn.Module):
    """torchtune's RMSNorm: its parameter is `scale`."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) +
                               self.eps) * self.scale


class GemmaRMSNorm(nn.Module):
    """Hugging Face's Gemma RMSNorms: output * (1 + weight), weight from 0."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) +
                                    self.eps)
        return (y * (1.0 + self.weight.float())).type_as(x)


class OddNorm(nn.Module):
    """A norm dnc cannot tell: its output is not weight * norm(x)."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return torch.tanh(x) * self.weight


class ScaleNorm(nn.Module):
    """A norm by another recipe (one scalar): neither kind."""

    def __init__(self):
        super().__init__()
        self.g = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.g * x / x.norm(dim=-1, keepdim=True)


def test_norm_classes_written_from_scratch():
    """ConvNeXt's LayerNorm, T5LayerNorm and torchtune's RMSNorm are
    converted (with their layout and kind), keep_affine copies Gemma's
    (1 + weight), a norm that is neither is warned about, and keep_affine
    refuses a weight it cannot place."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 8, 4, 4),
                          ConvNeXtLayerNorm(8, data_format="channels_first"),
                          nn.Flatten(2), T5LayerNorm(4), TuneRMSNorm(4),
                          nn.Flatten(1), ConvNeXtLayerNorm(32))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[4].scale.uniform_(0.5, 1.5)
    kinds = [(p, k) for p, _, k in dconv.find_norms(model)]
    ok(kinds == [("1", "layernorm"), ("3", "rmsnorm"), ("4", "rmsnorm"),
                 ("6", "layernorm")], "each class is found as its kind",
       str(kinds))
    w1, s4 = model[1].weight.detach().clone(), model[4].scale.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.convert(model, "dyt", keep_affine=True)
    ok(all(isinstance(model[i], dt.PointwiseNorm) for i in (1, 3, 4, 6)),
       "all four are PointwiseNorm now")
    ok(not model[1].channels_last and model[6].channels_last,
       "ConvNeXt's data_format gives the layout")
    ok(model[3].bias is None and model[4].bias is None,
       "the RMSNorms are weight-only")
    ok(torch.equal(model[1].weight, w1) and torch.equal(model[4].weight, s4),
       "keep_affine copies weight and torchtune's scale")
    y = model(torch.randn(2, 3, 8, 8))
    ok(y.shape == (2, 32) and bool(torch.isfinite(y).all()), "it runs")

    g = nn.Sequential(nn.Linear(8, 8), GemmaRMSNorm(8))
    with torch.no_grad():
        g[1].weight.uniform_(-0.5, 0.5)
    want = 1 + g[1].weight.detach()
    dt.convert_rmsnorm(g, "dyt", keep_affine=True)
    ok(torch.allclose(g[1].weight, want), "Gemma's RMSNorm: keep_affine "
       "copies 1 + weight, the scale it applies")

    raises(ValueError, lambda: dt.convert(
        nn.Sequential(nn.Linear(4, 4), OddRMSNorm(4)), "dyt",
        keep_affine=True), "a model whose only norm's output is not "
        "weight * rmsnorm(x) has nothing to convert",
        "not converted: 1 (OddRMSNorm): its output on a probe input is not "
        "weight * rmsnorm(x) over the last dimension nor over dimension 1")
    raises(ValueError, lambda: dt.convert(
        nn.Sequential(nn.Linear(4, 4), OddRMSNorm(4)), "dyt",
        keep_affine=True, channels_first_classes={OddRMSNorm: False}),
        "keep_affine on a norm forced through channels_first_classes whose "
        "output is not weight * rmsnorm(x)", "keep_affine cannot copy")
    with pytest.warns(UserWarning, match=r"1 \(ScaleNorm\)"):
        m = dt.convert(nn.Sequential(nn.LayerNorm(4), ScaleNorm()), "dyt")
    ok(isinstance(m[0], dt.PointwiseNorm) and isinstance(m[1], ScaleNorm),
       "a norm of neither kind stays, with a warning naming it")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = dt.convert(nn.Sequential(nn.Conv2d(3, 4, 1), FrozenBatchNorm2d(4),
                                     nn.GroupNorm(2, 4), nn.LayerNorm(1)),
                       "dyt")
    ok(isinstance(m[1], FrozenBatchNorm2d), "batch and group norms stay, "
       "without a warning, also torchvision's FrozenBatchNorm2d")
    raises(ValueError, lambda: dt.convert(
        nn.Sequential(nn.Conv2d(3, 4, 1), FrozenBatchNorm2d(4)), "dyt"),
        "a model of batch norms only has nothing to convert",
        "has no LayerNorm or RMSNorm to replace")
    raises(ValueError, lambda: dt.convert(nn.Sequential(ScaleNorm()), "dyt"),
           "nor a model of norms convert does not know",
           "not recognised as one: 0 (ScaleNorm)")


class OddRMSNorm(OddNorm):
    pass


class FrozenBatchNorm2d(nn.Module):
    """torchvision's FrozenBatchNorm2d: buffers, not an nn.BatchNorm."""

    def __init__(self, c):
        super().__init__()
        for n, v in (("weight", 1), ("bias", 0), ("running_mean", 0),
                     ("running_var", 1)):
            self.register_buffer(n, torch.full((c,), float(v)))

    def forward(self, x):
        scale = self.weight * (self.running_var + 1e-5).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


def test_no_affine_norm_takes_the_models_dtype_and_device():
    m = nn.Sequential(nn.Linear(8, 8),
                      nn.LayerNorm(8, elementwise_affine=False)).to(
                          torch.bfloat16)
    dt.convert_layernorm(m, "dyt")
    ok(m[1].alpha.dtype == torch.bfloat16, "a bf16 model's norm is bf16")
    y = m(torch.randn(2, 8, dtype=torch.bfloat16))
    ok(y.dtype == torch.bfloat16, "and runs")
    m = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(
        8, elementwise_affine=False)).to("meta")
    dt.convert_layernorm(m, "dyt")
    ok(m[1].alpha.is_meta, "a meta model's norm is on meta")


class Positive(nn.Module):
    """A parametrization: weight = exp(original)."""

    def forward(self, x):
        return x.exp()

    def right_inverse(self, w):
        return w.log()


class HFLlamaRMSNorm(nn.Module):
    """LLaMA's RMSNorm as Hugging Face writes it (variance_epsilon)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.variance_epsilon = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.variance_epsilon))


def test_parametrized_norms_keep_their_parametrization():
    """A norm whose weight is parametrized (torch.nn.utils.parametrize, as
    parametrizations.weight_norm) is converted, its own class or not; the
    PointwiseNorm's weight carries the same parametrization, and the old
    norm's parametrization modules are not left inside it as dead
    parameters, nor warned about as norms."""
    from torch.nn.utils import parametrize
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8),
                          ConvNeXtLayerNorm(8), HFLlamaRMSNorm(8))
    with torch.no_grad():
        for i in (1, 2, 3):
            model[i].weight.uniform_(0.5, 2)
        model[0].bias.uniform_(0.1, 0.2)  # not a norm's: no warning
    for i in (1, 2, 3):
        parametrize.register_parametrization(model[i], "weight", Positive())
    parametrize.register_parametrization(model[0], "bias", Positive())
    kinds = [(p, k) for p, _, k in dconv.find_norms(model)]
    ok(kinds == [("1", "layernorm"), ("2", "layernorm"), ("3", "rmsnorm")],
       "parametrized norms are found, classes of their own too", str(kinds))
    w = [model[i].weight.detach().clone() for i in (1, 2, 3)]
    x = torch.randn(3, 8)
    for keep in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=keep)
        for j, i in enumerate((1, 2, 3)):
            n = conv[i]
            ok(isinstance(n, dt.PointwiseNorm) and
               parametrize.is_parametrized(n, "weight"),
               "norm %d: a PointwiseNorm with a parametrized weight" % i)
            names = sorted(name for name, _ in n.named_parameters())
            ok(names == ["alpha"] + (["bias"] if i < 3 else []) +
               ["parametrizations.weight.original"], "norm %d: no dead "
               "parameters" % i, str(names))
            want = w[j] if keep else torch.ones(8)
            ok(torch.allclose(n.weight, want, atol=1e-6), "norm %d: weight "
               "%s" % (i, "copied" if keep else "ones, through the "
                       "parametrization"))
        conv(x).sum().backward()
        g = conv[1].parametrizations.weight.original.grad
        ok(g is not None and bool(torch.isfinite(g).all()),
           "the gradient reaches the parametrization's original")


def test_hooks_move_to_the_pointwise_norm():
    """Forward hooks and pre-hooks of a converted norm run on its
    PointwiseNorm (their handles still remove them); the old weight_norm,
    hooks over weight_g and weight_v, is refused."""
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    seen = []
    handle = model[1].register_forward_hook(
        lambda mod, args, out: seen.append(type(mod).__name__))
    model[1].register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    conv = dt.convert(model, "dyt")
    x = torch.randn(3, 8)
    y = conv(x)
    ok(seen == ["PointwiseNorm"], "the forward hook runs on the new norm",
       str(seen))
    plain = dt.PointwiseNorm(8, "dyt")
    ok(torch.allclose(y, plain(conv[0](x) * 2)), "the pre-hook's input is "
       "what the new norm computes on")
    handle.remove()
    conv(x)
    ok(len(seen) == 1, "the caller's handle removes the moved hook")
    old = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in PyTorch 2
        torch.nn.utils.weight_norm(old[1], dim=0)
    raises(ValueError, lambda: dt.convert(old, "dyt"), "the old weight_norm",
           "remove_weight_norm")


def test_requires_grad_follows_the_replaced_norm():
    """A frozen norm becomes a frozen PointwiseNorm (f's parameters
    too); a frozen bias stays frozen; a trainable norm stays trainable."""
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.LayerNorm(8),
                          nn.LayerNorm(8, elementwise_affine=False))
    model[1].requires_grad_(False)
    model[2].bias.requires_grad_(False)
    conv = dt.convert(model, "dyt")
    got = {n: p.requires_grad for n, p in conv.named_parameters()}
    ok(got == {"0.weight": True, "0.bias": True, "1.alpha": False,
               "1.weight": False, "1.bias": False, "2.alpha": True,
               "2.weight": True, "2.bias": False, "3.alpha": True},
       "requires_grad as the replaced norm's", str(got))


def test_nothing_to_convert_is_refused():
    """A model without norms, or whose norms are PointwiseNorms already
    (converting twice), is refused rather than returned unchanged; so is
    fitting to a model on the meta device."""
    raises(ValueError, lambda: dt.convert(nn.Linear(4, 4), "dyt"),
           "no norm at all", "has no LayerNorm or RMSNorm to replace")
    raises(ValueError, lambda: dt.convert_rmsnorm(
        nn.Sequential(nn.LayerNorm(4)), "dyt"), "no RMSNorm",
           "has no RMSNorm to replace")
    once = dt.convert(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), "dyt")
    raises(ValueError, lambda: dt.convert(once, "derf"), "converting twice",
           "PointwiseNorms already (1)")
    ok(once[1].fn.name == "dyt", "and the model is as it was")
    raises(ValueError, lambda: dt.fit_initial(once, "derf",
                                              [torch.randn(2, 4)]),
           "fit_initial on a converted model", "PointwiseNorms already")
    meta = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).to("meta")
    raises(ValueError, lambda: dt.fit_initial(
        meta, "dyt", [torch.randn(2, 4, device="meta")]),
        "fit_initial on meta", "'s input is on the meta device")


def test_init_keys_are_paths_first_and_must_match():
    """fit_initial's keys are paths, which convert's init takes before
    reading them as patterns: a ModuleDict key 'a[1]' or 'b*' got the
    defaults or another site's values; a key matching no norm is refused."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.d = nn.ModuleDict({"a[1]": nn.LayerNorm(8),
                                    "b*": nn.LayerNorm(8),
                                    "bx": nn.LayerNorm(8)})

        def forward(self, x):
            return x

    init = {"d.a[1]": {"alpha": 0.11}, "d.b*": {"alpha": 0.22},
            "d.bx": {"alpha": 0.33}}
    c = dt.convert(M(), "dyt", init=init)
    got = {p: float(m.alpha.detach()) for p, m in c.named_modules()
           if isinstance(m, dt.PointwiseNorm)}
    ok(got == {p: pytest.approx(v["alpha"]) for p, v in init.items()},
       "each site its own value", got)
    c = dt.convert(M(), "dyt", init={"d.b?": {"alpha": 0.4}})
    ok(float(c.d["bx"].alpha.detach()) == pytest.approx(0.4) and
       float(c.d["a[1]"].alpha.detach()) == 0.5,
       "patterns still match", c)
    raises(ValueError, lambda: dt.convert(M(), "dyt",
                                          init={"d.nosuch*": {"alpha": 1}}),
           "a key matching no norm", "init's 'd.nosuch*' matches no norm "
           "of the model (its norms: d.a[1], d.b*, d.bx)")


def test_convert_changes_nothing_when_a_later_site_fails():
    """An error at a later site (a LayerNorm over two dimensions, a bad
    init value) left the model half converted (its first norm a
    PointwiseNorm), and converting it again then mixed two functions:
    every replacement is now made before the model changes."""
    for bad, init in ((nn.LayerNorm((2, 4)), None),
                      (nn.LayerNorm(8), {"2": {"alpha": torch.ones(2)}})):
        m = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), bad)
        raises(ValueError, lambda: dt.convert(m, "dyt", init=init),
               "a later site's error")
        ok([type(c).__name__ for c in m] ==
           ["LayerNorm", "Linear", "LayerNorm"],
           "the model is as it was", [type(c).__name__ for c in m])


class ChannelRMSNorm(nn.Module):
    """An RMSNorm over dimension 1, written by hand."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps) \
            * self.weight[:, None, None]


@pytest.mark.skipif(not hasattr(torch.device, "__enter__"),
                    reason="no torch.device context (PyTorch 2)")
def test_channels_first_rmsnorm_on_meta_refused():
    """On the meta device an RMSNorm class over dimension 1 was converted
    over the last dimension, silently. A CPU copy of it is probed there
    now, and finds dimension 1, as on the CPU; where no probe runs (a
    buffer without a test value), its forward's source makes it a
    refusal (the class named), as for a LayerNorm."""
    class BufferedChannelRMSNorm(ChannelRMSNorm):
        def __init__(self, c):
            super().__init__(c)
            self.register_buffer("unused", torch.zeros(1))

    def make(cls=ChannelRMSNorm):
        return nn.Sequential(nn.Conv2d(3, 8, 1), cls(8))
    ok(not dt.convert(make(), "dyt")[1].channels_last,
       "on the CPU: converted over dimension 1")
    with torch.device("meta"):
        m = make()
        mb = make(BufferedChannelRMSNorm)
    c = dt.convert(copy.deepcopy(m), "dyt")
    ok(not c[1].channels_last and c[1].weight.is_meta,
       "on meta: probed, over dimension 1")
    raises(ValueError, lambda: dt.convert(mb, "dyt"), "unprobed: refused",
           match="channels_first_classes={BufferedChannelRMSNorm: True or "
           "False}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = dt.convert(mb, "dyt",
                       channels_first_classes={BufferedChannelRMSNorm: True})
    ok(not c[1].channels_last, "on meta, told: over dimension 1")
    with torch.device("meta"):  # convert inside the context too
        c = dt.convert(make(), "dyt")
    ok(not c[1].channels_last and c[1].weight.is_meta,
       "inside torch.device('meta'): probed, over dimension 1")


def test_fit_initial_refuses_two_dimensions():
    """fit_initial fitted a LayerNorm((2, 4)) to a normalization over the
    last dimension alone (alpha 0.05 where 0.61 fits what it computes):
    refused, as convert refuses it."""
    m = nn.Sequential(nn.Linear(8, 8), nn.Unflatten(1, (2, 4)),
                      nn.LayerNorm((2, 4)))
    raises(ValueError, lambda: dconv.fit_initial(
        m, "dyt", [torch.randn(16, 8)]), "a LayerNorm over (2, 4)",
        match="fit_initial: 2 normalizes over (2, 4)")


class _KeywordRMSNorm(nn.Module):
    """An RMSNorm whose forward names its input 'inputs'."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))

    def forward(self, inputs):
        return self.weight * inputs * torch.rsqrt(
            inputs.pow(2).mean(-1, keepdim=True) + 1e-6)


_KeywordRMSNorm.__name__ = "KeywordRMSNorm"


class _CallsByKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.rms = _KeywordRMSNorm(8)
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.rms(inputs=self.lin(self.ln(input=x)))


def test_norm_called_by_keyword():
    """A model that calls its norms by keyword (self.ln(input=x), or the
    replaced class's own name) runs after conversion, and fit_initial
    fits to the keyword's input (it raised IndexError)."""
    torch.manual_seed(1)
    x = torch.randn(64, 8) * 3
    m = _CallsByKeyword()
    if not hasattr(torch, "compile"):
        raises(ValueError, lambda: dconv.fit_initial(m, "dyt", [x]),
               "PyTorch 1.13's hooks see no keyword",
               match="ln (LayerNorm) was called without a positional input")
        norm = dt.PointwiseNorm(8, "dyt")
        ok(torch.equal(norm(input=x), norm(x)),
           "PyTorch 1.13: nn.LayerNorm's keyword taken")
        raises(TypeError, lambda: norm(inputs=x),
               "PyTorch 1.13: not the replaced class's own name",
               match="inputs")
        return
    ref = _CallsByKeyword()
    ref.load_state_dict(m.state_dict())
    init = dconv.fit_initial(m, "dyt", [x])
    ok(set(init) == {"ln", "rms"}, "both sites fitted", init)
    # what fit_initial fits to: the positional call's values
    ref.forward = lambda x: ref.rms(ref.lin(ref.ln(x)))
    ok(dconv.fit_initial(ref, "dyt", [x]) == init, "keyword = positional")
    c = dt.convert(m, "dyt", init=init)
    ok(c.rms._dnc_arg == "inputs", "the replaced forward's name kept")
    y = c(x)
    ln, rms = c.ln, c.rms
    want = rms.weight * torch.tanh(rms.alpha * c.lin(
        ln.weight * torch.tanh(ln.alpha * x) + ln.bias))
    ok(torch.allclose(y, want, atol=1e-5), "values",
       lambda: (y - want).abs().max())
    c2 = copy.deepcopy(c)
    ok(torch.equal(c2(x), y), "deep copy keeps the name")


def test_keyword_refusals():
    """A PointwiseNorm takes its input once, by position or as x, input or
    hidden_states (or its replaced class's name): anything else is a
    TypeError naming what it takes (on PyTorch 1.13, whose forward
    cannot take **kw, Python's own for another name)."""
    p = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(2, 8)
    for kw in ("x", "input", "hidden_states"):
        ok(torch.equal(p(**{kw: x}), p(x)), "keyword " + kw)
    raises(TypeError, lambda: p(), "no input", match="missing its input")
    raises(TypeError, lambda: p(x, input=x), "twice",
           match="given by position and as input")
    raises(TypeError, lambda: p(input=x, hidden_states=x), "two keywords",
           match="given as input and as hidden_states")
    raises(TypeError, lambda: p(inputs=x), "another name",
           match="unexpected keyword argument 'inputs'" + (
               " (the input goes by position or as x, input, "
               "hidden_states)" if hasattr(torch, "compile") else ""))
    gm = torch.fx.symbolic_trace(p)
    ok(torch.equal(gm(x), p(x)), "fx trace of the module itself")


def test_optimizer_made_before_convert_warns():
    """An optimizer made before convert holds the replaced norms'
    parameters and would never train the PointwiseNorms' (silently): its
    first step warns, naming one; an optimizer made after, or one over a
    model whose deep copy was converted, does not."""
    if not hasattr(torch.optim.Optimizer, "register_step_pre_hook"):
        pytest.skip("PyTorch 1.13 has no optimizer step hooks")
    dt.convert(nn.Sequential(nn.LayerNorm(4)), "dyt")  # the hook is there
    x = torch.randn(3, 4)
    m = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    early = torch.optim.AdamW(m.parameters())
    m(x).sum().backward()
    early.step()  # a step before convert: looked at again after it
    original = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
    kept = torch.optim.SGD(original.parameters(), lr=0.1)
    dt.convert(m, "dyt")
    dt.convert(copy.deepcopy(original), "derf")
    late = torch.optim.SGD(m.parameters(), lr=0.1)
    for opt, model, want in ((early, m, True), (late, m, False),
                             (early, m, False), (kept, original, False)):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            model(x).sum().backward()
            opt.step()
        said = [str(i.message) for i in w if "dnc.convert" in
                str(i.message)]
        ok(bool(said) == want, "%s warns: %s" % (type(opt).__name__, want),
           said)
        if want:
            ok("this AdamW holds the parameters of norms that dnc.convert "
               "replaced (1.weight)" in said[0], "the message", said)


def test_no_weight_decay_names_every_norm_parameter():
    """no_weight_decay: every PointwiseNorm parameter by every name it has
    (a norm under two names, Derf's shift, a parametrized weight's
    original), and the parameters that also= matches; nothing else."""
    from torch.nn.utils import parametrize

    class Half(nn.Module):
        def forward(self, w):
            return w / 2

        def right_inverse(self, w):
            return 2 * w

    norm = nn.LayerNorm(4)
    m = nn.Sequential(nn.Linear(4, 4), norm, nn.Linear(4, 4),
                      nn.LayerNorm(4, elementwise_affine=False))
    m.add_module("again", norm)
    parametrize.register_parametrization(norm, "bias", Half())
    dt.convert(m, "derf")
    got = dt.no_weight_decay(m)
    want = {"%s.%s" % (p, n) for p in ("1", "again")
            for n in ("alpha", "shift", "weight",
                      "parametrizations.bias.original")} | \
        {"3.alpha", "3.shift"}
    ok(got == want, "every name of every norm parameter", sorted(got ^ want))
    ok(dt.no_weight_decay(m, also=("*.bias", "0.weight")) ==
       want | {"0.bias", "0.weight", "2.bias"},
       "also= adds the names it matches",
       sorted(dt.no_weight_decay(m, also=("*.bias", "0.weight"))))
    ok(dt.no_weight_decay is dconv.no_weight_decay, "re-exported")


class TinyConfig:
    """A stand-in for a Hugging Face config (model_type, to_dict)."""
    model_type = "tiny"

    def __init__(self, c=4):
        self.c = c

    def to_dict(self):
        return dict(vars(self))


class TinyPretrained(nn.Module):
    """A stand-in for a Hugging Face model class: a config shared by its
    modules, save_pretrained, and from_pretrained(path,
    output_loading_info=), which makes the model from the saved config
    and loads the saved values (strict=False), reporting the keys."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(config.c, config.c)
        self.ln = nn.LayerNorm(config.c)
        self.rms = GemmaRMSNorm(config.c)
        self.lin.config = config

    def forward(self, x):
        return self.rms(self.ln(self.lin(x)))

    def save_pretrained(self, path):
        import pickle
        with open(path, "wb") as f:
            pickle.dump((self.config, dict(self.state_dict())), f)

    @classmethod
    def from_pretrained(cls, path, output_loading_info=False):
        import pickle
        with open(path, "rb") as f:
            config, state = pickle.load(f)
        m = cls(config)
        r = m.load_state_dict(state, strict=False)
        info = {"missing_keys": r.missing_keys,
                "unexpected_keys": r.unexpected_keys}
        return (m, info) if output_loading_info else m


def test_from_pretrained_of_a_converted_model(tmp_path):
    """dt.from_pretrained(cls, path, fn): the model converted as it is
    made, then cls's own loading; the values as saved (Gemma's weight not
    offset again), an instance of cls. convert writes its function into a
    copy of the model's config (another model made from that config is
    no converted one); from_pretrained of the original class then
    convert(keep_affine=True) warns; a checkpoint of the original model,
    of another function or of another kind is refused."""
    cfg = TinyConfig()
    torch.manual_seed(0)
    m = dt.convert(TinyPretrained(cfg), "dyt")
    ok(m.config is not cfg and m.lin.config is m.config and
       m.config.dnc_functions == [m.ln._dnc_source] and
       not hasattr(cfg, "dnc_functions"),
       "convert marks a copy of the config, shared by the model's modules")
    with torch.no_grad():
        for t in itertools.chain(m.ln.parameters(), m.rms.parameters()):
            t.add_(0.3 * torch.randn_like(t))
    path = str(tmp_path / "m.pkl")
    m.save_pretrained(path)
    back = dt.from_pretrained(TinyPretrained, path, "dyt")
    ok(type(back) is TinyPretrained and
       all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                              back.state_dict().values())),
       "every value as saved, an instance of the class")
    with pytest.warns(UserWarning, match="converted by dnc"):
        dt.convert(TinyPretrained.from_pretrained(path), "dyt",
                   keep_affine=True)
    raises(ValueError, lambda: dt.from_pretrained(TinyPretrained, path,
                                                  "dyisru"),
           "another function", "not to fn dyisru")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the RMSNorm left
        raises(ValueError, lambda: dt.from_pretrained(
            TinyPretrained, path, "dyt", kind="layernorm"),
            "another kind", "rms.alpha, where this model has no "
            "PointwiseNorm")
    TinyPretrained(TinyConfig()).save_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gemma's, without metadata
        raises(ValueError, lambda: dt.from_pretrained(TinyPretrained, path,
                                                      "dyt"),
               "the original model's checkpoint", "has no ln.alpha, rms.alpha")


class CastT5LayerNorm(T5LayerNorm):
    """Hugging Face's T5LayerNorm as it is written: the variance in
    float32, the result cast to a bfloat16 or float16 weight's dtype."""

    def forward(self, hidden_states):
        v = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(v + self.variance_epsilon)
        if self.weight.dtype in [torch.float16, torch.bfloat16]:
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


class OneHalfRMSNorm(LlamaRMSNorm):
    """An RMSNorm that casts to its weight's dtype where that is one half
    dtype (cast_to) only: with the other, weight * x returns float32."""
    cast_to = torch.bfloat16

    def forward(self, hidden_states):
        h = hidden_states.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight.dtype == self.cast_to:
            h = h.to(self.cast_to)
        return self.weight * h


class BF16CastRMSNorm(OneHalfRMSNorm):
    cast_to = torch.bfloat16


class F16CastRMSNorm(OneHalfRMSNorm):
    cast_to = torch.float16


def test_a_float32_input_to_half_norms_as_the_replaced_norm_takes_it():
    """T5 loaded in float16 keeps its feed-forward output layers in
    float32 (_keep_in_fp32_modules = ['wo']), whose output reaches the
    next T5LayerNorm, which computes in float32 and returns its weight's
    dtype; the converted model's call was a TypeError. A norm convert
    replaces now takes a float32 input to its bfloat16 or float16
    parameters where the replaced norm took it, computing in float32 and
    returning what that norm returned (T5's: the weight's dtype; an
    RMSNorm multiplying in the promoted dtype: float32); nn.LayerNorm,
    which refuses it, stays refused."""
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16):
        # (what the replaced norm returns was probed in bfloat16 alone:
        # BF16CastRMSNorm's converted float16 norm returned float16, not
        # float32, and F16CastRMSNorm's float32, not float16)
        for cls, want in ((CastT5LayerNorm, dtype),
                          (LlamaRMSNorm, torch.float32),
                          (nn.LayerNorm, None),
                          (BF16CastRMSNorm, dtype if dtype == torch.bfloat16
                           else torch.float32),
                          (F16CastRMSNorm, dtype if dtype == torch.float16
                           else torch.float32)):
            m = nn.Sequential(nn.Linear(8, 8), cls(8)).to(dtype)
            m[0].float()  # (T5's wo: its output float32)
            x = torch.randn(4, 8)
            if want is not None:
                ok(m(x).dtype == want, "%s, %s: the norm returns %s"
                   % (cls.__name__, dtype, want))
            conv = dt.convert(copy.deepcopy(m), "dyt")
            pn = conv[1]
            with torch.no_grad():
                pn.alpha.fill_(0.7)
                pn.weight.uniform_(0.5, 1.5)
            name = "%s, %s" % (cls.__name__, dtype)
            if want is None:
                raises(TypeError, lambda: conv(x), name + ": refused",
                       "the input is torch.float32 but")
                continue
            y = conv(x)
            h = conv[0](x).detach()
            ref = torch.tanh(pn.alpha.detach().float() * h) * \
                pn.weight.detach().float()
            ok(y.dtype == want and
               torch.allclose(y.float(), ref.to(want).float(), rtol=1e-2,
                              atol=1e-2),
               name + ": computed in float32, returned in %s" % want,
               str(y.dtype))
            if hasattr(torch, "compile"):
                # torch.fx.symbolic_trace records the norm as one node
                g = torch.fx.symbolic_trace(conv)
                with torch.no_grad():
                    ok(torch.equal(g(x), y.detach()),
                       name + ": the traced GraphModule's output")
            y.float().sum().backward()
            ok(pn.alpha.grad.dtype == dtype and pn.weight.grad.dtype == dtype
               and torch.isfinite(pn.alpha.grad).all() and
               conv[0].weight.grad is not None,
               name + ": gradients in the parameters' dtype")
    if hasattr(nn, "RMSNorm"):
        # running nn.RMSNorm so warned ('Mismatch dtype between input and
        # weight') at every convert
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            conv = dt.convert(nn.Sequential(nn.Linear(8, 8), nn.RMSNorm(8)),
                              "dyt")
        ok(conv[1]._dnc_wide == "promote", "nn.RMSNorm: float32 returned, "
           "no warning at convert")


class TinyOuter(nn.Module):
    """A stand-in for a Hugging Face model around a backbone
    (LlamaForCausalLM around model.model): both hold the config."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = TinyPretrained(config)
        self.head = nn.Linear(config.c, config.c)

    def forward(self, x):
        return self.head(self.model(x))


def test_convert_of_a_backbone_marks_the_model_around_it():
    """convert(model.model, fn): the backbone alone took the marked copy
    of the config, so that model.config was no longer model.model.config
    and the model's own config (what save_pretrained writes) did not say
    it was converted. Every module of the model around the backbone holds
    the marked copy now; another model of the same config object stays
    as it was."""
    cfg = TinyConfig()
    torch.manual_seed(0)
    m, twin = TinyOuter(cfg), TinyOuter(cfg)
    dt.convert(m.model, "dyt")
    ok(m.config is m.model.config and m.config is m.model.lin.config and
       m.config.dnc_functions == [m.model.ln._dnc_source],
       "the model and its backbone hold one marked config")
    ok(twin.config is cfg and twin.model.config is cfg and
       not hasattr(cfg, "dnc_functions"),
       "another model of the same config object is not marked")


class RaisingConfigWrapper(nn.Module):
    """A module around a backbone whose config property raises."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    @property
    def config(self):
        raise RuntimeError("made at fit time")


class SlotsConfig:
    __slots__ = ("model_type",)

    def __init__(self):
        self.model_type = "slots"

    def to_dict(self):
        return {}


class SlotsConfigWrapper(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = SlotsConfig()


def test_convert_of_a_backbone_inside_any_module():
    """The search for the models around a converted backbone reads the
    config of every module that holds it, modules convert was not given:
    convert(w.inner, fn) of a backbone inside a wrapper whose config
    property raises was that RuntimeError, and inside one whose
    config-like object has __slots__ a TypeError (vars()), where convert
    had converted it. Such a module is not a model around the backbone;
    convert converts and marks the backbone's config."""
    for cls in (RaisingConfigWrapper, SlotsConfigWrapper):
        torch.manual_seed(0)
        w = cls(TinyPretrained(TinyConfig()))
        dt.convert(w.inner, "dyt")
        ok(isinstance(w.inner.ln, dt.PointwiseNorm) and
           w.inner.config.dnc_functions == [w.inner.ln._dnc_source],
           cls.__name__ + ": converted and marked")


def test_from_pretrained_refuses_a_model_converted_to_two_functions(
        tmp_path):
    """A model whose LayerNorms were converted to DyT and whose RMSNorms
    to another function with a parameter of the same name (alpha), saved:
    dt.from_pretrained(cls, path, "dyt") converted every norm to DyT and
    loaded the other function's alpha into it, silently computing tanh
    where the model had computed x / sqrt(alpha + x^2). Its config lists
    both functions: refused, naming the other one; and as before for a
    function that is neither."""
    isru = "fn isru(x; alpha = 0.5) = x / sqrt(alpha + x^2)"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the norms of the other kind
        m = dt.convert(TinyPretrained(TinyConfig()), "dyt", kind="layernorm")
        m = dt.convert(m, isru, kind="rmsnorm")
    ok(m.ln._dnc_name == "dyt" and m.rms._dnc_name == "isru" and
       len(m.config.dnc_functions) == 2, "two functions, both in the config")
    path = str(tmp_path / "m.pkl")
    m.save_pretrained(path)
    for fn, other in (("dyt", "isru"), (isru, "dyt")):
        raises(ValueError, lambda: dt.from_pretrained(TinyPretrained, path,
                                                      fn),
               "loaded as %s" % fn, "converted to fn %s(x; alpha = 0.5)"
               % other)
    raises(ValueError, lambda: dt.from_pretrained(TinyPretrained, path,
                                                  "derf"),
           "loaded as derf", "not to fn derf")


def test_tied_norm_parameters_stay_tied():
    """Two norms whose weight and bias are one tensor each (m[3].weight =
    m[1].weight): convert made each PointwiseNorm parameters of its own,
    untying them silently (6 parameters became 10). The second takes the
    first's now, with keep_affine or without; a norm parameter shared
    with a module convert does not replace cannot stay tied: a warning
    says so."""
    for keep in (True, False):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8),
                          nn.LayerNorm(8))
        with torch.no_grad():
            m[1].weight.normal_()
        m[3].weight = m[1].weight
        m[3].bias = m[1].bias
        w = m[1].weight.detach().clone()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dt.convert(m, "dyt", keep_affine=keep)
        ok(m[3].weight is m[1].weight and m[3].bias is m[1].bias and
           m[3].alpha is not m[1].alpha and len(list(m.parameters())) == 8,
           "keep_affine=%s: weight and bias still tied" % keep)
        ok(torch.equal(m[1].weight, w if keep else torch.ones(8)),
           "keep_affine=%s: the values" % keep)
    m = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    m[0].bias = m[1].bias
    with pytest.warns(UserWarning, match=r"shared with modules that "
                      r"convert did not replace: 1\.bias \(also 0\.bias\)"):
        dt.convert(m, "dyt")


def test_a_pruned_norm_names_pruning_and_its_remedy():
    """A norm pruned with torch.nn.utils.prune was refused with a message
    about weight_norm (every torch.nn.utils hook was taken for it): the
    refusal names pruning and prune.remove, which makes it permanent, and
    the converted norm keeps the zeros; the old spectral_norm is named as
    such; a pruned Linear beside the norm converts as it is."""
    import torch.nn.utils.prune as prune
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    with torch.no_grad():
        m[1].weight.normal_()
    prune.l1_unstructured(m[1], "weight", amount=0.5)
    raises(ValueError, lambda: dt.convert(m, "dyt", keep_affine=True),
           "pruning named", "1: its weight is pruned by torch.nn.utils.prune "
           "(torch.nn.utils.prune.L1Unstructured")
    raises(ValueError, lambda: dt.convert(m, "dyt", keep_affine=True),
           "its remedy", "torch.nn.utils.prune.remove(module, 'weight')")
    ok(not isinstance(m[1], dt.PointwiseNorm), "the model as it was")
    prune.remove(m[1], "weight")
    w = m[1].weight.detach().clone()
    dt.convert(m, "dyt", keep_affine=True)
    ok(torch.equal(m[1].weight, w) and int((w == 0).sum()) == 4,
       "once made permanent, keep_affine copies the pruned weight")
    s = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    torch.nn.utils.spectral_norm(s[1], dim=0)
    raises(ValueError, lambda: dt.convert(s, "dyt"), "spectral_norm named",
           "torch.nn.utils.spectral_norm.SpectralNorm, which a PointwiseNorm "
           "cannot carry: remove it first "
           "(torch.nn.utils.remove_spectral_norm)")
    p = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    prune.l1_unstructured(p[0], "weight", amount=0.5)
    dt.convert(p, "dyt")
    ok(isinstance(p[1], dt.PointwiseNorm) and
       prune.is_pruned(p[0]), "a pruned Linear stays pruned")


def test_non_finite_init_values_are_refused():
    """A NaN or infinite initial value, given through convert's init or
    defaults or to PointwiseNorm itself, is a ValueError naming the site
    and the parameter: init={"norm": {"alpha": nan}} gave alpha = nan,
    silently, and every output NaN. Finite values still go in."""
    nan, inf = float("nan"), float("inf")
    per_channel = "fn f(x; alpha[] = 1) = tanh(alpha * x)"
    for v in (nan, inf, -inf):
        raises(ValueError, lambda: dt.convert(Llama(), "dyt", init={
            "norm": {"alpha": v}}), "init's alpha %s refused" % v,
            "dnc.convert: norm: dyt: 'alpha' is given %s" % v)
        raises(ValueError, lambda: dt.convert(Llama(), "dyt", alpha=v),
               "a default alpha %s refused" % v, "'alpha' is given %s" % v)
        raises(ValueError, lambda: dt.PointwiseNorm(8, "dyt", alpha=v),
               "PointwiseNorm(alpha=%s) refused" % v,
               "dyt: 'alpha' is given %s" % v)
        raises(ValueError, lambda: dt.PointwiseNorm(
            4, per_channel, alpha=[1.0, v, 2.0, 3.0]),
            "a per-channel value %s refused" % v,
            "f: 'alpha' is given %s (one of 4 values)" % v)
    c = dt.convert(Llama(), "dyt", init={"norm": {"alpha": 0.25}})
    ok(float(c.norm.alpha.detach()) == 0.25, "a finite value goes in")


class _FakeConfig:
    """What dnc.convert takes for a Hugging Face config: model_type and
    to_dict."""
    model_type = "fake"

    def to_dict(self):
        return dict(vars(self))


class _FakeModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = _FakeConfig()
        self.block = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))

    def save_pretrained(self, path):  # (a Hugging Face model has it)
        raise NotImplementedError


def test_norm_converted_by_itself_inside_a_config_model():
    """A norm converted by itself and set in its place marks the config
    of the model around it through a global module registration hook,
    which PyTorch 1.13 does not have: there the config stayed unmarked
    without a word, so that save_pretrained wrote a config that did not
    name the function (and a load with another function of the same
    parameters' names took its values silently). Now 1.13 warns, naming
    the norm and the model, and says what to convert instead; on PyTorch
    2 the config is marked and nothing is warned."""
    m = _FakeModel()
    hook = hasattr(nn.modules.module,
                   "register_module_module_registration_hook")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.block[1] = dt.convert(m.block[1], "dyt")
    said = [str(x.message) for x in w if "converted by itself" in
            str(x.message)]
    if hook:
        ok(not said and getattr(m.config, "dnc_functions", None),
           "PyTorch 2: the config marked, no warning", said)
    else:
        ok(len(said) == 1 and "LayerNorm" in said[0] and
           "_FakeModel" in said[0] and "dnc_functions" in said[0] and
           "convert the model" in said[0],
           "PyTorch 1.13: a warning naming the norm and the model", said)
    # a norm held by no such model: no warning on either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.convert(nn.Sequential(nn.LayerNorm(8))[0], "dyt")
