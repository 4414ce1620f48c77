//! `--summary`: a table per (service, method, route) of server spans: count, errors and latency
//! percentiles (HdrHistogram, microsecond resolution, 3 significant digits).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::span::{Span, SpanKind, SpanStatus};

struct Row {
    count: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

#[derive(Default)]
pub struct Summary {
    rows: BTreeMap<(String, String, String), Row>,
}

impl Summary {
    pub fn add(&mut self, span: &Span) {
        if span.kind != SpanKind::Server {
            return;
        }
        let attr = |k: &str| {
            span.attributes
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_string()
        };
        let key = (
            span.service.clone(),
            attr("http.request.method"),
            attr("http.route"),
        );
        let row = self.rows.entry(key).or_insert_with(|| Row {
            count: 0,
            errors: 0,
            // 1 µs to 1 hour; longer spans saturate at an hour.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("bounds and precision are valid"),
        });
        row.count += 1;
        if span.status == SpanStatus::Error {
            row.errors += 1;
        }
        let us = (span.end_unix_nano.saturating_sub(span.start_unix_nano) / 1000).max(1);
        row.latency_us.saturating_record(us);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "service", "method", "route", "count", "errors", "p50", "p90", "p99", "max"
        );
        for ((service, method, route), row) in &self.rows {
            let h = &row.latency_us;
            let _ = writeln!(
                s,
                "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
                service,
                method,
                truncate(route, 40),
                row.count,
                row.errors,
                fmt_us(h.value_at_quantile(0.50)),
                fmt_us(h.value_at_quantile(0.90)),
                fmt_us(h.value_at_quantile(0.99)),
                fmt_us(h.max()),
            );
        }
        s
    }
}

/// The pipeline's counters, for `--summary`.
pub fn render_counters(s: &crate::pipeline::PipelineStats, spans: u64) -> String {
    let d = &s.decode;
    let r = &s.reassembly;
    let h = &s.http;
    format!(
        "\nframes {} ({} bytes), tcp segments {}, non-tcp {}, unsupported link {}, malformed {}, \
tunnels {}, fragments {} (reassembled {}, evicted {})\n\
connections {} (mid-stream {}, fin {}, rst {}, idle {}, evicted {}), retransmitted bytes {}, \
conflicting overlap bytes {}, out-of-order segments {}, gaps {} ({} bytes)\n\
http connections {} (not http {}, upgraded {}), exchanges {} (incomplete {}, responses without \
request {}), malformed messages {}, resyncs {}; spans written {}\n",
        d.frames,
        d.bytes,
        d.tcp_segments,
        d.non_tcp,
        d.unsupported_link,
        d.malformed,
        d.tunnels_unwrapped,
        d.fragments,
        d.datagrams_reassembled,
        d.defrag_evicted,
        r.connections,
        r.midstream_connections,
        r.closed_fin,
        r.closed_rst,
        r.expired_idle,
        r.evicted,
        r.retransmitted_bytes,
        r.overlap_conflict_bytes,
        r.out_of_order_segments,
        r.gaps,
        r.gap_bytes,
        h.connections,
        h.non_http_connections,
        h.upgraded_connections,
        h.exchanges,
        h.incomplete_exchanges,
        h.responses_without_request,
        h.malformed_messages,
        h.resyncs,
        spans,
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanStatus;
    use serde_json::{json, Map};

    fn span(ms: u64, status: SpanStatus) -> Span {
        let mut attributes = Map::new();
        attributes.insert("http.request.method".into(), json!("GET"));
        attributes.insert("http.route".into(), json!("/a"));
        Span {
            trace_id: String::new(),
            span_id: String::new(),
            parent_span_id: None,
            kind: SpanKind::Server,
            name: "GET /a".into(),
            service: "svc".into(),
            start_unix_nano: 1_000_000_000,
            end_unix_nano: 1_000_000_000 + ms * 1_000_000,
            status,
            attributes,
            events: Vec::new(),
        }
    }

    #[test]
    fn percentiles_and_errors_per_route() {
        let mut s = Summary::default();
        for ms in 1..=100 {
            s.add(&span(
                ms,
                if ms > 95 {
                    SpanStatus::Error
                } else {
                    SpanStatus::Unset
                },
            ));
        }
        let table = s.render();
        let row = table.lines().nth(1).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[..5], &["svc", "GET", "/a", "100", "5"], "{table}");
        assert_eq!(cols[5], "50.0ms", "{table}");
        assert_eq!(cols[8], "100.0ms", "{table}");
    }
}
