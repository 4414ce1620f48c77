#!/bin/bash
# Records OUT_DIR/tls-handshakes.pcap: curl (and one `openssl s_client`) doing TLS handshakes with
# nginx on 127.0.0.1:8443 (a throwaway self-signed certificate for api.shop.test and
# static.shop.test), names given with `curl --resolve` so that SNI carries them: ALPN h2 and
# http/1.1, TLS 1.3 and 1.2, no SNI, and three failed handshakes (a client alert for an unknown CA,
# a server alert for no shared cipher, a server alert for an old protocol version). Captured by
# tcpdump on `lo` inside a network namespace. nginx's own record: its access log with
# `$ssl_server_name $ssl_protocol $ssl_cipher $ssl_alpn_protocol` (OUT_DIR/tls-handshakes.nginx.log)
# and its error log at `info`, which names each failed handshake
# (OUT_DIR/tls-handshakes.nginx-error.log). scripts/tls-recording/ records the older
# curl-tls.pcap (openssl s_server, no SNI); this kit adds names, ALPN and failures.
# usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tstlshs
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
. "$HERE/../lib/nginx-in-ns.sh"
loopback_ns $NS

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/key.pem" -out "$RUN/cert.pem" -days 1 \
    -subj /CN=api.shop.test -addext "subjectAltName=DNS:api.shop.test,DNS:static.shop.test" \
    2>/dev/null
nginx_in_ns "$RUN" "
    log_format tls '\$remote_addr:\$remote_port [\$time_iso8601] \"\$request\" \$status '
                   'sni=\$ssl_server_name proto=\$ssl_protocol cipher=\$ssl_cipher '
                   'alpn=\$ssl_alpn_protocol';
    server {
        listen 127.0.0.1:8443 ssl http2;
        server_name api.shop.test static.shop.test;
        ssl_certificate $RUN/cert.pem; ssl_certificate_key $RUN/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384;
        access_log $RUN/tls.log tls;
        error_log $RUN/tls-error.log info;
        location / { return 200 'ok\n'; }
    }"
sleep 0.3
ip netns exec $NS tcpdump -i lo -w "$OUT/tls-handshakes.pcap" -U -s 0 'tcp port 8443' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1
c() { ip netns exec $NS curl -sS -o /dev/null --resolve api.shop.test:8443:127.0.0.1 \
        --resolve static.shop.test:8443:127.0.0.1 "$@" || true; }
c -k --http2 https://api.shop.test:8443/h2-a                    # TLS 1.3, ALPN h2
c -k --http2 https://api.shop.test:8443/h2-b
c -k --http1.1 https://static.shop.test:8443/h1                 # ALPN http/1.1
c -k --http1.1 --tlsv1.2 --tls-max 1.2 https://api.shop.test:8443/tls12       # TLS 1.2
c -k --http2 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384 \
    https://static.shop.test:8443/tls12-aes256
c -k --http1.1 https://127.0.0.1:8443/no-sni                    # an IP: no SNI
c --http2 https://api.shop.test:8443/unknown-ca 2>/dev/null     # client alert: unknown CA
c -k --tlsv1.2 --tls-max 1.2 --ciphers AES128-SHA https://api.shop.test:8443/no-cipher 2>/dev/null
ip netns exec $NS openssl s_client -connect 127.0.0.1:8443 -servername api.shop.test \
    -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null >/dev/null 2>&1 || true   # protocol_version
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
cat "$RUN/tcpdump.stderr" >&2
cp "$RUN/tls.log" "$OUT/tls-handshakes.nginx.log"
grep -i 'handshake\|alert\|SSL' "$RUN/tls-error.log" | sed 's/^[^ ]* [^ ]* \[/[/' \
    > "$OUT/tls-handshakes.nginx-error.log" || true
