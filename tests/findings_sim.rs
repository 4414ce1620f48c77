//! Every finding type planted in simulated calls, and its look-alike that must not be reported
//! (parallel calls, one batched call, a compressed body, a fast transfer...). The recorded
//! shop captures cover the same kinds on real traffic (tests/report.rs); slow transfers only
//! appear here, since the recording's bridge moves 300 KB in about a millisecond.

use serde_json::{json, Value};
use tapspan::analysis::{Analysis, AnalysisConfig, Analyzer, FindingKind};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

/// One simulated exchange: its timing in ms from T0, and what it was.
#[derive(Clone)]
struct Call {
    id: u64,
    parent: Option<u64>,
    caller: String,
    callee: &'static str,
    method: &'static str,
    path: String,
    status: Option<u16>,
    error: Option<&'static str>,
    start: f64,
    first_byte: Option<f64>,
    end: f64,
    body: u64,
    encoding: Option<&'static str>,
}

fn call(
    id: u64,
    parent: Option<u64>,
    callee: &'static str,
    path: &str,
    start: f64,
    end: f64,
) -> Call {
    Call {
        id,
        parent,
        caller: if parent.is_some() { "api" } else { "client" }.to_string(),
        callee,
        method: "GET",
        path: path.to_string(),
        status: Some(200),
        error: None,
        start,
        first_byte: Some(end - 0.1),
        end,
        body: 100,
        encoding: None,
    }
}

fn ns(ms: f64) -> u64 {
    T0 + (ms * MS as f64) as u64
}

/// The two spans `tapspan replay` writes for a call, as JSON.
fn spans(c: &Call) -> [Value; 2] {
    let mut attrs = json!({
        "http.request.method": c.method,
        "url.path": c.path,
        "http.route": tapspan::route::template(&c.path),
        "http.response.body.size": c.body,
        "tapspan.exchange_id": format!("{:016x}", c.id),
    });
    if let Some(s) = c.status {
        attrs["http.response.status_code"] = json!(s);
    }
    if let Some(e) = c.error {
        attrs["error.type"] = json!(e);
    }
    if let Some(enc) = c.encoding {
        attrs["http.response.header.content-encoding"] = json!([enc]);
    }
    let mut events = vec![json!({"name": "request.end", "time_unix_nano": ns(c.start + 0.05)})];
    if let Some(fb) = c.first_byte {
        events.push(json!({"name": "response.start", "time_unix_nano": ns(fb)}));
    }
    let failed = c.error.is_some() || c.status.is_some_and(|s| s >= 500);
    let span = |kind: &str, id: String, parent: Option<String>, service: &str| {
        json!({
            "trace_id": format!("{:032x}", c.parent.unwrap_or(c.id) / 100 + 1),
            "span_id": id, "parent_span_id": parent, "kind": kind, "service": service,
            "name": "x", "start_unix_nano": ns(c.start), "end_unix_nano": ns(c.end),
            "status": if failed { "error" } else { "unset" },
            "attributes": attrs, "events": events,
        })
    };
    [
        span(
            "client",
            format!("c{}", c.id),
            c.parent.map(|p| format!("s{p}")),
            &c.caller,
        ),
        span(
            "server",
            format!("s{}", c.id),
            Some(format!("c{}", c.id)),
            c.callee,
        ),
    ]
}

fn analyse(calls: &[Call]) -> Analysis {
    let mut a = Analyzer::new(AnalysisConfig::default());
    for c in calls {
        for s in spans(c) {
            assert!(a.push_json(&s));
        }
    }
    a.finish(vec!["sim".into()])
}

fn kinds(a: &Analysis) -> Vec<FindingKind> {
    let mut k: Vec<FindingKind> = a.findings.iter().map(|f| f.kind).collect();
    k.sort();
    k
}

/// `n` requests to `api`, each at its own time, with `children(parent id, start)`.
fn requests(n: u64, duration: f64, children: impl Fn(u64, f64) -> Vec<Call>) -> Vec<Call> {
    let mut out = Vec::new();
    for r in 0..n {
        let id = 100 * (r + 1);
        let start = r as f64 * 1000.0;
        out.push(call(id, None, "api", "/order/1", start, start + duration));
        out.extend(children(id, start));
    }
    out
}

#[test]
fn n_plus_one_and_its_batched_twin() {
    let planted = analyse(&requests(4, 60.0, |p, t| {
        (0..5)
            .map(|i| {
                let s = t + 1.0 + 10.0 * i as f64;
                call(
                    p + 1 + i,
                    Some(p),
                    "items",
                    &format!("/items/{i}"),
                    s,
                    s + 8.0,
                )
            })
            .collect()
    }));
    let n1: Vec<_> = planted
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::NPlusOne)
        .collect();
    assert_eq!(n1.len(), 1);
    assert_eq!((n1[0].occurrences, n1[0].calls), (4, 20));
    // Saving: all but the slowest of 5 × 8 ms, in each of 4 requests.
    assert_eq!(n1[0].impact_ns, 4 * 4 * 8 * MS);

    let batched = analyse(&requests(4, 20.0, |p, t| {
        vec![call(p + 1, Some(p), "items", "/items", t + 1.0, t + 12.0)]
    }));
    assert_eq!(kinds(&batched), []);
}

#[test]
fn sequential_calls_and_their_parallel_twin() {
    let planted = analyse(&requests(3, 40.0, |p, t| {
        vec![
            call(p + 1, Some(p), "users", "/users/1", t + 1.0, t + 11.0),
            call(p + 2, Some(p), "prices", "/prices/1", t + 12.0, t + 22.0),
            call(p + 3, Some(p), "stock", "/stock/1", t + 23.0, t + 33.0),
        ]
    }));
    assert_eq!(kinds(&planted), [FindingKind::SequentialCalls]);
    let f = &planted.findings[0];
    assert_eq!(f.occurrences, 3);
    assert_eq!(f.impact_ns, 3 * 20 * MS);
    assert_eq!(
        f.target,
        "users GET /users/{id} → prices GET /prices/{id} → stock GET /stock/{id}"
    );

    let parallel = analyse(&requests(3, 15.0, |p, t| {
        vec![
            call(p + 1, Some(p), "users", "/users/1", t + 1.0, t + 11.0),
            call(p + 2, Some(p), "prices", "/prices/1", t + 1.2, t + 11.0),
            call(p + 3, Some(p), "stock", "/stock/1", t + 1.4, t + 12.0),
        ]
    }));
    assert_eq!(kinds(&parallel), []);
    // Back to back but too short to matter (saving under 1 ms): not reported either.
    let tiny = analyse(&requests(3, 2.0, |p, t| {
        vec![
            call(p + 1, Some(p), "users", "/users/1", t + 0.1, t + 0.4),
            call(p + 2, Some(p), "prices", "/prices/1", t + 0.5, t + 0.8),
        ]
    }));
    assert_eq!(kinds(&tiny), []);
}

#[test]
fn repeated_gets_retries_errors_and_timeouts() {
    let planted = analyse(&requests(2, 400.0, |p, t| {
        let mut failed = call(p + 2, Some(p), "stock", "/stock/9", t + 10.0, t + 15.0);
        failed.status = Some(503);
        let mut gave_up = call(p + 4, Some(p), "slow", "/slow/1", t + 30.0, t + 330.0);
        gave_up.status = None;
        gave_up.first_byte = None;
        gave_up.error = Some("connection_closed");
        vec![
            call(p + 1, Some(p), "config", "/config", t + 1.0, t + 3.0),
            failed,
            call(p + 3, Some(p), "stock", "/stock/9", t + 16.0, t + 21.0),
            gave_up,
            call(p + 5, Some(p), "config", "/config", t + 340.0, t + 342.0),
        ]
    }));
    let k = kinds(&planted);
    assert!(k.contains(&FindingKind::RepeatedGet), "{k:?}");
    assert!(k.contains(&FindingKind::Retries), "{k:?}");
    assert!(k.contains(&FindingKind::Errors), "{k:?}");
    assert!(k.contains(&FindingKind::Timeouts), "{k:?}");
    let timeouts = planted
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Timeouts)
        .unwrap();
    assert_eq!(timeouts.calls, 2);
    assert_eq!(timeouts.impact_ns, 2 * 300 * MS);
    // The retried call is a retry, not a repeated GET: only /config repeats.
    let repeated: Vec<_> = planted
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::RepeatedGet)
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(repeated, ["config GET /config"]);

    // Each request fetches its own user twice: one finding for the endpoint, not one per URL.
    let own_user = analyse(&requests(2, 30.0, |p, t| {
        vec![
            call(
                p + 1,
                Some(p),
                "users",
                &format!("/users/{p}"),
                t + 1.0,
                t + 5.0,
            ),
            call(
                p + 2,
                Some(p),
                "users",
                &format!("/users/{p}"),
                t + 6.0,
                t + 9.0,
            ),
        ]
    }));
    let repeated: Vec<_> = own_user
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::RepeatedGet)
        .map(|f| (f.target.as_str(), f.occurrences, f.calls))
        .collect();
    assert_eq!(repeated, [("users GET /users/{id}", 2, 4)]);

    // Different targets of one route, fetched twice: neither repeated nor N+1 (under 3 calls).
    let distinct = analyse(&requests(2, 30.0, |p, t| {
        vec![
            call(p + 1, Some(p), "users", "/users/1", t + 1.0, t + 5.0),
            call(p + 2, Some(p), "users", "/users/2", t + 1.5, t + 5.0),
        ]
    }));
    assert_eq!(kinds(&distinct), []);
}

#[test]
fn slow_first_byte_counts_think_time_not_time_spent_calling() {
    // `api` waits 100 ms for its first byte, all of it spent on its own call: not slow itself.
    let waiting = analyse(&requests(3, 101.0, |p, t| {
        let mut c = call(p + 1, Some(p), "db", "/query", t + 0.5, t + 100.5);
        c.first_byte = Some(t + 100.0);
        vec![c]
    }));
    let slow: Vec<&str> = waiting
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::SlowFirstByte)
        .map(|f| f.service.as_str())
        .collect();
    assert_eq!(slow, ["db"]);
}

#[test]
fn slow_transfer_and_large_bodies() {
    let transfer = |encoding: Option<&'static str>, body: u64, recv_ms: f64| {
        let mut calls = Vec::new();
        for i in 0..5u64 {
            let t = i as f64 * 500.0;
            let mut c = call(
                100 * (i + 1),
                None,
                "cdn",
                "/video/intro",
                t,
                t + 2.0 + recv_ms,
            );
            c.first_byte = Some(t + 2.0);
            c.body = body;
            c.encoding = encoding;
            calls.push(c);
        }
        analyse(&calls)
    };
    let planted = transfer(None, 4 << 20, 80.0);
    assert_eq!(
        kinds(&planted),
        [FindingKind::SlowTransfer, FindingKind::LargeBody]
    );
    let f = &planted.findings[0];
    assert_eq!(f.kind, FindingKind::SlowTransfer);
    assert_eq!(f.impact_ns, 5 * 80 * MS);
    // Compressed: still a slow transfer, but not an uncompressed body.
    assert_eq!(
        kinds(&transfer(Some("gzip"), 4 << 20, 80.0)),
        [FindingKind::SlowTransfer]
    );
    // Small and fast: nothing.
    assert_eq!(kinds(&transfer(None, 2_000, 0.2)), []);
}

#[test]
fn the_report_stays_small_with_thousands_of_clients_and_endpoints() {
    // A mirror port's view: 3,000 client addresses, 20,000 requests for 6,000 distinct assets
    // (names no route template folds), each request with two downstream calls.
    let mut calls = Vec::new();
    for r in 0..20_000u64 {
        let id = 100 * (r + 1);
        let t = r as f64 * 2.0;
        let mut root = call(
            id,
            None,
            "web",
            &format!("/assets/app.{}.js", r % 6000),
            t,
            t + 9.0,
        );
        root.caller = format!("10.1.{}.{}", r % 3000 / 250, r % 250);
        calls.push(root);
        calls.push(call(id + 1, Some(id), "cache", "/get", t + 1.0, t + 3.0));
        calls.push(call(id + 2, Some(id), "store", "/blob", t + 4.0, t + 8.0));
    }
    for c in calls.iter_mut().filter(|c| c.parent.is_some()) {
        c.caller = "web".into();
    }
    let a = analyse(&calls);
    assert_eq!(a.calls, 60_000);
    assert!(a.services.len() <= tapspan::analysis::stats::MAP_SERVICES);
    let other = a
        .services
        .iter()
        .find(|s| s.name == tapspan::analysis::stats::OTHER_SERVICES)
        .unwrap();
    // 3,000 clients and 3 servers; 39 services shown by name, the rest folded.
    assert_eq!(other.folded, 3003 - 39);
    assert_eq!(a.endpoints.len(), tapspan::analysis::stats::MAX_ENDPOINTS);
    assert_eq!(a.endpoints_left_out, 6002 - 1000);
    // One sequential finding per asset; the 100 most costly are kept.
    assert_eq!(a.findings.len(), tapspan::analysis::MAX_FINDINGS);
    assert_eq!(a.findings_left_out, 6000 - 100);
    let html = tapspan::analysis::report::html::render(&a);
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
}

mod hostile_spans {
    use super::*;
    use proptest::prelude::*;

    /// A span as JSON with its ids, times and fields drawn from small pools, so that exchanges
    /// share ids, parents form cycles, ends precede starts and values overflow.
    fn span() -> impl Strategy<Value = Value> {
        (
            (0u8..6, 0u8..6, proptest::option::of(0u8..6), any::<bool>()),
            (
                any::<u64>(),
                any::<u64>(),
                proptest::option::of(any::<u64>()),
            ),
            (
                proptest::option::of(0u16..700),
                proptest::option::of("[a-z_]{0,8}"),
                "(GET|POST|\\PC{0,3})",
                // Sometimes markup: the report must escape what the wire says.
                "(/[a-z0-9{}]{0,6}){0,3}|/<script>alert\\(1\\)</script>",
            ),
        )
            .prop_map(
                |((x, id, parent, client), (start, end, event), (status, error, method, route))| {
                    let mut attrs = json!({
                        "tapspan.exchange_id": format!("x{x}"),
                        "http.request.method": method,
                        "http.route": route,
                        "url.path": route,
                        "http.response.body.size": end,
                    });
                    if let Some(s) = status {
                        attrs["http.response.status_code"] = json!(s);
                    }
                    if let Some(e) = error {
                        attrs["error.type"] = json!(e);
                    }
                    let events: Vec<Value> = event
                        .into_iter()
                        .flat_map(|t| {
                            [
                                json!({"name": "request.end", "time_unix_nano": t}),
                                json!({"name": "response.start", "time_unix_nano": t / 2}),
                            ]
                        })
                        .collect();
                    json!({
                        "trace_id": format!("t{}", x % 2), "span_id": format!("s{id}"),
                        "parent_span_id": parent.map(|p| format!("s{p}")),
                        "kind": if client { "client" } else { "server" },
                        "service": format!("svc{}", id % 3), "start_unix_nano": start,
                        "end_unix_nano": end, "status": "error", "attributes": attrs,
                        "events": events,
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_spans_give_an_analysis_and_a_report(spans in proptest::collection::vec(span(), 0..40)) {
            let mut a = Analyzer::new(AnalysisConfig::default());
            for s in &spans {
                prop_assert!(a.push_json(s));
            }
            let analysis = a.finish(vec!["hostile".into()]);
            let counted: u64 = analysis.endpoints.iter().map(|e| e.count).sum();
            prop_assert_eq!(counted, analysis.calls);
            let html = tapspan::analysis::report::html::render(&analysis);
            prop_assert!(html.ends_with("</html>"));
            // The page's one script is its own; routes with markup arrive escaped.
            prop_assert_eq!(html.matches("<script>").count(), 1);
            prop_assert!(!html.contains("<script>alert"));
        }
    }
}
