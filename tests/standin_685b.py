#!/usr/bin/python3
"""Writes a stand-in for the released DeepSeek-V3 / V3.2-Exp 685B FP8 checkpoint:
its config.json, model.safetensors.index.json and 163 shards whose safetensors
headers record the real tensor names, dtypes and shapes, but whose data is a
hole (the files are extended with truncate: sparse, no data page written, no
disk used). The memory plan (`lemma info`, src/model/memplan.h) must read it
in seconds without touching the data.

    tests/standin_685b.py OUT_DIR [--v3]     # default: V3.2-Exp (with the DSA indexer)

Layout, as published by DeepSeek (config.json and the index of
deepseek-ai/DeepSeek-V3 and DeepSeek-V3.2-Exp on Hugging Face):
  * 61 layers (3 dense, 58 MoE with 256 routed + 1 shared experts) and the MTP
    layer model.layers.61 (enorm, hnorm, eh_proj, shared_head, its own
    embed_tokens, a full MoE block);
  * every Linear in FP8-E4M3 with a F32 weight_scale_inv of 128x128 blocks;
    embeddings, head, norms and the router in BF16, the routing bias in F32;
  * V3.2: self_attn.indexer.{wq_b, wk} (FP8 + scales), k_norm weight and bias,
    weights_proj (BF16).
How the tensors fall into the 163 shards is not the published assignment
(which the plan does not depend on): tensors in order, cut into 163 parts of
about equal bytes.
"""
import json
import os
import struct
import sys

SHARDS = 163
DTYPE_SIZE = {"F8_E4M3": 1, "BF16": 2, "F32": 4}


def config(v32):
    c = {
        "architectures": ["DeepseekV32ForCausalLM" if v32 else "DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v32" if v32 else "deepseek_v3",
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
        "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
        "num_attention_heads": 128, "num_key_value_heads": 128,
        "n_shared_experts": 1, "n_routed_experts": 256, "routed_scaling_factor": 2.5,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
        "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4, "num_experts_per_tok": 8,
        "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": True, "scoring_func": "sigmoid",
        "hidden_act": "silu", "max_position_embeddings": 163840, "initializer_range": 0.02, "rms_norm_eps": 1e-06,
        "use_cache": True, "tie_word_embeddings": False, "rope_theta": 10000,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                         "original_max_position_embeddings": 4096, "type": "yarn"},
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "bfloat16",
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "weight_block_size": [128, 128]},
    }
    if v32:
        c.update({"index_head_dim": 128, "index_n_heads": 64, "index_topk": 2048})
        c["quantization_config"]["scale_fmt"] = "ue8m0"
    return c


def tensors(c, v32):
    """(name, dtype, shape) in file order."""
    D, V = c["hidden_size"], c["vocab_size"]
    H, Q, C = c["num_attention_heads"], c["q_lora_rank"], c["kv_lora_rank"]
    dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    I, Im, E = c["intermediate_size"], c["moe_intermediate_size"], c["n_routed_experts"]
    out = []

    def fp8(name, rows, cols):
        out.append((name + ".weight", "F8_E4M3", [rows, cols]))
        out.append((name + ".weight_scale_inv", "F32", [-(-rows // 128), -(-cols // 128)]))

    def vec(name, n, dt="BF16"):
        out.append((name, dt, [n]))

    def layer(l):
        p = "model.layers.%d." % l
        vec(p + "input_layernorm.weight", D)
        fp8(p + "self_attn.q_a_proj", Q, D)
        vec(p + "self_attn.q_a_layernorm.weight", Q)
        fp8(p + "self_attn.q_b_proj", H * (dn + dr), Q)
        fp8(p + "self_attn.kv_a_proj_with_mqa", C + dr, D)
        vec(p + "self_attn.kv_a_layernorm.weight", C)
        fp8(p + "self_attn.kv_b_proj", H * (dn + dv), C)
        fp8(p + "self_attn.o_proj", D, H * dv)
        if v32:
            nh, hd = c["index_n_heads"], c["index_head_dim"]
            fp8(p + "self_attn.indexer.wq_b", nh * hd, Q)
            fp8(p + "self_attn.indexer.wk", hd, D)
            vec(p + "self_attn.indexer.k_norm.weight", hd)
            vec(p + "self_attn.indexer.k_norm.bias", hd)
            out.append((p + "self_attn.indexer.weights_proj.weight", "BF16", [nh, D]))
        vec(p + "post_attention_layernorm.weight", D)
        if l < c["first_k_dense_replace"]:
            fp8(p + "mlp.gate_proj", I, D)
            fp8(p + "mlp.up_proj", I, D)
            fp8(p + "mlp.down_proj", D, I)
            return
        out.append((p + "mlp.gate.weight", "BF16", [E, D]))
        vec(p + "mlp.gate.e_score_correction_bias", E, "F32")
        for e in range(E):
            q = p + "mlp.experts.%d." % e
            fp8(q + "gate_proj", Im, D)
            fp8(q + "up_proj", Im, D)
            fp8(q + "down_proj", D, Im)
        q = p + "mlp.shared_experts."
        Is = Im * c["n_shared_experts"]
        fp8(q + "gate_proj", Is, D)
        fp8(q + "up_proj", Is, D)
        fp8(q + "down_proj", D, Is)

    out.append(("model.embed_tokens.weight", "BF16", [V, D]))
    L = c["num_hidden_layers"]
    for l in range(L):
        layer(l)
    for l in range(L, L + c["num_nextn_predict_layers"]):
        p = "model.layers.%d." % l
        out.append((p + "embed_tokens.weight", "BF16", [V, D]))
        vec(p + "enorm.weight", D)
        vec(p + "hnorm.weight", D)
        out.append((p + "eh_proj.weight", "BF16", [D, 2 * D]))
        layer(l)
        vec(p + "shared_head.norm.weight", D)
        out.append((p + "shared_head.head.weight", "BF16", [V, D]))
    vec("model.norm.weight", D)
    out.append(("lm_head.weight", "BF16", [V, D]))
    return out


def nbytes(t):
    n = DTYPE_SIZE[t[1]]
    for d in t[2]:
        n *= d
    return n


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or any(a not in ("--v3",) for a in argv if a.startswith("--")):
        sys.stderr.write("usage: standin_685b.py OUT_DIR [--v3]\n")
        return 2
    out_dir = args[0]
    v32 = "--v3" not in argv
    c = config(v32)
    ts = tensors(c, v32)
    total = sum(nbytes(t) for t in ts)
    os.makedirs(out_dir, exist_ok=True)
    shards = [[] for _ in range(SHARDS)]
    done = 0
    for t in ts:
        shards[min(SHARDS - 1, done * SHARDS // total)].append(t)
        done += nbytes(t)
    weight_map = {}
    for i, part in enumerate(shards):
        fname = "model-%05d-of-%06d.safetensors" % (i + 1, SHARDS)
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, dt, shape in part:
            n = nbytes((name, dt, shape))
            header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        path = os.path.join(out_dir, fname)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h)
            f.truncate(8 + len(h) + off)  # a hole: no data page is written
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    params = sum(nbytes(t) // DTYPE_SIZE[t[1]] for t in ts if not t[0].endswith("weight_scale_inv"))
    sys.stderr.write("standin_685b: %s: %d tensors, %d shards, %.1f GB of holes, %.1fB parameters\n" % (
        out_dir, len(ts), SHARDS, total / 1e9, params / 1e9))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
