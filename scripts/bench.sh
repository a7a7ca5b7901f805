#!/usr/bin/env bash
# make bench: the standard performance matrix of vscsid (docs/performance.md).
#
#   (a) device path: null drive, 4 KiB randread QD32, vscsid vs qemu-storage-daemon
#       (null-co), bench polling and interrupt-driven
#   (b) the same file on tmpfs (cache=writeback) and on disk (cache=none), 4 KiB
#       randread/randwrite QD32: vscsid vs qemu-storage-daemon vhost-user-blk vs fio
#       io_uring directly on the file (the bare-metal ratio)
#   (c) scaling over 1, 2, 4 request queues (null drive); QD1 latency p50/p99/p99.9
#   (d) RSS of vscsid with 256 LUNs
#
# Every daemon runs on CPU 0 (taskset), vscsi-bench (the guest) on CPU 1; fio runs
# alone on CPU 0. Runs are interleaved (rep 1 of every configuration, then rep 2, ...)
# and the tables give medians (and min-max) of the repetitions: the machine is noisy.
#
# usage: scripts/bench.sh [--quick] [--reps N] [--runtime SECS] [--only GROUPS]
#                         [--build DIR] [--out DIR]
#   --quick      1 repetition of 1 s (a smoke test of the whole matrix, ~1 min)
#   --only LIST  comma list of groups: null,file,scale,qd1,rss (default: all)
#   --report-only  rebuild the tables and plots from OUT/runs.jsonl
# Environment: BENCH_REPS (3), BENCH_RUNTIME (2), BENCH_RAMP (0.5), BENCH_IMG_SIZE
#   (512M), BENCH_TMPFS_DIR (/dev/shm), BENCH_DISK_DIR (/var/tmp), QSD_AIO (io_uring;
#   "threads" is qemu-storage-daemon's default), VSCSID, QSD, FIO (binaries),
#   BENCH_COMMIT (the commit named in the report; default: this tree's HEAD),
#   BENCH_FILE_MODE (--event: how the bench waits in the file runs; --poll spins).
# The null runs use a polling bench, the file runs an interrupt-driven one (--event).
# Output (default BUILD/bench): results.md, results.csv, results.json (medians),
#   runs.jsonl (every run), *.png (gnuplot), logs/.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
OUT=
REPS=${BENCH_REPS:-3}
RT=${BENCH_RUNTIME:-2}
RAMP=${BENCH_RAMP:-0.5}
ONLY=null,file,scale,qd1,rss
REPORT_ONLY=0
IMG_SIZE=${BENCH_IMG_SIZE:-512M}
TMPFS_DIR=${BENCH_TMPFS_DIR:-/dev/shm}
DISK_DIR=${BENCH_DISK_DIR:-/var/tmp}
QSD_AIO=${QSD_AIO:-io_uring}
# The file runs wait for completions like an interrupt-driven guest: a polling guest
# thread that loses its CPU to other load stalls a device-bound pipeline (measured 2x
# fewer IOPS on the disk here). The null runs poll (the device path's own cost).
FILE_MODE=${BENCH_FILE_MODE:---event}
while [ $# -gt 0 ]; do
    case $1 in
    --quick) REPS=1; RT=1; RAMP=0.3 ;;
    --reps) REPS=$2; shift ;;
    --runtime) RT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --report-only) REPORT_ONLY=1 ;;
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$BUILD/bench}
VSCSID=${VSCSID:-$BUILD/vscsid}
BENCH=$BUILD/vscsi-bench
QSD=${QSD:-qemu-storage-daemon}
FIO=${FIO:-fio}
START=$(date +%s)

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- dependencies ----------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
}
need() {   # need CMD PACKAGE [optional]
    command -v "$1" >/dev/null 2>&1 && return 0
    apt_install "$2" || true
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "${3:-}" = optional ] && { log "$1 missing ($2): skipped"; return 1; }
    die "$1 is required (Debian package $2)"
}
need python3 python3-minimal
need taskset util-linux
HAVE_QSD=1; need "$QSD" qemu-system-common optional || HAVE_QSD=0
HAVE_FIO=1; need "$FIO" fio optional || HAVE_FIO=0
HAVE_GNUPLOT=1; need gnuplot gnuplot-nox optional || HAVE_GNUPLOT=0
[ "$(nproc)" -ge 2 ] || log "warning: $(nproc) CPU(s); daemon and bench will share one"

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" vscsid vscsi-bench >/dev/null || die "build failed"

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
RUNS=$OUT/runs.jsonl
if [ "$REPORT_ONLY" = 1 ]; then
    [ -s "$RUNS" ] || die "no $RUNS to report on"
    ONLY=none
else
    : > "$RUNS"
    rm -f "$OUT"/logs/*.log
fi
TMP=$(mktemp -d /tmp/vscsi-bench.XXXXXX)
SOCK=$TMP/s.sock
cleanup() { rm -rf "$TMP" "${TMPFS_IMG:-/nonexistent}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- images: the same bytes for every backend ------------------------------------
bytes_of() { numfmt --from=iec "$1"; }
IMG_BYTES=$(bytes_of "$IMG_SIZE")
TMPFS_IMG=$TMPFS_DIR/vscsi-bench-$$.img
DISK_IMG=$DISK_DIR/vscsi-bench.img
if want file || want qd1; then
    log "images: $TMPFS_IMG and $DISK_IMG ($IMG_SIZE, random data)"
    head -c "$IMG_BYTES" /dev/urandom > "$TMPFS_IMG"
    if [ ! -f "$DISK_IMG" ] || [ "$(stat -c %s "$DISK_IMG")" != "$IMG_BYTES" ]; then
        dd if="$TMPFS_IMG" of="$DISK_IMG" bs=1M oflag=direct conv=fsync status=none
    fi
    # O_DIRECT needs a file system that supports it (not tmpfs).
    if ! dd if="$DISK_IMG" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null; then
        log "warning: $DISK_DIR does not support O_DIRECT; disk runs use cache=writeback"
        DISK_DIRECT=0
    fi
fi
DISK_DIRECT=${DISK_DIRECT:-1}

# ---- configurations ----------------------------------------------------------------
# One line each: NAME|GROUP|KIND|ARGS. KIND bench: ARGS = proto;daemon command;bench
# args. KIND fio: ARGS = fio args. @SOCK@ is the vhost-user socket.
CFGS=()
cfg() { CFGS+=("$1|$2|$3|$4"); }
vscsid_null() {   # vscsid_null QUEUES [IOTHREADS]
    echo "taskset -c 0 $VSCSID -s @SOCK@ --num-queues $1 --iothreads ${2:-0} --drive driver=null,size=1G,id=d0 --device scsi-hd,drive=d0,scsi-id=0,lun=0"
}
vscsid_file() {   # vscsid_file IMG CACHE
    echo "taskset -c 0 $VSCSID -s @SOCK@ --num-queues 4 --drive file=$1,id=d0,cache=$2,aio=io_uring --device scsi-hd,drive=d0,scsi-id=0,lun=0"
}
qsd_cmd() {   # qsd_cmd BLOCKDEV QUEUES
    echo "taskset -c 0 $QSD --blockdev $1 --export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=@SOCK@,writable=on,num-queues=$2"
}
qsd_null() { qsd_cmd "driver=null-co,node-name=f,size=1073741824,read-zeroes=on" "$1"; }
qsd_file() {   # qsd_file IMG DIRECT(on|off)
    qsd_cmd "driver=file,node-name=f,filename=$1,cache.direct=$2,aio=$QSD_AIO" 4
}
fio_args() {   # fio_args IMG DIRECT RW QD
    echo "--filename=$1 --direct=$2 --rw=$3 --iodepth=$4 --bs=4k --ioengine=io_uring"
}
Q32="--iodepth 32 --bs 4k"

if want null; then
    cfg null-vscsid-poll null bench "scsi;$(vscsid_null 4);$Q32 --rw randread --queues 1"
    cfg null-vscsid-event null bench "scsi;$(vscsid_null 4);$Q32 --rw randread --queues 1 --event"
    # driver=memory: the same path plus a copy to or from the daemon's memory
    cfg null-vscsid-memory null bench "scsi;taskset -c 0 $VSCSID -s @SOCK@ --drive driver=memory,size=1G,id=d0 --device scsi-hd,drive=d0,scsi-id=0,lun=0;$Q32 --rw randread --queues 1"
    [ "$HAVE_QSD" = 1 ] && cfg null-qsd-poll null bench "blk;$(qsd_null 1);$Q32 --rw randread --queues 1"
fi
if want file; then
    for store in tmpfs disk; do
        if [ $store = tmpfs ]; then img=$TMPFS_IMG cache=writeback direct=off fdirect=0
        elif [ "$DISK_DIRECT" = 1 ]; then img=$DISK_IMG cache=none direct=on fdirect=1
        else img=$DISK_IMG cache=writeback direct=off fdirect=0
        fi
        for rw in randread randwrite; do
            cfg "file-$store-$rw-vscsid" file bench "scsi;$(vscsid_file "$img" $cache);$Q32 --rw $rw $FILE_MODE"
            [ "$HAVE_QSD" = 1 ] && cfg "file-$store-$rw-qsd" file bench "blk;$(qsd_file "$img" $direct);$Q32 --rw $rw $FILE_MODE"
            [ "$HAVE_FIO" = 1 ] && cfg "file-$store-$rw-fio" file fio "$(fio_args "$img" $fdirect $rw 32)"
        done
    done
fi
if want scale; then
    for q in 2 4; do
        cfg "scale-vscsid-q$q" scale bench "scsi;$(vscsid_null 4);$Q32 --rw randread --queues $q"
        [ "$HAVE_QSD" = 1 ] && cfg "scale-qsd-q$q" scale bench "blk;$(qsd_null $q);$Q32 --rw randread --queues $q"
    done
    # --iothreads 1 and 2 (vscsid still on core 0: what the threads cost and
    # what they gain when the same core runs them)
    for it in 1 2; do
        for q in 1 2 4; do
            cfg "scale-vscsid-it$it-q$q" scale bench "scsi;$(vscsid_null 4 $it);$Q32 --rw randread --queues $q"
        done
    done
    # Both cores for vscsid (not pinned), 2 queues, the bench interrupt-driven
    # (its 2 threads sleep on the call eventfds): whether 2 iothreads run in
    # parallel, against the main thread alone
    for it in 0 2; do
        cfg "spread-vscsid-it$it" scale bench "scsi;${VSCSID} -s @SOCK@ --num-queues 2 --iothreads $it --drive driver=null,size=1G,id=d0 --device scsi-hd,drive=d0,scsi-id=0,lun=0;$Q32 --rw randread --queues 2 --threads 2 --event --cpu 0,1"
    done
    # 1 queue: the null-* runs (added here when group null is not selected)
    if ! want null; then
        cfg null-vscsid-poll scale bench "scsi;$(vscsid_null 4);$Q32 --rw randread --queues 1"
        [ "$HAVE_QSD" = 1 ] && cfg null-qsd-poll scale bench "blk;$(qsd_null 1);$Q32 --rw randread --queues 1"
    fi
fi
if want qd1; then
    Q1="--iodepth 1 --bs 4k --rw randread"
    cfg qd1-null-vscsid qd1 bench "scsi;$(vscsid_null 4);$Q1"
    [ "$HAVE_QSD" = 1 ] && cfg qd1-null-qsd qd1 bench "blk;$(qsd_null 1);$Q1"
    cfg qd1-tmpfs-vscsid qd1 bench "scsi;$(vscsid_file "$TMPFS_IMG" writeback);$Q1"
    [ "$HAVE_QSD" = 1 ] && cfg qd1-tmpfs-qsd qd1 bench "blk;$(qsd_file "$TMPFS_IMG" off);$Q1"
    [ "$HAVE_FIO" = 1 ] && cfg qd1-tmpfs-fio qd1 fio "$(fio_args "$TMPFS_IMG" 0 randread 1)"
    if [ "$DISK_DIRECT" = 1 ]; then
        cfg qd1-disk-vscsid qd1 bench "scsi;$(vscsid_file "$DISK_IMG" none);$Q1"
        [ "$HAVE_QSD" = 1 ] && cfg qd1-disk-qsd qd1 bench "blk;$(qsd_file "$DISK_IMG" on);$Q1"
        [ "$HAVE_FIO" = 1 ] && cfg qd1-disk-fio qd1 fio "$(fio_args "$DISK_IMG" 1 randread 1)"
    fi
fi

# ---- running -------------------------------------------------------------------
annotate() {   # annotate NAME GROUP REP < json  -> one line with our fields added
    python3 -c '
import json, sys
name, group, rep, load = sys.argv[1:5]
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    d.update(name=name, group=group, rep=int(rep), load1=float(load))
    print(json.dumps(d))' "$@" "$(cut -d' ' -f1 /proc/loadavg)"
}

run_bench() {   # run_bench NAME GROUP REP PROTO DAEMON BENCHARGS
    local name=$1 group=$2 rep=$3 proto=$4 daemon=${5//@SOCK@/$SOCK} bargs=$6 json
    rm -f "$SOCK"
    # shellcheck disable=SC2086
    if json=$("$BENCH" --spawn "$daemon" -s "$SOCK" --proto "$proto" --cpu 1 --json \
              --runtime "$RT" --ramp "$RAMP" --label "$name" $bargs 2>>"$OUT/logs/$name.log"); then
        printf '%s\n' "$json" | annotate "$name" "$group" "$rep" >>"$RUNS"
    else
        log "  $name rep $rep failed (see $OUT/logs/$name.log)"
        printf '%s\n' "$json" | annotate "$name" "$group" "$rep" >>"$RUNS" || true
    fi
}

run_fio() {   # run_fio NAME GROUP REP FIOARGS
    local name=$1 group=$2 rep=$3 fargs=$4
    # shellcheck disable=SC2086
    if ! taskset -c 0 "$FIO" --name="$name" $fargs --time_based --runtime="${RT}s" \
            --ramp_time="${RAMP}s" --norandommap --randrepeat=0 --output-format=json \
            >"$TMP/fio.json" 2>>"$OUT/logs/$name.log"; then
        log "  $name rep $rep failed (see $OUT/logs/$name.log)"
        return 0
    fi
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
rt = j["job_runtime"] / 1000.0 or 1
out = {"proto": "fio", "seconds": rt}
ios = 0
lat = {}
for d in ("read", "write"):
    x = j[d]
    ios += x["total_ios"]
    out[d + "_iops"] = x["iops"]
    if x["total_ios"]:
        p = x["clat_ns"].get("percentile", {})
        g = lambda k: p.get(k, 0) / 1000.0
        lat[d] = {"mean": x["lat_ns"]["mean"] / 1000.0, "p50": g("50.000000"), "p90": g("90.000000"),
                  "p99": g("99.000000"), "p99_9": g("99.900000"), "max": x["lat_ns"]["max"] / 1000.0}
out["ios"] = ios
out["iops"] = out["read_iops"] + out["write_iops"]
out["mib_s"] = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1048576.0
out["lat_us"] = {"all": lat.get("read") or lat.get("write")}
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0
out["daemon_cpu"] = cpu
out["daemon_us_per_io"] = cpu * rt * 1e6 / ios if ios else 0
out["daemon_ctxsw_per_io"] = j["ctx"] / ios if ios else 0
print(json.dumps(out))' "$TMP/fio.json" | annotate "$name" "$group" "$rep" >>"$RUNS"
}

rss_run() {   # (d): vscsid with N null LUNs: RSS idle, and after I/O on the last LUN
    local n=$1 rep=$2 args=() i pid idle
    for ((i = 0; i < n; i++)); do
        args+=(--drive "driver=null,size=64M,id=d$i" --device "scsi-hd,drive=d$i,scsi-id=0,lun=$i")
    done
    rm -f "$SOCK"
    taskset -c 0 "$VSCSID" -s "$SOCK" "${args[@]}" >>"$OUT/logs/rss-$n.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
    sleep 0.2
    idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    "$BENCH" -s "$SOCK" --pid "$pid" --cpu 1 --json --runtime 1 --ramp 0.2 --lun $((n - 1)) \
        --iodepth 32 --label "rss-$n" 2>>"$OUT/logs/rss-$n.log" |
        python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d["rss_idle_kib"] = int(sys.argv[1]); d["luns"] = int(sys.argv[2])
print(json.dumps(d))' "$idle" "$n" | annotate "rss-$n" rss "$rep" >>"$RUNS" || log "  rss-$n failed"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

total=$(( ${#CFGS[@]} * REPS ))
log "${#CFGS[@]} configurations x $REPS repetitions, ${RT}s each (+${RAMP}s ramp); results in $OUT"
done_runs=0
for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CFGS[@]}"; do
        IFS='|' read -r name group kind args <<<"$c"
        done_runs=$((done_runs + 1))
        log "[$done_runs/$total] $name (rep $rep)"
        if [ "$kind" = fio ]; then
            run_fio "$name" "$group" "$rep" "$args"
        else
            IFS=';' read -r proto daemon bargs <<<"$args"
            run_bench "$name" "$group" "$rep" "$proto" "$daemon" "$bargs"
        fi
    done
done
if want rss; then
    log "RSS: 1 and 256 LUNs"
    rss_run 1 1
    rss_run 256 1
fi

# ---- report --------------------------------------------------------------------
log "report"
INFO=$(printf '%s' "date=$(date -u '+%Y-%m-%d %H:%M UTC');commit=${BENCH_COMMIT:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty')};kernel=$(uname -r);cpus=$(nproc);cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');qsd=$($QSD --version 2>/dev/null | head -1 | awk '{print $3}');fio=$($FIO --version 2>/dev/null);load=$(cut -d' ' -f1-3 /proc/loadavg);reps=$REPS;runtime=$RT;ramp=$RAMP;qsd_aio=$QSD_AIO;img=$IMG_SIZE;disk_direct=$DISK_DIRECT;file_mode=$FILE_MODE;elapsed=$(( $(date +%s) - START ))")
if [ "$REPORT_ONLY" = 1 ] && [ -s "$OUT/info.txt" ]; then
    INFO=$(cat "$OUT/info.txt")   # the run's own date, commit and load
else
    printf '%s' "$INFO" > "$OUT/info.txt"
fi
python3 - "$RUNS" "$OUT" "$INFO" <<'PYEOF'
import json, statistics, sys, os
runs_f, out, info_s = sys.argv[1:4]
info = dict(kv.split('=', 1) for kv in info_s.split(';') if '=' in kv)
runs = [json.loads(l) for l in open(runs_f) if l.strip()]
by = {}
for r in runs:
    by.setdefault(r['name'], []).append(r)

def med(name, key, sub=None):
    vals = []
    for r in by.get(name, []):
        v = r
        for k in key.split('.'):
            v = v.get(k) if isinstance(v, dict) else None
            if v is None:
                break
        if isinstance(v, (int, float)):
            vals.append(float(v))
    if not vals:
        return None
    return {'med': statistics.median(vals), 'min': min(vals), 'max': max(vals), 'n': len(vals)}

KEYS = ['iops', 'lat_us.all.p50', 'lat_us.all.p99', 'lat_us.all.p99_9', 'lat_us.all.mean',
        'daemon_us_per_io', 'daemon_cpu', 'bench_cpu', 'kicks_per_io', 'calls_per_io',
        'daemon_ctxsw_per_io', 'daemon_rss_kib', 'rss_idle_kib', 'load1']
summary = {n: {k: med(n, k) for k in KEYS} for n in by}
for n in summary:
    summary[n]['group'] = by[n][0].get('group')
    summary[n]['errors'] = sum(r.get('errors', 0) for r in by[n])

def v(n, k='iops'):
    m = summary.get(n, {}).get(k)
    return m['med'] if m else None

def fmt(x, d=0):
    if x is None:
        return 'n/a'
    if d == 0:
        return '{:,.0f}'.format(x)
    return ('{:.%df}' % d).format(x)

def rng(n, k='iops'):
    m = summary.get(n, {}).get(k)
    if not m or m['n'] < 2:
        return ''
    return '{:,.0f}-{:,.0f}'.format(m['min'], m['max'])

def ratio(a, b):
    return (a / b) if a and b else None

def best(n, k='iops'):
    m = summary.get(n, {}).get(k)
    return m['max'] if m else None

def mb(n):
    return '%s (%s)' % (fmt(v(n)), fmt(best(n))) if v(n) else 'n/a'

def percore(n):
    us = v(n, 'daemon_us_per_io')
    return 1e6 / us if us else None

md = []
P = md.append
P('# vscsid benchmark results\n')
P('%s, commit %s, kernel %s, %s x %s; qemu-storage-daemon %s (aio=%s), %s. '
  'Medians of %s interleaved runs of %ss (+%ss ramp); range = min-max. Load average at the end: %s. '
  'Total time %ss.\n' % (info.get('date'), info.get('commit'), info.get('kernel'), info.get('cpus'),
  info.get('cpu'), info.get('qsd'), info.get('qsd_aio'), info.get('fio'), info.get('reps'),
  info.get('runtime'), info.get('ramp'), info.get('load'), info.get('elapsed')))
P('Daemons on CPU 0, vscsi-bench (the guest) on CPU 1, fio alone on CPU 0. "us/IO" is the '
  'daemon\'s CPU time per I/O (all its threads, from /proc/PID/task/*/schedstat; for fio its '
  'own usr+sys); "IOPS/core" = 1e6 / (us/IO), the rate one fully busy core would sustain at '
  'that cost. "bench CPU" is the share of wall time the bench thread really ran: well below '
  '100% in poll mode means other load took CPU 1.\n')

rows = [('null-vscsid-poll', 'vscsid', 'poll'), ('null-vscsid-event', 'vscsid', 'event'),
        ('null-vscsid-memory', 'vscsid driver=memory', 'poll'),
        ('null-qsd-poll', 'qemu-storage-daemon (null-co)', 'poll')]
if any(n in summary for n, _, _ in rows):
    P('## (a) Device path: null drive, 4 KiB randread, QD32, 1 queue (bench polls)\n')
    P('| backend | bench | IOPS | range | p50 us | p99 us | us/IO | IOPS/core | daemon CPU | bench CPU | kicks/IO | calls/IO | ctxsw/IO |')
    P('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for n, b, mode in rows:
        if n not in summary:
            continue
        P('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            b, mode, fmt(v(n)), rng(n), fmt(v(n, 'lat_us.all.p50'), 1), fmt(v(n, 'lat_us.all.p99'), 1),
            fmt(v(n, 'daemon_us_per_io'), 2), fmt(percore(n)),
            fmt((v(n, 'daemon_cpu') or 0) * 100) + '%', fmt((v(n, 'bench_cpu') or 0) * 100) + '%',
            fmt(v(n, 'kicks_per_io'), 3), fmt(v(n, 'calls_per_io'), 3), fmt(v(n, 'daemon_ctxsw_per_io'), 3)))
    P('')

stores = [s for s in ('tmpfs', 'disk') if any(k.startswith('file-' + s) for k in summary)]
if stores:
    P('## (b) Same file, 4 KiB, QD32: vscsid vs qemu-storage-daemon vs fio on the host\n')
    P('tmpfs: cache=writeback (qsd cache.direct=off, fio direct=0); disk (%s): cache=none '
      '(qsd cache.direct=on, fio direct=1). Image %s of random data. The bench waits for '
      'completions like an interrupt-driven guest (%s). IOPS: median (best run); ratios of '
      'medians (of best runs).\n' % (os.environ.get('BENCH_DISK_DIR', '/var/tmp'), info.get('img'),
                                      info.get('file_mode')))
    P('| file | rw | vscsid IOPS | qsd IOPS | fio IOPS | vscsid/qsd | vscsid/fio | vscsid us/IO | qsd us/IO | fio us/IO | vscsid p99 us | qsd p99 us |')
    P('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for s in stores:
        for rw in ('randread', 'randwrite'):
            a, q, f = ('file-%s-%s-%s' % (s, rw, x) for x in ('vscsid', 'qsd', 'fio'))
            r1, r2 = ratio(v(a), v(q)), ratio(v(a), v(f))
            b1, b2 = ratio(best(a), best(q)), ratio(best(a), best(f))
            P('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                s, rw, mb(a), mb(q), mb(f), (fmt(r1, 2) + 'x (' + fmt(b1, 2) + 'x)') if r1 else 'n/a',
                (fmt(r2, 2) + 'x (' + fmt(b2, 2) + 'x)') if r2 else 'n/a', fmt(v(a, 'daemon_us_per_io'), 2),
                fmt(v(q, 'daemon_us_per_io'), 2), fmt(v(f, 'daemon_us_per_io'), 2),
                fmt(v(a, 'lat_us.all.p99'), 0), fmt(v(q, 'lat_us.all.p99'), 0)))
    P('')

scale = [(1, 'null-vscsid-poll', 'null-qsd-poll'), (2, 'scale-vscsid-q2', 'scale-qsd-q2'),
         (4, 'scale-vscsid-q4', 'scale-qsd-q4')]
if any(a in summary for _, a, _ in scale[1:]):
    P('## (c) Scaling: request queues (null drive, 4 KiB randread, QD32 per queue, one bench thread)\n')
    P('vscsid is pinned to core 0 and the bench to core 1 in every run, so the iothread columns '
      'show what the threads cost on one core, not parallel speed-up (a 2-core machine has no '
      'third core to give them). Medians, best run in brackets.\n')
    P('| queues | vscsid IOPS (best) | --iothreads 1 | --iothreads 2 | qsd IOPS (best) | vscsid us/IO | '
      'iothreads 1 us/IO | iothreads 2 us/IO | qsd us/IO | vscsid p99 us | qsd p99 us |')
    P('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for q, a, b in scale:
        i1, i2 = 'scale-vscsid-it1-q%d' % q, 'scale-vscsid-it2-q%d' % q
        P('| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
          q, mb(a), mb(i1), mb(i2), mb(b), fmt(v(a, 'daemon_us_per_io'), 2),
          fmt(v(i1, 'daemon_us_per_io'), 2), fmt(v(i2, 'daemon_us_per_io'), 2),
          fmt(v(b, 'daemon_us_per_io'), 2), fmt(v(a, 'lat_us.all.p99'), 0), fmt(v(b, 'lat_us.all.p99'), 0)))
    P('')

spread = [n for n in ('spread-vscsid-it0', 'spread-vscsid-it2') if n in summary]
if spread:
    P('## (c2) Iothreads on both cores (null drive, 4 KiB randread, QD32 on each of 2 queues)\n')
    P('vscsid is not pinned; the bench runs 2 interrupt-driven threads (--event), one per queue. '
      'Medians, best run in brackets; CPU is the daemon\'s, 100% = one core.\n')
    P('| vscsid | IOPS (best) | us/IO | daemon CPU | p99 us |')
    P('|---|---:|---:|---:|---:|')
    for n in spread:
        P('| %s | %s | %s | %s | %s |' % ('main thread only' if n.endswith('it0') else '--iothreads 2', mb(n),
          fmt(v(n, 'daemon_us_per_io'), 2), fmt(100 * (v(n, 'daemon_cpu') or 0), 0) + '%',
          fmt(v(n, 'lat_us.all.p99'), 0)))
    P('')

qd1 = [n for n in ('qd1-null-vscsid', 'qd1-null-qsd', 'qd1-tmpfs-vscsid', 'qd1-tmpfs-qsd',
                   'qd1-tmpfs-fio', 'qd1-disk-vscsid', 'qd1-disk-qsd', 'qd1-disk-fio') if n in summary]
if qd1:
    P('## (c) Latency at QD1 (4 KiB randread; bench polls, daemons as configured)\n')
    P('| config | IOPS | mean us | p50 us | p99 us | p99.9 us | us/IO |')
    P('|---|---:|---:|---:|---:|---:|---:|')
    for n in qd1:
        P('| %s | %s | %s | %s | %s | %s | %s |' % (n[4:], fmt(v(n)), fmt(v(n, 'lat_us.all.mean'), 1),
          fmt(v(n, 'lat_us.all.p50'), 1), fmt(v(n, 'lat_us.all.p99'), 1), fmt(v(n, 'lat_us.all.p99_9'), 1),
          fmt(v(n, 'daemon_us_per_io'), 2)))
    P('')

if 'rss-256' in summary:
    P('## (d) Memory: vscsid RSS with 1 and 256 LUNs (null drives)\n')
    P('| LUNs | RSS idle (MiB) | RSS after attach + 1 s of QD32 I/O on the last LUN (MiB) |')
    P('|---:|---:|---:|')
    for n in ('rss-1', 'rss-256'):
        if n in summary:
            P('| %s | %s | %s |' % (n[4:], fmt((v(n, 'rss_idle_kib') or 0) / 1024, 1),
                                   fmt((v(n, 'daemon_rss_kib') or 0) / 1024, 1)))
    P('')

# targets of issue 6
P('## Targets (issue 6)\n')
P('| # | target | measured | met |')
P('|---|---|---|---|')
n = 'null-vscsid-poll'
if n in summary:
    pc = percore(n)
    P('| 1 | null drive QD32, >= 1.7M IOPS (SPDK per core) | %s IOPS median, %s best run; %s IOPS per daemon core (%s us/IO) | %s |' % (
        fmt(v(n)), fmt(best(n)), fmt(pc), fmt(v(n, 'daemon_us_per_io'), 2),
        'yes' if (v(n) or 0) >= 1.7e6 else ('best run only' if (best(n) or 0) >= 1.7e6 else
                                           ('per core only' if (pc or 0) >= 1.7e6 else 'no'))))
for s in stores:
    for rw in ('randread', 'randwrite'):
        a, q, f = ('file-%s-%s-%s' % (s, rw, x) for x in ('vscsid', 'qsd', 'fio'))
        r1, r2 = ratio(v(a), v(q)), ratio(v(a), v(f))
        b1, b2 = ratio(best(a), best(q)), ratio(best(a), best(f))
        ok = r1 is not None and r2 is not None and r1 >= 1.5 and r2 >= 0.9
        P('| 2 | %s %s: >= 1.5x qsd and >= 0.9x fio | %sx qsd, %sx fio (best runs: %sx, %sx) | %s |' % (
            s, rw, fmt(r1, 2), fmt(r2, 2), fmt(b1, 2), fmt(b2, 2), 'yes' if ok else 'no'))
P('| 3 | guest fio >= virtio-blk | see `make bench-guest` (bench-guest.md) | |')
P('| 4 | scaling, QD1 latency, RSS | tables (c), (d) | reported |')
P('')
errs = sum(s.get('errors', 0) for s in summary.values())
if errs:
    P('**%d I/O errors were reported by the bench: check logs/.**\n' % errs)
P('Raw runs: `runs.jsonl`; medians: `results.json`, `results.csv`; plots: `*.png`.\n')
open(os.path.join(out, 'results.md'), 'w').write('\n'.join(md))
json.dump({'info': info, 'results': summary}, open(os.path.join(out, 'results.json'), 'w'), indent=1)
with open(os.path.join(out, 'results.csv'), 'w') as f:
    f.write('name,group,iops,iops_min,iops_max,p50_us,p99_us,p99_9_us,daemon_us_per_io,daemon_cpu,'
            'bench_cpu,kicks_per_io,calls_per_io,rss_kib,runs\n')
    for n in sorted(summary):
        s = summary[n]
        g = lambda k: '' if not s.get(k) else '%.4g' % s[k]['med']
        m = s.get('iops') or {}
        f.write(','.join([n, s['group'] or '', g('iops'), '%.4g' % m.get('min', 0), '%.4g' % m.get('max', 0),
                          g('lat_us.all.p50'), g('lat_us.all.p99'), g('lat_us.all.p99_9'),
                          g('daemon_us_per_io'), g('daemon_cpu'), g('bench_cpu'), g('kicks_per_io'),
                          g('calls_per_io'), g('daemon_rss_kib'), str(m.get('n', 0))]) + '\n')

# gnuplot data: one row per cluster, (median, min, max) per series
def series_row(label, names):
    cells = [label]
    for n in names:
        m = summary.get(n, {}).get('iops')
        cells += ['%.1f' % m['med'], '%.1f' % m['min'], '%.1f' % m['max']] if m else ['0', '0', '0']
    return ' '.join(cells)
# A group left out (--only) leaves its data file empty, and gnuplot is not run
# for it: an empty plot would hide that nothing was measured.
with open(os.path.join(out, 'plot-file.dat'), 'w') as f:
    for s in stores:
        for rw in ('randread', 'randwrite'):
            names = ['file-%s-%s-%s' % (s, rw, x) for x in ('vscsid', 'qsd', 'fio')]
            if any(n in summary for n in names):
                f.write(series_row('"%s %s"' % (s, rw), names) + '\n')
with open(os.path.join(out, 'plot-null.dat'), 'w') as f:
    for n, b, mode in rows:
        if n in summary:
            m = summary[n]['iops']
            f.write('"%s" %.1f %.1f %.1f %.1f\n' % (b.split(' ')[0] + ' ' + ('memory' if 'memory' in b else mode), m['med'], m['min'], m['max'], percore(n) or 0))
with open(os.path.join(out, 'plot-scale.dat'), 'w') as f:
    for q, a, b in scale:
        ma, mb = summary.get(a, {}).get('iops'), summary.get(b, {}).get('iops')
        m1 = summary.get('scale-vscsid-it1-q%d' % q, {}).get('iops')
        m2 = summary.get('scale-vscsid-it2-q%d' % q, {}).get('iops')
        if not (ma or mb or m1 or m2):
            continue
        f.write('%d %s %s %s %s %s %s\n' % (q, '%.1f' % ma['med'] if ma else 'NaN', '%.1f' % mb['med'] if mb else 'NaN',
                                      '%.1f' % ma['max'] if ma else 'NaN', '%.1f' % mb['max'] if mb else 'NaN',
                                      '%.1f' % m1['med'] if m1 else 'NaN', '%.1f' % m2['med'] if m2 else 'NaN'))
with open(os.path.join(out, 'plot-qd1.dat'), 'w') as f:
    for n in qd1:
        f.write('"%s" %.2f %.2f\n' % (n[4:], v(n, 'lat_us.all.p50') or 0, v(n, 'lat_us.all.p99') or 0))
PYEOF

if [ "$HAVE_GNUPLOT" = 1 ]; then
    (
        cd "$OUT"
        common='set terminal pngcairo size 900,500 font "sans,10"; set grid ytics; set key top left; set style fill solid 0.8 border -1; set boxwidth 0.9; set format y "%.1s%c"'
        [ ! -s plot-file.dat ] || gnuplot -e "$common; set output 'file.png';
            set title 'Same file, 4 KiB QD32 (median, min-max)'; set ylabel 'IOPS'; set key below;
            set style data histogram; set style histogram errorbars gap 2 lw 1; set yrange [0:*];
            plot 'plot-file.dat' using 2:3:4:xtic(1) title 'vscsid', '' using 5:6:7 title 'qemu-storage-daemon', '' using 8:9:10 title 'fio io\\_uring (host)'"
        [ ! -s plot-null.dat ] || gnuplot -e "$common; set output 'null.png';
            set title 'Null drive, 4 KiB randread QD32, 1 queue'; set ylabel 'IOPS';
            set style data histogram; set style histogram errorbars gap 2 lw 1; set yrange [0:*]; set key below;
            set arrow from graph 0, first 1700000 to graph 1, first 1700000 nohead dt 2 lc rgb 'red';
            set label 'target 1.7M' at graph 0.85, first 1800000 tc rgb 'red';
            plot 'plot-null.dat' using 2:3:4:xtic(1) title 'IOPS (median, min-max)', '' using 5:5:5 title 'IOPS per daemon core (1e6 / us per IO)'"
        [ ! -s plot-scale.dat ] || gnuplot -e "$common; set output 'scaling.png';
            set title 'Null drive, 4 KiB randread, QD32 per queue'; set xlabel 'request queues'; set ylabel 'IOPS';
            set xtics (1,2,4); set yrange [0:*]; set key below; set xrange [0.8:4.2];
            plot 'plot-scale.dat' using 1:2 with linespoints lw 2 title 'vscsid (median)', '' using 1:3 with linespoints lw 2 title 'qemu-storage-daemon (median)', '' using 1:4 with points pt 6 ps 1.5 title 'vscsid (best run)', '' using 1:5 with points pt 8 ps 1.5 title 'qemu-storage-daemon (best run)', '' using 1:6 with linespoints lw 2 dt 2 title 'vscsid --iothreads 1 (median)', '' using 1:7 with linespoints lw 2 dt 3 title 'vscsid --iothreads 2 (median)'"
        [ ! -s plot-qd1.dat ] || gnuplot -e "$common; set output 'latency.png';
            set title 'QD1 4 KiB randread latency'; set ylabel 'microseconds'; set logscale y; set format y '%g';
            set style data histogram; set style histogram clustered gap 2; set xtics rotate by -20; set key below;
            plot 'plot-qd1.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99'"
    ) || log "gnuplot failed"
fi
log "done in $(( $(date +%s) - START ))s: $OUT/results.md"
cat "$OUT/results.md"
