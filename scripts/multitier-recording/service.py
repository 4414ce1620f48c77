"""An HTTP service that calls Redis and PostgreSQL per request, for
scripts/multitier-recording/record.sh. GET /user/ID: a Redis GET of the user's cached session,
a PostgreSQL SELECT (extended protocol) of the user, a Redis SET (cache fill) on a miss, and
every fourth request an UPDATE of a visit counter. Connections come from a fixed pool of pairs
(one Redis, one PostgreSQL), so calls of concurrent requests interleave on the wire. Its log,
one line per downstream call, is the truth for parenthood:
    rid=REQUEST kind=redis|postgres port=LOCAL_PORT op=OPERATION start=NS end=NS
and one line per request: rid=REQUEST kind=http port=CLIENT_PORT path=PATH start=NS end=NS
status=CODE, where REQUEST is the X-Request-ID, or CLIENT_PORT#N (the Nth on that connection).
"""
import queue
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis

POOL = queue.Queue()
LOG = open(sys.argv[1], "a", buffering=1)
LOCK = threading.Lock()


def log(**kv):
    with LOCK:
        LOG.write(" ".join(f"{k}={v}" for k, v in kv.items()) + "\n")


def pair():
    r = redis.Redis(host="127.0.0.1", port=6379, protocol=2, single_connection_client=True)
    r.ping()
    rport = r.connection._sock.getsockname()[1]
    pg = psycopg.connect("host=127.0.0.1 port=5432 dbname=shop user=postgres sslmode=disable",
                         autocommit=True)
    fd = pg.pgconn.socket
    pport = socket.socket(fileno=socket.dup(fd)).getsockname()[1]
    return r, rport, pg, pport


def call(rid, kind, port, op, fn):
    start = time.time_ns()
    try:
        return fn()
    finally:
        log(rid=rid, kind=kind, port=port, op=op, start=start, end=time.time_ns())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        start = time.time_ns()
        # The request: its X-Request-ID if any, else its client port and number on that
        # connection (`PORT#N`), which the capture shows too.
        self.seq = getattr(self, "seq", 0) + 1
        rid = self.headers.get("X-Request-ID") or f"{self.client_address[1]}#{self.seq}"

        uid = int(self.path.rsplit("/", 1)[-1])
        r, rport, pg, pport = POOL.get()
        try:
            cached = call(rid, "redis", rport, "GET", lambda: r.get(f"session:{uid:06x}"))
            row = call(rid, "postgres", pport, "SELECT", lambda: pg.execute(
                "SELECT id, name FROM users WHERE id = %s", (uid,)).fetchone())
            if cached is None:
                call(rid, "redis", rport, "SET",
                     lambda: r.set(f"session:{uid:06x}", f"session-value-{uid}", ex=60))
            if uid % 4 == 0:
                call(rid, "postgres", pport, "UPDATE", lambda: pg.execute(
                    "UPDATE users SET visits = visits + 1 WHERE id = %s", (uid,)))
        finally:
            POOL.put((r, rport, pg, pport))
        body = f"{row[1] if row else 'none'}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(rid=rid, kind="http", port=self.client_address[1], path=self.path, start=start,
            end=time.time_ns(), status=200)

    def log_message(self, *args):
        pass


def main():
    for _ in range(4):
        POOL.put(pair())
    ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()


if __name__ == "__main__":
    main()
