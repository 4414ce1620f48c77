#!/usr/bin/python3
"""Assembles out/workers-c16.md from notes/head.md, verify.py's and notes/stats.py's output,
the exact scripts, capinfos and tcpdump's own count.   usage: notes/build-notes.py  (in the folder with out/)"""
import hashlib
import subprocess

N = "workers-c16"


def rd(p):
    return open(p).read()


def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def capinfos(p):
    out = subprocess.run(["capinfos", p], capture_output=True, text=True).stdout
    keep = ("File type", "File encapsulation", "File timestamp precision", "Packet size limit",
            "Number of packets", "File size", "Capture duration", "First packet time", "Last packet time", "SHA256")
    return "\n".join(l for l in out.splitlines() if l.startswith(keep))


tcpdump_stats = "\n".join(l for l in rd("record.stdout").splitlines() if "packets" in l)

md = rd("notes/head.md")
md += "```\n" + rd("out/verify.txt").rstrip() + "\n```\n"
md += f"""
`notes/stats.py` (the timing and concurrency figures quoted above):

```
{rd("out/stats.txt").rstrip()}
```

## Truth logs: formats and how they map to the exchanges

All in `fixtures/reference/`, plain text, one record per line, fields separated by single
spaces (no field contains a space), times are `time.time()` Unix epoch seconds with 6
decimals on the same clock as the pcap. Lines are in write order (not sorted), except the
client log (sorted by n). Only requests made during the capture are in them (the backends'
`/health` readiness probes were moved to `run-{N}/precapture.log`; the front does not log
`/health`).

| file | written by | one line per | format |
| --- | --- | --- | --- |
| `{N}.front.log` | the front worker, after gunicorn has written the whole response | inbound request (600) | `client_n pid t_start t_end client_ip:client_port path status` |
| `{N}.front-calls.log` | the front worker, after reading the backend's whole response | outbound call (2100) | `client_n pid backend path local_ip:local_port t_send t_done conn_seq status` |
| `{N}.users.log` | users backend, after sending the response | request received (600) | `t_head remote_ip:remote_port conn_seq METHOD path status body_bytes t_done` |
| `{N}.stock.log` | stock backend, after sending the response | request received (1500) | same as users |
| `{N}.client.log` | curl `--write-out`, sorted by n | client request (600) | `n http_code size_download time_total local_ip:local_port path` |

`front-calls.log`, exactly:

```
client_n pid backend path local_ip:local_port t_send t_done conn_seq status
7 8382 stock /stock/1 10.77.0.10:39520 1795694849.140463 1795694849.144118 4 200
```

- `client_n`: the `X-Client-Req` value of the inbound request the worker was serving when it
  made the call (= the n of `/order/{{n}}`); `pid`: the gunicorn worker; `backend`: `users` or
  `stock`; `path`: the request target sent; `local_ip:local_port`: the front's end of the
  connection used (`getsockname()`), i.e. the TCP source of the call on the wire; `t_send`:
  just before `conn.request()`; `t_done`: the response body has been read; `conn_seq`: 1 for
  the first request the worker sent on that connection, 2 for the second, ...; `status`: the
  backend's status (`ERR` would mark a failed call retried on a new connection: there are none).
- `front.log`: `client_n` as above; `t_start`: gunicorn called the app (request head parsed,
  a worker took the connection); `t_end`: gunicorn has written the whole response;
  `client_ip:client_port`: the curl connection (`REMOTE_ADDR:REMOTE_PORT`).
- backend logs: `t_head`: the request head had been parsed; `remote_ip:remote_port`: the
  front's end of the connection (= front-calls' `local_ip:local_port`); `conn_seq`: 1, 2, ...
  per TCP connection, counted by the backend; `t_done`: the response has been sent.

**Mapping an outbound call to its client request.** Identify a backend exchange on the wire
by (front ip:port, backend, order on that connection): the TCP connection from
`10.77.0.10:<port>` to `10.77.0.11:8001` (users) or `10.77.0.12:8002` (stock) and the 1-based
position of the HTTP request among that connection's requests in frame order. In
`front-calls.log` the same key is (`local_ip:local_port`, `backend`, `conn_seq`), and the
line's `client_n` is the client request that caused the call; on the wire that client
request is the one carrying `X-Client-Req: <client_n>` (path `/order/<client_n>`). The
backend logs carry the same key as (`remote_ip:remote_port`, file name, `conn_seq`).
`verify.py` checks that the three agree for all 2100 calls (with path and status) and that
every wire request time lies inside the call's [`t_send`, `t_done`]. Each of the 12 front
ports is used by exactly one backend connection in this file, and each client request's
calls all come from one worker (`pid`), users first, then its stock calls in k order.

The client side of an inbound request is best keyed by `X-Client-Req` (or the path): 31
client ports were used for two connections each (see above); (client ip:port, path) is
unique. `front.log` and `client.log` join on (client ip:port, n).

## How it was recorded

```sh
apt-get install -y gunicorn                         # gunicorn + python3-gunicorn 20.1.0-6+deb12u1
mkdir /work/workers-rec && cp -r scripts/workers-recording/* /work/workers-rec/ && cd /work/workers-rec
bash record.sh 600 16 > record.stdout 2>&1           # -> out/{N}.pcap, out/{N}.{{front,front-calls,users,stock,client}}.log
/usr/bin/python3 verify.py > out/verify.txt          # tshark cross-check (output above)
/usr/bin/python3 notes/stats.py > out/stats.txt      # figures quoted above
/usr/bin/python3 notes/build-notes.py                # -> out/{N}.md (this file)
# then copied: out/{N}.pcap, out/{N}.md -> pcaps/; out/{N}.*.log -> fixtures/reference/
```

`record.sh` builds the five namespaces and the bridge, starts the two backends and gunicorn
(6 sync workers) in their namespaces, polls each service's `/health` from the client
namespace until it answers, waits for gunicorn's six `Booting worker` lines plus 1 s, moves
the backends' `/health` log lines to `run-{N}/precapture.log` and empties their logs (and
checks that the front has logged nothing), starts tcpdump (`ip netns exec wkbr tcpdump -i
br-wk -s 0 -U -w out/{N}.pcap 'tcp and net 10.77.0.0/24'`), waits until tcpdump says
`listening on` plus 0.5 s, writes the curl config (600 blocks) and runs the ONE parallel curl,
sleeps 1 s, stops tcpdump with SIGINT and waits for it, stops the services (SIGTERM to the
backends and to the gunicorn master, by PID), collects the logs and deletes all five
namespaces (which removes the veths and the bridge) from an EXIT trap, also on error. No
backend connection is set up before the capture (the workers open theirs on their first
`/order` request), so all 12 SYNs are in the file.

### `record.sh` (exact; run as root; sha256 `{sha("record.sh")}`)

```bash
{rd("record.sh").rstrip()}
```

### `services/front.py` (exact; sha256 `{sha("services/front.py")}`)

```python
{rd("services/front.py").rstrip()}
```

### `services/backend.py` (exact; sha256 `{sha("services/backend.py")}`)

```python
{rd("services/backend.py").rstrip()}
```

### `verify.py` (exact; sha256 `{sha("verify.py")}`)

```python
{rd("verify.py").rstrip()}
```

`notes/stats.py` (sha256 `{sha("notes/stats.py")}`) and `notes/build-notes.py` are in
`scripts/workers-recording/notes/`.

## File

`capinfos out/{N}.pcap` (abridged):

```
{capinfos("out/" + N + ".pcap")}
```

tcpdump's own count when stopped with SIGINT:

```
{tcpdump_stats}
```

## Files

- `pcaps/{N}.pcap`, `pcaps/{N}.md`
- `fixtures/reference/{N}.front.log`, `{N}.front-calls.log`, `{N}.users.log`,
  `{N}.stock.log`, `{N}.client.log`
- `scripts/workers-recording/`: `record.sh`, `verify.py`, `services/front.py`,
  `services/backend.py`, `notes/head.md`, `notes/stats.py`, `notes/build-notes.py`
- address -> name: 10.77.0.10 front, 10.77.0.11 users, 10.77.0.12 stock, 10.77.0.20 client
"""
open("out/%s.md" % N, "w").write(md)
print(len(md))
