#!/usr/bin/env bash
# run_peer.sh KIND: a leader engine and a standby engine (tally-enginesim
# --standby, following the leader's WAL), each with its own tallyd, the two
# tallyds exchanging TLYPEER1 datagrams over UDP on 127.0.0.1 through a
# proxy (peer_proxy.py) that can lose datagrams and inject forged ones.
#
#   clean             20% of the datagrams lost both ways: no SEV finding, no
#                     action, and both tallies compared what they received; tallyctl
#                     reconcile at the leader's tally: peers consistent at
#                     the last common checkpoint
#   nondeterministic  the standby's matching differs: its CHECKPOINT state
#                     hash diverges; both tallies see STATE_HASH_DIVERGENCE
#                     and send HARD_HALT (the leader applies it; the standby,
#                     whose log is the leader's, takes it without a record); tallyctl
#                     reconcile at the leader's tally: MISMATCH (exit 1), the
#                     standby's hash diverges at the last common checkpoint
#   promote           the standby promotes itself while the leader lives:
#                     the leader's tally sees DUAL_LEADER and halts it; the
#                     standby's tally sees a stale peer leader (SEV2 alert)
#   inject            spoofed (bad mac), replayed, unknown-node and malformed
#                     datagrams injected both ways: none accepted, each
#                     counted under its reason, no finding, no action
#   restart           the standby's tallyd restarts mid-run; then datagrams
#                     it accepted before the restart arrive again: all are
#                     replays (the counters persisted in its state_dir)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
RATE=20000
SECS=4
S=30000 # the faulty seq: ~1.5 s in
LR="${RING}L"
SR="${RING}S"
PROXY_PID=""

peer_cleanup() {
    local rc=$?
    [ -n "$PROXY_PID" ] && kill -TERM "$PROXY_PID" 2>/dev/null || true
    rm -f "/dev/shm/tally.$LR" "/dev/shm/tally.$SR"
    if [ $rc -ne 0 ]; then
        echo "---- standby tallyd stderr (tail)"; tail -n 30 "$T/tallyd_s.err" 2>/dev/null || true
        echo "---- standby engine stderr (tail)"; tail -n 10 "$T/standby.err" 2>/dev/null || true
    fi
    (exit $rc)
    cleanup
}
trap peer_cleanup EXIT

make_keys
head -c 32 /dev/urandom > "$T/peer.key"; chmod 600 "$T/peer.key"

# Four free UDP ports: the tallies' and the proxy's two.
read -r PL PS PXL PXS < <(python3 -c '
import socket
s=[socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')

sb_fault=()
proxy_args=()
case $kind in
    clean)            proxy_args=(--drop 0.2) ;;
    nondeterministic) sb_fault=(--fault "nondeterministic@$S") ;;
    promote)          sb_fault=(--fault "promote@$S" --rate 5000) ;;
    inject)           proxy_args=(--inject spoof,replay,unknown,malformed) ;;
    restart)          ;;
    *) fail "unknown kind $kind" ;;
esac

# The leader (its files are lib.sh's: engine.out, tallyd.*), then the
# standby on the leader's WAL.
"$ENGINESIM" --ring "$LR" --wal "$T/lwal" --admin-socket "$T/ladmin.sock" \
    --sidecar-key "$T/sidecar.key" --operator-key "$T/operator.key" --stats \
    --rate $RATE --seconds $SECS --segment-bytes 1M --ring-capacity 4M --checkpoint-every 500 \
    > "$T/engine.out" 2> "$T/engine.err" &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
wait_for 5 test -s "$T/lwal/engine_id" || fail "the leader did not start"
"$ENGINESIM" --standby --leader-wal "$T/lwal" --leader-ring "$LR" --ring "$SR" \
    --wal "$T/swal" --admin-socket "$T/sadmin.sock" --sidecar-key "$T/sidecar.key" --stats \
    --seconds $((SECS + 3)) --segment-bytes 1M --ring-capacity 4M "${sb_fault[@]}" \
    > "$T/standby.out" 2> "$T/standby.err" &
STANDBY_PID=$!
PIDS+=("$STANDBY_PID")
wait_for 5 test -s "$T/swal/engine_id" || fail "the standby did not start"
wait_for 5 test -S "$T/sadmin.sock" || fail "the standby's admin socket is missing"
LID=$(head -c 32 "$T/lwal/engine_id")
SID=$(head -c 32 "$T/swal/engine_id")

# tally_config NAME RING WAL ADMIN LISTEN_PORT PEER_ID PEER_PORT
tally_config() {
    cat > "$T/$1.json" <<JSON
{"engine":{"ring":"$2","wal_dir":"$3","admin_socket":"$4"},
 "idle":"backoff","mlock":false,"state_dir":"$T/$1.state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key","peer":"$T/peer.key"},
 "control":{"socket":"$T/$1.sock","listen":""},
 "peer":{"listen":"127.0.0.1:$5","silent_ms":1000,
         "peers":[{"node_id":"$6","addr":"127.0.0.1:$7","key_file":"$T/peer.key"}]}}
JSON
}
tally_config tl "$LR" "$T/lwal" "$T/ladmin.sock" "$PL" "$SID" "$PXS"
tally_config ts "$SR" "$T/swal" "$T/sadmin.sock" "$PS" "$LID" "$PXL"

python3 "$HERE/peer_proxy.py" --route "$PXL:$PL" --route "$PXS:$PS" --key "$T/peer.key" \
    --summary "$T/proxy.json" "${proxy_args[@]}" 2> "$T/proxy.err" &
PROXY_PID=$!

"$TALLYD" --config "$T/tl.json" > "$T/tallyd.out" 2>> "$T/tallyd.err" &
TALLYD_PID=$!
PIDS+=("$TALLYD_PID")
"$TALLYD" --config "$T/ts.json" > "$T/tallyd_s.out" 2>> "$T/tallyd_s.err" &
TALLYD_S_PID=$!
PIDS+=("$TALLYD_S_PID")

if [ "$kind" = restart ]; then
    sleep 1.5
    kill -TERM "$TALLYD_S_PID"
    wait_exit "$TALLYD_S_PID" 20 || fail "the standby's tallyd did not stop"
    [ "$WAIT_RC" -eq 0 ] || fail "the standby's tallyd exited $WAIT_RC"
    grep -qE "^self [0-9]+$" "$T/ts.state/peer_counters" || fail "no persisted send counter"
    grep -qE "^$LID [0-9]+$" "$T/ts.state/peer_counters" || fail "no persisted peer counter"
    "$TALLYD" --config "$T/ts.json" > "$T/tallyd_s.out" 2>> "$T/tallyd_s.err" &
    TALLYD_S_PID=$!
    PIDS+=("$TALLYD_S_PID")
    sleep 0.5
    kill -USR1 "$PROXY_PID" # what the old tallyd accepted, again
    sleep 0.5
fi

wait_exit "$ENGINE_PID" $((SECS + 20)) || fail "the leader did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the leader exited $WAIT_RC"
wait_exit "$STANDBY_PID" 20 || fail "the standby did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the standby exited $WAIT_RC"
# POST /reconcile at the leader's tallyd (both tallies still running): its
# WAL's CHECKPOINT at the last checkpoint the standby reported, against the
# standby's state hash there. reconcile_peers RC OUTCOME
reconcile_peers() {
    local ctl="$TL_BUILD/admin/tallyctl" first rc=0
    first=$(ls "$T/lwal" | grep -E '^[0-9]+[.]wal$' | sort | head -n 1)
    [ -n "$first" ] || fail "no segment in $T/lwal"
    first=$((10#${first%.wal}))
    "$ctl" --socket "$T/tl.sock" --json reconcile --from "$first" --to 1000000000000 \
        > "$T/reconcile.json" || rc=$?
    [ "$rc" -eq "$1" ] || fail "tallyctl reconcile exited $rc, not $1: $(cat "$T/reconcile.json")"
    python3 - "$T/reconcile.json" "$2" <<'PY' || fail "reconcile: $(cat "$T/reconcile.json")"
import json, sys
r = json.load(open(sys.argv[1]))
p = r["peers"]
assert p["outcome"] == sys.argv[2], p
assert int(p["common_seq"]) > 1000 and len(p["nodes"]) == 1, p
if sys.argv[2] == "mismatch":
    assert r["by_check"].get("STATE_HASH_DIVERGENCE", 0) == 1, r
PY
}
case $kind in
    clean)            reconcile_peers 0 consistent ;;
    nondeterministic) reconcile_peers 1 mismatch ;;
esac
# The proxy first (what it sent is what the tallies got), then the tallies.
kill -TERM "$PROXY_PID"
wait "$PROXY_PID" || true
PROXY_PID=""
[ -s "$T/proxy.json" ] || fail "no proxy summary"
sleep 0.3
kill -TERM "$TALLYD_PID" "$TALLYD_S_PID"
wait_exit "$TALLYD_PID" 20 || fail "the leader's tallyd did not stop"
[ "$WAIT_RC" -eq 0 ] || fail "the leader's tallyd exited $WAIT_RC"
wait_exit "$TALLYD_S_PID" 20 || fail "the standby's tallyd did not stop"
[ "$WAIT_RC" -eq 0 ] || fail "the standby's tallyd exited $WAIT_RC"

# judge NAME STATE ENGINE_STATS PORT EXPECT
judge() {
    python3 "$HERE/check_peer.py" --name "$1" --audit-dir "$T/$2/audit" --engine-stats "$3" \
        --proxy-summary "$T/proxy.json" --port "$4" --expect "$5"
}
HH='["set_symbol_mode","*","HARD_HALT"]'
WH='["withdrawals_halt","*",null]'
ALIVE='"peer_accepted":">0","peer_compared":">0","peer_sent":">0","peer_sent_checkpoint":">0"'
NOREJ='"peer_rejected_bad_mac":"=0","peer_rejected_replay":"=0","peer_rejected_unknown_node":"=0","peer_rejected_malformed":"=0"'
case $kind in
    clean)
        judge leader tl.state "$T/engine.out" "$PL" '{"findings":[],"actions":[],"stop":{'"$ALIVE,$NOREJ"'}}'
        judge standby ts.state "$T/standby.out" "$PS" '{"findings":[],"actions":[],"stop":{'"$ALIVE,$NOREJ"'}}'
        python3 - "$T/proxy.json" <<'PY' || fail "the proxy lost nothing"
import json, sys
s = json.load(open(sys.argv[1]))
assert all(v["dropped"] > 0 and v["forwarded"] > 0 for v in s.values()), s
PY
        grep -q '"state":"following"' "$T/standby.out" || fail "the standby stopped following"
        ;;
    nondeterministic)
        judge leader tl.state "$T/engine.out" "$PL" \
            '{"findings":[["STATE_HASH_DIVERGENCE","out_of_order"]],"allowed":["STANDBY_LAG"],"actions":['"$HH,$WH"']}'
        judge standby ts.state "$T/standby.out" "$PS" \
            '{"findings":[["STATE_HASH_DIVERGENCE","out_of_order"]],"allowed":["STANDBY_LAG"],"actions":['"$HH,$WH"'],"applied":false}'
        grep -q '"state":"diverged"' "$T/standby.out" || fail "the standby did not diverge"
        ;;
    promote)
        judge leader tl.state "$T/engine.out" "$PL" \
            '{"findings":[["DUAL_LEADER","out_of_order"]],"allowed":["PEER_LOG_FORK"],"actions":['"$HH,$WH"']}'
        judge standby ts.state "$T/standby.out" "$PS" \
            '{"findings":[["STALE_PEER_LEADER","out_of_order"]],"actions":[]}'
        grep -q '"state":"promoted"' "$T/standby.out" || fail "the standby did not promote"
        ;;
    restart)
        # its last STOP line counts from the restart on
        judge standby ts.state "$T/standby.out" "$PS" \
            '{"findings":[],"actions":[],"stop":{'"$ALIVE"',"peer_rejected_replay":"=proxy:burst"}}'
        judge leader tl.state "$T/engine.out" "$PL" \
            '{"findings":[],"actions":[],"stop":{'"$ALIVE"',"peer_rejected_replay":"=proxy:burst"}}'
        ;;
    inject)
        INJ='"peer_rejected_bad_mac":"=proxy:spoof","peer_rejected_replay":"=proxy:replay","peer_rejected_unknown_node":"=proxy:unknown","peer_rejected_malformed":"=proxy:malformed"'
        judge leader tl.state "$T/engine.out" "$PL" '{"findings":[],"actions":[],"stop":{'"$ALIVE,$INJ"'}}'
        judge standby ts.state "$T/standby.out" "$PS" '{"findings":[],"actions":[],"stop":{'"$ALIVE,$INJ"'}}'
        ;;
esac
echo "run_peer $kind: ok"
