#!/usr/bin/env bash
# Fetch QEMU 10 (bookworm-backports) next to the system's QEMU 7.2, without installing
# it or touching the system's apt sources: a private apt state under OUTDIR/qemu10/apt
# downloads the .debs, dpkg-deb -x unpacks them. Prints the binary's path, for
#   run-guest.sh --qemu "$(tests/guest/get-qemu10.sh)"   (or VSCSI_QEMU=...)
# QEMU 10 is the version with vhost-user backend reconnect (chardev reconnect-ms=).
#
# usage: get-qemu10.sh [OUTDIR]   (default $VSCSI_GUEST_DIR or REPO/build/guest)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT=${1:-$GUEST_OUT_DIR}/qemu10
MIRROR=${VSCSI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS=(qemu-system-x86 qemu-system-common qemu-system-data)
BIN=$OUT/root/usr/bin/qemu-system-x86_64

if [ -x "$BIN" ] && [ -e "$OUT/.done" ]; then
    echo "$BIN"
    exit 0
fi
ensure_pkgs seabios ipxe-qemu

A=$OUT/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$OUT/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm-backports main" \
    > "$A/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$A/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
log "fetching ${PKGS[*]} from bookworm-backports"
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$OUT/debs" && apt-get "${apt_opts[@]}" -qq download "${PKGS[@]/%//bookworm-backports}" >&2)

rm -rf "$OUT/root"
for deb in "$OUT"/debs/*.deb; do dpkg-deb -x "$deb" "$OUT/root"; done
[ -x "$BIN" ] || die "no $BIN after unpacking"
if ldd "$BIN" | grep -q 'not found'; then
    ldd "$BIN" | grep 'not found' >&2
    die "QEMU 10 needs libraries this system lacks"
fi
"$BIN" --version | head -n 1 >&2
touch "$OUT/.done"
echo "$BIN"
