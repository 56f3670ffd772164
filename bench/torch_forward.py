#!/usr/bin/python3
"""PyTorch anchor for `make bench`: the same forward on the same weights.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_forward.py MODEL_DIR \
        [--threads N] [--prompt 512] [--gen 128] [--reps 3]

Loads MODEL_DIR with tests/ref/deepseek_ref.py (the repository's independent
reference; FP8/BF16 weights are dequantised exactly), builds the model in
float32 and times it the way `lemma bench` does:
  - the same token ids (lm_rng_u64(1, LM_RNG_BENCH, i) % vocab, as cmd_bench);
  - one untimed warm-up (a 16-token prefill and 2 decode steps);
  - prefill = one forward of --prompt ids into an empty cache;
  - decode = --gen single-token steps from an empty cache, no sampling;
  - medians over --reps.
KV cache: the expanded ("naive") MLA cache — per layer, preallocated
k_nope [S, H, dn], k_pe [S, dr] and v [S, H, dv] tensors written in place,
so a decode step costs O(S) attention and never re-expands old tokens (the
reference's own LatentCache re-expands every cached latent through kv_b
each step, which would make PyTorch look slower than it is). The rest of
the forward (projections, gate, MoE loop, norms) is the reference's code.

Prints one JSON line. OMP_WAIT_POLICY defaults to PASSIVE here: PyTorch's
default spin-waiting OpenMP pool is 3-7x slower on this shared 2-core box.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import deepseek_ref as R  # noqa: E402

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
LM_RNG_BENCH = 4


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rng_u64(seed, stream, counter):
    """src/core/rng.h lm_rng_u64."""
    k = mix64((seed + GOLDEN * (stream + 1)) & M64)
    return mix64((k + GOLDEN * (counter + 1)) & M64)


def bench_ids(n, vocab):
    return [rng_u64(1, LM_RNG_BENCH, i) % vocab for i in range(n)]


class ExpandedCache:
    """Preallocated expanded K/V per layer, filled in place."""

    def __init__(self, cfg, max_len):
        H, dn, dr, dv = (cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                         cfg.v_head_dim)
        L = cfg.num_hidden_layers
        self.k_nope = [torch.empty(max_len, H, dn) for _ in range(L)]
        self.k_pe = [torch.empty(max_len, dr) for _ in range(L)]
        self.v = [torch.empty(max_len, H, dv) for _ in range(L)]
        self.len = 0

    def reset(self):
        self.len = 0


def mla_forward_cached(self, x, positions, cache):
    """MLA with the expanded cache; x [1, T, D]. Same math as R.MLA.forward."""
    B, T, _ = x.shape
    cos, sin = R.rope_cos_sin(self.cfg, positions)
    q_nope, q_pe = self.query(x, cos, sin)                     # [1,T,H,dn], [1,T,H,dr]
    c, k_pe = self.latent(x, cos, sin)                         # [1,T,C], [1,T,dr]
    kv = self.kv_b_proj(c).view(T, self.H, self.dn + self.dv)  # only the new tokens
    l, p0 = self.layer_idx, cache.len
    S = p0 + T
    cache.k_nope[l][p0:S] = kv[..., :self.dn]
    cache.v[l][p0:S] = kv[..., self.dn:]
    cache.k_pe[l][p0:S] = k_pe[0]
    k_nope, v, kpe = cache.k_nope[l][:S], cache.v[l][:S], cache.k_pe[l][:S]
    scores = (torch.einsum("thd,shd->hts", q_nope[0], k_nope)
              + torch.einsum("thr,sr->hts", q_pe[0], kpe)) * self.scale
    if T > 1:
        key_pos = torch.arange(S)
        mask = key_pos[None, :] > positions[:, None]
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    out = torch.einsum("hts,shd->thd", p, v).reshape(1, T, self.H * self.dv)
    return self.o_proj(out)


def forward(model, ids, cache):
    """ids: LongTensor [T]; logits of the last token [V]; advances the cache."""
    T = ids.shape[0]
    positions = torch.arange(T) + cache.len
    h = model.model.embed_tokens(ids[None])
    for layer in model.model.layers:
        a = mla_forward_cached(layer.self_attn, layer.input_layernorm(h), positions, cache)
        h = h + a
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    cache.len += T
    h = model.model.norm(h[:, -1])
    return torch.nn.functional.linear(h, model.head_weight())[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--check", action="store_true",
                    help="also check the cached forward against the reference's full forward")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    R.DTYPE = torch.float32          # the reference builds its modules in R.DTYPE
    cfg_dict, tensors = R.load_checkpoint(a.model_dir)
    model = R.DeepseekForCausalLM(R.DeepseekConfig(cfg_dict)).load_hf_state_dict(tensors)
    del tensors
    model.eval()
    load_s = time.time() - t0
    cfg = model.cfg
    ctx = max(a.prompt, a.gen)
    ids = torch.tensor(bench_ids(ctx, cfg.vocab_size), dtype=torch.long)
    cache = ExpandedCache(cfg, ctx)
    pp, tg = [], []
    with torch.inference_mode():
        if a.check:
            n = min(12, ctx)
            full = model(ids[:n])                              # reference, no cache
            cache.reset()
            forward(model, ids[:n // 2], cache)
            last = None
            for i in range(n // 2, n):
                last = forward(model, ids[i:i + 1], cache)
            err = (last - full[n - 1]).abs().max().item()
            scale = full[n - 1].abs().max().item()
            if not err <= 1e-4 * max(1.0, scale):
                print("torch_forward: cached forward differs from the reference by %g" % err,
                      file=sys.stderr)
                sys.exit(1)
        cache.reset()
        forward(model, ids[:min(16, a.prompt)], cache)        # warm-up
        for i in range(2):
            forward(model, ids[i:i + 1], cache)
        for _ in range(a.reps):
            cache.reset()
            t = time.perf_counter()
            forward(model, ids[:a.prompt], cache)
            pp.append(a.prompt / (time.perf_counter() - t))
            cache.reset()
            t = time.perf_counter()
            for g in range(a.gen):
                forward(model, ids[g:g + 1], cache)
            tg.append(a.gen / (time.perf_counter() - t))
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "model": a.model_dir,
        "threads": a.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "compute_dtype": "float32", "kv_cache": "expanded K/V (naive MLA), preallocated",
        "prompt": a.prompt, "gen": a.gen, "reps": a.reps,
        "prefill_tok_s": round(statistics.median(pp), 1),
        "decode_tok_s": round(statistics.median(tg), 1),
        "load_s": round(load_s, 2),
    }))


if __name__ == "__main__":
    main()
