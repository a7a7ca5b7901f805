# shellcheck shell=sh
# Guest-side helpers (POSIX sh; /bin/sh is bash in the guest). Installed in the guest as /lib/vscsi.sh; a test
# script starts with `. /lib/vscsi.sh`. Names begin with vs_.

# Print a failure reason the host can find in the serial log, and fail the test.
vs_die() {
    echo "GUEST-FAIL: $*"
    exit 1
}

vs_info() { echo "guest: $*"; }

# The sysfs directory of the LUN at TARGET LUN [HOST] (any virtio host when HOST is empty).
vs_sysdev() {
    for d in /sys/bus/scsi/devices/${3:-*}:0:$1:$2; do
        [ -d "$d" ] && { echo "$d"; return 0; }
    done
    return 1
}

# /dev node of the block device (sd/sr) of TARGET LUN [HOST].
vs_disk() {
    d=$(vs_sysdev "$@") || return 1
    for b in "$d"/block/*; do
        [ -e "$b" ] && { echo "/dev/${b##*/}"; return 0; }
    done
    return 1
}

# /dev/sgN of TARGET LUN [HOST].
vs_sg() {
    d=$(vs_sysdev "$@") || return 1
    for g in "$d"/scsi_generic/*; do
        [ -e "$g" ] && { echo "/dev/${g##*/}"; return 0; }
    done
    return 1
}

# Like vs_disk / vs_sg, but the test fails when the LUN is missing.
vs_need_disk() { vs_disk "$@" || vs_die "no block device for target $1 lun $2"; }
vs_need_sg() { vs_sg "$@" || vs_die "no sg device for target $1 lun $2"; }

# Hosts whose driver is virtio_scsi (both QEMU's own device and vhost-user-scsi).
vs_hosts() {
    for h in /sys/class/scsi_host/host*; do
        [ "$(cat "$h/proc_name" 2>/dev/null)" = virtio_scsi ] && echo "${h##*/host}"
    done
}

# Show what the guest found, for the log.
vs_show() {
    lsscsi -g -s 2>/dev/null || ls /sys/bus/scsi/devices
}
