//! HTTP/2 on the protocol seam ([`crate::protocols::StreamDecoder`]): one [`Http2Conn`] per
//! claimed connection, each stream leaving as an exchange ([`super::to_exchange`]).
//!
//! Claimed by content, on any port: the client preface (prior knowledge), an HTTP/1.1 request
//! asking `Upgrade: h2c`, or — for a connection picked up mid-way — bytes that start with
//! plausible HTTP/2 frames ([`frame::starts_with_frames`]). Registered before HTTP/1.x, which
//! would otherwise take the upgrade request.
//!
//! An `Upgrade: h2c` request is only a question: until the server answers, the connection's
//! events also go to an HTTP/1.x decoder of its own. A `101` keeps HTTP/2 and forgets the
//! HTTP/1.x view; any other answer keeps HTTP/1.x for the rest of the connection (counted in
//! `upgrades_declined`, its exchanges in `http1_exchanges`), as does a connection that ends
//! before the server answered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::frame;
use super::to_exchange::{to_exchange, ConnFacts};
use super::{upgrade, Http2Config, Http2Conn, Http2Stats};
use crate::counters::Counters;
use crate::protocols::http1::{HttpConfig, HttpDecoder};
use crate::protocols::Exchange;
use crate::protocols::{Protocol, ProtocolStats, StreamDecoder};
use crate::reassembly::{ConnId, Direction, OpenHow, Role, StreamEvent};
use crate::redact::HeaderPolicy;

/// HTTP/1.x exchanges held while an upgrade waits for its answer; a client that sends more
/// before the server switched is speaking HTTP/1.x (and the hold stays bounded).
const MAX_HELD_WHILE_UPGRADING: usize = 16;

/// HTTP/2 in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "http2",
    // gRPC's conventional port; HTTP/2 on 80 or 8080 is claimed by content all the same.
    server_ports: &[50051],
    sniff,
    stream: |config| Box::new(Http2Decoder::new(config.http2.clone(), config.http.clone())),
};

/// The preface is the client's. (An upgrade request is HTTP/1.1's, which its sniff knows;
/// frames alone do not say who sent them.)
fn sniff(first: &[u8]) -> Option<Role> {
    let n = first.len().min(frame::PREFACE.len());
    (n >= 4 && first[..n] == frame::PREFACE[..n]).then_some(Role::Client)
}

/// Whether a connection's first bytes are HTTP/2's (see the module doc).
pub fn claims_bytes(first: &[u8]) -> bool {
    Http2Conn::sniff(first) || frame::starts_with_frames(first)
}

/// Where an `Upgrade: h2c` request stands.
enum Upgrade {
    /// No upgrade request: HTTP/2 from the first byte (or from the pickup).
    None,
    /// Asked, not answered: the HTTP/1.x view's exchanges, held until the answer.
    Pending(Vec<Exchange>),
    /// Declined (or never answered): the connection is HTTP/1.x's.
    Declined,
}

struct Conn {
    facts: ConnFacts,
    how: OpenHow,
    open_ts: tapspan_capture::Timestamp,
    /// Made at the first payload, which says whether the connection's start is seen.
    h2: Option<Http2Conn>,
    upgrade: Upgrade,
}

/// The HTTP/2 decoder of one pipeline.
pub struct Http2Decoder {
    config: Http2Config,
    policy: Arc<HeaderPolicy>,
    conns: HashMap<ConnId, Conn>,
    /// HTTP/1.x for connections whose upgrade is pending or was declined.
    http1: HttpDecoder,
    /// Counters of connections already closed, plus the decoder's own.
    closed: Http2Stats,
    /// Reused for each event's streams.
    streams: Vec<super::H2Exchange>,
}

impl Http2Decoder {
    pub fn new(config: Http2Config, http: HttpConfig) -> Self {
        Http2Decoder {
            config,
            policy: Arc::new(http.headers.clone()),
            conns: HashMap::new(),
            http1: HttpDecoder::new(http),
            closed: Http2Stats::default(),
            streams: Vec::new(),
        }
    }

    pub fn stats(&self) -> Http2Stats {
        let mut s = self.closed.clone();
        for c in self.conns.values() {
            if let Some(h2) = &c.h2 {
                s.add(&h2.stats());
            }
        }
        s
    }

    fn emit_streams(
        streams: &mut Vec<super::H2Exchange>,
        c: &Conn,
        policy: &HeaderPolicy,
        stats: &mut Http2Stats,
        out: &mut dyn FnMut(Exchange),
    ) {
        let swapped = c.h2.as_ref().is_some_and(Http2Conn::roles_swapped);
        let facts = ConnFacts {
            client: if swapped {
                c.facts.server
            } else {
                c.facts.client
            },
            server: if swapped {
                c.facts.client
            } else {
                c.facts.server
            },
            ..c.facts
        };
        for x in streams.drain(..) {
            let ex = to_exchange(x, &facts, policy);
            stats.incomplete_exchanges += u64::from(ex.error.is_some());
            out(ex.into());
        }
    }

    /// The first payload of a connection: its HTTP/2 decoder, and whether it asks to upgrade.
    fn start(&mut self, id: ConnId, dir: Direction, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let preface = sniff(bytes).is_some();
        let asks_upgrade =
            dir == Direction::ClientToServer && !preface && upgrade::looks_like_request(bytes);
        let from_start = c.how == OpenHow::Handshake || preface || asks_upgrade;
        c.h2 =
            Some(Http2Conn::new(self.config.clone(), from_start).with_headers(self.policy.clone()));
        if asks_upgrade {
            c.upgrade = Upgrade::Pending(Vec::new());
            let open = StreamEvent::Open {
                conn: id,
                client: c.facts.client,
                server: c.facts.server,
                how: c.how,
                ts: c.open_ts,
            };
            self.http1.push(open, &mut |_| {});
        }
    }

    /// After an event on a connection whose upgrade is pending: settle it if the server
    /// answered (or the connection ended).
    fn settle_upgrade(&mut self, id: ConnId, closing: bool, out: &mut dyn FnMut(Exchange)) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(h2) = &c.h2 else {
            return;
        };
        let too_many =
            matches!(&c.upgrade, Upgrade::Pending(held) if held.len() > MAX_HELD_WHILE_UPGRADING);
        let declined = h2.upgrade_declined() || (closing || too_many) && !h2.upgraded();
        if h2.upgraded() && !declined {
            c.upgrade = Upgrade::None;
            // The HTTP/1.x view read a 101: it forgets the connection, and its exchange.
            let close = StreamEvent::Close {
                conn: id,
                why: crate::reassembly::CloseReason::Fin,
                ts: c.open_ts,
            };
            self.http1.push(close, &mut |_| {});
        } else if declined {
            if let Upgrade::Pending(held) = std::mem::replace(&mut c.upgrade, Upgrade::Declined) {
                self.closed.upgrades_declined += 1;
                self.closed.http1_exchanges += held.len() as u64;
                held.into_iter().for_each(&mut *out);
            }
            // What the HTTP/2 view held of the request goes with it.
            if let Some(h2) = c.h2.take() {
                self.closed.add(&h2.stats());
            }
        }
    }
}

impl StreamDecoder for Http2Decoder {
    fn claims(
        &self,
        _client: SocketAddr,
        _server: SocketAddr,
        _dir: Direction,
        first: &[u8],
    ) -> bool {
        claims_bytes(first)
    }

    fn push(&mut self, ev: StreamEvent<'_>, out: &mut dyn FnMut(Exchange)) {
        let id = match &ev {
            StreamEvent::Open {
                conn,
                client,
                server,
                how,
                ts,
            } => {
                self.closed.connections += 1;
                let facts = ConnFacts {
                    conn: *conn,
                    client: *client,
                    server: *server,
                    closed: None,
                };
                let c = Conn {
                    facts,
                    how: *how,
                    open_ts: *ts,
                    h2: None,
                    upgrade: Upgrade::None,
                };
                self.conns.insert(*conn, c);
                return;
            }
            StreamEvent::Data {
                conn, dir, bytes, ..
            } => {
                let unstarted = self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.h2.is_none() && !matches!(c.upgrade, Upgrade::Declined));
                if unstarted {
                    self.start(*conn, *dir, bytes);
                }
                *conn
            }
            StreamEvent::Gap { conn, .. }
            | StreamEvent::HalfClose { conn, .. }
            | StreamEvent::Close { conn, .. } => *conn,
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let closing = matches!(ev, StreamEvent::Close { .. });
        // The HTTP/1.x view, while it may still be the right one.
        match &mut c.upgrade {
            Upgrade::Pending(held) => {
                self.http1.push(ev, &mut |x| held.push(x));
            }
            Upgrade::Declined => {
                let stats = &mut self.closed;
                self.http1.push(ev, &mut |x| {
                    stats.http1_exchanges += 1;
                    out(x)
                });
            }
            Upgrade::None => {}
        }
        if let Some(h2) = c.h2.as_mut() {
            match ev {
                StreamEvent::Data {
                    dir,
                    seq,
                    ts,
                    bytes,
                    ..
                } => h2.push_at(dir, ts.as_nanos(), seq, bytes, &mut self.streams),
                StreamEvent::Gap { dir, .. } => h2.gap(dir),
                StreamEvent::Close { why, ts, .. } => {
                    c.facts.closed = Some((why, ts));
                    h2.finish(&mut self.streams);
                }
                StreamEvent::HalfClose { .. } | StreamEvent::Open { .. } => {}
            }
        }
        if matches!(c.upgrade, Upgrade::Pending(_)) {
            // Until the server answers, the only stream is the request's (stream 1): it
            // leaves as HTTP/2 only once the server switched.
            self.settle_upgrade(id, closing, out);
        }
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if matches!(c.upgrade, Upgrade::Declined) {
            self.streams.clear();
        } else {
            Self::emit_streams(&mut self.streams, c, &self.policy, &mut self.closed, out);
        }
        if closing {
            if let Some(c) = self.conns.remove(&id) {
                if let Some(h2) = &c.h2 {
                    self.closed.add(&h2.stats());
                }
            }
        }
    }

    fn stats(&self, into: &mut ProtocolStats) {
        into.http2 = Http2Decoder::stats(self);
    }

    fn active_connections(&self) -> usize {
        self.conns.len()
    }
}
