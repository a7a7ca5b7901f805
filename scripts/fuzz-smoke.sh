#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz) in a separate clang build and run
# each for FUZZ_SECONDS (default 20: the CI pass; `make fuzz` uses 60).
# Committed crash inputs (tests/fuzz/regress/<target>/*) are replayed first.
# Fails on any crash, leak, timeout, out-of-memory or sanitizer report.
# Prints one line per target with executions/s and coverage (cov = edges,
# ft = features) and ends with "N passed, N failed".
#
#   FUZZ_SECONDS=60 FUZZ_TARGETS="fuzz_virtq fuzz_scsi" scripts/fuzz-smoke.sh
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-20}
BUILD=${FUZZ_BUILD:-build-fuzz}
TARGETS=${FUZZ_TARGETS:-fuzz_vhost_msg fuzz_virtq fuzz_scsi fuzz_qmp}

if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    echo "=== installing clang and libclang-rt-dev (libFuzzer)"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q clang libclang-rt-dev >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1; apt-get install -y -q clang libclang-rt-dev >/dev/null; }
    fi
    command -v clang >/dev/null || { echo "fuzz: no clang"; echo "0 passed, 1 failed"; exit 1; }
fi

echo "=== fuzz: build ($BUILD)"
if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        "-Dc_args=-fsanitize=fuzzer-no-link -Wno-missing-field-initializers" >"$BUILD.setup.log" 2>&1 ||
        { cat "$BUILD.setup.log"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$BUILD" fuzzers >"$BUILD.build.log" 2>&1; then
    tail -30 "$BUILD.build.log"; echo "0 passed, 1 failed"; exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
passed=0 failed=0
results=()
for t in $TARGETS; do
    exe="$BUILD/tests/fuzz/$t"
    seeds="tests/fuzz/corpus/$t"
    work="$BUILD/corpus/$t"             # grows over runs; never committed
    art="$BUILD/artifacts/$t"
    mkdir -p "$work" "$art"
    common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -close_fd_mask=2 -artifact_prefix="$art/")

    if [ -d "tests/fuzz/regress/$t" ] && ls "tests/fuzz/regress/$t"/* >/dev/null 2>&1; then
        if ! "$exe" "${common[@]}" "tests/fuzz/regress/$t"/* >"$art/regress.log" 2>&1; then
            tail -40 "$art/regress.log"
            echo "FAIL $t: a committed crash input crashes again (tests/fuzz/regress/$t)"
            failed=$((failed + 1)); results+=("$t regress FAIL"); continue
        fi
        echo "ok   $t: $(ls "tests/fuzz/regress/$t" | wc -l) regression inputs replayed"
    fi

    log="$art/run.log"
    # libFuzzer adds new inputs to its first corpus folder: only ever the work
    # folder, seeded from the committed corpus (which stays untouched).
    cp -n "$seeds"/* "$work"/ 2>/dev/null
    "$exe" "${common[@]}" -max_total_time="$SECONDS_EACH" -print_final_stats=1 "$work" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    eps=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1 ft \2 corpus \3/p' <<<"$done_line")
    if [ $rc -ne 0 ] || [ -z "$done_line" ]; then
        grep -E 'ERROR|SUMMARY|==[0-9]+==|#[0-9]+ 0x|Test unit written' "$log" | head -40
        echo "FAIL $t (exit $rc): reproducer in $art/, log $log"
        failed=$((failed + 1)); results+=("$t FAIL")
    else
        echo "ok   $t: ${execs:-?} runs in ${SECONDS_EACH}s, ${eps:-?} exec/s, $cov"
        passed=$((passed + 1)); results+=("$t ${eps:-?} exec/s $cov")
    fi
done
echo "=== fuzz summary (${SECONDS_EACH}s each)"
printf '  %s\n' "${results[@]}"
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
