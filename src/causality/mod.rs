//! The causality builder: independent exchanges in, whole traces out (spans with trace ids and
//! parents). See DESIGN.md "Causality".
//!
//! Evidence, strongest first, always labelled in `tapspan.link`:
//! 1. Propagated context. `traceparent`, B3, `uber-trace-id`, `X-Amzn-Trace-Id` give the trace id
//!    (and W3C's parent span id is honoured). When a service forwards such a header unchanged (no
//!    tracer of its own, e.g. a proxy), the outbound call's parent is the enclosing inbound
//!    exchange with the same header. `X-Request-ID`: exchanges sharing a value share a trace, and
//!    an outbound call's parent is the innermost inbound exchange at the same service that carries
//!    the same value and encloses it in time.
//! 2. Send/receive nesting ([`nesting`]), only for calls that carry no propagated id: the
//!    enclosing inbound exchange at the caller's address with the best-scoring delay, with its
//!    confidence. Where the caller keeps connections per worker, the connection a call went out
//!    on counts too ([`reuse`]). No enclosing candidate: the call is a root, never forced under a
//!    wrong parent.
//!
//! Trigger causality: the parent of a call is the request whose handling *triggered* it (the
//! inbound request being served when the call went out), not the party that submitted work to a
//! queue earlier. That is what a latency investigation needs: whose time the call spent.
//!
//! What nesting cannot tell apart: several services behind one IP address (all on loopback, or
//! sidecars sharing a pod IP). An outbound connection's ephemeral port does not say which process
//! opened it, so any inbound exchange at that IP is a candidate; a request served by the same
//! listening port that it calls is excluded. Propagated ids are exact regardless.
//!
//! Streaming: an exchange's parent is decided `window_ns` (capture time) after it ended, by which
//! time every exchange that could enclose it and ended within the window has arrived; a trace
//! leaves the builder when its root is decided. Parents that outlast a child by more than the
//! window are not found (the child becomes a root). `max_pending` bounds memory: beyond it the
//! oldest decisions are made early and counted.
//!
//! Cost per call, whatever the capture's length: its candidates are found by a scan of at most
//! `max_candidates` requests (a batch's calls scan one copy of what they can reach, never more
//! than `max_candidates` per call); a batch is searched at most 20 times by default (two readings of
//! its requests, each by EM at two widths: [`fit`]), 18 more with `--nesting-search wide`,
//! and one search scores at most `assign::EXPANSIONS_PER_CALL` (call, handler) pairs per call;
//! payload tokens add at most 32 per message and 16 earlier calls per token. What grows with
//! load up to those caps is the number of candidates a call has.

pub mod assign;
mod beam;
pub mod fit;
pub mod guess;
pub mod nesting;
mod partners;
pub mod refine;
pub mod reuse;
pub mod services;
pub mod tokens;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use tapspan_capture::Timestamp;

use crate::ids;
use crate::keyhash::KeyMap;
use crate::protocols::http1::tokens::Tokens;
use crate::protocols::{Call, Exchange};
use crate::route::{RouteConfig, Routes};
use crate::span::{
    exchange_id_of, propagated_context, split_target, Endpoints, Link, Linkage, Span, SpanDraft,
    TraceContext,
};
use crate::text;
use nesting::DelayModel;
pub use services::ServiceMap;
use tokens::BatchTokens;

#[derive(Clone, Debug)]
pub struct CausalityConfig {
    /// Capture time after an exchange ends before its parent is decided.
    pub window_ns: u64,
    /// Exchanges held at once; beyond it the oldest are decided early.
    pub max_pending: usize,
    /// Candidates examined per call (most recent first).
    pub max_candidates: usize,
    /// How hard nesting searches (see [`fit::Search`]).
    pub search: fit::Search,
    /// Whether different callers' calls, and pieces of one search, are searched side by side
    /// (1: on the calling thread alone; more: on the worker pool, see [`run_side_by_side`]).
    pub threads: usize,
    pub services: ServiceMap,
    /// How spans' `http.route` is found (see [`crate::route`]).
    pub routes: RouteConfig,
    /// Draft each exchange's spans as it arrives ([`SpanDraft`]), not once it is placed. A
    /// replay of a capture shorter than the trace window places every exchange after the last
    /// packet, and a draft made while packets were still being read is work no longer left for
    /// then (6-9 % of such a replay's time on the lab at 16); it holds about 800 bytes per
    /// exchange waiting. Live capture places exchanges as it goes, where drafting early would
    /// only hold the memory.
    pub draft_on_arrival: bool,
}

impl Default for CausalityConfig {
    fn default() -> Self {
        CausalityConfig {
            window_ns: 5_000_000_000,
            max_pending: 500_000,
            max_candidates: 4096,
            search: fit::Search::Adaptive,
            threads: cores(),
            services: ServiceMap::default(),
            routes: RouteConfig::default(),
            draft_on_arrival: false,
        }
    }
}

/// The cores this process may use, asked once: each question reads the cgroup's CPU quota
/// (five files), and a run makes several default configurations (the command line's, the
/// replay's).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[derive(Clone, Debug, Default)]
pub struct CausalityStats {
    pub exchanges: u64,
    pub traces: u64,
    pub linked_by_id: u64,
    pub linked_by_nesting: u64,
    pub roots: u64,
    pub forced_decisions: u64,
    pub peak_pending: u64,
}

type NodeId = u64;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Parent {
    /// Not decided yet.
    Undecided,
    /// A root of our graph (maybe with a propagated parent span id from the application).
    Root,
    Node {
        id: NodeId,
        link: Link,
        confidence: f64,
    },
}

struct Node {
    ex: Exchange,
    /// Its spans but for what the decision says, when drafted on arrival (see
    /// [`CausalityConfig::draft_on_arrival`]).
    draft: Option<SpanDraft>,
    ctx: Option<TraceContext>,
    /// The X-Request-ID this exchange carries: its request's, else its response's.
    request_id: Option<String>,
    /// Every X-Request-ID value seen on the exchange: a service may replace a caller's id (nginx
    /// does, when configured to), and its calls then carry the id from its response.
    known_request_ids: Vec<String>,
    keys: StepKeys,
    start: Timestamp,
    /// When the request had fully arrived (its last byte), else its start.
    request_end: Timestamp,
    end: Timestamp,
    parent: Parent,
    children: Vec<NodeId>,
}

/// Whether the span `outer` (start, end) holds `inner` strictly: not the same span.
fn encloses(outer: (Timestamp, Timestamp), inner: (Timestamp, Timestamp)) -> bool {
    outer.0 <= inner.0 && inner.1 <= outer.1 && (outer.0 < inner.0 || inner.1 < outer.1)
}

/// Of the requests `held` (latest started first), those that enclose call `id` (`e`), onto
/// `found`.
fn enclosing<'h>(
    id: NodeId,
    e: &Node,
    held: impl Iterator<Item = (&'h (Timestamp, NodeId), &'h (u16, Timestamp))>,
    found: &mut Vec<NodeId>,
) {
    // A request to the very listener being called is not a candidate (same IP here).
    let called_port = e.ex.server.port();
    let same_ip = e.ex.server.ip() == e.ex.client.ip();
    let enclosing = held.filter(|&(&(start, r), &(port, end))| {
        r != id && !(same_ip && port == called_port) && encloses((start, end), (e.start, e.end))
    });
    found.extend(enclosing.map(|(&(_, r), _)| r));
}

impl Node {
    fn explicit_context(&self) -> Option<&TraceContext> {
        self.ctx.as_ref().filter(|c| c.link != Link::XRequestId)
    }
}

/// `solve` for every job, the results in the jobs' order: on one thread when `threads` is 1,
/// else on the process's pool of worker threads (rayon, one per core).
///
/// Jobs nest (callers, then each caller's readings, then each search's pieces, and the
/// halves of some steps, [`both`]): with threads spawned per call, every level added its own,
/// so that four to six shared two cores and the busiest caller's pieces waited behind another
/// caller's first guess. A work-stealing pool runs no more threads than cores and hands an
/// idle core the next job wherever it was queued.
pub(super) fn run_side_by_side<J: Sync, R: Send>(
    jobs: Vec<J>,
    threads: usize,
    solve: impl Fn(&J) -> R + Sync,
) -> Vec<R> {
    use rayon::prelude::*;
    if threads <= 1 || jobs.len() <= 1 {
        return jobs.iter().map(solve).collect();
    }
    jobs.par_iter().map(&solve).collect()
}

/// `a` and `b`, side by side on the worker pool unless `threads` is 1 (see
/// [`run_side_by_side`]).
pub(super) fn both<A: Send, B: Send>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads <= 1 {
        (a(), b())
    } else {
        rayon::join(a, b)
    }
}

/// The inbound exchanges held at one IP.
#[derive(Default)]
struct Inbound {
    /// (start, id) in start order, with the server's port and the request's end: what the
    /// scan for candidates tests, without looking each request up.
    by_start: BTreeMap<(Timestamp, NodeId), (u16, Timestamp)>,
    /// The longest any of them has lasted (never lowered): an exchange that encloses a call
    /// started at most this long before the call ended, so the scan for candidates stops there
    /// instead of going back through every request still held.
    longest_ns: u64,
}

pub struct CausalityBuilder {
    config: CausalityConfig,
    /// Boxed: a node is over a kilobyte, and a table of them inline cost that per bucket,
    /// twice over while it grew (most of a replay's peak memory).
    nodes: KeyMap<NodeId, Box<Node>>,
    next_id: NodeId,
    /// Inbound exchanges by the server's IP, by start time: the candidate parents.
    /// (start, id, the server's port): the port lets a scan skip calls to the same listener
    /// without looking the node up.
    inbound: HashMap<IpAddr, Inbound>,
    /// Exchanges whose parent is not decided, by end time.
    undecided: BTreeSet<(Timestamp, NodeId)>,
    watermark: Timestamp,
    /// Processing-delay models per calling IP, refitted on each batch to it and what earlier
    /// batches taught them.
    delays_at: HashMap<IpAddr, fit::Learned>,
    /// Listening ports seen per IP, to name callers by the service on their IP.
    listeners: HashMap<IpAddr, HashSet<u16>>,
    /// The routes each service has shown so far, for spans' `http.route`.
    routes: Routes,
    pub stats: CausalityStats,
}

/// Where a call's candidates are among the requests held at its caller, by (start, id).
type HeldRange = std::ops::RangeInclusive<(Timestamp, NodeId)>;

/// The requests held at a caller that any call of a batch could have been made for, in start
/// order, as [`Inbound::by_start`] holds them: the batch's calls look for their candidates in
/// this slice rather than each walking the tree, and skip its blocks of [`HELD_BLOCK`] whose
/// requests all ended before the call did (no candidate: most of what a call's range holds,
/// as the range reaches back as far as the longest request ever held there).
#[derive(Default)]
struct Held {
    entries: Vec<((Timestamp, NodeId), (u16, Timestamp))>,
    /// The latest end in each block of `entries`.
    latest_end: Vec<Timestamp>,
    /// [`Inbound::longest_ns`] of the caller, for each call's range without looking it up.
    longest_ns: u64,
}

/// Where call `e`'s candidates are among the requests held at its caller, the longest of which
/// lasted `longest_ns` (see [`Inbound::longest_ns`]).
fn held_range_of(e: &Node, longest_ns: u64) -> Option<HeldRange> {
    let earliest = Timestamp(e.end.0.saturating_sub(longest_ns));
    // Longer than any request held there: none encloses it.
    (earliest <= e.start).then_some((earliest, 0)..=(e.start, NodeId::MAX))
}

/// Requests per block of [`Held`]: a block is skipped with one comparison, or its requests are
/// tested one by one; at 16 or more in flight most blocks a call's range covers ended long
/// before it, and a block this small rarely mixes the two.
const HELD_BLOCK: usize = 16;

/// Calls whose candidates one thread looks for at a time (`batch_problem`).
const CANDIDATES_CHUNK: usize = 512;

/// How long (capture time) ripe exchanges wait for others to ripen with them: a span's delay
/// past its trace window grows by at most this, well within DESIGN.md's second.
const RIPE_GROUP_NS: u64 = 100_000_000;

const MAX_LISTENER_IPS: usize = 65_536;
/// An exchange that ends this long before the newest one can only come from a clock that
/// stepped back: longer than any trace window, and than the default idle timeout after which a
/// silent connection's exchanges arrive late.
const CLOCK_STEP_NS: u64 = 600_000_000_000;
/// The step keys of a handler's template (see [`nesting::StepKey`]): what was asked of a
/// service, and which call was launched or returned. By route template, so `/users/7` and
/// `/users/9` are one step; a call's return also by status class, since a handler may do
/// something else after a failure (retry it).
fn endpoint_key(ex: &Exchange) -> u64 {
    // The text hashed: "{server} {method} {step route}", or "{server} " without a request.
    let mut key = text::socket_addr(&ex.server);
    key.push(' ');
    if let Some(r) = ex.request() {
        let (path, _) = split_target(&r.target);
        key.push_str(&r.method);
        key.push(' ');
        key.push_str(&path.map(step_route).unwrap_or_default());
    }
    ids::hash64("tapspan.step", key.as_bytes())
}

/// A path as a kind of step: coarser than the reported route, every segment with a digit is a
/// parameter (`/stock/sku-17` and `/stock/sku-3` are one step: a template that counted each
/// value apart would learn fifty delays from a handful of calls each).
fn step_route(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.bytes().any(|b| b.is_ascii_digit()) || seg.len() > 32 {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An exchange's keys for the delay model and the connection evidence, worked out once when it
/// arrives: a batch looks at each of them again for every call and candidate it holds.
#[derive(Clone, Copy, Debug)]
struct StepKeys {
    /// [`endpoint_key`]: what was asked, as the endpoint of this exchange's own handler.
    endpoint: u64,
    /// As a call: its launch and return steps, whom it called, and on which connection.
    launch: u64,
    ret: u64,
    callee: u64,
    conn: u64,
}

impl StepKeys {
    fn of(ex: &Exchange) -> Self {
        let endpoint = endpoint_key(ex);
        let launch = endpoint.max(nesting::RESPOND + 1);
        let class = ex.response().and_then(|r| r.status).map_or(0, |s| s / 100);
        let ret = ids::hash64(
            "tapspan.step",
            &[launch.to_le_bytes(), u64::from(class).to_le_bytes()].concat(),
        )
        .max(nesting::RESPOND + 1);
        StepKeys {
            endpoint,
            launch,
            ret,
            callee: ids::hash64("tapspan.callee", text::socket_addr(&ex.server).as_bytes()),
            conn: if multiplexed(ex) {
                0
            } else {
                ids::hash64("tapspan.conn", connection_text(ex).as_bytes()).max(1)
            },
        }
    }
}

/// Whether the exchange shared its connection with others in flight (an HTTP/2 stream):
/// then the connection is no evidence of which handler made the call, however the caller's
/// workers keep theirs, and its key is 0, "unknown" (see `reuse`). So is DNS over UDP.
fn multiplexed(ex: &Exchange) -> bool {
    // A UDP socket carries several queries at once (glibc's A and AAAA): no connection either.
    if let Call::Dns(x) = &ex.call {
        return crate::protocols::dns::stream::over_udp(x);
    }
    let version = ex
        .request()
        .and_then(|r| r.version)
        .or(ex.response().map(|r| r.version));
    version == Some(crate::protocols::http1::Version::Http2)
}

/// Whether the exchange's server runs handlers that may call out, and so may be the service
/// behind a caller's IP (see `names`): a Redis or PostgreSQL server answers, it calls no one,
/// and counted as a listener it would make its host's callers ambiguous. A DNS server neither.
fn serves_handlers(ex: &Exchange) -> bool {
    !matches!(ex.call, Call::Redis(_) | Call::Postgres(_) | Call::Dns(_))
}

/// `"{client} {server}"`, the text a connection's key is the hash of.
fn connection_text(ex: &Exchange) -> String {
    let mut out = String::with_capacity(43);
    text::push_socket_addr(&mut out, &ex.client);
    out.push(' ');
    text::push_socket_addr(&mut out, &ex.server);
    out
}

fn made(n: &Node, index: u32) -> assign::Made {
    assign::Made {
        start: n.start,
        end: n.end,
        launch: n.keys.launch,
        ret: n.keys.ret,
        callee: n.keys.callee,
        conn: n.keys.conn,
        index,
    }
}

impl CausalityBuilder {
    pub fn new(config: CausalityConfig) -> Self {
        CausalityBuilder {
            routes: Routes::new(config.routes.clone()),
            config,
            nodes: KeyMap::default(),
            next_id: 0,
            inbound: HashMap::new(),
            undecided: BTreeSet::new(),
            watermark: Timestamp(0),
            delays_at: HashMap::new(),
            listeners: HashMap::new(),
            stats: CausalityStats::default(),
        }
    }

    pub fn pending(&self) -> usize {
        self.nodes.len()
    }

    pub fn push<F: FnMut(Span)>(&mut self, mut ex: Exchange, out: &mut F) {
        self.stats.exchanges += 1;
        let listener_room =
            self.listeners.len() < MAX_LISTENER_IPS || self.listeners.contains_key(&ex.server.ip());
        if listener_room && serves_handlers(&ex) {
            let ports = self.listeners.entry(ex.server.ip()).or_default();
            if ports.len() < 64 {
                ports.insert(ex.server.port());
            }
        }
        let ctx = propagated_context(&ex);
        let mut known_request_ids: Vec<String> = [
            ex.request().and_then(|r| r.header("x-request-id")),
            ex.response().and_then(|r| r.header("x-request-id")),
        ]
        .into_iter()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
        known_request_ids.dedup();
        let request_id = known_request_ids.first().cloned();
        let start = ex.start();
        let end = ex.end();
        let request_end = ex.t.request_end.unwrap_or(start);
        let id = self.next_id;
        self.next_id += 1;
        // Only a request some handler served can have made calls: a Redis command or a SQL
        // statement answered at the caller's own address (a cache or database on the service's
        // host) is no candidate parent of the calls that leave that address while it runs.
        if serves_handlers(&ex) {
            let inbound = self.inbound.entry(ex.server.ip()).or_default();
            inbound
                .by_start
                .insert((start, id), (ex.server.port(), end));
            inbound.longest_ns = inbound.longest_ns.max(end.saturating_since(start));
        }
        self.undecided.insert((end, id));
        self.nodes.insert(
            id,
            Box::new(Node {
                keys: StepKeys::of(&ex),
                draft: self
                    .config
                    .draft_on_arrival
                    .then(|| SpanDraft::taking_headers(&mut ex)),
                ex,
                ctx,
                request_id,
                known_request_ids,
                start,
                request_end,
                end,
                parent: Parent::Undecided,
                children: Vec::new(),
            }),
        );
        self.stats.peak_pending = self.stats.peak_pending.max(self.nodes.len() as u64);
        self.follow_clock(end);
        self.decide_due(out);
        if self.nodes.len() > self.config.max_pending {
            // Decide the oldest sixteenth early: amortised O(1) per exchange.
            let n = (self.undecided.len() / 16).max(1);
            let oldest: Vec<NodeId> = (0..n)
                .filter_map(|_| self.undecided.pop_first())
                .map(|(_, id)| id)
                .collect();
            self.stats.forced_decisions += oldest.len() as u64;
            self.decide_batch(oldest, out);
        }
    }

    /// Capture time moves on with an exchange that ended at `end`: forward, except after the
    /// capturing host's clock stepped back (NTP) by more than [`CLOCK_STEP_NS`]. Then it follows
    /// the step: held at the old time, every exchange after the step would look older than the
    /// trace window and be decided on arrival, before its parent could be seen.
    fn follow_clock(&mut self, end: Timestamp) {
        if end.0.saturating_add(CLOCK_STEP_NS) < self.watermark.0 {
            self.watermark = end;
        } else {
            self.watermark = self.watermark.max(end);
        }
    }

    /// Capture time has reached `now` even without new exchanges (live capture on a quiet link):
    /// traces whose window has passed leave the builder.
    pub fn advance_to<F: FnMut(Span)>(&mut self, now: Timestamp, out: &mut F) {
        self.watermark = self.watermark.max(now);
        self.decide_due(out);
    }

    /// End of input: decide everything and emit every trace.
    pub fn finish<F: FnMut(Span)>(&mut self, out: &mut F) {
        let all: Vec<NodeId> = std::mem::take(&mut self.undecided)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        self.decide_batch(all, out);
    }

    fn decide_due<F: FnMut(Span)>(&mut self, out: &mut F) {
        // Ripe exchanges are decided together once the oldest has waited RIPE_GROUP_NS: one at
        // a time, a batch's fixed cost (the delay model's tables, rebuilt for every search)
        // outweighed its calls on steady traffic, where an exchange ripens with every packet.
        let oldest_waited = self.undecided.first().is_some_and(|&(end, _)| {
            end.0
                .saturating_add(self.config.window_ns)
                .saturating_add(RIPE_GROUP_NS)
                <= self.watermark.0
        });
        if !oldest_waited {
            return;
        }
        let mut ripe = Vec::new();
        while let Some(&(end, id)) = self.undecided.first() {
            if end.0.saturating_add(self.config.window_ns) > self.watermark.0 {
                break;
            }
            self.undecided.pop_first();
            ripe.push(id);
        }
        self.decide_batch(ripe, out);
    }

    /// Decide the parents of `ids` in order of their start (so a candidate parent's earlier calls
    /// are known when a later one is scored), then emit the traces whose roots were decided.
    /// Every exchange that could hang under those roots ended no later than they did, so it is in
    /// this batch or an earlier one.
    fn decide_batch<F: FnMut(Span)>(&mut self, ids: Vec<NodeId>, out: &mut F) {
        let mut ids: Vec<(Timestamp, NodeId)> = ids
            .into_iter()
            .filter_map(|id| Some((self.nodes.get(&id)?.start, id)))
            .collect();
        ids.sort_unstable();
        let ids: Vec<NodeId> = ids.into_iter().map(|(_, id)| id).collect();
        // Calls without propagated ids, by calling IP: assigned jointly (see `assign`); the
        // others, by their ids.
        let mut by_caller: HashMap<IpAddr, Vec<NodeId>> = HashMap::new();
        let mut with_ids = Vec::new();
        for &id in &ids {
            let end = self.nodes[&id].end;
            self.undecided.remove(&(end, id));
            let n = &self.nodes[&id];
            if n.ctx.is_none() && n.request_id.is_none() {
                by_caller.entry(n.ex.client.ip()).or_default().push(id);
            } else {
                with_ids.push(id);
            }
        }
        let mut callers: Vec<_> = by_caller.into_iter().collect();
        callers.sort_by_key(|(ip, _)| *ip);
        // Each caller's calls are their own problem (its requests, its models): solved side by
        // side on up to `threads` threads, each result as if alone.
        let histories: Vec<fit::Learned> = callers
            .iter()
            .map(|(ip, _)| self.delays_at.remove(ip).unwrap_or_default())
            .collect();
        // Parents given by propagated ids are found beside the nesting search, which does not
        // read them.
        let (solved, mut decided) = {
            let this = &*self;
            let threads = this.config.threads;
            let jobs: Vec<_> = callers.iter().zip(histories).collect();
            let search = || {
                run_side_by_side(jobs, threads, |((_, calls), history)| {
                    this.assign_by_nesting(calls, history)
                })
            };
            let by_ids = || -> Vec<(NodeId, Parent)> {
                with_ids
                    .iter()
                    .map(|&id| (id, this.find_parent(id)))
                    .collect()
            };
            if with_ids.is_empty() {
                (search(), Vec::new())
            } else {
                both(threads, search, by_ids)
            }
        };
        for ((ip, _), (links, learned)) in callers.iter().zip(solved) {
            self.delays_at.insert(*ip, learned);
            decided.extend(links);
        }
        let mut roots = Vec::new();
        for (id, parent) in decided {
            match parent {
                Parent::Node { id: p, link, .. } => {
                    if link == Link::Nesting {
                        self.stats.linked_by_nesting += 1;
                    } else {
                        self.stats.linked_by_id += 1;
                    }
                    if let Some(pn) = self.nodes.get_mut(&p) {
                        pn.children.push(id);
                    }
                }
                _ => {
                    self.stats.roots += 1;
                    roots.push(id);
                }
            }
            if let Some(n) = self.nodes.get_mut(&id) {
                n.parent = match parent {
                    Parent::Undecided => Parent::Root,
                    p => p,
                };
            }
        }
        let mut names = KeyMap::default();
        for root in roots {
            self.emit_tree(root, &mut names, out);
        }
    }

    /// The payload tokens of a batch: each candidate's context (its request, and the responses
    /// of calls given to it by earlier batches), and each call's two messages.
    fn batch_tokens<'a>(&'a self, req_ids: &[NodeId], calls: &[NodeId]) -> BatchTokens<'a> {
        // A response's tokens less its request's: an echo says nothing new.
        let received = |ex: &Exchange| ex.tokens.response.without(&ex.tokens.request);
        BatchTokens {
            req_context: req_ids
                .iter()
                .map(|r| {
                    let rn = &self.nodes[r];
                    let from_calls: Vec<Tokens> = rn
                        .children
                        .iter()
                        .filter_map(|c| self.nodes.get(c))
                        .map(|c| received(&c.ex))
                        .collect();
                    Tokens::union(std::iter::once(&rn.ex.tokens.request).chain(&from_calls))
                })
                .collect(),
            call_request: calls
                .iter()
                .map(|c| &self.nodes[c].ex.tokens.request)
                .collect(),
            call_response: calls.iter().map(|c| received(&self.nodes[c].ex)).collect(),
        }
    }

    /// Parents by send/receive nesting for calls that left `ip`, decided together.
    /// A caller's batch as the search sees it: the candidate requests (their node ids, and as
    /// [`assign::Req`]s) and the calls, each with its candidates by index.
    fn batch_problem(
        &self,
        calls: &[NodeId],
    ) -> (Vec<NodeId>, Vec<assign::Req>, Vec<assign::Call>) {
        let mut req_ids: Vec<NodeId> = Vec::new();
        let mut req_index: KeyMap<NodeId, usize> = KeyMap::default();
        let mut specs = Vec::with_capacity(calls.len());
        let mut last_on_conn: KeyMap<u64, usize> = KeyMap::default();
        // Each call's candidates are found on their own: in chunks, side by side, in a copy of
        // the requests held at the caller that any of them could have been made for.
        let held = self.held_for(calls);
        let chunks: Vec<&[NodeId]> = calls.chunks(CANDIDATES_CHUNK).collect();
        let found = run_side_by_side(chunks, self.config.threads, |chunk| {
            chunk
                .iter()
                .map(|&id| match &held {
                    Some(held) => self.candidates_in(id, held),
                    None => self.candidates(id),
                })
                .collect::<Vec<_>>()
        });
        for (&id, found) in calls.iter().zip(found.into_iter().flatten()) {
            let mut candidates = Vec::new();
            for r in found {
                let k = *req_index.entry(r).or_insert_with(|| {
                    req_ids.push(r);
                    req_ids.len() - 1
                });
                candidates.push(k);
            }
            let n = &self.nodes[&id];
            let made = made(n, specs.len() as u32);
            // `calls` come in start order, and a connection's exchanges one after another.
            // An unknown connection (0: multiplexed) links no calls.
            let previous_on_conn = match made.conn {
                0 => None,
                conn => last_on_conn.insert(conn, specs.len()),
            };
            specs.push(assign::Call {
                made,
                candidates,
                previous_on_conn,
            });
        }
        let reqs: Vec<assign::Req> = req_ids
            .iter()
            .map(|r| {
                let rn = &self.nodes[r];
                assign::Req {
                    arrived: rn.request_end.max(rn.start),
                    responds: rn.ex.t.response_start.unwrap_or(rn.end),
                    endpoint: rn.keys.endpoint,
                    prior_calls: rn
                        .children
                        .iter()
                        .filter_map(|c| self.nodes.get(c))
                        .map(|c| made(c, assign::NOT_IN_BATCH))
                        .collect(),
                }
            })
            .collect();
        (req_ids, reqs, specs)
    }

    fn assign_by_nesting(
        &self,
        calls: &[NodeId],
        history: &fit::Learned,
    ) -> (Vec<(NodeId, Parent)>, fit::Learned) {
        let (req_ids, reqs, specs) = self.batch_problem(calls);
        let threads = self.config.threads;
        // Connections are evidence only where the pool is not shared (see `reuse`).
        // `specs` are in start order already (see `previous_on_conn` above).
        let made_in_order: Vec<assign::Made> = specs.iter().map(|c| c.made).collect();
        let reuse_informs = !reuse::pool_is_shared(&made_in_order);
        // Sync workers behind a listen queue (gunicorn) start a request's handler when a worker
        // is free, not when it arrived. Whether this caller works that way is decided by which
        // reading explains its calls better, by their joint probability with the assignment
        // (the likelihood and the prior over running handlers, `assign::ln_prior`), both
        // found by the same search: a wider search finds likelier assignments for the reading
        // with more freedom, and the choice must not depend on it. The readings are compared
        // once EM has settled, and only the better one gets the final, wider search.
        let queued = reuse::workers_if_queued(&reqs, &made_in_order).map(|workers| {
            let mut queued = reqs.clone();
            reuse::start_when_a_worker_is_free(&mut queued, workers);
            queued
        });
        // Each reading's first guess is its own (it depends on when requests started).
        let starts: Vec<&[assign::Req]> = std::iter::once(&reqs)
            .chain(&queued)
            .map(Vec::as_slice)
            .collect();
        // The payload tokens and the first guesses do not depend on each other. With the
        // tokens, what they say before EM refits their propagation: where it starts, and
        // whether they may carry the batch.
        let ((tokens, first_evidence), bases) = both(
            threads,
            || {
                let tokens =
                    tokens::TokenMatches::of_batch(&self.batch_tokens(&req_ids, calls), &specs);
                let evidence =
                    tokens::TokenEvidence::of_batch(&tokens, &specs, &history.propagation);
                (tokens, evidence)
            },
            || {
                run_side_by_side(starts.clone(), threads, |r| {
                    fit::base_model(history, r, &specs, threads)
                })
            },
        );
        let readings: Vec<Reading<'_>> = starts.into_iter().zip(bases).collect();
        let settle = |(reqs, base): &Reading<'_>, effort: fit::Effort, scored: bool| {
            let start = fit::Start {
                history,
                base,
                evidence: &first_evidence,
            };
            fit::settle(reqs, &specs, &tokens, start, reuse_informs, effort, scored)
        };
        // The readings are searched side by side too; their scores are worked out only to be
        // compared (a lone reading has nothing to compare with).
        let read_and_fit = |effort: fit::Effort| {
            let scored = readings.len() > 1;
            let settled = run_side_by_side(readings.iter().collect(), threads, |r| {
                settle(r, effort.on(threads), scored)
            });
            let (settled, reading) = best_reading(settled, &readings, &specs);
            let fitted =
                fit::final_assignment(reading.0, &specs, history, settled, effort.on(threads));
            (fitted, reading)
        };
        // Where too few calls carry rare tokens for them to carry the batch, the narrow search
        // is not tried.
        let may_carry = first_evidence.informative_share() >= fit::TOKENS_CARRY;
        let (mut fitted, mut reading) = if may_carry {
            read_and_fit(fit::Effort::NARROW)
        } else {
            read_and_fit(fit::Effort::FAST)
        };
        if may_carry && fitted.token_share < fit::TOKENS_CARRY {
            (fitted, reading) = read_and_fit(fit::Effort::FAST);
        }
        if self.config.search == fit::Search::Wide {
            let wide = fit::Effort::WIDE.on(threads);
            let settled = settle(reading, wide, false);
            fitted = fit::final_assignment(reading.0, &specs, history, settled, wide);
        }
        (nesting_links(calls, &req_ids, fitted.links), fitted.learned)
    }

    /// The requests held at the caller's address whose start could make them a candidate of
    /// call `e` (see [`Self::candidates`]), if any could.
    fn held_range(&self, e: &Node) -> Option<(&Inbound, HeldRange)> {
        let at_caller = self.inbound.get(&e.ex.client.ip())?;
        Some((at_caller, held_range_of(e, at_caller.longest_ns)?))
    }

    /// The requests that may have made call `id`, latest started first.
    fn candidates(&self, id: NodeId) -> Vec<NodeId> {
        let e = &self.nodes[&id];
        let Some((at_caller, range)) = self.held_range(e) else {
            return Vec::new();
        };
        let latest = at_caller.by_start.range(range).rev();
        let mut found = Vec::new();
        enclosing(id, e, latest.take(self.config.max_candidates), &mut found);
        found
    }

    /// The requests held at the caller of `calls` (one address) that any of them could have
    /// been made for (see [`Held`]): from the earliest any call's range reaches, but no further
    /// back than `max_candidates` before the earliest end of a range, as no call looks further
    /// (each looks at the latest `max_candidates` of its range, and no range ends before that).
    /// None where that holds more than the calls' scans of the tree would look at together
    /// (`max_candidates` each): a long call in a short batch then scans the tree itself.
    fn held_for(&self, calls: &[NodeId]) -> Option<Held> {
        let caller = calls.first().map(|id| self.nodes[id].ex.client.ip());
        debug_assert!(calls
            .iter()
            .all(|id| Some(self.nodes[id].ex.client.ip()) == caller));
        let mut bounds = None;
        for (at_caller, range) in calls
            .iter()
            .filter_map(|id| self.held_range(&self.nodes[id]))
        {
            let (first, last) = range.into_inner();
            bounds = Some(match bounds {
                None => (at_caller, first, last, last),
                Some((_, f, l, e)) => (at_caller, first.min(f), last.max(l), last.min(e)),
            });
        }
        let Some((at_caller, mut from, to, earliest_end)) = bounds else {
            return Some(Held::default());
        };
        // With no candidate allowed, no call looks at anything.
        let Some(back) = self.config.max_candidates.checked_sub(1) else {
            return Some(Held::default());
        };
        let reach = at_caller.by_start.range(..=earliest_end).rev().nth(back);
        if let Some((&key, _)) = reach {
            from = from.max(key);
        }
        let most = calls.len().saturating_mul(self.config.max_candidates);
        let entries: Vec<_> = at_caller
            .by_start
            .range(from..=to)
            .take(most.saturating_add(1))
            .map(|(&k, &v)| (k, v))
            .collect();
        if entries.len() > most {
            return None;
        }
        let latest_end = entries
            .chunks(HELD_BLOCK)
            .map(|block| {
                block
                    .iter()
                    .fold(Timestamp(0), |t, (_, (_, end))| t.max(*end))
            })
            .collect();
        Some(Held {
            entries,
            latest_end,
            longest_ns: at_caller.longest_ns,
        })
    }

    /// [`Self::candidates`], among `held` (see [`Self::held_for`]): the same requests in the
    /// same order, without testing those of a block that all ended before the call did.
    fn candidates_in(&self, id: NodeId, held: &Held) -> Vec<NodeId> {
        let e = &self.nodes[&id];
        let Some(range) = held_range_of(e, held.longest_ns) else {
            return Vec::new();
        };
        let entries = &held.entries;
        let from = entries.partition_point(|(k, _)| k < range.start());
        let to = entries.partition_point(|(k, _)| k <= range.end());
        // The scan of the tree looks at the latest `max_candidates` started in range.
        let from = from.max(to.saturating_sub(self.config.max_candidates));
        let mut found = Vec::new();
        let mut end = to;
        while end > from {
            let block = (end - 1) / HELD_BLOCK;
            let start = (block * HELD_BLOCK).max(from);
            if held.latest_end[block] >= e.end {
                // As the tree's iterator gives them: a pair of references.
                let scanned = entries[start..end].iter().rev().map(|(k, v)| (k, v));
                enclosing(id, e, scanned, &mut found);
            }
            end = start;
        }
        found
    }

    fn find_parent(&self, id: NodeId) -> Parent {
        let candidates = self.candidates(id);
        let e = &self.nodes[&id];
        if let Some(ctx) = e.explicit_context() {
            // Forwarded unchanged by a service without a tracer: link to the inbound exchange.
            let forwarded = candidates.iter().copied().filter(|r| {
                self.nodes[r].explicit_context().is_some_and(|rc| {
                    rc.trace_id == ctx.trace_id && rc.parent_span_id == ctx.parent_span_id
                })
            });
            return match self.innermost(forwarded) {
                Some(r) => Parent::Node {
                    id: r,
                    link: ctx.link,
                    confidence: 1.0,
                },
                None => Parent::Root,
            };
        }
        if let Some(rid) = &e.request_id {
            let same_id = candidates
                .iter()
                .copied()
                .filter(|r| self.nodes[r].known_request_ids.contains(rid));
            return match self.innermost(same_id) {
                Some(r) => Parent::Node {
                    id: r,
                    link: Link::XRequestId,
                    confidence: 1.0,
                },
                None => Parent::Root,
            };
        }
        // Calls without propagated ids are decided together by `assign_by_nesting`.
        Parent::Root
    }

    /// The candidate that encloses this call most tightly.
    fn innermost(&self, ids: impl Iterator<Item = NodeId>) -> Option<NodeId> {
        ids.min_by_key(|r| {
            let n = &self.nodes[r];
            (n.end.0 - n.start.0, std::cmp::Reverse(n.start))
        })
    }

    /// `names`: the names of the ends of exchanges already emitted in this batch, by
    /// [`names_key`] (what the listeners map says cannot change within one).
    fn emit_tree<F: FnMut(Span)>(
        &mut self,
        root: NodeId,
        names: &mut KeyMap<(IpAddr, SocketAddr), Endpoints>,
        out: &mut F,
    ) {
        let Some(rn) = self.nodes.get(&root) else {
            return;
        };
        self.stats.traces += 1;
        let trace_id = match (&rn.ctx, &rn.request_id) {
            (Some(c), _) => c.trace_id,
            (None, Some(rid)) => ids::request_id_trace_id(rid),
            (None, None) => ids::root_trace_id(exchange_id_of(&rn.ex)),
        };
        // (node, the server span id of its parent exchange)
        let mut stack: Vec<(NodeId, Option<u64>)> = vec![(root, None)];
        while let Some((id, parent_span)) = stack.pop() {
            let Some(mut node) = self.nodes.remove(&id) else {
                continue;
            };
            let draft = node
                .draft
                .take()
                .unwrap_or_else(|| SpanDraft::taking_headers(&mut node.ex));
            if let Some(inbound) = self.inbound.get_mut(&node.ex.server.ip()) {
                inbound.by_start.remove(&(node.start, id));
                if inbound.by_start.is_empty() {
                    self.inbound.remove(&node.ex.server.ip());
                }
            }
            self.undecided.remove(&(node.end, id));
            let server_span = draft.server_span_id();
            stack.extend(node.children.iter().map(|&c| (c, Some(server_span))));
            let linkage = match (node.parent, parent_span) {
                (
                    Parent::Node {
                        link, confidence, ..
                    },
                    Some(p),
                ) => Linkage {
                    trace_id,
                    client_parent: Some(p),
                    link: Some((link, confidence)),
                },
                _ => Linkage {
                    trace_id,
                    client_parent: node.explicit_context().and_then(|c| c.parent_span_id),
                    link: node.ctx.as_ref().map(|c| (c.link, 1.0)),
                },
            };
            let names = match names_key(&node.ex) {
                Some(key) => names
                    .entry(key)
                    .or_insert_with(|| self.names(&node.ex))
                    .clone(),
                None => self.names(&node.ex),
            };
            let route = node.ex.request().and_then(|r| {
                let path = split_target(&r.target).0?;
                Some(self.routes.route(&names.server, &r.method, path))
            });
            for span in draft.finish(&linkage, names, route.as_deref()) {
                out(span);
            }
        }
    }

    /// Service names: the services map, else the server's `ip:port`; a caller by its IP's single
    /// known listening service, else its IP.
    fn names(&self, ex: &Exchange) -> Endpoints {
        let services = &self.config.services;
        let server = match (services.server_name(ex.server), &ex.call) {
            (Some(name), _) => name.to_string(),
            // A TLS handshake says which server the client asked for (SNI): the service map
            // should say `api.example.com`, not the address it resolved to. Nothing else on
            // the connection is read (it is encrypted).
            (None, Call::Tls(hs)) => hs
                .client
                .server_name
                .clone()
                .unwrap_or_else(|| text::socket_addr(&ex.server)),
            (None, _) => text::socket_addr(&ex.server),
        };
        let ip = ex.client.ip();
        let client = match services.client_name(ip) {
            Some(n) => n.to_string(),
            // The one service listening on the caller's IP, unless that is the callee itself
            // (a client on the server's own host, e.g. curl on loopback, is someone else).
            None => match self.listeners.get(&ip) {
                Some(ports) if ports.len() == 1 => {
                    let addr = SocketAddr::new(ip, *ports.iter().next().expect("one port"));
                    if addr == ex.server {
                        text::ip(&ip)
                    } else {
                        services
                            .server_name(addr)
                            .map_or_else(|| text::socket_addr(&addr), str::to_string)
                    }
                }
                _ => text::ip(&ip),
            },
        };
        Endpoints { client, server }
    }
}

/// A reading of a caller's requests (when each handler began: see `assign_by_nesting`), and
/// the delay model EM starts from under it.
type Reading<'a> = (&'a [assign::Req], DelayModel);

/// The reading whose settled models explain its calls best, by the likelihood of the
/// assignment they make and the prior over the handlers running (see `assign_by_nesting`); a
/// lone reading as it is.
fn best_reading<'r, 'a>(
    settled: Vec<fit::Settled>,
    readings: &'r [Reading<'a>],
    specs: &[assign::Call],
) -> (fit::Settled, &'r Reading<'a>) {
    let mut settled = settled.into_iter().zip(readings);
    if readings.len() == 1 {
        return settled.next().expect("the plain reading");
    }
    settled
        .map(|(settled, reading)| {
            let score = settled.score.expect("compared readings are scored");
            let joint = score + assign::ln_prior(reading.0, specs);
            (settled, reading, joint)
        })
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(settled, reading, _)| (settled, reading))
        .expect("at least the plain reading")
}

/// Each call's parent as the search chose it: the candidate (by its index in `req_ids`) with
/// its confidence, or none.
fn nesting_links(
    calls: &[NodeId],
    req_ids: &[NodeId],
    chosen: assign::Links,
) -> Vec<(NodeId, Parent)> {
    calls
        .iter()
        .zip(chosen)
        .map(|(&id, choice)| match choice {
            Some((k, confidence)) => (
                id,
                Parent::Node {
                    id: req_ids[k],
                    link: Link::Nesting,
                    confidence,
                },
            ),
            None => (id, Parent::Root),
        })
        .collect()
}

/// What an exchange's names ([`CausalityBuilder::names`]) depend on, when that is only its
/// addresses: not for a TLS handshake, whose server may be named by its SNI.
fn names_key(ex: &Exchange) -> Option<(IpAddr, SocketAddr)> {
    (!matches!(ex.call, Call::Tls(_))).then(|| (ex.client.ip(), ex.server))
}

#[cfg(test)]
mod connection_key_tests {
    use super::*;
    use crate::protocols::http1::{Instants, PayloadTokens, RequestInfo, Version};

    pub(super) fn exchange(version: Version) -> Exchange {
        crate::protocols::http1::HttpExchange {
            conn: crate::reassembly::ConnId(1),
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:50051".parse().unwrap(),
            depth: 1,
            anchor_seq: 1,
            request: Some(RequestInfo {
                method: "POST".into(),
                target: "/shop.Catalog/GetItem".into(),
                version: Some(version),
                headers: Vec::new(),
                body_size: 0,
                truncated: false,
                grpc: None,
                unknown_headers: Vec::new(),
            }),
            response: None,
            informational: Vec::new(),
            t: Instants::default(),
            gaps: 0,
            snapped: false,
            error: None,
            tokens: PayloadTokens::default(),
        }
        .into()
    }

    #[test]
    fn a_multiplexed_connection_is_no_evidence_of_the_worker() {
        // HTTP/2: many handlers' calls share the connection, so it has no key (0: unknown).
        assert_eq!(StepKeys::of(&exchange(Version::Http2)).conn, 0);
        assert_ne!(StepKeys::of(&exchange(Version::Http1(1))).conn, 0);
    }
}

#[cfg(test)]
mod candidate_tests {
    use super::*;
    use crate::protocols::http1::{Instants, Version};

    /// An exchange from `client` to `server` over [start, end] (ms).
    fn exchange(client: &str, server: &str, start: u64, end: u64) -> Exchange {
        let ms = 1_000_000;
        let mut ex = super::connection_key_tests::exchange(Version::Http1(1));
        ex.client = client.parse().unwrap();
        ex.server = server.parse().unwrap();
        ex.t = Instants::of_ns(start * ms, start * ms, Some(end * ms), Some(end * ms));
        ex
    }

    /// Requests served at 10.0.0.1 and calls leaving it (some to its own listener, some longer
    /// than any request), at times drawn from `seed`; with `long_request`, one request that
    /// outlasts them all, so that every call's range reaches back to the first request.
    fn caller_with_calls(
        max_candidates: usize,
        seed: u64,
        long_request: bool,
    ) -> (CausalityBuilder, Vec<NodeId>) {
        let mut builder = CausalityBuilder::new(CausalityConfig {
            max_candidates,
            threads: 1,
            ..CausalityConfig::default()
        });
        let mut state = seed;
        let mut draw = |below: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % below
        };
        let mut pushed = Vec::new();
        let mut push = |b: &mut CausalityBuilder, ex: Exchange| {
            pushed.push((ex.client.ip(), b.next_id));
            b.push(ex, &mut |_| {
                panic!("nothing is decided inside the trace window")
            });
        };
        if long_request {
            push(
                &mut builder,
                exchange("10.0.0.9:1", "10.0.0.1:8000", 0, 3_000),
            );
        }
        for k in 0..300 {
            let start = 10 + 7 * k + draw(7);
            let client = format!("10.0.0.9:{}", 2 + k);
            let end = start + 5 + draw(40);
            push(&mut builder, exchange(&client, "10.0.0.1:8000", start, end));
        }
        for k in 0..200 {
            let start = 12 + 11 * k + draw(11);
            let server = if k % 10 == 0 {
                "10.0.0.1:8000"
            } else {
                "10.0.0.2:9000"
            };
            let client = format!("10.0.0.1:{}", 40_000 + k);
            let end = start + 1 + if k % 25 == 0 { 100 } else { draw(8) };
            push(&mut builder, exchange(&client, server, start, end));
        }
        let mut calls: Vec<(Timestamp, NodeId)> = pushed
            .into_iter()
            .filter(|(ip, _)| *ip == "10.0.0.1".parse::<IpAddr>().unwrap())
            .map(|(_, id)| (builder.nodes[&id].start, id))
            .collect();
        calls.sort_unstable();
        (builder, calls.into_iter().map(|(_, id)| id).collect())
    }

    #[test]
    fn a_batch_finds_in_its_copy_the_candidates_the_tree_gives() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for (seed, long_request) in [(1, true), (2, false), (3, false)] {
            for max_candidates in [4096, 17, 16, 15, 5, 1, 0] {
                let (made, calls) = caller_with_calls(max_candidates, seed, long_request);
                let held_there = &made.inbound[&ip].by_start;
                let (mut with_several, mut with_none) = (0, 0);
                // The whole batch, and later parts of it: their copies start after requests
                // still held.
                for batch in std::iter::once(&calls[..]).chain(calls[100..].chunks(20)) {
                    let Some(held) = made.held_for(batch) else {
                        // Only where the copy would outgrow the calls' own scans.
                        assert!(max_candidates < 5, "at most {max_candidates}");
                        continue;
                    };
                    for &id in batch {
                        let from_tree = made.candidates(id);
                        assert_eq!(
                            made.candidates_in(id, &held),
                            from_tree,
                            "call {id}, seed {seed}, at most {max_candidates}"
                        );
                        with_several += usize::from(from_tree.len() > 1);
                        with_none += usize::from(from_tree.is_empty());
                    }
                    // No more than `max_candidates` before the first call that looks, and
                    // what started from there to the last.
                    let ends = batch
                        .iter()
                        .filter_map(|id| made.held_range(&made.nodes[id]))
                        .map(|(_, range)| *range.end());
                    if let (Some(first), Some(last)) = (ends.clone().min(), ends.max()) {
                        let started =
                            held_there.range(..=last).count() - held_there.range(..=first).count();
                        let copied = held.entries.len();
                        assert!(copied <= max_candidates + started, "{copied}");
                    }
                }
                // What is compared is more than empty lists, and some calls have none.
                if max_candidates > 1 {
                    assert!(with_several > calls.len() / 2, "{with_several}");
                }
                assert!(with_none > 0);
            }
        }
    }
}
