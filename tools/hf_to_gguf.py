#!/usr/bin/python3
"""Convert a lemma / Hugging Face DeepSeek-V2/V3 checkpoint to a GGUF file for
llama.cpp's `deepseek2` architecture.

    tools/hf_to_gguf.py MODEL_DIR OUT.gguf [--outtype auto|f32] [--no-mla]

Plain python3 + numpy; no torch, no gguf package.  The GGUF v3 container is
written here from its published layout:

    magic "GGUF", u32 version=3, u64 n_tensors, u64 n_kv,
    n_kv x (string key, u32 type, value),
    n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset),
    padding to `general.alignment` (32), tensor data (each tensor padded to 32).

Strings are u64 length + bytes.  `ne[0]` is the innermost (contiguous)
dimension, so a row-major PyTorch weight of shape [out, in] is written with
ne = [in, out] and the bytes unchanged.

What llama.cpp (the version node-llama-cpp 3.21.1 bundles) expects, and what
this writes:
  * MLA layout (default): head_count_kv = 1, key_length = kv_lora + rope,
    value_length = kv_lora, key_length_mla / value_length_mla = the real head
    sizes, and kv_b_proj split per head into attn_k_b (transposed,
    ne = [nope, kv_lora, n_head]) and attn_v_b (ne = [kv_lora, v, n_head]).
    `--no-mla` writes the legacy single attn_kv_b tensor instead.
  * RoPE: llama.cpp uses the "normal" (adjacent pair) rotation for deepseek2,
    which is the layout the HF checkpoints store, so q/k are NOT permuted.
  * YaRN: rope.scaling.yarn_log_multiplier holds 0.1 * mscale_all_dim (the
    loader divides it by 0.1 again), as llama.cpp's converter does.
  * Experts are stacked into 3-D tensors; 1-D tensors (norms, routing bias)
    and the router weight are always F32.
  * Tokenizer: the model has no real tokenizer, so a synthetic "gpt2" vocab
    of vocab_size tokens with no merges is written: ids 0..255 are the
    byte-level symbols, the rest "<|tNNNN|>", bos/eos are control tokens.
"""
import json
import mmap
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.stderr.write("hf_to_gguf: numpy is required (apt-get install python3-numpy)\n")
    sys.exit(2)

ALIGN = 32

# GGUF metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)

# ggml tensor types
G_F32, G_F16, G_BF16 = 0, 1, 30
GTYPE_SIZE = {G_F32: 4, G_F16: 2, G_BF16: 2}

# general.file_type (llama_ftype)
FTYPE = {G_F32: 0, G_F16: 1, G_BF16: 32}


def die(msg):
    sys.stderr.write("hf_to_gguf: %s\n" % msg)
    sys.exit(1)


# ---------------------------------------------------------------- safetensors

class SafeTensors:
    """Read-only view of one or more safetensors files (mmap)."""

    DT = {"F32": (np.float32, 4), "BF16": (np.uint16, 2), "F16": (np.float16, 2),
          "F8_E4M3": (np.uint8, 1)}

    def __init__(self, model_dir):
        self.entries = {}
        self.maps = []
        single = os.path.join(model_dir, "model.safetensors")
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(single):
            files = [single]
        elif os.path.exists(index):
            with open(index) as f:
                wm = json.load(f)["weight_map"]
            files = sorted(set(os.path.join(model_dir, v) for v in wm.values()))
        else:
            die("%s: no model.safetensors or model.safetensors.index.json" % model_dir)
        for path in files:
            self._open(path)

    def _open(self, path):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                die("%s: truncated" % path)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.maps.append(mm)
        (hlen,) = struct.unpack("<Q", mm[:8])
        if hlen > size - 8:
            die("%s: header length past end of file" % path)
        header = json.loads(bytes(mm[8:8 + hlen]).decode("utf-8"))
        base = 8 + hlen
        for name, e in header.items():
            if name == "__metadata__":
                continue
            dt = e["dtype"]
            if dt not in self.DT:
                die("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
            b, en = e["data_offsets"]
            n = 1
            for d in e["shape"]:
                n *= d
            if en - b != n * self.DT[dt][1] or base + en > size:
                die("%s: tensor %s has bad offsets" % (path, name))
            self.entries[name] = (mm, base + b, dt, list(e["shape"]))

    def has(self, name):
        return name in self.entries

    def dtype(self, name):
        return self.entries[name][2]

    def raw(self, name):
        """numpy array of the stored values (BF16 as uint16, FP8 as uint8)."""
        if name not in self.entries:
            die("missing tensor %s" % name)
        mm, off, dt, shape = self.entries[name]
        npdt, es = self.DT[dt]
        n = 1
        for d in shape:
            n *= d
        return np.frombuffer(mm, dtype=npdt, count=n, offset=off).reshape(shape)


def bf16_to_f32(a):
    return (a.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(a):
    """Round-to-nearest-even, as torch does."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u >> 16) & 1) + 0x7FFF
    out = ((u + r) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def e4m3_table():
    t = np.zeros(256, dtype=np.float32)
    for i in range(256):
        s = -1.0 if i & 0x80 else 1.0
        e = (i >> 3) & 0xF
        m = i & 7
        if e == 0xF and m == 7:
            t[i] = np.nan
        elif e == 0:
            t[i] = s * (m / 8.0) * 2.0 ** -6
        else:
            t[i] = s * (1 + m / 8.0) * 2.0 ** (e - 7)
    return t


# --------------------------------------------------------------------- writer

def s_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class KV:
    def __init__(self):
        self.items = []

    def _add(self, key, typ, payload):
        self.items.append(s_str(key) + struct.pack("<I", typ) + payload)

    def u32(self, k, v):
        self._add(k, T_U32, struct.pack("<I", int(v)))

    def i32(self, k, v):
        self._add(k, T_I32, struct.pack("<i", int(v)))

    def f32(self, k, v):
        self._add(k, T_F32, struct.pack("<f", float(v)))

    def bool(self, k, v):
        self._add(k, T_BOOL, struct.pack("<b", 1 if v else 0))

    def str(self, k, v):
        self._add(k, T_STR, s_str(v))

    def arr_str(self, k, vals):
        self._add(k, T_ARR, struct.pack("<IQ", T_STR, len(vals)) + b"".join(s_str(v) for v in vals))

    def arr_i32(self, k, vals):
        self._add(k, T_ARR, struct.pack("<IQ", T_I32, len(vals)) + np.asarray(vals, dtype="<i4").tobytes())


def byte_symbols():
    """GPT-2 byte-level alphabet: byte value -> printable unicode char."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# ------------------------------------------------------------------ converter

class Tensor:
    def __init__(self, name, ne, gtype, produce):
        self.name, self.ne, self.gtype, self.produce = name, ne, gtype, produce

    def nbytes(self):
        n = 1
        for d in self.ne:
            n *= d
        return n * GTYPE_SIZE[self.gtype]


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    opts = [a for a in argv if a.startswith("--")]
    outtype = "auto"
    mla = True
    for o in opts:
        if o.startswith("--outtype="):
            outtype = o.split("=", 1)[1]
        elif o == "--no-mla":
            mla = False
        elif o in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            die("unknown option %s" % o)
    if len(args) != 2:
        die("usage: hf_to_gguf.py MODEL_DIR OUT.gguf [--outtype=auto|f32|bf16] [--no-mla]")
    model_dir, out_path = args
    if outtype not in ("auto", "f32", "bf16"):
        die("--outtype must be auto, f32 or bf16")

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or [""])[0]
    if arch not in ("DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"):
        die("unsupported architecture %r" % arch)
    st = SafeTensors(model_dir)

    H = cfg["hidden_size"]
    L = cfg["num_hidden_layers"]
    nh = cfg["num_attention_heads"]
    V = cfg["vocab_size"]
    q_lora = cfg.get("q_lora_rank")
    kvl = cfg["kv_lora_rank"]
    nope = cfg["qk_nope_head_dim"]
    rope = cfg["qk_rope_head_dim"]
    vdim = cfg["v_head_dim"]
    E = cfg.get("n_routed_experts") or 0
    n_dense = cfg.get("first_k_dense_replace", 0 if E else L)
    freq = cfg.get("moe_layer_freq", 1)
    if freq != 1:
        die("moe_layer_freq != 1 is not supported by llama.cpp's deepseek2")
    tied = bool(cfg.get("tie_word_embeddings", False))
    scoring = cfg.get("scoring_func", "softmax")
    topk_method = cfg.get("topk_method", "greedy")

    # Which dtype the big matrices get in the GGUF.
    src_types = set(st.dtype(n) for n in st.entries if not n.endswith("weight_scale_inv"))
    if outtype == "f32":
        big = G_F32
    elif outtype == "bf16":
        big = G_BF16
    elif src_types <= {"F32"}:
        big = G_F32
    elif src_types <= {"F32", "BF16", "F8_E4M3"}:
        big = G_BF16
    elif src_types <= {"F32", "F16"}:
        big = G_F16
    else:
        big = G_F32

    lut = [None]

    def load_f32(name):
        """Any stored tensor as float32 (FP8 dequantised with its block scales)."""
        dt = st.dtype(name)
        a = st.raw(name)
        if dt == "F32":
            return a
        if dt == "BF16":
            return bf16_to_f32(a)
        if dt == "F16":
            return a.astype(np.float32)
        if lut[0] is None:
            lut[0] = e4m3_table()
        w = lut[0][a]
        sname = name[:-len("weight")] + "weight_scale_inv"
        if st.has(sname):
            s = load_f32(sname)
            r, c = w.shape
            s = np.repeat(np.repeat(s, 128, axis=0)[:r], 128, axis=1)[:, :c]
            w = w * s
        return w

    def as_type(name, gtype):
        """Bytes-ready array of tensor `name` in ggml type `gtype`."""
        dt = st.dtype(name)
        if gtype == G_F32:
            return np.ascontiguousarray(load_f32(name), dtype=np.float32)
        if gtype == G_BF16:
            if dt == "BF16":
                return st.raw(name)
            return f32_to_bf16(load_f32(name))
        if gtype == G_F16:
            if dt == "F16":
                return st.raw(name)
            return load_f32(name).astype(np.float16)
        raise AssertionError

    tensors = []

    def add(gname, hname, gtype, transform=None):
        shape = list(st.raw(hname).shape) if st.has(hname) else die("missing tensor %s" % hname)
        if transform is None:
            ne = shape[::-1]
            tensors.append(Tensor(gname, ne, gtype, lambda: as_type(hname, gtype)))
        else:
            ne, fn = transform(shape)
            tensors.append(Tensor(gname, ne, gtype, lambda: fn(as_type(hname, gtype))))

    def add_stack(gname, hnames, gtype):
        shape = list(st.raw(hnames[0]).shape)
        ne = shape[::-1] + [len(hnames)]
        tensors.append(Tensor(gname, ne, gtype,
                              lambda: np.stack([as_type(h, gtype) for h in hnames], axis=0)))

    add("token_embd.weight", "model.embed_tokens.weight", big)
    for i in range(L):
        p = "model.layers.%d." % i
        b = "blk.%d." % i
        add(b + "attn_norm.weight", p + "input_layernorm.weight", G_F32)
        if q_lora:
            add(b + "attn_q_a.weight", p + "self_attn.q_a_proj.weight", big)
            add(b + "attn_q_a_norm.weight", p + "self_attn.q_a_layernorm.weight", G_F32)
            add(b + "attn_q_b.weight", p + "self_attn.q_b_proj.weight", big)
        else:
            add(b + "attn_q.weight", p + "self_attn.q_proj.weight", big)
        add(b + "attn_kv_a_mqa.weight", p + "self_attn.kv_a_proj_with_mqa.weight", big)
        add(b + "attn_kv_a_norm.weight", p + "self_attn.kv_a_layernorm.weight", G_F32)
        kvb = p + "self_attn.kv_b_proj.weight"
        if mla:
            # kv_b: [nh*(nope+v), kvl] -> per head [nope+v, kvl]
            def k_b(shape):
                assert shape == [nh * (nope + vdim), kvl], (kvb, shape)
                # [nh, nope, kvl] transposed to [nh, kvl, nope]: ne = [nope, kvl, nh]
                return [nope, kvl, nh], lambda a: np.ascontiguousarray(
                    a.reshape(nh, nope + vdim, kvl)[:, :nope, :].transpose(0, 2, 1))

            def v_b(shape):
                # [nh, v, kvl]: ne = [kvl, v, nh]
                return [kvl, vdim, nh], lambda a: np.ascontiguousarray(
                    a.reshape(nh, nope + vdim, kvl)[:, nope:, :])
            add(b + "attn_k_b.weight", kvb, big, k_b)
            add(b + "attn_v_b.weight", kvb, big, v_b)
        else:
            add(b + "attn_kv_b.weight", kvb, big)
        add(b + "attn_output.weight", p + "self_attn.o_proj.weight", big)
        add(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", G_F32)
        if i < n_dense:
            for w in ("gate", "up", "down"):
                add(b + "ffn_%s.weight" % w, p + "mlp.%s_proj.weight" % w, big)
        else:
            add(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", G_F32)
            if st.has(p + "mlp.gate.e_score_correction_bias"):
                add(b + "exp_probs_b.bias", p + "mlp.gate.e_score_correction_bias", G_F32)
            for w in ("gate", "up", "down"):
                add_stack(b + "ffn_%s_exps.weight" % w,
                          [p + "mlp.experts.%d.%s_proj.weight" % (e, w) for e in range(E)], big)
            if cfg.get("n_shared_experts"):
                for w in ("gate", "up", "down"):
                    add(b + "ffn_%s_shexp.weight" % w, p + "mlp.shared_experts.%s_proj.weight" % w, big)
            else:
                # llama.cpp's deepseek2 requires a shared expert: write one of
                # zeros (its output is exactly 0), see expert_shared_count.
                F = cfg["moe_intermediate_size"]
                for w, ne in (("gate", [H, F]), ("up", [H, F]), ("down", [F, H])):
                    tensors.append(Tensor(b + "ffn_%s_shexp.weight" % w, ne, big,
                                          lambda ne=ne: np.zeros(ne[0] * ne[1], dtype=np.float32 if big == G_F32 else np.uint16)))
    add("output_norm.weight", "model.norm.weight", G_F32)
    if not tied:
        add("output.weight", "lm_head.weight", big)

    # ---------------------------------------------------------------- metadata
    A = "deepseek2"
    kv = KV()
    kv.str("general.architecture", A)
    kv.str("general.name", os.path.basename(os.path.normpath(model_dir)))
    kv.u32("general.alignment", ALIGN)
    kv.u32("general.file_type", FTYPE[big])
    kv.u32(A + ".block_count", L)
    kv.u32(A + ".context_length", cfg.get("max_position_embeddings", 4096))
    kv.u32(A + ".embedding_length", H)
    kv.u32(A + ".feed_forward_length", cfg["intermediate_size"])
    kv.u32(A + ".attention.head_count", nh)
    kv.f32(A + ".attention.layer_norm_rms_epsilon", cfg.get("rms_norm_eps", 1e-6))
    kv.f32(A + ".rope.freq_base", cfg.get("rope_theta", 10000.0))
    kv.u32(A + ".rope.dimension_count", rope)
    kv.u32(A + ".vocab_size", V)
    kv.u32(A + ".leading_dense_block_count", n_dense)
    # llama.cpp requires the key except for a few hard-coded "lite" layer
    # counts; 0 selects the plain attn_q path.
    kv.u32(A + ".attention.q_lora_rank", q_lora or 0)
    kv.u32(A + ".attention.kv_lora_rank", kvl)
    if mla:
        kv.u32(A + ".attention.head_count_kv", 1)
        kv.u32(A + ".attention.key_length", kvl + rope)
        kv.u32(A + ".attention.value_length", kvl)
        kv.u32(A + ".attention.key_length_mla", nope + rope)
        kv.u32(A + ".attention.value_length_mla", vdim)
    else:
        kv.u32(A + ".attention.head_count_kv", nh)
        kv.u32(A + ".attention.key_length", nope + rope)
        kv.u32(A + ".attention.value_length", vdim)
    kv.u32(A + ".expert_feed_forward_length", cfg.get("moe_intermediate_size", cfg["intermediate_size"]))
    if E:
        kv.u32(A + ".expert_count", E)
        kv.u32(A + ".expert_used_count", cfg["num_experts_per_tok"])
        ng = cfg.get("n_group") or 1
        tg = cfg.get("topk_group") or 1
        if topk_method == "group_limited_greedy" and ng > 1 and tg < ng:
            sys.stderr.write("hf_to_gguf: warning: llama.cpp scores expert groups by the sum of their top-2 "
                             "scores (V3); DeepSeek-V2's group_limited_greedy uses the max, so routing can differ\n")
        if topk_method in ("group_limited_greedy", "noaux_tc") and ng > 1 and tg < ng:
            kv.u32(A + ".expert_group_count", ng)
            kv.u32(A + ".expert_group_used_count", tg)
    kv.u32(A + ".expert_shared_count", (cfg.get("n_shared_experts") or 0) or (1 if E else 0))
    if cfg.get("routed_scaling_factor") is not None:
        kv.f32(A + ".expert_weights_scale", cfg["routed_scaling_factor"])
    if cfg.get("norm_topk_prob"):
        kv.bool(A + ".expert_weights_norm", True)
    kv.u32(A + ".expert_gating_func", 2 if scoring == "sigmoid" else 1)
    rs = cfg.get("rope_scaling") or {}
    rtype = rs.get("type", rs.get("rope_type"))
    if rtype == "yarn":
        kv.str(A + ".rope.scaling.type", "yarn")
        kv.f32(A + ".rope.scaling.factor", rs["factor"])
        kv.u32(A + ".rope.scaling.original_context_length", rs["original_max_position_embeddings"])
        kv.f32(A + ".rope.scaling.yarn_beta_fast", rs.get("beta_fast", 32))
        kv.f32(A + ".rope.scaling.yarn_beta_slow", rs.get("beta_slow", 1))
        kv.f32(A + ".rope.scaling.yarn_log_multiplier", 0.1 * rs.get("mscale_all_dim", 0.0))
        if rs.get("mscale", 1.0) != rs.get("mscale_all_dim", 1.0) and rs.get("mscale_all_dim", 1.0) == 1.0:
            sys.stderr.write("hf_to_gguf: warning: llama.cpp assumes mscale == mscale_all_dim or mscale_all_dim != 1\n")
    elif rtype not in (None, "default"):
        die("rope_scaling type %r is not supported" % rtype)

    # tokenizer: synthetic byte-level vocab, no merges
    bos = cfg.get("bos_token_id")
    eos = cfg.get("eos_token_id")
    sym = byte_symbols()
    toks, types = [], []
    for i in range(V):
        if i == bos:
            toks.append("<|bos|>")
            types.append(3)
        elif i == eos:
            toks.append("<|eos|>")
            types.append(3)
        elif i < 256:
            toks.append(sym[i])
            types.append(1)
        else:
            toks.append("<|t%d|>" % i)
            types.append(1)
    kv.str("tokenizer.ggml.model", "gpt2")
    kv.str("tokenizer.ggml.pre", "default")
    kv.arr_str("tokenizer.ggml.tokens", toks)
    kv.arr_i32("tokenizer.ggml.token_type", types)
    kv.arr_str("tokenizer.ggml.merges", [])
    if bos is not None:
        kv.u32("tokenizer.ggml.bos_token_id", bos)
    if eos is not None:
        kv.u32("tokenizer.ggml.eos_token_id", eos)
    kv.bool("tokenizer.ggml.add_bos_token", False)
    kv.bool("tokenizer.ggml.add_eos_token", False)

    # ------------------------------------------------------------------ write
    infos = []
    off = 0
    for t in tensors:
        infos.append(s_str(t.name) + struct.pack("<I", len(t.ne)) +
                     b"".join(struct.pack("<Q", d) for d in t.ne) +
                     struct.pack("<IQ", t.gtype, off))
        off += -(-t.nbytes() // ALIGN) * ALIGN

    tmp = out_path + ".tmp%d" % os.getpid()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv.items)))
            for it in kv.items:
                f.write(it)
            for it in infos:
                f.write(it)
            f.write(b"\0" * (-f.tell() % ALIGN))
            for t in tensors:
                a = t.produce()
                data = np.ascontiguousarray(a).tobytes()
                if len(data) != t.nbytes():
                    die("internal: %s has %d bytes, expected %d" % (t.name, len(data), t.nbytes()))
                f.write(data)
                f.write(b"\0" * (-len(data) % ALIGN))
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    sys.stderr.write("hf_to_gguf: wrote %s (%d tensors, %d keys, %.1f MiB, %s)\n" % (
        out_path, len(tensors), len(kv.items), os.path.getsize(out_path) / 2**20,
        {G_F32: "f32", G_F16: "f16", G_BF16: "bf16"}[big]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
