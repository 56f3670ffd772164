#!/usr/bin/env bash
# test_docs.sh — the repository explains itself:
#   - every DeepSeek convention the code cites ("conv. 13", "conv. 23, 24",
#     "Convention 15", "conventions 19-24") is an item of
#     docs/deepseek-conventions.md;
#   - no comment or document sends the reader to docs outside the repository
#     (../shared/docs, /work/...);
#   - docs/README.md lists every page of docs/, and the relative links of
#     README.md and docs/*.md lead to files that exist;
#   - every command of `lemma --help` appears in README.md's command list.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

CONV=docs/deepseek-conventions.md

# The item numbers the doc defines: lines starting "**N." (bold item heads).
grep -oE '^\*\*[0-9]+\.' "$CONV" | tr -d '*.' | sort -n >"$tmp/items"
if [ "$(wc -l <"$tmp/items")" -ge 40 ]; then ok "conventions: $(wc -l <"$tmp/items") items"; else bad "conventions: only $(wc -l <"$tmp/items") items in $CONV"; fi
if [ "$(sort -n -u "$tmp/items" | wc -l)" -eq "$(wc -l <"$tmp/items")" ]; then ok "conventions: numbers unique"; else bad "conventions: an item number appears twice"; fi

# Every number cited from the code and the reference, ranges expanded.
grep -rhoE '[Cc]onv(ention)?s?\.? [0-9]+((, ?| ?- ?|–)[0-9]+)*' src tests/ref fuzz 2>/dev/null |
    grep -oE '[0-9]+((-|–)[0-9]+)?' |
    while IFS= read -r n; do
        case $n in
        *-* | *–*) a=${n%%[-–]*}; b=${n##*[-–]}; seq "$a" "$b" ;;
        *) echo "$n" ;;
        esac
    done | sort -n -u >"$tmp/cited"
if [ -s "$tmp/cited" ]; then ok "conventions: $(wc -l <"$tmp/cited") numbers cited in the code"; else bad "conventions: no citation found (the grep is broken)"; fi
missing=$(comm -23 <(sort "$tmp/cited") <(sort "$tmp/items") | tr '\n' ' ')
if [ -z "$missing" ]; then ok "conventions: every cited number is an item"; else bad "conventions: cited but not in $CONV: $missing"; fi

# Nothing points at documentation outside the repository.
if grep -rnE '\.\./shared/docs|/work/(shared|main|h-)' src docs README.md tests/ref fuzz bench Makefile >"$tmp/ext" 2>/dev/null; then
    bad "no references to docs outside the repository"; sed 's/^/  /' "$tmp/ext" | head -5
else
    ok "no references to docs outside the repository"
fi

# docs/README.md is the index of docs/.
for f in docs/*.md; do
    b=$(basename "$f")
    [ "$b" = README.md ] && continue
    if grep -q "($b)" docs/README.md; then ok "docs index lists $b"; else bad "docs index lists $b (docs/README.md)"; fi
done

# Relative links lead somewhere: [text](path) or [text](path#anchor), not URLs.
for f in README.md docs/*.md; do
    dir=$(dirname "$f")
    grep -oE '\]\([^)#:]+(#[^)]*)?\)' "$f" | sed -E 's/^\]\(//; s/\)$//; s/#.*//' | sort -u |
        while IFS= read -r link; do
            [ -z "$link" ] && continue
            [ -e "$dir/$link" ] || echo "$f: $link"
        done
done >"$tmp/dead"
if [ ! -s "$tmp/dead" ]; then ok "relative links resolve"; else bad "relative links resolve"; sed 's/^/  /' "$tmp/dead" | head -5; fi

# Every command of `lemma --help` is in README.md's command list.
"$LEMMA" --help 2>&1 | sed -n '/^commands:/,/^$/p' | awk 'NF && $1 != "commands:" {print $1}' >"$tmp/cmds"
if [ "$(wc -l <"$tmp/cmds")" -ge 10 ]; then ok "lemma --help lists $(wc -l <"$tmp/cmds") commands"; else bad "lemma --help lists commands"; fi
while IFS= read -r c; do
    if grep -qE "^lemma +$c( |$)" README.md; then ok "README lists lemma $c"; else bad "README lists lemma $c"; fi
done <"$tmp/cmds"

echo "test_docs.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
