#!/usr/bin/env bash
# test_plot.sh — `lemma plot` end to end: writes RUN_DIR/plot.svg (or --out),
# the SVG parses as XML (python3) and renders (rsvg-convert, when installed);
# a missing, empty or corrupt metrics file gets one clear line and exit 1.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0; skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
skip() { skipped=$((skipped + 1)); echo "skip $1"; }
check() { local name=$1; shift; if "$@" >"$tmp/out" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/  /' "$tmp/out" | head -20; fi; }
check_fails() { # name, expected message part, command...
    local name=$1 want=$2; shift 2
    if "$@" >"$tmp/out" 2>&1; then bad "$name (succeeded)"; sed 's/^/  /' "$tmp/out" | head -5
    elif ! grep -q -- "$want" "$tmp/out"; then bad "$name (message)"; sed 's/^/  /' "$tmp/out" | head -5
    else ok "$name"; fi
}

mkdir -p "$tmp/run"
for i in $(seq 0 299); do
    load=""; val=""
    [ $((i % 10)) -eq 0 ] && load=", \"expert_load\": [[$((i % 7)), 3, 4, 5], [2, 2, 2, 2]]"
    [ $((i % 50)) -eq 0 ] && val=", \"val_loss\": $(awk "BEGIN{print 2.6 + 5/($i/40+1)}")"
    echo "{\"step\": $i, \"loss\": $(awk "BEGIN{print 2.5 + 5/($i/40+1)}"), \"lr\": 0.001, \"tokens_per_s\": $((4000 + i % 13 * 20)), \"grad_norm\": 1.$((i % 9))$load$val}"
done >"$tmp/run/metrics.jsonl"

check "plot a run" "$LEMMA" plot "$tmp/run"
[ -s "$tmp/run/plot.svg" ] && ok "RUN_DIR/plot.svg written" || bad "RUN_DIR/plot.svg written"
if command -v python3 >/dev/null; then
    check "SVG parses as XML" python3 -c "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith('svg'), r.tag" "$tmp/run/plot.svg"
else
    skip "SVG parses as XML (no python3)"
fi
if command -v rsvg-convert >/dev/null; then
    check "SVG renders" rsvg-convert "$tmp/run/plot.svg" -o "$tmp/plot.png"
else
    skip "SVG renders (no rsvg-convert; apt-get install librsvg2-bin)"
fi
check "--out and --title" "$LEMMA" plot "$tmp/run" --out "$tmp/x.svg" --title "my run"
grep -q ">my run<" "$tmp/x.svg" && ok "title in the SVG" || bad "title in the SVG"
check "metrics file as argument" "$LEMMA" plot "$tmp/run/metrics.jsonl" --out "$tmp/y.svg"
cmp -s <(sed 1,6d "$tmp/y.svg" | grep -v 'class="title"') <(sed 1,6d "$tmp/run/plot.svg" | grep -v 'class="title"') \
    && ok "same chart either way" || bad "same chart either way"
"$LEMMA" plot "$tmp/run" --out - >"$tmp/stdout.svg" 2>/dev/null
head -c 5 "$tmp/stdout.svg" | grep -q "<?xml" && ok "--out - writes to stdout" || bad "--out - writes to stdout"

# a run killed mid-line still plots, with a note
cp -r "$tmp/run" "$tmp/killed"; printf '{"step": 300, "loss": 2.' >>"$tmp/killed/metrics.jsonl"
check "incomplete last line tolerated" "$LEMMA" plot "$tmp/killed"
grep -q "incomplete last line" "$tmp/out" && ok "incomplete last line noted" || bad "incomplete last line noted"

# a diverged run: lemma train writes non-finite numbers as null
cp -r "$tmp/run" "$tmp/nulls"
echo '{"step": 300, "loss": null, "lr": 0.001, "grad_norm": null, "tokens_per_s": 4000.0}' >>"$tmp/nulls/metrics.jsonl"
check "null numbers accepted" "$LEMMA" plot "$tmp/nulls"

# errors
check_fails "missing run" "nope: no such run directory" "$LEMMA" plot "$tmp/nope"
mkdir -p "$tmp/nometrics"
check_fails "run without metrics" "nometrics/metrics.jsonl" "$LEMMA" plot "$tmp/nometrics"
mkdir -p "$tmp/empty"; : >"$tmp/empty/metrics.jsonl"
check_fails "empty metrics" 'no record with a "loss"' "$LEMMA" plot "$tmp/empty"
mkdir -p "$tmp/corrupt"; printf '{"step": 0, "loss": 3}\n{"step": 1, "loss": }\n{"step": 2, "loss": 2}\n' >"$tmp/corrupt/metrics.jsonl"
check_fails "corrupt line named" "metrics.jsonl:2: byte" "$LEMMA" plot "$tmp/corrupt"
[ ! -e "$tmp/corrupt/plot.svg" ] && ok "nothing written on error" || bad "nothing written on error"
check_fails "no run given" "lemma plot: missing RUN_DIR" "$LEMMA" plot

echo "test_plot.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
