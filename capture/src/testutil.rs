//! Test helpers: frames built header by header (etherparse's builder for IP/TCP/UDP, our own
//! bytes for link layers and tunnels) and small pcap / pcapng writers, any byte order. For
//! tests only: this crate's, and the workspace's through the `testutil` feature.

use etherparse::{
    IpFragOffset, IpNumber, Ipv4Header, Ipv6FragmentHeader, Ipv6Header, PacketBuilder,
};

pub const SRC4: [u8; 4] = [10, 0, 0, 1];
pub const DST4: [u8; 4] = [10, 0, 0, 2];
pub const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const SPORT: u16 = 43210;
pub const DPORT: u16 = 80;
pub const SEQ: u32 = 1_000_000;
pub const ACK: u32 = 777;
pub const WINDOW: u16 = 4096;

/// IPv4 + TCP (ACK|PSH) from SRC4:SPORT to DST4:DPORT.
pub fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(SPORT, DPORT, SEQ, WINDOW)
        .ack(ACK)
        .psh()
        .write(&mut out, payload)
        .expect("build");
    out
}

/// IPv6 + TCP (ACK|PSH) from SRC6:SPORT to DST6:DPORT.
pub fn tcp6(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .tcp(SPORT, DPORT, SEQ, WINDOW)
        .ack(ACK)
        .psh()
        .write(&mut out, payload)
        .expect("build");
    out
}

/// The TCP header + payload of [`tcp4`] (what fragments carry).
pub fn tcp_bytes(payload: &[u8]) -> Vec<u8> {
    tcp4(payload)[20..].to_vec()
}

/// IPv4 + UDP to `dst_port` (outer addresses 192.0.2.1 → 192.0.2.2).
pub fn udp4(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(5555, dst_port)
        .write(&mut out, payload)
        .expect("build");
    out
}

/// IPv4 header (192.0.2.1 → 192.0.2.2) with `protocol` over `payload`.
pub fn ip4_raw(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let header = Ipv4Header::new(
        payload.len() as u16,
        64,
        IpNumber(protocol),
        [192, 0, 2, 1],
        [192, 0, 2, 2],
    )
    .expect("header");
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// One IPv4 fragment SRC4 → DST4 carrying `data` at byte `offset` of datagram `id`.
pub fn frag4(id: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut header =
        Ipv4Header::new(data.len() as u16, 64, IpNumber::TCP, SRC4, DST4).expect("header");
    header.identification = id;
    header.more_fragments = more;
    header.fragment_offset = IpFragOffset::try_new(offset / 8).expect("offset");
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// One IPv6 fragment SRC6 → DST6 (fragment header, next header TCP).
pub fn frag6(id: u32, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let header = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (data.len() + 8) as u16,
        next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
        hop_limit: 64,
        source: SRC6,
        destination: DST6,
    };
    let frag = Ipv6FragmentHeader::new(
        IpNumber::TCP,
        IpFragOffset::try_new(offset / 8).expect("offset"),
        more,
        id,
    );
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&frag.to_bytes());
    out.extend_from_slice(data);
    out
}

/// Ethernet II header (fixed MACs) + `payload`.
pub fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa];
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A VLAN-style tag (TCI then the inner EtherType) + `payload`.
pub fn tag(vid: u16, inner_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vid.to_be_bytes().to_vec();
    out.extend_from_slice(&inner_type.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A pcap file image: its header, then each record `(seconds, fraction, bytes)` sent as 4
/// bytes more than captured.
pub fn pcap(
    big_endian: bool,
    nanos: bool,
    link: u32,
    snaplen: u32,
    records: &[(u32, u32, &[u8])],
) -> Vec<u8> {
    let mut out = pcap_header(big_endian, nanos, link, snaplen).to_vec();
    for (sec, frac, data) in records {
        let captured = data.len() as u32;
        out.extend_from_slice(&pcap_record_header(
            big_endian,
            *sec,
            *frac,
            captured,
            captured + 4,
        ));
        out.extend_from_slice(data);
    }
    out
}

fn w32(big_endian: bool, v: u32) -> [u8; 4] {
    if big_endian {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn w16(big_endian: bool, v: u16) -> [u8; 2] {
    if big_endian {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// The 24-byte header of a pcap file; `nanos` selects the nanosecond magic.
pub fn pcap_header(big_endian: bool, nanos: bool, link: u32, snaplen: u32) -> [u8; 24] {
    let magic = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&w32(big_endian, magic));
    h[4..6].copy_from_slice(&w16(big_endian, 2));
    h[6..8].copy_from_slice(&w16(big_endian, 4));
    // thiszone and sigfigs stay zero.
    h[16..20].copy_from_slice(&w32(big_endian, snaplen));
    h[20..24].copy_from_slice(&w32(big_endian, link));
    h
}

/// The 16-byte header of one pcap record: `captured` bytes follow, of `wire` sent.
pub fn pcap_record_header(
    big_endian: bool,
    secs: u32,
    frac: u32,
    captured: u32,
    wire: u32,
) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&w32(big_endian, secs));
    h[4..8].copy_from_slice(&w32(big_endian, frac));
    h[8..12].copy_from_slice(&w32(big_endian, captured));
    h[12..16].copy_from_slice(&w32(big_endian, wire));
    h
}

/// A pcapng file image, written block by block.
#[derive(Default)]
pub struct PcapNg {
    pub bytes: Vec<u8>,
    big_endian: bool,
}

impl PcapNg {
    pub fn new() -> Self {
        PcapNg::default()
    }

    fn w32(&self, v: u32) -> [u8; 4] {
        w32(self.big_endian, v)
    }

    fn w16(&self, v: u16) -> [u8; 2] {
        w16(self.big_endian, v)
    }

    /// Appends a block of `block_type` with `body` (padded to 4 bytes); returns its offset.
    pub fn block(&mut self, block_type: u32, body: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        let padded = (body.len() + 3) & !3;
        let len = (12 + padded) as u32;
        let t = self.w32(block_type);
        let l = self.w32(len);
        self.bytes.extend_from_slice(&t);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        self.bytes.extend_from_slice(&l);
        offset
    }

    pub fn shb(&mut self, big_endian: bool) -> u64 {
        self.big_endian = big_endian;
        let mut body = self.w32(0x1A2B_3C4D).to_vec();
        body.extend_from_slice(&self.w16(1));
        body.extend_from_slice(&self.w16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body)
    }

    pub fn option(&self, body: &mut Vec<u8>, code: u16, value: &[u8]) {
        body.extend_from_slice(&self.w16(code));
        body.extend_from_slice(&self.w16(value.len() as u16));
        body.extend_from_slice(value);
        body.resize(body.len() + ((value.len() + 3) & !3) - value.len(), 0);
    }

    pub fn idb(
        &mut self,
        link: u16,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> u64 {
        let mut body = self.w16(link).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.w32(snaplen));
        if let Some(r) = tsresol {
            self.option(&mut body, 9, &[r]);
        }
        if let Some(o) = tsoffset {
            let v = if self.big_endian {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            };
            self.option(&mut body, 14, &v);
        }
        if tsresol.is_some() || tsoffset.is_some() {
            self.option(&mut body, 0, &[]);
        }
        self.block(1, &body)
    }

    pub fn epb(&mut self, interface: u32, ticks: u64, data: &[u8]) -> u64 {
        let mut body = self.w32(interface).to_vec();
        body.extend_from_slice(&self.w32((ticks >> 32) as u32));
        body.extend_from_slice(&self.w32(ticks as u32));
        body.extend_from_slice(&self.w32(data.len() as u32));
        body.extend_from_slice(&self.w32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    pub fn pb(&mut self, interface: u16, ticks: u64, data: &[u8]) -> u64 {
        let mut body = self.w16(interface).to_vec();
        body.extend_from_slice(&self.w16(0));
        body.extend_from_slice(&self.w32((ticks >> 32) as u32));
        body.extend_from_slice(&self.w32(ticks as u32));
        body.extend_from_slice(&self.w32(data.len() as u32));
        body.extend_from_slice(&self.w32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(2, &body)
    }

    pub fn spb(&mut self, data: &[u8]) -> u64 {
        let mut body = self.w32(data.len() as u32).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}
