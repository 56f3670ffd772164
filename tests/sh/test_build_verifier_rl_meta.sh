#!/usr/bin/env bash
# The verifier_rl stage with meta-verification (docs/post-training.md): a
# share of the prompts are meta-verification prompts (checker-made
# verifications to judge) and the verifier's reward is multiplied by R_meta,
# the current model's rating of its own verification (eq. 3). At toy size
# after a tiny SFT that includes meta-verification examples: bit-identical at
# 1 and 2 threads, resume after kill -9 inside the stage bit-identical (both
# sampling passes included), meta off and "p_meta_prompts": 0 the same bytes,
# and bad parameters refused with one line.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/; s/"max_position_embeddings": *[0-9]+/"max_position_embeddings": 1024/' \
      tests/golden/v3_f32/config.json | tr -d '\n')
vrl='"templates": "templates.json", "domains": "add", "steps": 6, "prompts": 4, "group": 2, "max_tokens": 120, "seq": 512, "lr": 0.001, "seed": 5, "save_every": 2'
meta='"meta": true, "p_meta_prompts": 0.5, "meta_reward": true, "meta_samples": 2, "meta_max_tokens": 100'
write_recipe() { # $1 $2 $3: sha256 fields of heldout, text, sft; $4: the verifier_rl stage's inputs and keys
cat > "$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-verifier-rl-meta",
 "inputs": {
  "heldout": {"builtin": "tasks", "set": "problems", "seed": 9, "n": 6, "difficulty": 1$1},
  "text": {"builtin": "tasks", "set": "text", "seed": 1, "n": 60, "exclude": "heldout"$2},
  "sft": {"builtin": "tasks", "set": "sft", "seed": 2, "n": 300, "domains": "add", "p_generate": 0, "p_meta": 0.5, "exclude": "heldout", "templates": "templates.json"$3}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text", "sft"], "vocab_size": 400, "digit_group": 1},
  {"name": "data-pt", "kind": "data", "inputs": ["text", "tok"], "val_fraction": 0.05},
  {"name": "data-sft", "kind": "data", "inputs": ["sft", "tok"], "val_fraction": 0.05, "windows": "document"},
  {"name": "pt", "kind": "pretrain", "inputs": ["data-pt", "tok"], "config": $cfg,
   "steps": 2, "batch": 2, "seq": 64, "lr": 0.003, "eval_batches": 1},
  {"name": "prover", "kind": "sft", "inputs": ["data-sft", "tok", "pt"],
   "steps": 200, "batch": 4, "seq": 512, "lr": 0.01, "warmup": 10, "eval_batches": 1, "export": true},
  {"name": "vrl", "kind": "verifier_rl", $4}
 ]}
JSON
}
cp templates/lemma.json "$tmp/templates.json"
good="\"inputs\": [\"prover\", \"heldout\"], $vrl, $meta"
h1="" h2="" h3=""
for i in 1 2 3 4; do
    write_recipe "$h1" "$h2" "$h3" "$good"
    "$LEMMA" build "$tmp/r.json" --out "$tmp/a" --quiet >"$tmp/out" 2>&1 && break
    name=$(grep -o 'input [a-z]*: the recipe gives no' "$tmp/out" | awk '{print $2}' | tr -d :)
    sha=$(grep -o 'hashes to [0-9a-f]\{64\}' "$tmp/out" | awk '{print $3}')
    [ -n "$name" ] || break
    eval "h_$name=\", \\\"sha256\\\": \\\"$sha\\\"\""
    h1=${h_heldout:-}; h2=${h_text:-}; h3=${h_sft:-}
done
check "the recipe with meta-verification builds" test -f "$tmp/a/vrl/model.safetensors"
[ -f "$tmp/a/vrl/model.safetensors" ] || sed 's/^/  /' "$tmp/out" | head
check "the stage trained: its weights differ from the input model's" \
    sh -c "! cmp -s '$tmp/a/vrl/model.safetensors' '$tmp/a/prover/model.safetensors'"
check "metrics: meta prompts mixed in, R_meta in [0, 1], both meta passes timed" python3 - "$tmp/a/vrl/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert len(rs) == 6, rs
n_meta = sum(r["meta_samples"] for r in rs)
assert 0 < n_meta < 6 * 8, n_meta                       # about half of the 48 samples
for r in rs:
    assert r["meta_samples"] % 2 == 0                     # whole groups
    assert 0 <= r["r_meta"] <= 1 and 0 <= r["faithful"] <= 1, r
    assert r["meta_s"] >= 0
    # R = R_format · R_score · R_meta <= R_meta, sample by sample
    assert r["verify_reward"] <= r["r_meta"] + 1e-9, r
    if r["meta_samples"]: assert 0 <= r["meta_format"] <= 1 and 0 <= r["meta_agreement"] <= r["meta_format"], r
# the SFT taught the meta format: the meta prompts are answered in it at least once
assert max(r["meta_format"] for r in rs if r["meta_samples"]) > 0, rs
# and the verifier's own reward would not be 0 without R_meta: the check above bites
assert max(r["agreement"] for r in rs) > 0, rs
PY

# 1 and 2 threads: the same bytes
cp -r "$tmp/a" "$tmp/b"; rm -rf "$tmp/b/vrl"
check "2 threads build the same lock" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --threads 2 --quiet
check "...bit-identical to 1 thread" cmp "$tmp/a/lemma.lock" "$tmp/b/lemma.lock"

# kill -9 inside the stage, after a checkpoint, then build again: resumes and ends bit-identical
cp -r "$tmp/a" "$tmp/k"; rm -rf "$tmp/k/vrl"
LEMMA_TEST_CRASH_AFTER_CHECKPOINT=vrl:2 "$LEMMA" build "$tmp/r.json" --out "$tmp/k" >"$tmp/k.out" 2>&1; rc=$?
seen=0
[ $rc -eq 137 ] && ls -d "$tmp"/k/.vrl.partial-*/ckpt-00000002 >/dev/null 2>&1 && seen=1
[ $seen -eq 1 ] && [ ! -e "$tmp/k/vrl" ] && ok "killed inside the stage after its step-2 checkpoint" \
    || bad "killed inside the stage after its step-2 checkpoint (seen=$seen)"
check "the build after kill -9 succeeds" sh -c "'$LEMMA' build '$tmp/r.json' --out '$tmp/k' >'$tmp/k2.out' 2>&1"
check "...resuming the stage from its checkpoint" grep -q 'resuming vrl at step 2 of 6' "$tmp/k2.out"
check "...and ends bit-identical to the uninterrupted build" cmp "$tmp/a/lemma.lock" "$tmp/k/lemma.lock"
fields() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); print([r[k] for k in ("step", "reward_mean", "agreement", "faithful", "meta_agreement", "r_meta", "r_meta_agreement")])' "$1"; }
fields "$tmp/a/vrl/metrics.jsonl" >"$tmp/ra"
fields "$tmp/k/vrl/metrics.jsonl" >"$tmp/rk"
check "...the same rewards and R_meta as the uninterrupted build" cmp "$tmp/ra" "$tmp/rk"

# meta off vs "meta": true with no meta prompts and no R_meta: the same bytes
# (the meta draws use streams of their own)
cp -r "$tmp/a" "$tmp/off"; rm -rf "$tmp/off/vrl"
write_recipe "$h1" "$h2" "$h3" "\"inputs\": [\"prover\", \"heldout\"], $vrl"
check "meta off builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/off" --quiet
cp "$tmp/off/vrl/model.safetensors" "$tmp/off.st"
write_recipe "$h1" "$h2" "$h3" "\"inputs\": [\"prover\", \"heldout\"], $vrl, \"meta\": true, \"p_meta_prompts\": 0"
check "\"meta\": true with p_meta_prompts 0 builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/off" --quiet
check "...bit-identical to meta off" cmp "$tmp/off.st" "$tmp/off/vrl/model.safetensors"
check "...and R_meta changes the training" sh -c "! cmp -s '$tmp/off.st' '$tmp/a/vrl/model.safetensors'"

# bad parameters: one clear line each
bad_param() { # name, expected message, stage members
    write_recipe "$h1" "$h2" "$h3" "$3"
    check_fails "$1" "$2" "$LEMMA" build "$tmp/r.json" --out "$tmp/off" --quiet
}
bad_param "p_meta_prompts without meta refused" '"p_meta_prompts" needs "meta": true' \
    "\"inputs\": [\"prover\"], \"p_meta_prompts\": 0.5"
bad_param "meta_samples without meta_reward refused" '"meta_samples" and "meta_max_tokens" need "meta_reward": true' \
    "\"inputs\": [\"prover\"], \"meta\": true, \"meta_samples\": 4"
bad_param "p_meta_prompts beyond 1 refused" '"p_meta_prompts": expected a number' \
    "\"inputs\": [\"prover\"], \"meta\": true, \"p_meta_prompts\": 1.5"
bad_param "meta_samples 0 refused" '"meta_samples": expected an integer in \[1, 64\]' \
    "\"inputs\": [\"prover\"], \"meta_reward\": true, \"meta_samples\": 0"
bad_param "only meta prompts with meta_reward refused" '"p_meta_prompts" 1 leaves no verification prompt' \
    "\"inputs\": [\"prover\"], \"meta\": true, \"p_meta_prompts\": 1, \"meta_reward\": true"
bad_param "meta as a string refused" '"meta": expected' "\"inputs\": [\"prover\"], \"meta\": \"yes\""
bad_param "meta prompts too long for the model refused" "exceed the model's max_position_embeddings 1024" \
    "\"inputs\": [\"prover\"], $vrl, \"meta_reward\": true, \"meta_max_tokens\": 1000"

echo "test_build_verifier_rl_meta.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
