#!/usr/bin/env bash
# A whole recipe -- generated corpus, tokenizer, data, pretraining -- builds,
# reuses itself, and rebuilds bit for bit: `lemma build --check` (at another
# thread count) finds every artifact identical.
set -u
cd "$(dirname "$0")/../.."
BIN=${LEMMA_BIN:-./lemma}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 300/' tests/golden/v3_f32/config.json | tr -d '\n')
write_recipe() { # $1: sha256 field of the input; $2: more keys of the pretrain stage
cat > "$dir/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-pretrain",
 "inputs": {"text": {"builtin": "synth-text", "lines": 3000, "seed": 1$1}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text"], "vocab_size": 300},
  {"name": "data", "kind": "data", "inputs": ["text", "tok"], "doc_sep": "line", "val_fraction": 0.05},
  {"name": "model", "kind": "pretrain", "inputs": ["data", "tok"], "config": $cfg,
   "steps": 12, "batch": 4, "micro_batch": 2, "seq": 32, "lr": 0.003, "save_every": 4, "eval_every": 6, "eval_batches": 2${2:-}}
 ]}
JSON
}
write_recipe ""
sha=$("$BIN" build "$dir/r.json" --out "$dir/b" 2>&1 | grep -o '[0-9a-f]\{64\}' | head -1)
write_recipe ", \"sha256\": \"$sha\""
"$BIN" build "$dir/r.json" --out "$dir/b" --threads 2 --quiet >"$dir/out" 2>&1; rc=$?
check "recipe with a pretrain stage builds" '[ $rc -eq 0 ] && [ -f "$dir/b/model/latest/model.safetensors" ]'
check "lock lists the weights" 'grep -q "model/ckpt-00000012/model.safetensors" "$dir/b/lemma.lock"'
check "metrics are kept but not hashed" '[ -f "$dir/b/model/metrics.jsonl" ] && ! grep -q "metrics.jsonl" "$dir/b/lemma.lock"'
"$BIN" build "$dir/r.json" --out "$dir/b" --quiet >"$dir/out" 2>&1
check "a rerun reuses every stage" 'grep -q "0 stages built, 3 up to date" "$dir/out"'
"$BIN" build "$dir/r.json" --out "$dir/b" --check --threads 1 --quiet >"$dir/out" 2>&1; rc=$?
check "--check at 1 thread: every hash identical" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || cat "$dir/out"
out=$("$BIN" generate "$dir/b/model/latest" -p "The" -n 6 --seed 3 2>/dev/null); rc=$?
check "the built model generates text" '[ $rc -eq 0 ] && [ -n "$out" ]'

# a build killed before the run started (its partial folder holds config.json
# only): the next build clears it, saying so, and trains
key=$(grep -o '"model": {"kind": "pretrain", "key": "[0-9a-f]*' "$dir/b/lemma.lock" | grep -o '[0-9a-f]*$' | cut -c1-16)
part="$dir/b/.model.partial-$key"
mkdir "$part" && cp "$dir/b/model/config.json" "$dir/b/model/.lemma-made" "$part/" && rm -rf "$dir/b/model"
"$BIN" build "$dir/r.json" --out "$dir/b" --quiet >"$dir/out" 2>&1; rc=$?
check "a partial run that never started is cleared and rebuilt" '[ $rc -eq 0 ] && [ -f "$dir/b/model/latest/model.safetensors" ]'
check "...saying so" 'grep -q "removing $part/config.json (from a run that never started)" "$dir/out"'
[ $rc -eq 0 ] || cat "$dir/out"

# "precision": "bf16": a stage of its own (another key), trained in bf16; a bad value is one line
write_recipe ", \"sha256\": \"$sha\"" ', "precision": "bf16"'
"$BIN" build "$dir/r.json" --out "$dir/b" --quiet >"$dir/out" 2>&1; rc=$?
key2=$(grep -o '"model": {"kind": "pretrain", "key": "[0-9a-f]*' "$dir/b/lemma.lock" | grep -o '[0-9a-f]*$' | cut -c1-16)
check "precision bf16: the model stage rebuilds under a new key, in bf16" '[ $rc -eq 0 ] && [ "$key2" != "$key" ] && grep -q "\"precision\": \"bf16\"" "$dir/b/model/run.json" && grep -q "1 stage built, 2 up to date" "$dir/out"'
write_recipe ", \"sha256\": \"$sha\"" ', "precision": "fp16"'
"$BIN" build "$dir/r.json" --out "$dir/b" --quiet >"$dir/out" 2>&1; rc=$?
check "precision fp16: a one-line error naming the stage" '[ $rc -ne 0 ] && [ "$(grep -c "lemma build:" "$dir/out")" -eq 1 ] && grep "lemma build:" "$dir/out" | grep -q "stage model: precision must be f32 or bf16 (got \"fp16\")"'
[ $rc -ne 0 ] || cat "$dir/out"

echo "test_build_pretrain: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
