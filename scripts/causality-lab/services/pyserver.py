#!/usr/bin/python3
"""A shop service on http.server.ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per
connection).  usage: pyserver.py ROLE BIND_IP PORT     (logic: shop.py)"""
import http.server
import json
import os
import sys
import time

import shop

ROLE, BIND, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
SELF = "%s:%d" % (BIND, PORT)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-%s/1.0" % ROLE
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def _serve(self):
        recv_ns = time.time_ns()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        peer = "%s:%d" % self.client_address[:2]
        if self.path == "/health":
            code, obj = 200, {"ok": True, "service": ROLE}
        else:
            parent = shop.Parent(ROLE, peer, SELF, recv_ns)
            try:
                code, obj = shop.handle(ROLE, parent, self.command, self.path, body)
            except Exception as e:  # a failed call: answer 500, keep serving
                sys.stderr.write("%s: %s %s: %r\n" % (ROLE, self.command, self.path, e))
                code, obj = 500, {"error": "internal"}
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.flush_headers()  # status line + headers + body in one write
        if self.path != "/health":
            shop.log(ROLE, "access", [recv_ns, time.time_ns(), peer, SELF, self.command, self.path, code, os.getpid()])

    do_GET = do_POST = _serve


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


if __name__ == "__main__":
    Server((BIND, PORT), Handler).serve_forever()
