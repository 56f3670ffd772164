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

# For tests that start `lemma serve` (the caller's EXIT trap must call
# serve_kill_all, so that no server outlives the test, whatever happens):
#   serve_start NAME MODEL_DIR ARGS...  starts `lemma serve MODEL_DIR --port 0 --threads 1 ARGS...`
#                                       logging to $tmp/NAME.log; sets port and pid once it
#                                       listens, adds pid to serve_pids; non-zero if it never does
#   serve_ready PORT                    waits until GET /health is 200 (the model is loaded)
#   serve_kill_all                      kill -9 and reap every server started
serve_pids=()
serve_slow=1; [ -n "${LEMMA_SANITIZE:-}" ] && serve_slow=4   # ASan builds run a few times slower
serve_start() {
    local name=$1 model=$2; shift 2
    "$LEMMA" serve "$model" --port 0 --threads 1 "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!; serve_pids+=("$pid")
    port=""
    for _ in $(seq 1 $((300 * serve_slow))); do
        port=$(sed -nE 's/^lemma serve: listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$tmp/$name.log")
        [ -n "$port" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $name did not start:"; sed 's/^/  /' "$tmp/$name.log"; return 1
}
serve_ready() {
    for _ in $(seq 1 $((400 * serve_slow))); do
        [ "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
        sleep 0.05
    done
    return 1
}
serve_kill_all() {
    local p
    for p in "${serve_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${serve_pids[@]}"; do wait "$p" 2>/dev/null; done
    return 0
}
