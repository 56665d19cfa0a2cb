"""jax_peer.py - JAX's jit of the layer and its gradient against dnc's
kernels, in the same run.

    .venv/bin/python bench/jax_peer.py build/bench/kernels.json

For DyT, Derf and DyISRU (examples/norms.dn), the layer y = gamma * f(x; p)
+ beta written in jax.numpy as the papers write it, and one training
step's kernels: jax.jit of the forward and jax.vjp's backward together
(y, then dx, dp, dgamma and dbeta for a given dy), on the f32 [rows x
cols] tensor of bench/kernels.c, one thread on both sides (XLA's CPU
client runs single-threaded: --xla_cpu_multi_thread_eigen=false and
intra_op_parallelism_threads=1, set before jax is imported). dnc's side is
dnc_layer_forward + dnc_layer_backward through libdnc (the Python
package's C binding), every gradient wanted, into buffers written before
timing as bench/kernels.c does. The two alternate in every round (odd
rounds the other first), median of DNC_BENCH_REPS (9) rounds of the
process's CPU time (on a shared machine steadier than the wall time; both
sides compute on the calling thread). Before timing, JAX's y and dx are
checked against dnc's.

Adds "jax/<fn>/fwdbwd_vs_dnc": JAX's time over dnc's (above 1, dnc is
faster). Without JAX it prints why and adds nothing.
"""
import os
import statistics
import sys
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import results  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "python"))

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:
    print("jax_peer: JAX does not import here (%s); skipped" % e)
    sys.exit(0)

import numpy as np  # noqa: E402

import dnc  # noqa: E402
from dnc_step import DncStep  # noqa: E402

SOURCE = """
fn dyt(x; alpha = 0.5) = tanh(alpha * x)
fn derf(x; alpha = 0.5, shift = 0) = erf(alpha * x + shift)
fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)
"""

# the same functions in jax.numpy; p: the parameters in the order above
JAX_FNS = {
    "dyt": lambda x, p: jnp.tanh(p[0] * x),
    "derf": lambda x, p: jax.scipy.special.erf(p[0] * x + p[1]),
    "dyisru": lambda x, p: x / jnp.sqrt(p[0] + x * x),
}
PARAMS = {"dyt": [0.5], "derf": [0.5, 0.0], "dyisru": [301.1]}


def jax_step(name):
    f = JAX_FNS[name]

    def layer(x, gamma, beta, p):
        return gamma * f(x, p) + beta

    def step(x, gamma, beta, p, dy):
        y, back = jax.vjp(layer, x, gamma, beta, p)
        return y, back(dy)
    return jax.jit(step)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/kernels.json"
    rows = int(os.environ.get("DNC_BENCH_ROWS", "8192"))
    cols = int(os.environ.get("DNC_BENCH_COLS", "4096"))
    reps = int(os.environ.get("DNC_BENCH_REPS", "9"))
    res = results.load(out)
    mod = dnc.Context(threads=1).compile(SOURCE, "jax_peer")
    rng = np.random.default_rng(1)
    x = (rng.random((rows, cols), np.float32) * 8 - 4).astype(np.float32)
    dy = (rng.random((rows, cols), np.float32) * 2 - 1).astype(np.float32)
    gamma = (1 + 0.25 * rng.random(cols)).astype(np.float32)
    beta = (0.25 * rng.random(cols) - 0.125).astype(np.float32)
    jx, jdy, jg, jb = (jax.device_put(a) for a in (x, dy, gamma, beta))
    print(f"JAX {jax.__version__} jit of the layer and its vjp, against dnc's "
          f"layer kernels, f32 [{rows} x {cols}], 1 thread, forward + "
          f"backward, process CPU time, median of {reps}")
    print(f"{'fn':>5}{'jax ms':>12}{'dnc ms':>10}{'jax/dnc':>10}")
    for name in ("dyt", "derf", "dyisru"):
        p = PARAMS[name]
        ours = DncStep(mod[name], x, dy, gamma, beta, p)
        step = jax_step(name)
        jp = jnp.asarray(p, jnp.float32)

        def theirs():
            y, grads = step(jx, jg, jb, jp, jdy)
            jax.block_until_ready((y, grads))
            return y, grads
        # warm up: compiles; then the two agree
        y, grads = theirs()
        ours()
        idx = rng.integers(0, rows * cols, 256)
        for what, a, b in (("y", np.asarray(y), ours.y),
                           ("dx", np.asarray(grads[0]), ours.dx)):
            a, b = a.reshape(-1)[idx], b.reshape(-1)[idx]
            if not np.allclose(a, b, rtol=1e-4, atol=1e-5):
                print(f"jax_peer: {name}: JAX's {what} differs from dnc's")
                sys.exit(1)
        times = {"jax": [], "dnc": []}
        for r in range(reps):
            order = (("jax", theirs), ("dnc", ours))
            for who, run in (order if r % 2 else order[::-1]):
                t0 = time.process_time()
                run()
                times[who].append((time.process_time() - t0) * 1e3)
        tj = statistics.median(times["jax"])
        td = statistics.median(times["dnc"])
        res[f"jax/{name}/fwdbwd_vs_dnc"] = round(tj / td, 4)
        print(f"{name:>5}{tj:12.2f}{td:10.2f}{tj / td:10.2f}")
    results.save(out, res)


if __name__ == "__main__":
    main()
