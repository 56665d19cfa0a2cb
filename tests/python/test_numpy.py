"""test_numpy.py - the dnc Python package over NumPy (pytest).

The kernels against the reference interpreter, zero-copy views, the
derivatives' text against `dnc diff`, loading a `dnc compile` library,
every error the package raises, and pip installing it from the repository.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import dnc
import pytest

from checks import ok, raises

B = os.environ.get("DNC_BUILD", "build")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NORMS = os.path.join(ROOT, "examples", "norms.dn")
m = dnc.compile_file(NORMS)
rng = np.random.default_rng(7)


def ulps(got, ref, dtype):
    """|got - ref| in units of the last place of ref in dtype."""
    ref = np.asarray(ref, np.float64)
    tiny = np.finfo(dtype).tiny
    e = np.maximum(np.abs(ref), tiny)
    ulp = 2.0 ** (np.floor(np.log2(e)) - (np.finfo(dtype).nmant))
    return np.max(np.abs(np.asarray(got, np.float64) - ref) / ulp)


def test_module_api():
    with open(os.path.join(ROOT, "runtime", "dnc.h")) as h:
        want = [ln.split('"')[1] for ln in h
                if ln.startswith("#define DNC_VERSION_STRING")][0]
    ok(dnc.version == want, "dnc.version is the library's (dnc.h's)",
       dnc.version)
    ok(dnc.__version__ == want, "dnc.__version__ too", dnc.__version__)
    ok(m.names[:4] == ["dyt", "dyisru", "derf", "derf_pc"] and len(m) == 12,
       "the module lists norms.dn's functions in order", m.names)
    ok("dyt" in m and "nope" not in m, "in tests names")
    f = m["derf_pc"]
    ok(f.params == (dnc.Param("alpha", 0.5, "scalar"),
                    dnc.Param("s", 0.0, "per_channel")),
       "params: names, defaults, kinds", f.params)
    ok(f.source.startswith("fn derf_pc(x; alpha = 0.5, s[] = 0) ="),
       ".source is dnc source", f.source)
    ok(m.diagnostics == [], "no diagnostics for a clean source")
    w = dnc.compile("fn f(x) {\n  let pi = 3\n  pi * x\n}\n", "w.dn")
    d = w.diagnostics
    ok(len(d) == 1 and d[0].severity == "warning" and d[0].line == 2 and
       d[0].column == 7 and "shadows" in d[0].message,
       "warnings come with the module, located", d)
    ok(m.context is dnc.default_context() and m.context.threads >= 1,
       "the default context", m.context)


def test_forward_against_reference():
    x64 = np.concatenate([np.linspace(-12, 12, 4001), [0.0, -0.0, 1e-30]])
    for name in ("dyt", "derf", "dyisru", "isru", "arctan", "satursin"):
        f = m[name]
        ref = f.eval(x64)
        for dt, bound in ((np.float64, 4), (np.float32, 4), (np.float16, 1)):
            x = x64.astype(dt)
            y = f.forward(x)
            r = f.eval(x.astype(np.float64))
            e = ulps(y, r, dt)
            ok(y.dtype == dt and y.shape == x.shape and e <= bound,
               "%s forward in %s within %d ulp of the interpreter"
               % (name, np.dtype(dt).name, bound), "max ulp %g" % e)
        ok(np.array_equal(ref, f(x64)) or ulps(f(x64), ref, np.float64) <= 4,
           "%s: calling the function is .forward" % name)
    y = m["dyt"].forward(np.float32(1.5), alpha=2.0)
    ok(y.shape == () and abs(float(y) - np.tanh(3.0)) < 1e-6,
       "a 0-d input and a parameter by keyword", y)
    y = m["dyt"].forward([1, 2, 3])
    ok(y.dtype == np.float64, "integers are taken as float64", y.dtype)
    e = m["dyt"].forward(np.zeros((0, 4), np.float32))
    ok(e.shape == (0, 4), "an empty array gives an empty array")


def test_zero_copy_and_views():
    f = m["derf"]
    big = rng.standard_normal((64, 48)).astype(np.float32)
    ref = f.forward(np.ascontiguousarray(big[:, :40]), alpha=0.8, shift=0.1)
    got = f.forward(big[:, :40], alpha=0.8, shift=0.1)
    ok(np.array_equal(got, ref), "a view with a row stride (no copy) gives "
       "the contiguous result bitwise")
    t = big.T
    ok(np.array_equal(f.forward(t), f.forward(np.ascontiguousarray(t))),
       "a transposed (non-contiguous) input is copied and right")
    x = big.copy()
    want = f.forward(x)
    out = f.forward(x, out=x)
    ok(out is x and np.array_equal(x, want), "out=x works in place")
    o = np.empty_like(big)
    ok(f.forward(big, out=o) is o and np.array_equal(o, want),
       "out= is written and returned")
    raises(ValueError, lambda: f.forward(big, out=np.empty((2, 2),
                                                          np.float32)),
           "out= of another shape is refused", "out must be")
    x3 = rng.standard_normal((4, 5, 6))
    ok(np.array_equal(f.forward(x3), f.forward(x3.reshape(-1)).reshape(
        x3.shape)), "3-D input, same values as flat")


def test_out_overlapping_and_strided():
    """out= that overlaps x other than element for element is computed
    from a copy of x (as NumPy's ufuncs); out in a layout the kernels
    cannot take (x itself transposed) gets the result all the same."""
    f = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    for dt in (np.float64, np.float32):
        buf = np.arange(1, 41, dtype=dt)
        x = buf[:-1].copy()
        f.forward(buf[:-1], out=buf[1:])
        ok(np.allclose(buf[1:], np.tanh(dt(0.5) * x), rtol=1e-6),
           "out = a[1:] for x = a[:-1], %s" % np.dtype(dt).name)
        buf = np.arange(1, 41, dtype=dt)
        x = buf[1:].copy()
        f.forward(buf[1:], out=buf[:-1])
        ok(np.allclose(buf[:-1], np.tanh(dt(0.5) * x), rtol=1e-6),
           "out = a[:-1] for x = a[1:]")
        a = np.arange(24, dtype=dt).reshape(4, 6) / 7
        want = np.tanh(dt(0.5) * a[:, ::2].T)
        f.forward(a[:, ::2].T, out=a[:, 1::2].T)  # interleaved, no overlap
        ok(np.allclose(a[:, 1::2].T, want, rtol=1e-6), "interleaved columns")
        X = np.arange(12, dtype=dt).reshape(3, 4).T / 5
        want = np.tanh(dt(0.5) * X)
        r = f.forward(X, out=X)
        ok(r is X and np.allclose(X, want, rtol=1e-6),
           "in place on a transposed x")


def test_backward_against_derivatives():
    for name in ("dyt", "derf", "dyisru"):
        f = m[name]
        x = rng.uniform(-5, 5, 2000)
        dy = rng.uniform(-1, 1, 2000)
        dx, g = f.backward(x, dy)
        want = dy * f.derivative("x").eval(x)
        ok(np.max(np.abs(dx - want)) <= 1e-14 * np.max(np.abs(want)) + 1e-300,
           "%s backward dx = dy f'(x) (f64)" % name,
           lambda: np.max(np.abs(dx - want)))
        for p in f.params:
            s = np.sum(dy * f.derivative(p.name).eval(x))
            ok(abs(g[p.name] - s) <= 1e-12 * max(1.0, np.sum(np.abs(
                dy * f.derivative(p.name).eval(x)))),
               "%s backward: d%s is the sum of dy df/d%s" % (name, p.name,
                                                             p.name),
               "got %r want %r" % (g[p.name], s))
        dx32, g32 = f.backward(x.astype(np.float32), dy.astype(np.float32))
        r = dy.astype(np.float32).astype(np.float64) * \
            f.derivative("x").eval(x.astype(np.float32).astype(np.float64))
        ok(dx32.dtype == np.float32 and
           np.max(np.abs(dx32 - r)) <= 1e-6 * np.max(np.abs(r)),
           "%s backward in f32" % name)
    f = m["derf_pc"]
    x = rng.standard_normal((50, 6))
    dy = rng.standard_normal((50, 6))
    s = np.linspace(-1, 1, 6)
    y = f.forward(x, s=s)
    ok(np.allclose(y, np.vstack([f.eval(x[:, c], s=s[c]) for c in
                                 range(6)]).T, rtol=1e-14),
       "per-channel values, one per column")
    dx, g = f.backward(x, dy, s=s)
    ds = [np.sum(dy[:, c] * f.derivative("s").eval(x[:, c], s=s[c]))
          for c in range(6)]
    ok(isinstance(g["s"], np.ndarray) and np.allclose(g["s"], ds,
                                                      rtol=1e-12),
       "per-channel gradient: one sum per channel", g["s"])
    da = sum(np.sum(dy[:, c] * f.derivative("alpha").eval(x[:, c], s=s[c]))
             for c in range(6))
    ok(abs(g["alpha"] - da) < 1e-11 * max(1, abs(da)),
       "the scalar gradient beside it")
    # a per-channel parameter left at one value (a) beside one given per
    # channel (s): its gradient is the total over every element, not 0
    pc = dnc.compile("fn pc(x; a[] = 0.5, s[] = 0) = tanh(a * x + s)")["pc"]
    for a in (None, 0.75):
        kw = {} if a is None else {"a": a}
        dx, g = pc.backward(x, dy, s=s, **kw)
        av = 0.5 if a is None else a
        da = sum(np.sum(dy[:, c] * pc.derivative("a").eval(x[:, c], a=av,
                                                            s=s[c]))
                 for c in range(6))
        ok(isinstance(g["a"], float) and
           abs(g["a"] - da) < 1e-11 * max(1, abs(da)),
           "a per-channel parameter given one value (%r) beside one given "
           "per channel: the sum over all channels" % (a,),
           "got %r want %r" % (g["a"], da))
        ok(isinstance(g["s"], np.ndarray) and g["s"].shape == (6,),
           "and the one given per channel, one sum per channel", g["s"])


def test_diff_text():
    for fmt in ("dsl", "latex", "c"):
        for wrt, order in (("x", 1), ("alpha", 2), ("all", 1), ("all", 2)):
            cli = subprocess.run(
                [os.path.join(B, "dnc"), "diff", "-f", "derf", "--wrt", wrt,
                 "--order", str(order), "--format", fmt, NORMS],
                capture_output=True, text=True)
            got = m["derf"].diff(wrt, order, fmt)
            ok(cli.returncode == 0 and got == cli.stdout,
               "diff(%r, %d, %r) is what dnc diff prints" % (wrt, order,
                                                              fmt),
               lambda: "api:\n%s\ncli:\n%s%s" % (got, cli.stdout, cli.stderr))
    mixed = m["derf"].diff(("x", "alpha"))
    ok(mixed.startswith("fn derf__dx_dalpha(x; alpha = 0.5, shift = 0)"),
       "a mixed derivative from a tuple", mixed)
    d2 = m["dyt"].derivative("x", 2)
    x = np.linspace(-3, 3, 61)
    h = 1e-4
    fd = (m["dyt"].eval(x + h) - 2 * m["dyt"].eval(x) + m["dyt"].eval(x - h)) \
        / h ** 2
    ok(d2.name == "dyt__dx2" and np.allclose(d2.eval(x), fd, atol=1e-6),
       "derivative('x', 2) compiles and matches finite differences")


def test_fit_least_squares():
    """Function.fit: dnc's solver (dnc_function_fit) through ctypes."""
    derf = m["derf"]
    x = np.linspace(-4, 4, 81)
    y = derf.eval(x, alpha=1.7, shift=-0.3)
    r = derf.fit(x, y)
    ok(r.converged and r.status == "ok", "converges", r)
    ok(abs(r.values["alpha"] - 1.7) < 1e-9 and
       abs(r.values["shift"] + 0.3) < 1e-9, "recovers alpha and shift", r)
    ok(r.rms < 1e-12 and set(r.se) == {"alpha", "shift"}, "rms and se", r)
    h = derf.fit(x, y, params=["alpha"], start={"shift": 0.5})
    ok(h.values["shift"] == 0.5 and set(h.se) == {"alpha"} and h.rms > 1e-3,
       "params= holds the others at start's values", h)
    ok(derf.fit(x, y, max_iter=1).status == "maxiter", "max_iter=1")
    lg = dnc.compile("fn lg(x; a = 1) = log(a * x)")["lg"]
    bad = lg.fit(x, y)
    ok(bad.status == "nonfinite" and bad.bad_point == 0 and
       not bad.converged, "not finite at the start: said, with the point",
       bad)
    ok(derf.fit(x[:1], y[:1]).status == "toofew", "one point, two params")
    for k, v in (("x", np.inf), ("y", np.nan)):
        xb, yb = x.copy(), y.copy()
        (xb if k == "x" else yb)[5] = v
        r = derf.fit(xb, yb)
        ok(r.status == "nonfinite" and r.bad_point == 5 and
           "point 6 (x = " in r.message and
           "is not finite; the points must be finite" in r.message,
           "a point with %s = %r: said so, not blamed on f" % (k, v),
           r.message)
    s = derf.fit(x, y, params="alpha", start={"shift": -0.3})
    ok(set(s.se) == {"alpha"} and abs(s.values["alpha"] - 1.7) < 1e-9,
       "params= one name as a string: that parameter", s)
    raises(ValueError, lambda: derf.fit(x, y[:3]), "x and y differ",
           "x (shape (81,)) and y (shape (3,)) must have the same shape")
    raises(ValueError, lambda: derf.fit(x, y, params=["beta"]),
           "an unknown parameter", "no parameter 'beta'")
    raises(ValueError, lambda: derf.fit(x, y, max_iter=-1), "max_iter < 0",
           "max_iter")


def test_loading_a_library():
    lib = os.path.join(B, "examples", "libnorms.so")
    if not os.path.exists(lib):
        ok(False, "build/examples/libnorms.so exists (make tests builds it)")
        return
    a = dnc.load(lib)
    ok(a.names == m.names and a.cpu.startswith("x86-64"),
       "dnc.load: the library's functions and its CPU level", a.cpu)
    jit = dnc.Context(cpu=a.cpu).compile_file(NORMS)
    x = rng.standard_normal(10000).astype(np.float32)
    dy = rng.standard_normal(10000).astype(np.float32)
    same = all(np.array_equal(a[n].forward(x), jit[n].forward(x)) and
               np.array_equal(a[n].backward(x, dy)[0],
                              jit[n].backward(x, dy)[0])
               for n in ("dyt", "derf", "dyisru"))
    ok(same, "the library's kernels equal the JIT's for its CPU, bitwise")


def test_errors():
    try:
        dnc.compile("fn f(x) = tanh(x", "bad.dn")
        ok(False, "a source error raises")
    except dnc.SourceError as e:
        ok(str(e).startswith("bad.dn:1:17: error: unexpected end of file")
           and "^" in str(e), "SourceError reads as dnc's located report",
           str(e))
        ok(e.diagnostics[0] == dnc.Diagnostic("error", "bad.dn", 1, 17,
                                              "unexpected end of file"),
           "SourceError.diagnostics", e.diagnostics)
        ok(isinstance(e, ValueError) and e.status == 1,
           "SourceError is a ValueError with status DNC_ERR_SOURCE")
    raises(dnc.SourceError, lambda: dnc.compile_file("/nonexistent/f.dn"),
           "a missing file", "cannot open")
    f = m["dyt"]
    raises(KeyError, lambda: m["nope"], "an unknown function",
           "no function 'nope'")
    raises(TypeError, lambda: f.forward([1.0], beta=2), "an unknown parameter",
           "dyt() has no parameter 'beta' (its parameters: alpha)")
    raises(ValueError, lambda: f.forward([1.0], alpha=[1, 2]),
           "an array for a scalar parameter", "scalar parameter")
    raises(ValueError, lambda: m["derf_pc"].forward(np.ones((2, 3)),
                                                    s=[1, 2]),
           "per-channel values of the wrong length", "3 channels")
    raises(TypeError, lambda: f.forward(np.ones(3, np.complex64)),
           "a complex input", "float32, float64, float16 or bfloat16")
    raises(ValueError, lambda: f.backward(np.ones(3), np.ones(4)),
           "dy of another shape", "must have x's shape")
    raises(ValueError, lambda: f.backward(np.ones(3), np.ones(3,
                                                              np.float32)),
           "dy of another dtype", "must have x's shape and dtype")
    raises(ValueError, lambda: f.diff("beta"), "diff by an unknown variable",
           "'dyt' has no variable 'beta'")
    raises(ValueError, lambda: f.diff("x", format="tex"), "an unknown format",
           "format is")
    raises(ValueError, lambda: f.diff("x", order=0), "order 0", "order")
    raises(dnc.Error, lambda: f.diff("x,alpha", order=2),
           "a mixed derivative with an order", "takes no order")
    raises(dnc.LoadError, lambda: dnc.load("/nonexistent/k.so"),
           "loading a missing library", "cannot open")
    libm = subprocess.run(["gcc", "-print-file-name=libm.so.6"],
                          capture_output=True, text=True).stdout.strip()
    raises(dnc.LoadError, lambda: dnc.load(libm), "loading a library that "
           "is not dnc's", "dnc")
    raises(dnc.Error, lambda: dnc.Context(cpu="no-such-cpu"),
           "an unknown CPU", "no-such-cpu")
    # what libdnc refuses as an argument is a ValueError too
    for kw in ({"cpu": "no-such-cpu"}, {"threads": 2000}, {"math_bits": 16},
               {"opt_level": 7}, {"features": "+bogus"}):
        raises(ValueError, lambda: dnc.Context(**kw),
               "Context(%r): a ValueError (dnc.ArgumentError)" % kw)
    raises(dnc.ArgumentError, lambda: dnc.Context(math_bits=16),
           "math_bits 16: dnc.ArgumentError", "math_bits")
    for bad in (None, "1", object()):
        raises(TypeError, lambda: f.forward(np.ones(3), alpha=bad),
               "alpha=%r: not a number" % (bad,), "takes a number")
    raises(ValueError, lambda: dnc.Context(threads=-1), "negative threads",
           "threads")
    r = subprocess.run([sys.executable, "-c", "import dnc"],
                       env=dict(os.environ, DNC_LIBRARY="/nonexistent.so"),
                       capture_output=True, text=True)
    ok(r.returncode != 0 and "cannot find libdnc.so" in r.stderr,
       "DNC_LIBRARY naming no file: a clear ImportError", r.stderr[-300:])
    # ... even where the system's library path has a libdnc (make install
    # and ldconfig): no silent fallback to that other copy
    r = subprocess.run([sys.executable, "-c", "import ctypes.util; "
                        "ctypes.util.find_library = lambda n: %r; import dnc"
                        % dnc.library_path],
                       env=dict(os.environ, DNC_LIBRARY="/nonexistent.so"),
                       capture_output=True, text=True)
    ok(r.returncode != 0 and "DNC_LIBRARY names '/nonexistent.so'" in
       r.stderr, "DNC_LIBRARY naming no file, a libdnc on the system's "
       "path: still the ImportError", r.stderr[-300:])


def _import_dnc(env_extra, cwd, code="import dnc; print(dnc.library_path)"):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DNC_LIBRARY", "DNC_BUILD",
                        "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env=env, cwd=cwd)


def test_relative_dnc_library():
    # DNC_LIBRARY=libdnc.so in the folder that holds it loads that file,
    # not one dlopen finds on the library path by that name (or none:
    # it was a raw OSError), and library_path says the absolute path
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(dnc.library_path, os.path.join(tmp, "libdnc.so"))
        r = _import_dnc({"DNC_LIBRARY": "libdnc.so"}, tmp)
        ok(r.returncode == 0 and r.stdout.strip() ==
           os.path.join(tmp, "libdnc.so"),
           "a relative DNC_LIBRARY: the file in the current folder, by its "
           "absolute path", r.stdout + r.stderr[-500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_library_that_does_not_load():
    # a libdnc that exists but does not load is an ImportError that says
    # which copy and what to do, never ctypes' OSError traceback: the
    # package's own copy where LLVM 19 is missing (pip install . on one
    # machine, run on another), a DNC_LIBRARY naming a folder or a file
    # that is not a library
    tmp = tempfile.mkdtemp()
    try:
        junk = os.path.join(tmp, "junk.so")
        with open(junk, "w") as f:
            f.write("not a library\n")
        for lib, want in ((junk, "DNC_LIBRARY names %r, which cannot be "
                           "loaded" % junk),
                          (tmp, "DNC_LIBRARY names %r, a folder" % tmp)):
            r = _import_dnc({"DNC_LIBRARY": lib}, tmp)
            ok(r.returncode != 0 and "ImportError: dnc: " + want in r.stderr
               and "OSError" not in r.stderr,
               "DNC_LIBRARY=%s: an ImportError, %r" % (lib, want),
               r.stderr[-800:])
        pkg = os.path.join(tmp, "site")
        shutil.copytree(os.path.join(ROOT, "python", "dnc"),
                        os.path.join(pkg, "dnc"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        shutil.copy(junk, os.path.join(pkg, "dnc", "libdnc.so"))
        r = _import_dnc({"PYTHONPATH": pkg}, tmp)
        ok(r.returncode != 0 and "ImportError: dnc: cannot load the "
           "libdnc.so installed with this package" in r.stderr and
           "LLVM 19" in r.stderr and "make wheel" in r.stderr and
           "OSError" not in r.stderr,
           "an installed copy that does not load: an ImportError naming "
           "LLVM 19 and make wheel", r.stderr[-800:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_library_path_from_the_system_path():
    # found on the system's library path (make install), library_path is
    # the file loaded, not the bare soname find_library gives: a Ray
    # trial's DNC_LIBRARY was that soname made absolute in the current
    # folder, and no trial found it
    tmp = tempfile.mkdtemp()
    try:
        lib = os.path.join(tmp, "lib")
        os.mkdir(lib)
        # as make install lays it out: the soname a link to the file
        real = os.path.join(lib, "libdnc.so.0.4.0")
        shutil.copy(os.path.realpath(dnc.library_path), real)
        os.symlink("libdnc.so.0.4.0", os.path.join(lib, "libdnc.so.6"))
        code = ("import ctypes.util; ctypes.util.find_library = lambda n: "
                "'libdnc.so.6'; import dnc; from dnc.search import cli; "
                "print(dnc.library_path); "
                "print(cli._ray_env()['env_vars']['DNC_LIBRARY'])")
        for ld in (lib, "lib"):
            r = _import_dnc({"DNC_BUILD": "/nonexistent",
                             "LD_LIBRARY_PATH": ld}, tmp, code)
            got = r.stdout.split()
            ok(r.returncode == 0 and len(got) == 2 and
               all(os.path.isabs(p) and os.path.realpath(p) == real
                   for p in got),
               "libdnc from the library path (LD_LIBRARY_PATH=%s): "
               "library_path and the trials' DNC_LIBRARY are the file's "
               "absolute path" % ld, r.stdout + r.stderr[-500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_pip_install():
    # asked of another process: importlib.util.find_spec("pip") here
    # would switch off setuptools' distutils shim in this one (its finder
    # treats it as pip starting), and inductor's builds need that shim
    if subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                       "assert all(u.find_spec(p) for p in ('pip', "
                       "'setuptools', 'wheel'))"],
                      capture_output=True).returncode:
        pytest.skip("pip install from the repository: pip, setuptools or "
                    "wheel missing")
    tmp = tempfile.mkdtemp()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
             "--no-build-isolation", "--no-index", "--target", tmp, ROOT],
            capture_output=True, text=True,
            env=dict(os.environ, DNC_BUILD=os.path.abspath(B),
                     PIP_NO_CACHE_DIR="1"))
        ok(r.returncode == 0 and
           os.path.exists(os.path.join(tmp, "dnc", "libdnc.so")),
           "pip install from the repository, with libdnc inside",
           r.stdout + r.stderr)
        code = ("import dnc, numpy as np; f = dnc.compile('fn g(x) = 2 * x')"
                "['g']; print(dnc.library_path, float(f.forward(np.ones(1))"
                "[0]))")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "DNC_LIBRARY", "DNC_BUILD")}
        env["PYTHONPATH"] = tmp
        r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, env=env, cwd=tmp)
        ok(r.returncode == 0 and r.stdout.startswith(tmp) and
           r.stdout.strip().endswith(" 2.0"),
           "the installed package loads its own libdnc and runs",
           r.stdout + r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def test_copies_make_new_native_objects():
    # a copy of a Context is a new context with the same options, never a
    # second owner of the same handle: freeing the original leaves the
    # copy working (it used to share it, and the next compile crashed)
    import copy
    import gc
    import pickle
    c = dnc.Context(threads=2, opt_level=1)
    f = c.compile("fn f(x; a = 2) = a * x")["f"]
    c2 = copy.deepcopy(c)
    m2 = copy.deepcopy(f.module)
    f2 = pickle.loads(pickle.dumps(f))
    ok(c2._h != c._h and c2.threads == 2, "deepcopy: a new context, same "
       "threads")
    ok(m2.context is not f.module.context and f2.module._h != f.module._h,
       "copied modules and functions have their own handles")
    del c, f
    gc.collect()
    ok(float(c2.compile("fn g(x) = x + 1")["g"].forward([1.0])[0]) == 2.0,
       "the copied context compiles after the original is freed")
    ok(float(m2["f"].forward([1.5])[0]) == 3.0 and
       float(f2.forward([2.0])[0]) == 4.0, "copied module and function run")
    lib = os.path.join(B, "examples", "libnorms.so")
    if os.path.exists(lib):
        m = dnc.load(lib)
        ok(pickle.loads(pickle.dumps(m)).names == m.names,
           "a loaded library pickles by its path")


def test_stream_bytes():
    # a context that writes every aligned output with non-temporal stores
    # gives the same bits as one that never does; a bad size is refused.
    # The forward's out is 64-byte aligned here, so it streams; backward's
    # dx is NumPy's own allocation, aligned or not (tests/test_kernels.c
    # streams the backward in every dtype)
    def aligned(n):
        raw = np.empty(n + 16, np.float32)
        off = (-raw.ctypes.data % 64) // 4
        return raw[off:off + n]
    rng = np.random.default_rng(5)
    x = aligned(100003)
    x[:] = rng.uniform(-4, 4, x.size)
    dy = aligned(x.size)
    dy[:] = rng.uniform(-1, 1, x.size)
    res = []
    for sb in (1, -1):
        f = dnc.Context(threads=2, stream_bytes=sb).compile(
            "fn dyt(x; alpha = 0.7) = tanh(alpha * x)")["dyt"]
        out = aligned(x.size)
        f.forward(x, out=out)
        dx, dp = f.backward(x, dy)
        res.append((out.copy(), dx, dp))
    ok(np.array_equal(res[0][0].view(np.uint32), res[1][0].view(np.uint32)),
       "stream_bytes=1: the forward's bits of stream_bytes=-1")
    ok(np.array_equal(res[0][1].view(np.uint32), res[1][1].view(np.uint32))
       and res[0][2] == res[1][2],
       "stream_bytes=1: the backward's bits of stream_bytes=-1")
    raises(dnc.Error, lambda: dnc.Context(stream_bytes=-2),
           "stream_bytes -2", "stream_bytes")


def test_a_folder_where_the_library_should_be(tmp_path):
    """A candidate libdnc.so that is a folder, with no DNC_LIBRARY set:
    an ImportError saying so (the message for DNC_LIBRARY's folder joined
    the unset variable's None: a TypeError)."""
    from dnc import _capi
    d = tmp_path / "libdnc.so"
    d.mkdir()
    with pytest.raises(ImportError, match="is a folder, not the library"):
        _capi._open(str(d), None, str(tmp_path))
