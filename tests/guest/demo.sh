#!/usr/bin/env bash
# `make demo`: boot the test guest against vscsid serving one 256 MiB disk and show what
# the guest sees: lsscsi, INQUIRY, capacity, block limits, discard mode, and a short fio
# verify run. VSCSI_E2E_BACKEND=builtin shows the same for QEMU's own virtio-scsi.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

img=$E2E_TMP/demo.img
e2e_image "$img" 256M
e2e_lun 0 0 "$img" discard=unmap
e2e_backend_start

script=$(guest_script demo <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
run() { echo; echo "guest# $*"; "$@"; }
dev=$(vs_need_disk 0 0)
sg=$(vs_need_sg 0 0)
run uname -r
run lsscsi -g -s
run sg_inq "$sg"
run sg_readcap --long "$sg"
run sg_vpd --page=bl "$sg"
run cat "/sys/class/scsi_disk/$(basename "$(vs_sysdev 0 0)")/provisioning_mode"
run cat "/sys/block/${dev#/dev/}/queue/max_sectors_kb"
run fio --name=demo --filename="$dev" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=16 --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never \
    --output-format=terse --terse-version=3 |
    awk -F';' '$1 == 3 { printf "fio: wrote %s KiB at %s IOPS, verified %s KiB (read %s IOPS), errors %s\n",
                 $47, $49, $6, $8, $5 }'
EOF
)

rc=0
e2e_guest demo "$script" || rc=$?
guest_output demo | grep -av "^$MARK_BEGIN\|^$MARK_RC"
[ "$rc" = 0 ] || e2e_fail "guest failed (rc $rc)"
e2e_pass
