#!/usr/bin/env bash
# Short fuzz run of every target (CI smoke test): scripts/fuzz-smoke.sh [SECONDS per target, 60]
# Builds once, then runs each target for SECONDS; fails on the first crash. Crash inputs kept as
# regressions (fuzz/regressions/) are replayed by `cargo test --test fuzz_regressions` anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(capture_file decode reassembly http replay)
start=$(date +%s)
for t in "${targets[@]}"; do
  scripts/fuzz.sh "$t" "$seconds"
done
echo "fuzz smoke: ${#targets[@]} targets x ${seconds} s, $(( $(date +%s) - start )) s in all"
