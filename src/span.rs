//! Spans in the JSON-lines schema of DESIGN.md: each exchange yields a client span (service =
//! caller) and a server span (service = callee, child of the client span).
//!
//! Trace ids, in order: W3C `traceparent` (its parent span id becomes the client span's parent),
//! B3 (single `b3` or `X-B3-TraceId`/`X-B3-SpanId`), `uber-trace-id`, `X-Amzn-Trace-Id`,
//! gRPC's `grpc-trace-bin`, `X-Request-ID` (hashed), else the exchange is the root of its own
//! trace.

use std::sync::Arc;

use serde::Serialize;

pub mod attributes;
mod calls;

pub use attributes::{Address, AttrValue, Attributes, Grpc, Http, Message, Tap};

use crate::ids;
use crate::protocols::Exchange;
use crate::redact::redact_query;
use crate::route;
use crate::text;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanEvent {
    pub name: &'static str,
    pub time_unix_nano: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    Unset,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub kind: SpanKind,
    pub name: String,
    pub service: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status: SpanStatus,
    /// Shared by an exchange's client and server spans, which carry the same attributes.
    #[serde(serialize_with = "attributes::serialize")]
    pub attributes: Arc<Attributes>,
    pub events: Vec<SpanEvent>,
    /// W3C tracestate of a sampled trace: `ot=th:…`, the threshold it was kept at (OTEP 235;
    /// see [`crate::sampling`]). Absent unless sampling drops traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
}

/// How an exchange was placed in its trace: a propagated header, or send/receive nesting
/// (written as `tapspan.link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Traceparent,
    B3,
    UberTraceId,
    XAmznTraceId,
    GrpcTraceBin,
    XRequestId,
    Nesting,
}

impl Link {
    /// Its `tapspan.link` value: the header's name, or `nesting`.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Traceparent => "traceparent",
            Link::B3 => "b3",
            Link::UberTraceId => "uber-trace-id",
            Link::XAmznTraceId => "x-amzn-trace-id",
            Link::GrpcTraceBin => "grpc-trace-bin",
            Link::XRequestId => "x-request-id",
            Link::Nesting => "nesting",
        }
    }
}

/// Where the trace id came from, as written in `tapspan.link`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The caller's span id, when the propagated header names one.
    pub parent_span_id: Option<u64>,
    pub link: Link,
}

fn hex_u128(s: &str) -> Option<u128> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

fn hex_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

/// W3C Trace Context §3.2: `version-traceid-parentid-flags`.
fn parse_traceparent(v: &str) -> Option<TraceContext> {
    let mut parts = v.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let _flags = parts.next()?;
    if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 {
        return None;
    }
    Some(TraceContext {
        trace_id: hex_u128(trace)?,
        parent_span_id: Some(hex_u64(parent)?),
        link: Link::Traceparent,
    })
}

/// B3 single header: `traceid-spanid[-sampled[-parentspanid]]`, or just a sampling flag.
fn parse_b3_single(v: &str) -> Option<TraceContext> {
    let mut parts = v.trim().split('-');
    let trace = parts.next()?;
    let span = parts.next()?;
    if trace.len() != 16 && trace.len() != 32 {
        return None;
    }
    Some(TraceContext {
        trace_id: hex_u128(trace)?,
        parent_span_id: hex_u64(span),
        link: Link::B3,
    })
}

/// Jaeger `uber-trace-id: trace:span:parent:flags`.
fn parse_uber(v: &str) -> Option<TraceContext> {
    let mut parts = v.trim().split(':');
    let trace = parts.next()?;
    let span = parts.next()?;
    Some(TraceContext {
        trace_id: hex_u128(trace)?,
        parent_span_id: hex_u64(span),
        link: Link::UberTraceId,
    })
}

/// AWS `X-Amzn-Trace-Id: Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=1`.
fn parse_amzn(v: &str) -> Option<TraceContext> {
    let mut root = None;
    let mut parent = None;
    for field in v.split(';') {
        let (k, val) = field.trim().split_once('=')?;
        if k.eq_ignore_ascii_case("root") {
            let mut p = val.split('-');
            let (_ver, time, rand) = (p.next()?, p.next()?, p.next()?);
            root = hex_u128(&format!("{time}{rand}"));
        } else if k.eq_ignore_ascii_case("parent") {
            parent = hex_u64(val);
        }
    }
    Some(TraceContext {
        trace_id: root?,
        parent_span_id: parent,
        link: Link::XAmznTraceId,
    })
}

/// The propagated trace context of a request, by the precedence in the module docs.
pub fn propagated_context(ex: &Exchange) -> Option<TraceContext> {
    let req = ex.request()?;
    if let Some(tc) = req.header("traceparent").and_then(parse_traceparent) {
        return Some(tc);
    }
    if let Some(tc) = req.header("b3").and_then(parse_b3_single) {
        return Some(tc);
    }
    if let Some(trace) = req.header("x-b3-traceid").and_then(hex_u128) {
        return Some(TraceContext {
            trace_id: trace,
            parent_span_id: req.header("x-b3-spanid").and_then(hex_u64),
            link: Link::B3,
        });
    }
    if let Some(tc) = req.header("uber-trace-id").and_then(parse_uber) {
        return Some(tc);
    }
    if let Some(tc) = req.header("x-amzn-trace-id").and_then(parse_amzn) {
        return Some(tc);
    }
    if let Some((trace_id, parent)) = req.grpc.as_ref().and_then(|g| g.trace) {
        return Some(TraceContext {
            trace_id,
            parent_span_id: Some(parent),
            link: Link::GrpcTraceBin,
        });
    }
    let rid = req
        .header("x-request-id")
        .or_else(|| ex.response()?.header("x-request-id"))?;
    if rid.trim().is_empty() {
        return None;
    }
    Some(TraceContext {
        trace_id: ids::request_id_trace_id(rid),
        parent_span_id: None,
        link: Link::XRequestId,
    })
}

/// Path and query of a request target (origin-form or absolute-form).
pub fn split_target(target: &str) -> (Option<&str>, Option<&str>) {
    // A scheme is letters up to `://` (the first `://`: none can come earlier, after letters
    // alone), found without a substring search, which cost more than the rest of this.
    let letters = target
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(target.len());
    let without_scheme = match target[letters..].strip_prefix("://") {
        Some(rest) => match rest.find('/') {
            Some(j) => &rest[j..],
            None => "/",
        },
        None => target,
    };
    if !(without_scheme.starts_with('/') || without_scheme == "*") {
        return (None, None); // authority-form (CONNECT host:port)
    }
    let without_fragment = without_scheme.split('#').next().unwrap_or("");
    match without_fragment.split_once('?') {
        Some((p, q)) => (Some(p), Some(q)),
        None => (Some(without_fragment), None),
    }
}

fn hex64(v: u64) -> String {
    text::hex64(v)
}

/// How an exchange hangs in its trace: decided by the causality builder, or by
/// [`standalone_linkage`] when each exchange stands alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Linkage {
    pub trace_id: u128,
    /// Parent of the client span: the caller's server span, or a propagated parent span id.
    pub client_parent: Option<u64>,
    /// How the parent (or the trace) was found, and how sure: `tapspan.link`,
    /// `tapspan.link_confidence`.
    pub link: Option<(Link, f64)>,
}

/// Service names of the two ends of an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub client: String,
    pub server: String,
}

impl Endpoints {
    /// Default names: the server's `ip:port`, the client's ip.
    pub fn default_for(ex: &Exchange) -> Self {
        Endpoints {
            client: text::ip(&ex.client.ip()),
            server: text::socket_addr(&ex.server),
        }
    }
}

/// The exchange id of `ex` (DESIGN.md "Identity").
pub fn exchange_id_of(ex: &Exchange) -> u64 {
    ids::exchange_id(ex.client, ex.server, ex.anchor_seq, ex.request_seen())
}

/// Linkage of an exchange on its own: trace from its propagated context, else its own root.
pub fn standalone_linkage(ex: &Exchange) -> Linkage {
    match propagated_context(ex) {
        Some(c) => Linkage {
            trace_id: c.trace_id,
            client_parent: c.parent_span_id,
            link: Some((c.link, 1.0)),
        },
        None => Linkage {
            trace_id: ids::root_trace_id(exchange_id_of(ex)),
            client_parent: None,
            link: None,
        },
    }
}

/// The two spans of one exchange standing alone: `[client, server]`.
pub fn spans_for(ex: &Exchange) -> [Span; 2] {
    build_spans(
        ex,
        &standalone_linkage(ex),
        Endpoints::default_for(ex),
        None,
    )
}

/// The two spans of one exchange, `[client, server]`, placed in its trace by `linkage`, with
/// `route` as its `http.route` (by default [`route::template`] of its path).
pub fn build_spans(
    ex: &Exchange,
    linkage: &Linkage,
    names: Endpoints,
    route: Option<&str>,
) -> [Span; 2] {
    SpanDraft::of(ex).finish(linkage, names, route)
}

/// What an exchange's two spans say before causality has placed it: everything but the trace,
/// the parents, the link, the services' names and the route. The causality builder drafts an
/// exchange's spans when it arrives and finishes them once its trace is decided: a replay of a
/// capture shorter than the trace window decides every parent after the last packet, and the
/// spans' own work, done then, waited for the search; drafted on arrival, it runs while the
/// reading thread is still decoding packets.
#[derive(Debug)]
pub struct SpanDraft {
    /// A Redis, PostgreSQL, DNS or TLS span's name; an HTTP span's comes from its route.
    call_name: Option<String>,
    attrs: Attributes,
    /// Whether the (client, server) spans have status error.
    errors: [bool; 2],
    events: Vec<SpanEvent>,
    start: u64,
    end: u64,
    client_span: u64,
    server_span: u64,
}

/// An HTTP exchange's captured headers, (request, response), as the draft takes them.
type CapturedHeaders = (Vec<(String, String)>, Vec<(String, String)>);

impl SpanDraft {
    pub fn of(ex: &Exchange) -> Self {
        let headers = (
            ex.request().map(|r| r.headers.clone()).unwrap_or_default(),
            ex.response().map(|r| r.headers.clone()).unwrap_or_default(),
        );
        Self::with_headers(ex, headers)
    }

    /// [`Self::of`], moving `ex`'s captured headers into the draft instead of copying them
    /// (the causality builder holds an exchange until it is placed, and needs them no more).
    pub fn taking_headers(ex: &mut Exchange) -> Self {
        let mut headers = CapturedHeaders::default();
        if let Some(http) = ex.http_mut() {
            if let Some(r) = &mut http.request {
                headers.0 = std::mem::take(&mut r.headers);
            }
            if let Some(r) = &mut http.response {
                headers.1 = std::mem::take(&mut r.headers);
            }
        }
        Self::with_headers(ex, headers)
    }

    fn with_headers(ex: &Exchange, headers: CapturedHeaders) -> Self {
        let xid = exchange_id_of(ex);
        let (call_name, attrs, errors) = match calls::describe(&ex.call) {
            Some(call) => {
                let (name, attrs, error) = call_attributes(ex, xid, call);
                (Some(name), attrs, [error, error])
            }
            None => {
                let (attrs, errors) = http_attributes(ex, xid, headers);
                (None, attrs, errors)
            }
        };
        SpanDraft {
            call_name,
            attrs,
            errors,
            events: events_of(ex),
            start: ex.start().0,
            end: ex.end().0,
            client_span: ids::span_id(xid, "client"),
            server_span: ids::span_id(xid, "server"),
        }
    }

    /// The server span's id: the parent of the client spans of the calls it made.
    pub fn server_span_id(&self) -> u64 {
        self.server_span
    }

    /// The spans, placed in their trace by `linkage`, with `route` as the `http.route` (by
    /// default [`route::template`] of the path).
    pub fn finish(self, linkage: &Linkage, names: Endpoints, route: Option<&str>) -> [Span; 2] {
        let mut attrs = self.attrs;
        attrs.link = linkage
            .link
            .map(|(link, confidence)| (link, (confidence * 1000.0).round() / 1000.0));
        let name = match self.call_name {
            Some(name) => name,
            None => http_span_name(&mut attrs, route),
        };
        let [client_error, server_error] = self.errors;
        let status = |error| {
            if error {
                SpanStatus::Error
            } else {
                SpanStatus::Unset
            }
        };
        let attrs = Arc::new(attrs);
        let client_span_id = hex64(self.client_span);
        let trace_id = text::hex128(linkage.trace_id);
        let client = Span {
            trace_id: trace_id.clone(),
            span_id: client_span_id.clone(),
            parent_span_id: linkage.client_parent.map(hex64),
            kind: SpanKind::Client,
            name: name.clone(),
            service: names.client,
            start_unix_nano: self.start,
            end_unix_nano: self.end,
            status: status(client_error),
            attributes: attrs.clone(),
            events: self.events.clone(),
            trace_state: None,
        };
        let server = Span {
            trace_id,
            span_id: hex64(self.server_span),
            parent_span_id: Some(client_span_id),
            kind: SpanKind::Server,
            name,
            service: names.server,
            start_unix_nano: self.start,
            end_unix_nano: self.end,
            status: status(server_error),
            attributes: attrs,
            events: self.events,
            trace_state: None,
        };
        [client, server]
    }
}

/// An HTTP exchange's attributes (its route aside), and whether its (client, server) spans
/// are errors.
fn http_attributes(ex: &Exchange, xid: u64, headers: CapturedHeaders) -> (Attributes, [bool; 2]) {
    // HTTP/2 keeps an empty method when its header's table entry came before the capture.
    let method = ex
        .request()
        .map(|r| r.method.as_str())
        .filter(|m| !m.is_empty());
    let grpc = grpc_call(ex);
    let (path, query) = ex
        .request()
        .map_or((None, None), |r| split_target(&r.target));
    // An HTTP/0.9 response has no status line: OpenTelemetry sets `http.response.status_code`
    // only "if one was received", so it has none, and its span status stays unset (not an
    // error: the server answered).
    let status = ex.response().and_then(|r| r.status);
    let cut_short = ex.error.is_some();
    let errors = match grpc.as_ref().and_then(|r| r.status) {
        // OpenTelemetry's gRPC conventions: any code but OK fails the client; the server
        // fails only on codes that are its own fault.
        Some(code) => [
            cut_short || code != 0,
            cut_short || GRPC_SERVER_ERRORS.contains(&code),
        ],
        None => [
            cut_short || status.is_some_and(|s| s >= 400),
            cut_short || status.is_some_and(|s| s >= 500),
        ],
    };
    let http = Http {
        method: method.map(str::to_string),
        path: path.map(str::to_string),
        query: query.map(redact_query),
        status,
        ..http_messages(ex, headers)
    };
    let mut attrs = common_attributes(ex, xid, Address::Ip(ex.server.ip()));
    attrs.error_type = ex.error.map(str::to_string);
    attrs.http = Some(Box::new(http));
    attrs.grpc = grpc.map(Box::new);
    (attrs, errors)
}

/// An HTTP span's name, once its route is known (which it sets as `http.route`).
fn http_span_name(attrs: &mut Attributes, route: Option<&str>) -> String {
    let Some(http) = attrs.http.as_deref_mut() else {
        return "HTTP".to_string();
    };
    http.route = route
        .map(str::to_string)
        .or_else(|| http.path.as_deref().map(route::template));
    match (attrs.grpc.as_deref(), http.method.as_deref(), &http.route) {
        // OpenTelemetry's RPC span name: `package.Service/Method`.
        (
            Some(Grpc {
                service: Some(s),
                method: Some(m),
                ..
            }),
            _,
            _,
        ) => format!("{s}/{m}"),
        (_, Some(m), Some(r)) => {
            let mut name = String::with_capacity(m.len() + 1 + r.len());
            name.push_str(m);
            name.push(' ');
            name.push_str(r);
            name
        }
        (_, Some(m), None) => m.to_string(),
        (_, None, _) => "HTTP".to_string(),
    }
}

/// A Redis, PostgreSQL, DNS or TLS exchange's name and attributes (see [`calls`]), and
/// whether its spans are errors.
fn call_attributes(ex: &Exchange, xid: u64, call: calls::CallSpan) -> (String, Attributes, bool) {
    let server_address = match call.server_name {
        Some(name) => Address::Name(name),
        None => Address::Ip(ex.server.ip()),
    };
    let mut attrs = common_attributes(ex, xid, server_address);
    let error = ex.error.is_some() || call.failure.is_some();
    attrs.error_type = ex.error.map(str::to_string).or(call.failure);
    attrs.protocol = call.attributes;
    (call.name, attrs, error)
}

/// What every exchange's spans say: its ends, its id, what only a tap sees (the link is set
/// once causality has placed it).
fn common_attributes(ex: &Exchange, xid: u64, server_address: Address) -> Attributes {
    Attributes {
        server_address,
        server_port: ex.server.port(),
        client_address: ex.client.ip(),
        client_port: ex.client.port(),
        exchange_id: xid,
        link: None,
        error_type: None,
        http: None,
        grpc: None,
        tap: tap_attributes(ex),
        protocol: Vec::new(),
        args_hash: args_hash(ex),
    }
}

/// A database call's arguments as a keyed hash, held in memory for the analysis.
fn args_hash(ex: &Exchange) -> Option<u64> {
    use crate::protocols::exchange::Call;
    match &ex.call {
        Call::Redis(r) => r.key_hash,
        Call::Postgres(p) => p.args_hash,
        Call::Http(_) | Call::Tls(_) | Call::Dns(_) => None,
    }
}

/// gRPC status codes that make a server span an error (OpenTelemetry's RPC conventions):
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub const GRPC_SERVER_ERRORS: [u32; 6] = [2, 4, 12, 13, 14, 15];

/// What a span says of a gRPC call (HTTP/2 with a gRPC content type).
fn grpc_call(ex: &Exchange) -> Option<Grpc> {
    let req = ex.request().and_then(|r| r.grpc.as_ref());
    let resp = ex.response().and_then(|r| r.grpc.as_ref());
    if req.is_none() && resp.is_none() {
        return None;
    }
    Some(Grpc {
        service: req.and_then(|g| g.service.clone()),
        method: req.and_then(|g| g.method.clone()),
        status: resp.and_then(|g| g.status),
        request_messages: req.and_then(|g| g.messages),
        response_messages: resp.and_then(|g| g.messages),
        first_message_ns: resp
            .and_then(|g| g.first_message)
            .zip(ex.t.request_start)
            .map(|(first, start)| first.saturating_since(start)),
    })
}

/// Attributes of the messages themselves: protocol version, `headers` (the captured ones, of
/// the request and the response), body sizes.
fn http_messages(ex: &Exchange, (request_headers, response_headers): CapturedHeaders) -> Http {
    // A request line without a version takes its answer's (`0.9` for a bare body).
    let version = ex
        .request()
        .and_then(|r| r.version)
        .or(ex.response().map(|r| r.version));
    Http {
        version: version.map(|v| v.as_str()),
        // The last, as OpenTelemetry's single-valued attribute would be overwritten.
        user_agent: request_headers
            .iter()
            .rev()
            .find(|(name, _)| name == "user-agent")
            .map(|(_, v)| v.clone()),
        request: ex
            .request()
            .map(|r| Message::from_headers(request_headers, r.body_size)),
        response: ex
            .response()
            .map(|r| Message::from_headers(response_headers, r.body_size)),
        ..Http::default()
    }
}

/// What only a tap knows: timing, gaps, whether the capture cut it short.
fn tap_attributes(ex: &Exchange) -> Tap {
    // HTTP/2 headers whose HPACK table entries came before the capture: named, never guessed.
    let request_unknown = ex.request().into_iter().flat_map(|r| &r.unknown_headers);
    let response_unknown = ex.response().into_iter().flat_map(|r| &r.unknown_headers);
    // Each name once (a block may hold several unknown fields of one name, or none).
    let mut headers_unknown: Vec<String> = Vec::new();
    for name in request_unknown.chain(response_unknown) {
        if !headers_unknown.contains(name) {
            headers_unknown.push(name.clone());
        }
    }
    Tap {
        ttfb_ns: ex
            .t
            .request_end
            .zip(ex.t.response_start)
            .map(|(req_end, resp_start)| resp_start.saturating_since(req_end)),
        informational: ex.informational().iter().map(|(c, _)| *c).collect(),
        gaps: ex.gaps,
        truncated: ex.snapped,
        headers_unknown,
    }
}

/// The span events: informational responses, request end, response start, in time order.
fn events_of(ex: &Exchange) -> Vec<SpanEvent> {
    let mut events = Vec::new();
    for (_, t) in ex.informational() {
        events.push(SpanEvent {
            name: "response.informational",
            time_unix_nano: t.0,
        });
    }
    if let Some(t) = ex.t.request_end {
        events.push(SpanEvent {
            name: "request.end",
            time_unix_nano: t.0,
        });
    }
    if let Some(t) = ex.t.response_start {
        events.push(SpanEvent {
            name: "response.start",
            time_unix_nano: t.0,
        });
    }
    events.sort_by_key(|e| e.time_unix_nano);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_per_w3c() {
        let tc =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tc.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tc.parent_span_id, Some(0x00f067aa0ba902b7));
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
    }

    #[test]
    fn b3_uber_and_amzn() {
        let b3 = parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1").unwrap();
        assert_eq!(b3.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(b3.parent_span_id, Some(0xe457b5a2e4d86bd1));
        let u = parse_uber("4bf92f3577b34da6:00f067aa0ba902b7:0:1").unwrap();
        assert_eq!(u.trace_id, 0x4bf92f3577b34da6);
        let a = parse_amzn(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(a.trace_id, 0x5759e988bd862e3fe1be46a994272793);
        assert_eq!(a.parent_span_id, Some(0x53995c3f42cd8ad8));
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/a/b?x=1#f"), (Some("/a/b"), Some("x=1")));
        assert_eq!(split_target("http://h:8080/p?q"), (Some("/p"), Some("q")));
        assert_eq!(split_target("http://h"), (Some("/"), None));
        assert_eq!(split_target("example.com:443"), (None, None));
        assert_eq!(split_target("*"), (Some("*"), None));
        // A scheme is letters alone, and its `://` the first.
        assert_eq!(split_target("h2c://h/p"), (None, None));
        assert_eq!(
            split_target("/r?next=http://x/y"),
            (Some("/r"), Some("next=http://x/y"))
        );
        assert_eq!(split_target("/a://b"), (Some("/a://b"), None));
        assert_eq!(split_target("://h/p"), (Some("/p"), None));
        assert_eq!(split_target("https://h/x://y"), (Some("/x://y"), None));
    }
}
