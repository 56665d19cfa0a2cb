"""test_numpy_args.py - what dnc's NumPy calls do with arguments at their
edges: each is either computed right or refused with an exception that
names the problem, never turned into something plausible and wrong (an
integer ctypes wraps, None read as NaN, a string parsed, a gradient of
the wrong length, points paired in the wrong order)."""
import numpy as np

import dnc
import pytest

from checks import ok, raises

m = dnc.compile("""
fn dyt(x; alpha = 0.5) = tanh(alpha * x)
fn derf_pc(x; alpha = 0.5, s[] = 0) = erf(alpha * x + s)
fn lin(x; a = 1, b = 0) = a * x + b
fn g(u; x = 1) = u * x
fn h(x; out = 1, dy = 2) = x * out + dy
""")
dyt, pc, lin = m["dyt"], m["derf_pc"], m["lin"]


def test_per_channel_length_checked_for_an_empty_input():
    e = np.zeros((0, 3))
    raises(ValueError, lambda: pc.forward(e, s=[1, 2]),
           "forward: 2 values for 3 channels, no rows", "3 channels")
    raises(ValueError, lambda: pc.backward(e, e, s=[1, 2]),
           "backward: 2 values for 3 channels, no rows", "3 channels")
    dx, g = pc.backward(e, e, s=[1, 2, 3])
    ok(dx.shape == (0, 3) and np.array_equal(g["s"], np.zeros(3)),
       "the right length: a zero gradient per channel", g)


def test_eval_and_fit_refuse_what_is_not_a_real_number():
    for bad in (None, "0.5", np.array([1 + 2j]), [1.0, None],
                np.ones(2, np.longdouble)):
        raises(TypeError, lambda: dyt.eval(bad), "eval(%r)" % (bad,),
               "real numbers")
        raises(TypeError, lambda: dyt.fit(bad, bad), "fit(%r)" % (bad,),
               "real numbers")
    ok(dyt.eval(True) == np.tanh(0.5) and
       np.array_equal(dyt.eval(np.array([1, 2], np.int8)),
                      dyt.eval([1.0, 2.0])),
       "bools and integers are numbers")


def test_fit_pairs_points_by_shape_not_by_size():
    x = np.linspace(-2, 2, 40).reshape(4, 10)
    y = 2 * x + 1
    raises(ValueError, lambda: lin.fit(x, y.reshape(10, 4)),
           "x (4, 10) and y (10, 4): not paired by flat order",
           "same shape")
    r = lin.fit(x, y)
    ok(r.converged and abs(r.values["a"] - 2) < 1e-12 and
       abs(r.values["b"] - 1) < 1e-12, "the same shape fits", r)


def test_ints_too_large_for_c_are_refused_not_wrapped():
    big = 2 ** 32 + 2  # as a C int, 2
    for kw in ({"threads": big}, {"opt_level": big}, {"math_bits": big + 22},
               {"stream_bytes": 2 ** 64}):
        raises(ValueError, lambda: dnc.Context(**kw), "Context(%r)" % kw,
               "is an int from")
    raises(ValueError, lambda: dyt.fit([0.0, 1.0], [0.0, 0.5],
                                       max_iter=2 ** 32 + 3),
           "fit(max_iter=2**32 + 3)", "max_iter")
    for kw in ({"threads": 1.5}, {"threads": True}, {"cpu": b"x86-64"}):
        raises(TypeError, lambda: dnc.Context(**kw), "Context(%r)" % kw)
    raises(TypeError, lambda: dnc.Context(threads=1).use_openmp(7),
           "use_openmp(7)", "str")


def test_numpy_integers_are_ints():
    ok(dnc.Context(threads=np.int64(2)).threads == 2, "threads=np.int64(2)")
    ok(dyt.derivative(order=np.int32(2)) is dyt.derivative(order=2),
       "derivative(order=np.int32(2)): the same cached derivative")
    ok(dyt.diff(order=np.int64(2)) == dyt.diff(order=2), "diff(order=int64)")
    r = dyt.fit([0.0, 1.0, 2.0], np.tanh([0.0, 1.0, 2.0]),
                max_iter=np.int64(1))
    ok(r.iterations <= 1, "fit(max_iter=np.int64(1))", r)
    raises(TypeError, lambda: dyt.diff(order=True), "order=True", "int")
    raises(TypeError, lambda: dyt.diff(order=2.0), "order=2.0", "int")


def test_wrt_of_another_type_is_named():
    for bad in (3, b"x", {"x"}):
        raises(TypeError, lambda: dyt.diff(bad), "diff(%r)" % (bad,), "wrt")
        raises(TypeError, lambda: dyt.derivative(bad),
               "derivative(%r)" % (bad,), "wrt")
    ok(dyt.derivative(["x", "alpha"]) is dyt.derivative("x,alpha"),
       "a list of names is the mixed derivative")


def test_parameters_named_like_the_arguments():
    x = np.array([1.0, 2.0])
    ok(np.array_equal(m["g"].forward(x, x=3.0), 3 * x),
       "g(u; x): x= sets the parameter, forward")
    ok(np.array_equal(m["g"].eval(x, x=3.0), 3 * x), "eval too")
    dx, gr = m["g"].backward(x, np.ones(2), x=3.0)
    ok(np.array_equal(dx, [3.0, 3.0]) and gr == {"x": 3.0}, "backward too",
       (dx, gr))
    h = m["h"]
    ok(np.array_equal(h.forward(x, out=3.0), 3 * x + 2),
       "h(x; out, dy): out= sets the parameter")
    o = np.empty(2)
    ok(h.forward(x, o, out=3.0, dy=0.0) is o and np.array_equal(o, 3 * x),
       "the output array then goes second")
    dx, gr = h.backward(x, np.ones(2), dy=1.0, out=2.0)
    ok(np.array_equal(dx, [2.0, 2.0]) and gr == {"out": 3.0, "dy": 2.0},
       "backward(x, dy, dy=...): dy= sets the parameter", (dx, gr))
    # for a function without such parameters the keywords are the arrays
    o = np.empty(2)
    ok(dyt.forward(x=x, out=o) is o and np.allclose(o, np.tanh(0.5 * x)),
       "forward(x=..., out=...)")
    dx, _ = dyt.backward(x=x, dy=np.ones(2))
    ok(np.allclose(dx, 0.5 / np.cosh(0.5 * x) ** 2), "backward(x=, dy=)")
    ok(np.allclose(dyt.eval(x=x), np.tanh(0.5 * x)), "eval(x=)")
    raises(TypeError, lambda: dyt.forward(x, o, out=o), "out twice", "twice")
    raises(TypeError, lambda: dyt.forward(), "no x", "missing x")
    raises(TypeError, lambda: dyt.backward(x), "no dy", "missing dy")


def test_out_that_is_not_a_numpy_array():
    x = np.ones(3, np.float32)
    raises(TypeError, lambda: dyt.forward(x, out=[0.0] * 3),
           "out=a list", "NumPy array")
    torch = pytest.importorskip("torch")
    raises(TypeError, lambda: dyt.forward(x, out=torch.zeros(3)),
           "out=a tensor of the right shape and dtype: named as a tensor",
           "not Tensor")


def test_masked_arrays_are_refused():
    x = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    raises(TypeError, lambda: dyt.forward(x), "forward", "masked array")
    raises(TypeError, lambda: dyt.backward(np.ones(3), x), "backward's dy",
           "dy is a masked array")
    raises(TypeError, lambda: dyt.eval(x), "eval", "masked array")
    raises(TypeError, lambda: lin.fit(x, 2 * x), "fit: the masked point "
           "would be fitted", "masked array")
    ok(np.allclose(lin.fit(x.compressed(), 2 * x.compressed()).values["a"],
                   2), "the unmasked points fit")


@pytest.mark.parametrize("cpu", ["x86-64", "x86-64-v2"])
def test_float16_on_a_cpu_without_f16c(cpu):
    """LLVM converts f16 there through libgcc's __extendhfsf2 and
    __truncsfhf2, which a libdnc that ctypes loaded (RTLD_LOCAL) must
    still find: the kernels ran into 'Symbols not found'."""
    import platform
    if platform.machine() != "x86_64":
        pytest.skip("x86-64 CPU names")
    f = dnc.Context(cpu=cpu, threads=1).compile(
        "fn dyt(x; alpha = 0.5) = tanh(alpha * x)")["dyt"]
    x = np.linspace(-6, 6, 101).astype(np.float16)
    y = f.forward(x, alpha=0.7)
    ref = np.tanh(0.7 * x.astype(np.float64))
    ok(y.dtype == np.float16 and
       np.max(np.abs(y - ref)) <= np.finfo(np.float16).eps,
       "%s: f16 forward" % cpu, lambda: str(y - ref))
    dx, g = f.backward(x, np.ones_like(x), alpha=0.7)
    dref = 0.7 / np.cosh(0.7 * x.astype(np.float64)) ** 2
    ok(np.max(np.abs(dx - dref)) <= np.finfo(np.float16).eps and
       abs(g["alpha"] - np.sum(x.astype(np.float64) /
                               np.cosh(0.7 * x.astype(np.float64)) ** 2))
       < 1e-3, "%s: f16 backward" % cpu, lambda: str((dx - dref, g)))


def test_source_and_huge_integers_are_named():
    raises(TypeError, lambda: dnc.compile(None), "compile(None)",
           "the source is a str or bytes, not NoneType")
    raises(TypeError, lambda: dnc.compile(3), "compile(3)",
           "not int")
    ok(len(list(dnc.compile(bytearray(b"fn f(x) = x")))) == 1,
       "a bytearray source compiles")
    x = np.ones(3, np.float32)
    raises(ValueError, lambda: dyt.forward(x, alpha=10 ** 400),
           "an integer too large for a double",
           "'alpha' is an integer of 401 digits, too large for a double")
    ok(np.allclose(dyt.forward(x, alpha=10 ** 30), np.ones(3)),
       "an integer a double holds is taken")
    raises(TypeError, lambda: dyt.forward(x, alpha="a" * 500),
           "a long string is named, shortened", "...")


def test_bfloat16_numbers_are_numbers():
    """bfloat16 is one of the dtypes dnc's NumPy calls take, but as a
    parameter's value (a scalar, a per-channel array: a bfloat16 model's
    values) and as fit's start, gain and bounds it was refused, "'alpha'
    takes a number ..., not 0.300781", while float16's were taken:
    ml_dtypes' scalar is no np.floating and its dtype's kind is "V". Now
    they are the numbers they hold, as float16's are."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = ml_dtypes.bfloat16
    x = np.linspace(-3, 3, 24).reshape(6, 4).astype(np.float32)
    s = np.array([0.25, -0.5, 0.75, 0.0])
    for sv in (s.astype(bf), s.astype(np.dtype(bf).newbyteorder())):
        y = pc.forward(x, alpha=bf(0.75), s=sv)
        ok(np.array_equal(y, pc.forward(x, alpha=0.75, s=s)),
           "bfloat16 alpha and per-channel s: the same values", sv.dtype)
        dx, g = pc.backward(x, np.ones_like(x), alpha=bf(0.75), s=sv)
        dx2, g2 = pc.backward(x, np.ones_like(x), alpha=0.75, s=s)
        ok(np.array_equal(dx, dx2) and g["alpha"] == g2["alpha"] and
           np.array_equal(g["s"], g2["s"]), "backward: the same values")
    ok(dyt.eval(1.0, alpha=bf(0.5)) == dyt.eval(1.0, alpha=0.5),
       "eval's parameter")
    xs = np.linspace(-2, 2, 41)
    ys = np.tanh(0.7 * xs)
    want = dyt.fit(xs, ys, start={"alpha": 0.3}).values["alpha"]
    for kw in ({"start": {"alpha": bf(0.3)}},
               {"start": {"alpha": 0.3}, "bounds": {"alpha": (bf(0),
                                                              bf(2))}}):
        ok(dyt.fit(xs, ys, **kw).values["alpha"] == pytest.approx(want),
           "fit with bfloat16 %s" % sorted(kw))
    r = dyt.fit(xs, 2 * ys, start={"alpha": 0.3}, gain=bf(1.5))
    ok(r.gain == pytest.approx(2) and
       r.values["alpha"] == pytest.approx(0.7), "fit's gain start in bf16")
    # other dtypes still refused, the message naming the dtype
    raises(TypeError, lambda: dyt.forward(x, alpha=np.complex64(1)),
           "a complex parameter", "complex64")
    raises(TypeError, lambda: dyt.fit(xs, ys, gain=np.complex64(1)),
           "a complex gain", "gamma's start")


def test_byte_swapped_arrays_are_named():
    """A big-endian array (read from a file or a network buffer) is
    refused, but the message said "not >f4", and for a big-endian bfloat16
    "not >V2": now it says which dtype in which byte order, and how to
    convert it."""
    dts = [np.dtype(">f4"), np.dtype(">f8"), np.dtype(">f2")]
    try:
        import ml_dtypes
        dts.append(np.dtype(ml_dtypes.bfloat16).newbyteorder(">"))
    except ImportError:
        pass
    if np.dtype("=f4").byteorder == ">" or np.dtype(">f4").isnative:
        pytest.skip("a big-endian machine")
    for d in dts:
        name = d.newbyteorder("=").name
        a = np.ones(3, d)
        raises(TypeError, lambda: dyt.forward(a), "x of %s" % d.str,
               "big-endian %s ('%s'); the kernels take the machine's byte "
               "order: x.astype(x.dtype.newbyteorder('='))" % (name, d.str))
        raises(TypeError, lambda: dyt.backward(np.ones(3), a), "dy of " +
               d.str, "not big-endian %s" % name)
        raises(ValueError, lambda: dyt.forward(np.ones(3, name), out=a),
               "out of " + d.str, "not (3,) big-endian %s" % name)
        y = dyt.forward(a.astype(a.dtype.newbyteorder("=")))
        ok(y.dtype == np.dtype(name) and np.allclose(
            y.astype(np.float64), np.tanh(0.5), rtol=1e-2),
           "the remedy runs (%s)" % d.str)
    raises(TypeError, lambda: dyt.forward(np.ones(3, ">c8")),
           "a big-endian complex", "not >c8")
