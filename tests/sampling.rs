//! Whole-trace sampling (issue 21) on real recordings: the share head sampling keeps, that every
//! kept trace is whole, that runs and capture points agree, that tail and per-route rules keep
//! what they say, and that the summary and analysis do not depend on sampling.
//!
//! The reference is always the unsampled output of the same capture: which traces exist, their
//! spans, which have errors and how long their roots took.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tapspan::causality::{CausalityBuilder, CausalityConfig, ServiceMap};
use tapspan::sampling::rules::Rules;
use tapspan::sampling::{Sampler, SamplingConfig, SamplingStats};
use tapspan::span::{Span, SpanStatus};

const LAB: &[&str] = &[
    "threads-c1",
    "threads-c4",
    "threads-c16",
    "threads-c32",
    "threads-c64",
    "workers-c1",
    "workers-c4",
    "workers-c16",
    "workers-c32",
    "workers-c64",
    "eventloop-c1",
    "eventloop-c4",
    "eventloop-c16",
    "eventloop-c32",
    "eventloop-c64",
];

/// What the causality builder emitted for one recording, call by call (a driver settles the
/// sampler after each).
type Emitted = Vec<Vec<Span>>;

fn emit(capture: &Path, services: &Path) -> Emitted {
    let (exchanges, _) = common::replay(&[capture.to_path_buf()]);
    let config = CausalityConfig {
        services: ServiceMap::load(services).unwrap(),
        ..CausalityConfig::default()
    };
    let mut builder = CausalityBuilder::new(config);
    let mut calls = Vec::new();
    for ex in exchanges {
        let mut spans = Vec::new();
        builder.push(ex, &mut |s| spans.push(s));
        calls.push(spans);
    }
    let mut spans = Vec::new();
    builder.finish(&mut |s| spans.push(s));
    calls.push(spans);
    calls
}

fn lab(cell: &str) -> Emitted {
    emit(
        &common::repo_path(&format!("pcaps/lab/{cell}.pcap")),
        &common::repo_path(&format!("pcaps/lab/{cell}.services.toml")),
    )
}

/// Every lab recording, emitted once for all the tests of this file.
fn all_lab() -> &'static [(String, Emitted)] {
    static ALL: OnceLock<Vec<(String, Emitted)>> = OnceLock::new();
    ALL.get_or_init(|| LAB.iter().map(|c| (c.to_string(), lab(c))).collect())
}

/// The spans a sampler lets through, fed as a driver feeds it.
fn sample(emitted: &Emitted, config: SamplingConfig) -> (Vec<Span>, SamplingStats) {
    let mut sampler = Sampler::new(config);
    let mut kept = Vec::new();
    for call in emitted {
        for span in call {
            sampler.push(span.clone(), &mut |k| kept.push(k));
        }
        sampler.settle(&mut |k| kept.push(k));
    }
    sampler.finish(&mut |k| kept.push(k));
    (kept, sampler.stats)
}

fn sampling(rate: f64) -> SamplingConfig {
    SamplingConfig::new(Some(rate), Rules::default())
}

/// Span ids per trace id.
fn traces<'a>(spans: impl IntoIterator<Item = &'a Span>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace_id.clone())
            .or_default()
            .insert(s.span_id.clone());
    }
    out
}

/// Every kept trace has exactly the spans it has unsampled.
fn assert_whole(kept: &[Span], all: &BTreeMap<String, BTreeSet<String>>, what: &str) {
    for (trace, spans) in traces(kept) {
        assert_eq!(
            Some(&spans),
            all.get(&trace),
            "{what}: trace {trace} kept with {} spans, has {}",
            spans.len(),
            all.get(&trace).map_or(0, |s| s.len())
        );
    }
    assert_eq!(
        kept.len(),
        traces(kept).values().map(|s| s.len()).sum::<usize>(),
        "{what}: a span kept twice"
    );
}

/// Trace id → (any span with status error, from the first start to the last end).
fn trace_facts(spans: &[Span]) -> BTreeMap<String, (bool, u64)> {
    let mut spread: BTreeMap<String, (bool, u64, u64)> = BTreeMap::new();
    for s in spans {
        let e = spread
            .entry(s.trace_id.clone())
            .or_insert((false, u64::MAX, 0));
        e.0 |= s.status == SpanStatus::Error;
        e.1 = e.1.min(s.start_unix_nano);
        e.2 = e.2.max(s.end_unix_nano);
    }
    spread
        .into_iter()
        .map(|(t, (err, start, end))| (t, (err, end - start)))
        .collect()
}

/// A threshold over which about a tenth of a recording's traces last: their 90th percentile,
/// in whole milliseconds (the lab's traces take longer as concurrency grows).
fn slowest_tenth(facts: &BTreeMap<String, (bool, u64)>) -> u64 {
    let mut d: Vec<u64> = facts.values().map(|f| f.1).collect();
    d.sort_unstable();
    d[d.len() * 9 / 10] / 1_000_000 * 1_000_000
}

#[test]
fn head_sampling_keeps_a_tenth_of_thousands_of_traces_each_whole() {
    let (mut seen, mut kept_traces) = (0usize, 0usize);
    for (cell, emitted) in all_lab() {
        let all: Vec<Span> = emitted.iter().flatten().cloned().collect();
        let all_traces = traces(&all);
        let (kept, stats) = sample(emitted, sampling(0.1));
        assert_whole(&kept, &all_traces, cell);
        assert!(
            kept.iter()
                .all(|s| s.trace_state.as_deref() == Some("ot=th:e6666666666666")),
            "{cell}: every kept span carries the threshold of 10 %"
        );
        assert_eq!(stats.traces as usize, all_traces.len(), "{cell}");
        assert_eq!(stats.kept_head as usize, traces(&kept).len(), "{cell}");
        assert_eq!(
            stats.spans_kept + stats.spans_dropped,
            all.len() as u64,
            "{cell}"
        );
        seen += all_traces.len();
        kept_traces += traces(&kept).len();
    }
    let share = kept_traces as f64 / seen as f64;
    eprintln!("head sampling at 0.1: {kept_traces} of {seen} traces kept ({share:.4})");
    assert!(seen >= 4000, "{seen} traces");
    assert!((share - 0.1).abs() <= 0.015, "kept {share:.4} of traces");
}

#[test]
fn head_sampling_keeps_the_same_traces_on_every_run() {
    // A fresh replay and causality run, not the shared one.
    let again = lab("eventloop-c32");
    let (_, first) = all_lab()
        .iter()
        .find(|(c, _)| c == "eventloop-c32")
        .unwrap();
    let (a, _) = sample(first, sampling(0.1));
    let (b, _) = sample(&again, sampling(0.1));
    assert!(!a.is_empty());
    assert_eq!(a, b, "two runs keep the same spans");
}

#[test]
fn keep_errors_keeps_every_trace_with_an_error_whole() {
    let (mut error_traces, mut all_traces) = (0, 0);
    for (cell, emitted) in all_lab() {
        let all: Vec<Span> = emitted.iter().flatten().cloned().collect();
        let facts = trace_facts(&all);
        let with_errors: BTreeSet<&String> = facts.iter().filter(|f| f.1 .0).map(|f| f.0).collect();
        let (kept, stats) = sample(
            emitted,
            SamplingConfig {
                keep_errors: true,
                ..sampling(0.0)
            },
        );
        assert_whole(&kept, &traces(&all), cell);
        let kept_ids = traces(&kept);
        assert_eq!(
            kept_ids.keys().collect::<BTreeSet<_>>(),
            with_errors,
            "{cell}: kept exactly the traces with an error span"
        );
        assert_eq!(stats.kept_errors as usize, with_errors.len(), "{cell}");
        assert!(kept.iter().all(|s| s.trace_state.is_none()), "{cell}");
        error_traces += with_errors.len();
        all_traces += facts.len();
    }
    eprintln!("--keep-errors: {error_traces} of {all_traces} traces have an error span");
    // The lab's stock answers 503 on ~5 % of calls, several calls per request.
    assert!(
        error_traces * 20 > all_traces,
        "{error_traces} of {all_traces}"
    );
    assert!(
        error_traces * 2 < all_traces,
        "{error_traces} of {all_traces}"
    );
}

#[test]
fn traces_with_ids_from_the_wire_wait_for_their_pieces_and_are_kept_whole() {
    // shop-dirty: every request carries an X-Request-ID the gateway forwards, so trace ids come
    // from the wire, and a trace may leave the causality builder in several trees.
    let emitted = emit(
        &common::repo_path("pcaps/shop-dirty.pcap"),
        &common::repo_path("pcaps/shop.services.toml"),
    );
    let all: Vec<Span> = emitted.iter().flatten().cloned().collect();
    let facts = trace_facts(&all);
    let (head, _) = sample(&emitted, sampling(0.1));
    let (kept, stats) = sample(
        &emitted,
        SamplingConfig {
            keep_errors: true,
            ..sampling(0.1)
        },
    );
    assert_whole(&kept, &traces(&all), "shop-dirty");
    let want: BTreeSet<String> = facts
        .iter()
        .filter(|f| f.1 .0)
        .map(|f| f.0.clone())
        .chain(traces(&head).into_keys())
        .collect();
    assert_eq!(traces(&kept).into_keys().collect::<BTreeSet<_>>(), want);
    eprintln!("shop-dirty: {stats:?}");
    assert!(stats.waited > 0, "some traces waited their full window");
    assert_eq!(stats.traces as usize, facts.len(), "one decision per trace");
    assert_eq!(stats.late_pieces, 0);
}

/// `n` requests to an api that calls a db, each service with its own tracer: the api's call
/// carries a traceparent with the request's trace id but its own span as parent, so each trace
/// leaves the causality builder as two trees (the db call first: it ends first). Every third
/// db call answers 503. Requests are 100 ms apart and the api answers 250 ms after its call
/// returned, so the two trees leave at different times; traces wait their window during the
/// replay.
fn traced_in_pieces(n: u32, path: &Path) {
    use common::craft::{self, Conversation, Dir};

    let (client, api, db): (
        std::net::SocketAddr,
        std::net::SocketAddr,
        std::net::SocketAddr,
    ) = (
        "10.1.0.1:40000".parse().unwrap(),
        "10.1.0.2:8080".parse().unwrap(),
        "10.1.0.3:9000".parse().unwrap(),
    );
    let mut frames = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let trace = format!("{:016x}{x:016x}", u64::from(i) + 1);
        let t0 = craft::T0 + u64::from(i) * 100_000_000;
        let port = |p: std::net::SocketAddr| {
            std::net::SocketAddr::new(p.ip(), p.port() + (i % 20000) as u16)
        };
        let (from_client, from_api) = (port(client), port("10.1.0.2:30000".parse().unwrap()));
        let mut outer = Conversation::new(1000 + i, 9000 + i);
        outer.ts_ns = t0;
        outer.handshake();
        let req = format!(
            "GET /orders/{i} HTTP/1.1\r\nHost: api\r\ntraceparent: 00-{trace}-{:016x}-01\r\n\r\n",
            0xa000 + u64::from(i)
        );
        outer.send(Dir::C2S, req.as_bytes(), 1460);
        let mut inner = Conversation::new(5000 + i, 7000 + i);
        inner.ts_ns = outer.ts_ns;
        inner.handshake();
        let call = format!(
            "GET /rows/{i} HTTP/1.1\r\nHost: db\r\ntraceparent: 00-{trace}-{:016x}-01\r\n\r\n",
            0xb000 + u64::from(i)
        );
        inner.send(Dir::C2S, call.as_bytes(), 1460);
        let status = if i % 3 == 0 {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        inner.send(
            Dir::S2C,
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            1460,
        );
        inner.fin();
        outer.ts_ns = inner.ts_ns + 250_000_000;
        outer.send(
            Dir::S2C,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            1460,
        );
        outer.fin();
        frames.extend(common::adversarial::frames_between(
            &outer.segs,
            from_client,
            api,
        ));
        frames.extend(common::adversarial::frames_between(
            &inner.segs,
            from_api,
            db,
        ));
    }
    frames.sort_by_key(|f| f.0);
    std::fs::write(path, craft::pcap(1, true, &frames)).unwrap();
}

#[test]
fn a_trace_in_several_trees_is_decided_once_and_kept_whole() {
    let dir = temp_dir("pieces");
    let capture = dir.join("pieces.pcap");
    traced_in_pieces(200, &capture);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(format!("{name}.jsonl"));
        let mut args = vec!["replay", capture.to_str().unwrap(), "--summary", "-o"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = tapspan(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (read_spans(&out), String::from_utf8(o.stderr).unwrap())
    };
    let ids = |spans: &[serde_json::Value]| -> Vec<String> {
        spans
            .iter()
            .map(|s| s["trace_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (all, _) = run("all", &[]);
    let all_ids = ids(&all);
    // The premise: 200 traces of 4 spans, most emitted as two trees at different times.
    let per_trace = all_ids.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(per_trace.len(), 200);
    assert!(per_trace.values().all(|&n| n == 4), "{per_trace:?}");
    // (At the end of the capture the builder emits what is left at once: the two trees of the
    // last traces come back to back.)
    let trees = all_ids.windows(2).filter(|w| w[0] != w[1]).count() + 1;
    assert!(trees >= 300, "{trees} trees: most traces come in two");
    let with_errors: BTreeSet<String> = all
        .iter()
        .filter(|s| s["status"] == "error")
        .map(|s| s["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(with_errors.len(), 67);

    let (kept, summary) = run("errors", &["--sample", "0", "--keep-errors"]);
    let kept_ids = ids(&kept);
    assert_eq!(kept_ids.len(), 4 * 67, "{summary}");
    assert_eq!(
        kept_ids.iter().cloned().collect::<BTreeSet<_>>(),
        with_errors
    );
    assert!(
        summary.contains("kept 67 (errors 67), dropped 133"),
        "{summary}"
    );
    assert!(
        counter(&summary, "waited the full window for more pieces ") >= 100,
        "traces waited during the replay, not only at its end: {summary}"
    );
    assert_eq!(counter(&summary, "pieces after their trace's decision "), 0);

    // On the id alone: no wait, and still whole.
    let (kept, summary) = run("half", &["--sample", "0.5"]);
    let kept_traces = traces_of(&kept);
    assert!(kept_traces.values().all(|&n| n == 4), "{kept_traces:?}");
    assert!(
        (60..140).contains(&kept_traces.len()),
        "{}",
        kept_traces.len()
    );
    assert_eq!(
        counter(&summary, "waited the full window for more pieces "),
        0,
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The number after `label` in a summary.
fn counter(summary: &str, label: &str) -> u64 {
    let at = summary
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {summary}"));
    let digits: String = summary[at + label.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

fn traces_of(spans: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in spans {
        *m.entry(s["trace_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn keep_slower_than_keeps_every_trace_over_the_threshold() {
    let (mut slow_traces, mut all_traces) = (0, 0);
    for (cell, emitted) in all_lab() {
        let all: Vec<Span> = emitted.iter().flatten().cloned().collect();
        let facts = trace_facts(&all);
        let limit = slowest_tenth(&facts);
        let slow: BTreeSet<&String> = facts
            .iter()
            .filter(|f| f.1 .1 > limit)
            .map(|f| f.0)
            .collect();
        let (kept, stats) = sample(
            emitted,
            SamplingConfig {
                keep_slower_than_ns: Some(limit),
                ..sampling(0.0)
            },
        );
        assert_whole(&kept, &traces(&all), cell);
        assert_eq!(
            traces(&kept).keys().collect::<BTreeSet<_>>(),
            slow,
            "{cell}: kept exactly the traces over {limit} ns"
        );
        assert_eq!(stats.kept_slow as usize, slow.len(), "{cell}");
        slow_traces += slow.len();
        all_traces += facts.len();
    }
    eprintln!("--keep-slower-than (each recording's 90th percentile): {slow_traces} of {all_traces} traces");
    assert!(
        slow_traces * 20 > all_traces,
        "{slow_traces} of {all_traces}"
    );
    assert!(
        slow_traces * 5 < all_traces,
        "{slow_traces} of {all_traces}"
    );
}

#[test]
fn tail_rules_add_to_head_sampling_and_every_kept_trace_is_whole() {
    for (cell, emitted) in all_lab().iter().step_by(4) {
        let all: Vec<Span> = emitted.iter().flatten().cloned().collect();
        let facts = trace_facts(&all);
        let limit = slowest_tenth(&facts);
        let (head, _) = sample(emitted, sampling(0.1));
        let (kept, stats) = sample(
            emitted,
            SamplingConfig {
                keep_errors: true,
                keep_slower_than_ns: Some(limit),
                ..sampling(0.1)
            },
        );
        assert_whole(&kept, &traces(&all), cell);
        let want: BTreeSet<&String> = facts
            .iter()
            .filter(|f| f.1 .0 || f.1 .1 > limit)
            .map(|f| f.0)
            .chain(
                traces(&head)
                    .keys()
                    .filter_map(|t| facts.get_key_value(t).map(|f| f.0)),
            )
            .collect();
        assert_eq!(
            traces(&kept).keys().collect::<BTreeSet<_>>(),
            want,
            "{cell}"
        );
        // Traces the head kept carry its threshold; those only a tail rule kept carry none.
        let head_ids = traces(&head);
        for s in &kept {
            let by_head = head_ids.contains_key(&s.trace_id);
            assert_eq!(s.trace_state.is_some(), by_head, "{cell}: {}", s.trace_id);
        }
        assert_eq!(stats.kept_head as usize, head_ids.len(), "{cell}");
    }
}

// ---- the command line -------------------------------------------------------------------------

fn tapspan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(args)
        .output()
        .expect("run tapspan")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapspan-sampling-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_spans(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn replay(capture: &Path, services: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        capture.to_str().unwrap(),
        "--services",
        services.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = tapspan(&args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Exchange id → trace id of the server spans of a JSON-lines file.
fn trace_of_exchange(spans: &[serde_json::Value]) -> BTreeMap<String, String> {
    spans
        .iter()
        .filter(|s| s["kind"] == "server")
        .map(|s| {
            (
                s["attributes"]["tapspan.exchange_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["trace_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A copy of an Ethernet/IPv4 pcap with only the packets from or to one of `hosts`: what a tap on
/// those hosts would have captured.
fn capture_at(capture: &Path, hosts: &[[u8; 4]], out: &Path) {
    let bytes = std::fs::read(capture).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let mut kept = bytes[..24].to_vec();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..at + 16 + len];
        let ipv4 = frame.len() >= 34 && frame[12..14] == [0x08, 0x00];
        if ipv4
            && hosts
                .iter()
                .any(|h| frame[26..30] == *h || frame[30..34] == *h)
        {
            kept.extend_from_slice(&bytes[at..at + 16 + len]);
        }
        at += 16 + len;
    }
    std::fs::write(out, kept).unwrap();
}

/// Two taps that each saw part of the traffic: the exchanges both saw, the share of them that
/// got the same trace id in both, and whether each tap kept them (for those with one trace id).
fn two_taps(
    capture: &Path,
    services: &Path,
    a: &[[u8; 4]],
    b: &[[u8; 4]],
    rate: &str,
    name: &str,
) -> (usize, usize, Vec<(String, bool, bool)>) {
    let dir = temp_dir(name);
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    capture_at(capture, a, &pa);
    capture_at(capture, b, &pb);
    let run = |pcap: &Path, extra: &[&str], out: &str| {
        let out = dir.join(out);
        replay(pcap, services, &out, extra);
        trace_of_exchange(&read_spans(&out))
    };
    let (all_a, all_b) = (run(&pa, &[], "a.jsonl"), run(&pb, &[], "b.jsonl"));
    let kept_a = run(&pa, &["--sample", rate], "a-sampled.jsonl");
    let kept_b = run(&pb, &["--sample", rate], "b-sampled.jsonl");
    let both: Vec<&String> = all_a.keys().filter(|x| all_b.contains_key(*x)).collect();
    let same: Vec<(String, bool, bool)> = both
        .iter()
        .filter(|x| all_a[**x] == all_b[**x])
        .map(|x| {
            (
                all_a[*x].clone(),
                kept_a.contains_key(*x),
                kept_b.contains_key(*x),
            )
        })
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    (both.len(), same.len(), same)
}

#[test]
fn two_taps_keep_the_same_traces_for_the_exchanges_both_saw() {
    // Trace ids from the wire (X-Request-ID): a tap on the users and pricing hosts, another on
    // the pricing and inventory hosts; both saw the gateway's calls to pricing.
    let (both, same, kept) = two_taps(
        &common::repo_path("pcaps/shop-dirty.pcap"),
        &common::repo_path("pcaps/shop.services.toml"),
        &[[10, 88, 0, 11], [10, 88, 0, 13]],
        &[[10, 88, 0, 13], [10, 88, 0, 14]],
        "0.5",
        "shop",
    );
    eprintln!("shop-dirty: {both} exchanges seen by both taps, {same} with one trace id");
    assert!(both >= 100, "{both}");
    assert_eq!(same, both, "ids from the wire do not depend on the tap");
    let disagree: Vec<_> = kept.iter().filter(|k| k.1 != k.2).collect();
    assert!(disagree.is_empty(), "{disagree:?}");
    let kept_share = kept.iter().filter(|k| k.1).count() as f64 / kept.len() as f64;
    assert!((0.2..0.8).contains(&kept_share), "{kept_share}");

    // Derived trace ids: both taps must see the root. A tap on the front's host and one on the
    // client's and users' hosts both saw client -> front and front -> users.
    let cell = "threads-c16";
    let (both, same, kept) = two_taps(
        &common::repo_path(&format!("pcaps/lab/{cell}.pcap")),
        &common::repo_path(&format!("pcaps/lab/{cell}.services.toml")),
        &[[10, 78, 0, 10]],
        &[[10, 78, 0, 20], [10, 78, 0, 11]],
        "0.1",
        "lab",
    );
    eprintln!("{cell}: {both} exchanges seen by both taps, {same} with one trace id");
    assert!(both >= 600, "{both}");
    assert!(same * 10 >= both * 9, "{same} of {both} with one trace id");
    let disagree: Vec<_> = kept.iter().filter(|k| k.1 != k.2).collect();
    assert!(disagree.is_empty(), "{disagree:?}");
    let traces_kept: BTreeSet<&String> = kept.iter().filter(|k| k.1).map(|k| &k.0).collect();
    let traces_all: BTreeSet<&String> = kept.iter().map(|k| &k.0).collect();
    assert!(!traces_kept.is_empty() && traces_kept.len() < traces_all.len());
}

#[test]
fn per_route_rules_are_honoured() {
    let cell = "workers-c16";
    let capture = common::repo_path(&format!("pcaps/lab/{cell}.pcap"));
    let services = common::repo_path(&format!("pcaps/lab/{cell}.services.toml"));
    let dir = temp_dir("rules");
    let all_path = dir.join("all.jsonl");
    replay(&capture, &services, &all_path, &[]);
    let all = read_spans(&all_path);
    // Each trace's root request: its earliest server span (service, route, path).
    let mut roots: BTreeMap<String, (u64, String, String, String)> = BTreeMap::new();
    for s in all.iter().filter(|s| s["kind"] == "server") {
        let start = s["start_unix_nano"].as_u64().unwrap();
        let attr = |k: &str| s["attributes"][k].as_str().unwrap_or("").to_string();
        let e = roots
            .entry(s["trace_id"].as_str().unwrap().to_string())
            .or_insert((u64::MAX, String::new(), String::new(), String::new()));
        if start < e.0 {
            *e = (
                start,
                s["service"].as_str().unwrap().to_string(),
                attr("http.route"),
                attr("url.path"),
            );
        }
    }
    let checkout: BTreeSet<&String> = roots
        .iter()
        .filter(|(_, r)| r.1 == "front" && r.2.starts_with("/checkout/"))
        .map(|(t, _)| t)
        .collect();
    assert!(
        checkout.len() >= 300,
        "{} of {}",
        checkout.len(),
        roots.len()
    );
    // Orders whose id starts with 1: a glob on the path (the route is `/checkout/{id}`).
    let ones: BTreeSet<&String> = roots
        .iter()
        .filter(|(_, r)| r.1 == "front" && r.3.starts_with("/checkout/1"))
        .map(|(t, _)| t)
        .collect();
    assert!(
        ones.len() >= 10 && ones.len() * 4 < checkout.len(),
        "{}",
        ones.len()
    );

    let kept_traces = |rules: &str, name: &str| {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, rules).unwrap();
        let out = dir.join(format!("{name}.jsonl"));
        let o = replay(
            &capture,
            &services,
            &out,
            &["--sampling-rules", file.to_str().unwrap(), "--summary"],
        );
        let spans = read_spans(&out);
        let ids: BTreeSet<String> = spans
            .iter()
            .map(|s| s["trace_id"].as_str().unwrap().to_string())
            .collect();
        (ids, spans, String::from_utf8(o.stderr).unwrap())
    };

    // All of those traces, none of the rest.
    let (ids, _, stderr) = kept_traces(
        "[[rule]]\nname = \"ones\"\nservice = \"front\"\nroute = \"/checkout/1*\"\nrate = 1.0\n\
[default]\nrate = 0.0\n",
        "ones",
    );
    assert_eq!(ids.iter().collect::<BTreeSet<_>>(), ones);
    assert!(
        stderr.contains(&format!("rule \"ones\" {}", ones.len())),
        "{stderr}"
    );

    // Half of them, the half head sampling at 0.5 keeps, and then the same trace ids: a rule's
    // rate is consistent too.
    let (ids, spans, _) = kept_traces(
        "[[rule]]\nservice = \"front\"\nroute = \"/checkout/*\"\nrate = 0.5\n[default]\nrate = 0.0\n",
        "half-checkout",
    );
    let half_out = dir.join("half.jsonl");
    replay(&capture, &services, &half_out, &["--sample", "0.5"]);
    let half: BTreeSet<String> = read_spans(&half_out)
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap().to_string())
        .filter(|t| checkout.contains(t))
        .collect();
    assert_eq!(ids, half);
    let share = ids.len() as f64 / checkout.len() as f64;
    eprintln!(
        "rule at 0.5 on {cell}: {} of {} checkout traces ({share:.3})",
        ids.len(),
        checkout.len()
    );
    assert!((0.35..0.65).contains(&share), "{share}");
    assert!(spans.iter().all(|s| s["trace_state"] == "ot=th:8"));

    // First match wins: a rule that drops checkout before one that keeps it.
    let (ids, _, _) = kept_traces(
        "[[rule]]\nroute = \"/checkout/*\"\nrate = 0.0\n[[rule]]\nservice = \"front\"\nrate = 1.0\n",
        "first-wins",
    );
    assert!(ids.iter().all(|t| !checkout.contains(t)), "checkout kept");

    // A route's own slowness threshold: traces in which a stock call took over 4 ms.
    let slow_stock: BTreeSet<String> = all
        .iter()
        .filter(|s| s["kind"] == "server" && s["service"] == "stock")
        .filter(|s| {
            s["end_unix_nano"].as_u64().unwrap() - s["start_unix_nano"].as_u64().unwrap()
                > 4_000_000
        })
        .map(|s| s["trace_id"].as_str().unwrap().to_string())
        .collect();
    let (ids, _, _) = kept_traces(
        "[[rule]]\nservice = \"stock\"\nrate = 0.0\nkeep_slower_than = \"4ms\"\n[default]\nrate = 0.0\n",
        "slow-stock",
    );
    eprintln!("{} traces with a stock call over 4 ms", slow_stock.len());
    assert!(!slow_stock.is_empty() && slow_stock.len() < roots.len());
    assert_eq!(ids, slow_stock);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn summary_and_analysis_are_the_same_with_and_without_sampling() {
    let cell = "eventloop-c16";
    let capture = common::repo_path(&format!("pcaps/lab/{cell}.pcap"));
    let services = common::repo_path(&format!("pcaps/lab/{cell}.services.toml"));
    let dir = temp_dir("summary");
    let run = |name: &str, extra: &[&str]| {
        let analysis = dir.join(format!("{name}.json"));
        let mut args = vec!["--summary", "--analysis-json", analysis.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = replay(
            &capture,
            &services,
            &dir.join(format!("{name}.jsonl")),
            &args,
        );
        (
            String::from_utf8(o.stderr).unwrap(),
            std::fs::read_to_string(&analysis).unwrap(),
            read_spans(&dir.join(format!("{name}.jsonl"))).len(),
        )
    };
    let (summary, analysis, spans) = run("all", &[]);
    let (sampled_summary, sampled_analysis, sampled_spans) = run("sampled", &["--sample", "0.01"]);
    let (again_summary, _, _) = run("again", &["--sample", "0.01"]);
    assert!(!summary.contains("sampling"), "{summary}");
    let without_sampling_lines = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("sampling"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        sampled_summary.contains("\nsampling: traces "),
        "{sampled_summary}"
    );
    assert_eq!(
        without_sampling_lines(&sampled_summary),
        summary.trim_end_matches('\n')
    );
    assert_eq!(sampled_analysis, analysis);
    assert_eq!(again_summary, sampled_summary, "the same on every run");
    eprintln!("--sample 0.01: {sampled_spans} of {spans} spans written");
    assert!(sampled_spans * 20 < spans, "{sampled_spans} of {spans}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_sampling_flags_are_usage_errors() {
    let capture = common::repo_path("pcaps/nginx-mixed.pcap");
    let dir = temp_dir("bad");
    let rules = dir.join("rules.toml");
    for (args, says) in [
        (vec!["--sample", "1.5"], "between 0 and 1"),
        (vec!["--keep-slower-than", "soon"], "duration"),
    ] {
        let mut all = vec!["replay", capture.to_str().unwrap()];
        all.extend(args.iter());
        let o = tapspan(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{all:?}");
    }
    for (text, says) in [
        ("[[rule]]\nrate = 2\n", "between 0 and 1"),
        ("[[rule]]\nrate = 1\nroutes = \"/a\"\n", "routes"),
        ("[default]\nrate = 0.1\n", "--sample"),
    ] {
        std::fs::write(&rules, text).unwrap();
        let out = dir.join("out.jsonl");
        let o = tapspan(&[
            "replay",
            capture.to_str().unwrap(),
            "--sample",
            "0.5",
            "--sampling-rules",
            rules.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(says), "{text}: {stderr}");
        assert!(!out.exists(), "no output file before the flags are checked");
    }
    std::fs::remove_dir_all(&dir).ok();
}
