"""Independent PyTorch reference for the DeepSeek-V2 / V3 / V3.2 forward pass.

Everything here is written for clarity, not speed, and runs in float64.
The conventions followed are listed (with pointers to the DeepSeek / Hugging
Face code that decides each of them) in tests/ref/README.md.

Main entry points
-----------------
    cfg = DeepseekConfig(config_dict)              # HF config.json as a dict
    model = DeepseekForCausalLM(cfg)               # float64 nn.Module
    model.load_hf_state_dict(tensors)              # HF names -> float64 tensors
    logits = model(ids)                            # ids: [T] or [B, T]

    cfg_dict, tensors = load_checkpoint(dir)       # read an HF checkpoint folder
                                                   # (safetensors, sharded or not,
                                                   # F32/F16/BF16/F8_E4M3 + scale_inv)

The module tree mirrors the HF names exactly, so `model.state_dict()` keys are
the checkpoint tensor names (minus `lm_head.weight` when the head is tied).

DeepSeek-V3.2 (architectures DeepseekV32ForCausalLM): MLA gets the DSA
indexer (`Indexer`, docs/deepseek-conventions.md items 33-48), written from
DeepSeek-V3.2-Exp's inference/model.py and kernel.py after its 2025-11-17
"fix indexer rope" commit, in float64, with its two FP8 roundings (the
indexer's q/k through `act_quant`, the normalised latent before caching)
emulated exactly on the float64 values; `cfg.fp8 = False` turns both off.
Where it differs from that code: float64 everywhere instead of bf16
activations and FP8 GEMMs (item 46); masks by absolute position, so chunked
prefill works (item 44); the top-k tie rule is fixed (smaller position
first) where torch.topk leaves it unspecified. The FP8 rounding is not
differentiable (numpy): gradients of V3.2 models are not supported.

Everything is differentiable by autograd: no in-place operations on tensors
that may require grad, masks built from absolute positions.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

class DeepseekConfig:
    """The subset of an HF DeepseekV2/V3 config.json that the forward uses.

    Missing optional fields take the defaults of the HF configuration classes
    where those are harmless (e.g. moe_layer_freq 1, first_k_dense_replace 0);
    fields whose HF default would silently change the architecture
    (q_lora_rank) default to "absent".
    """

    def __init__(self, d):
        self.raw = dict(d)
        self.vocab_size = int(d["vocab_size"])
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.num_hidden_layers = int(d["num_hidden_layers"])
        self.num_attention_heads = int(d["num_attention_heads"])
        self.q_lora_rank = d.get("q_lora_rank")          # None/0 -> q_proj
        if self.q_lora_rank == 0:
            self.q_lora_rank = None
        self.kv_lora_rank = int(d["kv_lora_rank"])
        self.qk_nope_head_dim = int(d["qk_nope_head_dim"])
        self.qk_rope_head_dim = int(d["qk_rope_head_dim"])
        self.v_head_dim = int(d["v_head_dim"])
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        self.rope_scaling = d.get("rope_scaling")
        self.max_position_embeddings = int(d.get("max_position_embeddings", 4096))
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", False))

        self.n_routed_experts = d.get("n_routed_experts")
        self.n_shared_experts = d.get("n_shared_experts") or 0
        self.moe_intermediate_size = d.get("moe_intermediate_size")
        self.num_experts_per_tok = d.get("num_experts_per_tok")
        self.first_k_dense_replace = int(d.get("first_k_dense_replace", 0))
        self.moe_layer_freq = int(d.get("moe_layer_freq", 1))
        self.n_group = d.get("n_group") or 1
        self.topk_group = d.get("topk_group") or self.n_group
        self.topk_method = d.get("topk_method", "greedy")
        if self.topk_method == "gready":                 # typo in HF V2 config class
            self.topk_method = "greedy"
        self.scoring_func = d.get("scoring_func", "softmax")
        self.norm_topk_prob = bool(d.get("norm_topk_prob", False))
        self.routed_scaling_factor = float(d.get("routed_scaling_factor", 1.0))

        arch = (d.get("architectures") or [None])[0]
        self.v32 = arch == "DeepseekV32ForCausalLM" or (arch is None and d.get("model_type") == "deepseek_v32")
        if self.v32:
            self.index_n_heads = int(d["index_n_heads"])
            self.index_head_dim = int(d["index_head_dim"])
            self.index_topk = int(d["index_topk"])
            qc = d.get("quantization_config") or {}
            self.scale_fmt = qc["scale_fmt"] if "scale_fmt" in qc else "ue8m0"   # [33]
            self.fp8 = True     # emulate the FP8 roundings [39, 45]; False turns both off

        if self.topk_method not in ("greedy", "group_limited_greedy", "noaux_tc"):
            raise ValueError("unsupported topk_method %r" % self.topk_method)
        if self.scoring_func not in ("softmax", "sigmoid"):
            raise ValueError("unsupported scoring_func %r" % self.scoring_func)
        if self.n_routed_experts and self.n_routed_experts % self.n_group:
            raise ValueError("n_routed_experts must be a multiple of n_group")

    def is_moe_layer(self, layer):
        """Convention 3: MoE iff experts exist, l >= first_k_dense_replace and
        l % moe_layer_freq == 0."""
        return (bool(self.n_routed_experts)
                and layer >= self.first_k_dense_replace
                and layer % self.moe_layer_freq == 0)

    # ---- YaRN ----------------------------------------------------------
    def yarn(self):
        """Return the rope_scaling dict if it is YaRN, None if there is none."""
        rs = self.rope_scaling
        if not rs:
            return None
        kind = rs.get("type", rs.get("rope_type"))
        if kind != "yarn":
            raise ValueError("unsupported rope_scaling type %r" % kind)
        return rs


def yarn_get_mscale(scale, mscale=1.0):
    """0.1 * mscale * ln(scale) + 1 for scale > 1, else 1."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq(cfg):
    """Per-pair inverse frequencies (float64, dr/2 values), YaRN applied."""
    dr = cfg.qk_rope_head_dim
    base = cfg.rope_theta
    i = torch.arange(0, dr // 2, dtype=DTYPE)
    inv = base ** (-2.0 * i / dr)                       # theta^(-2i/dr)
    rs = cfg.yarn()
    if rs is None:
        return inv
    factor = float(rs["factor"])
    orig = float(rs["original_max_position_embeddings"])
    beta_fast = float(rs.get("beta_fast", 32))
    beta_slow = float(rs.get("beta_slow", 1))

    def corr_dim(n_rot):
        return dr * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), dr - 1)
    if low == high:
        high += 0.001
    ramp = ((i - low) / (high - low)).clamp(0.0, 1.0)
    # ramp 0 -> keep original frequency (extrapolation), 1 -> divide by factor
    return inv * (1.0 - ramp) + (inv / factor) * ramp


def rope_attention_factor(cfg):
    """HF multiplies cos and sin by mscale(factor, mscale)/mscale(factor, mscale_all_dim)."""
    rs = cfg.yarn()
    if rs is None:
        return 1.0
    factor = float(rs["factor"])
    return (yarn_get_mscale(factor, float(rs.get("mscale", 1.0)))
            / yarn_get_mscale(factor, float(rs.get("mscale_all_dim", 0.0))))


def softmax_scale(cfg):
    """(dn+dr)^-0.5, times m^2 with m = mscale(factor, mscale_all_dim) under YaRN."""
    scale = (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5
    rs = cfg.yarn()
    if rs is not None:
        mad = float(rs.get("mscale_all_dim", 0.0))
        factor = float(rs["factor"])
        if mad and factor > 1:
            m = yarn_get_mscale(factor, mad)
            scale = scale * m * m
    return scale


def rope_cos_sin(cfg, positions, attention_factor=True):
    """cos, sin of shape [T, dr/2] for absolute positions (angles in float64)."""
    inv = rope_inv_freq(cfg)
    ang = positions.to(DTYPE)[:, None] * inv[None, :]
    a = rope_attention_factor(cfg) if attention_factor else 1.0
    return torch.cos(ang) * a, torch.sin(ang) * a


def apply_rope(x, cos, sin):
    """Rotate interleaved pairs (x[2i], x[2i+1]) of the last dim by the angles.

    x: [..., dr]; cos/sin broadcastable to [..., dr/2].
    """
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).flatten(-2)


# --------------------------------------------------------------------------
# Modules (names match the HF checkpoint)
# --------------------------------------------------------------------------

def _linear(n_in, n_out):
    return nn.Linear(n_in, n_out, bias=False, dtype=DTYPE)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=DTYPE))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim, inter):
        super().__init__()
        self.gate_proj = _linear(dim, inter)
        self.up_proj = _linear(dim, inter)
        self.down_proj = _linear(inter, dim)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LatentCache:
    """Per-layer MLA latent cache: normalised c [B, S, C] and roped k_pe [B, S, dr]
    (V3.2: also the indexer keys k [B, S, di] and their scales [B, S])."""

    def __init__(self, n_layers):
        self.c = [None] * n_layers
        self.k_pe = [None] * n_layers
        self.ik = [None] * n_layers
        self.iks = [None] * n_layers

    def append_index(self, layer, k, ks):
        if self.ik[layer] is None:
            self.ik[layer], self.iks[layer] = k, ks
        else:
            self.ik[layer] = torch.cat((self.ik[layer], k), dim=1)
            self.iks[layer] = torch.cat((self.iks[layer], ks), dim=1)
        return self.ik[layer], self.iks[layer]

    def length(self):
        return 0 if self.c[0] is None else self.c[0].shape[1]

    def append(self, layer, c, k_pe):
        if self.c[layer] is None:
            self.c[layer], self.k_pe[layer] = c, k_pe
        else:
            self.c[layer] = torch.cat((self.c[layer], c), dim=1)
            self.k_pe[layer] = torch.cat((self.k_pe[layer], k_pe), dim=1)
        return self.c[layer], self.k_pe[layer]


class MLA(nn.Module):
    """Multi-head latent attention, expanded ("naive") form."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        D, H = cfg.hidden_size, cfg.num_attention_heads
        self.H, self.dn, self.dr, self.dv = H, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        self.C = cfg.kv_lora_rank
        qk = self.dn + self.dr
        if cfg.q_lora_rank is None:
            self.q_proj = _linear(D, H * qk)
        else:
            self.q_a_proj = _linear(D, cfg.q_lora_rank)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
            self.q_b_proj = _linear(cfg.q_lora_rank, H * qk)
        self.kv_a_proj_with_mqa = _linear(D, self.C + self.dr)
        self.kv_a_layernorm = RMSNorm(self.C, cfg.rms_norm_eps)
        self.kv_b_proj = _linear(self.C, H * (self.dn + self.dv))
        self.o_proj = _linear(H * self.dv, D)
        self.scale = softmax_scale(cfg)
        if cfg.v32:
            self.indexer = Indexer(cfg)
        self.last_index = None      # V3.2: (chosen [B,T] lists of positions, gaps [B,T]) of the last call

    # pieces shared with the absorbed decoder in make_golden.py
    def query(self, x, cos, sin):
        """x [B,T,D] -> q_nope [B,T,H,dn], roped q_pe [B,T,H,dr]."""
        if self.cfg.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        B, T = x.shape[:2]
        q = q.view(B, T, self.H, self.dn + self.dr)
        q_nope, q_pe = q[..., :self.dn], q[..., self.dn:]
        return q_nope, apply_rope(q_pe, cos[:, None, :], sin[:, None, :])

    def latent(self, x, cos, sin):
        """x [B,T,D] -> normalised c [B,T,C], roped k_pe [B,T,dr] (what is cached).
        V3.2 with FP8: c goes through act_quant per 128 channels and back [45]."""
        kv = self.kv_a_proj_with_mqa(x)
        c, k_pe = kv[..., :self.C], kv[..., self.C:]
        c = self.kv_a_layernorm(c)
        if self.cfg.v32 and self.cfg.fp8:
            c = fp8_round_trip(c, self.cfg.scale_fmt)
        return c, apply_rope(k_pe, cos, sin)

    def forward(self, x, positions, cache=None):
        B, T, _ = x.shape
        cos, sin = rope_cos_sin(self.cfg, positions)
        q_nope, q_pe = self.query(x, cos, sin)
        c, k_pe = self.latent(x, cos, sin)
        if cache is not None:
            c, k_pe = cache.append(self.layer_idx, c, k_pe)
            key_pos = torch.arange(c.shape[1])
        else:
            key_pos = positions
        S = c.shape[1]
        kv = self.kv_b_proj(c).view(B, S, self.H, self.dn + self.dv)
        k_nope, v = kv[..., :self.dn], kv[..., self.dn:]
        scores = (torch.einsum("bthd,bshd->bhts", q_nope, k_nope)
                  + torch.einsum("bthr,bsr->bhts", q_pe, k_pe)) * self.scale
        mask = key_pos[None, :] > positions[:, None]      # [T, S], True = hidden
        if self.cfg.v32:
            mask = mask[None] | self.index_mask(x, positions, cache)   # [B, T, S], one set for all heads [42]
            mask = mask[:, None]
        scores = scores.masked_fill(mask, float("-inf"))
        p = torch.softmax(scores, dim=-1)
        out = torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, self.H * self.dv)
        return self.o_proj(out)


    def index_mask(self, x, positions, cache):
        """[B, T, S] True where the indexer did not choose the key [41]."""
        cfg = self.cfg
        cos, sin = rope_cos_sin(cfg, positions, attention_factor=False)   # [37]: no factor
        qr = self.q_a_layernorm(self.q_a_proj(x))                           # [35]
        q, w, k, ks = self.indexer(x, qr, cos, sin)
        if cache is not None:
            k, ks = cache.append_index(self.layer_idx, k, ks)
        I = index_scores(q, w, k, ks).detach().numpy()                      # [B, T, S]
        B, T, S = I.shape
        hidden = np.ones((B, T, S), dtype=bool)
        gaps = np.full((B, T), np.inf)
        chosen = [[None] * T for _ in range(B)]
        K = cfg.index_topk
        for b in range(B):
            for t in range(T):
                n = int(positions[t]) + 1                                  # causal keys 0..pos
                if n <= K:
                    sel = np.arange(n)
                else:
                    row = I[b, t, :n]
                    order = np.lexsort((np.arange(n), -row))               # larger first, then smaller position
                    sel = np.sort(order[:K])
                    top = row[order]
                    diff = top[K - 1] - top[K]
                    gaps[b, t] = diff / abs(top[0]) if top[0] != 0 else (0.0 if diff == 0 else np.inf)
                hidden[b, t, sel] = False
                chosen[b][t] = sel
        self.last_index = (chosen, gaps)
        return torch.from_numpy(hidden)


# --------------------------------------------------------------------------
# DeepSeek-V3.2 indexer (items 33-48 of docs/deepseek-conventions.md)
# --------------------------------------------------------------------------

class LayerNorm(nn.Module):
    """LayerNorm with weight and bias, eps fixed at 1e-6 [36] (not RMSNorm)."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=DTYPE))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=DTYPE))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-6)


def apply_rope_neox(x, cos, sin):
    """Rotate pairs (x[i], x[i + r/2]) of the last dim [37] (not interleaved)."""
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


def hadamard_matrix(n):
    """Sylvester order H[i][j] = (-1)^popcount(i & j), n a power of two [38]."""
    h = torch.ones(1, 1, dtype=DTYPE)
    while h.shape[0] < n:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    assert h.shape[0] == n, "index_head_dim must be a power of two"
    return h


def rotate_activation(x):
    """y = H x * n^-0.5 over the last dim [38]."""
    n = x.shape[-1]
    return (x @ hadamard_matrix(n).T) * n ** -0.5


def fp8_act_scale(amax, scale_fmt):
    """act_quant's scale of blocks whose max |x| is amax (float64 array) [39]:
    max(amax, 1e-4) * fl32(1/448), rounded up to a power of two with ue8m0."""
    v = np.maximum(amax, 1e-4) * float(np.float32(1.0 / 448.0))
    if scale_fmt != "ue8m0":
        return v
    m, e = np.frexp(v)                                   # v = m * 2^e, m in [0.5, 1)
    return np.where(m == 0.5, v, np.ldexp(1.0, e))


def act_quant(x, scale_fmt, block=128):
    """FP8 E4M3 of x per block of 128 along the last dim [39].
    Returns (e4m3 values as float64, unscaled; scales [..., n/block])."""
    a = x.detach().numpy()
    n = a.shape[-1]
    assert n % block == 0, "FP8 emulation needs a multiple of 128"
    ab = a.reshape(a.shape[:-1] + (n // block, block))
    s = fp8_act_scale(np.abs(ab).max(-1), scale_fmt)
    y = np.clip(ab / s[..., None], -FP8_E4M3_MAX, FP8_E4M3_MAX)
    q = fp8_e4m3_decode(fp8_e4m3_encode(y)).reshape(a.shape)
    return torch.from_numpy(q), torch.from_numpy(s)


def fp8_round_trip(x, scale_fmt, block=128):
    """x -> e4m3(x / s) * s per block of 128 channels: the V3.2 latent [45]."""
    q, s = act_quant(x, scale_fmt, block)
    n = x.shape[-1]
    return (q.view(q.shape[:-1] + (n // block, block)) * s[..., None]).reshape(x.shape)


class Indexer(nn.Module):
    """The lightning indexer [35-40]: per token, queries of index_n_heads heads,
    one key shared by the heads, and per-head weights."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.Hi, self.di, self.dr = cfg.index_n_heads, cfg.index_head_dim, cfg.qk_rope_head_dim
        self.wq_b = _linear(cfg.q_lora_rank, self.Hi * self.di)
        self.wk = _linear(cfg.hidden_size, self.di)
        self.k_norm = LayerNorm(self.di)
        self.weights_proj = _linear(cfg.hidden_size, self.Hi)

    def forward(self, x, qr, cos, sin):
        """x [B,T,D], qr [B,T,Q], cos/sin [T, dr/2] ->
        q [B,T,Hi,di], w [B,T,Hi], k [B,T,di], k_scale [B,T]."""
        B, T, _ = x.shape
        dr = self.dr
        q = self.wq_b(qr).view(B, T, self.Hi, self.di)
        q = torch.cat((apply_rope_neox(q[..., :dr], cos[:, None, :], sin[:, None, :]), q[..., dr:]), -1)
        k = self.k_norm(self.wk(x))
        k = torch.cat((apply_rope_neox(k[..., :dr], cos, sin), k[..., dr:]), -1)
        q, k = rotate_activation(q), rotate_activation(k)
        if self.cfg.fp8:
            q, qs = act_quant(q, self.cfg.scale_fmt)       # qs [B,T,Hi,1]: di = 128 is one block
            k, ks = act_quant(k, self.cfg.scale_fmt)
            qs, ks = qs[..., 0], ks[..., 0]
        else:
            qs, ks = torch.ones(B, T, self.Hi, dtype=DTYPE), torch.ones(B, T, dtype=DTYPE)
        w = self.weights_proj(x) * self.Hi ** -0.5 * qs * self.di ** -0.5   # [40]
        return q, w, k, ks


def index_scores(q, w, k, ks):
    """I[b,t,s] = ks[s] * sum_h w[t,h] * ReLU(q[t,h] . k[s]) [40]."""
    dots = torch.einsum("bthd,bsd->bths", q, k).clamp(min=0)
    return torch.einsum("bths,bth->bts", dots, w) * ks[:, None, :]


class Gate(nn.Module):
    """DeepSeekMoE router. forward(x [N,D]) -> (indices [N,k], weights [N,k])."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        E = cfg.n_routed_experts
        self.weight = nn.Parameter(torch.zeros(E, cfg.hidden_size, dtype=DTYPE))
        if cfg.topk_method == "noaux_tc":
            # Only used to choose experts; never trained by gradient.
            self.register_buffer("e_score_correction_bias", torch.zeros(E, dtype=DTYPE))
        else:
            self.e_score_correction_bias = None

    def scores(self, x):
        logits = F.linear(x, self.weight)
        if self.cfg.scoring_func == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)

    def select(self, s, use_bias=True, use_groups=True):
        """Expert indices from scores s [N,E] (no gradient flows through choice)."""
        cfg = self.cfg
        sel = s.detach()
        if self.e_score_correction_bias is not None and use_bias:
            sel = sel + self.e_score_correction_bias
        N, E = sel.shape
        G = cfg.n_group
        if use_groups and cfg.topk_method in ("group_limited_greedy", "noaux_tc") and G > 1:
            g = sel.view(N, G, E // G)
            if cfg.topk_method == "noaux_tc":
                gscore = g.topk(2, dim=-1).values.sum(-1)      # sum of top-2 per group
            else:
                gscore = g.max(dim=-1).values                  # max per group
            keep = gscore.topk(cfg.topk_group, dim=-1).indices
            gmask = torch.zeros(N, G, dtype=torch.bool).scatter(1, keep, True)
            emask = gmask[:, :, None].expand(N, G, E // G).reshape(N, E)
            sel = sel.masked_fill(~emask, float("-inf"))
        return sel.topk(cfg.num_experts_per_tok, dim=-1).indices

    def forward(self, x, use_bias=True, use_groups=True):
        cfg = self.cfg
        s = self.scores(x)
        idx = self.select(s, use_bias, use_groups)
        w = s.gather(1, idx)                                   # unbiased scores
        if cfg.num_experts_per_tok > 1 and cfg.norm_topk_prob:
            w = w / w.sum(dim=-1, keepdim=True)
        w = w * cfg.routed_scaling_factor                       # after normalising
        return idx, w


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList(
            [MLP(cfg.hidden_size, cfg.moe_intermediate_size) for _ in range(cfg.n_routed_experts)])
        if cfg.n_shared_experts:
            self.shared_experts = MLP(cfg.hidden_size,
                                      cfg.moe_intermediate_size * cfg.n_shared_experts)
        else:
            self.shared_experts = None

    def forward(self, x):
        shape = x.shape
        xf = x.reshape(-1, shape[-1])
        idx, w = self.gate(xf)
        N, E = xf.shape[0], self.cfg.n_routed_experts
        dense_w = torch.zeros(N, E, dtype=xf.dtype).scatter(1, idx, w)   # [N,E], 0 if unused
        y = torch.zeros_like(xf)
        for e, expert in enumerate(self.experts):
            rows = (idx == e).any(dim=1).nonzero().flatten()
            if rows.numel() == 0:
                continue
            contrib = expert(xf[rows]) * dense_w[rows, e:e + 1]
            y = y.index_add(0, rows, contrib)                             # out of place
        if self.shared_experts is not None:
            y = y + self.shared_experts(xf)                               # not scaled
        return y.view(shape)


class DecoderLayer(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if cfg.is_moe_layer(layer_idx):
            self.mlp = MoE(cfg)
        else:
            self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h, positions, cache=None):
        h = h + self.self_attn(self.input_layernorm(h), positions, cache)
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h


class DeepseekModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size, dtype=DTYPE)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, ids, positions, cache=None):
        h = self.embed_tokens(ids)                  # not scaled
        for layer in self.layers:
            h = layer(h, positions, cache)
        return self.norm(h)


class DeepseekForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if isinstance(cfg, dict):
            cfg = DeepseekConfig(cfg)
        self.cfg = cfg
        self.model = DeepseekModel(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else _linear(cfg.hidden_size, cfg.vocab_size)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def forward(self, ids, start_pos=0, cache=None):
        """ids [T] or [B,T] -> logits [T,V] or [B,T,V].

        start_pos: absolute position of ids[..., 0]. With a LatentCache the
        keys are everything cached so far plus these tokens (chunked prefill).
        """
        squeeze = ids.dim() == 1
        if squeeze:
            ids = ids[None]
        if cache is not None:
            assert start_pos == cache.length(), "start_pos must equal cached length"
        positions = torch.arange(ids.shape[1]) + start_pos
        h = self.model(ids, positions, cache)
        logits = F.linear(h, self.head_weight())
        return logits[0] if squeeze else logits

    def load_hf_state_dict(self, tensors):
        """Load a {HF name: tensor} dict (extra MTP layers / indexer tensors skipped)."""
        own = self.state_dict()
        missing = [k for k in own if k not in tensors]
        if missing:
            raise KeyError("checkpoint lacks tensors: %s" % missing[:10])
        with torch.no_grad():
            for k, v in own.items():
                t = tensors[k]
                if tuple(t.shape) != tuple(v.shape):
                    raise ValueError("%s: shape %s, expected %s" % (k, tuple(t.shape), tuple(v.shape)))
                v.copy_(t.to(DTYPE))
        unused = [k for k in tensors if k not in own and not _ignorable(k, self.cfg)]
        if unused:
            raise KeyError("unexpected tensors: %s" % unused[:10])
        return self


def _ignorable(name, cfg):
    """Tensors a plain forward does not use: MTP layers, V3.2 indexer, tied head copy."""
    if name.startswith("model.layers."):
        if int(name.split(".")[2]) >= cfg.num_hidden_layers:
            return True
        if ".self_attn.indexer." in name and not cfg.v32:
            return True
    if name == "lm_head.weight" and cfg.tie_word_embeddings:
        return True
    return False


# --------------------------------------------------------------------------
# Number formats: BF16, FP8 E4M3 (fn), block dequantisation
# --------------------------------------------------------------------------

def _fp8_e4m3_table():
    """float64 value of each of the 256 E4M3fn codes (0x7f/0xff are NaN)."""
    vals = np.empty(256, dtype=np.float64)
    for code in range(256):
        s = -1.0 if code & 0x80 else 1.0
        e = (code >> 3) & 0xF
        m = code & 0x7
        if e == 0xF and m == 0x7:
            vals[code] = np.copysign(np.nan, s)
        elif e == 0:
            vals[code] = s * m * 2.0 ** -9                 # subnormal: m/8 * 2^(1-7)
        else:
            vals[code] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return vals


FP8_E4M3_TABLE = _fp8_e4m3_table()
FP8_E4M3_MAX = 448.0


def fp8_e4m3_decode(codes):
    """uint8 array -> float64 array."""
    return FP8_E4M3_TABLE[np.asarray(codes, dtype=np.uint8)]


def fp8_e4m3_encode(x):
    """float array -> uint8 E4M3fn codes; round to nearest even, saturate to +-448."""
    x = np.asarray(x, dtype=np.float64)
    sign = np.signbit(x).astype(np.uint8) << 7
    nan = np.isnan(x)
    a = np.minimum(np.abs(np.where(nan, 0.0, x)), FP8_E4M3_MAX)
    _, k = np.frexp(a)                                     # a = f * 2^k, f in [0.5, 1)
    e = np.maximum(k - 1, -6)                              # binade, subnormals share 2^-6
    quantum = np.ldexp(1.0, e - 3)                         # 3 mantissa bits
    q = np.round(a / quantum) * quantum                    # numpy rounds half to even
    q = np.minimum(q, FP8_E4M3_MAX)
    pos = FP8_E4M3_TABLE[:0x7F]                            # codes 0..126, increasing
    code = np.searchsorted(pos, q).astype(np.uint8)
    assert np.all(pos[code] == q), "fp8 encoder produced an unrepresentable value"
    out = code | sign
    out = np.where(nan, np.uint8(0x7F) | sign, out)
    return out.astype(np.uint8)


def bf16_encode(x):
    """float array -> uint16 BF16 bits (float32 first, then round to nearest even)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def bf16_decode(bits):
    """uint16 BF16 bits -> float64."""
    b = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16
    return b.view(np.float32).astype(np.float64)


def dequant_fp8_blocks(codes, scale_inv, block=(128, 128)):
    """FP8 weight [out,in] with scale_inv [ceil(out/b0), ceil(in/b1)] -> float64.

    w[i,j] = fp8(codes[i,j]) * scale_inv[i // b0, j // b1], exact in float64.
    """
    w = fp8_e4m3_decode(codes)
    s = np.asarray(scale_inv, dtype=np.float64)
    out, inn = w.shape
    assert s.shape == (-(-out // block[0]), -(-inn // block[1])), (s.shape, w.shape)
    s_full = np.repeat(np.repeat(s, block[0], axis=0), block[1], axis=1)[:out, :inn]
    return w * s_full


# --------------------------------------------------------------------------
# safetensors (hand-written reader/writer)
# --------------------------------------------------------------------------

ST_DTYPES = {  # name -> (numpy storage dtype, bytes)
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2),
    "BF16": (np.uint16, 2), "F8_E4M3": (np.uint8, 1),
    "I64": (np.int64, 8), "I32": (np.int32, 4), "U8": (np.uint8, 1),
}


def write_safetensors(path, tensors):
    """tensors: {name: (st_dtype, numpy array in storage dtype)}.

    Header keys sorted by name; data laid out by decreasing element size, then
    name, so every tensor is aligned to its element size (what the safetensors
    library does). Header padded with spaces to a multiple of 8.
    """
    order = sorted(tensors, key=lambda n: (-ST_DTYPES[tensors[n][0]][1], n))
    header, off, blobs = {}, 0, []
    for name in order:
        dt, arr = tensors[name]
        npdt, _ = ST_DTYPES[dt]
        b = np.ascontiguousarray(arr, dtype=np.dtype(npdt).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    meta = {"__metadata__": {"format": "pt"}}
    meta.update({k: header[k] for k in sorted(header)})
    hj = json.dumps(meta, separators=(",", ":")).encode()
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path):
    """-> {name: (st_dtype, numpy array in storage dtype)} (no alignment assumed)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode())
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        npdt, size = ST_DTYPES[info["dtype"]]
        b0, b1 = info["data_offsets"]
        shape = tuple(info["shape"])
        arr = np.frombuffer(data[base + b0:base + b1], dtype=np.dtype(npdt).newbyteorder("<"))
        out[name] = (info["dtype"], arr.reshape(shape).copy())
    return out


def to_float64(st_dtype, arr):
    if st_dtype == "BF16":
        return bf16_decode(arr)
    if st_dtype == "F8_E4M3":
        return fp8_e4m3_decode(arr)
    return arr.astype(np.float64)


def load_checkpoint(folder):
    """Read config.json and all safetensors of an HF folder.

    Returns (config dict, {name: float64 torch tensor}) with FP8 weights
    dequantised through their `<name>_scale_inv` blocks (exact in float64) and
    the scale tensors dropped.
    """
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    raw = {}
    for fn in files:
        for k, v in read_safetensors(os.path.join(folder, fn)).items():
            if k in raw:
                raise ValueError("tensor %s appears twice" % k)
            raw[k] = v
    block = tuple((cfg.get("quantization_config") or {}).get("weight_block_size", [128, 128]))
    out = {}
    for name, (dt, arr) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dt == "F8_E4M3":
            sdt, s = raw[name + "_scale_inv"]
            w = dequant_fp8_blocks(arr, to_float64(sdt, s), block)
        else:
            w = to_float64(dt, arr)
        out[name] = torch.from_numpy(np.ascontiguousarray(w))
    return cfg, out


def load_model(folder):
    cfg, tensors = load_checkpoint(folder)
    return DeepseekForCausalLM(DeepseekConfig(cfg)).load_hf_state_dict(tensors)
