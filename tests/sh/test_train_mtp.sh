#!/usr/bin/env bash
# lemma train --mtp-weight (DeepSeek-V3's MTP loss) end to end on a tiny
# DeepSeek-V3 model: the run's config gets num_nextn_predict_layers 1, 1 and
# 2 threads give identical weights, a SIGKILLed run resumes bit-identical,
# metrics carry mtp_loss and it goes down, the checkpoint carries the MTP
# layer in the HF layout (its embedding and head copies equal the main ones)
# and drafts for `lemma generate --speculative mtp` with the plain greedy
# output; --init from a model without an MTP layer adds one; the default
# (no --mtp-weight) writes no MTP tensors; 2 MPI ranks end bit-identical to
# one process (skipped without OpenMPI).
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
BIN=$LEMMA
cat src/model/*.c > "$tmp/corpus.txt"
"$BIN" tokenizer train "$tmp/corpus.txt" --vocab 300 --out "$tmp/tok" --quiet || exit 1
"$BIN" data "$tmp/corpus.txt" --tokenizer "$tmp/tok" --out "$tmp/data" --doc-sep blank >/dev/null 2>&1 || exit 1
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 300/' tests/golden/v3_f32/config.json > "$tmp/cfg.json"
args=(--config "$tmp/cfg.json" --data "$tmp/data" --tokenizer "$tmp/tok" --steps 40 --batch 4 --micro-batch 2 --seq 32
      --lr 3e-3 --save-every 5 --log-every 5 --eval-every 40 --eval-batches 1 --seed 5 --mtp-weight 0.3 --quiet)
sha() { sha256sum "$1/latest/model.safetensors" | cut -d' ' -f1; }
"$BIN" train "${args[@]}" --out "$tmp/a" --threads 2; rc=$?
check "train --mtp-weight runs" test $rc -eq 0 -a -f "$tmp/a/latest/model.safetensors"
check "the run's config has num_nextn_predict_layers 1" grep -q '"num_nextn_predict_layers": *1' "$tmp/a/latest/config.json"
"$BIN" train "${args[@]}" --out "$tmp/b" --threads 1
check "1 and 2 threads give identical weights" test "$(sha "$tmp/a")" = "$(sha "$tmp/b")"
"$BIN" train "${args[@]}" --out "$tmp/c" --threads 2 & pid=$!
for _ in $(seq 1 600); do [ -d "$tmp/c/ckpt-00000015" ] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
"$BIN" train --resume "$tmp/c" --threads 1 --quiet
check "killed and resumed run ends bit-identical" test "$(sha "$tmp/a")" = "$(sha "$tmp/c")"
first=$(head -1 "$tmp/a/metrics.jsonl"); last=$(grep '"step": 40' "$tmp/a/metrics.jsonl" | head -1)
m0=$(sed -E 's/.*"mtp_loss": ([0-9.]+).*/\1/' <<<"$first"); m1=$(sed -E 's/.*"mtp_loss": ([0-9.]+).*/\1/' <<<"$last")
check "metrics carry mtp_loss, and it goes down ($m0 -> $m1)" \
    awk -v a="$m0" -v b="$m1" 'BEGIN{exit !(a > 0 && b < a - 0.3)}'
/usr/bin/env python3 - "$tmp/a/latest/model.safetensors" >"$tmp/names" <<'PYEOF'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
def data(k):
    a, b = h[k]["data_offsets"]; f.seek(8 + n + a); return f.read(b - a)
L = 4
ok = data("model.layers.%d.embed_tokens.weight" % L) == data("model.embed_tokens.weight") and \
     data("model.layers.%d.shared_head.head.weight" % L) == data("lm_head.weight")
print("\n".join(sorted(k for k in h if k.startswith("model.layers.%d." % L))))
print("copies-equal" if ok else "copies-differ")
PYEOF
check "the checkpoint holds the MTP layer in HF layout" grep -q '^model.layers.4.eh_proj.weight$' "$tmp/names"
check "its embedding and head copies are the main tensors" grep -q '^copies-equal$' "$tmp/names"
plain=$("$BIN" generate "$tmp/a/latest" --ids 5,17,3,99 -n 24 --ignore-eos --threads 1 2>/dev/null)
spec=$("$BIN" generate "$tmp/a/latest" --ids 5,17,3,99 -n 24 --ignore-eos --threads 1 --speculative mtp 2>"$tmp/spec.err")
check "the trained MTP layer drafts, output identical to plain greedy" test -n "$plain" -a "$plain" = "$spec"
grep speculative "$tmp/spec.err"
# without --mtp-weight, a model's MTP layer is kept as it is (no weight decay on it)
"$BIN" train --init "$tmp/a/latest" --data "$tmp/data" --steps 3 --batch 2 --seq 32 --quiet --threads 1 --out "$tmp/keep"
/usr/bin/env python3 - "$tmp/a/latest/model.safetensors" "$tmp/keep/latest/model.safetensors" >"$tmp/keep.txt" <<'PYEOF2'
import json, struct, sys
def tensors(path):
    f = open(path, "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); body = f.read()
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
mtp = [k for k in a if k.startswith("model.layers.4.") and "embed_tokens" not in k and "shared_head.head" not in k]
print("mtp-kept" if mtp and all(a[k] == b[k] for k in mtp) else "mtp-changed")
print("main-trained" if a["model.layers.0.self_attn.o_proj.weight"] != b["model.layers.0.self_attn.o_proj.weight"] else "main-same")
PYEOF2
check "no --mtp-weight: the MTP layer of the --init model is left as it is" grep -q '^mtp-kept$' "$tmp/keep.txt"
check "...while the main model trains" grep -q '^main-trained$' "$tmp/keep.txt"
# the default writes no MTP layer; --init from such a model with --mtp-weight adds one
"$BIN" train --config "$tmp/cfg.json" --data "$tmp/data" --steps 1 --batch 2 --seq 16 --quiet --threads 1 --out "$tmp/e"
check "no --mtp-weight: no MTP layer written" test -z "$(grep -a -o 'model.layers.4.eh_proj' "$tmp/e/latest/model.safetensors")"
"$BIN" train --init "$tmp/e/latest" --data "$tmp/data" --steps 2 --batch 2 --seq 16 --quiet --threads 1 \
    --mtp-weight 0.5 --out "$tmp/d"; rc=$?
check "--init from a model without MTP adds the layer" \
    test $rc -eq 0 -a -n "$(grep '"num_nextn_predict_layers": *1' "$tmp/d/latest/config.json")"
check "...which lemma generate --speculative mtp loads" "$BIN" generate "$tmp/d/latest" --ids 1,2 -n 4 --speculative mtp
# data parallel: the MTP gradients join the pass's one add per element, so
# 2 ranks end bit-identical to one process (skipped without OpenMPI)
skipped=0
if command -v mpirun >/dev/null && ldd "$BIN" 2>/dev/null | grep -q libmpi; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    mpi_asan=${ASAN_OPTIONS:-}
    [ -n "${LEMMA_SANITIZE:-}" ] && mpi_asan="${mpi_asan:+$mpi_asan:}detect_leaks=0"
    dargs=(--config "$tmp/cfg.json" --data "$tmp/data" --steps 6 --batch 4 --micro-batch 1 --seq 32 --lr 3e-3
           --seed 3 --mtp-weight 0.5 --threads 1 --quiet)
    "$BIN" train "${dargs[@]}" --out "$tmp/one"
    ASAN_OPTIONS=$mpi_asan timeout 120 mpirun -np 2 --oversubscribe "$BIN" train "${dargs[@]}" --out "$tmp/two"
    check "mpirun -np 2 with --mtp-weight: bit-identical to one process" \
        test -n "$(sha "$tmp/one")" -a "$(sha "$tmp/one")" = "$(sha "$tmp/two")"
else
    echo "skip the data-parallel check: mpirun or an MPI build of lemma is missing"
    skipped=1
fi
echo "test_train_mtp: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
