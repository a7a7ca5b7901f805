#!/usr/bin/env bash
# Request queues on iothreads (--iothreads 2, two request queues: one per thread) with a
# 2-vCPU guest, so that both threads carry I/O at once while the main thread serves the
# control queue and QMP:
#  - every completion signal is held up to 200 us (--coalesce-us), by a timer on the
#    queue's own iothread;
#  - vscsid runs the two iothreads (named vscsi-io0/1 in /proc/PID/task/*/comm), and
#    QMP query-iothreads gives the same names with their thread ids;
#  - fio crc32c write+verify on two LUNs, one job pinned to each vCPU (blk-mq maps a
#    CPU to a queue, so each job's requests go to its own iothread);
#  - meanwhile the host stops and resumes vscsid 5 times (QMP stop/cont: the iothreads
#    stop taking requests) and hot-plugs and unplugs a third LUN;
#  - then, with a direct read running on the first disk, the guest resets its LUN
#    (sg_reset -d: a LOGICAL UNIT RESET TMF on the control queue, served by the main
#    thread, over commands owned by an iothread); the read must finish without error;
#  - fio must report verify OK for the whole region of both jobs, the guest's kernel log
#    no I/O error, and vscsid must end running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

MB=${FIO_SIZE_MB:-96}
img0=$E2E_TMP/disk0.img img1=$E2E_TMP/disk1.img img2=$E2E_TMP/disk2.img
e2e_image "$img0" "$((MB + 1))M"
e2e_image "$img1" "$((MB + 1))M"
e2e_image "$img2" 8M
e2e_lun 0 0 "$img0"
e2e_lun 0 1 "$img1"
E2E_VHOST_OPTS=num_queues=2
# --coalesce-us: completion signals are held by timers on the iothreads' loops,
# across the stop/cont cycles, the hot-plug and the reset below
VSCSID_ARGS="${VSCSID_ARGS:-} --iothreads 2 --num-queues 2 --coalesce-us 200"
mgmt_backend_start

pid=$(daemon_pid vscsid)
names=$(cat /proc/"$pid"/task/*/comm | sort | tr '\n' ' ')
echo "  vscsid threads: $names"
for n in vscsi-io0 vscsi-io1; do
    grep -qw "$n" <<< "$names" || e2e_fail "vscsid has no thread $n (threads: $names)"
done
# QMP query-iothreads names the same threads, with their ids
its=$(ctl --json query-iothreads)
for t in /proc/"$pid"/task/*; do
    n=$(cat "$t/comm")
    case $n in vscsi-io*)
        grep -q "\"id\": \"$n\", \"thread-id\": ${t##*/}," <<< "$its" ||
            e2e_fail "query-iothreads does not give $n as thread ${t##*/}: $its" ;;
    esac
done

script=$(guest_script it <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
d0=$(vs_need_disk 0 0)
d1=$(vs_need_disk 0 1)
vs_info "$(ls -d /sys/block/${d0#/dev/}/mq/* | wc -l) request queues for $d0"
echo "STEP start"
common="--direct=1 --ioengine=libaio --rw=randwrite --bs=4k --iodepth=16 --verify=crc32c
        --do_verify=1 --verify_fatal=1 --size=${MB}M --group_reporting=0"
fio --eta=never --output-format=json --output=/tmp/fio.json $common \
    --name=q0 --filename="$d0" --cpus_allowed=0 \
    --name=q1 --filename="$d1" --cpus_allowed=1 || vs_die "fio exited with $?"
grep -q '"error" : 0' /tmp/fio.json || vs_die "fio reported an error"
awk '/"jobname"/ { job = $3 } /"read" : \{/ { sec = "read" } /"write" : \{/ { sec = "write" }
     /"trim" : \{/ { sec = "" }
     /"io_bytes"/ && sec != "" { gsub(/,/, "", $3); print job, sec, $3; sec = "" }' \
    /tmp/fio.json | tr -d '",' > /tmp/bytes
want=$((MB * 1048576))
for job in q0 q1; do
    r=$(awk -v j="$job" '$1 == j && $2 == "read" { print $3 }' /tmp/bytes)
    w=$(awk -v j="$job" '$1 == j && $2 == "write" { print $3 }' /tmp/bytes)
    [ "$w" = "$want" ] || vs_die "$job wrote ${w:-?} bytes, want $want"
    [ "$r" = "$w" ] || vs_die "$job verified ${r:-?} of $w bytes written"
done
vs_info "fio verify ok on both queues"
echo "STEP fio-done"
# a LUN reset over reads in flight on an iothread's queue
dd if="$d0" of=/dev/null bs=64k count=384 iflag=direct 2>/tmp/dd.err &
ddpid=$!
sleep 0.3
sg_reset -d "$d0" || vs_die "sg_reset -d $d0 failed"
wait $ddpid || vs_die "dd across the LUN reset failed: $(cat /tmp/dd.err)"
dmesg | grep -iE "reset|abort" | tail -n 3
dd if="$d1" of=/dev/null bs=64k count=64 iflag=direct status=none || vs_die "reading $d1 failed"
if dmesg | grep -E "${d0#/dev/}|${d1#/dev/}" | grep -E "[Ee]rror|FAILED|timing out"; then
    vs_die "the kernel logged errors for the disks"
fi
echo "STEP done"
EOF
)

e2e_guest_bg it "$script" --smp 2 --env "MB=$MB"
wait_serial it 0 "STEP start" 120

# While fio runs: stop/cont, and a LUN coming and going.
start=$(now)
ctl_ok blockdev-add node-name=hp driver=raw file.driver=file "file.filename=$img2"
during=0
for i in 1 2 3 4 5; do
    sleep 0.5
    serial_lines it 0 "STEP fio-done" | grep -q . || during=$((during + 1))
    ctl_ok stop
    st=$(ctl --json query-status)
    [ "$st" = '{"status": "paused", "running": false}' ] || e2e_fail "after stop: query-status says $st"
    sleep 0.2
    ctl_ok cont
    if [ "$i" = 2 ]; then
        ctl_ok device_add driver=scsi-hd drive=hp scsi-id=0 lun=2 id=hpd
    fi
    if [ "$i" = 4 ]; then
        ctl_ok device_del id=hpd
    fi
done
echo "  5 stop/cont cycles ($during while fio ran) and a hot-plug + unplug in $(elapsed "$start") s"
[ "$during" -ge 1 ] || e2e_fail "fio was over before the first stop (raise FIO_SIZE_MB)"
wait_serial it 0 "STEP done" 240
rc=0
e2e_guest_wait it || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason it)"
st=$(ctl --json query-status)
[ "$st" = '{"status": "running", "running": true}' ] || e2e_fail "query-status at the end: $st"
guest_output it | grep -a 'guest: \|reset\|abort' | sed 's/^/  /'
e2e_pass
