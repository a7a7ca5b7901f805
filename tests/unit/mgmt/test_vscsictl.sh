#!/bin/sh
# vscsictl end to end against a running QMP server.
#   test_vscsictl.sh VSCSICTL stub PATH/TO/qmp_stub_server
#   test_vscsictl.sh VSCSICTL vscsid PATH/TO/vscsid
# Exit 0 pass, 1 fail, 77 skip.
set -u
CTL=$1 MODE=$2 SERVER=$3
DIR=$(mktemp -d /tmp/vscsictl-test.XXXXXX)
QMP=$DIR/qmp.sock
PID= EVPID=
FAILS=0

cleanup() {
    [ -n "$EVPID" ] && kill "$EVPID" 2>/dev/null
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok   $*"; }

# expect NAME WANT_RC GREP_PATTERN CMD...: run, check exit code and that
# stdout+stderr match the (fixed string) pattern
expect() {
    name=$1 want=$2 pat=$3
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$name: exit $rc, expected $want; output: $out"
    elif [ -n "$pat" ] && ! printf '%s\n' "$out" | grep -qF -- "$pat"; then
        fail "$name: output lacks '$pat': $out"
    else
        ok "$name"
    fi
}

# ---- no server needed ----
expect "help" 0 "Usage: vscsictl --qmp PATH" "$CTL" --help
expect "version" 0 "vscsictl 0.1.0" "$CTL" --version
expect "missing --qmp" 2 "missing --qmp PATH" env -u VSCSI_QMP "$CTL" query-status
expect "no server" 1 "is vscsid running with --qmp $DIR/none" "$CTL" --qmp "$DIR/none" query-status
expect "dry-run typing" 0 \
    '{"execute": "blockdev-add", "arguments": {"node-name": "d1", "read-only": true, "size": -4096, "serial": "007", "n": "12ab", "file": {"driver": "file", "filename": "/x=y"}, "s": "true", "j": null, "list": [1, "a"], "obj": {"k": {}}}}' \
    "$CTL" -n blockdev-add node-name=d1 read-only=true size=-4096 serial=007 n=12ab \
    file.driver=file file.filename=/x=y s:str=true j:json=null 'list=[1, "a"]' 'obj={"k": {}}'
expect "dry-run twice" 2 "given twice" "$CTL" -n x a=1 a=2
expect "dry-run conflict" 2 "not an object" "$CTL" -n x a=1 a.b=2
expect "dry-run empty part" 2 "empty key component" "$CTL" -n x a..b=1
expect "dry-run bad json" 2 "invalid JSON value" "$CTL" -n x 'a={"x":}'
expect "dry-run bad type" 2 "unknown type" "$CTL" -n x a:int=1
expect "dry-run not kv" 2 "arguments are KEY=VALUE" "$CTL" -n x novalue

# ---- start the server ----
case $MODE in
stub)
    "$SERVER" "$QMP" &
    PID=$!
    ;;
vscsid)
    "$SERVER" --socket "$DIR/vhost.sock" --qmp "$QMP" \
        --drive driver=null,size=1G,id=d0 --device scsi-hd,drive=d0,scsi-id=0,lun=2,id=disk0,serial=S1 \
        --drive driver=null,size=64M,id=d1,readonly=on 2>"$DIR/vscsid.log" &
    PID=$!
    ;;
*)
    echo "unknown mode $MODE"; exit 1 ;;
esac
for i in $(seq 100); do
    [ -S "$QMP" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
if [ ! -S "$QMP" ]; then
    [ -f "$DIR/vscsid.log" ] && cat "$DIR/vscsid.log"
    if [ "$MODE" = vscsid ] && grep -qiE "io_uring|not permitted|ENOSYS|Operation not supported" "$DIR/vscsid.log" 2>/dev/null; then
        echo "SKIP: vscsid cannot start here"; exit 77
    fi
    echo "FAIL: server did not create $QMP"; exit 1
fi
[ "$(stat -c %a "$QMP")" = 600 ] && ok "socket mode 0600" || fail "socket mode $(stat -c %a "$QMP")"

V="$CTL --qmp $QMP"
expect "query-version --json" 0 \
    '{"qemu": {"micro": 0, "minor": 1, "major": 0}, "package": "vscsid 0.1.0"}' $V --json query-version
expect "query-status" 0 '"status": "running"' $V query-status
expect "env VSCSI_QMP" 0 '"running": true' env VSCSI_QMP="$QMP" "$CTL" query-status
expect "query-commands" 0 "query-scsi-devices" $V query-commands
expect "query-name" 0 "" $V query-name
expect "unknown command" 1 "vscsictl: The command nope has not been found" $V nope
expect "unexpected arg" 1 "vscsictl: Parameter 'foo' is unexpected" $V query-status foo=1
expect "typed arg" 1 "Invalid parameter type for 'enable', expected: array" $V qmp_capabilities enable=5
expect "json arg" 1 "Capability 'oob' not available" $V qmp_capabilities 'enable=["oob"]'
expect "self negotiation" 0 "" $V qmp_capabilities 'enable=[]'
expect "raw" 0 '{"return": {}, "id": 5}' $V raw '{"execute": "query-name", "id": 5}'
expect "raw error" 1 '"class": "CommandNotFound"' $V raw '{"execute": "nope"}'
expect "raw invalid" 2 "raw: invalid JSON" $V raw '{"execute": '
expect "raw caps" 0 '{"return": {}}' $V raw '{"execute": "qmp_capabilities"}'

case $MODE in
stub)
    expect "scsi table" 0 "cd1    scsi-cd  0        1    2G    yes  drive1  -" $V query-scsi-devices
    expect "scsi table hd" 0 "disk0  scsi-hd  0        3    1G    no   drive0  SER0" $V query-scsi-devices
    expect "block table" 0 "drive1   cd1     null-co  yes  2G    closed  null-co://" $V query-block
    expect "block table no tray" 0 "drive0   disk0   raw      no   1G    -       /var/lib/images/disk0.img" \
        $V query-block
    # removable media wrappers: QEMU's commands and arguments, then the state
    expect "dry-run eject" 0 '{"execute": "eject", "arguments": {"id": "cd1", "force": true}}' \
        $V -n eject cd1 --force
    expect "dry-run eject kv" 0 '{"execute": "eject", "arguments": {"id": "cd1"}}' $V -n eject id=cd1
    expect "dry-run change-medium" 0 \
        '{"execute": "blockdev-change-medium", "arguments": {"id": "cd1", "filename": "/srv/a=b.iso", "format": "raw", "read-only-mode": "read-only", "force": true}}' \
        $V -n change-medium cd1 /srv/a=b.iso --format raw --read-only-mode read-only -f
    expect "dry-run insert-medium" 0 \
        '{"execute": "blockdev-insert-medium", "arguments": {"id": "cd1", "node-name": "n1"}}' \
        $V -n insert-medium cd1 n1
    expect "dry-run open-tray" 0 '{"execute": "blockdev-open-tray", "arguments": {"id": "cd1"}}' \
        $V -n open-tray cd1
    expect "dry-run close-tray" 0 '{"execute": "blockdev-close-tray", "arguments": {"id": "cd1"}}' \
        $V -n close-tray cd1
    expect "dry-run remove-medium" 0 '{"execute": "blockdev-remove-medium", "arguments": {"id": "cd1"}}' \
        $V -n remove-medium cd1
    expect "wrapper arity" 2 "usage: change-medium ID FILE" $V change-medium cd1
    expect "wrapper arity 2" 2 "usage: eject ID [--force]" $V eject cd1 extra
    expect "no --force here" 2 "close-tray takes no --force" $V close-tray cd1 --force
    expect "no --format here" 2 "--format and --read-only-mode are for change-medium" $V eject cd1 --format raw
    expect "--force elsewhere" 2 "--force, --format and --read-only-mode go with" $V query-block --force
    expect "open-tray" 0 "cd1: tray open, medium null-co://" $V open-tray cd1
    expect "remove-medium" 0 "cd1: tray open, no medium" $V remove-medium cd1
    expect "block table empty" 0 "drive1   cd1     -       -   -     open  -" $V query-block
    expect "insert-medium" 0 "cd1: tray open, medium null-co://" $V insert-medium cd1 drive7
    expect "insert-medium full" 1 "vscsictl: There already is a medium in the device" $V insert-medium cd1 drive7
    expect "close-tray" 0 "cd1: tray closed, medium null-co://" $V close-tray cd1
    expect "remove-medium closed" 1 "vscsictl: Tray of device 'cd1' is not open" $V remove-medium cd1
    expect "eject" 0 "cd1: tray open, no medium" $V eject cd1
    expect "change-medium" 0 "cd1: tray closed, medium null-co://" $V change-medium cd1 /srv/x.iso
    expect "change-medium missing" 1 "vscsictl: drive drive1: cannot open '/nonexistent/x.iso'" \
        $V change-medium cd1 /nonexistent/x.iso
    expect "eject not removable" 1 "vscsictl: Device 'disk0' is not removable" $V eject disk0
    expect "eject unknown" 1 "vscsictl: Device 'nope' not found" $V eject nope
    expect "eject --json" 0 "{}" $V --json eject cd1
    expect "block --json" 0 '"virtual-size": 1073741824' $V query-block --json
    expect "blockstats table" 0 "drive2   -       3       12K       2       8K        1        0       0       100        50" \
        $V query-blockstats
    # events: one JSON line per event, as they arrive
    $V --json events >"$DIR/events" 2>&1 &
    EVPID=$!
    for i in $(seq 100); do
        kill -USR1 "$PID"
        sleep 0.05
        grep -q USER_TEST "$DIR/events" && break
    done
    kill -USR1 "$PID"
    sleep 0.2
    if grep -q '^{"event": "USER_TEST", "data": {"n": [0-9]*}, "timestamp": {"seconds": [0-9]*, "microseconds": [0-9]*}}$' "$DIR/events" &&
       [ "$(grep -c USER_TEST "$DIR/events")" -ge 2 ]; then
        ok "events --json"
    else
        fail "events --json: $(cat "$DIR/events")"
    fi
    kill "$EVPID"; wait "$EVPID" 2>/dev/null; EVPID=
    ;;
vscsid)
    expect "scsi table" 0 "disk0  scsi-hd  0        2    1G    no  d0     S1" $V query-scsi-devices
    expect "block table d1" 0 "d1     -       null-co  yes  64M   -     null-co://" $V query-block
    expect "block --json" 0 '"qdev": "disk0"' $V --json query-block
    # hot-plug wrappers: one line saying what happened; errors name the argument
    truncate -s 16M "$DIR/hp.img"
    expect "blockdev-add" 0 "drive hp added: $DIR/hp.img" \
        $V blockdev-add node-name=hp driver=raw file.driver=file file.filename="$DIR/hp.img"
    expect "device_add" 0 "device hpdisk (scsi-hd) added at scsi-id 1 lun 300, drive hp" \
        $V device_add driver=scsi-hd drive=hp scsi-id=1 lun=300 id=hpdisk
    expect "device_add taken" 1 "vscsictl: device_add: scsi-id=1,lun=300 is already taken by device 'hpdisk'" \
        $V device_add driver=scsi-hd drive=d1 scsi-id=1 lun=300
    expect "device_add attached" 1 "vscsictl: device_add: drive 'hp' is already attached to device 'hpdisk'" \
        $V device_add driver=scsi-hd drive=hp scsi-id=1 lun=301
    expect "device_add auto id" 0 "device scsi0-0-5 (scsi-hd) added at scsi-id 0 lun 5, drive d1" \
        $V device_add driver=scsi-hd drive=d1 lun=5
    expect "device_add lun" 1 "vscsictl: device_add: lun=16384: expected a number from 0 to 16383" \
        $V device_add driver=scsi-hd drive=hp lun=16384
    expect "block_resize" 0 "hp resized to 32M" $V block_resize node-name=hp size=33554432
    [ "$(stat -c %s "$DIR/hp.img")" = 33554432 ] && ok "image resized" || fail "image size $(stat -c %s "$DIR/hp.img")"
    expect "blockstats" 0 "hp     hpdisk" $V query-blockstats
    expect "blockdev-del busy" 1 "in use by device 'hpdisk'" $V blockdev-del node-name=hp
    expect "device_del waits" 0 "device hpdisk deleted" $V device_del id=hpdisk
    expect "device_del gone" 1 "vscsictl: Device 'hpdisk' not found" $V device_del id=hpdisk
    expect "device_del --no-wait" 0 "" $V --no-wait device_del id=scsi0-0-5
    expect "blockdev-del" 0 "drive hp deleted" $V blockdev-del node-name=hp
    expect "blockdev-add memory" 0 "drive mem added: memory" \
        $V blockdev-add node-name=mem driver=memory size=4194304
    expect "block table memory" 0 "mem    -       memory   no   4M    -     memory://" $V query-block
    expect "blockdev-del memory" 0 "drive mem deleted" $V blockdev-del node-name=mem
    # removable media on a real scsi-cd (needs the SCSI layer's MMC)
    truncate -s 4M "$DIR/a.iso"
    truncate -s 6M "$DIR/b.iso"
    expect "blockdev-add iso" 0 "drive iso added" \
        $V blockdev-add node-name=iso driver=raw read-only=true file.driver=file file.filename="$DIR/a.iso"
    out=$($V device_add driver=scsi-cd drive=iso scsi-id=2 lun=0 id=cd 2>&1)
    case $out in
    *"not supported yet"*|*"no drive"*)
        echo "skip media: the SCSI layer has no removable media yet ($out)" ;;
    *)
        [ "$out" = "device cd (scsi-cd) added at scsi-id 2 lun 0, drive iso" ] && ok "device_add scsi-cd" ||
            fail "device_add scsi-cd: $out"
        expect "scsi-cd table" 0 "cd     scsi-cd  2        0    4M    yes  iso" $V query-scsi-devices
        expect "change-medium" 0 "cd: tray closed, medium $DIR/b.iso" $V change-medium cd "$DIR/b.iso"
        expect "scsi-cd 6M" 0 "cd     scsi-cd  2        0    6M" $V query-scsi-devices
        expect "change-medium missing" 1 "vscsictl: drive iso: cannot open '$DIR/none.iso': No such file" \
            $V change-medium cd "$DIR/none.iso"
        expect "eject" 0 "cd: tray open, no medium" $V eject cd
        expect "close-tray empty" 0 "cd: tray closed, no medium" $V close-tray cd
        expect "remove-medium closed" 1 "vscsictl: Tray of device 'cd' is not open" $V remove-medium cd
        expect "blockdev-add node" 0 "drive n2 added" \
            $V blockdev-add node-name=n2 driver=raw read-only=true file.driver=file file.filename="$DIR/a.iso"
        expect "open-tray" 0 "cd: tray open, no medium" $V open-tray cd
        expect "insert-medium" 0 "cd: tray open, medium $DIR/a.iso" $V insert-medium cd n2
        expect "blockdev-del lent" 1 "the medium in drive 'iso'" $V blockdev-del node-name=n2
        expect "close-tray" 0 "cd: tray closed, medium $DIR/a.iso" $V close-tray cd
        expect "block table cd" 0 "iso    cd      raw      yes  4M    closed  $DIR/a.iso" $V query-block
        expect "eject --force" 0 "cd: tray open, no medium" $V eject cd --force
        expect "blockdev-del node" 0 "drive n2 deleted" $V blockdev-del node-name=n2
        expect "device_del cd" 0 "device cd deleted" $V device_del id=cd
        ;;
    esac
    expect "blockdev-del iso" 0 "drive iso deleted" $V blockdev-del node-name=iso
    ;;
esac

# events see the SHUTDOWN that quit causes; the server exits and removes its socket
$V events >"$DIR/events2" 2>&1 &
EVPID=$!
sleep 0.3
expect "quit" 0 "" $V quit
for i in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$PID" 2>/dev/null; then
    fail "server still running after quit"
else
    wait "$PID"; rc=$?; PID=
    [ $rc = 0 ] && ok "server exit status 0" || fail "server exit status $rc"
fi
[ ! -e "$QMP" ] && ok "socket removed" || fail "socket left behind"
for i in $(seq 40); do kill -0 "$EVPID" 2>/dev/null || break; sleep 0.05; done
grep -q 'SHUTDOWN {"guest": false, "reason": "host-qmp-quit"}' "$DIR/events2" && ok "SHUTDOWN event" ||
    fail "SHUTDOWN event: $(cat "$DIR/events2")"
kill "$EVPID" 2>/dev/null; EVPID=

[ $FAILS = 0 ] && echo "all passed" || echo "$FAILS failed"
[ $FAILS = 0 ]
