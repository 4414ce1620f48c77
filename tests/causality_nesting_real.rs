//! Nesting alone on real recordings: the shop captures (pcaps/shop-*.md) carry X-Request-ID on
//! every call, which links them exactly (and tests/report.rs checks those traces against the
//! services' access logs). With the ids taken out, send/receive nesting must find the same
//! parents.

mod common;

use std::collections::HashMap;

use tapspan::http::HttpExchange;
use tapspan::span::{Span, SpanKind};

/// Exchange id of each client span → exchange id of its parent's (None for a root).
fn parents(spans: &[Span]) -> HashMap<String, Option<String>> {
    let xid = |s: &Span| {
        s.attributes["tapspan.exchange_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let server_of: HashMap<&str, String> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .map(|s| (s.span_id.as_str(), xid(s)))
        .collect();
    spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .map(|s| {
            let parent = s
                .parent_span_id
                .as_deref()
                .and_then(|p| server_of.get(p))
                .cloned();
            (xid(s), parent)
        })
        .collect()
}

fn without_ids(exchanges: &[HttpExchange]) -> Vec<HttpExchange> {
    let propagated = |name: &str| {
        ["x-request-id", "traceparent", "b3", "uber-trace-id"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
    };
    exchanges
        .iter()
        .cloned()
        .map(|mut ex| {
            if let Some(r) = ex.request.as_mut() {
                r.headers.retain(|(n, _)| !propagated(n));
            }
            if let Some(r) = ex.response.as_mut() {
                r.headers.retain(|(n, _)| !propagated(n));
            }
            ex
        })
        .collect()
}

/// (calls with a parent by id, of them linked to the same parent by nesting alone)
fn nesting_against_ids(capture: &str) -> (usize, usize) {
    let (exchanges, _) = common::replay(&[common::repo_path(capture)]);
    let by_id = parents(&common::spans(&exchanges));
    let by_nesting = parents(&common::spans(&without_ids(&exchanges)));
    let mut children = 0;
    let mut right = 0;
    for (x, parent) in &by_id {
        if parent.is_some() {
            children += 1;
            right += usize::from(by_nesting.get(x) == Some(parent));
        }
    }
    eprintln!("{capture}: nesting alone gives {right} of {children} parents found by id");
    (children, right)
}

#[test]
fn nesting_alone_finds_the_parents_the_ids_give() {
    for capture in ["pcaps/shop-dirty.pcap", "pcaps/shop-clean.pcap"] {
        let (children, right) = nesting_against_ids(capture);
        assert!(children > 200, "{capture}: {children}");
        assert!(
            right * 100 >= children * 99,
            "{capture}: {right} of {children}"
        );
    }
}
