#!/usr/bin/env bash
# `mpirun -np K lemma build` (recipe/build.h): a recipe with a pretrain and an
# sft stage built on 2 and 3 ranks (uneven micro-batch shares) writes the
# one-process build's lemma.lock byte for byte, with one set of messages;
# reuse and --check work under mpirun; a rank killed mid-training stops the
# build, and a one-process rerun resumes it to the same lock; too few
# micro-batches for the ranks, a bad recipe and a bad stage are refused with
# one message and no hang. Skipped, visibly, where mpirun is not installed or
# lemma was built without MPI.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
name=test_build_mpi.sh
skip() { echo "skip $name: $1"; echo "$name: 0 passed, 0 failed, 1 skipped"; exit 0; }
command -v mpirun >/dev/null || skip "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
ldd "$LEMMA" 2>/dev/null | grep -q libmpi || skip "$LEMMA was built without MPI (install libopenmpi-dev, make clean, make)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# see test_train_mpi.sh: OpenMPI's components keep memory until exit
mpi_asan=${ASAN_OPTIONS:-}
[ -n "${LEMMA_SANITIZE:-}" ] && mpi_asan="${mpi_asan:+$mpi_asan:}detect_leaks=0"
mpi() { local n=$1; shift; ASAN_OPTIONS=$mpi_asan timeout 120 mpirun -np "$n" --oversubscribe "$LEMMA" "$@"; }

cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 300/' tests/golden/v3_f32/config.json | tr -d '\n')
write_recipe() { # $1: file, $2: sha256 field of the input, $3: pretrain micro_batch, $4: extra pretrain keys
cat > "$1" <<JSON
{"lemma_recipe": 1, "name": "tiny-mpi",
 "inputs": {"text": {"builtin": "synth-text", "lines": 1500, "seed": 5$2}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text"], "vocab_size": 300},
  {"name": "data", "kind": "data", "inputs": ["text", "tok"], "doc_sep": "line", "val_fraction": 0.05},
  {"name": "pt", "kind": "pretrain", "inputs": ["data", "tok"], "config": $cfg,
   "steps": 24, "batch": 4, "micro_batch": $3, "seq": 32, "lr": 0.003, "save_every": 4, "eval_every": 12,
   "eval_batches": 2$4},
  {"name": "ft", "kind": "sft", "inputs": ["data", "tok", "pt"],
   "steps": 4, "batch": 3, "micro_batch": 1, "seq": 32, "lr": 0.003, "eval_batches": 1, "export": true}
 ]}
JSON
}
write_recipe "$tmp/r.json" "" 1 ""
sha=$("$LEMMA" build "$tmp/r.json" --out "$tmp/sha" 2>&1 | grep -o '[0-9a-f]\{64\}' | head -1)
[ -n "$sha" ] || { bad "the input's hash (from the error of a build without it)"; exit 1; }
hashed=", \"sha256\": \"$sha\""
write_recipe "$tmp/r.json" "$hashed" 1 ""

check "1 process builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/one" --threads 1 --quiet
check "mpirun -np 2 builds" mpi 2 build "$tmp/r.json" --out "$tmp/two" --threads 1 --quiet
cp "$tmp/out" "$tmp/two.out"
check "mpirun -np 3 builds (4 and 3 micro-batches over 3 ranks)" \
    mpi 3 build "$tmp/r.json" --out "$tmp/three" --threads 1 --quiet
check "2 ranks: lemma.lock byte-identical to 1 process" cmp "$tmp/one/lemma.lock" "$tmp/two/lemma.lock"
check "3 ranks: lemma.lock byte-identical to 1 process" cmp "$tmp/one/lemma.lock" "$tmp/three/lemma.lock"
check "(the lock covers the trained weights)" grep -q "ft/ckpt-00000004/model.safetensors" "$tmp/one/lemma.lock"
check "the sft stage's export is there" test -f "$tmp/two/ft/model.safetensors"
check "rank 0 alone speaks: one summary line" test "$(grep -c 'stages built' "$tmp/two.out")" = 1
check "... one line per stage" test "$(grep -c '^\[4/4\] ft (sft): built' "$tmp/two.out")" = 1
check "run.json of a build stage does not record the rank count" eval '! grep -q world_size "$tmp/two/pt/run.json"'
check "only rank 0 writes metrics: one line for the last step" \
    test "$(grep -c '"step": 24,' "$tmp/two/pt/metrics.jsonl")" = 1

check "a rerun under mpirun reuses every stage" mpi 2 build "$tmp/r.json" --out "$tmp/two" --threads 1 --quiet
cp "$tmp/out" "$tmp/rerun.out"
check "... saying so" grep -q "0 stages built, 4 up to date" "$tmp/rerun.out"
check "--check under mpirun: every artifact matches" \
    mpi 2 build "$tmp/r.json" --out "$tmp/one" --check --threads 1 --quiet
check "... said once" test "$(grep -c 'every artifact matches' "$tmp/out")" = 1
check "... and its scratch directory is removed" eval '! ls -d "$tmp"/one.check-* 2>/dev/null'

# kill rank 1 while the pretrain stage trains: the job stops, naming it
ASAN_OPTIONS=$mpi_asan timeout 120 mpirun -np 2 --oversubscribe "$LEMMA" build "$tmp/r.json" --out "$tmp/kill" \
    --threads 1 --quiet >"$tmp/kill.err" 2>&1 & tp=$!
for _ in $(seq 1 3000); do compgen -G "$tmp/kill/.pt.partial-*/ckpt-00000004" >/dev/null && break; sleep 0.01; done
victim=
for p in $(pgrep -P "$(pgrep -P $tp)"); do # timeout -> mpirun -> the ranks
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
done
[ -n "$victim" ] && kill -9 "$victim"
wait $tp; rc=$?
if [ -z "$victim" ] || [ $rc -eq 0 ]; then
    bad "kill rank 1 mid-training (rank 1 not found or the build had finished: rc $rc)"
elif [ $rc -eq 124 ]; then
    bad "a killed rank stops the build (it still ran after 120 s)"
else
    check "a killed rank stops the build, naming it (rc $rc)" grep -q "rank 1 .*exited on signal 9" "$tmp/kill.err"
    check "the pretrain stage is left unfinished" test ! -d "$tmp/kill/pt"
fi
check "a 1-process rerun resumes and finishes" "$LEMMA" build "$tmp/r.json" --out "$tmp/kill" --threads 1
cp "$tmp/out" "$tmp/resume.out"
check "... resuming the interrupted run" grep -q "pt (pretrain): resuming an interrupted run" "$tmp/resume.out"
check "killed and resumed build: lemma.lock byte-identical to 1 process" \
    cmp "$tmp/one/lemma.lock" "$tmp/kill/lemma.lock"

# bad use: each refused once, by rank 0, and nothing hangs
write_recipe "$tmp/few.json" "$hashed" 2 ""
check_fails "2 micro-batches on 3 ranks is refused" "fewer than the 3 ranks" \
    mpi 3 build "$tmp/few.json" --out "$tmp/few" --threads 1 --quiet
check "... said once" test "$(grep -c 'fewer than the 3 ranks' "$tmp/out")" = 1
check "... the stages before it are built, the training stage is not" \
    eval 'grep -q "\"data\": {\"kind\": \"data\"" "$tmp/few/lemma.lock" && test ! -d "$tmp/few/pt"'
check_fails "a missing recipe: one message" "no-such.json" mpi 2 build "$tmp/no-such.json" --out "$tmp/none"
check "... said once" test "$(grep -c '^lemma build: .*no-such.json' "$tmp/out")" = 1
write_recipe "$tmp/bad.json" "$hashed" 1 ', "stepz": 3'
mpi 2 build "$tmp/bad.json" --out "$tmp/bad" --threads 1 --quiet >"$tmp/bad.out" 2>&1; rc=$?
check "a bad training stage stops every rank (rc $rc, not the timeout's)" test $rc = 1
check "... naming the key, once" test "$(grep -c 'stage pt: .*unknown key "stepz"' "$tmp/bad.out")" = 1
check "... every rank ending by itself (no MPI_Abort): the others waited for rank 0's word" \
    eval 'grep -q "terminated normally" "$tmp/bad.out" && ! grep -q "MPI_ABORT" "$tmp/bad.out"'

echo "$name: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
