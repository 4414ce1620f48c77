#!/bin/bash
# Records pcaps/nginx-secrets.pcap: nginx and curl exchanging every kind of secret a tap must
# keep out of its outputs, each a distinct, greppable value (listed in secrets.txt beside the
# capture's notes). nginx's access log, kept as nginx-secrets.access.log, is the independent
# record that the secrets were on the wire. Captured with tcpdump on `lo` inside a network
# namespace (MTU 1500, offloads off, like an Ethernet capture); nothing touches the root
# namespace. usage: record.sh OUT_DIR   (run as root)
set -euo pipefail
OUT=$(realpath "${1:?usage: record.sh OUT_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
NS=tssecrets
RUN=$(mktemp -d)
mkdir -p "$OUT"

on_exit() {
    [ -f "$RUN/tcpdump.pid" ] && kill -INT "$(cat "$RUN/tcpdump.pid")" 2>/dev/null && sleep 0.5
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null
    rm -rf "$RUN"
}
. "$HERE/../lib/loopback-ns.sh"
loopback_ns $NS

# JWTs are built here (RFC 7519: base64url header.payload.signature), not copied from anywhere.
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT_PATH="$(b64url '{"alg":"HS256","typ":"JWT"}').$(b64url '{"sub":"reset-06","exp":1893456000}').c2lnbmF0dXJlMDZzaWduYXR1cmUwNg"
JWT_HEADER="$(b64url '{"alg":"HS256","typ":"JWT"}').$(b64url '{"sub":"debug-17","scope":"all"}').c2lnbmF0dXJlMTdzaWduYXR1cmUxNw"
OPAQUE="Zk9xR2tQd0x5TmJ2Y0hzV3RxYWpFbUlkU3Vm16"

sed -e "s|@RUN@|$RUN|g" "$HERE/nginx.conf" > "$RUN/nginx.conf"
ip netns exec $NS /usr/sbin/nginx -c "$RUN/nginx.conf"
sleep 0.3

ip netns exec $NS tcpdump -i lo -w "$OUT/nginx-secrets.pcap" -U -s 0 'tcp port 8080' \
    2>"$RUN/tcpdump.stderr" &
echo $! > "$RUN/tcpdump.pid"
sleep 1

U=http://127.0.0.1:8080
c() { ip netns exec $NS curl -sS -o /dev/null "$@"; }
# One request per kind; each value is named in secrets.txt.
c "$U/search?%74oken=pctname01&q=shoes"                               # percent-encoded name
c "$U/login?user=bob&pass=passw0rd02"                                  # `pass`
c "$U/oauth/callback?code=oauthcode03&state=st-03"                     # OAuth `code`
c "$U/index.php?PHPSESSID=phpsess04"                                   # PHP session
c "$U/cart;jsessionid=jsess05/items"                                   # `;` path parameter
c "$U/reset/$JWT_PATH"                                                 # JWT path segment
c -H "X-Vault-Token: vaulttok07" -H "X-Access-Token: accesstok08" "$U/vault"
c -e "https://bob:refpw09@shop.example/p?session_id=refsess10" "$U/from-referer"
c --request-target "http://carol:targetpw11@127.0.0.1:8080/proxy?q=1" "$U/"   # userinfo
c "$U/login-redirect"                                                  # Location: code, #token
c "$U/session"                                                         # Set-Cookie
c "$U/cas?ticket=ST-ticket15-cas"                                      # CAS ticket
c "$U/download/$OPAQUE"                                                # opaque token segment
c -H "X-Debug: Bearer $JWT_HEADER" "$U/debug"                          # bearer in a custom header
c "$U/verify?otp=otp19code&next=/home"                                 # one-time password
c "$U/static/app.js"                                                 # Location: userinfo, sig
c -u "alice:basicpw18" -b "sess=cookie20" "$U/account"                 # Basic auth, Cookie
sleep 1
kill -INT "$(cat "$RUN/tcpdump.pid")"; wait "$(cat "$RUN/tcpdump.pid")" 2>/dev/null || true
rm -f "$RUN/tcpdump.pid"
kill "$(cat "$RUN/nginx.pid")"; sleep 0.3
cp "$RUN/access.log" "$OUT/nginx-secrets.access.log"
{
    echo pctname01; echo passw0rd02; echo oauthcode03; echo phpsess04; echo jsess05
    echo "$JWT_PATH"; echo vaulttok07; echo accesstok08; echo refpw09; echo refsess10
    echo targetpw11; echo loccode12; echo locfrag13; echo setcookie14; echo ST-ticket15-cas
    echo "$OPAQUE"; echo "$JWT_HEADER"; printf 'alice:basicpw18' | base64; echo otp19code
    echo cookie20; echo refreshtok21; echo cdnpw22; echo cdnsig23
} > "$OUT/nginx-secrets.secrets.txt"
cat "$RUN/tcpdump.stderr" >&2
