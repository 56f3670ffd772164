#!/usr/bin/env bash
# test_write_errors.sh — a failed write is a failed command. Every command
# that writes to stdout runs with stdout on /dev/full (`cmd > /dev/full`) and
# must exit non-zero with "cannot write to stdout: No space left on device"
# on stderr, instead of exit 0 with the output lost; the same command with
# stdout on a file must succeed (so the failure is the write's). Output
# files given by name (--out /dev/full) fail the same way, and --out naming a
# device writes to it rather than replacing the device node with a file.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

if [ ! -w /dev/full ]; then
    echo "test_write_errors.sh: /dev/full is not writable here"
    echo "test_write_errors.sh: 0 passed, 1 failed, 0 skipped"; exit 1
fi

# full NAME WANT CMD...: CMD succeeds with stdout on a file, and fails with
# WANT on stderr when stdout is /dev/full.
full() {
    local name=$1 want=$2; shift 2
    if ! "$@" >"$tmp/stdout" 2>"$tmp/err" </dev/null; then
        bad "$name: fails even with stdout on a file"; sed 's/^/  /' "$tmp/err" | head -5; return
    fi
    if [ ! -s "$tmp/stdout" ]; then bad "$name: writes nothing to stdout, so the test proves nothing"; return; fi
    "$@" >/dev/full 2>"$tmp/err" </dev/null
    local rc=$?
    if [ "$rc" -eq 0 ]; then bad "$name > /dev/full: exit 0"
    elif [ "$rc" -ge 128 ]; then bad "$name > /dev/full: killed by signal $((rc - 128))"
    elif ! grep -qF -- "$want" "$tmp/err"; then bad "$name > /dev/full: message lacks '$want'"; sed 's/^/  /' "$tmp/err" | head -5
    else ok "$name > /dev/full: exit $rc, $(grep -F -- "$want" "$tmp/err" | head -1)"; fi
}
NOSPACE="cannot write to stdout: No space left on device"

# A model with a tokenizer: trained and initialised here (a second or two).
cat src/formats/*.c >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 300 --out "$tmp/m" --quiet || { echo "tokenizer train failed"; exit 1; }
vocab=$("$LEMMA" tokenizer info "$tmp/m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json >"$tmp/config.json"
"$LEMMA" init "$tmp/config.json" --out "$tmp/m" --seed 1 2>/dev/null || { echo "init failed"; exit 1; }
M=$tmp/m
printf '{"text": "int main"}\n{"bytes_hex": "616263"}\n' >"$tmp/in.jsonl"
"$LEMMA" data "$tmp/corpus.txt" --tokenizer "$M" --out "$tmp/data" --doc-sep line --quiet 2>/dev/null || { echo "data failed"; exit 1; }
mkdir -p "$tmp/run"
printf '{"step": 0, "loss": 3.5, "lr": 0.001}\n{"step": 1, "loss": 3.0, "lr": 0.001}\n' >"$tmp/run/metrics.jsonl"

full "help" "lemma: $NOSPACE" "$LEMMA" --help
for c in info logits generate chat init train bench tokenize detokenize tokenizer data build plot; do
    full "$c --help" "$NOSPACE" "$LEMMA" $c --help
done
full "info" "lemma info: $NOSPACE" "$LEMMA" info "$M"
full "logits" "lemma logits: $NOSPACE" "$LEMMA" logits "$M" --ids 1,2,3
full "generate --ids" "lemma generate: $NOSPACE" "$LEMMA" generate "$M" --ids 1,2 -n 8
full "generate -p (streamed)" "lemma generate: $NOSPACE" "$LEMMA" generate "$M" -p "int" -n 8 --ignore-eos
full "generate --samples" "lemma generate: $NOSPACE" "$LEMMA" generate "$M" -p "int" -n 4 --samples 2 --ignore-eos
full "chat (streamed)" "lemma chat: $NOSPACE" sh -c "echo hello | exec \"$LEMMA\" chat \"$M\" -n 8 --ignore-eos"
full "bench" "lemma bench: $NOSPACE" "$LEMMA" bench "$M" --prompt 4 --gen 2 --reps 1 --threads 1
full "tokenize" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" "int main(void)"
full "tokenize --pieces" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" "int main(void)" --pieces
full "tokenize --count" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" "int main(void)" --count
full "tokenize --jsonl" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" --jsonl "$tmp/in.jsonl"
full "tokenize --file (big)" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" --file "$tmp/corpus.txt"
full "tokenize --bench" "lemma tokenize: $NOSPACE" "$LEMMA" tokenize "$M" "int main" --bench 1
full "detokenize" "lemma detokenize: $NOSPACE" "$LEMMA" detokenize "$M" 40,41,42
full "tokenizer info" "lemma tokenizer: $NOSPACE" "$LEMMA" tokenizer info "$M"
full "data --info" "lemma data: $NOSPACE" "$LEMMA" data --info "$tmp/data"
full "plot --out -" "lemma plot: $NOSPACE" "$LEMMA" plot "$tmp/run" --out -

# Named outputs: a device is written in place, and its errors are failures.
check_fails "logits --out /dev/full" "/dev/full: write failed: No space left on device" \
    "$LEMMA" logits "$M" --ids 1,2 --out /dev/full
if "$LEMMA" logits "$M" --ids 1,2 --out /dev/full 2>&1 | grep -q "^wrote"; then bad "logits --out /dev/full says 'wrote'"
else ok "logits --out /dev/full does not claim success"; fi
if [ -c /dev/full ]; then ok "/dev/full is still a device"; else bad "/dev/full was replaced"; fi
"$LEMMA" logits "$M" --ids 1,2 --out "$tmp/l.f32" 2>/dev/null
"$LEMMA" logits "$M" --ids 1,2 --out /dev/stdout 2>/dev/null >"$tmp/l2.f32"
if [ -s "$tmp/l.f32" ] && cmp -s "$tmp/l.f32" "$tmp/l2.f32"; then ok "logits --out /dev/stdout writes the file's bytes"
else bad "logits --out /dev/stdout"; fi
check_fails "plot --out /dev/full" "No space left on device" "$LEMMA" plot "$tmp/run" --out /dev/full
check_fails "logits --out DIR" "is a directory, expected a file name" "$LEMMA" logits "$M" --ids 1 --out "$tmp"

echo "test_write_errors.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
