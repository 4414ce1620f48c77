#!/usr/bin/python3
"""A small multi-service "shop" used to record tapspan's shop-dirty / shop-clean captures.

usage: shop.py ROLE PORT [MODE]
  ROLE  gateway | users | items | pricing | inventory
  PORT  TCP port; the service binds SHOP_BIND (default: the role's fixed 10.88.0.x address)
  MODE  dirty (default) | clean

Python 3 standard library only.  Every service is an http.server.ThreadingHTTPServer
speaking HTTP/1.1 (persistent connections, every response has Content-Length, never
chunked, never compressed).  Every response echoes the request's X-Request-ID.

Each service appends one line per request to $SHOP_LOGDIR/ROLE.access.log (default: cwd):
  time_iso remote_ip:remote_port "METHOD TARGET" status body_bytes duration_ms x_request_id
time_iso is UTC, taken when the request head has been parsed; duration_ms runs from then
until the last response byte was handed to the kernel.  Status 499 is a log-only status:
the client went away before the response was sent, and nothing was sent.

The gateway talks to the other four through a small keep-alive pool (one pool per
downstream service, shared by all handler threads: an idle connection is reused, a new one
is opened when none is idle, a connection is returned after its response was read in full).
The one exception is inventory /slow/{x}: that call uses a fresh connection with a 0.3 s
socket timeout, which the gateway closes when the timeout fires.

MODE dirty plants N+1 calls, sequential independent calls, repeated identical GETs, a 503 +
retry, a client-side timeout (504) and a large (~300 KB) response; MODE clean has none of
them: a checkout makes its four downstream calls (users, ONE batched items call, pricing,
inventory) all in parallel, and /config is fetched once, when the gateway starts (before it
listens, on a connection of its own that it then closes), and cached.
"""
import datetime
import http.client
import http.server
import json
import os
import random
import select
import socket
import sys
import threading
import time

ROLE = sys.argv[1]
PORT = int(sys.argv[2])
MODE = sys.argv[3] if len(sys.argv) > 3 else "dirty"
assert MODE in ("dirty", "clean"), MODE

ADDR = {
    "gateway": ("10.88.0.10", 8080),
    "users": ("10.88.0.11", 8081),
    "items": ("10.88.0.12", 8082),
    "pricing": ("10.88.0.13", 8083),
    "inventory": ("10.88.0.14", 8084),
}
BIND = os.environ.get("SHOP_BIND", ADDR[ROLE][0])
LOGFILE = os.path.join(os.environ.get("SHOP_LOGDIR", "."), ROLE + ".access.log")
_log_lock = threading.Lock()


def ms(lo, hi, key):
    """Deterministic think time in seconds, lo..hi ms, chosen by key."""
    return random.Random(key).uniform(lo, hi) / 1000.0


# ---------------------------------------------------------------- data of the shop
def user_cart(uid):
    # six distinct item ids in 100..999
    return [(uid * 37 + j * 53) % 900 + 100 for j in range(6)]


def item_doc(i):
    return {"id": i, "sku": "SKU-%04d" % i, "name": "item %d" % i,
            "price_hint": round(1.5 + (i * 7919 % 1000) / 10.0, 2)}


def build_catalog():
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
             "omicron pi rho sigma tau upsilon phi chi psi omega").split()
    rnd = random.Random(42)
    items = []
    for i in range(1, 1001):  # 298,097 bytes
        d = item_doc(i)
        d["description"] = " ".join(rnd.choice(words) for _ in range(32))
        d["tags"] = [rnd.choice(words) for _ in range(4)]
        items.append(d)
    return (json.dumps({"catalog": "full", "count": len(items), "items": items}) + "\n").encode()


CATALOG = build_catalog() if ROLE == "items" else b""


# ---------------------------------------------------------------- downstream client (gateway)
class Pool:
    """Keep-alive connections to one downstream service, shared by all threads."""

    def __init__(self, name):
        self.name = name
        self.host, self.port = ADDR[name]
        self.idle = []
        self.lock = threading.Lock()

    def get(self):
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return http.client.HTTPConnection(self.host, self.port, timeout=5)

    def put(self, conn):
        with self.lock:
            self.idle.append(conn)


POOLS = {name: Pool(name) for name in ("users", "items", "pricing", "inventory")}


def _headers(rid, order):
    headers = {"User-Agent": "shop-gateway/1.0", "Accept": "application/json"}
    if rid:
        headers["X-Request-ID"] = rid
    if order is not None:
        headers["X-Order-ID"] = str(order)
    return headers


def prepare(conn, target, rid, order=None):
    """Builds the request head of GET target in conn's buffer without sending it (the same
    bytes conn.request() would send); call(..., conn, prepared=True) then sends it."""
    conn.putrequest("GET", target)
    for k, v in _headers(rid, order).items():
        conn.putheader(k, v)


def call(service, target, rid, order=None, conn=None, prepared=False):
    """GET target on service over a pooled keep-alive connection (or over conn, taken from
    that pool by the caller, its request head already built if prepared); returns
    (status, body)."""
    pool = POOLS[service]
    if conn is None:
        conn = pool.get()
    try:
        if prepared:
            conn.endheaders()  # sends the head built by prepare()
        else:
            conn.request("GET", target, headers=_headers(rid, order))
        resp = conn.getresponse()
        body = resp.read()
    except Exception:
        conn.close()
        raise
    if resp.will_close:
        conn.close()
    else:
        pool.put(conn)
    return resp.status, body


def call_with_timeout_giving_up(service, target, rid, order, timeout):
    """GET on a fresh connection; returns None if no response head arrived within timeout
    (the connection is then closed: FIN, no RST, since nothing was received)."""
    host, port = ADDR[service]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": "shop-gateway/1.0", "Accept": "application/json",
               "X-Request-ID": rid, "X-Order-ID": str(order)}
    try:
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body
    except (socket.timeout, TimeoutError):
        return None
    finally:
        conn.close()


# ---------------------------------------------------------------- request handler
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shop-" + ROLE + "/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    def version_string(self):  # "shop-ROLE/1.0", not "shop-ROLE/1.0 " (empty sys_version)
        return self.server_version

    # silence http.server's own stderr logging; we write our own access log
    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, nbytes):
        dur = (time.monotonic() - self._t0) * 1000.0
        line = '%s %s:%d "%s %s" %s %d %.3f %s\n' % (
            self._ts, self.client_address[0], self.client_address[1], self.command,
            self.path, status, nbytes, dur, self.headers.get("X-Request-ID", "-"))
        with _log_lock, open(LOGFILE, "a") as f:
            f.write(line)

    def _send(self, code, obj, raw=None):
        """Status line, headers and body in ONE write (one or more TCP segments)."""
        body = raw if raw is not None else (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get("X-Request-ID")
        if rid:
            self.send_header("X-Request-ID", rid)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()
        self._log(code, len(body))

    def _client_gone(self):
        r, _, _ = select.select([self.connection], [], [], 0)
        if not r:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self):
        self._t0 = time.monotonic()
        self._ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
        parts = self.path.split("?", 1)
        path, query = parts[0], (parts[1] if len(parts) > 1 else "")
        seg = [s for s in path.split("/") if s]
        try:
            getattr(self, "route_" + ROLE)(seg, query)
        except Exception as e:  # never expected in a recording
            sys.stderr.write("%s: %s %s failed: %r\n" % (ROLE, self.command, self.path, e))
            self._send(502, {"error": repr(e)})

    # ------------------------------------------------------------ leaf services
    def route_users(self, seg, query):
        if seg == ["health"]:
            return self._send(200, {"ok": True})
        if len(seg) == 2 and seg[0] == "users":
            uid = int(seg[1])
            time.sleep(ms(3, 6, self.path))
            return self._send(200, {"id": uid, "name": "user-%d" % uid, "region": "eu",
                                    "cart": user_cart(uid)})
        self._send(404, {"error": "not found"})

    def route_items(self, seg, query):
        if seg == ["health"]:
            return self._send(200, {"ok": True})
        if seg == ["catalog", "full"]:
            return self._send(200, None, raw=CATALOG)
        if len(seg) == 2 and seg[0] == "items":
            time.sleep(ms(2, 4, self.path))
            return self._send(200, item_doc(int(seg[1])))
        if seg == ["items"] and query.startswith("ids="):
            ids = [int(x) for x in query[4:].split(",") if x]
            time.sleep(0.005)
            return self._send(200, {"items": [item_doc(i) for i in ids]})
        self._send(404, {"error": "not found"})

    def route_pricing(self, seg, query):
        if seg == ["health"]:
            return self._send(200, {"ok": True})
        if len(seg) == 2 and seg[0] == "price":
            time.sleep(0.080 if MODE == "dirty" else 0.005)  # think time before the head
            sku = seg[1]
            n = int(sku.split("-")[-1]) if sku.split("-")[-1].isdigit() else 1
            return self._send(200, {"sku": sku, "price": round(1.5 + (n * 7919 % 1000) / 10.0, 2),
                                    "currency": "EUR"})
        if seg == ["config"]:
            time.sleep(0.002)
            return self._send(200, {"currency": "EUR", "vat": 0.2, "rounding": 2})
        self._send(404, {"error": "not found"})

    _seen = set()
    _seen_lock = threading.Lock()

    def route_inventory(self, seg, query):
        if seg == ["health"]:
            return self._send(200, {"ok": True})
        if len(seg) == 2 and seg[0] == "stock":
            time.sleep(0.020)
            order = int(self.headers.get("X-Order-ID", "1"))
            key = (self.headers.get("X-Request-ID"), self.path)
            with self._seen_lock:
                first = key not in self._seen
                self._seen.add(key)
            if MODE == "dirty" and order % 3 == 0 and first:
                return self._send(503, {"error": "inventory busy, retry"})
            return self._send(200, {"sku": seg[1], "available": 3 + order % 5})
        if len(seg) == 2 and seg[0] == "slow":
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                if self._client_gone():
                    # like nginx's 499: log it, send nothing, close our side
                    self.close_connection = True
                    self._log(499, 0)
                    return
                time.sleep(0.01)
            return self._send(200, {"slow": seg[1]})
        self._send(404, {"error": "not found"})

    # ------------------------------------------------------------ gateway
    def route_gateway(self, seg, query):
        rid = self.headers.get("X-Request-ID", "-")
        if seg == ["health"]:
            return self._send(200, {"ok": True})
        if len(seg) == 2 and seg[0] == "checkout":
            return self.checkout(int(seg[1]), rid)
        if len(seg) == 2 and seg[0] == "product":
            return self.product(int(seg[1]), rid)
        self._send(404, {"error": "not found"})

    def checkout(self, order, rid):
        uid = order - 8800  # 9001 -> user 201
        if MODE == "dirty":
            st, body = call("users", "/users/%d" % uid, rid, order)
            cart = json.loads(body)["cart"]
            # N+1: one call per cart item, sequentially
            items = [json.loads(call("items", "/items/%d" % i, rid, order)[1]) for i in cart]
            sku = items[0]["sku"]
            # independent calls made one after the other
            _, pbody = call("pricing", "/price/%s" % sku, rid, order)
            st, sbody = call("inventory", "/stock/%s" % sku, rid, order)
            retried = False
            if st == 503:  # retry once, same call
                retried = True
                st, sbody = call("inventory", "/stock/%s" % sku, rid, order)
            # the same static config fetched twice in one checkout
            call("pricing", "/config", rid, order)
            _, cbody = call("pricing", "/config", rid, order)
            if order % 5 == 0:
                r = call_with_timeout_giving_up("inventory", "/slow/%d" % order, rid, order, 0.3)
                if r is None:
                    return self._send(504, {"order": order, "error": "inventory reservation timed out"})
            return self._send(200, {"order": order, "user": uid, "items": len(items),
                                    "price": json.loads(pbody)["price"],
                                    "available": json.loads(sbody)["available"],
                                    "retried": retried})
        # clean: the order determines the user and the cart (the gateway computes them with
        # the same function the users service uses), so no call needs another call's answer:
        # users, ONE batched items call, pricing and inventory, all four in parallel. /config
        # was fetched once at startup (CONFIG) and is not requested again.
        cart = user_cart(uid)
        sku = "SKU-%04d" % cart[0]
        res = {}
        # the slowest call first; connections are taken (and connected) and the request heads
        # built up front, then the threads are released together and each only has to send
        # its head, so the four requests leave within about a millisecond of each other even
        # when a new connection is needed or a thread starts late
        calls = [("stock", "inventory", "/stock/%s" % sku),
                 ("user", "users", "/users/%d" % uid),
                 ("items", "items", "/items?ids=" + ",".join(map(str, cart))),
                 ("price", "pricing", "/price/%s" % sku)]
        conns = [POOLS[svc].get() for _, svc, _ in calls]
        for (_, _, target), c in zip(calls, conns):
            if c.sock is None:
                c.connect()
            prepare(c, target, rid, order)
        go = threading.Barrier(len(calls))

        def run(name, service, target, conn):
            go.wait()
            res[name] = call(service, target, rid, order, conn, prepared=True)

        threads = [threading.Thread(target=run, args=a + (c,)) for a, c in zip(calls, conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        items = json.loads(res["items"][1])["items"]
        assert json.loads(res["user"][1])["cart"] == cart
        return self._send(200, {"order": order, "user": uid, "items": len(items),
                                "price": json.loads(res["price"][1])["price"],
                                "available": json.loads(res["stock"][1])["available"],
                                "retried": False})

    def product(self, pid, rid):
        if MODE == "dirty":
            # fetches the whole ~300 KB catalog to show one product
            _, body = call("items", "/catalog/full", rid)
            doc = next(d for d in json.loads(body)["items"] if d["id"] == pid)
        else:
            _, body = call("items", "/items/%d" % pid, rid)
            doc = json.loads(body)
        return self._send(200, {"id": pid, "sku": doc["sku"], "name": doc["name"]})


CONFIG = None  # clean gateway: pricing's /config, fetched once at startup


def fetch_config_at_startup():
    """GET pricing /config on a connection of its own, closed afterwards; retried (every
    0.1 s, for up to 10 s) until pricing answers. Runs before the gateway listens."""
    host, port = ADDR["pricing"]
    for _ in range(100):
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", "/config", headers={"User-Agent": "shop-gateway/1.0",
                                                    "Accept": "application/json",
                                                    "X-Request-ID": "gateway-startup"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                return json.loads(body)
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit("gateway: pricing /config not reachable at startup")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


if __name__ == "__main__":
    if ROLE == "items":
        sys.stderr.write("items: catalog is %d bytes\n" % len(CATALOG))
    if ROLE == "gateway" and MODE == "clean":
        CONFIG = fetch_config_at_startup()
        sys.stderr.write("gateway: /config fetched at startup: %s\n" % json.dumps(CONFIG))
    Server((BIND, PORT), Handler).serve_forever()
