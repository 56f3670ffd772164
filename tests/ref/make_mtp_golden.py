#!/usr/bin/python3
"""Write the MTP golden, tests/golden_mtp/<case>.json and <case>.f32.

    /usr/bin/python3 tests/ref/make_mtp_golden.py            # (re)write them
    /usr/bin/python3 tests/ref/make_mtp_golden.py --check    # regenerate, compare byte for byte

The multi-token-prediction layer of a DeepSeek-V3 checkpoint (layer index
num_hidden_layers), written here in float64 from the DeepSeek-V3 report
(section 2.2) and the conventions of docs/deepseek-conventions.md item 30,
independently of src/model/mtp.c:

    h_i      = main model output after model.norm at position i
    x_i      = eh_proj([enorm(E_mtp[t_{i+1}]) ; hnorm(h_i)])     embedding first
    y_i      = DecoderLayer_L(x_i) at rope position i, causal over MTP positions
    logits_i = shared_head.head(shared_head.norm(y_i))            predicts t_{i+2}

It reads the golden checkpoints of tests/golden that carry an MTP layer and
their ids, and writes the [T-1, V] MTP logits as little-endian float32.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "golden")
OUT = os.path.join(ROOT, "golden_mtp")
CASES = ["v3_sharded_f32"]


class MTPLayer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, V, L = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
        self.layer = R.DecoderLayer(cfg, L)   # MoE or dense by its own index
        self.embed_tokens = torch.nn.Embedding(V, D, dtype=R.DTYPE)
        self.enorm = R.RMSNorm(D, cfg.rms_norm_eps)
        self.hnorm = R.RMSNorm(D, cfg.rms_norm_eps)
        self.eh_proj = torch.nn.Linear(2 * D, D, bias=False, dtype=R.DTYPE)
        self.head_norm = R.RMSNorm(D, cfg.rms_norm_eps)
        self.head = torch.nn.Linear(D, V, bias=False, dtype=R.DTYPE)

    def load(self, tensors, L):
        p = "model.layers.%d." % L
        own = {"embed_tokens.weight": p + "embed_tokens.weight", "enorm.weight": p + "enorm.weight",
               "hnorm.weight": p + "hnorm.weight", "eh_proj.weight": p + "eh_proj.weight",
               "head_norm.weight": p + "shared_head.norm.weight", "head.weight": p + "shared_head.head.weight"}
        with torch.no_grad():
            for k, v in self.state_dict().items():
                name = own.get(k) or p + k[len("layer."):]
                v.copy_(tensors[name])
        return self

    def forward(self, h, next_ids, positions):
        x = self.eh_proj(torch.cat([self.enorm(self.embed_tokens(next_ids)), self.hnorm(h)], -1))
        return self.head(self.head_norm(self.layer(x[None], positions)[0]))


def build(name, out_root):
    folder = os.path.join(GOLDEN, name)
    cfg_dict, tensors = R.load_checkpoint(folder)
    cfg = R.DeepseekConfig(cfg_dict)
    model = R.DeepseekForCausalLM(cfg).load_hf_state_dict(tensors)
    mtp = MTPLayer(cfg).load(tensors, cfg.num_hidden_layers)
    with open(os.path.join(folder, "golden.json")) as f:
        ids = json.load(f)["ids"]
    T = len(ids)
    tid = torch.tensor(ids)
    with torch.no_grad():
        h = model.model(tid[None], torch.arange(T))[0]
        logits = mtp(h[:-1], tid[1:], torch.arange(T - 1))
        # causal: a prefix gives the same rows
        part = mtp(h[:5], tid[1:6], torch.arange(5))
        assert (part - logits[:5]).abs().max().item() < 1e-12
        # the hidden state matters, and so does the token
        other = mtp(h[:-1] * 0.5 + 0.1, tid[1:], torch.arange(T - 1))
        assert (other - logits).abs().max().item() > 1e-2
    std = logits.std().item()
    assert 0.3 < std < 10, "%s: MTP logit spread %g" % (name, std)
    lf = logits.numpy().astype("<f4")
    lf.tofile(os.path.join(out_root, name + ".f32"))
    meta = {"checkpoint": "tests/golden/" + name, "ids": ids, "rows": T - 1, "vocab": cfg.vocab_size,
            "logits": name + ".f32", "dtype": "f32",
            "note": "row i: MTP logits at position i (h_i, token i+1), predicting token i+2"}
    with open(os.path.join(out_root, name + ".json"), "w") as f:
        f.write(json.dumps(meta, indent=2) + "\n")
    print("  %-16s rows %d  V %d  logit std %.3f  max|logit| %.2f" % (name, T - 1, cfg.vocab_size, std,
                                                                        logits.abs().max().item()))


def main(argv):
    check = "--check" in argv
    out_root = tempfile.mkdtemp(prefix="golden-mtp-") if check else OUT
    os.makedirs(out_root, exist_ok=True)
    for name in CASES:
        build(name, out_root)
    if not check:
        return 0
    bad = []
    for fn in sorted(os.listdir(out_root)):
        with open(os.path.join(out_root, fn), "rb") as a, open(os.path.join(OUT, fn), "rb") as b:
            if a.read() != b.read():
                bad.append(fn)
    shutil.rmtree(out_root)
    if bad:
        print("DIFFERENT from tests/golden_mtp:", *bad)
        return 1
    print("tests/golden_mtp is byte-identical to a fresh regeneration")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
