//! The seam's side shared by decoders written one connection at a time (Redis, PostgreSQL, TLS):
//! a [`ConnDecoder`] is fed one connection's bytes, losses and end, and emits its protocol's
//! records; [`PerConnection`] keeps one per claimed connection, routes the stream events to it
//! and turns its records into [`Exchange`]s with their endpoints, depth and anchor.
//!
//! Anchor (DESIGN.md "Identity"): a decoder that counts stream offsets (Redis, PostgreSQL) gives
//! each record the client-stream offset of its request's first byte, and the anchor is that
//! byte's TCP sequence number: the sequence number of any client segment minus its offset,
//! plus the request's offset (mod 2^32), exact for pipelined requests sharing a segment and for
//! a connection picked up mid-stream (offset 0 is the first byte seen). For one that does not
//! (TLS, DNS over TCP), it is the sequence number of the client segment its request began in
//! (found by the request's start time), plus how many earlier exchanges began in that same
//! segment. Either way two taps of the same traffic agree, and two exchanges of one
//! connection never share an anchor (a request is at least one byte).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use tapspan_capture::Timestamp;

use super::{Call, Exchange, Instants, PayloadTokens, ProtocolStats, StreamDecoder};
use crate::reassembly::{ConnId, Direction, OpenHow, StreamEvent};

/// Client segments remembered per connection to anchor requests still waiting for an answer
/// (16 bytes each, for as many connections as reassembly tracks); beyond it the oldest are
/// forgotten, and requests that began in them get a fallback anchor, unique on the connection.
const MAX_SEGMENTS: usize = 32;

/// What a record becomes, besides the endpoints the connection knows.
pub struct Converted {
    pub t: Instants,
    /// Offset in the client's stream of the request's first byte, if the decoder counts them.
    pub request_offset: Option<u64>,
    /// Why the exchange is incomplete (`error.type`), if it is.
    pub error: Option<&'static str>,
    pub tokens: PayloadTokens,
    pub call: Call,
}

/// One connection's decoder of a protocol.
pub trait ConnDecoder: Send + Sized + 'static {
    type Config: Clone + Send + 'static;
    /// What the decoder emits: one request and its answer (or why there is none).
    type Record: Send;
    /// The protocol's counters (a field of [`ProtocolStats`]).
    type Stats: Clone + Default + Send + 'static;

    /// `from_start`: the connection's handshake was seen, so its first bytes will be.
    fn open(config: &Self::Config, from_start: bool) -> Self;
    fn data(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<Self::Record>);
    /// [`ConnDecoder::data`] with the stream offset of `bytes[0]` in `dir`, for a decoder that
    /// reports its requests' offsets ([`Converted::request_offset`]).
    fn data_at(
        &mut self,
        dir: Direction,
        (ts, _offset): (u64, u64),
        bytes: &[u8],
        out: &mut Vec<Self::Record>,
    ) {
        self.data(dir, ts, bytes, out);
    }
    /// Bytes were lost in `dir` (or cut by the snap length): what was in flight is cut.
    fn gap(&mut self, dir: Direction, ts: u64, out: &mut Vec<Self::Record>);
    /// The connection ended: what is still in flight is emitted cut.
    fn finish(&mut self, ts: u64, out: &mut Vec<Self::Record>);
    fn convert(record: Self::Record) -> Converted;
    /// Adds this connection's own counts to `into`.
    fn tally(&self, into: &mut Self::Stats);
    /// Writes `totals` (connections, exchanges and the tallies) into its field of `into`.
    fn publish(totals: &Self::Stats, counts: &StreamCounts, into: &mut ProtocolStats);
}

/// What [`PerConnection`] counts for every protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub connections: u64,
    pub exchanges: u64,
    pub incomplete_exchanges: u64,
}

/// Converts capture time to the decoders' nanoseconds and back.
fn ns(ts: Timestamp) -> u64 {
    ts.0
}

struct Conn<D> {
    client: SocketAddr,
    server: SocketAddr,
    decoder: D,
    depth: u32,
    /// Client segments (capture time, sequence number) not yet older than every waiting request.
    segments: VecDeque<(u64, u32)>,
    /// The segment the last anchor was taken from, and how many exchanges it anchored.
    last_anchor: Option<(u32, u32)>,
    /// The client stream's sequence number minus its offset (mod 2^32), once a byte is seen.
    client_base: Option<u32>,
}

impl<D: ConnDecoder> Conn<D> {
    /// The anchor of an exchange whose request began at `start`, at client stream offset
    /// `offset` if known (see the module doc).
    fn anchor(&mut self, start: u64, offset: Option<u64>) -> u32 {
        if let (Some(base), Some(offset)) = (self.client_base, offset) {
            // Sequence numbers are offsets mod 2^32 (RFC 9293 §3.4): the truncation is the wrap.
            return base.wrapping_add(offset as u32);
        }
        while self.segments.len() > 1 && self.segments[1].0 <= start {
            self.segments.pop_front();
        }
        let seg = match self.segments.front() {
            Some(&(ts, seq)) if ts <= start => seq,
            // Forgotten (or a request with no client segment): still unique on the connection.
            _ => 0x8000_0000 ^ self.depth,
        };
        let k = match self.last_anchor {
            Some((s, k)) if s == seg => k + 1,
            _ => 0,
        };
        self.last_anchor = Some((seg, k));
        seg.wrapping_add(k)
    }
}

/// A [`StreamDecoder`] made of one `D` per claimed connection.
pub struct PerConnection<D: ConnDecoder> {
    config: D::Config,
    claims: fn(Direction, &[u8]) -> bool,
    conns: HashMap<ConnId, Conn<D>>,
    /// Tallies of connections already closed.
    closed: D::Stats,
    counts: StreamCounts,
    records: Vec<D::Record>,
}

impl<D: ConnDecoder> PerConnection<D> {
    /// `claims`: whether a connection whose first payload bytes were sent in `dir` is `D`'s.
    pub fn new(config: D::Config, claims: fn(Direction, &[u8]) -> bool) -> Self {
        PerConnection {
            config,
            claims,
            conns: HashMap::new(),
            closed: D::Stats::default(),
            counts: StreamCounts::default(),
            records: Vec::new(),
        }
    }

    /// Emits the records the last call made; `gap`: that call was a loss (`Some(snapped)`),
    /// which is what cut them.
    fn emit(&mut self, id: ConnId, gap: Option<bool>, out: &mut dyn FnMut(Exchange)) {
        if self.records.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            self.records.clear();
            return;
        };
        for record in self.records.drain(..) {
            let c = D::convert(record);
            conn.depth += 1;
            let start = c.t.request_start.or(c.t.response_start).map_or(0, ns);
            let anchor_seq = conn.anchor(start, c.request_offset);
            self.counts.exchanges += 1;
            if c.error.is_some() {
                self.counts.incomplete_exchanges += 1;
            }
            out(Exchange {
                conn: id,
                client: conn.client,
                server: conn.server,
                depth: conn.depth,
                anchor_seq,
                t: c.t,
                gaps: u32::from(gap.is_some()),
                snapped: gap == Some(true),
                error: c.error,
                tokens: c.tokens,
                call: c.call,
            });
        }
    }
}

impl<D: ConnDecoder> StreamDecoder for PerConnection<D> {
    fn claims(
        &self,
        _client: SocketAddr,
        _server: SocketAddr,
        dir: Direction,
        first: &[u8],
    ) -> bool {
        (self.claims)(dir, first)
    }

    fn push(&mut self, ev: StreamEvent<'_>, out: &mut dyn FnMut(Exchange)) {
        match ev {
            StreamEvent::Open {
                conn,
                client,
                server,
                how,
                ..
            } => {
                self.counts.connections += 1;
                let decoder = D::open(&self.config, how == OpenHow::Handshake);
                self.conns.insert(
                    conn,
                    Conn {
                        client,
                        server,
                        decoder,
                        depth: 0,
                        segments: VecDeque::new(),
                        last_anchor: None,
                        client_base: None,
                    },
                );
            }
            StreamEvent::Data {
                conn,
                dir,
                offset,
                seq,
                ts,
                bytes,
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if dir == Direction::ClientToServer {
                    if c.segments.len() == MAX_SEGMENTS {
                        c.segments.pop_front();
                    }
                    c.segments.push_back((ns(ts), seq));
                    c.client_base = Some(seq.wrapping_sub(offset as u32));
                }
                c.decoder
                    .data_at(dir, (ns(ts), offset), bytes, &mut self.records);
                self.emit(conn, None, out);
            }
            StreamEvent::Gap {
                conn,
                dir,
                snapped,
                ts,
                ..
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.decoder.gap(dir, ns(ts), &mut self.records);
                self.emit(conn, Some(snapped), out);
            }
            StreamEvent::HalfClose { .. } => {}
            StreamEvent::Close { conn, ts, .. } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.decoder.finish(ns(ts), &mut self.records);
                self.emit(conn, None, out);
                if let Some(c) = self.conns.remove(&conn) {
                    c.decoder.tally(&mut self.closed);
                }
            }
        }
    }

    fn stats(&self, into: &mut ProtocolStats) {
        let mut totals = self.closed.clone();
        for c in self.conns.values() {
            c.decoder.tally(&mut totals);
        }
        D::publish(&totals, &self.counts, into);
    }

    fn active_connections(&self) -> usize {
        self.conns.len()
    }
}

/// The decoders' reasons for a request without an answer, as `error.type` (HTTP's names where
/// HTTP has the same case).
pub fn cut_reason(why: &str) -> &'static str {
    match why {
        "gap" => "capture_gap",
        "pending_overflow" => "pending_overflow",
        _ => "no_response",
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tapspan_capture::Timestamp;

    use super::{ConnDecoder, PerConnection};
    use crate::protocols::dns::stream::DnsConn;
    use crate::protocols::postgres::PgConn;
    use crate::protocols::redis::RedisConn;
    use crate::protocols::{Exchange, ProtocolStats, StreamDecoder};
    use crate::reassembly::{CloseReason, ConnId, Direction, OpenHow, StreamEvent};

    fn data(dir: Direction, (offset, seq): (u64, u32), ts: u64, bytes: &[u8]) -> StreamEvent<'_> {
        StreamEvent::Data {
            conn: ConnId(1),
            dir,
            offset,
            seq,
            ts: Timestamp(ts),
            bytes,
        }
    }

    fn open(how: OpenHow, port: u16) -> StreamEvent<'static> {
        StreamEvent::Open {
            conn: ConnId(1),
            client: SocketAddr::from(([10, 0, 0, 1], 40000)),
            server: SocketAddr::from(([10, 0, 0, 2], port)),
            how,
            ts: Timestamp(1),
        }
    }

    fn close() -> StreamEvent<'static> {
        StreamEvent::Close {
            conn: ConnId(1),
            why: CloseReason::Fin,
            ts: Timestamp(40),
        }
    }

    /// The anchors of the exchanges `events` make, fed to a `D` per connection.
    fn anchors<D: ConnDecoder>(config: D::Config, events: Vec<StreamEvent<'_>>) -> Vec<u32> {
        let mut dec = PerConnection::<D>::new(config, |_, _| true);
        let mut out: Vec<Exchange> = Vec::new();
        for ev in events {
            dec.push(ev, &mut |x| out.push(x));
        }
        out.iter().map(|x| x.anchor_seq).collect()
    }

    const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";

    #[test]
    fn pipelined_commands_are_anchored_at_their_own_first_byte() {
        // Picked up mid-stream: the segment's first bytes end a command sent before; the
        // first whole one begins at its `*`, 3 bytes in, the second 20 bytes later.
        let seg = [&b"a\r\n"[..], GET, GET].concat();
        // Sequence numbers wrap (RFC 9293 §3.4): so do anchors.
        let seq = u32::MAX - 10;
        let got = anchors::<RedisConn>(
            Default::default(),
            vec![
                open(OpenHow::Midstream, 6379),
                data(Direction::ClientToServer, (0, seq), 10, &seg),
                data(
                    Direction::ClientToServer,
                    (43, seq.wrapping_add(43)),
                    20,
                    GET,
                ),
                close(),
            ],
        );
        assert_eq!(
            got,
            [
                seq.wrapping_add(3),
                seq.wrapping_add(23),
                seq.wrapping_add(43)
            ]
        );
        // PostgreSQL: two simple queries in one segment, then an extended batch whose
        // Execute is anchored at its Parse, the batch's first byte.
        let q = |sql: &str| {
            let mut m = vec![b'Q'];
            m.extend_from_slice(&(4 + sql.len() as u32 + 1).to_be_bytes());
            m.extend_from_slice(sql.as_bytes());
            m.push(0);
            m
        };
        let msg = |tag: u8, body: &[u8]| {
            let mut m = vec![tag];
            m.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
            m.extend_from_slice(body);
            m
        };
        let (q1, q2) = (q("SELECT 1"), q("SELECT 2"));
        let batch = [
            msg(b'P', b"\0SELECT 3\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        let two = [&q1[..], &q2].concat();
        let got = anchors::<PgConn>(
            Default::default(),
            vec![
                open(OpenHow::Midstream, 5432),
                data(Direction::ClientToServer, (0, 9000), 10, &two),
                data(Direction::ClientToServer, (28, 9028), 20, &batch),
                close(),
            ],
        );
        assert_eq!((q1.len(), q2.len()), (14, 14));
        assert_eq!(got, [9000, 9014, 9028]);
        // DNS over TCP: two queries in one segment, the second split across the next; each is
        // anchored at its length prefix.
        let query = |id: u8| {
            let mut m = vec![0, 0, 0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
            let len = (m.len() - 2) as u16;
            m[..2].copy_from_slice(&len.to_be_bytes());
            m
        };
        let stream = [query(1), query(2), query(3)].concat();
        let each = query(1).len() as u32;
        let cut = 2 * each as usize + 5;
        let got = anchors::<DnsConn>(
            Default::default(),
            vec![
                open(OpenHow::Handshake, 53),
                data(Direction::ClientToServer, (0, 500), 10, &stream[..cut]),
                data(
                    Direction::ClientToServer,
                    (cut as u64, 500 + cut as u32),
                    20,
                    &stream[cut..],
                ),
                close(),
            ],
        );
        assert_eq!(got, [500, 500 + each, 500 + 2 * each]);
    }

    #[test]
    fn pipelined_requests_get_distinct_anchors_and_cut_ones_are_counted() {
        let mut dec = PerConnection::<RedisConn>::new(Default::default(), |_, _| true);
        let mut out: Vec<Exchange> = Vec::new();
        let mut push = |dec: &mut PerConnection<RedisConn>, ev| dec.push(ev, &mut |x| out.push(x));
        push(
            &mut dec,
            StreamEvent::Open {
                conn: ConnId(1),
                client: SocketAddr::from(([10, 0, 0, 1], 40000)),
                server: SocketAddr::from(([10, 0, 0, 2], 6379)),
                how: OpenHow::Handshake,
                ts: Timestamp(1),
            },
        );
        let get = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
        let two = [&get[..], &get[..]].concat();
        push(
            &mut dec,
            data(Direction::ClientToServer, (0, 1000), 10, &two),
        );
        push(
            &mut dec,
            data(Direction::ClientToServer, (40, 1040), 20, get),
        );
        push(
            &mut dec,
            data(
                Direction::ServerToClient,
                (0, 5000),
                30,
                b"$1\r\nx\r\n$-1\r\n",
            ),
        );
        push(
            &mut dec,
            StreamEvent::Close {
                conn: ConnId(1),
                why: CloseReason::Fin,
                ts: Timestamp(40),
            },
        );
        let anchors: Vec<u32> = out.iter().map(|x| x.anchor_seq).collect();
        // Each command's own first byte: the second of a pipelined pair is 20 bytes on.
        assert_eq!(anchors, [1000, 1020, 1040]);
        let depths: Vec<u32> = out.iter().map(|x| x.depth).collect();
        assert_eq!(depths, [1, 2, 3]);
        assert_eq!(out[2].error, Some("no_response"));
        let mut stats = ProtocolStats::default();
        dec.stats(&mut stats);
        assert_eq!(
            (
                stats.redis.connections,
                stats.redis.exchanges,
                stats.redis.incomplete_exchanges
            ),
            (1, 3, 1)
        );
        assert_eq!(dec.active_connections(), 0);
    }
}
