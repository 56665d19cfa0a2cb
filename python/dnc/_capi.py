"""_capi.py - libdnc through ctypes: finding the library, the structures of
runtime/dnc.h and the signatures of its functions.

The library is searched, in this order:
  1. $DNC_LIBRARY (a path to libdnc.so, relative to the current folder);
  2. next to this package (a copy installed with it);
  3. the build folder of the checkout this package sits in ($DNC_BUILD, else
     build/), so that PYTHONPATH=python works after `make`;
  4. the system's library path (`make install`).
"""
import ctypes
import ctypes.util
import os

from ._build import build_dir

ABI_VERSION = 6  # runtime/dnc.h's DNC_ABI_VERSION

c_int64 = ctypes.c_int64
c_double_p = ctypes.POINTER(ctypes.c_double)


class Options(ctypes.Structure):
    _fields_ = [("opt_level", ctypes.c_int), ("threads", ctypes.c_int),
                ("cpu", ctypes.c_char_p), ("features", ctypes.c_char_p),
                ("dump_ir", ctypes.c_char_p), ("math_bits", ctypes.c_int),
                ("cache", ctypes.c_int), ("cache_dir", ctypes.c_char_p),
                ("stream_bytes", ctypes.c_longlong)]


class Diagnostic(ctypes.Structure):
    _fields_ = [("severity", ctypes.c_int), ("file", ctypes.c_char_p),
                ("line", ctypes.c_int), ("column", ctypes.c_int),
                ("message", ctypes.c_char_p)]


class ParamInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("default_value", ctypes.c_double),
                ("kind", ctypes.c_int)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("rows", c_int64), ("cols", c_int64), ("stride", c_int64)]


class Layer(ctypes.Structure):
    _fields_ = [("params", c_double_p),
                ("channel", ctypes.POINTER(ctypes.c_void_p)),
                ("gamma", ctypes.c_void_p), ("beta", ctypes.c_void_p)]


class LayerGrad(ctypes.Structure):
    _fields_ = [("params", c_double_p),
                ("channel", ctypes.POINTER(ctypes.c_void_p)),
                ("gamma", ctypes.c_void_p), ("beta", ctypes.c_void_p)]


class FitOptions(ctypes.Structure):
    _fields_ = [("max_iter", ctypes.c_int), ("ftol", ctypes.c_double),
                ("xtol", ctypes.c_double), ("gtol", ctypes.c_double),
                ("gain", ctypes.c_int), ("gain_init", ctypes.c_double),
                ("gain_fixed", ctypes.c_int)]


class FitResult(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("why", ctypes.c_char * 200),
                ("iterations", ctypes.c_int), ("value", c_double_p),
                ("se", c_double_p), ("gain", ctypes.c_double),
                ("gain_se", ctypes.c_double), ("ssq", ctypes.c_double),
                ("mean_abs", ctypes.c_double), ("max_abs", ctypes.c_double),
                ("rms", ctypes.c_double), ("bad_point", ctypes.c_int),
                ("bad_param", ctypes.c_int)]


# dnc_fit_status
FIT_STATUS = ("ok", "maxiter", "stalled", "illposed", "nonfinite", "toofew",
              "toolarge")
# dnc_status
OK, ERR_SOURCE, ERR_ARGUMENT, ERR_NOT_FOUND, ERR_DTYPE, ERR_SHAPE, \
    ERR_COMPILE, ERR_MEMORY, ERR_LOAD = range(9)
# dnc_dtype
F32, F64, BF16, F16 = range(4)
# dnc_param_kind
PARAM_SCALAR, PARAM_PER_CHANNEL = 0, 1
# dnc_format
FORMATS = {"dsl": 0, "latex": 1, "c": 2, "torch": 3}


def _candidates():
    env = os.environ.get("DNC_LIBRARY")
    if env:
        # absolute: dlopen of a name without a slash searches the library
        # path, and would load another libdnc than the one named
        return [os.path.abspath(env)]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, "libdnc.so")]
    out.append(os.path.join(build_dir(), "libdnc.so"))
    return out


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _mapped_path(lib, name):
    """The absolute path of the file the loader mapped for lib: where it
    was found on the system's library path, `name` is only its soname
    (libdnc.so.6), which a Ray worker's DNC_LIBRARY or dnc.torch's
    extension beside it cannot be found from. The file mapped at one of
    its functions' addresses in /proc/self/maps (the soname's target, as
    make install links it, whatever LD_LIBRARY_PATH named); else dladdr's
    name for it, where that is absolute."""
    addr = ctypes.cast(lib.dnc_version, ctypes.c_void_p).value
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                f = line.split(None, 5)
                lo, _, hi = f[0].partition("-")
                if len(f) == 6 and int(lo, 16) <= addr < int(hi, 16) and \
                        os.path.isabs(f[5].strip()):
                    return f[5].strip()
    except (OSError, ValueError):
        pass
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.restype = ctypes.c_int
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            got = os.fsdecode(info.dli_fname)
            if os.path.isabs(got) and os.path.exists(got):
                return got
    except (AttributeError, OSError):
        pass
    return os.path.abspath(name)


def _open(path, env, here):
    """ctypes.CDLL(path), or an ImportError that says which copy could not
    be loaded and what to do, not ctypes' OSError."""
    if os.path.isdir(path):
        if env:
            raise ImportError("dnc: DNC_LIBRARY names %r, a folder: it names "
                              "the library file itself (e.g. %s)"
                              % (env, os.path.join(env, "libdnc.so")))
        raise ImportError("dnc: %s is a folder, not the library" % path)
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        why = str(e)
    if env:
        raise ImportError("dnc: DNC_LIBRARY names %r, which cannot be "
                          "loaded: %s" % (env, why)) from None
    if os.path.dirname(path) == here:
        raise ImportError(
            "dnc: cannot load the libdnc.so installed with this package: %s. "
            "The package `pip install .` builds carries a libdnc that links "
            "the system's LLVM 19 (Debian's libllvm19); where that is "
            "missing, install the wheel `make wheel` builds instead, which "
            "has LLVM linked in" % why) from None
    raise ImportError("dnc: cannot load %s: %s" % (path, why)) from None


def _load():
    tried = []
    env = os.environ.get("DNC_LIBRARY")
    here = os.path.dirname(os.path.abspath(__file__))
    for path in _candidates():
        if os.path.exists(path):
            return _open(path, env, here), path
        tried.append(path)
    if env:
        # a wrong DNC_LIBRARY is an error, never a fallback to another copy
        raise ImportError("dnc: cannot find libdnc.so: DNC_LIBRARY names %r, "
                          "which does not exist"
                          % env)
    found = ctypes.util.find_library("dnc")
    if found:
        try:
            lib = ctypes.CDLL(found)
            return lib, _mapped_path(lib, found)
        except OSError as e:
            raise ImportError(
                "dnc: found %s on the system's library path but cannot load "
                "it (%s); after `make install`, run `ldconfig` (or set "
                "LD_LIBRARY_PATH or DNC_LIBRARY)" % (found, e)) from None
    raise ImportError(
        "dnc: cannot find libdnc.so (looked at %s and the system's library "
        "path); build it with `make`, or set DNC_LIBRARY to its path"
        % ", ".join(tried))


lib, path = _load()


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


P = ctypes.c_void_p
_sig("dnc_version", ctypes.c_char_p)
_sig("dnc_abi_version", ctypes.c_int)
_sig("dnc_status_string", ctypes.c_char_p, ctypes.c_int)
_sig("dnc_last_error", ctypes.c_char_p)
_sig("dnc_options_init", None, ctypes.POINTER(Options))
_sig("dnc_context_create", ctypes.c_int, ctypes.POINTER(Options),
     ctypes.POINTER(P))
_sig("dnc_context_free", None, P)
_sig("dnc_context_threads", ctypes.c_int, P)
_sig("dnc_context_cpu", ctypes.c_char_p, P)
_sig("dnc_context_features", ctypes.c_char_p, P)
_sig("dnc_context_vector_bits", ctypes.c_int, P)
_sig("dnc_context_use_openmp", ctypes.c_int, P, ctypes.c_char_p)
_sig("dnc_compile_string", ctypes.c_int, P, ctypes.c_char_p, ctypes.c_char_p,
     ctypes.c_size_t, ctypes.POINTER(P))
_sig("dnc_compile_file", ctypes.c_int, P, ctypes.c_char_p, ctypes.POINTER(P))
_sig("dnc_module_load", ctypes.c_int, P, ctypes.c_char_p, ctypes.POINTER(P))
_sig("dnc_module_free", None, P)
_sig("dnc_module_cpu", ctypes.c_char_p, P)
_sig("dnc_module_diagnostic_count", ctypes.c_size_t, P)
_sig("dnc_module_diagnostic", ctypes.POINTER(Diagnostic), P, ctypes.c_size_t)
_sig("dnc_module_format_diagnostics", ctypes.c_size_t, P, ctypes.c_char_p,
     ctypes.c_size_t)
_sig("dnc_module_function_count", ctypes.c_int, P)
_sig("dnc_module_function", P, P, ctypes.c_int)
_sig("dnc_module_find", P, P, ctypes.c_char_p)
_sig("dnc_function_name", ctypes.c_char_p, P)
_sig("dnc_function_param_count", ctypes.c_int, P)
_sig("dnc_function_param", ctypes.c_int, P, ctypes.c_int,
     ctypes.POINTER(ParamInfo))
_sig("dnc_function_eval", ctypes.c_int, P, P, P, ctypes.c_size_t, c_double_p)
_sig("dnc_function_source", ctypes.c_size_t, P, ctypes.c_char_p,
     ctypes.c_size_t)
_sig("dnc_function_diff", ctypes.c_int, P, ctypes.c_char_p, ctypes.c_int,
     ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
     ctypes.POINTER(ctypes.c_size_t))
_sig("dnc_function_kernels", ctypes.c_int, P, ctypes.c_int, P)
_sig("dnc_fit_options_init", None, ctypes.POINTER(FitOptions))
_sig("dnc_function_fit", ctypes.c_int, P, P, P, ctypes.c_size_t, c_double_p,
     ctypes.POINTER(ctypes.c_int), ctypes.POINTER(FitOptions),
     ctypes.POINTER(FitResult))
_sig("dnc_function_fit_bounded", ctypes.c_int, P, P, P, ctypes.c_size_t,
     c_double_p, ctypes.POINTER(ctypes.c_int), c_double_p, c_double_p,
     ctypes.POINTER(FitOptions), ctypes.POINTER(FitResult),
     ctypes.POINTER(ctypes.c_int))
_sig("dnc_fit_result_free", None, ctypes.POINTER(FitResult))
_sig("dnc_forward", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), c_double_p)
_sig("dnc_backward", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), ctypes.POINTER(Tensor), c_double_p, c_double_p)
_sig("dnc_layer_forward", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), ctypes.POINTER(Layer))
_sig("dnc_layer_backward", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), ctypes.POINTER(Tensor), ctypes.POINTER(Layer),
     ctypes.POINTER(LayerGrad))
_sig("dnc_layer_forward_cm", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), ctypes.c_int64, ctypes.POINTER(Layer))
_sig("dnc_layer_backward_cm", ctypes.c_int, P, ctypes.POINTER(Tensor),
     ctypes.POINTER(Tensor), ctypes.POINTER(Tensor), ctypes.c_int64,
     ctypes.POINTER(Layer), ctypes.POINTER(LayerGrad))

if lib.dnc_abi_version() != ABI_VERSION:
    raise ImportError("dnc: %s has ABI %d; this package needs ABI %d"
                      % (path, lib.dnc_abi_version(), ABI_VERSION))


def text(fn, *args):
    """The whole text of an snprintf-style function fn(*args, buf, n)."""
    n = fn(*args, None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    fn(*args, buf, n + 1)
    return buf.value.decode()
