#!/usr/bin/env bash
# Short fuzz run of every target: scripts/fuzz-smoke.sh [RUNS per target, 20000]
#
# CI runs this. It is deterministic: each target starts from the committed seeds only (a fresh
# corpus), with libFuzzer's seed fixed and a fixed number of inputs, so the same commit explores
# the same inputs here and in CI — a crash is found before landing, not by chance in CI. Longer,
# time-bounded runs that grow a local corpus are scripts/fuzz.sh's job. Crash inputs kept as
# regressions (fuzz/regressions/) are replayed by `cargo test --test fuzz_regressions` anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20000}
targets=(capture_file decode reassembly http replay)
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
start=$(date +%s)
for t in "${targets[@]}"; do
  FUZZ_CORPUS=$corpus scripts/fuzz.sh "$t" 0 -runs="$runs" -seed=1
done
echo "fuzz smoke: ${#targets[@]} targets x ${runs} inputs, $(( $(date +%s) - start )) s in all"
