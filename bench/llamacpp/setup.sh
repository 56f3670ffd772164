#!/bin/sh
# Install node-llama-cpp 3.21.1 (and only its linux-x64 CPU binaries) into DIR
# (default build/llamacpp-node) if it is not there yet.  Install scripts are
# not run, so nothing is compiled and nothing is fetched from GitHub: the
# prebuilt libraries of @node-llama-cpp/linux-x64 are used as published.
# Exit status 3 when node/npm/the registry is unavailable.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-$HERE/../../build/llamacpp-node}
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
VERSION=3.21.1

unavailable() { echo "llamacpp setup: unavailable: $*" >&2; exit 3; }

command -v node >/dev/null 2>&1 || unavailable "node is not installed"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 20 ] || unavailable "node >= 20 is needed (found $(node --version 2>/dev/null))"
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || unavailable "prebuilt binaries are pinned for linux-x64 only"

installed() {
    [ -f "$DIR/node_modules/node-llama-cpp/package.json" ] &&
    [ -d "$DIR/node_modules/@node-llama-cpp/linux-x64/bins" ] &&
    node -e 'const p=require(process.argv[1]); process.exit(p.version===process.argv[2]?0:1)' \
        "$DIR/node_modules/node-llama-cpp/package.json" "$VERSION"
}
installed && exit 0

command -v npm >/dev/null 2>&1 || unavailable "npm is not installed"
mkdir -p "$DIR"
cp "$HERE/package.json" "$DIR/package.json"
echo "llamacpp setup: npm install node-llama-cpp@$VERSION into $DIR" >&2
# --omit=optional: skip the CUDA/Vulkan/ARM binary packages; the x64 CPU one
# is a direct dependency in package.json.
if ! (cd "$DIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 600 \
        npm install --no-audit --no-fund --ignore-scripts --omit=optional --no-save >&2); then
    unavailable "npm install of node-llama-cpp@$VERSION failed (no registry access?)"
fi
installed || unavailable "node-llama-cpp@$VERSION did not install correctly under $DIR"
