# shellcheck shell=bash
# Helpers for the live-management scenarios (t-hotplug*.sh, t-resize*.sh, t-scale*.sh)
# and scripts/bench-mgmt.sh; sourced after lib.sh. The host drives vscsid through its QMP
# socket with vscsictl while a background guest runs; the two sides follow each other
# through the serial log (the guest prints markers, the host waits for them) and through
# the LUNs themselves (the guest waits for a device to come or go).
#
#   mgmt_backend_start       e2e_backend_start with --qmp (skips for the builtin backend)
#   ctl ARGS...              vscsictl --qmp <vscsid's socket> ARGS (logged in qmp.log)
#   serial_pos NAME          bytes in guest NAME's serial log so far
#   wait_serial NAME POS PATTERN SECS
#                            until PATTERN (grep -E) appears after byte POS; fails the
#                            scenario with the guest's last lines on timeout or guest exit
#   serial_lines NAME POS PATTERN
#                            matching lines after POS (\r stripped)
#   GUEST_MGMT_LIB           guest-side functions, for guest scripts (see below)

VSCSICTL=${VSCSICTL:-$REPO_DIR/build/vscsictl}
VSCSID_QMP=$E2E_TMP/vscsid.qmp

mgmt_backend_start() {
    [ "$E2E_BACKEND" = vscsid ] || e2e_skip "drives vscsid's QMP socket (no equivalent wired up for builtin)"
    [ -x "$VSCSICTL" ] || e2e_skip "no vscsictl at $VSCSICTL (build it)"
    VSCSID_ARGS="${VSCSID_ARGS:-} --qmp $VSCSID_QMP"
    e2e_backend_start
    wait_socket "$VSCSID_QMP" 10 vscsid
}

ctl() {
    local out rc=0
    out=$("$VSCSICTL" --qmp "$VSCSID_QMP" --timeout 60 "$@" 2>&1) || rc=$?
    printf '%s $ vscsictl %s\n%s\n' "$(date +%T.%N | cut -c1-12)" "$*" "$out" >> "$E2E_LOGDIR/qmp.log"
    [ -z "$out" ] || printf '%s\n' "$out"
    return "$rc"
}

# ctl_ok ARGS...: ctl, and the scenario fails when it does.
ctl_ok() {
    ctl "$@" > /dev/null || e2e_fail "vscsictl $* failed: $(tail -n 1 "$E2E_LOGDIR/qmp.log")"
}

serial_pos() { stat -c %s "$E2E_LOGDIR/$1.serial" 2>/dev/null || echo 0; }

serial_lines() {
    tail -c +"$(($2 + 1))" "$E2E_LOGDIR/$1.serial" 2>/dev/null | tr -d '\r' | grep -aE "$3" || true
}

wait_serial() {
    local name=$1 pos=$2 pat=$3 secs=$4 start log=$E2E_LOGDIR/$1.serial
    start=$(now)
    until tail -c +"$((pos + 1))" "$log" 2>/dev/null | grep -aqE "$pat"; do
        if grep -aq "$MARK_RC" "$log" 2>/dev/null || ! pid_alive "$(e2e_guest_pid "$name")"; then
            # the marker may have come just before the end
            tail -c +"$((pos + 1))" "$log" 2>/dev/null | grep -aqE "$pat" && return 0
            echo "  guest $name ended while the host waited for /$pat/; its last lines:"
            grep -av '^run-guest' "$log" | tail -n 25 | sed 's/^/  | /'
            e2e_fail "guest $name ended early: $(guest_fail_reason "$name")"
        fi
        if awk -v s="$start" -v n="$(now)" -v t="$secs" 'BEGIN { exit !(n - s > t) }'; then
            echo "  last lines of $log:"
            tail -n 25 "$log" | sed 's/^/  | /'
            e2e_fail "no /$pat/ from guest $name within ${secs}s"
        fi
        sleep 0.02
    done
}

# Guest side (POSIX sh + bash builtins; /bin/sh is bash in the guest). Waiting loops use
# only builtins between sleeps, so polling costs the TCG guest little.
#   vs_autoscan              let events scan: the test guest boots with scsi_mod.scan=manual,
#                            under which a RESCAN of LUN 0 (scsi_scan_target) and the host
#                            rescan after EVENTS_MISSED (scsi_scan_host) do nothing
#   vs_lnum LUN              Linux's LUN number (flat space addressing kept: 300 -> 16684)
#   vs_wait_disk T L SECS    until T:L has a block device node; prints it
#   vs_wait_gone T L SECS    until T:L is gone from sysfs
#   vs_count T               LUNs of target T in sysfs
#   vs_count_disks T         ... with a block device node
#   vs_wait_count T N SECS   until vs_count_disks T is N
# shellcheck disable=SC2016 # guest code, expanded in the guest
GUEST_MGMT_LIB='
vs_autoscan() { echo sync > /sys/module/scsi_mod/parameters/scan || vs_die "cannot set scsi_mod.scan"; }
vs_lnum() { if [ "$1" -ge 256 ]; then echo $((16384 + $1)); else echo "$1"; fi; }
vs_node() {   # T L(inux number): block device node, or fail
    for b in /sys/bus/scsi/devices/*:0:$1:$2/block/*; do
        [ -e "$b" ] && [ -b "/dev/${b##*/}" ] && { echo "/dev/${b##*/}"; return 0; }
    done
    return 1
}
vs_wait_disk() {
    _l=$(vs_lnum "$2"); _n=$(( $3 * 20 ))
    while [ $_n -gt 0 ]; do
        vs_node "$1" "$_l" && return 0
        sleep 0.05; _n=$((_n - 1))
    done
    vs_die "no block device for $1:$2 after $3 s"
}
vs_wait_gone() {
    _l=$(vs_lnum "$2"); _n=$(( $3 * 20 ))
    while [ $_n -gt 0 ]; do
        _any=
        for d in /sys/bus/scsi/devices/*:0:$1:$_l; do [ -e "$d" ] && _any=1; done
        [ -z "$_any" ] && return 0
        sleep 0.05; _n=$((_n - 1))
    done
    vs_die "$1:$2 still present after $3 s"
}
vs_count() { _c=0; for d in /sys/bus/scsi/devices/*:0:$1:*; do [ -e "$d" ] && _c=$((_c + 1)); done; echo $_c; }
vs_count_disks() {
    _c=0
    for d in /sys/bus/scsi/devices/*:0:$1:*/block/*; do [ -e "$d" ] && _c=$((_c + 1)); done
    echo $_c
}
vs_wait_count() {
    _n=$(( $3 * 20 ))
    while [ $_n -gt 0 ]; do
        [ "$(vs_count_disks "$1")" = "$2" ] && return 0
        sleep 0.05; _n=$((_n - 1))
    done
    vs_die "target $1 has $(vs_count_disks "$1") disks after $3 s, want $2"
}
'
