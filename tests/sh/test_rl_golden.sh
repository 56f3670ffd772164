#!/usr/bin/env bash
# test_rl_golden.sh — tests/golden_rl is what tests/ref/make_rl_golden.py
# writes today: the PyTorch reference is regenerated into a temporary folder
# and compared (--check: structure and integers exactly, floats to 1e-9
# relative, as the system BLAS may move last bits), so the goldens tests/test_rl.c reads
# cannot drift from the formulas in the script. Needs Debian's python3-torch
# (not in CI's package list): skips visibly without it.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
PY=/usr/bin/python3
if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
    echo "skip test_rl_golden: python3 with torch and numpy not available"
    echo "test_rl_golden: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
check "tests/golden_rl is current (make_rl_golden.py --check)" "$PY" tests/ref/make_rl_golden.py --check
echo "test_rl_golden: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
