#!/usr/bin/env python3
"""check_xwal1.py: judges one xwal1 integration run (run_xwal1.sh).

  --audit-dir   tallyd's audit log directory
  --offline     the output of `tallyctl wal verify --dialect xwal1 --json`
                over the same directory, once the log was complete
  --engine      xwal1_append's --stats line (the admin socket's commands)
  --expect      JSON: {"actions": [["set_symbol_mode", "BTC-KRW", "HARD_HALT"],
                                   ["withdrawals_halt", "*", null]]}
  --run N       judge only the audit lines of tallyd's N-th run (from its
                N-th START line to the next): a restart reads the whole
                retained log again and must report the same findings, and
                act only on those it had not decided on before

The FINDING lines of the audit log must be the offline findings, in the
same order, member for member (detect_ns, id and incident aside: those are
the live loop's). The set of commands tallyd EXECUTED must equal "actions",
and each must have reached the engine's admin socket with its id and been
accepted there. xwal1 has no command id in its log, so no command can be
APPLIED by id; the stand-in engine writes no symbol_mode for a command, so
no set_symbol_mode of a symbol can be APPLIED by its mode either. A
withdrawals_halt, a cancel_all or a mode on `*` never shows in an xwal1 log
at all: those count as APPLIED once the engine accepted them, and must be.
"""
import argparse, glob, json, os, sys

COMPARED = ("check", "checksum", "checksum2", "class", "fence", "fence2", "offset",
            "reason", "rule", "scope", "segment", "seq", "seq2", "severity", "source",
            "source2")


def load_audit(d):
    lines = []
    files = sorted(glob.glob(os.path.join(d, "audit.*.jsonl")),
                   key=lambda p: int(p.split(".")[-2])) + [os.path.join(d, "audit.jsonl")]
    for f in files:
        if os.path.exists(f):
            with open(f) as fh:
                lines += [json.loads(l) for l in fh if l.strip()]
    return lines


def last_json(path):
    got = None
    with open(path) as fh:
        for l in fh:
            l = l.strip()
            if l.startswith("{"):
                got = json.loads(l)
    if got is None:
        raise SystemExit("check: no JSON in %s" % path)
    return got


def key(f):
    return {k: f.get(k) for k in COMPARED}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audit-dir", required=True)
    ap.add_argument("--offline", required=True)
    ap.add_argument("--engine", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--run", type=int, default=0)
    a = ap.parse_args()
    want = json.loads(a.expect)
    lines = load_audit(a.audit_dir)
    if a.run:
        starts = [i for i, l in enumerate(lines) if l.get("event") == "START"]
        if len(starts) < a.run:
            raise SystemExit("check: no run %d (%d START lines)" % (a.run, len(starts)))
        end = starts[a.run] if len(starts) > a.run else len(lines)
        lines = lines[starts[a.run - 1]:end]
    offline = last_json(a.offline)
    engine = last_json(a.engine)
    errors = []

    live = [l["finding"] for l in lines if l.get("event") == "FINDING"]
    off = offline.get("findings", [])
    if [key(f) for f in live] != [key(f) for f in off]:
        errors.append("live findings differ from offline:\n  live    %s\n  offline %s" %
                      ([key(f) for f in live], [key(f) for f in off]))
    if offline.get("tentative_tail"):
        errors.append("the complete log has a tentative tail")

    executed, applied = {}, set()
    for l in lines:
        ev = l.get("event")
        if ev == "EXECUTED":
            act = l["action"]
            executed[act["id"]] = (act["cmd"], act["symbol"], act.get("mode"))
        if (ev == "APPLIED" and l["action"]["cmd"] == "set_symbol_mode" and
                l["action"]["symbol"] != "*"):
            errors.append("APPLIED without a command id in the log: %s" % l)
        if ev == "APPLIED":
            applied.add(l["action"]["id"])
    got = sorted(set(executed.values()), key=str)
    exp = sorted({tuple(x) for x in want.get("actions", [])}, key=str)
    if got != exp:
        errors.append("executed %s, want %s" % (got, exp))
    received = {}
    for r in engine.get("admin", {}).get("received", []):
        received.setdefault(r["id"], []).append(r)
    for i, (cmd, sym, mode) in executed.items():
        rs = received.get(i)
        if not rs:
            errors.append("command %s %s %s %s never reached the engine" % (i, cmd, sym, mode))
            continue
        r = rs[0]
        if r["cmd"] != cmd or r["symbol"] != sym or (mode and r["mode"] != mode):
            errors.append("command %s arrived as %s, sent as %s" % (i, r, (cmd, sym, mode)))
        if not any(x["ok"] for x in rs):
            errors.append("command %s was refused by the engine: %s" % (i, rs))
        elif (cmd in ("withdrawals_halt", "cancel_all") or sym == "*") and i not in applied:
            errors.append("command %s %s accepted by the engine but not APPLIED" % (i, cmd))
    if not executed and engine.get("admin", {}).get("received"):
        errors.append("the engine received commands: %s" % engine["admin"]["received"])
    if errors:
        for e in errors:
            print("check: " + e, file=sys.stderr)
        sys.exit(1)
    print("check: ok (%d findings as offline, %d commands at the engine)" %
          (len(live), len(executed)))


if __name__ == "__main__":
    main()
