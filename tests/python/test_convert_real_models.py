"""test_convert_real_models.py - dnc.convert on the real classes of
Hugging Face's transformers and of timm, as users convert them (tiny
configs, random weights: nothing is downloaded), where test_convert*.py
use look-alikes written by hand. Skipped where either library is missing
(Debian's python3 with PyTorch 1.13 has neither); tools/requirements-venv.txt
puts both in the project's virtualenv.

For every model: which sites become PointwiseNorms and which stay (with
the warning that names them); each PointwiseNorm's size, layout (over
the last dimension or dimension 1) and bias, against what the class
says it normalizes (its data_format, timm's *2d classes), not against
what dnc.convert's own probe concluded; the converted model's output
against the original model with each of those norms replaced by a
plain PyTorch tanh(alpha * x) * weight + bias over the dimension it
should be over (a norm converted over the wrong dimension, q/k norms
over head_dim inside the attention's reshapes say, changes the output);
forward, backward and three optimizer steps, finite; a state_dict saved
with torch.save loading into a freshly converted model with identical
outputs."""
import copy
import gc
import io
import re
import warnings

import pytest

torch = pytest.importorskip("torch")
if int(torch.__version__.split(".")[0]) < 2:
    pytest.skip("transformers and timm need PyTorch 2", allow_module_level=True)
T = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

from torch import nn  # noqa: E402

import dnc.convert as dconv  # noqa: E402
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402

VOCAB = 97


def _lm(cfg, model, **kw):
    d = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
             max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
             eos_token_id=2)
    d.update(kw)
    return lambda: getattr(T, model)(getattr(T, cfg)(**d))


# name: (builder, input kind, the classes converted, {class: why it stays})
# head_dim 24 (not hidden / heads = 16): a q/k norm over head_dim has
# another size than one over the hidden dimension or over the heads
HF = {
    "llama": (_lm("LlamaConfig", "LlamaForCausalLM"), "text",
              {"LlamaRMSNorm"}, {}),
    "mistral": (_lm("MistralConfig", "MistralForCausalLM"), "text",
                {"MistralRMSNorm"}, {}),
    "qwen2": (_lm("Qwen2Config", "Qwen2ForCausalLM"), "text",
              {"Qwen2RMSNorm"}, {}),
    "qwen3": (_lm("Qwen3Config", "Qwen3ForCausalLM", head_dim=24), "text",
              {"Qwen3RMSNorm"}, {}),
    "gemma": (_lm("GemmaConfig", "GemmaForCausalLM", head_dim=24), "text",
              {"GemmaRMSNorm"}, {}),
    "gemma2": (_lm("Gemma2Config", "Gemma2ForCausalLM", head_dim=24), "text",
               {"Gemma2RMSNorm"}, {}),
    "gemma3": (_lm("Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=24),
               "text", {"Gemma3RMSNorm"}, {}),
    "phi3": (_lm("Phi3Config", "Phi3ForCausalLM"), "text",
             {"Phi3RMSNorm"}, {}),
    # OlmoLayerNorm: F.layer_norm without weight or bias
    "olmo": (_lm("OlmoConfig", "OlmoForCausalLM"), "text",
             {"OlmoLayerNorm"}, {}),
    # q_norm over the full hidden size, k_norm over kv_heads * head_dim
    "olmo2": (_lm("Olmo2Config", "Olmo2ForCausalLM"), "text",
              {"Olmo2RMSNorm"}, {}),
    # a LayerNorm without bias; use_qk_norm: q/k norms with a weight per
    # head and channel ([heads, head_dim]), which a PointwiseNorm has not
    "cohere": (_lm("CohereConfig", "CohereForCausalLM", use_qk_norm=True),
               "text", {"CohereLayerNorm"}, {"CohereLayerNorm": "its weight is 2-D"}),
    # q/k LayerNorms (nn.LayerNorm subclasses) over head_dim with a weight
    # and bias per head ([heads, head_dim]): they stay
    "chameleon": (_lm("ChameleonConfig", "ChameleonForConditionalGeneration",
                      num_key_value_heads=4,
                      vocabulary_map={"<image>": 5, "IMGIMG0000Z": 6},
                      vq_config=dict(embed_dim=8, num_embeddings=16,
                                     base_channels=32,
                                     channel_multiplier=[1, 1],
                                     num_res_blocks=1, attn_resolutions=[])),
                  "text", {"ChameleonRMSNorm"},
                  {"ChameleonLayerNorm": "its weight is [4, 16] where it "
                   "normalizes over [16]"}),
    # RMSNorms without parameters that record no width (NanoChat's, all of
    # them; Llama4's qk_norm): PointwiseNorms of whatever width
    "nanochat": (_lm("NanoChatConfig", "NanoChatForCausalLM"), "text",
                 {"NanoChatRMSNorm"}, {}),
    "llama4": (_lm("Llama4TextConfig", "Llama4ForCausalLM", head_dim=24,
                   intermediate_size_mlp=96, num_local_experts=2,
                   use_qk_norm=True), "text",
               {"Llama4TextRMSNorm", "Llama4TextWeightlessRMSNorm"}, {}),
    # LayerNorm1P: a LayerNorm scaling by 1 + weight
    "nemotron": (_lm("NemotronConfig", "NemotronForCausalLM"), "text",
                 {"NemotronLayerNorm1P"}, {}),
    "t5": (lambda: T.T5ForConditionalGeneration(T.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=1,
        num_decoder_layers=1, num_heads=4, decoder_start_token_id=0,
        pad_token_id=0)), "t5", {"T5LayerNorm"}, {}),
    "bert": (lambda: T.BertForMaskedLM(T.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=32)), "text", {"LayerNorm"}, {}),
    "gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=4, n_positions=32,
        bos_token_id=1, eos_token_id=2)), "text", {"LayerNorm"}, {}),
    "vit": (lambda: T.ViTForImageClassification(T.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=4, intermediate_size=48, num_labels=5)),
        "image", {"LayerNorm"}, {}),
    # ConvNextLayerNorm: channels first in the stem and the downsampling
    # layers (data_format), channels last in the blocks
    "convnext": (lambda: T.ConvNextForImageClassification(T.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=5)),
        "image", {"ConvNextLayerNorm", "LayerNorm"}, {}),
    "convnextv2": (lambda: T.ConvNextV2ForImageClassification(
        T.ConvNextV2Config(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                           num_labels=5)),
        "image", {"ConvNextV2LayerNorm", "LayerNorm"}, {}),
    "swin": (lambda: T.SwinForImageClassification(T.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
        num_heads=[2, 2], window_size=4, num_labels=5)),
        "image", {"LayerNorm"}, {}),
    "mamba": (lambda: T.MambaForCausalLM(T.MambaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=4,
        expand=2)), "text", {"MambaRMSNorm"}, {}),
    # the mixer's gated RMSNorm, forward(x, gate), stays
    "mamba2": (lambda: T.Mamba2ForCausalLM(T.Mamba2Config(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=8,
        expand=2, head_dim=16, num_heads=4, n_groups=1, chunk_size=8)),
        "text", {"Mamba2RMSNorm"}, {"Mamba2RMSNormGated": "its forward takes gate besides the input"}),
}

# name: (timm model, its keywords, image size, classes converted)
TIMM = {
    "convnext_atto": ("convnext_atto", {}, 32, {"LayerNorm2d"}),
    "convnext_atto_rms2d": ("convnext_atto", {"norm_layer": "rmsnorm2d"},
                            32, {"RmsNorm2d"}),
    # GlobalResponseNorm (GRN, x + gamma * x * N(x) + beta) stays, without
    # a warning: it was named as a norm to replace by hand
    "convnextv2_atto": ("convnextv2_atto", {}, 32, {"LayerNorm2d"}),
    "vit_small_dinov2": ("vit_small_patch14_dinov2", dict(
        img_size=28, depth=2), 28, {"LayerNorm"}),
    "eva02_tiny": ("eva02_tiny_patch14_224", dict(img_size=28, depth=2), 28,
                   {"LayerNorm"}),
    "vit_tiny": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8,
                                              depth=2), 32, {"LayerNorm"}),
    # q/k LayerNorms over head_dim, on [B, heads, N, head_dim]
    "vit_tiny_qknorm": ("vit_tiny_patch16_224", dict(
        img_size=32, patch_size=8, depth=2, qk_norm=True), 32,
        {"LayerNorm"}),
    "vit_tiny_rmsfp32": ("vit_tiny_patch16_224", dict(
        img_size=32, patch_size=8, depth=2, norm_layer="rmsnormfp32"), 32,
        {"RmsNormFp32"}),
    "deit_tiny": ("deit_tiny_patch16_224", dict(img_size=32, patch_size=8,
                                                depth=2), 32, {"LayerNorm"}),
    "swin": ("swin_tiny_patch4_window7_224", dict(
        img_size=32, window_size=4, embed_dim=16, depths=(1, 1),
        num_heads=(2, 2)), 32, {"LayerNorm"}),
    # LayerNorm and LayerNorm2d side by side
    "edgenext": ("edgenext_xx_small", {}, 64, {"LayerNorm", "LayerNorm2d"}),
    # LayerNorm2dNoBias: channels first, without bias
    "poolformerv2": ("poolformerv2_s12", {}, 64,
                     {"LayerNorm2d", "LayerNorm2dNoBias"}),
    # LayerNorms beside timm's ConvNormAct blocks (conv, batch norm,
    # activation), which were warned about as norms to replace by hand
    "mobilevit": ("mobilevit_xxs", {}, 64, {"LayerNorm"}),
    # its attention biases are sized for 224 x 224 inputs
    "efficientformer": ("efficientformer_l1", {}, 224, {"LayerNorm"}),
}


def _as_saved(name, cls, conv, back):
    """back, loaded by dt.from_pretrained(cls, ...) from what conv saved,
    is a cls with every value as saved."""
    ok(type(back) is cls, "%s: an instance of %s" % (name, cls.__name__))
    mine, theirs = conv.state_dict(), back.state_dict()
    ok(sorted(mine) == sorted(theirs) and
       all(torch.equal(mine[k], theirs[k]) for k in mine),
       "%s: every value as saved" % name,
       lambda: [k for k in mine if k not in theirs or
                not torch.equal(mine[k], theirs[k])][:5])


def _inputs(kind, n=2):
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        return dict(pixel_values=torch.randn(n, 3, 32, 32, generator=g),
                    labels=torch.tensor([1, 3][:n]))
    ids = torch.randint(3, VOCAB, (n, 7), generator=g)
    if kind == "t5":
        return dict(input_ids=ids, labels=ids[:, :5].contiguous())
    return dict(input_ids=ids, labels=ids)


def _expected_cf(m):
    """Over dimension 1, by what the class says, not by dnc's probe:
    Hugging Face's data_format, timm's *2d norm classes."""
    if getattr(m, "data_format", None) == "channels_first":
        return True
    return type(m).__module__.startswith("timm.") and \
        re.search(r"2d", type(m).__name__, re.I) is not None


class _Reference(nn.Module):
    """tanh(alpha * x) * weight + bias in plain PyTorch, over the last
    dimension or dimension 1, with a PointwiseNorm's values."""

    def __init__(self, pn, cf):
        super().__init__()
        self.cf = cf
        self.alpha = float(pn.alpha.detach())
        # named weight: Mamba reads self.norm.weight.dtype
        self.weight = None if pn.weight is None else \
            pn.weight.detach().clone()
        self.b = None if pn.bias is None else pn.bias.detach().clone()

    def forward(self, x):
        y = torch.tanh(self.alpha * x)
        shape = (-1,) + (1,) * (x.dim() - 2) if self.cf else (-1,)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.b is not None:
            y = y + self.b.view(shape)
        return y


def _pns(model):
    return {p: m for p, m in model.named_modules()
            if isinstance(m, dt.PointwiseNorm)}


def _set(model, path, new):
    parent, _, leaf = path.rpartition(".")
    (model.get_submodule(parent) if parent else model).add_module(leaf, new)


def _convert(model):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        conv = dt.convert(copy.deepcopy(model), "dyt")
    said = [str(w.message) for w in rec if "dnc.convert" in str(w.message)]
    return conv, said


def _check_sites(name, orig, conv, said, converted, left):
    """Every norm of the converted classes a PointwiseNorm of its size,
    layout and bias; every norm of the classes that stay, named in a
    warning with its reason; nothing else converted."""
    pns = _pns(conv)
    seen = set()
    stay = {type(m).__name__ for p, m in conv.named_modules()
            if type(m).__name__ in left}
    ok(stay == set(left), "%s: %s stay" % (name, sorted(left)), stay)
    for path, m in orig.named_modules():
        cls = type(m).__name__
        if cls in left and not isinstance(conv.get_submodule(path),
                                          dt.PointwiseNorm):
            ok(type(conv.get_submodule(path)) is type(m),
               "%s: %s stays" % (name, path))
            ok(any("%s (%s)" % (path, cls) in s for s in said),
               "%s: %s (%s) named in a warning" % (name, path, cls), said)
            continue
        if cls not in converted:
            continue
        seen.add(path)
        pn = pns.get(path)
        ok(pn is not None, "%s: %s (%s) converted" % (name, path, cls))
        w = getattr(m, "weight", None)
        # (None: an RMSNorm without parameters that records no width)
        c = w.shape[0] if w is not None else \
            getattr(m, "normalized_shape", (None,))[0]
        ok(pn.normalized_shape == (None if c is None else (c,)),
           "%s: %s over %s channels" % (name, path, c),
           str(pn.normalized_shape))
        ok(pn.channels_last is not _expected_cf(m),
           "%s: %s over %s" % (name, path, "dimension 1" if _expected_cf(m)
                               else "the last dimension"))
        ok((pn.bias is None) == (getattr(m, "bias", None) is None),
           "%s: %s bias as the norm's" % (name, path))
    ok(set(pns) == seen, "%s: only those converted" % name,
       sorted(set(pns) ^ seen))
    ok(seen, "%s: something converted" % name)


def _against_reference(name, orig, conv, run, inp):
    """conv's output against orig with each converted norm replaced by a
    plain tanh over the dimension its class says (random alpha, weight
    and bias, so that every site counts)."""
    ref = copy.deepcopy(orig)
    torch.manual_seed(1)
    for path, pn in _pns(conv).items():
        with torch.no_grad():
            pn.alpha.uniform_(0.3, 1.2)
            if pn.weight is not None:
                pn.weight.uniform_(0.5, 1.5)
            if pn.bias is not None:
                pn.bias.uniform_(-0.3, 0.3)
        _set(ref, path, _Reference(pn, _expected_cf(orig.get_submodule(path))))
    conv.eval()
    ref.eval()
    with torch.no_grad():
        y, want = run(conv, inp), run(ref, inp)
    err = (y - want).abs().max().item()
    scale = want.abs().max().item()
    ok(torch.isfinite(y).all() and err <= 1e-5 * max(scale, 1e-3),
       "%s: the converted model computes the reference's output" % name,
       "max |diff| %.3g, max |reference| %.3g" % (err, scale))


def _train_and_reload(name, conv, fresh, run_loss, run):
    """Forward, backward and three AdamW steps (finite, the norms'
    parameters trained); the state_dict through torch.save into a fresh
    converted model: the same outputs."""
    conv.train()
    opt = torch.optim.AdamW(conv.parameters(), lr=1e-2)
    before = {p: m.alpha.detach().clone() for p, m in _pns(conv).items()}
    for _ in range(3):
        loss = run_loss(conv)
        ok(torch.isfinite(loss), "%s: finite loss" % name, str(loss))
        opt.zero_grad()
        loss.backward()
        for p, m in _pns(conv).items():
            ok(m.alpha.grad is not None and torch.isfinite(m.alpha.grad).all(),
               "%s: %s.alpha has a finite gradient" % (name, p))
        opt.step()
    moved = [p for p, m in _pns(conv).items()
             if not torch.equal(m.alpha, before[p])]
    ok(moved, "%s: the norms' alpha trained" % name)
    buf = io.BytesIO()
    torch.save(conv.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    conv.eval()
    fresh.eval()
    with torch.no_grad():
        ok(torch.equal(run(conv), run(fresh)),
           "%s: the state_dict round trip gives the same outputs" % name)


@pytest.mark.parametrize("name", sorted(HF))
def test_transformers(name):
    build, kind, converted, left = HF[name]
    torch.manual_seed(0)
    orig = build().float().eval()
    conv, said = _convert(orig)
    _check_sites(name, orig, conv, said, converted, left)
    for path, m in orig.named_modules():
        why = left.get(type(m).__name__)
        if why and not isinstance(conv.get_submodule(path), dt.PointwiseNorm):
            ok(any(why in s for s in said),
               "%s: the warning says why %s stays (%s)" % (name, path, why),
               said)
    inp = _inputs(kind)
    logits = lambda m, b=inp: m(**b).logits  # noqa: E731
    _against_reference(name, orig, conv, logits, inp)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings _convert checked
        fresh = dt.convert(build().float(), "dyt")
    _train_and_reload(name, conv, fresh, lambda m: m(**inp).loss,
                      lambda m: logits(m))


def test_transformers_head_dim_norms():
    """The q/k norms at their sizes: Qwen3's and Gemma3's over head_dim
    (24, on [B, L, heads, head_dim]), OLMo2's over the whole projection
    (heads * head_dim = 64 for q, kv_heads * head_dim = 32 for k)."""
    for name, q, k in (("qwen3", 24, 24), ("gemma3", 24, 24),
                       ("olmo2", 64, 32)):
        torch.manual_seed(0)
        conv = dt.convert(HF[name][0](), "dyt")
        for i in range(2):
            attn = conv.model.layers[i].self_attn
            ok(isinstance(attn.q_norm, dt.PointwiseNorm) and
               attn.q_norm.channels_last and
               tuple(attn.q_norm.normalized_shape) == (q,) and
               tuple(attn.k_norm.normalized_shape) == (k,),
               "%s: q_norm over %d, k_norm over %d, the last dimension"
               % (name, q, k), repr(attn.q_norm))


def test_transformers_one_plus_weight():
    """Gemma's RMSNorms and Nemotron's LayerNorm1P scale by 1 + weight:
    keep_affine copies 1 + weight; the unconverted Gemma's state_dict
    loads into the converted model as 1 + weight (docs/python.md)."""
    for name in ("gemma3", "nemotron"):
        torch.manual_seed(0)
        orig = HF[name][0]()
        norms = {p: m for p, m in orig.named_modules()
                 if type(m).__name__ in HF[name][2]}
        with torch.no_grad():
            for m in norms.values():
                m.weight.uniform_(-0.5, 0.5)
        sd = orig.state_dict()
        conv = dt.convert(copy.deepcopy(orig), "dyt", keep_affine=True)
        for p in norms:
            ok(torch.allclose(conv.get_submodule(p).weight,
                              1 + sd[p + ".weight"]),
               "%s: keep_affine copies 1 + weight at %s" % (name, p))
    torch.manual_seed(0)
    fresh = dt.convert(HF["gemma3"][0](), "dyt")
    torch.manual_seed(0)
    orig = HF["gemma3"][0]()
    with torch.no_grad():
        for p, m in orig.named_modules():
            if type(m).__name__ == "Gemma3RMSNorm":
                m.weight.uniform_(-0.5, 0.5)
    sd = orig.state_dict()
    r = fresh.load_state_dict(sd, strict=False)
    ok(not r.unexpected_keys and
       all(k.endswith(".alpha") for k in r.missing_keys),
       "Gemma's checkpoint loads but for alpha", str(r))
    for p, m in _pns(fresh).items():
        ok(torch.allclose(m.weight, 1 + sd[p + ".weight"]),
           "Gemma's checkpoint loads 1 + weight at %s" % p)


def test_transformers_meta_device():
    """Deferred initialisation (the model built under torch.device('meta')):
    every site converted as on the CPU, over the last dimension, Gemma3's
    with the 1 + weight load hook; the model stays on meta."""
    for name, n, offset in (("llama", 5, False), ("gemma3", 13, True)):
        torch.manual_seed(0)
        with torch.device("meta"):
            m = HF[name][0]()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = dt.convert(m, "dyt")
        pns = _pns(m)
        ok(len(pns) == n and all(x.channels_last and x.weight.is_meta
                                 for x in pns.values()),
           "%s on meta: %d sites, over the last dimension" % (name, n))
        ok(all(bool(x._load_state_dict_pre_hooks) == offset
               for x in pns.values()),
           "%s on meta: 1 + weight %s" % (name, "found" if offset else
                                          "not found"))


def test_transformers_kinds_and_bf16():
    """T5LayerNorm is of kind 'rmsnorm' (weight-only); Cohere's bias-free
    LayerNorm, which subtracts the mean by hand, and Nemotron's
    LayerNorm1P are of kind 'layernorm'; a bfloat16
    LLaMA converts to bfloat16 norms and trains; generate() runs."""
    for name, kind, other in (("t5", "rmsnorm", "layernorm"),
                              ("cohere", "layernorm", "rmsnorm"),
                              ("nemotron", "layernorm", "rmsnorm")):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok(_pns(dt.convert(HF[name][0](), "dyt", kind=kind)),
               "%s: converted with kind=%r" % (name, kind))
        with pytest.raises(ValueError, match=r"kind='%s' or 'all'" % kind):
            dt.convert(HF[name][0](), "dyt", kind=other)
    torch.manual_seed(0)
    m = dt.convert(HF["llama"][0]().to(torch.bfloat16), "dyt")
    ok(all(x.weight.dtype == torch.bfloat16 for x in _pns(m).values()),
       "bfloat16 norms")
    inp = _inputs("text")
    loss = m(**inp).loss
    loss.backward()
    ok(torch.isfinite(loss) and m.model.norm.alpha.grad is not None,
       "bfloat16 LLaMA: finite loss, gradients")
    m = m.float().eval()
    out = m.generate(inp["input_ids"][:1], max_new_tokens=3, do_sample=False)
    ok(out.shape == (1, 10), "generate", str(out.shape))


def test_transformers_fit_initial():
    """fit_initial on Hugging Face's batches (mappings, model(**batch)):
    one alpha per site, finite and positive, and at every site the
    converted norm (keep_affine) is nearer the original's output than
    with DyT's default alpha 0.5 (at random initialisation the inputs are
    small, std 0.02 embeddings: alpha is large). Cohere's bias-free
    LayerNorm is fitted to LayerNorm's output."""
    for name in ("llama", "cohere"):
        torch.manual_seed(0)
        orig = HF[name][0]().eval()
        batches = [{"input_ids": _inputs("text")["input_ids"]}]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            init = dt.fit_initial(orig, "dyt", batches)
            fitted = dt.convert(copy.deepcopy(orig), "dyt", init=init,
                                keep_affine=True).eval()
            plain = dt.convert(copy.deepcopy(orig), "dyt",
                               keep_affine=True).eval()
        sites = dict((p, m) for p, m, _ in dt.find_norms(orig))
        ok(set(init) == set(sites), "%s: every site fitted" % name,
           sorted(init))
        seen = {}
        hooks = [m.register_forward_hook(
            lambda mod, a, y, p=p: seen.__setitem__(p, (a[0], y)))
            for p, m in sites.items()]
        with torch.no_grad():
            orig(**batches[0])
        for h in hooks:
            h.remove()
        for p, (x, y) in seen.items():
            a = init[p]["alpha"]
            with torch.no_grad():
                e1 = ((fitted.get_submodule(p)(x) - y).norm() / y.norm())
                e0 = ((plain.get_submodule(p)(x) - y).norm() / y.norm())
            ok(a > 0 and e1 < e0 and e1 < 0.6,
               "%s: %s fitted (alpha %.3g): relative error %.3f, at alpha "
               "0.5 %.3f" % (name, p, a, e1, e0))
        if name == "cohere":
            ok(all(k == "layernorm" and
                   dconv._site(m, p, k, None).base == "layernorm"
                   for p, m, k in dt.find_norms(orig)),
               "Cohere's LayerNorm is fitted to LayerNorm's output")


def test_transformers_trainer_weight_decay(tmp_path):
    """Hugging Face's Trainer leaves out of weight decay the parameters of
    nn.LayerNorm modules and of names with "norm" in them: a PointwiseNorm
    is no nn.LayerNorm, and GPT-2's ln_1, ln_2 and ln_f name none, so its
    plain get_decay_parameter_names decays their alpha and weight. The
    recipe of docs/training.md (a Trainer leaving out
    dt.no_weight_decay(model)) decays what it decayed before convert, no
    norm parameter. With accelerate (which the Trainer needs) the real
    Trainer's optimizer groups are checked; without it, the method."""
    class Trainer(T.Trainer):
        def get_decay_parameter_names(self, model):
            skip = dt.no_weight_decay(model)
            return [n for n in super().get_decay_parameter_names(model)
                    if n not in skip]

    def decayed(cls, model):
        try:
            import accelerate  # noqa: F401
        except ImportError:
            return set(cls.get_decay_parameter_names(object.__new__(cls),
                                                     model))
        args = T.TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                   weight_decay=0.1, report_to="none")
        opt = cls(model=model, args=args).create_optimizer()
        ids = {id(p) for g in opt.param_groups if g["weight_decay"] > 0
               for p in g["params"]}
        return {n for n, p in model.named_parameters() if id(p) in ids}

    torch.manual_seed(0)
    m = HF["gpt2"][0]()
    before = decayed(T.Trainer, m)
    ok(not [n for n in before if ".ln_" in n],
       "before convert, no LayerNorm parameter is decayed", sorted(before))
    dt.convert(m, "dyt")
    norms = {"%s.%s" % (p, n) for p, pn in _pns(m).items()
             for n, _ in pn.named_parameters()}
    ok(norms == dt.no_weight_decay(m) and len(norms) == 9,
       "no_weight_decay names every PointwiseNorm parameter",
       sorted(dt.no_weight_decay(m)))
    ok(decayed(T.Trainer, m) & norms,
       "the plain Trainer decays the PointwiseNorms' parameters")
    ok(decayed(Trainer, m) == before,
       "the recipe's Trainer decays what it decayed before convert",
       sorted(decayed(Trainer, m) ^ before))
    ok(dt.no_weight_decay(m, also="*.bias") ==
       norms | {n for n, _ in m.named_parameters() if n.endswith(".bias")},
       "also= adds the parameters it matches")


def test_transformers_save_pretrained_reload(tmp_path):
    """A converted model saved by save_pretrained, loaded back by
    dt.from_pretrained(cls, path, fn): every value as saved (ViT's keys
    renamed by transformers 5 on load, Gemma's weight not offset again),
    the same outputs, an instance of cls. from_pretrained of the original
    class dropped alpha (Hugging Face's report of unexpected keys only)
    and convert(keep_affine=True) then added 1 to Gemma's saved scale:
    that convert warns now; the original model's checkpoint and one
    converted to another function are refused."""
    T.logging.set_verbosity_error()
    for name in ("llama", "gemma", "vit"):
        build, kind = HF[name][:2]
        cls = type(build())
        torch.manual_seed(0)
        conv = dt.convert(build().eval(), "dyt")
        ok(build().config.to_dict().get("dnc_functions") is None,
           "%s: convert marks its own model's config only" % name)
        with torch.no_grad():
            for p, m in _pns(conv).items():
                for t in m.parameters():
                    t.add_(0.3 * torch.randn_like(t))
        d = tmp_path / name
        conv.save_pretrained(d)
        back = dt.from_pretrained(cls, d, "dyt")
        _as_saved(name, cls, conv, back)
        inp = _inputs(kind)
        with torch.no_grad():
            ok(torch.equal(conv(**inp).logits, back.eval()(**inp).logits),
               "%s: the same outputs" % name)
        with pytest.warns(UserWarning, match="was saved from a model "
                          "converted by dnc"):
            dt.convert(cls.from_pretrained(d), "dyt", keep_affine=True)
        for fn, why in (("dyisru", "not to fn dyisru"),
                        ("fn dyt(x; alpha = 0.5) = x / sqrt(alpha + x^2)",
                         "not to fn dyt")):
            with pytest.raises(ValueError, match=why):
                dt.from_pretrained(cls, d, fn)
        torch.manual_seed(0)
        build().save_pretrained(tmp_path / (name + "-original"))
        with pytest.raises(ValueError, match="not a checkpoint of this "
                           "model converted"):
            dt.from_pretrained(cls, tmp_path / (name + "-original"), "dyt")


def _llava():
    return T.LlavaForConditionalGeneration(T.LlavaConfig(
        text_config=T.LlamaConfig(
            hidden_size=64, intermediate_size=96, num_hidden_layers=1,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=300),
        vision_config=T.CLIPVisionConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=1,
            num_attention_heads=2, image_size=16, patch_size=4),
        image_token_index=250, vision_feature_layer=-1))


def _qwen25vl():
    return T.Qwen2_5_VLForConditionalGeneration(T.Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=64, intermediate_size=96, num_hidden_layers=1,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                 mrope_section=[2, 2, 4])),
        vision_config=dict(
            depth=1, hidden_size=32, intermediate_size=48, num_heads=2,
            out_hidden_size=64, patch_size=4, spatial_merge_size=2,
            temporal_patch_size=2, window_size=16, fullatt_block_indexes=[0]),
        image_token_id=250, video_token_id=251, vision_start_token_id=252,
        vision_end_token_id=253))


def test_transformers_from_pretrained_renamed_keys(tmp_path):
    """dt.from_pretrained of multimodal models whose checkpoints
    transformers 5 renames on load (LLaVA, Qwen2.5-VL), and of ViT, which
    loaded before: every value as saved, the same logits. The class it
    loads with had dnc.convert for its module, which transformers takes
    for custom code (is_custom_code) and loads without its key renames:
    LLaVA's lm_head came back random, silently, and Qwen2.5-VL's
    checkpoint was refused as 'not a checkpoint of this model
    converted'. The checkpoint still names the class in
    config.architectures and loads with the original class; the model
    loaded pickles as an instance of it."""
    import json
    import pickle
    T.logging.set_verbosity_error()
    vit = HF["vit"][0]
    for name, build in (("llava", _llava), ("qwen2.5-vl", _qwen25vl),
                        ("vit", vit)):
        torch.manual_seed(0)
        conv = dt.convert(build().eval(), "dyt")
        cls = type(conv)
        with torch.no_grad():
            for m in _pns(conv).values():
                for t in m.parameters():
                    t.add_(0.3 * torch.randn_like(t))
        d = tmp_path / name
        conv.save_pretrained(d)
        saved = json.loads((d / "config.json").read_text())
        ok(saved["architectures"] == [cls.__name__],
           "%s: config.architectures names %s" % (name, cls.__name__),
           saved["architectures"])
        back = dt.from_pretrained(cls, d, "dyt").eval()
        _as_saved(name, cls, conv, back)
        inp = _inputs("image") if name == "vit" else \
            dict(input_ids=torch.tensor([[5, 7, 9, 11, 13]]))
        inp.pop("labels", None)
        with torch.no_grad():
            ok(torch.equal(conv(**inp).logits, back(**inp).logits),
               "%s: the same logits" % name)
        plain = cls.from_pretrained(d)
        mine, theirs = conv.state_dict(), plain.state_dict()
        ok(all(torch.equal(mine[k], theirs[k]) for k in theirs),
           "%s: the checkpoint loads with %s as before" % (name,
                                                          cls.__name__),
           lambda: [k for k in theirs if not torch.equal(mine[k],
                                                         theirs[k])][:5])
        again = pickle.loads(pickle.dumps(back))
        ok(type(again) is cls, "%s: pickles as an instance of %s"
           % (name, cls.__name__))


def test_transformers_from_pretrained_auto_classes(tmp_path):
    """dt.from_pretrained(AutoModelForCausalLM, path, fn), as checkpoints
    are usually loaded: the auto class's from_pretrained made the
    original model, unconverted, and dnc then set its class to the auto
    class, which is no nn.Module ("'AutoModelForCausalLM' object has no
    attribute 'named_modules'"). Now an instance of the model class the
    auto class picks for the saved config, every value as saved; a class
    whose from_pretrained makes another class's model is refused."""
    T.logging.set_verbosity_error()
    for name, auto in (("llama", T.AutoModelForCausalLM),
                       ("vit", T.AutoModelForImageClassification)):
        build, kind = HF[name][:2]
        torch.manual_seed(0)
        conv = dt.convert(build().eval(), "dyt")
        with torch.no_grad():
            for m in _pns(conv).values():
                for t in m.parameters():
                    t.add_(0.3 * torch.randn_like(t))
        d = tmp_path / name
        conv.save_pretrained(d)
        for kw in ({}, {"config": T.AutoConfig.from_pretrained(d)}):
            back = dt.from_pretrained(auto, d, "dyt", **kw).eval()
            _as_saved(name, type(conv), conv, back)
            inp = _inputs(kind)
            inp.pop("labels")
            with torch.no_grad():
                ok(torch.equal(conv(**inp).logits, back(**inp).logits),
                   "%s by %s: the same logits" % (name, auto.__name__))
        with pytest.raises(ValueError, match="not to fn dyisru"):
            dt.from_pretrained(auto, d, "dyisru")
    with pytest.raises(ValueError, match="pass the model's class itself"):
        dt.from_pretrained(T.AutoModelForSeq2SeqLM, tmp_path / "llama", "dyt")

    class Factory(T.LlamaForCausalLM):
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return T.LlamaForCausalLM.from_pretrained(*args, **kwargs)
    with pytest.raises(TypeError, match="made a LlamaForCausalLM, not an "
                       "instance of Factory"):
        dt.from_pretrained(Factory, tmp_path / "llama", "dyt")


def test_transformers_sub_configs_stay_shared():
    """convert marks a copy of the model's config; a multimodal model's
    language model and vision tower hold the config's sub-configs
    (config.text_config, config.vision_config), and kept the originals,
    so that model.config.text_config was no longer the language model's
    config and a change to it (use_cache = False) did not reach it. Every
    module now holds the copy's sub-config; the original config is not
    marked, and no module holds it or its sub-configs."""
    for name, build in (("llava", _llava), ("qwen2.5-vl", _qwen25vl)):
        torch.manual_seed(0)
        m = build()
        before = m.config
        olds = {id(before)} | {id(getattr(before, k))
                               for k in before.sub_configs}
        conv = dt.convert(m, "dyt")
        new = conv.config
        ok(new is not before and new.dnc_functions and
           getattr(before, "dnc_functions", None) is None,
           "%s: a copy of the config is marked" % name)
        ours = {id(new)} | {id(getattr(new, k)) for k in new.sub_configs}
        held = [(p, a) for p, mod in conv.named_modules()
                for a, v in vars(mod).items() if hasattr(v, "to_dict") and
                hasattr(v, "model_type")]
        ok(held and all(id(getattr(conv.get_submodule(p), a)) in ours
                        for p, a in held),
           "%s: every module holds the copy or one of its sub-configs" % name,
           [(p, a) for p, a in held
            if id(getattr(conv.get_submodule(p), a)) in olds][:5])
        lm = conv.model.language_model
        new.text_config.use_cache = False
        ok(lm.config is new.text_config and lm.config.use_cache is False,
           "%s: a change to config.text_config reaches the language model"
           % name)


def test_transformers_from_pretrained_of_a_model_converted_in_part(tmp_path):
    """A LLaMA whose first layer alone was converted (convert of a
    submodule), saved by save_pretrained: dt.from_pretrained, which
    converts every norm, was refused as 'not a checkpoint of this model
    converted', advising the original class's from_pretrained and
    convert, which drops the saved alphas (Hugging Face's report of
    unexpected keys only). The refusal now names the norms that have
    them and those that do not, and the remedy it names loads every
    value as saved."""
    from safetensors.torch import load_file
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    torch.manual_seed(0)
    m = build().eval()
    dt.convert(m.model.layers[0], "dyt")
    with torch.no_grad():
        for pn in _pns(m).values():
            pn.alpha.fill_(0.9)
    m.save_pretrained(tmp_path)
    with pytest.raises(ValueError) as info:
        dt.from_pretrained(type(m), tmp_path, "dyt")
    said = str(info.value)
    ok("has dyt's parameters at model.layers.0.input_layernorm, "
       "model.layers.0.post_attention_layernorm, but none at "
       "model.layers.1.input_layernorm" in said and
       "converted in part" in said and "original model" not in said,
       "the refusal names the converted norms and the others", said)
    back = build().eval()
    dt.convert(back.model.layers[0], "dyt")
    back.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    mine, theirs = m.state_dict(), back.state_dict()
    ok(sorted(mine) == sorted(theirs) and
       all(torch.equal(mine[k], theirs[k]) for k in mine),
       "the remedy it names loads every value as saved")


def test_transformers_convert_of_the_backbone(tmp_path):
    """convert(model.model, fn) of a LlamaForCausalLM (the backbone, which
    holds every norm): the backbone alone took the marked copy of the
    config, so that model.config was no longer model.model.config (a
    change to use_cache did not reach the backbone) and save_pretrained
    of the model wrote a config without dnc_functions, from which
    dt.from_pretrained with another function of the same parameters'
    names loaded the saved alphas into it, silently. The model around the
    backbone now holds the marked copy too: save_pretrained and
    dt.from_pretrained give back the converted model with every value as
    saved, another function is refused, and another model made from the
    same config object stays unmarked. LLaVA's language model (which
    holds config.text_config): the model's config is marked, its
    text_config is the language model's config, and dt.from_pretrained
    refuses the checkpoint, naming the vision tower's norms that were not
    converted."""
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    torch.manual_seed(0)
    m = build().eval()
    twin = type(m)(m.config)  # another model of the same config object
    dt.convert(m.model, "dyt")
    ok(m.config is m.model.config and m.config.dnc_functions and
       all(getattr(mod, "config", m.config) is m.config
           for mod in m.modules()),
       "the model and its backbone hold one marked config",
       (type(m.config), type(m.model.config)))
    ok(getattr(twin.config, "dnc_functions", None) is None and
       twin.model.config is twin.config,
       "another model made from the same config object is not marked")
    m.config.use_cache = False
    ok(m.model.config.use_cache is False,
       "a change to model.config reaches the backbone")
    with torch.no_grad():
        for pn in _pns(m).values():
            for t in pn.parameters():
                t.add_(0.3 * torch.randn_like(t))
    m.save_pretrained(tmp_path / "llama")
    back = dt.from_pretrained(type(m), tmp_path / "llama", "dyt").eval()
    _as_saved("llama", type(m), m, back)
    inp = _inputs("text")
    with torch.no_grad():
        ok(torch.equal(m(**inp).logits, back(**inp).logits),
           "the same logits")
    with pytest.raises(ValueError, match="converted to fn dyt"):
        dt.from_pretrained(type(m), tmp_path / "llama",
                           "fn isru(x; alpha = 0.5) = x / sqrt(alpha + x^2)")
    with pytest.warns(UserWarning, match="converted by dnc"):
        dt.convert(type(m).from_pretrained(tmp_path / "llama"), "dyt",
                   keep_affine=True)
    torch.manual_seed(0)
    v = _llava()
    lm = v.model.language_model
    dt.convert(lm, "dyt")
    ok(v.config.dnc_functions and v.config.text_config is lm.config and
       lm.config.dnc_functions and v.model.config is v.config,
       "LLaVA: its config is marked, and its text_config is the language "
       "model's")
    v.save_pretrained(tmp_path / "llava")
    with pytest.raises(ValueError, match="none at model.vision_tower"):
        dt.from_pretrained(type(v), tmp_path / "llava", "dyt")


class _HalfT5Reference(nn.Module):
    """tanh(alpha * x) * weight in float32, returned in the weight's dtype,
    as T5LayerNorm returns a float32 input to a float16 weight."""

    def __init__(self, pn):
        super().__init__()
        self.alpha = pn.alpha.detach().clone()
        self.weight = pn.weight.detach().clone()

    def forward(self, x):
        y = torch.tanh(self.alpha.float() * x.float()) * self.weight.float()
        return y.to(self.weight.dtype)


def test_transformers_t5_in_float16(tmp_path):
    """T5 loaded in float16 keeps its 'wo' layers in float32
    (_keep_in_fp32_modules), whose output reaches the next T5LayerNorm
    in float32; T5LayerNorm returns its weight's dtype. The converted
    model's call was a TypeError ('the input is torch.float32 but
    'weight' is torch.float16'), loaded by dt.from_pretrained or
    converted after T5's own from_pretrained. Now it computes what T5's
    norms replaced by plain float32 DyT modules returning float16 do, and
    generates."""
    T.logging.set_verbosity_error()
    build = HF["t5"][0]
    torch.manual_seed(0)
    build().save_pretrained(tmp_path / "original")
    conv = dt.convert(build().eval(), "dyt")
    with torch.no_grad():
        for m in _pns(conv).values():
            m.alpha.uniform_(0.3, 1.2)
            m.weight.uniform_(0.5, 1.5)
    conv.save_pretrained(tmp_path / "converted")
    inp = _inputs("t5")
    inp["decoder_input_ids"] = inp.pop("labels")
    for back in (dt.from_pretrained(type(conv), tmp_path / "converted", "dyt",
                                    dtype=torch.float16),
                 dt.convert(type(conv).from_pretrained(
                     tmp_path / "original", dtype=torch.float16), "dyt")):
        back.eval()
        ok({t.dtype for n, t in back.named_parameters() if ".wo." in n} ==
           {torch.float32}, "T5 in float16 keeps wo in float32")
        ref = copy.deepcopy(back)
        for path, pn in _pns(back).items():
            _set(ref, path, _HalfT5Reference(pn))
        with torch.no_grad():
            y, want = back(**inp).logits, ref(**inp).logits
        ok(y.dtype == want.dtype and
           torch.allclose(y.float(), want.float(), rtol=1e-3, atol=1e-3),
           "the reference's logits",
           "max |diff| %.3g" % (y.float() - want.float()).abs().max())
        out = back.generate(inp["input_ids"], max_new_tokens=4,
                            do_sample=False)
        ok(torch.equal(out, ref.generate(inp["input_ids"], max_new_tokens=4,
                                         do_sample=False)),
           "generate: the reference's tokens")


def test_transformers_sharded_checkpoint(tmp_path):
    """A converted Gemma saved in shards of one tensor each, loaded by
    transformers' load_sharded_checkpoint (one load_state_dict per shard,
    in no set order): a norm's weight in a shard without f's parameters
    was taken for Gemma's offset and loaded as 1 + weight. f's parameters
    before the weight (alpha) and after it (z) both load as saved."""
    import json
    from transformers.trainer_utils import load_sharded_checkpoint
    T.logging.set_verbosity_error()
    one = _lm("GemmaConfig", "GemmaForCausalLM", num_hidden_layers=1)
    for fn, p in (("dyt", "alpha"), ("fn f(x; z = 0.5) = tanh(z * x)", "z")):
        torch.manual_seed(0)
        conv = dt.convert(one().eval(), fn)
        with torch.no_grad():
            for m in _pns(conv).values():
                for t in m.parameters():
                    t.add_(0.3 * torch.randn_like(t))
        d = tmp_path / p
        conv.save_pretrained(d, max_shard_size=100)
        where = json.loads((d / "model.safetensors.index.json").read_text())
        where = where["weight_map"]
        ok(where["model.norm.weight"] != where["model.norm." + p],
           "%s: the norm's weight and %s in two shards" % (fn, p))
        back = dt.convert(one().eval(), fn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_sharded_checkpoint(back, d, strict=False)
        mine, theirs = conv.state_dict(), back.state_dict()
        ok(all(torch.equal(mine[k], theirs[k]) for k in mine),
           "%s: every value as saved" % fn,
           lambda: [k for k in mine if not torch.equal(mine[k], theirs[k])])


@pytest.mark.slow
def test_transformers_compile():
    """torch.compile of a converted LLaMA: the eager outputs, and a
    backward (7 to 20 s on two cores)."""
    torch.manual_seed(0)
    m = dt.convert(HF["llama"][0](), "dyt")
    inp = _inputs("text")
    mc = torch.compile(m)
    with torch.no_grad():
        ok(torch.allclose(mc(**inp).logits, m(**inp).logits, atol=1e-5),
           "compiled outputs")
    loss = mc(**inp).loss
    loss.backward()
    ok(torch.isfinite(loss) and m.model.norm.alpha.grad is not None,
       "compiled backward")


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm(name):
    arch, kw, size, converted = TIMM[name]
    torch.manual_seed(0)

    def build():
        return timm.create_model(arch, pretrained=False, num_classes=5,
                                 **kw).eval()
    orig = build()
    n = 1 if size > 64 else 2
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 3][:n])
    conv, said = _convert(orig)
    ok(not said, "%s: no warnings" % name, said)
    _check_sites(name, orig, conv, said, converted, {})
    run = lambda m, x=x: m(x)  # noqa: E731
    _against_reference(name, orig, conv, run, x)
    torch.manual_seed(0)
    fresh = dt.convert(build(), "dyt")
    _train_and_reload(
        name, conv, fresh,
        lambda m: nn.functional.cross_entropy(m(x), labels), run)


def test_timm_batch_norm_models():
    """Models of batch norms in timm's ConvNormAct blocks (conv, batch
    norm, activation) have nothing to convert: refused, without naming
    those blocks as norms not recognised (the error listed every one)."""
    for arch in ("efficientformerv2_s0", "fastvit_t8"):
        m = timm.create_model(arch, pretrained=False, num_classes=5)
        with pytest.raises(ValueError) as info:
            dt.convert(m, "dyt")
        ok("has no LayerNorm or RMSNorm to replace" in str(info.value) and
           "ConvNormAct" not in str(info.value),
           "%s: refused, no ConvNormAct named" % arch, str(info.value))


def _one_config(model):
    """Every module of model that holds a config holds model.config."""
    return all(getattr(mod, "config", model.config) is model.config
               for mod in model.modules())


def test_transformers_config_of_a_model_converted_through_a_part(tmp_path):
    """convert of a module that holds no config: one decoder layer
    (model.model.layers[1]), the nn.ModuleList of the layers, a wrapper
    around the model (a training module, self.m = model). The model's
    config stayed unmarked, so save_pretrained wrote no dnc_functions: a
    checkpoint of the wrapped model loaded by dt.from_pretrained with
    another function of the same parameters' names took the saved alphas,
    silently, and from_pretrained of the original class followed by
    convert(keep_affine=True) (which drops them) gave no warning. Now the
    model's config is marked as by convert of the model, every module of
    it holds that one config, and the config it was made from is not
    marked."""
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    cfg_of = lambda: build().config  # noqa: E731
    isru = "fn isru(x; alpha = 0.5) = x / sqrt(alpha + x^2)"
    for what, part in (("a decoder layer", lambda m: m.model.layers[1]),
                       ("the layers' ModuleList", lambda m: m.model.layers)):
        torch.manual_seed(0)
        m = build().eval()
        before = m.config
        dt.convert(part(m), "dyt")
        ok(m.config.dnc_functions and _one_config(m) and
           getattr(before, "dnc_functions", None) is None,
           "%s: the model's config is marked, one config in the model"
           % what)
        d = tmp_path / what.replace(" ", "_").replace("'", "")
        m.save_pretrained(d)
        with pytest.warns(UserWarning, match="converted by dnc"):
            dt.convert(type(m).from_pretrained(d), "dyt", keep_affine=True)
    ok(getattr(cfg_of(), "dnc_functions", None) is None, "a fresh config")

    class Wrapper(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
    torch.manual_seed(0)
    w = dt.convert(Wrapper(build().eval()), "dyt")
    ok(w.m.config.dnc_functions and _one_config(w.m),
       "a wrapper: the model inside it is marked")
    with torch.no_grad():
        for pn in _pns(w).values():
            pn.alpha.uniform_(0.3, 1.2)
    w.m.save_pretrained(tmp_path / "wrapped")
    back = dt.from_pretrained(type(w.m), tmp_path / "wrapped", "dyt")
    _as_saved("wrapped", type(w.m), w.m, back)
    with pytest.raises(ValueError, match="converted to fn dyt"):
        dt.from_pretrained(type(w.m), tmp_path / "wrapped", isru)


def test_transformers_distillation_with_one_config(tmp_path):
    """A distillation module holding a student and a teacher made from one
    config object (and holding it too): converting the student marked the
    teacher's config, which then said dnc functions where the teacher
    computes RMSNorm (its save_pretrained wrote them, and loading its
    checkpoint with the original class and convert warned that it was
    saved from a converted model). Now the student and the module around
    it hold a marked copy, the teacher keeps the config, unmarked, and a
    warning says that the two no longer share it. Converting the module
    whole (student and teacher) gives both one marked config; a part of
    one model holding its config (BART's decoder beside the encoder
    converted) is no teacher, and takes the marked copy."""
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    cfg = build().config

    class Distill(nn.Module):
        def __init__(self, config, student, teacher):
            super().__init__()
            self.config = config
            self.student, self.teacher = student, teacher
    torch.manual_seed(0)
    d = Distill(cfg, type(build())(cfg), type(build())(cfg)).eval()
    with pytest.warns(UserWarning, match="teacher holds the config of the "
                      "converted model .* not converted: it keeps the "
                      "config as it was, without dnc_functions"):
        dt.convert(d.student, "dyt")
    ok(d.student.config.dnc_functions and _one_config(d.student) and
       d.config is d.student.config, "the student's config is marked")
    ok(getattr(d.teacher.config, "dnc_functions", None) is None and
       _one_config(d.teacher) and d.teacher.config is cfg,
       "the teacher keeps its config, unmarked")
    d.teacher.save_pretrained(tmp_path / "teacher")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = dt.convert(type(d.teacher).from_pretrained(tmp_path / "teacher"),
                       "dyt", keep_affine=True)
    ok(_pns(t), "the teacher's checkpoint converts without a warning")
    d.student.save_pretrained(tmp_path / "student")
    back = dt.from_pretrained(type(d.student), tmp_path / "student", "dyt")
    _as_saved("student", type(d.student), d.student, back)
    torch.manual_seed(0)
    d = Distill(cfg, type(build())(cfg), type(build())(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.convert(d, "dyt")
    ok(d.student.config is d.teacher.config is d.config and
       d.config.dnc_functions and _one_config(d),
       "converted whole: one marked config")
    # a teacher of another class around the same backbone class (a
    # LlamaForSequenceClassification beside a LlamaForCausalLM student):
    # all of it keeps the config; its backbone alone had kept it
    torch.manual_seed(0)
    d = Distill(cfg, type(build())(cfg),
                T.LlamaForSequenceClassification(cfg))
    with pytest.warns(UserWarning, match="teacher holds the config"):
        dt.convert(d.student.model, "dyt")
    ok(d.student.config.dnc_functions and d.config is d.student.config and
       d.teacher.config is cfg and _one_config(d.teacher),
       "a teacher of another class keeps the config, all of it")
    # a part of the same model holding the config is no teacher: BART's
    # decoder (a BartDecoder beside the BartEncoder converted)
    bart = T.BartForConditionalGeneration(T.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.convert(bart.model.encoder, "dyt")
    ok(bart.config.dnc_functions and _one_config(bart),
       "BART's encoder converted: one marked config, its decoder's too")


def test_transformers_config_of_a_norm_converted_by_itself(tmp_path):
    """A norm converted by itself and set in its place,
    model.model.norm = dt.convert(model.model.norm, fn): convert ran while
    the model still held the norm, and marked no config, so that a LLaMA
    whose layers were converted to DyT and whose final norm to an ISRU
    was saved as DyT's alone, and dt.from_pretrained(cls, path, 'dyt')
    loaded the ISRU's alpha into a DyT, silently. The PointwiseNorm marks
    the config of the model it is set into (in a decoder layer: of the
    model around it); one not set into a model marks nothing."""
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    isru = "fn isru(x; alpha = 0.5) = x / sqrt(alpha + x^2)"
    torch.manual_seed(0)
    m = build().eval()
    dt.convert(m.model.layers, "dyt")
    m.model.norm = dt.convert(m.model.norm, isru)
    ok(len(m.config.dnc_functions) == 2 and _one_config(m),
       "both functions in the model's config", m.config.dnc_functions)
    m.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="as well as"):
        dt.from_pretrained(type(m), tmp_path / "two", "dyt")
    m = build()
    layer = m.model.layers[0]
    layer.input_layernorm = dt.convert(layer.input_layernorm, "dyt")
    ok(isinstance(layer.input_layernorm, dt.PointwiseNorm) and
       m.config.dnc_functions and _one_config(m),
       "a norm of a decoder layer: the model's config is marked")
    m = build()
    pn = dt.convert(m.model.norm, "dyt")
    ok(isinstance(pn, dt.PointwiseNorm) and
       getattr(m.config, "dnc_functions", None) is None,
       "a norm converted but not set into the model marks nothing")


def test_transformers_t5_encoder_and_decoder_converted_apart(tmp_path):
    """T5's encoder and decoder hold copies of the model's config (not the
    config itself, nor sub-configs of it): convert(t5.encoder, ...) marked
    the encoder's copy alone, so that a T5 whose encoder was converted to
    an ISRU and its decoder to DyT was saved with a config naming
    neither, and dt.from_pretrained(cls, path, 'dyt') loaded the ISRU's
    alphas into DyTs, silently (its logits 0.3 off). The model's config
    names both now, and that load is refused."""
    T.logging.set_verbosity_error()
    isru = "fn isru(x; alpha = 0.5) = x / sqrt(alpha + x^2)"
    torch.manual_seed(0)
    m = HF["t5"][0]().eval()
    dt.convert(m.encoder, isru)
    dt.convert(m.decoder, "dyt")
    ok(len(m.config.dnc_functions) == 2 and
       m.encoder.config.dnc_functions == m.config.dnc_functions[:1] and
       m.decoder.config.dnc_functions == m.config.dnc_functions[1:],
       "the model's config names both functions, each stack's its own",
       m.config.to_dict().get("dnc_functions"))
    m.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="as well as"):
        dt.from_pretrained(type(m), tmp_path, "dyt")


def test_transformers_norm_set_in_place_scans_the_heap_once(monkeypatch):
    """A norm converted by itself and set in its place finds the model
    around it through the garbage collector (a module has no link to its
    parent). That walk had taken two or three scans of every tracked
    object a generation outward, done twice, and convert of the norm two
    more: sixteen scans, 0.6 s a norm in a process of 400000 objects (19
    s for a loop over the 32 norms of a 16-layer LLaMA, where converting
    the model takes 0.25 s). Now convert of the norm scans nothing, and
    setting it in place scans twice (its referrers, then the modules);
    convert of a whole model, held by no module, once."""
    T.logging.set_verbosity_error()
    build = HF["llama"][0]
    m = build()
    calls = []
    refs, objs = gc.get_referrers, gc.get_objects
    monkeypatch.setattr(gc, "get_referrers",
                        lambda *a: calls.append("r") or refs(*a))
    monkeypatch.setattr(gc, "get_objects",
                        lambda *a, **k: calls.append("o") or objs(*a, **k))
    layer = m.model.layers[1]
    pn = dt.convert(layer.post_attention_layernorm, "dyt")
    ok(calls == [], "convert of a norm by itself: no scan", calls)
    layer.post_attention_layernorm = pn
    ok(m.config.dnc_functions and _one_config(m) and len(calls) <= 2,
       "set in place: the model's config marked, two scans", calls)
    del calls[:]
    dt.convert(build(), "dyt")
    ok(len(calls) <= 1, "convert of a whole model: one scan", calls)
