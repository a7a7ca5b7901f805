#!/usr/bin/env bash
# --user/--group/--socket-group: vscsid drops root after opening its sockets and
# images, hands the sockets over, and keeps serving I/O on images only root can
# open. Needs root and the 'nobody' account (skipped, exit 77, otherwise).
# usage: t_privdrop.sh VSCSID VSCSICTL VSCSI_BENCH
set -uo pipefail
vscsid=$1 vscsictl=$2 bench=$3
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
getent passwd nobody >/dev/null && getent group nogroup >/dev/null ||
    { echo "SKIP: no nobody/nogroup account"; exit 77; }
t=$(mktemp -d /tmp/vscsi-priv.XXXXXX)
chmod 755 "$t"
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
truncate -s 16M "$t/img"
chmod 600 "$t/img"                      # only root can open it

# a typo in the account fails before anything is opened
"$vscsid" --socket "$t/x" --user no-such-user-xyz --drive file="$t/img",id=d \
    --device scsi-hd,drive=d 2>"$t/err"
rc=$?
check "unknown user: exit 2" '[ $rc = 2 ]'
check "unknown user: message names the option" 'grep -q -- "--user no-such-user-xyz: no such user" "$t/err"'
check "unknown user: no socket created" '[ ! -e "$t/x" ]'

"$vscsid" --socket "$t/s" --qmp "$t/q" --user nobody --socket-group nogroup \
    --drive file="$t/img",id=d --device scsi-hd,drive=d,scsi-id=0,lun=0 2>"$t/log" &
pid=$!
for _ in $(seq 100); do [ -S "$t/s" ] && [ -S "$t/q" ] && grep -q "running as uid" "$t/log" && break; sleep 0.05; done
check "process runs as nobody" '[ "$(awk "/^Uid:/ {print \$2 \$3 \$4 \$5}" /proc/$pid/status)" = 65534655346553465534 ]'
check "process group is nogroup" '[ "$(awk "/^Gid:/ {print \$2}" /proc/$pid/status)" = 65534 ]'
check "vhost-user socket nobody:nogroup 0660" '[ "$(stat -c %U:%G:%a "$t/s")" = nobody:nogroup:660 ]'
check "QMP socket owned by nobody, 0600" '[ "$(stat -c %U:%a "$t/q")" = nobody:600 ]'
check "QMP answers" '"$vscsictl" --qmp "$t/q" query-scsi-devices >/dev/null'
# I/O on the root-only image through the fd opened before the drop
"$bench" -s "$t/s" --rw randwrite --bs 4k --iodepth 8 --ios 2000 --event >"$t/bench" 2>&1
rc=$?
check "I/O after the drop (bench exit 0)" '[ $rc = 0 ]'
[ $rc = 0 ] || tail -5 "$t/bench"
check "image was written" '[ "$(stat -c %b "$t/img")" -gt 0 ]'
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
check "SIGTERM: exit 0" '[ $rc = 0 ]'
[ $fail = 0 ] && echo "privdrop: all checks passed"
exit $fail
