#!/usr/bin/env bash
# Text generation end to end: a tokenizer trained here, a tiny random
# DeepSeek-V3 model on its vocabulary, then generate -p / --stop / --samples
# and chat, checked for determinism and the documented contracts.
set -u
cd "$(dirname "$0")/../.."
BIN=${LEMMA_BIN:-./lemma}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat src/*/*.c src/*/*.h > "$dir/corpus.txt"
"$BIN" tokenizer train "$dir/corpus.txt" --vocab 600 --out "$dir/m" --quiet || { echo "tokenizer train failed"; exit 1; }
vocab=$("$BIN" tokenizer info "$dir/m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json > "$dir/config.json"
"$BIN" init "$dir/config.json" --out "$dir/m" --seed 3 --std 0.3 2>/dev/null || { echo "init failed"; exit 1; }
m="$dir/m"

a=$("$BIN" generate "$m" -p "int main(void) {" -n 40 --temperature 0.9 --seed 7 2>/dev/null)
b=$("$BIN" generate "$m" -p "int main(void) {" -n 40 --temperature 0.9 --seed 7 --threads 1 2>/dev/null)
c=$("$BIN" generate "$m" -p "int main(void) {" -n 40 --temperature 0.9 --seed 8 2>/dev/null)
check "same seed, same text (2 vs 1 threads)" '[ -n "$a" ] && [ "$a" = "$b" ]'
check "another seed, other text" '[ "$a" != "$c" ]'

# stop string: the first character of the free run's text, wherever it
# occurs again later; output must end right before its first occurrence.
free=$("$BIN" generate "$m" -p "static" -n 60 --temperature 1.0 --seed 2 --ignore-eos 2>/dev/null)
stop=${free:3:2}
if [ ${#stop} -eq 2 ]; then
    cut=$("$BIN" generate "$m" -p "static" -n 60 --temperature 1.0 --seed 2 --ignore-eos --stop "$stop" 2>"$dir/err")
    prefix=$(printf '%s' "${free%%"$stop"*}")   # as $(...) gave cut: trailing newlines dropped
    check "--stop cuts before the first match" '[ "$cut" = "$prefix" ]'
    check "--stop reports finish: stop" 'grep -q "finish: stop" "$dir/err"'
else
    bad "--stop: free run too short to pick a stop string"
fi

# n samples sharing the prompt cache == single runs with seeds s, s+1, s+2
"$BIN" generate "$m" -p "return" -n 12 --temperature 1.0 --seed 5 --samples 3 2>/dev/null > "$dir/multi"
# Outputs are compared with their trailing newlines (a sampled text may end
# in one): each capture ends with a "." that is then cut off.
single=""
for s in 5 6 7; do
    single+="--- sample $((s - 5)) (seed $s) ---"$'\n'
    one=$("$BIN" generate "$m" -p "return" -n 12 --temperature 1.0 --seed $s 2>/dev/null; echo .)
    single+=${one%.}
    [ $s -lt 7 ] && single+=$'\n'
done
multi=$(cat "$dir/multi"; echo .)
check "--samples 3 equals seeds 5, 6, 7 run alone" '[ "${multi%.}" = "$single" ]'

# ids mode contract: one line of comma-separated ids
ids=$("$BIN" generate "$m" --ids 1,2,3 -n 5 --ignore-eos 2>/dev/null)
check "ids mode prints 5 comma-separated ids" '[[ "$ids" =~ ^[0-9]+(,[0-9]+){4}$ ]]'

# chat: two turns from a pipe, deterministic, exits 0, keeps the cache
out1=$(printf 'hello there\nsecond turn\n' | "$BIN" chat "$m" -n 10 --seed 1 2>"$dir/chat_err"); rc=$?
out2=$(printf 'hello there\nsecond turn\n' | "$BIN" chat "$m" -n 10 --seed 1 2>/dev/null)
check "chat exits 0 on EOF" '[ $rc -eq 0 ]'
check "chat is deterministic under a seed" '[ "$out1" = "$out2" ]'
check "chat answered two turns" '[ "$(grep -c "tokens, .* tok/s, prefilled" "$dir/chat_err")" -eq 2 ]'
check "chat reuses the cache on turn 2" '[ "$(grep -o "prefilled [0-9]*" "$dir/chat_err" | tail -1 | grep -o "[0-9]*")" -lt 40 ]'
out3=$(printf 'hello there\nsecond turn\n' | "$BIN" chat "$m" -n 10 --seed 1 --prefill expanded 2>"$dir/chat_err3"); rc=$?
check "chat --prefill expanded answers two turns" '[ $rc -eq 0 ] && [ "$(grep -c "tokens, .* tok/s, prefilled" "$dir/chat_err3")" -eq 2 ]'

# Ctrl-C stops the answer in progress, not the program: the chat goes on to
# the next turn and exits normally at end of input.
printf 'a long answer please\nand another\n' > "$dir/q2"
"$BIN" chat "$m" -n 10000000 --ctx 200000 --ignore-eos --seed 2 <"$dir/q2" >"$dir/c_out" 2>"$dir/c_err" & pid=$!
for _ in $(seq 1 500); do [ -s "$dir/c_out" ] && break; sleep 0.01; done
sleep 0.2; kill -INT $pid 2>/dev/null
for _ in $(seq 1 500); do [ "$(grep -c "(stopped)" "$dir/c_err")" -ge 1 ] && break; sleep 0.01; done
sleep 0.2; kill -INT $pid 2>/dev/null
for _ in $(seq 1 1000); do kill -0 $pid 2>/dev/null || break; sleep 0.02; done
kill -9 $pid 2>/dev/null   # never hang the suite: a lost signal fails the check below
wait $pid; rc=$?
check "Ctrl-C stops each answer and the chat exits 0" '[ $rc -eq 0 ] && [ "$(grep -c "(stopped)" "$dir/c_err")" -eq 2 ]'

# errors
"$BIN" generate "$m" -p "" -n 3 >/dev/null 2>"$dir/e1"; rc=$?
check "empty prompt is an error" '[ $rc -ne 0 ] && grep -q "lemma generate: -p expects a non-empty string" "$dir/e1"'
long=$(head -c 20000 "$dir/corpus.txt")
"$BIN" generate "$m" -p "$long" -n 3 --ctx 64 >/dev/null 2>"$dir/e2"; rc=$?
check "prompt longer than the context is an error" '[ $rc -ne 0 ] && grep -q "does not fit the context" "$dir/e2"'

echo "test_generate_text: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
