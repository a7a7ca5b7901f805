#!/usr/bin/env bash
# Hundreds of LUNs: 8 targets x 64 LUNs and 256 LUNs on target 8 at start (768 null-driver
# LUNs, plus 9:0 on an image for I/O), all visible in the guest exactly once. Then 100
# of target 8's LUNs are hot-unplugged and re-plugged, 20 at a time, SCALE_ROUNDS times
# (default 2), while a verifying fio loop runs on 9:0: the guest follows every step by
# itself and fio must pass with no error logged for 9:0.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

ROUNDS=${SCALE_ROUNDS:-2}
# The guest lives through a long boot and the loop: its time limit counts from QEMU's start.
E2E_TIMEOUT=${VSCSI_E2E_TIMEOUT:-600}
BATCH=20
FIRST=100 LAST=199      # the LUNs of target 8 that come and go

img=$E2E_TMP/io.img
e2e_image "$img" 64M
e2e_lun 9 0 "$img"
extra=""
for t in $(seq 0 7); do
    for l in $(seq 0 63); do
        extra="$extra --drive driver=null,size=16M,id=n$t-$l --device scsi-hd,drive=n$t-$l,scsi-id=$t,lun=$l,id=l$t-$l"
    done
done
for l in $(seq 0 255); do
    extra="$extra --drive driver=null,size=16M,id=n8-$l --device scsi-hd,drive=n8-$l,scsi-id=8,lun=$l,id=l8-$l"
done
VSCSID_ARGS="${VSCSID_ARGS:-}$extra"
mgmt_backend_start
[ "$(ctl --json query-scsi-devices | grep -o '"id"' | wc -l)" = 769 ] || e2e_fail "vscsid does not list 769 devices"

script=$(guest_script scale <<EOF
#!/bin/sh
. /lib/vscsi.sh
$GUEST_MGMT_LIB
EOF
)
cat >> "$script" <<'EOF'
vs_autoscan
for t in 0 1 2 3 4 5 6 7; do
    [ "$(vs_count_disks $t)" = 64 ] || vs_die "target $t has $(vs_count_disks $t) disks, want 64"
done
[ "$(vs_count_disks 8)" = 256 ] || vs_die "target 8 has $(vs_count_disks 8) disks, want 256"
total=$(ls -d /sys/bus/scsi/devices/*:0:*:* | wc -l)
[ "$total" = 769 ] || vs_die "$total LUNs in sysfs, want 769"
[ "$(ls /sys/block | grep -c '^sd')" = 769 ] || vs_die "$(ls /sys/block | grep -c '^sd') sd disks, want 769"
vs_info "769 LUNs found at boot: 8 targets x 64, 256 on target 8, 9:0 (uptime $(cut -d' ' -f1 /proc/uptime) s)"
d9=$(vs_need_disk 9 0)
(
    n=0
    while [ ! -e /tmp/stop ] || [ $n -lt 1 ]; do
        fio --name=keep --filename="$d9" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
            --iodepth=8 --size=16M --offset=$((n % 4 * 16))M --verify=crc32c --do_verify=1 \
            --verify_fatal=1 --eta=never > /tmp/keep.out 2>&1 || { cat /tmp/keep.out; exit 1; }
        n=$((n + 1))
    done
    echo "fio on 9:0: $n verified runs while LUNs came and went"
) &
keep=$!
echo "STEP ready"
# Follow target 8 until the host adds the end marker 8:1000.
last=
while ! vs_node 8 $(vs_lnum 1000) > /dev/null; do
    c=$(vs_count_disks 8)
    [ "$c" = "$last" ] || { echo "T8=$c."; last=$c; }
    sleep 0.05
done
touch /tmp/stop
wait $keep || vs_die "fio on 9:0 failed"
[ "$(vs_count_disks 8)" = 257 ] || vs_die "target 8 has $(vs_count_disks 8) disks at the end, want 257"
total=$(ls -d /sys/bus/scsi/devices/*:0:*:* | wc -l)
[ "$total" = 770 ] || vs_die "$total LUNs at the end, want 770 (a LUN twice?)"
dn=${d9#/dev/}
if dmesg | grep -E "\[$dn\]|0:0:9:0" | grep -v 'Power-on or device reset occurred' |
   grep -Ei 'error|fail|reset|abort|timing out|offline'; then
    vs_die "the kernel logged errors for 9:0 ($d9)"
fi
echo "STEP done"
EOF

t0=$(now)
e2e_guest_bg scale "$script" --scan 0-9 --append " vscsi.settle=180"
wait_serial scale 0 "STEP ready" 300
E2E_TIMES+=("boot with 769 LUNs $(elapsed "$t0")s")
pos=$(serial_pos scale)
t0=$(now)
cycles=0
for r in $(seq 1 "$ROUNDS"); do
    for b in $(seq "$FIRST" "$BATCH" "$LAST"); do
        e=$((b + BATCH - 1))
        for l in $(seq "$b" "$e"); do ctl_ok device_del id="l8-$l"; done
        wait_serial scale "$pos" "T8=$((256 - BATCH))\." 120
        pos=$(serial_pos scale)
        for l in $(seq "$b" "$e"); do
            ctl_ok device_add driver=scsi-hd drive="n8-$l" scsi-id=8 lun="$l" id="l8-$l"
        done
        wait_serial scale "$pos" "T8=256\." 120
        pos=$(serial_pos scale)
        cycles=$((cycles + BATCH))
    done
done
secs=$(elapsed "$t0")
ctl_ok blockdev-add node-name=marker driver=null-co size=1048576
ctl_ok device_add driver=scsi-hd drive=marker scsi-id=8 lun=1000 id=marker
wait_serial scale "$pos" "STEP done" 180
echo "  $cycles LUNs unplugged and re-plugged in ${secs}s (guest saw every step)"

rc=0
e2e_guest_wait scale || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason scale)"
guest_output scale | grep -a 'guest: \|verified runs' | sed 's/^/  /'
echo "  vscsid RSS with 770 LUNs: $(awk '/VmRSS/ { print $2, $3 }' "/proc/$(daemon_pid vscsid)/status" 2>/dev/null || echo ?)"
e2e_pass
