#!/usr/bin/env bash
# make bench-guest: fio 4 KiB randread and randwrite at QD16 in a TCG Linux guest (1 vCPU,
# libaio, O_DIRECT) on the same image file served three ways:
#   vscsid       vscsid LUN through -device vhost-user-scsi-pci
#   vscsid-coalesce  the same with --coalesce-us (BENCH_GUEST_COALESCE_US: auto, or a
#                window in us such as 50): the guest gets several completions per
#                interrupt (docs/performance.md)
#   scsi-hd      QEMU's built-in virtio-scsi-pci + scsi-hd
#   virtio-blk   QEMU's built-in virtio-blk-pci
# Boots are interleaved (one of each device per round) and the report gives medians:
# under TCG the guest is the bottleneck and one boot varies by tens of percent, so only
# devices measured in the same run compare (see docs/performance.md).
#
# Environment: BENCH_GUEST_ROUNDS (3), BENCH_GUEST_RUNTIME (8 s per fio job),
#   BENCH_GUEST_IMG_DIR (/dev/shm), BENCH_GUEST_IMG_SIZE (256M),
#   BENCH_GUEST_DRIVE ("" : extra -drive options of the built-in devices, e.g.
#   aio=io_uring; QEMU's defaults are cache=writeback, aio=threads),
#   BENCH_GUEST_VSCSID_DRIVE (cache=writeback), BENCH_GUEST_VSCSID_ARGS (more vscsid
#   options, e.g. "--poll-us 200"), BENCH_GUEST_COALESCE_US (auto),
#   BENCH_GUEST_KINDS (all four),
#   VSCSI_QEMU, VSCSID, BENCH_OUT (build/bench).
# Output: BENCH_OUT/bench-guest.md, bench-guest.json, bench-guest-runs.jsonl,
#   bench-guest.png; serial logs in build/guest/logs/bench-guest/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_GUEST_ROUNDS:-3}
RT=${BENCH_GUEST_RUNTIME:-8}
IMG_DIR=${BENCH_GUEST_IMG_DIR:-/dev/shm}
IMG_SIZE=${BENCH_GUEST_IMG_SIZE:-256M}
BUILTIN_OPTS=${BENCH_GUEST_DRIVE:-}
VSCSID_OPTS=${BENCH_GUEST_VSCSID_DRIVE:-cache=writeback}
OUT=${BENCH_OUT:-$REPO_DIR/build/bench}
mkdir -p "$OUT"
RUNS=$OUT/bench-guest-runs.jsonl
: > "$RUNS"
command -v python3 >/dev/null || ensure_pkgs python3-minimal

img=$IMG_DIR/vscsi-bench-guest-$$.img
trap 'rm -f "$img"' EXIT   # lib.sh's own EXIT trap is re-installed below
head -c "$(numfmt --from=iec "$IMG_SIZE")" /dev/urandom > "$img"
trap 'rc=$?; rm -f "$img"; (exit $rc); e2e_cleanup' EXIT

script=$(guest_script bench <<'EOF'
#!/bin/sh
. /lib/vscsi.sh
if [ "$KIND" = virtio-blk ]; then
    modprobe virtio_blk || vs_die "modprobe virtio_blk"
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    dev=/dev/vda
    [ -b $dev ] || vs_die "no /dev/vda"
else
    dev=$(vs_need_disk 0 0)
fi
vs_info "$KIND: $dev, $(cat /sys/block/${dev#/dev/}/queue/scheduler 2>/dev/null)"
irqs() { awk '/virtio/ { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i } END { print n + 0 }' /proc/interrupts; }
for rw in randread randwrite; do
    i0=$(irqs)
    fio --name=$rw --filename=$dev --direct=1 --ioengine=libaio --rw=$rw --bs=4k \
        --iodepth=16 --time_based --runtime=$RT --ramp_time=1 --norandommap \
        --randrepeat=0 --eta=never --output-format=json --output=/tmp/$rw.json ||
        vs_die "fio $rw failed"
    # device interrupts (all virtio vectors) over the job, ramp included
    echo "BENCH-IRQS $rw $(($(irqs) - i0))"
    echo "BENCH-JSON-BEGIN $rw"
    cat /tmp/$rw.json
    echo "BENCH-JSON-END $rw"
done
EOF
)

boot() {   # boot KIND ROUND
    local kind=$1 round=$2 name="$1-r$2" rc=0
    GUEST_ARGS=()
    # lib.sh checks that vscsid is still alive after each guest: only when it serves one
    E2E_BACKEND=builtin
    case $kind in
    vscsid | vscsid-coalesce)
        E2E_BACKEND=vscsid
        local extra=()
        [ "$kind" = vscsid-coalesce ] && extra=(--coalesce-us "${BENCH_GUEST_COALESCE_US:-auto}")
        # shellcheck disable=SC2086 # BENCH_GUEST_VSCSID_ARGS: words
        daemon_start vscsid "$VSCSID" --socket "$VSCSID_SOCK" \
            --drive "file=$img,id=d0${VSCSID_OPTS:+,$VSCSID_OPTS}" \
            --device scsi-hd,drive=d0,scsi-id=0,lun=0 "${extra[@]}" ${BENCH_GUEST_VSCSID_ARGS:-}
        wait_socket "$VSCSID_SOCK" 10 vscsid
        GUEST_ARGS=(--vhost-user "$VSCSID_SOCK") ;;
    scsi-hd)
        GUEST_ARGS=(--builtin-scsi "$img,scsi-id=0,lun=0${BUILTIN_OPTS:+,$BUILTIN_OPTS}") ;;
    virtio-blk)
        # shellcheck disable=SC2054 # the commas are QEMU's option syntax
        GUEST_ARGS=(--qemu-arg -drive
                    --qemu-arg "file=$img,if=none,id=vb,format=raw${BUILTIN_OPTS:+,$BUILTIN_OPTS}"
                    --qemu-arg -device --qemu-arg virtio-blk-pci,drive=vb) ;;
    esac
    log "round $round: $kind"
    e2e_guest "$name" "$script" --env "KIND=$kind" --env "RT=$RT" || rc=$?
    if [ "$E2E_BACKEND" = vscsid ]; then
        daemon_stop vscsid || e2e_fail "vscsid exited badly on SIGTERM"
    fi
    if [ "$rc" != 0 ]; then
        log "  $name failed (rc $rc): $(guest_fail_reason "$name")"
        return 0
    fi
    guest_output "$name" | python3 -c '
import json, sys
kind, rnd = sys.argv[1], int(sys.argv[2])
cur, buf, irqs = None, [], {}
for line in sys.stdin:
    if line.startswith("BENCH-IRQS"):
        f = line.split()
        irqs[f[1]] = int(f[2])
    elif line.startswith("BENCH-JSON-BEGIN"):
        cur, buf = line.split()[1], []
    elif line.startswith("BENCH-JSON-END") and cur:
        txt = "".join(buf)
        j = json.loads(txt[txt.index("{"):])["jobs"][0]
        x = j["read"] if cur == "randread" else j["write"]
        p = x["clat_ns"].get("percentile", {})
        # interrupts were counted over the 1 s ramp too: add its I/Os
        ios = x.get("total_ios", 0) + x["iops"]
        print(json.dumps({"kind": kind, "round": rnd, "rw": cur, "iops": x["iops"],
                          "irqs_per_io": (irqs[cur] / ios) if ios and cur in irqs else None,
                          "p50_us": p.get("50.000000", 0) / 1000.0, "p99_us": p.get("99.000000", 0) / 1000.0,
                          "mean_us": x["lat_ns"]["mean"] / 1000.0}))
        cur = None
    elif cur:
        buf.append(line)' "$kind" "$round" >> "$RUNS"
}

read -r -a KINDS <<< "${BENCH_GUEST_KINDS:-vscsid vscsid-coalesce scsi-hd virtio-blk}"
for ((r = 1; r <= ROUNDS; r++)); do
    # rotate the order each round so no device always boots first
    for ((k = 0; k < ${#KINDS[@]}; k++)); do
        boot "${KINDS[$(((k + r - 1) % ${#KINDS[@]}))]}" "$r"
    done
done

QEMU_VER=$("${VSCSI_QEMU:-qemu-system-x86_64}" --version | head -1)
python3 - "$RUNS" "$OUT" "$ROUNDS" "$RT" "$IMG_SIZE" "$IMG_DIR" "$QEMU_VER" "${BUILTIN_OPTS:-defaults}" "$VSCSID_OPTS" <<'PYEOF'
import json, statistics, sys, os, datetime, subprocess
runs_f, out, rounds, rt, size, imgdir, qemu, bopts, vopts = sys.argv[1:10]
runs = [json.loads(l) for l in open(runs_f) if l.strip()]
kinds = ['vscsid', 'vscsid-coalesce', 'scsi-hd', 'virtio-blk']
res = {}
for k in kinds:
    for rw in ('randread', 'randwrite'):
        xs = [r for r in runs if r['kind'] == k and r['rw'] == rw]
        if xs:
            res[k + '/' + rw] = {m: statistics.median(r[m] for r in xs) for m in ('iops', 'p50_us', 'p99_us', 'mean_us')}
            res[k + '/' + rw]['min'] = min(r['iops'] for r in xs)
            res[k + '/' + rw]['max'] = max(r['iops'] for r in xs)
            res[k + '/' + rw]['n'] = len(xs)
            ipi = [r['irqs_per_io'] for r in xs if r.get('irqs_per_io') is not None]
            res[k + '/' + rw]['irqs_per_io'] = statistics.median(ipi) if ipi else None
load = open('/proc/loadavg').read().split()[:3]
md = ['# Guest benchmark: fio 4 KiB QD16 in a TCG guest\n',
      '%s; %s; 1 vCPU, 1 GiB; image %s on %s; built-in devices: -drive %s; vscsid: %s. '
      'fio libaio direct=1, %ss per job (+1 s ramp). Medians of %s interleaved boots per device '
      '(range min-max). Load average at the end: %s.\n' % (
          datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC'), qemu, size, imgdir, bopts, vopts,
          rt, rounds, ' '.join(load)),
      '| device | randread IOPS | range | p50 us | p99 us | randwrite IOPS | range | p50 us | p99 us |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
for k in kinds:
    cells = [k]
    for rw in ('randread', 'randwrite'):
        m = res.get(k + '/' + rw)
        cells += (['{:,.0f}'.format(m['iops']), '{:,.0f}-{:,.0f}'.format(m['min'], m['max']),
                   '%.0f' % m['p50_us'], '%.0f' % m['p99_us']] if m else ['n/a'] * 4)
    md.append('| ' + ' | '.join(cells) + ' |')
md.append('')
for rw in ('randread', 'randwrite'):
    b, c = res.get('scsi-hd/' + rw), res.get('virtio-blk/' + rw)
    for k in ('vscsid', 'vscsid-coalesce'):
        a = res.get(k + '/' + rw)
        if a and c:
            md.append('- %s: %s = %.2fx virtio-blk%s (target 3: >= 1.0x virtio-blk: %s)' % (
                rw, k, a['iops'] / c['iops'], ', %.2fx scsi-hd' % (a['iops'] / b['iops']) if b else '',
                'met' if a['iops'] >= c['iops'] else 'not met'))
ipis = ['%s %s %.2f' % (k, rw[4:], res[k + '/' + rw]['irqs_per_io']) for k in kinds
        for rw in ('randread', 'randwrite')
        if res.get(k + '/' + rw) and res[k + '/' + rw].get('irqs_per_io') is not None]
if ipis:
    md.append('- guest interrupts per I/O (all virtio vectors, /proc/interrupts): ' + ', '.join(ipis))
md.append('')
open(os.path.join(out, 'bench-guest.md'), 'w').write('\n'.join(md) + '\n')
json.dump(res, open(os.path.join(out, 'bench-guest.json'), 'w'), indent=1)
with open(os.path.join(out, 'plot-guest.dat'), 'w') as f:
    for rw in ('randread', 'randwrite'):
        row = ['"%s"' % rw]
        for k in kinds:
            m = res.get(k + '/' + rw)
            row += ['%.1f %.1f %.1f' % (m['iops'], m['min'], m['max'])] if m else ['0 0 0']
        f.write(' '.join(row) + '\n')
print('\n'.join(md))
PYEOF
if command -v gnuplot >/dev/null; then
    (cd "$OUT" && gnuplot -e "set terminal pngcairo size 700,450 font 'sans,10'; set output 'bench-guest.png';
        set title 'TCG guest, fio 4 KiB QD16 (median, min-max)'; set ylabel 'IOPS'; set grid ytics;
        set style data histogram; set style histogram errorbars gap 2 lw 1; set style fill solid 0.8 border -1;
        set yrange [0:*]; set key top left;
        plot 'plot-guest.dat' using 2:3:4:xtic(1) title 'vscsid (vhost-user-scsi)', '' using 5:6:7 title 'vscsid --coalesce-us', '' using 8:9:10 title 'QEMU virtio-scsi + scsi-hd', '' using 11:12:13 title 'QEMU virtio-blk'") ||
        log "gnuplot failed"
fi
log "report: $OUT/bench-guest.md"
e2e_pass
