"""test_torch.py - dnc.torch on its kernels, under PyTorch 1.13 and 2.

gradcheck in float64 (input, every parameter, weight and bias) for DyT,
Derf, DyISRU, a per-channel Derf and a sample of the random corpus;
gradgradcheck through dnc's second derivatives; agreement with the plain
PyTorch DyT and Derf modules in float32 and bfloat16 with stated
tolerances; gradients bitwise equal on 1 and 2 threads; convert_layernorm,
state_dict, no_grad, strided inputs and every error.
"""
import copy
import io
import os
import re
import signal
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import dnc
import dnc.torch as dt
from checks import ok, raises

B = os.environ.get("DNC_BUILD", "build")
torch.manual_seed(0)


class DyT(nn.Module):
    """The DyT repository's DynamicTanh (channels last)."""

    def __init__(self, c, alpha_init_value=0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * alpha_init_value)
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return torch.tanh(self.alpha * x) * self.weight + self.bias


class Derf(nn.Module):
    """The Derf paper's module: erf(alpha x + s), scalar alpha and s."""

    def __init__(self, c, alpha=0.5, s=0.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * alpha)
        self.shift = nn.Parameter(torch.ones(1) * s)
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return torch.erf(self.alpha * x + self.shift) * self.weight + self.bias


def randomize(mod, scale=0.3):
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if name == "weight":
                p.uniform_(0.5, 1.5)
            elif name == "bias":
                p.uniform_(-0.5, 0.5)
            else:
                p.mul_(1 + scale * (2 * torch.rand_like(p) - 1))
    return mod


def inputs(mod, x):
    """(x, *parameters in _LayerFn's order) all requiring grad, and the
    function that applies the module's kernel to them."""
    ps = [getattr(mod, p.name) for p in mod.fn.params]
    args = [x.detach().clone().requires_grad_(), mod.weight, mod.bias] + ps
    args = [a.detach().clone().requires_grad_() for a in args]

    def f(x, w, b, *ps):
        return dt._apply(mod._dnc_source, mod._dnc_name, 0, x, w, b, ps)
    return f, tuple(args)


@pytest.mark.slow
def test_gradchecks():
    x = torch.randn(3, 5, 8, dtype=torch.float64) * 2
    for name in ("dyt", "derf", "dyisru"):
        mod = randomize(dt.PointwiseNorm(8, name, dtype=torch.float64))
        f, args = inputs(mod, x * (10 if name == "dyisru" else 1))
        ok(gradcheck(f, args, eps=1e-6, atol=1e-8, rtol=1e-6),
           "gradcheck %s (float64): input, %s, weight, bias" % (
               name, ", ".join(p.name for p in mod.fn.params)))
        ok(gradgradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5),
           "gradgradcheck %s: double backward from dnc's derivatives" % name)
    m = dnc.compile("fn derf_pc(x; alpha = 0.5, s[] = 0) = erf(alpha * x + s)")
    mod = randomize(dt.PointwiseNorm(8, m["derf_pc"], dtype=torch.float64,
                                     s=torch.linspace(-0.5, 0.5, 8)))
    f, args = inputs(mod, x)
    ok(gradcheck(f, args, eps=1e-6, atol=1e-8, rtol=1e-6) and
       gradgradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5),
       "gradcheck and gradgradcheck with a per-channel parameter")
    mod = dt.PointwiseNorm(8, "derf", dtype=torch.float64,
                           elementwise_affine=False)
    ps = [getattr(mod, p.name).detach().clone().requires_grad_()
          for p in mod.fn.params]
    xx = x.clone().requires_grad_()
    ok(gradcheck(lambda x, *p: dt._apply(mod._dnc_source, mod._dnc_name, 0,
                                         x, None, None, p),
                 (xx, *ps), eps=1e-6, atol=1e-8, rtol=1e-6),
       "gradcheck without weight and bias")


@pytest.mark.slow
def test_corpus_sample():
    """Smooth functions of the random corpus (no branches or kinks), with
    finite values and moderate derivatives on the sample: gradcheck each."""
    gen = os.path.join(B, "tests", "gen_corpus")
    src = subprocess.run([gen, "300", "5"], capture_output=True,
                         text=True).stdout.splitlines()
    kink = re.compile(r"\b(if|abs|sign|min|max|clamp)\b")
    x = (torch.rand(4, 6, dtype=torch.float64) * 3 - 1.5)
    checked = []
    for line in src:
        if kink.search(line) or "^" in line and "x)^" not in line:
            continue
        fn = dt.resolve(line)
        xs = x.detach().numpy().ravel()
        y = fn.eval(xs)
        d = fn.derivative("x").eval(xs)
        if not (abs(y).max() < 1e3 and abs(d).max() < 1e3 and
                abs(d).max() > 1e-3) or any(y != y) or any(d != d):
            continue
        mod = randomize(dt.PointwiseNorm(6, fn, dtype=torch.float64), 0.05)
        f, args = inputs(mod, x)
        # parameter values must stay where the function is smooth too
        vals = [float(a.detach()) for a in args[3:]]
        ps = {p.name: v for p, v in zip(fn.params, vals)}
        y2 = fn.eval(xs, **ps)
        if any(y2 != y2) or abs(y2).max() > 1e3:
            continue
        good = gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-5,
                         raise_exception=False)
        ok(good, "gradcheck corpus %s" % fn.name, line)
        checked.append(fn.name)
        if len(checked) == 8:
            break
    ok(len(checked) == 8, "8 functions of the corpus checked", checked)


def test_against_plain_torch():
    c = 64
    for ref_cls, name in ((DyT, "dyt"), (Derf, "derf")):
        ref = randomize(ref_cls(c))
        mod = dt.PointwiseNorm(c, name)
        mod.load_state_dict(ref.state_dict())
        x = torch.randn(16, 32, c) * 3
        dy = torch.randn(16, 32, c)
        # float32: forward within 2e-6 relative (a few ulp), dx the same,
        # the sums (weight, bias, parameters over 16*32 rows) within 1e-4
        # of PyTorch's float32 sums (dnc adds in double)
        outs = []
        for m in (ref, mod):
            xx = x.clone().requires_grad_()
            y = m(xx)
            y.backward(dy)
            outs.append([y, xx.grad] + [p.grad for p in m.parameters()])
        y0, y1 = outs[0][0], outs[1][0]
        ok(torch.allclose(y1, y0, rtol=2e-6, atol=2e-6),
           "%s f32 forward = PyTorch's within 2e-6" % name,
           lambda: (y1 - y0).abs().max())
        ok(torch.allclose(outs[1][1], outs[0][1], rtol=1e-5, atol=1e-6),
           "%s f32 dx = PyTorch's within 1e-5" % name,
           lambda: (outs[1][1] - outs[0][1]).abs().max())
        names = [n for n, _ in ref.named_parameters()]
        for i, pname in enumerate(names):
            g0, g1 = outs[0][2 + i], outs[1][2 + i]
            ok(torch.allclose(g1, g0, rtol=1e-4, atol=1e-4),
               "%s f32 d%s = PyTorch's within 1e-4" % (name, pname),
               lambda: "%s vs %s" % (g1, g0))
        # bfloat16: dnc computes in f32 and rounds once, so its forward is
        # within 1 bf16 ulp (2^-8 relative) of the exact value of the bf16
        # inputs; PyTorch's bf16 module rounds every step. Both agree with
        # each other within 2^-6 (relative, and absolute for values near
        # 0), and the gradients of the weights within 2^-5 of the exact
        # float64 sums.
        refb = ref_cls(c)
        refb.load_state_dict(ref.state_dict())
        refb = refb.to(torch.bfloat16)
        modb = dt.PointwiseNorm(c, name, dtype=torch.bfloat16)
        modb.load_state_dict(refb.state_dict())
        ref64 = ref_cls(c).double()
        ref64.load_state_dict(refb.state_dict())
        xb = x.bfloat16()
        dyb = dy.bfloat16()
        res = []
        for m, xin, din in ((refb, xb, dyb), (modb, xb, dyb),
                            (ref64, xb.double(), dyb.double())):
            xx = xin.clone().requires_grad_()
            y = m(xx)
            y.backward(din)
            res.append([y, xx.grad] + [p.grad for p in m.parameters()])
        yt, yd, ye = res[0][0].double(), res[1][0].double(), res[2][0]
        ok(res[1][0].dtype == torch.bfloat16 and
           ((yd - ye).abs() <= 2 ** -8 * ye.abs() + 1e-5).all(),
           "%s bf16 forward within 1 ulp (+1e-5) of exact" % name,
           lambda: ((yd - ye).abs() / ye.abs()).max())
        ok(torch.allclose(yd, yt, rtol=2 ** -6, atol=2 ** -6),
           "%s bf16 forward = PyTorch bf16 within 2^-6" % name,
           lambda: (yd - yt).abs().max())
        dxd, dxe = res[1][1].double(), res[2][1]
        ok(((dxd - dxe).abs() <= 2 ** -7 * dxe.abs() + 2 ** -20).all(),
           "%s bf16 dx within 2 ulp of exact" % name,
           lambda: ((dxd - dxe).abs() / dxe.abs()).max())
        ok(torch.allclose(dxd, res[0][1].double(), rtol=2 ** -5,
                          atol=2 ** -6),
           "%s bf16 dx = PyTorch bf16 within 2^-5" % name)
        for i, pname in enumerate(names):
            gd, ge = res[1][2 + i].double(), res[2][2 + i]
            ok(res[1][2 + i].dtype == torch.bfloat16 and
               torch.allclose(gd, ge, rtol=2 ** -7, atol=2 ** -7),
               "%s bf16 d%s within 1 ulp of the exact sum" % (name, pname),
               lambda: "%s vs %s" % (gd, ge))
    # float16 storage, against float32
    mod = dt.PointwiseNorm(c, "derf")
    mh = dt.PointwiseNorm(c, "derf", dtype=torch.float16)
    x = torch.randn(8, c)
    ok(torch.allclose(mh(x.half()).float(), mod(x.half().float()),
                      rtol=2 ** -10, atol=2 ** -14),
       "float16 forward = float32's rounded (within 1 ulp)")


def test_threads_bitwise():
    x = torch.randn(300, 1000)
    dy = torch.randn(300, 1000)
    grads = []
    for t in (1, 2):
        torch.manual_seed(1)
        mod = randomize(dt.PointwiseNorm(1000, "derf", threads=t))
        ok(mod.fn.module.context.threads == t, "threads=%d is used" % t)
        xx = x.clone().requires_grad_()
        mod(xx).backward(dy)
        grads.append([xx.grad] + [p.grad for p in mod.parameters()])
    ok(all(torch.equal(a, b) for a, b in zip(*grads)),
       "every gradient bitwise equal on 1 and 2 threads")


def _step(mod, x, dy):
    xx = x.clone().requires_grad_()
    mod.zero_grad(set_to_none=True)
    y = mod(xx)
    y.backward(dy)
    return [y.detach(), xx.grad] + [p.grad for p in mod.parameters()]


def test_openmp_runtime():
    """dnc.torch's kernel threads are PyTorch's OpenMP threads where ATen
    runs on OpenMP: the same bits as on dnc's own, in a fork()ed child
    too; Context.use_openmp's refusals."""
    ctx = dnc.Context(threads=2)
    raises(dnc.LoadError, lambda: ctx.use_openmp("libdnc-no-such-omp.so"),
           "a runtime that is not loaded", "is not loaded in this process")
    raises(dnc.Error, lambda: ctx.use_openmp(""), "an empty name",
           "the library's name is empty")
    ctx.use_openmp(None)
    ok(ctx.openmp is None, "None: dnc's own threads")

    lib = dt._torch_openmp()
    on_omp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    ok((lib is not None) == on_omp and (lib is None or "omp" in lib),
       "ATen's OpenMP runtime is found where ATen runs on OpenMP",
       lambda: "found %r; %s" % (lib, torch.__config__.parallel_info()))
    torch.manual_seed(3)
    mod = randomize(dt.PointwiseNorm(1000, "dyt", threads=2))
    tctx = mod.fn.module.context
    ok(tctx.openmp == lib, "the module's context runs on it (%r)" % lib)
    x = torch.randn(300, 1000) * 3
    dy = torch.randn(300, 1000)
    torch.randn(512, 512) @ torch.randn(512, 512)  # ATen's team, spinning
    got = _step(mod, x, dy)
    try:
        tctx.use_openmp(None)
        ref = _step(mod, x, dy)
    finally:
        tctx.use_openmp(lib)
    ok(all(torch.equal(a, b) for a, b in zip(got, ref)),
       "y and every gradient bitwise the same on ATen's team and on dnc's "
       "own threads")
    pid = os.fork()
    if pid == 0:  # a DataLoader-style worker: dnc's own threads there
        code = 1
        try:
            signal.alarm(120)
            # as DataLoader's workers do: ATen's OpenMP team does not
            # survive a fork (x.clone() on 2 threads hangs in the child)
            torch.set_num_threads(1)
            code = 0 if all(torch.equal(a, b) for a, b in
                            zip(_step(mod, x, dy), ref)) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
       "a fork()ed child computes the same bits", "status %d" % status)
    out = subprocess.run(
        [sys.executable, "-c", "import dnc.torch as dt; "
         "print(dt._torch_openmp(), dt._context(2).openmp)"],
        env=dict(os.environ, DNC_TORCH_OPENMP="0"), capture_output=True,
        text=True, timeout=300)
    ok(out.returncode == 0 and out.stdout.split() == ["None", "None"],
       "DNC_TORCH_OPENMP=0: dnc's own threads", out.stdout + out.stderr)


def test_module_behaviour():
    mod = randomize(dt.PointwiseNorm(16, "dyt"))
    ok([n for n, _ in mod.named_parameters()] == ["alpha", "weight", "bias"]
       and mod.alpha.shape == (1,), "parameters named and shaped as DyT's")
    m2 = dt.PointwiseNorm(16, "fn g(x; a = 2, s[] = 0.25) = tanh(a * x + s)",
                          a=3.0)
    ok(float(m2.a) == 3.0 and m2.s.shape == (16,) and
       float(m2.s[5]) == 0.25, "init from keyword and DSL defaults")
    buf = io.BytesIO()
    torch.save(mod.state_dict(), buf)
    buf.seek(0)
    fresh = dt.PointwiseNorm(16, "dyt")
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(4, 16)
    ok(torch.equal(fresh(x), mod(x)), "state_dict round trip")
    ref = DyT(16)
    ref.load_state_dict(mod.state_dict())
    ok(torch.allclose(ref(x), mod(x), atol=2e-6),
       "the state_dict loads into the DyT repository's module")
    with torch.no_grad():
        y = mod(x.requires_grad_())
    ok(y.grad_fn is None and torch.equal(y, mod(x).detach()),
       "under no_grad: no graph, same values")
    big = torch.randn(6, 40)
    v = big[:, 3:19]
    ok(torch.equal(mod(v), mod(v.contiguous())), "a strided view (no copy)")
    t = torch.randn(16, 6).t()
    ok(torch.equal(mod(t), mod(t.contiguous())), "a transposed input")
    e = torch.randn(16).expand(5, 16)
    xx = e.clone().requires_grad_()
    yy = mod(e)
    ok(torch.equal(yy, mod(xx)), "an expanded (stride 0) input")
    dyexp = torch.randn(16).expand(5, 16)
    g1 = torch.autograd.grad(mod(xx), xx, dyexp)[0]
    g2 = torch.autograd.grad(mod(xx), xx, dyexp.contiguous())[0]
    ok(torch.equal(g1, g2), "an expanded dy")
    y = dt.pointwise(x, "derf", weight=torch.ones(16) * 2, alpha=0.7)
    ok(torch.allclose(y, 2 * torch.erf(0.7 * x), atol=1e-6),
       "the functional form")
    ok("fn=dyt" in repr(mod), "repr names the function", repr(mod))


def test_converting():
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16),
                          nn.TransformerEncoderLayer(16, 2, 32,
                                                     batch_first=True),
                          nn.LayerNorm(16, elementwise_affine=False))
    with torch.no_grad():
        model[1].weight.fill_(2.0)
    kept = dt.convert_layernorm(model, "derf", keep_affine=True, alpha=0.7)
    norms = [m for m in kept.modules() if isinstance(m, dt.PointwiseNorm)]
    ok(len(norms) == 4 and not any(isinstance(m, nn.LayerNorm)
                                   for m in kept.modules()),
       "convert_layernorm replaces all 4 LayerNorms", kept)
    ok(float(norms[0].weight[0]) == 2.0 and
       abs(float(norms[0].alpha) - 0.7) < 1e-7
       and norms[3].weight is None, "keep_affine, init and affine options")
    x = torch.randn(3, 5, 8)
    opt = torch.optim.SGD(kept.parameters(), lr=0.1)
    a0 = float(norms[1].alpha)
    loss = kept(x).pow(2).mean()
    loss.backward()
    opt.step()
    ok(float(norms[1].alpha) != a0 and all(
        p.grad is not None for n in norms for p in n.parameters()),
       "a training step reaches every converted parameter")
    ok(isinstance(dt.convert_layernorm(nn.LayerNorm(4), "dyt"),
                  dt.PointwiseNorm), "a LayerNorm itself is converted")


def test_errors():
    mod = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(2, 8)
    raises(RuntimeError, lambda: mod(x.to("meta")), "an input on another "
           "device than the module", "move the module")
    raises(TypeError, lambda: mod(torch.ones(2, 8, dtype=torch.int32)),
           "an integer input", "float32, float64, bfloat16 or float16")
    raises(ValueError, lambda: mod(torch.randn(2, 7)), "a wrong last "
           "dimension", "last dimension is 7")
    raises(TypeError, lambda: mod(x.double()), "input and parameters of "
           "different dtypes", "convert the module")
    raises(ValueError, lambda: dt.PointwiseNorm(8, "dyt", threads=0),
           "threads=0", "int from 1 to 1024, not 0")
    raises(TypeError, lambda: dt.PointwiseNorm(8, "dyt", beta=1),
           "an unknown parameter", "no parameter 'beta'")
    raises(ValueError, lambda: dt.PointwiseNorm((4, 8), "dyt"),
           "two normalized dimensions", "normalizes over one dimension")
    raises(ValueError, lambda: dt.PointwiseNorm(-1, "dyt"),
           "C = -1", "number of channels, 0 or more, not -1")
    raises(TypeError, lambda: dt.PointwiseNorm(("8",), "dyt"),
           "C a string", "C an int, not '8'")
    raises(ValueError, lambda: dt.PointwiseNorm(8, "nosuch"),
           "an unknown name", "not one of")
    raises(ValueError, lambda: dt.PointwiseNorm(
        8, "fn a(x) = x\nfn b(x) = x"), "source with two functions",
        "defines 2 functions")
    raises(dnc.SourceError, lambda: dt.PointwiseNorm(8, "fn a(x) = tan(x)"),
           "a source error", "<dnc.torch>:1:")
    raises(ValueError, lambda: dt.PointwiseNorm(
        8, "fn a(x; weight = 1) = weight * x"), "a parameter named weight",
        "clashes")
    raises(ValueError, lambda: dt.PointwiseNorm(8, "derf", alpha=[1, 2]),
           "a scalar parameter given two values", "one value")
    raises(ValueError, lambda: dt.convert_layernorm(nn.LayerNorm((2, 4)),
                                                    "dyt"),
           "convert_layernorm of a 2-D LayerNorm", "last dimension only")
    raises(ValueError, lambda: dt.pointwise(torch.randn(3, 4), "dyt",
                                            weight=torch.ones(5)),
           "a weight of the wrong size", "last dimension is 4")



@pytest.mark.parametrize("channels_last", [True, False],
                         ids=["last", "channels_first"])
def test_zero_channels(channels_last):
    """PointwiseNorm(0), as nn.LayerNorm(0): an empty y, empty gradients
    (and the scalar parameters' 0), on the kernels and the decomposed
    form, to the second order. It was refused, saying that (0,) is not
    "C or (C,)"."""
    m = dt.PointwiseNorm(0, "fn g(x; a = 0.7, s[] = 0.1) = erf(a * x + s)",
                         channels_last=channels_last)
    ok(m.s.shape == (0,) and m.weight.shape == (0,), "no channel values")
    shape = (3, 0) if channels_last else (3, 0, 4)
    for dec in (False, True):
        m.zero_grad(set_to_none=True)
        x = torch.randn(shape, requires_grad=True)
        with dt.decomposed(dec):
            y = m(x)
            g, = torch.autograd.grad(y.sum(), x, create_graph=True)
            g.sum().backward()
        what = "decomposed" if dec else "kernels"
        ok(y.shape == shape and g.shape == shape, what + ": empty y and dx")
        ok(m.s.grad.shape == (0,) and torch.equal(m.a.grad, torch.zeros(1)),
           what + ": ds empty, da 0", (m.s.grad, m.a.grad))


@pytest.mark.skipif(dt.HAS_CUSTOM_OPS, reason="PyTorch %s has custom ops; "
                    "the refusal is for PyTorch 1.13" % torch.__version__)
def test_pytorch2_features_refuse_on_1_13():
    raises(RuntimeError, lambda: dt.require_custom_ops("torch.export of a "
                                                       "PointwiseNorm"),
           "what needs torch.library.custom_op refuses on PyTorch 1.13",
           "needs PyTorch 2.4 or later")
    ok(not hasattr(torch.ops, "dnc") or
       not hasattr(torch.ops.dnc, "layer_forward"),
       "no torch.ops.dnc on PyTorch 1.13")
    if not hasattr(torch, "compile"):
        # torch.jit.script's refusal names only what this PyTorch has
        raises(TypeError, lambda: torch.jit.script(dt.PointwiseNorm(4, "dyt")),
               "torch.jit.script on 1.13",
               "use torch.jit.trace (torch.compile and torch.export need "
               "PyTorch 2")


def _vmap():
    f = getattr(getattr(torch, "func", None), "vmap", None)
    if f is None:
        try:
            from functorch import vmap as f
        except ImportError:
            f = None
    return f


@pytest.mark.parametrize("layout", ["last", "first"])
def test_vmap_without_gradient(layout):
    """vmap of a norm with no gradient to take (no_grad): PyTorch 1.13's
    functorch as well as torch.func, whose batched tensors have no storage
    for the kernels; the decomposed form computes it."""
    vmap = _vmap()
    if vmap is None:
        pytest.skip("no vmap in this PyTorch")
    torch.manual_seed(3)
    first = layout == "first"
    norm = dt.PointwiseNorm(6, "derf", channels_last=not first)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
        norm.shift.fill_(0.25)
    x = torch.randn(3, 4, 6, 5) if first else torch.randn(3, 4, 5, 6)
    shape = (-1, 1) if first else (-1,)  # a sample is [N, C, W]
    ref = norm.weight.view(shape) * torch.erf(norm.alpha * x + norm.shift) \
        + norm.bias.view(shape)
    with torch.no_grad():
        y = vmap(norm)(x)
    ok(torch.allclose(y, ref, atol=1e-6), "vmap of a %s norm under "
       "no_grad" % layout)


def _plain_reference(model):
    """model with each PointwiseNorm of derf replaced by the plain PyTorch
    Derf module holding the same values."""
    ref = copy.deepcopy(model)

    def swap(m):
        for name, child in m.named_children():
            if isinstance(child, dt.PointwiseNorm):
                d = Derf(child.normalized_shape[0])
                d.eps = float("nan")  # keeps PyTorch's fused path away too
                d.load_state_dict(child.state_dict())
                setattr(m, name, d)
            else:
                swap(child)
    swap(ref)
    return ref


@pytest.mark.parametrize("mask", [False, True])
def test_transformer_encoder_eval(mask):
    # eval mode, batch_first: PyTorch's fused fast path would compute
    # LayerNorm (or fail on a missing eps); PointwiseNorm.eps is NaN, so
    # the path declines and the layers call the converted norms
    torch.manual_seed(5)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0,
                                       batch_first=True)
    model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16))
    model = dt.convert_layernorm(model, "derf", alpha=0.7)
    for m in model.modules():
        if isinstance(m, dt.PointwiseNorm):
            randomize(m)
    x = torch.randn(3, 5, 16)
    pad = torch.zeros(3, 5, dtype=torch.bool)
    pad[0, 3:] = True
    kw = {"src_key_padding_mask": pad} if mask else {}
    model.train()
    y_train = model(x, **kw)
    model.eval()
    with torch.no_grad():
        y_eval = model(x, **kw)
    y_ref = _plain_reference(model).eval()(x, **kw)
    if mask:  # the fast path returns padded positions as 0: compare the rest
        keep = ~pad
        y_train, y_eval, y_ref = y_train[keep], y_eval[keep], y_ref[keep]
    ok(torch.allclose(y_eval, y_train, rtol=0, atol=1e-6),
       "eval = train mode with dropout 0", lambda: (y_eval - y_train).abs()
       .max())
    ok(torch.allclose(y_eval, y_ref, rtol=1e-5, atol=1e-5),
       "eval = the plain PyTorch Derf reference",
       lambda: (y_eval - y_ref).abs().max())
    ok(PointwiseNormEps(), "PointwiseNorm.eps is NaN")


def PointwiseNormEps():
    e = dt.PointwiseNorm(4, "dyt").eps
    return e != e


# -------------------------------------------- large outputs' storage reuse

def test_output_reuse():
    """Outputs of 1 MiB and more come from a storage dnc.torch made
    before only once nothing else holds it (a live output, a view of one
    or a kept .grad is never written over), with right values either way;
    set_output_reuse(0) turns it off. PyTorch 1.13 cannot count a
    storage's uses: there every output is fresh."""
    can = getattr(torch._C, "_storage_Use_Count", None) is not None
    old = dt.set_output_reuse(4)
    try:
        cols = 4096
        norm = dt.PointwiseNorm(cols, "dyt", threads=1)
        ref = DyT(cols)
        x = torch.randn(1024, cols) * 3  # 16 MiB in f32
        want = ref(x).detach()

        def same(y, name):
            ok(torch.allclose(y, want, rtol=1e-6, atol=1e-6), name,
               lambda: "max diff %g" % (y - want).abs().max())
        with torch.no_grad():
            y1 = norm(x)
            p1 = y1.data_ptr()
            same(y1, "first output right")
            y2 = norm(x)  # y1 alive: never its storage
            ok(y2.data_ptr() != p1, "a live output's storage is not reused")
            same(y1, "... and the live output is unchanged")
            v = y1[3:5]  # a view holds the storage
            del y1
            y3 = norm(x * 0.5)
            ok(y3.data_ptr() != p1, "a storage a view holds is not reused")
            ok(torch.allclose(v, want[3:5]), "... the view unchanged")
            del v, y2, y3
            y4 = norm(x)
            if can:  # (1.13: a fresh block may land at the same address)
                ok(y4.data_ptr() == p1, "a storage nothing holds is reused")
            same(y4, "... with the right values")
            # the storage object alone (y.untyped_storage(), or inside
            # y.storage()), which PyTorch hands out as the same object
            # dnc.torch keeps: it holds the data too (PyTorch 2)
            for how in ("untyped_storage", "storage") if can else ():
                y5 = norm(x * 0.25)
                with warnings.catch_warnings():  # TypedStorage is deprecated
                    warnings.simplefilter("ignore")
                    st = getattr(y5, how)()
                p5, keep5 = y5.data_ptr(), y5.clone()
                del y5
                y6 = norm(x * 0.75)
                ok(y6.data_ptr() != p5, "a storage the caller holds through "
                   "y.%s() is not reused" % how)
                held = torch.empty(0).set_(
                    st if how == "untyped_storage" else st._untyped_storage,
                    0, keep5.shape)
                ok(torch.equal(held, keep5), "... and it still holds y")
                del st, held, y6
        # backward: dx's storage, and a .grad kept by the caller
        xg = x.clone().requires_grad_()
        dy = torch.randn_like(x)
        norm(xg).backward(dy)
        g1 = xg.grad
        xr = x.clone().requires_grad_()
        ref.load_state_dict(norm.state_dict(), strict=False)
        ref(xr).backward(dy)
        ok(torch.allclose(g1, xr.grad, rtol=1e-5, atol=1e-5), "dx right")
        keep = g1.clone()
        xg2 = x.clone().requires_grad_()
        norm(xg2).backward(dy)  # g1 is still xg.grad: not written
        ok(torch.equal(xg.grad, keep), "a kept .grad is never written over")
        ok(torch.equal(xg2.grad, keep), "... and the new dx is right")
        # off: fresh storages only
        dt.set_output_reuse(0)
        with torch.no_grad():
            y5 = norm(x)
            p5 = y5.data_ptr()
            del y5
            y6 = norm(x)
            same(y6, "reuse off: right values")
        ok(dt._reuse == [], "reuse off: nothing kept")
        del y6, p5
        raises(ValueError, lambda: dt.set_output_reuse(-1),
               "a negative count is refused", "must be >= 0")
    finally:
        dt.set_output_reuse(old)


def test_numpy_integers_for_shape_and_threads():
    """normalized_shape and threads as NumPy integers, as nn.LayerNorm takes
    them; a bool is not a thread count."""
    np = pytest.importorskip("numpy")
    n = dt.PointwiseNorm(np.int64(8), "dyt", threads=np.int32(2))
    ok(n.normalized_shape == (8,) and n._dnc_threads == 2 and
       type(n._dnc_threads) is int, "taken as ints")
    ok(dt.PointwiseNorm((np.int64(8),), "dyt").normalized_shape == (8,),
       "a tuple of them too")
    raises(ValueError, lambda: dt.PointwiseNorm(8, "dyt", threads=True),
           "threads=True", "int from 1 to 1024, not True")


def test_thread_counts_out_of_range_refused_where_given():
    """A thread count over libdnc's 1024 is refused as 0 and -1 are, with
    a ValueError where it is given: by PointwiseNorm, convert and
    pointwise, not by the first compile for that count (a
    dnc.ArgumentError, a Context's message). pointwise takes 0 as None."""
    src = "fn g(x; a = 0.7) = tanh(a * x)"
    x = torch.randn(2, 8)
    for t in (1025, 0, -1, 2.0, True):
        raises(ValueError, lambda: dt.PointwiseNorm(8, src, threads=t),
               "PointwiseNorm threads=%r" % (t,),
               "threads is None or an int from 1 to 1024, not %r" % (t,))
        raises(ValueError, lambda: dt.convert(nn.LayerNorm(8), src,
                                              threads=t),
               "convert threads=%r" % (t,),
               "threads is None or an int from 1 to 1024, not %r" % (t,))
        if t != 0:
            raises(ValueError, lambda: dt.pointwise(x, src, threads=t),
                   "pointwise threads=%r" % (t,),
                   "threads is None or an int from 0 to 1024, not %r"
                   % (t,))
    want = torch.tanh(0.7 * x)
    for t in (None, 0, 1, 2):
        ok(torch.allclose(dt.pointwise(x, src, threads=t), want, atol=1e-6),
           "pointwise threads=%r" % (t,))
    ok(dt.PointwiseNorm(8, src, threads=1024)._dnc_threads == 1024,
       "PointwiseNorm takes 1024")


def test_create_graph_low_precision_sums():
    """create_graph's first-order gradients of bf16 and f16 layers are
    formed and summed in float32, as the fused kernels do. Formed in the
    storage type, they were off by 0.0077 (shift, bf16), 0.010 (alpha,
    bf16, channels first) and 0.015 (alpha, f16) on this sweep's data
    (seed 0, in this order: a user's probe), against a float64 reference;
    now by at most 0.0051 and 0.0011."""
    torch.manual_seed(0)
    tols = {torch.float32: 1e-5, torch.bfloat16: 0.006,
            torch.float16: 0.003}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for channels_last in (True, False):
            n = dt.PointwiseNorm(64, "derf", channels_last=channels_last,
                                 dtype=dtype)
            shape = (4096, 64) if channels_last else (64, 64, 8, 8)
            x = torch.randn(*shape).to(dtype).requires_grad_()
            dy = torch.randn_like(x)
            ps = [x, n.alpha, n.shift, n.weight, n.bias]
            got = torch.autograd.grad(n(x), ps, dy, create_graph=True)
            ref_in = [t.detach().double().requires_grad_() for t in ps]
            xd, a, s, w, b = ref_in
            sh = (-1,) if channels_last else (-1, 1, 1)
            yr = torch.erf(a * xd + s) * w.reshape(sh) + b.reshape(sh)
            want = torch.autograd.grad(yr, ref_in, dy.double())
            for name, g, r in zip(("x", "alpha", "shift", "weight", "bias"),
                                  got, want):
                err = ((g.double() - r).abs().max() / r.abs().max()).item()
                ok(err < tols[dtype] and g.dtype == dtype,
                   "%s, %s, %s's gradient within %g (%.2g)" % (
                       dtype, "last dim" if channels_last else
                       "channels first", name, tols[dtype], err))


def test_inference_path():
    """Calls nothing will differentiate (torch.no_grad, inference_mode, no
    input requiring grad) run the kernels without an autograd.Function:
    the same bits as the recorded call; a forward-mode dual level still
    gets its tangent, and a trace under no_grad still records the layer."""
    torch.manual_seed(3)
    mod = dt.PointwiseNorm(24, "derf", alpha=0.7)
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-0.2, 0.2)
    x = torch.randn(5, 24)
    recorded = mod(x)
    ok(recorded.grad_fn is not None, "a recorded call has a graph")
    with torch.no_grad():
        y = mod(x)
    ok(y.grad_fn is None and torch.equal(y, recorded.detach()),
       "no_grad: the same bits, no graph")
    with torch.inference_mode():
        y = mod(x)
    ok(torch.equal(y, recorded.detach()), "inference_mode: the same bits")
    frozen = dt.PointwiseNorm(24, "derf", alpha=0.7).requires_grad_(False)
    frozen.load_state_dict(mod.state_dict())
    y = frozen(x)
    ok(y.grad_fn is None and torch.equal(y, recorded.detach()),
       "nothing requires grad: the same bits, no graph")
    import torch.autograd.forward_ad as fwad
    x64 = torch.randn(3, 24, dtype=torch.float64)
    v = torch.randn(3, 24, dtype=torch.float64)
    m64 = dt.PointwiseNorm(24, "dyt", dtype=torch.float64).requires_grad_(
        False)
    h = 1e-6
    fd = (m64(x64 + h * v) - m64(x64 - h * v)) / (2 * h)
    with torch.no_grad(), fwad.dual_level():
        t = fwad.unpack_dual(m64(fwad.make_dual(x64, v))).tangent
    ok(t is not None and torch.allclose(t, fd, rtol=1e-6, atol=1e-8),
       "forward_ad under no_grad: the tangent is carried")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = torch.jit.trace(mod, x)
    x2 = torch.randn(7, 24)
    ok(torch.equal(tr(x2), mod(x2)),
       "a trace made under no_grad computes the layer on new inputs")


def test_plain_path_is_the_full_path():
    """PointwiseNorm's common call (a plain CPU tensor in eager mode, the
    module's own dtype) goes to the kernels by one pass of cheap tests
    (_plain_forward): the same bits and gradients as the whole path
    (_norm_forward), and every other call still gets the whole path's
    checks and errors."""
    torch.manual_seed(5)
    src = "fn pc(x; a = 0.6, s[] = 0.1) = erf(a * x + s)"
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for fn in ("dyt", src):
            mod = dt.PointwiseNorm(16, fn, dtype=dtype)
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
            x = torch.randn(3, 5, 16, dtype=dtype)
            dy = torch.randn(3, 5, 16, dtype=dtype)
            params = [getattr(mod, p.name) for p in mod._dnc_params]
            outs = []
            for plain in (True, False):
                mod.zero_grad(set_to_none=True)
                xx = x.clone().requires_grad_()
                args = (16, True, mod._dnc_source, mod._dnc_name, 0,
                        mod._dnc_params, xx, mod.weight, mod.bias, params)
                if plain:
                    y = dt._plain_forward(*args)
                    ok(y is not None, "the plain call takes the short path")
                else:
                    y = dt._norm_forward(*args)
                y.backward(dy)
                outs.append([y.detach(), xx.grad] +
                            [p.grad for p in mod.parameters()])
            ok(all(torch.equal(a, b) for a, b in zip(*outs)),
               "%s %s: the same bits, forward and every gradient" % (
                   dtype, mod._dnc_name))
    mod = dt.PointwiseNorm(16, src)
    params = [getattr(mod, p.name) for p in mod._dnc_params]

    def short(x, channels_last=True, weight=mod.weight, params=params):
        return dt._plain_forward(16, channels_last, mod._dnc_source,
                                 mod._dnc_name, 0, mod._dnc_params, x,
                                 weight, mod.bias, params)
    x = torch.randn(2, 16)
    ok(short(x.double()) is None, "x in another dtype than the module")
    ok(short(torch.randn(2, 16, 3, 3), channels_last=False) is None,
       "channels first on 4 dimensions")
    ok(short(torch.randn(2, 8)) is None, "another last dimension")
    ok(short(x, weight=mod.weight.double()) is None, "weight's dtype")
    ok(short(x, params=[params[0], params[1][:1].expand(2, 8)]) is None,
       "a per-channel parameter of another shape")
    ok(short(torch.tensor(1.0)) is None, "a 0-d input")
    ok(short(nn.Parameter(x)) is None, "a tensor subclass")
    with dt.decomposed():
        ok(short(x) is None, "dnc.torch.decomposed()")
    raises(TypeError, lambda: mod(x.double()), "x in another dtype: the "
           "whole path's error", "convert the module")
    raises(ValueError, lambda: mod(torch.randn(2, 8)), "another last "
           "dimension: the whole path's error", "last dimension is 8")
    import torch.autograd.forward_ad as fwad
    m64 = dt.PointwiseNorm(16, "dyt", dtype=torch.float64)
    x64 = torch.randn(3, 16, dtype=torch.float64)
    v = torch.randn(3, 16, dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        fd = (m64(x64 + h * v) - m64(x64 - h * v)) / (2 * h)
    with fwad.dual_level():
        t = fwad.unpack_dual(m64(fwad.make_dual(x64, v))).tangent
    ok(t is not None and torch.allclose(t, fd, rtol=1e-6, atol=1e-8),
       "forward_ad with grad on: the tangent is carried")


@pytest.mark.parametrize("path", ["kernels", "python", "decomposed"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_output_changed_in_place(path, channels_last, monkeypatch):
    """A norm's output may be changed in place after it (a conv net's
    ReLU(inplace=True) after its LayerNorm2d): the channels-first Python
    path returned a view made inside its autograd.Function, which autograd
    refuses to change in place. Values and gradients as plain PyTorch's,
    on every path: the C++ call, the Python (ctypes) one, the decomposed
    form."""
    if path == "python":
        monkeypatch.setattr(dt, "_ext", None)
    torch.manual_seed(3)
    shape = (2, 8, 5, 5) if not channels_last else (2, 5, 8)
    for sub in ([0, 1] if not channels_last else [0]):
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        if sub:  # a channels_last memory format input
            x = x.detach().to(memory_format=torch.channels_last) \
                .requires_grad_()
        m = dt.PointwiseNorm(8, "dyt", channels_last=channels_last,
                             alpha=0.9, dtype=torch.float64)
        with torch.no_grad():
            m.bias.uniform_(-1, 1)
        with dt.decomposed(path == "decomposed"):
            y = m(x)
            y.relu_()
            y.sum().backward()
        got = [x.grad, m.alpha.grad, m.weight.grad, m.bias.grad]
        sh = (-1,) if channels_last else (1, -1, 1, 1)
        for t in (x, m.alpha, m.weight, m.bias):
            t.grad = None
        ref = torch.relu(m.weight.reshape(sh) * torch.tanh(m.alpha * x) +
                         m.bias.reshape(sh))
        ref.sum().backward()
        ok(torch.allclose(y, ref, rtol=1e-12, atol=1e-12), "values")
        for g, t, name in zip(got, (x, m.alpha, m.weight, m.bias),
                              ("x", "alpha", "weight", "bias")):
            ok(torch.allclose(g, t.grad, rtol=1e-10, atol=1e-12),
               "d" + name, lambda: (g - t.grad).abs().max())


def test_pointwise_weight_and_bias_as_numbers():
    """pointwise takes weight and bias as lists (as its parameters); a
    shape other than (C,), a non-number and another dtype are refused
    with pointwise's own errors (they were AttributeErrors, and the dtype
    error told to convert a module there is none of)."""
    x = torch.randn(3, 4)
    w, b = [1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -0.5, 1.0]
    y = dt.pointwise(x, "dyt", weight=w, bias=b)
    want = torch.tensor(w) * torch.tanh(0.5 * x) + torch.tensor(b)
    ok(torch.allclose(y, want), "values", lambda: (y - want).abs().max())
    raises(ValueError, lambda: dt.pointwise(x, "dyt", bias=1.0), "a number",
           "pointwise: bias has shape (); the input's last dimension is 4")
    raises(ValueError, lambda: dt.pointwise(x, "dyt", weight=[1.0] * 3),
           "3 values", "weight has shape (3,)")
    raises(TypeError, lambda: dt.pointwise(x, "dyt", weight="a"),
           "a string", "weight is a tensor, a number or a list of numbers")
    raises(TypeError, lambda: dt.pointwise(
        x, "dyt", weight=torch.ones(4, dtype=torch.float64)), "float64",
        "give it as torch.float32 (weight.to(torch.float32))")


def _functional_calls():
    calls = []
    try:
        from torch.nn.utils.stateless import functional_call
        calls.append(pytest.param(functional_call, id="nn.utils.stateless"))
    except ImportError:
        pass
    if hasattr(torch, "func"):
        calls.append(pytest.param(torch.func.functional_call, id="torch.func"))
    return calls


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("call", _functional_calls())
def test_functional_call_takes_the_given_parameters(call, channels_last):
    """PyTorch 1.13's functional_call (MAML, parameter-swapping
    evaluation) swaps a module's parameters by its class, whose attribute
    reads give the caller's tensors; PointwiseNorm read _parameters, the
    module's own, and so computed with them and filled their gradients,
    silently. Now the given ones, as nn.LayerNorm does."""
    torch.manual_seed(0)
    m = dt.PointwiseNorm(4, "derf", channels_last=channels_last)
    p = {"alpha": torch.tensor([2.0], requires_grad=True),
         "shift": torch.tensor([0.25], requires_grad=True),
         "weight": torch.full((4,), 3.0, requires_grad=True),
         "bias": torch.full((4,), 1.0, requires_grad=True)}
    x = torch.randn(2, 4, 3) if not channels_last else torch.randn(2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 2.x: deprecated
        y = call(m, p, (x,))
    shape = (1, 4, 1) if not channels_last else (4,)
    ref = p["weight"].view(shape) * torch.erf(p["alpha"] * x + p["shift"]) \
        + p["bias"].view(shape)
    torch.testing.assert_close(y, ref)
    y.pow(2).sum().backward()
    got = {n: t.grad.clone() for n, t in p.items()}
    q = {n: t.detach().clone().requires_grad_() for n, t in p.items()}
    (q["weight"].view(shape) * torch.erf(q["alpha"] * x + q["shift"])
     + q["bias"].view(shape)).pow(2).sum().backward()
    for n in p:
        torch.testing.assert_close(got[n], q[n].grad, rtol=1e-5, atol=1e-5)
    assert all(t.grad is None for t in m.parameters())
