//! Connection reuse as evidence for nesting: which handler made a call, from the keep-alive
//! connection it went out on.
//!
//! HTTP clients keep idle connections and reuse them. How much that tells depends on the client:
//! - a worker that serves one request at a time and owns its connections (gunicorn sync and
//!   PHP-FPM processes, a thread with a thread-local session) sends all of a request's calls to
//!   one callee on one connection, and no other request's;
//! - a pool shared by a service's handlers that hands out the most recently returned connection
//!   first (Go's `net/http`, urllib3's `LifoQueue`, Node.js ≥ 15, Apache HttpClient) usually
//!   gives a handler's next call its previous connection back, unless another handler took it in
//!   between;
//! - a round-robin pool (Node.js before 15) gives it some other one: no evidence, or the reverse.
//!
//! So the evidence is learned, not assumed: for a call and a candidate handler, [`Reuse`] says
//! how the call's connection relates to the one the handler used for its previous call to the
//! same callee, and [`ReuseModel`] weighs each answer by how often the chosen handlers showed it
//! against how often the handlers not chosen did (a likelihood ratio, refitted with the delay
//! model on each round of EM). Where reuse says nothing, every ratio stays near 1.
//!
//! Workers that own their connections also show how many there are (the most connections to
//! any one callee), and with that, when each request was taken off the listen queue
//! ([`start_when_a_worker_is_free`]): under load a request waits for a worker, and its handler's
//! think time starts then, not when it arrived.

use super::assign::{Call, Made, Req};
use super::partners::Partners;
use tapspan_capture::Timestamp;

/// How a call's connection relates to a candidate handler's own earlier calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// The handler has not called this callee before (or that call is still running, so its
    /// connection was not free): reuse says nothing.
    Fresh = 0,
    /// The handler's previous call to this callee went out on this same connection.
    Same = 1,
    /// The handler's previous call to this callee went out on another connection.
    Other = 2,
}

/// How a candidate handler relates to the request that the connection's previous call was made
/// for (its owner, as the previous round of EM assigned it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A new connection, or its previous call's parent is unknown.
    Unknown = 0,
    /// The candidate made the connection's previous call.
    Same = 1,
    /// The candidate's request arrived after the owner answered: a worker that served the owner
    /// could have moved on to it.
    After = 2,
    /// The candidate's request arrived while the owner was being served: a worker that owns its
    /// connections cannot have served both.
    Overlap = 3,
}

/// The request a connection's previous call was made for (an index into the batch's requests),
/// and when it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviousOwner {
    pub req: usize,
    pub responds: Timestamp,
}

/// Both relations, as one index (they are not independent: counting them jointly keeps the
/// same evidence from being counted twice); and how the candidate relates to the request that
/// made the latest call on a partner of the connection ([`super::partners`]), counted on its
/// own: another connection, taken by its own choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub reuse: Reuse,
    pub owner: Owner,
    pub partner: Owner,
}

impl Kind {
    fn index(self) -> usize {
        self.owner as usize * 3 + self.reuse as usize
    }
}

const KINDS: usize = 12;
/// The four [`Owner`]s of a partner connection's latest call.
const PARTNER_KINDS: usize = 4;

/// [`ReuseModel::ln_ratio`] by table for one batch's calls (see [`ReuseModel::table`]).
pub struct RatioTable {
    ratios: [f64; KINDS],
    /// All zero where no connections are partners.
    partner: [f64; PARTNER_KINDS],
    /// For each call, the latest earlier call on a partner of its connection (empty where no
    /// connections are partners).
    previous_on_partner: Vec<Option<usize>>,
}

impl RatioTable {
    pub fn ln_ratio(&self, kind: Kind) -> f64 {
        self.ratios[kind.index()] + self.partner[kind.partner as usize]
    }

    /// Whether every kind weighs alike (nothing learned): then no call's kind need be found.
    pub fn is_flat(&self) -> bool {
        self.ratios.iter().chain(&self.partner).all(|&r| r == 0.0)
    }

    /// The latest call before call `j` on a partner of its connection.
    pub fn previous_on_partner(&self, j: usize) -> Option<usize> {
        *self.previous_on_partner.get(j)?
    }
}

/// The reuse of `call`'s connection for a handler that made `earlier` (any order) before `at`.
pub fn reuse(earlier: &[Made], at: Timestamp, call: &Made) -> Reuse {
    if call.conn == 0 {
        return Reuse::Fresh;
    }
    let previous = earlier
        .iter()
        .filter(|c| c.callee == call.callee && c.start < at)
        .max_by_key(|c| c.start);
    match previous {
        None => Reuse::Fresh,
        Some(p) if p.end > at => Reuse::Fresh,
        Some(p) if p.conn == call.conn => Reuse::Same,
        Some(_) => Reuse::Other,
    }
}

/// How candidate `req` (arrived at `arrived`) relates to the connection's previous owner.
pub fn owner(req: usize, arrived: Timestamp, previous: Option<PreviousOwner>) -> Owner {
    match previous {
        None => Owner::Unknown,
        Some(p) if p.req == req => Owner::Same,
        Some(p) if arrived >= p.responds => Owner::After,
        Some(_) => Owner::Overlap,
    }
}

/// Ambiguous pool choices needed before a pool is judged (see [`pool_is_shared`]).
const MIN_POOL_CHOICES: usize = 10;
/// How close in time two pool events can be and still not be told apart from the capture.
const POOL_SLACK_NS: u64 = 100_000;
/// Share of those a shared pool's discipline must explain.
const SHARED_POOL_SHARE: f64 = 0.95;

/// Whether the calls leaving one address (in start order) look like they come from a pool that
/// all its handlers share, judged from the connections alone.
///
/// A shared pool picks a connection by its own discipline: the most recently returned idle one
/// (LIFO), or the one idle longest (FIFO), and opens a new one only when none is idle. Which
/// handler asked does not enter the choice, so the connection says nothing about the parent,
/// and learning from it would only fit noise. A pool per worker breaks the discipline: a
/// worker takes its own connection, whichever other idle ones there are, and opens one while
/// other workers' connections sit idle. So: among calls that had a choice (two or more idle
/// connections to their callee, or a new connection while one was idle), if LIFO or FIFO
/// explains at least 95 %, the pool is shared (in the simulator, shared pools are over 99 % and pools per worker handed out by a LIFO list of idle workers 81 %).
pub fn pool_is_shared(calls: &[Made]) -> bool {
    // Per callee: each connection seen, with when its last call ended.
    let mut released: crate::keyhash::KeyMap<u64, Vec<(u64, Timestamp)>> =
        crate::keyhash::KeyMap::default();
    let (mut choices, mut lifo, mut fifo) = (0usize, 0usize, 0usize);
    for call in calls.iter().filter(|c| c.conn != 0) {
        let conns = released.entry(call.callee).or_default();
        // Seen from the capture point, a connection is back in the pool a little after its
        // response passed, and a request left a little before it passed: connections returned
        // within that slack of the call, or of each other, are not told apart.
        let surely_idle = |end: Timestamp| end.0.saturating_add(POOL_SLACK_NS) <= call.start.0;
        // The idle connections: how many, and when the newest and the oldest were released
        // (counted in one pass: a list of them made for each call was half this function's time).
        let (mut idle, mut newest, mut oldest) = (0usize, 0u64, u64::MAX);
        for &(conn, end) in conns.iter() {
            if surely_idle(end) || conn == call.conn && end <= call.start {
                idle += 1;
                newest = newest.max(end.0);
                oldest = oldest.min(end.0);
            }
        }
        let known = conns.iter().position(|(conn, _)| *conn == call.conn);
        match known {
            None => choices += usize::from(idle > 0),
            Some(i) if idle >= 2 => {
                choices += 1;
                let chosen = conns[i].1 .0;
                lifo += usize::from(chosen.saturating_add(POOL_SLACK_NS) >= newest);
                fifo += usize::from(chosen <= oldest.saturating_add(POOL_SLACK_NS));
            }
            Some(_) => {}
        }
        match known {
            Some(i) => conns[i].1 = call.end,
            None => conns.push((call.conn, call.end)),
        }
    }
    choices >= MIN_POOL_CHOICES && lifo.max(fifo) as f64 >= SHARED_POOL_SHARE * choices as f64
}

/// The most of `spans` (start, end) open at one instant.
fn most_at_once(spans: impl Iterator<Item = (Timestamp, Timestamp)>) -> usize {
    let mut edges: Vec<(Timestamp, i32)> = spans
        .flat_map(|(start, end)| [(start, 1), (end.max(start), -1)])
        .collect();
    // At equal instants an end comes first: one handed over is not two at once.
    edges.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}

/// How many workers the caller has, if its requests wait for one: a sync worker makes one call
/// at a time, so the most calls in flight at once is a count of workers that were all busy,
/// and when more requests than that were in flight at once, the rest waited in the listen
/// queue. `None` where requests never outnumbered the calls at once (threads, an event loop:
/// every request's handler runs on arrival). Counting connections instead (one per worker)
/// misleads wherever a pool opens more than it keeps, or a callee closes each connection.
pub fn workers_if_queued(reqs: &[Req], calls: &[Made]) -> Option<usize> {
    let workers = most_at_once(calls.iter().map(|c| (c.start, c.end)));
    let requests = most_at_once(reqs.iter().map(|r| (r.arrived, r.responds)));
    (workers > 0 && workers < requests).then_some(workers)
}

/// With `workers` workers serving one request at a time, a request that arrives while all are
/// busy waits in the listen queue (gunicorn's sync workers under load) until one answers: its
/// handler begins then, not on arrival, and the wait is no part of its think time. Requests are
/// taken first come, first served, by the worker that became free first (a worker is free again
/// once it has answered); `arrived` becomes when each request was taken. With at least as many
/// workers as requests ever in flight, nothing changes.
pub fn start_when_a_worker_is_free(reqs: &mut [Req], workers: usize) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if workers == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| (reqs[i].arrived, i));
    let mut free_at: BinaryHeap<Reverse<Timestamp>> =
        std::iter::repeat_n(Reverse(Timestamp(0)), workers).collect();
    for i in order {
        let Reverse(free) = free_at.pop().expect("one entry per worker");
        let r = &mut reqs[i];
        r.arrived = r.arrived.max(free).min(r.responds.max(r.arrived));
        free_at.push(Reverse(r.responds.max(r.arrived)));
    }
}

/// Pseudo-counts per kind on each side, so that a few observations cannot make a ratio extreme.
const PRIOR_COUNT: f64 = 2.0;
/// Observations remembered across batches: older ones are scaled down to this.
const MEMORY: f64 = 20_000.0;

/// Counts of [`Reuse`] kinds among chosen parents and among candidates not chosen, and the
/// connections held together.
#[derive(Clone, Debug, Default)]
pub struct ReuseModel {
    chosen: [f64; KINDS],
    passed_over: [f64; KINDS],
    partner_chosen: [f64; PARTNER_KINDS],
    partner_passed_over: [f64; PARTNER_KINDS],
    partners: Partners,
}

/// Log of the share of kind `k` among `counts`, each with [`PRIOR_COUNT`] added.
fn ln_share<const N: usize>(counts: &[f64; N], k: usize) -> f64 {
    ((counts[k] + PRIOR_COUNT) / (counts.iter().sum::<f64>() + PRIOR_COUNT * N as f64)).ln()
}

impl ReuseModel {
    /// Log-likelihood ratio of `kind` for a candidate: chosen parents against the rest.
    pub fn ln_ratio(&self, kind: Kind) -> f64 {
        self.ln_ratio_at(kind.index())
    }

    fn ln_ratio_at(&self, k: usize) -> f64 {
        ln_share(&self.chosen, k) - ln_share(&self.passed_over, k)
    }

    /// [`Self::ln_ratio`] of every kind for `calls` (a batch's, in start order), worked out
    /// once: the beam asks for it at every scoring.
    pub fn table(&self, calls: &[Call]) -> RatioTable {
        let partner = if self.partners.is_empty() {
            [0.0; PARTNER_KINDS]
        } else {
            std::array::from_fn(|k| {
                ln_share(&self.partner_chosen, k) - ln_share(&self.partner_passed_over, k)
            })
        };
        RatioTable {
            ratios: std::array::from_fn(|k| self.ln_ratio_at(k)),
            partner,
            previous_on_partner: self.partners.previous_calls(calls),
        }
    }

    /// `history` plus what an assignment shows: for each call, the kind of its chosen parent
    /// and of every other candidate (`observations`: `(kind, chosen, weight)`). Weighing by the
    /// choice's confidence keeps a poor first assignment from teaching its own mistakes: a hard
    /// assignment that favours the connection's previous owner would otherwise find that
    /// previous owners are favoured, and the next round would favour them more.
    /// `partners`: the connections held together in that assignment, which the observations'
    /// [`Kind::partner`] was found with.
    pub fn fitted(
        history: &ReuseModel,
        observations: &(impl Observations + ?Sized),
        partners: Partners,
    ) -> Self {
        let mut m = history.clone();
        m.partners = partners;
        let seen: f64 = m.chosen.iter().chain(&m.passed_over).sum();
        let added = observations.weight();
        if seen + added > MEMORY && seen > 0.0 {
            let keep = (MEMORY - added).max(0.0) / seen;
            m.chosen
                .iter_mut()
                .chain(&mut m.passed_over)
                .chain(&mut m.partner_chosen)
                .chain(&mut m.partner_passed_over)
                .for_each(|c| *c *= keep);
        }
        observations.each(|kind, chosen, weight| {
            let (side, partner_side) = if chosen {
                (&mut m.chosen, &mut m.partner_chosen)
            } else {
                (&mut m.passed_over, &mut m.partner_passed_over)
            };
            side[kind.index()] += weight;
            partner_side[kind.partner as usize] += weight;
        });
        m
    }
}

/// Observations of connection reuse, `(kind, chosen, weight)` each: what [`ReuseModel::fitted`]
/// learns from.
pub trait Observations {
    /// The observations' weights summed, in the order [`Self::each`] gives them.
    fn weight(&self) -> f64;
    /// Every observation, in order.
    fn each(&self, observe: impl FnMut(Kind, bool, f64));
}

/// Observations listed (the tests' way of giving them).
#[cfg(test)]
impl Observations for [(Kind, bool, f64)] {
    fn weight(&self) -> f64 {
        self.iter().map(|o| o.2).sum()
    }

    fn each(&self, mut observe: impl FnMut(Kind, bool, f64)) {
        for &(kind, chosen, weight) in self {
            observe(kind, chosen, weight);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(start_us: u64, end_us: u64, callee: u64, conn: u64) -> Made {
        Made {
            start: Timestamp(start_us * 1000),
            end: Timestamp(end_us * 1000),
            launch: 9,
            ret: 10,
            callee,
            conn,
            index: crate::causality::assign::NOT_IN_BATCH,
        }
    }

    #[test]
    fn reuse_compares_with_the_previous_call_to_the_same_callee() {
        let earlier = [
            made(0, 100, 7, 1),
            made(200, 300, 8, 2),
            made(400, 500, 7, 3),
        ];
        let at = Timestamp(600_000);
        assert_eq!(reuse(&earlier, at, &made(600, 700, 7, 3)), Reuse::Same);
        // Connection 1 was the handler's, but not for its latest call to callee 7.
        assert_eq!(reuse(&earlier, at, &made(600, 700, 7, 1)), Reuse::Other);
        assert_eq!(reuse(&earlier, at, &made(600, 700, 9, 1)), Reuse::Fresh);
        // A call still running held its connection: a parallel call had to take another.
        let running = [made(550, 900, 7, 3)];
        assert_eq!(reuse(&running, at, &made(600, 700, 7, 4)), Reuse::Fresh);
        // Unknown connection: no evidence.
        assert_eq!(reuse(&earlier, at, &made(600, 700, 7, 0)), Reuse::Fresh);
    }

    /// Calls of `handlers` interleaved handlers, each making `per_handler` calls in a row to one
    /// callee, 100 µs each, 200-800 µs apart (pseudo-random); the connection of each call from
    /// `pick` (handler, start in µs, the connections with when they were last released).
    fn pooled_calls(
        handlers: u64,
        per_handler: u64,
        mut pick: impl FnMut(u64, u64, &mut Vec<(u64, Timestamp)>) -> u64,
    ) -> Vec<Made> {
        let mut x = 0x2545_f491_u64;
        let mut gap = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            200 + x % 600
        };
        let mut calls: Vec<(u64, u64)> = Vec::new();
        for h in 0..handlers {
            let mut t = 1_000 + 37 * h;
            for _ in 0..per_handler {
                t += gap();
                calls.push((t, h));
                t += 100;
            }
        }
        calls.sort_unstable();
        let mut pool: Vec<(u64, Timestamp)> = Vec::new();
        calls
            .into_iter()
            .map(|(s, h)| {
                let conn = pick(h, s, &mut pool);
                let m = made(s, s + 100, 7, conn);
                match pool.iter_mut().find(|(c, _)| *c == conn) {
                    Some(slot) => slot.1 = m.end,
                    None => pool.push((conn, m.end)),
                }
                m
            })
            .collect()
    }

    #[test]
    fn a_shared_pool_is_told_from_connections_kept_per_worker() {
        // A shared pool: the idle connection returned last (LIFO) or the one idle longest
        // (FIFO), else a new one.
        let shared = |lifo: bool| {
            let mut next = 100;
            pooled_calls(8, 20, move |_, at, pool| {
                let idle = pool.iter().filter(|(_, end)| end.0 <= at * 1000);
                let pick = if lifo {
                    idle.max_by_key(|(_, end)| *end)
                } else {
                    idle.min_by_key(|(_, end)| *end)
                };
                pick.map(|(c, _)| *c).unwrap_or_else(|| {
                    next += 1;
                    next
                })
            })
        };
        let lifo = shared(true);
        assert!(pool_is_shared(&lifo));
        let fifo = shared(false);
        assert!(pool_is_shared(&fifo));
        // Per worker: handler h always on its own connection, whatever else is idle.
        let per_worker = pooled_calls(8, 20, |h, _, _| 1 + h);
        assert!(!pool_is_shared(&per_worker));
        // Too few choices to judge: not shared (connections may still say something).
        assert!(!pool_is_shared(&lifo[..5]));
    }

    #[test]
    fn requests_wait_for_a_free_worker_first_come_first_served() {
        let req = |arrived: u64, responds: u64| Req {
            arrived: Timestamp(arrived),
            responds: Timestamp(responds),
            endpoint: 1,
            prior_calls: vec![],
        };
        // Two workers, four requests at once: the third is taken when the first answers (at
        // 10), the fourth when the second does (at 12).
        let mut reqs = vec![req(0, 10), req(1, 12), req(2, 20), req(3, 25)];
        start_when_a_worker_is_free(&mut reqs, 2);
        let taken: Vec<u64> = reqs.iter().map(|r| r.arrived.0).collect();
        assert_eq!(taken, vec![0, 1, 10, 12]);
        // Enough workers: nobody waits.
        let mut reqs = vec![req(0, 10), req(1, 12), req(2, 20), req(3, 25)];
        start_when_a_worker_is_free(&mut reqs, 4);
        let taken: Vec<u64> = reqs.iter().map(|r| r.arrived.0).collect();
        assert_eq!(taken, vec![0, 1, 2, 3]);
    }

    #[test]
    fn workers_are_counted_only_where_requests_outnumber_the_calls_in_flight() {
        let req = |arrived_us: u64, responds_us: u64| Req {
            arrived: Timestamp(arrived_us * 1000),
            responds: Timestamp(responds_us * 1000),
            endpoint: 1,
            prior_calls: vec![],
        };
        // At most two calls at once, three requests at once: two workers, one request waited.
        let calls = [made(1, 4, 7, 1), made(2, 5, 7, 2), made(6, 8, 7, 1)];
        let reqs = [req(0, 10), req(1, 12), req(2, 20)];
        assert_eq!(workers_if_queued(&reqs, &calls), Some(2));
        // As many calls in flight as requests: handlers run on arrival (threads, event loops).
        let reqs = [req(0, 10), req(1, 12)];
        assert_eq!(workers_if_queued(&reqs, &calls), None);
    }

    #[test]
    fn owner_says_whether_one_worker_could_have_served_both() {
        let previous = Some(PreviousOwner {
            req: 4,
            responds: Timestamp(1_000),
        });
        assert_eq!(owner(4, Timestamp(0), previous), Owner::Same);
        assert_eq!(owner(5, Timestamp(1_000), previous), Owner::After);
        assert_eq!(owner(5, Timestamp(999), previous), Owner::Overlap);
        assert_eq!(owner(5, Timestamp(0), None), Owner::Unknown);
    }

    #[test]
    fn ratios_follow_what_the_chosen_parents_show() {
        let kind = |reuse, owner| Kind {
            reuse,
            owner,
            partner: Owner::Unknown,
        };
        let same = kind(Reuse::Same, Owner::Same);
        let other = kind(Reuse::Other, Owner::Overlap);
        let fresh = kind(Reuse::Fresh, Owner::Unknown);
        let none = ReuseModel::default();
        assert!(none.ln_ratio(same).abs() < 1e-12);
        // Per-worker connections: chosen parents reuse, the others never do.
        let mut obs = vec![(same, true, 1.0); 200];
        obs.extend(vec![(other, false, 1.0); 600]);
        obs.extend(vec![(fresh, false, 1.0); 600]);
        obs.extend(vec![(fresh, true, 1.0); 100]);
        let m = ReuseModel::fitted(&none, obs.as_slice(), Partners::default());
        assert!(m.ln_ratio(same) > 3.0, "{m:?}");
        assert!(m.ln_ratio(other) < -3.0, "{m:?}");
        // A round-robin pool: kinds spread alike on both sides, no evidence.
        let mut obs = vec![(other, true, 1.0); 300];
        obs.extend(vec![(other, false, 1.0); 900]);
        obs.extend(vec![(fresh, true, 1.0); 100]);
        obs.extend(vec![(fresh, false, 1.0); 300]);
        let m = ReuseModel::fitted(&none, obs.as_slice(), Partners::default());
        assert!(m.ln_ratio(other).abs() < 0.05, "{m:?}");
    }
}
