//! HTTP/1.x over reassembled streams: frames messages in both directions, pairs responses with
//! requests in order (pipelining), and emits one [`Exchange`] per request.
//!
//! - Heads are parsed from the packet bytes when whole, copied into a capped buffer when split.
//! - `100 Continue` and other 1xx are not final responses; `101` and a 2xx to `CONNECT` end HTTP
//!   decoding for that connection (what follows is another protocol).
//! - After a capture gap or garbage, decoding resynchronises at the next line that starts a
//!   message; a message cut by the gap is emitted with `error.type` = `capture_gap`.
//! - A request without a response (reset, close, idle, capture end) is emitted with `error.type`.
//! - A connection whose first bytes are not HTTP (TLS, Redis, …) is left alone: no spans, no errors.
//!
//! [`framing`] finds where messages start and end; [`pairing`] turns heads into exchanges. This
//! file is the decoder's side of the protocol seam ([`crate::protocols::StreamDecoder`]): it is
//! the catch-all, registered last, taking every connection no other decoder claimed.

pub mod body;
pub mod exchange;
mod framing;
pub mod head;
mod pairing;
pub mod socks;
pub mod tokens;

use std::collections::VecDeque;
use std::net::SocketAddr;

pub use exchange::{
    GrpcRequest, GrpcResponse, HttpExchange, Instants, PayloadTokens, RequestInfo, ResponseInfo,
    Version,
};

use crate::protocols::{Exchange, Protocol, ProtocolStats, StreamDecoder};
use crate::reassembly::{ConnId, Direction, OpenHow, Role, StreamEvent};
use crate::redact::HeaderPolicy;
use framing::DirState;

/// HTTP/1.x in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "http1",
    server_ports: &[
        80, 443, 8000, 8008, 8080, 8081, 8443, 8888, 3128, 5000, 9000,
    ],
    sniff,
    stream: |config| Box::new(HttpDecoder::new(config.http.clone())),
};

/// Who sends bytes that start like this: a request line is the client's, a status line the
/// server's.
fn sniff(first: &[u8]) -> Option<Role> {
    if head::starts_like_request(first) {
        Some(Role::Client)
    } else if first.len() >= 5 && first[..5].eq_ignore_ascii_case(b"HTTP/") {
        Some(Role::Server)
    } else {
        None
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub headers: HeaderPolicy,
    /// Requests awaiting a response on one connection; beyond it the oldest is given up.
    pub max_pending_requests: usize,
    /// Bytes scanned for a message start on a connection that never showed HTTP, before giving up.
    pub max_resync_scan: u64,
    /// Bytes of one message head held while waiting for its end; a longer head is cut there,
    /// keeping its start line, with `error.type` = `header_too_large`.
    pub max_head_bytes: usize,
    /// Bytes of head buffers (heads split over segments, waiting for their end) across all
    /// connections; a head that would cross it is dropped, keeping its start line if that has
    /// arrived, with `error.type` = [`HEAD_BUFFERS_FULL`].
    pub max_head_bytes_total: usize,
}

/// `error.type` of an exchange whose head was dropped at `max_head_bytes_total`.
pub const HEAD_BUFFERS_FULL: &str = "head_buffers_full";

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            headers: HeaderPolicy::default(),
            max_pending_requests: 128,
            max_resync_scan: 256 * 1024,
            max_head_bytes: 64 * 1024,
            max_head_bytes_total: 64 << 20,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct HttpStats {
    pub connections: u64,
    pub non_http_connections: u64,
    /// Of those, the ones that began like TLS (a handshake record) or HTTP/2 (its preface):
    /// what a user who sees no spans most likely has.
    pub tls_connections: u64,
    pub http2_connections: u64,
    pub upgraded_connections: u64,
    pub exchanges: u64,
    pub incomplete_exchanges: u64,
    pub responses_without_request: u64,
    pub malformed_messages: u64,
    /// Heads longer than `max_head_bytes`, cut after their start line.
    pub heads_too_large: u64,
    /// Split heads dropped because all connections' head buffers reached
    /// `max_head_bytes_total`.
    pub heads_dropped_at_total_cap: u64,
    /// Most bytes of head buffers held at once, across connections.
    pub peak_head_bytes: u64,
    /// Requests given up unanswered because `max_pending_requests` others waited behind them.
    pub pending_requests_dropped: u64,
    pub resyncs: u64,
    /// Exchanges looked at to find the one a message belongs to: a work counter, linear in the
    /// messages however many requests wait (tests/adversarial_cost.rs).
    pub pairing_steps: u64,
}

crate::counters::describe_counters!("http", HttpStats {
    connections: "Connections given to the HTTP/1.x decoder.",
    non_http_connections: "Of those, connections that were not HTTP/1.x.",
    tls_connections: "Of those, connections that began like TLS.",
    http2_connections: "Of those, connections that began with the HTTP/2 preface.",
    upgraded_connections: "Connections upgraded away from HTTP/1.x.",
    exchanges: "Exchanges paired.",
    incomplete_exchanges [Metric]: "Exchanges cut short (reset, timeout, capture ended).",
    responses_without_request: "Responses with no request to pair.",
    malformed_messages: "Messages that could not be parsed.",
    heads_too_large: "Heads longer than the head size cap, cut after their start line.",
    heads_dropped_at_total_cap: "Split heads dropped at the total head cap.",
    peak_head_bytes [Internal]: "Most bytes of head buffers held at once.",
    pending_requests_dropped: "Requests given up unanswered at the pending cap.",
    resyncs: "Times the decoder resynchronised after a gap or bad input.",
    pairing_steps [Internal]: "Exchanges looked at to pair messages.",
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet.
    Unknown,
    Http,
    /// Not HTTP: ignored.
    Opaque,
    /// Switched protocols after a 101 or CONNECT.
    Tunnel,
}

struct HttpConn {
    client: SocketAddr,
    server: SocketAddr,
    how: OpenHow,
    mode: Mode,
    dirs: [DirState; 2],
    /// Requests whose final response has not begun, oldest first.
    waiting: VecDeque<HttpExchange>,
    /// The exchange whose final response is being read.
    responding: Option<HttpExchange>,
    /// Depth of the request being read in the client direction (0 when none).
    reading_request: u32,
    depth: u32,
}

pub struct HttpDecoder {
    config: HttpConfig,
    conns: crate::protocols::ConnIdMap<HttpConn>,
    /// Capacity of every connection's head buffers, kept up to date after each event.
    head_bytes: usize,
    pub stats: HttpStats,
}

impl HttpDecoder {
    pub fn new(config: HttpConfig) -> Self {
        HttpDecoder {
            config,
            conns: Default::default(),
            head_bytes: 0,
            stats: HttpStats::default(),
        }
    }

    pub fn active_connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held in head buffers across connections.
    pub fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    /// Runs `f` on connection `conn` (if tracked) and accounts for its head buffers.
    fn on_conn<F: FnMut(Exchange)>(
        &mut self,
        conn: ConnId,
        out: &mut F,
        f: impl FnOnce(&mut HttpConn, &mut Ctx<'_, F>),
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let before = c.head_buffered();
        let mut ctx = Ctx {
            id: conn,
            config: &self.config,
            stats: &mut self.stats,
            out,
            head_room: self
                .config
                .max_head_bytes_total
                .saturating_sub(self.head_bytes),
        };
        f(c, &mut ctx);
        self.head_bytes = self.head_bytes - before + c.head_buffered();
        self.stats.peak_head_bytes = self.stats.peak_head_bytes.max(self.head_bytes as u64);
    }

    pub fn push<F: FnMut(Exchange)>(&mut self, ev: StreamEvent<'_>, out: &mut F) {
        match ev {
            StreamEvent::Open {
                conn,
                client,
                server,
                how,
                ..
            } => {
                self.stats.connections += 1;
                self.conns.insert(
                    conn,
                    HttpConn {
                        client,
                        server,
                        how,
                        mode: Mode::Unknown,
                        dirs: [DirState::new(), DirState::new()],
                        waiting: VecDeque::new(),
                        responding: None,
                        reading_request: 0,
                        depth: 0,
                    },
                );
            }
            StreamEvent::Data {
                conn,
                dir,
                seq,
                ts,
                bytes,
                ..
            } => self.on_conn(conn, out, |c, ctx| c.data(dir, ts, seq, bytes, ctx)),
            StreamEvent::Gap {
                conn,
                dir,
                len,
                snapped,
                ts,
                ..
            } => self.on_conn(conn, out, |c, ctx| c.gap(dir, len, snapped, ts, ctx)),
            StreamEvent::HalfClose { conn, dir, ts } => self.on_conn(conn, out, |c, ctx| {
                c.half_close(dir, ts, "connection_closed", ctx)
            }),
            StreamEvent::Close { conn, why, ts } => {
                self.on_conn(conn, out, |c, ctx| c.close(why, ts, ctx));
                if let Some(c) = self.conns.remove(&conn) {
                    self.head_bytes -= c.head_buffered();
                }
            }
        }
    }
}

impl StreamDecoder for HttpDecoder {
    /// The catch-all: whatever no decoder before it claimed, HTTP takes, and decides itself
    /// (it resynchronises on a stream picked up mid-message, and counts what is not HTTP).
    fn claims(
        &self,
        _client: SocketAddr,
        _server: SocketAddr,
        _dir: Direction,
        _first: &[u8],
    ) -> bool {
        true
    }

    fn push(&mut self, ev: StreamEvent<'_>, out: &mut dyn FnMut(Exchange)) {
        let mut out = out;
        HttpDecoder::push(self, ev, &mut out);
    }

    fn stats(&self, into: &mut ProtocolStats) {
        into.http.clone_from(&self.stats);
    }

    fn active_connections(&self) -> usize {
        self.conns.len()
    }
}

/// What a connection needs from the decoder while it works.
struct Ctx<'a, F> {
    id: ConnId,
    config: &'a HttpConfig,
    stats: &'a mut HttpStats,
    out: &'a mut F,
    /// Bytes the head buffers of all connections may still grow by.
    head_room: usize,
}

impl<F: FnMut(Exchange)> Ctx<'_, F> {
    fn emit(&mut self, ex: HttpExchange) {
        self.stats.exchanges += 1;
        if ex.error.is_some() {
            self.stats.incomplete_exchanges += 1;
        }
        (self.out)(ex.into());
    }
}
