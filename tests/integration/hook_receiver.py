#!/usr/bin/env python3
"""hook_receiver.py: a webhook receiver for tally's alert tests: a real HTTP
server in its own process (http.server, one request at a time).

  hook_receiver.py --port-file F --log F [--fail-first] [--slow-ms N]

Each POST body is a JSON document. A body is accepted (200) and appended to
--log as one line {"n": <arrival>, "attempt": <k>, "body": <the JSON>}.
--fail-first answers 500 to the first attempt of every distinct body (so
each one arrives twice: a failure, then the retry); --slow-ms sleeps before
answering. Bad JSON is answered 400 and logged with "bad": true. Stops on
SIGTERM.
"""
import argparse, json, signal, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--fail-first", action="store_true")
ap.add_argument("--slow-ms", type=int, default=0)
a = ap.parse_args()

seen = {}
arrivals = [0]
out = open(a.log, "a", buffering=1)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tally's client expects

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        arrivals[0] += 1
        if a.slow_ms:
            time.sleep(a.slow_ms / 1000.0)
        try:
            body = json.loads(raw)
        except ValueError:
            out.write(json.dumps({"n": arrivals[0], "bad": True}) + "\n")
            return self.reply(400)
        k = seen.get(raw, 0) + 1
        seen[raw] = k
        if a.fail_first and k == 1:
            return self.reply(500)
        out.write(json.dumps({"n": arrivals[0], "attempt": k, "body": body}) + "\n")
        self.reply(200)

    def reply(self, code):
        msg = b"{}"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        self.wfile.write(msg)

srv = HTTPServer(("127.0.0.1", 0), H)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(a.port_file + ".tmp", a.port_file)
srv.serve_forever()
