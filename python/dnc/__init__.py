"""dnc - point-wise functions that replace normalization layers, compiled.

    import dnc, numpy as np
    m = dnc.compile("fn dyt(x; alpha = 0.5) = tanh(alpha * x)")
    dyt = m["dyt"]
    y = dyt.forward(np.linspace(-4, 4, 9, dtype=np.float32), alpha=0.7)
    dx, grads = dyt.backward(x, dy)          # grads["alpha"]: sum dy*df/dalpha
    print(dyt.diff(wrt="x"))                  # fn dyt__dx(x; alpha = 0.5) = ...

A thin layer over libdnc (runtime/dnc.h) through ctypes: the kernels are
dnc's JIT-compiled (or `dnc compile`d) vector kernels, called on NumPy
arrays without copies where they are contiguous in their last dimension.
`dnc.torch` has the PyTorch module. docs/python.md is the manual.
"""
import collections
import collections.abc
import ctypes
import math
import operator
import os
import re
import sys
import threading
import weakref

import numpy as np
# imported here, not on each call: NumPy 2's np.ma is a lazy attribute whose
# first use imports numpy.ma (12 ms under the import lock) and each later
# one takes that lock again; a fork() in that window left the child's
# lock held, and its first dnc call waited for ever
import numpy.ma

from . import _capi as C

_MaskedArray = numpy.ma.MaskedArray

__all__ = ["Context", "Module", "Function", "Fit", "Param", "Diagnostic",
           "Error", "ArgumentError",
           "SourceError", "LoadError", "CompileError", "compile",
           "compile_file", "load", "default_context", "version",
           "__version__"]

version = C.lib.dnc_version().decode()
__version__ = version   # the library's: runtime/dnc.h's DNC_VERSION_STRING
library_path = C.path

Param = collections.namedtuple("Param", "name default kind")
Param.__doc__ = """A parameter of a function: its name, its default value
and its kind, "scalar" or "per_channel" (one value per channel)."""

Diagnostic = collections.namedtuple("Diagnostic",
                                    "severity file line column message")
Diagnostic.__doc__ = """An error, warning or note from dnc's front end:
severity is "error", "warning" or "note"; line and column are 1-based (0
when about the whole file)."""

_SEVERITY = {0: "error", 1: "warning", 2: "note"}
_KINDS = {C.PARAM_SCALAR: "scalar", C.PARAM_PER_CHANNEL: "per_channel"}

# every live Module and Function by id(): dnc.torch looks one up from its id
# while torch.compile traces, where the id is a constant and the object,
# on PyTorch 2.11, is not (dnc.torch._ids and _resolved_const)
_live = weakref.WeakValueDictionary()


class Error(Exception):
    """An error reported by libdnc; .status is its dnc_status."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class SourceError(Error, ValueError):
    """The source has errors. str() is dnc's located report (file:line:col:
    error: ..., the source line and a caret); .diagnostics the list."""

    def __init__(self, message, diagnostics):
        super().__init__(message, C.ERR_SOURCE)
        self.diagnostics = diagnostics


class ArgumentError(Error, ValueError):
    """An argument libdnc refuses (a Context option out of range, an
    unknown CPU, a bad shape): a ValueError too."""


class LoadError(Error, OSError):
    """A library that cannot be loaded, is not dnc's, or has no kernels for
    this CPU."""


class CompileError(Error):
    """LLVM failed to compile a kernel."""


def _int_arg(v, what, lo, hi):
    """v as a Python int from lo to hi (a C int or int64 of libdnc): an
    int or a NumPy integer, never a bool, a float or a value ctypes would
    wrap (2**32 + 2 threads must not become 2)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("%s is an int, not %r" % (what, v))
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError("%s is an int, not %r" % (what, v)) from None
    if not lo <= i <= hi:
        raise ValueError("%s is an int from %d to %d, not %d"
                         % (what, lo, hi, i))
    return i


_INT_MAX = 2 ** 31 - 1
_INT64_MAX = 2 ** 63 - 1


def _shortened(text, n):
    """text, cut to n characters with "..." at its end where longer (for
    a message that quotes what it was given)."""
    return text if len(text) <= n else text[:n - 3] + "..."


def _text_arg(v, what):
    """v as bytes for a char * argument: a str (None stays None)."""
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError("%s is a str, not %r" % (what, v))
    return v.encode()


def _status_text(st):
    return C.lib.dnc_status_string(st).decode()


def _raise(st, what):
    last = C.lib.dnc_last_error()
    detail = last.decode() if last else ""
    msg = "%s: %s" % (what, _status_text(st))
    if detail and st in (C.ERR_COMPILE, C.ERR_LOAD, C.ERR_ARGUMENT,
                         C.ERR_NOT_FOUND, C.ERR_MEMORY):
        msg += " (%s)" % detail
    if st == C.ERR_LOAD:
        raise LoadError(msg, st)
    if st == C.ERR_COMPILE:
        raise CompileError(msg, st)
    if st == C.ERR_MEMORY:
        raise MemoryError(msg)
    if st in (C.ERR_ARGUMENT, C.ERR_SHAPE, C.ERR_DTYPE):
        raise ArgumentError(msg, st)
    raise Error(msg, st)


class Context:
    """The JIT (target CPU, optimisation level) and the thread pool shared
    by the modules compiled in it.

    threads: kernel threads (0: $DNC_NUM_THREADS, else every CPU);
    cpu, features: LLVM's names (None: the host's); opt_level 0..3;
    math_bits: the vector math's precision (0: matched to each dtype, the
    default; 24: f32's in bf16 and f16 kernels too; see dnc.h);
    stream_bytes: outputs of at least this many bytes are written past the
    caches with non-temporal stores (0: $DNC_STREAM_BYTES, -1 or a size
    such as 64M, else the last-level cache's size capped at 64 MiB; -1:
    never; see dnc.h)."""

    def __init__(self, threads=0, cpu=None, features=None, opt_level=2,
                 math_bits=0, stream_bytes=0):
        # checked here for their C types (int, long long): ctypes would
        # wrap an out-of-range value into one libdnc accepts
        threads = _int_arg(threads, "threads", 0, _INT_MAX)
        opt_level = _int_arg(opt_level, "opt_level", -_INT_MAX, _INT_MAX)
        math_bits = _int_arg(math_bits, "math_bits", -_INT_MAX, _INT_MAX)
        stream_bytes = _int_arg(stream_bytes, "stream_bytes", -_INT64_MAX,
                                _INT64_MAX)
        o = C.Options()
        C.lib.dnc_options_init(ctypes.byref(o))
        o.threads = threads
        o.opt_level = opt_level
        o.math_bits = math_bits
        o.stream_bytes = stream_bytes
        o.cpu = _text_arg(cpu, "cpu") or None
        o.features = _text_arg(features, "features") or None
        h = ctypes.c_void_p()
        st = C.lib.dnc_context_create(ctypes.byref(o), ctypes.byref(h))
        if st != C.OK:
            _raise(st, "dnc.Context(threads=%r, cpu=%r, features=%r, "
                   "opt_level=%r, math_bits=%r, stream_bytes=%r)"
                   % (threads, cpu, features, opt_level, math_bits,
                      stream_bytes))
        self._h = h.value
        self._fin = _finalizer(self, C.lib.dnc_context_free, self._h)
        self._args = (threads, cpu, features, opt_level, math_bits,
                      stream_bytes)

    def __reduce__(self):
        # a copy (copy, deepcopy, pickle) is a new context with the same
        # options, never a second owner of this one's native handle
        return (Context, self._args)

    @property
    def threads(self):
        return C.lib.dnc_context_threads(self._h)

    @property
    def cpu(self):
        return C.lib.dnc_context_cpu(self._h).decode()

    @property
    def features(self):
        return C.lib.dnc_context_features(self._h).decode()

    @property
    def vector_bits(self):
        return C.lib.dnc_context_vector_bits(self._h)

    openmp = None  # the OpenMP runtime the kernels' threads run on

    def use_openmp(self, library):
        """Run the kernels' threads on an OpenMP runtime this process has
        already loaded (its soname or path, e.g. "libgomp.so.1"): each
        call's blocks become one parallel region of the calling thread's
        team, so that a host whose parallel code runs on that runtime
        (PyTorch) shares its threads with dnc instead of competing with
        them for the cores; the same results. None: dnc's own threads (the
        default). A copy of the context starts on its own threads."""
        st = C.lib.dnc_context_use_openmp(
            self._h, _text_arg(library, "use_openmp's library"))
        if st == C.ERR_NOT_FOUND:
            # a runtime this process has not loaded: a library's error, as
            # one that is not OpenMP's is an argument's (it was dnc.Error)
            last = C.lib.dnc_last_error()
            raise LoadError("Context.use_openmp(%r): %s" % (
                library, last.decode() if last else "not loaded"), st)
        if st != C.OK:
            _raise(st, "Context.use_openmp(%r)" % (library,))
        self.openmp = library

    def compile(self, source, name=None):
        """Compiles dnc source text; SourceError when it has errors."""
        if isinstance(source, str):
            source = source.encode()
        elif not isinstance(source, (bytes, bytearray)):
            raise TypeError("dnc.compile: the source is a str or bytes, not "
                            "%s" % type(source).__name__)
        source = bytes(source)
        h = ctypes.c_void_p()
        label = (name or "<string>")
        st = C.lib.dnc_compile_string(self._h, label.encode(), source,
                                      len(source), ctypes.byref(h))
        m = Module._made(self, h, st, "dnc.compile")
        m._made_by = ("compile", source, name)
        return m

    def compile_file(self, path):
        """Compiles a .dn file; SourceError when it has errors."""
        h = ctypes.c_void_p()
        st = C.lib.dnc_compile_file(self._h, str(path).encode(),
                                    ctypes.byref(h))
        m = Module._made(self, h, st, "dnc.compile_file")
        m._made_by = ("compile_file", str(path))
        return m

    def load(self, path):
        """Loads a library written by `dnc compile FILE... -o OUT.so`;
        LoadError when it cannot be used."""
        h = ctypes.c_void_p()
        st = C.lib.dnc_module_load(self._h, str(path).encode(),
                                   ctypes.byref(h))
        m = Module._made(self, h, st, "dnc.load(%r)" % str(path))
        m._made_by = ("load", str(path))
        return m

    def __repr__(self):
        return "<dnc.Context threads=%d cpu=%s>" % (self.threads, self.cpu)


def _remake(context, how, *args):
    return getattr(context, how)(*args)


_default = None
_default_lock = threading.Lock()
# Function.derivative's cache (one lock for all functions, renewed in a
# fork()ed child: a derivative is compiled once; a cached one is read
# without it)
_derivative_lock = threading.Lock()


def _finalizer(obj, free, handle):
    """free(handle) once obj is collected, but not at the interpreter's
    exit: a daemon thread may still be running the kernels of the module
    or the threads of the context then (freeing them under it ended the
    process with SIGSEGV, in Py_FinalizeEx); the system takes the memory
    back as the process ends."""
    fin = weakref.finalize(obj, free, handle)
    fin.atexit = False
    return fin


def _after_fork_in_child():
    """A fork() copies a lock that another thread held (making the default
    context, compiling a derivative) held for good: the child's first such
    call waited for ever. The child gets new ones; the native gate
    (runtime/api.c) has the fork wait for the native calls themselves."""
    global _default_lock, _derivative_lock
    _default_lock = threading.Lock()
    _derivative_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_context():
    """The context dnc.compile, compile_file and load use when given none
    (created on first use with the defaults)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Context()
        return _default


def compile(source, name=None, context=None):
    """Compiles dnc source text into a Module (see Context.compile)."""
    return (context or default_context()).compile(source, name)


def compile_file(path, context=None):
    """Compiles a .dn file into a Module."""
    return (context or default_context()).compile_file(path)


def load(path, context=None):
    """Loads a library written by `dnc compile` into a Module."""
    return (context or default_context()).load(path)


class Module:
    """Compiled functions: module["dyt"], iteration over the functions,
    len(), .names, .diagnostics (warnings of a successful compile)."""

    def __init__(self):
        raise TypeError("use dnc.compile, dnc.compile_file or dnc.load")

    @classmethod
    def _made(cls, ctx, h, st, what):
        if h.value is None:
            _raise(st, what)
        m = object.__new__(cls)
        m._h = h.value
        m.context = ctx
        _live[id(m)] = m
        m._made_by = None
        m._fin = _finalizer(m, C.lib.dnc_module_free, m._h)
        m.diagnostics = [
            Diagnostic(_SEVERITY.get(d.severity, "error"), d.file.decode(),
                       d.line, d.column, d.message.decode())
            for d in (C.lib.dnc_module_diagnostic(m._h, i)[0] for i in
                      range(C.lib.dnc_module_diagnostic_count(m._h)))]
        if st == C.ERR_SOURCE:
            text = C.text(C.lib.dnc_module_format_diagnostics, m._h)
            raise SourceError(text.rstrip("\n"), m.diagnostics)
        if st != C.OK:
            _raise(st, what)
        m._fns = {}
        for i in range(C.lib.dnc_module_function_count(m._h)):
            f = Function._made(m, C.lib.dnc_module_function(m._h, i))
            m._fns[f.name] = f
        return m

    def __reduce__(self):
        # copied by compiling (or loading) again in a copy of its context
        if self._made_by is None:
            raise TypeError("this dnc.Module cannot be copied")
        return (_remake, (self.context,) + self._made_by)

    @property
    def names(self):
        return list(self._fns)

    @property
    def cpu(self):
        """The CPU the kernels are compiled for (a loaded library's level)."""
        return C.lib.dnc_module_cpu(self._h).decode()

    def __getitem__(self, name):
        try:
            return self._fns[name]
        except KeyError:
            raise KeyError("no function '%s' in this module (it has: %s)"
                           % (name, ", ".join(self._fns) or "none")) from None

    def __contains__(self, name):
        return name in self._fns

    def __iter__(self):
        return iter(self._fns.values())

    def __len__(self):
        return len(self._fns)

    def __repr__(self):
        return "<dnc.Module %s>" % ", ".join(self._fns)


_MISSING = object()  # an argument not given


def _by_keyword(fn, call, args, params):
    """The arrays of a kernel call (x, dy, out) given positionally, or by
    keyword when fn has no parameter of that name (positional-only in the
    signature, so that a parameter may be called x, dy or out: then the
    keyword is the parameter's). args: [(name, value or _MISSING,
    required)]; returns the values, None for an optional one not given."""
    got = []
    for name, v, required in args:
        if name in params and name not in fn._index:
            if v is not _MISSING:
                raise TypeError("%s.%s() got %s twice" % (fn.name, call,
                                                          name))
            v = params.pop(name)
        if v is _MISSING:
            if required:
                raise TypeError("%s.%s() is missing %s" % (fn.name, call,
                                                           name))
            v = None
        got.append(v)
    return got


def _unmasked(fn, x, what):
    """Refuses a masked array: np.asarray drops its mask, and the kernels
    (or the fit) would take the values under it as data."""
    if isinstance(x, _MaskedArray):
        raise TypeError("%s: %s is a masked array; dnc takes no mask (pass "
                        "x.filled(value), or the unmasked values x.compressed()"
                        ")" % (fn.name, what))


def _tensor_values(fn, x, what):
    """A PyTorch tensor's values as a NumPy array, for the interpreter (eval,
    fit): NumPy has no bfloat16, so np.asarray of a bf16 tensor (recorded
    activations, a bf16 model's) was torch's TypeError "Got unsupported
    ScalarType BFloat16"; one on a GPU or needing grad was refused too. Its
    real floats become float64, which holds each exactly; other dtypes go
    to _points' check as they are. Anything else is returned unchanged
    (torch is not imported for it)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return x
    x = x.detach()
    if x.is_meta:
        raise ValueError("%s: %s is a tensor on the meta device, which has "
                         "no values" % (fn.name, what))
    if x.is_floating_point():
        x = x.to("cpu", torch.float64)
    return x.cpu().resolve_conj().resolve_neg().numpy()


# NumPy dtypes the kernels take, and the compute type of per-channel values
def _is_bfloat16(dt):
    """ml_dtypes' bfloat16 (JAX's, TensorFlow's), in native byte order:
    1 sign, 8 exponent and 7 significand bits, as libdnc's DNC_BF16. Known
    by its name and size, so that ml_dtypes is imported only by those who
    use it."""
    return dt.name == "bfloat16" and dt.itemsize == 2 and dt.isnative \
        and dt.type.__module__.split(".")[0] == "ml_dtypes"


def _swapped(dt):
    """dt is a float dtype the kernels take, in the other byte order (a
    big-endian '>f4' read from a file, say)."""
    if dt.isnative or dt.byteorder == "|":
        return False
    n = dt.newbyteorder("=")
    return n in _NP_DTYPES or _is_bfloat16(n)


def _dtype_name(dt):
    """dt as an error names it: a byte-swapped one (which NumPy writes
    '>f4', and bfloat16's '>V2') as 'big-endian float32 ('>f4')'."""
    if _swapped(dt):
        return "%s-endian %s ('%s')" % (
            "big" if dt.byteorder == ">" else "little",
            dt.newbyteorder("=").name, dt.str)
    return str(dt)


def _real_dtype(dt):
    """A dtype of real numbers that float64 takes as parameter values:
    bools, integers, floats, and bfloat16 in either byte order."""
    return dt.kind in "biuf" or _is_bfloat16(dt.newbyteorder("="))


def _real_number(v):
    """v is one real number (not a bool): an int, a float, a NumPy
    integer or float, or a bfloat16 scalar (ml_dtypes' is no np.floating,
    and fit's gain and bounds refused it)."""
    if isinstance(v, (bool, np.bool_)):
        return False
    return isinstance(v, (int, float, np.integer, np.floating)) or (
        isinstance(v, np.generic) and _is_bfloat16(v.dtype))


_NP_DTYPES = {np.dtype(np.float32): (C.F32, np.float32),
              np.dtype(np.float64): (C.F64, np.float64),
              np.dtype(np.float16): (C.F16, np.float32)}


def _rows_view(a):
    """a as a 2-D [rows, C] view with unit stride along C and one row
    stride, without copying when a's layout allows; else a C-ordered copy.
    Returns (view, row stride in elements)."""
    isz = a.itemsize
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1) if a.strides[0] == isz else \
            np.ascontiguousarray(a).reshape(1, -1)
    shape, strides = a.shape, a.strides
    c = shape[-1]
    ok = strides[-1] == isz or c == 1
    for i in range(a.ndim - 2):  # leading dimensions collapse into rows
        ok = ok and (strides[i] == strides[i + 1] * shape[i + 1]
                     or shape[i] == 1)
    rs = strides[-2] if a.ndim >= 2 else c * isz
    rows = int(np.prod(shape[:-1])) if a.ndim >= 2 else 1
    if rows == 1:
        rs = c * isz
    ok = ok and rs % isz == 0 and rs >= c * isz
    if not ok:
        a = np.ascontiguousarray(a)
        rs = c * isz
    v = np.lib.stride_tricks.as_strided(a, (rows, c), (rs, isz))
    return v, rs // isz


def _tensor(v, ld, dt):
    return C.Tensor(v.ctypes.data, dt, v.shape[0], v.shape[1], ld)


class Fit:
    """What Function.fit found (see there)."""

    def __init__(self, fn, r, names, free, gain=False, at_bound=None):
        self.function = fn.name
        self.gain = r.gain if gain else None
        self.gain_se = r.gain_se if gain else None
        self.status = C.FIT_STATUS[r.status]
        self.message = r.why.decode()
        self.iterations = r.iterations
        self.values = {n: r.value[i] for i, n in enumerate(names)}
        self.se = {n: r.se[i] for i, n in enumerate(names) if n in free}
        self.ssq, self.rms, self.max_abs = r.ssq, r.rms, r.max_abs
        self.bad_point = r.bad_point if self.status == "nonfinite" else None
        # illposed: the parameter not determined; nonfinite: the one whose
        # derivative is not finite at bad_point (None where f is not)
        named = self.status in ("illposed", "nonfinite")
        self.bad_param = (names[r.bad_param] if named
                          and 0 <= r.bad_param < len(names) else "gamma"
                          if named and gain
                          and r.bad_param == len(names) else None)
        # the parameters (and gamma) that ended at a bound: "lower"/"upper"
        self.at_bound = {}
        for i, n in enumerate(names + ["gamma"]):
            if at_bound is not None and at_bound[i]:
                self.at_bound[n] = "lower" if at_bound[i] < 0 else "upper"

    @property
    def converged(self):
        return self.status == "ok"

    def __repr__(self):
        vals = list(self.values.items())
        if self.gain is not None:
            vals.append(("gamma", self.gain))
        held = "".join(", %s at its %s bound" % kv
                       for kv in self.at_bound.items())
        return "<dnc.Fit %s %s: %s%s, rms %g (%s)>" % (
            self.function, self.status, ", ".join(
                "%s = %.6g" % kv for kv in vals), held, self.rms,
            self.message)


class Function:
    """A compiled function f(x; params): .name, .params, .source;
    .forward, .backward, .eval (the double-precision reference), .diff
    (symbolic derivatives as text), .derivative (one, compiled) and .fit
    (least squares with the symbolic Jacobian)."""

    def __init__(self):
        raise TypeError("functions come from a dnc.Module")

    @classmethod
    def _made(cls, module, h):
        f = object.__new__(cls)
        f._h = h
        f.module = module
        _live[id(f)] = f
        f.name = C.lib.dnc_function_name(h).decode()
        params = []
        for i in range(C.lib.dnc_function_param_count(h)):
            p = C.ParamInfo()
            C.lib.dnc_function_param(h, i, ctypes.byref(p))
            params.append(Param(p.name.decode(), p.default_value,
                                _KINDS[p.kind]))
        f.params = tuple(params)
        f._index = {p.name: i for i, p in enumerate(params)}
        f._derivs = {}
        return f

    def __reduce__(self):
        # a copy is the function of that name in a copy of its module
        return (operator.getitem, (self.module, self.name))

    def __repr__(self):
        return "<dnc.Function %s(%s; %s)>" % (self.name, self.variable, ", ".join(
            "%s%s = %g" % (p.name, "[]" if p.kind == "per_channel" else "",
                           p.default) for p in self.params))

    @property
    def source(self):
        """The function as dnc source (as `dnc print` writes it)."""
        return C.text(C.lib.dnc_function_source, self._h)

    @property
    def variable(self):
        """The name of f's input, as its source writes it (x in
        `fn dyt(x; alpha = 0.5) = ...`, u in `fn g(u) = ...`)."""
        v = self.__dict__.get("_variable")
        if v is None:
            m = re.match(r"\s*fn\s+\w+\s*\(\s*(\w+)", self.source)
            v = self._variable = m.group(1)
        return v

    def diff(self, wrt=None, order=1, format="dsl"):
        """The simplified derivative(s) as text, as `dnc diff` prints them:
        wrt is the input's name (the default: .variable) or a parameter's
        (its order-th derivative),
        "all" (every derivative of that order) or a list "x,alpha" / a
        tuple (the mixed derivative); format is "dsl", "latex", "c" or
        "torch" (f itself, then the derivatives, as PyTorch functions;
        for first derivatives, last NAME__all, returning them all)."""
        wrt = self._wrt(wrt)
        if format not in C.FORMATS:
            raise ValueError("format is 'dsl', 'latex', 'c' or 'torch', not %r"
                             % (format,))
        order = _int_arg(order, "order", 1, 16)
        n = ctypes.c_size_t()
        args = (self._h, wrt.encode(), order, C.FORMATS[format])
        st = C.lib.dnc_function_diff(*args, None, 0, ctypes.byref(n))
        if st == C.ERR_NOT_FOUND:  # the C call's name left out
            raise ValueError(C.lib.dnc_last_error().decode().replace(
                "dnc_function_diff: ", "", 1))
        if st != C.OK:
            _raise(st, "%s.diff(wrt=%r, order=%r)" % (self.name, wrt, order))
        buf = ctypes.create_string_buffer(n.value + 1)
        C.lib.dnc_function_diff(*args, buf, n.value + 1, None)
        return buf.value.decode()

    def _wrt(self, wrt):
        """diff's and derivative's wrt as libdnc's text: a name, "all", or
        the names of a mixed derivative joined by commas."""
        if wrt is None:
            return self.variable
        if isinstance(wrt, str):
            return wrt
        if isinstance(wrt, (list, tuple)) and \
                all(isinstance(w, str) for w in wrt):
            return ",".join(wrt)
        raise TypeError("%s: wrt is a variable's name, 'all', or a list or "
                        "tuple of names, not %r" % (self.name, wrt))

    def derivative(self, wrt=None, order=1):
        """One derivative of f as a Function of its own (same parameters),
        compiled in f's context; cached. wrt as diff's (default: the
        input)."""
        key = (self._wrt(wrt), _int_arg(order, "order", 1, 16))
        d = self._derivs.get(key)
        if d is not None:  # (cached: no lock, which compiles hold)
            return d
        with _derivative_lock:
            d = self._derivs.get(key)
            if d is None:
                if key[0] == "all":
                    raise ValueError("derivative() takes one variable or a "
                                     "list, not 'all'")
                src = self.diff(key[0], order, "dsl")
                m = self.module.context.compile(src, "<%s'>" % self.name)
                d = self._derivs[key] = next(iter(m))
            return d

    # -------------------------------------------------------- parameters

    def _values(self, kw):
        """kw -> (scalars as doubles, {index: per-channel array or None})"""
        vals = [p.default for p in self.params]
        chan = {}
        for k, v in kw.items():
            i = self._index.get(k)
            if i is None:
                raise TypeError("%s() has no parameter '%s' (its parameters: "
                                "%s)" % (self.name, k, ", ".join(
                                    self._index) or "none"))
            if isinstance(v, int) and not isinstance(v, bool) and \
                    abs(v) >= 2 ** 63:  # past int64: np.asarray makes objects
                try:
                    v = float(v)
                except OverflowError:
                    raise ValueError("%s: '%s' is an integer of %d digits, "
                                     "too large for a double" % (
                                         self.name, k, len(str(abs(v)))))
            a = np.asarray(v)
            # None, a string, an object; bfloat16 (ml_dtypes', a dtype of
            # kind "V") is a number, as the arrays it takes
            if not _real_dtype(a.dtype):
                raise TypeError("%s: '%s' takes a number (or, per channel, "
                                "one per channel), not %s%s" % (
                                    self.name, k, _shortened(repr(v), 60),
                                    "" if a.dtype.kind == "O" else
                                    " (dtype %s)" % a.dtype))
            a = a.astype(np.float64)
            if a.ndim == 0:
                vals[i] = float(a)
            elif self.params[i].kind != "per_channel":
                raise ValueError("%s: '%s' is a scalar parameter; got an "
                                 "array of shape %s" % (self.name, k, a.shape))
            elif a.ndim != 1:
                raise ValueError("%s: per-channel '%s' takes one value per "
                                 "channel (a 1-D array), not shape %s"
                                 % (self.name, k, a.shape))
            else:
                chan[i] = a
        return vals, chan

    def _points(self, x, what):
        """x as float64 for the interpreter (eval, fit): numbers, bools and
        arrays of a dtype that converts to float64 exactly; not None, a
        string, a complex or a long double one, which would become NaN, a
        parsed number or lose their imaginary part or digits."""
        _unmasked(self, x, what)
        x = _tensor_values(self, x, what)
        a = np.asarray(x)
        if not np.can_cast(a.dtype, np.float64, "safe"):
            raise TypeError("%s: %s must be real numbers that float64 holds"
                            " (float, int or bool), not %s"
                            % (self.name, what, a.dtype))
        return a.astype(np.float64)

    def _input(self, x, what="x"):
        _unmasked(self, x, what)
        a = np.asarray(x)
        if a.dtype.kind in "biu":
            a = a.astype(np.float64)
        if a.dtype not in _NP_DTYPES and _is_bfloat16(a.dtype):
            _NP_DTYPES[a.dtype] = (C.BF16, np.float32)
        if a.dtype not in _NP_DTYPES:
            raise TypeError("%s: %s must be float32, float64, float16 or "
                            "bfloat16, not %s%s" % (
                                self.name, what, _dtype_name(a.dtype),
                                "; the kernels take the machine's byte order"
                                ": %s.astype(%s.dtype.newbyteorder('='))"
                                % (what, what) if _swapped(a.dtype) else ""))
        return a

    def _check_channels(self, chan, shape):
        """Each per-channel array has one value per channel of the last
        dimension of an input of this shape (one for a 0-d input), empty
        or not."""
        cols = shape[-1] if shape else 1
        for i, a in chan.items():
            if a.shape[0] != cols:
                raise ValueError("%s: per-channel '%s' has %d values; the "
                                 "input has %d channels" % (
                                     self.name, self.params[i].name,
                                     a.shape[0], cols))

    def _layer(self, vals, chan, cols, ct, keep):
        """The dnc_layer for per-channel values chan (broadcast to every
        per-channel parameter, each of cols values: _check_channels);
        keep holds the arrays it points to."""
        np_ = len(self.params)
        ptrs = (ctypes.c_void_p * max(np_, 1))()
        for i, p in enumerate(self.params):
            if p.kind == "per_channel":
                a = np.ascontiguousarray(chan.get(i, np.full(cols, vals[i])),
                                         dtype=ct)
                keep.append(a)
                ptrs[i] = a.ctypes.data
        pv = (ctypes.c_double * max(np_, 1))(*vals)
        keep += [ptrs, pv]
        return C.Layer(pv, ptrs, None, None)

    # ----------------------------------------------------------- kernels

    def forward(self, x=_MISSING, out=_MISSING, /, **params):
        """y = f(x; params), element by element, in x's dtype (float32,
        float64 or float16; integers and bools are taken as float64).
        Parameters default to the source's; a per-channel one may be given
        as one value per channel of x's last dimension. out: an array of
        x's shape and dtype to write into (may be x); a read-only one is
        refused with ValueError. A parameter of f called x or out is set
        by that keyword; x and out then go by position."""
        x, out = _by_keyword(self, "forward", [("x", x, True),
                                               ("out", out, False)], params)
        x = self._input(x)
        dt, ct = _NP_DTYPES[x.dtype]
        vals, chan = self._values(params)
        self._check_channels(chan, x.shape)
        target = out
        if out is None:
            out = np.empty(x.shape, x.dtype)
        elif not isinstance(out, np.ndarray):
            raise TypeError("%s: out must be a NumPy array, not %s"
                            % (self.name, type(out).__name__))
        elif out.shape != x.shape or out.dtype != x.dtype:
            raise ValueError("%s: out must be an array of shape %s and dtype"
                             " %s, not %s %s" % (self.name, x.shape, x.dtype,
                                                 out.shape,
                                                 _dtype_name(out.dtype)))
        elif not out.flags.writeable:
            # np.frombuffer(bytes) or writeable=False: the kernel would
            # write into memory the caller said must not change
            raise ValueError("%s: out is read-only (writeable=False)"
                             % self.name)
        if x.size == 0:
            return out
        xv, ldx = _rows_view(x)
        yv, ldy = _rows_view(out)
        # an out whose layout the kernels cannot take (x itself when x is
        # transposed, say) gets the result through a contiguous copy
        copy_back = target is not None and not np.shares_memory(yv, out)
        # an out that overlaps x other than element for element (out =
        # x[1:] for x[:-1]) would be read after it was written: x is
        # copied first, as NumPy's ufuncs do
        if not copy_back and target is not None and \
                np.may_share_memory(xv, yv) and \
                (xv.ctypes.data != yv.ctypes.data or ldx != ldy):
            xv = np.array(xv)
            ldx = xv.shape[1]
        keep = []
        if chan:
            lay = self._layer(vals, chan, xv.shape[1], ct, keep)
            st = C.lib.dnc_layer_forward(self._h, _tensor(xv, ldx, dt),
                                         _tensor(yv, ldy, dt),
                                         ctypes.byref(lay))
        else:
            pv = (ctypes.c_double * max(len(vals), 1))(*vals)
            st = C.lib.dnc_forward(self._h, _tensor(xv, ldx, dt),
                                   _tensor(yv, ldy, dt), pv)
        if st != C.OK:
            _raise(st, "%s.forward" % self.name)
        if copy_back:
            out[...] = yv.reshape(out.shape)
        return out

    __call__ = forward

    def backward(self, x=_MISSING, dy=_MISSING, /, **params):
        """(dx, grads): dx = dy * df/dx in x's dtype, and grads[name] the
        sum of dy * df/dp over all elements for each parameter (a float),
        or per channel (an array) for a per-channel parameter given one
        value per channel. Sums are accumulated in double and do not
        depend on the number of threads. A parameter of f called x or dy
        is set by that keyword; x and dy then go by position."""
        x, dy = _by_keyword(self, "backward", [("x", x, True),
                                               ("dy", dy, True)], params)
        x = self._input(x)
        dy = self._input(dy, "dy")
        if dy.shape != x.shape or dy.dtype != x.dtype:
            raise ValueError("%s: dy (%s %s) must have x's shape and dtype "
                             "(%s %s)" % (self.name, dy.dtype, dy.shape,
                                          x.dtype, x.shape))
        dt, ct = _NP_DTYPES[x.dtype]
        vals, chan = self._values(params)
        self._check_channels(chan, x.shape)
        dx = np.empty(x.shape, x.dtype)
        names = [p.name for p in self.params]
        if x.size == 0:
            return dx, {n: (np.zeros(len(chan[i]), ct) if i in chan else 0.0)
                        for i, n in enumerate(names)}
        xv, ldx = _rows_view(x)
        dyv, lddy = _rows_view(dy)
        dxv, lddx = _rows_view(dx)
        dp = (ctypes.c_double * max(len(vals), 1))()
        keep = []
        if chan:
            cols = xv.shape[1]
            lay = self._layer(vals, chan, cols, ct, keep)
            gptrs = (ctypes.c_void_p * max(len(vals), 1))()
            sums = {}
            # the layer kernel leaves dp[i] alone for every per-channel
            # parameter, those given one value too: their sums come per
            # channel, and one given as one value gets the total of them
            for i, p in enumerate(self.params):
                if p.kind == "per_channel":
                    sums[i] = np.zeros(cols, ct)
                    gptrs[i] = sums[i].ctypes.data
            g = C.LayerGrad(dp, gptrs, None, None)
            st = C.lib.dnc_layer_backward(
                self._h, _tensor(xv, ldx, dt), _tensor(dyv, lddy, dt),
                _tensor(dxv, lddx, dt), ctypes.byref(lay), ctypes.byref(g))
            grads = {n: (sums[i] if i in chan else
                         float(np.sum(sums[i], dtype=np.float64))
                         if i in sums else float(dp[i]))
                     for i, n in enumerate(names)}
        else:
            pv = (ctypes.c_double * max(len(vals), 1))(*vals)
            st = C.lib.dnc_backward(
                self._h, _tensor(xv, ldx, dt), _tensor(dyv, lddy, dt),
                _tensor(dxv, lddx, dt), pv, dp)
            grads = {n: float(dp[i]) for i, n in enumerate(names)}
        if st != C.OK:
            _raise(st, "%s.backward" % self.name)
        return dx, grads

    def fit(self, x, y, params=None, start=None, max_iter=200, gain=False,
            bounds=None):
        """Least squares: the values of f's parameters that minimize
        sum (y - f(x))^2 over the points (x, y), by dnc's solver (`dnc
        fit`'s: Levenberg-Marquardt with f's symbolic derivatives as the
        Jacobian, evaluated by the reference interpreter; docs/fit.md).
        params: the names of the parameters to fit (default: all; one
        name may be given as a string); the
        others are held at start's values (start: {name: value}, default
        the source's, also the fit's starting point). A per-channel
        parameter is fitted as one value. Returns a Fit: .values and .se
        (standard errors) by name, .status ("ok", "maxiter", "stalled",
        "illposed", "nonfinite", "toofew", "toolarge"), .message,
        .iterations, .rms, .max_abs, .ssq (NaN where the fit never ran:
        "nonfinite", "toofew", "toolarge"); .converged is status == "ok";
        .bad_param names the parameter not determined ("illposed") or
        whose derivative is not finite at point .bad_point ("nonfinite";
        None where f itself is not). start's values must be finite. x
        and y may be PyTorch tensors of any real float dtype (bfloat16
        too), read in float64.
        gain: True or a number fits gamma f(x) with gamma free as well, as
        `dnc fit --gain` does (y a LayerNorm's output, whose gamma the
        norm's weight takes): .gain and .gain_se; False (the default): f(x)
        alone, .gain None. gamma starts at the least-squares gain for the
        parameters' starts where that is within gamma's bounds; where it is
        not, or none can be had (f 0 at every point), at the number (1 for
        True), put within the bounds.
        bounds: {name: (lower, upper)} for parameters being fitted (and
        "gamma" with gain), either end None (or -inf/inf) for none, e.g.
        {"beta": (0, None)}; the fit stays within them (a projected
        Levenberg-Marquardt) and must start within them (start, or the
        source's defaults). .at_bound names those that ended at a bound
        ({"beta": "lower"}); their .se is NaN, the others' are with them
        held there (docs/fit.md, "Bounds")."""
        x = self._points(x, "fit's x")
        y = self._points(y, "fit's y")
        if x.shape != y.shape:  # same size is not enough: (4, 10), (10, 4)
            raise ValueError("%s.fit: x (shape %s) and y (shape %s) must "
                             "have the same shape" % (self.name, x.shape,
                                                      y.shape))
        x = np.ascontiguousarray(x).reshape(-1)
        y = np.ascontiguousarray(y).reshape(-1)
        names = [p.name for p in self.params]
        vals, chan = self._values(dict(start or {}))
        if chan:
            raise ValueError("%s.fit starts from one value per parameter"
                             % self.name)
        # as `dnc fit --init` refuses them: a NaN start was a fit that
        # "ran", status "nonfinite", "not finite at the start"
        for p, v in zip(self.params, vals):
            if not math.isfinite(v):
                raise ValueError("%s.fit: the start of '%s' is %r; it must "
                                 "be a finite number" % (self.name, p.name,
                                                         v))
        # one name alone is that parameter, not its letters
        free = names if params is None else [params] \
            if isinstance(params, str) else list(params)
        for n in free:
            if n not in self._index:
                raise ValueError("%s.fit: no parameter '%s' (its parameters: "
                                 "%s)" % (self.name, n,
                                          ", ".join(names) or "none"))
        max_iter = _int_arg(max_iter, "%s.fit: max_iter" % self.name, 0,
                            _INT_MAX)
        np_ = len(names)
        pv = (ctypes.c_double * max(np_, 1))(*vals)
        fixed = (ctypes.c_int * max(np_, 1))(
            *[0 if n in free else 1 for n in names])
        o = C.FitOptions()
        C.lib.dnc_fit_options_init(ctypes.byref(o))
        o.max_iter = max_iter
        if gain is not False and gain is not None:
            if gain is True:
                g0 = 1.0
            elif _real_number(gain):
                g0 = float(gain)
            else:
                raise TypeError("%s.fit: gain is True, False or gamma's "
                                "start (a number), not %s"
                                % (self.name, type(gain).__name__))
            if not math.isfinite(g0):
                raise ValueError("%s.fit: gain's start must be finite, not "
                                 "%r" % (self.name, g0))
            o.gain, o.gain_init = 1, g0
        lo, hi = self._fit_bounds(bounds, names, free, bool(o.gain))
        at = (ctypes.c_int * (np_ + 1))()
        r = C.FitResult()
        st = C.lib.dnc_function_fit_bounded(
            self._h, x.ctypes.data, y.ctypes.data, x.size, pv, fixed, lo, hi,
            ctypes.byref(o), ctypes.byref(r), at)
        if st != C.OK:
            _raise(st, "%s.fit" % self.name)
        try:
            return Fit(self, r, names, free, bool(o.gain), list(at))
        finally:
            C.lib.dnc_fit_result_free(ctypes.byref(r))

    def _fit_bounds(self, bounds, names, free, gain):
        """fit's bounds as two C arrays (None, None without any); the
        values themselves (NaN, lower >= upper, a start outside) are
        checked by libdnc, which names the parameter."""
        if bounds is None:
            return None, None
        if not isinstance(bounds, collections.abc.Mapping):
            raise TypeError("%s.fit: bounds is a dict {name: (lower, "
                            "upper)}, not %s" % (self.name,
                                                 type(bounds).__name__))
        lo = [-math.inf] * (len(names) + 1)
        hi = [math.inf] * (len(names) + 1)
        for name, b in bounds.items():
            if name == "gamma" and gain:
                j = len(names)
            elif name not in self._index:
                hint = ("; the gain gamma is fitted with gain=True"
                        if name == "gamma" else "")
                raise ValueError("%s.fit: bounds on '%s', which is not a "
                                 "parameter (its parameters: %s)%s"
                                 % (self.name, name,
                                    ", ".join(names) or "none", hint))
            else:
                j = names.index(name)
                if name not in free:
                    raise ValueError("%s.fit: bounds on '%s', which is not "
                                     "fitted (params holds it at its "
                                     "start): bounds are for the "
                                     "parameters being fitted"
                                     % (self.name, name))
            if not isinstance(b, (tuple, list, np.ndarray)) or \
                    np.ndim(b) != 1 or len(b) != 2:
                raise TypeError("%s.fit: bounds['%s'] is (lower, upper), "
                                "None for no bound, not %r"
                                % (self.name, name, b))
            for k, (v, inf, arr) in enumerate(((b[0], -math.inf, lo),
                                               (b[1], math.inf, hi))):
                if v is None:
                    continue
                if not _real_number(v):
                    raise TypeError("%s.fit: bounds['%s']'s %s bound is a "
                                    "number or None, not %s"
                                    % (self.name, name,
                                       ("lower", "upper")[k],
                                       type(v).__name__))
                arr[j] = float(v)
        return ((ctypes.c_double * len(lo))(*lo),
                (ctypes.c_double * len(hi))(*hi))

    def eval(self, x=_MISSING, /, **params):
        """The reference interpreter: f(x) in extended precision, rounded
        to double (float64 array of x's shape); scalar parameter values.
        x: numbers that float64 holds exactly (not None, strings, complex
        or long double: TypeError). A parameter of f called x is set by
        x=; x then goes by position."""
        x, = _by_keyword(self, "eval", [("x", x, True)], params)
        x = self._points(x, "x")
        shape = x.shape
        x = np.ascontiguousarray(x.reshape(-1))  # (a 0-d x comes back 0-d)
        vals, chan = self._values(params)
        if chan:
            raise ValueError("%s.eval takes one value per parameter"
                             % self.name)
        y = np.empty_like(x)
        pv = (ctypes.c_double * max(len(vals), 1))(*vals)
        st = C.lib.dnc_function_eval(self._h, x.ctypes.data, y.ctypes.data,
                                     x.size, pv)
        if st != C.OK:
            _raise(st, "%s.eval" % self.name)
        return y.reshape(shape)
