"""test_torch_state.py - what a training run keeps and what traces it,
under PyTorch 1.13 and 2: a state_dict records its PointwiseNorm's
function, and one saved from another function is refused, not loaded into
this one (directly, nested, through torch.save and a weights-only load),
while the same function under another name, with other defaults or
written otherwise (tanh(x * alpha) for DyT), and the DyT repository's
checkpoints, load; a torch.fx GraphModule saved and loaded in a new
process, on the decomposed form; fake tensors (FakeTensorMode) through
either layout, where the channels-first kernels once got data pointers
that fake tensors do not have; a meta input of another dtype refused by
name."""
import copy
import io
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok, raises  # noqa: E402
from torch import nn  # noqa: E402

ISRU = "fn f(x; alpha = 1) = x / sqrt(alpha + x^2)"
SRC = "fn g(u; k = 0.7, s[] = 0.1) = erf(k * u + s)"


class DynamicTanh(nn.Module):
    """The DyT repository's module (channels last)."""

    def __init__(self, c):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))


def saved(state, **kw):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, **kw)


def test_state_dict_of_another_function_is_refused():
    """DyT and an ISRU both have one scalar 'alpha' and per-channel weight
    and bias: the names and shapes match, the meaning does not."""
    isru = nn.Sequential(nn.Linear(4, 4), dt.PointwiseNorm(4, ISRU))
    with torch.no_grad():
        isru[1].alpha.fill_(3.0)
    dyt = nn.Sequential(nn.Linear(4, 4), dt.PointwiseNorm(4, "dyt"))
    state = isru.state_dict()
    kw = [{}]
    try:
        saved(state, weights_only=True)
        kw.append({"weights_only": True})
    except TypeError:  # a PyTorch whose torch.load has no weights_only
        pass
    for strict in (True, False):
        for how in kw:
            raises(RuntimeError,
                   lambda: dyt.load_state_dict(saved(state, **how),
                                               strict=strict),
                   "ISRU's checkpoint into DyT, strict=%s %s" % (strict, how),
                   "the state_dict's '1' was saved from a PointwiseNorm "
                   "computing fn f(x; alpha = 1) = x / sqrt(alpha + x^2); "
                   "this one computes fn dyt(x; alpha = 0.5) = "
                   "tanh(alpha * x)")
            ok(dyt[1].alpha.item() == 0.5, "DyT's alpha is not loaded")
    raises(RuntimeError,
           lambda: dyt[1].load_state_dict(isru[1].state_dict()),
           "the module itself", "the state_dict was saved from")
    raises(RuntimeError,
           lambda: dyt.load_state_dict(copy.deepcopy(state)),
           "a deep copy keeps the metadata", "sqrt(alpha + x^2)")
    # on purpose: a plain dict has no metadata, values load by name
    dyt.load_state_dict(dict(state))
    ok(dyt[1].alpha.item() == 3.0, "dict(state_dict) loads by name")


def test_a_refused_load_leaves_the_other_modules_loaded():
    """What docs/python.md says of a refused load: PyTorch's
    load_state_dict is not atomic, so the other modules' values are
    loaded before the error."""
    isru = nn.Sequential(nn.Linear(4, 4), dt.PointwiseNorm(4, ISRU))
    dyt = nn.Sequential(nn.Linear(4, 4), dt.PointwiseNorm(4, "dyt"))
    raises(RuntimeError, lambda: dyt.load_state_dict(isru.state_dict()),
           "refused", "sqrt(alpha + x^2)")
    ok(torch.equal(dyt[0].weight, isru[0].weight),
       "the Linear's weight was loaded all the same")
    ok(dyt[1].alpha.item() == 0.5, "the refused norm's is not")


def test_state_dict_of_the_same_function_loads():
    mod = dt.PointwiseNorm(4, "dyt")
    x = torch.randn(3, 4)
    for other in ("fn other(x; alpha = 2) = tanh(alpha * x)",  # name, default
                  "fn dyt(x; alpha = 0.5) = tanh(alpha*x)"):
        src = dt.PointwiseNorm(4, other)
        with torch.no_grad():
            src.alpha.fill_(0.8)
            src.bias.uniform_(-1, 1)
        mod.load_state_dict(saved(src.state_dict()))
        ok(torch.equal(mod(x), src(x)), "%s loads into dyt" % other)
    # a checkpoint whose source another dnc printed otherwise: compiled
    # and printed again before it is compared
    state = mod.state_dict()
    ok(state._metadata[""][dt._STATE_FN].startswith("fn dyt(x;"),
       "the metadata holds the function's source",
       lambda: repr(state._metadata))
    state._metadata[""][dt._STATE_FN] = "fn f(x;alpha=3)=tanh((alpha*x))"
    mod.load_state_dict(state)
    # the reference module's checkpoints have no such metadata, and ours
    # load into it strictly
    ref = DynamicTanh(4)
    mod.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(mod.state_dict(), strict=True)
    per = dt.PointwiseNorm(4, SRC, channels_last=False)
    per.load_state_dict(saved(dt.PointwiseNorm(4, SRC).state_dict()))


def test_the_same_function_written_otherwise_loads():
    """tanh(x * alpha) is DyT: its checkpoint was refused as "another
    function" (the printed sources were compared), though the docs said
    the same function with another name or defaults loads. Operands of +
    and * in another order, another name for x, constants folded, lets,
    parameters declared in another order load (dnc's simplified DAG of
    f, _meaning); another function with the same parameter names is
    still refused, and so are parameters swapped by name."""
    x = torch.randn(3, 4)
    same = {"dyt": ["fn dyt(x; alpha = 0.5) = tanh(x * alpha)",
                    "fn f(u; alpha = 2) = tanh(u * alpha)"],
            ISRU: ["fn g(v; alpha = 3) = v / sqrt(v*v + alpha)",
                   "fn h(x; alpha = 1) { let d = alpha + x^2; x / sqrt(d) }"],
            SRC: ["fn e(x; s[] = 0, k = 1) = erf(s + x * k)",
                  "fn e(x; s[] = 0, k = 1) = erf(0.5 * (2 * (k * x)) + s)"]}
    for mine, others in same.items():
        mod = dt.PointwiseNorm(4, mine)
        for other in others:
            src = dt.PointwiseNorm(4, other)
            with torch.no_grad():
                for t in src.parameters():
                    t.uniform_(0.5, 1.5)
            mod.load_state_dict(saved(src.state_dict()))
            ok(torch.allclose(mod(x), src(x)),
               "%s loads into %s" % (other, mine))
            src.load_state_dict(mod.state_dict())
    for mine, other in (
            ("dyt", "fn dyt(x; alpha = 0.5) = tanh(2 * alpha * x)"),
            ("dyt", "fn dyt(x; alpha = 0.5) = x / sqrt(alpha + x^2)"),
            ("fn f(x; a = 1, b = 1) = b * tanh(a * x)",
             "fn f(x; b = 1, a = 1) = a * tanh(b * x)"),
            (SRC, "fn g(u; k = 0.7, s = 0.1) = erf(k * u + s)")):
        raises(RuntimeError, lambda: dt.PointwiseNorm(4, mine).load_state_dict(
            dt.PointwiseNorm(4, other).state_dict()),
            "%s refused in %s" % (other, mine),
            "its values would mean something else here")


def fake_mode():
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError:
        pytest.skip("no FakeTensorMode in PyTorch %s" % torch.__version__)
    return FakeTensorMode


@pytest.mark.parametrize("channels_last", [True, False])
def test_fake_tensors(channels_last):
    """Shapes through FakeTensorMode (as torch.export and compilers
    propagate them), never the kernels on tensors without data."""
    FakeTensorMode = fake_mode()
    shape = (2, 6, 3, 6)
    if dt.HAS_CUSTOM_OPS:
        # a real module, fake inputs: the custom ops' fake implementations
        norm = dt.PointwiseNorm(6, SRC, channels_last=channels_last)
        with FakeTensorMode(allow_non_fake_inputs=True):
            x = torch.empty(shape, requires_grad=True)
            y = norm(x)
            y.sum().backward()
            ok(tuple(x.grad.shape) == shape, "fake x.grad")
    else:
        # PyTorch 1.13: everything fake, the decomposed form
        with FakeTensorMode():
            norm = dt.PointwiseNorm(6, SRC, channels_last=channels_last)
            y = norm(torch.empty(shape))
    ok(type(y).__name__ == "FakeTensor" and tuple(y.shape) == shape,
       "a fake output of x's shape", lambda: "%s %s" % (type(y), y.shape))
    # and outside the mode, real values again
    norm = dt.PointwiseNorm(6, SRC, channels_last=channels_last)
    x = torch.randn(shape)
    xl = x if channels_last else x.movedim(1, -1)
    want = norm.weight * torch.erf(norm.k * xl + norm.s) + norm.bias
    ok(torch.allclose(norm(x), want if channels_last else
                      want.movedim(-1, 1), atol=1e-6), "real values")


@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS, reason="PyTorch 2's dispatch "
                    "modes see the custom ops")
def test_dispatch_mode_sees_channels_first_op():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))
    norm = dt.PointwiseNorm(6, SRC, channels_last=False)
    x = torch.randn(2, 6, 4, 5)
    with Ops() as ops:
        y = norm(x)
    ok("dnc.layer_forward.default" in ops.seen, "the operator is seen",
       lambda: repr(ops.seen))
    ok(torch.equal(y, norm(x)), "the same values as without the mode")


def test_meta_input_of_another_dtype():
    norm = dt.PointwiseNorm(6, "dyt", device="meta")
    raises(TypeError,
           lambda: norm(torch.empty(3, 6, device="meta", dtype=torch.int32)),
           "an int32 meta input", "not torch.int32")
    raises(TypeError,
           lambda: norm(torch.empty(3, 6, device="meta",
                                    dtype=torch.float64)),
           "a float64 meta input into a float32 module",
           "the input is torch.float64 but 'weight' is torch.float32")


# loads what test_saved_graph_module_in_a_new_process saved, and runs it on
# the decomposed form (the path of a GPU), forward and backward
LOAD_GRAPH_MODULE = """
import sys, torch, dnc.torch as dt
kw = {"weights_only": False} \\
    if "weights_only" in torch.load.__code__.co_varnames else {}
d = torch.load(sys.argv[1], **kw)
x = d["x"].clone().requires_grad_()
with dt.decomposed():
    y = d["gm"](x)
    y.sum().backward()
print(float((y - d["y"]).abs().max()), float((x.grad - d["dx"]).abs().max()))
"""


def test_saved_graph_module_in_a_new_process(tmp_path):
    """A torch.fx GraphModule of a model with a PointwiseNorm, saved with
    torch.save and loaded in a new process, runs the decomposed form there
    (a GPU's path; decomposed() on the CPU): the form is printed where it
    is first looked up. Only the module's constructor printed it, which
    the loaded GraphModule never runs: a KeyError."""
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(6, 6), dt.PointwiseNorm(6, SRC))
    gm = torch.fx.symbolic_trace(m)
    x = torch.randn(3, 6, requires_grad=True)
    y = m(x)
    y.sum().backward()
    path = str(tmp_path / "gm.pt")
    torch.save({"gm": gm, "x": x.detach(), "y": y.detach(),
                "dx": x.grad}, path)
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(dt.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", LOAD_GRAPH_MODULE, path],
                       env=env, capture_output=True, text=True, timeout=300)
    ok(r.returncode == 0, "the loaded GraphModule runs decomposed",
       r.stderr[-3000:])
    dy, ddx = (float(v) for v in r.stdout.split()[-2:])
    ok(dy < 1e-6 and ddx < 1e-6, "y and dx are the kernels' (within "
       "1e-6)", r.stdout)
