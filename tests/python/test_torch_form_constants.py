"""test_torch_form_constants.py - `dnc diff --format torch` of functions
with constant subexpressions (GELU's tanh form has sqrt(2 / pi)): the
printed code called torch.sqrt, torch.exp, torch.pow and
torch.logical_and on Python floats and bools (TypeError), and divided
1.0 / 0.0 (ZeroDivisionError), so the decomposed form failed on every
device where the kernels cannot run. A constant that is not plain float
arithmetic is now printed as a tensor of its value. Runs under PyTorch
1.13 and 2."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import dnc  # noqa: E402
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

SOURCE = """\
fn gelu(x) = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
fn root2(x; a = 1) = x * 2^0.5 * a
fn cond(x; a = 1) = if 1 < 2 and x > 0 then a * x else 0
fn expc(x; a = 1) = a * x * exp(-0.5 * 2)
fn shared(x) { let c = sqrt(3); c * x + c * sin(x) + abs(-c) }
fn inf0(x) = if x > 0 then x else 1 / 0
fn calls(x; a = 1) = max(x, exp(1)) + min(x, log(2)) + clamp(x, -sqrt(2), a)
fn nots(x) = if not (1 > 2) or x == 0 then x else -x
"""

XS = [-3.5, -1.0, -0.25, 0.0, 0.5, 1.25, 4.0]


def test_constant_subexpressions_run_and_match_the_interpreter():
    mod = dnc.compile(SOURCE)
    for fn in mod:
        ns = {}
        exec(fn.diff("all", 1, "torch"), ns)
        names = [fn.name] + ["%s__d%s" % (fn.name, v)
                             for v in ["x"] + [p.name for p in fn.params]]
        funcs = [fn] + [fn.derivative(v)
                        for v in ["x"] + [p.name for p in fn.params]]
        params = [torch.tensor([float(p.default)], dtype=torch.float64)
                  for p in fn.params]
        x = torch.tensor(XS, dtype=torch.float64)
        for name, ref in zip(names, funcs):
            try:
                got = ns[name](x, *params)
            except (TypeError, ZeroDivisionError) as err:
                ok(False, "%s: the printed PyTorch form runs" % name,
                   "%s: %s" % (type(err).__name__, err))
            got = torch.broadcast_to(got, x.shape).numpy()
            want = ref.eval(np.array(XS))
            ok(np.allclose(got, want, rtol=1e-12, atol=1e-300,
                           equal_nan=True),
               "%s: the printed PyTorch form agrees with the interpreter"
               % name, "got %s\nwant %s" % (got, want))


def test_decomposed_layer_with_gelu_tanh():
    m = dt.PointwiseNorm(4, "fn gelu(x) = 0.5 * x * (1 + tanh(sqrt(2 / pi) "
                            "* (x + 0.044715 * x^3)))", dtype=torch.float64)
    x = torch.linspace(-3, 3, 8, dtype=torch.float64).reshape(2, 4)
    x.requires_grad_(True)
    with dt.decomposed():
        y = m(x)
        y.sum().backward()
    c = math.sqrt(2 / math.pi)
    u = c * (x.detach() + 0.044715 * x.detach() ** 3)
    want = 0.5 * x.detach() * (1 + torch.tanh(u))
    ok(torch.allclose(y.detach(), want, rtol=1e-12),
       "the decomposed GELU (tanh form) layer's forward", (y, want))
    ok(torch.isfinite(x.grad).all(), "... and its gradient is finite",
       x.grad)


def test_results_of_the_parameters_alone_have_x_shape():
    """A function or derivative of the parameters alone (a * 3; fma(a, x,
    x)'s d/dx = 1 + a; a per-channel s * s) was printed as that
    expression, of the parameter's shape ((1,), (C,)), where every other
    result has x's: each now has x's shape and the interpreter's values,
    in the separate functions and in NAME__all."""
    src = ("fn pa(x; a = 2) = a * 3\n"
           "fn fm(x; a = 2) = fma(a, x, x)\n"
           "fn pc(x; s[] = 0.5) = s * s + 0 * x\n")
    mod = dnc.compile(src)
    x = torch.tensor([[-1.0, 0.5, 2.0], [3.0, -0.0, 1.5]],
                     dtype=torch.float64)
    for fn in mod:
        ns = {}
        exec(fn.diff("all", 1, "torch"), ns)
        wrt = ["x"] + [p.name for p in fn.params]
        names = [fn.name] + ["%s__d%s" % (fn.name, v) for v in wrt]
        funcs = [fn] + [fn.derivative(v) for v in wrt]
        per_channel = any(p.kind == "per_channel" for p in fn.params)
        params = [torch.tensor([0.5, 0.75, 1.25] if per_channel else
                               [float(p.default)], dtype=torch.float64)
                  for p in fn.params]
        together = ns[fn.name + "__all"](x, *params)
        for i, (name, ref) in enumerate(zip(names, funcs)):
            for what, got in ((name, ns[name](x, *params)),
                              (name + " in __all", together[i])):
                ok(tuple(got.shape) == tuple(x.shape),
                   "%s: x's shape" % what, tuple(got.shape))
                # the interpreter takes one value a parameter: a column
                # at a time
                want = np.stack([ref.eval(x[:, c].numpy(), **{
                    p.name: float(t[c] if t.numel() > 1 else t[0])
                    for p, t in zip(fn.params, params)})
                    for c in range(x.shape[1])], axis=1)
                ok(np.allclose(got.numpy(), want, rtol=1e-15, atol=0),
                   "%s: the interpreter's values" % what,
                   "got %s\nwant %s" % (got, want))
