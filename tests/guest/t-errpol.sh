#!/usr/bin/env bash
# Error policies with a real guest (QEMU's werror/rerror semantics):
#  0:0 werror=stop,rerror=stop with injected faults inside the region a fio crc32c
#      write+verify job covers: ENOSPC 3 times on one 4 KiB block, EIO twice on another.
#      Each failure holds the request: BLOCK_IO_ERROR (action stop) then STOP, and
#      query-status says io-error; the host answers every STOP with cont, the held
#      request is retried (failing again until its rule is spent). fio must finish with
#      verify OK, and the guest's kernel log must show no error for the disk.
#  0:1 rerror=report with a block that always fails to read (EIO): the guest's read of
#      it fails (after the kernel's own retries of ABORTED COMMAND), BLOCK_IO_ERROR with
#      action report, the rest of the disk reads fine, the daemon keeps running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=mgmt-lib.sh
. "$(dirname "$0")/mgmt-lib.sh"

MB=16                   # fio region on 0:0
img0=$E2E_TMP/disk0.img img1=$E2E_TMP/disk1.img
e2e_image "$img0" 32M
e2e_image "$img1" 16M
# sectors 8192 (4 MiB) and 24576 (12 MiB): one 4 KiB fio block each
e2e_lun 0 0 "$img0" "werror=stop,rerror=stop,inject=write:enospc:sector=8192+8:count=3;write:eio:sector=24576+8:count=2"
e2e_lun 0 1 "$img1" "rerror=report,inject=read:eio:sector=2048+8:count=inf"
mgmt_backend_start
events=$E2E_LOGDIR/events.log
daemon_start events "$VSCSICTL" --qmp "$VSCSID_QMP" --json --timeout 0 events

script=$(guest_script ep <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
d0=$(vs_need_disk 0 0)
d1=$(vs_need_disk 0 1)
hctl0=$(basename "$(vs_sysdev 0 0)")
echo "STEP start"
fio --eta=never --output-format=json --output=/tmp/fio.json --name=ep --filename="$d0" \
    --direct=1 --ioengine=libaio --rw=randwrite --bs=4k --iodepth=8 --size=${MB}M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 || vs_die "fio exited with $?"
grep -q '"error" : 0' /tmp/fio.json || vs_die "fio reported an error"
# io_bytes of the write pass and of the verify (read) pass: the whole region each
bytes=$(awk '/"read" : \{/ { s = "r" } /"write" : \{/ { s = "w" } /"trim" : \{/ { s = "" }
             /"io_bytes"/ && s != "" { gsub(/,/, "", $3); printf "%s=%s ", s, $3; s = "" }' /tmp/fio.json)
want=$((MB * 1048576))
[ "$bytes" = "r=$want w=$want " ] || vs_die "fio moved $bytes bytes, want $want each way"
vs_info "fio verify ok ($bytes)"
echo "STEP fio-done"
if dmesg | grep -E "${d0#/dev/}|$hctl0" | grep -E "[Ee]rror|FAILED|Sense Key|[Aa]bort|[Rr]eset|timing out"; then
    vs_die "the kernel logged trouble with $d0"
fi
# rerror=report: the bad block fails, its neighbours read
dd if="$d1" of=/dev/null bs=4096 skip=256 count=1 iflag=direct 2>/tmp/dd.err &&
    vs_die "reading the failing block of $d1 succeeded"
cat /tmp/dd.err
grep -q "Input/output error" /tmp/dd.err || vs_die "dd: $(cat /tmp/dd.err)"
dd if="$d1" of=/dev/null bs=4096 skip=257 count=255 iflag=direct status=none ||
    vs_die "reading past the failing block of $d1 failed"
dmesg | grep -E "${d1#/dev/}" | grep -m3 -iE "error|sense" || true
echo "STEP done"
EOF
)

e2e_guest_bg ep "$script" --env "MB=$MB"
wait_serial ep 0 "STEP start" 120

# Answer each STOP with cont until the guest's fio is through.
conts=0 start=$(now)
until serial_lines ep 0 "STEP fio-done" | grep -q .; do
    stops=$(grep -cE '"event": ?"STOP"' "$events" || true)
    if [ "$stops" -gt "$conts" ]; then
        st=$(ctl --json query-status)
        [ "$st" = '{"status": "io-error", "running": false}' ] ||
            e2e_fail "after STOP $stops, query-status says $st"
        ctl_ok cont
        conts=$((conts + 1))
    fi
    pid_alive "$(e2e_guest_pid ep)" || e2e_fail "guest ended before fio was done: $(guest_fail_reason ep)"
    timed_out "$start" 150 && e2e_fail "fio not done after 150 s ($conts conts)"
    sleep 0.1
done
wait_serial ep 0 "STEP done" 60
rc=0
e2e_guest_wait ep || rc=$?
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc): $(guest_fail_reason ep)"

# What the management side saw.
n_stop=$(grep -cE '"event": ?"STOP"' "$events" || true)
n_resume=$(grep -cE '"event": ?"RESUME"' "$events" || true)
d0_err=$(grep -E '"BLOCK_IO_ERROR"' "$events" | grep -E '"device": ?"d0"' || true)
n_nospace=$(grep -cE '"action": ?"stop", ?"nospace": ?true' <<< "$d0_err" || true)
n_eio=$(grep -cE '"action": ?"stop", ?"nospace": ?false, ?"reason": ?"Input/output error"' <<< "$d0_err" || true)
n_d0=$(grep -c . <<< "$d0_err" || true)
n_d1=$(grep -E '"BLOCK_IO_ERROR"' "$events" | grep -E '"device": ?"d1"' |
       grep -cE '"operation": ?"read", ?"action": ?"report"' || true)
echo "  $conts cont(s); events: STOP $n_stop, RESUME $n_resume, BLOCK_IO_ERROR d0 $n_d0" \
     "($n_nospace ENOSPC, $n_eio EIO), d1 $n_d1 (report)"
[ "$n_d0" = 5 ] && [ "$n_nospace" = 3 ] && [ "$n_eio" = 2 ] ||
    e2e_fail "want 5 BLOCK_IO_ERROR stop events for d0 (3 ENOSPC, 2 EIO)"
[ "$n_stop" = "$conts" ] && [ "$n_resume" = "$conts" ] && [ "$conts" -ge 1 ] ||
    e2e_fail "STOP/RESUME/cont counts differ"
[ "$n_d1" -ge 1 ] || e2e_fail "no BLOCK_IO_ERROR (read, report) for d1"
rules=$(ctl --json x-vscsi-inject node-name=d0)
[ "$(grep -o '"remaining": 0' <<< "$rules" | wc -l)" = 2 ] || e2e_fail "rules not spent: $rules"
st=$(ctl --json query-status)
[ "$st" = '{"status": "running", "running": true}' ] || e2e_fail "query-status at the end: $st"
guest_output ep | grep -a 'guest: \|Input/output' | sed 's/^/  /'
e2e_pass
