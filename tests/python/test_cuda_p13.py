"""test_cuda_p13.py - dnc.torch on a CUDA device, where the layer runs
dnc's decomposed form (the printed PyTorch operations and dnc's symbolic
derivatives) instead of its CPU kernels: each result on the GPU against
the CPU kernels' for the same module and input, in every path a GPU
training script takes (eager, both layouts, float64 to bfloat16,
torch.compile with and without CUDA graphs, second order, torch.func,
autocast, torch.export, convert(), an optimizer with an EMA copy).
Skipped where PyTorch sees no CUDA device (CI's machines); run on a GPU
machine by tools/gpu_check.sh. DNC_TEST_DEVICE names another device
(mps, xpu), or cpu-decomposed: the CPU under dnc.torch.decomposed(), which
checks these tests' own logic where there is no GPU."""
import contextlib
import copy
import os

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dnc.torch as dt  # noqa: E402

WANT = os.environ.get("DNC_TEST_DEVICE", "cuda")
DEV = "cpu" if WANT == "cpu-decomposed" else WANT
if DEV == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)


@pytest.fixture(autouse=True)
def on_device():
    with dt.decomposed() if WANT == "cpu-decomposed" else \
            contextlib.nullcontext():
        yield


def ref():
    """Around the reference: dnc's CPU kernels."""
    return dt.decomposed(False)
from checks import ok, raises  # noqa: E402
from test_torch_form import EVERY_OP, module as form_module, \
    run as form_run  # noqa: E402

FUNCTIONS = [("dyt", None), ("derf", None), ("dyisru", None),
             ("derf_pc", "fn derf_pc(x; alpha = 0.5, s[] = 0) = "
                         "erf(alpha * x + s)"),
             ("every", EVERY_OP)]
C = 6


def module(name, src, dtype, cf=False):
    torch.manual_seed(3)
    return form_module(name, src, dtype, cf)


def sample(name, dtype, cf, seed=5):
    g = torch.Generator().manual_seed(seed)
    shape = (3, C, 4, 5) if cf else (7, 5, C)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2.5
    if name == "dyisru":
        x = x * 20
    dy = torch.randn(shape, generator=g, dtype=torch.float64)
    return x.to(dtype), dy.to(dtype)


def run(m, x, dy):
    """y, dx and every parameter's gradient (CPU float64 copies)."""
    return [t.detach().double().cpu() for t in form_run(m, x, dy)]


def names(m):
    return ["y", "dx"] + ["d" + n for n, _ in m.named_parameters()]


def close(a, b, tol, what):
    """a within tol of b, element by element, relative to |b| + the mean
    |b| (a sum's cancellation is measured against its terms' size), with
    the same non-finite values."""
    ok(a.shape == b.shape, "%s: shape %s = %s" % (what, tuple(a.shape),
                                                 tuple(b.shape)))
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    ok(torch.equal(fa, fb) and torch.equal(a[~fa].nan_to_num(),
                                           b[~fb].nan_to_num()),
       "%s: the same non-finite values" % what)
    a, b = a[fa], b[fb]
    if a.numel() == 0:
        return
    err = float(((a - b).abs() / (b.abs() + b.abs().mean() + 1e-300)).max())
    ok(err <= tol, "%s: within %g of the CPU kernels" % (what, tol),
       "largest relative difference %g" % err)


TOL = {torch.float64: 1e-11, torch.float32: 2e-5, torch.bfloat16: 2e-2,
       torch.float16: 3e-3}


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32,
                                   torch.bfloat16, torch.float16],
                         ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("name,src", FUNCTIONS, ids=[f for f, _ in FUNCTIONS])
def test_cuda_equals_cpu_kernels(name, src, dtype, cf):
    if name == "every" and dtype in (torch.bfloat16, torch.float16):
        pytest.skip("every's w^a and sinh overflow float16's range")
    m = module(name, src, dtype, cf)
    g = copy.deepcopy(m).to(DEV)
    x, dy = sample(name, dtype, cf)
    with ref():
        want = run(m, x, dy)
    got = run(g, x.to(DEV), dy.to(DEV))
    for what, a, b in zip(names(m), got, want):
        close(a, b, TOL[dtype], "%s %s %s: %s" % (
            name, dtype, "cf" if cf else "last", what))


def test_channels_last_memory_format_and_views():
    # a channels-first norm on an NHWC-strided tensor, and a transposed
    # (non-contiguous) input to a last-dimension norm
    m = module("derf", None, torch.float32, cf=True)
    g = copy.deepcopy(m).to(DEV)
    x, dy = sample("derf", torch.float32, True)
    got = run(g, x.to(DEV).to(memory_format=torch.channels_last),
              dy.to(DEV))
    with ref():
        want = run(m, x, dy)
    for what, a, b in zip(names(m), got, want):
        close(a, b, 2e-5, "NHWC strides: " + what)
    m = module("dyt", None, torch.float32)
    g = copy.deepcopy(m).to(DEV)
    x = torch.randn(C, 9, 4).transpose(0, 2)
    dy = torch.randn(4, 9, C)
    with ref():
        want = run(m, x, dy)
    for what, a, b in zip(names(m), run(g, x.to(DEV), dy.to(DEV)), want):
        close(a, b, 2e-5, "transposed input: " + what)


def test_extremes_as_the_kernels():
    # the inverse square root unit scaled where x^2 overflows, tanh and
    # erf saturated, signed zeros, infinities and NaN: float32 on the GPU
    # as the CPU kernels give them
    v = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e19, -1e19, 1e30, 3e38,
                      -3e38, float("inf"), -float("inf"), float("nan"),
                      1e-40, 12.0, -40.0, 0.5], dtype=torch.float32)
    for name in ("dyt", "derf", "dyisru"):
        m = dt.PointwiseNorm(v.numel(), name, dtype=torch.float32)
        g = copy.deepcopy(m).to(DEV)
        x = v.reshape(1, -1)
        dy = torch.ones_like(x)
        with ref():
            want = run(m, x, dy)
        for what, a, b in zip(names(m), run(g, x.to(DEV), dy.to(DEV)),
                              want):
            close(a, b, 2e-5, "%s at extremes: %s" % (name, what))


def test_device_mismatch_is_refused():
    if DEV == "cpu":
        pytest.skip("one device")
    m = dt.PointwiseNorm(C, "dyt")
    raises(RuntimeError, lambda: m(torch.randn(2, C, device=DEV)),
           "a CUDA input to a CPU module is refused", "move the module")
    g = dt.PointwiseNorm(C, "dyt", device=DEV)
    raises(RuntimeError, lambda: g(torch.randn(2, C)),
           "a CPU input to a CUDA module is refused", "move the module")


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("name,src", FUNCTIONS, ids=[f for f, _ in FUNCTIONS])
def test_compile_on_cuda(name, src, cf):
    torch._dynamo.reset()
    m = module(name, src, torch.float32, cf).to(DEV)
    x, dy = sample(name, torch.float32, cf)
    x, dy = x.to(DEV), dy.to(DEV)
    want = run(m, x, dy)
    c = torch.compile(m, fullgraph=True)
    for what, a, b in zip(names(m), run(c, x, dy), want):
        close(a, b, 2e-5, "%s compiled on CUDA: %s" % (name, what))
    # another shape through the same compiled module (dynamic shapes)
    x2 = torch.cat([x, x * 0.5], 0)
    dy2 = torch.cat([dy, 0.3 * dy], 0)
    for what, a, b in zip(names(m), run(c, x2, dy2), run(m, x2, dy2)):
        close(a, b, 2e-5, "%s compiled, a second shape: %s" % (name, what))


def test_compile_reduce_overhead_training_steps():
    # CUDA graphs (mode="reduce-overhead"): a few optimizer steps of a
    # small model, against the same steps in eager mode
    torch._dynamo.reset()

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 32), dt.PointwiseNorm(32, "derf"),
                             nn.GELU(), nn.Linear(32, 4)).to(DEV)

    def train(m, step):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        torch.manual_seed(1)
        xs = [torch.randn(8, 16, device=DEV) for _ in range(4)]
        losses = []
        for x in xs:
            opt.zero_grad(set_to_none=True)
            loss = step(m, x)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        return losses, [p.detach().cpu().double() for p in m.parameters()]

    eager = train(model(), lambda m, x: m(x).square().mean())
    cm = model()
    fwd = torch.compile(cm, mode="reduce-overhead", fullgraph=True)
    graphs = train(cm, lambda m, x: fwd(x).square().mean())
    close(torch.tensor(graphs[0]), torch.tensor(eager[0]), 1e-4,
          "reduce-overhead losses")
    for i, (a, b) in enumerate(zip(graphs[1], eager[1])):
        close(a, b, 1e-4, "reduce-overhead parameter %d" % i)


@pytest.mark.parametrize("name", ["dyt", "derf", "dyisru"])
def test_second_order_and_func_on_cuda(name):
    m = module(name, None, torch.float64)
    g = copy.deepcopy(m).to(DEV)
    x, dy = sample(name, torch.float64, False)

    def order2(mod, x, dy):
        x = x.clone().requires_grad_()
        y = mod(x)
        (gx,) = torch.autograd.grad(y, x, dy, create_graph=True)
        wrt = [x] + list(mod.parameters())
        out = torch.autograd.grad(gx.square().sum(), wrt, allow_unused=True)
        return [gx.detach().cpu()] + [
            (torch.zeros_like(w) if t is None else t).detach().cpu()
            for w, t in zip(wrt, out)]

    with ref():
        want = order2(m, x, dy)
    for i, (a, b) in enumerate(zip(order2(g, x.to(DEV), dy.to(DEV)),
                                   want)):
        close(a, b, 1e-10, "%s second order on CUDA, result %d" % (name, i))

    def func(mod, x):
        params = dict(mod.named_parameters())

        def loss(p, row):
            return torch.func.functional_call(mod, p, (row,)).sin().sum()
        grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(
            params, x)
        return [grads[k].detach().cpu() for k in sorted(grads)]

    with ref():
        want = func(m, x)
    for i, (a, b) in enumerate(zip(func(g, x.to(DEV)), want)):
        close(a, b, 1e-10, "%s vmap(grad) on CUDA, result %d" % (name, i))


def test_autocast_bfloat16_on_cuda():
    # a bfloat16 activation from an autocast matmul and float32
    # parameters: float32, as the Derf repository's module written in
    # PyTorch operations gives under autocast (type promotion), computed
    # as the CPU kernels compute the float32 activation
    torch.manual_seed(0)
    lin = nn.Linear(32, 64).to(DEV)
    m = dt.PointwiseNorm(64, "derf").to(DEV)
    x = torch.randn(16, 32, device=DEV)
    with torch.autocast(DEV, dtype=torch.bfloat16):
        h = lin(x)
        y = m(h)
        plain = torch.erf(m.alpha * h + m.shift) * m.weight + m.bias
    ok(h.dtype == torch.bfloat16, "autocast's matmul gives bfloat16")
    ok(y.dtype == plain.dtype == torch.float32,
       "the norm's output dtype is the plain PyTorch module's",
       "%s, plain %s" % (y.dtype, plain.dtype))
    with ref():
        want = copy.deepcopy(m).cpu()(h.float().cpu())
    close(y.detach().double().cpu(), want.detach().double(), 2e-5,
          "autocast result = the CPU kernels' on the float32 activation")


def test_export_on_cuda():
    m = nn.Sequential(nn.Linear(8, C), module("derf", None, torch.float32),
                      nn.Tanh()).to(DEV)
    x = torch.randn(4, 3, 8, device=DEV)
    ep = torch.export.export(m, (x,))
    x2 = torch.randn(4, 3, 8, device=DEV)
    close(ep.module()(x2).double().cpu(), m(x2).detach().double().cpu(),
          1e-6, "the exported program on CUDA = eager")
    # its backward is dnc's (the graph holds dnc::layer_forward, whose
    # implementation on CUDA is the decomposed form): DyT's dx at x = 20
    d = dt.PointwiseNorm(4, "dyt").to(DEV)
    xs = torch.tensor([[1.0, 20.0, 40.0, -40.0]], device=DEV)
    ep = torch.export.export(d, (xs,))
    ok(any("dnc.layer_forward" in str(n.target) for n in ep.graph.nodes),
       "the CUDA export records dnc::layer_forward")
    xe = xs.clone().requires_grad_()
    ep.module()(xe).sum().backward()
    xr = xs.cpu().clone().requires_grad_()
    copy.deepcopy(d).cpu()(xr).sum().backward()
    close(xe.grad.double().cpu(), xr.grad.double(), 1e-6,
          "the exported program's dx on CUDA = the CPU kernels' (not 0)")


class LayerNorm2d(nn.LayerNorm):
    # ConvNeXt's channels-first LayerNorm (timm's spelling)
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight,
                                     self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.norm = LayerNorm2d(8)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(),
                                 nn.Linear(16, 8))
        self.rms = nn.RMSNorm(8)

    def forward(self, x):
        h = self.norm(self.conv(x)).permute(0, 2, 3, 1)
        return self.rms(self.mlp(h)).permute(0, 3, 1, 2) + x


def test_convert_a_cuda_model():
    # convert() probes the norms where they are (on the GPU) and gives
    # modules there; the converted model on CUDA = the same conversion on
    # the CPU, forward and gradients
    torch.manual_seed(0)
    base = Block()
    with ref():
        cpu = dt.convert(copy.deepcopy(base), "dyt", keep_affine=True)
    gpu = dt.convert(copy.deepcopy(base).to(DEV), "dyt", keep_affine=True)
    ok(not gpu.norm.channels_last and gpu.rms.bias is None,
       "LayerNorm2d became channels-first, RMSNorm weight-only")
    ok(all(p.device.type == torch.device(DEV).type
           for p in gpu.parameters()),
       "the converted model stays on the device")
    x = torch.randn(2, 8, 5, 6)
    dy = torch.randn(2, 8, 5, 6)
    got = run(gpu, x.to(DEV), dy.to(DEV))
    with ref():
        want = run(cpu, x, dy)
    for what, a, b in zip(names(cpu), got, want):
        close(a, b, 1e-4, "converted block on CUDA: " + what)


def test_fit_initial_on_cuda():
    # fit_initial on a model on the GPU (Block: a channels-first LayerNorm
    # and an RMSNorm): the norms' inputs to the CPU for the fit, which
    # matches the one on the CPU (the activations differ by the GPU's
    # rounding)
    torch.manual_seed(0)
    base = Block()
    batches = [torch.randn(2, 8, 5, 6) for _ in range(2)]
    want = dt.fit_initial(base, "dyt", batches)
    got = dt.fit_initial(copy.deepcopy(base).to(DEV), "dyt",
                         [b.to(DEV) for b in batches])
    ok(sorted(got) == sorted(want) and all(
        abs(got[p]["alpha"] - want[p]["alpha"]) <=
        1e-4 * abs(want[p]["alpha"]) for p in want),
        "fit_initial on CUDA = on the CPU", (got, want))


def test_training_with_ema_on_cuda():
    # AdamW steps and an EMA copy (AveragedModel) on CUDA against the same
    # on the CPU kernels
    def setup(device):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(12, 24), dt.PointwiseNorm(24, "derf"),
                          nn.Linear(24, 3)).to(device)
        ema = torch.optim.swa_utils.AveragedModel(
            m, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
        return m, ema, torch.optim.AdamW(m.parameters(), lr=1e-2)

    def train(device):
        m, ema, opt = setup(device)
        g = torch.Generator().manual_seed(2)
        for _ in range(6):
            x = torch.randn(32, 12, generator=g).to(device)
            t = torch.randn(32, 3, generator=g).to(device)
            opt.zero_grad()
            nn.functional.mse_loss(m(x), t).backward()
            opt.step()
            ema.update_parameters(m)
        return [p.detach().double().cpu() for p in
                list(m.parameters()) + list(ema.module.parameters())]

    with ref():
        want = train("cpu")
    for i, (a, b) in enumerate(zip(train(DEV), want)):
        close(a, b, 1e-4, "parameter %d after AdamW and EMA" % i)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_functional_pointwise_on_cuda(compiled):
    # dnc.torch.pointwise (the functional form) with a per-channel weight,
    # a parameter as a tensor and one as a number, eager and compiled
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, C, generator=g, dtype=torch.float64) * 2
    dy = torch.randn(4, 3, C, generator=g, dtype=torch.float64)
    w = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    a = torch.tensor([0.8], dtype=torch.float64)

    def grads(x, dy, w, a, f):
        x, w, a = (t.clone().requires_grad_() for t in (x, w, a))
        y = f(x, w, a)
        y.backward(dy)
        return [t.detach().cpu() for t in (y, x.grad, w.grad, a.grad)]

    def layer(x, w, a):
        return dt.pointwise(x, "derf", w, None, alpha=a, shift=0.25)

    with ref():
        want = grads(x, dy, w, a, layer)
    f = torch.compile(layer, fullgraph=True) if compiled else layer
    got = grads(*(t.to(DEV) for t in (x, dy, w, a)), f)
    for what, p, q in zip(("y", "dx", "dweight", "dalpha"), got, want):
        close(p, q, 1e-10, "pointwise %s: %s" % (
            "compiled" if compiled else "eager", what))
