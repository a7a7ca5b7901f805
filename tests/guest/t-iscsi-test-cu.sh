#!/usr/bin/env bash
# libiscsi's conformance suite, iscsi-test-cu --dataloss, run in the guest over SG_IO
# against the /dev/sg of several vscsid LUNs, one per configuration (one guest boot):
#
#   thin       LUN 0  discard=unmap (the default configuration): -t ALL
#   removable  LUN 1  removable=on, discard=unmap, physical_block_size=4096 (LBPPB 8, so
#                     the LBPPB > 1 tests run too): -t ALL but GetLBAStatus.UnmapSingle
#                     (written for LBPPB 1) and the iSCSI-only suites
#   readonly   LUN 2  readonly=on: only -t ALL.ReadOnly (on a write-protected LUN the
#                     suite's write tests fail even on a correct target, REFERENCE.md)
#   sanitize   LUN 0  the Sanitize tests with -S (ISCSI_SANITIZE=0 leaves them out), all
#                     but the three *Reserved ones: they set reserved CDB bits by patching
#                     the iSCSI PDU, which does nothing over SG_IO (they would fail on a
#                     correct target; 1.19 even segfaults in OverwriteReserved)
#
# Prints passed / failed / skipped per configuration and for the SCSI tests across all
# configurations (a test counts as passed when it passed somewhere, as failed when it
# failed anywhere). CUnit counts a skipped test as passed: here a test that printed
# [SKIPPED] counts as skipped, and so do the two that skip silently over SG_IO
# (Read10.Async and Write10.Async: CU_PASS("[SKIPPED] Non-iSCSI") without a log line).
# Suites iSCSI* are iSCSI-only and left out of the SCSI counts.
#
# ISCSI_STRICT=1 fails on any failed test; ISCSI_MAX_FAILED=N fails on more than N.
# ISCSI_CONFIGS="thin removable readonly sanitize" picks configurations; ISCSI_TESTS=SPEC replaces
# -t ALL (e.g. ALL.ProutRegister) for a quick look. Per-test results: LOGDIR/results.txt
# ("CONFIG STATUS Suite.Test [reason]").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for n in thin removable readonly; do
    e2e_image "$E2E_TMP/$n.img" 64M
done
e2e_lun 0 0 "$E2E_TMP/thin.img" discard=unmap
e2e_lun 0 1 "$E2E_TMP/removable.img" discard=unmap scsi-hd,removable=on,physical_block_size=4096
e2e_lun 0 2 "$E2E_TMP/readonly.img" discard=unmap,readonly=on
e2e_backend_start

# The guest boils the verbose output down to one line per test: the serial console
# under TCG is slow, and the first failure reason is what matters.
script=$(guest_script iscsi <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
reduce() {  # CONFIG FILE
awk -v cfg="$1" '
/^Suite: / { suite = substr($0, 8) }
/^  Test: / { name = $0; sub(/^  Test: /, "", name); sub(/ \.\.\..*/, "", name); skip = ""; why = ""; last = ""; nb = 0 }
{ buf[nb++ % 25] = $0 }
/\[SKIPPED\]/ && skip == "" { skip = $0; sub(/.*\[SKIPPED\] */, "", skip) }
/\[FAILED\]/ && why == "" { why = $0; sub(/.*\[FAILED\] */, "", why) }
/^    [^ ]/ && why == "" { last = $0; sub(/^ */, "", last) }
$0 == "passed" || /\.\.\.passed$/ {
    t = suite "." name
    if (skip == "" && (t == "Read10.Async" || t == "Write10.Async"))
        skip = "Non-iSCSI (silent CU_PASS skip)"
    if (skip != "") print "RESULT " cfg " SKIPPED " t " " substr(skip, 1, 120)
    else print "RESULT " cfg " passed " t
}
$0 == "FAILED" || /\.\.\.FAILED$/ {
    print "RESULT " cfg " FAILED " suite "." name " " substr(why != "" ? why : "after: " last, 1, 200)
    for (i = (nb > 25 ? nb - 25 : 0); i < nb; i++) print "RAW " substr(buf[i % 25], 1, 160)
}
' "$2"
grep -q '^Run Summary' "$2" || { tail -n 20 "$2"; vs_die "iscsi-test-cu ($1) did not finish"; }
}
run() {     # CONFIG LUN TESTS [options]
    cfg=$1 sg=$(vs_need_sg 0 "$2") tests=$3
    shift 3
    iscsi-test-cu -t "$tests" --dataloss -v "$@" "$sg" > "/tmp/$cfg.out" 2>&1
    echo "iscsi-test-cu $cfg ($sg, -t $(echo "$tests" | cut -c1-60) $*): exit status $?"
    reduce "$cfg" "/tmp/$cfg.out"
}
for cfg in $CONFIGS; do
    case $cfg in
    thin)      run thin 0 "$TESTS" ;;
    removable)
        # GetLBAStatus.UnmapSingle assumes LBPPB 1 (it asks for LBA i+1 and wants the
        # first descriptor at i+LBPPB; SBC-4 5.6 puts it at the LBA asked for): it runs
        # on the thin LUN. The iSCSI-only suites run there too.
        tests=$TESTS
        [ "$tests" = ALL ] && tests=$(iscsi-test-cu -l | grep '^ALL\.[^.]*\.' | grep -v '^ALL\.iSCSI' |
                                      grep -vx 'ALL\.GetLBAStatus\.UnmapSingle' | tr '\n' , | sed 's/,$//')
        run removable 1 "$tests" ;;
    readonly)  run readonly 2 ALL.ReadOnly ;;
    sanitize)
        tests=$(iscsi-test-cu -l | grep '^ALL\.Sanitize\.' | grep -v 'Reserved$' | tr '\n' ,)
        run sanitize 0 "${tests%,}" -S ;;
    esac
done
EOF
)

configs=${ISCSI_CONFIGS:-thin removable readonly sanitize}
[ "${ISCSI_SANITIZE:-1}" = 1 ] || configs=$(echo "$configs" | sed 's/sanitize//')
e2e_guest_ok iscsi "$script" --env "CONFIGS=$configs" --env "TESTS=${ISCSI_TESTS:-ALL}"

results=$E2E_LOGDIR/results.txt
guest_output iscsi | grep -a '^RESULT ' | sed 's/^RESULT //' > "$results"
[ -s "$results" ] || e2e_fail "no test results in the guest output"
# The Sanitize run replaces the Sanitize skips of the thin run (no -S there).
if grep -q '^sanitize ' "$results"; then
    awk '!($1 == "thin" && $3 ~ /^Sanitize\./)' "$results" > "$results.tmp"
    mv "$results.tmp" "$results"
fi

count() {   # CONFIG|"" STATUS: SCSI tests (suites iSCSI* left out) with STATUS
    awk -v c="$1" -v s="$2" '(c == "" || $1 == c) && $2 == s && $3 !~ /^iSCSI/ { n++ }
                             END { print n + 0 }' "$results"
}
for cfg in $configs; do
    n=$(awk -v c="$cfg" '$1 == c && $3 !~ /^iSCSI/' "$results" | wc -l)
    [ "$n" -gt 0 ] || continue
    printf '  iscsi-test-cu %-9s SCSI tests %3d: passed %3d, failed %d, skipped %d\n' "$cfg" "$n" \
        "$(count "$cfg" passed)" "$(count "$cfg" FAILED)" "$(count "$cfg" SKIPPED)"
done
# Across configurations: each SCSI test once, passed if it passed in some configuration.
awk '$3 !~ /^iSCSI/ { t = $3; if ($2 == "FAILED") f[t] = 1; else if ($2 == "passed") p[t] = 1; all[t] = 1 }
     END { for (t in all) { n++; if (f[t]) nf++; else if (p[t]) np++; else ns++ }
           printf "  iscsi-test-cu all configs SCSI tests %d: passed %d, failed %d, skipped %d\n",
                  n, np, nf, ns }' "$results"
awk '$3 !~ /^iSCSI/ { t = $3; if ($2 != "SKIPPED") ran[t] = 1; else if (!(t in why)) why[t] = $0 }
     END { for (t in why) if (!ran[t]) print t }' "$results" | sort > "$E2E_LOGDIR/skipped.txt"
echo "  results per test: $results; skipped everywhere: $E2E_LOGDIR/skipped.txt"

failed=$(awk '$2 == "FAILED"' "$results" | wc -l)
max=${ISCSI_MAX_FAILED:-}
[ "${ISCSI_STRICT:-0}" = 1 ] && max=0
if [ -n "$max" ] && [ "$failed" -gt "$max" ]; then
    awk '$2 == "FAILED"' "$results" | head -n 20 | sed 's/^/  | /'
    e2e_fail "$failed tests failed (allowed: $max)"
fi
e2e_pass
