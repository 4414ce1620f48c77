//! Fuzz harnesses, one per byte-facing entry point, shared by the cargo-fuzz targets in
//! `fuzz_targets/` and by the workspace test `tests/fuzz_regressions.rs` (which includes this file
//! by path and replays `fuzz/seeds/` and `fuzz/regressions/` as ordinary tests).
//!
//! Each harness turns arbitrary bytes into input for one stage, runs it with small caps so that
//! overflow paths are reached, and checks the stage's invariants besides "does not panic":
//! - [`capture_file`]: pcap/pcapng reading; frames lie inside the input, offsets grow, a damaged
//!   file yields `Ok(None)` after its error.
//! - [`decode`]: link + IP decoding (and IP defragmentation) of a sequence of frames.
//! - [`reassembly`]: a fuzzed sequence of TCP segments; per connection and direction, data and
//!   gaps are contiguous and in order, nothing follows a close, caps hold.
//! - [`http`]: HTTP/1.x framing and pairing driven by fuzzed stream events in both directions;
//!   every exchange makes spans that serialise to JSON, OTLP and Zipkin.
//! - [`replay`]: a whole fuzzed capture through decode → reassembly → HTTP → causality → spans.
//! - [`redis`], [`postgres`], [`dns`], [`tls`]: the protocol decoders fed a fuzzed two-way
//!   conversation ([`steps`], the `http` ops format); every request leaves as exactly one
//!   exchange, in-flight queues stay under their caps, attributes serialise, and Redis values
//!   and SQL literals never reach an exchange.
//!
//! Nothing here reads the clock or the file system.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;

use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::pipeline::{Pipeline, PipelineConfig, Sink, Spans};
use tapspan::protocols::http1::{HttpConfig, HttpDecoder};
use tapspan::protocols::Exchange;
use tapspan::reassembly::{
    CloseReason, ConnId, Direction, OpenHow, Reassembler, ReassemblyConfig, StreamEvent,
};
use tapspan::span::{spans_for, Span};
use tapspan_capture::{
    DecodeConfig, Decoder, FileSource, FlowKey, LinkType, PacketSource, RawFrame, TcpFlags,
    TcpSegment, Timestamp,
};

/// Link types a fuzzed frame may claim (every one the decoder knows, and one it does not).
pub const LINK_TYPES: &[u32] = &[1, 0, 101, 108, 113, 228, 229, 239, 276, 12, 14, 9999];

/// Splits `data` into length-prefixed records: a little-endian u16 length, then that many bytes
/// (fewer at the end of the input).
pub fn records(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let len = if data.len() >= 2 {
            let l = u16::from_le_bytes([data[0], data[1]]) as usize;
            data = &data[2..];
            l
        } else {
            let l = data.len();
            data = &data[..0];
            l
        };
        let (rec, rest) = data.split_at(len.min(data.len()));
        data = rest;
        Some(rec)
    })
}

/// Encodes frames the way [`decode`] reads them (for seeds).
pub fn encode_records(link_index: u8, frames: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![link_index];
    for f in frames {
        let len = f.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&f[..len]);
    }
    out
}

/// pcap/pcapng reading from an in-memory file.
pub fn capture_file(data: &[u8]) {
    let Ok(mut src) = FileSource::from_reader("fuzz", Cursor::new(data.to_vec())) else {
        return;
    };
    let len = data.len() as u64;
    let mut last_offset = None;
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                assert!(
                    f.offset < len,
                    "frame offset {} beyond input {len}",
                    f.offset
                );
                assert!(f.data.len() as u64 <= len, "frame longer than the input");
                if let Some(prev) = last_offset {
                    assert!(
                        f.offset > prev,
                        "offsets must grow: {prev} then {}",
                        f.offset
                    );
                }
                last_offset = Some(f.offset);
            }
            Ok(None) => break,
            Err(_) => {
                assert!(
                    matches!(src.next_frame(), Ok(None)),
                    "after an error: Ok(None)"
                );
                break;
            }
        }
        assert!(src.position() <= len, "position beyond the input");
    }
    assert!(
        matches!(src.next_frame(), Ok(None)),
        "the end stays the end"
    );
}

/// Link and IP decoding: first byte picks the link type, then length-prefixed frames.
pub fn decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LinkType(LINK_TYPES[sel as usize % LINK_TYPES.len()]);
    let mut dec = Decoder::new(DecodeConfig {
        defrag_max_bytes: 8 << 10,
        defrag_max_datagrams: 8,
        defrag_timeout_ns: 1_000_000,
    });
    for (i, frame) in records(rest).enumerate() {
        // Time moves 100 µs a frame; every 16th frame jumps past the fragment timeout.
        let ts = Timestamp(i as u64 * 100_000 + (i as u64 / 16) * 10_000_000);
        let raw = RawFrame {
            ts,
            link_type: link,
            data: frame,
            orig_len: frame.len() as u32 + (sel as u32 >> 4),
            offset: i as u64,
        };
        if let Some(seg) = dec.decode(&raw) {
            assert!(
                seg.payload.len() <= 65_535,
                "a TCP payload longer than an IP packet"
            );
            if let Cow::Borrowed(p) = &seg.payload {
                assert!(p.len() <= frame.len());
            }
        }
    }
    let s = dec.stats();
    assert!(s.tcp_segments <= s.frames + s.datagrams_reassembled);
}

const REASSEMBLY_HOSTS: [[u8; 4]; 2] = [[10, 0, 0, 1], [10, 0, 0, 2]];
const REASSEMBLY_PORTS: [u16; 4] = [80, 40000, 40001, 8080];

/// One fuzzed segment: 12 header bytes (flags, addressing, seq, ack-ish time step, length) then
/// the payload.
fn fuzz_segment<'a>(
    data: &mut &'a [u8],
    ts: &mut u64,
    base_seq: &mut u32,
) -> Option<TcpSegment<'a>> {
    if data.len() < 12 {
        return None;
    }
    let h = &data[..12];
    let flags = h[0];
    let addr = h[1];
    let seq_raw = u32::from_le_bytes([h[2], h[3], h[4], h[5]]);
    let ack = u32::from_le_bytes([h[6], h[7], h[8], h[9]]);
    let step = h[10];
    let len = h[11] as usize;
    *data = &data[12..];
    let (payload, rest) = data.split_at(len.min(data.len()));
    *data = rest;
    // Sequence numbers: mostly near a running base (overlaps, holes, retransmissions), sometimes
    // absolute (wild jumps, wraparound).
    let seq = if addr & 0x80 != 0 {
        seq_raw
    } else {
        base_seq.wrapping_add(seq_raw % 4096).wrapping_sub(1024)
    };
    if addr & 0x40 != 0 {
        *base_seq = base_seq.wrapping_add(payload.len() as u32);
    }
    // Time: small steps, and now and then far ahead (idle expiry, hole timeout, RST linger).
    *ts += match step {
        0xff => 400_000_000_000,
        0xf0..=0xfe => 20_000_000_000,
        s => s as u64 * 1_000,
    };
    let a = REASSEMBLY_HOSTS[(addr & 1) as usize];
    let b = REASSEMBLY_HOSTS[1 - (addr & 1) as usize];
    let pa = REASSEMBLY_PORTS[((addr >> 1) & 3) as usize];
    let pb = REASSEMBLY_PORTS[((addr >> 3) & 3) as usize];
    Some(TcpSegment {
        ts: Timestamp(*ts),
        flow: FlowKey {
            src: SocketAddr::from((a, pa)),
            dst: SocketAddr::from((b, pb)),
        },
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 1024,
        payload: Cow::Borrowed(payload),
        snapped: 0,
    })
}

/// Checks the stream-event contract per connection and direction.
#[derive(Default)]
struct StreamChecker {
    /// Next expected offset per direction; `None` once closed.
    conns: HashMap<ConnId, Option<[u64; 2]>>,
    half_closed: HashMap<(ConnId, usize), bool>,
}

impl StreamChecker {
    fn check(&mut self, ev: &StreamEvent<'_>) {
        match *ev {
            StreamEvent::Open { conn, .. } => {
                assert!(!self.conns.contains_key(&conn), "{conn:?} opened twice");
                self.conns.insert(conn, Some([0, 0]));
            }
            StreamEvent::Data {
                conn,
                dir,
                offset,
                bytes,
                ..
            } => {
                assert!(!bytes.is_empty(), "empty data event");
                let next = self.next(conn, dir);
                assert_eq!(*next, offset, "{conn:?} {dir:?}: data not contiguous");
                *next += bytes.len() as u64;
                assert!(
                    !self.half_closed.contains_key(&(conn, dir.index())),
                    "data after FIN"
                );
            }
            StreamEvent::Gap {
                conn,
                dir,
                offset,
                len,
                ..
            } => {
                assert!(len > 0, "empty gap");
                let next = self.next(conn, dir);
                assert_eq!(*next, offset, "{conn:?} {dir:?}: gap not contiguous");
                *next += len;
            }
            StreamEvent::HalfClose { conn, dir, .. } => {
                self.next(conn, dir);
                self.half_closed.insert((conn, dir.index()), true);
            }
            StreamEvent::Close { conn, .. } => {
                let state = self
                    .conns
                    .get_mut(&conn)
                    .expect("close of a connection never opened");
                assert!(state.is_some(), "{conn:?} closed twice");
                *state = None;
            }
        }
    }

    fn next(&mut self, conn: ConnId, dir: Direction) -> &mut u64 {
        let state = self
            .conns
            .get_mut(&conn)
            .expect("event for a connection never opened");
        let offsets = state.as_mut().expect("event after close");
        &mut offsets[dir.index()]
    }

    fn all_closed(&self) -> bool {
        self.conns.values().all(|s| s.is_none())
    }
}

/// TCP reassembly of a fuzzed sequence of segments among four ports on two hosts.
pub fn reassembly(data: &[u8]) {
    let config = ReassemblyConfig {
        max_connections: 3,
        max_held_bytes_per_direction: 2048,
        max_held_bytes_total: 3072,
        idle_timeout_ns: 300_000_000_000,
        hole_timeout_ns: 10_000_000_000,
        rst_linger_ns: 1_000_000_000,
        max_closed_remembered: 4,
        closed_linger_ns: 60_000_000_000,
    };
    let max_conns = config.max_connections;
    let max_held = config.max_held_bytes_total;
    let mut r = Reassembler::new(config);
    let mut checker = StreamChecker::default();
    let mut rest = data;
    let mut ts = 1_000_000_000u64;
    let mut base_seq = 1_000u32;
    while let Some(seg) = fuzz_segment(&mut rest, &mut ts, &mut base_seq) {
        r.push(&seg, &mut |ev| checker.check(&ev));
        assert!(r.active_connections() <= max_conns, "connection cap");
        assert!(r.held_bytes() <= max_held, "held-bytes cap");
    }
    r.finish(&mut |ev| checker.check(&ev));
    assert_eq!(r.active_connections(), 0, "finish closes everything");
    assert!(checker.all_closed(), "every opened connection is closed");
    assert!(r.stats.peak_connections <= max_conns as u64);
    assert!(r.stats.peak_held_bytes <= max_held as u64);
}

/// Spans for an exchange, serialised the three ways they leave the process.
fn emit(ex: &Exchange) {
    for span in spans_for(ex) {
        serialise(&span);
    }
}

fn serialise(span: &Span) {
    let json = serde_json::to_vec(span).expect("a span serialises to JSON");
    assert!(!json.is_empty());
    let _ = tapspan::export::otlp::to_otlp(span);
    let z = tapspan::export::zipkin::to_zipkin_json(span, None);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&z).is_ok(),
        "Zipkin JSON is JSON"
    );
}

/// HTTP framing and pairing: fuzzed stream events on one connection, both directions.
///
/// Byte 0 chooses handshake or mid-stream; then each op is two bytes (kind, length) and for data
/// that many bytes: kind % 8 = 0..3 client data, 4..5 server data, 6 a gap, 7 a half close; a
/// kind of 0xff closes with a reason.
pub fn http(data: &[u8]) {
    let Some((&how, mut rest)) = data.split_first() else {
        return;
    };
    let head_cap = 1024;
    let config = HttpConfig {
        max_pending_requests: 4,
        max_resync_scan: 4096,
        max_head_bytes_total: head_cap,
        ..HttpConfig::default()
    };
    let mut dec = HttpDecoder::new(config);
    let conn = ConnId(1);
    let mut out = |ex: Exchange| emit(&ex);
    let mut ts = 1_700_000_000_000_000_000u64;
    dec.push(
        StreamEvent::Open {
            conn,
            client: SocketAddr::from(([10, 0, 0, 1], 40000)),
            server: SocketAddr::from(([10, 0, 0, 2], 80)),
            how: if how & 1 == 0 {
                OpenHow::Handshake
            } else {
                OpenHow::Midstream
            },
            ts: Timestamp(ts),
        },
        &mut out,
    );
    let mut offsets = [0u64; 2];
    let mut closed = false;
    while rest.len() >= 2 && !closed {
        let (kind, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        ts += 1_000_000;
        let ev = match kind {
            0xff => {
                closed = true;
                let why = [
                    CloseReason::Fin,
                    CloseReason::Rst,
                    CloseReason::Idle,
                    CloseReason::Evicted,
                    CloseReason::CaptureEnd,
                ][len % 5];
                StreamEvent::Close {
                    conn,
                    why,
                    ts: Timestamp(ts),
                }
            }
            k => {
                let dir = if k % 8 < 4 || (k % 8 >= 6 && k & 0x80 == 0) {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                let d = dir.index();
                match k % 8 {
                    6 => {
                        let gap = len as u64 * 37 + 1;
                        let ev = StreamEvent::Gap {
                            conn,
                            dir,
                            offset: offsets[d],
                            len: gap,
                            // Some gaps as a snap length makes them (known bytes, not loss).
                            snapped: k & 0x40 != 0,
                            ts: Timestamp(ts),
                        };
                        offsets[d] += gap;
                        ev
                    }
                    7 => StreamEvent::HalfClose {
                        conn,
                        dir,
                        ts: Timestamp(ts),
                    },
                    _ => {
                        let (bytes, tail) = rest.split_at(len.min(rest.len()));
                        rest = tail;
                        if bytes.is_empty() {
                            continue;
                        }
                        let ev = StreamEvent::Data {
                            conn,
                            dir,
                            offset: offsets[d],
                            seq: 1000u32.wrapping_add(offsets[d] as u32),
                            ts: Timestamp(ts),
                            bytes,
                        };
                        offsets[d] += bytes.len() as u64;
                        ev
                    }
                }
            }
        };
        dec.push(ev, &mut out);
        assert!(dec.head_bytes() <= head_cap, "total head-buffer cap");
    }
    if !closed {
        dec.push(
            StreamEvent::Close {
                conn,
                why: CloseReason::CaptureEnd,
                ts: Timestamp(ts + 1),
            },
            &mut out,
        );
    }
    assert_eq!(
        dec.active_connections(),
        0,
        "a closed connection is forgotten"
    );
    assert_eq!(
        dec.head_bytes(),
        0,
        "a closed connection holds no head buffer"
    );
}

/// Spans of the fuzzed replay: serialised, analysed and counted.
struct Checked<'a> {
    analyzer: &'a mut tapspan::analysis::Analyzer,
    spans: u64,
}

impl Sink for Checked<'_> {
    fn span(&mut self, span: Span) {
        serialise(&span);
        self.analyzer.push(&span);
        self.spans += 1;
    }
}

/// A whole fuzzed capture file through the pipeline and the causality builder, with small caps.
pub fn replay(data: &[u8]) {
    let Ok(mut src) = FileSource::from_reader("fuzz", Cursor::new(data.to_vec())) else {
        return;
    };
    let mut config = PipelineConfig::default();
    config.decode.defrag_max_bytes = 16 << 10;
    config.decode.defrag_max_datagrams = 8;
    config.reassembly.max_connections = 8;
    config.reassembly.max_held_bytes_per_direction = 4096;
    config.reassembly.max_held_bytes_total = 8192;
    config.protocols.http.max_pending_requests = 4;
    config.protocols.redis.max_pending = 4;
    config.protocols.postgres.max_pending = 4;
    let mut builder = CausalityBuilder::new(CausalityConfig {
        max_pending: 16,
        ..CausalityConfig::default()
    });
    // The report's analysis of those spans, capped small too, and its HTML.
    let mut analyzer = tapspan::analysis::Analyzer::new(tapspan::analysis::AnalysisConfig {
        max_calls: 64,
        ..Default::default()
    });
    let mut sink = Checked {
        analyzer: &mut analyzer,
        spans: 0,
    };
    let mut pipeline = Pipeline::new(config, Spans::new(&mut builder, &mut sink));
    while let Ok(Some(frame)) = src.next_frame() {
        pipeline.push_frame(&frame);
    }
    pipeline.finish();
    assert_eq!(pipeline.active_connections(), 0);
    let exchanges = pipeline.stats().protocols.exchanges();
    drop(pipeline);
    assert_eq!(sink.spans, exchanges * 2, "two spans per exchange");
    let analysis = analyzer.finish(vec!["fuzz".into()]);
    // Two exchanges of a fuzzed capture can share an id (same 4-tuple and sequence number):
    // the analysis then sees one call.
    assert!(
        analysis.calls + analysis.calls_left_out <= exchanges,
        "no call the capture did not have"
    );
    let counted: u64 = analysis.endpoints.iter().map(|e| e.count).sum();
    assert_eq!(
        counted, analysis.calls,
        "every analysed call in one endpoint"
    );
    let html = tapspan::analysis::report::html::render(&analysis);
    assert!(html.ends_with("</html>"));
}

/// One step of a fuzzed two-way conversation (see [`steps`]).
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// Bytes in one direction; `kind` is the op byte (the `dns` harness reads its bits).
    Data {
        dir: Direction,
        kind: u8,
        bytes: &'a [u8],
    },
    /// Bytes lost in one direction.
    Gap(Direction),
    /// Nothing arrives for a while (time moves on).
    Idle,
    /// The connection ends.
    End,
}

/// Ops in the `http` harness's format, read as steps with their capture time (ns), so that the
/// same seeds (a recording's connections) serve every decoder: each op is two bytes (kind,
/// length) and for data that many bytes; kind % 8 = 0..3 client data, 4..5 server data, 6 a
/// gap (the server's if kind ≥ 0x80; its length is not used), 7 idle for `length` × 100 ms
/// (where `http` reads a half close); kind 0xff ends. Time moves 1 ms an op. Empty data ops
/// are skipped.
pub fn steps(mut rest: &[u8]) -> impl Iterator<Item = (u64, Step<'_>)> {
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut ended = false;
    std::iter::from_fn(move || loop {
        if ended || rest.len() < 2 {
            return None;
        }
        let (kind, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        ts += 1_000_000;
        let server = if kind & 0x80 != 0 {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        let step = match kind {
            0xff => {
                ended = true;
                Step::End
            }
            k if k % 8 == 6 => Step::Gap(server),
            k if k % 8 == 7 => {
                ts += len as u64 * 100_000_000;
                Step::Idle
            }
            k => {
                let (bytes, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                if bytes.is_empty() {
                    continue;
                }
                let dir = if k % 8 < 4 {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                Step::Data { dir, kind, bytes }
            }
        };
        return Some((ts, step));
    })
}

/// Attributes leave as JSON.
fn attributes_serialise(attrs: &[(&'static str, tapspan::span::AttrValue)]) {
    for (k, v) in attrs {
        assert!(!k.is_empty());
        assert!(
            serde_json::to_vec(&v.as_ref().to_json()).is_ok(),
            "attribute {k} serialises"
        );
    }
}

/// A Redis key template: short words, separators, `{id}` and `{rest}` — never a digit, a
/// symbol or a byte the key had otherwise.
fn is_key_template(t: &str) -> bool {
    t.replace("{id}", "")
        .replace("{rest}", "")
        .chars()
        .all(|c| c.is_ascii_alphabetic() || "_-:/.|".contains(c))
}

/// A Redis exchange carries the command name, the key's template and a `?` per other argument.
fn check_redis_exchange(x: &tapspan::protocols::redis::RedisExchange) {
    let words: Vec<&str> = x.operation.split(' ').collect();
    assert!(words.len() <= 2, "operation {:?}", x.operation);
    for w in words {
        let name = w
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_-.".contains(c));
        assert!(
            w == "?" || (!w.is_empty() && name),
            "operation {:?}",
            x.operation
        );
    }
    let rest = x
        .query
        .strip_prefix(x.operation.as_str())
        .unwrap_or_else(|| panic!("query {:?} starts with its operation", x.query));
    let tokens: Vec<&str> = rest.split(' ').skip(1).collect();
    for (i, t) in tokens.iter().enumerate() {
        let ok = match *t {
            "?" => true,
            "…" => i + 1 == tokens.len(),
            t => i == 0 && is_key_template(t),
        };
        assert!(ok, "a value in the query {:?}", x.query);
    }
    attributes_serialise(&x.attributes());
}

/// Redis (RESP2/RESP3) on one connection, both directions. Byte 0: bit 0 set, picked up
/// mid-stream; then [`steps`].
pub fn redis(data: &[u8]) {
    use tapspan::protocols::redis::{RedisConn, MAX_PENDING};
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut dec = RedisConn::new(how & 1 == 0);
    let mut out = Vec::new();
    let mut emitted = 0u64;
    let mut drain = |out: &mut Vec<_>| {
        for x in out.drain(..) {
            check_redis_exchange(&x);
            emitted += 1;
        }
        emitted
    };
    for (ts, step) in steps(rest) {
        match step {
            Step::Data { dir, bytes, .. } => dec.push(dir, ts, bytes, &mut out),
            Step::Gap(dir) => dec.gap(dir, &mut out),
            Step::Idle => {}
            Step::End => break,
        }
        let emitted = drain(&mut out);
        assert!(
            emitted <= dec.stats.commands,
            "more exchanges than commands"
        );
        assert!(
            dec.stats.commands - emitted <= MAX_PENDING as u64,
            "commands in flight beyond the cap"
        );
    }
    dec.finish(&mut out);
    let emitted = drain(&mut out);
    assert_eq!(
        emitted, dec.stats.commands,
        "every command leaves as exactly one exchange"
    );
    dec.finish(&mut out);
    assert!(out.is_empty(), "a second finish has nothing left");
}

/// No `'` outside a `"quoted identifier"`: every string literal became `?`.
fn no_string_literal(q: &str) -> bool {
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            '\'' if !quoted => return false,
            _ => {}
        }
    }
    true
}

/// PostgreSQL protocol 3 on one connection, both directions. Byte 0: bit 0 set, picked up
/// mid-stream; then [`steps`].
pub fn postgres(data: &[u8]) {
    use tapspan::protocols::postgres::{PgConn, MAX_PENDING};
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut dec = PgConn::new(how & 1 == 0);
    let mut out = Vec::new();
    let mut emitted = 0u64;
    let mut drain = |out: &mut Vec<tapspan::protocols::postgres::PgExchange>| {
        for x in out.drain(..) {
            if let Some(q) = &x.query {
                assert!(no_string_literal(q), "a literal in {q:?}");
            }
            assert!(
                x.sqlstate.as_ref().is_none_or(|s| s.len() == 5),
                "{:?}",
                x.sqlstate
            );
            attributes_serialise(&x.attributes());
            emitted += 1;
        }
        emitted
    };
    let requests = |d: &PgConn| d.stats.queries + d.stats.executes;
    for (ts, step) in steps(rest) {
        match step {
            Step::Data { dir, bytes, .. } => dec.push(dir, ts, bytes, &mut out),
            Step::Gap(dir) => dec.gap(dir, &mut out),
            Step::Idle => {}
            Step::End => break,
        }
        let answered = drain(&mut out) + dec.stats.skipped;
        assert!(answered <= requests(&dec), "more exchanges than requests");
        assert!(
            requests(&dec) - answered <= MAX_PENDING as u64,
            "requests in flight beyond the cap"
        );
    }
    dec.finish(&mut out);
    let answered = drain(&mut out) + dec.stats.skipped;
    assert_eq!(
        answered,
        requests(&dec),
        "every query and Execute leaves as one exchange, or was skipped after an error"
    );
    dec.finish(&mut out);
    assert!(out.is_empty(), "a second finish has nothing left");
}

/// DNS over UDP and TCP between two clients and a server. Byte 0: the tracker's pending cap
/// (1..=8) and timeout (bits 3..: × 100 ms, at least 100 ms); then [`steps`]. A data op with
/// kind bit 0x40 is one UDP datagram, else bytes of the TCP connection (each direction framed);
/// kind bit 0x08 picks the second client for a datagram. Idle steps advance the tracker.
pub fn dns(data: &[u8]) {
    use tapspan::protocols::dns::{DnsConfig, DnsExchange, DnsTracker, TcpFramer};
    let Some((&conf, rest)) = data.split_first() else {
        return;
    };
    let max_pending = 1 + (conf & 7) as usize;
    let config = DnsConfig {
        timeout_ns: (1 + (conf >> 3) as u64) * 100_000_000,
        max_pending,
        ..DnsConfig::default()
    };
    let mut t = DnsTracker::new(config);
    let clients = [
        SocketAddr::from(([10, 0, 0, 1], 40000)),
        SocketAddr::from(([10, 0, 0, 3], 40001)),
    ];
    let server = SocketAddr::from(([10, 0, 0, 2], 53));
    let mut framers = [TcpFramer::default(), TcpFramer::default()];
    let mut out: Vec<DnsExchange> = Vec::new();
    let mut exchanges = 0u64;
    let mut check = |out: &mut Vec<DnsExchange>, last: bool| {
        let mut no_response = 0;
        for x in out.drain(..) {
            match x.end {
                Some(end) => {
                    assert!(end >= x.start, "{x:?}");
                    let rcode = x.rcode.expect("an answered query has an rcode");
                    assert_eq!(x.error.is_none(), rcode == 0, "{x:?}");
                }
                None => {
                    let why = x.error.as_deref().expect("an unanswered query says why");
                    assert!(
                        matches!(why, "timeout" | "evicted" | "no_response"),
                        "{why}"
                    );
                    no_response += usize::from(why == "no_response");
                }
            }
            attributes_serialise(&x.attributes());
            exchanges += 1;
        }
        if last {
            assert!(
                no_response <= max_pending,
                "queries in flight beyond the cap"
            );
        }
        exchanges
    };
    let mut now = 0;
    for (ts, step) in steps(rest) {
        now = ts;
        match step {
            Step::Data { dir, kind, bytes } if kind & 0x40 != 0 => {
                let client = clients[usize::from(kind & 0x08 != 0)];
                let (src, dst) = match dir {
                    Direction::ClientToServer => (client, server),
                    Direction::ServerToClient => (server, client),
                };
                t.advance_to(ts, &mut out);
                t.datagram(ts, src, dst, bytes, &mut out);
            }
            Step::Data { dir, bytes, .. } => {
                let x = &mut out;
                let tracker = &mut t;
                let offset = framers[dir.index()].next_offset();
                framers[dir.index()].push((ts, offset), bytes, &mut |when, m| {
                    tracker.message(when, clients[0], server, m, x)
                });
            }
            Step::Gap(dir) => framers[dir.index()].lose(),
            Step::Idle => t.advance_to(ts, &mut out),
            Step::End => break,
        }
        let n = check(&mut out, false);
        assert!(
            n <= t.stats.messages - t.stats.malformed,
            "more exchanges than messages"
        );
    }
    t.advance_to(now, &mut out);
    check(&mut out, false);
    t.finish(&mut out);
    check(&mut out, true);
    t.finish(&mut out);
    assert!(out.is_empty(), "a second finish has nothing left");
}

/// A TLS handshake on one connection, both directions; then [`steps`] (no leading byte).
pub fn tls(data: &[u8]) {
    use tapspan::protocols::tls::TlsConn;
    let mut dec = TlsConn::new();
    let mut out = Vec::new();
    let mut last = 0;
    for (ts, step) in steps(data) {
        last = ts;
        match step {
            Step::Data { dir, bytes, .. } => dec.push(dir, ts, bytes, &mut out),
            Step::Gap(_) => dec.gap(ts, &mut out),
            Step::Idle => {}
            Step::End => break,
        }
        assert!(out.len() <= 1, "one handshake per connection");
    }
    dec.finish(last, &mut out);
    dec.finish(last + 1, &mut out);
    assert!(out.len() <= 1, "one handshake per connection");
    for hs in &out {
        assert!(hs.end >= hs.start, "{hs:?}");
        assert!(
            !hs.established || (hs.cut.is_none() && hs.alert.is_none()),
            "{hs:?}"
        );
        assert_eq!(dec.server_name(), hs.client.server_name.as_deref());
        attributes_serialise(&hs.attributes());
    }
}

/// HTTP/2 (frames, HPACK, streams, gRPC) on one connection, both directions. Byte 0: bit 0
/// set, picked up mid-stream; bit 1 set, tiny caps (4 streams, 2 KiB frames, 1 KiB header
/// blocks and lists, a 256-octet table) so that every overflow path runs; then [`steps`].
pub fn http2(data: &[u8]) {
    use tapspan::protocols::http2::{Http2Config, Http2Conn};
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let config = if how & 2 != 0 {
        Http2Config {
            max_streams: 4,
            max_frame_bytes: 2048,
            max_header_block_bytes: 1024,
            max_header_list_bytes: 1024,
            max_table_bytes: 256,
        }
    } else {
        Http2Config::default()
    };
    let max_streams = config.max_streams;
    let mut dec = Http2Conn::new(config, how & 1 == 0);
    let mut out = Vec::new();
    let mut emitted = 0u64;
    for (ts, step) in steps(rest) {
        match step {
            Step::Data { dir, bytes, .. } => dec.push(dir, ts, bytes, &mut out),
            Step::Gap(dir) => dec.gap(dir),
            Step::Idle => {}
            Step::End => break,
        }
        assert!(dec.open_streams() <= max_streams, "streams beyond the cap");
        emitted += out.len() as u64;
        for x in out.drain(..) {
            check_http2_exchange(&x);
        }
    }
    dec.finish(&mut out);
    emitted += out.len() as u64;
    for x in out.drain(..) {
        check_http2_exchange(&x);
    }
    assert_eq!(dec.open_streams(), 0, "finish leaves no stream open");
    assert_eq!(
        emitted,
        dec.stats().exchanges,
        "every exchange counted once"
    );
    dec.finish(&mut out);
    assert!(out.is_empty(), "a second finish has nothing left");
    http2_through_the_seam(how, rest);
}

/// The same steps as stream events through every registered decoder (the HTTP/2 one claims
/// what starts like HTTP/2, h2c upgrades keep an HTTP/1.x view), each exchange made spans.
fn http2_through_the_seam(how: u8, rest: &[u8]) {
    use tapspan::protocols::{Decoders, ProtocolConfig};
    let mut config = ProtocolConfig::default();
    config.http2.max_streams = if how & 2 != 0 { 4 } else { 1024 };
    let mut decoders = Decoders::new(&config);
    let conn = ConnId(1);
    let mut out = |ex: Exchange| emit(&ex);
    decoders.push(
        StreamEvent::Open {
            conn,
            client: SocketAddr::from(([10, 0, 0, 1], 40000)),
            server: SocketAddr::from(([10, 0, 0, 2], 50051)),
            how: if how & 1 == 0 {
                OpenHow::Handshake
            } else {
                OpenHow::Midstream
            },
            ts: Timestamp(1),
        },
        &mut out,
    );
    let mut offsets = [0u64; 2];
    let mut last = 1;
    for (ts, step) in steps(rest) {
        last = ts;
        let ts = Timestamp(ts);
        match step {
            Step::Data { dir, bytes, .. } => {
                let d = dir.index();
                let seq = (offsets[d] as u32).wrapping_add(if d == 0 { 1000 } else { 9000 });
                let ev = StreamEvent::Data {
                    conn,
                    dir,
                    offset: offsets[d],
                    seq,
                    ts,
                    bytes,
                };
                decoders.push(ev, &mut out);
                offsets[d] += bytes.len() as u64;
            }
            Step::Gap(dir) => {
                let d = dir.index();
                let ev = StreamEvent::Gap {
                    conn,
                    dir,
                    offset: offsets[d],
                    len: 100,
                    snapped: false,
                    ts,
                };
                decoders.push(ev, &mut out);
                offsets[d] += 100;
            }
            Step::Idle => {}
            Step::End => break,
        }
    }
    let why = CloseReason::CaptureEnd;
    decoders.push(
        StreamEvent::Close {
            conn,
            why,
            ts: Timestamp(last),
        },
        &mut out,
    );
    assert_eq!(
        decoders.active_connections(),
        0,
        "a closed connection is forgotten"
    );
}

fn check_http2_exchange(x: &tapspan::protocols::http2::H2Exchange) {
    assert!(
        x.unknown_headers.len() <= 16,
        "unknown headers listed beyond the cap"
    );
    // Each side in order. Not the request before the response: a stream picked up mid-way
    // may show the end of a request body sent after the response ended (RFC 9113 §8.1 lets
    // a server answer before the request is complete).
    if let (Some(a), Some(b)) = (x.request_start, x.request_end) {
        assert!(a <= b, "{x:?}");
    }
    if let (Some(a), Some(b)) = (x.response_start, x.response_end) {
        assert!(a <= b, "{x:?}");
    }
    if let Some(g) = &x.grpc {
        if let (Some(s), Some(m)) = (&g.service, &g.method) {
            assert!(x.path.as_deref() == Some(&format!("/{s}/{m}")), "{x:?}");
        }
    }
}
