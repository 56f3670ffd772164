#!/usr/bin/python3
"""Write the DeepSeek-V3.2 (sparse attention) goldens in tests/golden_v32/.

    /usr/bin/python3 tests/ref/make_v32_golden.py            # (re)write tests/golden_v32
    /usr/bin/python3 tests/ref/make_v32_golden.py --check    # regenerate in a temp dir,
                                                             # compare byte for byte

Each case is a random tiny DeepseekV32ForCausalLM checkpoint (the indexer
tensors of docs/deepseek-conventions.md item 34) with a small index_topk, so
that the indexer's choice matters over the id sequence, and the outputs of
deepseek_ref.py (float64) for those ids fed from position 0:

  logits.f32       [T, V]        FP8 emulation off (cfg.fp8 = False)
  index.i32        [L, T, K]     each position's chosen keys, ascending, -1 padded (FP8 off)
  gap.f32          [L, T]        (I_K - I_(K+1)) / |I_1| at its top-K boundary (inf: fewer than K+1 keys)
  logits_fp8.f32   [R, V]        FP8 emulation on (the released model), first R = fp8_rows positions
  index_fp8.i32    [L, R, K], gap_fp8.f32 [L, R]   the same with FP8 on

plus act_quant.bin: blocks of 128 float32 inputs and their FP8 codes and
scales under both scale formats, computed the way DeepSeek's act_quant
kernel does in float32 (item 39), for a bit-exact test of the C functions.
Layout: u32 nblocks, then nblocks*128 f32 inputs, then for ue8m0 and for
amax/448: nblocks*128 u8 codes and nblocks f32 scales.

Why FP8-on logits only for short prefixes: FP8 rounding makes the model
discontinuous (item 48); a float32 forward can round one value differently
from this float64 one and move later logits by 0.1-1. With FP8 off every
step is continuous and the C forward must match all T rows.

Self-checks (assertions): token-by-token decode and chunked prefill through
the reference's cache equal the full forward (FP8 on and off); the chosen
sets change the logits (a dense run differs by > 0.1); FP8 changes them too;
some index choices differ from "the K most recent keys".
"""

import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402
import make_golden as G  # noqa: E402

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "golden_v32")


def v32_config(base, *, index_heads, index_dim, index_topk, scale_fmt="ue8m0"):
    cfg = G.make_config("v3", **base)
    cfg["architectures"] = ["DeepseekV32ForCausalLM"]
    cfg["model_type"] = "deepseek_v32"
    cfg["index_n_heads"] = index_heads
    cfg["index_head_dim"] = index_dim
    cfg["index_topk"] = index_topk
    if scale_fmt != "ue8m0":
        cfg["quantization_config"] = {"scale_fmt": scale_fmt}
    return cfg


CASES = {
    # Layer 0 dense, layer 1 MoE (noaux_tc); YaRN; BF16 weights; ue8m0.
    "v32_tiny": dict(
        seed=3201, T=96, fp8_rows=64, storage="bf16",
        cfg=dict(vocab=64, hidden=32, inter=64, moe_inter=16, layers=2, heads=2, dn=16, dr=8, dv=16,
                 q_lora=16, kv_lora=128, experts=4, n_group=1, topk_group=1, top_k=2,
                 topk_method="noaux_tc", norm_topk_prob=True, rsf=2.0, shared=1, first_k_dense=1,
                 rope_scaling=G.yarn(4, 1.0, 1.0, 64), torch_dtype="bfloat16"),
        index=dict(index_heads=8, index_dim=128, index_topk=16),
        note="V3.2 sparse attention: index_topk 16 of up to 96 keys, 8 indexer heads of 128, "
             "rope 8 (YaRN factor 4), kv_lora 128 (FP8 latent), dense + MoE layer, BF16"),
    # Dense layers, no rope scaling, scale_fmt null (amax / 448).
    "v32_amax": dict(
        seed=3202, T=128, fp8_rows=64, storage="bf16",
        cfg=dict(vocab=48, hidden=24, inter=48, moe_inter=None, layers=2, heads=2, dn=8, dr=16, dv=8,
                 q_lora=12, kv_lora=128, experts=None, n_group=None, topk_group=None, top_k=None,
                 topk_method="noaux_tc", norm_topk_prob=False, rsf=1.0, shared=None, first_k_dense=0),
        index=dict(index_heads=8, index_dim=128, index_topk=24, scale_fmt=None),
        note="V3.2 sparse attention: index_topk 24 of up to 128 keys, rope 16, scale_fmt null "
             "(FP8 scales amax/448, not powers of two), dense layers, BF16"),
}


def random_weights(cfg, rng):
    """{name: float64 array} for every tensor of the V3.2 config."""
    model = R.DeepseekForCausalLM(R.DeepseekConfig(cfg))
    D = cfg["hidden_size"]
    out = {}
    for name, v in sorted(model.state_dict().items()):
        shape = tuple(v.shape)
        if name.endswith("norm.weight"):
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("k_norm.bias"):
            w = 0.3 * rng.standard_normal(shape)
        elif name.endswith("e_score_correction_bias"):
            w = 0.1 * rng.standard_normal(shape)
        elif name.endswith("embed_tokens.weight"):
            w = 0.5 * rng.standard_normal(shape)
        elif name.endswith("mlp.gate.weight"):
            w = (1.5 / np.sqrt(D)) * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) / np.sqrt(shape[1])
        out[name] = w
    return out


def run(model, ids, fp8, cache=None, start=0):
    model.cfg.fp8 = fp8
    with torch.no_grad():
        return model(ids, start_pos=start, cache=cache)


def index_of(model, L, T, K):
    """Chosen sets and gaps of the last (batch-1) call: [L, T, K] i32 (-1 pad), [L, T] f32."""
    idx = np.full((L, T, K), -1, dtype=np.int32)
    gap = np.zeros((L, T), dtype=np.float32)
    for l, layer in enumerate(model.model.layers):
        chosen, gaps = layer.self_attn.last_index
        for t in range(T):
            sel = chosen[0][t]
            idx[l, t, :len(sel)] = sel
        gap[l] = gaps[0].astype(np.float32)
    return idx, gap


def check_paths(name, model, tid, full, fp8):
    T = tid.shape[0]
    cache = R.LatentCache(model.cfg.num_hidden_layers)
    dec = torch.cat([run(model, tid[t:t + 1], fp8, cache, t) for t in range(T)])
    d_dec = (dec - full).abs().max().item()
    cache = R.LatentCache(model.cfg.num_hidden_layers)
    cuts = [0, T // 3, T // 3 + 1, T]
    chunks = torch.cat([run(model, tid[a:b], fp8, cache, a) for a, b in zip(cuts, cuts[1:])])
    d_chunk = (chunks - full).abs().max().item()
    assert d_dec < 1e-9 and d_chunk < 1e-9, "%s fp8=%d: decode %g, chunked %g" % (name, fp8, d_dec, d_chunk)
    return max(d_dec, d_chunk)


def build_case(name, spec, out_root):
    rng = np.random.default_rng(spec["seed"])
    cfg = v32_config(spec["cfg"], **spec["index"])
    weights = random_weights(cfg, rng)
    stored = G.to_storage(weights, spec["storage"])
    T, R8 = spec["T"], spec["fp8_rows"]
    ids = [int(v) for v in rng.integers(0, cfg["vocab_size"], T)]
    folder = os.path.join(out_root, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    G.write_weights(folder, stored, 1)

    model = R.load_model(folder)
    L, K = model.cfg.num_hidden_layers, model.cfg.index_topk
    tid = torch.tensor(ids)
    logits = run(model, tid, False)
    idx, gap = index_of(model, L, T, K)
    logits8 = run(model, tid[:R8], True)
    idx8, gap8 = index_of(model, L, R8, K)

    # --- self-checks ------------------------------------------------------
    d0 = check_paths(name, model, tid, logits, False)
    d1 = check_paths(name, model, tid[:R8], logits8, True)
    model.cfg.index_topk = 1 << 30
    dense = run(model, tid, False)
    model.cfg.index_topk = K
    d_dense = (dense - logits).abs().max().item()
    assert d_dense > 0.1, "%s: the index choice does not matter (%g)" % (name, d_dense)
    d_fp8 = (logits8 - logits[:R8]).abs().max().item()
    assert d_fp8 > 1e-4, "%s: FP8 emulation changes nothing (%g)" % (name, d_fp8)
    recent = sum(int((idx[l, t] != np.arange(t + 1 - K, t + 1)).any())
                 for l in range(L) for t in range(K, T))
    assert recent > 0, "%s: the indexer just picks the most recent keys" % name
    std = logits.std().item()
    assert 0.3 < std < 10, "%s: logit spread %g" % (name, std)
    finite = gap[np.isfinite(gap)]
    print("  %-9s T=%3d K=%2d  std %.2f  dense-vs-sparse %.2f  fp8-vs-off %.3f  paths %.0e  "
          "min gap %.1e (%d of %d rows < 3e-2)"
          % (name, T, K, std, d_dense, d_fp8, max(d0, d1), finite.min(), int((finite < 3e-2).sum()),
             finite.size))

    # --- golden output ----------------------------------------------------
    logits.numpy().astype("<f4").tofile(os.path.join(folder, "logits.f32"))
    logits8.numpy().astype("<f4").tofile(os.path.join(folder, "logits_fp8.f32"))
    idx.astype("<i4").tofile(os.path.join(folder, "index.i32"))
    idx8.astype("<i4").tofile(os.path.join(folder, "index_fp8.i32"))
    gap.astype("<f4").tofile(os.path.join(folder, "gap.f32"))
    gap8.astype("<f4").tofile(os.path.join(folder, "gap_fp8.f32"))
    golden = {"ids": ids, "T": T, "vocab": cfg["vocab_size"], "layers": L, "index_topk": K,
              "fp8_rows": R8, "note": spec["note"]}
    with open(os.path.join(folder, "golden.json"), "w") as f:
        f.write(json.dumps(golden, indent=2) + "\n")
    return sum(os.path.getsize(os.path.join(folder, fn)) for fn in os.listdir(folder))


# --------------------------------------------------------------------------
# act_quant in float32, as the kernel computes it (item 39)
# --------------------------------------------------------------------------

def act_quant_f32(x32, ue8m0):
    """x32: float32 [n, 128] -> (codes uint8 [n, 128], scales float32 [n])."""
    amax = np.maximum(np.abs(x32).max(-1), np.float32(1e-4)).astype(np.float32)
    v = (amax * np.float32(1.0 / 448.0)).astype(np.float32)      # exact product, rounded once
    if ue8m0:
        bits = v.view(np.uint32)
        e = ((bits >> 23) & 255).astype(np.int64) - 127 + ((bits & 0x7FFFFF) != 0)
        s = np.ldexp(np.float32(1.0), e).astype(np.float32)
    else:
        s = v
    y = (x32.astype(np.float64) / s[:, None].astype(np.float64)).astype(np.float32)  # correctly rounded
    y = np.clip(y, np.float32(-448.0), np.float32(448.0))
    return R.fp8_e4m3_encode(y.astype(np.float64)), s


def act_quant_blocks(rng):
    blocks = []
    for k in range(-7, 4):                                        # random data at many magnitudes
        blocks.append(rng.standard_normal(128) * 10.0 ** k)
    blocks.append(np.zeros(128))                                  # amax floored at 1e-4
    blocks.append(rng.standard_normal(128) * 1e-6)                # below the floor
    b = rng.standard_normal(128)
    b[5] = 448.0 * 2.0 ** -3                                      # amax / 448 exactly a power of two
    blocks.append(np.clip(b, -56, 56))
    # Ties: with amax = 448 the ue8m0 scale is 1, so x / s = x; midpoints of
    # every binade (normal and subnormal) round to the even neighbour.
    ties = [448.0]
    for e in range(-9, 9):
        q = 2.0 ** (max(e, -6) - 3)                                # quantum of the binade
        for m in (0, 1, 2, 5, 7):
            base = max(2.0 ** e, 2.0 ** -6 if e >= -6 else 0) + m * q
            if base + q / 2 < 448:
                ties.append(base + q / 2)
    ties += [2.0 ** -10, 3 * 2.0 ** -10, 2.0 ** -11, 464.0 - 1e-3, 0.0]
    ties = (ties * 2)[:128]
    sign = np.where(np.arange(128) % 2, -1.0, 1.0)
    blocks.append(np.array(ties) * sign)
    return np.array(blocks, dtype=np.float32)


def write_act_quant(out_root):
    x = act_quant_blocks(np.random.default_rng(3200))
    parts = [struct.pack("<I", x.shape[0]), x.astype("<f4").tobytes()]
    for ue8m0 in (True, False):
        codes, s = act_quant_f32(x, ue8m0)
        parts += [codes.astype(np.uint8).tobytes(), s.astype("<f4").tobytes()]
    path = os.path.join(out_root, "act_quant.bin")
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return os.path.getsize(path)


def main(argv):
    check = "--check" in argv
    out_root = tempfile.mkdtemp(prefix="golden-v32-") if check else GOLDEN
    os.makedirs(out_root, exist_ok=True)
    total = write_act_quant(out_root)
    for name, spec in CASES.items():
        total += build_case(name, spec, out_root)
    print("total %.1f KB in %s" % (total / 1024, out_root))
    if not check:
        return 0
    bad = []
    for dp, _, files in os.walk(out_root):
        for fn in files:
            a = os.path.join(dp, fn)
            b = os.path.join(GOLDEN, os.path.relpath(a, out_root))
            if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
                bad.append(os.path.relpath(a, out_root))
    shutil.rmtree(out_root)
    if bad:
        print("DIFFERENT from tests/golden_v32:", *bad, sep="\n  ")
        return 1
    print("tests/golden_v32 is byte-identical to a fresh regeneration")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
