#!/usr/bin/env bash
# test_prove_fanout.sh — `lemma prove` over several `lemma serve` instances
# (a tiny random model, tokenizer trained here as in test_serve.sh). lemma
# serve answers a request as a pure function of it (seed included), so the
# pool of a run must hold the same answers whichever endpoint gave each one:
# 2 and 3 endpoints equal 1; an endpoint killed mid-run leaves the others to
# finish with the same pool; every endpoint killed stops the run with a clear
# error, and a rerun on new servers (other ports) completes it, the same pool
# again; a bad URL is refused before anything is written, a dead one is put
# on probation; run.json keeps the endpoints without credentials. Every
# server started here is killed on exit, whatever happens.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'serve_kill_all; rm -rf "$tmp"' EXIT
for tool in curl python3; do
    command -v $tool >/dev/null || { echo "test_prove_fanout.sh: $tool not found"; echo "test_prove_fanout.sh: 0 passed, 1 failed, 0 skipped"; exit 1; }
done

# ---- the model ----
cat src/*/*.c src/*/*.h >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 600 --out "$tmp/m" --quiet || { echo "tokenizer train failed"; exit 1; }
vocab=$("$LEMMA" tokenizer info "$tmp/m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json >"$tmp/config.json"
"$LEMMA" init "$tmp/config.json" --out "$tmp/m" --seed 3 --std 0.3 2>/dev/null || { echo "init failed"; exit 1; }
m=$tmp/m

# up NAME...: starts and waits for servers; sets url_NAME and pid_NAME
up() {
    local name
    for name in "$@"; do
        serve_start "$name" "$m" --ctx 2048 --max-seqs 8 || exit 1
        eval "url_$name=http://127.0.0.1:$port/v1 pid_$name=$pid"
    done
    for name in "$@"; do
        local u; eval "u=\$url_$name"; u=${u#http://127.0.0.1:}
        serve_ready "${u%/v1}" || { echo "server $name not ready"; sed 's/^/  /' "$tmp/$name.log"; exit 1; }
    done
}
down() { local name p; for name in "$@"; do eval "p=\$pid_$name"; kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
requests() { # URL: completion requests the server answered
    curl -s --max-time 5 "${1%/v1}/metrics" | sed -nE 's/^lemma_requests_total ([0-9]+)$/\1/p'
}

for i in 1 2 3; do echo "{\"id\":\"p$i\",\"question\":\"Show that $i + $i = $((2 * i)).\"}"; done >"$tmp/probs.jsonl"
work=(--samples 8 --verifications 2 --rounds 1 --max-tokens 160 --temperature 1 --seed 11 --api-model lemma
      --backoff 0.1 --quiet)
P() { "$LEMMA" prove "$tmp/probs.jsonl" "${work[@]}" "$@"; }
# canon DIR: the pool's answers, one JSON line each, sorted, without what may
# differ between runs (seconds) or are not answers (failed records)
canon() {
    python3 -c "
import json, sys
out = []
for line in open(sys.argv[1] + '/pool.jsonl'):
    r = json.loads(line)
    if r.get('failed'):
        continue
    r.pop('seconds', None)
    out.append(json.dumps(r, sort_keys=True))
print('\n'.join(sorted(out)))
" "$1"
}
same_pool() { # NAME DIR: DIR's pool equals the reference's, every answer received
    if [ "$(canon "$2")" = "$(canon "$tmp/ref")" ] && [ -n "$(canon "$2")" ]; then ok "$1"
    else bad "$1"; diff <(canon "$tmp/ref") <(canon "$2") | head -6 | cut -c1-200 | sed 's/^/  /'; fi
}

up A B C
t0=$(date +%s%N)
# ---- the reference: one endpoint ----
if P --api-base "$url_A" --out "$tmp/ref" >"$tmp/ref.out" 2>"$tmp/ref.err"; then
    n=$(wc -l <"$tmp/ref/pool.jsonl")
    ok "one endpoint: the run completes ($n answers, $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
    bad "one endpoint: the run completes"; tail -5 "$tmp/ref.err" | sed 's/^/  /'; exit 1
fi
grep -q '"failed"' "$tmp/ref/pool.jsonl" && bad "one endpoint: no failed record" || ok "one endpoint: no failed record"

# ---- 2 and 3 endpoints: the same pool, the work spread ----
b0=$(requests "$url_B")
check "two endpoints: the run completes" P --api-base "$url_A" --api-base "$url_B" --parallel 2 --out "$tmp/f2"
same_pool "two endpoints: the pool equals one endpoint's" "$tmp/f2"
b1=$(requests "$url_B")
[ "${b1:-0}" -gt "${b0:-0}" ] && ok "two endpoints: the second one answered $((b1 - b0)) requests" ||
    bad "two endpoints: the second one answered (metrics $b0 -> $b1)"
printf '# three replicas\n%s parallel=1\n\n%s\n%s parallel=3\n' "$url_A" "$url_B" "$url_C" >"$tmp/endpoints.txt"
c0=$(requests "$url_C")
check "three endpoints (--endpoints FILE): the run completes" P --endpoints "$tmp/endpoints.txt" --parallel 2 --out "$tmp/f3"
same_pool "three endpoints: the pool equals one endpoint's" "$tmp/f3"
c1=$(requests "$url_C")
[ "${c1:-0}" -gt "${c0:-0}" ] && ok "three endpoints: the third one answered $((c1 - c0)) requests" ||
    bad "three endpoints: the third one answered (metrics $c0 -> $c1)"
python3 -c "
import json, sys
j = json.load(open('$tmp/f3/run.json'))
assert j['endpoints'] == ['$url_A', '$url_B', '$url_C'], j['endpoints']
assert j['api-model'] == 'lemma' and j['backend'] == 'openai'
" 2>"$tmp/py.err" && ok "run.json records the endpoints" || { bad "run.json records the endpoints"; sed 's/^/  /' "$tmp/py.err"; }

# ---- one endpoint killed mid-run: the others finish, the same pool ----
P --api-base "$url_A" --api-base "$url_B" --api-base "$url_C" --parallel 1 --out "$tmp/k1" >"$tmp/k1.out" 2>"$tmp/k1.err" &
run=$!
for _ in $(seq 1 400); do
    [ "$(cat "$tmp/k1/pool.jsonl" 2>/dev/null | wc -l)" -ge 1 ] && break
    kill -0 $run 2>/dev/null || break
    sleep 0.01
done
# Freeze the run while B goes down, so that B dies with the run in progress however
# fast this machine answers the rest (its requests in flight to B then fail).
kill -STOP $run 2>/dev/null
got=$(cat "$tmp/k1/pool.jsonl" 2>/dev/null | wc -l)
down B
kill -CONT $run 2>/dev/null
wait $run; rc=$?
[ "$got" -lt "$n" ] && ok "endpoint B killed while the run was going ($got of $n answers in)" ||
    bad "endpoint B killed while the run was going (the run ended first)"
[ $rc = 0 ] && ok "one endpoint killed: the run completes on the others" ||
    { bad "one endpoint killed: the run completes (exit $rc)"; tail -5 "$tmp/k1.err" | sed 's/^/  /'; }
same_pool "one endpoint killed: the pool equals one endpoint's" "$tmp/k1"
grep -q '"failed"' "$tmp/k1/pool.jsonl" && bad "one endpoint killed: no request failed" || ok "one endpoint killed: no request failed"

# ---- a bad URL: refused before anything is written; a dead one: probation ----
check_fails "a URL that is not http(s) is refused" "expected a URL starting with http:// or https://" \
    P --api-base "$url_A" --api-base "ftp://127.0.0.1/v1" --out "$tmp/bad"
[ ! -e "$tmp/bad/run.json" ] && ok "... and run.json is not written" || bad "... and run.json is not written"
printf '%s\nhttp://127.0.0.1:1/v1 parallel=zero\n' "$url_A" >"$tmp/bad_endpoints.txt"
check_fails "a bad line of --endpoints names the file and line" "bad_endpoints.txt:2: \"parallel=zero\": expected parallel=K" \
    P --endpoints "$tmp/bad_endpoints.txt" --out "$tmp/bad"
check_fails "--api-model alone" "--api-model goes with --api-base URL or --endpoints FILE" \
    "$LEMMA" prove "$tmp/probs.jsonl" --api-model lemma --model "$m" --out "$tmp/bad"
check "a dead endpoint in the list: the run completes on the others" \
    P --api-base "http://127.0.0.1:1/v1" --api-base "$url_A" --out "$tmp/dead"
same_pool "a dead endpoint in the list: the pool equals one endpoint's" "$tmp/dead"
check "credentials in a URL are not written to run.json" \
    P --api-base "http://someone:s3cret@${url_C#http://}" --out "$tmp/cred"
grep -q 's3cret' "$tmp/cred/run.json" && bad "run.json holds no password" || ok "run.json holds no password"

# ---- every endpoint killed: a clear error; a rerun on new servers resumes ----
P --api-base "$url_A" --api-base "$url_C" --parallel 1 --retries 2 --out "$tmp/k2" >"$tmp/k2.out" 2>"$tmp/k2.err" &
run=$!
for _ in $(seq 1 400); do
    [ "$(cat "$tmp/k2/pool.jsonl" 2>/dev/null | wc -l)" -ge 1 ] && break
    kill -0 $run 2>/dev/null || break
    sleep 0.01
done
kill -STOP $run 2>/dev/null   # as above: the servers die with the run in progress
got=$(cat "$tmp/k2/pool.jsonl" 2>/dev/null | wc -l)
down A C
kill -CONT $run 2>/dev/null
wait $run; rc=$?
[ "$got" -lt "$n" ] && ok "every endpoint killed while the run was going ($got of $n answers in)" ||
    bad "every endpoint killed while the run was going (the run ended first)"
if [ $rc = 1 ] && tail -1 "$tmp/k2.err" | grep -q "^lemma prove: every endpoint is failing: [1-9][0-9]* of [0-9]* requests not answered (http://127.*: 3 failures in a row, last: cannot connect" &&
   [ "$(grep -c 'every endpoint' "$tmp/k2.err")" = 1 ]; then ok "every endpoint killed: the run stops with one clear line"
else bad "every endpoint killed: a clear error (exit $rc)"; tail -3 "$tmp/k2.err" | cut -c1-300 | sed 's/^/  /'; fi
up D E
check "rerun on new servers: the run completes" P --api-base "$url_D" --api-base "$url_E" --out "$tmp/k2"
same_pool "rerun on new servers: the pool equals one endpoint's" "$tmp/k2"

echo "test_prove_fanout.sh: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
