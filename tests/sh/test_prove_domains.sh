#!/usr/bin/env bash
# test_prove_domains.sh — `lemma prove` on problems of the synthetic domains
# (`lemma tasks gen`), answered by a scripted backend that gives either the
# reference proof or a corrupted one (`lemma tasks corrupt`): the report has a
# row per domain, and its pass@1, verifier agreement and MAE equal what
# python3 computes from pool.jsonl with the known scores of the two proofs
# (1 for the reference, the corruption's label otherwise). Skipped, visibly,
# while no domain is linked or without python3.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

if ! "$LEMMA" tasks gen all --seed 11 --n 9 --out "$tmp/p.jsonl" >/dev/null 2>&1; then
    echo "skip test_prove_domains.sh: lemma tasks gen is not available (no synthetic domain linked)"
    echo "test_prove_domains.sh: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
if ! command -v python3 >/dev/null; then
    echo "skip test_prove_domains.sh: python3 not found"
    echo "test_prove_domains.sh: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
check "tasks corrupt" "$LEMMA" tasks corrupt "$tmp/p.jsonl" --seed 5 --out "$tmp/c.jsonl"
check "script from the problems" python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
good = [json.loads(l) for l in open(f"{tmp}/p.jsonl")]
bad = [json.loads(l) for l in open(f"{tmp}/c.jsonl")]
rules = [{"name": "meta", "when": ["Is the solution evaluation reasonable"], "replies": ["\\boxed{1}", "\\boxed{0}"]},
         {"name": "verify", "when": ["Evaluate the solution"], "replies": ["\\boxed{1}", "\\boxed{0}", "\\boxed{0.5}", "none"]}]
for g, b in zip(good, bad):
    assert g["question"] == b["question"]
    rules.append({"when": ["Candidate Solution(s) to Refine", g["question"]], "replies": [g["proof"], b["proof"]]})
    rules.append({"when": [g["question"]], "replies": [g["proof"], b["proof"], b["proof"]]})
json.dump({"rules": rules}, open(f"{tmp}/s.json", "w"))
EOF
if "$LEMMA" prove "$tmp/p.jsonl" --backend-script "$tmp/s.json" --samples 4 --verifications 3 --rounds 2 --out "$tmp/r" \
    >"$tmp/stdout" 2>"$tmp/stderr"; then ok "prove on domain problems"; else bad "prove on domain problems"; sed 's/^/  /' "$tmp/stderr" | head; fi
grep -q '^| domain | problems | pass@1 | best-of-4 | verifier agreement | verifier MAE | round 1 | round 2 |' "$tmp/stdout" &&
    ok "the table has the domain columns" || bad "the table has the domain columns"
grep -q '^| \*\*all\*\* | 9 |' "$tmp/stdout" && ok "and an all row over the 9 problems" || bad "and an all row over the 9 problems"
check "pass@1, agreement and MAE match the pool" python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
score = {}
for f, known in (("p.jsonl", None), ("c.jsonl", "label")):
    for l in open(f"{tmp}/{f}"):
        d = json.loads(l)
        score[(d["question"], d["proof"])] = 1 if known is None else d[known]
problems = {}
for i, l in enumerate(open(f"{tmp}/p.jsonl"), 1):
    d = json.loads(l)
    problems[d["id"]] = d["question"]
pool = [json.loads(l) for l in open(f"{tmp}/r/pool.jsonl")]
proofs = {(r["problem_id"], r["id"]): score[(problems[r["problem_id"]], r["text"])] for r in pool if r["kind"] == "proof"}
first = [v for (p, i), v in proofs.items() if i.startswith("r0.")]
judged = [(r["score"], proofs[(r["problem_id"], r["parent"])]) for r in pool if r["kind"] == "verification" and r["score"] is not None]
want = {"pass_at_1": sum(v == 1 for v in first) / len(first),
        "verifier_agreement": sum(a == b for a, b in judged) / len(judged),
        "verifier_mae": sum(abs(a - b) for a, b in judged) / len(judged)}
got = json.load(open(f"{tmp}/r/report.json"))["summary"]["all"]
for k, v in want.items():
    assert abs(got[k] - v) < 1e-12, (k, got[k], v)
print(want)
EOF

echo "test_prove_domains.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
