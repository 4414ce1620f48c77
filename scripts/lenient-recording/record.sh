#!/bin/bash
# Records OUT_DIR/lenient-lines.pcap: request lines that strict parsers reject (probe.py), each
# on its own connection, sent to nginx and to a Node.js `http` server, which answer them (200,
# 400, 505). Every one must become an exchange with the status the server sent. nginx's access
# log (OUT_DIR/lenient-lines.access.log) and the probe's table (OUT_DIR/lenient-lines.answers.md)
# are the references. usage: record.sh OUT_DIR   (run as root)
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
loopback_ns tslenient
. "$HERE/../lib/nginx-in-ns.sh"
nginx_in_ns "$RUN" 'server { listen 127.0.0.1:18001; location / { return 200 "ok\n"; } }'
ip netns exec tslenient node -e \
    "require('http').createServer((q,r)=>r.end('ok\n')).listen(18003,'127.0.0.1')" &
sleep 1
ip netns exec tslenient tcpdump -i lo -w "$OUT/lenient-lines.pcap" -U -s 0 \
    'tcp port 18001 or tcp port 18003' 2>"$RUN/tcpdump.stderr" &
TCPDUMP=$!
sleep 1
ip netns exec tslenient python3 "$HERE/probe.py" nginx=18001 node=18003 \
    > "$OUT/lenient-lines.answers.md"
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP || true
cp "$RUN/access.log" "$OUT/lenient-lines.access.log"
cat "$RUN/tcpdump.stderr" >&2
