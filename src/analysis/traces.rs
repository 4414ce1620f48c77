//! Per-request trees: waterfalls of sampled requests (the slowest, the failing, a typical one
//! per endpoint) with their critical path, and the calling-context tree of each endpoint
//! aggregated over all its requests. A request tree is a root call (one nobody's handling made)
//! and every call below it.

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

/// Root calls, with whether anything in their tree failed.
fn roots(calls: &[Call], children: &[Vec<usize>]) -> Vec<(usize, bool)> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.parent.is_none())
        .map(|(i, _)| {
            let failed = descendants(i, children)
                .iter()
                .any(|&(k, _)| calls[k].failed());
            (i, failed)
        })
        .collect()
}

pub fn sample_waterfalls(calls: &[Call], children: &[Vec<usize>], s: &Sampling) -> Vec<Waterfall> {
    let roots = roots(calls, children);
    let mut picked: Vec<(usize, &'static str)> = Vec::new();
    let mut by_duration: Vec<&(usize, bool)> = roots.iter().collect();
    by_duration.sort_by_key(|(i, _)| std::cmp::Reverse(calls[*i].duration()));
    for (i, _) in by_duration.iter().take(s.slowest) {
        picked.push((*i, "slowest"));
    }
    let failing: Vec<usize> = by_duration
        .iter()
        .filter(|(i, failed)| *failed && !picked.iter().any(|(p, _)| p == i))
        .map(|(i, _)| *i)
        .take(s.failing)
        .collect();
    picked.extend(failing.into_iter().map(|i| (i, "failing")));
    // Typical: per root endpoint (most requests first), the request nearest its median.
    let mut by_endpoint: BTreeMap<(&str, &str, &str), Vec<usize>> = BTreeMap::new();
    for (i, _) in &roots {
        by_endpoint
            .entry(calls[*i].endpoint())
            .or_default()
            .push(*i);
    }
    let mut endpoints: Vec<Vec<usize>> = by_endpoint.into_values().collect();
    endpoints.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for mut group in endpoints.into_iter().take(s.typical) {
        group.sort_by_key(|&i| calls[i].duration());
        let median = group[(group.len() - 1) / 2];
        if !picked.iter().any(|(p, _)| *p == median) {
            picked.push((median, "typical"));
        }
    }
    picked
        .into_iter()
        .map(|(i, why)| waterfall(calls, children, i, why, s.max_rows))
        .collect()
}

#[derive(Default)]
struct CctAcc {
    count: u64,
    requests: u64,
    last_request: usize,
    total_ns: u64,
    children: BTreeMap<(Name, Name, Name), CctAcc>,
}

/// The calling-context tree of each root endpoint (most requests first).
pub fn calling_contexts(calls: &[Call], children: &[Vec<usize>], s: &Sampling) -> Vec<ContextNode> {
    let mut trees: BTreeMap<(Name, Name, Name), CctAcc> = BTreeMap::new();
    for (n, (root, c)) in calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.parent.is_none())
        .enumerate()
    {
        let top = trees.entry(c.endpoint_key()).or_default();
        add_context(calls, children, root, top, n + 1, 0);
    }
    let mut roots: Vec<((Name, Name, Name), CctAcc)> = trees.into_iter().collect();
    roots.sort_by_key(|(_, acc)| std::cmp::Reverse(acc.count));
    roots.truncate(s.cct_endpoints);
    let mut budget = s.cct_nodes;
    roots
        .into_iter()
        .map(|(name, acc)| finish_context(name, acc, s.cct_children, &mut budget))
        .collect()
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
