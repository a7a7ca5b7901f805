#!/usr/bin/env bash
# LUN hot-plug and hot-unplug while a Linux guest runs, driven over vscsid's QMP socket
# with vscsictl; nothing is done inside the guest to make it notice:
#  A  blockdev-add + device_add of a LUN on the existing target 0: its /dev/sdX appears,
#     REPORT LUNS of target 0 lists it, LUN 0 reports REPORTED LUNS DATA HAS CHANGED;
#  B  a LUN 0 on a new target (3): the target is scanned;
#  C  LUN 300 on target 3 (flat addressing): found once, as 16684 like REPORT LUNS says;
#  D  device_del of 0:1 while fio writes to it and a verifying fio runs on 0:0, with a
#     battery of bad QMP input sent meanwhile: 0:1 disappears, 0:0 sees no error and its
#     fio passes, the daemon answers every bad request with an error and carries on;
#  E  device_add of the same drive at 0:1 again: the data written before is intact (also
#     checked in the image file on the host).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

img0=$E2E_TMP/disk0.img
e2e_image "$img0" 64M
e2e_lun 0 0 "$img0"
# Drives added later; a label in sector 0 and, in h1, a 1 MiB block at 16 MiB that the
# guest reads before and after the unplug (fio on it stays below 8 MiB).
for spec in h1:32M h2:16M h3:8M; do
    e2e_image "$E2E_TMP/${spec%%:*}.img" "${spec#*:}"
    printf 'vscsi-%s\n' "${spec%%:*}" | dd of="$E2E_TMP/${spec%%:*}.img" conv=notrunc status=none
done
head -c 1M /dev/urandom > "$E2E_TMP/check.bin"
dd if="$E2E_TMP/check.bin" of="$E2E_TMP/h1.img" bs=1M seek=16 conv=notrunc status=none
check_md5=$(md5sum < "$E2E_TMP/check.bin" | cut -d' ' -f1)
mgmt_backend_start

script=$(guest_script hp <<EOF
#!/bin/sh
. /lib/vscsi.sh
$GUEST_MGMT_LIB
EOF
)
cat >> "$script" <<'EOF'
label() { dd if="$1" bs=512 count=1 iflag=direct status=none | head -n 1; }
region_md5() { dd if="$1" bs=1M skip=16 count=1 iflag=direct status=none | md5sum | cut -d' ' -f1; }
vs_autoscan
d0=$(vs_need_disk 0 0)
sg0=$(vs_need_sg 0 0)
echo "STEP ready"

# A: a LUN on the target the guest has
a=$(vs_wait_disk 0 1 60)
[ "$(label "$a")" = vscsi-h1 ] || vs_die "0:1 ($a) reads label '$(label "$a")'"
[ "$(blockdev --getsize64 "$a")" = $((32 << 20)) ] || vs_die "0:1 has $(blockdev --getsize64 "$a") bytes"
[ "$(region_md5 "$a")" = "$CHECK_MD5" ] || vs_die "0:1: check region differs before the test"
luns=$(sg_luns --quiet "$sg0" | sort | tr '\n' ' ')
[ "$luns" = "0000000000000000 0001000000000000 " ] || vs_die "REPORT LUNS of target 0 after device_add: $luns"
# The UA is pending for LUN 0 until its next command; nothing else runs on it here.
ua=$(sg_turs -v "$sg0" 2>&1 || true)
if echo "$ua" | grep -qi 'reported luns data has changed'; then
    vs_info "0:0 reported UA 3F/0E REPORTED LUNS DATA HAS CHANGED"
elif dmesg | grep -q 'LUN assignments on this target have changed'; then
    vs_info "the kernel saw UA 3F/0E on 0:0"
else
    vs_die "no REPORTED LUNS DATA HAS CHANGED on 0:0: $ua"
fi
vs_info "A: 0:1 is $a"
echo "STEP a-ok"

# B: LUN 0 of a new target
b=$(vs_wait_disk 3 0 60)
[ "$(label "$b")" = vscsi-h2 ] || vs_die "3:0 ($b) reads label '$(label "$b")'"
vs_info "B: 3:0 is $b"
echo "STEP b-ok"

# C: LUN 300 on target 3: exactly one more device, with Linux's flat-addressing number
c=$(vs_wait_disk 3 300 60)
[ "$(label "$c")" = vscsi-h3 ] || vs_die "3:300 ($c) reads label '$(label "$c")'"
[ "$(vs_count 3)" = 2 ] || vs_die "target 3 has $(vs_count 3) LUNs, want 2: $(ls /sys/bus/scsi/devices)"
vs_info "C: 3:300 is $c ($(ls -d /sys/bus/scsi/devices/*:0:3:16684))"
echo "STEP c-ok"

# D: unplug 0:1 under I/O; 0:0 keeps running verified I/O throughout
# allow_file_create=0: once the node is gone fio must not create a file in its place
fio --name=doomed --filename="$a" --allow_file_create=0 --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=8 --offset=1M --size=7M --time_based --runtime=600 --eta=never > /tmp/doomed.out 2>&1 &
doomed=$!
(
    n=0
    while [ ! -e /tmp/stop0 ] || [ $n -lt 2 ]; do
        fio --name=keep --filename="$d0" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
            --iodepth=8 --size=8M --offset=$((n % 4 * 8))M --verify=crc32c --do_verify=1 \
            --verify_fatal=1 --eta=never > /tmp/keep.out 2>&1 || { cat /tmp/keep.out; exit 1; }
        n=$((n + 1))
    done
    echo "fio on 0:0: $n verified runs"
) &
keep=$!
sleep 1
echo "STEP d-running"
vs_wait_gone 0 1 120
touch /tmp/stop0
wait $keep || vs_die "fio on 0:0 failed while 0:1 was unplugged"
# the fio on the removed LUN ends with an error; it must not hang
n=0
while kill -0 $doomed 2>/dev/null && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
kill -0 $doomed 2>/dev/null && vs_die "fio on the removed 0:1 still runs 20 s after the removal"
wait $doomed && vs_info "fio on 0:1 ended without error" || vs_info "fio on 0:1 ended with an error, as expected"
tail -n 2 /tmp/doomed.out
# The device leaves /sys/bus/scsi/devices before sd_remove runs; the node goes with
# del_gendisk, which waits for the requests still queued (slow under a loaded TCG host).
n=0
while [ -b "$a" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
if [ -e "$a" ]; then
    ls -l /dev/sd* /sys/block /sys/bus/scsi/devices
    vs_die "$a still exists 60 s after 0:1 left sysfs"
fi
dn=${d0#/dev/}
if dmesg | grep -E "\[$dn\]|0:0:0:0" | grep -v 'Power-on or device reset occurred' |
   grep -Ei 'error|fail|reset|abort|timing out|offline'; then
    vs_die "the kernel logged errors for 0:0 ($d0)"
fi
echo "STEP d-ok"

# E: the same drive again: what was written is there
e=$(vs_wait_disk 0 1 60)
[ "$(label "$e")" = vscsi-h1 ] || vs_die "0:1 again ($e) reads label '$(label "$e")'"
[ "$(region_md5 "$e")" = "$CHECK_MD5" ] || vs_die "0:1: check region changed across the unplug"
vs_info "E: 0:1 is back as $e, data intact"
echo "STEP e-ok"
EOF

e2e_guest_bg hp "$script" --env "CHECK_MD5=$check_md5"
wait_serial hp 0 "STEP ready" 120

pos=$(serial_pos hp)
ctl_ok blockdev-add node-name=h1 driver=raw file.driver=file file.filename="$E2E_TMP/h1.img"
ctl_ok device_add driver=scsi-hd drive=h1 scsi-id=0 lun=1 id=hp1
wait_serial hp "$pos" "STEP a-ok" 90

pos=$(serial_pos hp)
ctl_ok blockdev-add node-name=h2 driver=raw file.driver=file file.filename="$E2E_TMP/h2.img"
ctl_ok device_add driver=scsi-hd drive=h2 scsi-id=3 lun=0 id=hp2
wait_serial hp "$pos" "STEP b-ok" 90

pos=$(serial_pos hp)
ctl_ok blockdev-add node-name=h3 driver=raw file.driver=file file.filename="$E2E_TMP/h3.img"
ctl_ok device_add driver=scsi-hd drive=h3 scsi-id=3 lun=300 id=hp3
wait_serial hp "$pos" "STEP c-ok" 90

wait_serial hp "$pos" "STEP d-running" 90
pos=$(serial_pos hp)
# Bad input while the guest does I/O: each gets an error (or closes that client only).
# expect_err NAME PATTERN ARGS...: vscsictl ARGS fails with PATTERN in its message.
expect_err() {
    local name=$1 pat=$2 out rc=0
    shift 2
    out=$(ctl "$@") && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -qF -- "$pat" <<< "$out" || e2e_fail "bad input '$name': rc $rc, got: $out"
}
expect_err "unknown command" "The command nope has not been found" nope
expect_err "missing argument" "Parameter 'driver' is missing" device_add drive=h1
expect_err "missing drive" "missing drive=" device_add driver=scsi-hd lun=5
expect_err "mistyped argument" "Invalid parameter type for 'size', expected: integer" \
    block_resize node-name=h1 size=big
expect_err "scsi-id > 255" "scsi-id=256: expected a number from 0 to 255" \
    device_add driver=scsi-hd drive=h1 scsi-id=256
expect_err "lun > 16383" "lun=16384: expected a number from 0 to 16383" \
    device_add driver=scsi-hd drive=h1 lun=16384
ctl_ok blockdev-add node-name=spare driver=null-co size=1048576
expect_err "address taken" "scsi-id=0,lun=0 is already taken by device" \
    device_add driver=scsi-hd drive=spare scsi-id=0 lun=0
expect_err "unknown drive" "drive 'nope' not found" device_add driver=scsi-hd drive=nope lun=9
expect_err "drive attached" "drive 'h1' is already attached to device 'hp1'" \
    device_add driver=scsi-hd drive=h1 lun=9
expect_err "device_del unknown" "Device 'nope' not found" device_del id=nope
expect_err "blockdev-del attached" "in use by device 'hp1'" blockdev-del node-name=h1
# Raw bytes: malformed JSON (the connection stays: the next request is answered), a
# client gone in the middle of a request, a message over the 1 MiB limit.
out=$( { printf '{"execute": "qmp_capabilities"}\r\n{"execute": "device_add", "arguments": {"driver": }}\r\n'
         printf '{"execute": "query-status"}\r\n'; sleep 0.5; } | socat -t 2 - "UNIX-CONNECT:$VSCSID_QMP")
grep -q '"desc": "JSON parse error' <<< "$out" && grep -q '"status": "running"' <<< "$out" ||
    e2e_fail "malformed JSON: $out"
printf '{"execute": "qmp_capabilities"}\r\n{"execute": "device_add", "arguments": {"driver": "scsi-hd", "dri' |
    socat -t 1 - "UNIX-CONNECT:$VSCSID_QMP" > /dev/null
# 2 MiB: vscsid answers at 1 MiB and drops the rest while socat still writes it.
out=$( { printf '{"execute": "qmp_capabilities"}\r\n{"execute": "device_add", "arguments": {"serial": "'
         head -c 2097152 /dev/zero | tr '\0' x; sleep 0.5; } | socat -t 2 - "UNIX-CONNECT:$VSCSID_QMP" || true)
grep -q 'exceeds the 1048576 byte limit' <<< "$out" || e2e_fail "huge message: $(head -c 300 <<< "$out")"
ctl_ok blockdev-del node-name=spare
[ "$(ctl --json query-scsi-devices | grep -o '"id"' | wc -l)" = 4 ] || e2e_fail "devices changed by bad input"
e2e_backend_alive || e2e_fail "vscsid died from bad input"
echo "  bad input: 15 requests refused with the right errors, daemon and guest unaffected"

ctl_ok device_del id=hp1            # returns at DEVICE_DELETED
grep -q 'DEVICE_DELETED\|device hp1 deleted' "$E2E_LOGDIR/qmp.log" || e2e_fail "no DEVICE_DELETED for hp1"
wait_serial hp "$pos" "STEP d-ok" 180
cmp -s -n 1048576 "$E2E_TMP/check.bin" <(tail -c +$((16 * 1048576 + 1)) "$E2E_TMP/h1.img") ||
    e2e_fail "h1.img: the 1 MiB at 16 MiB changed"

pos=$(serial_pos hp)
ctl_ok device_add driver=scsi-hd drive=h1 scsi-id=0 lun=1 id=hp1
wait_serial hp "$pos" "STEP e-ok" 90

rc=0
e2e_guest_wait hp || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason hp)"
guest_output hp | grep -a 'guest: \|verified runs' | sed 's/^/  /'
e2e_pass
