#!/usr/bin/python3
"""Write the training goldens in tests/golden_grad/<case>/.

    /usr/bin/python3 tests/ref/make_grad_golden.py            # (re)write tests/golden_grad
    /usr/bin/python3 tests/ref/make_grad_golden.py --check    # regenerate in a temp dir,
                                                              # compare byte for byte
    /usr/bin/python3 tests/ref/make_grad_golden.py --out DIR [case ...]

Each case takes a golden checkpoint of tests/golden (named in case.json, not
copied), a batch of B token sequences of length T with next-token targets
(some set to -1: left out of the loss), and computes with deepseek_ref.py in
float64 and autograd:

  * the loss: mean cross-entropy over the positions with a target, plus, when
    the case has balance_alpha > 0, the sequence-wise balance term of
    DeepSeek-V3 (eq. 17-20, see src/train/step.h): for every MoE layer and
    sequence, alpha * sum_i f_i P_i with f_i = E/(K T) * (tokens choosing i)
    (a constant) and P_i = mean over the sequence of s_i / sum_j s_j,
    summed over layers, averaged over sequences;
  * the gradient of that loss for every parameter (grads.safetensors, F32;
    a tied head's gradient is in model.embed_tokens.weight);
  * ten optimiser steps from the checkpoint, each: loss and gradient, global
    gradient norm, clip to `clip` (coef = clip / (norm + 1e-6) when below 1,
    as torch.nn.utils.clip_grad_norm_), learning rate from the schedule
    (linear warmup for `warmup` steps, lr_max * (s+1)/warmup, then cosine to
    lr_min at step total-1), AdamW as torch.optim.AdamW (decoupled weight
    decay only on 2-D tensors: never norms, never the correction bias), then
    the MoE balance update: per MoE layer with e_score_correction_bias,
    bias_e += gamma * sign(mean load - load_e) with load_e the tokens routed
    to e in the step. case.json records every step's lr, loss, gradient norm
    and expert loads.

Routing is piecewise constant: a float32 implementation can only match if
no token is near a tie. The script computes, at every step, the smallest gap
between the last chosen and the first unchosen selection score (and between
the last kept and first dropped group score), and draws new ids until it is
at least MARGIN; the gap found is in case.json as min_route_margin.

All randomness comes from numpy Generators with fixed seeds and torch runs
single-threaded, so the files are byte-identical on every run.
"""

import json
import math
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
OUT = os.path.join(REPO, "tests", "golden_grad")
MARGIN = 1e-4

TRAIN = {
    "steps": 10,
    "lr_max": 3e-3,
    "lr_min": 3e-4,
    "warmup": 2,
    "schedule": "cosine",
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.1,
    "bias_gamma": 0.01,
}

CASES = {
    # V3: sigmoid, noaux_tc with bias, 4 groups (2 kept), q_lora, YaRN, 1 shared expert, untied
    "v3": dict(checkpoint="tests/golden/v3_f32", seed=11, B=4, T=11, clip=1.0, balance_alpha=0.0),
    # the same configuration with a tied head
    "v3_tied": dict(checkpoint="tests/golden/v3_tied_f32", seed=12, B=4, T=11, clip=1.0, balance_alpha=0.0),
    # V2: softmax, group_limited_greedy, no q_lora, 2 shared experts, untied
    "v2": dict(checkpoint="tests/golden/v2_f32", seed=13, B=4, T=11, clip=1.0, balance_alpha=0.0),
    # V3 gating without q_lora and without shared experts, with the balance loss
    "v3_bal": dict(checkpoint="tests/golden/v3_noqlora_f32", seed=14, B=4, T=11, clip=0.5, balance_alpha=0.05),
}


# --------------------------------------------------------------------------
# Routing capture, margins, balance loss
# --------------------------------------------------------------------------

class Capture:
    """Forward hooks on every MoE block recording (layer, moe, xf, scores, idx)."""

    def __init__(self, model):
        self.rec = []
        self.hooks = []
        for i, layer in enumerate(model.model.layers):
            if isinstance(layer.mlp, R.MoE):
                self.hooks.append(layer.mlp.register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def hook(m, inp, out):
            xf = inp[0].reshape(-1, inp[0].shape[-1])
            s = m.gate.scores(xf)                 # differentiable (a second path to gate.weight)
            idx = m.gate.select(s)
            self.rec.append((i, m, s, idx))
        return hook

    def clear(self):
        self.rec = []


def route_margin(gate, s):
    cfg = gate.cfg
    sel = s.detach().clone()
    if gate.e_score_correction_bias is not None:
        sel = sel + gate.e_score_correction_bias
    N, E = sel.shape
    G = cfg.n_group
    margin = math.inf
    if cfg.topk_method in ("group_limited_greedy", "noaux_tc") and G > 1:
        g = sel.view(N, G, E // G)
        if cfg.topk_method == "noaux_tc":
            gscore = g.topk(2, dim=-1).values.sum(-1)
        else:
            gscore = g.max(dim=-1).values
        srt = gscore.sort(dim=-1, descending=True).values
        if cfg.topk_group < G:
            margin = min(margin, float((srt[:, cfg.topk_group - 1] - srt[:, cfg.topk_group]).min()))
        keep = gscore.topk(cfg.topk_group, dim=-1).indices
        gmask = torch.zeros(N, G, dtype=torch.bool).scatter(1, keep, True)
        sel = sel.masked_fill(~gmask[:, :, None].expand(N, G, E // G).reshape(N, E), float("-inf"))
    srt = sel.sort(dim=-1, descending=True).values
    k = cfg.num_experts_per_tok
    if k < E:
        gap = srt[:, k - 1] - srt[:, k]
        gap = gap[torch.isfinite(gap)]
        if gap.numel():
            margin = min(margin, float(gap.min()))
    return margin


def balance_loss(cap, B, T, alpha):
    total = torch.zeros((), dtype=R.DTYPE)
    for _, m, s, idx in cap.rec:
        E, K = m.cfg.n_routed_experts, m.cfg.num_experts_per_tok
        sb = s.view(B, T, E)
        sp = sb / sb.sum(-1, keepdim=True)
        P = sp.mean(1)                                                    # [B, E]
        cnt = torch.zeros(B * T, E, dtype=R.DTYPE).scatter(1, idx, 1.0).view(B, T, E).sum(1)
        f = cnt * E / (K * T)                                             # constant
        total = total + alpha * (f * P).sum(-1).mean()
    return total


def loads(cap):
    out = []
    for _, m, _, idx in cap.rec:
        E = m.cfg.n_routed_experts
        out.append(np.bincount(idx.flatten().numpy(), minlength=E).tolist())
    return out


# --------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------

def make_batch(rng, V, B, T):
    seq = rng.integers(2, V, size=(B, T + 1))
    ids = seq[:, :T].copy()
    tgt = seq[:, 1:].copy()
    tgt[rng.random((B, T)) < 0.2] = -1       # scattered masked positions
    tgt[1, : T // 2] = -1                    # a masked prompt
    tgt[0, 0] = seq[0, 1]                    # at least one target in row 0
    return ids, tgt


def lr_at(step):
    t = TRAIN
    if step < t["warmup"]:
        return t["lr_max"] * (step + 1) / t["warmup"]
    p = (step - t["warmup"]) / max(1, t["steps"] - 1 - t["warmup"])
    p = min(max(p, 0.0), 1.0)
    return t["lr_min"] + (t["lr_max"] - t["lr_min"]) * 0.5 * (1 + math.cos(math.pi * p))


def forward_loss(model, cap, ids, tgt, alpha):
    B, T = ids.shape
    cap.clear()
    logits = model(torch.from_numpy(ids))
    t = torch.from_numpy(tgt).reshape(-1)
    mask = t >= 0
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1])[mask], t[mask], reduction="mean")
    bal = balance_loss(cap, B, T, alpha) if alpha > 0 else torch.zeros((), dtype=R.DTYPE)
    margin = min([route_margin(m.gate, s) for _, m, s, _ in cap.rec] + [math.inf])
    return ce, bal, margin


def run_case(name, spec):
    folder = os.path.join(REPO, spec["checkpoint"])
    cfg_dict, tensors = R.load_checkpoint(folder)
    cfg = R.DeepseekConfig(cfg_dict)
    rng = np.random.default_rng(spec["seed"])
    B, T, alpha = spec["B"], spec["T"], spec["balance_alpha"]
    for attempt in range(200):
        ids, tgt = make_batch(rng, cfg.vocab_size, B, T)
        model = R.DeepseekForCausalLM(cfg).load_hf_state_dict(tensors)
        cap = Capture(model)
        params = dict(model.named_parameters())
        buffers = {n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")}
        m1 = {n: torch.zeros_like(p) for n, p in params.items()}
        m2 = {n: torch.zeros_like(p) for n, p in params.items()}
        steps, grads0, loss0, ce0, bal0, min_margin = [], None, None, None, None, math.inf
        for step in range(TRAIN["steps"] + 1):
            model.zero_grad()
            ce, bal, margin = forward_loss(model, cap, ids, tgt, alpha)
            min_margin = min(min_margin, margin)
            if min_margin < MARGIN:
                break
            if step == TRAIN["steps"]:
                final_loss = float(ce + bal)
                final_ce = float(ce)
                break
            loss = ce + bal
            loss.backward()
            if step == 0:
                grads0 = {n: p.grad.detach().clone() for n, p in params.items()}
                loss0, ce0, bal0 = float(loss), float(ce), float(bal)
            norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params.values()))
            coef = spec["clip"] / (norm + 1e-6) if spec["clip"] > 0 else 1.0
            coef = min(coef, 1.0)
            lr = lr_at(step)
            ld = loads(cap)
            t = step + 1
            b1, b2, eps, wd = TRAIN["beta1"], TRAIN["beta2"], TRAIN["eps"], TRAIN["weight_decay"]
            with torch.no_grad():
                for n, p in params.items():
                    g = p.grad * coef
                    if p.dim() == 2:
                        p.mul_(1 - lr * wd)
                    m1[n].mul_(b1).add_(g, alpha=1 - b1)
                    m2[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (m2[n].sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
                    p.addcdiv_(m1[n], denom, value=-lr / (1 - b1 ** t))
                li = 0
                for _, m, _, _ in cap.rec:
                    bias = m.gate.e_score_correction_bias
                    if bias is not None:
                        load = torch.tensor(ld[li], dtype=R.DTYPE)
                        bias.add_(TRAIN["bias_gamma"] * torch.sign(load.mean() - load))
                    li += 1
            steps.append({"lr": lr, "loss": float(loss), "ce": float(ce), "grad_norm": norm, "clip_coef": coef,
                          "loads": ld})
        if min_margin >= MARGIN:
            break
    else:
        raise RuntimeError("%s: no batch with routing margin >= %g" % (name, MARGIN))
    for h in cap.hooks:
        h.remove()
    assert buffers is not None
    # autograd reached every parameter (but routed experts no token chose)
    zero = [n for n, g in grads0.items() if float(g.abs().max()) == 0.0 and ".experts." not in n]
    assert not zero, "%s: zero gradient for %s" % (name, zero[:5])
    assert steps[-1]["loss"] < steps[0]["loss"], "%s: ten steps did not lower the loss" % name
    clipped = sum(1 for s in steps if s["clip_coef"] < 1.0)
    return {
        "ids": ids, "tgt": tgt, "grads": grads0, "loss": loss0, "ce": ce0, "bal": bal0, "steps": steps,
        "final_loss": final_loss, "final_ce": final_ce, "margin": min_margin, "attempts": attempt + 1, "clipped": clipped,
    }


def write_case(name, spec, res, out_root):
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    R.write_safetensors(os.path.join(folder, "grads.safetensors"),
                        {n: ("F32", g.numpy().astype(np.float32)) for n, g in res["grads"].items()})
    train = dict(TRAIN)
    train["clip"] = spec["clip"]
    train["balance_alpha"] = spec["balance_alpha"]
    doc = {
        "checkpoint": spec["checkpoint"],
        "B": spec["B"],
        "T": spec["T"],
        "ids": res["ids"].tolist(),
        "targets": res["tgt"].tolist(),
        "loss": res["loss"],
        "ce_loss": res["ce"],
        "balance_loss": res["bal"],
        "grads": "grads.safetensors",
        "train": train,
        "steps": res["steps"],
        "loss_after_steps": res["final_loss"],
        "ce_after_steps": res["final_ce"],
        "min_route_margin": res["margin"],
        "note": "float64 reference (tests/ref/deepseek_ref.py); grads rounded to float32",
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, fn)) for fn in os.listdir(folder))
    print("  %-8s loss %.6f  -> %.6f after %d steps (%d clipped)  margin %.1e (%d draws)  %6.1f KB"
          % (name, res["loss"], res["final_loss"], len(res["steps"]), res["clipped"], res["margin"],
             res["attempts"], size / 1024))


def main(argv):
    check = "--check" in argv
    out = OUT
    if "--out" in argv:
        out = argv[argv.index("--out") + 1]
    names = [a for a in argv if a in CASES] or list(CASES)
    target = tempfile.mkdtemp() if check else out
    try:
        for name in names:
            write_case(name, CASES[name], run_case(name, CASES[name]), target)
        if check:
            bad = []
            for name in names:
                for fn in sorted(os.listdir(os.path.join(target, name))):
                    a, b = os.path.join(target, name, fn), os.path.join(out, name, fn)
                    if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
                        bad.append(os.path.join(name, fn))
            if bad:
                print("differs from %s: %s" % (out, ", ".join(bad)))
                return 1
            print("tests/golden_grad is current")
    finally:
        if check:
            shutil.rmtree(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
