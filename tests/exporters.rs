//! Exporter conformance and outage behaviour, against real receivers on 127.0.0.1:
//! an OTLP gRPC server built from the generated `TraceService` server, an OTLP/HTTP server that
//! decodes bodies with the generated `ExportTraceServiceRequest`, and a small HTTP/1.1 server
//! that records bodies (Zipkin) and misbehaves on demand (503, 400, hang).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message;
use serde_json::{json, Map, Value};

use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::export::delivery::{BatchLimits, DeliveryConfig, RetryPolicy};
use tapspan::export::otlp::{OtlpConfig, OtlpSink, Protocol};
use tapspan::export::zipkin::ZipkinSink;
use tapspan::export::{SinkReport, SpanSink};
use tapspan::pipeline::PipelineConfig;
use tapspan::run::replay::replay_files;
use tapspan::span::{Span, SpanKind, SpanStatus};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The spans `tapspan replay` makes of a capture (exchanges through the causality builder).
fn spans_of(pcap: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut builder = CausalityBuilder::new(CausalityConfig::default());
    replay_files(
        &[repo(pcap)],
        PipelineConfig::default(),
        &mut |_, _| {},
        &mut |ex| builder.push(ex, &mut |s| spans.push(s)),
    )
    .expect("replay");
    builder.finish(&mut |s| spans.push(s));
    assert!(!spans.is_empty(), "{pcap} gave no spans");
    spans
}

/// Delivery settings for tests: short waits everywhere.
fn quick(deadline_ms: u64) -> DeliveryConfig {
    DeliveryConfig {
        batch: BatchLimits {
            max_spans: 64,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(20),
        },
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_attempts: 4,
            max_retry_after: Duration::from_secs(2),
        },
        queue_spans: 4096,
        queue_block: Duration::from_millis(100),
        request_timeout: Duration::from_millis(1500),
        shutdown_deadline: Duration::from_millis(deadline_ms),
    }
}

fn run_sink(mut sink: Box<dyn SpanSink>, spans: &[Span]) -> SinkReport {
    for s in spans {
        sink.send(s);
    }
    sink.close()
}

fn reserve_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// OTLP gRPC receiver (generated TraceService server).

/// Requests received, with their gRPC metadata.
type Received = Vec<(HashMap<String, String>, ExportTraceServiceRequest)>;

#[derive(Clone, Default)]
struct Collector {
    got: Arc<Mutex<Received>>,
    /// Only count spans (for the throughput run), keep no requests.
    count_only: bool,
    spans: Arc<std::sync::atomic::AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.spans
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if self.count_only {
            return Ok(tonic::Response::new(ExportTraceServiceResponse::default()));
        }
        let meta = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        self.got.lock().unwrap().push((meta, request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serve OTLP gRPC on `addr` (port 0: any) for at most 60 s, from a background thread.
fn grpc_collector_on(addr: SocketAddr) -> (SocketAddr, Collector) {
    grpc_collector_with(addr, Collector::default(), Duration::from_secs(60))
}

fn grpc_collector_with(
    addr: SocketAddr,
    collector: Collector,
    lifetime: Duration,
) -> (SocketAddr, Collector) {
    let listener = TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = collector.clone();
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // Like real collectors (Go sets TCP_NODELAY by default): no Nagle delay on replies.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let server = TraceServiceServer::new(svc)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(64 << 20);
            let _ = tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming_shutdown(incoming, tokio::time::sleep(lifetime))
                .await;
        });
    });
    (addr, collector)
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server: records every request, answers as `reply(n)` says for the n-th one.

#[derive(Clone, Debug)]
enum Reply {
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Read the request, never answer (for up to 5 s).
    Hang,
}

#[derive(Clone, Debug)]
struct Recorded {
    at: Instant,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

fn http_server<F>(reply: F) -> (SocketAddr, Log)
where
    F: Fn(usize) -> Reply + Send + Sync + 'static,
{
    http_server_on("127.0.0.1:0".parse().unwrap(), reply)
}

fn http_server_on<F>(addr: SocketAddr, reply: F) -> (SocketAddr, Log)
where
    F: Fn(usize) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let log: Log = Arc::default();
    let reply = Arc::new(reply);
    let log2 = Arc::clone(&log);
    thread::spawn(move || {
        let stop = Instant::now() + Duration::from_secs(60);
        while Instant::now() < stop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (log, reply) = (Arc::clone(&log2), Arc::clone(&reply));
                    thread::spawn(move || serve_conn(stream, &log, &*reply));
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    (addr, log)
}

fn serve_conn(stream: TcpStream, log: &Log, reply: &dyn Fn(usize) -> Reply) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let n = {
            let mut log = log.lock().unwrap();
            log.push(Recorded {
                at: Instant::now(),
                path,
                headers,
                body,
            });
            log.len() - 1
        };
        match reply(n) {
            Reply::Hang => {
                thread::sleep(Duration::from_secs(5));
                return;
            }
            Reply::Status(code, extra) => {
                let mut resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n");
                for (k, v) in extra {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                if out.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

fn ok(_: usize) -> Reply {
    Reply::Status(200, vec![])
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip body");
    out
}

/// The bodies posted to `path`, unzipped (the RED metrics go to `/v1/metrics` alongside).
fn bodies_posted_to(log: &Log, path: &str) -> Vec<Vec<u8>> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            assert_eq!(
                r.headers.get("content-type").map(String::as_str),
                Some("application/x-protobuf")
            );
            match r.headers.get("content-encoding").map(String::as_str) {
                Some("gzip") => gunzip(&r.body),
                _ => r.body.clone(),
            }
        })
        .collect()
}

fn otlp_requests_from_http(log: &Log) -> Vec<ExportTraceServiceRequest> {
    bodies_posted_to(log, "/v1/traces")
        .iter()
        .map(|b| ExportTraceServiceRequest::decode(b.as_slice()).expect("OTLP protobuf body"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checking OTLP spans against the JSON-lines spans.

fn json_of(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => json!(s),
        Some(V::BoolValue(b)) => json!(b),
        Some(V::IntValue(i)) => json!(i),
        Some(V::DoubleValue(d)) => json!(d),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(json_of).collect()),
        Some(V::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|k| (k.key.clone(), k.value.as_ref().map_or(Value::Null, json_of)))
                .collect(),
        ),
        Some(other) => panic!("unexpected attribute value {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every JSON-lines span arrived exactly once, with ids, parent, kind, name, times, status,
/// attributes, events, the resource's `service.name` and the `tapspan` scope.
fn assert_all_arrived(expected: &[Span], requests: &[ExportTraceServiceRequest]) {
    let mut got = HashMap::new();
    for req in requests {
        for rs in &req.resource_spans {
            let resource = rs.resource.as_ref().expect("resource");
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(json_of)
                .expect("service.name");
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().expect("scope");
                assert_eq!(scope.name, "tapspan");
                assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
                for s in &ss.spans {
                    let dup = got.insert(hex(&s.span_id), (service.clone(), s.clone()));
                    assert!(dup.is_none(), "span {} delivered twice", hex(&s.span_id));
                }
            }
        }
    }
    assert_eq!(got.len(), expected.len(), "span count");
    for e in expected {
        let (service, s) = got
            .get(&e.span_id)
            .unwrap_or_else(|| panic!("span {} missing", e.span_id));
        assert_eq!(service, &json!(e.service), "service of {}", e.span_id);
        assert_eq!(hex(&s.trace_id), e.trace_id);
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
        let parent = (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id));
        assert_eq!(parent, e.parent_span_id, "parent of {}", e.span_id);
        let kind = match e.kind {
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Server => span::SpanKind::Server,
        };
        assert_eq!(s.kind, kind as i32);
        assert_eq!(s.name, e.name);
        assert_eq!(s.start_time_unix_nano, e.start_unix_nano);
        assert_eq!(s.end_time_unix_nano, e.end_unix_nano);
        let code = s.status.as_ref().map_or(0, |st| st.code);
        let want = match e.status {
            SpanStatus::Unset => status::StatusCode::Unset,
            SpanStatus::Error => status::StatusCode::Error,
        };
        assert_eq!(code, want as i32, "status of {}", e.span_id);
        let attrs: Map<String, Value> = s
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map_or(Value::Null, json_of),
                )
            })
            .collect();
        assert_eq!(attrs, e.attributes.to_json(), "attributes of {}", e.span_id);
        let events: Vec<(String, u64)> = s
            .events
            .iter()
            .map(|ev| (ev.name.clone(), ev.time_unix_nano))
            .collect();
        let want: Vec<(String, u64)> = e
            .events
            .iter()
            .map(|ev| (ev.name.to_string(), ev.time_unix_nano))
            .collect();
        assert_eq!(events, want, "events of {}", e.span_id);
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn otlp_grpc_delivers_every_span_intact() {
    let spans = spans_of("pcaps/nginx-request-id.pcap");
    let (addr, collector) = grpc_collector_on("127.0.0.1:0".parse().unwrap());
    let mut config = OtlpConfig::new(&format!("http://{addr}"));
    config.gzip = true;
    config.headers = vec![("X-Api-Key".into(), "k1".into())];
    config.delivery = quick(5_000);
    let sink = OtlpSink::start(config).unwrap();
    let report = run_sink(Box::new(sink), &spans);
    assert_eq!(
        (report.delivered, report.dropped),
        (spans.len() as u64, 0),
        "{report}"
    );
    let got = collector.got.lock().unwrap();
    assert!(got.len() > 1, "expected several batches, got {}", got.len());
    assert!(got
        .iter()
        .all(|(meta, _)| meta.get("x-api-key").map(String::as_str) == Some("k1")));
    let requests: Vec<_> = got.iter().map(|(_, r)| r.clone()).collect();
    assert_all_arrived(&spans, &requests);
}

#[test]
fn otlp_http_delivers_every_span_intact() {
    let spans = spans_of("pcaps/nginx-request-id.pcap");
    let (addr, log) = http_server(ok);
    let mut config = OtlpConfig::new(&format!("http://{addr}/v1/traces"));
    config.gzip = true;
    config.headers = vec![("Authorization".into(), "Bearer backend-key".into())];
    config.delivery = quick(5_000);
    assert_eq!(Protocol::for_url(&config.endpoint), Protocol::HttpProtobuf);
    let report = run_sink(Box::new(OtlpSink::start(config).unwrap()), &spans);
    assert_eq!(
        (report.delivered, report.dropped),
        (spans.len() as u64, 0),
        "{report}"
    );
    {
        let log = log.lock().unwrap();
        assert!(log
            .iter()
            .all(
                |r| r.headers.get("content-encoding").map(String::as_str) == Some("gzip")
                    && r.headers.get("authorization").map(String::as_str)
                        == Some("Bearer backend-key")
            ));
    }
    assert_all_arrived(&spans, &otlp_requests_from_http(&log));
}

// ---------------------------------------------------------------------------------------------
// Zipkin v2: conformance to zipkin2-api.yaml.

/// Check `v` against a Swagger 2.0 schema: `$ref`, type, required, properties (no unknown
/// ones, to catch misspelt fields), additionalProperties, items, enum, min/maxLength, the
/// `[a-f0-9]{n,m}` id patterns, minimum.
fn validate(schema: &Value, defs: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return validate(&defs[name], defs, v, at, errors);
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{at}: expected {ty:?}, got {v}"));
        return;
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for f in req.iter().filter_map(Value::as_str) {
            if v.get(f).is_none() {
                errors.push(format!("{at}: required field {f} missing"));
            }
        }
    }
    if let (Some(obj), Some(props)) = (v.as_object(), schema.get("properties")) {
        for (k, val) in obj {
            match props.get(k) {
                Some(p) => validate(p, defs, val, &format!("{at}.{k}"), errors),
                None => errors.push(format!("{at}: field {k} is not in the Zipkin v2 model")),
            }
        }
    }
    if let (Some(obj), Some(ap)) = (v.as_object(), schema.get("additionalProperties")) {
        for (k, val) in obj {
            validate(ap, defs, val, &format!("{at}.{k}"), errors);
        }
    }
    if let (Some(items), Some(s)) = (v.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(s, defs, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{at}: {v} not in {allowed:?}"));
        }
    }
    if let Some(s) = v.as_str() {
        let n = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if n < min {
                errors.push(format!("{at}: {s:?} shorter than {min}"));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if n > max {
                errors.push(format!("{at}: {s:?} longer than {max}"));
            }
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            assert!(p.starts_with("[a-f0-9]{"), "unhandled pattern {p}");
            if !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                errors.push(format!("{at}: {s:?} does not match {p}"));
            }
        }
    }
    if let (Some(n), Some(min)) = (v.as_i64(), schema.get("minimum").and_then(Value::as_i64)) {
        if n < min {
            errors.push(format!("{at}: {n} below minimum {min}"));
        }
    }
}

fn zipkin_spec() -> Value {
    let path = repo("../shared/spec/zipkin2-api.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the Zipkin API spec)", path.display()));
    serde_yaml::from_str(&text).expect("zipkin2-api.yaml")
}

fn check_zipkin_body(body: &[u8], expected: &HashMap<String, &Span>) -> usize {
    let spec = zipkin_spec();
    let defs = &spec["definitions"];
    let list_schema = &spec["paths"]["/spans"]["post"]["parameters"][0]["schema"];
    assert!(
        list_schema.get("$ref").is_some(),
        "POST /spans body schema not found in the spec: {list_schema}"
    );
    let v: Value = serde_json::from_slice(body).expect("Zipkin body is JSON");
    let mut errors = Vec::new();
    validate(list_schema, defs, &v, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "Zipkin output breaks the spec:\n{}",
        errors.join("\n")
    );
    let list = v.as_array().unwrap();
    for z in list {
        let id = z["id"].as_str().unwrap();
        let e = expected
            .get(id)
            .unwrap_or_else(|| panic!("unknown span {id}"));
        // Ids: 32-hex trace, 16-hex span and parent.
        assert_eq!(z["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(z["traceId"], json!(e.trace_id));
        assert_eq!(
            z.get("parentId").and_then(Value::as_str),
            e.parent_span_id.as_deref()
        );
        // Units: microseconds.
        assert_eq!(
            z["timestamp"],
            json!(e.start_unix_nano / 1000),
            "timestamp of {id}"
        );
        let dur = (e.end_unix_nano - e.start_unix_nano).div_ceil(1000).max(1);
        assert_eq!(z["duration"], json!(dur), "duration of {id}");
        for (a, ev) in z["annotations"].as_array().unwrap().iter().zip(&e.events) {
            assert_eq!(a["timestamp"], json!(ev.time_unix_nano / 1000));
            assert_eq!(a["value"], json!(ev.name));
        }
        let (kind, local_addr) = match e.kind {
            SpanKind::Client => ("CLIENT", "client.address"),
            SpanKind::Server => ("SERVER", "server.address"),
        };
        assert_eq!(z["kind"], kind);
        assert_eq!(
            z["localEndpoint"]["serviceName"],
            json!(e.service.to_lowercase())
        );
        let attributes = e.attributes.to_json();
        let ip = &attributes[local_addr];
        let z_ip = z["localEndpoint"]
            .get("ipv4")
            .or(z["localEndpoint"].get("ipv6"));
        assert_eq!(z_ip, Some(ip));
        if e.kind == SpanKind::Server {
            assert_eq!(z["localEndpoint"]["port"], attributes["server.port"]);
            assert_eq!(z["remoteEndpoint"]["port"], attributes["client.port"]);
        } else {
            assert_eq!(z["remoteEndpoint"]["port"], attributes["server.port"]);
        }
        // The peer's service is named on both spans of an exchange.
        assert!(z["remoteEndpoint"]["serviceName"].is_string(), "{z}");
        assert_eq!(
            z["tags"]["http.request.method"],
            attributes["http.request.method"]
        );
        if let Some(code) = attributes.get("http.response.status_code") {
            assert_eq!(
                z["tags"]["http.response.status_code"],
                json!(code.to_string())
            );
        }
    }
    list.len()
}

#[test]
fn zipkin_output_conforms_to_the_v2_api() {
    let spans = spans_of("pcaps/nginx-request-id.pcap");
    let (addr, log) = http_server(|_| Reply::Status(202, vec![]));
    let sink = ZipkinSink::start(&format!("http://{addr}/api/v2/spans"), quick(5_000)).unwrap();
    let report = run_sink(Box::new(sink), &spans);
    assert_eq!(
        (report.delivered, report.dropped),
        (spans.len() as u64, 0),
        "{report}"
    );
    let expected: HashMap<String, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let log = log.lock().unwrap();
    let mut n = 0;
    for r in log.iter() {
        assert_eq!(r.path, "/api/v2/spans");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        n += check_zipkin_body(&r.body, &expected);
    }
    assert_eq!(n, spans.len());
}

// ---------------------------------------------------------------------------------------------
// The binary: several sinks at once, no secrets on the wire.

#[test]
fn replay_sends_to_otlp_grpc_otlp_http_and_zipkin_without_secrets() {
    let (grpc, collector) = grpc_collector_on("127.0.0.1:0".parse().unwrap());
    let (http, http_log) = http_server(ok);
    let (zipkin, zipkin_log) = http_server(|_| Reply::Status(202, vec![]));
    let out = common::tapspan(&[
        "replay",
        "pcaps/nginx-mixed.pcap",
        "--otlp",
        &format!("http://{grpc}"),
        "--otlp",
        &format!("http://{http}/v1/traces"),
        "--zipkin",
        &format!("http://{zipkin}/api/v2/spans"),
        "--export-deadline",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "JSON lines go to stdout only without exporters or with --output"
    );
    let expected = spans_of("pcaps/nginx-mixed.pcap");
    let n = expected.len();
    for name in ["otlp grpc", "otlp http", "zipkin"] {
        let line = stderr
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no report for {name}: {stderr}"));
        assert!(
            line.contains(&format!("{n} spans delivered, 0 dropped")),
            "{line}"
        );
    }

    let grpc_requests: Vec<_> = collector
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_all_arrived(&expected, &grpc_requests);
    let http_requests = otlp_requests_from_http(&http_log);
    assert_all_arrived(&expected, &http_requests);

    let mut wire: Vec<Vec<u8>> = Vec::new();
    wire.extend(grpc_requests.iter().map(Message::encode_to_vec));
    wire.extend(bodies_posted_to(&http_log, "/v1/traces"));
    let zipkin_bodies: Vec<Vec<u8>> = zipkin_log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    let by_id: HashMap<String, &Span> = expected.iter().map(|s| (s.span_id.clone(), s)).collect();
    let zipkin_spans: usize = zipkin_bodies
        .iter()
        .map(|b| check_zipkin_body(b, &by_id))
        .sum();
    assert_eq!(zipkin_spans, n);
    wire.extend(zipkin_bodies);
    let all: Vec<u8> = wire.concat();
    assert!(!all.is_empty());
    for secret in ["s3cr3t-token", "abc123"] {
        assert!(
            !all.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} leaked to an exporter"
        );
    }
    // Positive control: the request the secrets rode on is there, redacted.
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("access_token="), "query kept, value redacted");
}

#[test]
fn bad_exporter_urls_are_usage_errors() {
    for args in [
        ["--otlp", "https://collector.example:4317"],
        ["--zipkin", "ftp://x/api/v2/spans"],
        ["--otlp", "not a url"],
        ["--otlp-header", "bad key=v"],
        ["--otlp-header", "novalue"],
    ] {
        let mut a = vec!["replay", "fixtures/crafted/baseline.pcap"];
        a.extend(args);
        let out = common::tapspan(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Outages.

fn reason_count(r: &SinkReport, prefix: &str) -> u64 {
    r.drop_reasons
        .iter()
        .filter(|(why, _)| why.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn backend_down_at_start_is_retried_until_it_comes_up() {
    let spans = spans_of("fixtures/crafted/baseline.pcap");
    let addr = reserve_port(); // nothing listens here yet
    let mut config = OtlpConfig::new(&format!("http://{addr}"));
    config.delivery = quick(5_000);
    config.delivery.retry.max_attempts = 100;
    let sink = OtlpSink::start(config).unwrap();
    let mut sink: Box<dyn SpanSink> = Box::new(sink);
    for s in &spans {
        sink.send(s);
    }
    thread::sleep(Duration::from_millis(400));
    let (_, collector) = grpc_collector_on(addr);
    let report = sink.close();
    assert_eq!(
        (report.delivered, report.dropped),
        (spans.len() as u64, 0),
        "{report}"
    );
    let got = collector.got.lock().unwrap();
    let requests: Vec<_> = got.iter().map(|(_, r)| r.clone()).collect();
    assert_all_arrived(&spans, &requests);
}

#[test]
fn backend_that_stays_down_loses_spans_by_count_and_reason() {
    let spans = spans_of("fixtures/crafted/baseline.pcap");
    let addr = reserve_port();
    let started = Instant::now();
    let sink = ZipkinSink::start(&format!("http://{addr}/api/v2/spans"), quick(3_000)).unwrap();
    let report = run_sink(Box::new(sink), &spans);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.delivered, 0);
    assert_eq!(report.dropped, spans.len() as u64, "{report}");
    assert_eq!(
        reason_count(&report, "retries exhausted (connection refused)"),
        spans.len() as u64,
        "{report}"
    );
}

#[test]
fn backend_503_then_recovering_is_retried_after_retry_after() {
    let spans = spans_of("fixtures/crafted/baseline.pcap");
    let (addr, log) = http_server(|n| {
        if n == 0 {
            Reply::Status(503, vec![("retry-after", "1")])
        } else {
            Reply::Status(200, vec![])
        }
    });
    let mut config = OtlpConfig::new(&format!("http://{addr}"));
    config.protocol = Some(Protocol::HttpProtobuf);
    config.delivery = quick(5_000);
    config.delivery.batch.max_spans = 100_000;
    config.delivery.batch.max_age = Duration::from_millis(200);
    let report = run_sink(Box::new(OtlpSink::start(config).unwrap()), &spans);
    assert_eq!(
        (report.delivered, report.dropped),
        (spans.len() as u64, 0),
        "{report}"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "one refused attempt and one retry");
    assert_eq!(log[0].body, log[1].body, "the same batch is retried");
    let gap = log[1].at - log[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(2),
        "Retry-After: 1 honoured, waited {gap:?}"
    );
}

#[test]
fn backend_400_is_not_retried_and_the_loss_is_reported() {
    let spans = spans_of("fixtures/crafted/baseline.pcap");
    let (addr, log) = http_server(|_| Reply::Status(400, vec![]));
    let mut delivery = quick(5_000);
    delivery.batch.max_spans = 4;
    let sink = ZipkinSink::start(&format!("http://{addr}"), delivery).unwrap();
    let report = run_sink(Box::new(sink), &spans);
    assert_eq!(report.delivered, 0);
    assert_eq!(report.dropped, spans.len() as u64);
    assert_eq!(
        reason_count(&report, "rejected (HTTP 400)"),
        spans.len() as u64,
        "{report}"
    );
    // One request per batch, none repeated.
    let log = log.lock().unwrap();
    assert_eq!(log.len(), spans.len().div_ceil(4), "{}", log.len());
    assert_eq!(log[0].path, "/api/v2/spans");
}

#[test]
fn backend_that_hangs_is_cut_at_the_deadline_with_bounded_memory() {
    let one = spans_of("fixtures/crafted/baseline.pcap");
    let spans: Vec<Span> = one.iter().cycle().take(3_000).cloned().collect();
    let (addr, log) = http_server(|_| Reply::Hang);
    let mut delivery = quick(1_000);
    delivery.queue_spans = 100;
    delivery.batch.max_spans = 50;
    delivery.queue_block = Duration::from_millis(50);
    delivery.request_timeout = Duration::from_secs(30);
    let mut config = OtlpConfig::new(&format!("http://{addr}/v1/traces"));
    config.delivery = delivery;
    let started = Instant::now();
    let mut sink: Box<dyn SpanSink> = Box::new(OtlpSink::start(config).unwrap());
    for s in &spans {
        sink.send(s);
    }
    let sent = started.elapsed();
    assert!(
        sent < Duration::from_secs(1),
        "a stalled backend must not stall intake: {sent:?}"
    );
    let closing = Instant::now();
    let report = sink.close();
    let closed = closing.elapsed();
    assert!(
        closed <= Duration::from_millis(1_600),
        "deadline 1 s, took {closed:?}"
    );
    assert_eq!(report.delivered, 0);
    assert_eq!(report.dropped, spans.len() as u64, "{report}");
    // At most a queue and a batch were ever held; the rest was turned away at the door.
    let queue_full = reason_count(&report, "queue full");
    assert!(queue_full >= (spans.len() - 100 - 50) as u64, "{report}");
    assert!(reason_count(&report, "shutdown deadline") > 0, "{report}");
    assert_eq!(log.lock().unwrap().len(), 1, "one request, hanging");
}

#[test]
fn replay_reports_lost_spans_and_still_exits_zero() {
    let addr = reserve_port();
    let started = Instant::now();
    let out = common::tapspan(&[
        "replay",
        "fixtures/crafted/baseline.pcap",
        "--zipkin",
        &format!("http://{addr}/api/v2/spans"),
        "--export-deadline",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let n = spans_of("fixtures/crafted/baseline.pcap").len();
    let line = stderr
        .lines()
        .find(|l| l.contains("zipkin"))
        .expect(&stderr);
    assert!(
        line.contains(&format!("0 spans delivered, {n} dropped")),
        "{line}"
    );
    assert!(
        line.contains("connection refused") || line.contains("shutdown deadline"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------
// Throughput (not part of the normal run):
//   cargo test --release --test exporters -- --ignored --nocapture otlp_grpc_throughput
// Capture: $TAPSPAN_BENCH_PCAP, default /work/bench-data/wrk-nginx.pcap.

#[test]
#[ignore = "benchmark: needs a large capture and a release build"]
fn otlp_grpc_throughput() {
    let pcap = std::env::var("TAPSPAN_BENCH_PCAP")
        .unwrap_or_else(|_| "/work/bench-data/wrk-nginx.pcap".to_string());
    // Asked for by name (`--ignored`): a missing capture is a failure, not a pass.
    assert!(
        Path::new(&pcap).exists(),
        "{pcap} not found: set TAPSPAN_BENCH_PCAP to a large capture"
    );
    let collector = Collector {
        count_only: true,
        ..Collector::default()
    };
    let (addr, collector) = grpc_collector_with(
        "127.0.0.1:0".parse().unwrap(),
        collector,
        Duration::from_secs(600),
    );
    let timed = |args: &[&str]| {
        let started = Instant::now();
        let out = common::tapspan(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (started.elapsed(), out)
    };
    let (jsonl_time, _) = timed(&["replay", &pcap, "--no-progress", "-o", "/dev/null"]);
    let url = format!("http://{addr}");
    let (otlp_time, out) = timed(&["replay", &pcap, "--no-progress", "--otlp", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let received = collector.spans.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{stderr}");
    eprintln!(
        "replay to JSON lines (/dev/null): {:.2} s",
        jsonl_time.as_secs_f64()
    );
    eprintln!(
        "replay through OTLP gRPC: {received} spans received in {:.2} s = {:.0} spans/s",
        otlp_time.as_secs_f64(),
        received as f64 / otlp_time.as_secs_f64()
    );
    assert!(stderr.contains(" 0 dropped"), "{stderr}");
}

/// Secret values a capture carries in every place a secret can ride: credentials headers,
/// cookies both ways, a user-named header, credential-like and user-named query parameters.
const SECRETS: &[&str] = &[
    "hunter2-basic",
    "proxy-pw-77",
    "cookie-sess-91",
    "set-cookie-42",
    "tok-in-query-5",
    "apikey-in-query-6",
    "pw-in-query-7",
    "sig-in-query-8",
    "custom-param-9",
    "custom-header-10",
];

fn secrets_capture() -> PathBuf {
    use common::craft::{self, Conversation, Dir};
    let req =
        format!(
        "GET /account?access_token={}&api_key={}&password={}&sig={}&email={}&page=2 HTTP/1.1\r\n\
Host: bank\r\nAuthorization: Basic {}\r\nProxy-Authorization: Basic {}\r\n\
Cookie: session={}\r\nX-Internal-Secret: {}\r\nX-Request-ID: secrets-1\r\n\r\n",
        SECRETS[4], SECRETS[5], SECRETS[6], SECRETS[7], SECRETS[8], SECRETS[0], SECRETS[1],
        SECRETS[2], SECRETS[9]
    );
    let resp = format!(
        "HTTP/1.1 200 OK\r\nSet-Cookie: session={}; HttpOnly\r\nContent-Length: 2\r\n\r\nok",
        SECRETS[3]
    );
    let mut c = Conversation::new(7, 9);
    c.handshake();
    c.send(Dir::C2S, req.as_bytes(), 1460)
        .send(Dir::S2C, resp.as_bytes(), 1460)
        .ack(Dir::C2S);
    c.fin();
    let path = std::env::temp_dir().join(format!("tapspan-secrets-{}.pcap", std::process::id()));
    std::fs::write(
        &path,
        craft::pcap(1, false, &craft::ethernet_frames(&c.segs)),
    )
    .unwrap();
    path
}

/// Every output a replay of `capture` with `args` makes, by name: JSON lines, stdout, stderr
/// (`--summary`), OTLP gRPC and HTTP, Zipkin, the HTML report and the analysis JSON. Each
/// output file is checked to be readable by its owner only.
fn replay_to_every_output(capture: &Path, args: &[&str]) -> Vec<(&'static str, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!(
        "tapspan-outputs-{}-{}",
        std::process::id(),
        capture.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (jsonl, html, analysis) = (
        dir.join("spans.jsonl"),
        dir.join("report.html"),
        dir.join("analysis.json"),
    );
    let (grpc, collector) = grpc_collector_on("127.0.0.1:0".parse().unwrap());
    let (http, http_log) = http_server(ok);
    let (zipkin, zipkin_log) = http_server(|_| Reply::Status(202, vec![]));
    let mut all = vec![
        "replay".to_string(),
        capture.display().to_string(),
        "--output".into(),
        jsonl.display().to_string(),
        "--report".into(),
        html.display().to_string(),
        "--analysis-json".into(),
        analysis.display().to_string(),
        "--summary".into(),
        "--otlp".into(),
        format!("http://{grpc}"),
        "--otlp".into(),
        format!("http://{http}/v1/traces"),
        "--zipkin".into(),
        format!("http://{zipkin}/api/v2/spans"),
        "--export-deadline".into(),
        "5".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = common::tapspan(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut outputs = Vec::new();
    for (name, path) in [
        ("JSON lines", &jsonl),
        ("HTML report", &html),
        ("analysis JSON", &analysis),
    ] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is readable by its owner only");
        outputs.push((name, std::fs::read(path).unwrap()));
    }
    std::fs::remove_dir_all(&dir).ok();
    let grpc_wire: Vec<u8> = collector
        .got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, r)| r.encode_to_vec())
        .collect();
    let bodies = |log: &Log| -> Vec<u8> {
        log.lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.body.clone())
            .collect()
    };
    outputs.extend([
        ("stdout", out.stdout),
        ("--summary (stderr)", out.stderr),
        ("OTLP gRPC", grpc_wire),
        ("OTLP HTTP", bodies(&http_log)),
        ("Zipkin", bodies(&zipkin_log)),
    ]);
    outputs
}

fn assert_no_secret_in(outputs: &[(&str, Vec<u8>)], secrets: &[&str]) {
    for (name, bytes) in outputs {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} leaked to {name}"
            );
        }
    }
}

#[test]
fn no_secret_value_reaches_any_output_format() {
    let capture = secrets_capture();
    // Ask for every secret-bearing header to be captured: names are kept, values never.
    let mut args = vec![
        "--redact-header",
        "X-Internal-Secret",
        "--redact-query",
        "email",
    ];
    for h in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-internal-secret",
    ] {
        args.extend(["--capture-header", h]);
    }
    let outputs = replay_to_every_output(&capture, &args);
    std::fs::remove_file(&capture).ok();
    assert_no_secret_in(&outputs, SECRETS);
    let lines = &outputs[0].1;
    let stderr = String::from_utf8_lossy(&outputs[4].1);
    // Positive controls: the exchange is in every format, with its redacted names kept.
    let text = String::from_utf8_lossy(lines);
    assert!(text.contains("email=REDACTED"), "{text}");
    assert!(text.contains("page=2"), "{text}");
    assert!(text.contains("http.request.header.authorization"), "{text}");
    assert!(text.contains("http.response.header.set-cookie"), "{text}");
    assert!(
        text.contains("http.request.header.x-internal-secret"),
        "{text}"
    );
    assert!(stderr.contains("/account"), "{stderr}");
    for (name, bytes) in &outputs[5..] {
        let t = String::from_utf8_lossy(bytes);
        assert!(t.contains("/account"), "{name} carries the exchange");
    }
}

/// The secrets planted in pcaps/nginx-secrets.pcap (one per line of its secrets.txt): a real
/// nginx and curl, recorded by scripts/secrets-recording/record.sh.
fn planted_secrets() -> Vec<String> {
    let list = std::fs::read_to_string(repo("pcaps/nginx-secrets.secrets.txt")).unwrap();
    list.lines().map(str::to_string).collect()
}

#[test]
fn no_secret_of_a_real_capture_reaches_any_output_format() {
    let capture = repo("pcaps/nginx-secrets.pcap");
    let secrets = planted_secrets();
    // Positive control: every secret is on the wire (and nginx logged the request-side ones,
    // fixtures/reference/nginx-secrets.access.log).
    let wire = std::fs::read(&capture).unwrap();
    for secret in &secrets {
        assert!(
            wire.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is not in the capture"
        );
    }
    // Every header that carries one is asked for: names are kept, values never.
    let mut args = Vec::new();
    for h in [
        "authorization",
        "cookie",
        "set-cookie",
        "x-vault-token",
        "x-access-token",
        "x-refresh-token",
        "x-debug",
        "referer",
        "location",
    ] {
        args.extend(["--capture-header", h]);
    }
    let outputs = replay_to_every_output(&capture, &args);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret_in(&outputs, &secrets);
    // Positive controls: all 17 exchanges in every format, what is not secret kept.
    let text = String::from_utf8_lossy(&outputs[0].1);
    assert_eq!(text.lines().count(), 34, "17 exchanges, two spans each");
    for kept in [
        "/cart;jsessionid=REDACTED/items",
        "/reset/REDACTED",
        "q=shoes",
        "user=bob&pass=REDACTED",
        "https://REDACTED@shop.example/p?session_id=REDACTED",
        "code=REDACTED&state=st-12#access_token=REDACTED",
        "http.request.header.x-vault-token",
    ] {
        assert!(text.contains(kept), "{kept} missing:\n{text}");
    }
    for (name, bytes) in &outputs[5..] {
        let t = String::from_utf8_lossy(bytes);
        assert!(
            t.contains("/oauth/callback"),
            "{name} carries the exchanges"
        );
    }
}

/// With `--otlp`, replay sends the RED metrics once at the end to `/v1/metrics`: cumulative
/// histograms whose counts add up to the HTTP spans, each with its service as the resource.
#[test]
fn replay_sends_red_metrics_over_otlp_http() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric, AggregationTemporality};
    let (http, log) = http_server(ok);
    let out = common::tapspan(&[
        "replay",
        "pcaps/nginx-mixed.pcap",
        "--otlp",
        &format!("http://{http}/v1/traces"),
        "--export-deadline",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("/v1/metrics: 1 metric exports delivered, 0 dropped"),
        "{stderr}"
    );
    let bodies = bodies_posted_to(&log, "/v1/metrics");
    assert_eq!(bodies.len(), 1);
    let req = ExportMetricsServiceRequest::decode(bodies[0].as_slice()).unwrap();
    let expected = spans_of("pcaps/nginx-mixed.pcap");
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for rm in &req.resource_metrics {
        let service = rm.resource.as_ref().unwrap().attributes[0]
            .value
            .as_ref()
            .map(json_of)
            .unwrap();
        for m in &rm.scope_metrics[0].metrics {
            let Some(metric::Data::Histogram(h)) = &m.data else {
                panic!("{m:?}")
            };
            assert_eq!(
                h.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            for p in &h.data_points {
                assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                *counts
                    .entry((m.name.clone(), service.as_str().unwrap().to_string()))
                    .or_default() += p.count;
            }
        }
    }
    let mut want: HashMap<(String, String), u64> = HashMap::new();
    for s in expected.iter().filter(|s| s.attributes.http.is_some()) {
        let name = match s.kind {
            SpanKind::Server => "http.server.request.duration",
            SpanKind::Client => "http.client.request.duration",
        };
        *want
            .entry((name.to_string(), s.service.clone()))
            .or_default() += 1;
    }
    assert!(!want.is_empty());
    assert_eq!(counts, want);
}
