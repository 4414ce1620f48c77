#!/usr/bin/env bash
# Fuzz one target for a bounded time (issue 6): scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]
#
# Targets: capture_file decode reassembly http replay redis postgres dns tls http2
# (fuzz/fuzz_targets/; harnesses in fuzz/src/lib.rs). The corpus grows in fuzz/corpus/TARGET
# (not committed), seeded from the committed fuzz/seeds/TARGET (real frames, see
# scripts/fuzz-seeds.sh); a crash lands in fuzz/artifacts/TARGET and makes this script fail.
# Copy a crash input to fuzz/regressions/TARGET/NAME once fixed: `cargo test --test
# fuzz_regressions` replays it.
#
# Works on the stable toolchain: cargo-fuzz passes -Z flags (sanitizer, coverage), which
# RUSTC_BOOTSTRAP=1 lets stable rustc accept. Environment: FUZZ_SANITIZER (default address;
# `none` runs about twice as fast), FUZZ_CORPUS (the corpus root, default fuzz/corpus),
# CARGO_TARGET_DIR (honoured).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 TARGET SECONDS [libFuzzer args...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
[ -f "fuzz/fuzz_targets/$target.rs" ] || { echo "no fuzz target $target" >&2; usage; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== cargo install cargo-fuzz --locked" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

corpus=${FUZZ_CORPUS:-fuzz/corpus}/$target
mkdir -p "$corpus" "fuzz/artifacts/$target"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# -a: debug assertions and overflow checks on, as in the test profile.
set +e
cargo fuzz run -O -a --sanitizer "${FUZZ_SANITIZER:-address}" "$target" \
  "$corpus" "fuzz/seeds/$target" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" \
  2>&1 | tee "$log" | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' >&2
status=${PIPESTATUS[0]}
set -e

# One line for the record: executions, coverage, corpus, time.
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\/[0-9a-zA-Z]*\).*/cov \1 ft \2 corpus \3/p' <<<"$last")
echo "fuzz $target: ${runs:-?} executions in ${secs:-?} s, ${cov:-no coverage line}, exit $status"
exit "$status"
