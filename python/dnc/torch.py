"""dnc.torch - dnc's kernels as a PyTorch autograd function and module.

    from dnc.torch import PointwiseNorm, convert_layernorm
    norm = PointwiseNorm(512, "dyt")                    # alpha = 0.5, weight, bias
    norm = PointwiseNorm(512, "fn f(x; a = 1, s[] = 0) = erf(a * x + s)")
    model = convert_layernorm(model, "derf")            # every nn.LayerNorm

y = weight * f(x; params) + bias over the last dimension, forward and the
fused backward in one pass each, on CPU tensors in float32, float64,
bfloat16 and float16. Scalar parameters are tensors of shape (1,) (as in
the DyT and Derf repositories), per-channel ones of shape (C,). Double
backward (create_graph=True) is supported: the backward is then built from
dnc's own symbolic derivatives, each one a differentiable dnc function in
turn. docs/python.md is the manual.
"""
import ctypes
import threading

import torch
from torch import nn

import dnc as _dnc
from . import _capi as C

__all__ = ["PointwiseNorm", "convert", "convert_layernorm", "convert_rmsnorm",
           "fit_initial", "pointwise", "STANDARD"]

# The published functions, for PointwiseNorm(C, "dyt") and the like: the
# definitions and defaults of examples/norms.dn.
STANDARD = """\
fn dyt(x; alpha = 0.5) = tanh(alpha * x)
fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)
fn derf(x; alpha = 0.5, shift = 0) = erf(alpha * x + shift)
"""

# storage dtype -> (dnc_dtype, compute dtype of per-channel values, sums)
_DTYPES = {torch.float32: (C.F32, torch.float32),
           torch.float64: (C.F64, torch.float64),
           torch.bfloat16: (C.BF16, torch.float32),
           torch.float16: (C.F16, torch.float32)}

# Fresh outputs are most of a layer's cost when their pages are faulted in
# 4 KiB at a time (measured: 133 ms to allocate and fill 128 MiB on the
# development VM, 35 ms with huge pages, 16 ms to fill it again): large ones
# are marked for transparent huge pages before the kernel first writes them.
# Where the kernel has no THP (or this is not Linux) the call does nothing.
_HUGE = 1 << 21
try:
    _madvise = ctypes.CDLL(None).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
except (OSError, AttributeError):
    _madvise = None


def _empty(shape, dtype):
    t = torch.empty(shape, dtype=dtype)
    n = t.numel() * t.element_size()
    if _madvise is not None and n >= 8 * _HUGE:
        a = t.data_ptr()
        lo = (a + _HUGE - 1) & ~(_HUGE - 1)
        hi = (a + n) & ~(_HUGE - 1)
        if hi > lo:
            _madvise(lo, hi - lo, 14)  # MADV_HUGEPAGE
    return t


_lock = threading.Lock()
_contexts = {}   # threads -> dnc.Context
_compiled = {}   # (source, threads) -> dnc.Module


def _context(threads):
    with _lock:
        ctx = _contexts.get(threads)
        if ctx is None:
            ctx = _contexts[threads] = _dnc.Context(threads=threads)
        return ctx


def _compile(source, threads):
    key = (source, threads)
    with _lock:
        m = _compiled.get(key)
    if m is None:
        m = _context(threads).compile(source, "<dnc.torch>")
        with _lock:
            m = _compiled.setdefault(key, m)
    return m


def resolve(fn, module=None, threads=None):
    """The dnc.Function that fn names: a dnc.Function; a name in module (a
    dnc.Module, or the path of a .dn file or of a library from `dnc
    compile`); a name of STANDARD (dyt, dyisru, derf); or dnc source text
    defining one function. threads: the kernels' threads (None: a
    Function's own context, else torch.get_num_threads())."""
    if isinstance(fn, _dnc.Function):
        if threads is None or fn.module.context.threads == threads:
            return fn
        return _compile(fn.source, threads)[fn.name]
    if not isinstance(fn, str):
        raise TypeError("fn is a dnc.Function, a function's name or dnc "
                        "source, not %s" % type(fn).__name__)
    if threads is None:
        threads = torch.get_num_threads()
    if module is not None:
        if isinstance(module, str):
            if module.endswith(".dn"):
                module = _context(threads).compile_file(module)
            else:
                module = _context(threads).load(module)
        return module[fn]
    if "(" in fn or "=" in fn:
        m = _compile(fn, threads)
        if len(m) != 1:
            raise ValueError("the source defines %d functions (%s); give "
                             "one, or compile it with dnc.compile and pass "
                             "module= and a name" % (len(m),
                                                     ", ".join(m.names)))
        return next(iter(m))
    m = _compile(STANDARD, threads)
    if fn not in m:
        raise ValueError("'%s' is not one of dnc.torch's standard functions "
                         "(%s); pass dnc source or module=" % (
                             fn, ", ".join(m.names)))
    return m[fn]


def _rows(t):
    """t as a 2-D [rows, C] view with unit stride along C and one row
    stride of at least C (a contiguous copy when its layout has none), and
    that row stride."""
    v = t.reshape(1, 1) if t.dim() == 0 else t.reshape(-1, t.shape[-1])
    rows, cols = v.shape
    if (cols > 1 and v.stride(1) != 1) or (rows > 1 and v.stride(0) < cols):
        v = v.contiguous()
    return v, (v.stride(0) if rows > 1 else cols)


def _tensor(v, ld, dt):
    return C.Tensor(v.data_ptr(), dt, v.shape[0], v.shape[1], ld)


def _check_device(what, t):
    if t is not None and t.device.type != "cpu":
        raise RuntimeError(
            "dnc.torch: %s is on %s; dnc's kernels run on CPU tensors (it "
            "has no GPU back end yet): move it with .cpu()" % (what, t.device))


def _values(t, ct):
    """t's values in the compute type, contiguous: t itself when it is so
    (only its address is taken), else a converted copy."""
    if t.dtype == ct and t.is_contiguous():
        return t
    return t.detach().to(ct).contiguous()


def _layer(fn, cols, ct, params, gamma, beta, keep):
    """dnc_layer for fn's parameter tensors (scalars: one value;
    per-channel: C values), gamma and beta; keep holds what it points to."""
    n = max(len(fn.params), 1)
    pv = (ctypes.c_double * n)()
    ptrs = (ctypes.c_void_p * n)()
    for i, (p, t) in enumerate(zip(fn.params, params)):
        if p.kind == "per_channel":
            a = _values(t if t.numel() == cols else t.reshape(-1)[:1]
                        .expand(cols), ct)
            keep.append(a)
            ptrs[i] = a.data_ptr()
        else:
            pv[i] = t.item()
    g = b = None
    if gamma is not None:
        g = _values(gamma, ct)
        keep.append(g)
    if beta is not None:
        b = _values(beta, ct)
        keep.append(b)
    keep += [pv, ptrs]
    return C.Layer(pv, ptrs, g.data_ptr() if g is not None else None,
                   b.data_ptr() if b is not None else None)


def _status(st, fn, what):
    if st != C.OK:
        _dnc._raise(st, "%s.%s" % (fn.name, what))


def _leading(t):
    """Sums over every dimension but the last."""
    return t.sum(dim=tuple(range(t.dim() - 1))) if t.dim() > 1 else t


class _LayerFn(torch.autograd.Function):
    """y = gamma * f(x; params) + beta over the last dimension (gamma, beta
    None: 1 and 0). Arguments: fn (a dnc.Function), x, gamma, beta, then
    one tensor per parameter of fn in order."""

    @staticmethod
    def forward(ctx, fn, x, gamma, beta, *params):
        dt, ct = _DTYPES[x.dtype]
        xv, ldx = _rows(x)
        y = _empty(xv.shape, x.dtype)
        keep = []
        lay = _layer(fn, xv.shape[1], ct, params, gamma, beta, keep)
        st = C.lib.dnc_layer_forward(fn._h, _tensor(xv, ldx, dt),
                                     _tensor(y, y.shape[1], dt),
                                     ctypes.byref(lay))
        _status(st, fn, "layer_forward")
        ctx.fn = fn
        ctx.save_for_backward(x, gamma, beta, *params)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x, gamma, beta, *params = ctx.saved_tensors
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():
            grads = _composite_backward(ctx.fn, x, dy, gamma, beta, params,
                                        need)
        else:
            grads = _fused_backward(ctx.fn, x, dy, gamma, beta, params, need)
        return (None,) + grads


def _fused_backward(fn, x, dy, gamma, beta, params, need):
    """One pass of dnc's fused layer backward."""
    dt, ct = _DTYPES[x.dtype]
    xv, ldx = _rows(x)
    dyv, lddy = _rows(dy.to(x.dtype))
    cols = xv.shape[1]
    dx = _empty(xv.shape, x.dtype)
    keep = []
    lay = _layer(fn, cols, ct, params, gamma, beta, keep)
    n = max(len(fn.params), 1)
    dp = (ctypes.c_double * n)()
    dptrs = (ctypes.c_void_p * n)()
    dchan = {}
    for i, p in enumerate(fn.params):
        if p.kind == "per_channel" and need[4 + i]:
            dchan[i] = torch.zeros(cols, dtype=ct)
            dptrs[i] = dchan[i].data_ptr()
    dg = torch.zeros(cols, dtype=ct) if gamma is not None and need[2] \
        else None
    db = torch.zeros(cols, dtype=ct) if beta is not None and need[3] \
        else None
    grad = C.LayerGrad(dp, dptrs, dg.data_ptr() if dg is not None else None,
                       db.data_ptr() if db is not None else None)
    st = C.lib.dnc_layer_backward(fn._h, _tensor(xv, ldx, dt),
                                  _tensor(dyv, lddy, dt),
                                  _tensor(dx, cols, dt), ctypes.byref(lay),
                                  ctypes.byref(grad))
    _status(st, fn, "layer_backward")
    dparams = []
    for i, (p, t) in enumerate(zip(fn.params, params)):
        if not need[4 + i]:
            dparams.append(None)
        elif p.kind == "per_channel":
            d = dchan[i] if t.numel() == cols else dchan[i].sum()
            dparams.append(d.to(t.dtype).reshape(t.shape))
        else:
            dparams.append(torch.full(t.shape, dp[i], dtype=t.dtype))
    return (dx.reshape(x.shape) if need[1] else None,
            dg.to(gamma.dtype) if dg is not None else None,
            db.to(beta.dtype) if db is not None else None) + tuple(dparams)


def _composite_backward(fn, x, dy, gamma, beta, params, need):
    """The backward as differentiable operations on dnc functions (f and
    its symbolic derivatives), for create_graph=True: each derivative's own
    backward is dnc's again, to any order."""
    def f(g):
        return _LayerFn.apply(g, x, None, None, *params)
    g = dy if gamma is None else dy * gamma
    dx = g * f(fn.derivative("x")) if need[1] else None
    dgamma = _leading(dy * f(fn)) if gamma is not None and need[2] else None
    dbeta = _leading(dy) if beta is not None and need[3] else None
    dparams = []
    for i, (p, t) in enumerate(zip(fn.params, params)):
        if not need[4 + i]:
            dparams.append(None)
            continue
        s = g * f(fn.derivative(p.name))
        per_channel = p.kind == "per_channel" and t.numel() == x.shape[-1]
        dparams.append((_leading(s) if per_channel else s.sum())
                       .reshape(t.shape))
    return (dx, dgamma, dbeta) + tuple(dparams)


def _check(fn, x, gamma, beta, params, what):
    _check_device("the input", x)
    if x.dtype not in _DTYPES:
        raise TypeError("dnc.torch: %s takes float32, float64, bfloat16 or "
                        "float16 tensors, not %s" % (what, x.dtype))
    if x.dim() == 0:
        raise ValueError("dnc.torch: %s needs an input with a channel "
                         "dimension, not a 0-d tensor" % what)
    cols = x.shape[-1]
    for name, t in (("weight", gamma), ("bias", beta)):
        _check_device(name, t)
        if t is not None and t.shape != (cols,):
            raise ValueError("dnc.torch: %s: %s has shape %s; the input's "
                             "last dimension is %d" % (what, name,
                                                       tuple(t.shape), cols))
    if len(params) != len(fn.params):
        raise TypeError("dnc.torch: %s() takes %d parameters, got %d" % (
            fn.name, len(fn.params), len(params)))
    for p, t in zip(fn.params, params):
        _check_device("parameter '%s'" % p.name, t)
        ok = t.numel() == 1 or (p.kind == "per_channel" and t.numel() == cols
                                and t.dim() == 1)
        if not ok:
            raise ValueError(
                "dnc.torch: %s: parameter '%s' has shape %s; it takes %s" % (
                    what, p.name, tuple(t.shape),
                    "one value or one per channel (%d)" % cols
                    if p.kind == "per_channel" else "one value"))


def pointwise(x, fn, weight=None, bias=None, module=None, **params):
    """The functional form: weight * f(x; params) + bias over x's last
    dimension, differentiable. params: tensors or numbers by name (missing
    ones take the source's defaults)."""
    fn = resolve(fn, module)
    extra = set(params) - {p.name for p in fn.params}
    if extra:
        raise TypeError("%s() has no parameter %s (its parameters: %s)" % (
            fn.name, ", ".join("'%s'" % e for e in sorted(extra)),
            ", ".join(p.name for p in fn.params) or "none"))
    ts = []
    for p in fn.params:
        v = params.get(p.name, p.default)
        ts.append(v if isinstance(v, torch.Tensor)
                  else torch.tensor([float(v)], dtype=x.dtype))
    _check(fn, x, weight, bias, ts, "pointwise")
    return _LayerFn.apply(fn, x, weight, bias, *ts)


class PointwiseNorm(nn.Module):
    """A drop-in for nn.LayerNorm over the last dimension:
    y = weight * f(x; params) + bias.

    normalized_shape: C, or (C,). fn: a dnc.Function, a function's name
    (in module=, or one of STANDARD: "dyt", "dyisru", "derf"), or dnc
    source defining one function. Each parameter of f becomes an
    nn.Parameter of its name, initialised to its default or to the value
    given by keyword (a per-channel one also takes C values): shape (1,)
    for a scalar, (C,) per channel. elementwise_affine and bias: the
    per-channel weight (ones) and bias (zeros), as in nn.LayerNorm
    (bias=False: weight only, as RMSNorm). channels_last=False: over
    dimension 1 of an N x C x ... input instead (dnc._channels).
    threads: the kernels' threads (None: torch.get_num_threads())."""

    def __init__(self, normalized_shape, fn, module=None, *,
                 elementwise_affine=True, bias=True, channels_last=True,
                 threads=None, device=None, dtype=None, **init):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        normalized_shape = tuple(normalized_shape)
        if len(normalized_shape) != 1 or normalized_shape[0] < 1:
            raise ValueError("PointwiseNorm normalizes over the last "
                             "dimension: normalized_shape is C or (C,), not "
                             "%r" % (normalized_shape,))
        if device is not None and torch.device(device).type != "cpu":
            raise RuntimeError("dnc.torch: PointwiseNorm runs on the CPU "
                               "(dnc has no GPU back end yet), not on %s"
                               % device)
        dtype = dtype or torch.get_default_dtype()
        if dtype not in _DTYPES:
            raise TypeError("dnc.torch: PointwiseNorm takes float32, float64,"
                            " bfloat16 or float16, not %s" % dtype)
        self.normalized_shape = normalized_shape
        self.channels_last = bool(channels_last)
        self.fn = resolve(fn, module, threads)
        c = normalized_shape[0]
        names = [p.name for p in self.fn.params]
        extra = set(init) - set(names)
        if extra:
            raise TypeError("%s() has no parameter %s (its parameters: %s)"
                            % (self.fn.name, ", ".join(
                                "'%s'" % e for e in sorted(extra)),
                               ", ".join(names) or "none"))
        for p in self.fn.params:
            if p.name in ("weight", "bias") or hasattr(nn.Module, p.name) or \
                    p.name.startswith("_"):
                raise ValueError("%s's parameter '%s' clashes with a name of"
                                 " the module; rename it in the source" % (
                                     self.fn.name, p.name))
            v = init.get(p.name, p.default)
            shape = (c,) if p.kind == "per_channel" else (1,)
            t = torch.as_tensor(v, dtype=dtype).clone()
            if t.numel() == 1:
                t = t.reshape(1).expand(shape).clone()
            elif t.shape != shape:
                raise ValueError("%s: '%s' takes %s, not shape %s" % (
                    self.fn.name, p.name, "one value" if shape == (1,) else
                    "one value or %d" % c, tuple(t.shape)))
            setattr(self, p.name, nn.Parameter(t))
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(c, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(c, dtype=dtype)) \
                if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        params = [getattr(self, p.name) for p in self.fn.params]
        if not self.channels_last and x.dim() > 2:
            return self._forward_channels_first(x, params)
        if x.dim() and x.shape[-1] != self.normalized_shape[0]:
            raise ValueError("PointwiseNorm(%d): the input's last dimension "
                             "is %d (shape %s)" % (self.normalized_shape[0],
                                                   x.shape[-1],
                                                   tuple(x.shape)))
        _check(self.fn, x, self.weight, self.bias, params, "PointwiseNorm")
        self._check_dtypes(x, params)
        return _LayerFn.apply(self.fn, x, self.weight, self.bias, *params)

    def _forward_channels_first(self, x, params):
        from . import _channels
        if x.shape[1] != self.normalized_shape[0]:
            raise ValueError("PointwiseNorm(%d, channels_last=False): the "
                             "input's dimension 1 is %d (shape %s)" % (
                                 self.normalized_shape[0], x.shape[1],
                                 tuple(x.shape)))
        _channels.check(self.fn, x, self.weight, self.bias, params,
                        "PointwiseNorm")
        self._check_dtypes(x, params)
        return _channels.apply(self.fn, x, self.weight, self.bias, params)

    def _check_dtypes(self, x, params):
        for name, t in [("weight", self.weight), ("bias", self.bias)] + \
                [(p.name, t) for p, t in zip(self.fn.params, params)]:
            if t is not None and t.dtype != x.dtype:
                raise TypeError("PointwiseNorm: the input is %s but '%s' is "
                                "%s; convert the module (e.g. .to(%s))" % (
                                    x.dtype, name, t.dtype, x.dtype))

    def extra_repr(self):
        vals = []
        for p in self.fn.params:
            t = getattr(self, p.name).detach()
            vals.append("%s=%.4g" % (p.name, float(t.reshape(-1)[0]))
                        if t.numel() == 1 else "%s=[%d values, mean %.4g]"
                        % (p.name, t.numel(), float(t.float().mean())))
        return "%s, fn=%s(%s), elementwise_affine=%s%s%s, threads=%d" % (
            self.normalized_shape, self.fn.name, ", ".join(vals),
            self.elementwise_affine,
            "" if self.bias is not None or not self.elementwise_affine
            else ", bias=False",
            "" if self.channels_last else ", channels_last=False",
            self.fn.module.context.threads)


# The converters live in dnc/convert.py (channels-first LayerNorm subclasses,
# RMSNorm, per-site and fitted initial values).
from .convert import (convert, convert_layernorm, convert_rmsnorm,  # noqa
                      find_norms, fit_initial, channels_first)
