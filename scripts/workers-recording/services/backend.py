#!/usr/bin/python3
"""Backend of tapspan's workers-c16 capture: users (GET /user/{u}) or stock (GET /stock/{k}).

usage: backend.py ROLE BIND_IP PORT        ROLE = users | stock

Python 3 standard library only.  http.server.ThreadingHTTPServer speaking HTTP/1.1
(persistent connections: the server never closes an idle keep-alive connection itself);
every response has Content-Length, is never chunked or compressed, and goes out with status
line, headers and body in ONE send() (TCP_NODELAY on).  Each request takes a random
1-4 ms of "work" (time.sleep) before the response is built.  GET /health answers at once.

Appends one line per request to $WORKERS_LOGDIR/ROLE.log (default: cwd), written when the
response has been handed to the kernel:
  t_head remote_ip:remote_port conn_seq METHOD path status body_bytes t_done
t_head  = time.time() (Unix epoch seconds, 6 decimals) when the request head had been parsed
t_done  = time.time() right after the response was sent
conn_seq = 1 for the first request on this TCP connection, 2 for the second, ...
"""
import http.server
import json
import os
import random
import sys
import threading
import time

ROLE, BIND, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert ROLE in ("users", "stock"), ROLE
LOGFILE = os.path.join(os.environ.get("WORKERS_LOGDIR", "."), ROLE + ".log")
_log_lock = threading.Lock()
_rnd = random.Random()
_rnd_lock = threading.Lock()


def work_seconds():
    with _rnd_lock:
        return _rnd.uniform(1.0, 4.0) / 1000.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "workers-" + ROLE + "/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.conn_seq = 0  # one Handler instance per TCP connection

    def _send(self, code, obj):
        body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()  # status line + headers + body: one write
        t_done = time.time()
        line = "%.6f %s:%d %d %s %s %d %d %.6f\n" % (
            self.t_head, self.client_address[0], self.client_address[1], self.conn_seq,
            self.command, self.path, code, len(body), t_done)
        with _log_lock, open(LOGFILE, "a") as f:
            f.write(line)

    def do_GET(self):
        self.t_head = time.time()
        self.conn_seq += 1
        seg = [s for s in self.path.split("?", 1)[0].split("/") if s]
        if seg == ["health"]:
            return self._send(200, {"ok": True, "service": ROLE})
        time.sleep(work_seconds())
        if ROLE == "users" and len(seg) == 2 and seg[0] == "user" and seg[1].isdigit():
            u = int(seg[1])
            return self._send(200, {"id": u, "name": "user-%02d" % u, "tier": ("gold", "silver", "basic")[u % 3]})
        if ROLE == "stock" and len(seg) == 2 and seg[0] == "stock" and seg[1].isdigit():
            k = int(seg[1])
            return self._send(200, {"sku": k, "qty": (k * 37) % 100, "warehouse": "w%d" % (k % 3)})
        return self._send(404, {"error": "not found", "path": self.path})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


if __name__ == "__main__":
    Server((BIND, PORT), Handler).serve_forever()
