#!/usr/bin/env bash
# Rewrite the fuzz seed corpora (fuzz/seeds/TARGET/) from the real captures in pcaps/ and
# fixtures/crafted/ (generator: tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf fuzz/seeds
TAPSPAN_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_regressions committed_seeds_equal_the_generator
cargo test --test fuzz_regressions
