#!/usr/bin/env bash
# Test images built at run time from this script (nothing binary is committed):
#
#   images.sh boot-disk OUT MARKER [SIZE]   raw disk image (default 1M) whose MBR boot code
#                                           prints "MARKER dl=XX" on COM1 and leaves QEMU
#   images.sh boot-iso OUT MARKER [FILE...] El Torito no-emulation ISO with the same boot code
#                                           (plus FILEs at its root)
#   images.sh data-iso OUT LABEL FILE...    ISO 9660 image (Rock Ridge + Joliet) holding FILEs
#                                           at its root, volume id LABEL
#   images.sh boot-code MARKER              the 512-byte boot sector itself, on stdout
#
# Sourced (. images.sh) it defines the same as functions: img_boot_disk, img_boot_iso,
# img_data_iso, img_boot_code, and BOOT_EXIT_STATUS.
#
# The boot code (16-bit real mode, hand-assembled below, 77 bytes) works from any CS:IP
# the firmware uses (0000:7C00 for a disk, 07C0:0000 for an El Torito no-emulation image):
# it addresses its message relative to its own IP. It writes MARKER, " dl=", the BIOS drive
# number it was booted from in hex (80 = first hard disk, E0 = first CD under SeaBIOS),
# CR LF to the first serial port (polling the LSR for an empty transmitter, no interrupts),
# then writes 0x10 to I/O port 0xF4: with QEMU's `-device isa-debug-exit,iobase=0xf4,
# iosize=1` QEMU exits with status (0x10 << 1) | 1 = 33 (BOOT_EXIT_STATUS). Without that
# device the write is ignored and the CPU halts in a loop.
# ISO images need xorriso (installed with apt-get when missing).

# shellcheck disable=SC2034 # used by the scripts that source this file
BOOT_EXIT_STATUS=33

# One instruction per line: bytes (hex) ; assembly. Offsets in the comments are from the
# start of the sector; `msg` is at 0x4D, right after the code.
IMG_BOOT_ASM='
FA          ; 00 cli
FC          ; 01 cld
0E          ; 02 push cs
1F          ; 03 pop ds              ; ds = cs: the message is addressed relative to cs:ip
88 D7       ; 04 mov bh, dl          ; the boot drive number the firmware passed in dl
E8 00 00    ; 06 call 0x09
5E          ; 09 pop si              ; si = offset of 0x09 in cs
83 C6 44    ; 0A add si, 0x44        ; si = msg (0x09 + 0x44 = 0x4D)
E8 32 00    ; 0D call puts           ; "MARKER dl="
88 F8       ; 10 mov al, bh
C0 E8 04    ; 12 shr al, 4
E8 11 00    ; 15 call hexdigit       ; high nibble of the drive number
88 F8       ; 18 mov al, bh
24 0F       ; 1A and al, 0x0f
E8 0A 00    ; 1C call hexdigit       ; low nibble
E8 20 00    ; 1F call puts           ; CR LF (the string after the first NUL)
B0 10       ; 22 mov al, 0x10
E6 F4       ; 24 out 0xf4, al        ; isa-debug-exit: QEMU exits with status 33
F4          ; 26 hlt                 ; (no such device: stay here)
EB FD       ; 27 jmp 0x26
04 30       ; 29 hexdigit: add al, 0x30
3C 39       ; 2B cmp al, 0x39
76 02       ; 2D jbe putc
04 07       ; 2F add al, 7           ; A-F
88 C4       ; 31 putc: mov ah, al
BA FD 03    ; 33 mov dx, 0x3fd       ; COM1 line status register
EC          ; 36 in al, dx
A8 20       ; 37 test al, 0x20       ; transmitter holding register empty?
74 FB       ; 39 jz 0x36
88 E0       ; 3B mov al, ah
BA F8 03    ; 3D mov dx, 0x3f8       ; COM1 data register
EE          ; 40 out dx, al
C3          ; 41 ret
AC          ; 42 puts: lodsb         ; ds:si, NUL-terminated; leaves si after the NUL
84 C0       ; 43 test al, al
74 05       ; 45 jz 0x4c
E8 E7 FF    ; 47 call putc
EB F6       ; 4A jmp puts
C3          ; 4C ret
'

# img_boot_code MARKER: the 512-byte boot sector (boot signature 55 AA at 510) on stdout.
img_boot_code() {
    local marker=$1 esc='' line b tmp
    [[ $marker =~ ^[[:print:]]{1,128}$ ]] ||
        { echo "images.sh: the marker must be 1-128 printable characters" >&2; return 2; }
    while read -r line; do
        for b in ${line%%;*}; do esc="$esc\\x$b"; done
    done <<< "$IMG_BOOT_ASM"
    tmp=$(mktemp)
    # shellcheck disable=SC2059 # the format is the code, built from the table above
    printf "$esc" > "$tmp"
    printf '%s dl=\0\r\n\0' "$marker" >> "$tmp"
    truncate -s 510 "$tmp"
    printf '\x55\xaa' >> "$tmp"
    cat "$tmp"
    rm -f "$tmp"
}

# img_boot_disk OUT MARKER [SIZE]: a raw disk image of SIZE (truncate syntax, default 1M,
# sparse) with the boot code in sector 0.
img_boot_disk() {
    local out=$1 marker=$2 size=${3:-1M}
    rm -f "$out"
    truncate -s "$size" "$out"
    img_boot_code "$marker" | dd of="$out" conv=notrunc status=none
}

img_need_xorriso() {
    command -v xorriso > /dev/null && return 0
    if declare -F ensure_pkgs > /dev/null; then
        ensure_pkgs xorriso
    else
        echo "images.sh: xorriso is needed (apt-get install xorriso)" >&2
        return 1
    fi
}

# img_boot_iso OUT MARKER [FILE...]: an El Torito no-emulation boot ISO whose boot image
# (one 2048-byte CD sector: the boot code, zero-padded; loaded as 4 virtual 512-byte
# sectors at 07C0:0000) is /boot.bin; FILEs go to the root too.
img_boot_iso() {
    local out=$1 marker=$2 dir rc=0
    shift 2
    img_need_xorriso || return 1
    dir=$(mktemp -d)
    { img_boot_code "$marker"; head -c 1536 /dev/zero; } > "$dir/boot.bin"
    [ $# -eq 0 ] || cp -- "$@" "$dir/"
    rm -f "$out"
    xorriso -as mkisofs -quiet -o "$out" -V VSCSI_BOOT -R -J \
        -b boot.bin -no-emul-boot -boot-load-size 4 "$dir" 2> "$dir.err" || rc=$?
    [ "$rc" = 0 ] || cat "$dir.err" >&2
    rm -rf "$dir" "$dir.err"
    return "$rc"
}

# img_data_iso OUT LABEL FILE...: an ISO 9660 image with FILEs at its root.
img_data_iso() {
    local out=$1 label=$2 dir rc=0
    shift 2
    img_need_xorriso || return 1
    dir=$(mktemp -d)
    cp -- "$@" "$dir/"
    rm -f "$out"
    xorriso -as mkisofs -quiet -o "$out" -V "$label" -R -J "$dir" 2> "$dir.err" || rc=$?
    [ "$rc" = 0 ] || cat "$dir.err" >&2
    rm -rf "$dir" "$dir.err"
    return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    usage() { sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0" >&2; exit 2; }
    cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
    boot-disk) { [ $# -ge 2 ] && [ $# -le 3 ]; } || usage; img_boot_disk "$@" ;;
    boot-iso) [ $# -ge 2 ] || usage; img_boot_iso "$@" ;;
    data-iso) [ $# -ge 3 ] || usage; img_data_iso "$@" ;;
    boot-code) [ $# -eq 1 ] || usage; img_boot_code "$1" ;;
    *) usage ;;
    esac
fi
