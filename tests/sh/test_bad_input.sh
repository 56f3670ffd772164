#!/usr/bin/env bash
# test_bad_input.sh — every broken checkpoint in tests/bad (written by
# tests/bad/make_bad.py, listed in tests/bad/cases.tsv) and every CLI misuse
# is refused by `lemma info` / `lemma logits` with a non-zero exit (not a
# signal, not a timeout), exactly one (non-blank) line on stderr containing the expected
# text, no sanitizer report, in a few seconds. Outside the sanitizer build the
# runs also get a 2 GiB address-space limit, so a huge allocation made before
# the input is checked fails the case too. The ok_* cases must load and run,
# and the unaligned and sharded copies of the base model must give the same
# logits, byte for byte.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
BAD=tests/bad
MAX_S=5                     # wall-time limit per run, seconds
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

# ASan reserves terabytes of address space: no ulimit -v under it.
vlimit=2097152
case "${LEMMA_SANITIZE:-}${LEMMA}" in *1*sanitize*|*sanitize*) vlimit=unlimited ;; esac

# run CMD...: runs lemma with CMD, stdout in $tmp/out, stderr in $tmp/err
# (without the progress lines of --check-weights, which are not errors);
# sets rc and ms.
run() {
    local t0=$EPOCHREALTIME
    (ulimit -v "$vlimit" 2>/dev/null; exec timeout -k 2 $((MAX_S * 2)) "$LEMMA" "$@") >"$tmp/out" 2>"$tmp/err.all"
    rc=$?
    grep -v '^check-weights: ' "$tmp/err.all" >"$tmp/err"
    local t1=$EPOCHREALTIME
    ms=$(( (${t1/./} - ${t0/./}) / 1000 ))
}

# expect_fail NAME WANT CMD...: non-zero exit, one stderr line containing WANT.
expect_fail() {
    local name=$1 want=$2; shift 2
    run "$@"
    local lines why=""
    lines=$(grep -c . "$tmp/err")          # blank lines do not count
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|Sanitizer' "$tmp/err"; then why="sanitizer report"
    elif [ "$rc" -eq 0 ]; then why="exit 0, expected failure"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why="timed out"
    elif [ "$rc" -ge 128 ]; then why="killed by signal $((rc - 128))"
    elif [ "$ms" -gt $((MAX_S * 1000)) ]; then why="took ${ms} ms"
    elif [ "$lines" -ne 1 ]; then why="$lines lines on stderr, expected 1"
    elif ! grep -qF -- "$want" "$tmp/err"; then why="message lacks: $want"
    fi
    if [ -z "$why" ]; then ok "$name"
    else bad "$name: $why (exit $rc)"; head -c 2000 "$tmp/err" | head -n 8 | sed 's/^/  /'; fi
}

# expect_ok NAME CMD...: exit 0, no sanitizer report.
expect_ok() {
    local name=$1; shift
    run "$@"
    if [ "$rc" -eq 0 ] && ! grep -qE 'Sanitizer|runtime error' "$tmp/err" && [ "$ms" -le $((MAX_S * 1000)) ]; then
        ok "$name"
    else bad "$name (exit $rc, ${ms} ms)"; head -n 8 "$tmp/err" | sed 's/^/  /'; fi
}

# ok_base plus a tensor no model code reads, holding +inf: only --check-weights sees it.
mkdir -p "$tmp/extra_inf" && cp "$BAD/ok_base/config.json" "$tmp/extra_inf/"
python3 - "$BAD/ok_base/model.safetensors" "$tmp/extra_inf/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h, data = json.loads(raw[8:8 + n]), raw[8 + n:]
h["model.layers.9.extra"] = {"dtype": "F32", "shape": [2], "data_offsets": [len(data), len(data) + 8]}
data += struct.pack("<2I", 0x3f800000, 0x7f800000)
t = json.dumps(h).encode()
t += b" " * (-len(t) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(t)) + t + data)
PY

if [ ! -f "$BAD/cases.tsv" ]; then
    echo "test_bad_input.sh: $BAD/cases.tsv missing (run python3 tests/bad/make_bad.py)"
    echo "test_bad_input.sh: 0 passed, 1 failed, 0 skipped"; exit 1
fi

# ---- the corpus ----
ncases=0
while IFS=$'\t' read -r c want; do
    case "$c" in ''|'#'*) continue ;; esac
    ncases=$((ncases + 1))
    if [ ! -d "$BAD/$c" ]; then bad "$c: directory missing"; continue; fi
    if [ "$want" = OK ]; then
        expect_ok "$c: info" info "$BAD/$c"
        expect_ok "$c: logits" logits "$BAD/$c" --ids 0,1,2,3 --threads 2 --out "$tmp/$c.f32"
        expect_ok "$c: info --check-weights" info "$BAD/$c" --check-weights
    elif [ "${want#FORWARD }" != "$want" ]; then
        # non-finite weights in a big matrix: loads, but no NaN reaches the user
        want=${want#FORWARD }
        tensor=${want#*\'}; tensor=${tensor%%\'*}
        expect_ok "$c: info" info "$BAD/$c"
        expect_fail "$c: logits" "$want" logits "$BAD/$c" --ids 0,1 --threads 2
        expect_fail "$c: logits --out" "$want" logits "$BAD/$c" --ids 0,1 --out "$tmp/$c.f32"
        [ -e "$tmp/$c.f32" ] && bad "$c: logits --out wrote the file" || ok "$c: logits --out wrote nothing"
        expect_fail "$c: generate" "$want" generate "$BAD/$c" --ids 0,1 -n 5 --threads 2
        [ -s "$tmp/out" ] && bad "$c: generate printed ids: $(head -c 80 "$tmp/out")" || ok "$c: generate printed nothing"
        expect_fail "$c: info --check-weights" "tensor '$tensor' has" info "$BAD/$c" --check-weights
    else
        expect_fail "$c: info" "$want" info "$BAD/$c"
        expect_fail "$c: logits" "$want" logits "$BAD/$c" --ids 0,1 --threads 2
    fi
done <"$BAD/cases.tsv"
[ "$ncases" -ge 100 ] && ok "corpus has $ncases cases" || bad "corpus has only $ncases cases"

# --check-weights progress, stderr not a terminal: plain lines, the last at 100%.
run info "$BAD/ok_base" --check-weights
if [ "$rc" -eq 0 ] && grep -qE '^check-weights: +[0-9]+% \(.* of .*, .*/s, ETA' "$tmp/err.all" &&
   [ "$(grep '^check-weights:' "$tmp/err.all" | tail -1 | grep -c '100%')" -eq 1 ] && ! grep -q $'\r' "$tmp/err.all" &&
   grep -q '^weights      every value finite' "$tmp/out"; then ok "check-weights: plain progress lines, then the summary"
else bad "check-weights progress"; sed 's/^/  /' "$tmp/err.all" | head -5; fi

for c in ok_unaligned ok_sharded; do
    if [ -f "$tmp/$c.f32" ] && cmp -s "$tmp/ok_base.f32" "$tmp/$c.f32"; then ok "$c: same logits as ok_base"
    else bad "$c: logits differ from ok_base"; fi
done
expect_fail "generate on a broken checkpoint" "has NaN at element 3" generate "$BAD/model_nan_norm" --ids 0,1 -n 2
W="the output of 'model.layers.0.mlp.down_proj.weight' (layer 0"
expect_fail "bench on non-finite weights" "$W" bench "$BAD/model_nan_mlp" --prompt 4 --gen 2 --reps 1
expect_fail "generate --samples on non-finite weights" "$W" generate "$BAD/model_nan_mlp" --ids 0,1 -n 2 --samples 2
expect_fail "logits --attn latent on non-finite weights" "$W" logits "$BAD/model_nan_mlp" --ids 0,1,2 --attn latent --chunk 1
expect_fail "generate --attn naive, kv_b" "the output of 'model.layers.0.self_attn.kv_b_proj.weight' (layer 0" \
    generate "$BAD/model_nan_kv_b" --ids 0,1 -n 2 --attn naive
expect_fail "generate --attn latent, kv_b (absorbed)" "'model.layers.0.self_attn.kv_b_proj.weight' (absorbed into the attention)" \
    generate "$BAD/model_nan_kv_b" --ids 0,1 -n 2 --attn latent
expect_fail "check-weights: a tensor the model does not use" "tensor 'model.layers.9.extra' has inf at element 1" \
    info "$tmp/extra_inf" --check-weights
expect_fail "bench on a broken checkpoint" "past the data section" bench "$BAD/st_truncated" --prompt 4 --gen 2

# ---- files that are not what they seem ----
mkdir -p "$tmp/fifo_cfg" "$tmp/fifo_st" "$tmp/dir_st"
mkfifo "$tmp/fifo_cfg/config.json"
cp "$BAD/ok_base/config.json" "$tmp/fifo_st/" && mkfifo "$tmp/fifo_st/model.safetensors"
cp "$BAD/ok_base/config.json" "$tmp/dir_st/" && mkdir "$tmp/dir_st/model.safetensors"
expect_fail "config.json is a FIFO (no hang)" "config.json: not a regular file" info "$tmp/fifo_cfg"
expect_fail "model.safetensors is a FIFO (no hang)" "model.safetensors: not a regular file" info "$tmp/fifo_st"
expect_fail "model.safetensors is a directory" "model.safetensors: not a regular file" info "$tmp/dir_st"
expect_fail "MODEL_DIR does not exist" "config.json: cannot open: No such file or directory" info "$tmp/nowhere"
expect_fail "MODEL_DIR is a file" "config.json: cannot open: Not a directory" info "$BAD/cases.tsv"

# ---- CLI misuse ----
M=$BAD/ok_base
expect_fail "info: missing MODEL_DIR" "lemma info: missing MODEL_DIR" info
expect_fail "logits: missing MODEL_DIR" "lemma logits: missing MODEL_DIR (see lemma logits --help)" logits --ids 0,1
expect_fail "logits: missing --ids" "lemma logits: missing --ids IDS (see lemma logits --help)" logits "$M"
expect_fail "generate: missing --ids" "lemma generate: missing --ids IDS or --prompt TEXT" generate "$M"
expect_fail "bench: missing MODEL_DIR" "lemma bench: missing MODEL_DIR" bench --prompt 4
expect_fail "--ids 1,,2" "--ids expects comma-separated token ids, got '1,,2' (bad id at character 2)" logits "$M" --ids 1,,2
expect_fail "--ids -1" "got '-1' (bad id at character 0)" logits "$M" --ids -1
expect_fail "--ids x" "got 'x' (bad id at character 0)" logits "$M" --ids x
expect_fail "--ids 1," "bad id at character 2" logits "$M" --ids 1,
expect_fail "--ids empty" "got '' (bad id at character 0)" logits "$M" --ids ''
expect_fail "--ids 1.5" "bad id at character 0" logits "$M" --ids 1.5
expect_fail "--ids 2^31" "got '0,2147483648' (bad id at character 2)" logits "$M" --ids 0,2147483648
expect_fail "--ids 10^30" "bad id at character 0" logits "$M" --ids 1000000000000000000000000000000
expect_fail "--ids 16 (vocab 16)" "token id 16 at position 1 is out of range (vocab_size 16)" logits "$M" --ids 0,16
expect_fail "--ids 2^31-1" "token id 2147483647 at position 0 is out of range" logits "$M" --ids 2147483647
expect_fail "generate --ids 16" "token id 16 at position 0 is out of range" generate "$M" --ids 16 -n 2
expect_fail "--ids without a value" "lemma logits: --ids needs a value (IDS)" logits "$M" --ids
expect_fail "--threads 0" "lemma logits: --threads expects an integer in 1..1024, got '0'" logits "$M" --ids 0 --threads 0
expect_fail "--threads -1" "--threads expects an integer in 1..1024, got '-1'" logits "$M" --ids 0 --threads -1
expect_fail "--threads abc" "--threads expects an integer in 1..1024, got 'abc'" logits "$M" --ids 0 --threads abc
expect_fail "--threads 10^20" "expects an integer in 1..1024, got '100000000000000000000'" generate "$M" --ids 0 --threads 100000000000000000000
expect_fail "--threads=0" "lemma bench: --threads expects an integer in 1..1024, got '0'" bench "$M" --threads=0
expect_fail "--chunk 0" "--chunk expects an integer in 1..1048576, got '0'" logits "$M" --ids 0 --chunk 0
expect_fail "--attn bogus" "--attn expects one of naive, latent, got 'bogus'" logits "$M" --ids 0 --attn bogus
expect_fail "logits: unknown option" "lemma logits: unknown option '--bogus' (see lemma logits --help)" logits "$M" --ids 0 --bogus
expect_fail "info: unknown option" "unknown option '--bogus'" info "$M" --bogus
expect_fail "info: extra argument" "lemma info: unexpected argument 'extra' (see lemma info --help)" info "$M" extra
expect_fail "info --ctx 0" "--ctx expects an integer in 1..1073741824, got '0'" info "$M" --ctx 0
expect_fail "generate -n -1" "lemma generate: -n expects an integer in 1..16777216, got '-1'" generate "$M" --ids 0 -n -1
expect_fail "generate --temperature nan" "--temperature expects a number in 0..100, got 'nan'" generate "$M" --ids 0 --temperature nan
expect_fail "generate --top-p 2" "--top-p expects a number in 0..1, got '2'" generate "$M" --ids 0 --top-p 2
expect_fail "logits --out to a missing directory" "cannot create" logits "$M" --ids 0 --out "$tmp/no/such/dir/x.f32"

echo "test_bad_input.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
