#!/usr/bin/python3
"""Prints the figures quoted in notes/*-wire.md for out/shop-MODE.pcap (tshark based).
usage: notes/stats.py MODE   (run in /work/shop-rec)"""
import collections, re, statistics, subprocess, sys, os

MODE = sys.argv[1]
PCAP = "out/shop-%s.pcap" % MODE
GW = "10.88.0.10"

def tshark(filt, *fields, reasm=True):
    cmd = ["tshark", "-r", PCAP]
    if reasm:
        cmd += ["-o", "tcp.desegment_tcp_streams:TRUE", "-o", "http.desegment_body:TRUE"]
    cmd += ["-Y", filt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    return [l.split("\t") for l in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()]

def rid(line):
    m = re.search(r"X-Request-ID: (\S+?)\\r\\n", line)
    return m.group(1) if m else "-"

def kind(uri):
    uri = re.sub(r"^http://[^/]+", "", uri)
    uri = re.sub(r"ids=[0-9,]+", "ids=...", uri)
    return re.sub(r"/(\d+|SKU-\d+)$", lambda m: "/{sku}" if m.group(1).startswith("SKU") else "/{n}", uri)

def rng(xs, unit="ms", f=1e3):
    xs = [x * f for x in xs]
    return "%.1f-%.1f %s (mean %.1f, n=%d)" % (min(xs), max(xs), unit, statistics.mean(xs), len(xs))

# requests: frame, time, stream, src, dst, uri, rid
reqs = [dict(fr=int(a), t=float(b), st=int(c), src=d, dst=e, uri=f, rid=rid(g))
        for a, b, c, d, e, f, g in tshark("http.request", "frame.number", "frame.time_epoch", "tcp.stream",
                                          "ip.src", "ip.dst", "http.request.uri", "http.request.line")]
resps = [dict(fr=int(a), t=float(b), st=int(c), req=int(d), code=int(e), clen=int(f or 0), httptime=float(g))
         for a, b, c, d, e, f, g in tshark("http.response", "frame.number", "frame.time_epoch", "tcp.stream",
                                           "http.request_in", "http.response.code", "http.content_length_header", "http.time")]
byreq = {r["req"]: r for r in resps}
# first payload segment of each response: first server->client segment with payload after the request
segs = tshark("tcp.len>0", "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "tcp.len", reasm=False)
seg_by_stream = collections.defaultdict(list)
for fr, t, st, src, ln in segs:
    seg_by_stream[int(st)].append((int(fr), float(t), src, int(ln)))

def first_byte(q):
    for fr, t, src, ln in seg_by_stream[q["st"]]:
        if fr > q["fr"] and src == q["dst"]:
            return t
    return None

print("== %s" % PCAP)
print("requests %d (client->gw %d, gw->svc %d), responses %d" % (
    len(reqs), sum(q["dst"] == GW for q in reqs), sum(q["dst"] != GW for q in reqs), len(resps)))
print("file size %d bytes" % os.path.getsize(PCAP))

# TTFB / answer times per kind
ttfb = collections.defaultdict(list)
full = collections.defaultdict(list)
for q in reqs:
    r = byreq.get(q["fr"])
    if not r:
        continue
    k = ("gw " if q["dst"] == GW else "") + kind(q["uri"]) + (" %d" % r["code"])
    ttfb[k].append(first_byte(q) - q["t"])
    full[k].append(r["t"] - q["t"])
print("\n-- time to first response byte / to last response byte, per kind and status")
for k in sorted(ttfb):
    print("  %-28s ttfb %s | last %s" % (k, rng(ttfb[k]), rng(full[k])))
others = [x for k, v in ttfb.items() if not k.startswith("gw ") and "/price/" not in k for x in v]
print("  downstream except /price: max ttfb %.1f ms" % (max(others) * 1e3))

sizes = collections.defaultdict(set)
for q in reqs:
    r = byreq.get(q["fr"])
    if r:
        sizes[("gw " if q["dst"] == GW else "") + kind(q["uri"]) + " %d" % r["code"]].add(r["clen"])
print("\n-- body sizes per kind")
for k in sorted(sizes):
    print("  %-28s %s" % (k, sorted(sizes[k])))

# frame bytes of catalog responses
if MODE == "dirty":
    fl = tshark("tcp.srcport==8082 && tcp.len>0", "frame.number", "tcp.stream", "frame.len", reasm=False)
    cat = [q for q in reqs if q["uri"] == "/catalog/full"]
    tot = 0
    for q in cat:
        end = byreq[q["fr"]]["fr"]
        tot += sum(int(l) for fr, st, l in fl if int(st) == q["st"] and q["fr"] < int(fr) <= end)
    print("\ncatalog responses: %d, ids %s, frame bytes (items->gw payload frames) %d" % (
        len(cat), [q["rid"][-4:] for q in cat], tot))
    # N+1 group check
    byrid = collections.defaultdict(list)
    for q in reqs:
        if q["dst"] != GW:
            byrid[q["rid"]].append(q)
    seqok = 0; groups = 0
    for rd, qs in byrid.items():
        it = sorted([q for q in qs if "/items/" in q["uri"]], key=lambda q: q["t"])
        if len(it) == 6:
            groups += 1
            if all(it[i + 1]["t"] >= byreq[it[i]["fr"]]["t"] for i in range(5)):
                seqok += 1
    print("N+1 groups of 6: %d, fully sequential: %d" % (groups, seqok))
    r503 = sorted(q["rid"][-4:] for q in reqs if byreq.get(q["fr"], {}).get("code") == 503)
    print("503 ids:", " ".join(r503))
    slow = sorted(q["rid"][-4:] for q in reqs if "/slow/" in q["uri"])
    print("slow ids:", " ".join(slow))
    fins = tshark("tcp.flags.fin==1 && tcp.port==8084", "frame.time_epoch", "tcp.stream", "ip.src", reasm=False)
    d1, d2 = [], []
    for q in reqs:
        if "/slow/" in q["uri"]:
            f = {src: float(t) for t, st, src in fins if int(st) == q["st"]}
            d1.append(f[GW] - q["t"]); d2.append(f["10.88.0.14"] - f[GW])
    print("slow: gw FIN after request %s; inventory FIN after gw FIN %s" % (rng(d1), rng(d2)))
    # identical config bodies
    cb = tshark("http.response && tcp.srcport==8083 && http.response_for.uri contains \"/config\"", "http.file_data")
    print("distinct /config bodies:", len(set(x[0] for x in cb)))
else:
    byrid = collections.defaultdict(list)
    for q in reqs:
        if q["dst"] != GW:
            byrid[q["rid"]].append(q)
    spread, first, good, marg = [], collections.Counter(), 0, []
    for rd, qs in sorted(byrid.items()):
        if not any("/users/" in q["uri"] for q in qs):
            continue
        qs = sorted(qs, key=lambda q: q["t"])
        t0 = [q["t"] for q in qs]; t1 = [byreq[q["fr"]]["t"] for q in qs]
        spread.append(t0[-1] - t0[0])
        first[kind(qs[0]["uri"])] += 1
        ok = len(qs) == 4 and all(t0[i] < t1[j] for i in range(4) for j in range(4) if i != j)
        good += ok
        marg.append(min(t1[j] - t0[i] for i in range(4) for j in range(4) if i != j))
    print("\ncheckouts %d, all-4 pairwise overlap %d, spread %s, smallest margin %.2f ms" % (
        len(spread), good, rng(spread, f=1e3), min(marg) * 1e3))
    print("first on wire:", dict(first))
    # sequential phase vs concurrent phase spreads
    print("spread max 0001-0030: %.3f ms, 0041-0060: %.3f ms" % (
        max(s for (rd, s) in zip([r for r in sorted(byrid) if any('/users/' in q['uri'] for q in byrid[r])], spread) if int(rd[-4:]) <= 30) * 1e3,
        max(s for (rd, s) in zip([r for r in sorted(byrid) if any('/users/' in q['uri'] for q in byrid[r])], spread) if int(rd[-4:]) > 40) * 1e3))
    targets = collections.Counter(q["uri"] for q in reqs if q["dst"] != GW)
    print("repeated downstream targets in the whole capture:", [t for t, n in targets.items() if n > 1])
    targets = collections.Counter(q["uri"] for q in reqs)
    print("repeated targets incl. gateway:", [t for t, n in targets.items() if n > 1])
