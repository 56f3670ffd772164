#!/usr/bin/env bash
# test_data_cli.sh — `lemma data` from the command line: shards and index
# from a tokenizer made by `lemma tokenizer train`, the same bytes twice,
# --info, plain progress lines when stderr is not a terminal, and one clear
# line for each kind of bad input.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

for i in $(seq 1 400); do echo "Line $i: the $((i % 7)) quick foxes jump over $((i % 5)) lazy dogs."; done >"$tmp/a.txt"
printf '{"segments": [{"text": "<｜User｜>hi", "loss": false}, {"text": "<｜Assistant｜>hello", "loss": true}]}\n' >"$tmp/b.jsonl"
check "tokenizer train" "$LEMMA" tokenizer train "$tmp/a.txt" --vocab 320 --out "$tmp/tok" --quiet
check "data" "$LEMMA" data "$tmp/a.txt" "$tmp/b.jsonl" --tokenizer "$tmp/tok" --out "$tmp/d" --doc-sep line --val-fraction 0.1 --seed 3
grep -q "^lemma data: .*train [0-9]* tokens (3[0-9][0-9] documents), val [0-9]* tokens (" "$tmp/out" \
    && ok "summary line" || { bad "summary line"; cat "$tmp/out"; }
grep -q "^data: 100%" "$tmp/out" && ok "plain progress lines off a terminal" || bad "plain progress lines off a terminal"
check "data again" "$LEMMA" data "$tmp/a.txt" "$tmp/b.jsonl" --tokenizer "$tmp/tok/tokenizer.json" --out "$tmp/d2" --doc-sep line --val-fraction 0.1 --seed 3 --quiet
grep -q "^data:" "$tmp/out" && bad "--quiet: no progress" || ok "--quiet: no progress"
for f in index.json train-00000.bin val-00000.bin; do
    check "same bytes: $f" cmp "$tmp/d/$f" "$tmp/d2/$f"
done
check "info" "$LEMMA" data --info "$tmp/d"
grep -q "^train .* documents, 1 shards" "$tmp/out" && ok "info lists the splits" || bad "info lists the splits"
grep -q '"masked": true' "$tmp/d/index.json" && ok "the JSONL record made a masked shard" || bad "the JSONL record made a masked shard"

check_fails "no tokenizer option" "missing --tokenizer DIR" "$LEMMA" data "$tmp/a.txt" --out "$tmp/x"
check_fails "no corpus" "missing CORPUS..." "$LEMMA" data --tokenizer "$tmp/tok" --out "$tmp/x"
check_fails "missing tokenizer" "tokenizer" "$LEMMA" data "$tmp/a.txt" --tokenizer "$tmp/nope" --out "$tmp/x"
check_fails "unreadable corpus" "missing.txt" "$LEMMA" data "$tmp/missing.txt" --tokenizer "$tmp/tok" --out "$tmp/x"
: >"$tmp/empty.txt"
check_fails "empty corpus" "empty corpus" "$LEMMA" data "$tmp/empty.txt" --tokenizer "$tmp/tok" --out "$tmp/x"
check_fails "bad --doc-sep" "--doc-sep expects one of file, line, blank, got 'para'" "$LEMMA" data "$tmp/a.txt" --tokenizer "$tmp/tok" --out "$tmp/x" --doc-sep para
check_fails "bad --val-fraction" "val-fraction" "$LEMMA" data "$tmp/a.txt" --tokenizer "$tmp/tok" --out "$tmp/x" --val-fraction 0.7
check_fails "unknown option" "lemma data: unknown option '--shuffle' (see lemma data --help)" "$LEMMA" data "$tmp/a.txt" --tokenizer "$tmp/tok" --out "$tmp/x" --shuffle
printf 'oops' | dd of="$tmp/d/train-00000.bin" bs=1 seek=0 conv=notrunc 2>/dev/null
check_fails "corrupt shard" "not a token shard" "$LEMMA" data --info "$tmp/d"
truncate -s 100 "$tmp/d2/train-00000.bin"
check_fails "truncated shard" "truncated or corrupt" "$LEMMA" data --info "$tmp/d2"

echo "test_data_cli.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
