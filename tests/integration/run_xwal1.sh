#!/usr/bin/env bash
# run_xwal1.sh SCENARIO: tallyd (wal.dialect xwal1, no ring, backoff idle)
# follows a live directory that xwal1_append fills with the frames of
# ../shared/fixtures/quanta-xwal1/SCENARIO one by one (fsync each, as
# upstream's writer), while serving the engine admin socket. Separate
# processes, real files and sockets. tallyd must report what
# `tallyctl wal verify --dialect xwal1` reports on the finished log, and for
# stale_leader its HARD_HALT on BTC-KRW (and withdrawals_halt) must reach
# the admin socket (tests/integration/check_xwal1.py).
#
# Scenarios on copies of the fixtures (not upstream's verdicts: tally's
# offline verifier is the reference, and must name the same faults):
#   segment_gap     basic without segment 2: SEGMENT_GAP at segment 3
#   torn_append     basic, a segment's second frame torn (a crash
#                   mid-write) and, once tallyd saw the torn tail, a later
#                   whole frame appended after it (the engine restarted in
#                   append mode): WAL_CORRUPT at the torn frame's offset
#   tallyd_restart  stale_leader, then tallyd restarted over the whole log:
#                   the first run's HARD_HALT ends FAILED never_applied (the
#                   stand-in engine writes no symbol_mode), its withdrawals
#                   halts APPLIED once accepted; the second run reports the
#                   same findings and sends nothing
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scenario=$1
SHARED=${TL_SHARED_DIR:-$HERE/../../../shared}
APPEND="$TL_BUILD/tests/xwal1_append"
TALLYCTL="$TL_BUILD/admin/tallyctl"
case $scenario in
    segment_gap | torn_append) fixture=basic ;;
    tallyd_restart) fixture=stale_leader ;;
    *) fixture=$scenario ;;
esac
FIX="$SHARED/fixtures/quanta-xwal1/$fixture/wal"
[ -d "$FIX" ] || fail "no fixture $FIX"

halt='[["set_symbol_mode","BTC-KRW","HARD_HALT"],["withdrawals_halt","*",null]]'
case $scenario in
    stale_leader | tallyd_restart) expect="{\"actions\":$halt}" ;;
    # a log integrity fault: CANCEL_ONLY on every symbol (behavior.md)
    segment_gap | torn_append) expect='{"actions":[["set_symbol_mode","*","CANCEL_ONLY"]]}' ;;
    *) expect='{"actions":[]}' ;;
esac

make_keys
mkdir -p "$T/wal" "$T/empty"
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "wal":{"dialect":"xwal1"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},"bundle":{"dir":"$T/bundles"},
 "control":{"socket":"$T/tally.sock","listen":""}}
JSON
"$TALLYD" --check-config "$T/tally.json" > /dev/null || fail "config refused"

# The source of the appender: the fixture, or a changed copy of it.
SRC="$FIX"
if [ "$scenario" = segment_gap ]; then
    SRC="$T/src"
    mkdir -p "$SRC"
    cp "$FIX"/segment-*.wal "$SRC"/
    rm "$SRC/segment-000002.wal"
fi

# appender FROM OUT LINGER_MS: the stand-in engine, in the background.
appender() {
    "$APPEND" --from "$1" --to "$T/wal" --interval-ms 25 --linger-ms "$3" \
        --admin-socket "$T/admin.sock" --sidecar-key "$T/sidecar.key" --stats \
        > "$2" 2>> "$T/engine.err" &
    ENGINE_PID=$!
    PIDS+=("$ENGINE_PID")
}

audit_count() { audit | grep -c "$1" || true; }
one_failed() { [ "$(audit_count '"event":"FAILED"')" -ge 1 ]; }

# tallyd first, on the empty log: it must find the first segment itself.
start_tallyd
wait_for 5 test -S "$T/tally.sock" || fail "tallyd did not start"
linger=2500
# The first run's HARD_HALT must end (FAILED never_applied after 8 sends,
# one per apply_timeout_ms once acknowledged) before the restart, or it
# would rightly be sent again as unfinished (behavior.md).
[ "$scenario" = tallyd_restart ] && linger=14000
if [ "$scenario" = torn_append ]; then
    # The segments before the newest one with three frames whole; that one:
    # its magic, its first frame and half of its second, as a crash leaves
    # it.
    appender "$T/empty" "$T/engine.out" 4000
    python3 - "$FIX" "$T/wal" "$T/torn.json" <<'PY'
import json, os, struct, sys
src, dst, out = sys.argv[1:4]
def frames_of(b):
    frames, o = [], 7
    while o + 4 <= len(b):
        n = struct.unpack("<I", b[o:o + 4])[0]
        frames.append((o, n + 8))
        o += n + 8
    return frames
names = sorted(n for n in os.listdir(src) if n.startswith("segment-"))
# the newest segment with three frames or more; the ones after it dropped
while len(frames_of(open(os.path.join(src, names[-1]), "rb").read())) < 3:
    names.pop()
for n in names[:-1]:
    open(os.path.join(dst, n), "wb").write(open(os.path.join(src, n), "rb").read())
b = open(os.path.join(src, names[-1]), "rb").read()
frames = frames_of(b)
(o1, l1), (o2, l2), (o3, l3) = frames[0], frames[1], frames[2]
# the torn piece plus the appended frame must cover the torn frame's
# length, so the verdict is a crc mismatch, not a longer tentative tail
torn = l2 // 2
assert torn + l3 >= l2, (l2, l3)
with open(os.path.join(dst, names[-1]), "wb") as f:
    f.write(b[:o2 + torn])
    f.flush()
    os.fsync(f.fileno())
json.dump({"segment": int(names[-1][8:14]), "offset": o2,
           "tail": b[o3:o3 + l3].hex()}, open(out, "w"))
PY
    last=$(ls "$T/wal" | tail -n 1)
    # tallyd saw the torn tail (tentative: no finding yet)
    sleep 0.5
    [ "$(audit_count '"check":"WAL_CORRUPT"')" -eq 0 ] || fail "a torn tail reported at once"
    python3 - "$T/torn.json" "$T/wal/$last" <<'PY'
import json, os, sys
t = json.load(open(sys.argv[1]))
with open(sys.argv[2], "ab") as f:
    f.write(bytes.fromhex(t["tail"]))
    f.flush()
    os.fsync(f.fileno())
PY
else
    appender "$SRC" "$T/engine.out" "$linger"
fi
if [ "$scenario" = tallyd_restart ]; then
    wait_for 20 one_failed ||
        fail "the first run's HARD_HALT did not end FAILED never_applied"
    audit | grep '"event":"FAILED"' | grep -q '"error":"never_applied"' ||
        fail "FAILED without never_applied"
fi
wait_exit "$ENGINE_PID" 60 || fail "the appender did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the appender exited $WAIT_RC"
stop_tallyd

"$TALLYCTL" wal verify --dialect xwal1 --json "$T/wal" > "$T/offline.json" || true
python3 "$HERE/check_xwal1.py" --audit-dir "$T/state/audit" --offline "$T/offline.json" \
    --engine "$T/engine.out" --expect "$expect" --run 1
# every frame the appender wrote was read as a record (or a finding)
python3 - "$T" "$scenario" <<'PY' || fail "tallyd did not read every record"
import json, sys, glob
t, scenario = sys.argv[1:3]
eng = [json.loads(l) for l in open(t + "/engine.out") if l.startswith("{")][-1]
off = json.load(open(t + "/offline.json"))
stop = [json.loads(l) for f in glob.glob(t + "/state/audit/audit*.jsonl")
        for l in open(f) if '"event":"STOP"' in l][-1]
assert int(stop["records_wal"]) == int(off["records"]), (stop, off)
if scenario != "torn_append":  # there the script wrote the log
    assert int(off["frames"]) == eng["frames"], (off, eng)
PY

case $scenario in
    segment_gap)
        python3 - "$T/offline.json" <<'PY' || fail "no SEGMENT_GAP at segment 3"
import json, sys
fs = json.load(open(sys.argv[1]))["findings"]
gaps = [f for f in fs if f["check"] == "SEGMENT_GAP"]
assert len(gaps) == 1 and gaps[0]["segment"] == "3" and gaps[0]["seq2"] == "2", gaps
PY
        ;;
    torn_append)
        python3 - "$T/offline.json" "$T/torn.json" <<'PY' || fail "no WAL_CORRUPT at the torn frame"
import json, sys
fs = json.load(open(sys.argv[1]))["findings"]
t = json.load(open(sys.argv[2]))
bad = [f for f in fs if f["check"] == "WAL_CORRUPT"]
assert len(bad) == 1, bad
assert bad[0]["segment"] == str(t["segment"]) and bad[0]["offset"] == str(t["offset"]), (bad, t)
PY
        ;;
    tallyd_restart)
        # The second run: the same log, read again from its start.
        appender "$T/empty" "$T/engine2.out" 2500
        start_tallyd
        wait_exit "$ENGINE_PID" 60 || fail "the appender did not finish"
        stop_tallyd
        python3 "$HERE/check_xwal1.py" --audit-dir "$T/state/audit" --offline "$T/offline.json" \
            --engine "$T/engine2.out" --expect '{"actions":[]}' --run 2
        ;;
esac
