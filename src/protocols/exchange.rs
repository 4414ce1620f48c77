//! [`Exchange`]: what every decoder emits and causality consumes — one request and its answer
//! (either may be missing), whatever the protocol. The part every protocol has (endpoints,
//! instants, gaps, what went wrong, payload tokens) is here; the protocol's own part is a
//! [`Call`] variant, which span mapping (and causality, for HTTP's propagated ids and routes)
//! looks into.

use std::net::SocketAddr;

use tapspan_capture::Timestamp;

use super::dns::DnsExchange;
use super::http1::tokens::Tokens;
use super::http1::{RequestInfo, ResponseInfo};
use super::postgres::PgExchange;
use super::redis::RedisExchange;
use super::tls::TlsHandshake;
use crate::reassembly::ConnId;

/// The instants of an exchange, each the timestamp of the packet that delivered that byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Instants {
    pub request_start: Option<Timestamp>,
    pub request_end: Option<Timestamp>,
    pub response_start: Option<Timestamp>,
    pub response_end: Option<Timestamp>,
    /// A FIN or RST seen while the exchange was still open: when one side gave up on it (a
    /// caller's timeout, a server's crash). Ends the spans of an exchange never answered.
    pub closed: Option<Timestamp>,
}

impl Instants {
    /// From capture times in nanoseconds, as the record-per-message decoders (Redis,
    /// PostgreSQL, DNS) keep them: a request always seen, a response maybe.
    pub fn of_ns(
        request_start: u64,
        request_end: u64,
        response_start: Option<u64>,
        response_end: Option<u64>,
    ) -> Instants {
        Instants {
            request_start: Some(Timestamp(request_start)),
            request_end: Some(Timestamp(request_end)),
            response_start: response_start.map(Timestamp),
            response_end: response_end.map(Timestamp),
            closed: None,
        }
    }
}

/// The payload tokens of an exchange's two messages (see [`super::http1::tokens`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayloadTokens {
    pub request: Tokens,
    pub response: Tokens,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub conn: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// 1-based position of this exchange on its connection.
    pub depth: u32,
    /// Absolute TCP sequence number of the request's first byte (or the response's, when the
    /// request was not captured): with the 4-tuple it identifies the exchange at any capture point.
    pub anchor_seq: u32,
    pub t: Instants,
    /// Capture gaps that fell inside this exchange.
    pub gaps: u32,
    /// The capture's snap length cut bytes of this exchange (`tapspan.truncated`): its sizes
    /// count them, as sent, but what they held was not read.
    pub snapped: bool,
    /// Why the exchange is incomplete (`error.type`), if it is.
    pub error: Option<&'static str>,
    /// Keyed hashes of the values each side carried: evidence for causality, never exported.
    pub tokens: PayloadTokens,
    /// What the protocol itself says about the exchange.
    pub call: Call,
}

/// The protocol's own part of an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Http(HttpCall),
    /// A command and its reply.
    Redis(RedisExchange),
    /// A simple query or an extended-protocol Execute, and its outcome.
    Postgres(PgExchange),
    /// A handshake: the connection's one exchange (what follows is encrypted).
    Tls(TlsHandshake),
    /// A DNS query and its response, over UDP or TCP.
    Dns(DnsExchange),
}

/// An HTTP request and its response, as their heads said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    pub request: Option<RequestInfo>,
    pub response: Option<ResponseInfo>,
    /// 1xx responses before the final one, with the time each began.
    pub informational: Vec<(u16, Timestamp)>,
}

impl Exchange {
    /// First instant seen of the exchange.
    pub fn start(&self) -> Timestamp {
        self.t
            .request_start
            .or(self.t.response_start)
            .unwrap_or_default()
    }

    /// Last instant seen of the exchange.
    pub fn end(&self) -> Timestamp {
        [
            self.t.response_end,
            self.t.closed,
            self.t.response_start,
            self.t.request_end,
            self.t.request_start,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default()
    }

    /// The HTTP part, if this is an HTTP exchange.
    pub fn http(&self) -> Option<&HttpCall> {
        match &self.call {
            Call::Http(h) => Some(h),
            _ => None,
        }
    }

    pub fn http_mut(&mut self) -> Option<&mut HttpCall> {
        match &mut self.call {
            Call::Http(h) => Some(h),
            _ => None,
        }
    }

    /// The HTTP request, if this is an HTTP exchange whose request was captured.
    pub fn request(&self) -> Option<&RequestInfo> {
        self.http()?.request.as_ref()
    }

    /// The HTTP response, if this is an HTTP exchange whose response was captured.
    pub fn response(&self) -> Option<&ResponseInfo> {
        self.http()?.response.as_ref()
    }

    /// 1xx responses of an HTTP exchange (none for other protocols).
    pub fn informational(&self) -> &[(u16, Timestamp)] {
        self.http().map_or(&[], |h| h.informational.as_slice())
    }

    /// Whether the request side was captured (part of the exchange's identity).
    pub fn request_seen(&self) -> bool {
        match &self.call {
            Call::Http(h) => h.request.is_some(),
            // These decoders make an exchange only from a request they saw begin.
            Call::Redis(_) | Call::Postgres(_) | Call::Tls(_) | Call::Dns(_) => true,
        }
    }

    /// The protocol's name, as in the registry.
    pub fn protocol(&self) -> &'static str {
        match &self.call {
            Call::Http(_) => "http1",
            Call::Redis(_) => "redis",
            Call::Postgres(_) => "postgresql",
            Call::Tls(_) => "tls",
            Call::Dns(_) => "dns",
        }
    }
}
