//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::pipeline::{Back, Pipeline, PipelineConfig, PipelineStats, Spans};
use tapspan::protocols::Exchange;
use tapspan::run::replay::{replay_files, ReplayOutcome};
use tapspan::span::Span;

/// The read-only third-party captures beside the checkout, if present.
pub mod adversarial;
pub mod cost;
pub mod craft;
pub mod placement;
pub mod sim;
pub mod soak;

/// None in a user's clone; with `TAPSPAN_REQUIRE_SHARED` set (CI), a missing folder fails the
/// test instead of letting it pass by skipping.
pub fn shared_pcaps() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TAPSPAN_REQUIRE_SHARED").is_none(),
        "TAPSPAN_REQUIRE_SHARED is set but {} is not a folder",
        dir.display()
    );
    None
}

/// Runs the tapspan binary from the checkout's root, as a user would.
pub fn tapspan(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tapspan")
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Replay files with the default configuration, collecting exchanges.
pub fn replay(paths: &[PathBuf]) -> (Vec<Exchange>, ReplayOutcome) {
    replay_with(paths, PipelineConfig::default())
}

pub fn replay_with(paths: &[PathBuf], config: PipelineConfig) -> (Vec<Exchange>, ReplayOutcome) {
    let mut exchanges = Vec::new();
    let outcome = replay_files(paths, config, &mut |_, _| {}, &mut |ex| exchanges.push(ex))
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    (exchanges, outcome)
}

/// Spans as `tapspan replay` makes them: exchanges through the causality builder.
pub fn spans(exchanges: &[Exchange]) -> Vec<Span> {
    spans_with(exchanges, CausalityConfig::default())
}

/// [`spans`] with a causality configuration of the test's.
pub fn spans_with(exchanges: &[Exchange], config: CausalityConfig) -> Vec<Span> {
    let mut builder = CausalityBuilder::new(config);
    let mut out = Vec::new();
    let mut spans = Spans::new(&mut builder, &mut out);
    for ex in exchanges {
        spans.exchange(ex.clone());
    }
    spans.finish();
    out
}

/// Feed captured frames (timestamp, bytes) of one link type through a pipeline, then finish it:
/// the exchanges and the pipeline's counters.
pub fn run_frames(
    config: PipelineConfig,
    frames: &[(u64, Vec<u8>)],
    link: tapspan_capture::LinkType,
) -> (Vec<Exchange>, PipelineStats) {
    let mut pipeline = Pipeline::new(config, Vec::new());
    for (i, (ts, data)) in frames.iter().enumerate() {
        let frame = tapspan_capture::RawFrame {
            ts: tapspan_capture::Timestamp(*ts),
            link_type: link,
            data,
            orig_len: data.len() as u32,
            offset: i as u64,
        };
        pipeline.push_frame(&frame);
    }
    pipeline.finish();
    let stats = pipeline.stats();
    (std::mem::take(pipeline.back_mut()), stats)
}

/// The findings of `kind` in an analysis JSON (`--analysis-json`).
pub fn findings<'a>(analysis: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    analysis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// The one finding of `kind` (there must be exactly one).
pub fn only<'a>(analysis: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let f = findings(analysis, kind);
    assert_eq!(f.len(), 1, "{kind}: {f:#?}");
    f[0]
}

/// Waits for `child` to exit, reading its peak RSS (VmHWM, in KiB) from /proc meanwhile: VmHWM
/// only grows, so the last value read before exit is the peak, to within the 5 ms poll.
pub fn wait_with_peak_rss(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> (std::process::ExitStatus, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak_kib);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child took too long"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
