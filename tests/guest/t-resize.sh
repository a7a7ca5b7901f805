#!/usr/bin/env bash
# Online resize with block_resize while a Linux guest runs and does verified I/O: the
# daemon queues UA 2A/09 and sends PARAM_CHANGE, and the guest's disk takes the new size
# by itself ("detected capacity change"), no rescan inside the guest:
#  1. grow 0:0 (512-byte blocks) from 64 to 96 MiB, then write and read the new last MiB;
#  2. shrink it to 48 MiB;
#  3. a hot-added 0:1 with 4096-byte blocks grows from 32 to 40 MiB (by its device id);
# a fio verify loop runs on the first 16 MiB of 0:0 throughout and must pass.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

img0=$E2E_TMP/disk0.img img1=$E2E_TMP/disk1.img
e2e_image "$img0" 64M
e2e_image "$img1" 32M
e2e_lun 0 0 "$img0"
mgmt_backend_start

script=$(guest_script rs <<EOF
#!/bin/sh
. /lib/vscsi.sh
$GUEST_MGMT_LIB
EOF
)
cat >> "$script" <<'EOF'
# wait_size DEV BYTES SECS: until the block device has BYTES (sysfs size is in 512 B units)
wait_size() {
    n=$(( $3 * 20 ))
    while [ $n -gt 0 ]; do
        [ "$(cat /sys/block/${1#/dev/}/size)" = $(( $2 / 512 )) ] && return 0
        sleep 0.05; n=$((n - 1))
    done
    vs_die "$1 has $(( $(cat /sys/block/${1#/dev/}/size) * 512 )) bytes after $3 s, want $2"
}
vs_autoscan
d0=$(vs_need_disk 0 0)
(
    n=0
    while [ ! -e /tmp/stop ] || [ $n -lt 1 ]; do
        fio --name=keep --filename="$d0" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
            --iodepth=8 --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 \
            --eta=never > /tmp/keep.out 2>&1 || { cat /tmp/keep.out; exit 1; }
        n=$((n + 1))
    done
    echo "fio on 0:0: $n verified runs during the resizes"
) &
keep=$!
echo "STEP ready"

wait_size "$d0" $((96 << 20)) 60
dmesg | grep -q "${d0#/dev/}: detected capacity change" || vs_die "no 'detected capacity change' for $d0"
[ "$(blockdev --getsize64 "$d0")" = $((96 << 20)) ] || vs_die "blockdev: $(blockdev --getsize64 "$d0")"
head -c 1048576 /dev/urandom > /tmp/last.bin
dd if=/tmp/last.bin of="$d0" bs=1M seek=95 oflag=direct conv=notrunc status=none || vs_die "write at 95 MiB failed"
[ "$(dd if="$d0" bs=1M skip=95 iflag=direct status=none | md5sum)" = "$(md5sum < /tmp/last.bin)" ] ||
    vs_die "the new last MiB does not read back"
vs_info "grew to 96 MiB; the new space works"
echo "STEP grown"

wait_size "$d0" $((48 << 20)) 60
vs_info "shrank to 48 MiB"
echo "STEP shrunk"

d1=$(vs_wait_disk 0 1 60)
[ "$(blockdev --getss "$d1")" = 4096 ] || vs_die "$d1 has $(blockdev --getss "$d1")-byte sectors"
echo "STEP added"
wait_size "$d1" $((40 << 20)) 60
vs_info "4096-byte-sector $d1 grew to 40 MiB"
touch /tmp/stop
wait $keep || vs_die "fio on 0:0 failed during the resizes"
echo "STEP done"
EOF

e2e_guest_bg rs "$script"
wait_serial rs 0 "STEP ready" 120
pos=$(serial_pos rs)
ctl_ok block_resize node-name=d0 size=$((96 << 20))
wait_serial rs "$pos" "STEP grown" 90
[ "$(stat -c %s "$img0")" = $((96 << 20)) ] || e2e_fail "image is $(stat -c %s "$img0") bytes, want 96 MiB"
pos=$(serial_pos rs)
ctl_ok block_resize device=d0 size=$((48 << 20))
wait_serial rs "$pos" "STEP shrunk" 90
pos=$(serial_pos rs)
ctl_ok blockdev-add node-name=r1 driver=raw file.driver=file file.filename="$img1"
ctl_ok device_add driver=scsi-hd drive=r1 scsi-id=0 lun=1 id=rs1 logical_block_size=4096
wait_serial rs "$pos" "STEP added" 90
out=$(ctl block_resize device=rs1 size=$(((40 << 20) + 512))) &&
    e2e_fail "a size that is no multiple of 4096 was accepted" || true
grep -q "multiple of 4096" <<< "$out" || e2e_fail "unaligned resize: $out"
ctl_ok block_resize device=rs1 size=$((40 << 20))
wait_serial rs "$pos" "STEP done" 120

rc=0
e2e_guest_wait rs || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason rs)"
guest_output rs | grep -a 'guest: \|verified runs' | sed 's/^/  /'
e2e_pass
