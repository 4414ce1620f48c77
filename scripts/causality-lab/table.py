#!/usr/bin/python3
"""Prints the README's Markdown table from runs/*/verify.txt (the STATS line verify.py prints)."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
print("| recording | front requests | calls (wire requests past the front) | truth lines | retries | pcap bytes | max front concurrency on the wire | wire - call_send_ns median / max (us) | verify |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for m in ("threads", "workers", "eventloop"):
    for c in (1, 4, 16, 32, 64):
        f = os.path.join(HERE, "runs", "%s-c%d" % (m, c), "verify.txt")
        if not os.path.exists(f):
            print("| %s-c%d | - | - | - | - | - | - | - | not recorded |" % (m, c))
            continue
        st = [l for l in open(f) if l.startswith("STATS ")]
        if not st:
            print("| %s-c%d | - | - | - | - | - | - | - | verify crashed |" % (m, c))
            continue
        s = json.loads(st[-1][6:])
        print("| %s | %d | %d | %d | %d | %d | %d | %s / %s | %s |" % (
            s["name"], s["inbound"], s["calls"], s["truth"], s["retries"], s["size"], s["maxconc"],
            s.get("dmed_us"), s.get("dmax_us"), s["result"]))
