#!/usr/bin/python3
"""Write the policy-gradient goldens in tests/golden_rl/<case>/.

    /usr/bin/python3 tests/ref/make_rl_golden.py            # (re)write tests/golden_rl
    /usr/bin/python3 tests/ref/make_rl_golden.py --check    # regenerate in a temp dir,
                                                            # compare byte for byte

The loss is written here from the papers (see docs/post-training.md), in
float64 with autograd, independently of src/train/rl.c:

    A_i  = (r_i - mean_g) / (std_g + std_eps)    (scale_std; population std)
           r_i - mean_g                          (Dr. GRPO)
    rho  = exp(logp - logp_old)
    s    = min(rho A, clamp(rho, 1 - clip_low, 1 + clip_high) A)
    k3   = exp(ref - logp) - (ref - logp) - 1
    L    = sum_i w_i sum_{t in o_i} (-s + beta_kl k3),
           w_i = 1/(n |o_i|) (seq_mean, GRPO), 1/sum|o| (token_mean, DAPO),
                 1/(n norm_len) (seq_sum, Dr. GRPO)

Each case is a batch of n samples (prompt + completion, a train mask with
one hole inside a completion, rewards, groups including a group of one),
logp_old and logp_ref rounded to float32 as the C side stores them. Two
kinds:

  * "logits": every completion token has a random float32 logits row; the
    case stores the loss, the advantages, d loss / d logp per token and
    d loss / d logits per row (tests/test_rl.c rebuilds them with the
    trainer's row kernels and lm_rl_token_loss at ~1e-6 relative).
  * "model": a golden checkpoint of tests/golden through deepseek_ref.py;
    the case stores the loss, the current logp of every completion token,
    and grads.safetensors (F32) with the gradient of L for every parameter
    (compared like tests/golden_grad: per tensor, 1e-4 of max|g|).

logp_old = logp + noise and ref = logp + noise with every ratio at least
RATIO_MARGIN away from the clip bounds (the choice between the two branches
is piecewise, like the routing, whose margin is also kept >= 1e-4), and at
least one token on each side of the clip. All randomness comes from numpy
Generators with fixed seeds and torch runs single-threaded.
"""

import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402
import make_grad_golden as GG  # noqa: E402  (routing capture and margin)

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "golden_rl")
RATIO_MARGIN = 2e-3
ROUTE_MARGIN = 1e-4

GRPO = dict(scale_std=1, std_eps=1e-4, agg="seq_mean", norm_len=0.0, clip_low=0.2, clip_high=0.2, beta_kl=0.04)
DAPO = dict(scale_std=1, std_eps=1e-4, agg="token_mean", norm_len=0.0, clip_low=0.2, clip_high=0.28, beta_kl=0.0)
DRGRPO = dict(scale_std=0, std_eps=1e-4, agg="seq_sum", norm_len=12.0, clip_low=0.2, clip_high=0.2, beta_kl=0.1)

CASES = {
    "grpo_logits": dict(kind="logits", seed=31, V=13, T=10, opts=GRPO),
    "dapo_logits": dict(kind="logits", seed=32, V=13, T=10, opts=DAPO),
    "drgrpo_logits": dict(kind="logits", seed=33, V=13, T=10, opts=DRGRPO),
    "grpo_model": dict(kind="model", checkpoint="tests/golden/v3_noqlora_f32", seed=34, T=10, opts=GRPO),
    "drgrpo_model": dict(kind="model", checkpoint="tests/golden/v3_noqlora_f32", seed=35, T=10, opts=DRGRPO),
}

GROUPS = [0, 0, 0, 1, 1, 1, 1, 2]          # group 2 has one sample: A = 0


# --------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------

def advantages(opts, rewards, groups):
    r = torch.tensor(rewards, dtype=torch.float64)
    g = torch.tensor(groups)
    adv = torch.zeros_like(r)
    for k in sorted(set(groups)):
        sel = g == k
        mean = r[sel].mean()
        if opts["scale_std"]:
            std = r[sel].std(unbiased=False)
            adv[sel] = (r[sel] - mean) / (std + opts["std_eps"])
        else:
            adv[sel] = r[sel] - mean
    return adv


def rl_loss(opts, logp, old, ref, mask, adv):
    """logp, old, ref, mask: [n, L] (mask 1 on completion tokens); adv [n]."""
    n = logp.shape[0]
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    s = torch.min(ratio * a, torch.clamp(ratio, 1 - opts["clip_low"], 1 + opts["clip_high"]) * a)
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    term = (-s + opts["beta_kl"] * k3) * mask
    ntok = mask.sum(1)
    if opts["agg"] == "seq_mean":
        return (term.sum(1) / ntok).sum() / n
    if opts["agg"] == "token_mean":
        return term.sum() / ntok.sum()
    return term.sum() / (n * opts["norm_len"])


# --------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------

def make_samples(rng, V, T):
    n = len(GROUPS)
    samples = []
    for i in range(n):
        length = int(rng.integers(5, T + 2))             # up to T + 1 tokens
        prompt = int(rng.integers(2, 4))
        ids = rng.integers(2, V, size=length)
        train = np.zeros(length, dtype=np.int64)
        train[prompt:] = 1
        if i == 1 and length - prompt >= 3:
            train[prompt + 1] = 0                        # a hole (e.g. a tool's output)
        samples.append(dict(ids=ids, train=train, reward=float(np.round(rng.random(), 3)), group=GROUPS[i]))
    return samples


def noisy(rng, logp, mask, opts):
    """float32 logp_old and ref around logp; None if a ratio is near a clip bound."""
    old = (logp + rng.normal(0, 0.25, logp.shape)).astype(np.float32).astype(np.float64)
    ref = (logp + rng.normal(0, 0.3, logp.shape)).astype(np.float32).astype(np.float64)
    old[mask == 0] = 0
    ref[mask == 0] = 0
    ratio = np.exp(logp - old)[mask == 1]
    for b in (1 - opts["clip_low"], 1 + opts["clip_high"]):
        if np.min(np.abs(ratio - b)) < RATIO_MARGIN:
            return None, None
    inside = (ratio > 1 - opts["clip_low"]) & (ratio < 1 + opts["clip_high"])
    if inside.all() or not inside.any():
        return None, None
    return old, ref


def padded(samples, L, key):
    out = np.zeros((len(samples), L))
    for i, s in enumerate(samples):
        out[i, : len(s[key])] = s[key]
    return out


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def run_logits(spec):
    rng = np.random.default_rng(spec["seed"])
    V, T, opts = spec["V"], spec["T"], spec["opts"]
    for attempt in range(200):
        samples = make_samples(rng, V, T)
        L = T + 1
        mask = padded(samples, L, "train")
        logits = rng.normal(0, 2.0, (len(samples), L, V)).astype(np.float32)
        logits[mask == 0] = 0
        ids = padded(samples, L, "ids").astype(np.int64)
        lt = torch.tensor(logits.astype(np.float64), requires_grad=True)
        logp_all = torch.log_softmax(lt, dim=-1)
        logp = logp_all.gather(2, torch.from_numpy(ids)[:, :, None])[:, :, 0]
        old, ref = noisy(rng, logp.detach().numpy(), mask, opts)
        if old is not None:
            break
    else:
        raise RuntimeError("no batch away from the clip bounds")
    adv = advantages(opts, [s["reward"] for s in samples], [s["group"] for s in samples])
    logp.retain_grad()
    loss = rl_loss(opts, logp, torch.from_numpy(old), torch.from_numpy(ref), torch.from_numpy(mask), adv)
    loss.backward()
    return samples, old, ref, adv, loss, dict(
        logits=[logits[i, : len(s["ids"])].tolist() for i, s in enumerate(samples)],
        dlogits=[lt.grad[i, : len(s["ids"])].tolist() for i, s in enumerate(samples)],
        dlogp=[logp.grad[i, : len(s["ids"])].tolist() for i, s in enumerate(samples)],
        logp=[logp.detach()[i, : len(s["ids"])].tolist() for i, s in enumerate(samples)],
    ), None


def model_logp(model, samples, T):
    """Current logp of every token (position t predicted by row t-1), [n, T+1]."""
    n = len(samples)
    ids = np.zeros((n, T), dtype=np.int64)
    tgt = np.zeros((n, T + 1), dtype=np.int64)
    for i, s in enumerate(samples):
        m = min(len(s["ids"]), T)
        ids[i, :m] = s["ids"][:m]
        tgt[i, : len(s["ids"])] = s["ids"]
    logits = model(torch.from_numpy(ids))                                  # [n, T, V]
    logp_rows = torch.log_softmax(logits, dim=-1).gather(2, torch.from_numpy(tgt[:, 1:])[:, :, None])[:, :, 0]
    return torch.cat([torch.zeros(n, 1, dtype=logp_rows.dtype), logp_rows], dim=1)


def run_model(spec):
    cfg_dict, tensors = R.load_checkpoint(os.path.join(REPO, spec["checkpoint"]))
    cfg = R.DeepseekConfig(cfg_dict)
    rng = np.random.default_rng(spec["seed"])
    T, opts = spec["T"], spec["opts"]
    for attempt in range(200):
        samples = make_samples(rng, cfg.vocab_size, T)
        model = R.DeepseekForCausalLM(cfg).load_hf_state_dict(tensors)
        cap = GG.Capture(model)
        mask = padded(samples, T + 1, "train")
        logp = model_logp(model, samples, T)
        margin = min([GG.route_margin(m.gate, s) for _, m, s, _ in cap.rec] + [math.inf])
        for h in cap.hooks:
            h.remove()
        if margin < ROUTE_MARGIN:
            continue
        old, ref = noisy(rng, logp.detach().numpy(), mask, opts)
        if old is not None:
            break
    else:
        raise RuntimeError("no batch away from the clip bounds and routing ties")
    adv = advantages(opts, [s["reward"] for s in samples], [s["group"] for s in samples])
    params = dict(model.named_parameters())
    loss = rl_loss(opts, logp, torch.from_numpy(old), torch.from_numpy(ref), torch.from_numpy(mask), adv)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params.items()}
    zero = [k for k, g in grads.items() if float(g.abs().max()) == 0.0 and ".experts." not in k]
    assert not zero, "zero gradient for %s" % zero[:5]
    return samples, old, ref, adv, loss, dict(
        logp=[logp.detach()[i, : len(s["ids"])].tolist() for i, s in enumerate(samples)],
        min_route_margin=margin,
    ), grads


def write_case(name, spec, out_root):
    samples, old, ref, adv, loss, extra, grads = (run_logits if spec["kind"] == "logits" else run_model)(spec)
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    doc = {"kind": spec["kind"], "T": spec["T"], "opts": spec["opts"]}
    if spec["kind"] == "model":
        doc["checkpoint"] = spec["checkpoint"]
    else:
        doc["V"] = spec["V"]
    doc["n_groups"] = len(set(GROUPS))
    doc["samples"] = [{
        "ids": s["ids"].tolist(),
        "train": s["train"].tolist(),
        "logp_old": old[i, : len(s["ids"])].tolist(),
        "logp_ref": ref[i, : len(s["ids"])].tolist(),
        "reward": s["reward"],
        "group": s["group"],
    } for i, s in enumerate(samples)]
    doc["loss"] = float(loss)
    doc["adv"] = adv.tolist()
    doc.update(extra)
    if grads is not None:
        R.write_safetensors(os.path.join(folder, "grads.safetensors"),
                            {k: ("F32", g.numpy().astype(np.float32)) for k, g in grads.items()})
        doc["grads"] = "grads.safetensors"
    doc["note"] = "float64 reference (tests/ref/make_rl_golden.py); logp_old/logp_ref are float32 values"
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    ntok = sum(int(s["train"].sum()) for s in samples)
    print("  %-14s loss %+.6f  %d samples, %d completion tokens" % (name, float(loss), len(samples), ntok))


# The float64 reference goes through the system BLAS (Debian's torch links
# libblas.so.3, an alternative that may be the reference BLAS or OpenBLAS),
# which can move the last bits of a sum. A regenerated golden is "the same"
# when its structure and integers are equal and every float is within
# CHECK_REL of the stored one (relative to the larger magnitude, with an
# absolute floor for values near 0): far tighter than any tolerance the C
# tests apply, loose enough for a BLAS's summation order.
CHECK_REL = 1e-9


def close(x, y):
    return abs(x - y) <= CHECK_REL * max(abs(x), abs(y), 1e-6)


def same_json(x, y):
    if isinstance(x, dict) or isinstance(y, dict):
        return isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys() and all(
            same_json(x[k], y[k]) for k in x)
    if isinstance(x, list) or isinstance(y, list):
        return isinstance(x, list) and isinstance(y, list) and len(x) == len(y) and all(
            same_json(u, v) for u, v in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        return isinstance(x, (int, float)) and isinstance(y, (int, float)) and close(float(x), float(y))
    return x == y


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for k, v in header.items():
        if v["dtype"] != "F32":
            out[k] = (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
        else:
            a = np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").astype(np.float64)
            out[k] = ("F32", v["shape"], a)
    return out


def same_golden(a, b):
    if a.endswith(".json"):
        with open(a) as f, open(b) as g:
            return same_json(json.load(f), json.load(g))
    if a.endswith(".safetensors"):
        x, y = read_safetensors(a), read_safetensors(b)
        if x.keys() != y.keys():
            return False
        for k in x:
            (dx, sx, vx), (dy, sy, vy) = x[k], y[k]
            if dx != dy or sx != sy:
                return False
            if dx != "F32":
                if vx != vy:
                    return False
                continue
            # float32 storage: one ulp of float32 is far above CHECK_REL, so
            # allow a float32 rounding step of the tensor's scale
            scale = max(float(np.max(np.abs(vx))) if vx.size else 0.0, 1e-30)
            if vx.size and float(np.max(np.abs(vx - vy))) > 2.0 ** -22 * scale:
                return False
        return True
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def main(argv):
    check = "--check" in argv
    names = [a for a in argv if a in CASES] or list(CASES)
    target = tempfile.mkdtemp() if check else OUT
    try:
        for name in names:
            write_case(name, CASES[name], target)
        if check:
            bad = []
            for name in names:
                for fn in sorted(os.listdir(os.path.join(target, name))):
                    a, b = os.path.join(target, name, fn), os.path.join(OUT, name, fn)
                    if not os.path.exists(b) or not same_golden(a, b):
                        bad.append(os.path.join(name, fn))
            if bad:
                print("differs from %s: %s" % (OUT, ", ".join(bad)))
                return 1
            print("tests/golden_rl is current")
    finally:
        if check:
            shutil.rmtree(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
