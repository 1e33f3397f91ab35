#!/usr/bin/env bash
# run_bundle.sh KIND: forensic bundles against real processes (the engine
# simulator and tallyd), checked offline with `tallyctl bundle verify`.
#   fork       an injected fork: tallyd (bundle.auto, a signing key) makes a
#              bundle by itself; it verifies (exit 0), names the first
#              divergent seq, is linked from the incident; the halt still
#              went out as behavior.md says; `tallyctl bundle export` makes
#              another on request
#   tamper     a byte of a segment, of the manifest, of the signature; a file
#              removed; a file added: each fails verification (exit 1)
#   disk_full  bundle.dir on a 2 MiB tmpfs (or, where mounting is refused,
#              tallyd under `ulimit -f`): no bundle, no partial file, and a
#              named error (disk_full) in the audit log and the incident
#   redaction  secrets planted in the config (key paths, a token file, a
#              password-like key, URL credentials): not one is anywhere in
#              the extracted bundle; redactions.json lists their paths
#   export_timeout  `tallyctl bundle export --timeout` against a fake tallyd
#              that never finishes, or answers a state it cannot read: exit 2
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kind=$1
TALLYCTL="$TL_BUILD/admin/tallyctl"
ctl() { "$TALLYCTL" --socket "$T/tally.sock" "$@"; }
S=30000
RATE=20000
SECS=4

make_keys
openssl genpkey -algorithm ed25519 -out "$T/sign.pem" 2>/dev/null
openssl pkey -in "$T/sign.pem" -pubout -out "$T/sign.pub" 2>/dev/null
mkdir -p "$T/snaps" "$T/bundles"
printf 'snapshot at 25000' > "$T/snaps/snap-00000000000000025000.bin"
printf 'snapshot at 40000' > "$T/snaps/snap-00000000000000040000.bin"

config() { # config EXTRA_ROOT_MEMBERS
    cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar.key"},
 "control":{"socket":"$T/tally.sock","listen":""},
 "bundle":{"auto":true,"dir":"$T/bundles","signing_key":"$T/sign.pem",
           "snapshot_dir":"$T/snaps","margin_records":1000}${1:+,$1}}
JSON
}

# wait_audit SECONDS EVENT: until the audit log has a line of that event
wait_audit() {
    local secs=$1 ev=$2
    wait_for "$secs" grep -q "\"event\":\"$ev\"" "$T/state/audit/audit.jsonl"
}

bundle_path() { # the path of the first BUNDLE_DONE
    python3 - "$T/state/audit/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("event") == "BUNDLE_DONE":
        print(j["path"]); break
PY
}

fork_run() {
    config
    start_engine --rate $RATE --seconds $SECS --segment-bytes 4M --ring-capacity 4M \
        --fault "fork@$S"
    wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
    start_tallyd
    wait_for 5 test -S "$T/tally.sock" || fail "tallyd's control socket did not appear"
    wait_audit 30 BUNDLE_DONE || { audit | grep BUNDLE >&2 || true; fail "no bundle was made"; }
    BUNDLE=$(bundle_path)
    [ -f "$BUNDLE" ] || fail "BUNDLE_DONE names $BUNDLE, which is not there"
}

verify() { "$TALLYCTL" bundle verify "$1" --pubkey "$T/sign.pub" --tmpdir "$T"; }

case $kind in
fork)
    fork_run
    out=$(verify "$BUNDLE") || { echo "$out"; fail "the automatic bundle does not verify"; }
    echo "$out"
    grep -q "^first divergent seq: $S " <<<"$out" || fail "verify does not name seq $S"
    grep -q "FINDING   FORK" <<<"$out" || fail "the timeline lacks the FORK finding"
    grep -q "EXECUTED  set_symbol_mode" <<<"$out" || fail "the timeline lacks the halt"
    # JSON for scripts, the same verdict
    "$TALLYCTL" --json bundle verify "$BUNDLE" --pubkey "$T/sign.pub" --tmpdir "$T" |
        python3 -c "import json,sys; d=json.load(sys.stdin); assert d['verified'] and d['first_divergent_seq']=='$S', d"
    # linked from its incident
    inc=$(python3 -c "
import json,sys
for l in open('$T/state/audit/audit.jsonl'):
    j=json.loads(l)
    if j.get('event')=='BUNDLE_DONE': print(j['incidents'].split(',')[0]); break")
    ctl --json incidents "$inc" | python3 -c "
import json,sys
d=json.load(sys.stdin); b=d['bundle']
assert b['path']=='$BUNDLE' and b['state'] in ('done','degraded'), b
print('incident', d['id'], 'bundle', b)"
    # snapshots nearest the range are in it; the tar is plain tar+zstd
    tar --zstd -tf "$BUNDLE" > "$T/list"
    grep -q "^snapshots/snap-00000000000000025000.bin$" "$T/list" || fail "snapshot at or below the range missing"
    grep -q "^ring/data.bin$" "$T/list" || fail "no ring data"
    for f in MANIFEST.json MANIFEST.sig metrics.prom findings.jsonl audit.jsonl \
             config/tally.json config/redactions.json ledger/watermarks.jsonl ring/control.bin; do
        grep -qx "$f" "$T/list" || fail "$f missing from the bundle"
    done
    # the signature checks with openssl alone
    mkdir "$T/x" && tar --zstd -xf "$BUNDLE" -C "$T/x" MANIFEST.json MANIFEST.sig
    openssl pkeyutl -verify -pubin -inkey "$T/sign.pub" -rawin -in "$T/x/MANIFEST.json" \
        -sigfile "$T/x/MANIFEST.sig" >/dev/null || fail "openssl does not accept the signature"
    # on request, with progress, through tallyctl
    p=$(ctl bundle export --incident "$inc") || fail "tallyctl bundle export failed"
    [ -f "$p" ] || fail "tallyctl bundle export printed $p, not a file"
    verify "$p" >/dev/null || fail "the requested bundle does not verify"
    ctl bundle export --from 1 --to 2000 >/dev/null || fail "export of a seq range failed"
    # detection went on: the halt is as behavior.md's table says
    wait_exit "$ENGINE_PID" $((SECS + 20)) || fail "the engine did not finish"
    stop_tallyd
    check_run '{"findings":[["FORK","out_of_order"]],"actions":[["set_symbol_mode","*","HARD_HALT"],["withdrawals_halt","*",null]]}'
    [ -z "$(ls -A "$T/bundles" | grep '^\.' || true)" ] || fail "temp files left in bundle.dir"
    echo "fork: ok"
    ;;
tamper)
    fork_run
    verify "$BUNDLE" >/dev/null || fail "the bundle does not verify before tampering"
    mkdir "$T/orig"
    tar --zstd -xf "$BUNDLE" -C "$T/orig"
    tar --zstd -tf "$BUNDLE" > "$T/order"
    seg=$(grep '^wal/' "$T/order" | head -1)
    # retar DIR OUT [EXTRA...]: the files of DIR in the bundle's order
    retar() {
        local dir=$1 out=$2; shift 2
        (cd "$dir" && tar --zstd -cf "$out" $(while read -r f; do [ -e "$f" ] && echo "$f"; done < "$T/order") "$@")
    }
    flip() { # flip FILE OFFSET
        python3 - "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read()); b[off] ^= 1; open(p, 'wb').write(b)
PY
    }
    check_fails() { # check_fails NAME FILE EXPECTED_REASON
        local rc=0 out
        out=$(verify "$2") || rc=$?
        [ $rc -eq 1 ] || { echo "$out"; fail "$1: verify exited $rc, not 1"; }
        grep -q "$3" <<<"$out" || { echo "$out"; fail "$1: the reason is not $3"; }
        echo "$1: fails as it must ($3)"
    }
    for t in segment manifest signature removed added; do
        rm -rf "$T/t" && cp -a "$T/orig" "$T/t"
        case $t in
            segment)   flip "$T/t/$seg" 5000; want=hash_mismatch ;;
            manifest)  flip "$T/t/MANIFEST.json" 100; want=signature_invalid ;;
            signature) flip "$T/t/MANIFEST.sig" 10; want=signature_invalid ;;
            removed)   rm "$T/t/metrics.prom"; want=file_missing ;;
            added)     echo extra > "$T/t/notes.txt"; want=file_extra ;;
        esac
        if [ $t = added ]; then retar "$T/t" "$T/$t.tar.zst" notes.txt; else retar "$T/t" "$T/$t.tar.zst"; fi
        check_fails "$t" "$T/$t.tar.zst" "$want"
    done
    # untouched, re-tarred by GNU tar: still verifies
    retar "$T/orig" "$T/same.tar.zst"
    verify "$T/same.tar.zst" >/dev/null || fail "an untouched copy does not verify"
    # usage errors are 2
    rc=0; "$TALLYCTL" bundle verify "$BUNDLE" >/dev/null 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "verify without --pubkey exited $rc, not 2"
    # a bundle that cannot be read does not verify: 1 and the reason (issue 6)
    rc=0; out=$("$TALLYCTL" bundle verify "$T/nonexistent" --pubkey "$T/sign.pub" 2>&1) || rc=$?
    [ $rc -eq 1 ] || fail "verify of a missing file exited $rc, not 1"
    case "$out" in *unreadable*) ;; *) fail "verify of a missing file names no reason: $out" ;; esac
    # a bundle that unpacks beyond --max-bytes fails with its own name
    rc=0; out=$("$TALLYCTL" bundle verify "$BUNDLE" --pubkey "$T/sign.pub" --max-bytes 4096 2>&1) || rc=$?
    [ $rc -eq 1 ] || fail "verify over --max-bytes exited $rc, not 1"
    case "$out" in *unpack_limit*) ;; *) fail "verify over --max-bytes: $out" ;; esac
    stop_tallyd
    echo "tamper: ok"
    ;;
disk_full)
    config
    mounted=0
    if mount -t tmpfs -o size=2m tmpfs "$T/bundles" 2>/dev/null; then
        mounted=1
        trap 'umount "$T/bundles" 2>/dev/null || true; cleanup' EXIT
    fi
    start_engine --rate $RATE --seconds $SECS --segment-bytes 4M --ring-capacity 4M \
        --fault "fork@$S"
    wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
    if [ $mounted -eq 1 ]; then
        start_tallyd
    else
        # no mount here: the same failure from a file size limit (EFBIG)
        (ulimit -f 2048; exec "$TALLYD" --config "$T/tally.json" > "$T/tallyd.out" 2>> "$T/tallyd.err") &
        TALLYD_PID=$!
        PIDS+=("$TALLYD_PID")
    fi
    wait_for 5 test -S "$T/tally.sock" || fail "tallyd's control socket did not appear"
    wait_audit 30 BUNDLE_FAILED || { audit | grep BUNDLE >&2 || true; fail "no BUNDLE_FAILED"; }
    grep '"event":"BUNDLE_FAILED"' "$T/state/audit/audit.jsonl" | head -1 | grep -q '"error":"disk_full"' ||
        fail "BUNDLE_FAILED does not name disk_full"
    ! grep -q '"event":"BUNDLE_DONE"' "$T/state/audit/audit.jsonl" || fail "a bundle was made on a full disk"
    left=$(ls -A "$T/bundles")
    [ -z "$left" ] || fail "left in bundle.dir: $left"
    inc=$(python3 -c "
import json
for l in open('$T/state/audit/audit.jsonl'):
    j=json.loads(l)
    if j.get('event')=='BUNDLE_FAILED': print(j['incidents'].split(',')[0]); break")
    ctl --json incidents "$inc" | python3 -c "
import json,sys
b=json.load(sys.stdin)['bundle']
assert b['state']=='failed' and b['error']=='disk_full', b
print('incident bundle:', b)"
    wait_exit "$ENGINE_PID" $((SECS + 20)) || fail "the engine did not finish"
    stop_tallyd
    [ $mounted -eq 1 ] && umount "$T/bundles"
    echo "disk_full: ok (mounted tmpfs: $mounted)"
    ;;
redaction)
    cp "$T/sidecar.key" "$T/sidecar-S3CRET1.key"
    cp "$T/operator.key" "$T/operator-S3CRET2.key"
    cp "$T/sign.pem" "$T/sign-S3CRET3.pem"
    printf 'TOKENVALUE-S3CRET4-0123456789abcdef\n' > "$T/token-S3CRET5"
    cat > "$T/tally.json" <<JSON
{"engine":{"ring":"$RING","wal_dir":"$T/wal","admin_socket":"$T/admin.sock"},
 "idle":"backoff","mlock":false,"state_dir":"$T/state","lock_dir":"$T/lock",
 "keys":{"sidecar":"$T/sidecar-S3CRET1.key","operator":"$T/operator-S3CRET2.key"},
 "control":{"socket":"$T/tally.sock","listen":"","token_file":"$T/token-S3CRET5"},
 "#db_password":"hunter2-S3CRET6",
 "#upstream":{"url":"https://svc:PW-S3CRET7@example.invalid/x","api_key":"S3CRET8"},
 "bundle":{"auto":true,"dir":"$T/bundles","signing_key":"$T/sign-S3CRET3.pem",
           "snapshot_dir":"$T/snaps"}}
JSON
    start_engine --rate $RATE --seconds 2 --segment-bytes 4M --ring-capacity 4M
    wait_for 5 test -S "$T/admin.sock" || fail "the engine did not start"
    start_tallyd
    wait_for 5 test -S "$T/tally.sock" || fail "tallyd's control socket did not appear"
    sleep 1
    p=$(ctl bundle export --from 1 --to 5000) || fail "export failed"
    "$TALLYCTL" bundle verify "$p" --pubkey "$T/sign.pub" --tmpdir "$T" >/dev/null || fail "it does not verify"
    mkdir "$T/x" && tar --zstd -xf "$p" -C "$T/x"
    for s in S3CRET1 S3CRET2 S3CRET3 S3CRET4 S3CRET5 hunter2-S3CRET6 PW-S3CRET7 S3CRET8 \
             TOKENVALUE; do
        if grep -r -a -l "$s" "$T/x"; then fail "secret $s found in the bundle"; fi
        # and in the compressed file's plain bytes, for what tar would not show
        if zstdcat "$p" | grep -a -q "$s"; then fail "secret $s found in the archive"; fi
    done
    python3 - "$T/x/config/redactions.json" "$T/x/config/tally.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
paths = {e["path"]: e["rule"] for e in r["redacted"]}
want = {"keys.sidecar": "schema_secret", "keys.operator": "schema_secret",
        "control.token_file": "schema_secret", "bundle.signing_key": "schema_secret",
        "#db_password": "key_looks_secret", "#upstream.api_key": "key_looks_secret",
        "#upstream.url": "url_credentials"}
for p, rule in want.items():
    assert paths.get(p) == rule, (p, paths.get(p))
cfg = json.load(open(sys.argv[2]))
assert cfg["keys"]["sidecar"] == "<redacted>"
assert cfg["engine"]["ring"] != "<redacted>"
assert "S3CRET" not in json.dumps(r)
print("redactions:", sorted(paths))
PY
    stop_tallyd
    echo "redaction: ok"
    ;;
export_timeout)
    # a tallyd that never finishes, and one whose reply this build cannot
    # read: `tallyctl bundle export` gives up with exit 2, never hangs
    cat > "$T/fake.py" <<'PY'
import http.server, json, os, socketserver, sys
sock, state = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, doc):
        b = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        self.reply(202, {"id": "b00000000000000f1", "path": "/nowhere/x.tar.zst"})
    def do_GET(self):
        self.reply(200, {"id": "b00000000000000f1", "state": state,
                         "bytes_done": "1", "bytes_total": "10"})
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def get_request(self):
        r, _ = super().get_request()
        return r, ("local", 0)
if os.path.exists(sock): os.unlink(sock)
S(sock, H).serve_forever()
PY
    for st in running weird; do
        python3 "$T/fake.py" "$T/fake-$st.sock" "$st" & fpid=$!
        for _ in $(seq 100); do [ -S "$T/fake-$st.sock" ] && break; sleep 0.05; done
        t0=$(date +%s)
        rc=0; out=$("$TALLYCTL" --socket "$T/fake-$st.sock" bundle export --from 1 --to 2 \
                    --timeout 1 2>&1) || rc=$?
        t1=$(date +%s)
        kill $fpid; wait $fpid 2>/dev/null || true
        [ $rc -eq 2 ] || fail "export against a '$st' tallyd exited $rc, not 2: $out"
        [ $((t1 - t0)) -le 5 ] || fail "export against a '$st' tallyd took $((t1 - t0)) s"
        case "$st:$out" in
        running:*"no end within --timeout 1 s"*) ;;
        weird:*"unreadable reply"*) ;;
        *) fail "export against a '$st' tallyd: $out" ;;
        esac
    done
    rc=0; "$TALLYCTL" --socket "$T/none.sock" bundle export --from 1 --to 2 --timeout 0 \
        >/dev/null 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "--timeout 0 exited $rc, not 2"
    echo "export_timeout: ok"
    ;;
*)
    fail "unknown kind $kind"
    ;;
esac
