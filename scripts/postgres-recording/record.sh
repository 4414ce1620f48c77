#!/bin/bash
# Records OUT_DIR/postgres-basic.pcap: psycopg talking to a throwaway PostgreSQL cluster
# (initdb in a temporary directory, ssl off, listening on 127.0.0.1:5432 inside a network
# namespace), captured by tcpdump on `lo`. The server's own record, `log_statement=all` with the
# client's port and the time on each line, is OUT_DIR/postgres-basic.server.log.
# usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tspg
RUN=$(mktemp -d)
chmod 755 "$RUN"; chown postgres "$RUN"
mkdir -p "$OUT"
BIN=/usr/lib/postgresql/15/bin

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    ip netns exec $NS runuser -u postgres -- "$BIN/pg_ctl" -D "$RUN/data" -m fast stop \
        >/dev/null 2>&1
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS

runuser -u postgres -- "$BIN/initdb" -D "$RUN/data" -A trust -U postgres >/dev/null
cat >> "$RUN/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = '$RUN'
ssl = off
log_destination = 'stderr'
logging_collector = off
log_statement = 'all'
log_min_error_statement = error
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] port=%r db=%d user=%u sqlstate=%e '
CONF
ip netns exec $NS runuser -u postgres -- "$BIN/pg_ctl" -D "$RUN/data" -l "$RUN/server.log" \
    -w start >/dev/null
runuser -u postgres -- "$BIN/psql" -h "$RUN" -q -c 'CREATE DATABASE shop' >/dev/null
: > "$RUN/server.log.mark"; MARK=$(wc -l < "$RUN/server.log")

ip netns exec $NS tcpdump -i lo -w "$OUT/postgres-basic.pcap" -U -s 0 'tcp port 5432' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
ip netns exec $NS python3 "$HERE/client.py"
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
# Only the lines of the recorded session (not initdb's or CREATE DATABASE's).
tail -n +"$((MARK + 1))" "$RUN/server.log" > "$OUT/postgres-basic.server.log"
