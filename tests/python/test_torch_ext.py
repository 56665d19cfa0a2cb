"""test_torch_ext.py - dnc.torch's eager layer call in C++
(python/dnc/_torch_ext.cpp, built by tools/torch_ext.sh): it is built and
used where `make` built it, and it gives the same bits as the Python
path (dnc.torch._LayerFn and the kernels through ctypes) for every dtype,
parameter kind, layout and set of wanted gradients; what it hands back
to Python (create_graph, the legacy vmap's batched gradients) is right;
autograd's own machinery (in-place checks, saved-tensor hooks,
checkpointing, anomaly mode, hooks on y) works through its node."""
import contextlib
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok, raises  # noqa: E402

HAVE = dt.extension() is not None


def _headers():
    from torch.utils import cpp_extension
    return any(os.path.exists(os.path.join(
        d, "torch/csrc/autograd/custom_function.h"))
        for d in cpp_extension.include_paths())


def test_built_where_make_built_it():
    """Under `make test`'s virtualenv run (DNC_TORCH_EXT_BUILT=1) a PyTorch
    2 with C++ headers has the extension loaded: a failed or missing build
    would otherwise only be slower, and pass every other test."""
    if not os.environ.get("DNC_TORCH_EXT_BUILT"):
        pytest.skip("not under make test's virtualenv run")
    if int(torch.__version__.split(".")[0]) < 2 or not _headers():
        pytest.skip("PyTorch %s has no C++ extension headers"
                    % torch.__version__)
    ok(HAVE, "the C++ layer call is loaded", dt.extension_reason())


def test_turned_off_by_environment():
    r = subprocess.run(
        [sys.executable, "-c", "import dnc.torch as dt; "
         "print(dt.extension(), '|', dt.extension_reason())"],
        env=dict(os.environ, DNC_TORCH_EXT="0"), capture_output=True,
        text=True, timeout=300)
    ok(r.returncode == 0 and r.stdout.startswith("None | turned off by "
                                                  "DNC_TORCH_EXT"),
       "DNC_TORCH_EXT=0 turns it off and says so", r.stdout + r.stderr)


def test_missing_build_is_named():
    """Another PyTorch version's interpreter finds no extension and says
    where it looked."""
    if not dt.HAS_CUSTOM_OPS:
        pytest.skip("PyTorch %s: no C++ layer call to look for"
                    % torch.__version__)
    r = subprocess.run(
        [sys.executable, "-c", "import torch; torch.__version__ = '2.999.0';"
         "import dnc.torch as dt; print(dt.extension(), '|', "
         "dt.extension_reason())"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, DNC_TORCH_EXT="1"))
    ok(r.returncode == 0 and "None | not built for PyTorch 2.999.0" in
       r.stdout and "torch-2.999.0" in r.stdout,
       "a build for another PyTorch is not looked for", r.stdout + r.stderr)


needs_ext = pytest.mark.skipif(not HAVE, reason="no C++ layer call here: %s"
                               % dt.extension_reason())


def _python_path():
    """Every call through dnc.torch's Python (ctypes) kernels: no C++
    layer call, and the operators' C++ kernels handing every call to
    Python's."""
    class Off:
        def __enter__(self):
            self.ext, dt._ext = dt._ext, None
            self.on = self.ext.set_op_kernels(False) if self.ext else None

        def __exit__(self, *a):
            dt._ext = self.ext
            if self.ext:
                self.ext.set_op_kernels(self.on)
    return Off()


class _through_cpp:
    """dnc.torch's C++ layer call, counted: what runs inside must reach it
    (a comparison with the Python path proves nothing where neither side
    took the C++ call)."""

    def __enter__(self):
        ext, calls = dt._ext, []
        self.ext, self.calls = ext, calls

        class Spy:
            def __getattr__(self, name):
                f = getattr(ext, name)
                if name not in ("plain", "call"):
                    return f

                def counted(*args):
                    calls.append(name)
                    return f(*args)
                return counted
        dt._ext = Spy()

    def __exit__(self, exc, *rest):
        dt._ext = self.ext
        if exc is None:
            ok(self.calls, "the C++ layer call made the result")


def _run(mod, x, dy, wrt=None, grad=True):
    """y and the gradients of x and of every parameter (None where it has
    none), by y.backward(dy) or, with wrt, autograd.grad for those."""
    mod.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(grad)
    y = mod(x)
    if wrt is not None:
        ins = [x if w == "x" else getattr(mod, w) for w in wrt]
        return [y.detach()] + list(torch.autograd.grad(y, ins, dy))
    if y.requires_grad:
        y.backward(dy)
    return [y.detach(), x.grad] + [p.grad for p in mod.parameters()]


def _same(a, b, name):
    ok(len(a) == len(b) and all(
        (u is None and v is None) or
        (u is not None and v is not None and u.dtype == v.dtype and
         u.shape == v.shape and torch.equal(u, v)) for u, v in zip(a, b)),
       name, lambda: "\n".join("%s %s" % (
           None if u is None else (u.dtype, tuple(u.shape)),
           None if v is None else (v.dtype, tuple(v.shape)))
           for u, v in zip(a, b)) + "\nmax diffs %s" % [
           None if u is None or v is None or u.shape != v.shape else
           float((u.double() - v.double()).abs().max()) for u, v in zip(a, b)])


def _same_cases(mod, dtype, cases):
    """Each case (x, dy) gives the same bits through both paths."""
    for name, (xx, dd) in cases.items():
        with _through_cpp():
            a = _run(mod, xx, dd)
        with _python_path():
            b = _run(mod, xx, dd)
        _same(a, b, "%s %s: %s" % (mod._dnc_name, dtype, name))


PC = "fn pc(x; a = 0.6, s[] = 0.1) = erf(a * x + s)"
NOPARAM = "fn isr(x) = x / sqrt(1 + x * x)"


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64,
                                   torch.bfloat16, torch.float16],
                         ids=["f32", "f64", "bf16", "f16"])
@pytest.mark.parametrize("fn", ["dyt", "derf", "dyisru", PC, NOPARAM],
                         ids=["dyt", "derf", "dyisru", "per_channel",
                              "no_params"])
def test_same_bits_as_python(dtype, fn):
    torch.manual_seed(11)
    c = 24
    mod = dt.PointwiseNorm(c, fn, dtype=dtype)
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-0.3, 0.3)
        for p in mod._dnc_params:
            t = getattr(mod, p.name)
            t.add_(torch.rand_like(t) * 0.2)
    x = (torch.randn(3, 5, c) * 2).to(dtype)
    dy = torch.randn(3, 5, c).to(dtype)
    cases = {"contiguous": (x, dy),
             "x a transposed view": (x.transpose(0, 1), dy.transpose(0, 1)),
             "x with a row stride": (torch.randn(15, 2 * c).to(dtype)[:, :c],
                                     dy.reshape(15, c)),
             "dy expanded (a sum's)": (x, torch.ones(()).to(dtype)
                                       .expand(x.shape)),
             "one row": (x[0, :1], dy[0, :1]),
             "1-d": (x[0, 0], dy[0, 0]),
             "no rows": (x[:0], dy[:0])}
    _same_cases(mod, dtype, cases)
    with torch.no_grad():
        with _through_cpp():
            a = mod(x)
    with _python_path(), torch.no_grad():
        b = mod(x)
    _same([a], [b], "under no_grad")
    with torch.inference_mode():
        with _through_cpp():
            a = mod(x)
        with _python_path():
            b = mod(x)
    _same([a], [b], "under inference_mode")
    with _through_cpp():
        a = _run(mod, x, dy, grad=False)
    with _python_path():
        b = _run(mod, x, dy, grad=False)
    _same(a, b, "x without requires_grad: the parameters' gradients")


@contextlib.contextmanager
def _counting(wrap):
    """dnc.torch's Python kernel calls wrapped by wrap (while inside)."""
    saved = dt._kernel_forward, dt._kernel_backward
    dt._kernel_forward, dt._kernel_backward = map(wrap, saved)
    try:
        yield
    finally:
        dt._kernel_forward, dt._kernel_backward = saved


@needs_ext
@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS, reason="no custom ops")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64,
                                   torch.bfloat16, torch.float16],
                         ids=["f32", "f64", "bf16", "f16"])
def test_operators_same_bits_as_python(dtype):
    """torch.ops.dnc.layer_forward and layer_backward (what torch.compile's
    graphs call) through the C++ kernels give the Python kernels' bits,
    for every parameter kind, with weight and bias or without, on odd
    layouts; what the C++ call does not take (a 0-d x, mixed dtypes) goes
    to the Python kernels, which decide it."""
    torch.manual_seed(5)
    c = 24
    # the Python kernels' calls, to see that the C++ ones took the plain
    # cases (else both sides below would be the Python path)
    calls = []

    def counted(f):
        def g(*a, **k):
            calls.append(f.__name__)
            return f(*a, **k)
        return g
    for fn in ("dyt", "derf", PC, NOPARAM):
        m = dt.PointwiseNorm(c, fn, dtype=dtype)
        src, name = m._dnc_source, m._dnc_name
        ps = [getattr(m, p.name).detach() + 0.1 for p in m._dnc_params]
        w = torch.rand(c).to(dtype) + 0.5
        b = torch.rand(c).to(dtype) - 0.5
        x = (torch.randn(3, 5, c) * 2).to(dtype)
        dy = torch.randn(3, 5, c).to(dtype)
        cases = {"contiguous": (x, dy, w, b),
                 "transposed": (x.transpose(0, 1), dy.transpose(0, 1), w, b),
                 "no weight or bias": (x, dy, None, None),
                 "weight only": (x, dy, w, None),
                 "row stride": (torch.randn(15, 2 * c).to(dtype)[:, :c],
                                dy.reshape(15, c), w, b),
                 "dy expanded": (x, torch.ones(()).to(dtype).expand(x.shape),
                                 w, b),
                 "no rows": (x[:0], dy[:0], w, b)}
        for case, (xx, dd, ww, bb) in cases.items():
            what = "%s %s %s" % (name, dtype, case)
            del calls[:]
            with torch.no_grad(), _counting(counted):
                a = [torch.ops.dnc.layer_forward(xx, ww, bb, ps, src, name, 0)]
                a += torch.ops.dnc.layer_backward(xx, dd, ww, bb, ps, src,
                                                  name, 0)
            ok(not calls, what + ": the C++ kernels took it", calls)
            with torch.no_grad(), _python_path():
                r = [torch.ops.dnc.layer_forward(xx, ww, bb, ps, src, name, 0)]
                r += torch.ops.dnc.layer_backward(xx, dd, ww, bb, ps, src,
                                                  name, 0)
            _same(a, r, what)
    # a 0-d x: the Python kernels (one channel)
    m = dt.PointwiseNorm(1, "dyt", dtype=dtype)
    p = [m.alpha.detach()]
    x0 = torch.tensor(0.7).to(dtype)
    del calls[:]
    with torch.no_grad(), _counting(counted):
        a = torch.ops.dnc.layer_forward(x0, None, None, p, m._dnc_source,
                                        "dyt", 0)
    ok(calls == ["_kernel_forward"], "a 0-d x: the Python kernels", calls)
    ok(a.shape == () and abs(float(a) - float(torch.tanh(0.5 * x0))) < 1e-2,
       "a 0-d x through the operator", a)


# 64 parameters (the language's limit), the 64th per-channel: bit 63 of the
# per-channel mask
P64 = "fn big(x; %s, s[] = 0.1) = tanh(p0 * x + s)" % ", ".join(
    "p%d = 0.5" % i for i in range(63))


def test_64th_parameter_per_channel():
    """A function whose 64th parameter is per-channel: its mask, 2^63, did
    not fit the C++ calls' int64_t ("incompatible function arguments").
    The values and gradients of tanh(0.5 x + s), through the C++ call and
    the Python path, and through the operators' C++ kernels."""
    torch.manual_seed(4)
    m = dt.PointwiseNorm(4, P64, dtype=torch.float64)
    s = torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64)
    with torch.no_grad():
        m.s.copy_(s)
    x = torch.randn(3, 4, dtype=torch.float64)
    dy = torch.randn(3, 4, dtype=torch.float64)
    xr, sr = x.clone().requires_grad_(), s.clone().requires_grad_()
    want = torch.tanh(0.5 * xr + sr)
    want.backward(dy)
    for path, ctx in (("C++ call", _through_cpp if HAVE else
                       contextlib.nullcontext), ("Python", _python_path)):
        with ctx():
            y, dx = _run(m, x, dy)[:2]
        ok(torch.allclose(y, want, rtol=1e-14, atol=0) and
           torch.allclose(dx, xr.grad, rtol=1e-14, atol=0) and
           torch.allclose(m.s.grad, sr.grad, rtol=1e-14, atol=0),
           "%s: tanh(0.5 x + s), dx and ds" % path,
           lambda: (y, want, m.s.grad, sr.grad))
    if not dt.HAS_CUSTOM_OPS:
        return
    ps = [getattr(m, p.name).detach() for p in m._dnc_params]
    calls = []
    with torch.no_grad(), _counting(lambda f: lambda *a, **k: (
            calls.append(f.__name__), f(*a, **k))[1]):
        y = torch.ops.dnc.layer_forward(x, None, None, ps, m._dnc_source,
                                        "big", 0)
        ds = torch.ops.dnc.layer_backward(x, dy, None, None, ps,
                                          m._dnc_source, "big", 0)[-1]
    ok(not HAVE or not calls, "the operators' C++ kernels took it", calls)
    ok(torch.allclose(y, want, rtol=1e-14, atol=0) and
       torch.allclose(ds, sr.grad, rtol=1e-14, atol=0),
       "the operators: y and ds", lambda: (y, ds, sr.grad))


def _python_calls(f):
    """The names of the Python functions f() calls (sys.setprofile)."""
    names = []

    def prof(frame, event, arg):
        if event == "call":
            names.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        f()
    finally:
        sys.setprofile(None)
    return names


@needs_ext
@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS, reason="no custom ops")
def test_operators_kernels_in_cpp():
    """A call of dnc::layer_forward or layer_backward that nothing will
    differentiate (as a compiled graph makes) runs no Python kernel: not
    torch.library's autograd or backend functions, not dnc.torch's; one to
    be differentiated goes to the custom op's Python autograd, whose node
    gives the Python path's gradients; a function the C++ kernels have not
    seen is registered by its first call."""
    torch.manual_seed(3)
    src = "fn op_t(x; a = 0.7, s[] = 0.1) = erf(a * x + s) + 0.25 * x"
    c = 12
    x = torch.randn(5, c)
    dy = torch.randn(5, c)
    w, b = torch.rand(c) + 0.5, torch.rand(c)
    ps = [torch.tensor([0.6]), torch.randn(c) * 0.1]
    op, bop = torch.ops.dnc.layer_forward, torch.ops.dnc.layer_backward
    py = ("autograd_impl", "redispatch_no_grad", "backend_impl",
          "_op_forward_py", "_op_backward_py", "_kernel_forward",
          "_kernel_backward")
    with torch.no_grad():
        first = _python_calls(lambda: op(x, w, b, ps, src, "op_t", 0))
        ok("_op_forward_py" in first,
           "a function's first call: Python, which registers it", first)
        for what, f in (("forward", lambda: op(x, w, b, ps, src, "op_t", 0)),
                        ("backward",
                         lambda: bop(x, dy, w, b, ps, src, "op_t", 0))):
            called = _python_calls(f)
            ok(not set(called) & set(py),
               "no_grad %s: no Python kernel" % what, called)
    # grad mode on, nothing requiring grad: no Python either
    called = _python_calls(lambda: op(x, w, b, ps, src, "op_t", 0))
    ok(not set(called) & set(py), "nothing requires grad: no Python kernel",
       called)
    # differentiated: the custom op's autograd node, the Python path's bits
    res = []
    for path in (contextlib.nullcontext, _python_path):
        xx = x.clone().requires_grad_()
        pp = [p.clone().requires_grad_() for p in ps]
        ww = w.clone().requires_grad_()
        with path():
            called = []
            y = None

            def run():
                nonlocal y
                y = op(xx, ww, None, pp, src, "op_t", 0)
            called = _python_calls(run)
            y.backward(dy)
        ok("autograd_impl" in called, "requires grad: the Python autograd",
           called)
        res.append([y, xx.grad, ww.grad] + [p.grad for p in pp])
    _same(res[0], res[1], "differentiated through the operator")


@needs_ext
@pytest.mark.skipif(not hasattr(torch.library, "opcheck"),
                    reason="no torch.library.opcheck")
def test_operators_opcheck():
    """torch.library.opcheck: the operators' schema, autograd registration
    (the C++ kernels beside the custom op's), fake and AOT dispatch."""
    torch.manual_seed(4)
    m = dt.PointwiseNorm(16, "derf")
    ps = [getattr(m, p.name).detach().clone().requires_grad_()
          for p in m._dnc_params]
    x = torch.randn(4, 16, requires_grad=True)
    w = (torch.rand(16) + 0.5).requires_grad_()
    b = torch.rand(16).requires_grad_()
    src, name = m._dnc_source, m._dnc_name
    r = torch.library.opcheck(torch.ops.dnc.layer_forward.default,
                              (x, w, b, ps, src, name, 0))
    ok(all(v == "SUCCESS" for v in r.values()), "layer_forward", r)
    r = torch.library.opcheck(
        torch.ops.dnc.layer_backward.default,
        (x.detach(), torch.randn(4, 16), w.detach(), None,
         [p.detach() for p in ps], src, name, 0))
    ok(all(v == "SUCCESS" for v in r.values()), "layer_backward", r)


def test_operators_on_a_permuted_view_decomposed():
    """Off the CPU (decomposed() here) the operators computed the printed
    form with x's strides, where the kernels and the fake give contiguous
    outputs: opcheck's fake test failed on a channels-first norm's
    permuted view, and torch.compile of an exported channels-first model
    stopped at inductor's stride assert."""
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck is PyTorch 2.4's")
    torch.manual_seed(0)
    n = dt.PointwiseNorm(8, "dyt")
    xl = torch.randn(2, 8, 4, 5).permute(0, 2, 3, 1)
    args = (n.weight.detach(), n.bias.detach(), [n.alpha.detach()],
            n._dnc_source, n._dnc_name, 0)
    with dt.decomposed():
        y = torch.ops.dnc.layer_forward(xl, *args)
        dx = torch.ops.dnc.layer_backward(xl, torch.randn(2, 4, 5, 8),
                                          *args)[0]
        ok(y.is_contiguous() and dx.is_contiguous(),
           "y and dx contiguous, as the kernels' and the fake's",
           (y.stride(), dx.stride()))
        r = torch.library.opcheck(torch.ops.dnc.layer_forward.default,
                                  (xl,) + args)
        ok(all(v == "SUCCESS" for v in r.values()), "opcheck", r)
        m = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 1),
            dt.PointwiseNorm(8, "dyt", channels_last=False)).eval()
        x = torch.randn(2, 3, 4, 5)
        ep = torch.export.export(m, (x,))
        with torch.no_grad():
            got, want = torch.compile(ep.module())(x), m(x)
        ok(torch.allclose(got, want, atol=1e-6),
           "torch.compile of the exported channels-first model")


@needs_ext
def test_some_gradients_wanted():
    """autograd.grad for some inputs only, modules without weight or bias,
    and frozen parameters: the same gradients as the Python path."""
    torch.manual_seed(2)
    x = torch.randn(6, 16)
    dy = torch.randn(6, 16)
    for kw in ({}, {"elementwise_affine": False}, {"bias": False}):
        mod = dt.PointwiseNorm(16, PC, **kw)
        names = [n for n, _ in mod.named_parameters()]
        for wrt in (["x"], names[:1], ["x", names[-1]], names):
            with _through_cpp():
                a = _run(mod, x, dy, wrt=wrt)
            with _python_path():
                b = _run(mod, x, dy, wrt=wrt)
            _same(a, b, "%s, grad for %s" % (kw, wrt))
        mod.a.requires_grad_(False)
        with _through_cpp():
            a = _run(mod, x, dy)
        with _python_path():
            b = _run(mod, x, dy)
        _same(a, b, "%s, a frozen" % kw)
        ok(mod.a.grad is None, "a frozen parameter gets no gradient")


@needs_ext
def test_threads():
    torch.manual_seed(4)
    mod = dt.PointwiseNorm(64, "derf", threads=2)
    x = torch.randn(300, 64)
    dy = torch.randn(300, 64)
    with _through_cpp():
        a = _run(mod, x, dy)
    with _python_path():
        b = _run(mod, x, dy)
    _same(a, b, "two kernel threads")


@needs_ext
def test_second_order():
    """create_graph=True hands the backward to dnc's symbolic derivatives
    in Python: gradgradcheck passes through the C++ node, and the Hessian
    vector product is the Python path's."""
    torch.manual_seed(7)
    mod = dt.PointwiseNorm(5, PC, dtype=torch.float64)
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)

    def f(x, w, a, s):
        return dt._plain_forward(5, True, mod._dnc_source, mod._dnc_name, 0,
                                 mod._dnc_params, x, w, mod.bias, [a, s])
    node = f(x, mod.weight, mod.a, mod.s).grad_fn.name()
    ok(node == "torch::autograd::CppNode<dnc_torch::PointwiseNorm>",
       "the call makes the C++ node", node)
    ok(torch.autograd.gradcheck(f, (x, mod.weight, mod.a, mod.s)),
       "gradcheck")
    ok(torch.autograd.gradgradcheck(f, (x, mod.weight, mod.a, mod.s)),
       "gradgradcheck")

    def hvp():
        y = mod(x)
        g, = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(g.sum(), [x, mod.weight, mod.a])
    with _through_cpp():
        a = hvp()
    with _python_path():
        b = hvp()
    _same(list(a), list(b), "second derivatives")


@needs_ext
def test_batched_gradients():
    """The legacy vmap's batched gradients (dy without storage) go to
    Python's derivatives: a Jacobian by autograd.functional.jacobian with
    vectorize=True is the Python path's."""
    torch.manual_seed(8)
    mod = dt.PointwiseNorm(4, "derf", dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    with _through_cpp():
        a = torch.autograd.functional.jacobian(mod, x, vectorize=True)
    with _python_path():
        b = torch.autograd.functional.jacobian(mod, x, vectorize=True)
    _same([a], [b], "vectorized Jacobian")


@needs_ext
def test_autograd_machinery():
    torch.manual_seed(9)
    mod = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(4, 8, requires_grad=True)
    # an in-place change of a saved input is caught
    xx = x.detach().clone().requires_grad_()
    base = xx * 1.0
    y = mod(base)
    with torch.no_grad():
        base.add_(1.0)
    raises(RuntimeError, lambda: y.sum().backward(), "in-place change of x",
           "modified by an inplace operation")
    # saved-tensor hooks see the saved tensors, and what they unpack is used
    packed = []

    def pack(t):
        packed.append(t.shape)
        return t.clone()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = mod(x)
    y.sum().backward()
    ok(torch.Size([4, 8]) in packed, "saved_tensors_hooks pack x", packed)
    g1 = x.grad.clone()
    x.grad = None
    mod(x).sum().backward()
    ok(torch.equal(g1, x.grad), "the same gradient with the hooks")
    # non-reentrant checkpointing recomputes the forward
    from torch.utils.checkpoint import checkpoint
    x.grad = None
    checkpoint(mod, x, use_reentrant=False).sum().backward()
    ok(torch.equal(g1, x.grad), "checkpoint(use_reentrant=False)")
    # anomaly mode, retain_graph and a hook on y
    x.grad = None
    seen = []
    with torch.autograd.detect_anomaly():
        y = mod(x)
        y.register_hook(lambda g: seen.append(g.shape))
        y.sum().backward(retain_graph=True)
        y.sum().backward()
    ok(torch.equal(x.grad, 2 * g1) and seen == [torch.Size([4, 8])] * 2,
       "anomaly mode, retain_graph, hook on y")
    # a module's full backward hook sees dx and dy
    got = []
    h = mod.register_full_backward_hook(
        lambda m, gi, go: got.append((gi[0].clone(), go[0].clone())))
    x.grad = None
    dy = torch.randn(4, 8)
    mod(x).backward(dy)
    h.remove()
    ok(len(got) == 1 and torch.equal(got[0][0], x.grad) and
       torch.equal(got[0][1], dy), "register_full_backward_hook")
    # the graph's buffers are freed after a backward
    y = mod(x)
    y.sum().backward()
    raises(RuntimeError, lambda: y.sum().backward(), "a second backward",
           "second time")


@needs_ext
def test_failed_kernel_raises_dnc_error():
    """A kernel's error status reaches the caller as dnc's exception."""
    import dnc
    from dnc import _capi as C
    mod = dt.PointwiseNorm(8, "dyt", threads=1)
    mod(torch.randn(2, 8))
    f = dt._function(mod._dnc_source, mod._dnc_name, 1)
    h = f._torch_ext[0]
    raises(dnc.ArgumentError, lambda: dt._ext_failed(h, C.ERR_ARGUMENT,
                                                       "layer_forward"),
           "the status's exception", "dyt.layer_forward")
    raises(MemoryError, lambda: dt._ext_failed(h, C.ERR_MEMORY,
                                               "layer_backward"),
           "out of memory", "dyt.layer_backward")


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16,
                                   torch.float64], ids=["f32", "bf16", "f64"])
@pytest.mark.parametrize("fn", ["derf", PC], ids=["derf", "per_channel"])
def test_channels_first_same_bits(dtype, fn):
    """PointwiseNorm(channels_last=False) over dimension 1 (ConvNeXt's
    LayerNorm2d) through the C++ call's channel-major node: the bits of
    dnc._channels' Python autograd.Function, for N x C x H x W and
    N x C x L inputs, views, an input in channels_last memory format
    (which takes the last dimension's kernels on the permuted view) and
    no rows."""
    torch.manual_seed(12)
    c = 6
    mod = dt.PointwiseNorm(c, fn, channels_last=False, dtype=dtype)
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-0.3, 0.3)
    x = (torch.randn(2, c, 5, 7) * 2).to(dtype)
    dy = torch.randn(2, c, 5, 7).to(dtype)
    cases = {"NCHW": (x, dy),
             "NCL": (x[:, :, 0], dy[:, :, 0]),
             "a cropped view": (x[:, :, 1:4, 2:6], dy[:, :, 1:4, 2:6]),
             "channels_last memory format": (
                 x.to(memory_format=torch.channels_last), dy),
             "no rows": (x[:0], dy[:0])}
    _same_cases(mod, dtype, cases)
    xx = x.detach().clone().requires_grad_()
    node = mod(xx).grad_fn.name()
    ok(node == "torch::autograd::CppNode<dnc_torch::PointwiseNorm>",
       "channels first makes the C++ node", node)


@needs_ext
def test_channels_first_second_order():
    torch.manual_seed(13)
    mod = dt.PointwiseNorm(3, PC, channels_last=False, dtype=torch.float64)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)

    def hvp():
        g, = torch.autograd.grad(mod(x).pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(g.sum(), [x, mod.weight, mod.a, mod.s])
    with _through_cpp():
        a = hvp()
    with _python_path():
        b = hvp()
    _same(list(a), list(b), "second derivatives, channels first")
    ok(torch.autograd.gradgradcheck(lambda x: mod(x), (x,)),
       "gradgradcheck, channels first")


@needs_ext
def test_functional_call():
    """dnc.torch.pointwise, which is not PointwiseNorm's plain call, takes
    the C++ call too: the same bits as the Python path."""
    torch.manual_seed(14)
    x = torch.randn(4, 8, dtype=torch.float64)
    s = torch.rand(8, dtype=torch.float64, requires_grad=True)
    w = torch.rand(8, dtype=torch.float64, requires_grad=True)
    nodes = []

    def run():
        xx = x.clone().requires_grad_()
        y = dt.pointwise(xx, PC, weight=w, s=s, a=0.7)
        nodes.append(y.grad_fn.name())
        g = torch.autograd.grad(y.sum(), [xx, w, s])
        return [y.detach()] + list(g)
    with _through_cpp():
        a = run()
    with _python_path():
        b = run()
    _same(a, b, "pointwise")
    ok(nodes[0] == "torch::autograd::CppNode<dnc_torch::PointwiseNorm>" and
       nodes[1] != nodes[0], "pointwise makes the C++ node", nodes)


@needs_ext
def test_tensor_subclass_keeps_python_path():
    """An input of a tensor subclass takes the Python path, whose
    autograd.Function honours its __torch_function__ (the output is of the
    subclass, as torch's own operations give it); a C++ call would not."""
    class Tagged(torch.Tensor):
        pass
    mod = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(3, 8).as_subclass(Tagged).requires_grad_()
    y = mod(x)
    ok(type(y) is Tagged, "the subclass is kept", type(y))
    ok(y.grad_fn.name() != "torch::autograd::CppNode<dnc_torch::PointwiseNorm>",
       "no C++ node for a subclass", y.grad_fn.name())
    y.sum().backward()
    ref = dt.PointwiseNorm(8, "dyt")
    xr = x.detach().as_subclass(torch.Tensor).clone().requires_grad_()
    ref(xr).sum().backward()
    ok(torch.equal(x.grad.as_subclass(torch.Tensor), xr.grad),
       "the same gradient")


@needs_ext
def test_stale_build_is_not_used(monkeypatch):
    """A build whose interface is not the one this dnc.torch calls (a
    checkout updated without make) is not loaded, and the reason says
    what to run."""
    monkeypatch.setattr(dt, "_EXT_INTERFACE", dt._EXT_INTERFACE + 1)
    ext, why = dt._load_ext()
    ok(ext is None and "another version of dnc.torch" in why and
       "run make" in why, "a stale build is refused", why)


_FORK_SCRIPT = r"""
import os, sys, threading, time, torch, dnc.torch as dt
norm = dt.PointwiseNorm(64, "dyt")
x = torch.randn(4096, 64, requires_grad=True)  # 1 MiB outputs: reused
stop = False
def train():
    while not stop:
        norm(x).sum().backward()
ths = [threading.Thread(target=train) for _ in range(2)]
[t.start() for t in ths]
hung = None
for i in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        torch.set_num_threads(1)
        with torch.no_grad():
            norm(x)
        os._exit(0)
    t = time.time()
    while time.time() - t < 20:
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.01)
    else:
        hung = i
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        break
stop = True
[t.join() for t in ths]
print("hung at fork %d" % hung if hung is not None else "no hang")
"""


@needs_ext
@pytest.mark.slow
def test_fork_while_a_backward_runs():
    """fork() while other threads run backwards (without the GIL, in the
    C++ layer call's output reuse): the child's first large forward hung
    on the lock the parent's thread held at the fork (on the second fork
    of the audit's run); pthread_atfork takes it around the fork."""
    r = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, "60"],
                       capture_output=True, text=True, timeout=900)
    ok(r.returncode == 0 and "no hang" in r.stdout,
       "60 forks beside two training threads: no child hangs",
       r.stdout + r.stderr[-2000:])


def test_thread_counts_keep_no_idle_pools():
    """One dnc context per thread count, each with threads - 1 workers
    made with it: a process that had run on 16 thread counts held 122
    threads, idle beside ATen's OpenMP team. A context's workers now
    start with its first call on them, and on OpenMP none do."""
    if dt._torch_openmp() is None:
        pytest.skip("ATen does not run on an OpenMP runtime here")
    script = r"""
import os, torch, dnc.torch as dt
norm = dt.PointwiseNorm(64, "dyt")
x = torch.randn(4096, 64, requires_grad=True)
for n in range(1, 17):
    torch.set_num_threads(n)
    norm(x).sum().backward()
torch.set_num_threads(2)
print(len(os.listdir('/proc/self/task')), torch.get_num_threads())
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True,
                       text=True, timeout=600)
    ok(r.returncode == 0, "ran", r.stderr[-2000:])
    n = int(r.stdout.split()[0])
    # ATen's OpenMP team (up to 15 after set_num_threads(16)) and
    # PyTorch's own few; dnc's idle pools were 120 more
    ok(n <= 40, "threads after 16 thread counts: %d" % n)
