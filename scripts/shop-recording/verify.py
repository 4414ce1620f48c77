#!/usr/bin/python3
"""Cross-checks out/shop-MODE.pcap against out/shop-MODE.access.log with tshark.

usage: verify.py MODE   -> prints a report; exit 1 if the pcap and the logs disagree
"""
import collections
import re
import subprocess
import sys

MODE = sys.argv[1]
PCAP = "out/shop-%s.pcap" % MODE
LOG = "out/shop-%s.access.log" % MODE
IP = {"gateway": "10.88.0.10", "users": "10.88.0.11", "items": "10.88.0.12",
      "pricing": "10.88.0.13", "inventory": "10.88.0.14"}
NAME = {v: k for k, v in IP.items()}
NAME["10.88.0.20"] = "client"
ok = True


def kind(uri):
    uri = re.sub(r"^http://[^/]+", "", uri)
    uri = re.sub(r"ids=[0-9,]+", "ids=...", uri)
    return re.sub(r"/(\d+|SKU-\d+)$", lambda m: "/{sku}" if m.group(1).startswith("SKU") else "/{n}", uri)


def tshark(filt, *fields):
    cmd = ["tshark", "-r", PCAP, "-o", "tcp.desegment_tcp_streams:TRUE", "-o",
           "http.desegment_body:TRUE", "-Y", filt, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def rid_of(lines):
    m = re.search(r"X-Request-ID: (\S+?)\\r\\n", lines)
    return m.group(1) if m else "-"


reqs = tshark("http.request", "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst",
              "tcp.dstport", "http.request.method", "http.request.uri", "http.request.line",
              "http.request.version")
resps = tshark("http.response", "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst",
               "tcp.dstport", "http.response.code", "http.response_for.uri", "http.time",
               "http.response.version", "http.content_length_header")

# ---------------------------------------------------------------- access logs
log = []
for line in open(LOG):
    svc, ts, remote, meth, target, status, nbytes, dur, rid = line.split()
    log.append(dict(svc=svc, remote=remote, method=meth.strip('"'), target=target.strip('"'),
                    status=int(status), bytes=int(nbytes), dur=float(dur), rid=rid))

print("== %s: %d HTTP requests and %d HTTP responses in the pcap (tshark), %d access-log lines"
      % (PCAP, len(reqs), len(resps), len(log)))

print("\n-- requests per server IP and endpoint (tshark -Y http.request)")
c = collections.Counter((r[3], NAME[r[3]], r[5], kind(r[6])) for r in reqs)
for k in sorted(c):
    print("%5d  %-11s %-9s %s %s" % (c[k], k[0], k[1], k[2], k[3]))

print("\n-- responses per server IP, endpoint and status (tshark -Y http.response)")
c = collections.Counter((r[1], NAME[r[1]], kind(r[6]), r[5]) for r in resps)
for k in sorted(c):
    print("%5d  %-11s %-9s %-22s %s" % (c[k], k[0], k[1], k[2], k[3]))

print("\n-- access log lines per service, endpoint and status")
c = collections.Counter((l["svc"], kind(l["target"]), l["status"]) for l in log)
for k in sorted(c):
    print("%5d  %-9s %-22s %s" % (c[k], k[0], k[1], k[2]))

# ---------------------------------------------------------------- one-to-one join
# every pcap request <-> one log line: (server, client ip:port, target, X-Request-ID)
pc = collections.Counter((NAME[r[3]], "%s:%s" % (r[1], r[2]), r[6], rid_of(r[7])) for r in reqs)
lc = collections.Counter((l["svc"], l["remote"], l["target"], l["rid"]) for l in log)
print("\n-- join pcap requests <-> log lines on (service, client ip:port, target, X-Request-ID): %s"
      % ("all %d match" % sum(pc.values()) if pc == lc else "MISMATCH"))
if pc != lc:
    ok = False
    print("   only in pcap:", pc - lc)
    print("   only in log: ", lc - pc)
# responses: (server, client ip:port, target, status); log status 499 = nothing sent
pr = collections.Counter((NAME[r[1]], "%s:%s" % (r[3], r[4]), re.sub(r"^http://[^/]+", "", r[6]),
                          int(r[5])) for r in resps)
lr = collections.Counter((l["svc"], l["remote"], l["target"], l["status"]) for l in log
                         if l["status"] != 499)
print("-- join pcap responses <-> log lines on (service, client ip:port, target, status): %s"
      % ("all %d match" % sum(pr.values()) if pr == lr else "MISMATCH"))
if pr != lr:
    ok = False
    print("   only in pcap:", pr - lr)
    print("   only in log: ", lr - pr)
n499 = sum(1 for l in log if l["status"] == 499)
print("-- requests without a response on the wire: %d (log-only status 499: %d)"
      % (len(reqs) - len(resps), n499))
if len(reqs) - len(resps) != n499:
    ok = False

print("\n-- versions: requests %s; responses %s"
      % (dict(collections.Counter(r[8] for r in reqs)), dict(collections.Counter(r[8] for r in resps))))
print("-- response Content-Length present on %d of %d responses; largest body %d bytes"
      % (sum(1 for r in resps if r[9]), len(resps), max(int(r[9] or 0) for r in resps)))
chunked = tshark("http.transfer_encoding", "frame.number")
print("-- responses with Transfer-Encoding: %d" % len(chunked))

syn = tshark("tcp.flags.syn==1 && tcp.flags.ack==0", "ip.src", "ip.dst")
c = collections.Counter((NAME[a], NAME[b]) for a, b in syn)
print("\n-- TCP connections (SYNs): " + ", ".join("%s->%s %d" % (a, b, n) for (a, b), n in sorted(c.items())))
rst = tshark("tcp.flags.reset==1", "frame.number")
print("-- RST segments: %d" % len(rst))
fins = tshark("tcp.flags.fin==1", "ip.src", "ip.dst")
print("-- FIN segments by sender: " + ", ".join("%s %d" % (k, n) for k, n in
                                            sorted(collections.Counter(NAME[a] for a, b in fins).items())))

# ---------------------------------------------------------------- per checkout structure
by_rid = collections.defaultdict(list)
for r in reqs:
    if r[3] != "10.88.0.10":
        by_rid[rid_of(r[7])].append(r)
resp_t = {}
for r in resps:
    resp_t[(r[3], r[4], r[1], r[2], r[6])] = resp_t.get((r[3], r[4], r[1], r[2], r[6]), []) + [float(r[0])]


def end_of(r):
    key = (r[1], r[2], r[3], r[4], "http://%s:%s%s" % (r[3], r[4], r[6]))
    ts = [t for t in resp_t.get(key, []) if t >= float(r[0])]
    return min(ts) if ts else None


print("\n-- downstream call sequences per client request (pcap, by X-Request-ID, in time order)")
seqs = collections.Counter()
overlap = collections.Counter()
spread, margin = [], []
for rid in sorted(by_rid):
    calls = sorted(by_rid[rid], key=lambda r: float(r[0]))
    seqs[" ".join("%s:%s" % (NAME[r[3]], kind(r[6])) for r in calls)] += 1
    if MODE == "clean":
        # a checkout's downstream calls (users, items?ids=, price, stock) overlap pairwise when
        # every request leaves before every other sibling's response has ended (last segment)
        if any("/users/" in r[6] for r in calls):
            t0 = [float(r[0]) for r in calls]
            t1 = [end_of(r) for r in calls]
            good = len(calls) == 4 and all(t0[i] < t1[j] for i in range(4) for j in range(4) if i != j)
            overlap["checkout: all 4 downstream calls pairwise overlap" if good
                    else "checkout: downstream calls DO NOT all overlap"] += 1
            spread.append(max(t0) - min(t0))
            margin.append(min(t1[j] - t0[i] for i in range(len(calls)) for j in range(len(calls)) if i != j))
    else:
        p = [r for r in calls if "/price/" in r[6]]
        s = [r for r in calls if "/stock/" in r[6]]
        if p and s:
            overlap["stock sent after price answered" if float(s[0][0]) >= end_of(p[0])
                    else "stock sent before price answered"] += 1
for s, n in seqs.most_common():
    print("%5d  %s" % (n, s))
for s, n in sorted(overlap.items()):
    print("%5d  %s" % (n, s))
if spread:
    print("-- checkouts: the 4 downstream requests leave within %.3f ms of each other (max; mean %.3f ms);"
          " smallest (sibling response end - request) %.3f ms" % (max(spread) * 1e3,
          sum(spread) / len(spread) * 1e3, min(margin) * 1e3))
    if overlap["checkout: all 4 downstream calls pairwise overlap"] != len(spread):
        ok = False

print("\nRESULT: %s" % ("pcap and access logs agree" if ok else "DISAGREEMENT (or a failed check)"))
sys.exit(0 if ok else 1)
