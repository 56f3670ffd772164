#!/usr/bin/env bash
# test_tasks_cli.sh — `lemma tasks list|gen|corrupt` and `lemma check` end to
# end: every reference proof scores 1, every corruption scores its label
# (with its kind and step), same seed same bytes, bad input is refused with
# file:line, outputs are not overwritten without --force, and a failed write
# to stdout is an error.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

# field NAME FILE: the values of a scalar JSON field, one per line
field() { sed -nE "s/.*\"$1\":\"?([^,\"}]*)\"?[,}].*/\\1/p" "$2"; }

for sub in "tasks" "tasks list" "tasks gen" "tasks corrupt" "check"; do
    # shellcheck disable=SC2086
    check "$sub --help" "$LEMMA" $sub --help
done
grep -q "usage: lemma check" "$tmp/out" && ok "check --help shows usage" || bad "check --help shows usage"

"$LEMMA" tasks list >"$tmp/list" 2>&1 || bad "tasks list runs"
domains=$(sed -nE 's/^([a-z_]+) .*/\1/p' "$tmp/list")
ndom=$(echo "$domains" | wc -w)
for d in add lineq gcd; do
    if echo "$domains" | grep -qx "$d"; then ok "list names $d"; else bad "list names $d"; fi
done
[ "$(grep -c 'example: ' "$tmp/list")" -eq "$ndom" ] && ok "an example question per domain" || bad "an example question per domain"

# ---- gen, check ----
n=$((ndom * 40))
check "gen all" "$LEMMA" tasks gen all --seed 7 --n "$n" --out "$tmp/set.jsonl"
[ "$(wc -l <"$tmp/set.jsonl")" -eq "$n" ] && ok "gen writes N lines" || bad "gen writes N lines"
for f in id domain difficulty seed question proof; do
    [ "$(grep -c "\"$f\":" "$tmp/set.jsonl")" -eq "$n" ] && ok "every record has $f" || bad "every record has $f"
done
head -n 1 "$tmp/set.jsonl" | grep -q '"id":"[a-z_]*-s7-000000"' && ok "id names domain, seed, index" || bad "id names domain, seed, index"
for d in $domains; do
    c=$(grep -c "\"domain\":\"$d\"" "$tmp/set.jsonl")
    [ "$c" -eq 40 ] && ok "round robin: 40 of $d" || bad "round robin: $c of $d"
done
for D in 1 2 3 4 5; do
    c=$(grep -c "\"difficulty\":$D," "$tmp/set.jsonl")
    [ "$c" -eq $((n / 5)) ] && ok "difficulty $D: $c problems" || bad "difficulty $D: $c problems, expected $((n / 5))"
done
check "check the set" "$LEMMA" check "$tmp/set.jsonl" --quiet
cp "$tmp/out" "$tmp/checked"
[ "$(grep -c '"score":1}' "$tmp/checked")" -eq "$n" ] && ok "every reference proof scores 1" \
    || { bad "every reference proof scores 1"; grep -v '"score":1}' "$tmp/checked" | head -3; }
[ "$(field id "$tmp/checked")" = "$(field id "$tmp/set.jsonl")" ] && ok "check keeps the order and ids" || bad "check keeps the order and ids"

check "gen again" "$LEMMA" tasks gen all --seed 7 --n "$n" --out "$tmp/set2.jsonl"
check "same seed, same bytes" cmp "$tmp/set.jsonl" "$tmp/set2.jsonl"
check "gen seed 8" "$LEMMA" tasks gen all --seed 8 --n "$n" --out "$tmp/set8.jsonl"
common=$(comm -12 <(field question "$tmp/set.jsonl" | sort -u) <(field question "$tmp/set8.jsonl" | sort -u) | wc -l)
[ "$common" -le $((n / 20)) ] && ok "other seed, other questions ($common shared)" || bad "other seed, other questions ($common shared)"
check "gen one difficulty" "$LEMMA" tasks gen add,gcd --seed 1 --n 10 --difficulty 3 --out "$tmp/d3.jsonl"
[ "$(grep -c '"difficulty":3,' "$tmp/d3.jsonl")" -eq 10 ] && ok "--difficulty 3" || bad "--difficulty 3"
[ "$(grep -c '"domain":"gcd"' "$tmp/d3.jsonl")" -eq 5 ] && ok "two named domains" || bad "two named domains"
check "gen a range" "$LEMMA" tasks gen lineq --seed 1 --n 6 --difficulty 2..3 --out "$tmp/d23.jsonl"
[ "$(field difficulty "$tmp/d23.jsonl" | tr '\n' ' ')" = "2 3 2 3 2 3 " ] && ok "--difficulty 2..3 cycles" || bad "--difficulty 2..3 cycles"
check "gen --n 0" "$LEMMA" tasks gen all --n 0 --out "$tmp/empty.jsonl"
[ -f "$tmp/empty.jsonl" ] && [ ! -s "$tmp/empty.jsonl" ] && ok "--n 0 writes an empty file" || bad "--n 0 writes an empty file"
"$LEMMA" tasks gen all --seed 7 --n "$n" --out - >"$tmp/stdout.jsonl" 2>/dev/null
check "--out - writes the same to stdout" cmp "$tmp/set.jsonl" "$tmp/stdout.jsonl"

# ---- corrupt, check ----
check "corrupt" "$LEMMA" tasks corrupt "$tmp/set.jsonl" --seed 3 --out "$tmp/bad.jsonl"
[ "$(wc -l <"$tmp/bad.jsonl")" -eq "$n" ] && ok "a corruption per record" || bad "a corruption per record"
check "check the corruptions" "$LEMMA" check "$tmp/bad.jsonl" -q
cp "$tmp/out" "$tmp/badchecked"
[ "$(field label "$tmp/bad.jsonl")" = "$(field score "$tmp/badchecked")" ] && ok "every corruption scores its label" \
    || { bad "every corruption scores its label"; diff <(field label "$tmp/bad.jsonl") <(field score "$tmp/badchecked") | head -5; }
[ "$(field error_kind "$tmp/bad.jsonl")" = "$(field kind "$tmp/badchecked")" ] && ok "... with its kind" || bad "... with its kind"
[ "$(field error_step "$tmp/bad.jsonl")" = "$(field step "$tmp/badchecked")" ] && ok "... at its step" || bad "... at its step"
[ "$(field original_id "$tmp/bad.jsonl")" = "$(field id "$tmp/set.jsonl")" ] && ok "original_id" || bad "original_id"
grep -q '"id":"[a-z_]*-s7-000000-corrupt"' "$tmp/bad.jsonl" && ok "corrupted id" || bad "corrupted id"
grep -q '"label":0.5' "$tmp/bad.jsonl" && ok "some labels are 0.5" || bad "some labels are 0.5"
grep -q '"label":0,' "$tmp/bad.jsonl" && ok "some labels are 0" || bad "some labels are 0"
nk=$(field error_kind "$tmp/bad.jsonl" | sort -u | wc -l)
[ "$nk" -ge 6 ] && ok "$nk kinds of corruption" || bad "only $nk kinds of corruption"
check "corrupt again" "$LEMMA" tasks corrupt "$tmp/set.jsonl" --seed 3 --out "$tmp/bad2.jsonl"
check "corrupt: same seed, same bytes" cmp "$tmp/bad.jsonl" "$tmp/bad2.jsonl"
"$LEMMA" tasks corrupt - --seed 3 --out - <"$tmp/set.jsonl" >"$tmp/bad3.jsonl" 2>/dev/null
check "corrupt from stdin to stdout" cmp "$tmp/bad.jsonl" "$tmp/bad3.jsonl"
check_fails "a flawed proof is not corrupted" "$tmp/bad.jsonl:" "$LEMMA" tasks corrupt "$tmp/bad.jsonl" --out "$tmp/x.jsonl"
[ ! -e "$tmp/x.jsonl" ] && ok "  ... and nothing is written" || bad "  ... and nothing is written"

# ---- check input forms ----
{ echo; head -n 2 "$tmp/set.jsonl"; echo "   "; sed -n 3p "$tmp/set.jsonl"; } | "$LEMMA" check - -q >"$tmp/c.out" 2>&1
[ "$(grep -c '"score":1}' "$tmp/c.out")" -eq 3 ] && ok "stdin, blank lines skipped" || bad "stdin, blank lines skipped"
grep -q '"line":5,' "$tmp/c.out" && ok "line numbers count blank lines" || bad "line numbers count blank lines"
printf '{"question":"Prove that 2 + 3 = 5.","proof":"Column 1: 2 + 3 + 0 = 5, write 5, carry 0\\nFinal carry 0, so the digits read 5\\nTherefore 2 + 3 = 5.","x":[1,{"y":null}]}\n' >"$tmp/hand.jsonl"
check "a hand-written record" "$LEMMA" check "$tmp/hand.jsonl"
grep -q '"domain":"add","score":1}' "$tmp/out" && ok "  ... scores 1" || bad "  ... scores 1"
printf '{"question":"Prove that 2 + 3 = 5.","proof":"Therefore 2 + 3 = 5."}\n' >"$tmp/circ.jsonl"
check "a flawed record" "$LEMMA" check "$tmp/circ.jsonl"
grep -q '"score":0,"error":{"step":1,"kind":"circular","message":"the claim is stated before column 1 is computed"}' "$tmp/out" \
    && ok "  ... scores 0 with step, kind, message" || bad "  ... scores 0 with step, kind, message"

# ---- bad input ----
head -n 1 "$tmp/set.jsonl" >"$tmp/b1.jsonl"; echo '{"question": "Prove that' >>"$tmp/b1.jsonl"
check_fails "not JSON" "$tmp/b1.jsonl:2: not JSON" "$LEMMA" check "$tmp/b1.jsonl"
echo '{"proof":"x"}' >"$tmp/b2.jsonl"
check_fails "no question" "$tmp/b2.jsonl:1: no field \"question\"" "$LEMMA" check "$tmp/b2.jsonl"
echo '{"question":"Prove that 1 + 1 = 2."}' >"$tmp/b3.jsonl"
check_fails "no proof" "b3.jsonl:1: no field \"proof\"" "$LEMMA" check "$tmp/b3.jsonl"
echo '{"question":"Prove that 1 + 1 = 2.","proof":7}' >"$tmp/b4.jsonl"
check_fails "proof not a string" "field \"proof\" is not a string" "$LEMMA" check "$tmp/b4.jsonl"
echo '{"question":"What is love?","proof":"x"}' >"$tmp/b5.jsonl"
check_fails "question of no domain" "b5.jsonl:1: the question is not in the wording of any domain" "$LEMMA" check "$tmp/b5.jsonl"
echo '{"question":"Prove that 2 + 2 = 5.","proof":"x"}' >"$tmp/b6.jsonl"
check_fails "false claim" "b6.jsonl:1: add question: the claim is false" "$LEMMA" check "$tmp/b6.jsonl"
echo '{"question":"Prove that 1 + 1 = 2.\u0000","proof":"x"}' >"$tmp/b7.jsonl"
check_fails "NUL in a field" "contains a NUL character" "$LEMMA" check "$tmp/b7.jsonl"
echo '[1, 2]' >"$tmp/b8.jsonl"
check_fails "not an object" "expected a JSON object" "$LEMMA" check "$tmp/b8.jsonl"
{ printf '{"question":"Prove that 1 + 1 = 2.","proof":"'; head -c 17000000 /dev/zero | tr '\0' 'a'; echo '"}'; } >"$tmp/b9.jsonl"
check_fails "a line over 16 MiB" "b9.jsonl:1: line longer than 16 MiB" "$LEMMA" check "$tmp/b9.jsonl"
check_fails "missing file" "nosuch.jsonl" "$LEMMA" check "$tmp/nosuch.jsonl"
check_fails "check without FILE" "lemma check: missing FILE" "$LEMMA" check
check_fails "corrupt: bad record" "b5.jsonl:1: the question is not in the wording" "$LEMMA" tasks corrupt "$tmp/b5.jsonl" --out "$tmp/y.jsonl"
check_fails "unknown domain" "unknown domain 'nosuch'" "$LEMMA" tasks gen add,nosuch --n 3 --out "$tmp/z.jsonl"
check_fails "difficulty 0" "got '0'" "$LEMMA" tasks gen all --n 3 --difficulty 0 --out "$tmp/z.jsonl"
check_fails "difficulty 4..2" "--difficulty expects 1..5 or a range LO..HI within 1..5, got '4..2'" "$LEMMA" tasks gen all --n 3 --difficulty 4..2 --out "$tmp/z.jsonl"
check_fails "no --n" "missing --n N" "$LEMMA" tasks gen all --out "$tmp/z.jsonl"
check_fails "no --out" "missing --out FILE" "$LEMMA" tasks gen all --n 2
check_fails "unknown option" "unknown option '--bogus'" "$LEMMA" tasks gen all --n 2 --out "$tmp/z.jsonl" --bogus
check_fails "unknown subcommand" "lemma tasks: unknown subcommand 'frob' (see lemma tasks --help)" "$LEMMA" tasks frob
[ ! -e "$tmp/z.jsonl" ] && ok "nothing written on bad arguments" || bad "nothing written on bad arguments"

# ---- outputs ----
cp "$tmp/d3.jsonl" "$tmp/keep.jsonl"
check_fails "gen refuses to overwrite" "exists (use --force" "$LEMMA" tasks gen all --n 2 --out "$tmp/d3.jsonl"
check "  ... the file is untouched" cmp "$tmp/d3.jsonl" "$tmp/keep.jsonl"
check_fails "corrupt refuses to overwrite" "exists (use --force" "$LEMMA" tasks corrupt "$tmp/set.jsonl" --out "$tmp/d3.jsonl"
check "gen --force overwrites" "$LEMMA" tasks gen all --n 2 --out "$tmp/d3.jsonl" --force
[ "$(wc -l <"$tmp/d3.jsonl")" -eq 2 ] && ok "  ... with the new set" || bad "  ... with the new set"
ls "$tmp" | grep -q '\.tmp\.' && bad "no temporary files left" || ok "no temporary files left"
if [ -w /dev/full ]; then
    check_fails "check to /dev/full" "writing to stdout" sh -c "\"$LEMMA\" check \"$tmp/set.jsonl\" >/dev/full"
    check_fails "gen to /dev/full" "writing to stdout" sh -c "\"$LEMMA\" tasks gen all --n 50 --out - >/dev/full"
    check_fails "corrupt to /dev/full" "writing to stdout" sh -c "\"$LEMMA\" tasks corrupt \"$tmp/set.jsonl\" --out - >/dev/full"
    check_fails "list to /dev/full" "writing to stdout" sh -c "\"$LEMMA\" tasks list >/dev/full"
else
    echo "skip /dev/full tests (not writable)"
fi
mkdir -p "$tmp/ro"; chmod 500 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
    check_fails "unwritable directory" "cannot create" "$LEMMA" tasks gen all --n 2 --out "$tmp/ro/x.jsonl"
fi

echo "test_tasks_cli: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
