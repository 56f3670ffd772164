#!/usr/bin/env bash
# test_mtp_golden.sh — tests/golden_mtp is what tests/ref/make_mtp_golden.py
# writes today (the PyTorch MTP reference regenerated into a temporary
# folder and compared byte for byte), and `lemma generate --speculative mtp`
# prints the plain greedy ids, refuses a checkpoint without an MTP layer in
# one line, and refuses --samples as a usage error. The --check part needs
# Debian's python3-torch: it skips visibly without it.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
L=$LEMMA
G=tests/golden/v3_sharded_f32
plain=$("$L" generate $G --ids 5,17,3,99,42 -n 24 --ignore-eos --threads 1 2>/dev/null)
spec=$("$L" generate $G --ids 5,17,3,99,42 -n 24 --ignore-eos --threads 2 --speculative mtp 2>/dev/null)
check "greedy --speculative mtp prints the plain ids" test -n "$plain" -a "$plain" = "$spec"
"$L" generate tests/golden/v3_f32 --ids 5,17 --speculative mtp >/dev/null 2>"$tmp/err"; rc=$?
check "a checkpoint without an MTP layer is refused in one line" \
    test "$rc" = 1 -a "$(wc -l <"$tmp/err")" = 1 -a -n "$(grep num_nextn_predict_layers "$tmp/err")"
"$L" generate $G --ids 5,17 --speculative mtp --samples 2 >/dev/null 2>&1; rc=$?
check "--speculative with --samples is a usage error" test "$rc" = 2
skipped=0
PY=/usr/bin/python3
if "$PY" -c "import torch, numpy" 2>/dev/null; then
    check "tests/golden_mtp is current (make_mtp_golden.py --check)" "$PY" tests/ref/make_mtp_golden.py --check
else
    echo "skip test_mtp_golden --check: python3 with torch and numpy not available"
    skipped=1
fi
echo "test_mtp_golden: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
