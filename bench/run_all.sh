#!/usr/bin/env bash
# run_all.sh: every benchmark of the issues, one after another, into one
# results directory. Not run by CI (CI never asserts timings). Run it on a
# quiet machine: nothing else building or testing.
#
#   bench/run_all.sh [--build DIR] [--out DIR] [--quick] [--only NAME...]
#
# NAME is one of: ring wal xwal1 check ledger peer halt bundle rss.
# --quick shrinks every size (for checking the script, not for numbers).
# Each benchmark prints a markdown table of medians and spreads (min..max)
# and writes JSON; this script keeps each one's stdout in OUT/NAME.txt.
# docs/benchmarks.md quotes them, with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
OUT=bench-results/$(date -u +%Y%m%dT%H%M%SZ)
QUICK=0
ONLY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --only) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do ONLY+=("$1"); shift; done ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
B=$BUILD/bench
[ -x "$B/bench_ring" ] || { echo "run_all.sh: no benchmarks in $B: build first (cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

want() {
    [ ${#ONLY[@]} -eq 0 ] && return 0
    local n
    for n in "${ONLY[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

status=0
run() { # name, command...
    local name=$1
    shift
    want "$name" || return 0
    echo "== $name: $*" | tee "$OUT/$name.txt"
    if ! "$@" 2>&1 | tee -a "$OUT/$name.txt"; then
        echo "== $name FAILED" | tee -a "$OUT/$name.txt"
        status=1
    fi
}

if [ $QUICK -eq 1 ]; then
    run ring "$B/bench_ring" --runs 2 --records 2000000 --json "$OUT/ring.json"
    run wal "$B/bench_wal" --gib 0.125 --runs 2 --dir /var/tmp
    run xwal1 "$B/bench_xwal1" --mib 64 --runs 2 --json "$OUT/xwal1.json"
    run check "$B/bench_check" --records 2000000 --runs 2 --json "$OUT/check.json"
    run ledger "$B/bench_ledger" 10000 100 2
    run peer "$B/bench_peer" --runs 2
    run halt "$B/bench_halt" --faults 50 --every 15000 --rate 100000 --out "$OUT/halt"
    run bundle "$B/bench_bundle" --gib 0.125 --runs 2
    run rss bench/bench_rss.sh --build "$BUILD" --records 2000000 --out "$OUT/rss"
else
    # issue 2: ring (64 B vs rte_ring burst 32, 120 B verified, publish cost)
    run ring "$B/bench_ring" --runs 7 --json "$OUT/ring.json"
    # issue 2: verified WAL replay against raw pread of the same files (warm; cold)
    run wal "$B/bench_wal" --gib 1 --runs 7 --dir /var/tmp
    run wal_cold "$B/bench_wal" --gib 1 --runs 5 --dir /var/tmp --cold
    # issue 7: xwal1 verification, GB/s of WAL on one core
    run xwal1 "$B/bench_xwal1" --mib 1024 --runs 7 --json "$OUT/xwal1.json"
    # issue 3: records checked per second, ring + WAL cross-check, 120 B
    run check "$B/bench_check" --records 20000000 --runs 5 --json "$OUT/check.json"
    # issue 4: one watermark check at a lag of 10^4 records
    run ledger "$B/bench_ledger" 10000 1000 5
    # issue 4: peer verify, kernel UDP, DPDK net_pcap, CHECKPOINT -> HARD_HALT
    run peer "$B/bench_peer" --runs 9
    # issue 3: detect -> HARD_HALT line and fast word, 1000 faults, PNG
    # (150 ms apart: tallyd's rate limit allows 1000 actions a minute)
    run halt "$B/bench_halt" --faults 1000 --every 15000 --rate 100000 --out "$OUT/halt"
    # issue 6: export vs tar --zstd, verify GB/s; detect-to-send during exports
    run bundle "$B/bench_bundle" --gib 1 --runs 5
    run bundle_halt "$B/bench_bundle" --halt "$BUILD" --faults 300
    # issue 3: RSS over a 10^8-record run
    run rss bench/bench_rss.sh --build "$BUILD" --records 100000000 --out "$OUT/rss"
fi
echo "== results in $OUT"
exit $status
