//! PostgreSQL on the protocol seam: claims connections that open with a startup message (or an
//! SSL/GSS request), and turns each [`PgExchange`] into an [`Exchange`] (see
//! [`crate::protocols::conns`]).

use super::{PgConn, PgExchange, MAX_PENDING};
use crate::protocols::conns::{cut_reason, ConnDecoder, Converted, PerConnection, StreamCounts};
use crate::protocols::{Call, Instants, PayloadTokens, Protocol, ProtocolStats};
use crate::reassembly::{Direction, Role};

/// PostgreSQL in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "postgresql",
    server_ports: &[5432],
    sniff,
    stream: |config| {
        Box::new(PerConnection::<PgConn>::new(
            config.postgres.clone(),
            claims,
        ))
    },
};

fn sniff(first: &[u8]) -> Option<Role> {
    PgConn::sniff(first).then_some(Role::Client)
}

/// Only a connection seen from its startup: mid-stream, PostgreSQL's messages are too short
/// and plain to tell from other protocols'.
fn claims(dir: Direction, first: &[u8]) -> bool {
    dir == Direction::ClientToServer && PgConn::sniff(first)
}

#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// Queries awaiting their answer on one connection; beyond it the oldest is given up.
    pub max_pending: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            max_pending: MAX_PENDING,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostgresCounters {
    pub connections: u64,
    pub exchanges: u64,
    pub incomplete_exchanges: u64,
    pub encrypted_connections: u64,
    pub skipped_executes: u64,
    pub protocol_errors: u64,
}

crate::counters::describe_counters!("postgresql", PostgresCounters {
    connections: "Connections claimed by the PostgreSQL decoder.",
    exchanges: "Queries and Executes paired with their outcome (or cut short).",
    incomplete_exchanges [Metric]: "Queries without an outcome (gap, close, pending cap).",
    encrypted_connections: "Connections that switched to TLS (not decoded further).",
    skipped_executes: "Executes the server skipped after an error in their batch.",
    protocol_errors: "Messages that were not valid protocol 3.",
});

impl ConnDecoder for PgConn {
    type Config = PostgresConfig;
    type Record = PgExchange;
    type Stats = PostgresCounters;

    fn open(config: &PostgresConfig, from_start: bool) -> Self {
        PgConn::new(from_start).with_max_pending(config.max_pending)
    }

    fn data(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<PgExchange>) {
        self.push(dir, ts, bytes, out);
    }

    fn data_at(
        &mut self,
        dir: Direction,
        (ts, offset): (u64, u64),
        bytes: &[u8],
        out: &mut Vec<PgExchange>,
    ) {
        self.push_at(dir, ts, offset, bytes, out);
    }

    fn gap(&mut self, dir: Direction, _ts: u64, out: &mut Vec<PgExchange>) {
        PgConn::gap(self, dir, out);
    }

    fn finish(&mut self, _ts: u64, out: &mut Vec<PgExchange>) {
        PgConn::finish(self, out);
    }

    fn convert(mut x: PgExchange) -> Converted {
        Converted {
            t: Instants::of_ns(x.start, x.request_end, x.response_start, x.end),
            request_offset: Some(x.request_offset),
            error: x.cut.as_deref().map(cut_reason),
            tokens: PayloadTokens {
                request: std::mem::take(&mut x.tokens),
                ..PayloadTokens::default()
            },
            call: Call::Postgres(x),
        }
    }

    fn tally(&self, into: &mut PostgresCounters) {
        into.encrypted_connections += u64::from(self.stats.encrypted);
        into.skipped_executes += self.stats.skipped;
        into.protocol_errors += self.stats.protocol_errors;
    }

    fn publish(totals: &PostgresCounters, counts: &StreamCounts, into: &mut ProtocolStats) {
        into.postgres = PostgresCounters {
            connections: counts.connections,
            exchanges: counts.exchanges,
            incomplete_exchanges: counts.incomplete_exchanges,
            ..totals.clone()
        };
    }
}
