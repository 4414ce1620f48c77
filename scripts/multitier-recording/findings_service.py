"""An HTTP service with the call patterns the analysis's findings name, for
`record.sh OUT_DIR findings`. Three handlers, each calling Redis and PostgreSQL through a
fixed pool of connection pairs (one Redis, one PostgreSQL), as service.py does:
    GET /orders/ID     an N+1: one SELECT of the order's items, then one SELECT per item
                       (the same statement, a different bound SKU each time);
    GET /dashboard/ID  a cache the code does not use: three Redis GETs of the same key (the
                       tenant's feature flags, read once per feature), then one SELECT;
    GET /user/ID       clean: one Redis GET and one SELECT (with an inline literal).
Redis is on 127.0.0.2:6379 and PostgreSQL on 127.0.0.3:5432 (addresses of their own, as on
hosts of their own), the service on 127.0.0.1:8000.
Its log is the truth, one line per downstream call and one per request:
    rid=REQUEST kind=redis|postgres port=LOCAL_PORT op=OPERATION stmt=NAME value=VALUE
        start=NS end=NS
    rid=REQUEST kind=http port=CLIENT_PORT path=PATH start=NS end=NS status=CODE
where REQUEST is the X-Request-ID every request carries, NAME names the statement or key
(`items`, `product`, `flags`, `tenant`, `profile`, `user`) and VALUE is the Redis key or the
SQL value (bound or literal) the call carried: values that no output of tapspan may show.
"""
import hashlib
import queue
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis

POOL = queue.Queue()
LOG = None if sys.argv[1] == "--setup" else open(sys.argv[1], "a", buffering=1)
LOCK = threading.Lock()


def log(**kv):
    with LOCK:
        LOG.write(" ".join(f"{k}={v}" for k, v in kv.items()) + "\n")


def tag(kind, n):
    """A value that looks like an identifier and appears nowhere else: `kind-` and 10 hex."""
    return f"{kind}-{hashlib.sha256(f'{kind}{n}'.encode()).hexdigest()[:10]}"


def pair():
    r = redis.Redis(host="127.0.0.2", port=6379, protocol=2, single_connection_client=True)
    r.ping()
    rport = r.connection._sock.getsockname()[1]
    pg = psycopg.connect("host=127.0.0.3 port=5432 dbname=shop user=postgres sslmode=disable",
                         autocommit=True)
    fd = pg.pgconn.socket
    pport = socket.socket(fileno=socket.dup(fd)).getsockname()[1]
    return r, rport, pg, pport


class Calls:
    """One request's downstream calls, each logged under its request id."""

    def __init__(self, rid, conns):
        self.rid = rid
        self.r, self.rport, self.pg, self.pport = conns

    def _log(self, kind, port, op, stmt, value, fn):
        start = time.time_ns()
        try:
            return fn()
        finally:
            log(rid=self.rid, kind=kind, port=port, op=op, stmt=stmt, value=value, start=start,
                end=time.time_ns())

    def get(self, stmt, key):
        return self._log("redis", self.rport, "GET", stmt, key, lambda: self.r.get(key))

    def select(self, stmt, sql, value, bound=True):
        params = (value,) if bound else None
        return self._log("postgres", self.pport, "SELECT", stmt, value,
                         lambda: self.pg.execute(sql, params).fetchall())


def orders(c, n):
    skus = [row[0] for row in c.select(
        "items", "SELECT sku FROM order_items WHERE order_id = %s ORDER BY pos", n)]
    names = [c.select("product", "SELECT name, price FROM products WHERE sku = %s", sku)
             for sku in skus]
    return f"{len(names)} items"


def dashboard(c, n):
    key = f"flags:{tag('tenant', n % 7)}"
    enabled = [c.get("flags", key) for _feature in ("search", "export", "beta")]
    rows = c.select("tenant", "SELECT count(*) FROM orders WHERE tenant = %s",
                    tag("tenant", n % 7))
    return f"{sum(1 for e in enabled if e)} flags, {rows[0][0]} orders"


def user(c, n):
    c.get("profile", f"profile:{tag('profile', n)}")
    handle = tag("handle", n)
    rows = c.select("user", f"SELECT name FROM users WHERE handle = '{handle}'", handle,
                    bound=False)
    return rows[0][0] if rows else "none"


HANDLERS = {"orders": orders, "dashboard": dashboard, "user": user}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        start = time.time_ns()
        rid = self.headers.get("X-Request-ID", "none")
        _, name, n = self.path.split("/")
        conns = POOL.get()
        try:
            body = f"{HANDLERS[name](Calls(rid, conns), int(n))}\n".encode()
        finally:
            POOL.put(conns)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(rid=rid, kind="http", port=self.client_address[1], path=self.path, start=start,
            end=time.time_ns(), status=200)

    def log_message(self, *args):
        pass


def setup():
    """`--setup`: the SQL that makes the tables (to stdout), then a line `--redis`, then the
    redis-cli commands that fill the flags cache."""
    print("CREATE TABLE products (sku text PRIMARY KEY, name text, price int);")
    print("CREATE TABLE order_items (order_id int, pos int, sku text);")
    print("CREATE TABLE orders (id int PRIMARY KEY, tenant text);")
    print("CREATE TABLE users (id int PRIMARY KEY, handle text, name text);")
    for k in range(40):
        print(f"INSERT INTO products VALUES ('{tag('sku', k)}', 'product-{k}', {100 + k});")
    for o in range(1, 41):
        print(f"INSERT INTO orders VALUES ({o}, '{tag('tenant', o % 7)}');")
        print(f"INSERT INTO users VALUES ({o}, '{tag('handle', o)}', 'name-{o}');")
        for j in range(3 + o % 3):
            print(f"INSERT INTO order_items VALUES ({o}, {j}, '{tag('sku', (o * 7 + j) % 40)}');")
    print("--redis")
    for t in range(7):
        print(f"SET flags:{tag('tenant', t)} search,export")


def main():
    if sys.argv[1] == "--setup":
        return setup()
    for _ in range(4):
        POOL.put(pair())
    ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()


if __name__ == "__main__":
    main()
