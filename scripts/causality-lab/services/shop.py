"""Shared shop logic of the causality lab (Python models: threads, workers).

Services (each in its own network namespace):
  front   10.78.0.10:8000  GET /checkout/{order_id}?user={uid}
  users   10.78.0.11:8001  GET /users/{uid}
  orders  10.78.0.12:8002  GET /orders/{order_id}      (calls stock GET /reserve/{order_id})
  stock   10.78.0.13:8003  GET /stock/{sku}, GET /reserve/{order_id}   (503 on ~5%)
  pricing 10.78.0.14:8004  POST /quote  (JSON body)

front, per inbound request:
  in parallel (a second thread): GET users /users/{uid}  and  GET orders /orders/{order_id}
  N+1 loop, sequential: GET stock /stock/{sku} for each sku the orders response lists (1-4)
  POST pricing /quote {"order_id":..,"user":..,"skus":[..]}
  ~10% of requests: sleep 20-40 ms before answering (the slow path)
orders: 1-4 ms work, GET stock /reserve/{order_id}, answers {"order_id":..,"skus":[..]}
leaves: 1-4 ms work (time.sleep); stock answers 503 on ~5% of requests (random)
Every caller retries a 503 once, 2 ms later.

Outbound calls go through urllib3 (2.x) HTTPConnectionPool objects, ONE per (process, backend),
created on first use and shared by all handler threads of the process (block=False,
retries=False); maxsize LAB_POOL_MAXSIZE (16 for threads, 1 for gunicorn workers).

Truth logs ($LAB_LOGDIR, each line one os.write() on an O_APPEND fd):
  ROLE.access  one line per inbound request (not /health), written after the response was sent:
      recv_ns done_ns peer_ip:port self_ip:port METHOD path status pid
  ROLE.calls   one line per outbound call attempt (retries and failures included), written by
      the handler (thread) that made it when the call finished:
      caller call_client call_server call_send_ns parent_client parent_server parent_recv_ns
      callee METHOD path status attempt pid
  call_send_ns = time.time_ns() right before the sendall() of the request (head and body in one
  send; after the TCP connect if the pooled connection was new; clock read and sendall() called
  from C back to back, see StampedConnection); call_client = getsockname() of that socket.
"""
import functools
import json
import operator
import os
import random
import threading
import sys
import time

# urllib3 2.x: Debian 12's /usr/bin/python3 ships 1.26, so a copy of urllib3 2.7.0 (pure Python,
# `pip install --no-deps --target services/_vendor urllib3==2.7.0`) goes first on the path
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor"))
import urllib3  # noqa: E402

assert urllib3.__version__.startswith("2."), urllib3.__version__
from urllib3.connection import HTTPConnection  # noqa: E402

ADDR = {
    "front": ("10.78.0.10", 8000),
    "users": ("10.78.0.11", 8001),
    "orders": ("10.78.0.12", 8002),
    "stock": ("10.78.0.13", 8003),
    "pricing": ("10.78.0.14", 8004),
}
CALLEES = {"front": ("users", "orders", "stock", "pricing"), "orders": ("stock",)}
LOGDIR = os.environ.get("LAB_LOGDIR", ".")
MAXSIZE = int(os.environ.get("LAB_POOL_MAXSIZE", "16"))
BLOCK = os.environ.get("LAB_POOL_BLOCK", "0") == "1"
HEADERS = {"Accept": "application/json"}

_tl = threading.local()
_rnd = random.Random()
_rnd_lock = threading.Lock()
_fds = {}
_fd_lock = threading.Lock()


def rnd_uniform(a, b):
    with _rnd_lock:
        return _rnd.uniform(a, b)


def rnd_random():
    with _rnd_lock:
        return _rnd.random()


def log(role, kind, fields):
    name = "%s.%s" % (role, kind)
    key = (os.getpid(), name)
    fd = _fds.get(key)
    if fd is None:
        with _fd_lock:
            fd = _fds.get(key)
            if fd is None:
                fd = _fds[key] = os.open(os.path.join(LOGDIR, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("\t".join(str(f) for f in fields) + "\n").encode())


class StampedConnection(HTTPConnection):
    """urllib3 connection that notes, in the CALLING thread, the wall time right before the
    request is written and the local ip:port of the socket it is written to.

    The head of a request with a body is held back and written together with the body's first
    chunk (one send, so the request's first segment carries both).  The time is taken and the
    sendall() started from C (map over two callables), so no Python bytecode, and so no GIL
    hand-over to another thread, lies between the clock read and the send() system call."""

    def request(self, method, url, body=None, headers=None, **kw):
        if self.sock is None:
            self.connect()
        ip, port = self.sock.getsockname()[:2]
        self._lab_local = "%s:%d" % (ip, port)
        self._lab_pending = True
        self._lab_hold = body is not None
        self._lab_buf = None
        return super().request(method, url, body=body, headers=headers, **kw)

    def send(self, data):
        if getattr(self, "_lab_hold", False):  # the head of a request with a body: wait for the body
            self._lab_hold = False
            self._lab_buf = data
            return
        if getattr(self, "_lab_buf", None) is not None:
            data = self._lab_buf + data
            self._lab_buf = None
        if getattr(self, "_lab_pending", False) and isinstance(data, (bytes, bytearray)):
            self._lab_pending = False
            # a socket with a timeout poll()s before send(), releasing the GIL, and may wait for
            # the GIL again before it sends: blocking mode sends at once
            self.sock.settimeout(None)
            t, _ = list(map(operator.call, (time.time_ns, functools.partial(self.sock.sendall, data))))
            _tl.stamp = (t, self._lab_local)
            return
        return super().send(data)


_pools = {}
_pools_pid = None


def pool(callee):
    global _pools_pid
    if _pools_pid != os.getpid():  # gunicorn: one set of pools per worker process
        _pools.clear()
        _pools_pid = os.getpid()
    p = _pools.get(callee)
    if p is None:
        host, port = ADDR[callee]
        p = urllib3.HTTPConnectionPool(host, port, maxsize=MAXSIZE, block=BLOCK, retries=False,
                                       timeout=urllib3.Timeout(connect=None, read=None), headers=HEADERS)
        p.ConnectionCls = StampedConnection
        _pools[callee] = p
    return p


class Parent:
    """The inbound request a handler is working for."""

    def __init__(self, role, client, server, recv_ns):
        self.role, self.client, self.server, self.recv_ns = role, client, server, recv_ns


def call1(parent, callee, method, path, obj, attempt):
    body = None
    headers = dict(HEADERS)
    if obj is not None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    _tl.stamp = None
    status, data = "ERR", None
    try:
        r = pool(callee).urlopen(method, path, body=body, headers=headers, retries=False,
                                 redirect=False, assert_same_host=False)
        status = r.status
        data = json.loads(r.data) if r.data else None
    finally:
        st = _tl.stamp or (time.time_ns(), "-")
        log(parent.role, "calls", [parent.role, st[1], "%s:%d" % ADDR[callee], st[0], parent.client, parent.server,
                                   parent.recv_ns, callee, method, path, status, attempt, os.getpid()])
    return status, data


def call(parent, callee, method, path, obj=None):
    status, data = call1(parent, callee, method, path, obj, 1)
    if status == 503:
        time.sleep(0.002)
        status, data = call1(parent, callee, method, path, obj, 2)
    return status, data


def work():
    time.sleep(rnd_uniform(1.0, 4.0) / 1000.0)


def handle(role, parent, method, path, body):
    """Returns (status, obj) for one inbound request."""
    p, _, query = path.partition("?")
    seg = [s for s in p.split("/") if s]
    q = dict(kv.partition("=")[::2] for kv in query.split("&") if kv)
    if role == "front" and method == "GET" and len(seg) == 2 and seg[0] == "checkout":
        order_id, uid = seg[1], q.get("user", "0")
        res = {}
        t = threading.Thread(target=lambda: res.update(u=call(parent, "users", "GET", "/users/%s" % uid)))
        t.start()
        ost, order = call(parent, "orders", "GET", "/orders/%s" % order_id)
        t.join()
        ust, user = res.get("u", ("ERR", None))
        skus = order["skus"] if ost == 200 else []
        stock = {}
        for sku in skus:
            sst, s = call(parent, "stock", "GET", "/stock/%s" % sku)
            stock[sku] = s["qty"] if sst == 200 else None
        pst, quote = call(parent, "pricing", "POST", "/quote", {"order_id": order_id, "user": uid, "skus": skus})
        if rnd_random() < 0.10:
            time.sleep(rnd_uniform(20.0, 40.0) / 1000.0)
        ok = ust == 200 and ost == 200 and pst == 200
        return (200 if ok else 502), {"order_id": order_id, "user": (user or {}).get("name"), "stock": stock,
                                      "total": (quote or {}).get("total")}
    if role == "orders" and method == "GET" and len(seg) == 2 and seg[0] == "orders":
        work()
        oid = seg[1]
        r = random.Random(int(oid) if oid.isdigit() else 0)
        skus = ["sku-%d" % r.randrange(50) for _ in range(r.randint(1, 4))]
        rst, _ = call(parent, "stock", "GET", "/reserve/%s" % oid)
        return (200 if rst == 200 else 503 if rst == 503 else 502), {"order_id": oid, "skus": skus, "reserved": rst == 200}
    if role == "users" and method == "GET" and len(seg) == 2 and seg[0] == "users":
        work()
        u = int(seg[1]) if seg[1].isdigit() else 0
        return 200, {"id": u, "name": "user-%03d" % u, "tier": ("gold", "silver", "basic")[u % 3]}
    if role == "stock" and method == "GET" and len(seg) == 2 and seg[0] in ("stock", "reserve"):
        work()
        if rnd_random() < 0.05:
            return 503, {"error": "busy"}
        if seg[0] == "stock":
            h = sum(map(ord, seg[1]))
            return 200, {"sku": seg[1], "qty": (h * 37) % 100}
        return 200, {"reservation": seg[1], "ok": True}
    if role == "pricing" and method == "POST" and seg == ["quote"]:
        work()
        req = json.loads(body or b"{}")
        total = sum(100 + 7 * sum(map(ord, s)) % 900 for s in req.get("skus", []))
        return 200, {"order_id": req.get("order_id"), "total": total, "currency": "EUR"}
    return 404, {"error": "not found"}
