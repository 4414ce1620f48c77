//! The connection table: finds each segment's connection, decides who is client and server,
//! and ends connections (FIN both ways, RST, idle for `idle_timeout_ns` of capture time, or
//! evicted least-recently-active first when `max_connections` is reached).
//!
//! Roles: a SYN without ACK comes from the client, a SYN-ACK from the server. Without a handshake
//! the first payload decides (a protocol's request from the client, its response from the
//! server: [`RoleHints::first_payload`]), and before that the ports do (a protocol's
//! conventional server port, else a well-known or lower port, is the server's).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use tapspan_capture::{TcpSegment, Timestamp};

use super::half_stream::{HalfEvent, HalfLimits, HalfStream};
use super::seq::SeqNum;
use super::{CloseReason, ConnId, Direction, OpenHow, Role, RoleHints, StreamEvent};

#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    /// Connections tracked at once; beyond it the least recently active are evicted.
    pub max_connections: usize,
    /// Out-of-order bytes held per direction before the first hole is skipped (each held piece
    /// counts `half_stream::HELD_PIECE_OVERHEAD` bytes more than its payload).
    pub max_held_bytes_per_direction: usize,
    /// Out-of-order bytes held across all connections (counted the same way).
    pub max_held_bytes_total: usize,
    /// A connection with no packet for this long (capture time) is closed as idle.
    pub idle_timeout_ns: u64,
    /// A hole older than this (capture time) is skipped.
    pub hole_timeout_ns: u64,
    /// A reset connection is closed only if no data follows the RST for this long: endpoints
    /// ignore RSTs that fail their checks (RFC 5961 §3, RFC 2385 MD5), and so must we.
    pub rst_linger_ns: u64,
    /// Closed connections remembered (for `closed_linger_ns`) so that late retransmissions are
    /// not taken for new mid-stream connections.
    pub max_closed_remembered: usize,
    pub closed_linger_ns: u64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_connections: 262_144,
            max_held_bytes_per_direction: 1 << 20,
            max_held_bytes_total: 256 << 20,
            idle_timeout_ns: 300_000_000_000,
            hole_timeout_ns: 10_000_000_000,
            rst_linger_ns: 1_000_000_000,
            max_closed_remembered: 65_536,
            closed_linger_ns: 60_000_000_000,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ReassemblyStats {
    pub segments: u64,
    pub connections: u64,
    pub midstream_connections: u64,
    pub closed_fin: u64,
    pub closed_rst: u64,
    pub expired_idle: u64,
    pub evicted: u64,
    pub retransmitted_bytes: u64,
    pub overlap_conflict_bytes: u64,
    /// Out-of-order bytes beyond a direction's FIN, dropped when it ended.
    pub after_fin_bytes: u64,
    /// Holes skipped because out-of-order bytes reached a cap.
    pub holes_skipped_at_cap: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Bytes sent in captured segments but cut off them by the snap length.
    pub snapped_bytes: u64,
    pub peak_connections: u64,
    pub peak_held_bytes: u64,
    /// RSTs followed by more data (the endpoint ignored them).
    pub ignored_rsts: u64,
    /// Segments with data of already-closed connections (late retransmissions), dropped.
    pub late_segments: u64,
    /// Times capture time stepped back by more than the idle timeout (see `follow_clock`).
    pub clock_steps_back: u64,
    /// Held out-of-order pieces looked at (a work counter, see `half_stream`).
    pub held_pieces_visited: u64,
}

crate::counters::describe_counters!("tcp", ReassemblyStats {
    segments [Internal]: "TCP segments given to reassembly.",
    connections: "Connections seen.",
    midstream_connections: "Connections first seen mid-stream (no handshake).",
    closed_fin: "Connections closed by FIN.",
    closed_rst: "Connections closed by RST.",
    expired_idle: "Connections closed after the idle timeout.",
    evicted: "Connections evicted at the connection cap.",
    retransmitted_bytes: "Bytes seen again (retransmissions).",
    overlap_conflict_bytes: "Overlapping bytes that differ from those held.",
    after_fin_bytes: "Out-of-order bytes beyond a direction's FIN, dropped.",
    holes_skipped_at_cap: "Holes skipped because out-of-order bytes reached a cap.",
    out_of_order_segments: "Segments that came out of order.",
    gaps [Metric]: "Holes in TCP streams (bytes never captured).",
    gap_bytes: "Bytes missing in those holes.",
    snapped_bytes: "Bytes of captured segments that the snap length cut off.",
    peak_connections: "Most connections tracked at once.",
    peak_held_bytes: "Most out-of-order bytes held at once.",
    ignored_rsts: "RSTs followed by more data (the endpoint ignored them).",
    late_segments: "Segments with data of already-closed connections, dropped.",
    clock_steps_back: "Times capture time stepped back by more than the idle timeout.",
    held_pieces_visited [Internal]: "Held out-of-order pieces looked at.",
});

struct Conn {
    id: ConnId,
    client: SocketAddr,
    server: SocketAddr,
    how: OpenHow,
    opened: bool,
    /// Roles come from a SYN or a recognised first payload; until then they may still swap.
    roles_certain: bool,
    halves: [HalfStream; 2],
    last_ts: Timestamp,
    /// When a RST was seen; the connection closes if nothing follows it.
    reset_at: Option<Timestamp>,
}

/// Order-independent key of a connection's 4-tuple.
fn conn_key(a: SocketAddr, b: SocketAddr) -> ConnKey {
    if a <= b {
        ConnKey(a, b)
    } else {
        ConnKey(b, a)
    }
}

/// A connection's two addresses, lower first (see [`conn_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ConnKey(SocketAddr, SocketAddr);

impl Hash for ConnKey {
    /// Both addresses and ports in one write. The maps keep std's keyed SipHash, as a capture
    /// chooses its addresses (anyone can send packets that collide under an unkeyed hash); its
    /// cost is mostly per write, and the derived `Hash` of two `SocketAddr`s makes eight.
    /// Equal keys write equal bytes; a v4 address and its v6-mapped form merely share a hash.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut bytes = [0u8; 36];
        for (at, addr) in [(0, self.0), (18, self.1)] {
            let ip = match addr.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            bytes[at..at + 16].copy_from_slice(&ip.octets());
            bytes[at + 16..at + 18].copy_from_slice(&addr.port().to_le_bytes());
        }
        state.write(&bytes);
    }
}

/// Ports that are servers' (protocols' conventional ones, then the rest of the well-known
/// range) beat ephemeral ports.
fn server_likelihood(hints: &RoleHints, port: u16) -> u32 {
    if (hints.is_server_port)(port) {
        return 3;
    }
    match port {
        0..=1023 => 2,
        1024..=32767 => 1,
        _ => 0,
    }
}

pub struct Reassembler {
    config: ReassemblyConfig,
    hints: RoleHints,
    conns: HashMap<ConnKey, Conn>,
    next_id: u64,
    held_total: usize,
    last_sweep: Timestamp,
    now: Timestamp,
    /// Reset connections waiting out `rst_linger_ns`, oldest first.
    resets: VecDeque<(Timestamp, ConnKey)>,
    /// Recently closed connections, oldest first, and when each closed.
    closed_order: VecDeque<(Timestamp, ConnKey)>,
    closed: HashMap<ConnKey, Timestamp>,
    pub stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with no protocol knowledge (roles from handshakes and port ranges).
    pub fn new(config: ReassemblyConfig) -> Self {
        Self::with_hints(config, RoleHints::default())
    }

    /// A reassembler that tells roles apart with `hints` where no handshake was seen.
    pub fn with_hints(config: ReassemblyConfig, hints: RoleHints) -> Self {
        Reassembler {
            config,
            hints,
            conns: HashMap::new(),
            next_id: 0,
            held_total: 0,
            last_sweep: Timestamp(0),
            now: Timestamp(0),
            resets: VecDeque::new(),
            closed_order: VecDeque::new(),
            closed: HashMap::new(),
            stats: ReassemblyStats::default(),
        }
    }

    pub fn active_connections(&self) -> usize {
        self.conns.len()
    }
    pub fn held_bytes(&self) -> usize {
        self.held_total
    }

    pub fn push<F: FnMut(StreamEvent<'_>)>(&mut self, seg: &TcpSegment<'_>, out: &mut F) {
        self.stats.segments += 1;
        self.advance_to(seg.ts, out);

        let key = conn_key(seg.flow.src, seg.flow.dst);
        let flags = seg.flags;
        if !self.admit(key, seg, out) {
            return;
        }
        let held_cap = self.config.max_held_bytes_total;
        let limits = HalfLimits {
            max_held_bytes: self.config.max_held_bytes_per_direction,
            hole_timeout_ns: self.config.hole_timeout_ns,
        };
        let conn = self
            .conns
            .get_mut(&key)
            .expect("connection was just inserted");
        conn.last_ts = conn.last_ts.max(seg.ts);
        if conn.reset_at.is_some() && !flags.rst() && (!seg.payload.is_empty() || flags.fin()) {
            conn.reset_at = None;
            self.stats.ignored_rsts += 1;
        }

        if !conn.roles_certain {
            conn.learn_roles(seg, &self.hints);
        }
        let dir = if seg.flow.src == conn.client {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let id = conn.id;
        {
            let held_total = &mut self.held_total;
            let (client, server, how) = (conn.client, conn.server, conn.how);
            let opened = &mut conn.opened;
            let mut forward = |ev: HalfEvent<'_>, d: Direction| {
                if !*opened {
                    *opened = true;
                    out(StreamEvent::Open {
                        conn: id,
                        client,
                        server,
                        how,
                        ts: seg.ts,
                    });
                }
                out(half_to_stream(id, d, seg.ts, ev));
            };
            let half = &mut conn.halves[dir.index()];
            if flags.syn() {
                half.syn(SeqNum(seg.seq));
            }
            let data_seq = if flags.syn() {
                SeqNum(seg.seq).advance(1)
            } else {
                SeqNum(seg.seq)
            };
            if !flags.rst() {
                half.segment(
                    seg.ts,
                    data_seq,
                    flags.fin(),
                    &seg.payload,
                    u64::from(seg.snapped),
                    limits,
                    held_total,
                    held_cap,
                    &mut |ev| forward(ev, dir),
                );
            }
            if flags.ack() {
                let other = match dir {
                    Direction::ClientToServer => Direction::ServerToClient,
                    Direction::ServerToClient => Direction::ClientToServer,
                };
                conn.halves[other.index()].acked(seg.ts, SeqNum(seg.ack), held_total, &mut |ev| {
                    forward(ev, other)
                });
            }
        }
        self.stats.peak_held_bytes = self.stats.peak_held_bytes.max(self.held_total as u64);
        if flags.rst() {
            if conn.reset_at.is_none() {
                conn.reset_at = Some(seg.ts);
                self.resets.push_back((seg.ts, key));
            }
        } else if conn.halves[0].is_finished() && conn.halves[1].is_finished() {
            self.close(key, CloseReason::Fin, seg.ts, out);
        }
    }

    /// Capture time reached `ts` (a segment's, or a clock step with none): idle connections
    /// expire and resets that nothing followed close, as a segment at `ts` would make them.
    pub fn advance_to<F: FnMut(StreamEvent<'_>)>(&mut self, ts: Timestamp, out: &mut F) {
        self.follow_clock(ts);
        self.maybe_sweep(out);
        self.close_lingering_resets(out);
    }

    /// Finds or opens the connection `seg` belongs to (a new handshake on a tracked 4-tuple ends
    /// the old connection); false if the segment belongs to none and is dropped.
    fn admit<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        key: ConnKey,
        seg: &TcpSegment<'_>,
        out: &mut F,
    ) -> bool {
        let flags = seg.flags;
        if flags.syn() && !flags.ack() {
            self.closed.remove(&key);
            // A new handshake on a 4-tuple we still track: the old connection is over.
            if let Some(old) = self.conns.get(&key) {
                let same = old.client == seg.flow.src
                    && !old.halves[0].is_started()
                    && old.how == OpenHow::Handshake;
                if !same {
                    self.close(key, CloseReason::Fin, seg.ts, out);
                }
            }
        }
        if !self.conns.contains_key(&key) {
            if !flags.syn() && self.closed.contains_key(&key) {
                // A late retransmission of a connection that already ended (the last ACK of a
                // normal close carries no data and is not counted).
                if !seg.payload.is_empty() {
                    self.stats.late_segments += 1;
                }
                return false;
            }
            if seg.payload.is_empty() && !flags.syn() {
                // A lone ACK/FIN/RST of a connection we never saw (or already closed): nothing to
                // decode, and tracking it would let stray packets fill the table.
                return false;
            }
            self.open(key, seg, out);
        }
        true
    }

    /// End of input: every connection still open ends with `CaptureEnd`.
    pub fn finish<F: FnMut(StreamEvent<'_>)>(&mut self, out: &mut F) {
        let mut keys: Vec<_> = self.conns.iter().map(|(k, c)| (c.id, *k)).collect();
        keys.sort();
        let now = self.now;
        for (_, key) in keys {
            let (why, at) = match self.conns.get(&key).and_then(|c| c.reset_at) {
                Some(reset_at) => (CloseReason::Rst, reset_at),
                None => (CloseReason::CaptureEnd, now),
            };
            self.close(key, why, at, out);
        }
        self.resets.clear();
    }

    fn open<F: FnMut(StreamEvent<'_>)>(&mut self, key: ConnKey, seg: &TcpSegment<'_>, out: &mut F) {
        if self.conns.len() >= self.config.max_connections {
            self.evict_oldest(out);
        }
        let (src, dst) = (seg.flow.src, seg.flow.dst);
        let how = if seg.flags.syn() {
            OpenHow::Handshake
        } else {
            self.stats.midstream_connections += 1;
            OpenHow::Midstream
        };
        let src_is_client = server_likelihood(&self.hints, dst.port())
            >= server_likelihood(&self.hints, src.port());
        let (client, server) = if src_is_client {
            (src, dst)
        } else {
            (dst, src)
        };
        self.next_id += 1;
        self.stats.connections += 1;
        self.conns.insert(
            key,
            Conn {
                id: ConnId(self.next_id),
                client,
                server,
                how,
                opened: false,
                roles_certain: false,
                halves: Default::default(),
                last_ts: seg.ts,
                reset_at: None,
            },
        );
        self.stats.peak_connections = self.stats.peak_connections.max(self.conns.len() as u64);
    }

    fn close<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        key: ConnKey,
        why: CloseReason,
        ts: Timestamp,
        out: &mut F,
    ) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        let id = conn.id;
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let half = &mut conn.halves[dir.index()];
            let mut opened = conn.opened;
            let (client, server, how) = (conn.client, conn.server, conn.how);
            half.flush(ts, &mut self.held_total, &mut |ev| {
                if !opened {
                    opened = true;
                    out(StreamEvent::Open {
                        conn: id,
                        client,
                        server,
                        how,
                        ts,
                    });
                }
                out(half_to_stream(id, dir, ts, ev))
            });
            conn.opened = opened;
            let s = &half.stats;
            self.stats.retransmitted_bytes += s.retransmitted_bytes;
            self.stats.overlap_conflict_bytes += s.overlap_conflict_bytes;
            self.stats.after_fin_bytes += s.after_fin_bytes;
            self.stats.holes_skipped_at_cap += s.holes_skipped_at_cap;
            self.stats.held_pieces_visited += s.held_pieces_visited;
            self.stats.out_of_order_segments += s.out_of_order_segments;
            self.stats.gaps += s.gaps;
            self.stats.gap_bytes += s.gap_bytes;
            self.stats.snapped_bytes += s.snapped_bytes;
        }
        match why {
            CloseReason::Fin => self.stats.closed_fin += 1,
            CloseReason::Rst => self.stats.closed_rst += 1,
            CloseReason::Idle => self.stats.expired_idle += 1,
            CloseReason::Evicted => self.stats.evicted += 1,
            CloseReason::CaptureEnd => {}
        }
        if conn.opened {
            out(StreamEvent::Close { conn: id, why, ts });
        }
        if matches!(why, CloseReason::Fin | CloseReason::Rst) {
            self.remember_closed(key, ts);
        }
    }

    fn remember_closed(&mut self, key: ConnKey, ts: Timestamp) {
        if self.config.max_closed_remembered == 0 {
            return;
        }
        while self.closed_order.len() >= self.config.max_closed_remembered
            || self
                .closed_order
                .front()
                .is_some_and(|(t, _)| ts.saturating_since(*t) > self.config.closed_linger_ns)
        {
            let Some((t, k)) = self.closed_order.pop_front() else {
                break;
            };
            // Only forget the entry if it was not refreshed by a later close of the same tuple.
            if self.closed.get(&k) == Some(&t) {
                self.closed.remove(&k);
            }
        }
        self.closed.insert(key, ts);
        self.closed_order.push_back((ts, key));
    }

    /// Close reset connections that stayed quiet for `rst_linger_ns` after their RST.
    fn close_lingering_resets<F: FnMut(StreamEvent<'_>)>(&mut self, out: &mut F) {
        while let Some(&(at, key)) = self.resets.front() {
            if self.now.saturating_since(at) <= self.config.rst_linger_ns {
                break;
            }
            self.resets.pop_front();
            let still_reset = self.conns.get(&key).is_some_and(|c| c.reset_at == Some(at));
            if still_reset {
                self.close(key, CloseReason::Rst, at, out);
            }
        }
    }

    /// Capture time moves to `ts`: forward as the latest packet seen, except where the capturing
    /// host's clock stepped back (NTP) by more than the idle timeout. Then it follows the step:
    /// held at the old time, it would run no idle sweep until the clock caught up again.
    fn follow_clock(&mut self, ts: Timestamp) {
        if ts.0.saturating_add(self.config.idle_timeout_ns) < self.now.0 {
            self.stats.clock_steps_back += 1;
            self.now = ts;
            self.last_sweep = ts;
        } else {
            self.now = self.now.max(ts);
        }
    }

    fn maybe_sweep<F: FnMut(StreamEvent<'_>)>(&mut self, out: &mut F) {
        let every = (self.config.idle_timeout_ns / 10).max(1_000_000_000);
        if self.now.saturating_since(self.last_sweep) < every {
            return;
        }
        self.last_sweep = self.now;
        let deadline = self.now.0.saturating_sub(self.config.idle_timeout_ns);
        let mut idle: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_ts.0 < deadline)
            .map(|(k, c)| (c.id, *k))
            .collect();
        idle.sort();
        let now = self.now;
        for (_, key) in idle {
            self.close(key, CloseReason::Idle, now, out);
        }
    }

    /// Evict the least recently active eighth of the table at once, so eviction costs O(1) per
    /// connection opened rather than a scan each time.
    fn evict_oldest<F: FnMut(StreamEvent<'_>)>(&mut self, out: &mut F) {
        let n = (self.conns.len() / 8).max(1);
        let mut by_age: Vec<(Timestamp, ConnId, ConnKey)> = self
            .conns
            .iter()
            .map(|(k, c)| (c.last_ts, c.id, *k))
            .collect();
        by_age.select_nth_unstable(n - 1);
        by_age.truncate(n);
        by_age.sort();
        let now = self.now;
        for (_, _, key) in by_age {
            self.close(key, CloseReason::Evicted, now, out);
        }
    }
}

fn half_to_stream(
    conn: ConnId,
    dir: Direction,
    ts: Timestamp,
    ev: HalfEvent<'_>,
) -> StreamEvent<'_> {
    match ev {
        HalfEvent::Data {
            offset,
            seq,
            ts,
            bytes,
        } => StreamEvent::Data {
            conn,
            dir,
            offset,
            seq,
            ts,
            bytes,
        },
        HalfEvent::Gap {
            offset,
            len,
            snapped,
        } => StreamEvent::Gap {
            conn,
            dir,
            offset,
            len,
            snapped,
            ts,
        },
        HalfEvent::Fin { ts } => StreamEvent::HalfClose { conn, dir, ts },
    }
}

impl Conn {
    /// Roles from a SYN (certain), else from the first payload if its bytes say who sent it.
    fn learn_roles(&mut self, seg: &TcpSegment<'_>, hints: &RoleHints) {
        let (src, dst) = (seg.flow.src, seg.flow.dst);
        if seg.flags.syn() {
            self.set_roles(src, dst, !seg.flags.ack());
            self.roles_certain = true;
        } else if !seg.payload.is_empty() {
            match (hints.first_payload)(&seg.payload) {
                Some(Role::Client) => self.set_roles(src, dst, true),
                Some(Role::Server) => self.set_roles(src, dst, false),
                None => {}
            }
            self.roles_certain = true;
        }
    }

    fn set_roles(&mut self, src: SocketAddr, dst: SocketAddr, src_is_client: bool) {
        let (client, server) = if src_is_client {
            (src, dst)
        } else {
            (dst, src)
        };
        if (client, server) != (self.client, self.server) && !self.opened {
            self.client = client;
            self.server = server;
            self.halves.swap(0, 1);
        }
    }
}
