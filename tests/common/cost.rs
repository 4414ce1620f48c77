//! Generator of captures that attack CPU rather than memory (issue 16): a hole followed by
//! many tiny segments in every order of arrival, overlapping retransmissions, tiny segments at
//! the held-bytes cap, unanswered pipelined requests one per segment, and datagrams cut into
//! 8-byte IP fragments arriving odd-first. Each builds Ethernet frames in memory (cheap to
//! feed to a `Pipeline`) and can be written as a pcap for the benchmarks
//! (`TAPSPAN_WRITE_COST_CAPTURES=DIR cargo test --release --test adversarial_cost`).
//!
//! Every capture is one client connection to `craft::SERVER`, answered at the end (so the
//! stream decodes to a known exchange), unless said otherwise.
#![allow(dead_code)]

use std::path::Path;

use std::net::SocketAddr;

use super::adversarial::{self, PcapStream};
use super::craft::{self, Conversation, Dir, Seg};

const ISN_C: u32 = 1_000;
const ISN_S: u32 = 50_000;
/// Capture time between packets: 1 µs keeps every flood inside the hole timeout (10 s).
const TICK_NS: u64 = 1_000;

/// How the tiny segments after the hole arrive.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    Ascending,
    Descending,
    /// A seeded shuffle.
    Random(u64),
    /// 8-byte segments every 4 bytes (each overlaps the previous by half), ascending, and every
    /// 16th segment followed by a retransmission of the 64 bytes before it.
    Overlapping,
}

/// Segments of one connection with running timestamps.
struct Builder {
    segs: Vec<Seg>,
    ts: u64,
    tick: u64,
}

impl Builder {
    fn new() -> Self {
        Builder::every(TICK_NS)
    }

    /// A builder whose packets are `tick` ns apart.
    fn every(tick: u64) -> Self {
        let mut b = Builder {
            segs: Vec::new(),
            ts: craft::T0,
            tick,
        };
        b.push(Dir::C2S, ISN_C, 0, true, false, Vec::new());
        b.push(Dir::S2C, ISN_S, ISN_C + 1, true, false, Vec::new());
        b.push(Dir::C2S, ISN_C + 1, ISN_S + 1, false, false, Vec::new());
        b
    }

    fn push(&mut self, dir: Dir, seq: u32, ack: u32, syn: bool, fin: bool, payload: Vec<u8>) {
        self.ts += self.tick;
        self.segs.push(Seg {
            ts_ns: self.ts,
            dir,
            seq,
            ack,
            syn,
            fin,
            rst: false,
            payload,
        });
    }

    /// Client bytes at stream offset `off` (0 = first byte after the SYN).
    fn client(&mut self, off: u64, payload: Vec<u8>) {
        self.push(
            Dir::C2S,
            ISN_C.wrapping_add(1).wrapping_add(off as u32),
            ISN_S + 1,
            false,
            false,
            payload,
        );
    }

    /// The server answers once the client sent `client_len` bytes, then both close.
    fn answer_and_close(&mut self, client_len: u64) {
        let acked = ISN_C.wrapping_add(1).wrapping_add(client_len as u32);
        let resp = RESPONSE.to_vec();
        let resp_len = resp.len() as u32;
        self.push(Dir::S2C, ISN_S + 1, acked, false, false, resp);
        self.push(
            Dir::C2S,
            acked,
            ISN_S + 1 + resp_len,
            false,
            true,
            Vec::new(),
        );
        self.push(
            Dir::S2C,
            ISN_S + 1 + resp_len,
            acked.wrapping_add(1),
            false,
            true,
            Vec::new(),
        );
        self.push(
            Dir::C2S,
            acked.wrapping_add(1),
            ISN_S + 2 + resp_len,
            false,
            false,
            Vec::new(),
        );
    }

    fn frames(&self) -> Vec<(u64, Vec<u8>)> {
        craft::ethernet_frames(&self.segs)
    }
}

pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

fn upload_head(body_len: u64) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n\r\n").into_bytes()
}

/// Body byte at body offset `i`: varied, so that a byte taken from the wrong copy shows.
pub fn body_byte(i: u64) -> u8 {
    b'a' + (i.wrapping_mul(7) % 26) as u8
}

fn body(from: u64, len: u64) -> Vec<u8> {
    (from..from + len).map(body_byte).collect()
}

/// xorshift64: a small seeded generator, so the random order is the same on every run.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

/// A POST whose body's first byte is missing while `n` tiny segments of the rest arrive in
/// `order`; then the missing byte arrives (the hole fills) and the server answers.
/// One-byte segments, except `Order::Overlapping` (8-byte segments every 4 bytes).
pub fn hole_then_tiny(n: u64, order: Order) -> Vec<(u64, Vec<u8>)> {
    let body_len = match order {
        Order::Overlapping => 1 + 4 * n + 4,
        _ => 1 + n,
    };
    let head = upload_head(body_len);
    let at = head.len() as u64;
    let mut b = Builder::new();
    b.client(0, head);
    let mut pieces: Vec<(u64, u64)> = match order {
        Order::Overlapping => Vec::new(),
        _ => (1..=n).map(|i| (i, 1)).collect(),
    };
    match order {
        Order::Ascending => {}
        Order::Descending => pieces.reverse(),
        Order::Random(seed) => shuffle(&mut pieces, seed),
        Order::Overlapping => {
            for k in 0..n {
                pieces.push((1 + 4 * k, 8));
                if k % 16 == 15 {
                    pieces.push((1 + 4 * k + 8 - 64, 64));
                }
            }
        }
    }
    for (off, len) in pieces {
        b.client(at + off, body(off, len));
    }
    b.client(at, body(0, 1));
    b.answer_and_close(at + body_len);
    b.frames()
}

/// A POST whose body arrives as `rounds` × (a missing byte, then `per_round` one-byte segments):
/// each round holds tiny segments until the held-bytes cap gives the hole up. The body never
/// completes its holes; the server answers at the end.
pub fn tiny_at_cap(rounds: u64, per_round: u64) -> Vec<(u64, Vec<u8>)> {
    let body_len = rounds * (1 + per_round);
    let head = upload_head(body_len);
    let at = head.len() as u64;
    let mut b = Builder::new();
    b.client(0, head);
    for r in 0..rounds {
        let hole = r * (1 + per_round);
        for i in 1..=per_round {
            b.client(at + hole + i, body(hole + i, 1));
        }
    }
    b.answer_and_close(at + body_len);
    b.frames()
}

/// `n` pipelined requests, one per segment `tick` ns apart, never answered; then the client
/// closes.
pub fn pipelined_one_per_segment(n: u64, tick: u64) -> Vec<(u64, Vec<u8>)> {
    let mut b = Builder::every(tick);
    let mut off = 0;
    for i in 0..n {
        let req = format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        let len = req.len() as u64;
        b.client(off, req);
        off += len;
    }
    let fin_seq = ISN_C.wrapping_add(1).wrapping_add(off as u32);
    b.push(Dir::C2S, fin_seq, ISN_S + 1, false, true, Vec::new());
    b.frames()
}

/// A POST whose body travels in `datagrams` TCP segments of `seg_len` bytes, each sent as
/// 8-byte IPv4 fragments in the order that keeps the most disjoint ranges held: every odd
/// fragment first (ascending), then every even one. Then the server answers.
pub fn fragmented(datagrams: u64, seg_len: usize) -> Vec<(u64, Vec<u8>)> {
    let body_len = datagrams * seg_len as u64;
    let head = upload_head(body_len);
    let at = head.len() as u64;
    let mut b = Builder::new();
    b.client(0, head);
    let first_body = b.segs.len();
    for d in 0..datagrams {
        b.client(
            at + d * seg_len as u64,
            body(d * seg_len as u64, seg_len as u64),
        );
    }
    let last_body = b.segs.len();
    b.answer_and_close(at + body_len);
    let mut frames = Vec::new();
    for (i, s) in b.segs.iter().enumerate() {
        if !(first_body..last_body).contains(&i) {
            frames.push((s.ts_ns, craft::ethernet(&craft::ipv4_packet(s), &[])));
            continue;
        }
        let frags = craft::fragment_ipv4(&craft::ipv4_packet(s), 8, i as u16);
        let odd = frags.iter().skip(1).step_by(2);
        let even = frags.iter().step_by(2);
        for f in odd.chain(even) {
            frames.push((s.ts_ns, craft::ethernet(f, &[])));
        }
    }
    // One tick a frame, so that capture time still advances monotonically.
    for (i, f) in frames.iter_mut().enumerate() {
        f.0 = craft::T0 + i as u64 * TICK_NS;
    }
    frames
}

/// `k` connections that each send a request head padded to about `pad` bytes, all cut before
/// their last line ending; then each sends the rest and is answered. Every head waits in a head
/// buffer at once. Returns the frames and the length of each head's first part (the same for all).
pub fn split_heads(k: u32, pad: usize) -> (Vec<(u64, Vec<u8>)>, usize) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut first_part = 0;
    for i in 0..k {
        let mut c = Conversation::new(1_000 + i.wrapping_mul(100_000), 9_000);
        c.handshake();
        let head = format!(
            "GET /c/{i:05} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(pad)
        );
        let (a, b) = head.as_bytes().split_at(head.len() - 2);
        first_part = a.len();
        c.send(Dir::C2S, a, 65_000);
        let sent = c.segs.len();
        c.send(Dir::C2S, b, 65_000);
        c.send(Dir::S2C, RESPONSE, 1460).ack(Dir::C2S);
        c.fin();
        let client = SocketAddr::from((craft::CLIENT.0, 20_000 + i as u16));
        let mut frames = adversarial::frames_between(&c.segs, client, adversarial::server());
        second.extend(frames.split_off(sent));
        first.extend(frames);
    }
    let mut frames = first;
    frames.extend(second);
    for (i, f) in frames.iter_mut().enumerate() {
        f.0 = craft::T0 + i as u64 * TICK_NS;
    }
    (frames, first_part)
}

/// Span JSON lines (as `tapspan replay` writes them) of one request whose handler makes `n`
/// calls one after another, each to a different target of one route: the fan-out that a report's
/// per-parent analysis (retries, N+1, sequential calls) looks at. For `tapspan report`.
pub fn fan_out_spans(n: u64) -> String {
    let span = |id: &str,
                parent: Option<&str>,
                kind: &str,
                service: &str,
                t: (u64, u64),
                x: &str,
                path: &str,
                route: &str| {
        serde_json::json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": id, "parent_span_id": parent,
            "kind": kind, "name": format!("GET {route}"), "service": service,
            "start_unix_nano": t.0, "end_unix_nano": t.1, "status": "unset",
            "attributes": {"tapspan.exchange_id": x, "http.request.method": "GET", "url.path": path,
                "http.route": route, "http.response.status_code": 200},
            "events": [{"name": "request.end", "time_unix_nano": t.0 + 10},
                {"name": "response.start", "time_unix_nano": t.1 - 10}],
        })
        .to_string()
    };
    let t0 = craft::T0;
    let whole = (t0, t0 + (n + 2) * 1_000);
    let mut out = String::new();
    for line in [
        span(
            "p0", None, "client", "client", whole, "xp", "/batch", "/batch",
        ),
        span(
            "p1",
            Some("p0"),
            "server",
            "api",
            whole,
            "xp",
            "/batch",
            "/batch",
        ),
    ] {
        out.push_str(&line);
        out.push('\n');
    }
    for i in 0..n {
        let t = (t0 + 500 + i * 1_000, t0 + 1_400 + i * 1_000);
        let (c, s, x, path) = (
            format!("c{i}"),
            format!("s{i}"),
            format!("x{i}"),
            format!("/item/{i}"),
        );
        for line in [
            span(&c, Some("p1"), "client", "api", t, &x, &path, "/item/{id}"),
            span(&s, Some(&c), "server", "db", t, &x, &path, "/item/{id}"),
        ] {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Writes frames as a pcap (nanosecond timestamps, Ethernet).
pub fn write(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapStream::create(path, 262_144);
    w.frames(frames);
    w.finish();
}
