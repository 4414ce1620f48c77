#!/usr/bin/env bash
# Whole-process throughput of `tapspan replay` beside tshark on the same capture, in one run.
# Usage: benches/replay_vs_tshark.sh CAPTURE [RUNS]
# Prints wall time, MB/s, packets/s and peak memory of each. Needs tshark and capinfos
# (Debian: apt-get install tshark) and GNU time (apt-get install time).
set -euo pipefail
capture=${1:?usage: $0 CAPTURE [RUNS]}
runs=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bytes=$(stat -c %s "$capture")
packets=$(capinfos -c -M "$capture" | awk -F': *' '/Number of packets/ {print $2}')
echo "capture: $capture, $bytes bytes, $packets packets"

measure() { # name, command...
  local name=$1; shift
  local best=""
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o /tmp/tapspan-bench.time "$@" > /dev/null 2>/tmp/tapspan-bench.err
    read -r secs rss_kb < /tmp/tapspan-bench.time
    if [ -z "$best" ] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; best_rss=$rss_kb; fi
  done
  awk -v n="$name" -v s="$best" -v b="$bytes" -v p="$packets" -v r="$best_rss" 'BEGIN {
    printf "%-8s %8.2f s %10.1f MB/s %12.0f packets/s %8.0f MB peak RSS\n", n, s, b / s / 1e6, p / s, r / 1024 }'
}

measure tapspan ./target/release/tapspan replay "$capture" -o /dev/null
measure tshark tshark -r "$capture" -Y http.response -T fields -e http.time
