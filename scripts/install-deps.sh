#!/usr/bin/env bash
# Install what building (and, with --test, testing) vscsi needs on Debian
# bookworm. Idempotent: packages already present are not touched.
set -euo pipefail

# libseccomp: the --sandbox allow-list (optional at build time: without it
# vscsid runs unsandboxed and says so); libseccomp2 is its run-time library.
build_pkgs=(gcc meson ninja-build pkg-config liburing-dev libseccomp-dev libseccomp2)
test_pkgs=(qemu-system-x86 qemu-system-common seabios sg3-utils fio libiscsi-bin lsscsi
           cpio kmod gzip util-linux mount eject xorriso)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
