#!/usr/bin/env bash
# run_webhook.sh CASE: alert webhooks (behavior.md "Action table", issue 4.6)
# end to end: a real fault at a real engine, tallyd halting it, and real HTTP
# receivers in their own processes (hook_receiver.py):
#   tally         webhooks.format "tally"; three URLs: a receiver that takes
#                 everything, one that answers 500 to the first attempt of
#                 every message (retries with backoff), and a dead one
#                 (nothing listens). Each live receiver gets every SEV1/SEV2
#                 finding and every action event exactly once, in the audit
#                 log's order; the dead one holds nothing up: the halt is
#                 applied as usual and its deliveries are only counted.
#   alertmanager  webhooks.format "alertmanager", a slow receiver (300 ms a
#                 request): Alertmanager-shaped arrays, in order, once each.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
S=20000
HH='["set_symbol_mode","*","HARD_HALT"]'
WH='["withdrawals_halt","*",null]'

start_receiver() { # NAME [flags]: sets RPORT
    local name=$1; shift
    python3 "$HERE/hook_receiver.py" --port-file "$T/$name.port" --log "$T/$name.jsonl" "$@" \
        2>> "$T/$name.err" &
    PIDS+=("$!")
    wait_for 5 test -s "$T/$name.port" || fail "receiver $name did not start"
    RPORT=$(cat "$T/$name.port")
}

make_keys
case $kind in
    tally)
        start_receiver ok;    P1=$RPORT
        start_receiver flaky --fail-first; P2=$RPORT
        dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        urls="\"http://127.0.0.1:$P1/hook\",\"http://127.0.0.1:$P2/hook\",\"http://127.0.0.1:$dead/hook\""
        receivers="ok flaky"
        ;;
    alertmanager)
        start_receiver slow --slow-ms 300; P1=$RPORT
        urls="\"http://127.0.0.1:$P1/api/v2/alerts\""
        receivers="slow"
        ;;
    *) fail "unknown case $kind" ;;
esac
write_config "\"webhooks\":{\"urls\":[$urls],\"format\":\"$kind\",\"queue\":64,\"timeout_ms\":1000}"

start_engine --rate 20000 --seconds 3 --segment-bytes 4M --ring-capacity 4M --fault "fence_regress@$S"
wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
start_tallyd
wait_exit "$ENGINE_PID" 30 || fail "the engine did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
sleep 1.5 # the retries' backoff
stop_tallyd
check_run '{"findings":[["FENCE_REGRESSION","out_of_order"]],"actions":['$HH','$WH']}'

python3 - "$T" "$kind" $receivers <<'PY' || fail "the alerts did not arrive as they must"
import glob, json, sys
T, kind, names = sys.argv[1], sys.argv[2], sys.argv[3:]
audit = [json.loads(l) for f in sorted(glob.glob(T + "/state/audit/audit*.jsonl")) for l in open(f)]
# What must arrive, in order: SEV1/SEV2 findings and action events.
want = []
for l in audit:
    e = l["event"]
    if e == "FINDING" and l["finding"]["severity"] in ("SEV1", "SEV2"):
        want.append(("finding", l["finding"]["check"], l["finding"]["id"]))
    elif e in ("PLANNED", "BLOCKED", "EXECUTED", "APPLIED", "FAILED"):
        want.append((e, l["action"]["cmd"], l["action"]["id"]))
assert len(want) >= 7, want  # 1 finding + 2 commands x PLANNED, EXECUTED, APPLIED
for name in names:
    got = []
    lines = [json.loads(l) for l in open(T + "/" + name + ".jsonl")]
    for r in lines:
        assert not r.get("bad"), r
        b = r["body"]
        if kind == "tally":
            if b["type"] == "finding":
                got.append(("finding", b["finding"]["check"], b["finding"]["id"]))
            else:
                a = b["action"]
                assert b["state"] == a["state"]
                got.append((b["state"], a["cmd"], a["id"]))
            assert len(b["instance"]) == 32, b
        else:
            assert isinstance(b, list) and len(b) == 1, b
            al = b[0]
            lab, ann = al["labels"], al["annotations"]
            for k in ("alertname", "severity", "class", "scope", "instance", "event"):
                assert k in lab, (k, al)
            assert al["startsAt"].endswith("Z") and "T" in al["startsAt"], al
            d = json.loads(ann["description"])
            assert ann["summary"], al
            if lab["event"] == "finding":
                assert lab["alertname"] == d["check"] and lab["severity"] == d["severity"], al
                got.append(("finding", d["check"], d["id"]))
            else:
                assert lab["state"] == d["state"] and lab["alertname"] == d["check"], al
                got.append((d["state"], d["cmd"], d["id"]))
    assert got == want, (name, got, want)
    if name == "flaky":
        # every message failed once, then came on its retry
        assert all(r["attempt"] == 2 for r in lines), lines
print("alerts: %d messages at %s, in order, once each" % (len(want), ",".join(names)))
PY
grep -q "tallyd: webhooks: sent" "$T/tallyd.err" || fail "no webhook summary"
case $kind in
    tally)
        # 2 live receivers x N delivered; the flaky one retried each; the dead one dropped nothing
        # it could still deliver within the queue, and was retried with backoff.
        line=$(grep "tallyd: webhooks:" "$T/tallyd.err")
        python3 - "$line" <<'PY' || fail "webhook counters: $line"
import re, sys
v = dict((k, int(n)) for k, n in re.findall(r"(\w+) (\d+)", sys.argv[1]))
assert v["sent"] >= 14 and v["sent"] % 2 == 0, v
assert v["retried"] >= v["sent"] // 2, v   # the flaky receiver's retries, and the dead URL's
assert v["failed"] >= v["sent"] // 2, v
PY
        ;;
esac
echo "ok: webhook $kind"
