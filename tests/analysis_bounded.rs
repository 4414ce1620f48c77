//! Issue 21, by counting: the analysis of the recorded shop (pcaps/shop-dirty.pcap) replayed
//! N and 10 N times over, each copy with its own ids and later times, holds the same state —
//! the retained records and sketch buckets do not grow with the number of calls — and its
//! figures are those of one copy, folded batch by batch.

mod common;

use serde_json::Value;
use tapspan::analysis::{Analysis, AnalysisConfig, Analyzer, Retained};

/// The shop's spans, as `tapspan replay` writes them.
fn shop_spans(tag: &str) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("tapspan-bounded-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("spans.jsonl");
    let out = common::tapspan(&[
        "replay",
        common::repo_path("pcaps/shop-dirty.pcap").to_str().unwrap(),
        "--services",
        common::repo_path("pcaps/shop.services.toml")
            .to_str()
            .unwrap(),
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    spans
}

/// Copy `k` of a span: ids of its own, times `k * period` later.
fn copy(span: &Value, k: u64, period: u64) -> Value {
    let mut s = span.clone();
    for id in ["trace_id", "span_id", "parent_span_id"] {
        if let Some(v) = s[id].as_str() {
            s[id] = Value::from(format!("{v}-{k}"));
        }
    }
    let xid = &mut s["attributes"]["tapspan.exchange_id"];
    *xid = Value::from(format!("{}-{k}", xid.as_str().unwrap()));
    for t in ["start_unix_nano", "end_unix_nano"] {
        s[t] = Value::from(s[t].as_u64().unwrap() + k * period);
    }
    for e in s["events"].as_array_mut().into_iter().flatten() {
        let t = e["time_unix_nano"].as_u64().unwrap();
        e["time_unix_nano"] = Value::from(t + k * period);
    }
    s
}

/// The analysis of `copies` copies, and the most it held at any point.
fn analyse(spans: &[Value], copies: u64, hold_calls: usize) -> (Analysis, Retained) {
    let first = spans
        .iter()
        .map(|s| s["start_unix_nano"].as_u64().unwrap())
        .min()
        .unwrap();
    let last = spans
        .iter()
        .map(|s| s["end_unix_nano"].as_u64().unwrap())
        .max()
        .unwrap();
    let period = last - first + 1_000_000_000;
    let mut analyzer = Analyzer::new(AnalysisConfig {
        hold_calls,
        ..AnalysisConfig::default()
    });
    let mut most = Retained::default();
    for k in 0..copies {
        for s in spans {
            assert!(analyzer.push_json(&copy(s, k, period)));
            let now = analyzer.retained();
            most.held_calls = most.held_calls.max(now.held_calls);
            most.folded = most.folded.max(now.folded);
        }
    }
    (analyzer.finish(Vec::new()), most)
}

#[test]
fn ten_times_the_traffic_holds_the_same_state() {
    let spans = shop_spans("ten");
    let hold = 200;
    let (one, _) = analyse(&spans, 1, usize::MAX);
    let (a, small) = analyse(&spans, 3, hold);
    let (b, large) = analyse(&spans, 30, hold);
    eprintln!("{} calls: {small:?}; {} calls: {large:?}", a.calls, b.calls);
    assert_eq!(a.calls, 3 * one.calls);
    assert_eq!(b.calls, 30 * one.calls);
    assert_eq!(b.requests, 30 * one.requests);
    assert!(small.held_calls <= hold && large.held_calls <= hold);
    // The folded state is sketches, counters and sampled waterfalls: which requests the
    // samples hold differs with the traffic (their trees differ in size), its bound does not.
    assert!(
        large.folded <= small.folded * 11 / 10,
        "{small:?} → {large:?}"
    );
    for (e, base) in b.endpoints.iter().zip(&one.endpoints) {
        assert_eq!(e.count, 30 * base.count, "{}", e.route);
        assert_eq!(e.latency_ns.max, base.latency_ns.max, "{}", e.route);
    }
    for (f, base) in b.findings.iter().zip(&one.findings) {
        assert_eq!((f.kind, &f.context), (base.kind, &base.context));
        assert_eq!(f.occurrences, 30 * base.occurrences, "{}", f.title);
    }
}

/// Folding batch by batch gives the figures of folding everything at once: traces are taken
/// whole, and sketches and counters add up.
#[test]
fn batches_add_up_to_the_whole() {
    let spans = shop_spans("batches");
    let (whole, _) = analyse(&spans, 1, usize::MAX);
    let (batched, most) = analyse(&spans, 1, 50);
    assert!(most.held_calls <= 50);
    assert_eq!(json(&whole.endpoints), json(&batched.endpoints));
    assert_eq!(json(&whole.edges), json(&batched.edges));
    assert_eq!(json(&whole.services), json(&batched.services));
    assert_eq!(json(&whole.findings), json(&batched.findings));
    assert_eq!(
        (whole.calls, whole.requests),
        (batched.calls, batched.requests)
    );
    let slowest = |a: &Analysis| {
        a.waterfalls
            .iter()
            .filter(|w| w.reason != "typical")
            .map(|w| (w.reason, w.trace_id.clone(), w.rows.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(slowest(&whole), slowest(&batched));
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}
