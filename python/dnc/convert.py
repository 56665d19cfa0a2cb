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
import contextlib
import copy
import fnmatch
import gc
import inspect
import itertools
import re
import sys
import warnings
import weakref
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize, prune

__all__ = ["convert", "convert_layernorm", "convert_rmsnorm", "find_norms",
           "fit_initial", "channels_first", "no_weight_decay",
           "from_pretrained"]

_RMSNorm = getattr(nn, "RMSNorm", None)   # PyTorch >= 2.4


def _guess(m, overrides):
    """(channels first: True, False or None when the class does not tell,
    whether the caller's overrides said so), from m's class and its
    forward's source, as channels_first documents."""
    # an override names the class whose forward m runs, or a subclass
    # of it: {"LayerNorm": False}, meant for timm's LayerNorm, is not
    # nn.LayerNorm's for timm's LayerNorm2d, which has a forward of its own
    for cls in type(m).__mro__:
        for key in (cls, cls.__name__):
            if overrides and key in overrides:
                return bool(overrides[key]), True
        if "forward" in vars(cls):
            break
    fmt = getattr(m, "data_format", None)
    if fmt in ("channels_first", "channels_last"):
        return fmt == "channels_first", False
    if isinstance(getattr(m, "channels_last", None), bool):
        return not m.channels_last, False
    if type(m).__name__.endswith("LayerNorm2d"):
        return True, False
    if type(m).forward is nn.LayerNorm.forward:
        return False, False
    src = _forward_source(m)
    # moving dimension 1 last: permute(0, 2, 3, 1), movedim(1, -1); a
    # permute that keeps the last dimension last (sequence first,
    # permute(1, 0, 2)) is not channels first
    perms = [[a.strip() for a in p.split(",")] for p in
             re.findall(r"\.permute\(([^()]*)\)", src)]
    if any(p and p[-1] == "1" for p in perms) or \
            re.search(r"movedim\(\s*1\s*,", src):
        return True, False
    # (an nn.LayerNorm subclass too: timm's LayerNorm, fast_layer_norm)
    if not perms and not re.search(r"movedim\(|transpose\(|rearrange\(|"
                                   r"einsum\(|\.T\b|\.mT\b", src) \
            and re.search(r"layer_norm\(|mean\(\s*(dim\s*=\s*)?-1\b", src):
        return False, False  # written from scratch, over the last dim
    return None, False


def _unclear(m, path=None):
    cls = type(m)
    return ValueError(
        "dnc.convert: %s%s has a forward of its own, from which it is not "
        "clear which dimension it normalizes; pass "
        "channels_first_classes={%s: True or False} (the class %s.%s or "
        "its name: an override given for a base class, nn.LayerNorm say, "
        "does not reach a subclass with a forward of its own)"
        % (path + ": " if path else "", cls.__name__, cls.__name__,
           cls.__module__, cls.__qualname__))


def channels_first(m, overrides=None):
    """Whether the LayerNorm (or RMSNorm) m normalizes over dimension 1 of
    an N x C x ... input (True) or over the last dimension (False). In
    order: overrides (a mapping from a class, or a class name, to a bool:
    the class that defines m's forward, or a subclass of it);
    a `data_format` or `channels_last` attribute (the ConvNeXt and DyT
    repositories' spelling); a class whose name ends in "LayerNorm2d"
    (torchvision's and timm's ConvNeXt); nn.LayerNorm's own forward (no);
    any other forward that moves dimension 1 last, permute(..., 1) or
    movedim(1, ...) (yes); a LayerNorm written from scratch whose forward
    calls layer_norm( or mean(-1 and does not permute or transpose (no).
    A class other than nn.LayerNorm and nn.RMSNorm is then run on probe
    inputs (_probe): what it computes decides where the class does not
    tell (timm's LayerNorm, whose forward calls fast_layer_norm) and where
    the class's guess is wrong; an override it contradicts is a
    ValueError. A forward neither tells nor runs on a probe is refused:
    say which it is through overrides."""
    k = "layernorm" if _is_layernorm(m) else \
        "rmsnorm" if _is_rmsnorm(m) else None
    if k is None:  # no norm convert replaces: the class's word alone
        guess, _ = _guess(m, overrides)
        if guess is None:
            raise _unclear(m)
        return guess
    site = _site(m, type(m).__name__, k, overrides)
    if isinstance(site, str):
        guess, forced = _guess(m, overrides)
        if guess is None:
            raise ValueError("dnc.convert: %s: %s" % (type(m).__name__,
                                                       site))
        return guess
    return site.cf


def _vec(m, name):
    """m's 1-D weight, bias or scale (a parameter, or a parametrization's
    value), or None. Not a buffer: a PointwiseNorm's are parameters, and a
    buffer is a constant or not used at all (FalconMamba's
    FalconMambaWeightlessRMSNorm holds a weight of ones, unused, of
    another width than it normalizes: converted with that weight, the
    model's first call failed); such a norm stays, with a warning saying
    why (_why_unknown)."""
    if name in m._buffers:
        return None
    t = getattr(m, name, None)
    return t if isinstance(t, torch.Tensor) and t.dim() == 1 else None


def _buffered(m):
    """The names of m's weight, bias and scale that are buffers."""
    return [n for n in ("weight", "bias", "scale")
            if m._buffers.get(n) is not None]


def _scale(m):
    """A norm's per-channel scale: its weight, or torchtune's `scale`."""
    w = _vec(m, "weight")
    return w if w is not None else _vec(m, "scale")


def _leaf(m):
    """No child modules, torch.nn.utils.parametrize's container of a
    parametrized weight (weight_norm) aside."""
    return all(n == "parametrizations" and parametrize.is_parametrized(m)
               for n, _ in m.named_children())


def _forward_source(m):
    try:
        return inspect.getsource(type(m).forward)
    except (OSError, TypeError):
        return ""


def _is_layernorm(m):
    """nn.LayerNorm and its subclasses, and LayerNorms written from scratch
    as the ConvNeXt repositories' LayerNorm (its data_format) and
    Hugging Face's ConvNextLayerNorm are: a leaf module whose class name
    has "LayerNorm" in it, with a 1-D weight and a bias of its shape (or
    none, calling layer_norm or subtracting the mean by hand: Cohere's),
    or without parameters, calling layer_norm over its normalized_shape
    (OLMo's OlmoLayerNorm). Not one whose weight or bias has another
    shape than its normalized_shape (_misfit)."""
    if isinstance(m, nn.LayerNorm):
        # (a weight or bias held as a buffer: not one, _why_unknown says
        # why; it had been converted with a weight of ones, its values
        # dropped silently)
        return _misfit(m) is None and not _buffered(m)
    if isinstance(m, _OTHER_NORMS):
        # ml-cvnets' LayerNorm2D_NCHW is an nn.GroupNorm(1, C): set aside
        # by its class, as group norms are (the probe refused it with a
        # misleading reason)
        return False
    w, b = _vec(m, "weight"), _vec(m, "bias")
    if not ("layernorm" in type(m).__name__.lower() and _leaf(m)):
        return False
    if w is None:
        # a LayerNorm without parameters that calls layer_norm (OLMo's
        # OlmoLayerNorm: F.layer_norm(x, self.normalized_shape, None,
        # None)): a PointwiseNorm without weight and bias; it was 'not
        # recognised', and an OLMo model had nothing to convert
        return _bare_shape(m) is not None and \
            "layer_norm(" in _forward_source(m)
    if b is not None:
        return b.shape == w.shape
    if getattr(m, "bias", None) is not None:
        return False
    # a bias-free LayerNorm that calls layer_norm (nanoGPT's bias=False):
    # the probe checks that it computes weight * layernorm(x); one that
    # computes it by hand (Cohere's CohereLayerNorm) by what it computes
    return "layer_norm(" in _forward_source(m) or _centres(m) is True


def _misfit(m):
    """(name, shape) of the weight or bias of m, an nn.LayerNorm or
    nn.RMSNorm (or a subclass), whose shape is not m's normalized_shape,
    or None. Chameleon's ChameleonLayerNorm normalizes over head_dim
    (normalized_shape (head_dim,)) and scales by a weight and bias of
    [heads, head_dim], one per head and channel: converted as its class
    says, a PointwiseNorm over head_dim had one weight for every head (the
    per-head affine part lost, silently), and keep_affine failed copying
    it, naming no module."""
    ns = getattr(m, "normalized_shape", None)
    if not isinstance(ns, (tuple, list, torch.Size)):
        return None
    for name in ("weight", "bias"):
        t = getattr(m, name, None)
        if isinstance(t, torch.Tensor) and tuple(t.shape) != tuple(ns):
            return name, tuple(t.shape)
    return None


def _centres(m):
    """Whether m, a bias-free norm with a 1-D weight, subtracts the mean of
    what it normalizes: a copy of it with weight 1 gives the same output
    for x and x + 3 (Cohere's CohereLayerNorm, weight * (x - mean) / std,
    is a LayerNorm without bias, though no layer_norm call says so; an
    RMSNorm's output moves). None where the copy cannot run."""
    w = _vec(m, "weight")
    try:
        cp = _cpu_copy(m) if w.is_meta else copy.deepcopy(m)
        if isinstance(cp, str):
            return None
        w = _vec(cp, "weight")
        with torch.no_grad():
            w.fill_(1)
        g = torch.Generator().manual_seed(0)
        # quarters: x + 3 is exact in every float dtype
        x = (torch.randint(-8, 9, (2, 3, w.shape[0]), generator=g) / 4.0
             ).to(dtype=w.dtype, device=w.device)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            y0, y1 = cp.forward(x), cp.forward(x + 3)
        if not (isinstance(y0, torch.Tensor) and isinstance(y1, torch.Tensor)
                and y0.shape == y1.shape == x.shape):
            return None
        y0, y1 = y0.detach().double().cpu(), y1.detach().double().cpu()
    except Exception:  # whatever a copy of m does with a test input
        return None
    tol = 1e-3 if w.dtype in (torch.float32, torch.float64) else 3e-2
    return bool((y0 - y1).abs().max() <= tol * (1 + y0.abs().max()))


def _bare_shape(m):
    """The normalized_shape of a norm without parameters (OLMo's
    OlmoLayerNorm), as a tuple, or None: m has a weight, a bias or other
    parameters, or no normalized_shape of integers."""
    if getattr(m, "weight", None) is not None or \
            getattr(m, "bias", None) is not None or \
            next(m.parameters(), None) is not None:
        return None
    ns = getattr(m, "normalized_shape", None)
    if isinstance(ns, (int, np.integer)):
        ns = (ns,)
    if isinstance(ns, (tuple, list, torch.Size)) and ns and \
            all(isinstance(n, (int, np.integer)) for n in ns):
        return tuple(int(n) for n in ns)
    return None


def _is_rmsnorm(m):
    """nn.RMSNorm; leaf classes named *RMSNorm with a 1-D weight (or
    torchtune's `scale`) and no bias; and a bias-free *LayerNorm* class
    whose forward does not call layer_norm and does not subtract the mean
    (Hugging Face's T5LayerNorm: an RMSNorm by another name). Not an
    nn.RMSNorm whose weight has another shape than its normalized_shape
    (_misfit)."""
    if _RMSNorm is not None and isinstance(m, _RMSNorm):
        return _misfit(m) is None and not _buffered(m)
    if isinstance(m, (nn.LayerNorm,) + _OTHER_NORMS) or not _leaf(m) or \
            getattr(m, "bias", None) is not None:
        return False
    name = type(m).__name__.lower()
    # timm's RmsNormFp32 and RmsNorm2d(Fp32) too: the probe finds the layout
    if re.search(r"rmsnorm(2d)?(fp32)?$", name):
        return _scale(m) is not None or _weightless_rms(m)
    return "layernorm" in name and _vec(m, "weight") is not None and \
        "layer_norm(" not in _forward_source(m) and _centres(m) is not True


def _weightless_rms(m):
    """Whether m, a leaf *RMSNorm class, has no parameters at all and
    computes an RMSNorm (over the last dimension or dimension 1) on a
    probe input: Hugging Face's NanoChatRMSNorm, Llama4's
    Llama4TextWeightlessRMSNorm (qk_norm), Gemma3n's Gemma3nRMSNorm(
    with_scale=False) (v_norm). They were never converted (a NanoChat
    model was refused, 'no LayerNorm or RMSNorm to replace'), where
    nn.RMSNorm(elementwise_affine=False) was."""
    if next(m.parameters(), None) is not None or \
            getattr(m, "weight", None) is not None:
        return False
    found = _probe(m, "rmsnorm", _width_of(m) or 8)
    return not isinstance(found, str) and \
        any(base == "rmsnorm" for _, base, _ in found[0])


def _width_of(m):
    """The width of m, a norm without parameters, where it records one:
    its normalized_shape (of one dimension) or an int hidden_size; else
    None. (Not an attribute named dim, which names an axis as often as a
    width.) NanoChat's, Llama4's and Gemma3n's weightless RMSNorms record
    none."""
    ns = _bare_shape(m)
    if ns is not None:
        return ns[0] if len(ns) == 1 else None
    h = getattr(m, "hidden_size", None)
    return int(h) if isinstance(h, (int, np.integer)) and \
        not isinstance(h, bool) and h > 0 else None


# norms that are not dnc's to replace: they normalize over the batch or
# over groups of channels
_OTHER_NORMS = tuple(c for c in (
    getattr(nn.modules.batchnorm, "_NormBase", None), nn.GroupNorm,
    nn.LocalResponseNorm, getattr(nn, "CrossMapLRN2d", None)) if c)


def _kind(m, kind):
    """'layernorm', 'rmsnorm' or None: what converting for kind replaces."""
    if kind in ("layernorm", "all") and _is_layernorm(m):
        return "layernorm"
    if kind in ("rmsnorm", "all") and _is_rmsnorm(m):
        return "rmsnorm"
    return None


def _unknown_norm(m):
    """A leaf module named like a norm (*Norm, *Norm2d, *NormGated) that is
    neither a LayerNorm nor an RMSNorm dnc recognises, nor a batch, group
    or local-response norm: convert warns that it stays."""
    name = type(m).__name__.lower()
    # a norm with its activation (timm's RmsNormAct2d: act, drop) has
    # children; another module named *Norm with children is a container
    # (a PreNorm wrapper) whose norm inside is converted
    # (a module named *NormAct with children but no weight of its own is
    # a block around a norm, timm's ConvNormAct: conv, bn, act; its batch
    # norm is no LayerNorm, and it is no norm to replace by hand; one
    # with a weight of its own is a norm with its activation, named
    # *Fp32 too: timm's RmsNormActFp32 and RmsNormAct2dFp32 were taken for
    # containers and left without a word)
    if isinstance(m, (_dt.PointwiseNorm,) + _OTHER_NORMS) or \
            (not _leaf(m) and not (re.search(r"normact(\dd)?(fp32)?$",
                                             name) and
                                   "weight" in m._parameters)):
        return False
    if _is_layernorm(m) or _is_rmsnorm(m):
        return False
    # batch, group and instance norms by name too (torchvision's
    # FrozenBatchNorm2d is not an nn.BatchNorm); the gated RMSNorms of
    # Mamba2 and its kin (forward(x, gate=None)) are warned about: a
    # PointwiseNorm takes x alone
    # timm's *NormFp32, *NormAct, *NormAct2d as well; response norms
    # aside, local (nn.LocalResponseNorm) and global (ConvNeXt V2's GRN,
    # timm's GlobalResponseNorm: x + gamma * x * N(x) + beta, with N(x)
    # over the spatial dimensions; no norm a PointwiseNorm replaces,
    # which the warning had advised doing by hand)
    return re.search(r"norm(\dd)?(act(\dd)?)?(gated)?(fp32)?$", name) \
        is not None and \
        not re.search(r"batch|group|instance|response", name)


def _why_unknown(m):
    """Why the norm m (_unknown_norm) stays, where its class tells, or
    None: a forward that takes more than the input (Mamba2's gated
    RMSNorm, forward(x, gate)), a weight of more than one dimension (the
    per-head q/k norms of Cohere, weight [heads, head_dim])."""
    extra = _extra_inputs(m)
    if extra:
        return ("its forward takes %s besides the input (a gated or fused "
                "norm): a PointwiseNorm takes the input alone"
                % ", ".join(extra))
    if isinstance(m, (nn.LayerNorm,) + ((_RMSNorm,) if _RMSNorm else ())):
        misfit = _misfit(m)
        if misfit is not None:
            ns = tuple(m.normalized_shape)
            return ("its %s is %s where it normalizes over %s (its "
                    "normalized_shape): an affine part per head as well as "
                    "per channel (Chameleon's per-head q/k norms), which a "
                    "PointwiseNorm's %s of %s cannot hold"
                    % (misfit[0], list(misfit[1]), list(ns), misfit[0],
                       list(ns)))
    held = _buffered(m)
    if held:
        return ("its %s %s a buffer, not a parameter (a constant, or unused: "
                "FalconMamba's FalconMambaWeightlessRMSNorm holds a weight "
                "of ones it does not use, of another width than it "
                "normalizes), which a PointwiseNorm, whose weight and bias "
                "are trained, would not keep so"
                % (" and ".join(held), "is" if len(held) == 1 else "are"))
    w = getattr(m, "weight", None)
    if isinstance(w, torch.Tensor) and w.dim() > 1:
        return ("its weight is %d-D %s: a PointwiseNorm's weight has one "
                "dimension" % (w.dim(), list(w.shape)))
    return None


def _unrecognised(model):
    """The norms convert does not recognise in model, as 'path (Class)'
    (': why' where _why_unknown tells), and advice for the others;
    ('', '') where there are none."""
    items, plain = {}, False
    for p, m in _named_layers(model):
        if _unknown_norm(m):
            why = _why_unknown(m)
            plain = plain or why is None
            items["%s (%s)" % (p or "the model", type(m).__name__)] = why
    if not items:
        return "", ""
    reasons = any(w is not None for w in items.values())
    text = ("; " if reasons else ", ").join(
        k if w is None else "%s: %s" % (k, w) for k, w in sorted(items.items()))
    advice = (" (a LayerNorm needs a 1-D weight and bias, an RMSNorm a 1-D "
              "weight and no bias, or no parameters at all and a forward "
              "that computes one; replace %s by hand with PointwiseNorm)"
              % ("these" if not reasons else "those without a reason")
              if plain else "")
    return text, advice


def _named_layers(model):
    """model.named_modules() less the modules of torch.nn.utils.parametrize
    (weight_norm's _WeightNorm is not a layer of the model)."""
    inner = {id(p) for pl in model.modules()
             if isinstance(pl, parametrize.ParametrizationList) for p in pl}
    return [(p, m) for p, m in model.named_modules() if id(m) not in inner]


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
    elif _scale(m) is not None:
        shape = (_scale(m).shape[0],)
    elif _bare_shape(m) is not None:  # without parameters (OLMo's)
        shape = _bare_shape(m)
    else:
        # an RMSNorm without parameters that records no width (NanoChat's,
        # _weightless_rms): None, whatever width the input has; convert
        # refuses it where f has a per-channel parameter
        w = _width_of(m)
        return (w,) if w is not None else None
    if len(shape) != 1:
        raise ValueError("dnc.convert: %s normalizes over %s; PointwiseNorm "
                         "covers one dimension: the last dimension only, or "
                         "dimension 1 (channels first)" % (
                             path or "the model", shape))
    return shape


def _site_values(init, path, m):
    """The initial values init gives the site at path: init is None, a
    mapping from module paths or fnmatch patterns of them to dicts (the
    path itself first, whatever characters it has: fit_initial's keys are
    paths, and a ModuleDict key such as 'a[1]' or 'b*' read as a pattern
    matched another site or none; else the first pattern that matches),
    or a callable (path, module) -> dict or None."""
    if init is None:
        return {}
    if callable(init):
        v = init(path, m)
        return dict(v) if v else {}
    if path in init:
        return dict(init[path])
    for pattern, v in init.items():
        if fnmatch.fnmatchcase(path, pattern):
            return dict(v)
    return {}


def _shared_values(init, paths, m):
    """_site_values of a norm registered under several paths (one module
    at two places, which becomes one PointwiseNorm): what any of its paths
    is given, the same for all; two different values are refused (a key
    for the second path was accepted by _check_init, then ignored)."""
    given = [(p, v) for p, v in ((p, _site_values(init, p, m))
                                 for p in paths) if v]
    for p, v in given[1:]:
        if v != given[0][1]:
            raise ValueError(
                "dnc.convert: the norm at %s is also at %s, and init gives "
                "the two places different values (%r and %r): a shared norm "
                "becomes one PointwiseNorm; give it one" % (
                    given[0][0] or "the model", p or "the model",
                    given[0][1], v))
    return given[0][1] if given else {}


def _around(model, path):
    """The parameters of the nearest module above path that has any: what
    tells whether a norm without parameters of its own sits in a frozen
    part of the model (OLMo's LayerNorm without weight, in a backbone
    frozen with requires_grad_(False))."""
    while path:
        path = path.rpartition(".")[0]
        own = list(model.get_submodule(path).parameters())
        if own:
            return own
    return []


def _check_init(init, model):
    """Refuses keys of a mapping init that are no norm's path and match
    none as patterns: a typo would leave every site at the defaults,
    silently."""
    if init is None or callable(init):
        return
    ids = {id(m) for _, m, _ in find_norms(model, "all")}
    paths = [p for p, m in model.named_modules(remove_duplicate=False)
             if id(m) in ids]
    unused = [k for k in init if k not in paths and
              not any(fnmatch.fnmatchcase(p, k) for p in paths)]
    if unused:
        raise ValueError(
            "dnc.convert: init's %s match%s no norm of the model (its "
            "norms: %s)" % (", ".join(repr(k) for k in unused),
                            "es" if len(unused) == 1 else "",
                            ", ".join(p or "the model" for p in paths)))


def _eps(m):
    """nn.LayerNorm's and nn.RMSNorm's eps (None: the input dtype's
    machine epsilon, as nn.RMSNorm(eps=None) computes), Hugging Face's
    variance_epsilon, else 1e-6"""
    if hasattr(m, "eps"):
        return m.eps
    return getattr(m, "variance_epsilon", 1e-6)


class _Site:
    """How a norm is converted: cf (over dimension 1), base ('layernorm'
    or 'rmsnorm': what it computes before its affine part, fit_initial's
    target), offset (it scales by 1 + weight; None where no probe ran),
    failed (why the probe could not run, or None)."""

    def __init__(self, cf, base, offset, failed=None):
        self.cf, self.base, self.offset, self.failed = cf, base, offset, \
            failed


def _exact(m):
    return type(m) is nn.LayerNorm or (_RMSNorm is not None and
                                       type(m) is _RMSNorm)


def _weights(m, k):
    """m's weight (RMSNorm: or torchtune's scale) and, for a LayerNorm, its
    bias."""
    w = _scale(m) if k == "rmsnorm" else _vec(m, "weight")
    b = _vec(m, "bias") if k == "layernorm" else None
    return w, b


def _probe(m, k, c):
    """What m's forward computes on probe inputs: ([(cf, base, offset)],
    doubts), each a layout (cf: over dimension 1 of 2 x C x 3 x 5 and 2 x
    C x 3, else over the last of 2 x 3 x C and 2 x 3 x 5 x C) and a
    normalization (base) whose weight * base(x) (+ bias; offset: (1 +
    weight), Gemma's RMSNorms, Nemotron's LayerNorm1P) m reproduces on
    every probe of that layout that runs (on the meta device: those of a
    CPU copy with test values, _cpu_copy); doubts: {cf: (reason, the
    class may settle it)} for a layout found on one rank that the other
    does not confirm (over dimension 1 of a 3-D probe, where no 4-D one
    ran: dimension -2 too; a probe of the other rank that ran and computes
    something else); a string saying why m ran on no probe instead (it
    raised; on the meta device, a copy could not be probed)."""
    ref = next((t for t in itertools.chain(m.parameters(), m.buffers())
                if t.is_floating_point()), None)
    here = contextlib.nullcontext()
    if ref is not None and ref.is_meta:
        m = _cpu_copy(m)
        if isinstance(m, str):
            return m
        ref = next(t for t in m.parameters() if t.is_floating_point())
        if hasattr(torch.device, "__enter__"):
            # convert called inside `with torch.device("meta")`: the
            # tensors the copy's forward makes on the CPU too
            here = torch.device("cpu")
    w, b = _weights(m, k)
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    device = ref.device if ref is not None else None
    tol = 1e-3 if dtype in (torch.float32, torch.float64) else 3e-2
    s1, s2 = [n for n in (3, 5, 7, 2, 11) if n != c][:2]
    g = torch.Generator().manual_seed(0)
    # every probe runs, both ranks of each layout: a layout is what the
    # probes of it that run agree on. With the first probe of a layout
    # alone, a norm whose layout depends on the rank showed one layout
    # (x.transpose(1, 2) around a layer_norm over C: dimension 1 of [N, C,
    # L], yet the last of a 4-D probe), and one over dimension -2
    # (transpose(-1, -2)), which only the 3-D probe over dimension 1 ran,
    # was made a norm over dimension 1, silently
    probes = [(False, (2, s1, c)), (False, (2, s1, s2, c)),
              (True, (2, c, s1, s2)), (True, (2, c, s1))]
    scales = [(False, w)]
    # (1 + weight): Gemma's RMSNorms; a LayerNorm whose source says so,
    # Nemotron's LayerNorm1P (not every LayerNorm: at weight 1 and bias 0,
    # 2 * layer_norm(x) would pass for it)
    if w is not None and (k == "rmsnorm" or _offset_in_source(m)):
        scales.append((True, 1 + w.detach()))
    # a LayerNorm by its class may compute an RMSNorm and add a bias
    # (OLMo's RMSLayerNorm with bias_for_layer_norm): fit_initial then
    # fits RMSNorm's output, as for the class without the bias
    bases = ("rmsnorm", "layernorm") if k == "rmsnorm" else \
        ("layernorm", "rmsnorm")
    eps = _eps(m)
    eps = torch.finfo(dtype).eps if eps is None else eps
    failed = []
    seen = {False: {}, True: {}}  # cf -> {rank: [(base, offset)] matched}
    for cf, shape in probes:
        x = torch.randn(shape, generator=g, dtype=torch.float64,
                        device="cpu").to(dtype)
        try:
            # forward, not __call__: not the hooks (the caller's own);
            # the caller's random numbers as they were (a dropout inside)
            with torch.no_grad(), torch.random.fork_rng(devices=[]), here:
                y = m.forward(x.to(device))
        except Exception as e:  # whatever m does with a probe it cannot take
            failed.append("%s: %s" % (type(e).__name__, e))
            continue
        matched = seen[cf].setdefault(len(shape), [])
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            continue
        y = y.detach().double().cpu()
        for base in bases:
            _, want = _normalized(base, x, cf, eps)
            for offset, scale in scales:
                z = want if scale is None else \
                    want * scale.detach().double().cpu()
                if b is not None:
                    z = z + b.detach().double().cpu()
                if cf:
                    z = z.movedim(-1, 1)
                if torch.allclose(y, z, rtol=tol, atol=tol):
                    matched.append((base, offset))
    if not seen[False] and not seen[True]:
        return "running it on a probe input failed (%s)" % failed[-1]
    found, doubts = [], {}
    for cf in (False, True):
        ranks = seen[cf]
        union = [bo for r in sorted(ranks) for bo in ranks[r]]
        if not union:
            continue
        common = [bo for bo in union if all(bo in v for v in ranks.values())]
        what = "%s over %s" % (union[0][0], "dimension 1" if cf
                               else "the last dimension")
        if not common:
            # a probe of the other rank ran, and computes something else
            shown, other = (3, 4) if ranks.get(3) else (4, 3)
            doubts[cf] = ("on a %d-D probe input it computes a %s, on a "
                          "%d-D one something else: what it normalizes "
                          "depends on the rank of its input, and a "
                          "PointwiseNorm normalizes the same dimension at "
                          "every rank" % (shown, what, other), False)
            common = union
        elif cf and 4 not in ranks:
            doubts[cf] = ("on a 3-D probe input [2, C, %d] it computes a %s, "
                          "but it does not run on a 4-D one [2, C, %d, %d] "
                          "(%s): dimension 1 of a 3-D input is dimension -2 "
                          "too, and nothing tells which it normalizes (a "
                          "PointwiseNorm over dimension 1 normalizes "
                          "dimension 1 at every rank)"
                          % (s1, what, s1, s2, failed[-1]), True)
        seen_here = set()
        for base, offset in common:
            if (base, offset) not in seen_here:
                seen_here.add((base, offset))
                found.append((cf, base, offset))
    return found, doubts


def _cpu_copy(m):
    """A copy of m, a norm on the meta device, on the CPU with test values
    (weight and scale from [0.5, 1.5], bias from [-0.5, 0.5]) for _probe
    to run: what it computes decides as on the CPU (a norm that computes
    something else was converted on meta as its class said, silently).
    A string saying why it cannot be probed instead: a parameter besides
    those, or a buffer, has no value a test could take."""
    why = "its parameters are on the meta device"
    other = [n for n, _ in m.named_parameters()
             if n not in ("weight", "bias", "scale")] + \
        [n for n, _ in m.named_buffers()]
    if other:
        return ("%s, and %s ha%s no values to probe it with"
                % (why, ", ".join(other), "s" if len(other) == 1 else "ve"))
    try:
        cp = copy.deepcopy(m).to_empty(device="cpu")
    except Exception as e:  # whatever a copy of m cannot do
        return "%s, and a copy of it on the CPU failed (%s: %s)" % (
            why, type(e).__name__, e)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, t in cp.named_parameters():
            lo = -0.5 if n == "bias" else 0.5
            t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64,
                               device="cpu") + lo)
    return cp


def _offset_in_source(m):
    """Whether the source of m's class (and of its bases up to nn.Module)
    scales by 1 + self.weight, as Gemma's RMSNorms do: what tells where no
    probe runs (a forward that raises; a norm on the meta device that
    _cpu_copy cannot copy with test values)."""
    for cls in type(m).__mro__:
        if cls.__module__.startswith("torch."):
            break
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if re.search(r"\b1(\.0*)?\s*\+\s*self\.weight\b|"
                     r"\bself\.weight(\.\w+\(\))?\s*\+\s*1\b", src):
            return True
    return False


def _wide_input(m, cf, c):
    """What m does with a float32 input when its parameters are bfloat16,
    and when they are float16, for the PointwiseNorm that replaces it to
    do the same (its _dnc_wide): "promote" (returns float32: nn.RMSNorm,
    Hugging Face's LlamaRMSNorm, which multiply by the weight in the
    promoted dtype), "params" (returns the parameters' dtype: T5's
    T5LayerNorm, which casts to its weight's dtype; T5 loaded in float16
    keeps its 'wo' layers in float32, whose output reaches the next norm
    so, and the converted model's call was a TypeError), or None
    (refuses it, as nn.LayerNorm; returns another dtype; has no
    parameters; cannot be run so); a pair (bfloat16's, float16's) where
    the two differ: a norm that casts to a bfloat16 weight's dtype only
    was probed in bfloat16 alone, and the converted norm of a float16
    model returned float16 where the norm had returned float32. A copy of
    m runs, in each dtype, on the CPU where m is on the meta device
    (_cpu_copy)."""
    held = [t for t in itertools.chain(m.parameters(), m.buffers())
            if t.is_floating_point()]
    if not held:
        return None
    here = contextlib.nullcontext()
    try:
        if any(t.is_meta for t in held):
            cp = _cpu_copy(m)
            if isinstance(cp, str):
                return None
            if hasattr(torch.device, "__enter__"):
                here = torch.device("cpu")
        else:
            cp = m
    except Exception:  # whatever a copy of m cannot do
        return None
    c = c or 8
    g = torch.Generator().manual_seed(0)
    # (float32 named: from_pretrained(dtype=torch.float16) makes the
    # model, and convert runs, under that default dtype)
    x = torch.randn((2, c, 3) if cf else (2, 3, c), generator=g,
                    dtype=torch.float32, device="cpu")
    said = []
    for dtype in (torch.bfloat16, torch.float16):
        try:
            half = copy.deepcopy(cp).to(dtype)
            device = next(t for t in itertools.chain(half.parameters(),
                                                     half.buffers())
                          if t.is_floating_point()).device
            # (quiet: nn.RMSNorm warns that such a call cannot be fused)
            with torch.no_grad(), torch.random.fork_rng(devices=[]), \
                    here, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = half.forward(x.to(device))
        except Exception:  # whatever m does with an input it does not take
            said.append(None)
            continue
        said.append({torch.float32: "promote", dtype: "params"}.get(
            y.dtype) if isinstance(y, torch.Tensor) else None)
    return said[0] if said[0] == said[1] else tuple(said)


def _extra_inputs(m):
    """The names of the inputs m's forward takes besides x (Mamba2's gated
    RMSNorm, forward(x, z=None); mamba_ssm's fused one, forward(x,
    residual=None, prenorm=False, ...)), or []: a PointwiseNorm takes x
    alone, so the model's call would fail, and with z=None the probe
    saw a plain RMSNorm."""
    try:
        sig = inspect.signature(type(m).forward)
    except (TypeError, ValueError):
        return []
    named = [q.name for q in list(sig.parameters.values())[1:]
             if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    return named[1:]


def _site(m, path, k, overrides):
    """m's _Site, or a string saying why m, a LayerNorm or RMSNorm by its
    class, is not converted (what it computes is neither over the last
    dimension nor over dimension 1); ValueError where an override
    contradicts what m computes, or nothing tells the layout."""
    if _exact(m):
        return _Site(False, k, False)
    extra = _extra_inputs(m)
    if extra:
        return ("its forward takes %s besides the input (a gated or fused "
                "norm, as Mamba2's): a PointwiseNorm takes the input alone, "
                "so the model's call would fail, and what it computes with "
                "them would be lost" % ", ".join(extra))
    w, _ = _weights(m, k)
    shape = _shape(m, path)
    c = shape[0] if shape is not None else 8  # (any width: a probe's)
    guess, forced = _guess(m, overrides)
    # a parameter besides its weight and bias (scale): the PointwiseNorm
    # has none for it. At its initial value (a gain of 1) the probe saw a
    # plain LayerNorm, and convert dropped it: it left the state_dict and
    # the training, silently
    own = [n for n, _ in m.named_parameters(recurse=False)
           if n not in ("weight", "bias", "scale")]
    if own and not forced:
        return ("its parameter%s %s, besides its weight and bias, would be "
                "lost (a PointwiseNorm holds f's parameters, a weight and a "
                "bias); channels_first_classes={%s: False (the last) or True "
                "(dimension 1)} converts it all the same, without %s"
                % ("s" if len(own) > 1 else "", ", ".join(own),
                   type(m).__name__, "them" if len(own) > 1 else "it"))
    found = _probe(m, k, c)
    doubts = {}
    if not isinstance(found, str):
        found, doubts = found
    name = type(m).__name__
    if isinstance(found, str):  # no probe ran: the class's word
        # children that compute (timm's LayerNormAct2d: act, drop) would be
        # lost, and no probe can say they are the identity
        extra = [n for n, c in m.named_children()
                 if n != "parametrizations" and
                 not isinstance(c, (nn.Identity, nn.Dropout))]
        if extra and not forced:
            return ("%s, and its child module%s %s may compute more than a "
                    "norm (an activation would be lost); pass "
                    "channels_first_classes={%s: ...} to convert it all the "
                    "same" % (found, "s" if len(extra) > 1 else "",
                              ", ".join(extra), name))
        if guess is None:
            # an RMSNorm is over the last dimension, as nn.RMSNorm, unless
            # its forward's source points at dimension 1 (mean(1),
            # dim=1, weight[:, None, None]): that one was converted over
            # the last dimension on the meta device, silently
            if k == "rmsnorm" and not re.search(
                    r"mean\(\s*(dim\s*=\s*)?1\b|dim\s*=\s*1\b|"
                    r"\[\s*:\s*,\s*None\s*,", _forward_source(m)):
                guess = False
            else:
                raise _unclear(m, path)
        return _Site(guess, k, True if _offset_in_source(m) else None,
                     found)
    if not found:
        if forced:
            return _Site(guess, k, None)
        return ("its output on a probe input is not weight * %s(x)%s "
                "over the last dimension nor over dimension 1: it computes "
                "something else (an activation after the norm, another "
                "scale), which a PointwiseNorm would not; "
                "channels_first_classes={%s: False (the last) or True "
                "(dimension 1)} converts it all the same, keeping only the "
                "norm" % (k, " + bias" if k == "layernorm" else "", name))
    layouts = {cf for cf, _, _ in found}
    if forced and guess not in layouts:
        raise ValueError(
            "dnc.convert: %s: channels_first_classes says %s normalizes "
            "over %s, but on a probe input it computes a %s over %s"
            % (path or "the model", name,
               "dimension 1" if guess else "the last dimension",
               found[0][1], "dimension 1" if found[0][0] else
               "the last dimension"))
    if len(layouts) == 1:
        cf = found[0][0]
    elif guess is not None:
        cf = guess  # a probe that cannot tell (a weight of zeros)
    else:
        raise _unclear(m, path)
    if cf in doubts and not forced and not (doubts[cf][1] and guess == cf):
        # (a class that says channels first, and takes 3-D inputs alone,
        # settles a layout that its 4-D probe could not confirm)
        raise ValueError(
            "dnc.convert: %s (%s): %s; pass channels_first_classes={%s: "
            "True (dimension 1) or False (the last)} to convert it all the "
            "same" % (path or "the model", name, doubts[cf][0], name))
    _, base, offset = next(f for f in found if f[0] == cf)
    return _Site(cf, base, offset)


def _affine(m, path, k, site, w, b):
    """The weight and bias that give m's affine part, for keep_affine:
    nn.LayerNorm's and nn.RMSNorm's own; for another class, as the probe
    found it: its weight, or 1 + weight where m scales by (1 + weight)
    (Gemma's RMSNorms, whose weight starts at 0); a ValueError when
    neither reproduces m."""
    if w.is_meta or _exact(m):
        return w, b  # no values to copy, nor to check
    if site.failed is not None:
        warnings.warn("dnc.convert: %s: %s, to check how %s applies its "
                      "weight; keep_affine copies %s"
                      % (path or "the model", site.failed, type(m).__name__,
                         "1 + its weight (its class's source scales by 1 + "
                         "weight)" if site.offset else
                         "its weight as it is"))
        return (1 + w.detach() if site.offset else w), b
    if site.offset is None:
        raise ValueError(
            "dnc.convert: %s: %s's output is neither weight * %s(x) nor "
            "(1 + weight) * %s(x)%s on a probe input: keep_affine cannot "
            "copy its affine part (convert with keep_affine=False)"
            % (path or "the model", type(m).__name__, k, k,
               " + bias" if b is not None else ""))
    return (1 + w.detach() if site.offset else w), b


def _offset_weight(module, state_dict, prefix, local_metadata, *args):
    """A load_state_dict pre-hook of a PointwiseNorm that replaced a norm
    scaling by (1 + weight) (Gemma's RMSNorms): a state_dict of that norm
    (the unconverted model's checkpoint, loaded into the converted model)
    loads 1 + weight, the scale the norm applied, as keep_affine copies
    it. Whose state_dict it is, PyTorch's metadata says: a PointwiseNorm's
    records its function (_STATE_FN), the norm's does not; else f's
    parameters in it say it is a PointwiseNorm's (of an earlier dnc, or a
    plain dict). One without either (f has no parameters, or they were
    left out) is the norm's where it has metadata; without metadata
    (dict(state_dict), a safetensors file) nothing tells, and it loads as
    Gemma's, with a warning. (state_dict is load_state_dict's own copy:
    the caller's is not changed.)

    A checkpoint loaded in pieces (transformers' load_sharded_checkpoint:
    one load_state_dict per shard file, in no set order) can hold f's
    parameters in one call and the weight in another: f's parameters
    without the weight (and without metadata) make the weight of a later
    call the converted model's own; a weight taken as Gemma's in a call
    without metadata is taken back (the checkpoint's value, exactly)
    where a later call brings f's parameters without a weight."""
    key = prefix + "weight"
    # f's parameters' keys: prefix + name, or a parametrization's
    # original(s) where the parameter is parametrized (an alpha kept
    # positive by torch.nn.utils.parametrize: such a state_dict had been
    # taken for one without f's parameters, so for Gemma's, and 1 added to
    # the converted model's own weight)
    mine = []
    for p in module._dnc_params:
        stem = "%sparametrizations.%s.original" % (prefix, p.name)
        mine += [k for k in state_dict if k == prefix + p.name or
                 k == stem or (k.startswith(stem) and k[len(stem):].isdigit())]
    follows = module.__dict__.pop("_dnc_weight_follows", None)
    taken = module.__dict__.pop("_dnc_taken_as_offset", None)
    has_w = key in state_dict and isinstance(state_dict[key], torch.Tensor)
    has_f = any(k in state_dict for k in mine)
    # what an earlier call left holds only while the module is as that
    # call left it: trained since (or loaded otherwise), a later load is
    # another checkpoint's (a weight reset to the checkpoint's value, or
    # the original Gemma checkpoint loaded without its +1, silently)
    if taken is not None and not _same_values(module.weight, taken[1]):
        taken = None
    if follows is not None and not all(
            _same_values(_attr_path(module, n), v)
            for n, v in follows.items()):
        follows = None
    if not has_w:
        if has_f and taken is not None:
            state_dict[key] = taken[0]
            warnings.warn(
                "dnc.convert: %s: f's parameters (%s) came after its "
                "weight, in a later load_state_dict call (a sharded "
                "checkpoint): the weight loaded before is the converted "
                "model's own, and loads as it was saved, not as 1 + weight"
                % (prefix[:-1] or "the model",
                   ", ".join(p.name for p in module._dnc_params)),
                stacklevel=2)
        elif has_f and not local_metadata:
            module._dnc_weight_follows = {
                k[len(prefix):]: state_dict[k].detach().clone()
                for k in mine if isinstance(state_dict[k], torch.Tensor)}
        else:  # nothing of this norm's scale: the next call decides
            if follows is not None:
                module._dnc_weight_follows = follows
            if taken is not None:
                module._dnc_taken_as_offset = taken
        return
    if follows is not None and not (_dt._STATE_FN in local_metadata or
                                    has_f):
        warnings.warn(
            "dnc.convert: %s: its weight loads as the converted model's "
            "own scale, not as 1 + weight: f's parameters came without it "
            "in an earlier load_state_dict call (a sharded checkpoint) and "
            "have not changed since; load the original norm's checkpoint "
            "in one call with nothing else of it before"
            % (prefix[:-1] or "the model"), stacklevel=2)
    if _dt._STATE_FN in local_metadata or has_f or follows is not None:
        return  # a PointwiseNorm's: the scale itself
    if not local_metadata:
        warnings.warn(
            "dnc.convert: %s: a state_dict without PyTorch's metadata (a "
            "plain dict, a safetensors file) and without %s: nothing tells "
            "the original norm's checkpoint (whose weight is an offset, "
            "scaled by 1 + weight) from the converted model's own; loaded "
            "as the original's, 1 + weight (taken back where f's "
            "parameters come in a later call, as from another shard of a "
            "sharded checkpoint). Load the converted model's own as "
            "state_dict() returns it (torch.save and torch.load keep its "
            "metadata), or with f's parameters"
            % (prefix[:-1] or "the model",
               "f's parameters (%s)" % ", ".join(
                   p.name for p in module._dnc_params)
               if module._dnc_params else "parameters of f (it has none)"),
            stacklevel=2)
    # 1 added in the wider of the checkpoint's dtype and the parameter's:
    # a bf16 checkpoint's 0.00223 became 1 + 0.00223 rounded in bf16, 1.0,
    # where the float32 model keeps 1.00223 (as keep_affine does)
    w = state_dict[key]
    if w.is_floating_point() and module.weight.is_floating_point():
        w = w.to(torch.promote_types(w.dtype, module.weight.dtype))
    if not local_metadata and module._dnc_params:
        # (the checkpoint's value, and what the weight will hold)
        module._dnc_taken_as_offset = (
            state_dict[key], (w + 1).detach().to(module.weight.dtype))
    state_dict[key] = w + 1


def _attr_path(module, path):
    """module's tensor at a state_dict key's dotted path under it
    ("alpha", "parametrizations.alpha.original")."""
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _same_values(t, v):
    """Whether parameter t holds exactly v (a tensor of its shape)."""
    try:
        return t is not None and t.shape == v.shape and bool(
            torch.equal(t.detach().to(v.dtype).cpu(), v.detach().cpu()))
    except (RuntimeError, TypeError):  # meta tensors, other dtypes
        return False


# Forward and backward hooks of a replaced norm move to its PointwiseNorm
# (as torch.ao.quantization's swap_module does): the dictionaries
# themselves, so that the caller's handles still remove them. Those that
# PyTorch 1.13 lacks are skipped.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
               "_forward_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_backward_pre_hooks",
               "_backward_hooks")


def _move_hooks(m, out, path):
    for name in ("_forward_pre_hooks", "_forward_hooks"):
        for h in getattr(m, name).values():
            cls = type(h)
            if cls.__module__.startswith("torch.nn.utils."):
                raise ValueError("dnc.convert: %s: %s" % (
                    path or "the model", _utils_hook(cls, h)))
    for name in _HOOK_DICTS:
        theirs = getattr(m, name, None)
        if theirs:
            theirs.update(getattr(out, name))
            setattr(out, name, theirs)
    if getattr(m, "_is_full_backward_hook", None) is not None:
        out._is_full_backward_hook = m._is_full_backward_hook


def _utils_hook(cls, h):
    """Why m's hook of torch.nn.utils, which computes a parameter from
    others the PointwiseNorm has not, cannot go to it, and the remedy."""
    what = "%s.%s" % (cls.__module__, cls.__name__)
    tensor = getattr(h, "_tensor_name", None) or getattr(h, "name", None) \
        or "weight"
    if isinstance(h, prune.BasePruningMethod):
        return ("its %s is pruned by torch.nn.utils.prune (%s: a forward "
                "pre-hook computing %s from %s_orig and %s_mask), which a "
                "PointwiseNorm cannot carry: make the pruning permanent "
                "first (torch.nn.utils.prune.remove(module, %r): the pruned "
                "values stay zero), then convert"
                % (tensor, what, tensor, tensor, tensor, tensor))
    for kind in ("weight_norm", "spectral_norm"):
        if cls.__module__.endswith("." + kind):
            remedy = ("remove it first (torch.nn.utils.remove_%s), or use "
                      "torch.nn.utils.parametrizations.%s, which convert "
                      "carries over" % (kind, kind))
            break
    else:
        remedy = "remove it first"
    return ("its %s is computed by a hook of %s, which a PointwiseNorm "
            "cannot carry: %s" % (tensor, what, remedy))


def _move_parametrizations(m, out, path, keep_affine, offset=False):
    """m's parametrized weight (and bias), as torch.nn.utils.parametrize
    (parametrizations.weight_norm) makes them, registered on out's: the
    same parametrization modules; the originals m's own with keep_affine,
    else those that give out's initial values (right_inverse). Refused
    where m scales by 1 + weight (offset): out's weight is the scale, and
    m's parametrization computes the offset (keep_affine copied the
    originals, so the offset became the scale; Gemma's checkpoint's
    parametrizations.weight.original never had its 1 added)."""
    if not parametrize.is_parametrized(m):
        return
    for name, plist in m.parametrizations.items():
        if offset and name in ("weight", "scale"):
            raise ValueError(
                "dnc.convert: %s: its %s is parametrized (%s) and %s scales "
                "by 1 + %s: a PointwiseNorm's weight is the scale itself, "
                "and the parametrization, which computes the offset, does "
                "not carry over to it. Remove it first "
                "(torch.nn.utils.parametrize.remove_parametrizations(m, "
                "%r), which keeps its value), then convert"
                % (path or "the model", name,
                   ", ".join(type(p).__name__ for p in plist),
                   parametrize.type_before_parametrizations(m).__name__,
                   name, name))
        target = {"weight": "weight", "scale": "weight",
                  "bias": "bias"}.get(name)
        if target is None or getattr(out, target, None) is None:
            raise ValueError(
                "dnc.convert: %s: its parametrized %r has no place in a "
                "PointwiseNorm (weight and bias only)" % (path or "the model",
                                                          name))
        value = getattr(out, target).detach().clone()
        for p in plist:
            parametrize.register_parametrization(out, target, p, unsafe=True)
        mine = out.parametrizations[target]
        with torch.no_grad():
            if keep_affine:
                for a, b in zip(mine.parameters(), plist.parameters()):
                    a.copy_(b)
            else:
                mine.right_inverse(value)
        for a, b in zip(mine.parameters(), plist.parameters()):
            a.requires_grad_(b.requires_grad)


def _distributed_wrappers():
    """The classes of PyTorch's data-parallel wrappers that keep their own
    record of the model's parameters: DistributedDataParallel, and FSDP's
    (FullyShardedDataParallel; fully_shard's FSDPModule) where that
    package is loaded (a model cannot hold one otherwise)."""
    classes = [nn.parallel.DistributedDataParallel]
    for name, attrs in (("torch.distributed.fsdp",
                         ("FullyShardedDataParallel", "FSDPModule")),
                        ("torch.distributed._composable.fsdp",
                         ("FSDPModule",))):
        mod = sys.modules.get(name)
        for a in attrs:
            c = getattr(mod, a, None) if mod is not None else None
            if isinstance(c, type):
                classes.append(c)
    return tuple(classes)


def _refuse_distributed(model):
    """Refuses a model wrapped for data-parallel training before its norms
    were replaced. DistributedDataParallel registered the old norms'
    parameters with its gradient reducer: the PointwiseNorms' parameters
    would never be averaged across processes (with
    find_unused_parameters=True each process's alpha, weight and bias
    silently drifted apart; without it the next step failed with
    PyTorch's error about unused parameters). FSDP's flat parameters hold
    the old ones the same way."""
    wrappers = _distributed_wrappers()
    for path, m in model.named_modules():
        if isinstance(m, wrappers):
            # fully_shard makes an FSDP<class> of the module itself
            fsdp2 = any(c.__name__ == "FSDPModule" for c in type(m).__mro__)
            raise ValueError(
                "dnc.convert: %s is a %s, made before its norms were "
                "replaced: it keeps the old norms' parameters for its "
                "gradient averaging, and the new ones would not be "
                "averaged across processes. Convert the model first, then "
                "%s"
                % (path or "the model",
                   "module sharded by fully_shard (%s)" % type(m).__name__
                   if fsdp2 else type(m).__name__,
                   "shard it (fully_shard(convert(model, ...)))" if fsdp2
                   else "wrap it (%s(convert(model, ...)))"
                   % type(m).__name__))


def _input_name(m):
    """The name of m's forward's first argument (its input's keyword at a
    call), or None."""
    try:
        ps = list(inspect.signature(m.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    if ps and ps[0].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             inspect.Parameter.KEYWORD_ONLY):
        return ps[0].name
    return None


def convert(model, fn, module=None, *, kind="all", init=None,
            keep_affine=False, channels_first_classes=None, threads=None,
            **defaults):
    """Replaces model's normalization layers (model itself included) by
    PointwiseNorm modules of fn and returns the converted model. kind:
    'layernorm' (nn.LayerNorm and its subclasses, channels-first ones
    recognised by channels_first()), 'rmsnorm' (nn.RMSNorm and classes
    named *RMSNorm with a 1-D weight and no bias: weight-only
    PointwiseNorm, as the DyT repository's convert_rms_to_dyt; without
    parameters, computing an RMSNorm: a PointwiseNorm without weight, of
    normalized_shape None where the class records no width) or 'all'.
    init: per-site initial parameter values (a mapping from module-path
    patterns to dicts, or a callable (path, module) -> dict), over
    **defaults, which apply to every site. keep_affine: copy the norm's
    weight and bias. channels_first_classes: {class or class name: bool}
    for LayerNorm subclasses whose layout cannot be told. A norm of
    another class than nn.LayerNorm and nn.RMSNorm is run on probe
    inputs (_site): its layout, its normalization (fit_initial's target)
    and a (1 + weight) scale are what it computes; one that computes
    neither stays, with a warning (convert it all the same through
    channels_first_classes)."""
    threads = _dt._thread_count(threads)
    fn = _dt.resolve(fn, module, threads)
    _refuse_distributed(model)
    found = find_norms(model, kind)
    if not found:
        raise ValueError("dnc.convert: %s" % _no_norm(model, kind))
    if keep_affine and _saved_functions(model):
        warnings.warn(
            "dnc.convert: this model's config says it was saved from a "
            "model converted by dnc (config.%s): where its weights were "
            "loaded by from_pretrained of its original class, its norms' "
            "%s were dropped (Hugging Face reports them as unexpected "
            "keys) and their weight is the saved scale, to which "
            "keep_affine adds 1 again where the norm scales by 1 + weight "
            "(Gemma's). Reload such a checkpoint with "
            "dnc.torch.from_pretrained(cls, path, fn) (docs/python.md)"
            % (_CONFIG_KEY, ", ".join(p.name for p in fn.params) or
               "parameters"), stacklevel=2)
    _check_init(init, model)
    sites = {id(m): (p, k) for p, m, k in found}
    paths = {}  # id of a norm -> every path it is registered at
    for p, m in model.named_modules(remove_duplicate=False):
        if id(m) in sites:
            paths.setdefault(id(m), []).append(p)
    made = {}  # id of a norm -> its PointwiseNorm: a shared norm stays shared
    # id of a norm's weight or bias -> the PointwiseNorm parameter made for
    # it: two norms whose parameters were tied (m[3].weight = m[1].weight)
    # share the new one; those the new norms no longer hold, by id
    tied, dropped = {}, {}
    # a norm without a weight takes the model's dtype and device
    ref = next((t for t in itertools.chain(model.parameters(),
                                           model.buffers())
                if t.is_floating_point()), None)

    def replace(m, path):
        site = sites.get(id(m))
        if site is None:
            return m
        if id(m) in made:
            return made[id(m)]
        k = site[1]
        shape = _shape(m, path)
        if shape is None:
            per_channel = [p.name for p in fn.params
                           if p.kind == "per_channel"]
            if per_channel:
                odd.append(
                    "%s (%s): an RMSNorm without parameters that records no "
                    "width (no normalized_shape or hidden_size), and %s's "
                    "%s per channel, which needs one (a function without "
                    "per-channel parameters is the same at every width "
                    "and converts it; or replace it by hand with "
                    "PointwiseNorm(C, ...))" % (
                        path or "the model", type(m).__name__, fn.name,
                        ", ".join(per_channel) + (
                            " is" if len(per_channel) == 1 else " are")))
                made[id(m)] = m
                return m
        how = _site(m, path, k, channels_first_classes)
        if isinstance(how, str):
            odd.append("%s (%s): %s" % (path or "the model",
                                        type(m).__name__, how))
            made[id(m)] = m
            return m
        w = _scale(m) if k == "rmsnorm" else getattr(m, "weight", None)
        b = getattr(m, "bias", None) if k == "layernorm" else None
        cf = how.cf
        values = dict(defaults)
        values.update(_shared_values(init, paths.get(id(m), [path]), m))
        like = w if w is not None else ref
        try:
            out = _dt.PointwiseNorm(
                shape, fn, elementwise_affine=w is not None,
                bias=b is not None, channels_last=not cf, threads=threads,
                dtype=like.dtype if like is not None else None,
                device=like.device if like is not None else None, **values)
        except (TypeError, ValueError) as e:
            raise type(e)("dnc.convert: %s: %s" % (path or "the model", e))
        # each parameter as trainable as what it replaces: weight and
        # bias as the norm's; f's parameters frozen with a frozen norm
        # (a norm without parameters: as the module around it)
        own = list(m.parameters()) or _around(model, path)
        if own and not any(t.requires_grad for t in own):
            out.requires_grad_(False)
        for mine, theirs in ((out.weight, w), (out.bias, b)):
            if mine is not None and theirs is not None:
                mine.requires_grad_(theirs.requires_grad)
        theirs = (("weight", w), ("bias", b))
        if keep_affine and w is not None:
            w, b = _affine(m, path, k, how, w, b)
            with torch.no_grad():
                out.weight.copy_(w)
                if b is not None:
                    out.bias.copy_(b)
        for name, t in theirs:
            if isinstance(t, nn.Parameter):  # (not a parametrized value)
                if id(t) in tied:
                    setattr(out, name, tied[id(t)])
                else:
                    tied[id(t)] = getattr(out, name)
                    dropped[id(t)] = "%s.%s" % (path, name) if path \
                        else name
        if how.failed is not None and \
                not _guess(m, channels_first_classes)[1] and any(
                    t.is_meta for t in itertools.chain(m.parameters(),
                                                       m.buffers())):
            # (on the CPU, keep_affine warns in _affine)
            warnings.warn(
                "dnc.convert: %s (%s) not probed: %s; converted as its "
                "class says, over %s%s (channels_first_classes={%s: ...} "
                "decides otherwise)" % (
                    path or "the model", type(m).__name__, how.failed,
                    "dimension 1" if cf else "the last dimension",
                    ", scaling by 1 + weight" if how.offset else "",
                    type(m).__name__))
        if how.offset and w is not None:
            out._register_load_state_dict_pre_hook(_offset_weight,
                                                   with_module=True)
        wide = _wide_input(m, cf, shape[0] if shape else None)
        if wide is not None:
            out._dnc_wide = wide
        arg = _input_name(m)
        if arg not in out._ARGS:
            out._dnc_arg = arg  # a call by the replaced forward's keyword
        _move_parametrizations(m, out, path, keep_affine, how.offset)
        _move_hooks(m, out, path)
        out.train(m.training)
        made[id(m)] = out
        return out

    def walk(m, path):
        out = replace(m, path)
        if out is not m:
            return out  # a norm's own children (its parametrizations) went
        # every name, also a second one for the same module (which
        # named_children() leaves out); each module's children once
        if id(m) in walked:
            return out
        walked.add(id(m))
        for name, child in list(m._modules.items()):
            if child is not None:
                new = walk(child, path + "." + name if path else name)
                if new is not child:
                    edits.append((out, name, new))
        return out

    walked = set()
    odd = []  # LayerNorms and RMSNorms by class that compute neither
    # every replacement is made before the model changes: an error at a
    # later site (a 2-D normalized_shape, a bad init value) left the
    # model half converted, and converting it again mixed two functions
    edits = []

    out = walk(model, "")
    if len(odd) == len({id(m) for _, m, _ in found}):
        raise ValueError("dnc.convert: the model has no %s to replace; "
                         "not converted: %s" % (_what(kind), "; ".join(odd)))
    for parent, name, new in edits:
        parent.add_module(name, new)
    if out is not model and isinstance(out, _dt.PointwiseNorm):
        _watch_attach(out, model)  # the model a norm: set in its place
    else:  # (a new PointwiseNorm is held by no model yet: nothing to mark)
        _mark_config(out, fn, {id(n) for n in made.values()
                               if isinstance(n, _dt.PointwiseNorm)})
    shared = ["%s (also %s)" % (dropped[id(t)], n)
              for n, t in _named_params(out) if id(t) in dropped]
    if shared:
        warnings.warn(
            "dnc.convert: norm parameters shared with modules that convert "
            "did not replace: %s; the PointwiseNorm has a parameter of its "
            "own, and the other module keeps the old one: tie them again "
            "after convert where they must stay one" % "; ".join(shared))
    _watch_replaced(out, [(p, m) for p, m, _ in found
                          if made.get(id(m), m) is not m])
    if odd:
        warnings.warn("dnc.convert: left as they are: %s" % "; ".join(odd))
    skipped = _other_kind(out, kind)
    if skipped:
        # a T5LayerNorm beside nn.LayerNorms, under convert_layernorm:
        # an RMSNorm by what it computes, which that kind leaves
        warnings.warn("dnc.convert: left as they are, not of kind %r%s"
                      % (kind, skipped))
    left, advice = _unrecognised(out)
    if left:
        warnings.warn("dnc.convert: left as they are, not recognised as a "
                      "LayerNorm or an RMSNorm: %s%s" % (left, advice))
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


# ---------------------------------------- Hugging Face's save_pretrained

# The key of a Hugging Face config (model.config, saved by save_pretrained
# into config.json) that lists the functions convert put in the model: a
# checkpoint of a converted model says so, and from_pretrained of the
# original class (which drops f's parameters, and for Gemma loads the
# scale as the offset) followed by convert(keep_affine=True) is warned
# about.
_CONFIG_KEY = "dnc_functions"


def _hf_config(model):
    c = getattr(model, "config", None)
    return c if hasattr(c, "model_type") and hasattr(c, "to_dict") else None


def _saved_functions(model):
    c = _hf_config(model)
    v = getattr(c, _CONFIG_KEY, None) if c is not None else None
    return list(v) if isinstance(v, (list, tuple)) else []


def _holds_config(outer, c):
    """Whether the config outer is c or holds it as a sub-config
    (config.text_config), at any depth."""
    seen, todo = set(), [outer]
    while todo:
        v = todo.pop()
        if v is c:
            return True
        if id(v) in seen:
            continue
        seen.add(id(v))
        # (getattr: a config-like object with __slots__ has no vars())
        todo.extend(w for w in getattr(v, "__dict__", {}).values()
                    if hasattr(w, "to_dict") and hasattr(w, "model_type"))
    return False


def _holders_map():
    """id of each module held in another's _modules -> the modules holding
    it, over every module the garbage collector tracks: one pass over its
    objects, where a walk outward through gc.get_referrers took two or
    three scans a generation (a decoder layer's model four generations
    out: ten scans, 0.3 s in a process of 400000 objects, at every norm
    set into a layer)."""
    kinds, todo = {nn.Module}, [nn.Module]
    while todo:  # every subclass of Module (a set: type(o) in it is quick)
        for k in todo.pop().__subclasses__():
            if k not in kinds:
                kinds.add(k)
                todo.append(k)
    up = {}
    for o in [o for o in gc.get_objects() if type(o) in kinds]:
        ms = o.__dict__.get("_modules")
        for ch in (ms.values() if isinstance(ms, dict) else ()):
            if ch is not None:
                up.setdefault(id(ch), []).append(o)
    return up


def _ancestors(model, cache=None):
    """Every module that holds model among its descendants, nearest
    first, a generation at a time (a module has no link to its parent:
    one scan of the referrers of model, none where no _modules holds it;
    then _holders_map, kept in cache, a dict, where given)."""
    up = cache.get("up") if cache is not None else None
    if up is None:
        # held by no module (convert of a whole model): one scan, no map
        if not any(isinstance(d, dict) and
                   any(v is model for v in d.values()) and
                   all(v is None or isinstance(v, nn.Module)
                       for v in d.values())
                   for d in gc.get_referrers(model)):
            return []
        up = _holders_map()
        if cache is not None:
            cache["up"] = up
    out, seen, todo = [], {id(model)}, [model]
    while todo:
        nxt = []
        for m in todo:
            for p in up.get(id(m), ()):
                if id(p) not in seen:
                    seen.add(id(p))
                    nxt.append(p)
        out.extend(nxt)
        todo = nxt
    return out


def _config_of(m):
    """m's Hugging Face config, or None, also where reading it raises (a
    module around the converted one is any module: a property that
    raises is no config, and convert goes on)."""
    try:
        return _hf_config(m)
    except Exception:
        return None


def _config_root(model, c, above=None):
    """The outermost module that holds model among its descendants and
    whose config is c or holds it (a Hugging Face model around the
    backbone convert was given: LlamaForCausalLM around
    convert(model.model, ...), LLaVA around its language model), else
    model itself. above: model's _ancestors, where known."""
    root = model
    for p in _ancestors(model) if above is None else above:
        pc = _config_of(p)
        try:
            held = pc is not None and _holds_config(pc, c)
        except Exception:
            held = False
        if held:
            root = p
    return root


def _is_pretrained(m):
    """A Hugging Face model (it has save_pretrained), not one of the
    modules inside one that hold its config (LlamaAttention)."""
    return hasattr(type(m), "save_pretrained") and _config_of(m) is not None


def _holders(model, new):
    """The outermost modules of model's tree (model included) that hold a
    Hugging Face config and hold one of the PointwiseNorms new (ids)
    among their descendants: the models whose norms convert replaced
    (a wrapper without a config, a distillation module, a Lightning
    module, around one or more Hugging Face models)."""
    out, seen = [], set()

    def walk(m):
        if id(m) in seen:
            return
        seen.add(id(m))
        if _config_of(m) is not None:
            if any(id(d) in new for d in m.modules()):
                out.append(m)
            return
        for child in m._modules.values():
            if child is not None:
                walk(child)
    walk(model)
    return out


def _mark_config(model, fn, new, attached=False):
    """fn's source added to the config of each Hugging Face model whose
    norms convert replaced (new: the ids of the PointwiseNorms it made):
    model's config; where model holds none, that of each model inside it
    that had norms replaced (convert of a wrapper around a Hugging Face
    model, or around a student and a teacher) and that of the nearest
    module around model holding one (convert of one decoder layer,
    model.model.layers[3], or of the nn.ModuleList of the layers: the
    model's config had stayed unmarked, so that save_pretrained of the
    model wrote no dnc_functions). The mark is made on a copy of the
    config, which every module holding that config takes (Hugging Face's
    modules share the config they were made with; another model made
    from it is no converted one), and every module holding one of its
    sub-configs (a multimodal model's language model holds
    config.text_config) takes that sub-config's copy: they had kept the
    originals, so that model.config.text_config was no longer the
    language model's config, and a change to it (use_cache = False) did
    not reach the model. Where the model is a submodule of a model
    holding its config or one around it (convert(model.model, fn) of a
    LlamaForCausalLM; of a LLaVA's language model), that outer model's
    config is copied and marked as well, and every module of the outer
    model takes the copies: the backbone alone had taken a marked copy,
    so that model.config was no longer model.model.config, and
    save_pretrained of the outer model wrote a config without
    dnc_functions (from_pretrained with another function of the same
    parameters' names loaded the saved alphas into it, silently); the
    outermost model around it is marked too where its config neither is
    nor holds model's (T5's stacks hold copies of the model's config).
    Another Hugging Face model inside the outer one holding the same
    config, of the class of one around or inside model that holds it, or
    holding one of that class (a
    distillation model's teacher, made from the student's
    config object) whose norms were not converted keeps the original,
    unmarked, with a warning: it had taken the marked copy, so that its
    config said dnc functions where it computes LayerNorm."""
    src = _dt._source_of(fn)
    above, cache = None, {}
    # (attached: model is the module a PointwiseNorm of new is being set
    # into, which holds it once _on_attach returns)
    anchors = ([model] if _config_of(model) is not None else []) \
        if attached else _holders(model, new)
    if _config_of(model) is None:
        above = _ancestors(model, cache)
        near = next((p for p in above if _config_of(p) is not None), None)
        if near is not None and (attached or any(id(d) in new
                                                 for d in near.modules())):
            anchors.append(near)
    if not anchors:
        return
    inside = {id(m) for m in model.modules()}
    if above is None:
        above = _ancestors(model, cache)
    path_ids = inside | {id(p) for p in above}
    found = []
    for h in anchors:
        c = _hf_config(h)
        ups = above if h is model else _ancestors(h, cache)
        root = _config_root(h, c, ups)
        top = _hf_config(root)
        marks = [c if top is None else top, c]
        # the outermost Hugging Face model (save_pretrained) around root,
        # whose save_pretrained writes config.json, where its config
        # neither is c nor holds it: T5's
        # encoder and decoder hold copies of the model's config, and
        # convert(t5.encoder, ...) had marked the encoder's alone (a T5
        # whose encoder was converted to one function and its decoder to
        # another was saved as neither, and from_pretrained with one of
        # them loaded the other's alphas into it, silently)
        at = next((i for i, p in enumerate(ups) if p is root), -1)
        outer = [p for p in ups[at + 1:] if _is_pretrained(p)]
        if outer:
            root = outer[-1]
            marks.append(_hf_config(root))
        found.append((c, root, marks))
    if all(src in (getattr(v, _CONFIG_KEY, None) or ())
           for _, _, marks in found for v in marks):
        return  # marked already (a second part converted to fn)
    copies = {}  # id of each config copied (and those inside it) -> copy
    plans = []
    for c, root, marks in found:
        for v in marks:
            if id(v) not in copies:
                copy.deepcopy(v, copies)
        for v in marks:
            have = getattr(v, _CONFIG_KEY, None)
            have = list(have) if isinstance(have, (list, tuple)) else []
            if src not in have:
                setattr(copies[id(v)], _CONFIG_KEY, have + [src])
        if not any(r is root for r, _ in plans):
            plans.append((root, c))
    twins = []
    for root, c in plans:
        # Hugging Face models in root, neither inside model nor around it,
        # that hold c (or a config holding it) and are, or hold, a model
        # of the class of one that is: another model made from the same
        # config object (a teacher beside its student, of the student's
        # class or holding its backbone's), whose norms stay; the
        # outermost such, and all of it. (Not a part of the same model:
        # BART's decoder, a BartDecoder holding the config of the
        # BartEncoder converted, takes the copy as every module of the
        # model does.)
        def holds_c(m):
            try:
                return _is_pretrained(m) and _holds_config(_hf_config(m), c)
            except Exception:
                return False
        mine = {type(m) for m in root.modules()
                if id(m) in path_ids and holds_c(m)}
        keep = set()
        for p, m in root.named_modules():  # (outer modules first)
            if id(m) in keep or id(m) in path_ids or not holds_c(m):
                continue
            if any(type(d) in mine and holds_c(d) for d in m.modules()) \
                    and not any(id(d) in new for d in m.modules()):
                keep.update(id(d) for d in m.modules())
                twins.append(p)
        for m in root.modules():
            if id(m) in keep:
                continue
            for name, v in list(vars(m).items()):
                new_v = copies.get(id(v))
                if new_v is not None and type(new_v) is type(v) and \
                        hasattr(new_v, "to_dict") and new_v is not v:
                    setattr(m, name, new_v)
    if twins:
        warnings.warn(
            "dnc.convert: %s hold%s the config of the converted model (the "
            "same config object) but %s norms were not converted: %s the "
            "config as it was, without %s, and the converted model takes a "
            "marked copy, so that the two no longer share one config object "
            "(a change to one does not reach the other)" % (
                _first4(twins), "s" if len(twins) == 1 else "",
                "its" if len(twins) == 1 else "their",
                "it keeps" if len(twins) == 1 else "they keep", _CONFIG_KEY),
            stacklevel=3)


# A norm converted by itself, convert(model.model.norm, fn), is returned
# as its PointwiseNorm, which the caller sets in its place
# (model.model.norm = convert(...)): when convert ran, the module around it
# held the norm still, and its config was not marked, so that
# save_pretrained wrote no dnc_functions and from_pretrained with another
# function of the same parameters' names loaded that norm's values into
# it, silently. Such a PointwiseNorm marks the config of the Hugging Face
# model it is set into (a global module registration hook, PyTorch 2,
# registered at the first such convert; a PointwiseNorm made by hand
# marks nothing).
_attach_hook = []


def _watch_attach(pn, norm):
    register = getattr(nn.modules.module,
                       "register_module_module_registration_hook", None)
    if register is None:  # PyTorch 1.13: no such hook, so a warning
        held = [p for p in _ancestors(norm) if _config_of(p) is not None]
        if held:
            warnings.warn(
                "dnc.convert: %s converted by itself, inside a Hugging Face "
                "model (%s): set in its place, it leaves the model's config "
                "without %s on PyTorch %s (no module registration hook), so "
                "that save_pretrained writes a config that does not name "
                "the function, and loading that checkpoint with another "
                "function of the same parameters' names takes the values "
                "silently; convert the model, or the module holding the "
                "norm, instead" % (type(norm).__name__,
                                   type(held[-1]).__name__, _CONFIG_KEY,
                                   torch.__version__), stacklevel=3)
        return
    pn._dnc_mark_config = True
    if not _attach_hook:
        _attach_hook.append(register(_on_attach))


def _on_attach(parent, name, value):
    if isinstance(value, _dt.PointwiseNorm) and \
            value.__dict__.get("_dnc_mark_config"):
        _mark_config(parent, value.fn, {id(value)}, attached=True)
    return None


# the keywords of Hugging Face's loading that say where config.json is
_HUB_KEYWORDS = ("cache_dir", "force_download", "local_files_only", "token",
                 "revision", "proxies", "subfolder", "trust_remote_code",
                 "code_revision")


def _model_class(cls, path, kwargs):
    """cls, or for one of transformers' auto classes (AutoModelForCausalLM)
    the model class it would load path's config with: Converted, a
    subclass of the auto class, had from_pretrained make the original
    model, unconverted, which was then set to the auto class (no
    nn.Module: 'AutoModelForCausalLM' object has no attribute
    'named_modules')."""
    try:
        from transformers.models.auto import auto_factory
    except ImportError:
        return cls
    if not issubclass(cls, auto_factory._BaseAutoModelClass):
        return cls
    from transformers import AutoConfig, PretrainedConfig
    config = kwargs.get("config")
    if not isinstance(config, PretrainedConfig):
        config = AutoConfig.from_pretrained(
            path if config is None else config,
            **{k: kwargs[k] for k in _HUB_KEYWORDS if k in kwargs})
    mapping = cls._model_mapping
    if type(config) not in mapping:
        raise ValueError(
            "dnc.from_pretrained: %s has no model class of its own for %s's "
            "config (%s%s): pass the model's class itself as cls"
            % (cls.__name__, path, type(config).__name__,
               ", custom code" if getattr(config, "auto_map", None) else ""))
    pick = getattr(auto_factory, "_get_model_class", None)
    return pick(config, mapping) if pick is not None else mapping[type(config)]


def from_pretrained(cls, path, fn, module=None, *, kind="all",
                    channels_first_classes=None, threads=None, **kwargs):
    """A Hugging Face model saved by save_pretrained after convert, loaded
    back: cls.from_pretrained(path, **kwargs) (Hugging Face's own loading,
    with its renaming of keys: transformers 5 saves ViT's layers as
    vit.encoder.layer.* and loads them as vit.layers.*) into a model
    converted, as it is made, with convert(model, fn, module, kind=,
    channels_first_classes=, threads=), as an instance of cls (of the
    class an auto class, AutoModelForCausalLM, picks for the config: see
    _model_class). Refused
    (ValueError): a checkpoint without the PointwiseNorms' parameters (the
    original model's, which from_pretrained of cls and convert load; or
    one converted with another kind), one with f's parameters where this
    model has no PointwiseNorm, and one whose config names other
    functions (config.dnc_functions, which convert writes), or another
    function beside fn (a model converted to two functions); one with
    f's parameters at some norms only (a model converted in part) with
    an error naming them."""
    threads = _dt._thread_count(threads)
    if not isinstance(cls, type) or not hasattr(cls, "from_pretrained"):
        raise TypeError("dnc.from_pretrained: cls is a Hugging Face model "
                        "class (with from_pretrained), not %r" % (cls,))
    fn = _dt.resolve(fn, module, threads)
    cls = _model_class(cls, path, kwargs)
    want_info = kwargs.pop("output_loading_info", False)

    class Converted(cls):
        def __init__(self, config, *args, **kw):
            super().__init__(config, *args, **kw)
            saved = _saved_functions(self)
            if saved and not any(_dt._same_function(s, _dt._source_of(fn))
                                 for s in saved):
                raise ValueError(
                    "dnc.from_pretrained: %s was saved from a model "
                    "converted to %s, not to %s: convert with that "
                    "function" % (path, " and ".join(
                        _dt._one_line(s) for s in saved),
                        _dt._one_line(_dt._source_of(fn))))
            others = [s for s in saved
                      if not _dt._same_function(s, _dt._source_of(fn))]
            if others:
                # convert(model, "dyt", kind="layernorm") and then another
                # function for the RMSNorms: every norm became fn, and
                # the other function's alpha loaded into it, silently
                raise ValueError(
                    "dnc.from_pretrained: %s was saved from a model "
                    "converted to %s as well as to %s (different norms to "
                    "different functions); from_pretrained converts every "
                    "norm to one function, and would compute %s where the "
                    "model computed the other. Load it by hand: build the "
                    "model, convert its norms as they were (convert(model, "
                    "fn, kind=...) for each function) and load the saved "
                    "state_dict into it (load_state_dict of "
                    "safetensors.torch.load_file's model.safetensors, "
                    "where the saved keys are the model's)" % (
                        path, " and ".join(_dt._one_line(s) for s in others),
                        _dt._one_line(_dt._source_of(fn)), fn.name))
            convert(self, fn, kind=kind, threads=threads,
                    channels_first_classes=channels_first_classes)

    # cls's name, qualified name and module: save_pretrained writes the
    # class's name into config.architectures, and transformers takes a
    # class whose module is not transformers' for custom code
    # (PreTrainedModel.is_custom_code), whose checkpoint's keys it does
    # not rename on load: a class of dnc.convert lost LLaVA's lm_head
    # (saved as lm_head, renamed on load from its older names), silently,
    # and Qwen2.5-VL's language model (model.language_model.*)
    Converted.__name__ = cls.__name__
    Converted.__qualname__ = cls.__qualname__
    Converted.__module__ = cls.__module__
    model, info = Converted.from_pretrained(path, output_loading_info=True,
                                            **kwargs)
    if not isinstance(model, Converted):
        # a from_pretrained that makes an instance of another class (a
        # factory's): that model was made without convert
        raise TypeError(
            "dnc.from_pretrained: %s.from_pretrained made a %s, not an "
            "instance of %s, so its norms were not converted as it was "
            "made: pass the model's own class" % (
                cls.__name__, type(model).__name__, cls.__name__))
    model.__class__ = cls
    norms = {p for p, m in model.named_modules()
             if isinstance(m, _dt.PointwiseNorm)}
    names = {p.name for p in fn.params}
    lost = sorted(k for k in info.get("missing_keys", ())
                  if k.rpartition(".")[0] in norms)
    missing = {k.rpartition(".")[0] for k in lost}
    held = sorted(p for p in norms if p not in missing) if names else []
    if lost and held:
        # convert(model.model.layers[0], fn): a model converted in part,
        # whose checkpoint the advice below (the original class, then
        # convert) loaded without the converted norms' parameters
        raise ValueError(
            "dnc.from_pretrained: %s has %s's parameters at %s, but none at "
            "%s: it was saved from a model converted in part, and "
            "from_pretrained converts every norm of kind=%r: pass the kind "
            "it was converted with; where it was a submodule that was "
            "converted (convert(model.model.layers[0], ...)), build the "
            "model, convert the same modules and load the saved state_dict "
            "into it (load_state_dict; safetensors.torch.load_file reads "
            "model.safetensors). Loaded by %s.from_pretrained and "
            "converted, it would lose the saved %s parameters"
            % (path, fn.name, _first4(held), _first4(sorted(missing)),
               kind, cls.__name__, fn.name))
    if lost:
        raise ValueError(
            "dnc.from_pretrained: %s has no %s: not a checkpoint of this "
            "model converted to %s (the original model's: load it with "
            "%s.from_pretrained, then convert; or one converted with "
            "another kind)" % (path, _first4(lost), fn.name, cls.__name__))
    extra = sorted(k for k in info.get("unexpected_keys", ())
                   if k.rpartition(".")[2] in names)
    if extra:
        raise ValueError(
            "dnc.from_pretrained: %s has %s, where this model has no "
            "PointwiseNorm: convert it with the kind and "
            "channels_first_classes it was saved with"
            % (path, _first4(extra)))
    return (model, info) if want_info else model


# ------------------------------------------- an optimizer made before

# The parameters of the norms convert replaced, by id (a tensor's == is
# element-wise, so no tensor is a key), with their names: an optimizer
# made before convert holds them, and would train them instead of the
# PointwiseNorms' (nothing else can tell). A global optimizer step
# pre-hook (PyTorch 2), registered at the first convert, looks once per
# optimizer and warns, naming one.
_replaced = weakref.WeakValueDictionary()
_replaced_names = {}
_checked = weakref.WeakSet()
_hook = []


def _watch_replaced(model, norms):
    import torch.optim.optimizer as optim
    register = getattr(optim, "register_optimizer_step_pre_hook", None)
    if register is None:  # PyTorch 1.13
        return
    kept = {id(t) for t in model.parameters()}
    for path, m in norms:
        for name, t in m.named_parameters():
            if id(t) not in kept:
                _replaced[id(t)] = t
                _replaced_names[id(t)] = "%s.%s" % (path, name) if path \
                    else name
    for k in [k for k in _replaced_names if k not in _replaced]:
        del _replaced_names[k]
    # every optimizer is looked at again at its next step: one that had
    # stepped before this convert holds the norms it has just replaced
    _checked.clear()
    if not _hook and _replaced:
        _hook.append(register(_optimizer_step))


def _optimizer_step(optimizer, args, kwargs):
    if optimizer in _checked:
        return
    _checked.add(optimizer)
    for group in optimizer.param_groups:
        for t in group["params"]:
            if _replaced.get(id(t)) is t:
                warnings.warn(
                    "dnc.convert: this %s holds the parameters of norms "
                    "that dnc.convert replaced (%s): it was made before the"
                    " model was converted, and does not train the "
                    "PointwiseNorms' parameters. Make the optimizer after "
                    "convert" % (type(optimizer).__name__,
                                 _replaced_names.get(id(t), "?")),
                    RuntimeWarning, stacklevel=3)
                return


def _what(kind):
    return "LayerNorm or RMSNorm" if kind == "all" else {
        "layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}[kind]


def _no_norm(model, kind):
    """Why convert or fit_initial finds nothing to do in model."""
    what = _what(kind)
    done = [p or "the model" for p, m in model.named_modules()
            if isinstance(m, _dt.PointwiseNorm)]
    if done:
        return ("the model has no %s left: its norms are PointwiseNorms "
                "already (%s); convert the original model to use another "
                "function" % (what, _first4(done)))
    other, _ = _unrecognised(model)
    return "the model has no %s to replace%s%s" % (
        what, "; not recognised as one: %s" % other
        if other else "", _other_kind(model, kind))


def _first4(items):
    """The first four of items, comma-separated, then ', ...' for more."""
    return ", ".join(items[:4]) + (", ..." if len(items) > 4 else "")


def _other_kind(model, kind):
    """'; it has RMSNorms: ... (kind='rmsnorm' or 'all' ...)' where kind
    leaves out norms that the other kind takes (Hugging Face's
    T5LayerNorm is an RMSNorm by what it computes), else ''."""
    if kind == "all":
        return ""
    alt = "rmsnorm" if kind == "layernorm" else "layernorm"
    them = ["%s (%s)" % (p or "the model", type(m).__name__)
            for p, m, _ in find_norms(model, alt)]
    if not them:
        return ""
    return "; it has %s%s: %s (kind=%r or 'all' converts %s)" % (
        _what(alt), "s" if len(them) > 1 else "", _first4(them), alt,
        "them" if len(them) > 1 else "it")


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


# ------------------------------------------------------------- weight decay

def no_weight_decay(model, also=()):
    """The names (as model.named_parameters() writes them, every name of
    a shared parameter) of model's parameters to leave out of weight
    decay: every parameter of every PointwiseNorm (f's, weight, bias, a
    parametrization's original), and those matching a pattern of `also`
    (fnmatch patterns or names: "*.bias"). Hugging Face's Trainer leaves
    out parameters of nn.LayerNorm modules and of names with "norm" in
    them; a PointwiseNorm is no nn.LayerNorm, and GPT-2's ln_1, ln_2 and
    ln_f named none, so their alpha and weight were decayed after convert
    (docs/training.md gives the Trainer's recipe)."""
    if isinstance(also, str):
        also = (also,)
    names = set()
    for path, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, _dt.PointwiseNorm):
            for n, _ in _named_params(m):
                names.add("%s.%s" % (path, n) if path else n)
    for n, _ in _named_params(model):
        if any(fnmatch.fnmatchcase(n, p) for p in also):
            names.add(n)
    return names


def _named_params(m):
    """m.named_parameters(), every name of a shared parameter (PyTorch
    1.13's gives one name each: a parameter shared by two modules is
    found under the other name through named_modules)."""
    try:
        return list(m.named_parameters(remove_duplicate=False))
    except TypeError:
        return list(m.named_parameters())


# ------------------------------------------------------- fitted initial values

def _normalized(kind, x, cf, eps):
    """x (in double on the CPU, channels moved last when cf) and what a
    LayerNorm or an RMSNorm (kind) computes of it before its affine part.
    On the CPU: the fit reads them as NumPy arrays (a GPU's tensor has
    none), the device may have no float64 (MPS), and the batches'
    activations are not all kept on it."""
    x = x.detach().cpu().double()
    if cf:
        x = x.movedim(1, -1)
    if kind == "layernorm":
        y = F.layer_norm(x, x.shape[-1:], eps=eps)
    else:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x, y


class _Sample:
    """A uniform sample without replacement of at most n of the points
    added, in the order they came (fit_initial's per site). It holds
    copies (np.concatenate and indexing copy): a float64 CPU input is the
    norm's own tensor, which the model may change in place afterwards."""

    def __init__(self, n, gen):
        self.n, self.gen, self.seen = n, gen, 0
        self.x = self.y = self.key = self.pos = np.empty(0)

    def add(self, x, y):
        key = self.gen.random(len(x))
        pos = np.arange(self.seen, self.seen + len(x))
        self.seen += len(x)
        if len(x) > self.n:   # (before concatenating: one huge batch)
            i = np.argpartition(key, self.n - 1)[:self.n]
            x, y, key, pos = x[i], y[i], key[i], pos[i]
        x, y, key, pos = (np.concatenate(a) for a in (
            (self.x, x), (self.y, y), (self.key, key), (self.pos, pos)))
        if len(x) > self.n:
            i = np.argpartition(key, self.n - 1)[:self.n]
            x, y, key, pos = x[i], y[i], key[i], pos[i]
        self.x, self.y, self.key, self.pos = x, y, key, pos

    def points(self):
        i = np.argsort(self.pos, kind="stable")
        return self.x[i], self.y[i]


def _hooked_input(m, path, args, kwargs):
    """The input of a norm's call for fit_initial: its first argument, or
    its one keyword argument (self.ln(input=x))."""
    given = list(args[:1]) or list((kwargs or {}).values())
    if not given and kwargs is None:
        raise ValueError(
            "fit_initial: %s (%s) was called without a positional input, "
            "and this PyTorch's hooks do not see keyword arguments: call "
            "it by position" % (path or "the model", type(m).__name__))
    if len(given) != 1 or not isinstance(given[0], torch.Tensor):
        raise ValueError(
            "fit_initial: %s (%s) was called with %s, not one tensor: "
            "fit_initial fits to a norm of one input" % (
                path or "the model", type(m).__name__,
                ", ".join([type(a).__name__ for a in args] +
                          ["%s=%s" % (k, type(v).__name__)
                           for k, v in (kwargs or {}).items()]) or
                "nothing"))
    return given[0]


def fit_initial(model, fn, batches, module=None, *, kind="all",
                params=None, max_points=20000, channels_first_classes=None,
                seed=0):
    """Per-site initial values for convert(init=...), fitted to what each
    norm of the unconverted model does: runs model on batches (an iterable
    of inputs, of tuples of positional arguments, or of mappings of keyword
    arguments, model(**batch), as Hugging Face's batches), records every
    LayerNorm's / RMSNorm's inputs, and fits fn's scalar parameters (or
    those named in params) by least squares so that f(x) matches the norm's
    output before its affine part, per site. Returns {path: {name: value}}
    (a mapping convert's init takes as it is: paths are exact patterns).
    Each site uses at most max_points (x, y) pairs, a uniform sample
    of all its points drawn as the batches run (only that many are kept,
    whatever the number of batches; seed seeds it). The
    solver is dnc's own (Function.fit: `dnc fit`'s Levenberg-Marquardt with
    the symbolic Jacobian, in libdnc); a site where it cannot fit (f not
    finite at a point, a parameter the points do not determine) is a
    ValueError naming it, one that did not converge a warning. The model
    runs in eval mode, and every module is put back in the mode it had."""
    if isinstance(batches, (Mapping, str, bytes)):
        # one batch of keyword arguments given as batches: its keys were
        # the batches, model("input_ids"), the model's own error about a
        # string
        raise TypeError("fit_initial: batches is an iterable of batches "
                        "(inputs, tuples of positional inputs, or mappings of "
                        "keyword arguments), not one %s: for one batch, pass "
                        "[batch]" % type(batches).__name__)
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
    from . import _int_arg
    max_points = _int_arg(max_points, "fit_initial: max_points", 1,
                          2 ** 62)
    sites = find_norms(model, kind)
    if not sites:
        raise ValueError("fit_initial: %s" % _no_norm(model, kind))
    # what each site computes, as convert finds it: its layout, and
    # LayerNorm's or RMSNorm's normalization (OLMo's RMSLayerNorm is a
    # LayerNorm by its class); those convert leaves are not fitted
    hows, odd = {}, []
    for path, m, k in sites:
        try:  # a LayerNorm over more than one dimension, as convert refuses
            _shape(m, path)  # it (it was fitted over the last one alone)
        except ValueError as e:
            raise ValueError("fit_initial: %s" % str(e).replace(
                "dnc.convert: ", "", 1)) from None
        how = _site(m, path, k, channels_first_classes)
        if isinstance(how, str):
            odd.append("%s (%s): %s" % (path or "the model",
                                        type(m).__name__, how))
        else:
            hows[path] = how
    if not hows:
        raise ValueError("fit_initial: the model has no %s to fit to; not "
                         "fitted: %s" % (_what(kind), "; ".join(odd)))
    sites = [(p, m, hows[p].base) for p, m, _ in sites if p in hows]
    # each site's sample, kept to max_points as the batches run: every
    # point gets a uniform random key, and the max_points smallest keys
    # are kept (a uniform sample without replacement of all the points);
    # each site's keys come from its own stream, seeded from seed (what
    # default_rng takes: an int, None, a Generator) and the site's place.
    # All the norms' inputs of all the batches were kept in float64 until
    # the end (16 bytes a value, x and y: gigabytes a batch for a
    # ConvNeXt's 20 norms at 224x224, growing with each one)
    seeds = np.random.default_rng(seed).integers(0, 2 ** 63, len(sites))
    samples = {p: _Sample(max_points, np.random.default_rng(int(s)))
               for (p, _, _), s in zip(sites, seeds)}
    hooks = []
    for path, m, k in sites:
        cf = hows[path].cf
        eps = _eps(m)

        def hook(mod, args, *rest, path=path, k=k, cf=cf, eps=eps):
            x = _hooked_input(mod, path, args, rest[0] if len(rest) > 1
                              else None)
            if x.is_meta:
                raise ValueError(
                    "fit_initial: %s's input is on the meta device, without "
                    "values to fit to: run fit_initial on the model with its "
                    "weights (after to_empty and loading them) and real "
                    "batches" % (path or "the model"))
            if eps is None:
                eps = torch.finfo(x.dtype).eps
            x, y = _normalized(k, x, cf, eps)
            samples[path].add(x.reshape(-1).numpy(), y.reshape(-1).numpy())
        try:  # the input given by keyword too (PyTorch 2)
            hooks.append(m.register_forward_hook(hook, with_kwargs=True))
        except TypeError:
            hooks.append(m.register_forward_hook(hook))
    # each module's own mode, put back as it was: model.train(was) had
    # set every submodule to the model's mode, so a block the caller kept
    # in eval mode in a training model (a frozen backbone, its dropout and
    # batch norms' statistics off) trained in train mode after the fit.
    # Put back through train() (parents first: it sets a module's
    # subtree), as a module overriding it may do more than set the flag
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            for b in batches:
                if isinstance(b, Mapping):   # Hugging Face's batches
                    model(**b)
                elif isinstance(b, (tuple, list)):
                    model(*b)
                else:
                    model(b)
    finally:
        for h in hooks:
            h.remove()
        # (again while one differs: a module shared by two parents of
        # other modes is set by the later parent's train(), after its own
        # turn came; a pass puts each such module back, below its parents)
        for _ in range(len(modes)):
            wrong = [(m, was) for m, was in modes if m.training != was]
            if not wrong:
                break
            for m, was in wrong:
                if m.training != was:
                    m.train(was)
    start = {p.name: p.default for p in fn.params}
    out = {}
    for path, _, _ in sites:
        if not samples[path].seen:
            raise ValueError("fit_initial: the batches never reached %s"
                             % (path or "the model"))
        x, y = samples[path].points()
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


# dnc.torch re-exports this module's functions from its last lines, so it
# is imported here, once they are defined, not at the top: `import
# dnc.convert` before dnc.torch was a circular ImportError.
from . import torch as _dt  # noqa: E402
