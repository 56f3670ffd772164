#!/usr/bin/env python3
"""Write the corpus of broken checkpoints in tests/bad/<case>/ and tests/bad/cases.tsv.

    python3 tests/bad/make_bad.py            # (re)write tests/bad
    python3 tests/bad/make_bad.py --check    # regenerate in a temp dir, compare byte for byte
    python3 tests/bad/make_bad.py --out DIR  # write somewhere else

Plain python3, no third-party modules, no randomness beyond a fixed LCG: the
output is byte-identical on every run.

Every case starts from one tiny, valid DeepSeek-V3 checkpoint written here
(vocab 16, hidden 8, 2 layers: one dense, one MoE with 4 routed experts in 2
groups + 1 shared; q LoRA; YaRN rope) and breaks one thing. Cases named ok_*
are valid and must load and run; every other case must be rejected by
`lemma info` and `lemma logits` with a non-zero exit and one line on stderr
containing the expected substring given in cases.tsv (tab-separated:
case, expected substring; "OK" for the valid cases). Cases whose expectation
starts with "FORWARD " hold non-finite values in a big matrix, which loading
does not scan: `lemma info` succeeds, `lemma logits` and `lemma generate` fail
with the rest of the line, and `lemma info --check-weights` names the tensor.
tests/sh/test_bad_input.sh runs them. A config-only case holds just config.json: config.json is read
before any tensor, so the error must come from it.
"""

import json
import os
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# The valid base model
# --------------------------------------------------------------------------

V, D, I, IM, L, H = 16, 8, 12, 4, 2, 2
DN, DR, DV, Q, C, E = 4, 2, 4, 6, 4, 4

BASE_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": V,
    "hidden_size": D,
    "intermediate_size": I,
    "moe_intermediate_size": IM,
    "num_hidden_layers": L,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "num_attention_heads": H,
    "num_key_value_heads": H,
    "n_routed_experts": E,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "n_group": 2,
    "topk_group": 1,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "q_lora_rank": Q,
    "kv_lora_rank": C,
    "qk_nope_head_dim": DN,
    "qk_rope_head_dim": DR,
    "v_head_dim": DV,
    "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 16,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "max_position_embeddings": 64,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "float32",
}


def base_shapes():
    """[(name, shape)] of every tensor of the base model, norms included."""
    t = [("model.embed_tokens.weight", [V, D]), ("model.norm.weight", [D]), ("lm_head.weight", [V, D])]
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", [D]), (p + "post_attention_layernorm.weight", [D]),
              (p + "self_attn.q_a_proj.weight", [Q, D]), (p + "self_attn.q_a_layernorm.weight", [Q]),
              (p + "self_attn.q_b_proj.weight", [H * (DN + DR), Q]),
              (p + "self_attn.kv_a_proj_with_mqa.weight", [C + DR, D]),
              (p + "self_attn.kv_a_layernorm.weight", [C]),
              (p + "self_attn.kv_b_proj.weight", [H * (DN + DV), C]),
              (p + "self_attn.o_proj.weight", [D, H * DV])]
        if l == 0:
            t += [(p + "mlp.gate_proj.weight", [I, D]), (p + "mlp.down_proj.weight", [D, I]),
                  (p + "mlp.up_proj.weight", [I, D])]
        else:
            t += [(p + "mlp.gate.weight", [E, D]), (p + "mlp.gate.e_score_correction_bias", [E])]
            for e in range(E):
                q = p + "mlp.experts.%d." % e
                t += [(q + "gate_proj.weight", [IM, D]), (q + "down_proj.weight", [D, IM]),
                      (q + "up_proj.weight", [IM, D])]
            t += [(p + "mlp.shared_experts.gate_proj.weight", [IM, D]),
                  (p + "mlp.shared_experts.down_proj.weight", [D, IM]),
                  (p + "mlp.shared_experts.up_proj.weight", [IM, D])]
    return t


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def uniform(self):  # in [-1, 1)
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return ((self.s >> 40) / float(1 << 24)) * 2.0 - 1.0


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def base_tensors():
    """{name: (dtype, shape, data bytes)} of the valid model, deterministic."""
    rng = Lcg(20240611)
    out = {}
    for name, shape in base_shapes():
        n = numel(shape)
        if len(shape) == 1 and "bias" not in name:
            vals = [1.0 + 0.1 * rng.uniform() for _ in range(n)]   # norm weights near 1
        else:
            scale = 1.0 / (shape[-1] ** 0.5)
            vals = [scale * rng.uniform() for _ in range(n)]
        out[name] = ("F32", list(shape), f32_bytes(vals))
    return out


DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I64": 8, "I32": 4, "I8": 1,
              "U8": 1, "BOOL": 1}

# --------------------------------------------------------------------------
# safetensors writing (valid or deliberately not)
# --------------------------------------------------------------------------


def header_bytes(header):
    """JSON text of a header dict (or raw str/bytes), padded with spaces to a multiple of 8."""
    if isinstance(header, dict):
        text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    elif isinstance(header, str):
        text = header.encode()
    else:
        text = header
    return text + b" " * (-len(text) % 8)


def st_file(header, data, hlen=None):
    """8-byte length (the header's own unless hlen is given) + header + data."""
    h = header_bytes(header)
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def st_layout(tensors, align=8, gap=0):
    """Header dict and data for {name: (dtype, shape, bytes)}, names sorted;
    each tensor starts at a multiple of align (gap extra bytes before each)."""
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(tensors):
        dtype, shape, b = tensors[name]
        data += b"\0" * gap
        data += b"\0" * (-len(data) % align)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    return header, data


def st_valid(tensors, **kw):
    header, data = st_layout(tensors, **kw)
    return st_file(header, data)


def config_text(cfg):
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def cfg_with(**changes):
    c = json.loads(json.dumps(BASE_CONFIG))
    for k, v in changes.items():
        if v is DELETE:
            del c[k]
        else:
            c[k] = v
    return c


DELETE = object()

# --------------------------------------------------------------------------
# Cases: each returns {file name: bytes or str}
# --------------------------------------------------------------------------

CASES = []  # (name, expected substring, files)


def case(name, expect, files):
    CASES.append((name, expect, files))


def model_case(name, expect, st_bytes, cfg=None):
    case(name, expect, {"config.json": config_text(cfg or BASE_CONFIG), "model.safetensors": st_bytes})


def config_case(name, expect, cfg):
    text = cfg if isinstance(cfg, (str, bytes)) else config_text(cfg)
    case(name, expect, {"config.json": text})


def sharded(tensors, nshards=2, index=None, extra=None):
    """Files of a sharded checkpoint: tensors split round-robin by sorted name."""
    names = sorted(tensors)
    files = {"config.json": config_text(BASE_CONFIG)}
    wm = {}
    for s in range(nshards):
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, nshards)
        part = {n: tensors[n] for i, n in enumerate(names) if i % nshards == s}
        files[fname] = st_valid(part)
        for n in part:
            wm[n] = fname
    if index is not None:
        index(wm, files)
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": sum(len(t[2]) for t in tensors.values())}, "weight_map": wm},
        indent=2, sort_keys=True) + "\n"
    if extra:
        files.update(extra)
    return files


def build_cases():
    T = base_tensors()
    valid = st_valid(T)
    hdr, data = st_layout(T)
    EMB = "model.embed_tokens.weight"
    KVB1 = "model.layers.1.self_attn.kv_b_proj.weight"
    NORM0 = "model.layers.0.input_layernorm.weight"

    def tweak(fn):
        h = json.loads(json.dumps(hdr))
        fn(h)
        return st_file(h, data)

    def without(*names):
        return {k: v for k, v in T.items() if k not in names}

    def replaced(name, dtype, shape, b):
        t = dict(T)
        t[name] = (dtype, shape, b)
        return t

    # ---- valid checkpoints: must load and run ----
    model_case("ok_base", "OK", valid)
    model_case("ok_unaligned", "OK", st_valid(T, align=1, gap=1))   # every tensor at an odd offset
    case("ok_sharded", "OK", sharded(T, 3))
    bf = {n: ("BF16", s, b"".join(struct.pack("<f", x)[2:] for x in struct.unpack("<%df" % numel(s), b)))
          for n, (dt, s, b) in T.items()}
    model_case("ok_bf16_unaligned", "OK", st_valid(bf, align=1, gap=1))
    model_case("ok_tied", "OK", st_valid(without("lm_head.weight")), cfg_with(tie_word_embeddings=True))

    # ---- the file itself ----
    model_case("st_truncated", "past the data section", valid[:len(valid) - 100])
    model_case("st_truncated_header", "runs past the end of the file", valid[:200])
    model_case("st_short", "expected at least 8", valid[:5])
    model_case("st_empty", "expected at least 8", b"")
    model_case("st_header_past_end", "runs past the end of the file", st_file(hdr, data, hlen=len(valid)))
    model_case("st_header_2e63", "runs past the end of the file", st_file(hdr, data, hlen=1 << 63))
    model_case("st_header_all_ones", "runs past the end of the file", st_file(hdr, data, hlen=(1 << 64) - 1))
    model_case("st_header_len_1", "expected a JSON object", st_file(hdr, data, hlen=1))
    model_case("st_bad_json", "model.safetensors: header byte 12: expected a value", st_file('{"a": [1, 2,]}', b""))
    model_case("st_header_garbage", "header byte 10: unexpected data after the top-level value", st_file('{"a": {}} x', b""))
    model_case("st_header_not_object", "header byte 0: expected an object, found an array", st_file("[1, 2, 3]", b""))
    model_case("st_header_invalid_utf8", "invalid UTF-8", st_file(b'{"\xff\xfe": {}}', b""))
    model_case("st_header_nul", "control character", st_file(b'{"a\0b": {}}', b""))
    model_case("st_name_escaped_nul", "tensor name is empty or contains NUL",
               st_file('{"a\\u0000b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b""))
    model_case("st_name_newline", "control character",
               st_file('{"a\\nb": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b""))
    model_case("st_name_empty", "tensor name is empty",
               st_file('{"": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b""))
    model_case("st_metadata_not_object", "__metadata__ is a JSON number", tweak(lambda h: h.update(__metadata__=5)))
    model_case("st_entry_not_object", "entry is a JSON array, expected an object", tweak(lambda h: h.update(x=[1])))

    # ---- dtype, shape, offsets ----
    model_case("st_unknown_dtype", "unknown dtype \"F99\"", tweak(lambda h: h[EMB].update(dtype="F99")))
    model_case("st_dtype_newline", "unknown dtype \"F3\\n2\"", tweak(lambda h: h[EMB].update(dtype="F3\n2")))
    model_case("st_dtype_missing", "missing string field 'dtype'", tweak(lambda h: h[EMB].pop("dtype")))
    model_case("st_dtype_number", "missing string field 'dtype'", tweak(lambda h: h[EMB].update(dtype=32)))
    model_case("st_shape_missing", "missing array field 'shape'", tweak(lambda h: h[EMB].pop("shape")))
    model_case("st_shape_size_mismatch", "needs 576", tweak(lambda h: h[EMB].update(shape=[V, D + 1])))
    model_case("st_shape_negative", "shape[0] is not a non-negative integer",
               tweak(lambda h: h[EMB].update(shape=[-V, D])))
    model_case("st_shape_fraction", "shape[1] is not a non-negative integer",
               tweak(lambda h: h[EMB].update(shape=[V, 8.5])))
    model_case("st_shape_string", "shape[0] is not a non-negative integer",
               tweak(lambda h: h[EMB].update(shape=["16", 8])))
    model_case("st_shape_2e64", "shape[0] is not a non-negative integer",
               tweak(lambda h: h[EMB].update(shape=[1 << 64, 1])))
    model_case("st_shape_overflow", "shape overflows 64 bits",
               tweak(lambda h: h[EMB].update(shape=[1 << 32, 1 << 32, 2])))
    model_case("st_shape_bytes_overflow", "byte size overflows", tweak(lambda h: h[EMB].update(shape=[1 << 62])))
    model_case("st_shape_9_dims", "9 dimensions, at most 8", tweak(lambda h: h[EMB].update(shape=[1] * 9)))
    model_case("st_offsets_begin_gt_end", "has begin > end",
               tweak(lambda h: h[EMB].update(data_offsets=[512, 0])))
    model_case("st_offsets_negative", "'data_offsets' must be [begin, end]",
               tweak(lambda h: h[EMB].update(data_offsets=[-512, 0])))
    model_case("st_offsets_three", "'data_offsets' must be [begin, end]",
               tweak(lambda h: h[EMB].update(data_offsets=[0, 256, 512])))
    model_case("st_offsets_2e64", "'data_offsets' must be [begin, end]",
               tweak(lambda h: h[EMB].update(data_offsets=[0, 1 << 64])))
    model_case("st_offsets_out_of_range", "past the data section",
               tweak(lambda h: h[EMB].update(data_offsets=[len(data) - 256, len(data) + 256])))
    model_case("st_offsets_huge", "past the data section",
               tweak(lambda h: h[EMB].update(data_offsets=[(1 << 63) - 513, (1 << 63) - 1])))

    def overlap(h):
        a, b = sorted(k for k in h if k != "__metadata__")[:2]
        h[b]["data_offsets"] = [h[a]["data_offsets"][0] + 4, h[a]["data_offsets"][0] + 4 + 512]
        h[b]["shape"] = [128]
    model_case("st_offsets_overlap", "overlap", tweak(overlap))

    def overlap_nested(h):  # a small tensor inside a big one, not adjacent in sort order
        h[NORM0]["data_offsets"] = [h[EMB]["data_offsets"][0] + 64, h[EMB]["data_offsets"][0] + 96]
    model_case("st_offsets_overlap_nested", "overlap", tweak(overlap_nested))
    dup_entry = dict(hdr[EMB], data_offsets=[len(data), len(data) + V * D * 4])   # its own bytes
    model_case("st_duplicate_name", "model.safetensors: header byte 4158: duplicate key \"model.embed_tokens.weight\"",
               st_file(json.dumps(hdr, separators=(",", ":"), sort_keys=True)[:-1] + ',"' + EMB + '":'
                       + json.dumps(dup_entry, separators=(",", ":")) + "}", data + T[EMB][2]))

    # ---- sharded checkpoints ----
    def dup(wm, files):  # the first tensor of shard 2 also stored in shard 1
        n = sorted(k for k, v in wm.items() if v.startswith("model-00002"))[0]
        part = {k: T[k] for k, v in wm.items() if v.startswith("model-00001")}
        part[n] = T[n]
        files["model-00001-of-00002.safetensors"] = st_valid(part)
    case("shard_duplicate_tensor", "model-00002-of-00002.safetensors: tensor 'model.embed_tokens.weight' appears "
         "twice (also in ", sharded(T, 2, dup))

    def missing_shard(wm, files):
        del files["model-00002-of-00002.safetensors"]
    case("shard_missing_file", "model-00002-of-00002.safetensors: cannot open", sharded(T, 2, missing_shard))

    def ghost(wm, files):
        wm["model.layers.9.ghost.weight"] = "model-00001-of-00002.safetensors"
    case("shard_tensor_not_in_shard", "'model.layers.9.ghost.weight' is listed in weight_map but missing",
         sharded(T, 2, ghost))

    def wrong_file(wm, files):
        n = sorted(k for k, v in wm.items() if v.startswith("model-00002"))[0]
        wm[n] = "model-00001-of-00002.safetensors"
    case("shard_wrong_file", "is mapped to model-00001-of-00002.safetensors but found in",
         sharded(T, 2, wrong_file))

    def traversal(wm, files):
        wm[EMB] = "../ok_base/model.safetensors"
    case("shard_path_traversal", "must be a plain file name", sharded(T, 2, traversal))

    def dotdot(wm, files):
        wm[EMB] = ".."
    case("shard_dotdot", "must be a plain file name", sharded(T, 2, dotdot))

    def absolute(wm, files):
        wm[EMB] = "/etc/passwd"
    case("shard_absolute_path", "must be a plain file name", sharded(T, 2, absolute))

    def not_string(wm, files):
        wm[EMB] = 1
    case("shard_map_value_number", "must be a plain file name", sharded(T, 2, not_string))
    f = sharded(T, 2)
    f["model.safetensors.index.json"] = '{"weight_map": {"a": "b",}}\n'
    case("shard_index_bad_json", "model.safetensors.index.json: byte 25: expected a string key", f)
    f = sharded(T, 2)
    f["model.safetensors.index.json"] = '{"metadata": {}}\n'
    case("shard_index_no_weight_map", "missing object field 'weight_map'", f)
    f = sharded(T, 2)
    f["model.safetensors.index.json"] = '[]\n'
    case("shard_index_not_object", "missing object field 'weight_map'", f)

    # ---- binding tensors to the model ----
    model_case("model_missing_kv_b", "missing tensor '%s' (expected shape [16, 4])" % KVB1,
               st_valid(without(KVB1)))
    model_case("model_missing_expert", "missing tensor 'model.layers.1.mlp.experts.3.down_proj.weight'",
               st_valid(without("model.layers.1.mlp.experts.3.down_proj.weight")))
    model_case("model_missing_bias", "missing tensor 'model.layers.1.mlp.gate.e_score_correction_bias'",
               st_valid(without("model.layers.1.mlp.gate.e_score_correction_bias")))
    model_case("model_missing_head", "missing tensor 'lm_head.weight'", st_valid(without("lm_head.weight")))
    model_case("model_wrong_shape", "'%s' has shape [4, 16], expected [16, 4]" % KVB1,
               st_valid(replaced(KVB1, "F32", [C, H * (DN + DV)], T[KVB1][2])))
    model_case("model_wrong_ndim", "expected shape [8]", st_valid(replaced(NORM0, "F32", [2, 4], T[NORM0][2])))
    model_case("model_matrix_1d", "(not 2-D)", st_valid(replaced(EMB, "F32", [V * D], T[EMB][2])))
    O0 = "model.layers.0.self_attn.o_proj.weight"
    fp8 = replaced(O0, "F8_E4M3", [D, H * DV], bytes([0x38]) * (D * H * DV))
    model_case("model_fp8_no_scale", "FP8 tensor '%s' has no scale tensor '%s_scale_inv'" % (O0, O0), st_valid(fp8))
    fp8b = dict(fp8)
    fp8b[O0 + "_scale_inv"] = ("F32", [2, 1], f32_bytes([1.0, 1.0]))
    model_case("model_fp8_bad_scale", "must be F32 [1, 1]", st_valid(fp8b))
    fp8c = dict(fp8)
    fp8c[O0 + "_scale_inv"] = ("BF16", [1, 1], b"\x80\x3f")
    model_case("model_fp8_scale_bf16", "must be F32 [1, 1]", st_valid(fp8c))
    model_case("model_norm_i64", "'%s' has dtype I64, expected F32, BF16 or F16" % NORM0,
               st_valid(replaced(NORM0, "I64", [D], b"\1" + b"\0" * 7 * 1 + b"\0" * 8 * (D - 1))))
    QA0 = "model.layers.0.self_attn.q_a_proj.weight"
    model_case("model_matrix_i32", "'%s' has dtype I32" % QA0,
               st_valid(replaced(QA0, "I32", [Q, D], T[QA0][2])))
    model_case("model_matrix_f64", "has dtype F64",
               st_valid(replaced(QA0, "F64", [Q, D], T[QA0][2] * 2)))
    nan = struct.pack("<f", 1.0) * 3 + struct.pack("<I", 0x7fc00000) + struct.pack("<f", 1.0) * (D - 4)
    model_case("model_nan_norm", "'%s' has NaN at element 3" % NORM0, st_valid(replaced(NORM0, "F32", [D], nan)))
    inf = struct.pack("<f", 1.0) * 5 + struct.pack("<I", 0xff800000) + struct.pack("<f", 1.0) * (D - 6)
    model_case("model_inf_norm", "'%s' has -inf at element 5" % NORM0, st_valid(replaced(NORM0, "F32", [D], inf)))
    bnan = b"\x80\x3f" * 2 + b"\xc0\x7f" + b"\x80\x3f" * (D - 3)
    model_case("model_nan_norm_bf16", "has NaN at element 2", st_valid(replaced(NORM0, "BF16", [D], bnan)))
    # ---- non-finite weights ----
    # What is cheap is refused at load: FP8 scales, the routers, norms and biases.
    def f32_with(name, index, bits):
        b = bytearray(T[name][2])
        b[4 * index:4 * index + 4] = struct.pack("<I", bits)
        return replaced(name, "F32", T[name][1], bytes(b))
    NAN, INF, NINF = 0x7fc00000, 0x7f800000, 0xff800000
    fp8s = dict(fp8)
    fp8s[O0 + "_scale_inv"] = ("F32", [1, 1], struct.pack("<I", NAN))
    model_case("model_fp8_nan_scale", "tensor '%s_scale_inv' has NaN at element 0, expected finite values" % O0,
               st_valid(fp8s))
    fp8s[O0 + "_scale_inv"] = ("F32", [1, 1], struct.pack("<I", INF))
    model_case("model_fp8_inf_scale", "tensor '%s_scale_inv' has inf at element 0" % O0, st_valid(fp8s))
    GATE1 = "model.layers.1.mlp.gate.weight"
    model_case("model_nan_router", "tensor '%s' has NaN at element 7, expected finite values" % GATE1,
               st_valid(f32_with(GATE1, 7, NAN)))
    BIAS1 = "model.layers.1.mlp.gate.e_score_correction_bias"
    model_case("model_inf_bias", "tensor '%s' has -inf at element 2" % BIAS1, st_valid(f32_with(BIAS1, 2, NINF)))
    # The big matrices are not scanned at load: these load (info succeeds), and
    # the forward refuses its non-finite logits naming the first tensor whose
    # output went non-finite ("FORWARD " cases; ids 0,1).
    model_case("model_nan_mlp", "FORWARD the output of 'model.layers.0.mlp.down_proj.weight' (layer 0, position 0)",
               st_valid(f32_with("model.layers.0.mlp.down_proj.weight", 5, NAN)))
    model_case("model_inf_shared_up",
               "FORWARD the output of 'model.layers.1.mlp.shared_experts.up_proj.weight' (layer 1, position 0)",
               st_valid(f32_with("model.layers.1.mlp.shared_experts.up_proj.weight", 0, INF)))
    QB1 = "model.layers.1.self_attn.q_b_proj.weight"
    bfq = dict(bf)
    qb = bytearray(bf[QB1][2])
    qb[2 * 9:2 * 9 + 2] = b"\xc0\x7f"
    bfq[QB1] = ("BF16", bf[QB1][1], bytes(qb))
    model_case("model_nan_q_b_bf16", "FORWARD the output of '%s' (layer 1, position 0)" % QB1, st_valid(bfq))
    model_case("model_nan_kv_b", "FORWARD the output of 'model.layers.0.self_attn.kv_b_proj.weight'",
               st_valid(f32_with("model.layers.0.self_attn.kv_b_proj.weight", 3, NAN)))
    model_case("model_nan_embed_row", "FORWARD the output of 'model.embed_tokens.weight' (row 1, the token's embedding) "
               "(position 1)", st_valid(f32_with(EMB, D + 3, NAN)))
    model_case("model_nan_head", "FORWARD the output of 'lm_head.weight' (position ",
               st_valid(f32_with("lm_head.weight", 3 * D, NAN)))
    fp8w = dict(fp8)
    fp8w[O0] = ("F8_E4M3", [D, H * DV], bytes([0x38]) * 7 + b"\x7f" + bytes([0x38]) * (D * H * DV - 8))
    fp8w[O0 + "_scale_inv"] = ("F32", [1, 1], f32_bytes([0.05]))
    model_case("model_fp8_nan_weight", "FORWARD the output of '%s' (layer 0, position 0)" % O0, st_valid(fp8w))
    case("model_no_checkpoint", "no model.safetensors or model.safetensors.index.json",
         {"config.json": config_text(BASE_CONFIG)})
    case("model_no_config", "config.json: cannot open", {"model.safetensors": valid})
    # Absurd sizes that pass the per-field limits must still not allocate
    # per-layer buffers sized by the config before the tensors are checked.
    model_case("model_absurd_layers",
               "'model.layers.0.self_attn.q_a_proj.weight' has shape [6, 8], expected [16777216, 8]", valid,
               cfg_with(num_hidden_layers=100000, kv_lora_rank=(1 << 24) - 2, q_lora_rank=1 << 24))
    model_case("model_absurd_experts", "'model.layers.1.mlp.gate.weight' has shape [4, 8], expected [65536, 8]",
               valid, cfg_with(num_hidden_layers=100000, n_routed_experts=1 << 16, n_group=1, topk_group=1))

    # ---- config.json ----
    config_case("cfg_malformed", "config.json: byte 18: expected a string key", '{"hidden_size": 8,,}\n')
    config_case("cfg_trailing_comma", "expected a string key", config_text(BASE_CONFIG)[:-3] + ",\n}\n")
    config_case("cfg_empty", "config.json: byte 0 (end of input): expected a value", "")
    config_case("cfg_not_object", "expected a JSON object at the top level", "[1, 2]\n")
    config_case("cfg_garbage_after", "unexpected data after the top-level value", config_text(BASE_CONFIG) + "{}\n")
    config_case("cfg_invalid_utf8", "invalid UTF-8 in string",
                config_text(BASE_CONFIG).encode().replace(b"deepseek_v3", b"deepseek\xc0\xaf"))
    config_case("cfg_deep_nesting", "nesting too deep", '{"a": ' + "[" * 600 + "]" * 600 + "}\n")
    config_case("cfg_unknown_arch", "unsupported architecture \"LlamaForCausalLM\"",
                cfg_with(architectures=["LlamaForCausalLM"], model_type="llama"))
    config_case("cfg_arch_newline", "unsupported architecture \"Deepseek\\nV3\"",
                cfg_with(architectures=["Deepseek\nV3"]))
    config_case("cfg_arch_not_strings", "'architectures' must be an array of strings", cfg_with(architectures=[3]))
    config_case("cfg_no_arch", "missing field 'architectures'", cfg_with(architectures=DELETE, model_type=DELETE))
    config_case("cfg_missing_hidden_size", "missing field 'hidden_size'", cfg_with(hidden_size=DELETE))
    config_case("cfg_negative_heads", "'num_attention_heads' = -2, expected 1..", cfg_with(num_attention_heads=-2))
    config_case("cfg_zero_vocab", "'vocab_size' = 0, expected 1..", cfg_with(vocab_size=0))
    config_case("cfg_nan_eps", "expected a value",
                config_text(BASE_CONFIG).replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": NaN'))
    config_case("cfg_infinity_theta", "expected a value",
                config_text(BASE_CONFIG).replace('"rope_theta": 10000', '"rope_theta": Infinity'))
    config_case("cfg_eps_1e400", "number out of range",
                config_text(BASE_CONFIG).replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e400'))
    config_case("cfg_eps_negative", "'rms_norm_eps' = -1", cfg_with(rms_norm_eps=-1))
    config_case("cfg_hidden_string", "'hidden_size' at byte", cfg_with(hidden_size="8"))
    config_case("cfg_layers_fraction", "'num_hidden_layers' at byte", cfg_with(num_hidden_layers=2.5))
    config_case("cfg_layers_1e400", "number out of range",
                config_text(BASE_CONFIG).replace('"num_hidden_layers": 2', '"num_hidden_layers": 1e400'))
    config_case("cfg_vocab_2e40", "'vocab_size' = 1099511627776", cfg_with(vocab_size=1 << 40))
    config_case("cfg_vocab_2e64", "'vocab_size' = 1.84467e+19, expected 1..", cfg_with(vocab_size=1 << 64))
    config_case("cfg_hidden_2e31", "'hidden_size' = 2147483648", cfg_with(hidden_size=1 << 31))
    config_case("cfg_heads_x_head_dim", "num_attention_heads x (qk_nope_head_dim + qk_rope_head_dim)",
                cfg_with(num_attention_heads=65536, qk_nope_head_dim=65536))
    config_case("cfg_heads_x_v_dim", "num_attention_heads x (qk_nope_head_dim + v_head_dim)",
                cfg_with(num_attention_heads=65536, v_head_dim=1 << 16))
    config_case("cfg_shared_x_width", "n_shared_experts x moe_intermediate_size",
                cfg_with(n_shared_experts=1024, moe_intermediate_size=1 << 24))
    config_case("cfg_odd_rope_dim", "'qk_rope_head_dim' = 3, expected an even number", cfg_with(qk_rope_head_dim=3))
    config_case("cfg_experts_not_multiple", "n_routed_experts = 4 is not a multiple of n_group = 3",
                cfg_with(n_group=3))
    config_case("cfg_topk_group_gt_n_group", "topk_group = 3 exceeds n_group = 2", cfg_with(topk_group=3))
    config_case("cfg_k_gt_experts", "'num_experts_per_tok' = 5, expected 1..4", cfg_with(num_experts_per_tok=5))
    config_case("cfg_k_gt_kept_experts", "num_experts_per_tok = 3 exceeds the 2 experts",
                cfg_with(num_experts_per_tok=3))
    config_case("cfg_yarn_factor_0", "'rope_scaling.factor' = 0, expected 1..",
                cfg_with(rope_scaling=dict(BASE_CONFIG["rope_scaling"], factor=0)))
    config_case("cfg_yarn_no_orig", "missing field 'rope_scaling.original_max_position_embeddings'",
                cfg_with(rope_scaling={"type": "yarn", "factor": 4}))
    config_case("cfg_rope_unsupported", "rope_scaling type \"dynamic\" is not supported",
                cfg_with(rope_scaling={"type": "dynamic", "factor": 2}))
    config_case("cfg_rope_scaling_number", "'rope_scaling' must be an object or null", cfg_with(rope_scaling=2))
    config_case("cfg_rope_theta_1", "'rope_theta' = 1, expected more than 1", cfg_with(rope_theta=1))
    config_case("cfg_topk_method", "'topk_method' = \"best\"", cfg_with(topk_method="best"))
    config_case("cfg_scoring_func", "'scoring_func' = \"relu\"", cfg_with(scoring_func="relu"))
    config_case("cfg_bool_as_int", "'norm_topk_prob' at byte", cfg_with(norm_topk_prob=1))
    config_case("cfg_scaling_zero", "'routed_scaling_factor' must be positive", cfg_with(routed_scaling_factor=0))
    config_case("cfg_fp8_block_64", "weight_block_size must be [128, 128]",
                cfg_with(quantization_config={"quant_method": "fp8", "weight_block_size": [64, 64]}))
    config_case("cfg_layers_zero", "'num_hidden_layers' = 0", cfg_with(num_hidden_layers=0))


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def write_all(out):
    build_cases()
    os.makedirs(out, exist_ok=True)
    # Remove old case directories (only directories this script writes).
    for name in sorted(os.listdir(out)):
        p = os.path.join(out, name)
        if os.path.isdir(p) and os.path.exists(os.path.join(p, ".bad_case")):
            shutil.rmtree(p)
    names = set()
    lines = []
    for name, expect, files in CASES:
        assert name not in names, name
        assert "\t" not in expect and "\n" not in expect
        names.add(name)
        d = os.path.join(out, name)
        os.makedirs(d)
        with open(os.path.join(d, ".bad_case"), "w") as f:
            f.write("written by tests/bad/make_bad.py\n")
        for fname, content in sorted(files.items()):
            if isinstance(content, str):
                content = content.encode()
            with open(os.path.join(d, fname), "wb") as f:
                f.write(content)
        lines.append("%s\t%s\n" % (name, expect))
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        f.write("# case\texpected substring of the one-line error (OK: must load and run); "
                "written by tests/bad/make_bad.py\n")
        f.writelines(lines)


def main(argv):
    if argv[1:2] == ["--check"]:
        tmp = tempfile.mkdtemp()
        try:
            write_all(tmp)
            rc = os.system("diff -r -x make_bad.py -x __pycache__ '%s' '%s' >&2" % (HERE, tmp))
            print("tests/bad is %s" % ("current" if rc == 0 else "NOT current"))
            return 0 if rc == 0 else 1
        finally:
            shutil.rmtree(tmp)
    out = argv[2] if argv[1:2] == ["--out"] and len(argv) > 2 else HERE
    write_all(out)
    print("wrote %d cases to %s" % (len(CASES), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
