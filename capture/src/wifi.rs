//! IEEE 802.11 data frames, bare (LINKTYPE_IEEE802_11, 105) or behind a radiotap (127) or PPI
//! (192) header, down to the LLC/SNAP header that names the EtherType of what they carry.
//!
//! What is decoded: data frames (type 2) that carry data — plain and QoS subtypes, with three or
//! four addresses, with or without an HT control field — whose body begins with LLC/SNAP
//! (`AA AA 03 00 00 00`, RFC 1042). What is not: management and control frames, null-data
//! frames ([`LinkError::NotIp`]), and protected (encrypted) frames, which say so. Lengths come
//! from each header's own length field and are bounds-checked; a trailing FCS is left for the IP
//! length to ignore.

use crate::link::{ethertype_payload, LinkError, NetPacket};

/// LINKTYPE_IEEE802_11: an 802.11 frame without a radio header.
pub fn ieee80211(frame: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let fc = frame
        .get(..2)
        .ok_or(LinkError::Malformed("802.11 frame control cut short"))?;
    let (kind, subtype, flags) = ((fc[0] >> 2) & 3, fc[0] >> 4, fc[1]);
    if kind != 2 {
        return Err(LinkError::NotIp); // management or control
    }
    if subtype & 0x4 != 0 {
        return Err(LinkError::NotIp); // null data: no body
    }
    if flags & 0x40 != 0 {
        return Err(LinkError::Malformed(
            "802.11 frame is protected (encrypted): nothing to decode without the keys",
        ));
    }
    let to_and_from_ds = flags & 0x03 == 0x03;
    let qos = subtype & 0x8 != 0;
    let mut header = 24;
    if to_and_from_ds {
        header += 6; // a fourth address
    }
    if qos {
        header += 2;
        if flags & 0x80 != 0 {
            header += 4; // HT control, present in QoS frames with the Order bit
        }
    }
    let body = frame
        .get(header..)
        .ok_or(LinkError::Malformed("802.11 header cut short"))?;
    llc_snap(body)
}

/// RFC 1042 LLC/SNAP: `AA AA 03`, OUI 0, then an EtherType.
fn llc_snap(body: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let llc = body
        .get(..8)
        .ok_or(LinkError::Malformed("LLC/SNAP header cut short"))?;
    if llc[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return Err(LinkError::NotIp);
    }
    ethertype_payload(u16::from_be_bytes([llc[6], llc[7]]), &body[8..], 0)
}

/// Radiotap: version 0, a pad byte, then the whole header's length (little-endian).
pub fn radiotap(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let h = data
        .get(..4)
        .ok_or(LinkError::Malformed("radiotap header cut short"))?;
    if h[0] != 0 {
        return Err(LinkError::Malformed("radiotap version is not 0"));
    }
    let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
    if len < 8 {
        return Err(LinkError::Malformed(
            "radiotap length shorter than its header",
        ));
    }
    let frame = data
        .get(len..)
        .ok_or(LinkError::Malformed("radiotap length beyond the frame"))?;
    ieee80211(frame)
}

/// PPI: version 0, flags, the header's length (little-endian), then the DLT of what follows.
pub fn ppi(data: &[u8]) -> Result<NetPacket<'_>, LinkError> {
    let h = data
        .get(..8)
        .ok_or(LinkError::Malformed("PPI header cut short"))?;
    if h[0] != 0 {
        return Err(LinkError::Malformed("PPI version is not 0"));
    }
    let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
    let dlt = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len < 8 {
        return Err(LinkError::Malformed("PPI length shorter than its header"));
    }
    let inner = data
        .get(len..)
        .ok_or(LinkError::Malformed("PPI length beyond the frame"))?;
    match dlt {
        105 => ieee80211(inner),
        1 => crate::link::ethernet(inner),
        _ => Err(LinkError::Unsupported(crate::LinkType(dlt))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::NetProto;

    const IP: &[u8] = &[
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    /// A QoS data frame from the AP (FromDS), with LLC/SNAP and IPv4.
    fn qos_data(flags: u8) -> Vec<u8> {
        let mut f = vec![0x88, flags, 0, 0];
        f.extend([0u8; 18]); // three addresses
        f.extend([0, 0]); // sequence control
        f.extend([0, 0]); // QoS control
        f.extend([0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend(IP);
        f
    }

    fn v4(bytes: &[u8]) -> Result<NetPacket<'_>, LinkError> {
        Ok(NetPacket {
            proto: NetProto::Ipv4,
            bytes,
        })
    }

    #[test]
    fn data_frames_behind_radiotap_and_ppi() {
        let frame = qos_data(0x02);
        assert_eq!(ieee80211(&frame), v4(IP));
        let mut rt = vec![0, 0, 12, 0, 0x02, 0, 0, 0, 0x10, 0, 0, 0];
        rt.extend(&frame);
        assert_eq!(radiotap(&rt), v4(IP));
        let mut p = vec![0, 0, 8, 0, 105, 0, 0, 0];
        p.extend(&frame);
        assert_eq!(ppi(&p), v4(IP));
    }

    #[test]
    fn what_carries_no_ip_says_so() {
        assert_eq!(
            ieee80211(&qos_data(0x42)).map(|_| ()),
            Err(LinkError::Malformed(
                "802.11 frame is protected (encrypted): nothing to decode without the keys"
            ))
        );
        let beacon = [0x80, 0, 0, 0];
        assert_eq!(ieee80211(&beacon), Err(LinkError::NotIp));
        let null = [0x48, 0x01, 0, 0];
        assert_eq!(ieee80211(&null), Err(LinkError::NotIp));
        assert!(radiotap(&[0, 0, 200, 0]).is_err());
        assert!(ppi(&[0, 0, 8, 0, 1, 0]).is_err());
        // Four addresses (a mesh or WDS frame) move the body by six bytes.
        let mut wds = qos_data(0x03);
        wds.splice(24..24, [0u8; 6]);
        assert_eq!(ieee80211(&wds), v4(IP));
    }
}
