//! The analysis behind `tapspan report` (issue 7) on the recorded five-service shop
//! (pcaps/shop-dirty.pcap with planted performance problems, pcaps/shop-clean.pcap without),
//! checked against what the services themselves logged (fixtures/reference/shop-*.access.log),
//! and its percentiles against an independent computation over the span JSON lines.

mod common;

use common::{findings, only};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tapspan-report-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn tapspan(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "tapspan {args:?}: {stderr}");
    stderr
}

fn services() -> String {
    common::repo_path("pcaps/shop.services.toml")
        .display()
        .to_string()
}

/// The analysis of a recorded capture, through `tapspan report`.
fn analysis_of(mode: &str, dir: &TempDir) -> Value {
    let pcap = common::repo_path(&format!("pcaps/shop-{mode}.pcap"));
    let json = dir.file(&format!("{mode}.json"));
    tapspan(&[
        "report",
        pcap.to_str().unwrap(),
        "--services",
        &services(),
        "--analysis-json",
        json.to_str().unwrap(),
    ]);
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// One access-log line: `service time client "METHOD target" status bytes ms request-id`.
struct Logged {
    service: String,
    method: String,
    target: String,
    status: u16,
    bytes: u64,
    ms: f64,
    request_id: String,
}

fn access_log(mode: &str) -> Vec<Logged> {
    let text = std::fs::read_to_string(common::repo_path(&format!(
        "fixtures/reference/shop-{mode}.access.log"
    )))
    .unwrap();
    text.lines()
        .map(|l| {
            let (head, rest) = l.split_once(" \"").unwrap();
            let (request, tail) = rest.split_once("\" ").unwrap();
            let (method, target) = request.split_once(' ').unwrap();
            let service = head.split_whitespace().next().unwrap().to_string();
            let t: Vec<&str> = tail.split_whitespace().collect();
            Logged {
                service,
                method: method.to_string(),
                target: target.to_string(),
                status: t[0].parse().unwrap(),
                bytes: t[1].parse().unwrap_or(0),
                ms: t[2].parse().unwrap(),
                request_id: t.get(3).unwrap_or(&"-").to_string(),
            }
        })
        .collect()
}

/// Per request id, how many calls the log shows to a service whose target starts with `prefix`.
fn per_request(log: &[Logged], service: &str, prefix: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in log
        .iter()
        .filter(|l| l.service == service && l.target.starts_with(prefix))
    {
        *m.entry(l.request_id.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn every_planted_problem_is_found_with_the_logged_counts() {
    let dir = TempDir::new("dirty");
    let a = analysis_of("dirty", &dir);
    let log = access_log("dirty");

    // Endpoint counts equal the services' own logs.
    let mut logged: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for l in &log {
        let path = l.target.split('?').next().unwrap();
        let key = (
            l.service.clone(),
            l.method.clone(),
            tapspan::route::template(path),
        );
        *logged.entry(key).or_insert(0) += 1;
    }
    let mut seen: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for e in a["endpoints"].as_array().unwrap() {
        let text = |k: &str| e[k].as_str().unwrap().to_string();
        let key = (text("service"), text("method"), text("route"));
        seen.insert(key, e["count"].as_u64().unwrap());
    }
    assert_eq!(seen, logged);

    // N+1: the checkouts that fetched items one by one, and how many fetches.
    let items = per_request(&log, "items", "/items/");
    let n1 = only(&a, "n_plus_one");
    assert_eq!(n1["context"], "gateway GET /checkout/{id}");
    assert_eq!(n1["target"], "items GET /items/{id}");
    assert_eq!(n1["occurrences"], items.len() as u64);
    assert_eq!(n1["calls"], items.values().sum::<u64>());
    assert_eq!((items.len(), items.values().sum::<u64>()), (50, 300));

    // Repeated identical GETs: /config twice in every checkout.
    let config = per_request(&log, "pricing", "/config");
    let rep = only(&a, "repeated_get");
    assert_eq!(rep["target"], "pricing GET /config");
    assert_eq!(
        rep["occurrences"],
        config.values().filter(|&&n| n >= 2).count() as u64
    );
    assert_eq!(rep["calls"], config.values().sum::<u64>());

    // Retries: every 503 of /stock was followed by a second attempt of the same checkout.
    let failed_stock = log
        .iter()
        .filter(|l| l.service == "inventory" && l.target.starts_with("/stock/") && l.status == 503)
        .count() as u64;
    assert_eq!(failed_stock, 16);
    let retries = only(&a, "retries");
    assert_eq!(retries["target"], "inventory GET /stock/{id}");
    assert_eq!(retries["calls"], failed_stock);

    // Errors: the 503s, and the gateway's 504s; nothing else failed.
    let errors = findings(&a, "errors");
    let by_target: HashMap<&str, u64> = errors
        .iter()
        .map(|f| (f["target"].as_str().unwrap(), f["calls"].as_u64().unwrap()))
        .collect();
    let gateway_504 = log
        .iter()
        .filter(|l| l.service == "gateway" && l.status == 504)
        .count() as u64;
    assert_eq!(gateway_504, 10);
    assert_eq!(
        by_target,
        HashMap::from([
            ("inventory GET /stock/{id}", failed_stock),
            ("gateway GET /checkout/{id}", gateway_504)
        ])
    );

    // Timeouts: the /slow calls the gateway gave up on (inventory logged them as 499, having
    // found the connection closed); the gateway's timeout was 0.3 s.
    let slow = log
        .iter()
        .filter(|l| l.target.starts_with("/slow/"))
        .count() as u64;
    let timeouts = only(&a, "timeouts");
    assert_eq!(timeouts["target"], "inventory GET /slow/{id}");
    assert_eq!(timeouts["calls"], slow);
    let per_call = timeouts["impact_ns"].as_u64().unwrap() / slow;
    assert!((300_000_000..320_000_000).contains(&per_call), "{per_call}");

    // Slow first byte: pricing thinks 80 ms per /price (its log says 80+ ms each).
    let price_ms: Vec<f64> = log
        .iter()
        .filter(|l| l.target.starts_with("/price/"))
        .map(|l| l.ms)
        .collect();
    assert!(price_ms.iter().all(|&ms| ms >= 80.0));
    let slow_ttfb = only(&a, "slow_first_byte");
    assert_eq!(slow_ttfb["target"], "pricing GET /price/{id}");
    assert_eq!(slow_ttfb["calls"], price_ms.len() as u64);

    // Large uncompressed bodies: the catalog, 298,097 bytes each.
    let catalog: Vec<&Logged> = log.iter().filter(|l| l.target == "/catalog/full").collect();
    assert!(catalog.iter().all(|l| l.bytes == 298_097));
    let large = only(&a, "large_body");
    assert_eq!(large["target"], "items GET /catalog/full");
    assert_eq!(large["calls"], catalog.len() as u64);

    // Sequential calls: every checkout's calls run one after another.
    let seq = only(&a, "sequential_calls");
    assert_eq!(seq["context"], "gateway GET /checkout/{id}");
    assert_eq!(seq["occurrences"], 50);

    // Nothing else, and ranked by impact.
    assert_eq!(a["findings"].as_array().unwrap().len(), 9);
    let impacts: Vec<u64> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["impact_ns"].as_u64().unwrap())
        .collect();
    assert!(impacts.windows(2).all(|w| w[0] >= w[1]), "{impacts:?}");
}

#[test]
fn the_clean_capture_has_no_finding() {
    let dir = TempDir::new("clean");
    let a = analysis_of("clean", &dir);
    assert_eq!(a["findings"], Value::Array(vec![]), "{:#}", a["findings"]);
    // And it is the same application: the gateway called all four services.
    let callees: Vec<&str> = a["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["caller"] == "gateway")
        .map(|e| e["callee"].as_str().unwrap())
        .collect();
    assert_eq!(callees, ["inventory", "items", "pricing", "users"]);
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn percentiles_match_an_independent_computation_over_the_span_json_lines() {
    let dir = TempDir::new("pct");
    let pcap = common::repo_path("pcaps/shop-dirty.pcap");
    let jsonl = dir.file("spans.jsonl");
    let from_capture = dir.file("capture.json");
    tapspan(&[
        "replay",
        pcap.to_str().unwrap(),
        "--services",
        &services(),
        "-o",
        jsonl.to_str().unwrap(),
        "--analysis-json",
        from_capture.to_str().unwrap(),
    ]);
    // Exact order statistics of server spans' durations, per (service, method, route).
    let mut durations: BTreeMap<(String, String, String), Vec<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(&jsonl).unwrap().lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        if s["kind"] != "server" {
            continue;
        }
        let attr = |k: &str| s["attributes"][k].as_str().unwrap_or("-").to_string();
        let d = s["end_unix_nano"].as_u64().unwrap() - s["start_unix_nano"].as_u64().unwrap();
        durations
            .entry((
                s["service"].as_str().unwrap().to_string(),
                attr("http.request.method"),
                attr("http.route"),
            ))
            .or_default()
            .push(d.max(1));
    }
    let analysis: Value =
        serde_json::from_str(&std::fs::read_to_string(&from_capture).unwrap()).unwrap();
    let endpoints = analysis["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), durations.len());
    for e in endpoints {
        let key = (
            e["service"].as_str().unwrap().to_string(),
            e["method"].as_str().unwrap().to_string(),
            e["route"].as_str().unwrap().to_string(),
        );
        let mut exact = durations.remove(&key).unwrap();
        exact.sort_unstable();
        assert_eq!(e["count"], exact.len() as u64, "{key:?}");
        for (field, q) in [
            ("p50", 0.50),
            ("p75", 0.75),
            ("p90", 0.90),
            ("p99", 0.99),
            ("p999", 0.999),
            ("max", 1.0),
        ] {
            // Read from a sketch: within its stated 1 % of the exact value (the max is exact).
            let want = nearest_rank(&exact, q);
            let got = e["latency_ns"][field].as_u64().unwrap();
            let error = (got as f64 - want as f64).abs() / want as f64;
            assert!(error <= 0.01, "{key:?} {field}: {got} vs {want}");
            if field == "max" {
                assert_eq!(got, want, "{key:?}");
            }
        }
    }

    // The report of the JSON lines is the report of the capture.
    let from_spans = dir.file("spans.json");
    tapspan(&[
        "report",
        jsonl.to_str().unwrap(),
        "--analysis-json",
        from_spans.to_str().unwrap(),
    ]);
    let mut a: Value =
        serde_json::from_str(&std::fs::read_to_string(&from_spans).unwrap()).unwrap();
    let mut b = analysis;
    a["inputs"] = Value::Null;
    b["inputs"] = Value::Null;
    assert_eq!(a, b);
}

#[test]
fn summary_lists_the_findings_ranked() {
    let pcap = common::repo_path("pcaps/shop-dirty.pcap");
    let stderr = tapspan(&[
        "replay",
        pcap.to_str().unwrap(),
        "--services",
        &services(),
        "--summary",
        "-o",
        "/dev/null",
    ]);
    let at = stderr.find("findings (most time first):").unwrap();
    let lines: Vec<&str> = stderr[at..].lines().skip(1).collect();
    assert_eq!(lines.len(), 9, "{stderr}");
    assert!(lines[0].starts_with(" 1. ["), "{stderr}");
    assert!(stderr.contains(
        "[N+1 calls] gateway GET /checkout/{id} calls items GET /items/{id} 6.0 times per request"
    ));
}

#[test]
fn report_needs_an_output_and_rejects_what_is_not_a_span() {
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(["report", "pcaps/shop-clean.pcap"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = TempDir::new("bad");
    let bad = dir.file("bad.jsonl");
    std::fs::write(&bad, "{\"not\": \"a span\"}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(["report", bad.to_str().unwrap(), "--analysis-json"])
        .arg(dir.file("x.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1: not a span"), "{stderr}");
    assert!(!Path::new(&dir.file("x.json")).exists());
}

#[test]
fn the_analysis_cap_bounds_the_calls_kept_and_says_so() {
    let dir = TempDir::new("cap");
    let pcap = common::repo_path("pcaps/shop-dirty.pcap");
    let json = dir.file("capped.json");
    let html = dir.file("capped.html");
    tapspan(&[
        "report",
        pcap.to_str().unwrap(),
        "--max-analysed-calls",
        "100",
        "--analysis-json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let a: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    // 638 requests on the wire (the services logged them all): 100 kept, 538 counted.
    assert_eq!(access_log("dirty").len(), 638);
    assert_eq!(a["calls"], 100);
    assert_eq!(a["calls_left_out"], 538);
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("data-left-out=\"538\""));
}

#[test]
fn diff_names_what_got_slower_and_what_is_new() {
    let dir = TempDir::new("diff");
    // Writes clean.json and dirty.json into `dir`.
    analysis_of("clean", &dir);
    analysis_of("dirty", &dir);
    let (clean_json, dirty_json) = (dir.file("clean.json"), dir.file("dirty.json"));
    let run = |before: &Path, after: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tapspan"))
            .arg("diff")
            .arg(before)
            .arg(after)
            .arg("--fail-on-regression")
            .output()
            .unwrap()
    };
    let out = run(&clean_json, &dirty_json);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start}: {text}"))
            .to_string()
    };
    // /price went from 5 ms to 80 ms think time; /users did not change.
    assert!(
        line("pricing GET /price/{id}").ends_with("REGRESSED"),
        "{text}"
    );
    assert!(
        !line("users GET /users/{id}").ends_with("REGRESSED"),
        "{text}"
    );
    assert!(text
        .contains("new finding: [N+1 calls] gateway GET /checkout/{id} → items GET /items/{id}"));
    assert!(text.contains("items GET /catalog/full                          new endpoint"));
    // Nothing changed: no regression, exit 0.
    let out = run(&dirty_json, &dirty_json);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("0 regressions\n"));
}

/// Issue 18, in the HTML itself (the layout is measured in tests/report_browser.rs): leaves of
/// the calling-context trees cannot be opened, every example trace id of a finding links its
/// waterfall or says why it has none, and waterfalls draw each known phase from a 0 axis.
#[test]
fn r18_the_report_links_or_explains_ids_and_draws_every_phase() {
    let dir = TempDir::new("r18");
    let pcap = common::repo_path("pcaps/shop-dirty.pcap");
    let (json, html) = (dir.file("a.json"), dir.file("r.html"));
    tapspan(&[
        "report",
        pcap.to_str().unwrap(),
        "--services",
        &services(),
        "--analysis-json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let a: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let page = std::fs::read_to_string(html).unwrap();

    // Calling contexts: a <summary> (and its triangle) for each node with children only.
    fn count(n: &Value, leaves: &mut usize, inner: &mut usize) {
        let children = n["children"].as_array().unwrap();
        if children.is_empty() {
            *leaves += 1;
        } else {
            *inner += 1;
        }
        for c in children {
            count(c, leaves, inner);
        }
    }
    let (mut leaves, mut inner) = (0, 0);
    for root in a["calling_contexts"].as_array().unwrap() {
        count(root, &mut leaves, &mut inner);
    }
    let contexts = &page[page.find("<section id=\"contexts\"").unwrap()..];
    assert!(leaves > 0 && inner > 0, "{leaves} leaves, {inner} inner");
    assert_eq!(contexts.matches("<summary>").count(), inner);
    assert_eq!(contexts.matches("class=\"leaf\"").count(), leaves);

    // Findings: each example id, whole, as a link to its waterfall or with the reason it has none.
    let waterfalls = a["waterfalls"].as_array().unwrap();
    let drawn = |t: &str| waterfalls.iter().any(|w| w["trace_id"] == t);
    let (mut linked, mut explained) = (0, 0);
    for f in a["findings"].as_array().unwrap() {
        for t in f["trace_ids"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            if drawn(t) {
                let link = format!("<a class=\"trace\" href=\"#trace-{t}\"");
                assert!(page.contains(&link), "{t} is not linked");
                assert!(page.contains(&format!("<details class=\"waterfall\" id=\"trace-{t}\"")));
                linked += 1;
            } else {
                let code = format!("<code class=\"trace\" title=\"trace {t}: no waterfall");
                assert!(page.contains(&code), "{t} has no link and no reason");
                explained += 1;
            }
        }
    }
    assert!(
        linked > 0 && explained > 0,
        "{linked} linked, {explained} explained"
    );
    assert!(
        page.contains("id=\"no-waterfall\""),
        "the reason is said once"
    );

    // Waterfalls: every axis starts at "0"; each known phase of each row is drawn.
    let axes = page.matches("data-ns=\"0\">0</text>").count();
    assert_eq!(axes, waterfalls.len());
    let rows: Vec<&Value> = waterfalls
        .iter()
        .flat_map(|w| w["rows"].as_array().unwrap())
        .collect();
    let sends = rows.iter().filter(|r| r["request_end_ns"].is_u64()).count();
    let recvs = rows
        .iter()
        .filter(|r| r["response_start_ns"].is_u64())
        .count();
    assert!(recvs < rows.len(), "some calls got no response");
    assert_eq!(page.matches("<rect class=\"send\" x=").count(), 2 * sends);
    assert_eq!(page.matches("<rect class=\"recv\" x=").count(), 2 * recvs);
}

/// The report and analysis JSON replace a regular file whole (a temporary file renamed over it),
/// but a symbolic link or a device given as the path is written through, never replaced: as
/// root, renaming over `/dev/null` would replace the device itself.
#[test]
fn outputs_through_a_link_or_a_device_are_written_not_replaced() {
    let dir = std::env::temp_dir().join(format!("tapspan-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("analysis-target.json");
    let link = dir.join("analysis.json");
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let null_before = std::fs::metadata("/dev/null").unwrap();
    let pcap = common::repo_path("pcaps/shop-dirty.pcap");
    tapspan(&[
        "replay",
        pcap.to_str().unwrap(),
        "-o",
        "/dev/null",
        "--analysis-json",
        link.to_str().unwrap(),
        "--report",
        "/dev/null",
    ]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert!(written["calls"].as_u64().unwrap() > 0);
    use std::os::unix::fs::FileTypeExt;
    let null_after = std::fs::metadata("/dev/null").unwrap();
    assert!(null_after.file_type().is_char_device());
    assert_eq!(
        std::os::unix::fs::MetadataExt::rdev(&null_after),
        std::os::unix::fs::MetadataExt::rdev(&null_before)
    );
    std::fs::remove_dir_all(&dir).ok();
}
