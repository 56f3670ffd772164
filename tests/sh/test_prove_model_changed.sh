#!/usr/bin/env bash
# test_prove_model_changed.sh — `lemma prove --model DIR --out OUT` reuses
# OUT's pool only for the same model content: run.json records a fingerprint
# of DIR's files (model-sha256), so weights changed under the same path (a
# rebuilt prover) stop the rerun with a clear message before anything is
# asked or reused, the same weights continue it, and a folder written before
# the fingerprint existed is never continued. A tiny random model on a
# tokenizer trained here; 4 problems, 1 sample, a few tokens each.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

m=$tmp/m
cat templates/lemma.json src/prove/*.h >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 400 --out "$m" --quiet >/dev/null 2>&1 || { echo "tokenizer train failed"; exit 1; }
vocab=$("$LEMMA" tokenizer info "$m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json >"$tmp/config.json"
"$LEMMA" init "$tmp/config.json" --out "$m" --seed 3 --std 0.3 >/dev/null 2>&1 || { echo "init failed"; exit 1; }
for i in 1 2 3 4; do echo "{\"id\":\"q$i\",\"question\":\"Show that $i + $i = $((2 * i)).\"}"; done >"$tmp/probs.jsonl"
P() { "$LEMMA" prove "$tmp/probs.jsonl" --model "$m" --out "$tmp/run" --samples 1 --verifications 1 --rounds 1 \
      --max-tokens 3 --no-meta --threads 1 "$@"; }
sum() { sha256sum "$1" | cut -c1-64; }

check "the first run" P
grep -qE '"model-sha256":"[0-9a-f]{64}"' "$tmp/run/run.json" && ok "run.json holds the model's fingerprint" ||
    { bad "run.json holds the model's fingerprint"; cat "$tmp/run/run.json"; }
pool=$(sum "$tmp/run/pool.jsonl"); n=$(wc -l <"$tmp/run/pool.jsonl")

if P >"$tmp/out" 2>&1 && grep -q "(0 asked, $n from the pool" "$tmp/out"; then ok "same model: all $n answers from the pool"
else bad "same model: all $n answers from the pool"; sed 's/^/  /' "$tmp/out" | tail -3; fi

# one byte of the last weight changed in place: same path, same size
size=$(stat -c %s "$m/model.safetensors")
cp "$m/model.safetensors" "$tmp/orig.safetensors"
flip() { # file offset: the byte at offset xor 0x40
    local b; b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "\\$(printf %03o $((b ^ 64)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
flip "$m/model.safetensors" $((size - 2))
cmp -s "$m/model.safetensors" "$tmp/orig.safetensors" && bad "the weight byte changed"
check_fails "changed weights: refused" "this folder holds a run whose --model files had other content (sha256 " P
grep -q "rerun with the same model to continue it, or choose another --out" "$tmp/out" && ok "the message says what to do" ||
    bad "the message says what to do"
[ "$(grep -c . "$tmp/out")" -eq 1 ] && ok "one line" || { bad "one line"; sed 's/^/  /' "$tmp/out"; }
[ "$(sum "$tmp/run/pool.jsonl")" = "$pool" ] && ok "the pool is untouched" || bad "the pool is untouched"
P >"$tmp/stdout" 2>/dev/null; [ ! -s "$tmp/stdout" ] && ok "no report from the old pool" || bad "no report from the old pool"

# the same weights again (a rebuild that gives the same bytes) continue it
cp "$tmp/orig.safetensors" "$m/model.safetensors"
if P >"$tmp/out" 2>&1 && grep -q "(0 asked, $n from the pool" "$tmp/out"; then ok "the same bytes again: reused"
else bad "the same bytes again: reused"; sed 's/^/  /' "$tmp/out" | tail -3; fi

# another seed into the same folder (`lemma init` again), and the tokenizer
"$LEMMA" init "$tmp/config.json" --out "$tmp/m2" --seed 4 --std 0.3 >/dev/null 2>&1 &&
    cp "$tmp/m2/model.safetensors" "$m/model.safetensors"
check_fails "a model initialised with another seed: refused" "--model files had other content" P
cp "$tmp/orig.safetensors" "$m/model.safetensors"
printf ' ' >>"$m/tokenizer.json"
check_fails "another tokenizer.json: refused" "--model files had other content" P
truncate -s -1 "$m/tokenizer.json"
check "the original files: continued" P

# run.json of an older lemma, without the fingerprint
sed -E 's/,"model-sha256":"[0-9a-f]{64}"//' "$tmp/run/run.json" >"$tmp/old.json" && cp "$tmp/old.json" "$tmp/run/run.json"
grep -q model-sha256 "$tmp/run/run.json" && bad "the key is removed"
check_fails "run.json without model-sha256: refused" \
    "written by an older lemma that recorded no fingerprint of the --model files (no \"model-sha256\" in it)" P
[ "$(sum "$tmp/run/pool.jsonl")" = "$pool" ] && ok "the old pool is untouched" || bad "the old pool is untouched"

echo "test_prove_model_changed.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
