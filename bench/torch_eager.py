#!/usr/bin/python3
"""torch_eager.py - PyTorch against dnc, in the same `make bench`.

    .venv/bin/python bench/torch_eager.py build/bench/kernels.json

(`make bench` runs it with the project's .venv, PyTorch 2, where there is
one, else Debian's python3 with PyTorch 1.13; the output names the version.)

Times a training step's layer kernels, forward and backward, of DyT, Derf
and DyISRU written as plain PyTorch modules (the way their papers' code
writes them) on the same [rows x cols] f32 tensor and thread count as
bench/kernels.c: in eager mode, through torch.jit.script and, where this
PyTorch has it, torch.compile; and dnc.torch.PointwiseNorm, the same
layer through the Python package, all in interleaved rounds. Adds to the
JSON:
  "vs_torch_eager/<fn>/fwdbwd"      eager time over dnc's raw kernels
                                    ("<fn>/f32/t<N>/fwdbwd_ms" at kernels.c's
                                    all-threads count N, minutes before)
  "torch_module/<fn>/vs_eager"      eager time over PointwiseNorm's
  "torch_module/<fn>/vs_jit_script" torch.jit.script's over PointwiseNorm's
  "torch_module/<fn>/vs_compile"    torch.compile's over PointwiseNorm's
  "torch_module/<fn>/over_kernels"  PointwiseNorm's over its raw kernels'
                                    (dnc_layer_forward + dnc_layer_backward
                                    on fixed buffers, bench/dnc_step.py) in
                                    the same rounds
  "torch_module/<fn>/<shape>/vs_layernorm"  nn.LayerNorm's forward +
                                    backward time over PointwiseNorm's, f32,
                                    same threads, <shape> 8192x4096 and
                                    32x128x512 (a transformer layer's), and
                                    4x128x512 and 8x512 (per-call cost)
  "torch_module/<fn>/<shape>/t<N>/vs_layernorm"  the same on N threads: the
                                    all-threads count and 1 (issue 18's
                                    bars are for one thread)
  "torch_module/<fn>/<shape>/t<N>/python_over_ext"  the same module's time
                                    through dnc.torch's Python path over
                                    its time through the C++ layer call
                                    (where that is built), same rounds
  "torch_module/<fn>/<shape>/t<N>/over_floor"  PointwiseNorm's time over
                                    the floor's in the same rounds: the
                                    floor is a PointwiseNorm of FLOOR, one
                                    multiply, whose step is the module's
                                    memory traffic and call alone
  "torch_module/<fn>/<shape>/t<N>/floor_vs_layernorm"  nn.LayerNorm's time
                                    over the floor's, same rounds: the most
                                    any point-wise function's module could
                                    reach against LayerNorm in that run
Without PyTorch it says so and adds nothing.
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


def clear(mod, x):
    """Drops the last step's gradients, before the clock starts: freeing a
    128 MiB x.grad (another variant's, whose memory PyTorch hands back to
    the system) took 5 ms, charged to whichever variant came next."""
    x.grad = None
    mod.zero_grad(set_to_none=True)


def step(mod, x, dy):
    """One training step's norm: forward, then backward with dy."""
    y = mod(x)
    y.backward(dy)


def compiled(mod):
    """torch.compile of mod, where this PyTorch has it and it works here;
    else None (and why, printed)."""
    if not hasattr(torch, "compile"):
        return None, "no torch.compile in PyTorch %s" % torch.__version__
    try:
        c = torch.compile(mod)
        xx = torch.randn(8, mod.weight.shape[0], requires_grad=True)
        c(xx).sum().backward()
        return c, None
    except Exception as e:  # no C compiler for inductor, and the like
        return None, "torch.compile failed: %s" % str(e).splitlines()[0]


# the floor of a PointwiseNorm: a function with no arithmetic to speak of
# (one multiply), so that its step is the module's traffic (x and y in the
# forward; x, dy and dx in the backward, with the per-column sums of dgamma and
# dbeta) and its call; measured in the same rounds as each function
FLOOR = "fn lin(x; alpha = 0.5) = alpha * x"

# the two shapes, then a quarter of a transformer layer's batch and
# a decoding-size one, where the per-call cost shows (not bars)
LAYERNORM_SHAPES = ((8192, 4096), (32, 128, 512), (4, 128, 512), (8, 512))
if os.environ.get("DNC_BENCH_LAYERNORM_SHAPES"):  # "4x64,2x8x64": a quick run
    LAYERNORM_SHAPES = tuple(tuple(int(d) for d in s.split("x")) for s in
                             os.environ["DNC_BENCH_LAYERNORM_SHAPES"].split(","))


class PythonPath(torch.nn.Module):
    """A PointwiseNorm called through dnc.torch's Python path (_LayerFn
    and ctypes), not its C++ layer call: python_over_ext."""

    def __init__(self, dt, mod):
        super().__init__()
        self.dt, self.mod = dt, mod

    def forward(self, x):
        ext, self.dt._ext = self.dt._ext, None
        try:
            return self.mod(x)
        finally:
            self.dt._ext = ext


def vs_layernorm(dt, threads, reps, res, all_threads):
    """nn.LayerNorm against PointwiseNorm on the shapes of the issue, in
    interleaved rounds (more of them for the small shape), on `threads`
    threads (all_threads: the count of the unsuffixed keys)."""
    torch.set_num_threads(threads)
    omp = dt._torch_openmp()
    print(f"nn.LayerNorm over dnc.torch.PointwiseNorm, f32, {threads} threads, "
          "forward + backward, median of interleaved rounds "
          f"(PyTorch {torch.__version__}; dnc's kernel threads: "
          f"{'ATen OpenMP team, ' + omp if omp else 'its own'})")
    print("  floor: a PointwiseNorm of `%s`, in the same rounds (its "
          "traffic and call, no arithmetic)" % FLOOR)
    print(f"{'fn':8}{'shape':>14}{'layernorm ms':>14}{'module ms':>11}"
          f"{'layernorm/module':>18}{'floor ms':>10}{'module/floor':>14}"
          f"{'layernorm/floor':>17}" + (
              f"{'python ms':>11}{'python/module':>15}"
              if dt.extension() is not None else
              f"  (no C++ layer call: {dt.extension_reason()})"))
    g = torch.Generator().manual_seed(2)
    for shape in LAYERNORM_SHAPES:
        cols = shape[-1]
        n = 1
        for d in shape:
            n *= d
        rounds = reps if n >= 1 << 24 else max(reps, 41) if n >= 1 << 18 \
            else max(reps, 401)
        x = (torch.rand(*shape, generator=g) * 8 - 4).requires_grad_()
        dy = torch.rand(*shape, generator=g) * 2 - 1
        tag = "x".join(str(d) for d in shape)
        floor = dt.PointwiseNorm(cols, FLOOR, threads=threads)
        for name in ("dyt", "derf", "dyisru"):
            mod = dt.PointwiseNorm(cols, name, threads=threads)
            variants = {"layernorm": torch.nn.LayerNorm(cols), "module": mod,
                        "floor": floor}
            if dt.extension() is not None:
                variants["python"] = PythonPath(dt, mod)
            times = {v: [] for v in variants}
            for r in range(rounds + 1):
                order = list(variants) if r % 2 else list(variants)[::-1]
                for v in order:
                    clear(variants[v], x)
                    t0 = time.perf_counter()
                    step(variants[v], x, dy)
                    if r:
                        times[v].append((time.perf_counter() - t0) * 1e3)
            ln = statistics.median(times["layernorm"])
            m = statistics.median(times["module"])
            fl = statistics.median(times["floor"])
            res[f"torch_module/{name}/{tag}/t{threads}/over_floor"] = \
                round(m / fl, 4)
            res[f"torch_module/{name}/{tag}/t{threads}/floor_vs_layernorm"] \
                = round(ln / fl, 4)
            res[f"torch_module/{name}/{tag}/t{threads}/vs_layernorm"] = \
                round(ln / m, 4)
            if threads == all_threads:
                res[f"torch_module/{name}/{tag}/vs_layernorm"] = \
                    round(ln / m, 4)
            py = ""
            if "python" in times:
                p = statistics.median(times["python"])
                res[f"torch_module/{name}/{tag}/t{threads}/python_over_ext"] \
                    = round(p / m, 4)
                py = f"{p:11.3f}{p / m:15.2f}"
            print(f"{name:8}{tag:>14}{ln:14.3f}{m:11.3f}{ln / m:18.2f}"
                  f"{fl:10.3f}{m / fl:14.2f}{ln / fl:17.2f}{py}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/kernels.json"
    rows = int(os.environ.get("DNC_BENCH_ROWS", "8192"))
    cols = int(os.environ.get("DNC_BENCH_COLS", "4096"))
    reps = int(os.environ.get("DNC_BENCH_REPS", "9"))
    res = results.load(out, missing_ok=False)
    # kernels.c's all-threads count: the largest t<N> it wrote
    counts = [int(k.split("/")[2][1:]) for k in res
              if k.startswith("dyt/f32/t") and k.endswith("/fwdbwd_ms")]
    if not counts:
        print(f"torch_eager: no dnc times in {out}; run bench/kernels first")
        sys.exit(1)
    threads = max(counts)
    torch.set_num_threads(threads)
    try:
        import dnc.torch as dt
        global DncStep
        from dnc_step import DncStep
    except ImportError as e:
        print(f"torch_eager: dnc.torch does not import ({e}); PointwiseNorm "
              "not measured")
        dt = None
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(rows, cols, generator=g) * 8 - 4).requires_grad_()
    dy = torch.rand(rows, cols, generator=g) * 2 - 1
    print(f"PyTorch {torch.__version__}, f32 [{rows} x {cols}], {threads} "
          f"threads, forward + backward of the layer, median of {reps} "
          "interleaved rounds")
    print("  eager, jit: the module as its paper writes it, in eager mode and "
          "through torch.jit.script;")
    print("  compile: torch.compile of it; dnc: the raw kernels (bench/kernels."
          "c, minutes before); module: dnc.torch.PointwiseNorm;")
    print("  kernels: the module's raw kernels on fixed buffers, in the same "
          "rounds")
    head = ["eager", "jit", "compile", "module", "kernels", "dnc"]
    print(f"{'fn':8}" + "".join(f"{h + ' ms':>12}" for h in head) +
          f"{'eager/module':>14}{'jit/module':>12}{'compile/module':>16}"
          f"{'module/kernels':>16}")
    note = None
    for name, cls in (("dyt", DyT), ("derf", Derf), ("dyisru", DyISRU)):
        key = f"{name}/f32/t{threads}/fwdbwd_ms"
        if key not in res:
            print(f"torch_eager: {key} missing from {out}; run bench/kernels first")
            sys.exit(1)
        variants = {"eager": cls(cols), "jit": torch.jit.script(cls(cols))}
        comp, why = compiled(cls(cols))
        if comp is not None:
            variants["compile"] = comp
        else:
            note = why
        if dt is not None:
            variants["module"] = dt.PointwiseNorm(cols, name, threads=threads)
            # its raw kernels, in the same rounds: over_kernels
            mod = variants["module"]
            variants["kernels"] = DncStep(
                mod.fn, x.detach().numpy(), dy.numpy(),
                mod.weight.detach().numpy(), mod.bias.detach().numpy(),
                [getattr(mod, q.name).detach().item() for q in mod.fn.params])
        times = {v: [] for v in variants}
        torch_vars = [v for v in variants if v not in ("module", "kernels")]
        dnc_vars = [v for v in ("module", "kernels") if v in variants]
        for r in range(reps + 1):
            # PyTorch's OpenMP threads spin a while after each of its ops
            # and slow whatever dnc call comes next on a machine with few
            # cores: the module and its raw kernels run as a pair after the
            # PyTorch variants, each first in half of the rounds, so that
            # over_kernels compares them under the same conditions
            order = torch_vars if r % 2 else torch_vars[::-1]
            order = order + (dnc_vars if (r // 2) % 2 else dnc_vars[::-1])
            for v in order:
                if v != "kernels":
                    clear(variants[v], x)
                t0 = time.perf_counter()
                if v == "kernels":
                    variants[v]()
                else:
                    step(variants[v], x, dy)
                if r:  # the first round warms up (and compiles)
                    times[v].append((time.perf_counter() - t0) * 1e3)
        med = {v: statistics.median(t) for v, t in times.items()}
        med["dnc"] = res[key]
        res[f"vs_torch_eager/{name}/fwdbwd"] = round(med["eager"] / med["dnc"], 4)
        cells = "".join(f"{med[h]:12.2f}" if h in med else f"{'-':>12}"
                        for h in head)
        ratios = ""
        if "module" in med:
            m = med["module"]
            res[f"torch_module/{name}/vs_eager"] = round(med["eager"] / m, 4)
            res[f"torch_module/{name}/vs_jit_script"] = round(med["jit"] / m, 4)
            res[f"torch_module/{name}/over_kernels"] = \
                round(m / med["kernels"], 4)
            ratios = f"{med['eager'] / m:14.2f}{med['jit'] / m:12.2f}"
            if "compile" in med:
                res[f"torch_module/{name}/vs_compile"] = \
                    round(med["compile"] / m, 4)
                ratios += f"{med['compile'] / m:16.2f}"
            else:
                ratios += f"{'-':>16}"
            ratios += f"{m / med['kernels']:16.2f}"
        print(f"{name:8}{cells}{ratios}")
    if note:
        print(f"  ({note})")
    if dt is not None:
        for t in sorted({threads, 1}, reverse=True):
            vs_layernorm(dt, t, reps, res, threads)
    results.save(out, res)


if __name__ == "__main__":
    main()
