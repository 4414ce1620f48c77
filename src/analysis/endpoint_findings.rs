//! Findings from all calls of one endpoint: slow first byte (the callee's own think time, its
//! own downstream calls excluded), slow transfer, large bodies without Content-Encoding, errors
//! (5xx, cut short), and calls abandoned without a response (timeouts).

use std::collections::BTreeMap;

use super::calls::Call;
use super::findings::{Finding, FindingKind, Thresholds};
use super::stats::covered;
use super::{fmt_ns, SaturatingSum};

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

/// `"a: 3, b: 1"` from counts.
fn tally<K: Ord + std::fmt::Display>(keys: impl Iterator<Item = K>) -> String {
    let mut counts: BTreeMap<K, u64> = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A call and its index in the call table (children are found by index).
type IndexedCall<'a> = (usize, &'a Call);

/// The calls of one endpoint, and what the findings need around them.
struct Endpoint<'a> {
    name: String,
    service: &'a str,
    calls: Vec<IndexedCall<'a>>,
    /// Calls with a whole response (the timing of the others is not comparable).
    answered: Vec<IndexedCall<'a>>,
    all: &'a [Call],
    children: &'a [Vec<usize>],
    t: &'a Thresholds,
}

impl Endpoint<'_> {
    fn finding(
        &self,
        kind: FindingKind,
        title: String,
        calls: &[&Call],
        impact_ns: u64,
        detail: String,
    ) -> Finding {
        let mut trace_ids: Vec<String> = Vec::new();
        for c in calls {
            if trace_ids.len() < self.t.examples && !trace_ids.contains(&c.trace_id) {
                trace_ids.push(c.trace_id.clone());
            }
        }
        Finding {
            kind,
            title,
            service: self.service.to_string(),
            context: self.name.clone(),
            target: self.name.clone(),
            occurrences: calls.len() as u64,
            calls: calls.len() as u64,
            impact_ns,
            trace_ids,
            detail,
        }
    }

    fn answered_calls(&self) -> Vec<&Call> {
        self.answered.iter().map(|(_, c)| *c).collect()
    }

    fn median_duration(&self) -> u64 {
        median(self.answered.iter().map(|(_, c)| c.duration()).collect())
    }

    /// Waiting for the first byte, minus the time the callee spent on its own calls.
    fn think_time(&self, i: usize, c: &Call) -> u64 {
        let (Some(from), Some(to)) = (c.request_end, c.response_start) else {
            return 0;
        };
        let mut kids: Vec<(u64, u64)> = self.children[i]
            .iter()
            .map(|&k| (self.all[k].start, self.all[k].end))
            .collect();
        to.saturating_sub(from)
            .saturating_sub(covered(from, to, &mut kids))
    }

    fn slow_first_byte(&self) -> Option<Finding> {
        let thinks: Vec<u64> = self
            .answered
            .iter()
            .map(|&(i, c)| self.think_time(i, c))
            .collect();
        let (think, duration) = (median(thinks.clone()), self.median_duration());
        if thinks.is_empty()
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
            &self.answered_calls(),
            thinks.iter().copied().saturating_sum(),
            format!(
                "server think time (first-byte wait minus its own downstream calls) is {:.0}% of \
the median call; the payload is not the problem",
                100.0 * think as f64 / duration.max(1) as f64
            ),
        ))
    }

    fn slow_transfer(&self) -> Option<Finding> {
        let transfers: Vec<u64> = self
            .answered
            .iter()
            .filter_map(|(_, c)| c.transfer())
            .collect();
        let (transfer, duration) = (median(transfers.clone()), self.median_duration());
        if transfer < self.t.slow_transfer_ns
            || (transfer as f64) < self.t.slow_share * duration as f64
        {
            return None;
        }
        let body = median(
            self.answered
                .iter()
                .map(|(_, c)| c.response_bytes)
                .collect(),
        );
        Some(self.finding(
            FindingKind::SlowTransfer,
            format!(
                "{} takes {} to send its response (median)",
                self.name,
                fmt_ns(transfer)
            ),
            &self.answered_calls(),
            transfers.iter().copied().saturating_sum(),
            format!(
                "response transfer is {:.0}% of the median call (median body {body} bytes)",
                100.0 * transfer as f64 / duration.max(1) as f64
            ),
        ))
    }

    fn large_body(&self) -> Option<Finding> {
        let answered = self.answered_calls();
        let body = median(answered.iter().map(|c| c.response_bytes).collect());
        let plain = answered.iter().filter(|c| !c.response_encoded).count();
        if body < self.t.large_body_bytes || plain * 2 <= answered.len() {
            return None;
        }
        let chunked = answered.iter().filter(|c| c.response_chunked).count();
        Some(
            self.finding(
                FindingKind::LargeBody,
                format!(
                    "{} sends {:.0} KiB bodies without compression (median)",
                    self.name,
                    body as f64 / 1024.0
                ),
                &answered,
                answered
                    .iter()
                    .filter_map(|c| c.transfer())
                    .saturating_sum(),
                format!(
                    "{plain} of {} responses have no Content-Encoding; {chunked} are chunked, the \
rest sent whole with Content-Length (the caller waits for the last byte)",
                    answered.len()
                ),
            ),
        )
    }

    fn errors(&self) -> Option<Finding> {
        let failed: Vec<&Call> = self
            .calls
            .iter()
            .map(|(_, c)| *c)
            .filter(|c| c.failed() && c.status.is_some())
            .collect();
        if failed.is_empty() {
            return None;
        }
        let what = tally(failed.iter().map(|c| match (c.status, &c.error_type) {
            (Some(s), Some(e)) => format!("{s} ({e})"),
            (Some(s), None) => s.to_string(),
            (None, _) => "?".to_string(),
        }));
        Some(self.finding(
            FindingKind::Errors,
            format!(
                "{} failed {} of {} calls",
                self.name,
                failed.len(),
                self.calls.len()
            ),
            &failed,
            failed.iter().map(|c| c.duration()).saturating_sum(),
            what,
        ))
    }

    fn timeouts(&self) -> Option<Finding> {
        let abandoned: Vec<&Call> = self
            .calls
            .iter()
            .map(|(_, c)| *c)
            // Answered, even with an error and no HTTP status (a database's error reply), is
            // not abandoned.
            .filter(|c| c.status.is_none() && c.error_type.is_some() && c.response_start.is_none())
            .collect();
        if abandoned.is_empty() {
            return None;
        }
        let given_up = median(abandoned.iter().map(|c| c.duration()).collect());
        let what = tally(
            abandoned
                .iter()
                .map(|c| c.error_type.as_deref().unwrap_or("?")),
        );
        Some(self.finding(
            FindingKind::Timeouts,
            format!(
                "{}: {} of {} calls got no response; given up after {} (median)",
                self.name,
                abandoned.len(),
                self.calls.len(),
                fmt_ns(given_up)
            ),
            &abandoned,
            abandoned.iter().map(|c| c.duration()).saturating_sum(),
            what,
        ))
    }
}

pub fn find(calls: &[Call], children: &[Vec<usize>], t: &Thresholds) -> Vec<Finding> {
    let mut by_endpoint: BTreeMap<(&str, &str, &str), Vec<IndexedCall>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        by_endpoint.entry(c.endpoint()).or_default().push((i, c));
    }
    let mut out = Vec::new();
    for ((service, method, route), these) in by_endpoint {
        let answered = these
            .iter()
            .copied()
            .filter(|(_, c)| c.ttfb().is_some() && c.error_type.is_none())
            .collect();
        let e = Endpoint {
            name: format!("{service} {method} {route}"),
            service,
            calls: these,
            answered,
            all: calls,
            children,
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
