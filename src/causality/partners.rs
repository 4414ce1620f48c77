//! Connections held together: evidence from pools that hand a request a *set* of connections.
//!
//! Some services take one connection to each of their backends for a whole request and give
//! the set back when they answer: a pool of (Redis, PostgreSQL) pairs, a sync worker that owns
//! one keep-alive connection to each service it calls. Then a request's calls to one backend
//! go out on the partner of the connection its calls to the other used, and the latest call on
//! that partner was most likely made by the same request. Reuse of the call's own connection
//! ([`super::reuse`]) cannot see this where a request calls a backend once (its first call to
//! PostgreSQL after three Redis GETs is on a connection another request used last).
//!
//! Partners are learned per caller from an assignment (each EM round's, see `fit`): a
//! connection's partner to another backend is the connection to that backend used by nearly
//! every request that used the first and called that backend at all. A shared pool that picks
//! each connection on its own pairs none; nothing is assumed.

use crate::keyhash::KeyMap;

use super::assign::{Call, Links};

/// Requests that must have used two connections together before they are partners.
const MIN_REQUESTS_TOGETHER: u32 = 5;
/// Share of the requests that used a connection and called the other backend that must have
/// used the partner for it.
const TOGETHER_SHARE: f64 = 0.9;
/// Connections a request may have used and still count: a pool lends a handful, and pairing
/// each of a request's connections with each other costs their number squared.
const MAX_HELD: usize = 16;

/// For each connection, its partners (at most one per other backend).
#[derive(Clone, Debug, Default)]
pub struct Partners(KeyMap<u64, Vec<u64>>);

impl Partners {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The partners `links` show among `calls` (see the module's doc).
    pub fn learned(calls: &[Call], links: &Links) -> Partners {
        // Each request's connections (conn, callee), each once.
        let mut used: KeyMap<usize, Vec<(u64, u64)>> = KeyMap::default();
        let mut callee_of: KeyMap<u64, u64> = KeyMap::default();
        for (call, link) in calls.iter().zip(links) {
            let (Some((r, _)), conn) = (link, call.made.conn) else {
                continue;
            };
            if conn == 0 {
                continue;
            }
            callee_of.insert(conn, call.made.callee);
            let conns = used.entry(*r).or_default();
            // One past the most a request may hold marks it as holding too many.
            if conns.len() <= MAX_HELD && !conns.iter().any(|&(c, _)| c == conn) {
                conns.push((conn, call.made.callee));
            }
        }
        // (connection, connection to another backend): requests that used both; (connection,
        // other backend): requests that used the connection and called that backend.
        let mut together: KeyMap<(u64, u64), u32> = KeyMap::default();
        let mut with_backend: KeyMap<(u64, u64), u32> = KeyMap::default();
        let mut backends: Vec<u64> = Vec::new();
        for conns in used.values().filter(|conns| conns.len() <= MAX_HELD) {
            for &(a, callee_a) in conns {
                backends.clear();
                for &(b, callee_b) in conns.iter().filter(|(_, cb)| *cb != callee_a) {
                    *together.entry((a, b)).or_default() += 1;
                    if !backends.contains(&callee_b) {
                        backends.push(callee_b);
                        *with_backend.entry((a, callee_b)).or_default() += 1;
                    }
                }
            }
        }
        let mut partners: KeyMap<u64, Vec<u64>> = KeyMap::default();
        for (&(a, b), &n) in &together {
            let asked = with_backend[&(a, callee_of[&b])];
            if n >= MIN_REQUESTS_TOGETHER && f64::from(n) >= TOGETHER_SHARE * f64::from(asked) {
                partners.entry(a).or_default().push(b);
            }
        }
        Partners(partners)
    }

    /// For each of `calls` (in start order), the latest earlier call on one of its connection's
    /// partners.
    pub fn previous_calls(&self, calls: &[Call]) -> Vec<Option<usize>> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut last_on: KeyMap<u64, usize> = KeyMap::default();
        let mut previous = Vec::with_capacity(calls.len());
        for (j, call) in calls.iter().enumerate() {
            let conn = call.made.conn;
            previous.push(self.0.get(&conn).and_then(|partners| {
                partners
                    .iter()
                    .filter_map(|p| last_on.get(p))
                    .copied()
                    .max()
            }));
            if conn != 0 {
                last_on.insert(conn, j);
            }
        }
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::assign::Made;
    use tapspan_capture::Timestamp;

    fn call(start: u64, callee: u64, conn: u64) -> Call {
        Call {
            made: Made {
                start: Timestamp(start),
                end: Timestamp(start + 10),
                launch: 1,
                ret: 2,
                callee,
                conn,
                index: 0,
            },
            candidates: vec![],
            previous_on_conn: None,
        }
    }

    /// Six requests, each a Redis call then a PostgreSQL call on a pair of connections taken
    /// in turn from a pool of two pairs (Redis 11 with PostgreSQL 21, 12 with 22); a seventh
    /// request used PostgreSQL alone.
    fn pooled_pairs() -> (Vec<Call>, Links) {
        let mut calls = Vec::new();
        let mut links = Vec::new();
        for r in 0..6u64 {
            let pair = r % 2;
            calls.push(call(100 * r, 1, 11 + pair));
            calls.push(call(100 * r + 50, 2, 21 + pair));
            links.extend([Some((r as usize, 1.0)), Some((r as usize, 1.0))]);
        }
        calls.push(call(700, 2, 21));
        links.push(Some((6, 1.0)));
        (calls, links)
    }

    #[test]
    fn connections_used_by_the_same_requests_are_partners() {
        let (mut calls, mut links) = pooled_pairs();
        // Three requests per pair: too few to tell.
        assert!(Partners::learned(&calls, &links).is_empty());
        let more = calls.clone();
        let offset = calls.len();
        calls.extend(
            more.iter()
                .map(|c| call(c.made.start.0 + 1000, c.made.callee, c.made.conn)),
        );
        links.extend(
            links
                .clone()
                .iter()
                .map(|l| l.map(|(r, c)| (r + offset, c))),
        );
        let partners = Partners::learned(&calls, &links);
        let previous = partners.previous_calls(&calls);
        // The first Redis call has no partner call before it; the first PostgreSQL call's
        // partner call is the Redis call just before it; the next request's Redis call (on
        // the other pair) has none; the third request's Redis call follows the first's
        // PostgreSQL call on its partner.
        assert_eq!(&previous[..5], &[None, Some(0), None, Some(2), Some(1)]);
    }

    #[test]
    fn requests_holding_more_than_a_pool_lends_pair_nothing() {
        // Each request calls 40 backends, each on its own connection, the same ones every time.
        let mut calls = Vec::new();
        let mut links = Vec::new();
        for r in 0..10u64 {
            for b in 0..40u64 {
                calls.push(call(1000 * r + b, b, 100 + b));
                links.push(Some((r as usize, 1.0)));
            }
        }
        assert!(Partners::learned(&calls, &links).is_empty());
        // The same with 4 backends: held together.
        let few: Vec<usize> = (0..calls.len()).filter(|i| i % 40 < 4).collect();
        let calls: Vec<Call> = few.iter().map(|&i| calls[i].clone()).collect();
        let links: Links = few.iter().map(|&i| links[i]).collect();
        assert!(!Partners::learned(&calls, &links).is_empty());
    }

    #[test]
    fn a_pool_that_picks_each_connection_alone_pairs_none() {
        // Redis connections in turn, PostgreSQL connections in the opposite turn.
        let mut calls = Vec::new();
        let mut links = Vec::new();
        for r in 0..20u64 {
            calls.push(call(100 * r, 1, 11 + r % 2));
            calls.push(call(100 * r + 50, 2, 21 + (r / 2) % 2));
            links.extend([Some((r as usize, 1.0)), Some((r as usize, 1.0))]);
        }
        assert!(Partners::learned(&calls, &links).is_empty());
    }
}
