#!/usr/bin/env bash
# The prover recipe end to end at toy size: tasks inputs (a held-out set and
# training sets that exclude it), a one-digit-per-token tokenizer, pretraining,
# SFT from the pretrained model with document windows, the exported model
# folder, `lemma prove` on the held-out set with the local engine, and a
# bit-identical `lemma build --check`.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/; s/"max_position_embeddings": *[0-9]+/"max_position_embeddings": 1024/' \
      tests/golden/v3_f32/config.json | tr -d '\n')
write_recipe() { # $1 $2 $3: sha256 fields of heldout, text, sft
cat > "$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-prover",
 "inputs": {
  "heldout": {"builtin": "tasks", "set": "problems", "seed": 9, "n": 6, "difficulty": 1$1},
  "text": {"builtin": "tasks", "set": "text", "seed": 1, "n": 60, "exclude": "heldout"$2},
  "sft": {"builtin": "tasks", "set": "sft", "seed": 2, "n": 60, "exclude": "heldout", "templates": "templates.json"$3}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text", "sft"], "vocab_size": 400, "digit_group": 1},
  {"name": "data-pt", "kind": "data", "inputs": ["text", "tok"], "val_fraction": 0.05},
  {"name": "data-sft", "kind": "data", "inputs": ["sft", "tok"], "val_fraction": 0.05, "windows": "document"},
  {"name": "pt", "kind": "pretrain", "inputs": ["data-pt", "tok"], "config": $cfg,
   "steps": 4, "batch": 2, "seq": 64, "lr": 0.003, "eval_batches": 1},
  {"name": "prover", "kind": "sft", "inputs": ["data-sft", "tok", "pt"],
   "steps": 4, "batch": 2, "seq": 128, "lr": 0.003, "eval_batches": 1, "export": true}
 ]}
JSON
}
cp templates/lemma.json "$tmp/templates.json"
h1="" h2="" h3=""
for i in 1 2 3 4; do
    write_recipe "$h1" "$h2" "$h3"
    "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --quiet >"$tmp/out" 2>&1 && break
    name=$(grep -o 'input [a-z]*: the recipe gives no' "$tmp/out" | awk '{print $2}' | tr -d :)
    sha=$(grep -o 'hashes to [0-9a-f]\{64\}' "$tmp/out" | awk '{print $3}')
    [ -n "$name" ] || break
    eval "h_$name=\", \\\"sha256\\\": \\\"$sha\\\"\""
    h1=${h_heldout:-}; h2=${h_text:-}; h3=${h_sft:-}
done
check "the prover recipe builds" test -f "$tmp/b/prover/model.safetensors"
[ -f "$tmp/b/prover/model.safetensors" ] || sed 's/^/  /' "$tmp/out" | head
check "the held-out set has 6 problems" test "$(wc -l <"$tmp/b/inputs/heldout.jsonl")" -eq 6
# no held-out question in the training sets
leak=0
while IFS= read -r q; do
    grep -qF -- "$q" "$tmp/b/inputs/text.jsonl" "$tmp/b/inputs/sft.jsonl" && leak=1
done < <(python3 -c 'import json,sys
for l in open(sys.argv[1]): print(json.dumps(json.loads(l)["question"])[1:-1])' "$tmp/b/inputs/heldout.jsonl")
[ $leak -eq 0 ] && ok "training sets exclude the held-out questions" || bad "training sets exclude the held-out questions"
check "every held-out reference proof checks as 1" \
    sh -c "'$LEMMA' check '$tmp/b/inputs/heldout.jsonl' | grep -c '\"score\":1[,}]' | grep -qx 6"
check "SFT examples carry loss on the answer only" grep -q '"loss": false}, {"text": "## Solution' "$tmp/b/inputs/sft.jsonl"
check "the SFT data uses document windows" grep -q '"windows": "document"' "$tmp/b/data-sft/index.json"
check "the sft stage starts from the pretrained model" grep -q '"init"' "$tmp/b/prover/run.json"
check "the exported folder is a model" "$LEMMA" info "$tmp/b/prover"
check "prove on the held-out set with the built model" \
    "$LEMMA" prove "$tmp/b/inputs/heldout.jsonl" --model "$tmp/b/prover" --out "$tmp/p" --samples 2 \
    --verifications 1 --rounds 1 --max-tokens 48 --threads 1 --quiet
check "the report has the checker's columns" grep -q 'checker' "$tmp/p/report.md"
check "--check rebuilds every artifact bit for bit" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --check --threads 2 --quiet
echo "test_build_prover.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
