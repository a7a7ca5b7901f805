#!/usr/bin/env bash
# Firmware boot: QEMU's default firmware (SeaBIOS, with its own virtio-scsi driver) boots
# from vscsid LUNs, with no -kernel. Each case starts its own vscsid and a QEMU with
#   -device vhost-user-scsi-pci,chardev=c0,bootindex=1[,boot_tpgt=T]
# and boots images built by images.sh, whose boot code prints a marker ("NAME dl=XX", XX the
# BIOS drive number) on COM1 and ends QEMU through isa-debug-exit (status 33):
#   disk      default machine (i440fx): a disk at 0:0 boots, as drive 80
#   q35       the same on q35 (SeaBIOS drives the controller as a virtio 1.0 device)
#   legacy    disable-modern=on: SeaBIOS's legacy (0.9.5) virtio path, no VERSION_1
#   tpgt      q35, a decoy disk at 0:0 and the boot disk at 2:0 with boot_tpgt=2: QEMU's
#             bootorder names target 2 LUN 0, and SeaBIOS boots it, not the first disk
#   lun300    a disk at 3:300 only (no LUN 0 on any target; REPORT LUNS to an absent LUN 0,
#             flat-space LUN 300): found and booted as the first hard disk
#   cd        scsi-cd with an El Torito no-emulation ISO at 0:0 boots (drive E0)
#   cd-tpgt   default machine, a decoy disk at 0:0 and the CD at 1:0 with boot_tpgt=1:
#             the CD wins, although the default order ("cad") puts hard disks first
#   qemu10    the disk case under QEMU 10 (get-qemu10.sh; not counted when that fails)
# vscsid must stop cleanly and log no warning or error. SeaBIOS's own log (debug port
# 0x402) of each case is kept in LOGDIR/t-boot/CASE.bios: which targets/LUNs it found,
# the bootorder it searched.
# VSCSI_E2E_BACKEND=builtin runs the same cases on QEMU's virtio-scsi (bootindex on the
# device at target boot_tpgt, LUN 0), as a reference. See docs/boot.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=images.sh
. "$GUEST_SRC_DIR/images.sh"

BOOT_TIMEOUT=${VSCSI_BOOT_TIMEOUT:-60}
REPORT=()
NOT_RUN=()

# fw_boot CASE EXPECT "QEMU_OPTS" "CTRL_OPTS" SPEC...: boot SeaBIOS from the LUNs SPEC
# (T:L:hd|cd:IMAGE) on one controller and check that the boot code of EXPECT ran: its
# marker line on serial and QEMU's exit status 33. QEMU_OPTS (word-split) for QEMU
# (-M q35, ...), CTRL_OPTS appended to the controller (,boot_tpgt=2). QEMU from $QEMU.
fw_boot() {
    local name=$1 expect=$2 qopts=$3 ctrl=$4 spec t l kind img dev drv i=0 tpgt=0 boot
    shift 4
    local sock=$E2E_TMP/$name.sock serial=$E2E_LOGDIR/$name.serial bios=$E2E_LOGDIR/$name.bios
    local args=() qargs=() qpid rc=0 start why='' line
    [[ $ctrl =~ boot_tpgt=([0-9]+) ]] && tpgt=${BASH_REMATCH[1]}
    # QEMU's virtio-scsi-pci has no bootindex (its devices have): the rest of CTRL_OPTS only.
    [ "$E2E_BACKEND" = builtin ] &&
        qargs+=(-device "virtio-scsi-pci,id=vs0$(sed -E 's/,boot_tpgt=[0-9]+//' <<< "$ctrl")")
    for spec in "$@"; do
        IFS=: read -r t l kind img <<< "$spec"
        dev=scsi-hd drv=''
        [ "$kind" = cd ] && dev=scsi-cd drv=,media=cdrom
        if [ "$E2E_BACKEND" = builtin ]; then
            boot=''
            [ "$t" = "$tpgt" ] && [ "$l" = 0 ] && boot=,bootindex=1
            qargs+=(-drive "file=$img,if=none,id=d$i,format=raw$drv"
                    -device "$dev,drive=d$i,bus=vs0.0,scsi-id=$t,lun=$l$boot")
        else
            args+=(--drive "file=$img,id=d$i$drv" --device "$dev,drive=d$i,scsi-id=$t,lun=$l")
        fi
        i=$((i + 1))
    done
    if [ "$E2E_BACKEND" = vscsid ]; then
        # shellcheck disable=SC2086 # VSCSID_ARGS is a word list on purpose
        daemon_start "vscsid-$name" "$VSCSID" --socket "$sock" "${args[@]}" ${VSCSID_ARGS:-}
        wait_socket "$sock" 10 "vscsid-$name"
        qargs+=(-chardev "socket,id=c0,path=$sock"
                -device "vhost-user-scsi-pci,id=vus0,chardev=c0,bootindex=1$ctrl")
    fi
    : > "$serial"
    : > "$bios"
    # shellcheck disable=SC2086 # qopts is a word list
    "$QEMU" "${QEMU_DATA[@]}" $qopts -m 128M -nodefaults -no-reboot -display none \
        -object memory-backend-memfd,id=mem,size=128M,share=on -numa node,memdev=mem \
        -chardev "file,id=ser0,path=$serial" -serial chardev:ser0 -monitor none \
        -chardev "file,id=dbg,path=$bios" -device isa-debugcon,iobase=0x402,chardev=dbg \
        -device isa-debug-exit,iobase=0xf4,iosize=1 "${qargs[@]}" \
        > "$E2E_LOGDIR/$name.qemu" 2>&1 < /dev/null &
    qpid=$!
    echo "$qpid" > "$E2E_TMP/$name.pid"
    QEMU_PIDFILES+=("$E2E_TMP/$name.pid")
    start=$(now)
    while pid_alive "$qpid"; do
        # SeaBIOS retries forever ("No bootable device. Retrying in 60 seconds.").
        if grep -aq 'No bootable device' "$bios"; then why="SeaBIOS found no bootable device"; break; fi
        if timed_out "$start" "$BOOT_TIMEOUT"; then why="no exit within ${BOOT_TIMEOUT}s"; break; fi
        sleep 0.1
    done
    if [ -n "$why" ]; then
        kill_qemu "$qpid"
        wait "$qpid" 2>/dev/null || true
    else
        wait "$qpid" || rc=$?
    fi
    line=$(tr -d '\r' < "$serial" | grep -a -m1 'dl=' || true)
    if [ -z "$why" ]; then
        if [ "$line" != "${line#"$expect dl="}" ] && [ "$rc" = "$BOOT_EXIT_STATUS" ]; then
            :
        elif [ -n "$line" ]; then
            why="booted '$line' (QEMU status $rc), want $expect"
        else
            why="QEMU exited with $rc and no marker: $(tail -n 3 "$E2E_LOGDIR/$name.qemu" | tr '\n' ' ')"
        fi
    fi
    if [ "$E2E_BACKEND" = vscsid ]; then
        rc=0
        daemon_stop "vscsid-$name" > /dev/null || rc=$?
        [ "$rc" = 0 ] || why="${why:+$why; }vscsid exited with status $rc on SIGTERM"
        if grep -Eq '^vscsid: (warning|error):' "$E2E_LOGDIR/vscsid-$name.log"; then
            why="${why:+$why; }vscsid logged: $(grep -E -m1 '^vscsid: (warning|error):' "$E2E_LOGDIR/vscsid-$name.log")"
        fi
    fi
    if [ -n "$why" ]; then
        echo "  --- $name: SeaBIOS log tail ($bios)"
        grep -av '^  [0-9]*: [0-9a-f]* - ' "$bios" | tail -n 15 | sed 's/^/  | /'
        e2e_fail "$name: $why"
    fi
    REPORT+=("$name: '$line' in $(elapsed "$start")s ($(grep -a -m1 '^Booting from [A-Z]' "$bios" || echo '?'))")
}

qemu_resolve
[ "$E2E_BACKEND" = builtin ] || [ -x "$VSCSID" ] || e2e_skip "no vscsid at $VSCSID"

T=$E2E_TMP
img_boot_disk "$T/a.img" VSCSI-BOOT-A
img_boot_disk "$T/b.img" VSCSI-BOOT-DECOY
img_boot_disk "$T/c.img" VSCSI-BOOT-T2
img_boot_disk "$T/d.img" VSCSI-BOOT-L300 4M

fw_boot disk VSCSI-BOOT-A "" "" 0:0:hd:"$T/a.img"
fw_boot q35 VSCSI-BOOT-A "-M q35" "" 0:0:hd:"$T/a.img"
fw_boot legacy VSCSI-BOOT-A "" ",disable-modern=on" 0:0:hd:"$T/a.img"
grep -aq 'using legacy (0.9.5) virtio mode' "$E2E_LOGDIR/legacy.bios" ||
    e2e_fail "legacy: SeaBIOS did not drive the controller in legacy mode"
grep -aq 'using modern (1.0) virtio mode' "$E2E_LOGDIR/q35.bios" ||
    e2e_fail "q35: SeaBIOS did not drive the controller in modern mode"
fw_boot tpgt VSCSI-BOOT-T2 "-M q35" ",boot_tpgt=2" 0:0:hd:"$T/b.img" 2:0:hd:"$T/c.img"
fw_boot lun300 VSCSI-BOOT-L300 "-M q35" "" 3:300:hd:"$T/d.img"
# SeaBIOS keeps the flat-space address method in the LUN it looks up (0x412c for 300).
grep -aq 'Searching bootorder for: /pci@i0cf8/\*@[0-9a-f]*/\*@0/\*@3,412c' "$E2E_LOGDIR/lun300.bios" ||
    e2e_fail "lun300: SeaBIOS did not look up target 3 LUN 0x412c"

img_boot_iso "$T/e.iso" VSCSI-BOOT-CD
fw_boot cd VSCSI-BOOT-CD "-M q35" "" 0:0:cd:"$T/e.iso"
fw_boot cd-tpgt VSCSI-BOOT-CD "" ",boot_tpgt=1" 0:0:hd:"$T/b.img" 1:0:cd:"$T/e.iso"
grep -aq "VSCSI-BOOT-CD dl=E0" "$E2E_LOGDIR/cd.serial" || e2e_fail "cd: not booted as drive E0"

if [ "${VSCSI_BOOT_QEMU10:-1}" = 1 ]; then
    if q10=$("$GUEST_SRC_DIR/get-qemu10.sh" 2> "$E2E_LOGDIR/get-qemu10.log"); then
        qemu_resolve "$q10"
        fw_boot qemu10 VSCSI-BOOT-A "-M q35" "" 0:0:hd:"$T/a.img"
    else
        NOT_RUN+=("qemu10: get-qemu10.sh failed ($(tail -n 1 "$E2E_LOGDIR/get-qemu10.log"))")
    fi
fi

for r in "${REPORT[@]}"; do echo "  $r"; done
for r in "${NOT_RUN[@]}"; do echo "  not run: $r"; done
e2e_pass
