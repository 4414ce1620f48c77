//! Per-request trees: waterfalls of sampled requests (the slowest, the failing, a typical one
//! per endpoint) with their critical path, and the calling-context tree of each endpoint
//! aggregated over all its requests. A request tree is a root call (one nobody's handling made)
//! and every call below it. Both are built one batch of whole request trees at a time, and hold
//! a bounded number of waterfalls and one node per distinct call path, whatever the number of
//! requests.

use std::collections::BTreeMap;

use serde::Serialize;

use super::calls::{Call, Name};

/// Deeper call chains are cut (a malformed JSON input could even make a cycle).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug)]
pub struct Sampling {
    pub slowest: usize,
    pub failing: usize,
    /// Endpoints (most called first) given a typical request's waterfall.
    pub typical: usize,
    /// Rows per waterfall; a bigger tree shows its first calls and says how many were left out.
    pub max_rows: usize,
    /// Calling-context trees: endpoints, and children per node.
    pub cct_endpoints: usize,
    pub cct_children: usize,
    /// Nodes in all calling-context trees together.
    pub cct_nodes: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            slowest: 10,
            failing: 10,
            typical: 10,
            max_rows: 400,
            cct_endpoints: 20,
            cct_children: 30,
            cct_nodes: 3000,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub depth: u32,
    pub caller: String,
    pub callee: String,
    pub name: String,
    pub target: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub failed: bool,
    /// Offsets from the root's start, in nanoseconds.
    pub start_ns: u64,
    pub request_end_ns: Option<u64>,
    pub response_start_ns: Option<u64>,
    pub end_ns: u64,
    pub critical: bool,
    pub exchange_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Waterfall {
    /// Why this one was picked: `slowest`, `failing` or `typical`.
    pub reason: &'static str,
    pub trace_id: String,
    pub root: String,
    pub start_unix_nano: u64,
    pub duration_ns: u64,
    pub calls: usize,
    pub rows_left_out: usize,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContextNode {
    /// `service METHOD route`.
    pub name: String,
    /// Calls at this position in the tree, over all requests of the root endpoint.
    pub count: u64,
    /// Requests of the root endpoint that reached this position.
    pub requests: u64,
    pub total_ns: u64,
    pub children: Vec<ContextNode>,
}

/// All calls below `root`, depth first in start order, with their depth.
fn descendants(root: usize, children: &[Vec<usize>]) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![(root, 0u32)];
    while let Some((i, d)) = stack.pop() {
        out.push((i, d));
        if (d as usize) < MAX_DEPTH {
            stack.extend(children[i].iter().rev().map(|&k| (k, d + 1)));
        }
    }
    out
}

/// The calls on the critical path below `root`: starting from the root's end, the child that
/// ended last before that instant is what the root waited for; then the same before that
/// child's start, and so on, recursively inside each chosen child.
///
/// The instant only moves back, so each call's children are sorted once by end and walked
/// backwards: O(k log k) for k children, where a scan of all children for each step on the
/// path cost O(k²) for a handler that made its calls one after another.
pub fn critical_path(calls: &[Call], children: &[Vec<usize>], root: usize) -> Vec<usize> {
    let mut path = Vec::new();
    let mut todo = vec![(root, 0usize)];
    while let Some((i, depth)) = todo.pop() {
        path.push(i);
        if depth >= MAX_DEPTH {
            continue;
        }
        let c = &calls[i];
        let mut cursor = c.response_start.unwrap_or(c.end);
        // Latest end first; of equal ends the earliest start, then the last listed (a stable
        // sort keeps the order `max_by_key` would have picked from).
        let mut by_end: Vec<usize> = children[i].clone();
        by_end.sort_by_key(|&k| (calls[k].end, std::cmp::Reverse(calls[k].start)));
        let mut left = by_end.len();
        loop {
            while left > 0 && calls[by_end[left - 1]].end > cursor {
                left -= 1;
            }
            let Some(&k) = left.checked_sub(1).and_then(|l| by_end.get(l)) else {
                break;
            };
            if calls[k].end <= c.start {
                break;
            }
            todo.push((k, depth + 1));
            if calls[k].start >= cursor {
                break;
            }
            cursor = calls[k].start;
        }
    }
    path
}

fn waterfall(
    calls: &[Call],
    children: &[Vec<usize>],
    root: usize,
    reason: &'static str,
    max_rows: usize,
) -> Waterfall {
    let r = &calls[root];
    let all = descendants(root, children);
    let critical: std::collections::HashSet<usize> =
        critical_path(calls, children, root).into_iter().collect();
    let offset = |t: u64| t.saturating_sub(r.start);
    let rows = all
        .iter()
        .take(max_rows)
        .map(|&(i, depth)| {
            let c = &calls[i];
            Row {
                depth,
                caller: c.caller.to_string(),
                callee: c.callee.to_string(),
                name: format!("{} {}", c.method, c.route),
                target: c.target.clone(),
                status: c.status,
                error: c.error_type.clone(),
                failed: c.failed(),
                start_ns: offset(c.start),
                request_end_ns: c.request_end.map(offset),
                response_start_ns: c.response_start.map(offset),
                end_ns: offset(c.end),
                critical: critical.contains(&i),
                exchange_id: c.exchange_id.clone(),
            }
        })
        .collect();
    Waterfall {
        reason,
        trace_id: r.trace_id.clone(),
        root: r.endpoint_name(),
        start_unix_nano: r.start,
        duration_ns: r.duration(),
        calls: all.len(),
        rows_left_out: all.len().saturating_sub(max_rows),
        rows,
    }
}

/// Orders requests as the report ranks them: longest first, then by start.
type Rank = (std::cmp::Reverse<u64>, u64, u64, String);

fn rank(c: &Call) -> Rank {
    (
        std::cmp::Reverse(c.duration()),
        c.start,
        c.end,
        c.exchange_id.clone(),
    )
}

/// Keeps the `k` best-ranked of what it is offered (ties: the first offered).
#[derive(Clone)]
struct TopK {
    k: usize,
    kept: Vec<(Rank, Waterfall)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            kept: Vec::new(),
        }
    }

    fn wants(&self, r: &Rank) -> bool {
        self.k > 0 && (self.kept.len() < self.k || self.kept.last().is_some_and(|(l, _)| r < l))
    }

    fn offer(&mut self, r: Rank, w: impl FnOnce() -> Waterfall) {
        if !self.wants(&r) {
            return;
        }
        let at = self.kept.partition_point(|(k, _)| *k <= r);
        self.kept.insert(at, (r, w()));
        self.kept.truncate(self.k);
    }
}

/// Requests per root endpoint kept as candidates for its typical waterfall.
pub const TYPICAL_CANDIDATES: usize = 5;

/// A root endpoint's requests: how many, their durations, and a sample of them.
#[derive(Clone, Default)]
struct RootEndpoint {
    requests: u64,
    durations: super::sketch::Sketch,
    /// The requests with the lowest hashes of their exchange ids: a uniform sample that does
    /// not depend on the order requests arrive in, the same in every run.
    sample: Vec<(u64, Rank, Waterfall)>,
    /// The request nearest the median so far, when it was seen: follows the median as it
    /// settles, where the sample may hold none near it.
    nearest: Option<(Rank, Waterfall)>,
}

impl RootEndpoint {
    fn offer(&mut self, c: &Call, r: &Rank, make: impl Fn() -> Waterfall) {
        self.requests += 1;
        self.durations.add(c.duration());
        let m = self.durations.quantile(0.5);
        let closer = self
            .nearest
            .as_ref()
            .is_none_or(|(n, _)| c.duration().abs_diff(m) < n.0 .0.abs_diff(m));
        if closer {
            self.nearest = Some((r.clone(), make()));
        }
        let h = crate::ids::hash64("analysis-typical", c.exchange_id.as_bytes());
        let full = self.sample.len() >= TYPICAL_CANDIDATES;
        if full && self.sample.last().is_some_and(|l| (h, r) >= (l.0, &l.1)) {
            return;
        }
        let at = self.sample.partition_point(|x| (x.0, &x.1) <= (h, r));
        self.sample.insert(at, (h, r.clone(), make()));
        self.sample.truncate(TYPICAL_CANDIDATES);
    }

    /// The request nearest the median: the median request itself when the sample holds all.
    fn typical(self) -> Option<(Rank, Waterfall)> {
        let mut sample: Vec<(Rank, Waterfall)> =
            self.sample.into_iter().map(|(_, r, w)| (r, w)).collect();
        // By duration, then start (the order the requests are ranked in otherwise).
        sample.sort_by(|a, b| a.0 .0.cmp(&b.0 .0).reverse().then(a.0.cmp(&b.0)));
        if sample.len() as u64 == self.requests {
            let median = sample.len().checked_sub(1)? / 2;
            return Some(sample.swap_remove(median));
        }
        let m = self.durations.quantile(0.5);
        sample.extend(self.nearest);
        let best = (0..sample.len()).min_by_key(|&k| sample[k].0 .0 .0.abs_diff(m))?;
        Some(sample.swap_remove(best))
    }

    fn retained(&self) -> usize {
        let rows = self
            .sample
            .iter()
            .map(|x| 1 + x.2.rows.len())
            .sum::<usize>()
            + self.nearest.as_ref().map_or(0, |x| 1 + x.1.rows.len());
        1 + self.durations.buckets() + rows
    }
}

/// Waterfalls of sampled requests, picked one batch of request trees at a time: the slowest,
/// the slowest failing ones, and per root endpoint a sample of requests from which the one
/// nearest the endpoint's median becomes its typical request. Held: at most `slowest +
/// failing` waterfalls plus [`TYPICAL_CANDIDATES`] per root endpoint.
#[derive(Clone)]
pub struct WaterfallSampler {
    s: Sampling,
    slowest: TopK,
    failing: TopK,
    roots: BTreeMap<(Name, Name, Name), RootEndpoint>,
}

impl WaterfallSampler {
    pub fn new(s: &Sampling) -> Self {
        WaterfallSampler {
            s: s.clone(),
            slowest: TopK::new(s.slowest),
            // Those among the slowest are not repeated as failing: keep enough for that.
            failing: TopK::new(s.failing.saturating_add(s.slowest)),
            roots: BTreeMap::new(),
        }
    }

    pub fn retained(&self) -> usize {
        let rows = |w: &Waterfall| 1 + w.rows.len();
        let sampled: usize = self.roots.values().map(RootEndpoint::retained).sum();
        let top: usize = self
            .slowest
            .kept
            .iter()
            .chain(&self.failing.kept)
            .map(|x| rows(&x.1))
            .sum();
        sampled + top
    }

    /// Adds a batch of whole request trees (parents resolved).
    pub fn fold(&mut self, calls: &[Call], children: &[Vec<usize>]) {
        let max_rows = self.s.max_rows;
        for (i, c) in calls.iter().enumerate().filter(|(_, c)| c.parent.is_none()) {
            let r = rank(c);
            let make = |why| waterfall(calls, children, i, why, max_rows);
            self.slowest.offer(r.clone(), || make("slowest"));
            if self.failing.wants(&r)
                && descendants(i, children)
                    .iter()
                    .any(|&(k, _)| calls[k].failed())
            {
                self.failing.offer(r.clone(), || make("failing"));
            }
            self.roots
                .entry(c.endpoint_key())
                .or_default()
                .offer(c, &r, || make("typical"));
        }
    }

    pub fn finish(self) -> Vec<Waterfall> {
        let mut picked: Vec<(Rank, Waterfall)> = self.slowest.kept;
        let failing: Vec<(Rank, Waterfall)> = self
            .failing
            .kept
            .into_iter()
            .filter(|(r, _)| !picked.iter().any(|(p, _)| p == r))
            .take(self.s.failing)
            .collect();
        picked.extend(failing);
        // Typical: per root endpoint (most requests first), the sampled request nearest its
        // median; when the sample holds every request, the median request itself.
        let mut roots: Vec<RootEndpoint> = self.roots.into_values().collect();
        roots.sort_by_key(|r| std::cmp::Reverse(r.requests));
        for (r, w) in roots
            .into_iter()
            .take(self.s.typical)
            .filter_map(RootEndpoint::typical)
        {
            if !picked.iter().any(|(p, _)| *p == r) {
                picked.push((r, w));
            }
        }
        picked.into_iter().map(|(_, w)| w).collect()
    }
}

#[derive(Clone, Default)]
struct CctAcc {
    count: u64,
    requests: u64,
    last_request: usize,
    total_ns: u64,
    children: BTreeMap<(Name, Name, Name), CctAcc>,
}

impl CctAcc {
    fn nodes(&self) -> usize {
        1 + self.children.values().map(CctAcc::nodes).sum::<usize>()
    }
}

/// The calling-context trees so far, one per root endpoint, folded one batch of request trees
/// at a time: their size grows with the distinct call paths, not with the requests.
#[derive(Clone, Default)]
pub struct ContextTrees {
    trees: BTreeMap<(Name, Name, Name), CctAcc>,
    requests: usize,
}

impl ContextTrees {
    pub fn fold(&mut self, calls: &[Call], children: &[Vec<usize>]) {
        for (root, c) in calls.iter().enumerate().filter(|(_, c)| c.parent.is_none()) {
            self.requests += 1;
            let top = self.trees.entry(c.endpoint_key()).or_default();
            add_context(calls, children, root, top, self.requests, 0);
        }
    }

    pub fn retained(&self) -> usize {
        self.trees.values().map(CctAcc::nodes).sum()
    }

    /// The calling-context tree of each root endpoint (most requests first).
    pub fn finish(self, s: &Sampling) -> Vec<ContextNode> {
        let mut roots: Vec<((Name, Name, Name), CctAcc)> = self.trees.into_iter().collect();
        roots.sort_by_key(|(_, acc)| std::cmp::Reverse(acc.count));
        roots.truncate(s.cct_endpoints);
        let mut budget = s.cct_nodes;
        roots
            .into_iter()
            .map(|(name, acc)| finish_context(name, acc, s.cct_children, &mut budget))
            .collect()
    }
}

fn add_context(
    calls: &[Call],
    children: &[Vec<usize>],
    i: usize,
    node: &mut CctAcc,
    request: usize,
    depth: usize,
) {
    node.count += 1;
    node.total_ns = node.total_ns.saturating_add(calls[i].duration());
    if node.last_request != request {
        node.last_request = request;
        node.requests += 1;
    }
    if depth >= MAX_DEPTH {
        return;
    }
    for &k in &children[i] {
        let child = node.children.entry(calls[k].endpoint_key()).or_default();
        add_context(calls, children, k, child, request, depth + 1);
    }
}

/// The tree with each node's children ordered by time (most first), at most `max_children`
/// of them, and at most `budget` nodes in all trees together (the busiest paths come first).
fn finish_context(
    (service, method, route): (Name, Name, Name),
    acc: CctAcc,
    max_children: usize,
    budget: &mut usize,
) -> ContextNode {
    *budget = budget.saturating_sub(1);
    let mut kids: Vec<((Name, Name, Name), CctAcc)> = acc.children.into_iter().collect();
    kids.sort_by_key(|(_, a)| std::cmp::Reverse(a.total_ns));
    kids.truncate(max_children.min(*budget));
    let mut children = Vec::with_capacity(kids.len());
    for (n, a) in kids {
        if *budget == 0 {
            break;
        }
        children.push(finish_context(n, a, max_children, budget));
    }
    ContextNode {
        name: format!("{service} {method} {route}"),
        count: acc.count,
        requests: acc.requests,
        total_ns: acc.total_ns,
        children,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The scan `critical_path` replaced, one level deep: at each step the child that ended
    /// last before the cursor.
    fn scanned(calls: &[Call], kids: &[usize], root: usize) -> Vec<usize> {
        let c = &calls[root];
        let mut path = vec![root];
        let mut cursor = c.response_start.unwrap_or(c.end);
        loop {
            let next = kids
                .iter()
                .copied()
                .filter(|&k| calls[k].end <= cursor && calls[k].end > c.start)
                .max_by_key(|&k| (calls[k].end, std::cmp::Reverse(calls[k].start)));
            let Some(k) = next else { break };
            path.push(k);
            if calls[k].start >= cursor {
                break;
            }
            cursor = calls[k].start;
        }
        path
    }

    #[allow(clippy::field_reassign_with_default)]
    fn call(start: u64, end: u64) -> Call {
        let mut c = Call::default();
        c.start = start;
        c.end = end;
        c
    }

    proptest! {
        #[test]
        fn critical_path_matches_the_scan(
            root_end in 1u64..100,
            kids in prop::collection::vec((0u64..100, 0u64..40), 0..40),
        ) {
            let mut calls = vec![call(0, root_end)];
            calls.extend(kids.iter().map(|&(s, len)| call(s, s + len)));
            let ids: Vec<usize> = (1..calls.len()).collect();
            let mut children = vec![Vec::new(); calls.len()];
            children[0] = ids.clone();
            // Leaves are popped from a stack: compare as the order they were found in.
            let mut fast = critical_path(&calls, &children, 0);
            fast[1..].reverse();
            prop_assert_eq!(fast, scanned(&calls, &ids, 0));
        }
    }
}
