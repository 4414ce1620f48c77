#!/usr/bin/python3
"""Merges the callers' call logs of one recording (RUNDIR/*.calls) into ONE truth.tsv.

usage: normalise.py RUNDIR OUT.truth.tsv

Columns (tab-separated, header line first, rows sorted by call_send_ns):
  caller         service that made the outbound call (front, orders)
  call_client    local ip:port of the TCP connection the call was written to
  call_server    the callee's listening ip:port
  call_send_ns   wall time (ns since the Unix epoch) just before the request was written
  parent_client  peer ip:port of the inbound request the call was made for
  parent_server  the caller's listening ip:port (where that inbound request arrived)
  parent_recv_ns wall time (ns) when the handler started on that inbound request
One row per outbound call attempt, retries (after a 503) included.
"""
import glob
import os
import sys

rundir, out = sys.argv[1], sys.argv[2]
rows = []
for f in sorted(glob.glob(os.path.join(rundir, "*.calls"))):
    for line in open(f):
        c = line.rstrip("\n").split("\t")
        rows.append(c[:7])
bad = [r for r in rows if r[1] == "-"]
if bad:
    sys.stderr.write("normalise: %d call(s) without a socket (failed before sending); left out\n" % len(bad))
rows = [r for r in rows if r[1] != "-"]
rows.sort(key=lambda r: int(r[3]))
with open(out, "w") as fh:
    fh.write("caller\tcall_client\tcall_server\tcall_send_ns\tparent_client\tparent_server\tparent_recv_ns\n")
    for r in rows:
        fh.write("\t".join(r) + "\n")
print("normalise: %d truth lines -> %s" % (len(rows), out))
