//! `--summary`: a table per (service, method, route) of server spans — count, errors and latency
//! percentiles, from the analysis (exact order statistics) — and the pipeline's counters.
//! Service, method and route come off the wire: their control characters are escaped
//! ([`tapspan::terminal`]) before they reach the terminal.

use std::fmt::Write as _;

use tapspan::analysis::{fmt_ns, Endpoint};
use tapspan::causality::CausalityStats;
use tapspan::counters::{fill, keyed, Counter};
use tapspan::pipeline::PipelineStats;
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

/// Where `--summary` puts the pipeline's counters (`{set.name}`, see [`tapspan::counters`]);
/// every counter not tagged internal stands here once (tested). The last line gathers the
/// memory caps that were reached, each of which degraded only the connection (or datagram) it
/// names.
const COUNTERS: &str = "\nframes {decode.frames} ({decode.bytes} bytes), tcp segments \
{decode.tcp_segments}, udp datagrams {decode.udp_datagrams}, non-tcp {decode.non_tcp}, unsupported link {decode.unsupported_link}, \
malformed {decode.malformed}, cut by snap length {decode.truncated}, tunnels \
{decode.tunnels_unwrapped}\n\
ip fragments {decode.fragments}: datagrams reassembled {decode.datagrams_reassembled}, \
overlapping {decode.defrag_overlaps}, timed out {decode.defrag_timed_out}, never completed \
{decode.defrag_pending}\n\
connections {tcp.connections} (mid-stream {tcp.midstream_connections}, fin {tcp.closed_fin}, \
rst {tcp.closed_rst}, idle {tcp.expired_idle}, peak {tcp.peak_connections}), retransmitted \
bytes {tcp.retransmitted_bytes}, conflicting overlap bytes {tcp.overlap_conflict_bytes}, \
out-of-order segments {tcp.out_of_order_segments} (peak held {tcp.peak_held_bytes} bytes), \
gaps {tcp.gaps} ({tcp.gap_bytes} bytes), cut by snap length {tcp.snapped_bytes} bytes, \
bytes after fin {tcp.after_fin_bytes}, ignored rsts {tcp.ignored_rsts}, late segments {tcp.late_segments}, clock steps back \
{tcp.clock_steps_back}\n\
http connections {http.connections} (not http {http.non_http_connections}: tls \
{http.tls_connections}, http/2 {http.http2_connections}; upgraded \
{http.upgraded_connections}), exchanges {http.exchanges} (incomplete \
{http.incomplete_exchanges}, responses without request {http.responses_without_request}), \
malformed messages {http.malformed_messages}, resyncs {http.resyncs}; spans made {spans}\n\
http/2 connections {http2.connections} (h2c upgrades {http2.upgrades}, declined \
{http2.upgrades_declined} with {http2.http1_exchanges} http/1.x exchanges; client and server \
turned round {http2.roles_swapped}), streams {http2.exchanges} (incomplete \
{http2.incomplete_exchanges}), frames {http2.frames}, resyncs {http2.resyncs}, gaps \
{http2.gaps}, late frames {http2.late_frames}, goaways {http2.goaways}, header blocks \
{http2.header_blocks} (lost {http2.blocks_lost}, broken {http2.broken_blocks}), header fields \
unknown {http2.unknown_fields}, invalid {http2.invalid_fields}\n\
redis connections {redis.connections}, commands {redis.exchanges} (incomplete \
{redis.incomplete_exchanges}), pushes {redis.pushes}, unmatched replies \
{redis.unmatched_replies}, protocol errors {redis.protocol_errors}\n\
postgresql connections {postgresql.connections} (encrypted \
{postgresql.encrypted_connections}), queries {postgresql.exchanges} (incomplete \
{postgresql.incomplete_exchanges}, skipped after an error {postgresql.skipped_executes}), \
protocol errors {postgresql.protocol_errors}\n\
tls connections {tls.connections}, handshakes {tls.handshakes} (incomplete \
{tls.incomplete_handshakes})\n\
dns queries {dns.exchanges} (udp {dns.udp_exchanges}, tcp {dns.tcp_exchanges} on \
{dns.tcp_connections} connections; error answers {dns.error_answers}, unanswered \
{dns.unanswered}), unmatched responses {dns.unmatched_responses}, malformed messages \
{dns.malformed}, queries given up at the pending cap {dns.evicted}\n\
memory caps reached: connections evicted {tcp.evicted}, holes skipped at the held-bytes cap \
{tcp.holes_skipped_at_cap}, fragment datagrams evicted {decode.defrag_evicted}, heads over the \
size cap {http.heads_too_large}, heads dropped at the total head cap \
{http.heads_dropped_at_total_cap}, unanswered requests given up \
{http.pending_requests_dropped}, http/2 streams given up {http2.streams_over_cap}, http/2 \
header blocks over the cap {http2.blocks_over_cap}\n";

/// The pipeline's counters, keyed for [`COUNTERS`].
fn keyed_counters(s: &PipelineStats, spans: u64) -> Vec<(String, Counter)> {
    let mut all: Vec<_> = keyed(&s.decode)
        .chain(keyed(&s.reassembly))
        .chain(s.protocols.keyed())
        .collect();
    all.push((
        "spans".into(),
        Counter {
            name: "spans",
            help: "Spans made.",
            value: spans,
            tags: &[],
        },
    ));
    all
}

/// The pipeline's counters, for `--summary`.
pub fn render_counters(s: &PipelineStats, spans: u64) -> String {
    fill(COUNTERS, &keyed_counters(s, spans))
}

/// Where `--summary` puts causality's counters.
const CAUSALITY: &str = "traces {causality.traces} from {causality.exchanges} exchanges: linked \
by propagated id {causality.linked_by_id}, by nesting {causality.linked_by_nesting}, roots \
{causality.roots}; decided early at the memory cap {causality.forced_decisions}, peak held \
{causality.peak_pending}\n";

/// Causality's counters, for `--summary`.
pub fn render_causality(s: &CausalityStats) -> String {
    fill(CAUSALITY, &keyed(s).collect::<Vec<_>>())
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

    /// A new counter does not reach `--summary` unseen: the layouts place each counter not
    /// tagged internal once.
    #[test]
    fn the_layouts_place_every_counter_once() {
        let all = keyed_counters(&PipelineStats::default(), 0);
        tapspan::counters::assert_layout_complete(COUNTERS, &all);
        let causality: Vec<_> = keyed(&CausalityStats::default()).collect();
        tapspan::counters::assert_layout_complete(CAUSALITY, &causality);
        assert!(render_counters(&PipelineStats::default(), 7).contains("; spans made 7\n"));
    }
}
