#!/usr/bin/env python3
"""peer_proxy.py: the UDP path between two tallyds in the peer integration
tests (run_peer.sh), with a lossy link and an attacker on it.

    peer_proxy.py --route LISTEN_PORT:TARGET_PORT [--route ...] --key FILE
                  [--drop P] [--inject spoof,replay,unknown,malformed]
                  [--summary FILE] [--seed N]

Each route forwards datagrams arriving on 127.0.0.1:LISTEN_PORT to
127.0.0.1:TARGET_PORT. --drop drops that fraction of them (a lossy peer
path: packet loss must never make tally act). --inject adds datagrams that
must never be accepted, towards the same target:
  spoof      a real datagram with a changed field and its old mac (bad_mac)
  replay     a real datagram sent again, unchanged, a while later (replay)
  unknown    a datagram with a valid mac (the shared key) from a node_id
             no tally lists (unknown_node)
  malformed  junk: other lengths, a bad magic (malformed)
Every fifth forwarded datagram triggers one injection of each kind asked
for. On SIGUSR1 it sends the last 50 datagrams it forwarded to each target
again ("burst": after a tally restarts, they must all be replays, its
counters having been persisted). On SIGTERM it writes what it forwarded,
dropped and injected, per target port, to --summary as JSON.
"""
import argparse, hashlib, hmac, json, os, random, selectors, signal, socket, struct, sys, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--route", action="append", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--inject", default="")
    ap.add_argument("--summary")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    key = open(a.key, "rb").read()
    kinds = [k for k in a.inject.split(",") if k]
    rnd = random.Random(a.seed)
    sel = selectors.DefaultSelector()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stats = {}
    routes = {}
    for r in a.route:
        lp, tp = (int(x) for x in r.split(":"))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", lp))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, tp)
        routes[lp] = tp
        stats[str(tp)] = {"forwarded": 0, "dropped": 0, "spoof": 0, "replay": 0, "unknown": 0,
                          "malformed": 0, "burst": 0}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    burst = [False]
    signal.signal(signal.SIGUSR1, lambda *_: burst.__setitem__(0, True))
    last = {}      # target -> the last 50 forwarded
    seen = {}      # target -> recent real datagrams
    pending = []   # (due, target, bytes, kind)

    def send(tp, b, kind):
        out.sendto(b, ("127.0.0.1", tp))
        stats[str(tp)][kind] += 1

    def inject(tp, d):
        st = seen.setdefault(tp, [])
        st.append(d)
        if len(st) > 200:
            del st[:100]
        if stats[str(tp)]["forwarded"] % 5 != 0:
            return
        if "spoof" in kinds and len(d) == 136:
            x = bytearray(d)
            x[48] ^= 1  # applied_seq changed, mac kept
            send(tp, bytes(x), "spoof")
        if "unknown" in kinds and len(d) == 136:
            x = bytearray(d)
            x[16:32] = bytes(rnd.randrange(256) for _ in range(16))
            x[104:136] = hmac.new(key, bytes(x[:104]), hashlib.sha256).digest()
            send(tp, bytes(x), "unknown")
        if "malformed" in kinds:
            n = rnd.choice([0, 1, 100, 135, 137, 300])
            send(tp, bytes(rnd.randrange(256) for _ in range(n)), "malformed")
            x = bytearray(d)
            x[0] ^= 0xff
            send(tp, bytes(x), "malformed")
        if "replay" in kinds and len(st) > 10:
            old = st[rnd.randrange(len(st) - 10)]
            pending.append((time.monotonic() + 0.05, tp, old, "replay"))

    while not stop[0]:
        for key_, _ in sel.select(timeout=0.01):
            s, tp = key_.fileobj, key_.data
            while True:
                try:
                    d = s.recv(4096)
                except BlockingIOError:
                    break
                if a.drop > 0 and rnd.random() < a.drop:
                    stats[str(tp)]["dropped"] += 1
                    continue
                send(tp, d, "forwarded")
                lst = last.setdefault(tp, [])
                lst.append(d)
                del lst[:-50]
                if kinds:
                    inject(tp, d)
        if burst[0]:
            burst[0] = False
            for tp, lst in last.items():
                for d in lst:
                    send(tp, d, "burst")
        now = time.monotonic()
        due = [p for p in pending if p[0] <= now]
        pending[:] = [p for p in pending if p[0] > now]
        for _, tp, b, kind in due:
            send(tp, b, kind)
    if a.summary:
        with open(a.summary + ".tmp", "w") as f:
            json.dump(stats, f)
        os.replace(a.summary + ".tmp", a.summary)

if __name__ == "__main__":
    main()
