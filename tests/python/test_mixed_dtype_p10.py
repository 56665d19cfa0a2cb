"""test_mixed_dtype_p10.py - a bfloat16 or float16 input to a norm whose
parameters are float32, outside autocast: nn.LayerNorm takes it on
PyTorch 2 (norms kept in float32 in a bfloat16 model, as mixed-precision
recipes keep them), computing in float32 and returning the input's dtype.
A converted model must run where the unconverted one ran, with the values
of the same formula: gamma * tanh(alpha * x) + beta in float32, rounded
once."""
import copy

import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402
from torch import nn  # noqa: E402


def _layer_norm_mixed():
    """Whether this PyTorch's nn.LayerNorm takes a bfloat16 input with
    float32 parameters (PyTorch 2 does; 1.13 refuses)."""
    try:
        nn.LayerNorm(4)(torch.randn(2, 4, dtype=torch.bfloat16))
        return True
    except RuntimeError:
        return False


def _reference(x, norm, cf):
    shape = (-1,) + (1,) * (x.dim() - 2) if cf else (-1,)
    y = torch.tanh(norm.alpha * x.float()) * norm.weight.reshape(shape)
    if norm.bias is not None:
        y = y + norm.bias.reshape(shape)
    return y.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16],
                         ids=["bf16", "f16"])
@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
def test_low_precision_input_float32_parameters(dtype, cf):
    # seeded: about one draw in 600 put an element where the kernel's
    # gamma * f + beta (a fused multiply-add) and the reference's
    # multiply, then add, are one float32 ulp apart across a rounding
    # boundary of the low-precision result, one step of it apart; such an
    # element is allowed (below), the draw made repeatable
    torch.manual_seed(132)
    norm = dt.PointwiseNorm(6, "dyt", channels_last=not cf)
    with torch.no_grad():
        norm.alpha.fill_(0.8)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    ref = copy.deepcopy(norm)
    shapes = [(2, 6, 3, 4), (2, 6, 5)] if cf else [(3, 6), (2, 3, 6)]
    for shape in shapes:
        x = torch.randn(shape).to(dtype).requires_grad_()
        xr = x.detach().clone().requires_grad_()
        y = norm(x)
        want = _reference(xr, ref, cf)
        ok(y.dtype == dtype, "%s %s: y in the input's dtype" % (dtype, shape),
           y.dtype)
        # the same formula rounded once: equal, or one step of dtype apart
        # where float32's fused and unfused gamma * f + beta straddle a
        # rounding boundary (never more, and rarely)
        step = torch.finfo(dtype).eps * want.float().abs().clamp_min(
            torch.finfo(dtype).tiny)
        off = (y.float() - want.float()).abs()
        ok(bool((off <= step).all()) and int((off > 0).sum()) <= 1,
           "%s %s: y" % (dtype, shape), lambda: off.max())
        g = torch.randn(shape).to(dtype)
        y.backward(g)
        want.backward(g)
        ok(x.grad.dtype == dtype and
           torch.allclose(x.grad.float(), xr.grad.float(), rtol=1e-2,
                          atol=1e-2), "%s %s: dx" % (dtype, shape))
        for (n, p), q in zip(norm.named_parameters(), ref.parameters()):
            ok(p.grad.dtype == torch.float32 and
               torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-4),
               "%s %s: d%s" % (dtype, shape, n), (p.grad, q.grad))
        norm.zero_grad()
        ref.zero_grad()


def test_converted_model_with_float32_norms():
    """A bfloat16 model whose LayerNorms stay float32 runs before and
    after dnc.convert (PyTorch 2, where nn.LayerNorm takes it)."""
    if not _layer_norm_mixed():
        pytest.skip("nn.LayerNorm of this PyTorch takes one dtype")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.GELU(),
                          nn.Linear(8, 8), nn.LayerNorm(8))
    model[0].to(torch.bfloat16)
    model[3].to(torch.bfloat16)
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    ok(model(x).dtype == torch.bfloat16, "nn.LayerNorm: mixed dtypes run")
    conv = dt.convert(copy.deepcopy(model), "dyt")
    ok(conv[1].weight.dtype == torch.float32, "the norms stay float32")
    y = conv(x)
    ok(y.dtype == torch.bfloat16, "converted: y in bfloat16", y.dtype)
    y.float().pow(2).sum().backward()
    ok(conv[1].alpha.grad is not None and conv[0].weight.grad is not None,
       "converted: gradients reach every parameter")


def test_other_mixtures_still_refused():
    """A float32 input to bfloat16 parameters, or float64 to float32, is
    refused outside autocast (nn.LayerNorm refuses them too)."""
    norm = dt.PointwiseNorm(4, "dyt")
    with pytest.raises(TypeError, match="convert the module"):
        norm(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="convert the module"):
        copy.deepcopy(norm).bfloat16()(torch.randn(2, 4))
    with pytest.raises(TypeError, match="convert the module"):
        copy.deepcopy(norm).half()(torch.randn(2, 4, dtype=torch.bfloat16))


def test_a_float64_input_is_not_told_to_use_autocast():
    """The message for a float64 input to float32 parameters suggested
    torch.autocast, which is for lower precisions: now the dtypes to
    match. A bfloat16 module's float32 input is still told of autocast,
    under which the layer computes in float32."""
    norm = dt.PointwiseNorm(4, "dyt")
    with pytest.raises(TypeError) as info:
        norm(torch.randn(2, 4, dtype=torch.float64))
    msg = str(info.value)
    assert "autocast" not in msg and ".to(torch.float64)" in msg and \
        "x.to(torch.float32)" in msg, msg
    with pytest.raises(TypeError) as info:
        dt.pointwise(torch.randn(2, 4, dtype=torch.float64), "dyt",
                     weight=torch.ones(4))
    msg = str(info.value)
    assert "autocast" not in msg and \
        "weight.to(torch.float64)" in msg, msg
    with pytest.raises(TypeError) as info:
        copy.deepcopy(norm).double()(torch.randn(2, 4))
    assert "autocast" not in str(info.value), str(info.value)
    with pytest.raises(TypeError) as info:
        copy.deepcopy(norm).bfloat16()(torch.randn(2, 4))
    assert "torch.autocast" in str(info.value), str(info.value)


def test_compiled_mixed():
    if not dt.HAS_CUSTOM_OPS:
        pytest.skip("torch.compile needs PyTorch 2")
    torch._dynamo.reset()
    norm = dt.PointwiseNorm(6, "dyt", channels_last=False)
    x = torch.randn(2, 6, 3, 3).to(torch.bfloat16)
    y = torch.compile(norm)(x)
    ok(y.dtype == torch.bfloat16 and torch.equal(y, norm(x)),
       "compiled: the eager values")
    torch._dynamo.reset()


@pytest.mark.parametrize("cf", [False, True], ids=["last", "channels_first"])
@pytest.mark.parametrize("src", ["dyt", "derf",
                                 "fn g(x; a = 1, b[] = 0) = "
                                 "x / (1 + abs(a*x + b))"],
                         ids=["dyt", "derf", "g"])
def test_float32_parameter_beside_bfloat16_weight(src, cf):
    """A bfloat16 model that keeps f's parameters in float32 (its weight
    and bias bfloat16): the parameters' gradients are float32, but the
    call ran the bf16 kernels, whose math is accurate to about 2^-14: over
    4096 rows of one sign, DyT's alpha gradient was 75 float32 ulp off
    (8.9e-6 relative) and g's a 44, where a float32 weight's mixture gives
    the float32 kernels' (within one). Such a call now computes in float32
    too; y and dx stay bfloat16, and the bfloat16 gradients as they were."""
    torch.manual_seed(0)
    C = 64
    norm = dt.PointwiseNorm(C, src, channels_last=not cf).to(torch.bfloat16)
    fp = [n for n, _ in norm.named_parameters() if n not in ("weight",
                                                            "bias")]
    for n in fp:
        getattr(norm, n).data = getattr(norm, n).data.float()
    x = (torch.rand(4096, C) * 4 + 0.5).bfloat16()
    if cf:
        x = x.reshape(256, 16, C).transpose(1, 2).contiguous()  # N, C, L
    x.requires_grad_()
    y = norm(x)
    y.backward(torch.ones_like(y))
    ok(y.dtype == x.grad.dtype == torch.bfloat16, "y and dx in bfloat16")
    with torch.no_grad():
        ok(torch.equal(norm(x), y), "no_grad: training's bits")
    # the float64 reference of the same values
    ps = {n: p.detach().double().requires_grad_()
          for n, p in norm.named_parameters()}
    xd = x.detach().double()
    if cf:
        xd = xd.transpose(1, 2)
    if src == "dyt":
        f = torch.tanh(ps["alpha"] * xd)
    elif src == "derf":
        f = torch.erf(ps["alpha"] * xd + ps["shift"])
    else:
        f = xd / (1 + torch.abs(ps["a"] * xd + ps["b"]))
    yr = f * ps["weight"] + ps["bias"]
    yr.sum().backward()
    if cf:
        yr = yr.transpose(1, 2)
    ok(torch.equal(y, yr.detach().to(torch.bfloat16)) or
       ((y.double() - yr).abs() <= 2 ** -7 * yr.abs()).all(),
       "y: the exact value rounded to bfloat16 (within an ulp)")
    for n in fp:
        g, want = getattr(norm, n).grad, ps[n].grad
        rel = ((g.double() - want).abs() / want.abs()).max().item()
        ok(g.dtype == torch.float32 and rel <= 4 * 2 ** -24,
           "%s: d%s within float32's rounding of the exact sum" % (src, n),
           "relative error %.3g (%.1f ulp)" % (rel, rel * 2 ** 23))
    for n in ("weight", "bias"):
        g, want = getattr(norm, n).grad, ps[n].grad
        ok(g.dtype == torch.bfloat16 and
           ((g.double() - want).abs() <= 2 ** -7 * want.abs()).all(),
           "d%s: bfloat16, within an ulp of the exact sum" % n)


def test_pointwise_under_autocast_promotes_as_pytorch():
    """dt.pointwise(x, "dyt", alpha=a) of a bfloat16 x and a 0-d float32
    alpha returned float32 under torch.autocast("cpu", bfloat16), where
    it returns bfloat16 outside, and PyTorch's own torch.tanh(a * x)
    returns bfloat16 under autocast too: point-wise operations are on no
    autocast list, and a 0-d tensor does not promote an operand with
    dimensions of its kind. pointwise now gives the dtype torch.tanh(a *
    x) gives under autocast, for a 0-d alpha of each dtype and one of
    shape (1,) (which does promote), with the values of the same call
    outside autocast where that call is taken, and alpha's gradient in
    its own dtype."""
    torch.manual_seed(0)
    cases = [(xd, shape, ad, ash)
             for xd in (torch.bfloat16, torch.float16, torch.float32)
             for shape in ((4, 8), ())
             for ad in (torch.float32, torch.bfloat16, torch.float16,
                        torch.float64)
             for ash in ((), (1,))
             # a 0-d x beside an alpha of shape (1,): a (1,) result in
             # PyTorch, where pointwise keeps x's shape
             if shape or not ash]
    for xd, shape, ad, ash in cases:
        what = "x %s %s, alpha %s %s" % (xd, shape, ad, ash)
        x = torch.randn(shape).to(xd)
        a = torch.full(ash, 0.7, dtype=ad, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            # (torch.tanh keeps its operand's dtype; PyTorch 1.13 has no
            # float16 tanh on the CPU)
            want = (a.detach() * x).dtype
            y = dt.pointwise(x, "dyt", alpha=a)
        ok(y.dtype == want and y.shape == x.shape,
           what + ": torch.tanh(alpha * x)'s dtype", (y.dtype, want))
        ref = torch.tanh(0.7 * x.double())
        tol = 1e-2 if torch.bfloat16 in (y.dtype, xd) else 1e-3
        ok(torch.allclose(y.double(), ref, rtol=tol, atol=tol),
           what + ": the values", (y, ref))
        y.double().sum().backward()
        ok(a.grad is not None and a.grad.dtype == ad and
           torch.isfinite(a.grad).all(), what + ": alpha's gradient")
        if ash == () and ad == torch.float32 and shape:
            ok(torch.equal(y, dt.pointwise(x, "dyt", alpha=a.detach())),
               what + ": the bits of the call outside autocast")


def test_pointwise_under_autocast_a_0d_parameter_beside_one_with_dims():
    """Under autocast, dt.pointwise(x, derf, alpha=a, s=s) with a of shape
    (1,) in x's dtype and a 0-d s of another dtype (float16 beside a
    bfloat16 or float32 x, float64, bfloat16 beside float16) was a
    TypeError ("give it as ..., or run under torch.autocast", under
    autocast), where a 0-d alpha beside it was taken and PyTorch's own
    erf(a * x + s) gives x's dtype there (a 0-d tensor does not promote
    one with dimensions). It is now taken in the compute dtype: y in
    PyTorch's dtype, with the values, and s's gradient in s's dtype."""
    src = "fn derf(x; alpha = 0.5, s = 0.1) = erf(alpha * x + s)"
    torch.manual_seed(0)
    dts = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
    for xd in (torch.bfloat16, torch.float16, torch.float32):
        for sd in dts:
            if sd in (xd, torch.float32):
                continue
            what = "x %s, alpha (1,), s 0-d %s" % (xd, sd)
            x = torch.randn(4, 8).to(xd)
            a = torch.full((1,), 0.7, dtype=xd, requires_grad=True)
            s = torch.full((), 0.1, dtype=sd, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                want = (a.detach() * x + s.detach()).dtype
                y = dt.pointwise(x, src, alpha=a, s=s)
            ok(y.dtype == want, what + ": PyTorch's dtype", (y.dtype, want))
            ref = torch.erf(0.7 * x.double() + 0.1)
            ok(torch.allclose(y.double(), ref, rtol=2e-2, atol=2e-2),
               what + ": the values")
            y.double().sum().backward()
            ok(s.grad is not None and s.grad.dtype == sd and
               a.grad.dtype == xd, what + ": the gradients' dtypes")
