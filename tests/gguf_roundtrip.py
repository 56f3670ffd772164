#!/usr/bin/python3
"""Checks a GGUF file written by `lemma export` against the checkpoint it came
from, tensor by tensor and bit for bit: an independent reader of both formats
(numpy only) rebuilds what every GGUF tensor must hold -- the deepseek2 names,
ne order, the attn_k_b / attn_v_b split of kv_b, the stacked experts, FP8
dequantised with its 128x128 block scales, lemma Q8 (I8 with an F16
`_q8_scale` per 32 columns) as q * d -- and encodes it the way ggml does: F32
as is, F16 and BF16 round-to-nearest-even, Q8_0 blocks of 32 with d = max|x| /
127 stored as F16 and q = roundf(x * (1/d)). A Q8_0 tensor from a lemma Q8
matrix holds lemma's own blocks: it must dequantise (q * d) to exactly the
checkpoint's values.

    tests/gguf_roundtrip.py MODEL_DIR FILE.gguf

Prints one line and exits 0 when every tensor matches, 1 otherwise.
"""
import json
import os
import struct
import sys

import numpy as np

GGML = {0: "f32", 1: "f16", 8: "q8_0", 30: "bf16"}


def read_gguf(path):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n]
        pos += n
        return s.decode("utf-8", "surrogateescape")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF", "not a GGUF file"
    pos = 4
    version, nt, nkv = take("I"), take("Q"), take("Q")
    assert version == 3
    kv, order = {}, []
    for _ in range(nkv):
        k = string()
        kv[k] = value(take("I"))
        order.append(k)
    infos = []
    for _ in range(nt):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        infos.append((name, ne, take("I"), take("Q")))
    base = (pos + 31) // 32 * 32
    tensors = {}
    for name, ne, t, off in infos:
        n = int(np.prod(ne))
        nbytes = {0: 4 * n, 1: 2 * n, 30: 2 * n, 8: n // 32 * 34}[t]
        tensors[name] = (ne, t, data[base + off:base + off + nbytes])
    return kv, order, tensors


def read_safetensors(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        files = [single]
    else:
        wm = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))["weight_map"]
        files = sorted(set(os.path.join(model_dir, f) for f in wm.values()))
    out = {}
    for f in files:
        raw = open(f, "rb").read()
        (hl,) = struct.unpack_from("<Q", raw, 0)
        header = json.loads(raw[8:8 + hl])
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, en = e["data_offsets"]
            out[name] = (e["dtype"], e["shape"], raw[8 + hl + b:8 + hl + en])
    return out


def e4m3():
    t = np.zeros(256, dtype=np.float32)
    for i in range(256):
        s, e, m = (-1.0 if i & 0x80 else 1.0), (i >> 3) & 15, i & 7
        t[i] = np.nan if (e == 15 and m == 7) else s * (m / 8.0) * 2.0 ** -6 if e == 0 else s * (1 + m / 8.0) * 2.0 ** (e - 7)
    return t


def as_f32(st, name):
    dt, shape, b = st[name]
    if dt == "F32":
        a = np.frombuffer(b, dtype="<f4")
    elif dt == "BF16":
        a = (np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dt == "F16":
        a = np.frombuffer(b, dtype="<f2").astype(np.float32)
    elif dt == "F8_E4M3":
        a = e4m3()[np.frombuffer(b, dtype=np.uint8)]
        sname = name[:-len("weight")] + "weight_scale_inv"
        if sname in st:
            s = as_f32(st, sname)
            r, c = shape
            s = np.repeat(np.repeat(s, 128, axis=0)[:r], 128, axis=1)[:, :c]
            a = (a.reshape(shape) * s).astype(np.float32)
    elif dt == "I8":
        dt2, sshape, sb = st[name + "_q8_scale"]
        assert dt2 == "F16" and sshape == [shape[0], (shape[1] + 31) // 32], name
        d = np.frombuffer(sb, dtype="<f2").astype(np.float32).reshape(sshape)
        q = np.frombuffer(b, dtype=np.int8).astype(np.float32).reshape(shape)
        a = q * np.repeat(d, 32, axis=1)[:, :shape[1]]  # exact: 8-bit q times an F16 d fits f32
    else:
        raise ValueError("%s: dtype %s" % (name, dt))
    return np.ascontiguousarray(a, dtype=np.float32).reshape(shape)


def bf16(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def q8_0(a):
    x = np.ascontiguousarray(a, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(1)
    d = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = (x * inv[:, None]).astype(np.float32).astype(np.float64)
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
    out = np.zeros((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequant_q8_0(b):
    blocks = np.frombuffer(b, dtype=np.uint8).reshape(-1, 34)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def encode(a, t):
    if t == 0:
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if t == 1:
        return np.ascontiguousarray(a, dtype=np.float32).astype("<f2").tobytes()
    if t == 30:
        return bf16(a).tobytes()
    return q8_0(a)


def expected(cfg, st, name):
    """The float32 array (row-major, outermost first) a GGUF tensor holds."""
    H, dn, dv, C = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    if name in top:
        return as_f32(st, top[name])
    _, l, what = name.split(".", 2)
    p = "model.layers.%s." % l
    plain = {"attn_norm.weight": "input_layernorm.weight", "attn_q_a.weight": "self_attn.q_a_proj.weight",
             "attn_q_a_norm.weight": "self_attn.q_a_layernorm.weight", "attn_q_b.weight": "self_attn.q_b_proj.weight",
             "attn_q.weight": "self_attn.q_proj.weight", "attn_kv_a_mqa.weight": "self_attn.kv_a_proj_with_mqa.weight",
             "attn_kv_a_norm.weight": "self_attn.kv_a_layernorm.weight", "attn_kv_b.weight": "self_attn.kv_b_proj.weight",
             "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
             "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
             "ffn_down.weight": "mlp.down_proj.weight", "ffn_gate_inp.weight": "mlp.gate.weight",
             "exp_probs_b.bias": "mlp.gate.e_score_correction_bias"}
    if what in plain:
        return as_f32(st, p + plain[what])
    if what in ("attn_k_b.weight", "attn_v_b.weight"):
        kvb = as_f32(st, p + "self_attn.kv_b_proj.weight").reshape(H, dn + dv, C)
        return kvb[:, :dn, :].transpose(0, 2, 1) if what == "attn_k_b.weight" else kvb[:, dn:, :]
    proj = what.split("_")[1]
    if what.endswith("_exps.weight"):
        return np.stack([as_f32(st, p + "mlp.experts.%d.%s_proj.weight" % (e, proj))
                         for e in range(cfg["n_routed_experts"])])
    if what.endswith("_shexp.weight"):
        hn = p + "mlp.shared_experts.%s_proj.weight" % proj
        if hn in st:
            return as_f32(st, hn)
        D, F = cfg["hidden_size"], cfg["moe_intermediate_size"]
        return np.zeros((D, F) if proj == "down" else (F, D), dtype=np.float32)
    raise KeyError(name)


def main(model_dir, path):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    st = read_safetensors(model_dir)
    kv, order, tensors = read_gguf(path)
    bad = []
    q8_model = any(n.endswith("_q8_scale") for n in st)
    if order[0] != "lemma.export":
        bad.append("first key is %s, not lemma.export" % order[0])
    if len(kv.get("tokenizer.ggml.tokens", [])) != cfg["vocab_size"]:
        bad.append("tokenizer.ggml.tokens does not hold vocab_size tokens")
    for name, (ne, t, b) in tensors.items():
        try:
            a = expected(cfg, st, name)
        except KeyError as e:
            bad.append("%s: unexpected tensor (%s)" % (name, e))
            continue
        if list(a.shape[::-1]) != [int(x) for x in ne]:
            bad.append("%s: ne %s, expected %s" % (name, ne, list(a.shape[::-1])))
        elif t == 8 and q8_model:
            if not np.array_equal(dequant_q8_0(b), np.ascontiguousarray(a, dtype=np.float32).reshape(-1)):
                bad.append("%s: q8_0 blocks do not dequantise to the Q8 checkpoint's q * d" % name)
        elif encode(a, t) != b:
            bad.append("%s: %s bytes differ" % (name, GGML[t]))
    types = sorted(set(GGML[t] for _, t, _ in tensors.values()))
    if bad:
        print("gguf_roundtrip: %s: %d of %d tensors wrong: %s" % (path, len(bad), len(tensors), "; ".join(bad[:3])))
        return 1
    print("gguf_roundtrip: %s: %d tensors (%s) bit-exact" % (os.path.basename(path), len(tensors), ",".join(types)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write("usage: gguf_roundtrip.py MODEL_DIR FILE.gguf\n")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
