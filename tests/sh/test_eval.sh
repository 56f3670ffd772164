#!/usr/bin/env bash
# test_eval.sh — `lemma eval` end to end against the scripted backend, on
# problems of the synthetic domains (`lemma tasks gen`) answered with their
# reference proof or a corrupted one (`lemma tasks corrupt`), whose checker
# scores are known:
#   1. a script where every answer is fixed: each number of results.json equals
#      the value computed by hand below;
#   2. a script whose answers vary with the request's seed: every number equals
#      what python3 computes from pool.jsonl by enumerating every N-subset of
#      the first proofs (an implementation independent of the estimators');
#   3. a rerun asks nothing and rewrites the same bytes; lemma prove continues
#      the same folder; bad arguments get one clear line.
# Skipped, visibly, while no domain is linked or without python3.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

if ! "$LEMMA" tasks gen add,lineq,gcd --seed 11 --n 3 --out "$tmp/p.jsonl" >/dev/null 2>&1; then
    echo "skip test_eval.sh: lemma tasks gen is not available (no synthetic domain linked)"
    echo "test_eval.sh: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
if ! command -v python3 >/dev/null; then
    echo "skip test_eval.sh: python3 not found"
    echo "test_eval.sh: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
check "tasks corrupt" "$LEMMA" tasks corrupt "$tmp/p.jsonl" --seed 5 --out "$tmp/c.jsonl"

# The scripts. A verification prompt holds the solution, so a line that only
# the reference (or only the corruption) has tells them apart. "fixed": problem
# 0 always proves it (verified 1), problem 1 never does (verified 0) until its
# refinement gives the reference, problem 2 never does but its verifier says 1.
# "mixed": proofs, verifications and meta-verifications drawn by the seed.
check "scripts from the problems" python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
good = [json.loads(l) for l in open(f"{tmp}/p.jsonl")]
bad = [json.loads(l) for l in open(f"{tmp}/c.jsonl")]
def only(a, b):
    sa = a["proof"].split("## Self Evaluation")[0].splitlines()
    sb = set(b["proof"].split("## Self Evaluation")[0].splitlines())
    return next((l for l in sa if l.strip() and l not in sb), None)
def verify_rules(q, g, b, good_replies, bad_replies):
    """The reference's verification rule and the corruption's, the one with a line of its own first."""
    gl = only(g, b)
    if gl is not None:
        return [{"when": [V, q, gl], "replies": good_replies}, {"when": [V, q], "replies": bad_replies}]
    return [{"when": [V, q, only(b, g)], "replies": bad_replies}, {"when": [V, q], "replies": good_replies}]
V, M, R, G = "Evaluate the solution", "Is the solution evaluation reasonable", "Candidate Solution(s) to Refine", "Solve the problem"
fixed = [{"when": [M], "replies": ["fair \\boxed{1}"]}]
mixed = [{"when": [M], "replies": ["fair \\boxed{1}", "fair \\boxed{1}", "unfounded \\boxed{0}"]}]
for i, (g, b) in enumerate(zip(good, bad)):
    q = g["question"]
    fixed += [{"when": [R, q], "replies": [g["proof"]]}]
    fixed += verify_rules(q, g, b, ["\\boxed{1}"], ["\\boxed{%s}" % ("1" if i == 2 else "0")])
    fixed += [{"when": [G, q], "replies": [g["proof"] if i == 0 else b["proof"]]}]
    mixed += [{"when": [R, q], "replies": [g["proof"], b["proof"]]}]
    mixed += verify_rules(q, g, b, ["\\boxed{1}", "\\boxed{1}", "\\boxed{0.5}", "none"],
                          ["\\boxed{0}", "\\boxed{1}", "\\boxed{0.5}", "\\boxed{0.75}"])
    mixed += [{"when": [G, q], "replies": [g["proof"], b["proof"], b["proof"].replace("\\boxed{1}", "\\boxed{0}"),
                                           "no headings"]}]
json.dump({"log": f"{tmp}/asked.log", "rules": fixed}, open(f"{tmp}/fixed.json", "w"))
json.dump({"rules": mixed}, open(f"{tmp}/mixed.json", "w"))
EOF
E() { "$LEMMA" eval --problems "$tmp/p.jsonl" --samples 4 --verifications 2 --rounds 2 --refine-top 1 --refine-samples 2 "$@"; }

# ---- 1. every number by hand ----
if E --backend-script "$tmp/fixed.json" --out "$tmp/f" >"$tmp/stdout" 2>"$tmp/stderr"; then ok "eval runs"; else
    bad "eval runs"; sed 's/^/  /' "$tmp/stderr" | head; fi
cmp -s "$tmp/stdout" "$tmp/f/report.md" && ok "stdout is report.md" || bad "stdout is report.md"
for f in results.json report.md report.json best_of_n.svg pass_by_round.svg pool.jsonl run.json; do
    [ -s "$tmp/f/$f" ] || bad "DIR/$f written"
done
check "the numbers computed by hand" python3 - "$tmp/f/results.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
# problem 0: 4 passing first proofs, verified 1, stops; problem 1: 4 failing, verified 0 (meta keeps them),
# refined in round 1 into 2 passing proofs verified 1; problem 2: 4 failing, verified 1, stops.
third = 1 / 3
want = {"problems": 3, "problems_ungraded": 0, "pass_at_1": third, "best_of_n": third, "oracle_pass_at_n": third,
        "verifier_agreement": 20 / 28, "pass_by_round": [third, 2 * third, 2 * third],
        "pass_at_1_by_round": [third, 2 * third, 2 * third], "first_proofs_dropped": 0}
for k, v in want.items():
    got = d[k]
    assert (got == v if not isinstance(v, list) else len(got) == len(v) and all(abs(a - b) < 1e-12 for a, b in zip(got, v))) \
        or (isinstance(v, float) and abs(got - v) < 1e-12), (k, got, v)
c = d["best_of_n_curve"]
assert c["n"] == [1, 2, 3, 4]
for key in ("best_of_n", "pass_at_1", "oracle_pass_at_n"):
    assert all(abs(x - third) < 1e-12 for x in c[key]), (key, c[key])
assert d["verifier"]["confusion"]["counts"] == [[8, 0, 8, 0], [0, 0, 0, 0], [0, 0, 12, 0]], d["verifier"]
assert d["verifier"]["judged"] == 28 and d["verifier"]["kept_by_meta_verification"] == 28
assert d["self_evaluation"]["confusion"]["counts"] == [[0, 0, 8, 0], [0, 0, 0, 0], [0, 0, 6, 0]], d["self_evaluation"]
assert abs(d["self_evaluation"]["agreement"] - 6 / 14) < 1e-12
doms = {x["domain"]: x for x in d["domains"]}
assert sorted(doms) == ["add", "gcd", "lineq"], list(doms)
assert doms["add"]["pass_at_1"] == 1 and doms["lineq"]["pass_by_round"] == [0, 1, 1] and doms["gcd"]["best_of_n"] == 0
assert doms["gcd"]["verifier_agreement"] == 0 and doms["lineq"]["verifier_agreement"] == 1
EOF
grep -q '^| \*\*all\*\* | 3 | 33.3% | 33.3% | 33.3% | 71.4% | 42.9% | 66.7% |$' "$tmp/f/report.md" &&
    ok "report.md: the all row" || bad "report.md: the all row"
grep -q '^| 1 | 66.7% | 66.7% |$' "$tmp/f/report.md" && ok "report.md: the rounds table" || bad "report.md: the rounds table"
grep -q '^## The pipeline.s report (lemma prove)' "$tmp/f/report.md" && ok "report.md holds the pipeline's report" ||
    bad "report.md holds the pipeline's report"
grep -q '"command":"prove"' "$tmp/f/report.json" && ok "report.json is the pipeline's" || bad "report.json is the pipeline's"
grep -q '<polyline' "$tmp/f/best_of_n.svg" && grep -q 'oracle pass@N' "$tmp/f/best_of_n.svg" &&
    grep -q '<polyline' "$tmp/f/pass_by_round.svg" && ok "the charts have their curves" || bad "the charts have their curves"
check "the charts parse as XML" python3 -c "import sys, xml.etree.ElementTree as E; [E.parse(f) for f in sys.argv[1:]]" \
    "$tmp/f/best_of_n.svg" "$tmp/f/pass_by_round.svg"
if command -v rsvg-convert >/dev/null; then
    check "the charts render" rsvg-convert "$tmp/f/best_of_n.svg" -o "$tmp/chart.png"
else
    echo "(not rendered: no rsvg-convert)"
fi

# ---- 3. a rerun asks nothing and writes the same bytes ----
mkdir "$tmp/first" && cp "$tmp/f"/* "$tmp/first/"
asked=$(wc -l <"$tmp/asked.log")
check "rerun" E --backend-script "$tmp/fixed.json" --out "$tmp/f"
[ "$(wc -l <"$tmp/asked.log")" -eq "$asked" ] && grep -q "(0 asked, $asked from the pool, 0 failed)" "$tmp/out" &&
    ok "a rerun asks nothing" || bad "a rerun asks nothing"
same=1
for f in "$tmp/first"/*; do cmp -s "$f" "$tmp/f/$(basename "$f")" || { same=0; echo "  differs: $(basename "$f")"; }; done
[ $same -eq 1 ] && ok "a rerun rewrites the same bytes" || bad "a rerun rewrites the same bytes"
check "lemma prove continues an eval folder" "$LEMMA" prove "$tmp/p.jsonl" --backend-script "$tmp/fixed.json" \
    --samples 4 --verifications 2 --rounds 2 --refine-top 1 --refine-samples 2 --out "$tmp/f"
grep -q "(0 asked, $asked from the pool" "$tmp/out" && ok "and asks nothing either" || bad "and asks nothing either"
check_fails "other settings refused" "holds a run started with --samples 4; this command has --samples 5" \
    E --backend-script "$tmp/fixed.json" --out "$tmp/f" --samples 5

# ---- 2. varied answers against subsets enumerated from the pool ----
check "eval on varied answers" E --backend-script "$tmp/mixed.json" --out "$tmp/m" --samples 6 --rounds 2
check "every number equals the enumeration from pool.jsonl" python3 - "$tmp" <<'EOF'
import itertools, json, sys
tmp = sys.argv[1]
label = {}
for f in ("p.jsonl", "c.jsonl"):
    for l in open(f"{tmp}/{f}"):
        d = json.loads(l)
        label[d["proof"].split("## Self Evaluation")[0]] = 1 if f == "p.jsonl" else d["label"]
problems = [json.loads(l) for l in open(f"{tmp}/p.jsonl")]
pool = [json.loads(l) for l in open(f"{tmp}/m/pool.jsonl")]
assert not any(r.get("failed") for r in pool)
proofs = {}
for r in pool:
    if r["kind"] == "proof":
        usable = r["dropped"] is None
        text = r["text"][r["text"].find("## Solution"):] if usable else ""
        proofs[(r["problem_id"], r["id"])] = {"round": r["round"], "usable": usable, "self": r["self_score"],
            "has_self": r["score"] is not None, "score": label.get(text.split("## Self Evaluation")[0], 0) if usable else 0,
            "verifs": []}
rejected = {(r["problem_id"], r["parent"]) for r in pool if r["kind"] == "meta_verification" and r["score"] == 0}
for r in pool:
    if r["kind"] == "verification":
        valid = r["dropped"] is None and r["score"] is not None
        proofs[(r["problem_id"], r["parent"])]["verifs"].append((valid, r["score"], (r["problem_id"], r["id"]) in rejected))
def key(p):
    counted = [s for v, s, rej in p["verifs"] if v and not rej]
    return (sum(counted) / len(counted), p["self"]) if p["usable"] and counted else None
def pick(ps):
    keys = [key(p) for p in ps if key(p) is not None]
    if not keys: return 0
    top = [p for p in ps if key(p) == max(keys)]
    return sum(p["score"] == 1 for p in top) / len(top)
col = lambda s: {0: 0, 0.5: 1, 1: 2}.get(s, 3)
P, n, rounds = len(problems), 6, 2
want = {"pass_at_1": 0, "best_of_n": 0, "oracle_pass_at_n": 0, "pass_by_round": [0] * 3, "pass_at_1_by_round": [0] * 3,
        "best": [0] * n, "oracle": [0] * n}
conf = [[0] * 4 for _ in range(3)]; sconf = [[0] * 4 for _ in range(3)]
for q in problems:
    mine = [p for (pid, _), p in proofs.items() if pid == q["id"]]
    first = [p for p in mine if p["round"] == 0]
    assert len(first) == n
    want["pass_at_1"] += sum(p["score"] == 1 for p in first) / n / P
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(first, k))
        want["best"][k - 1] += sum(pick(s) for s in subsets) / len(subsets) / P
        want["oracle"][k - 1] += sum(any(p["score"] == 1 for p in s) for s in subsets) / len(subsets) / P
    last = 0
    for r in range(rounds + 1):
        want["pass_by_round"][r] += pick([p for p in mine if p["round"] <= r]) / P
        these = [p for p in mine if p["round"] == r]
        last = sum(p["score"] == 1 for p in these) / len(these) if these else last
        want["pass_at_1_by_round"][r] += last / P
    for p in mine:
        if not p["usable"]: continue
        for v, s, _ in p["verifs"]:
            if v: conf[col(p["score"])][col(s)] += 1
        if p["has_self"]: sconf[col(p["score"])][col(p["self"])] += 1
want["best_of_n"], want["oracle_pass_at_n"] = want["best"][-1], want["oracle"][-1]
got = json.load(open(f"{tmp}/m/results.json"))
close = lambda a, b: abs(a - b) < 1e-12
for k in ("pass_at_1", "best_of_n", "oracle_pass_at_n"):
    assert close(got[k], want[k]), (k, got[k], want[k])
for k in ("pass_by_round", "pass_at_1_by_round"):
    assert all(map(close, got[k], want[k])) and len(got[k]) == 3, (k, got[k], want[k])
assert all(map(close, got["best_of_n_curve"]["best_of_n"], want["best"])), (got["best_of_n_curve"], want["best"])
assert all(map(close, got["best_of_n_curve"]["oracle_pass_at_n"], want["oracle"]))
assert got["verifier"]["confusion"]["counts"] == conf, (got["verifier"], conf)
assert got["self_evaluation"]["confusion"]["counts"] == sconf, (got["self_evaluation"], sconf)
assert close(got["verifier_agreement"], sum(conf[i][i] for i in range(3)) / sum(map(sum, conf)))
# the draw must have exercised what it is meant to: mixed outcomes, ties, rejections, odd scores
assert 0 < want["pass_at_1"] < 1 and want["best"][1] != want["best"][0], want
assert rejected and conf[0][3] + conf[2][3] > 0 and got["first_proofs_dropped"] > 0, (len(rejected), conf)
print({k: want[k] for k in ("pass_at_1", "best_of_n", "oracle_pass_at_n", "pass_by_round")})
EOF

# ---- bad arguments: one line each ----
exits_with() {
    local want_rc=$1 name=$2 want=$3; shift 3
    "$@" >"$tmp/out" 2>&1; local rc=$?
    if [ $rc -ne "$want_rc" ]; then bad "$name (exit $rc)"; sed 's/^/  /' "$tmp/out" | head -5
    elif [ "$(wc -l <"$tmp/out")" -ne 1 ] || ! grep -q -- "$want" "$tmp/out"; then bad "$name (message)"; sed 's/^/  /' "$tmp/out" | head -5
    else ok "$name"; fi
}
exits_with 2 "no model or endpoint" "lemma eval: missing MODEL_DIR (or --api-base URL --api-model NAME)" \
    "$LEMMA" eval --problems "$tmp/p.jsonl" --out "$tmp/b"
exits_with 2 "MODEL_DIR and --api-base" "give one of MODEL_DIR, --model, --api-base, --backend-script" \
    "$LEMMA" eval "$tmp/model" --api-base http://127.0.0.1:9 --api-model m --problems "$tmp/p.jsonl" --out "$tmp/b"
exits_with 2 "no --problems" "missing --problems FILE" "$LEMMA" eval "$tmp/model" --out "$tmp/b"
exits_with 2 "no --out" "missing --out DIR" "$LEMMA" eval "$tmp/model" --problems "$tmp/p.jsonl"
exits_with 2 "--samples 0" "--samples expects an integer in 1..100000, got '0'" \
    "$LEMMA" eval "$tmp/model" --problems "$tmp/p.jsonl" --out "$tmp/b" --samples 0
printf '{"question":"Show that one and one make two."}\n' >"$tmp/free.jsonl"
exits_with 1 "problems the checker cannot grade" "none of the 1 problems belongs to a synthetic domain" \
    "$LEMMA" eval --backend-script "$tmp/fixed.json" --problems "$tmp/free.jsonl" --out "$tmp/b"
exits_with 1 "a problems file that is not there" "cannot open" \
    "$LEMMA" eval --backend-script "$tmp/fixed.json" --problems "$tmp/nope.jsonl" --out "$tmp/b"
exits_with 1 "a model that is not there" "lemma eval: " \
    "$LEMMA" eval "$tmp/no-model" --problems "$tmp/p.jsonl" --out "$tmp/b"
[ ! -e "$tmp/b/run.json" ] && ok "bad arguments tie no folder" || bad "bad arguments tie no folder"

echo "test_eval.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
