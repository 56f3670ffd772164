#!/usr/bin/env bash
# test_quantize_cli.sh — `lemma quantize MODEL_DIR OUT_DIR --type q8` end to
# end on tiny F32 and FP8 checkpoints: the output holds I8 weights with F16
# `_q8_scale` companions, `lemma info` and `lemma generate` load it, a Q8
# checkpoint quantized again is unchanged, and bad input is refused with one
# clear line. The output is streamed tensor by tensor (pinned bytes, a heap
# bound below the model's size, nothing left by a failure). (Exactness against
# the dequantized weights: tests/test_q8.c.)
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
skipped=0

cat >"$tmp/tiny.json" <<'JSON'
{
  "architectures": ["DeepseekV3ForCausalLM"],
  "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 2, "first_k_dense_replace": 1, "num_attention_heads": 2,
  "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 2,
  "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
  "routed_scaling_factor": 2.5, "q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
  "qk_rope_head_dim": 8, "v_head_dim": 16, "rope_theta": 10000, "rms_norm_eps": 1e-6,
  "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1
}
JSON

gen() { "$LEMMA" generate "$1" --ids 3,7,11 -n 8 --ignore-eos --threads 1 "${@:2}" 2>/dev/null; }
for dt in f32 fp8; do
    check "init $dt" "$LEMMA" init "$tmp/tiny.json" --out "$tmp/$dt" --seed 3 --dtype $dt
    check "quantize $dt" "$LEMMA" quantize "$tmp/$dt" "$tmp/${dt}_q8" --type q8
    grep -q "q8: .* matrices" "$tmp/out" && ok "  ... reports what it did" || bad "  ... reports what it did"
    if [ $dt = f32 ]; then
        check "  ... config copied" cmp "$tmp/$dt/config.json" "$tmp/${dt}_q8/config.json"
    else
        check "  ... config copied without its FP8 quantization_config" python3 tests/config_minus.py \
            "$tmp/$dt/config.json" "$tmp/${dt}_q8/config.json" quantization_config
    fi
    check "info on q8 ($dt)" "$LEMMA" info "$tmp/${dt}_q8"
    grep -q "I8: " "$tmp/out" && ok "  ... info shows I8" || bad "  ... info shows I8"
    grep -q "F8_E4M3" "$tmp/out" && bad "  ... no FP8 left" || ok "  ... no FP8 left"
    g=$(gen "$tmp/${dt}_q8")
    [[ "$g" =~ ^[0-9]+(,[0-9]+){7}$ ]] && ok "generate on q8 ($dt): $g" || bad "generate on q8 ($dt) ('$g')"
    g2=$(gen "$tmp/${dt}_q8" --attn naive)
    [ "$g" = "$g2" ] && ok "  ... latent = naive" || bad "  ... latent = naive ($g vs $g2)"
done
# names and dtypes in the header: I8 weight, F16 [rows, cols/32] scale, router and norms kept
python3 - "$tmp/f32_q8/model.safetensors" >"$tmp/hdr" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))
for k in ['model.layers.1.mlp.experts.0.up_proj.weight', 'model.layers.1.mlp.experts.0.up_proj.weight_q8_scale',
          'model.layers.1.mlp.gate.weight', 'model.norm.weight', 'lm_head.weight', 'model.embed_tokens.weight']:
    print(k, h[k]['dtype'], h[k]['shape'])
PY
grep -q "experts.0.up_proj.weight I8 \[32, 64\]" "$tmp/hdr" && grep -q "up_proj.weight_q8_scale F16 \[32, 2\]" "$tmp/hdr" \
    && grep -q "mlp.gate.weight F32" "$tmp/hdr" && grep -q "model.norm.weight F32" "$tmp/hdr" \
    && grep -q "lm_head.weight I8" "$tmp/hdr" && grep -q "embed_tokens.weight I8" "$tmp/hdr" \
    && ok "tensor names and dtypes" || { bad "tensor names and dtypes"; sed 's/^/  /' "$tmp/hdr"; }
# the FP8 quantization_config dropped wherever it stands (first, middle, last member, compact
# or pretty JSON), every other byte kept; a config without one is copied unchanged
for where in middle last compact; do
    rm -rf "$tmp/qc" "$tmp/qc_q8"; cp -r tests/golden/v3_fp8 "$tmp/qc"
    python3 - "$tmp/qc/config.json" $where <<'PY'
import json, sys
path, where = sys.argv[1], sys.argv[2]
c = json.load(open(path)); qc = c.pop("quantization_config")
if where == "last":
    c["quantization_config"] = qc
    text = json.dumps(c, indent=2)
elif where == "compact":
    items = list(c.items()); items.insert(5, ("quantization_config", qc))
    text = json.dumps(dict(items), separators=(",", ":"))
else:
    items = list(c.items()); items.insert(len(items) // 2, ("quantization_config", qc))
    text = json.dumps(dict(items), indent=1)
open(path, "w").write(text)
PY
    if "$LEMMA" quantize "$tmp/qc" "$tmp/qc_q8" >/dev/null 2>&1 &&
       python3 tests/config_minus.py "$tmp/qc/config.json" "$tmp/qc_q8/config.json" quantization_config >"$tmp/out" 2>&1 &&
       "$LEMMA" info "$tmp/qc_q8" >/dev/null 2>&1; then
        ok "FP8 quantization_config ($where) dropped, the rest kept"
    else
        bad "FP8 quantization_config ($where) dropped, the rest kept"; sed 's/^/  /' "$tmp/out"
    fi
done
check "quantize a q8 checkpoint again" "$LEMMA" quantize "$tmp/f32_q8" "$tmp/again"
check "  ... same bytes" cmp "$tmp/f32_q8/model.safetensors" "$tmp/again/model.safetensors"

# the bytes of the output, pinned: sha256 recorded with the quantizer that built the whole
# model in memory (before it streamed tensor by tensor). Should a golden checkpoint be
# regenerated, record its hash again from a build whose output was checked otherwise.
while read -r want g; do
    rm -rf "$tmp/pin"
    if "$LEMMA" quantize "tests/golden/$g" "$tmp/pin" >/dev/null 2>&1 &&
       [ "$(sha256sum <"$tmp/pin/model.safetensors" | cut -d' ' -f1)" = "$want" ]; then
        ok "golden $g: the same bytes as the in-memory quantizer"
    else
        bad "golden $g: the same bytes as the in-memory quantizer"
    fi
done <<'PINS'
55229b36c82ccd394e4611f0691a3e04bda33d68be27d3e831b735709d5150d8 v3_f32
bcfa219c92ab1faf17a94eab2b6013329292416486956f5980928752f660f805 v3_fp8
9e7834a446c0c22f95e6d011d68168cf228bee2b7c4615dc82968bdc24f40e11 v3_sharded_f32
db05093177b27c790b43f025411e08e324da107b5ee4354213edd60c8cbc4edf v2_f32
PINS

# memory bounded by one tensor, not the model: 17.0M weights (32.5 MiB of BF16 in, 17.3 MiB of
# Q8 out; the largest matrix 2M weights) quantized with at most 8 MiB of heap (ulimit -d counts
# malloc'd memory, not the read-only mapping of the input). Quantizing whole in memory needs
# about 1.07 bytes per weight and fails there ("out of memory quantizing ..."). ASan's shadow
# memory counts as data: not under the sanitizer.
case "${LEMMA_SANITIZE:-}${LEMMA}" in
*sanitize*) echo "skip the heap bound under ASan (its shadow memory counts against ulimit -d)"; skipped=1 ;;
*)
    sed 's/"vocab_size": 128, "hidden_size": 64, "intermediate_size": 96/"vocab_size": 4096, "hidden_size": 512, "intermediate_size": 2048/;
         s/"num_hidden_layers": 2, "first_k_dense_replace": 1/"num_hidden_layers": 4, "first_k_dense_replace": 4/' \
        "$tmp/tiny.json" >"$tmp/big.json"
    if "$LEMMA" init "$tmp/big.json" --out "$tmp/big" --seed 1 --dtype bf16 >/dev/null 2>&1; then
        check "17.0M weights quantized within 8 MiB of heap" \
            sh -c "ulimit -d 8192 && exec '$LEMMA' quantize '$tmp/big' '$tmp/big_q8'"
        grep -q "34 matrices, 17.0M weights" "$tmp/out" && ok "  ... every matrix" || bad "  ... every matrix"
        check "  ... loads" "$LEMMA" info "$tmp/big_q8"
    else
        bad "lemma init of the 17M-weight model"
    fi
    rm -rf "$tmp/big" "$tmp/big_q8" ;;
esac

# a weight that cannot be quantized shows only while the file is written: nothing is left
"$LEMMA" init "$tmp/tiny.json" --out "$tmp/nan" --seed 3 >/dev/null 2>&1
python3 - "$tmp/nan/model.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
raw = bytearray(open(path, 'rb').read()); n = struct.unpack_from('<Q', raw, 0)[0]
h = json.loads(raw[8:8 + n]); e = h['model.layers.1.mlp.experts.2.down_proj.weight']
struct.pack_into('<f', raw, 8 + n + e['data_offsets'][0] + 4 * (32 + 5), float('nan'))  # row 1, column 5
open(path, 'wb').write(raw)
PY
check_fails "a NaN weight is refused" "tensor 'model.layers.1.mlp.experts.2.down_proj.weight' row 1 column 5 is nan" \
    "$LEMMA" quantize "$tmp/nan" "$tmp/nan_q8"
[ -e "$tmp/nan_q8" ] && bad "  ... OUT_DIR removed" || ok "  ... OUT_DIR removed"
mkdir "$tmp/mine"; echo keep >"$tmp/mine/notes.txt"
check_fails "  ... into an existing folder" "row 1 column 5 is nan" "$LEMMA" quantize "$tmp/nan" "$tmp/mine"
[ "$(ls "$tmp/mine")" = notes.txt ] && ok "  ... which keeps only what it held" || bad "  ... which keeps only what it held ($(ls "$tmp/mine" | tr '\n' ' '))"

check_fails "existing checkpoint" "already holds a checkpoint" "$LEMMA" quantize "$tmp/f32" "$tmp/f32_q8"
mkdir "$tmp/theirs"; echo '{"theirs": 1}' >"$tmp/theirs/config.json"
check_fails "a folder holding another config.json" "theirs/config.json already exists" "$LEMMA" quantize "$tmp/f32" "$tmp/theirs"
[ "$(cat "$tmp/theirs/config.json")" = '{"theirs": 1}' ] && [ "$(ls "$tmp/theirs")" = config.json ] \
    && ok "  ... which is left as it was" || bad "  ... which is left as it was"
check_fails "bad type" "--type expects one of q8, got 'q4'" "$LEMMA" quantize "$tmp/f32" "$tmp/x" --type q4
"$LEMMA" quantize "$tmp/f32" "$tmp/x" --type q4 >/dev/null 2>&1; [ $? -eq 2 ] && ok "  ... exit 2" || bad "  ... exit 2"
check_fails "missing OUT_DIR" "missing OUT_DIR" "$LEMMA" quantize "$tmp/f32"
check_fails "no checkpoint" "config.json" "$LEMMA" quantize "$tmp/nosuch" "$tmp/y"
[ -e "$tmp/y/model.safetensors" ] && bad "  ... nothing written" || ok "  ... nothing written"

echo "test_quantize_cli: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
