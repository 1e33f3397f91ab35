#!/usr/bin/env bash
# run_xwal1.sh SCENARIO: tallyd (wal.dialect xwal1, no ring, backoff idle)
# follows a live directory that xwal1_append fills with the frames of
# ../shared/fixtures/quanta-xwal1/SCENARIO one by one (fsync each, as
# upstream's writer), while serving the engine admin socket. Separate
# processes, real files and sockets. tallyd must report what
# `tallyctl wal verify --dialect xwal1` reports on the finished log, and for
# stale_leader its HARD_HALT on BTC-KRW (and withdrawals_halt) must reach
# the admin socket (tests/integration/check_xwal1.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scenario=$1
SHARED=${TL_SHARED_DIR:-$HERE/../../../shared}
FIX="$SHARED/fixtures/quanta-xwal1/$scenario/wal"
APPEND="$TL_BUILD/tests/xwal1_append"
TALLYCTL="$TL_BUILD/admin/tallyctl"
[ -d "$FIX" ] || fail "no fixture $FIX"

case $scenario in
    stale_leader) expect='{"actions":[["set_symbol_mode","BTC-KRW","HARD_HALT"],["withdrawals_halt","*",null]]}' ;;
    *)            expect='{"actions":[]}' ;;
esac

make_keys
mkdir -p "$T/wal"
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "wal":{"dialect":"xwal1"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},"bundle":{"dir":"$T/bundles"},
 "control":{"socket":"$T/tally.sock","listen":""}}
JSON
"$TALLYD" --check-config "$T/tally.json" > /dev/null || fail "config refused"

# tallyd first, on the empty log: it must find the first segment itself.
start_tallyd
wait_for 5 test -S "$T/tally.sock" || fail "tallyd did not start"
"$APPEND" --from "$FIX" --to "$T/wal" --interval-ms 25 --linger-ms 2500 \
    --admin-socket "$T/admin.sock" --sidecar-key "$T/sidecar.key" --stats \
    > "$T/engine.out" 2> "$T/engine.err" &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
wait_exit "$ENGINE_PID" 60 || fail "the appender did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the appender exited $WAIT_RC"
stop_tallyd

"$TALLYCTL" wal verify --dialect xwal1 --json "$T/wal" > "$T/offline.json" || true
python3 "$HERE/check_xwal1.py" --audit-dir "$T/state/audit" --offline "$T/offline.json" \
    --engine "$T/engine.out" --expect "$expect"
# every frame the appender wrote was read as a record (or a finding)
python3 - "$T" <<'PY' || fail "tallyd did not read every record"
import json, sys, glob
t = sys.argv[1]
eng = [json.loads(l) for l in open(t + "/engine.out") if l.startswith("{")][-1]
off = json.load(open(t + "/offline.json"))
stop = [json.loads(l) for f in glob.glob(t + "/state/audit/audit*.jsonl")
        for l in open(f) if '"event":"STOP"' in l][-1]
assert int(stop["records_wal"]) == int(off["records"]), (stop, off)
assert int(off["frames"]) == eng["frames"], (off, eng)
PY
