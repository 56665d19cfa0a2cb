"""dnc._channels - PointwiseNorm(channels_last=False): the layer over
dimension 1 of an N x C x ... tensor (ConvNeXt's LayerNorm2d, the DyT and
Derf modules with channels_last=False).

The tensor is seen as an [N*C x HW] matrix without a copy (HW: the
product of the dimensions after C); libdnc's channel-major layer kernels
(dnc_layer_forward_cm, dnc_layer_backward_cm) take each channel's rows
with a row stride, so per-channel weight, bias and function parameters
are indexed by row mod C. Nothing is permuted or copied unless the input
is not contiguous in its trailing dimensions.
"""
import ctypes

import torch

from . import _capi as C
from . import torch as _dt


def _rows(t):
    """t (N x C x ...) as an [N*C x HW] view with unit column stride and
    one row stride (a contiguous copy when it has none), and that stride."""
    n, c = t.shape[0], t.shape[1]
    hw = 1
    for s in t.shape[2:]:
        hw *= s
    v = t.reshape(n * c, hw)
    if (hw > 1 and v.stride(1) != 1) or (n * c > 1 and v.stride(0) < hw):
        v = v.contiguous()
    return v, (v.stride(0) if n * c > 1 else hw)


def _over_channels(t, x):
    """A (C,) tensor shaped to broadcast along dimension 1 of x."""
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


def _sum_channels(t):
    """Sums over every dimension but 1."""
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


class _ChannelsFirstFn(torch.autograd.Function):
    """y = gamma[c] * f(x; params[c]) + beta[c] with c = dimension 1 of x.
    Arguments as _LayerFn's: fn, x, gamma, beta, one tensor per parameter."""

    @staticmethod
    def forward(ctx, fn, x, gamma, beta, *params):
        dt, ct = _dt._DTYPES[x.dtype]
        xv, ldx = _rows(x)
        # y made in x's shape and written through a 2-D view: a view made
        # in here as the output could not be changed in place after (a
        # conv net's ReLU(inplace=True) after a LayerNorm2d)
        y = _dt._empty(x.shape, x.dtype)
        if y.numel() == 0:
            ctx.fn = fn
            ctx.save_for_backward(x, gamma, beta, *params)
            return y
        yv = y.view(xv.shape)
        keep = []
        chans = x.shape[1]
        lay = _dt._layer(fn, chans, ct, params, gamma, beta, keep)
        st = C.lib.dnc_layer_forward_cm(fn._h, _dt._tensor(xv, ldx, dt),
                                        _dt._tensor(yv, yv.shape[1], dt),
                                        chans, ctypes.byref(lay))
        _dt._status(st, fn, "layer_forward_cm")
        ctx.fn = fn
        ctx.save_for_backward(x, gamma, beta, *params)
        if hasattr(ctx, "save_for_forward"):
            ctx.save_for_forward(x, gamma, beta, *params)
        return y

    @staticmethod
    def jvp(ctx, _fn, tx, tg, tb, *tps):
        """Forward mode: the last dimension's (_dt._layer_jvp) on x with
        dimension 1 moved last."""
        x, gamma, beta, *params = ctx.saved_tensors
        fn = ctx.fn

        def last(t):
            return None if t is None else t.movedim(1, -1)
        t = _dt._layer_jvp(_dt._source_of(fn), fn.name,
                           fn.module.context.threads, last(x), gamma, beta,
                           params, last(tx), tg, tb, tps)
        return t.movedim(-1, 1).contiguous()  # the layout of y

    @staticmethod
    def backward(ctx, dy):
        x, gamma, beta, *params = ctx.saved_tensors
        need = _dt._needs(ctx, 0)
        if _dt.HAS_CUSTOM_OPS and _dt._compiling() and \
                not torch.is_grad_enabled():
            # compiled autograd traces this backward: the last dimension's
            # custom op on dimension 1 moved last, which it records, not
            # the ctypes calls (a graph break each)
            fn = ctx.fn
            g = _dt._op_backward_grads(
                x.movedim(1, -1), dy.movedim(1, -1), gamma, beta, params,
                _dt._source_of(fn), fn.name,
                getattr(fn, "_torch_threads", None) or
                fn.module.context.threads, need[1:])
            dx = None if g[0] is None else g[0].movedim(-1, 1)
            return (None, dx) + g[1:]
        if torch.is_grad_enabled() or _dt._no_storage(dy):
            grads = _composite_backward(ctx.fn, x, dy, gamma, beta, params,
                                        need)
        else:
            grads = _fused_backward(ctx.fn, x, dy, gamma, beta, params, need)
        return (None,) + grads


def _fused_backward(fn, x, dy, gamma, beta, params, need):
    dt, ct = _dt._DTYPES[x.dtype]
    chans = x.shape[1]
    xv, ldx = _rows(x)
    dyv, lddy = _rows(dy.to(x.dtype))
    dx = _dt._empty(x.shape, x.dtype)
    dxv = dx.view(xv.shape)
    keep = []
    lay = _dt._layer(fn, chans, ct, params, gamma, beta, keep)
    n = max(len(fn.params), 1)
    dp = (ctypes.c_double * n)()
    dptrs = (ctypes.c_void_p * n)()
    dchan = {}
    for i, p in enumerate(fn.params):
        if p.kind == "per_channel" and need[4 + i]:
            dchan[i] = torch.zeros(chans, dtype=ct, device="cpu")
            dptrs[i] = dchan[i].data_ptr()
    dg = torch.zeros(chans, dtype=ct, device="cpu") \
        if gamma is not None and need[2] else None
    db = torch.zeros(chans, dtype=ct, device="cpu") \
        if beta is not None and need[3] else None
    grad = C.LayerGrad(dp, dptrs, dg.data_ptr() if dg is not None else None,
                       db.data_ptr() if db is not None else None)
    st = C.lib.dnc_layer_backward_cm(
        fn._h, _dt._tensor(xv, ldx, dt), _dt._tensor(dyv, lddy, dt),
        _dt._tensor(dxv, dxv.shape[1], dt), chans, ctypes.byref(lay),
        ctypes.byref(grad))
    _dt._status(st, fn, "layer_backward_cm")
    dparams = []
    for i, (p, t) in enumerate(zip(fn.params, params)):
        if not need[4 + i]:
            dparams.append(None)
        elif p.kind == "per_channel":
            d = dchan[i] if t.numel() == chans else dchan[i].sum()
            dparams.append(d.to(t.dtype).reshape(t.shape))
        else:
            dparams.append(_dt._filled(t.shape, dp[i], t.dtype))
    return (dx if need[1] else None,
            dg.to(gamma.dtype) if dg is not None else None,
            db.to(beta.dtype) if db is not None else None) + tuple(dparams)


def _composite_backward(fn, x, dy, gamma, beta, params, need):
    """The backward from dnc's symbolic derivatives as differentiable
    operations, for create_graph=True (as _LayerFn's, along dimension 1):
    f and its derivatives evaluated in the wide type (_dt._wide), their
    products rounded once."""
    xw, pw = _dt._wide(x), [_dt._wide(p) for p in params]

    def f(g):
        return _ChannelsFirstFn.apply(g, xw, None, None, *pw)
    dyw = _dt._wide(dy)
    g = dyw if gamma is None else dyw * _over_channels(_dt._wide(gamma), x)
    dx = (g * f(fn.derivative())).to(x.dtype) if need[1] else None
    dgamma = _sum_channels(dyw * f(fn)).to(gamma.dtype) \
        if gamma is not None and need[2] else None
    dbeta = _sum_channels(dyw).to(beta.dtype) \
        if beta is not None and need[3] else None
    dparams = []
    for i, (p, t) in enumerate(zip(fn.params, params)):
        if not need[4 + i]:
            dparams.append(None)
            continue
        s = g * f(fn.derivative(p.name))
        per_channel = p.kind == "per_channel" and t.numel() == x.shape[1]
        dparams.append((_sum_channels(s) if per_channel else s.sum())
                       .reshape(t.shape).to(t.dtype))
    return (dx, dgamma, dbeta) + tuple(dparams)


def apply(fn, x, gamma, beta, params):
    return _ChannelsFirstFn.apply(fn, x, gamma, beta, *params)
