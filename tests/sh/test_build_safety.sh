#!/usr/bin/env bash
# test_build_safety.sh — `lemma build` deletes or overwrites only what it
# made (docs/reliability.md, Rules): a folder with a stage's name that lemma
# did not make is an error naming it, even when a lemma.lock (copied, edited)
# names the stage; a lemma-made folder is replaced with a line saying so; a
# folder from before the .lemma-made marker counts as lemma's only when
# lemma.lock records exactly its files; stray .STAGE.partial-* and
# inputs/*.txt files are not removed or overwritten. Inputs that are not
# regular files (/dev/zero, a FIFO) are refused at once; hashing a huge
# input stops within a second of SIGTERM; a second build of the same folder
# is refused with the pid of the first.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
has() { if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1"; sed 's/^/  /' "$3" | head -10; fi; }
lacks() { if grep -q -- "$2" "$3"; then bad "$1"; sed 's/^/  /' "$3" | head -10; else ok "$1"; fi; }
intact() { # name, file, content
    if [ -f "$2" ] && [ "$(cat "$2")" = "$3" ]; then ok "$1"; else bad "$1"; fi
}

printf 'The quick fox.\nA lazy dog sleeps.\nThe fox jumps over the dog.\n' >"$tmp/notes.txt"
notes_sha=$(sha256sum "$tmp/notes.txt" | cut -d' ' -f1)
write_recipe() { # vocab_size [input path] [input sha]
    cat >"$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "safety",
 "inputs": {"notes": {"path": "${2:-notes.txt}", "sha256": "${3:-$notes_sha}"},
            "synth": {"builtin": "synth-text", "seed": 1, "lines": 50, "sha256": "$synth_sha"}},
 "stages": [{"name": "tok", "kind": "tokenizer", "inputs": ["notes", "synth"], "vocab_size": $1}]}
JSON
}
# the synth input's hash, from the refusal message
synth_sha=0000000000000000000000000000000000000000000000000000000000000000
write_recipe 300
"$LEMMA" build "$tmp/r.json" --out "$tmp/probe" >"$tmp/out" 2>&1
synth_sha=$(grep -o 'sha256 is [0-9a-f]\{64\}' "$tmp/out" | head -1 | cut -d' ' -f3)
[ ${#synth_sha} -eq 64 ] && ok "synth-text hash found" || { bad "synth-text hash found"; cat "$tmp/out"; }
write_recipe 300

# 1. the issue's case: a user folder named like a stage, no lemma.lock
mkdir -p "$tmp/U/tok"; echo mine >"$tmp/U/tok/mine.txt"
check_fails "user folder with a stage's name refused" "$tmp/U/tok exists and lemma did not make it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/U"
intact "user file kept" "$tmp/U/tok/mine.txt" mine

# 2. a lock copied from a real build names the stage: still not lemma's folder
check "a real build" "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
[ -f "$tmp/B/tok/.lemma-made" ] && ok "stage folder carries the marker" || bad "stage folder carries the marker"
grep -q lemma-made "$tmp/B/lemma.lock" && bad "marker not hashed" || ok "marker not hashed"
mkdir -p "$tmp/V/tok"; echo mine >"$tmp/V/tok/mine.txt"; cp "$tmp/B/lemma.lock" "$tmp/V/"
check_fails "a lock naming the stage does not make a user folder lemma's" "$tmp/V/tok exists and lemma did not make it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/V"
intact "user file kept (lock present)" "$tmp/V/tok/mine.txt" mine
# ... nor does a lock that claims the user's file with a wrong hash
sed 's|"tok/tokenizer.json"|"tok/mine.txt"|' "$tmp/B/lemma.lock" >"$tmp/V/lemma.lock"
check_fails "an edited lock claiming the user file" "did not make it" "$LEMMA" build "$tmp/r.json" --out "$tmp/V"
intact "user file kept (edited lock)" "$tmp/V/tok/mine.txt" mine

# 3. a lemma-made stage folder is replaced, and the build says so
write_recipe 301
check "rebuild with another vocab_size" "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
has "the replacement is announced" "removing the previous $tmp/B/tok" "$tmp/out"
# a user file put into a lemma-made folder goes with it: the folder is lemma's (documented)
# 4. a folder from before the marker: lemma's only if the lock records exactly its files
rm "$tmp/B/tok/.lemma-made"
write_recipe 302
check "legacy folder matching the lock is replaced" "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
has "legacy replacement announced" "removing the previous $tmp/B/tok" "$tmp/out"
rm "$tmp/B/tok/.lemma-made"; echo mine >"$tmp/B/tok/mine.txt"
write_recipe 303
check_fails "legacy folder with an extra file refused" "$tmp/B/tok exists and lemma did not make it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
intact "extra file kept" "$tmp/B/tok/mine.txt" mine
rm -rf "$tmp/B/tok"

# 5. a stray folder named like an unfinished stage
mkdir -p "$tmp/B/.tok.partial-0123456789abcdef"; echo mine >"$tmp/B/.tok.partial-0123456789abcdef/mine.txt"
check_fails "stray partial folder refused" ".tok.partial-0123456789abcdef: has the name of an unfinished stage but lemma did not make it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
intact "stray partial kept" "$tmp/B/.tok.partial-0123456789abcdef/mine.txt" mine
rm -rf "$tmp/B/.tok.partial-0123456789abcdef"
mkdir -p "$tmp/B/.tok.partial-fedcba9876543210"; touch "$tmp/B/.tok.partial-fedcba9876543210/.lemma-made"
check "lemma's own unfinished stage is removed" "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
has "...and announced" "removing $tmp/B/.tok.partial-fedcba9876543210 (an unfinished earlier build" "$tmp/out"

# 6. inputs/: a user's file where a built-in input goes is not overwritten
mkdir -p "$tmp/W/inputs"; echo mine >"$tmp/W/inputs/synth.txt"
check_fails "user file at inputs/NAME.txt refused" "inputs/synth.txt exists and lemma did not write it" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/W"
intact "user input file kept" "$tmp/W/inputs/synth.txt" mine
echo tampered >>"$tmp/B/inputs/synth.txt"
check "a lemma-written input is rewritten" "$LEMMA" build "$tmp/r.json" --out "$tmp/B"
has "...and announced" "input synth: replacing $tmp/B/inputs/synth.txt" "$tmp/out"

# 7. inputs that are not regular files: refused at once, never read
write_recipe 300 /dev/zero
check_fails "/dev/zero input refused" "/dev/zero: not a regular file" timeout -k 2 10 "$LEMMA" build "$tmp/r.json" --out "$tmp/Z"
mkfifo "$tmp/fifo"
write_recipe 300 fifo
check_fails "FIFO input refused without blocking" "fifo: not a regular file" timeout -k 2 10 "$LEMMA" build "$tmp/r.json" --out "$tmp/Z"

# 8. a huge input (sparse: no disk) is being hashed: a second build of the
# folder is refused naming the first's pid; SIGTERM stops the first within a second
truncate -s 64G "$tmp/huge.txt"
write_recipe 300 huge.txt
"$LEMMA" build "$tmp/r.json" --out "$tmp/H" --quiet >"$tmp/h.err" 2>&1 & pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/H/.lock" ] && break; sleep 0.02; done
sleep 0.3
check_fails "second build of a folder in use" "$tmp/H is in use by pid $pid" "$LEMMA" build "$tmp/r.json" --out "$tmp/H"
t0=$(date +%s%N); kill -TERM $pid
for _ in $(seq 1 250); do kill -0 $pid 2>/dev/null || break; sleep 0.02; done
t1=$(date +%s%N); kill -KILL $pid 2>/dev/null; wait $pid; rc=$?
ms=$(( (t1 - t0) / 1000000 ))
[ $rc -eq 130 ] && ok "SIGTERM while hashing: exit 130" || { bad "SIGTERM while hashing: exit 130 (got $rc)"; cat "$tmp/h.err"; }
[ $ms -lt 1500 ] && ok "SIGTERM while hashing: stopped in $ms ms" || bad "SIGTERM while hashing: stopped in $ms ms (> 1500)"
has "SIGTERM while hashing: says interrupted" "input notes: interrupted" "$tmp/h.err"
[ ! -e "$tmp/H/.lock" ] && ok "lock file gone after the build" || bad "lock file gone after the build"

echo "test_build_safety.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
