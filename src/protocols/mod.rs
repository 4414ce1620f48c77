//! The protocol seam: reassembled TCP streams in, exchanges out.
//!
//! A protocol is a folder here with a [`StreamDecoder`] and one line in [`REGISTRY`]. The
//! registry gives reassembly its role hints ([`role_hints`]: conventional server ports, and who
//! sends a stream's first bytes) and builds one decoder per protocol for a pipeline; [`Decoders`]
//! routes each connection's [`StreamEvent`]s to the decoder that claimed it.
//!
//! Claiming: a connection is offered, at its first payload in stream order, to each decoder in
//! registry order; the first whose [`StreamDecoder::claims`] says yes gets all its events, from
//! `Open` to `Close`. The last entry is the catch-all (HTTP/1.x, which resynchronises on streams
//! picked up mid-message and counts what it cannot read); it also gets connections that end or
//! lose bytes before any payload arrives. A claim is never revised.
//!
//! Exchanges: decoders emit [`Exchange`], which is what causality consumes: endpoints, instants,
//! errors and payload tokens common to every protocol, and the protocol's own part as a
//! [`Call`]. Request/response protocols keep their own per-connection queue for pipelining.
//!
//! Datagrams: [`Decoders::datagram`] offers each UDP datagram to DNS ([`dns::stream::DnsUdp`],
//! the one datagram protocol), which claims it by port or content; [`Decoders::advance_to`] and
//! [`Decoders::finish`] give it capture time, for queries never answered. Nothing here reads
//! the clock or the wall time.

pub mod args_hash;
pub mod conns;
pub mod dns;
pub mod exchange;
pub mod http1;
pub mod http2;
pub mod postgres;
pub mod redis;
pub mod tls;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

use crate::counters::{keyed, Counters};
use crate::reassembly::{ConnId, Direction, OpenHow, Role, RoleHints, StreamEvent};
use dns::stream::{DnsCounters, DnsUdp};
use dns::DnsConfig;
use http1::{HttpConfig, HttpStats};
use http2::{Http2Config, Http2Stats};
use postgres::stream::{PostgresConfig, PostgresCounters};
use redis::stream::{RedisConfig, RedisCounters};
use tls::stream::{TlsConfig, TlsCounters};

pub use exchange::{Call, Exchange, HttpCall, Instants, PayloadTokens};

/// Every protocol registered, in claiming order; the last one is the catch-all.
pub const REGISTRY: &[Protocol] = &[
    tls::stream::PROTOCOL,
    redis::stream::PROTOCOL,
    postgres::stream::PROTOCOL,
    dns::stream::PROTOCOL,
    http2::PROTOCOL,
    http1::PROTOCOL,
];

/// One protocol's entry in the registry.
pub struct Protocol {
    pub name: &'static str,
    /// Ports its servers conventionally listen on: a role hint before any payload, never a claim.
    pub server_ports: &'static [u16],
    /// Who sent bytes that start like this (a request: the client; a response: the server).
    pub sniff: fn(&[u8]) -> Option<Role>,
    /// Builds the protocol's stream decoder for one pipeline.
    pub stream: fn(&ProtocolConfig) -> Box<dyn StreamDecoder>,
}

/// Each protocol's settings (a protocol with settings adds its field).
#[derive(Clone, Debug, Default)]
pub struct ProtocolConfig {
    /// HTTP/1.x's, whose header policy HTTP/2 applies too.
    pub http: HttpConfig,
    pub http2: Http2Config,
    pub redis: RedisConfig,
    pub postgres: PostgresConfig,
    pub tls: TlsConfig,
    pub dns: DnsConfig,
}

/// Each protocol's counters (a protocol with counters adds its field).
#[derive(Clone, Debug, Default)]
pub struct ProtocolStats {
    pub http: HttpStats,
    pub http2: Http2Stats,
    pub redis: RedisCounters,
    pub postgres: PostgresCounters,
    pub tls: TlsCounters,
    pub dns: DnsCounters,
}

impl ProtocolStats {
    /// Exchanges made by every protocol.
    pub fn exchanges(&self) -> u64 {
        self.http.exchanges
            + self.http2.exchanges
            + self.redis.exchanges
            + self.postgres.exchanges
            + self.tls.handshakes
            + self.dns.exchanges
    }

    /// Adds `other`'s counters to these (a live run's workers).
    pub fn add(&mut self, other: &Self) {
        self.http.add(&other.http);
        self.http2.add(&other.http2);
        self.redis.add(&other.redis);
        self.postgres.add(&other.postgres);
        self.tls.add(&other.tls);
        self.dns.add(&other.dns);
    }

    /// Every protocol's counters, keyed `set.name` (see [`crate::counters::keyed`]).
    pub fn keyed(&self) -> impl Iterator<Item = (String, crate::counters::Counter)> {
        keyed(&self.http)
            .chain(keyed(&self.http2))
            .chain(keyed(&self.redis))
            .chain(keyed(&self.postgres))
            .chain(keyed(&self.tls))
            .chain(keyed(&self.dns))
    }
}

/// A protocol decoder over reassembled TCP streams. One value serves every connection it
/// claimed in a pipeline, keeping per-connection state keyed by [`ConnId`]; its memory is capped
/// by its own configuration.
pub trait StreamDecoder: Send {
    /// Whether this decoder takes a connection, from its endpoints and the first payload bytes
    /// seen in stream order (sent in `dir`). Asked once per connection, before any event.
    fn claims(&self, client: SocketAddr, server: SocketAddr, dir: Direction, first: &[u8]) -> bool;
    /// One event of a claimed connection: `Open` first, `Close` last (after which the
    /// connection is forgotten). Complete exchanges go to `out`; an exchange cut short (gap,
    /// reset, close, capture end) is still emitted, with its error.
    fn push(&mut self, ev: StreamEvent<'_>, out: &mut dyn FnMut(Exchange));
    /// Copies this decoder's counters into its field of `into`.
    fn stats(&self, into: &mut ProtocolStats);
    /// Connections tracked now.
    fn active_connections(&self) -> usize;
}

/// Role hints for reassembly from every registered protocol.
pub fn role_hints() -> RoleHints {
    RoleHints {
        is_server_port: |port| REGISTRY.iter().any(|p| p.server_ports.contains(&port)),
        first_payload: |first| REGISTRY.iter().find_map(|p| (p.sniff)(first)),
    }
}

/// A connection opened but not yet claimed: its `Open`, held until its first payload.
struct Unclaimed {
    client: SocketAddr,
    server: SocketAddr,
    how: OpenHow,
    ts: tapspan_capture::Timestamp,
}

enum Owner {
    Unclaimed(Unclaimed),
    Decoder(usize),
}

/// Connection ids are small sequential integers: a multiplicative hash spreads them well and
/// costs one instruction per lookup (one lookup per stream event). They are numbered here, in
/// order, so a capture cannot choose them to collide.
#[derive(Default)]
pub(crate) struct ConnIdHasher(u64);

/// A map keyed by connection id, hashed with [`ConnIdHasher`].
pub(crate) type ConnIdMap<V> = HashMap<ConnId, V, BuildHasherDefault<ConnIdHasher>>;

impl Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Every registered decoder of one pipeline, and which of them owns each connection.
pub struct Decoders {
    decoders: Vec<Box<dyn StreamDecoder>>,
    dns_udp: DnsUdp,
    owners: ConnIdMap<Owner>,
}

impl Decoders {
    pub fn new(config: &ProtocolConfig) -> Self {
        Decoders {
            decoders: REGISTRY.iter().map(|p| (p.stream)(config)).collect(),
            dns_udp: DnsUdp::new(&config.dns),
            owners: HashMap::default(),
        }
    }

    /// Routes one reassembly event to the decoder owning its connection.
    pub fn push(&mut self, ev: StreamEvent<'_>, out: &mut dyn FnMut(Exchange)) {
        let conn = match &ev {
            StreamEvent::Open {
                conn,
                client,
                server,
                how,
                ts,
            } => {
                let held = Unclaimed {
                    client: *client,
                    server: *server,
                    how: *how,
                    ts: *ts,
                };
                self.owners.insert(*conn, Owner::Unclaimed(held));
                return;
            }
            StreamEvent::Data { conn, .. }
            | StreamEvent::Gap { conn, .. }
            | StreamEvent::HalfClose { conn, .. }
            | StreamEvent::Close { conn, .. } => *conn,
        };
        let Some(owner) = self.owners.get_mut(&conn) else {
            return;
        };
        let index = match owner {
            Owner::Decoder(i) => *i,
            Owner::Unclaimed(held) => {
                let i = match &ev {
                    StreamEvent::Data { dir, bytes, .. } => self
                        .decoders
                        .iter()
                        .position(|d| d.claims(held.client, held.server, *dir, bytes))
                        .unwrap_or(self.decoders.len() - 1),
                    _ => self.decoders.len() - 1,
                };
                let open = StreamEvent::Open {
                    conn,
                    client: held.client,
                    server: held.server,
                    how: held.how,
                    ts: held.ts,
                };
                *owner = Owner::Decoder(i);
                self.decoders[i].push(open, out);
                i
            }
        };
        let closing = matches!(ev, StreamEvent::Close { .. });
        self.decoders[index].push(ev, out);
        if closing {
            self.owners.remove(&conn);
        }
    }

    /// One UDP datagram (DNS's, if it claims it).
    pub fn datagram(
        &mut self,
        d: &tapspan_capture::UdpDatagram<'_>,
        out: &mut dyn FnMut(Exchange),
    ) {
        self.dns_udp.datagram(d, out);
    }

    /// Capture time reached `ts`: datagram exchanges left unanswered that long end.
    pub fn advance_to(&mut self, ts: tapspan_capture::Timestamp, out: &mut dyn FnMut(Exchange)) {
        self.dns_udp.advance_to(ts, out);
    }

    /// End of input: pending datagram exchanges end unanswered.
    pub fn finish(&mut self, out: &mut dyn FnMut(Exchange)) {
        self.dns_udp.finish(out);
    }

    pub fn stats(&self) -> ProtocolStats {
        let mut stats = ProtocolStats::default();
        for d in &self.decoders {
            d.stats(&mut stats);
        }
        self.dns_udp.stats(&mut stats);
        stats
    }

    pub fn active_connections(&self) -> usize {
        self.decoders.iter().map(|d| d.active_connections()).sum()
    }
}
