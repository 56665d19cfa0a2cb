#!/usr/bin/env python3
"""compiled_ops.py - what a torch.compile'd PointwiseNorm costs per call,
one thread, DyT, against the eager module and a compiled nn.LayerNorm.

    .venv/bin/python bench/compiled_ops.py [ROOT]

ROOT: the checkout whose python/ and build/ to use (default: this one),
so that two commits can be run alternately, one process each, on the
same machine (docs/performance.md, round nineteen). Prints, in
microseconds (medians; minimum of 5 repeats for the operator calls):

  op fwd, op bwd     torch.ops.dnc.layer_forward / layer_backward at
                     [8 x 512] under torch.no_grad (a compiled graph's
                     call), and aten::native_layer_norm beside them
  <shape> dnc eager, dnc compiled, ln compiled
                     a forward + backward step at [8 x 512] and
                     [32 x 128 x 512], and compiled/eager, the ratio
Not part of `make bench` (bench/torch2.py's compile_over_eager is, at
torch's thread count).
"""
import os
import statistics
import sys
import time
import timeit

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import torch  # noqa: E402

torch.set_num_threads(1)
import dnc.torch as dt  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    sys.exit("compiled_ops: PyTorch %s has no custom ops" % torch.__version__)
print("dnc.torch from %s; C++ extension: %s" % (ROOT, dt.extension() or
                                               dt.extension_reason()))
m = dt.PointwiseNorm(512, "dyt")
x = torch.randn(8, 512)
dy = torch.randn(8, 512)
src, name = m._dnc_source, m._dnc_name
p = [m.alpha.detach()]
w, b = m.weight.detach(), m.bias.detach()
fwd = torch.ops.dnc.layer_forward.default
bwd = torch.ops.dnc.layer_backward.default


def best(f, n=5000):
    return round(min(timeit.repeat(f, number=n, repeat=5)) / n * 1e6, 2)


with torch.no_grad():
    print({"op fwd": best(lambda: fwd(x, w, b, p, src, name, 0)),
           "op bwd": best(lambda: bwd(x, dy, w, b, p, src, name, 0)),
           "aten native_layer_norm": best(
               lambda: torch.ops.aten.native_layer_norm.default(
                   x, [512], w, b, 1e-5))})

res = {}
for shape, n in (((8, 512), 3000), ((32, 128, 512), 200)):
    g = torch.Generator().manual_seed(2)
    xs = (torch.rand(*shape, generator=g) * 8 - 4).requires_grad_()
    dys = torch.rand(*shape, generator=g) * 2 - 1
    mod = dt.PointwiseNorm(shape[-1], "dyt")
    ln = torch.nn.LayerNorm(shape[-1])
    key = "x".join(map(str, shape))
    for label, run in (("dnc eager", mod), ("dnc compiled", torch.compile(mod)),
                       ("ln compiled", torch.compile(ln))):
        times = []
        for r in range(n):
            xs.grad = None
            run.zero_grad(set_to_none=True)
            t = time.perf_counter()
            y = run(xs)
            y.backward(dys)
            times.append(time.perf_counter() - t)
            del y
        res[key + " " + label] = round(
            statistics.median(times[n // 10:]) * 1e6, 1)
    res[key + " compiled/eager"] = round(
        res[key + " dnc compiled"] / res[key + " dnc eager"], 3)
print(res)
