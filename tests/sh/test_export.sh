#!/usr/bin/env bash
# test_export.sh — `lemma export` (src/model/export_gguf.h) without llama.cpp:
# every golden checkpoint (F32, BF16, FP8 with block scales, V2, tied, no q
# LoRA, sharded) and their lemma Q8 versions (lemma quantize) in every type, checked bit for bit against its checkpoint
# by tests/gguf_roundtrip.py (skipped visibly without numpy); the real
# tokenizer of a model directory; and the command's refusals: a file it did
# not write, a bad --type, a missing model, nothing left behind on failure.
# llama.cpp's side is tests/sh/test_gguf_parity.sh.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
skipped=0

PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || PY=python3
if "$PY" -c "import numpy" 2>/dev/null; then
    for g in v3_f32 v3_bf16 v3_fp8 v2_f32 v3_tied_f32 v3_noqlora_f32 v3_sharded_f32; do
        for t in auto f32 f16 bf16 q8_0; do
            if "$LEMMA" export tests/golden/$g "$tmp/$g-$t.gguf" --type $t >"$tmp/log" 2>&1 &&
               "$PY" tests/gguf_roundtrip.py tests/golden/$g "$tmp/$g-$t.gguf" >"$tmp/rt" 2>&1; then
                ok "$g --type $t: $(sed 's/^gguf_roundtrip: [^:]*: //' "$tmp/rt")"
            else
                bad "$g --type $t"; sed 's/^/  /' "$tmp/log" "$tmp/rt" | head -5
            fi
        done
        rm -f "$tmp"/*.gguf
    done
    # lemma Q8 checkpoints (lemma quantize): q8_0/auto copy their blocks (the GGUF dequantises to
    # lemma's q * d exactly), the other types take q * d exactly and round it
    for g in v3_f32 v3_fp8 v2_f32 v3_noqlora_f32 v3_sharded_f32; do
        "$LEMMA" quantize tests/golden/$g "$tmp/q8_$g" --type q8 >/dev/null 2>&1 || bad "quantize $g"
        for t in auto f32 f16 bf16 q8_0; do
            if "$LEMMA" export "$tmp/q8_$g" "$tmp/q8_$g-$t.gguf" --type $t >"$tmp/log" 2>&1 &&
               "$PY" tests/gguf_roundtrip.py "$tmp/q8_$g" "$tmp/q8_$g-$t.gguf" >"$tmp/rt" 2>&1; then
                ok "q8 $g --type $t: $(sed 's/^gguf_roundtrip: [^:]*: //' "$tmp/rt")"
            else
                bad "q8 $g --type $t"; sed 's/^/  /' "$tmp/log" "$tmp/rt" | head -5
            fi
        done
        grep -q "(q8_0; [0-9]* with rows not a multiple of 32 in f32)" "$tmp/log" &&
            ok "  ... q8 $g: rows that are not whole blocks go to f32 (exact)" || bad "  ... q8 $g: fallback reported"
        rm -f "$tmp"/*.gguf
    done
    check "--no-mla: one attn_kv_b per layer, bit-exact" \
        sh -c "'$LEMMA' export tests/golden/v3_f32 '$tmp/nomla.gguf' --no-mla && '$PY' tests/gguf_roundtrip.py tests/golden/v3_f32 '$tmp/nomla.gguf' && grep -q attn_kv_b '$tmp/nomla.gguf'"
else
    echo "skip bit-exact round trips: python3 with numpy not available"; skipped=1
fi

# the real tokenizer: lemma tokenizers trained here (byte-level BPE with merges), in a
# model of 300 ids: DeepSeek-V3's pre-tokenizer exactly, and the recipe's one-digit variant
sed 's/"vocab_size": 256/"vocab_size": 300/' tests/golden/v3_f32/config.json >"$tmp/cfg300.json"
printf 'the cat sat on the mat. 12 + 30 = 42\n%.0s' $(seq 1 50) >"$tmp/corpus.txt"
if "$LEMMA" init "$tmp/cfg300.json" --out "$tmp/tm" --seed 1 >/dev/null 2>&1 &&
   "$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 280 --out "$tmp/tok3" -q >/dev/null 2>&1 &&
   "$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 280 --digit-group 1 --out "$tmp/tok1" -q >/dev/null 2>&1; then
    cp "$tmp/tok3/"tokenizer*.json "$tmp/tm/"
    if "$LEMMA" export "$tmp/tm" "$tmp/tm.gguf" >"$tmp/log" 2>&1 && grep -q "the model's tokenizer" "$tmp/log" &&
       ! grep -q warning "$tmp/log" && grep -aq "tokenizer.ggml.merges" "$tmp/tm.gguf" &&
       grep -aq "deepseek-v3" "$tmp/tm.gguf" && grep -aq "PAD299" "$tmp/tm.gguf"; then
        ok "the model's tokenizer.json goes into the GGUF (gpt2 vocabulary, merges, deepseek-v3, unused ids padded)"
    else
        bad "the model's tokenizer.json goes into the GGUF"; sed 's/^/  /' "$tmp/log"
    fi
    check_fails "one digit per token: exported with a warning" \
        "lemma export: warning: llama.cpp's deepseek-v3 pre-tokenizer groups up to 3 digits" \
        sh -c "'$LEMMA' export '$tmp/tm' '$tmp/tm1.gguf' --tokenizer '$tmp/tok1' && false"
    check_fails "a tokenizer with more ids than vocab_size" "has 280 ids but the model's vocab_size is 256" \
        "$LEMMA" export tests/golden/v3_f32 "$tmp/x.gguf" --tokenizer "$tmp/tok3/tokenizer.json"
else
    bad "lemma init / tokenizer train for the tokenizer cases"
fi

# a V3.2 checkpoint: its indexer tensors are left out, and export says so
cp -r tests/golden/v3_f32 "$tmp/v32"
"${PY:-python3}" - "$tmp/v32/model.safetensors" <<'PYEOF2'
import json, struct, sys
path = sys.argv[1]
raw = open(path, "rb").read()
(n,) = struct.unpack_from("<Q", raw, 0)
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
header["model.layers.0.self_attn.indexer.k_norm.weight"] = {"dtype": "F32", "shape": [4], "data_offsets": [len(data), len(data) + 16]}
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + data + struct.pack("<4f", 1, 1, 1, 1))
PYEOF2
check_fails "V3.2 indexer tensors: exported without them, with a warning" \
    "warning: the DeepSeek-V3.2 indexer is not exported" sh -c "'$LEMMA' export '$tmp/v32' '$tmp/v32.gguf' && false"
[ -f "$tmp/v32.gguf" ] && ok "the V3.2 checkpoint's GGUF is written" || bad "the V3.2 checkpoint's GGUF is written"

# refusals
echo "not a gguf" >"$tmp/mine.txt"
check_fails "refuses to overwrite a file it did not write" \
    "lemma export: $tmp/mine.txt exists and was not written by lemma export (remove it first)" \
    "$LEMMA" export tests/golden/v3_f32 "$tmp/mine.txt"
if [ "$(cat "$tmp/mine.txt")" = "not a gguf" ]; then ok "the file is untouched"; else bad "the file was changed"; fi
"$LEMMA" export tests/golden/v3_f32 "$tmp/own.gguf" >/dev/null 2>&1
check "replaces a file it wrote" "$LEMMA" export tests/golden/v3_f32 "$tmp/own.gguf" --type bf16
check_fails "a bad --type" "lemma export: --type expects one of auto, f32, f16, bf16, q8_0, got 'q4'" \
    "$LEMMA" export tests/golden/v3_f32 "$tmp/q4.gguf" --type q4
check_fails "a missing model" "lemma export: $tmp/none/config.json: cannot open" "$LEMMA" export "$tmp/none" "$tmp/n.gguf"
check_fails "a missing output folder" "cannot create" "$LEMMA" export tests/golden/v3_f32 "$tmp/no/dir/x.gguf"
cp -r tests/golden/v3_f32 "$tmp/i8"
"${PY:-python3}" - "$tmp/i8/model.safetensors" <<'PYEOF3'
import json, struct, sys
path = sys.argv[1]
raw = bytearray(open(path, "rb").read())
(n,) = struct.unpack_from("<Q", raw, 0)
header = json.loads(raw[8:8 + n])
e = header["model.embed_tokens.weight"]
e["dtype"] = "I8"  # an I8 matrix without its _q8_scale companion
b, _ = e["data_offsets"]
e["data_offsets"] = [b, b + e["shape"][0] * e["shape"][1]]
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PYEOF3
check_fails "an I8 matrix without its scales is refused" \
    "I8 tensor 'model.embed_tokens.weight' needs an F16 'model.embed_tokens.weight_q8_scale' of shape .256, 2." \
    "$LEMMA" export "$tmp/i8" "$tmp/i8.gguf"
check_fails "moe_layer_freq 2 is refused" "moe_layer_freq is 2" "$LEMMA" export tests/golden/v2lite_yarn_f32 "$tmp/v2l.gguf"
if ls "$tmp" | grep -q '\.tmp\.'; then bad "a temporary file was left"; else ok "no temporary file left"; fi
[ -e "$tmp/q4.gguf" ] || [ -e "$tmp/n.gguf" ] || [ -e "$tmp/v2l.gguf" ] || [ -e "$tmp/i8.gguf" ] && bad "a failed export left its output" || ok "failed exports leave no output"

echo "test_export: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
