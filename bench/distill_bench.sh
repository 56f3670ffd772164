#!/usr/bin/env bash
# distill_bench.sh — logit-distillation throughput, lemma vs PyTorch, in one
# run: build/release/bench/bench_distill (lm_distill_step: the frozen
# teacher's forward + the student's forward, backward and AdamW on
# tau^2 KL) and bench/torch_train.py --distill-teacher (the same presets,
# ids, loss and optimiser in PyTorch), on the student preset's batch and
# seq, at each thread count. Prints a table with the ratio and the BLAS
# library PyTorch used (its matmuls go to libblas.so.3: with Debian's
# reference BLAS rather than OpenBLAS the anchor is ~15x slow, and the
# table says so).
#
# Environment: DISTILL_BENCH_STUDENT (bench-s), DISTILL_BENCH_TEACHER
# (= the student), DISTILL_BENCH_THREADS ("1 2"), DISTILL_BENCH_STEPS (3),
# DISTILL_BENCH_NO_TORCH=1, DISTILL_BENCH_TIMEOUT (600 s per command).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
SHARED=${LEMMA_SHARED:-../shared}
P=$SHARED/data/bench-presets
S=${DISTILL_BENCH_STUDENT:-bench-s}
T=${DISTILL_BENCH_TEACHER:-$S}
THREADS=${DISTILL_BENCH_THREADS:-1 2}
STEPS=${DISTILL_BENCH_STEPS:-3}
TMO=${DISTILL_BENCH_TIMEOUT:-600}
BIN=$BUILD/bench/bench_distill
TORCH_PY=/usr/bin/python3; [ -x "$TORCH_PY" ] || TORCH_PY=python3
. bench/torch_env.sh  # PyTorch on OpenBLAS when installed: OPENBLAS_DIR, torch_env
[ -f "$P/$S.json" ] && [ -f "$P/$T.json" ] || { echo "distill_bench: presets $S/$T not found in $P" >&2; exit 1; }
make --no-print-directory -s "$BIN" >&2 || [ -x "$BIN" ] || { echo "distill_bench: cannot build $BIN" >&2; exit 1; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
for t in $THREADS; do
    timeout "$TMO" "$BIN" "$P/$S.json" --teacher "$P/$T.json" --threads "$t" --steps "$STEPS" 2>/dev/null |
        grep -E '^\{' >>"$out" || echo "   bench_distill failed at $t threads" >&2
    if [ "${DISTILL_BENCH_NO_TORCH:-0}" != 1 ]; then
        env "${torch_env[@]}" OMP_WAIT_POLICY=PASSIVE timeout "$TMO" "$TORCH_PY" bench/torch_train.py "$P/$S.json" \
            --distill-teacher "$P/$T.json" --threads "$t" --steps "$STEPS" 2>/dev/null |
            grep -E '^\{' | tail -n 1 >>"$out" || echo "   torch_train.py --distill-teacher failed at $t threads" >&2
    fi
done
python3 - "$out" "$S" "$T" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("logit distillation, student %s, teacher %s (tokens/s of whole steps: teacher forward + student step)"
      % (sys.argv[2], sys.argv[3]))
print("| threads | lemma tok/s | PyTorch tok/s | lemma / PyTorch | PyTorch BLAS |")
print("| --- | --- | --- | --- | --- |")
for t in sorted({r["threads"] for r in rs}):
    L = next((r for r in rs if r["bench"] == "lemma_distill" and r["threads"] == t), None)
    P = next((r for r in rs if r["bench"] == "torch_distill" and r["threads"] == t), None)
    blas = P["blas"].rsplit("/", 1)[-1] if P else "-"
    if P and "openblas" not in P["blas"]:
        blas += " (reference BLAS, not OpenBLAS: the anchor is slow)"
    print("| %d | %s | %s | %s | %s |" % (t, "%.0f" % L["tokens_per_s"] if L else "-",
          "%.0f" % P["tokens_per_s"] if P else "-",
          "%.2f" % (L["tokens_per_s"] / P["tokens_per_s"]) if L and P else "-", blas))
PY
