//! Our own recordings of real servers (pcaps/NAME.pcap, each with NAME.md saying how it was
//! recorded) against two independent references committed beside them:
//!
//! - tshark's view (fixtures/reference/NAME.tshark*.tsv, produced by the commands in NAME.md):
//!   every response tshark decodes is an exchange of ours with the same method, URI and status,
//!   and our timing equals tshark's `http.time` within 1 µs. tshark measures from the frame that
//!   completed the request (`http.request_in`) to the frame that completed the response, which is
//!   our `request.end` → end; for a request carried in one packet that is the span's duration.
//! - the golden spans (fixtures/NAME.spans.jsonl): the exact output of `tapspan replay`, checked by
//!   hand against the server's access log and tshark when it was made. `TAPSPAN_BLESS=1` rewrites
//!   them; review the diff before committing.

mod common;

use std::collections::HashMap;

use tapspan::protocols::http1::Version;
use tapspan::protocols::Exchange;

struct TsharkRow {
    time_ns: u64,
    client_port: u16,
    fields: HashMap<String, String>,
}

fn parse_epoch_ns(s: &str) -> u64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    secs.parse::<u64>().unwrap() * 1_000_000_000 + frac[..9].parse::<u64>().unwrap()
}

fn read_tsv(path: &std::path::Path, client_port_field: &str) -> Vec<TsharkRow> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: HashMap<String, String> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TsharkRow {
                time_ns: parse_epoch_ns(&fields["frame.time_epoch"]),
                client_port: fields[client_port_field].parse().unwrap(),
                fields,
            }
        })
        .collect()
}

fn captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::repo_path("pcaps"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    names
}

fn stem(file: &str) -> &str {
    file.trim_end_matches(".pcapng").trim_end_matches(".pcap")
}

#[test]
fn every_capture_has_its_note_and_references() {
    let names = captures();
    assert!(names.len() >= 4, "at least four recorded captures");
    for file in &names {
        let name = stem(file);
        for needed in [
            format!("pcaps/{name}.md"),
            format!("fixtures/reference/{name}.tshark.tsv"),
            format!("fixtures/reference/{name}.tshark-requests.tsv"),
            format!("fixtures/{name}.spans.jsonl"),
        ] {
            assert!(common::repo_path(&needed).exists(), "{needed} is missing");
        }
    }
}

#[test]
fn timing_and_heads_agree_with_tshark() {
    for file in captures() {
        let name = stem(&file);
        let (exchanges, outcome) = common::replay(&[common::repo_path(&format!("pcaps/{file}"))]);
        assert!(outcome.damaged.is_empty());
        let requests = read_tsv(
            &common::repo_path(&format!("fixtures/reference/{name}.tshark-requests.tsv")),
            "tcp.srcport",
        );
        let responses = read_tsv(
            &common::repo_path(&format!("fixtures/reference/{name}.tshark.tsv")),
            "tcp.dstport",
        );
        let by_frame: HashMap<&str, &TsharkRow> = requests
            .iter()
            .map(|r| (r.fields["frame.number"].as_str(), r))
            .collect();
        let mut used = vec![false; exchanges.len()];
        let mut checked = 0;
        for resp in &responses {
            let status: u16 = resp.fields["http.response.code"].parse().unwrap();
            if (100..200).contains(&status) {
                // tshark lists a 1xx as its own response; we keep it on the exchange it precedes.
                let found = exchanges.iter().any(|e| {
                    e.client.port() == resp.client_port
                        && e.informational()
                            .iter()
                            .any(|(c, t)| *c == status && t.0 <= resp.time_ns)
                });
                assert!(found, "{name}: {status} at {} not recorded", resp.time_ns);
                continue;
            }
            // Find our exchange by what tshark is reliable about: the frame that completed the
            // response, its connection and status. (tshark's own request pairing is wrong for
            // pipelined requests, so its request fields are only checked where it gives them.)
            if let Some(why) = tshark_misreads(name, &resp.fields["frame.number"]) {
                eprintln!(
                    "{name}: frame {} not compared: {why}",
                    resp.fields["frame.number"]
                );
                continue;
            }
            let hit = exchanges
                .iter()
                .enumerate()
                .position(|(i, e): (usize, &Exchange)| {
                    !used[i]
                        && e.client.port() == resp.client_port
                        && e.t.response_end.map(|t| t.0) == Some(resp.time_ns)
                        && e.response().is_some_and(|r| r.status == Some(status))
                });
            let Some(i) = hit else {
                panic!(
                    "{name}: no exchange for the {status} response in frame {} on port {}",
                    resp.fields["frame.number"], resp.client_port
                );
            };
            used[i] = true;
            let e = &exchanges[i];
            let req_info = e.request().expect("request");
            let end = e.t.response_end.unwrap().0;
            // A request whose body never came (413 before the body was sent) ends, for tshark too,
            // with its head.
            let req_end = e.t.request_end.or(e.t.request_start).unwrap().0;
            if let Some(req) = by_frame.get(resp.fields["http.request_in"].as_str()) {
                let methods: Vec<&str> = req.fields["http.request.method"].split(',').collect();
                // tshark saw the secrets; tapspan redacts them as it parses the head.
                let policy = tapspan::redact::HeaderPolicy::default();
                // Several requests in one frame are joined by commas; a URI may hold commas too.
                let whole = &req.fields["http.request.uri"];
                let uris: Vec<String> = whole
                    .split(',')
                    .map(|u| policy.redact_target(u))
                    .chain([policy.redact_target(whole)])
                    .collect();
                assert!(
                    methods.contains(&req_info.method.as_str()),
                    "{name}: method {}",
                    req_info.method
                );
                assert!(
                    uris.contains(&req_info.target),
                    "{name}: uri {}",
                    req_info.target
                );
                assert_eq!(
                    req_end, req.time_ns,
                    "{name}: {}: request completes in tshark's request frame",
                    req_info.target
                );
            }
            if let Some(http_time) = resp.fields.get("http.time").filter(|t| !t.is_empty()) {
                let http_time_ns = parse_epoch_ns(http_time);
                assert!(
                    (end - req_end).abs_diff(http_time_ns) <= 1_000,
                    "{name}: {}: http.time",
                    req_info.target
                );
                if e.t.request_start == e.t.request_end {
                    let duration = end - e.t.request_start.unwrap().0;
                    assert!(
                        duration.abs_diff(http_time_ns) <= 1_000,
                        "{name}: {}: span duration",
                        req_info.target
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 0, "{name}: no response checked");
        eprintln!("{name}: {checked} responses agree with tshark");
    }
}

/// Responses tshark decodes wrongly, each checked against the server's access log.
fn tshark_misreads(capture: &str, frame: &str) -> Option<&'static str> {
    match (capture, frame) {
        // Pipelined `HEAD /b` then `GET /fail`: tshark reads a body after the HEAD response
        // (RFC 9110 §9.3.2: a response to HEAD has none), swallows the 500 response as that body
        // and reports this frame as a 200. nginx's log says HEAD /b 200, GET /fail 500, as we do.
        ("nginx-pipelined", "40") => Some("tshark gives a HEAD response a body"),
        // `GET  /   HTTP/1.1` (runs of spaces) and `GET /a b HTTP/1.1` (a space in the target):
        // tshark reads the URIs as empty and `/a`; nginx logged `/` and `/a b`, as we read them.
        ("lenient-lines", "46" | "56") => Some("tshark reads an empty URI between runs of spaces"),
        ("lenient-lines", "66" | "78") => Some("tshark cuts a URI at its space"),
        // Bodies the snap length cut: tshark cannot reassemble them and ends the response with
        // its first frame; it carried 1448 bytes of 5234 and 70236 (nginx's $bytes_sent). We
        // end it with the last frame of the response (20 and 74).
        ("nginx-snaplen", "17" | "24") => Some("tshark ends a cut response at its first frame"),
        _ => None,
    }
}

/// (client port when the log has it, method, target, status) from one access-log line: nginx and
/// python's `"GET /x HTTP/1.1" 200` forms, and the test backends' `ts name addr:port METHOD path
/// status` form.
fn parse_log_line(line: &str) -> Option<(Option<u16>, String, String, u16)> {
    if let Some(open) = line.find('"') {
        let rest = &line[open + 1..];
        let close = rest.find('"')?;
        // `METHOD TARGET VERSION`, read as tapspan reads request lines (src/protocols/http1/head.rs): any
        // run of spaces separates, a target may hold spaces, and where the last word is no
        // version only the first two words count.
        let words: Vec<&str> = rest[..close].split_whitespace().collect();
        let method = words.first()?.to_ascii_uppercase();
        let target = match words.as_slice() {
            [_, t @ .., v] if !t.is_empty() && v.to_ascii_uppercase().starts_with("HTTP/1") => {
                t.join(" ")
            }
            [_, t, ..] => t.to_string(),
            _ => return None,
        };
        let status = rest[close + 1..].split_whitespace().next()?.parse().ok()?;
        // The client's port: an `addr:port` field before the request (the shop services',
        // some nginx log_formats) or a bare second field (nginx-mixed's log_format).
        let before: Vec<&str> = line[..open].split_whitespace().collect();
        let port = before
            .iter()
            .find_map(|f| f.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port())
            .or_else(|| before.get(1).and_then(|p| p.parse().ok()));
        return Some((port, method, target, status));
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let port = f.get(2)?.rsplit(':').next()?.parse().ok();
    Some((
        port,
        f.get(3)?.to_string(),
        f.get(4)?.to_string(),
        f.get(5)?.parse().ok()?,
    ))
}

#[test]
fn every_request_the_servers_logged_is_an_exchange() {
    let logs: Vec<String> = std::fs::read_dir(common::repo_path("fixtures/reference"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".log"))
        .collect();
    let (mut lines_read, mut checked, mut not_requests) = (0, 0, 0);
    for file in captures() {
        let name = stem(&file);
        let (exchanges, _) = common::replay(&[common::repo_path(&format!("pcaps/{file}"))]);
        let mut used = vec![false; exchanges.len()];
        for log in logs.iter().filter(|l| l.starts_with(&format!("{name}."))) {
            let text =
                std::fs::read_to_string(common::repo_path(&format!("fixtures/reference/{log}")))
                    .unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                lines_read += 1;
                let Some((port, method, target, status)) = parse_log_line(line) else {
                    // The one kind of line that is not a request: python's http.server logs
                    // `code 404, message File not found` beside the request line of an error.
                    assert!(
                        line.contains("] code ") && line.contains(", message "),
                        "{log}: a line that is neither a request nor a known message: {line}"
                    );
                    not_requests += 1;
                    continue;
                };
                // The servers logged the secrets; tapspan redacts them as it parses the head.
                let target = tapspan::redact::HeaderPolicy::default().redact_target(&target);
                let hit = exchanges.iter().enumerate().position(|(i, e)| {
                    !used[i]
                        && port.is_none_or(|p| e.client.port() == p)
                        && e.request()
                            .is_some_and(|r| r.method == method && r.target == target)
                        && match status {
                            // nginx's convention, used by the shop too: the client closed the
                            // connection before the response, so none is on the wire.
                            499 => e.response().is_none() && e.error.is_some(),
                            // An HTTP/0.9 answer has no status line: what the server logged
                            // is not on the wire (tests/body_sizes.rs checks these closer).
                            _ => e.response().is_some_and(|r| {
                                r.status == Some(status)
                                    || (r.status.is_none() && r.version == Version::Http09)
                            }),
                        }
                });
                let Some(i) = hit else {
                    panic!("{log}: logged `{method} {target}` → {status} (port {port:?}) has no exchange");
                };
                used[i] = true;
                checked += 1;
            }
        }
    }
    // Every line of every log is accounted for (18 logs, 1 041 lines, three of them python's
    // messages when this was written): a log that went missing or unread lowers the count.
    assert_eq!(checked + not_requests, lines_read);
    assert_eq!(
        not_requests, 3,
        "python's `code NNN` messages: one in python-http-server, two in http09"
    );
    assert!(checked >= 1038, "only {checked} log lines checked");
}

/// A span as goldens keep it: its decoded fields, in the public JSON-lines format. Parents,
/// trace ids and how a link was found are inferred, and are checked against the services' own
/// logs (tests/causality_*.rs, tests/report.rs), never against an earlier output of ours.
fn decoded_only(span: &tapspan::span::Span) -> String {
    let mut v = serde_json::to_value(span).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("trace_id");
    o.remove("parent_span_id");
    let attrs = o.get_mut("attributes").unwrap().as_object_mut().unwrap();
    attrs.remove("tapspan.link");
    attrs.remove("tapspan.link_confidence");
    serde_json::to_string(&v).unwrap()
}

#[test]
fn spans_match_their_goldens() {
    let bless = std::env::var_os("TAPSPAN_BLESS").is_some();
    for file in captures() {
        let name = stem(&file);
        let (exchanges, _) = common::replay(&[common::repo_path(&format!("pcaps/{file}"))]);
        let mut spans = common::spans(&exchanges);
        // In time order: the order traces leave the builder depends on the parents found.
        spans.sort_by(|a, b| (a.start_unix_nano, &a.span_id).cmp(&(b.start_unix_nano, &b.span_id)));
        let ours: Vec<String> = spans.iter().map(decoded_only).collect();
        let golden_path = common::repo_path(&format!("fixtures/{name}.spans.jsonl"));
        if bless {
            std::fs::write(&golden_path, ours.join("\n") + "\n").unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&golden_path)
            .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()));
        let golden: Vec<&str> = golden.lines().collect();
        for (i, (a, b)) in ours.iter().zip(&golden).enumerate() {
            if a != b {
                let a: serde_json::Value = serde_json::from_str(a).unwrap();
                let b: serde_json::Value = serde_json::from_str(b).unwrap();
                panic!(
                    "{name}: span {i} differs\n ours:   {}\n golden: {}",
                    serde_json::to_string_pretty(&a).unwrap(),
                    serde_json::to_string_pretty(&b).unwrap()
                );
            }
        }
        assert_eq!(ours.len(), golden.len(), "{name}: span count");
    }
}
