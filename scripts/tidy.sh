#!/usr/bin/env bash
# clang-tidy with the committed .clang-tidy over the C sources (default: src,
# tools and tests/fuzz), using build/compile_commands.json. Fails on any warning.
#   scripts/tidy.sh                 # everything
#   scripts/tidy.sh src/vhost       # some folders or files
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${TIDY_BUILD:-build}
command -v clang-tidy >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -q clang-tidy >/dev/null; }
command -v clang-tidy >/dev/null || { echo "tidy: no clang-tidy"; exit 1; }
[ -f "$BUILD/compile_commands.json" ] || meson setup "$BUILD" >/dev/null
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(src tools tests/fuzz)
mapfile -t files < <(find "${paths[@]}" -name '*.c' | sort)
out=$(mktemp)
# The fuzz targets are built only in the clang fuzz build, so the normal
# build's compile_commands.json does not know them: clang-tidy borrows a
# neighbour's flags, and the include directories of tests/fuzz/meson.build are
# added here. A file that does not compile counts (error:), so nothing is
# skipped silently.
fuzz_inc=()
for d in src "$BUILD" tests/fuzz tests/unit tests/unit/scsi tests/unit/mgmt; do
    fuzz_inc+=("--extra-arg=-I$PWD/$d")
done
printf '%s\n' "${files[@]}" | grep -v '^tests/fuzz/' |
    xargs -r -P "$(nproc)" -n 4 clang-tidy -p "$BUILD" --quiet >"$out" 2>/dev/null
printf '%s\n' "${files[@]}" | grep '^tests/fuzz/' |
    xargs -r -P "$(nproc)" -n 4 clang-tidy -p "$BUILD" --quiet "${fuzz_inc[@]}" >>"$out" 2>/dev/null
n=$(grep -Ec '(warning|error):' "$out" || true)
grep -E -A3 '(warning|error):' "$out" | head -200
echo "tidy: ${#files[@]} files, $n warnings and errors"
rm -f "$out"
[ "$n" = 0 ]
