"""test_onnx_deploy_p28.py - deploying a model: a float64 model exported
with torch.onnx's dynamo exporter (the default of PyTorch 2.15) and run
by onnxruntime, against the same model in PyTorch (the exporter wrote
the decomposed form's Python numbers as float32 constants cast to
float64, so that a function's 0.1 was 0.10000000149 in the ONNX model, a
comparison with it flipped, and 1e300, or DyISRU's scale 2^-340, was inf,
or 0); and an AOTInductor package called from several threads at once.
Skipped without PyTorch 2's exporter, onnxscript or onnxruntime."""
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


SERVE = r"""
import sys, threading
import torch
import dnc.torch
f = torch._inductor.aoti_load_package(sys.argv[1])
xs = [torch.randn(b, s, 8) for b, s in
      [(1, 1), (2, 3), (3, 7), (4, 9), (5, 2), (6, 11), (7, 5), (2, 13)]]
f(xs[0])  # the first call of a function enters Python (it compiles it)
out = [None] * len(xs)
def run(i):
    for _ in range(30):
        out[i] = f(xs[i])
ts = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
for t in ts:
    t.start()
for t in ts:
    t.join()
torch.save((xs, out), sys.argv[2])
"""


@pytest.mark.slow  # g++ compiling the package under a preloaded ASan
def test_aot_inductor_package_from_threads(tmp_path):
    """An AOTInductor package served from several threads: its loaded
    model holds the GIL while a call waits for the one runner, and the
    operator's C++ kernel let go of the GIL for the kernel and waited for
    it back for ever (every run hung); now it keeps it there."""
    if not hasattr(torch._inductor, "aoti_compile_and_package"):
        pytest.skip("this PyTorch has no aoti_compile_and_package")
    if dt.extension() is None:
        # every call is then Python's, which PyTorch's waiting call
        # holding the GIL blocks (a custom op of plain Python hangs so)
        pytest.skip("no C++ extension: %s" % dt.extension_reason())
    import subprocess
    import sys
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 8), dt.PointwiseNorm(
        8, "dyt", alpha=0.7)).eval()
    x = torch.randn(2, 3, 8)
    d = torch.export.Dim
    ep = torch.export.export(m, (x,), dynamic_shapes={
        "input": {0: d("b", min=1, max=16), 1: d("s", min=1, max=16)}})
    path = torch._inductor.aoti_compile_and_package(
        ep, package_path=str(tmp_path / "m.pt2"))
    try:
        r = subprocess.run([sys.executable, "-c", SERVE, path,
                            str(tmp_path / "out.pt")],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        ok(False, "8 threads calling the package: no hang")
    ok(r.returncode == 0, "8 threads calling the package", r.stderr[-2000:])
    xs, out = torch.load(str(tmp_path / "out.pt"))
    with torch.no_grad():
        for xi, yi in zip(xs, out):
            want = torch.tanh(0.7 * m[0](xi)) * m[1].weight + m[1].bias
            ok(torch.allclose(yi, want, rtol=1e-5, atol=1e-6),
               "their values are DyT's", lambda: (yi - want).abs().max())
