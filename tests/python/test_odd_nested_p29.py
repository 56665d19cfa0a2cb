"""test_odd_nested_p29.py - the kernels' gradients of odd extensions
sign(u) g(|u|) at u = 0 in the forms round twenty-eight left at 0, and of
abs(a x)^p by a where x is 0, against their true values:

- sign and abs of different multiples of one term, sign(a x) log1p(|2 a
  x|): d/dx 0 at x = 0 (it is 2a), d/da 0 for every x at a = 0 (2x);
- an odd power of sign, sign(x)^3 g(|x|);
- an abs within g, sign(x) |k |x|| (which is |k| x), and an odd
  extension within another, sign(x) log1p(|sign(x) log1p(|x|)|);
- abs(a x)^0.5 and sqrt(abs(a x)) by a: NaN (0 * inf) at x = 0, where
  the function is 0 for every a, so that one zero element made the
  gradient of a over the whole batch NaN.

Through the NumPy API (dnc.Function.backward: the JIT's backward
kernels) in float32, float64 and bfloat16."""
import math

import numpy as np
import pytest

import dnc

from checks import numpy_float_dtypes  # noqa: E402

DTYPES = numpy_float_dtypes()

SRC = """
fn twoscale(x; a = 1.5) = sign(a * x) * log1p(abs(2 * a * x))
fn cube(x) = sign(x)^3 * log1p(abs(x))
fn kabs(x; k = -2) = sign(x) * abs(k * abs(x))
fn nested(x) = sign(x) * log1p(abs(sign(x) * log1p(abs(x))))
fn nested_a(x; a = 1.5) = sign(x) * tanh(abs(a * sign(x) * log1p(abs(x))))
fn root(x; a = 1.5) = abs(a * x)^0.5
fn sqroot(x; a = 1.5) = sqrt(abs(a * x))
"""


def close(g, v, tol):
    return abs(g - v) <= tol * abs(v) + 1e-12


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_slope_at_zero(dtype):
    m = dnc.compile(SRC)
    x = np.array([0.0, -0.0, -2.0], dtype=dtype)
    dy = np.ones_like(x)
    want = {
        "twoscale": [3.0, 3.0, 3.0 / 7.0],
        "cube": [1.0, 1.0, 1.0 / 3.0],
        "kabs": [2.0, 2.0, 2.0],
        "nested": [1.0, 1.0, 1.0 / (3.0 * (1.0 + math.log(3.0)))],
        "nested_a": [1.5, 1.5, 0.5 / math.cosh(1.5 * math.log(3.0)) ** 2],
    }
    tol = 1e-2 if dtype not in (np.float32, np.float64) else 1e-5
    for name, w in want.items():
        dx, _ = m[name].backward(x, dy)
        got = np.asarray(dx, dtype=np.float64)
        for g, v in zip(got, w):
            assert close(g, v, tol), (name, got, w)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_parameter_gradient_where_x_is_zero(dtype):
    m = dnc.compile(SRC)
    x = np.array([0.0, 4.0], dtype=dtype)
    dy = np.ones_like(x)
    tol = 1e-2 if dtype not in (np.float32, np.float64) else 1e-5
    # d/da sqrt(|a x|) = sqrt(|x|) / (2 sqrt(a)): 0 at x = 0, 1/sqrt(1.5)
    # at 4; summed over the batch, not NaN
    for name in ("root", "sqroot"):
        _, grads = m[name].backward(x, dy)
        g = float(grads["a"])
        assert close(g, 1 / math.sqrt(1.5), tol), (name, g)
        _, grads = m[name].backward(x[:1], dy[:1])
        assert float(grads["a"]) == 0.0, (name, grads)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_scale_zero(dtype):
    # at a = 0: sign(a x) log1p(|2 a x|) has d/da 2x for every x (it was
    # 0), abs(a x)^0.5 has d/dx 0 for every x (it was NaN)
    m = dnc.compile(SRC.replace("a = 1.5", "a = 0"))
    x = np.array([0.5, -2.0], dtype=dtype)
    dy = np.ones_like(x)
    tol = 1e-2 if dtype not in (np.float32, np.float64) else 1e-5
    _, grads = m["twoscale"].backward(x, dy)
    assert close(float(grads["a"]), -3.0, tol), grads
    dx, _ = m["root"].backward(x, dy)
    assert list(np.asarray(dx, dtype=np.float64)) == [0.0, 0.0], dx


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_inner_sign_of_a_zero_multiple(dtype):
    # sign(x) log1p(|sign(b x) log1p(|x|)|) at b = 0 is 0 for every x
    # (sign(b x) is 0): d/dx 0 everywhere; the inner |sign(b x) m| had
    # been taken as |m| with b's factor left out, d/dx 1 / (1 + |x|)
    src = "fn f(x; b = %s) = sign(x) * log1p(abs(sign(b * x) * " \
        "log1p(abs(x))))"
    x = np.array([0.0, 1.0, -2.0, 0.25], dtype=dtype)
    dy = np.ones_like(x)
    dx, _ = dnc.compile(src % "0")["f"].backward(x, dy)
    assert list(np.asarray(dx, dtype=np.float64)) == [0.0] * 4, dx
    # b = -1: |sign(-x) m| is |m|, the slopes of log1p(log1p(|x|))
    dx, _ = dnc.compile(src % "-1")["f"].backward(x, dy)
    xs = np.abs(x.astype(np.float64))
    want = 1 / ((1 + np.log1p(xs)) * (1 + xs))
    tol = 1e-2 if dtype not in (np.float32, np.float64) else 1e-5
    for g, v in zip(np.asarray(dx, dtype=np.float64), want):
        assert close(g, v, tol), (dx, want)
