#!/usr/bin/env python3
"""check.py: judges one integration run from tally's audit log and the
engine simulator's --stats output.

--expect is JSON:
  {"findings": [["FORK", "out_of_order"], ...],   every one must appear (SEV1/SEV2)
   "allowed": ["SEQ_REGRESSION"],                 SEV findings that may also appear
   "actions": [["set_symbol_mode", "*", "HARD_HALT"], ["withdrawals_halt", "*", null]],
   "info": ["SEQ_DUPLICATE"]}                      info/degraded findings that must appear
No SEV1/SEV2 finding outside findings+allowed may appear. The set of commands
tally EXECUTED must equal "actions" exactly; each must have reached the
engine (its id in the engine's received list) and be APPLIED.
"""
import argparse, glob, json, os, sys

def load_audit(d):
    lines = []
    files = sorted(glob.glob(os.path.join(d, "audit.*.jsonl")),
                   key=lambda p: int(p.split(".")[-2])) + [os.path.join(d, "audit.jsonl")]
    for f in files:
        if os.path.exists(f):
            with open(f) as fh:
                lines += [json.loads(l) for l in fh if l.strip()]
    return lines

def load_engine(path):
    received = set()
    with open(path) as fh:
        for l in fh:
            l = l.strip()
            if not l.startswith("{"):
                continue
            try:
                st = json.loads(l)
            except ValueError:
                continue
            for r in st.get("admin", {}).get("received", []):
                received.add(r["id"])
    return received

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audit-dir", required=True)
    ap.add_argument("--engine-stats", required=True)
    ap.add_argument("--expect", required=True)
    a = ap.parse_args()
    want = json.loads(a.expect)
    lines = load_audit(a.audit_dir)
    received = load_engine(a.engine_stats)
    errors = []

    sev = {}
    info = set()
    for l in lines:
        if l.get("event") != "FINDING":
            continue
        f = l["finding"]
        if f["severity"] in ("SEV1", "SEV2"):
            sev.setdefault(f["check"], set()).update(f["class"])
        else:
            info.add(f["check"])
    for check, cls in want.get("findings", []):
        if check not in sev:
            errors.append("missing finding %s" % check)
        elif cls not in sev[check]:
            errors.append("finding %s has class %s, want %s" % (check, sorted(sev[check]), cls))
    allowed = {c for c, _ in want.get("findings", [])} | set(want.get("allowed", []))
    for check in sev:
        if check not in allowed:
            errors.append("unexpected finding %s" % check)
    for check in want.get("info", []):
        if check not in info:
            errors.append("missing info finding %s" % check)

    executed, applied = {}, set()
    for l in lines:
        ev = l.get("event")
        if ev in ("EXECUTED", "APPLIED"):
            act = l["action"]
            key = (act["cmd"], act["symbol"], act.get("mode"))
            if ev == "EXECUTED":
                executed[act["id"]] = key
            else:
                applied.add(act["id"])
    got = sorted(set(executed.values()), key=str)
    exp = sorted({tuple(x) for x in want.get("actions", [])}, key=str)
    if got != exp:
        errors.append("executed %s, want %s" % (got, exp))
    for i, key in executed.items():
        if i not in received:
            errors.append("command %s %s never reached the engine" % (i, key))
        if i not in applied:
            errors.append("command %s %s never APPLIED" % (i, key))
    if errors:
        for e in errors:
            print("check: " + e, file=sys.stderr)
        sys.exit(1)
    print("check: ok (%d SEV checks, %d commands)" % (len(sev), len(executed)))

if __name__ == "__main__":
    main()
