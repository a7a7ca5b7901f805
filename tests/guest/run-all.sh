#!/usr/bin/env bash
# Run the end-to-end guest scenarios (tests/guest/t-*.sh), or those named as arguments
# (t-luns or t-luns.sh), one after the other, and summarize:
#   PASS/FAIL/SKIP per test, "N skipped" when any were, then exactly "N passed, N failed".
# Exit status 1 when any test failed. Each scenario's output goes to
# LOGDIR/<test>.out (LOGDIR: $VSCSI_E2E_LOGDIR or REPO/build/guest/logs), and the
# guests' serial logs to LOGDIR/<test>/. Set VSCSI_E2E_VERBOSE=1 to show all output.
# Environment as for lib.sh (VSCSI_E2E_BACKEND=builtin runs against QEMU's virtio-scsi).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LOGDIR=${VSCSI_E2E_LOGDIR:-$GUEST_OUT_DIR/logs}
# A scenario hung beyond this is killed (its guests have their own, shorter timeouts).
TEST_TIMEOUT=${VSCSI_E2E_TEST_TIMEOUT:-900}

tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do
        t=${t##*/}
        tests+=("$GUEST_SRC_DIR/${t%.sh}.sh")
    done
else
    for t in "$GUEST_SRC_DIR"/t-*.sh; do tests+=("$t"); done
fi

mkdir -p "$LOGDIR"
# Build (or check) the guest once up front, so the first test's time is its own.
"$GUEST_SRC_DIR/build-guest.sh" > /dev/null

pass=0 fail=0 skip=0
start=$(now)
for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    out=$LOGDIR/$name.out
    t0=$(now)
    rc=0
    if [ "${VSCSI_E2E_VERBOSE:-0}" = 1 ]; then
        timeout -k 10 "$TEST_TIMEOUT" "$t" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
    else
        timeout -k 10 "$TEST_TIMEOUT" "$t" > "$out" 2>&1 || rc=$?
    fi
    secs=$(elapsed "$t0")
    case $rc in
    0)
        pass=$((pass + 1))
        echo "PASS: $name (${secs}s)"
        # Reports (counts, timings) the scenario printed, indented.
        [ "${VSCSI_E2E_VERBOSE:-0}" = 1 ] || grep -E '^  ' "$out" || true
        ;;
    77)
        skip=$((skip + 1))
        echo "SKIP: $name: $(grep -m1 '^SKIP:' "$out" | sed 's/^SKIP: [^:]*: //')"
        ;;
    *)
        fail=$((fail + 1))
        [ "$rc" = 124 ] && echo "  (killed after ${TEST_TIMEOUT}s)"
        echo "FAIL: $name (rc $rc, ${secs}s): $(grep -m1 '^FAIL:' "$out" | sed 's/^FAIL: [^:]*: //')"
        [ "${VSCSI_E2E_VERBOSE:-0}" = 1 ] || tail -n 30 "$out" | sed 's/^/  | /'
        ;;
    esac
done
echo "guest suite took $(elapsed "$start")s (backend ${VSCSI_E2E_BACKEND:-vscsid})"
[ "$skip" = 0 ] || echo "$skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
