//! Which request each logged database call sits under, in the multi-tier recordings of issue 19
//! (pcaps/protocols/multitier.pcap and dbfindings.pcap), scored against the service's own log:
//!
//!     rid=REQUEST kind=http port=CLIENT_PORT path=PATH start=NS end=NS status=200
//!     rid=REQUEST kind=redis|postgres port=LOCAL_PORT op=OP [stmt=NAME value=V] start=NS end=NS
//!
//! The log says which request made each call; the spans say which request span each call's
//! span is a child of. Tying a logged line to its span is done from the log's side alone (the
//! connection's port, the operation, the service's clock reads), never from the parents under
//! test.

use std::collections::{BTreeMap, HashMap, HashSet};

use tapspan::span::{Span, SpanKind};

/// The service's clock reads and the capture's stamps differ by up to this much.
const SLACK_NS: u64 = 1_000_000;

/// How many logged calls sit under the right request, overall and per operation.
#[derive(Debug, Default)]
pub struct Placement {
    pub requests: usize,
    pub calls: u32,
    pub right: u32,
    /// Per operation (`op`, and `stmt` where logged): (calls, right, under no request).
    pub by_op: BTreeMap<String, (u32, u32, u32)>,
}

impl Placement {
    pub fn share(&self) -> f64 {
        f64::from(self.right) / f64::from(self.calls.max(1))
    }

    /// Fails unless the log's `requests` and `calls` were all scored and at least `min_share`
    /// of the calls sit under the right request; says per operation where the misses are.
    pub fn check(&self, recording: &str, (requests, calls): (usize, u32), min_share: f64) {
        assert_eq!(self.requests, requests);
        // (calls, right, under no request) per operation.
        eprintln!("{recording} by operation: {:?}", self.by_op);
        assert_eq!(self.calls, calls);
        let (right, share) = (self.right, self.share());
        eprintln!("{recording}: {right} of {calls} calls under the right request ({share:.3})");
        assert!(
            share >= min_share,
            "{right} of {calls} calls under the right request"
        );
    }
}

fn fields(line: &str) -> HashMap<&str, &str> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn attr(s: &Span, k: &str) -> Option<String> {
    s.attributes.to_json().get(k)?.as_str().map(str::to_string)
}

fn port(s: &Span) -> u16 {
    s.attributes.to_json()["client.port"].as_u64().unwrap() as u16
}

/// Scores `spans` against the service `log`; every call must have been made by `service` (the
/// spans' service name of the caller).
pub fn placement(spans: &[Span], log: &str, service: &str) -> Placement {
    let lines: Vec<HashMap<&str, &str>> = log.lines().map(fields).collect();
    let num = |l: &HashMap<&str, &str>, k: &str| l[k].parse::<u64>().unwrap();
    // Each logged request's server span: on its client port, the connection's last request to
    // begin before the handler did, still open then.
    let mut request_of_span: HashMap<&str, &str> = HashMap::new();
    for l in lines.iter().filter(|l| l["kind"] == "http") {
        let p: u16 = l["port"].parse().unwrap();
        let start = num(l, "start");
        let s = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server && attr(s, "http.request.method").is_some())
            .filter(|s| port(s) == p && s.start_unix_nano <= start + SLACK_NS)
            .max_by_key(|s| s.start_unix_nano)
            .filter(|s| s.end_unix_nano + SLACK_NS >= start)
            .unwrap_or_else(|| panic!("no span for {l:?}"));
        request_of_span.insert(&s.span_id, l["rid"]);
    }
    let mut placed = Placement {
        requests: request_of_span.len(),
        ..Placement::default()
    };
    // Each logged call's client span, in the order the calls started: on its local port, its
    // operation, inside its logged window, and of those not yet taken the one that began
    // nearest the logged start (taking the first that fits, in log order, gave a call its
    // neighbour's span where one connection ran two calls in a millisecond).
    let mut calls: Vec<&HashMap<&str, &str>> =
        lines.iter().filter(|l| l["kind"] != "http").collect();
    calls.sort_by_key(|l| num(l, "start"));
    let mut used = HashSet::new();
    for l in calls {
        placed.calls += 1;
        let p: u16 = l["port"].parse().unwrap();
        let (start, end) = (num(l, "start"), num(l, "end"));
        let Some(s) = spans
            .iter()
            .filter(|s| {
                s.kind == SpanKind::Client
                    && attr(s, "db.operation.name").as_deref() == Some(l["op"])
                    && port(s) == p
                    && s.start_unix_nano + SLACK_NS >= start
                    && s.end_unix_nano <= end + SLACK_NS
                    && !used.contains(&s.span_id)
            })
            .min_by_key(|s| s.start_unix_nano.abs_diff(start))
        else {
            continue;
        };
        used.insert(s.span_id.clone());
        assert_eq!(s.service, service, "{l:?}");
        let under = s
            .parent_span_id
            .as_deref()
            .and_then(|p| request_of_span.get(p));
        let op = match l.get("stmt") {
            Some(stmt) => format!("{} {stmt}", l["op"]),
            None => l["op"].to_string(),
        };
        let tally = placed.by_op.entry(op).or_default();
        tally.0 += 1;
        if under == Some(&l["rid"]) {
            placed.right += 1;
            tally.1 += 1;
        } else if under.is_none() {
            tally.2 += 1;
        }
    }
    placed
}
