"""test_compiled_autograd_p10.py - PyTorch's compiled autograd (the
backward traced by torch.compile, as torchtitan and FSDP2 users turn it
on) over an eager PointwiseNorm: the backward records dnc's custom
operator instead of breaking the graph at each ctypes call of the fused
kernel (about a dozen breaks per norm before), and the gradients are
the eager ones; a graph made before compiled autograd was on, which
holds dnc.torch's C++ node, gets the eager gradients too. Skipped under
PyTorch 1.13.

Each case runs in an interpreter of its own: compiled autograd starts
autograd's worker threads, after which PyTorch refuses a backward in a
fork()ed child ("Unable to handle autograd's threading in combination
with fork-based multiprocessing"), which test_torch.py's DataLoader-style
check makes later in the same pytest process."""
import copy
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

if not dt.HAS_CUSTOM_OPS:
    pytest.skip("PyTorch %s has no torch.library.custom_op (PyTorch 2 only)"
                % torch.__version__, allow_module_level=True)


@pytest.mark.parametrize("channels_last", [True, False],
                         ids=["last", "channels_first"])
def test_compiled_autograd_no_graph_breaks(channels_last):
    _in_child(str(int(channels_last)), "compiled autograd over "
              "PointwiseNorm, in a child interpreter")


def _in_child(arg, name):
    """This file's checks for arg in an interpreter of its own: they pass
    (CHECKED), or skip with the reason they print."""
    r = subprocess.run([sys.executable, __file__, arg],
                       capture_output=True, text=True, timeout=600)
    if r.returncode == 0 and r.stdout.startswith("SKIPPED: "):
        pytest.skip(r.stdout.strip()[len("SKIPPED: "):])
    ok(r.returncode == 0 and "CHECKED" in r.stdout, name,
       lambda: r.stdout[-3000:] + r.stderr[-3000:])


def test_compiled_autograd_over_a_cpp_node():
    """A graph made in eager mode before compiled autograd was turned on
    holds dnc.torch's C++ node (where its C++ layer call is built), which
    compiled autograd can only call as it is: the backward then runs
    eagerly there, with the eager gradients."""
    _in_child("made-before", "compiled autograd over a C++ node, in a "
              "child interpreter")


def _check_made_before():
    ca = getattr(getattr(torch._dynamo, "compiled_autograd", None),
                 "_enable", None)
    if ca is None or dt.extension() is None:
        print("SKIPPED: no compiled autograd or no C++ layer call here")
        return
    norm = dt.PointwiseNorm(6, "fn g(x; a = 0.7, s[] = 0.1) = "
                            "tanh(a * x + s)")
    ref = copy.deepcopy(norm)
    x = torch.randn(2, 3, 6, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    y = norm(x).pow(2).sum()
    ok(y.grad_fn.next_functions[0][0].next_functions[0][0].name() ==
       "torch::autograd::CppNode<dnc_torch::PointwiseNorm>",
       "the graph holds the C++ node")
    with ca(torch.compile(backend="eager")):
        y.backward()
    ref(xr).pow(2).sum().backward()
    ok(torch.allclose(x.grad, xr.grad, rtol=1e-6, atol=1e-6),
       "compiled autograd over the C++ node: dx")
    for (n, p), q in zip(norm.named_parameters(), ref.parameters()):
        ok(torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6),
           "compiled autograd over the C++ node: d%s" % n, (p.grad, q.grad))
    print("CHECKED")


def _check(channels_last):
    ca = getattr(getattr(torch._dynamo, "compiled_autograd", None),
                 "_enable", None)
    if ca is None:
        print("SKIPPED: no torch._dynamo.compiled_autograd._enable here")
        return
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    norm = dt.PointwiseNorm(6, "fn g(x; a = 0.7, s[] = 0.1) = "
                            "tanh(a * x + s)", channels_last=channels_last)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.s.uniform_(-0.3, 0.3)
    ref = copy.deepcopy(norm)
    x = torch.randn(2, 6, 3, 4) if not channels_last else \
        torch.randn(2, 3, 6)
    x.requires_grad_()
    xr = x.detach().clone().requires_grad_()
    with ca(torch.compile(backend="eager")):
        norm(x).pow(2).sum().backward()
    ref(xr).pow(2).sum().backward()
    breaks = sum(counters["graph_break"].values())
    ok(breaks == 0, "compiled autograd: no graph break",
       dict(counters["graph_break"]))
    ok(torch.allclose(x.grad, xr.grad, rtol=1e-6, atol=1e-6),
       "compiled autograd: dx")
    for (n, p), q in zip(norm.named_parameters(), ref.parameters()):
        ok(torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6),
           "compiled autograd: d%s" % n, (p.grad, q.grad))
    torch._dynamo.reset()
    print("CHECKED")


if __name__ == "__main__":
    if sys.argv[1] == "made-before":
        _check_made_before()
    else:
        _check(bool(int(sys.argv[1])))
