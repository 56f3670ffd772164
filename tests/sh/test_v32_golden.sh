#!/usr/bin/env bash
# test_v32_golden.sh — tests/golden_v32 is what tests/ref/make_v32_golden.py
# writes today: the PyTorch reference is regenerated into a temporary folder
# and compared byte for byte (--check), so the goldens tests/test_dsa.c reads
# cannot drift from the V3.2 reference (deepseek_ref.py). Needs Debian's python3-torch
# (not in CI's package list): skips visibly without it.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
PY=/usr/bin/python3
if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
    echo "skip test_v32_golden: python3 with torch and numpy not available"
    echo "test_v32_golden: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
check "tests/golden_v32 is current (make_v32_golden.py --check)" "$PY" tests/ref/make_v32_golden.py --check
echo "test_v32_golden: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
