"""Read-only arrays are never written (issue 20, item 8): forward(x, out=...)
with an out that numpy marks read-only (a view of a bytes object, or
writeable=False) raises ValueError and leaves the memory as it was."""
import numpy as np
import pytest

import dnc

SRC = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"


@pytest.fixture(scope="module")
def dyt():
    return dnc.compile(SRC)["dyt"]


def test_out_over_bytes_is_refused(dyt):
    raw = bytes(12)
    out = np.frombuffer(raw, np.float32)
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="read-only"):
        dyt.forward(x, out=out)
    assert raw == bytes(12)


def test_out_not_writeable_is_refused(dyt):
    out = np.zeros(4, np.float64)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dyt.forward(np.ones(4), out=out)
    assert not out.any()


def test_read_only_input_in_place_is_refused(dyt):
    x = np.arange(4, dtype=np.float32)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dyt.forward(x, out=x)
    assert list(x) == [0, 1, 2, 3]


def test_read_only_input_is_fine(dyt):
    x = np.arange(4, dtype=np.float32)
    x.flags.writeable = False
    y = dyt.forward(x)
    assert np.allclose(y, np.tanh(0.5 * x))
    assert y.flags.writeable


def test_writeable_out_is_written(dyt):
    out = np.zeros(3, np.float32)
    assert dyt.forward(np.ones(3, np.float32), out=out) is out
    assert np.allclose(out, np.tanh(0.5))
