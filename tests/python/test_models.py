"""test_models.py - real models converted and trained a few steps with
dnc's norms, against the same models converted to plain-PyTorch modules
(the DyT repository's DynamicTanh, the RMSNorm form of DyT's LLaMA
recipe): torchvision's vit_b_16 and convnext_tiny (random weights, small
images; skipped where torchvision is missing), and a LLaMA-style block
with RMSNorm written here. Outputs, every gradient and the losses of
a few SGD steps must agree."""
import copy

import pytest
import torch
from torch import nn

import dnc.torch as dt
import dnc.convert as dconv
from checks import ok


class DynamicTanh(nn.Module):
    """The DyT repository's module (channels_last switch for 4-D input)."""

    def __init__(self, c, channels_last, alpha=0.5, bias=True):
        super().__init__()
        self.channels_last = channels_last
        self.alpha = nn.Parameter(torch.ones(1) * alpha)
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c)) if bias else None

    def forward(self, x):
        x = torch.tanh(self.alpha * x)
        w, b = self.weight, self.bias
        if not self.channels_last:
            w = w[:, None, None]
            b = b[:, None, None] if b is not None else None
        return x * w + b if b is not None else x * w


def reference(model, kind="layernorm"):
    """model with its norms replaced by DynamicTanh, as the DyT
    repository's convert_ln_to_dyt / convert_rms_to_dyt do."""
    def walk(m):
        out = m
        k = dconv._kind(m, kind)
        if k:
            c = m.weight.shape[0]
            out = DynamicTanh(c, not (k == "layernorm" and
                                      dconv.channels_first(m)),
                              bias=k == "layernorm")
        for name, child in m.named_children():
            out.add_module(name, walk(child))
        return out
    return walk(model)


def randomize_norms(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, dt.PointwiseNorm):
                m.alpha.uniform_(0.3, 1.2)
                m.weight.uniform_(0.5, 1.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.2, 0.2)


def rel(a, b):
    return float((a - b).norm() / (b.norm() + 1e-30))


def compare(name, base, x, loss_fn, kind="layernorm", steps=3, tol=2e-4):
    """Converts base both ways, checks outputs and gradients, then trains
    both for `steps` SGD steps and checks the losses."""
    torch.manual_seed(0)
    ours = dt.convert(copy.deepcopy(base), "dyt", kind=kind)
    randomize_norms(ours)
    ref = reference(copy.deepcopy(base), kind).to(x.dtype if
                                                  x.is_floating_point()
                                                  else torch.float32)
    ref.load_state_dict(ours.state_dict(), strict=True)
    n = sum(isinstance(m, dt.PointwiseNorm) for m in ours.modules())
    ok(n > 0 and n == sum(isinstance(m, DynamicTanh) for m in ref.modules()),
       "%s: %d norms converted" % (name, n))
    ours.train()
    ref.train()
    # the same random draws in both (convnext's stochastic depth)
    def run(m, i):
        torch.manual_seed(100 + i)
        return m(x)
    y, yr = run(ours, 0), run(ref, 0)
    ok(rel(y, yr) < tol, "%s: outputs agree" % name,
       lambda: "relative difference %g" % rel(y, yr))
    loss_fn(y).backward()
    loss_fn(yr).backward()
    pr = dict(ref.named_parameters())
    worst = max((rel(p.grad, pr[k].grad), k)
                for k, p in ours.named_parameters() if p.grad is not None
                and pr[k].grad.norm() > 0)
    ok(worst[0] < 50 * tol, "%s: every gradient agrees" % name,
       lambda: "worst %g at %s" % worst)
    ok(all(p.grad is not None for k, p in ours.named_parameters()
           if "alpha" in k), "%s: every alpha gets a gradient" % name)
    opts = [torch.optim.SGD(m.parameters(), lr=1e-2) for m in (ours, ref)]
    losses = ([], [])
    for m, o, ls in zip((ours, ref), opts, losses):
        o.step()    # the gradients compared above
        for i in range(steps - 1):
            o.zero_grad()
            loss_fn(run(m, i + 1)).backward()
            o.step()
        with torch.no_grad():
            ls.append(float(loss_fn(run(m, steps))))
        ls.insert(0, float(loss_fn(yr if m is ref else y)))
    ok(all(abs(a - b) <= 1e-3 * (abs(b) + 1e-3) for a, b in zip(*losses)),
       "%s: %d training steps give the same losses" % (name, steps),
       lambda: "%s vs %s" % losses)
    ok(losses[0][-1] < losses[0][0], "%s: the loss goes down" % name,
       losses[0])


def test_vit_b_16():
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    base = tvm.vit_b_16(image_size=32)     # 4 patches of 16 x 16
    x = torch.randn(1, 3, 32, 32)
    target = torch.randint(0, 1000, (1,))
    # 86 M parameters: one step (the cost is the weights' gradients)
    compare("vit_b_16", base, x,
            lambda y: nn.functional.cross_entropy(y, target), steps=1)


def test_convnext_tiny():
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    base = tvm.convnext_tiny()
    x = torch.randn(2, 3, 32, 32)
    target = torch.randint(0, 1000, (2,))
    cf = [m for m in base.modules() if isinstance(m, nn.LayerNorm) and
          dconv.channels_first(m)]
    ok(len(cf) == 5, "convnext_tiny's 5 LayerNorm2d (stem, 3 downsamplings, "
       "head) are channels first; the blocks' norms, after a permute, are "
       "channels last", len(cf))
    compare("convnext_tiny", base, x,
            lambda y: nn.functional.cross_entropy(y, target), steps=2)


class RMSNorm(nn.Module):
    """LLaMA's RMSNorm (weight only)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(
            x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


class LlamaBlock(nn.Module):
    """A LLaMA-style block: pre-norm causal attention and a SwiGLU MLP."""

    def __init__(self, d=32, heads=4, hidden=64):
        super().__init__()
        self.heads = heads
        self.attention_norm = RMSNorm(d)
        self.wqkv = nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d)
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.attention_norm(x)).chunk(3, dim=-1)
        q, k, v = [z.reshape(b, t, self.heads, -1).transpose(1, 2)
                   for z in (q, k, v)]
        att = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        x = x + self.wo((att @ v).transpose(1, 2).reshape(b, t, d))
        h = self.ffn_norm(x)
        return x + self.w2(nn.functional.silu(self.w1(h)) * self.w3(h))


class TinyLlama(nn.Module):
    def __init__(self, vocab=50, d=32, n=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(LlamaBlock(d) for _ in range(n))
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids)
        for layer in self.layers:
            x = layer(x)
        return self.out(self.norm(x))


def test_llama_block_rmsnorm():
    torch.manual_seed(0)
    base = TinyLlama()
    ids = torch.randint(0, 50, (2, 12))
    target = torch.randint(0, 50, (2, 12))
    compare("LLaMA-style", base, ids,
            lambda y: nn.functional.cross_entropy(y.reshape(-1, 50),
                                                  target.reshape(-1)),
            kind="rmsnorm")
    conv = dt.convert_rmsnorm(copy.deepcopy(base), "dyt",
                              init={"*attention_norm": {"alpha": 0.8},
                                    "*ffn_norm": {"alpha": 0.2},
                                    "norm": {"alpha": 0.2}})
    ok([round(float(m.alpha), 6) for m in conv.modules()
        if isinstance(m, dt.PointwiseNorm)] == [0.8, 0.2, 0.8, 0.2, 0.2],
       "the LLaMA 7B recipe: attention 0.8, FFN 0.2, final 0.2")
