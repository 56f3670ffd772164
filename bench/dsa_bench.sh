#!/usr/bin/env bash
# bench/dsa_bench.sh — DeepSeek-V3.2 sparse attention at long context
# (bench/bench_dsa.c): decode tok/s with DSA beside dense attention on the
# same small synthetic V3.2 model (bench/dsa/config.json: 2 layers, 16 heads,
# kv_lora 256, index_topk 512, indexer 4 heads x 128, random weights from
# `lemma init --seed 1`), at contexts 1K, 4K, 16K, interleaved in one run.
# Dense = the same model and cache with every position chosen (index_topk
# raised to the context): the attention lemma ran before DSA. Past
# index_topk the DSA cost per token grows only with the indexer's small dot
# products; dense grows with the whole attention.
#
# Environment: LEMMA_BIN, LEMMA_BUILD, BENCH_RESULTS (JSON lines appended),
# BENCH_DSA_CTX ("1024,4096,16384"), BENCH_DSA_GEN (16), BENCH_DSA_THREADS (1).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
LEMMA=${LEMMA_BIN:-./lemma}
model=build/bench-models/dsa-s
if [ ! -f "$model/model.safetensors" ] || [ bench/dsa/config.json -nt "$model/model.safetensors" ]; then
    "$LEMMA" init bench/dsa/config.json --out "$model" --seed 1 >/dev/null || exit 1
fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
"$BUILD/bench/bench_dsa" "$model" --ctx "${BENCH_DSA_CTX:-1024,4096,16384}" --gen "${BENCH_DSA_GEN:-16}" \
    --threads "${BENCH_DSA_THREADS:-1}" ${BENCH_RESULTS:+--json "$BENCH_RESULTS"}
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
