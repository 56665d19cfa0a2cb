"""torch_cuda.py - PointwiseNorm on a CUDA device (dnc's decomposed form:
PyTorch operations and dnc's symbolic backward) against nn.LayerNorm and
the layer written in plain PyTorch operations (as the DyT and Derf
repositories write it, differentiated by autograd), forward + backward,
eager and under torch.compile, timed in the same run (wall clock around 20 calls, the device
synchronized).

    python3 bench/torch_cuda.py [--seconds S] [--device D] > gpu.json

Every figure is a ratio of times measured in this run: over_copy (the
layer's forward + backward over one same-size device copy), vs_layernorm
(nn.LayerNorm's time over the layer's: above 1, the layer is faster) and
vs_plain (the plain module's over dnc's). Each time is the median of 5
rounds of 20 calls after 5 warm-up calls. --seconds: stop adding figures
after this long (what was measured is printed). --device cpu (with small
--shapes) only checks the script where there is no GPU."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "python"))
import dnc.torch as dt  # noqa: E402

SHAPES = {"8192x4096": (8192, 4096), "32x128x512": (32, 128, 512)}
FNS = ("dyt", "derf", "dyisru")
DEV = "cuda"


class Plain(nn.Module):
    """The function in PyTorch operations, autograd's backward."""

    def __init__(self, fn, c):
        super().__init__()
        self.fn = fn
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.beta = nn.Parameter(torch.full((1,), 301.1))
        self.shift = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if self.fn == "dyt":
            f = torch.tanh(self.alpha * x)
        elif self.fn == "derf":
            f = torch.erf(self.alpha * x + self.shift)
        else:
            f = x * torch.rsqrt(self.beta + x * x)
        return f * self.weight + self.bias


def timed(step, rounds=5, calls=20, warm=5):
    sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
    for _ in range(warm):
        step()
    sync()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            step()
        sync()
        ts.append((time.perf_counter() - t) * 1e3 / calls)
    return statistics.median(ts)  # ms


def fwdbwd(m, x, dy):
    xx = x.detach().requires_grad_()

    def step():
        for p in m.parameters():
            p.grad = None
        m(xx).backward(dy)
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help="comma-separated RxC or AxBxC shapes")
    args = ap.parse_args()
    global DEV
    DEV = args.device
    shapes = {s: tuple(int(d) for d in s.split("x"))
              for s in args.shapes.split(",")}
    if DEV == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_cuda.py: PyTorch sees no CUDA device")
    t0 = time.time()
    out = {"device": torch.cuda.get_device_name(0) if DEV == "cuda" else DEV,
           "torch": torch.__version__, "ms": {}, "ratio": {}}
    for dtype in (torch.float32, torch.bfloat16):
        dn = str(dtype)[6:]
        for sname, shape in shapes.items():
            c = shape[-1]
            x = torch.randn(shape, device=DEV, dtype=dtype)
            dy = torch.randn(shape, device=DEV, dtype=dtype)
            y = torch.empty_like(x)
            copy = timed(lambda: y.copy_(x))
            ms = {"copy": copy}
            ln = nn.LayerNorm(c, device=DEV, dtype=dtype)
            ms["layernorm"] = timed(fwdbwd(ln, x, dy))
            ms["layernorm_compiled"] = timed(fwdbwd(torch.compile(ln), x,
                                                    dy))
            for fn in FNS:
                if time.time() - t0 > args.seconds:
                    break
                m = dt.PointwiseNorm(c, fn, device=DEV, dtype=dtype)
                p = Plain(fn, c).to(DEV, dtype)
                for what, mod in (("dnc", m), ("plain", p)):
                    ms["%s/%s" % (what, fn)] = timed(fwdbwd(mod, x, dy))
                    torch._dynamo.reset()
                    ms["%s_compiled/%s" % (what, fn)] = timed(
                        fwdbwd(torch.compile(mod), x, dy))
                key = "%s/%s/%s" % (fn, dn, sname)
                for mode in ("", "_compiled"):
                    d = ms["dnc%s/%s" % (mode, fn)]
                    out["ratio"]["%s/over_copy%s" % (key, mode)] = d / copy
                    out["ratio"]["%s/vs_layernorm%s" % (key, mode)] = \
                        ms["layernorm%s" % mode] / d
                    out["ratio"]["%s/vs_plain%s" % (key, mode)] = \
                        ms["plain%s/%s" % (mode, fn)] / d
            out["ms"]["%s/%s" % (dn, sname)] = ms
            print(json.dumps({"%s/%s" % (dn, sname): ms}), file=sys.stderr,
                  flush=True)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
