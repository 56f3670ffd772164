#!/usr/bin/env bash
# test_v32_cli.sh — DeepSeek-V3.2 (sparse attention) through the CLI: `lemma
# info` names it, `--fp8-emulation` switches the FP8 rounding of every
# computing command, `lemma init` writes a V3.2 checkpoint that generates (its
# MTP layer, with its own indexer, drafts), training refuses it. The numbers themselves are tests/test_dsa.c's.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
g=tests/golden_v32/v32_tiny
ids=$(sed -nE '/"ids"/,/\]/p' $g/golden.json | tr -d ' \n"ids:[]' | cut -d, -f1-40)

"$LEMMA" info $g >"$tmp/info" 2>&1
check "info says DeepSeek-V3.2 with DSA" grep -q "^architecture DeepSeek-V3.2 with DSA" "$tmp/info"
check "info gives the index key bytes (132 per token per layer)" grep -q "index_topk 16, .*132 B per token per layer" "$tmp/info"

"$LEMMA" logits $g --ids "$ids" --out "$tmp/on.f32" >/dev/null 2>&1
"$LEMMA" logits $g --ids "$ids" --out "$tmp/on2.f32" --fp8-emulation on >/dev/null 2>&1
"$LEMMA" logits $g --ids "$ids" --out "$tmp/off.f32" --fp8-emulation off >/dev/null 2>&1
check "FP8 emulation is on by default" cmp -s "$tmp/on.f32" "$tmp/on2.f32"
check "--fp8-emulation off changes the logits" bash -c "! cmp -s '$tmp/on.f32' '$tmp/off.f32'"
"$LEMMA" logits $g --ids "$ids" --out "$tmp/off_latent.f32" --fp8-emulation off --attn latent --chunk 7 >/dev/null 2>&1
check "logits cover 40 positions" test "$(stat -c %s "$tmp/off.f32")" -eq $((40 * 64 * 4))
check_fails "a bad --fp8-emulation value is a usage error" "expects one of off, on" \
    "$LEMMA" generate $g --ids 1,2 --fp8-emulation maybe
"$LEMMA" generate $g --ids 1,2 -n 2 --fp8-emulation x >/dev/null 2>&1; rc=$?
check "usage errors exit 2" test "$rc" -eq 2

# lemma init of a V3.2 config: the indexer tensors are written, the model generates past index_topk
sed -E 's/"index_topk": 16/"index_topk": 4/' $g/config.json > "$tmp/config.json"
check "init writes a V3.2 checkpoint" "$LEMMA" init "$tmp/config.json" --out "$tmp/m" --seed 1
check "it has the indexer tensors" grep -q "self_attn.indexer.k_norm.bias" "$tmp/m/model.safetensors"
check "it generates 24 tokens past index_topk 4" "$LEMMA" generate "$tmp/m" --ids 1,2,3 -n 24 --ignore-eos
# V3.2's MTP layer has an indexer too: the draft loads it and greedy output is unchanged
sed -E 's/"index_topk": 16/"index_topk": 4/; s/"num_nextn_predict_layers": 0/"num_nextn_predict_layers": 1/' \
    $g/config.json > "$tmp/mtp.json"
"$LEMMA" init "$tmp/mtp.json" --out "$tmp/mtp" --seed 2 >/dev/null 2>&1
"$LEMMA" generate "$tmp/mtp" --ids 1,2,3 -n 30 --ignore-eos >"$tmp/plain" 2>/dev/null
"$LEMMA" generate "$tmp/mtp" --ids 1,2,3 -n 30 --ignore-eos --speculative mtp >"$tmp/spec" 2>"$tmp/spec.err"
check "the MTP layer's indexer is bound" grep -q "speculative (mtp): 29 verify forwards" "$tmp/spec.err"
check "MTP speculative greedy equals plain greedy past index_topk" cmp -s "$tmp/plain" "$tmp/spec"
check_fails "training refuses V3.2 sparse attention" "DeepSeek-V3.2 sparse attention" \
    "$LEMMA" train --config "$tmp/config.json" --data /nonexistent --out "$tmp/run"

echo "test_v32_cli: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
