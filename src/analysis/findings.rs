//! Performance findings: patterns in the calls that point at a fix, each with evidence (example
//! trace ids, counts) and an estimate of the time it costs (`impact_ns`, summed over the
//! capture), so that they can be ranked.
//!
//! Call patterns are found among the calls one request's handling made (its children):
//! - retries: a call repeating an earlier sibling's method and target after that one failed;
//! - repeated GETs: the same GET target fetched more than once (a cache could serve it): the
//!   same URL, or a Redis GET of the same key; one finding per endpoint (route or key
//!   template), whatever the URLs or keys;
//! - N+1: one downstream route called `n_plus_one_min_calls` times or more with different
//!   targets (a batch call could replace them): different URLs, or one SQL statement template
//!   (or Redis command and key template) with different parameters (keys).
//!
//! "The same" is [`Call::request_identity`]: for a database call, its template and the keyed
//! hash of its arguments, which only a capture read in this process has (JSON lines carry no
//! such hash): a database call without one takes part in neither pattern, nor in retries.
//! - sequential calls: sibling calls to different endpoints, each starting only after the
//!   previous ended. Network timing cannot see data dependencies, so this says "could run in
//!   parallel if neither needs the other's result", and counts only when it would save time.
//!
//! Endpoint patterns (slow first byte, slow transfer, large bodies, errors, timeouts) are in
//! `endpoint_findings`.
//!
//! A sequential chain's variants are counted per distinct chain of endpoints, so their number
//! is bounded by the handlers' call structure, not by the number of requests.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::calls::Call;
use super::SaturatingSum;

#[derive(Clone, Debug)]
pub struct Thresholds {
    pub n_plus_one_min_calls: usize,
    /// A sequential chain is reported when running it in parallel would save at least this.
    pub sequential_min_saving_ns: u64,
    /// Median think time (first byte wait minus the callee's own calls) at least this…
    pub slow_think_ns: u64,
    /// …and at least this share of the median call.
    pub slow_share: f64,
    pub slow_transfer_ns: u64,
    /// Median response body at least this, without Content-Encoding.
    pub large_body_bytes: u64,
    /// Example trace ids kept per finding.
    pub examples: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            n_plus_one_min_calls: 3,
            sequential_min_saving_ns: 1_000_000,
            slow_think_ns: 50_000_000,
            slow_share: 0.5,
            slow_transfer_ns: 20_000_000,
            large_body_bytes: 256 * 1024,
            examples: 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    NPlusOne,
    SequentialCalls,
    RepeatedGet,
    Retries,
    SlowFirstByte,
    SlowTransfer,
    LargeBody,
    Errors,
    Timeouts,
}

impl FindingKind {
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::NPlusOne => "N+1 calls",
            FindingKind::SequentialCalls => "sequential calls",
            FindingKind::RepeatedGet => "repeated identical GET",
            FindingKind::Retries => "retries",
            FindingKind::SlowFirstByte => "slow first byte",
            FindingKind::SlowTransfer => "slow transfer",
            FindingKind::LargeBody => "large uncompressed body",
            FindingKind::Errors => "errors",
            FindingKind::Timeouts => "timeouts",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// One sentence saying what and where.
    pub title: String,
    /// Where the fix belongs: the calling service for call patterns, the callee otherwise.
    pub service: String,
    /// The request whose handling shows the pattern (call patterns), or the endpoint.
    pub context: String,
    /// The downstream endpoint(s) involved.
    pub target: String,
    /// Requests (call patterns) or calls (endpoint patterns) showing it.
    pub occurrences: u64,
    /// Calls involved in all.
    pub calls: u64,
    /// Estimated time that a fix would save, summed over the capture.
    pub impact_ns: u64,
    pub trace_ids: Vec<String>,
    pub detail: String,
}

#[derive(Clone, Default)]
struct Acc {
    occurrences: u64,
    calls: u64,
    impact_ns: u64,
    trace_ids: Vec<String>,
    service: String,
    /// Sequential chains: how often each exact chain occurred.
    variants: BTreeMap<String, u64>,
}

impl Acc {
    fn add(&mut self, parent: &Call, calls: usize, impact: u64, examples: usize) {
        self.occurrences += 1;
        self.calls += calls as u64;
        self.impact_ns = self.impact_ns.saturating_add(impact);
        if self.trace_ids.len() < examples && !self.trace_ids.contains(&parent.trace_id) {
            self.trace_ids.push(parent.trace_id.clone());
        }
        self.service = parent.callee.to_string();
    }
}

type Key = (FindingKind, String, String);

/// Findings so far, folded one batch of calls at a time: counters per (kind, context,
/// target) and per endpoint, whose number grows with the endpoints, not the calls.
#[derive(Clone, Default)]
pub struct FindingsAcc {
    calls: BTreeMap<Key, Acc>,
    endpoints: super::endpoint_findings::EndpointFindings,
}

impl FindingsAcc {
    /// Adds a batch of whole request trees (parents resolved).
    pub fn fold(&mut self, calls: &[Call], children: &[Vec<usize>], t: &Thresholds) {
        for (p, kids) in children.iter().enumerate() {
            if kids.is_empty() {
                continue;
            }
            call_patterns(calls, &calls[p], kids, t, &mut self.calls);
        }
        self.endpoints.fold(calls, children, t);
    }

    pub fn retained(&self) -> usize {
        let calls: usize = self
            .calls
            .values()
            .map(|a| 1 + a.trace_ids.len() + a.variants.len())
            .sum();
        calls + self.endpoints.retained()
    }

    /// All findings, the most costly first.
    pub fn finish(self, t: &Thresholds) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self
            .calls
            .into_iter()
            .map(|((kind, context, target), a)| call_finding(kind, context, target, a))
            .collect();
        findings.extend(self.endpoints.finish(t));
        findings.sort_by(|a, b| {
            b.impact_ns
                .cmp(&a.impact_ns)
                .then(a.kind.cmp(&b.kind))
                .then(a.context.cmp(&b.context))
        });
        findings
    }
}

fn call_patterns(
    calls: &[Call],
    parent: &Call,
    kids: &[usize],
    t: &Thresholds,
    acc: &mut BTreeMap<Key, Acc>,
) {
    let ctx = parent.endpoint_name();
    // Retries: the same method and target again after a failed attempt.
    let mut retry = vec![false; kids.len()];
    for (i, (&k, earlier)) in kids.iter().zip(earlier_attempts(calls, kids)).enumerate() {
        let c = &calls[k];
        if let Some(failed) = earlier.map(|j| &calls[j]).filter(|e| e.failed()) {
            retry[i] = true;
            acc.entry((FindingKind::Retries, ctx.clone(), c.endpoint_name()))
                .or_default()
                .add(parent, 1, failed.duration(), t.examples);
        }
    }
    let first_tries: Vec<&Call> = kids
        .iter()
        .zip(&retry)
        .filter(|(_, r)| !**r)
        .map(|(&k, _)| &calls[k])
        .collect();

    // Repeated identical GETs, and N+1 (one route, several targets).
    type Endpoint<'c> = (&'c str, &'c str, &'c str);
    let mut by_target: HashMap<(&str, &str, Identity<'_>), Vec<&Call>> = HashMap::new();
    let mut by_route: HashMap<Endpoint<'_>, Vec<&Call>> = HashMap::new();
    for c in &first_tries {
        let identity = c.request_identity();
        if let (true, Some(id)) = (
            matches!(&*c.method, "GET" | "HEAD") && !c.failed(),
            identity,
        ) {
            by_target
                .entry((&c.callee, &c.method, id))
                .or_default()
                .push(c);
        }
        by_route
            .entry((&c.callee, &c.method, &c.route))
            .or_default()
            .push(c);
    }
    for group in by_target.values().filter(|g| g.len() >= 2) {
        let all = group.iter().map(|c| c.duration()).saturating_sum();
        let first = group[0].duration();
        // Named by the endpoint, not the URL or key: one finding per pattern in the handler's
        // code, however many different ids it fetched twice.
        acc.entry((
            FindingKind::RepeatedGet,
            ctx.clone(),
            group[0].endpoint_name(),
        ))
        .or_default()
        .add(parent, group.len(), all - first, t.examples);
    }
    for group in by_route.values() {
        // Calls whose arguments are unknown (`None`) cannot be told apart: they do not count.
        let mut targets: Vec<Identity<'_>> =
            group.iter().filter_map(|c| c.request_identity()).collect();
        targets.sort_unstable();
        targets.dedup();
        if group.len() < t.n_plus_one_min_calls || targets.len() < 2 {
            continue;
        }
        let sum = group.iter().map(|c| c.duration()).saturating_sum();
        let max = group.iter().map(|c| c.duration()).max().unwrap_or(0);
        acc.entry((FindingKind::NPlusOne, ctx.clone(), group[0].endpoint_name()))
            .or_default()
            .add(parent, group.len(), sum - max, t.examples);
    }

    // Sequential chains: runs of siblings each starting after all earlier ones ended.
    let mut run: Vec<&Call> = Vec::new();
    let mut run_end = 0;
    for c in first_tries.iter().copied() {
        if !run.is_empty() && c.start < run_end {
            // c runs alongside the run's latest call: the run was sequential up to here.
            sequential_run(parent, &ctx, &run, t, acc);
            run.clear();
        }
        run_end = if run.is_empty() {
            c.end
        } else {
            run_end.max(c.end)
        };
        run.push(c);
    }
    sequential_run(parent, &ctx, &run, t, acc);
}

/// What a repeated call repeats: [`Call::request_identity`].
type Identity<'c> = (&'c str, &'c str, u64);

/// For each of `kids` (in start order), the latest earlier sibling with the same callee, method
/// and target (HTTP) or arguments (a database call) that had ended by the time it started: the attempt it may retry. Each key keeps
/// its siblings still running in a heap by end time; as starts only grow, a sibling that has
/// ended stays ended, so each is pushed and popped once: O(k log k) for k siblings, where a
/// backward scan from each sibling cost O(k²) for a handler making many distinct calls.
fn earlier_attempts(calls: &[Call], kids: &[usize]) -> Vec<Option<usize>> {
    type Key<'a> = (&'a str, &'a str, Identity<'a>);
    #[derive(Default)]
    struct Siblings {
        running: BinaryHeap<Reverse<(u64, usize)>>,
        latest_ended: Option<usize>,
    }
    let mut by_key: HashMap<Key<'_>, Siblings> = HashMap::new();
    kids.iter()
        .map(|&k| {
            let c = &calls[k];
            // A call whose arguments are unknown is no one's retry.
            let identity = c.request_identity()?;
            let s = by_key.entry((&c.callee, &c.method, identity)).or_default();
            while let Some(&Reverse((end, j))) = s.running.peek() {
                if end > c.start {
                    break;
                }
                s.running.pop();
                s.latest_ended = s.latest_ended.max(Some(j));
            }
            let earlier = s.latest_ended;
            s.running.push(Reverse((c.end, k)));
            earlier
        })
        .collect()
}

fn sequential_run(
    parent: &Call,
    ctx: &str,
    run: &[&Call],
    t: &Thresholds,
    acc: &mut BTreeMap<Key, Acc>,
) {
    // Calls to one endpoint count as one unit (their own pattern is N+1 or repeated GET), in
    // the order of their first call; found by name, not by a scan of the units so far.
    let mut units: Vec<(String, u64)> = Vec::new();
    let mut unit_of: HashMap<String, usize> = HashMap::new();
    for c in run {
        let name = c.endpoint_name();
        match unit_of.get(&name) {
            Some(&u) => units[u].1 = units[u].1.saturating_add(c.duration()),
            None => {
                unit_of.insert(name.clone(), units.len());
                units.push((name, c.duration()));
            }
        }
    }
    if units.len() < 2 {
        return;
    }
    let sum = units.iter().map(|u| u.1).saturating_sum();
    let max = units.iter().map(|u| u.1).max().unwrap_or(0);
    if sum - max < t.sequential_min_saving_ns {
        return;
    }
    let chain = units
        .iter()
        .map(|u| u.0.as_str())
        .collect::<Vec<_>>()
        .join(" → ");
    let a = acc
        .entry((FindingKind::SequentialCalls, ctx.to_string(), String::new()))
        .or_default();
    a.add(parent, run.len(), sum - max, t.examples);
    *a.variants.entry(chain).or_default() += 1;
}

fn call_finding(kind: FindingKind, context: String, target: String, a: Acc) -> Finding {
    let per = a.calls as f64 / a.occurrences.max(1) as f64;
    // A sequential finding names its most frequent chain.
    let target = match a
        .variants
        .iter()
        .max_by_key(|(chain, n)| (**n, std::cmp::Reverse(*chain)))
    {
        Some((chain, _)) => chain.clone(),
        None => target,
    };
    let (title, detail) = match kind {
        FindingKind::NPlusOne => (
            format!("{context} calls {target} {per:.1} times per request"),
            "one route or statement template called repeatedly with different targets or \
parameters: a batch call or a join would replace them (saving: all but the slowest call)"
                .to_string(),
        ),
        FindingKind::RepeatedGet => (
            format!("{context} fetches the same {target} {per:.1} times per request"),
            "the same GET (URL, or Redis key) more than once while handling one request: a \
cache or reusing the first answer would save the repeats"
                .to_string(),
        ),
        FindingKind::Retries => (
            format!("{context} retries {target} after failures"),
            "a call repeated after its first attempt failed (5xx or no response); the failed \
attempts' time is the cost"
                .to_string(),
        ),
        FindingKind::SequentialCalls => (
            format!("{context} makes {per:.1} calls one after another: {target}"),
            format!(
                "each starts only after the previous one ended; if none needs another's result, \
running them in parallel saves all but the longest ({} distinct chains seen)",
                a.variants.len()
            ),
        ),
        _ => (context.clone(), String::new()),
    };
    Finding {
        kind,
        title,
        service: a.service,
        context,
        target,
        occurrences: a.occurrences,
        calls: a.calls,
        impact_ns: a.impact_ns,
        trace_ids: a.trace_ids,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // `Call` has private fields: build one from the default.
    #[allow(clippy::field_reassign_with_default)]
    fn call(callee: u8, target: u8, start: u64, end: u64) -> Call {
        let mut c = Call::default();
        c.callee = format!("s{callee}").into();
        c.method = "GET".into();
        c.target = format!("/t{target}");
        c.start = start;
        c.end = end;
        c
    }

    /// A database call under `parent` (index 0): `route` stands for its statement or key
    /// template, `args` for the keyed hash of its values.
    #[allow(clippy::field_reassign_with_default)]
    fn db_call(method: &str, route: &str, args: Option<u64>, start: u64) -> Call {
        let mut c = Call::default();
        c.callee = "db".into();
        c.method = method.into();
        c.route = route.into();
        c.target = "-".into();
        c.args_hash = args;
        c.start = start;
        c.end = start + 10;
        c.parent = Some(0);
        c
    }

    /// The (kind, target, calls) of the call patterns found in one request making `kids`.
    fn patterns(kids: Vec<Call>) -> Vec<(FindingKind, String, u64)> {
        let mut parent = call(9, 0, 0, 1000);
        parent.route = "/orders/{id}".into();
        parent.trace_id = "t".into();
        let calls: Vec<Call> = std::iter::once(parent).chain(kids).collect();
        let mut acc = FindingsAcc::default();
        acc.fold(
            &calls,
            &super::super::calls::children(&calls),
            &Thresholds::default(),
        );
        acc.finish(&Thresholds::default())
            .into_iter()
            .filter(|f| f.kind != FindingKind::SequentialCalls)
            .map(|f| (f.kind, f.target, f.calls))
            .collect()
    }

    #[test]
    fn one_statement_with_different_values_is_an_n_plus_one() {
        let q = "SELECT name FROM products WHERE sku = $1";
        let kids = (0..4)
            .map(|i| db_call("SELECT", q, Some(i), i * 20))
            .collect();
        let want = format!("db SELECT {q}");
        assert_eq!(patterns(kids), [(FindingKind::NPlusOne, want, 4)]);
    }

    #[test]
    fn the_same_key_fetched_again_is_a_repeated_get_not_an_n_plus_one() {
        let kids = (0..3)
            .map(|i| db_call("GET", "GET flags:{id}", Some(7), i * 20))
            .collect();
        let want = "db GET GET flags:{id}".to_string();
        assert_eq!(patterns(kids), [(FindingKind::RepeatedGet, want, 3)]);
    }

    #[test]
    fn different_keys_or_unknown_values_are_no_pattern() {
        // Two keys of one template: neither repeated nor enough for an N+1.
        let two = vec![
            db_call("GET", "GET profile:{id}", Some(1), 0),
            db_call("GET", "GET profile:{id}", Some(2), 20),
        ];
        assert_eq!(patterns(two), []);
        // Values unknown (spans read from JSON lines): never guessed to be the same.
        let unknown = (0..4)
            .map(|i| db_call("GET", "GET profile:{id}", None, i * 20))
            .collect();
        assert_eq!(patterns(unknown), []);
    }

    proptest! {
        /// Against the backward scan it replaced: the latest earlier sibling with the same key
        /// that ended before the call started.
        #[test]
        fn earlier_attempts_match_the_scan(
            spec in prop::collection::vec((0u64..50, 0u64..30, 0u8..3, 0u8..2), 0..60),
        ) {
            let mut calls: Vec<Call> = spec
                .iter()
                .map(|&(start, len, target, callee)| call(callee, target, start, start + len))
                .collect();
            calls.sort_by_key(|c| (c.start, c.end));
            let kids: Vec<usize> = (0..calls.len()).collect();
            let scan: Vec<Option<usize>> = kids
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let c = &calls[k];
                    kids[..i].iter().rev().copied().find(|&j| {
                        let e = &calls[j];
                        e.callee == c.callee
                            && e.method == c.method
                            && e.target == c.target
                            && e.end <= c.start
                    })
                })
                .collect();
            prop_assert_eq!(earlier_attempts(&calls, &kids), scan);
        }
    }
}
