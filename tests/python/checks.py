"""checks.py - helpers for the pytest files of tests/python: ok() and
raises() assert with a name and a diagnostic, so that a test that checks
many things says which one failed and why; onnx_run() exports a module
to ONNX and runs it."""
import io
import warnings

import pytest


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
