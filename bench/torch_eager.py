#!/usr/bin/python3
"""torch_eager.py - PyTorch eager against dnc, in the same `make bench`.

    /usr/bin/python3 bench/torch_eager.py build/bench/kernels.json

Times a training step's layer kernels, forward and backward, of DyT, Derf
and DyISRU written as plain PyTorch modules (the way their papers' code
writes them) on the same [rows x cols] f32 tensor and thread count as
bench/kernels.c, and adds "vs_torch_eager/<fn>/fwdbwd" (torch's time over
dnc's "<fn>/f32/t<N>/fwdbwd_ms" at kernels.c's all-threads count N,
measured minutes before) to the JSON. Without PyTorch it says so and adds nothing.
"""
import json
import os
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("torch_eager: PyTorch does not import here; skipped")
    sys.exit(0)


class DyT(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.tensor(0.5))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class Derf(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.tensor(0.5))
        self.s = torch.nn.Parameter(torch.tensor(0.0))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * torch.erf(self.alpha * x + self.s) + self.bias


class DyISRU(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.beta = torch.nn.Parameter(torch.tensor(301.1))
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * (x / torch.sqrt(self.beta + x * x)) + self.bias


def step_ms(mod, x, dy, reps):
    times = []
    for i in range(reps + 1):
        x.grad = None
        mod.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        y = mod(x)
        y.backward(dy)
        t = (time.perf_counter() - t0) * 1e3
        if i:
            times.append(t)
    return statistics.median(times)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/kernels.json"
    rows = int(os.environ.get("DNC_BENCH_ROWS", "8192"))
    cols = int(os.environ.get("DNC_BENCH_COLS", "4096"))
    reps = int(os.environ.get("DNC_BENCH_REPS", "9"))
    with open(out) as f:
        res = json.load(f)
    # kernels.c's all-threads count: the largest t<N> it wrote
    counts = [int(k.split("/")[2][1:]) for k in res
              if k.startswith("dyt/f32/t") and k.endswith("/fwdbwd_ms")]
    if not counts:
        print(f"torch_eager: no dnc times in {out}; run bench/kernels first")
        sys.exit(1)
    threads = max(counts)
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(rows, cols, generator=g) * 8 - 4).requires_grad_()
    dy = torch.rand(rows, cols, generator=g) * 2 - 1
    print(f"PyTorch {torch.__version__} eager, f32 [{rows} x {cols}], "
          f"{threads} threads, forward + backward, median of {reps}")
    print(f"{'fn':8} {'torch ms':>10} {'dnc ms':>10} {'torch/dnc':>10}")
    for name, cls in (("dyt", DyT), ("derf", Derf), ("dyisru", DyISRU)):
        key = f"{name}/f32/t{threads}/fwdbwd_ms"
        if key not in res:
            print(f"torch_eager: {key} missing from {out}; run bench/kernels first")
            sys.exit(1)
        t = step_ms(cls(cols), x, dy, reps)
        d = res[key]
        res[f"vs_torch_eager/{name}/fwdbwd"] = round(t / d, 4)
        print(f"{name:8} {t:10.2f} {d:10.2f} {t / d:10.2f}")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
