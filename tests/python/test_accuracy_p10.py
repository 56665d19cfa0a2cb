"""Kernels against a high-precision reference (mpmath), through the NumPy
API: the bounds docs/accuracy.md states, and the derivatives where an
intermediate of the chain rule overflows (diff.c's chain0), element-wise
and per-channel (layer) forms.
"""
import math

import numpy as np
import pytest

import dnc

mpm = pytest.importorskip("mpmath")
mpm.mp.prec = 200

SRC = """
fn dyt(x; alpha = 0.5) = tanh(alpha * x)
fn derf(x; alpha = 0.5, shift = 0) = erf(alpha * x + shift)
fn derf_fma(x; alpha = 0.5, shift = 0) = erf(fma(alpha, x, shift))
fn gauss(x; a = 2) = exp(-(a * x)^2)
fn gelu_t(x; a = 0.7978845608) = 0.5 * x * (1 + tanh(a * (x + 0.044715 * x^3)))
fn sigx(x; a = 1) = x * sigmoid(-a * x^2)
fn gauss_pc(x; a[] = 2) = exp(-(a * x) * (a * x))
"""


@pytest.fixture(scope="module")
def mod():
    return dnc.compile(SRC)


def ulp(r, dt):
    fi = np.finfo(dt)
    r = abs(r)
    if r < fi.tiny:
        return float(fi.smallest_subnormal)
    return 2.0 ** (math.frexp(r)[1] - 1 - fi.nmant)


def max_ulp(got, ref, dt, floor=0.0):
    w = 0.0
    for g, r in zip(got, ref):
        if abs(float(r)) <= floor:
            continue
        w = max(w, float(abs(float(g) - r)) / ulp(float(r), dt))
    return w


def erf_ref(x, a, s):
    u = mpm.mpf(a) * mpm.mpf(float(x)) + mpm.mpf(s)
    return mpm.erf(u), 2 / mpm.sqrt(mpm.pi) * mpm.exp(-u * u) * mpm.mpf(a)


def tanh_ref(x, a):
    u = mpm.mpf(a) * mpm.mpf(float(x))
    return mpm.tanh(u), mpm.mpf(a) / mpm.cosh(u) ** 2


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_published_defaults_within_stated_bounds(mod, dt):
    # docs/accuracy.md: DyT forward 0.85 ulp, backward 3.8 (f32); Derf
    # forward 1.5, backward 2.6 (f32, 1.6 f64); a little slack for CPUs
    rng = np.random.default_rng(7)
    x = rng.uniform(-40, 40, 1500).astype(dt)
    tiny = np.finfo(dt).tiny
    f = mod["dyt"]
    y = f.forward(x)
    dx, _ = f.backward(x, np.ones_like(x))
    ref = [tanh_ref(v, 0.5) for v in x]
    assert max_ulp(y, [r[0] for r in ref], dt) <= 1.1
    assert max_ulp(dx, [r[1] for r in ref], dt, tiny) <= 4.0
    f = mod["derf"]
    y = f.forward(x)
    dx, _ = f.backward(x, np.ones_like(x))
    ref = [erf_ref(v, 0.5, 0.0) for v in x]
    assert max_ulp(y, [r[0] for r in ref], dt) <= 1.6
    assert max_ulp(dx, [r[1] for r in ref], dt, tiny) <= 2.7


def host_has_fma():
    try:
        with open("/proc/cpuinfo") as f:
            return " fma " in f.read().replace("\n", " ")
    except OSError:
        return False


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_derf_shift_rounding_and_fma(mod, dt):
    # with alpha = 0.7, shift = 0.3, alpha*x + shift rounded twice cancels
    # near its zero (docs/accuracy.md): so it is on a CPU without fused
    # multiply-add (the x86-64 baseline); where there is one the kernels
    # round it once as fma() does (compiler/rewrite.c, fused)
    x = (-0.3 / 0.7 * (1 + np.linspace(-1e-5, 1e-5, 201))).astype(dt)
    p = dict(alpha=0.7, shift=0.3)
    a, s = float(dt(0.7)), float(dt(0.3))
    ref = [erf_ref(v, a, s)[0] for v in x]
    base = dnc.compile(SRC, context=dnc.Context(cpu="x86-64"))
    assert max_ulp(base["derf"].forward(x, **p), ref, dt) > 1e3
    assert max_ulp(base["derf_fma"].forward(x, **p), ref, dt) <= 1.6
    assert max_ulp(mod["derf_fma"].forward(x, **p), ref, dt) <= 1.6
    if host_has_fma():
        assert max_ulp(mod["derf"].forward(x, **p), ref, dt) <= 1.6


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_fused_multiply_add_forms(dt):
    # a x + s is rounded once where the CPU fuses (rewrite.c, fused), as
    # written on the x86-64 baseline; a difference of two products is
    # never fused (x x - x x stays 0, (x + 1) x - x x stays x rounded once
    # per product)
    src = ("fn lin(x; a = 0.7, s = 0.3) = a * x + s\n"
           "fn sym(x) = x * x - x * x\n"
           "fn lin2(x; a = 0.7) = x * a - 1\n")
    x = np.random.default_rng(3).uniform(-5, 5, 4000).astype(dt)
    x = np.concatenate([x, np.array([0.0, -0.0, 1e-30, 3e19, -3e19], dt)])
    a, s = dt(0.7), dt(0.3)
    exact = [float(mpm.mpf(float(a)) * mpm.mpf(float(v)) + mpm.mpf(float(s)))
             for v in x]
    once = np.array(exact, dt)                     # a x + s rounded once
    twice = (a * x).astype(dt) + s                 # as written
    base = dnc.compile(src, context=dnc.Context(cpu="x86-64"))
    assert np.array_equal(base["lin"].forward(x), twice)
    with np.errstate(invalid="ignore", over="ignore"):
        sq = x * x - x * x
    for m in (base, dnc.compile(src)):
        np.testing.assert_array_equal(m["sym"].forward(x), sq)
    if host_has_fma():
        got = dnc.compile(src)["lin"].forward(x)
        assert np.array_equal(got, once)
        ex2 = np.array([float(mpm.mpf(float(v)) * mpm.mpf(float(a)) - 1)
                        for v in x], dt)
        assert np.array_equal(dnc.compile(src)["lin2"].forward(x), ex2)


GUARDED = [
    ("gauss", dict(a=2.0), [3e38, -3e38, 1e20, 1e300]),
    ("gelu_t", dict(a=0.7978845608), [1e13, -1e20, 1e30, 3e38, 1e103]),
    ("sigx", dict(a=1.0), [1e20, -1e30, 3e38, 1e155, 1e300]),
]


@pytest.mark.parametrize("name,params,xs", GUARDED)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_no_nan_where_an_intermediate_overflows(mod, name, params, xs, dt):
    f = mod[name]
    with np.errstate(over="ignore"):
        x = np.array(xs, dt)
    x = x[np.isfinite(x)]
    if x.size == 0:
        pytest.skip("no such input in this dtype")
    y = f.forward(x, **params)
    assert np.all(np.isfinite(y))
    dx, g = f.backward(x, np.ones_like(x), **params)
    assert np.all(np.isfinite(dx)), dx
    for k, v in g.items():
        assert np.all(np.isfinite(v)), (k, v)
    # the true derivatives are 0 or below the smallest subnormal here,
    # except gelu_t's d/dx, which is 1 for x -> +inf and 0 for -inf
    ref_dx = [f.derivative("x").eval(float(v), **params) for v in x]
    np.testing.assert_allclose(dx.astype(np.float64), np.array(ref_dx, float),
                               rtol=1e-2, atol=1e-30)


def test_per_channel_layer_sums(mod):
    # the layer kernel (a[] per channel): a*x overflows in f32 in column 1
    f = mod["gauss_pc"]
    x = np.array([[3e38, 0.5, 1.0], [1e20, -0.25, -3e38]], np.float32)
    a = np.array([2.0, 2.0, 1e20], np.float32)
    dx, g = f.backward(x, np.ones_like(x), a=a)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(g["a"])), (dx, g)
    d = f.derivative("a")
    want = [sum(float(d.eval(float(x[r, c]), a=float(a[c]))) for r in range(2))
            for c in range(3)]
    np.testing.assert_allclose(g["a"], want, rtol=1e-5, atol=1e-30)


ISRU_SCALED = """
fn isrun(x; a = 1.5, c = 2) = x * rsqrt(c + a * x^2)
fn isrud(x; c = 2, a = 1.5) = x / sqrt(c + x^2 * a)
fn isrup(x; c = 2, a = 1.5) = x * (c + a * x^2)^-0.5
fn isrua(x; c = 2, a = 1.5) = x / sqrt(c + (x * sqrt(a))^2)
fn isruh(x; c = 2, a = 1.5) = x / hypot(sqrt(c), x * sqrt(a))
fn isruc(x; c = 2, a = 1.5) = x / sqrt(c + (x / (1 / sqrt(a)))^2)
"""


@pytest.mark.parametrize("name", ["isrun", "isrud", "isrup", "isrua",
                                  "isruh", "isruc"])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_isru_with_a_scaled_square(name, dt):
    # x / sqrt(c + a x^2): d/dx = c / v^1.5 was built by the product (or
    # quotient) rule, rsqrt(v) - a x^2 rsqrt(v) / v, which cancels where
    # a x^2 >> c (2.8e7 ulp at x = 1e4 in f64, 6.9e-18 for 2e-30 at x =
    # 1e10 in f32); diff.c's isru rule now takes c + s a^2 as well
    f = dnc.compile(ISRU_SCALED)[name]
    x = np.concatenate([np.logspace(0, 10, 41), -np.logspace(0, 10, 41)])
    x = x.astype(dt)
    a, c = float(dt(1.5)), float(dt(2.0))
    dx, g = f.backward(x, np.ones_like(x), a=a, c=c)
    worst = 0.0
    for xi, di in zip(x, dx):
        X = mpm.mpf(float(xi))
        v = mpm.mpf(c) + mpm.mpf(a) * X * X
        ref = mpm.mpf(c) / (v * mpm.sqrt(v))
        r = float(ref)
        if abs(r) < np.finfo(dt).tiny:
            continue
        worst = max(worst, float(abs(float(di) - ref)) / ulp(r, dt))
    assert worst <= 8, worst
