#!/usr/bin/env bash
# The batched engine from the command line: `generate --samples` past one
# engine request (more than 64 samples) equals single runs with seed S+k, and
# `bench --batch` prints one valid JSON line per batch size, with the fields
# the benchmark table reads, and refuses bad sizes.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
M=tests/golden/v3_f32

# 66 samples: two engine requests (64 + 2); samples 0, 63, 64 and 65 against lone runs
"$LEMMA" generate "$M" --ids 5,9,33,2 -n 6 --temperature 1.0 --seed 40 --samples 66 >"$tmp/multi" 2>"$tmp/err"
lines=$(wc -l <"$tmp/multi")
[ "$lines" -eq 66 ] && ok "--samples 66 prints 66 lines" || { bad "--samples 66 prints 66 lines ($lines)"; head -3 "$tmp/err"; }
same=0
for k in 0 63 64 65; do
    one=$("$LEMMA" generate "$M" --ids 5,9,33,2 -n 6 --temperature 1.0 --seed $((40 + k)) 2>/dev/null)
    [ "$one" = "$(sed -n "$((k + 1))p" "$tmp/multi")" ] && same=$((same + 1))
done
[ $same -eq 4 ] && ok "--samples: sample k equals seed S+k alone (k = 0, 63, 64, 65)" || bad "--samples: $same of 4 equal"
distinct=$(sort -u "$tmp/multi" | wc -l)
[ "$distinct" -gt 10 ] && ok "--samples: the seeds give different samples ($distinct distinct)" || bad "--samples: $distinct distinct"

# bench --batch: one JSON line per size, in order, with the fields
if "$LEMMA" bench "$M" --batch 1,3,8 --prompt 13 --gen 4 --reps 1 --threads 2 >"$tmp/bench" 2>"$tmp/err"; then
    if python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
for line, b in zip(lines, (1, 3, 8)):
    j = json.loads(line)
    assert j["batch"] == b and j["prompt"] == 13 and j["gen"] == 4 and j["threads"] == 2, j
    for k in ("prefill_tok_s", "decode_tok_s", "ms_per_step"):
        assert isinstance(j[k], (int, float)) and j[k] > 0, (k, j)
    # the prompt and 4 fed tokens, 17 positions in blocks of 16: two blocks per sequence
    assert j["blocks_used_peak"] == 2 * b, j
' "$tmp/bench" >"$tmp/py" 2>&1; then ok "bench --batch: one valid JSON line per batch size"
    else bad "bench --batch: one valid JSON line per batch size"; sed 's/^/  /' "$tmp/py" "$tmp/bench" | tail -5; fi
else
    bad "bench --batch runs"; head -3 "$tmp/err"
fi
check_fails "bench --batch 0" "--batch expects comma-separated batch sizes in 1..4096, got '0'" "$LEMMA" bench "$M" --batch 0
check_fails "bench --batch 1,,2" "--batch expects" "$LEMMA" bench "$M" --batch 1,,2
"$LEMMA" bench "$M" --prompt 8 --gen 2 --reps 1 >"$tmp/single" 2>/dev/null
grep -q '"decode_weight_gb_s"' "$tmp/single" && [ "$(wc -l <"$tmp/single")" -eq 1 ] &&
    ok "bench without --batch: the single-sequence line as before" || bad "bench without --batch"

echo "test_engine_cli.sh: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
