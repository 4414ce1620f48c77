//! DNS over UDP and TCP: messages in, one [`DnsExchange`] per query out. UDP datagrams come
//! with their addresses ([`DnsTracker::datagram`]); a TCP connection's bytes go through a
//! [`TcpFramer`] per direction (RFC 1035 §4.2.2: a 2-byte length before each message) into
//! [`DnsTracker::message`]. [`stream`] wires both into the pipeline: the UDP datagrams it is
//! given by the capture crate, and DNS-over-TCP connections as a registered protocol.
//!
//! Pairing: a response answers the pending query with the same id between the same two
//! endpoints (the QR bit tells which side asked) whose question it repeats, the name compared
//! without case (RFC 4343 §3); names are reported as sent. A query unanswered [`DnsConfig::timeout_ns`]
//! after it was sent (capture time, [`DnsTracker::advance_to`]) is reported with error
//! `timeout`; a retransmission with the same id is the same query. A response with an rcode
//! other than NOERROR is an error named by its rcode (`NXDOMAIN`, `REFUSED`). Bounded:
//! [`DnsConfig::max_pending`] queries in flight over UDP and
//! [`DnsConfig::max_pending_per_connection`] on each TCP connection (the oldest beyond either
//! reported `evicted`), a TCP framer holds at most one message (64 KiB), and [`message`]
//! parsing is bounded.

pub mod message;
pub mod stream;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::span::AttrValue;
use message::{parse, rcode_name, same_name, type_name, DnsMessage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// DNS's settings; `tapspan replay|live` set them from `--dns-timeout`,
/// `--max-pending-dns-queries` and `--max-pending-requests` (see [`crate::limits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// A query unanswered this long (capture time) is reported as a timeout.
    pub timeout_ns: u64,
    /// Queries over UDP awaiting a response, every client's and server's together (one table
    /// per pipeline); beyond it the oldest is given up as `evicted`.
    pub max_pending: usize,
    /// Queries awaiting a response on one DNS-over-TCP connection (RFC 7766 §6.2.1.1 lets a
    /// client pipeline them); beyond it the oldest is given up as `evicted`. Per connection,
    /// like every other protocol's pending requests, so that the connection cap bounds it.
    pub max_pending_per_connection: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            timeout_ns: 5_000_000_000,
            max_pending: 65_536,
            max_pending_per_connection: 128,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsExchange {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    pub id: u16,
    /// Capture times (ns) of the query's first and last byte and of the response's.
    pub start: u64,
    pub request_end: u64,
    pub response_start: Option<u64>,
    pub end: Option<u64>,
    /// Over TCP, the client-stream offset of the query's first byte (its length prefix).
    pub request_offset: u64,
    pub name: String,
    pub qtype: u16,
    pub rcode: Option<u8>,
    pub answers: u16,
    /// Queries sent again with the same id before the answer.
    pub retransmits: u32,
    /// `timeout`, `evicted`, `no_response` (capture ended), or the rcode's name.
    pub error: Option<String>,
    /// For a `timeout`: the capture time it was given up at (sent + the timeout).
    pub given_up: Option<u64>,
}

impl DnsExchange {
    /// OpenTelemetry attributes (`dns.question.name`); tapspan's own under `tapspan.dns.*`.
    pub fn attributes(&self) -> Vec<(&'static str, AttrValue)> {
        let mut v = vec![
            ("dns.question.name", AttrValue::from(&self.name)),
            (
                "tapspan.dns.question.type",
                AttrValue::from(type_name(self.qtype)),
            ),
            (
                "network.transport",
                AttrValue::from(match self.transport {
                    Transport::Udp => "udp",
                    Transport::Tcp => "tcp",
                }),
            ),
        ];
        if let Some(r) = self.rcode {
            v.push(("tapspan.dns.response_code", AttrValue::from(rcode_name(r))));
            v.push(("tapspan.dns.answers", AttrValue::from(self.answers)));
        }
        if self.retransmits > 0 {
            v.push(("tapspan.retransmits", AttrValue::from(self.retransmits)));
        }
        if let Some(e) = &self.error {
            v.push(("error.type", AttrValue::from(e)));
        }
        v
    }
}

type Key = (SocketAddr, SocketAddr, u16);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub messages: u64,
    pub malformed: u64,
    pub unmatched_responses: u64,
}

/// Pending queries of every client and server.
#[derive(Clone, Debug, Default)]
pub struct DnsTracker {
    config: DnsConfig,
    pending: HashMap<Key, DnsExchange>,
    /// Queries by the time they were sent (stale entries skipped when popped).
    order: VecDeque<(u64, Key)>,
    pub stats: DnsStats,
}

impl DnsTracker {
    pub fn new(config: DnsConfig) -> Self {
        DnsTracker {
            config,
            ..Default::default()
        }
    }

    /// A UDP datagram from `src` to `dst`.
    pub fn datagram(
        &mut self,
        ts: u64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        out: &mut Vec<DnsExchange>,
    ) {
        let Some(m) = self.parse(payload) else { return };
        let (client, server) = if m.response { (dst, src) } else { (src, dst) };
        self.handle(m, (ts, ts, 0), client, server, Transport::Udp, out);
    }

    /// A whole message from a TCP connection between `client` and `server`, its first and
    /// last byte seen at `start` and `end`, its first byte at stream offset `offset`.
    pub fn message(
        &mut self,
        (start, end, offset): (u64, u64, u64),
        client: SocketAddr,
        server: SocketAddr,
        payload: &[u8],
        out: &mut Vec<DnsExchange>,
    ) {
        let Some(m) = self.parse(payload) else { return };
        self.handle(m, (start, end, offset), client, server, Transport::Tcp, out);
    }

    fn parse(&mut self, payload: &[u8]) -> Option<DnsMessage> {
        self.stats.messages += 1;
        let m = parse(payload)
            .ok()
            .filter(|m| m.opcode == 0 && m.question.is_some());
        if m.is_none() {
            self.stats.malformed += 1;
        }
        m
    }

    fn handle(
        &mut self,
        m: DnsMessage,
        (start, end, offset): (u64, u64, u64),
        client: SocketAddr,
        server: SocketAddr,
        transport: Transport,
        out: &mut Vec<DnsExchange>,
    ) {
        let key = (client, server, m.id);
        if m.response {
            // The response repeats the query's question (RFC 1035 §4.1.1, checked by resolvers
            // per RFC 5452 §9.1); its name may differ in case only (RFC 4343 §3).
            let answers = |x: &DnsExchange| {
                m.question
                    .as_ref()
                    .is_some_and(|(name, qtype)| *qtype == x.qtype && same_name(name, &x.name))
            };
            // One that does not leaves the query waiting for its own.
            if !self.pending.get(&key).is_some_and(answers) {
                self.stats.unmatched_responses += 1;
                return;
            }
            let Some(mut x) = self.pending.remove(&key) else {
                return;
            };
            x.response_start = Some(start);
            x.end = Some(end);
            x.rcode = Some(m.rcode);
            x.answers = m.answers;
            if m.rcode != 0 {
                x.error = Some(rcode_name(m.rcode));
            }
            out.push(x);
            return;
        }
        if let Some(x) = self.pending.get_mut(&key) {
            x.retransmits += 1;
            return;
        }
        self.advance_to(start, out);
        if self.pending.len() >= self.config.max_pending {
            self.expire_oldest("evicted", out);
        }
        let (name, qtype) = m.question.unwrap_or_default();
        let x = DnsExchange {
            client,
            server,
            transport,
            id: m.id,
            start,
            request_end: end,
            response_start: None,
            end: None,
            request_offset: offset,
            name,
            qtype,
            rcode: None,
            answers: 0,
            retransmits: 0,
            error: None,
            given_up: None,
        };
        self.pending.insert(key, x);
        self.order.push_back((start, key));
    }

    /// Capture time is now `ts`: queries older than the timeout are reported.
    pub fn advance_to(&mut self, ts: u64, out: &mut Vec<DnsExchange>) {
        while let Some(&(sent, key)) = self.order.front() {
            // Stale entries first: else expiring "the oldest" would reach past them to a
            // query not yet due.
            if self.pending.get(&key).is_none_or(|x| x.start != sent) {
                self.order.pop_front();
                continue;
            }
            if ts.saturating_sub(sent) < self.config.timeout_ns {
                break;
            }
            self.expire_oldest("timeout", out);
        }
    }

    /// The capture ended: what is still pending had no answer in it.
    pub fn finish(&mut self, out: &mut Vec<DnsExchange>) {
        while !self.order.is_empty() {
            self.expire_oldest("no_response", out);
        }
    }

    fn expire_oldest(&mut self, why: &str, out: &mut Vec<DnsExchange>) {
        while let Some((sent, key)) = self.order.pop_front() {
            // A stale entry: answered already, or its id reused by a later query.
            if self.pending.get(&key).is_some_and(|x| x.start == sent) {
                if let Some(mut x) = self.pending.remove(&key) {
                    x.error = Some(why.to_string());
                    if why == "timeout" {
                        x.given_up = Some(sent.saturating_add(self.config.timeout_ns));
                    }
                    out.push(x);
                }
                return;
            }
        }
    }
}

/// One direction of a DNS-over-TCP connection: 2-byte length, then the message.
#[derive(Clone, Debug, Default)]
pub struct TcpFramer {
    buf: Vec<u8>,
    start: u64,
    /// Stream offsets of the message being framed and of the next byte.
    start_offset: u64,
    next_offset: u64,
    lost: bool,
}

impl TcpFramer {
    /// Feeds bytes seen at `ts`, the first at stream offset `offset`; `out` gets each whole
    /// message with the times of its first and last byte and the offset of its first (its
    /// length prefix).
    pub fn push(
        &mut self,
        (ts, offset): (u64, u64),
        mut bytes: &[u8],
        out: &mut impl FnMut((u64, u64, u64), &[u8]),
    ) {
        if self.lost {
            return;
        }
        self.next_offset = offset;
        while !bytes.is_empty() {
            if self.buf.is_empty() {
                self.start = ts;
                self.start_offset = self.next_offset;
            }
            let want = match self.buf.len() {
                n if n < 2 => 2 - n,
                _ => {
                    2 + usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])) - self.buf.len()
                }
            };
            let n = want.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.next_offset += n as u64;
            let len = self.buf.len();
            if len >= 2 && len == 2 + usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])) {
                out((self.start, ts, self.start_offset), &self.buf[2..]);
                self.buf.clear();
            }
        }
    }

    /// The stream offset of the next byte, counted from the first one fed.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Bytes were lost: message boundaries are unknown from here on.
    pub fn lose(&mut self) {
        self.lost = true;
        self.buf = Vec::new();
    }
}

#[cfg(test)]
mod tests;
