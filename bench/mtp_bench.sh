#!/usr/bin/env bash
# bench/mtp_bench.sh — speculative decoding with the MTP draft (issue 10
# item 3): bench/bench_mtp on the bench presets with one MTP layer added
# (num_nextn_predict_layers 1, `lemma init --seed 1`:
# build/bench-models/{bench-s,bench-m}-mtp-f32), at 1 and 2 threads, beside
# plain greedy decoding of the same model in the same run (the anchor).
# Random weights give a draft that is almost never accepted: the figures
# that carry over to a trained MTP layer are the costs (verify of 2 rows and
# the draft, relative to a 1-row decode) and the projection bench_mtp
# prints from them. A trained MTP layer: when the default recipe's prover
# is built (build/default/prover, `lemma build`), an MTP layer is trained
# onto it once (`lemma train --init` the prover's last checkpoint on its SFT
# shards with --mtp-weight 1, MTP_TRAIN_STEPS steps: the main weights move
# too, little, at its final learning rate) into build/bench-models/prover-mtp,
# and bench_mtp decodes a held-out problem's prompt with it (measured
# acceptance and speed-up). MTP_BENCH_MODELS adds other checkpoint
# directories with a trained MTP layer.
#
# Environment: LEMMA_BIN, LEMMA_BUILD, LEMMA_SHARED, BENCH_RESULTS (JSON
# lines appended), BENCH_THREADS ("1 2"), BENCH_PRESETS ("bench-s bench-m"),
# MTP_PROMPT (256), MTP_GEN (128), MTP_REPS (3), BENCH_QUICK=1.
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
PRESET_DIR=$SHARED/data/bench-presets
BIN=$BUILD/bench/bench_mtp
RESULTS=${BENCH_RESULTS:-build/bench/results.jsonl}
P=${MTP_PROMPT:-256} G=${MTP_GEN:-128} R=${MTP_REPS:-3}
[ "${BENCH_QUICK:-0}" = 1 ] && { P=64; G=32; R=1; }
[ -x "$BIN" ] || { echo "mtp_bench: $BIN not built (make)"; exit 1; }
[ -d "$PRESET_DIR" ] || { echo "mtp_bench: $PRESET_DIR not found (set LEMMA_SHARED)"; exit 1; }
mkdir -p build/bench-models "$(dirname "$RESULTS")"
models=()
for p in ${BENCH_PRESETS:-bench-s bench-m}; do
    dir=build/bench-models/$p-mtp-f32
    if [ ! -f "$dir/model.safetensors" ]; then
        /usr/bin/env python3 - "$PRESET_DIR/$p.json" "$dir.json" <<'PYEOF' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("bench", None)
c["num_nextn_predict_layers"] = 1
json.dump(c, open(sys.argv[2], "w"), indent=2)
PYEOF
        "$LEMMA" init "$dir.json" --out "$dir" --seed 1 --force >/dev/null || { echo "mtp_bench: lemma init failed"; exit 1; }
        rm -f "$dir.json"
    fi
    models+=("$dir")
done
for extra in ${MTP_BENCH_MODELS:-}; do models+=("$extra"); done
# The recipe's prover with a trained MTP layer, and a prompt of its domain.
prover_ids=""
ck=$(ls -d build/default/prover/ckpt-* 2>/dev/null | tail -n 1)
if [ -n "$ck" ] && [ -d build/default/data-sft ]; then
    run=build/bench-models/prover-mtp
    if [ ! -f "$run/latest/model.safetensors" ]; then
        rm -rf "$run"
        echo "training an MTP layer onto $ck (${MTP_TRAIN_STEPS:-150} steps)"
        "$LEMMA" train --init "$ck" --data build/default/data-sft --out "$run" --steps "${MTP_TRAIN_STEPS:-150}" \
            --batch 8 --seq 256 --lr 1e-3 --min-lr 1e-4 --mtp-weight 1 --seed 1 --tokenizer "$ck" --quiet --threads 2 ||
            echo "mtp_bench: training the prover's MTP layer failed"
    fi
    if [ -f "$run/latest/model.safetensors" ]; then
        prompt=$(printf '%s' '<｜User｜>Solve the problem. Write the proof one checkable step per line under "## Solution", then judge it under "## Self Evaluation" and end with \boxed{score} (1 correct, 0.5 minor omission, 0 wrong).

## Problem
Prove that 38 + 59 = 97.<｜Assistant｜>')
        prover_ids=$("$LEMMA" tokenize "$ck" "$prompt" --bos)
        tail -n 1 "$run/metrics.jsonl" | sed 's/, "expert_load".*/}/; s/^/  MTP training, last metrics: /'
    fi
fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for dir in "${models[@]}"; do
    for t in ${BENCH_THREADS:-1 2}; do
        out=$("$BIN" "$dir" --prompt "$P" --gen "$G" --reps "$R" --threads "$t") || echo "bench_mtp failed on $dir ($t threads)"
        printf '%s\n' "$out" | grep -v '^{'
        printf '%s\n' "$out" | grep '^{' >>"$RESULTS"
    done
done
if [ -n "$prover_ids" ]; then
    for t in ${BENCH_THREADS:-1 2}; do
        out=$("$BIN" build/bench-models/prover-mtp/latest --ids "$prover_ids" --gen "$G" --reps "$R" --threads "$t") ||
            echo "bench_mtp failed on the prover ($t threads)"
        printf '%s\n' "$out" | grep -v '^{'
        printf '%s\n' "$out" | grep '^{' >>"$RESULTS"
    done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
