#!/usr/bin/env bash
# bench/prove_bench.sh — the proof pipeline's throughput with the local engine
# on the default prover (build it first: `make run` or `lemma build
# recipes/default.json --out build/default`).
#
# Runs `lemma prove` on the first PROVE_BENCH_N (12) held-out problems in a
# fresh folder (4 proofs, 2 verifications, 1 refinement round), then reads the
# pool: proofs and verifications per minute, completion tokens/s. The anchor,
# measured in the same run: `lemma bench` on the same model (one sequence,
# prompt 256, 128 generated), the engine's raw prefill and decode rates; the
# pipeline's time is split into prefill and decode by applying those rates to
# the pool's token counts (an estimate: the pool records one time per
# answer), and checking is timed with `lemma check` on the pool's proofs.
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
MODEL=${PROVE_BENCH_MODEL:-build/default/prover}
PROBLEMS=${PROVE_BENCH_PROBLEMS:-build/default/inputs/heldout.jsonl}
N=${PROVE_BENCH_N:-12}
OUT=build/bench/prove
if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$PROBLEMS" ]; then
    echo "prove bench: skipped ($MODEL or $PROBLEMS not built; run make run first)"
    exit 0
fi
mkdir -p build/bench
rm -rf "$OUT" && mkdir -p "$OUT"
head -n "$N" "$PROBLEMS" >"$OUT/problems.jsonl"
anchor=$("$LEMMA" bench "$MODEL" --prompt 256 --gen 128 --reps 3 2>/dev/null) || { echo "prove bench: lemma bench failed"; exit 1; }
t0=$(date +%s.%N)
"$LEMMA" prove "$OUT/problems.jsonl" --model "$MODEL" --out "$OUT/run" --samples 4 --verifications 2 --rounds 1 \
    --max-tokens 512 --quiet >/dev/null 2>"$OUT/stderr" || { echo "prove bench: lemma prove failed"; tail -3 "$OUT/stderr"; exit 1; }
t1=$(date +%s.%N)
python3 - "$OUT/run/pool.jsonl" "$OUT/problems.jsonl" "$t0" "$t1" "$anchor" "$LEMMA" "$OUT" <<'PY'
import json, subprocess, sys, time
pool, probs, t0, t1, anchor, lemma, out = sys.argv[1:8]
wall = float(t1) - float(t0)
a = json.loads(anchor)
q = {}
for l in open(probs):
    d = json.loads(l); q[d.get("id")] = d["question"]
recs = [json.loads(l) for l in open(pool) if l.strip()]
kinds = {}
ptok = ctok = 0
for r in recs:
    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    ptok += max(r.get("prompt_tokens") or 0, 0); ctok += max(r.get("completion_tokens") or 0, 0)
pre_s = ptok / a["prefill_tok_s"] if a.get("prefill_tok_s") else float("nan")
dec_s = ctok / a["decode_tok_s"] if a.get("decode_tok_s") else float("nan")
with open(out + "/proofs.jsonl", "w") as f:
    for r in recs:
        if r["kind"] == "proof" and r["problem_id"] in q:
            f.write(json.dumps({"question": q[r["problem_id"]], "proof": r["text"]}) + "\n")
c0 = time.time()
subprocess.run([lemma, "check", out + "/proofs.jsonl"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
chk = time.time() - c0
print("| what | value |\n|---|---|")
print("| problems | %d |" % len(q))
print("| answers (proofs / verifications / meta) | %d / %d / %d |" % (kinds.get("proof", 0), kinds.get("verification", 0), kinds.get("meta_verification", 0)))
print("| wall time | %.1f s |" % wall)
print("| proofs per minute | %.1f |" % (kinds.get("proof", 0) * 60 / wall))
print("| verifications per minute | %.1f |" % (kinds.get("verification", 0) * 60 / wall))
print("| completion tokens/s (pipeline) | %.0f |" % (ctok / wall))
print("| anchor: engine decode tokens/s (lemma bench, 1 sequence) | %.0f |" % a.get("decode_tok_s", 0))
print("| pipeline / engine decode rate | %.2f |" % ((ctok / wall) / a["decode_tok_s"] if a.get("decode_tok_s") else 0))
print("| est. share of time in prefill / decode / checking | %.0f%% / %.0f%% / %.1f%% (rest: tokenizing, bookkeeping) |" % (100 * pre_s / wall, 100 * dec_s / wall, 100 * chk / wall))
with open("build/bench/results.jsonl", "a") as f:
    f.write(json.dumps({"bench": "prove", "problems": len(q), "answers": kinds, "wall_s": wall, "prompt_tokens": ptok,
                        "completion_tokens": ctok, "engine": a, "check_s": chk}) + "\n")
PY
