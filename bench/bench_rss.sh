#!/usr/bin/env bash
# bench_rss.sh: tallyd's memory over a long run (issue 3: RSS constant over a
# 10^8-record run, <= 128 MiB with default windows). Not run by CI.
#
#   bench/bench_rss.sh [--build DIR] [--records N] [--rate R] [--dir D]
#                      [--engine-cpu C] [--tally-cpu C] [--out DIR]
#
# Real processes: tallyd starts first, with the default windows
# (window.records 1048576, window.symbols 4096), its hot loop pinned to
# --tally-cpu (default 1), idle strategy `spin`, on an empty WAL directory;
# then tally-enginesim writes N records (default 10^8) through its WAL and
# its ring (default capacity, 64 MiB), flat out by default (--rate 0; --rate
# R for Poisson arrivals at R records/s), pinned to --engine-cpu (default
# 0). Every second this script samples tallyd's /proc/PID/status (VmRSS,
# VmHWM, and VmRSS's parts: RssAnon, RssFile, RssShmem) and its records read
# (tally_records_total from the control socket's /metrics).
#
# RssShmem is the engine's ring, mapped by tallyd: shared memory the engine
# owns and sizes (64 MiB by default), counted in VmRSS once the consumer has
# touched every page of it (one lap). tallyd's own memory is RssAnon +
# RssFile. Both are reported; the 128 MiB limit is judged on each.
#
# The WAL goes under --dir (default /var/tmp: the engine does not retire
# segments, so N = 10^8 keeps ~13 GB of segments until the end; use a tmpfs
# such as /dev/shm only with that much free memory). It is deleted at the
# end.
#
# Verdict, printed and written to OUT/bench_rss.json (samples in
# OUT/bench_rss.csv): start (first sample once tallyd reads records), peak
# (VmHWM) and end RSS; "constant" when, after the first 10% of the samples
# (the ring's pages are touched during its first lap), VmRSS moves by at
# most 1 MiB; peak <= 128 MiB; tallyd's STOP line says records_wal >= N and
# the audit log holds no SEV1/SEV2 finding.
set -euo pipefail

BUILD=""
RECORDS=100000000
RATE=0
DIR=/var/tmp
ENGINE_CPU=0
TALLY_CPU=1
OUT=.
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift 2 ;;
        --records) RECORDS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --engine-cpu) ENGINE_CPU=$2; shift 2 ;;
        --tally-cpu) TALLY_CPU=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: $0 [--build DIR] [--records N] [--rate R] [--dir D] [--engine-cpu C]" \
                "[--tally-cpu C] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$BUILD" ]; then
    BUILD="$(cd "$(dirname "$0")/.." && pwd)/build"
fi
ENGINESIM="$BUILD/bench/tally-enginesim"
TALLYD="$BUILD/admin/tallyd"
for b in "$ENGINESIM" "$TALLYD"; do
    [ -x "$b" ] || { echo "bench_rss: $b not built (--build DIR)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "bench_rss: needs curl" >&2; exit 2; }
mkdir -p "$OUT"

T=$(mktemp -d "$DIR/tally-bench-rss.XXXXXX")
RING="rss$$"
ENGINE_PID=""
TALLYD_PID=""
SAMPLER_PID=""
cleanup() {
    for p in "$SAMPLER_PID" "$ENGINE_PID" "$TALLYD_PID"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.3
    for p in "$SAMPLER_PID" "$ENGINE_PID" "$TALLYD_PID"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    rm -f "/dev/shm/tally.$RING"
    rm -rf "$T"
}
trap cleanup EXIT

head -c 32 /dev/urandom > "$T/sidecar.key"; chmod 600 "$T/sidecar.key"
head -c 32 /dev/urandom > "$T/operator.key"; chmod 600 "$T/operator.key"
# Default windows: no "window" member.
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"spin","cpu":$TALLY_CPU,"mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},
 "control":{"socket":"$T/tally.sock","listen":""}}
JSON

# Fields of /proc/PID/status, in kB, comma-separated.
status_kib() {
    local pid=$1; shift
    local out="" k v
    for k in "$@"; do
        v=$(awk -v k="$k:" '$1 == k {print $2}' "/proc/$pid/status" 2>/dev/null)
        out="$out${out:+,}${v:-0}"
    done
    echo "$out"
}
records_read() {
    curl -s --max-time 1 --unix-socket "$T/tally.sock" http://tally/metrics 2>/dev/null |
        awk '/^tally_records_total\{source="wal"\}/ {w=$2} /^tally_records_total\{source="ring"\}/ {r=$2}
             END {printf "%s %s\n", (w == "" ? 0 : w), (r == "" ? 0 : r)}'
}

# tallyd first, so that it follows the ring from the engine's first record.
mkdir -p "$T/wal"
"$TALLYD" --config "$T/tally.json" > "$T/tallyd.out" 2> "$T/tallyd.err" &
TALLYD_PID=$!
for _ in $(seq 100); do [ -S "$T/tally.sock" ] && break; sleep 0.05; done
[ -S "$T/tally.sock" ] || { echo "bench_rss: tallyd did not start" >&2; cat "$T/tallyd.err" >&2; exit 1; }
T0=$(date +%s.%N)

# The sampler: one line a second until tallyd exits.
(
    echo "t_s,vmrss_kib,vmhwm_kib,rssanon_kib,rssfile_kib,rssshmem_kib,records_wal,records_ring"
    while kill -0 "$TALLYD_PID" 2>/dev/null; do
        now=$(date +%s.%N)
        printf '%s,%s,%s\n' "$(awk -v a="$now" -v b="$T0" 'BEGIN {printf "%.1f", a - b}')" \
            "$(status_kib "$TALLYD_PID" VmRSS VmHWM RssAnon RssFile RssShmem)" \
            "$(records_read | tr ' ' ',')"
        sleep 1
    done
) > "$OUT/bench_rss.csv" &
SAMPLER_PID=$!

taskset -c "$ENGINE_CPU" "$ENGINESIM" --ring "$RING" --wal "$T/wal" --admin-socket "$T/admin.sock" \
    --sidecar-key "$T/sidecar.key" --operator-key "$T/operator.key" --records "$RECORDS" \
    --rate "$RATE" --linger-ms 3000 --stats --quiet > "$T/engine.out" 2> "$T/engine.err" &
ENGINE_PID=$!

# The engine ends after N records (and lingers 3 s so tallyd sees it alive).
wait "$ENGINE_PID" || { echo "bench_rss: the engine failed" >&2; tail "$T/engine.err" >&2; exit 1; }
ENGINE_PID=""
# tallyd catches up with the WAL, then stops cleanly (SIGTERM: STOP line).
for _ in $(seq 600); do
    read -r w _ < <(records_read)
    [ "${w:-0}" -ge "$RECORDS" ] && break
    sleep 0.2
done
sleep 1.5 # one more sample of the settled process
HWM=$(status_kib "$TALLYD_PID" VmHWM)
kill -TERM "$TALLYD_PID"
wait "$TALLYD_PID" || { echo "bench_rss: tallyd exited $?" >&2; tail "$T/tallyd.err" >&2; exit 1; }
TALLYD_PID=""
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

python3 - "$T" "$OUT" "$RECORDS" "$RATE" "$DIR" "$HWM" <<'PY'
import csv, glob, json, sys
t, out, want, rate, wal_dir, hwm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
rows = [r for r in csv.DictReader(open(out + "/bench_rss.csv")) if int(r["vmrss_kib"] or 0) > 0]
own = lambda r: int(r["rssanon_kib"]) + int(r["rssfile_kib"])
audit = [json.loads(l) for f in sorted(glob.glob(t + "/state/audit/audit*.jsonl")) for l in open(f)]
stop = [l for l in audit if l.get("event") == "STOP"][-1]
sev = [l["finding"] for l in audit
       if l.get("event") == "FINDING" and l["finding"]["severity"] in ("SEV1", "SEV2")]
findings = [l["finding"]["check"] + "/" + l["finding"]["severity"] for l in audit if l.get("event") == "FINDING"]
eng = [json.loads(l) for l in open(t + "/engine.out") if l.startswith("{")][-1]
# "Follows": the first sample with records read.
follow = [r for r in rows if int(r["records_wal"] or 0) > 0] or rows
steady = follow[len(follow) // 10:] or follow
rss = [int(r["vmrss_kib"]) for r in steady]
start_kib, end_kib = int(follow[0]["vmrss_kib"]), int(follow[-1]["vmrss_kib"])
drift_kib = max(rss) - min(rss)
res = {
    "records": want, "engine_records": eng["records"],
    "engine_rate_per_s": eng["records_per_s"], "engine_mode": "flat out" if rate == 0 else "rate %d/s" % rate,
    "wal_dir": wal_dir, "samples": len(rows), "seconds": float(rows[-1]["t_s"]) if rows else 0,
    "rss_start_mib": round(start_kib / 1024, 1), "rss_end_mib": round(end_kib / 1024, 1),
    "rss_peak_mib": round(max(hwm, max(int(r["vmhwm_kib"]) for r in rows)) / 1024, 1),
    "rss_steady_min_mib": round(min(rss) / 1024, 1), "rss_steady_max_mib": round(max(rss) / 1024, 1),
    "rss_steady_drift_kib": drift_kib,
    "own_start_mib": round(own(follow[0]) / 1024, 1), "own_end_mib": round(own(follow[-1]) / 1024, 1),
    "own_peak_mib": round(max(own(r) for r in rows) / 1024, 1),
    "shmem_ring_end_mib": round(int(follow[-1]["rssshmem_kib"]) / 1024, 1),
    "records_wal": int(stop["records_wal"]), "records_ring": int(stop["records_ring"]),
    "findings": int(stop["findings"]), "finding_checks": sorted(set(findings)), "sev_findings": len(sev),
}
res["constant"] = drift_kib <= 1024
res["peak_le_128mib"] = res["rss_peak_mib"] <= 128
res["own_le_128mib"] = res["own_peak_mib"] <= 128
res["records_ok"] = res["records_wal"] >= want
res["no_sev"] = len(sev) == 0
res["pass"] = res["constant"] and res["peak_le_128mib"] and res["records_ok"] and res["no_sev"]
json.dump(res, open(out + "/bench_rss.json", "w"), indent=1)
print("| measure | value |\n|---|---|")
for k in ("engine_mode", "engine_rate_per_s", "wal_dir", "seconds", "rss_start_mib", "rss_peak_mib",
          "rss_end_mib", "rss_steady_min_mib", "rss_steady_max_mib", "rss_steady_drift_kib",
          "own_start_mib", "own_peak_mib", "own_end_mib", "shmem_ring_end_mib",
          "records_wal", "records_ring", "findings", "finding_checks", "sev_findings"):
    print("| %s | %s |" % (k, res[k]))
print("\nTarget (issue 3): RSS constant over the run: %s; <= 128 MiB: VmRSS %s, own (anon + file, "
      "without the engine's ring) %s; records_wal >= %d: %s; no SEV finding: %s -> %s"
      % (res["constant"], res["peak_le_128mib"], res["own_le_128mib"], want, res["records_ok"],
         res["no_sev"], "met" if res["pass"] else "NOT met"))
sys.exit(0 if res["pass"] else 1)
PY
