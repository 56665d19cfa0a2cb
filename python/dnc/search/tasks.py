"""dnc.search.tasks - what a trial trains: the norm a candidate becomes,
the built-in tasks (digits-vit, char-lm) and users' own.

A task is a callable task(norm, steps, seed) -> metric, where norm(C) makes
a fresh normalization module of width C (applied over the last dimension,
as nn.LayerNorm(C)); `mode` on the callable ("max" or "min") says whether a
larger metric is better, `default_steps` the budget of the last rung.
A non-finite metric, or a non-finite training loss (raise Diverged), means
the candidate diverged.
"""
import hashlib
import importlib
import inspect
import math
import os
import re
import sys

__all__ = ["Diverged", "candidate_norm", "layernorm", "norm_source",
           "resolve_task", "task_files", "task_sha256", "BUILTIN",
           "digits_vit", "char_lm"]


class Diverged(ArithmeticError):
    """Training met a non-finite loss."""


# ------------------------------------------------------------- the norm

_TOKEN = re.compile(r"0[xX][0-9a-fA-F.]+(?:[pP][+-]?\d+)?|\d+\.?\d*(?:[eE][+-]?"
                    r"\d+)?|\.\d+(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|.",
                    re.S)
_HEAD = re.compile(r"\s*fn\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*x\s*\)\s*"
                   r"(=|\{)", re.S)


def norm_source(source, alpha=0.5, shift=0.0):
    """A search candidate `fn cID(x) = BODY` (or `{ ... }`) as the one dnc
    function the training uses, f(alpha x + shift) with alpha and shift
    learnable scalars (the Derf paper's erf(alpha x + s) form; the layer
    adds the per-channel gamma and beta):
    fn net(x; alpha = A, shift = S) { let u = alpha * x + shift; BODY(u) }."""
    m = _HEAD.match(source)
    if not m:
        raise ValueError("not a search candidate's source (fn NAME(x) = ... "
                         "on one line): %r" % source[:80])
    body = source[m.end():].strip()
    if m.group(2) == "{":
        if not body.endswith("}"):
            raise ValueError("unbalanced braces in %r" % source[:80])
        body = body[:-1]
    toks = _TOKEN.findall(body)
    used = set(toks)
    u = "u"
    while u in used:
        u += "_"
    inner = "".join(u if t == "x" else t for t in toks).strip()
    return ("fn net(x; alpha = %r, shift = %r) { let %s = alpha * x + shift; "
            "%s }" % (float(alpha), float(shift), u, inner))


def candidate_norm(source, alpha=0.5, shift=0.0, threads=1):
    """norm(C) for a candidate: dnc.torch.PointwiseNorm of norm_source,
    gamma (weight) and beta (bias) per channel."""
    import dnc.torch as dt
    src = norm_source(source, alpha, shift)

    def norm(c):
        return dt.PointwiseNorm(c, src, threads=threads)
    norm.source = src
    return norm


def layernorm(c):
    """The baseline: nn.LayerNorm(C)."""
    from torch import nn
    return nn.LayerNorm(c)


# ------------------------------------------------------------ training


def _schedule(opt, steps, warmup):
    import torch
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 *
        (1 + math.cos(math.pi * min(s, steps) / steps)))


def _check(loss, step):
    v = float(loss.detach())
    if not math.isfinite(v):
        raise Diverged("loss %r at step %d" % (v, step))
    return v


def _replace_norms(model, norm):
    """Every nn.LayerNorm in model replaced by norm(C)."""
    from torch import nn
    for name, child in list(model.named_children()):
        if isinstance(child, nn.LayerNorm):
            setattr(model, name, norm(child.normalized_shape[-1]))
        else:
            _replace_norms(child, norm)
    return model


# digits-vit: a small ViT on scikit-learn's 8x8 digits (1,797 images in
# 10 classes, shipped inside scikit-learn): 4x4 patches (4 tokens of 16
# values) and a class token, width 48, 2 pre-norm blocks of 4 heads with
# an MLP of twice the width, a final norm and the head on the mean token;
# 360 images held out (a fixed permutation) for the validation accuracy.
VIT = dict(width=48, layers=2, heads=4, mlp=2, patch=4, batch=64, lr=1e-2,
           wd=0.05, val=360)
_digits = None


def _digits_data():
    global _digits
    if _digits is None:
        import numpy as np
        import torch
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        perm = np.random.RandomState(0).permutation(len(y))
        x = torch.tensor(x[perm] / 16.0, dtype=torch.float32).reshape(-1, 8, 8)
        y = torch.tensor(y[perm], dtype=torch.long)
        n = VIT["val"]
        _digits = (x[n:], y[n:], x[:n], y[:n])
    return _digits


def _vit(norm):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d, heads, mlp):
            super().__init__()
            self.norm1 = norm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.norm2 = norm(d)
            self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(),
                                     nn.Linear(mlp * d, d))

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            d, p = VIT["width"], VIT["patch"]
            n = (8 // p) ** 2
            self.embed = nn.Linear(p * p, d)
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
            self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
            self.blocks = nn.ModuleList(Block(d, VIT["heads"], VIT["mlp"])
                                        for _ in range(VIT["layers"]))
            self.norm = norm(d)
            self.head = nn.Linear(d, 10)

        def forward(self, img):
            b, p = img.shape[0], VIT["patch"]
            t = img.unfold(1, p, p).unfold(2, p, p).reshape(b, -1, p * p)
            x = torch.cat([self.cls.expand(b, -1, -1), self.embed(t)], 1)
            x = x + self.pos
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.norm(x).mean(1))

    return ViT()


def digits_vit(norm, steps, seed):
    """Validation accuracy (0 to 1) of the small ViT on the 8x8 digits after
    steps AdamW steps of batch 64 (warm-up, cosine decay)."""
    import torch
    from torch import nn
    xtr, ytr, xva, yva = _digits_data()
    torch.manual_seed(seed)
    model = _vit(norm)
    opt = torch.optim.AdamW(model.parameters(), lr=VIT["lr"],
                            weight_decay=VIT["wd"])
    sched = _schedule(opt, steps, max(1, steps // 10))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        ix = torch.randint(len(ytr), (VIT["batch"],), generator=g)
        loss = nn.functional.cross_entropy(model(xtr[ix]), ytr[ix])
        _check(loss, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        logits = model(xva)
    if not torch.isfinite(logits).all():
        raise Diverged("non-finite logits on the validation set")
    return float((logits.argmax(1) == yva).float().mean())


digits_vit.mode = "max"
digits_vit.default_steps = 400
digits_vit.metric = "val_accuracy"


def _examples_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "examples"))


def _examples():
    ex = _examples_dir()
    if not os.path.exists(os.path.join(ex, "train_tiny_transformer.py")):
        raise RuntimeError("--task char-lm uses examples/"
                           "train_tiny_transformer.py of dnc's source tree, "
                           "not found at %s" % ex)
    if ex not in sys.path:
        sys.path.insert(0, ex)
    import train_tiny_transformer as T
    return T


def char_lm(norm, steps, seed):
    """Validation loss (nats per character, 20 batches) of the tiny causal
    transformer of examples/train_tiny_transformer.py, trained as there
    (AdamW 3e-3, warm-up, cosine decay, batch 8 x 32 characters) with its
    five norms made by norm."""
    import torch
    from torch import nn
    T = _examples()
    cfg = T.CFG
    chars, tr, va = T._data(seed)
    torch.manual_seed(seed)
    model = T.TinyLM(len(chars), cfg["width"], cfg["layers"], cfg["heads"],
                     cfg["mlp"], cfg["ctx"])
    _replace_norms(model, norm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"],
                            weight_decay=0.01)
    sched = _schedule(opt, steps, min(30, max(1, steps // 10)))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        x, y = T._batch(tr, g)
        loss = nn.functional.cross_entropy(
            model(x).reshape(-1, len(chars)), y.reshape(-1))
        _check(loss, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    gv = torch.Generator().manual_seed(99)
    with torch.no_grad():
        val = sum(float(nn.functional.cross_entropy(
            model(x).reshape(-1, len(chars)), y.reshape(-1)))
            for x, y in (T._batch(va, gv) for _ in range(20))) / 20
    return val


char_lm.mode = "min"
char_lm.default_steps = 200
char_lm.metric = "val_loss"

BUILTIN = {"digits-vit": digits_vit, "char-lm": char_lm}


def resolve_task(name):
    """A built-in task's function, or module:function imported (the
    current directory on the path, as `python -m` has it)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise ValueError("unknown task '%s': digits-vit, char-lm or "
                         "module:function" % name)
    mod, _, fn = name.partition(":")
    if not mod or not fn:
        raise ValueError("task '%s': module:function names both" % name)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        m = importlib.import_module(mod)
    except ImportError as e:
        raise ValueError("task '%s': cannot import module '%s': %s" % (
            name, mod, e)) from e
    except Exception as e:  # the module's own code failed
        raise ValueError("task '%s': importing module '%s' raised %s: %s" % (
            name, mod, type(e).__name__, e)) from e
    f = m
    for part in fn.split("."):
        f = getattr(f, part, None)
        if f is None:
            raise ValueError("task '%s': module '%s' has no '%s'" % (
                name, mod, fn))
    if not callable(f):
        raise ValueError("task '%s': '%s' is not callable" % (name, fn))
    return f


def task_files(name):
    """The files of the code a task runs, as far as can be told without
    running it: the file defining its function (tasks.py for a built-in
    one), the file of the module --task names, and, for char-lm,
    examples/train_tiny_transformer.py. What those files import is not
    among them."""
    fn = resolve_task(name)
    files = []

    def add(path):
        if path and os.path.isfile(path):
            path = os.path.realpath(path)
            if path not in files:
                files.append(path)
    try:
        add(inspect.getsourcefile(inspect.unwrap(fn)))
    except TypeError:  # a callable object, a builtin: its class's file
        try:
            add(inspect.getsourcefile(type(fn)))
        except TypeError:
            pass
    if name not in BUILTIN:
        mod = sys.modules.get(name.partition(":")[0])
        add(getattr(mod, "__file__", None))
    if fn is char_lm:
        add(os.path.join(_examples_dir(), "train_tiny_transformer.py"))
    return files


def task_sha256(name):
    """16 hex digits of the SHA-256 over the task's files (task_files),
    their contents in order: an edit to the task (its learning rate,
    say) changes it; None where no file is found."""
    files = task_files(name)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]
