//! Where the time goes (issue 7): from the spans of a capture to a service map, an endpoint
//! table with latency percentiles and histograms, waterfalls of sampled requests with their
//! critical path, calling-context trees, and ranked performance findings. The same
//! [`Analysis`] is written as JSON (`--analysis-json`, for diffing two captures in CI), as an
//! HTML report (`report::html`) and as text (`--summary`).
//!
//! Memory: the analysis keeps one record per exchange until the end of the input (a few
//! hundred bytes each) up to `max_calls` (`--max-analysed-calls`); the report samples
//! waterfalls, so its size does not grow with the capture.

pub mod calls;
pub mod diff;
pub mod endpoint_findings;
pub mod findings;
pub mod report;
pub mod sketch;
pub mod stats;
pub mod traces;

use serde::Serialize;

use crate::span::Span;
use calls::{CallTable, SpanFields};
pub use findings::{Finding, FindingKind, Thresholds};
pub use stats::{Edge, Endpoint, Percentiles, ServiceNode};
pub use traces::{ContextNode, Sampling, Waterfall};

/// Findings kept (the most costly); a capture of many endpoints can have thousands.
pub const MAX_FINDINGS: usize = 100;

/// The format of `--analysis-json`; bump when a field changes meaning.
pub const ANALYSIS_FORMAT: u32 = 1;

#[derive(Clone, Debug)]
pub struct AnalysisConfig {
    pub thresholds: Thresholds,
    pub sampling: Sampling,
    /// Exchanges analysed at most (about 400 bytes each, measured on a 60k-exchange capture);
    /// later ones are counted only.
    pub max_calls: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            thresholds: Thresholds::default(),
            sampling: Sampling::default(),
            max_calls: 1_000_000,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    pub format: u32,
    pub generator: String,
    /// What was analysed (file names), for the report's title.
    pub inputs: Vec<String>,
    pub first_unix_nano: u64,
    pub last_unix_nano: u64,
    pub calls: u64,
    /// Exchanges beyond the analysis cap (`--max-analysed-calls`): counted, not analysed.
    pub calls_left_out: u64,
    pub requests: u64,
    pub services: Vec<ServiceNode>,
    pub edges: Vec<Edge>,
    pub endpoints: Vec<Endpoint>,
    /// Endpoints beyond the most called `stats::MAX_ENDPOINTS`: counted, not listed.
    pub endpoints_left_out: u64,
    /// The most costly findings, at most `MAX_FINDINGS`.
    pub findings: Vec<Finding>,
    pub findings_left_out: u64,
    pub waterfalls: Vec<Waterfall>,
    pub calling_contexts: Vec<ContextNode>,
}

/// Collects spans (in any order) and analyses them at the end.
pub struct Analyzer {
    table: CallTable,
    config: AnalysisConfig,
}

impl Analyzer {
    pub fn new(config: AnalysisConfig) -> Self {
        Analyzer {
            table: CallTable::new(config.max_calls),
            config,
        }
    }

    pub fn push(&mut self, span: &Span) {
        self.table.push(&SpanFields::of_span(span));
    }

    /// A span read back from JSON lines; false if it is not one.
    pub fn push_json(&mut self, value: &serde_json::Value) -> bool {
        match SpanFields::of_json(value) {
            Some(s) => {
                self.table.push(&s);
                true
            }
            None => false,
        }
    }

    pub fn finish(mut self, inputs: Vec<String>) -> Analysis {
        self.table.resolve();
        let calls = &self.table.calls;
        let children = self.table.children();
        let agg = stats::aggregate(calls, &children);
        let mut findings = findings::find(calls, &children, &self.config.thresholds);
        let findings_left_out = findings.len().saturating_sub(MAX_FINDINGS) as u64;
        findings.truncate(MAX_FINDINGS);
        let waterfalls = traces::sample_waterfalls(calls, &children, &self.config.sampling);
        let calling_contexts = traces::calling_contexts(calls, &children, &self.config.sampling);
        Analysis {
            format: ANALYSIS_FORMAT,
            generator: format!("tapspan {}", env!("CARGO_PKG_VERSION")),
            inputs,
            first_unix_nano: agg.first_ns,
            last_unix_nano: agg.last_ns,
            calls: calls.len() as u64,
            calls_left_out: self.table.calls_left_out,
            requests: calls.iter().filter(|c| c.parent.is_none()).count() as u64,
            services: agg.services,
            edges: agg.edges,
            endpoints: agg.endpoints,
            endpoints_left_out: agg.endpoints_left_out,
            findings,
            findings_left_out,
            waterfalls,
            calling_contexts,
        }
    }
}

/// Sums of nanoseconds or bytes saturate: a capture cannot overflow them, but spans read back
/// from JSON can hold any number.
pub(crate) trait SaturatingSum {
    fn saturating_sum(self) -> u64;
}

impl<I: Iterator<Item = u64>> SaturatingSum for I {
    fn saturating_sum(self) -> u64 {
        self.fold(0, u64::saturating_add)
    }
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000..=999_999 => format!("{:.0} µs", ns as f64 / 1e3),
        1_000_000..=9_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        10_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

impl Analysis {
    /// The findings as text, for `--summary`.
    pub fn render_findings(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if self.calls_left_out > 0 {
            let _ = writeln!(
                s,
                "\nanalysis: {} calls, {} later calls left out at the cap (--max-analysed-calls)",
                self.calls, self.calls_left_out
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(s, "\nfindings: none");
            return s;
        }
        let _ = writeln!(s, "\nfindings (most time first):");
        for (n, f) in self.findings.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:>2}. [{}] {} — costs {} over {} occurrences ({} calls), e.g. trace {}",
                n + 1,
                f.kind.label(),
                crate::terminal::escape(&f.title),
                fmt_ns(f.impact_ns),
                f.occurrences,
                f.calls,
                f.trace_ids.first().map_or("-", String::as_str)
            );
        }
        if self.findings_left_out > 0 {
            let _ = writeln!(s, "    and {} less costly ones", self.findings_left_out);
        }
        s
    }
}
