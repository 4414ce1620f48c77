//! CPU per segment stays bounded on hostile segment patterns (issue 16). Each case replays a
//! capture from tests/common/cost.rs at two sizes and compares a deterministic work counter
//! exposed in the stats: work must grow linearly with the capture (a quadratic regression
//! quadruples the ratio), and stay under a constant per segment. No test here measures time;
//! the per-MB times are benchmarks (see `write_captures_for_benchmarks`).

mod common;

use common::cost::{self, Order};

/// Writes the benchmark captures to `$TAPSPAN_WRITE_COST_CAPTURES` (a directory), if set:
/// `TAPSPAN_WRITE_COST_CAPTURES=target/cost cargo test --release --test adversarial_cost write`.
#[test]
fn write_captures_for_benchmarks() {
    let Some(dir) = std::env::var_os("TAPSPAN_WRITE_COST_CAPTURES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    type Make = fn() -> Vec<(u64, Vec<u8>)>;
    let cases: &[(&str, Make)] = &[
        ("hole-80k-ascending", || {
            cost::hole_then_tiny(80_000, Order::Ascending)
        }),
        ("hole-400k-ascending", || {
            cost::hole_then_tiny(400_000, Order::Ascending)
        }),
        ("hole-80k-descending", || {
            cost::hole_then_tiny(80_000, Order::Descending)
        }),
        ("hole-80k-random", || {
            cost::hole_then_tiny(80_000, Order::Random(16))
        }),
        ("hole-80k-overlapping", || {
            cost::hole_then_tiny(80_000, Order::Overlapping)
        }),
        ("tiny-at-cap", || cost::tiny_at_cap(20, 20_000)),
        ("pipelined-25k", || {
            cost::pipelined_one_per_segment(25_000, 1_000)
        }),
        ("pipelined-100k", || {
            cost::pipelined_one_per_segment(100_000, 1_000)
        }),
        ("pipelined-400k", || {
            cost::pipelined_one_per_segment(400_000, 1_000)
        }),
        ("pipelined-100k-1ms", || {
            cost::pipelined_one_per_segment(100_000, 1_000_000)
        }),
        ("fragments-30x65000", || cost::fragmented(30, 65_000)),
    ];
    for (name, make) in cases.iter() {
        cost::write(&dir.join(format!("{name}.pcap")), &make());
    }
}
