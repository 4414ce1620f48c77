//! Whole-trace sampling: spans in (as the causality builder emits them), the spans of the traces
//! kept out, to the sinks and JSON lines. The analysis (statistics, report, `--summary`,
//! metrics) is fed before this stage, from every exchange (the binary's `Outputs`).
//!
//! A trace is kept or dropped once, and all of its spans follow: a decision is never made on
//! one span. What decides, in this order (the first that keeps wins, and is counted):
//! 1. the rate of the first rule ([`rules`]) that matches the trace's root request, else the
//!    default rate (`--sample RATE`, or the rules file's `[default]`): consistent probability
//!    sampling ([`threshold`]), decided from the trace's randomness alone, so that every tap,
//!    every run and the services' own SDKs keep the same traces;
//! 2. tail rules, on the whole trace: `--keep-errors` (any span with status error),
//!    `--keep-slower-than` (the trace, from its first span's start to its last span's end: the
//!    root's duration), a rule's `keep_slower_than` (any request that rule matches);
//! 3. the matching rule's reservoir, for traces nothing else kept;
//! 4. else the trace is dropped.
//!
//! Traces kept by a rate carry its threshold in their tracestate (`ot=th:…`, OTEP 235) whenever
//! some rate below 1 is configured, so that backends can count what was dropped; traces kept by
//! a tail rule or a reservoir carry none (their adjusted count is unknown).
//!
//! When a trace is complete. The causality builder emits a trace's spans together, one tree at
//! a time, when its root has been decided (`--trace-window` after the root ended), so the spans
//! of one tree arrive back to back: this stage groups consecutive spans with one trace id (a
//! *piece*) and decides on the piece. A trace whose id was derived from its root exchange
//! (no propagated id) is one piece by construction, and is decided at once. A trace whose id
//! came from the wire (traceparent, B3, X-Request-ID…) may arrive in several pieces: when every
//! service has its own tracer, each exchange is its own tree. Such a piece is decided at once
//! when nothing but the id decides (no rules, and the rate keeps it or nothing could rescue it);
//! otherwise it is held until `--trace-window` of capture time has passed after its last piece
//! ended with no further piece (every piece of the trace that ended within that wait has been
//! emitted by then), and then decided whole. That wait is the bound: traces decided there are
//! counted, as are traces decided early because the held spans reached their cap
//! (`--max-sampling-spans`), and pieces that arrive after their trace's decision (they follow
//! it). Traces the causality builder emitted early at its own memory cap arrive cut; they are
//! counted by the builder (`forced_decisions`) and reported beside these counters.
//!
//! Time is the capture's: the stage's clock is the latest end among the spans it was handed
//! (or the capture time a driver reports, less the trace window); the wall clock is never read.
//! Cost per span: constant (a push; per piece, a hash map lookup and a hash of its root's
//! exchange id), plus a tree-set operation per held piece; a decision is one pass over its
//! trace's spans (times the rules, where rules set their own slowness threshold). Memory: the
//! current piece, the held spans (capped), and the decisions on traces that may come in pieces,
//! for their late pieces (as many at most as the held-spans cap).

pub mod rules;
pub mod stats;
pub mod threshold;

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::span::{Span, SpanKind, SpanStatus};
use rules::{Action, Request, Rule, Rules};
pub use stats::SamplingStats;
use threshold::Threshold;

/// What the sampling flags describe.
#[derive(Clone, Debug)]
pub struct SamplingConfig {
    /// For traces no rule matches.
    pub default: Action,
    pub rules: Vec<Rule>,
    pub keep_errors: bool,
    pub keep_slower_than_ns: Option<u64>,
    /// How long (capture time) a trace that may come in pieces waits for more: the causality
    /// builder's trace window.
    pub wait_ns: u64,
    /// Spans held at once while their traces wait.
    pub max_held_spans: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            default: Action::rate(1.0),
            rules: Vec::new(),
            keep_errors: false,
            keep_slower_than_ns: None,
            wait_ns: 5_000_000_000,
            max_held_spans: 100_000,
        }
    }
}

impl SamplingConfig {
    /// The configuration of `--sample RATE` (None: every trace) and a rules file's rules. A
    /// file's `[default]` replaces `--sample`; both at once is a mistake the caller reports.
    pub fn new(sample: Option<f64>, rules: Rules) -> Self {
        let default = rules
            .default
            .clone()
            .unwrap_or_else(|| Action::rate(sample.unwrap_or(1.0)));
        SamplingConfig {
            default,
            rules: rules.rules,
            ..SamplingConfig::default()
        }
    }

    /// Whether anything is ever dropped.
    pub fn drops_anything(&self) -> bool {
        let drops = |a: &Action| a.threshold != Threshold::ALWAYS;
        drops(&self.default) || self.rules.iter().any(|r| drops(&r.action))
    }

    fn has_tail_rules(&self) -> bool {
        self.keep_errors
            || self.keep_slower_than_ns.is_some()
            || self.rules.iter().any(|r| r.keep_slower_than_ns.is_some())
    }
}

/// Why a trace was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The rate of rule `i` (None: the default rate).
    Rate(Option<usize>),
    Errors,
    Slow,
    /// The reservoir of rule `i` (None: the default rule's).
    Reservoir(Option<usize>),
}

/// A trace's fate: kept (why, and the threshold its spans carry), or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub kept: Option<Reason>,
    pub threshold: Option<Threshold>,
}

impl Decision {
    const DROP: Decision = Decision {
        kept: None,
        threshold: None,
    };
}

/// A trace waiting for more pieces.
struct Held {
    spans: Vec<Span>,
    deadline: u64,
}

/// X-Ray's reservoir: so many traces per second of capture time.
#[derive(Clone, Copy, Debug, Default)]
struct Reservoir {
    second: u64,
    used: u32,
}

pub struct Sampler {
    config: SamplingConfig,
    /// Whether kept traces carry their threshold (some rate is below 1).
    label: bool,
    /// The piece being gathered: consecutive spans with one trace id.
    run: Vec<Span>,
    held: HashMap<String, Held>,
    /// (deadline, trace id) of each held trace.
    deadlines: BTreeSet<(u64, String)>,
    held_spans: usize,
    /// Decisions on traces that may come in pieces, for their late pieces, until the clock
    /// passes the expiry; (expiry, trace id) in decision order.
    recent: HashMap<String, Decision>,
    expiries: VecDeque<(u64, String)>,
    /// Capture time: every piece whose spans ended by then has been handed over.
    clock: u64,
    /// Reservoirs of the rules, then the default's.
    reservoirs: Vec<Reservoir>,
    pub stats: SamplingStats,
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Self {
        let stats = SamplingStats {
            kept_by_rule: config
                .rules
                .iter()
                .map(|r| (r.name.clone(), 0, 0))
                .collect(),
            ..SamplingStats::default()
        };
        Sampler {
            label: config.drops_anything(),
            reservoirs: vec![Reservoir::default(); config.rules.len() + 1],
            config,
            run: Vec::new(),
            held: HashMap::new(),
            deadlines: BTreeSet::new(),
            held_spans: 0,
            recent: HashMap::new(),
            expiries: VecDeque::new(),
            clock: 0,
            stats,
        }
    }

    /// One span, in the order the causality builder emitted it. Spans of kept traces go to
    /// `out`, with their tracestate set.
    pub fn push<F: FnMut(Span)>(&mut self, span: Span, out: &mut F) {
        if self
            .run
            .first()
            .is_some_and(|s| s.trace_id != span.trace_id)
        {
            self.end_piece(out);
        }
        self.run.push(span);
    }

    /// The builder has said all it had to say for now (drivers call this after each of its
    /// calls): the piece being gathered is whole, and traces whose wait is over are decided.
    pub fn settle<F: FnMut(Span)>(&mut self, out: &mut F) {
        self.end_piece(out);
        self.decide_due(out);
    }

    /// Capture time has reached `now` (a quiet link in live capture): with the builder's
    /// window, every piece that ended by `now - wait` has been emitted.
    pub fn advance_to<F: FnMut(Span)>(&mut self, now: u64, out: &mut F) {
        self.clock = self.clock.max(now.saturating_sub(self.config.wait_ns));
        self.settle(out);
    }

    /// End of input: every held trace is decided.
    pub fn finish<F: FnMut(Span)>(&mut self, out: &mut F) {
        self.end_piece(out);
        while let Some((_, trace)) = self.deadlines.pop_first() {
            self.decide_held(&trace, out);
        }
    }

    /// The piece gathered so far is whole: decide it, or hold it with its trace's other pieces.
    fn end_piece<F: FnMut(Span)>(&mut self, out: &mut F) {
        if self.run.is_empty() {
            return;
        }
        // Taken while it is decided, given back empty (its capacity reused) unless held.
        let mut piece = std::mem::take(&mut self.run);
        let end = piece.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
        self.clock = self.clock.max(end);
        let trace = piece[0].trace_id.clone();
        if let Some(&decision) = self.recent.get(&trace) {
            self.stats.late_pieces += 1;
            self.apply(decision, &mut piece, out);
        } else if let Some(held) = self.held.get_mut(&trace) {
            self.deadlines.remove(&(held.deadline, trace.clone()));
            held.deadline = held.deadline.max(end.saturating_add(self.config.wait_ns));
            self.deadlines.insert((held.deadline, trace));
            self.held_spans += piece.len();
            held.spans.append(&mut piece);
            self.hold_within_cap(out);
        } else if is_whole(&piece) {
            let decision = self.decide(&piece);
            self.apply(decision, &mut piece, out);
        } else if let Some(decision) = self.decide_on_id(&piece) {
            self.remember(&trace, decision, end);
            self.apply(decision, &mut piece, out);
        } else {
            let deadline = end.saturating_add(self.config.wait_ns);
            self.deadlines.insert((deadline, trace.clone()));
            self.held_spans += piece.len();
            let spans = std::mem::take(&mut piece);
            self.held.insert(trace, Held { spans, deadline });
            self.hold_within_cap(out);
        }
        self.run = piece;
    }

    /// Held spans past their cap: the traces due first are decided now, and counted.
    fn hold_within_cap<F: FnMut(Span)>(&mut self, out: &mut F) {
        self.stats.peak_held_spans = self.stats.peak_held_spans.max(self.held_spans as u64);
        while self.held_spans > self.config.max_held_spans {
            let Some((_, trace)) = self.deadlines.pop_first() else {
                break;
            };
            self.stats.decided_at_cap += 1;
            self.decide_held(&trace, out);
        }
    }

    fn decide_due<F: FnMut(Span)>(&mut self, out: &mut F) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > self.clock {
                break;
            }
            let (_, trace) = self.deadlines.pop_first().expect("a first entry");
            self.stats.waited += 1;
            self.decide_held(&trace, out);
        }
        while let Some((expiry, _)) = self.expiries.front() {
            if *expiry > self.clock && self.expiries.len() <= self.config.max_held_spans.max(1) {
                break;
            }
            let (_, trace) = self.expiries.pop_front().expect("a front entry");
            self.recent.remove(&trace);
        }
    }

    /// Decide a held trace (already out of `deadlines`) on all its pieces.
    fn decide_held<F: FnMut(Span)>(&mut self, trace: &str, out: &mut F) {
        let Some(mut held) = self.held.remove(trace) else {
            return;
        };
        self.held_spans -= held.spans.len();
        let decision = self.decide(&held.spans);
        self.remember(trace, decision, held.deadline);
        self.apply(decision, &mut held.spans, out);
    }

    /// Keep the decision on a trace that may come in pieces for its late pieces: until the
    /// clock passes `after` by another wait.
    fn remember(&mut self, trace: &str, decision: Decision, after: u64) {
        self.recent.insert(trace.to_string(), decision);
        self.expiries
            .push_back((after.saturating_add(self.config.wait_ns), trace.to_string()));
    }

    /// Hands the spans of a kept trace to `out` (or counts them dropped); `spans` is left empty.
    fn apply<F: FnMut(Span)>(&mut self, decision: Decision, spans: &mut Vec<Span>, out: &mut F) {
        if decision.kept.is_none() {
            self.stats.spans_dropped += spans.len() as u64;
            spans.clear();
            return;
        }
        self.stats.spans_kept += spans.len() as u64;
        let state = decision
            .threshold
            .filter(|_| self.label)
            .and_then(Threshold::tracestate);
        for mut span in spans.drain(..) {
            span.trace_state.clone_from(&state);
            out(span);
        }
    }

    /// The decision on a piece of a trace that may have more pieces, when its id alone decides
    /// (no rule could match differently, and no tail rule or reservoir could keep what the
    /// rate drops); None when it must wait for the rest.
    fn decide_on_id(&mut self, piece: &[Span]) -> Option<Decision> {
        if !self.config.rules.is_empty() {
            return None;
        }
        let threshold = self.config.default.threshold;
        if threshold.keeps(randomness(piece)) {
            self.stats.traces += 1;
            self.stats.kept_head += 1;
            return Some(Decision {
                kept: Some(Reason::Rate(None)),
                threshold: Some(threshold),
            });
        }
        if self.config.has_tail_rules() || self.config.default.reservoir > 0 {
            return None;
        }
        self.stats.traces += 1;
        self.stats.dropped += 1;
        Some(Decision::DROP)
    }

    /// The decision on a whole trace (module docs), counted.
    fn decide(&mut self, spans: &[Span]) -> Decision {
        let decision = self.decision(spans);
        let s = &mut self.stats;
        s.traces += 1;
        match decision.kept {
            None => s.dropped += 1,
            Some(Reason::Rate(None)) => s.kept_head += 1,
            Some(Reason::Rate(Some(i))) => s.kept_by_rule[i].1 += 1,
            Some(Reason::Reservoir(None)) => s.kept_default_reservoir += 1,
            Some(Reason::Reservoir(Some(i))) => s.kept_by_rule[i].2 += 1,
            Some(Reason::Errors) => s.kept_errors += 1,
            Some(Reason::Slow) => s.kept_slow += 1,
        }
        decision
    }

    fn decision(&mut self, spans: &[Span]) -> Decision {
        let root = root_request(spans);
        let rule = root.as_ref().and_then(|r| {
            self.config
                .rules
                .iter()
                .position(|rule| rule.matches(&r.request()))
        });
        let action = rule.map_or(&self.config.default, |i| &self.config.rules[i].action);
        if action.threshold.keeps(randomness(spans)) {
            return Decision {
                kept: Some(Reason::Rate(rule)),
                threshold: Some(action.threshold),
            };
        }
        let reservoir = action.reservoir;
        let tail = if self.config.keep_errors && spans.iter().any(|s| s.status == SpanStatus::Error)
        {
            Some(Reason::Errors)
        } else if self.is_slow(spans) {
            Some(Reason::Slow)
        } else {
            None
        };
        if tail.is_some() {
            return Decision {
                kept: tail,
                threshold: None,
            };
        }
        let second = self.clock / 1_000_000_000;
        let r = &mut self.reservoirs[rule.unwrap_or(self.config.rules.len())];
        if r.second != second {
            *r = Reservoir { second, used: 0 };
        }
        if r.used < reservoir {
            r.used += 1;
            return Decision {
                kept: Some(Reason::Reservoir(rule)),
                threshold: None,
            };
        }
        Decision::DROP
    }

    fn is_slow(&self, spans: &[Span]) -> bool {
        if let Some(limit) = self.config.keep_slower_than_ns {
            let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
            let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
            if end.saturating_sub(start) > limit {
                return true;
            }
        }
        if !self
            .config
            .rules
            .iter()
            .any(|r| r.keep_slower_than_ns.is_some())
        {
            return false;
        }
        spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server)
            .any(|s| {
                let request = RootRequest::of(s).request();
                let rule = self.config.rules.iter().find(|r| r.matches(&request));
                rule.and_then(|r| r.keep_slower_than_ns)
                    .is_some_and(|limit| s.end_unix_nano.saturating_sub(s.start_unix_nano) > limit)
            })
    }
}

/// What rules look at in a server span.
struct RootRequest<'a> {
    span: &'a Span,
}

impl<'a> RootRequest<'a> {
    fn of(span: &'a Span) -> Self {
        RootRequest { span }
    }
    fn request(&self) -> Request<'a> {
        let http = self.span.attributes.http.as_deref();
        Request {
            service: &self.span.service,
            method: http.and_then(|h| h.method.as_deref()),
            route: http.and_then(|h| h.route.as_deref()),
            path: http.and_then(|h| h.path.as_deref()),
        }
    }
}

/// The trace's root request: its server span that started first (of those, the longest).
fn root_request(spans: &[Span]) -> Option<RootRequest<'_>> {
    spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .min_by_key(|s| (s.start_unix_nano, std::cmp::Reverse(s.end_unix_nano)))
        .map(RootRequest::of)
}

/// The trace's randomness: explicit (`rv` in a captured `tracestate`), else from its id.
fn randomness(spans: &[Span]) -> u64 {
    let explicit = spans.iter().find_map(|s| {
        let request = s.attributes.http.as_deref()?.request.as_ref()?;
        request
            .values("tracestate")
            .find_map(threshold::of_tracestate)
    });
    explicit
        .or_else(|| {
            spans
                .first()
                .and_then(|s| threshold::of_trace_id(&s.trace_id))
        })
        .unwrap_or(0)
}

/// Whether a piece is its trace entire: its trace id was derived from its first span's
/// exchange (the root's), so no other tree can carry it.
fn is_whole(piece: &[Span]) -> bool {
    let Some(first) = piece.first() else {
        return true;
    };
    let xid = first.attributes.exchange_id;
    format!("{:032x}", crate::ids::root_trace_id(xid)) == first.trace_id
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// The two spans of one exchange: `trace` None derives the trace id from the exchange (a
    /// root of its own), else the trace id came from the wire.
    fn exchange(xid: u64, trace: Option<&str>, start: u64, end: u64, status: u16) -> Vec<Span> {
        let trace_id = match trace {
            Some(t) => t.to_string(),
            None => format!("{:032x}", crate::ids::root_trace_id(xid)),
        };
        [SpanKind::Client, SpanKind::Server]
            .into_iter()
            .map(|kind| Span {
                trace_id: trace_id.clone(),
                span_id: format!("{:016x}", xid * 2 + (kind == SpanKind::Server) as u64),
                parent_span_id: None,
                kind,
                name: "GET /checkout/{id}".into(),
                service: "front".into(),
                start_unix_nano: start,
                end_unix_nano: end,
                status: if status >= 500 {
                    SpanStatus::Error
                } else {
                    SpanStatus::Unset
                },
                attributes: checkout_attributes(xid).into(),
                events: Vec::new(),
                trace_state: None,
            })
            .collect()
    }

    fn checkout_attributes(xid: u64) -> crate::span::Attributes {
        let mut a = crate::span::Attributes::example();
        a.exchange_id = xid;
        a.http = Some(Box::new(crate::span::Http {
            method: Some("GET".into()),
            route: Some("/checkout/{id}".into()),
            path: Some(format!("/checkout/{xid}")),
            ..Default::default()
        }));
        a
    }

    /// A propagated trace id whose randomness is `r` (56 bits).
    fn wire_trace(r: u64) -> String {
        format!("{:018x}{r:014x}", 0xabcdu64)
    }

    fn run(sampler: &mut Sampler, pieces: Vec<Vec<Span>>) -> Vec<Span> {
        let mut out = Vec::new();
        for piece in pieces {
            for s in piece {
                sampler.push(s, &mut |k| out.push(k));
            }
            sampler.settle(&mut |k| out.push(k));
        }
        sampler.finish(&mut |k| out.push(k));
        out
    }

    fn config(rate: f64) -> SamplingConfig {
        SamplingConfig {
            default: Action::rate(rate),
            wait_ns: 100 * MS,
            ..SamplingConfig::default()
        }
    }

    #[test]
    fn the_id_alone_decides_head_sampling() {
        let half = threshold::RANGE / 2;
        let mut s = Sampler::new(config(0.5));
        let out = run(
            &mut s,
            vec![
                exchange(1, Some(&wire_trace(half)), 0, 10 * MS, 200),
                exchange(2, Some(&wire_trace(half - 1)), 0, 10 * MS, 200),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.trace_id == wire_trace(half)));
        assert!(out
            .iter()
            .all(|s| s.trace_state.as_deref() == Some("ot=th:8")));
        assert_eq!(
            (s.stats.traces, s.stats.kept_head, s.stats.dropped),
            (2, 1, 1)
        );
        assert_eq!(s.stats.waited, 0, "nothing else could decide: no wait");
    }

    #[test]
    fn a_trace_in_pieces_is_kept_whole_when_its_last_piece_has_the_error() {
        let mut s = Sampler::new(SamplingConfig {
            keep_errors: true,
            ..config(0.0)
        });
        let t = wire_trace(7);
        let mut out = Vec::new();
        let push = |s: &mut Sampler, piece: Vec<Span>, out: &mut Vec<Span>| {
            for span in piece {
                s.push(span, &mut |k| out.push(k));
            }
            s.settle(&mut |k| out.push(k));
        };
        push(
            &mut s,
            exchange(1, Some(&t), 10 * MS, 20 * MS, 200),
            &mut out,
        );
        push(&mut s, exchange(2, None, 15 * MS, 40 * MS, 200), &mut out);
        assert!(out.is_empty(), "the first piece waits: {out:?}");
        push(
            &mut s,
            exchange(3, Some(&t), 5 * MS, 50 * MS, 503),
            &mut out,
        );
        assert!(out.is_empty(), "within the wait: {out:?}");
        // Capture time passes the last piece's end by the wait.
        push(&mut s, exchange(4, None, 140 * MS, 151 * MS, 200), &mut out);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(out
            .iter()
            .all(|x| x.trace_id == t && x.trace_state.is_none()));
        assert_eq!(s.stats.kept_errors, 1);
        assert_eq!(s.stats.waited, 1);
        assert_eq!(s.stats.dropped, 2);
        // A piece after the decision follows it.
        push(
            &mut s,
            exchange(5, Some(&t), 160 * MS, 170 * MS, 200),
            &mut out,
        );
        assert_eq!(out.len(), 6);
        assert_eq!(s.stats.late_pieces, 1);
        assert_eq!(s.stats.traces, 3);
    }

    #[test]
    fn held_spans_have_a_cap_and_what_it_forces_is_counted() {
        let mut s = Sampler::new(SamplingConfig {
            keep_errors: true,
            max_held_spans: 4,
            ..config(0.0)
        });
        let pieces = (0..5)
            .map(|i| exchange(i, Some(&wire_trace(i + 10)), 0, MS, 500))
            .collect();
        let out = run(&mut s, pieces);
        assert_eq!(out.len(), 10, "all kept for their errors");
        assert_eq!(s.stats.decided_at_cap, 3, "{:?}", s.stats);
        assert_eq!(s.stats.peak_held_spans, 6);
        assert_eq!(s.stats.kept_errors, 5);
    }

    #[test]
    fn decisions_kept_for_late_pieces_have_the_same_cap() {
        let mut s = Sampler::new(SamplingConfig {
            max_held_spans: 2,
            ..config(1.0)
        });
        let t = |i| wire_trace(i + 1);
        let mut pieces: Vec<Vec<Span>> = (0..5)
            .map(|i| exchange(i, Some(&t(i)), 0, MS, 200))
            .collect();
        // Within the wait: the newest traces' decisions are still known, the oldest forgotten.
        pieces.push(exchange(10, Some(&t(4)), 0, 2 * MS, 200));
        pieces.push(exchange(11, Some(&t(0)), 0, 2 * MS, 200));
        let out = run(&mut s, pieces);
        assert_eq!(out.len(), 14, "all kept at rate 1");
        assert_eq!(s.stats.late_pieces, 1, "{:?}", s.stats);
        assert_eq!(
            s.stats.traces, 6,
            "the forgotten one decided again: {:?}",
            s.stats
        );
        assert!(s.recent.len() <= 2 && s.expiries.len() <= 2);
    }

    #[test]
    fn rules_match_the_root_first_match_wins_and_reservoirs_count_seconds() {
        let rules = Rules::parse(
            r#"
            [[rule]]
            name = "checkout"
            route = "/checkout/*"
            reservoir = 2
            rate = 0.0
            [[rule]]
            name = "never reached"
            service = "front"
            rate = 1.0
            [default]
            rate = 1.0
            "#,
            "r.toml",
        )
        .unwrap();
        let mut s = Sampler::new(SamplingConfig {
            wait_ns: MS,
            ..SamplingConfig::new(None, rules)
        });
        // Five traces in the first second, three in the next.
        let starts = [0, 100, 200, 300, 400, 1000, 1100, 1200].map(|t| t * MS);
        let pieces = starts
            .iter()
            .enumerate()
            .map(|(i, &t)| exchange(i as u64 + 1, None, t, t + MS, 200))
            .collect();
        let out = run(&mut s, pieces);
        assert_eq!(out.len(), 2 * 4, "two traces per second: {:?}", s.stats);
        assert_eq!(s.stats.kept_by_rule[0], ("checkout".into(), 0, 4));
        assert_eq!(s.stats.kept_by_rule[1], ("never reached".into(), 0, 0));
        assert!(
            out.iter().all(|x| x.trace_state.is_none()),
            "reservoir: no th"
        );
    }

    #[test]
    fn slow_traces_and_slow_routes_are_kept() {
        let rules = Rules::parse(
            "[[rule]]\nroute = \"/checkout/*\"\nrate = 0.0\nkeep_slower_than = \"30ms\"\n",
            "r.toml",
        )
        .unwrap();
        let mut s = Sampler::new(SamplingConfig {
            keep_slower_than_ns: Some(100 * MS),
            wait_ns: MS,
            ..SamplingConfig::new(Some(0.0), rules)
        });
        let out = run(
            &mut s,
            vec![
                exchange(1, None, 0, 20 * MS, 200),
                exchange(2, None, 0, 31 * MS, 200),
                exchange(3, None, 0, 30 * MS, 200),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(s.stats.kept_slow, 1);
        let mut s = Sampler::new(SamplingConfig {
            keep_slower_than_ns: Some(100 * MS),
            ..config(0.0)
        });
        let mut slow = exchange(1, None, 0, 101 * MS, 200);
        slow[1].service = "other".into();
        let out = run(&mut s, vec![exchange(2, None, 0, 100 * MS, 200), slow]);
        assert_eq!(out.len(), 2, "only the trace over the threshold");
        assert_eq!(out[0].end_unix_nano, 101 * MS);
    }
}
