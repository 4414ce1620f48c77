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
//!    confidence. No enclosing candidate: the call is a root, never forced under a wrong parent.
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

pub mod nesting;
pub mod services;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use tapspan_capture::Timestamp;

use crate::http::HttpExchange;
use crate::ids;
use crate::span::{
    build_spans, exchange_id_of, propagated_context, Endpoints, Linkage, Span, TraceContext,
};
use nesting::DelayModel;
pub use services::ServiceMap;

#[derive(Clone, Debug)]
pub struct CausalityConfig {
    /// Capture time after an exchange ends before its parent is decided.
    pub window_ns: u64,
    /// Exchanges held at once; beyond it the oldest are decided early.
    pub max_pending: usize,
    /// Candidates examined per call (most recent first).
    pub max_candidates: usize,
    pub services: ServiceMap,
}

impl Default for CausalityConfig {
    fn default() -> Self {
        CausalityConfig {
            window_ns: 5_000_000_000,
            max_pending: 500_000,
            max_candidates: 4096,
            services: ServiceMap::default(),
        }
    }
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
        link: &'static str,
        confidence: f64,
    },
}

struct Node {
    ex: HttpExchange,
    ctx: Option<TraceContext>,
    /// The X-Request-ID this exchange carries: its request's, else its response's.
    request_id: Option<String>,
    /// Every X-Request-ID value seen on the exchange: a service may replace a caller's id (nginx
    /// does, when configured to), and its calls then carry the id from its response.
    known_request_ids: Vec<String>,
    start: Timestamp,
    /// When the request had fully arrived (its last byte), else its start.
    request_end: Timestamp,
    end: Timestamp,
    parent: Parent,
    children: Vec<NodeId>,
}

impl Node {
    fn encloses(&self, other: &Node) -> bool {
        self.start <= other.start
            && other.end <= self.end
            && (self.start < other.start || other.end < self.end)
    }
    fn explicit_context(&self) -> Option<&TraceContext> {
        self.ctx.as_ref().filter(|c| c.link != "x-request-id")
    }
}

pub struct CausalityBuilder {
    config: CausalityConfig,
    nodes: HashMap<NodeId, Node>,
    next_id: NodeId,
    /// Inbound exchanges by the server's IP, by start time: the candidate parents.
    inbound: HashMap<IpAddr, BTreeSet<(Timestamp, NodeId)>>,
    /// Exchanges whose parent is not decided, by end time.
    undecided: BTreeSet<(Timestamp, NodeId)>,
    watermark: Timestamp,
    delays: DelayModel,
    /// Listening ports seen per IP, to name callers by the service on their IP.
    listeners: HashMap<IpAddr, HashSet<u16>>,
    pub stats: CausalityStats,
}

const MAX_LISTENER_IPS: usize = 65_536;

impl CausalityBuilder {
    pub fn new(config: CausalityConfig) -> Self {
        CausalityBuilder {
            config,
            nodes: HashMap::new(),
            next_id: 0,
            inbound: HashMap::new(),
            undecided: BTreeSet::new(),
            watermark: Timestamp(0),
            delays: DelayModel::default(),
            listeners: HashMap::new(),
            stats: CausalityStats::default(),
        }
    }

    pub fn pending(&self) -> usize {
        self.nodes.len()
    }

    pub fn push<F: FnMut(Span)>(&mut self, ex: HttpExchange, out: &mut F) {
        self.stats.exchanges += 1;
        if self.listeners.len() < MAX_LISTENER_IPS || self.listeners.contains_key(&ex.server.ip()) {
            let ports = self.listeners.entry(ex.server.ip()).or_default();
            if ports.len() < 64 {
                ports.insert(ex.server.port());
            }
        }
        let ctx = propagated_context(&ex);
        let mut known_request_ids: Vec<String> = [
            ex.request.as_ref().and_then(|r| r.header("x-request-id")),
            ex.response.as_ref().and_then(|r| r.header("x-request-id")),
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
        self.inbound
            .entry(ex.server.ip())
            .or_default()
            .insert((start, id));
        self.undecided.insert((end, id));
        self.nodes.insert(
            id,
            Node {
                ex,
                ctx,
                request_id,
                known_request_ids,
                start,
                request_end,
                end,
                parent: Parent::Undecided,
                children: Vec::new(),
            },
        );
        self.stats.peak_pending = self.stats.peak_pending.max(self.nodes.len() as u64);
        self.watermark = self.watermark.max(end);
        self.decide_due(out);
        while self.nodes.len() > self.config.max_pending {
            let Some(&(_, oldest)) = self.undecided.first() else {
                break;
            };
            self.stats.forced_decisions += 1;
            self.decide(oldest, out);
        }
    }

    /// End of input: decide everything and emit every trace.
    pub fn finish<F: FnMut(Span)>(&mut self, out: &mut F) {
        while let Some(&(_, id)) = self.undecided.first() {
            self.decide(id, out);
        }
    }

    fn decide_due<F: FnMut(Span)>(&mut self, out: &mut F) {
        while let Some(&(end, id)) = self.undecided.first() {
            if end.0.saturating_add(self.config.window_ns) > self.watermark.0 {
                break;
            }
            self.decide(id, out);
        }
    }

    fn decide<F: FnMut(Span)>(&mut self, id: NodeId, out: &mut F) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        self.undecided.remove(&(node.end, id));
        let parent = self.find_parent(id);
        match parent {
            Parent::Node { id: p, link, .. } => {
                if link == "nesting" {
                    self.stats.linked_by_nesting += 1;
                } else {
                    self.stats.linked_by_id += 1;
                }
                if let Some(pn) = self.nodes.get_mut(&p) {
                    pn.children.push(id);
                }
            }
            _ => self.stats.roots += 1,
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            n.parent = if parent == Parent::Undecided {
                Parent::Root
            } else {
                parent
            };
        }
        if !matches!(parent, Parent::Node { .. }) {
            self.emit_tree(id, out);
        }
    }

    fn candidates(&self, id: NodeId) -> Vec<NodeId> {
        let e = &self.nodes[&id];
        let Some(at_caller) = self.inbound.get(&e.ex.client.ip()) else {
            return Vec::new();
        };
        at_caller
            .range(..=(e.start, NodeId::MAX))
            .rev()
            .take(self.config.max_candidates)
            .map(|&(_, r)| r)
            .filter(|&r| r != id)
            .filter(|r| {
                let rn = &self.nodes[r];
                rn.parent == Parent::Undecided && rn.ex.server != e.ex.server && rn.encloses(e)
            })
            .collect()
    }

    fn find_parent(&mut self, id: NodeId) -> Parent {
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
                    link: "x-request-id",
                    confidence: 1.0,
                },
                None => Parent::Root,
            };
        }
        // Nesting: gap from each candidate's last event before this call started.
        let gaps: Vec<u64> = candidates
            .iter()
            .map(|r| {
                let rn = &self.nodes[r];
                let arrived = if rn.request_end <= e.start {
                    rn.request_end
                } else {
                    rn.start
                };
                let last_return = rn
                    .children
                    .iter()
                    .filter_map(|c| self.nodes.get(c))
                    .map(|c| c.end)
                    .filter(|t| *t <= e.start)
                    .max()
                    .unwrap_or(arrived);
                e.start.saturating_since(arrived.max(last_return))
            })
            .collect();
        match nesting::choose(&self.delays, &gaps) {
            Some((best, confidence)) => {
                if candidates.len() == 1 {
                    self.delays.observe(gaps[0]);
                }
                Parent::Node {
                    id: candidates[best],
                    link: "nesting",
                    confidence,
                }
            }
            None => Parent::Root,
        }
    }

    /// The candidate that encloses this call most tightly.
    fn innermost(&self, ids: impl Iterator<Item = NodeId>) -> Option<NodeId> {
        ids.min_by_key(|r| {
            let n = &self.nodes[r];
            (n.end.0 - n.start.0, std::cmp::Reverse(n.start))
        })
    }

    fn emit_tree<F: FnMut(Span)>(&mut self, root: NodeId, out: &mut F) {
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
            let Some(node) = self.nodes.remove(&id) else {
                continue;
            };
            if let Some(set) = self.inbound.get_mut(&node.ex.server.ip()) {
                set.remove(&(node.start, id));
                if set.is_empty() {
                    self.inbound.remove(&node.ex.server.ip());
                }
            }
            self.undecided.remove(&(node.end, id));
            let server_span = ids::span_id(exchange_id_of(&node.ex), "server");
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
            let names = self.names(&node.ex);
            for span in build_spans(&node.ex, &linkage, &names) {
                out(span);
            }
        }
    }

    /// Service names: the services map, else the server's `ip:port`; a caller by its IP's single
    /// known listening service, else its IP.
    fn names(&self, ex: &HttpExchange) -> Endpoints {
        let services = &self.config.services;
        let server = services
            .server_name(ex.server)
            .map_or_else(|| ex.server.to_string(), str::to_string);
        let ip = ex.client.ip();
        let client = match services.client_name(ip) {
            Some(n) => n.to_string(),
            // The one service listening on the caller's IP, unless that is the callee itself
            // (a client on the server's own host, e.g. curl on loopback, is someone else).
            None => match self.listeners.get(&ip) {
                Some(ports) if ports.len() == 1 => {
                    let addr = SocketAddr::new(ip, *ports.iter().next().expect("one port"));
                    if addr == ex.server {
                        ip.to_string()
                    } else {
                        services
                            .server_name(addr)
                            .map_or_else(|| addr.to_string(), str::to_string)
                    }
                }
                _ => ip.to_string(),
            },
        };
        Endpoints { client, server }
    }
}
