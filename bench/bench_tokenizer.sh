#!/usr/bin/env bash
# bench/bench_tokenizer.sh — tokenizer encode throughput, beside its anchors.
#
#   bash bench/bench_tokenizer.sh            # ~1-2 min on 2 cores
#   TOK_BENCH_QUICK=1 bash bench/bench_tokenizer.sh   # 1 run each, 5 MB corpus
#
# 1. Builds (once) build/bench-tokenizer/mixed.txt: the whole King James Bible
#    (Debian bible-kjv: `bible gen1:1-rev22:21`) followed by the texts of the
#    347 DeepSeek-V3 reference cases (prose, code, LaTeX, CJK, emoji, long
#    runs, ...) repeated up to TOK_BENCH_MB (default 20) MB; and kjv.txt.
# 2. lemma: `lemma tokenize DIR --file F --bench 3`, one thread, the whole
#    file in one call; MB/s of UTF-8 input per second of CPU time, median of 3.
# 3. Anchors, same files, same run, when node and the npm packages are there:
#    `tokenizers` 0.23.2 (Hugging Face's Rust tokenizer via N-API, the same
#    DeepSeek-V3 tokenizer.json — the reference) and `tiktoken` 1.0.22 (WASM,
#    cl100k_base), both one thread (RAYON_NUM_THREADS=1), fed in ~4 KiB
#    chunks (bench/tokenizer/anchors.js). They are looked for in
#    $TOK_NODE_MODULES, build/node/node_modules and npm's global root; when
#    missing they are installed into build/node (TOK_BENCH_NO_INSTALL=1
#    prevents that), and when that fails the anchors are skipped visibly.
# 4. Linearity: one pre-token made of a run of emoji (4-byte UTF-8) and of
#    katakana at 64 KiB, 256 KiB and 1 MB: MB/s must stay flat.
# Prints a table; every measurement is a JSON line in build/bench/tokenizer.jsonl.
#
# Environment: LEMMA_BIN (./lemma), LEMMA_SHARED (../shared), TOK_BENCH_MB (20),
# TOK_BENCH_RUNS (3), TOK_NODE_MODULES, TOK_BENCH_NO_INSTALL.
set -u
cd "$(dirname "$0")/.."
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
TOKDIR=$SHARED/data/tokenizer/deepseek-v3
CASES=$SHARED/data/tokenizer/deepseek-v3-cases.jsonl
WORK=build/bench-tokenizer
OUT=build/bench
RESULTS=$OUT/tokenizer.jsonl
MB=${TOK_BENCH_MB:-20}
RUNS=${TOK_BENCH_RUNS:-3}
if [ "${TOK_BENCH_QUICK:-0}" = 1 ]; then MB=${TOK_BENCH_MB:-5}; RUNS=1; fi

die() { echo "bench_tokenizer: $*" >&2; exit 1; }
[ -x "$LEMMA" ] || die "$LEMMA not found (run make first)"
[ -f "$TOKDIR/tokenizer.json" ] || die "$TOKDIR/tokenizer.json not found (set LEMMA_SHARED)"
command -v python3 >/dev/null || die "python3 is needed to build the corpus and print the table"
mkdir -p "$WORK" "$OUT"
: >"$RESULTS"

# ---- corpus -------------------------------------------------------------------
KJV=$WORK/kjv.txt
MIXED=$WORK/mixed-${MB}mb.txt
if [ ! -s "$KJV" ]; then
    if command -v bible >/dev/null; then
        bible gen1:1-rev22:21 >"$KJV.tmp" 2>/dev/null && mv "$KJV.tmp" "$KJV"
    fi
    [ -s "$KJV" ] || echo "bench_tokenizer: 'bible' (Debian bible-kjv) not found: the corpus has no KJV part" >&2
fi
if [ ! -s "$MIXED" ]; then
    python3 - "$CASES" "$KJV" "$MIXED" "$MB" <<'EOF' || die "cannot build the corpus"
import json, os, sys
cases, kjv, out, mb = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
texts = []
for line in open(cases, encoding='utf-8'):
    r = json.loads(line)
    if 'bytes_hex' in r:
        continue
    texts.append(r['text'])
block = ('\n'.join(texts) + '\n').encode('utf-8')
head = open(kjv, 'rb').read() if os.path.exists(kjv) else b''
target = int(mb * 1e6)
with open(out + '.tmp', 'wb') as f:
    f.write(head)
    n = len(head)
    while n < target:
        f.write(block)
        n += len(block)
os.replace(out + '.tmp', out)
EOF
fi

record() { # name impl file json
    echo "{\"bench\":\"tokenizer\",\"case\":\"$1\",\"impl\":\"$2\",\"file\":\"$3\",\"result\":$4}" >>"$RESULTS"
}

# ---- lemma ----------------------------------------------------------------------
run_lemma() { # case file
    local j
    j=$("$LEMMA" tokenize "$TOKDIR" --file "$2" --bench "$RUNS") || die "lemma failed on $2"
    record "$1" lemma "$2" "$j"
}
echo "bench_tokenizer: lemma on $MIXED ($(wc -c <"$MIXED") bytes)" >&2
run_lemma mixed "$MIXED"
[ -s "$KJV" ] && run_lemma kjv "$KJV"

# ---- linearity --------------------------------------------------------------------
for kind in emoji kana; do
    for size in 65536 262144 1000000; do
        f=$WORK/run-$kind-$size.txt
        if [ ! -s "$f" ]; then
            if [ $kind = emoji ]; then ch=$'\xf0\x9f\x98\x80'; else ch=$'\xe3\x82\xa2'; fi
            python3 -c "import sys; c=sys.argv[1].encode('utf-8','surrogateescape'); n=int(sys.argv[2]); open(sys.argv[3],'wb').write(c*(n//len(c)))" "$ch" "$size" "$f"
        fi
        run_lemma "run-$kind-$size" "$f"
    done
done

# ---- anchors -------------------------------------------------------------------------
NODE_OK=0
find_modules() {
    for d in "${TOK_NODE_MODULES:-}" build/node/node_modules "$(npm root -g 2>/dev/null)"; do
        [ -n "$d" ] && [ -d "$d/tokenizers" ] && [ -d "$d/tiktoken" ] && { echo "$d"; return 0; }
    done
    return 1
}
if command -v node >/dev/null; then
    MODS=$(find_modules)
    if [ -z "$MODS" ] && [ -z "${TOK_BENCH_NO_INSTALL:-}" ] && command -v npm >/dev/null; then
        echo "bench_tokenizer: installing npm tokenizers@0.23.2 tiktoken@1.0.22 into build/node" >&2
        mkdir -p build/node
        timeout 300 npm install --prefix build/node --no-audit --no-fund tokenizers@0.23.2 tiktoken@1.0.22 >&2 || true
        MODS=$(find_modules)
    fi
    if [ -n "$MODS" ]; then NODE_OK=1; else echo "bench_tokenizer: SKIP anchors: npm packages tokenizers/tiktoken not available" >&2; fi
else
    echo "bench_tokenizer: SKIP anchors: node not found" >&2
fi
if [ $NODE_OK = 1 ]; then
    MODS=$(cd "$MODS" && pwd)
    run_anchor() { # case impl what file
        local j
        if j=$(RAYON_NUM_THREADS=1 NODE_PATH="$MODS" timeout 1200 node bench/tokenizer/anchors.js "$2" "$3" "$4" "$RUNS"); then
            record "$1" "$2" "$4" "$j"
        else
            echo "bench_tokenizer: anchor $2 failed on $4" >&2
        fi
    }
    echo "bench_tokenizer: anchors (node $(node --version))" >&2
    run_anchor mixed tokenizers "$TOKDIR/tokenizer.json" "$MIXED"
    run_anchor mixed tiktoken cl100k_base "$MIXED"
    if [ -s "$KJV" ]; then
        run_anchor kjv tokenizers "$TOKDIR/tokenizer.json" "$KJV"
        run_anchor kjv tiktoken cl100k_base "$KJV"
    fi
fi

# ---- table ---------------------------------------------------------------------------
python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
get = lambda case, impl: next((r['result'] for r in rows if r['case'] == case and r['impl'] == impl), None)
print('\ntokenizer encode, one thread, MB/s of UTF-8 input per CPU second (median)')
print(f"{'corpus':<22}{'implementation':<34}{'MB/s':>9}{'tokens':>12}{'vs tiktoken':>13}")
names = {'lemma': 'lemma (DeepSeek-V3)', 'tokenizers': 'HF tokenizers 0.23.2 (DeepSeek-V3)',
         'tiktoken': 'tiktoken 1.0.22 (cl100k_base)'}
for case in ['mixed', 'kjv']:
    tk = get(case, 'tiktoken')
    for impl in ['lemma', 'tokenizers', 'tiktoken']:
        r = get(case, impl)
        if not r:
            continue
        ratio = f"{r['mb_s_median'] / tk['mb_s_median']:.1f}x" if tk else 'n/a'
        print(f"{case + ' (%.1f MB)' % (r['bytes'] / 1e6):<22}{names[impl]:<34}{r['mb_s_median']:>9.2f}{r['tokens']:>12}{ratio:>13}")
    l, h = get(case, 'lemma'), get(case, 'tokenizers')
    if l and h:
        print(f"{'':<22}same token count as the reference: {'yes' if l['tokens'] == h['tokens'] else 'NO (%d vs %d)' % (l['tokens'], h['tokens'])}")
l = get('mixed', 'lemma')
if l:
    print(f"\nlemma: tokenizer load {l['load_ms']:.0f} ms, peak RSS {l['max_rss_mb']:.0f} MB")
print('\nlinearity: one pre-token of N bytes (lemma MB/s)')
for kind in ['emoji', 'kana']:
    cells = []
    for size in [65536, 262144, 1000000]:
        r = get(f'run-{kind}-{size}', 'lemma')
        if r:
            cells.append(f"{size // 1024 if size < 1000000 else 1000} {'KiB' if size < 1000000 else 'KB'}: {r['mb_s_median']:.1f}")
    print(f"  {kind:<6} " + '   '.join(cells))
print(f"\nresults: {sys.argv[1]}")
EOF
