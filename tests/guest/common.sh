# shellcheck shell=bash
# Shared helpers for build-guest.sh, run-guest.sh and lib.sh (sourced, not run).
# Keeps the package check, the paths and the serial-log parsing in one place.

# shellcheck disable=SC2034 # constants used by the scripts that source this file
GUEST_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$GUEST_SRC_DIR/../.." && pwd)
# Everything downloaded or built goes here (git-ignored build dir), overridable for CI caches.
GUEST_OUT_DIR=${VSCSI_GUEST_DIR:-$REPO_DIR/build/guest}

# Markers printed by the guest's /init; the host parses the serial log for them.
MARK_BEGIN=VSCSI-TEST-BEGIN
MARK_RC=VSCSI-TEST-RC=

# Exit codes of run-guest.sh that are not the guest test's own.
# shellcheck disable=SC2034
RC_TIMEOUT=124
RC_NO_RESULT=125    # guest booted (or not) but never printed a result: panic, hang, crash
RC_QEMU_FAILED=126  # QEMU refused to start (bad option, backend socket not listening, ...)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# Install missing Debian packages; CI starts from a fresh machine. Ask dpkg first (one
# dpkg-query for all) so that an already provisioned machine never touches apt.
ensure_pkgs() {
    local missing=() p installed
    installed=" $(dpkg-query -W -f '${Package}=${db:Status-Abbrev} ' "$@" 2>/dev/null || true)"
    for p in "$@"; do
        [[ $installed == *" $p=ii "* ]] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet; update only when the install fails.
    apt-get install -qq -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update -qq >&2 && apt-get install -qq -y --no-install-recommends "${missing[@]}" >&2; }
}

# qemu_resolve [QEMU]: set QEMU to the binary's absolute path (default $VSCSI_QEMU or
# qemu-system-x86_64, installed when missing) and QEMU_DATA to the -L options a QEMU
# unpacked from a .deb (dpkg-deb -x, get-qemu10.sh) needs to find its firmware.
qemu_resolve() {
    local qroot
    QEMU=${1:-${VSCSI_QEMU:-qemu-system-x86_64}}
    QEMU_DATA=()
    if [ "$QEMU" = qemu-system-x86_64 ] && ! command -v "$QEMU" >/dev/null; then
        ensure_pkgs qemu-system-x86
    fi
    QEMU=$(command -v "$QEMU") || die "no QEMU at $QEMU"
    qroot=$(cd "$(dirname "$QEMU")/../.." && pwd)
    if [ "$qroot" != / ] && [ -d "$qroot/usr/share/qemu" ]; then
        QEMU_DATA=(-L "$qroot/usr/share/qemu" -L /usr/share/seabios -L /usr/share/qemu)
    fi
}

# Seconds since the epoch with milliseconds, for timing reports.
now() { date +%s.%N | cut -c1-14; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# True once more than SECS seconds have passed since START (a now value).
timed_out() { awk -v s="$1" -v t="$2" -v n="$(now)" 'BEGIN { exit !(n - s > t) }'; }

# The guest test's exit code from a serial log, or nothing. Kernel messages may land on
# the same line, so match anywhere and take the last one.
log_rc() {
    grep -ao "${MARK_RC}[0-9]*" "$1" 2>/dev/null | tail -n 1 | sed "s/^${MARK_RC}//"
}

log_begun() { grep -aq "$MARK_BEGIN" "$1" 2>/dev/null; }

# Wait for the QEMU process PID to end (it needs not be our child: --background
# daemonizes it), enforcing TIMEOUT seconds. Returns the guest test's RC from LOG,
# RC_TIMEOUT after killing QEMU, or RC_NO_RESULT. Sets BOOT_SECS (time to the BEGIN
# marker, counted from START) for the timing reports.
wait_qemu() {
    local pid=$1 log=$2 timeout=$3 start=$4 rc
    BOOT_SECS=
    while pid_alive "$pid"; do
        if [ -z "$BOOT_SECS" ] && log_begun "$log"; then
            BOOT_SECS=$(elapsed "$start")
        fi
        if timed_out "$start" "$timeout"; then
            log "timeout after ${timeout}s, killing QEMU (pid $pid)"
            kill_qemu "$pid"
            return "$RC_TIMEOUT"
        fi
        sleep 0.2
    done
    # Reap it when it is our child so the exit status is not lost in a zombie.
    wait "$pid" 2>/dev/null || true
    [ -n "$BOOT_SECS" ] || ! log_begun "$log" || BOOT_SECS=$(elapsed "$start")
    rc=$(log_rc "$log")
    [ -n "$rc" ] && return "$rc"
    return "$RC_NO_RESULT"
}

# kill -0 alone is true for a zombie, and a foreground QEMU is our child until reaped.
pid_alive() {
    local state
    [ -n "$1" ] || return 1   # (/proc//stat is /proc/stat)
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# SIGTERM lets QEMU close the vhost-user connection properly; SIGKILL if it lingers.
kill_qemu() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 30); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
