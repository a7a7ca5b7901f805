#!/usr/bin/env bash
# Which system calls does vscsid make once the sandbox is in place? Runs a test
# command with every vscsid it starts traced by strace (-f, all threads), then
# counts, per system call, the calls made after the sandbox point (the log
# line "sandbox: on|off"): the empirical side of the allow-list in
# src/util/sandbox.c (docs/robustness.md).
#
#   scripts/syscall-trace.sh run DIR [--sandbox=off] -- COMMAND...
#       COMMAND runs with $VSCSID set to a wrapper that traces into DIR; use
#       "$VSCSID" (or pass it to a harness test as argv[1]). With
#       --sandbox=off the daemon runs unsandboxed, so calls missing from the
#       list show up in the report instead of killing it.
#   scripts/syscall-trace.sh report DIR [ALLOWED]
#       system calls after the sandbox point with counts, the ioctl requests,
#       clone flags and mmap/mprotect protections seen; names missing from
#       ALLOWED (a file with one name a line) are marked "NOT ALLOWED".
#
# Example: every harness test, traced, unsandboxed:
#   scripts/syscall-trace.sh run /tmp/st --sandbox=off -- \
#       sh -c 'for t in build/tests/harness/t_*; do [ -x "$t" ] && "$t" "$VSCSID"; done'
#   scripts/syscall-trace.sh report /tmp/st
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
run)
    dir=$2; shift 2
    extra=""
    if [ "${1:-}" = "--sandbox=off" ]; then extra="--sandbox=off"; shift; fi
    [ "${1:-}" = "--" ] && shift
    command -v strace >/dev/null || { echo "syscall-trace: strace is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    real=${VSCSID:-$PWD/build/vscsid}
    # -D: strace runs as a detached grandchild, so the pid a test starts,
    # signals and waits for is vscsid itself.
    cat >"$dir/vscsid" <<EOF
#!/bin/sh
exec strace -D -f -qq -s 64 -o "$dir/trace.\$\$" "$real" "\$@" $extra
EOF
    chmod +x "$dir/vscsid"
    VSCSID="$dir/vscsid" "$@"
    ;;
report)
    dir=$2 allowed=${3:-}
    shopt -s nullglob
    files=("$dir"/trace.*)
    [ ${#files[@]} -gt 0 ] || { echo "syscall-trace: no traces in $dir" >&2; exit 1; }
    # After the first "sandbox: on|off" log line of each daemon: lines that
    # start a call ("PID name(" or "name(" for a single thread).
    awk -v allowed="$allowed" '
        FNR == 1 { after = 0; ndaemons++ }
        !after && /sandbox: (on|off)/ { after = 1; nsandboxed++; next }
        !after { next }
        {
            line = $0
            sub(/^[0-9]+ +/, "", line)
            if (match(line, /^[a-z0-9_]+\(/)) {
                name = substr(line, 1, RLENGTH - 1)
                count[name]++
                if (name == "ioctl" && match(line, /, [A-Z0-9_]+|, 0x[0-9a-f]+/))
                    detail["ioctl " substr(line, RSTART + 2, RLENGTH - 2)]++
                if (name == "clone" && match(line, /flags=[A-Z_|]+/))
                    detail["clone " substr(line, RSTART, RLENGTH)]++
                if ((name == "mmap" || name == "mprotect") && line ~ /PROT_EXEC/)
                    detail[name " with PROT_EXEC"]++
            }
        }
        END {
            if (allowed != "")
                while ((getline l < allowed) > 0) ok[l] = 1
            printf "%d daemon trace(s), %d reached the sandbox point\n", ndaemons, nsandboxed
            n = 0
            for (s in count) n++
            printf "%d distinct system calls after it:\n", n
            for (s in count)
                printf "  %-20s %10d%s\n", s, count[s], (allowed != "" && !(s in ok)) ? "  NOT ALLOWED" : ""
            for (d in detail)
                printf "  [%s] %d\n", d, detail[d]
        }' "${files[@]}" | { read -r l1; read -r l2; echo "$l1"; echo "$l2"; sort; }
    ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
