"""test_torch_form_graphs.py - the decomposed form (every device but the
CPU kernels: a GPU, meta tensors) where a graph is recorded or a tangent
carried, checked on the CPU under dnc.torch.decomposed():

- torch.export and torch.jit.trace record dnc::layer_forward, as on the
  CPU, so that the exported or traced graph's backward is dnc's (an
  autograd.Function's forward, inlined by export, had left autograd
  through the printed operations: NaN through an untaken branch, DyT's
  dx 0 at x = 20, and a trace that could not be saved);
- the operators' implementation off the CPU is the decomposed form and
  its printed derivatives (their Python implementation, as a GPU call
  reaches it, run here under decomposed());
- forward mode (torch.autograd.forward_ad) takes dnc's derivatives;
- the output is contiguous for a transposed input, as the kernels' is.
Needs PyTorch 2.4 (torch.library.custom_op): skipped under 1.13."""
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

pytestmark = pytest.mark.skipif(not dt.HAS_CUSTOM_OPS,
                                reason="no torch.library.custom_op")

# functions whose printed operations, differentiated by autograd, are not
# dnc's derivatives: an untaken branch (sqrt of a negative: NaN), tanh's
# derivative in saturation (1 - t^2: 0), a difference of softpluses
CASES = [
    ("fn g(x; c = 1) = if x > 0 then sqrt(x + c) - sqrt(c) "
     "else sqrt(c) - sqrt(c - x)", [-3.0, -0.5, 0.5, 3.0]),
    ("dyt", [1.0, 20.0, 40.0, -40.0]),
    ("fn sp(x; a = 0.8) = softplus(a * x) - softplus(-a * x)",
     [0.0, 1.0, -2.0, 3.0]),
]


def _grads(m, x):
    """y, dx and every parameter's gradient of m at x (sum of y)."""
    xr = x.clone().requires_grad_()
    for p in m.parameters():
        p.grad = None
    y = m(xr)
    y.sum().backward()
    return [y.detach(), xr.grad] + [p.grad.clone() for p in m.parameters()]


def _same(got, want):
    return all(torch.allclose(g, w, rtol=1e-5, atol=1e-30, equal_nan=False)
               for g, w in zip(got, want))


def _recorded(src, xs, record):
    """The module of src, x of xs, the kernels' y, dx and gradients, and
    record(m, x) run on the decomposed form (warnings quiet)."""
    m = dt.PointwiseNorm(4, src)
    x = torch.tensor([xs])
    want = _grads(m, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dt.decomposed():
            return m, x, want, record(m, x)


@pytest.mark.parametrize("src,xs", CASES)
def test_export_keeps_dncs_backward(src, xs):
    m, x, want, ep = _recorded(src, xs,
                               lambda m, x: torch.export.export(m, (x,)))
    ops = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    ok(any("dnc.layer_forward" in o for o in ops),
       "the exported graph holds dnc::layer_forward", ops)
    got = _grads(ep.module(), x)
    ok(_same(got[:2], want[:2]),
       "the exported program's y and dx are dnc's", (got[:2], want[:2]))


@pytest.mark.parametrize("src,xs", CASES)
def test_jit_trace_records_the_operator_and_saves(src, xs):
    m, x, want, tr = _recorded(src, xs, lambda m, x: torch.jit.trace(
        m, (x.clone().requires_grad_(),)))
    kinds = [n.kind() for n in tr.graph.nodes()]
    ok("dnc::layer_forward" in kinds, "the trace holds dnc::layer_forward",
       kinds)
    buf = io.BytesIO()
    torch.jit.save(tr, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    xr = x.clone().requires_grad_()
    loaded(xr).sum().backward()
    ok(torch.allclose(xr.grad, want[1], rtol=1e-5, atol=1e-30),
       "the saved trace's dx is dnc's", (xr.grad, want[1]))


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("src,xs", CASES)
def test_forward_mode_takes_dncs_derivatives(src, xs, frozen):
    import torch.autograd.forward_ad as fwAD
    m = dt.PointwiseNorm(4, src)
    for p in m.parameters():
        p.requires_grad_(not frozen)
    x = torch.tensor([xs])
    t = torch.ones_like(x)
    tangents = []
    for dec in (False, True):
        with dt.decomposed(dec), fwAD.dual_level():
            y = m(fwAD.make_dual(x, t))
            tangents.append(fwAD.unpack_dual(y).tangent)
    ok(torch.allclose(tangents[1], tangents[0], rtol=1e-5, atol=1e-30),
       "the decomposed form's tangent is the kernels' (params %s)"
       % ("frozen" if frozen else "trainable"), tangents)


def test_operators_off_the_cpu_compute_the_form():
    # what a GPU call of dnc::layer_forward and layer_backward runs: their
    # Python implementation, which decomposed() sends to the form here
    src = "fn g(x; a = 0.7, s[] = 0) = erf(a * x + s) + " \
          "if x > 0 then sqrt(x) else 0"
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 6, generator=g, dtype=torch.float64) * 3
    dy = torch.randn(5, 6, generator=g, dtype=torch.float64)
    w = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    b = torch.rand(6, generator=g, dtype=torch.float64)
    ps = [torch.tensor([0.7], dtype=torch.float64),
          torch.rand(6, generator=g, dtype=torch.float64)]
    fn = dt.resolve(src)
    source = dt._source_of(fn)
    k_y = dt._op_forward_py(x, w, b, ps, source, fn.name, 1)
    k_g = dt._op_backward_py(x, dy, w, b, ps, source, fn.name, 1)
    with dt.decomposed():
        d_y = dt._op_forward_py(x, w, b, ps, source, fn.name, 1)
        d_g = dt._op_backward_py(x, dy, w, b, ps, source, fn.name, 1)
    ok(torch.allclose(d_y, k_y, rtol=1e-12, atol=1e-14),
       "layer_forward's form is the kernels' y")
    ok(len(d_g) == len(k_g) and all(
        torch.allclose(d, k, rtol=1e-10, atol=1e-12)
        for d, k in zip(d_g, k_g)),
        "layer_backward's form gives the kernels' dx, dweight, dbias and "
        "every parameter's gradient", (d_g, k_g))


def test_output_is_contiguous_for_a_transposed_input():
    norm = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(5, 4, 8).transpose(0, 1)  # [B, T, C], not contiguous
    want = norm(x)
    ok(want.is_contiguous(), "the kernels' y is contiguous")
    with dt.decomposed():
        y = norm(x)
        yp = dt.pointwise(x, "dyt", alpha=0.5)
    ok(y.is_contiguous() and yp.is_contiguous(),
       "the decomposed form's y is contiguous too", (y.stride(), yp.stride()))
    ok(y.view(20, 8).shape == (20, 8) and torch.allclose(y, want, atol=1e-6),
       "and y.view(B * T, C) works as on the CPU kernels")


def test_decompositions_give_an_aten_graph():
    # for deployment where dnc is not imported: run_decompositions with
    # dnc.torch.decompositions() replaces the operators by the form
    m = dt.PointwiseNorm(6, "derf")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 6, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(m, (x,)).run_decompositions(
            dt.decompositions())
    ops = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    ok(ops and not any("dnc" in o for o in ops) and
       all(o.startswith("aten.") for o in ops),
       "only ATen operations are left", ops)
    ok(torch.allclose(ep.module()(x), m(x), atol=1e-6),
       "with the module's values")
    table = dt.decompositions({})
    ok(set(table) == {torch.ops.dnc.layer_forward.default,
                      torch.ops.dnc.layer_backward.default},
       "a given table gets the two operators", list(table))
    w, b = m.weight.detach(), m.bias.detach()
    ps = [m.alpha.detach(), m.shift.detach()]
    got = table[torch.ops.dnc.layer_backward.default](
        x, torch.ones_like(x), w, b, ps, dt._source_of(m.fn), m.fn.name, 1)
    want = torch.ops.dnc.layer_backward(x, torch.ones_like(x), w, b, ps,
                                        dt._source_of(m.fn), m.fn.name, 1)
    ok(all(torch.allclose(a, c, atol=1e-5) for a, c in zip(got, want)),
       "layer_backward's decomposition is the kernels' backward")
