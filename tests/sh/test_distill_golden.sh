#!/usr/bin/env bash
# test_distill_golden.sh — tests/golden_distill/rows.json is what
# tests/ref/make_distill_golden.py writes today (--check regenerates it and
# compares byte for byte), so the golden tests/test_distill.c reads cannot
# drift from the formulas in the script. Needs Debian's python3-torch (not in
# CI's package list): skips visibly without it.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
PY=/usr/bin/python3
if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
    echo "skip test_distill_golden: python3 with torch and numpy not available"
    echo "test_distill_golden: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
check "tests/golden_distill is current (make_distill_golden.py --check)" "$PY" tests/ref/make_distill_golden.py --check
echo "test_distill_golden: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
