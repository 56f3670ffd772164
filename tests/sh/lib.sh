# lib.sh — shared by the shell tests that run commands and count results.
# Sourced after `cd` to the repository root; sets LEMMA, tmp (removed on
# exit), passed/failed and:
#   ok NAME / bad NAME               count one result
#   check NAME CMD...                CMD must succeed (its output shown if not)
#   check_fails NAME WANT CMD...     CMD must fail with WANT in its output
LEMMA=${LEMMA_BIN:-./lemma}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@" >"$tmp/out" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/  /' "$tmp/out" | head -20; fi; }
check_fails() { # name, expected message part, command...
    local name=$1 want=$2; shift 2
    if "$@" >"$tmp/out" 2>&1; then bad "$name (succeeded)"; sed 's/^/  /' "$tmp/out" | head -5
    elif ! grep -q -- "$want" "$tmp/out"; then bad "$name (message)"; sed 's/^/  /' "$tmp/out" | head -5
    else ok "$name"; fi
}
