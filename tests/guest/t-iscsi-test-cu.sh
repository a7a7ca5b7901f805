#!/usr/bin/env bash
# libiscsi's conformance suite, iscsi-test-cu -t ALL --dataloss, run in the guest over
# SG_IO against the /dev/sg of a vscsid disk (raw file, discard=unmap). Without -S:
# libiscsi 1.19 segfaults in Sanitize.OverwriteReserved over SG_IO, ending the run.
#
# A report, not a gate: prints passed / failed / skipped (CUnit counts a skipped test as
# passed; here a test that printed [SKIPPED] and then passed counts as skipped), for all
# tests and for the SCSI ones alone (suites iSCSI* are iSCSI-only), and exits 0 when the
# suite ran to its end. ISCSI_STRICT=1 fails on any failed test; ISCSI_MAX_FAILED=N
# fails on more than N. The per-test results are kept in LOGDIR/results.txt.
# ISCSI_SANITIZE=1 then runs the Sanitize tests again with -S (all but OverwriteReserved,
# the one that crashes) and reports those results instead of the skips of the first run.
# Anchor (REFERENCE.md), SCSI tests only: QEMU 7.2 virtio-scsi + scsi-hd 83/52/80.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

img=$E2E_TMP/disk.img
e2e_image "$img" 64M
e2e_lun 0 0 "$img" discard=unmap
e2e_backend_start

# The guest boils the 30000-line verbose output down to one line per test: the serial
# console under TCG is slow, and the first failure reason is what matters.
script=$(guest_script iscsi <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
sg=$(vs_need_sg 0 0)
reduce() {
awk '
/^Suite: / { suite = substr($0, 8) }
/^  Test: / { name = $0; sub(/^  Test: /, "", name); sub(/ \.\.\..*/, "", name); skip = ""; why = "" }
/\[SKIPPED\]/ && skip == "" { skip = $0; sub(/.*\[SKIPPED\] */, "", skip) }
/\[FAILED\]/ && why == "" { why = $0; sub(/.*\[FAILED\] */, "", why) }
$0 == "passed" || /\.\.\.passed$/ {
    if (skip != "") print "RESULT SKIPPED " suite "." name " " substr(skip, 1, 120)
    else print "RESULT passed " suite "." name
}
$0 == "FAILED" || /\.\.\.FAILED$/ { print "RESULT FAILED " suite "." name " " substr(why, 1, 200) }
' "$1"
grep -A4 '^Run Summary' "$1"
grep -q '^Run Summary' "$1" || { tail -n 20 "$1"; vs_die "iscsi-test-cu did not finish"; }
}
iscsi-test-cu -t ALL --dataloss -v "$sg" > /tmp/out 2>&1
echo "iscsi-test-cu exit status $?"
if [ "${SANITIZE:-0}" = 1 ]; then
    reduce /tmp/out | grep -v '^RESULT [A-Za-z]* Sanitize\.'
    tests=$(iscsi-test-cu -l | grep '^ALL\.Sanitize\.' | grep -v OverwriteReserved | tr '\n' ,)
    iscsi-test-cu -t "${tests%,}" -S --dataloss -v "$sg" > /tmp/out2 2>&1
    echo "iscsi-test-cu -S exit status $?"
    reduce /tmp/out2
else
    reduce /tmp/out
fi
EOF
)

e2e_guest_ok iscsi "$script" --env "SANITIZE=${ISCSI_SANITIZE:-0}"

results=$E2E_LOGDIR/results.txt
guest_output iscsi | grep -a '^RESULT ' | sed 's/^RESULT //' > "$results"
count() {   # STATUS [scsi]: tests with STATUS (in the SCSI suites only with "scsi")
    awk -v s="$1" -v scsi="${2:-}" '$1 == s && !(scsi != "" && $2 ~ /^iSCSI/) { n++ }
                                    END { print n + 0 }' "$results"
}
total=$(wc -l < "$results")
[ "$total" -gt 0 ] || e2e_fail "no test results in the guest output"
echo "  iscsi-test-cu all tests ($total): passed $(count passed), failed $(count FAILED), skipped $(count SKIPPED)"
echo "  iscsi-test-cu SCSI tests: passed $(count passed scsi), failed $(count FAILED scsi), skipped $(count SKIPPED scsi)"
echo "  results per test: $results"

failed=$(count FAILED)
max=${ISCSI_MAX_FAILED:-}
[ "${ISCSI_STRICT:-0}" = 1 ] && max=0
if [ -n "$max" ] && [ "$failed" -gt "$max" ]; then
    awk '$1 == "FAILED"' "$results" | head -n 20 | sed 's/^/  | /'
    e2e_fail "$failed tests failed (allowed: $max)"
fi
e2e_pass
