//! DNS on the protocol seam, both ways it travels.
//!
//! TCP (RFC 1035 §4.2.2, RFC 7766): a connection whose client's first bytes are a 2-byte length
//! and a standard query's header is claimed ([`PROTOCOL`]); each direction goes through a
//! [`TcpFramer`] into the connection's own [`DnsTracker`] (holding at most
//! [`DnsConfig::max_pending_per_connection`] queries), and exchanges are anchored like
//! Redis's (see [`crate::protocols::conns`]). Its queries still pending when the connection ends
//! have `no_response`.
//!
//! UDP ([`DnsUdp`]): a datagram to or from port 53 or 5353 is offered to the tracker (what does
//! not parse is counted `malformed`); on any other port only a datagram that is a whole DNS
//! message beyond doubt ([`message::whole_message`]) is, unless a port is NetBIOS's or LLMNR's
//! ([`LOOKALIKE_PORTS`]: their messages look like DNS's). Datagrams to multicast addresses
//! (mDNS's 224.0.0.251 and ff02::fb) or to 255.255.255.255 are left alone: their answers come
//! from anyone, to anyone, and would pair with nothing. A query unanswered for [`DnsConfig::timeout_ns`] of capture time
//! is reported `timeout` as soon as a later frame (or [`DnsUdp::advance_to`]) says that much time
//! passed; at the end of the capture what is still pending is `no_response`.
//!
//! Identity of a UDP exchange: there is no sequence number, so its anchor is
//! [`crate::ids::udp_anchor`] of the DNS id and the capture time of the query, and its
//! `exchange_id` is [`crate::ids::exchange_id`] of client, server and that anchor. A retransmitted
//! query (same id, same endpoints) is the same exchange. Its `conn` is [`UDP_CONN`].

use tapspan_capture::{Timestamp, UdpDatagram};

use super::message::{self, rcode_name};
use super::{DnsConfig, DnsExchange, DnsTracker, TcpFramer, Transport};
use crate::protocols::conns::{ConnDecoder, Converted, PerConnection, StreamCounts};
use crate::protocols::{Call, Exchange, Instants, PayloadTokens, Protocol, ProtocolStats};
use crate::reassembly::{ConnId, Direction, Role};

/// The `conn` of an exchange that came in datagrams, on no TCP connection.
pub const UDP_CONN: ConnId = ConnId(u64::MAX);

/// Ports whose datagrams are DNS's unless they do not parse.
pub const UDP_PORTS: [u16; 2] = [53, 5353];

/// Ports of protocols whose messages look like DNS's but are not DNS queries to a server:
/// NetBIOS name service (broadcast queries) and LLMNR. Never claimed by content.
pub const LOOKALIKE_PORTS: [u16; 2] = [137, 5355];

/// DNS over TCP in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "dns",
    server_ports: &[53],
    sniff,
    stream: |config| Box::new(PerConnection::<DnsConn>::new(config.dns.clone(), claims)),
};

/// A 2-byte length, then a standard query with one question and no answers: the client's.
fn sniff(first: &[u8]) -> Option<Role> {
    tcp_query_start(first).then_some(Role::Client)
}

fn claims(dir: Direction, first: &[u8]) -> bool {
    dir == Direction::ClientToServer && tcp_query_start(first)
}

/// Whether `b` starts like a DNS query framed for TCP. When the whole message is there, it must
/// be one beyond doubt; otherwise its header must be a query's (QR 0, opcode 0, one question, no
/// answer or authority records, at most a few additional ones) and its length must hold at least
/// a root-name question.
fn tcp_query_start(b: &[u8]) -> bool {
    let Some(h) = b.get(..14) else { return false };
    let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
    if len < 12 + 5 {
        return false;
    }
    if let Some(m) = b.get(2..2 + len) {
        return message::whole_message(m).is_some_and(|m| !m.response);
    }
    let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let flags = w(4);
    flags & 0xf840 == 0 && flags & 0x000f == 0 && w(6) == 1 && w(8) == 0 && w(10) == 0 && w(12) <= 2
}

/// DNS's counters, both transports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    pub exchanges: u64,
    pub udp_exchanges: u64,
    pub tcp_exchanges: u64,
    pub tcp_connections: u64,
    pub error_answers: u64,
    pub unanswered: u64,
    pub unmatched_responses: u64,
    pub malformed: u64,
    pub evicted: u64,
}

crate::counters::describe_counters!("dns", DnsCounters {
    exchanges: "DNS queries paired with their response (or given up), UDP and TCP.",
    udp_exchanges: "DNS queries over UDP.",
    tcp_exchanges: "DNS queries over TCP.",
    tcp_connections: "TCP connections claimed by the DNS decoder.",
    error_answers [Metric]: "DNS responses with an rcode other than NOERROR.",
    unanswered [Metric]: "DNS queries without a response (timeout, capture end, cap).",
    unmatched_responses: "DNS responses with no query to pair (dropped).",
    malformed: "DNS messages that did not parse (on DNS's ports or connections).",
    evicted: "DNS queries given up at the pending cap.",
});

impl DnsCounters {
    fn count(&mut self, x: &DnsExchange) {
        if x.rcode.is_some_and(|r| r != 0) {
            self.error_answers += 1;
        }
        if x.rcode.is_none() {
            self.unanswered += 1;
        }
        if x.error.as_deref() == Some("evicted") {
            self.evicted += 1;
        }
    }
}

/// The exchange's instants, why it is incomplete, and its call.
fn convert(x: DnsExchange) -> Converted {
    let error = match (x.rcode, x.error.as_deref()) {
        (Some(_), _) | (None, None) => None,
        (None, Some("timeout")) => Some("timeout"),
        (None, Some("evicted")) => Some("pending_overflow"),
        (None, Some(_)) => Some("no_response"),
    };
    Converted {
        t: Instants {
            // A query given up on ends when it was (the timeout is the client's patience).
            closed: x.given_up.map(Timestamp),
            ..Instants::of_ns(x.start, x.request_end, x.response_start, x.end)
        },
        // Over TCP, the query's own first byte anchors it, wherever its segment began.
        request_offset: (x.transport == Transport::Tcp).then_some(x.request_offset),
        error,
        tokens: PayloadTokens::default(),
        call: Call::Dns(x),
    }
}

/// The name of the rcode that failed the exchange, if one did.
pub fn failure(x: &DnsExchange) -> Option<String> {
    x.rcode.filter(|&r| r != 0).map(rcode_name)
}

/// One DNS-over-TCP connection: a framer per direction and its own pending queries. Its
/// exchanges carry unspecified addresses; the connection's are the [`Exchange`]'s.
pub struct DnsConn {
    framers: [TcpFramer; 2],
    tracker: DnsTracker,
    counts: DnsCounters,
}

const NOWHERE: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

impl ConnDecoder for DnsConn {
    type Config = DnsConfig;
    type Record = DnsExchange;
    type Stats = DnsCounters;

    fn open(config: &DnsConfig, _from_start: bool) -> Self {
        DnsConn {
            framers: Default::default(),
            tracker: DnsTracker::new(DnsConfig {
                max_pending: config.max_pending_per_connection,
                ..config.clone()
            }),
            counts: DnsCounters::default(),
        }
    }

    fn data(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<DnsExchange>) {
        let offset = self.framers[dir as usize].next_offset();
        self.data_at(dir, (ts, offset), bytes, out);
    }

    fn data_at(
        &mut self,
        dir: Direction,
        at: (u64, u64),
        bytes: &[u8],
        out: &mut Vec<DnsExchange>,
    ) {
        let (framers, tracker) = (&mut self.framers, &mut self.tracker);
        let first = out.len();
        framers[dir as usize].push(at, bytes, &mut |t, m| {
            tracker.message(t, NOWHERE, NOWHERE, m, out)
        });
        out[first..].iter().for_each(|x| self.counts.count(x));
    }

    fn gap(&mut self, dir: Direction, _ts: u64, _out: &mut Vec<DnsExchange>) {
        self.framers[dir as usize].lose();
    }

    fn finish(&mut self, _ts: u64, out: &mut Vec<DnsExchange>) {
        let first = out.len();
        self.tracker.finish(out);
        out[first..].iter().for_each(|x| self.counts.count(x));
    }

    fn convert(x: DnsExchange) -> Converted {
        convert(x)
    }

    fn tally(&self, into: &mut DnsCounters) {
        into.error_answers += self.counts.error_answers;
        into.unanswered += self.counts.unanswered;
        into.evicted += self.counts.evicted;
        into.malformed += self.tracker.stats.malformed;
        into.unmatched_responses += self.tracker.stats.unmatched_responses;
    }

    fn publish(totals: &DnsCounters, counts: &StreamCounts, into: &mut ProtocolStats) {
        into.dns.tcp_connections += counts.connections;
        into.dns.tcp_exchanges += counts.exchanges;
        into.dns.exchanges += counts.exchanges;
        into.dns.error_answers += totals.error_answers;
        into.dns.unanswered += totals.unanswered;
        into.dns.evicted += totals.evicted;
        into.dns.malformed += totals.malformed;
        into.dns.unmatched_responses += totals.unmatched_responses;
    }
}

/// DNS over UDP for one pipeline: every client's and server's pending queries.
pub struct DnsUdp {
    tracker: DnsTracker,
    records: Vec<DnsExchange>,
    counts: DnsCounters,
}

impl DnsUdp {
    pub fn new(config: &DnsConfig) -> Self {
        DnsUdp {
            tracker: DnsTracker::new(config.clone()),
            records: Vec::new(),
            counts: DnsCounters::default(),
        }
    }

    /// One datagram: DNS's if its ports or its content say so (see the module doc).
    pub fn datagram(&mut self, d: &UdpDatagram<'_>, out: &mut dyn FnMut(Exchange)) {
        let ts = d.ts.as_nanos();
        let ports = [d.src.port(), d.dst.port()];
        let ours = !d.dst.ip().is_multicast()
            && d.dst.ip() != std::net::Ipv4Addr::BROADCAST
            && (ports.iter().any(|p| UDP_PORTS.contains(p))
                || (!ports.iter().any(|p| LOOKALIKE_PORTS.contains(p))
                    && message::whole_message(&d.payload).is_some()));
        if ours {
            self.tracker
                .datagram(ts, d.src, d.dst, &d.payload, &mut self.records);
        } else {
            self.tracker.advance_to(ts, &mut self.records);
        }
        self.emit(out);
    }

    /// Capture time is now `ts`: queries unanswered for the timeout are reported.
    pub fn advance_to(&mut self, ts: Timestamp, out: &mut dyn FnMut(Exchange)) {
        self.tracker.advance_to(ts.as_nanos(), &mut self.records);
        self.emit(out);
    }

    /// The capture ended: pending queries had no response in it.
    pub fn finish(&mut self, out: &mut dyn FnMut(Exchange)) {
        self.tracker.finish(&mut self.records);
        self.emit(out);
    }

    fn emit(&mut self, out: &mut dyn FnMut(Exchange)) {
        for x in self.records.drain(..) {
            self.counts.count(&x);
            self.counts.udp_exchanges += 1;
            self.counts.exchanges += 1;
            let (client, server) = (x.client, x.server);
            let anchor_seq = crate::ids::udp_anchor(x.id, x.start);
            let c = convert(x);
            out(Exchange {
                conn: UDP_CONN,
                client,
                server,
                depth: 1,
                anchor_seq,
                t: c.t,
                gaps: 0,
                snapped: false,
                error: c.error,
                tokens: c.tokens,
                call: c.call,
            });
        }
    }

    /// Adds the UDP side's counters to `into.dns`.
    pub fn stats(&self, into: &mut ProtocolStats) {
        let mut c = self.counts.clone();
        c.malformed += self.tracker.stats.malformed;
        c.unmatched_responses += self.tracker.stats.unmatched_responses;
        crate::counters::Counters::add(&mut into.dns, &c);
    }
}

/// Whether an exchange is DNS over UDP (no connection to reuse or to tell handlers apart by).
pub fn over_udp(x: &DnsExchange) -> bool {
    x.transport == Transport::Udp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_query(name_len: usize) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0];
        m.push(name_len as u8);
        m.extend(vec![b'a'; name_len]);
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        framed
    }

    fn dgram<'a>(src: &str, dst: &str, ts: u64, payload: &'a [u8]) -> UdpDatagram<'a> {
        UdpDatagram {
            ts: Timestamp(ts),
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            payload: std::borrow::Cow::Borrowed(payload),
            snapped: 0,
        }
    }

    fn query(id: u16) -> Vec<u8> {
        let mut q = tcp_query(3)[2..].to_vec();
        q[..2].copy_from_slice(&id.to_be_bytes());
        q
    }

    #[test]
    fn udp_claims_by_port_or_whole_message_and_times_out() {
        let mut dns = DnsUdp::new(&DnsConfig {
            timeout_ns: 1_000,
            ..DnsConfig::default()
        });
        let mut out = Vec::new();
        let q = query(9);
        let mut answer = q.clone();
        answer[2] |= 0x80;
        // Port 53, then a port of its own (whole messages): both pair.
        for (c, s) in [
            ("10.0.0.1:4000", "10.0.0.2:53"),
            ("10.0.0.1:4001", "10.0.0.2:8053"),
        ] {
            dns.datagram(&dgram(c, s, 10, &q), &mut |x| out.push(x));
            dns.datagram(&dgram(s, c, 20, &answer), &mut |x| out.push(x));
        }
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|x| x.error.is_none() && x.conn == UDP_CONN));
        // Same id at the same instant: one anchor; the endpoints tell the exchanges apart.
        assert_eq!(out[0].anchor_seq, crate::ids::udp_anchor(9, 10));
        assert_eq!(out[0].anchor_seq, out[1].anchor_seq);
        let id = crate::span::exchange_id_of;
        assert_ne!(id(&out[0]), id(&out[1]));
        // Not DNS on another port, mDNS to its multicast group: not claimed, not counted.
        for (c, s, p) in [
            (
                "10.0.0.1:4002",
                "10.0.0.2:9999",
                &b"hello, not dns at all"[..],
            ),
            ("10.0.0.1:4002", "10.0.0.2:9999", &q[..q.len() - 1]),
            ("10.0.0.1:5353", "224.0.0.251:5353", &q),
            ("10.0.0.1:137", "10.0.0.255:137", &q),
            ("10.0.0.1:4002", "255.255.255.255:9999", &q),
        ] {
            dns.datagram(&dgram(c, s, 30, p), &mut |x| out.push(x));
        }
        // A compression loop to port 53: malformed, counted, never a panic.
        let mut looped = q[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        dns.datagram(
            &dgram("10.0.0.1:4003", "10.0.0.2:53", 40, &looped),
            &mut |x| out.push(x),
        );
        // A query that is never answered ends `timeout` when capture time has passed it.
        dns.datagram(&dgram("10.0.0.1:4004", "10.0.0.2:53", 50, &q), &mut |x| {
            out.push(x)
        });
        assert_eq!(out.len(), 2);
        dns.advance_to(Timestamp(1_049), &mut |x| out.push(x));
        assert_eq!(out.len(), 2);
        dns.advance_to(Timestamp(1_050), &mut |x| out.push(x));
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].error, Some("timeout"));
        assert_eq!(out[2].t.closed, Some(Timestamp(1_050)));
        let mut stats = ProtocolStats::default();
        dns.stats(&mut stats);
        let d = stats.dns;
        assert_eq!((d.exchanges, d.udp_exchanges, d.unanswered), (3, 3, 1));
        assert_eq!((d.malformed, d.unmatched_responses), (1, 0));
    }

    #[test]
    fn the_configured_caps_bite_and_are_counted() {
        let config = DnsConfig {
            max_pending: 3,
            max_pending_per_connection: 2,
            ..DnsConfig::default()
        };
        // UDP: five clients' queries, three held; the two oldest are given up at once.
        let mut dns = DnsUdp::new(&config);
        let mut out = Vec::new();
        for i in 0..5u16 {
            let c = format!("10.0.0.1:{}", 4000 + i);
            dns.datagram(&dgram(&c, "10.0.0.2:53", 10, &query(i)), &mut |x| {
                out.push(x)
            });
        }
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|x| x.error == Some("pending_overflow")));
        let mut stats = ProtocolStats::default();
        dns.stats(&mut stats);
        assert_eq!((stats.dns.evicted, stats.dns.unanswered), (2, 2));
        // TCP: one connection pipelining four queries, two held.
        let mut conn = DnsConn::open(&config, true);
        let mut records = Vec::new();
        for i in 0..4u16 {
            let mut framed = (query(i).len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&query(i));
            conn.data(Direction::ClientToServer, 10, &framed, &mut records);
        }
        assert_eq!(records.len(), 2);
        assert!(records
            .iter()
            .all(|x| x.error.as_deref() == Some("evicted")));
        let mut totals = DnsCounters::default();
        conn.tally(&mut totals);
        assert_eq!(totals.evicted, 2);
    }

    #[test]
    fn tcp_claims_queries_only() {
        let q = tcp_query(3);
        assert!(tcp_query_start(&q));
        // Only the header so far.
        assert!(tcp_query_start(&q[..14]));
        assert!(!tcp_query_start(&q[..13]));
        // A response, another opcode, a second question, a length too short: not claimed.
        for (i, v) in [(4usize, 0x81u8), (4, 0x29), (7, 2)] {
            let mut b = q.clone();
            b[i] = v;
            assert!(!tcp_query_start(&b), "{i}");
        }
        assert!(!tcp_query_start(&[
            0, 5, 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0
        ]));
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
            &[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f],
            &[0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3, 0, 0, 0],
        ] {
            assert!(!tcp_query_start(other));
        }
    }
}
