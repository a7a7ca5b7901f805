#!/usr/bin/env bash
# Boot the test guest under QEMU (TCG) and run one test script in it.
#
# usage: run-guest.sh [options]
#   --test SCRIPT            run SCRIPT in the guest as /test.sh (its shebang, default busybox sh)
#   --file SRC[:DEST]        pack SRC into the guest at DEST (default /files/BASENAME); repeatable
#   --env NAME=VALUE         export NAME to the guest test; repeatable
#   --vhost-user SOCK[,OPT=V...]
#                            a vhost-user-scsi-pci controller on SOCK (vscsid listens there).
#                            reconnect=/reconnect-ms= go to the chardev, the rest (num_queues=N,
#                            ...) to the device. Repeatable: one controller each.
#   --builtin-scsi IMG[,OPT=V...]
#                            a LUN on QEMU's own virtio-scsi-pci (one controller for all of
#                            them), for comparison: scsi-id=, lun=, id=, removable=, driver=
#                            (scsi-hd|scsi-cd) go to the device, the rest (discard=unmap,
#                            format=, ...) to -drive
#   --qemu PATH              QEMU binary (default $VSCSI_QEMU or qemu-system-x86_64); for a
#                            tree unpacked from a .deb, its usr/share/qemu is added with -L
#   --qemu-arg ARG           extra QEMU argument; repeatable
#   --timeout SECS           kill QEMU and exit 124 after SECS (default 300); the guest
#                            also powers itself off 30 s later, whoever waits for it
#   --log FILE               serial log (default: a temporary file, removed on success)
#   --append EXTRA           extra kernel command line
#   --scan FIRST-LAST        targets the guest scans (default 0-15; see guest-init.sh)
#   --full-scan              let the kernel scan all 256 targets itself (+6 s under TCG)
#   --smp N / --mem SIZE     vCPUs (default 1) / guest RAM (default 1G)
#   --qmp SOCK               QMP server socket for the test to drive QEMU
#   --background PIDFILE     daemonize QEMU, write its pid to PIDFILE and return at once
#                            (exit 0 started, 126 failed); wait with lib.sh guest_wait
#   --shell                  interactive guest shell on this terminal instead of a test
#   --guest-dir DIR          prebuilt guest (default $VSCSI_GUEST_DIR or REPO/build/guest)
#   --verbose                stream the serial console while the guest runs
#
# Exit status: the guest test's own exit status; 124 timeout; 125 no result (boot failure,
# panic); 126 QEMU failed to start; 2 usage error.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }

TEST='' LOGFILE='' APPEND='' QMP='' PIDFILE='' SHELL_MODE=0 VERBOSE=0
TIMEOUT=300 SMP=1 MEM=1G SCAN=0-15
QEMU=${VSCSI_QEMU:-qemu-system-x86_64}
FILES=() ENVS=() VHOST=() BUILTIN=() QEMU_EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    --test) TEST=$2; shift ;;
    --file) FILES+=("$2"); shift ;;
    --env) ENVS+=("$2"); shift ;;
    --vhost-user) VHOST+=("$2"); shift ;;
    --builtin-scsi) BUILTIN+=("$2"); shift ;;
    --qemu) QEMU=$2; shift ;;
    --qemu-arg) QEMU_EXTRA+=("$2"); shift ;;
    --timeout) TIMEOUT=$2; shift ;;
    --log) LOGFILE=$2; shift ;;
    --append) APPEND="$APPEND $2"; shift ;;
    --scan) SCAN=$2; shift ;;
    --full-scan) SCAN= ;;
    --smp) SMP=$2; shift ;;
    --mem) MEM=$2; shift ;;
    --qmp) QMP=$2; shift ;;
    --background) PIDFILE=$2; shift ;;
    --shell) SHELL_MODE=1 ;;
    --guest-dir) GUEST_OUT_DIR=$2; shift ;;
    --verbose) VERBOSE=1 ;;
    -h|--help) usage ;;
    *) log "unknown option $1"; usage ;;
    esac
    shift
done
[ -n "$TEST" ] || [ "$SHELL_MODE" = 1 ] || die "--test SCRIPT or --shell is required"
[ -z "$TEST" ] || [ -r "$TEST" ] || die "cannot read $TEST"
[ "$SHELL_MODE" = 0 ] || [ -z "$PIDFILE" ] || die "--shell and --background exclude each other"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"
[[ $SCAN =~ ^([0-9]+-[0-9]+)?$ ]] || die "--scan wants FIRST-LAST"

# The guest (cheap no-op when its stamp matches); prints the folder of the image.
GUEST_IMG=$("$GUEST_SRC_DIR/build-guest.sh" "$GUEST_OUT_DIR")

qemu_resolve "$QEMU"   # sets QEMU and QEMU_DATA

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run-guest.XXXXXX")
QPID=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local rc=$?
    # Never leave a foreground QEMU behind (Ctrl-C, errors); a --background one is the
    # caller's to stop.
    if [ -n "$QPID" ] && [ -z "$PIDFILE" ]; then kill_qemu "$QPID"; fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE   # e.g. piped into head: still stop QEMU

if [ -z "$LOGFILE" ]; then
    LOGFILE=$WORK/serial.log
    [ -z "$PIDFILE" ] || die "--background needs --log (the log outlives this script)"
fi
mkdir -p "$(dirname "$LOGFILE")"
LOGFILE=$(cd "$(dirname "$LOGFILE")" && pwd)/${LOGFILE##*/}   # -daemonize changes to /
: > "$LOGFILE"

# --- per-test initramfs: /test.sh, the --file's and the --env's, appended to the base one
# (the kernel unpacks concatenated archives in order; QEMU 7.2 takes a single -initrd).
INITRD=$WORK/initrd
if [ -n "$TEST" ]; then
    T=$WORK/test-root
    mkdir -p "$T/etc"
    install -m 755 "$TEST" "$T/test.sh"
    for f in "${FILES[@]}"; do
        src=${f%%:*}
        dst=/files/${src##*/}
        [ "$src" = "$f" ] || dst=${f#*:}
        [ -r "$src" ] || die "cannot read $src"
        mkdir -p "$T$(dirname "$dst")"
        cp "$src" "$T$dst"
    done
    for e in "${ENVS[@]}"; do
        [[ $e == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE, got $e"
        printf '%s=%q\n' "${e%%=*}" "${e#*=}"
    done > "$T/etc/vscsi-test.env"
    (cd "$T" && find . -mindepth 1 | cpio -o -H newc --quiet) | gzip -1 > "$WORK/test.cpio.gz"
    cat "$GUEST_IMG/base.cpio" "$WORK/test.cpio.gz" > "$INITRD"
else
    INITRD=$GUEST_IMG/base.cpio
fi

# --- QEMU command line
# -cpu max: SSE4.2 etc. under TCG (fio's crc32c is much faster with it).
args=(-M q35 -cpu max -smp "$SMP" -m "$MEM" -nodefaults -no-reboot -display none
      -object "memory-backend-memfd,id=mem,size=$MEM,share=on" -numa "node,memdev=mem"
      -kernel "$GUEST_IMG/vmlinuz" -initrd "$INITRD")
# panic=-1 with -no-reboot turns a guest panic into a QEMU exit. The scan options: see
# guest-init.sh (sync: the controller's probe scans every target before modprobe returns).
if [ -n "$SCAN" ]; then scan="scsi_mod.scan=manual vscsi.scan=$SCAN"; else scan=scsi_mod.scan=sync; fi
cmdline="console=ttyS0 quiet panic=-1 $scan$APPEND"
if [ "$SHELL_MODE" = 1 ]; then
    args+=(-serial mon:stdio)
    cmdline="$cmdline vscsi.shell=1"
else
    args+=(-chardev "file,id=ser0,path=$LOGFILE" -serial chardev:ser0 -monitor none)
    cmdline="$cmdline vscsi.maxtime=$((TIMEOUT + 30))"
fi
args+=(-append "$cmdline")
[ -z "$QMP" ] || args+=(-qmp "unix:$(realpath -m "$QMP"),server=on,wait=off")

n=0
for v in "${VHOST[@]}"; do
    IFS=, read -r -a parts <<< "$v"
    sock=$(realpath -m "${parts[0]}") chr="" dev=""   # absolute: -daemonize changes to /
    [ -S "$sock" ] || log "warning: $sock is not a socket (is the daemon listening?)"
    for p in "${parts[@]:1}"; do
        case $p in
        reconnect=*|reconnect-ms=*) chr="$chr,$p" ;;
        *) dev="$dev,$p" ;;
        esac
    done
    args+=(-chardev "socket,id=vhost$n,path=$sock$chr"
           -device "vhost-user-scsi-pci,id=vus$n,chardev=vhost$n$dev")
    n=$((n + 1))
done

if [ ${#BUILTIN[@]} -gt 0 ]; then
    args+=(-device "virtio-scsi-pci,id=vs0")
    n=0
    for b in "${BUILTIN[@]}"; do
        IFS=, read -r -a parts <<< "$b"
        img=$(realpath -m "${parts[0]}") drv="" driver=scsi-hd dev="" fmt=",format=raw"
        [ -e "$img" ] || die "no image $img"
        for p in "${parts[@]:1}"; do
            case $p in
            driver=*) driver=${p#driver=} ;;
            scsi-id=*|lun=*|id=*|serial=*|wwn=*|removable=*|logical_block_size=*|physical_block_size=*) dev="$dev,$p" ;;
            format=*) fmt=",$p" ;;
            *) drv="$drv,$p" ;;
            esac
        done
        args+=(-drive "file=$img,if=none,id=bd$n$fmt$drv"
               -device "$driver,drive=bd$n,bus=vs0.0$dev")
        n=$((n + 1))
    done
fi
args+=("${QEMU_EXTRA[@]}")

if [ "$SHELL_MODE" = 1 ]; then
    # Not exec: the EXIT trap still removes WORK.
    "$QEMU" "${QEMU_DATA[@]}" "${args[@]}"
    exit 0
fi

START=$(now)
if [ -n "$PIDFILE" ]; then
    rm -f "$PIDFILE"
    # -daemonize returns once the machine is built, so a refused backend connection is
    # still reported here; the initrd file may go away afterwards (QEMU has mapped it).
    if ! "$QEMU" "${QEMU_DATA[@]}" "${args[@]}" -daemonize -pidfile "$PIDFILE" \
         2> "$LOGFILE.qemu-stderr" < /dev/null; then
        log "QEMU failed to start:"
        cat "$LOGFILE.qemu-stderr" >&2
        exit "$RC_QEMU_FAILED"
    fi
    echo "$START" > "$PIDFILE.start"
    exit 0
fi

"$QEMU" "${QEMU_DATA[@]}" "${args[@]}" 2> "$WORK/qemu-stderr" < /dev/null &
QPID=$!
TAILPID=
if [ "$VERBOSE" = 1 ]; then
    tail -n +1 -f "$LOGFILE" --pid "$QPID" >&2 &
    TAILPID=$!
fi
rc=0
wait_qemu "$QPID" "$LOGFILE" "$TIMEOUT" "$START" || rc=$?
[ -z "$TAILPID" ] || wait "$TAILPID" 2>/dev/null || true
QPID=
total=$(elapsed "$START")

if [ "$rc" = "$RC_NO_RESULT" ] && ! log_begun "$LOGFILE"; then
    # Nothing from the guest: a QEMU that refused to start says why on stderr.
    [ -s "$WORK/qemu-stderr" ] && rc=$RC_QEMU_FAILED
fi
log "rc=$rc boot=${BOOT_SECS:-?}s total=${total}s"
if [ "$rc" != 0 ]; then
    log "--- QEMU stderr"
    tail -n 20 "$WORK/qemu-stderr" >&2 || true
    log "--- serial log tail ($LOGFILE)"
    tail -n 40 "$LOGFILE" >&2 || true
fi
# A caller that asked for the log keeps it; otherwise WORK (and the log) goes.
[ "$LOGFILE" = "$WORK/serial.log" ] || cp "$WORK/qemu-stderr" "$LOGFILE.qemu-stderr"
exit "$rc"
