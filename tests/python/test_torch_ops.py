"""test_torch_ops.py - the operators torch.ops.dnc.layer_forward and
layer_backward called directly, as a user's own code or an exported graph
calls them: a call the function cannot compute is refused with a clear
error (a missing parameter was read as 0, a weight of fewer than C values
was read past its end, a float64 weight silently converted), in eager
mode through the C++ kernels and through Python's, and under
torch.compile (the fake implementations check too); a call under
forward-mode AD is refused (its tangent was dropped); and the refusals
do not depend on whether the C++ kernels have seen the function (three
parameters for dyt were refused on the first call and ignored after).
PyTorch 2 only."""
import contextlib

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import raises, ok  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no torch.library.custom_op (PyTorch 2 only)"
                % torch.__version__, allow_module_level=True)

DYT = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)"
PC = "fn pc(x; a = 0.6, s[] = 0.1) = erf(a * x + s)"
C = 8


@contextlib.contextmanager
def _python_kernels():
    """Every operator call through Python's kernels (no C++ extension)."""
    ext, dt._ext = dt._ext, None
    on = ext.set_op_kernels(False) if ext else None
    try:
        yield
    finally:
        dt._ext = ext
        if ext:
            ext.set_op_kernels(on)


PATHS = [contextlib.nullcontext, _python_kernels]


def _args():
    torch.manual_seed(1)
    x = torch.randn(3, C)
    return x, torch.randn(3, C), torch.rand(C) + 0.5, torch.rand(C), \
        torch.tensor([0.5])


BAD = [
    # (what, forward's arguments as a function of the good ones, error,
    #  a piece of its message)
    ("no parameter for dyt",
     lambda x, w, b, a: (x, w, b, [], DYT, "dyt"), TypeError,
     "dyt() takes 1 parameters, got 0"),
    ("three parameters for dyt",
     lambda x, w, b, a: (x, w, b, [a, a, a], DYT, "dyt"), TypeError,
     "dyt() takes 1 parameters, got 3"),
    ("a per-channel parameter missing",
     lambda x, w, b, a: (x, w, b, [a], PC, "pc"), TypeError,
     "pc() takes 2 parameters, got 1"),
    ("a weight of 3 values for 8 channels",
     lambda x, w, b, a: (x, w[:3], b, [a], DYT, "dyt"), ValueError,
     "weight has shape (3,)"),
    ("a bias of 1 value for 8 channels",
     lambda x, w, b, a: (x, w, b[:1], [a], DYT, "dyt"), ValueError,
     "bias has shape (1,)"),
    ("a per-channel parameter of 3 values",
     lambda x, w, b, a: (x, w, b, [a, torch.zeros(3)], PC, "pc"),
     ValueError, "parameter 's' has shape (3,)"),
    ("a scalar parameter of 8 values",
     lambda x, w, b, a: (x, w, b, [a.expand(C).clone()], DYT, "dyt"),
     ValueError, "parameter 'alpha' has shape (8,); it takes one value"),
    ("an int32 input",
     lambda x, w, b, a: (x.int(), w, b, [a], DYT, "dyt"), TypeError,
     "not torch.int32"),
    ("a float64 weight with a float32 input",
     lambda x, w, b, a: (x, w.double(), b, [a], DYT, "dyt"), TypeError,
     "'weight' is torch.float64"),
    ("a weight on the meta device",
     lambda x, w, b, a: (x, w.to("meta"), b, [a], DYT, "dyt"), RuntimeError,
     "'weight' is on meta"),
]


@pytest.mark.parametrize("path", PATHS, ids=["cpp", "python"])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_calls_refused(path, case):
    what, make, err, text = case
    x, dy, w, b, a = _args()
    # the function seen before (registered with the C++ kernels) and not
    dt.pointwise(x, DYT, w, b, alpha=a)
    args = make(x, w, b, a)
    with path():
        for call in (lambda: torch.ops.dnc.layer_forward(*args, 0),
                     lambda: torch.ops.dnc.layer_backward(
                         args[0], dy if args[0].dtype != torch.int32
                         else dy.int(), *args[1:], 0)):
            raises(err, call, what, match=text)


@pytest.mark.parametrize("path", PATHS, ids=["cpp", "python"])
def test_bad_dy_refused(path):
    x, dy, w, b, a = _args()
    with path():
        raises(TypeError, lambda: torch.ops.dnc.layer_backward(
            x, dy.long(), w, b, [a], DYT, "dyt", 0), "an int64 dy",
            match="dy is torch.int64")
        raises(ValueError, lambda: torch.ops.dnc.layer_backward(
            x, dy[:2], w, b, [a], DYT, "dyt", 0), "a dy of another shape",
            match="dy has shape (2, 8), x (3, 8)")


def test_bad_call_refused_under_compile():
    """The fake implementation checks: torch.compile refuses the call
    while tracing, where the kernels would have read past the weight."""
    x, dy, w, b, a = _args()

    @torch.compile(backend="aot_eager", fullgraph=True)
    def f(x, w):
        return torch.ops.dnc.layer_forward(x, w, b, [a], DYT, "dyt", 0)
    raises(Exception, lambda: f(x, w[:3]), "a weight of 3 values",
           match="weight has shape (3,)")
    torch._dynamo.reset()


@pytest.mark.parametrize("path", PATHS, ids=["cpp", "python"])
def test_good_calls_agree(path):
    """The checks pass what they should: the operators' results equal
    pointwise's, with and without weight and bias, per-channel
    parameters, one value of a per-channel parameter."""
    x, dy, w, b, a = _args()
    s = torch.randn(C) * 0.1
    with path():
        for src, name, ps in ((DYT, "dyt", [a]), (PC, "pc", [a, s]),
                              (PC, "pc", [a, s[:1]])):
            for ww, bb in ((w, b), (None, None), (w, None)):
                y = torch.ops.dnc.layer_forward(x, ww, bb, ps, src, name, 0)
                kw = dict(zip(["alpha"] if name == "dyt" else ["a", "s"],
                              ps))
                ref = dt.pointwise(x, src, ww, bb, **kw)
                ok(torch.equal(y, ref), "%s, weight %s: as pointwise" % (
                    name, ww is not None))
                g = torch.ops.dnc.layer_backward(x, dy, ww, bb, ps, src,
                                                 name, 0)
                ok(len(g) == 3 + len(ps) and g[0].shape == x.shape,
                   "%s: the backward's gradients" % name)


@pytest.mark.parametrize("path", PATHS, ids=["cpp", "python"])
def test_forward_mode_refused(path):
    """torch.func.jvp and forward_ad over the operator itself: refused
    (the result carried no tangent); over pointwise, the tangent."""
    from torch.autograd import forward_ad as fwAD
    x, dy, w, b, a = _args()
    x, w, b, a = x.double(), w.double(), b.double(), a.double()
    tx = torch.ones_like(x)
    want = torch.func.jvp(lambda z: torch.tanh(0.5 * z) * w + b, (x,),
                          (tx,))[1]
    with path():
        raises(NotImplementedError, lambda: torch.func.jvp(
            lambda z: torch.ops.dnc.layer_forward(z, w, b, [a], DYT, "dyt",
                                                  0), (x,), (tx,)),
            "torch.func.jvp over the operator",
            match="no forward-mode derivative")
        with fwAD.dual_level():
            raises(NotImplementedError, lambda: torch.ops.dnc.layer_forward(
                fwAD.make_dual(x, tx), w, b, [a], DYT, "dyt", 0),
                "forward_ad over the operator")
        t = torch.func.jvp(lambda z: dt.pointwise(z, DYT, w, b, alpha=a),
                           (x,), (tx,))[1]
        ok(torch.allclose(t, want), "jvp over pointwise: the tangent")
