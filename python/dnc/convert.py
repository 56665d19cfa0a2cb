"""dnc.convert - replacing the normalization layers of whole models by
PointwiseNorm, as the DyT and Derf repositories do, and choosing the
initial parameter values per site (re-exported by dnc.torch).

    from dnc.torch import convert, convert_layernorm, convert_rmsnorm
    convert_layernorm(vit, "dyt")                   # LayerNorm and LayerNorm2d
    convert_rmsnorm(llama, "dyt", init={             # DyT's LLaMA 7B recipe
        "*attention_norm": {"alpha": 0.8},
        "*ffn_norm": {"alpha": 0.2}, "norm": {"alpha": 0.2}})
    convert(model, "derf", init=fit_initial(model, "derf", batches))

docs/python.md is the manual.
"""
import fnmatch
import inspect
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import torch as _dt

__all__ = ["convert", "convert_layernorm", "convert_rmsnorm", "find_norms",
           "fit_initial", "channels_first"]

_RMSNorm = getattr(nn, "RMSNorm", None)   # PyTorch >= 2.4


def channels_first(m, overrides=None):
    """Whether the nn.LayerNorm m normalizes over dimension 1 of an
    N x C x ... input (True) or over the last dimension (False). In order:
    overrides (a mapping from a class, or a class name, to a bool); a
    `data_format` or `channels_last` attribute (the ConvNeXt and DyT
    repositories' spelling); a class whose name ends in "LayerNorm2d"
    (torchvision's and timm's ConvNeXt); nn.LayerNorm's own forward (no);
    any other forward that calls permute or movedim (yes). A subclass with
    another forward is refused: say which it is through overrides."""
    for cls in type(m).__mro__:
        for key in (cls, cls.__name__):
            if overrides and key in overrides:
                return bool(overrides[key])
    fmt = getattr(m, "data_format", None)
    if fmt in ("channels_first", "channels_last"):
        return fmt == "channels_first"
    if isinstance(getattr(m, "channels_last", None), bool):
        return not m.channels_last
    if type(m).__name__.endswith("LayerNorm2d"):
        return True
    if type(m).forward is nn.LayerNorm.forward:
        return False
    try:
        src = inspect.getsource(type(m).forward)
    except (OSError, TypeError):
        src = ""
    if ".permute(" in src or "movedim(" in src:
        return True
    raise ValueError(
        "dnc.convert: %s subclasses nn.LayerNorm with its own forward, which "
        "does not permute: it is not clear which dimension it normalizes; "
        "pass channels_first_classes={%s: True or False}"
        % (type(m).__name__, type(m).__name__))


def _is_rmsnorm(m):
    if _RMSNorm is not None and isinstance(m, _RMSNorm):
        return True
    w = getattr(m, "weight", None)
    return (type(m).__name__.lower().endswith("rmsnorm") and
            isinstance(w, torch.Tensor) and w.dim() == 1 and
            getattr(m, "bias", None) is None)


def _kind(m, kind):
    """'layernorm', 'rmsnorm' or None: what converting for kind replaces."""
    if kind in ("layernorm", "all") and isinstance(m, nn.LayerNorm):
        return "layernorm"
    if kind in ("rmsnorm", "all") and _is_rmsnorm(m):
        return "rmsnorm"
    return None


def find_norms(model, kind="all"):
    """[(path, module, 'layernorm' or 'rmsnorm')] of model's norms that
    convert(kind=) replaces ('' is the model itself), in module order."""
    if kind not in ("layernorm", "rmsnorm", "all"):
        raise ValueError("kind is 'layernorm', 'rmsnorm' or 'all', not %r"
                         % (kind,))
    return [(p, m, _kind(m, kind)) for p, m in model.named_modules()
            if _kind(m, kind)]


def _shape(m, path):
    if isinstance(m, nn.LayerNorm) or (_RMSNorm is not None and
                                       isinstance(m, _RMSNorm)):
        shape = tuple(m.normalized_shape)
    else:
        shape = (m.weight.shape[0],)
    if len(shape) != 1:
        raise ValueError("dnc.convert: %s normalizes over %s; PointwiseNorm "
                         "covers one dimension: the last dimension only, or "
                         "dimension 1 (channels first)" % (
                             path or "the model", shape))
    return shape


def _site_values(init, path, m):
    """The initial values init gives the site at path: init is None, a
    mapping from fnmatch patterns of module paths to dicts (the first
    pattern that matches wins), or a callable (path, module) -> dict or
    None."""
    if init is None:
        return {}
    if callable(init):
        v = init(path, m)
        return dict(v) if v else {}
    for pattern, v in init.items():
        if fnmatch.fnmatchcase(path, pattern):
            return dict(v)
    return {}


def convert(model, fn, module=None, *, kind="all", init=None,
            keep_affine=False, channels_first_classes=None, threads=None,
            **defaults):
    """Replaces model's normalization layers (model itself included) by
    PointwiseNorm modules of fn and returns the converted model. kind:
    'layernorm' (nn.LayerNorm and its subclasses, channels-first ones
    recognised by channels_first()), 'rmsnorm' (nn.RMSNorm and classes
    named *RMSNorm with a 1-D weight and no bias: weight-only
    PointwiseNorm, as the DyT repository's convert_rms_to_dyt) or 'all'.
    init: per-site initial parameter values (a mapping from module-path
    patterns to dicts, or a callable (path, module) -> dict), over
    **defaults, which apply to every site. keep_affine: copy the norm's
    weight and bias. channels_first_classes: {class or class name: bool}
    for LayerNorm subclasses whose layout cannot be told."""
    fn = _dt.resolve(fn, module, threads)
    sites = {id(m): (p, k) for p, m, k in find_norms(model, kind)}
    made = {}  # id of a norm -> its PointwiseNorm: a shared norm stays shared

    def replace(m, path):
        site = sites.get(id(m))
        if site is None:
            return m
        if id(m) in made:
            return made[id(m)]
        k = site[1]
        shape = _shape(m, path)
        w = getattr(m, "weight", None)
        b = getattr(m, "bias", None) if k == "layernorm" else None
        cf = k == "layernorm" and channels_first(m, channels_first_classes)
        values = dict(defaults)
        values.update(_site_values(init, path, m))
        try:
            out = _dt.PointwiseNorm(
                shape, fn, elementwise_affine=w is not None,
                bias=b is not None, channels_last=not cf, threads=threads,
                dtype=w.dtype if w is not None else None,
                device=w.device if w is not None else None, **values)
        except (TypeError, ValueError) as e:
            raise type(e)("dnc.convert: %s: %s" % (path or "the model", e))
        if keep_affine and w is not None:
            with torch.no_grad():
                out.weight.copy_(w)
                if b is not None:
                    out.bias.copy_(b)
        out.train(m.training)
        made[id(m)] = out
        return out

    def walk(m, path):
        out = replace(m, path)
        # every name, also a second one for the same module (which
        # named_children() leaves out); each module's children once
        if out is m and id(m) in walked:
            return out
        walked.add(id(m))
        for name, child in list(m._modules.items()):
            if child is not None:
                out.add_module(name, walk(child, path + "." + name
                                          if path else name))
        return out

    walked = set()

    out = walk(model, "")
    # nn.TransformerEncoder decides at construction whether its eval-mode
    # fast path packs the batch into a nested tensor, from its layers'
    # LayerNorms: that path computes LayerNorm itself. Its layers' own fast
    # path declines by PointwiseNorm.eps (NaN); this one is switched off.
    for m in out.modules():
        if isinstance(m, nn.TransformerEncoder) and any(
                isinstance(n, _dt.PointwiseNorm) for n in m.layers.modules()):
            if hasattr(m, "use_nested_tensor"):
                m.use_nested_tensor = False
            m.enable_nested_tensor = False
    return out


def convert_layernorm(model, fn, module=None, *, keep_affine=False,
                      init=None, channels_first_classes=None, threads=None,
                      **defaults):
    """convert(kind='layernorm'): every nn.LayerNorm, channels-first
    subclasses (ConvNeXt's LayerNorm2d) with channels_last=False."""
    return convert(model, fn, module, kind="layernorm", init=init,
                   keep_affine=keep_affine, threads=threads,
                   channels_first_classes=channels_first_classes, **defaults)


def convert_rmsnorm(model, fn, module=None, *, keep_affine=False, init=None,
                    threads=None, **defaults):
    """convert(kind='rmsnorm'): nn.RMSNorm and *RMSNorm classes become
    weight-only PointwiseNorm modules (no bias)."""
    return convert(model, fn, module, kind="rmsnorm", init=init,
                   keep_affine=keep_affine, threads=threads, **defaults)


# ------------------------------------------------------- fitted initial values

def _normalized(m, kind, x, cf, eps):
    """What the norm m computes before its affine part, for input x."""
    x = x.detach().double()
    if cf:
        x = x.movedim(1, -1)
    if kind == "layernorm":
        y = F.layer_norm(x, x.shape[-1:], eps=eps)
    else:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x.reshape(-1), y.reshape(-1)


def fit_initial(model, fn, batches, module=None, *, kind="all",
                params=None, max_points=20000, channels_first_classes=None,
                seed=0):
    """Per-site initial values for convert(init=...), fitted to what each
    norm of the unconverted model does: runs model on batches (an iterable
    of inputs, or of tuples of positional arguments), records every
    LayerNorm's / RMSNorm's inputs, and fits fn's scalar parameters (or
    those named in params) by least squares so that f(x) matches the norm's
    output before its affine part, per site. Returns {path: {name: value}}
    (a mapping convert's init takes as it is: paths are exact patterns).
    Each site uses at most max_points (x, y) pairs, sampled evenly. The
    solver is dnc's own (Function.fit: `dnc fit`'s Levenberg-Marquardt with
    the symbolic Jacobian, in libdnc); a site where it cannot fit (f not
    finite at a point, a parameter the points do not determine) is a
    ValueError naming it, one that did not converge a warning."""
    fn = _dt.resolve(fn, module)
    scalar = [p.name for p in fn.params if p.kind == "scalar"]
    names = list(params) if params is not None else scalar
    bad = [n for n in names if n not in scalar]
    if bad:
        raise ValueError("fit_initial fits scalar parameters of %s (%s), "
                         "not %s" % (fn.name, ", ".join(scalar) or "none",
                                     ", ".join(bad)))
    if not names:
        raise ValueError("fit_initial: %s has no scalar parameter to fit"
                         % fn.name)
    sites = find_norms(model, kind)
    if not sites:
        raise ValueError("fit_initial: the model has no %s to fit to"
                         % ("LayerNorm or RMSNorm" if kind == "all" else kind))
    xs = {p: [] for p, _, _ in sites}
    ys = {p: [] for p, _, _ in sites}
    hooks = []
    for path, m, k in sites:
        cf = k == "layernorm" and channels_first(m, channels_first_classes)
        # nn.LayerNorm's and nn.RMSNorm's eps (None: the input dtype's
        # machine epsilon, as nn.RMSNorm(eps=None) computes), Hugging
        # Face's variance_epsilon, else 1e-6
        if hasattr(m, "eps"):
            eps = m.eps
        else:
            eps = getattr(m, "variance_epsilon", 1e-6)

        def hook(mod, args, out, path=path, k=k, cf=cf, eps=eps):
            if eps is None:
                eps = torch.finfo(args[0].dtype).eps
            x, y = _normalized(mod, k, args[0], cf, eps)
            xs[path].append(x)
            ys[path].append(y)
        hooks.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for b in batches:
                model(*b) if isinstance(b, (tuple, list)) else model(b)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    gen = np.random.default_rng(seed)
    start = {p.name: p.default for p in fn.params}
    out = {}
    for path, _, _ in sites:
        if not xs[path]:
            raise ValueError("fit_initial: the batches never reached %s"
                             % (path or "the model"))
        x = torch.cat(xs[path]).numpy()
        y = torch.cat(ys[path]).numpy()
        if len(x) > max_points:
            idx = np.sort(gen.choice(len(x), max_points, replace=False))
            x, y = x[idx], y[idx]
        r = fn.fit(x, y, params=names, start=start)
        if r.status in ("maxiter", "stalled"):
            warnings.warn("fit_initial: the fit of %s at %s did not converge "
                          "(%s); its values are the best found"
                          % (fn.name, path or "the model", r.message))
        elif not r.converged:
            raise ValueError("fit_initial: %s cannot be fitted at %s: %s%s"
                             % (fn.name, path or "the model", r.message,
                                " (parameter %s)" % r.bad_param
                                if r.bad_param else ""))
        out[path] = {n: r.values[n] for n in names}
    return out
