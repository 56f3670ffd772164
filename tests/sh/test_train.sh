#!/usr/bin/env bash
# lemma train end to end on a tiny DeepSeek-V3 model: determinism across
# thread counts, SIGKILL at a random step then --resume ends bit-identical,
# SIGINT checkpoints and exits 130, metrics and latest/ contracts, plot,
# --precision bf16 (deterministic, resumable, recorded in run.json).
set -u
cd "$(dirname "$0")/../.."
BIN=${LEMMA_BIN:-./lemma}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

dir=$(mktemp -d); trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
cat src/*/*.c > "$dir/corpus.txt"
"$BIN" tokenizer train "$dir/corpus.txt" --vocab 320 --out "$dir/tok" --quiet || exit 1
"$BIN" data "$dir/corpus.txt" --tokenizer "$dir/tok" --out "$dir/data" --doc-sep blank >/dev/null 2>&1 || exit 1
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 320/' tests/golden/v3_f32/config.json > "$dir/cfg.json"
STEPS=60
args=(--config "$dir/cfg.json" --data "$dir/data" --tokenizer "$dir/tok" --steps $STEPS --batch 4 --micro-batch 2 --seq 32 --lr 3e-3
      --save-every 5 --eval-every 20 --eval-batches 2 --log-every 5 --seed 11 --quiet)
sha() { sha256sum "$1/latest/model.safetensors" | cut -d' ' -f1; }

"$BIN" train "${args[@]}" --out "$dir/a" --threads 2; rc=$?
check "train runs (2 threads)" '[ $rc -eq 0 ] && [ -f "$dir/a/latest/model.safetensors" ]'
"$BIN" train "${args[@]}" --out "$dir/b" --threads 1
check "1 and 2 threads give identical weights" '[ "$(sha "$dir/a")" = "$(sha "$dir/b")" ]'
check "trainer_state.json has the step" 'grep -q "\"step\": $STEPS" "$dir/a/latest/trainer_state.json"'
check "latest is a loadable HF model dir with the tokenizer" '"$BIN" info "$dir/a/latest" >/dev/null && [ -f "$dir/a/latest/tokenizer.json" ]'
out=$("$BIN" generate "$dir/a/latest" -p "int " -n 8 --seed 1 2>/dev/null); rc=$?
check "generate from latest/" '[ $rc -eq 0 ] && [ -n "$out" ]'
first=$(head -1 "$dir/a/metrics.jsonl"); last=$(tail -1 "$dir/a/metrics.jsonl")
check "metrics lines carry step, loss, lr, tokens_per_s" '[[ "$last" == *"\"step\": $STEPS"* && "$last" == *"\"loss\""* && "$last" == *"\"lr\""* && "$last" == *"\"tokens_per_s\""* && "$last" == *"val_loss"* ]]'
l0=$(sed -E 's/.*"loss": ([0-9.]+).*/\1/' <<<"$first"); l1=$(sed -E 's/.*"loss": ([0-9.]+).*/\1/' <<<"$last")
check "loss goes down ($l0 -> $l1)" 'awk -v a="$l0" -v b="$l1" "BEGIN{exit !(b < a - 0.3)}"'

# SIGKILL after a random checkpoint, then resume
k=$(( (RANDOM % 8 + 2) * 5 ))
"$BIN" train "${args[@]}" --out "$dir/c" --threads 2 & pid=$!
for _ in $(seq 1 600); do [ -d "$dir/c/ckpt-$(printf %08d $k)" ] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
"$BIN" train --resume "$dir/c" --threads 1 --quiet; rc=$?
check "SIGKILL after step >= $k, --resume completes" '[ $rc -eq 0 ]'
check "killed and resumed run ends bit-identical" '[ "$(sha "$dir/a")" = "$(sha "$dir/c")" ]'
check "no duplicate metrics steps after resume" '[ "$(grep -o "\"step\": [0-9]*" "$dir/c/metrics.jsonl" | sort | uniq -d | wc -l)" -eq 0 ]'

# SIGINT: checkpoint and exit 130
"$BIN" train "${args[@]}" --out "$dir/d" --threads 2 2>"$dir/d.err" & pid=$!
for _ in $(seq 1 600); do [ -d "$dir/d/ckpt-00000010" ] && break; sleep 0.02; done
kill -INT $pid; wait $pid; rc=$?
if [ $rc -eq 0 ]; then
    ok "SIGINT: the run had already finished (nothing to check)"
else
    check "SIGINT exits 130 with a resume hint" '[ $rc -eq 130 ] && grep -q "interrupted at step" "$dir/d.err"'
fi
"$BIN" train --resume "$dir/d" --quiet
check "interrupted run resumes to identical weights" '[ "$(sha "$dir/a")" = "$(sha "$dir/d")" ]'
"$BIN" train --resume "$dir/a" --quiet 2>/dev/null; rc=$?
check "resume of a finished run is a no-op" '[ $rc -eq 0 ] && [ "$(sha "$dir/a")" = "$(sha "$dir/b")" ]'

# --init from a trained model; a run killed before its first checkpoint
# (only run.json and config.json written) resumes from the same init
"$BIN" train --init "$dir/a/latest" --data "$dir/data" --out "$dir/f" --steps 4 --batch 2 --seq 32 --quiet
mkdir -p "$dir/g" && cp "$dir/f/run.json" "$dir/f/config.json" "$dir/g/"
"$BIN" train --resume "$dir/g" --quiet 2>/dev/null
check "--init run; resume before any checkpoint restarts from the init" '[ -n "$(sha "$dir/f")" ] && [ "$(sha "$dir/f")" = "$(sha "$dir/g")" ]'
# --precision bf16: recorded in run.json, 1 and 2 threads identical, a
# resume after a kill identical too, and different weights from fp32
bargs=("${args[@]}" --steps 20 --precision bf16)
"$BIN" train "${bargs[@]}" --out "$dir/h" --threads 2; rc=$?
"$BIN" train "${bargs[@]}" --out "$dir/i" --threads 1
check "bf16: runs, run.json says so, 1 and 2 threads identical" '[ $rc -eq 0 ] && grep -q "\"precision\": \"bf16\"" "$dir/h/run.json" && [ "$(sha "$dir/h")" = "$(sha "$dir/i")" ]'
"$BIN" train "${args[@]}" --steps 20 --out "$dir/j" --threads 2
check "bf16 weights differ from fp32; fp32 run.json has no precision key" '[ "$(sha "$dir/h")" != "$(sha "$dir/j")" ] && ! grep -q precision "$dir/j/run.json"'
rm -rf "$dir/i/latest" "$dir/i"/ckpt-0000002*; "$BIN" train --resume "$dir/i" --threads 2 --quiet; rc=$?
check "bf16: resume from step 15 ends identical" '[ $rc -eq 0 ] && [ "$(sha "$dir/h")" = "$(sha "$dir/i")" ]'
# a bf16 run from before the pair chain (no bf16_arith in run.json: version 1) is refused on resume
grep -q '"bf16_arith": 2' "$dir/i/run.json"; has=$?
grep -v '"bf16_arith"' "$dir/i/run.json" | sed 's/"precision": "bf16",/"precision": "bf16"/' >"$dir/i/run.json.tmp" && mv "$dir/i/run.json.tmp" "$dir/i/run.json"
"$BIN" train --resume "$dir/i" --quiet 2>"$dir/e6"; rc=$?
check "bf16: run.json records bf16_arith 2; an older bf16 run's resume is one clear refusal" '[ $has -eq 0 ] && [ $rc -ne 0 ] && [ "$(wc -l <"$dir/e6")" -eq 1 ] && grep -q "bf16 arithmetic version 1, this lemma computes version 2" "$dir/e6"'
"$BIN" train "${args[@]}" --out "$dir/k" --precision fp16 2>"$dir/e4"; rc=$?
check "bad --precision is a usage error" '[ $rc -eq 2 ] && grep -q "precision" "$dir/e4"'
"$BIN" train "${args[@]}" --out "$dir/m" --precision bf16 --mtp-weight 0.3 2>"$dir/e5"; rc=$?
check "bf16 with an MTP loss: one clear refusal" '[ $rc -ne 0 ] && [ "$(wc -l <"$dir/e5")" -eq 1 ] && grep -q "MTP" "$dir/e5"'

"$BIN" plot "$dir/a" --out "$dir/a.svg" >/dev/null 2>&1
check "plot draws the run" 'grep -q "<svg" "$dir/a.svg"'

# errors
"$BIN" train "${args[@]}" --out "$dir/a" 2>"$dir/e1"; rc=$?
check "refuses to overwrite a run" '[ $rc -ne 0 ] && grep -q "already holds a run" "$dir/e1"'
"$BIN" train --config "$dir/cfg.json" --data "$dir/nope" --out "$dir/e" --steps 2 2>"$dir/e2"; rc=$?
check "missing data dir is a clear error" '[ $rc -ne 0 ] && [ "$(wc -l < "$dir/e2")" -eq 1 ]'
"$BIN" train --resume "$dir/nope" 2>"$dir/e3"; rc=$?
check "resume of a non-run is a clear error" '[ $rc -ne 0 ] && grep -q "not a run directory" "$dir/e3"'

echo "test_train: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
