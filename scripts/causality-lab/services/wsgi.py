"""A shop service (front or orders) as a WSGI app for gunicorn sync workers.

  LAB_ROLE=front LAB_SELF=10.78.0.10:8000 LAB_POOL_MAXSIZE=1 gunicorn -w 6 -k sync -b 10.78.0.10:8000 wsgi:app

Each worker process builds its own urllib3 pools (shop.pool keys them by pid), maxsize 1:
one keep-alive connection per backend per worker.  gunicorn's sync worker answers
`Connection: close`, so calls TO a gunicorn service use a new TCP connection each."""
import json
import os
import sys
import time

import shop

ROLE = os.environ["LAB_ROLE"]
SELF = os.environ["LAB_SELF"]


class _Body:
    """gunicorn calls close() after it has written the whole response."""

    def __init__(self, data, fields):
        self.data, self.fields = data, fields

    def __iter__(self):
        yield self.data

    def close(self):
        if self.fields:
            f = self.fields
            shop.log(ROLE, "access", [f[0], time.time_ns()] + f[1:])


def app(environ, start_response):
    recv_ns = time.time_ns()
    path = environ.get("PATH_INFO", "/")
    if environ.get("QUERY_STRING"):
        path += "?" + environ["QUERY_STRING"]
    method = environ["REQUEST_METHOD"]
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    peer = "%s:%s" % (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
    if path == "/health":
        code, obj = 200, {"ok": True, "service": ROLE}
    else:
        try:
            code, obj = shop.handle(ROLE, shop.Parent(ROLE, peer, SELF, recv_ns), method, path, body)
        except Exception as e:
            sys.stderr.write("%s[%d]: %s %s: %r\n" % (ROLE, os.getpid(), method, path, e))
            code, obj = 500, {"error": "internal"}
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    start_response("%d %s" % (code, reason.get(code, "X")),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    fields = None if path == "/health" else [recv_ns, peer, SELF, method, path, code, os.getpid()]
    return _Body(data, fields)
