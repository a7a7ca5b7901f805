#!/usr/bin/env bash
# fio random writes with checksums, then a full verify pass, from two vCPUs at once so
# both request queues carry I/O: one job 4 KiB at queue depth 16, one job of mixed sizes
# (4-128 KiB), each on an image file (LUN 0) and on a driver=memory drive (LUN 1).
# Passes when fio exits 0 and, for each job, the bytes verified (read) equal the bytes
# written and cover its whole region (a run cut short verifies nothing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

MB=${FIO_SIZE_MB:-32}   # per job
img=$E2E_TMP/disk.img
e2e_image "$img" "$((2 * MB + 1))M"
e2e_lun 0 0 "$img"
e2e_lun 0 1 "memory:$((2 * MB + 1))M" discard=unmap
E2E_VHOST_OPTS=num_queues=2
e2e_backend_start

script=$(guest_script fio <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
dev=$(vs_need_disk 0 0)
mdev=$(vs_need_disk 0 1)
vs_info "$(cat /sys/block/${dev#/dev/}/mq/*/cpu_list 2>/dev/null | wc -l) request queues in use"
common="--direct=1 --ioengine=libaio --rw=randwrite --verify=crc32c
        --do_verify=1 --verify_fatal=1 --size=${MB}M --group_reporting=0"
fio --eta=never --output-format=json --output=/tmp/fio.json $common \
    --name=small --filename=$dev --bs=4k --iodepth=16 --offset=0 \
    --name=mixed --filename=$dev --bsrange=4k-128k --iodepth=8 --offset=${MB}M \
    --name=msmall --filename=$mdev --bs=4k --iodepth=16 --offset=0 \
    --name=mmixed --filename=$mdev --bsrange=4k-128k --iodepth=8 --offset=${MB}M
rc=$?
cat /tmp/fio.json | grep -E '"(jobname|error)"' | tr -d ' ,"'
[ "$rc" = 0 ] || vs_die "fio exited with $rc"
# Per job: the io_bytes of its "read" (the verify pass) and "write" sections.
awk '/"jobname"/ { job = $3 } /"read" : \{/ { sec = "read" } /"write" : \{/ { sec = "write" }
     /"trim" : \{/ { sec = "" }
     /"io_bytes"/ && sec != "" { gsub(/,/, "", $3); print job, sec, $3; sec = "" }' \
    /tmp/fio.json | tr -d '",' > /tmp/bytes
cat /tmp/bytes
want=$((MB * 1048576))
for job in small mixed msmall mmixed; do
    r=$(awk -v j="$job" '$1 == j && $2 == "read" { print $3 }' /tmp/bytes)
    w=$(awk -v j="$job" '$1 == j && $2 == "write" { print $3 }' /tmp/bytes)
    [ "$w" = "$want" ] || vs_die "$job wrote ${w:-?} bytes, want $want"
    [ "$r" = "$w" ] || vs_die "$job verified ${r:-?} of $w bytes written"
done
grep -q '"error" : 0' /tmp/fio.json || vs_die "fio reported an error"
vs_info "fio verify ok"
EOF
)

e2e_guest_ok fio "$script" --smp 2 --env "MB=$MB"
e2e_pass
