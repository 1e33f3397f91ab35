#!/usr/bin/env python3
"""check_peer.py: judges one tallyd of a peer integration run (run_peer.sh)
from its audit log, its engine's --stats output and, optionally, the
proxy's summary.

--expect is JSON:
  {"findings": [["STATE_HASH_DIVERGENCE", "out_of_order"]],  must appear (SEV1/SEV2)
   "allowed": ["PEER_LOG_FORK"],                            may also appear
   "actions": [["set_symbol_mode", "*", "HARD_HALT"], ...],  the EXECUTED set, exactly
   "applied": true,              every executed command APPLIED (a standby applies none)
   "stop": {"peer_accepted": ">0", "peer_rejected_bad_mac": "=proxy:spoof"}}
A "stop" value is ">0", "=0", "=N", or "=proxy:KIND" (the proxy's count of
that injection towards this tallyd's port, --port). Every executed command
must have reached the engine (its id in the engine's received list).
"""
import argparse, glob, json, os, sys

def load_audit(d):
    files = sorted(glob.glob(os.path.join(d, "audit.*.jsonl")),
                   key=lambda p: int(p.split(".")[-2])) + [os.path.join(d, "audit.jsonl")]
    out = []
    for f in files:
        if os.path.exists(f):
            out += [json.loads(l) for l in open(f) if l.strip()]
    return out

def load_received(path):
    got = set()
    for l in open(path):
        l = l.strip()
        if l.startswith("{"):
            try:
                st = json.loads(l)
            except ValueError:
                continue
            got |= {r["id"] for r in st.get("admin", {}).get("received", [])}
    return got

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="tallyd")
    ap.add_argument("--audit-dir", required=True)
    ap.add_argument("--engine-stats", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--proxy-summary")
    ap.add_argument("--port")
    a = ap.parse_args()
    want = json.loads(a.expect)
    lines = load_audit(a.audit_dir)
    received = load_received(a.engine_stats)
    errors = []
    sev = {}
    for l in lines:
        if l.get("event") == "FINDING" and l["finding"]["severity"] in ("SEV1", "SEV2"):
            f = l["finding"]
            sev.setdefault(f["check"], set()).update(f["class"])
    for check, cls in want.get("findings", []):
        if check not in sev:
            errors.append("missing finding %s" % check)
        elif cls not in sev[check]:
            errors.append("finding %s has class %s, want %s" % (check, sorted(sev[check]), cls))
    allowed = {c for c, _ in want.get("findings", [])} | set(want.get("allowed", []))
    for check in sev:
        if check not in allowed:
            errors.append("unexpected finding %s" % check)
    executed, applied = {}, set()
    for l in lines:
        ev = l.get("event")
        if ev in ("EXECUTED", "APPLIED"):
            act = l["action"]
            if ev == "EXECUTED":
                executed[act["id"]] = (act["cmd"], act["symbol"], act.get("mode"))
            else:
                applied.add(act["id"])
    got = sorted(set(executed.values()), key=str)
    exp = sorted({tuple(x) for x in want.get("actions", [])}, key=str)
    if got != exp:
        errors.append("executed %s, want %s" % (got, exp))
    for i, key in executed.items():
        if i not in received:
            errors.append("command %s %s never reached the engine" % (i, key))
        if want.get("applied", True) and i not in applied:
            errors.append("command %s %s never APPLIED" % (i, key))
    stops = [l for l in lines if l.get("event") == "STOP"]
    if want.get("stop"):
        if not stops:
            errors.append("no STOP line")
        else:
            stop = stops[-1]
            proxy = {}
            if a.proxy_summary:
                proxy = json.load(open(a.proxy_summary)).get(a.port, {})
            for k, cond in want["stop"].items():
                v = int(stop.get(k, "-1"))
                if cond == ">0":
                    ok = v > 0
                elif cond.startswith("=proxy:"):
                    n = proxy.get(cond[7:], -1)
                    ok = v == n and n > 0
                    cond = "=%d (%s)" % (n, cond)
                else:
                    ok = v == int(cond[1:])
                if not ok:
                    errors.append("STOP %s = %d, want %s" % (k, v, cond))
    if errors:
        for e in errors:
            print("check_peer[%s]: %s" % (a.name, e), file=sys.stderr)
        sys.exit(1)
    print("check_peer[%s]: ok (%s; %d commands)" % (a.name, sorted(sev), len(executed)))

if __name__ == "__main__":
    main()
