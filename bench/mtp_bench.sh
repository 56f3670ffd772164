#!/usr/bin/env bash
# bench/mtp_bench.sh — speculative decoding with the MTP draft (issue 10
# item 3): bench/bench_mtp on the bench presets with one MTP layer added
# (num_nextn_predict_layers 1, `lemma init --seed 1`:
# build/bench-models/{bench-s,bench-m}-mtp-f32), at 1 and 2 threads, beside
# plain greedy decoding of the same model in the same run (the anchor).
# Random weights give a draft that is almost never accepted: the figures
# that carry over to a trained MTP layer are the costs (verify of 2 rows and
# the draft, relative to a 1-row decode) and the projection bench_mtp
# prints from them. MTP_BENCH_MODELS adds checkpoint directories with a
# trained MTP layer (measured acceptance and speed-up).
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
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for dir in "${models[@]}"; do
    for t in ${BENCH_THREADS:-1 2}; do
        out=$("$BIN" "$dir" --prompt "$P" --gen "$G" --reps "$R" --threads "$t") || echo "bench_mtp failed on $dir ($t threads)"
        printf '%s\n' "$out" | grep -v '^{'
        printf '%s\n' "$out" | grep '^{' >>"$RESULTS"
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
