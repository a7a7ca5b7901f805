#!/usr/bin/env bash
# Build and run every test suite: unit + harness (normal build, then again
# under ASan+UBSan), then the end-to-end guest tests. Ends with the line
# "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()

count_meson() {    # $1 = build dir, $2 = label
    local log="$1/meson-logs/testlog.json" ok fail skip
    [ -f "$log" ] || { failed=$((failed + 1)); failures+=("$2: no test log"); return; }
    ok=$(grep -c '"result": "OK"' "$log" || true)
    fail=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
    skip=$(grep -c '"result": "SKIP"' "$log" || true)
    passed=$((passed + ok)); failed=$((failed + fail)); skipped=$((skipped + skip))
    if [ "$fail" -gt 0 ]; then
        while read -r name; do failures+=("$2: $name"); done < <(
            grep -E '"result": "(FAIL|TIMEOUT|ERROR)' "$log" | sed -E 's/.*"name": "([^"]*)".*/\1/')
    fi
}

run_meson_suite() {    # $1 = build dir, $2 = label, rest = meson setup args
    local dir="$1" label="$2"; shift 2
    echo "=== $label: build ($dir)"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); failures+=("$label: meson setup"); return; }
    fi
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        tail -40 "$dir.build.log"
        failed=$((failed + 1)); failures+=("$label: build failed"); return
    fi
    echo "=== $label: unit and harness tests"
    meson test -C "$dir" --suite unit --suite harness --print-errorlogs --num-processes 2 \
        --timeout-multiplier "${TIMEOUT_MULT:-1}" || true
    count_meson "$dir" "$label"
}

# A scratch loop device lets the block layer's block-device test run for real
# (it is destroyed at exit). Without losetup it skips and is counted as skipped.
loopdev=""
cleanup() { [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null; rm -f build/scratch-bdev.img; }
trap cleanup EXIT
mkdir -p build
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
    truncate -s 64M build/scratch-bdev.img
    loopdev=$(losetup -f --show --sector-size 4096 build/scratch-bdev.img 2>/dev/null || true)
    [ -n "$loopdev" ] && export VSCSI_TEST_BLOCKDEV="$loopdev"
fi

run_meson_suite build "default"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
TIMEOUT_MULT=3 run_meson_suite build-asan "asan+ubsan" -Db_sanitize=address,undefined -Db_lundef=false

# ThreadSanitizer over vscsid's multi-threaded paths: the harness programs of
# the normal build that run vscsid with --iothreads=2, against a TSan build of
# vscsid (the first data race makes it exit 66, failing the test; the test
# programs themselves race with vscsid on guest memory on purpose, so they are
# not the ones instrumented). GCC cannot model the virtqueue fences (-Wtsan):
# they order accesses to guest memory, which QEMU or the harness makes anyway.
# tests/tsan.supp says why guest-memory copies are not reported. The SCSI
# layer's own threads test (two I/O threads on one LU, shared lock) is built
# and run instrumented as a whole.
TSAN_OPTS="halt_on_error=1:exitcode=66:suppressions=$PWD/tests/tsan.supp"
tsan_run() {   # tsan_run LABEL LOG TIMEOUT CMD...: one TSan-instrumented program, counted
    local label=$1 log=$2 limit=$3; shift 3
    if TSAN_OPTIONS="$TSAN_OPTS" timeout "$limit" "$@" >"$log" 2>&1; then
        echo "ok   tsan $label: $(tail -n 1 "$log")"
        passed=$((passed + 1))
    else
        echo "FAIL tsan $label (log $log):"
        grep -A30 -m1 "ThreadSanitizer" "$log" || tail -n 30 "$log"
        failed=$((failed + 1)); failures+=("tsan: $label")
    fi
}
if [ "${VSCSI_SKIP_TSAN:-0}" != 1 ]; then
    echo "=== tsan: build vscsid (build-tsan)"
    if [ ! -f build-tsan/build.ninja ]; then
        meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dc_args=-Wno-tsan >/dev/null ||
            { failed=$((failed + 1)); failures+=("tsan: meson setup"); }
    fi
    if [ -f build-tsan/build.ninja ] &&
        ninja -C build-tsan vscsid tests/unit/scsi/test-scsi-threads >build-tsan.build.log 2>&1; then
        tsan_run scsi-threads build-tsan/test-scsi-threads.log 600 build-tsan/tests/unit/scsi/test-scsi-threads
        echo "=== tsan: harness tests with --iothreads=2 against build-tsan/vscsid"
        mkdir -p build-tsan/harness-logs
        for t in basic hostile_ring hostile_msg mgmt media robust_restart robust_hostile poll coalesce errpol; do
            if [ ! -x "build/tests/harness/t_${t}_it" ]; then
                failed=$((failed + 1)); failures+=("tsan: no build/tests/harness/t_${t}_it")
                continue
            fi
            VUF_VSCSID_ARGS=--iothreads=2 tsan_run "harness-iothreads-$t" "build-tsan/harness-logs/$t.log" 900 \
                "build/tests/harness/t_${t}_it" "$PWD/build-tsan/vscsid"
        done
    elif [ -f build-tsan/build.ninja ]; then
        tail -40 build-tsan.build.log
        failed=$((failed + 1)); failures+=("tsan: build failed")
    fi
fi

# Short fuzzing pass over every libFuzzer target (crash, leak, timeout = failure).
if [ "${VSCSI_SKIP_FUZZ:-0}" != 1 ]; then
    echo "=== fuzz smoke pass"
    if scripts/fuzz-smoke.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("fuzz smoke"); fi
fi

# clang-tidy (committed .clang-tidy, bug-finding checks) over all of the C
# sources: src, tools and the fuzz targets (scripts/tidy.sh's default).
if [ "${VSCSI_SKIP_TIDY:-0}" != 1 ]; then
    echo "=== clang-tidy"
    if scripts/tidy.sh; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures+=("clang-tidy")
    fi
fi

# Run tests/guest/run-all.sh (env and scenario names as arguments) and add its
# "N passed, N failed" and "N skipped" lines to the totals.
run_guest_suite() {    # $1 = label, rest = env assignments and scenario names for run-all.sh
    local label="$1" out line gp gf gs; shift
    out=$(mktemp)
    env "$@" 2>&1 | tee "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    if [ -n "$line" ]; then
        gp=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        gf=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
        passed=$((passed + gp)); failed=$((failed + gf))
        [ "$gf" -gt 0 ] && failures+=("$label: $gf failed")
    else
        failed=$((failed + 1)); failures+=("$label: no summary line")
    fi
    gs=$(grep -Eo '^[0-9]+ skipped' "$out" | tail -1 | grep -Eo '^[0-9]+' || true)
    skipped=$((skipped + ${gs:-0}))
    rm -f "$out"
}

if [ "${VSCSI_SKIP_GUEST:-0}" != 1 ] && [ -x tests/guest/run-all.sh ]; then
    echo "=== end-to-end guest tests"
    # libiscsi must report no failure at all (docs/conformance.md has the counts).
    run_guest_suite guest ISCSI_STRICT=1 VSCSID="$PWD/build/vscsid" tests/guest/run-all.sh
fi

# The end-to-end scenarios a second time against the ASan+UBSan daemon: a
# memory error or leak the guest provokes makes vscsid exit non-zero, which
# fails the scenario. Every scenario runs (VSCSI_ASAN_GUEST_TESTS picks fewer).
if [ "${VSCSI_SKIP_GUEST:-0}" != 1 ] && [ "${VSCSI_SKIP_ASAN_GUEST:-0}" != 1 ] && [ -x build-asan/vscsid ]; then
    echo "=== end-to-end guest tests against the ASan+UBSan daemon"
    # shellcheck disable=SC2086
    run_guest_suite "guest (asan)" ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ISCSI_STRICT=1 \
        VSCSID="$PWD/build-asan/vscsid" tests/guest/run-all.sh \
        ${VSCSI_ASAN_GUEST_TESTS:-}
fi

# The iothreads scenario against the TSan daemon: real guest concurrency on two
# request queues, two iothreads and the control thread.
if [ "${VSCSI_SKIP_GUEST:-0}" != 1 ] && [ "${VSCSI_SKIP_TSAN:-0}" != 1 ] && [ -x build-tsan/vscsid ]; then
    echo "=== end-to-end iothreads scenario against the TSan daemon"
    run_guest_suite "guest (tsan)" TSAN_OPTIONS="$TSAN_OPTS" \
        VSCSI_E2E_LOGDIR="$PWD/build/guest/logs-tsan" \
        VSCSID="$PWD/build-tsan/vscsid" tests/guest/run-all.sh t-iothreads
fi

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
