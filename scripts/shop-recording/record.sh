#!/bin/bash
# Records out/shop-MODE.pcap: five python services + a curl client, each in its own network
# namespace, joined by a Linux bridge that lives in a sixth namespace (shopbr), where tcpdump
# captures on the bridge device.  Nothing is added to the root namespace.
# usage: record.sh dirty|clean     (run as root)
set -u
MODE=${1:?usage: record.sh dirty|clean}
case $MODE in dirty|clean) ;; *) echo "bad mode $MODE" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
RUN=$HERE/run-$MODE          # service logs, tcpdump stderr, client log
OUT=$HERE/out
PCAP=$OUT/shop-$MODE.pcap
BR=br-shop
BRNS=shopbr
# namespace  ip          role       port
SVCS="shopgw:10.88.0.10:gateway:8080 shopusers:10.88.0.11:users:8081 shopitems:10.88.0.12:items:8082 shoppricing:10.88.0.13:pricing:8083 shopinv:10.88.0.14:inventory:8084"
CLI=shopcli:10.88.0.20
GW=http://10.88.0.10:8080

SVC_PIDS=""
TCPDUMP_PID=""

cleanup() {
    set +e
    if [ -n "$TCPDUMP_PID" ] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID"
    fi
    for p in $SVC_PIDS; do kill "$p" 2>/dev/null; done
    for p in $SVC_PIDS; do wait "$p" 2>/dev/null; done
    for ns in $BRNS shopgw shopusers shopitems shoppricing shopinv shopcli; do
        if ip netns list | grep -qw "^$ns"; then
            # anything still running in a namespace this script made was started by it
            for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null; done
            ip netns del "$ns"
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set -e
mkdir -p "$RUN" "$OUT"
rm -f "$RUN"/*.access.log "$RUN"/tcpdump.stderr "$RUN"/client.log "$RUN"/precapture.log "$PCAP"

# ---------------------------------------------------------------- network
ip netns add $BRNS
ip -n $BRNS link set lo up
ip -n $BRNS link add $BR type bridge stp_state 0
ip -n $BRNS link set $BR address 02:88:00:00:00:01
ip netns exec $BRNS sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec $BRNS sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip -n $BRNS link set $BR up
for spec in $SVCS $CLI; do
    ns=${spec%%:*}; rest=${spec#*:}; ip4=${rest%%:*}
    last=${ip4##*.}
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip link add "v-$ns" netns $BRNS type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address "$(printf '02:88:00:00:00:%02x' "$last")"
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
for spec in $SVCS; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    # the gateway runs SCHED_FIFO (chrt -f 10) so that its threads get a CPU at once on a busy host
    prio=""; [ "$role" = gateway ] && prio="chrt -f 10"
    SHOP_LOGDIR=$RUN ip netns exec "$ns" $prio $PY "$HERE/services/shop.py" "$role" "$port" "$MODE" \
        2>"$RUN/$role.stderr" &
    SVC_PIDS="$SVC_PIDS $!"
done
for spec in $SVCS; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    ok=
    for i in $(seq 1 100); do
        if ip netns exec shopcli curl -s -o /dev/null --max-time 1 "http://$ip4:$port/health"; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "$role did not come up" >&2; exit 1; }
done
sleep 0.5
# readiness probes (and, in clean mode, the gateway's startup /config fetch) are not part of
# the recording: kept in $RUN/precapture.log, then the access logs are emptied
for spec in $SVCS; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    sed "s/^/$role /" "$RUN/$role.access.log" >> "$RUN/precapture.log"
    : > "$RUN/$role.access.log"
done

# ---------------------------------------------------------------- capture
ip netns exec $BRNS tcpdump -i $BR -s 0 -U -w "$PCAP" 'tcp and net 10.88.0.0/24' 2>"$RUN/tcpdump.stderr" &
TCPDUMP_PID=$!
for i in $(seq 1 50); do grep -q 'listening on' "$RUN/tcpdump.stderr" 2>/dev/null && break; sleep 0.1; done
sleep 0.5

# ---------------------------------------------------------------- workload (client namespace)
# request number n -> X-Request-ID shop-MODE-%04d
#   n  1..30 : GET /checkout/(9000+n)            (checkout k = n, sequential)
#   n 31..36 : GET /product/(470+n) = 501..506   (sequential)
#   n 37..40 : not used
#   n 41..60 : GET /checkout/(8990+n) = 9031..9050 (checkout k = n-10), 4 parallel curls x 5
req() {  # n path
    local rid; rid=$(printf 'shop-%s-%04d' "$MODE" "$1")
    ip netns exec shopcli curl -s -o /dev/null -H "X-Request-ID: $rid" \
        -w "$rid %{http_code} %{size_download} %{time_total} $2\n" "$GW$2" >>"$RUN/client.log"
}
for n in $(seq 1 30); do req "$n" "/checkout/$((9000 + n))"; done
for n in $(seq 31 36); do req "$n" "/product/$((470 + n))"; done
WPIDS=""
for w in 0 1 2 3; do
    ( for i in 0 1 2 3 4; do n=$((41 + w * 5 + i)); req "$n" "/checkout/$((8990 + n))"; done ) &
    WPIDS="$WPIDS $!"
done
wait $WPIDS
sleep 1

kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
cat "$RUN/tcpdump.stderr"

for p in $SVC_PIDS; do kill "$p"; done
for p in $SVC_PIDS; do wait "$p" 2>/dev/null || true; done
SVC_PIDS=""

: > "$OUT/shop-$MODE.access.log"
for role in gateway users items pricing inventory; do
    sed "s/^/$role /" "$RUN/$role.access.log" >> "$OUT/shop-$MODE.access.log"
done
sort "$RUN/client.log" > "$OUT/shop-$MODE.client.log"
for role in gateway users items pricing inventory; do
    if [ -s "$RUN/$role.stderr" ]; then echo "== $role stderr"; cat "$RUN/$role.stderr"; fi
done
echo "done: $PCAP"
