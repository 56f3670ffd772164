#!/usr/bin/env bash
# test_train_safety.sh — lemma train never throws a run away or loses what it
# wrote (docs/reliability.md, Rules): --resume takes the newest complete
# ckpt-N whatever `latest` is (removed, stale, a real folder), refuses an
# incomplete newest checkpoint, ignores ckpt-N.tmp, starts over only with
# --restart; a run folder in use is refused with the pid; SIGTERM stops
# within a second with a checkpoint; a new run never writes into a folder
# holding other files; the optimiser defaults are the documented ones;
# metrics.jsonl holds JSON only (null for inf/NaN) and `lemma plot` reads
# it; a full disk stops the run with an error and leaves no torn metrics
# line and no ckpt-N.tmp (tmpfs; skipped visibly when mount is not allowed).
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; for m in "$tmp"/mnt*; do umount "$m" 2>/dev/null; done; rm -rf "$tmp"' EXIT
skipped=0
skip() { skipped=$((skipped + 1)); echo "skip $1"; }
has() { if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1"; sed 's/^/  /' "$3" | head -10; fi; }
lacks() { if grep -q -- "$2" "$3"; then bad "$1"; sed 's/^/  /' "$3" | head -10; else ok "$1"; fi; }
sha() { sha256sum "$1/latest/model.safetensors" | cut -d' ' -f1; }
json_lines() { # every line of a metrics file is a JSON object (python3 when present)
    if command -v python3 >/dev/null; then
        python3 -c 'import json, sys
for i, l in enumerate(open(sys.argv[1]), 1):
    r = json.loads(l, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert isinstance(r, dict) and "step" in r, i' "$1"
    else
        ! grep -qE 'inf|nan' "$1"
    fi
}

for i in $(seq 1 300); do echo "Line $i: the $((i % 7)) quick foxes jump over $((i % 5)) lazy dogs."; done >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 320 --out "$tmp/tok" --quiet || exit 1
"$LEMMA" data "$tmp/corpus.txt" --tokenizer "$tmp/tok" --out "$tmp/data" --doc-sep line --quiet >/dev/null 2>&1 || exit 1
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 320/' tests/golden/v3_f32/config.json >"$tmp/cfg.json"
args=(--config "$tmp/cfg.json" --data "$tmp/data" --steps 20 --batch 2 --seq 16 --lr 3e-3 --save-every 5 --keep 3
      --log-every 1 --seed 5 --threads 1 --quiet)

check "reference run" "$LEMMA" train "${args[@]}" --out "$tmp/ref"
has "defaults: beta2 0.95" '"beta2": 0.94999999999999996' "$tmp/ref/run.json"
has "defaults: weight decay 0.1" '"weight_decay": 0.10000000000000001' "$tmp/ref/run.json"
"$LEMMA" train --help >"$tmp/help"
has "help shows the same AdamW defaults" "AdamW beta2 (default 0.95)" "$tmp/help"
has "...and epsilon" "AdamW epsilon (default 1e-08)" "$tmp/help"
has "help shows the same weight decay" "matrices (default 0.1)" "$tmp/help"
[ -f "$tmp/ref/.lemma-made" ] && [ ! -e "$tmp/ref/.lock" ] && ok "run folder: marker, no lock left" || bad "run folder: marker, no lock left"

# a run of 20 steps whose last checkpoint is gone: ckpt-15 is the newest
mkrun() { rm -rf "$tmp/$1"; cp -r "$tmp/ref" "$tmp/$1"; rm -rf "$tmp/$1/ckpt-00000020"; }

# 1. latest removed: resume from ckpt-15, not from step 0
mkrun a; rm "$tmp/a/latest"
check "resume without latest" "$LEMMA" train --resume "$tmp/a" --threads 1
has "...from the newest checkpoint" "resuming $tmp/a at step 15 of 20" "$tmp/out"
lacks "...not from step 0" "step 0" "$tmp/out"
has "...dropping the metrics past it, said" "dropping 5 lines of $tmp/a/metrics.jsonl past step 15" "$tmp/out"
[ "$(sha "$tmp/a")" = "$(sha "$tmp/ref")" ] && ok "...ends bit-identical" || bad "...ends bit-identical"
check "...metrics identical but for timings" cmp <(sed 's/"tokens_per_s": [^,}]*//' "$tmp/a/metrics.jsonl") \
    <(sed 's/"tokens_per_s": [^,}]*//' "$tmp/ref/metrics.jsonl")

# 2. latest stale (points at ckpt-10), and a leftover ckpt-N.tmp: both ignored
mkrun b; ln -sfn ckpt-00000010 "$tmp/b/latest"; mkdir "$tmp/b/ckpt-00000099.tmp"
check "resume with a stale latest" "$LEMMA" train --resume "$tmp/b" --threads 1
has "...from ckpt-15" "at step 15 of 20" "$tmp/out"
[ "$(sha "$tmp/b")" = "$(sha "$tmp/ref")" ] && ok "...ends bit-identical" || bad "...ends bit-identical"

# 3. latest a real folder: refused before any work
mkrun c; rm "$tmp/c/latest"; mkdir "$tmp/c/latest"; echo mine >"$tmp/c/latest/mine.txt"
cp "$tmp/c/metrics.jsonl" "$tmp/c.metrics"
check_fails "latest is a folder: refused" "$tmp/c/latest is not a symbolic link" "$LEMMA" train --resume "$tmp/c"
[ -f "$tmp/c/latest/mine.txt" ] && cmp -s "$tmp/c/metrics.jsonl" "$tmp/c.metrics" && [ -d "$tmp/c/ckpt-00000015" ] \
    && ok "...nothing touched" || bad "...nothing touched"

# 4. the newest checkpoint incomplete: an error naming it, no fall-back, no restart
mkrun d; rm "$tmp/d/ckpt-00000015/optim_v.safetensors"
check_fails "incomplete newest checkpoint refused" "$tmp/d/ckpt-00000015 is incomplete (no optim_v.safetensors)" \
    "$LEMMA" train --resume "$tmp/d"
[ -d "$tmp/d/ckpt-00000010" ] && [ "$(wc -l <"$tmp/d/metrics.jsonl")" -eq 20 ] && ok "...nothing touched" || bad "...nothing touched"

# 5. --restart: starts over, says what it removes, same result
check "--restart" "$LEMMA" train --resume "$tmp/d" --restart --threads 1
has "...removes the checkpoints, said" "--restart: removing $tmp/d/ckpt-00000015" "$tmp/out"
has "...starts from step 0" "restarting the run: starting from step 0" "$tmp/out"
[ "$(sha "$tmp/d")" = "$(sha "$tmp/ref")" ] && ok "...ends bit-identical" || bad "...ends bit-identical"
[ "$(head -c 12 "$tmp/d/metrics.jsonl")" = '{"step": 1, ' ] && [ "$(wc -l <"$tmp/d/metrics.jsonl")" -eq 20 ] \
    && ok "...metrics written anew" || bad "...metrics written anew"
check_fails "--restart without --resume" "--restart goes with --resume" "$LEMMA" train "${args[@]}" --out "$tmp/x" --restart

# 6. a new run never writes into a folder holding other files
mkdir -p "$tmp/e"; echo mine >"$tmp/e/notes.txt"
check_fails "new run into a non-empty folder refused" "$tmp/e is not empty (it holds notes.txt)" \
    "$LEMMA" train "${args[@]}" --out "$tmp/e"
[ "$(ls -A "$tmp/e")" = "notes.txt" ] && ok "...nothing written" || bad "...nothing written"

# 7. one writer per run folder; SIGTERM stops within a second with a checkpoint
"$LEMMA" train "${args[@]}" --steps 1000000 --save-every 0 --out "$tmp/f" 2>"$tmp/f.err" & pid=$!
for _ in $(seq 1 300); do [ "$({ wc -l <"$tmp/f/metrics.jsonl"; } 2>/dev/null)" -ge 3 ] 2>/dev/null && break; sleep 0.02; done
check_fails "--resume of a run in use refused" "$tmp/f is in use by pid $pid" timeout -k 1 20 "$LEMMA" train --resume "$tmp/f"
check_fails "a new run into a folder in use refused" "$tmp/f is in use by pid $pid" \
    timeout -k 1 20 "$LEMMA" train "${args[@]}" --out "$tmp/f"
t0=$(date +%s%N); kill -TERM $pid
for _ in $(seq 1 250); do kill -0 $pid 2>/dev/null || break; sleep 0.02; done
t1=$(date +%s%N); kill -KILL $pid 2>/dev/null; wait $pid; rc=$?
ms=$(( (t1 - t0) / 1000000 ))
[ $rc -eq 130 ] && ok "SIGTERM: exit 130" || { bad "SIGTERM: exit 130 (got $rc)"; cat "$tmp/f.err"; }
[ $ms -lt 1500 ] && ok "SIGTERM: stopped in $ms ms" || bad "SIGTERM: stopped in $ms ms (> 1500)"
has "SIGTERM: checkpoint saved" "checkpoint saved" "$tmp/f.err"
[ -L "$tmp/f/latest" ] && [ ! -e "$tmp/f/.lock" ] && ok "...latest written, lock released" || bad "...latest written, lock released"
uniq_steps=$(grep -o '"step": [0-9]*' "$tmp/f/metrics.jsonl" | sort | uniq -d | wc -l)
[ "$uniq_steps" -eq 0 ] && ok "...no step logged twice" || bad "...no step logged twice"

# 8. a diverging run: metrics stay JSON (null, never inf/nan), plot reads
# them, and the message does not claim a checkpoint that does not exist
"$LEMMA" train --config "$tmp/cfg.json" --data "$tmp/data" --out "$tmp/g" --steps 30 --batch 2 --seq 16 \
    --lr 10 --clip 0 --std 10 --log-every 1 --quiet 2>"$tmp/g.err"; rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <"$tmp/g.err")" -eq 1 ] && ok "divergence: one error line" || { bad "divergence: one error line"; cat "$tmp/g.err"; }
if grep -q "became" "$tmp/g.err"; then
    has "divergence: no checkpoint claimed" "no checkpoint has been written yet" "$tmp/g.err"
    lacks "divergence: not 'the last checkpoint is intact'" "checkpoint is intact" "$tmp/g.err"
else
    ok "divergence: stopped by another check ($(cut -c1-60 "$tmp/g.err"))"; ok "(same)"
fi
grep -q null "$tmp/g/metrics.jsonl" && ok "non-finite numbers written as null" || bad "non-finite numbers written as null"
check "metrics.jsonl is JSON only" json_lines "$tmp/g/metrics.jsonl"
check "lemma plot reads nulls" "$LEMMA" plot "$tmp/g" --out "$tmp/g.svg"

# 9. a full disk (tmpfs of 1 MiB)
mkdir -p "$tmp/mnt1" "$tmp/mnt2"
if mount -t tmpfs -o size=1m tmpfs "$tmp/mnt1" 2>/dev/null && mount -t tmpfs -o size=1m tmpfs "$tmp/mnt2" 2>/dev/null; then
    # a checkpoint (2.2 MB) cannot fit: the run stops and leaves no ckpt-N.tmp
    "$LEMMA" train "${args[@]}" --steps 3 --save-every 0 --out "$tmp/mnt1/run" 2>"$tmp/h.err"; rc=$?
    [ $rc -ne 0 ] && ok "full disk at the checkpoint: the run fails" || bad "full disk at the checkpoint: the run fails"
    has "...naming the checkpoint" "checkpoint at step 3 not saved" "$tmp/h.err"
    has "...and why" "No space left on device" "$tmp/h.err"
    has "...and that there is no checkpoint" "no checkpoint has been written yet" "$tmp/h.err"
    ls -d "$tmp/mnt1/run"/ckpt-* >/dev/null 2>&1 && bad "...no ckpt-N.tmp left" || ok "...no ckpt-N.tmp left"
    # metrics appends fail: leave a few pages for run.json & co, fewer than 200 lines need
    head -c $((1024 * 1024 - 6 * 4096)) /dev/zero >"$tmp/mnt2/filler" 2>/dev/null
    "$LEMMA" train "${args[@]}" --steps 200 --save-every 0 --out "$tmp/mnt2/run" 2>"$tmp/i.err"; rc=$?
    [ $rc -ne 0 ] && ok "full disk at metrics: the run stops" || bad "full disk at metrics: the run stops"
    has "...naming metrics.jsonl" "metrics.jsonl: cannot append: No space left on device" "$tmp/i.err"
    n=$(wc -l <"$tmp/mnt2/run/metrics.jsonl")
    [ "$n" -gt 0 ] && [ "$n" -lt 200 ] && ok "...after $n lines" || bad "...after $n lines"
    check "...no torn line left" json_lines "$tmp/mnt2/run/metrics.jsonl"
    [ "$(tail -c 1 "$tmp/mnt2/run/metrics.jsonl" | od -An -c | tr -d ' ')" = '\n' ] && ok "...ends with a newline" || bad "...ends with a newline"
    umount "$tmp/mnt1"; umount "$tmp/mnt2"
else
    skip "full-disk tests (mount -t tmpfs not allowed here)"
fi

echo "test_train_safety.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
