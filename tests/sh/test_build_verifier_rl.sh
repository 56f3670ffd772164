#!/usr/bin/env bash
# The verifier_rl stage at toy size (docs/post-training.md): GRPO on
# verification prompts after a tiny SFT on verification examples of one
# domain, long enough (150 steps, a few seconds) that the model writes the
# verification format and the rewards vary within groups. Bit-identical at 1 and 2 threads,
# resume after kill -9 inside the stage ends bit-identical (sampling
# included), metrics and plots, and bad parameters refused with one line.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/; s/"max_position_embeddings": *[0-9]+/"max_position_embeddings": 1024/' \
      tests/golden/v3_f32/config.json | tr -d '\n')
vrl='"templates": "templates.json", "domains": "add", "steps": 10, "prompts": 2, "group": 4, "max_tokens": 120, "seq": 384, "lr": 0.001, "seed": 5, "save_every": 2'
write_recipe() { # $1 $2 $3: sha256 fields of heldout, text, sft; $4: the verifier_rl stage's inputs and keys
cat > "$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-verifier-rl",
 "inputs": {
  "heldout": {"builtin": "tasks", "set": "problems", "seed": 9, "n": 6, "difficulty": 1$1},
  "text": {"builtin": "tasks", "set": "text", "seed": 1, "n": 60, "exclude": "heldout"$2},
  "sft": {"builtin": "tasks", "set": "sft", "seed": 2, "n": 300, "domains": "add", "p_generate": 0, "exclude": "heldout", "templates": "templates.json"$3}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text", "sft"], "vocab_size": 400, "digit_group": 1},
  {"name": "data-pt", "kind": "data", "inputs": ["text", "tok"], "val_fraction": 0.05},
  {"name": "data-sft", "kind": "data", "inputs": ["sft", "tok"], "val_fraction": 0.05, "windows": "document"},
  {"name": "pt", "kind": "pretrain", "inputs": ["data-pt", "tok"], "config": $cfg,
   "steps": 2, "batch": 2, "seq": 64, "lr": 0.003, "eval_batches": 1},
  {"name": "prover", "kind": "sft", "inputs": ["data-sft", "tok", "pt"],
   "steps": 150, "batch": 4, "seq": 256, "lr": 0.01, "warmup": 10, "eval_batches": 1, "export": true},
  {"name": "vrl", "kind": "verifier_rl", $4}
 ]}
JSON
}
cp templates/lemma.json "$tmp/templates.json"
good="\"inputs\": [\"prover\", \"heldout\"], $vrl"
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
check "the recipe with a verifier_rl stage builds" test -f "$tmp/a/vrl/model.safetensors"
[ -f "$tmp/a/vrl/model.safetensors" ] || sed 's/^/  /' "$tmp/out" | head
check "the stage folder is a model" "$LEMMA" info "$tmp/a/vrl"
check "the final checkpoint is kept" test -f "$tmp/a/vrl/latest/optim_m.safetensors"
check "the stage trained: its weights differ from the input model's" \
    sh -c "! cmp -s '$tmp/a/vrl/model.safetensors' '$tmp/a/prover/model.safetensors'"
check "metrics.jsonl has a line per step" test "$(wc -l <"$tmp/a/vrl/metrics.jsonl")" -eq 10
check "metrics carry reward, agreement, format and timings" \
    grep -q '"reward_mean": .*"agreement": .*"format": .*"sample_s": .*"train_s"' "$tmp/a/vrl/metrics.jsonl"
check "the model writes the verification format and rewards vary within groups" python3 - "$tmp/a/vrl/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert max(r["format"] for r in rs) > 0 and max(r["reward_std"] for r in rs) > 0, rs
assert max(r["kl"] for r in rs) > 0, rs
PY
check "the reward plot is written" grep -q '<svg' "$tmp/a/vrl/reward.svg"
check "the training plot is written" grep -q '<svg' "$tmp/a/vrl/training.svg"
check "the on-policy ratio is 1 to fp32 rounding" python3 - "$tmp/a/vrl/metrics.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert abs(r["ratio_mean"] - 1) < 1e-6 and r["clip_frac"] == 0, r
PY

# 1 and 2 threads: the same bytes
# (the earlier stages are copied: they are up to date, so only the stage runs again)
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
check "...resuming the stage from its checkpoint" grep -q 'resuming vrl at step 2 of 10' "$tmp/k2.out"
check "...and ends bit-identical to the uninterrupted build" cmp "$tmp/a/lemma.lock" "$tmp/k/lemma.lock"
check "...with one metrics line per step" test "$(wc -l <"$tmp/k/vrl/metrics.jsonl")" -eq 10
grep -o '"reward_mean": [^,]*' "$tmp/a/vrl/metrics.jsonl" >"$tmp/ra"
grep -o '"reward_mean": [^,]*' "$tmp/k/vrl/metrics.jsonl" >"$tmp/rk"
check "...the same rewards as the uninterrupted build" cmp "$tmp/ra" "$tmp/rk"

# bad parameters and inputs: one clear line each
cp -r "$tmp/a" "$tmp/bad"
bad_param() { # name, expected message, stage members
    write_recipe "$h1" "$h2" "$h3" "$3"
    check_fails "$1" "$2" "$LEMMA" build "$tmp/r.json" --out "$tmp/bad" --quiet
}
bad_param "group 0 refused" '"group": expected an integer in \[1, 256\]' "\"inputs\": [\"prover\"], \"group\": 0"
bad_param "a negative lr refused" '"lr": expected a number' "\"inputs\": [\"prover\"], \"lr\": -1"
bad_param "a string for steps refused" '"steps": expected an integer' "\"inputs\": [\"prover\"], \"steps\": \"ten\""
bad_param "an unknown agg refused" '"agg": expected "seq_mean" (GRPO)' "\"inputs\": [\"prover\"], \"agg\": \"mean\""
bad_param "an unknown key refused" 'unknown key "groups" for a verifier_rl stage' "\"inputs\": [\"prover\"], \"groups\": 4"
bad_param "micro_batch not dividing the batch refused" '"micro_batch" 4 must divide prompts x group = 6' \
    "\"inputs\": [\"prover\"], \"prompts\": 2, \"group\": 3, \"micro_batch\": 4"
bad_param "max_tokens beyond seq refused" '"max_tokens" 600 leaves no room for the prompt in "seq" 512' \
    "\"inputs\": [\"prover\"], \"max_tokens\": 600, \"seq\": 512"
bad_param "a bad difficulty refused" '"difficulty": expected d or \[lo, hi\]' "\"inputs\": [\"prover\"], \"difficulty\": [3, 1]"
bad_param "an unknown domain refused" 'unknown domain "primes"' "\"inputs\": [\"prover\"], \"domains\": \"add,primes\""
bad_param "a seq too short for the prompts refused" 'does not fit "seq" 64' "\"inputs\": [\"prover\"], \"seq\": 64, \"max_tokens\": 8"
bad_param "a missing input model refused" 'a verifier_rl stage takes one model to train' "\"inputs\": [\"heldout\"]"
bad_param "a data stage as input refused" 'a verifier_rl stage takes one model to train' "\"inputs\": [\"prover\", \"data-sft\"]"
bad_param "a missing templates file refused" 'nope.json' "\"inputs\": [\"prover\"], \"templates\": \"nope.json\""
check "the failed builds left the built stage alone" cmp "$tmp/a/vrl/model.safetensors" "$tmp/bad/vrl/model.safetensors"

# the variants: two iterations per batch, DAPO's token mean, no reference model
write_recipe "$h1" "$h2" "$h3" "$good, \"num_iterations\": 2, \"agg\": \"token_mean\", \"clip_high\": 0.28, \"beta_kl\": 0"
check "num_iterations 2, token_mean, beta_kl 0 build" "$LEMMA" build "$tmp/r.json" --out "$tmp/bad" --quiet
check "...and train the weights" sh -c "! cmp -s '$tmp/a/prover/model.safetensors' '$tmp/bad/vrl/model.safetensors'"
check "...the logged (first, on-policy) iteration has ratio 1 and, with no reference, KL 0" python3 - "$tmp/bad/vrl/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert all(abs(r["ratio_mean"] - 1) < 1e-6 and r["kl"] == 0 for r in rs), rs
PY

# recipes/verifier-rl.json is the default recipe up to its prover plus one stage (run on
# the SFT prover alone, as docs/post-training.md measured it): its copy must not drift
check "recipes/verifier-rl.json repeats recipes/default.json's inputs and stages up to the prover" python3 - <<'PY'
import json
d, v = json.load(open("recipes/default.json")), json.load(open("recipes/verifier-rl.json"))
assert v["inputs"] == d["inputs"], "inputs differ"
upto = [s["name"] for s in d["stages"]].index("prover") + 1
assert v["stages"][:-1] == d["stages"][:upto], "stages differ"
assert v["stages"][-1]["kind"] == "verifier_rl" and "prover" in v["stages"][-1]["inputs"]
PY

echo "test_build_verifier_rl.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
