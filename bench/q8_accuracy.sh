#!/usr/bin/env bash
# q8_accuracy.sh — what Q8 weights (lemma quantize --type q8) cost in accuracy
# on a real model: validation loss / perplexity through lemma train's
# validation path (the weights dequantized exactly: the same values the Q8
# kernels use) and greedy agreement of `lemma generate` against the original.
#
#   bench/q8_accuracy.sh MODEL_DIR DATA_DIR PROBLEMS.jsonl [--n 30] [--gen 96] [--threads 2]
#
# MODEL_DIR: a checkpoint with its tokenizer (e.g. the default recipe's
# prover); DATA_DIR: its token shards (lemma data; the val split is used);
# PROBLEMS.jsonl: lines with "question" (the held-out problems). Prints a
# short report on stdout; scratch in a temporary folder.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LEMMA=${LEMMA:-$ROOT/lemma}
[ $# -ge 3 ] || { echo "usage: $0 MODEL_DIR DATA_DIR PROBLEMS.jsonl [--n 30] [--gen 96] [--threads 2]" >&2; exit 2; }
MODEL=$1 DATA=$2 PROBLEMS=$3; shift 3
N=30 GEN=96 THREADS=2
while [ $# -gt 0 ]; do
    case $1 in
        --n) N=$2; shift 2 ;;
        --gen) GEN=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        *) echo "q8_accuracy: unknown option $1" >&2; exit 2 ;;
    esac
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$LEMMA" quantize "$MODEL" "$tmp/q8" >&2

# validation loss: one step at lr 1e-12 (the trainer has no eval-only mode;
# the step moves no weight by more than ~1e-12), then the evaluation
val() {
    "$LEMMA" train --init "$1" --data "$DATA" --out "$tmp/run-$2" --steps 1 --batch 4 --seq 256 --lr 1e-12 \
        --warmup 0 --eval-batches 32 --threads "$THREADS" --quiet >&2
    python3 -c "
import json,sys
v=[json.loads(l)['val_loss'] for l in open('$tmp/run-$2/metrics.jsonl') if 'val_loss' in json.loads(l)]
print(v[-1])"
}
lf=$(val "$MODEL" f32); lq=$(val "$tmp/q8" q8)

# greedy agreement on the held-out problems, the SFT prompt format
python3 - "$PROBLEMS" "$N" >"$tmp/prompts" <<'PY'
import json, sys
n = int(sys.argv[2])
for i, line in enumerate(open(sys.argv[1])):
    if i >= n: break
    q = json.loads(line)["question"]
    print(json.dumps('<｜User｜>Solve the problem. Write the proof one checkable step per line under "## Solution", '
                     'then judge it under "## Self Evaluation" and end with \\boxed{score} (1 correct, 0.5 minor '
                     'omission, 0 wrong).\n\n## Problem\n' + q + '<｜Assistant｜>'))
PY
: >"$tmp/f32.txt"; : >"$tmp/q8.txt"
while IFS= read -r p; do
    text=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]), end="")' "$p")
    ids=$("$LEMMA" tokenize "$MODEL" "$text" --bos | tr -d ' [] ')
    "$LEMMA" generate "$MODEL" --ids "$ids" -n "$GEN" --threads "$THREADS" 2>/dev/null >>"$tmp/f32.txt" || echo >>"$tmp/f32.txt"
    "$LEMMA" generate "$tmp/q8" --ids "$ids" -n "$GEN" --threads "$THREADS" 2>/dev/null >>"$tmp/q8.txt" || echo >>"$tmp/q8.txt"
done <"$tmp/prompts"
python3 - "$tmp/f32.txt" "$tmp/q8.txt" "$lf" "$lq" <<'PY'
import math, sys
a = [l.strip().split(",") for l in open(sys.argv[1])]
b = [l.strip().split(",") for l in open(sys.argv[2])]
same = sum(x == y for x, y in zip(a, b))
agree = tot = 0
for x, y in zip(a, b):
    k = 0
    while k < min(len(x), len(y)) and x[k] == y[k]: k += 1
    agree += k; tot += len(x)
lf, lq = float(sys.argv[3]), float(sys.argv[4])
print("validation loss   F32 %.5f (ppl %.4f)   Q8 %.5f (ppl %.4f)   delta %+.5f" % (lf, math.exp(lf), lq, math.exp(lq), lq - lf))
print("greedy agreement  %d of %d generations identical; %d of %d F32 tokens (%.1f%%) before the first divergence"
      % (same, len(a), agree, tot, 100.0 * agree / max(tot, 1)))
PY
