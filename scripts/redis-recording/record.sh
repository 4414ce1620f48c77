#!/bin/bash
# Records OUT_DIR/redis-basic.pcap: redis-py talking to redis-server on 127.0.0.1:6379 (plain
# commands, a pipeline, MULTI/EXEC, errors, pub/sub, a RESP3 connection), captured by tcpdump on
# `lo` inside a network namespace. The server's own record is `redis-cli MONITOR`, attached
# over a unix socket so that it is not in the capture: OUT_DIR/redis-basic.monitor.log.
# usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tsredis
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/monitor.pid" ] && kill "$(cat "$RUN/monitor.pid")" 2>/dev/null
    [ -f "$RUN/redis.pid" ] && kill "$(cat "$RUN/redis.pid")" 2>/dev/null
    sleep 0.3
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS

ip netns exec $NS redis-server --bind 127.0.0.1 --port 6379 --unixsocket "$RUN/redis.sock" \
    --save '' --appendonly no --daemonize yes --pidfile "$RUN/redis.pid" \
    --logfile "$RUN/redis.log" --dir "$RUN"
for _ in $(seq 50); do [ -S "$RUN/redis.sock" ] && break; sleep 0.1; done
redis-cli -s "$RUN/redis.sock" MONITOR > "$OUT/redis-basic.monitor.log" &
echo $! > "$RUN/monitor.pid"
ip netns exec $NS tcpdump -i lo -w "$OUT/redis-basic.pcap" -U -s 0 'tcp port 6379' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
ip netns exec $NS python3 "$HERE/client.py"
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
