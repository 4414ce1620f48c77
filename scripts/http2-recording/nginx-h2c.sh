#!/bin/bash
# Records OUT_DIR/http2-nginx.pcap: h2load and nghttp (nghttp2-client) speaking cleartext HTTP/2
# with prior knowledge (h2c, no Upgrade) to nginx on 127.0.0.1:8080 (`listen … http2;`), many
# streams in flight per connection, captured by tcpdump on `lo` inside a network namespace.
# Paths vary (files, JSON, 404s, 500s, query strings, POSTs with bodies) and every request
# carries a few non-static headers, so that HPACK's dynamic tables fill up and later requests
# refer to them by index: a copy cut mid-connection (OUT_DIR/http2-nginx-cut.pcap, made with
# `editcap -A`) then holds fields whose table entries were added before the cut.
# nginx's own record: its access log (OUT_DIR/http2-nginx.access.log), one line per request:
#   msec connection:requests remote_port method uri status body_bytes_sent request_length protocol
# usage: nginx-h2c.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: nginx-h2c.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tsh2nginx
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
. "$HERE/../lib/nginx-in-ns.sh"
loopback_ns $NS

mkdir -p "$RUN/www/static" "$RUN/www/docs"
head -c 2000 /dev/zero | tr '\0' 'c' > "$RUN/www/static/site.css"
head -c 12000 /dev/zero | tr '\0' 'j' > "$RUN/www/static/app.js"
head -c 600 /dev/zero | tr '\0' 'h' > "$RUN/www/index.html"
for i in $(seq 1 8); do head -c $((i * 700)) /dev/zero | tr '\0' 'd' > "$RUN/www/docs/page-$i.html"; done
nginx_in_ns "$RUN" "
    log_format h2 '\$msec \$connection:\$connection_requests \$remote_port \$request_method '
                  '\$request_uri \$status \$body_bytes_sent \$request_length \$server_protocol';
    server {
        listen 127.0.0.1:8080 http2;
        server_name shop.test;
        root $RUN/www;
        access_log $RUN/h2.log h2;
        http2_max_concurrent_streams 128;
        location /api/items/ { default_type application/json; return 200 '{\"item\":\"\$uri\"}\n'; }
        location = /api/orders { default_type application/json; return 201 '{\"created\":true}\n'; }
        location = /api/fail { return 500; }
        location = /api/moved { return 302 /api/items/1; }
    }"
sleep 0.3
ip netns exec $NS tcpdump -i lo -w "$OUT/http2-nginx.pcap" -U -s 0 'tcp port 8080' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
B=http://127.0.0.1:8080
{
    echo "$B/"; echo "$B/static/site.css"; echo "$B/static/app.js"; echo "$B/api/fail"
    echo "$B/api/moved"; echo "$B/missing/thing"; echo "$B/docs/absent.html"
    for i in $(seq 1 8); do echo "$B/docs/page-$i.html"; done
    for i in $(seq 1 40); do echo "$B/api/items/$i?view=full&lang=en"; done
} > "$RUN/uris"
head -c 900 /dev/zero | tr '\0' 'p' > "$RUN/body"
h2() { ip netns exec $NS h2load "$@" > "$RUN/h2load.out" 2>&1 || { cat "$RUN/h2load.out" >&2; exit 1; }; }
# 3 connections × 1000 requests, 24 streams in flight each, ~400 requests/s per connection.
h2 -n 3000 -c 3 -m 24 --rps 400 -i "$RUN/uris" \
    -H 'user-agent: tapspan-recorder/1' -H 'x-tenant: acme-retail' \
    -H 'x-request-tag: aa11bb22cc33dd44' -H 'accept-language: en-GB,en;q=0.8'
# POSTs with a 900-byte body.
h2 -n 200 -c 1 -m 10 --rps 200 -d "$RUN/body" -H 'content-type: application/json' "$B/api/orders"
# nghttp: one connection, many URIs at once (all requested concurrently).
ip netns exec $NS nghttp -n -a -H 'x-tenant: globex' "$B/docs/page-3.html" "$B/index.html" \
    "$B/api/items/77" "$B/api/fail" "$B/nothing-here" > /dev/null 2>&1 || true
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
cp "$RUN/h2.log" "$OUT/http2-nginx.access.log"
tail -3 "$RUN/h2load.out" >&2
