#!/bin/sh
# /init of the vscsi test guest (runs as PID 1 from the initramfs; /bin/sh is bash there,
# see build-guest.sh).
# Brings up the SCSI stack, waits until every LUN the scan found has its upper driver,
# runs /test.sh (from a second, per-test initramfs) between markers the host parses,
# and powers off. Never returns: PID 1 exiting would panic the kernel.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM="${TERM:-dumb}"

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null   # may already be there (CONFIG_DEVTMPFS_MOUNT)
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname vscsi-guest

cmdline_opt() {   # value of vscsi.NAME=VALUE on the kernel command line
    # shellcheck disable=SC2013 # words, not lines
    for w in $(cat /proc/cmdline); do
        case $w in "vscsi.$1="*) echo "${w#*=}"; return 0 ;; esac
    done
    return 1
}

# Failsafe: a guest whose host-side runner died (a daemonized QEMU outlives it) still
# powers off in the end. run-guest.sh sets it a little above its own timeout.
if maxtime=$(cmdline_opt maxtime); then
    (sleep "$maxtime"; echo "init: guest time limit of ${maxtime}s reached"; poweroff -f) &
fi

DEBUG=$(cmdline_opt debug || true)
dbg() { [ -z "$DEBUG" ] || echo "init: $(cut -d' ' -f1 /proc/uptime) $*"; }
dbg start

# Upper drivers first, virtio_scsi last, so each LUN binds to sd/sr/st/sg as it is found.
for m in $(cat /etc/vscsi/modules) $(cmdline_opt modules | tr , ' '); do
    modprobe "$m" || echo "init: modprobe $m failed"
    dbg "loaded $m"
done

# Target scan. The kernel's own scan probes all 256 targets of every controller, about
# 24 ms each under TCG (6 s a boot), so run-guest.sh boots with scsi_mod.scan=manual
# and vscsi.scan=FIRST-LAST, and only those targets are scanned here, through the same
# sysfs path (scsi_scan_target: INQUIRY, REPORT LUNS, ...). With --full-scan it passes
# scsi_mod.scan=sync instead and the probe of virtio_scsi has already scanned everything.
if range=$(cmdline_opt scan); then
    for h in /sys/class/scsi_host/host*; do
        [ "$(cat "$h/proc_name" 2>/dev/null)" = virtio_scsi ] || continue
        for t in $(seq "${range%-*}" "${range#*-}"); do
            echo "0 $t -" 2>/dev/null > "$h/scan"
        done
    done
    dbg "scanned targets $range"
fi

# sd probes asynchronously, so a LUN can exist before its block device does. Wait until
# every disk/CD/tape has its device node (bounded: a LUN whose READ CAPACITY hangs must
# not hang the boot; the test then fails on its own terms).
settle() {
    limit=$(( $(date +%s) + $1 ))
    while :; do
        pending=
        for d in /sys/bus/scsi/devices/*:*:*:*; do
            [ -r "$d/type" ] || continue
            case $(cat "$d/type") in
            0|4|5|7|14) ls "$d"/block/* >/dev/null 2>&1 || pending="$pending ${d##*/}" ;;
            1) [ -e "$d/scsi_tape" ] || pending="$pending ${d##*/}" ;;
            esac
        done
        [ -z "$pending" ] && return 0
        if [ "$(date +%s)" -ge "$limit" ]; then
            echo "init: still no upper driver after ${1}s for:$pending"
            return 1
        fi
        sleep 0.1
    done
}
settle "$(cmdline_opt settle || echo 30)"
dbg settled

if cmdline_opt shell >/dev/null; then
    echo "init: interactive shell; exit it to power off"
    setsid cttyhack /bin/bash -l
else
    # Variables the host passed with run-guest.sh --env, exported to the test.
    if [ -r /etc/vscsi-test.env ]; then
        set -a
        # shellcheck source=/dev/null
        . /etc/vscsi-test.env
        set +a
    fi
    echo VSCSI-TEST-BEGIN
    if [ -r /test.sh ]; then
        chmod +x /test.sh
        (cd /tmp && /test.sh)
        rc=$?
    else
        echo "init: no /test.sh in the initramfs"
        rc=126
    fi
    if [ "$rc" != 0 ]; then
        # "quiet" keeps SCSI errors (KERN_INFO and up) off the console; show them now.
        echo "init: test failed, kernel log tail:"
        dmesg | tail -n 40
    fi
    echo "VSCSI-TEST-RC=$rc"
fi
sync
poweroff -f
sleep 10   # poweroff -f should not return; PID 1 must not exit
