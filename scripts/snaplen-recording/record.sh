#!/bin/bash
# Records OUT_DIR/nginx-snaplen.pcap with a short snap length (tcpdump -s 200: 134 bytes of TCP
# payload after the Ethernet, IP and TCP headers with timestamps), so that every response body
# longer than that is cut by the capture, while curl fetches files on two keep-alive connections
# from nginx. nginx's access log (OUT_DIR/nginx-snaplen.access.log: connection, request number,
# request, status, $body_bytes_sent) is the reference. nginx runs with `server_tokens off`
# (`Server: nginx`): its response heads (about 230 bytes) are still cut, after Content-Length.
# usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=$(mktemp -d)
chmod 755 "$RUN"
mkdir -p "$OUT"
on_exit() {
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns tssnap
mkdir -p "$RUN/www"
python3 -c "
import random
random.seed(18)
for name, n in [('s0', 0), ('s50', 50), ('s134', 134), ('s900', 900), ('s5000', 5000),
                ('s70000', 70000)]:
    open('$RUN/www/' + name, 'wb').write(bytes(random.getrandbits(8) for _ in range(n)))
"
chmod -R a+rX "$RUN/www"
. "$HERE/../lib/nginx-in-ns.sh"
nginx_in_ns "$RUN" "log_format snap '\$remote_addr:\$remote_port \$connection \$connection_requests \"\$request\" \$status \$body_bytes_sent \$bytes_sent';
    server_tokens off;
    server { listen 127.0.0.1:18095; root $RUN/www; access_log $RUN/snap.access.log snap;
             location = /echo { client_body_in_single_buffer on; return 201 \"got it\\n\"; } }"
sleep 1
ip netns exec tssnap tcpdump -i lo -w "$OUT/nginx-snaplen.pcap" -U -s 200 'tcp port 18095' \
    2>"$RUN/tcpdump.stderr" &
TCPDUMP=$!
sleep 1
U=http://127.0.0.1:18095
# One keep-alive connection: bodies shorter than, equal to and longer than what the snap length
# leaves, a 404, a POST whose body is cut, a HEAD, and the largest file last but one.
ip netns exec tssnap curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
    -o /dev/null -o /dev/null -o /dev/null \
    $U/s50 $U/s0 $U/s134 $U/s900 $U/nope $U/s5000 $U/s70000 $U/s900
ip netns exec tssnap curl -s -o /dev/null --data-binary @"$RUN/www/s900" $U/echo \
    --next -s -o /dev/null -I $U/s5000 --next -s -o /dev/null $U/s50
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP || true
cp "$RUN/snap.access.log" "$OUT/nginx-snaplen.access.log"
cat "$RUN/tcpdump.stderr" >&2
