#!/usr/bin/python3
"""Cross-checks one lab recording with tshark.

usage: verify.py NAME [--quiet]        e.g. verify.py threads-c16
reads  pcaps/lab/NAME.pcap, NAME.truth.tsv, NAME.services.toml and
       scripts/causality-lab/runs/NAME/{*.access, *.calls, client.log, tcpdump.stderr}
checks
  1. per server: HTTP requests and responses in the pcap == lines of its access log; for the
     callees also == truth lines naming it as call_server (1:1)
  2. every truth call is on the wire: a request on (call_client -> call_server) within 50 ms
     of call_send_ns (nearest; each wire request claimed once); and plain nearest matching
     (no claiming) never picks one wire request for two truth calls
  3. every call lies inside its parent's span: parent = the latest wire request on
     (parent_client -> parent_server) at or before parent_recv_ns; the call's wire request
     lies between that request and its response
  4. tcpdump: 0 packets dropped by kernel, packets captured == received by filter
  5. no X-Client-Req / traceparent / request id on any request past the front
prints a summary (and one JSON line `STATS {...}`); exit 1 on any mismatch
"""
import bisect
import collections
import glob
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAME = sys.argv[1]
LAB = os.path.join(ROOT, "pcaps", "lab")
PCAP = os.path.join(LAB, NAME + ".pcap")
RUN = os.path.join(HERE, "runs", NAME)
ok = True


def fail(msg):
    global ok
    ok = False
    print("   FAILED: " + msg)


def tshark(filt, *fields):
    # -d: without it tshark dissects some connections by their ephemeral port (34980 = EtherCAT)
    cmd = ["tshark", "-r", PCAP, "-d", "tcp.port==8000-8004,http", "-o", "tcp.desegment_tcp_streams:TRUE",
           "-o", "http.desegment_body:TRUE",
           "-Y", filt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


svc = {}
for line in open(os.path.join(LAB, NAME + ".services.toml")):
    m = re.match(r'\s*"([\d.]+:\d+)"\s*=\s*"(\w+)"', line)
    if m:
        svc[m.group(1)] = m.group(2)
name_of_ip = {a.split(":")[0]: n for a, n in svc.items()}

# ---------------------------------------------------------------- pcap
reqs = [dict(fr=int(a), t=round(float(b) * 1e6), src="%s:%s" % (c, d), dst="%s:%s" % (e, f), uri=g, hdr=h)
        for a, b, c, d, e, f, g, h in tshark("http.request", "frame.number", "frame.time_epoch", "ip.src",
                                             "tcp.srcport", "ip.dst", "tcp.dstport", "http.request.uri",
                                             "http.request.line")]
resps = [dict(fr=int(a), t=round(float(b) * 1e6), src="%s:%s" % (c, d), req=int(e), code=int(f))
         for a, b, c, d, e, f in tshark("http.response", "frame.number", "frame.time_epoch", "ip.src", "tcp.srcport",
                                        "http.request_in", "http.response.code") if e]
resp_of = {r["req"]: r for r in resps}

# ---------------------------------------------------------------- logs
access = collections.defaultdict(list)
for f in glob.glob(os.path.join(RUN, "*.access")):
    role = os.path.basename(f).split(".")[0]
    for line in open(f):
        a = line.rstrip("\n").split("\t")
        access[role].append(dict(recv=int(a[0]), done=int(a[1]), peer=a[2], server=a[3], method=a[4], path=a[5],
                                 status=int(a[6])))
truth = []
with open(os.path.join(LAB, NAME + ".truth.tsv")) as fh:
    head = fh.readline().rstrip("\n").split("\t")
    assert head == ["caller", "call_client", "call_server", "call_send_ns", "parent_client", "parent_server",
                    "parent_recv_ns"], head
    for line in fh:
        c = line.rstrip("\n").split("\t")
        truth.append(dict(caller=c[0], cc=c[1], cs=c[2], t=int(c[3]), pc=c[4], ps=c[5], pt=int(c[6])))
raw_calls = []
for f in glob.glob(os.path.join(RUN, "*.calls")):
    raw_calls += [l.rstrip("\n").split("\t") for l in open(f)]
client = [l.split("\t") for l in open(os.path.join(RUN, "client.log"))]

print("== %s: %d HTTP requests, %d responses on the wire; %d truth lines; %d client transfers"
      % (NAME, len(reqs), len(resps), len(truth), len(client)))

# 1. counts per server
pc = collections.Counter(svc.get(q["dst"], q["dst"]) for q in reqs)
rc = collections.Counter(svc.get(r["src"], r["src"]) for r in resps)
tc = collections.Counter(svc.get(t["cs"], t["cs"]) for t in truth)
print("-- per server: wire requests / wire responses / access-log lines / truth calls to it")
for a, s in sorted(svc.items(), key=lambda x: x[0]):
    want_t = "-" if s == "front" else tc[s]
    print("   %-8s %-16s %5d %5d %5d %5s" % (s, a, pc[s], rc[s], len(access[s]), want_t))
    if not (pc[s] == rc[s] == len(access[s])) or (s != "front" and tc[s] != pc[s]):
        fail("count mismatch for %s" % s)
if len(client) != pc["front"]:
    fail("client transfers %d != front requests %d" % (len(client), pc["front"]))
codes = collections.Counter((svc.get(r["src"]), r["code"]) for r in resps)
print("-- responses by server and status: " + ", ".join("%s %d: %d" % (k[0], k[1], v) for k, v in sorted(codes.items())))
errs = sum(1 for c in raw_calls if c[10] == "ERR")
print("-- call attempts that failed without an HTTP response (ERR in the raw call logs): %d" % errs)
retries = sum(1 for c in raw_calls if c[11] == "2")
print("-- retries (second attempts after a 503): %d" % retries)
if errs:
    fail("failed calls")

# 5. no id past the front
leak = [q for q in reqs if svc.get(q["dst"]) != "front" and re.search(r"x-client-req|x-request-id|traceparent", q["hdr"], re.I)]
print("-- requests past the front carrying an id header: %d" % len(leak))
if leak:
    fail("id header leaked")

# 2. every truth call on the wire
by_conn = collections.defaultdict(list)
for q in reqs:
    by_conn[(q["src"], q["dst"])].append(q)
for v in by_conn.values():
    v.sort(key=lambda q: q["t"])
claimed = set()
unmatched = []
deltas = []
match = {}
for i, t in enumerate(sorted(truth, key=lambda t: t["t"])):
    cands = [q for q in by_conn.get((t["cc"], t["cs"]), []) if q["fr"] not in claimed]
    if not cands:
        unmatched.append(t); continue
    q = min(cands, key=lambda q: abs(q["t"] * 1000 - t["t"]))
    d = q["t"] * 1000 - t["t"]
    if abs(d) > 50_000_000:
        unmatched.append(t); continue
    claimed.add(q["fr"])
    deltas.append(d)
    match[id(t)] = q
deltas.sort()
print("-- truth calls found on the wire (4-tuple, nearest time, <= 50 ms): %d of %d; wire - send: min %.1f us, median %.1f us, max %.1f us"
      % (len(truth) - len(unmatched), len(truth), deltas[0] / 1e3 if deltas else 0,
         deltas[len(deltas) // 2] / 1e3 if deltas else 0, deltas[-1] / 1e3 if deltas else 0))
if unmatched:
    fail("%d truth calls not on the wire, e.g. %s" % (len(unmatched), unmatched[:3]))
# the same, the way a test would do it: each truth call -> its nearest wire request on that
# connection, no claiming; no two truth calls may pick the same wire request
pick = collections.Counter()
for t in truth:
    cands = by_conn.get((t["cc"], t["cs"]), [])
    if cands:
        pick[min(cands, key=lambda q: abs(q["t"] * 1000 - t["t"]))["fr"]] += 1
shared = sum(v - 1 for v in pick.values() if v > 1)
print("-- truth calls whose plain nearest wire request (no claiming) is also another call's: %d" % shared)
if shared:
    fail("ambiguous nearest-time matches")
neg = sum(1 for d in deltas if d < 0)
if neg:
    print("   note: %d calls whose wire time precedes call_send_ns" % neg)

# 3. call inside its parent's span
inside = 0
outside = []
for t in truth:
    q = match.get(id(t))
    if q is None:
        continue
    cands = by_conn.get((t["pc"], t["ps"]), [])
    ts = [p["t"] * 1000 for p in cands]
    k = bisect.bisect_right(ts, t["pt"]) - 1
    if k < 0:
        outside.append((t, "no parent request")); continue
    p = cands[k]
    r = resp_of.get(p["fr"])
    if r and p["t"] <= q["t"] <= r["t"]:
        inside += 1
    else:
        outside.append((t, "parent %d..%s, call %d" % (p["t"], r and r["t"], q["t"])))
print("-- truth calls inside their parent's span on the wire (request .. response): %d of %d" % (inside, len(truth)))
if outside:
    fail("%d calls outside their parent, e.g. %s" % (len(outside), outside[:2]))

# 4. tcpdump drops
tdump = open(os.path.join(RUN, "tcpdump.stderr")).read()
m = re.search(r"(\d+) packets dropped by kernel", tdump)
drops = int(m.group(1)) if m else -1
print("-- tcpdump: %s" % " / ".join(l for l in tdump.splitlines() if "packets" in l))
if drops != 0:
    fail("tcpdump dropped packets (or no count)")
cap = re.search(r"(\d+) packets captured", tdump)
rcv = re.search(r"(\d+) packets received by filter", tdump)
if not cap or not rcv or cap.group(1) != rcv.group(1):
    fail("tcpdump: packets captured != packets received by filter (packets left in the ring?)")

# concurrency at the front, on the wire
ev = sorted([(q["t"], 1) for q in reqs if svc.get(q["dst"]) == "front"] +
            [(resp_of[q["fr"]]["t"], -1) for q in reqs if svc.get(q["dst"]) == "front" and q["fr"] in resp_of])
cur = mx = 0
for _, d in ev:
    cur += d
    mx = max(mx, cur)
conns = collections.Counter(svc.get(b) for (a, b) in by_conn)
print("-- front requests open at once on the wire: max %d; TCP connections with requests, per server: %s"
      % (mx, dict(conns)))
size = os.path.getsize(PCAP)
print("-- pcap %d bytes, frames: %s" % (size, subprocess.run(["capinfos", "-c", "-M", PCAP], capture_output=True,
                                                             text=True).stdout.split()[-1]))
print("STATS " + json.dumps(dict(name=NAME, inbound=pc["front"], calls=sum(pc.values()) - pc["front"],
                                 truth=len(truth), size=size, maxconc=mx, retries=retries, drops=drops,
                                 unmatched=len(unmatched), outside=len(outside),
                                 dmed_us=round(deltas[len(deltas) // 2] / 1e3, 1) if deltas else None,
                                 dmax_us=round(deltas[-1] / 1e3, 1) if deltas else None,
                                 result="OK" if ok else "FAIL")))
print("RESULT: %s" % ("OK" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
