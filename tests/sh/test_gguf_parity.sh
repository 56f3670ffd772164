#!/usr/bin/env bash
# test_gguf_parity.sh — `lemma export` writes GGUF files that llama.cpp loads
# and computes the same model with.
#
# Every GGUF here is written by `lemma export` (src/model/export_gguf.h) and
# checked twice:
#  - bit for bit against its checkpoint by tests/gguf_roundtrip.py, an
#    independent numpy reader of both formats that rebuilds every tensor
#    (names, ne order, the attn_k_b / attn_v_b split, stacked experts, FP8
#    dequantised) and encodes it as ggml does (F16/BF16 round to nearest
#    even, Q8_0 blocks d = max|x|/127, q = roundf(x/d));
#  - through llama.cpp (v0.4.0, the prebuilt CPU libraries of
#    node-llama-cpp@3.21.1; F16 KV cache, flash attention auto): its
#    log-softmax at every position against the golden logits (PyTorch
#    reference) or `lemma logits` on the same checkpoint.
#
# Tolerances on log-softmax, per exported type:
#  f32, f16: argmax agrees at every position, max |Δ| <= 0.03 (f16: 0.06) and
#    relative L2 <= 2e-3. Why not 1e-4 as for lemma vs the reference: llama.cpp
#    stores the MLA latent (the KV cache) in F16; rounding it to F16 in a
#    float64 re-implementation reproduces llama.cpp's position-0 output to
#    1e-6, and the error then grows with position (seen: <= 0.011 on the
#    13-token V3 golden, <= 0.019 on the default recipe's prover, f16 0.024).
#    A wrong convention (RoPE layout, softmax scale, routing, k_b/v_b split)
#    moves the log-probs by 0.1 or more.
#  bf16, q8_0: mean KL(lemma || llama.cpp) <= 5e-3 nats, argmax agrees at 90%
#    of positions, relative L2 <= 2e-2. llama.cpp also rounds the activations
#    (to BF16 for BF16 matmuls, to Q8 blocks for Q8_0 ones), which lemma on
#    the F32 checkpoint does not; measured on the prover (40 positions): bf16
#    KL 7e-4, argmax 38/40, rel 5.6e-3; q8_0 KL 1.5e-3, 39/40, rel 5.4e-3; on
#    the lemma-init model every argmax agrees and KL <= 6e-6.
#  A lemma Q8 checkpoint (lemma quantize) exported q8_0 holds lemma's blocks
#    as they are (tests/gguf_roundtrip.py checks that they dequantise to
#    lemma's q * d exactly): llama.cpp then has lemma's weights, and lemma's
#    Q8 forward is the reference, at the q8_0 tolerance above. Measured: the
#    init model KL 2.7e-5, argmax 47/48 (one position's routing flips on
#    llama.cpp's Q8 rounding of the activations: KL 1e-3 there, <= 2e-5
#    elsewhere; the same GGUF written f32 gives KL 7e-8); the prover KL
#    1.7e-3, 39/40, rel 6.3e-3.
#
# The default recipe's model (build/default/prover, made by `make run`) is
# checked when present and skipped visibly when not. Skips visibly when
# node/npm/node-llama-cpp or numpy is unavailable.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
NODE_DIR=${LLAMACPP_NODE_DIR:-build/llamacpp-node}
PROVER=${LEMMA_PROVER_DIR:-build/default/prover}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
skip() {
    echo "skip test_gguf_parity: $1"
    echo "test_gguf_parity: 0 passed, 0 failed, 1 skipped"
    exit 0
}

PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || PY=python3
"$PY" -c "import numpy" 2>/dev/null || skip "python3 with numpy not available"
command -v node >/dev/null 2>&1 || skip "node not installed"
command -v timeout >/dev/null 2>&1 || skip "timeout(1) not available"
timeout 600 bench/llamacpp/setup.sh "$NODE_DIR" >"$tmp/setup.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    tail -n 3 "$tmp/setup.log"
    skip "node-llama-cpp@3.21.1 unavailable (setup exit $rc)"
fi
export LLAMACPP_NODE_DIR=$NODE_DIR

# compare NAME REF.f32 LLAMA.logp T V TYPE   (REF: raw logits; LLAMA: log-softmax)
compare() {
    "$PY" - "$@" <<'EOF'
import sys
import numpy as np
name, ref, got, T, V, typ = sys.argv[1:]
T, V = int(T), int(V)
r = np.fromfile(ref, dtype=np.float32).astype(np.float64)
g = np.fromfile(got, dtype=np.float32).astype(np.float64)
if r.size != T * V or g.size != T * V:
    print("%s: sizes %d / %d, want %d" % (name, r.size, g.size, T * V)); sys.exit(1)
r = r.reshape(T, V); g = g.reshape(T, V)
m = r.max(1, keepdims=True)
r = r - m - np.log(np.exp(r - m).sum(1, keepdims=True))
fin = np.isfinite(g)
d = np.abs(r - g)
dmax = d[fin].max() if fin.any() else np.inf
rel = np.linalg.norm((r - g)[fin]) / np.linalg.norm(r[fin])
arg = int((r.argmax(1) == g.argmax(1)).sum())
kl = float((np.exp(r) * (r - np.where(fin, g, -1e30))).sum(1).mean())
if typ in ("f32", "f16"):
    lim = 0.03 if typ == "f32" else 0.06
    tol = "argmax all, max <= %g, rel <= 2e-3" % lim
    good = arg == T and dmax <= lim and rel <= 2e-3
else:
    tol = "KL <= 5e-3, argmax >= 90%, rel <= 2e-2"
    good = kl <= 5e-3 and arg >= 0.9 * T and rel <= 2e-2
good = good and fin.mean() > 0.99
print("%s: T=%d argmax %d/%d, max|dlogp| %.2e, rel L2 %.2e, mean KL %.1e%s" % (
    name, T, arg, T, dmax, rel, kl, "" if good else "  (tolerance: %s)" % tol))
sys.exit(0 if good else 1)
EOF
}

# llama_logp NAME MODEL_DIR IDS OUT [export options]: export, check the bits, run llama.cpp
llama_logp() {
    local name=$1 dir=$2 ids=$3 out=$4; shift 4
    if ! timeout 120 "$LEMMA" export "$dir" "$tmp/$name.gguf" "$@" >"$tmp/conv.log" 2>&1; then
        cat "$tmp/conv.log"; return 1
    fi
    "$PY" tests/gguf_roundtrip.py "$dir" "$tmp/$name.gguf" || return 1
    if ! timeout 120 node bench/llamacpp/bench.mjs logits --model "$tmp/$name.gguf" --ids "$ids" \
            --out "$out" --threads 1 >"$tmp/node.log" 2>&1; then
        tail -n 5 "$tmp/node.log"; return 1
    fi
}

# 1. golden checkpoints (PyTorch reference logits); the BF16 and FP8 ones exported
# as f32 (exact weights, so the f32 tolerance applies)
for spec in v3_f32 v3_f32:--no-mla v3_tied_f32 v3_noqlora_f32 v3_sharded_f32 v3_bf16:--type=f32 v3_fp8:--type=f32; do
    g=${spec%%:*}; opt=""; [ "$spec" != "$g" ] && opt=${spec#*:}
    name=$g${opt:+_${opt#--}}; name=${name//=/_}
    dir=tests/golden/$g
    [ -f "$dir/golden.json" ] || { bad "$name: $dir missing"; continue; }
    read -r ids T V < <("$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); print(','.join(map(str,j['ids'])), j['shape'][0], j['shape'][1])" "$dir/golden.json")
    if llama_logp "$name" "$dir" "$ids" "$tmp/$name.logp" $opt &&
       compare "golden $name" "$dir/logits.f32" "$tmp/$name.logp" "$T" "$V" f32; then
        ok "golden $name"
    else
        bad "golden $name"
    fi
done

# 2. lemma itself on a fresh random model, 48 positions (needs `lemma init`)
if [ -x "$LEMMA" ] && "$LEMMA" init --help >/dev/null 2>&1; then
    cat >"$tmp/cfg.json" <<'EOF'
{"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
 "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 256, "moe_intermediate_size": 64,
 "num_hidden_layers": 3, "first_k_dense_replace": 1, "moe_layer_freq": 1,
 "num_attention_heads": 4, "num_key_value_heads": 4,
 "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
 "n_group": 4, "topk_group": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
 "norm_topk_prob": true, "routed_scaling_factor": 2.5,
 "q_lora_rank": 64, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16, "v_head_dim": 16,
 "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
   "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
 "max_position_embeddings": 163840, "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
 "bos_token_id": 0, "eos_token_id": 1, "hidden_act": "silu", "attention_bias": false}
EOF
    ids=$("$PY" -c "import random; random.seed(7); print(','.join(str(random.randrange(2, 1024)) for _ in range(48)))")
    if timeout 60 "$LEMMA" init "$tmp/cfg.json" --out "$tmp/m" --seed 1 --dtype f32 >"$tmp/init.log" 2>&1 &&
       timeout 60 "$LEMMA" logits "$tmp/m" --ids "$ids" --out "$tmp/lemma.f32" --threads 1 >/dev/null 2>"$tmp/lemma.log"; then
        for t in f32 f16 bf16 q8_0; do
            if llama_logp "init_$t" "$tmp/m" "$ids" "$tmp/init_$t.logp" --type "$t" &&
               compare "lemma init model, $t" "$tmp/lemma.f32" "$tmp/init_$t.logp" 48 1024 "$t"; then
                ok "lemma vs llama.cpp on a lemma init model exported $t"
            else
                bad "lemma vs llama.cpp on a lemma init model exported $t"
            fi
        done
        cp "$tmp/init_f32.gguf" "$tmp/init.gguf" 2>/dev/null
        # the same model quantized by lemma (Q8), exported with the default type (q8_0 for
        # a Q8 checkpoint), against lemma's own Q8 forward
        if timeout 60 "$LEMMA" quantize "$tmp/m" "$tmp/mq8" --type q8 >/dev/null 2>"$tmp/q8.log" &&
           timeout 60 "$LEMMA" logits "$tmp/mq8" --ids "$ids" --out "$tmp/lemma_q8.f32" --threads 1 >/dev/null 2>>"$tmp/q8.log" &&
           llama_logp "init_q8" "$tmp/mq8" "$ids" "$tmp/init_q8.logp" &&
           grep -q "(q8_0" "$tmp/conv.log" &&
           compare "lemma Q8 init model, q8_0" "$tmp/lemma_q8.f32" "$tmp/init_q8.logp" 48 1024 q8_0; then
            ok "lemma Q8 vs llama.cpp on a lemma init model quantized by lemma, exported q8_0"
        else
            tail -n 3 "$tmp/q8.log"; bad "lemma Q8 vs llama.cpp on a lemma init model quantized by lemma, exported q8_0"
        fi
    else
        cat "$tmp/init.log" "$tmp/lemma.log" 2>/dev/null | tail -n 3
        bad "lemma init / logits for the lemma-vs-llama.cpp case"
    fi
    # 3. the batched anchor (bench.mjs batched, used by bench/batch_bench.sh): every decode
    # step is ONE llama_decode carrying one token of each of the B sequences, and
    # node-llama-cpp's own queue, given B sequences evaluating at once, also makes one
    # llama_decode of B tokens per step (what the anchor claims to measure).
    if [ -f "$tmp/init.gguf" ] &&
       timeout 120 node bench/llamacpp/bench.mjs batched --model "$tmp/init.gguf" --threads 1 --batch 1,3 \
            --prompt 5 --gen 4 --check-queue 1 >"$tmp/batched.jsonl" 2>"$tmp/batched.log" &&
       "$PY" - "$tmp/batched.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r["batch"] for r in rows] == [1, 3], rows
for r in rows:
    B = r["batch"]
    assert r["decode_calls_per_step"] == 1, r
    assert r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0, r
    q = r["queue_check"]
    assert q["decode_calls"] == q["steps"] and q["tokens_per_call"] == [B] * q["steps"], q
EOF
    then
        ok "llama.cpp batched anchor: one llama_decode of B tokens per step (driver and node-llama-cpp queue)"
    else
        tail -n 3 "$tmp/batched.log" 2>/dev/null; cat "$tmp/batched.jsonl" 2>/dev/null
        bad "llama.cpp batched anchor: one llama_decode of B tokens per step"
    fi
else
    echo "note: $LEMMA init unavailable, lemma-vs-llama.cpp case not run"
fi

# 4. the default recipe's model, with its own tokenizer, every type
skipped=0
if [ -f "$PROVER/model.safetensors" ] && [ -x "$LEMMA" ]; then
    V=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$PROVER/config.json")
    ids=$("$PY" -c "import random; random.seed(7); print(','.join(str(random.randrange(2, 798)) for _ in range(40)))")
    if timeout 120 "$LEMMA" logits "$PROVER" --ids "$ids" --out "$tmp/prover.f32" --threads 1 >/dev/null 2>"$tmp/lemma.log"; then
        for t in f32 f16 bf16 q8_0; do
            if llama_logp "prover_$t" "$PROVER" "$ids" "$tmp/prover_$t.logp" --type "$t" &&
               compare "default prover, $t" "$tmp/prover.f32" "$tmp/prover_$t.logp" 40 "$V" "$t"; then
                ok "lemma vs llama.cpp on the default recipe's prover exported $t"
            else
                bad "lemma vs llama.cpp on the default recipe's prover exported $t"
            fi
        done
        if timeout 120 "$LEMMA" quantize "$PROVER" "$tmp/pq8" --type q8 >/dev/null 2>"$tmp/q8.log" &&
           timeout 120 "$LEMMA" logits "$tmp/pq8" --ids "$ids" --out "$tmp/prover_q8.f32" --threads 1 >/dev/null 2>>"$tmp/q8.log" &&
           llama_logp "prover_q8" "$tmp/pq8" "$ids" "$tmp/prover_q8.logp" &&
           compare "default prover quantized by lemma, q8_0" "$tmp/prover_q8.f32" "$tmp/prover_q8.logp" 40 "$V" q8_0; then
            ok "lemma Q8 vs llama.cpp on the default prover quantized by lemma, exported q8_0"
        else
            tail -n 3 "$tmp/q8.log"; bad "lemma Q8 vs llama.cpp on the default prover quantized by lemma, exported q8_0"
        fi
        if grep -q "the model's tokenizer" "$tmp/conv.log"; then
            ok "the prover's GGUF carries its own tokenizer"
        else
            bad "the prover's GGUF carries its own tokenizer"; cat "$tmp/conv.log"
        fi
    else
        tail -n 3 "$tmp/lemma.log"; bad "lemma logits on the default prover"
    fi
else
    echo "skip default prover: $PROVER not built (make run builds it)"; skipped=1
fi

echo "test_gguf_parity: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
