#!/usr/bin/env bash
# Three QEMUs, one after the other, against the SAME vscsid process:
#  A  writes pattern A (O_DIRECT) and powers off cleanly;
#  B  checks A, writes pattern B, starts random writes elsewhere and is SIGKILLed with
#     that I/O in flight (QEMU crash: the connection drops without any vring stop);
#  C  checks A and B, writes pattern C, powers off.
# vscsid must stay the same process throughout and serve each new connection; the host
# finally checks A, B and C in the image file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

img=$E2E_TMP/disk.img
e2e_image "$img" 64M
for p in a b c; do head -c $((2 << 20)) /dev/urandom > "$E2E_TMP/$p.bin"; done
# Where each pattern goes (bytes); B's in-flight writes go to 32..48 MiB, never checked.
OFF_A=$((1 << 20)) OFF_B=$((16 << 20)) OFF_C=$((60 << 20))
LEN=$((2 << 20))

e2e_lun 0 0 "$img"
e2e_backend_start
if [ "$E2E_BACKEND" = vscsid ]; then
    vpid=$(daemon_pid vscsid)
    vstart=$(awk '{ print $22 }' "/proc/$vpid/stat")   # start time: the pid was not reused
fi
same_daemon() {
    [ "$E2E_BACKEND" = builtin ] && return 0
    if ! daemon_alive vscsid || [ "$(awk '{ print $22 }' "/proc/$vpid/stat")" != "$vstart" ]; then
        e2e_fail "vscsid (pid $vpid) is gone after $1"
    fi
}

# Guest helpers shared by the three boots: write / check a pattern file at an offset.
# shellcheck disable=SC2016 # guest code, expanded in the guest
common='. /lib/vscsi.sh
dev=$(vs_need_disk 0 0)
put() { dd if=/files/$1.bin of=$dev bs=64K oflag=direct,seek_bytes seek=$2 conv=notrunc status=none ||
            vs_die "writing $1 failed"; vs_info "wrote $1 at $2"; }
check() { want=$(md5sum < /files/$1.bin | cut -d" " -f1)
          got=$(dd if=$dev bs=64K iflag=direct,skip_bytes,count_bytes skip=$2 count=$LEN status=none |
                md5sum | cut -d" " -f1)
          [ "$got" = "$want" ] || vs_die "pattern $1 at $2: md5 $got, want $want"; vs_info "$1 at $2 ok"; }'
files=(--file "$E2E_TMP/a.bin" --file "$E2E_TMP/b.bin" --file "$E2E_TMP/c.bin"
       --env "OFF_A=$OFF_A" --env "OFF_B=$OFF_B" --env "OFF_C=$OFF_C" --env "LEN=$LEN")

script_a=$(guest_script a <<EOF
#!/bin/sh
$common
put a \$OFF_A
check a \$OFF_A
EOF
)
script_b=$(guest_script b <<EOF
#!/bin/sh
$common
check a \$OFF_A
put b \$OFF_B
check b \$OFF_B
fio --name=inflight --filename=\$dev --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=16 --offset=32M --size=16M --time_based --runtime=600 --eta=never > /dev/null &
sleep 2
echo READY-FOR-KILL
wait
EOF
)
script_c=$(guest_script c <<EOF
#!/bin/sh
$common
check a \$OFF_A
check b \$OFF_B
put c \$OFF_C
check c \$OFF_C
EOF
)

e2e_guest_ok A "$script_a" "${files[@]}"
same_daemon "guest A powered off"

e2e_guest_bg B "$script_b" "${files[@]}"
t0=$(now)
if ! wait_log "$E2E_LOGDIR/B.serial" 'READY-FOR-KILL|VSCSI-TEST-RC' "$E2E_TIMEOUT"; then
    e2e_fail "guest B never got ready"
fi
grep -aq READY-FOR-KILL "$E2E_LOGDIR/B.serial" ||
    e2e_fail "guest B failed: $(guest_fail_reason B)"
# QMP answers, so the machine is running (and the QMP plumbing works for other tests).
qmp "$E2E_TMP/B.qmp" '{"execute":"query-status"}' | grep -q '"running"' ||
    e2e_fail "QMP query-status of guest B did not say running"
e2e_guest_kill B KILL
E2E_TIMES+=("B boot+write+kill total=$(elapsed "$t0")s")
same_daemon "QEMU B was killed"

e2e_guest_ok C "$script_c" "${files[@]}"
same_daemon "guest C powered off"

for p in a:$OFF_A b:$OFF_B c:$OFF_C; do
    cmp -n "$LEN" "$E2E_TMP/${p%%:*}.bin" "$img" 0 "${p#*:}" >/dev/null ||
        e2e_fail "pattern ${p%%:*} is not in the image at ${p#*:}"
done
e2e_pass
