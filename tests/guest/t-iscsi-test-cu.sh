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
#   swp        LUN 3  software write protect: MODE SELECT sets the control page's SWP,
#                     then -t ALL.ReadOnly
#   mpath      LUN 4  on the default controller and, as path-of, on a second one
#                     (--controller id=b): -t ALL.MultipathIO with both /dev/sg paths
#   sg3        LUN 0  (first) sg3_utils: sg_persist, sg_opcodes, sg_get_lba_status,
#                     sg_unmap, sg_write_same, each checked for its output
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
# ISCSI_CONFIGS="sg3 thin removable readonly swp sanitize mpath" picks configurations; ISCSI_TESTS=SPEC replaces
# -t ALL (e.g. ALL.ProutRegister) for a quick look. Per-test results: LOGDIR/results.txt
# ("CONFIG STATUS Suite.Test [reason]").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for n in thin removable readonly swp; do
    e2e_image "$E2E_TMP/$n.img" 64M
done
e2e_lun 0 0 "$E2E_TMP/thin.img" discard=unmap
e2e_lun 0 1 "$E2E_TMP/removable.img" discard=unmap scsi-hd,removable=on,physical_block_size=4096
e2e_lun 0 2 "$E2E_TMP/readonly.img" discard=unmap,readonly=on
e2e_lun 0 3 "$E2E_TMP/swp.img" discard=unmap
# multipath: LUN 4 on the default controller, and a second path to the same LU
# on controller "b" (its own socket and I_T nexus)
e2e_image "$E2E_TMP/mpath.img" 64M
e2e_lun 0 4 "$E2E_TMP/mpath.img" discard=unmap scsi-hd,id=mpath
sock_b=$E2E_TMP/b.sock
if [ "$E2E_BACKEND" = vscsid ]; then
    VSCSID_ARGS="${VSCSID_ARGS:-} --controller id=b,socket=$sock_b"
    VSCSID_ARGS="$VSCSID_ARGS --device scsi-hd,path-of=mpath,bus=b,scsi-id=0,lun=4"
fi
e2e_backend_start
if [ "$E2E_BACKEND" = vscsid ]; then
    wait_socket "$sock_b" 10 vscsid
    GUEST_ARGS+=(--vhost-user "$sock_b${E2E_VHOST_OPTS:+,$E2E_VHOST_OPTS}")
fi

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
# sg3_utils against the thin LUN: persistent reservations, opcodes, provisioning.
sg3() {
    sg=$(vs_need_sg 0 0)
    out=/tmp/sg3.out
    check() {   # NAME PATTERN COMMAND...: COMMAND succeeds and its output has PATTERN
        name=$1 pat=$2
        shift 2
        if "$@" > "$out" 2>&1 && { [ -z "$pat" ] || grep -qiE -- "$pat" "$out"; }; then
            echo "SG3 ok $name"
        else
            sed 's/^/SG3 | /' "$out" | head -n 20
            vs_die "sg3_utils: $name ($*)"
        fi
    }
    check persist-register '' sg_persist --out --register --param-sark=0xabc1 "$sg"
    check persist-reserve '' sg_persist --out --reserve --param-rk=0xabc1 --prout-type=3 "$sg"
    check persist-keys '0xabc1' sg_persist --in --read-keys "$sg"
    check persist-reservation 'Key=0xabc1' sg_persist --in --read-reservation "$sg"
    check persist-type 'Exclusive Access' sg_persist --in --read-reservation "$sg"
    check persist-caps 'CRH.*1' sg_persist --in --report-capabilities "$sg"
    check persist-full-status 'SAS address' sg_persist --in --read-full-status "$sg"
    check persist-release '' sg_persist --out --release --param-rk=0xabc1 --prout-type=3 "$sg"
    check persist-unregister '' sg_persist --out --register --param-rk=0xabc1 "$sg"
    check persist-none 'no registered' sg_persist --in --read-keys "$sg"
    check opcodes-pr 'Persistent reserve out' sg_opcodes "$sg"
    check opcodes-xcopy 'Extended copy' sg_opcodes "$sg"
    check opcodes-sanitize 'Sanitize' sg_opcodes "$sg"
    check opcodes-atomic 'Write atomic' sg_opcodes "$sg"
    check opcodes-one 'Usage data' sg_opcodes --opcode=0x93 "$sg"
    dd if=/dev/urandom of="$(vs_need_disk 0 0)" bs=1M count=4 oflag=direct 2>/dev/null
    check lba-mapped 'mapped' sg_get_lba_status --lba=0 "$sg"
    check unmap '' sg_unmap --lba=0 --num=2048 "$sg"
    check lba-deallocated 'deallocated' sg_get_lba_status --lba=0 "$sg"
    check write-same-unmap '' sg_write_same --unmap --lba=2048 --num=2048 "$sg"
    check lba-ws-deallocated 'deallocated' sg_get_lba_status --lba=2048 "$sg"
    check write-same '' sg_write_same --lba=8192 --num=16 --ff "$sg"
}

# The control mode page's SWP (software write protect, SPC-4 7.5.8) set by
# MODE SELECT(6) on LUN 3; then the LUN behaves as write-protected.
swp() {
    sg=$(vs_need_sg 0 3)
    printf '\0\0\0\0\012\012\0\020\010\0\0\0\377\377\0\0' > /tmp/swp.bin
    sg_raw -s 16 -i /tmp/swp.bin "$sg" 15 10 00 00 10 00 > /tmp/swp.out 2>&1 ||
        { cat /tmp/swp.out; vs_die "MODE SELECT SWP=1 failed"; }
    sg_modes --page=0x0a "$sg" 2>/dev/null | grep -qi 'WP=1\|write protect' || true
    run swp 3 ALL.ReadOnly
}

# The same LU through both controllers: iscsi-test-cu takes both /dev/sg paths.
mpath() {
    set --
    for h in $(vs_hosts); do
        g=$(vs_sg 0 4 "$h") && set -- "$@" "$g"
    done
    [ $# = 2 ] || vs_die "multipath: expected LUN 4 on two hosts, found: $*"
    # one reservation state, two I_T nexuses: A registers and reserves Write
    # Exclusive, B sees both keys and the holder, and B's write conflicts
    sg_persist --out --register --param-sark=0xa1 "$1" > /dev/null || vs_die "mpath: register on A"
    sg_persist --out --register --param-sark=0xb2 "$2" > /dev/null || vs_die "mpath: register on B"
    sg_persist --out --reserve --param-rk=0xa1 --prout-type=1 "$1" > /dev/null || vs_die "mpath: reserve"
    sg_persist --in --read-full-status "$2" > /tmp/mp.fs 2>&1
    grep -qi 'Key=0xa1' /tmp/mp.fs && grep -qi 'Key=0xb2' /tmp/mp.fs ||
        { cat /tmp/mp.fs; vs_die "mpath: path B does not see both registrations"; }
    if sg_raw -s 512 -i /dev/zero "$2" 2a 00 00 00 00 00 00 00 01 00 > /tmp/mp.raw 2>&1; then
        vs_die "mpath: a write through B went through A's Write Exclusive reservation"
    fi
    grep -qi 'reservation conflict' /tmp/mp.raw || { cat /tmp/mp.raw; vs_die "mpath: no conflict on B"; }
    sg_persist --out --clear --param-rk=0xa1 "$1" > /dev/null || vs_die "mpath: clear"
    # SPC-4 5.13.11.6: B was registered, so it has RESERVATIONS PREEMPTED pending
    sg_turs "$2" > /tmp/mp.tur 2>&1 && { cat /tmp/mp.tur; vs_die "mpath: no UA 2A/03 on B"; }
    sg_turs "$2" > /dev/null 2>&1 || vs_die "mpath: B not ready after its UA"
    echo "SG3 ok multipath-reservation"
    iscsi-test-cu -t ALL.MultipathIO --dataloss -v "$@" > /tmp/mpath.out 2>&1
    echo "iscsi-test-cu mpath ($*): exit status $?"
    reduce mpath /tmp/mpath.out
}

for cfg in $CONFIGS; do
    case $cfg in
    sg3)       sg3 ;;
    mpath)     mpath ;;
    swp)       swp ;;
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

configs=${ISCSI_CONFIGS:-sg3 thin removable readonly swp sanitize mpath}
[ "$E2E_BACKEND" = vscsid ] || configs=$(echo "$configs" | sed 's/mpath//')
[ "${ISCSI_SANITIZE:-1}" = 1 ] || configs=$(echo "$configs" | sed 's/sanitize//')
e2e_guest_ok iscsi "$script" --env "CONFIGS=$configs" --env "TESTS=${ISCSI_TESTS:-ALL}"

if echo " $configs " | grep -q ' sg3 '; then
    echo "  sg3_utils checks passed: $(guest_output iscsi | grep -ac '^SG3 ok')"
fi
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
