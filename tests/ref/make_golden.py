#!/usr/bin/python3
"""Write the golden checkpoints in tests/golden/<case>/ and check the reference.

    /usr/bin/python3 tests/ref/make_golden.py            # (re)write tests/golden
    /usr/bin/python3 tests/ref/make_golden.py --check    # regenerate in a temp dir,
                                                         # compare byte for byte
    /usr/bin/python3 tests/ref/make_golden.py --out DIR [case ...]
    /usr/bin/python3 tests/ref/make_golden.py --out DIR --ablations
                                        # also print how far common mistakes
                                        # move each case's logits

Every case is a random tiny DeepSeek-V2/V3 checkpoint in the Hugging Face
layout plus the logits of a fixed id sequence, computed by deepseek_ref.py in
float64 from the weights as stored (after reading the files back) and written
as float32. All randomness comes from numpy Generators with fixed seeds, and
torch runs single-threaded, so the files are byte-identical on every run.

Self-checks (assertions; the script fails if one does not hold):
  * the FP8 E4M3 encoder round-trips all 256 codes and rounds ties to even;
  * BF16 encoding rounds to nearest even;
  * absorbed-MLA incremental decode (latent cache of normalised c and roped
    k_pe) reproduces the full forward to 1e-9;
  * chunked prefill through the latent cache and a batch of 2 reproduce it too;
  * for noaux_tc cases the correction bias changes the chosen experts of some
    tokens; for group-limited cases (where asked) the group limit does too;
    routing uses at least half of the experts in each MoE layer;
  * the logits have O(1) spread; autograd reaches every used parameter.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "golden")


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------

def make_config(arch, *, vocab, hidden, inter, moe_inter, layers, heads, dn, dr, dv,
                q_lora, kv_lora, experts, n_group, topk_group, top_k, topk_method,
                norm_topk_prob, rsf, shared, first_k_dense, moe_layer_freq=1,
                rope_scaling=None, tie=False, torch_dtype="float32", extra=None):
    v3 = arch == "v3"
    cfg = {
        "architectures": ["DeepseekV3ForCausalLM" if v3 else "DeepseekV2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "ep_size": 1,
        "first_k_dense_replace": first_k_dense,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "kv_lora_rank": kv_lora,
        "max_position_embeddings": 2048,
        "model_type": "deepseek_v3" if v3 else "deepseek_v2",
        "moe_intermediate_size": moe_inter,
        "moe_layer_freq": moe_layer_freq,
        "n_group": n_group,
        "n_routed_experts": experts,
        "n_shared_experts": shared,
        "norm_topk_prob": norm_topk_prob,
        "num_attention_heads": heads,
        "num_experts_per_tok": top_k,
        "num_hidden_layers": layers,
        "num_key_value_heads": heads,
        "pretraining_tp": 1,
        "q_lora_rank": q_lora,
        "qk_nope_head_dim": dn,
        "qk_rope_head_dim": dr,
        "rms_norm_eps": 1e-06,
        "rope_scaling": rope_scaling,
        "rope_theta": 10000,
        "routed_scaling_factor": rsf,
        "scoring_func": "sigmoid" if v3 else "softmax",
        "seq_aux": True,
        "tie_word_embeddings": tie,
        "topk_group": topk_group,
        "topk_method": topk_method,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.46.3",
        "use_cache": True,
        "v_head_dim": dv,
        "vocab_size": vocab,
    }
    if v3:
        cfg["num_nextn_predict_layers"] = 0
    else:
        cfg["aux_loss_alpha"] = 0.001
    if rope_scaling:
        # Keep max_position_embeddings == factor * original (conventions 17).
        cfg["max_position_embeddings"] = int(rope_scaling["factor"]
                                             * rope_scaling["original_max_position_embeddings"])
    if extra:
        cfg.update(extra)
    return cfg


def yarn(factor, mscale, mscale_all_dim, orig):
    return {"beta_fast": 32, "beta_slow": 1, "factor": factor, "mscale": mscale,
            "mscale_all_dim": mscale_all_dim, "original_max_position_embeddings": orig,
            "type": "yarn"}


V3_BASE = dict(vocab=256, hidden=48, inter=96, moe_inter=32, layers=4, heads=4, dn=16, dr=8,
               dv=20, q_lora=24, kv_lora=16, experts=8, n_group=4, topk_group=2, top_k=2,
               topk_method="noaux_tc", norm_topk_prob=True, rsf=2.5, shared=1,
               first_k_dense=2, rope_scaling=yarn(40, 1.0, 1.0, 64))

CASES = {
    "v2_f32": dict(
        seed=101, T=12, storage="f32", arch="v2",
        cfg=dict(vocab=200, hidden=48, inter=96, moe_inter=32, layers=3, heads=4, dn=16, dr=8,
                 dv=12, q_lora=None, kv_lora=32, experts=8, n_group=4, topk_group=2, top_k=3,
                 topk_method="group_limited_greedy", norm_topk_prob=False, rsf=1.5, shared=2,
                 first_k_dense=1, rope_scaling=None),
        need_group_effect=True,
        note="DeepSeek-V2: softmax gate, group_limited_greedy (max per group, 2 of 4 groups, "
             "top-3), no normalisation, routed_scaling_factor 1.5, 2 shared experts, q_proj, "
             "dv 12 != dn 16, no rope_scaling, untied head, F32."),
    "v2lite_yarn_f32": dict(
        seed=102, T=16, storage="f32", arch="v2",
        cfg=dict(vocab=160, hidden=40, inter=80, moe_inter=24, layers=5, heads=3, dn=16, dr=16,
                 dv=16, q_lora=None, kv_lora=24, experts=6, n_group=1, topk_group=1, top_k=2,
                 topk_method="greedy", norm_topk_prob=False, rsf=1.0, shared=2,
                 first_k_dense=1, moe_layer_freq=2,
                 rope_scaling=yarn(40, 0.707, 0.707, 64)),
        note="DeepSeek-V2-Lite style: softmax gate, greedy top-2, n_group 1, q_proj, YaRN "
             "(factor 40, mscale = mscale_all_dim = 0.707, original 64), moe_layer_freq 2 "
             "(layers 0,1,3 dense; 2,4 MoE), 3 heads, F32."),
    "v3_f32": dict(
        seed=103, T=13, storage="f32", arch="v3", cfg=dict(V3_BASE),
        need_group_effect=True,
        note="DeepSeek-V3: sigmoid gate, noaux_tc with e_score_correction_bias, top-2-sum "
             "group score (2 of 4 groups), top-2, norm_topk_prob, routed_scaling_factor 2.5, "
             "1 shared expert, q LoRA 24, kv LoRA 16, dv 20, 2 dense layers, YaRN factor 40 "
             "(original 64), untied, F32."),
    "v3_tied_f32": dict(
        seed=104, T=11, storage="f32", arch="v3", cfg=dict(V3_BASE, tie=True), embed_std=0.15,
        note="As v3_f32 (other random weights) with tie_word_embeddings true: no lm_head "
             "tensor, the head is embed_tokens. F32."),
    "v3_bf16": dict(
        seed=105, T=10, storage="bf16", arch="v3",
        cfg=dict(V3_BASE, torch_dtype="bfloat16"),
        note="As v3_f32 (other random weights) stored in BF16 (round to nearest even); "
             "e_score_correction_bias stays F32. Logits from the BF16 values, exactly "
             "widened."),
    "v3_fp8": dict(
        seed=106, T=9, storage="fp8", arch="v3",
        cfg=dict(vocab=256, hidden=160, inter=200, moe_inter=136, layers=2, heads=4, dn=32,
                 dr=16, dv=40, q_lora=136, kv_lora=144, experts=8, n_group=4, topk_group=2,
                 top_k=2, topk_method="noaux_tc", norm_topk_prob=True, rsf=2.5, shared=1,
                 first_k_dense=1, rope_scaling=yarn(40, 1.0, 1.0, 64), torch_dtype="bfloat16",
                 extra={"quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                                                "quant_method": "fp8",
                                                "weight_block_size": [128, 128]}}),
        note="DeepSeek-V3 as released: every attention/MLP Linear in FP8 E4M3 with F32 "
             "weight_scale_inv per 128x128 block (many partial blocks: 136, 144, 160, 200, "
             "288 are not multiples of 128); embed, lm_head, norms and mlp.gate.weight BF16; "
             "bias F32. Logits from the exactly dequantised weights."),
    "v3_sharded_f32": dict(
        seed=107, T=14, storage="f32", arch="v3", shards=3, mtp=True,
        cfg=dict(vocab=192, hidden=32, inter=64, moe_inter=16, layers=3, heads=2, dn=16, dr=8,
                 dv=16, q_lora=20, kv_lora=12, experts=16, n_group=8, topk_group=3, top_k=4,
                 topk_method="noaux_tc", norm_topk_prob=True, rsf=2.0, shared=2,
                 first_k_dense=1, rope_scaling=yarn(8, 1.0, 1.0, 128),
                 extra={"num_nextn_predict_layers": 1}),
        need_group_effect=True,
        note="DeepSeek-V3 config in 3 shards with model.safetensors.index.json (layers cut "
             "across shard boundaries). 16 experts in 8 groups, 3 groups kept, top-4, "
             "2 shared experts, YaRN factor 8 (original 128). Contains an MTP layer "
             "model.layers.3.* (num_nextn_predict_layers 1) that the forward must skip; "
             "the logits do not use it. F32."),
    "v3_noqlora_f32": dict(
        seed=108, T=15, storage="f32", arch="v3",
        cfg=dict(vocab=128, hidden=32, inter=64, moe_inter=24, layers=3, heads=4, dn=12, dr=4,
                 dv=8, q_lora=None, kv_lora=16, experts=8, n_group=2, topk_group=1, top_k=3,
                 topk_method="noaux_tc", norm_topk_prob=True, rsf=1.8, shared=0,
                 first_k_dense=1, rope_scaling=None),
        note="V3 gating (sigmoid, noaux_tc, 1 of 2 groups, top-3) with q_lora_rank null "
             "(q_proj), n_shared_experts 0 (no shared_experts tensors), no rope_scaling, "
             "dr 4. F32."),
}


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------

FP8_LINEARS = ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj",
               "gate_proj", "up_proj", "down_proj")


def is_fp8_linear(name):
    parts = name.split(".")
    return parts[-1] == "weight" and parts[-2] in FP8_LINEARS


def mtp_shapes(cfg, shapes):
    """Tensor shapes of one DeepSeek-V3 MTP layer (index num_hidden_layers)."""
    L, D, V = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]
    out = {}
    # a full decoder layer (MoE, like the last layer) ...
    last = "model.layers.%d." % (L - 1)
    for k, s in shapes.items():
        if k.startswith(last):
            out["model.layers.%d.%s" % (L, k[len(last):])] = s
    # ... plus the MTP-specific tensors
    p = "model.layers.%d." % L
    out[p + "embed_tokens.weight"] = (V, D)
    out[p + "enorm.weight"] = (D,)
    out[p + "hnorm.weight"] = (D,)
    out[p + "eh_proj.weight"] = (D, 2 * D)
    out[p + "shared_head.norm.weight"] = (D,)
    out[p + "shared_head.head.weight"] = (V, D)
    return out


def random_weights(cfg, rng, fp8=False, embed_std=0.5):
    """{name: float64 ndarray} for every tensor the config needs (HF names)."""
    model = R.DeepseekForCausalLM(R.DeepseekConfig(cfg))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if cfg.get("num_nextn_predict_layers"):
        shapes.update(mtp_shapes(cfg, shapes))
    D = cfg["hidden_size"]
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("norm.weight"):
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("e_score_correction_bias"):
            w = 0.1 * rng.standard_normal(shape)
        elif name.endswith("embed_tokens.weight"):
            w = embed_std * rng.standard_normal(shape)
        elif name.endswith("mlp.gate.weight"):
            w = (1.5 / np.sqrt(D)) * rng.standard_normal(shape)
        else:  # Linear [out, in]
            w = rng.standard_normal(shape) / np.sqrt(shape[1])
            if fp8 and is_fp8_linear(name):
                # vary the scale from block to block so a wrong block index shows
                nb = (-(-shape[0] // 128), -(-shape[1] // 128))
                f = np.exp(0.5 * rng.standard_normal(nb))
                w = w * np.repeat(np.repeat(f, 128, 0), 128, 1)[:shape[0], :shape[1]]
        out[name] = w
    return out


def quantize_fp8(w, block=128):
    """float64 [out,in] -> (codes uint8, scale_inv float32) with scale = blockmax/448."""
    out, inn = w.shape
    nb0, nb1 = -(-out // block), -(-inn // block)
    s = np.empty((nb0, nb1), dtype=np.float32)
    for i in range(nb0):
        for j in range(nb1):
            m = np.abs(w[i * block:(i + 1) * block, j * block:(j + 1) * block]).max()
            s[i, j] = np.float32(m / R.FP8_E4M3_MAX) if m > 0 else np.float32(1.0)
    s_full = np.repeat(np.repeat(s.astype(np.float64), block, 0), block, 1)[:out, :inn]
    return R.fp8_e4m3_encode(w / s_full), s


def to_storage(weights, storage):
    """float64 weights -> {name: (st_dtype, array)} as they go into the files."""
    out = {}
    for name, w in weights.items():
        if name.endswith("e_score_correction_bias") or storage == "f32":
            out[name] = ("F32", w.astype(np.float32))
        elif storage == "bf16" or not is_fp8_linear(name):
            out[name] = ("BF16", R.bf16_encode(w))
        else:
            codes, s = quantize_fp8(w)
            out[name] = ("F8_E4M3", codes)
            out[name + "_scale_inv"] = ("F32", s)
    return out


def nbytes(t):
    return t[1].size * R.ST_DTYPES[t[0]][1]


def write_weights(folder, stored, shards):
    if shards <= 1:
        R.write_safetensors(os.path.join(folder, "model.safetensors"), stored)
        return
    names = sorted(stored)
    total = sum(nbytes(stored[n]) for n in names)
    groups, cur, acc = [[] for _ in range(shards)], 0, 0
    for n in names:
        if acc >= total * (cur + 1) / shards and cur < shards - 1:
            cur += 1
        groups[cur].append(n)
        acc += nbytes(stored[n])
    assert all(groups), "empty shard"
    wmap = {}
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        R.write_safetensors(os.path.join(folder, fn), {n: stored[n] for n in g})
        wmap.update({n: fn for n in g})
    index = {"metadata": {"total_size": total}, "weight_map": {n: wmap[n] for n in sorted(wmap)}}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2) + "\n")


# --------------------------------------------------------------------------
# Absorbed MLA decode (self-check)
# --------------------------------------------------------------------------

def absorbed_decode(model, ids):
    """Feed ids one at a time; per layer cache only normalised c and roped k_pe.

    Scores use q_lat[h] = q_nope[h] @ W_UK[h] against c, outputs are
    W_UV[h] @ (sum_s p_s c_s): kv_b_proj is never applied to the cache.
    """
    cfg = model.cfg
    H, dn, dv, C = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    L = cfg.num_hidden_layers
    cache_c = [[] for _ in range(L)]
    cache_pe = [[] for _ in range(L)]
    rows = []
    for t in range(len(ids)):
        cos, sin = R.rope_cos_sin(cfg, torch.tensor([t]))
        h = model.model.embed_tokens(ids[t:t + 1])[None]              # [1,1,D]
        for l, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q_nope, q_pe = attn.query(x, cos, sin)                     # [1,1,H,dn], [1,1,H,dr]
            c, k_pe = attn.latent(x, cos, sin)                         # [1,1,C], [1,1,dr]
            cache_c[l].append(c[0, 0])
            cache_pe[l].append(k_pe[0, 0])
            Cs = torch.stack(cache_c[l])                               # [S,C]
            Ps = torch.stack(cache_pe[l])                              # [S,dr]
            wkv = attn.kv_b_proj.weight.view(H, dn + dv, C)
            w_uk, w_uv = wkv[:, :dn, :], wkv[:, dn:, :]
            q_lat = torch.einsum("hd,hdc->hc", q_nope[0, 0], w_uk)     # [H,C]
            scores = (q_lat @ Cs.T + q_pe[0, 0] @ Ps.T) * attn.scale   # [H,S]
            p = torch.softmax(scores, dim=-1)
            ctx = p @ Cs                                               # [H,C]
            o = torch.einsum("hc,hdc->hd", ctx, w_uv).reshape(1, 1, H * dv)
            h = h + attn.o_proj(o)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        rows.append(F.linear(model.model.norm(h), model.head_weight())[0, 0])
    return torch.stack(rows)


# --------------------------------------------------------------------------
# Format self-checks
# --------------------------------------------------------------------------

def check_formats():
    codes = np.arange(256, dtype=np.uint8)
    vals = R.fp8_e4m3_decode(codes)
    back = R.fp8_e4m3_encode(vals)
    assert np.array_equal(back, codes), "FP8 round trip failed: %s" % np.nonzero(back != codes)
    assert np.isnan(vals[0x7F]) and np.isnan(vals[0xFF])
    assert vals[0x7E] == 448.0 and vals[0x01] == 2.0 ** -9 and vals[0x08] == 2.0 ** -6
    e = R.fp8_e4m3_encode
    assert e(1.0625) == e(1.0) and e(1.1875) == e(1.25)               # ties to even
    assert e(2.0 ** -10) == 0 and e(3 * 2.0 ** -10) == 2              # subnormal ties
    assert e(1000.0) == 0x7E and e(-1e9) == 0xFE and e(464.0) == 0x7E  # saturate
    assert R.fp8_e4m3_decode(e(-0.0)) == 0 and e(-0.0) == 0x80
    b = R.bf16_encode(np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20],
                               dtype=np.float32))
    assert list(b) == [0x3F80, 0x3F82, 0x3F81], [hex(v) for v in b]    # RNE
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    assert np.all(np.abs(R.bf16_decode(R.bf16_encode(x)) - x) <= np.abs(x) * 2.0 ** -8)


# --------------------------------------------------------------------------
# Ablations (--ablations): how far common mistakes move the golden logits
# --------------------------------------------------------------------------

def _rope_neox(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _plain_inv_freq(cfg):
    dr = cfg.qk_rope_head_dim
    return cfg.rope_theta ** (-2.0 * torch.arange(0, dr // 2, dtype=R.DTYPE) / dr)


def _plain_scale(cfg):
    return (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5


def _gate_variant(use_bias_select=True, bias_in_weights=False, swap_group_score=False,
                  groups=True, scale_first=False, normalise=True):
    def forward(self, x, use_bias=True, use_groups=True):
        cfg = self.cfg
        s = self.scores(x)
        bias = self.e_score_correction_bias
        sel = s.detach()
        if bias is not None and use_bias_select:
            sel = sel + bias
        N, E = sel.shape
        G = cfg.n_group
        if groups and cfg.topk_method in ("group_limited_greedy", "noaux_tc") and G > 1:
            g = sel.view(N, G, E // G)
            top2 = (cfg.topk_method == "noaux_tc") != swap_group_score
            gs = g.topk(2, dim=-1).values.sum(-1) if top2 else g.max(dim=-1).values
            keep = gs.topk(cfg.topk_group, dim=-1).indices
            gm = torch.zeros(N, G, dtype=torch.bool).scatter(1, keep, True)
            sel = sel.masked_fill(~gm[:, :, None].expand(N, G, E // G).reshape(N, E),
                                  float("-inf"))
        idx = sel.topk(cfg.num_experts_per_tok, dim=-1).indices
        src = s + bias if (bias_in_weights and bias is not None) else s
        w = src.gather(1, idx)
        if scale_first:
            w = w * cfg.routed_scaling_factor
        if normalise and cfg.num_experts_per_tok > 1 and cfg.norm_topk_prob:
            w = w / w.sum(dim=-1, keepdim=True)
        if not scale_first:
            w = w * cfg.routed_scaling_factor
        return idx, w
    return forward


def _shared_scaled_forward(orig):
    def forward(self, x):
        if self.shared_experts is None:
            return orig(self, x)
        y = orig(self, x)
        sh = self.shared_experts(x)
        return y + (self.cfg.routed_scaling_factor - 1.0) * sh
    return forward


ABLATIONS = [
    ("rope rotate-half (NeoX)", [(R, "apply_rope", _rope_neox)], None),
    ("no YaRN frequencies", [(R, "rope_inv_freq", _plain_inv_freq)], None),
    ("no mscale^2 in softmax scale", [(R, "softmax_scale", _plain_scale)], None),
    ("bias ignored in selection", [(R.Gate, "forward", _gate_variant(use_bias_select=False))], None),
    ("biased scores as weights", [(R.Gate, "forward", _gate_variant(bias_in_weights=True))], None),
    ("max <-> top-2-sum group score", [(R.Gate, "forward", _gate_variant(swap_group_score=True))], None),
    ("no group limit", [(R.Gate, "forward", _gate_variant(groups=False))], None),
    ("scaling before normalising", [(R.Gate, "forward", _gate_variant(scale_first=True))], None),
    ("no norm_topk_prob", [(R.Gate, "forward", _gate_variant(normalise=False))], None),
    ("shared experts scaled", [(R.MoE, "forward", _shared_scaled_forward(R.MoE.forward))], None),
    ("rms_norm_eps 1e-5", [], {"rms_norm_eps": 1e-5}),
]


def run_ablations(root, names):
    print("max |delta logit| of common mistakes (0 = the case cannot see it):")
    print("%-32s" % "" + "".join("%16s" % n[:15] for n in names))
    base = {}
    for n in names:
        with torch.no_grad():
            base[n] = R.load_model(os.path.join(root, n))(torch.tensor(_ids(root, n)))
    for label, patches, cfg_over in ABLATIONS:
        row = []
        for n in names:
            saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
            try:
                for obj, attr, val in patches:
                    setattr(obj, attr, val)
                cfg, tensors = R.load_checkpoint(os.path.join(root, n))
                cfg.update(cfg_over or {})
                m = R.DeepseekForCausalLM(R.DeepseekConfig(cfg)).load_hf_state_dict(tensors)
                with torch.no_grad():
                    d = (m(torch.tensor(_ids(root, n))) - base[n]).abs().max().item()
            finally:
                for obj, attr, val in saved:
                    setattr(obj, attr, val)
            row.append(d)
        print("%-32s" % label + "".join("%16.2g" % d for d in row))


def _ids(root, name):
    with open(os.path.join(root, name, "golden.json")) as f:
        return json.load(f)["ids"]


# --------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------

def moe_inputs(model, ids):
    """Run the model and capture the input of every MoE block."""
    caught, hooks = [], []
    for i, layer in enumerate(model.model.layers):
        if isinstance(layer.mlp, R.MoE):
            hooks.append(layer.mlp.register_forward_hook(
                lambda m, inp, out, i=i: caught.append((i, m, inp[0].detach()))))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    return caught


def routing_checks(name, spec, model, ids):
    cfg = model.cfg
    bias_changes, group_changes = 0, 0
    for i, moe, x in moe_inputs(model, ids):
        xf = x.reshape(-1, x.shape[-1])
        s = moe.gate.scores(xf)
        pick = lambda **kw: torch.sort(moe.gate.select(s, **kw), dim=-1).values
        full = pick()
        used = full.unique().numel()
        assert used >= cfg.n_routed_experts // 2, "%s layer %d: only %d experts used" % (name, i, used)
        if moe.gate.e_score_correction_bias is not None:
            bias_changes += int((pick(use_bias=False) != full).any(-1).sum())
        group_changes += int((pick(use_groups=False) != full).any(-1).sum())
        print("    layer %d MoE: %d/%d experts used" % (i, used, cfg.n_routed_experts))
    print("    tokens*layers whose experts change without bias: %d, without group limit: %d"
          % (bias_changes, group_changes))
    if cfg.topk_method == "noaux_tc":
        assert bias_changes > 0, "%s: e_score_correction_bias never changes selection" % name
    if spec.get("need_group_effect"):
        assert group_changes > 0, "%s: group limit never changes selection" % name


def build_case(name, spec, out_root):
    rng = np.random.default_rng(spec["seed"])
    cfg = make_config(spec["arch"], **spec["cfg"])
    weights = random_weights(cfg, rng, fp8=spec["storage"] == "fp8",
                             embed_std=spec.get("embed_std", 0.5))
    stored = to_storage(weights, spec["storage"])
    ids = [int(v) for v in rng.integers(0, cfg["vocab_size"], spec["T"])]

    folder = os.path.join(out_root, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_weights(folder, stored, spec.get("shards", 1))

    # Read the files back: the logits come from the weights exactly as stored.
    model = R.load_model(folder)
    tid = torch.tensor(ids)
    logits = model(tid)
    T, V = logits.shape

    # --- self-checks --------------------------------------------------------
    with torch.no_grad():
        dec = absorbed_decode(model, tid)
        d_abs = (dec - logits).abs().max().item()
        assert d_abs < 1e-9, "%s: absorbed decode differs by %g" % (name, d_abs)

        cache = R.LatentCache(model.cfg.num_hidden_layers)
        cuts = [0, T // 3, T // 3 + 1, T]
        parts = [model(tid[a:b], start_pos=a, cache=cache) for a, b in zip(cuts, cuts[1:])]
        d_chunk = (torch.cat(parts) - logits).abs().max().item()
        assert d_chunk < 1e-9, "%s: chunked prefill differs by %g" % (name, d_chunk)

        other = torch.tensor([int(v) for v in np.random.default_rng(1).integers(0, V, T)])
        batch = model(torch.stack([tid, other]))
        d_batch = (batch[0] - logits).abs().max().item()
        assert d_batch < 1e-9, "%s: batched forward differs by %g" % (name, d_batch)

    std = logits.std().item()
    assert 0.3 < std < 10, "%s: logit spread %g is not O(1)" % (name, std)

    routing_checks(name, spec, model, tid)

    loss = logits.pow(2).mean()
    loss.backward()
    # every parameter gets a finite, non-zero gradient, except routed experts
    # that no token chose
    no_grad = [k for k, p in model.named_parameters()
               if ".experts." not in k and (p.grad is None or p.grad.abs().max() == 0)
               or p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not no_grad, "%s: no gradient for %s" % (name, no_grad[:5])

    # --- golden output --------------------------------------------------------
    lf = logits.detach().numpy().astype("<f4")
    lf.tofile(os.path.join(folder, "logits.f32"))
    golden = {"ids": ids, "T": T, "vocab": V, "logits": "logits.f32",
              "shape": [T, V], "dtype": "f32", "note": spec["note"]}
    with open(os.path.join(folder, "golden.json"), "w") as f:
        f.write(json.dumps(golden, indent=2) + "\n")

    size = sum(os.path.getsize(os.path.join(folder, fn)) for fn in os.listdir(folder))
    print("  %-16s T=%2d V=%3d  logit std %.3f  max|logit| %.2f  absorbed %.1e  chunked %.1e  %6.1f KB"
          % (name, T, V, std, logits.abs().max().item(), d_abs, d_chunk, size / 1024))
    return size


def main(argv):
    check = "--check" in argv
    out_root = GOLDEN
    if "--out" in argv:
        out_root = argv[argv.index("--out") + 1]
    names = [a for a in argv if a in CASES] or list(CASES)
    check_formats()
    print("FP8 E4M3 round trip of all 256 codes and BF16 rounding: ok")
    if check:
        out_root = tempfile.mkdtemp(prefix="golden-check-")
    os.makedirs(out_root, exist_ok=True)
    total = 0
    for name in names:
        total += build_case(name, CASES[name], out_root)
    print("total %.1f KB in %s" % (total / 1024, out_root))
    if "--ablations" in argv:
        run_ablations(out_root, names)
    if check:
        bad = []
        for name in names:
            a, b = os.path.join(out_root, name), os.path.join(GOLDEN, name)
            fa = sorted(os.listdir(a))
            fb = sorted(os.listdir(b)) if os.path.isdir(b) else []
            if fa != fb:
                bad.append("%s: files %s vs %s" % (name, fa, fb))
                continue
            for fn in fa:
                with open(os.path.join(a, fn), "rb") as x, open(os.path.join(b, fn), "rb") as y:
                    if x.read() != y.read():
                        bad.append("%s/%s" % (name, fn))
        shutil.rmtree(out_root)
        if bad:
            print("DIFFERENT from tests/golden:", *bad, sep="\n  ")
            return 1
        print("tests/golden is byte-identical to a fresh regeneration")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
