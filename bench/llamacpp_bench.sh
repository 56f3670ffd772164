#!/bin/sh
# llama.cpp anchor for lemma's benchmarks: the same checkpoint, converted to
# GGUF, run through llama.cpp v0.4.0 as shipped in node-llama-cpp@3.21.1
# (prebuilt CPU libraries from npm; nothing is built or downloaded from GitHub).
#
#   bench/llamacpp_bench.sh MODEL_DIR --threads N [--prompt 512] [--gen 128] [--reps 3]
#   bench/llamacpp_bench.sh MODEL_DIR --threads N --batch 1,4,16,64 [--prompt 128] [--gen 64] [--reps 1]
#
# Prints ONE JSON line on stdout:
#   {"prefill_tok_s":..,"decode_tok_s":..,"llama_cpp":"v0.4.0",...}
# or, with --batch, one line per batch size B (bench.mjs batched: B sequences,
# one token each per llama_decode, as llama-batched-bench):
#   {"batch":B,"prefill_tok_s":..,"decode_tok_s":..,"decode_calls_per_step":1,...}
# Everything else goes to stderr.  Exit status 3 (with a message) when node,
# npm or the package is unavailable; 1 on other errors.
#
# Side effects, all under build/ (ignored by git):
#   build/llamacpp-node/   npm install of bench/llamacpp/package.json (once)
#   build/gguf/<name>.gguf `lemma export` of the checkpoint (once per MODEL_DIR name;
#                          rebuilt when model.safetensors or config.json is newer)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE_DIR=${LLAMACPP_NODE_DIR:-$ROOT/build/llamacpp-node}
GGUF_DIR=${LLAMACPP_GGUF_DIR:-$ROOT/build/gguf}

die() { echo "llamacpp_bench: $*" >&2; exit "${2:-1}"; }
unavailable() { echo "llamacpp_bench: unavailable: $*" >&2; exit 3; }

[ $# -ge 1 ] || die "usage: $0 MODEL_DIR --threads N [--prompt 512] [--gen 128] [--reps 3] [--batch 1,4,16,64 [--check-queue]]"
MODEL=$1; shift
THREADS=1 PROMPT= GEN= REPS= BATCH= EXTRA=
while [ $# -gt 0 ]; do
    case $1 in
        --threads) THREADS=$2; shift 2 ;;
        --prompt)  PROMPT=$2; shift 2 ;;
        --gen)     GEN=$2; shift 2 ;;
        --reps)    REPS=$2; shift 2 ;;
        --batch)   BATCH=$2; shift 2 ;;
        --check-queue) EXTRA="--check-queue 1"; shift ;;
        *) die "unknown option $1" ;;
    esac
done
[ -f "$MODEL/config.json" ] || die "$MODEL: no config.json"
if [ -n "$BATCH" ]; then PROMPT=${PROMPT:-128} GEN=${GEN:-64} REPS=${REPS:-1}
else PROMPT=${PROMPT:-512} GEN=${GEN:-128} REPS=${REPS:-3}; fi

# --- node-llama-cpp -----------------------------------------------------------
"$ROOT/bench/llamacpp/setup.sh" "$NODE_DIR" >&2 || exit $?

# --- GGUF (lemma export) -------------------------------------------------------
LEMMA=${LEMMA_BIN:-$ROOT/lemma}
[ -x "$LEMMA" ] || die "$LEMMA not built (make)"
NAME=$(basename "$(cd "$MODEL" && pwd)")
GGUF=$GGUF_DIR/$NAME.gguf
mkdir -p "$GGUF_DIR"
stale=0
[ -f "$GGUF" ] || stale=1
for f in "$MODEL"/config.json "$MODEL"/*.safetensors; do
    [ -f "$f" ] && [ "$f" -nt "$GGUF" ] && stale=1
done
if [ $stale = 1 ]; then
    rm -f "$GGUF"   # this folder is the benchmark's own (a converter of earlier versions wrote it too)
    "$LEMMA" export "$MODEL" "$GGUF" >&2 || die "lemma export of $MODEL failed"
fi

# --- run --------------------------------------------------------------------
if [ -n "$BATCH" ]; then
    # shellcheck disable=SC2086 # EXTRA is empty or two words
    LLAMACPP_NODE_DIR=$NODE_DIR exec node "$ROOT/bench/llamacpp/bench.mjs" batched \
        --model "$GGUF" --threads "$THREADS" --batch "$BATCH" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" $EXTRA
fi
LLAMACPP_NODE_DIR=$NODE_DIR exec node "$ROOT/bench/llamacpp/bench.mjs" bench \
    --model "$GGUF" --threads "$THREADS" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS"
