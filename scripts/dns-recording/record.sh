#!/bin/bash
# Records OUT_DIR/dns-basic.pcap: dnsmasq, authoritative for `shop.test` on 127.0.0.1:53 inside a
# network namespace, queried by dig (UDP and TCP) and by Python's resolver (glibc getaddrinfo,
# nameserver from /etc/netns/NS/resolv.conf), plus queries to 127.0.0.1:5353 where a socket reads
# and never answers (timeouts). Captured by tcpdump on `lo`. dnsmasq's own record
# (`log-queries=extra`: serial, client address and port, query and answer) is
# OUT_DIR/dns-basic.dnsmasq.log.   usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tsdns
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/dnsmasq.pid" ] && kill "$(cat "$RUN/dnsmasq.pid")" 2>/dev/null
    [ -f "$RUN/sink.pid" ] && kill "$(cat "$RUN/sink.pid")" 2>/dev/null
    rm -rf "/etc/netns/$NS" "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.1" > "/etc/netns/$NS/resolv.conf"

ip netns exec $NS dnsmasq --conf-file=/dev/null --pid-file="$RUN/dnsmasq.pid" \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 --no-resolv --no-hosts \
    --user=root --log-queries=extra --log-facility="$RUN/dnsmasq.log" --local=/shop.test/ \
    --host-record=api.shop.test,10.77.0.12,fd00::12 --host-record=db.shop.test,10.77.0.13 \
    --cname=www.shop.test,api.shop.test --mx-host=shop.test,mail.shop.test,10 \
    --txt-record=shop.test,"v=spf1 -all" --host-record=mail.shop.test,10.77.0.25
# A UDP socket on 5353 that reads queries and never answers.
ip netns exec $NS python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 5353))
while True: s.recvfrom(4096)' &
echo $! > "$RUN/sink.pid"
sleep 0.5
ip netns exec $NS tcpdump -i lo -w "$OUT/dns-basic.pcap" -U -s 0 'port 53 or port 5353' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
d() { ip netns exec $NS dig +noall +comments @127.0.0.1 "$@" >/dev/null || true; }
d api.shop.test A
d api.shop.test AAAA
d db.shop.test AAAA                 # NOERROR, no answer (NODATA)
d www.shop.test A                   # CNAME then A
d shop.test MX
d shop.test TXT
d missing.shop.test A               # NXDOMAIN
d elsewhere.example A               # REFUSED: no upstream
d +tcp api.shop.test A
d +tcp missing.shop.test A
d +tcp shop.test MX
d -x 10.77.0.12                     # PTR
ip netns exec $NS python3 "$HERE/resolve.py"
d -p 5353 +tries=1 +timeout=1 api.shop.test A          # never answered
d -p 5353 +tries=1 +timeout=1 db.shop.test A           # never answered
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
grep -v 'started, version\|compile time options\|cleared cache\|LOUD WARNING\|read /etc\|warning: no upstream' \
    "$RUN/dnsmasq.log" > "$OUT/dns-basic.dnsmasq.log" || true
