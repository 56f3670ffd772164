#!/usr/bin/env bash
# test_tokenizer_cli.sh — the command-line contract of lemma tokenize /
# detokenize / tokenizer: the --jsonl interface scripts rely on (one output
# line per input line, in order; {"error":...} for a bad line, and the run
# goes on), --no-special, --pieces, detokenize round trip, exit codes and
# one-line errors, tokenizer train/info. Uses DeepSeek-V3's tokenizer from
# ../shared when present, else one trained here.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
NAME=test_tokenizer_cli
pass=0; fail=0; skip=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got [$2], want [$3]"; fi; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

# a trained tokenizer (always)
for i in $(seq 1 300); do echo "The proof of lemma $i is trivial; we have x = $i + 1. caf$(printf '\xc3\xa9') <think>ok</think>"; done >"$T/corpus.txt"
if "$LEMMA" tokenizer train "$T/corpus.txt" --vocab 500 --out "$T/tok" --quiet; then ok train; else bad train "exit $?"; fi
info=$("$LEMMA" tokenizer info "$T/tok" 2>&1)
case "$info" in *"BPE, "*"deepseek-v3"*"bos 0 "*) ok info ;; *) bad info "$info" ;; esac

DS=$SHARED/data/tokenizer/deepseek-v3
if [ -f "$DS/tokenizer.json" ]; then
    check ds_ids "$("$LEMMA" tokenize "$DS" 'Hello, world!')" "19923,14,2058,3"
    check ds_bos "$("$LEMMA" tokenize "$DS" 'Hello, world!' --bos)" "0,19923,14,2058,3"
    check ds_special "$("$LEMMA" tokenize "$DS" '<｜User｜>hi')" "128803,6366"
    n=$("$LEMMA" tokenize "$DS" '<｜User｜>hi' --no-special | tr ',' '\n' | wc -l)
    [ "$n" -gt 2 ] && ok ds_no_special || bad ds_no_special "$n ids"
    check ds_detok "$("$LEMMA" detokenize "$DS" 19923,14,2058,3,223,128803)" "Hello, world! <｜User｜>"
    check ds_detok_skip "$("$LEMMA" detokenize "$DS" 0,19923,1 --skip-special)" "Hello"
    check ds_pieces "$("$LEMMA" tokenize "$DS" 'a b' --pieces | tr '\t\n' '|;')" "67|a;291| b;"
    TOK=$DS
else
    echo "skip ds_*: $DS is absent (using a trained tokenizer)"
    skip=$((skip + 1))
    TOK=$T/tok
fi

# --jsonl: order, errors on bad lines, bytes_hex, empty text, and the run goes on
printf '%s\n' '{"text":"hello world"}' 'not json' '{"bytes_hex":"ff41"}' '{"foo":1}' '{"text":""}' \
    '{"bytes_hex":"4"}' '{"text":"<think>x</think>"}' >"$T/in.jsonl"
"$LEMMA" tokenize "$TOK" --jsonl "$T/in.jsonl" >"$T/out.jsonl"; rc=$?
check jsonl_exit "$rc" 0
check jsonl_lines "$(wc -l <"$T/out.jsonl")" 7
check jsonl_bad_json "$(sed -n 2p "$T/out.jsonl" | cut -c1-17)" '{"error":"line 2:'
check jsonl_no_field "$(sed -n 4p "$T/out.jsonl")" '{"error":"line 4: expected an object with a \"text\" or \"bytes_hex\" string"}'
check jsonl_empty "$(sed -n 5p "$T/out.jsonl")" '{"ids":[]}'
check jsonl_bad_hex "$(sed -n 6p "$T/out.jsonl" | cut -c1-17)" '{"error":"line 6:'
# bytes_hex "ff41" encodes like the text "\ufffdA"
a=$(sed -n 3p "$T/out.jsonl")
b=$(printf '%s\n' '{"text":"\ufffdA"}' | "$LEMMA" tokenize "$TOK" --jsonl -)
check jsonl_bytes_hex "$a" "$b"
first=$(sed -n 1p "$T/out.jsonl" | sed 's/{"ids":\[\(.*\)\]}/\1/')
check roundtrip "$("$LEMMA" detokenize "$TOK" "$first")" "hello world"
# the same through stdin, with --no-special
"$LEMMA" tokenize "$TOK" --jsonl - --no-special <"$T/in.jsonl" >"$T/out2.jsonl"
check jsonl_stdin_lines "$(wc -l <"$T/out2.jsonl")" 7

# errors: one line on stderr, non-zero exit
err=$("$LEMMA" tokenize /nonexistent 'x' 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && case "$err" in "lemma tokenize: /nonexistent"*) true ;; *) false ;; esac \
    && ok error_missing_dir || bad error_missing_dir "rc=$rc [$err]"
echo '{"model": {' >"$T/broken.json"
err=$("$LEMMA" tokenize "$T/broken.json" 'x' 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && case "$err" in *"broken.json"*byte*) true ;; *) false ;; esac && ok error_broken_json || bad error_broken_json "rc=$rc [$err]"
err=$("$LEMMA" detokenize "$TOK" 1,abc 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && case "$err" in *"expected a non-negative integer"*) true ;; *) false ;; esac && ok error_bad_ids || bad error_bad_ids "rc=$rc [$err]"
err=$("$LEMMA" detokenize "$TOK" 99999999 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && case "$err" in *"99999999 is not a token"*) true ;; *) false ;; esac && ok error_bad_id || bad error_bad_id "rc=$rc [$err]"
err=$("$LEMMA" tokenizer train "$T/corpus.txt" --vocab 10 --out "$T/x" 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && case "$err" in *"too small"*) true ;; *) false ;; esac && ok error_vocab_small || bad error_vocab_small "rc=$rc [$err]"
"$LEMMA" tokenize --help >/dev/null && "$LEMMA" tokenizer --help >/dev/null && "$LEMMA" detokenize --help >/dev/null \
    && ok help || bad help "a --help failed"
echo "$NAME: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
