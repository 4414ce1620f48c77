#!/usr/bin/env python3
"""Accuracy and speed of send/receive nesting in one table, from one run.

For every recording of the causality lab (pcaps/lab, scripts/causality-lab) and for
pcaps/workers-c16.pcap: `tapspan replay` (release build) is run, each call's parent is scored
against the truth the calling handler logged, and the replay's wall time and peak memory are
measured beside tshark's on the same file (`tshark -Y http.response`, the fields of
benches/replay_vs_tshark.sh). Best wall time of RUNS runs each.

usage: scripts/causality-table.py [--runs N] [--wide | --wide-at CLIENTS] [CELL...]
  CELL: e.g. threads-c16 (default: all 15 cells and workers-c16)
  --wide: also a row with `--nesting-search wide` for each capture
  --wide-at 16: that row only for the cells at 16 clients (and workers-c16)
Needs: cargo, tshark (apt-get install tshark), GNU time (apt-get install time).
"""
import argparse
import bisect
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAPSPAN = os.path.join(ROOT, "target", "release", "tapspan")
MODELS = ("threads", "workers", "eventloop")
CLIENTS = (1, 4, 16, 32, 64)


def timed(cmd, out_path, runs):
    """Best wall time (s) and its peak RSS (MB) of `cmd`, stdout to out_path. The wall time is
    taken here, to the microsecond (GNU time's `%e` counts hundredths, a quarter of a 40 ms
    replay); it includes starting GNU time, which reads the peak RSS (a child's own rusage
    would keep this script's, across exec)."""
    best = None
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r") as t, open(out_path, "w") as out:
            start = time.perf_counter()
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd, stdout=out,
                           stderr=subprocess.DEVNULL, check=True)
            secs = time.perf_counter() - start
            rss = int(t.read().split()[-1])
        if best is None or secs < best[0]:
            best = (secs, rss / 1024)
    return best


def client_spans(spans_path):
    server_x = {}
    by_conn = collections.defaultdict(list)
    spans = [json.loads(line) for line in open(spans_path)]
    for s in spans:
        a = s["attributes"]
        if s["kind"] == "server":
            server_x[s["span_id"]] = a["tapspan.exchange_id"]
        else:
            conn = ("%s:%s" % (a["client.address"], a["client.port"]),
                    "%s:%s" % (a["server.address"], a["server.port"]))
            by_conn[conn].append((s["start_unix_nano"], s))
    for v in by_conn.values():
        v.sort(key=lambda x: x[0])
    return server_x, by_conn


def score_lab(spans_path, truth_path):
    """Same matching as tests/causality_lab.rs."""
    server_x, by_conn = client_spans(spans_path)
    out = collections.Counter()
    for line in list(open(truth_path))[1:]:
        _, cc, cs, sent, pc, ps, began = line.rstrip("\n").split("\t")
        calls = by_conn[(cc, cs)]
        call = min(calls, key=lambda x: abs(x[0] - int(sent)))[1]
        starts = [x[0] for x in by_conn[(pc, ps)]]
        parent = by_conn[(pc, ps)][bisect.bisect_right(starts, int(began) + 1_000_000) - 1][1]
        tally(out, call, server_x, parent["attributes"]["tapspan.exchange_id"])
    return out


def score_workers_c16(spans_path):
    """Same matching as tests/causality_nesting_real.rs (the front's own call log)."""
    server_x, by_conn = client_spans(spans_path)
    truth = {}
    for line in open(os.path.join(ROOT, "fixtures/reference/workers-c16.front-calls.txt")):
        f = line.split()
        truth[(f[4], f[7])] = f[0]
    front_request = {}  # exchange id of each /order/{n} request -> n
    for conn, v in by_conn.items():
        for _, s in v:
            path = s["attributes"].get("url.path", "")
            if conn[1] == "10.77.0.10:8000" and path.startswith("/order/"):
                front_request[s["attributes"]["tapspan.exchange_id"]] = path.split("/")[-1]
    out = collections.Counter()
    for conn, v in by_conn.items():
        if not conn[0].startswith("10.77.0.10:"):
            continue
        for k, (_, call) in enumerate(v, 1):
            want_n = truth[(conn[0], str(k))]
            want = [x for x, n in front_request.items() if n == want_n][0]
            tally(out, call, server_x, want)
    return out


def tally(out, call, server_x, want):
    got = server_x.get(call.get("parent_span_id"))
    right = got == want
    out["calls"] += 1
    out["right"] += right
    a = call["attributes"]
    if a.get("tapspan.link") == "nesting":
        out["inferred"] += 1
        if a.get("tapspan.link_confidence", 0) >= 0.9:
            out["confident"] += 1
            out["confident_right"] += right


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wide", action="store_true")
    ap.add_argument("--wide-at", type=int)
    ap.add_argument("cells", nargs="*")
    args = ap.parse_args()
    cells = args.cells or ["%s-c%d" % (m, c) for m in MODELS for c in CLIENTS] + ["workers-c16.pcap"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print("| capture | search | calls | parents right | conf >= 0.9 (right) | tapspan | tshark | "
          "tshark / tapspan | MB/s | exchanges/s | peak RSS |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    def searches(cell):
        if args.wide or (args.wide_at and (cell.endswith("-c%d" % args.wide_at)
                                           or cell == "workers-c16.pcap")):
            return ["adaptive", "wide"]
        return ["adaptive"]
    with tempfile.TemporaryDirectory() as tmp:
        spans = os.path.join(tmp, "spans.jsonl")
        for cell in cells:
            if cell == "workers-c16.pcap":
                pcap, name = os.path.join(ROOT, "pcaps/workers-c16.pcap"), "pcaps/workers-c16"
            else:
                pcap, name = os.path.join(ROOT, "pcaps/lab/%s.pcap" % cell), "lab/" + cell
            size_mb = os.path.getsize(pcap) / 1e6
            tshark_s, _ = timed(["tshark", "-r", pcap, "-d", "tcp.port==8000-8004,http", "-Y",
                                 "http.response", "-T", "fields", "-e", "http.time"],
                                os.devnull, args.runs)
            for search in searches(cell):
                secs, rss = timed([TAPSPAN, "replay", pcap, "--nesting-search", search], spans,
                                  args.runs)
                exchanges = sum(1 for line in open(spans)) // 2
                sc = score_workers_c16(spans) if name == "pcaps/workers-c16" else \
                    score_lab(spans, pcap.replace(".pcap", ".truth.tsv"))
                conf = sc["confident"] / max(sc["inferred"], 1)
                conf_right = sc["confident_right"] / max(sc["confident"], 1)
                print("| %s | %s | %d | %.2f %% | %.1f %% (%.2f %%) | %.3f s | %.3f s | %.1fx | %.1f | %.0f | %.0f MB |"
                      % (name, search, sc["calls"], 100 * sc["right"] / sc["calls"], 100 * conf,
                         100 * conf_right, secs, tshark_s, tshark_s / max(secs, 1e-3),
                         size_mb / max(secs, 1e-3), exchanges / max(secs, 1e-3), rss))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
