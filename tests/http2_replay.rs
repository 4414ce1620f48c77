//! The four HTTP/2 recordings through the whole pipeline (`tapspan replay`), checked against
//! the servers' own logs (`pcaps/protocols/http2-*.md` say how they were made): one server
//! span per logged request or call, with its method, path and status (nginx) or its
//! `rpc.method` and gRPC status (grpcio); on the copies cut mid-connection, no path that was
//! not served, and requests whose path was indexed before the cut say so in
//! `tapspan.headers_unknown`. Exchange ids are unique.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps/protocols")
        .join(name)
}

/// Server spans of `tapspan replay` on a recording (every exchange has one).
fn server_spans(name: &str) -> Vec<Value> {
    server_spans_with(name, &[])
}

/// [`server_spans`], with more flags.
fn server_spans_with(name: &str, flags: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .arg("replay")
        .arg(pcap(name))
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let clients = spans.iter().filter(|s| s["kind"] == "client").count();
    let servers: Vec<Value> = spans
        .into_iter()
        .filter(|s| s["kind"] == "server")
        .collect();
    assert_eq!(clients, servers.len(), "a client span per server span");
    let ids: HashSet<&str> = servers
        .iter()
        .map(|s| s["attributes"]["tapspan.exchange_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), servers.len(), "exchange ids are unique");
    servers
}

fn attr<'a>(span: &'a Value, name: &str) -> &'a Value {
    &span["attributes"][name]
}

fn port(span: &Value) -> u16 {
    attr(span, "client.port").as_u64().unwrap() as u16
}

/// The request target as nginx logs it (`$request_uri`): path and query.
fn target(span: &Value) -> Option<String> {
    let path = attr(span, "url.path").as_str()?;
    Some(match attr(span, "url.query").as_str() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

/// How many of `want` are in `have`, as multisets.
fn found<T: std::hash::Hash + Eq + Clone>(want: &[T], have: &[T]) -> usize {
    let mut pool: HashMap<T, usize> = HashMap::new();
    for h in have {
        *pool.entry(h.clone()).or_default() += 1;
    }
    want.iter()
        .filter(|w| match pool.get_mut(*w) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// nginx's access log: (msec, client port, method, uri, status).
fn nginx_log() -> Vec<(u64, u16, String, String, u16)> {
    let text = std::fs::read_to_string(pcap("http2-nginx.access.log")).unwrap();
    text.lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            let (s, ms) = w[0].split_once('.').unwrap();
            let msec = s.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap();
            let status = w[5].parse().unwrap();
            (
                msec,
                w[2].parse().unwrap(),
                w[3].into(),
                w[4].into(),
                status,
            )
        })
        .collect()
}

/// The gRPC server's log: (ns, client port, path, status name).
fn grpc_log() -> Vec<(u64, u16, String, String)> {
    let text = std::fs::read_to_string(pcap("http2-grpc.server.log")).unwrap();
    text.lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            let port = w[1].rsplit(':').next().unwrap().parse().unwrap();
            (w[0].parse().unwrap(), port, w[2].into(), w[3].into())
        })
        .collect()
}

/// The messages the gRPC server logged sending, per call.
fn grpc_log_messages() -> Vec<u32> {
    let text = std::fs::read_to_string(pcap("http2-grpc.server.log")).unwrap();
    text.lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn grpc_status_name(span: &Value) -> Option<String> {
    let code = attr(span, "rpc.grpc.status_code").as_u64()?;
    Some(tapspan::protocols::http2::grpc::status_name(code as u32).to_string())
}

fn first_span_ns(spans: &[Value]) -> u64 {
    spans
        .iter()
        .map(|s| s["start_unix_nano"].as_u64().unwrap())
        .min()
        .unwrap()
}

#[test]
fn nginx_every_logged_request_is_a_span_with_method_path_and_status() {
    let log = nginx_log();
    let spans = server_spans("http2-nginx.pcap");
    assert_eq!(spans.len(), log.len(), "one server span per logged request");
    let want: Vec<_> = log
        .iter()
        .map(|(_, port, m, uri, status)| (*port, m.clone(), uri.clone(), *status))
        .collect();
    let have: Vec<_> = spans
        .iter()
        .filter_map(|s| {
            let method = attr(s, "http.request.method").as_str()?.to_string();
            let status = attr(s, "http.response.status_code").as_u64()? as u16;
            Some((port(s), method, target(s)?, status))
        })
        .collect();
    assert_eq!(found(&want, &have), want.len(), "every request as logged");
    for s in &spans {
        assert_eq!(attr(s, "network.protocol.version"), "2");
        assert!(attr(s, "tapspan.headers_unknown").is_null());
    }
    // nginx answers 500 on /api/fail: a server error; 404s fail only the client span.
    let fails = spans.iter().filter(|s| s["status"] == "error").count();
    let logged_5xx = log.iter().filter(|l| l.4 >= 500).count();
    assert_eq!(fails, logged_5xx);
}

#[test]
fn nginx_cut_never_reports_a_path_not_served() {
    let log = nginx_log();
    let spans = server_spans("http2-nginx-cut.pcap");
    let start_ms = first_span_ns(&spans) / 1_000_000;
    let served: HashSet<_> = log
        .iter()
        .map(|(_, port, m, uri, _)| (*port, m.clone(), uri.clone()))
        .collect();
    let mut with_path = 0;
    for s in &spans {
        match target(s) {
            Some(uri) => {
                with_path += 1;
                let method = attr(s, "http.request.method").as_str().unwrap().to_string();
                let key = (port(s), method, uri);
                assert!(served.contains(&key), "{key:?} was not served");
            }
            None => {
                let unknown = attr(s, "tapspan.headers_unknown");
                assert!(!unknown.is_null(), "no path and nothing said unknown: {s}");
            }
        }
    }
    // Requests logged well after the cut: each one's status is in the capture.
    let after: Vec<_> = log
        .iter()
        .filter(|l| l.0 > start_ms + 50)
        .map(|l| (l.1, l.4))
        .collect();
    let have: Vec<_> = spans
        .iter()
        .filter_map(|s| {
            Some((
                port(s),
                attr(s, "http.response.status_code").as_u64()? as u16,
            ))
        })
        .collect();
    assert_eq!(found(&after, &have), after.len());
    println!(
        "nginx cut: {} spans, {with_path} with their path, {} logged after the cut",
        spans.len(),
        after.len()
    );
}

#[test]
fn grpc_every_logged_call_is_an_rpc_span_with_its_status() {
    let log = grpc_log();
    let spans = server_spans("http2-grpc.pcap");
    assert_eq!(spans.len(), log.len(), "one server span per logged call");
    let want: Vec<_> = log
        .iter()
        .map(|(_, port, path, code)| (*port, path.clone(), code.clone()))
        .collect();
    let have: Vec<_> = spans
        .iter()
        .filter_map(|s| {
            let service = attr(s, "rpc.service").as_str()?;
            let method = attr(s, "rpc.method").as_str()?;
            Some((
                port(s),
                format!("/{service}/{method}"),
                grpc_status_name(s)?,
            ))
        })
        .collect();
    assert_eq!(found(&want, &have), want.len(), "every call as logged");
    for s in &spans {
        assert_eq!(attr(s, "rpc.system"), "grpc");
        let name = format!(
            "{}/{}",
            attr(s, "rpc.service").as_str().unwrap(),
            attr(s, "rpc.method").as_str().unwrap()
        );
        assert_eq!(s["name"], name.as_str());
    }
    // Server errors by OpenTelemetry's list: INTERNAL and UNAVAILABLE here, not NOT_FOUND
    // nor PERMISSION_DENIED.
    let server_errors = spans.iter().filter(|s| s["status"] == "error").count();
    let logged = log
        .iter()
        .filter(|l| l.3 == "INTERNAL" || l.3 == "UNAVAILABLE")
        .count();
    assert_eq!(server_errors, logged);
}

/// Per (client port, request start), the sorted latencies to the first response message, from
/// tshark's frames (`http2-grpc.first-message.tsv`, see `http2-grpc.md`).
fn first_messages_by_tshark() -> HashMap<(u16, u64), Vec<u64>> {
    let text = std::fs::read_to_string(pcap("http2-grpc.first-message.tsv")).unwrap();
    let mut by_start: HashMap<(u16, u64), Vec<u64>> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<u64> = line.split('\t').map(|v| v.parse().unwrap()).collect();
        by_start.entry((f[0] as u16, f[2])).or_default().push(f[3]);
    }
    by_start.values_mut().for_each(|v| v.sort_unstable());
    by_start
}

#[test]
fn grpc_first_message_latency_is_tsharks() {
    let spans = server_spans("http2-grpc.pcap");
    let mut ours: HashMap<(u16, u64), Vec<u64>> = HashMap::new();
    for s in &spans {
        if let Some(ns) = attr(s, "tapspan.grpc.first_message_ns").as_u64() {
            let start = s["start_unix_nano"].as_u64().unwrap();
            ours.entry((port(s), start)).or_default().push(ns);
            assert!(ns <= s["end_unix_nano"].as_u64().unwrap() - start);
        }
    }
    ours.values_mut().for_each(|v| v.sort_unstable());
    // Streams that began in one packet share a start: compared as sets of latencies.
    assert_eq!(ours, first_messages_by_tshark());
    // Exactly the calls the server logged answering with a message.
    let answered = grpc_log_messages().iter().filter(|&&n| n > 0).count();
    assert_eq!(ours.values().map(Vec::len).sum::<usize>(), answered);
}

#[test]
fn grpc_cut_calls_have_their_status_and_unknown_paths_said_so() {
    let log = grpc_log();
    let spans = server_spans("http2-grpc-cut.pcap");
    let start = first_span_ns(&spans);
    let served: HashSet<_> = log.iter().map(|l| (l.1, l.2.clone())).collect();
    let mut unknown_path = 0;
    for s in &spans {
        match target(s) {
            Some(path) => assert!(served.contains(&(port(s), path.clone())), "{path}"),
            None => {
                let unknown = attr(s, "tapspan.headers_unknown");
                assert!(unknown.as_array().is_some_and(|u| !u.is_empty()), "{s}");
                assert!(attr(s, "rpc.method").is_null());
                unknown_path += 1;
            }
        }
    }
    let after: Vec<_> = log
        .iter()
        .filter(|l| l.0 > start + 50_000_000)
        .map(|l| (l.1, 200))
        .collect();
    let have: Vec<_> = spans
        .iter()
        .filter_map(|s| Some((port(s), attr(s, "http.response.status_code").as_u64()?)))
        .collect();
    assert_eq!(found(&after, &have), after.len());
    println!(
        "grpc cut: {} spans, {unknown_path} with their path unknown, {} logged after the cut",
        spans.len(),
        after.len()
    );
}

#[test]
fn the_http2_table_and_header_list_caps_hold() {
    // No table: every field sent as a reference to an entry is unknown, never another
    // entry's value; each stream still has its path (nginx's clients send it as a literal).
    let served: HashSet<String> = nginx_log().into_iter().map(|l| l.3).collect();
    let spans = server_spans_with("http2-nginx.pcap", &["--max-http2-table-bytes", "0"]);
    assert_eq!(spans.len(), 3205);
    let unknown = spans
        .iter()
        .filter(|s| attr(s, "tapspan.headers_unknown").is_array())
        .count();
    assert!(
        unknown >= 3000,
        "{unknown} of 3205 spans with unknown fields"
    );
    for s in &spans {
        let t = target(s).expect("a path");
        assert!(served.contains(&t), "{t} was not served");
    }
    // A header list of 16 bytes keeps no path: the fields past it are dropped, not guessed.
    let spans = server_spans_with("http2-nginx.pcap", &["--max-http2-header-list-bytes", "16"]);
    assert_eq!(spans.len(), 3205);
    assert!(spans.iter().all(|s| target(s).is_none()));
}
