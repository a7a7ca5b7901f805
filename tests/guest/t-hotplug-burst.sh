#!/usr/bin/env bash
# Hot-plug bursts, each sent as one stream of QMP requests on one connection:
#  1. 64 LUNs on a new target (10): far more events than the guest's 8 event buffers;
#     vscsid keeps the rest and sends them as buffers come back;
#  2. 128 LUNs on the existing target 0 (LUNs 1-128): more events than vscsid keeps
#     (EVENT_BACKLOG 64), so some are dropped and a later event carries EVENTS_MISSED;
#     Linux then rescans the host (scsi_scan_host), the only way it can find the LUNs
#     whose RESCAN events were dropped.
# The guest must find every LUN exactly once, with nothing done inside it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

img=$E2E_TMP/disk0.img
e2e_image "$img" 16M
e2e_lun 0 0 "$img"
mgmt_backend_start
for i in $(seq 0 191); do
    ctl_ok blockdev-add node-name="b$i" driver=null-co size=$((16 << 20))
done

# burst FILE: one connection, every request written at once, replies read after.
burst() {
    local out
    out=$( { cat "$1"; sleep 1; } | socat -t 5 - "UNIX-CONNECT:$VSCSID_QMP")
    printf '%s\n' "$out" >> "$E2E_LOGDIR/qmp.log"
    [ "$(grep -c '"return"' <<< "$out")" = "$2" ] ||
        e2e_fail "burst $1: $(grep -c '"return"' <<< "$out") of $2 requests succeeded: $(grep -m1 error <<< "$out")"
}
{
    echo '{"execute": "qmp_capabilities"}'
    for l in $(seq 0 63); do
        echo "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", \"drive\": \"b$l\", \"scsi-id\": 10, \"lun\": $l}}"
    done
} > "$E2E_TMP/burst1.qmp"
{
    echo '{"execute": "qmp_capabilities"}'
    for l in $(seq 1 128); do
        echo "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", \"drive\": \"b$((63 + l))\", \"scsi-id\": 0, \"lun\": $l}}"
    done
} > "$E2E_TMP/burst2.qmp"

script=$(guest_script burst <<EOF
#!/bin/sh
. /lib/vscsi.sh
$GUEST_MGMT_LIB
EOF
)
cat >> "$script" <<'EOF'
vs_autoscan
vs_need_disk 0 0 > /dev/null
echo "STEP ready"
vs_wait_count 10 64 120
vs_info "burst 1: 64 LUNs on target 10 found (uptime $(cut -d' ' -f1 /proc/uptime))"
echo "STEP one"
vs_wait_count 0 129 180
vs_info "burst 2: 128 more LUNs on target 0 found (uptime $(cut -d' ' -f1 /proc/uptime))"
sleep 2     # late duplicates would show up now
[ "$(vs_count 10)" = 64 ] || vs_die "target 10 has $(vs_count 10) LUNs"
[ "$(vs_count 0)" = 129 ] || vs_die "target 0 has $(vs_count 0) LUNs"
total=$(ls -d /sys/bus/scsi/devices/*:0:*:* | wc -l)
[ "$total" = 193 ] || vs_die "$total LUNs, want 193"
for l in $(seq 0 63); do vs_sysdev 10 "$l" > /dev/null || vs_die "no 10:$l"; done
for l in $(seq 0 128); do vs_sysdev 0 "$l" > /dev/null || vs_die "no 0:$l"; done
echo "STEP done"
EOF

e2e_guest_bg burst "$script"
wait_serial burst 0 "STEP ready" 120
pos=$(serial_pos burst)
t0=$(now)
burst "$E2E_TMP/burst1.qmp" 65
wait_serial burst "$pos" "STEP one" 150
echo "  burst of 64 on a new target: all in the guest after $(elapsed "$t0")s"
pos=$(serial_pos burst)
t0=$(now)
burst "$E2E_TMP/burst2.qmp" 129
wait_serial burst "$pos" "STEP done" 240
echo "  burst of 128 on target 0 (beyond the event backlog): all in the guest after $(elapsed "$t0")s"

rc=0
e2e_guest_wait burst || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason burst)"
guest_output burst | grep -a 'guest: ' | sed 's/^/  /'
e2e_pass
