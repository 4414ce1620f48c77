#!/bin/bash
# Records out/workers-c16.pcap: a gunicorn front (6 sync worker processes, each with its OWN
# keep-alive http.client connection per backend), two python backends (users, stock) and 16
# closed-loop curl clients, each party in its own network namespace, joined by a Linux bridge
# that lives in a fifth namespace (wkbr), where tcpdump captures on the bridge device.
# Nothing is added to the root namespace.
# usage: record.sh [N_REQUESTS [CLIENTS]]      (run as root; defaults 600 16)
set -u
NREQ=${1:-600}
CLIENTS=${2:-16}
NAME=workers-c$CLIENTS

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
GUNICORN=/usr/bin/gunicorn
RUN=$HERE/run-$NAME          # service logs, stderr, tcpdump stderr, client log
OUT=$HERE/out
PCAP=$OUT/$NAME.pcap
BR=br-wk
BRNS=wkbr
# namespace:ip:role:port
FRONT=wkfront:10.77.0.10:front:8000
BACKS="wkusers:10.77.0.11:users:8001 wkstock:10.77.0.12:stock:8002"
CLI=wkcli:10.77.0.20
URL=http://10.77.0.10:8000

SVC_PIDS=""
TCPDUMP_PID=""

cleanup() {
    set +e
    if [ -n "$TCPDUMP_PID" ] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID"
    fi
    for p in $SVC_PIDS; do kill "$p" 2>/dev/null; done
    for p in $SVC_PIDS; do wait "$p" 2>/dev/null; done
    for ns in $BRNS wkfront wkusers wkstock wkcli; do
        if ip netns list | grep -qw "^$ns"; then
            # anything still running in a namespace this script made was started by it
            for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null; done
            sleep 0.2
            ip netns del "$ns"
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set -e
mkdir -p "$RUN" "$OUT"
rm -f "$RUN"/*.log "$RUN"/*.stderr "$RUN"/curl.config "$PCAP"

# ---------------------------------------------------------------- network
ip netns add $BRNS
ip -n $BRNS link set lo up
ip -n $BRNS link add $BR type bridge stp_state 0
ip -n $BRNS link set $BR address 02:77:00:00:00:01
ip netns exec $BRNS sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec $BRNS sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip -n $BRNS link set $BR up
for spec in $FRONT $BACKS $CLI; do
    ns=${spec%%:*}; rest=${spec#*:}; ip4=${rest%%:*}
    last=${ip4##*.}
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip link add "v-$ns" netns $BRNS type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address "$(printf '02:77:00:00:00:%02x' "$last")"
    # no segmentation/receive offload, no checksum offload: the bridge sees <=1514-byte
    # frames with final checksums, as on a real Ethernet
    ip netns exec "$ns"   ethtool -K eth0     tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip netns exec $BRNS   ethtool -K "v-$ns"  tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "$ns" addr add "$ip4/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n $BRNS link set "v-$ns" master $BR
    ip -n $BRNS link set "v-$ns" up
done

# ---------------------------------------------------------------- services
for spec in $BACKS; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    WORKERS_LOGDIR=$RUN ip netns exec "$ns" $PY "$HERE/services/backend.py" "$role" "$ip4" "$port" \
        2>"$RUN/$role.stderr" &
    SVC_PIDS="$SVC_PIDS $!"
done
IFS=: read -r ns ip4 role port <<<"$FRONT"
# gunicorn master + 6 sync workers; the workers import services/front.py themselves (no --preload)
WORKERS_LOGDIR=$RUN ip netns exec "$ns" $GUNICORN --workers 6 --worker-class sync \
    --bind "$ip4:$port" --chdir "$HERE/services" --timeout 30 --graceful-timeout 5 \
    --log-level info --error-logfile "$RUN/front.stderr" front:app &
SVC_PIDS="$SVC_PIDS $!"
for spec in $BACKS $FRONT; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    ok=
    for i in $(seq 1 100); do
        if ip netns exec wkcli curl -s -o /dev/null --max-time 1 "http://$ip4:$port/health"; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "$role did not come up" >&2; exit 1; }
done
# all 6 workers booted?
for i in $(seq 1 100); do
    [ "$(grep -c 'Booting worker' "$RUN/front.stderr")" -ge 6 ] && break
    sleep 0.1
done
sleep 1
# readiness probes are not part of the recording: the backends' /health lines go to
# $RUN/precapture.log and the logs are emptied (the front does not log /health)
for role in users stock; do
    sed "s/^/$role /" "$RUN/$role.log" >> "$RUN/precapture.log"
    : > "$RUN/$role.log"
done
[ ! -s "$RUN/front.log" ] && [ ! -s "$RUN/front-calls.log" ] || { echo "front logged before the capture" >&2; exit 1; }

# ---------------------------------------------------------------- capture
ip netns exec $BRNS tcpdump -i $BR -s 0 -U -w "$PCAP" 'tcp and net 10.77.0.0/24' 2>"$RUN/tcpdump.stderr" &
TCPDUMP_PID=$!
for i in $(seq 1 50); do grep -q 'listening on' "$RUN/tcpdump.stderr" 2>/dev/null && break; sleep 0.1; done
sleep 0.5

# ---------------------------------------------------------------- workload (client namespace)
# n = 1..NREQ: GET /order/n with header X-Client-Req: n.  ONE curl process runs all NREQ
# transfers with --parallel --parallel-max CLIENTS --parallel-immediate: CLIENTS transfers are in
# flight at all times (CLIENTS closed-loop clients: a new transfer, the next n, starts as soon
# as one ends); the front answers "Connection: close", so every request has its own TCP
# connection.  Per-transfer options come from a curl config file, one block per n.
for n in $(seq 1 "$NREQ"); do
    printf 'url = "%s/order/%d"\nheader = "X-Client-Req: %d"\noutput = "/dev/null"\n' "$URL" "$n" "$n"
    printf 'write-out = "%d %%{http_code} %%{size_download} %%{time_total} %%{local_ip}:%%{local_port} /order/%d\\n"\n' "$n" "$n"
    [ "$n" -lt "$NREQ" ] && printf 'next\n'
done > "$RUN/curl.config"
ip netns exec wkcli curl -s --parallel --parallel-max "$CLIENTS" --parallel-immediate \
    --config "$RUN/curl.config" >>"$RUN/client.log" 2>"$RUN/curl.stderr"
sleep 1

kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
cat "$RUN/tcpdump.stderr"

for p in $SVC_PIDS; do kill "$p"; done
for p in $SVC_PIDS; do wait "$p" 2>/dev/null || true; done
SVC_PIDS=""

# truth logs, each in its own write order; the client log sorted by n
for f in front front-calls users stock; do cp "$RUN/$f.log" "$OUT/$NAME.$f.log"; done
sort -n "$RUN/client.log" > "$OUT/$NAME.client.log"
for role in users stock; do
    if [ -s "$RUN/$role.stderr" ]; then echo "== $role stderr"; cat "$RUN/$role.stderr"; fi
done
echo "== front stderr (gunicorn)"; cat "$RUN/front.stderr"
echo "done: $PCAP"
