//! Aggregates over all calls: per endpoint (service, method, route), per edge (caller → callee)
//! and per service. Percentiles are nearest-rank order statistics of the calls' own durations,
//! read from a fixed-size [`Sketch`] per endpoint and edge: within 1 % of the exact value
//! ([`super::sketch::RELATIVE_ERROR`]), the maximum and the mean exact, and a few kilobytes
//! per endpoint whatever the number of calls.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::calls::{Call, Name};
use super::sketch::Sketch;

/// Log-scale latency buckets: 5 per decade from 10 µs to 100 s (the last bucket holds the rest).
pub const BUCKETS_PER_DECADE: u32 = 5;
pub const BUCKET_FLOOR_NS: u64 = 10_000;
pub const BUCKETS: usize = 36;

pub fn bucket_of(ns: u64) -> usize {
    if ns <= BUCKET_FLOOR_NS {
        return 0;
    }
    let decades = (ns as f64 / BUCKET_FLOOR_NS as f64).log10();
    ((decades * BUCKETS_PER_DECADE as f64) as usize).min(BUCKETS - 1)
}

/// Lower bound of bucket `i`, in nanoseconds.
pub fn bucket_floor(i: usize) -> u64 {
    (BUCKET_FLOOR_NS as f64 * 10f64.powf(i as f64 / BUCKETS_PER_DECADE as f64)) as u64
}

/// Latency percentiles, in nanoseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p75: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: u64,
}

impl Percentiles {
    /// Exact nearest-rank percentiles: the smallest value with at least q of all values at or
    /// below.
    pub fn of(values: &mut [u64]) -> Self {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_unstable();
        let n = values.len();
        let q = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Percentiles {
            p50: q(0.50),
            p75: q(0.75),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: values[n - 1],
            mean: (values.iter().map(|&v| u128::from(v)).sum::<u128>() / n as u128) as u64,
        }
    }
}

#[derive(Clone)]
struct EndpointAcc {
    errors: u64,
    latency: Sketch,
    ttfb: Sketch,
    buckets: [u64; BUCKETS],
    request_bytes: u64,
    response_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub service: String,
    pub method: String,
    pub route: String,
    pub count: u64,
    /// Server spans with status error (5xx, or cut short).
    pub errors: u64,
    pub latency_ns: Percentiles,
    /// Of the calls that got a response.
    pub ttfb_ns: Option<Percentiles>,
    /// Counts per log-scale bucket (see `bucket_floor`).
    pub histogram: Vec<u64>,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Calls from one service to another.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    pub caller: String,
    pub callee: String,
    pub count: u64,
    pub per_second: f64,
    /// Responses by status class, and calls with no complete response.
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Answers without an HTTP status (Redis, PostgreSQL, DNS, TLS): those that report no
    /// error, and those that do (an error reply, a SQLSTATE, an rcode, an alert).
    pub answered: u64,
    pub failed: u64,
    pub no_response: u64,
    pub error_rate: f64,
    pub latency_ns: Percentiles,
}

/// A service, by the calls it served.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceNode {
    pub name: String,
    pub served: u64,
    pub made: u64,
    /// Time serving requests, summed.
    pub busy_ns: u64,
    /// Of that, time with at least one of its own calls outstanding.
    pub waiting_ns: u64,
    /// `busy_ns - waiting_ns`: its own work (and the network).
    pub self_ns: u64,
    /// Call depth from the nearest root (0 for a service that only calls), for layout.
    pub depth: u32,
    /// For the node standing for the least busy services: how many it stands for.
    pub folded: u64,
}

pub struct Aggregates {
    pub endpoints: Vec<Endpoint>,
    pub endpoints_left_out: u64,
    pub edges: Vec<Edge>,
    pub services: Vec<ServiceNode>,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Time inside `[start, end)` covered by at least one of `intervals`.
pub fn covered(start: u64, end: u64, intervals: &mut [(u64, u64)]) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut cursor) = (0, start);
    for &(s, e) in intervals.iter() {
        let (s, e) = (s.max(cursor), e.min(end));
        if e > s {
            total += e - s;
            cursor = e;
        }
    }
    total
}

/// The map shows this many services (most calls served and made); the rest become one node.
pub const MAP_SERVICES: usize = 40;
/// Endpoints kept (most called); the rest are counted.
pub const MAX_ENDPOINTS: usize = 1000;
/// Name of the node that stands for the services beyond [`MAP_SERVICES`].
pub const OTHER_SERVICES: &str = "(other services)";

/// Map names: the busiest services keep theirs, the rest fold into [`OTHER_SERVICES`] (a
/// mirror port sees thousands of client addresses; a map of them all says nothing).
fn map_names(edges: &BTreeMap<(Name, Name), EdgeAcc>) -> HashMap<Name, Name> {
    let mut activity: HashMap<&Name, u64> = HashMap::new();
    for ((caller, callee), e) in edges {
        *activity.entry(caller).or_default() += e.edge.count;
        *activity.entry(callee).or_default() += e.edge.count;
    }
    let mut ranked: Vec<(&Name, u64)> = activity.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let fold = ranked.len() > MAP_SERVICES;
    let other: Name = OTHER_SERVICES.into();
    ranked
        .iter()
        .enumerate()
        .map(|(i, &(name, _))| {
            let shown = !fold || i < MAP_SERVICES - 1;
            (
                name.clone(),
                if shown { name.clone() } else { other.clone() },
            )
        })
        .collect()
}

/// Calls on one edge, by the services' own names (folded into the map's names at the end).
#[derive(Clone)]
struct EdgeAcc {
    edge: Edge,
    latency: Sketch,
}

/// The aggregates so far, folded one batch of calls at a time: their size grows with the
/// endpoints and services, not with the calls.
#[derive(Clone, Default)]
pub struct StatsAcc {
    endpoints: BTreeMap<(Name, Name, Name), EndpointAcc>,
    edges: BTreeMap<(Name, Name), EdgeAcc>,
    services: BTreeMap<Name, ServiceNode>,
    first_ns: Option<u64>,
    last_ns: u64,
}

fn new_edge(caller: &str, callee: &str) -> Edge {
    Edge {
        caller: caller.to_string(),
        callee: callee.to_string(),
        count: 0,
        per_second: 0.0,
        status_2xx: 0,
        status_3xx: 0,
        status_4xx: 0,
        status_5xx: 0,
        answered: 0,
        failed: 0,
        no_response: 0,
        error_rate: 0.0,
        latency_ns: Percentiles::default(),
    }
}

impl StatsAcc {
    /// Sketch buckets and records held: the accumulators' memory, in units of a few words.
    pub fn retained(&self) -> usize {
        let endpoints: usize = self
            .endpoints
            .values()
            .map(|e| 1 + e.latency.buckets() + e.ttfb.buckets())
            .sum();
        let edges: usize = self.edges.values().map(|e| 1 + e.latency.buckets()).sum();
        endpoints + edges + self.services.len()
    }

    /// Adds a batch of calls (parents resolved, `children` from [`super::calls::children`]).
    pub fn fold(&mut self, calls: &[Call], children: &[Vec<usize>]) {
        for (i, c) in calls.iter().enumerate() {
            self.first_ns = Some(self.first_ns.map_or(c.start, |f| f.min(c.start)));
            self.last_ns = self.last_ns.max(c.end);
            let d = c.duration().max(1);
            let e = self
                .endpoints
                .entry(c.endpoint_key())
                .or_insert_with(|| EndpointAcc {
                    errors: 0,
                    latency: Sketch::default(),
                    ttfb: Sketch::default(),
                    buckets: [0; BUCKETS],
                    request_bytes: 0,
                    response_bytes: 0,
                });
            e.errors += u64::from(c.server_error);
            e.latency.add(d);
            if let Some(t) = c.ttfb() {
                e.ttfb.add(t);
            }
            e.buckets[bucket_of(d)] += 1;
            e.request_bytes = e.request_bytes.saturating_add(c.request_bytes);
            e.response_bytes = e.response_bytes.saturating_add(c.response_bytes);

            let acc = self
                .edges
                .entry((c.caller.clone(), c.callee.clone()))
                .or_insert_with(|| EdgeAcc {
                    edge: new_edge(&c.caller, &c.callee),
                    latency: Sketch::default(),
                });
            let edge = &mut acc.edge;
            edge.count += 1;
            match (c.status, &c.error_type) {
                (Some(s), None) if s < 300 => edge.status_2xx += 1,
                (Some(s), None) if s < 400 => edge.status_3xx += 1,
                (Some(s), None) if s < 500 => edge.status_4xx += 1,
                (Some(_), None) => edge.status_5xx += 1,
                (None, None) if c.response_start.is_some() => edge.answered += 1,
                (None, Some(_)) if c.response_start.is_some() => edge.failed += 1,
                // No answer, or an HTTP answer cut short (a status and an error).
                _ => edge.no_response += 1,
            }
            acc.latency.add(d);

            service(&mut self.services, &c.caller).made += 1;
            let mut kids: Vec<(u64, u64)> = children[i]
                .iter()
                .map(|&k| (calls[k].start, calls[k].end))
                .collect();
            let waiting = covered(c.start, c.end, &mut kids);
            let s = service(&mut self.services, &c.callee);
            s.served += 1;
            s.busy_ns = s.busy_ns.saturating_add(d);
            s.waiting_ns = s.waiting_ns.saturating_add(waiting);
            s.self_ns = s.self_ns.saturating_add(d.saturating_sub(waiting));
        }
    }

    pub fn finish(self) -> Aggregates {
        let (first_ns, last_ns) = (self.first_ns.unwrap_or(0), self.last_ns);
        let names = map_names(&self.edges);
        let folded = names.values().filter(|n| &***n == OTHER_SERVICES).count() as u64;
        let mut edges: BTreeMap<(Name, Name), EdgeAcc> = BTreeMap::new();
        for ((caller, callee), acc) in self.edges {
            let (caller, callee) = (names[&caller].clone(), names[&callee].clone());
            let to = edges
                .entry((caller.clone(), callee.clone()))
                .or_insert_with(|| EdgeAcc {
                    edge: new_edge(&caller, &callee),
                    latency: Sketch::default(),
                });
            let (a, b) = (&mut to.edge, &acc.edge);
            a.count += b.count;
            a.status_2xx += b.status_2xx;
            a.status_3xx += b.status_3xx;
            a.status_4xx += b.status_4xx;
            a.status_5xx += b.status_5xx;
            a.answered += b.answered;
            a.failed += b.failed;
            a.no_response += b.no_response;
            to.latency.merge(&acc.latency);
        }
        let mut services: BTreeMap<Name, ServiceNode> = BTreeMap::new();
        for (name, s) in self.services {
            let to = service(&mut services, &names[&name]);
            to.served += s.served;
            to.made += s.made;
            to.busy_ns = to.busy_ns.saturating_add(s.busy_ns);
            to.waiting_ns = to.waiting_ns.saturating_add(s.waiting_ns);
            to.self_ns = to.self_ns.saturating_add(s.self_ns);
        }
        let seconds = (last_ns.saturating_sub(first_ns) as f64 / 1e9).max(1e-9);
        let edges: Vec<Edge> = edges
            .into_values()
            .map(|EdgeAcc { mut edge, latency }| {
                edge.per_second = edge.count as f64 / seconds;
                let failed = edge.status_5xx + edge.failed + edge.no_response;
                edge.error_rate = failed as f64 / edge.count.max(1) as f64;
                edge.latency_ns = latency.percentiles();
                edge
            })
            .collect();
        assign_depths(&mut services, &edges);
        if let Some(other) = services.get_mut(OTHER_SERVICES) {
            other.folded = folded;
        }
        let (endpoints, endpoints_left_out) = finish_endpoints(self.endpoints);
        Aggregates {
            endpoints,
            endpoints_left_out,
            edges,
            services: services.into_values().collect(),
            first_ns,
            last_ns,
        }
    }
}

/// The endpoints' statistics, the busiest [`MAX_ENDPOINTS`] kept (in key order), and how many
/// were left out.
fn finish_endpoints(endpoints: BTreeMap<(Name, Name, Name), EndpointAcc>) -> (Vec<Endpoint>, u64) {
    let mut endpoints: Vec<_> = endpoints.into_iter().collect();
    let endpoints_left_out = endpoints.len().saturating_sub(MAX_ENDPOINTS) as u64;
    if endpoints_left_out > 0 {
        endpoints
            .sort_by(|a, b| (b.1.latency.count().cmp(&a.1.latency.count())).then(a.0.cmp(&b.0)));
        endpoints.truncate(MAX_ENDPOINTS);
        endpoints.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let endpoints = endpoints
        .into_iter()
        .map(|((service, method, route), a)| Endpoint {
            service: service.to_string(),
            method: method.to_string(),
            route: route.to_string(),
            count: a.latency.count(),
            errors: a.errors,
            latency_ns: a.latency.percentiles(),
            ttfb_ns: (a.ttfb.count() > 0).then(|| a.ttfb.percentiles()),
            histogram: a.buckets.to_vec(),
            request_bytes: a.request_bytes,
            response_bytes: a.response_bytes,
        })
        .collect();
    (endpoints, endpoints_left_out)
}

fn service<'a>(services: &'a mut BTreeMap<Name, ServiceNode>, name: &Name) -> &'a mut ServiceNode {
    services.entry(name.clone()).or_insert_with(|| ServiceNode {
        name: name.to_string(),
        served: 0,
        made: 0,
        busy_ns: 0,
        waiting_ns: 0,
        self_ns: 0,
        depth: u32::MAX,
        folded: 0,
    })
}

/// Depth of each service: 0 for services nobody calls, else one more than its shallowest
/// caller (breadth first; services only reachable through a cycle get the depth it reaches).
fn assign_depths(services: &mut BTreeMap<Name, ServiceNode>, edges: &[Edge]) {
    let called: std::collections::HashSet<&str> = edges
        .iter()
        .filter(|e| e.caller != e.callee)
        .map(|e| e.callee.as_str())
        .collect();
    let mut frontier: Vec<String> = services
        .keys()
        .filter(|n| !called.contains(&***n))
        .map(|n| n.to_string())
        .collect();
    if frontier.is_empty() {
        frontier = services.keys().take(1).map(|n| n.to_string()).collect();
    }
    let mut depth = 0;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for name in frontier {
            let Some(s) = services.get_mut(name.as_str()) else {
                continue;
            };
            if s.depth != u32::MAX {
                continue;
            }
            s.depth = depth;
            next.extend(
                edges
                    .iter()
                    .filter(|e| e.caller == name)
                    .map(|e| e.callee.clone()),
            );
        }
        frontier = next;
        depth += 1;
    }
    for s in services.values_mut() {
        if s.depth == u32::MAX {
            s.depth = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_five_per_decade() {
        assert_eq!(bucket_of(5_000), 0);
        assert_eq!(bucket_of(10_000), 0);
        assert_eq!(bucket_of(100_000), 5);
        assert_eq!(bucket_of(1_000_000), 10);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_floor(10), 1_000_000);
    }

    #[test]
    fn covered_time_merges_overlaps_and_clips() {
        let mut iv = vec![(5, 10), (0, 3), (8, 20), (30, 40)];
        assert_eq!(covered(2, 25, &mut iv), 1 + 15);
    }
}
