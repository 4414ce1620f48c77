#!/bin/bash
# Records OUT_DIR/http09.pcap: HTTP/0.9 simple requests (`GET /a` and no version, probe.py),
# each on its own connection, to nginx and to Python's http.server, which answer with the bare
# body and close; and for contrast one HTTP/1.0 request to each. References: nginx's access log
# (OUT_DIR/http09.nginx.access.log), http.server's log (OUT_DIR/http09.python.access.log) and
# the probe's table of what came back (OUT_DIR/http09.answers.md).
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
loopback_ns tshttp09
mkdir -p "$RUN/www"
printf 'hello a\n' > "$RUN/www/a"
python3 -c "
import random
random.seed(9)
w = 'alpha beta gamma delta epsilon zeta eta theta iota kappa'.split()
open('$RUN/www/text.txt', 'w').write(''.join(' '.join(random.choice(w) for _ in range(8)) + '\n' for _ in range(60)))
"
chmod -R a+rX "$RUN/www"
. "$HERE/../lib/nginx-in-ns.sh"
nginx_in_ns "$RUN" "log_format h09 '\$remote_addr:\$remote_port \"\$request\" \$status \$body_bytes_sent \$bytes_sent \$server_protocol';
    server { listen 127.0.0.1:18091; root $RUN/www; access_log $RUN/nginx.access.log h09; }"
ip netns exec tshttp09 /usr/bin/python3 -m http.server 18092 --bind 127.0.0.1 --directory "$RUN/www" \
    2>"$RUN/python.access.log" &
sleep 1
ip netns exec tshttp09 tcpdump -i lo -w "$OUT/http09.pcap" -U -s 0 \
    'tcp port 18091 or tcp port 18092' 2>"$RUN/tcpdump.stderr" &
TCPDUMP=$!
sleep 1
ip netns exec tshttp09 python3 "$HERE/probe.py" nginx=18091 python=18092 > "$OUT/http09.answers.md"
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP || true
cp "$RUN/nginx.access.log" "$OUT/http09.nginx.access.log"
cp "$RUN/python.access.log" "$OUT/http09.python.access.log"
ls -l "$RUN/www" > "$OUT/http09.files.txt"
cat "$RUN/tcpdump.stderr" >&2
