#!/usr/bin/env bash
# bench/train_bench.sh — training throughput of lemma against PyTorch on the
# bench presets, at 1 and 2 threads, measured in one run, printed as a table
# and recorded as JSON lines.
#
#   bash bench/train_bench.sh                 # bench-s and bench-m, 1 and 2 threads (~4-6 min)
#   TRAIN_BENCH_REPS=3 bash bench/train_bench.sh   # 3 alternating rounds, medians and ranges
#   bash bench/train_bench.sh --profile       # perf profile of one lemma bench-m step instead
#                                             # (TRAIN_BENCH_PROFILE_PRECISION=bf16 for the bf16 step)
#
# For each preset (../shared/data/bench-presets/*.json; batch and seq from
# their "bench" field) and thread count, in this order so that both sides see
# the same load: build/release/bench/bench_train (lemma: lm_train_step on
# random ids, 1 warm-up step, median of 5 timed steps for bench-s, 3 for
# bench-m), then bench/torch_train.py (the same model, weights, ids, AdamW,
# clipping and MoE bias update in PyTorch float32, OMP_WAIT_POLICY=PASSIVE,
# torch.set_num_threads(N)). Both load the same `lemma init --seed 1` weights
# (build/bench-train/models/), so their first losses must agree: the table
# says "ok" when they match to 1e-3.
#
# Two tables. Measured: tokens/s = batch*seq / median step time (wall
# clock), the ratio, cpu = CPU time / (wall * threads) of the timed steps and
# rq-wait = time the threads were runnable but waiting for a CPU / (wall *
# threads) (from /proc/self/task/*/schedstat: how much the neighbours took),
# peak RSS, the loss check. Load-robust: tok/CPU-s = tokens per second of
# process CPU time (at 1 thread, what tokens/s would be on an idle core);
# idle-est = batch*seq / CPU time of the busiest thread per step (an
# upper-bound estimate of tokens/s on an idle machine at that thread count:
# serial parts run on the calling thread and count in full, load imbalance
# at barriers does not); GFLOP/s and % of peak count 6 * N_active flops per
# token (N_active = the parameters a token multiplies with, routed experts
# at top-k, head included, embedding not), "+attn" adds the causal attention
# core (3 * H * (dn+dr+dv) * (T+1) per layer and token); the peak is
# bench_train's FMA anchor (one core's register-only FMA rate on the
# thread's CPU clock, the loop of bench_matmul) times the threads; "%
# nominal" is against the issue's 200 GFLOP/s per thread.
#
# Environment: LEMMA_BIN (./lemma), LEMMA_BUILD (build/release), LEMMA_SHARED
# (../shared), TRAIN_BENCH_PRESETS ("bench-s bench-m"), TRAIN_BENCH_THREADS
# ("1 2"), TRAIN_BENCH_REPS (1), TRAIN_BENCH_STEPS_S (5), TRAIN_BENCH_STEPS_M
# (3), TRAIN_BENCH_PRECISIONS ("f32 bf16": lemma --precision bf16 against
# PyTorch under bf16 autocast, the fp32 rows being the anchors too),
# TRAIN_BENCH_PEAK (GFLOP/s per thread; default: measured),
# TRAIN_BENCH_NO_TORCH=1, TRAIN_BENCH_TORCH_ATTN (hf | ref), TRAIN_BENCH_OUT
# (build/bench/train_results.jsonl), TRAIN_BENCH_TIMEOUT (600 s per command).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
PRESET_DIR=$SHARED/data/bench-presets
PRESETS=${TRAIN_BENCH_PRESETS:-bench-s bench-m}
THREADS=${TRAIN_BENCH_THREADS:-1 2}
PRECISIONS=${TRAIN_BENCH_PRECISIONS:-f32 bf16}
REPS=${TRAIN_BENCH_REPS:-1}
STEPS_S=${TRAIN_BENCH_STEPS_S:-5}
STEPS_M=${TRAIN_BENCH_STEPS_M:-3}
ATTN=${TRAIN_BENCH_TORCH_ATTN:-hf}
OUTF=${TRAIN_BENCH_OUT:-build/bench/train_results.jsonl}
TMO=${TRAIN_BENCH_TIMEOUT:-600}
BIN=$BUILD/bench/bench_train
MODELS=build/bench-train/models
TORCH_PY=/usr/bin/python3; [ -x "$TORCH_PY" ] || TORCH_PY=python3
PY=python3; command -v python3 >/dev/null || PY=/usr/bin/python3

die() { echo "train_bench: $*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }
last_json() { grep -E '^\{.*\}$' | tail -n 1; }

[ -d "$PRESET_DIR" ] || die "$PRESET_DIR: bench presets not found (set LEMMA_SHARED)"
# (re)build against the current library; an existing binary is used if that fails
if ! make --no-print-directory -s "$BIN" lemma >&2; then
    [ -x "$BIN" ] || die "cannot build $BIN"
    note "   WARNING: make failed; using the existing $BIN"
fi
peak_args=(); [ -n "${TRAIN_BENCH_PEAK:-}" ] && peak_args=(--peak "$TRAIN_BENCH_PEAK")

# ---- perf profile of one bench-m step (lemma, 1 thread) ----------------------
if [ "${1:-}" = --profile ]; then
    command -v perf >/dev/null || die "perf is not installed (apt-get install linux-perf)"
    preset=${TRAIN_BENCH_PROFILE_PRESET:-bench-m}
    pthreads=${TRAIN_BENCH_PROFILE_THREADS:-1}
    pprec=${TRAIN_BENCH_PROFILE_PRECISION:-f32}
    dir=build/bench-train/profile; mkdir -p "$dir"
    rm -f "$dir/ctl" "$dir/ack"; mkfifo "$dir/ctl" "$dir/ack"
    exec 10<>"$dir/ctl" 11<>"$dir/ack"
    note "== perf record (dwarf call graphs) of 1 timed $preset step at $pthreads thread(s), warm-up excluded"
    BENCH_PERF_CTL_FD=10 BENCH_PERF_ACK_FD=11 perf record -q -F 250 --call-graph dwarf,16384 -D -1 \
        --control fd:10,11 -o "$dir/perf.data" "$BIN" "$PRESET_DIR/$preset.json" --threads "$pthreads" --steps 1 \
        --precision "$pprec" "${peak_args[@]}" 2>/dev/null | last_json >&2
    perf script -i "$dir/perf.data" -F comm,tid,period,ip,sym 2>/dev/null >"$dir/perf.txt"
    "$PY" - "$dir/perf.txt" <<'PYEOF'
import collections, sys
# Outermost step phase on the stack, and the nearest training op.
PHASE = ["attn_fwd", "attn_bwd", "moe_fwd", "moe_bwd", "mlp_fwd", "mlp_bwd", "tr_head", "lm_adamw_update",
         "lm_adamw_grad_norm", "lm_train_begin", "lm_train_apply"]
OP = ["lm_tk_linear_dx", "lm_tk_linear_dw", "lm_tk_linear", "lm_tk_attn_fwd", "lm_tk_attn_bwd", "lm_tk_transpose",
      "lm_tk_add", "lm_tk_rmsnorm_dw", "tr_norm_rows", "tr_renorm_rows", "tr_norm_bwd_rows", "tr_swiglu_rows",
      "tr_swiglu_bwd_rows", "add_rows", "tr_attn_gather", "lm_tk_xent", "update_task", "norm_task", "lm_tk_round_bf16", "lm_params_to_bf16"]
samples, cur = [], None
for line in open(sys.argv[1]):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
    elif not line.startswith(("\t", " ")):
        cur = {"p": int(line.split()[2]), "s": []}
    elif cur is not None:
        parts = line.split(None, 1)
        cur["s"].append((parts[1].strip() if len(parts) > 1 else "?").replace(" (inlined)", ""))
if cur: samples.append(cur)
tot = sum(x["p"] for x in samples) or 1
C = collections.defaultdict(collections.Counter)
for x in samples:
    st, p = x["s"], x["p"]
    ph = next((f for f in reversed(st) if f in PHASE), None) or next(
        (f for f in st if f in ("tr_forward", "tr_backward")), "other")
    if "attn_fwd_task" in st: ph = "attn_fwd (core)"
    if "attn_bwd_task" in st: ph = "attn_bwd (core)"
    op = next((f for f in st if f in OP), None)
    if "lm_bf16_gemm" in st:  # the bf16 pair chain (core/bf16gemm.h), from lm_matmul or the backward
        path = "bf16 tile" if any(f.startswith(("lm_bf16_tile", "tile_scalar")) for f in st) else (
            "bf16 pack" if any("pack" in f or f in ("zero_cols", "transpose16", "cvt16", "row_words") for f in st)
            else "bf16 other")
        op = (op or "lm_matmul") + " [" + path + "]"
        C["lm_matmul path"][path] += p
    elif "lm_matmul" in st:
        path = "matvec" if any(f.startswith(("matvec", "mv_")) for f in st) else "gemm"
        op = (op or "lm_matmul") + " [" + path + "]"
        C["lm_matmul path"][path] += p
    op = op or (st[0] if st else "?")
    C["phase"][ph] += p
    C["op"][op] += p
    C["phase / op"][ph + " / " + op] += p
    C["leaf function"][st[0] if st else "?"] += p
print("samples: %d" % len(samples))
for k, n in (("phase", 20), ("op", 20), ("lm_matmul path", 5), ("phase / op", 30), ("leaf function", 20)):
    print("\n== %s" % k)
    for key, v in C[k].most_common(n):
        print("%6.1f%%  %s" % (100.0 * v / tot, key))
PYEOF
    exit 0
fi

mkdir -p "$(dirname "$OUTF")" "$MODELS"
: >"$OUTF"
mkdir -p build/bench; err=build/bench/train_stderr.log; : >"$err"
t_start=$(date +%s)

# ---- machine ------------------------------------------------------------------
cpu=$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -n 1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+dirty" || true)
. bench/torch_env.sh  # PyTorch on OpenBLAS when installed: OPENBLAS_DIR, torch_env
if [ ${#torch_env[@]} -gt 0 ]; then blas=$(readlink -f "$OPENBLAS_DIR/libblas.so.3")
else blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown); fi
printf '{"bench":"machine","cpu":"%s","cores":%s,"date":"%s","git":"%s%s","loadavg_start":"%s","reps":%s,"torch_blas":"%s"}\n' \
    "$cpu" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rev" "$dirty" "$(cut -d' ' -f1-3 /proc/loadavg)" "$REPS" "$blas" >>"$OUTF"
note "== train bench: $cpu, $(nproc) cores, git $rev$dirty, load average $(cut -d' ' -f1-3 /proc/loadavg)"

torch_ok=0
if [ "${TRAIN_BENCH_NO_TORCH:-0}" = 1 ]; then note "   PyTorch skipped (TRAIN_BENCH_NO_TORCH=1)"
elif ! "$TORCH_PY" -c "import torch" 2>/dev/null; then note "   PyTorch skipped: python3-torch is not installed"
else
    torch_ok=1
    case $blas in
        *openblas*|*blis*|*mkl*) ;;
        *) note "   WARNING: torch will use the reference BLAS ($blas): its matmuls are ~15x slow (apt-get install libopenblas0-openmp)" ;;
    esac
fi

# ---- the same weights for both (lemma init --seed 1, F32) -------------------------
for p in $PRESETS; do
    [ -f "$PRESET_DIR/$p.json" ] || die "$PRESET_DIR/$p.json: preset not found"
    dir=$MODELS/$p-f32
    if [ $torch_ok = 1 ] && ! { [ -f "$dir/model.safetensors" ] && cmp -s "$PRESET_DIR/$p.json" "$dir/config.json"; }; then
        note "== lemma init $p --seed 1 -> $dir"
        "$LEMMA" init "$PRESET_DIR/$p.json" --out "$dir" --dtype f32 --seed 1 --force >>"$err" 2>&1 ||
            note "   lemma init failed: PyTorch trains its own random weights (no loss check)"
    fi
done

# ---- measurements -------------------------------------------------------------------
for rep in $(seq 1 "$REPS"); do
    for p in $PRESETS; do
        steps=$STEPS_S; [ "$p" = bench-m ] && steps=$STEPS_M
        for t in $THREADS; do
          for prec in $PRECISIONS; do
            note "== round $rep/$REPS: $p, $t thread(s), $prec, load $(cut -d' ' -f1 /proc/loadavg)"
            autocast=off; [ "$prec" = bf16 ] && autocast=bf16
            j=$(timeout "$TMO" "$BIN" "$PRESET_DIR/$p.json" --threads "$t" --steps "$steps" --precision "$prec" \
                "${peak_args[@]}" 2>>"$err" | last_json)
            if [ -n "$j" ]; then printf '%s\n' "${j%\}},\"rep\":$rep}" >>"$OUTF"; note "   lemma  $j"
            else note "   bench_train failed (see $err)"; fi
            if [ $torch_ok = 1 ]; then
                init=(); [ -f "$MODELS/$p-f32/model.safetensors" ] && init=(--init "$MODELS/$p-f32")
                j=$(env "${torch_env[@]}" OMP_WAIT_POLICY=PASSIVE timeout "$TMO" "$TORCH_PY" bench/torch_train.py "$PRESET_DIR/$p.json" \
                    --threads "$t" --steps "$steps" --attn "$ATTN" --autocast "$autocast" "${init[@]}" 2>>"$err" | last_json)
                if [ -n "$j" ]; then printf '%s\n' "${j%\}}, \"rep\": $rep}" >>"$OUTF"; note "   torch  $j"
                else note "   torch_train.py failed (see $err)"; fi
            fi
          done
        done
    done
done
printf '{"bench":"end","loadavg_end":"%s","seconds":%s}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(( $(date +%s) - t_start ))" >>"$OUTF"

# ---- table ----------------------------------------------------------------------------
"$PY" - "$OUTF" <<'PYEOF'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mach = next(r for r in rows if r["bench"] == "machine")
end = next((r for r in rows if r["bench"] == "end"), {})
def prec(r):  # lemma's --precision, or torch's autocast
    return r.get("precision") or ("bf16" if r.get("autocast") == "bf16" else "f32")

keys = []
for r in rows:
    if r["bench"] in ("lemma_train", "torch_train") and (r["preset"], r["threads"], prec(r)) not in keys:
        keys.append((r["preset"], r["threads"], prec(r)))

def pick(bench, p, t, pr):
    return [r for r in rows if r["bench"] == bench and r["preset"] == p and r["threads"] == t and prec(r) == pr]

def med(xs, k):
    v = [x[k] for x in xs if x.get(k) is not None]
    return statistics.median(v) if v else None

def rng(xs, k):
    v = [x[k] for x in xs if x.get(k) is not None]
    if len(v) < 2:
        return ""
    return " (%s-%s)" % (f0(min(v)), f0(max(v)))

def f0(v):
    return "-" if v is None else "{:,.0f}".format(v)

def f1(v):
    return "-" if v is None else "{:,.1f}".format(v)

def pct(v):
    return "-" if v is None else "%.0f%%" % (100 * v)

def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"

print()
print("lemma training vs PyTorch — %s, %d cores, %s, git %s, load average %s at start, %s at end, %ss, %d round(s)" % (
    mach["cpu"], mach["cores"], mach["date"], mach["git"], mach["loadavg_start"], end.get("loadavg_end", "?"),
    end.get("seconds", "?"), mach["reps"]))
print()
def table(hdr, lines, nleft, last_left=False):
    w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (w[i] + 2) for i in range(len(hdr))) + "|")
    for l in lines:
        print("| " + " | ".join(c.ljust(w[i]) if i < nleft or (last_left and i == len(hdr) - 1) else c.rjust(w[i])
                                for i, c in enumerate(l)) + " |")
    print()

def frac(v):
    return "%.2f" % v if v is not None else "-"

# 1. measured: wall-clock tokens/s
hdr = ("preset", "B x T", "thr", "prec", "lemma tok/s", "torch tok/s", "lemma/torch", "cpu lemma/torch",
       "rq-wait lemma/torch", "RSS MiB lemma", "RSS MiB torch", "loss check")
lines = []
for p, t, pr in keys:
    L, T = pick("lemma_train", p, t, pr), pick("torch_train", p, t, pr)
    lt, tt = med(L, "tokens_per_s"), med(T, "tokens_per_s")
    bt = "%d x %d" % (L[0]["batch"], L[0]["seq"]) if L else (("%d x %d" % (T[0]["batch"], T[0]["seq"])) if T else "-")
    chk = "-"
    if L and T:
        tol = 1e-3 if pr == "f32" else 2e-2  # bf16: two different roundings of the same model
        if all(abs(a["loss_first"] - b["loss_first"]) <= tol for a in L for b in T):
            chk = "ok %.4f" % L[0]["loss_first"]
        else:
            chk = "DIFFER %.4f/%.4f" % (L[0]["loss_first"], T[0]["loss_first"])
    lines.append((p, bt, str(t), pr, f0(lt) + rng(L, "tokens_per_s"), f0(tt) + rng(T, "tokens_per_s"), ratio(lt, tt),
                  "%s/%s" % (frac(med(L, "cpu_util")), frac(med(T, "cpu_util"))),
                  "%s/%s" % (frac(med(L, "runqueue_wait_frac")), frac(med(T, "runqueue_wait_frac"))),
                  f0(med(L, "peak_rss_mib")), f0(med(T, "peak_rss_mib")), chk))
print("Measured (wall clock): tokens/s = batch*seq / median step time; prec bf16: lemma --precision bf16,")
print("torch under bf16 autocast")
table(hdr, lines, 4, True)

# 1b. lemma bf16 against both PyTorch anchors
lines = []
for p, t, pr in keys:
    if pr != "bf16":
        continue
    Lb, Lf = pick("lemma_train", p, t, "bf16"), pick("lemma_train", p, t, "f32")
    Tf, Tb = pick("torch_train", p, t, "f32"), pick("torch_train", p, t, "bf16")
    lb, lf, tf, tb = (med(x, "tokens_per_s") for x in (Lb, Lf, Tf, Tb))
    lines.append((p, str(t), f0(lb), ratio(lb, tf), ratio(lb, tb), ratio(lb, lf), ratio(tb, tf)))
if lines:
    print("bf16: lemma --precision bf16 against PyTorch fp32 and bf16 autocast, and each side's bf16/fp32 speed-up")
    table(("preset", "thr", "lemma bf16 tok/s", "/ torch f32", "/ torch bf16", "lemma bf16/f32", "torch bf16/f32"),
          lines, 2)

# 2. load-robust views and the peak fraction
hdr = ("preset", "thr", "prec", "lemma tok/CPU-s", "torch tok/CPU-s", "ratio", "lemma idle-est", "torch idle-est", "ratio",
       "lemma GFLOP/s", "% peak", "% peak +attn", "% nominal", "% peak idle-est")
lines = []
for p, t, pr in keys:
    L, T = pick("lemma_train", p, t, pr), pick("torch_train", p, t, pr)
    lc, tc = med(L, "tokens_per_cpu_s"), med(T, "tokens_per_cpu_s")
    li, ti = med(L, "tokens_per_s_idle_est"), med(T, "tokens_per_s_idle_est")
    pf_idle = None
    if L and li:
        pf_idle = li * L[0]["flops_per_token_6n"] * 1e-9 / L[0]["peak_gflop_s"]
    lines.append((p, str(t), pr, f0(lc) + rng(L, "tokens_per_cpu_s"), f0(tc) + rng(T, "tokens_per_cpu_s"), ratio(lc, tc),
                  f0(li) + rng(L, "tokens_per_s_idle_est"), f0(ti) + rng(T, "tokens_per_s_idle_est"), ratio(li, ti),
                  f1(med(L, "gflop_s")), pct(med(L, "peak_frac")), pct(med(L, "peak_frac_attn")),
                  pct(med(L, "peak_frac_nominal")), pct(pf_idle)))
print("Load-robust: tok/CPU-s = tokens per second of process CPU time; idle-est = batch*seq / CPU time of the")
print("busiest thread per step (an upper-bound estimate of tokens/s on an idle machine). GFLOP/s and % peak")
print("from the measured (wall) tokens/s with 6*N_active flops per token; '+attn' adds the attention core.")
table(hdr, lines, 3)
L0 = next((r for r in rows if r["bench"] == "lemma_train"), None)
if L0:
    print("peak: %.1f GFLOP/s per thread (%s); %% nominal: against 200 GFLOP/s per thread (the issue's figure)." % (
        L0["peak_gflop_s"] / L0["threads"], L0["peak_source"]))
for p in dict.fromkeys(k[0] for k in keys):  # (the fp32 FMA peak is the bound for bf16 too: same fp32 fma chains)
    L = [r for r in rows if r["bench"] == "lemma_train" and r["preset"] == p]
    if L:
        print("%s: N_active %.2fM, %.1f MFLOP/token (6N) + %.1f (attention core)" % (
            p, L[0]["n_active"] / 1e6, L[0]["flops_per_token_6n"] / 1e6, L[0]["flops_per_token_attn"] / 1e6))
T0 = next((r for r in rows if r["bench"] == "torch_train"), None)
if T0:
    print("PyTorch %s, float32 (and bf16 autocast rows), attention %s, OMP_WAIT_POLICY=%s, BLAS %s" % (
        T0["torch"], T0.get("attn", "?"), T0["omp_wait_policy"], T0["blas"]))
print("tok/s: median step (wall); ranges over rounds in parentheses; tok/CPU-s: per second of process CPU time.")
print("results: %s" % sys.argv[1])
PYEOF
