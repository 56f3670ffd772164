#!/usr/bin/python3
"""Write the logit-distillation golden, tests/golden_distill/rows.json.

    /usr/bin/python3 tests/ref/make_distill_golden.py            # (re)write it
    /usr/bin/python3 tests/ref/make_distill_golden.py --check    # regenerate, compare byte for byte

The loss is written here from Hinton et al. (2015) and docs/post-training.md
in float64 with autograd, independently of src/train/distill.c:

    p = softmax(t / tau), q = softmax(z / tau)
    full:   L = w tau^2 sum_j p_j (log p_j - log q_j)
    top-k:  the teacher's k largest p_j stay, the other tokens form one
            bucket with P = sum p, Q = sum q; L = w tau^2 KL over the k+1
            buckets.

Each case holds float32 teacher and student logits rows (numpy Generator,
fixed seed), tau, top_k, the weight w, the loss summed over rows and
d L / d z for every row. tests/test_distill.c rebuilds both with
lm_distill_target and lm_distill_row_loss.
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "golden_distill", "rows.json")

CASES = [
    ("full_tau1", 1.0, 0, 37, 4),
    ("full_tau2", 2.0, 0, 37, 4),
    ("top5_tau2", 2.0, 5, 37, 4),
    ("top1_tau3", 3.0, 1, 19, 3),
    ("top8_tau0.5", 0.5, 8, 64, 3),
]


def reference(t, z, tau, k, w):
    t = torch.tensor(t, dtype=torch.float64)
    z = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(t / tau, dim=-1)
    logq = torch.log_softmax(z / tau, dim=-1)
    if k == 0:
        kl = (p * (torch.log(p) - logq)).sum()
    else:
        kl = 0
        for r in range(t.shape[0]):
            order = sorted(range(t.shape[1]), key=lambda j: (-float(t[r, j]), j))
            keep, rest = order[:k], order[k:]
            P = torch.cat([p[r, keep], p[r, rest].sum().reshape(1)])
            logQ = torch.cat([logq[r, keep], torch.logsumexp(logq[r, rest], 0).reshape(1)])
            kl = kl + (P * (torch.log(P) - logQ)).sum()
    loss = w * tau * tau * kl
    loss.backward()
    return float(loss), z.grad.numpy()


def build():
    rng = np.random.default_rng(20261205)
    cases = []
    for name, tau, k, V, R in CASES:
        t = (rng.standard_normal((R, V)) * 2.0).astype(np.float32)
        z = (rng.standard_normal((R, V)) * 2.0).astype(np.float32)
        w = 1.0 / (R + 1)
        loss, grad = reference(t.astype(np.float64), z.astype(np.float64), tau, k, w)
        cases.append({
            "name": name, "tau": tau, "top_k": k, "vocab": V, "rows": R, "weight": w,
            "teacher": [[float(x) for x in row] for row in t],
            "student": [[float(x) for x in row] for row in z],
            "loss": loss,
            "grad": [[float("%.17g" % x) for x in row] for row in grad],
        })
    return json.dumps({"cases": cases}, indent=None, separators=(",", ":")) + "\n"


def main():
    text = build()
    if "--check" in sys.argv:
        with open(OUT) as f:
            same = f.read() == text
        print("tests/golden_distill/rows.json: " + ("same bytes" if same else "DIFFERS"))
        sys.exit(0 if same else 1)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(OUT))
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, OUT)
    print("wrote " + os.path.relpath(OUT, REPO))


if __name__ == "__main__":
    main()
