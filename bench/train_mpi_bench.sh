#!/usr/bin/env bash
# bench/train_mpi_bench.sh — data-parallel training (issue 12): tokens/s of
# `lemma train` on 1 process (the anchor) and under `mpirun -np 2`, 1 thread
# per rank, the all-reduce time per step and the scaling efficiency, measured
# in one run, printed as a table and recorded as JSON lines.
#
#   bash bench/train_mpi_bench.sh          # bench-s, 8 x 256, micro-batch 4, 6 steps each (~30 s)
#
# Both runs train the same model (../shared/data/bench-presets/bench-s.json,
# random init, seed 1) on the same windows of a small token corpus (lemma's
# own sources, a 320-id tokenizer: the model's 4096-id head is computed in
# full all the same), batch 8 x 256 in micro-batches of 4, so that 2 ranks
# get one micro-batch each. tokens/s is the median over the steps after the
# first of batch*seq / step time (metrics.jsonl); allreduce_s is rank 0's
# time from the end of its own passes to holding the summed gradient
# (waiting for the slower rank included, so it also measures imbalance);
# efficiency = tokens/s(2 ranks) / (2 * tokens/s(1 process)). The final
# weights of the two runs must be the same bits (the table says so).
#
# On a machine whose cores are shared with other work, 2 ranks x 1 thread
# compete with that work for the second core: say so with the numbers.
#
# Environment: LEMMA_BIN (./lemma), LEMMA_SHARED (../shared), MPI_BENCH_STEPS
# (6), MPI_BENCH_RANKS ("2"), MPI_BENCH_OUT (build/bench/results.jsonl).
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
STEPS=${MPI_BENCH_STEPS:-6}
RANKS=${MPI_BENCH_RANKS:-2}
RESULTS=${MPI_BENCH_OUT:-build/bench/results.jsonl}
W=build/bench-mpi
command -v mpirun >/dev/null || { echo "skip: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"; exit 0; }
ldd "$LEMMA" 2>/dev/null | grep -q libmpi || { echo "skip: $LEMMA was built without MPI"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$W" "$(dirname "$RESULTS")"
if [ ! -f "$W/data/meta.json" ] && [ ! -d "$W/data" ]; then
    cat src/*/*.c > "$W/corpus.txt"
    "$LEMMA" tokenizer train "$W/corpus.txt" --vocab 320 --out "$W/tok" --quiet || exit 1
    "$LEMMA" data "$W/corpus.txt" --tokenizer "$W/tok" --out "$W/data" --doc-sep blank >/dev/null 2>&1 || exit 1
fi
cfg=$SHARED/data/bench-presets/bench-s.json
[ -f "$cfg" ] || { echo "skip: no $cfg"; exit 0; }
args=(--config "$cfg" --data "$W/data" --steps "$STEPS" --batch 8 --micro-batch 4 --seq 256 --seed 1
      --threads 1 --log-every 1 --quiet)
# median of a metrics field over the steps after the first
# smallest value of a metrics field over the steps after the first
least() { grep -o "\"$2\": [0-9.]*" "$1/metrics.jsonl" | tail -n +2 | awk '{print $2}' | sort -g | head -1; }
med() { grep -o "\"$2\": [0-9.]*" "$1/metrics.jsonl" | tail -n +2 | awk '{print $2}' | sort -g |
        awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2); else print 0}'; }
rm -rf "$W/run-1"
"$LEMMA" train "${args[@]}" --out "$W/run-1" || { echo "1-process run failed"; exit 1; }
t1=$(med "$W/run-1" tokens_per_s)
load0=$(cut -d' ' -f1 /proc/loadavg)
printf '\n| ranks x threads | tokens/s | vs 1 process | efficiency | all-reduce s/step median (min) | gradient bytes | same bits |\n'
printf '|---|---:|---:|---:|---:|---:|---|\n'
printf '| 1 x 1 (anchor, no mpirun) | %.0f | 1.00 | 100%% | — | — | — |\n' "$t1"
for k in $RANKS; do
    rm -rf "$W/run-$k"
    timeout 600 mpirun -np "$k" --oversubscribe "$LEMMA" train "${args[@]}" --out "$W/run-$k" ||
        { echo "mpirun -np $k failed"; continue; }
    tk=$(med "$W/run-$k" tokens_per_s); ar=$(med "$W/run-$k" allreduce_s); armin=$(least "$W/run-$k" allreduce_s)
    bytes=$(stat -c %s "$W/run-$k/latest/model.safetensors")
    same=no; cmp -s "$W/run-1/latest/model.safetensors" "$W/run-$k/latest/model.safetensors" && same=yes
    sp=$(awk -v a="$tk" -v b="$t1" 'BEGIN{printf "%.2f", a / b}')
    ef=$(awk -v a="$tk" -v b="$t1" -v k="$k" 'BEGIN{printf "%.0f", 100 * a / (k * b)}')
    printf '| %d x 1 | %.0f | %s | %s%% | %.4f (%.4f) | %s | %s |\n' "$k" "$tk" "$sp" "$ef" "$ar" "$armin" "$bytes" "$same"
    printf '{"bench": "train_mpi", "preset": "bench-s", "result": {"ranks": %d, "threads": 1, "tokens_per_s": %.1f, "anchor_tokens_per_s": %.1f, "speedup": %s, "efficiency_pct": %s, "allreduce_s": %s, "allreduce_min_s": %s, "same_bits": "%s"}}\n' \
        "$k" "$tk" "$t1" "$sp" "$ef" "$ar" "$armin" "$same" >> "$RESULTS"
done
echo
echo "(gradient bytes: the size of model.safetensors, about the fp32 gradient each step moves;"
echo " cores: $(nproc); load average before / after: $load0 / $(cut -d' ' -f1 /proc/loadavg) — above 1 means other work shared the cores)"
