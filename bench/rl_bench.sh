#!/usr/bin/env bash
# rl_bench.sh — throughput of the post-training RL step (issue 9), lemma vs
# PyTorch for the training part, in one run: build/release/bench/bench_rl
# (a grpo step on the default prover: P x G proofs sampled through the
# engine, checker rewards, logp_old and reference forwards, lm_rl_step) and
# bench/torch_train.py on the prover's config at the same rows x seq (a
# training step of that shape: forward, cross-entropy, backward, AdamW — the
# compute of lm_rl_step, whose loss differs only per token), interleaved at
# each thread count. Prints samples/s, tokens/s, the share of a step spent
# sampling, and lemma's training step against PyTorch's.
#
# Needs the default prover (build/default/prover: `make run`); skipped
# visibly without it. Environment: RL_BENCH_MODEL (build/default/prover),
# RL_BENCH_THREADS ("1 2"), RL_BENCH_STEPS (2), RL_BENCH_PROMPTS (8),
# RL_BENCH_GROUP (4), RL_BENCH_SEQ (512), RL_BENCH_NO_TORCH=1,
# RL_BENCH_TIMEOUT (600 s per command).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
MODEL=${RL_BENCH_MODEL:-build/default/prover}
THREADS=${RL_BENCH_THREADS:-1 2}
STEPS=${RL_BENCH_STEPS:-2}
PROMPTS=${RL_BENCH_PROMPTS:-8}
GROUP=${RL_BENCH_GROUP:-4}
SEQ=${RL_BENCH_SEQ:-512}
TMO=${RL_BENCH_TIMEOUT:-600}
BIN=$BUILD/bench/bench_rl
TORCH_PY=/usr/bin/python3; [ -x "$TORCH_PY" ] || TORCH_PY=python3
. bench/torch_env.sh  # PyTorch on OpenBLAS when installed: OPENBLAS_DIR, torch_env
if [ ! -f "$MODEL/model.safetensors" ]; then
    echo "rl_bench: skipped: $MODEL is not built (make run builds it)"
    exit 0
fi
make --no-print-directory -s "$BIN" >&2 || [ -x "$BIN" ] || { echo "rl_bench: cannot build $BIN" >&2; exit 1; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
for t in $THREADS; do
    timeout "$TMO" "$BIN" "$MODEL" --threads "$t" --steps "$STEPS" --prompts "$PROMPTS" --group "$GROUP" \
        --seq "$SEQ" 2>/dev/null | grep -E '^\{' >>"$out" || echo "   bench_rl failed at $t threads" >&2
    if [ "${RL_BENCH_NO_TORCH:-0}" != 1 ]; then
        env "${torch_env[@]}" OMP_WAIT_POLICY=PASSIVE timeout "$TMO" "$TORCH_PY" bench/torch_train.py "$MODEL/config.json" \
            --batch $((PROMPTS * GROUP)) --seq "$SEQ" --threads "$t" --steps "$STEPS" --name prover 2>/dev/null |
            grep -E '^\{' | tail -n 1 >>"$out" || echo "   torch_train.py failed at $t threads" >&2
    fi
done
python3 - "$out" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
L0 = next((r for r in rs if r["bench"] == "lemma_rl"), None)
if L0:
    print("GRPO step on %s: %d prompts x %d proofs, rows padded to %d tokens, mean completion %.0f tokens"
          % (L0["model"], L0["prompts"], L0["group"], L0["seq"], L0["mean_completion"]))
print("| threads | samples/s | completion tok/s | sampling | logp forwards | RL step | engine tok/s | "
      "lemma step tok/s | PyTorch step tok/s | lemma / PyTorch |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for t in sorted({r["threads"] for r in rs}):
    L = next((r for r in rs if r["bench"] == "lemma_rl" and r["threads"] == t), None)
    P = next((r for r in rs if r["bench"] == "torch_train" and r["threads"] == t), None)
    if not L:
        continue
    blas = ""
    if P and "openblas" not in P.get("blas", ""):
        blas = " (PyTorch on reference BLAS: slow anchor)"
    print("| %d | %.2f | %.0f | %.0f%% | %.0f%% | %.0f%% | %.0f | %.0f | %s | %s%s |" % (
        t, L["samples_per_s"], L["completion_tokens_per_s"], 100 * L["sample_share"], 100 * L["logp_share"],
        100 * L["step_share"], L["sample_tokens_per_s"], L["train_tokens_per_s"],
        "%.0f" % P["tokens_per_s"] if P else "-",
        "%.2f" % (L["train_tokens_per_s"] / P["tokens_per_s"]) if P else "-", blas))
PY
