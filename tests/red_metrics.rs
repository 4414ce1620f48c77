//! RED metrics (issue 21) from real lab recordings: the histograms `--metrics-file` writes
//! agree with the spans the same run writes (per series: count, buckets, sum), are well-formed
//! Prometheus histograms, and do not depend on sampling (byte for byte); the Grafana dashboard
//! in `docs/` queries only metrics tapspan exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapspan-red-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replays a lab recording with `extra` flags; returns (spans, metrics text, stderr).
fn replay(capture: &str, dir: &Path, extra: &[&str]) -> (Vec<Value>, String, String) {
    let lab = root().join("pcaps/lab");
    let spans = dir.join("spans.jsonl");
    let metrics = dir.join("metrics.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .arg("replay")
        .arg(lab.join(format!("{capture}.pcap")))
        .arg("--services")
        .arg(lab.join(format!("{capture}.services.toml")))
        .arg("-o")
        .arg(&spans)
        .arg("--metrics-file")
        .arg(&metrics)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let spans = std::fs::read_to_string(&spans)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (spans, std::fs::read_to_string(&metrics).unwrap(), err)
}

/// One sample line: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses Prometheus text (as written: no timestamps), unescaping label values.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = line.split_once('{').expect(line);
        let (labels, value) = rest.rsplit_once("} ").expect(line);
        let mut map = BTreeMap::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => panic!("{line}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            map.insert(key, value);
        }
        samples.push((name.to_string(), map, value.parse().expect(line)));
    }
    samples
}

/// A series' labels without `le`, as (kind, service, method, route, status).
type Series = (String, String, String, String, String);

fn series_of(family: &str, labels: &BTreeMap<String, String>) -> Series {
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    (
        family.to_string(),
        get("service_name"),
        get("http_request_method"),
        get("http_route"),
        get("http_response_status_code"),
    )
}

/// What the spans say per series: count and summed duration (seconds), and the count per
/// bucket bound.
#[derive(Default, Debug)]
struct Expected {
    count: u64,
    sum: f64,
    le: [u64; 14],
}

fn expected_from_spans(spans: &[Value]) -> BTreeMap<Series, Expected> {
    let mut out: BTreeMap<Series, Expected> = BTreeMap::new();
    for s in spans {
        let a = &s["attributes"];
        let Some(method) = a["http.request.method"].as_str() else {
            continue;
        };
        let family = match s["kind"].as_str().unwrap() {
            "server" => "http_server_request_duration_seconds",
            _ => "http_client_request_duration_seconds",
        };
        let status = a["http.response.status_code"]
            .as_u64()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let key = (
            family.to_string(),
            s["service"].as_str().unwrap().to_string(),
            method.to_string(),
            a["http.route"].as_str().unwrap_or_default().to_string(),
            status,
        );
        let ns = s["end_unix_nano"].as_u64().unwrap() - s["start_unix_nano"].as_u64().unwrap();
        let e = out.entry(key).or_default();
        e.count += 1;
        e.sum += ns as f64 / 1e9;
        for (i, b) in BUCKETS.iter().enumerate() {
            if ns <= (b * 1e9).round() as u64 {
                e.le[i] += 1;
            }
        }
    }
    out
}

/// Per series, the parsed histogram: cumulative buckets (in order, `+Inf` last), sum, count.
#[derive(Default, Debug)]
struct Parsed {
    buckets: Vec<(String, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

fn parsed_histograms(text: &str) -> BTreeMap<Series, Parsed> {
    let mut out: BTreeMap<Series, Parsed> = BTreeMap::new();
    for (name, labels, value) in parse(text) {
        let (family, part) = name.rsplit_once('_').unwrap();
        let p = out.entry(series_of(family, &labels)).or_default();
        match part {
            "bucket" => p.buckets.push((labels["le"].clone(), value)),
            "sum" => p.sum = Some(value),
            "count" => p.count = Some(value),
            _ => panic!("unexpected sample {name}"),
        }
    }
    out
}

#[test]
fn histograms_agree_with_the_spans_written() {
    let dir = scratch("agree");
    let (spans, text, _) = replay("threads-c4", &dir, &[]);
    let expected = expected_from_spans(&spans);
    let parsed = parsed_histograms(&text);
    assert!(expected.len() >= 8, "{expected:?}");
    assert_eq!(
        parsed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "one series per (kind, service, method, route, status) in the spans"
    );
    for (key, p) in &parsed {
        let e = &expected[key];
        let count = p.count.unwrap();
        assert_eq!(count, e.count as f64, "{key:?}");
        assert_eq!(p.buckets.len(), 15, "{key:?}");
        assert_eq!(p.buckets.last().unwrap(), &("+Inf".to_string(), count));
        for w in p.buckets.windows(2) {
            assert!(
                w[0].1 <= w[1].1,
                "cumulative buckets decrease: {key:?} {w:?}"
            );
        }
        for (i, (le, n)) in p.buckets[..14].iter().enumerate() {
            assert_eq!(le.parse::<f64>().unwrap(), BUCKETS[i]);
            assert_eq!(*n, e.le[i] as f64, "{key:?} le={le}");
        }
        let sum = p.sum.unwrap();
        assert!((sum - e.sum).abs() < 1e-6, "{key:?}: {sum} vs {}", e.sum);
    }
    // Routes are templates: no id or query in any label.
    for (_, _, _, route, _) in parsed.keys() {
        assert!(
            !route.contains('?') && !route.chars().any(|c| c.is_ascii_digit()),
            "{route}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_and_summary_do_not_depend_on_sampling() {
    let all_dir = scratch("all");
    let sampled_dir = scratch("sampled");
    let (all, text, summary) = replay("threads-c16", &all_dir, &["--summary"]);
    let (kept, sampled_text, sampled_summary) = replay(
        "threads-c16",
        &sampled_dir,
        &["--summary", "--sample", "0.1"],
    );
    assert!(
        kept.len() * 4 < all.len(),
        "sampling kept {} of {} spans: it did not test anything",
        kept.len(),
        all.len()
    );
    assert!(!text.is_empty());
    assert!(text == sampled_text, "the metrics changed with sampling");
    // The summary's table and counters are the same; only the sampling line is added.
    let without_sampling_line = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("sampl"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(
        without_sampling_line(&summary),
        without_sampling_line(&sampled_summary)
    );
    let _ = std::fs::remove_dir_all(&all_dir);
    let _ = std::fs::remove_dir_all(&sampled_dir);
}

/// Names followed by `{` (series selectors), and the first argument of `label_values(`.
fn queried_metrics(query: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    for (i, _) in query.match_indices('{') {
        let start = query[..i].rfind(|c| !ident(c)).map_or(0, |p| p + 1);
        if start < i {
            names.push(query[start..i].to_string());
        }
    }
    for (i, m) in query.match_indices("label_values(") {
        let rest = &query[i + m.len()..];
        let end = rest.find(|c| !ident(c)).unwrap_or(rest.len());
        names.push(rest[..end].to_string());
    }
    names
}

/// Label names a query groups by (`by (…)`) or selects on (`name=`, `name=~`, `name!=`).
fn queried_labels(query: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for (i, m) in query.match_indices("by (") {
        let rest = &query[i + m.len()..];
        let list = &rest[..rest.find(')').unwrap()];
        labels.extend(list.split(',').map(|l| l.trim().to_string()));
    }
    let mut rest = query;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').unwrap();
        for matcher in rest[open + 1..close].split(',') {
            let name = matcher.split(['=', '!']).next().unwrap().trim();
            labels.push(name.to_string());
        }
        rest = &rest[close + 1..];
    }
    labels
}

/// Every query of the Grafana dashboard: the panels' targets and the variables' queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            queries.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = &var["query"];
            let q = q["query"].as_str().or(q.as_str()).unwrap();
            queries.push(q.to_string());
        }
    }
    queries
}

#[test]
fn the_grafana_dashboard_queries_only_what_tapspan_exports() {
    let text = std::fs::read_to_string(root().join("docs/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let dir = scratch("dashboard");
    let (_, metrics, _) = replay("threads-c4", &dir, &[]);
    let mut names = std::collections::BTreeSet::new();
    let mut labels = std::collections::BTreeSet::new();
    for (name, l, _) in parse(&metrics) {
        names.insert(name);
        labels.extend(l.into_keys());
    }
    // Labels only some series carry (no such series in the recording).
    labels.insert("error_type".to_string());
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 6, "{queries:?}");
    for q in &queries {
        let metrics = queried_metrics(q);
        assert!(!metrics.is_empty(), "a query of no metric: {q}");
        for m in metrics {
            assert!(names.contains(&m), "{m} is not exported (in {q})");
        }
        for l in queried_labels(q) {
            assert!(labels.contains(&l), "label {l} is not exported (in {q})");
        }
    }
    let all = queries.join("\n");
    for want in [
        "histogram_quantile(0.99",
        "http_response_status_code=~\"5..\"",
        "$service",
    ] {
        assert!(all.contains(want), "{want}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
