//! `HttpExchange`: an HTTP/1.x exchange while the decoder assembles it — one request paired
//! with its response (either side may be missing), redacted heads, instants, sizes, and what
//! went wrong. It leaves the decoder as a protocol-neutral [`Exchange`].

use std::net::SocketAddr;

use tapspan_capture::Timestamp;

use crate::protocols::exchange::{Call, Exchange, HttpCall};
pub use crate::protocols::exchange::{Instants, PayloadTokens};
use crate::reassembly::ConnId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub method: String,
    /// Request target as on the wire (origin-form, absolute-form, authority-form or `*`).
    pub target: String,
    /// None for a request line that stated no version (see [`Version::Http09`]).
    pub version: Option<Version>,
    /// Captured headers (lower-case names), already redacted.
    pub headers: Vec<(String, String)>,
    pub body_size: u64,
    /// The request's body did not complete in the capture.
    pub truncated: bool,
    /// gRPC's side of the call (HTTP/2 with a gRPC content type).
    pub grpc: Option<GrpcRequest>,
    /// Headers the capture could not know (HTTP/2: HPACK table entries from before the
    /// capture), by name where known, `?` where not: `tapspan.headers_unknown`.
    pub unknown_headers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    /// None for an HTTP/0.9 response, which has no status line.
    pub status: Option<u16>,
    pub reason: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
    pub body_size: u64,
    pub truncated: bool,
    pub grpc: Option<GrpcResponse>,
    pub unknown_headers: Vec<String>,
}

/// A gRPC call's request side: names from `:path` (`/package.Service/Method`), `None` when
/// the path was not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcRequest {
    pub service: Option<String>,
    pub method: Option<String>,
    /// Length-prefixed messages sent, when every byte of them was seen.
    pub messages: Option<u32>,
    /// (trace id, parent span id) from `grpc-trace-bin`, OpenCensus's binary propagation.
    pub trace: Option<(u128, u64)>,
}

/// A gRPC call's response side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    /// `grpc-status` from the trailers (or a trailers-only response).
    pub status: Option<u32>,
    pub messages: Option<u32>,
    /// When the first response message began.
    pub first_message: Option<Timestamp>,
}

/// The protocol version a message was sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.x, with its minor version.
    Http1(u8),
    /// HTTP/0.9 (RFC 1945 §4.1, "Simple-Request"): a request line with no version, answered by
    /// a bare body — no status line, no headers — that ends when the server closes.
    Http09,
    /// HTTP/2 (RFC 9113): one stream of a multiplexed connection.
    Http2,
}

impl Version {
    /// As OpenTelemetry's `network.protocol.version` spells it: `1.1`, `0.9`, `2`.
    pub fn as_str(self) -> &'static str {
        const MINORS: [&str; 10] = [
            "1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9",
        ];
        match self {
            Version::Http1(minor) => MINORS.get(usize::from(minor)).copied().unwrap_or("1.x"),
            Version::Http09 => "0.9",
            Version::Http2 => "2",
        }
    }
}

impl RequestInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl ResponseInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpExchange {
    pub conn: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// 1-based position of this exchange on its connection.
    pub depth: u32,
    /// Absolute TCP sequence number of the request's first byte (or the response's, when the
    /// request was not captured): with the 4-tuple it identifies the exchange at any capture point.
    pub anchor_seq: u32,
    pub request: Option<RequestInfo>,
    pub response: Option<ResponseInfo>,
    /// 1xx responses before the final one, with the time each began.
    pub informational: Vec<(u16, Timestamp)>,
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
}

impl From<HttpExchange> for Exchange {
    fn from(ex: HttpExchange) -> Self {
        Exchange {
            conn: ex.conn,
            client: ex.client,
            server: ex.server,
            depth: ex.depth,
            anchor_seq: ex.anchor_seq,
            t: ex.t,
            gaps: ex.gaps,
            snapped: ex.snapped,
            error: ex.error,
            tokens: ex.tokens,
            call: Call::Http(HttpCall {
                request: ex.request,
                response: ex.response,
                informational: ex.informational,
            }),
        }
    }
}
