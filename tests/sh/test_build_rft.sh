#!/usr/bin/env bash
# The rft stage at toy size (docs/post-training.md): rejection-sampling
# fine-tuning after a tiny SFT on one domain. The model samples proofs, the
# checker (or the frozen input model) decides which are kept, and the model
# is fine-tuned on them plus checker-labelled self-evaluations and
# verifications of its own proofs. Bit-identical at 1 and 2 threads, resume
# after kill -9 inside the stage ends bit-identical (sampling included),
# metrics and plots, the verifier-accepted variant, and bad parameters
# refused with one line.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/; s/"max_position_embeddings": *[0-9]+/"max_position_embeddings": 1024/' \
      tests/golden/v3_f32/config.json | tr -d '\n')
rft='"templates": "templates.json", "domains": "add", "steps": 6, "prompts": 2, "group": 4, "max_tokens": 200, "seq": 448, "micro_batch": 4, "temperature": 0.3, "lr": 0.001, "seed": 5, "save_every": 2'
write_recipe() { # $1 $2 $3: sha256 fields of heldout, text, sft; $4: the rft stage's inputs and keys
cat > "$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-rft",
 "inputs": {
  "heldout": {"builtin": "tasks", "set": "problems", "seed": 9, "n": 6, "difficulty": 1$1},
  "text": {"builtin": "tasks", "set": "text", "seed": 1, "n": 60, "exclude": "heldout"$2},
  "sft": {"builtin": "tasks", "set": "sft", "seed": 2, "n": 300, "domains": "add", "exclude": "heldout", "templates": "templates.json"$3}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text", "sft"], "vocab_size": 400, "digit_group": 1},
  {"name": "data-pt", "kind": "data", "inputs": ["text", "tok"], "val_fraction": 0.05},
  {"name": "data-sft", "kind": "data", "inputs": ["sft", "tok"], "val_fraction": 0.05, "windows": "document"},
  {"name": "pt", "kind": "pretrain", "inputs": ["data-pt", "tok"], "config": $cfg,
   "steps": 2, "batch": 2, "seq": 64, "lr": 0.003, "eval_batches": 1},
  {"name": "prover", "kind": "sft", "inputs": ["data-sft", "tok", "pt"],
   "steps": 150, "batch": 4, "seq": 256, "lr": 0.01, "warmup": 10, "eval_batches": 1, "export": true},
  {"name": "rs", "kind": "rft", $4}
 ]}
JSON
}
cp templates/lemma.json "$tmp/templates.json"
good="\"inputs\": [\"prover\", \"heldout\"], $rft"
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
check "the recipe with an rft stage builds" test -f "$tmp/a/rs/model.safetensors"
[ -f "$tmp/a/rs/model.safetensors" ] || sed 's/^/  /' "$tmp/out" | head
check "the stage folder is a model" "$LEMMA" info "$tmp/a/rs"
check "the final checkpoint is kept" test -f "$tmp/a/rs/latest/optim_m.safetensors"
check "the stage trained: its weights differ from the input model's" \
    sh -c "! cmp -s '$tmp/a/rs/model.safetensors' '$tmp/a/prover/model.safetensors'"
check "metrics.jsonl has a line per step" test "$(wc -l <"$tmp/a/rs/metrics.jsonl")" -eq 6
# (the toy prover writes the format but never a correct sum: the checker
# keeps nothing, so its generation rows are checked with accept "verifier" below)
check "the model writes the format, and its rejected proofs become self-evaluation and verification rows" \
    python3 - "$tmp/a/rs/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert sum(r["verify_rows"] for r in rs) > 0 and sum(r["self_eval_rows"] for r in rs) > 0, rs
for r in rs:
    # accept "checker": kept = passed (and in the format, ended at EOS); nothing verified
    assert r["accepted"] <= r["pass"] + 1e-12 and r["verified"] == 0 and r["verifier_agreement"] is None, r
    # one generation or self-evaluation row per proof in the format, one verification row per proof
    assert r["gen_rows"] == round(r["accepted"] * 8) or r["too_long"] > 0, r
    assert r["gen_rows"] + r["self_eval_rows"] + r["too_long"] == round(r["format"] * 8), r
    # a verification row per proof in the format (one the pipeline would drop is not judged)
    assert r["verify_rows"] <= round(r["format"] * 8), r
    # a step with no row does not update (no loss); any row trains
    rows = r["gen_rows"] + r["self_eval_rows"] + r["verify_rows"]
    assert (rows == 0) == (r["trained_tokens"] == 0) == (r["loss"] is None), r
PY
check "the plots are written" grep -q '<svg' "$tmp/a/rs/rft.svg"

# 1 and 2 threads: the same bytes (only the stage runs again)
cp -r "$tmp/a" "$tmp/b"; rm -rf "$tmp/b/rs"
check "2 threads build the same lock" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --threads 2 --quiet
check "...bit-identical to 1 thread" cmp "$tmp/a/lemma.lock" "$tmp/b/lemma.lock"

# kill -9 inside the stage, after a checkpoint, then build again: resumes and ends bit-identical
cp -r "$tmp/a" "$tmp/k"; rm -rf "$tmp/k/rs"
LEMMA_TEST_CRASH_AFTER_CHECKPOINT=rs:2 "$LEMMA" build "$tmp/r.json" --out "$tmp/k" >"$tmp/k.out" 2>&1; rc=$?
seen=0
[ $rc -eq 137 ] && ls -d "$tmp"/k/.rs.partial-*/ckpt-00000002 >/dev/null 2>&1 && seen=1
[ $seen -eq 1 ] && [ ! -e "$tmp/k/rs" ] && ok "killed inside the stage after its step-2 checkpoint" \
    || bad "killed inside the stage after its step-2 checkpoint (seen=$seen)"
check "the build after kill -9 succeeds" sh -c "'$LEMMA' build '$tmp/r.json' --out '$tmp/k' >'$tmp/k2.out' 2>&1"
check "...resuming the stage from its checkpoint" grep -q 'resuming rs at step 2 of 6' "$tmp/k2.out"
check "...and ends bit-identical to the uninterrupted build" cmp "$tmp/a/lemma.lock" "$tmp/k/lemma.lock"
check "...with one metrics line per step" test "$(wc -l <"$tmp/k/rs/metrics.jsonl")" -eq 6
grep -o '"pass": [^,]*, "accepted": [^,]*' "$tmp/a/rs/metrics.jsonl" >"$tmp/ra"
grep -o '"pass": [^,]*, "accepted": [^,]*' "$tmp/k/rs/metrics.jsonl" >"$tmp/rk"
check "...the same samples kept as the uninterrupted build" cmp "$tmp/ra" "$tmp/rk"

# accept "verifier": the frozen input model judges; only generation rows
write_recipe "$h1" "$h2" "$h3" "$good, \"accept\": \"verifier\", \"verifications\": 2, \"verify_max_tokens\": 160, \"verify_seq\": 640, \"verify_examples\": false, \"self_eval_examples\": false"
cp -r "$tmp/a" "$tmp/v"
check "accept verifier, generation rows only, builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/v" --quiet
check "...and trains other weights" sh -c "! cmp -s '$tmp/a/rs/model.safetensors' '$tmp/v/rs/model.safetensors'"
check "...verifying the proofs, keeping some as generation rows, with no other rows" python3 - "$tmp/v/rs/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert sum(r["verified"] for r in rs) > 0 and sum(r["gen_rows"] for r in rs) > 0, rs
for r in rs:
    assert r["verify_rows"] == 0 and r["self_eval_rows"] == 0, r
    assert r["gen_rows"] + r["too_long"] == round(r["accepted"] * 8) and r["verified"] <= round(r["format"] * 8), r
PY

# bad parameters and inputs: one clear line each
cp -r "$tmp/a" "$tmp/bad"
bad_param() { # name, expected message, stage members
    write_recipe "$h1" "$h2" "$h3" "$3"
    check_fails "$1" "$2" "$LEMMA" build "$tmp/r.json" --out "$tmp/bad" --quiet
}
bad_param "an unknown accept refused" '"accept": expected "checker" (the exact checker) or "verifier"' "\"inputs\": [\"prover\"], \"accept\": \"oracle\""
bad_param "a policy-gradient key refused" '"beta_kl" is a policy-gradient option; an rft stage fine-tunes' "\"inputs\": [\"prover\"], \"beta_kl\": 0.04"
bad_param "no kind of row refused" 'are all false: nothing to train on' \
    "\"inputs\": [\"prover\"], \"gen_examples\": false, \"verify_examples\": false, \"self_eval_examples\": false"
bad_param "a non-boolean row switch refused" '"verify_examples": expected' "\"inputs\": [\"prover\"], \"verify_examples\": 1"
bad_param "verify_max_tokens beyond verify_seq refused" '"verify_max_tokens" 600 leaves no room for the proof in "verify_seq" 512' \
    "\"inputs\": [\"prover\"], \"verify_max_tokens\": 600, \"verify_seq\": 512"
bad_param "an unknown key refused" 'unknown key "p_flawed" for a rft stage' "\"inputs\": [\"prover\"], \"p_flawed\": 0.5"
bad_param "micro_batch not dividing the batch refused" '"micro_batch" 4 must divide prompts x group = 6' \
    "\"inputs\": [\"prover\"], \"prompts\": 2, \"group\": 3, \"micro_batch\": 4"
bad_param "a seq too short for the prompts refused" 'does not fit "seq" 64' "\"inputs\": [\"prover\"], \"seq\": 64, \"max_tokens\": 8"
bad_param "a missing input model refused" 'an rft stage takes one model to train' "\"inputs\": [\"heldout\"]"
bad_param "a data stage as input refused" 'an rft stage takes one model to train' "\"inputs\": [\"prover\", \"data-sft\"]"
bad_param "a missing templates file refused" 'nope.json' "\"inputs\": [\"prover\"], \"templates\": \"nope.json\""
check "the failed builds left the built stage alone" cmp "$tmp/a/rs/model.safetensors" "$tmp/bad/rs/model.safetensors"

echo "test_build_rft.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
