#!/usr/bin/env bash
# Installs the Debian packages lemma needs to build, test and benchmark.
# Run as root on Debian 12 (fresh machines); skips what is present.
# `install-deps.sh --list` prints the package names (.ci/run installs them).
set -eu
build_pkgs="gcc make libc6-dev libpcre2-dev libcurl4-openssl-dev libmicrohttpd-dev openmpi-bin libopenmpi-dev bible-kjv"  # bible-kjv: the corpus of recipes/default.json; openmpi: `mpirun -np K lemma train` (optional: lemma builds without it)
test_pkgs="python3 python3-numpy clang libclang-rt-14-dev nodejs npm"  # nodejs, npm: the openai client in test_serve_openai.sh
extra_pkgs="${LEMMA_EXTRA_PKGS:-}"
# Node from another source counts as installed: nodesource's nodejs bundles npm and
# conflicts with Debian's npm package, so asking apt for either would fail there.
node_present() {
    case $1 in nodejs) command -v node >/dev/null ;; npm) command -v npm >/dev/null ;; *) return 1 ;; esac
}
if [ "${1:-}" = "--list" ]; then  # the package names, for .ci/run
    list=""
    for p in $build_pkgs $test_pkgs $extra_pkgs; do node_present "$p" || list="$list $p"; done
    echo $list
    exit 0
fi
want=""
for p in $build_pkgs $test_pkgs $extra_pkgs; do
    node_present "$p" && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
done
if [ -n "$want" ]; then
    echo "installing:$want" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want
fi
