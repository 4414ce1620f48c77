#!/usr/bin/env python3
"""Sends HTTP/0.9 simple requests (a request line without a version, RFC 1945 §4.1), and for
contrast an HTTP/1.0 request, each on its own connection, to the servers on the ports given;
reads each answer until the server closes and prints what came back (its first bytes, its size).
Used by record.sh.
usage: probe.py NAME=PORT...
"""
import socket
import sys

# (what is sent, whether the client then shuts down its side as `nc -N` does). http.server
# reads header lines even after a request line without a version: it answers only once the
# client's FIN (or an empty line) arrives, so to it every request is sent with a FIN.
REQUESTS = [
    (b"GET /a\r\n", False),
    (b"GET /text.txt\r\n", False),
    (b"GET /nope\r\n", False),
    (b"GET /a\n", True),
    (b"HEAD /a\r\n", False),
    (b"GET /a HTTP/1.0\r\n\r\n", False),
]


def ask(port, raw, shut):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    s.sendall(raw)
    if shut:
        s.shutdown(socket.SHUT_WR)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return data


def main():
    servers = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[1:]]
    print("| server | sent | answer begins | bytes |")
    print("| --- | --- | --- | --- |")
    for name, port in servers:
        for raw, shut in REQUESTS:
            shut = shut or name == "python"
            data = ask(port, raw, shut)
            shown = data[:24].decode(errors="replace").replace("\r", "\\r").replace("\n", "\\n")
            sent = raw.decode().replace("\r", "\\r").replace("\n", "\\n")
            sent += " (then FIN)" if shut else ""
            print("| %s | `%s` | `%s` | %d |" % (name, sent, shown, len(data)))


if __name__ == "__main__":
    main()
