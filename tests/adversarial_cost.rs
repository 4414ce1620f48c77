//! CPU per segment stays bounded on hostile segment patterns (issue 16). Each case replays a
//! capture from tests/common/cost.rs at two sizes and compares a deterministic work counter
//! exposed in the stats: work must grow linearly with the capture (a quadratic regression
//! quadruples the ratio), and stay under a constant per segment. No test here measures time;
//! the per-MB times are benchmarks (see `write_captures_for_benchmarks`).

mod common;

use common::cost::{self, Order};
use tapspan::pipeline::{PipelineConfig, PipelineStats};
use tapspan::protocols::Exchange;
use tapspan_capture::LinkType;

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
    for n in [25_000, 100_000] {
        let path = dir.join(format!("fan-out-{}k.jsonl", n / 1_000));
        std::fs::write(path, cost::fan_out_spans(n)).unwrap();
    }
}

/// What a capture cost: its exchanges and the pipeline's counters.
fn run(frames: &[(u64, Vec<u8>)], config: PipelineConfig) -> (Vec<Exchange>, PipelineStats) {
    common::run_frames(config, frames, LinkType::ETHERNET)
}

/// A counter at size `n` and `4n`: four times the input may cost at most `4.5` times the work
/// (a quadratic pass costs 16 times).
fn assert_linear(what: &str, small: u64, large: u64) {
    eprintln!("{what}: work {small} at n, {large} at 4n");
    assert!(
        large as f64 <= 4.5 * small as f64,
        "{what}: work grew from {small} to {large} for 4 times the input"
    );
}

/// The upload of `hole_then_tiny`, decoded whole: one exchange, every body byte, no gap.
fn assert_whole_upload(ex: &[Exchange], s: &PipelineStats, body_len: u64) {
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex[0].error, None);
    assert_eq!(ex[0].request().unwrap().body_size, body_len);
    assert_eq!(ex[0].response().unwrap().status, Some(200));
    assert_eq!(s.reassembly.gaps, 0);
    assert_eq!(s.reassembly.overlap_conflict_bytes, 0);
}

#[test]
fn a_hole_then_tiny_segments_costs_linear_work_in_every_order() {
    // 8 000 one-byte pieces stay under the 1 MiB held-bytes cap (113 bytes each as charged), so
    // every order is held whole and delivered when the hole fills.
    for order in [
        Order::Ascending,
        Order::Descending,
        Order::Random(16),
        Order::Random(1_000_003),
    ] {
        let mut work = Vec::new();
        for n in [2_000u64, 8_000] {
            let (ex, s) = run(&cost::hole_then_tiny(n, order), PipelineConfig::default());
            assert_whole_upload(&ex, &s, n + 1);
            assert_eq!(s.reassembly.out_of_order_segments, n);
            assert_eq!(s.reassembly.holes_skipped_at_cap, 0);
            assert_eq!(s.reassembly.retransmitted_bytes, 0);
            let visited = s.reassembly.held_pieces_visited;
            // Each piece is looked at by at most the next segment and once more when released.
            assert!(
                visited <= 2 * n + 1,
                "{order:?}: {visited} for {n} segments"
            );
            work.push(visited);
        }
        assert_linear(&format!("{order:?}"), work[0], work[1]);
    }
}

#[test]
fn overlapping_retransmissions_behind_a_hole_cost_linear_work_and_count_exactly() {
    let mut work = Vec::new();
    for n in [2_000u64, 8_000] {
        let (ex, s) = run(
            &cost::hole_then_tiny(n, Order::Overlapping),
            PipelineConfig::default(),
        );
        assert_whole_upload(&ex, &s, 1 + 4 * n + 4);
        // Each 8-byte piece repeats the previous one's last 4 bytes; every 16th is followed by
        // a copy of the 64 bytes before it, all held already. First copy wins, same bytes.
        assert_eq!(
            s.reassembly.retransmitted_bytes,
            4 * (n - 1) + 64 * (n / 16)
        );
        let segments = n + n / 16;
        let visited = s.reassembly.held_pieces_visited;
        // A 64-byte copy overlaps at most 17 pieces (each at least 4 bytes); the others 2.
        assert!(
            visited <= 3 * n + 17 * (n / 16) + 1,
            "{visited} for {segments} segments"
        );
        work.push(visited);
    }
    assert_linear("overlapping", work[0], work[1]);
}

#[test]
fn tiny_segments_at_the_held_bytes_cap_cost_linear_work_and_stay_under_it() {
    // Rounds of (a missing byte, then 1 000 one-byte segments) under a 64 KiB cap: each round
    // holds pieces until the cap (580 pieces as charged), gives the hole up, and goes on in order.
    let cap = 64 << 10;
    let config = || {
        let mut c = PipelineConfig::default();
        c.reassembly.max_held_bytes_per_direction = cap;
        c
    };
    let mut work = Vec::new();
    for rounds in [4u64, 16] {
        let (ex, s) = run(&cost::tiny_at_cap(rounds, 1_000), config());
        let r = &s.reassembly;
        assert_eq!(r.holes_skipped_at_cap, rounds);
        assert_eq!((r.gaps, r.gap_bytes), (rounds, rounds));
        assert!(
            r.peak_held_bytes <= cap as u64,
            "peak {}",
            r.peak_held_bytes
        );
        assert!(
            r.peak_held_bytes > cap as u64 / 2,
            "tiny pieces are charged their overhead: peak {}",
            r.peak_held_bytes
        );
        // The upload is one exchange whose body lost a byte a round, and nothing else.
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].response().unwrap().status, Some(200));
        assert_eq!(ex[0].gaps, rounds as u32);
        let segments = rounds * 1_000;
        assert!(r.held_pieces_visited <= 2 * segments);
        work.push(r.held_pieces_visited);
    }
    assert_linear("at the cap", work[0], work[1]);

    // The same under the global cap (per direction unlimited): the same degradation.
    let mut c = PipelineConfig::default();
    c.reassembly.max_held_bytes_total = cap;
    let (_, s) = run(&cost::tiny_at_cap(4, 1_000), c);
    assert_eq!(s.reassembly.holes_skipped_at_cap, 4);
    assert!(s.reassembly.peak_held_bytes <= cap as u64);
}

#[test]
fn pipelined_requests_cost_linear_work_however_many_wait() {
    // One request a segment, never answered. With the pending cap out of the way every request
    // waits to the end, and pairing each one's end with its exchange must not scan the queue.
    let mut work = Vec::new();
    for n in [5_000u64, 20_000] {
        let frames = cost::pipelined_one_per_segment(n, 1_000);
        let mut config = PipelineConfig::default();
        config.protocols.http.max_pending_requests = 1_000_000;
        let (ex, s) = run(&frames, config);
        assert_eq!(ex.len() as u64, n);
        assert!(ex
            .iter()
            .all(|e| e.response().is_none() && e.error.is_some()));
        assert_eq!(s.protocols.http.pending_requests_dropped, 0);
        let steps = s.protocols.http.pairing_steps;
        assert!(steps <= 2 * n, "{steps} pairing steps for {n} requests");
        work.push(steps);

        // Under the default cap the oldest are given up as they go; every one is still emitted.
        let (ex, s) = run(&frames, PipelineConfig::default());
        assert_eq!(ex.len() as u64, n);
        assert_eq!(s.protocols.http.pending_requests_dropped, n - 128);
        assert!(s.protocols.http.pairing_steps <= 2 * n);
    }
    assert_linear("pipelined", work[0], work[1]);
}

#[test]
fn head_buffers_are_capped_across_connections() {
    // 40 connections each leave a ~1 KiB head waiting for its end. Under a 16 KiB total, the
    // heads that find no room are dropped as they arrive — their start lines kept, their
    // exchanges marked — and the others decode whole. No exchange is lost.
    let (frames, part) = cost::split_heads(40, 1_000);
    let cap = 16 << 10;
    let mut config = PipelineConfig::default();
    config.protocols.http.max_head_bytes_total = cap;
    let (ex, s) = run(&frames, config);
    let fit = (cap / part) as u64;
    assert_eq!(s.protocols.http.heads_dropped_at_total_cap, 40 - fit);
    assert!(
        s.protocols.http.peak_head_bytes <= cap as u64,
        "{}",
        s.protocols.http.peak_head_bytes
    );
    assert_eq!(ex.len(), 40, "every request is still an exchange");
    let dropped: Vec<_> = ex
        .iter()
        .filter(|e| e.error == Some(tapspan::protocols::http1::HEAD_BUFFERS_FULL))
        .collect();
    assert_eq!(dropped.len() as u64, 40 - fit);
    for e in &ex {
        assert!(e.request().unwrap().target.starts_with("/c/"));
        assert_eq!(e.response().unwrap().status, Some(200));
    }
    assert!(ex.iter().filter(|e| e.error.is_none()).count() as u64 == fit);

    // Under the default total the same capture keeps every head.
    let (ex, s) = run(&frames, PipelineConfig::default());
    assert_eq!(s.protocols.http.heads_dropped_at_total_cap, 0);
    assert!(ex.iter().all(|e| e.error.is_none()));
    assert!(
        s.protocols.http.peak_head_bytes >= 40 * part as u64,
        "peak {} part {part}",
        s.protocols.http.peak_head_bytes
    );
}

#[test]
fn the_total_head_cap_is_a_flag_and_the_summary_counts_it() {
    let (frames, part) = cost::split_heads(40, 1_000);
    let path = std::env::temp_dir().join(format!("tapspan-cost-{}-heads.pcap", std::process::id()));
    cost::write(&path, &frames);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .arg("replay")
        .arg(&path)
        .args(["--output", "/dev/null", "--no-progress", "--summary"])
        .args(["--max-head-bytes-total", "16384"])
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let dropped = 40 - 16384 / part;
    assert!(
        stderr.contains(&format!("heads dropped at the total head cap {dropped}")),
        "{stderr}"
    );
}

#[test]
fn fragments_in_the_worst_order_cost_linear_work() {
    // Four datagrams of 8 000 or 32 000 bytes, each in 8-byte fragments sent odd ones first:
    // half the fragments are held as disjoint ranges when the other half arrives.
    let mut work = Vec::new();
    for seg_len in [8_000usize, 32_000] {
        let (ex, s) = run(&cost::fragmented(4, seg_len), PipelineConfig::default());
        let d = &s.decode;
        let fragments = 4 * (seg_len as u64 + 20).div_ceil(8);
        assert_eq!(d.fragments, fragments);
        assert_eq!(d.datagrams_reassembled, 4);
        assert_eq!((d.defrag_overlaps, d.defrag_evicted), (0, 0));
        assert_whole_upload(&ex, &s, 4 * seg_len as u64);
        let visited = d.defrag_ranges_visited;
        // Each fragment touches at most its two neighbours, in each of three passes.
        assert!(
            visited <= 6 * fragments,
            "{visited} for {fragments} fragments"
        );
        work.push(visited);
    }
    assert_linear("fragments", work[0], work[1]);
}
