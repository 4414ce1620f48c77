//! Which worker gets a segment, and the batches segments travel in.
//!
//! Contract: [`Router::route`] decodes each frame once (link layers, VLANs, mirror tunnels,
//! IP fragment reassembly) and picks a worker by a symmetric hash of the connection's 4-tuple
//! ([`shard_of`]): both directions of a connection, and all its segments in capture order, go to
//! one worker. A UDP datagram goes by the same hash of its two endpoints, so a DNS query and its
//! response meet on one worker. Frames that carry neither are counted (in the router's [`DecodeStats`], the decode
//! counters of a live run) and go nowhere. IP fragments are reassembled here, before sharding,
//! because the fragments of one datagram do not all carry the TCP ports needed to pick a shard.
//!
//! A [`Batch`] carries decoded segments and datagrams (their payloads copied into one buffer) and
//! clock steps: the worker feeds them to its pipeline as [`Pipeline::push_segment`] (or
//! `push_datagram`) and
//! [`Pipeline::advance_to`](crate::pipeline::Pipeline::advance_to), so nothing is decoded twice.
//!
//! Never: allocates per segment (batches are reused), or reorders the segments of one worker.
//!
//! [`Pipeline::push_segment`]: crate::pipeline::Pipeline::push_segment

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use tapspan_capture::{
    DecodeConfig, DecodeStats, Decoded, Decoder, FlowKey, RawFrame, TcpFlags, TcpSegment,
    Timestamp, UdpDatagram,
};

/// One entry of a [`Batch`]: a segment (its payload at `start..start + len` of the batch's
/// buffer) or a clock step.
#[derive(Clone, Copy, Debug)]
enum Item {
    Segment {
        ts: Timestamp,
        flow: FlowKey,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        start: usize,
        len: usize,
        snapped: u32,
    },
    Datagram {
        ts: Timestamp,
        flow: FlowKey,
        start: usize,
        len: usize,
        snapped: u32,
    },
    Tick(Timestamp),
}

/// What a worker reads out of a [`Batch`].
pub enum Entry<'a> {
    Segment(TcpSegment<'a>),
    Datagram(UdpDatagram<'a>),
    /// The whole capture's clock reached this time (see [`Batch::push_tick`]).
    Tick(Timestamp),
}

/// Segments for one worker, their payloads copied out of the capture ring into one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
}

impl Batch {
    /// Room reserved up front (clamped: a batch grows past it if it must).
    pub fn with_capacity(items: usize, bytes: usize) -> Self {
        Batch {
            data: Vec::with_capacity(bytes.min(4 << 20)),
            items: Vec::with_capacity(items.min(16_384)),
        }
    }

    /// Entries held (segments and clock steps).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }

    /// Appends a clock step: the worker's capture clock moves to `ts`, so that idle expiry,
    /// RST linger and end-of-capture stamps follow the whole capture's clock rather than one
    /// shard's.
    pub fn push_tick(&mut self, ts: Timestamp) {
        self.items.push(Item::Tick(ts));
    }

    /// Appends a segment, copying its payload.
    pub fn push_segment(&mut self, seg: &TcpSegment<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(&seg.payload);
        self.items.push(Item::Segment {
            ts: seg.ts,
            flow: seg.flow,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            start,
            len: seg.payload.len(),
            snapped: seg.snapped,
        });
    }

    /// Appends a UDP datagram, copying its payload.
    pub fn push_datagram(&mut self, d: &UdpDatagram<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(&d.payload);
        self.items.push(Item::Datagram {
            ts: d.ts,
            flow: FlowKey {
                src: d.src,
                dst: d.dst,
            },
            start,
            len: d.payload.len(),
            snapped: d.snapped,
        });
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.items.iter().map(move |item| match *item {
            Item::Tick(ts) => Entry::Tick(ts),
            Item::Datagram {
                ts,
                flow,
                start,
                len,
                snapped,
            } => Entry::Datagram(UdpDatagram {
                ts,
                src: flow.src,
                dst: flow.dst,
                payload: Cow::Borrowed(&self.data[start..start + len]),
                snapped,
            }),
            Item::Segment {
                ts,
                flow,
                seq,
                ack,
                flags,
                window,
                start,
                len,
                snapped,
            } => Entry::Segment(TcpSegment {
                ts,
                flow,
                seq,
                ack,
                flags,
                window,
                payload: Cow::Borrowed(&self.data[start..start + len]),
                snapped,
            }),
        })
    }
}

/// Fixed 64-bit mixing of a connection's two endpoints, independent of their order.
/// (FNV-1a over the lower endpoint then the higher one, each as address bytes then port; the
/// same 4-tuple always lands on the same worker for a given worker count.)
pub fn shard_of(a: SocketAddr, b: SocketAddr, shards: usize) -> usize {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for end in [lo, hi] {
        match end.ip() {
            IpAddr::V4(v4) => eat(&v4.octets()),
            IpAddr::V6(v6) => eat(&v6.octets()),
        }
        eat(&end.port().to_be_bytes());
    }
    // Fold the high bits in: FNV's low bits alone are weak for small moduli.
    ((h ^ (h >> 29) ^ (h >> 47)) % shards.max(1) as u64) as usize
}

/// Decodes frames and picks each segment's worker; owns IP fragment reassembly.
pub struct Router {
    decoder: Decoder,
    shards: usize,
}

impl Router {
    pub fn new(config: DecodeConfig, shards: usize) -> Self {
        Router {
            decoder: Decoder::new(config),
            shards: shards.max(1),
        }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The frame's TCP segment or UDP datagram and its worker; `None` for a frame with neither
    /// (or a fragment held until its datagram is whole).
    pub fn route<'b>(&mut self, frame: &RawFrame<'b>) -> Option<(usize, Decoded<'b>)> {
        let d = self.decoder.decode_packet(frame)?;
        let (a, b) = match &d {
            Decoded::Tcp(seg) => (seg.flow.src, seg.flow.dst),
            Decoded::Udp(u) => (u.src, u.dst),
        };
        Some((shard_of(a, b, self.shards), d))
    }

    pub fn stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn shard_is_symmetric_and_spreads() {
        let mut seen = [0usize; 4];
        for port in 40000..40400u16 {
            let c = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
            let s = addr("127.0.0.1:80");
            assert_eq!(shard_of(c, s, 4), shard_of(s, c, 4));
            seen[shard_of(c, s, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
        assert_eq!(shard_of(addr("[::1]:1"), addr("[::1]:2"), 1), 0);
    }

    #[test]
    fn batch_gives_back_segments_and_ticks_in_order() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let seg = TcpSegment {
            ts: Timestamp(42),
            flow: FlowKey {
                src: addr("[2001:db8::1]:5555"),
                dst: addr("[2001:db8::2]:8080"),
            },
            seq: 0xDEAD_BEEF,
            ack: 7,
            flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
            window: 512,
            payload: Cow::Owned(payload.clone()),
            snapped: 0,
        };
        let mut b = Batch::default();
        b.push_tick(Timestamp(40));
        b.push_segment(&seg);
        assert_eq!((b.len(), b.bytes()), (2, 3000));
        let got: Vec<Entry<'_>> = b.entries().collect();
        assert!(matches!(got[0], Entry::Tick(Timestamp(40))));
        match &got[1] {
            Entry::Segment(s) => {
                assert_eq!((s.ts, s.flow, s.seq, s.ack), (seg.ts, seg.flow, seg.seq, 7));
                assert_eq!((s.flags, s.window), (seg.flags, 512));
                assert_eq!(&s.payload[..], &payload[..]);
            }
            _ => panic!("a segment"),
        }
        drop(got);
        // A datagram: its payload and addresses come back as they went in.
        let d = UdpDatagram {
            ts: Timestamp(43),
            src: addr("10.0.0.1:40000"),
            dst: addr("10.0.0.2:53"),
            payload: Cow::Borrowed(b"query"),
            snapped: 2,
        };
        b.push_datagram(&d);
        match b.entries().last() {
            Some(Entry::Datagram(got)) => assert_eq!(got, d),
            _ => panic!("a datagram"),
        }
        b.clear();
        assert!(b.is_empty());
    }
}
