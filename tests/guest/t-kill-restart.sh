#!/usr/bin/env bash
# vscsid killed with SIGKILL and started again with the same options while the guest
# runs fio with crc32c verify on two LUNs, under QEMU 10 (chardev reconnect-ms=500:
# QEMU reconnects and hands the inflight buffer back; vscsid resubmits what was in
# flight). Then one SIGTERM restart (graceful: in-flight I/O drains, exit status 0).
# Passes when every fio pass in the guest verified all it wrote, the guest kernel
# logged no I/O error, and the images hold what the last pass wrote.
#
#   VSCSI_KILL_LOOPS   SIGKILL+restart cycles (default 3; 20 for the long run)
#   VSCSI_QEMU         a QEMU >= 9 (default: tests/guest/get-qemu10.sh fetches 10.0)
#   FIO_SIZE_MB        per LUN and fio pass (default 16)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

KILLS=${VSCSI_KILL_LOOPS:-3}
MB=${FIO_SIZE_MB:-16}
[ "$E2E_BACKEND" = vscsid ] || e2e_skip "restarts the vscsid backend only"

qemu=${VSCSI_QEMU:-}
if [ -z "$qemu" ]; then
    qemu=$("$GUEST_SRC_DIR/get-qemu10.sh" 2> "$E2E_LOGDIR/get-qemu10.log") ||
        e2e_skip "no QEMU 10 (get-qemu10.sh failed, see $E2E_LOGDIR/get-qemu10.log)"
fi
ver=$("$qemu" --version | sed -nE 's/.*version ([0-9]+)\..*/\1/p' | head -n 1)
[ "${ver:-0}" -ge 9 ] || e2e_skip "QEMU $ver has no vhost-user-scsi reconnect (needs >= 9)"

for i in 0 1; do
    e2e_image "$E2E_TMP/d$i.img" "$((MB + 1))M"
    e2e_lun 0 "$i" "$E2E_TMP/d$i.img"
done
E2E_VHOST_OPTS=num_queues=2,reconnect-ms=500
e2e_backend_start
# The exact command line, to start it again "with the same options".
mapfile -d '' VCMD < "/proc/$(daemon_pid vscsid)/cmdline"

# The guest loops fio write+verify passes on both LUNs until the host says stop (a
# file can't reach it, so: until LOOP_SECS have passed), at least 2 passes.
script=$(guest_script fio <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
d0=$(vs_need_disk 0 0)
d1=$(vs_need_disk 0 1)
end=$(( $(cut -d. -f1 /proc/uptime) + LOOP_SECS ))
pass=0
echo FIO-RUNNING
while [ "$pass" -lt 2 ] || [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    pass=$((pass + 1))
    fio --eta=never --output-format=json --output=/tmp/fio.json \
        --direct=1 --ioengine=libaio --rw=randwrite --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --size=${MB}M --randseed=$pass \
        --name=lun0 --filename=$d0 --bs=4k --iodepth=16 \
        --name=lun1 --filename=$d1 --bsrange=4k-64k --iodepth=8
    rc=$?
    [ "$rc" = 0 ] || vs_die "fio pass $pass exited with $rc"
    grep -q '"error" : [1-9]' /tmp/fio.json && vs_die "fio pass $pass reported an error"
    awk '/"jobname"/ { job = $3 } /"read" : \{/ { sec = "read" } /"write" : \{/ { sec = "write" }
         /"trim" : \{/ { sec = "" }
         /"io_bytes"/ && sec != "" { gsub(/,/, "", $3); print job, sec, $3; sec = "" }' \
        /tmp/fio.json | tr -d '",' > /tmp/bytes
    want=$((MB * 1048576))
    for job in lun0 lun1; do
        r=$(awk -v j="$job" '$1 == j && $2 == "read" { print $3 }' /tmp/bytes)
        w=$(awk -v j="$job" '$1 == j && $2 == "write" { print $3 }' /tmp/bytes)
        [ "$w" = "$want" ] || vs_die "pass $pass: $job wrote ${w:-?} bytes, want $want"
        [ "$r" = "$w" ] || vs_die "pass $pass: $job verified ${r:-?} of $w bytes written"
    done
    echo "FIO-PASS $pass verify ok"
done
if dmesg | grep -iE 'I/O error|blk_update_request|critical (medium|target) error|Buffer I/O'; then
    vs_die "I/O errors in the kernel log"
fi
dmesg | grep -iE 'sd 0:0:0:[01]:|scsi host0' | tail -n 8
vs_info "$pass fio passes verified, no I/O error in dmesg"
EOF
)

# Long enough for every restart to land inside a fio pass (a cycle takes 1-4 s), and
# the guest's time limit grows with it.
loop_secs=$((15 + KILLS * 4))
E2E_TIMEOUT=$((E2E_TIMEOUT + loop_secs))
e2e_guest_bg fio "$script" --qemu "$qemu" --smp 2 --env "MB=$MB" --env "LOOP_SECS=$loop_secs"
wait_log "$E2E_LOGDIR/fio.serial" 'FIO-RUNNING|VSCSI-TEST-RC' "$E2E_TIMEOUT" ||
    e2e_fail "the guest never started fio"

restart_daemon() {    # SIGNAL NAME
    local sig=$1 k=$2 pid rc=0
    pid=$(daemon_pid vscsid)
    kill "-$sig" "$pid"
    wait "$pid" 2>/dev/null || rc=$?
    unset "DAEMON_PID[vscsid]"
    cp "$E2E_LOGDIR/vscsid.log" "$E2E_LOGDIR/vscsid.$k.log"
    if [ "$sig" = TERM ] && [ "$rc" != 0 ] && [ "$rc" != 143 ]; then
        e2e_fail "vscsid exited with $rc on SIGTERM (restart $k)"
    fi
    daemon_start vscsid "${VCMD[@]}"
    wait_socket "$VSCSID_SOCK" 10 vscsid
}

t0=$(now)
for k in $(seq 1 "$KILLS"); do
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.1f", 1 + rand() * 3 }')"
    grep -aq VSCSI-TEST-RC "$E2E_LOGDIR/fio.serial" && break
    restart_daemon KILL "$k"
done
sleep 2
grep -aq VSCSI-TEST-RC "$E2E_LOGDIR/fio.serial" || restart_daemon TERM term
E2E_TIMES+=("$KILLS kills + 1 SIGTERM restart in $(elapsed "$t0")s")

rc=0
e2e_guest_wait fio || rc=$?
passes=$(grep -ac 'FIO-PASS .* verify ok' "$E2E_LOGDIR/fio.serial" || true)
resub=$(cat "$E2E_LOGDIR"/vscsid*.log | { grep -o 'resubmitting [0-9]*' || true; } |
        awk '{ n += $2 } END { print n + 0 }')
kills_done=$(find "$E2E_LOGDIR" -name 'vscsid.[0-9]*.log' | wc -l)
echo "  kill-restart: $kills_done SIGKILL restarts + 1 SIGTERM restart, $passes fio passes verified," \
     "$resub request(s) resubmitted from the inflight buffer"
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason fio)"
[ "$kills_done" = "$KILLS" ] || e2e_fail "only $kills_done of $KILLS kills happened while fio ran (raise LOOP_SECS)"
e2e_pass
