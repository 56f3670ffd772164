#!/usr/bin/env bash
# test_memory.sh — memory stays within the stated multiple of the input
# (docs/reliability.md, "Memory bounds"), on small inputs shaped like the
# ones that used to blow up: a safetensors header of many empty tensors, a
# config.json with 100,000 layers, a one-line document. Each run's peak RSS
# (the kernel's, via python3's getrusage) minus the same command's peak on a
# tiny input must stay under the bound. The old code fails every bound here
# by 2-10x. Under the sanitizer build the commands still run (their exits and
# messages are checked) but RSS means nothing there, so the bounds are not.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
skipped=0
skip() { skipped=$((skipped + 1)); echo "skip $1"; }
sanitize=0
case "${LEMMA_SANITIZE:-}${LEMMA}" in *sanitize*) sanitize=1 ;; esac

# peak CMD...: runs CMD (stdout discarded, stderr in $tmp/err); sets kb (peak
# RSS in KiB) and rc.
peak() {
    local line
    line=$(python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "wb") as err:
    r = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)' "$tmp/err" "$@")
    kb=${line% *}; rc=${line#* }
}

# within NAME USED_KB LIMIT_KB: the bound check (skipped under ASan).
within() {
    if [ "$sanitize" -eq 1 ]; then skip "$1 (RSS under ASan)"; return; fi
    if [ "$2" -le "$3" ]; then ok "$1: $(($2 / 1024)) MiB <= $(($3 / 1024)) MiB"
    else bad "$1: $(($2 / 1024)) MiB > $(($3 / 1024)) MiB"; fi
}

# 1. A safetensors header of 150,000 empty tensors (9 MB): opening it takes
#    at most 4 bytes per header byte (it took 14).
mkdir -p "$tmp/st"
cp tests/bad/ok_base/config.json "$tmp/st/"
python3 - "$tmp/st/model.safetensors" <<'PY'
import struct, sys
parts = ['{"__metadata__":{"format":"pt"}']
parts += [',"t%07d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(150000)]
h = ("".join(parts) + "}").encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)
PY
hbytes=$(stat -c %s "$tmp/st/model.safetensors")
peak "$LEMMA" info tests/bad/ok_base; base=$kb
peak "$LEMMA" info "$tmp/st"
if [ "$rc" -eq 1 ] && grep -q "missing tensor 'model.embed_tokens.weight'" "$tmp/err"; then ok "150,000-tensor header read, then refused"
else bad "150,000-tensor header (exit $rc)"; head -3 "$tmp/err"; fi
within "safetensors header: peak - base <= 5 x header" $((kb - base)) $((5 * hbytes / 1024))

# 2. init on a config.json with 100,000 layers: refused before allocating,
#    with the numbers (it took 2.9 GB first).
sed -E 's/"num_hidden_layers": *[0-9]+/"num_hidden_layers": 100000/' tests/bad/ok_base/config.json >"$tmp/c100k.json"
peak "$LEMMA" init tests/bad/ok_base/config.json --out "$tmp/i1" --threads 1; base=$kb
peak "$LEMMA" init "$tmp/c100k.json" --out "$tmp/i100k" --threads 1
if [ "$rc" -eq 1 ] && grep -qE "100000 layers make [0-9]+ tensors, whose safetensors header would be about [0-9]+ MB, over the 100 MB that readers accept" "$tmp/err" &&
   [ ! -e "$tmp/i100k/model.safetensors" ]; then ok "init with 100,000 layers refused: $(cat "$tmp/err")"
else bad "init with 100,000 layers (exit $rc)"; head -3 "$tmp/err"; fi
within "init refusal: peak - base <= 8 MiB" $((kb - base)) 8192
#    ... and a 3,000-layer one (78,000 tiny tensors) that it makes: the file
#    plus its bookkeeping, under 3x the file.
sed -E 's/"num_hidden_layers": *[0-9]+/"num_hidden_layers": 3000/' tests/bad/ok_base/config.json >"$tmp/c3k.json"
peak "$LEMMA" init "$tmp/c3k.json" --out "$tmp/i3k" --threads 1
fbytes=$(stat -c %s "$tmp/i3k/model.safetensors" 2>/dev/null || echo 0)
[ "$rc" -eq 0 ] && [ "$fbytes" -gt 0 ] && ok "init with 3,000 layers" || bad "init with 3,000 layers (exit $rc)"
within "init: peak - base <= 3 x the file" $((kb - base)) $((3 * fbytes / 1024))

# 3. lemma data on one 8 MB line of 100 KB words (about one token per byte:
#    the worst case): the line, 4 bytes per token, the tokenizer's scratch.
#    It took 14 bytes per token plus doublings.
printf 'the quick brown fox jumps over the lazy dog\n%.0s' {1..200} >"$tmp/small.txt"
"$LEMMA" tokenizer train "$tmp/small.txt" --vocab 300 --out "$tmp/tok" --quiet || { echo "tokenizer train failed"; exit 1; }
python3 - "$tmp/line.txt" <<'PY'
import sys
w = "".join("abcdefghij"[(i * 7 + i // 10) % 10] for i in range(100000))
open(sys.argv[1], "w").write(" ".join(w[k:] + w[:k] for k in range(80)))
PY
dbytes=$(stat -c %s "$tmp/line.txt")
peak "$LEMMA" data "$tmp/small.txt" --tokenizer "$tmp/tok" --out "$tmp/d0" --quiet; base=$kb
peak "$LEMMA" data "$tmp/line.txt" --tokenizer "$tmp/tok" --out "$tmp/d1" --quiet
[ "$rc" -eq 0 ] && ok "data on one 8 MB line" || { bad "data on one 8 MB line (exit $rc)"; head -3 "$tmp/err"; }
within "data: peak - base <= 6 x the line + 8 MiB" $((kb - base)) $((6 * dbytes / 1024 + 8192))

echo "test_memory.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
