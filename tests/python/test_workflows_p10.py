"""test_workflows_p10.py - an ML engineer's workflows end to end, each
against the same model with the norms written as plain PyTorch
(gamma * tanh(alpha * x) + beta, the DyT repository's DynamicTanh): a
small ViT, a ConvNeXt (channels-first LayerNorm with data_format, and its
blocks' channels-last one) and a LLaMA-style model (RMSNorm) written here,
converted with dnc.convert and trained with AdamW (weight-decay groups),
gradient accumulation and clipping, under bf16 autocast; EMA copies
(deepcopy, AveragedModel); state_dict through torch.save and
torch.load(weights_only=True) in another process, into the unconverted
model and back; torch.export saved and run in another process;
torch.compile with dynamic shapes; odd layouts and zero-size inputs."""
import copy
import os
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


class LayerNormCF(nn.Module):
    """The ConvNeXt repository's LayerNorm (data_format)."""

    def __init__(self, c, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps, self.data_format = eps, data_format
        self.normalized_shape = (c,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.normalized_shape, self.weight,
                                self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class CNBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dw = nn.Conv2d(d, d, 7, padding=3, groups=d)
        self.norm = LayerNormCF(d)
        self.pw1, self.pw2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.gamma = nn.Parameter(0.1 * torch.ones(d))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, dims=(8, 16), ncls=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4),
                                  LayerNormCF(dims[0], data_format="channels_first"))
        self.s1 = CNBlock(dims[0])
        self.down = nn.Sequential(LayerNormCF(dims[0], data_format="channels_first"),
                                  nn.Conv2d(dims[0], dims[1], 2, 2))
        self.s2 = CNBlock(dims[1])
        self.norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], ncls)

    def forward(self, x):
        x = self.s2(self.down(self.s1(self.stem(x))))
        return self.head(self.norm(x.mean([-2, -1])))


class ViTBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(),
                                 nn.Linear(2 * d, d))

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    def __init__(self, d=16, h=2, depth=2, patch=4, img=16, ncls=5):
        super().__init__()
        self.pe = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(
            torch.randn(1, (img // patch) ** 2 + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(d, h) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, ncls)

    def forward(self, x):
        x = self.pe(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        n = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * n.type_as(x)


def _attention(q, k, v):
    t = q.shape[-2]
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    return s.masked_fill(mask, float("-inf")).softmax(-1) @ v


class LlamaBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.attention_norm = RMSNorm(d)
        self.wqkv = nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d)
        self.w1 = nn.Linear(d, 2 * d, bias=False)
        self.w3 = nn.Linear(d, 2 * d, bias=False)
        self.w2 = nn.Linear(2 * d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.attention_norm(x)).view(
            b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4).unbind(0)
        a = _attention(q, k, v)
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, d))
        y = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(y)) * self.w3(y))


class Llama(nn.Module):
    def __init__(self, vocab=50, d=16, h=2, depth=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([LlamaBlock(d, h) for _ in range(depth)])
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, vocab, bias=False)

    def forward(self, t):
        x = self.emb(t)
        for layer in self.layers:
            x = layer(x)
        return self.out(self.norm(x))


class RefDyT(nn.Module):
    """gamma * tanh(alpha * x) + beta in PyTorch, over the last dimension
    or dimension 1 (cf)."""

    def __init__(self, c, cf, bias=True):
        super().__init__()
        self.cf = cf
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c)) if bias else None

    def forward(self, x):
        y = torch.tanh(self.alpha * x)
        w, b = self.weight, self.bias
        if self.cf:
            shape = (-1,) + (1,) * (x.dim() - 2)
            w = w.reshape(shape)
            b = b.reshape(shape) if b is not None else None
        y = y * w
        return y + b if b is not None else y


def reference(converted):
    """converted with each PointwiseNorm replaced by a RefDyT holding the
    same values."""
    ref = copy.deepcopy(converted)

    def walk(m):
        for name, c in list(m.named_children()):
            if isinstance(c, dt.PointwiseNorm):
                r = RefDyT(c.normalized_shape[0], not c.channels_last,
                           c.bias is not None).to(c.weight.dtype)
                r.load_state_dict(dict(c.state_dict()))
                setattr(m, name, r)
            else:
                walk(c)
    walk(ref)
    return ref


def converted(cls):
    torch.manual_seed(0)
    model = dt.convert(cls(), "dyt")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, dt.PointwiseNorm):
                m.alpha.copy_(torch.rand(1, generator=g) * 0.9 + 0.3)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4
                                 - 0.2)
    return model


def batches(cls, n=4, b=3):
    g = torch.Generator().manual_seed(2)
    if cls is Llama:
        return [(torch.randint(0, 50, (b, 7), generator=g),
                 torch.randint(0, 50, (b, 7), generator=g))
                for _ in range(n)]
    return [(torch.randn(b, 3, 16, 16, generator=g),
             torch.randint(0, 5, (b,), generator=g)) for _ in range(n)]


def loss_of(cls, out, t):
    if cls is Llama:
        return F.cross_entropy(out.flatten(0, 1).float(), t.flatten())
    return F.cross_entropy(out.float(), t)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / (b.norm() + 1e-30))


def train(cls, model, data, steps=2, accumulate=2, autocast=None):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    losses = []
    for s in range(steps):
        opt.zero_grad()
        for a in range(accumulate):
            x, t = data[(s * accumulate + a) % len(data)]
            if autocast is not None:
                with torch.autocast("cpu", dtype=autocast):
                    loss = loss_of(cls, model(x), t) / accumulate
            else:
                loss = loss_of(cls, model(x), t) / accumulate
            loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


MODELS = [ViT, ConvNeXt, Llama]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_convert_finds_every_norm(cls):
    model = converted(cls)
    norms = [m for m in model.modules() if isinstance(m, dt.PointwiseNorm)]
    ok(len(norms) == 5, "%s: five norms converted" % cls.__name__,
       lambda: model)
    if cls is ConvNeXt:
        ok([m.channels_last for m in norms] ==
           [False, True, False, True, True],
           "ConvNeXt: the stem's and the downsampling norms channels first",
           lambda: [m.channels_last for m in norms])
    if cls is Llama:
        ok(all(m.bias is None for m in norms), "RMSNorm: weight only")


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("autocast", [None, "bf16"])
def test_train_against_reference(cls, autocast):
    """AdamW with weight-decay groups, 2 accumulated micro-batches per
    step, clipping: losses and parameters as the reference model's."""
    ac = torch.bfloat16 if autocast else None
    ours = converted(cls)
    ref = reference(ours)
    data = batches(cls)
    x = data[0][0]
    ok(rel(ours(x), ref(x)) < 1e-5, "%s: forward" % cls.__name__)
    lo = train(cls, ours, data, autocast=ac)
    lr = train(cls, ref, data, autocast=ac)
    tol = 1e-4 if ac is None else 2e-2
    ok(all(abs(a - b) <= tol * max(1, abs(b)) for a, b in zip(lo, lr)),
       "%s, autocast %s: losses" % (cls.__name__, autocast), (lo, lr))
    # parameters: Adam's first steps move each by about lr, whatever the
    # size of its gradient, so a parameter's distance from the reference
    # is compared with lr, not with its own norm
    worst = max(float((p - q).detach().abs().max())
                for p, q in zip(ours.parameters(), ref.parameters()))
    ok(worst < (2e-4 if ac is None else 2e-3),
       "%s, autocast %s: parameters after training" % (cls.__name__,
                                                        autocast), worst)


def test_ema_copies():
    """An EMA model by copy.deepcopy and by AveragedModel: the same values
    as the reference model's EMA."""
    ours = converted(ConvNeXt)
    ref = reference(ours)
    x = batches(ConvNeXt)[0][0]

    def avg(e, m, n):
        return 0.9 * e + 0.1 * m
    emas = []
    for model in (ours, ref):
        deep = copy.deepcopy(model)
        swa = torch.optim.swa_utils.AveragedModel(model, avg_fn=avg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
            swa.update_parameters(model)
            with torch.no_grad():
                for e, p in zip(deep.parameters(), model.parameters()):
                    e.mul_(0.9).add_(p, alpha=0.1)
        emas.append((deep(x), swa(x)))
    ok(rel(emas[0][0], emas[1][0]) < 1e-5, "deepcopy EMA")
    ok(rel(emas[0][1], emas[1][1]) < 1e-5, "AveragedModel EMA")


_LOAD = r"""
import sys, torch
sys.path[:0] = %r
import dnc.torch as dt
from test_workflows_p10 import converted, ConvNeXt, Llama
cls = {"ConvNeXt": ConvNeXt, "Llama": Llama}[sys.argv[1]]
state = torch.load(sys.argv[2], weights_only=True)
m = dt.convert(cls(), "dyt")
m.load_state_dict(state)
x = torch.load(sys.argv[3], weights_only=True)
torch.save(m(x).detach(), sys.argv[4])
"""


@pytest.mark.parametrize("cls", [ConvNeXt, Llama], ids=lambda c: c.__name__)
def test_state_dict_across_processes(cls, tmp_path):
    """torch.save of a trained model's state_dict, loaded with
    weights_only=True by another process into a freshly converted model;
    into the unconverted model (strict=False: alpha is not one of its
    keys) and back."""
    ours = converted(cls)
    data = batches(cls)
    train(cls, ours, data, steps=1)
    ours.eval()
    x = data[1][0]
    torch.save(ours.state_dict(), str(tmp_path / "state.pt"))
    torch.save(x, str(tmp_path / "x.pt"))
    here = os.path.dirname(os.path.abspath(__file__))
    path = [os.path.join(os.path.dirname(os.path.dirname(here)), "python"),
            here]
    r = subprocess.run([sys.executable, "-c", _LOAD % (path,), cls.__name__,
                        str(tmp_path / "state.pt"), str(tmp_path / "x.pt"),
                        str(tmp_path / "y.pt")],
                       capture_output=True, text=True, timeout=600)
    ok(r.returncode == 0, "the loading process ran", r.stderr[-2000:])
    y = torch.load(str(tmp_path / "y.pt"))
    ok(torch.equal(y, ours(x)), "%s: the other process's output" %
       cls.__name__, rel(y, ours(x)))
    plain = cls()
    res = plain.load_state_dict(ours.state_dict(), strict=False)
    ok(not res.missing_keys and
       all(k.endswith(".alpha") for k in res.unexpected_keys),
       "into the unconverted model: only alpha left over", res)
    back = dt.convert(plain, "dyt")
    res = back.load_state_dict(dict(ours.state_dict()), strict=True)
    ok(torch.equal(back.eval()(x), ours(x)), "and back: the same outputs")


def test_layouts_and_sizes():
    """channels_last memory format, transposed and expanded inputs, zero
    sizes, gradients for the input alone or the parameters alone,
    inference_mode: the reference's values."""
    ours = converted(ConvNeXt)
    ref = reference(ours)
    x = batches(ConvNeXt)[0][0]
    for name, xi in (("channels_last", x.to(memory_format=torch.channels_last)),
                     ("transposed", x.transpose(2, 3)),
                     ("expanded", x[:1].expand(3, -1, -1, -1))):
        a = xi.detach().clone().requires_grad_() if name != "expanded" \
            else xi
        b = xi.detach().clone().requires_grad_() if name != "expanded" \
            else xi
        ya, yb = ours(a), ref(b)
        ok(rel(ya, yb) < 1e-5, "%s: forward" % name)
        ya.pow(2).sum().backward()
        yb.pow(2).sum().backward()
        if a.requires_grad:
            ok(rel(a.grad, b.grad) < 1e-5, "%s: input gradient" % name)
        for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
            ok(rel(p.grad, q.grad) < 1e-4, "%s: gradient of %s" % (name, n),
               rel(p.grad, q.grad))
        ours.zero_grad()
        ref.zero_grad()
    norm, rnorm = ours.stem[1], ref.stem[1]
    for shape in ((0, 8, 4, 4), (2, 8, 0, 3), (2, 8, 3, 3)):
        for wants in ("x", "params"):
            a = torch.randn(shape, requires_grad=wants == "x")
            norm.requires_grad_(wants == "params")
            rnorm.requires_grad_(wants == "params")
            norm.zero_grad()
            rnorm.zero_grad()
            ya, yb = norm(a), rnorm(a)
            ok(ya.shape == a.shape and rel(ya, yb) < 1e-5,
               "channels first %s: forward" % (shape,))
            (ya.pow(2).sum() + ya.sum()).backward()
            ga = a.grad
            a.grad = None
            (yb.pow(2).sum() + yb.sum()).backward()
            if wants == "x":
                ok(rel(ga, a.grad) < 1e-5, "%s: input gradient" % (shape,))
            else:
                for p, q in zip(norm.parameters(), rnorm.parameters()):
                    ok(torch.allclose(p.grad, q.grad, rtol=1e-5,
                                      atol=1e-5),
                       "%s: parameter gradients" % (shape,), (p.grad, q.grad))
    norm.requires_grad_(True)
    with torch.inference_mode():
        ok(rel(ours(x), ref(x)) < 1e-5, "inference_mode")


def test_clear_refusals():
    """What cannot be computed is refused, never computed wrong."""
    ours = converted(ConvNeXt)
    x = batches(ConvNeXt)[0][0]
    with pytest.raises(TypeError, match="float32, float64, bfloat16"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # complex modules are "new"
        copy.deepcopy(ours).to(torch.complex64)(x.to(torch.complex64))
    with pytest.raises(TypeError, match="convert the module"):
        ours.norm(torch.randn(2, 16, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="move the module"):
        ours.norm(torch.randn(2, 16, device="meta"))
    meta = copy.deepcopy(ours).to("meta")
    ok(meta(x.to("meta")).shape == (3, 5), "meta: shapes")


_EXPORTED = r"""
import sys, torch
sys.path[:0] = %r
import dnc.torch
ep = torch.export.load(sys.argv[1])
torch.save(ep.module()(torch.load(sys.argv[2])).detach(), sys.argv[3])
"""


def test_export_saved_and_run_elsewhere(tmp_path):
    """torch.export with a dynamic batch, torch.export.save, and the
    program loaded and run by another process on another batch size."""
    if not dt.HAS_CUSTOM_OPS:
        pytest.skip("torch.export needs PyTorch 2")
    ours = converted(ConvNeXt).eval()
    ref = reference(ours)
    x = batches(ConvNeXt)[0][0]
    ep = torch.export.export(ours, (x,), dynamic_shapes=(
        {0: torch.export.Dim("batch", min=1, max=64)},))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    x5 = torch.randn(5, 3, 16, 16)
    torch.save(x5, str(tmp_path / "x.pt"))
    here = os.path.dirname(os.path.abspath(__file__))
    path = [os.path.join(os.path.dirname(os.path.dirname(here)), "python")]
    r = subprocess.run([sys.executable, "-c", _EXPORTED % (path,),
                        str(tmp_path / "m.pt2"), str(tmp_path / "x.pt"),
                        str(tmp_path / "y.pt")],
                       capture_output=True, text=True, timeout=600)
    ok(r.returncode == 0, "the loading process ran", r.stderr[-2000:])
    ok(rel(torch.load(str(tmp_path / "y.pt")), ref(x5)) < 1e-5,
       "the exported program's output")


def _skip_if_reference_fails(ref, shapes, cls):
    """Skips where this PyTorch's torch.compile(dynamic=True) fails on the
    reference model too, which has no dnc in it (PyTorch 2.11's inductor:
    "cannot determine truth value of Relational" on ConvNeXt); returns
    where the reference compiles, so that dnc's failure is reported."""
    torch._dynamo.reset()
    run = torch.compile(copy.deepcopy(ref), dynamic=True)
    try:
        for s in shapes:
            x = torch.randint(0, 50, s) if cls is Llama else torch.randn(s)
            run(x).pow(2).mean().backward()
    except Exception as e:
        pytest.skip("PyTorch %s's torch.compile(dynamic=True) fails on the "
                    "reference %s itself: %s" % (
                        torch.__version__, cls.__name__,
                        str(e).splitlines()[0][:200]))


@pytest.mark.slow
@pytest.mark.parametrize("cls", [ConvNeXt, Llama], ids=lambda c: c.__name__)
def test_compile_dynamic_shapes(cls):
    """torch.compile(dynamic=True) over changing batch sizes, image sizes
    and sequence lengths: outputs and gradients as the reference's."""
    if not dt.HAS_CUSTOM_OPS:
        pytest.skip("torch.compile needs PyTorch 2")
    torch._dynamo.reset()
    ours = converted(cls)
    ref = reference(ours)
    run = torch.compile(ours, dynamic=True)
    shapes = [(3, 7), (2, 9), (5, 4)] if cls is Llama else \
        [(4, 3, 16, 16), (2, 3, 24, 24), (5, 3, 32, 32)]
    for s in shapes:
        x = torch.randint(0, 50, s) if cls is Llama else torch.randn(s)
        try:
            ya = run(x)
        except Exception:
            _skip_if_reference_fails(ref, shapes, cls)
            raise
        yb = ref(x)
        ok(rel(ya, yb) < 1e-5, "%s %s: forward" % (cls.__name__, s))
        ya.pow(2).mean().backward()
        yb.pow(2).mean().backward()
        for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
            ok(rel(p.grad, q.grad) < 1e-4, "%s %s: gradient of %s" % (
                cls.__name__, s, n), rel(p.grad, q.grad))
        ours.zero_grad()
        ref.zero_grad()
    torch._dynamo.reset()
