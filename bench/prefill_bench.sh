#!/usr/bin/env bash
# prefill_bench.sh — latent mode's prefill, the default absorbed form beside
# `--prefill expanded` (model.h), interleaved in one run: per round, model
# and prompt length, `lemma bench --prefill absorbed` then `--prefill
# expanded` back to back. The anchor is the absorbed run of the same round.
#
#   bench/prefill_bench.sh MODEL_DIR... [--prompts "512 2048"] [--threads 1] [--reps 3] [--rounds 2]
#
# Every result is one JSON line on stdout, then a table of the medians over
# rounds (prefill tok/s of wall time and of process CPU time, the ratio) and
# the multiply-adds of the attention core per form (docs/arithmetic.md).
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
MODELS=() PROMPTS="512 2048" THREADS=1 REPS=3 ROUNDS=2
while [ $# -gt 0 ]; do
    case $1 in
        --prompts) PROMPTS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -*) echo "prefill_bench: unknown option $1" >&2; exit 2 ;;
        *) MODELS+=("$1"); shift ;;
    esac
done
[ ${#MODELS[@]} -ge 1 ] || { echo "usage: $0 MODEL_DIR... [--prompts \"512 2048\"] [--threads 1] [--reps 3] [--rounds 2]" >&2; exit 2; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
echo "{\"machine\":\"$(lscpu | sed -nE 's/^Model name: *//p' | head -n 1)\",\"git\":\"$(git rev-parse --short HEAD)\",\"date\":\"$(date -u +%FT%TZ)\",\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee "$out"
for round in $(seq 1 "$ROUNDS"); do
    for model in "${MODELS[@]}"; do
        for p in $PROMPTS; do
            for form in absorbed expanded; do
                j=$("$LEMMA" bench "$model" --attn latent --prefill $form --prompt "$p" --gen 1 --reps "$REPS" \
                    --threads "$THREADS" 2>/dev/null)
                echo "{\"round\":$round,\"model\":\"$model\",\"prompt\":$p,\"form\":\"$form\",\"result\":${j:-null},\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$out"
            done
        done
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
head, runs = lines[0], lines[1:]
print("machine %s, git %s, %s, load average at start %s, at end %s" % (head["machine"], head["git"], head["date"],
      head["loadavg_start"], runs[-1]["loadavg"] if runs else "?"))
def macs(cfg, n):
    # attention core of one forward of n rows from an empty cache (chunks of 512 as lemma bench runs)
    H, C, dn, dr, dv = (cfg[k] for k in ("num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"))
    e = a = 0
    for p0 in range(0, n, 512):
        m = min(512, n - p0); pairs = m * p0 + m * (m + 1) / 2
        e += (p0 + m) * C * H * (dn + dv) + pairs * H * (dn + dr + dv)
        a += m * H * C * (dn + dv) + pairs * H * (2 * C + dr)
    return e * cfg["num_hidden_layers"], a * cfg["num_hidden_layers"]
print("| model | prompt | absorbed tok/s | expanded tok/s | ratio | absorbed tok/CPU-s | expanded tok/CPU-s | ratio | attention MACs absorbed / expanded |")
print("|---|---|---|---|---|---|---|---|---|")
keys = sorted({(r["model"], r["prompt"]) for r in runs}, key=lambda k: (k[0], k[1]))
for model, p in keys:
    med = {}
    for form in ("absorbed", "expanded"):
        rs = [r["result"] for r in runs if r["model"] == model and r["prompt"] == p and r["form"] == form and r["result"]]
        med[form] = (statistics.median(x["prefill_tok_s"] for x in rs) if rs else float("nan"),
                     statistics.median(x["prefill_tok_cpu_s"] for x in rs) if rs else float("nan"))
    cfg = json.load(open(model + "/config.json"))
    e, a = macs(cfg, p)
    print("| %s | %d | %.0f | %.0f | %.2f× | %.0f | %.0f | %.2f× | %.3g / %.3g (%.2f×) |" % (
        model.rstrip("/").split("/")[-1], p, med["absorbed"][0], med["expanded"][0], med["expanded"][0] / med["absorbed"][0],
        med["absorbed"][1], med["expanded"][1], med["expanded"][1] / med["absorbed"][1], a, e, a / e))
PY
