"""test_torch2.py - dnc.torch where PyTorch 2 is needed: the torch.library
custom ops under torch.compile(fullgraph=True) (no graph break, the same
losses as eager over training steps), torch.export, ONNX export checked
with onnxruntime, torch.func.grad and vmap; and what every PyTorch must
do, checked here on 2: deepcopy, pickle, torch.save(model), spawn-started
DataLoader workers, autocast, threads following torch.get_num_threads().
Skipped as a whole, with the reason, under PyTorch 1.13 (test_torch.py
checks the refusal there)."""
import copy
import io
import pickle

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402
from torch import nn  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no torch.library.custom_op (PyTorch 2 only)"
                % torch.__version__, allow_module_level=True)


def transformer(fn="derf", seed=0):
    """A converted transformer: embedding, two encoder layers, a final
    norm, a head."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0,
                                       batch_first=True)
    m = nn.Sequential(nn.Linear(8, 16), nn.TransformerEncoder(
        layer, 2, enable_nested_tensor=False), nn.LayerNorm(16),
        nn.Linear(16, 1))
    return dt.convert_layernorm(m, fn, alpha=0.7)


def train(model, x, steps, compiled=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    run = compiled or model
    losses = []
    for _ in range(steps):
        loss = run(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.slow
def test_compile_fullgraph_trains_as_eager():
    x = torch.randn(4, 5, 8)
    m = transformer()
    ex = torch._dynamo.explain(m)(x)
    ok(ex.graph_break_count == 0 and ex.graph_count == 1,
       "torch._dynamo.explain: one graph, no break",
       lambda: "%d graphs, breaks: %s" % (ex.graph_count, ex.break_reasons))
    eager = transformer()
    compiled = copy.deepcopy(eager)
    torch._dynamo.reset()
    c = torch.compile(compiled, fullgraph=True)
    le = train(eager, x, 3)
    lc = train(compiled, x, 3, c)
    # the same kernels run in both; the rest of the model is inductor's
    # code against eager's: float32 rounding apart
    ok(all(abs(a - b) <= 1e-5 * abs(a) + 1e-7 for a, b in zip(le, lc)),
       "torch.compile(fullgraph=True): the same losses as eager", (le, lc))
    for (n, p), q in zip(eager.named_parameters(), compiled.parameters()):
        ok(torch.allclose(p, q, rtol=1e-4, atol=1e-6),
           "after 3 steps, %s as eager's" % n)


def test_decomposed_form_traces_without_break():
    # what torch.compile runs for CUDA, MPS and other devices
    x = torch.randn(4, 5, 8)
    m = transformer()
    with dt.decomposed():
        ex = torch._dynamo.explain(m)(x)
    ok(ex.graph_break_count == 0, "the decomposed form: no graph break",
       lambda: ex.break_reasons)


def test_export_runs_and_reloads():
    x = torch.randn(3, 5, 8)
    m = transformer().eval()
    ep = torch.export.export(m, (x,))
    targets = [str(n.target) for n in ep.graph.nodes]
    ok(sum("dnc.layer_forward" in t for t in targets) == 5,
       "the exported graph calls dnc::layer_forward for the 5 norms",
       targets)
    ok(torch.allclose(ep.module()(x), m(x), rtol=0, atol=0),
       "the exported program computes the module's values")
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    ep2 = torch.export.load(buf)
    x2 = torch.randn(3, 5, 8)
    ok(torch.equal(ep2.module()(x2), m(x2)), "saved and loaded, it runs")


@pytest.mark.slow  # g++ compiling the package under a preloaded ASan
def test_aot_inductor_package(tmp_path):
    """AOTInductor (torch._inductor.aoti_compile_and_package): the package
    calls dnc::layer_forward through PyTorch's proxy executor and gives
    the module's values, channels first too; loaded in a process without
    dnc.torch, it is refused with PyTorch's error (the operators are
    registered by importing dnc.torch)."""
    if not hasattr(torch._inductor, "aoti_compile_and_package"):
        pytest.skip("this PyTorch has no aoti_compile_and_package")
    import subprocess
    import sys
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), dt.PointwiseNorm(
        8, "derf", channels_last=False, alpha=0.7), nn.Flatten(),
        nn.Linear(8 * 6 * 6, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    ep = torch.export.export(m, (x,))
    path = torch._inductor.aoti_compile_and_package(
        ep, package_path=str(tmp_path / "m.pt2"))
    f = torch._inductor.aoti_load_package(path)
    for _ in range(2):
        with torch.no_grad():
            want = m(x)
        ok(torch.allclose(f(x), want, rtol=1e-5, atol=1e-6),
           "the package computes the module's values")
        x = torch.randn(2, 3, 8, 8) * 4
    r = subprocess.run([sys.executable, "-c",
                        "import torch, sys; torch._inductor."
                        "aoti_load_package(sys.argv[1])", path],
                       capture_output=True, text=True, timeout=300)
    ok(r.returncode != 0 and "dnc::layer_forward" in r.stderr,
       "without dnc.torch: refused, naming the operator", r.stderr[-2000:])


def test_onnx_export_standard_ops_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    x = torch.randn(3, 5, 8)
    m = transformer().eval()
    prog = torch.onnx.export(m, (x,), dynamo=True, verbose=False)
    proto = prog.model_proto
    ops = {(n.domain, n.op_type) for n in proto.graph.node}
    ok(all(d in ("", "ai.onnx") for d, _ in ops),
       "only standard ONNX operators", sorted(ops))
    ok(("", "Erf") in ops or ("ai.onnx", "Erf") in ops,
       "Derf's erf is an ONNX Erf", sorted(ops))
    s = ort.InferenceSession(proto.SerializeToString(),
                             providers=["CPUExecutionProvider"])
    for _ in range(2):
        x = torch.randn(3, 5, 8)
        out = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
        ok(torch.allclose(torch.from_numpy(out), m(x), rtol=1e-5,
                          atol=1e-6),
           "onnxruntime reproduces the module within float32 rounding")


def test_func_grad_and_vmap():
    torch.manual_seed(1)
    m = dt.PointwiseNorm(6, "derf", dtype=torch.float64, alpha=0.8)
    x = torch.randn(4, 3, 6, dtype=torch.float64)
    ok(torch.equal(torch.func.vmap(m)(x), m(x)),
       "vmap over the batch = one call")
    w = torch.randn(4, 6, dtype=torch.float64)
    y = torch.func.vmap(lambda xi, wi: dt.pointwise(xi, "derf", weight=wi),
                        in_dims=(0, 0))(x, w)
    ok(torch.allclose(y, torch.erf(0.5 * x) * w[:, None, :]),
       "vmap with a batched weight")
    g = torch.func.grad(lambda x: m(x).pow(2).sum())(x)
    xx = x.clone().requires_grad_()
    m(xx).pow(2).sum().backward()
    ok(torch.allclose(g, xx.grad, rtol=1e-13, atol=0), "func.grad = autograd")
    params = {k: v.detach() for k, v in m.named_parameters()}

    def loss(p, xi):
        return torch.func.functional_call(m, p, (xi,)).pow(2).sum()
    per_sample = torch.func.vmap(torch.func.grad(loss),
                                 in_dims=(None, 0))(params, x)
    for i in range(4):
        m.zero_grad()
        loss(dict(m.named_parameters()), x[i]).backward()
        for k, p in m.named_parameters():
            ok(torch.allclose(per_sample[k][i], p.grad, rtol=1e-12,
                              atol=1e-14),
               "per-sample gradient of %s (vmap of grad), sample %d"
               % (k, i))


def test_copies_and_checkpoints():
    m = transformer()
    x = torch.randn(2, 5, 8)
    y = m(x)
    ok(torch.equal(copy.deepcopy(m)(x), y), "deepcopy")
    ok(torch.equal(pickle.loads(pickle.dumps(m))(x), y), "pickle")
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    ok(torch.equal(torch.load(buf, weights_only=False)(x), y),
       "torch.save(model) / torch.load")
    # an EMA copy, updated from the trained model
    ema = copy.deepcopy(m)
    train(m, x, 2)
    with torch.no_grad():
        for e, p in zip(ema.parameters(), m.parameters()):
            e.mul_(0.5).add_(p, alpha=0.5)
    ok(not torch.equal(ema(x), y) and torch.isfinite(ema(x)).all(),
       "an EMA deep copy runs after updates")


class _Normed(torch.utils.data.Dataset):
    """Applies a PointwiseNorm in the worker (the module is pickled to
    each spawned process)."""

    def __init__(self, norm):
        self.norm = norm
        self.x = torch.randn(4, 6)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        with torch.no_grad():
            return self.norm(self.x[i:i + 1])[0]


@pytest.mark.slow
def test_spawn_dataloader_workers():
    ds = _Normed(dt.PointwiseNorm(6, "dyt", alpha=0.9))
    dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1,
                                     multiprocessing_context="spawn")
    got = next(iter(dl))
    ok(torch.equal(got, ds.norm(ds.x).detach()),
       "a spawn-started worker computes the same values")


class _DyT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return torch.tanh(self.alpha * x) * self.weight + self.bias


def test_autocast_bfloat16():
    torch.manual_seed(2)
    lin = nn.Linear(32, 32)
    ref = nn.Sequential(lin, _DyT(32))
    mod = nn.Sequential(copy.deepcopy(lin), dt.PointwiseNorm(32, "dyt"))
    mod[1].load_state_dict(ref[1].state_dict())
    x = torch.randn(8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = ref(x)
        b = mod(x)
    # the Linear gives bfloat16; the norm's parameters are float32: the
    # type promotion of both is float32, as the eager module returns
    ok(a.dtype == b.dtype == torch.float32,
       "under autocast bf16, float32 out like the eager module", (a.dtype,
                                                                  b.dtype))
    ok(torch.allclose(a, b, rtol=2 ** -7, atol=2 ** -7),
       "the same values within bfloat16 tolerance")
    xx = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mod(xx).sum().backward()
    ok(xx.grad is not None and mod[1].alpha.grad is not None,
       "backward under autocast reaches the input and the parameters")


def test_threads_follow_torch():
    m = dt.PointwiseNorm(8, "dyt")
    fixed = dt.PointwiseNorm(8, "dyt", threads=2)
    old = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            ok(m.fn.module.context.threads == t,
               "after torch.set_num_threads(%d), the kernels use %d" % (t, t))
            ok(fixed.fn.module.context.threads == 2,
               "a module built with threads=2 keeps 2")
            m(torch.randn(3, 8))
    finally:
        torch.set_num_threads(old)


def test_custom_ops_registered():
    ok(hasattr(torch.ops.dnc, "layer_forward") and
       hasattr(torch.ops.dnc, "layer_backward"),
       "torch.ops.dnc.layer_forward and layer_backward exist")
    x = torch.randn(2, 8, device="meta")
    y = torch.ops.dnc.layer_forward(x, None, None, [torch.ones(1,
                                                    device="meta")],
                                    dt.STANDARD, "dyt", 0)
    ok(y.shape == (2, 8) and y.device.type == "meta",
       "the fake implementation gives shapes on meta")


def test_jit_trace_and_save():
    # a trace records torch.ops.dnc.layer_forward, which jit.save keeps
    import warnings
    m = dt.PointwiseNorm(8, "derf", alpha=0.6)
    x = torch.randn(3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = torch.jit.trace(m, x)
        buf = io.BytesIO()
        torch.jit.save(tr, buf)
        buf.seek(0)
        back = torch.jit.load(buf)
    ok("dnc::layer_forward" in str(tr.graph), "the trace calls the op",
       str(tr.graph))
    x2 = torch.randn(5, 8)
    ok(torch.equal(back(x2), m(x2)), "jit.save / jit.load, then run")
