#!/usr/bin/env bash
# Data-parallel `lemma train` under OpenMPI (train/dp.h, run.h): 2 ranks and
# 3 ranks (4 micro-batches over 3: uneven) end bit-identical to one process
# with the same batch and micro-batch (weights, AdamW moments, state); too
# few micro-batches for the ranks is refused before the folder is touched;
# a rank killed mid-run stops the job with mpirun's message naming it, and
# --resume (on another rank count) ends identical. Skipped, visibly, where
# mpirun is not installed or lemma was built without MPI.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
name=test_train_mpi.sh
skip() { echo "skip $name: $1"; echo "$name: 0 passed, 0 failed, 1 skipped"; exit 0; }
command -v mpirun >/dev/null || skip "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
ldd "$LEMMA" 2>/dev/null | grep -q libmpi || skip "$LEMMA was built without MPI (install libopenmpi-dev, make clean, make)"
# as root (containers, CI) OpenMPI wants both of these
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Under mpirun, LeakSanitizer reports what OpenMPI's dlopen'ed components
# keep until exit (no lemma frame in those reports); the 1-process runs here
# keep leak detection.
mpi_asan=${ASAN_OPTIONS:-}
[ -n "${LEMMA_SANITIZE:-}" ] && mpi_asan="${mpi_asan:+$mpi_asan:}detect_leaks=0"
mpi() { local n=$1; shift; ASAN_OPTIONS=$mpi_asan timeout 120 mpirun -np "$n" --oversubscribe "$LEMMA" "$@"; }

cat src/train/*.c > "$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 320 --out "$tmp/tok" --quiet || exit 1
"$LEMMA" data "$tmp/corpus.txt" --tokenizer "$tmp/tok" --out "$tmp/data" --doc-sep blank >/dev/null 2>&1 || exit 1
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 320/' tests/golden/v3_f32/config.json > "$tmp/cfg.json"
args=(--config "$tmp/cfg.json" --data "$tmp/data" --steps 40 --batch 4 --micro-batch 1 --seq 32 --lr 3e-3
      --save-every 5 --eval-every 20 --eval-batches 2 --seed 11 --threads 1 --quiet)
# every file of the final checkpoint but config.json, one hash each
state() { (cd "$1/latest" && sha256sum model.safetensors optim_m.safetensors optim_v.safetensors trainer_state.json); }

check "1 process trains" "$LEMMA" train "${args[@]}" --out "$tmp/one"
check "mpirun -np 2 trains" mpi 2 train "${args[@]}" --out "$tmp/two"
check "mpirun -np 3 trains (4 micro-batches: 2, 1, 1)" mpi 3 train "${args[@]}" --out "$tmp/three"
[ -f "$tmp/one/latest/model.safetensors" ] && state "$tmp/one" > "$tmp/one.sha"
check "2 ranks: weights, moments and state bit-identical to 1 process" cmp "$tmp/one.sha" <(state "$tmp/two")
check "3 ranks: bit-identical to 1 process" cmp "$tmp/one.sha" <(state "$tmp/three")
# the comparison sees a different fold order: micro-batch 2 is another sum
"$LEMMA" train "${args[@]}" --micro-batch 2 --out "$tmp/m2" >/dev/null 2>&1
check "(control) another micro-batch layout gives other bits" eval '! cmp -s "$tmp/one.sha" <(state "$tmp/m2")'
check "run.json records world_size 2" grep -q '"world_size": 2' "$tmp/two/run.json"
check "run.json of a plain run records world_size 1" grep -q '"world_size": 1' "$tmp/one/run.json"
check "the metrics carry the all-reduce time" grep -q '"allreduce_s": ' "$tmp/two/metrics.jsonl"
check "only rank 0 logs: one metrics line per logged step" \
    test "$(grep -c '"step": 40,' "$tmp/two/metrics.jsonl")" = 1

check_fails "fewer micro-batches than ranks is refused" "1 micro-batch, fewer than the 2 ranks" \
    mpi 2 train "${args[@]}" --micro-batch 4 --out "$tmp/few"
n=$(grep -c "fewer than the 2 ranks" "$tmp/out")
check "... said once (by rank 0)" test "$n" = 1
check "... before the folder is made" test ! -e "$tmp/few"

# kill rank 1 after a checkpoint: the job stops with mpirun's message
ASAN_OPTIONS=$mpi_asan timeout 120 mpirun -np 2 --oversubscribe "$LEMMA" train "${args[@]}" --out "$tmp/kill" \
    2>"$tmp/kill.err" & tp=$!
for _ in $(seq 1 1000); do [ -d "$tmp/kill/ckpt-00000005" ] && break; sleep 0.01; done
victim=
for p in $(pgrep -P "$(pgrep -P $tp)"); do # timeout -> mpirun -> the ranks
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
done
[ -n "$victim" ] && kill -9 "$victim"
wait $tp; rc=$?
if [ -z "$victim" ] || [ $rc -eq 0 ]; then
    bad "kill rank 1 mid-run (rank 1 not found or the run had finished: rc $rc)"
elif [ $rc -eq 124 ]; then
    bad "a killed rank stops the job (it still ran after 120 s)"
else
    check "a killed rank stops the job, naming it (rc $rc)" grep -q "rank 1 .*exited on signal 9" "$tmp/kill.err"
    check "the run is left unfinished" test ! -d "$tmp/kill/ckpt-00000040"
fi
check "--resume on 3 ranks completes" mpi 3 train --resume "$tmp/kill" --threads 1 --quiet
check "killed and resumed run ends bit-identical to 1 process" cmp "$tmp/one.sha" <(state "$tmp/kill")
check "no duplicate metrics steps after resume" \
    test "$(grep -o '"step": [0-9]*' "$tmp/kill/metrics.jsonl" | sort | uniq -d | wc -l)" = 0

echo "$name: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
