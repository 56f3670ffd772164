#!/usr/bin/env bash
# test_init_cli.sh — `lemma init` end to end on a tiny config: writes a
# checkpoint, the same seed gives the same bytes at any --threads, `lemma
# info` and `lemma generate` run on it (F32, BF16, FP8), bad input is refused
# with one clear line.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

cat >"$tmp/tiny.json" <<'JSON'
{
  "architectures": ["DeepseekV3ForCausalLM"],
  "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
  "num_hidden_layers": 2, "first_k_dense_replace": 1, "num_attention_heads": 2,
  "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 2,
  "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
  "routed_scaling_factor": 2.5, "q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
  "qk_rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 10000, "rms_norm_eps": 1e-6,
  "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1
}
JSON

check "init f32" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/a" --seed 5 --threads 1
check "init f32 again, 2 threads" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/b" --seed 5 --threads 2
check "same bytes" cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors"
check "config verbatim" cmp "$tmp/tiny.json" "$tmp/a/config.json"
check "init other seed" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/c" --seed 6
if cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors"; then bad "other seed differs"; else ok "other seed differs"; fi
check "info" "$LEMMA" info "$tmp/a"
grep -q "F32: " "$tmp/out" && ok "info shows F32" || bad "info shows F32"

for dt in bf16 fp8; do
    check "init $dt" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/$dt" --seed 5 --dtype $dt
    check "info $dt" "$LEMMA" info "$tmp/$dt"
done
grep -q "F8_E4M3: " "$tmp/out" && ok "info shows F8_E4M3" || bad "info shows F8_E4M3"
grep -q '"quant_method": "fp8"' "$tmp/fp8/config.json" && ok "fp8 config has quantization_config" \
    || bad "fp8 config has quantization_config"

# generate: greedy, same ids twice, latent and naive agree on this F32 model
gen() { "$LEMMA" generate "$1" --ids 3,7,11 -n 8 --ignore-eos --threads 1 "${@:2}" 2>/dev/null; }
g1=$(gen "$tmp/a"); g2=$(gen "$tmp/b"); g3=$(gen "$tmp/a" --attn naive)
if [[ "$g1" =~ ^[0-9]+(,[0-9]+){7}$ ]]; then ok "generate prints 8 ids ($g1)"; else bad "generate prints 8 ids ('$g1')"; fi
[ "$g1" = "$g2" ] && ok "same weights, same ids" || bad "same weights, same ids ($g1 vs $g2)"
[ "$g1" = "$g3" ] && ok "latent = naive" || bad "latent = naive ($g1 vs $g3)"
for dt in bf16 fp8; do
    g=$(gen "$tmp/$dt")
    [[ "$g" =~ ^[0-9]+(,[0-9]+){7}$ ]] && ok "generate $dt" || bad "generate $dt ('$g')"
done

# refusals
check_fails "existing checkpoint needs --force" "use --force" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/a"
check "--force overwrites" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/a" --seed 5 --force
check_fails "bad dtype" "--dtype expects one of f32, bf16, fp8, got 'int4'" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/d" --dtype int4
check_fails "missing --out" "missing --out DIR" "$LEMMA" init "$tmp/tiny.json"
check_fails "missing config" "nosuch.json" "$LEMMA" init "$tmp/nosuch.json" --out "$tmp/d"
sed 's/"hidden_size": 32/"hidden_size": -3/' "$tmp/tiny.json" >"$tmp/neg.json"
check_fails "bad config field" "hidden_size" "$LEMMA" init "$tmp/neg.json" --out "$tmp/d"
check_fails "fp8 config with --dtype f32" "quantization_config" "$LEMMA" init "$tmp/fp8/config.json" --out "$tmp/e" --dtype f32
check "fp8 config defaults to fp8" "$LEMMA" init "$tmp/fp8/config.json" --out "$tmp/f" --seed 5
check "  ... same bytes as --dtype fp8" cmp "$tmp/fp8/model.safetensors" "$tmp/f/model.safetensors"

echo "test_init_cli: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
