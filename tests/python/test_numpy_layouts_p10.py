"""An embedder's odd arrays through the NumPy API: every layout NumPy makes
(sliced, transposed, Fortran order, reversed, broadcast with stride 0,
misaligned, read-only inputs, 0-d, empty, 3-D) gives the element-wise
result of the contiguous copy, bit for bit, forward and backward, with
and without a per-channel parameter; dtypes outside float32, float64,
float16 and bfloat16 are refused, never reinterpreted."""
import numpy as np
import pytest

import dnc
from checks import ok

SRC = ("fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
       "fn pc(x; s[] = 1.0, a = 0.25) = erf(s * x + a)\n")


@pytest.fixture(scope="module")
def mod():
    return dnc.compile(SRC)


def _base(dtype):
    return (np.arange(60, dtype=np.float64).reshape(6, 10) / 7 - 4).astype(dtype)


def _misaligned(a):
    """a's values in a buffer whose data is not aligned to the itemsize"""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    v = np.frombuffer(raw.data, a.dtype, a.size, 1).reshape(a.shape)
    v[...] = a
    return v


LAYOUTS = {
    "sliced": lambda a: a[1:5, 2:9],
    "strided": lambda a: a[:, ::3],
    "transposed": lambda a: a.T,
    "fortran": np.asfortranarray,
    "reversed": lambda a: a[::-1, ::-2],
    "broadcast": lambda a: np.broadcast_to(a[2], (4, 10)),
    "misaligned": _misaligned,
    "readonly": lambda a: (lambda b: (b.setflags(write=False), b)[1])(a.copy()),
    "3d": lambda a: a.reshape(3, 2, 10)[:, ::-1],
    "0d": lambda a: a[2, 3][()],
    "empty": lambda a: a[:0],
    "empty cols": lambda a: a[:, :0],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_match_the_contiguous_copy(mod, dtype, layout):
    x = LAYOUTS[layout](_base(dtype))
    xc = np.array(x, order="C")  # a copy, 0-d stays 0-d
    f = mod["dyt"]
    y = f.forward(x)
    assert y.dtype == xc.dtype and y.shape == xc.shape
    assert np.array_equal(y, f.forward(xc), equal_nan=True)
    dy = np.ones_like(xc)
    dx, g = f.backward(x, dy)
    dxc, gc = f.backward(xc, dy)
    assert np.array_equal(dx, dxc)
    assert g["alpha"] == pytest.approx(gc["alpha"], rel=1e-6, abs=1e-6)
    if xc.ndim >= 1:
        s = np.linspace(0.5, 1.5, xc.shape[-1])
        yp = mod["pc"].forward(x, s=s)
        assert np.array_equal(yp, mod["pc"].forward(xc, s=s))


@pytest.mark.parametrize("dtype", [">f4", ">f8", np.complex64, np.longdouble,
                                   object])
def test_other_dtypes_are_refused(mod, dtype):
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
        mod["dyt"].forward(np.ones(3, dtype=dtype))


def test_bfloat16_arrays():
    """ml_dtypes' bfloat16 arrays (JAX's) run libdnc's bf16 kernels: y is
    f computed in f32 and rounded once, as torch's bfloat16 gives; dx and
    the gradients as f32's on the same values; out= and views work."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = ml_dtypes.bfloat16
    x = np.linspace(-6, 6, 101).astype(bf)
    f = dnc.compile(SRC)["dyt"]
    y = f.forward(x, alpha=0.7)
    want = np.tanh(np.float32(0.7) * x.astype(np.float32)).astype(bf)
    ok(y.dtype == x.dtype and np.array_equal(y.astype(np.float32),
                                            want.astype(np.float32)),
       "bf16 y is f32's rounded once")
    out = np.empty_like(x)
    f.forward(x[::2], out[:51], alpha=0.7)
    ok(np.array_equal(out[:51].astype(np.float32),
                      want[::2].astype(np.float32)), "strided x, out=")
    dy = np.linspace(1, 2, 101).astype(bf)
    dx, g = f.backward(x, dy, alpha=0.7)
    x32, dy32 = x.astype(np.float32), dy.astype(np.float32)
    dx32, g32 = f.backward(x32, dy32, alpha=0.7)
    ok(dx.dtype == x.dtype and np.allclose(dx.astype(np.float32), dx32,
                                           rtol=2 ** -7, atol=0),
       "dx within bf16's rounding of f32's")
    ok(abs(g["alpha"] - g32["alpha"]) <= 1e-3 * abs(g32["alpha"]),
       "alpha's gradient as f32's on the same values (bf16's shorter math)",
       (g["alpha"], g32["alpha"]))
    with pytest.raises(TypeError, match="bfloat16"):
        f.forward(np.ones(3, dtype=np.dtype(bf).newbyteorder()))
