#!/usr/bin/env bash
# run_lease.sh CASE: the lease authority (ledger.md "Lease authority: etcd
# v3") end to end with real processes: Debian's etcd on 127.0.0.1 (free
# ports, a temporary data dir, stopped by pid), tally-enginesim electing its
# leader through etcd (--etcd: a put under a lease, fence = mod_revision),
# and tallyd polling the leader key every 50 ms. Judged from the audit log
# and the engine's stats (tests/integration/check.py):
#   stale     the leader is cut off from etcd (SIGUSR1) and, with
#             --lease-stale, keeps writing after its lease expired:
#             STALE_LEADER (out_of_order) -> HARD_HALT on * + withdrawals_halt
#   unknown   tally reads an etcd restored from an old backup (a snapshot
#             taken before the engine's winning put, restored into a second
#             etcd that has since gone on taking writes): the key's
#             mod_revision is below the fence the engine writes with, and the
#             reading's revision is past it: UNKNOWN_LEASE -> HARD_HALT
#   unreachable  etcd is killed: LEASE_UNREACHABLE (degraded), /capabilities
#             names it, no action (the engine, unable to keep its lease,
#             stops at its local deadline: an honest leader)
#   failover  the leader is cut off from etcd and stops before its lease
#             expires; a standby (--standby, following its WAL) wins the key,
#             writes LEADER_CHANGE{the put's revision} and leads: no SEV
#             finding and no action at either tally
#   failover_race  the same failover, but the standby's tally reads etcd
#             through etcd_lag_proxy.py, held (the last reply replayed, as a
#             lagging member answers) from before the leader is cut off until
#             the standby has led for a second: tally reads the
#             LEADER_CHANGE and the new fence's records before any reading
#             with H >= that fence. ledger.md's race rule (H < fence: read
#             again) must hold it back: no finding, no action, and
#             lease_inconclusive > 0 at the standby's tally proves the rule
#             ran (without it: UNKNOWN_LEASE -> HARD_HALT)
#   stale_standby  the leader is cut off and keeps writing (--lease-stale);
#             the standby wins the key: another holder at a higher revision.
#             STALE_LEADER (lease_other_holder) -> HARD_HALT at the old
#             leader's engine (grace_ms 1000 there, so the judgement waits
#             until the standby's put is read, not the key's absence)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
KEY=/exchange/it/leader
HH='["set_symbol_mode","*","HARD_HALT"]'
WH='["withdrawals_halt","*",null]'

free_ports() { python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# start_etcd NAME: etcd on free ports, data in $T/NAME; sets ETCD_URL, ETCD_PID
start_etcd() {
    local name=$1 ports c p
    ports=$(free_ports 2); c=${ports% *}; p=${ports#* }
    ETCD_URL="http://127.0.0.1:$c"
    etcd --name "$name" --data-dir "$T/$name" --listen-client-urls "$ETCD_URL" \
        --advertise-client-urls "$ETCD_URL" --listen-peer-urls "http://127.0.0.1:$p" \
        --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "$name=http://127.0.0.1:$p" >> "$T/$name.log" 2>&1 &
    ETCD_PID=$!
    PIDS+=("$ETCD_PID")
    wait_for 10 curl -sf "$ETCD_URL/health" || fail "etcd $name did not start"
}

b64() { printf '%s' "$1" | base64 -w0; }
# etcd_put URL KEY VALUE: a plain put through the JSON gateway
etcd_put() {
    curl -sf "$1/v3/kv/put" -d "{\"key\":\"$(b64 "$2")\",\"value\":\"$(b64 "$3")\"}" >/dev/null
}
# etcd_range URL KEY: the raw range reply
etcd_range() { curl -sf "$1/v3/kv/range" -d "{\"key\":\"$(b64 "$2")\"}"; }

# tally_config FILE STATE RING WAL ADMIN SOCK LEASE_URL [GRACE_MS]
tally_config() {
    cat > "$1" <<JSON
{"engine":{"ring":"$3","wal_dir":"$4","admin_socket":"$5"},
 "idle":"backoff","mlock":false,"state_dir":"$2","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},
 "control":{"socket":"$6","listen":""},
 "lease":{"endpoint":"$7","key":"$KEY","poll_ms":50,"timeout_ms":200,"grace_ms":${8:-200}}}
JSON
}

start_tally() { # CONFIG ERRFILE: sets TPID
    "$TALLYD" --config "$1" >> "$2.out" 2>> "$2" &
    TPID=$!
    PIDS+=("$TPID")
}

stop_pid() { # PID NAME
    kill -TERM "$1" 2>/dev/null || true
    wait_exit "$1" 20 || fail "$2 did not stop on SIGTERM"
    [ "$WAIT_RC" -eq 0 ] || fail "$2 exited $WAIT_RC"
}

lease_stop_field() { python3 - "$1" "$2" <<'PY'
import glob, json, sys
stop = [json.loads(l) for f in glob.glob(sys.argv[1] + "/audit/audit*.jsonl")
        for l in open(f) if '"event":"STOP"' in l][-1]
print(int(stop.get(sys.argv[2], -1)))
PY
}

make_keys
mkdir -p "$T/wal"
ENGINE_ID=0123456789abcdef0123456789abcdef
printf '%s\n' "$ENGINE_ID" > "$T/wal/engine_id" # the engine's id, known to the test

start_etcd e1
E1=$ETCD_URL
E1_PID=$ETCD_PID
tally_url=$E1
eflags=(--etcd "$E1" --lease-key "$KEY" --lease-ttl 2 --rate 2000 --segment-bytes 4M
        --ring-capacity 4M --heartbeat-ms 20)

case $kind in
    stale) eflags+=(--lease-stale --seconds 8) ;;
    unknown)
        # The engine's previous term (revision 2), then the backup.
        etcd_put "$E1" "$KEY" "$ENGINE_ID"
        ETCDCTL_API=3 etcdctl --endpoints="$E1" snapshot save "$T/backup.db" >/dev/null 2>&1 ||
            fail "etcdctl snapshot save"
        for i in $(seq 1 10); do etcd_put "$E1" "/other/$i" x; done
        eflags+=(--seconds 5)
        ;;
    unreachable) eflags+=(--seconds 6) ;;
    failover|failover_race) eflags+=(--seconds 9) ;;
    stale_standby) eflags+=(--lease-stale --seconds 9) ;;
    *) fail "unknown case $kind" ;;
esac

start_engine "${eflags[@]}"
wait_for 10 test -S "$T/admin.sock" || fail "the engine did not start"
grep -q "lease: leader $ENGINE_ID" "$T/engine.err" || fail "the engine did not win the lease"
fence=$(sed -n 's/.*lease: leader [0-9a-f]* of .* with fence \([0-9]*\).*/\1/p' "$T/engine.err" | head -1)

if [ "$kind" = unknown ]; then
    # The authority restored from the backup: the key at revision 2, and
    # writes since, so the reading's revision passes the engine's fence.
    ports=$(free_ports 2); c=${ports% *}; p=${ports#* }
    ETCDCTL_API=3 etcdctl snapshot restore "$T/backup.db" --data-dir "$T/e2" --name e2 \
        --initial-cluster "e2=http://127.0.0.1:$p" \
        --initial-advertise-peer-urls "http://127.0.0.1:$p" >/dev/null 2>&1 ||
        fail "etcdctl snapshot restore"
    E2="http://127.0.0.1:$c"
    etcd --name e2 --data-dir "$T/e2" --listen-client-urls "$E2" --advertise-client-urls "$E2" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "e2=http://127.0.0.1:$p" >> "$T/e2.log" 2>&1 &
    PIDS+=("$!")
    wait_for 10 curl -sf "$E2/health" || fail "the restored etcd did not start"
    for i in $(seq 1 $((fence + 2))); do etcd_put "$E2" "/later/$i" y; done
    etcd_range "$E2" "$KEY" | grep -q '"mod_revision":"2"' || fail "the backup lacks the old key"
    tally_url=$E2
fi

grace=200
[ "$kind" = stale_standby ] && grace=1000
tally_config "$T/tally.json" "$T/state" "$RING" "$T/wal" "$T/admin.sock" "$T/tally.sock" \
    "$tally_url" "$grace"

if [ "$kind" = failover ] || [ "$kind" = failover_race ] || [ "$kind" = stale_standby ]; then
    # The standby, its own ring, WAL and admin socket, under its own tallyd.
    RINGB="${RING}b"
    "$ENGINESIM" --standby --leader-wal "$T/wal" --leader-ring "$RING" --ring "$RINGB" \
        --wal "$T/walb" --admin-socket "$T/adminb.sock" --sidecar-key "$T/sidecar.key" \
        --rate 2000 --heartbeat-ms 20 --segment-bytes 4M --ring-capacity 4M --seconds 8 --stats \
        --etcd "$E1" --lease-key "$KEY" --lease-ttl 2 \
        > "$T/standby.out" 2> "$T/standby.err" &
    SB_PID=$!
    PIDS+=("$SB_PID")
    wait_for 10 test -S "$T/adminb.sock" || fail "the standby did not start"
fi
if [ "$kind" = failover ] || [ "$kind" = failover_race ]; then
    tb_url=$E1
    if [ "$kind" = failover_race ]; then
        python3 "$HERE/etcd_lag_proxy.py" --etcd "$E1" --port-file "$T/proxy.port" \
            --hold-file "$T/proxy.hold" 2> "$T/proxy.err" &
        PIDS+=("$!")
        wait_for 10 test -s "$T/proxy.port" || fail "the lag proxy did not start"
        tb_url="http://127.0.0.1:$(cat "$T/proxy.port")"
    fi
    tally_config "$T/tallyb.json" "$T/stateb" "$RINGB" "$T/walb" "$T/adminb.sock" "$T/tallyb.sock" \
        "$tb_url"
    start_tally "$T/tallyb.json" "$T/tallyb.err"
    TB_PID=$TPID
fi
start_tally "$T/tally.json" "$T/tallyd.err"
TALLYD_PID=$TPID
wait_for 10 test -S "$T/tally.sock" || fail "tallyd did not start"
sleep 1.2 # tally attached and reading the lease

case $kind in
    stale|failover|stale_standby) kill -USR1 "$ENGINE_PID" ;; # cut the leader off from etcd
    unreachable) kill -KILL "$E1_PID" ;;
    failover_race)
        # The standby's tally now reads a store that stopped before the cut
        # (holder: the leader, H below every later put) ...
        touch "$T/proxy.hold"
        kill -USR1 "$ENGINE_PID"
        wait_for 15 grep -q "won the lease: LEADER_CHANGE to fence" "$T/standby.err" ||
            fail "the standby did not win the lease"
        # ... while it reads the LEADER_CHANGE and a second of records with
        # the new fence; then the authority catches up.
        sleep 1
        rm -f "$T/proxy.hold"
        ;;
esac

wait_exit "$ENGINE_PID" 30 || fail "the engine did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
if [ "$kind" = unreachable ]; then
    caps=$(curl -sf --unix-socket "$T/tally.sock" http://tally/capabilities) ||
        fail "no /capabilities"
    grep -q 'degraded_reason":"[^"]*lease' <<< "$caps" || fail "not degraded by the lease: $caps"
    grep -q '"lease":{[^}]*"state":"unreachable"' <<< "$caps" || fail "lease input: $caps"
    metrics=$(curl -sf --unix-socket "$T/tally.sock" http://tally/metrics) || fail "no /metrics"
    grep -q '^tally_last_snapshot_age_seconds{input="lease"}' <<< "$metrics" ||
        fail "no lease snapshot age"
    grep -q '^tally_lease_unreachable 1' <<< "$metrics" || fail "tally_lease_unreachable is not 1"
fi
if [ "$kind" = failover ] || [ "$kind" = failover_race ] || [ "$kind" = stale_standby ]; then
    wait_exit "$SB_PID" 30 || fail "the standby did not finish"
    [ "$WAIT_RC" -eq 0 ] || fail "the standby exited $WAIT_RC"
fi
if [ "$kind" = failover ] || [ "$kind" = failover_race ]; then
    stop_pid "$TB_PID" "the standby's tallyd"
fi
sleep 0.3
stop_pid "$TALLYD_PID" tallyd

readings=$(lease_stop_field "$T/state" lease_readings)
[ "$kind" = unreachable ] || [ "$readings" -gt 20 ] || fail "tally took only $readings readings"
case $kind in
    stale)
        grep -q "fault lease_stale: still writing" "$T/engine.err" || fail "the engine never lost its lease"
        check_run '{"findings":[["STALE_LEADER","out_of_order"]],"actions":['$HH','$WH']}'
        ;;
    unknown)
        check_run '{"findings":[["UNKNOWN_LEASE","out_of_order"]],"actions":['$HH','$WH']}'
        ;;
    unreachable)
        grep -q "lease: lost (deadline): no longer leading" "$T/engine.err" ||
            fail "the engine did not stop at its deadline"
        check_run '{"findings":[],"actions":[],"info":["LEASE_UNREACHABLE"]}'
        [ "$(lease_stop_field "$T/state" lease_failed)" -gt 3 ] || fail "no failed readings"
        ;;
    stale_standby)
        grep -q "fault lease_stale: still writing" "$T/engine.err" || fail "the engine never lost its lease"
        grep -q "won the lease: LEADER_CHANGE to fence" "$T/standby.err" ||
            fail "the standby did not win the lease"
        check_run '{"findings":[["STALE_LEADER","out_of_order"]],"actions":['$HH','$WH']}'
        grep -h '"check":"STALE_LEADER"' "$T"/state/audit/audit*.jsonl |
            grep -q '"reason":"lease_other_holder"' || fail "STALE_LEADER not for another holder"
        ;;
    failover|failover_race)
        grep -q "lease: lost (deadline): no longer leading" "$T/engine.err" ||
            fail "the leader did not stop at its deadline"
        grep -q "won the lease: LEADER_CHANGE to fence" "$T/standby.err" ||
            fail "the standby did not win the lease"
        python3 - "$T/standby.out" <<'PY' || fail "the standby did not lead"
import json, sys
st = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]
assert st["state"] == "promoted" and st["own_records"] > 100, st
PY
        check_run '{"findings":[],"actions":[]}'
        python3 "$HERE/check.py" --audit-dir "$T/stateb/audit" --engine-stats "$T/standby.out" \
            --expect '{"findings":[],"actions":[]}'
        [ "$(lease_stop_field "$T/stateb" lease_readings)" -gt 20 ] || fail "tally B read too little"
        if [ "$kind" = failover_race ]; then
            inc=$(lease_stop_field "$T/stateb" lease_inconclusive)
            [ "$inc" -gt 0 ] || fail "the race rule never ran at tally B (lease_inconclusive $inc)"
            echo "tally B deferred $inc judgements (H below the new fence)"
        fi
        ;;
esac
echo "ok: lease $kind"
