#!/usr/bin/env bash
# Management benchmarks (numbers, not assertions; not part of run-all.sh):
#  1. device_add -> the guest's device node: RUNS times (default 50), host clock from
#     just before vscsictl device_add to the guest's marker in the serial log;
#  2. block_resize -> the guest's new size (/sys/block/sdX/size), RUNS times,
#     alternately +1 MiB and -1 MiB;
#  3. vscsid's RSS (VmRSS) with 1, 256 and 2048 LUNs (null drives), idle, from the
#     command line and from QMP (blockdev-add + device_add).
# Prints median / p90 / min / max. Usage: tests/guest/bench-mgmt.sh [RUNS]
# The host polls the serial log every 10 ms and the guest polls sysfs every 10 ms, so
# each time includes up to ~20 ms of polling.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

RUNS=${1:-${BENCH_RUNS:-50}}
E2E_TIMEOUT=${VSCSI_E2E_TIMEOUT:-1200}

# stats < numbers (ms): median p90 min max
stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (!NR) { print "no samples"; exit }
        p90 = int(NR * 0.9 + 0.5); if (p90 < 1) p90 = 1; if (p90 > NR) p90 = NR
        med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %.0f ms, p90 %.0f ms, min %.0f ms, max %.0f ms (n=%d)\n", med, v[p90], v[1], v[NR], NR }'
}

# wait_mark POS PATTERN: tight host-side wait on the serial log (10 ms polls).
wait_mark() {
    local n=0
    until tail -c +"$(($1 + 1))" "$E2E_LOGDIR/bench.serial" | grep -aqE "$2"; do
        sleep 0.01
        n=$((n + 1))
        [ $n -lt 6000 ] || e2e_fail "no /$2/ from the guest within 60 s"
    done
}

img=$E2E_TMP/disk0.img
e2e_image "$img" 16M
e2e_lun 0 0 "$img"
e2e_image "$E2E_TMP/hp.img" 64M
mgmt_backend_start
ctl_ok blockdev-add node-name=hp driver=raw file.driver=file file.filename="$E2E_TMP/hp.img"

script=$(guest_script bench <<EOF
#!/bin/sh
. /lib/vscsi.sh
$GUEST_MGMT_LIB
RUNS=$RUNS
EOF
)
cat >> "$script" <<'EOF'
vs_autoscan
echo "STEP ready"
# 1: a disk at 0:5 comes and goes RUNS times
for i in $(seq 1 $RUNS); do
    until vs_node 0 5 > /dev/null; do sleep 0.01; done
    echo "SEEN $i"
    while [ -e /sys/bus/scsi/devices/0:0:0:5 ] || [ -n "$(ls -d /sys/bus/scsi/devices/*:0:0:5 2>/dev/null)" ]; do
        sleep 0.01
    done
    echo "GONE $i"
done
# 2: its size changes RUNS times
d=$(vs_wait_disk 0 5 60)
f=/sys/block/${d#/dev/}/size
last=$(cat $f)
echo "STEP sized $last"
for i in $(seq 1 $RUNS); do
    while [ "$(cat $f)" = "$last" ]; do sleep 0.01; done
    last=$(cat $f)
    echo "SIZE $i $last"
done
EOF

e2e_guest_bg bench "$script"
wait_serial bench 0 "STEP ready" 120

: > "$E2E_TMP/add.ms"
for i in $(seq 1 "$RUNS"); do
    pos=$(serial_pos bench)
    t0=$(date +%s%N)
    "$VSCSICTL" --qmp "$VSCSID_QMP" device_add driver=scsi-hd drive=hp scsi-id=0 lun=5 id=b5 > /dev/null
    wait_mark "$pos" "SEEN $i\b"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$E2E_TMP/add.ms"
    pos=$(serial_pos bench)
    "$VSCSICTL" --qmp "$VSCSID_QMP" device_del id=b5 > /dev/null
    wait_mark "$pos" "GONE $i\b"
done
echo "device_add -> guest device node: $(stats < "$E2E_TMP/add.ms")"

pos=$(serial_pos bench)
"$VSCSICTL" --qmp "$VSCSID_QMP" device_add driver=scsi-hd drive=hp scsi-id=0 lun=5 id=b5 > /dev/null
wait_mark "$pos" "STEP sized"
: > "$E2E_TMP/resize.ms"
size=$((64 << 20))
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then size=$((size + (1 << 20))); else size=$((size - (1 << 20))); fi
    pos=$(serial_pos bench)
    t0=$(date +%s%N)
    "$VSCSICTL" --qmp "$VSCSID_QMP" block_resize node-name=hp size=$size > /dev/null
    wait_mark "$pos" "SIZE $i $((size / 512))\b"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$E2E_TMP/resize.ms"
done
echo "block_resize -> guest's new size: $(stats < "$E2E_TMP/resize.ms")"
rc=0
e2e_guest_wait bench || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason bench)"
e2e_stop_daemons || true

# 3: RSS. rss_of PID: VmRSS in KiB.
rss_of() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
for n in 1 256 2048; do
    args=()
    for i in $(seq 0 $((n - 1))); do
        args+=(--drive "driver=null,size=1G,id=n$i" --device "scsi-hd,drive=n$i,scsi-id=$((i / 256)),lun=$((i % 256))")
    done
    sock=$E2E_TMP/rss$n.sock
    daemon_start "rss-cli-$n" "$VSCSID" --socket "$sock" "${args[@]}"
    wait_socket "$sock" 30 "rss-cli-$n"
    sleep 0.3
    cli=$(rss_of "$(daemon_pid "rss-cli-$n")")
    daemon_stop "rss-cli-$n" || true
    # the same through QMP, one request stream
    qsock=$E2E_TMP/rssq$n.qmp
    daemon_start "rss-qmp-$n" "$VSCSID" --socket "$E2E_TMP/rssq$n.sock" --qmp "$qsock"
    wait_socket "$qsock" 30 "rss-qmp-$n"
    base=$(rss_of "$(daemon_pid "rss-qmp-$n")")
    {
        echo '{"execute": "qmp_capabilities"}'
        for i in $(seq 0 $((n - 1))); do
            echo "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"n$i\", \"driver\": \"null-co\", \"size\": 1073741824}}"
            echo "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", \"drive\": \"n$i\", \"scsi-id\": $((i / 256)), \"lun\": $((i % 256))}}"
        done
        sleep 1
    } | socat -t 5 - "UNIX-CONNECT:$qsock" | grep -c '"return"' > "$E2E_TMP/ok" || true
    qmp=$(rss_of "$(daemon_pid "rss-qmp-$n")")
    [ "$(cat "$E2E_TMP/ok")" = $((2 * n + 1)) ] || echo "  (only $(cat "$E2E_TMP/ok") QMP requests succeeded)"
    daemon_stop "rss-qmp-$n" || true
    echo "vscsid RSS with $n LUN(s): ${cli} KiB from the command line; ${qmp} KiB via QMP (${base} KiB before)"
done
e2e_pass
