#!/usr/bin/env bash
# run_ledger.sh CASE: the settlement ledger (ledger.md) end to end, three
# processes: tally-enginesim, tally-ledgersim (tailing the engine's WAL,
# consuming only what the ring says is durable) and tallyd polling the
# ledger's watermark every 20 ms. Each ledger fault must give its check, its
# class and exactly the action of behavior.md's table at the engine's admin
# socket (tests/integration/check.py):
#   clean        lag below T2: no finding, no action; watermarks compared;
#                then tallyctl reconcile over the log: CONSISTENT, ledger
#                consistent at the current watermark
#   lag          --lag-ms 1500 > T3 (1000): SETTLEMENT_LAG -> SOFT_HALT on *
#   double_post  LEDGER_DOUBLE_POSTING (dup) -> CANCEL_ONLY on the trade's
#                symbol + withdrawals_halt; then tallyctl reconcile: MISMATCH
#                (exit 1), LEDGER_DOUBLE_POSTING at the current watermark
#   miss_post    LEDGER_MISSING_POSTING (missing), the same on its symbol
#   ahead        LEDGER_AHEAD (dup) -> CANCEL_ONLY on * + withdrawals_halt
#   rewind       LEDGER_REWIND (out_of_order) -> CANCEL_ONLY on * + withdrawals_halt
#   fork         the ledger follows another engine's log (--fork-log):
#                LEDGER_FORK (out_of_order) -> CANCEL_ONLY on * + withdrawals_halt
#   https        HTTPS with a self-signed certificate (ledger.ca_file) and a
#                mac'd ledger with the right key: clean, watermarks compared
#   badmac       a mac'd ledger, tally holding another key: every reply
#                rejected, no state change, LEDGER_STALE (degraded), no action
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LEDGERSIM="$TL_BUILD/bench/tally-ledgersim"
kind=$1
S=30000 # the faulty seq: ~1.5 s into a 20000 records/s run
RATE=20000
SECS=4

CO='["set_symbol_mode","*","CANCEL_ONLY"]'
WH='["withdrawals_halt","*",null]'
SH='["set_symbol_mode","*","SOFT_HALT"]'

make_keys
head -c 32 /dev/urandom > "$T/ledger.key"; chmod 600 "$T/ledger.key"
head -c 32 /dev/urandom > "$T/other.key"; chmod 600 "$T/other.key"
mkdir -p "$T/wal"

lflags=(--wal "$T/wal" --ring "$RING" --port-file "$T/ledger.port" --stats)
scheme=http
ledger_key=""
ca=""
case $kind in
    clean)       ;;
    lag)         lflags+=(--lag-ms 1500) ;;
    double_post) lflags+=(--double-post $S) ;;
    miss_post)   lflags+=(--miss-post $S) ;;
    ahead)       lflags+=(--ahead 1000) ;;
    rewind)      lflags+=(--rewind-at $S) ;;
    fork)        lflags+=(--fork-log "$T/walb") ;;
    https)
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" \
            -days 1 -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            >/dev/null 2>&1 || fail "openssl could not make a certificate"
        lflags+=(--tls "$T/tls.crt" "$T/tls.key" --key "$T/ledger.key")
        scheme=https
        ledger_key="$T/ledger.key"
        ca="$T/tls.crt"
        ;;
    badmac)
        lflags+=(--key "$T/ledger.key")
        ledger_key="$T/other.key"
        ;;
    *) fail "unknown case $kind" ;;
esac

if [ "$kind" = fork ]; then
    # The other log: another engine (another seed), started first so that
    # its log runs ahead of ours; the ledger keeps to our engine's progress.
    "$ENGINESIM" --ring "$T/ringb" --wal "$T/walb" --seed 7 --rate $RATE \
        --seconds $((SECS + 2)) --segment-bytes 4M --ring-capacity 4M --deadman 0 --quiet \
        >> "$T/engineb.out" 2>> "$T/engineb.err" &
    PIDS+=("$!")
    wait_for 5 test -d "$T/walb" || fail "the second engine did not start"
    sleep 0.3
fi

"$LEDGERSIM" "${lflags[@]}" > "$T/ledger.out" 2> "$T/ledger.err" &
LEDGER_PID=$!
PIDS+=("$LEDGER_PID")
wait_for 5 test -s "$T/ledger.port" || fail "the ledger did not start"
port=$(cat "$T/ledger.port")

keys="{\"sidecar\":\"$T/sidecar.key\"${ledger_key:+,\"ledger\":\"$ledger_key\"}}"
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":$keys,
 "control":{"socket":"$T/tally.sock","listen":""},
 "ledger":{"url":"$scheme://127.0.0.1:$port/v1/watermark","poll_ms":20,"timeout_ms":200,
           "max_age_ms":1000,"lag_throttle_ms":300,"lag_halt_ms":1000${ca:+,\"ca_file\":\"$ca\"}}}
JSON

# reconcile_ledger RC OUTCOME CHECK: `tallyctl reconcile` over the whole
# retained log exits RC, its result's ledger object says OUTCOME, and CHECK
# (if any) is among its findings; the table for people says it too.
reconcile_ledger() {
    local ctl="$TL_BUILD/admin/tallyctl" first rc=0
    first=$(ls "$T/wal" | grep -E '^[0-9]+[.]wal$' | sort | head -n 1)
    [ -n "$first" ] || fail "no segment in $T/wal"
    first=$((10#${first%.wal}))
    "$ctl" --socket "$T/tally.sock" --json reconcile --from "$first" --to 1000000000000 \
        > "$T/reconcile.json" || rc=$?
    [ "$rc" -eq "$1" ] || fail "tallyctl reconcile exited $rc, not $1: $(cat "$T/reconcile.json")"
    python3 - "$T/reconcile.json" "$2" "$3" <<'PY' || fail "reconcile: $(cat "$T/reconcile.json")"
import json, sys
r = json.load(open(sys.argv[1]))
led, want, check = r["ledger"], sys.argv[2], sys.argv[3]
assert led["outcome"] == want, led
assert int(led["ledger_seq"]) > 50000, led  # the watermark of the (nearly) whole run
assert r["status"] == ("MISMATCH" if want == "mismatch" else "CONSISTENT"), r["status"]
if check:
    assert led["check"] == check and r["by_check"].get(check, 0) >= 1, r
else:
    assert led["totals"] == "agree" and r["mismatch_findings"] == 0, r
    assert led["ours"]["trades"] == led["watermark"]["trades"], led
PY
    rc=0
    "$ctl" --socket "$T/tally.sock" reconcile --from "$first" --to 1000000000000 \
        > "$T/reconcile.txt" || rc=$?
    [ "$rc" -eq "$1" ] || fail "tallyctl reconcile (table) exited $rc, not $1"
    grep -q "ledger: $2 at ledger_seq" "$T/reconcile.txt" \
        || fail "the table does not show the ledger: $(cat "$T/reconcile.txt")"
}

start_engine --rate $RATE --seconds $SECS --segment-bytes 4M --ring-capacity 4M
wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
start_tallyd
wait_exit "$ENGINE_PID" $((SECS + 20)) || fail "the engine did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
sleep 0.5
case $kind in
    # POST /reconcile through tallyctl, tallyd and the ledger still running:
    # the ledger at its current watermark (the engine has stopped, so the
    # ledger has caught up with the whole log).
    clean)       reconcile_ledger 0 consistent "" ;;
    double_post) reconcile_ledger 1 mismatch LEDGER_DOUBLE_POSTING ;;
esac
stop_tallyd
kill -TERM "$LEDGER_PID" 2>/dev/null || true
wait_exit "$LEDGER_PID" 20 || fail "the ledger did not stop on SIGTERM"
[ "$WAIT_RC" -eq 0 ] || fail "the ledger exited $WAIT_RC"

# What the ledger did, and what tally compared (the audit's STOP line).
fault_name() { python3 - "$T/ledger.out" "$1" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if l.startswith("{") and json.loads(l).get("fault") == sys.argv[2]:
        print(json.loads(l).get("name", "")); break
PY
}
stop_field() { python3 - "$T" "$1" <<'PY'
import glob, json, sys
stop = [json.loads(l) for f in glob.glob(sys.argv[1] + "/state/audit/audit*.jsonl")
        for l in open(f) if '"event":"STOP"' in l][-1]
print(int(stop.get(sys.argv[2], -1)))
PY
}

case $kind in
    clean|https)
        check_run '{"findings":[],"actions":[]}'
        [ "$(stop_field ledger_compared)" -gt 50 ] || fail "tally compared too few watermarks"
        [ "$(stop_field ledger_rejected)" -eq 0 ] || fail "tally rejected replies"
        ;;
    lag)
        check_run '{"findings":[["SETTLEMENT_LAG","delay"]],"actions":['$SH']}'
        ;;
    double_post|miss_post)
        name=$(fault_name "$kind")
        [ -n "$name" ] || fail "the ledger did not inject $kind"
        check=LEDGER_DOUBLE_POSTING; cls=dup
        [ "$kind" = miss_post ] && { check=LEDGER_MISSING_POSTING; cls=missing; }
        check_run '{"findings":[["'$check'","'$cls'"]],"actions":[["set_symbol_mode","'"$name"'","CANCEL_ONLY"],'$WH']}'
        ;;
    ahead)
        check_run '{"findings":[["LEDGER_AHEAD","dup"]],"actions":['$CO','$WH']}'
        ;;
    rewind)
        grep -q '"fault":"rewind"' "$T/ledger.out" || fail "the ledger did not rewind"
        check_run '{"findings":[["LEDGER_REWIND","out_of_order"]],"actions":['$CO','$WH']}'
        ;;
    fork)
        check_run '{"findings":[["LEDGER_FORK","out_of_order"]],"actions":['$CO','$WH']}'
        ;;
    badmac)
        check_run '{"findings":[],"actions":[],"info":["LEDGER_STALE"]}'
        [ "$(stop_field ledger_compared)" -eq 0 ] || fail "a reply with a bad mac was compared"
        [ "$(stop_field ledger_replies)" -eq 0 ] || fail "a reply with a bad mac reached the loop"
        [ "$(stop_field ledger_rejected)" -gt 50 ] || fail "replies were not rejected"
        grep -q "replies rejected: mac_bad" "$T/tallyd.err" || fail "no mac_bad in tallyd's log"
        ;;
esac
echo "ok: ledger $kind"
