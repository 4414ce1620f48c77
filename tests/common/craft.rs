//! A small generator of crafted captures: TCP conversations built packet by packet with
//! etherparse, wrapped in a chosen link layer, written as pcap or pcapng. The truth of each
//! crafted file is known by construction.
#![allow(dead_code)]

use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpHeader};
use tapspan_capture::testutil;

pub const CLIENT: ([u8; 4], u16) = ([10, 1, 0, 1], 40123);
pub const SERVER: ([u8; 4], u16) = ([10, 1, 0, 2], 8080);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    C2S,
    S2C,
}

/// One TCP segment of a conversation, before link framing.
#[derive(Clone, Debug)]
pub struct Seg {
    pub ts_ns: u64,
    pub dir: Dir,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
}

/// Builds a conversation with running sequence numbers and a clock advancing 1 ms a packet.
pub struct Conversation {
    pub segs: Vec<Seg>,
    pub next: [u32; 2],
    pub ts_ns: u64,
}

pub const T0: u64 = 1_700_000_000_000_000_000;

/// The next segment `dir` sends on a connection whose next sequence numbers are `next`
/// (client's, server's), acknowledging everything the other side sent; `next` moves past it.
pub fn next_segment(
    next: &mut [u32; 2],
    ts_ns: u64,
    dir: Dir,
    syn: bool,
    fin: bool,
    payload: &[u8],
) -> Seg {
    let i = Conversation::idx(dir);
    let seg = Seg {
        ts_ns,
        dir,
        seq: next[i],
        ack: next[1 - i],
        syn,
        fin,
        rst: false,
        payload: payload.to_vec(),
    };
    next[i] = next[i]
        .wrapping_add(payload.len() as u32)
        .wrapping_add(syn as u32 + fin as u32);
    seg
}

impl Conversation {
    pub fn new(isn_client: u32, isn_server: u32) -> Self {
        Conversation {
            segs: Vec::new(),
            next: [isn_client, isn_server],
            ts_ns: T0,
        }
    }
    fn idx(d: Dir) -> usize {
        match d {
            Dir::C2S => 0,
            Dir::S2C => 1,
        }
    }
    fn push(&mut self, dir: Dir, syn: bool, fin: bool, payload: &[u8]) {
        self.ts_ns += 1_000_000;
        let seg = next_segment(&mut self.next, self.ts_ns, dir, syn, fin, payload);
        self.segs.push(seg);
    }
    pub fn handshake(&mut self) -> &mut Self {
        self.push(Dir::C2S, true, false, &[]);
        self.push(Dir::S2C, true, false, &[]);
        self.push(Dir::C2S, false, false, &[]);
        self
    }
    /// Send `bytes` in segments of at most `mss` bytes.
    pub fn send(&mut self, dir: Dir, bytes: &[u8], mss: usize) -> &mut Self {
        for chunk in bytes.chunks(mss) {
            self.push(dir, false, false, chunk);
        }
        self
    }
    pub fn ack(&mut self, dir: Dir) -> &mut Self {
        self.push(dir, false, false, &[]);
        self
    }
    pub fn fin(&mut self) -> &mut Self {
        self.push(Dir::C2S, false, true, &[]);
        self.push(Dir::S2C, false, true, &[]);
        self.push(Dir::C2S, false, false, &[]);
        self
    }
}

/// The IPv4 packet carrying `seg`.
pub fn ipv4_packet(seg: &Seg) -> Vec<u8> {
    let (src, dst) = match seg.dir {
        Dir::C2S => (CLIENT, SERVER),
        Dir::S2C => (SERVER, CLIENT),
    };
    let mut tcp = TcpHeader::new(src.1, dst.1, seg.seq, 65535);
    tcp.syn = seg.syn;
    tcp.fin = seg.fin;
    tcp.rst = seg.rst;
    if !(seg.syn && seg.dir == Dir::C2S) {
        tcp.ack = true;
        tcp.acknowledgment_number = seg.ack;
    }
    tcp.psh = !seg.payload.is_empty();
    let builder = PacketBuilder::ipv4(src.0, dst.0, 64).tcp_header(tcp);
    let mut out = Vec::with_capacity(builder.size(seg.payload.len()));
    builder.write(&mut out, &seg.payload).expect("build packet");
    out
}

/// Split an IPv4 packet into fragments carrying at most `chunk` payload bytes (multiple of 8).
pub fn fragment_ipv4(packet: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let (header, payload) = Ipv4Header::from_slice(packet).expect("ipv4");
    let mut frags = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut h = Ipv4Header::new(
            (end - off) as u16,
            64,
            IpNumber::TCP,
            header.source,
            header.destination,
        )
        .unwrap();
        h.identification = id;
        h.more_fragments = end < payload.len();
        h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut f = Vec::new();
        h.write(&mut f).unwrap();
        f.extend_from_slice(&payload[off..end]);
        frags.push(f);
        off = end;
    }
    frags
}

pub fn ethernet(ip: &[u8], vlans: &[u16]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (i, vid) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() > 1 {
            0x88a8
        } else {
            0x8100
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Linux "cooked" v2 header (LINKTYPE_LINUX_SLL2, 20 bytes) before an IPv4 packet.
pub fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol
    f.extend_from_slice(&[0, 0]); // reserved
    f.extend_from_slice(&3u32.to_be_bytes()); // interface index
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.push(0); // packet type: to us
    f.push(6); // address length
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// A classic pcap file (little-endian); `nanos` selects the nanosecond magic.
pub fn pcap(link_type: u32, nanos: bool, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = pcap_header(link_type, nanos, 262_144).to_vec();
    for (ts, data) in frames {
        out.extend_from_slice(&pcap_record_header(*ts, nanos, data.len(), data.len()));
        out.extend_from_slice(data);
    }
    out
}

/// The 24-byte header of a little-endian pcap file.
pub fn pcap_header(link_type: u32, nanos: bool, snaplen: u32) -> [u8; 24] {
    testutil::pcap_header(false, nanos, link_type, snaplen)
}

/// The 16-byte header of one record at `ts` (ns): `captured` bytes follow, of `wire` sent.
pub fn pcap_record_header(ts: u64, nanos: bool, captured: usize, wire: usize) -> [u8; 16] {
    let secs = (ts / 1_000_000_000) as u32;
    let frac = if nanos {
        (ts % 1_000_000_000) as u32
    } else {
        ((ts % 1_000_000_000) / 1000) as u32
    };
    testutil::pcap_record_header(false, secs, frac, captured as u32, wire as u32)
}

/// A pcapng file with one interface per `(link_type, tsresol)`; frames name their interface.
pub fn pcapng(interfaces: &[(u16, u8)], frames: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = testutil::PcapNg::new();
    out.shb(false);
    for (link, tsresol) in interfaces {
        out.idb(*link, 262_144, Some(*tsresol), None);
    }
    // An unknown block type that readers must skip.
    out.block(0x0bad_0001, b"skip me!");
    for (iface, ts_ns, data) in frames {
        let tsresol = interfaces[*iface as usize].1;
        out.epb(*iface, ts_ns / 10u64.pow(9 - tsresol as u32), data);
    }
    out.bytes
}

/// Ethernet frames of a conversation, with timestamps.
pub fn ethernet_frames(segs: &[Seg]) -> Vec<(u64, Vec<u8>)> {
    segs.iter()
        .map(|s| (s.ts_ns, ethernet(&ipv4_packet(s), &[])))
        .collect()
}

/// The IPv4 packet carrying `seg` between explicit addresses (`seg.dir` is ignored).
pub fn ipv4_between(seg: &Seg, src: std::net::SocketAddr, dst: std::net::SocketAddr) -> Vec<u8> {
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    let mut tcp = TcpHeader::new(src.port(), dst.port(), seg.seq, 65535);
    tcp.syn = seg.syn;
    tcp.fin = seg.fin;
    tcp.rst = seg.rst;
    if !(seg.syn && seg.ack == 0) {
        tcp.ack = true;
        tcp.acknowledgment_number = seg.ack;
    }
    tcp.psh = !seg.payload.is_empty();
    let builder = PacketBuilder::ipv4(s.octets(), d.octets(), 64).tcp_header(tcp);
    let mut out = Vec::with_capacity(builder.size(seg.payload.len()));
    builder.write(&mut out, &seg.payload).expect("build packet");
    out
}
