#!/usr/bin/env bash
# test.sh: the README's test command. On a fresh Debian 12, as root: installs
# the dependencies, builds tally twice (release, and ASan+UBSan), and runs the
# whole ctest suite in both builds. Exit status 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/install-deps.sh

build() { # dir, extra cmake args...
    local dir=$1
    shift
    cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$root/$dir" -j"$jobs"
}

echo "== build (release)"
build build
echo "== build (ASan + UBSan)"
build build-asan -DTL_SANITIZE=ON

status=0
echo "== ctest (release)"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900) || status=1
echo "== ctest (ASan + UBSan)"
# ASan is slower: the suites scale their loops down under TL_SANITIZE.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" --timeout 900 -LE lint) || status=1

# libFuzzer targets (clang): every parser of outside bytes, a short run each.
if command -v clang >/dev/null; then
    echo "== fuzz targets (clang, libFuzzer + ASan + UBSan)"
    CC=clang cmake -S "$root" -B "$root/build-fuzz" -DTL_FUZZ=ON >/dev/null
    cmake --build "$root/build-fuzz" -j"$jobs" --target fuzz_all
    (cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz) || status=1
else
    echo "== fuzz targets skipped: clang is not installed"
fi

if [ $status -eq 0 ]; then
    echo "== all tests passed (release and ASan+UBSan)"
else
    echo "== tests FAILED" >&2
fi
exit $status
