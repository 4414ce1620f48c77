//! TLS handshakes on the protocol seam: claims connections that open with a ClientHello, and
//! turns the handshake into one [`Exchange`] (see [`crate::protocols::conns`]). What follows
//! the handshake is encrypted: the connection stays claimed, and nothing more is read.

use tapspan_capture::Timestamp;

use super::{TlsConn, TlsHandshake};
use crate::protocols::conns::{ConnDecoder, Converted, PerConnection, StreamCounts};
use crate::protocols::{Call, Instants, PayloadTokens, Protocol, ProtocolStats};
use crate::reassembly::{Direction, Role};

/// TLS in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "tls",
    server_ports: &[443, 8443, 993, 995, 465, 636],
    sniff,
    stream: |config| Box::new(PerConnection::<TlsConn>::new(config.tls.clone(), claims)),
};

fn sniff(first: &[u8]) -> Option<Role> {
    TlsConn::sniff(first).then_some(Role::Client)
}

fn claims(dir: Direction, first: &[u8]) -> bool {
    dir == Direction::ClientToServer && TlsConn::sniff(first)
}

/// TLS has no settings yet: its one cap, the handshake bytes kept per direction, is
/// [`super::MAX_HELLO`].
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsCounters {
    pub connections: u64,
    pub handshakes: u64,
    pub incomplete_handshakes: u64,
}

crate::counters::describe_counters!("tls", TlsCounters {
    connections: "Connections claimed by the TLS decoder.",
    handshakes: "Handshakes read (complete, failed or cut short).",
    incomplete_handshakes [Metric]: "Handshakes cut short (gap, close, not TLS after all).",
});

impl ConnDecoder for TlsConn {
    type Config = TlsConfig;
    type Record = TlsHandshake;
    type Stats = TlsCounters;

    fn open(_config: &TlsConfig, _from_start: bool) -> Self {
        TlsConn::new()
    }

    fn data(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<TlsHandshake>) {
        self.push(dir, ts, bytes, out);
    }

    fn gap(&mut self, _dir: Direction, ts: u64, out: &mut Vec<TlsHandshake>) {
        TlsConn::gap(self, ts, out);
    }

    fn finish(&mut self, ts: u64, out: &mut Vec<TlsHandshake>) {
        TlsConn::finish(self, ts, out);
    }

    fn convert(hs: TlsHandshake) -> Converted {
        let error = match hs.cut {
            Some("gap") => Some("capture_gap"),
            other => other,
        };
        Converted {
            t: Instants {
                request_start: Some(Timestamp(hs.start)),
                request_end: Some(Timestamp(hs.start)),
                response_start: hs.response_start.map(Timestamp),
                response_end: Some(Timestamp(hs.end)),
                closed: None,
            },
            request_offset: None,
            error,
            tokens: PayloadTokens::default(),
            call: Call::Tls(hs),
        }
    }

    fn tally(&self, _into: &mut TlsCounters) {}

    fn publish(_totals: &TlsCounters, counts: &StreamCounts, into: &mut ProtocolStats) {
        into.tls = TlsCounters {
            connections: counts.connections,
            handshakes: counts.exchanges,
            incomplete_handshakes: counts.incomplete_exchanges,
        };
    }
}
