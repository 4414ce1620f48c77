//! Findings from all calls of one endpoint: slow first byte (the callee's own think time, its
//! own downstream calls excluded), slow transfer, large bodies without Content-Encoding, errors
//! (5xx, cut short), and calls abandoned without a response (timeouts).
//!
//! Folded one batch of calls at a time into counters and sketches per endpoint, so that memory
//! grows with the endpoints, not the calls: medians come from [`Sketch`]es (within 1 %, which
//! can move a median that sits on a threshold across it), sums and counts are exact, example
//! trace ids are the first ones seen.

use std::collections::BTreeMap;

use super::calls::{Call, Name};
use super::findings::{Finding, FindingKind, Thresholds};
use super::fmt_ns;
use super::sketch::Sketch;
use super::stats::covered;

/// `"a: 3, b: 1"` from counts.
fn tally(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Calls of one kind (answered, failed, abandoned): how many, and the first example traces.
#[derive(Clone, Default)]
struct Group {
    n: u64,
    trace_ids: Vec<String>,
}

impl Group {
    fn add(&mut self, c: &Call, examples: usize) {
        self.n += 1;
        if self.trace_ids.len() < examples && !self.trace_ids.contains(&c.trace_id) {
            self.trace_ids.push(c.trace_id.clone());
        }
    }
}

/// What the findings need of one endpoint's calls.
#[derive(Clone, Default)]
struct EndpointAcc {
    service: String,
    calls: u64,
    /// Calls with a whole response (the timing of the others is not comparable).
    answered: Group,
    answered_duration: Sketch,
    think: Sketch,
    think_ns: u64,
    transfer: Sketch,
    transfer_ns: u64,
    body: Sketch,
    plain: u64,
    chunked: u64,
    failed: Group,
    failed_ns: u64,
    failed_what: BTreeMap<String, u64>,
    abandoned: Group,
    abandoned_duration: Sketch,
    abandoned_ns: u64,
    abandoned_what: BTreeMap<String, u64>,
}

/// Waiting for the first byte, minus the time the callee spent on its own calls.
fn think_time(calls: &[Call], children: &[Vec<usize>], i: usize) -> u64 {
    let c = &calls[i];
    let (Some(from), Some(to)) = (c.request_end, c.response_start) else {
        return 0;
    };
    let mut kids: Vec<(u64, u64)> = children[i]
        .iter()
        .map(|&k| (calls[k].start, calls[k].end))
        .collect();
    to.saturating_sub(from)
        .saturating_sub(covered(from, to, &mut kids))
}

impl EndpointAcc {
    fn add(&mut self, calls: &[Call], children: &[Vec<usize>], i: usize, examples: usize) {
        let c = &calls[i];
        self.service = c.callee.to_string();
        self.calls += 1;
        if c.ttfb().is_some() && c.error_type.is_none() {
            self.answered.add(c, examples);
            self.answered_duration.add(c.duration());
            let think = think_time(calls, children, i);
            self.think.add(think);
            self.think_ns = self.think_ns.saturating_add(think);
            if let Some(t) = c.transfer() {
                self.transfer.add(t);
                self.transfer_ns = self.transfer_ns.saturating_add(t);
            }
            self.body.add(c.response_bytes);
            self.plain += u64::from(!c.response_encoded);
            self.chunked += u64::from(c.response_chunked);
        }
        if c.failed() && c.status.is_some() {
            self.failed.add(c, examples);
            self.failed_ns = self.failed_ns.saturating_add(c.duration());
            let what = match (c.status, &c.error_type) {
                (Some(s), Some(e)) => format!("{s} ({e})"),
                (Some(s), None) => s.to_string(),
                (None, _) => "?".to_string(),
            };
            *self.failed_what.entry(what).or_default() += 1;
        }
        // Answered, even with an error and no HTTP status (a database's error reply), is not
        // abandoned.
        if c.status.is_none() && c.error_type.is_some() && c.response_start.is_none() {
            self.abandoned.add(c, examples);
            self.abandoned_duration.add(c.duration());
            self.abandoned_ns = self.abandoned_ns.saturating_add(c.duration());
            let what = c.error_type.as_deref().unwrap_or("?").to_string();
            *self.abandoned_what.entry(what).or_default() += 1;
        }
    }

    fn retained(&self) -> usize {
        1 + [
            &self.answered_duration,
            &self.think,
            &self.transfer,
            &self.body,
            &self.abandoned_duration,
        ]
        .iter()
        .map(|s| s.buckets())
        .sum::<usize>()
            + self.failed_what.len()
            + self.abandoned_what.len()
    }
}

/// One endpoint's findings, from its accumulated calls.
struct Endpoint<'a> {
    name: String,
    a: &'a EndpointAcc,
    t: &'a Thresholds,
}

impl Endpoint<'_> {
    fn finding(
        &self,
        kind: FindingKind,
        title: String,
        group: &Group,
        impact_ns: u64,
        detail: String,
    ) -> Finding {
        Finding {
            kind,
            title,
            service: self.a.service.clone(),
            context: self.name.clone(),
            target: self.name.clone(),
            occurrences: group.n,
            calls: group.n,
            impact_ns,
            trace_ids: group.trace_ids.clone(),
            detail,
        }
    }

    fn median_duration(&self) -> u64 {
        self.a.answered_duration.quantile(0.5)
    }

    fn slow_first_byte(&self) -> Option<Finding> {
        let (think, duration) = (self.a.think.quantile(0.5), self.median_duration());
        if self.a.think.count() == 0
            || think < self.t.slow_think_ns
            || (think as f64) < self.t.slow_share * duration as f64
        {
            return None;
        }
        Some(self.finding(
            FindingKind::SlowFirstByte,
            format!(
                "{} thinks {} before its first byte (median)",
                self.name,
                fmt_ns(think)
            ),
            &self.a.answered,
            self.a.think_ns,
            format!(
                "server think time (first-byte wait minus its own downstream calls) is {:.0}% of \
the median call; the payload is not the problem",
                100.0 * think as f64 / duration.max(1) as f64
            ),
        ))
    }

    fn slow_transfer(&self) -> Option<Finding> {
        let (transfer, duration) = (self.a.transfer.quantile(0.5), self.median_duration());
        if transfer < self.t.slow_transfer_ns
            || (transfer as f64) < self.t.slow_share * duration as f64
        {
            return None;
        }
        let body = self.a.body.quantile(0.5);
        Some(self.finding(
            FindingKind::SlowTransfer,
            format!(
                "{} takes {} to send its response (median)",
                self.name,
                fmt_ns(transfer)
            ),
            &self.a.answered,
            self.a.transfer_ns,
            format!(
                "response transfer is {:.0}% of the median call (median body {body} bytes)",
                100.0 * transfer as f64 / duration.max(1) as f64
            ),
        ))
    }

    fn large_body(&self) -> Option<Finding> {
        let (a, answered) = (self.a, self.a.answered.n);
        let body = a.body.quantile(0.5);
        if body < self.t.large_body_bytes || a.plain * 2 <= answered {
            return None;
        }
        Some(self.finding(
            FindingKind::LargeBody,
            format!(
                "{} sends {:.0} KiB bodies without compression (median)",
                self.name,
                body as f64 / 1024.0
            ),
            &a.answered,
            a.transfer_ns,
            format!(
                "{} of {answered} responses have no Content-Encoding; {} are chunked, the rest \
sent whole with Content-Length (the caller waits for the last byte)",
                a.plain, a.chunked
            ),
        ))
    }

    fn errors(&self) -> Option<Finding> {
        let a = self.a;
        if a.failed.n == 0 {
            return None;
        }
        Some(self.finding(
            FindingKind::Errors,
            format!("{} failed {} of {} calls", self.name, a.failed.n, a.calls),
            &a.failed,
            a.failed_ns,
            tally(&a.failed_what),
        ))
    }

    fn timeouts(&self) -> Option<Finding> {
        let a = self.a;
        if a.abandoned.n == 0 {
            return None;
        }
        Some(self.finding(
            FindingKind::Timeouts,
            format!(
                "{}: {} of {} calls got no response; given up after {} (median)",
                self.name,
                a.abandoned.n,
                a.calls,
                fmt_ns(a.abandoned_duration.quantile(0.5))
            ),
            &a.abandoned,
            a.abandoned_ns,
            tally(&a.abandoned_what),
        ))
    }
}

/// Endpoint findings so far, per (service, method, route).
#[derive(Clone, Default)]
pub struct EndpointFindings {
    endpoints: BTreeMap<(Name, Name, Name), EndpointAcc>,
}

impl EndpointFindings {
    pub fn fold(&mut self, calls: &[Call], children: &[Vec<usize>], t: &Thresholds) {
        for (i, c) in calls.iter().enumerate() {
            self.endpoints
                .entry(c.endpoint_key())
                .or_default()
                .add(calls, children, i, t.examples);
        }
    }

    pub fn retained(&self) -> usize {
        self.endpoints.values().map(EndpointAcc::retained).sum()
    }

    pub fn finish(&self, t: &Thresholds) -> Vec<Finding> {
        let mut out = Vec::new();
        for ((service, method, route), a) in &self.endpoints {
            let e = Endpoint {
                name: format!("{service} {method} {route}"),
                a,
                t,
            };
            out.extend(
                [
                    e.slow_first_byte(),
                    e.slow_transfer(),
                    e.large_body(),
                    e.errors(),
                    e.timeouts(),
                ]
                .into_iter()
                .flatten(),
            );
        }
        out
    }
}
