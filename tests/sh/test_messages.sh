#!/usr/bin/env bash
# test_messages.sh — messages that used to mislead, each checked for the
# whole line that replaced it: what failed, where (file, tensor, byte), why,
# and the limit or the expectation, once each and in that order.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
skipped=0
skip() { skipped=$((skipped + 1)); echo "skip $1"; }

# exact NAME WANT CMD...: CMD fails and its stderr is exactly the line WANT.
exact() {
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    local got; got=$(grep . "$tmp/err")
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$got" = "$want" ]; then ok "$name"
    else bad "$name (exit $rc)"; echo "  got:  $got"; echo "  want: $want"; fi
}

# A tokenizer and a tiny model to break things around.
cat src/formats/*.c >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 320 --out "$tmp/tok" --quiet || { echo "tokenizer train failed"; exit 1; }

# 1. A train resume whose config.json changed: the checkpoint's path once,
#    the tensor, and both shapes in full (the differing dimension was "...").
"$LEMMA" data "$tmp/corpus.txt" --tokenizer "$tmp/tok" --out "$tmp/data" --doc-sep blank --quiet 2>/dev/null
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 320/' tests/golden/v3_f32/config.json >"$tmp/cfg.json"
inter=$(sed -nE 's/.*"intermediate_size": *([0-9]+).*/\1/p' "$tmp/cfg.json")
hidden=$(sed -nE 's/.*"hidden_size": *([0-9]+).*/\1/p' "$tmp/cfg.json")
"$LEMMA" train --config "$tmp/cfg.json" --data "$tmp/data" --out "$tmp/run" --steps 2 --batch 2 --seq 16 \
    --save-every 1 --eval-every 100 --quiet --threads 1 2>"$tmp/err" || { cat "$tmp/err"; echo "train failed"; exit 1; }
sed -i -E "s/\"intermediate_size\": *$inter/\"intermediate_size\": $((inter + 8))/" "$tmp/run/config.json"
ck=$(ls -d "$tmp/run"/ckpt-* | tail -1)
exact "train --resume with a changed config" \
    "lemma train: $ck/model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape [$inter, $hidden], but the config gives [$((inter + 8)), $hidden]" \
    "$LEMMA" train --resume "$tmp/run" --quiet --threads 1

# 2. A lock file of another version: the path first, the found and expected
#    versions, then the hint.
cat >"$tmp/r.json" <<'JSON'
{"lemma_recipe": 1, "name": "m", "inputs": {"notes": {"path": "notes.txt", "sha256": "SHA"}},
 "stages": [{"name": "tok", "kind": "tokenizer", "inputs": ["notes"], "vocab_size": 300}]}
JSON
printf 'Some notes.\n' >"$tmp/notes.txt"
sed -i "s/SHA/$(sha256sum "$tmp/notes.txt" | cut -d' ' -f1)/" "$tmp/r.json"
mkdir -p "$tmp/b"
printf '{\n  "lemma_lock": 2\n}\n' >"$tmp/b/lemma.lock"
exact "lemma.lock of another version" \
    "lemma build: $tmp/b/lemma.lock: byte 18: \"lemma_lock\" is 2, expected 1 (a lock file of another lemma version) (delete it to rebuild from scratch)" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/b"
printf '{}\n' >"$tmp/b/lemma.lock"
check_fails "lemma.lock without a version" "lemma.lock: no \"lemma_lock\" version field (expected 1): not a lock file (delete it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/b"

# 3. A directory where a file is read: said so, not "read error".
exact "tokenize --file DIR" "lemma tokenize: $tmp: is a directory, expected a file" \
    "$LEMMA" tokenize "$tmp/tok" --file "$tmp"
exact "tokenize --jsonl DIR" "lemma tokenize: $tmp: is a directory, expected a file" \
    "$LEMMA" tokenize "$tmp/tok" --jsonl "$tmp"
exact "tokenizer train DIR" "lemma tokenizer train: $tmp: cannot read: Is a directory" \
    "$LEMMA" tokenizer train "$tmp" --vocab 300 --out "$tmp/t2" --quiet

# 4. model.safetensors is a symlink loop: the loop, not "no model.safetensors".
mkdir -p "$tmp/loop" && cp tests/bad/ok_base/config.json "$tmp/loop/"
ln -s model.safetensors "$tmp/loop/model.safetensors"
exact "model.safetensors symlink loop" \
    "lemma info: $tmp/loop/model.safetensors: cannot open: Too many levels of symbolic links" "$LEMMA" info "$tmp/loop"
mkdir -p "$tmp/loop2" && cp tests/bad/ok_base/config.json "$tmp/loop2/"
ln -s model.safetensors.index.json "$tmp/loop2/model.safetensors.index.json"
exact "index.json symlink loop" \
    "lemma info: $tmp/loop2/model.safetensors.index.json: cannot open: Too many levels of symbolic links" "$LEMMA" info "$tmp/loop2"

# 5. A pre-tokenizer regex that fails to match (PCRE2's backtracking limit):
#    the file, the regex, the byte and PCRE2's reason.
mkdir -p "$tmp/badre"
python3 - "$tmp/tok/tokenizer.json" "$tmp/badre/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = "(\\w+\\s?)+$"
json.dump(t, open(sys.argv[2], "w"))
PY
exact "pre-tokenizer regex failure" \
    "lemma tokenize: $tmp/badre/tokenizer.json: pre-tokenizer Split regex \"(\\\\w+\\\\s?)+\$\" failed on the text at byte 0 (a 41-byte piece): match limit exceeded" \
    "$LEMMA" tokenize "$tmp/badre" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"

# 6. --threads beyond what the system allows: which thread, why, the limits.
case "${LEMMA_SANITIZE:-}${LEMMA}" in
*sanitize*) skip "--threads 1000 under ulimit -v (ASan needs the address space)" ;;
*)
    (ulimit -v 1000000; exec "$LEMMA" logits tests/bad/ok_base --ids 1 --threads 1000) >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 1 ] && grep -qE "^lemma logits: cannot start thread [0-9]+ of 1000: Resource temporarily unavailable \(limits here: .*976 MiB of address space \(ulimit -v\) with [0-9]+ MiB of stack per thread; this machine has [0-9]+ cores, use fewer --threads\)$" "$tmp/err" &&
       [ "$(grep -c . "$tmp/err")" -eq 1 ]; then ok "--threads 1000 names the limit"
    else bad "--threads 1000 (exit $rc)"; sed 's/^/  /' "$tmp/err"; fi ;;
esac

# 7. bytes_hex: a non-hex digit is named as such, an odd count as such.
printf '{"bytes_hex": "zz"}\n{"bytes_hex": "616"}\n{"bytes_hex": "61 62"}\n{"bytes_hex": "6162"}\n' >"$tmp/hex.jsonl"
"$LEMMA" tokenize "$tmp/tok" --jsonl "$tmp/hex.jsonl" >"$tmp/hex.out" 2>&1
check "bytes_hex \"zz\"" grep -qxF '{"error":"line 1: byte 14: \"bytes_hex\": character 0 ('"'z'"') is not a hex digit"}' "$tmp/hex.out"
check "bytes_hex odd count" grep -qxF '{"error":"line 2: byte 14: \"bytes_hex\": 3 hex digits, expected an even number"}' "$tmp/hex.out"
check "bytes_hex with a space" grep -qxF '{"error":"line 3: byte 14: \"bytes_hex\": character 2 (\\x20) is not a hex digit"}' "$tmp/hex.out"
check "bytes_hex valid" grep -qE '^\{"ids":\[[0-9,]+\]\}$' <(sed -n 4p "$tmp/hex.out")

echo "test_messages.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
