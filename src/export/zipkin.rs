//! Zipkin v2 JSON export (`POST /api/v2/spans`, a JSON array of spans), per the Zipkin API
//! (`zipkin2-api.yaml`); Jaeger and Google Cloud Trace accept the same format.
//!
//! Mapping from the JSON-lines span (DESIGN.md):
//! - `traceId` 32 and `id`/`parentId` 16 lowercase hex characters, as in JSON lines;
//! - `timestamp` = start in epoch **microseconds** (truncated), `duration` = end − start in
//!   microseconds, rounded up and at least 1;
//! - `kind` CLIENT or SERVER; `name` lower-cased (Zipkin's lookup labels are lower case);
//! - `localEndpoint` = the span's own side (`serviceName` = its service, the address, and for a
//!   server its listen port); `remoteEndpoint` = the peer (the server for a client span, the
//!   client for a server span), with the peer's service name when the matching span of the same
//!   exchange came right after (tapspan emits client then server);
//! - `tags`: every attribute as a string (arrays joined with ", "), plus `error` (the
//!   `error.type`, else the HTTP status) when the status is error;
//! - `annotations`: the span events (`request.end`, `response.start`, ...) in microseconds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::delivery::{Delivery, DeliveryConfig, Outcome, Transport};
use super::http1::{HttpUrl, Poster};
use super::{SinkReport, SpanSink};
use crate::span::{Address, Span, SpanKind, SpanStatus};

#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Serialize, Debug)]
pub struct Annotation {
    pub timestamp: u64,
    pub value: &'static str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan<'a> {
    pub trace_id: &'a str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<&'a str>,
    pub kind: &'static str,
    pub name: String,
    pub timestamp: u64,
    pub duration: u64,
    pub local_endpoint: Endpoint,
    pub remote_endpoint: Endpoint,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    pub tags: BTreeMap<String, String>,
}

/// Which end of the exchange an endpoint describes.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

fn endpoint(span: &Span, side: Side, with_port: bool, service: Option<&str>) -> Endpoint {
    let mut ep = Endpoint {
        service_name: service.map(str::to_lowercase),
        ..Default::default()
    };
    let a = &span.attributes;
    let (ip, port) = match side {
        Side::Client => (Some(a.client_address), a.client_port),
        Side::Server => match &a.server_address {
            Address::Ip(ip) => (Some(*ip), a.server_port),
            Address::Name(_) => (None, a.server_port),
        },
    };
    match ip {
        Some(IpAddr::V4(v4)) => ep.ipv4 = Some(v4.to_string()),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => ep.ipv4 = Some(v4.to_string()),
            None => ep.ipv6 = Some(v6.to_string()),
        },
        None => {}
    }
    ep.port = Some(port).filter(|p| with_port && *p != 0);
    ep
}

fn tag_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(tag_value)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}

fn micros(ns: u64) -> u64 {
    ns / 1_000
}

/// The Zipkin form of a span; `peer_service` names the other side when known.
pub fn to_zipkin<'a>(span: &'a Span, peer_service: Option<&str>) -> ZipkinSpan<'a> {
    let own = Some(span.service.as_str());
    let (kind, local, remote) = match span.kind {
        SpanKind::Client => (
            "CLIENT",
            endpoint(span, Side::Client, false, own),
            endpoint(span, Side::Server, true, peer_service),
        ),
        SpanKind::Server => (
            "SERVER",
            endpoint(span, Side::Server, true, own),
            endpoint(span, Side::Client, true, peer_service),
        ),
    };
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    span.attributes.for_each(|k, v| {
        if let Some(t) = tag_value(&v.to_json()) {
            tags.insert(k.to_string_key(), t);
        }
    });
    if span.status == SpanStatus::Error {
        let a = &span.attributes;
        let why = match (&a.error_type, a.http_status()) {
            (Some(e), _) => e.clone(),
            (None, Some(code)) => code.to_string(),
            (None, None) => "true".to_string(),
        };
        tags.insert("error".to_string(), why);
    }
    let duration_ns = span.end_unix_nano.saturating_sub(span.start_unix_nano);
    ZipkinSpan {
        trace_id: &span.trace_id,
        id: &span.span_id,
        parent_id: span.parent_span_id.as_deref(),
        kind,
        name: span.name.to_lowercase(),
        timestamp: micros(span.start_unix_nano),
        duration: duration_ns.div_ceil(1_000).max(1),
        local_endpoint: local,
        remote_endpoint: remote,
        annotations: span
            .events
            .iter()
            .map(|e| Annotation {
                timestamp: micros(e.time_unix_nano),
                value: e.name,
            })
            .collect(),
        tags,
    }
}

/// A span as one element of the JSON array.
pub fn to_zipkin_json(span: &Span, peer_service: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&to_zipkin(span, peer_service)).unwrap_or_default()
}

struct ZipkinTransport {
    poster: Poster,
}

impl Transport for ZipkinTransport {
    type Item = Vec<u8>;
    type Request = Bytes;

    fn encode(&mut self, items: Vec<Vec<u8>>) -> Bytes {
        let len = items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
        let mut body = Vec::with_capacity(len);
        body.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.push(b']');
        Bytes::from(body)
    }

    async fn send(&mut self, request: &Bytes) -> Outcome {
        match self.poster.post(request).await {
            Ok(_) => Outcome::Delivered { rejected: 0 },
            Err(outcome) => outcome,
        }
    }
}

/// A Zipkin exporter. It holds back one client span so that, when the server span of the same
/// exchange follows, each can name the other's service in `remoteEndpoint`.
pub struct ZipkinSink {
    delivery: Delivery<Vec<u8>>,
    pending_client: Option<Span>,
}

impl ZipkinSink {
    pub fn start(endpoint: &str, delivery: DeliveryConfig) -> Result<Self, String> {
        let url = HttpUrl::parse(endpoint, "/api/v2/spans")?;
        let poster = Poster::new(url, "application/json", false, &[])?;
        let delivery = Delivery::start(format!("zipkin {endpoint}"), delivery, move || {
            Ok(ZipkinTransport { poster })
        });
        Ok(ZipkinSink {
            delivery,
            pending_client: None,
        })
    }

    fn emit(&mut self, span: &Span, peer: Option<&str>) {
        let json = to_zipkin_json(span, peer);
        let n = json.len();
        self.delivery.push(json, n);
    }

    fn flush_pending(&mut self) {
        if let Some(c) = self.pending_client.take() {
            self.emit(&c, None);
        }
    }
}

impl SpanSink for ZipkinSink {
    fn send(&mut self, span: &Span) {
        match span.kind {
            SpanKind::Client => {
                self.flush_pending();
                self.pending_client = Some(span.clone());
            }
            SpanKind::Server => match self.pending_client.take() {
                Some(c) if span.parent_span_id.as_deref() == Some(c.span_id.as_str()) => {
                    self.emit(&c, Some(&span.service));
                    self.emit(span, Some(&c.service));
                }
                pending => {
                    self.pending_client = pending;
                    self.flush_pending();
                    self.emit(span, None);
                }
            },
        }
    }

    fn close(mut self: Box<Self>) -> SinkReport {
        self.flush_pending();
        self.delivery.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanEvent;
    use serde_json::json;

    fn span(kind: SpanKind) -> Span {
        let mut attrs = crate::span::Attributes::example();
        attrs.server_address = Address::Ip("10.0.0.2".parse().unwrap());
        attrs.server_port = 8080;
        attrs.client_address = "::ffff:10.0.0.1".parse().unwrap();
        attrs.client_port = 5555;
        attrs.error_type = None;
        let http = attrs.http.as_mut().unwrap();
        http.status = Some(503);
        http.request = Some(crate::span::Message::new(
            &[("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
            0,
        ));
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: None,
            kind,
            name: "GET /Users/{id}".into(),
            service: "Users".into(),
            start_unix_nano: 1_700_000_000_123_456_789,
            end_unix_nano: 1_700_000_000_123_457_000,
            status: SpanStatus::Error,
            attributes: attrs.into(),
            events: vec![SpanEvent {
                name: "request.end",
                time_unix_nano: 1_700_000_000_123_456_999,
            }],
            trace_state: None,
        }
    }

    #[test]
    fn server_span_maps_endpoints_units_and_tags() {
        let s = span(SpanKind::Server);
        let v: Value = serde_json::from_slice(&to_zipkin_json(&s, Some("front"))).unwrap();
        assert_eq!(v["kind"], "SERVER");
        assert_eq!(v["name"], "get /users/{id}");
        assert_eq!(v["timestamp"], 1_700_000_000_123_456u64);
        assert_eq!(v["duration"], 1); // 211 ns rounds up to 1 µs
        assert_eq!(
            v["localEndpoint"],
            json!({"serviceName":"users","ipv4":"10.0.0.2","port":8080})
        );
        assert_eq!(
            v["remoteEndpoint"],
            json!({"serviceName":"front","ipv4":"10.0.0.1","port":5555})
        );
        assert_eq!(v["tags"]["http.response.status_code"], "503");
        assert_eq!(v["tags"]["http.request.header.x-a"], "1, 2");
        assert_eq!(v["tags"]["error"], "503");
        assert_eq!(
            v["annotations"],
            json!([{"timestamp":1_700_000_000_123_456u64,"value":"request.end"}])
        );
        assert!(v.get("parentId").is_none());
    }

    #[test]
    fn client_local_endpoint_has_no_port() {
        let s = span(SpanKind::Client);
        let v: Value = serde_json::from_slice(&to_zipkin_json(&s, None)).unwrap();
        assert_eq!(
            v["localEndpoint"],
            json!({"serviceName":"users","ipv4":"10.0.0.1"})
        );
        assert_eq!(v["remoteEndpoint"], json!({"ipv4":"10.0.0.2","port":8080}));
    }
}
