"""checks.py - helpers for the pytest files of tests/python: ok() and
raises() assert with a name and a diagnostic, so that a test that checks
many things says which one failed and why; onnx_run() exports a module
to ONNX and runs it; numpy_float_dtypes() lists the NumPy dtypes the
NumPy API computes in here."""
import io
import warnings

import pytest


def numpy_float_dtypes():
    """float32 and float64, and bfloat16 where ml_dtypes is installed
    (the .venv; Debian's python has float32 and float64 only)."""
    import numpy as np
    try:
        import ml_dtypes
        return [np.float32, np.float64, ml_dtypes.bfloat16]
    except ImportError:
        return [np.float32, np.float64]


def ok(cond, name, diag=None):
    """Asserts cond; the failure names the check and shows diag (a string,
    or a callable giving one)."""
    if not cond:
        text = diag() if callable(diag) else diag
        raise AssertionError(name if text is None
                             else "%s\n%s" % (name, text))


def raises(exc, fn, name, match=None):
    """fn() must raise exc, whose message contains match (if given)."""
    with pytest.raises(exc) as info:
        fn()
    ok(match is None or match in str(info.value), name,
       "message: %s\nexpected to contain: %s" % (info.value, match))


def onnx_run(ort, m, x):
    """m(x) exported by torch.onnx's legacy (TorchScript) exporter, opset
    17, and run by onnxruntime (ort) on the CPU: a float tensor."""
    import torch
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"dynamo": False} if "dynamo" in \
            torch.onnx.export.__code__.co_varnames else {}
        torch.onnx.export(m, (x,), buf, opset_version=17, **kw)
    s = ort.InferenceSession(buf.getvalue(),
                             providers=["CPUExecutionProvider"])
    return torch.from_numpy(s.run(None, {s.get_inputs()[0].name:
                                         x.numpy()})[0])
