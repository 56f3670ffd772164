#!/usr/bin/env bash
# bench/run.sh — `make bench`: lemma's inference benchmarks beside their
# anchors, measured in one run, printed as tables and recorded as JSON lines.
#
#   make bench                      # everything (about 20-30 min on 2 cores: inference ~6, batched ~3, training ~4, tokenizer ~6)
#   BENCH_QUICK=1 make bench        # smoke run: short prompt/gen, 1 rep
#   BENCH_NO_TRAIN=1 BENCH_NO_TOKENIZER=1 BENCH_NO_PROVE=1 make bench   # inference only
#   BENCH_NO_BATCH=1 BENCH_NO_SERVE=1 make bench   # without issue 8's batch table / server load
#   BENCH_NO_RL=1 make bench        # without the post-training RL step (bench/rl_bench.sh)
#   BENCH_NO_DSA=1 make bench       # without the V3.2 sparse-attention table (bench/dsa_bench.sh, ~1 min)
#   BENCH_NO_MTP=1 make bench       # without the MTP speculative-decoding table (bench/mtp_bench.sh)
#   BENCH_NO_EXPORT=1 make bench    # without the GGUF export / llama.cpp load times (bench/export_bench.sh)
#   BENCH_NO_Q8=1 make bench        # without the Q8 decode table (bench/q8_bench.sh)
#   BENCH_NO_PREFILL=1 make bench   # without the absorbed/expanded prefill table (bench/prefill_bench.sh)
#
# What it does:
#  1. creates (once) random-weight checkpoints of the bench presets with
#     `lemma init --seed 1`: build/bench-models/{bench-s,bench-m}-{f32,bf16};
#  2. bench/bench_matmul: the machine's peak FMA rate and memory read
#     bandwidth (the anchors) and lm_matmul GFLOP/s / GB/s against them;
#     then a quick run on each slower kernel path the CPU has (LEMMA_ISA=avx2,
#     scalar: the same bits, docs/arithmetic.md) and its speed as a ratio;
#  3. for each preset x dtype {f32, bf16} x threads {1, 2}: `lemma bench`
#     (latent MLA cache, --prompt 512 --gen 128, reps 3 for bench-s and
#     BENCH_REPS_M (default 2) for bench-m; medians), a short `lemma bench
#     --attn naive` for the naive cache's bytes per token, then the anchors on
#     the same checkpoint and thread count: PyTorch (bench/torch_forward.py,
#     float32, expanded K/V cache; skipped visibly without python3-torch) and
#     llama.cpp (bench/llamacpp_bench.sh when present and runnable, else the
#     issue's reference numbers, labelled as such);
#  4. prints the tables; every measurement is one JSON line in
#     build/bench/results.jsonl ({"bench": ..., "preset": ..., "result": {...}});
#  5. many sequences at once (issue 8): bench/batch_bench.sh, `lemma bench
#     --batch 1,4,16,64` beside llama.cpp's batched decode (B sequences, one
#     token each per llama_decode) and the cost of batch invariance
#     (bench/bench_invariance), and bench/serve_bench.sh, 64 streaming
#     clients against `lemma serve` beside the same work through the engine.
#
# Environment: LEMMA_BIN (default ./lemma), LEMMA_BUILD (build/release),
# LEMMA_SHARED (../shared), BENCH_THREADS ("1 2"), BENCH_DTYPES ("f32 bf16"),
# BENCH_PRESETS ("bench-s bench-m"), BENCH_REPS_S (3), BENCH_REPS_M (2),
# BENCH_PROMPT (512), BENCH_GEN (128), BENCH_NO_TORCH=1, BENCH_NO_LLAMACPP=1,
# BENCH_TIMEOUT (seconds per command, 600), BENCH_LLAMACPP_TIMEOUT (180: ggml's
# spin-waiting pool can collapse to a few tok/s when anything else runs).
set -u
cd "$(dirname "$0")/.."
BUILD=${LEMMA_BUILD:-build/release}
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
PRESET_DIR=$SHARED/data/bench-presets
MODELS=build/bench-models
OUT=build/bench
RESULTS=$OUT/results.jsonl
THREADS=${BENCH_THREADS:-1 2}
DTYPES=${BENCH_DTYPES:-f32 bf16}
PRESETS=${BENCH_PRESETS:-bench-s bench-m}
PROMPT=${BENCH_PROMPT:-512}
GEN=${BENCH_GEN:-128}
REPS_S=${BENCH_REPS_S:-3}
REPS_M=${BENCH_REPS_M:-2}
TMO=${BENCH_TIMEOUT:-600}
LTMO=${BENCH_LLAMACPP_TIMEOUT:-180}
MATMUL_ARGS=""
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    PROMPT=${BENCH_PROMPT:-64} GEN=${BENCH_GEN:-16} REPS_S=1 REPS_M=1 MATMUL_ARGS=--quick
fi
maxth=1; for t in $THREADS; do [ "$t" -gt "$maxth" ] && maxth=$t; done
TORCH_PY=/usr/bin/python3; [ -x "$TORCH_PY" ] || TORCH_PY=python3
PY=python3; command -v python3 >/dev/null || PY=/usr/bin/python3

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$LEMMA" ] || die "$LEMMA not found (run make first)"
[ -d "$PRESET_DIR" ] || die "$PRESET_DIR: bench presets not found (set LEMMA_SHARED)"
command -v "$PY" >/dev/null || die "python3 is needed to print the tables"
mkdir -p "$OUT" "$MODELS"
[ -f "$RESULTS" ] && mv -f "$RESULTS" "$OUT/results.prev.jsonl"
: >"$RESULTS"
err=$OUT/stderr.log; : >"$err"
t_start=$(date +%s)

# Appends {"bench": B, "preset": P, "dtype": D, "threads": N, "result": JSON}.
record() { printf '{"bench":"%s","preset":"%s","dtype":"%s","threads":%s,"result":%s}\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"; }
# Last line of stdout that looks like a JSON object, or empty.
last_json() { grep -E '^\{.*\}$' | tail -n 1; }
note() { printf '%s\n' "$*" >&2; }

# ---- machine --------------------------------------------------------------
cpu=$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -n 1)
ncpu=$(nproc)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+dirty" || true)
mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
machine=$(printf '{"cpu":"%s","cores":%s,"mem_gib":%s,"date":"%s","git":"%s%s","loadavg_start":"%s","prompt":%s,"gen":%s,"reps_s":%s,"reps_m":%s,"torch_blas":"%s"}' \
    "$cpu" "$ncpu" "$mem_gib" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rev" "$dirty" "$load0" "$PROMPT" "$GEN" "$REPS_S" "$REPS_M" "$blas")
record machine - - 0 "$machine"
note "== lemma bench: $cpu, $ncpu cores, git $rev$dirty, load average $load0"
note "   prompt $PROMPT, gen $GEN, reps: bench-s $REPS_S, bench-m $REPS_M; threads $THREADS; dtypes $DTYPES"

# ---- checkpoints ------------------------------------------------------------
for p in $PRESETS; do
    [ -f "$PRESET_DIR/$p.json" ] || die "$PRESET_DIR/$p.json: preset not found"
    for d in $DTYPES; do
        dir=$MODELS/$p-$d
        if [ -f "$dir/config.json" ] && [ -f "$dir/model.safetensors" ] && cmp -s "$PRESET_DIR/$p.json" "$dir/config.json"; then
            continue
        fi
        note "== creating $dir (lemma init --seed 1 --dtype $d)"
        "$LEMMA" init "$PRESET_DIR/$p.json" --out "$dir" --dtype "$d" --seed 1 --force || die "lemma init failed for $dir"
    done
done

# ---- anchors availability -------------------------------------------------
torch_ok=0
if [ "${BENCH_NO_TORCH:-0}" = 1 ]; then torch_note="skipped (BENCH_NO_TORCH=1)"
elif ! "$TORCH_PY" -c "import torch" 2>/dev/null; then torch_note="skipped: python3-torch is not installed (apt-get install python3-torch)"
else
    torch_ok=1
    torch_ver=$("$TORCH_PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
    torch_note="PyTorch $torch_ver, float32, OMP_WAIT_POLICY=PASSIVE, BLAS $blas"
    case $blas in
        *openblas*|*blis*|*mkl*|*atlas*) ;;
        *) torch_note="$torch_note -- WARNING: the reference BLAS, PyTorch's matmuls are ~15x slow (apt-get install libopenblas0-openmp)" ;;
    esac
fi
llama_ok=0
if [ "${BENCH_NO_LLAMACPP:-0}" = 1 ]; then llama_note="skipped (BENCH_NO_LLAMACPP=1)"
elif [ -x bench/llamacpp_bench.sh ]; then llama_ok=1; llama_note="measured with bench/llamacpp_bench.sh"
else llama_note="bench/llamacpp_bench.sh is absent"; fi
record anchors - - 0 "$(printf '{"torch":"%s","llamacpp":"%s"}' "$torch_note" "$llama_note")"

# ---- matmul and machine anchors ---------------------------------------------
MATMUL=$BUILD/bench/bench_matmul
if [ -x "$MATMUL" ]; then
    note "== $MATMUL --threads $maxth $MATMUL_ARGS"
    out=$(timeout "$TMO" "$MATMUL" --threads "$maxth" $MATMUL_ARGS 2>>"$err")
    printf '%s\n' "$out" | grep -v '^{' >&2
    j=$(printf '%s\n' "$out" | last_json)
    [ -n "$j" ] && record matmul - - "$maxth" "$j" || note "bench_matmul printed no JSON"
    # The other kernel paths this CPU has (docs/arithmetic.md: the same bits
    # on every path; this is what the sameness costs on each), 1 thread.
    best=$(printf '%s\n' "$j" | sed -nE 's/.*"isa":"([a-z0-9]+)".*/\1/p')
    for isa in avx2 scalar; do
        [ "$isa" = "$best" ] && continue
        [ "$best" = scalar ] && continue
        [ "$best" = avx2 ] && [ "$isa" = avx2 ] && continue
        note "== LEMMA_ISA=$isa $MATMUL --quick --threads 1"
        jp=$(LEMMA_ISA=$isa timeout "$TMO" "$MATMUL" --quick --threads 1 2>>"$err" | last_json)
        [ -n "$jp" ] && record matmul_path - "$isa" 1 "$jp" || note "bench_matmul ($isa) printed no JSON"
    done
else
    note "== $MATMUL not built: no matmul GFLOP/s and no machine anchors in this run"
fi

# ---- models -----------------------------------------------------------------
for p in $PRESETS; do
    reps=$REPS_S; [ "$p" = bench-m ] && reps=$REPS_M
    for d in $DTYPES; do
        dir=$MODELS/$p-$d
        for t in $THREADS; do
            note "== $p $d, $t thread(s)"
            j=$(timeout "$TMO" "$LEMMA" bench "$dir" --prompt "$PROMPT" --gen "$GEN" --reps "$reps" --threads "$t" 2>>"$err" | last_json)
            if [ -n "$j" ]; then record lemma "$p" "$d" "$t" "$j"; note "   lemma   $j"
            else note "   lemma bench failed (see $err)"; fi
            j=$(timeout "$TMO" "$LEMMA" bench "$dir" --attn naive --prompt 16 --gen 4 --reps 1 --threads "$t" 2>>"$err" | last_json)
            [ -n "$j" ] && record lemma_naive "$p" "$d" "$t" "$j"
            if [ $torch_ok = 1 ]; then
                j=$(OMP_WAIT_POLICY=PASSIVE timeout "$TMO" "$TORCH_PY" bench/torch_forward.py "$dir" --threads "$t" \
                    --prompt "$PROMPT" --gen "$GEN" --reps "$reps" 2>>"$err" | last_json)
                if [ -n "$j" ]; then record torch "$p" "$d" "$t" "$j"; note "   torch   $j"
                else note "   torch_forward.py failed (see $err)"; fi
            fi
            if [ $llama_ok = 1 ]; then
                j=$(timeout "$LTMO" bench/llamacpp_bench.sh "$dir" --threads "$t" --prompt "$PROMPT" --gen "$GEN" --reps "$reps" 2>>"$err")
                rc=$?
                j=$(printf '%s\n' "$j" | last_json)
                if [ -n "$j" ]; then record llamacpp "$p" "$d" "$t" "$j"; note "   llama   $j"
                elif [ $rc = 124 ]; then
                    record llamacpp "$p" "$d" "$t" "{\"timed_out\":true,\"timeout_s\":$LTMO}"
                    note "   llamacpp_bench.sh timed out after $LTMO s"
                else
                    note "   llamacpp_bench.sh failed (exit $rc; see $err)"
                    if [ $rc = 3 ]; then llama_ok=0; llama_note="bench/llamacpp_bench.sh reports llama.cpp unavailable (exit 3)"; fi
                fi
            fi
        done
    done
done
record anchors_end - - 0 "$(printf '{"torch":"%s","llamacpp":"%s","loadavg_end":"%s","seconds":%s}' \
    "$torch_note" "$llama_note" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(( $(date +%s) - t_start ))")"

# ---- tables -----------------------------------------------------------------
"$PY" - "$RESULTS" <<'PYEOF'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def find(bench, preset="-", dtype="-", threads=None):
    for r in rows:
        if r["bench"] == bench and r["preset"] == preset and r["dtype"] == dtype and \
                (threads is None or r["threads"] == threads):
            return r["result"]
    return None

machine = find("machine")
end = find("anchors_end") or find("anchors") or {}
mm = find("matmul") or {}
# Reference numbers quoted in issue 2 (llama.cpp v0.4.0 via node-llama-cpp@3.21.1, F32).
LLAMA_REF = {("bench-m", 1): (1018, 193), ("bench-m", 2): (1724, 291),
             ("bench-s", 1): (8314, 1810), ("bench-s", 2): (10973, 2151)}

def peak(t):
    v = [mm.get("peak_fma_avx512_%dt" % t), mm.get("peak_fma_avx2_%dt" % t)]
    v = [x for x in v if x]
    return max(v) if v else None

def fmt(v, nd=0):
    if v is None:
        return "-"
    return ("{:,.%df}" % nd).format(v)

def pct(a, b):
    return "%.0f%%" % (100.0 * a / b) if a and b else "-"

def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"

print()
print("lemma bench — %s, %d cores, %s, git %s, load average %s at start, %s at end, %ss" % (
    machine["cpu"], machine["cores"], machine["date"], machine["git"], machine["loadavg_start"],
    end.get("loadavg_end", "?"), end.get("seconds", "?")))
print("prompt %d tokens, decode %d tokens, medians of %d (bench-s) / %d (bench-m) reps; latent MLA cache" % (
    machine["prompt"], machine["gen"], machine["reps_s"], machine["reps_m"]))
print()
hdr = ("preset", "dtype", "thr", "prefill tok/s", "decode tok/s", "decode GB/s", "% of mem",
       "peak RSS MiB", "KV B/tok latent", "KV B/tok naive")
lines = []
for r in rows:
    if r["bench"] != "lemma":
        continue
    p, d, t, x = r["preset"], r["dtype"], r["threads"], r["result"]
    nv = find("lemma_naive", p, d, t) or {}
    mem = mm.get("mem_read_%dt" % t)
    lines.append((p, d.upper(), str(t), fmt(x["prefill_tok_s"]), fmt(x["decode_tok_s"]),
                  fmt(x["decode_weight_gb_s"], 2), pct(x["decode_weight_gb_s"], mem),
                  fmt(x["peak_rss_mib"], 1), fmt(x["kv_bytes_per_token"]), fmt(nv.get("kv_bytes_per_token"))))

def table(hdr, lines, nleft=3):
    w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (w[i] + 2) for i in range(len(hdr))) + "|")
    for l in lines:
        print("| " + " | ".join(c.rjust(w[i]) if i >= nleft else c.ljust(w[i]) for i, c in enumerate(l)) + " |")
    print()

table(hdr, lines, 2)
print("decode GB/s = bytes of weights one token reads (routed experts at top-k/E) x decode tok/s;")
print("% of mem = against mem_read_Nt, the memory read bandwidth bench_matmul measured in this run.")
print()

# anchors
hdr = ("preset", "dtype", "thr", "lemma pp", "lemma tg", "torch pp", "torch tg", "lemma/torch pp",
       "lemma/torch tg", "llama.cpp pp", "llama.cpp tg", "lemma/llama pp", "lemma/llama tg")
lines = []
any_ref = False
for r in rows:
    if r["bench"] != "lemma":
        continue
    p, d, t, x = r["preset"], r["dtype"], r["threads"], r["result"]
    tr = find("torch", p, d, t) or {}
    lr = find("llamacpp", p, d, t)
    if lr and lr.get("timed_out"):
        lpp = ltg = None
        mark = "timeout"
    elif lr:
        lpp, ltg, mark = lr.get("prefill_tok_s"), lr.get("decode_tok_s"), ""
    elif d == "f32" and (p, t) in LLAMA_REF:
        (lpp, ltg), mark, any_ref = LLAMA_REF[(p, t)], "*", True
    else:
        lpp = ltg = None
        mark = ""
    lines.append((p, d.upper(), str(t), fmt(x["prefill_tok_s"]), fmt(x["decode_tok_s"]),
                  fmt(tr.get("prefill_tok_s")), fmt(tr.get("decode_tok_s")),
                  ratio(x["prefill_tok_s"], tr.get("prefill_tok_s")), ratio(x["decode_tok_s"], tr.get("decode_tok_s")),
                  *(("timeout",) * 4 if mark == "timeout" else
                    (fmt(lpp) + mark, fmt(ltg) + mark, ratio(x["prefill_tok_s"], lpp) + mark,
                     ratio(x["decode_tok_s"], ltg) + mark))))
print("Anchors (tok/s; pp = prefill of %d tokens, tg = %d decode steps; ratio > 1: lemma faster)" % (
    machine["prompt"], machine["gen"]))
table(hdr, lines, 2)
if any(l[9] == "timeout" for l in lines):
    print("llama.cpp 'timeout': bench/llamacpp_bench.sh ran past BENCH_LLAMACPP_TIMEOUT (ggml's spinning")
    print("           thread pool collapses when another process runs on this 2-core machine).")
print("PyTorch:   %s" % end.get("torch", "?"))
print("           bench/torch_forward.py: tests/ref/deepseek_ref.py modules in float32 on the same checkpoint")
print("           (BF16 weights widened), expanded K/V cache preallocated (naive MLA), same ids and timing rules.")
print("llama.cpp: %s" % end.get("llamacpp", "?"))
if any_ref:
    print("           * = reference from the issue, not measured in this run (llama.cpp v0.4.0 / node-llama-cpp")
    print("             3.21.1, F32 weights, F16 KV cache, on this kind of machine); ratios marked * compare")
    print("             this run with those numbers.")
print("           issue 2's reference for llama.cpp (F32, not this run): bench-m pp 1,018 / 1,724, tg 193 / 291;")
print("           bench-s pp 8,314 / 10,973, tg 1,810 / 2,151 tok/s at 1 / 2 threads.")
if machine["prompt"] != 512 or machine["gen"] != 128:
    print("           (the reference numbers are for --prompt 512 --gen 128; this run used other sizes)")
print()

# matmul
if mm:
    hdr = ("measurement", "1 thread", "% of peak/mem", "%d threads" % 2, "% of peak/mem")
    lines = []
    lines.append(("peak FMA GFLOP/s (anchor)", fmt(peak(1), 1), "", fmt(peak(2), 1), ""))
    lines.append(("memory read GB/s (anchor)", fmt(mm.get("mem_read_1t"), 1), "", fmt(mm.get("mem_read_2t"), 1), ""))
    for dt in ("F32", "BF16", "F16", "F8_E4M3"):
        for T in (512, 64):
            k = "gemm_%s_T%d_%%dt" % (dt, T)
            if mm.get(k % 1) is None:
                continue
            lines.append(("matmul %s T=%d GFLOP/s" % (dt, T), fmt(mm.get(k % 1), 1), pct(mm.get(k % 1), peak(1)),
                          fmt(mm.get(k % 2), 1), pct(mm.get(k % 2), peak(2))))
    for dt in ("F32", "BF16", "F16", "F8_E4M3"):
        k = "matvec_%s_cold_%%dt" % dt
        if mm.get(k % 1) is None:
            continue
        lines.append(("matvec %s T=1 GB/s (DRAM)" % dt, fmt(mm.get(k % 1), 1), pct(mm.get(k % 1), mm.get("mem_read_1t")),
                      fmt(mm.get(k % 2), 1), pct(mm.get(k % 2), mm.get("mem_read_2t"))))
    print("bench/bench_matmul (isa %s): lm_matmul K = N = 2048, measured in this run" % mm.get("isa", "?"))
    table(hdr, lines, 1)
    paths = [(r["dtype"], r["result"]) for r in rows if r["bench"] == "matmul_path"]
    if paths:
        print()
        print("Kernel paths (same bits on every path, docs/arithmetic.md), 1 thread, --quick runs for the others:")
        hdr2 = ("path", "GEMM F32 T=512 GFLOP/s", "vs %s" % mm.get("isa", "?"), "decode F32 T=1 GB/s", "vs %s" % mm.get("isa", "?"))
        lines2 = []
        g0, d0 = mm.get("gemm_F32_T512_1t"), mm.get("matvec_F32_cold_1t")
        lines2.append((mm.get("isa", "?"), fmt(g0, 1), "1.00x", fmt(d0, 1), "1.00x"))
        for isa, r in paths:
            g, d = r.get("gemm_F32_T512_1t"), r.get("matvec_F32_cold_1t")
            ratio = lambda a, b: ("%.2fx" % (a / b)) if a and b else "-"
            lines2.append((isa, fmt(g, 1), ratio(g, g0), fmt(d, 1), ratio(d, d0)))
        table(hdr2, lines2, 1)
else:
    print("bench/bench_matmul: not run")
print("results: %s" % sys.argv[1])
PYEOF

# Many sequences at once (issue 8): the batch-size table beside llama.cpp's
# batched decode, the cost of batch invariance, and the server under load.
if [ "${BENCH_NO_BATCH:-0}" != 1 ]; then
    echo
    echo "== batched decode: lemma vs llama.cpp (bench/batch_bench.sh)"
    BENCH_RESULTS=$RESULTS bash bench/batch_bench.sh || echo "bench/batch_bench.sh failed (exit $?)"
fi
if [ "${BENCH_NO_DSA:-0}" != 1 ]; then
    echo
    echo "== DeepSeek-V3.2 sparse attention: long-context decode, DSA vs dense (bench/dsa_bench.sh)"
    BENCH_RESULTS=$RESULTS bash bench/dsa_bench.sh || echo "bench/dsa_bench.sh failed (exit $?)"
fi
# GGUF export (issue 10): lemma export's time and llama.cpp's load of its output.
if [ "${BENCH_NO_EXPORT:-0}" != 1 ]; then
    echo
    echo "== GGUF export and llama.cpp load time (bench/export_bench.sh)"
    BENCH_RESULTS=$RESULTS bash bench/export_bench.sh || echo "bench/export_bench.sh failed (exit $?)"
fi
# Q8 weights (issue 11): bench-m decode in Q8 beside F32 and llama.cpp Q8_0
# on the same weights (bench/q8_bench.sh; its JSON lines: build/bench/q8_bench.jsonl).
if [ "${BENCH_NO_PREFILL:-0}" != 1 ] && [ -f "$MODELS/bench-m-f32/model.safetensors" ]; then
    echo
    echo "== latent-cache prefill: absorbed vs --prefill expanded, 1 thread (bench/prefill_bench.sh)"
    pf_prompts="512 2048"; [ "${BENCH_QUICK:-0}" = 1 ] && pf_prompts=$PROMPT
    if bash bench/prefill_bench.sh "$MODELS/bench-s-f32" "$MODELS/bench-m-f32" --prompts "$pf_prompts" --threads 1 \
        --reps "$REPS_M" --rounds 2 >"$OUT/prefill_bench.txt" 2>>"$err"; then
        grep '^{' "$OUT/prefill_bench.txt" >"$OUT/prefill_bench.jsonl"; grep -v '^{' "$OUT/prefill_bench.txt"
    else echo "bench/prefill_bench.sh failed (see $err)"; fi
fi
if [ "${BENCH_NO_Q8:-0}" != 1 ] && [ -f "$MODELS/bench-m-f32/model.safetensors" ]; then
    echo
    echo "== Q8 decode: lemma vs llama.cpp Q8_0, same weights (bench/q8_bench.sh)"
    if bash bench/q8_bench.sh "$MODELS/bench-m-f32" --threads "$THREADS" --prompt "$PROMPT" --gen "$GEN" \
        --reps "$REPS_M" --rounds 1 >"$OUT/q8_bench.txt" 2>>"$err"; then
        grep '^{' "$OUT/q8_bench.txt" >"$OUT/q8_bench.jsonl"; grep -v '^{' "$OUT/q8_bench.txt"
    else echo "bench/q8_bench.sh failed (see $err)"; fi
fi
if [ "${BENCH_NO_SERVE:-0}" != 1 ]; then
    echo
    echo "== lemma serve under concurrent streaming clients (bench/serve_bench.sh)"
    BENCH_RESULTS=$RESULTS bash bench/serve_bench.sh || echo "bench/serve_bench.sh failed (exit $?)"
fi
# Speculative decoding with the MTP draft (issue 10) beside plain greedy decoding.
if [ "${BENCH_NO_MTP:-0}" != 1 ]; then
    echo
    echo "== MTP speculative decoding vs plain greedy (bench/mtp_bench.sh)"
    BENCH_RESULTS=$RESULTS bash bench/mtp_bench.sh || echo "bench/mtp_bench.sh failed (exit $?)"
fi
# Training (issue 4) and tokenizer (issue 3) benchmarks, each with its own
# anchors (PyTorch; npm tokenizers and tiktoken), unless switched off.
if [ "${BENCH_NO_TRAIN:-0}" != 1 ]; then
    echo
    echo "== training: lemma vs PyTorch (bench/train_bench.sh)"
    bash bench/train_bench.sh || echo "bench/train_bench.sh failed (exit $?)"
    echo
    echo "== data-parallel training: 1 process vs mpirun -np 2 (bench/train_mpi_bench.sh)"
    MPI_BENCH_OUT=$RESULTS bash bench/train_mpi_bench.sh || echo "bench/train_mpi_bench.sh failed (exit $?)"
fi
if [ "${BENCH_NO_DISTILL:-0}" != 1 ]; then
    echo
    echo "== logit distillation: lemma vs PyTorch (bench/distill_bench.sh)"
    bash bench/distill_bench.sh || echo "bench/distill_bench.sh failed (exit $?)"
fi
if [ "${BENCH_NO_RL:-0}" != 1 ]; then
    echo
    echo "== post-training RL step: sampling vs training, lemma vs PyTorch (bench/rl_bench.sh)"
    bash bench/rl_bench.sh || echo "bench/rl_bench.sh failed (exit $?)"
fi
if [ "${BENCH_NO_TOKENIZER:-0}" != 1 ]; then
    echo
    echo "== tokenizer: lemma vs npm tokenizers / tiktoken (bench/bench_tokenizer.sh)"
    bash bench/bench_tokenizer.sh || echo "bench/bench_tokenizer.sh failed (exit $?)"
fi
# The theorem domains' exact checkers (bench/bench_tasks.c; anchor: making the
# same proofs) and the proof pipeline on the default prover when it is built
# (bench/prove_bench.sh: proofs generated and verified per minute, time in
# prefill, decode and checking), unless switched off.
if [ "${BENCH_NO_PROVE:-0}" != 1 ]; then
    echo
    echo "== theorem-domain checkers (bench/bench_tasks.c)"
    "$BUILD/bench/bench_tasks" --json "$RESULTS" || echo "bench_tasks failed (exit $?)"
    echo
    echo "== proof pipeline on build/default/prover (bench/prove_bench.sh)"
    bash bench/prove_bench.sh || echo "bench/prove_bench.sh failed (exit $?)"
    echo
    echo "== prover fan-out: 1 vs 2 lemma serve endpoints (bench/prove_fanout.sh)"
    bash bench/prove_fanout.sh || echo "bench/prove_fanout.sh failed (exit $?)"
fi
