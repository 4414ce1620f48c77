#!/bin/bash
# Records OUT_DIR/curl-tls.pcap: curl fetching two pages over HTTPS from `openssl s_server -www`
# (a throwaway self-signed key made here), captured by tcpdump on `lo` inside a network
# namespace. Nothing in it can be decoded without the keys: tapspan must say so.
# usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
NS=tstls
RUN=$(mktemp -d)
mkdir -p "$OUT"
on_exit() { rm -rf "$RUN"; }
. "$(dirname "$0")/../lib/loopback-ns.sh"
loopback_ns $NS
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/key.pem" -out "$RUN/cert.pem" \
    -days 1 -subj /CN=localhost 2>/dev/null
ip netns exec $NS openssl s_server -accept 8443 -www -cert "$RUN/cert.pem" \
    -key "$RUN/key.pem" >/dev/null 2>&1 &
sleep 0.5
ip netns exec $NS tcpdump -i lo -w "$OUT/curl-tls.pcap" -U -s 0 'tcp port 8443' \
    2>"$RUN/tcpdump.stderr" &
TCPDUMP=$!
sleep 1
for _ in 1 2; do ip netns exec $NS curl -sSk -o /dev/null https://127.0.0.1:8443/; done
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP || true
cat "$RUN/tcpdump.stderr" >&2
