#!/usr/bin/env bash
# bench/prove_fanout.sh — the prover's throughput (prompts answered per
# second) through one `lemma serve` instance and through two (each
# --threads 1), with `lemma prove --api-base` repeated (docs/backends.md).
# The anchor is the one-endpoint run, measured in the same run; the ratio is
# the fan-out's speed-up (at most 2 with 2 servers; on a machine whose cores
# are shared it is less). The two runs must also give the same pool (sorted,
# without the timings): printed as a check.
#
# Model: the default prover (PROVE_FANOUT_MODEL, default build/default/prover;
# build it with `make run`), problems: the first PROVE_FANOUT_N (32) of
# build/default/inputs/heldout.jsonl (PROVE_FANOUT_PROBLEMS), 4 proofs and 2
# verifications each, 1 refinement round, 256 tokens at most per answer.
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
MODEL=${PROVE_FANOUT_MODEL:-build/default/prover}
PROBLEMS=${PROVE_FANOUT_PROBLEMS:-build/default/inputs/heldout.jsonl}
N=${PROVE_FANOUT_N:-32}
PARALLEL=${PROVE_FANOUT_PARALLEL:-8}
if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$PROBLEMS" ]; then
    echo "prove fan-out bench: skipped ($MODEL or $PROBLEMS not built; run make run first)"
    exit 0
fi
command -v curl >/dev/null || { echo "prove fan-out bench: curl not found"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
head -n "$N" "$PROBLEMS" >"$tmp/problems.jsonl"

# serve NAME: a server on a free port, loaded; sets port
serve() {
    "$LEMMA" serve "$MODEL" --port 0 --threads 1 --ctx 1024 --max-seqs 16 >"$tmp/$1.log" 2>&1 &
    pids+=($!)
    port=""
    for _ in $(seq 1 600); do
        port=$(sed -nE 's/^lemma serve: listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$tmp/$1.log")
        [ -n "$port" ] && [ "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && return 0
        sleep 0.1
    done
    echo "prove fan-out bench: server $1 did not start"; sed 's/^/  /' "$tmp/$1.log"; exit 1
}
serve A; A=http://127.0.0.1:$port/v1
serve B; B=http://127.0.0.1:$port/v1

# run NAME ENDPOINT_ARGS...: prints "answers seconds"
run() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$LEMMA" prove "$tmp/problems.jsonl" "$@" --api-model lemma --parallel "$PARALLEL" --out "$tmp/$name" \
        --samples 4 --verifications 2 --rounds 1 --max-tokens 256 --quiet >/dev/null 2>"$tmp/$name.err" ||
        { echo "prove fan-out bench: lemma prove ($name) failed"; tail -3 "$tmp/$name.err"; exit 1; }
    t1=$(date +%s.%N)
    echo "$(grep -vc '"failed":true' "$tmp/$name/pool.jsonl") $(awk "BEGIN{print $t1 - $t0}")"
}
read -r n1 s1 < <(run one --api-base "$A")
read -r n2 s2 < <(run two --api-base "$A" --api-base "$B")
same=$(python3 - "$tmp/one/pool.jsonl" "$tmp/two/pool.jsonl" <<'PY'
import json, sys
def canon(p):
    out = []
    for l in open(p):
        r = json.loads(l)
        r.pop("seconds", None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)
print("same" if canon(sys.argv[1]) == canon(sys.argv[2]) else "DIFFERENT")
PY
)
cores=$(nproc)
echo "prover fan-out: $MODEL, $N problems (4 proofs, 2 verifications, 1 round, <= 256 tokens), --parallel $PARALLEL per endpoint,"
echo "each lemma serve --threads 1; $cores cores on this machine (shared with whatever else runs)"
printf '%-24s %8s %9s %11s %7s\n' "endpoints" "prompts" "wall s" "prompts/s" "ratio"
awk -v n1="$n1" -v s1="$s1" -v n2="$n2" -v s2="$s2" 'BEGIN {
    r1 = n1 / s1; r2 = n2 / s2
    printf "%-24s %8d %9.2f %11.2f %7s\n", "1 (anchor)", n1, s1, r1, "1.00"
    printf "%-24s %8d %9.2f %11.2f %7.2f\n", "2", n2, s2, r2, r2 / r1
}'
echo "pools of the two runs (sorted, without seconds): $same"
