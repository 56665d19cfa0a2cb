"""dnc.torch - dnc's kernels as PyTorch operators and an nn.Module.

    from dnc.torch import PointwiseNorm, convert_layernorm
    norm = PointwiseNorm(512, "dyt")                    # alpha = 0.5, weight, bias
    norm = PointwiseNorm(512, "fn f(x; a = 1, s[] = 0) = erf(a * x + s)")
    model = convert_layernorm(model, "derf")            # every nn.LayerNorm

y = weight * f(x; params) + bias over the last dimension. Two paths
compute it:

- dnc's kernels (CPU tensors in float32, float64, bfloat16 and float16):
  the forward and the fused backward in one pass each. On PyTorch 2 they
  are the operators torch.ops.dnc.layer_forward and layer_backward
  (torch.library custom ops with fake implementations and a registered
  autograd formula), so torch.compile(fullgraph=True), torch.export and
  torch.func see through them; on PyTorch 1.13 an autograd.Function.
- the decomposed form: f, df/dx and every df/dp printed by dnc as PyTorch
  operations (`dnc diff --format torch`), with dnc's symbolic backward.
  It runs where the kernels cannot: CUDA, MPS, meta and any other device,
  torch.onnx.export (standard ONNX operators), and torch.compile on
  non-CPU devices, where inductor fuses it. `decomposed()` forces it.

Scalar parameters are tensors of shape (1,) (as in the DyT and Derf
repositories), per-channel ones of shape (C,). Double backward
(create_graph=True) is built from dnc's own symbolic derivatives.
Modules pickle and deepcopy: they keep the function's source and compile
it again on first use. docs/python.md is the manual.
"""
import contextlib
import ctypes
import math
import numbers
import os
import re
import struct as _struct
import sys
import threading
import typing
import warnings

import torch
from torch import nn
from torch.autograd import forward_ad as _forward_ad

import dnc as _dnc
from . import _capi as C

__all__ = ["PointwiseNorm", "convert", "convert_layernorm", "convert_rmsnorm",
           "fit_initial", "pointwise", "STANDARD", "resolve", "decomposed",
           "torch_form", "HAS_CUSTOM_OPS", "require_custom_ops",
           "set_output_reuse", "decompositions", "no_weight_decay",
           "from_pretrained"]

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

# torch.library.custom_op and register_fake arrived in PyTorch 2.4
HAS_CUSTOM_OPS = hasattr(torch.library, "custom_op") and \
    hasattr(torch.library, "register_fake")


def require_custom_ops(what="this"):
    """Raises RuntimeError naming what needs PyTorch 2 when this PyTorch
    has no torch.library.custom_op (1.13: torch.compile, torch.export and
    torch.ops.dnc do not exist there)."""
    if not HAS_CUSTOM_OPS:
        raise RuntimeError(
            "dnc.torch: %s needs PyTorch 2.4 or later (torch.library."
            "custom_op); this is PyTorch %s, where dnc.torch runs as an "
            "autograd.Function" % (what, torch.__version__))


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


# Every tensor the CPU kernels write (outputs, gradient buffers) is made
# with device="cpu" and its dtype named: under torch.set_default_device
# ("cuda", "meta") a factory call without them made the buffer there, and
# the kernels were given a GPU pointer or none ("NULL data").
def _fresh(shape, dtype):
    t = torch.empty(shape, dtype=dtype, device="cpu")
    n = t.numel() * t.element_size()
    if _madvise is not None and n >= 8 * _HUGE:
        a = t.data_ptr()
        lo = (a + _HUGE - 1) & ~(_HUGE - 1)
        hi = (a + n) & ~(_HUGE - 1)
        if hi > lo:
            _madvise(lo, hi - lo, 14)  # MADV_HUGEPAGE
    return t


# Even with huge pages, a fresh output costs the kernel zeroing its pages:
# on the development VM two fresh 128 MiB outputs (y and dx) took 40 ms of
# system time, as long again as the raw kernels of DyT's forward and
# backward (docs/performance.md). PyTorch's CPU allocator returns such
# blocks to the system on free (glibc maps them), so every step pays it
# again. dnc.torch therefore keeps the storages of its last few large
# outputs and gives one out again once nothing else holds it (its use
# count is this list's own reference, and no Python reference but this
# list's holds the storage object, which PyTorch hands out again as
# y.untyped_storage() and inside y.storage()): a tensor, view, saved
# tensor, .grad or storage the caller still has keeps it out of reach; so
# does shared memory (an output sent to another process by
# torch.multiprocessing, which the sender holds only weakly). At most
# _reuse_keep storages of 1 MiB or more are kept (set_output_reuse; at
# 8 MiB glibc's heap returned part of a freed block to the system too);
# PyTorch 1.13 cannot count a storage's uses, and there nothing is kept.
_REUSE_MIN = 1 << 20
_use_count = getattr(torch._C, "_storage_Use_Count", None)
_reuse = []  # UntypedStorage, the most recently made or given out last
_reuse_lock = threading.Lock()


def _refs_of_listed():
    """sys.getrefcount of an object that one list and one local name hold,
    as _empty looks at a kept storage: any more is someone else's."""
    kept = [object()]
    st = kept[0]
    return sys.getrefcount(st)


_LISTED_REFS = _refs_of_listed()
try:
    _reuse_keep = max(int(os.environ.get("DNC_TORCH_REUSE", "4")), 0)
except ValueError:
    _reuse_keep = 4


def set_output_reuse(n):
    """Keep (at most) the n most recent large output buffers for reuse
    (default 4, or $DNC_TORCH_REUSE); 0 turns reuse off and lets the
    kept ones go. Returns the previous count."""
    global _reuse_keep
    n = int(n)
    if n < 0:
        raise ValueError("set_output_reuse: n must be >= 0, not %d" % n)
    with _reuse_lock:
        old, _reuse_keep = _reuse_keep, n
        del _reuse[:len(_reuse) - n]
    if _ext is not None:
        _ext.set_reuse(n)
    return old


_ITEMSIZE = {torch.float32: 4, torch.float64: 8, torch.bfloat16: 2,
             torch.float16: 2}


def _empty(shape, dtype):
    """An uninitialised CPU tensor for an output: a large one in a storage
    that dnc.torch made before and nothing else holds, where there is
    one."""
    n = _ITEMSIZE[dtype]
    for d in shape:
        n *= d
    if n < _REUSE_MIN:
        return torch.empty(shape, dtype=dtype, device="cpu")
    if not _reuse_keep or _use_count is None:
        return _fresh(shape, dtype)
    with _reuse_lock:
        for i in range(len(_reuse)):
            st = _reuse[i]
            if st.nbytes() == n and _use_count(st._cdata) == 1 and \
                    sys.getrefcount(st) <= _LISTED_REFS and \
                    not st.is_shared():
                del _reuse[i]
                _reuse.append(st)
                return torch.empty(0, dtype=dtype, device="cpu").set_(
                    st, 0, shape)
    t = _fresh(shape, dtype)
    with _reuse_lock:
        _reuse.append(t.untyped_storage())
        del _reuse[:max(len(_reuse) - _reuse_keep, 0)]
    return t


# ------------------------------------------------------------ functions

_lock = threading.Lock()
_contexts = {}   # threads -> dnc.Context
_compiled = {}   # (source, threads) -> dnc.Module
_functions = {}  # (source, name, threads) -> dnc.Function


_omp = []  # [the OpenMP runtime PyTorch's ATen runs on, or None]


def _after_fork_in_child():
    """New locks in a fork()ed child: another thread of the parent may
    have held one (making a context for a thread count, compiling a
    function, handing out an output's storage), and the child's first
    such call waited for ever (the C++ extension's own locks are renewed
    by pthread_atfork, _torch_ext.cpp)."""
    global _lock, _reuse_lock
    _lock = threading.Lock()
    _reuse_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _torch_openmp():
    """The path of the OpenMP runtime that PyTorch's ATen runs its parallel
    code on (its own libgomp in a pip wheel, the system's in Debian's
    build), when it runs on OpenMP and that runtime is loaded; else None.
    $DNC_TORCH_OPENMP=0 says None."""
    if _omp:
        return _omp[0]
    lib = None
    if os.environ.get("DNC_TORCH_OPENMP", "1").lower() not in (
            "0", "off", "no", "false"):
        try:
            parallel = torch.__config__.parallel_info()
            with open("/proc/self/maps") as f:
                libs = {ln.split(None, 5)[5].strip() for ln in f
                        if ln.count(" ") >= 5 and
                        re.search(r"/lib[gi]?omp[^/]*\.so[^/]*$",
                                  ln.strip())}
        except (OSError, IndexError, AttributeError):
            libs, parallel = set(), ""
        if "parallel backend: OpenMP" in parallel and libs:
            # torch's own copy when it has one, else the one it links
            here = os.path.dirname(os.path.realpath(torch.__file__))
            own = sorted(p for p in libs
                         if os.path.realpath(p).startswith(here + os.sep))
            lib = own[0] if own else (sorted(libs)[0] if len(libs) == 1
                                      else None)
    _omp.append(lib)
    return lib


def _context(threads):
    with _lock:
        ctx = _contexts.get(threads)
        if ctx is None:
            ctx = _dnc.Context(threads=threads)
            lib = _torch_openmp()
            if lib is not None:
                # PyTorch's threads spin after each of its parallel
                # regions; on them, dnc's blocks do not compete with them
                # for the cores (docs/performance.md, round seven)
                try:
                    ctx.use_openmp(lib)
                except _dnc.Error:
                    pass  # dnc's own threads: slower next to ATen, same bits
            _contexts[threads] = ctx
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


# the most threads a dnc context has (dnc_context_create's limit,
# runtime/api.c; docs/c-api.md)
_MAX_THREADS = 1024


def _thread_count(threads, zero=False):
    """threads as PointwiseNorm, convert and pointwise take it: None, or
    an int (a NumPy one too) from 1 to 1024, or 0 where zero (pointwise's
    torch.get_num_threads() at the call); refused with a ValueError where
    it is given, not at the first compile for that count (libdnc's
    dnc.ArgumentError)."""
    if isinstance(threads, numbers.Integral) and \
            not isinstance(threads, bool):
        threads = int(threads)
        if (0 if zero else 1) <= threads <= _MAX_THREADS:
            return threads
    elif threads is None:
        return None
    raise ValueError("threads is None or an int from %d to %d, not %r"
                     % (0 if zero else 1, _MAX_THREADS, threads))


def _function(source, name, threads):
    """The dnc.Function `name` of source compiled for `threads` threads
    (0: torch.get_num_threads() now), from a cache keyed by all three."""
    if not threads:
        threads = torch.get_num_threads()
    key = (source, name, threads)
    f = _functions.get(key)
    if f is None:
        f = _functions.setdefault(key, _compile(source, threads)[name])
        # its thread count as a Python attribute, which torch.compile's
        # tracer reads without a native call (_channels' backward)
        f._torch_threads = threads
        if _ext is not None:
            _ext_args(f, source, name)  # for the operators' C++ kernels
    return f


def _own_options(f):
    """Refuses a Function whose context has options other than threads
    set: dnc.torch compiles a function again in contexts of its own (the
    default options, one per thread count), which would not be that
    context's kernels (math_bits=24's bf16 results on one thread count and
    the default math's on another)."""
    args = getattr(f.module.context, "_args", None)
    # Context's parameters and defaults, threads first
    init = _dnc.Context.__init__
    names = init.__code__.co_varnames[2:init.__code__.co_argcount]
    defaults = init.__defaults__[1:]
    if args is not None and tuple(args[1:]) != defaults:
        set_ = ", ".join("%s=%r" % (n, v) for n, v, d in
                         zip(names, args[1:], defaults) if v != d)
        raise ValueError(
            "dnc.torch: %s comes from a dnc.Context with %s; dnc.torch "
            "compiles its functions in contexts of its own (default "
            "options, one per thread count), which would not give that "
            "context's kernels: pass the function's source, or a Function "
            "of a context with only threads set" % (f.name, set_))


def resolve(fn, module=None, threads=None):
    """The dnc.Function that fn names: a dnc.Function; a name in module (a
    dnc.Module, or the path of a .dn file or of a library from `dnc
    compile`); a name of STANDARD (dyt, dyisru, derf); or dnc source text
    defining one function. threads: the kernels' threads (None: a
    Function's own context, else torch.get_num_threads())."""
    if isinstance(fn, _dnc.Function):
        _own_options(fn)
        if threads is None or fn.module.context.threads == threads:
            return fn
        return _compile(fn.source, threads)[fn.name]
    if not isinstance(fn, str):
        raise TypeError("fn is a dnc.Function, a function's name or dnc "
                        "source, not %s" % type(fn).__name__)
    if threads is None:
        threads = torch.get_num_threads()
    if module is not None:
        if isinstance(module, os.PathLike):
            module = os.fspath(module)
        if not isinstance(module, (str, _dnc.Module)):
            raise TypeError("module is a dnc.Module or the path of a .dn "
                            "file or of a library from `dnc compile`, not "
                            "%s" % type(module).__name__)
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


# ------------------------------------------------------- kernel calls

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


def _view(t, dt):
    """t as dnc's [rows x C] view over its last dimension (C = 1 for a 0-d
    t) and the tensor that holds its data: t itself when it is
    contiguous (no view is made: the per-call cost counts at training
    sizes), else _rows's."""
    if t.is_contiguous():
        if not t.dim():
            return C.Tensor(t.data_ptr(), dt, 1, 1, 1), t
        cols = t.shape[-1]
        rows = t.numel() // cols if cols else math.prod(t.shape[:-1])
        return C.Tensor(t.data_ptr(), dt, rows, cols, cols), t
    v, ld = _rows(t)
    return _tensor(v, ld, dt), v


def _values(t, ct):
    """t's values in the compute type, contiguous: t itself when it is so
    (only its address is taken), else a converted copy."""
    if t.dtype == ct and t.is_contiguous():
        return t
    return t.detach().to(ct).contiguous()


# per Function: (kinds of its parameters, the double and pointer array
# types of its dnc_layer) - built once, not per call
_shapes = {}


def _layout(fn):
    s = _shapes.get(id(fn))
    if s is None or s[0] is not fn:
        n = max(len(fn.params), 1)
        s = _shapes[id(fn)] = (fn, tuple(p.kind == "per_channel"
                                         for p in fn.params),
                               ctypes.c_double * n, ctypes.c_void_p * n)
    return s[1:]


def _layer(fn, cols, ct, params, gamma, beta, keep):
    """dnc_layer for fn's parameter tensors (scalars: one value;
    per-channel: C values), gamma and beta; keep holds what it points to."""
    chan, dtype, ptype = _layout(fn)
    pv = dtype()
    ptrs = ptype()
    for i, t in enumerate(params):
        if chan[i]:
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


def _kernel_forward(fn, x, gamma, beta, params, layer_out=None):
    """y by dnc's layer forward; layer_out (a list): gets the dnc_layer the
    call made and what it points to, for the backward of the same call
    (_kernel_backward's layer), where y has elements."""
    dt, ct = _DTYPES[x.dtype]
    y = _empty(x.shape, x.dtype)
    if y.numel() == 0:
        return y
    tx, xv = _view(x, dt)
    ty, _ = _view(y, dt)
    keep = []
    lay = _layer(fn, tx.cols, ct, params, gamma, beta, keep)
    st = C.lib.dnc_layer_forward(fn._h, tx, ty, ctypes.byref(lay))
    if st:
        _status(st, fn, "layer_forward")
    if layer_out is not None:
        layer_out += [lay, keep]
    return y


def _kernel_backward(fn, x, dy, gamma, beta, params, need, layer=None):
    """One pass of dnc's fused layer backward: (dx, dgamma, dbeta,
    [dparams]), None where need (x, gamma, beta, params...) says no.
    layer: _kernel_forward's layer_out for these x, gamma, beta and params
    (the values its forward read), else made here."""
    dt, ct = _DTYPES[x.dtype]
    if dy.dtype != x.dtype:
        dy = dy.to(x.dtype)
    tx, xv = _view(x, dt)
    tdy, dyv = _view(dy, dt)
    cols = tx.cols
    dx = _empty(x.shape, x.dtype)
    chan, dtype, ptype = _layout(fn)
    dp = dtype()
    dptrs = ptype()
    dchan = {}
    for i in range(len(params)):
        if chan[i] and need[3 + i]:
            dchan[i] = torch.zeros(cols, dtype=ct, device="cpu")
            dptrs[i] = dchan[i].data_ptr()
    dg = torch.zeros(cols, dtype=ct, device="cpu") \
        if gamma is not None and need[1] else None
    db = torch.zeros(cols, dtype=ct, device="cpu") \
        if beta is not None and need[2] else None
    if dx.numel():
        if layer:
            lay = layer[0]
        else:
            keep = []
            lay = _layer(fn, cols, ct, params, gamma, beta, keep)
        grad = C.LayerGrad(dp, dptrs,
                           dg.data_ptr() if dg is not None else None,
                           db.data_ptr() if db is not None else None)
        st = C.lib.dnc_layer_backward(fn._h, tx, tdy, _view(dx, dt)[0],
                                      ctypes.byref(lay), ctypes.byref(grad))
        if st:
            _status(st, fn, "layer_backward")
    dparams = []
    for i, t in enumerate(params):
        if not need[3 + i]:
            dparams.append(None)
        elif chan[i]:
            d = dchan[i] if t.numel() == cols else dchan[i].sum()
            dparams.append(d.to(t.dtype).reshape(t.shape))
        else:
            dparams.append(_filled(t.shape, dp[i], t.dtype))
    return (dx if need[0] else None,
            dg if dg is None or dg.dtype == gamma.dtype else
            dg.to(gamma.dtype),
            db if db is None or db.dtype == beta.dtype else
            db.to(beta.dtype), dparams)


def _filled(shape, v, dtype):
    """A CPU tensor of shape holding v (a scalar parameter's gradient, a
    double) in dtype, rounded as a conversion rounds: inf beyond dtype's
    range. torch.full(shape, v, dtype=dtype) refuses such a v for float32
    ("value cannot be converted to type float without overflow"), and on
    PyTorch 1.13 for float16 too, where the gradient is inf."""
    t = torch.full(shape, v, dtype=torch.float64, device="cpu")
    return t if dtype == torch.float64 else t.to(dtype)


def _leading(t):
    """Sums over every dimension but the last."""
    return t.sum(dim=tuple(range(t.dim() - 1))) if t.dim() > 1 else t


def _reduce(s, t, cols):
    """A summand s of x's shape summed to parameter t's shape."""
    if t.numel() == cols and t.dim() == 1 and cols != 1:
        return _leading(s).reshape(t.shape)
    return s.sum().reshape(t.shape)


def _derivative_sources(fn):
    """(source, name) of df/dx and of each df/dp, each a dnc function."""
    d = getattr(fn, "_torch_derivs", None)
    if d is None:
        gs = [fn.derivative()] + [fn.derivative(p.name) for p in fn.params]
        d = [(_source_of(g), g.name) for g in gs]
        for g, (src, name) in zip(gs, d):  # compiled once, not twice
            _functions.setdefault((src, name, g.module.context.threads), g)
        fn._torch_derivs = d
    return d


def _source_of(fn):
    """fn's own source (one function) on one line, read from libdnc once:
    the string the custom ops take. Inductor's cpp_wrapper writes a
    string argument into its C++ as it is, between quotes, where a line
    break ends the literal (the printed source's last newline, or those
    between a block's statements, failed to compile)."""
    s = getattr(fn, "_torch_source", None)
    if s is None:
        s = fn._torch_source = _single_line(fn)
    return s


def _single_line(fn):
    """fn.source with its lines joined (a newline between statements is
    a ';' in dnc's language, one after '{' is a space), if it prints back
    as the same function; else the printed text as it is."""
    text = fn.source
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    one = lines[0] if lines else ""
    for ln in lines[1:]:
        one += (" " if one.endswith("{") or ln.startswith("}") else "; ") \
            + ln
    if one == text:
        return text
    try:
        m = _compile(one, fn.module.context.threads)
    except _dnc.Error:
        return text
    if len(m) != 1 or next(iter(m)).source != text:
        return text
    return one


# ---------------------------------------------- the decomposed form

_forms = {}  # (source, name) -> (f, df/dx, [df/dp])
_force = threading.local()

# torch.compile calls a function so marked while it traces, and takes what
# it returns as a constant, rather than tracing into it (PyTorch 1.13 has
# no torch.compile: the function itself)
_assume_constant = getattr(getattr(torch, "compiler", None),
                           "assume_constant_result", lambda f: f)


@contextlib.contextmanager
def decomposed(on=True):
    """Within it, dnc.torch computes with the decomposed form (PyTorch
    operations printed by dnc) on every device, CPU included: for tests
    and for comparing the two paths."""
    old = getattr(_force, "on", False)
    _force.on = on
    try:
        yield
    finally:
        _force.on = old


def torch_form(fn, module=None):
    """(f, df/dx, [df/dp for each parameter]): Python functions over
    tensors, f(x, *params), as `dnc diff --format torch` prints them. fn:
    what PointwiseNorm takes (a dnc.Function, a name in module= or of
    STANDARD, or dnc source)."""
    f = resolve(fn, module)
    return _form(_source_of(f), f.name)[:3]


def _form(source, name):
    """The decomposed form of the function `name` of source, printed on
    its first use wherever that is (a module made by unpickling or
    torch.load, a traced GraphModule, the functional form), and cached."""
    if _compiling():
        # torch.compile: printed while tracing by a call it takes as a
        # constant (printing reaches native calls, the thread count and a
        # lock, which broke the graph, and failed fullgraph=True, where
        # nothing had printed the form before), and read as an attribute
        # of its own: a dict the tracer had read before the call would
        # not have the new form in its copy
        return getattr(_FormsByName, _form_attr(source, name))
    return _made_form(source, name)


class _FormsByName:
    """The forms that torch.compile has looked up, as attributes named in
    _form_attrs."""


_form_attrs = {}  # (source, name) -> its attribute of _FormsByName


@_assume_constant
def _form_attr(source, name):
    """The name of the form's attribute of _FormsByName, made with the
    form where there is none: a string, which torch.compile takes as a
    constant (it cannot guard the form's functions as one)."""
    key = (source, name)
    a = _form_attrs.get(key)
    if a is None:
        form = _made_form(source, name)
        with _lock:
            a = _form_attrs.get(key)
            if a is None:
                a = "form%d" % len(_form_attrs)
                setattr(_FormsByName, a, form)
                _form_attrs[key] = a
    return a


def _made_form(source, name):
    """_form's work: the form from the cache, or printed into it."""
    key = (source, name)
    form = _forms.get(key)
    if form is None:
        fn = _function(source, name, 0)
        text = fn.diff("all", 1, "torch")
        names = [n for n in re.findall(r"^def (\w+)\(", text, re.M)
                 if not n.startswith("dnc_")]
        scope = {}
        exec(compile(text, "<dnc diff --format torch: %s>" % fn.name,
                     "exec"), scope)
        fs = [scope[n] for n in names]
        # f, df/dx, each df/dp, then NAME__all: all of them in one tuple,
        # their shared operations once (the backward's, where it needs
        # more than one: fewer passes over the tensors in eager mode)
        if len(fs) != len(fn.params) + 3:
            raise RuntimeError("dnc.torch: the torch form of %s has %d "
                               "functions, not %d" % (fn.name, len(fs),
                                                      len(fn.params) + 3))
        form = _forms.setdefault(key, (fs[0], fs[1], fs[2:-1], fs[-1]))
    return form


def _compute_dtype(x):
    # bf16 and f16 are computed in f32 and rounded once, as the kernels do
    return torch.float32 if x.dtype in (torch.bfloat16, torch.float16) \
        else x.dtype


def _full(v, x):
    return v if v.shape == x.shape else v.expand(x.shape)


def _f32_inexact(v):
    """v, a Python float, is not a float32 value (rounds, or overflows)."""
    if type(v) is not float or v != v or v in (math.inf, -math.inf):
        return False
    if abs(v) > 3.4028234663852886e38:
        return True
    return _struct.unpack("f", _struct.pack("f", v))[0] != v


class _ExactConstants(torch.overrides.TorchFunctionMode):
    """The form's Python numbers as float64 tensors (lifted constants),
    where they are no float32 value: the dynamo ONNX exporter writes
    a Python number, torch.full's and full_like's fill values
    included, as a float32 constant cast to the graph's float64
    (PyTorch 2.15, onnxscript 0.7: 0.1 * x became 0.10000000149 *
    x, x > 0.1 true at x = 0.1000000001, 1e300 inf and 2^-340 0);
    a tensor constant is written as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not any(_f32_inexact(a) for a in
                   list(args) + list(kwargs.values())):
            return func(*args, **kwargs)
        if func in (torch.full_like, torch.full):
            like = args[0]
            c = args[1] if len(args) > 1 else kwargs.pop("fill_value")
            dt = kwargs.get("dtype") or (like.dtype if func is
                                         torch.full_like else
                                         torch.get_default_dtype())
            dev = kwargs.get("device") or (like.device if func is
                                           torch.full_like else None)
            t = torch.tensor(c, dtype=dt, device=dev)
            zero = torch.zeros_like(like, dtype=dt) \
                if func is torch.full_like else \
                torch.zeros(like, dtype=dt, device=dev)
            return zero + t
        if func is torch.addcmul and "value" in kwargs:
            v = kwargs.pop("value")
            a, b, c = args
            return a + torch.tensor(v, dtype=b.dtype,
                                    device=b.device) * b * c

        def exact(a, like):
            return torch.tensor(a, dtype=torch.float64,
                                device=like.device) \
                if _f32_inexact(a) else a
        like = next((a for a in list(args) + list(kwargs.values())
                     if isinstance(a, torch.Tensor)), None)
        if like is None:
            return func(*args, **kwargs)
        return func(*[exact(a, like) for a in args],
                    **{k: exact(v, like) for k, v in kwargs.items()})


def _exact_constants(ct):
    """_ExactConstants where it is needed: the dynamo ONNX exporter (the
    legacy one, which traces with torch.jit, writes float64 constants as
    they are) in a float64 graph. Not in decompositions(): a tensor
    made there is refused by run_decompositions (not functional)."""
    if ct == torch.float64 and _onnx_exporting() and \
            not torch.jit.is_tracing():
        return _ExactConstants()
    return contextlib.nullcontext()


def _dec_forward(form, x, gamma, beta, params):
    ct = _compute_dtype(x)
    xc = x.to(ct)
    ps = [p.to(ct) for p in params]
    with _exact_constants(ct):
        y = form[0](xc, *ps)
    y = _full(y, xc)
    if gamma is not None:
        y = y * gamma.to(ct)
    if beta is not None:
        y = y + beta.to(ct)
    # never y.to(x.dtype) in x's dtype already, a no-op .to of y itself:
    # returned so from _DecCompiled's forward, PyTorch 2.11's tracer gave
    # a backward that read zeros for dy (every gradient 0, silently, in
    # every compiled model on a GPU; tests/python/test_cuda_p13.py)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    # a fresh tensor, as the kernels give: f = x (or a derivative that is
    # x) printed as `return x` gave x itself, which y.add_(1) changed, and
    # which autograd refuses to save and return as it is
    if y is x or any(y is p for p in params):
        y = y.clone()
    return y


def decompositions(table=None):
    """A decomposition table for ExportedProgram.run_decompositions that
    replaces dnc's operators (dnc::layer_forward, dnc::layer_backward) by
    the decomposed form's PyTorch operations: a graph of ATen operations
    only, which runs, is compiled or is converted where dnc.torch is not
    imported (for inference: autograd through those operations is not
    dnc's backward). table: the table to add them to (default:
    torch.export.default_decompositions())."""
    require_custom_ops("dnc.torch.decompositions")
    if table is None:
        table = torch.export.default_decompositions()

    def layer_forward(x, weight, bias, params, source, name, threads):
        return _dec_forward(_form(source, name), x, weight, bias, params)

    def layer_backward(x, dy, weight, bias, params, source, name, threads):
        return _backward_outputs(x, *_dec_backward(
            _form(source, name), x, dy, weight, bias, params,
            [True] * (3 + len(params))))
    table[torch.ops.dnc.layer_forward.default] = layer_forward
    table[torch.ops.dnc.layer_backward.default] = layer_backward
    return table


def _dec_backward(form, x, dy, gamma, beta, params, need):
    ct = _compute_dtype(x)
    xc = x.to(ct)
    dyc = dy.to(ct)
    ps = [p.to(ct) for p in params]
    cols = x.shape[-1]
    g = dyc if gamma is None else dyc * gamma.to(ct)
    want_f = gamma is not None and need[1]
    if want_f + bool(need[0]) + sum(bool(n) for n in need[3:]) > 1:
        f, fx, *fps = form[3](xc, *ps)
    else:
        f, fx, fps = (form[0](xc, *ps) if want_f else None,
                      form[1](xc, *ps) if need[0] else None,
                      [form[2][i](xc, *ps) if need[3 + i] else None
                       for i in range(len(params))])
    dx = (g * fx).to(x.dtype) if need[0] else None
    dgamma = _leading(dyc * _full(f, xc)).to(gamma.dtype) if want_f \
        else None
    dbeta = _leading(dyc).to(beta.dtype) if beta is not None and need[2] \
        else None
    dparams = []
    for i, t in enumerate(params):
        if need[3 + i]:
            s = _full(g * fps[i], xc)
            dparams.append(_reduce(s, t, cols).to(t.dtype))
        else:
            dparams.append(None)
    return dx, dgamma, dbeta, dparams


def _needs(ctx, start):
    """ctx.needs_input_grad[start:]; while torch.compile traces, every
    one: PyTorch 2.11's dynamo said False for x under torch.func.grad
    (torch.compile(grad(loss))), and the backward it traced returned None
    for dx, a gradient of 0 and no error. An input that needs none drops
    what it is given (and the compiled graph the work)."""
    need = ctx.needs_input_grad[start:]
    return (True,) * len(need) if _compiling() else need


class _DecomposedFn(torch.autograd.Function):
    """The decomposed form with dnc's symbolic backward. Arguments: the
    form, its function's (source, name), x, gamma, beta, then the
    parameters. With create_graph=True (outside torch.compile) the
    backward is made of such functions again, each differentiated by
    dnc's next derivative: autograd through the printed operations would
    take torch.where's untaken branch (0 inf: NaN for `if x > 0 then
    sqrt(x) else 0`) and 1 - t^2 for tanh's derivative."""

    @staticmethod
    def forward(ctx, form, key, x, gamma, beta, *params):
        ctx.form, ctx.key = form, key
        ctx.save_for_backward(x, gamma, beta, *params)
        return _dec_forward(form, x, gamma, beta, params)

    @staticmethod
    def backward(ctx, dy):
        x, gamma, beta, *params = ctx.saved_tensors
        need = _needs(ctx, 2)
        if torch.is_grad_enabled() and not _compiling():
            return (None, None) + _symbolic_backward(
                _dec_runner(*ctx.key, x, params), ctx.key, x, dy, gamma,
                beta, params, need)
        dx, dg, db, dps = _dec_backward(ctx.form, x, dy, gamma, beta,
                                        params, need)
        return (None, None, dx, dg, db) + tuple(dps)


def _dec_layer(source, name, x, gamma, beta, params):
    """gamma * f(x; params) + beta in the decomposed form, differentiable
    (to any order, and under torch.func) by dnc's symbolic derivatives."""
    if HAS_CUSTOM_OPS and _functorch_active():
        return _DecFunc.apply(source, name, x, gamma, beta, *params)
    return _DecomposedFn.apply(_form(source, name), (source, name), x,
                               gamma, beta, *params)


def _onnx_exporting():
    f = getattr(torch.onnx, "is_in_onnx_export", None)
    return bool(f and f())


def _needs_grad(x, gamma, beta, params):
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, gamma, beta, *params))


def _kernels_here(x):
    """x is on the CPU and decomposed() is off: dnc's kernels can take
    it"""
    return x.is_cpu and not getattr(_force, "on", False)


def _use_kernels(x, *others):
    return _kernels_here(x) and not _onnx_exporting() and \
        (HAS_CUSTOM_OPS or _has_data(x)) and \
        not _distributed(x, *others)


def _distributed(*ts):
    """Whether any of ts is a DTensor (tensor and sequence parallelism:
    parallelize_module's SequenceParallel): dnc's operators have no
    sharding rule, and DTensor refused them ("does not have a sharding
    strategy registered"); the decomposed form is PyTorch's operations,
    which DTensor shards and whose per-channel sums it reduces."""
    for mod in ("torch.distributed.tensor", "torch.distributed._tensor"):
        cls = getattr(sys.modules.get(mod), "DTensor", None)
        if cls is not None:
            return any(isinstance(t, cls) for t in ts if t is not None)
    return False


def _distributed_like(v, t):
    """v (the full values, the same on every process) as a DTensor of t's
    mesh and placements, each process keeping its own part of them: no
    communication where this PyTorch can skip it (src_data_rank=None)."""
    try:
        from torch.distributed.tensor import distribute_tensor
    except ImportError:  # PyTorch 2.0 to 2.3
        from torch.distributed._tensor import distribute_tensor
    v = v.to(dtype=t.dtype, device=t.device)
    try:
        return distribute_tensor(v, t.device_mesh, t.placements,
                                 src_data_rank=None)
    except TypeError:  # no src_data_rank: from rank 0 (the same values)
        return distribute_tensor(v, t.device_mesh, t.placements)


def _backward_outputs(x, dx, dg, db, dps):
    """dnc::layer_backward's outputs: a gradient not asked for as an
    empty tensor, two of them not one (outputs may not alias each
    other)"""
    return [dx, x.new_empty(0) if dg is None else dg,
            x.new_empty(0) if db is None else db] + dps


def _has_data(x):
    """PyTorch 1.13, which has no custom ops with fake implementations:
    whether x and the kernels' outputs surely have memory, which a tensor
    subclass (FakeTensor), or any tensor under a dispatch mode
    (FakeTensorMode), may not have. Those take the decomposed form."""
    return type(x) in (torch.Tensor, nn.Parameter) and \
        _get_current_dispatch_mode() is None and not _functorch_active()


def _functorch_active():
    """Whether a torch.func transform (1.13's functorch: vmap, grad,
    jacrev...) is active: its batched and wrapped tensors have no storage
    for the kernels. Not peek_interpreter_stack() is not None: torch.
    compile's tracer wraps the None it returns, and it was never None
    there (a plain compiled model took _FuncLayer, whose compiled copy's
    backward a gradient penalty did not differentiate again). On 1.13 the
    decomposed form's PyTorch operations are what functorch can transform
    (functorch itself refuses the autograd.Function around them where a
    gradient is taken)."""
    f = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(f and f())


# ---------------------------------------------- PyTorch 1.13's path

class _LayerFn(torch.autograd.Function):
    """The kernels as an autograd.Function: on PyTorch 1.13, and in plain
    eager mode on 2 (where nothing traces it, it saves the dispatcher's
    overhead of the custom ops).
    Arguments: source, name, threads, x, gamma, beta, then the
    parameters."""

    @staticmethod
    def forward(ctx, source, name, threads, x, gamma, beta, *params):
        fn = _function(source, name, threads)
        ctx.fn_key = (source, name, threads)
        ctx.save_for_backward(x, gamma, beta, *params)
        if _forward_ad._current_level >= 0 and \
                hasattr(ctx, "save_for_forward"):
            # (jvp runs only while a dual level is open, within this call)
            ctx.save_for_forward(x, gamma, beta, *params)
        # the dnc_layer this call makes, for its backward: the values of
        # these saved tensors, which autograd checks are unchanged then
        ctx.layer = []
        return _kernel_forward(fn, x, gamma, beta, params, ctx.layer)

    @staticmethod
    def jvp(ctx, _s, _n, _t, tx, tg, tb, *tps):
        x, gamma, beta, *params = ctx.saved_tensors
        return _layer_jvp(*ctx.fn_key, x, gamma, beta, params, tx, tg, tb,
                          tps)

    @staticmethod
    def backward(ctx, dy):
        x, gamma, beta, *params = ctx.saved_tensors
        source, name, threads = ctx.fn_key
        need = _needs(ctx, 3)
        if HAS_CUSTOM_OPS and _compiling() and not torch.is_grad_enabled():
            # compiled autograd traces this backward: the custom op, which
            # it records, not the ctypes calls (a graph break each)
            grads = _op_backward_grads(x, dy, gamma, beta, params, source,
                                       name, threads, need)
        elif torch.is_grad_enabled() or _no_storage(dy):
            grads = _composite_backward(source, name, threads, x, dy, gamma,
                                        beta, params, need)
        else:
            dx, dg, db, dps = _kernel_backward(
                _function(source, name, threads), x, dy, gamma, beta,
                params, need, ctx.layer)
            grads = (dx, dg, db) + tuple(dps)
        return (None, None, None) + grads


def _op_backward_grads(x, dy, gamma, beta, params, source, name, threads,
                       need):
    """(dx, dgamma, dbeta, *dparams) by torch.ops.dnc.layer_backward, None
    where need says no or the tensor is absent."""
    out = torch.ops.dnc.layer_backward(x, dy, gamma, beta, list(params),
                                       source, name, threads)
    grads = [g if n else None for g, n in zip(out, need)]
    if gamma is None:
        grads[1] = None
    if beta is None:
        grads[2] = None
    return tuple(grads)


def _no_storage(t):
    """A dy the kernels cannot read: the batched gradients of PyTorch's
    legacy vmap (autograd.grad(is_grads_batched=True),
    autograd.functional.jacobian(vectorize=True), gradcheck's batched
    checks) have no storage. The backward is then built from dnc's
    derivatives, whose kernels run on x and the parameters alone."""
    return not torch._C._has_storage(t)


def _kernel_runner(source, name, threads, x, params):
    """(run, derivatives): run((source, name)) evaluates that dnc function
    on x and params with the kernels (differentiably, by dnc's own
    derivatives again), in the wide type (_wide: bfloat16 and float16 in
    float32, as the fused kernels compute); derivatives: (source, name)
    of df/dx and of each df/dp of f."""
    xw, pw = _wide(x), [_wide(p) for p in params]

    def run(src_name):
        return _apply_kernels(src_name[0], src_name[1], threads, xw, None,
                              None, pw)
    return run, _derivative_sources(_function(source, name, threads))


def _dec_runner(source, name, x, params):
    """The same in the decomposed form (PyTorch operations printed from
    dnc's derivatives, each wrapped so that autograd differentiates it by
    dnc's next derivative, not through the printed operations)."""
    xw, pw = _wide(x), [_wide(p) for p in params]

    def run(src_name):
        _form(*src_name)  # printed once per function, cached
        return _dec_layer(src_name[0], src_name[1], xw, None, None, pw)
    return run, _derivative_sources(_function(source, name, 0))


def _wide(t):
    """bfloat16 and float16 in float32, as the fused kernels compute and sum
    (differentiably: create_graph goes through it). The symbolic backward
    and forward mode evaluate f and its derivatives on it and round their
    results once: evaluated in x's float16, f' = 0.5 sech^2(10) underflowed
    to 0 before dy = 4096 multiplied it (a gradient of 0, not 1.7e-5)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _symbolic_backward(runner, f0, x, dy, gamma, beta, params, need):
    """The layer's backward as differentiable operations on dnc functions
    (f, f0 = its (source, name), and its symbolic derivatives), for
    create_graph=True and torch.func: each derivative's own backward is
    dnc's again, to any order. runner: (run, derivatives), as
    _kernel_runner or _dec_runner give them."""
    f, derivs = runner
    cols = x.shape[-1]
    dyw = _wide(dy)
    g = dyw if gamma is None else dyw * _wide(gamma)
    dx = (g * f(derivs[0])).to(x.dtype) if need[0] else None
    dgamma = _leading(dyw * f(f0)).to(gamma.dtype) \
        if gamma is not None and need[1] else None
    dbeta = _leading(dyw).to(beta.dtype) \
        if beta is not None and need[2] else None
    dparams = []
    for i, t in enumerate(params):
        if need[3 + i]:
            dparams.append(_reduce(g * f(derivs[1 + i]), t, cols)
                           .to(t.dtype))
        else:
            dparams.append(None)
    return (dx, dgamma, dbeta) + tuple(dparams)


def _composite_backward(source, name, threads, x, dy, gamma, beta, params,
                        need):
    """_symbolic_backward with the kernels (the decomposed form off the
    CPU: dnc::layer_forward's autograd with create_graph on a GPU)."""
    runner = _kernel_runner(source, name, threads, x, params) \
        if x.is_cpu and not getattr(_force, "on", False) \
        else _dec_runner(source, name, x, params)
    return _symbolic_backward(runner, (source, name), x, dy, gamma, beta,
                              params, need)


def _symbolic_jvp(runner, f0, x, gamma, beta, params, tx, tg, tb, tps):
    """Forward mode (torch.func.jvp, jacfwd, torch.autograd.forward_ad):
    the tangent of y = gamma * f(x; p) + beta, gamma * (f'(x) tx +
    sum_k df/dp_k tp_k) + tg f + tb, from dnc's symbolic derivatives, each
    a dnc function again (so to any order). A parameter's term is 0 where
    its tangent is 0, whatever its derivative (one that is infinite or NaN
    at a point, as u^v's with respect to v where u = 0 and v < 0, would
    make 0 times it NaN). Computed in the wide type (the runner's) and
    rounded once to y's dtype, x's."""
    f, derivs = runner
    t = None

    def add(a, b):
        return b if a is None else a + b
    if tx is not None:
        t = f(derivs[0]) * _wide(tx)
    for i, tp in enumerate(tps):
        if tp is not None:
            d = f(derivs[1 + i])
            tp = _wide(tp)
            t = add(t, torch.where(tp != 0, d * tp, torch.zeros_like(d)))
    if t is not None and gamma is not None:
        t = t * _wide(gamma)
    if tg is not None:
        t = add(t, f(f0) * _wide(tg))
    if tb is not None:
        t = add(t, _wide(tb).expand(x.shape))
    if t is None:
        return torch.zeros_like(x)
    return t if t.dtype == x.dtype else t.to(x.dtype)


def _layer_jvp(source, name, threads, x, gamma, beta, params, tx, tg, tb,
               tps):
    """_symbolic_jvp with the kernels."""
    return _symbolic_jvp(_kernel_runner(source, name, threads, x, params),
                         (source, name), x, gamma, beta, params, tx, tg, tb,
                         tps)


# ------------------------------------------------ PyTorch 2's custom ops

if HAS_CUSTOM_OPS:
    Tensor = torch.Tensor
    OptTensor = typing.Optional[torch.Tensor]

    def _op_check(what, x, dy, weight, bias, params, source, name,
                  threads):
        """Refuses an operator call the function cannot compute (_check's
        tests against its parameters, and dy's): called directly, a missing
        parameter was read as 0 and a weight of fewer than C values past
        its end. Also in the fake implementations, so that torch.compile
        refuses it while tracing. The function (compiled once)."""
        # a symbolic thread count (torch.compile's dynamic shapes) is not a
        # key of the function cache; any count has the same parameters
        fn = _function(source, name, threads if isinstance(threads, int)
                       else 0)
        # a 0-d x is one channel (the kernels take it as [1 x 1])
        _check(fn.name, fn.params, x.reshape(1) if x.dim() == 0 else x,
               weight, bias, params, what)
        if dy is not None:
            if not dy.is_floating_point() or dy.dtype not in _DTYPES:
                raise TypeError("dnc.torch: %s: dy is %s; it takes a "
                                "floating-point gradient" % (what, dy.dtype))
            if tuple(dy.shape) != tuple(x.shape):
                raise ValueError("dnc.torch: %s: dy has shape %s, x %s" % (
                    what, tuple(dy.shape), tuple(x.shape)))
        if _forward_ad._current_level >= 0 and not _below_autograd():
            for t in [x, dy, weight, bias] + list(params):
                if t is not None and \
                        _forward_ad.unpack_dual(t).tangent is not None:
                    raise NotImplementedError(
                        "dnc.torch: %s has no forward-mode derivative (its "
                        "tangent would be dropped); dnc.torch.pointwise and "
                        "PointwiseNorm compute one from dnc's derivatives"
                        % what)
        return fn

    def _below_autograd():
        """The call runs below autograd's dispatch keys (a kernel that
        autograd, or a mode such as make_fx's proxy mode under
        torch.func.linearize, redispatched): a tangent was handled, or
        refused, above, and unpack_dual cannot be called here (PyTorch's
        internal assert "InferenceMode::is_enabled() &&
        self.is_inference()")."""
        return torch._C._dispatch_tls_is_dispatch_key_excluded(
            torch._C.DispatchKey.ADInplaceOrView)

    def _op_forward_py(x, weight, bias, params, source, name, threads):
        """dnc::layer_forward's kernels in Python (ctypes): every call
        where the C++ extension is not loaded; with it, a function's first
        call (_function, compiling it, registers its handle there) and
        what its CPU kernel does not take (_torch_ext.cpp's
        cpu_forward)."""
        fn = _op_check("dnc::layer_forward", x, None, weight, bias, params,
                       source, name, threads)
        if not _kernels_here(x):
            # a graph exported or traced on another device (decomposed():
            # here too, where the C++ extension does not take the call);
            # contiguous, as the kernels' output and the fake's: with x's
            # strides (a channels-first norm's permuted view) inductor's
            # stride asserts failed on a compiled exported program
            return _dec_forward(_form(source, name), x, weight, bias,
                                params).contiguous()
        return _kernel_forward(fn, x, weight, bias, params)

    def _op_backward_py(x, dy, weight, bias, params, source, name, threads):
        """dnc::layer_backward's kernels in Python, as _op_forward_py."""
        fn = _op_check("dnc::layer_backward", x, dy, weight, bias, params,
                       source, name, threads)
        need = [True] * (3 + len(params))
        if _kernels_here(x):
            grads = _kernel_backward(fn, x, dy, weight, bias, params, need)
        else:
            grads = _dec_backward(_form(source, name), x, dy, weight, bias,
                                  params, need)
            grads = [grads[0].contiguous()] + list(grads[1:])
        return _backward_outputs(x, *grads)

    @torch.library.custom_op("dnc::layer_forward", mutates_args=())
    def _op_forward(x: Tensor, weight: OptTensor, bias: OptTensor,
                    params: typing.List[Tensor], source: str, name: str,
                    threads: int) -> Tensor:
        """weight * f(x; params) + bias over x's last dimension, f the
        function `name` of dnc source `source`, with dnc's CPU kernels on
        `threads` threads (0: torch.get_num_threads() at the call). With
        the C++ extension, CPU tensors go to its kernel (_torch_ext.cpp's
        cpu_forward), not here. On another device (a GPU: what
        torch.export and torch.jit.trace record there, so that the graph
        keeps dnc's backward) the decomposed form, and layer_backward's
        its printed derivatives."""
        return _op_forward_py(x, weight, bias, params, source, name, threads)

    @_op_forward.register_fake
    def _(x, weight, bias, params, source, name, threads):
        _op_check("dnc::layer_forward", x, None, weight, bias, params, source,
                  name, threads)
        return x.new_empty(x.shape)

    @torch.library.custom_op("dnc::layer_backward", mutates_args=())
    def _op_backward(x: Tensor, dy: Tensor, weight: OptTensor,
                     bias: OptTensor, params: typing.List[Tensor],
                     source: str, name: str, threads: int
                     ) -> typing.List[Tensor]:
        """dnc's fused layer backward: [dx, dweight, dbias, dparams...]
        (an empty tensor for an absent weight or bias); CPU tensors go to
        the C++ extension's kernel where it is loaded."""
        return _op_backward_py(x, dy, weight, bias, params, source, name,
                               threads)

    @_op_backward.register_fake
    def _(x, dy, weight, bias, params, source, name, threads):
        _op_check("dnc::layer_backward", x, dy, weight, bias, params, source,
                  name, threads)
        return [x.new_empty(x.shape),
                x.new_empty(0) if weight is None else
                weight.new_empty(weight.shape),
                x.new_empty(0) if bias is None else
                bias.new_empty(bias.shape)] + \
            [p.new_empty(p.shape) for p in params]

    def _saved_view(x):
        """What dnc::layer_forward's autograd saves of x: a copy where
        torch.compile traces it (not torch.export) and x is a view (the
        channels-first path's permute of x, a transpose, slice or view).
        Inductor runs the backward of a custom op that saved a view of the
        compiled region's input without the saved tensor's version check,
        so an in-place change of that input between the forward and the
        backward (eager autograd refuses it) went unnoticed and the
        backward read the changed values: a wrong gradient, no error
        (PyTorch 2.15; a plain torch.library.custom_op does the same).
        The copy is what the backward reads: the forward's values. For a
        channels-first x it replaces the copy of the permuted x that the
        kernels' row view made again in the backward. Tested while AOT
        autograd traces, where x is a FunctionalTensor that knows it is a
        view (dynamo's own trace cannot ask without a graph break; and
        PyTorch 2.11's is_compiling() is False there)."""
        if not x._is_view() or not (torch.compiler.is_compiling() or
                                    isinstance(x, _TRACED)):
            return x
        exporting = getattr(torch.compiler, "is_exporting", None)
        if exporting is not None and exporting():
            return x
        return torch.ops.dnc.saved_copy(x)

    from torch._subclasses.fake_tensor import FakeTensor as _Fake
    from torch._subclasses.functional_tensor import \
        FunctionalTensor as _Functional
    _TRACED = (_Fake, _Functional)

    @torch.library.custom_op("dnc::saved_copy", mutates_args=())
    def _op_saved_copy(x: Tensor) -> Tensor:
        """x's values in a tensor of their own (_saved_view): an operator,
        not aten's clone, which AOT autograd's partitioner would recompute
        in the backward from the (changed) input rather than save."""
        return x.clone()

    @_op_saved_copy.register_fake
    def _(x):
        return torch.empty_like(x)

    def _op_setup(ctx, inputs, output):
        x, weight, bias, params, source, name, threads = inputs
        x = _saved_view(x)
        ctx.fn_key = (source, name, threads)
        ctx.nparams = len(params)
        ctx.has = (weight is not None, bias is not None)
        ctx.save_for_backward(x, weight, bias, *params)

    def _op_grad(ctx, dy):
        x, weight, bias, *params = ctx.saved_tensors
        source, name, threads = ctx.fn_key
        if torch.is_grad_enabled():  # create_graph: dnc's derivatives
            need = [True] * (3 + len(params))
            g = _composite_backward(source, name, threads, x, dy, weight,
                                    bias, params, need)
            dx, dg, db, dps = g[0], g[1], g[2], list(g[3:])
        else:
            out = torch.ops.dnc.layer_backward(x, dy, weight, bias, params,
                                               source, name, threads)
            dx, dg, db, dps = out[0], out[1], out[2], list(out[3:])
        return (dx, dg if ctx.has[0] else None, db if ctx.has[1] else None,
                dps, None, None, None)

    _op_forward.register_autograd(_op_grad, setup_context=_op_setup)

    def _vmap_loop(op, n_out_list):
        """A vmap rule for op: one call over the batch as more rows when
        only x (the first argument) is batched, else one call per member
        of the batch, stacked."""
        def rule(info, in_dims, *args):
            tensors = list(args)

            def pick(t, d, i):
                if isinstance(t, (list, tuple)):
                    return [pick(a, e, i) for a, e in zip(t, d)]
                return t if t is None or d is None else t.select(d, i)
            outs = [op(*[pick(a, d, i) for a, d in zip(tensors, in_dims)],
                       *tensors[len(in_dims):])
                    for i in range(info.batch_size)]
            if n_out_list:
                return [torch.stack(r) for r in zip(*outs)], \
                    [0] * len(outs[0])
            return torch.stack(outs), 0
        return rule

    _loop_fwd = _vmap_loop(lambda *a: torch.ops.dnc.layer_forward(*a), False)

    @_op_forward.register_vmap
    def _(info, in_dims, x, weight, bias, params, source, name, threads):
        xd, wd, bd, pd = in_dims[:4]
        if xd is not None and wd is None and bd is None and \
                all(d is None for d in pd):
            # only x is batched: the batch is more rows of one call
            return torch.ops.dnc.layer_forward(
                x.movedim(xd, 0), weight, bias, params, source, name,
                threads), 0
        return _loop_fwd(info, in_dims, x, weight, bias, params, source,
                         name, threads)

    _op_backward.register_vmap(_vmap_loop(
        lambda *a: torch.ops.dnc.layer_backward(*a), True))


if HAS_CUSTOM_OPS:
    class _FuncLayer(torch.autograd.Function):
        """The custom ops under torch.func's transforms (grad, vmap,
        jacrev...), which refuse the autograd formula of a custom op (an
        autograd.Function without setup_context): the same ops, with the
        formula here. vmap rules come from the ops' own."""
        generate_vmap_rule = True

        @staticmethod
        def forward(source, name, threads, x, gamma, beta, *params):
            return torch.ops.dnc.layer_forward(x, gamma, beta, list(params),
                                               source, name, threads)

        @staticmethod
        def setup_context(ctx, inputs, output):
            source, name, threads, x, gamma, beta, *params = inputs
            ctx.fn_key = (source, name, threads)
            ctx.save_for_backward(x, gamma, beta, *params)

        @staticmethod
        def backward(ctx, dy):
            x, gamma, beta, *params = ctx.saved_tensors
            source, name, threads = ctx.fn_key
            need = _needs(ctx, 3)
            if torch.is_grad_enabled():
                grads = _composite_backward(source, name, threads, x, dy,
                                            gamma, beta, params, need)
            else:
                out = torch.ops.dnc.layer_backward(x, dy, gamma, beta,
                                                   list(params), source,
                                                   name, threads)
                grads = [g if n else None for g, n in zip(out, need)]
                grads[1] = grads[1] if gamma is not None else None
                grads[2] = grads[2] if beta is not None else None
            return (None, None, None) + tuple(grads)

    class _FuncLayerJvp(_FuncLayer):
        """_FuncLayer with forward mode (jvp, jacfwd, hessian) outside
        torch.compile, whose tracer refuses an autograd.Function with a
        jvp."""

        @staticmethod
        def setup_context(ctx, inputs, output):
            _FuncLayer.setup_context(ctx, inputs, output)
            ctx.save_for_forward(*inputs[3:])

        @staticmethod
        def jvp(ctx, _s, _n, _t, tx, tg, tb, *tps):
            x, gamma, beta, *params = ctx.saved_tensors
            return _layer_jvp(*ctx.fn_key, x, gamma, beta, params, tx, tg,
                              tb, tps)

    class _DecCompiled(torch.autograd.Function):
        """The decomposed form under torch.compile (the path of every
        compiled model on a GPU): an autograd.Function with setup_context
        and no jvp, which dynamo's tracer refuses, whose backward is
        _dec_backward, the printed forms of dnc's first derivatives.
        Autograd through the printed operations themselves took
        torch.where's untaken branch (NaN for `if x >= 0 then sqrt(x + c)
        ...`) and lost derivatives that dnc writes exactly (0 for
        softplus(a x) - softplus(-a x) at 0, not 0.8). The vmap rule is
        generated (the forward is PyTorch operations)."""
        generate_vmap_rule = True

        @staticmethod
        def forward(source, name, x, gamma, beta, *params):
            return _dec_forward(_form(source, name), x, gamma, beta, params)

        @staticmethod
        def setup_context(ctx, inputs, output):
            source, name, x, gamma, beta, *params = inputs
            ctx.key = (source, name)
            ctx.save_for_backward(x, gamma, beta, *params)

        @staticmethod
        def backward(ctx, dy):
            x, gamma, beta, *params = ctx.saved_tensors
            dx, dg, db, dps = _dec_backward(_form(*ctx.key), x, dy, gamma,
                                            beta, params,
                                            _needs(ctx, 2))
            return (None, None, dx, dg, db) + tuple(dps)

    class _DecFunc(_DecCompiled):
        """The decomposed form under torch.func's transforms (outside
        torch.compile): backward and forward mode from dnc's symbolic
        derivatives, as _DecomposedFn's with create_graph, to any order."""

        @staticmethod
        def setup_context(ctx, inputs, output):
            _DecCompiled.setup_context(ctx, inputs, output)
            ctx.save_for_forward(*inputs[2:])

        @staticmethod
        def backward(ctx, dy):
            x, gamma, beta, *params = ctx.saved_tensors
            return (None, None) + _symbolic_backward(
                _dec_runner(*ctx.key, x, params), ctx.key, x, dy, gamma,
                beta, params, _needs(ctx, 2))

        @staticmethod
        def jvp(ctx, _s, _n, tx, tg, tb, *tps):
            x, gamma, beta, *params = ctx.saved_tensors
            return _symbolic_jvp(_dec_runner(*ctx.key, x, params), ctx.key,
                                 x, gamma, beta, params, tx, tg, tb, tps)

    def _vmapped(x, gamma, beta, params):
        """Under torch.compile: whether torch.func.vmap batches one of the
        tensors at the innermost transform. torch.compile cannot vmap an
        autograd.Function (its traced copy has no vmap rule: "You tried
        to vmap over ApplyTemplate"), so there the custom op is called as
        it is, which has a vmap rule and, outside torch.func.grad, its
        autograd formula."""
        b = torch._C._functorch.is_batchedtensor
        return any(t is not None and b(t) for t in (x, gamma, beta, *params))

    def _refuse_nested():
        """Under torch.compile, where torch.func's transforms see dnc's
        autograd.Function as the compiler copies it: refuses forward mode
        (the copy has no jvp) and a transform inside another (the copy's
        backward is neither differentiated again, so grad(grad(f)) gave 0
        and not f's second derivative, nor vmapped: vmap(grad(f)),
        per-sample gradients, failed inside PyTorch). Without
        fullgraph=True, torch.compile then runs that code in eager mode,
        where they work."""
        if not _functorch_active():
            return
        top = torch._functorch.pyfunctorch.coerce_cinterpreter(
            torch._C._functorch.peek_interpreter_stack())
        if top.key() == torch._C._functorch.TransformType.Jvp:
            raise RuntimeError(
                "dnc.torch: torch.compile of forward-mode AD (torch.func.jvp,"
                " jacfwd, hessian) over a PointwiseNorm is not supported: "
                "the compiler's copy of its autograd.Function has no jvp. "
                "Apply it outside torch.compile (in eager mode it works, "
                "through dnc's derivatives)")
        if top.level() > 1:  # levels count from 1, the outermost
            raise RuntimeError(
                "dnc.torch: torch.compile of torch.func transforms nested in "
                "one another (grad of grad, vmap of grad) over a "
                "PointwiseNorm is not supported: the compiler would not "
                "differentiate or vmap its backward again (grad(grad(f)) "
                "would be 0). Apply them outside torch.compile (in eager "
                "mode they work, through dnc's derivatives), or compile one "
                "transform (grad, vmap, jacrev)")


from torch.utils._python_dispatch import _get_current_dispatch_mode  # noqa

if HAS_CUSTOM_OPS:
    def _plain_eager(x, *others):
        """Nothing is tracing or transforming x: the custom op's dispatch
        (about twice _LayerFn's per-call time) buys nothing then. x and
        others (the weight, bias and parameters) have storage: a tensor
        of torch.func's that outlived its transform has none, as the
        saved x of a torch.func.vjp whose vjp_fn runs after vjp has
        returned (no transform active then); the kernels read its data
        pointer ("Cannot access data pointer of Tensor that doesn't have
        storage"), while the custom op, which the dispatcher hands the
        tensor it wraps, computes as for a plain one."""
        return type(x) is torch.Tensor and \
            not torch.compiler.is_compiling() and \
            not torch.jit.is_tracing() and \
            _get_current_dispatch_mode() is None and \
            not _functorch_active() and \
            all(t is None or torch._C._has_storage(t) for t in (x, *others))


def _inference(x, gamma, beta, params):
    """Nothing will differentiate this call: no gradient is wanted
    (torch.no_grad, torch.inference_mode, or no input requires one), no
    forward-mode dual level is open (whose tangents only an
    autograd.Function carries), and no tracer records it."""
    return not _needs_grad(x, gamma, beta, params) and \
        _forward_ad._current_level < 0 and not torch.jit.is_tracing()


def _refuse_escaped_vmap(x, gamma, beta, params):
    """A tensor of torch.func.vmap's used after its vmap returned (kept in
    a list inside the vmapped function): PyTorch's own operations refuse it
    ("your tensor may have escaped from inside a function being vmapped"),
    dnc's operator's vmap rule stopped at an AssertionError ("interpreter
    must not be None")."""
    b = torch._C._functorch.is_batchedtensor
    for what, t in (("the input", x), ("the weight", gamma),
                    ("the bias", beta)) + tuple(
                        ("parameter %d" % i, p) for i, p in enumerate(params)):
        if t is not None and b(t):
            raise RuntimeError(
                "dnc.torch: %s is a batched tensor of torch.func.vmap's "
                "outside any vmap: it escaped from inside a function being "
                "vmapped (see https://pytorch.org/functorch/stable/"
                "ux_limitations.html); use it inside the vmapped function, "
                "or return it from there" % what)


def _apply_kernels(source, name, threads, x, gamma, beta, params):
    if HAS_CUSTOM_OPS and not _plain_eager(x, gamma, beta, *params):
        if not _functorch_active() and not _compiling():
            _refuse_escaped_vmap(x, gamma, beta, params)
        if _functorch_active() and not (_compiling() and _vmapped(
                x, gamma, beta, params)):
            if _compiling():
                _refuse_nested()
            cls = _FuncLayer if _compiling() else _FuncLayerJvp
            return cls.apply(source, name, threads, x, gamma, beta, *params)
        if _forward_ad._current_level >= 0 and not _compiling() and \
                not _exporting() and not torch.jit.is_tracing():
            # forward mode under a dispatch mode (torch.func.linearize's
            # make_fx over forward_ad's dual tensors, FlopCounterMode) or
            # on a tensor without storage: the custom op has no forward
            # formula (it refuses), _FuncLayerJvp's jvp is dnc's
            return _FuncLayerJvp.apply(source, name, threads, x, gamma,
                                       beta, *params)
        return torch.ops.dnc.layer_forward(x, gamma, beta, list(params),
                                           source, name, threads)
    y = _ext_layer(source, name, threads, x, gamma, beta, params)
    if y is not None:
        return y
    if _inference(x, gamma, beta, params):
        # the kernels without an autograd.Function, whose apply was a
        # third of a [1 x 4096] call's 22 us
        return _kernel_forward(_function(source, name, threads), x, gamma,
                               beta, params)
    return _LayerFn.apply(source, name, threads, x, gamma, beta, *params)


def _apply(source, name, threads, x, gamma, beta, params):
    """y = gamma * f(x; params) + beta by the path x calls for: f is the
    function `name` of dnc source `source`."""
    if _use_kernels(x, gamma, beta, *params):
        return _apply_kernels(source, name, threads, x, gamma, beta, params)
    form = _form(source, name)
    if _onnx_exporting():
        return _dec_forward(form, x, gamma, beta, params)
    if HAS_CUSTOM_OPS and (_exporting() or torch.jit.is_tracing()) and \
            not _functorch_active():
        # torch.export and torch.jit.trace record dnc's operator, as on
        # the CPU: an autograd.Function's forward, inlined into the graph,
        # left autograd through the printed operations (NaN from
        # torch.where's untaken branch, 0 for DyT's dx at x = 20), and a
        # trace could not be saved with it
        return torch.ops.dnc.layer_forward(x, gamma, beta, list(params),
                                           source, name, threads)
    if HAS_CUSTOM_OPS and (_compiling() or _functorch_active()):
        # under torch.compile, whose tracer refuses a jvp: the first
        # derivatives' printed forms (a second order would print more
        # forms while tracing; autograd takes it through these)
        if _compiling():
            if _vmapped(x, gamma, beta, params):
                # as the kernels' (_vmapped): PyTorch's own operations,
                # which vmap batches; not differentiated by autograd, which
                # would take NaN from torch.where's untaken branch (with
                # grad on at all: a batched x says requires_grad False)
                if torch.is_grad_enabled():
                    raise RuntimeError(
                        "dnc.torch: torch.compile of torch.func.vmap over a "
                        "PointwiseNorm on %s (dnc's decomposed form) cannot "
                        "be differentiated: the compiler cannot vmap the "
                        "layer's autograd.Function, and autograd through "
                        "the printed operations would not be dnc's "
                        "derivatives. Apply vmap outside torch.compile, or "
                        "compile it under torch.no_grad()" % x.device.type)
                return _dec_forward(form, x, gamma, beta, params)
            _refuse_nested()
            return _DecCompiled.apply(source, name, x, gamma, beta, *params)
        return _DecFunc.apply(source, name, x, gamma, beta, *params)
    if HAS_CUSTOM_OPS and _forward_ad._current_level >= 0:
        # forward mode (torch.autograd.forward_ad): the tangent from dnc's
        # derivatives (_DecFunc's jvp), not through the printed operations
        return _DecFunc.apply(source, name, x, gamma, beta, *params)
    if _needs_grad(x, gamma, beta, params):
        return _DecomposedFn.apply(form, (source, name), x, gamma, beta,
                                   *params)
    return _dec_forward(form, x, gamma, beta, params)


# ----------------------------------------------------------- checks

def _autocast_dtype(x, ref):
    """The dtype the layer computes in when x and its parameters differ:
    under autocast, the type promotion of the two (float32 for a bfloat16
    x and float32 parameters: what the eager reference modules return, and
    what CUDA's autocast gives nn.LayerNorm, whose CPU autocast returns x's
    dtype); None outside autocast."""
    dev = x.device.type
    try:
        on = torch.is_autocast_enabled(dev)
    except TypeError:  # PyTorch 1.13: no device argument
        on = torch.is_autocast_cpu_enabled() if dev == "cpu" else \
            torch.is_autocast_enabled()
    except RuntimeError:  # a device autocast has no mode for (meta)
        on = False
    return torch.promote_types(x.dtype, ref.dtype) if on else None


def _check(fname, fparams, x, gamma, beta, params, what, dim=-1):
    """Refuses what the layer cannot compute over x's dimension dim (-1,
    or 1 for channels-first); fname and fparams: the function's name and
    Params (not the Function: no native call here, so that torch.compile
    traces it)."""
    if x.dtype not in _DTYPES:
        raise TypeError("dnc.torch: %s takes float32, float64, bfloat16 or "
                        "float16 tensors, not %s" % (what, x.dtype))
    if x.dim() == 0:
        raise ValueError("dnc.torch: %s needs an input with a channel "
                         "dimension, not a 0-d tensor" % what)
    cols = x.shape[dim]
    along = "last dimension" if dim == -1 else "channel dimension (%d)" % dim
    for name, t in (("weight", gamma), ("bias", beta)):
        if t is not None and tuple(t.shape) != (cols,):
            raise ValueError("dnc.torch: %s: %s has shape %s; the input's "
                             "%s is %d" % (what, name, tuple(t.shape), along,
                                           cols))
    if len(params) != len(fparams):
        raise TypeError("dnc.torch: %s() takes %d parameters, got %d" % (
            fname, len(fparams), len(params)))
    for p, t in zip(fparams, params):
        ok = t.numel() == 1 or (p.kind == "per_channel" and t.numel() == cols
                                and t.dim() == 1)
        if not ok:
            raise ValueError(
                "dnc.torch: %s: parameter '%s' has shape %s; it takes %s" % (
                    what, p.name, tuple(t.shape),
                    "one value or one per channel (%d)" % cols
                    if p.kind == "per_channel" else "one value"))
    cpu = x.is_cpu
    for name, t in [("weight", gamma), ("bias", beta)] + \
            [(p.name, t) for p, t in zip(fparams, params)]:
        if t is None:
            continue
        if (not t.is_cpu) if cpu else t.device != x.device:
            raise RuntimeError("dnc.torch: %s: the input is on %s but '%s' "
                               "is on %s; move the module (e.g. .to(%s))"
                               % (what, x.device, name, t.device,
                                  x.device))
        if t.dtype != x.dtype and t.dtype != _compute_dtype(x):
            # (float32 for a bfloat16 or float16 x is the dtype the layer
            # computes in, where pointwise() keeps a number's value)
            # autocast is for bfloat16 and float16 (under it the layer
            # computes in the promotion of the two): not a float64 input's
            # remedy, which is dtypes that match
            half = (torch.bfloat16, torch.float16)
            amp = torch.float64 not in (x.dtype, t.dtype) and (
                x.dtype in half or t.dtype in half)
            raise TypeError("dnc.torch: %s: the input is %s but '%s' is %s;"
                            " %s%s" % (
                                what, x.dtype, name, t.dtype,
                                "give it as %s (%s.to(%s))" % (
                                    x.dtype, name, x.dtype)
                                if what == "pointwise" else
                                "convert the module (e.g. .to(%s)) or the "
                                "input (x.to(%s)) to match"
                                % (x.dtype, t.dtype),
                                ", or run under torch.autocast" if amp
                                else ""))


@contextlib.contextmanager
def _quiet_tracer():
    """Under torch.jit.trace: no TracerWarning from dnc.torch's own Python
    (its checks on the input's shape, which only raise, and on PyTorch
    1.13 the bookkeeping inside its autograd.Function, which the trace
    runs again at each call). They said "might cause the trace to be
    incorrect" 5 to 10 times per norm (about 250 for a ViT-B), where the
    trace records dnc's operator or Function, which reads the shapes and
    parameters of each call (a traced model runs other shapes and sees
    parameter updates: tests/python/test_trace_p11.py). The caller's own
    code keeps its warnings."""
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def pointwise(x, fn, weight=None, bias=None, module=None, threads=None,
              **params):
    """The functional form: weight * f(x; params) + bias over x's last
    dimension (a 0-d x: one channel, a 0-d result), differentiable.
    params: tensors or numbers by name (missing ones take the source's
    defaults). threads: the kernels' threads, 1 to 1024 (None or 0:
    torch.get_num_threads() at the call)."""
    if not _compiling():  # (there, an int torch.compile may make dynamic)
        threads = _thread_count(threads, zero=True)
    if isinstance(x, torch.Tensor) and x.dim() == 0:
        # element-wise on one number, as torch.tanh and dnc's NumPy
        # functions take it: one channel, a 0-d result (torch.func.grad of
        # f at a point, vmap(grad(...)) over points). PointwiseNorm, like
        # nn.LayerNorm, still wants a channel dimension. Its 0-d
        # parameters go as of shape (1,) beside it: operands all 0-d
        # promote each other under autocast, as in PyTorch (a 0-d
        # bfloat16 x and a 0-d float32 alpha: float32), where a 0-d one
        # beside an x with dimensions does not (_pointwise).
        params = {k: v.reshape(1) if isinstance(v, torch.Tensor) and
                  v.dim() == 0 else v for k, v in params.items()}
        return pointwise(x.reshape(1), fn, weight, bias, module, threads,
                         **params).reshape(())
    if torch.jit.is_tracing():
        with _quiet_tracer():
            return _pointwise(x, fn, weight, bias, module, threads, params)
    return _pointwise(x, fn, weight, bias, module, threads, params)


def _pointwise(x, fn, weight, bias, module, threads, params):
    if isinstance(fn, (str, _dnc.Function)) and _compiling():
        # torch.compile: fn named by a string, or a Function, is looked up
        # while tracing, as a constant (its source, name and parameters),
        # not traced (a Function's attributes are native calls)
        # (threads aside: they do not change what fn is, and an int that
        # torch.compile made dynamic after a second value cannot be one)
        # (by id: PyTorch 2.11's assume_constant_result refuses a
        # dnc.Function or dnc.Module argument, "UserDefinedObjectVariable
        # is not a constant"; an id is one, guarded by torch.compile)
        source, name, fparams = _resolved_const(*_ids(fn, module))
    else:
        # (threads 0 is torch's count, as None: not a context of dnc's
        # default count, compiled only to be looked at)
        f = resolve(fn, module, threads or None)
        source, name, fparams = _source_of(f), f.name, f.params
    names = {p.name for p in fparams}
    extra = set(params) - names
    if extra:
        raise TypeError("%s() has no parameter %s (its parameters: %s)" % (
            name, ", ".join("'%s'" % e for e in sorted(extra)),
            ", ".join(p.name for p in fparams) or "none"))
    clash = names & _POINTWISE_ARGS
    if clash:
        raise ValueError("%s's parameter %s clashes with an argument of "
                         "dnc.torch.pointwise (x, fn, weight, bias, module, "
                         "threads); rename it in the source" % (
                             name, ", ".join("'%s'" % c for c in
                                             sorted(clash))))
    # The tensors given decide the dtypes (_promoted's ref: the weight,
    # else the first parameter given as a tensor, else x). Numbers (a
    # parameter's, the source's defaults, weight and bias as numbers or
    # lists) keep their values in the dtype the layer computes in, f32
    # for a bf16 or f16 x: in x's dtype, beta = 1e5 was inf in f16 (y 0)
    # and DyISRU's default 301.1 was 301 in bf16. (A shape other than
    # (C,) for weight or bias is refused by _check, naming it.)
    given = [params.get(p.name) for p in fparams]
    ref = weight if isinstance(weight, torch.Tensor) else next(
        (v for v in given if isinstance(v, torch.Tensor)), x)
    ct = _compute_dtype(x)
    scalars = False
    if ref is not x and ref.dim() == 0 and \
            _autocast_dtype(x, ref) is not None:
        # Under autocast, PyTorch's point-wise operations (no autocast
        # op) promote by their operands' dimensions: a 0-d float32 alpha
        # leaves a bfloat16 x's dtype (torch.tanh(alpha * x) is
        # bfloat16; with alpha of shape (1,), float32). The layer did
        # promote to float32 by a 0-d parameter: it takes a tensor with
        # dimensions (bias, a parameter of another dtype than x's) to
        # promote by, else computes as outside autocast (a float32 0-d
        # tensor beside a bfloat16 x: in float32, y in x's dtype), a 0-d
        # tensor of neither x's nor its compute dtype converted to the
        # compute dtype (a bfloat16 alpha beside a float32 x)
        ref = next((t for t in [bias] + given if isinstance(
            t, torch.Tensor) and t.dim() > 0 and t.dtype != x.dtype), None)
        if ref is None:
            scalars = True
            ref = given[next(i for i, v in enumerate(given)
                             if isinstance(v, torch.Tensor))]
            if ref.dtype not in (x.dtype, ct):
                ref = x
    weight, bias = (_as_tensor(v, n, x, ct) for n, v in (("weight", weight),
                                                         ("bias", bias)))
    # a 0-d tensor of neither x's nor its compute dtype beside a first
    # parameter with dimensions (alpha of shape (1,), a 0-d float16 or
    # float64 shift) does not promote under autocast either: taken in
    # the compute dtype as with a 0-d first one (it was refused, "or run
    # under torch.autocast", under autocast)
    amp = scalars or _autocast_dtype(x, x) is not None
    ts = []
    for p in fparams:
        v = params.get(p.name, p.default)
        if not isinstance(v, torch.Tensor):  # a number, or a list of C
            v = torch.tensor(v, dtype=ct, device=x.device).reshape(-1)
        elif amp and v.dim() == 0 and v.dtype not in (x.dtype, ct):
            v = v.to(ct)
        ts.append(v)
    x, weight, bias, ts, out = _promoted(x, weight, bias, ts, ref,
                                         autocast=not scalars)
    _check(name, fparams, x, weight, bias, ts, "pointwise")
    y = _apply(source, name, threads or 0, x, weight, bias, ts)
    if not x.is_contiguous():  # as PointwiseNorm's (_norm_forward)
        y = y.contiguous()
    return y if out is None else y.to(out)


def _as_tensor(v, name, x, ct):
    """pointwise's weight or bias given as a number or a list: a tensor of
    dtype ct (the layer's compute dtype) on x's device."""
    if v is None or isinstance(v, torch.Tensor):
        return v
    try:
        return torch.tensor(v, dtype=ct, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError("dnc.torch: pointwise: %s is a tensor, a number or a"
                        " list of numbers, not %r" % (name, v)) from None


def _resolved(fn, module, threads):
    """(source, name, params) of the function resolve() finds."""
    f = resolve(fn, module, threads)
    return _source_of(f), f.name, f.params


def _compiling():
    c = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(c and c())


def _exporting():
    """torch.export traces (PyTorch 2.5's torch.compiler.is_exporting and
    later; before it, export takes the path of torch.compile)."""
    e = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    return bool(e and e())


def _ids(fn, module):
    """fn and module with a dnc.Function or dnc.Module replaced by its
    id(), for _resolved_const (str, path and None stay)."""
    return tuple(("id", id(a)) if isinstance(a, (_dnc.Function, _dnc.Module))
                 else a for a in (fn, module))


def _resolved_ids(fn, module):
    """_resolved of _ids's (fn, module): each ("id", n) the live dnc object
    of that id (the caller holds it)."""
    fn, module = (_dnc._live[a[1]] if isinstance(a, tuple) else a
                  for a in (fn, module))
    return _resolved(fn, module, None)


_resolved_const = _assume_constant(_resolved_ids)


# ------------------------------------------------------------- module

# the attributes PointwiseNorm sets besides f's parameters (nn.Module's
# own, such as training, are in its __dict__ or its class by then), and
# its constructor's keywords, which would take a parameter's initial value
# given by that name (threads=2 the thread count, not f's threads)
_OWN_NAMES = ("weight", "bias", "eps", "fn", "normalized_shape",
              "channels_last", "elementwise_affine", "module", "threads",
              "device", "dtype")

# pointwise()'s own arguments: a parameter of f by one of these names could
# not be given (threads=2 would be the thread count, weight=2.0 the
# weight), so such an f is refused
_POINTWISE_ARGS = frozenset(("x", "fn", "weight", "bias", "module",
                             "threads"))


def _mixed(x, ref):
    """Outside autocast, a bfloat16 or float16 x to float32 parameters,
    which nn.LayerNorm takes on PyTorch 2 (norms kept in float32 in a
    bfloat16 model): computed in float32, returned in x's dtype. That
    dtype, else None."""
    if x.dtype in (torch.bfloat16, torch.float16) and \
            ref.dtype == torch.float32:
        return x.dtype
    return None


def _widened(wide, x, weight, bias, params):
    """A float32 x to bfloat16 or float16 parameters (the others float32)
    outside autocast, at a PointwiseNorm that convert made from a norm
    that takes that input (its _dnc_wide): T5 loaded in float16 keeps
    its feed-forward output layers ('wo') in float32, and their output
    reaches the next norm so, which T5LayerNorm computes in float32 and
    returns in its weight's dtype (the converted model's call was a
    TypeError). (weight, bias, params) in float32 (differentiable
    casts: their gradients come back in their dtypes) and the dtype to
    return y in (None: float32, "promote"); None where the call is
    another. wide: "promote", "params", or a pair of them (or None) for
    bfloat16 and float16 parameters (_wide_input in convert.py)."""
    ts = [t for t in (weight, bias) if t is not None] + list(params)
    half = [t.dtype for t in ts if t.dtype in (torch.bfloat16, torch.float16)]
    if not half or any(t.dtype not in (torch.bfloat16, torch.float16,
                                       torch.float32) for t in ts) or \
            _autocast_dtype(x, ts[0]) is not None:
        return None
    if isinstance(wide, tuple):  # (bfloat16's, float16's): they differ
        wide = wide[half[0] == torch.float16]
        if wide is None:
            return None

    def up(t):
        return None if t is None else t.float()
    return up(weight), up(bias), [up(t) for t in params], \
        half[0] if wide == "params" else None


def _promoted(x, weight, bias, params, ref=None, autocast=True):
    """(x, weight, bias, params, out): the tensors in one dtype where
    autocast left x in another than the module's (_autocast_dtype), or
    where x is bfloat16 or float16 and the parameters float32 (_mixed:
    x in float32); out: the dtype to return y in (x's in the mixed case),
    else None. ref: the tensor whose dtype is the parameters' (default:
    the weight, else the first parameter, else x). autocast=False: as
    outside autocast (pointwise's 0-d parameters, which do not promote
    x there)."""
    if ref is None:
        ref = weight if weight is not None else (params[0] if params
                                                 else x)
    out = ct = None
    if ref.dtype != x.dtype:
        ct = _autocast_dtype(x, ref) if autocast else None
        if ct is None:
            out = _mixed(x, ref)
            if out is not None:
                ct = torch.float32
    elif _float32_gradient(x, weight, bias, params):
        out, ct = x.dtype, torch.float32
    if ct is not None:
        x = x.to(ct)
        weight, bias = [t if t is None else t.to(ct)
                        for t in (weight, bias)]
        params = [t.to(ct) for t in params]
    return x, weight, bias, params, out


def _float32_gradient(x, weight, bias, params):
    """A bfloat16 or float16 CPU x with a weight of its dtype, and beside it
    a float32 tensor that requires grad (f's alpha kept in float32 in a
    bfloat16 model): its gradient is float32, and the bf16 kernels' math,
    accurate to about 2^-14 (docs/accuracy.md), put up to 75 float32 ulp
    into DyT's alpha gradient (9e-6 relative over 4096 rows of one sign),
    where the f32 kernels' is within one. So the layer computes such a
    call as the float32 weight's mixture (_mixed): x in float32, y and dx
    returned in x's dtype; under no_grad too, so that evaluation gives
    training's bits. A float32 tensor that requires no grad (pointwise's
    numbers, a frozen parameter) keeps x's kernels, whose y and dx, rounded
    to x's dtype, lose nothing."""
    if x.dtype not in (torch.bfloat16, torch.float16) or not x.is_cpu:
        return False
    return any(t is not None and t.dtype == torch.float32 and t.requires_grad
               for t in [weight, bias] + list(params))


# ------------------------------------------------ the C++ layer call

def _load_ext():
    """dnc.torch's layer call in C++ (_torch_ext.cpp, built by
    tools/torch_ext.sh beside the libdnc.so loaded, per PyTorch version),
    and where it was found; or None and why not. It is used only where it
    was built for this very PyTorch and libdnc ABI; $DNC_TORCH_EXT=0 turns
    it off (every call then goes through Python, with the same results)."""
    if os.environ.get("DNC_TORCH_EXT", "1").lower() in ("0", "off", "no",
                                                        "false"):
        return None, "turned off by DNC_TORCH_EXT"
    if not HAS_CUSTOM_OPS:
        return None, "PyTorch %s is older than 2.4: no C++ layer call " \
            "(tools/torch_ext.sh builds it for PyTorch 2)" % torch.__version__
    import importlib.machinery
    import importlib.util
    import sysconfig
    name = "_dnc_torch" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
    key = "torch-" + torch.__version__
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [os.path.join(os.path.dirname(os.path.abspath(C.path)), "torch",
                          key, name),
             os.path.join(here, "_torch", key, name)]
    path = next((p for p in paths if os.path.exists(p)), None)
    if path is None:
        return None, "not built for PyTorch %s (tools/torch_ext.sh; " \
            "looked for %s)" % (torch.__version__, " and ".join(paths))
    try:
        loader = importlib.machinery.ExtensionFileLoader("_dnc_torch", path)
        spec = importlib.util.spec_from_file_location("_dnc_torch", path,
                                                      loader=loader)
        ext = importlib.util.module_from_spec(spec)
        loader.exec_module(ext)
    except ImportError as e:
        return None, "%s does not load: %s" % (path, e)
    if ext.torch_version != torch.__version__ or \
            ext.abi_version != C.ABI_VERSION:
        return None, "%s was built for PyTorch %s and libdnc ABI %d, " \
            "not %s and %d" % (path, ext.torch_version, ext.abi_version,
                               torch.__version__, C.ABI_VERSION)
    if getattr(ext, "interface", 0) != _EXT_INTERFACE:
        return None, "%s was built from another version of dnc.torch " \
            "(interface %d, not %d): run make, or tools/torch_ext.sh" % (
                path, getattr(ext, "interface", 0), _EXT_INTERFACE)
    addr = ctypes.cast
    ext.init(*(addr(getattr(C.lib, "dnc_layer_" + k), ctypes.c_void_p).value
               for k in ("forward", "backward", "forward_cm",
                         "backward_cm")), _ext_backward, _ext_failed,
             _op_forward_py, _op_backward_py, *_op_autograd_kernels())
    ext.set_reuse(_reuse_keep)
    return ext, path


def _op_autograd_kernels():
    """torch.library's Python autograd kernels of dnc::layer_forward and
    layer_backward, as torch.library.custom_op made them (the recorded
    node, its setup_context and backward), for the C++ extension's
    autograd kernels to hand a differentiated call to; (None, None) where
    this PyTorch has no such function (the extension then leaves
    torch.library's own in place)."""
    try:
        from torch._library.autograd import make_autograd_impl
        keys = torch._C.DispatchKeySet.from_raw_repr
        fwd = make_autograd_impl(torch.ops.dnc.layer_forward.default,
                                 _op_forward)
        bwd = make_autograd_impl(torch.ops.dnc.layer_backward.default,
                                 _op_backward)
    except (ImportError, AttributeError, TypeError):
        return None, None
    # the call's dispatch key set comes as its raw int (a C++
    # DispatchKeySet has no Python conversion in every PyTorch)
    return (lambda ks, *args: fwd(keys(ks), *args),
            lambda ks, *args: bwd(keys(ks), *args))


_EXT_INTERFACE = 5  # _torch_ext.cpp's "interface": what this file calls
_ext_functions = {}  # handle -> (source, name, threads) of its Function
_EXT_TYPES = (torch.Tensor, nn.Parameter)


def _ext_args(fn, source, name):
    """(handle, bit mask of per-channel parameters) of fn for _ext.call,
    made once per Function. The mask is the C++ calls' int64_t: with a
    64th parameter per-channel, bit 63 is its sign bit (2^63 does not fit
    one, and pybind11 refused the call)."""
    a = fn.__dict__.get("_torch_ext")
    if a is None:
        chan = _layout(fn)[0]
        mask = sum(1 << i for i, c in enumerate(chan) if c)
        a = fn._torch_ext = (fn._h, mask - (1 << 64) if mask >> 63
                             else mask)
        threads = getattr(fn, "_torch_threads", None) or \
            fn.module.context.threads
        _ext_functions[fn._h] = (source, name, threads)
        # for the operators' CPU kernels (_torch_ext.cpp's cpu_forward)
        _ext.register_function(source, name, threads, *a, len(fn.params))
    return a


def _ext_layer(source, name, threads, x, gamma, beta, params, cm=False):
    """The layer by the C++ call, or None where it may not take it: not
    built, x of a tensor subclass (whose __torch_function__ an
    autograd.Function's apply honours and a C++ call would not), or
    _ext_held_off. The caller has decided the rest
    (plain eager mode, _check's shapes); cm: over dimension 1 (channels
    first)."""
    if _ext is None or type(x) not in _EXT_TYPES or _ext_held_off():
        return None
    h, chan = _ext_args(_function(source, name, threads), source, name)
    return _ext.call(h, chan, cm, x, gamma, beta, params)


def _ext_held_off():
    """A forward-mode dual level is open (whose tangents only an
    autograd.Function carries), or compiled autograd is on."""
    return _forward_ad._current_level >= 0 or _compiled_autograd_on()


def _ext_backward(h, cm, x, dy, gamma, beta, params, need):
    """The C++ node's backward where it takes Python's: a backward that
    builds a graph (create_graph=True), or a dy without storage (the
    legacy vmap's batched gradients): _LayerFn.backward's, or (cm)
    _ChannelsFirstFn.backward's."""
    source, name, threads = _ext_functions[h]
    if cm:
        from . import _channels
        return _channels._composite_backward(
            _function(source, name, threads), x, dy, gamma, beta, params,
            (False,) + tuple(need))
    return _composite_backward(source, name, threads, x, dy, gamma, beta,
                               params, tuple(need))


def _ext_failed(h, st, what):
    source, name, threads = _ext_functions[h]
    _status(st, _function(source, name, threads), what)


def _compiled_autograd_on():
    """Whether compiled autograd is on (torch._dynamo.compiled_autograd's
    context): it records _LayerFn's backward as dnc's custom operator, but
    can only call the C++ node's, a graph break. (A node made before it
    was turned on is still the C++ one: its backward then runs eagerly,
    with the same results.)"""
    m = sys.modules.get("torch._dynamo.compiled_autograd")
    return m is not None and getattr(m, "compiled_autograd_enabled", False)


def extension():
    """The path of the C++ layer call dnc.torch uses for plain eager calls
    (tools/torch_ext.sh builds it for a PyTorch 2 with C++ headers), or
    None; extension_reason() says why not."""
    return _ext_path if _ext is not None else None


def extension_reason():
    """Why extension() is None (an empty string where it is not)."""
    return "" if _ext is not None else _ext_path


def _plain_forward(c, channels_last, source, name, threads, fparams, x,
                   weight, bias, params):
    """_norm_forward of the common call, decided by one pass of cheap
    tests, or None where the call is any other: a plain CPU tensor in
    eager mode (nothing tracing, transforming, exporting or dispatching)
    whose last dimension is c (channels first: at most 2 dimensions), and
    a weight, bias and parameters on the CPU in x's dtype and of the
    shapes _check takes. _norm_forward's checks then all pass and _apply
    takes the kernels, so this calls them directly: those layers took
    half of a [8 x 512] training step's time in dnc.torch's Python
    (docs/python.md, "Speed"). Anything else goes the whole way, which
    decides it and raises what it refuses."""
    if _compiling() or type(x) is not torch.Tensor:
        # (torch.compile first: its tracer stops at the dispatch mode's
        # lookup below, a graph break)
        return None
    if _ext is not None:
        # what only Python sees here (an ONNX export traces, or exports
        # through torch.export: tracing, compiling or a dispatch mode);
        # the tensors' devices, dtypes and shapes the C++ call tests
        # (_ext.plain: None where they are not the plain call's), and
        # makes the call
        if (not channels_last and x.dim() > 2) or \
                getattr(_force, "on", False) or torch.jit.is_tracing() or \
                _get_current_dispatch_mode() is not None or \
                _functorch_active() or _ext_held_off():
            return None
        h, chan = _ext_args(_function(source, name, threads), source, name)
        return _ext.plain(h, chan, c, x, weight, bias, params)
    if not x.is_cpu or x.is_nested or _distributed(weight, bias, *params) \
            or not torch._C._has_storage(x):
        # (no storage: a tensor of torch.func's outside its transform)
        return None
    d = x.dim()
    if d == 0 or (d > 2 and not channels_last) or x.shape[-1] != c:
        return None
    dt = x.dtype
    if dt not in _DTYPES:
        return None
    for t in (weight, bias):
        if t is not None and (t.dtype != dt or not t.is_cpu or
                              t.dim() != 1 or t.shape[0] != c):
            return None
    for p, t in zip(fparams, params):
        if t.dtype != dt or not t.is_cpu:
            return None
        n = t.numel()
        if n != 1 and (n != c or t.dim() != 1 or p.kind != "per_channel"):
            return None
    if getattr(_force, "on", False) or torch.jit.is_tracing() or \
            _get_current_dispatch_mode() is not None or _onnx_exporting():
        return None
    if _functorch_active():
        return None
    if _inference(x, weight, bias, params):
        return _kernel_forward(_function(source, name, threads), x, weight,
                               bias, params)
    return _LayerFn.apply(source, name, threads, x, weight, bias, *params)


def _norm_forward(c, channels_last, source, name, threads, fparams, x,
                  weight, bias, params):
    """PointwiseNorm(c, fn, channels_last=...)'s forward: fn the function
    `name` of `source` (fparams its Params), threads its kernels' threads
    (0: torch.get_num_threads())."""
    if x.is_nested:
        raise TypeError("PointwiseNorm takes dense tensors, not nested "
                        "ones (an nn.TransformerEncoder made before its "
                        "norms were replaced: set its use_nested_tensor"
                        " to False, or convert with convert_layernorm)")
    if not channels_last and x.dim() > 2:
        return _forward_channels_first(c, source, name, threads, fparams, x,
                                       weight, bias, params)
    if x.dim() and x.shape[-1] != c:
        raise ValueError("PointwiseNorm(%d): the input's last dimension "
                         "is %d (shape %s)" % (c, x.shape[-1],
                                               tuple(x.shape)))
    x, weight, bias, params, out = _promoted(x, weight, bias, params)
    _check(name, fparams, x, weight, bias, params, "PointwiseNorm")
    y = _apply(source, name, threads, x, weight, bias, params)
    if not x.is_contiguous():
        # contiguous, as the kernels and nn.LayerNorm give it: the
        # decomposed form's y had x's strides (a transposed [B, T, C]),
        # and y.view(B * T, C), which works on the CPU, failed on a GPU
        y = y.contiguous()
    return y if out is None else y.to(out)


def _forward_channels_first(c, source, name, threads, fparams, x, weight,
                            bias, params):
    """Over dimension 1: dnc's channel-major kernels on CPU tensors
    (dnc._channels); elsewhere (other devices, torch.compile, torch.func,
    ONNX export) the last-dimension path on x.movedim(1, -1)."""
    from . import _channels
    if x.shape[1] != c:
        raise ValueError("PointwiseNorm(%d, channels_last=False): the "
                         "input's dimension 1 is %d (shape %s)" % (
                             c, x.shape[1], tuple(x.shape)))
    x, weight, bias, params, out = _promoted(x, weight, bias, params)
    # permutes with every dimension named: the legacy ONNX exporter
    # writes movedim(-1, 1) as a Transpose with perm -1, which
    # onnxruntime refuses
    d = x.dim()
    xl = x.permute(0, *range(2, d), 1)
    # dnc's channel-major kernels, but for: torch.compile, torch.func,
    # torch.jit.trace (whose saved graph cannot hold the Python
    # autograd.Function), fake tensors and dispatch modes (FakeTensorMode,
    # whose tensors have no data for the kernels), which take the custom
    # ops on the permuted view; and an input in channels_last memory
    # format, whose permuted view is already rows of C channels, so that
    # the last dimension's kernels take it without a copy and y keeps
    # x's format
    if _use_kernels(x, weight, bias, *params) and \
            (_plain_eager(x, weight, bias, *params) if HAS_CUSTOM_OPS else
             not torch.jit.is_tracing()) and not xl.is_contiguous():
        _check(name, fparams, x, weight, bias, params, "PointwiseNorm",
               dim=1)
        y = _ext_layer(source, name, threads, x, weight, bias, params,
                       cm=True)
        if y is None:
            y = _channels.apply(_function(source, name, threads), x,
                                weight, bias, params)
        return y if out is None else y.to(out)
    _check(name, fparams, xl, weight, bias, params, "PointwiseNorm")
    y = _apply(source, name, threads, xl, weight, bias,
               params).permute(0, d - 1, *range(1, d - 1))
    if out is not None:
        y = y.to(out)
    # y in x's memory format, as the channel-major kernels give it in
    # eager mode: a compiled or exported model's y.view(N, -1) must
    # work where the eager one's does
    return y if xl.is_contiguous() else y.contiguous()


# attribute reads as nn.Module makes them (PointwiseNorm._forward)
_GETATTRIBUTE = nn.Module.__getattribute__

# the key of PointwiseNorm's function in a state_dict's metadata
_STATE_FN = "dnc_fn"

# PyTorch's loading of a state_dict that rank 0 alone holds:
# set_model_state_dict(model, sd, options=StateDictOptions(
# full_state_dict=True, broadcast_from_rank0=True)), whose
# _load_model_state_dict broadcasts rank 0's values (not its metadata) on
# the default group, then calls load_state_dict on every rank
_BROADCAST_LOAD = ("torch.distributed.checkpoint.state_dict",
                   "_load_model_state_dict")


def _loading_broadcast_from_rank0():
    """Whether this load_state_dict runs inside PyTorch's
    set_model_state_dict with broadcast_from_rank0 in a process group of
    more than one rank (a frame of _BROADCAST_LOAD on the stack, its
    options saying so): every rank is then inside the same load, module
    by module, where a collective is safe (elsewhere a rank may load
    alone)."""
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or \
            not dist.is_initialized() or dist.get_world_size() < 2:
        return False
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == _BROADCAST_LOAD[1] and \
                f.f_globals.get("__name__") == _BROADCAST_LOAD[0]:
            info = f.f_locals.get("info")
            return bool(getattr(info, "broadcast_from_rank0", False))
        f = f.f_back
    return False


def _signature(source):
    """What a state_dict's values mean: the printed source without the
    function's name and its parameters' defaults (which the values
    replace)."""
    def header(m):
        return "fn (%s)" % re.sub(r"\s*=[^,]*", "", m.group(1))
    return re.sub(r"fn \w+\(([^)]*)\)", header, source, count=1).strip()


def _same_function(saved, source):
    """Whether a state_dict saved from a PointwiseNorm of `saved` (dnc
    source) loads into one of `source`: the same signature, as printed,
    or once `saved` is compiled and printed again by this libdnc (a
    checkpoint of another dnc version), or the same meaning
    (_meaning)."""
    mine = _signature(source)
    if not isinstance(saved, str):
        return False
    if _signature(saved) == mine:
        return True
    try:
        m = _compile(saved, 1)
    except _dnc.Error:
        return False
    if len(m) == 1 and _signature(_source_of(next(iter(m)))) == mine:
        return True
    theirs = _meaning(saved)
    return theirs is not None and theirs == _meaning(source)


_meanings = {}


def _meaning(source):
    """The function of source (one function) as dnc's simplifier writes
    it, or None: its derivative with respect to a new parameter t of t *
    f(x; ...), whose simplified DAG is f's own with the operands of + and
    * (and == != and or) in a canonical order (constants, parameters, x,
    then the other nodes in the order made), constants folded and exact
    identities applied (docs/language.md); the parameters by name (sorted),
    with their kinds, the names of f, of x and the defaults left out. So
    tanh(x * alpha) and tanh(alpha * x), or x / sqrt(beta + x^2) and
    x / sqrt(x*x + beta), are one function; tanh(x) * exp(x) and exp(x) *
    tanh(x) are not found to be."""
    if source in _meanings:
        return _meanings[source]
    text = None
    try:
        m = _dnc.compile(source)
        if len(m) == 1:
            f = next(iter(m))
            ps = sorted(f.params, key=lambda p: p.name)
            used = {p.name for p in ps} | {f.name}
            x, t, g = ("dnc_" + n for n in ("x", "t", "same"))
            while used & {x, t, g}:
                x, t, g = x + "_", t + "_", g + "_"
            wrapper = "fn %s(%s; %s) = %s * %s(%s%s)" % (
                g, x, ", ".join(["%s%s = 0" % (
                    p.name, "[]" if p.kind == "per_channel" else "")
                    for p in ps] + ["%s = 1" % t]), t, f.name, x,
                "; " + ", ".join("%s = %s" % (p.name, p.name) for p in ps)
                if ps else "")
            text = _dnc.compile(f.source + "\n" + wrapper)[g].diff(t)
    except _dnc.Error:
        text = None
    if len(_meanings) > 256:
        _meanings.clear()
    _meanings[source] = text
    return text


def _one_line(source):
    return _dnc._shortened(" ".join(ln.strip() for ln in
                                    source.strip().splitlines()), 200)


def _width(x, channels_last):
    """The number of channels of x for a PointwiseNorm made with
    normalized_shape None (nothing per channel): its last dimension, or
    dimension 1 of a channels-first input of more than 2 dimensions (1
    for a 0-d x)."""
    if x.dim() == 0:
        return 1
    return x.shape[1] if not channels_last and x.dim() > 2 else x.shape[-1]


def _fx_norm(x, weight, bias, params, c, channels_last, source, name,
             threads, wide=None):
    """PointwiseNorm's forward as one function of plain arguments, which
    torch.fx.symbolic_trace records as one node (torch.fx.wrap below) and
    the traced GraphModule calls. wide: the module's _dnc_wide."""
    fparams = _params_of(source, name, threads)
    if c is None:
        c = _width(x, channels_last)
    params, out = list(params), None
    if wide is not None and x.dtype == torch.float32:
        w = _widened(wide, x, weight, bias, params)
        if w is not None:
            weight, bias, params, out = w
    y = _norm_forward(c, channels_last, source, name, threads, fparams,
                      x, weight, bias, params)
    return y if out is None else y.to(out)


torch.fx.wrap("_fx_norm")


@_assume_constant
def _params_of(source, name, threads):
    """The Params of the function `name` of source: a constant to
    torch.compile of a traced GraphModule (compiling the function reaches
    native calls, the thread count and a lock, each a graph break)."""
    return _function(source, name, threads).params


def _parametrized(module, name):
    """Whether module's `name` is parametrized with
    torch.nn.utils.parametrize."""
    from torch.nn.utils import parametrize
    return parametrize.is_parametrized(module, name)


class PointwiseNorm(nn.Module):
    """A drop-in for nn.LayerNorm over the last dimension:
    y = weight * f(x; params) + bias.

    normalized_shape: C, or (C,); None: whatever width the input has,
    only without weight and bias and where f has no per-channel
    parameter (f is then the same at every width: a parameter-free
    RMSNorm that records no width, NanoChat's, converts to one).
    fn: a dnc.Function, a function's name
    (in module=, or one of STANDARD: "dyt", "dyisru", "derf"), or dnc
    source defining one function. Each parameter of f becomes an
    nn.Parameter of its name, initialised to its default or to the value
    given by keyword (a per-channel one also takes C values): shape (1,)
    for a scalar, (C,) per channel. elementwise_affine and bias: the
    per-channel weight (ones) and bias (zeros), as in nn.LayerNorm
    (bias=False: weight only, as RMSNorm). channels_last=False: over
    dimension 1 of an N x C x ... input instead (dnc._channels).
    threads: the kernels' threads (None: torch.get_num_threads() at each
    call). device, dtype: of the parameters (any device: where dnc's CPU
    kernels cannot run, the decomposed form does)."""

    # nn.LayerNorm's epsilon, which PyTorch's fused TransformerEncoderLayer
    # path reads: NaN compares unequal to itself, so that path (which would
    # compute LayerNorm, not f) declines and the layer calls this module.
    eps = float("nan")

    def __init__(self, normalized_shape, fn, module=None, *,
                 elementwise_affine=True, bias=True, channels_last=True,
                 threads=None, device=None, dtype=None, **init):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):  # numpy's too
            normalized_shape = (normalized_shape,)
        if normalized_shape is not None:
            normalized_shape = tuple(int(d) if isinstance(d, numbers.Integral)
                                     else d for d in normalized_shape)
        if normalized_shape is None:
            c = None  # the input's width: nothing is per channel (below)
        elif len(normalized_shape) != 1:
            raise ValueError("PointwiseNorm normalizes over one dimension "
                             "(the last, or with channels_last=False "
                             "dimension 1): normalized_shape is C or (C,), "
                             "not %r" % (normalized_shape,))
        else:
            c = normalized_shape[0]
            if not isinstance(c, int):
                raise TypeError("PointwiseNorm: normalized_shape is C or "
                                "(C,), C an int, not %r" % (c,))
        if c is not None and c < 0:  # (C = 0, as nn.LayerNorm(0): an empty y)
            raise ValueError("PointwiseNorm: C (normalized_shape) is a "
                             "number of channels, 0 or more, not %d" % c)
        dtype = dtype or torch.get_default_dtype()
        if dtype not in _DTYPES:
            raise TypeError("dnc.torch: PointwiseNorm takes float32, float64,"
                            " bfloat16 or float16, not %s" % dtype)
        threads = _thread_count(threads)
        self.normalized_shape = normalized_shape
        self.channels_last = bool(channels_last)
        f = resolve(fn, module, threads)
        # the module holds no native handle, only the function's source
        # and name (compiled again per thread count, from the cache, on
        # first use): it pickles and deep-copies as plain data
        self._dnc_source = _source_of(f)
        self._dnc_name = f.name
        # the Function just compiled serves its thread count's calls
        nthreads = f.module.context.threads
        if _functions.setdefault((self._dnc_source, f.name, nthreads),
                                 f) is f:
            f._torch_threads = nthreads
        self._dnc_threads = threads
        self._dnc_params = f.params
        per_channel = [p.name for p in f.params if p.kind == "per_channel"]
        if c is None and (elementwise_affine or per_channel):
            # (a parameter-free RMSNorm that records no width, NanoChat's:
            # with nothing per channel, f is the same at every width)
            raise ValueError(
                "PointwiseNorm: normalized_shape None (whatever width the "
                "input has) takes nothing per channel, and %s: give C"
                % ("%s's %s %s per channel" % (
                    f.name, ", ".join(per_channel),
                    "is" if len(per_channel) == 1 else "are")
                   if per_channel else "a weight and bias are (pass "
                   "elementwise_affine=False for neither)"))
        self._prepare()
        names = [p.name for p in f.params]
        extra = set(init) - set(names)
        if extra:
            raise TypeError("%s() has no parameter %s (its parameters: %s)"
                            % (f.name, ", ".join(
                                "'%s'" % e for e in sorted(extra)),
                               ", ".join(names) or "none"))
        self._dnc_init = {}
        for p in f.params:
            if p.name in _OWN_NAMES or p.name in self.__dict__ or \
                    hasattr(type(self), p.name) or p.name.startswith("_"):
                raise ValueError("%s's parameter '%s' clashes with a name of"
                                 " the module; rename it in the source" % (
                                     f.name, p.name))
            v = init.get(p.name, p.default)
            shape = (c,) if p.kind == "per_channel" else (1,)
            # on the CPU whatever torch.device() context the module is
            # made in: reset_parameters copies them after .to_empty()
            t = torch.as_tensor(v, dtype=torch.float64,
                                device="cpu").detach().clone()
            if p.name in init and not bool(torch.isfinite(t).all()):
                # a NaN alpha trained to NaN, and made every output NaN,
                # without a word
                bad = t[~torch.isfinite(t)].reshape(-1)[0].item()
                raise ValueError("%s: '%s' is given %s%s: its initial "
                                 "value must be finite" % (
                                     f.name, p.name, bad, "" if
                                     t.numel() == 1 else " (one of %d values)"
                                     % t.numel()))
            if t.numel() == 1:
                t = t.reshape(1).expand(shape).clone()
            elif tuple(t.shape) != shape:
                raise ValueError("%s: '%s' takes %s, not shape %s" % (
                    f.name, p.name, "one value" if shape == (1,) else
                    "one value or %d" % c, tuple(t.shape)))
            self._dnc_init[p.name] = t
            setattr(self, p.name, nn.Parameter(
                torch.empty(shape, dtype=dtype, device=device)))
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.empty(c, dtype=dtype,
                                                   device=device))
            if bias:
                self.bias = nn.Parameter(torch.empty(c, dtype=dtype,
                                                     device=device))
            else:   # weight only (RMSNorm)
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _prepare(self):
        # the decomposed form is printed here, once, not at the first
        # forward off the CPU, which torch.compile may be tracing
        _form(self._dnc_source, self._dnc_name)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._prepare()

    # A state_dict holds values by name, and the same names (alpha, say)
    # mean other things in other functions: the module's function goes
    # into the state_dict's metadata (PyTorch's per-module local_metadata,
    # beside its "version", not a key: the DyT and Derf repositories'
    # modules still load it strictly), and a checkpoint of another
    # function is refused rather than loaded into this one.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        meta = getattr(destination, "_metadata", None)
        if meta is not None and isinstance(meta.get(prefix[:-1]), dict):
            meta[prefix[:-1]][_STATE_FN] = self._dnc_source

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        theirs = local_metadata.get(_STATE_FN)
        if _loading_broadcast_from_rank0():
            # every rank loads rank 0's values, and only rank 0 holds the
            # state_dict with its metadata: rank 0's function, sent to
            # every rank, decides on each (rank 0 alone refused; the
            # others loaded another function's values, silently, and went
            # on to their next collective, where they waited for a rank 0
            # that had caught its error and done something else)
            sent = [theirs]
            torch.distributed.broadcast_object_list(sent, src=0)
            theirs = sent[0]
        if theirs is not None and not _same_function(theirs,
                                                     self._dnc_source):
            error_msgs.append(
                "dnc.torch: %s was saved from a PointwiseNorm computing "
                "%s; this one computes %s: its values would mean something "
                "else here. Build the module with that function, or load "
                "dict(state_dict) (without PyTorch's metadata) to load the "
                "values by name on purpose" % (
                    "the state_dict's '%s'" % prefix[:-1] if prefix
                    else "the state_dict", _one_line(theirs),
                    _one_line(self._dnc_source)))
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def reset_parameters(self):
        """Parameters to their initial values: f's (the defaults or the
        keywords given), weight ones, bias zeros (on meta: nothing to do;
        after .to_empty(device=...), call it). A parameter parametrized
        with torch.nn.utils.parametrize is set through its
        parametrization (its right_inverse), so that it reads back as
        the initial value; one computed by a hook (the old
        torch.nn.utils.weight_norm or spectral_norm, or prune) is
        refused with a ValueError: writing the computed tensor would
        change nothing, and the next forward would recompute it."""
        targets = [(name, lambda t, v=v: v) for name, v in
                   self._dnc_init.items()]
        if self.elementwise_affine:
            targets.append(("weight", torch.ones_like))
            if _parametrized(self, "bias") or \
                    getattr(self, "bias", None) is not None:
                targets.append(("bias", torch.zeros_like))
        # check every one before changing any
        for name, _ in targets:
            if _parametrized(self, name):
                plist = self.parametrizations[name]
                lacking = [type(m).__name__ for m in plist
                           if not hasattr(m, "right_inverse")]
                if lacking:
                    raise ValueError(
                        "PointwiseNorm.reset_parameters: '%s' is "
                        "parametrized by %s, which has no right_inverse, so "
                        "it cannot be set to its initial value; give the "
                        "parametrization a right_inverse, or remove it "
                        "(torch.nn.utils.parametrize.remove_parametrizations) "
                        "and register it again after the reset" % (
                            name, ", ".join(lacking)))
                continue
            if isinstance(self._parameters.get(name), nn.Parameter) or \
                    isinstance(self._buffers.get(name), torch.Tensor) or \
                    getattr(self, name, None) is None:
                continue    # (a buffer: a frozen one, set as it is)
            hooks = [n for n in self._parameters
                     if n.startswith(name + "_") and
                     n[len(name) + 1:] in ("g", "v", "orig", "mask")] + \
                [n for n in self._buffers
                 if n.startswith(name + "_") and
                 n[len(name) + 1:] in ("orig", "mask", "u", "v")]
            if not hooks:
                # a plain tensor put in the parameter's place (FSDP1's
                # flat-parameter views, a functional_call's swap): set
                # as it is
                continue
            raise ValueError(
                "PointwiseNorm.reset_parameters: '%s' is not a parameter of "
                "this module but a tensor computed from %s by a hook (the "
                "old torch.nn.utils.weight_norm or spectral_norm, or "
                "torch.nn.utils.prune); setting it would change nothing. "
                "Remove the hook first (torch.nn.utils.remove_weight_norm, "
                "remove_spectral_norm, prune.remove), or use "
                "torch.nn.utils.parametrizations, whose parametrized "
                "parameters reset_parameters sets" % (
                    name, ", ".join(hooks)))
        with torch.no_grad():
            for name, value in targets:
                if _parametrized(self, name):
                    plist = self.parametrizations[name]
                    orig = getattr(plist, "original", None)
                    if orig is None:
                        orig = plist.original0
                    if orig.device.type == "meta":
                        continue
                    current = getattr(self, name)
                    v = value(current)
                    v = v.to(device=current.device, dtype=current.dtype)
                    if v.shape != current.shape:
                        v = v.expand(current.shape).clone()
                    try:
                        setattr(self, name, v)
                    except (NotImplementedError, RuntimeError) as e:
                        raise ValueError(
                            "PointwiseNorm.reset_parameters: '%s' is "
                            "parametrized (%s), and its parametrization "
                            "cannot be set to the initial value: %s" % (
                                name, ", ".join(type(m).__name__
                                                for m in plist), e)) \
                            from None
                    continue
                t = getattr(self, name)
                if t is not None and t.device.type != "meta":
                    v = value(t)
                    # a DTensor parameter (FSDP2's fully_shard, then
                    # to_empty, as torchtitan initialises): DTensor
                    # refused copying the plain values into a shard
                    t.copy_(_distributed_like(v, t) if _distributed(t) and
                            not _distributed(v) else v)

    @property
    def threads(self):
        """The kernels' thread count given (threads=), or None where they
        follow torch.get_num_threads() at each call. Settable (checked as
        the constructor checks it): norm.threads = 4 takes effect at the
        next call (it had been a new attribute that nothing read)."""
        return self._dnc_threads

    @threads.setter
    def threads(self, value):
        self._dnc_threads = _thread_count(value)

    @property
    def fn(self):
        """The dnc.Function, compiled for the thread count of this call
        (torch.get_num_threads() unless the module was built with
        threads=)."""
        return _function(self._dnc_source, self._dnc_name,
                         self._dnc_threads or 0)

    def __prepare_scriptable__(self):
        raise TypeError(
            "dnc.torch: torch.jit.script cannot compile PointwiseNorm (its "
            "kernels are an autograd.Function and custom operators, which "
            "TorchScript's compiler does not take); use torch.jit.trace%s"
            % (", torch.compile or torch.export"
               if hasattr(torch, "compile") else
               " (torch.compile and torch.export need PyTorch 2; this is "
               "%s)" % torch.__version__))

    # the input's keyword as the modules a PointwiseNorm replaces name it:
    # nn.LayerNorm's input, Hugging Face's hidden_states; convert adds the
    # replaced class's own name (_dnc_arg) where it is another
    _ARGS = ("x", "input", "hidden_states")
    _dnc_arg = None
    # a float32 input to bfloat16 or float16 parameters, which a module
    # made by convert takes where the norm it replaced took it (_widened):
    # "promote" (y in float32: nn.RMSNorm, Llama's RMSNorm), "params" (y
    # in the parameters' dtype: T5's T5LayerNorm), None (refused); a pair
    # (for bfloat16 parameters, for float16 ones) where the replaced norm
    # returned another dtype with each
    _dnc_wide = None

    def forward(self, x=None, **kw):
        # (torch.fx.symbolic_trace of the module itself passes **kw as one
        # Proxy, not a dict: there is no keyword then)
        if type(kw) is not dict:
            kw = {}
        return self._traced(self._keyword_input(x, kw))

    if not hasattr(torch, "compile"):
        # PyTorch 1.13's torch.fx rebuilds a forward that takes **kw with
        # Python 3.10's code fields and fails on 3.11: the input by
        # position or by the names of _ARGS there (a converted norm's
        # replaced class's own name, _dnc_arg, is not taken)
        def forward(self, x=None, input=None,  # noqa: F811
                    hidden_states=None):
            if isinstance(x, torch.fx.Proxy):
                # symbolic_trace of the norm itself: every argument is a
                # placeholder, x the one that is used
                return self._traced(x)
            kw = {k: v for k, v in (("input", input),
                                    ("hidden_states", hidden_states))
                  if v is not None}
            return self._traced(self._keyword_input(x, kw))

    def _traced(self, x):
        if torch.jit.is_tracing():
            with _quiet_tracer():
                return self._forward(x)
        return self._forward(x)

    def _keyword_input(self, x, kw):
        """The input, given by position (x) or by one keyword in kw."""
        if not kw:
            if x is None:  # (None, not a sentinel: fx records the default)
                raise TypeError("PointwiseNorm.forward() missing its input "
                                "x")
            return x
        names = self._ARGS + ((self._dnc_arg,) if self._dnc_arg else ())
        bad = [k for k in kw if k not in names]
        if bad:
            raise TypeError(
                "PointwiseNorm.forward() got an unexpected keyword argument "
                "'%s' (the input goes by position or as %s)"
                % (bad[0], ", ".join(names)))
        if x is not None or len(kw) > 1:
            raise TypeError(
                "PointwiseNorm.forward() takes one input, given %s"
                % " and ".join((["by position"] if x is not None
                                else []) + ["as %s" % k for k in kw]))
        return next(iter(kw.values()))

    def _forward(self, x):
        fparams = self._dnc_params
        ps = self._parameters
        try:  # (nn.Module's __getattr__ was a tenth of a small call)
            if type(self).__getattribute__ is not _GETATTRIBUTE:
                # PyTorch 1.13's functional_call swaps the parameters by
                # the module's class, whose attribute reads give the
                # caller's tensors; _parameters still holds the module's
                # own (their values were used, their gradients filled)
                raise KeyError
            params = [ps[p.name] for p in fparams]
            weight, bias = ps["weight"], ps["bias"]
        except KeyError:  # a parametrization, or a parameter made a buffer
            params = [getattr(self, p.name) for p in fparams]
            weight, bias = self.weight, self.bias
        c = self.normalized_shape[0] if self.normalized_shape is not None \
            else None
        if isinstance(x, torch.fx.Proxy):
            # torch.fx.symbolic_trace (torchvision's feature extractors):
            # one call_function node, not a trace through the checks
            return _fx_norm(x, weight, bias, params, c, self.channels_last,
                            self._dnc_source, self._dnc_name,
                            self._dnc_threads or 0, self._dnc_wide)
        if c is None:
            c = _width(x, self.channels_last)
        out = None
        if self._dnc_wide is not None and x.dtype == torch.float32:
            wide = _widened(self._dnc_wide, x, weight, bias, params)
            if wide is not None:
                weight, bias, params, out = wide
        args = (c, self.channels_last,
                self._dnc_source, self._dnc_name, self._dnc_threads or 0,
                fparams, x, weight, bias, params)
        y = _plain_forward(*args)
        y = _norm_forward(*args) if y is None else y
        return y if out is None else y.to(out)

    def extra_repr(self):
        vals = []
        # no values where there are none to read: on meta, and while
        # torch.compile traces (torch.func.vmap's repr of the function it
        # maps, to name it in errors, is traced too)
        compiling = _compiling()
        for p in self._dnc_params:
            t = getattr(self, p.name).detach()
            if compiling or t.device.type == "meta":
                vals.append(p.name)
            elif t.numel() == 1:
                vals.append("%s=%.4g" % (p.name, float(t.reshape(-1)[0])))
            else:
                vals.append("%s=[%d values, mean %.4g]" % (
                    p.name, t.numel(), float(t.float().mean())))
        return "%s, fn=%s(%s), elementwise_affine=%s%s%s, threads=%s" % (
            self.normalized_shape, self._dnc_name, ", ".join(vals),
            self.elementwise_affine,
            "" if self.bias is not None or not self.elementwise_affine
            else ", bias=False",
            "" if self.channels_last else ", channels_last=False",
            self._dnc_threads if self._dnc_threads else "torch")


# The converters live in dnc/convert.py (channels-first LayerNorm subclasses,
# RMSNorm, per-site and fitted initial values).
from .convert import (convert, convert_layernorm, convert_rmsnorm,  # noqa
                      find_norms, fit_initial, channels_first,
                      no_weight_decay, from_pretrained)

_ext, _ext_path = _load_ext()


def _tangent_refusing_autograd():
    """Registers autograd kernels of dnc::layer_forward and layer_backward
    (every device) that refuse a forward-mode tangent and then hand the
    call to torch.library's own autograd kernel. That one ignores
    tangents: where the C++ extension's AutogradCPU kernels (which refuse
    them) are not loaded, and on every other device, torch.func.jvp or
    jacfwd over the operator (an exported program's ep.module(), say) gave
    a tangent of 0, silently."""
    try:
        from torch._library.autograd import make_autograd_impl
        fwd = make_autograd_impl(torch.ops.dnc.layer_forward.default,
                                 _op_forward)
        bwd = make_autograd_impl(torch.ops.dnc.layer_backward.default,
                                 _op_backward)
    except (ImportError, AttributeError, TypeError):
        return None

    def tangent(t):
        return t is not None and \
            torch._VF._unpack_dual(t, 0)[1] is not None

    def refuse(what, tensors):
        if any(tangent(t) for t in tensors):
            raise NotImplementedError(
                "dnc.torch: %s has no forward-mode derivative (its tangent "
                "would be dropped); dnc.torch.pointwise and PointwiseNorm "
                "compute one from dnc's derivatives" % what)

    def forward(ks, x, weight, bias, params, source, name, threads):
        refuse("dnc::layer_forward", [x, weight, bias] + list(params))
        return fwd(ks, x, weight, bias, params, source, name, threads)

    def backward(ks, x, dy, weight, bias, params, source, name, threads):
        refuse("dnc::layer_backward", [x, dy, weight, bias] + list(params))
        return bwd(ks, x, dy, weight, bias, params, source, name, threads)
    lib = torch.library.Library("dnc", "IMPL")
    with warnings.catch_warnings():
        # (it replaces torch.library's registration, which it calls)
        warnings.simplefilter("ignore")
        lib.impl("layer_forward", forward, "Autograd", with_keyset=True)
        lib.impl("layer_backward", backward, "Autograd", with_keyset=True)
    return lib


if HAS_CUSTOM_OPS:
    _tangent_lib = _tangent_refusing_autograd()
