"""test_torch_users.py - what users of PyTorch 2 do with dnc.torch beyond
training steps: forward-mode differentiation (torch.func.jvp, jacfwd,
hessian, torch.autograd.forward_ad), double backward through a
channels-first layer whose variable is not x, modules made under
torch.device("meta"), converting models whose norms are shared, fitted
initial values for nn.RMSNorm(eps=None), parameter names that clash with
the module's own, dnc.torch.pointwise under torch.compile(fullgraph=True),
the legacy ONNX exporter with a channels-first norm, and per-channel values
given to pointwise as lists. Skipped as a whole under PyTorch 1.13."""
import contextlib
import warnings

import pytest

torch = pytest.importorskip("torch")
import dnc  # noqa: E402
import dnc.torch as dt  # noqa: E402
from checks import ok, raises  # noqa: E402
from torch import nn  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no torch.library.custom_op (PyTorch 2 only)"
                % torch.__version__, allow_module_level=True)

SRC = "fn g(u; k = 0.7, s = 0.1) = erf(k * u + s)"


def reference(norm, channels_last):
    """The same layer in plain PyTorch operations."""
    def f(x):
        xl = x if channels_last else x.movedim(1, -1)
        y = norm.weight * torch.erf(norm.k * xl + norm.s) + norm.bias
        return y if channels_last else y.movedim(-1, 1)
    return f


@pytest.mark.parametrize("channels_last", [True, False])
def test_forward_mode(channels_last):
    """jvp in x and in the parameters, hessian (forward over reverse) and
    torch.autograd.forward_ad, against the same layer in plain PyTorch."""
    torch.manual_seed(0)
    norm = dt.PointwiseNorm(4, SRC, dtype=torch.float64,
                           channels_last=channels_last)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    ref = reference(norm, channels_last)
    shape = (3, 4) if channels_last else (3, 4, 2)
    x = torch.randn(*shape, dtype=torch.float64)
    v = torch.randn_like(x)
    want = torch.func.jvp(ref, (x,), (v,))[1]
    got = torch.func.jvp(norm, (x,), (v,))[1]
    ok(torch.allclose(got, want, rtol=1e-12, atol=1e-13), "jvp in x",
       lambda: "max diff %g" % (got - want).abs().max())
    params = {k: p.detach() for k, p in norm.named_parameters()}
    tang = {k: torch.randn_like(p) for k, p in params.items()}

    def call(ps):
        return torch.func.functional_call(norm, ps, (x,))
    got = torch.func.jvp(call, (params,), (tang,))[1]
    h = 1e-6
    fd = (call({k: params[k] + h * tang[k] for k in params}) -
          call({k: params[k] - h * tang[k] for k in params})) / (2 * h)
    ok(torch.allclose(got, fd, rtol=1e-6, atol=1e-8),
       "jvp in every parameter = central differences",
       lambda: "max diff %g" % (got - fd).abs().max())
    hs = torch.func.hessian(lambda t: norm(t).sum())(x)
    hr = torch.func.hessian(lambda t: ref(t).sum())(x)
    ok(torch.allclose(hs, hr, rtol=1e-11, atol=1e-12), "hessian")
    jf = torch.func.jacfwd(norm)(x)
    jr = torch.func.jacrev(ref)(x)
    ok(torch.allclose(jf, jr, rtol=1e-12, atol=1e-13), "jacfwd = jacrev")
    import torch.autograd.forward_ad as fwad
    with fwad.dual_level():
        t = fwad.unpack_dual(norm(fwad.make_dual(x, v))).tangent
    ok(t is not None and torch.allclose(t, want, rtol=1e-12, atol=1e-13),
       "torch.autograd.forward_ad")


def test_double_backward_channels_first_other_variable():
    """create_graph=True through a channels-first layer of `fn g(u; ...)`:
    its derivative is taken with respect to u, not a variable named x."""
    torch.manual_seed(1)
    norm = dt.PointwiseNorm(4, SRC, dtype=torch.float64, channels_last=False)
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    ok(torch.autograd.gradgradcheck(lambda t: norm(t), (x,)),
       "gradgradcheck, channels first, variable u")
    ok(torch.autograd.gradcheck(lambda t: norm(t), (x,)),
       "gradcheck, channels first, variable u")


def test_function_variable_and_eval_shape():
    """dnc.Function knows its variable's name (derivative() and diff()
    take it by default), and eval gives a 0-d array for a 0-d x."""
    f = next(iter(dnc.compile(SRC)))
    ok(f.variable == "u", "Function.variable", f.variable)
    d = f.derivative()
    ok(abs(float(d.eval(0.5)) - float(f.derivative("u").eval(0.5))) == 0,
       "derivative() is d/du")
    ok(f.eval(0.5).shape == (), "eval of a number is 0-d")
    ok(f.eval([[0.5, 1.0]]).shape == (1, 2), "eval keeps x's shape")
    ok("u" in repr(f), "repr names the variable", repr(f))


def test_module_made_under_meta_device():
    """with torch.device("meta"): the module is built without memory;
    to_empty() and reset_parameters() then give the initial values."""
    with torch.device("meta"):
        m = dt.PointwiseNorm(8, "dyt", alpha=0.8)
    ok(m.alpha.device.type == "meta", "parameters on meta")
    m.to_empty(device="cpu")
    m.reset_parameters()
    ok(torch.allclose(m.alpha, torch.tensor([0.8])) and
       torch.equal(m.weight, torch.ones(8)) and
       torch.equal(m.bias, torch.zeros(8)), "initial values after to_empty")
    with torch.device("meta"):
        m2 = nn.Sequential(nn.Linear(8, 8), dt.PointwiseNorm(8, "dyt"))
    m2.to_empty(device="cpu")
    m2.apply(lambda mod: mod.reset_parameters()
             if isinstance(mod, dt.PointwiseNorm) else None)
    ok(torch.allclose(m2[1].alpha, torch.tensor([0.5])), "apply(reset)")


def test_convert_keeps_shared_norms_shared():
    """A norm registered under two names (or two parents) becomes one
    PointwiseNorm under all of them."""
    ln = nn.LayerNorm(8)
    sub = nn.Sequential(ln)
    model = nn.Module()
    model.a = ln
    model.b = ln
    model.sub = sub
    out = dt.convert_layernorm(model, "dyt")
    ok(isinstance(out.a, dt.PointwiseNorm), "first name converted")
    ok(out.a is out.b and out.b is out.sub[0],
       "one PointwiseNorm under every name",
       lambda: "%r %r %r" % (type(out.a), type(out.b), type(out.sub[0])))
    ok(not any(isinstance(m, nn.LayerNorm) for m in out.modules()),
       "no LayerNorm left")


@pytest.mark.skipif(not hasattr(nn, "RMSNorm"), reason="no nn.RMSNorm")
def test_fit_initial_rmsnorm_default_eps():
    """nn.RMSNorm(eps=None) adds the input dtype's machine epsilon, as
    fit_initial then does: the same fit as eps=finfo(float32).eps."""
    torch.manual_seed(2)
    x = torch.randn(64, 16) * 1e-3
    fits = []
    for eps in (None, torch.finfo(torch.float32).eps):
        model = nn.Sequential(nn.RMSNorm(16, eps=eps))
        fits.append(dt.fit_initial(model, "dyt", [x])["0"]["alpha"])
    ok(abs(fits[0] - fits[1]) <= 1e-9 * abs(fits[1]),
       "eps=None fits as finfo's eps", fits)


@pytest.mark.parametrize("name", ["training", "elementwise_affine",
                                  "normalized_shape", "channels_last",
                                  "threads", "module", "device", "dtype"])
def test_parameter_names_that_clash(name):
    """A parameter named as an attribute or a constructor keyword of the
    module: threads=2 was taken as the thread count, not the parameter's
    initial value, without a word."""
    src = "fn f(x; %s = 0.5) = tanh(%s * x)" % (name, name)
    raises(ValueError, lambda: dt.PointwiseNorm(8, src),
           "a parameter named %s is refused" % name, "clashes")
    if name == "threads":
        raises(ValueError, lambda: dt.PointwiseNorm(8, src, threads=2),
               "a parameter named threads, given by name", "clashes")
    if name == "module":
        raises(TypeError, lambda: dt.PointwiseNorm(8, src, module=2.0),
               "a parameter named module, given by name",
               "module is a dnc.Module")


@pytest.mark.parametrize("name", ["weight", "bias", "module", "threads"])
def test_pointwise_parameter_names_that_clash(name):
    """pointwise(x, fn, weight, bias, module, threads, **params): an f
    whose parameter is one of those names is refused, given or not
    (threads=2 was the thread count and f's threads kept its default;
    weight=2.0 failed in an unrelated way)."""
    x = torch.linspace(-2, 2, 8).reshape(2, 4)
    src = "fn g(x; %s = 0.5) = tanh(%s * x)" % (name, name)
    raises(ValueError, lambda: dt.pointwise(x, src),
           "pointwise of an f with a parameter named %s" % name, "clashes")
    if name != "module":
        raises(ValueError, lambda: dt.pointwise(x, src, **{name: 2}),
               "the same, given by name", "clashes")


def test_module_argument_type():
    """module= that is neither a dnc.Module nor a path: a TypeError that
    says what it takes ('float' object is not subscriptable before)."""
    raises(TypeError, lambda: dt.PointwiseNorm(8, "dyt", module=2.0),
           "PointwiseNorm(module=2.0)", "module is a dnc.Module")
    raises(TypeError, lambda: dt.pointwise(torch.ones(2, 3), "dyt",
                                           module=2.0),
           "pointwise(module=2.0)", "module is a dnc.Module")


@pytest.mark.slow
def test_pointwise_compiles_fullgraph():
    """The functional form, fn named by a string, under
    torch.compile(fullgraph=True): forward and backward as eager."""
    x = torch.randn(5, 8, requires_grad=True)
    a = torch.tensor([0.7], requires_grad=True)
    for threads in (None, 2):
        def f(xx, aa):
            return dt.pointwise(xx, "dyt", alpha=aa, threads=threads)
        torch._dynamo.reset()
        y = torch.compile(f, fullgraph=True)(x, a)
        ok(torch.allclose(y, f(x, a)), "compiled = eager, threads=%s"
           % threads)
        g = torch.autograd.grad(y.sum(), (x, a))
        g0 = torch.autograd.grad(f(x, a).sum(), (x, a))
        ok(all(torch.allclose(p, q) for p, q in zip(g, g0)),
           "gradients compiled = eager")
    torch._dynamo.reset()


def test_pointwise_function_object_compiles_fullgraph():
    """pointwise(x, <dnc.Function>) under torch.compile(fullgraph=True):
    the Function's source, name and parameters are taken as a constant."""
    f = dnc.compile("fn g(x; a = 0.8) = tanh(a * x)")["g"]
    x = torch.randn(4, 8)
    y = torch.compile(lambda x: dt.pointwise(x, f, a=0.8),
                      fullgraph=True, backend="aot_eager")(x)
    ok(torch.allclose(y, torch.tanh(0.8 * x)), "the same values")


def test_pointwise_objects_compile_by_identity():
    """Under torch.compile(fullgraph=True), pointwise takes a dnc.Function
    argument and a dnc.Module as module= (PyTorch 2.11 refused both as
    constants): a second Function through the same compiled code gives
    its own values (the guard on which object it is), not the first's."""
    m = dnc.compile("fn g(x; a = 0.8) = tanh(a * x)\n"
                    "fn h(x; a = 0.5) = erf(a * x)")
    x = torch.randn(4, 8)
    c = torch.compile(lambda x, f: dt.pointwise(x, f, a=0.8),
                      fullgraph=True, backend="aot_eager")
    ok(torch.allclose(c(x, m["g"]), torch.tanh(0.8 * x)), "g")
    ok(torch.allclose(c(x, m["h"]), torch.erf(0.8 * x)), "then h: h's values")
    ok(torch.allclose(c(x, m["g"]), torch.tanh(0.8 * x)), "g again")
    c2 = torch.compile(lambda x: dt.pointwise(x, "h", module=m, a=0.3),
                       fullgraph=True, backend="aot_eager")
    ok(torch.allclose(c2(x), torch.erf(0.3 * x)), "module= a dnc.Module")
    torch._dynamo.reset()


def test_legacy_onnx_export_channels_first():
    """torch.onnx.export(dynamo=False) of a channels-first norm gives a
    model onnxruntime runs (every Transpose's perm named)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import io
    m = dt.PointwiseNorm(4, "dyt", channels_last=False).eval()
    x = torch.randn(2, 4, 3, 3)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(m, (x,), buf, dynamo=False)
        except Exception as e:  # an exporter this PyTorch no longer has
            pytest.skip("the legacy exporter: %s" % e)
    s = ort.InferenceSession(buf.getvalue(),
                             providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
    ok(torch.allclose(torch.from_numpy(out), m(x), rtol=1e-5, atol=1e-6),
       "onnxruntime runs it and agrees")


def test_pointwise_per_channel_list():
    """pointwise takes a per-channel parameter as a list, as
    PointwiseNorm does."""
    x = torch.randn(3, 4)
    s = [0.0, 0.1, -0.2, 0.3]
    y = dt.pointwise(x, "fn f(x; s[] = 0) = tanh(x + s)", s=s)
    ok(torch.allclose(y, torch.tanh(x + torch.tensor(s))), "values")


def test_output_reuse_skips_shared_memory():
    """An output moved to shared memory (sent to another process by
    torch.multiprocessing, which keeps only a weak reference on the
    sending side) is never written over by a later output."""
    old = dt.set_output_reuse(4)
    try:
        norm = dt.PointwiseNorm(1024, "dyt")
        with torch.no_grad():
            y = norm(torch.full((512, 1024), 1.0))
            y.share_memory_()
            p, held = y.data_ptr(), y.untyped_storage()._weak_ref()
            del y
            z = norm(torch.full((512, 1024), -3.0))
        ok(z.data_ptr() != p, "a shared storage is not reused")
        torch.UntypedStorage._free_weak_ref(held)
    finally:
        dt.set_output_reuse(old)


def test_channels_first_jit_trace_saves():
    """torch.jit.trace of a channels-first PointwiseNorm saves and loads
    (the traced graph holds the custom operators, not a Python
    autograd.Function)."""
    import io
    m = dt.PointwiseNorm(4, "derf", channels_last=False).eval()
    x = torch.randn(2, 4, 3, 3)
    tr = torch.jit.trace(m, (x,))
    buf = io.BytesIO()
    torch.jit.save(tr, buf)
    buf.seek(0)
    back = torch.jit.load(buf)
    x2 = torch.randn(2, 4, 3, 3)
    ok(torch.allclose(back(x2), m(x2), rtol=1e-6, atol=1e-7),
       "the loaded trace computes the layer")


def test_channels_first_keeps_channels_last_format():
    """A channels-first norm given an input in channels_last memory
    format returns y in that format, with the same values and gradients
    as for a contiguous copy of the input."""
    torch.manual_seed(3)
    m = dt.PointwiseNorm(8, "dyt", channels_last=False)
    x = torch.randn(2, 8, 5, 6).to(memory_format=torch.channels_last)
    x.requires_grad_()
    y = m(x)
    ok(y.is_contiguous(memory_format=torch.channels_last),
       "y in channels_last format")
    dy = torch.randn_like(y)
    y.backward(dy)
    xc = x.detach().contiguous().requires_grad_()
    m2 = dt.PointwiseNorm(8, "dyt", channels_last=False)
    y2 = m2(xc)
    y2.backward(dy.contiguous())
    ok(torch.equal(y, y2), "same values as for the contiguous input")
    ok(torch.allclose(x.grad, xc.grad, rtol=1e-6, atol=1e-7) and
       torch.allclose(m.alpha.grad, m2.alpha.grad, rtol=1e-6) and
       torch.allclose(m.weight.grad, m2.weight.grad, rtol=1e-6),
       "same gradients")


def _layer(src, dtype=torch.float64):
    m = dt.PointwiseNorm(3, src, dtype=dtype, elementwise_affine=False)
    return m


@pytest.mark.parametrize("decomposed", [False, True])
def test_higher_order_through_if_and_saturation(decomposed):
    """Double backward and torch.func through `if x > 0 then sqrt(x) else
    0`, softplus at 0, tanh deep in saturation and clamp: dnc's symbolic
    derivatives at every order, in the kernels' path and the decomposed
    one (autograd through torch.where's untaken branch gave NaN, through
    1 - t^2 zero or 1e-4 off, through clamp an error)."""
    ctx = dt.decomposed() if decomposed else warnings.catch_warnings()
    with ctx:
        m = _layer("fn f(x) = if x > 0 then sqrt(x) else 0")
        x = torch.tensor([-1.0, 0.0, 4.0], dtype=torch.float64,
                         requires_grad=True)
        g, = torch.autograd.grad(m(x).sum(), x, create_graph=True)
        g2, = torch.autograd.grad(g.sum(), x)
        ok(torch.equal(g2, torch.tensor([0.0, 0.0, -0.03125],
                                        dtype=torch.float64)),
           "d2f/dx2 through if/sqrt", g2)
        gf = torch.func.vmap(torch.func.grad(lambda t: m(t).sum()))(
            x.detach().reshape(3, 1).expand(3, 3).contiguous())[:, 0]
        ok(torch.equal(gf, torch.tensor([0.0, 0.0, 0.25],
                                        dtype=torch.float64)),
           "vmap(grad) through if/sqrt", gf)
        sp = _layer("fn f(x) = softplus(x)")
        z = torch.zeros(3, dtype=torch.float64)
        ok(torch.equal(torch.func.grad(lambda t: sp(t).sum())(z),
                       torch.full((3,), 0.5, dtype=torch.float64)),
           "softplus' at 0 under torch.func")
        th = _layer("fn f(x; a = 0.5) = tanh(a * x)")
        xs = torch.tensor([30.0, 100.0, 1.0], dtype=torch.float64)
        want = 0.5 / torch.cosh(0.5 * xs) ** 2
        got = torch.func.grad(lambda t: th(t).sum())(xs)
        ok(torch.allclose(got, want, rtol=1e-12, atol=0),
           "tanh' deep in saturation under torch.func", got - want)
        cl = _layer("fn f(x) = clamp(x, -1, 1)")
        xc = torch.tensor([-2.0, 0.5, 2.0], dtype=torch.float64,
                          requires_grad=True)
        g, = torch.autograd.grad(cl(xc).sum(), xc, create_graph=True)
        g2, = torch.autograd.grad(g.sum(), xc, allow_unused=True)
        ok(g2 is None or torch.equal(g2, torch.zeros(3, dtype=torch.float64)),
           "clamp's second derivative", g2)


def test_jvp_zero_tangent_of_a_parameter():
    """jvp of |x|^p at x = 0: the exponent's derivative (0 log 0, NaN)
    does not leak into the tangent where its own tangent is 0."""
    m = _layer("fn f(x; p = 1.5) = abs(x)^p")
    x = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    params = {k: v.detach() for k, v in m.named_parameters()}

    def call(xx, ps):
        return torch.func.functional_call(m, ps, (xx,))
    tang = {k: torch.zeros_like(v) for k, v in params.items()}
    _, t = torch.func.jvp(call, (x, params), (torch.ones_like(x), tang))
    want = 1.5 * x.abs() ** 0.5
    ok(torch.allclose(t, want) and not t.isnan().any(), "no NaN", t)


def test_function_of_a_context_with_options_is_refused():
    """dnc.torch compiles again in contexts of its own: a Function whose
    context sets math_bits (or cpu, features, opt_level, stream_bytes)
    would lose it on another thread count, so it is refused; one with
    only threads set is taken."""
    src = "fn f(x; beta = 2) = x / sqrt(beta + x^2)"
    f24 = dnc.Context(threads=1, math_bits=24).compile(src)["f"]
    raises(ValueError, lambda: dt.PointwiseNorm(8, f24), "math_bits=24",
           "math_bits=24")
    raises(ValueError, lambda: dt.pointwise(torch.randn(2, 8), f24),
           "pointwise too", "contexts of its own")
    f1 = dnc.Context(threads=1).compile(src)["f"]
    ok(dt.PointwiseNorm(8, f1).fn.name == "f", "threads only: taken")


@pytest.mark.parametrize("channels_last", [True, False])
def test_legacy_vmap_batched_gradients(channels_last):
    """autograd.grad(is_grads_batched=True), jacobian(vectorize=True) and
    hessian(vectorize=True): PyTorch's legacy vmap hands the backward a dy
    without storage."""
    torch.manual_seed(4)
    norm = dt.PointwiseNorm(4, SRC, channels_last=channels_last)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    ref = reference(norm, channels_last)
    shape = (3, 4) if channels_last else (2, 4, 3)
    x = torch.randn(*shape, dtype=torch.float32, requires_grad=True)
    y = norm(x)
    n = y.numel()
    eye = torch.eye(n).reshape(n, *shape)
    (jac,) = torch.autograd.grad(y, x, eye, is_grads_batched=True)
    want = torch.autograd.functional.jacobian(ref, x.detach())
    ok(torch.allclose(jac.reshape(want.shape), want, atol=1e-5),
       "is_grads_batched: the Jacobian")
    J = torch.autograd.functional.jacobian(norm, x.detach(), vectorize=True)
    ok(torch.allclose(J, want, atol=1e-5), "jacobian(vectorize=True)")
    H = torch.autograd.functional.hessian(lambda z: norm(z).pow(2).sum(),
                                          x.detach(), vectorize=True)
    Hr = torch.autograd.functional.hessian(lambda z: ref(z).pow(2).sum(),
                                           x.detach())
    ok(torch.allclose(H, Hr, atol=1e-4), "hessian(vectorize=True)")


def test_channels_first_compiled_keeps_eager_layout():
    """A compiled or exported channels-first norm gives y in x's memory
    format, as eager does: y.view(N, -1) works in all three."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = dt.PointwiseNorm(4, "dyt", channels_last=False)

        def forward(self, x):
            return self.n(x).view(x.shape[0], -1)
    m = M()
    x = torch.randn(2, 4, 3, 3)
    want = m(x)
    got = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
    ok(torch.allclose(got, want), "torch.compile: view works, same values")
    ep = torch.export.export(m, (x,))
    ok(torch.allclose(ep.module()(x), want), "torch.export: the same")
    ok(m.n(x).is_contiguous(), "eager y is contiguous")


@pytest.mark.parametrize("channels_last", [True, False])
def test_fx_symbolic_trace(channels_last):
    """torch.fx.symbolic_trace (torchvision's feature extractors) records a
    PointwiseNorm as one call whose GraphModule computes and differentiates
    what the module does; torch.jit.script is refused saying what works."""
    torch.manual_seed(6)
    norm = dt.PointwiseNorm(4, SRC, channels_last=channels_last)
    lin = nn.Linear(4, 4) if channels_last else nn.Conv2d(4, 4, 1)
    m = nn.Sequential(lin, norm)
    gm = torch.fx.symbolic_trace(m)
    calls = [n for n in gm.graph.nodes if n.op == "call_function" and
             getattr(n.target, "__name__", "") == "_fx_norm"]
    ok(len(calls) == 1, "one node for the norm", str(gm.graph))
    x = torch.randn(*((3, 4) if channels_last else (2, 4, 3, 3)))
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya, yb = m(xa), gm(xb)
    ok(torch.equal(ya, yb), "the traced module's output is the module's")
    ya.sum().backward()
    yb.sum().backward()
    ok(torch.equal(xa.grad, xb.grad), "and its gradient")
    raises(TypeError, lambda: torch.jit.script(m), "torch.jit.script",
           "use torch.jit.trace, torch.compile or torch.export"
           if hasattr(torch, "compile") else
           "use torch.jit.trace (torch.compile and torch.export need "
           "PyTorch 2")


DEC_CASES = [
    ("fn pwroot(x; c = 0.5) = if x >= 0 then sqrt(x + c) - sqrt(c) "
     "else -(sqrt(-x + c) - sqrt(c))", [1.0, -1.0]),
    ("fn sp(x; a = 0.8) = softplus(a * x) - softplus(-a * x)", [0.0, 1.0]),
    ("fn ash(x; a = 0.3) = asinh(a * x) / a", [0.0, 1.0]),
    ("fn dy(x; a = 1) = tanh(a * x)", [200.0, 1.0]),
    ("fn ps(x; a = 1.2) = if x > 0 then 1 - exp(-a * x) else expm1(a * x)",
     [float("inf"), 1.0]),
    ("fn gate(x; t = 1, a = 2) = if abs(x) < t then a * x else x",
     [0.5, 3.0]),
]


@pytest.mark.parametrize("src,xs", DEC_CASES)
def test_compiled_decomposed_gradients(src, xs):
    """torch.compile of the decomposed path (every compiled model on a
    GPU): the gradients are dnc's derivatives, as in eager mode, not
    autograd's through the printed operations (NaN from torch.where's
    untaken branch, 0 for softplus(a x) - softplus(-a x) at 0)."""
    norm = dt.PointwiseNorm(2, src, elementwise_affine=False).double()
    got = []
    for f in (norm, torch.compile(norm, fullgraph=True, backend="aot_eager")):
        norm.zero_grad(set_to_none=True)
        x = torch.tensor([xs], dtype=torch.float64, requires_grad=True)
        with dt.decomposed():
            f(x).sum().backward()
        got.append([x.grad] + [p.grad for p in norm.parameters()])
    torch._dynamo.reset()
    ok(all(b is not None and torch.allclose(a, b, rtol=0, atol=0,
                                             equal_nan=True)
           for a, b in zip(got[0], got[1])),
       "compiled gradients are eager's", lambda: "%s\n%s" % tuple(got))


@pytest.mark.parametrize("src", ["fn lin(x; a = 0.5) = a * x",
                                 "fn idn(x) = x"])
def test_func_on_decomposed_identity(src):
    """torch.func over the decomposed form of a function that is x itself,
    or whose derivative is (d/da a x = x): no 'input returned as-is'."""
    from torch.func import functional_call, grad, jvp, vmap
    for affine in (True, False):
        norm = dt.PointwiseNorm(3, src, elementwise_affine=affine).double()
        ps = {k: v.detach() for k, v in norm.named_parameters()}
        x = torch.randn(2, 3, dtype=torch.float64)
        res = {}
        for path in ("kernels", "decomposed"):
            ctx = dt.decomposed() if path == "decomposed" else \
                contextlib.nullcontext()
            with ctx:
                res[path] = (
                    grad(lambda p: functional_call(norm, p, (x,)).sum())(ps)
                    if ps else {},
                    grad(lambda z: functional_call(norm, ps, (z,)).sum())(x),
                    jvp(lambda z: functional_call(norm, ps, (z,)), (x,),
                        (torch.ones_like(x),))[1],
                    vmap(lambda z: functional_call(norm, ps, (z,)))(x))
        k, d = res["kernels"], res["decomposed"]
        ok(all(torch.allclose(k[0][n], d[0][n]) for n in k[0]) and
           all(torch.allclose(a, b) for a, b in zip(k[1:], d[1:])),
           "the decomposed path agrees with the kernels (affine=%s)"
           % affine)
