#!/usr/bin/env bash
# Several targets with several LUNs each, including LUN 300 (flat addressing, > 255):
# the guest must find every LUN exactly once, at the right target/LUN, with the right
# size and the right image behind it, and answer INQUIRY / READ CAPACITY / REPORT LUNS.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# target lun size: distinct sizes, so a LUN mix-up shows as a size mismatch too.
LAYOUT="0:0:8M 0:1:12M 0:2:16M 3:0:20M 5:300:24M"
expect=""
for spec in $LAYOUT; do
    IFS=: read -r t l size <<< "$spec"
    img=$E2E_TMP/lun-$t-$l.img
    e2e_image "$img" "$size"
    # A label in the first sector says which image the guest is reading.
    printf 'vscsi-lun-%s-%s\n' "$t" "$l" | dd of="$img" conv=notrunc status=none
    e2e_lun "$t" "$l" "$img"
    expect="$expect $t:$l:$(stat -c %s "$img")"
done
e2e_backend_start

script=$(guest_script luns <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
vs_show
n=0
for spec in $EXPECT; do
    IFS=: read -r t lun size <<EOT
$spec
EOT
    n=$((n + 1))
    # Linux keeps the address method in its LUN number: flat-addressed LUN 300 (REPORT
    # LUNS 41 2c) is 0x412c = 16684 in sysfs and lsscsi.
    l=$lun
    [ "$lun" -lt 256 ] || l=$((0x4000 + lun))
    dev=$(vs_need_disk "$t" "$l")
    sg=$(vs_need_sg "$t" "$l")
    [ "$(cat "$(vs_sysdev "$t" "$l")/type")" = 0 ] || vs_die "$t:$l is not a disk"
    got=$(blockdev --getsize64 "$dev")
    [ "$got" = "$size" ] || vs_die "$t:$l ($dev) has $got bytes, want $size"
    label=$(dd if="$dev" bs=512 count=1 iflag=direct status=none | head -n 1)
    [ "$label" = "vscsi-lun-$t-$lun" ] || vs_die "$t:$l ($dev) reads label '$label'"
    sg_inq "$sg" > /tmp/inq || vs_die "sg_inq $sg ($t:$l) failed"
    grep -q 'PDT=0 ' /tmp/inq || vs_die "sg_inq $sg: not PDT 0"
    sg_inq --vpd --page=0x83 "$sg" > /dev/null || vs_die "VPD 0x83 of $t:$l failed"
    blocks=$(sg_readcap --long "$sg" | awk '/Last LBA=/ { sub(/.*Last LBA=/, ""); print $1 + 1 }')
    bs=$(sg_readcap --long "$sg" | awk '/Logical block length=/ { sub(/.*length=/, ""); print $1 }')
    [ $((blocks * bs)) = "$size" ] ||
        vs_die "READ CAPACITY(16) of $t:$l: $blocks blocks of $bs, want $size bytes"
    vs_info "target $t lun $lun ($t:$l) $dev $sg $size bytes ok"
done

# Exactly these LUNs, no duplicates (a LUN >= 256 coded differently in REPORT LUNS and
# in events gives a second device for the same LUN).
found=$(ls -d /sys/bus/scsi/devices/*:0:*:* | wc -l)
[ "$found" = "$n" ] || vs_die "found $found LUNs, want $n"

# REPORT LUNS of target 0 lists 0, 1, 2. Target 5 has no LUN 0, so Linux found LUN 300
# from REPORT LUNS sent to the absent LUN 0 (it does not probe LUNs > 7 one by one); sent
# to LUN 300 itself the list must be 300 in flat addressing (41 2c), or the command is
# refused (QEMU's own scsi-hd answers ILLEGAL REQUEST there: SPC-4 requires REPORT LUNS
# only of LUN 0 or the REPORT LUNS well known LU).
luns0=$(sg_luns --quiet "$(vs_sg 0 0)" | sort | tr '\n' ' ')
[ "$luns0" = "0000000000000000 0001000000000000 0002000000000000 " ] ||
    vs_die "REPORT LUNS of target 0: $luns0"
if luns5=$(sg_luns --quiet "$(vs_sg 5 16684)" 2>/tmp/err); then
    [ "$luns5" = "412c000000000000" ] || vs_die "REPORT LUNS of target 5: $luns5"
else
    grep -q 'Illegal request' /tmp/err || vs_die "REPORT LUNS to 5:300: $(cat /tmp/err)"
    vs_info "REPORT LUNS to 5:300 refused with ILLEGAL REQUEST"
fi
echo "all $n LUNs ok"
EOF
)

e2e_guest_ok luns "$script" --env "EXPECT=$expect"
e2e_pass
