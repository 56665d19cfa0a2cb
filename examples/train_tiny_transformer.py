#!/usr/bin/python3
"""train_tiny_transformer.py - a small causal transformer trained on CPU with
nn.LayerNorm, then with DyT, Derf and DyISRU through dnc's kernels.

    PYTHONPATH=python /usr/bin/python3 examples/train_tiny_transformer.py
        [--steps 250] [--layers 2] [--width 128] [--mlp 2] [--threads N] [--seed 0]
        [--norms layernorm,dyt,derf,dyisru] [--json out.json]

The text is a deterministic synthetic language (below), so that the run
needs no download and gives the same data everywhere: sentences of a small
grammar with number agreement, sums with their results, and reversed words.
Each norm trains the same model from the same initial weights (seeded) on
the same batches; the script prints the loss curve every 25 steps, the
validation loss at the end and the time per step, then a table.
docs/training.md has the results on the development machine.

As a module: train(norm, source=None, fn=None, steps=250, seed=0,
threads=None, **init) -> {"losses", "final_loss", "val_loss",
"ms_per_step"}; norm "layernorm", a name of dnc.torch.STANDARD ("dyt",
"derf", "dyisru"), or "dnc" with source (dnc source) and fn (its name).
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
import dnc.torch as dt  # noqa: E402

# ------------------------------------------------------------------ text

NOUNS = ["cat", "dog", "bird", "fox", "king", "child", "horse", "farmer",
         "sailor", "witch"]
PLURAL = {n: n + ("ren" if n == "child" else "es" if n in ("fox", "witch")
                  else "s") for n in NOUNS}
VERBS = ["see", "chase", "follow", "help", "watch", "call"]
ADJS = ["old", "small", "quick", "red", "quiet", "brave"]


def sentence(r):
    """A sentence whose verb agrees with its subject's number."""
    def np_(plural):
        words = [r.choice(["the", "a"] if not plural else ["the", "some"])]
        if r.random() < 0.5:
            words.append(r.choice(ADJS))
        n = r.choice(NOUNS)
        words.append(PLURAL[n] if plural else n)
        return words
    pl = r.random() < 0.5
    v = r.choice(VERBS)
    v = v if pl else v + ("es" if v.endswith(("ch", "sh")) else "s")
    s = np_(pl) + [v] + np_(r.random() < 0.5)
    if r.random() < 0.3:
        s += ["and"] + np_(pl) + [v] + np_(r.random() < 0.5)
    return " ".join(s) + "."


def line(r):
    k = r.random()
    if k < 0.6:
        return sentence(r)
    if k < 0.85:
        a, b = r.randrange(100), r.randrange(100)
        return "%d+%d=%d." % (a, b, a + b)
    w = r.choice(NOUNS + ADJS + VERBS)
    return "%s>%s." % (w, w[::-1])


def corpus(n_chars, seed):
    r = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        s = line(r) + "\n"
        out.append(s)
        size += len(s)
    return "".join(out)[:n_chars]


# ----------------------------------------------------------------- model


class Block(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(),
                                 nn.Linear(mlp * d, d))

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    """Pre-norm causal transformer: token and position embeddings, blocks,
    a final norm and a linear head."""

    def __init__(self, vocab, d, layers, heads, mlp, ctx):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, mlp)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", torch.triu(
            torch.full((ctx, ctx), float("-inf")), 1), persistent=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for b in self.blocks:
            x = b(x, self.mask[:t, :t])
        return self.head(self.norm(x))


# ------------------------------------------------------------- training

# Sized for two cores of the development VM, whose Debian PyTorch does its
# matrix products with the reference BLAS (about 2 GFLOP/s): 2 layers of
# width 128 with an MLP of twice the width, 8 x 32 tokens a step.
CFG = dict(layers=2, width=128, heads=4, mlp=2, ctx=32, batch=8, lr=3e-3,
           chars=200000)


def _data(seed):
    text = corpus(CFG["chars"], 1234)  # the same text for every run
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    return chars, data[:n], data[n:]


def _batch(data, g):
    ix = torch.randint(len(data) - CFG["ctx"] - 1, (CFG["batch"],),
                       generator=g)
    x = torch.stack([data[i:i + CFG["ctx"]] for i in ix])
    y = torch.stack([data[i + 1:i + CFG["ctx"] + 1] for i in ix])
    return x, y


def train(norm, source=None, fn=None, steps=250, seed=0, threads=None,
          log=None, **init):
    """Trains the tiny model with norm for steps steps; see the module's
    docstring. log(step, loss) is called every 25 steps."""
    if threads:
        torch.set_num_threads(threads)
    chars, tr, va = _data(seed)
    torch.manual_seed(seed)
    model = TinyLM(len(chars), CFG["width"], CFG["layers"], CFG["heads"],
                   CFG["mlp"], CFG["ctx"])
    if norm == "dnc":
        if source is None or fn is None:
            raise ValueError("norm='dnc' needs source= and fn=")
        func = dt._compile(source, torch.get_num_threads())[fn]
        model = dt.convert_layernorm(model, func, **init)
    elif norm != "layernorm":
        model = dt.convert_layernorm(model, norm, **init)
    opt = torch.optim.AdamW(model.parameters(), lr=CFG["lr"],
                            weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 30) * 0.5 *
        (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    losses, t_total = [], 0.0
    model.train()
    for step in range(steps):
        x, y = _batch(tr, g)
        t0 = time.perf_counter()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)),
                                           y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= 5:  # the first steps compile kernels and warm up
            t_total += time.perf_counter() - t0
        losses.append(loss.item())
        if log and (step % 25 == 0 or step == steps - 1):
            log(step, losses[-1])
    model.eval()
    gv = torch.Generator().manual_seed(99)
    with torch.no_grad():
        val = sum(float(nn.functional.cross_entropy(
            model(x).reshape(-1, len(chars)), y.reshape(-1)))
            for x, y in (_batch(va, gv) for _ in range(20))) / 20
    tail = losses[-20:]
    return {"losses": losses, "final_loss": sum(tail) / len(tail),
            "val_loss": val,
            # None where no step was timed (the first 5 are not)
            "ms_per_step": 1e3 * t_total / (steps - 5) if steps > 5
            else None}


def _ms(v):
    """ms/step as printed: '-' where no step was timed (--steps 5 or
    fewer, which divided by zero)"""
    return "-" if v is None else "%.1f" % v


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--layers", type=int, default=CFG["layers"])
    ap.add_argument("--width", type=int, default=CFG["width"])
    ap.add_argument("--mlp", type=int, default=CFG["mlp"],
                    help="the MLP's width over the model's (default 2)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norms", default="layernorm,dyt,derf,dyisru")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    CFG["layers"], CFG["width"], CFG["mlp"] = a.layers, a.width, a.mlp
    torch.set_num_threads(a.threads or os.cpu_count())
    print("tiny causal transformer: %d layers, width %d, %d heads, MLP %dx, "
          "context %d, batch %d, %d steps, %d threads, torch %s" % (
              CFG["layers"], CFG["width"], CFG["heads"], CFG["mlp"], CFG["ctx"],
              CFG["batch"], a.steps, torch.get_num_threads(),
              torch.__version__))
    print("sample of the text:", repr(corpus(160, 1234)))
    results = {}
    for norm in a.norms.split(","):
        print("\n== %s" % norm)
        t0 = time.time()
        r = train(norm, steps=a.steps, seed=a.seed,
                  log=lambda s, l: print("  step %4d  loss %.4f" % (s, l)))
        r["wall_s"] = time.time() - t0
        results[norm] = r
        print("  val loss %.4f, %s ms/step, %.0f s" % (
            r["val_loss"], _ms(r["ms_per_step"]), r["wall_s"]))
    base = results.get("layernorm")
    print("\n%-10s %12s %10s %10s %12s" % ("norm", "train loss", "val loss",
                                            "ms/step", "vs LayerNorm"))
    for norm, r in results.items():
        print("%-10s %12.4f %10.4f %10s %12s" % (
            norm, r["final_loss"], r["val_loss"], _ms(r["ms_per_step"]),
            "%.2fx" % (r["ms_per_step"] / base["ms_per_step"])
            if base and base["ms_per_step"] and r["ms_per_step"] else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": CFG, "steps": a.steps,
                       "threads": torch.get_num_threads(),
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
