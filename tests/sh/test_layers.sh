#!/usr/bin/env bash
# test_layers.sh — the folders of src/ form layers: a folder includes its own
# headers and those of the folders below it, never above, so there is no
# include cycle between folders. The order, lowest first:
#
#   core       errors, buffers, UTF-8, file I/O, SHA-256, kernels, threads
#   formats    JSON (reader, writer), safetensors
#   tokenizer  tokenizer.json, encode/decode, chat format, BPE training
#   tasks      the synthetic theorem domains (generators and checkers)
#   model      config, weights, the inference forward
#   data       token shards (lemma data), windows for training
#   infer      sampling, generation
#   train      the trainer
#   prove      the proof pipeline (generate, verify, refine)
#   serve      lemma serve: the OpenAI-compatible HTTP server on the engine
#   recipe     recipes, lemma build, lemma.lock
#   cli        the commands
#
# Folders on the same footing (tokenizer/tasks/model, data/infer) may be
# reordered among themselves when a new include needs it; an include that
# would close a cycle cannot be fixed that way: move the shared piece down.
# The check itself is tests/sh/layers.awk; this file runs it on src/ and on
# small trees that must fail.
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh

LAYERS="core formats tokenizer tasks model data infer train prove serve recipe cli"

# FROM<TAB>TO<TAB>FILE:LINE for every #include "..." in ROOT/<folder>/,
# sorted so that the report is the same on every machine.
edges() {
    local root=$1
    grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' --include='*.c' --include='*.h' --include='*.inc' "$root" |
        awk -v root="$root/" '{
            file = $0; sub(/:.*/, "", file)
            rest = substr($0, length(file) + 2); line = rest; sub(/:.*/, "", line)
            inc = rest; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
            rel = substr(file, length(root) + 1); from = rel; sub(/\/.*/, "", from)
            to = inc ~ /\// ? inc : from "/" inc; sub(/\/.*/, "", to)
            if (rel ~ /\//) printf "%s\t%s\t%s:%s\n", from, to, file, line
        }' | sort
}
check_layers() { edges "$1" | awk -v layers="$2" -f tests/sh/layers.awk; }

# The real tree.
if check_layers src "$LAYERS" >"$tmp/out" 2>&1; then ok "src/ follows the layers ($LAYERS)"
else bad "src/ follows the layers"; sed 's/^/  /' "$tmp/out"; fi
n=$(edges src | awk -F'\t' '$1 != $2' | wc -l)
[ "$n" -gt 100 ] && ok "the include graph was read ($n includes between folders)" || bad "the include graph was read (only $n includes between folders)"

# Trees that must fail, with the message that says why.
mk() { mkdir -p "$(dirname "$1")"; printf '%b' "$2" >"$1"; }
t1=$tmp/cycle
mk "$t1/a/a.h" '#include "b/b.h"\n'
mk "$t1/b/b.h" '#include "c/c.h"\n'
mk "$t1/c/c.c" '#include "c/c.h"\n#include "a/a.h"\n'
mk "$t1/c/c.h" '#include <stdio.h>\n'
check_fails "a cycle of three folders is found and printed" \
    "include cycle: c -> a -> b -> c (c: $t1/c/c.c:2, a: $t1/a/a.h:1, b: $t1/b/b.h:1)" check_layers "$t1" "c b a"

t2=$tmp/upward
mk "$t2/low/x.c" '#include "low/x.h"\n  #  include "high/y.h" /* an upward include */\n'
mk "$t2/low/x.h" ''
mk "$t2/high/y.h" ''
check_fails "an include of a higher folder (no cycle) names the file and line" \
    "$t2/low/x.c:2: low includes high, which is not below it" check_layers "$t2" "low high"
if check_layers "$t2" "low high" | grep -q "include cycle"; then bad "an upward include alone is not called a cycle"
else ok "an upward include alone is not called a cycle"; fi

t3=$tmp/unlisted
mk "$t3/core/a.h" ''
mk "$t3/extra/b.c" '#include "core/a.h"\n#include "b.h"\n'
check_fails "a folder missing from the layer list" "folder extra is not in the layer list" check_layers "$t3" "core"
check "a same-folder include without a folder name is fine" check_layers "$t3" "core extra"

echo "test_layers.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
