//! Generator of adversarial captures (issue 6): each function builds one hostile case from
//! etherparse-built packets (craft.rs), small ones in memory, floods streamed to a file. The
//! expected outcome of each is asserted in tests/adversarial.rs; the small ones are also
//! committed in fixtures/adversarial/ (see its README).
#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;

use super::craft::{self, Conversation, Dir, Seg};

/// Ethernet frames of a conversation between explicit endpoints.
pub fn frames_between(segs: &[Seg], client: SocketAddr, server: SocketAddr) -> Vec<(u64, Vec<u8>)> {
    segs.iter()
        .map(|s| {
            let (a, b) = match s.dir {
                Dir::C2S => (client, server),
                Dir::S2C => (server, client),
            };
            // ipv4_between sets ACK on a SYN unless its ack number is 0.
            let mut s = s.clone();
            if s.syn && s.dir == Dir::C2S {
                s.ack = 0;
            }
            (
                s.ts_ns,
                craft::ethernet(&craft::ipv4_between(&s, a, b), &[]),
            )
        })
        .collect()
}

/// A pcap written record by record (little-endian, nanoseconds, Ethernet), with a snap length
/// and each record's captured length possibly shorter than its length on the wire.
pub struct PcapStream {
    out: BufWriter<std::fs::File>,
    snaplen: u32,
}

impl PcapStream {
    pub fn create(path: &Path, snaplen: u32) -> Self {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        out.write_all(&craft::pcap_header(1, true, snaplen))
            .unwrap();
        PcapStream { out, snaplen }
    }
    pub fn frame(&mut self, ts: u64, data: &[u8]) {
        let cap = data.len().min(self.snaplen as usize);
        let o = &mut self.out;
        o.write_all(&craft::pcap_record_header(ts, true, cap, data.len()))
            .unwrap();
        o.write_all(&data[..cap]).unwrap();
    }
    pub fn frames(&mut self, frames: &[(u64, Vec<u8>)]) {
        for (ts, f) in frames {
            self.frame(*ts, f);
        }
    }
    pub fn finish(mut self) {
        self.out.flush().unwrap();
    }
}

/// The i-th distinct client endpoint of a flood: 10.64.0.0/10 and ports from 1024.
pub fn flood_client(i: u32) -> SocketAddr {
    let ip = [
        10,
        64 | ((i >> 22) & 0x3f) as u8,
        (i >> 14) as u8,
        (i >> 6) as u8,
    ];
    SocketAddr::from((ip, 1024 + (i & 0x3f) as u16))
}

pub fn server() -> SocketAddr {
    SocketAddr::from((craft::SERVER.0, craft::SERVER.1))
}

/// `n` SYNs from distinct clients, never answered (half-open connections), 1 µs apart.
pub fn syn_flood(path: &Path, n: u32) {
    let mut w = PcapStream::create(path, 262_144);
    for i in 0..n {
        let seg = Seg {
            ts_ns: craft::T0 + i as u64 * 1_000,
            dir: Dir::C2S,
            seq: i.wrapping_mul(2_654_435_761),
            ack: 0,
            syn: true,
            fin: false,
            rst: false,
            payload: Vec::new(),
        };
        let ip = craft::ipv4_between(&seg, flood_client(i), server());
        w.frame(seg.ts_ns, &craft::ethernet(&ip, &[]));
    }
    w.finish();
}

pub const KEEPALIVE_REQ: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
pub const KEEPALIVE_RESP: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// `n` connections that each complete one exchange and then stay open, idle, to the end.
pub fn idle_keepalive(path: &Path, n: u32) {
    let mut w = PcapStream::create(path, 262_144);
    for i in 0..n {
        let mut c = Conversation::new(i.wrapping_mul(7919), 1_000 + i);
        c.ts_ns = craft::T0 + i as u64 * 20_000;
        c.handshake();
        c.send(Dir::C2S, KEEPALIVE_REQ, 1460)
            .send(Dir::S2C, KEEPALIVE_RESP, 1460)
            .ack(Dir::C2S);
        // Conversation clocks advance 1 ms a packet; squeeze them to 2 µs so the flood is short.
        for (k, s) in c.segs.iter_mut().enumerate() {
            s.ts_ns = craft::T0 + i as u64 * 20_000 + k as u64 * 2_000;
        }
        w.frames(&frames_between(&c.segs, flood_client(i), server()));
    }
    w.finish();
}

/// One connection: handshake, `client` bytes, `server` bytes, FIN.
pub fn exchange(client: &[u8], server: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, client, 1460);
    c.send(Dir::S2C, server, 1460);
    c.ack(Dir::C2S);
    c.fin();
    craft::ethernet_frames(&c.segs)
}

/// A request whose one header is 1 MiB long, answered.
pub fn huge_header() -> Vec<(u64, Vec<u8>)> {
    let mut req = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    exchange(
        &req,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
    )
}

/// A request head whose last line never ends (200 KiB, then FIN).
pub fn endless_header_line() -> Vec<(u64, Vec<u8>)> {
    let mut req = b"GET /endless HTTP/1.1\r\nHost: x\r\nX-Never: ".to_vec();
    req.extend(std::iter::repeat_n(b'b', 200 << 10));
    exchange(&req, b"")
}

const REQ1: &[u8] = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n";
const REQ2: &[u8] = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n";

/// A response whose Content-Length (100000) is far more than the 10 bytes it sends before the
/// next response on the same connection.
pub fn content_length_high() -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, REQ1, 1460);
    c.send(
        Dir::S2C,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789",
        1460,
    );
    c.send(Dir::C2S, REQ2, 1460);
    c.send(
        Dir::S2C,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        1460,
    );
    c.ack(Dir::C2S);
    c.fin();
    craft::ethernet_frames(&c.segs)
}

/// A response whose Content-Length (5) is less than the 60 bytes that follow it.
pub fn content_length_low() -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, REQ1, 1460);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec();
    resp.extend(std::iter::repeat_n(b'z', 60));
    c.send(Dir::S2C, &resp, 1460);
    c.send(Dir::C2S, REQ2, 1460);
    c.send(
        Dir::S2C,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        1460,
    );
    c.ack(Dir::C2S);
    c.fin();
    craft::ethernet_frames(&c.segs)
}

/// Chunk sizes that are negative, overflow 64 bits, and exceed any sane body.
pub const BAD_CHUNK_SIZES: &[&str] = &["-5", "FFFFFFFFFFFFFFFFFFFFFFFF", "1000000000000000", "+3"];

/// One connection per bad chunk size, each on its own client port.
pub fn bad_chunk_sizes() -> Vec<(u64, Vec<u8>)> {
    let mut all = Vec::new();
    for (i, size) in BAD_CHUNK_SIZES.iter().enumerate() {
        let resp = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        let mut c = Conversation::new(100, 5_000);
        c.ts_ns = craft::T0 + i as u64 * 1_000_000_000;
        c.handshake();
        c.send(Dir::C2S, REQ1, 1460);
        c.send(Dir::S2C, resp.as_bytes(), 1460);
        c.ack(Dir::C2S);
        c.fin();
        let client = SocketAddr::from((craft::CLIENT.0, 41000 + i as u16));
        all.extend(frames_between(&c.segs, client, server()));
    }
    all
}

/// `n` pipelined requests on one connection, never answered, then the client closes.
pub fn pipelined_unanswered(path: &Path, n: u32) {
    let mut stream = Vec::with_capacity(n as usize * 40);
    for i in 0..n {
        stream.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, &stream, 1460);
    c.push_fin_from_client();
    let mut w = PcapStream::create(path, 262_144);
    w.frames(&craft::ethernet_frames(&c.segs));
    w.finish();
}

impl Conversation {
    fn push_fin_from_client(&mut self) {
        let seq = self.next[0];
        self.ts_ns += 1_000_000;
        self.segs.push(Seg {
            ts_ns: self.ts_ns,
            dir: Dir::C2S,
            seq,
            ack: self.next[1],
            syn: false,
            fin: true,
            rst: false,
            payload: Vec::new(),
        });
        self.next[0] = seq.wrapping_add(1);
    }
}

/// A TLS 1.2 ClientHello and the start of a ServerHello on port 443: not HTTP.
pub fn tls_on_443() -> Vec<(u64, Vec<u8>)> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03,
    ];
    hello.extend((0..32).map(|i| i as u8)); // random
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    hello.extend(std::iter::repeat_n(0u8, 14));
    let server_hello = [0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00];
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    // A "GET " inside encrypted-looking bytes must not be taken for a request.
    hello.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    c.send(Dir::C2S, &hello, 1460);
    c.send(Dir::S2C, &server_hello, 1460);
    c.fin();
    let tls_server = SocketAddr::from((craft::SERVER.0, 443));
    let client = SocketAddr::from((craft::CLIENT.0, craft::CLIENT.1));
    frames_between(&c.segs, client, tls_server)
}

/// IPv4 fragments: a datagram whose second fragment is sent twice with different bytes
/// (overlap), and one whose last fragment never comes; then a packet 60 s later so the
/// incomplete datagram times out.
pub fn bad_fragments() -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, REQ1, 1460);
    c.send(Dir::C2S, REQ2, 1460);
    let segs = c.segs.clone();
    let mut frames: Vec<(u64, Vec<u8>)> = craft::ethernet_frames(&segs[..3]);
    let ts = segs[3].ts_ns;
    // Datagram 1 (REQ1): fragments 0, 1, then 1 again with its bytes flipped, then 2.
    let frags = craft::fragment_ipv4(&craft::ipv4_packet(&segs[3]), 16, 0x1111);
    let mut conflicting = frags[1].clone();
    for b in &mut conflicting[20..] {
        *b ^= 0xff;
    }
    frames.push((ts, craft::ethernet(&frags[0], &[])));
    frames.push((ts + 1, craft::ethernet(&frags[1], &[])));
    frames.push((ts + 2, craft::ethernet(&conflicting, &[])));
    for (k, f) in frags[2..].iter().enumerate() {
        frames.push((ts + 3 + k as u64, craft::ethernet(f, &[])));
    }
    // Datagram 2 (REQ2): every fragment but the last.
    let ts = segs[4].ts_ns;
    let frags = craft::fragment_ipv4(&craft::ipv4_packet(&segs[4]), 16, 0x2222);
    for (k, f) in frags[..frags.len() - 1].iter().enumerate() {
        frames.push((ts + k as u64, craft::ethernet(f, &[])));
    }
    // A pure ACK from the server, a minute later.
    let mut late = segs[1].clone();
    late.syn = false;
    late.seq = late.seq.wrapping_add(1);
    late.ts_ns = ts + 60_000_000_000;
    frames.push((late.ts_ns, craft::ethernet(&craft::ipv4_packet(&late), &[])));
    frames
}

/// TCP segments whose data offset is below 5 words, and beyond the packet.
pub fn bad_data_offset() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for (i, doff) in [0u8, 3, 4, 15].iter().enumerate() {
        let seg = Seg {
            ts_ns: craft::T0 + i as u64 * 1_000,
            dir: Dir::C2S,
            seq: 1,
            ack: 1,
            syn: false,
            fin: false,
            rst: false,
            payload: REQ1.to_vec(),
        };
        let mut ip = craft::ipv4_packet(&seg);
        ip[20 + 12] = (doff << 4) | (ip[20 + 12] & 0x0f);
        frames.push((seg.ts_ns, craft::ethernet(&ip, &[])));
    }
    frames
}

/// A pcapng of one exchange whose fifth Enhanced Packet Block claims `lie` bytes in its leading
/// length field; returns the file and that block's offset.
pub fn pcapng_lying_length(lie: u32) -> (Vec<u8>, u64) {
    let frames = exchange(REQ1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let frames: Vec<(u32, u64, Vec<u8>)> = frames.into_iter().map(|(t, f)| (0, t, f)).collect();
    let bytes = craft::pcapng(&[(1, 9)], &frames);
    // Walk the blocks to the fifth packet block.
    let mut at = 0usize;
    let mut epbs = 0;
    loop {
        let ty = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if ty == 6 {
            epbs += 1;
            if epbs == 5 {
                break;
            }
        }
        at += len;
    }
    let mut out = bytes;
    out[at + 4..at + 8].copy_from_slice(&lie.to_le_bytes());
    (out, at as u64)
}

/// One exchange captured with a 96-byte snap length: every payload is cut.
pub fn truncated_snaplen(path: &Path) {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".to_vec();
    resp.extend(std::iter::repeat_n(b'q', 3000));
    let mut w = PcapStream::create(path, 96);
    w.frames(&exchange(REQ1, &resp));
    w.finish();
}

/// Like [`exchange`], from another client port (a second connection), starting at `ts_ns`.
pub fn exchange_from_port(
    port: u16,
    ts_ns: u64,
    request: &[u8],
    response: &[u8],
) -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.ts_ns = ts_ns;
    c.handshake();
    c.send(Dir::C2S, request, 1460);
    c.send(Dir::S2C, response, 1460);
    c.ack(Dir::C2S);
    c.fin();
    frames_between(&c.segs, SocketAddr::from((craft::CLIENT.0, port)), server())
}

/// The original 3000-byte response body of [`overlap_conflict`].
pub fn overlap_body() -> Vec<u8> {
    (0..3000).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A response in three 1000-byte segments A B C delivered C, B, then a copy of B with every byte
/// changed, then A: the conflicting copy overlaps held data, so it is detected and counted;
/// the first copy wins.
pub fn overlap_conflict() -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(100, 5_000);
    c.handshake();
    c.send(Dir::C2S, REQ1, 1460);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".to_vec();
    let head = resp.len();
    resp.extend(overlap_body());
    c.send(Dir::S2C, &resp[..head], 1460);
    let first = c.segs.len();
    c.send(Dir::S2C, &resp[head..], 1000);
    c.ack(Dir::C2S);
    c.fin();
    let (a, b, cc) = (
        c.segs[first].clone(),
        c.segs[first + 1].clone(),
        c.segs[first + 2].clone(),
    );
    let mut evil = b.clone();
    for x in &mut evil.payload {
        *x ^= 0x20;
    }
    let mut segs = c.segs[..first].to_vec();
    for (k, mut s) in [cc, b, evil, a].into_iter().enumerate() {
        s.ts_ns = c.segs[first].ts_ns + k as u64 * 1000;
        segs.push(s);
    }
    segs.extend(c.segs[first + 3..].iter().cloned());
    craft::ethernet_frames(&segs)
}
