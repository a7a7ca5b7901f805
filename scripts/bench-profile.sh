#!/usr/bin/env bash
# Where the time goes in vscsid: syscalls, context switches and notifications per
# request (perf stat on syscall tracepoints), a CPU profile (perf record, software
# clock: this VM has no hardware counters) and instructions per request (callgrind,
# difference of two runs of different length so start-up and teardown cancel out).
#
# usage: scripts/bench-profile.sh [--build DIR] [--out DIR] [--quick] [--no-callgrind]
#   vscsid on CPU 0, vscsi-bench (the guest) on CPU 1, like make bench.
#   Output: OUT/summary.md (tables) plus the raw perf/callgrind reports in OUT/.
#   Default OUT: BUILD/bench/profile. Needs perf (linux-perf) and valgrind; installs
#   them with apt-get when run as root, else skips what is missing. BENCH_COMMIT names
#   the commit in the summary (default: this tree's HEAD).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
OUT=
QUICK=0
CALLGRIND=1
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    --out) OUT=$2; shift ;;
    --quick) QUICK=1 ;;
    --no-callgrind) CALLGRIND=0 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$BUILD/bench/profile}
VSCSID=$BUILD/vscsid
BENCH=$BUILD/vscsi-bench
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/vscsi-prof.XXXXXX)
SOCK=$TMP/s.sock
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "bench-profile: $*" >&2; }

need() {   # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing $2"
        apt-get install -y -q "$2" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$2" >/dev/null 2>&1; } || true
    fi
    command -v "$1" >/dev/null 2>&1
}
need python3 python3-minimal || { log "python3 is required"; exit 1; }
HAVE_PERF=0; need perf linux-perf && HAVE_PERF=1
HAVE_VG=0; need valgrind valgrind && HAVE_VG=1
if [ ! -x "$VSCSID" ] || [ ! -x "$BENCH" ]; then ninja -C "$BUILD" vscsid vscsi-bench >/dev/null; fi

IOS=2000000; [ "$QUICK" = 1 ] && IOS=300000
NULLDRV="--drive driver=null,size=1G,id=d0 --device scsi-hd,drive=d0,scsi-id=0,lun=0"
IMG=/dev/shm/vscsi-prof-$$.img
head -c 256M /dev/zero > "$IMG"
trap 'cleanup; rm -f "$IMG"' EXIT
FILEDRV="--drive file=$IMG,id=d0,cache=writeback --device scsi-hd,drive=d0,scsi-id=0,lun=0"

start_daemon() {   # start_daemon PREFIX... -- DRIVE ARGS ; sets DPID
    rm -f "$SOCK"
    # shellcheck disable=SC2086
    taskset -c 0 "$@" >"$TMP/daemon.log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    for _ in $(seq 200); do [ -S "$SOCK" ] && return 0; sleep 0.05; done
    log "daemon did not start: $(tail -3 "$TMP/daemon.log")"
    return 1
}
stop_daemon() { kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; }

# ---- 1. syscalls, switches, notifications per I/O -------------------------------
EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_io_uring_enter,context-switches
SYSROWS=$TMP/sys.rows
: > "$SYSROWS"
syscall_run() {   # syscall_run NAME DRIVEARGS BENCHARGS
    local name=$1 drv=$2 bargs=$3
    # shellcheck disable=SC2086
    start_daemon "$VSCSID" -s "$SOCK" $drv || return 0
    local ios=$IOS
    case $bargs in *"--iodepth 1"*) ios=$((IOS / 10)) ;; esac
    if [ "$HAVE_PERF" = 1 ]; then
        perf stat -x, -o "$TMP/pstat" -e "$EVENTS" -p "$DPID" >/dev/null 2>&1 &
        local ppid=$!
        sleep 0.3
    fi
    # shellcheck disable=SC2086
    "$BENCH" -s "$SOCK" --pid "$DPID" --cpu 1 --ios "$ios" --json --label "$name" $bargs >"$TMP/b.json" 2>"$TMP/b.err" || true
    if [ "$HAVE_PERF" = 1 ]; then
        kill -INT "$ppid" 2>/dev/null || true
        wait "$ppid" 2>/dev/null || true
    fi
    stop_daemon
    python3 - "$name" "$TMP/b.json" "$TMP/pstat" "$bargs" >>"$SYSROWS" <<'EOF'
import json, sys
name, bj, ps, bargs = sys.argv[1:5]
try:
    b = json.load(open(bj))
except Exception:
    print('| %s | run failed | | | | | | | | |' % name); sys.exit()
c = {}
try:
    for line in open(ps):
        p = line.strip().split(',')
        if len(p) > 2 and p[0].replace('.', '').isdigit():
            c[p[2].split(':')[-1]] = float(p[0])
except OSError:
    pass
n = b['ios']
f = lambda k: ('%.3f' % (c[k] / n)) if k in c else 'n/a'
print('| %s | `%s` | %.0f | %s | %s | %s | %s | %s | %s | %.4f | %.4f | %.2f |' % (
    name, bargs.strip(), b['iops'], f('sys_enter'), f('sys_enter_epoll_wait'), f('sys_enter_read'),
    f('sys_enter_write'), f('sys_enter_io_uring_enter'), f('context-switches'),
    b['kicks_per_io'], b['calls_per_io'], b.get('daemon_us_per_io', 0)))
EOF
}
log "syscalls per I/O (perf stat on the daemon while the bench runs $IOS I/Os)"
syscall_run null-qd32-poll "$NULLDRV" "--iodepth 32"
syscall_run null-qd32-batch1 "$NULLDRV" "--iodepth 32 --batch 1"
syscall_run null-qd32-event "$NULLDRV" "--iodepth 32 --event"
syscall_run null-qd1-poll "$NULLDRV" "--iodepth 1"
syscall_run null-qd1-event "$NULLDRV" "--iodepth 1 --event"
syscall_run tmpfs-qd32-poll "$FILEDRV" "--iodepth 32"
syscall_run tmpfs-qd32-randwrite "$FILEDRV" "--iodepth 32 --rw randwrite"
syscall_run tmpfs-qd1-event "$FILEDRV" "--iodepth 1 --event"

# ---- 2. CPU profile ----------------------------------------------------------------
perf_run() {   # perf_run NAME DRIVEARGS BENCHARGS
    local name=$1 drv=$2 bargs=$3
    [ "$HAVE_PERF" = 1 ] || return 0
    # shellcheck disable=SC2086
    start_daemon "$VSCSID" -s "$SOCK" $drv || return 0
    perf record -q -e cpu-clock -F 4999 -g -o "$TMP/perf.data" -p "$DPID" >/dev/null 2>&1 &
    local ppid=$!
    sleep 0.3
    # shellcheck disable=SC2086
    "$BENCH" -s "$SOCK" --pid "$DPID" --cpu 1 --runtime 4 --ramp 0.5 --label "$name" $bargs >"$OUT/perf-$name.bench.txt" 2>&1 || true
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    stop_daemon
    perf report -i "$TMP/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -40 >"$OUT/perf-$name.txt" || true
    perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -60 >"$OUT/perf-$name.children.txt" || true
    # the instructions that take the samples in the two hottest ring functions
    for f in vq_push vq_pop; do
        perf annotate -i "$TMP/perf.data" --stdio -s "$f" 2>/dev/null |
            grep -E '^ +[0-9]+\.[0-9]+ +:' | sort -rn | head -5 >"$OUT/perf-$name.annotate-$f.txt" || true
    done
}
log "CPU profiles (perf record -e cpu-clock)"
perf_run null-qd32 "$NULLDRV" "--iodepth 32"
perf_run tmpfs-qd32 "$FILEDRV" "--iodepth 32"

# ---- 3. instructions per request (callgrind) -----------------------------------------
CGROWS=$TMP/cg.rows
: > "$CGROWS"
cg_run() {   # cg_run TAG DRIVEARGS BENCHARGS IOS
    local tag=$1 drv=$2 bargs=$3 ios=$4
    rm -f "$SOCK"
    # shellcheck disable=SC2086
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$tag" "$VSCSID" -s "$SOCK" $drv >"$TMP/vg.log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    for _ in $(seq 600); do [ -S "$SOCK" ] && break; sleep 0.1; done
    # shellcheck disable=SC2086
    "$BENCH" -s "$SOCK" --cpu 1 --ios "$ios" --timeout 120000 $bargs >/dev/null 2>&1 || true
    stop_daemon
}
# valgrind 3.19 leaves vscsid's own functions unnamed (its 64 KiB-aligned .bss
# segment confuses the loader): name them from nm, with the load base found from main.
CGSYM=$(cat <<'EOF'
import bisect, re, subprocess, sys
exe, src, dst = sys.argv[1:4]
syms = []
for line in subprocess.run(['nm', exe], capture_output=True, text=True).stdout.splitlines():
    p = line.split(maxsplit=2)
    if len(p) == 3 and p[1] in 'tTwW':
        syms.append((int(p[0], 16), p[2]))
syms.sort()
addrs = [a for a, _ in syms]
main = dict((n, a) for a, n in syms).get('main')
txt = open(src).read()
m = re.search(r'^fn=\(\d+\) main$', txt, re.M)
base = None
if not m:
    # find the address valgrind gave main: the function called from __libc_start_call_main
    for mm in re.finditer(r'^c?fn=\(\d+\) 0x([0-9a-f]+)$', txt, re.M):
        a = int(mm.group(1), 16)
        for b in (0x108000, 0x400000, 0x4000000):
            if main is not None and a - b == main:
                base = b
        if base:
            break
base = base or 0x108000
def name(a):
    off = a - base
    i = bisect.bisect_right(addrs, off) - 1
    return syms[i][1] if 0 <= i and 0 <= off < 0x10000000 else None
rx = re.compile(r'^(c?fn)=\((\d+)\) 0x([0-9a-f]+)$')
with open(dst, 'w') as o:
    for line in txt.splitlines(True):
        mm = rx.match(line.rstrip('\n'))
        if mm:
            n = name(int(mm.group(3), 16))
            if n:
                line = '%s=(%s) %s\n' % (mm.group(1), mm.group(2), n)
        o.write(line.replace('ob=(2) ???', 'ob=(2) vscsid'))
EOF
)
CGDIFF=$(cat <<'EOF'
import re, subprocess, sys
name, f1, n1, f2, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
def load(f, incl):
    out = subprocess.run(['callgrind_annotate', '--threshold=100'] + (['--inclusive=yes'] if incl else []) + [f],
                         capture_output=True, text=True).stdout
    d, total = {}, 0
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$', line)
        if not m:
            continue
        v = int(m.group(1).replace(',', ''))
        k = m.group(2)
        if 'PROGRAM TOTALS' in k:
            total = v
            continue
        lib = k.split(' [')[1].rstrip(']').split('/')[-1] if ' [' in k else ''
        k = k.split(' [')[0]
        k = k[k.rfind(':') + 1:] if ':' in k else k
        if lib and lib != 'vscsid':
            k += ' (' + lib + ')'
        d[k] = d.get(k, 0) + v
    return d, total
n = n2 - n1
d1, t1 = load(f1, False)
d2, t2 = load(f2, False)
per = {k: (d2.get(k, 0) - d1.get(k, 0)) / n for k in set(d1) | set(d2)}
memset = sum(v for k, v in per.items() if k.startswith('__memset'))
total = (t2 - t1) / n
print('### %s\n' % name)
print('Instructions per request: **%.0f** (%.0f of them in memset; valgrind counts each byte of '
      'a `rep stosb` as one instruction, so this is the null driver zeroing 4 KiB, not real cost); '
      '**%.0f without memset**.\n' % (total, memset, total - memset))
print('| Ir/request (self) | function |\n|---:|---|')
for v, k in sorted(((v, k) for k, v in per.items()), reverse=True):
    if v >= 8:
        print('| %.0f | `%s` |' % (v, k))
i1, _ = load(f1, True)
i2, _ = load(f2, True)
print('\n| Ir/request (inclusive) | function |\n|---:|---|')
inc = {k: (i2.get(k, 0) - i1.get(k, 0)) / n for k in set(i1) | set(i2)}
for v, k in sorted(((v, k) for k, v in inc.items()), reverse=True)[:25]:
    if v >= 20 and not k.startswith('0x'):
        print('| %.0f | `%s` |' % (v, k))
print()
EOF
)
if [ "$CALLGRIND" = 1 ] && [ "$HAVE_VG" = 1 ]; then
    N1=20000 N2=120000
    [ "$QUICK" = 1 ] && N1=5000 N2=25000
    for cfg in null tmpfs; do
        drv=$NULLDRV; [ $cfg = tmpfs ] && drv=$FILEDRV
        log "callgrind: $cfg, $N1 and $N2 I/Os (slow: valgrind runs vscsid ~100x slower)"
        cg_run "$cfg.1" "$drv" "--iodepth 32" "$N1"
        cg_run "$cfg.2" "$drv" "--iodepth 32" "$N2"
        for t in 1 2; do python3 -c "$CGSYM" "$VSCSID" "$TMP/cg.$cfg.$t" "$OUT/callgrind.$cfg.$t.out"; done
        python3 -c "$CGDIFF" "$cfg drive, 4 KiB randread QD32" "$OUT/callgrind.$cfg.1.out" "$N1" \
            "$OUT/callgrind.$cfg.2.out" "$N2" >>"$CGROWS" || true
    done
fi

# ---- summary -------------------------------------------------------------------
{
    echo "# vscsid profile ($(date -u '+%Y-%m-%d %H:%M UTC'), commit ${BENCH_COMMIT:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)}, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "vscsid on CPU 0, vscsi-bench on CPU 1; 4 KiB randread unless noted. Counts are per I/O"
    echo "(perf stat on syscall tracepoints of the daemon, divided by the I/Os the bench completed)."
    echo
    echo "| run | bench args | IOPS | syscalls | epoll_wait | read | write | io_uring_enter | ctx switches | kicks (bench) | calls (bench) | daemon CPU us |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    cat "$SYSROWS"
    echo
    for f in "$OUT"/perf-*.txt; do
        case $f in *.bench.txt|*.children.txt|*annotate*) continue ;; esac
        n=$(basename "$f" .txt)
        echo "## $n: top functions (self, % of daemon samples)"
        echo
        echo '```'
        head -25 "$f"
        echo '```'
        echo
    done
    [ -s "$CGROWS" ] && cat "$CGROWS"
} >"$OUT/summary.md"
log "wrote $OUT/summary.md"
