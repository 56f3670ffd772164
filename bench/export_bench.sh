#!/usr/bin/env bash
# bench/export_bench.sh — `lemma export` time and llama.cpp's load time of what
# it writes (issue 10), each beside an anchor measured in the same run:
#
#   export      `lemma export MODEL OUT.gguf --type T` wall time (reading the
#               safetensors, converting, writing, fsync, rename), MB/s of GGUF
#               written; anchor: copying the checkpoint's safetensors with
#               `cp` + `sync -f` (the I/O floor of a same-size rewrite), and the
#               ratio export / copy;
#   llama.cpp   `bench/llamacpp/bench.mjs load`: median over 3 loads of
#               llama_model_load on the GGUF (mmap, tensor checks) and of a
#               4096-token context; anchor: `lemma logits MODEL --ids 1`
#               (lemma's own load, panel packing included, plus one token).
#
#   bash bench/export_bench.sh        # called by `make bench` (bench/run.sh)
#   BENCH_EXPORT_MODELS="build/bench-models/bench-m-f32" BENCH_EXPORT_TYPES="f32 q8_0" bash bench/export_bench.sh
#
# Models: build/bench-models/bench-m-f32 (made by bench/run.sh) and the default
# recipe's build/default/prover when they exist. Measurements are interleaved
# per model (copy, then each type's export and load) so a load change on the
# shared machine hits them alike; the load average is printed before and after.
# JSON lines go to BENCH_RESULTS (default build/bench/export.jsonl, rewritten).
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
NODE_DIR=${LLAMACPP_NODE_DIR:-build/llamacpp-node}
OUT=build/bench/export
RESULTS=${BENCH_RESULTS:-build/bench/export.jsonl}
TYPES=${BENCH_EXPORT_TYPES:-f32 bf16 q8_0}
MODELS=${BENCH_EXPORT_MODELS:-build/bench-models/bench-m-f32 build/default/prover}
mkdir -p "$OUT" "$(dirname "$RESULTS")"
[ -n "${BENCH_RESULTS:-}" ] || : >"$RESULTS"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
llama=1
if ! command -v node >/dev/null 2>&1 || ! bench/llamacpp/setup.sh "$NODE_DIR" >/dev/null 2>&1; then
    llama=0; echo "llama.cpp (node-llama-cpp) unavailable: load times not measured"
fi
[ -x "$LEMMA" ] || { echo "export_bench: $LEMMA not built"; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  (the machine is shared: figures are from a loaded machine)"
printf '%-12s %-5s %9s %8s %9s %9s %7s %10s %9s %10s\n' model type "GGUF MiB" export_s "MB/s" copy_s "x copy" llama_load "llama_ctx" lemma_load
for m in $MODELS; do
    [ -f "$m/config.json" ] || { echo "skip $m: not built"; continue; }
    name=$(basename "$m")
    # anchor: a plain copy of the checkpoint's bytes, synced
    rm -rf "$OUT/copy"; mkdir -p "$OUT/copy"
    t0=$(now); cp "$m"/*.safetensors "$OUT/copy/" && sync -f "$OUT/copy"/*.safetensors; t1=$(now)
    copy_s=$(secs "$t0" "$t1"); rm -rf "$OUT/copy"
    t0=$(now); "$LEMMA" logits "$m" --ids 1 --threads 1 >/dev/null 2>&1; t1=$(now)
    lemma_s=$(secs "$t0" "$t1")
    for t in $TYPES; do
        g=$OUT/$name-$t.gguf
        rm -f "$g"
        t0=$(now)
        if ! "$LEMMA" export "$m" "$g" --type "$t" >"$OUT/log" 2>&1; then echo "export of $m failed:"; cat "$OUT/log"; continue; fi
        t1=$(now)
        exp_s=$(secs "$t0" "$t1")
        bytes=$(stat -c %s "$g")
        load='{}'
        if [ $llama = 1 ]; then
            load=$(LLAMACPP_NODE_DIR=$NODE_DIR timeout 300 node bench/llamacpp/bench.mjs load --model "$g" --reps 3 \
                   --threads 1 2>/dev/null | grep -E '^\{' | tail -n 1)
            [ -n "$load" ] || load='{}'
        fi
        ll=$(printf '%s' "$load" | sed -nE 's/.*"load_s":([0-9.e-]+).*/\1/p')
        lc=$(printf '%s' "$load" | sed -nE 's/.*"context_s":([0-9.e-]+).*/\1/p')
        awk -v n="$name" -v t="$t" -v b="$bytes" -v e="$exp_s" -v c="$copy_s" -v l="${ll:-nan}" -v x="${lc:-nan}" -v k="$lemma_s" \
            'function f(v) { return v == "nan" ? "-" : sprintf("%.3f", v) }
             BEGIN { printf "%-12s %-5s %9.1f %8.3f %9.1f %9.3f %7.2f %10s %9s %10.3f\n", n, t, b / 1048576, e, b / 1e6 / e, c, e / c, f(l), f(x), k }'
        printf '{"bench":"export","model":"%s","type":"%s","gguf_bytes":%s,"export_s":%s,"copy_s":%s,"lemma_load_s":%s,"llama":%s,"loadavg":"%s"}\n' \
            "$name" "$t" "$bytes" "$exp_s" "$copy_s" "$lemma_s" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
        rm -f "$g"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "export_s: lemma export wall time; x copy: export_s / (cp + sync of the safetensors);"
echo "llama_load / llama_ctx: median seconds of llama.cpp's model load / 4096-token context (node-llama-cpp 3.21.1,"
echo "llama.cpp v0.4.0, 3 loads); lemma_load: lemma logits --ids 1 (load, panel packing, one token). Results: $RESULTS"
