#!/usr/bin/env bash
# --log-file and SIGHUP: vscsid logs to a file with timestamps, reopens it under
# its name on SIGHUP (logrotate's "create" mode moves the old one away first),
# keeps running through SIGHUP (sandboxed: the reopen is an openat), and says
# clearly when the file cannot be opened.
# usage: t_logfile.sh VSCSID
set -uo pipefail
vscsid=$1
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
t=$(mktemp -d /tmp/vscsi-log.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 200); do eval "$1" && return 0; sleep 0.05; done; return 1; }

# a log file that cannot be created: exit 2, the message names the option and the path
"$vscsid" --socket "$t/x" --log-file "$t/no/such/dir/log" --drive driver=null,size=1M,id=n \
    --device scsi-hd,drive=n 2>"$t/err"
rc=$?
check "unopenable log file: exit 2" '[ $rc = 2 ]'
check "unopenable log file: message" 'grep -q -- "--log-file: cannot open log file .*no/such/dir/log.: No such file" "$t/err"'

"$vscsid" --socket "$t/s" --log-file "$t/log" --drive driver=null,size=1M,id=n \
    --device scsi-hd,drive=n,scsi-id=0,lun=0 2>"$t/stderr" &
pid=$!
check "start-up lines go to the file" 'wait_for "grep -q \"info: vhost: listening on\" \"$t/log\""'
check "lines carry a UTC timestamp and the pid" \
    'grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z vscsid\[$pid\]: info: " "$t/log"'
check "nothing logged on stderr" '! grep -q "vscsid: info:" "$t/stderr"'
check "log file mode 0640" '[ "$(stat -c %a "$t/log")" = 640 ]'

mv "$t/log" "$t/log.1"
kill -HUP "$pid"
check "SIGHUP: a new file under the old name" 'wait_for "grep -q \"received SIGHUP, log file reopened\" \"$t/log\""'
check "SIGHUP: the daemon keeps running" 'kill -0 "$pid" 2>/dev/null'
check "SIGHUP: the moved file keeps the old lines" 'grep -q "listening on" "$t/log.1" && ! grep -q SIGHUP "$t/log.1"'

# the name cannot be opened at the reopen (a directory took its place): the
# warning goes to the file still open, and logging goes on there
mv "$t/log" "$t/log.2"
mkdir "$t/log"
kill -HUP "$pid"
check "failed reopen: warned in the old file" \
    'wait_for "grep -q \"SIGHUP: cannot open log file .*Is a directory; still logging to the old file\" \"$t/log.2\""'
check "failed reopen: still running" 'kill -0 "$pid" 2>/dev/null'
rmdir "$t/log"
kill -HUP "$pid"
check "reopen works again afterwards" 'wait_for "grep -q \"log file reopened\" \"$t/log\" 2>/dev/null"'

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
check "SIGTERM: exit 0" '[ $rc = 0 ]'
check "shutdown is logged to the current file" 'grep -q "received Terminated, shutting down" "$t/log"'
exit $fail
