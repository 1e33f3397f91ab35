#!/usr/bin/env bash
# run_operator.sh KIND: the operator surface against real processes (the
# engine simulator and tallyd), driven with tallyctl over the control socket.
#   killswitch       POST /policy action=none, then a fork: PLANNED and
#                    BLOCKED{detect_only}, and nothing reaches the engine
#   canary_rollback  a fork halts everything; a canary resume; a recurrence
#                    (a seq gap) in the window rolls the canary back
#   canary_pass      the same without the recurrence: CANARY_PASSED, then a
#                    batch of the other symbols and the withdrawals
#   metrics          a scripted fault run: /metrics parsed back and checked
#                    against the audit log's counts; promtool lints it
#   tallyctl         the online subcommands, their --json and exit codes
#   auto_resume      a slow ledger (tally-ledgersim --lag-ms) makes
#                    SETTLEMENT_LAG SOFT_HALT on *; once the ledger catches up
#                    tally lifts it itself (operator key, from_mode); the next
#                    such halt stays: the auto-resume cooldown holds it
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
TALLYCTL="$TL_BUILD/admin/tallyctl"
ctl() { "$TALLYCTL" --socket "$T/tally.sock" "$@"; }

make_keys
# lib.sh's config, with the operator key (the simulator's) for resumes
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key","operator":"$T/operator.key"},
 "control":{"socket":"$T/tally.sock","listen":""},
 "canary":{"window_ms":300000}}
JSON

# has PATTERN CMD...: CMD's whole output matches PATTERN (grep -q on a pipe
# would close it early: SIGPIPE and a failed pipeline under pipefail)
has() {
    local pat=$1; shift
    local o
    o=$("$@") || return 1
    grep -Eq "$pat" <<<"$o"
}

# wait_json SECONDS PYTHON_EXPR CMD...: polls CMD until its JSON makes EXPR true
wait_json() {
    local secs=$1 expr=$2; shift 2
    local i=0 n=$((secs * 10))
    while :; do
        if "$@" 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>/dev/null; then
            return 0
        fi
        i=$((i + 1))
        [ $i -ge $n ] && return 1
        sleep 0.1
    done
}

start_both() {
    start_engine "$@"
    wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
    start_tallyd
    wait_for 5 test -S "$T/tally.sock" || fail "tallyd's control socket did not appear"
    wait_json 5 'd["healthz"]["status"]=="ok"' ctl --json status || fail "tallyd is not healthy"
}

finish() {
    wait_exit "$ENGINE_PID" 60 || fail "the engine did not finish"
    [ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
    sleep 0.3
    stop_tallyd
}

case $kind in
killswitch)
    # the fork at ~3 s; the kill switch goes on long before
    start_both --rate 20000 --seconds 5 --segment-bytes 4M --ring-capacity 4M --fault fork@60000
    out=$(ctl --json policy --action none --reason "integration drill")
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["stage"]=="detect" and d["applied"], d' "$out" \
        || fail "the kill switch was not confirmed: $out"
    finish
    check_run '{"findings":[["FORK","out_of_order"]],"actions":[]}'
    python3 - "$T" <<'PY' || fail "the kill switch did not block as it should"
import glob, json, sys
t = sys.argv[1]
lines = [json.loads(l) for f in sorted(glob.glob(t + "/state/audit/audit*.jsonl")) for l in open(f)]
ev = [l["event"] for l in lines]
pol = [i for i, l in enumerate(lines) if l["event"] == "POLICY"]
fork = [i for i, l in enumerate(lines) if l["event"] == "FINDING" and l["finding"]["check"] == "FORK"]
assert pol and fork and pol[0] < fork[0], "POLICY must come before the fork"
assert lines[pol[0]]["stage"] == "detect" and lines[pol[0]]["via"] == "unix"
planned = [l["action"] for l in lines if l["event"] == "PLANNED"]
blocked = [l for l in lines if l["event"] == "BLOCKED"]
assert {(a["cmd"], a["symbol"], a.get("mode")) for a in planned} == {
    ("set_symbol_mode", "*", "HARD_HALT"), ("withdrawals_halt", "*", None)}, planned
assert len(blocked) == len(planned) and all(b["block_reason"] == "detect_only" for b in blocked), blocked
assert "EXECUTED" not in ev and "APPLIED" not in ev, "an action was executed"
# nothing at all reached the engine (pings aside)
for l in open(t + "/engine.out"):
    if l.startswith("{"):
        st = json.loads(l)
        cmds = [r for r in st["admin"]["received"] if r["cmd"] != "ping"]
        assert cmds == [], cmds
        assert st["modes"]["global"] == "NORMAL", st["modes"]
print("killswitch: ok (%d planned, all BLOCKED{detect_only})" % len(planned))
PY
    ;;

canary_rollback|canary_pass)
    # A fork at seq 5000 (1 s) halts everything. While halted, the engine
    # writes a HEARTBEAT every 5 ms: ~200 seqs/s. The recurrence (a gap at
    # 6500) comes ~7 s later, well inside the 30 s window.
    faults=(--fault fork@5000)
    window=30000
    if [ "$kind" = canary_rollback ]; then
        faults+=(--fault gap@6500)
    else
        window=1500
    fi
    start_both --rate 5000 --seconds 14 --heartbeat-ms 5 --segment-bytes 4M --ring-capacity 4M \
        "${faults[@]}"
    wait_json 10 'd["engine"]["global_mode"]=="HARD_HALT" and d["engine"]["withdrawals_halted"]' \
        ctl --json resume || fail "the fork did not halt the engine"
    ctl resume --symbol SYM001 --window-ms $window --ticket INC-IT-1 --reason "integration canary" \
        || fail "the resume was refused"
    wait_json 10 'd["canary"]["phase"] in ("watching","idle")' ctl --json resume \
        || fail "the canary never started its window"
    if [ "$kind" = canary_rollback ]; then
        wait_json 20 'd["canary"]["last_outcome"]=="ROLLED_BACK"' ctl --json resume \
            || fail "the recurrence did not roll the canary back: $(ctl resume)"
        rc=0; ctl resume --symbols SYM002 --ticket INC-IT-1 || rc=$?
        [ $rc -eq 2 ] || fail "a batch was accepted without CANARY_PASSED"
    else
        rc=0; ctl resume --symbol SYM001 --wait --ticket INC-IT-1 || rc=$?
        [ $rc -eq 2 ] || fail "a second canary was accepted during the window"
        wait_json 10 'd["canary"]["last_outcome"]=="CANARY_PASSED"' ctl --json resume \
            || fail "a clean window did not pass: $(ctl resume)"
        ctl resume --symbols SYM002,SYM003,SYM004,SYM005,SYM006,SYM007,SYM008 --ticket INC-IT-1 \
            || fail "the batch was refused"
        wait_json 10 'd["canary"]["last_outcome"]=="BATCH_DONE"' ctl --json resume \
            || fail "the batch did not apply: $(ctl resume)"
        ctl resume --withdrawals --ticket INC-IT-1 || fail "the withdrawals resume was refused"
        wait_json 10 'd["canary"]["last_outcome"]=="WITHDRAWALS_RESUMED"' ctl --json resume \
            || fail "the withdrawals did not resume: $(ctl resume)"
    fi
    finish
    python3 - "$T" "$kind" <<'PY' || fail "the canary did not go as behavior.md says"
import glob, json, sys
t, kind = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for f in sorted(glob.glob(t + "/state/audit/audit*.jsonl")) for l in open(f)]
ev = [l["event"] for l in lines]
def idx(e, **kw):
    for i, l in enumerate(lines):
        if l["event"] == e and all(l.get(k) == v for k, v in kw.items()):
            return i
    raise AssertionError("no %s %s" % (e, kw))
order = ["RESUME_REQUEST", "RESUME_STARTED", "PINS_APPLIED", "GLOBAL_LOWERED", "CANARY_STEPPED"]
pos = [idx(e) for e in order]
assert pos == sorted(pos), list(zip(order, pos))
# pins: sidecar key, origin pin, every symbol, before any relaxation
pins = [l["action"] for l in lines if l["event"] == "EXECUTED" and l["action"]["origin"] == "pin"]
assert len(pins) == 8 and all(p["key"] == "sidecar" and p["mode"] == "HARD_HALT" for p in pins), pins
relax = [l["action"] for l in lines if l["event"] == "EXECUTED" and l["action"]["key"] == "operator"]
assert relax[0]["symbol"] == "*" and relax[0]["mode"] == "SOFT_HALT" and relax[0]["from_mode"] == "HARD_HALT", relax[0]
assert relax[1]["symbol"] == "SYM001" and relax[1]["mode"] == "SOFT_HALT" and relax[1]["from_mode"] == "HARD_HALT", relax[1]
applied = {l["action"]["id"] for l in lines if l["event"] == "APPLIED"}
assert all(r["id"] in applied for r in relax), "a relaxation was not applied"
modes = None
for l in open(t + "/engine.out"):
    if l.startswith("{"):
        modes = json.loads(l)["modes"]
syms = modes["symbols"]
own = lambda s: syms.get(s, "NORMAL") if isinstance(syms, dict) else None
if kind == "canary_rollback":
    gap = idx("FINDING")  # the fork
    gaps = [i for i, l in enumerate(lines) if l["event"] == "FINDING" and l["finding"]["check"] == "SEQ_GAP"]
    assert gaps, "no SEQ_GAP finding"
    rb = idx("ROLLED_BACK")
    assert gaps[0] < idx("ROLLBACK_SENT") < rb, "the rollback must follow the recurrence"
    assert "CANARY_PASSED" not in ev
    rba = [l["action"] for l in lines if l["event"] == "EXECUTED" and l["action"]["origin"] == "rollback"]
    assert len(rba) == 1 and rba[0]["symbol"] == "SYM001" and rba[0]["mode"] == "HARD_HALT" and rba[0]["key"] == "sidecar", rba
    # the engine: the canary is back at HARD_HALT; the global stays SOFT_HALT
    # (every symbol is pinned at HARD_HALT, so no effective mode is lower)
    assert modes["global"] in ("SOFT_HALT",), modes
    assert own("SYM001") == "HARD_HALT" and own("SYM005") == "HARD_HALT", modes
else:
    assert idx("CANARY_PASSED") > idx("CANARY_STEPPED")
    assert idx("BATCH_DONE") > idx("CANARY_PASSED")
    assert idx("WITHDRAWALS_RESUMED") > idx("BATCH_DONE")
    assert "ROLLED_BACK" not in ev
    assert modes["global"] == "SOFT_HALT" and modes["withdrawals_halted"] is False, modes
    assert all(own("SYM%03d" % i) == "SOFT_HALT" for i in range(1, 9)), modes
print("%s: ok" % kind)
PY
    ;;

metrics)
    # a gap (CANCEL_ONLY on *), then, while CANCEL_ONLY holds (heartbeats
    # every 5 ms keep the seqs moving), a fork (HARD_HALT + withdrawals)
    start_both --rate 20000 --seconds 4 --segment-bytes 4M --ring-capacity 4M --heartbeat-ms 5 \
        --fault gap@20000 --fault fork@20200 --linger-ms 1500
    wait_exit "$ENGINE_PID" 60 || fail "the engine did not finish"
    sleep 0.5 # one stats snapshot (100 ms) and more
    ctl metrics > "$T/metrics.prom" || fail "no metrics"
    if command -v promtool >/dev/null; then
        # lint: naming and HELP/TYPE (the text must parse)
        promtool check metrics < "$T/metrics.prom" > "$T/promtool.out" 2>&1 || true
        grep -q "error while linting" "$T/promtool.out" && fail "promtool: $(cat "$T/promtool.out")"
    fi
    stop_tallyd
    python3 - "$T" <<'PY' || fail "the metrics disagree with the audit log"
import glob, json, re, sys, collections
t = sys.argv[1]
lines = [json.loads(l) for f in sorted(glob.glob(t + "/state/audit/audit*.jsonl")) for l in open(f)]
samples, types = {}, {}
for l in open(t + "/metrics.prom"):
    l = l.rstrip("\n")
    if l.startswith("# TYPE "):
        _, _, name, typ = l.split(" ")
        types[name] = typ
        continue
    if l.startswith("#") or not l:
        continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', l)
    assert m, "bad line: %r" % l
    samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
def val(name, **labels):
    key = "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}" if labels else ""
    return samples[(name, key)]
findings = collections.Counter()
mismatch = collections.Counter()
for l in lines:
    if l["event"] == "FINDING":
        f = l["finding"]
        findings[f["check"]] += 1
        if f["severity"] in ("SEV1", "SEV2"):
            for c in f["class"]:
                mismatch[c] += 1
assert findings["SEQ_GAP"] >= 1 and findings["FORK"] >= 1, findings
for check, n in findings.items():
    cls = next(l["finding"]["class"][0] for l in lines if l["event"] == "FINDING" and l["finding"]["check"] == check)
    assert val("tally_findings_total", check=check, **{"class": cls}) == n, (check, n)
for c in ("delay", "dup", "missing", "out_of_order"):
    assert val("tally_mismatch_total", **{"class": c}) == mismatch[c], (c, mismatch[c])
def act_label(a):
    if a["cmd"] == "set_symbol_mode":
        return a["mode"].lower()
    return "withdrawals_halt" if a.get("on") else "withdrawals_resume"
for state, metric in (("PLANNED", "tally_action_planned_total"), ("EXECUTED", "tally_action_executed_total"),
                      ("APPLIED", "tally_action_applied_total")):
    got = collections.Counter(act_label(l["action"]) for l in lines if l["event"] == state)
    assert got, state
    for a, n in got.items():
        assert val(metric, action=a) == n, (metric, a, n, val(metric, action=a))
executed = sum(1 for l in lines if l["event"] == "EXECUTED")
assert val("tally_detect_to_send_seconds_count") == executed
assert val("tally_detect_to_applied_seconds_count") == sum(1 for l in lines if l["event"] == "APPLIED")
assert val("tally_detect_to_send_seconds_bucket", le="+Inf") == executed
stop = [l for l in lines if l["event"] == "STOP"][-1]
assert val("tally_records_total", source="wal") <= int(stop["records_wal"])
assert val("tally_records_total", source="wal") > 20000
assert val("tally_loop_iteration_seconds_count") > 0
assert val("tally_engine_seq") >= 20200 and val("tally_wal_durable_seq") >= 20200
for fam in ("tally_records_total", "tally_findings_total", "tally_mismatch_total", "tally_action_blocked_total",
            "tally_ring_lapped_total", "tally_reconcile_runs_total", "tally_deadman_expired_total"):
    assert types[fam] == "counter", fam
for fam in ("tally_engine_seq", "tally_wal_durable_seq", "tally_ledger_seq", "tally_settlement_lag_seconds",
            "tally_ring_lag_bytes", "tally_last_snapshot_age_seconds", "tally_peer_applied_seq"):
    assert types[fam] == "gauge", fam
for fam in ("tally_detect_to_send_seconds", "tally_detect_to_applied_seconds", "tally_loop_iteration_seconds"):
    assert types[fam] == "histogram", fam
print("metrics: ok (%d findings, %d executed)" % (sum(findings.values()), executed))
PY
    ;;

tallyctl)
    start_both --rate 5000 --seconds 6 --segment-bytes 4M --ring-capacity 4M --linger-ms 3000
    out=$(ctl --json status) || fail "status: exit $?"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); c=d["capabilities"]
assert d["healthz"]["status"]=="ok" and c["stage"]=="live" and c["armed"] and c["operator_key"], d
assert c["inputs"]["ring"]["state"]=="ok" and c["inputs"]["ledger"]["state"]=="not configured", c["inputs"]' "$out" \
        || fail "status --json: $out"
    has "^health      ok" ctl status || fail "status table"
    has "^stage live" ctl policy || fail "policy show"
    # a reconcile over what is there: CONSISTENT, exit 0
    sleep 1
    ctl reconcile --from 1 --to 3000 > "$T/rc.txt" || fail "reconcile: exit $? $(cat "$T/rc.txt")"
    grep -q CONSISTENT "$T/rc.txt" || fail "reconcile: $(cat "$T/rc.txt")"
    out=$(ctl reconcile --from 1 --to 2000 --json) || fail "reconcile --json"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["status"]=="CONSISTENT" and d["records"]=="2000", d' "$out" \
        || fail "reconcile --json: $out"
    has CONSISTENT ctl results || fail "results"
    n=$(ctl --json results --status CONSISTENT | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))')
    [ "$n" -eq 2 ] || fail "results --status CONSISTENT: $n"
    rc=0; ctl results --status BOGUS || rc=$?
    [ $rc -eq 2 ] || fail "results --status BOGUS: exit $rc"
    has "no incidents" ctl incidents || fail "incidents (none yet)"
    # a manual escalation reaches the engine: exit 0, and an incident-free action
    ctl mode SYM003 HARD_HALT --reason "integration" --ticket INC-IT-2 > "$T/mode.txt" \
        || fail "mode: $(cat "$T/mode.txt")"
    grep -Eq "EXECUTED|APPLIED" "$T/mode.txt" || fail "mode: $(cat "$T/mode.txt")"
    wait_json 5 'any(h["symbol"]=="SYM003" and h["mode"]=="HARD_HALT" for h in d["engine"]["held"])' \
        ctl --json resume || fail "the manual halt was not applied"
    rc=0; ctl mode NOSUCH HARD_HALT --reason r --ticket t 2>/dev/null || rc=$?
    [ $rc -eq 2 ] || fail "mode on an unknown symbol: exit $rc"
    # a canary on a symbol held by its own mode (the symbol path, no pins)
    ctl resume --symbol SYM003 --window-ms 500 --ticket INC-IT-2 --wait || fail "resume --wait: exit $?"
    rc=0; ctl resume --symbol SYM004 --ticket t 2>/dev/null || rc=$?
    [ $rc -eq 2 ] || fail "resume of a NORMAL symbol: exit $rc"
    has "header      valid" "$TALLYCTL" ring inspect "$RING" || fail "ring inspect"
    "$TALLYCTL" --json ring inspect "$RING" | python3 -c 'import json,sys; d=json.load(sys.stdin)
assert d["valid"] and d["consumer"]["state"] in ("following","catching_up"), d' || fail "ring inspect --json"
    has "^tally_up 1$" ctl metrics || fail "metrics"
    # the kill switch from the CLI, and back
    has "^stage detect" ctl policy --action none || fail "policy --action none"
    has "^stage live" ctl policy --action live || fail "policy --action live"
    finish
    "$TALLYCTL" wal verify "$T/wal" > "$T/verify.txt" || fail "wal verify: $(cat "$T/verify.txt")"
    rc=0; ctl status >/dev/null 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "status without tallyd: exit $rc"
    echo "tallyctl: ok"
    ;;
auto_resume)
    LEDGERSIM="$TL_BUILD/bench/tally-ledgersim"
    mkdir -p "$T/wal"
    "$LEDGERSIM" --wal "$T/wal" --ring "$RING" --port-file "$T/ledger.port" --lag-ms 1500 \
        > "$T/ledger.out" 2> "$T/ledger.err" &
    LEDGER_PID=$!
    PIDS+=("$LEDGER_PID")
    wait_for 5 test -s "$T/ledger.port" || fail "the ledger did not start"
    port=$(cat "$T/ledger.port")
    cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key","operator":"$T/operator.key"},
 "control":{"socket":"$T/tally.sock","listen":""},
 "ledger":{"url":"http://127.0.0.1:$port/v1/watermark","poll_ms":20,"timeout_ms":200,
           "max_age_ms":1000,"lag_throttle_ms":300,"lag_halt_ms":1000},
 "auto_resume":{"clean_cycles":2,"min_pause_ms":2000,"cooldown_ms":600000}}
JSON
    start_both --rate 2000 --seconds 14 --segment-bytes 4M --ring-capacity 4M
    wait_json 15 'd["auto_resume"]["resumes_total"]>=1' ctl --json resume \
        || fail "no auto-resume: $(ctl resume)"
    wait_json 15 'd["auto_resume"]["state"]=="halted" and d["auto_resume"]["last_verdict"]=="wait_cooldown"' \
        ctl --json resume || fail "the second halt was not held by the cooldown: $(ctl resume)"
    finish
    python3 - "$T" <<'PY' || fail "the auto-resume did not go as behavior.md says"
import glob, json, sys
t = sys.argv[1]
lines = [json.loads(l) for f in sorted(glob.glob(t + "/state/audit/audit*.jsonl")) for l in open(f)]
ex = [l["action"] for l in lines if l["event"] == "EXECUTED"]
halts = [a for a in ex if a.get("check") == "SETTLEMENT_LAG" and a["mode"] == "SOFT_HALT" and a["symbol"] == "*"]
resumes = [a for a in ex if a["origin"] == "auto_resume"]
assert len(halts) >= 2, halts
assert len(resumes) == 1, resumes
r = resumes[0]
assert r["key"] == "operator" and r["symbol"] == "*" and r["mode"] == "NORMAL" and r["from_mode"] == "SOFT_HALT", r
applied = {l["action"]["id"] for l in lines if l["event"] == "APPLIED"}
assert r["id"] in applied and halts[0]["id"] in applied and halts[1]["id"] in applied
ev = [l["event"] for l in lines]
assert ev.count("AUTO_RESUME") == 1
# the first halt before the resume, the second after it
pos = {l["action"]["id"]: i for i, l in enumerate(lines) if l["event"] == "APPLIED"}
assert pos[halts[0]["id"]] < pos[r["id"]] < pos[halts[1]["id"]]
modes = [json.loads(l)["modes"] for l in open(t + "/engine.out") if l.startswith("{")][-1]
assert modes["global"] == "SOFT_HALT", modes
print("auto_resume: ok")
PY
    ;;
*) fail "unknown kind $kind" ;;
esac
