//! Frame → TCP segment or UDP datagram: the link layer, IP, fragments and mirror tunnels, tied
//! together.
//!
//! Contract: [`Decoder::decode_packet`] takes one [`RawFrame`] and returns at most one
//! [`Decoded`]: a [`TcpSegment`] or a [`UdpDatagram`] ([`Decoder::decode`] keeps the segments
//! only). Every frame is counted in [`DecodeStats::frames`] and ends in exactly one of: a segment
//! (`tcp_segments`), a datagram (`udp_datagrams`), `non_tcp`, `unsupported_link`, `malformed`,
//! or — for an IP fragment that does not complete its datagram — only `fragments` (plus the
//! defrag counters if it was dropped). A UDP header whose length is under 8 or beyond what the IP
//! packet carried (unless a snap length cut it) is `malformed`. The segment or datagram borrows
//! the frame's bytes; only one rebuilt from IP fragments owns its payload. UDP is one more arm of
//! the match on the IP protocol number: the TCP path does no extra work. Mirror tunnels (VXLAN, Geneve, GRE/ERSPAN, IP-in-IP) are unwrapped up to
//! [`MAX_TUNNEL_DEPTH`] levels, each level counted in `tunnels_unwrapped`.
//!
//! Never: panics on any input, reads the clock (fragment timeouts run on frame timestamps), or
//! allocates for an unfragmented frame.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::defrag::{DatagramKey, Defragmenter, DropReason, Outcome as DefragOutcome};
use crate::ip::{self, Inner, Transport, UdpSlice};
use crate::link::{self, LinkError, NetPacket};
use crate::{RawFrame, TcpSegment, Timestamp, UdpDatagram};

/// Tunnels nested deeper than this are counted as malformed.
pub const MAX_TUNNEL_DEPTH: usize = 4;

#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Cap on bytes held by IP fragment reassembly across all datagrams.
    pub defrag_max_bytes: usize,
    /// Cap on datagrams being reassembled at once.
    pub defrag_max_datagrams: usize,
    /// A datagram whose fragments stop arriving for this long (capture time) is dropped.
    pub defrag_timeout_ns: u64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            defrag_max_bytes: 16 << 20,
            defrag_max_datagrams: 4096,
            defrag_timeout_ns: 30_000_000_000,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DecodeStats {
    /// Frames given to the decoder.
    pub frames: u64,
    /// Captured bytes of those frames.
    pub bytes: u64,
    /// Segments returned (including those rebuilt from fragments).
    pub tcp_segments: u64,
    /// UDP datagrams returned (not tunnels; including those rebuilt from fragments).
    pub udp_datagrams: u64,
    /// Frames carrying something other than TCP or UDP (ARP, ICMP, ...).
    pub non_tcp: u64,
    /// Frames of a link type this crate does not decode.
    pub unsupported_link: u64,
    /// Frames whose headers are cut short or contradict themselves.
    pub malformed: u64,
    /// Tunnel layers unwrapped (a frame in two nested tunnels counts twice).
    pub tunnels_unwrapped: u64,
    /// IP fragments seen.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub datagrams_reassembled: u64,
    /// Datagrams dropped from reassembly to respect a cap.
    pub defrag_evicted: u64,
    /// Datagrams dropped from reassembly because their fragments stopped arriving.
    pub defrag_timed_out: u64,
    /// Fragments overlapping data already held (IPv6: the datagram was discarded).
    pub defrag_overlaps: u64,
    /// TCP segments and UDP datagrams whose payload a snap length cut short (returned with the
    /// bytes captured).
    pub truncated: u64,
    /// Datagrams whose fragments are held now; read at the end of a capture, those that never
    /// completed.
    pub defrag_pending: u64,
    /// Received ranges looked at while placing fragments (a work counter, see `defrag`).
    pub defrag_ranges_visited: u64,
}

/// What became of one frame (or one inner packet).
enum Verdict<'x> {
    Segment(TcpSegment<'x>),
    Datagram(UdpDatagram<'x>),
    NonTcp,
    Unsupported,
    Malformed,
    /// A fragment was taken by (or dropped from) reassembly; nothing to return yet.
    Fragment,
}

/// What a frame carried, for [`Decoder::decode_packet`].
#[derive(Clone, Debug)]
pub enum Decoded<'b> {
    Tcp(TcpSegment<'b>),
    Udp(UdpDatagram<'b>),
}

pub struct Decoder {
    stats: DecodeStats,
    defrag: Defragmenter,
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Self {
        Decoder {
            stats: DecodeStats::default(),
            defrag: Defragmenter::new(
                config.defrag_max_bytes,
                config.defrag_max_datagrams,
                config.defrag_timeout_ns,
            ),
        }
    }

    /// The frame's TCP segment, if it carried one (a UDP datagram is counted and dropped).
    pub fn decode<'b>(&mut self, frame: &RawFrame<'b>) -> Option<TcpSegment<'b>> {
        match self.decode_packet(frame)? {
            Decoded::Tcp(seg) => Some(seg),
            Decoded::Udp(_) => None,
        }
    }

    /// The frame's TCP segment or UDP datagram, if it carried one.
    pub fn decode_packet<'b>(&mut self, frame: &RawFrame<'b>) -> Option<Decoded<'b>> {
        self.stats.frames += 1;
        self.stats.bytes += frame.data.len() as u64;
        // Fragments that stopped arriving expire as capture time passes, fragment or not.
        self.defrag.expire(frame.ts);
        let verdict = match link::unwrap(frame.link_type, frame.data) {
            Ok(net) => self.decode_net(frame.ts, net, 0),
            Err(LinkError::Unsupported(_)) => Verdict::Unsupported,
            Err(LinkError::NotIp) => Verdict::NonTcp,
            Err(LinkError::Malformed(_)) => Verdict::Malformed,
        };
        let d = self.defrag.stats();
        self.stats.defrag_evicted = d.evicted;
        self.stats.defrag_timed_out = d.timed_out;
        self.stats.defrag_overlaps = d.overlaps;
        self.stats.defrag_ranges_visited = d.ranges_visited;
        self.stats.defrag_pending = self.defrag.held_datagrams() as u64;
        match verdict {
            Verdict::Segment(seg) => {
                self.stats.tcp_segments += 1;
                Some(Decoded::Tcp(seg))
            }
            Verdict::Datagram(d) => {
                self.stats.udp_datagrams += 1;
                Some(Decoded::Udp(d))
            }
            Verdict::NonTcp => {
                self.stats.non_tcp += 1;
                None
            }
            Verdict::Unsupported => {
                self.stats.unsupported_link += 1;
                None
            }
            Verdict::Malformed => {
                self.stats.malformed += 1;
                None
            }
            Verdict::Fragment => None,
        }
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Reads the IP packet `net`, reassembling fragments, and continues into its payload.
    fn decode_net<'x>(&mut self, ts: Timestamp, net: NetPacket<'x>, depth: usize) -> Verdict<'x> {
        let Ok(pkt) = ip::parse(net) else {
            return Verdict::Malformed;
        };
        let Some(frag) = pkt.fragment else {
            return self.decode_payload(
                ts,
                (pkt.src, pkt.dst),
                pkt.protocol,
                pkt.payload,
                pkt.cut,
                depth,
            );
        };
        self.stats.fragments += 1;
        if pkt.truncated {
            // A fragment cut by the snap length cannot be reassembled faithfully.
            return Verdict::Malformed;
        }
        let key = DatagramKey {
            src: pkt.src,
            dst: pkt.dst,
            protocol: if pkt.is_v6 { 0 } else { pkt.protocol },
            id: frag.id,
        };
        match self
            .defrag
            .push(ts, key, frag.offset, frag.more, pkt.protocol, pkt.payload)
        {
            DefragOutcome::Held => Verdict::Fragment,
            DefragOutcome::Dropped(DropReason::Malformed(_)) => Verdict::Malformed,
            DefragOutcome::Dropped(_) => Verdict::Fragment,
            DefragOutcome::Complete(datagram) => {
                self.stats.datagrams_reassembled += 1;
                // The fragmentable part of IPv6 may start with more extension headers.
                let Ok((protocol, payload)) =
                    ip::upper_layer(datagram.protocol, &datagram.payload, pkt.is_v6)
                else {
                    return Verdict::Malformed;
                };
                let verdict =
                    self.decode_payload(ts, (pkt.src, pkt.dst), protocol, payload, 0, depth);
                into_owned(verdict)
            }
        }
    }

    /// Continues from an upper-layer payload: TCP, a tunnel, or something else.
    fn decode_payload<'x>(
        &mut self,
        ts: Timestamp,
        (src, dst): (IpAddr, IpAddr),
        protocol: u8,
        payload: &'x [u8],
        cut: u32,
        depth: usize,
    ) -> Verdict<'x> {
        match ip::transport(protocol, payload) {
            Ok(Transport::Tcp(tcp)) => {
                let mut seg = ip::segment(ts, src, dst, &tcp);
                if cut > 0 {
                    // The TCP header was captured whole (it parsed): what was cut is payload.
                    self.stats.truncated += 1;
                    seg.snapped = cut;
                }
                Verdict::Segment(seg)
            }
            Ok(Transport::Tunnel(inner)) => {
                if depth >= MAX_TUNNEL_DEPTH {
                    return Verdict::Malformed;
                }
                self.stats.tunnels_unwrapped += 1;
                let net = match inner {
                    Inner::Ip(net) => net,
                    Inner::Ethernet(frame) => match link::ethernet(frame) {
                        Ok(net) => net,
                        Err(LinkError::Malformed(_)) => return Verdict::Malformed,
                        Err(_) => return Verdict::NonTcp,
                    },
                };
                self.decode_net(ts, net, depth + 1)
            }
            Ok(Transport::Udp(udp)) => self.datagram(ts, (src, dst), &udp, cut),
            Ok(Transport::Other) => Verdict::NonTcp,
            Err(_) => Verdict::Malformed,
        }
    }

    /// A UDP datagram, unless its length field contradicts the packet. `cut`: bytes of the IP
    /// packet a snap length cut off.
    fn datagram<'x>(
        &mut self,
        ts: Timestamp,
        (src, dst): (IpAddr, IpAddr),
        udp: &UdpSlice<'x>,
        cut: u32,
    ) -> Verdict<'x> {
        let sent = udp.claimed_len.saturating_sub(8);
        let missing = sent.saturating_sub(udp.payload.len());
        // Under 8 it cannot hold its own header; longer than the packet, only if the capture cut it.
        if udp.claimed_len < 8 || missing > cut as usize {
            return Verdict::Malformed;
        }
        if missing > 0 {
            self.stats.truncated += 1;
        }
        Verdict::Datagram(UdpDatagram {
            ts,
            src: SocketAddr::new(src, udp.src_port),
            dst: SocketAddr::new(dst, udp.dst_port),
            payload: Cow::Borrowed(udp.payload),
            snapped: missing as u32,
        })
    }
}

/// Detaches a verdict from a reassembly buffer about to be dropped.
fn into_owned<'x>(verdict: Verdict<'_>) -> Verdict<'x> {
    match verdict {
        Verdict::Segment(seg) => Verdict::Segment(TcpSegment {
            ts: seg.ts,
            flow: seg.flow,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            payload: Cow::Owned(seg.payload.into_owned()),
            snapped: seg.snapped,
        }),
        Verdict::Datagram(d) => Verdict::Datagram(d.into_owned()),
        Verdict::NonTcp => Verdict::NonTcp,
        Verdict::Unsupported => Verdict::Unsupported,
        Verdict::Malformed => Verdict::Malformed,
        Verdict::Fragment => Verdict::Fragment,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::*;
    use crate::testutil::*;
    use crate::LinkType;

    fn frame(link: LinkType, data: &[u8], ts: u64) -> RawFrame<'_> {
        RawFrame {
            ts: Timestamp(ts),
            link_type: link,
            data,
            orig_len: data.len() as u32,
            offset: 0,
        }
    }

    fn decode_one(link: LinkType, data: &[u8]) -> (Option<TcpSegment<'static>>, DecodeStats) {
        let mut dec = Decoder::new(DecodeConfig::default());
        let seg = dec.decode(&frame(link, data, 5)).map(owned);
        (seg, dec.stats().clone())
    }

    fn owned(seg: TcpSegment<'_>) -> TcpSegment<'static> {
        TcpSegment {
            payload: Cow::Owned(seg.payload.into_owned()),
            ..seg
        }
    }

    fn assert_v4_segment(seg: &TcpSegment<'_>, payload: &[u8]) {
        assert_eq!(
            seg.flow.src,
            SocketAddr::new(Ipv4Addr::from(SRC4).into(), SPORT)
        );
        assert_eq!(
            seg.flow.dst,
            SocketAddr::new(Ipv4Addr::from(DST4).into(), DPORT)
        );
        assert_eq!(seg.seq, SEQ);
        assert_eq!(seg.ack, ACK);
        assert_eq!(seg.window, WINDOW);
        assert!(seg.flags.ack() && !seg.flags.syn());
        assert_eq!(seg.flags.0 & crate::TcpFlags::PSH, crate::TcpFlags::PSH);
        assert_eq!(&seg.payload[..], payload);
    }

    #[test]
    fn ethernet_frame_borrows_payload_and_cuts_padding() {
        let mut data = ether(0x0800, &tcp4(b"GET"));
        data.extend_from_slice(&[0xee; 9]); // padding / FCS after the IP packet
        let mut dec = Decoder::new(DecodeConfig::default());
        let f = frame(LinkType::ETHERNET, &data, 42);
        let seg = dec.decode(&f).expect("segment");
        assert!(matches!(seg.payload, Cow::Borrowed(_)));
        assert_v4_segment(&seg, b"GET");
        assert_eq!(seg.ts, Timestamp(42));
        let s = dec.stats();
        assert_eq!(
            (s.frames, s.bytes, s.tcp_segments),
            (1, data.len() as u64, 1)
        );
    }

    #[test]
    fn ipv6_segment() {
        let (seg, _) = decode_one(LinkType::RAW, &tcp6(b"v6"));
        let seg = seg.expect("segment");
        assert_eq!(
            seg.flow.src,
            SocketAddr::new(Ipv6Addr::from(SRC6).into(), SPORT)
        );
        assert_eq!(&seg.payload[..], b"v6");
    }

    #[test]
    fn every_link_type_reaches_tcp() {
        let ip = tcp4(b"link");
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0xaa, 0, 0, 8, 0];
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![
            8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 0xaa, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        let mut nflog = vec![2, 0, 0, 0];
        nflog.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
        nflog.extend_from_slice(&9u16.to_le_bytes());
        nflog.extend_from_slice(&ip);
        let cases: Vec<(LinkType, Vec<u8>)> = vec![
            (LinkType::ETHERNET, ether(0x0800, &ip)),
            (LinkType::RAW, ip.clone()),
            (LinkType(12), ip.clone()),
            (LinkType(14), ip.clone()),
            (LinkType::IPV4, ip.clone()),
            (LinkType::LINUX_SLL, sll),
            (LinkType::LINUX_SLL2, sll2),
            (LinkType::NFLOG, nflog),
            (LinkType::NULL, [&2u32.to_le_bytes()[..], &ip].concat()),
            (LinkType::LOOP, [&2u32.to_be_bytes()[..], &ip].concat()),
        ];
        for (link, data) in cases {
            let (seg, stats) = decode_one(link, &data);
            assert_v4_segment(
                &seg.unwrap_or_else(|| panic!("{link:?}: {stats:?}")),
                b"link",
            );
        }
    }

    #[test]
    fn counts_each_kind_of_miss() {
        let (seg, s) = decode_one(LinkType(147), &[0; 40]);
        assert!(seg.is_none());
        assert_eq!(s.unsupported_link, 1);
        let (_, s) = decode_one(LinkType::ETHERNET, &ether(0x0806, &[0; 28]));
        assert_eq!(s.non_tcp, 1);
        let (seg, s) = decode_one(LinkType::RAW, &udp4(53, b"dns"));
        assert!(seg.is_none(), "decode keeps segments only");
        assert_eq!((s.udp_datagrams, s.non_tcp), (1, 0));
        let (_, s) = decode_one(LinkType::RAW, &ip4_raw(1, &[8, 0, 0, 0]));
        assert_eq!(s.non_tcp, 1);
        let (_, s) = decode_one(LinkType::RAW, &tcp4(b"x")[..30]);
        assert_eq!(s.malformed, 1);
        let (_, s) = decode_one(LinkType::ETHERNET, &[1, 2, 3]);
        assert_eq!(s.malformed, 1);
    }

    fn udp(data: &[u8]) -> (Option<UdpDatagram<'static>>, DecodeStats) {
        let mut dec = Decoder::new(DecodeConfig::default());
        let got = match dec.decode_packet(&frame(LinkType::RAW, data, 7)) {
            Some(Decoded::Udp(d)) => Some(d.into_owned()),
            Some(Decoded::Tcp(_)) => panic!("tcp"),
            None => None,
        };
        (got, dec.stats().clone())
    }

    #[test]
    fn udp_datagram_with_addresses_borrowing_the_frame() {
        let mut data = ether(0x0800, &udp4(53, b"query"));
        data.extend_from_slice(&[0xee; 6]);
        let mut dec = Decoder::new(DecodeConfig::default());
        let Some(Decoded::Udp(d)) = dec.decode_packet(&frame(LinkType::ETHERNET, &data, 9)) else {
            panic!("no datagram: {:?}", dec.stats());
        };
        assert!(matches!(d.payload, Cow::Borrowed(_)));
        assert_eq!(&d.payload[..], b"query");
        assert_eq!(d.src, "192.0.2.1:5555".parse::<SocketAddr>().unwrap());
        assert_eq!(d.dst, "192.0.2.2:53".parse::<SocketAddr>().unwrap());
        assert_eq!((d.ts, d.snapped), (Timestamp(9), 0));
        assert_eq!(dec.stats().udp_datagrams, 1);
        // A TCP frame through the same call is a segment.
        let tcp = tcp4(b"x");
        let got = dec.decode_packet(&frame(LinkType::RAW, &tcp, 10));
        assert!(matches!(got, Some(Decoded::Tcp(_))));
    }

    #[test]
    fn udp_length_that_lies_is_malformed_never_a_panic() {
        let good = udp4(53, b"0123456789");
        let with_len = |len: u16| {
            let mut p = good.clone();
            p[24..26].copy_from_slice(&len.to_be_bytes());
            p
        };
        // Shorter than the packet: the payload is cut to it (the rest is trailer).
        let (d, _) = udp(&with_len(8 + 4));
        assert_eq!(&d.expect("datagram").payload[..], b"0123");
        for len in [0, 1, 7, 8 + 11, 0xffff] {
            let (d, s) = udp(&with_len(len));
            assert!(d.is_none(), "{len}");
            assert_eq!((s.malformed, s.udp_datagrams), (1, 0), "{len}");
        }
        // Header cut short, by the packet or by the IP length.
        let (d, s) = udp(&good[..20 + 5]);
        assert!(d.is_none());
        assert_eq!(s.malformed, 1);
        // Every length, every cut: no panic.
        for cut in 20..good.len() {
            for len in (0..=40).chain([0xffff]) {
                let _ = udp(&with_len(len)[..cut]);
            }
        }
    }

    #[test]
    fn udp_cut_by_the_snap_length_keeps_captured_bytes() {
        let ip = udp4(53, b"0123456789");
        let (d, s) = udp(&ip[..ip.len() - 4]);
        let d = d.expect("datagram");
        assert_eq!((&d.payload[..], d.snapped), (&b"012345"[..], 4));
        assert_eq!(s.truncated, 1);
    }

    #[test]
    fn udp_over_ipv6_and_from_fragments() {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv6(SRC6, DST6, 64)
            .udp(5353, 53)
            .write(&mut out, b"six")
            .expect("build");
        let (d, _) = udp(&out);
        let d = d.expect("datagram");
        assert_eq!(d.src, SocketAddr::new(Ipv6Addr::from(SRC6).into(), 5353));
        assert_eq!(&d.payload[..], b"six");

        let body: Vec<u8> = (0..64u8).collect();
        let whole = udp4(53, &body);
        let (a, b) = whole[20..].split_at(40);
        let mk = |offset: u16, more: bool, data: &[u8]| {
            let mut p = ip4_raw(17, data);
            p[4..6].copy_from_slice(&7u16.to_be_bytes());
            p[6..8].copy_from_slice(&((u16::from(more) << 13) | (offset / 8)).to_be_bytes());
            p
        };
        let mut dec = Decoder::new(DecodeConfig::default());
        let (f1, f2) = (mk(0, true, a), mk(40, false, b));
        assert!(dec.decode_packet(&frame(LinkType::RAW, &f1, 1)).is_none());
        let Some(Decoded::Udp(d)) = dec.decode_packet(&frame(LinkType::RAW, &f2, 2)) else {
            panic!("{:?}", dec.stats());
        };
        assert_eq!((&d.payload[..], d.ts), (&body[..], Timestamp(2)));
        assert!(matches!(d.payload, Cow::Owned(_)));
    }

    #[test]
    fn snaplen_truncated_segment_keeps_captured_bytes() {
        let ip = tcp4(b"0123456789");
        let (seg, s) = decode_one(LinkType::RAW, &ip[..ip.len() - 4]);
        let seg = seg.expect("segment");
        assert_eq!(&seg.payload[..], b"012345");
        // What was cut is counted from the IP length, for reassembly to skip exactly.
        assert_eq!(seg.snapped, 4);
        assert_eq!(s.truncated, 1);
        let (seg, _) = decode_one(LinkType::RAW, &ip);
        assert_eq!(seg.expect("segment").snapped, 0);
    }

    fn vxlan(inner: &[u8]) -> Vec<u8> {
        let mut body = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
        body.extend_from_slice(inner);
        udp4(4789, &body)
    }

    fn geneve(protocol: u16, options: usize, inner: &[u8]) -> Vec<u8> {
        let mut body = vec![(options / 4) as u8, 0];
        body.extend_from_slice(&protocol.to_be_bytes());
        body.extend_from_slice(&[0, 0, 7, 0]);
        body.resize(body.len() + options, 0xab);
        body.extend_from_slice(inner);
        udp4(6081, &body)
    }

    /// GRE with the given optional fields; `seq` adds the sequence number.
    fn gre(protocol: u16, checksum: bool, key: bool, seq: bool, inner: &[u8]) -> Vec<u8> {
        let flags = (u8::from(checksum) << 7) | (u8::from(key) << 5) | (u8::from(seq) << 4);
        let mut body = vec![flags, 0];
        body.extend_from_slice(&protocol.to_be_bytes());
        for present in [checksum, key, seq] {
            if present {
                body.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
            }
        }
        body.extend_from_slice(inner);
        ip4_raw(47, &body)
    }

    fn erspan2(inner: &[u8]) -> Vec<u8> {
        let mut hdr = vec![0x10, 0x0a, 0x00, 0x01, 0, 0, 0, 5];
        hdr.extend_from_slice(inner);
        hdr
    }

    fn erspan3(optional: bool, frame_type: u8, inner: &[u8]) -> Vec<u8> {
        let mut hdr = vec![0x20, 0x0a, 0x00, 0x01];
        hdr.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // timestamp
        hdr.extend_from_slice(&[0x00, 0x00]); // SGT
        hdr.push(frame_type << 2);
        hdr.push(u8::from(optional) | 0x04); // D bit set, O bit as asked
        if optional {
            hdr.extend_from_slice(&[0x5a; 8]);
        }
        hdr.extend_from_slice(inner);
        hdr
    }

    #[test]
    fn mirror_tunnels_are_unwrapped() {
        let ip = tcp4(b"tunnel");
        let eth = ether(0x8100, &tag(3, 0x0800, &ip));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("vxlan", vxlan(&eth)),
            ("geneve ethernet", geneve(0x6558, 8, &eth)),
            ("geneve ipv4", geneve(0x0800, 0, &ip)),
            ("gre ipv4", gre(0x0800, false, false, false, &ip)),
            ("gre teb all fields", gre(0x6558, true, true, true, &eth)),
            ("erspan I", gre(0x88be, false, false, false, &eth)),
            ("erspan II", gre(0x88be, false, false, true, &erspan2(&eth))),
            (
                "erspan III",
                gre(0x22eb, false, false, true, &erspan3(false, 0, &eth)),
            ),
            (
                "erspan III + platform",
                gre(0x22eb, false, false, true, &erspan3(true, 0, &eth)),
            ),
            (
                "erspan III ip",
                gre(0x22eb, false, false, true, &erspan3(false, 2, &ip)),
            ),
            ("ip in ip", ip4_raw(4, &ip)),
        ];
        for (name, outer) in cases {
            let data = ether(0x0800, &outer);
            let (seg, s) = decode_one(LinkType::ETHERNET, &data);
            assert_v4_segment(&seg.unwrap_or_else(|| panic!("{name}: {s:?}")), b"tunnel");
            assert_eq!(s.tunnels_unwrapped, 1, "{name}");
        }
        // IPv6 inside GRE inside VXLAN: two levels.
        let ip6 = tcp6(b"deep");
        let data = vxlan(&ether(0x0800, &gre(0x86dd, false, true, false, &ip6)));
        let (seg, s) = decode_one(LinkType::RAW, &data);
        assert_eq!(&seg.expect("segment").payload[..], b"deep");
        assert_eq!(s.tunnels_unwrapped, 2);
    }

    #[test]
    fn tunnel_nesting_is_bounded() {
        let mut pkt = tcp4(b"x");
        for _ in 0..MAX_TUNNEL_DEPTH {
            pkt = ip4_raw(4, &pkt);
        }
        let (seg, _) = decode_one(LinkType::RAW, &pkt);
        assert!(seg.is_some());
        let (seg, s) = decode_one(LinkType::RAW, &ip4_raw(4, &pkt));
        assert!(seg.is_none());
        assert_eq!(s.malformed, 1);
    }

    #[test]
    fn vxlan_without_i_flag_is_plain_udp() {
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&ether(0x0800, &tcp4(b"x")));
        let (seg, s) = decode_one(LinkType::RAW, &udp4(4789, &body));
        assert!(seg.is_none());
        assert_eq!(s.non_tcp, 1);
    }

    fn run(dec: &mut Decoder, frames: &[(Vec<u8>, u64)]) -> Vec<TcpSegment<'static>> {
        frames
            .iter()
            .filter_map(|(data, ts)| dec.decode(&frame(LinkType::RAW, data, *ts)).map(owned))
            .collect()
    }

    fn split_tcp(payload: &[u8]) -> (Vec<u8>, [Vec<u8>; 3]) {
        let tcp = tcp_bytes(payload);
        assert!(tcp.len() > 48);
        (
            tcp.clone(),
            [tcp[..24].to_vec(), tcp[24..48].to_vec(), tcp[48..].to_vec()],
        )
    }

    #[test]
    fn ipv4_fragments_in_order_and_out_of_order() {
        let payload: Vec<u8> = (0..100u8).collect();
        let (_, [a, b, c]) = split_tcp(&payload);
        let orders: [[usize; 3]; 3] = [[0, 1, 2], [2, 0, 1], [1, 2, 0]];
        for order in orders {
            let parts = [
                frag4(9, 0, true, &a),
                frag4(9, 24, true, &b),
                frag4(9, 48, false, &c),
            ];
            let frames: Vec<_> = order
                .iter()
                .enumerate()
                .map(|(i, &k)| (parts[k].clone(), 100 + i as u64))
                .collect();
            let mut dec = Decoder::new(DecodeConfig::default());
            let segs = run(&mut dec, &frames);
            assert_eq!(segs.len(), 1, "{order:?}");
            assert_v4_segment(&segs[0], &payload);
            assert!(matches!(segs[0].payload, Cow::Owned(_)));
            assert_eq!(segs[0].ts, Timestamp(102), "timestamp of the last fragment");
            let s = dec.stats();
            assert_eq!(
                (s.fragments, s.datagrams_reassembled, s.tcp_segments),
                (3, 1, 1)
            );
        }
    }

    #[test]
    fn ipv4_overlap_first_bytes_win() {
        let payload: Vec<u8> = (0..100u8).collect();
        let (tcp, [a, b, c]) = split_tcp(&payload);
        let mut evil = tcp[16..40].to_vec();
        evil.iter_mut().for_each(|x| *x = !*x);
        let mut dec = Decoder::new(DecodeConfig::default());
        let segs = run(
            &mut dec,
            &[
                (frag4(1, 0, true, &a), 1),
                (frag4(1, 24, true, &b), 2),
                (frag4(1, 16, true, &evil), 3),
                (frag4(1, 48, false, &c), 4),
            ],
        );
        assert_eq!(segs.len(), 1);
        assert_v4_segment(&segs[0], &payload);
        assert_eq!(dec.stats().defrag_overlaps, 1);
    }

    #[test]
    fn ipv6_fragments_and_overlap_discard() {
        let payload: Vec<u8> = (0..90u8).collect();
        let tcp = tcp6(&payload)[40..].to_vec();
        let (a, b) = tcp.split_at(56);
        let mut dec = Decoder::new(DecodeConfig::default());
        let segs = run(
            &mut dec,
            &[(frag6(77, 56, false, b), 1), (frag6(77, 0, true, a), 2)],
        );
        assert_eq!(segs.len(), 1);
        assert_eq!(&segs[0].payload[..], &payload[..]);
        assert_eq!(segs[0].seq, SEQ);

        // RFC 5722: an overlapping fragment discards the datagram.
        let mut dec = Decoder::new(DecodeConfig::default());
        let segs = run(
            &mut dec,
            &[
                (frag6(78, 0, true, a), 1),
                (frag6(78, 48, true, &[0u8; 8]), 2),
                (frag6(78, 56, false, b), 3),
            ],
        );
        assert!(segs.is_empty());
        assert_eq!(dec.stats().defrag_overlaps, 1);
        // An exact duplicate is harmless.
        let mut dec = Decoder::new(DecodeConfig::default());
        let segs = run(
            &mut dec,
            &[
                (frag6(79, 0, true, a), 1),
                (frag6(79, 0, true, a), 2),
                (frag6(79, 56, false, b), 3),
            ],
        );
        assert_eq!(segs.len(), 1);
    }

    #[test]
    fn defrag_caps_evict_oldest_and_time_out() {
        let payload: Vec<u8> = (0..100u8).collect();
        let (_, [a, b, c]) = split_tcp(&payload);
        // One datagram at a time: a second id evicts the first.
        let config = DecodeConfig {
            defrag_max_datagrams: 1,
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(config);
        let segs = run(
            &mut dec,
            &[
                (frag4(1, 0, true, &a), 1),
                (frag4(2, 0, true, &a), 2),
                (frag4(1, 24, true, &b), 3),
                (frag4(1, 48, false, &c), 4),
            ],
        );
        assert!(segs.is_empty());
        assert!(dec.stats().defrag_evicted >= 1);

        // Byte cap smaller than the datagram.
        let config = DecodeConfig {
            defrag_max_bytes: 40,
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(config);
        let segs = run(
            &mut dec,
            &[
                (frag4(1, 0, true, &a), 1),
                (frag4(1, 24, true, &b), 2),
                (frag4(1, 48, false, &c), 3),
            ],
        );
        assert!(segs.is_empty());
        assert!(dec.stats().defrag_evicted >= 1);

        // Timeout by capture time.
        let config = DecodeConfig {
            defrag_timeout_ns: 1_000,
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(config);
        let segs = run(
            &mut dec,
            &[
                (frag4(1, 0, true, &a), 1),
                (frag4(1, 24, true, &b), 500),
                (frag4(1, 48, false, &c), 5_000),
            ],
        );
        assert!(segs.is_empty());
        assert_eq!(dec.stats().defrag_timed_out, 1);
    }

    #[test]
    fn fragmented_tunnel_payload_is_reassembled_then_unwrapped() {
        let inner = ether(0x0800, &tcp4(b"inside a fragmented vxlan"));
        let outer = vxlan(&inner);
        let udp = &outer[20..];
        let (a, b) = udp.split_at(32);
        let mk = |offset: u16, more: bool, data: &[u8]| {
            let mut p = ip4_raw(17, data);
            p[4..6].copy_from_slice(&5u16.to_be_bytes());
            let flags_off = (u16::from(more) << 13) | (offset / 8);
            p[6..8].copy_from_slice(&flags_off.to_be_bytes());
            p
        };
        let mut dec = Decoder::new(DecodeConfig::default());
        let segs = run(&mut dec, &[(mk(0, true, a), 1), (mk(32, false, b), 2)]);
        assert_eq!(segs.len(), 1);
        assert_v4_segment(&segs[0], b"inside a fragmented vxlan");
        assert_eq!(dec.stats().tunnels_unwrapped, 1);
    }
}
