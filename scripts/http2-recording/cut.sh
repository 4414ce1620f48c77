#!/bin/bash
# Makes the mid-connection copies of the HTTP/2 recordings: DIR/http2-nginx-cut.pcap and
# DIR/http2-grpc-cut.pcap keep the packets from SECONDS (default 1.5) after each capture's
# first packet, so their connections are picked up after their HEADERS have filled HPACK's
# dynamic tables. usage: cut.sh DIR [SECONDS]
set -euo pipefail
DIR=${1:?usage: cut.sh DIR [SECONDS]}
AFTER=${2:-1.5}
for name in http2-nginx http2-grpc; do
    first=$(capinfos -a -T -r -S "$DIR/$name.pcap" | awk '{print $2}')
    at=$(TZ=UTC date -u -d "@$(echo "$first + $AFTER" | bc)" '+%Y-%m-%d %H:%M:%S.%N')
    TZ=UTC editcap -A "$at" "$DIR/$name.pcap" "$DIR/$name-cut.pcap"
    echo "$name-cut.pcap: from $at UTC ($(capinfos -c -M "$DIR/$name-cut.pcap" | awk '/Number/ {print $4}') packets)"
done
