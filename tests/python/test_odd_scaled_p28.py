"""test_odd_scaled_p28.py - the kernels' gradients of two kinds of
function a researcher writes, against their true values:

- the odd extension sign(x) g(|x|) (the symlog sign(x) log1p(|x|),
  sign(x) |x|^p) at x = 0 exactly, where its slope is g'(0): the product
  rule's sign(0)^2 g'(0) gave 0 (NaN for |x|^p, p < 1), so every element
  that was exactly 0 got no gradient;
- a parameter scaling input and output (atan(a x) / a, softplus(b x) / b,
  cap tanh(x / cap), g erf(x / g)) where a x overflows the float (x =
  3e38 in float32): g - u g'(u) was inf * 0 = NaN there, where the true
  derivative is finite; and a x / hypot(c, a x) by a, whose x c
  overflowed (inf, where it is 7e-77).

Through the NumPy API (dnc.Function.backward: the JIT's backward
kernels) in float32, float64 and bfloat16."""
import math

import numpy as np
import pytest

import dnc

from checks import numpy_float_dtypes  # noqa: E402

DTYPES = numpy_float_dtypes()

ODD = """
fn symlog(x) = sign(x) * log1p(abs(x))
fn symlog_a(x; a = 2) = sign(x) * log1p(a * abs(x)) / a
fn expsat(x; a = 1.5) = 2 * sign(x) * (1 - exp(-a * abs(x)))
fn sqrtpow(x; p = 0.5) = sign(x) * abs(x)^p
fn jump(x) = sign(x) * (1 + abs(x))
"""


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_odd_extension_slope_at_zero(dtype):
    m = dnc.compile(ODD)
    x = np.array([0.0, -0.0, -2.0], dtype=dtype)
    dy = np.ones_like(x)
    want = {
        "symlog": [1.0, 1.0, 1 / 3],
        "symlog_a": [1.0, 1.0, 0.2],
        "expsat": [3.0, 3.0, 3 * math.exp(-3.0)],
        "sqrtpow": [math.inf, math.inf, 0.5 / math.sqrt(2.0)],
        # a jump at 0: sign' = 0 there, as before
        "jump": [0.0, 0.0, 1.0],
    }
    for name, w in want.items():
        dx, _ = m[name].backward(x, dy)
        got = np.asarray(dx, dtype=np.float64)
        for g, v in zip(got, w):
            if math.isinf(v):
                assert g == v, (name, got)
            else:
                assert abs(g - v) <= 1e-2 * abs(v) + 1e-12, (name, got, w)
    # the parameters' gradients at 0 are 0 (f is 0 there for every value)
    _, grads = m["symlog_a"].backward(x[:2], dy[:2])
    assert grads["a"] == 0.0


SCALED = """
fn at(x; a = 2) = atan(a * x) / a
fn sp(x; b = 2) = softplus(b * x) / b
fn cap(x; cap = 0.25) = cap * tanh(x / cap)
fn er(x; g = 0.25) = g * erf(x / g)
fn th(x; a = 2) = tanh(a * x) / a
fn hy(x; a = 0.7, c = 1.5) = a * x / hypot(c, a * x)
"""


@pytest.mark.parametrize("dtype", [t for t in DTYPES if t is not np.float64],
                         ids=lambda t: np.dtype(t).name)
def test_scaled_parameter_where_the_argument_overflows(dtype):
    m = dnc.compile(SCALED)
    x = np.array([3e38, -3e38], dtype=dtype)
    dy = np.ones_like(x)
    # d/dp for one element at a time, p's true derivative there:
    # atan: -(pi/2)/a^2 sign(x); softplus: 0; cap, erf: sign(x);
    # tanh: -sign(x)/a^2
    want = {("at", "a"): -math.pi / 8, ("sp", "b"): 0.0,
            ("cap", "cap"): 1.0, ("er", "g"): 1.0, ("th", "a"): -0.25}
    for (name, p), w in want.items():
        for i, s in enumerate((1.0, -1.0)):
            _, grads = m[name].backward(x[i:i + 1], dy[i:i + 1])
            g = float(grads[p])
            assert not math.isnan(g), (name, p, s)
            assert abs(g - s * w) <= 1e-3 * abs(w) + 1e-12, (name, p, s, g)
    # a x / hypot(c, a x) by a: c^2 x / h^3, 7e-77 (0 in float32); a' c
    # = x c overflowed, inf
    for i in range(2):
        _, grads = m["hy"].backward(x[i:i + 1], dy[i:i + 1])
        assert grads["a"] == 0.0, grads
