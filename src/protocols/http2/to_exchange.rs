//! One HTTP/2 stream as the pipeline's exchange: an [`HttpExchange`] with
//! `Version::Http2`, so spans, causality and the report treat it as an HTTP call.
//!
//! - Identity: `anchor_seq` is the TCP sequence number of the frame that opened the stream
//!   (its request HEADERS), so two streams of a connection never share an exchange id and
//!   every capture point that saw the frame computes the same one.
//! - `depth` is the stream's place among its initiator's streams (`(id + 1) / 2` for the
//!   client's odd ids, `id / 2` for pushed ones): the position HTTP/1.x would give the request
//!   on a connection that never skipped an id, and the same at every capture point, picked up
//!   mid-way or not.
//! - A request whose HEADERS were seen but whose pseudo-headers were not known (HPACK entries
//!   from before the capture) keeps an empty method or target: spans print neither, and
//!   `unknown_headers` says which were missing. A path is never guessed.
//! - The target is redacted here, as HTTP/1.x redacts its start line; captured headers were
//!   redacted by the connection's decoder (`Http2Conn::with_headers`).

use std::net::SocketAddr;

use tapspan_capture::Timestamp;

use super::exchange::{H2Exchange, StreamError};
use crate::protocols::http1::tokens::Collector;
use crate::protocols::http1::{
    GrpcRequest, GrpcResponse, HttpExchange, Instants, PayloadTokens, RequestInfo, ResponseInfo,
    Version,
};
use crate::reassembly::{CloseReason, ConnId};
use crate::redact::HeaderPolicy;

/// The connection an exchange came from, as the decoder knows it.
pub struct ConnFacts {
    pub conn: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// How the connection ended, for streams it cut (`None` while it is open).
    pub closed: Option<(CloseReason, Timestamp)>,
}

/// `error.type` of a stream cut short; the reset and GOAWAY codes are RFC 9113 §7's names.
pub fn error_type(e: &StreamError, closed: Option<CloseReason>) -> &'static str {
    const RESET: [&str; 15] = [
        "reset:NO_ERROR",
        "reset:PROTOCOL_ERROR",
        "reset:INTERNAL_ERROR",
        "reset:FLOW_CONTROL_ERROR",
        "reset:SETTINGS_TIMEOUT",
        "reset:STREAM_CLOSED",
        "reset:FRAME_SIZE_ERROR",
        "reset:REFUSED_STREAM",
        "reset:CANCEL",
        "reset:COMPRESSION_ERROR",
        "reset:CONNECT_ERROR",
        "reset:ENHANCE_YOUR_CALM",
        "reset:INADEQUATE_SECURITY",
        "reset:HTTP_1_1_REQUIRED",
        "reset:UNKNOWN",
    ];
    const GOAWAY: [&str; 15] = [
        "goaway:NO_ERROR",
        "goaway:PROTOCOL_ERROR",
        "goaway:INTERNAL_ERROR",
        "goaway:FLOW_CONTROL_ERROR",
        "goaway:SETTINGS_TIMEOUT",
        "goaway:STREAM_CLOSED",
        "goaway:FRAME_SIZE_ERROR",
        "goaway:REFUSED_STREAM",
        "goaway:CANCEL",
        "goaway:COMPRESSION_ERROR",
        "goaway:CONNECT_ERROR",
        "goaway:ENHANCE_YOUR_CALM",
        "goaway:INADEQUATE_SECURITY",
        "goaway:HTTP_1_1_REQUIRED",
        "goaway:UNKNOWN",
    ];
    let code_index = |code: u32| (code as usize).min(RESET.len() - 1);
    match e {
        StreamError::Reset { code, .. } => RESET[code_index(*code)],
        StreamError::GoAway { code } => GOAWAY[code_index(*code)],
        StreamError::Gap => "capture_gap",
        StreamError::NoResponse => match closed {
            None | Some(CloseReason::Fin) => "connection_closed",
            Some(why) => why.as_str(),
        },
        StreamError::StreamOverflow => "stream_overflow",
        StreamError::HeaderBlock => "header_block",
    }
}

/// The stream's place among its initiator's streams (see the module doc).
fn depth_of(stream_id: u32) -> u32 {
    if stream_id % 2 == 1 {
        stream_id / 2 + 1
    } else {
        stream_id / 2
    }
}

fn ts(ns: Option<u64>) -> Option<Timestamp> {
    ns.map(Timestamp)
}

/// Maps one stream to the pipeline's exchange.
pub fn to_exchange(x: H2Exchange, conn: &ConnFacts, policy: &HeaderPolicy) -> HttpExchange {
    let exact = |n: u32, exact: bool| exact.then_some(n);
    let grpc = x.grpc.as_ref();
    let mut tokens = PayloadTokens::default();
    let request = (!x.request_unseen).then(|| {
        let target = x
            .path
            .as_deref()
            .map(|p| policy.redact_target(p))
            .unwrap_or_default();
        let mut collector = Collector::default();
        if !target.is_empty() {
            collector.target(&target);
        }
        tokens.request = collector.take();
        RequestInfo {
            method: x.method.clone().unwrap_or_default(),
            target,
            version: Some(Version::Http2),
            headers: x.request_headers,
            body_size: x.request_body_bytes,
            truncated: x.request_end.is_none(),
            grpc: grpc.map(|g| GrpcRequest {
                service: g.service.clone(),
                method: g.method.clone(),
                messages: exact(g.request_messages, g.messages_exact),
                trace: x
                    .propagation
                    .iter()
                    .find(|(n, _)| n == "grpc-trace-bin")
                    .and_then(|(_, v)| super::trace_bin::parse(v.as_bytes())),
            }),
            unknown_headers: x.unknown_headers,
        }
    });
    let response_seen =
        x.status.is_some() || x.response_start.is_some() || !x.unknown_response_headers.is_empty();
    let response = response_seen.then(|| ResponseInfo {
        status: x.status,
        reason: String::new(),
        version: Version::Http2,
        headers: x.response_headers,
        body_size: x.response_body_bytes,
        truncated: x.response_end.is_none(),
        grpc: grpc.map(|g| GrpcResponse {
            status: g.status,
            messages: exact(g.response_messages, g.messages_exact),
            first_message: ts(g.first_response_message_at),
        }),
        unknown_headers: x.unknown_response_headers,
    });
    let closed_at = conn.closed.map(|(_, t)| t);
    let error = x
        .error
        .as_ref()
        .map(|e| error_type(e, conn.closed.map(|(why, _)| why)));
    HttpExchange {
        conn: conn.conn,
        client: conn.client,
        server: conn.server,
        depth: depth_of(x.stream_id),
        anchor_seq: x.anchor_seq,
        request,
        response,
        informational: Vec::new(),
        t: Instants {
            request_start: ts(x.request_start),
            request_end: ts(x.request_end),
            response_start: ts(x.response_start),
            response_end: ts(x.response_end),
            closed: if x.error.is_some() { closed_at } else { None },
        },
        gaps: u32::from(matches!(x.error, Some(StreamError::Gap))),
        snapped: false,
        error,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_each_initiators_streams() {
        assert_eq!(
            [1, 3, 5, 2, 4].map(depth_of),
            [1, 2, 3, 1, 2],
            "client streams 1, 3, 5; pushed 2, 4"
        );
    }

    #[test]
    fn error_types_are_static_and_named() {
        let reset = StreamError::Reset {
            code: 8,
            by_client: true,
        };
        assert_eq!(error_type(&reset, None), "reset:CANCEL");
        assert_eq!(
            error_type(&StreamError::GoAway { code: 99 }, None),
            "goaway:UNKNOWN"
        );
        assert_eq!(
            error_type(&StreamError::NoResponse, Some(CloseReason::CaptureEnd)),
            "capture_ended"
        );
        for code in 0..14 {
            let kind = StreamError::Reset {
                code,
                by_client: false,
            };
            assert_eq!(error_type(&kind, None), kind.kind());
        }
    }
}
