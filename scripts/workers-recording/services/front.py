"""Front service of tapspan's workers-c16 capture: a WSGI app run by gunicorn sync workers.

  /usr/bin/gunicorn --workers 6 --worker-class sync --bind 10.77.0.10:8000 front:app

Python 3 standard library only (plus gunicorn, which imports this module).  A sync worker
serves one connection, i.e. one request, at a time (gunicorn answers `Connection: close`).

Per-worker keep-alive connections: every worker PROCESS keeps ONE module-level
http.client.HTTPConnection per backend (users, stock), created lazily on the worker's first
call to that backend and reused for every later call; it is replaced only if it breaks (never
happened in the recording: such a call is logged with status ERR).  Nothing is shared between
processes: the state is keyed by os.getpid(), so even `--preload` would not share it.

GET /order/{n}   (the client sends `X-Client-Req: <n>`; it is NOT forwarded)
  sleep 0.5-2 ms (uniform)
  GET users /user/{n % 50}
  sleep 0.5 ms
  GET stock /stock/{k}  for k = 1 .. n % 4 + 1   (1 to 4 calls, one after the other, same connection)
  sleep 0.3 ms
  200, small JSON body
GET /health      200 at once, no backend call, not logged (readiness probe)

Backend requests carry only Host, Accept-Encoding: identity (both added by http.client),
User-Agent: workers-front/1.0 and Accept: application/json: no request id of any kind.

Truth logs, in $WORKERS_LOGDIR (default: cwd); each line is one os.write() on an O_APPEND
file descriptor that each worker opens for itself:

front.log        one line per inbound request, written after gunicorn has sent the response:
  client_n pid t_start t_end remote_ip:remote_port path status
front-calls.log  one line per outbound call, written when its response has been read:
  client_n pid backend path local_ip:local_port t_send t_done conn_seq status

client_n  = the X-Client-Req header of the inbound request ("-" if absent)
pid       = the gunicorn worker process that served it
t_*       = time.time(), Unix epoch seconds with 6 decimals.  t_start: the app was called
            (request head parsed); t_end: gunicorn has written the whole response;
            t_send: just before conn.request(); t_done: the response body has been read
local_ip:local_port = the front's end of the backend connection used (getsockname())
conn_seq  = 1 for the first request sent on that connection, 2 for the second, ...
status    = the backend's HTTP status (ERR if the call failed and was retried on a new connection)
"""
import http.client
import json
import os
import random
import socket
import sys
import time

BACKENDS = {"users": ("10.77.0.11", 8001), "stock": ("10.77.0.12", 8002)}
LOGDIR = os.environ.get("WORKERS_LOGDIR", ".")
HEADERS = {"User-Agent": "workers-front/1.0", "Accept": "application/json"}

_state = {"pid": None}


def _st():
    """Per-process state, (re)made on first use in each worker process."""
    if _state["pid"] != os.getpid():
        _state.clear()
        _state.update(pid=os.getpid(), conns={}, fds={}, rnd=random.Random())
    return _state


def _log(name, line):
    st = _st()
    fd = st["fds"].get(name)
    if fd is None:
        fd = st["fds"][name] = os.open(os.path.join(LOGDIR, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())


def _connect(backend):
    host, port = BACKENDS[backend]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.connect()  # http.client sets TCP_NODELAY
    ip, lport = conn.sock.getsockname()[:2]
    entry = {"conn": conn, "seq": 0, "local": "%s:%d" % (ip, lport)}
    _st()["conns"][backend] = entry
    return entry


def call(backend, path, client_n):
    """GET path on this worker's own persistent connection to backend."""
    conns = _st()["conns"]
    for attempt in (1, 2):
        entry = conns.get(backend) or _connect(backend)
        conn = entry["conn"]
        entry["seq"] += 1
        t_send = time.time()
        try:
            conn.request("GET", path, headers=HEADERS)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError) as e:
            _log("front-calls.log", "%s %d %s %s %s %.6f %.6f %d ERR\n" % (
                client_n, os.getpid(), backend, path, entry["local"], t_send, time.time(), entry["seq"]))
            sys.stderr.write("front[%d]: %s %s on %s failed: %r\n" % (os.getpid(), backend, path, entry["local"], e))
            conn.close()
            conns.pop(backend, None)
            if attempt == 2:
                raise
            continue
        _log("front-calls.log", "%s %d %s %s %s %.6f %.6f %d %d\n" % (
            client_n, os.getpid(), backend, path, entry["local"], t_send, time.time(), entry["seq"],
            resp.status))
        return resp.status, json.loads(body)


class _Body:
    """Response iterable; gunicorn calls close() after it has written the whole response."""

    def __init__(self, body, logline):
        self.body, self.logline = body, logline

    def __iter__(self):
        yield self.body

    def close(self):
        if self.logline:
            client_n, t_start, rest = self.logline
            _log("front.log", "%s %d %.6f %.6f %s\n" % (client_n, os.getpid(), t_start, time.time(), rest))


def app(environ, start_response):
    t_start = time.time()
    rnd = _st()["rnd"]
    path = environ.get("PATH_INFO", "/")
    client_n = environ.get("HTTP_X_CLIENT_REQ", "-")
    remote = "%s:%s" % (environ.get("REMOTE_ADDR", "-"), environ.get("REMOTE_PORT", "-"))
    seg = [s for s in path.split("/") if s]
    if seg == ["health"]:
        status, obj = "200 OK", {"ok": True, "service": "front", "pid": os.getpid()}
    elif len(seg) == 2 and seg[0] == "order" and seg[1].isdigit():
        n = int(seg[1])
        time.sleep(rnd.uniform(0.5, 2.0) / 1000.0)
        _, user = call("users", "/user/%d" % (n % 50), client_n)
        time.sleep(0.0005)
        stock = []
        for k in range(1, n % 4 + 2):
            _, s = call("stock", "/stock/%d" % k, client_n)
            stock.append(s["qty"])
        time.sleep(0.0003)
        status, obj = "200 OK", {"order": n, "user": user["name"], "stock": stock}
    else:
        status, obj = "404 Not Found", {"error": "not found"}
    body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    log = (client_n, t_start, "%s %s %s" % (remote, path, status.split()[0])) if seg != ["health"] else None
    return _Body(body, log)
