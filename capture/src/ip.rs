//! IPv4 / IPv6 headers, the TCP header, and the mirror tunnels found under IP.
//!
//! Contract: [`parse`] reads one IP header (with IPv6 extension headers) through etherparse's
//! checked slices and returns an [`IpPacket`]: addresses, the upper-layer protocol, the payload
//! cut to the length the IP header announces (so link padding and trailers are dropped), and the
//! fragment position when the packet is a fragment. A packet shorter than its IP length (a snap
//! length cut it) is kept and flagged `truncated`. [`transport`] then classifies the payload:
//! a TCP header ([`TcpSlice`]), a mirror tunnel (VXLAN, Geneve, GRE incl. ERSPAN I/II/III,
//! IP-in-IP) whose inner frame is returned as [`Inner`], or something else.
//!
//! Invariants: everything returned borrows the input; nothing here allocates, copies payload,
//! verifies checksums (a tap often sees offloaded, not-yet-filled checksums) or keeps state.
//! Fragment reassembly is `defrag.rs`'s job; the loop over nested tunnels lives in `decode.rs`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpSlice,
};

use crate::bytes::rd16;
use crate::link::{NetPacket, NetProto};
use crate::tcp::{FlowKey, TcpFlags, TcpSegment};
use crate::Timestamp;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const IPV4_IN_IP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_IN_IP: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const AUTH: u8 = 51;
    pub const IPV6_DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// UDP destination port of VXLAN (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// UDP destination port of Geneve (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;

/// Upper bound on IPv6 extension headers walked in one packet.
const MAX_EXT_HEADERS: usize = 8;

/// Position of a fragment in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment header identification.
    pub id: u32,
    /// Byte offset of this fragment's data in the reassembled payload.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// One IP packet, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct IpPacket<'b> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol; for an IPv6 fragment, the fragment header's next header.
    pub protocol: u8,
    /// Bytes after all headers, cut to the IP length.
    pub payload: &'b [u8],
    pub fragment: Option<Fragment>,
    /// The capture holds fewer bytes than the IP header announces.
    pub truncated: bool,
    /// How many fewer: bytes sent at the end of this packet that the snap length cut off.
    pub cut: u32,
    pub is_v6: bool,
}

/// Why a packet could not be read. The text names the layer and the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Reads the IP header of `net`.
pub fn parse(net: NetPacket<'_>) -> Result<IpPacket<'_>, Malformed> {
    match net.proto {
        NetProto::Ipv4 => parse_v4(net.bytes),
        NetProto::Ipv6 => parse_v6(net.bytes),
    }
}

fn parse_v4(bytes: &[u8]) -> Result<IpPacket<'_>, Malformed> {
    let header =
        Ipv4HeaderSlice::from_slice(bytes).map_err(|_| Malformed("IPv4 header unreadable"))?;
    let header_len = header.slice().len();
    let total_len = usize::from(header.total_len());
    let (end, truncated) = if total_len == 0 {
        // TCP segmentation offload: the NIC fills the length in later; trust the capture.
        (bytes.len(), false)
    } else if total_len < header_len {
        return Err(Malformed("IPv4 total length shorter than its header"));
    } else if total_len > bytes.len() {
        (bytes.len(), true)
    } else {
        (total_len, false)
    };
    // The IP length, not the frame's original length, says what was cut: that one also counts
    // link-layer padding and trailers.
    let cut = if truncated {
        total_len - bytes.len()
    } else {
        0
    };
    let frag_offset = u32::from(header.fragments_offset().byte_offset());
    let more = header.more_fragments();
    let fragment = (more || frag_offset != 0).then_some(Fragment {
        id: u32::from(header.identification()),
        offset: frag_offset,
        more,
    });
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::from(header.source())),
        dst: IpAddr::V4(Ipv4Addr::from(header.destination())),
        protocol: header.protocol().0,
        payload: &bytes[header_len..end],
        fragment,
        truncated,
        cut: cut as u32,
        is_v6: false,
    })
}

fn parse_v6(bytes: &[u8]) -> Result<IpPacket<'_>, Malformed> {
    let header =
        Ipv6HeaderSlice::from_slice(bytes).map_err(|_| Malformed("IPv6 header unreadable"))?;
    let payload_len = usize::from(header.payload_length());
    let after = &bytes[40..];
    let (payload, truncated) = if payload_len == 0 {
        // Jumbogram (RFC 2675) or offload: the length is elsewhere; trust the capture.
        (after, false)
    } else if payload_len > after.len() {
        (after, true)
    } else {
        (&after[..payload_len], false)
    };
    let cut = if truncated {
        payload_len - after.len()
    } else {
        0
    };
    let mut protocol = header.next_header().0;
    let mut rest = payload;
    let mut fragment = None;
    for _ in 0..MAX_EXT_HEADERS {
        match protocol {
            proto::IPV6_FRAG => {
                let frag = Ipv6FragmentHeaderSlice::from_slice(rest)
                    .map_err(|_| Malformed("IPv6 fragment header cut short"))?;
                protocol = frag.next_header().0;
                rest = &rest[8..];
                if frag.is_fragmenting_payload() {
                    // RFC 8200 §4.5: what follows is the fragmentable part; its headers are
                    // read after reassembly.
                    fragment = Some(Fragment {
                        id: frag.identification(),
                        offset: u32::from(frag.fragment_offset().byte_offset()),
                        more: frag.more_fragments(),
                    });
                    break;
                }
                // An atomic fragment (offset 0, no more): just skip the header (RFC 6946).
            }
            _ => match skip_extension(protocol, rest, true)? {
                Some((next, after_ext)) => {
                    protocol = next;
                    rest = after_ext;
                }
                None => break,
            },
        }
    }
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(header.source())),
        dst: IpAddr::V6(Ipv6Addr::from(header.destination())),
        protocol,
        payload: rest,
        fragment,
        truncated,
        cut: cut as u32,
        is_v6: true,
    })
}

/// Skips one extension header of type `protocol` at the start of `bytes`; `None` when
/// `protocol` is not an extension header. IPv4 knows only AH.
fn skip_extension(
    protocol: u8,
    bytes: &[u8],
    is_v6: bool,
) -> Result<Option<(u8, &[u8])>, Malformed> {
    match protocol {
        proto::AUTH => {
            let ah = IpAuthHeaderSlice::from_slice(bytes)
                .map_err(|_| Malformed("IP authentication header unreadable"))?;
            Ok(Some((ah.next_header().0, &bytes[ah.slice().len()..])))
        }
        proto::HOP_BY_HOP
        | proto::IPV6_ROUTE
        | proto::IPV6_DEST_OPTS
        | proto::MOBILITY
        | proto::HIP
        | proto::SHIM6
            if is_v6 =>
        {
            let ext = Ipv6RawExtHeaderSlice::from_slice(bytes)
                .map_err(|_| Malformed("IPv6 extension header cut short"))?;
            Ok(Some((ext.next_header().0, &bytes[ext.slice().len()..])))
        }
        _ => Ok(None),
    }
}

/// Skips the extension headers at the start of a (reassembled) payload: the headers of an
/// IPv6 fragmentable part, or an AH in IPv4.
pub fn upper_layer(
    mut protocol: u8,
    mut bytes: &[u8],
    is_v6: bool,
) -> Result<(u8, &[u8]), Malformed> {
    for _ in 0..MAX_EXT_HEADERS {
        match skip_extension(protocol, bytes, is_v6)? {
            Some((next, rest)) => {
                protocol = next;
                bytes = rest;
            }
            None => return Ok((protocol, bytes)),
        }
    }
    Err(Malformed("too many IP extension headers"))
}

/// The frame inside a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'b> {
    /// An Ethernet frame (VXLAN, Geneve 0x6558, GRE 0x6558, ERSPAN).
    Ethernet(&'b [u8]),
    /// An IP packet (Geneve / GRE with an IP protocol type, IP-in-IP, ERSPAN III frame type IP).
    Ip(NetPacket<'b>),
}

/// What an IP payload carries.
#[derive(Clone, Debug)]
pub enum Transport<'b> {
    Tcp(TcpSlice<'b>),
    Tunnel(Inner<'b>),
    /// UDP that is not a known tunnel.
    Udp(UdpSlice<'b>),
    /// ICMP, ESP, ...
    Other,
}

/// A UDP header's ports and what its length field claims, with the payload cut to that length
/// when it fits in the packet (the decoder judges a claim longer than the packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpSlice<'b> {
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP length field: header and payload, in bytes.
    pub claimed_len: usize,
    pub payload: &'b [u8],
}

/// Classifies the upper-layer payload of an unfragmented (or reassembled) packet.
pub fn transport(protocol: u8, payload: &[u8]) -> Result<Transport<'_>, Malformed> {
    match protocol {
        proto::TCP => TcpSlice::from_slice(payload)
            .map(Transport::Tcp)
            .map_err(|_| Malformed("TCP header unreadable")),
        proto::UDP => udp(payload),
        proto::GRE => gre(payload),
        proto::IPV4_IN_IP => Ok(Transport::Tunnel(Inner::Ip(NetPacket {
            proto: NetProto::Ipv4,
            bytes: payload,
        }))),
        proto::IPV6_IN_IP => Ok(Transport::Tunnel(Inner::Ip(NetPacket {
            proto: NetProto::Ipv6,
            bytes: payload,
        }))),
        _ => Ok(Transport::Other),
    }
}

fn udp(payload: &[u8]) -> Result<Transport<'_>, Malformed> {
    let header = payload.get(..8).ok_or(Malformed("UDP header cut short"))?;
    let src_port = rd16(header, 0, true);
    let dst_port = rd16(header, 2, true);
    let len = usize::from(rd16(header, 4, true));
    // The UDP length cuts nothing the IP length did not already cut, unless it is smaller.
    let body = if (8..=payload.len()).contains(&len) {
        &payload[8..len]
    } else {
        &payload[8..]
    };
    match dst_port {
        VXLAN_PORT => vxlan(body),
        GENEVE_PORT => geneve(body),
        _ => Ok(Transport::Udp(UdpSlice {
            src_port,
            dst_port,
            claimed_len: len,
            payload: body,
        })),
    }
}

/// VXLAN (RFC 7348 §5): flags (I bit 0x08 = valid VNI), 3 reserved, VNI (3), reserved; then an
/// Ethernet frame. Without the I bit this is not VXLAN as we know it.
fn vxlan(body: &[u8]) -> Result<Transport<'_>, Malformed> {
    let header = body.get(..8).ok_or(Malformed("VXLAN header cut short"))?;
    if header[0] & 0x08 == 0 {
        return Ok(Transport::Other);
    }
    Ok(Transport::Tunnel(Inner::Ethernet(&body[8..])))
}

/// Geneve (RFC 8926 §3.4): Ver(2) OptLen(6, in 4-byte words) | O C Rsvd | protocol type (16) |
/// VNI (24) | reserved; then the options, then the inner frame typed by the EtherType.
fn geneve(body: &[u8]) -> Result<Transport<'_>, Malformed> {
    let header = body.get(..8).ok_or(Malformed("Geneve header cut short"))?;
    if header[0] >> 6 != 0 {
        // Only version 0 is defined; anything else cannot be parsed safely.
        return Ok(Transport::Other);
    }
    let len = 8 + usize::from(header[0] & 0x3f) * 4;
    let inner = body
        .get(len..)
        .ok_or(Malformed("Geneve options cut short"))?;
    ethertype_inner(rd16(header, 2, true), inner)
}

fn ethertype_inner(ethertype: u16, inner: &[u8]) -> Result<Transport<'_>, Malformed> {
    Ok(match ethertype {
        0x6558 => Transport::Tunnel(Inner::Ethernet(inner)),
        0x0800 => Transport::Tunnel(Inner::Ip(NetPacket {
            proto: NetProto::Ipv4,
            bytes: inner,
        })),
        0x86dd => Transport::Tunnel(Inner::Ip(NetPacket {
            proto: NetProto::Ipv6,
            bytes: inner,
        })),
        _ => Transport::Other,
    })
}

const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;

/// GRE (RFC 2784 with RFC 2890 key and sequence; RFC 1701 flag layout): C R K S s Recur | Flags
/// Ver | protocol type; then checksum+offset if C or R, key if K, sequence if S. Only version 0
/// carries mirror traffic (version 1 is PPTP); source routing (R) is obsolete and rejected.
fn gre(payload: &[u8]) -> Result<Transport<'_>, Malformed> {
    let header = payload.get(..4).ok_or(Malformed("GRE header cut short"))?;
    let flags = header[0];
    if header[1] & 0x07 != 0 {
        return Ok(Transport::Other);
    }
    if flags & 0x40 != 0 {
        return Err(Malformed("GRE with source routing"));
    }
    let checksum = flags & 0x80 != 0;
    let key = flags & 0x20 != 0;
    let sequence = flags & 0x10 != 0;
    let len = 4 + 4 * (usize::from(checksum) + usize::from(key) + usize::from(sequence));
    let body = payload
        .get(len..)
        .ok_or(Malformed("GRE optional fields cut short"))?;
    match rd16(header, 2, true) {
        // ERSPAN (draft-foschiano-erspan-03): type I has no sequence number and no ERSPAN
        // header; type II has the GRE sequence number and an 8-byte header (§4.1).
        GRE_ERSPAN_1_2 if !sequence => Ok(Transport::Tunnel(Inner::Ethernet(body))),
        GRE_ERSPAN_1_2 => {
            let inner = body
                .get(8..)
                .ok_or(Malformed("ERSPAN II header cut short"))?;
            Ok(Transport::Tunnel(Inner::Ethernet(inner)))
        }
        GRE_ERSPAN_3 => erspan3(body),
        other => ethertype_inner(other, body),
    }
}

/// ERSPAN type III (draft-foschiano-erspan-03 §4.2): 12-byte header; word 3 is
/// SGT(16) P(1) FT(5) HwID(6) D(1) Gra(2) O(1). O set → an 8-byte platform-specific
/// subheader follows. FT 0 is an Ethernet frame, FT 2 an IP packet.
fn erspan3(body: &[u8]) -> Result<Transport<'_>, Malformed> {
    let header = body
        .get(..12)
        .ok_or(Malformed("ERSPAN III header cut short"))?;
    let optional = header[11] & 0x01 != 0;
    let frame_type = (header[10] >> 2) & 0x1f;
    let len = if optional { 20 } else { 12 };
    let inner = body
        .get(len..)
        .ok_or(Malformed("ERSPAN III platform subheader cut short"))?;
    match frame_type {
        0 => Ok(Transport::Tunnel(Inner::Ethernet(inner))),
        2 => match inner.first().map(|b| b >> 4) {
            Some(4) => Ok(Transport::Tunnel(Inner::Ip(NetPacket {
                proto: NetProto::Ipv4,
                bytes: inner,
            }))),
            Some(6) => Ok(Transport::Tunnel(Inner::Ip(NetPacket {
                proto: NetProto::Ipv6,
                bytes: inner,
            }))),
            _ => Err(Malformed("ERSPAN III IP frame with bad version")),
        },
        _ => Ok(Transport::Other),
    }
}

/// Builds the decoder's output from a TCP header slice; the payload stays borrowed.
pub fn segment<'b>(ts: Timestamp, src: IpAddr, dst: IpAddr, tcp: &TcpSlice<'b>) -> TcpSegment<'b> {
    TcpSegment {
        ts,
        flow: FlowKey::new(src, tcp.source_port(), dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        // Byte 13 of the TCP header holds CWR ECE URG ACK PSH RST SYN FIN.
        flags: TcpFlags(tcp.header_slice()[13]),
        window: tcp.window_size(),
        payload: Cow::Borrowed(tcp.payload()),
        snapped: 0,
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{IpNumber, Ipv6Header};

    use super::*;
    use crate::testutil::*;

    fn v6_with(next_header: u8, rest: &[u8]) -> Vec<u8> {
        let header = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: rest.len() as u16,
            next_header: IpNumber(next_header),
            hop_limit: 64,
            source: SRC6,
            destination: DST6,
        };
        [&header.to_bytes()[..], rest].concat()
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let tcp = tcp_bytes(b"ext");
        let mut rest = vec![proto::IPV6_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, PadN
        rest.extend_from_slice(&[proto::TCP, 0, 1, 4, 0, 0, 0, 0]); // destination options
        rest.extend_from_slice(&tcp);
        rest.extend_from_slice(&[0xee; 6]); // beyond the payload length: cut
        let mut bytes = v6_with(proto::HOP_BY_HOP, &rest);
        let payload_len = (rest.len() - 6) as u16;
        bytes[4..6].copy_from_slice(&payload_len.to_be_bytes());
        let pkt = parse(NetPacket {
            proto: NetProto::Ipv6,
            bytes: &bytes,
        })
        .expect("parse");
        assert_eq!(pkt.protocol, proto::TCP);
        assert_eq!(pkt.payload, &tcp[..]);
        assert!(pkt.fragment.is_none() && !pkt.truncated);
    }

    #[test]
    fn atomic_fragment_is_not_a_fragment() {
        let tcp = tcp_bytes(b"atomic");
        let mut rest = vec![proto::TCP, 0, 0, 0, 0, 0, 0, 9];
        rest.extend_from_slice(&tcp);
        let bytes = v6_with(proto::IPV6_FRAG, &rest);
        let pkt = parse(NetPacket {
            proto: NetProto::Ipv6,
            bytes: &bytes,
        })
        .expect("parse");
        assert!(pkt.fragment.is_none());
        assert_eq!(pkt.payload, &tcp[..]);
    }

    #[test]
    fn ipv4_length_rules() {
        let mut ip = tcp4(b"0123");
        ip[2..4].copy_from_slice(&10u16.to_be_bytes());
        let net = NetPacket {
            proto: NetProto::Ipv4,
            bytes: &ip,
        };
        assert!(parse(net).is_err(), "total length below the header");
        ip[2..4].copy_from_slice(&0u16.to_be_bytes());
        let pkt = parse(NetPacket {
            proto: NetProto::Ipv4,
            bytes: &ip,
        })
        .expect("TSO zero length");
        assert_eq!(pkt.payload.len(), ip.len() - 20);
    }

    #[test]
    fn tunnel_headers_cut_short_or_unknown() {
        assert!(gre(&[0x00, 0x00, 0x08]).is_err());
        assert!(
            gre(&[0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0]).is_err(),
            "source routing"
        );
        assert!(
            matches!(gre(&[0, 0x01, 0x88, 0x0b]), Ok(Transport::Other)),
            "PPTP"
        );
        assert!(
            gre(&[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10]).is_err(),
            "ERSPAN II short"
        );
        assert!(gre(&[0, 0, 0x22, 0xeb, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(matches!(
            geneve(&[0x40, 0, 0x65, 0x58, 0, 0, 0, 0]),
            Ok(Transport::Other)
        ));
        assert!(geneve(&[0x02, 0, 0x65, 0x58, 0, 0, 0, 0, 1, 2]).is_err());
        assert!(udp(&[0, 1, 0x12, 0xb5, 0, 8]).is_err());
    }
}
