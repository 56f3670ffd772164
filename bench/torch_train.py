#!/usr/bin/python3
"""PyTorch anchor for lemma's training benchmark (bench/train_bench.sh).

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_train.py PRESET.json \
        [--init MODEL_DIR] [--threads N] [--steps S] [--warmup W] [--batch B] [--seq T] \
        [--distill-teacher TEACHER.json [--temperature TAU]] [--autocast bf16]

With --autocast bf16, the PyTorch anchor of `--precision bf16`: the forward
and the loss run under torch.autocast("cpu", dtype=torch.bfloat16) (matmuls
and linears in bf16 with fp32 master weights, fp32 optimiser), the standard
PyTorch mixed-precision recipe on CPU.

With --distill-teacher, the anchor of bench/bench_distill.c (bench
"torch_distill"): a frozen teacher of that preset (N(0, 0.02), eval mode,
no_grad forward on the same ids) and the loss tau^2 KL(softmax(t/tau) ||
softmax(z/tau)) averaged over the positions (F.kl_div with log targets,
"batchmean" over the B*T rows) instead of the cross-entropy; the rest of the
step is the same.

The same training step as bench/bench_train.c, in PyTorch (float32, eager):
  - the model: tests/ref/deepseek_ref.py's modules (HF names and structure)
    built with R.DTYPE = float32. Its MoE is HF's training-time form: one
    pass per expert over the rows routed to it (boolean mask -> index ->
    gather -> SwiGLU -> index_add), not a per-token loop, so it is kept.
    Attention (--attn hf, the default) is replaced by HF DeepseekV3
    Attention's eager form: q = [q_nope | q_pe], k = [k_nope | k_pe expanded
    to every head], one matmul for the [B, H, T, T] scores, additive causal
    mask, softmax, one matmul with v. The reference's own form (two einsums
    for the nope and rope parts, masked_fill; --attn ref) computes the same
    values about 20% slower at bench-m's shapes. That is what a PyTorch
    user training this architecture runs, so it is a fair anchor (torch
    1.13 has no scaled_dot_product_attention and no torch.compile);
  - weights: --init MODEL_DIR (a `lemma init --seed 1` directory: then the
    first loss equals bench_train's loss_first, a check that both sides
    train the same model), else N(0, 0.02) from torch's generator;
  - ids: lm_rng_u64(seed, LM_RNG_BENCH, i) % vocab over B*(T+1) tokens,
    row b = tokens b*(T+1) .. b*(T+1)+T, targets = ids shifted by one: the
    same batch as bench_train;
  - the step: zero_grad, forward, mean cross-entropy, backward,
    clip_grad_norm_(1.0), AdamW (lr 1e-3, betas 0.9/0.95, eps 1e-8, weight
    decay 0.1 on 2-D weights only, as lemma), then the DeepSeek-V3 MoE bias
    update (bias_e += 0.001 * sign(mean load - load_e)) — lemma's defaults;
  - W untimed warm-up steps (default 1), S timed steps (default 5; 3 when
    T >= 512), median step time; tokens/s = B*T / step time.

OMP_WAIT_POLICY and OMP_NUM_THREADS are set before torch is imported
(PyTorch's default spin-waiting OpenMP pool is 3-7x slower on this shared
2-core machine); torch.set_num_threads(N) as well. PyTorch's matmuls go to
libblas.so.3: it must be OpenBLAS (libopenblas0-openmp), the reference BLAS
is ~15x slower; bench/train_bench.sh points LD_LIBRARY_PATH at OpenBLAS's
folder when it is installed (the system default may stay the reference BLAS,
which tests/ref's byte-exact golden checks were written with); the JSON line
names the library actually loaded.

Prints one JSON line: tokens_per_s, step times, cpu_util (process CPU time /
(wall * threads)), tokens_per_cpu_s, tokens_per_s_idle_est (B*T over the CPU
time of the busiest thread per step, from /proc/self/task/TID/schedstat: an
estimate for an idle machine; PyTorch's serial parts — Python, autograd,
small ops — run on the main thread, which is the busiest, so they count in
full), runqueue_wait_frac (time runnable but waiting for a CPU / (wall *
threads)), peak_rss_mib (ru_maxrss), loss_first / loss_last.
"""
import os
import sys


def _early_threads():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = _early_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

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


def batch_ids(seed, B, T, V):
    toks = [rng_u64(seed, LM_RNG_BENCH, i) % V for i in range(B * (T + 1))]
    t = torch.tensor(toks, dtype=torch.long).view(B, T + 1)
    return t[:, :T].contiguous(), t[:, 1:].contiguous()


def moe_forward_autocast(self, x):
    """tests/ref's MoE.forward with its dtypes made explicit, for autocast:
    there the router weights and the experts' outputs come back in
    different dtypes (fp32 scores, bf16 products), which scatter and
    index_add refuse to mix. Same operations otherwise."""
    shape = x.shape
    xf = x.reshape(-1, shape[-1])
    idx, w = self.gate(xf)
    N, E = xf.shape[0], self.cfg.n_routed_experts
    dense_w = torch.zeros(N, E, dtype=w.dtype).scatter(1, idx, w)
    y = torch.zeros(xf.shape, dtype=torch.float32)
    for e, expert in enumerate(self.experts):
        rows = (idx == e).any(dim=1).nonzero().flatten()
        if rows.numel() == 0:
            continue
        contrib = expert(xf[rows]).float() * dense_w[rows, e:e + 1].float()
        y = y.index_add(0, rows, contrib)
    if self.shared_experts is not None:
        y = y + self.shared_experts(xf).float()
    return y.view(shape)


def mla_forward_hf(self, x, positions, cache=None):
    """MLA as HF's DeepseekV3Attention (eager) computes it; same values as R.MLA.forward."""
    assert cache is None
    B, T, _ = x.shape
    cos, sin = R.rope_cos_sin(self.cfg, positions)
    q_nope, q_pe = self.query(x, cos, sin)                     # [B, T, H, dn], [B, T, H, dr]
    c, k_pe = self.latent(x, cos, sin)                         # [B, T, C], [B, T, dr]
    kv = self.kv_b_proj(c).view(B, T, self.H, self.dn + self.dv)
    k_nope, v = kv[..., :self.dn], kv[..., self.dn:]
    q = torch.cat((q_nope, q_pe), -1).transpose(1, 2)          # [B, H, T, dn+dr]
    k = torch.cat((k_nope, k_pe[:, :, None, :].expand(B, T, self.H, self.dr)), -1).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(2, 3)) * self.scale   # [B, H, T, T]
    mask = torch.full((T, T), float("-inf"), dtype=scores.dtype).triu(1)
    p = torch.softmax(scores + mask, dim=-1)
    out = torch.matmul(p, v.transpose(1, 2))                   # [B, H, T, dv]
    return self.o_proj(out.transpose(1, 2).reshape(B, T, self.H * self.dv))


def task_snapshot():
    """{tid: (ns on a CPU, ns waiting for one)} from /proc/self/task/TID/schedstat."""
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open("/proc/self/task/%s/schedstat" % t) as f:
                run, wait = f.read().split()[:2]
            out[t] = (int(run) * 1e-9, int(wait) * 1e-9)
        except (OSError, ValueError):
            pass
    return out


def task_delta(a, b):
    """Largest per-thread CPU time and summed run-queue wait between two snapshots."""
    busiest = wait = 0.0
    for t, (r, w) in b.items():
        r0, w0 = a.get(t, (0.0, 0.0))
        busiest = max(busiest, r - r0)
        wait += w - w0
    return busiest, wait


def blas_library():
    """The libblas.so.3 this process loaded (LD_LIBRARY_PATH may point torch at
    OpenBLAS while the system default is another), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "libblas.so" in path or "libopenblas" in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    p = "/usr/lib/x86_64-linux-gnu/libblas.so.3"
    return os.path.realpath(p) if os.path.exists(p) else "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--init", help="HF model dir with the weights (lemma init); default random N(0, 0.02)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--seq", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attn", choices=("hf", "ref"), default="hf",
                    help="attention code: HF's eager form (default) or the reference's")
    ap.add_argument("--name")
    ap.add_argument("--autocast", choices=("off", "bf16"), default="off",
                    help="bf16: forward and loss under torch.autocast('cpu', torch.bfloat16) (fp32 master weights)")
    ap.add_argument("--distill-teacher", help="preset of a frozen teacher: time a logit-distillation step")
    ap.add_argument("--temperature", type=float, default=2.0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    R.DTYPE = torch.float32          # the reference builds its modules (and rope tables) in R.DTYPE
    if a.attn == "hf":
        R.MLA.forward = mla_forward_hf
    if a.autocast == "bf16":
        R.MoE.forward = moe_forward_autocast
    with open(a.preset) as f:
        cfg_dict = json.load(f)
    bench = cfg_dict.get("bench") or {}
    B = a.batch or int(bench.get("batch_size", 0))
    T = a.seq or int(bench.get("seq_len", 0))
    if B <= 0 or T <= 0:
        sys.exit("torch_train.py: %s has no \"bench\" field: give --batch and --seq" % a.preset)
    steps = a.steps or (3 if T >= 512 else 5)
    name = a.name or os.path.basename(a.preset).replace(".json", "")

    cfg = R.DeepseekConfig(cfg_dict)
    torch.manual_seed(a.seed)
    model = R.DeepseekForCausalLM(cfg)
    if a.init:
        _, tensors = R.load_checkpoint(a.init)
        model.load_hf_state_dict(tensors)
        del tensors
    else:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.02)
    model.train()

    # the chosen experts of every MoE layer, for the bias update
    choices = []
    orig_gate_forward = R.Gate.forward

    def gate_forward(self, x, use_bias=True, use_groups=True):
        idx, w = orig_gate_forward(self, x, use_bias, use_groups)
        choices.append((self, idx.detach()))
        return idx, w

    R.Gate.forward = gate_forward

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    params = list(model.parameters())
    E = cfg.n_routed_experts or 0
    gamma = 0.001

    ids, tgt = batch_ids(a.seed, B, T, cfg.vocab_size)

    teacher = None
    if a.distill_teacher:
        with open(a.distill_teacher) as f:
            tcfg = R.DeepseekConfig(json.load(f))
        if tcfg.vocab_size != cfg.vocab_size:
            sys.exit("torch_train.py: the teacher's vocabulary differs from the student's")
        teacher = R.DeepseekForCausalLM(tcfg)
        with torch.no_grad():
            for n, p in teacher.named_parameters():
                p.requires_grad_(False)
                if p.dim() == 2:
                    p.normal_(0.0, 0.02)
        teacher.eval()
        tau = a.temperature
        R.Gate.forward = orig_gate_forward  # the teacher's routing is not the student's bias update
        student_gate = gate_forward

    def loss_of(logits):
        if teacher is None:
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1))
        R.Gate.forward = orig_gate_forward
        with torch.no_grad():
            t = teacher(ids)
        R.Gate.forward = student_gate
        V = logits.shape[-1]
        return tau * tau * F.kl_div(F.log_softmax(logits.view(-1, V) / tau, -1),
                                    F.log_softmax(t.view(-1, V) / tau, -1), log_target=True, reduction="batchmean")

    def step():
        choices.clear()
        opt.zero_grad(set_to_none=True)
        if teacher is not None:
            R.Gate.forward = student_gate
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            logits = model(ids)
            loss = loss_of(logits.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for gate, idx in choices:
                if gate.e_score_correction_bias is None:
                    continue
                load = torch.bincount(idx.flatten(), minlength=E).to(gate.e_score_correction_bias.dtype)
                gate.e_score_correction_bias.add_(gamma * torch.sign(load.mean() - load))
        return float(loss)

    loss_first = None
    for s in range(a.warmup):
        l0 = step()
        if s == 0:
            loss_first = l0
    wall, cpu = [], 0.0
    loss = None
    ts0 = task_snapshot()
    for s in range(steps):
        c0, t0 = time.process_time(), time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        cpu += time.process_time() - c0
        wall.append(dt)
        if loss_first is None:
            loss_first = loss
        print("torch_train %s %dt: step %d %.3f s (%.0f tokens/s) loss %.4f" % (name, a.threads, s + 1, dt,
              B * T / dt, loss), file=sys.stderr)
    busiest, rq_wait = task_delta(ts0, task_snapshot())
    med = statistics.median(wall)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "bench": "torch_distill" if teacher is not None else "torch_train", "preset": name,
        "teacher": os.path.basename(a.distill_teacher).replace(".json", "") if teacher is not None else None,
        "temperature": a.temperature if teacher is not None else None, "threads": a.threads, "batch": B, "seq": T,
        "warmup": a.warmup, "steps": steps,
        "step_s_median": round(med, 4), "step_s_best": round(min(wall), 4), "step_s_worst": round(max(wall), 4),
        "tokens_per_s": round(B * T / med, 1), "tokens_per_s_best": round(B * T / min(wall), 1),
        "cpu_util": round(cpu / (sum(wall) * a.threads), 3),
        "tokens_per_cpu_s": round(B * T * steps / cpu, 1),
        "busiest_thread_cpu_s": round(busiest / steps, 4) if busiest else None,
        "tokens_per_s_idle_est": round(B * T * steps / busiest, 1) if busiest else None,
        "runqueue_wait_frac": round(rq_wait / (sum(wall) * a.threads), 3) if busiest else None,
        "peak_rss_mib": round(rss, 1), "loss_first": round(loss_first, 5), "loss_last": round(loss, 5),
        "weights": "init:" + a.init if a.init else "torch-random", "attn": a.attn, "autocast": a.autocast,
        "torch": torch.__version__, "blas": blas_library(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
