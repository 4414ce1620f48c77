//! OTLP export over gRPC (`TraceService/Export`) and HTTP/protobuf (`POST /v1/traces`), built
//! only from the generated `opentelemetry-proto` types and client.
//!
//! Mapping from the JSON-lines span (DESIGN.md):
//! - one `ResourceSpans` per (service, host address): `service.name` = the span's `service`,
//!   `host.ip` = the address the service was seen on (`client.address` of a client span,
//!   `server.address` of a server span);
//! - one `ScopeSpans` per resource with scope `tapspan` and the crate version;
//! - ids are the hex ids as bytes (16 and 8), kind CLIENT/SERVER, times in ns since the epoch;
//! - attributes keep their JSON types: strings, integers (`int_value`), floats, booleans, arrays
//!   (`array_value`); events keep name and time;
//! - a sampled trace's tracestate (`ot=th:…`, the threshold it was kept at, see
//!   [`crate::sampling`]) becomes the span's `trace_state`, so backends can count what sampling
//!   dropped;
//! - status `error` becomes `STATUS_CODE_ERROR` with `error.type` (or the HTTP status) as message;
//!   `unset` stays unset.
//!
//! The protocol is chosen by `--otlp-protocol`, else by the URL: port 4318 or a path ending in
//! `/v1/traces` is HTTP, anything else gRPC. Headers (`--otlp-header`) go on every request as
//! HTTP headers or gRPC metadata; `gzip` compresses the request bodies.

use std::collections::HashMap;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
};
use prost::Message;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::delivery::{Delivery, DeliveryConfig, Outcome, Transport};
use super::http1::{HttpUrl, Poster};
use super::{SinkReport, SpanSink};
use crate::span::attributes::ValueRef;
use crate::span::{Attributes, Span, SpanKind, SpanStatus};

/// The instrumentation scope on every span.
pub const SCOPE_NAME: &str = "tapspan";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// The protocol a URL implies: port 4318 or a `/v1/traces` path means HTTP, else gRPC.
    pub fn for_url(url: &str) -> Protocol {
        let Ok(uri) = url.parse::<hyper::Uri>() else {
            return Protocol::Grpc;
        };
        let http = uri.port_u16() == Some(4318)
            || uri.path().trim_end_matches('/').ends_with("/v1/traces");
        if http {
            Protocol::HttpProtobuf
        } else {
            Protocol::Grpc
        }
    }
}

#[derive(Clone, Debug)]
pub struct OtlpConfig {
    pub endpoint: String,
    /// `None`: from the URL ([`Protocol::for_url`]).
    pub protocol: Option<Protocol>,
    pub headers: Vec<(String, String)>,
    pub gzip: bool,
    pub delivery: DeliveryConfig,
}

impl OtlpConfig {
    pub fn new(endpoint: &str) -> Self {
        OtlpConfig {
            endpoint: endpoint.to_string(),
            protocol: None,
            headers: Vec::new(),
            gzip: false,
            delivery: DeliveryConfig::default(),
        }
    }
}

/// A span ready for a request, with the resource it belongs to.
pub struct OtlpItem {
    pub service: String,
    pub host_ip: Option<String>,
    pub span: OtlpSpan,
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn any(value: any_value::Value) -> AnyValue {
    AnyValue { value: Some(value) }
}

/// A span's attributes as OTLP key-values, types kept.
fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(32);
    attributes.for_each(|key, value| {
        out.push(KeyValue {
            key: key.to_string_key(),
            value: Some(any_value(value)),
            ..Default::default()
        })
    });
    out
}

/// An attribute value as an OTLP `AnyValue`, types kept: integers beyond `i64` (OTLP's
/// `int_value`) become doubles.
pub fn any_value(v: ValueRef<'_>) -> AnyValue {
    use any_value::Value as V;
    let strings = |items: Vec<String>| {
        any(V::ArrayValue(ArrayValue {
            values: items.into_iter().map(|s| any(V::StringValue(s))).collect(),
        }))
    };
    match v {
        ValueRef::Bool(b) => any(V::BoolValue(b)),
        ValueRef::UInt(n) => match i64::try_from(n) {
            Ok(i) => any(V::IntValue(i)),
            Err(_) => any(V::DoubleValue(n as f64)),
        },
        ValueRef::Int(i) => any(V::IntValue(i)),
        ValueRef::Float(f) => any(V::DoubleValue(f)),
        ValueRef::Str(s) => any(V::StringValue(s.to_string())),
        ValueRef::Ip(ip) => any(V::StringValue(crate::text::ip(&ip))),
        ValueRef::Hex64(x) => any(V::StringValue(crate::text::hex64(x))),
        ValueRef::Strs(_) | ValueRef::HeaderValues(_) => strings(v.strings()),
        ValueRef::UInts(items) => any(V::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|n| any(V::IntValue(i64::from(*n))))
                .collect(),
        })),
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(any(value)),
        ..Default::default()
    }
}

/// The OTLP span of a tapspan span, with its resource key.
pub fn to_otlp(span: &Span) -> OtlpItem {
    let kind = match span.kind {
        SpanKind::Client => span::SpanKind::Client,
        SpanKind::Server => span::SpanKind::Server,
    };
    let status = match span.status {
        SpanStatus::Unset => None,
        SpanStatus::Error => {
            let message = match (&span.attributes.error_type, span.attributes.http_status()) {
                (Some(e), _) => e.clone(),
                (None, Some(code)) => code.to_string(),
                (None, None) => String::new(),
            };
            Some(Status {
                message,
                code: status::StatusCode::Error as i32,
            })
        }
    };
    let host_ip = Some(match span.kind {
        SpanKind::Client => crate::text::ip(&span.attributes.client_address),
        SpanKind::Server => span.attributes.server_address_text(),
    });
    let otlp = OtlpSpan {
        trace_id: hex_bytes(&span.trace_id),
        span_id: hex_bytes(&span.span_id),
        parent_span_id: span
            .parent_span_id
            .as_deref()
            .map(hex_bytes)
            .unwrap_or_default(),
        name: span.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: span.start_unix_nano,
        end_time_unix_nano: span.end_unix_nano,
        attributes: key_values(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.to_string(),
                ..Default::default()
            })
            .collect(),
        status,
        trace_state: span.trace_state.clone().unwrap_or_default(),
        ..Default::default()
    };
    OtlpItem {
        service: span.service.clone(),
        host_ip,
        span: otlp,
    }
}

/// The resource of a service seen on an address.
pub fn resource(service: &str, host_ip: Option<&str>) -> Resource {
    let mut attributes = vec![kv(
        "service.name",
        any_value::Value::StringValue(service.to_string()),
    )];
    if let Some(ip) = host_ip {
        attributes.push(kv(
            "host.ip",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![any(any_value::Value::StringValue(ip.to_string()))],
            }),
        ));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

/// One export request: spans grouped by resource, in first-seen order.
pub fn build_request(items: Vec<OtlpItem>) -> ExportTraceServiceRequest {
    let mut index: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut groups: Vec<ResourceSpans> = Vec::new();
    for item in items {
        let key = (item.service, item.host_ip);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(ResourceSpans {
                resource: Some(resource(&key.0, key.1.as_deref())),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            });
            groups.len() - 1
        });
        groups[i].scope_spans[0].spans.push(item.span);
    }
    ExportTraceServiceRequest {
        resource_spans: groups,
    }
}

fn rejected_of(resp: &ExportTraceServiceResponse) -> u64 {
    resp.partial_success
        .as_ref()
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

struct GrpcTransport {
    client: TraceServiceClient<Channel>,
    metadata: MetadataMap,
}

impl Transport for GrpcTransport {
    type Item = OtlpItem;
    type Request = ExportTraceServiceRequest;

    fn encode(&mut self, items: Vec<OtlpItem>) -> ExportTraceServiceRequest {
        build_request(items)
    }

    async fn send(&mut self, request: &ExportTraceServiceRequest) -> Outcome {
        let mut req = tonic::Request::new(request.clone());
        *req.metadata_mut() = self.metadata.clone();
        match self.client.export(req).await {
            Ok(resp) => Outcome::Delivered {
                rejected: rejected_of(resp.get_ref()),
            },
            Err(status) => grpc_outcome(&status),
        }
    }
}

/// What a failed gRPC export means for the retry policy.
pub(crate) fn grpc_outcome(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    let reason = format!("gRPC {:?}", status.code());
    match status.code() {
        // The OTLP spec's retryable codes (plus RESOURCE_EXHAUSTED, like 429).
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Unknown => Outcome::Transient {
            reason,
            retry_after: None,
        },
        _ => Outcome::Permanent { reason },
    }
}

struct HttpTransport {
    poster: Poster,
    gzip: bool,
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

impl Transport for HttpTransport {
    type Item = OtlpItem;
    type Request = Bytes;

    fn encode(&mut self, items: Vec<OtlpItem>) -> Bytes {
        let body = build_request(items).encode_to_vec();
        if self.gzip {
            Bytes::from(gzip(&body))
        } else {
            Bytes::from(body)
        }
    }

    async fn send(&mut self, request: &Bytes) -> Outcome {
        match self.poster.post(request).await {
            Ok(body) => Outcome::Delivered {
                rejected: ExportTraceServiceResponse::decode(body).map_or(0, |r| rejected_of(&r)),
            },
            Err(outcome) => outcome,
        }
    }
}

pub(crate) fn grpc_metadata(headers: &[(String, String)]) -> Result<MetadataMap, String> {
    let mut map = MetadataMap::new();
    for (k, v) in headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value = MetadataValue::try_from(v.as_str())
            .map_err(|_| format!("invalid value for header {k:?}"))?;
        map.append(key, value);
    }
    Ok(map)
}

/// An OTLP exporter: converts on the caller's thread, delivers on its own.
pub struct OtlpSink {
    delivery: Delivery<OtlpItem>,
}

impl OtlpSink {
    /// Check the configuration and start the exporter (it connects lazily: a backend that is
    /// down now is retried per the policy).
    pub fn start(config: OtlpConfig) -> Result<Self, String> {
        let protocol = config
            .protocol
            .unwrap_or_else(|| Protocol::for_url(&config.endpoint));
        let timeout = config.delivery.request_timeout;
        let name = match protocol {
            Protocol::Grpc => format!("otlp grpc {}", config.endpoint),
            Protocol::HttpProtobuf => format!("otlp http {}", config.endpoint),
        };
        let delivery = match protocol {
            Protocol::Grpc => {
                let url = HttpUrl::parse(&config.endpoint, "/")?; // checks scheme and host
                let metadata = grpc_metadata(&config.headers)?;
                let endpoint = Endpoint::from_shared(format!("http://{}", url.host))
                    .map_err(|e| format!("invalid URL {:?}: {e}", config.endpoint))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true);
                let gzip = config.gzip;
                Delivery::start(name, config.delivery, move || {
                    let mut client = TraceServiceClient::new(endpoint.connect_lazy());
                    if gzip {
                        client = client
                            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                    }
                    Ok(GrpcTransport { client, metadata })
                })
            }
            Protocol::HttpProtobuf => {
                let url = HttpUrl::parse(&config.endpoint, "/v1/traces")?;
                let poster =
                    Poster::new(url, "application/x-protobuf", config.gzip, &config.headers)?;
                let gzip = config.gzip;
                Delivery::start(name, config.delivery, move || {
                    Ok(HttpTransport { poster, gzip })
                })
            }
        };
        Ok(OtlpSink { delivery })
    }
}

impl SpanSink for OtlpSink {
    fn send(&mut self, span: &Span) {
        let item = to_otlp(span);
        let bytes = item.span.encoded_len() + 16;
        self.delivery.push(item, bytes);
    }

    fn close(self: Box<Self>) -> SinkReport {
        self.delivery.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_follows_port_and_path() {
        assert_eq!(Protocol::for_url("http://h:4317"), Protocol::Grpc);
        assert_eq!(Protocol::for_url("http://h:4318"), Protocol::HttpProtobuf);
        assert_eq!(
            Protocol::for_url("http://h:8080/v1/traces"),
            Protocol::HttpProtobuf
        );
        assert_eq!(Protocol::for_url("http://h:8080"), Protocol::Grpc);
    }

    #[test]
    fn attribute_values_keep_their_types() {
        use any_value::Value as V;
        assert_eq!(any_value(ValueRef::UInt(200)).value, Some(V::IntValue(200)));
        assert_eq!(
            any_value(ValueRef::UInt(u64::MAX)).value,
            Some(V::DoubleValue(u64::MAX as f64))
        );
        assert_eq!(
            any_value(ValueRef::Float(1.0)).value,
            Some(V::DoubleValue(1.0))
        );
        assert_eq!(
            any_value(ValueRef::Bool(true)).value,
            Some(V::BoolValue(true))
        );
        assert_eq!(
            any_value(ValueRef::Strs(&["a".to_string()])).value,
            Some(V::ArrayValue(ArrayValue {
                values: vec![any(V::StringValue("a".into()))]
            }))
        );
        assert_eq!(
            any_value(ValueRef::Hex64(10)).value,
            Some(V::StringValue("000000000000000a".into()))
        );
    }

    #[test]
    fn a_sampled_span_carries_its_threshold_in_trace_state() {
        let mut span = Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: None,
            kind: SpanKind::Server,
            name: "GET /".into(),
            service: "a".into(),
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: SpanStatus::Unset,
            attributes: crate::span::Attributes::example().into(),
            events: Vec::new(),
            trace_state: None,
        };
        assert_eq!(to_otlp(&span).span.trace_state, "");
        span.trace_state = Some("ot=th:e6666666666666".into());
        assert_eq!(to_otlp(&span).span.trace_state, "ot=th:e6666666666666");
    }

    #[test]
    fn hex_ids_become_bytes() {
        assert_eq!(
            hex_bytes("00f067aa0ba902b7"),
            [0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(hex_bytes("4bf92f3577b34da6a3ce929d0e0e4736").len(), 16);
    }
}
