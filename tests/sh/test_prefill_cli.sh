#!/usr/bin/env bash
# `--prefill expanded` (latent mode's expanded prefill, model.h) from the
# command line: on a model where expanding costs fewer FLOPs (v2_f32: dn+dv <
# 2C) a one-chunk prefill gives the naive cache's logits bit for bit; the
# default stays the absorbed form; combinations it cannot serve are refused
# in one line with the usage exit status.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
M=tests/golden/v2_f32
IDS=5,9,33,2,7,11,3

check "logits --attn naive" "$LEMMA" logits "$M" --ids $IDS -o "$tmp/naive.f32"
check "logits --attn latent --prefill expanded" "$LEMMA" logits "$M" --ids $IDS --attn latent --prefill expanded -o "$tmp/exp.f32"
check "logits --attn latent" "$LEMMA" logits "$M" --ids $IDS --attn latent -o "$tmp/lat.f32"
check "logits --attn latent --prefill absorbed" "$LEMMA" logits "$M" --ids $IDS --attn latent --prefill absorbed -o "$tmp/abs.f32"
cmp -s "$tmp/naive.f32" "$tmp/exp.f32" && ok "expanded prefill: the naive cache's bits" || bad "expanded prefill: the naive cache's bits"
cmp -s "$tmp/lat.f32" "$tmp/abs.f32" && ok "--prefill absorbed is the default" || bad "--prefill absorbed is the default"

"$LEMMA" generate "$M" --ids $IDS -n 5 --prefill expanded >"$tmp/gen" 2>"$tmp/err" &&
    grep -qE '^[0-9]+(,[0-9]+){4}$' "$tmp/gen" && ok "generate --prefill expanded" || { bad "generate --prefill expanded"; cat "$tmp/err"; }
"$LEMMA" bench "$M" --prompt 16 --gen 2 --reps 1 --threads 1 --prefill expanded >"$tmp/bench" 2>&1 &&
    grep -q '"prefill":"expanded"' "$tmp/bench" && ok "bench --prefill expanded" || { bad "bench --prefill expanded"; cat "$tmp/bench"; }

refused() { # name, message part, command...: one line on stderr, exit status 2
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$want" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok "$name"
    else bad "$name (exit $rc)"; sed 's/^/  /' "$tmp/err" | head -5; fi
}
refused "logits: expanded needs --attn latent" "needs --attn latent" "$LEMMA" logits "$M" --ids $IDS --prefill expanded
refused "bench: expanded with --attn naive" "needs --attn latent" "$LEMMA" bench "$M" --attn naive --prefill expanded
refused "generate: expanded with --attn naive" "needs --attn latent" "$LEMMA" generate "$M" --ids $IDS --attn naive --prefill expanded
refused "generate: expanded with --samples" "does not combine with --samples" "$LEMMA" generate "$M" --ids $IDS --samples 2 --prefill expanded
refused "generate: expanded with --speculative" "does not combine with --speculative" "$LEMMA" generate "$M" --ids $IDS --speculative mtp --prefill expanded
refused "bench: expanded with --batch" "does not combine with --batch" "$LEMMA" bench "$M" --batch 2 --prefill expanded
refused "an unknown --prefill" "expects one of absorbed, expanded" "$LEMMA" logits "$M" --ids $IDS --prefill sideways

echo "test_prefill_cli.sh: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
