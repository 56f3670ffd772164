#!/usr/bin/env bash
# test_bench_serve_load.sh — the server benchmark's load client
# (bench/serve_load.mjs, used by bench/serve_bench.sh) against a real
# `lemma serve` on a tiny model: every client answered, the token counts it
# reports are the server's, its latencies are present and ordered; and a
# server that refuses every request makes it fail with the server's message.
# Times nothing (speed is the benchmark's business). Skips visibly without
# node or curl.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
skip() { echo "skip test_bench_serve_load: $1"; echo "test_bench_serve_load: 0 passed, 0 failed, 1 skipped"; exit 0; }
command -v node >/dev/null 2>&1 || skip "node not installed"
command -v curl >/dev/null 2>&1 || skip "curl not installed"
"$LEMMA" serve --help >/dev/null 2>&1 || skip "this lemma has no serve command"

cat src/*/*.c >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 600 --out "$tmp/m" --quiet || { echo "tokenizer train failed"; exit 1; }
vocab=$("$LEMMA" tokenizer info "$tmp/m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json >"$tmp/config.json"
"$LEMMA" init "$tmp/config.json" --out "$tmp/m" --seed 3 >/dev/null 2>&1 || { echo "init failed"; exit 1; }

spid=""
stop() { [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null && wait "$spid" 2>/dev/null; spid=""; }
trap 'stop; rm -rf "$tmp"' EXIT
# start_server [ENV=VALUE]: sets port and spid
start_server() {
    env "$@" "$LEMMA" serve "$tmp/m" --port 0 --max-seqs 4 --threads 1 >"$tmp/serve.log" 2>&1 &
    spid=$!
    port=""
    for _ in $(seq 1 200); do
        port=$(sed -nE 's#.*listening on http://127\.0\.0\.1:([0-9]+).*#\1#p' "$tmp/serve.log" | head -n 1)
        [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && return 0
        sleep 0.05
    done
    cat "$tmp/serve.log"; return 1
}

if start_server; then
    if timeout 120 node bench/serve_load.mjs --url "http://127.0.0.1:$port" --clients 4 --prompt 24 \
            --max-tokens 5 >"$tmp/load.json" 2>"$tmp/load.err"; then
        ok "serve_load: exit 0 against lemma serve"
    else
        bad "serve_load: exit 0 against lemma serve"; cat "$tmp/load.err"
    fi
    if python3 - "$tmp/load.json" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert j["clients"] == 4 and j["ok"] == 4 and j["errors"] == 0, j
assert j["completion_tokens"] == 20, j          # ignore_eos: every client gets max_tokens
assert abs(j["prompt_tokens"] - 24) <= 4, j     # calibrated from the server's usage
t, i = j["ttft_ms"], j["itl_ms"]
assert 0 < t["p50"] <= t["p99"] <= t["max"], t
assert 0 <= i["p50"] <= i["p99"] <= i["max"], i
assert j["wall_s"] > 0 and j["agg_tok_s"] > 0, j
EOF
    then ok "serve_load: 4 clients answered in full, usage counts, TTFT and inter-token percentiles"
    else bad "serve_load: report"; cat "$tmp/load.json"; fi
    stop
else
    bad "lemma serve did not start"
fi

# With a key required and none given, every request is refused: the client
# stops with the server's answer instead of reporting numbers.
if start_server LEMMA_API_KEY=secret; then
    check_fails "serve_load: a refused request is an error, with the server's answer" "HTTP 401" \
        timeout 60 node bench/serve_load.mjs --url "http://127.0.0.1:$port" --clients 2 --prompt 8 --max-tokens 2
    stop
else
    bad "lemma serve did not start (with a key)"
fi

echo "test_bench_serve_load: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
