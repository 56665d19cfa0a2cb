"""test_onnx_deploy_p28.py - a float64 model exported with torch.onnx's
dynamo exporter (the default of PyTorch 2.15) and run by onnxruntime,
against the same model in PyTorch: the exporter wrote the decomposed
form's Python numbers as float32 constants cast to float64, so that a
function's 0.1 was 0.10000000149 in the ONNX model, a comparison with it
flipped, and 1e300 (or DyISRU's scale 2^-340) was inf (0). Skipped
without PyTorch 2's exporter, onnxscript or onnxruntime."""
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no dynamo ONNX exporter to test"
                % torch.__version__, allow_module_level=True)
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# constants that are no float32 value (0.1, 0.3, 1e300, 1e-300) beside
# ones that are (0, 2, 0.5), in a comparison, a product, a sum, a
# quotient, a constant branch (torch.full_like) and fma (torch.addcmul);
# no atan, erf or erfc, which onnxruntime has no float64 kernel for
SRC = """\
fn g(x; a = 0.9) {
  let u = a * x
  if u > 0.1 then 0.1 * u + 0.3 + (1e300 * u) * 1e-300
  else if u < -2 then 0.3
  else fma(u, 0.1, 0.5) / 0.3 + tanh(u) * 2
}
"""


def onnx_dynamo(m, x):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), buf, dynamo=True, verbose=False)
    s = ort.InferenceSession(buf.getvalue(),
                             providers=["CPUExecutionProvider"])
    return torch.from_numpy(s.run(None, {s.get_inputs()[0].name:
                                         x.numpy()})[0])


def test_float64_constants_are_float64():
    m = dt.PointwiseNorm(6, SRC, dtype=torch.float64).eval()
    with torch.no_grad():
        m.weight.copy_(torch.linspace(0.5, 1.5, 6, dtype=torch.float64))
        m.bias.fill_(0.25)
    # 0.1 / 0.9 (1 + 1e-12): u just above 0.1, where a float32 0.1
    # (0.10000000149) took the other branch
    x = torch.tensor([[0.1 / 0.9 * (1 + 1e-12), 5.0, -0.05, -1.0, -3.0,
                       2e-3]], dtype=torch.float64)
    with torch.no_grad():
        want = m(x)
    got = onnx_dynamo(m, x)
    ok(torch.allclose(got, want, rtol=1e-14, atol=0),
       "a float64 function with constants 0.1, 0.3, 1e300: onnxruntime "
       "gives PyTorch's values", lambda: (got - want, want))


def test_float64_dyisru_far_out():
    # DyISRU's scale factors (2^-340 to 2^680) were 0 and inf: 0, not +-1,
    # from |x| = 2^300 on
    m = dt.PointwiseNorm(4, "dyisru", elementwise_affine=False,
                         dtype=torch.float64).eval()
    x = torch.tensor([[1e300, -2.0 ** 310, 5.0, -1e-300]],
                     dtype=torch.float64)
    with torch.no_grad():
        want = m(x)
    got = onnx_dynamo(m, x)
    ok(torch.allclose(got, want, rtol=1e-14, atol=0) and
       got[0, 0] == 1 and got[0, 1] == -1,
       "DyISRU in float64 through the dynamo exporter: +-1 far out",
       lambda: (got, want))


def test_float32_graph_unchanged():
    # float32 constants are the float32 graph's own: nothing is added
    import onnx
    # (without 1e300, which is inf in float32, in the kernels too)
    m = dt.PointwiseNorm(6, SRC.replace(" + (1e300 * u) * 1e-300", "")).eval()
    x = torch.linspace(-4, 4, 12).reshape(2, 6)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), buf, dynamo=True, verbose=False)
    inits = [i.name for i in onnx.load_from_string(
        buf.getvalue()).graph.initializer]
    ok(not any("lifted" in n for n in inits),
       "no tensor constants in a float32 export", inits)
    with torch.no_grad():
        want = m(x)
    got = onnx_dynamo(m, x)
    ok(torch.allclose(got, want, rtol=1e-6, atol=1e-6),
       "the float32 export gives PyTorch's values", lambda: (got, want))
