#!/usr/bin/env bash
# Same bytes on every kernel path (docs/arithmetic.md): a tiny recipe --
# corpus, tokenizer, data, pretraining -- built with LEMMA_ISA=scalar, avx2
# and avx512 (each capped to what this CPU has) gives one lemma.lock. The
# lock records the arithmetic version; a lock of another version is rebuilt
# with one clear line saying why.
set -u
cd "$(dirname "$0")/../.."
BIN=${LEMMA_BIN:-./lemma}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 300/' tests/golden/v3_f32/config.json | tr -d '\n')
cat > "$dir/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-isa",
 "inputs": {"text": {"builtin": "synth-text", "lines": 1500, "seed": 2, "sha256": "64057e4051b64737d09f10a34aa2ca80beee1b18aca1551730b09efcdebebd49"}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text"], "vocab_size": 300},
  {"name": "data", "kind": "data", "inputs": ["text", "tok"], "doc_sep": "line", "val_fraction": 0.05},
  {"name": "model", "kind": "pretrain", "inputs": ["data", "tok"], "config": $cfg,
   "steps": 6, "batch": 4, "micro_batch": 2, "seq": 32, "lr": 0.003, "save_every": 6, "eval_every": 6, "eval_batches": 1}
 ]}
JSON
for isa in scalar avx2 avx512; do
    LEMMA_ISA=$isa "$BIN" build "$dir/r.json" --out "$dir/$isa" --threads 2 --quiet >"$dir/out-$isa" 2>&1; rc=$?
    check "builds with LEMMA_ISA=$isa" '[ $rc -eq 0 ] && [ -f "$dir/$isa/model/latest/model.safetensors" ]'
    [ $rc -eq 0 ] || cat "$dir/out-$isa"
done
check "scalar and avx2 give the same lemma.lock" 'cmp -s "$dir/scalar/lemma.lock" "$dir/avx2/lemma.lock"'
check "scalar and avx512 give the same lemma.lock" 'cmp -s "$dir/scalar/lemma.lock" "$dir/avx512/lemma.lock"'
for isa in scalar avx2 avx512; do
    echo "  $isa: model $(grep -o '"model": {"kind": "pretrain", "key": "[0-9a-f]*", "outputs_sha256": "[0-9a-f]*' "$dir/$isa/lemma.lock" | grep -o '[0-9a-f]*$')"
done
check "the lock records the arithmetic version" 'grep -q "\"arith\": [0-9]" "$dir/scalar/lemma.lock"'

# a lock written with another arithmetic version: one line, then a rebuild to the same bytes
cp "$dir/scalar/lemma.lock" "$dir/lock.want"
sed -i -E 's/"arith": [0-9]+/"arith": 1/' "$dir/scalar/lemma.lock"
"$BIN" build "$dir/r.json" --out "$dir/scalar" --threads 2 >"$dir/out" 2>&1; rc=$?
check "an old arithmetic version is named in one line" \
    'grep -q "lemma.lock was built with arithmetic version 1, this lemma computes version [0-9]*: stages will be rebuilt" "$dir/out"'
check "...and every stage rebuilds to the same lock" '[ $rc -eq 0 ] && cmp -s "$dir/scalar/lemma.lock" "$dir/lock.want"'
[ $rc -eq 0 ] || cat "$dir/out"
sed -i -E 's/"arith": [0-9]+/"arith": "two"/' "$dir/scalar/lemma.lock"
"$BIN" build "$dir/r.json" --out "$dir/scalar" >"$dir/out" 2>&1; rc=$?
check "a malformed arithmetic version is refused with one line" \
    '[ $rc -ne 0 ] && grep -q "\"arith\" must be a positive integer" "$dir/out" && [ $(wc -l <"$dir/out") -eq 1 ]'

echo "test_build_isa: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
