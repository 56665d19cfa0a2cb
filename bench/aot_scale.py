"""aot_scale.py - how `dnc compile` scales with the number of functions.

Writes N distinct functions in the shape of a search's candidates (a base
function of alpha * x + shift, mirrored, clipped, mixed with x, composed
with or multiplied by another; examples/search/derf_space.dns's stages)
into one file, compiles them into one library (`dnc compile`, every CPU
level of the default, all dtypes) under /usr/bin/time when it is there, and
prints the wall and CPU seconds per function per level and the peak
resident memory. Adds `aot/s_per_fn_level`, `aot/cpu_s_per_fn_level` and
`aot/peak_rss_mb` to the JSON file given (bench/README.md).

    python3 bench/aot_scale.py DNC JSON [N]      # N: 60 functions
    python3 bench/aot_scale.py --write N FILE    # only the source
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import results

BASES = ["erf(@)", "tanh(@)", "2 / pi * atan(@)", "@ / sqrt(1 + @^2)",
         "@ / (1 + abs(@))", "sigmoid(@)", "asinh(@)", "sin(@)",
         "@ * exp(-@^2 / 2)", "softplus(@)", "sign(@) * log1p(abs(@))"]
SHAPES = ["{b}", "-({m})", "clamp({b}, -1, 1)", "{b} + 0.25 * x",
          "clamp({b}, -0.5, 0.5)", "{b} + 0.1 * x"]
OUTERS = ["{s}", "tanh({s})", "erf({s})", "({s}) * sigmoid(x)"]


def candidate(i):
    """The i-th function: distinct for every i < 6,600 (the bases, shapes
    and outer functions, then a scale and a shift of the input as
    constants, as a search's stages write them)."""
    b = BASES[i % len(BASES)]
    k = i // len(BASES)
    shape = SHAPES[k % len(SHAPES)]
    k //= len(SHAPES)
    outer = OUTERS[k % len(OUTERS)]
    k //= len(OUTERS)
    u = "(%g * (alpha * x + shift) + %g)" % (
        [1, 0.25, 0.5, 2, 4][k % 5], [0, -1, -0.5, 0.5, 1][k // 5 % 5])
    s = shape.format(b=b.replace("@", u),
                     m=b.replace("@", "(-%s)" % u))
    return "fn c%04d(x; alpha = 0.5, shift = 0) = %s\n" % (
        i, outer.format(s=s))


def write(n, path):
    with open(path, "w") as f:
        f.write("# %d search-like candidates (bench/aot_scale.py)\n" % n)
        for i in range(n):
            f.write(candidate(i))


def main():
    if sys.argv[1] == "--write":
        write(int(sys.argv[2]), sys.argv[3])
        return
    dnc, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    levels = 3  # the default levels of an x86-64 library
    with tempfile.TemporaryDirectory(prefix="dnc-aot-scale.") as d:
        src = os.path.join(d, "candidates.dn")
        write(n, src)
        cmd = [dnc, "compile", src, "-o", os.path.join(d, "libc.so")]
        timev = os.path.exists("/usr/bin/time")
        if timev:
            cmd = ["/usr/bin/time", "-v"] + cmd
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode:
            sys.stderr.write(p.stderr)
            sys.exit("aot_scale: dnc compile failed")
        cpu = (after.ru_utime - before.ru_utime +
               after.ru_stime - before.ru_stime)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                      p.stderr)
        rss = int(m.group(1)) / 1024 if m else after.ru_maxrss / 1024
    per = n * levels
    print("dnc compile of %d functions x %d levels: %.1f s wall, %.1f s CPU "
          "(%.3f and %.3f s per function per level), peak RSS %.0f MB"
          % (n, levels, wall, cpu, wall / per, cpu / per, rss))
    res = results.load(out)
    res["aot/s_per_fn_level"] = wall / per
    res["aot/cpu_s_per_fn_level"] = cpu / per
    res["aot/peak_rss_mb"] = rss
    results.save(out, res)


if __name__ == "__main__":
    main()
