//! Link layers: from a captured frame down to the network-layer (IP) bytes.
//!
//! Contract: [`unwrap`] takes a link type and the captured bytes and returns the IPv4 or IPv6
//! packet they carry as a borrowed sub-slice ([`NetPacket`]), or a [`LinkError`] saying why there
//! is none (unsupported link type, not IP, or a header cut short). Supported: Ethernet with any
//! mix of 802.1Q / 802.1ad / 0x9100 tags, MPLS label stacks (with or without an Ethernet
//! pseudowire), PPPoE sessions; Linux cooked v1 and v2; NFLOG; raw IP (101, 12, 14, 228, 229);
//! BSD null and loop; PPP (9, 50) and Cisco HDLC (104); IEEE 802.11 data frames, bare or behind
//! radiotap or PPI ([`crate::wifi`]).
//!
//! Invariants: every read is bounds-checked, and the number of stacked headers (tags, labels,
//! pseudowires) is bounded by [`MAX_LAYERS`], so any byte sequence terminates quickly. This module
//! never allocates, never copies packet bytes and never looks past the IP header's first nibble:
//! length checks of the IP packet are `ip.rs`'s job.

use crate::bytes::be16;
use crate::LinkType;

/// Upper bound on stacked link headers (VLAN tags, MPLS labels, pseudowires) in one frame.
pub const MAX_LAYERS: usize = 16;

/// The network-layer protocol found under the link headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetProto {
    Ipv4,
    Ipv6,
}

/// An IP packet, borrowed from the frame. `bytes` may still carry link-layer padding or a
/// trailer (Ethernet FCS); the IP length fields decide where the packet ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetPacket<'b> {
    pub proto: NetProto,
    pub bytes: &'b [u8],
}

/// Why a frame carries no IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The link type is not one this crate decodes.
    Unsupported(LinkType),
    /// A well-formed frame that carries something other than IP (ARP, LLDP, IPX, ...).
    NotIp,
    /// A link header is cut short or contradicts itself.
    Malformed(&'static str),
}

// EtherTypes (IEEE registry).
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;

/// Strips the link layer of `link` from `data`.
pub fn unwrap(link: LinkType, data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    match link.0 {
        1 => ethernet(data),
        // LINKTYPE_RAW, and the DLT_RAW values some systems write (12, 14): decide by version.
        101 | 12 | 14 => raw_ip(data),
        228 => Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes: data,
        }),
        229 => Ok(NetPacket {
            proto: NetProto::Ipv6,
            bytes: data,
        }),
        113 => linux_sll(data),
        276 => linux_sll2(data),
        239 => nflog(data),
        0 => bsd_null(data),
        108 => bsd_loop(data),
        9 | 50 => ppp(data),
        104 => cisco_hdlc(data),
        105 => crate::wifi::ieee80211(data),
        127 => crate::wifi::radiotap(data),
        192 => crate::wifi::ppi(data),
        _ => Err(LinkError::Unsupported(link)),
    }
}

fn raw_ip(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let first = *data
        .first()
        .ok_or(LinkError::Malformed("empty raw IP frame"))?;
    match first >> 4 {
        4 => Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes: data,
        }),
        6 => Ok(NetPacket {
            proto: NetProto::Ipv6,
            bytes: data,
        }),
        _ => Err(LinkError::Malformed(
            "raw IP frame with IP version neither 4 nor 6",
        )),
    }
}

/// Ethernet II (and 802.3 length frames, which never carry IP here).
pub fn ethernet(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let ethertype = be16(data, 12).ok_or(LinkError::Malformed("Ethernet header cut short"))?;
    ethertype_payload(ethertype, &data[14..], 0)
}

/// Follows an EtherType chain (tags, MPLS, PPPoE) from `rest` down to IP. `pseudowires` counts
/// nested Ethernet headers already entered, so that crafted recursion stays bounded.
pub(crate) fn ethertype_payload(
    mut ethertype: u16,
    mut rest: &[u8],
    pseudowires: usize,
) -> Result<NetPacket<'_>, LinkError> {
    for _ in 0..MAX_LAYERS {
        match ethertype {
            ETH_IPV4 => {
                return Ok(NetPacket {
                    proto: NetProto::Ipv4,
                    bytes: rest,
                })
            }
            ETH_IPV6 => {
                return Ok(NetPacket {
                    proto: NetProto::Ipv6,
                    bytes: rest,
                })
            }
            // 802.1Q / 802.1ad / pre-standard QinQ: 2 bytes TCI then the next EtherType.
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2 => {
                ethertype = be16(rest, 2).ok_or(LinkError::Malformed("VLAN tag cut short"))?;
                rest = &rest[4..];
            }
            ETH_MPLS_UC | ETH_MPLS_MC => return mpls(rest, pseudowires),
            ETH_PPPOE_SESSION => return pppoe_session(rest),
            // Values up to 1500 are an 802.3 length, not a type: LLC frames, never IP here.
            _ => return Err(LinkError::NotIp),
        }
    }
    Err(LinkError::Malformed("too many stacked VLAN tags"))
}

/// MPLS (RFC 3032): 4-byte label stack entries; bit 8 of the third byte is bottom-of-stack.
/// Under the stack there is no type field, so the first nibble decides (RFC 4928 keeps 4 and 6
/// for IP); a 0 nibble is the pseudowire control word (RFC 4385) before an Ethernet frame.
fn mpls(mut rest: &[u8], pseudowires: usize) -> Result<NetPacket<'_>, LinkError> {
    let mut bottom = false;
    for _ in 0..MAX_LAYERS {
        let entry = rest
            .get(..4)
            .ok_or(LinkError::Malformed("MPLS label stack cut short"))?;
        bottom = entry[2] & 0x01 != 0;
        rest = &rest[4..];
        if bottom {
            break;
        }
    }
    if !bottom {
        return Err(LinkError::Malformed("MPLS label stack too deep"));
    }
    let first = *rest
        .first()
        .ok_or(LinkError::Malformed("MPLS payload empty"))?;
    match first >> 4 {
        4 => Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes: rest,
        }),
        6 => Ok(NetPacket {
            proto: NetProto::Ipv6,
            bytes: rest,
        }),
        0 => {
            if pseudowires >= MAX_LAYERS / 4 {
                return Err(LinkError::Malformed("too many nested pseudowires"));
            }
            let inner = rest
                .get(4..)
                .ok_or(LinkError::Malformed("pseudowire control word cut short"))?;
            let ethertype =
                be16(inner, 12).ok_or(LinkError::Malformed("pseudowire Ethernet cut short"))?;
            ethertype_payload(ethertype, &inner[14..], pseudowires + 1)
        }
        _ => Err(LinkError::NotIp),
    }
}

/// PPPoE session stage (RFC 2516 §4): ver/type, code, session id, length; then the PPP
/// protocol (RFC 1661), which may be compressed to one byte (odd first byte).
fn pppoe_session(rest: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let header = rest
        .get(..6)
        .ok_or(LinkError::Malformed("PPPoE header cut short"))?;
    if header[0] != 0x11 || header[1] != 0x00 {
        return Err(LinkError::Malformed(
            "PPPoE session header with bad version or code",
        ));
    }
    ppp_payload(&rest[6..])
}

/// PPP (RFC 1661), with the HDLC-like address and control bytes `FF 03` of RFC 1662 or without.
fn ppp(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    ppp_payload(data.strip_prefix(&[0xff, 0x03]).unwrap_or(data))
}

/// Cisco HDLC: address (0x0F unicast, 0x8F broadcast), control 0, then an EtherType.
fn cisco_hdlc(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let protocol = be16(data, 2).ok_or(LinkError::Malformed("Cisco HDLC header cut short"))?;
    if !matches!(data[0], 0x0f | 0x8f) {
        return Err(LinkError::Malformed(
            "Cisco HDLC address is neither 0x0F nor 0x8F",
        ));
    }
    ethertype_payload(protocol, &data[4..], 0)
}

fn ppp_payload(ppp: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let first = *ppp
        .first()
        .ok_or(LinkError::Malformed("PPP protocol cut short"))?;
    let (protocol, body) = if first & 1 == 1 {
        (u16::from(first), &ppp[1..])
    } else {
        let p = be16(ppp, 0).ok_or(LinkError::Malformed("PPP protocol cut short"))?;
        (p, &ppp[2..])
    };
    match protocol {
        0x0021 => Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes: body,
        }),
        0x0057 => Ok(NetPacket {
            proto: NetProto::Ipv6,
            bytes: body,
        }),
        _ => Err(LinkError::NotIp),
    }
}

/// Linux cooked capture v1: 16-byte header, protocol (an EtherType) at bytes 14..16.
fn linux_sll(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let protocol = be16(data, 14).ok_or(LinkError::Malformed("Linux SLL header cut short"))?;
    ethertype_payload(protocol, &data[16..], 0)
}

/// Linux cooked capture v2: 20-byte header, protocol (an EtherType) at bytes 0..2.
fn linux_sll2(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    if data.len() < 20 {
        return Err(LinkError::Malformed("Linux SLL2 header cut short"));
    }
    let protocol = be16(data, 0).ok_or(LinkError::Malformed("Linux SLL2 header cut short"))?;
    ethertype_payload(protocol, &data[20..], 0)
}

/// NFLOG (tcpdump.org LINKTYPE_NFLOG): family, version, resource id, then netlink TLVs whose
/// length and type are in the capturing host's byte order — little-endian in practice, so that
/// is tried first and big-endian only if the little-endian walk is inconsistent. Lengths include
/// the 4-byte TLV header; TLVs are padded to 4 bytes. The packet is TLV type 9 (NFULA_PAYLOAD).
fn nflog(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let family = *data
        .first()
        .ok_or(LinkError::Malformed("NFLOG header cut short"))?;
    let tlvs = data
        .get(4..)
        .ok_or(LinkError::Malformed("NFLOG header cut short"))?;
    let payload = match nflog_payload(tlvs, false) {
        Ok(p) => p,
        Err(first_err) => nflog_payload(tlvs, true).map_err(|_| first_err)?,
    };
    let proto = match family {
        2 => NetProto::Ipv4,
        10 => NetProto::Ipv6,
        _ => return raw_ip(payload),
    };
    Ok(NetPacket {
        proto,
        bytes: payload,
    })
}

const NFULA_PAYLOAD: u16 = 9;

fn nflog_payload(mut tlvs: &[u8], big_endian: bool) -> Result<&[u8], LinkError> {
    while tlvs.len() >= 4 {
        let (len, typ) = if big_endian {
            (
                u16::from_be_bytes([tlvs[0], tlvs[1]]),
                u16::from_be_bytes([tlvs[2], tlvs[3]]),
            )
        } else {
            (
                u16::from_le_bytes([tlvs[0], tlvs[1]]),
                u16::from_le_bytes([tlvs[2], tlvs[3]]),
            )
        };
        let len = usize::from(len);
        if len < 4 {
            return Err(LinkError::Malformed("NFLOG TLV shorter than its header"));
        }
        let value = tlvs
            .get(4..len)
            .ok_or(LinkError::Malformed("NFLOG TLV cut short"))?;
        // The top two bits of a netlink attribute type are flags (nested, net byte order).
        if typ & 0x3fff == NFULA_PAYLOAD {
            return Ok(value);
        }
        let padded = (len + 3) & !3;
        tlvs = tlvs.get(padded..).unwrap_or(&[]);
    }
    Err(LinkError::NotIp)
}

const AF_INET: u32 = 2;
/// AF_INET6 differs per BSD: NetBSD/OpenBSD 24, FreeBSD/DragonFly 28, macOS 30.
const AF_INET6_BSD: [u32; 3] = [24, 28, 30];

fn family_proto(family: u32) -> Option<NetProto> {
    if family == AF_INET {
        Some(NetProto::Ipv4)
    } else if AF_INET6_BSD.contains(&family) {
        Some(NetProto::Ipv6)
    } else {
        None
    }
}

/// BSD loopback (DLT_NULL): 4-byte address family in the capturing host's byte order, which
/// the file does not record, so both orders are tried.
fn bsd_null(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let h: [u8; 4] = data
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(LinkError::Malformed("BSD null header cut short"))?;
    let proto = family_proto(u32::from_le_bytes(h))
        .or_else(|| family_proto(u32::from_be_bytes(h)))
        .ok_or(LinkError::NotIp)?;
    Ok(NetPacket {
        proto,
        bytes: &data[4..],
    })
}

/// OpenBSD loopback (DLT_LOOP): like null, but the family is in network byte order.
fn bsd_loop(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let h: [u8; 4] = data
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(LinkError::Malformed("BSD loop header cut short"))?;
    let proto = family_proto(u32::from_be_bytes(h)).ok_or(LinkError::NotIp)?;
    Ok(NetPacket {
        proto,
        bytes: &data[4..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn v4(bytes: &[u8]) -> Result<NetPacket<'_>, LinkError> {
        Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes,
        })
    }

    fn v6(bytes: &[u8]) -> Result<NetPacket<'_>, LinkError> {
        Ok(NetPacket {
            proto: NetProto::Ipv6,
            bytes,
        })
    }

    #[test]
    fn ethernet_ipv4_and_ipv6() {
        let ip = tcp4(b"hi");
        assert_eq!(unwrap(LinkType::ETHERNET, &ether(0x0800, &ip)), v4(&ip));
        let ip6 = tcp6(b"hi");
        assert_eq!(unwrap(LinkType::ETHERNET, &ether(0x86dd, &ip6)), v6(&ip6));
    }

    #[test]
    fn vlan_qinq_and_deep_stacks() {
        let ip = tcp4(b"x");
        let one = ether(0x8100, &tag(10, 0x0800, &ip));
        assert_eq!(unwrap(LinkType::ETHERNET, &one), v4(&ip));
        let qinq = ether(0x88a8, &tag(100, 0x8100, &tag(10, 0x0800, &ip)));
        assert_eq!(unwrap(LinkType::ETHERNET, &qinq), v4(&ip));
        let old = ether(
            0x9100,
            &tag(1, 0x9100, &tag(2, 0x8100, &tag(3, 0x0800, &ip))),
        );
        assert_eq!(unwrap(LinkType::ETHERNET, &old), v4(&ip));
        // More tags than MAX_LAYERS: rejected, not looped over.
        let mut deep = ip.clone();
        deep = tag(1, 0x0800, &deep);
        for _ in 0..MAX_LAYERS + 1 {
            deep = tag(1, 0x8100, &deep);
        }
        let frame = ether(0x8100, &deep);
        assert!(matches!(
            unwrap(LinkType::ETHERNET, &frame),
            Err(LinkError::Malformed(_))
        ));
        // A tag cut short.
        assert!(matches!(
            unwrap(LinkType::ETHERNET, &ether(0x8100, &[0, 1])),
            Err(LinkError::Malformed(_))
        ));
    }

    fn label(value: u32, bottom: bool) -> [u8; 4] {
        ((value << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes()
    }

    #[test]
    fn mpls_label_stack() {
        let ip = tcp4(b"x");
        let mut body = label(100, false).to_vec();
        body.extend_from_slice(&label(200, true));
        body.extend_from_slice(&ip);
        assert_eq!(unwrap(LinkType::ETHERNET, &ether(0x8847, &body)), v4(&ip));
        let ip6 = tcp6(b"x");
        let mut body = label(16, true).to_vec();
        body.extend_from_slice(&ip6);
        assert_eq!(unwrap(LinkType::ETHERNET, &ether(0x8848, &body)), v6(&ip6));
        // Bottom-of-stack never set.
        let body: Vec<u8> = (0..40).flat_map(|i| label(i, false)).collect();
        assert!(matches!(
            unwrap(LinkType::ETHERNET, &ether(0x8847, &body)),
            Err(LinkError::Malformed(_))
        ));
    }

    #[test]
    fn mpls_ethernet_pseudowire_with_control_word() {
        let ip6 = tcp6(b"pw");
        let mut body = label(300, true).to_vec();
        body.extend_from_slice(&[0, 0, 0, 0]); // control word
        body.extend_from_slice(&ether(0x8100, &tag(5, 0x86dd, &ip6)));
        assert_eq!(unwrap(LinkType::ETHERNET, &ether(0x8847, &body)), v6(&ip6));
    }

    fn pppoe(ppp_proto: &[u8], ip: &[u8]) -> Vec<u8> {
        let mut out = vec![0x11, 0x00, 0x12, 0x34];
        out.extend_from_slice(&((ip.len() + ppp_proto.len()) as u16).to_be_bytes());
        out.extend_from_slice(ppp_proto);
        out.extend_from_slice(ip);
        out
    }

    #[test]
    fn ppp_and_cisco_hdlc() {
        let ip = tcp4(b"x");
        let mut framed = vec![0xff, 0x03, 0x00, 0x21];
        framed.extend(&ip);
        assert_eq!(unwrap(LinkType(9), &framed), v4(&ip));
        assert_eq!(unwrap(LinkType(50), &framed[2..]), v4(&ip));
        let mut hdlc = vec![0x0f, 0x00, 0x08, 0x00];
        hdlc.extend(&ip);
        assert_eq!(unwrap(LinkType(104), &hdlc), v4(&ip));
        hdlc[0] = 0x11;
        assert!(unwrap(LinkType(104), &hdlc).is_err());
        assert!(unwrap(LinkType(104), &[0x0f, 0]).is_err());
    }

    #[test]
    fn pppoe_session_over_qinq() {
        let ip = tcp4(b"x");
        let frame = ether(
            0x88a8,
            &tag(7, 0x8100, &tag(8, 0x8864, &pppoe(&[0, 0x21], &ip))),
        );
        assert_eq!(unwrap(LinkType::ETHERNET, &frame), v4(&ip));
        let ip6 = tcp6(b"x");
        let frame = ether(0x8864, &pppoe(&[0, 0x57], &ip6));
        assert_eq!(unwrap(LinkType::ETHERNET, &frame), v6(&ip6));
        // LCP is PPP but not IP.
        let frame = ether(0x8864, &pppoe(&[0xc0, 0x21], &ip));
        assert_eq!(unwrap(LinkType::ETHERNET, &frame), Err(LinkError::NotIp));
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = tcp4(b"x");
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0xaa, 0, 0];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        assert_eq!(unwrap(LinkType::LINUX_SLL, &sll), v4(&ip));
        let ip6 = tcp6(b"x");
        let mut sll2 = 0x86ddu16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 0xaa, 0, 0]);
        sll2.extend_from_slice(&ip6);
        assert_eq!(unwrap(LinkType::LINUX_SLL2, &sll2), v6(&ip6));
        assert!(matches!(
            unwrap(LinkType::LINUX_SLL2, &sll2[..19]),
            Err(LinkError::Malformed(_))
        ));
    }

    fn tlv(big_endian: bool, typ: u16, value: &[u8]) -> Vec<u8> {
        let len = (4 + value.len()) as u16;
        let mut out = if big_endian {
            [len.to_be_bytes(), typ.to_be_bytes()].concat()
        } else {
            [len.to_le_bytes(), typ.to_le_bytes()].concat()
        };
        out.extend_from_slice(value);
        out.resize((out.len() + 3) & !3, 0);
        out
    }

    #[test]
    fn nflog_both_byte_orders() {
        for big_endian in [false, true] {
            let ip = tcp4(b"odd length payload!");
            let mut frame = vec![2, 0, 0, 5];
            frame.extend(tlv(big_endian, 1, &[0x08, 0x00, 3, 0]));
            frame.extend(tlv(big_endian, 10, b"pfx"));
            frame.extend(tlv(big_endian, 9, &ip));
            frame.extend(tlv(big_endian, 11, &[1, 2, 3, 4]));
            assert_eq!(unwrap(LinkType::NFLOG, &frame), v4(&ip), "be={big_endian}");
        }
        let ip6 = tcp6(b"x");
        let mut frame = vec![10, 0, 0, 0];
        frame.extend(tlv(false, 9, &ip6));
        assert_eq!(unwrap(LinkType::NFLOG, &frame), v6(&ip6));
        // No payload TLV.
        let mut frame = vec![2, 0, 0, 0];
        frame.extend(tlv(false, 1, &[0x08, 0x00, 3, 0]));
        assert_eq!(unwrap(LinkType::NFLOG, &frame), Err(LinkError::NotIp));
    }

    #[test]
    fn raw_ip_variants() {
        let ip = tcp4(b"x");
        let ip6 = tcp6(b"x");
        for link in [101, 12, 14] {
            assert_eq!(unwrap(LinkType(link), &ip), v4(&ip));
            assert_eq!(unwrap(LinkType(link), &ip6), v6(&ip6));
        }
        assert_eq!(unwrap(LinkType::IPV4, &ip), v4(&ip));
        assert_eq!(unwrap(LinkType::IPV6, &ip6), v6(&ip6));
        assert!(matches!(
            unwrap(LinkType::RAW, &[0x50]),
            Err(LinkError::Malformed(_))
        ));
    }

    #[test]
    fn bsd_null_and_loop() {
        let ip = tcp4(b"x");
        let ip6 = tcp6(b"x");
        let null_le = [&2u32.to_le_bytes()[..], &ip].concat();
        assert_eq!(unwrap(LinkType::NULL, &null_le), v4(&ip));
        for family in [24u32, 28, 30] {
            let null_be = [&family.to_be_bytes()[..], &ip6].concat();
            assert_eq!(unwrap(LinkType::NULL, &null_be), v6(&ip6));
            let looped = [&family.to_be_bytes()[..], &ip6].concat();
            assert_eq!(unwrap(LinkType::LOOP, &looped), v6(&ip6));
        }
        let unknown = [&7u32.to_le_bytes()[..], &ip].concat();
        assert_eq!(unwrap(LinkType::NULL, &unknown), Err(LinkError::NotIp));
    }

    #[test]
    fn other_link_types_and_non_ip() {
        assert_eq!(
            unwrap(LinkType(147), &[0; 64]),
            Err(LinkError::Unsupported(LinkType(147)))
        );
        assert_eq!(
            unwrap(LinkType::ETHERNET, &ether(0x0806, &[0; 28])),
            Err(LinkError::NotIp)
        );
        assert!(matches!(
            unwrap(LinkType::ETHERNET, &[0; 13]),
            Err(LinkError::Malformed(_))
        ));
    }
}
