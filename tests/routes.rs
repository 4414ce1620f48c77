//! Routes stay few: an id family of a real recording is one route, and a scan of 10⁵ distinct
//! paths cannot make more routes than the cap.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::craft::{self, Conversation, Dir};
use tapspan::causality::CausalityConfig;
use tapspan::route::{RouteConfig, OVERFLOW};
use tapspan::span::Span;

/// Distinct routes per service among server spans.
fn routes_by_service(spans: &[Span]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in spans {
        if let Some(route) = s.attributes.http.as_ref().and_then(|h| h.route.as_deref()) {
            out.entry(s.service.clone())
                .or_default()
                .insert(route.to_string());
        }
    }
    out
}

#[test]
fn an_id_family_of_a_real_recording_is_one_route() {
    // The lab's front asks stock for 50 SKUs, `/stock/sku-0` … `/stock/sku-49`.
    let (exchanges, _) = common::replay(&[common::repo_path("pcaps/lab/threads-c16.pcap")]);
    let paths: BTreeSet<&str> = exchanges
        .iter()
        .filter_map(|e| e.request())
        .map(|r| r.target.as_str())
        .filter(|t| t.starts_with("/stock/"))
        .collect();
    assert!(paths.len() >= 40, "{} stock paths", paths.len());
    let spans = common::spans(&exchanges);
    let stock: BTreeSet<String> = routes_by_service(&spans)
        .into_values()
        .flatten()
        .filter(|r| r.starts_with("/stock/"))
        .collect();
    assert!(stock.len() <= 3, "{stock:?}");
    assert!(stock.contains("/stock/{id}"), "{stock:?}");
}

/// One keep-alive connection on which a client asks for `n` distinct paths made of letters
/// only (no shape rule calls them identifiers).
fn scan_capture(n: usize) -> std::path::PathBuf {
    let word = |mut i: usize| {
        let mut w = String::new();
        loop {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
            if i == 0 {
                return w;
            }
        }
    };
    let mut c = Conversation::new(1000, 5000);
    c.handshake();
    for i in 0..n {
        let req = format!("GET /{} HTTP/1.1\r\nHost: scan\r\n\r\n", word(i));
        c.send(Dir::C2S, req.as_bytes(), 1460);
        c.send(
            Dir::S2C,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            1460,
        );
    }
    c.fin();
    let path = std::env::temp_dir().join(format!("tapspan-scan-{}.pcap", std::process::id()));
    std::fs::write(
        &path,
        craft::pcap(1, false, &craft::ethernet_frames(&c.segs)),
    )
    .unwrap();
    path
}

#[test]
fn a_scan_of_a_hundred_thousand_paths_stays_under_the_route_cap() {
    const PATHS: usize = 100_000;
    let capture = scan_capture(PATHS);
    let (exchanges, _) = common::replay(std::slice::from_ref(&capture));
    std::fs::remove_file(&capture).ok();
    assert_eq!(exchanges.len(), PATHS);
    // By default the position is a parameter after 20 values.
    let routes = routes_by_service(&common::spans(&exchanges));
    let server = &routes["10.1.0.2:8080"];
    assert_eq!(server.len(), 21, "20 literal paths, then /{{param}}");
    assert!(server.contains("/{param}"));
    // With the count rule out of the way, the cap holds.
    let config = CausalityConfig {
        routes: RouteConfig {
            values_per_position: usize::MAX,
            max_per_service: 500,
            ..RouteConfig::default()
        },
        ..CausalityConfig::default()
    };
    let routes = routes_by_service(&common::spans_with(&exchanges, config));
    let server = &routes["10.1.0.2:8080"];
    assert_eq!(server.len(), 501, "the cap, and the overflow route");
    assert!(server.contains(OVERFLOW));
}

#[test]
fn routes_file_templates_win_on_the_command_line() {
    let dir = std::env::temp_dir().join(format!("tapspan-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.txt");
    std::fs::write(&file, "# the shop's API\n/stock/{sku}\nGET /users/{user}\n").unwrap();
    let out = common::tapspan(&[
        "replay",
        "pcaps/lab/threads-c1.pcap",
        "--routes",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"http.route\":\"/stock/{sku}\""), "{text}");
    assert!(text.contains("\"name\":\"GET /users/{user}\""));
    assert!(
        text.contains("\"http.route\":\"/orders/{id}\""),
        "inferred where no template"
    );
    std::fs::write(&file, "stock/{sku}\n").unwrap();
    let out = common::tapspan(&[
        "replay",
        "pcaps/lab/threads-c1.pcap",
        "--routes",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not start with /"));
    std::fs::remove_dir_all(&dir).ok();
}
