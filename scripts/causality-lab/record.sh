#!/bin/bash
# Records one cell of the causality lab: pcaps/lab/MODEL-cCLIENTS.{pcap,truth.tsv,services.toml}
# usage: record.sh MODEL CLIENTS [REQUESTS]     MODEL = threads | workers | eventloop   (run as root)
# Six network namespaces (client + 5 services) on a Linux bridge that lives in a seventh
# namespace (clbr); tcpdump captures on the bridge. Nothing is added to the root namespace.
# All namespaces are deleted on exit.
set -u
MODEL=$1
CLIENTS=$2
NREQ=${3:-}
if [ -z "$NREQ" ]; then
    if [ "$CLIENTS" -le 4 ]; then NREQ=200; else NREQ=350; fi
fi
NAME=$MODEL-c$CLIENTS
case $MODEL in threads|workers|eventloop) ;; *) echo "bad model $MODEL" >&2; exit 2;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
GUNICORN=/usr/bin/gunicorn
NODE=/usr/bin/node
RUN=$HERE/runs/$NAME           # raw service logs, stderr, tcpdump stderr, client log
OUT=$ROOT/pcaps/lab
PCAP=$OUT/$NAME.pcap
BR=br-cl
BRNS=clbr
# namespace:ip:role:port
SVCS="clfront:10.78.0.10:front:8000 clusers:10.78.0.11:users:8001 clorders:10.78.0.12:orders:8002 clstock:10.78.0.13:stock:8003 clpricing:10.78.0.14:pricing:8004"
CLI=clcli:10.78.0.20
ALLNS="clfront clusers clorders clstock clpricing clcli"
URL=http://10.78.0.10:8000

SVC_PIDS=""
TCPDUMP_PID=""

# The Python services want urllib3 2.x (Debian 12 ships 1.26): installed from PyPI beside them,
# never committed (.gitignore).
if [ ! -d "$HERE/services/_vendor/urllib3" ]; then
    pip install --no-deps --target "$HERE/services/_vendor" urllib3==2.7.0 >/dev/null || exit 1
fi

cleanup() {
    set +e
    if [ -n "$TCPDUMP_PID" ] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID"
    fi
    for p in $SVC_PIDS; do kill "$p" 2>/dev/null; done
    for p in $SVC_PIDS; do wait "$p" 2>/dev/null; done
    for ns in $BRNS $ALLNS; do
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

for ns in $BRNS $ALLNS; do
    if ip netns list | grep -qw "^$ns"; then echo "namespace $ns exists (another recording running?)" >&2; trap - EXIT; exit 1; fi
done

set -e
mkdir -p "$RUN" "$OUT"
rm -f "$RUN"/* "$PCAP"

# ---------------------------------------------------------------- network
ip netns add $BRNS
ip -n $BRNS link set lo up
ip -n $BRNS link add $BR type bridge stp_state 0
ip -n $BRNS link set $BR address 02:78:00:00:00:01
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
    ip -n "$ns" link set eth0 address "$(printf '02:78:00:00:00:%02x' "$last")"
    # no segmentation/receive offload, no checksum offload: <=1514-byte frames on the bridge
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
    case $MODEL in
    threads)
        LAB_LOGDIR=$RUN LAB_POOL_MAXSIZE=16 ip netns exec "$ns" $PY "$HERE/services/pyserver.py" "$role" "$ip4" "$port" \
            2>"$RUN/$role.stderr" &
        ;;
    workers)
        if [ "$role" = front ] || [ "$role" = orders ]; then
            # gunicorn master + 6 sync workers; each worker imports wsgi.py/shop.py itself (no --preload)
            LAB_LOGDIR=$RUN LAB_ROLE=$role LAB_SELF=$ip4:$port LAB_POOL_MAXSIZE=1 \
                ip netns exec "$ns" $GUNICORN --workers 6 --worker-class sync --bind "$ip4:$port" \
                --chdir "$HERE/services" --timeout 30 --graceful-timeout 5 --backlog 256 \
                --log-level info --error-logfile "$RUN/$role.stderr" wsgi:app &
        else
            LAB_LOGDIR=$RUN LAB_POOL_MAXSIZE=16 ip netns exec "$ns" $PY "$HERE/services/pyserver.py" "$role" "$ip4" "$port" \
                2>"$RUN/$role.stderr" &
        fi
        ;;
    eventloop)
        LAB_LOGDIR=$RUN ip netns exec "$ns" $NODE "$HERE/services/shop.js" "$role" "$ip4" "$port" \
            2>"$RUN/$role.stderr" &
        ;;
    esac
    SVC_PIDS="$SVC_PIDS $!"
done
for spec in $SVCS; do
    IFS=: read -r ns ip4 role port <<<"$spec"
    ok=
    for i in $(seq 1 100); do
        if ip netns exec clcli curl -s -o /dev/null --max-time 1 "http://$ip4:$port/health"; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "$role did not come up" >&2; exit 1; }
done
if [ "$MODEL" = workers ]; then
    for role in front orders; do
        for i in $(seq 1 100); do
            [ "$(grep -c 'Booting worker' "$RUN/$role.stderr")" -ge 6 ] && break
            sleep 0.1
        done
    done
fi
sleep 1.5
for f in "$RUN"/*.access "$RUN"/*.calls; do
    [ -e "$f" ] && { echo "$f written before the capture" >&2; exit 1; }
done

# ---------------------------------------------------------------- capture
# --immediate-mode: every packet reaches the file before tcpdump stops (without it, packets in
# the last, unretired ring block are counted as received but never written; Node's keep-alive
# agent sends TCP keepalive probes on idle connections, so there is always such a tail);
# -B: a 64 MiB ring, so that waking per packet does not drop packets under load on 2 cores
ip netns exec $BRNS tcpdump -i $BR -s 0 -U --immediate-mode -B 65536 -w "$PCAP" 'tcp and net 10.78.0.0/24' 2>"$RUN/tcpdump.stderr" &
TCPDUMP_PID=$!
for i in $(seq 1 50); do grep -q 'listening on' "$RUN/tcpdump.stderr" 2>/dev/null && break; sleep 0.1; done
sleep 0.5

# ---------------------------------------------------------------- workload (client namespace)
# ONE curl process, NREQ transfers, --parallel --parallel-max CLIENTS --parallel-immediate:
# CLIENTS closed-loop clients (keep-alive connections reused where the front allows it).
# n = 1..NREQ: GET /checkout/{order_id}?user={uid}, header X-Client-Req: n (never forwarded);
# order_id unique (5-6 digits), uid from 0..199.
$PY - "$NREQ" "$URL" > "$RUN/curl.config" <<'PYEOF'
import random, sys
n, url = int(sys.argv[1]), sys.argv[2]
oids = random.sample(range(10000, 1000000), n)
for i in range(1, n + 1):
    path = "/checkout/%d?user=%d" % (oids[i - 1], random.randrange(200))
    print('url = "%s%s"' % (url, path))
    print('header = "X-Client-Req: %d"' % i)
    print('output = "/dev/null"')
    print('write-out = "%d\\t%%{http_code}\\t%%{time_total}\\t%%{local_ip}:%%{local_port}\\t%s\\n"' % (i, path))
    if i < n:
        print("next")
PYEOF
ip netns exec clcli curl -s --parallel --parallel-max "$CLIENTS" --parallel-immediate \
    --config "$RUN/curl.config" >"$RUN/client.log" 2>"$RUN/curl.stderr" || echo "curl exit $?" >&2
sleep 2.5

kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
cat "$RUN/tcpdump.stderr"

for p in $SVC_PIDS; do kill "$p"; done
for p in $SVC_PIDS; do wait "$p" 2>/dev/null || true; done
SVC_PIDS=""

# ---------------------------------------------------------------- outputs
$PY "$HERE/normalise.py" "$RUN" "$OUT/$NAME.truth.tsv"
{
    echo "[services]"
    for spec in $SVCS; do
        IFS=: read -r ns ip4 role port <<<"$spec"
        echo "\"$ip4:$port\" = \"$role\""
    done
} > "$OUT/$NAME.services.toml"
for f in "$RUN"/*.stderr; do
    case $f in *tcpdump.stderr|*curl.stderr) continue;; esac
    if grep -qv -e 'Booting worker' -e 'Starting gunicorn' -e 'Listening at' -e 'Using worker' -e 'Handling signal' -e 'Worker exiting' -e 'Shutting down' "$f" 2>/dev/null; then
        echo "== $f"; grep -v -e 'Booting worker' -e 'Starting gunicorn' -e 'Listening at' -e 'Using worker' "$f" | head -20
    fi
done
echo "done: $PCAP ($(stat -c %s "$PCAP") bytes)"
