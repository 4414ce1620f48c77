"""Python's resolver (glibc getaddrinfo) for scripts/dns-recording/record.sh."""
import socket

for name in ("api.shop.test", "db.shop.test", "www.shop.test", "nope.shop.test"):
    try:
        socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        pass
    try:
        socket.getaddrinfo(name, 443, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror:
        pass
