"""torch_openmp.py - PointwiseNorm's forward + backward right after an
nn.LayerNorm step (as a model alternates norms with PyTorch's other
operations), with dnc's kernel threads on ATen's OpenMP threads
(dnc.Context.use_openmp, dnc.torch's default) and on dnc's own, the two
alternating round by round in one process; medians.

  .venv/bin/python bench/torch_openmp.py [THREADS [SHAPE [ROUNDS [FN]]]]

THREADS 2, SHAPE 32x128x512, ROUNDS 81, FN dyt by default. Prints times,
not kernels.json keys: a figure for docs/performance.md, round seven.
"""
import statistics
import sys
import time

import torch

import dnc.torch as dt


def main():
    a = sys.argv[1:]
    threads = int(a[0]) if a else 2
    shape = tuple(int(d) for d in a[1].split("x")) if len(a) > 1 \
        else (32, 128, 512)
    rounds = int(a[2]) if len(a) > 2 else 81
    fn = a[3] if len(a) > 3 else "dyt"
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(*shape, generator=g) * 8 - 4).requires_grad_()
    dy = torch.rand(*shape, generator=g) * 2 - 1
    ln = torch.nn.LayerNorm(shape[-1])
    mod = dt.PointwiseNorm(shape[-1], fn, threads=threads)
    ctx = mod.fn.module.context
    lib = ctx.openmp
    if lib is None:
        print("torch_openmp: ATen does not run on a loaded OpenMP runtime "
              "here (or DNC_TORCH_OPENMP=0): nothing to compare")
        return

    def step(m):
        x.grad = None
        m.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        m(x).backward(dy)
        return (time.perf_counter() - t0) * 1e3

    t = {k: [] for k in ("ln/omp", "dnc/omp", "ln/own", "dnc/own")}
    for r in range(rounds + 1):
        for mode in (("omp", "own") if r % 2 else ("own", "omp")):
            ctx.use_openmp(lib if mode == "omp" else None)
            a, b = step(ln), step(mod)
            if r:
                t["ln/" + mode].append(a)
                t["dnc/" + mode].append(b)
    ctx.use_openmp(lib)
    m = {k: statistics.median(v) for k, v in t.items()}
    print("%s %s, %d threads, forward + backward after a LayerNorm step, "
          "median of %d (PyTorch %s, %s)" % (fn, "x".join(map(str, shape)),
                                             threads, rounds,
                                             torch.__version__, lib))
    for mode, what in (("own", "dnc's own threads"),
                       ("omp", "ATen's OpenMP threads")):
        print("  %-22s PointwiseNorm %.3f ms  nn.LayerNorm %.3f ms  "
              "LayerNorm/PointwiseNorm %.2f" % (
                  what, m["dnc/" + mode], m["ln/" + mode],
                  m["ln/" + mode] / m["dnc/" + mode]))


if __name__ == "__main__":
    main()
