#!/usr/bin/env bash
# q8_bench.sh — Q8 decode (lemma quantize --type q8) beside F32 and beside
# llama.cpp on the same weights, interleaved in one run, with the machine's
# memory read bandwidth measured in the same run (bench_matmul).
#
#   bench/q8_bench.sh MODEL_DIR [--threads "1 2"] [--prompt 512] [--gen 128] [--reps 3] [--rounds 2]
#
# MODEL_DIR is an F32 checkpoint (e.g. build/bench-models/bench-m-f32). It
# writes (once, under build/): MODEL_DIR's Q8 checkpoint (build/q8-models/),
# llama.cpp's F32 GGUF (bench/llamacpp_bench.sh converts it) and its Q8_0
# copy quantized by the same rule (bench/gguf_q8_0.py: the same blocks).
# Each round runs, per thread count, lemma F32, lemma Q8, llama.cpp F32,
# llama.cpp Q8_0 back to back; every result is one JSON line on stdout,
# then a table with decode GB/s of stored weights and the ratios.
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
BUILD=${LEMMA_BUILD:-build/release}
[ $# -ge 1 ] || { echo "usage: $0 MODEL_DIR [--threads \"1 2\"] [--prompt 512] [--gen 128] [--reps 3] [--rounds 2]" >&2; exit 2; }
MODEL=$1; shift
THREADS="1 2" PROMPT=512 GEN=128 REPS=3 ROUNDS=2
while [ $# -gt 0 ]; do
    case $1 in
        --threads) THREADS=$2; shift 2 ;;
        --prompt) PROMPT=$2; shift 2 ;;
        --gen) GEN=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "q8_bench: unknown option $1" >&2; exit 2 ;;
    esac
done
name=$(basename "$(cd "$MODEL" && pwd)")
Q8=build/q8-models/${name%-f32}-q8
if [ ! -f "$Q8/model.safetensors" ] || [ "$MODEL/model.safetensors" -nt "$Q8/model.safetensors" ]; then
    rm -rf "$Q8"; "$LEMMA" quantize "$MODEL" "$Q8" >&2 || exit 1
fi
llama=1
GGUF=build/gguf/$name.gguf GGUF_Q8=build/gguf/${name%-f32}-q8_0.gguf
bench/llamacpp_bench.sh "$MODEL" --threads 1 --prompt 16 --gen 4 --reps 1 >/dev/null 2>&1 || llama=0 # converts once
if [ $llama = 1 ] && { [ ! -f "$GGUF_Q8" ] || [ "$GGUF" -nt "$GGUF_Q8" ]; }; then
    /usr/bin/python3 bench/gguf_q8_0.py "$GGUF" "$GGUF_Q8" >&2 || llama=0
fi
[ $llama = 1 ] || echo "q8_bench: llama.cpp unavailable (bench/llamacpp_bench.sh failed): lemma only" >&2
load0=$(cut -d' ' -f1-3 /proc/loadavg)
bw=$("$BUILD/bench/bench_matmul" --threads 2 --quick 2>/dev/null | grep -E '^\{' | tail -n 1)
log=$(mktemp); trap 'rm -f "$log"' EXIT
exec 3>&1 1> >(tee "$log" >&3)
echo "{\"machine\":\"$(lscpu | sed -nE 's/^Model name: *//p' | head -n 1)\",\"git\":\"$(git rev-parse --short HEAD)\",\"date\":\"$(date -u +%FT%TZ)\",\"loadavg_start\":\"$load0\",\"matmul\":$bw}"
for round in $(seq "$ROUNDS"); do
    for t in $THREADS; do
        for what in lemma-f32 lemma-q8 llama-f32 llama-q8_0; do
            case $what in
                lemma-f32) j=$("$LEMMA" bench "$MODEL" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" --threads "$t" 2>/dev/null | tail -n 1) ;;
                lemma-q8) j=$("$LEMMA" bench "$Q8" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" --threads "$t" 2>/dev/null | tail -n 1) ;;
                llama-f32) [ $llama = 1 ] || continue
                    j=$(timeout 300 bench/llamacpp_bench.sh "$MODEL" --threads "$t" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" 2>/dev/null | tail -n 1) ;;
                llama-q8_0) [ $llama = 1 ] || continue
                    j=$(LLAMACPP_NODE_DIR=build/llamacpp-node timeout 300 node bench/llamacpp/bench.mjs bench --model "$GGUF_Q8" \
                        --threads "$t" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" 2>/dev/null | tail -n 1) ;;
            esac
            echo "{\"round\":$round,\"threads\":$t,\"what\":\"$what\",\"result\":${j:-null},\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
        done
    done
done
exec 1>&3
sleep 0.2
python3 - "$log" <<'PY'
import json, sys, statistics
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
head = lines[0]; mm = head.get("matmul") or {}
runs = {}
for l in lines[1:]:
    if l.get("result"):
        runs.setdefault((l["threads"], l["what"]), []).append(l["result"])
def med(t, w, k):
    v = [r[k] for r in runs.get((t, w), []) if r.get(k)]
    return statistics.median(v) if v else None
print("machine %s, git %s, %s, load average at start %s" % (head["machine"], head["git"], head["date"], head["loadavg_start"]))
print("| thr | lemma F32 tok/s | lemma Q8 tok/s | Q8 GB/s (% of mem) | llama.cpp F32 | llama.cpp Q8_0 | Q8 / llama Q8_0 | F32 / llama F32 | prefill Q8 / llama Q8_0 | per CPU s: Q8 / llama Q8_0 | F32 / llama F32 | prefill Q8 / llama Q8_0 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for t in sorted(set(k[0] for k in runs)):
    f, q, lf, lq = (med(t, w, "decode_tok_s") for w in ("lemma-f32", "lemma-q8", "llama-f32", "llama-q8_0"))
    gb = med(t, "lemma-q8", "decode_weight_gb_s"); bw = mm.get("mem_read_%dt" % t)
    pq, plq = med(t, "lemma-q8", "prefill_tok_s"), med(t, "llama-q8_0", "prefill_tok_s")
    fmt = lambda x: "%.0f" % x if x else "-"
    rat = lambda a, b: "%.2f" % (a / b) if a and b else "-"
    fc, qc, lfc, lqc = (med(t, w, "decode_tok_cpu_s") for w in ("lemma-f32", "lemma-q8", "llama-f32", "llama-q8_0"))
    pqc, plqc = med(t, "lemma-q8", "prefill_tok_cpu_s"), med(t, "llama-q8_0", "prefill_tok_cpu_s")
    print("| %d | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |" % (t, fmt(f), fmt(q), "%.1f" % gb if gb else "-",
          "%.0f%%" % (100 * gb / bw) if gb and bw else "-", fmt(lf), fmt(lq), rat(q, lq), rat(f, lf), rat(pq, plq),
          rat(qc, lqc), rat(fc, lfc), rat(pqc, plqc)))
print("per CPU s: tokens per CPU second of each process (at 1 thread what time-sharing does not distort)")
print("medians over %d rounds; memory read bandwidth (bench_matmul, this run): %s GB/s at 1 thread, %s at 2"
      % (max(len(v) for v in runs.values()) if runs else 0, mm.get("mem_read_1t"), mm.get("mem_read_2t")))
PY
