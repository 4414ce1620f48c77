#!/usr/bin/python3
"""Assembles out/shop-dirty.md and out/shop-clean.md from the hand-written parts in notes/,
the exact scripts, and verify.py's / capinfos' / tcpdump's output."""
import hashlib
import subprocess

def rd(p):
    return open(p).read()

def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()

def capinfos(p):
    out = subprocess.run(["capinfos", p], capture_output=True, text=True).stdout
    keep = ("File type", "File encapsulation", "File timestamp precision", "Number of packets",
            "File size", "Capture duration", "First packet time", "Last packet time", "SHA256")
    return "\n".join(l for l in out.splitlines() if l.startswith(keep))

def tcpdump_stats(mode):
    return "\n".join(l for l in rd("run-%s/record.stdout" % mode).splitlines() if "packets" in l)

def file_section(mode):
    other = "clean" if mode == "dirty" else "dirty"
    return f"""
## File

`capinfos out/shop-{mode}.pcap` (abridged):

```
{capinfos("out/shop-" + mode + ".pcap")}
```

tcpdump's own count when stopped with SIGINT:

```
{tcpdump_stats(mode)}
```

## Logs

`shop-{mode}.access.log`: the five services' access logs concatenated (gateway, users, items,
pricing, inventory, each in its own request order), every line prefixed with the service name:

```
service time_iso remote_ip:remote_port "METHOD TARGET" status body_bytes duration_ms x_request_id
```

`time_iso` is UTC with microseconds, taken by the server when the request head has been
parsed; `duration_ms` runs from then until the last response byte was handed to the kernel.
`remote_ip:remote_port` is the TCP peer (10.88.0.20:port for the gateway, 10.88.0.10:port for
the others), so each line joins to one TCP connection and, with the X-Request-ID, to one
exchange. Status **499** (dirty only) is a log-only status: the client closed the connection
before anything was sent, and nothing was sent. `/health` readiness probes (and, in clean
mode, the gateway's startup `GET pricing /config`) ran before the capture and were removed from
the logs; `record.sh` keeps those lines in `run-{mode}/precapture.log`.

`shop-{mode}.client.log` (extra): one line per curl, sorted by request id:
`x_request_id http_code size_download time_total path`.

`shop-{mode}.tshark.tsv` / `shop-{mode}.tshark-requests.tsv` (extra): the same tshark field
dumps as for the other reference captures:

```sh
tshark -r out/shop-{mode}.pcap -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE -Y http.response -T fields -E header=y -E separator=/t -e frame.number -e frame.time_epoch -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport -e http.request_in -e http.response_for.uri -e http.response.code -e http.time > out/shop-{mode}.tshark.tsv
tshark -r out/shop-{mode}.pcap -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE -Y http.request -T fields -E header=y -E separator=/t -e frame.number -e frame.time_epoch -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport -e http.request.method -e http.request.uri -e http.host > out/shop-{mode}.tshark-requests.tsv
```

`shop.services.toml`: address -> service name for both captures.

## Files

- `shop-{mode}.pcap`, `shop-{mode}.access.log`, `shop-{mode}.client.log`,
  `shop-{mode}.tshark.tsv`, `shop-{mode}.tshark-requests.tsv`, `shop.services.toml`
- companion capture: `shop-{other}.pcap` / `shop-{other}.md`
"""

def how(mode, embed):
    s = f"""
## How it was recorded

```sh
cd /work/shop-rec
bash record.sh {mode}                  # -> out/shop-{mode}.pcap, out/shop-{mode}.access.log, out/shop-{mode}.client.log
/usr/bin/python3 verify.py {mode}      # tshark cross-check against the access logs (output above)
/usr/bin/python3 notes/stats.py {mode} # the timings, sizes and per-checkout figures quoted above
```

`record.sh` builds the namespaces and the bridge, starts the five services in their
namespaces (the gateway under `chrt -f 10`; in clean mode the gateway fetches `/config` from
pricing before it listens), polls each service's `/health` from the client namespace until it
answers, moves the access-log lines written so far to `run-{mode}/precapture.log` and empties
the access logs, starts tcpdump (`ip netns exec shopbr tcpdump -i br-shop -s 0 -U -w
out/shop-{mode}.pcap 'tcp and net 10.88.0.0/24'`), waits until tcpdump says `listening on`
plus 0.5 s, runs the workload, sleeps 1 s, stops tcpdump with SIGINT and waits for it, stops
the services (SIGTERM, by PID), collects the logs, and deletes all seven namespaces (which
removes the veths and the bridge) from an EXIT trap, also on error.
"""
    if embed:
        s += f"""
### `record.sh` (exact; run as root; sha256 `{sha("record.sh")}`)

```bash
{rd("record.sh").rstrip()}
```

### `services/shop.py` (exact; sha256 `{sha("services/shop.py")}`)

```python
{rd("services/shop.py").rstrip()}
```

### `verify.py` (exact; sha256 `{sha("verify.py")}`)

```python
{rd("verify.py").rstrip()}
```
"""
    else:
        s += f"""
`record.sh` (sha256 `{sha("record.sh")}`), `services/shop.py` (sha256
`{sha("services/shop.py")}`) and `verify.py` (sha256 `{sha("verify.py")}`) are the exact
files printed in full in `shop-dirty.md`; only the MODE argument differs.
"""
    return s

for mode in ("dirty", "clean"):
    head = rd("notes/common-head.md")
    if mode == "clean":
        head = head.replace("(`services/shop.py`, stdlib only, below)",
                            "(`services/shop.py`, stdlib only, printed in `shop-dirty.md`)")
    md = rd(f"notes/{mode}-top.md") + head + rd(f"notes/{mode}-wire.md")
    md += rd(f"out/verify-{mode}.txt").rstrip() + "\n```\n"
    md += how(mode, embed=(mode == "dirty"))
    md += file_section(mode)
    open(f"out/shop-{mode}.md", "w").write(md)
    print(mode, len(md))
