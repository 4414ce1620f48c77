#!/bin/bash
# Records OUT_DIR/multitier.pcap: an HTTP service (service.py) that calls Redis and PostgreSQL
# for each request, loaded by 4 concurrent keep-alive clients (client.py), all on `lo` inside a
# network namespace, captured by tcpdump (HTTP, Redis and PostgreSQL ports) from before the
# service opens its connections. The service's own log (OUT_DIR/multitier.service.log: one line
# per request and per downstream call, with the request's id and the call's local port) is
# the truth for which request each Redis or PostgreSQL call belongs to.
# With MODE `findings` it records OUT_DIR/dbfindings.pcap instead: findings_service.py, whose
# handlers make an N+1, repeat a Redis GET and make neither, loaded by findings_client.py; its
# log is OUT_DIR/dbfindings.service.log.
# usage: record.sh OUT_DIR [multitier|findings]   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR [multitier|findings]}")
HERE=$(cd "$(dirname "$0")" && pwd)
case "${2:-multitier}" in
    multitier) NAME=multitier SERVICE=service.py CLIENT=client.py DB_ADDRS=(127.0.0.1 127.0.0.1) ;;
    # Redis and PostgreSQL on addresses of their own, as on hosts of their own.
    findings) NAME=dbfindings SERVICE=findings_service.py CLIENT=findings_client.py
        DB_ADDRS=(127.0.0.2 127.0.0.3) ;;
    *) echo "record.sh: unknown mode ${2}" >&2; exit 2 ;;
esac
NS=tsmulti
RUN=$(mktemp -d)
chmod 755 "$RUN"; chown postgres "$RUN"
mkdir -p "$OUT"
BIN=/usr/lib/postgresql/15/bin

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/service.pid" ] && kill "$(cat "$RUN/service.pid")" 2>/dev/null
    [ -f "$RUN/redis.pid" ] && kill "$(cat "$RUN/redis.pid")" 2>/dev/null
    ip netns exec $NS runuser -u postgres -- "$BIN/pg_ctl" -D "$RUN/data" -m fast stop \
        >/dev/null 2>&1
    sleep 0.3
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS

ip netns exec $NS redis-server --bind ${DB_ADDRS[0]} --port 6379 --save '' --appendonly no \
    --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log" --dir "$RUN"
runuser -u postgres -- "$BIN/initdb" -D "$RUN/data" -A trust -U postgres >/dev/null
cat >> "$RUN/data/postgresql.conf" <<CONF
listen_addresses = '${DB_ADDRS[1]}'
unix_socket_directories = '$RUN'
ssl = off
CONF
ip netns exec $NS runuser -u postgres -- "$BIN/pg_ctl" -D "$RUN/data" -l "$RUN/server.log" \
    -w start >/dev/null
runuser -u postgres -- "$BIN/psql" -h "$RUN" -q -c 'CREATE DATABASE shop' >/dev/null
if [ "$NAME" = multitier ]; then
    runuser -u postgres -- "$BIN/psql" -h "$RUN" -d shop -q -c \
        "CREATE TABLE users (id int PRIMARY KEY, name text, visits int DEFAULT 0);
         INSERT INTO users (id, name) SELECT i, 'name-' || i FROM generate_series(1, 25) i;" \
        >/dev/null
else
    python3 "$HERE/$SERVICE" --setup > "$RUN/setup.txt"
    sed '/^--redis$/,$d' "$RUN/setup.txt" \
        | runuser -u postgres -- "$BIN/psql" -h "$RUN" -d shop -q >/dev/null
    sed '1,/^--redis$/d' "$RUN/setup.txt" | ip netns exec $NS redis-cli -h "${DB_ADDRS[0]}" >/dev/null
fi

ip netns exec $NS tcpdump -i lo -w "$OUT/$NAME.pcap" -U -s 0 \
    'tcp port 8000 or tcp port 6379 or tcp port 5432' 2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
: > "$OUT/$NAME.service.log"
ip netns exec $NS python3 "$HERE/$SERVICE" "$OUT/$NAME.service.log" &
echo $! > "$RUN/service.pid"
for _ in $(seq 50); do
    ip netns exec $NS python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8000))' \
        2>/dev/null && break
    sleep 0.1
done
ip netns exec $NS python3 "$HERE/$CLIENT"
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
