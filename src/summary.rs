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

/// The pipeline's counters, for `--summary`. Every counter is destructured by name, so a new
/// one does not compile until it is shown here; the last line gathers the memory caps that were
/// reached, each of which degraded only the connection (or datagram) it names.
pub fn render_counters(s: &crate::pipeline::PipelineStats, spans: u64) -> String {
    let tapspan_capture::DecodeStats {
        frames,
        bytes,
        tcp_segments,
        non_tcp,
        unsupported_link,
        malformed,
        tunnels_unwrapped,
        fragments,
        datagrams_reassembled,
        defrag_evicted,
        defrag_timed_out,
        defrag_overlaps,
        defrag_pending,
        truncated,
    } = s.decode;
    let crate::reassembly::ReassemblyStats {
        segments: _,
        connections,
        midstream_connections,
        closed_fin,
        closed_rst,
        expired_idle,
        evicted,
        retransmitted_bytes,
        overlap_conflict_bytes,
        after_fin_bytes,
        holes_skipped_at_cap,
        out_of_order_segments,
        gaps,
        gap_bytes,
        peak_connections,
        peak_held_bytes,
        ignored_rsts,
        late_segments,
    } = s.reassembly;
    let crate::http::HttpStats {
        connections: http_connections,
        non_http_connections,
        upgraded_connections,
        exchanges,
        incomplete_exchanges,
        responses_without_request,
        malformed_messages,
        heads_too_large,
        pending_requests_dropped,
        resyncs,
    } = s.http;
    format!(
        "\nframes {frames} ({bytes} bytes), tcp segments {tcp_segments}, non-tcp {non_tcp}, \
unsupported link {unsupported_link}, malformed {malformed}, cut by snap length {truncated}, \
tunnels {tunnels_unwrapped}\n\
ip fragments {fragments}: datagrams reassembled {datagrams_reassembled}, overlapping \
{defrag_overlaps}, timed out {defrag_timed_out}, never completed {defrag_pending}\n\
connections {connections} (mid-stream {midstream_connections}, fin {closed_fin}, rst \
{closed_rst}, idle {expired_idle}, peak {peak_connections}), retransmitted bytes \
{retransmitted_bytes}, conflicting overlap bytes {overlap_conflict_bytes}, out-of-order \
segments {out_of_order_segments} (peak held {peak_held_bytes} bytes), gaps {gaps} ({gap_bytes} \
bytes), bytes after fin {after_fin_bytes}, ignored rsts {ignored_rsts}, late segments \
{late_segments}\n\
http connections {http_connections} (not http {non_http_connections}, upgraded \
{upgraded_connections}), exchanges {exchanges} (incomplete {incomplete_exchanges}, responses \
without request {responses_without_request}), malformed messages {malformed_messages}, resyncs \
{resyncs}; spans written {spans}\n\
memory caps reached: connections evicted {evicted}, holes skipped at the held-bytes cap \
{holes_skipped_at_cap}, fragment datagrams evicted {defrag_evicted}, heads over the size cap \
{heads_too_large}, unanswered requests given up {pending_requests_dropped}\n"
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
