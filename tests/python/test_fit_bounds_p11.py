"""test_fit_bounds_p11.py - Function.fit(bounds={name: (lower, upper)}):
a fit whose minimum without bounds lies outside them ends on the bound,
where scipy.optimize.least_squares(bounds=...) ends (compared when scipy
is installed) and where the fit that holds that parameter there puts the
others; a fit within its bounds is the fit without them; .at_bound names
a parameter at a bound, whose .se is NaN; every malformed or impossible
bound is refused with the exception docs/python.md names."""
import math

import numpy as np
import pytest

import dnc

SRC = """
fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)
fn dyisru(x; beta = 1) = x / sqrt(beta + x^2)
fn decay(x; a = 1, b = 1) = a * exp(-b * x)
"""


@pytest.fixture(scope="module")
def mod():
    return dnc.compile(SRC)


def erf_points():
    x = np.linspace(-5, 5, 60)
    return x, np.array([math.erf(0.8 * v - 0.3) for v in x])


def test_lower_bound_active_matches_fixed_fit_and_true_minimum(mod):
    f = mod["derf"]
    x, y = erf_points()
    r = f.fit(x, y, start={"s": 0.5}, bounds={"s": (0, 1)})
    assert r.converged, r
    assert r.values["s"] == 0 and r.at_bound == {"s": "lower"}
    assert math.isnan(r.se["s"])
    rf = f.fit(x, y, params=["alpha"], start={"s": 0})
    assert r.values["alpha"] == pytest.approx(rf.values["alpha"], rel=1e-13)
    assert r.se["alpha"] == pytest.approx(rf.se["alpha"], rel=1e-9)
    # the root of dS/dalpha at s = 0, by mpmath to 40 digits
    assert r.values["alpha"] == pytest.approx(0.73409551823719597533,
                                              rel=1e-14)
    assert "s at its lower bound" in repr(r)


def test_against_scipy_least_squares(mod):
    opt = pytest.importorskip("scipy.optimize")
    special = pytest.importorskip("scipy.special")
    f = mod["derf"]
    x = np.linspace(-4, 4, 200)
    rng = np.random.default_rng(0)
    y = special.erf(0.8 * x - 0.3) + 0.01 * rng.standard_normal(x.size)
    cases = [{"s": (0, 1)}, {"alpha": (None, 0.5)},
             {"alpha": (1, 2), "s": (-0.1, 0.1)}, {"s": (-1, 1)},
             {"alpha": (0, None), "s": (None, -0.5)}]
    for b in cases:
        lo = [b.get(n, (None, None))[0] for n in ("alpha", "s")]
        hi = [b.get(n, (None, None))[1] for n in ("alpha", "s")]
        lo = np.array([-np.inf if v is None else v for v in lo])
        hi = np.array([np.inf if v is None else v for v in hi])
        p0 = np.clip([0.5, 0.0], lo, hi)
        r = f.fit(x, y, start={"alpha": p0[0], "s": p0[1]}, bounds=b)
        ls = opt.least_squares(lambda p: special.erf(p[0] * x + p[1]) - y,
                               p0, bounds=(lo, hi), xtol=1e-15, ftol=1e-15,
                               gtol=1e-15)
        assert r.converged, (b, r)
        got = np.array([r.values["alpha"], r.values["s"]])
        assert np.allclose(got, ls.x, rtol=1e-8, atol=1e-8), (b, got, ls.x)
        # the same parameters at a bound as scipy's active_mask
        for i, n in enumerate(("alpha", "s")):
            want = {-1: "lower", 1: "upper", 0: None}[int(ls.active_mask[i])]
            assert r.at_bound.get(n) == want, (b, r.at_bound, ls.active_mask)
        # never worse than scipy's point
        assert r.ssq <= 2 * ls.cost * (1 + 1e-12), (b, r.ssq, ls.cost)


def test_upper_bound_on_gain(mod):
    f = mod["dyisru"]
    x = np.linspace(-5, 5, 60)
    y = 3 * x / np.sqrt(2 + x * x)
    r = f.fit(x, y, gain=True, bounds={"gamma": (None, 2.5),
                                       "beta": (0, None)})
    assert r.converged, r
    assert r.gain == 2.5 and r.at_bound == {"gamma": "upper"}
    assert math.isnan(r.gain_se) and r.se["beta"] > 0


def test_dyisru_beta_kept_nonnegative(mod):
    f = mod["dyisru"]
    v = 1 + 0.1 * np.arange(40)
    x = np.concatenate([-v, v])
    y = x / np.sqrt(x * x - 0.3)
    assert f.fit(x, y).values["beta"] == pytest.approx(-0.3, abs=1e-12)
    r = f.fit(x, y, bounds={"beta": (0, None)})
    assert r.converged and r.values["beta"] == 0
    assert r.at_bound == {"beta": "lower"}


def test_bounds_not_reached_change_nothing(mod):
    f = mod["derf"]
    x, y = erf_points()
    u = f.fit(x, y)
    for b in ({"alpha": (0, 5), "s": (-1, 1)},
              {"alpha": (0, math.inf), "s": (-math.inf, 0)},
              {"alpha": [None, 10]}, {}):
        r = f.fit(x, y, bounds=b)
        assert r.converged and r.at_bound == {}
        for n in ("alpha", "s"):
            assert r.values[n] == pytest.approx(u.values[n], rel=1e-13)
            assert r.se[n] == pytest.approx(u.se[n], rel=1e-9)


@pytest.mark.parametrize("kw, exc, text", [
    (dict(bounds=[(0, 1)]), TypeError, "bounds is a dict"),
    (dict(bounds={"alpha": 0}), TypeError, "is (lower, upper)"),
    (dict(bounds={"alpha": (0, 1, 2)}), TypeError, "is (lower, upper)"),
    (dict(bounds={"alpha": "01"}), TypeError, "is (lower, upper)"),
    (dict(bounds={"alpha": ("0", 1)}), TypeError,
     "lower bound is a number or None, not str"),
    (dict(bounds={"alpha": (0, True)}), TypeError,
     "upper bound is a number or None, not bool"),
    (dict(bounds={"alpa": (0, 1)}), ValueError,
     "bounds on 'alpa', which is not a parameter (its parameters: alpha, s)"),
    (dict(bounds={"gamma": (0, 1)}), ValueError,
     "the gain gamma is fitted with gain=True"),
    (dict(params=["alpha"], bounds={"s": (0, 1)}), ValueError,
     "bounds on 's', which is not fitted"),
    (dict(bounds={"alpha": (2, 1)}), dnc.ArgumentError,
     "the lower bound of 'alpha' (2) is above its upper bound (1)"),
    (dict(bounds={"alpha": (1, 1)}), dnc.ArgumentError,
     "the bounds of 'alpha' are equal (1)"),
    (dict(bounds={"s": (math.nan, 1)}), dnc.ArgumentError,
     "the lower bound of 's' is NaN"),
    (dict(bounds={"s": (None, -math.inf)}), dnc.ArgumentError,
     "the upper bound of 's' is -inf"),
    (dict(bounds={"alpha": (1, None)}), dnc.ArgumentError,
     "the start of 'alpha', 0.5, is outside its bounds [1, inf]"),
    (dict(start={"s": 2}, bounds={"s": (-1, 1)}), dnc.ArgumentError,
     "the start of 's', 2, is outside its bounds [-1, 1]"),
])
def test_refused(mod, kw, exc, text):
    x, y = erf_points()
    with pytest.raises(exc) as e:
        mod["derf"].fit(x, y, **kw)
    assert text in str(e.value)
    if exc is dnc.ArgumentError:
        assert isinstance(e.value, ValueError)


def test_a_free_gains_number_is_no_start_to_check(mod):
    # gain=3 with gamma bounded to (None, 2) was refused ("the start of
    # 'gamma', 3, is outside its bounds"), though a free gamma starts at
    # the least-squares gain within its bounds and the number is only a
    # fallback; it fits, gamma at its bound
    x, y = erf_points()
    r = mod["derf"].fit(x, 3 * y, gain=3, bounds={"gamma": (None, 2)})
    assert r.gain <= 2 and r.at_bound.get("gamma") == "upper", \
        (r.gain, r.at_bound)


@pytest.mark.parametrize("x,y,status", [
    ([0.5], [0.4], "toofew"),                      # 1 point, 2 parameters
    ([0.0, 1.0, math.nan], [0.0, 0.5, 0.9], "nonfinite"),  # a NaN point
])
def test_a_fit_that_never_ran_has_no_residuals_and_no_bound(mod, x, y,
                                                           status):
    # they were rms = max_abs = ssq = 0.0, as if every point were fitted
    # exactly, and s (started on its bound 0) "ended" at its lower bound
    r = mod["derf"].fit(np.array(x), np.array(y), bounds={"s": (0, 1)})
    assert r.status == status, r
    assert math.isnan(r.rms) and math.isnan(r.max_abs) \
        and math.isnan(r.ssq), (r.rms, r.max_abs, r.ssq)
    assert r.at_bound == {}, r.at_bound
