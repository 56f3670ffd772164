#!/usr/bin/env bash
# test_prove.sh — `lemma prove` and `lemma verify` end to end against the
# scripted backend (--backend-script, src/prove/backend_scripted.h): the
# report on stdout and in the folder, a rerun that asks nothing, transport
# failures asked again, the folder lock, Ctrl-C, and bad input (one clear line
# each, nothing lost). Questions avoid the synthetic domains' wording, so the
# report shows the per-problem table whatever domains are linked.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

# lemma's built-in templates start each prompt with a phrase a rule can match.
script() { # $1: file, $2: the verification rule's extra settings (e.g. a failure)
    cat >"$1" <<EOF
{"log": "$tmp/asked.log", "rules": [
 {"name": "refine", "when": ["Candidate Solution(s) to Refine"],
  "replies": ["## Solution\nGOOD refined\n\n## Self Evaluation\nfine\n\\\\boxed{1}", "## Solution\nstill weak\n\n## Self Evaluation\n\\\\boxed{0.5}"]},
 {"name": "meta", "when": ["Is the solution evaluation reasonable"], "replies": ["fair \\\\boxed{1}", "unfounded \\\\boxed{0}"]},
 {"name": "verify-good", "when": ["Evaluate the solution", "GOOD"], "replies": ["all steps check \\\\boxed{1}"]},
 {"name": "verify", "when": ["Evaluate the solution"], "replies": ["step 2 is wrong \\\\boxed{0}", "a gap \\\\boxed{0.5}", "no score"] $2},
 {"name": "gen", "when": ["Solve the problem"],
  "replies": ["## Solution\nproof A\n\n## Self Evaluation\n\\\\boxed{1}", "## Solution\nproof B\n\n## Self Evaluation\n\\\\boxed{0.5}", "no headings"]}
]}
EOF
}
script "$tmp/s.json" ""
printf '{"id":"p1","question":"Show that one and one make two."}\n{"question":"Show that two and two make four."}\n{"id":"p3","question":"Show that three is odd."}\n' >"$tmp/probs.jsonl"
P() { "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --samples 4 --verifications 3 --rounds 2 "$@"; }

# ---- a run, then a rerun that asks nothing ----
if P --out "$tmp/r" >"$tmp/stdout" 2>"$tmp/stderr"; then ok "prove runs"; else bad "prove runs"; sed 's/^/  /' "$tmp/stderr" | head; fi
cmp -s "$tmp/stdout" "$tmp/r/report.md" && ok "stdout is report.md" || bad "stdout is report.md"
grep -q '^| p1 | ' "$tmp/r/report.md" && grep -q '^| 2 | ' "$tmp/r/report.md" && ok "report table lists the problems" ||
    bad "report table lists the problems"
grep -q -- '--samples 4 --verifications 3 --rounds 2 --refine-top 1 --refine-samples 4 --refine-verifications 3' "$tmp/stderr" &&
    ok "settings printed, refine defaults from the released ratios" || bad "settings printed"
grep -q 'round 1 refine' "$tmp/stderr" && ok "a refinement round ran" || bad "a refinement round ran"
if command -v python3 >/dev/null; then
    check "report.json parses" python3 -c "import json,sys; d=json.load(open('$tmp/r/report.json')); assert len(d['problems'])==3 and 'best_proof' in d['problems'][0]"
    check "pool.jsonl lines parse, ids unique" python3 -c "
import json
seen=set()
for l in open('$tmp/r/pool.jsonl'):
    r=json.loads(l); k=(r['problem_id'], r['id']); assert k not in seen, k; seen.add(k)
    assert r['kind'] in ('proof','verification','meta_verification')
"
fi
asked=$(wc -l <"$tmp/asked.log")
lines=$(wc -l <"$tmp/r/pool.jsonl")
[ "$asked" -eq "$lines" ] && ok "every reply is in the pool ($lines)" || bad "every reply is in the pool ($asked asked, $lines lines)"
cp "$tmp/r/report.json" "$tmp/report1.json"
check "rerun" P --out "$tmp/r"
[ "$(wc -l <"$tmp/asked.log")" -eq "$asked" ] && ok "a rerun asks nothing" || bad "a rerun asks nothing"
grep -q "0 asked, $lines from the pool" "$tmp/out" && ok "a rerun takes every answer from the pool" || bad "rerun from the pool"
cmp -s "$tmp/report1.json" "$tmp/r/report.json" && ok "rerun: same report.json" || bad "rerun: same report.json"
check "--parallel and --threads may change on a rerun" P --out "$tmp/r" --parallel 3 --threads 1

# ---- the run's arguments are fixed ----
check_fails "other --samples refused" "holds a run started with --samples 4; this command has --samples 5" P --out "$tmp/r" --samples 5
check_fails "--no-meta refused" "with --meta true; this command has --meta false" P --out "$tmp/r" --no-meta
cp "$tmp/probs.jsonl" "$tmp/probs2.jsonl"; echo '{"question":"Show that five is odd."}' >>"$tmp/probs2.jsonl"
check_fails "other problems refused" "whose --input file had other content" \
    "$LEMMA" prove "$tmp/probs2.jsonl" --backend-script "$tmp/s.json" --samples 4 --verifications 3 --rounds 2 --out "$tmp/r"

# ---- transport failures are recorded and asked again ----
script "$tmp/s.json" ', "fail": "connection refused"'
: >"$tmp/asked.log"
P --out "$tmp/f" --no-meta --rounds 0 >"$tmp/out" 2>&1
grep -q 'failed in transport' "$tmp/f/report.md" && ok "failures reported" || bad "failures reported"
nfail=$(grep -c '"failed":true' "$tmp/f/pool.jsonl")
[ "$nfail" -gt 0 ] && ok "failures recorded ($nfail)" || bad "failures recorded"
script "$tmp/s.json" ""
: >"$tmp/asked.log"
check "rerun after failures" P --out "$tmp/f" --no-meta --rounds 0
again=$(grep -c ' verify' "$tmp/asked.log")
[ "$again" -eq "$nfail" ] && ok "exactly the failed verifications are asked again ($again)" ||
    bad "failed verifications asked again ($again asked, $nfail failed)"
grep -q 'failed in transport' "$tmp/f/report.md" && bad "no failure left" || ok "no failure left"

# ---- lemma verify ----
printf '{"id":"a","question":"Show that one and one make two.","proof":"## Solution\\nGOOD\\n\\n## Self Evaluation\\n\\\\boxed{1}"}\n{"question":"Q","proof":"weak"}\n' >"$tmp/proofs.jsonl"
if "$LEMMA" verify "$tmp/proofs.jsonl" --backend-script "$tmp/s.json" --verifications 2 --out "$tmp/v" >"$tmp/out" 2>&1 &&
    grep -q '^| a | – | 1.000 | 2 | 0 | – |' "$tmp/v/report.md"; then ok "verify"; else bad "verify"; sed 's/^/  /' "$tmp/out" | head; fi
check_fails "verify needs proofs" "probs.jsonl:1: missing \"proof\"" \
    "$LEMMA" verify "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --out "$tmp/v2"

# ---- the lock: one run per folder ----
cat >"$tmp/slow.json" <<EOF
{"delay_ms": 200, "rules": [{"when": ["Solve"], "replies": ["## Solution\nx\n## Self Evaluation\n\\\\boxed{1}"]},
 {"when": ["Evaluate"], "replies": ["\\\\boxed{1}"]}]}
EOF
"$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/slow.json" --out "$tmp/l" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/l/pool.jsonl" ] && break; sleep 0.05; done
check_fails "a second run on a folder in use is refused" "is in use by pid $pid" \
    "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/slow.json" --out "$tmp/l"
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] && ok "Ctrl-C stops with 130" || bad "Ctrl-C stops with 130 (got $rc)"

# ---- bad input: one line, exit 1, nothing lost ----
one_line() { # name, expected message, command...: exit 1 with that one line
    exits_with 1 "$@"
}
usage_line() { # the same for a usage error: exit 2
    exits_with 2 "$@"
}
exits_with() {
    local want_rc=$1 name=$2 want=$3; shift 3
    "$@" >"$tmp/out" 2>&1; local rc=$?
    if [ $rc -ne "$want_rc" ]; then bad "$name (exit $rc)"; sed 's/^/  /' "$tmp/out" | head -5
    elif [ "$(wc -l <"$tmp/out")" -ne 1 ] || ! grep -q -- "$want" "$tmp/out"; then bad "$name (message)"; sed 's/^/  /' "$tmp/out" | head -5
    else ok "$name"; fi
}
printf '{"question":"Q1"}\n{"question": "Q2",}\n' >"$tmp/bad.jsonl"
one_line "malformed problems line" "bad.jsonl:2: byte" "$LEMMA" prove "$tmp/bad.jsonl" --backend-script "$tmp/s.json" --out "$tmp/b"
printf '[{"question":"Q1"}, {"id":"x"}]' >"$tmp/bad.json"
one_line "problem without question" "bad.json: element 2: missing \"question\"" "$LEMMA" prove "$tmp/bad.json" --backend-script "$tmp/s.json" --out "$tmp/b"
: >"$tmp/empty.jsonl"
one_line "empty problems file" "no problems" "$LEMMA" prove "$tmp/empty.jsonl" --backend-script "$tmp/s.json" --out "$tmp/b"
one_line "missing problems file" "cannot open" "$LEMMA" prove "$tmp/nope.jsonl" --backend-script "$tmp/s.json" --out "$tmp/b"
printf '%s' '{"proof_generation":"{question}","proof_verification":"{statement}","meta_verification":"{statement}{proof}{rating}","proof_refinement":"{instruction}{proofs_to_refine}"}' >"$tmp/t1.json"
one_line "template missing a placeholder" "t1.json: proof_verification: missing placeholder {proof}" \
    "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --templates "$tmp/t1.json" --out "$tmp/b"
printf '%s' '{"proof_generation":"{question} {hint}","proof_verification":"{statement}{proof}","meta_verification":"{statement}{proof}{rating}","proof_refinement":"{instruction}{proofs_to_refine}"}' >"$tmp/t2.json"
one_line "template with an unknown placeholder" "t2.json: proof_generation: unknown placeholder {hint}" \
    "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --templates "$tmp/t2.json" --out "$tmp/b"
[ ! -e "$tmp/b" ] && ok "bad input creates no folder" || bad "bad input creates no folder"
echo x >"$tmp/plain"
one_line "output folder under a file" "cannot create $tmp/plain/out" \
    "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --out "$tmp/plain/out"
one_line "output folder is a file" "is not a folder" "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json" --out "$tmp/plain"
usage_line "no backend" "missing --model DIR or --api-base URL" "$LEMMA" prove "$tmp/probs.jsonl" --out "$tmp/b"
usage_line "no --out" "missing --out DIR" "$LEMMA" prove "$tmp/probs.jsonl" --backend-script "$tmp/s.json"
usage_line "api-base without api-model" "--api-base goes with --api-model NAME" "$LEMMA" prove "$tmp/probs.jsonl" --api-base http://127.0.0.1:9 --out "$tmp/b"
# a password in an endpoint's URL stays out of everything lemma prints and writes
"$LEMMA" prove "$tmp/probs.jsonl" --api-base http://alice:s3cr3tpw@127.0.0.1:9/v1 --api-base http://127.0.0.1:9/v1 \
    --api-model m --retries 0 --backoff 0.01 --timeout 2 --out "$tmp/pw" >"$tmp/pw.out" 2>&1
grep -q '127.0.0.1:9' "$tmp/pw.out" && ! grep -rq 's3cr3tpw' "$tmp/pw.out" "$tmp/pw" \
    && ok "a URL's password is not printed nor written" || { bad "a URL's password is not printed nor written"; head -5 "$tmp/pw.out"; }
one_line "a model that is not there" "lemma prove: " "$LEMMA" prove "$tmp/probs.jsonl" --model "$tmp/no-model" --out "$tmp/m"
[ ! -e "$tmp/m/run.json" ] && ok "a backend that cannot start does not tie the folder" || bad "a backend that cannot start does not tie the folder"

# a pool edited by hand: the line is named and the pool is left as it was
cp -r "$tmp/r" "$tmp/e"
sed -i '3s/"kind":"[a-z_]*"/"kind":"lemma"/' "$tmp/e/pool.jsonl"
cp "$tmp/e/pool.jsonl" "$tmp/e.before"
one_line "pool edited by hand" "pool.jsonl:3: field \"kind\": expected proof, verification or meta_verification" P --out "$tmp/e"
cmp -s "$tmp/e/pool.jsonl" "$tmp/e.before" && ok "the edited pool is untouched" || bad "the edited pool is untouched"
sed -i '5s/^{/{oops/' "$tmp/e/pool.jsonl"
sed -i '3s/"kind":"lemma"/"kind":"proof"/' "$tmp/e/pool.jsonl"
one_line "pool line that is not JSON" "pool.jsonl:5: byte" P --out "$tmp/e"

# a pool whose last line was cut short by a crash: dropped with a warning, then asked again
cp -r "$tmp/r" "$tmp/c"
last=$(tail -n 1 "$tmp/c/pool.jsonl")
head -n -1 "$tmp/c/pool.jsonl" >"$tmp/c/p"; printf '%s' "${last:0:40}" >>"$tmp/c/p"; mv "$tmp/c/p" "$tmp/c/pool.jsonl"
: >"$tmp/asked.log"
if P --out "$tmp/c" >"$tmp/out" 2>&1 && grep -q "warning: .*pool.jsonl:$lines: dropped an incomplete last line" "$tmp/out"; then
    ok "a cut last line is dropped with a warning"; else bad "a cut last line is dropped with a warning"; sed 's/^/  /' "$tmp/out" | head -5; fi
[ "$(wc -l <"$tmp/asked.log")" -eq 1 ] && ok "only the lost answer is asked again" || bad "only the lost answer is asked again"
cmp -s "$tmp/c/report.json" "$tmp/report1.json" && ok "and the report is the same" || bad "and the report is the same"

echo "test_prove.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
