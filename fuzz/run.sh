#!/usr/bin/env bash
# fuzz/run.sh — build and run libFuzzer targets for a bounded time.
#
#   bash fuzz/run.sh fuzz/fuzz_*.c            # what `make fuzz` runs
#   FUZZ_SECONDS=60 bash fuzz/run.sh fuzz/fuzz_json.c
#
# Each fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput. It is compiled with
# clang -fsanitize=fuzzer,address,undefined (UB aborts) and linked with every
# library source (src/**/*.c except src/cli/, built once into
# build/fuzz/liblemma_fuzz.a with the same sanitizers), giving
# build/fuzz/fuzz_<name>.
# Each then runs FUZZ_SECONDS (default 30) with -rss_limit_mb=2048 (a single
# malloc above that is reported as a crash too), from the corpus
# build/fuzz/corpus-<name>/ (kept between runs, never committed), seeded with
# the files its source names. A target declares, in its top comment:
#   FUZZ_SEEDS: glob ...     seed files, relative to the repository root
#                            (a backslash in a glob is dropped, so that
#                            "tests/*\/x.json" can be written in a C comment)
#   FUZZ_MAX_LEN: N          -max_len (default 4096)
#   FUZZ_DICT: path          a libFuzzer dictionary
# Without FUZZ_SEEDS a *json* target is seeded with tests/**/*.json, others
# start empty. Failing inputs land in build/fuzz/<name>-{crash,leak,timeout,
# oom}-<sha1>; the script prints one summary line per target and exits
# non-zero if any target failed to build or found a crash, leak, timeout or
# out-of-memory.
set -u
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
CC=${FUZZ_CC:-clang}
OUT=build/fuzz
FLAGS="-g -O1 -fno-omit-frame-pointer -std=gnu11 -Isrc -D_GNU_SOURCE -fsanitize=address,undefined -fno-sanitize-recover=undefined"
AVX2FL="-mavx2 -mfma -mf16c"
AVX512FL="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c"
LIBS="-lm -lpthread -lpcre2-8 -lcurl -lmicrohttpd"  # as the Makefile's LDLIBS

if [ $# -eq 0 ]; then echo "usage: bash fuzz/run.sh fuzz/fuzz_NAME.c ..." >&2; exit 2; fi
if ! command -v "$CC" >/dev/null; then echo "fuzz/run.sh: $CC not found (apt-get install clang)" >&2; exit 2; fi
mkdir -p "$OUT"

# ---- the library, rebuilt when any source or header is newer than the
# archive. Under a lock (several sessions may fuzz at once); built in a
# private directory, then moved into place. A source clang cannot compile is
# left out with a warning: only targets that need it then fail to link. ----
lib=$OUT/liblemma_fuzz.a
exec 9>"$OUT/.lock"
flock 9
if [ ! -f "$lib" ] || [ -n "$(find src -name '*.[ch]' -newer "$lib" -print -quit)" ] ||
   [ "$(find src -name '*.c' ! -path 'src/cli/*' | sort | md5sum)" != "$(cat "$OUT/lib.sources" 2>/dev/null)" ]; then
    echo "fuzz: building the library with $CC (fuzzer-no-link, ASan, UBSan)"
    objdir=$(mktemp -d "$OUT/obj.XXXXXX")
    compile() { # src objdir
        local s=$1 o=$2/$(echo "${1%.c}" | tr / _).o extra=""
        case "$s" in *_avx512.c) extra=$AVX512FL ;; *_avx2.c) extra=$AVX2FL ;; esac
        # shellcheck disable=SC2086
        $CC $FLAGS -fsanitize=fuzzer-no-link $extra -c "$s" -o "$o" 2>"$o.log" ||
            { echo "fuzz: warning: $s does not compile with $CC, left out:"; head -n 5 "$o.log"; }
    }
    export -f compile; export CC FLAGS AVX2FL AVX512FL
    find src -name '*.c' ! -path 'src/cli/*' | sort | xargs -P "$(nproc)" -I{} bash -c "compile {} $objdir"
    rm -f "$objdir.a"
    ar rcs "$objdir.a" "$objdir"/*.o && mv -f "$objdir.a" "$lib"
    find src -name '*.c' ! -path 'src/cli/*' | sort | md5sum >"$OUT/lib.sources"
    rm -rf "$objdir"
fi
flock -u 9

status=0
summary=()
for src in "$@"; do
    name=$(basename "$src" .c)
    bin=$OUT/$name
    # ---- build ----
    # shellcheck disable=SC2086
    # whole archive: every module of the library is linked into every target
    # (simplest to keep right; the registry no longer needs it)
    if ! $CC $FLAGS -fsanitize=fuzzer "$src" -Wl,--whole-archive "$lib" -Wl,--no-whole-archive $LIBS -o "$bin" \
        2>"$OUT/$name.build.log"; then
        cat "$OUT/$name.build.log"
        summary+=("$(printf '%-24s BUILD FAILED (see %s)' "$name" "$OUT/$name.build.log")")
        status=1; continue
    fi
    # ---- seeds ----
    meta() { sed -n "s/^.*$1: *//p" "$src" | head -n 1 | tr -d '\\'; }
    seeds=$(meta FUZZ_SEEDS); maxlen=$(meta FUZZ_MAX_LEN); dict=$(meta FUZZ_DICT)
    [ -z "$seeds" ] && case "$name" in *json*) seeds="tests/*.json tests/*/*.json tests/*/*/*.json" ;; esac
    corpus=$OUT/corpus-$name
    mkdir -p "$corpus"
    nseed=0
    for f in $seeds; do  # globs expand here
        [ -f "$f" ] || continue
        cp -n "$f" "$corpus/seed_$(echo "$f" | tr '/' '_')" 2>/dev/null
        nseed=$((nseed + 1))
    done
    args=(-max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -max_len="${maxlen:-4096}"
          -print_final_stats=1 -artifact_prefix="$OUT/$name-")
    [ -n "$dict" ] && [ -f "$dict" ] && args+=(-dict="$dict")
    # ---- run ----
    echo "fuzz: $name for ${SECS}s ($nseed seed files, corpus $(ls "$corpus" | wc -l))"
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$bin" "${args[@]}" "$corpus" >"$OUT/$name.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$OUT/$name.log" | tail -n 1 | cut -d' ' -f2)
    if [ $rc -eq 0 ]; then
        summary+=("$(printf '%-24s ok   %4ss  %10s execs  cov %6s  corpus %5s' "$name" "$SECS" "${execs:-?}" \
                    "${cov:-?}" "$(ls "$corpus" | wc -l)")")
    else
        status=1
        crash=$(ls -t "$OUT/$name"-{crash,leak,timeout,oom}-* 2>/dev/null | head -n 1)
        grep -E 'ERROR:|runtime error|SUMMARY|deadly signal|out-of-memory|timeout' "$OUT/$name.log" | head -n 5
        summary+=("$(printf '%-24s FAIL (exit %s) %s; reproduce: %s %s' "$name" "$rc" "${execs:+after $execs execs}" \
                    "$bin" "${crash:-?}")")
    fi
done
echo "fuzz summary (logs in $OUT/*.log):"
printf '  %s\n' "${summary[@]}"
exit $status
