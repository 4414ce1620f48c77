#!/bin/bash
# Records OUT_DIR/http2-grpc.pcap: a Python grpcio client calling a Python grpcio server on
# 127.0.0.1:50051 (cleartext HTTP/2 with prior knowledge), generic handlers over raw bytes:
# unary GetItem (OK, NOT_FOUND, INTERNAL), server-streaming ListItems (0 to 40 messages, and
# UNAVAILABLE after 3), unary Admin/Reset (PERMISSION_DENIED); two connections with many calls
# in flight. Captured by tcpdump on `lo` inside a network namespace. The server's own record
# (OUT_DIR/http2-grpc.server.log) has one line per call: time_ns peer method status messages.
# A copy cut mid-connection (OUT_DIR/http2-grpc-cut.pcap) is made by cut.sh.
# usage: grpc.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: grpc.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tsh2grpc
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/server.pid" ] && kill "$(cat "$RUN/server.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS

ip netns exec $NS python3 "$HERE/grpc_server.py" 50051 "$RUN/server.log" > "$RUN/server.out" 2>&1 &
echo $! > "$RUN/server.pid"
for _ in $(seq 50); do grep -q ready "$RUN/server.out" 2>/dev/null && break; sleep 0.1; done
ip netns exec $NS tcpdump -i lo -w "$OUT/http2-grpc.pcap" -U -s 0 'tcp port 50051' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
ip netns exec $NS python3 "$HERE/grpc_client.py" 50051
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
cp "$RUN/server.log" "$OUT/http2-grpc.server.log"
