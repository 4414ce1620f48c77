//! Performance findings: patterns in the calls that point at a fix, each with evidence (example
//! trace ids, counts) and an estimate of the time it costs (`impact_ns`, summed over the
//! capture), so that they can be ranked.
//!
//! Call patterns are found among the calls one request's handling made (its children):
//! - retries: a call repeating an earlier sibling's method and target after that one failed;
//! - repeated GETs: the same GET target fetched more than once (a cache could serve it);
//! - N+1: one downstream route called `n_plus_one_min_calls` times or more with different
//!   targets (a batch call could replace them);
//! - sequential calls: sibling calls to different endpoints, each starting only after the
//!   previous ended. Network timing cannot see data dependencies, so this says "could run in
//!   parallel if neither needs the other's result", and counts only when it would save time.
//!
//! Endpoint patterns come from all calls of one endpoint: slow first byte (the callee's own
//! think time, its own calls excluded), slow transfer, large uncompressed bodies, errors, and
//! calls abandoned without a response (timeouts).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::calls::Call;
use super::stats::covered;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

fn endpoint_name(c: &Call) -> String {
    format!("{} {} {}", c.callee, c.method, c.route)
}

fn context_name(c: &Call) -> String {
    format!("{} {} {}", c.callee, c.method, c.route)
}

#[derive(Default)]
struct Acc {
    occurrences: u64,
    calls: u64,
    impact_ns: u64,
    trace_ids: Vec<String>,
    /// Sum of a per-occurrence measure (calls per request, …) for the detail line.
    measure: u64,
    service: String,
    /// Sequential chains: how often each exact chain occurred.
    variants: BTreeMap<String, u64>,
}

impl Acc {
    fn add(&mut self, parent: &Call, calls: usize, impact: u64, examples: usize) {
        self.occurrences += 1;
        self.calls += calls as u64;
        self.impact_ns += impact;
        self.measure += calls as u64;
        if self.trace_ids.len() < examples && !self.trace_ids.contains(&parent.trace_id) {
            self.trace_ids.push(parent.trace_id.clone());
        }
        self.service = parent.callee.clone();
    }
}

type Key = (FindingKind, String, String);

pub fn find(calls: &[Call], children: &[Vec<usize>], t: &Thresholds) -> Vec<Finding> {
    let mut acc: BTreeMap<Key, Acc> = BTreeMap::new();
    for (p, kids) in children.iter().enumerate() {
        if kids.is_empty() {
            continue;
        }
        call_patterns(calls, &calls[p], kids, t, &mut acc);
    }
    let mut findings: Vec<Finding> = acc
        .into_iter()
        .map(|((kind, context, target), a)| call_finding(kind, context, target, a))
        .collect();
    findings.extend(endpoint_patterns(calls, children, t));
    findings.sort_by(|a, b| {
        b.impact_ns
            .cmp(&a.impact_ns)
            .then(a.kind.cmp(&b.kind))
            .then(a.context.cmp(&b.context))
    });
    findings
}

fn call_patterns(
    calls: &[Call],
    parent: &Call,
    kids: &[usize],
    t: &Thresholds,
    acc: &mut BTreeMap<Key, Acc>,
) {
    let ctx = context_name(parent);
    // Retries: the same method and target again after a failed attempt.
    let mut retry = vec![false; kids.len()];
    for (i, &k) in kids.iter().enumerate() {
        let c = &calls[k];
        let earlier_failure = kids[..i].iter().rev().map(|&j| &calls[j]).find(|e| {
            e.callee == c.callee && e.method == c.method && e.target == c.target && e.end <= c.start
        });
        if let Some(failed) = earlier_failure.filter(|e| e.failed()) {
            retry[i] = true;
            acc.entry((FindingKind::Retries, ctx.clone(), endpoint_name(c)))
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
    let mut by_target: HashMap<(&str, &str, &str), Vec<&Call>> = HashMap::new();
    let mut by_route: HashMap<(&str, &str, &str), Vec<&Call>> = HashMap::new();
    for c in &first_tries {
        if matches!(c.method.as_str(), "GET" | "HEAD") && !c.failed() {
            by_target
                .entry((&c.callee, &c.method, &c.target))
                .or_default()
                .push(c);
        }
        by_route
            .entry((&c.callee, &c.method, &c.route))
            .or_default()
            .push(c);
    }
    for group in by_target.values().filter(|g| g.len() >= 2) {
        let all: u64 = group.iter().map(|c| c.duration()).sum();
        let first = group[0].duration();
        acc.entry((
            FindingKind::RepeatedGet,
            ctx.clone(),
            format!(
                "{} {} {}",
                group[0].callee, group[0].method, group[0].target
            ),
        ))
        .or_default()
        .add(parent, group.len(), all - first, t.examples);
    }
    for group in by_route.values() {
        let mut targets: Vec<&str> = group.iter().map(|c| c.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        if group.len() < t.n_plus_one_min_calls || targets.len() < 2 {
            continue;
        }
        let sum: u64 = group.iter().map(|c| c.duration()).sum();
        let max = group.iter().map(|c| c.duration()).max().unwrap_or(0);
        acc.entry((FindingKind::NPlusOne, ctx.clone(), endpoint_name(group[0])))
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

fn sequential_run(
    parent: &Call,
    ctx: &str,
    run: &[&Call],
    t: &Thresholds,
    acc: &mut BTreeMap<Key, Acc>,
) {
    // Calls to one endpoint count as one unit (their own pattern is N+1 or repeated GET).
    let mut units: Vec<(String, u64)> = Vec::new();
    for c in run {
        let name = endpoint_name(c);
        match units.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d += c.duration(),
            None => units.push((name, c.duration())),
        }
    }
    if units.len() < 2 {
        return;
    }
    let sum: u64 = units.iter().map(|u| u.1).sum();
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
    let per = a.measure as f64 / a.occurrences.max(1) as f64;
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
            "one route called repeatedly with different targets: a batch call would replace \
them (saving: all but the slowest call)"
                .to_string(),
        ),
        FindingKind::RepeatedGet => (
            format!("{context} fetches {target} {per:.1} times per request"),
            "the same GET target more than once while handling one request: a cache or \
reusing the first answer would save the repeats"
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

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

fn endpoint_patterns(calls: &[Call], children: &[Vec<usize>], t: &Thresholds) -> Vec<Finding> {
    let mut by_endpoint: BTreeMap<(&str, &str, &str), Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        by_endpoint.entry(c.endpoint()).or_default().push(i);
    }
    let mut out = Vec::new();
    for ((service, method, route), idx) in by_endpoint {
        let name = format!("{service} {method} {route}");
        let examples = |filter: &dyn Fn(&Call) -> bool| -> Vec<String> {
            let mut ids: Vec<String> = Vec::new();
            for &i in &idx {
                let c = &calls[i];
                if filter(c) && !ids.contains(&c.trace_id) {
                    ids.push(c.trace_id.clone());
                    if ids.len() >= t.examples {
                        break;
                    }
                }
            }
            ids
        };
        let finding =
            |kind, title: String, calls_n: u64, impact: u64, ids, detail: String| Finding {
                kind,
                title,
                service: service.to_string(),
                context: name.clone(),
                target: name.clone(),
                occurrences: calls_n,
                calls: calls_n,
                impact_ns: impact,
                trace_ids: ids,
                detail,
            };
        let answered: Vec<&Call> = idx
            .iter()
            .map(|&i| &calls[i])
            .filter(|c| c.ttfb().is_some() && c.error_type.is_none())
            .collect();

        // Think time: waiting for the first byte, minus time the callee spent on its own calls.
        let think = |c: &Call, i: usize| -> u64 {
            let (Some(from), Some(to)) = (c.request_end, c.response_start) else {
                return 0;
            };
            let mut kids: Vec<(u64, u64)> = children[i]
                .iter()
                .map(|&k| (calls[k].start, calls[k].end))
                .collect();
            (to - from.min(to)).saturating_sub(covered(from, to, &mut kids))
        };
        let thinks: Vec<(u64, u64)> = idx
            .iter()
            .filter(|&&i| calls[i].ttfb().is_some() && calls[i].error_type.is_none())
            .map(|&i| (think(&calls[i], i), calls[i].duration()))
            .collect();
        let med_think = median(thinks.iter().map(|x| x.0).collect());
        let med_dur = median(answered.iter().map(|c| c.duration()).collect());
        if !thinks.is_empty()
            && med_think >= t.slow_think_ns
            && med_think as f64 >= t.slow_share * med_dur as f64
        {
            let total: u64 = thinks.iter().map(|x| x.0).sum();
            out.push(finding(
                FindingKind::SlowFirstByte,
                format!(
                    "{name} thinks {:.1} ms before its first byte (median)",
                    med_think as f64 / 1e6
                ),
                thinks.len() as u64,
                total,
                examples(&|c: &Call| c.ttfb().is_some()),
                format!(
                    "server think time (first-byte wait minus its own downstream calls) is {:.0}% \
of the median call; the payload is not the problem",
                    100.0 * med_think as f64 / med_dur.max(1) as f64
                ),
            ));
        }

        let transfers: Vec<u64> = answered.iter().filter_map(|c| c.transfer()).collect();
        let med_transfer = median(transfers.clone());
        if med_transfer >= t.slow_transfer_ns
            && med_transfer as f64 >= t.slow_share * med_dur as f64
        {
            out.push(finding(
                FindingKind::SlowTransfer,
                format!(
                    "{name} takes {:.1} ms to send its response (median)",
                    med_transfer as f64 / 1e6
                ),
                transfers.len() as u64,
                transfers.iter().sum(),
                examples(&|c: &Call| c.transfer().is_some()),
                format!(
                    "response transfer is {:.0}% of the median call (median body {} bytes)",
                    100.0 * med_transfer as f64 / med_dur.max(1) as f64,
                    median(answered.iter().map(|c| c.response_bytes).collect())
                ),
            ));
        }

        let med_body = median(answered.iter().map(|c| c.response_bytes).collect());
        let plain = answered.iter().filter(|c| !c.response_encoded).count();
        if med_body >= t.large_body_bytes && plain * 2 > answered.len() {
            let chunked = answered.iter().filter(|c| c.response_chunked).count();
            out.push(finding(
                FindingKind::LargeBody,
                format!(
                    "{name} sends {:.0} KiB bodies without compression (median)",
                    med_body as f64 / 1024.0
                ),
                answered.len() as u64,
                answered.iter().filter_map(|c| c.transfer()).sum(),
                examples(&|c: &Call| c.response_bytes >= t.large_body_bytes),
                format!(
                    "{plain} of {} responses have no Content-Encoding; {chunked} are chunked, the \
rest sent whole with Content-Length (the caller waits for the last byte)",
                    answered.len()
                ),
            ));
        }

        let abandoned: Vec<&Call> = idx
            .iter()
            .map(|&i| &calls[i])
            .filter(|c| c.status.is_none() && c.error_type.is_some())
            .collect();
        let failed: Vec<&Call> = idx
            .iter()
            .map(|&i| &calls[i])
            .filter(|c| c.failed() && c.status.is_some())
            .collect();
        if !failed.is_empty() {
            let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
            for c in &failed {
                let key = match (c.status, &c.error_type) {
                    (Some(s), None) => s.to_string(),
                    (Some(s), Some(e)) => format!("{s} ({e})"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "?".into(),
                };
                *by_status.entry(key).or_default() += 1;
            }
            let what = by_status
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(finding(
                FindingKind::Errors,
                format!("{name} failed {} of {} calls", failed.len(), idx.len()),
                failed.len() as u64,
                failed.iter().map(|c| c.duration()).sum(),
                examples(&|c: &Call| c.failed() && c.status.is_some()),
                what,
            ));
        }
        if !abandoned.is_empty() {
            let med = median(abandoned.iter().map(|c| c.duration()).collect());
            let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
            for c in &abandoned {
                *reasons
                    .entry(c.error_type.as_deref().unwrap_or("?"))
                    .or_default() += 1;
            }
            let what = reasons
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(finding(
                FindingKind::Timeouts,
                format!(
                    "{name}: {} of {} calls got no response; given up after {:.1} ms (median)",
                    abandoned.len(),
                    idx.len(),
                    med as f64 / 1e6
                ),
                abandoned.len() as u64,
                abandoned.iter().map(|c| c.duration()).sum(),
                examples(&|c: &Call| c.status.is_none() && c.error_type.is_some()),
                what,
            ));
        }
    }
    out
}
