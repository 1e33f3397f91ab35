#!/usr/bin/env bash
# run_benign.sh clean|crash|lapped: disturbances that must never act.
#   clean   10^6 records flat out: no action, no SEV finding
#   crash   the engine is killed in the middle of a WAL write (records on
#           the ring never became durable) and restarted on the same WAL,
#           which truncates the torn tail and writes those seqs again with
#           other content: no corruption, no fork, no action
#   lapped  tallyd is stopped (SIGSTOP) long enough to be lapped; the gap is
#           read from the WAL: RING_LAPPED (info) only
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
make_keys
write_config
case $kind in
    clean)
        start_engine --records 1000000 --ring-capacity 16M --segment-bytes 16M --linger-ms 1500
        wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
        start_tallyd
        wait_exit "$ENGINE_PID" 120 || fail "the engine did not finish"
        [ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
        sleep 0.5
        stop_tallyd
        check_run '{"findings":[],"actions":[]}'
        records=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("{"): print(json.loads(l)["records"])' "$T/engine.out" | tail -1)
        [ "$records" -ge 1000000 ] || fail "only $records records"
        grep -q '"event":"STOP"' <(audit) || fail "no STOP line"
        python3 - "$T" <<'PY' || fail "tallyd did not read every record"
import json, sys, glob
stop = [json.loads(l) for f in glob.glob(sys.argv[1] + "/state/audit/audit*.jsonl")
        for l in open(f) if '"event":"STOP"' in l][-1]
assert int(stop["records_wal"]) >= 1000000, stop
PY
        ;;
    crash)
        start_engine --rate 20000 --seconds 3 --segment-bytes 4M --ring-capacity 4M \
            --fault crash@30000
        wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
        start_tallyd
        wait_exit "$ENGINE_PID" 20 || fail "the engine did not crash"
        [ "$WAIT_RC" -eq 137 ] || fail "the crash fault exited $WAIT_RC, want 137"
        sleep 0.4
        start_engine --rate 20000 --seconds 2 --segment-bytes 4M --ring-capacity 4M --seed 2
        wait_exit "$ENGINE_PID" 20 || fail "the restarted engine did not finish"
        [ "$WAIT_RC" -eq 0 ] || fail "the restarted engine exited $WAIT_RC"
        sleep 0.5
        stop_tallyd
        check_run '{"findings":[],"actions":[]}'
        grep -q "new incarnation" "$T/tallyd.err" || fail "tallyd did not follow the new incarnation"
        ;;
    lapped)
        start_engine --rate 200000 --seconds 4 --segment-bytes 16M --ring-capacity 1M --deadman 0
        wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
        start_tallyd
        sleep 1
        kill -STOP "$TALLYD_PID"
        sleep 0.5
        kill -CONT "$TALLYD_PID"
        wait_exit "$ENGINE_PID" 20 || fail "the engine did not finish"
        sleep 0.5
        stop_tallyd
        check_run '{"findings":[],"actions":[],"info":["RING_LAPPED"]}'
        ;;
    *) fail "unknown case $kind" ;;
esac
