#!/usr/bin/env bash
# bench/batch_bench.sh — many sequences at once (issue 8): aggregate prefill
# and decode tok/s of `lemma bench --batch` at B = 1, 4, 16, 64 beside
# llama.cpp's batched decode on the same weights, measured in the same run,
# and what batch invariance costs lm_matmul (bench/bench_invariance).
#
#   bash bench/batch_bench.sh            # called by `make bench` (bench/run.sh)
#   BENCH_BATCH_PRESETS=bench-m BENCH_BATCH_THREADS=1 bash bench/batch_bench.sh
#
# For each preset x dtype x threads:
#   lemma     `lemma bench MODEL --batch 1,4,16,64 --prompt P --gen G --reps R --threads N`:
#             one JSON line per B, {"batch", "prefill_tok_s", "decode_tok_s", ...};
#   llama.cpp `bench/llamacpp_bench.sh MODEL --batch ...` (bench/llamacpp/bench.mjs
#             batched): B prompts of P tokens prefilled, then G steps, each ONE
#             llama_decode carrying one token for each of the B sequences (as
#             llama-batched-bench); aggregate tok/s over the B sequences.
# Then a table with the ratios (> 1: lemma faster) and lemma's decode at B
# over its own B = 1 (issue 8's target: >= 6x at B = 16 on bench-m).
# Without `lemma bench --batch` (an older lemma) the lemma columns say so and
# llama.cpp is still measured.
#
# Environment: LEMMA_BIN (./lemma), LEMMA_BUILD (build/release), LEMMA_SHARED
# (../shared), BENCH_BATCH_PRESETS (BENCH_PRESETS, else "bench-s bench-m"),
# BENCH_BATCH_DTYPES (BENCH_DTYPES, else "f32 bf16"), BENCH_BATCH_THREADS
# (BENCH_THREADS, else "1 2"), BENCH_BATCH_SIZES (1,4,16,64),
# BENCH_BATCH_PROMPT (128), BENCH_BATCH_GEN (64), BENCH_BATCH_REPS (1),
# BENCH_NO_LLAMACPP=1, BENCH_NO_INVARIANCE=1, BENCH_TIMEOUT (600 s per
# command), BENCH_LLAMACPP_TIMEOUT (300), BENCH_RESULTS (JSON lines appended
# here; default build/bench/batch.jsonl, rewritten), BENCH_QUICK=1 (B = 1,16,
# prompt 32, gen 16, bench-s only unless BENCH_BATCH_PRESETS is given).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
PRESET_DIR=$SHARED/data/bench-presets
MODELS=build/bench-models
OUT=build/bench
PRESETS=${BENCH_BATCH_PRESETS:-${BENCH_PRESETS:-bench-s bench-m}}
DTYPES=${BENCH_BATCH_DTYPES:-${BENCH_DTYPES:-f32 bf16}}
THREADS=${BENCH_BATCH_THREADS:-${BENCH_THREADS:-1 2}}
SIZES=${BENCH_BATCH_SIZES:-1,4,16,64}
PROMPT=${BENCH_BATCH_PROMPT:-128}
GEN=${BENCH_BATCH_GEN:-64}
REPS=${BENCH_BATCH_REPS:-1}
TMO=${BENCH_TIMEOUT:-600}
LTMO=${BENCH_LLAMACPP_TIMEOUT:-300}
INV_ARGS=""
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    PRESETS=${BENCH_BATCH_PRESETS:-${BENCH_PRESETS:-bench-s}} SIZES=${BENCH_BATCH_SIZES:-1,16}
    PROMPT=${BENCH_BATCH_PROMPT:-32} GEN=${BENCH_BATCH_GEN:-16} INV_ARGS=--quick
fi
mkdir -p "$OUT" "$MODELS"
RESULTS=${BENCH_RESULTS:-}
if [ -z "$RESULTS" ]; then RESULTS=$OUT/batch.jsonl; : >"$RESULTS"; fi
err=$OUT/batch.stderr.log; : >"$err"; rm -f "$OUT/invariance.txt"
note() { printf '%s\n' "$*" >&2; }
die() { note "batch_bench: $*"; exit 1; }
record() { printf '{"bench":"%s","preset":"%s","dtype":"%s","threads":%s,"result":%s}\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"; }
PY=python3; command -v python3 >/dev/null || PY=/usr/bin/python3
command -v "$PY" >/dev/null || die "python3 is needed to print the table"
[ -x "$LEMMA" ] || die "$LEMMA not found (run make first)"
case $SIZES in *[!0-9,]*|,*|*,|*,,*|"") die "BENCH_BATCH_SIZES: a comma-separated list of sizes, not '$SIZES'" ;; esac

cpu=$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -n 1)
record batch_machine - - 0 "$(printf '{"cpu":"%s","cores":%s,"date":"%s","git":"%s","loadavg_start":"%s","sizes":"%s","prompt":%s,"gen":%s,"reps":%s}' \
    "$cpu" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$SIZES" "$PROMPT" "$GEN" "$REPS")"
note "== batched decode: B = $SIZES, prompt $PROMPT, gen $GEN, reps $REPS; presets $PRESETS; dtypes $DTYPES; threads $THREADS"

lemma_ok=1 lemma_note="lemma bench --batch"
if ! "$LEMMA" bench --help 2>&1 | grep -q -- '--batch'; then
    lemma_ok=0 lemma_note="this lemma has no 'bench --batch' (the batched engine is not in this build)"
    note "   $lemma_note: llama.cpp only"
fi
llama_ok=1 llama_note="bench/llamacpp_bench.sh --batch (bench/llamacpp/bench.mjs batched)"
if [ "${BENCH_NO_LLAMACPP:-0}" = 1 ]; then llama_ok=0 llama_note="skipped (BENCH_NO_LLAMACPP=1)"; fi

for p in $PRESETS; do
    [ -f "$PRESET_DIR/$p.json" ] || die "$PRESET_DIR/$p.json: preset not found"
    for d in $DTYPES; do
        dir=$MODELS/$p-$d
        if ! { [ -f "$dir/config.json" ] && [ -f "$dir/model.safetensors" ] && cmp -s "$PRESET_DIR/$p.json" "$dir/config.json"; }; then
            note "== creating $dir (lemma init --seed 1 --dtype $d)"
            "$LEMMA" init "$PRESET_DIR/$p.json" --out "$dir" --dtype "$d" --seed 1 --force >&2 || die "lemma init failed for $dir"
        fi
        for t in $THREADS; do
            note "== $p $d, $t thread(s)"
            if [ $lemma_ok = 1 ]; then
                out=$(timeout "$TMO" "$LEMMA" bench "$dir" --batch "$SIZES" --prompt "$PROMPT" --gen "$GEN" \
                      --reps "$REPS" --threads "$t" 2>>"$err")
                rc=$?
                n=0
                while IFS= read -r j; do
                    case $j in '{'*'"batch"'*'}') record lemma_batch "$p" "$d" "$t" "$j"; note "   lemma  $j"; n=$((n + 1)) ;; esac
                done <<<"$out"
                [ $n -gt 0 ] || note "   lemma bench --batch failed (exit $rc; see $err)"
            fi
            if [ $llama_ok = 1 ]; then
                out=$(timeout "$LTMO" bench/llamacpp_bench.sh "$dir" --threads "$t" --batch "$SIZES" \
                      --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" 2>>"$err")
                rc=$?
                n=0
                while IFS= read -r j; do
                    case $j in '{'*'"batch"'*'}') record llamacpp_batch "$p" "$d" "$t" "$j"; note "   llama  ${j:0:160}"; n=$((n + 1)) ;; esac
                done <<<"$out"
                if [ $rc = 124 ]; then
                    record llamacpp_batch_timeout "$p" "$d" "$t" "{\"timeout_s\":$LTMO}"
                    note "   llama.cpp timed out after $LTMO s (ggml's spinning pool on a busy machine)"
                elif [ $rc = 3 ]; then
                    llama_ok=0 llama_note="llama.cpp unavailable (bench/llamacpp_bench.sh exit 3: no node/npm/package)"
                    note "   $llama_note"
                elif [ $n = 0 ]; then note "   llamacpp_bench.sh --batch failed (exit $rc; see $err)"; fi
            fi
        done
    done
done

INV=$BUILD/bench/bench_invariance
if [ "${BENCH_NO_INVARIANCE:-0}" != 1 ]; then
    if [ -x "$INV" ]; then
        maxth=1; for t in $THREADS; do [ "$t" -gt "$maxth" ] && maxth=$t; done
        note "== $INV --threads $maxth $INV_ARGS"
        out=$(timeout "$TMO" "$INV" --threads "$maxth" $INV_ARGS 2>>"$err")
        j=$(printf '%s\n' "$out" | grep -E '^\{.*\}$' | tail -n 1)
        [ -n "$j" ] && record invariance - - "$maxth" "$j"
        printf '%s\n' "$out" | grep -v '^{' >"$OUT/invariance.txt"
    else
        note "== $INV not built: no invariance cost in this run"
    fi
fi
record batch_end - - 0 "$(printf '{"loadavg_end":"%s","lemma":"%s","llamacpp":"%s"}' \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$lemma_note" "$llama_note")"

"$PY" - "$RESULTS" "$OUT/invariance.txt" "$PRESET_DIR" <<'PYEOF'
import json, os, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def one(bench):
    r = [x["result"] for x in rows if x["bench"] == bench]
    return r[-1] if r else {}
m, end = one("batch_machine"), one("batch_end")
by = {}
for r in rows:
    if r["bench"] in ("lemma_batch", "llamacpp_batch"):
        by[(r["bench"], r["preset"], r["dtype"], r["threads"], r["result"]["batch"])] = r["result"]
timeouts = {(r["preset"], r["dtype"], r["threads"]) for r in rows if r["bench"] == "llamacpp_batch_timeout"}
keys = []
for (b, p, d, t, B) in by:
    if (p, d, t, B) not in keys:
        keys.append((p, d, t, B))
order = {"bench-s": 0, "bench-m": 1}
keys.sort(key=lambda k: (order.get(k[0], 9), k[0], k[1] != "f32", k[2], k[3]))

def fmt(v):
    return "-" if v is None else "{:,.0f}".format(v)
def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"

print()
print("Batched decode (issue 8) — %s, %s cores, %s, git %s, load average %s at start, %s at end" % (
    m.get("cpu", "?"), m.get("cores", "?"), m.get("date", "?"), m.get("git", "?"),
    m.get("loadavg_start", "?"), end.get("loadavg_end", "?")))
print("B sequences: prefill = B prompts of %s tokens, decode = %s steps of B tokens (one forward / one llama_decode"
      " each); aggregate tok/s over the B sequences; reps %s (median)" % (m.get("prompt"), m.get("gen"), m.get("reps")))
print()
hdr = ("preset", "dtype", "thr", "B", "lemma pp", "lemma tg", "llama.cpp pp", "llama.cpp tg",
       "lemma/llama pp", "lemma/llama tg", "lemma tg / B=1")
lines = []
for (p, d, t, B) in keys:
    L = by.get(("lemma_batch", p, d, t, B), {})
    C = by.get(("llamacpp_batch", p, d, t, B), {})
    L1 = by.get(("lemma_batch", p, d, t, 1), {})
    cpp = "timeout" if not C and (p, d, t) in timeouts else None
    lines.append((p, d.upper(), str(t), str(B), fmt(L.get("prefill_tok_s")), fmt(L.get("decode_tok_s")),
                  cpp or fmt(C.get("prefill_tok_s")), cpp or fmt(C.get("decode_tok_s")),
                  ratio(L.get("prefill_tok_s"), C.get("prefill_tok_s")),
                  ratio(L.get("decode_tok_s"), C.get("decode_tok_s")),
                  ratio(L.get("decode_tok_s"), L1.get("decode_tok_s"))))
w = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(hdr)]
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for l in lines:
    print("| " + " | ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(l)) + " |")
print()
print("lemma:     %s" % end.get("lemma", "?"))
print("llama.cpp: %s" % end.get("llamacpp", "?"))
print("           v0.4.0 via node-llama-cpp 3.21.1 prebuilt CPU libraries, F16 KV cache (one stream per sequence),")
print("           flash attention auto (enabled), n_batch = n_ubatch = max(512, B), same GGUF-converted weights")
targets = []
for (p, d, t, B) in keys:
    if p == "bench-m" and B == 16:
        L, L1 = by.get(("lemma_batch", p, d, t, 16), {}), by.get(("lemma_batch", p, d, t, 1), {})
        if L.get("decode_tok_s") and L1.get("decode_tok_s"):
            r = L["decode_tok_s"] / L1["decode_tok_s"]
            targets.append("%s %s %st: %.2fx%s" % (p, d.upper(), t, r, "" if r >= 6 else " (below 6x)"))
if targets:
    print("target, bench-m decode at B=16 over B=1 >= 6x: " + "; ".join(targets))

def traffic_ceiling(cfg_path, B):
    """B-token decode over 1-token decode if both only read weights: a step reads the
    shared weights once and every routed expert some token chose (uniform routing)."""
    c = json.load(open(cfg_path))
    H, nh, L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
    ql = c.get("q_lora_rank") or 0
    qd = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    attn = (H * ql + ql * nh * qd if ql else H * nh * qd) + H * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) + \
        c["kv_lora_rank"] * nh * (c["qk_nope_head_dim"] + c["v_head_dim"]) + nh * c["v_head_dim"] * H
    E, k, fk = c["n_routed_experts"], c["num_experts_per_tok"], c["first_k_dense_replace"]
    expert = 3 * H * c["moe_intermediate_size"]
    shared = attn * L + 3 * H * c["intermediate_size"] * fk + (L - fk) * (c["n_shared_experts"] * expert + E * H) + \
        c["vocab_size"] * H
    routed = (L - fk) * E * expert
    return B * (shared + routed * k / E) / (shared + routed * (1 - (1 - k / E) ** B)), E, k
try:
    bound, E, k = traffic_ceiling(os.path.join(sys.argv[3], "bench-m.json"), 16)
    print("           (bench-m's weight-traffic bound for that ratio, %d experts top-%d, uniform routing: %.1fx)"
          % (E, k, bound))
except (OSError, KeyError, ValueError, ZeroDivisionError):
    pass
behind = []
for (p, d, t, B) in keys:
    L, C = by.get(("lemma_batch", p, d, t, B), {}), by.get(("llamacpp_batch", p, d, t, B), {})
    for k, name in (("prefill_tok_s", "pp"), ("decode_tok_s", "tg")):
        if L.get(k) and C.get(k) and L[k] < C[k]:
            behind.append("%s %s %st B=%d %s %.2f" % (p, d.upper(), t, B, name, L[k] / C[k]))
if any(by.get(("llamacpp_batch",) + k) for k in keys) and any(by.get(("lemma_batch",) + k) for k in keys):
    print("target, lemma >= llama.cpp at every B: " + ("met in every cell" if not behind else
          "behind in " + "; ".join(behind)))
inv = sys.argv[2]
if os.path.exists(inv) and os.path.getsize(inv) > 0:
    print()
    print("The cost of batch invariance (bench/bench_invariance):")
    sys.stdout.write(open(inv).read())
print("results: %s" % sys.argv[1])
PYEOF
