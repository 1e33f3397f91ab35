#!/usr/bin/env bash
# run_fault.sh KIND: tallyd and the engine simulator as separate processes,
# one fault injected (or a benign disturbance); the engine's admin server
# must receive exactly the action of behavior.md's table, and the finding must
# carry the expected check and class. Benign runs must give no action and no
# SEV1/SEV2 finding.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
S=30000          # the faulty seq: ~1.5 s into a 20000 records/s run
RATE=20000
SECS=4

HH='["set_symbol_mode","*","HARD_HALT"]'
WH='["withdrawals_halt","*",null]'
CO='["set_symbol_mode","*","CANCEL_ONLY"]'

make_keys
write_config
extra=()
case $kind in
    fork)              expect='{"findings":[["FORK","out_of_order"]],"actions":['$HH','$WH']}' ;;
    fence_regress)     expect='{"findings":[["FENCE_REGRESSION","out_of_order"]],"actions":['$HH','$WH']}' ;;
    fence_unannounced) expect='{"findings":[["FENCE_UNANNOUNCED","out_of_order"]],"actions":['$HH','$WH']}' ;;
    gap)               expect='{"findings":[["SEQ_GAP","missing"]],"actions":['$CO']}' ;;
    reorder)           expect='{"findings":[["SEQ_GAP","missing"]],"allowed":["SEQ_REGRESSION"],"actions":['$CO']}' ;;
    parent)            expect='{"findings":[["CHAIN_BREAK","missing"]],"actions":['$CO']}' ;;
    flip)              expect='{"findings":[["WAL_CORRUPT","missing"]],"actions":['$CO']}'
                       extra=(--segment-bytes 1M) ;;
    dup)               expect='{"findings":[],"actions":[],"info":["SEQ_DUPLICATE"]}' ;;
    *) fail "unknown fault $kind" ;;
esac

start_engine --rate $RATE --seconds $SECS --segment-bytes 4M --ring-capacity 4M \
    --fault "$kind@$S" "${extra[@]}"
wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
start_tallyd
wait_exit "$ENGINE_PID" $((SECS + 20)) || fail "the engine did not finish"
[ "$WAIT_RC" -eq 0 ] || fail "the engine exited $WAIT_RC"
sleep 0.5
stop_tallyd
check_run "$expect"
