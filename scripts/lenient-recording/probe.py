#!/usr/bin/env python3
"""Sends request lines that strict parsers reject, each on its own connection, to the servers
on the ports given, and prints what each answered (the first line). Used by record.sh; the table
in src/http/head.rs came from its output.
usage: probe.py NAME=PORT...
"""
import socket
import sys

LINES = [
    "get / HTTP/1.1",
    "GET / http/1.1",
    "GET  /   HTTP/1.1",
    "GET /a b HTTP/1.1",
    "GET / HTTP/1.",
    "GET / HTTP/1",
    "GET / HTTP/2.0",
    "GET /x HTTP/1.1 junk",
]


def ask(port, line):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(2)
    s.sendall((line + "\r\nHost: probe\r\nConnection: close\r\n\r\n").encode())
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return data.split(b"\r\n")[0].decode(errors="replace")[:24] or "(closed)"


def main():
    servers = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[1:]]
    print("| request line | " + " | ".join(n for n, _ in servers) + " |")
    for line in LINES:
        print("| `%s` | %s |" % (line, " | ".join(ask(p, line) for _, p in servers)))


if __name__ == "__main__":
    main()
