# lib.sh: helpers for tally's integration tests: real processes (the engine
# simulator and tallyd), real shared memory, real sockets, real files.
# Sourced by the test scripts; they run under `set -euo pipefail`.

: "${TL_BUILD:?TL_BUILD must point at the build directory}"
ENGINESIM="$TL_BUILD/bench/tally-enginesim"
TALLYD="$TL_BUILD/admin/tallyd"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

T=$(mktemp -d /tmp/tally-it.XXXXXX)
RING="it$$"
PIDS=()

cleanup() {
    local rc=$?
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -CONT "$p" 2>/dev/null || true
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.2
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    # the ring and, for tests that run a standby (run_lease.sh), its own ring
    rm -f "/dev/shm/tally.$RING" "/dev/shm/tally.${RING}b"
    if [ $rc -ne 0 ]; then
        echo "---- tallyd stderr (tail)"; tail -n 40 "$T/tallyd.err" 2>/dev/null || true
        echo "---- engine stderr (tail)"; tail -n 20 "$T/engine.err" 2>/dev/null || true
        echo "(kept $T)"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

make_keys() {
    head -c 32 /dev/urandom > "$T/sidecar.key"; chmod 600 "$T/sidecar.key"
    head -c 32 /dev/urandom > "$T/operator.key"; chmod 600 "$T/operator.key"
}

# write_config [extra JSON members for the root object]
write_config() {
    local extra=${1:-}
    cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},
 "control":{"socket":"$T/tally.sock","listen":""}${extra:+,$extra}}
JSON
}

# start_engine args...: the simulator in the background, stats to engine.out
start_engine() {
    "$ENGINESIM" --ring "$RING" --wal "$T/wal" --admin-socket "$T/admin.sock" \
        --sidecar-key "$T/sidecar.key" --operator-key "$T/operator.key" --stats "$@" \
        >> "$T/engine.out" 2>> "$T/engine.err" &
    ENGINE_PID=$!
    PIDS+=("$ENGINE_PID")
}

start_tallyd() {
    "$TALLYD" --config "$T/tally.json" > "$T/tallyd.out" 2>> "$T/tallyd.err" &
    TALLYD_PID=$!
    PIDS+=("$TALLYD_PID")
}

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds
wait_for() {
    local secs=$1; shift
    local i=0 n=$((secs * 20))
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge $n ] && return 1
        sleep 0.05
    done
}

# wait_exit PID SECONDS: waits for a background process to end; its status in WAIT_RC
wait_exit() {
    local pid=$1 secs=$2 i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        [ $i -ge $((secs * 20)) ] && return 1
        sleep 0.05
    done
    WAIT_RC=0
    wait "$pid" || WAIT_RC=$?
    return 0
}

stop_tallyd() {
    kill -TERM "$TALLYD_PID" 2>/dev/null || true
    wait_exit "$TALLYD_PID" 20 || fail "tallyd did not stop on SIGTERM"
    [ "$WAIT_RC" -eq 0 ] || fail "tallyd exited $WAIT_RC"
}

audit() { cat "$T/state/audit/"audit*.jsonl 2>/dev/null; }

# check_run EXPECTATION_JSON: the audit log and the engine's stats against
# what the fault must cause (tests/integration/check.py)
check_run() {
    python3 "$HERE/check.py" --audit-dir "$T/state/audit" --engine-stats "$T/engine.out" \
        --expect "$1"
}
