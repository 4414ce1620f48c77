#!/bin/bash
# Records OUT_DIR/curl-socks5.pcap: curl fetching pages from nginx through two microsocks SOCKS 5
# proxies (one open, port 1080; one asking for a user and password, RFC 1929, port 1081), with
# the target given as an address (--socks5) or a host name (--socks5-hostname). Only the client's
# side of the proxies is captured (tcp ports 1080 and 1081), as a tap in front of the client would
# see it: the SOCKS handshake, then HTTP. nginx's access log is the reference.
# usage: record.sh OUT_DIR   (run as root; needs nginx, curl, microsocks)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=$(mktemp -d)
mkdir -p "$OUT"
on_exit() {
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns tssocks
. "$HERE/../lib/nginx-in-ns.sh"
nginx_in_ns "$RUN" 'server {
        listen 127.0.0.1:8080;
        location = /missing { return 404 "no\n"; }
        location / { return 200 "ok\n"; }
    }'
ip netns exec tssocks microsocks -i 127.0.0.1 -p 1080 >/dev/null 2>&1 &
ip netns exec tssocks microsocks -i 127.0.0.1 -p 1081 -u alice -P socks-pw-42 >/dev/null 2>&1 &
sleep 1
ip netns exec tssocks tcpdump -i lo -w "$OUT/curl-socks5.pcap" -U -s 0 \
    'tcp port 1080 or tcp port 1081' 2>"$RUN/tcpdump.stderr" &
TCPDUMP=$!
sleep 1
c() { ip netns exec tssocks curl -sS -o /dev/null "$@"; }
c --socks5 127.0.0.1:1080 http://127.0.0.1:8080/a
c --socks5-hostname 127.0.0.1:1080 http://localhost:8080/b http://localhost:8080/missing
c --socks5 127.0.0.1:1081 --proxy-user alice:socks-pw-42 http://127.0.0.1:8080/c
c --socks5-hostname 127.0.0.1:1081 --proxy-user alice:socks-pw-42 -d 'x=1' \
    http://localhost:8080/d
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP || true
cp "$RUN/access.log" "$OUT/curl-socks5.access.log"
cat "$RUN/tcpdump.stderr" >&2
