#!/usr/bin/env bash
# test_tokenizer_hf.sh — parity with Hugging Face tokenizers (npm
# "tokenizers" 0.23.2, the Rust library through N-API), through node:
#   1. a tokenizer trained by `lemma tokenizer train` loads in HF and gives the
#      same ids as lemma on a test corpus (and HF decodes them back to the text);
#   2. training twice gives byte-identical files;
#   3. DeepSeek-V3's tokenizer (../shared) gives the same ids in lemma and HF on
#      3,000 random texts that stress the pre-tokenizer (bench/tokenizer/gen_random.js);
#   4. the generic path: DeepSeek-V3's regexes made unrecognisable to the hand
#      scanner (so PCRE2 runs them), and a Qwen2-style tokenizer (NFC normalizer,
#      Qwen2's Split regex) made from the trained one: same ids as HF on 2,000
#      random texts each.
# Skips visibly without node, without the npm package (looked for in
# $TOK_NODE_MODULES, build/node/node_modules, npm's global root; installed into
# build/node when npm can reach the registry, unless TOK_NO_INSTALL=1), and
# part 3 without ../shared.
set -u
cd "$(dirname "$0")/../.."
LEMMA=${LEMMA_BIN:-./lemma}
SHARED=${LEMMA_SHARED:-../shared}
NAME=test_tokenizer_hf
pass=0; fail=0; skip=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
skp() { echo "skip $1: $2"; skip=$((skip + 1)); }
report() { echo "$NAME: $pass passed, $fail failed, $skip skipped"; exit $([ $fail -eq 0 ] && echo 0 || echo 1); }

if ! command -v node >/dev/null; then
    skp hf_trained "node not found"; skp determinism "node not found"; skp hf_deepseek_random "node not found"; report
fi
find_modules() {
    for d in "${TOK_NODE_MODULES:-}" build/node/node_modules "$(npm root -g 2>/dev/null)"; do
        [ -n "$d" ] && [ -d "$d/tokenizers" ] && { echo "$d"; return 0; }
    done
    return 1
}
MODS=$(find_modules)
if [ -z "$MODS" ] && [ -z "${TOK_NO_INSTALL:-}" ] && command -v npm >/dev/null; then
    mkdir -p build/node
    timeout 180 npm install --prefix build/node --no-audit --no-fund tokenizers@0.23.2 >/dev/null 2>&1
    MODS=$(find_modules)
fi
if [ -z "$MODS" ]; then
    skp hf_trained "npm package 'tokenizers' not available"; skp determinism "npm package 'tokenizers' not available"
    skp hf_deepseek_random "npm package 'tokenizers' not available"; report
fi
MODS=$(cd "$MODS" && pwd)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
nodejs() { NODE_PATH="$MODS" node "$@"; }

# ---- 1 + 2: a trained tokenizer ----------------------------------------------------
nodejs bench/tokenizer/gen_random.js 11 4000 60 >"$T/train.jsonl"
nodejs -e 'const fs=require("fs");const o=fs.readFileSync(process.argv[1],"utf8").trim().split("\n").map(l=>JSON.parse(l).text).join("\n");fs.writeFileSync(process.argv[2],o+"\n")' "$T/train.jsonl" "$T/corpus.txt"
CORPUS=("$T/corpus.txt")
if command -v bible >/dev/null; then bible gen1:1-exo40:38 >"$T/kjv.txt" 2>/dev/null && CORPUS+=("$T/kjv.txt"); fi
nodejs bench/tokenizer/gen_random.js 12 1500 60 >"$T/test.jsonl"
if [ -s "$T/kjv.txt" ]; then
    head -c 200000 "$T/kjv.txt" | nodejs -e 'const l=require("fs").readFileSync(0,"utf8").split("\n\n");for(const p of l)if(p)console.log(JSON.stringify({text:p}))' >>"$T/test.jsonl"
fi
if "$LEMMA" tokenizer train "${CORPUS[@]}" --vocab 3000 --out "$T/tok1" --quiet &&
   "$LEMMA" tokenizer train "${CORPUS[@]}" --vocab 3000 --out "$T/tok2" --quiet; then
    if cmp -s "$T/tok1/tokenizer.json" "$T/tok2/tokenizer.json" && cmp -s "$T/tok1/tokenizer_config.json" "$T/tok2/tokenizer_config.json"; then
        ok determinism
    else
        bad determinism "two trainings on the same corpus differ"
    fi
    "$LEMMA" tokenize "$T/tok1" --jsonl "$T/test.jsonl" >"$T/lemma.jsonl"
    if nodejs bench/tokenizer/hf_encode.js "$T/tok1/tokenizer.json" "$T/test.jsonl" --decode >"$T/hf.jsonl" 2>"$T/hf.err"; then
        r=$(nodejs -e '
const fs=require("fs");const rd=f=>fs.readFileSync(f,"utf8").trim().split("\n").map(l=>JSON.parse(l));
const [a,b,t]=[rd(process.argv[1]),rd(process.argv[2]),rd(process.argv[3])];
let bad=0,badtext=0,first=-1,n=0;
for(let i=0;i<t.length;i++){n+=b[i].ids.length;if(JSON.stringify(a[i].ids)!==JSON.stringify(b[i].ids)){bad++;if(first<0)first=i}
 if(b[i].text!==t[i].text)badtext++}
console.log(`${t.length} ${bad} ${badtext} ${first} ${n}`)' "$T/lemma.jsonl" "$T/hf.jsonl" "$T/test.jsonl")
        set -- $r
        if [ "$2" = 0 ] && [ "$3" = 0 ] && [ "$1" -gt 1000 ]; then
            ok "hf_trained ($1 texts, $5 tokens: HF ids == lemma ids, HF decode == text)"
        else
            bad hf_trained "$2 of $1 texts differ (first at line $(( $4 + 1 ))), $3 HF decodes differ from the text"
        fi
    else
        bad hf_trained "HF could not load or encode with the trained tokenizer.json: $(head -c 300 "$T/hf.err")"
    fi
else
    bad determinism "lemma tokenizer train failed"; bad hf_trained "lemma tokenizer train failed"
fi

# ---- 3: DeepSeek-V3 on random texts ----------------------------------------------------
DS=$SHARED/data/tokenizer/deepseek-v3
if [ -f "$DS/tokenizer.json" ]; then
    nodejs bench/tokenizer/gen_random.js 99 3000 60 >"$T/r.jsonl"
    "$LEMMA" tokenize "$DS" --jsonl "$T/r.jsonl" >"$T/ds_lemma.jsonl"
    if nodejs bench/tokenizer/hf_encode.js "$DS/tokenizer.json" "$T/r.jsonl" >"$T/ds_hf.jsonl" 2>"$T/hf.err"; then
        if cmp -s "$T/ds_lemma.jsonl" "$T/ds_hf.jsonl"; then
            ok "hf_deepseek_random (3000 random texts, identical ids)"
        else
            n=$(diff "$T/ds_lemma.jsonl" "$T/ds_hf.jsonl" | grep -c '^<')
            bad hf_deepseek_random "$n of 3000 texts differ; first: $(diff "$T/ds_lemma.jsonl" "$T/ds_hf.jsonl" | head -3 | tr '\n' ' ' | head -c 300)"
        fi
    else
        bad hf_deepseek_random "HF failed: $(head -c 300 "$T/hf.err")"
    fi
else
    skp hf_deepseek_random "$DS is absent"
fi

# ---- 4: generic pipeline (PCRE2 + NFC) --------------------------------------------------
compare() { # name dir texts
    "$LEMMA" tokenize "$2" --jsonl "$3" >"$T/g_lemma.jsonl"
    if nodejs bench/tokenizer/hf_encode.js "$2/tokenizer.json" "$3" >"$T/g_hf.jsonl" 2>"$T/hf.err"; then
        if cmp -s "$T/g_lemma.jsonl" "$T/g_hf.jsonl"; then
            ok "$1 ($(wc -l <"$3") random texts, identical ids)"
        else
            bad "$1" "$(diff "$T/g_lemma.jsonl" "$T/g_hf.jsonl" | grep -c '^<') texts differ"
        fi
    else
        bad "$1" "HF failed: $(head -c 300 "$T/hf.err")"
    fi
}
nodejs bench/tokenizer/gen_random.js 5 2000 60 >"$T/g.jsonl"
if [ -f "$T/tok1/tokenizer.json" ]; then
    mkdir -p "$T/qwen"
    nodejs -e '
const fs=require("fs");const t=JSON.parse(fs.readFileSync(process.argv[1],"utf8"));
t.normalizer={type:"NFC"};
t.pre_tokenizer={type:"Sequence",pretokenizers:[{type:"Split",pattern:{Regex:"(?i:\x27s|\x27t|\x27re|\x27ve|\x27m|\x27ll|\x27d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},behavior:"Isolated",invert:false},
 {type:"ByteLevel",add_prefix_space:false,trim_offsets:false,use_regex:false}]};
fs.writeFileSync(process.argv[2],JSON.stringify(t));' "$T/tok1/tokenizer.json" "$T/qwen/tokenizer.json"
    compare hf_generic_nfc_qwen2_regex "$T/qwen" "$T/g.jsonl"
else
    bad hf_generic_nfc_qwen2_regex "no trained tokenizer"
fi
if [ -f "$DS/tokenizer.json" ]; then
    mkdir -p "$T/dsg"
    nodejs -e '
const fs=require("fs");const t=JSON.parse(fs.readFileSync(process.argv[1],"utf8"));
for(const p of t.pre_tokenizer.pretokenizers.slice(0,3))p.pattern.Regex="(?:"+p.pattern.Regex+")";
fs.writeFileSync(process.argv[2],JSON.stringify(t));' "$DS/tokenizer.json" "$T/dsg/tokenizer.json"
    compare hf_generic_deepseek_pcre2 "$T/dsg" "$T/g.jsonl"
else
    skp hf_generic_deepseek_pcre2 "$DS is absent"
fi
report
