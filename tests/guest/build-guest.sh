#!/usr/bin/env bash
# Build the test guest: Debian's cloud kernel and a busybox initramfs holding the SCSI
# tools (sg3_utils, lsscsi, fio, iscsi-test-cu, eject) and the SCSI kernel modules.
#
# usage: build-guest.sh [OUTDIR]     (default $VSCSI_GUEST_DIR or REPO/build/guest)
# Produces OUTDIR/img-STAMP/{vmlinuz,base.cpio} (base.cpio uncompressed: see the end) and
# prints that folder. STAMP hashes every input (these scripts, the kernel package, the
# tool packages' versions), so an unchanged guest is not rebuilt, and copies of these
# scripts at different versions sharing one OUTDIR do not rebuild it in turn or swap the
# files under each other's QEMU. The 3 most recently used images are kept.
# Set VSCSI_GUEST_REBUILD=1 to force a rebuild.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT=${1:-$GUEST_OUT_DIR}

# Host packages whose files go into the guest, plus the tools this script uses.
PKGS=(sg3-utils fio libiscsi-bin lsscsi coreutils util-linux e2fsprogs
      bash cpio kmod eject)

# Modules loaded at boot by /init (upper drivers before virtio_scsi, see guest-init.sh).
BOOT_MODULES=(virtio_pci sd_mod sr_mod sg st virtio_scsi)
# Also packed, for tests to modprobe: scsi_debug (a local disk to pass through), LIO
# (PR-capable disks via tcm_loop), isofs/loop for CD images, virtio_blk for comparisons.
EXTRA_MODULES=(scsi_debug isofs loop target_core_file target_core_iblock tcm_loop
               virtio_blk crc32c_intel)

# Programs copied with their libraries. Everything else comes from busybox applets.
BINARIES=(lsscsi fio iscsi-test-cu dd blockdev blkdiscard mke2fs bash eject)

ensure_pkgs "${PKGS[@]}"
mkdir -p "$OUT/cache"
# One build at a time per OUTDIR (scenarios may be started in parallel).
exec 9> "$OUT/.lock"
flock 9

# --- kernel -----------------------------------------------------------------------
# The metapackage names the current ABI package, so a kernel security update lands here
# too. apt-cache takes about a second; its answer can only change with the package
# lists, so it is kept until they are newer. A fresh machine may lack package lists.
kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
KPKG=
if [ -s "$OUT/kernel.pkg" ] && [ ! /var/lib/apt/lists -nt "$OUT/kernel.pkg" ]; then
    KPKG=$(cat "$OUT/kernel.pkg")
fi
[ -n "$KPKG" ] || KPKG=$(kernel_pkg || true)
if [ -z "$KPKG" ]; then
    apt-get update >&2 || true
    KPKG=$(kernel_pkg || true)
fi
if [ -z "$KPKG" ]; then
    # Offline but cached: keep using what we have.
    KPKG=$(find "$OUT/cache" -name 'linux-image-*-cloud-amd64_*.deb' -printf '%f\n' |
           sort -V | tail -n 1 | cut -d_ -f1)
    [ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64 and nothing is cached"
    log "warning: apt-cache failed, using cached $KPKG"
fi
KVER=${KPKG#linux-image-}
echo "$KPKG" > "$OUT/kernel.pkg"

kdeb=$(find "$OUT/cache" -name "${KPKG}_*.deb" -print -quit)
if [ -z "$kdeb" ]; then
    log "downloading $KPKG"
    # Download only (never install): the host's own kernel stays untouched.
    (cd "$OUT/cache" && apt-get download -o APT::Sandbox::User=root "$KPKG" >&2)
    kdeb=$(find "$OUT/cache" -name "${KPKG}_*.deb" -print -quit)
    [ -n "$kdeb" ] || die "apt-get download $KPKG produced no .deb"
fi
KROOT=$OUT/kernel-$KVER
if [ ! -e "$KROOT/.extracted" ]; then
    rm -rf "$KROOT"
    dpkg-deb -x "$kdeb" "$KROOT"
    depmod -b "$KROOT" "$KVER"
    touch "$KROOT/.extracted"
fi

# busybox-static is downloaded and unpacked, never installed: installing it would
# remove Debian's dynamic busybox package (they conflict), which initramfs-tools uses.
bbdeb=$(find "$OUT/cache" -name 'busybox-static_*.deb' -print -quit)
if [ -z "$bbdeb" ]; then
    log "downloading busybox-static"
    (cd "$OUT/cache" && apt-get download -o APT::Sandbox::User=root busybox-static >&2) ||
        { apt-get update >&2 || true; (cd "$OUT/cache" && apt-get download -o APT::Sandbox::User=root busybox-static >&2); }
    bbdeb=$(find "$OUT/cache" -name 'busybox-static_*.deb' -print -quit)
    [ -n "$bbdeb" ] || die "apt-get download busybox-static produced no .deb"
fi
BBROOT=$OUT/busybox-static
if [ ! -x "$BBROOT/bin/busybox" ]; then
    rm -rf "$BBROOT"
    dpkg-deb -x "$bbdeb" "$BBROOT"
fi
BB=$BBROOT/bin/busybox

# --- stamp ------------------------------------------------------------------------
stamp() {
    {
        cat "$GUEST_SRC_DIR/build-guest.sh" \
            "$GUEST_SRC_DIR/guest-init.sh" "$GUEST_SRC_DIR/guest-lib.sh"
        basename "$kdeb"
        basename "$bbdeb"
        dpkg-query -W -f '${Package}=${Version}\n' "${PKGS[@]}"
    } | sha256sum | cut -d' ' -f1
}
STAMP=$(stamp)
IMG=$OUT/img-${STAMP:0:16}
if [ "${VSCSI_GUEST_REBUILD:-0}" != 1 ] && [ -s "$IMG/base.cpio" ] && [ -s "$IMG/vmlinuz" ]; then
    touch "$IMG"   # recently used: kept by the clean-up below
    echo "$IMG"
    exit 0
fi

log "building guest initramfs in $IMG (kernel $KVER)"
t0=$(now)
NEW=$IMG.tmp
ROOT=$NEW/rootfs
rm -rf "$NEW"
# Debian's merged /usr layout, so library paths from ldd resolve the same way inside.
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/vscsi,proc,sys,dev,tmp,run,root,mnt}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$ROOT/$d"; done

# busybox, with one link per applet.
cp "$BB" "$ROOT/usr/bin/busybox"
"$BB" --list-full | while read -r applet; do
    [ -e "$ROOT/$applet" ] || [ -L "$ROOT/$applet" ] || ln -s /usr/bin/busybox "$ROOT/$applet"
done

# Copy FILE (resolved) into the root at the same path. Remove what is there first:
# busybox has applets of the same names (lsscsi, dd, blockdev), and cp onto the applet
# link would overwrite busybox itself through it.
copy_file() {
    local src dst
    src=$(readlink -f "$1")
    dst=$ROOT$src
    mkdir -p "$(dirname "$dst")"
    rm -f "$dst"
    cp "$src" "$dst"
    # Keep the name the program was asked by (e.g. /lib64/ld-linux-x86-64.so.2 -> the real file).
    if [ "$1" != "$src" ] && [ ! -e "$ROOT$1" ]; then
        mkdir -p "$(dirname "$ROOT$1")"
        ln -s "$src" "$ROOT$1"
    fi
}

declare -A LIBS=()
add_binary() {
    local bin lib
    bin=$(command -v "$1") || die "$1 not found on the host"
    copy_file "$bin"
    while read -r lib; do
        LIBS[$lib]=1
    done < <(ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }')
}
for b in "${BINARIES[@]}"; do add_binary "$b"; done
# Every sg3_utils program (small, and tests pick whichever they need), and its scripts.
while read -r f; do
    case $f in */bin/*) [ -f "$f" ] && [ -x "$f" ] && add_binary "$f" ;; esac
done < <(dpkg -L sg3-utils)
for lib in "${!LIBS[@]}"; do copy_file "$lib"; done
# /bin/sh is bash, not busybox ash: Debian's busybox-static ash prefers its applets to
# programs in PATH (FEATURE_SH_STANDALONE), so under ash "lsscsi", "dd" or "blockdev" in a
# script would silently run the busybox versions instead of the real tools copied above.
ln -sf bash "$ROOT/usr/bin/sh"
# The dynamic loader then finds libraries without scanning directories.
printf '/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/ceph\n' > "$ROOT/etc/ld.so.conf"
ldconfig -r "$ROOT"

# Kernel modules with their dependencies, in the load order modprobe computes.
MODDIR=lib/modules/$KVER
mkdir -p "$ROOT/usr/$MODDIR"
for m in "${BOOT_MODULES[@]}" "${EXTRA_MODULES[@]}"; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" ||
        die "module $m not in kernel $KVER"
done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
    rel=${ko#"$KROOT"/}
    mkdir -p "$(dirname "$ROOT/usr/$rel")"
    cp "$ko" "$ROOT/usr/$rel"
done
cp "$KROOT/$MODDIR"/modules.{order,builtin,builtin.modinfo} "$ROOT/usr/$MODDIR/"
depmod -b "$ROOT" "$KVER"
printf '%s\n' "${BOOT_MODULES[@]}" > "$ROOT/etc/vscsi/modules"

cp "$GUEST_SRC_DIR/guest-init.sh" "$ROOT/init"
chmod 755 "$ROOT/init"
cp "$GUEST_SRC_DIR/guest-lib.sh" "$ROOT/lib/vscsi.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\n' > "$ROOT/etc/group"

# Uncompressed: under TCG the kernel takes about 1 s to gunzip the 40 MB (gzip -1) of
# this archive on every boot, while QEMU hands over the 100 MB raw one in no time
# (measured: guest reaches the test at 2.6-3.1 s raw, 3.9-4.2 s gzip). An uncompressed
# archive must come first when archives are concatenated (run-guest.sh appends the
# test's gzip one); lz4, as fast, only works last.
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) > "$NEW/base.cpio"
rm -rf "$ROOT"   # 100 MB, all in base.cpio (cpio -t lists it)
cp "$KROOT/boot/vmlinuz-$KVER" "$NEW/vmlinuz"
rm -rf "$IMG"
mv "$NEW" "$IMG"
log "built $IMG/base.cpio ($(du -h "$IMG/base.cpio" | cut -f1)) in $(elapsed "$t0")s"
# Keep the 3 most recently used images (93 MB each).
find "$OUT" -maxdepth 1 -name 'img-*' -type d -printf '%T@ %p\n' | sort -rn | tail -n +4 |
    cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done
echo "$IMG"
