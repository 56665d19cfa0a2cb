#!/usr/bin/env python3
"""torch2.py - PyTorch 2 against dnc.torch, in the same `make bench`.

    .venv/bin/python bench/torch2.py build/bench/kernels.json

A training step of one norm layer, forward and backward (input, weight,
bias and the function's parameters all take gradients), float32, on
[8192 x 4096] and [32 x 128 x 512] (DNC_BENCH_TORCH2_SHAPES="RxC,AxBxC"
for others), at torch's thread count, for DyT, Derf and DyISRU:

  eager       the plain PyTorch module, as the papers' code writes it
  compile     torch.compile of that module (inductor)
  layernorm   nn.LayerNorm, eager
  dnc         dnc.torch.PointwiseNorm, eager (the custom ops)
  dnc_compile torch.compile of the PointwiseNorm (fullgraph)

All five run in interleaved rounds (compilation first, not timed); the
median of the rounds is kept. Adds to the JSON, with <shape> 8192x4096 or
32x128x512:
  "torch2/<fn>/<shape>/vs_eager"      eager's time over dnc's
  "torch2/<fn>/<shape>/vs_compile"    torch.compile's over dnc's
  "torch2/<fn>/<shape>/vs_layernorm"  nn.LayerNorm's over dnc's
  "torch2/<fn>/<shape>/compile_over_eager"  dnc_compile's over dnc's
  "torch2/<fn>/<shape>/<peer>_ms"     each median, in milliseconds
Above 1, dnc is faster. Without PyTorch 2 (custom ops, torch.compile) it
says so and adds nothing.
"""
import os
import statistics
import sys
import time

import results

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "python"))

try:
    import torch
    import dnc.torch as dt
except ImportError as e:
    print("torch2: PyTorch or dnc does not import here (%s); skipped" % e)
    sys.exit(0)
if not dt.HAS_CUSTOM_OPS or not hasattr(torch, "compile"):
    print("torch2: PyTorch %s is not PyTorch 2 (no custom ops or "
          "torch.compile); skipped" % torch.__version__)
    sys.exit(0)


class DyT(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.full((1,), 0.5))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class Derf(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.full((1,), 0.5))
        self.s = torch.nn.Parameter(torch.zeros(1))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * torch.erf(self.alpha * x + self.s) + self.bias


class DyISRU(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.beta = torch.nn.Parameter(torch.full((1,), 301.1))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(self.beta + x * x)) + self.bias


REFS = {"dyt": DyT, "derf": Derf, "dyisru": DyISRU}


def clear(m, x):
    """Drops the last step's gradients, before the clock starts (freeing
    another variant's 128 MiB x.grad took 5 ms)."""
    x.grad = None
    for p in m.parameters():
        p.grad = None


def step(m, x, dy):
    clear(m, x)
    m(x).backward(dy)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/kernels.json"
    shapes = os.environ.get("DNC_BENCH_TORCH2_SHAPES",
                            "8192x4096,32x128x512").split(",")
    rounds = int(os.environ.get("DNC_BENCH_TORCH2_ROUNDS", "7"))
    res = results.load(out)
    print("torch2: PyTorch %s, %d threads, %d rounds, forward+backward "
          "float32, median ms (ratio: peer over dnc)"
          % (torch.__version__, torch.get_num_threads(), rounds))
    for shape in shapes:
        dims = tuple(int(d) for d in shape.split("x"))
        c = dims[-1]
        torch.manual_seed(0)
        x = torch.randn(dims).requires_grad_()
        dy = torch.randn(dims)
        for fn, ref_cls in REFS.items():
            torch._dynamo.reset()
            ref = ref_cls(c)
            mods = {"eager": ref, "compile": torch.compile(ref_cls(c)),
                    "layernorm": torch.nn.LayerNorm(c),
                    "dnc": dt.PointwiseNorm(c, fn),
                    "dnc_compile": torch.compile(dt.PointwiseNorm(c, fn),
                                                 fullgraph=True)}
            for m in mods.values():  # compile, warm caches and pages
                step(m, x, dy)
                step(m, x, dy)
            times = {k: [] for k in mods}
            for _ in range(rounds):
                for k, m in mods.items():
                    clear(m, x)
                    t = time.perf_counter()
                    m(x).backward(dy)
                    times[k].append(time.perf_counter() - t)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            key = "torch2/%s/%s/" % (fn, shape)
            for k, v in med.items():
                res[key + k + "_ms"] = round(v, 3)
            for peer in ("eager", "compile", "layernorm"):
                res[key + "vs_" + peer] = round(med[peer] / med["dnc"], 3)
            res[key + "compile_over_eager"] = round(
                med["dnc_compile"] / med["dnc"], 3)
            print("  %-7s %-11s " % (fn, shape) + "  ".join(
                "%s %.2f" % (k, v) for k, v in med.items()) +
                "  | vs_eager %.2f vs_compile %.2f vs_layernorm %.2f" % (
                    res[key + "vs_eager"], res[key + "vs_compile"],
                    res[key + "vs_layernorm"]))
    results.save(out, res)


if __name__ == "__main__":
    main()
