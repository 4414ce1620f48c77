#!/usr/bin/python3
"""Prints the timing / concurrency figures quoted in pcaps/workers-c16.md (tshark + the truth logs).
usage: notes/stats.py [NAME]    (run in the folder that holds out/; default workers-c16)"""
import bisect
import collections
import statistics
import subprocess
import sys

NAME = sys.argv[1] if len(sys.argv) > 1 else "workers-c16"
PCAP = "out/%s.pcap" % NAME
FRONT = "10.77.0.10"
SVC = {"10.77.0.10": "front", "10.77.0.11": "users", "10.77.0.12": "stock", "10.77.0.20": "client"}


def tshark(filt, *fields, reasm=True):
    cmd = ["tshark", "-r", PCAP]
    if reasm:
        cmd += ["-o", "tcp.desegment_tcp_streams:TRUE", "-o", "http.desegment_body:TRUE"]
    cmd += ["-Y", filt, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    return [l.split("\t") for l in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()]


def rng(xs, f=1e3):
    xs = [x * f for x in xs]
    return "%.2f-%.2f ms (mean %.2f, median %.2f, n=%d)" % (min(xs), max(xs), statistics.mean(xs), statistics.median(xs), len(xs))


reqs = [dict(fr=int(a), t=float(b), st=int(c), src="%s:%s" % (d, e), dst=f, n=g)
        for a, b, c, d, e, f, g in tshark("http.request", "frame.number", "frame.time_epoch", "tcp.stream",
                                          "ip.src", "tcp.srcport", "ip.dst", "http.request.line")]
for q in reqs:
    m = [h for h in q["n"].split(",") if h.startswith("X-Client-Req: ")]
    q["n"] = m[0][len("X-Client-Req: "):].replace("\\r\\n", "") if m else None
resps = {int(a): dict(t=float(b), httptime=float(c)) for a, b, c in
         tshark("http.response", "http.request_in", "frame.time_epoch", "http.time")}
for q in reqs:
    q["rt"] = resps[q["fr"]]["t"]
    q["ht"] = resps[q["fr"]]["httptime"]

front = [l.split() for l in open("out/%s.front.log" % NAME)]
calls = [l.split() for l in open("out/%s.front-calls.log" % NAME)]

print("== %s" % PCAP)
for s in ("front", "users", "stock"):
    print("%-6s answer time (tshark http.time): %s" % (s, rng([q["ht"] for q in reqs if SVC[q["dst"]] == s])))

inb = {q["n"]: q for q in reqs if q["dst"] == FRONT}
assert len(inb) == len(front)
wait = [float(f[2]) - inb[f[0]]["t"] for f in front]
print("inbound: wire request -> app called (t_start), i.e. waiting for a free worker: %s" % rng(wait))
print("inbound: app time t_start..t_end: %s" % rng([float(f[3]) - float(f[2]) for f in front]))
print("outbound calls per inbound request: %s" % dict(sorted(collections.Counter(
    collections.Counter(c[0] for c in calls).values()).items())))

# concurrency on the wire: client requests open (request frame .. response frame)
starts = sorted(q["t"] for q in inb.values())
ends = sorted(q["rt"] for q in inb.values())


def open_at(t):
    return bisect.bisect_right(starts, t) - bisect.bisect_left(ends, t)


# time-weighted distribution of open client requests between the first request and last response
ev = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
dist = collections.Counter()
cur = 0
for (t, d), (t2, _) in zip(ev, ev[1:] + [(ev[-1][0], 0)]):
    cur += d
    dist[cur] += t2 - t
tot = sum(dist.values())
print("client requests open on the wire, share of time from first request to last response (%.3f s): %s"
      % (tot, ", ".join("%d: %.1f%%" % (k, 100 * v / tot) for k, v in sorted(dist.items()))))
cand = [open_at(q["t"]) for q in reqs if q["dst"] != FRONT]
print("client requests open on the wire when a backend request is sent: %d-%d (mean %.1f); distribution %s"
      % (min(cand), max(cand), statistics.mean(cand), dict(sorted(collections.Counter(cand).items()))))
t0s = sorted(float(f[2]) for f in front)
t1s = sorted(float(f[3]) for f in front)
inapp = [bisect.bisect_right(t0s, float(c[5])) - bisect.bisect_left(t1s, float(c[5])) for c in calls]
print("inbound requests inside the app (front.log) when a call is sent (front-calls t_send): %s"
      % dict(sorted(collections.Counter(inapp).items())))

# per backend connection: requests strictly one after the other (no pipelining); gaps
byconn = collections.defaultdict(list)
for q in reqs:
    if q["dst"] != FRONT:
        byconn[(SVC[q["dst"]], q["src"])].append(q)
overlap = 0
gaps = collections.defaultdict(list)
for (be, loc), qs in byconn.items():
    qs.sort(key=lambda q: q["fr"])
    for a, b in zip(qs, qs[1:]):
        if b["t"] < a["rt"]:
            overlap += 1
        gaps[be].append(b["t"] - a["rt"])
print("backend connections: requests sent before the previous response on the same connection: %d" % overlap)
for be in ("users", "stock"):
    print("  %s: idle gap between a response and the next request on the same connection: %s" % (be, rng(gaps[be])))
# per stock connection, the calls of one client request are consecutive
runs = 0
split = 0
cl = {(c[2], c[4], int(c[7])): c[0] for c in calls}
for (be, loc), qs in byconn.items():
    if be != "stock":
        continue
    ns = [cl[("stock", loc, i + 1)] for i in range(len(qs))]
    groups = [k for k, _ in __import__("itertools").groupby(ns)]
    runs += len(groups)
    split += len(groups) - len(set(groups))
print("stock connections: %d runs of consecutive calls of one client request, %d client requests split over 2+ runs" % (runs, split))
# gaps inside one inbound request
per = collections.defaultdict(list)
for c in calls:
    per[c[0]].append((float(c[5]), float(c[6]), c[2]))
u2s, s2s = [], []
for n, cs in per.items():
    cs.sort()
    u2s.append(cs[1][0] - cs[0][1])
    s2s += [b[0] - a[1] for a, b in zip(cs[1:], cs[2:])]
print("front: users response read -> first stock request (t_send): %s" % rng(u2s))
print("front: stock response read -> next stock request: %s" % rng(s2s))
segs = tshark("tcp.len>0 && tcp.srcport==8000", "tcp.stream", reasm=False)
print("front responses: TCP payload segments per response: %s" % dict(collections.Counter(collections.Counter(s[0] for s in segs).values())))
for p in ("8001", "8002"):
    segs = tshark("tcp.len>0 && tcp.srcport==%s" % p, "frame.number", reasm=False)
    print("port %s: response segments %d" % (p, len(segs)))
segs = tshark("tcp.len>0 && (tcp.dstport==8001 || tcp.dstport==8002)", "frame.number", reasm=False)
print("backend request segments %d" % len(segs))
# who closes a client -> front connection first
fins = tshark("tcp.flags.fin==1 && tcp.port==8000", "tcp.stream", "ip.src", reasm=False)
first = {}
for st, src in fins:
    first.setdefault(st, SVC[src])
print("client -> front connections: first FIN sent by %s" % dict(collections.Counter(first.values())))
