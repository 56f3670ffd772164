#!/usr/bin/env bash
# test_build.sh — `lemma build` end to end on a tiny recipe (a synth-text
# built-in and a file input; tokenizer and data stages): missing and wrong
# input hashes are refused with the actual hash, the lock file lists every
# artifact, a rerun does no work, --check matches, a changed input/parameter
# rebuilds exactly the stages it reaches, a tampered artifact is rebuilt, a
# tampered lock is reported by --check, bad recipes get one clear line, and
# two build directories get byte-identical lock files.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
has() { if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1"; sed 's/^/  /' "$3" | head -10; fi; }

printf 'Lemma notes.\n\nA second paragraph about the quick fox.\n' >"$tmp/notes.txt"
notes_sha=$(sha256sum "$tmp/notes.txt" | cut -d' ' -f1)

write_recipe() { # synth_sha notes_sha val_fraction [extra stage json]
    cat >"$tmp/r.json" <<JSON
{
  "lemma_recipe": 1,
  "name": "tiny",
  "inputs": {
    "synth": {"builtin": "synth-text", "seed": 3, "lines": 2000 $1},
    "notes": {"path": "notes.txt" $2}
  },
  "stages": [
    {"name": "tok", "kind": "tokenizer", "inputs": ["synth", "notes"], "vocab_size": 400},
    {"name": "data", "kind": "data", "inputs": ["synth", "notes", "tok"], "doc_sep": "line",
     "val_fraction": $3, "shard_tokens": 4000}$4
  ]
}
JSON
}

# 1. no sha256 for the built-in: refused, the message carries the hash
write_recipe "" ", \"sha256\": \"$notes_sha\"" 0.05 ""
check_fails "missing input hash refused" 'gives no "sha256"' "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
synth_sha=$(grep -o 'hashes to [0-9a-f]\{64\}' "$tmp/out" | head -1 | cut -d' ' -f3)
[ ${#synth_sha} -eq 64 ] && ok "message gives the actual hash" || bad "message gives the actual hash"
write_recipe ", \"sha256\": \"$(printf '0%.0s' {1..64})\"" ", \"sha256\": \"$notes_sha\"" 0.05 ""
check_fails "wrong input hash refused" "the recipe expects 0000" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"

# 2. a good build
write_recipe ", \"sha256\": \"$synth_sha\"" ", \"sha256\": \"$notes_sha\"" 0.05 ""
check "build" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
has "two stages built" "2 stages built, 0 up to date" "$tmp/out"
L="$tmp/b1/lemma.lock"
for f in inputs/synth.txt tok/tokenizer.json tok/tokenizer_config.json data/index.json data/train-00000.bin data/val-00000.bin; do
    want=$(sha256sum "$tmp/b1/$f" | cut -d' ' -f1)
    grep -q "\"$f\": \"$want\"" "$L" && ok "lock has $f" || bad "lock has $f"
done
grep -q "\"recipe_sha256\": \"$(sha256sum "$tmp/r.json" | cut -d' ' -f1)\"" "$L" && ok "lock has recipe hash" || bad "lock has recipe hash"
grep -q "\"notes\": {\"path\": \"notes.txt\", \"sha256\": \"$notes_sha\"}" "$L" && ok "lock has file input" || bad "lock has file input"
check "lemma data --info on the stage output" "$LEMMA" data --info "$tmp/b1/data"
ls -a "$tmp/b1" | grep -q partial && bad "no partial dirs left" || ok "no partial dirs left"

# 3. rerun: no work; lock unchanged
cp "$L" "$tmp/lock1"
check "rebuild" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
has "rerun reuses everything" "0 stages built, 2 up to date" "$tmp/out"
check "lock unchanged" cmp "$L" "$tmp/lock1"

# 4. --check, and a second directory with identical lock bytes (threads differ)
check "check matches" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1" --check --threads 1
has "check says every artifact matches" "every artifact matches" "$tmp/out"
ls -d "$tmp"/b1.check-* >/dev/null 2>&1 && bad "scratch removed" || ok "scratch removed"
check "second build dir" "$LEMMA" build "$tmp/r.json" --out "$tmp/b2" --threads 2
check "identical lock files" cmp "$L" "$tmp/b2/lemma.lock"

# 5. a tampered artifact is noticed and rebuilt
printf 'x' >>"$tmp/b1/data/index.json"
check "rebuild after tampering" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
has "tampered stage rebuilt" "outputs changed since the last build" "$tmp/out"
has "only that stage" "1 stage built, 1 up to date" "$tmp/out"
check "restored" cmp "$L" "$tmp/lock1"

# 6. a tampered lock is reported by --check (exit 1, names the artifact)
sed "s/\"data\/val-00000.bin\": \"[0-9a-f]*\"/\"data\/val-00000.bin\": \"$(printf 'a%.0s' {1..64})\"/" "$tmp/lock1" >"$L"
check_fails "check reports a difference" "differs  data/val-00000.bin" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1" --check
has "check counts it" "check: 1 difference" "$tmp/out"
rm -rf "$tmp"/b1.check-*
cp "$tmp/lock1" "$L"

# 7. a changed file input: refused until the recipe has its new hash; then both stages rebuild
printf 'Changed notes.\n' >>"$tmp/notes.txt"
check_fails "changed input refused" "input notes" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
notes_sha=$(sha256sum "$tmp/notes.txt" | cut -d' ' -f1)
write_recipe ", \"sha256\": \"$synth_sha\"" ", \"sha256\": \"$notes_sha\"" 0.05 ""
check "build with new input" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
has "both stages rebuilt" "2 stages built, 0 up to date" "$tmp/out"

# 8. a changed data parameter rebuilds only the data stage
write_recipe ", \"sha256\": \"$synth_sha\"" ", \"sha256\": \"$notes_sha\"" 0.2 ""
check "build with new val_fraction" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1"
has "only data rebuilt" "1 stage built, 1 up to date" "$tmp/out"
has "tokenizer reused" "tok (tokenizer): up to date" "$tmp/out"

# 9. pretrain stage: a clear error until lemma train exists; earlier stages stay built
write_recipe ", \"sha256\": \"$synth_sha\"" ", \"sha256\": \"$notes_sha\"" 0.2 \
    ', {"name": "model", "kind": "pretrain", "inputs": ["data", "tok"], "steps": 1}'
if "$LEMMA" build "$tmp/r.json" --out "$tmp/b1" >"$tmp/out" 2>&1; then
    ok "pretrain stage ran (lemma train exists)"
else
    has "pretrain stage error" "stage model" "$tmp/out"
    has "earlier stages up to date" "data (data): up to date" "$tmp/out"
fi
check "--until skips later stages" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1" --until data
has "--until: 2 stages" "0 stages built, 2 up to date" "$tmp/out"

# 10. a recipe edited after the build: --check says so; dropping a stage drops it from the lock
sed 's/"name": "tiny",/"name": "tiny", "description": "edited",/' "$tmp/r.json" >"$tmp/r2.json"
check_fails "check notices an edited recipe" "changed since lemma.lock was written" \
    "$LEMMA" build "$tmp/r2.json" --out "$tmp/b1" --check --until data
rm -rf "$tmp"/b1.check-*
cat >"$tmp/r3.json" <<JSON
{"lemma_recipe": 1, "name": "tiny", "inputs": {"synth": {"builtin": "synth-text", "seed": 3, "lines": 2000, "sha256": "$synth_sha"}},
 "stages": [{"name": "tok", "kind": "tokenizer", "inputs": ["synth"], "vocab_size": 400}]}
JSON
check "build a shorter recipe" "$LEMMA" build "$tmp/r3.json" --out "$tmp/b1"
grep -q '"data/' "$tmp/b1/lemma.lock" && bad "dropped stage leaves the lock" || ok "dropped stage leaves the lock"
grep -q '"notes"' "$tmp/b1/lemma.lock" && bad "dropped input leaves the lock" || ok "dropped input leaves the lock"

# 11. bad recipes: one clear line each
bad_recipe() { # name, expected message part, recipe text
    printf '%s' "$3" >"$tmp/bad.json"
    check_fails "$1" "$2" "$LEMMA" build "$tmp/bad.json" --out "$tmp/bx"
}
bad_recipe "not JSON" "bad.json: byte" '{"lemma_recipe": 1,'
bad_recipe "no version" '"lemma_recipe"' '{"inputs": {}, "stages": []}'
bad_recipe "unknown top-level key" 'unknown key "stage"' '{"lemma_recipe": 1, "inputs": {}, "stage": []}'
bad_recipe "empty stages" '"stages": expected a non-empty array' '{"lemma_recipe": 1, "inputs": {}, "stages": []}'
bad_recipe "unknown builtin" 'unknown built-in "bible"' '{"lemma_recipe": 1, "inputs": {"a": {"builtin": "bible"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}]}'
bad_recipe "bad sha256" 'sha256: expected 64 hex digits' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt", "sha256": "abc"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}]}'
bad_recipe "unknown kind" 'unknown kind "pretraining"' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "pretraining", "inputs": ["a"]}]}'
bad_recipe "planned kind" '"rl" stages are planned' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "rl", "inputs": ["a"]}]}'
bad_recipe "later stage as input" 'a stage that comes later' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "d", "kind": "data", "inputs": ["a", "t"]}, {"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}]}'
bad_recipe "unknown input" '"zz" is not an input or an earlier stage' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["zz"], "vocab_size": 300}]}'
bad_recipe "data without tokenizer" 'one tokenizer stage' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "d", "kind": "data", "inputs": ["a"]}]}'
bad_recipe "param range" 'vocab_size: expected an integer' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 10}]}'
bad_recipe "param typo" 'unknown key "vocab"' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab": 300}]}'
bad_recipe "duplicate stage" 'a stage of that name comes earlier' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}, {"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}]}'
bad_recipe "missing input file" 'x.txt' '{"lemma_recipe": 1, "inputs": {"a": {"path": "x.txt", "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}}, "stages": [{"name": "t", "kind": "tokenizer", "inputs": ["a"], "vocab_size": 300}]}'
check_fails "missing recipe" "nope.json" "$LEMMA" build "$tmp/nope.json"
check_fails "check without a lock" "no lemma.lock" "$LEMMA" build "$tmp/r.json" --out "$tmp/empty" --check
check_fails "corrupt lock" "lemma.lock" sh -c "printf '{' >'$tmp/b2/lemma.lock' && '$LEMMA' build '$tmp/r.json' --out '$tmp/b2' --until data"
check_fails "unknown --until" "no stage of that name" "$LEMMA" build "$tmp/r.json" --out "$tmp/b1" --until nope

echo "test_build.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
