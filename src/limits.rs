//! Every memory cap, in one place (issue 6). A capture is hostile input: each structure that
//! grows with what the wire sends has a cap here, a flag on the command line, and a counter in
//! `--summary` for when it was reached. Reaching a cap degrades only what caused it — one
//! connection, one datagram, one connection's oldest request — never the rest of the capture.
//!
//! The defaults are the components' own (`ReassemblyConfig`, `HttpConfig`, `DecodeConfig`,
//! `CausalityConfig`); this struct gathers them so that a user sees and sets them together.

use tapspan_capture::DecodeConfig;

use crate::causality::CausalityConfig;
use crate::pipeline::PipelineConfig;
use crate::protocols::dns::DnsConfig;
use crate::protocols::http1::HttpConfig;
use crate::protocols::http2::Http2Config;
use crate::reassembly::ReassemblyConfig;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Connections tracked at once; beyond it the least recently active are evicted (their
    /// open exchanges end with `error.type` = `evicted`). Counted: connections evicted.
    pub max_connections: usize,
    /// Out-of-order bytes held per connection direction while a hole may still fill (each held
    /// segment counts `HELD_PIECE_OVERHEAD` bytes of bookkeeping too); beyond it the hole is
    /// skipped as a gap. Counted: holes skipped at the held-bytes cap.
    pub max_held_bytes_per_direction: usize,
    /// Out-of-order bytes held across all connections (same degradation, on the connection
    /// whose segment crossed it).
    pub max_held_bytes_total: usize,
    /// Bytes of one HTTP head; a longer head keeps its start line and ends with `error.type` =
    /// `header_too_large`. Counted: heads over the size cap.
    pub max_head_bytes: usize,
    /// Bytes of HTTP heads split over segments and waiting for their end, across all
    /// connections; the head that would cross it is dropped, keeping its start line if that has
    /// arrived, and its exchange ends with `error.type` = `head_buffers_full`. Counted: heads
    /// dropped at the total head cap.
    pub max_head_bytes_total: usize,
    /// Requests awaiting a response on one connection (pipelined); beyond it the oldest is
    /// given up with `error.type` = `no_response`. Counted: unanswered requests given up.
    pub max_pending_requests: usize,
    /// HTTP/2 streams open on one connection; beyond it the oldest is given up with
    /// `error.type` = `stream_overflow`. Each holds at most one decoded header list (64 KiB).
    /// Counted: HTTP/2 streams given up.
    pub max_http2_streams: usize,
    /// Decoded octets of one HTTP/2 header list (RFC 7541 §4.1's size); the fields past it are
    /// read, to keep the table right, but dropped (not yet counted).
    pub max_http2_header_list_bytes: usize,
    /// Octets of each direction's HPACK table; a peer announcing more is held to it, and the
    /// entries that then go early are unknown, never wrong: fields that refer to them are
    /// counted as header fields unknown.
    pub max_http2_table_bytes: usize,
    /// Exchanges held by the causality builder while their traces may change; beyond it the
    /// oldest are decided early. Counted: decided early at the memory cap.
    pub max_pending_exchanges: usize,
    /// Bytes of IP fragments held for reassembly across all datagrams; beyond it the oldest
    /// datagram is dropped. Counted: fragment datagrams evicted.
    pub max_fragment_bytes: usize,
    /// IP datagrams being reassembled at once (same degradation).
    pub max_fragment_datagrams: usize,
    /// Exchanges analysed at most for the report (`--report`, `--analysis-json`,
    /// `--summary`); later ones are counted and named in the report, not analysed. None: every
    /// one (the analysis's memory is bounded by `max_analysis_held_calls`, not by this).
    pub max_analysed_calls: Option<usize>,
    /// Exchanges the analysis holds while their traces may still get spans; beyond it, the
    /// traces that stopped getting spans are folded into the aggregates and their calls
    /// dropped.
    pub max_analysis_held_calls: usize,
    /// DNS queries over UDP awaiting a response, all clients together; beyond it the oldest
    /// is given up with `error.type` = `pending_overflow`. (Over TCP, a connection's queries
    /// are held to `max_pending_requests`.) Counted: DNS queries given up at the pending cap.
    pub max_pending_dns_queries: usize,
    /// Spans held by sampling while traces whose ids came from the wire wait for the rest of
    /// their pieces (only with rules or tail sampling); beyond it the oldest traces are decided
    /// early. Counted: decided early at the held-spans cap.
    pub max_sampling_spans: usize,
    /// RED metric series (`--metrics-file`, `--metrics-addr`), all families together; beyond
    /// it a new series' samples go to its family's `otel_metric_overflow="true"` series.
    pub max_metric_series: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        let reassembly = ReassemblyConfig::default();
        let http = HttpConfig::default();
        let decode = DecodeConfig::default();
        let causality = CausalityConfig::default();
        MemoryLimits {
            max_connections: reassembly.max_connections,
            max_held_bytes_per_direction: reassembly.max_held_bytes_per_direction,
            max_held_bytes_total: reassembly.max_held_bytes_total,
            max_head_bytes: http.max_head_bytes,
            max_head_bytes_total: http.max_head_bytes_total,
            max_pending_requests: http.max_pending_requests,
            max_http2_streams: Http2Config::default().max_streams,
            max_http2_header_list_bytes: Http2Config::default().max_header_list_bytes,
            max_http2_table_bytes: Http2Config::default().max_table_bytes,
            max_pending_exchanges: causality.max_pending,
            max_fragment_bytes: decode.defrag_max_bytes,
            max_fragment_datagrams: decode.defrag_max_datagrams,
            max_analysed_calls: None,
            max_analysis_held_calls: crate::analysis::AnalysisConfig::default().hold_calls,
            max_sampling_spans: crate::sampling::SamplingConfig::default().max_held_spans,
            max_pending_dns_queries: DnsConfig::default().max_pending,
            max_metric_series: crate::metrics::DEFAULT_MAX_SERIES,
        }
    }
}

impl MemoryLimits {
    /// Sets the pipeline's caps (decode, reassembly, HTTP/1.x, HTTP/2, Redis, PostgreSQL, DNS). A cap of 0 would make its structure
    /// useless rather than small, so counts are at least 1.
    pub fn apply_to_pipeline(&self, config: &mut PipelineConfig) {
        config.reassembly.max_connections = self.max_connections.max(1);
        config.reassembly.max_held_bytes_per_direction = self.max_held_bytes_per_direction;
        config.reassembly.max_held_bytes_total = self.max_held_bytes_total;
        config.protocols.http.max_head_bytes = self.max_head_bytes.max(1);
        config.protocols.http.max_head_bytes_total = self.max_head_bytes_total;
        config.protocols.http.max_pending_requests = self.max_pending_requests.max(1);
        config.protocols.http2.max_streams = self.max_http2_streams.max(1);
        config.protocols.http2.max_header_list_bytes = self.max_http2_header_list_bytes;
        config.protocols.http2.max_table_bytes = self.max_http2_table_bytes;
        config.protocols.redis.max_pending = self.max_pending_requests.max(1);
        config.protocols.postgres.max_pending = self.max_pending_requests.max(1);
        config.protocols.dns.max_pending_per_connection = self.max_pending_requests.max(1);
        config.protocols.dns.max_pending = self.max_pending_dns_queries.max(1);
        config.decode.defrag_max_bytes = self.max_fragment_bytes;
        config.decode.defrag_max_datagrams = self.max_fragment_datagrams.max(1);
    }

    pub fn apply_to_causality(&self, config: &mut CausalityConfig) {
        config.max_pending = self.max_pending_exchanges.max(1);
    }

    pub fn apply_to_sampling(&self, config: &mut crate::sampling::SamplingConfig) {
        config.max_held_spans = self.max_sampling_spans.max(1);
    }

    pub fn analysis_config(&self) -> crate::analysis::AnalysisConfig {
        crate::analysis::AnalysisConfig {
            max_calls: self.max_analysed_calls.unwrap_or(usize::MAX),
            hold_calls: self.max_analysis_held_calls.max(1),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        // The README's Limits table; a component default that drifts from it fails here.
        assert_eq!(
            MemoryLimits::default(),
            MemoryLimits {
                max_connections: 262_144,
                max_held_bytes_per_direction: 1 << 20,
                max_held_bytes_total: 256 << 20,
                max_head_bytes: 64 * 1024,
                max_head_bytes_total: 64 << 20,
                max_pending_requests: 128,
                max_http2_streams: 1024,
                max_http2_header_list_bytes: 64 * 1024,
                max_http2_table_bytes: 64 * 1024,
                max_pending_exchanges: 500_000,
                max_fragment_bytes: 16 << 20,
                max_fragment_datagrams: 4096,
                max_analysed_calls: None,
                max_analysis_held_calls: 100_000,
                max_sampling_spans: 100_000,
                max_pending_dns_queries: 65_536,
                max_metric_series: 2000,
            }
        );
        let mut pipeline = PipelineConfig::default();
        MemoryLimits::default().apply_to_pipeline(&mut pipeline);
        assert_eq!(pipeline.protocols.http.max_head_bytes, 64 * 1024);
        assert_eq!(pipeline.decode.defrag_max_datagrams, 4096);
        assert_eq!(pipeline.protocols.dns.max_pending, 65_536);
        assert_eq!(pipeline.protocols.dns.max_pending_per_connection, 128);
    }

    #[test]
    fn zero_counts_become_one() {
        let limits = MemoryLimits {
            max_connections: 0,
            max_pending_requests: 0,
            max_pending_exchanges: 0,
            max_pending_dns_queries: 0,
            ..Default::default()
        };
        let mut pipeline = PipelineConfig::default();
        let mut causality = CausalityConfig::default();
        limits.apply_to_pipeline(&mut pipeline);
        limits.apply_to_causality(&mut causality);
        assert_eq!(pipeline.reassembly.max_connections, 1);
        assert_eq!(pipeline.protocols.http.max_pending_requests, 1);
        assert_eq!(pipeline.protocols.dns.max_pending, 1);
        assert_eq!(pipeline.protocols.dns.max_pending_per_connection, 1);
        assert_eq!(causality.max_pending, 1);
    }
}
