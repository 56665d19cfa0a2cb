#!/usr/bin/python3
"""fit_initial_experiment.py - does starting DyT from alpha fitted to what
each LayerNorm does (dnc.torch.fit_initial) train better than alpha = 0.5?

    PYTHONPATH=python python3 examples/fit_initial_experiment.py
        [--steps 200] [--vit-steps 300] [--seeds 0,1] [--fn dyt] [--json OUT]

Two models, each trained twice per seed from the same initial weights on
the same batches, once with every alpha at 0.5 (DyT's default) and once
with the per-site values fit_initial fits to the unconverted model's
LayerNorms on 4 batches at initialization:
  - the tiny transformer of examples/train_tiny_transformer.py (its
    synthetic text, its optimizer and schedule);
  - a small torchvision VisionTransformer (32x32 images, patch 8, 4
    layers of width 64) on a synthetic 10-class task: the class is the
    template, of 10 fixed random ones, that the image is a noisy copy of.
Prints the fitted alpha per site and the final losses (training: mean of
the last 20 steps; validation) per seed. docs/python.md has a run.
"""
import argparse
import json
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
sys.path.insert(0, HERE)
import dnc.torch as dt  # noqa: E402
import train_tiny_transformer as T  # noqa: E402


def tiny(fn, steps, seed):
    chars, tr, _ = T._data(seed)
    torch.manual_seed(seed)
    model = T.TinyLM(len(chars), T.CFG["width"], T.CFG["layers"],
                     T.CFG["heads"], T.CFG["mlp"], T.CFG["ctx"])
    g = torch.Generator().manual_seed(1000 + seed)
    fitted = dt.fit_initial(model, fn, [T._batch(tr, g)[0]
                                        for _ in range(4)])
    base = T.train(fn, steps=steps, seed=seed)
    fit = T.train(fn, steps=steps, seed=seed, init=fitted)
    return fitted, base, fit


def _vit_data(n, gen, templates):
    y = torch.randint(0, 10, (n,), generator=gen)
    x = templates[y] + 1.5 * torch.randn(n, 3, 32, 32, generator=gen)
    return x, y


def vit(fn, steps, seed):
    from torchvision.models.vision_transformer import VisionTransformer
    templates = torch.randn(10, 3, 32, 32,
                            generator=torch.Generator().manual_seed(7))
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=4,
                              num_heads=4, hidden_dim=64, mlp_dim=128,
                              num_classes=10)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1000 + seed)
    fitted = dt.fit_initial(model, fn, [_vit_data(32, g, templates)[0]
                                        for _ in range(4)])
    val = _vit_data(512, torch.Generator().manual_seed(99), templates)

    def run(init):
        model.load_state_dict(init_state)
        m = dt.convert_layernorm(
            __import__("copy").deepcopy(model), fn, init=init)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
        gen = torch.Generator().manual_seed(seed)
        losses = []
        m.train()
        for _ in range(steps):
            x, y = _vit_data(32, gen, templates)
            loss = nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        m.eval()
        with torch.no_grad():
            out = m(val[0])
            vl = float(nn.functional.cross_entropy(out, val[1]))
            acc = float((out.argmax(-1) == val[1]).float().mean())
        return {"final_loss": sum(losses[-20:]) / 20, "val_loss": vl,
                "val_acc": acc}
    return fitted, run(None), run(fitted)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--vit-steps", type=int, default=300)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--fn", default="dyt")
    ap.add_argument("--json")
    a = ap.parse_args()
    out = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        for name, f, steps in (("tiny", tiny, a.steps),
                               ("vit", vit, a.vit_steps)):
            fitted, base, fit = f(a.fn, steps, seed)
            print("%s seed %d: fitted %s" % (name, seed, ", ".join(
                "%s %.3f" % (k, v["alpha"]) for k, v in fitted.items())))
            for label, r in (("alpha=0.5", base), ("fitted", fit)):
                print("  %-9s train %.4f  val %.4f%s" % (
                    label, r["final_loss"], r["val_loss"],
                    "  acc %.3f" % r["val_acc"] if "val_acc" in r else ""))
            sys.stdout.flush()
            out["%s/%d" % (name, seed)] = {
                "fitted": fitted,
                "base": {k: v for k, v in base.items() if k != "losses"},
                "fit": {k: v for k, v in fit.items() if k != "losses"}}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
