#!/usr/bin/env bash
# format.sh: formats the tree with the root .clang-format, or checks it (--check).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build')
[ ${#files[@]} -gt 0 ] || exit 0
if [ "${1:-}" = "--check" ]; then
    exec clang-format --dry-run -Werror "${files[@]}"
fi
exec clang-format -i "${files[@]}"
