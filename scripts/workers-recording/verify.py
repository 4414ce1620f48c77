#!/usr/bin/python3
"""Cross-checks out/NAME.pcap against the services' truth logs out/NAME.{front,front-calls,users,stock,client}.log
with tshark.

usage: verify.py [NAME]      (default workers-c16; run in the folder that holds out/)
prints a report; exit 1 if the pcap and the logs disagree
"""
import collections
import re
import subprocess
import sys

NAME = sys.argv[1] if len(sys.argv) > 1 else "workers-c16"
PCAP = "out/%s.pcap" % NAME
FRONT, USERS, STOCK, CLIENT = "10.77.0.10", "10.77.0.11", "10.77.0.12", "10.77.0.20"
SVC = {FRONT: "front", USERS: "users", STOCK: "stock", CLIENT: "client"}
ok = True


def fail(msg):
    global ok
    ok = False
    print("   FAILED: " + msg)


def tshark(filt, *fields):
    cmd = ["tshark", "-r", PCAP, "-o", "tcp.desegment_tcp_streams:TRUE", "-o",
           "http.desegment_body:TRUE", "-Y", filt, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def rd(kind):
    return [l.split() for l in open("out/%s.%s.log" % (NAME, kind))]


# ---------------------------------------------------------------- the pcap
reqs = [dict(fr=int(a), t=float(b), st=int(c), src="%s:%s" % (d, e), sip=d, dst=f, uri=g, hdr=h, ver=i)
        for a, b, c, d, e, f, g, h, i in tshark(
            "http.request", "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "tcp.srcport",
            "ip.dst", "http.request.uri", "http.request.line", "http.request.version")]
resps = [dict(fr=int(a), t=float(b), st=int(c), src=d, req=int(e), code=int(f), clen=g, ver=h, conn=i)
         for a, b, c, d, e, f, g, h, i in tshark(
             "http.response", "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "http.request_in",
             "http.response.code", "http.content_length_header", "http.response.version", "http.connection")]
resp_of = {r["req"]: r for r in resps}
# order of each request on its TCP connection (1, 2, ...)
seen = collections.Counter()
for q in sorted(reqs, key=lambda q: q["fr"]):
    seen[q["st"]] += 1
    q["seq"] = seen[q["st"]]


def hdr(q, name):
    m = re.search(r"(?:^|\|)%s: ([^|]*?)\\r\\n" % re.escape(name), q["hdr"], re.I)
    return m.group(1) if m else None


# ---------------------------------------------------------------- the logs
front = [dict(n=a, pid=int(b), t0=float(c), t1=float(d), remote=e, path=f, status=int(g))
         for a, b, c, d, e, f, g in rd("front")]
calls = [dict(n=a, pid=int(b), be=c, path=d, local=e, t0=float(f), t1=float(g), seq=int(h), status=i)
         for a, b, c, d, e, f, g, h, i in rd("front-calls")]
back = {}
for be in ("users", "stock"):
    back[be] = [dict(t0=float(a), remote=b, seq=int(c), meth=d, path=e, status=int(f), nbytes=int(g), t1=float(h))
                for a, b, c, d, e, f, g, h in rd(be)]
client = [dict(n=a, code=int(b), size=int(c), ttot=float(d), local=e, path=f) for a, b, c, d, e, f in rd("client")]

print("== %s: %d HTTP requests, %d HTTP responses (tshark); logs: front %d, front-calls %d, users %d, stock %d, client %d lines"
      % (PCAP, len(reqs), len(resps), len(front), len(calls), len(back["users"]), len(back["stock"]), len(client)))

# ---------------------------------------------------------------- counts per server
print("\n-- HTTP requests per server (tshark -Y http.request) vs. log lines")
pc = collections.Counter(SVC[q["dst"]] for q in reqs)
lc = {"front": len(front), "users": len(back["users"]), "stock": len(back["stock"])}
cc = collections.Counter(c["be"] for c in calls)
for s in ("front", "users", "stock"):
    extra = "" if s == "front" else ", front-calls.log %d" % cc[s]
    print("%-6s pcap %4d   %s.log %4d%s" % (s, pc[s], s, lc[s], extra))
    if pc[s] != lc[s] or (s != "front" and cc[s] != lc[s]):
        fail("count mismatch for " + s)
print("client.log %d curls, front.log %d inbound requests" % (len(client), len(front)))
if len(client) != len(front):
    fail("client/front count")
print("-- HTTP responses per server and status (tshark -Y http.response)")
rc = collections.Counter((SVC[r["src"]], r["code"]) for r in resps)
for k in sorted(rc):
    print("%-6s %d  %4d" % (k[0], k[1], rc[k]))
print("-- requests without a response: %d" % sum(1 for q in reqs if q["fr"] not in resp_of))
if len(resps) != len(reqs):
    fail("requests without response")
print("-- versions: requests %s; responses %s; Content-Length on %d of %d responses; Connection header on responses %s"
      % (dict(collections.Counter(q["ver"] for q in reqs)), dict(collections.Counter(r["ver"] for r in resps)),
         sum(1 for r in resps if r["clen"]), len(resps),
         dict(collections.Counter((SVC[r["src"]], r["conn"] or "-") for r in resps))))
print("-- responses with Transfer-Encoding: %d" % len(tshark("http.transfer_encoding", "frame.number")))

# ---------------------------------------------------------------- headers
print("\n-- request header names, per server (pcap)")
for s in ("front", "users", "stock"):
    names = collections.Counter()
    for q in reqs:
        if SVC[q["dst"]] == s:
            names[tuple(h.split(":")[0] for h in q["hdr"].split("|"))] += 1
    for k, v in names.items():
        print("%-6s %4d x %s" % (s, v, ", ".join(k)))
leak = [q for q in reqs if q["dst"] != FRONT and re.search(r"x-client-req|x-request-id|traceparent", q["hdr"], re.I)]
print("-- backend requests carrying X-Client-Req / X-Request-ID / traceparent: %d" % len(leak))
if leak:
    fail("id header on a backend request")

# ---------------------------------------------------------------- one-to-one joins
# inbound: pcap (client ip:port, path, X-Client-Req, status) == front.log == client.log
pin = collections.Counter((q["src"], q["uri"], hdr(q, "X-Client-Req"), resp_of[q["fr"]]["code"])
                          for q in reqs if q["dst"] == FRONT)
lin = collections.Counter((f["remote"], f["path"], f["n"], f["status"]) for f in front)
cin = collections.Counter((c["local"], c["path"], c["n"], c["code"]) for c in client)
print("\n-- join inbound: pcap (client ip:port, path, X-Client-Req, status) <-> front.log <-> client.log: %s"
      % ("all %d match" % sum(pin.values()) if pin == lin == cin else "MISMATCH"))
if not pin == lin == cin:
    fail("inbound join")
# outbound: pcap (backend, front ip:port, order on connection, path, status) == backend log == front-calls.log
pout = collections.Counter((SVC[q["dst"]], q["src"], q["seq"], q["uri"], resp_of[q["fr"]]["code"])
                           for q in reqs if q["dst"] != FRONT)
bout = collections.Counter((be, b["remote"], b["seq"], b["path"], b["status"]) for be in back for b in back[be])
fout = collections.Counter((c["be"], c["local"], c["seq"], c["path"], int(c["status"]) if c["status"] != "ERR" else -1)
                           for c in calls)
print("-- join outbound: pcap (backend, front ip:port, order on connection, path, status) <-> users/stock.log <-> front-calls.log: %s"
      % ("all %d match" % sum(pout.values()) if pout == bout == fout else "MISMATCH"))
if not pout == bout == fout:
    fail("outbound join")
    print("   only in pcap vs front-calls:", list((pout - fout).items())[:5])
    print("   only in front-calls vs pcap:", list((fout - pout).items())[:5])
print("-- front-calls.log lines with status ERR (reconnects): %d" % sum(1 for c in calls if c["status"] == "ERR"))

# timing sanity: each logged call brackets its request on the wire, each inbound request too
byk = {(SVC[q["dst"]], q["src"], q["seq"]): q for q in reqs if q["dst"] != FRONT}
bad = sum(1 for c in calls if not (c["t0"] <= byk[(c["be"], c["local"], c["seq"])]["t"] <= c["t1"]))
print("-- outbound calls whose wire request time lies in [t_send, t_done] of front-calls.log: %d of %d"
      % (len(calls) - bad, len(calls)))
# (client ip:port, X-Client-Req): a client port can occur in two TCP connections (see below)
inb = {(q["src"], hdr(q, "X-Client-Req")): q for q in reqs if q["dst"] == FRONT}
bad_in = sum(1 for f in front if not (inb[(f["remote"], f["n"])]["t"] <= f["t0"]
                                      and resp_of[inb[(f["remote"], f["n"])]["fr"]]["t"] <= f["t1"] + 0.001))
print("-- inbound requests with wire request frame <= t_start and wire response frame <= t_end + 1 ms: %d of %d"
      % (len(front) - bad_in, len(front)))
if bad or bad_in:
    fail("timing")
# every outbound call lies inside its inbound request's [t_start, t_end] and has the same pid
fmap = {f["n"]: f for f in front}
inside = sum(1 for c in calls if fmap[c["n"]]["pid"] == c["pid"] and fmap[c["n"]]["t0"] <= c["t0"] <= c["t1"] <= fmap[c["n"]]["t1"])
print("-- outbound calls inside their inbound request's [t_start, t_end], same pid: %d of %d" % (inside, len(calls)))
if inside != len(calls):
    fail("nesting")
# per inbound request: 1 users call then n%4+1 stock calls /stock/1.., in that order, on one worker
shape = collections.Counter()
percall = collections.defaultdict(list)
for c in calls:
    percall[c["n"]].append(c)
for n, cs in percall.items():
    cs.sort(key=lambda c: c["t0"])
    want = ["users /user/%d" % (int(n) % 50)] + ["stock /stock/%d" % k for k in range(1, int(n) % 4 + 2)]
    shape["as designed" if [c["be"] + " " + c["path"] for c in cs] == want else "NOT as designed"] += 1
print("-- per client request, calls = users /user/{n%%50} then stock /stock/1..(n%%4+1): %s" % dict(shape))
if shape["NOT as designed"] or len(percall) != len(front):
    fail("call shape")

# ---------------------------------------------------------------- connections
print("\n-- tshark -q -z conv,tcp: front -> backend conversations")
conv = subprocess.run(["tshark", "-r", PCAP, "-q", "-z", "conv,tcp"], capture_output=True, text=True, check=True).stdout
lines = conv.splitlines()
print("\n".join(l for l in lines[:5] if l.strip()))
be_lines = [l for l in lines if re.match(r"\s*10\.77\.0\.10:\d+\s+<->\s+10\.77\.0\.1[12]:800[12]\s", l)]
print("\n".join(be_lines))
cli_lines = [l for l in lines if re.match(r"\s*10\.77\.0\.20:\d+\s+<->\s+10\.77\.0\.10:8000\s", l)]
per = collections.Counter(re.search(r"<->\s+(\S+)", l).group(1) for l in be_lines)
print("-- conv,tcp: %s; client -> front %d conversations (of %d lines in the table)"
      % (", ".join("front -> %s %d" % (k, v) for k, v in sorted(per.items())), len(cli_lines),
         sum(1 for l in lines if "<->" in l)))
ports = collections.Counter(q["src"] for q in reqs if q["dst"] == FRONT)
print("-- client ip:port values used by two or more client -> front connections (separate SYNs, one after the other): %d"
      % sum(1 for v in ports.values() if v > 1))
syn = tshark("tcp.flags.syn==1 && tcp.flags.ack==0", "ip.src", "ip.dst")
c = collections.Counter((SVC[a], SVC[b]) for a, b in syn)
print("-- TCP connections (SYNs): " + ", ".join("%s->%s %d" % (a, b, n) for (a, b), n in sorted(c.items())))
print("-- RST segments: %d" % len(tshark("tcp.flags.reset==1", "frame.number")))
fins = tshark("tcp.flags.fin==1", "ip.src", "ip.dst")
print("-- FIN segments by sender -> receiver: " + ", ".join(
    "%s->%s %d" % (a, b, n) for (a, b), n in sorted(collections.Counter((SVC[a], SVC[b]) for a, b in fins).items())))
# connection <-> worker: each (pid, backend) used one connection and each connection one pid
conn_pids = collections.defaultdict(set)
pid_conns = collections.defaultdict(set)
for cl in calls:
    conn_pids[(cl["be"], cl["local"])].add(cl["pid"])
    pid_conns[(cl["pid"], cl["be"])].add(cl["local"])
print("\n-- per worker (front-calls.log): pid, inbound requests served, backend connection (front ip:port) and calls on it")
served = collections.Counter(f["pid"] for f in front)
for pid in sorted(served):
    parts = []
    for be in ("users", "stock"):
        for loc in sorted(pid_conns[(pid, be)]):
            parts.append("%s %s %d calls" % (be, loc, sum(1 for cl in calls if cl["pid"] == pid and cl["local"] == loc and cl["be"] == be)))
    print("%d  %3d requests   %s" % (pid, served[pid], "   ".join(parts)))
one = all(len(v) == 1 for v in conn_pids.values()) and all(len(v) == 1 for v in pid_conns.values())
print("-- every backend connection used by one worker and every worker used one connection per backend: %s" % one)
if not one or set(per.values()) - {len(served)}:
    fail("connection reuse")
shared_ports = collections.Counter(loc for (be, loc) in conn_pids)
print("-- front local ip:port values used for both a users and a stock connection: %d"
      % sum(1 for v in shared_ports.values() if v > 1))

# ---------------------------------------------------------------- concurrency at the front
ev = sorted([(f["t0"], 1) for f in front] + [(f["t1"], -1) for f in front])
cur = mx = 0
for _, d in ev:
    cur += d
    mx = max(mx, cur)
print("\n-- inbound requests in the app at once (front.log t_start..t_end): max %d (6 workers)" % mx)
ev = sorted([(q["t"], 1) for q in reqs if q["dst"] == FRONT] + [(resp_of[q["fr"]]["t"], -1) for q in reqs if q["dst"] == FRONT])
cur = mx = 0
for _, d in ev:
    cur += d
    mx = max(mx, cur)
print("-- client requests open on the wire at once (request .. response frame): max %d" % mx)

print("\nRESULT: %s" % ("pcap and truth logs agree" if ok else "DISAGREEMENT (or a failed check)"))
sys.exit(0 if ok else 1)
