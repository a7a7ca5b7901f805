#!/usr/bin/env bash
# clang-tidy with the committed .clang-tidy over the C sources (default: src and
# tests/fuzz), using build/compile_commands.json. Fails on any warning.
#   scripts/tidy.sh                 # everything
#   scripts/tidy.sh src/vhost       # some folders or files
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${TIDY_BUILD:-build}
command -v clang-tidy >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -q clang-tidy >/dev/null; }
command -v clang-tidy >/dev/null || { echo "tidy: no clang-tidy"; exit 1; }
[ -f "$BUILD/compile_commands.json" ] || meson setup "$BUILD" >/dev/null
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(src)
mapfile -t files < <(find "${paths[@]}" -name '*.c' | sort)
# only files the build compiles (compile_commands.json knows them)
out=$(mktemp)
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$BUILD" --quiet >"$out" 2>/dev/null
n=$(grep -c 'warning:' "$out" || true)
grep -A3 'warning:' "$out" | head -200
echo "tidy: ${#files[@]} files, $n warnings"
rm -f "$out"
[ "$n" = 0 ]
