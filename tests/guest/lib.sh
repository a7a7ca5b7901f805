# shellcheck shell=bash
# Library for the end-to-end scenarios tests/guest/t-*.sh (sourced after set -euo pipefail).
#
# A scenario describes its LUNs with e2e_lun, starts the backend with e2e_backend_start,
# boots guests with e2e_guest (or e2e_guest_bg + e2e_guest_wait), checks, and ends with
# e2e_pass / e2e_fail / e2e_skip, which print "PASS: name", "FAIL: name: reason" or
# "SKIP: name: reason" and exit 0 / 1 / 77. Every process started here is stopped on exit.
#
# Environment:
#   VSCSI_E2E_BACKEND  vscsid (default): LUNs served by vscsid over vhost-user;
#                      builtin: the same LUNs on QEMU's own virtio-scsi (checks the test
#                      infrastructure itself, and gives reference behaviour)
#   VSCSID             the daemon binary (default REPO/build/vscsid)
#   VSCSID_ARGS        extra daemon arguments (word-split), e.g. "--log-level debug"
#   VSCSI_QEMU         QEMU binary for run-guest.sh
#   VSCSI_E2E_LOGDIR   logs kept after the run (default REPO/build/guest/logs), one
#                      folder per scenario: serial logs, daemon logs
#   VSCSI_E2E_KEEP=1   keep the temporary folder (images) too
#   VSCSI_E2E_TIMEOUT  default timeout of one guest boot in seconds (default 180)

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

E2E_NAME=$(basename "$0" .sh)
E2E_BACKEND=${VSCSI_E2E_BACKEND:-vscsid}
VSCSID=${VSCSID:-$REPO_DIR/build/vscsid}
E2E_TIMEOUT=${VSCSI_E2E_TIMEOUT:-180}
E2E_LOGDIR=${VSCSI_E2E_LOGDIR:-$GUEST_OUT_DIR/logs}/$E2E_NAME
RUN_GUEST=$GUEST_SRC_DIR/run-guest.sh

case $E2E_BACKEND in vscsid|builtin) ;; *) die "VSCSI_E2E_BACKEND must be vscsid or builtin" ;; esac

E2E_START=$(now)
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vscsi-e2e.XXXXXX")
rm -rf "$E2E_LOGDIR"
mkdir -p "$E2E_LOGDIR"

declare -A DAEMON_PID=()   # name -> pid of processes started with daemon_start
QEMU_PIDFILES=()           # background QEMUs started with e2e_guest_bg
E2E_TIMES=()               # "name boot=..s total=..s" per guest boot, for the report
E2E_DONE=0

e2e_cleanup() {
    local rc=$? f n
    for f in "${QEMU_PIDFILES[@]}"; do
        [ -s "$f" ] && kill_qemu "$(cat "$f")"
    done
    for n in "${!DAEMON_PID[@]}"; do daemon_stop "$n" >/dev/null 2>&1 || true; done
    if [ "${VSCSI_E2E_KEEP:-0}" = 1 ]; then
        log "kept $E2E_TMP"
    else
        rm -rf "$E2E_TMP"
    fi
    # An unexpected error (set -e) must still produce a verdict line.
    if [ "$E2E_DONE" = 0 ]; then
        echo "FAIL: $E2E_NAME: aborted with status $rc (see $E2E_LOGDIR)"
        rc=1
    fi
    exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

# --- verdicts ---------------------------------------------------------------------
e2e_report_times() {
    local t
    for t in "${E2E_TIMES[@]}"; do echo "  time: $t"; done
    echo "  time: $E2E_NAME total=$(elapsed "$E2E_START")s backend=$E2E_BACKEND"
}

e2e_pass() {
    e2e_stop_daemons || e2e_fail "$E2E_STOP_ERR"
    e2e_report_times
    E2E_DONE=1
    echo "PASS: $E2E_NAME"
    exit 0
}

e2e_fail() {
    local n
    e2e_report_times
    for n in "${!DAEMON_PID[@]}"; do
        echo "  --- last lines of $n log ($E2E_LOGDIR/$n.log)"
        tail -n 15 "$E2E_LOGDIR/$n.log" 2>/dev/null | sed 's/^/  | /'
    done
    E2E_DONE=1
    echo "FAIL: $E2E_NAME: $*"
    exit 1
}

e2e_skip() {
    E2E_DONE=1
    echo "SKIP: $E2E_NAME: $*"
    exit 77
}

# Fail with REASON unless the command succeeds: e2e_check "reason" cmd args...
e2e_check() {
    local why=$1
    shift
    "$@" || e2e_fail "$why"
}

# --- processes --------------------------------------------------------------------
# daemon_start NAME CMD ARGS...: run CMD in the background, output in LOGDIR/NAME.log.
daemon_start() {
    local name=$1
    shift
    "$@" > "$E2E_LOGDIR/$name.log" 2>&1 < /dev/null &
    DAEMON_PID[$name]=$!
}

daemon_pid() { echo "${DAEMON_PID[$1]}"; }

daemon_alive() { pid_alive "${DAEMON_PID[$1]:-0}"; }

# daemon_stop NAME: SIGTERM, then SIGKILL after 5 s. Returns the exit status; one
# caused by our own SIGTERM (143) counts as 0, and 137 when SIGKILL was needed.
daemon_stop() {
    local name=$1 pid=${DAEMON_PID[$1]:-} i rc=0
    [ -n "$pid" ] || return 0
    unset "DAEMON_PID[$name]"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 137
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [ "$rc" = 143 ] && rc=0
    return "$rc"
}

# Stop every daemon; when one ends badly (crash, ignored SIGTERM) return non-zero with
# the reasons in E2E_STOP_ERR. Not in a subshell: wait needs the daemons as children.
e2e_stop_daemons() {
    local n rc
    E2E_STOP_ERR=
    for n in "${!DAEMON_PID[@]}"; do
        rc=0
        daemon_stop "$n" > /dev/null || rc=$?
        [ "$rc" = 0 ] || E2E_STOP_ERR="$E2E_STOP_ERR${E2E_STOP_ERR:+; }$n exited with status $rc on SIGTERM"
    done
    [ -z "$E2E_STOP_ERR" ]
}

# wait_socket PATH SECS [NAME]: until PATH is a listening socket; fail early when the
# daemon NAME dies first.
wait_socket() {
    local path=$1 secs=$2 name=${3:-} start
    start=$(now)
    until [ -S "$path" ]; do
        if [ -n "$name" ] && ! daemon_alive "$name"; then
            e2e_fail "$name exited before creating $path"
        fi
        timed_out "$start" "$secs" && e2e_fail "no socket $path after ${secs}s"
        sleep 0.05
    done
}

# wait_log FILE PATTERN SECS: until the (grep -E) PATTERN shows in FILE.
wait_log() {
    local file=$1 pat=$2 secs=$3 start
    start=$(now)
    until grep -aEq "$pat" "$file" 2>/dev/null; do
        timed_out "$start" "$secs" && return 1
        sleep 0.2
    done
}

# --- images -----------------------------------------------------------------------
# e2e_image PATH SIZE: a sparse zero-filled image (SIZE as for truncate: 64M).
e2e_image() {
    rm -f "$1"
    truncate -s "$2" "$1"
}

# --- LUNs and backends ------------------------------------------------------------
LUNS=()   # "target lun image device drive-opts" each
# e2e_lun TARGET LUN IMAGE [DRIVE_OPTS [DEVICE]]: DRIVE_OPTS as for QEMU's -drive
# (discard=unmap,...), DEVICE scsi-hd (default) or scsi-cd. IMAGE memory:SIZE is a
# vscsid driver=memory drive (the builtin backend gets a file of that size instead).
e2e_lun() {
    LUNS+=("$1 $2 $3 ${5:-scsi-hd} ${4:-}")
}

GUEST_ARGS=()
VSCSID_SOCK=$E2E_TMP/vscsid.sock
E2E_VHOST_OPTS=${E2E_VHOST_OPTS:-}
# e2e_backend_start: start what serves the LUNs. E2E_VHOST_OPTS (e.g. num_queues=2) go
# to run-guest.sh --vhost-user. Sets GUEST_ARGS for e2e_guest.
e2e_backend_start() {
    local opts=$E2E_VHOST_OPTS spec t l img dev drv src i=0
    local args=()
    GUEST_ARGS=()
    for spec in "${LUNS[@]}"; do
        read -r t l img dev drv <<< "$spec"
        src=file=$img
        if [[ $img == memory:* && $E2E_BACKEND == builtin ]]; then
            e2e_image "$E2E_TMP/memory-d$i.img" "${img#memory:}"
            img=$E2E_TMP/memory-d$i.img
        elif [[ $img == memory:* ]]; then
            src=driver=memory,size=${img#memory:}
        fi
        if [ "$E2E_BACKEND" = builtin ]; then
            GUEST_ARGS+=(--builtin-scsi "$img,scsi-id=$t,lun=$l,driver=$dev${drv:+,$drv}")
        else
            args+=(--drive "$src,id=d$i${drv:+,$drv}"
                   --device "$dev,drive=d$i,scsi-id=$t,lun=$l")
        fi
        i=$((i + 1))
    done
    [ "$E2E_BACKEND" = builtin ] && return 0
    [ -x "$VSCSID" ] || e2e_skip "no vscsid at $VSCSID (build it, or set VSCSI_E2E_BACKEND=builtin)"
    # shellcheck disable=SC2086 # VSCSID_ARGS is a word list on purpose
    daemon_start vscsid "$VSCSID" --socket "$VSCSID_SOCK" "${args[@]}" ${VSCSID_ARGS:-}
    wait_socket "$VSCSID_SOCK" 10 vscsid
    GUEST_ARGS=(--vhost-user "$VSCSID_SOCK${opts:+,$opts}")
}

# The backend (vscsid) is still the process it was; a no-op for builtin.
e2e_backend_alive() {
    [ "$E2E_BACKEND" = builtin ] || daemon_alive vscsid
}

# --- guests -----------------------------------------------------------------------
# e2e_guest NAME SCRIPT [run-guest.sh options...]: boot a guest running SCRIPT against
# the backend; serial log in LOGDIR/NAME.serial. Returns the guest test's exit status
# (124 timeout, 125 no result, 126 QEMU failed: see run-guest.sh). Fails the scenario if
# the daemon died meanwhile.
e2e_guest() {
    local name=$1 script=$2 rc=0 line
    shift 2
    "$RUN_GUEST" --test "$script" --log "$E2E_LOGDIR/$name.serial" --timeout "$E2E_TIMEOUT" \
        "${GUEST_ARGS[@]}" "$@" 2> "$E2E_LOGDIR/$name.run" || rc=$?
    line=$(grep -o 'boot=.*' "$E2E_LOGDIR/$name.run" | tail -n 1)
    E2E_TIMES+=("$name ${line:-boot=? (rc=$rc)}")
    if [ "$rc" != 0 ]; then
        echo "  guest $name exited with $rc; last lines of $E2E_LOGDIR/$name.serial:"
        grep -av '^run-guest' "$E2E_LOGDIR/$name.serial" | tail -n 25 | sed 's/^/  | /'
        grep -a 'QEMU failed\|qemu-system' "$E2E_LOGDIR/$name.run" | head -n 5 | sed 's/^/  | /'
    fi
    e2e_backend_alive || e2e_fail "vscsid died during guest $name"
    return "$rc"
}

# e2e_guest_ok NAME SCRIPT [options...]: e2e_guest, and the scenario fails unless the
# guest test passed, with the guest's first GUEST-FAIL reason (vs_die).
e2e_guest_ok() {
    local rc=0
    e2e_guest "$@" || rc=$?
    [ "$rc" = 0 ] || e2e_fail "guest $1 failed (rc $rc): $(guest_fail_reason "$1")"
}

guest_fail_reason() { guest_output "$1" | grep -a -m1 GUEST-FAIL || true; }

# e2e_guest_bg NAME SCRIPT [options...]: like e2e_guest but returns once QEMU runs
# (daemonized, QMP at LOGDIR/../NAME.qmp, i.e. E2E_TMP/NAME.qmp). Stop it with
# e2e_guest_kill or wait for it with e2e_guest_wait.
e2e_guest_bg() {
    local name=$1 script=$2
    shift 2
    QEMU_PIDFILES+=("$E2E_TMP/$name.pid")   # gone once QEMU exits: nothing to stop then
    # --timeout: the guest powers itself off 30 s after it (see guest-init.sh).
    "$RUN_GUEST" --test "$script" --log "$E2E_LOGDIR/$name.serial" --timeout "$E2E_TIMEOUT" \
        --background "$E2E_TMP/$name.pid" --qmp "$E2E_TMP/$name.qmp" \
        "${GUEST_ARGS[@]}" "$@" 2> "$E2E_LOGDIR/$name.run" ||
        { cat "$E2E_LOGDIR/$name.run"; e2e_fail "QEMU for $name did not start"; }
    # QEMU removes its -pidfile when it exits, and a guest may be done before the host
    # waits for it: keep the pid where QEMU does not touch it.
    cat "$E2E_TMP/$name.pid" > "$E2E_TMP/$name.qpid"
}

e2e_guest_pid() { cat "$E2E_TMP/$1.qpid"; }

# e2e_guest_wait NAME [SECS]: wait for the background guest NAME to power off; returns
# its test status like e2e_guest.
e2e_guest_wait() {
    local name=$1 secs=${2:-$E2E_TIMEOUT} rc=0
    wait_qemu "$(e2e_guest_pid "$name")" "$E2E_LOGDIR/$name.serial" "$secs" \
        "$(cat "$E2E_TMP/$name.pid.start")" || rc=$?
    E2E_TIMES+=("$name boot=${BOOT_SECS:-?}s total=$(elapsed "$(cat "$E2E_TMP/$name.pid.start")")s")
    e2e_backend_alive || e2e_fail "vscsid died during guest $name"
    return "$rc"
}

# e2e_guest_kill NAME [SIGNAL]: end the background guest NAME (default SIGKILL, a QEMU
# crash as the backend sees it) and wait until it is gone.
e2e_guest_kill() {
    local pid i
    pid=$(e2e_guest_pid "$1")
    kill "-${2:-KILL}" "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    e2e_fail "QEMU $1 (pid $pid) did not exit on SIG${2:-KILL}"
}

# qmp SOCK JSON...: send QMP commands (after the capabilities handshake), print replies.
qmp() {
    local sock=$1 c
    shift
    command -v socat >/dev/null || ensure_pkgs socat
    {
        echo '{"execute":"qmp_capabilities"}'
        for c in "$@"; do echo "$c"; done
        sleep 1
    } | socat -t 2 - "UNIX-CONNECT:$sock"
}

# The guest test's output: the serial log between the begin and result markers.
guest_output() {
    sed -n "/$MARK_BEGIN/,/$MARK_RC/p" "$E2E_LOGDIR/$1.serial" | tr -d '\r'
}

# Write a guest script from stdin to E2E_TMP/NAME.sh and print its path.
guest_script() {
    local f=$E2E_TMP/$1.sh
    cat > "$f"
    echo "$f"
}
