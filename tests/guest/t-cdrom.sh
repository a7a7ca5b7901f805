#!/usr/bin/env bash
# scsi-cd with ISO images, driven from the host over QMP (vscsictl) while a Linux guest
# runs. The guest boots with block.events_dfl_poll_msecs=2000, so its sr driver polls
# GET EVENT STATUS NOTIFICATION + TEST UNIT READY by itself; after each host-side change
# the guest opens nothing until the kernel has reported the change (a DISK_MEDIA_CHANGE
# or DISK_EJECT_REQUEST uevent, seen with busybox uevent), then checks what it reads.
# LUNs: 0:0 cd0 with ISO A (a.bin, random, checksum from the host), 0:1 cd1, an empty drive,
# 0:2 rd0, a scsi-hd with removable=on (image R1).
#  1. the guest mounts sr0 (isofs, which locks the tray) and reads a.bin; sr1 says
#     "medium not present"; INQUIRY says CD-ROM, removable; WRITE(10) is refused (sense
#     07/27/00 or 05/20/00); READ TOC formats 0-2 work, a bad format gets 05/24/00;
#  2. host `eject` without force while mounted: refused with QEMU's wording ("is locked and
#     force was not specified"), and the guest receives an eject request;
#  3. host `eject force=true`: the tray opens (DEVICE_TRAY_MOVED tray-open true), the guest
#     sees no medium;
#  4. host `blockdev-change-medium` cd0 -> ISO B and cd1 (empty) -> ISO A: the guest sees
#     both new media by itself and reads b.bin / a.bin;
#  5. host `eject` (unlocked): sr0 has no medium;
#  6. a file that is no ISO as medium: served as data (checksum of the whole medium);
#  7. the guest's `eject /dev/sr0` opens the tray (the host sees tray-open true); a
#     blockdev-change-medium with a missing file is a QMP error; host blockdev-close-tray
#     brings the medium back; the guest's `eject` + `eject -t` open and close the tray;
#  8. on cd1: blockdev-open-tray, blockdev-remove-medium, blockdev-add + blockdev-insert-
#     medium of ISO B, blockdev-close-tray: the guest reads b.bin from sr1;
#  9. rd0 (removable disk, RMB=1): blockdev-change-medium to image R2; the sd driver's own
#     polling (TEST UNIT READY) finds it and the guest reads R2's label.
# VSCSI_E2E_BACKEND=builtin runs the same against QEMU's own scsi-cd (QMP of QEMU), as a
# reference for what the guest sees; QEMU reports no media event while the tray is open,
# so there the guest finds removals (3, 5) by opening the drive instead of by itself.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"
# shellcheck source-path=SCRIPTDIR source=images.sh
. "$GUEST_SRC_DIR/images.sh"

T=$E2E_TMP
head -c 1M /dev/urandom > "$T/a.bin"
head -c 700K /dev/urandom > "$T/b.bin"
head -c 1M /dev/urandom > "$T/raw.bin"   # a medium that is no ISO image (512 CD blocks)
img_data_iso "$T/a.iso" VSCSI_A "$T/a.bin"
img_data_iso "$T/b.iso" VSCSI_B "$T/b.bin"
for r in r1 r2; do
    e2e_image "$T/$r.img" 4M
    printf 'vscsi-%s\n' "$r" | dd of="$T/$r.img" conv=notrunc status=none
done
md5() { md5sum < "$1" | cut -d' ' -f1; }

EVENTS=$E2E_LOGDIR/events.log   # vscsictl --json events: one QMP event a line
if [ "$E2E_BACKEND" = vscsid ]; then
    [ -x "$VSCSICTL" ] || e2e_skip "no vscsictl at $VSCSICTL (build it)"
    # shellcheck disable=SC2086 # VSCSID_ARGS is a word list on purpose
    daemon_start vscsid "$VSCSID" --socket "$VSCSID_SOCK" --qmp "$VSCSID_QMP" \
        --drive "id=drv0,media=cdrom,file=$T/a.iso" --device scsi-cd,drive=drv0,scsi-id=0,lun=0,id=cd0 \
        --drive id=drv1,media=cdrom --device scsi-cd,drive=drv1,scsi-id=0,lun=1,id=cd1 \
        --drive "id=drv2,file=$T/r1.img" --device scsi-hd,drive=drv2,scsi-id=0,lun=2,id=rd0,removable=on \
        ${VSCSID_ARGS:-}
    wait_socket "$VSCSID_SOCK" 10 vscsid
    wait_socket "$VSCSID_QMP" 10 vscsid
    daemon_start events "$VSCSICTL" --qmp "$VSCSID_QMP" --json events
    GUEST_ARGS=(--vhost-user "$VSCSID_SOCK")
else
    # QEMU's own scsi-cd; QMP commands go to the guest's QEMU, events come from a second
    # QMP monitor (a QMP socket serves one client at a time).
    VSCSID_QMP=$T/cd.qmp
    GUEST_ARGS=(--builtin-scsi "$T/a.iso,scsi-id=0,lun=0,driver=scsi-cd,media=cdrom,id=cd0"
                --builtin-scsi "$T/r1.img,scsi-id=0,lun=2,id=rd0,removable=on"
                --qemu-arg -drive --qemu-arg "if=none,id=drv1,media=cdrom"
                --qemu-arg -device --qemu-arg "scsi-cd,drive=drv1,bus=vs0.0,scsi-id=0,lun=1,id=cd1"
                --qemu-arg -qmp --qemu-arg "unix:$T/events.qmp,server=on,wait=off")
fi

script=$(guest_script cd <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }
modprobe isofs || vs_die "cannot load isofs"
mkdir -p /mnt/cd
# Every uevent of a block device DEV, one line in /tmp/ue-DEV: "media=0|1 ejreq=0|1".
# /tmp/uepos-DEV: how many lines of it the test has consumed.
uevent /bin/sh -c '[ "$SUBSYSTEM" = block ] && echo "media=${DISK_MEDIA_CHANGE:-0} ejreq=${DISK_EJECT_REQUEST:-0}" >> "/tmp/ue-$DEVNAME"' &
ue_lines() { cat "/tmp/ue-$1" 2>/dev/null | wc -l; }
ue_pos() { cat "/tmp/uepos-$1" 2>/dev/null || echo 0; }
# ue_new DEV KIND: a KIND (media|ejreq) event of DEV after the consumed ones; consumes all.
ue_new() {
    _p=$(ue_pos "$1") _l=$(ue_lines "$1")
    [ "$_l" -gt "$_p" ] || return 1
    tail -n +$((_p + 1)) "/tmp/ue-$1" | grep -q "$2=1" || return 1
    echo "$_l" > "/tmp/uepos-$1"
}

# The checks a medium state must pass (they open the device):
has_iso() {   # DEV FILE MD5
    mount -t iso9660 -o ro "$1" /mnt/cd 2>/dev/null || return 1
    sum=$(md5sum < "/mnt/cd/$2" 2>/dev/null | cut -d' ' -f1)
    umount /mnt/cd
    [ "$sum" = "$3" ]
}
has_data() {  # DEV MD5 BYTES
    [ "$(dd if="$1" bs=2048 count=$(( $3 / 2048 )) 2>/dev/null | md5sum | cut -d' ' -f1)" = "$2" ]
}
has_label() { # DEV LABEL (the first line of sector 0)
    [ "$(dd if="$1" bs=512 count=1 iflag=direct 2>/dev/null | head -n 1)" = "$2" ]
}
has_none() {  # DEV
    dd if="$1" of=/dev/null bs=2048 count=1 2>&1 | grep -q 'No medium found'
}
# wait_change DEV SECS CHECK ARGS...: wait until the kernel reports a media change of DEV
# by itself (a uevent after the last one consumed), then run CHECK; repeat until CHECK
# passes (a change may be reported in two steps, e.g. removed then inserted).
wait_change() {
    _dev=${1#/dev/} _t0=$(up) _n=$(( $2 * 10 ))
    shift 2
    if [ "$1" = has_none ] && [ "$REMOVAL_EVENTS" = 0 ]; then
        # QEMU's scsi-cd reports no GESN event while the tray is open: the guest only
        # learns of a removal when it opens the drive, so poll by opening it.
        while [ $_n -gt 0 ]; do
            if "$@"; then
                vs_info "$_dev: $1 passes after $(since "$_t0") s (found by opening the drive)"
                ue_new "$_dev" media || true
                return 0
            fi
            sleep 0.5; _n=$((_n - 5))
        done
        vs_die "$_dev: '$*' does not pass within the time limit"
    fi
    while [ $_n -gt 0 ]; do
        if ue_new "$_dev" media && "$@"; then
            vs_info "$_dev: media change seen, $1 passes after $(since "$_t0") s"
            return 0
        fi
        sleep 0.1; _n=$((_n - 1))
    done
    head -n 50 /tmp/ue-*
    vs_die "$_dev: no media change passing '$*' within the time limit"
}
# sg_raw_expect DEV WANT CDB...: the command fails with sense matching WANT (grep -E on
# sg_raw's decoded sense).
sg_raw_expect() {
    _dev=$1 _want=$2
    shift 2
    _out=$(sg_raw -v -r 2048 "$_dev" "$@" 2>&1) && vs_die "sg_raw $*: succeeded, want $_want"
    echo "$_out" | grep -Eq "$_want" || { echo "$_out"; vs_die "sg_raw $*: want sense '$_want'"; }
}

sr0=$(vs_need_disk 0 0); sg0=$(vs_need_sg 0 0)
sr1=$(vs_need_disk 0 1); sg1=$(vs_need_sg 0 1)
rd=$(vs_need_disk 0 2)
vs_show
# 1. what the guest sees at boot
[ "$(cat /sys/module/block/parameters/events_dfl_poll_msecs)" = 2000 ] || vs_die "block.events_dfl_poll_msecs is not 2000"
grep -q media_change "/sys/block/${sr0#/dev/}/events" || vs_die "sr0 reports no media_change events: $(cat "/sys/block/${sr0#/dev/}/events")"
grep -q eject_request "/sys/block/${sr0#/dev/}/events" || vs_die "sr0 reports no eject_request events"
inq=$(sg_inq "$sg0") || vs_die "INQUIRY failed"
echo "$inq" | grep -q 'PDT=5' || vs_die "INQUIRY: no PDT 5: $inq"
echo "$inq" | grep -q 'RMB=1' || vs_die "INQUIRY: not removable: $inq"
mount -t iso9660 -o ro "$sr0" /mnt/cd || vs_die "cannot mount $sr0"
[ "$(md5sum < /mnt/cd/a.bin | cut -d' ' -f1)" = "$MD5A" ] || vs_die "a.bin differs from the host's"
vs_info "sr0: a.bin matches the host's checksum; size $(blockdev --getsize64 "$sr0")"
[ "$(cat "/sys/block/${rd#/dev/}/removable")" = 1 ] || vs_die "$rd (removable=on) is not removable"
has_label "$rd" vscsi-r1 || vs_die "$rd does not read R1's label"
has_none "$sr1" || vs_die "$sr1: the empty drive does not say 'No medium found'"
sg_raw_expect "$sg1" "$EMPTY_SENSE" 00 00 00 00 00 00
# writes to a CD are refused with WRITE_SENSE (vscsid: ILLEGAL REQUEST / INVALID COMMAND
# OPERATION CODE, 05/20/00: a CD-ROM drive has no write commands, MMC-6 4.1.2; QEMU:
# DATA PROTECT / WRITE PROTECTED, 07/27/00)
head -c 2048 /dev/zero > /tmp/blk
out=$(sg_raw -v -s 2048 -i /tmp/blk "$sg0" 2a 00 00 00 00 00 00 00 01 00 2>&1) && vs_die "WRITE(10) to the CD succeeded"
for want in $WRITE_SENSE; do
    echo "$out" | grep -q "$(echo "$want" | tr _ ' ')" || { echo "$out"; vs_die "WRITE(10): no '$want' in the sense"; }
done
vs_info "WRITE(10): $(echo "$out" | grep -E -m1 'Sense key' | sed 's/^ *//'), $(echo "$out" | grep -E -m1 'Additional sense' | sed 's/^ *//')"
# READ TOC/PMA/ATIP: formats 0 (TOC), 1 (session info), 2 (full TOC), LBA and MSF
for f in 00 01 02; do
    for msf in 00 02; do
        sg_raw -r 2048 "$sg0" 43 $msf $f 00 00 00 00 08 00 00 > /dev/null 2>&1 ||
            vs_die "READ TOC format $f (byte 1 $msf) failed: $(sg_raw -v -r 2048 "$sg0" 43 $msf $f 00 00 00 00 08 00 00 2>&1 | tail -n 3)"
    done
done
sg_raw_expect "$sg0" 'Illegal Request' 43 00 0f 00 00 00 00 08 00 00
sg_raw_expect "$sg0" 'Invalid field in cdb' 43 00 0f 00 00 00 00 08 00 00
vs_info "READ TOC formats 0-2 work; format 0xf: Invalid field in cdb"
echo "STEP mounted"

# 2. the host's eject without force, refused: the drive tells the guest of the request
_t0=$(up)
until ue_new "${sr0#/dev/}" ejreq; do
    [ "$(since "$_t0" | cut -d. -f1)" -lt 30 ] || { head -n 50 /tmp/ue-*; vs_die "no eject request uevent"; }
    sleep 0.1
done
vs_info "sr0: eject request seen after $(since "$_t0") s"
echo "STEP ejreq"

# 3. forced eject: the medium is gone under the mount
wait_change "$sr0" 30 has_none "$sr0"
umount /mnt/cd || umount -l /mnt/cd || vs_die "cannot unmount $sr0"
echo "STEP forced"

# 4. new media on both drives, by the kernel's own polling
wait_change "$sr0" 30 has_iso "$sr0" b.bin "$MD5B"
wait_change "$sr1" 30 has_iso "$sr1" a.bin "$MD5A"
echo "STEP changed"

# 5. host eject (unlocked): no medium
wait_change "$sr0" 30 has_none "$sr0"
echo "STEP empty"

# 6. a medium that is no ISO image is served as data
wait_change "$sr0" 30 has_data "$sr0" "$MD5RAW" 1048576
[ "$(blockdev --getsize64 "$sr0")" = 1048576 ] || vs_die "$sr0 has $(blockdev --getsize64 "$sr0") bytes, want 1048576"
echo "STEP raw"

# 7. the guest opens the tray; the host closes it. Linux closes an open tray on
# the next open of the drive (autoclose): off meanwhile, so that the tray stays
# open until the host has looked at it and closed it (the opens in wait_change
# then fail with "No medium found" instead of closing it).
[ -w /proc/sys/dev/cdrom/autoclose ] || vs_die "no /proc/sys/dev/cdrom/autoclose"
echo 0 > /proc/sys/dev/cdrom/autoclose
eject "$sr0" || vs_die "eject $sr0 failed"
echo "STEP guest-ejected"
wait_change "$sr0" 30 has_data "$sr0" "$MD5RAW" 1048576
echo 1 > /proc/sys/dev/cdrom/autoclose
echo "STEP closed"
eject "$sr0" || vs_die "second eject $sr0 failed"
eject -t "$sr0" || vs_die "eject -t $sr0 failed"
# (no wait for a uevent: the tray may close before a poll saw it open)
has_data "$sr0" "$MD5RAW" 1048576 || vs_die "$sr0: the medium does not read after eject -t"
echo "STEP guest-tray"

# 8. the medium swapped step by step on cd1
wait_change "$sr1" 30 has_iso "$sr1" b.bin "$MD5B"
echo "STEP swapped"

# 9. the removable disk gets another image
wait_change "$rd" 30 has_label "$rd" vscsi-r2
echo "STEP done"
EOF
)

# What differs between vscsid and QEMU's scsi-cd (the reference): the sense of a write,
# of an empty closed drive, and media events while the tray is open.
if [ "$E2E_BACKEND" = vscsid ]; then
    gargs=(--env REMOVAL_EVENTS=1 --env "WRITE_SENSE=Illegal_Request Invalid_command_operation_code"
           --env "EMPTY_SENSE=Medium not present - tray closed")
else
    gargs=(--env REMOVAL_EVENTS=0 --env "WRITE_SENSE=Data_Protect Write_protected"
           --env "EMPTY_SENSE=Medium not present")
fi
e2e_guest_bg cd "$script" --append block.events_dfl_poll_msecs=2000 "${gargs[@]}" \
    --env "MD5A=$(md5 "$T/a.bin")" --env "MD5B=$(md5 "$T/b.bin")" --env "MD5RAW=$(md5 "$T/raw.bin")"
if [ "$E2E_BACKEND" = builtin ]; then
    wait_socket "$T/events.qmp" 30
    daemon_start events "$VSCSICTL" --qmp "$T/events.qmp" --json events
fi

# event_pos: events logged so far (lines). wait_tray FROM ID OPEN SECS: until a
# DEVICE_TRAY_MOVED of ID with tray-open OPEN comes after event FROM; sets EV_AT to its
# line, for the next wait of a sequence.
event_pos() { wc -l < "$EVENTS"; }
wait_tray() {
    local from=$1 id=$2 open=$3 secs=$4 start
    start=$(now)
    EV_AT=
    until EV_AT=$(awk -v from="$from" -v id="$id" -v open="$open" 'NR > from {
              gsub(/ /, "")
              if (index($0, "\"DEVICE_TRAY_MOVED\"") && index($0, "\"id\":\"" id "\"") &&
                  index($0, "\"tray-open\":" open)) { print NR; exit }
          }' "$EVENTS") && [ -n "$EV_AT" ]; do
        if timed_out "$start" "$secs"; then
            sed 's/^/  | /' "$EVENTS"
            e2e_fail "no DEVICE_TRAY_MOVED $id tray-open=$open after event $from within ${secs}s"
        fi
        daemon_alive events || e2e_fail "the event listener ended: $(tail -n 3 "$EVENTS")"
        sleep 0.1
    done
}
# tray_state QDEV: "locked=B tray_open=B medium=yes|no" from query-block.
tray_state() {
    local row
    # one line per element of the returned array (brace depth outside strings)
    row=$(ctl --json query-block | awk '{
        for (i = 1; i <= length($0); i++) {
            c = substr($0, i, 1)
            if (instr) { if (esc) esc = 0; else if (c == "\\") esc = 1; else if (c == "\"") instr = 0 }
            else if (c == "\"") instr = 1
            else if (c == "{") depth++
            else if (c == "}") { depth--; if (depth == 0) { printf "}\n"; continue } }
            if (depth > 0 && c != " ") printf "%s", c
        }
    }' | grep "\"qdev\":\"$1\"") ||
        e2e_fail "query-block has no drive of $1"
    printf 'locked=%s tray_open=%s medium=%s\n' \
        "$(grep -o '"locked":[a-z]*' <<< "$row" | cut -d: -f2)" \
        "$(grep -o '"tray_open":[a-z]*' <<< "$row" | cut -d: -f2)" \
        "$(grep -q '"inserted":' <<< "$row" && echo yes || echo no)"
}
expect_tray() {   # QDEV WANT
    local got
    got=$(tray_state "$1")
    [ "$got" = "$2" ] || e2e_fail "query-block $1: $got, want $2"
}
# expect_error WANT ARGS...: the QMP command fails, with a message matching WANT (grep -E).
expect_error() {
    local want=$1 out
    shift
    out=$(ctl "$@" 2>&1) && e2e_fail "vscsictl $* succeeded, want an error"
    grep -Eq "$want" <<< "$out" || e2e_fail "vscsictl $*: '$out', want /$want/"
    echo "  $1: $out"
}

wait_serial cd 0 "STEP mounted" 120
expect_tray cd0 "locked=true tray_open=false medium=yes"   # the guest's mount locked it
expect_tray cd1 "locked=false tray_open=false medium=no"
# 2.
pos=$(serial_pos cd)
expect_error "is locked and force was not specified" eject id=cd0
wait_serial cd "$pos" "STEP ejreq" 40
# 3.
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok eject id=cd0 force=true
wait_tray "$epos" cd0 true 10
expect_tray cd0 "locked=false tray_open=true medium=no"
wait_serial cd "$pos" "STEP forced" 40
# 4.
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok blockdev-change-medium id=cd0 filename="$T/b.iso" format=raw
ctl_ok blockdev-change-medium id=cd1 filename="$T/a.iso" format=raw
wait_tray "$epos" cd0 false 10
wait_tray "$epos" cd1 false 10
wait_serial cd "$pos" "STEP changed" 70
# 5.
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok eject id=cd0
wait_tray "$epos" cd0 true 10
wait_serial cd "$pos" "STEP empty" 40
# 6. (the tray is open and empty: the change closes it)
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok blockdev-change-medium id=cd0 filename="$T/raw.bin" format=raw
wait_tray "$epos" cd0 false 10
wait_serial cd "$pos" "STEP raw" 40
# 7. the guest ejects right after "STEP raw"
wait_serial cd "$pos" "STEP guest-ejected" 40
wait_tray "$EV_AT" cd0 true 10
expect_tray cd0 "locked=false tray_open=true medium=yes"
expect_error "$T/missing.iso" blockdev-change-medium id=cd0 filename="$T/missing.iso" format=raw
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok blockdev-close-tray id=cd0
wait_tray "$epos" cd0 false 10
wait_serial cd "$pos" "STEP guest-tray" 60
# the guest's eject and eject -t, after the host's close
wait_tray "$EV_AT" cd0 true 10
wait_tray "$EV_AT" cd0 false 10
# 8.
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok blockdev-open-tray id=cd1
wait_tray "$epos" cd1 true 10
ctl_ok blockdev-remove-medium id=cd1
ctl_ok blockdev-add node-name=isob driver=raw read-only=true file.driver=file file.filename="$T/b.iso"
ctl_ok blockdev-insert-medium id=cd1 node-name=isob
ctl_ok blockdev-close-tray id=cd1
wait_tray "$epos" cd1 false 10
wait_serial cd "$pos" "STEP swapped" 40
# 9.
pos=$(serial_pos cd) epos=$(event_pos)
ctl_ok blockdev-change-medium id=rd0 filename="$T/r2.img" format=raw
wait_tray "$epos" rd0 true 10
wait_tray "$EV_AT" rd0 false 10
wait_serial cd "$pos" "STEP done" 40

rc=0
e2e_guest_wait cd || rc=$?
daemon_stop events || true   # ends by itself when a QEMU QMP socket closes
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason cd)"
guest_output cd | grep -a '^guest:' | sed 's/^/  /'
if [ "$E2E_BACKEND" = vscsid ] && grep -Eq '^vscsid: (warning|error):' "$E2E_LOGDIR/vscsid.log"; then
    e2e_fail "vscsid logged: $(grep -E -m1 '^vscsid: (warning|error):' "$E2E_LOGDIR/vscsid.log")"
fi
e2e_pass
