//! Where the time goes (issue 7): from the spans of a capture to a service map, an endpoint
//! table with latency percentiles and histograms, waterfalls of sampled requests with their
//! critical path, calling-context trees, and ranked performance findings. The same
//! [`Analysis`] is written as JSON (`--analysis-json`, for diffing two captures in CI), as an
//! HTML report (`report::html`) and as text (`--summary`).
//!
//! Memory: the analysis holds one record per exchange only until its trace stops getting spans
//! (at most about `hold_calls` of them), then folds the trace into aggregates that grow with the
//! number of endpoints, services and distinct call paths, never with the number of calls:
//! latency sketches (within 1 %), counters, sampled waterfalls (see [`Analyzer::retained`]).
//! `max_calls` (`--max-analysed-calls`) caps the exchanges analysed only when asked to.

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
    /// Exchanges analysed at most; later ones are counted only.
    pub max_calls: usize,
    /// Calls held while their traces may still get spans (a few hundred bytes each); beyond
    /// it, traces that stopped getting spans are analysed and their calls dropped.
    pub hold_calls: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            thresholds: Thresholds::default(),
            sampling: Sampling::default(),
            max_calls: usize::MAX,
            hold_calls: 100_000,
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

/// Collects spans and analyses them one batch of whole traces at a time: the calls of a trace
/// are held until its spans stop arriving (`hold_calls`), then folded into aggregates and
/// dropped. Spans may come in any order within that window; tapspan writes a trace's spans
/// together.
#[derive(Clone)]
pub struct Analyzer {
    table: CallTable,
    stats: stats::StatsAcc,
    findings: findings::FindingsAcc,
    waterfalls: traces::WaterfallSampler,
    contexts: traces::ContextTrees,
    calls: u64,
    requests: u64,
    config: AnalysisConfig,
}

/// What an [`Analyzer`] holds, by count (each a record of a few words, or a sketch bucket):
/// grows with endpoints and services, not with calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Calls waiting for their traces to settle: at most about `hold_calls`.
    pub held_calls: usize,
    /// Everything folded: sketch buckets, counters, waterfall rows, context-tree nodes, names.
    pub folded: usize,
}

impl Analyzer {
    pub fn new(config: AnalysisConfig) -> Self {
        Analyzer {
            table: CallTable::new(config.max_calls),
            stats: Default::default(),
            findings: Default::default(),
            waterfalls: traces::WaterfallSampler::new(&config.sampling),
            contexts: Default::default(),
            calls: 0,
            requests: 0,
            config,
        }
    }

    pub fn push(&mut self, span: &Span) {
        self.table.push(&SpanFields::of_span(span));
        self.settle();
    }

    /// A span read back from JSON lines; false if it is not one.
    pub fn push_json(&mut self, value: &serde_json::Value) -> bool {
        match SpanFields::of_json(value) {
            Some(s) => {
                self.table.push(&s);
                self.settle();
                true
            }
            None => false,
        }
    }

    /// At `hold_calls`, folds the traces with no span among the last `hold_calls / 2` spans (a
    /// quarter of the calls, two spans each); if that leaves more than half held (traces
    /// interleaved that much), folds them all.
    fn settle(&mut self) {
        let hold = self.config.hold_calls.max(1);
        if self.table.calls.len() < hold {
            return;
        }
        let calls = self.table.take_settled((hold as u64 / 2).max(1));
        self.fold(calls);
        if self.table.calls.len() > hold / 2 {
            let rest = self.table.take_settled(0);
            self.fold(rest);
        }
    }

    fn fold(&mut self, calls: Vec<calls::Call>) {
        let children = calls::children(&calls);
        self.calls += calls.len() as u64;
        self.requests += calls.iter().filter(|c| c.parent.is_none()).count() as u64;
        self.stats.fold(&calls, &children);
        self.findings
            .fold(&calls, &children, &self.config.thresholds);
        self.waterfalls.fold(&calls, &children);
        self.contexts.fold(&calls, &children);
    }

    pub fn retained(&self) -> Retained {
        Retained {
            held_calls: self.table.calls.len(),
            folded: self.stats.retained()
                + self.findings.retained()
                + self.waterfalls.retained()
                + self.contexts.retained()
                + self.table.names(),
        }
    }

    /// The analysis so far, as [`Self::finish`] would give it now, leaving this one to go on
    /// (a live tap's periodic report). It works on a copy: at most `hold_calls` held calls and
    /// the aggregates, which grow with endpoints, not with calls.
    pub fn snapshot(&self, inputs: Vec<String>) -> Analysis {
        self.clone().finish(inputs)
    }

    pub fn finish(mut self, inputs: Vec<String>) -> Analysis {
        let rest = self.table.take_settled(0);
        self.fold(rest);
        let agg = self.stats.finish();
        let mut findings = self.findings.finish(&self.config.thresholds);
        let findings_left_out = findings.len().saturating_sub(MAX_FINDINGS) as u64;
        findings.truncate(MAX_FINDINGS);
        Analysis {
            format: ANALYSIS_FORMAT,
            generator: format!("tapspan {}", env!("CARGO_PKG_VERSION")),
            inputs,
            first_unix_nano: agg.first_ns,
            last_unix_nano: agg.last_ns,
            calls: self.calls,
            calls_left_out: self.table.calls_left_out,
            requests: self.requests,
            services: agg.services,
            edges: agg.edges,
            endpoints: agg.endpoints,
            endpoints_left_out: agg.endpoints_left_out,
            findings,
            findings_left_out,
            waterfalls: self.waterfalls.finish(),
            calling_contexts: self.contexts.finish(&self.config.sampling),
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
