//! `--summary`: a table per (service, method, route) of server spans — count, errors and latency
//! percentiles, from the analysis (exact order statistics) — and the pipeline's counters.
//! Service, method and route come off the wire: their control characters are escaped
//! ([`tapspan::terminal`]) before they reach the terminal.

use std::fmt::Write as _;

use tapspan::analysis::{fmt_ns, Endpoint};
use tapspan::terminal::escape;

/// The latency table, one row per endpoint.
pub fn render_table(endpoints: &[Endpoint]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "service", "method", "route", "count", "errors", "p50", "p90", "p99", "max"
    );
    for e in endpoints {
        let l = &e.latency_ns;
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
            escape(&e.service),
            escape(&e.method),
            truncate(&escape(&e.route), 40),
            e.count,
            e.errors,
            fmt_ns(l.p50),
            fmt_ns(l.p90),
            fmt_ns(l.p99),
            fmt_ns(l.max),
        );
    }
    s
}

/// The pipeline's counters, for `--summary`. Every counter is destructured by name, so a new
/// one does not compile until it is shown here; the last line gathers the memory caps that were
/// reached, each of which degraded only the connection (or datagram) it names.
pub fn render_counters(s: &tapspan::pipeline::PipelineStats, spans: u64) -> String {
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
        defrag_ranges_visited: _,
    } = s.decode;
    let tapspan::reassembly::ReassemblyStats {
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
        clock_steps_back,
        held_pieces_visited: _,
    } = s.reassembly;
    let tapspan::protocols::http1::HttpStats {
        connections: http_connections,
        non_http_connections,
        tls_connections,
        http2_connections,
        upgraded_connections,
        exchanges,
        incomplete_exchanges,
        responses_without_request,
        malformed_messages,
        heads_too_large,
        heads_dropped_at_total_cap,
        peak_head_bytes: _,
        pending_requests_dropped,
        resyncs,
        pairing_steps: _,
    } = s.protocols.http;
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
{late_segments}, clock steps back {clock_steps_back}\n\
http connections {http_connections} (not http {non_http_connections}: tls \
{tls_connections}, http/2 {http2_connections}; upgraded {upgraded_connections}), exchanges {exchanges} (incomplete {incomplete_exchanges}, responses \
without request {responses_without_request}), malformed messages {malformed_messages}, resyncs \
{resyncs}; spans made {spans}\n\
memory caps reached: connections evicted {evicted}, holes skipped at the held-bytes cap \
{holes_skipped_at_cap}, fragment datagrams evicted {defrag_evicted}, heads over the size cap \
{heads_too_large}, heads dropped at the total head cap {heads_dropped_at_total_cap}, unanswered \
requests given up {pending_requests_dropped}\n"
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

#[cfg(test)]
mod tests {
    use super::*;
    use tapspan::analysis::Percentiles;

    #[test]
    fn one_row_per_endpoint_with_exact_percentiles() {
        let mut ms: Vec<u64> = (1..=100).map(|m| m * 1_000_000).collect();
        let e = Endpoint {
            service: "svc".into(),
            method: "GET".into(),
            route: "/a".into(),
            count: 100,
            errors: 5,
            latency_ns: Percentiles::of(&mut ms),
            ttfb_ns: None,
            histogram: Vec::new(),
            request_bytes: 0,
            response_bytes: 0,
        };
        let table = render_table(&[e]);
        let cols: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cols,
            // Durations as the report and `diff` write them (`50.0 ms`).
            [
                "svc", "GET", "/a", "100", "5", "50.0", "ms", "90.0", "ms", "99.0", "ms", "100.0",
                "ms"
            ],
            "{table}"
        );
    }

    #[test]
    fn control_characters_from_the_wire_are_escaped_in_the_table() {
        let e = Endpoint {
            service: "svc\x1b]0;title\x07".into(),
            method: "G\x1b[2JET".into(),
            route: "/a\r\x1b[1A\x1b[31mok\u{9b}0m".into(),
            count: 1,
            errors: 0,
            latency_ns: Percentiles::of(&mut [1_000_000]),
            ttfb_ns: None,
            histogram: Vec::new(),
            request_bytes: 0,
            response_bytes: 0,
        };
        let table = render_table(&[e]);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert_eq!(table.lines().count(), 2, "{table:?}");
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with("svc\\x1b]0;title\\x07 "), "{row}");
        assert!(row.contains(" G\\x1b[2JET "), "{row}");
        assert!(row.contains(" /a\\x0d\\x1b[1A\\x1b[31mok\\x9b0m "), "{row}");
    }
}
