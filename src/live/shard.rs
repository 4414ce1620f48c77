//! Which worker gets a frame, and the batches frames travel in.
//!
//! Contract: [`Router::route`] decodes a frame far enough to know its TCP connection (with the
//! same [`Decoder`] the workers run, so link layers, VLANs and mirror tunnels are unwrapped the
//! same way) and picks a worker by a symmetric hash of the connection's 4-tuple
//! ([`shard_of`]): both directions of a connection, and all its packets in capture order, go to
//! one worker. Frames that carry no TCP are counted (in the router's [`DecodeStats`], the
//! authoritative decode counters of a live run) and go nowhere.
//!
//! IP fragments are reassembled here, before sharding, because the fragments of one datagram
//! do not all carry the TCP ports needed to pick a shard. A datagram rebuilt from fragments is
//! re-emitted as one unfragmented raw IP frame (LINKTYPE_RAW: an IPv4 or IPv6 header, a 20-byte
//! TCP header with the segment's sequence, acknowledgement, flags and window, then the payload),
//! so the worker decodes it like any other frame. The rebuilt frame keeps the timestamp of the
//! fragment that completed the datagram, exactly as a single-threaded replay does.
//!
//! Never: allocates per frame (batches are reused), or reorders the frames of one worker.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use tapspan_capture::{
    DecodeConfig, DecodeStats, Decoder, LinkType, RawFrame, TcpSegment, Timestamp,
};

/// Where a frame sits inside a [`Batch`].
#[derive(Clone, Copy, Debug)]
struct FrameMeta {
    ts: Timestamp,
    link_type: LinkType,
    orig_len: u32,
    start: usize,
    len: usize,
}

/// Frames for one worker, copied out of the capture ring into one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameMeta>,
    /// Clock ticks among the frames (see [`Batch::push_tick`]).
    ticks: u32,
}

impl Batch {
    /// Room reserved up front (clamped: a batch grows past it if it must).
    pub fn with_capacity(frames: usize, bytes: usize) -> Self {
        Batch {
            data: Vec::with_capacity(bytes.min(4 << 20)),
            frames: Vec::with_capacity(frames.min(16_384)),
            ticks: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Captured bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
        self.ticks = 0;
    }

    /// Clock ticks in this batch.
    pub fn ticks(&self) -> u32 {
        self.ticks
    }

    /// Appends a clock tick: a frame that advances the worker's capture clock to `ts` and does
    /// nothing else. It is a bare ACK between 0.0.0.0:0 and 0.0.0.0:0, which the reassembler
    /// never tracks (no payload, no SYN, a connection it has not seen) but whose timestamp it
    /// takes as "now", so that idle expiry, RST linger and end-of-capture stamps follow the
    /// whole capture's clock rather than one shard's. Each tick is counted once in the worker's
    /// `segments` counter, which the worker subtracts again.
    pub fn push_tick(&mut self, ts: Timestamp) {
        let start = self.data.len();
        self.data.extend_from_slice(&TICK_FRAME);
        self.frames.push(FrameMeta {
            ts,
            link_type: LinkType::RAW,
            orig_len: TICK_FRAME.len() as u32,
            start,
            len: TICK_FRAME.len(),
        });
        self.ticks += 1;
    }

    pub fn push(&mut self, frame: &RawFrame<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(frame.data);
        self.frames.push(FrameMeta {
            ts: frame.ts,
            link_type: frame.link_type,
            orig_len: frame.orig_len,
            start,
            len: frame.data.len(),
        });
    }

    /// Appends a raw IP frame carrying `seg` (see the module doc).
    pub fn push_segment(&mut self, seg: &TcpSegment<'_>) {
        let start = self.data.len();
        write_raw_ip(&mut self.data, seg);
        let len = self.data.len() - start;
        self.frames.push(FrameMeta {
            ts: seg.ts,
            link_type: LinkType::RAW,
            orig_len: len as u32,
            start,
            len,
        });
    }

    pub fn frames(&self) -> impl Iterator<Item = RawFrame<'_>> + '_ {
        self.frames.iter().map(move |m| RawFrame {
            ts: m.ts,
            link_type: m.link_type,
            data: &self.data[m.start..m.start + m.len],
            orig_len: m.orig_len,
            offset: 0,
        })
    }
}

/// See [`Batch::push_tick`]: IPv4 (checksum filled in) + TCP, ACK only, all addresses zero.
const TICK_FRAME: [u8; 40] = {
    let mut f = [0u8; 40];
    f[0] = 0x45;
    f[3] = 40;
    f[8] = 64;
    f[9] = 6;
    // Header checksum of this header: !(0x4500 + 0x0028 + 0x4006) folded.
    f[10] = 0x7a;
    f[11] = 0xd1;
    f[32] = 5 << 4;
    f[33] = 0x10;
    f
};

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

/// What to do with a frame.
pub enum Route<'b> {
    /// Not TCP, or an IP fragment held for reassembly: counted, nothing to forward.
    Drop,
    /// Forward the frame as captured to this worker.
    Frame(usize),
    /// A datagram was completed from fragments: forward this segment (as a raw IP frame, with
    /// [`Batch::push_segment`]) to this worker.
    Rebuilt(usize, TcpSegment<'b>),
}

/// Decodes frames just enough to shard them; owns IP fragment reassembly (see module doc).
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

    /// Routes one frame.
    pub fn route<'b>(&mut self, frame: &RawFrame<'b>) -> Route<'b> {
        let Some(seg) = self.decoder.decode(frame) else {
            return Route::Drop;
        };
        let w = shard_of(seg.flow.src, seg.flow.dst, self.shards);
        match &seg.payload {
            Cow::Borrowed(_) => Route::Frame(w),
            Cow::Owned(_) => Route::Rebuilt(w, seg),
        }
    }

    pub fn stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }
}

/// Writes an IPv4/IPv6 + TCP header and the payload of `seg` (no options; checksums are filled
/// in for IPv4's header only, as nothing downstream verifies TCP checksums).
fn write_raw_ip(out: &mut Vec<u8>, seg: &TcpSegment<'_>) {
    let payload: &[u8] = &seg.payload;
    let tcp_len = 20 + payload.len();
    match (seg.flow.src.ip(), seg.flow.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + tcp_len).min(usize::from(u16::MAX)) as u16;
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6] = 0x40; // don't fragment
            h[8] = 64;
            h[9] = 6;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let sum = ipv4_checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (s, d) => {
            let to6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(tcp_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
            h[6] = 6;
            h[7] = 64;
            h[8..24].copy_from_slice(&to6(s).octets());
            h[24..40].copy_from_slice(&to6(d).octets());
            out.extend_from_slice(&h);
        }
    }
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&seg.flow.src.port().to_be_bytes());
    t[2..4].copy_from_slice(&seg.flow.dst.port().to_be_bytes());
    t[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    t[8..12].copy_from_slice(&seg.ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = seg.flags.0;
    t[14..16].copy_from_slice(&seg.window.to_be_bytes());
    out.extend_from_slice(&t);
    out.extend_from_slice(payload);
}

fn ipv4_checksum(h: &[u8; 20]) -> u16 {
    let mut sum: u32 = h
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapspan_capture::TcpFlags;

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
    fn tick_is_a_bare_ack_from_nowhere() {
        let mut b = Batch::default();
        b.push_tick(Timestamp(7));
        assert_eq!(b.ticks(), 1);
        let frame = b.frames().next().unwrap();
        let mut hdr = [0u8; 20];
        hdr.copy_from_slice(&frame.data[..20]);
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(
            ipv4_checksum(&hdr).to_be_bytes(),
            [frame.data[10], frame.data[11]]
        );
        let mut d = Decoder::new(DecodeConfig::default());
        let seg = d.decode(&frame).expect("a TCP segment");
        assert_eq!(seg.ts, Timestamp(7));
        assert_eq!(seg.flow.src, addr("0.0.0.0:0"));
        assert_eq!(seg.flags, TcpFlags(TcpFlags::ACK));
        assert!(seg.payload.is_empty());
        b.clear();
        assert_eq!((b.len(), b.ticks()), (0, 0));
    }

    #[test]
    fn rebuilt_segment_decodes_to_the_same_segment() {
        for (src, dst) in [
            ("10.0.0.1:5555", "10.0.0.2:80"),
            ("[2001:db8::1]:5555", "[2001:db8::2]:8080"),
        ] {
            let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            let seg = TcpSegment {
                ts: Timestamp(42),
                flow: tapspan_capture::FlowKey {
                    src: addr(src),
                    dst: addr(dst),
                },
                seq: 0xDEAD_BEEF,
                ack: 7,
                flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
                window: 512,
                payload: Cow::Owned(payload.clone()),
            };
            let mut b = Batch::default();
            b.push_segment(&seg);
            let frame = b.frames().next().unwrap();
            let mut d = Decoder::new(DecodeConfig::default());
            let got = d.decode(&frame).expect("a TCP segment");
            assert_eq!(got.flow, seg.flow);
            assert_eq!(
                (got.seq, got.ack, got.flags, got.window),
                (seg.seq, 7, seg.flags, 512)
            );
            assert_eq!(&got.payload[..], &payload[..]);
            assert_eq!(got.ts, Timestamp(42));
        }
    }
}
