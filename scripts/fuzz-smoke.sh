#!/usr/bin/env bash
# Short fuzz run of every target: scripts/fuzz-smoke.sh [PERCENT of the default runs, 100]
#
# CI runs this (`.ci/run`): each target starts from the committed seeds only (a fresh corpus),
# with libFuzzer's seed fixed and a fixed number of inputs, about a minute per target on one
# core. Runs are close to, not exactly, repeatable: Rust's HashMaps are seeded per process, which
# moves coverage a little. Longer, time-bounded runs that grow a local corpus are
# scripts/fuzz.sh's job (each target has had 30+ minutes without a crash; see README). A crash
# fails the run; its input is in fuzz/artifacts/TARGET. Inputs kept as regressions
# (fuzz/regressions/) are replayed by `cargo test --test fuzz_regressions` anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
percent=${1:-100}
# target:inputs — measured at ~1 minute each (2-core machine, address sanitizer); the protocol
# decoders' (redis postgres dns tls http2) at ~30 s each.
targets=(capture_file:150000 decode:1000000 reassembly:200000 http:75000 replay:30000
  redis:70000 postgres:140000 dns:200000 tls:900000 http2:200000)
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
start=$(date +%s)
for spec in "${targets[@]}"; do
  t=${spec%%:*}
  runs=$(( ${spec##*:} * percent / 100 ))
  FUZZ_CORPUS=$corpus scripts/fuzz.sh "$t" 0 -runs="$runs" -seed=1
done
echo "fuzz smoke: ${#targets[@]} targets, $(( $(date +%s) - start )) s in all"
