#!/usr/bin/env bash
# test_prove_resume.sh — `lemma prove` killed with SIGKILL at random moments
# and rerun until it finishes ends with exactly the report of an
# uninterrupted run (byte for byte), and no answer recorded in pool.jsonl is
# ever asked again. The scripted backend is deterministic and slowed a little
# (delay_ms) so that kills land in every phase; it logs each reply it gives,
# before the pipeline records it. The kill times are printed (LEMMA_KILL_MS
# replays a list, e.g. "120 40 300").
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

cat >"$tmp/s.json" <<EOF
{"delay_ms": 3, "log": "$tmp/asked.log", "rules": [
 {"name": "refine", "when": ["Candidate Solution(s) to Refine"],
  "replies": ["## Solution\nGOOD refined\n\n## Self Evaluation\n\\\\boxed{1}", "## Solution\nweak refined\n\n## Self Evaluation\n\\\\boxed{0.5}",
              "## Solution\nother refined\n\n## Self Evaluation\n\\\\boxed{0}", "no headings"]},
 {"name": "meta", "when": ["Is the solution evaluation reasonable"], "replies": ["\\\\boxed{1}", "\\\\boxed{1}", "\\\\boxed{1}", "\\\\boxed{0}"]},
 {"name": "verify-good", "when": ["Evaluate the solution", "GOOD"], "replies": ["\\\\boxed{1}", "\\\\boxed{0.5}", "\\\\boxed{1}", "\\\\boxed{0.5}"]},
 {"name": "verify", "when": ["Evaluate the solution"], "replies": ["\\\\boxed{0}", "\\\\boxed{0.5}", "\\\\boxed{1}", "unscored", "\\\\boxed{0}", "\\\\boxed{0.5}"]},
 {"name": "gen", "when": ["Solve the problem"],
  "replies": ["## Solution\nproof A\n\n## Self Evaluation\n\\\\boxed{1}", "## Solution\nproof B\n\n## Self Evaluation\n\\\\boxed{0.5}",
              "## Solution\nproof C\n\n## Self Evaluation\n\\\\boxed{0}", "no headings"]}
]}
EOF
for i in 1 2 3 4; do echo "{\"id\":\"q$i\",\"question\":\"Show that number $i exists.\"}"; done >"$tmp/probs.jsonl"
args=(prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --samples 4 --verifications 3 --rounds 3 --refine-top 2 --refine-samples 2)
P() { "$LEMMA" "${args[@]}" "$@"; }

# the uninterrupted run
start=$(date +%s%N)
check "uninterrupted run" P --out "$tmp/ref"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
total=$(wc -l <"$tmp/asked.log")
grep -q '"round":3' "$tmp/ref/pool.jsonl" && ok "the run reaches round 3 ($total answers, ${ms} ms)" || bad "the run reaches round 3"

# killed again and again, then run to the end
: >"$tmp/asked.log"
kills=0
if [ -n "${LEMMA_KILL_MS:-}" ]; then times=$LEMMA_KILL_MS; else
    # each killed run gets about a quarter of a whole run's time, so that the
    # kills spread over the run (a run that ends before its kill is fine)
    times=""; for _ in 1 2 3 4 5 6 7; do times="$times $((RANDOM % (ms / 4 + 1) + 15))"; done
fi
echo "kill times (ms): $times"
for t in $times; do
    "$LEMMA" "${args[@]}" --out "$tmp/run" >/dev/null 2>&1 &   # not P: $! must be lemma itself
    pid=$!
    sleep "$(awk "BEGIN{print $t/1000}")"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
done
echo "$kills runs killed"
if P --out "$tmp/run" >"$tmp/out" 2>&1; then ok "the last run finishes"; else bad "the last run finishes"; sed 's/^/  /' "$tmp/out" | head; fi
cmp -s "$tmp/run/report.json" "$tmp/ref/report.json" && ok "report.json equals the uninterrupted run's" ||
    { bad "report.json equals the uninterrupted run's"; diff <(tr ',' '\n' <"$tmp/ref/report.json") <(tr ',' '\n' <"$tmp/run/report.json") | head; }
cmp -s "$tmp/run/report.md" "$tmp/ref/report.md" && ok "report.md equals the uninterrupted run's" || bad "report.md equals the uninterrupted run's"

# every answer recorded once; asked at most once more per kill (a reply given
# but not yet written when the process died)
keys() { grep -o '"id":"[^"]*","problem_id":"[^"]*"' "$1"; }
dups=$(keys "$tmp/run/pool.jsonl" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] && ok "no answer recorded twice" || bad "no answer recorded twice ($dups)"
recorded=$(keys "$tmp/run/pool.jsonl" | sort -u | wc -l)
[ "$recorded" -eq "$total" ] && ok "the pool holds the same $total answers" || bad "the pool holds $recorded answers, not $total"
asked=$(wc -l <"$tmp/asked.log")
[ "$asked" -le $((total + kills)) ] && ok "asked $asked times for $total answers and $kills kills" ||
    bad "asked $asked times for $total answers and $kills kills"
if grep -q "dropped an incomplete last line" "$tmp/out"; then echo "  (the last kill cut a line: dropped with a warning)"; fi

echo "test_prove_resume.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
