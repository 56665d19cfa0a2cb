"""test_convert_probe.py - dnc.convert runs a norm of a class other than
nn.LayerNorm and nn.RMSNorm on probe inputs, and converts it as what it
computes: timm's LayerNorm (an nn.LayerNorm subclass whose forward calls
fast_layer_norm) over the last dimension, Cohere's bias-free LayerNorm
(an RMSNorm by its class) with LayerNorm's target for fit_initial, an
RMSNorm over dimension 1 channels first; a LayerNorm subclass that also
applies an activation (timm's LayerNormAct2d) stays, with a warning, and
an override that what the norm computes contradicts is refused. The
classes are written here as those libraries write them."""
import copy
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dnc.torch as dt
import dnc.convert as dconv
from checks import ok, raises
from test_convert import GemmaRMSNorm  # Hugging Face's: output * (1 + weight)


def fast_layer_norm(x, shape, weight, bias, eps):
    return F.layer_norm(x, shape, weight, bias, eps)


class LayerNorm(nn.LayerNorm):
    """timm.layers.LayerNorm (its name too): its own forward, over the last
    dimension."""
    _fast_norm = True

    def forward(self, x):
        if self._fast_norm:
            x = fast_layer_norm(x, self.normalized_shape, self.weight,
                                self.bias, self.eps)
        else:
            x = F.layer_norm(x, self.normalized_shape, self.weight,
                             self.bias, self.eps)
        return x


TimmLayerNorm = LayerNorm


class LayerNormAct2d(nn.LayerNorm):
    """timm.layers.LayerNormAct2d: a channels-first LayerNorm, then an
    activation (its children)."""

    def __init__(self, c):
        super().__init__(c)
        self.drop = nn.Identity()
        self.act = nn.GELU()

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        x = x.permute(0, 3, 1, 2)
        return self.act(self.drop(x))


class CohereLayerNorm(nn.Module):
    """Hugging Face's CohereLayerNorm: a LayerNorm without a bias, by hand
    (no layer_norm call); for the q/k norms c is (heads, head_dim), a
    weight per head and channel."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.variance_epsilon = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - mean) * torch.rsqrt(var +
                                                       self.variance_epsilon))


class ChannelRMSNorm(nn.Module):
    """An RMSNorm over dimension 1 (timm's RmsNorm2d, by another name)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))

    def forward(self, x):
        r = torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
        return x * r * self.weight[:, None, None]


def _perturbed(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def test_timm_layernorm_is_converted_over_the_last_dimension():
    torch.manual_seed(0)
    c = 6
    model = _perturbed(nn.Sequential(nn.Linear(4, c), TimmLayerNorm(c),
                                     nn.Linear(c, c), TimmLayerNorm(c)))
    ok(not dconv.channels_first(model[1]), "channels_first: timm's "
       "LayerNorm normalizes the last dimension")
    w, b = model[1].weight.detach().clone(), model[1].bias.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=True,
                          alpha=0.7)
    ok(all(isinstance(conv[i], dt.PointwiseNorm) and conv[i].channels_last
           for i in (1, 3)), "both converted, channels last")
    x = torch.randn(3, 5, 4)
    h = conv[0](x)
    ok(torch.allclose(conv[1](h), torch.tanh(0.7 * h) * w + b, atol=1e-6),
       "weight * tanh(alpha * x) + bias over the last dimension")


def test_a_norm_that_also_activates_stays_with_a_warning():
    c = 5
    model = nn.Sequential(nn.Conv2d(3, c, 1), LayerNormAct2d(c),
                          nn.Conv2d(c, c, 1), TimmLayerNorm(c))
    with pytest.warns(UserWarning, match=r"1 \(LayerNormAct2d\): its "
                      r"output on a probe input is not"):
        conv = dt.convert(model, "dyt")
    ok(type(conv[1]) is LayerNormAct2d and isinstance(conv[3],
                                                      dt.PointwiseNorm),
       "the LayerNorm with its GELU stays; the other is converted")
    raises(ValueError, lambda: dt.convert(
        nn.Sequential(nn.Conv2d(3, c, 1), LayerNormAct2d(c)), "dyt"),
        "nothing else to convert: refused", "not converted: 1 "
        "(LayerNormAct2d)")
    m = dt.convert(nn.Sequential(nn.Conv2d(3, c, 1), LayerNormAct2d(c)),
                   "dyt", channels_first_classes={LayerNormAct2d: True})
    ok(isinstance(m[1], dt.PointwiseNorm) and not m[1].channels_last,
       "the caller's override converts it all the same")


def test_overrides_are_checked_against_what_the_norm_computes():
    from test_convert import PermutingLN
    c = 4
    model = nn.Sequential(nn.Conv2d(3, c, 1), PermutingLN(c))
    raises(ValueError, lambda: dt.convert(
        copy.deepcopy(model), "dyt",
        channels_first_classes={"PermutingLN": False}),
        "an override that contradicts the probe",
        "channels_first_classes says PermutingLN normalizes over the last "
        "dimension, but on a probe input it computes a layernorm over "
        "dimension 1")
    m = dt.convert(copy.deepcopy(model), "dyt",
                   channels_first_classes={"PermutingLN": True})
    ok(not m[1].channels_last, "an override the probe agrees with")


def test_cohere_layernorm_keep_affine_and_fit_initial():
    torch.manual_seed(1)
    c = 16
    model = _perturbed(nn.Sequential(nn.Linear(c, c), CohereLayerNorm(c)))
    ok([k for _, _, k in dconv.find_norms(model)] == ["layernorm"],
       "found as a LayerNorm by what it computes (no bias)")
    w = model[1].weight.detach().clone()
    conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=True)
    ok(torch.equal(conv[1].weight.detach(), w) and conv[1].bias is None,
       "keep_affine copies its weight (it used to refuse)")
    batches = [torch.randn(64, c) * 3 + 1 for _ in range(2)]
    got = dconv.fit_initial(model, "dyisru", batches, max_points=5000)
    # the target: LayerNorm's (x - mean)/std, not x/rms
    x = torch.cat([model[0](b) for b in batches]).detach().double()
    y = F.layer_norm(x, (c,), eps=1e-5)
    want = dt.resolve("dyisru").fit(x.reshape(-1).numpy(),
                                    y.reshape(-1).numpy(), params=["beta"],
                                    start={"beta": 301.1})
    ok(abs(got["1"]["beta"] - want.values["beta"]) <
       1e-3 * abs(want.values["beta"]), "fit_initial fits LayerNorm's "
       "output", "%r vs %r" % (got, want.values))


def test_an_rmsnorm_over_dimension_1_is_converted_channels_first():
    torch.manual_seed(2)
    c = 3
    model = _perturbed(nn.Sequential(nn.Conv2d(2, c, 1), ChannelRMSNorm(c)))
    w = model[1].weight.detach().clone()
    conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=True)
    ok(isinstance(conv[1], dt.PointwiseNorm) and not conv[1].channels_last,
       "converted channels first")
    x = conv[0](torch.randn(2, 2, c, c))
    ok(torch.allclose(conv[1](x), torch.tanh(0.5 * x) * w[:, None, None],
                      atol=1e-6), "weight[c] * tanh(alpha * x) (H = W = C)")


def test_an_override_names_the_class_whose_forward_runs():
    """On the meta device (where no probe ran): {'LayerNorm': False}, meant for
    timm's LayerNorm, used to reach nn.LayerNorm in the bases of a
    channels-first subclass with its own forward and convert it channels
    last."""
    from test_convert import PermutingLN

    class Sub(TimmLayerNorm):
        pass  # TimmLayerNorm's forward: the override still names it

    c = 4
    model = nn.Sequential(PermutingLN(c), TimmLayerNorm(c), Sub(c)).to("meta")
    ok(model[0].weight.is_meta, "on the meta device")
    m = dt.convert(model, "dyt", channels_first_classes={"LayerNorm": False})
    ok(not m[0].channels_last, "PermutingLN's own forward decides")
    ok(m[1].channels_last and m[2].channels_last, "the override names "
       "TimmLayerNorm and its subclass")
    m = dt.convert(nn.Sequential(TimmLayerNorm(c)).to("meta"), "dyt")
    ok(m[0].channels_last, "on the meta device, without an override: "
       "a LayerNorm subclass whose forward calls layer_norm( and moves no "
       "dimension is over the last, as on the CPU, where the probe says so")

    def rearrange(x, pattern):  # einops' (raises: the probe fails)
        raise NotImplementedError

    class EinopsLN(nn.LayerNorm):
        def forward(self, x):
            x = rearrange(x, "b c h w -> b h w c")
            x = F.layer_norm(x, self.normalized_shape, self.weight,
                             self.bias, self.eps)
            return rearrange(x, "b h w c -> b c h w")

    raises(ValueError, lambda: dt.convert(
        nn.Sequential(EinopsLN(c)).to("meta"), "dyt"),
        "on the meta device, a forward that rearranges: not clear, located",
        "0: EinopsLN has a forward of its own, from which it is not clear "
        "which dimension it normalizes; pass channels_first_classes="
        "{EinopsLN: True or False}")



class MambaRMSNormGated(nn.Module):
    """transformers' Mamba2 gated RMSNorm: forward(x, gate=None)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.variance_epsilon = eps

    def forward(self, x, gate=None):
        if gate is not None:
            x = x * F.silu(gate)
        v = x.pow(2).mean(-1, keepdim=True)
        return self.weight * x * torch.rsqrt(v + self.variance_epsilon)


def test_gated_rmsnorm_stays_with_a_warning_and_channels_first_of_a_non_norm():
    # the warning says why: it had said 'an RMSNorm needs a 1-D weight and
    # no bias; replace these by hand with PointwiseNorm', which this one
    # has, and which takes no gate
    with pytest.warns(UserWarning, match=r"1 \(MambaRMSNormGated\): its "
                      r"forward takes gate besides the input") as rec:
        m = dt.convert(nn.Sequential(nn.LayerNorm(4), MambaRMSNormGated(4)),
                       "dyt")
    said = " ".join(str(w.message) for w in rec)
    ok("replace these by hand" not in said, "no advice to replace it by hand",
       said)
    ok(type(m[1]) is MambaRMSNormGated, "a gated RMSNorm stays, warned")
    raises(ValueError, lambda: dconv.channels_first(nn.Linear(3, 3)),
           "channels_first of a module that is no norm: the class does not "
           "tell", "not clear which dimension")


def test_gemma_checkpoint_loads_into_the_converted_model_as_its_scale():
    """Convert, then load the unconverted model's checkpoint (strict=False:
    it has no alpha): Gemma's weight is an offset, and used to load as the
    scale itself (0.2 for a norm that scaled by 1.2)."""
    import io
    torch.manual_seed(3)
    c = 6

    def gemma():
        return nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c),
                             nn.Linear(c, c), nn.LayerNorm(c))
    pre = gemma()
    with torch.no_grad():
        pre[1].weight.uniform_(-0.5, 0.5)
        pre[3].weight.uniform_(0.5, 1.5)
    sd = pre.state_dict()
    want = dt.convert(copy.deepcopy(pre), "dyt", keep_affine=True)
    ok(torch.allclose(want[1].weight, 1 + sd["1.weight"]), "keep_affine")
    for how in ("fresh", "deepcopy", "pickle"):
        conv = dt.convert(gemma(), "dyt")
        if how == "deepcopy":
            conv = copy.deepcopy(conv)
        elif how == "pickle":
            buf = io.BytesIO()
            torch.save(conv, buf)
            buf.seek(0)
            conv = torch.load(buf, weights_only=False) \
                if "weights_only" in torch.load.__code__.co_varnames \
                else torch.load(buf)
        r = conv.load_state_dict(sd, strict=False)
        ok(sorted(r.missing_keys) == ["1.alpha", "3.alpha"],
           "only f's parameters are missing", str(r.missing_keys))
        ok(torch.equal(conv[1].weight, want[1].weight) and
           torch.equal(conv[3].weight, want[3].weight),
           "%s: Gemma's weight loads as 1 + weight, LayerNorm's as it is"
           % how)
        ok(torch.equal(sd["1.weight"], pre[1].weight),
           "the caller's state_dict is unchanged")
        back = dt.convert(gemma(), "dyt")
        back.load_state_dict(conv.state_dict(), strict=True)
        ok(torch.equal(back[1].weight, conv[1].weight),
           "%s: the converted model's own state_dict loads as it is" % how)


def test_a_converted_gemma_norm_reloads_its_own_state_dict_as_it_is():
    """With an f without parameters (tanh) the converted model's own
    state_dict holds the norm's weight and none of f's parameters, as
    Gemma's checkpoint does: the load hook took it for Gemma's and added
    1 to every weight (also after torch.save/torch.load). The metadata
    that dnc's state_dict records (the function) tells them apart."""
    import io

    torch.manual_seed(6)
    c = 6
    g = nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c))
    with torch.no_grad():
        g[1].weight.copy_(0.1 * torch.randn(c))
    sd = g.state_dict()
    for fn in ("fn f(x) = tanh(x)", "dyt"):
        m = dt.convert(copy.deepcopy(g), fn, keep_affine=True)
        ok(torch.allclose(m[1].weight, 1 + sd["1.weight"]), "keep_affine")
        mine = m.state_dict()
        buf = io.BytesIO()
        torch.save(mine, buf)
        buf.seek(0)
        saved = torch.load(buf)
        for how, state in (("state_dict", mine), ("torch.load", saved)):
            m2 = dt.convert(copy.deepcopy(g), fn, keep_affine=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                m2.load_state_dict(state)
            ok(torch.equal(m2[1].weight, m[1].weight),
               "%s, %s: its own state_dict loads as it is" % (fn, how),
               lambda: str((m2[1].weight - m[1].weight).abs().max()))
        # Gemma's own checkpoint, with its metadata, still loads as 1 +
        # weight, without a warning
        m3 = dt.convert(copy.deepcopy(g), fn)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m3.load_state_dict(sd, strict=False)
        ok(torch.allclose(m3[1].weight, 1 + sd["1.weight"]),
           "%s: Gemma's checkpoint loads as 1 + weight" % fn)
    # without PyTorch's metadata (dict(state_dict), a safetensors file) and
    # without f's parameters, nothing tells the two apart: taken as
    # Gemma's, with a warning naming the ambiguity
    m = dt.convert(copy.deepcopy(g), "fn f(x) = tanh(x)", keep_affine=True)
    m4 = dt.convert(copy.deepcopy(g), "fn f(x) = tanh(x)")
    with pytest.warns(UserWarning, match="without PyTorch's metadata"):
        m4.load_state_dict(dict(sd))
    ok(torch.allclose(m4[1].weight, 1 + sd["1.weight"]),
       "a plain dict without f's parameters loads as Gemma's")
    # with f's parameters in it, a plain dict is the converted model's
    m = dt.convert(copy.deepcopy(g), "dyt", keep_affine=True)
    m5 = dt.convert(copy.deepcopy(g), "dyt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m5.load_state_dict(dict(m.state_dict()))
    ok(torch.equal(m5[1].weight, m[1].weight),
       "a plain dict with f's parameters loads as it is")
    # the converted model's own checkpoint without f's (frozen) parameters
    # loads as it is too: the metadata says whose it is
    m = dt.convert(copy.deepcopy(g), "dyt", keep_affine=True)
    m6 = dt.convert(copy.deepcopy(g), "dyt")
    state = m.state_dict()
    del state["1.alpha"]
    m6.load_state_dict(state, strict=False)
    ok(torch.equal(m6[1].weight, m[1].weight),
       "its own checkpoint without alpha loads as it is")


def test_a_converted_gemma_checkpoint_loads_in_pieces_as_it_is():
    """The converted model's own checkpoint without metadata, loaded in
    two load_state_dict calls (as transformers' load_sharded_checkpoint
    loads shards, in no set order), alpha in one and the weight in the
    other: the call with the weight alone took it for Gemma's offset
    and loaded 1 + weight. Either way round it loads as saved now (the
    weight first: with the warning, then its value taken back); Gemma's
    own checkpoint after it still loads as 1 + weight. What an earlier
    call left holds only while the model is unchanged: trained since, a
    later load of f's parameters alone no longer resets the weight."""
    torch.manual_seed(7)
    c = 6
    g = nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c))
    with torch.no_grad():
        g[1].weight.copy_(0.1 * torch.randn(c))
    m = _perturbed(dt.convert(copy.deepcopy(g), "dyt", keep_affine=True))
    sd = dict(m.state_dict())
    alpha = {"1.alpha": sd["1.alpha"]}
    rest = {k: v for k, v in sd.items() if k != "1.alpha"}
    for name, parts, warned in (("alpha first", (alpha, rest),
                                 ["loads as the converted model's own"]),
                                ("weight first", (rest, alpha),
                                 ["without PyTorch's metadata",
                                  "came after its weight"])):
        m2 = dt.convert(copy.deepcopy(g), "dyt")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for part in parts:
                m2.load_state_dict(part, strict=False)
        said = [str(i.message) for i in w]
        ok(len(said) == len(warned) and
           all(a in b for a, b in zip(warned, said)),
           "%s: the warnings" % name, said)
        ok(all(torch.equal(t, sd[k]) for k, t in m2.state_dict().items()),
           "%s: every value as saved" % name,
           lambda: str((m2[1].weight - sd["1.weight"]).abs().max()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m2.load_state_dict(dict(g.state_dict()), strict=False)
        ok(torch.allclose(m2[1].weight, 1 + g[1].weight),
           "%s: Gemma's checkpoint after it loads as 1 + weight" % name)
    # Gemma's weight alone (offset, remembered), then training, then f's
    # parameters alone: the trained weight stays
    m3 = dt.convert(copy.deepcopy(g), "dyt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m3.load_state_dict({"1.weight": g[1].weight.detach()}, strict=False)
        with torch.no_grad():
            m3[1].weight.mul_(3)
        trained = m3[1].weight.detach().clone()
        m3.load_state_dict(alpha, strict=False)
    ok(torch.equal(m3[1].weight, trained),
       "a weight trained since is not taken back by a later load")


def test_a_bfloat16_gemma_checkpoint_is_offset_in_the_models_dtype():
    """Gemma's bfloat16 checkpoint into a float32 converted model: 1 was
    added in bfloat16 (1 + 0.00223 rounded to 1.0); now in float32, the
    scale keep_affine copies from the float32 model with those values.
    A float64 checkpoint into float32: added in float64, rounded once."""
    torch.manual_seed(8)
    c = 16
    g = nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c))
    with torch.no_grad():
        g[1].weight.normal_(0, 0.05)
    for dtype in (torch.bfloat16, torch.float64):
        ck = {k: v.to(dtype) for k, v in g.state_dict().items()}
        ref = copy.deepcopy(g)
        ref.load_state_dict(ck)
        want = dt.convert(ref, "dyt", keep_affine=True)[1].weight
        if dtype == torch.float64:
            want = (1 + ck["1.weight"]).float()
        m = dt.convert(copy.deepcopy(g), "dyt")
        with pytest.warns(UserWarning, match="without PyTorch's metadata"):
            m.load_state_dict(ck, strict=False)  # a plain dict: Gemma's
        ok(m[1].weight.dtype == torch.float32 and
           torch.equal(m[1].weight, want),
           "%s checkpoint: 1 + weight as in the float32 model" % dtype,
           lambda: str((m[1].weight - want).abs().max()))


def test_a_parametrized_gemma_weight_is_refused():
    """A (1 + weight) norm whose weight is parametrized: keep_affine
    copied the parametrization's original, so the PointwiseNorm scaled by
    the offset (0.46 for Gemma's 1.46), and Gemma's checkpoint
    (parametrizations.weight.original) never had its 1 added. Refused,
    with the remedy, the model left as it was; a parametrized LayerNorm
    still converts."""
    from torch.nn.utils import parametrize

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

        def right_inverse(self, w):
            return w / 2

    torch.manual_seed(9)
    c = 8
    for keep in (True, False):
        m = nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c))
        parametrize.register_parametrization(m[1], "weight", Double())
        raises(ValueError, lambda: dt.convert(m, "dyt", keep_affine=keep),
               "keep_affine=%s: refused" % keep,
               "1: its weight is parametrized (Double) and GemmaRMSNorm "
               "scales by 1 + weight")
        ok(not isinstance(m[1], dt.PointwiseNorm), "the model as it was")
        parametrize.remove_parametrizations(m[1], "weight")
        w = m[1].weight.detach().clone()
        dt.convert(m, "dyt", keep_affine=keep)
        ok(not keep or torch.allclose(m[1].weight, 1 + w),
           "once removed, keep_affine copies 1 + weight")
    m = nn.Sequential(nn.Linear(c, c), nn.LayerNorm(c))
    parametrize.register_parametrization(m[1], "weight", Double())
    dt.convert(m, "dyt", keep_affine=True)
    ok(parametrize.is_parametrized(m[1], "weight"),
       "a parametrized LayerNorm converts, its parametrization kept")


def test_gemma_checkpoint_loads_into_a_model_converted_on_meta():
    """On the meta device (where no probe ran then, and the class's source,
    1.0 + self.weight, told the offset; a CPU copy is probed now)."""
    from test_convert import LlamaRMSNorm
    torch.manual_seed(4)
    c = 6

    def model():
        return nn.Sequential(nn.Linear(c, c), GemmaRMSNorm(c),
                             LlamaRMSNorm(c))
    pre = model()
    with torch.no_grad():
        pre[1].weight.uniform_(-0.5, 0.5)
        pre[2].weight.uniform_(0.5, 1.5)
    sd = pre.state_dict()
    conv = dt.convert(model().to("meta"), "dyt").to_empty(device="cpu")
    for m in conv.modules():
        if isinstance(m, dt.PointwiseNorm):
            m.reset_parameters()
    conv.load_state_dict(sd, strict=False)
    ok(torch.allclose(conv[1].weight, 1 + sd["1.weight"]) and
       torch.equal(conv[2].weight, sd["2.weight"]),
       "Gemma's weight loads as 1 + weight, LLaMA's as it is")


class NemotronLayerNorm1P(nn.LayerNorm):
    """Hugging Face's NemotronLayerNorm1P: a LayerNorm scaling by 1 +
    weight (its weight starts at 0)."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight + 1,
                            self.bias, self.eps)


def test_a_layernorm_scaling_by_one_plus_weight():
    """Nemotron's LayerNorm1P was refused on the CPU ('neither layout'),
    and converted on the meta device with its checkpoint's weight (about
    0) loading as the scale itself, silently."""
    torch.manual_seed(5)
    c = 6

    def model():
        return nn.Sequential(nn.Linear(c, c), NemotronLayerNorm1P(c))
    pre = model()
    with torch.no_grad():
        pre[1].weight.uniform_(-0.3, 0.3)
        pre[1].bias.uniform_(-0.3, 0.3)
    sd = pre.state_dict()
    conv = dt.convert(copy.deepcopy(pre), "dyt", keep_affine=True)
    ok(isinstance(conv[1], dt.PointwiseNorm) and conv[1].channels_last and
       torch.allclose(conv[1].weight, 1 + sd["1.weight"]) and
       torch.equal(conv[1].bias, sd["1.bias"]),
       "keep_affine copies 1 + weight and the bias")
    for meta in (False, True):
        m = model().to("meta") if meta else model()
        m = dt.convert(m, "dyt")
        if meta:
            m = m.to_empty(device="cpu")
            m[1].reset_parameters()
        m.load_state_dict(sd, strict=False)
        ok(torch.allclose(m[1].weight, 1 + sd["1.weight"]),
           "the checkpoint's weight loads as 1 + weight (%s)"
           % ("meta" if meta else "cpu"))


class StdLayerNorm(nn.Module):
    """A LayerNorm written with x.std(-1) (unbiased, eps outside the
    square root): not what layer_norm computes."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        return self.weight * (x - u) / (x.std(-1, keepdim=True) +
                                        self.eps) + self.bias


class CenterOnlyLayerNorm(nn.Module):
    """weight * (x - mean) + bias: no division."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.weight * (x - x.mean(-1, keepdim=True)) + self.bias


class BufferedLayerNorm(nn.Module):
    """A LayerNorm with a buffer (a scale it multiplies by), which has no
    values on the meta device to probe it with."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("gain", torch.ones(1))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight * self.gain,
                            self.bias)


def test_meta_conversion_decides_as_on_the_cpu():
    """On the meta device no probe ran: StdLayerNorm and
    CenterOnlyLayerNorm, refused on the CPU ('computes something else'),
    were converted there as LayerNorms, silently. A CPU copy of the norm,
    with test values, is probed now."""
    c = 6
    for cls in (StdLayerNorm, CenterOnlyLayerNorm):
        for meta in (False, True):
            m = nn.Sequential(nn.Linear(c, c), cls(c))
            if meta:
                m = m.to("meta")
            raises(ValueError, lambda: dt.convert(m, "dyt"),
                   "%s on %s: refused" % (cls.__name__,
                                          "meta" if meta else "the CPU"),
                   "computes something else")
            ok(type(m[1]) is cls, "the model is as it was")
            if meta:
                ok(m[1].weight.is_meta, "the model stays on meta")
    # with torch.device("meta") (deferred init), beside a norm that converts
    if hasattr(torch.device, "__enter__"):
        with torch.device("meta"):
            m = nn.Sequential(nn.Linear(c, c), StdLayerNorm(c),
                              TimmLayerNorm(c))
        with pytest.warns(UserWarning, match="computes something else"):
            conv = dt.convert(m, "dyt")
        ok(type(conv[1]) is StdLayerNorm and
           isinstance(conv[2], dt.PointwiseNorm) and conv[2].channels_last
           and conv[2].weight.is_meta, "the LayerNorm is converted, on meta")
    # a norm with a buffer cannot be probed on meta: converted as its
    # class says, with a warning that says so
    m = nn.Sequential(BufferedLayerNorm(c)).to("meta")
    with pytest.warns(UserWarning, match="not probed"):
        conv = dt.convert(m, "dyt")
    ok(isinstance(conv[0], dt.PointwiseNorm) and conv[0].channels_last,
       "converted over the last dimension, as its source says")


def test_a_norm_that_activates_stays_on_meta_too():
    """On the meta device a CPU copy is probed: a LayerNorm subclass with
    children that compute (timm's LayerNormAct2d) stays, as on the CPU
    (it lost its GELU there, silently). Where no probe runs (a buffer,
    which has no test value), its children keep it."""
    c = 5
    model = nn.Sequential(nn.Conv2d(3, c, 1), LayerNormAct2d(c),
                          nn.Conv2d(c, c, 1), TimmLayerNorm(c)).to("meta")
    with pytest.warns(UserWarning, match=r"1 \(LayerNormAct2d\): its "
                      r"output on a probe input is not weight \* "
                      r"layernorm\(x\) \+ bias"):
        conv = dt.convert(model, "dyt")
    ok(type(conv[1]) is LayerNormAct2d and isinstance(conv[3],
                                                      dt.PointwiseNorm),
       "the LayerNorm with its GELU stays on meta; the other is converted")

    class BufferedLayerNormAct2d(LayerNormAct2d):
        def __init__(self, c):
            super().__init__(c)
            self.register_buffer("gain", torch.ones(1))

    model = nn.Sequential(nn.Conv2d(3, c, 1), BufferedLayerNormAct2d(c),
                          nn.Conv2d(c, c, 1), TimmLayerNorm(c)).to("meta")
    with pytest.warns(UserWarning, match=r"1 \(BufferedLayerNormAct2d\): "
                      r"its parameters are on the meta device, and gain has "
                      r"no values to probe it with, and its child module "
                      r"act may compute more than a norm"):
        conv = dt.convert(model, "dyt")
    ok(type(conv[1]) is BufferedLayerNormAct2d, "unprobed on meta: stays")
    m = dt.convert(nn.Sequential(LayerNormAct2d(c)).to("meta"), "dyt",
                   channels_first_classes={LayerNormAct2d: True})
    ok(isinstance(m[0], dt.PointwiseNorm) and not m[0].channels_last,
       "the caller's override converts it all the same")


class RmsNormFp32(nn.Module):
    """timm.layers.RmsNormFp32: an RMSNorm computed in float32."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))

    def forward(self, x):
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class RmsNorm2dFp32(ChannelRMSNorm):
    """timm.layers.RmsNorm2dFp32: over dimension 1."""


class RmsNormAct2d(nn.Module):
    """timm.layers.RmsNormAct2d: an RMSNorm over dimension 1, then an
    activation (its children)."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.drop = nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x):
        r = torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6)
        return self.act(self.drop(x * r * self.weight[:, None, None]))


class PreNorm(nn.Module):
    """A container named like a norm (lucid-style): its norm inside is
    converted, and it is no norm to warn about."""

    def __init__(self, c, fn):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class NanoGPTLayerNorm(nn.Module):
    """nanoGPT's LayerNorm(ndim, bias): F.layer_norm with an optional bias."""

    def __init__(self, c, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias,
                            1e-5)


def test_norms_named_otherwise_are_converted_or_warned():
    """timm's RmsNormFp32 and RmsNorm2dFp32 (deepseek_vit, *_rms models)
    were skipped without a word; RmsNormAct2d too; nanoGPT's bias-free
    LayerNorm was 'not recognised'."""
    torch.manual_seed(6)
    c = 6
    model = _perturbed(nn.Sequential(
        nn.Conv2d(3, c, 1), RmsNorm2dFp32(c), nn.Conv2d(c, c, 1),
        RmsNormAct2d(c), nn.Flatten(2), nn.Linear(16, c), RmsNormFp32(c),
        PreNorm(c, nn.Linear(c, c)), NanoGPTLayerNorm(c, False)))
    ref = copy.deepcopy(model)
    with pytest.warns(UserWarning) as rec:
        conv = dt.convert(model, "dyt", keep_affine=True)
    said = " ".join(str(w.message) for w in rec)
    ok("3 (RmsNormAct2d)" in said and "PreNorm" not in said,
       "RmsNormAct2d is warned about, the PreNorm container is not", said)
    ok(isinstance(conv[1], dt.PointwiseNorm) and not conv[1].channels_last
       and isinstance(conv[6], dt.PointwiseNorm) and conv[6].channels_last
       and isinstance(conv[7].norm, dt.PointwiseNorm) and
       isinstance(conv[8], dt.PointwiseNorm) and conv[8].bias is None,
       "RmsNorm2dFp32 channels first, RmsNormFp32, the LayerNorm inside "
       "PreNorm and nanoGPT's bias-free LayerNorm converted")
    ok(torch.equal(conv[8].weight, ref[8].weight) and
       torch.equal(conv[1].weight, ref[1].weight),
       "keep_affine copies their weights")
    x = torch.randn(2, 3, 4, 4)
    ok(conv(x).shape == ref(x).shape, "the converted model runs")


class LayerNorm1d(nn.Module):
    """A LayerNorm over the channels of [N, C, L] (1-D convolutions,
    speech and audio models), written with transpose(1, 2): over dimension
    1 of a 3-D input, and over the last dimension of a 4-D one."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        x = x.transpose(1, 2)
        x = F.layer_norm(x, self.weight.shape, self.weight, self.bias,
                         self.eps)
        return x.transpose(1, 2)


def test_a_norm_whose_layout_depends_on_the_rank_is_refused():
    # its 4-D probe alone had run over the last dimension, and convert
    # made it a norm over L, silently (wrong where L == C, an error else)
    torch.manual_seed(3)
    c = 8
    model = _perturbed(nn.Sequential(nn.Conv1d(4, c, 3, padding=1),
                                     LayerNorm1d(c)))
    raises(ValueError, lambda: dt.convert(copy.deepcopy(model), "dyt"),
           "the layout is not guessed", "channels_first_classes")
    raises(ValueError, lambda: dt.fit_initial(
        copy.deepcopy(model), "dyt", [torch.randn(2, 4, 16)]),
        "fit_initial does not guess it either", "channels_first_classes")
    w = model[1].weight.detach().clone()
    b = model[1].bias.detach().clone()
    conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=True,
                      channels_first_classes={LayerNorm1d: True})
    ok(isinstance(conv[1], dt.PointwiseNorm) and not conv[1].channels_last,
       "converted channels first when told so")
    for n in (16, c):
        h = conv[0](torch.randn(2, 4, n))
        want = torch.tanh(0.5 * h) * w[:, None] + b[:, None]
        ok(torch.allclose(conv[1](h), want, atol=1e-6),
           "weight[c] * tanh(alpha * x) + bias[c] over dimension 1, L = %d"
           % n)
    fits = dt.fit_initial(copy.deepcopy(model), "dyt",
                          [torch.randn(2, 4, 16) * 3],
                          channels_first_classes={LayerNorm1d: True})
    ok(0 < fits["1"]["alpha"] < 10, "fit_initial over dimension 1", fits)


class SecondLastLayerNorm(nn.Module):
    """A LayerNorm over dimension -2 (transpose(-1, -2)): dimension 1 of a
    3-D input, dimension 2 of a 4-D one."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        x = x.transpose(-1, -2)
        x = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias,
                         self.eps)
        return x.transpose(-1, -2)


class ThirdDimLayerNorm(nn.Module):
    """A LayerNorm normalizing dimension 2 (mean(2)) and scaling the last:
    over the last dimension of a 3-D input; a 4-D one it takes, and
    computes something else of it."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(2, keepdim=True)
        v = (x - u).pow(2).mean(2, keepdim=True)
        return (x - u) / torch.sqrt(v + self.eps) * self.weight + self.bias


class CfOnly3dLayerNorm(nn.Module):
    """A LayerNorm over dimension 1 of [N, C, L] written for 3-D inputs
    alone (weight[:, None]), whose class says channels first
    (data_format)."""
    data_format = "channels_first"

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        v = (x - u).pow(2).mean(1, keepdim=True)
        y = (x - u) / torch.sqrt(v + self.eps)
        return self.weight[:, None] * y + self.bias[:, None]


def test_a_norm_over_the_second_last_dimension_is_refused():
    """Only the 3-D probe ran over dimension 1 (the 4-D ones raised), and
    convert made a norm over dimension -2 a PointwiseNorm over dimension
    1, silently: on [2, 6, 6, 3] its weight applied over dimension 1, not
    2. A layout only a 3-D probe shows is refused unless the class or the
    caller says it; one whose probes of two ranks disagree unless the
    caller does."""
    torch.manual_seed(7)
    c = 6
    for cls in (SecondLastLayerNorm, ThirdDimLayerNorm):
        model = _perturbed(nn.Sequential(cls(c)))
        raises(ValueError, lambda: dt.convert(copy.deepcopy(model),
                                              "fn f(x) = x",
                                              keep_affine=True),
               "%s: refused" % cls.__name__, "channels_first_classes")
        raises(ValueError, lambda: dt.fit_initial(
            copy.deepcopy(model), "dyt", [torch.randn(2, c, 4)]),
            "%s: fit_initial refuses it too" % cls.__name__,
            "channels_first_classes")
    model = _perturbed(nn.Sequential(SecondLastLayerNorm(c)))
    raises(ValueError, lambda: dt.convert(copy.deepcopy(model), "dyt"),
           "the message says what the probes showed", "4-D")
    conv = dt.convert(copy.deepcopy(model), "fn f(x) = x", keep_affine=True,
                      channels_first_classes={SecondLastLayerNorm: True})
    x = torch.randn(2, c, 4)
    w, b = model[0].weight.detach(), model[0].bias.detach()
    ok(not conv[0].channels_last and
       torch.allclose(conv[0](x), w[:, None] * x + b[:, None], atol=1e-6),
       "converted over dimension 1 when told so")
    # a class that says channels first, and takes 3-D inputs alone
    model = _perturbed(nn.Sequential(CfOnly3dLayerNorm(c)))
    conv = dt.convert(copy.deepcopy(model), "fn f(x) = x", keep_affine=True)
    w, b = model[0].weight.detach(), model[0].bias.detach()
    ok(not conv[0].channels_last and
       torch.allclose(conv[0](x), w[:, None] * x + b[:, None], atol=1e-6),
       "data_format='channels_first' with 3-D inputs alone is converted")


class MambaRMSNorm(nn.Module):
    """mamba_ssm's gated RMSNorm (Mamba2 imports it as RMSNormGated):
    forward(x, z=None), x * silu(z) before the norm."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x, z=None):
        if z is not None:
            x = x * F.silu(z)
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * r * self.weight


class GatedBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, 2 * d)
        self.norm = MambaRMSNorm(d)
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        x, z = self.proj(x).chunk(2, -1)
        return self.ln(self.norm(x, z))


def test_a_norm_whose_forward_takes_more_than_x_stays():
    # with z=None it computes a plain RMSNorm, which the probe saw: it was
    # converted silently, and the model's call norm(x, z) then failed
    torch.manual_seed(6)
    model = GatedBlock(8)
    x = torch.randn(3, 8)
    want = model(x)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        conv = dt.convert(copy.deepcopy(model), "dyt")
    ok(isinstance(conv.ln, dt.PointwiseNorm) and
       isinstance(conv.norm, MambaRMSNorm), "the LayerNorm alone converted")
    ok(any("forward takes z besides the input" in str(i.message)
           for i in w), "the gated norm is named in a warning",
       [str(i.message) for i in w])
    ok(conv(x).shape == want.shape, "and the model still runs")
    raises(ValueError, lambda: dt.convert(nn.Sequential(MambaRMSNorm(8)),
                                          "dyt"),
           "alone, it is refused", "besides the input")
    fits = dt.fit_initial(copy.deepcopy(model), "dyt", [x])
    ok(set(fits) == {"ln"}, "fit_initial leaves it too", fits)


def test_a_shared_norm_takes_its_init_from_either_path():
    ln = nn.LayerNorm(4)
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Linear(4, 4), ln)
    model.decoder = nn.Sequential(ln, nn.Linear(4, 4))
    conv = dt.convert(copy.deepcopy(model), "dyt",
                      init={"decoder.0": {"alpha": 0.9}})
    ok(abs(float(conv.encoder[1].alpha) - 0.9) < 1e-7 and
       conv.encoder[1] is conv.decoder[0],
       "the second path's init applies (it was ignored)")
    raises(ValueError, lambda: dt.convert(
        copy.deepcopy(model), "dyt", init={"encoder.*": {"alpha": 0.3},
                                           "decoder.*": {"alpha": 0.9}}),
        "two values for one shared norm are refused", "give it one")


class RMSLayerNorm(nn.Module):
    """OLMo's RMSLayerNorm with a bias: an RMSNorm, then + bias."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x + self.bias


def test_an_rmsnorm_with_a_bias_is_converted_and_fitted_as_one():
    # a LayerNorm by its class (weight and bias); the probe tried
    # LayerNorm's base alone and refused it, and forced through,
    # fit_initial fitted LayerNorm's output (alpha 0.049, not 0.615)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(256, 16, generator=g) * 0.5 + 3
    conv = dt.convert(nn.Sequential(RMSLayerNorm(16)), "dyt",
                      keep_affine=True)
    ok(isinstance(conv[0], dt.PointwiseNorm) and conv[0].bias is not None,
       "converted, with its bias")
    a = dt.fit_initial(nn.Sequential(RMSLayerNorm(16)), "dyt",
                       [x])["0"]["alpha"]
    b = dt.fit_initial(nn.Sequential(nn.RMSNorm(16)), "dyt",
                       [x])["0"]["alpha"] if hasattr(nn, "RMSNorm") else a
    ok(abs(a - b) < 1e-3 * b and a > 0.3, "fitted to RMSNorm's output", (a, b))


def test_the_other_kind_is_named():
    t5 = nn.Sequential(nn.Linear(8, 8), T5LayerNorm(8))
    raises(ValueError, lambda: dt.convert_layernorm(copy.deepcopy(t5),
                                                    "dyt"),
           "convert_layernorm of T5's norms says which kind takes them",
           "kind='rmsnorm' or 'all' converts it")
    both = nn.Sequential(T5LayerNorm(8), nn.LayerNorm(8))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dt.convert_layernorm(both, "dyt")
    ok(any("not of kind 'layernorm'" in str(i.message) for i in w),
       "beside a LayerNorm, left with a warning", [str(i.message)
                                                   for i in w])


class T5LayerNorm(nn.Module):
    """Hugging Face's T5LayerNorm: an RMSNorm by another name."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.variance_epsilon = eps

    def forward(self, x):
        v = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.variance_epsilon))


def test_a_frozen_backbone_with_norms_without_parameters_stays_frozen():
    model = nn.Sequential(nn.Linear(4, 4),
                          nn.LayerNorm(4, elementwise_affine=False))
    model.requires_grad_(False)
    conv = dt.convert(model, "dyt")
    ok(not any(p.requires_grad for p in conv.parameters()),
       "alpha frozen as the module around it",
       [(n, p.requires_grad) for n, p in conv.named_parameters()])


class LayerNorm2D_NCHW(nn.GroupNorm):
    """ml-cvnets' LayerNorm2D_NCHW: a GroupNorm of one group."""

    def __init__(self, c):
        super().__init__(1, c)


def test_a_group_norm_named_layernorm_is_set_aside():
    ok(dt.find_norms(nn.Sequential(LayerNorm2D_NCHW(4))) == [],
       "not a LayerNorm site")


class OlmoLayerNorm(nn.Module):
    """transformers' OLMo (v1) norm: F.layer_norm without weight or bias."""

    def __init__(self, hidden_size):
        super().__init__()
        self.normalized_shape = (hidden_size,)

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        return F.layer_norm(hidden_states.to(torch.float32),
                            self.normalized_shape, None, None,
                            eps=1e-5).to(dtype)


class ConvNormAct(nn.Module):
    """timm.layers.ConvNormAct: a conv, a batch norm, an activation (a
    block named like a norm with its activation, with no weight of its
    own)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def test_parameter_free_layernorm_is_converted():
    """OLMo's OlmoLayerNorm, without parameters: 'not recognised', so that
    an OLMo model had nothing to convert; now a PointwiseNorm without
    weight and bias over the last dimension, computing tanh(alpha * x),
    whose alpha trains (and fit_initial fits it as a LayerNorm)."""
    torch.manual_seed(0)
    # (channels 6 and 8: the probe compares with eps 1e-6, not OLMo's 1e-5
    # written in its forward, and a row of 3 channels can have a variance
    # small enough for that to show)
    model = nn.Sequential(nn.Linear(4, 6), OlmoLayerNorm(6), nn.Linear(6, 8),
                          OlmoLayerNorm(8))
    ok([k for _, _, k in dt.find_norms(model)] == ["layernorm"] * 2,
       "found as LayerNorms")
    init = dt.fit_initial(model, "dyt", [torch.randn(8, 5, 4)])
    ok(set(init) == {"1", "3"} and all(v["alpha"] > 0 for v in init.values()),
       "fitted", init)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = dt.convert(copy.deepcopy(model), "dyt", alpha=0.7)
    for i, c in ((1, 6), (3, 8)):
        n = conv[i]
        ok(isinstance(n, dt.PointwiseNorm) and n.channels_last and
           tuple(n.normalized_shape) == (c,) and n.weight is None and
           n.bias is None, "a PointwiseNorm without weight and bias", repr(n))
    x = torch.randn(2, 5, 4)
    h = conv[0](x)
    ok(torch.allclose(conv[1](h), torch.tanh(0.7 * h), atol=1e-6),
       "tanh(alpha * x)")
    conv(x).sum().backward()
    ok(conv[1].alpha.grad is not None, "alpha trains")
    frozen = copy.deepcopy(model).requires_grad_(False)
    ok(not dt.convert(frozen, "dyt")[1].alpha.requires_grad,
       "in a frozen model, frozen as the modules around it")
    on_meta = dt.convert(copy.deepcopy(model).to("meta"), "dyt")
    ok(isinstance(on_meta[1], dt.PointwiseNorm) and on_meta[1].alpha.is_meta,
       "on the meta device too")


def test_unrecognised_norms_say_why_and_conv_blocks_are_no_norms():
    """Cohere's per-head q/k norms (a 2-D weight) stay with a warning
    saying so; timm's ConvNormAct blocks (named *NormAct, with no weight
    of their own) are not named as norms to replace by hand, in the
    warning or in the error of a model with nothing to convert."""
    c = 4
    model = nn.Sequential(nn.Linear(8, 8), CohereLayerNorm(8),
                          nn.Unflatten(-1, (2, c)), CohereLayerNorm((2, c)))
    with pytest.warns(UserWarning, match=r"3 \(CohereLayerNorm\): its "
                      r"weight is 2-D \[2, 4\]") as rec:
        conv = dt.convert(model, "dyt")
    ok(isinstance(conv[1], dt.PointwiseNorm) and
       type(conv[3]) is CohereLayerNorm, "the 1-D one converted, the 2-D "
       "one stays", " ".join(str(w.message) for w in rec))
    net = nn.Sequential(ConvNormAct(3, c), nn.Flatten(2), nn.Linear(4, 4),
                        nn.LayerNorm(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = dt.convert(net, "dyt")
    ok(isinstance(conv[3], dt.PointwiseNorm), "its LayerNorm converted, "
       "without a warning about ConvNormAct")
    raises(ValueError, lambda: dt.convert(nn.Sequential(ConvNormAct(3, c)),
                                          "dyt"),
           "a model of ConvNormAct blocks has nothing to convert",
           "the model has no LayerNorm or RMSNorm to replace")
    with pytest.raises(ValueError) as info:
        dt.convert(nn.Sequential(ConvNormAct(3, c)), "dyt")
    ok("ConvNormAct" not in str(info.value), "ConvNormAct not named",
       str(info.value))


class RmsNormActFp32(nn.Module):
    """timm.layers.RmsNormActFp32 (its name too): an RMSNorm computed in
    float32, then dropout and an activation, its children."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.drop = nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x):
        y = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(),
                       self.eps).to(x.dtype)
        return self.act(self.drop(y))


class RmsNormAct2dFp32(RmsNormActFp32):
    pass


def test_a_norm_with_its_activation_named_fp32_is_named():
    """timm's RmsNormActFp32 and RmsNormAct2dFp32 (a weight of their own,
    children drop and act) were taken for containers by their name
    (*NormAct alone was a norm's): left as they were without a warning
    beside a LayerNorm, and a model of them alone was refused without
    naming them. Now named as *NormAct is."""
    for cls in (RmsNormActFp32, RmsNormAct2dFp32):
        name = cls.__name__
        m = nn.Sequential(nn.Linear(8, 8), cls(8), nn.LayerNorm(8))
        with pytest.warns(UserWarning, match=r"not recognised as a "
                          r"LayerNorm or an RMSNorm: 1 \(%s\)" % name):
            conv = dt.convert(m, "dyt")
        ok(type(conv[1]) is cls and isinstance(conv[2], dt.PointwiseNorm),
           "%s stays, the LayerNorm is converted" % name)
        raises(ValueError, lambda: dt.convert(nn.Sequential(cls(8)), "dyt"),
               "a model of %s alone" % name, "not recognised as one: 0 "
               "(%s)" % name)


class WeightlessRMSNorm(nn.Module):
    """Hugging Face's FalconMambaWeightlessRMSNorm: a weight of ones held
    as a buffer (non-persistent) that its forward does not use, of
    another width than the input it normalizes (time_step_rank, not
    intermediate_size)."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.variance_epsilon = eps
        self.register_buffer("weight", torch.ones(hidden_size),
                             persistent=False)

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) +
                                  self.variance_epsilon)).type_as(x)


class PlainRMSNorm(nn.Module):
    """Hugging Face's LlamaRMSNorm."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.variance_epsilon = eps
        self.weight = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(
            x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


class ConstantRMSNorm(nn.Module):
    """An RMSNorm whose scale is a constant: a buffer its forward uses."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.full((c,), 0.5))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) +
                               self.eps) * self.weight


class _Mixer(nn.Module):
    """FalconMamba's mixer in small: a norm over 2 channels made with a
    (buffer) weight of 6, beside an RMSNorm over 6."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 2)
        self.dt_layernorm = WeightlessRMSNorm(6)
        self.up = nn.Linear(2, 6)
        self.norm = PlainRMSNorm(6)

    def forward(self, x):
        return self.norm(self.up(self.dt_layernorm(self.proj(x))))


def test_a_norm_whose_weight_is_a_buffer_stays():
    """A norm's weight that is a buffer, not a parameter, was taken for
    its weight: FalconMamba's weightless RMSNorm (a buffer of ones,
    unused, of another width) became a PointwiseNorm over that width with
    a trained weight, and the converted model's first call failed ('the
    input's last dimension is 2'); a constant scale would have been
    trained. Both stay now, with a warning saying why; the other norms
    are converted and the model runs."""
    torch.manual_seed(0)
    m = _Mixer()
    x = torch.randn(3, 6)
    with pytest.warns(UserWarning, match=r"dt_layernorm \(WeightlessRMSNorm"
                      r"\): its weight is a buffer, not a parameter"):
        conv = dt.convert(copy.deepcopy(m), "dyt")
    ok(type(conv.dt_layernorm) is WeightlessRMSNorm and
       isinstance(conv.norm, dt.PointwiseNorm), "the weightless norm stays, "
       "the RMSNorm is converted")
    with torch.no_grad():
        y = conv(x)
        want = conv.norm(conv.up(m.dt_layernorm(m.proj(x))))
    ok(torch.allclose(y, want), "the converted model runs, the weightless "
       "norm as it was")
    c = nn.Sequential(nn.Linear(6, 6), ConstantRMSNorm(6), PlainRMSNorm(6))
    with pytest.warns(UserWarning, match=r"1 \(ConstantRMSNorm\): its "
                      r"weight is a buffer"):
        conv = dt.convert(c, "dyt")
    ok(type(conv[1]) is ConstantRMSNorm and
       isinstance(conv[2], dt.PointwiseNorm) and
       not [n for n, _ in conv.named_parameters() if n.startswith("1.")],
       "the constant scale stays a buffer")


def test_torchs_own_norms_with_a_buffer_weight_stay():
    """An nn.LayerNorm or nn.RMSNorm whose weight was made a buffer (a
    frozen scale of 2): recognised by its class, it was converted all the
    same, to a PointwiseNorm with a weight of ones (LayerNorm) or none
    (RMSNorm), the scale dropped silently. It stays, as a norm of
    another class with a buffer weight does, with the same warning."""
    for cls in (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm")
                                  else ()):
        norm = cls(8)
        del norm.weight
        norm.register_buffer("weight", torch.full((8,), 2.0))
        m = nn.Sequential(nn.Linear(8, 8), norm, nn.LayerNorm(8))
        with pytest.warns(UserWarning, match=r"1 \(%s\): its weight is a "
                          r"buffer" % cls.__name__):
            conv = dt.convert(m, "dyt")
        ok(conv[1] is norm and isinstance(conv[2], dt.PointwiseNorm) and
           torch.equal(conv[1].weight, torch.full((8,), 2.0)),
           "%s with a buffer weight stays, with its scale" % cls.__name__)


class GainLayerNorm(nn.LayerNorm):
    """A LayerNorm with a learned gain of its own, 1 at first."""

    def __init__(self, c):
        super().__init__(c)
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return super().forward(x) * self.gain


def test_a_norm_with_a_parameter_besides_weight_and_bias_stays():
    """A LayerNorm subclass with a parameter of its own (a gain, 1 at
    first): the probe saw a plain LayerNorm at that value, and convert
    dropped the gain, out of the state_dict and the training, silently.
    It stays now, with a warning naming the parameter;
    channels_first_classes converts it all the same."""
    m = nn.Sequential(nn.Linear(8, 8), GainLayerNorm(8), nn.LayerNorm(8))
    with pytest.warns(UserWarning, match=r"1 \(GainLayerNorm\): its "
                      r"parameter gain, besides its weight and bias, would "
                      r"be lost"):
        conv = dt.convert(copy.deepcopy(m), "dyt")
    ok(type(conv[1]) is GainLayerNorm and "1.gain" in conv.state_dict() and
       isinstance(conv[2], dt.PointwiseNorm), "it stays, with its gain")
    conv = dt.convert(copy.deepcopy(m), "dyt",
                      channels_first_classes={GainLayerNorm: False})
    ok(isinstance(conv[1], dt.PointwiseNorm) and conv[1].channels_last,
       "channels_first_classes converts it all the same")


def test_a_bias_free_layernorm_by_hand_is_a_layernorm():
    # it was of kind 'rmsnorm' by its class (bias-free, no layer_norm
    # call), so convert_layernorm refused a Cohere model, saying "it has
    # RMSNorms"; what it computes decides, also with a weight of zeros
    # and on the meta device; T5's norm stays an RMSNorm
    for w in (None, 0.0):
        m = nn.Sequential(nn.Linear(8, 8), CohereLayerNorm(8),
                          T5LayerNorm(8))
        if w is not None:
            with torch.no_grad():
                m[1].weight.fill_(w)
                m[2].weight.fill_(w)
        ok([(p, k) for p, _, k in dt.find_norms(m)] ==
           [("1", "layernorm"), ("2", "rmsnorm")],
           "kinds by what they compute (weight %s)" % w,
           [(p, k) for p, _, k in dt.find_norms(m)])
    m = nn.Sequential(nn.Linear(8, 8), CohereLayerNorm(8))
    ref = copy.deepcopy(m)
    x = torch.randn(4, 3, 8)
    conv = dt.convert_layernorm(m, "dyt", keep_affine=True)
    ok(isinstance(conv[1], dt.PointwiseNorm) and conv[1].bias is None and
       conv[1].channels_last, "converted weight-only over the last dimension")
    with torch.no_grad():
        want = torch.tanh(0.5 * ref[0](x)) * ref[1].weight
        ok(torch.allclose(conv(x), want, atol=1e-6), "computes DyT")
    raises(ValueError, lambda: dt.convert_rmsnorm(
        nn.Sequential(CohereLayerNorm(8)), "dyt"),
        "convert_rmsnorm names the kind that takes it",
        "kind='layernorm' or 'all' converts it")
    if hasattr(torch.device, "__enter__"):  # PyTorch 2
        with torch.device("meta"):
            meta = nn.Sequential(nn.Linear(8, 8), CohereLayerNorm(8))
        ok([k for _, _, k in dt.find_norms(meta)] == ["layernorm"],
           "on the meta device too")
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3)) * 2 + 3
    a = dt.fit_initial(nn.Sequential(CohereLayerNorm(8)), "dyt",
                       [x])["0"]["alpha"]
    b = dt.fit_initial(nn.Sequential(nn.LayerNorm(8)), "dyt",
                       [x])["0"]["alpha"]
    ok(abs(a - b) < 1e-3 * b, "fitted to LayerNorm's output", (a, b))


class ChameleonLayerNorm(nn.LayerNorm):
    """Hugging Face's ChameleonLayerNorm: an nn.LayerNorm made over
    [heads, head_dim], normalizing over head_dim alone, with a weight and
    bias per head and channel."""

    def __init__(self, hidden_size, *args, **kwargs):
        super().__init__(hidden_size, *args, **kwargs)
        self.normalized_shape = (hidden_size[-1],)

    def forward(self, hidden_states):
        hidden_states = F.layer_norm(hidden_states, self.normalized_shape,
                                     None, None, eps=1e-5)
        return hidden_states * self.weight + self.bias


def test_a_layernorm_with_a_weight_per_head_stays():
    """Chameleon's per-head q/k LayerNorm (an nn.LayerNorm subclass whose
    weight and bias are [heads, head_dim], its normalized_shape
    (head_dim,)) stays, with a warning naming it and saying why, as
    Cohere's do: it was converted to a PointwiseNorm with one [head_dim]
    weight (the per-head affine part lost, silently), and keep_affine
    failed with a RuntimeError naming no module. An nn.RMSNorm whose
    weight is not its normalized_shape stays too."""
    heads, c = 2, 4
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8),
                          nn.Unflatten(-1, (heads, c)),
                          ChameleonLayerNorm((heads, c)))
    with torch.no_grad():
        model[3].weight.uniform_(0.5, 1.5)
    ok(dt.find_norms(model) == [("1", model[1], "layernorm")],
       "not found as a LayerNorm", dt.find_norms(model))
    for keep in (False, True):
        with pytest.warns(UserWarning, match=r"3 \(ChameleonLayerNorm\): "
                          r"its weight is \[2, 4\] where it normalizes over "
                          r"\[4\]") as rec:
            conv = dt.convert(copy.deepcopy(model), "dyt", keep_affine=keep)
        ok(isinstance(conv[1], dt.PointwiseNorm) and
           type(conv[3]) is ChameleonLayerNorm and
           torch.equal(conv[3].weight, model[3].weight),
           "keep_affine=%s: the plain LayerNorm converted, the per-head one "
           "stays as it was" % keep, " ".join(str(w.message) for w in rec))
    raises(ValueError, lambda: dt.convert(
        nn.Sequential(ChameleonLayerNorm((heads, c))), "dyt"),
        "alone, nothing to convert, and the error says why",
        "its weight is [2, 4] where it normalizes over [4]")
    if getattr(nn, "RMSNorm", None) is not None:  # PyTorch >= 2.4
        rms = nn.RMSNorm((heads, c))
        rms.normalized_shape = (c,)
        ok(dt.find_norms(nn.Sequential(rms)) == [],
           "nor an nn.RMSNorm whose weight is not its normalized_shape")


class NanoChatRMSNorm(nn.Module):
    """Hugging Face's NanoChatRMSNorm (and Llama4's
    Llama4TextWeightlessRMSNorm): an RMSNorm without parameters that
    records no width."""

    def __init__(self, eps=1e-6):
        super().__init__()
        self.variance_epsilon = eps

    def forward(self, x):
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) +
                            self.variance_epsilon)
        return y.type_as(x)


class SizedRMSNorm(NanoChatRMSNorm):
    """A parameter-free RMSNorm that records its width (hidden_size)."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__(eps)
        self.hidden_size = hidden_size


class ScaledRMSNorm(NanoChatRMSNorm):
    """Named like one, without parameters, computing something else."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_a_parameter_free_rmsnorm_is_converted():
    """An RMSNorm class without parameters (NanoChat's, Llama4's qk_norm,
    Gemma3n's v_norm) is converted, as nn.RMSNorm(elementwise_affine=
    False) is: a NanoChat model was refused ('has no LayerNorm or RMSNorm
    to replace'). Without a recorded width it becomes a PointwiseNorm of
    normalized_shape None, whatever width its input has (f without
    per-channel parameters is the same at every width); with hidden_size,
    of that width. A function with a per-channel parameter leaves the
    widthless one, saying why; a parameter-free *RMSNorm that computes
    something else stays."""
    model = nn.Sequential(nn.Linear(4, 6), NanoChatRMSNorm(), nn.Linear(6, 8),
                          SizedRMSNorm(8), nn.Unflatten(-1, (2, 4)),
                          NanoChatRMSNorm())
    ok([k for _, _, k in dt.find_norms(model)] == ["rmsnorm"] * 3,
       "found as RMSNorms", dt.find_norms(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = dt.convert(copy.deepcopy(model), "dyt", alpha=0.7)
    for i, shape in ((1, None), (3, (8,)), (5, None)):
        n = conv[i]
        ok(isinstance(n, dt.PointwiseNorm) and n.channels_last and
           n.normalized_shape == shape and n.weight is None and
           n.bias is None, "%d: a PointwiseNorm of %s, no weight and bias"
           % (i, shape), repr(n))
    x = torch.randn(2, 5, 4)
    h = conv[0](x)
    ok(torch.allclose(conv[1](h), torch.tanh(0.7 * h), atol=1e-6),
       "tanh(alpha * x) at its input's width")
    for c in (3, 16):
        t = torch.randn(2, c)
        ok(torch.allclose(conv[5](t), torch.tanh(0.7 * t), atol=1e-6),
           "and at another width, %d" % c)
    conv(x).sum().backward()
    ok(all(conv[i].alpha.grad is not None for i in (1, 3, 5)),
       "alpha trains")
    per_channel = "fn f(x; a[] = 1) = tanh(a * x)"
    with pytest.warns(UserWarning, match=r"1 \(NanoChatRMSNorm\): an "
                      r"RMSNorm without parameters that records no width"):
        conv = dt.convert(copy.deepcopy(model), per_channel)
    ok(type(conv[1]) is NanoChatRMSNorm and type(conv[5]) is NanoChatRMSNorm
       and isinstance(conv[3], dt.PointwiseNorm) and
       conv[3].a.shape == (8,), "with a per-channel parameter: the sized "
       "one converted, those without a width stay")
    raises(ValueError, lambda: dt.convert(nn.Sequential(NanoChatRMSNorm()),
                                          per_channel),
           "alone, nothing to convert, and the error says why",
           "f's a is per channel, which needs one")
    ok(dt.find_norms(nn.Sequential(ScaledRMSNorm())) == [],
       "one computing something else is not found")
    raises(ValueError, lambda: dt.PointwiseNorm(None, "dyt"),
           "PointwiseNorm(None) takes no weight and bias", "give C")
    raises(ValueError, lambda: dt.PointwiseNorm(
        None, per_channel, elementwise_affine=False),
        "nor a per-channel parameter", "f's a is per channel")
    cf = dt.PointwiseNorm(None, "dyt", elementwise_affine=False,
                          channels_last=False)
    t = torch.randn(2, 3, 4, 5)
    ok(torch.allclose(cf(t), torch.tanh(0.5 * t), atol=1e-6),
       "channels first, of any width too")
