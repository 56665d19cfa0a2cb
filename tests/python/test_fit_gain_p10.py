"""test_fit_gain_p10.py - Function.fit(gain=...): gamma f(x) fitted with
gamma free, as `dnc fit --gain` and dnc_fit_options.gain do (fitting a
function to a LayerNorm's output, whose scale the norm's weight takes);
and a start that is not finite, refused, and Fit.bad_param where a
derivative is not finite at the start."""
import math

import numpy as np
import pytest

import dnc
from checks import ok


def test_gain_fits_gamma_and_the_parameters():
    f = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    x = np.linspace(-4, 4, 200)
    y = 1.7 * np.tanh(0.8 * x)
    r = f.fit(x, y, gain=True)
    ok(r.converged and abs(r.values["alpha"] - 0.8) < 1e-12
       and abs(r.gain - 1.7) < 1e-12, "alpha 0.8 and gamma 1.7: %r" % r)
    ok(r.gain_se is not None and r.gain_se >= 0, "gamma's standard error")
    ok("gamma = 1.7" in repr(r), "repr shows gamma")
    r2 = f.fit(x, y, gain=3)
    ok(abs(r2.gain - 1.7) < 1e-9, "from gamma = 3 too")
    plain = f.fit(x, y)
    ok(plain.gain is None and plain.gain_se is None and plain.rms > 0.1,
       "without gain: f alone, no gamma")


def test_gain_matches_the_cli_gain():
    # the same solver as `dnc fit --gain`: the noisy fit's values agree
    rng = np.random.default_rng(1)
    f = dnc.compile("fn derf(x; alpha = 0.5, shift = 0) = "
                    "erf(alpha * x + shift)")["derf"]
    x = rng.normal(0, 2, 4000)
    y = 0.9 * np.array([math.erf(0.6 * v + 0.1) for v in x]) \
        + rng.normal(0, 1e-3, x.size)
    r = f.fit(x, y, gain=True)
    ok(r.converged and abs(r.values["alpha"] - 0.6) < 1e-2
       and abs(r.values["shift"] - 0.1) < 1e-2 and abs(r.gain - 0.9) < 1e-2,
       "noisy Derf: %r" % r)


def test_gain_that_is_not_determined_is_named():
    # gamma * a * x: gamma and a are one product
    f = dnc.compile("fn lin(x; a = 1) = a * x")["lin"]
    x = np.linspace(-1, 1, 50)
    r = f.fit(x, 2 * x, gain=True)
    ok(r.status == "illposed" and r.bad_param in ("a", "gamma"),
       "a and gamma not both determined: %s, %s" % (r.status, r.bad_param))


@pytest.mark.parametrize("bad,exc", [("yes", TypeError), ([1.0], TypeError),
                                     (float("nan"), ValueError),
                                     (float("inf"), ValueError)])
def test_bad_gain_is_refused(bad, exc):
    f = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    x = np.linspace(-1, 1, 10)
    with pytest.raises(exc, match="gain"):
        f.fit(x, np.tanh(x), gain=bad)


def test_gain_start_is_the_least_squares_gain_else_the_number():
    # what the docstring says: the least-squares gain where it is within
    # gamma's bounds (the number ignored), the number where it is not
    f = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    x = np.linspace(-4, 4, 50)
    y = -3 * np.tanh(0.7 * x)
    ls = float(np.dot(y, np.tanh(0.5 * x)) / np.dot(np.tanh(0.5 * x),
                                                     np.tanh(0.5 * x)))
    r = f.fit(x, y, gain=2, max_iter=0)
    ok(abs(r.gain - ls) < 1e-12, "unbounded: the least-squares gain %g, "
       "not 2 (%r)" % (ls, r.gain))
    for g, want in ((2, 2.0), (True, 1.0)):
        r = f.fit(x, y, gain=g, bounds={"gamma": (0, None)}, max_iter=0)
        ok(r.gain == want, "gamma >= 0, gain=%r: from %g (%r)"
           % (g, want, r.gain))
    doc = dnc.Function.fit.__doc__
    ok("least-squares gain" in doc and "from that value" not in doc,
       "the docstring says where gamma starts")


def test_a_start_that_is_not_finite_is_refused_naming_it():
    # it was a fit that "ran": status nonfinite, "not finite at the start"
    f = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    x = np.linspace(-1, 1, 10)
    for v in (math.nan, math.inf):
        with pytest.raises(ValueError, match="the start of 'alpha' is"):
            f.fit(x, np.tanh(x), start={"alpha": v})


def test_a_derivative_that_is_not_finite_names_its_parameter():
    # the C result and `dnc fit` name a; Fit.bad_param was None
    f = dnc.compile("fn power(x; a = 1, b = 1) = sqrt(a * abs(x)) * b")[
        "power"]
    x = np.array([0.0, 1.0, 2.0, 3.0])
    r = f.fit(x, np.sqrt(x))
    ok(r.status == "nonfinite" and r.bad_point == 0 and r.bad_param == "a",
       "nonfinite at point 0, derivative in a: %s %r %r"
       % (r.status, r.bad_point, r.bad_param))
    r = f.fit(np.array([-1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]),
              start={"a": -1.0})
    ok(r.status == "nonfinite" and r.bad_param is None,
       "f itself not finite: no parameter (%s %r)" % (r.status, r.bad_param))


def test_a_gain_past_the_double_range_is_not_the_start():
    """The least-squares gain, fy/ff in long double, can be past double's
    range (a = 1e-300 against points of 1e10): an infinite gain is within
    gamma's bounds when they have no top, and the fit stopped at once,
    'not finite at the start'; the fallback is the start there."""
    f = dnc.compile("fn f(x; a = 1) = a * x")["f"]
    x = np.linspace(1, 2, 20)
    r = f.fit(x, 1e10 * np.tanh(x), start={"a": 1e-300}, gain=True,
              max_iter=0)
    assert r.status != "nonfinite", r.message
    assert r.gain == 1.0, r.gain
