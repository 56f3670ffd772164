#!/usr/bin/env bash
# test_cli_options.sh — every command of the binary answers --help (exit 0,
# usage first), and an unknown option or a malformed value with one line in
# the one format and exit 2 (src/cli/options.h); --opt=VALUE means
# --opt VALUE. tests/test_cli_options.c checks the tables themselves.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

# usage_error NAME WANT CMD...: exit 2, stderr exactly the line WANT, stdout empty.
usage_error() {
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ "$rc" -eq 2 ] && [ "$(cat "$tmp/err")" = "$want" ] && [ ! -s "$tmp/out" ]; then ok "$name"
    else bad "$name (exit $rc)"; echo "  got:  $(head -3 "$tmp/err")"; echo "  want: $want"; fi
}

commands=(info logits generate bench chat init train tokenize detokenize "tokenizer info" "tokenizer train"
          data build plot "tasks list" "tasks gen" "tasks corrupt" check prove verify)
for c in "${commands[@]}"; do
    # shellcheck disable=SC2086
    if "$LEMMA" $c --help >"$tmp/help" 2>"$tmp/err" && [ ! -s "$tmp/err" ] &&
       [ "$(head -1 "$tmp/help" | cut -d' ' -f1-$(( $(wc -w <<<"$c") + 2 )))" = "usage: lemma $c" ] &&
       grep -q -- "-h, --help" "$tmp/help"; then ok "$c --help"
    else bad "$c --help"; head -3 "$tmp/help" "$tmp/err"; fi
    # shellcheck disable=SC2086
    usage_error "$c: unknown option" "lemma $c: unknown option '--bogus' (see lemma $c --help)" "$LEMMA" $c --bogus
done

# a malformed value of each command, in both spellings
for c in info logits generate bench chat init build train prove verify; do
    usage_error "$c --threads abc" "lemma $c: --threads expects an integer in 1..1024, got 'abc'" "$LEMMA" $c --threads abc
    usage_error "$c -t=0" "lemma $c: -t expects an integer in 1..1024, got '0'" "$LEMMA" $c -t=0
done
usage_error "tokenize --bench x" "lemma tokenize: --bench expects an integer in 1..1000000, got 'x'" \
    "$LEMMA" tokenize DIR TEXT --bench x
usage_error "tokenizer train --vocab=-1" "lemma tokenizer train: --vocab expects an integer in 0..2147483647, got '-1'" \
    "$LEMMA" tokenizer train a.txt --vocab=-1
usage_error "data --val-fraction 2" "lemma data: --val-fraction expects a number in 0..0.5, got '2'" \
    "$LEMMA" data a.txt --val-fraction 2
usage_error "tasks gen -n 1e3" "lemma tasks gen: -n expects an integer in 0..100000000, got '1e3'" "$LEMMA" tasks gen all -n 1e3
usage_error "tasks corrupt --seed" "lemma tasks corrupt: --seed needs a value (S)" "$LEMMA" tasks corrupt f --seed
usage_error "check --quiet=1" "lemma check: --quiet takes no value, got '--quiet=1'" "$LEMMA" check f --quiet=1
usage_error "detokenize --raw=no" "lemma detokenize: --raw takes no value, got '--raw=no'" "$LEMMA" detokenize d 1 --raw=no
usage_error "plot --out" "lemma plot: --out needs a value (FILE)" "$LEMMA" plot run --out
usage_error "train --schedule" "lemma train: --schedule expects one of constant, cosine, wsd, got 'step'" \
    "$LEMMA" train --schedule step
usage_error "prove --no-meta=1" "lemma prove: --no-meta takes no value, got '--no-meta=1'" "$LEMMA" prove p --no-meta=1
usage_error "tasks list extra" "lemma tasks list: unexpected argument 'x' (see lemma tasks list --help)" "$LEMMA" tasks list x
usage_error "tokenizer info, no DIR" "lemma tokenizer info: missing DIR_OR_TOKENIZER_JSON (see lemma tokenizer info --help)" \
    "$LEMMA" tokenizer info
usage_error "tokenize, no text" "lemma tokenize: missing TEXT, --file F or --jsonl F (see lemma tokenize --help)" \
    "$LEMMA" tokenize DIR
usage_error "unknown tokenizer subcommand" "lemma tokenizer: unknown subcommand 'fit' (see lemma tokenizer --help)" \
    "$LEMMA" tokenizer fit

# --opt=VALUE and --opt VALUE, aliases and long names: the same bytes
"$LEMMA" tasks gen add,gcd --n 5 --seed 9 --difficulty 2..3 --out - >"$tmp/a" 2>/dev/null
"$LEMMA" tasks gen add,gcd -n=5 --seed=9 --difficulty=2..3 -o - >"$tmp/b" 2>/dev/null
[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b" && ok "--opt=VALUE is --opt VALUE" || bad "--opt=VALUE is --opt VALUE"
# defaults from the table: --difficulty 1..5, --seed 0
"$LEMMA" tasks gen all --n 10 --out - >"$tmp/a" 2>/dev/null
"$LEMMA" tasks gen all --n 10 --seed 0 --difficulty 1..5 --out - >"$tmp/b" 2>/dev/null
[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b" && ok "defaults from the table" || bad "defaults from the table"

echo "test_cli_options.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
