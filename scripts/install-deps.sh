#!/usr/bin/env bash
# Installs the Debian packages lemma needs to build, test and benchmark.
# Run as root on Debian 12 (CI and fresh machines); skips what is present.
set -eu
build_pkgs="gcc make libc6-dev libpcre2-dev bible-kjv"  # bible-kjv: the corpus of recipes/default.json
test_pkgs="python3 python3-numpy clang libclang-rt-14-dev"
extra_pkgs="${LEMMA_EXTRA_PKGS:-}"
want=""
for p in $build_pkgs $test_pkgs $extra_pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
done
if [ -n "$want" ]; then
    echo "installing:$want" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want
fi
