#!/usr/bin/env python3
"""etcd_lag_proxy.py: a lagging view of etcd for the lease tests: a real HTTP
server in its own process that relays POSTs to etcd's JSON gateway.

  etcd_lag_proxy.py --etcd URL --port-file F --hold-file F

Every POST is relayed to --etcd and its reply returned as is. While
--hold-file exists, a /v3/kv/range is not relayed: it is answered with the
last range reply relayed before the hold, byte for byte. That is what a
member that stopped applying the log (a partitioned follower serving
serializable reads) answers: a true reading of an older store, whose
header.revision is below every put made since. It lets a test make tally
read the standby's LEADER_CHANGE before any reading that saw the put
(ledger.md's race rules). Stops on SIGTERM.
"""
import argparse, os, signal, sys, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--etcd", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--hold-file", required=True)
a = ap.parse_args()

last_range = [None]  # (status, body) of the last range relayed


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tally's client expects

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        if self.path == "/v3/kv/range" and os.path.exists(a.hold_file) and last_range[0]:
            self.reply(*last_range[0])
            return
        req = urllib.request.Request(a.etcd + self.path, data=raw,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError:
            status, body = 502, b"{}"
        if self.path == "/v3/kv/range" and status == 200:
            last_range[0] = (status, body)
        self.reply(status, body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
srv.serve_forever()
