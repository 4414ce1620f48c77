#!/usr/bin/env bash
# Replay cost per MB of the CPU-adversarial captures (tests/common/cost.rs, issue 16) beside
# ordinary captures, in one run: wall time (best of RUNS), seconds per MB and peak RSS of
# `tapspan replay FILE -o /dev/null --no-progress`, and of `tapspan report` on the fan-out spans.
# Usage: benches/adversarial_cost.sh [RUNS] [TAPSPAN]
#   TAPSPAN: the binary to time (default: target/release/tapspan, built first), e.g. a copy
#   built from an older commit. TIMEOUT (seconds, default 600) stops a run; it is then shown as
#   "> TIMEOUT". Needs GNU time (apt-get install time).
set -euo pipefail
runs=${1:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
tapspan=${2:-target/release/tapspan}
limit=${TIMEOUT:-600}
dir=target/cost
TAPSPAN_WRITE_COST_CAPTURES=$PWD/$dir cargo test --release --quiet --test adversarial_cost \
  write_captures_for_benchmarks > /dev/null

printf '%-32s %7s %8s %9s %8s %9s\n' file MB packets seconds s/MB 'RSS MB'
measure() { # label, file, command...
  local label=$1 file=$2; shift 2
  local bytes best="" rss=0 packets
  bytes=$(stat -c %s "$file")
  # Counted by the current build, whichever binary is timed.
  packets=$(target/release/tapspan replay "$file" -o /dev/null --no-progress --summary 2>&1 \
    | awk '/^frames / {print $2}' || true)
  for _ in $(seq "$runs"); do
    local rc=0
    /usr/bin/time -f '%e %M' -o /tmp/tapspan-cost.time timeout "$limit" "$@" \
      > /dev/null 2> /dev/null || rc=$?
    if [ "$rc" = 124 ]; then best=">$limit"; break; fi
    read -r secs kb < <(tail -n 1 /tmp/tapspan-cost.time)
    if [ -z "$best" ] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; rss=$kb; fi
    # A slow run is not repeated: the point is the order of growth.
    awk "BEGIN {exit !($secs > 30)}" && break
  done
  awk -v l="$label" -v b="$bytes" -v p="${packets:--}" -v s="$best" -v r="$rss" 'BEGIN {
    if (s ~ />/) printf "%-32s %7.1f %8s %9s %8s %9s\n", l, b / 1e6, p, s " s", "-", "-";
    else printf "%-32s %7.1f %8s %9.2f %8.3f %9.0f\n", l, b / 1e6, p, s, s / (b / 1e6), r / 1024 }'
}

replay() { # file [flags]
  local file=$1; shift
  measure "$(basename "$file")${*:+ $*}" "$file" "$tapspan" replay "$file" -o /dev/null \
    --no-progress "$@"
}

replay pcaps/workers-c16.pcap
replay pcaps/shop-dirty.pcap
for f in hole-80k-ascending hole-80k-descending hole-80k-random hole-80k-overlapping \
  hole-400k-ascending tiny-at-cap pipelined-25k pipelined-100k pipelined-400k \
  pipelined-100k-1ms fragments-30x65000; do
  replay "$dir/$f.pcap"
done
replay "$dir/pipelined-100k.pcap" --max-pending-requests 1000000
for f in fan-out-25k fan-out-100k; do
  measure "$f.jsonl (report)" "$dir/$f.jsonl" "$tapspan" report "$dir/$f.jsonl" \
    --analysis-json /dev/null
done
