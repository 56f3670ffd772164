#!/usr/bin/env bash
# bench/serve_bench.sh — `lemma serve` under load (issue 8): C concurrent
# streaming chat clients on loopback (bench/serve_load.mjs) against the same
# work through the engine directly (`lemma bench --batch C` with the prompt
# and completion lengths the clients got), so the server's overhead is a
# number.  Skips with a message (exit 0) when this lemma has no `serve`, or
# node is missing.
#
#   bash bench/serve_bench.sh                 # also run by `make bench`
#   SERVE_BENCH_CLIENTS=16 bash bench/serve_bench.sh
#
# The model: bench-m (F32, `lemma init --seed 1`, as the other benchmarks)
# with a byte-level BPE tokenizer of the same 8192 ids trained here on
# lemma's own sources (the random model needs some tokenizer to serve text):
# build/bench-models/serve-bench-m-f32.  The server runs with
# --max-seqs C --threads N; its peak RSS is VmHWM from /proc at the end.
# The load is greedy (temperature 0), as the engine bench decodes; then the
# same load once more at temperature 1, to show what sampling adds.
# Reported: aggregate completion tokens/s over the wall time, time to first
# token and inter-token latency p50/p99, peak RSS; the engine's time for the
# same work, C*P/prefill_tok_s + C*G/decode_tok_s from `lemma bench --batch
# C --prompt P --gen G`, as tokens/s; and server / engine.
#
# Environment: LEMMA_BIN (./lemma), LEMMA_SHARED (../shared),
# SERVE_BENCH_CLIENTS (64), SERVE_BENCH_PROMPT (128), SERVE_BENCH_GEN (64),
# SERVE_BENCH_THREADS (the largest of BENCH_THREADS, else 2), SERVE_BENCH_DTYPE (f32), BENCH_TIMEOUT (600),
# BENCH_RESULTS (JSON lines appended here; default build/bench/serve.jsonl,
# rewritten), BENCH_QUICK=1 (16 clients, prompt 32, gen 16).
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
C=${SERVE_BENCH_CLIENTS:-64}
P=${SERVE_BENCH_PROMPT:-128}
G=${SERVE_BENCH_GEN:-64}
maxth=1; for t in ${BENCH_THREADS:-1 2}; do [ "$t" -gt "$maxth" ] && maxth=$t; done
TH=${SERVE_BENCH_THREADS:-$maxth}
DT=${SERVE_BENCH_DTYPE:-f32}
TMO=${BENCH_TIMEOUT:-600}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    C=${SERVE_BENCH_CLIENTS:-16} P=${SERVE_BENCH_PROMPT:-32} G=${SERVE_BENCH_GEN:-16}
fi
OUT=build/bench
mkdir -p "$OUT"
RESULTS=${BENCH_RESULTS:-}
if [ -z "$RESULTS" ]; then RESULTS=$OUT/serve.jsonl; : >"$RESULTS"; fi
log=$OUT/serve.log; : >"$log"
skip() { echo "serve bench: skipped: $*"; exit 0; }
die() { echo "serve bench: $*" >&2; exit 1; }
record() { printf '{"bench":"%s","preset":"bench-m","dtype":"%s","threads":%s,"result":%s}\n' "$1" "$DT" "$TH" "$2" >>"$RESULTS"; }

[ -x "$LEMMA" ] || die "$LEMMA not found (run make first)"
"$LEMMA" serve --help >/dev/null 2>&1 || skip "this lemma has no 'serve' command (the server is not in this build)"
command -v node >/dev/null 2>&1 || skip "node is not installed (the load client is bench/serve_load.mjs)"
command -v curl >/dev/null 2>&1 || skip "curl is not installed (used to wait for /health)"
PY=python3; command -v python3 >/dev/null || PY=/usr/bin/python3
command -v "$PY" >/dev/null || die "python3 is needed for the table"

# ---- the model: bench-m weights + a tokenizer of its 8192 ids -------------------
preset=$SHARED/data/bench-presets/bench-m.json
[ -f "$preset" ] || die "$preset: preset not found (set LEMMA_SHARED)"
base=build/bench-models/bench-m-$DT
model=build/bench-models/serve-bench-m-$DT
if ! { [ -f "$base/model.safetensors" ] && cmp -s "$preset" "$base/config.json"; }; then
    "$LEMMA" init "$preset" --out "$base" --dtype "$DT" --seed 1 --force >>"$log" 2>&1 || die "lemma init failed (see $log)"
fi
if ! { [ -f "$model/tokenizer.json" ] && cmp -s "$preset" "$model/config.json" && [ "$model/model.safetensors" -ef "$base/model.safetensors" ]; }; then
    rm -rf "$model" && mkdir -p "$model"
    cat src/*/*.c src/*/*.h >"$model/corpus.txt"
    vocab=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$preset")
    "$LEMMA" tokenizer train "$model/corpus.txt" --vocab "$vocab" --out "$model" --quiet >>"$log" 2>&1 ||
        die "tokenizer train failed (see $log)"
    rm -f "$model/corpus.txt"
    cp "$preset" "$model/config.json"
    ln -s "$(cd "$base" && pwd)/model.safetensors" "$model/model.safetensors"
fi

# ---- the server ---------------------------------------------------------------
echo "== lemma serve $model --port 0 --max-seqs $C --threads $TH ($C clients, prompt ~$P, max_tokens $G)"
"$LEMMA" serve "$model" --host 127.0.0.1 --port 0 --max-seqs "$C" --threads "$TH" >>"$log" 2>&1 &
spid=$!
stop_server() {
    if kill -0 "$spid" 2>/dev/null; then
        kill -TERM "$spid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$spid" 2>/dev/null
    fi
    wait "$spid" 2>/dev/null
}
trap stop_server EXIT
up=0 port=""
for _ in $(seq 1 600); do
    kill -0 "$spid" 2>/dev/null || break
    # --port 0: the server picks a free port and prints it
    [ -n "$port" ] || port=$(sed -nE 's#.*listening on http://127\.0\.0\.1:([0-9]+).*#\1#p' "$log" | head -n 1)
    if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; then
        up=1; break
    fi
    sleep 0.1
done
[ $up = 1 ] || { tail -n 5 "$log" >&2; die "lemma serve did not become healthy (port '${port}'; see $log)"; }

server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$spid/stat" 2>/dev/null; }
cpu0=$(server_cpu)
# Greedy (temperature 0), as `lemma bench --batch` decodes: the same work.
load=$(timeout "$TMO" node bench/serve_load.mjs --url "http://127.0.0.1:$port" --clients "$C" --prompt "$P" \
       --max-tokens "$G" --temperature 0 2>>"$log")
lrc=$?
rss_kib=$(sed -nE 's/^VmHWM:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$spid/status" 2>/dev/null)
# the server's CPU seconds (utime + stime) during the load and its calibration
cpu_s=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
# The same load sampled at temperature 1 (seed + k): what sampling adds.
load_t1=$(timeout "$TMO" node bench/serve_load.mjs --url "http://127.0.0.1:$port" --clients "$C" --prompt "$P" \
          --max-tokens "$G" --temperature 1 2>>"$log" | grep -E '^\{.*\}$' | tail -n 1)
[ -n "$load_t1" ] && record serve_load_t1 "$load_t1"
stop_server
trap - EXIT
load=$(printf '%s\n' "$load" | grep -E '^\{.*\}$' | tail -n 1)
[ -n "$load" ] || { tail -n 5 "$log" >&2; die "the load client printed nothing (exit $lrc; see $log)"; }
[ $lrc = 0 ] || echo "serve bench: some requests failed (see $log)"
record serve_load "$(printf '%s' "$load" | sed -E "s/\}\$/,\"server_peak_rss_mib\":$(awk -v k="${rss_kib:-0}" 'BEGIN{printf "%.1f", k/1024}'),\"server_cpu_s\":${cpu_s:-0}}/")"

# ---- the same work through the engine -----------------------------------------
read -r pt ct <<<"$("$PY" -c "import json,sys; j=json.loads(sys.argv[1]); n=max(1,j['ok']); print(round(j['prompt_tokens'] or $P), max(1, round(j['completion_tokens']/n)))" "$load")"
echo "== lemma bench $model --batch $C --prompt $pt --gen $ct --threads $TH --reps 1 (the engine alone)"
eng=""
if "$LEMMA" bench --help 2>&1 | grep -q -- '--batch'; then
    eng=$(timeout "$TMO" "$LEMMA" bench "$model" --batch "$C" --prompt "$pt" --gen "$ct" --threads "$TH" --reps 1 2>>"$log" |
          grep -E '^\{.*"batch".*\}$' | tail -n 1)
    [ -n "$eng" ] && record serve_engine "$eng" || echo "serve bench: lemma bench --batch failed (see $log)"
else
    echo "serve bench: this lemma has no 'bench --batch': no engine-alone figure"
fi

[ -n "$eng" ] || eng='{}'
"$PY" - "$load" "$eng" "${rss_kib:-0}" "$C" "$TH" "$pt" "$ct" "${cpu_s:-0}" "${load_t1:-{\}}" <<'PYEOF'
import json, sys
L, E, rss, C, th = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pt, ct, scpu, L1 = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8]), json.loads(sys.argv[9])
print()
print("lemma serve, %d streaming chat clients on loopback, bench-m, %s threads, greedy: %d ok, %d failed" % (C, th, L["ok"], L["errors"]))
print("  prompt %.0f tokens (mean), %d completion tokens in all, wall %.2f s" % (L["prompt_tokens"] or 0, L["completion_tokens"], L["wall_s"]))
print("  aggregate %.1f tok/s; time to first token p50 %s ms, p99 %s ms; inter-token p50 %s ms, p99 %s ms; server peak RSS %.1f MiB" % (
    L["agg_tok_s"], L["ttft_ms"]["p50"], L["ttft_ms"]["p99"], L["itl_ms"]["p50"], L["itl_ms"]["p99"], rss / 1024))
print("  CPU time during the load: the server %.2f s, the load client %.2f s, over %.2f s wall (calibration included for the server)" % (
    scpu, L.get("client_cpu_s", 0), L["wall_s"]))
if E.get("decode_tok_s") and E.get("prefill_tok_s"):
    B = E.get("batch", C)
    t = B * pt / E["prefill_tok_s"] + B * ct / E["decode_tok_s"]
    eng = B * ct / t
    print("  the engine alone (lemma bench --batch %d --prompt %d --gen %d): prefill %.0f tok/s, decode %.0f tok/s;" % (
        B, pt, ct, E["prefill_tok_s"], E["decode_tok_s"]))
    print("  the same work (prefill + decode) at %.1f completion tok/s: server / engine = %.2f (overhead %.0f%%)" % (
        eng, L["agg_tok_s"] / eng, 100 * (1 - L["agg_tok_s"] / eng)))
if L1.get("agg_tok_s"):
    print("  the same load sampled at temperature 1: %.1f tok/s, inter-token p50 %s ms, p99 %s ms (%.2f of greedy)" % (
        L1["agg_tok_s"], L1["itl_ms"]["p50"], L1["itl_ms"]["p99"], L1["agg_tok_s"] / L["agg_tok_s"]))
PYEOF
