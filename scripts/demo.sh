#!/usr/bin/env bash
# demo.sh: the README's main command. On a fresh Debian 12, as root: installs
# the dependencies, builds tally, and runs the main job:
#
#   the reference engine (tally-enginesim) trades on 8 symbols, publishing
#   every record on its shared-memory ring and writing its WAL; tallyd follows
#   both in its own process. At seq 40000 the engine forks: it publishes one
#   record on the ring and persists another. tallyd sees the two copies
#   disagree (FORK, out_of_order, SEV1 split-brain), raises the fast-path
#   mode word, and sends HARD_HALT on * and withdrawals_halt through the
#   engine's admin socket; the engine applies them and writes MODE_CHANGE,
#   which tallyd sees come back (APPLIED).
#
# Exit status 0 when the halt was seen end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target tallyd tally-enginesim >/dev/null

T=$(mktemp -d /tmp/tally-demo.XXXXXX)
RING="demo$$"
cleanup() {
    [ -n "${EPID:-}" ] && kill "$EPID" 2>/dev/null || true
    [ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "/dev/shm/tally.$RING"
}
trap cleanup EXIT

head -c 32 /dev/urandom > "$T/sidecar.key"
chmod 600 "$T/sidecar.key"
cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},
 "control":{"socket":"$T/tally.sock","listen":""}}
JSON

echo "== the engine: 20000 records/s on 8 symbols; a fork is injected at seq 40000"
"$root/build/bench/tally-enginesim" --ring "$RING" --wal "$T/wal" \
    --admin-socket "$T/admin.sock" --sidecar-key "$T/sidecar.key" \
    --rate 20000 --seconds 4 --segment-bytes 8M --ring-capacity 8M \
    --fault fork@40000 --stats --quiet > "$T/engine.json" 2> "$T/engine.err" &
EPID=$!
for _ in $(seq 100); do [ -S "$T/admin.sock" ] && break; sleep 0.05; done
echo "== tallyd follows the ring and the WAL (config $T/tally.json)"
"$root/build/admin/tallyd" --config "$T/tally.json" 2> "$T/tallyd.err" &
TPID=$!
wait "$EPID" || true
EPID=
sleep 0.5
kill -TERM "$TPID" 2>/dev/null || true
wait "$TPID" 2>/dev/null || true
TPID=

echo "== what tallyd reported"
grep -E "attached|finding|action" "$T/tallyd.err" | grep -v ENGINE_SILENT | cut -c1-220
echo "== what the engine says at the end"
python3 - "$T/engine.json" <<'PY'
import json, sys
st = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print("records written: %d, last seq %d" % (st["records"], st["seq"]))
print("global mode: %s, withdrawals halted: %s" % (st["modes"]["global"], st["modes"]["withdrawals_halted"]))
for r in st["admin"]["received"]:
    print("admin command received: %s (id %s)" % (r["cmd"], r["id"]))
ok = st["modes"]["global"] == "HARD_HALT" and st["modes"]["withdrawals_halted"]
print("== HALT SEEN: the fork was caught and the engine is in HARD_HALT" if ok else
      "== no halt: something is wrong (see %s)" % sys.argv[1])
sys.exit(0 if ok else 1)
PY
echo "== the hash-chained audit log: $T/state/audit/audit.jsonl"
