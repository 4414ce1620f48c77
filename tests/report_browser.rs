//! The HTML report of the recorded shop capture, rendered by headless Chromium (Debian's
//! `chromium`, which .ci/run installs): the DOM after the page's script ran must hold the
//! service map, the endpoint table and the waterfalls with the numbers the services logged.
//! Without a browser the test says so and passes, unless TAPSPAN_REQUIRE_BROWSER is set (CI).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TAPSPAN_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Runs headless Chromium on a local file with the flags this machine needs (no network, no
/// sandbox as root, a fresh profile) plus `extra`; returns stdout.
fn chromium(browser: &Path, profile: &Path, page: &Path, extra: &[&str]) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The value of `attr` in the first element whose opening tag contains all of `having`.
fn attr_of(dom: &str, having: &[&str], attr: &str) -> Option<String> {
    let mut rest = dom;
    while let Some(at) = rest.find('<') {
        let tag_end = rest[at..].find('>')? + at;
        let tag = &rest[at..tag_end];
        if having.iter().all(|h| tag.contains(h)) {
            let key = format!(" {attr}=\"");
            let v = tag.find(&key)? + key.len();
            let end = tag[v..].find('"')? + v;
            return Some(tag[v..end].to_string());
        }
        rest = &rest[tag_end..];
    }
    None
}

#[test]
fn the_report_renders_in_chromium_with_the_logged_numbers() {
    let Some(browser) = browser() else {
        assert!(
            std::env::var_os("TAPSPAN_REQUIRE_BROWSER").is_none(),
            "TAPSPAN_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium, or set TAPSPAN_CHROMIUM)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tapspan-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let json = dir.join("analysis.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .arg("report")
        .arg(common::repo_path("pcaps/shop-dirty.pcap"))
        .arg("--services")
        .arg(common::repo_path("pcaps/shop.services.toml"))
        .arg("--html")
        .arg(&html)
        .arg("--analysis-json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 5 << 20, "report is {size} bytes");
    let page = std::fs::read_to_string(&html).unwrap();
    for remote in ["http://", "https://", "src=\"//"] {
        assert!(
            !page.contains(remote),
            "the report must not fetch anything: {remote}"
        );
    }

    let dom = chromium(&browser, &dir.join("profile"), &html, &["--dump-dom"]);
    // The page's script ran.
    assert!(
        attr_of(&dom, &["<body"], "data-render-ms").is_some(),
        "script did not run"
    );

    // Service map: every service, with the calls its own access log shows.
    let log = std::fs::read_to_string(common::repo_path(
        "fixtures/reference/shop-dirty.access.log",
    ))
    .unwrap();
    let mut served: BTreeMap<&str, u64> = BTreeMap::new();
    for line in log.lines() {
        *served.entry(line.split(' ').next().unwrap()).or_default() += 1;
    }
    assert_eq!(served.len(), 5);
    for (service, n) in &served {
        let tag = format!("data-service=\"{service}\"");
        let got = attr_of(&dom, &["class=\"node\"", &tag], "data-served");
        assert_eq!(got, Some(n.to_string()), "node {service}");
    }
    let client_calls = attr_of(
        &dom,
        &["class=\"node\"", "data-service=\"client\""],
        "data-made",
    );
    assert_eq!(client_calls, Some(served["gateway"].to_string()));
    // Edges: gateway → items carries every call items logged; gateway → inventory shows the
    // 503s as 5xx and the abandoned /slow calls as no response.
    let edge = |callee: &str, attr: &str| {
        let tag = format!("data-callee=\"{callee}\"");
        attr_of(
            &dom,
            &["class=\"edge", "data-caller=\"gateway\"", &tag],
            attr,
        )
    };
    assert_eq!(
        edge("items", "data-count"),
        Some(served["items"].to_string())
    );
    assert_eq!(edge("inventory", "data-5xx"), Some("16".into()));
    assert_eq!(edge("inventory", "data-no-response"), Some("10".into()));

    // Endpoint table: counts and percentiles as in the analysis JSON.
    let analysis: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let items = analysis["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["route"] == "/items/{id}")
        .unwrap();
    let row = [
        "<tr",
        "data-service=\"items\"",
        "data-route=\"/items/{id}\"",
    ];
    assert_eq!(attr_of(&dom, &row, "data-count"), Some("300".into()));
    assert_eq!(
        attr_of(&dom, &row, "data-p99-ns"),
        Some(items["latency_ns"]["p99"].to_string())
    );
    let rows = dom.matches("<tr data-service=").count();
    assert_eq!(rows, analysis["endpoints"].as_array().unwrap().len());

    // Waterfalls: the slowest request is open, with its 13+ calls drawn and a critical path.
    let first = attr_of(
        &dom,
        &["<details class=\"waterfall\"", " open"],
        "data-rows",
    )
    .expect("an open waterfall");
    assert!(first.parse::<usize>().unwrap() >= 13, "{first}");
    assert!(dom.contains("class=\"row critical"));
    // Findings: all nine, most costly first.
    assert_eq!(dom.matches("<li class=\"finding\"").count(), 9);

    // A screenshot, for people (its description is in the closing note of issue 7).
    let png = dir.join("report.png");
    let shot = format!("--screenshot={}", png.display());
    chromium(
        &browser,
        &dir.join("profile"),
        &html,
        &[&shot, "--window-size=1400,2400"],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    if let Some(keep) = std::env::var_os("TAPSPAN_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}
