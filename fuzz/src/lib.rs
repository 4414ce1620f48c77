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
//!
//! Nothing here reads the clock or the file system.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;

use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::pipeline::{Pipeline, PipelineConfig, Sink, Spans};
use tapspan::protocols::http1::{HttpConfig, HttpDecoder, HttpExchange};
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
fn emit(ex: &HttpExchange) {
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
    let mut out = |ex: HttpExchange| emit(&ex);
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
    let exchanges = pipeline.stats().protocols.http.exchanges;
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
