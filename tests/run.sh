#!/usr/bin/env bash
# Runs every test program and every shell test, then prints the closing line
# "N passed, N failed, N skipped" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
export LEMMA_BIN=${LEMMA_BIN:-$BUILD/lemma}
passed=0; failed=0; skipped=0; failed_progs=()
add_counts() { # parses "name: N passed, N failed, N skipped"
    local line; line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then failed=$((failed + 1)); failed_progs+=("$2 (no report)"); return; fi
    local p f s
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line"); s=${s:-0}
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}
log=$(mktemp); trap 'rm -f "$log"' EXIT
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    if "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
    cat "$log"
    add_counts "$log" "$name"
    if [ $rc -ne 0 ] && ! grep -qE ': [0-9]+ passed, [1-9][0-9]* failed' "$log"; then
        failed=$((failed + 1)); failed_progs+=("$name (exit $rc)")
    fi
done
for t in tests/sh/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    if bash "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
    cat "$log"
    add_counts "$log" "$name"
    if [ $rc -ne 0 ] && ! grep -qE ': [0-9]+ passed, [1-9][0-9]* failed' "$log"; then
        failed=$((failed + 1)); failed_progs+=("$name (exit $rc)")
    fi
done
[ ${#failed_progs[@]} -gt 0 ] && printf 'program failed: %s\n' "${failed_progs[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
