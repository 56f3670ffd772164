#!/usr/bin/env bash
# recipes/quick.json: the default recipe's chain in miniature (the same
# stage kinds in the same order, a tiny model, one domain). It builds in
# seconds, every stage's folder is a model, the recipe does not drift from
# recipes/default.json's structure, and `lemma eval` grades its final model.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

check "the stage names, kinds and inputs are recipes/default.json's" python3 - <<'PY'
import json
d, q = json.load(open("recipes/default.json")), json.load(open("recipes/quick.json"))
assert [s["name"] for s in q["stages"]] == [s["name"] for s in d["stages"]], "names differ"
assert [s["kind"] for s in q["stages"]] == [s["kind"] for s in d["stages"]], "kinds differ"
assert [s["inputs"] for s in q["stages"]] == [s["inputs"] for s in d["stages"]], "inputs differ"
assert sorted(q["inputs"]) == sorted(d["inputs"]), "recipe inputs differ"
for s, t in zip(q["stages"], d["stages"]):  # the post-training switches are the default's
    for k in ("meta", "meta_reward", "reward", "accept", "beta_kl"):
        assert (k in s) == (k in t) and s.get(k) == t.get(k), (s["name"], k)
PY
check "recipes/quick.json builds" "$LEMMA" build recipes/quick.json --out "$tmp/q" --quiet
for s in prover rft verifier-rl grpo grpo-checker; do
    check "stage $s is a model" "$LEMMA" info "$tmp/q/$s"
done
check "each post-training stage trained: its weights differ from its input's" sh -c "
    ! cmp -s '$tmp/q/prover/model.safetensors' '$tmp/q/rft/model.safetensors' &&
    ! cmp -s '$tmp/q/rft/model.safetensors' '$tmp/q/verifier-rl/model.safetensors' &&
    ! cmp -s '$tmp/q/verifier-rl/model.safetensors' '$tmp/q/grpo/model.safetensors' &&
    ! cmp -s '$tmp/q/grpo/model.safetensors' '$tmp/q/grpo-checker/model.safetensors'"
check "grpo meta-verifies (R_meta is logged)" grep -q '"r_meta": ' "$tmp/q/grpo/metrics.jsonl"
check "a rebuild finds every stage up to date" sh -c "'$LEMMA' build recipes/quick.json --out '$tmp/q' 2>&1 | grep -q '9 up to date'"
head -2 "$tmp/q/inputs/heldout.jsonl" >"$tmp/h2.jsonl"
check "lemma eval grades the final model" "$LEMMA" eval "$tmp/q/grpo" --problems "$tmp/h2.jsonl" --out "$tmp/ev" \
    --samples 2 --verifications 1 --rounds 1 --max-tokens 64 --seed 1
check "...into results.json with the table's fields in [0, 1]" python3 - "$tmp/ev/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("pass_at_1", "best_of_n", "oracle_pass_at_n", "verifier_agreement"):
    assert r[k] is None or 0 <= r[k] <= 1, (k, r[k])
assert len(r["pass_by_round"]) == 2 and all(0 <= x <= 1 for x in r["pass_by_round"]), r["pass_by_round"]
PY

echo "test_build_quick.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
