#!/usr/bin/env bash
# Data integrity both ways, byte for byte:
#  host -> guest: the host writes random data into the image before boot (first MiB, a
#                 region not 4 KiB aligned, the last 4 KiB); the guest reads it with
#                 O_DIRECT and compares checksums;
#  guest -> host: the guest writes slices of a random file (O_DIRECT in 512 B, 4 KiB,
#                 64 KiB and one 4 MiB request; buffered + sync; the last sector), reads
#                 them back, powers off; the host compares the WHOLE image against the
#                 image it expects, so stray writes anywhere are caught too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=$((64 << 20))
img=$E2E_TMP/disk.img
e2e_image "$img" "$SIZE"
hpat=$E2E_TMP/host-pattern.bin
gpat=$E2E_TMP/guest-pattern.bin
head -c $((2 << 20)) /dev/urandom > "$hpat"
head -c $((4 << 20)) /dev/urandom > "$gpat"

# src:len:dst copies of FILE into IMAGE, the same arithmetic as the guest's dd.
apply() {   # FILE IMAGE src:len:dst...
    local file=$1 image=$2 op src len dst
    shift 2
    for op in "$@"; do
        IFS=: read -r src len dst <<< "$op"
        dd if="$file" of="$image" bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes \
           skip="$src" count="$len" seek="$dst" conv=notrunc status=none
    done
}
md5_of() {  # IMAGE off len
    dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
        md5sum | cut -d' ' -f1
}

# Host writes: first MiB, 256 KiB at 33 MiB + 1536 (512-aligned only), last 4 KiB.
HOST_OPS=(0:1048576:0 1048576:262144:$((33 * 1048576 + 1536)) 1310720:4096:$((SIZE - 4096)))
apply "$hpat" "$img" "${HOST_OPS[@]}"
expected=$E2E_TMP/expected.img
cp --sparse=always "$img" "$expected"
host_checks=""
for op in "${HOST_OPS[@]}"; do
    IFS=: read -r _ len dst <<< "$op"
    host_checks="$host_checks $dst:$len:$(md5_of "$img" "$dst" "$len")"
done

# Guest writes, src:len:dst:bs:mode. Applied after the host's, so the last sector and a
# 4 KiB inside the first MiB overwrite host data the guest has already checked.
GUEST_OPS=(0:1048576:8388608:65536:direct
           1048576:131072:$((20 * 1048576 + 2560)):512:direct
           1179648:2097152:41943040:1048576:buffered
           3276800:512:$((SIZE - 512)):512:direct
           3277312:4096:65536:4096:direct
           0:4194304:50331648:4194304:direct)
ops=()
for op in "${GUEST_OPS[@]}"; do ops+=("${op%:*:*}"); done
apply "$gpat" "$expected" "${ops[@]}"

e2e_lun 0 0 "$img"
e2e_backend_start

script=$(guest_script pattern <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
dev=$(vs_need_disk 0 0)
[ "$(blockdev --getss "$dev")" = 512 ] || vs_die "test assumes 512-byte logical blocks"
[ "$(blockdev --getsize64 "$dev")" = "$SIZE" ] || vs_die "size $(blockdev --getsize64 "$dev")"

for c in $HOST_CHECKS; do
    IFS=: read -r off len sum <<EOT
$c
EOT
    got=$(dd if="$dev" bs=512 iflag=direct,skip_bytes,count_bytes skip="$off" count="$len" \
          status=none | md5sum | cut -d' ' -f1)
    [ "$got" = "$sum" ] || vs_die "host data at $off+$len: md5 $got, want $sum"
    vs_info "host data at $off+$len ok"
done

for op in $GUEST_OPS; do
    IFS=: read -r src len dst bs mode <<EOT
$op
EOT
    if [ "$mode" = direct ]; then oflag=seek_bytes,direct; else oflag=seek_bytes; fi
    dd if=/files/guest-pattern.bin of="$dev" bs="$bs" iflag=skip_bytes,count_bytes,fullblock \
       oflag="$oflag" skip="$src" count="$len" seek="$dst" conv=notrunc status=none ||
        vs_die "write $src+$len at $dst (bs $bs, $mode) failed"
done
sync
echo 3 > /proc/sys/vm/drop_caches
for op in $GUEST_OPS; do
    IFS=: read -r src len dst bs mode <<EOT
$op
EOT
    want=$(dd if=/files/guest-pattern.bin bs=65536 iflag=skip_bytes,count_bytes skip="$src" \
           count="$len" status=none | md5sum | cut -d' ' -f1)
    got=$(dd if="$dev" bs="$bs" iflag=direct,skip_bytes,count_bytes skip="$dst" count="$len" \
          status=none | md5sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || vs_die "read back $len at $dst: md5 $got, want $want"
    vs_info "wrote and read back $len at $dst (bs $bs, $mode)"
done
EOF
)

e2e_guest_ok pattern "$script" --file "$gpat" --env "SIZE=$SIZE" \
    --env "HOST_CHECKS=${host_checks# }" --env "GUEST_OPS=${GUEST_OPS[*]}"

# Byte for byte, the whole image: the guest's writes landed where they should and
# nowhere else.
if ! diff=$(cmp "$img" "$expected" 2>&1); then
    e2e_fail "image differs from the expected one: $diff"
fi
e2e_pass
