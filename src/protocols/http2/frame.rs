//! HTTP/2 framing (RFC 9113 §4.1, §6): one direction's bytes in, whole frames out.
//!
//! [`FrameReader`] buffers at most one frame (capped at `max_frame_bytes`, a named setting):
//! a larger frame is reported with its header and no payload, and its bytes are skipped, so
//! memory stays bounded whatever a peer declares. The client's direction starts with the
//! connection preface (§3.4), checked and skipped.
//!
//! After a loss, or when picked up mid-connection, the reader resynchronises: it looks for a
//! position where frame headers that could be real (known type, a length its type allows,
//! flags its type defines, stream 0 exactly where the type needs it) follow each other up to
//! the bytes held — two in a row, or one whose frame ends exactly at the end of what arrived.
//! A capture cut at a packet boundary usually starts at a frame boundary, found at once.
//! Scanning is bounded: each start position is tried once, and at most `max_frame_bytes` are
//! held while lost.

/// The client connection preface (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's length (§4.1).
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value (§6.5.2): the largest frame trusted when resyncing.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// A frame header (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            // The reserved bit is ignored on receipt (§4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether a real peer could have sent this header (used only to resynchronise).
    pub fn plausible(&self) -> bool {
        let on_stream = self.stream != 0;
        let (defined_flags, ok) = match self.kind {
            DATA => (END_STREAM | PADDED, on_stream),
            HEADERS => (END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, on_stream),
            PRIORITY => (0, on_stream && self.len == 5),
            RST_STREAM => (0, on_stream && self.len == 4),
            SETTINGS => (ACK, !on_stream && self.len % 6 == 0),
            PUSH_PROMISE => (END_HEADERS | PADDED, on_stream),
            PING => (ACK, !on_stream && self.len == 8),
            GOAWAY => (0, !on_stream && self.len >= 8),
            WINDOW_UPDATE => (0, self.len == 4),
            CONTINUATION => (END_HEADERS, on_stream),
            _ => return false,
        };
        ok && self.flags & !defined_flags == 0 && self.len <= DEFAULT_MAX_FRAME
    }
}

/// The payload without its padding (§6.1, §6.2, §6.6), and for HEADERS without its priority
/// fields; `None` if the padding or priority does not fit (a malformed frame).
pub fn content<'a>(h: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if h.flags & PADDED != 0 && matches!(h.kind, DATA | HEADERS | PUSH_PROMISE) {
        let (&n, rest) = p.split_first()?;
        pad = n as usize;
        p = rest;
    }
    if h.kind == HEADERS && h.flags & PRIORITY_FLAG != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// What the reader hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame.
    Whole(FrameHeader, &'a [u8]),
    /// A frame over the size cap: its header only (its payload is skipped).
    TooLarge(FrameHeader),
    /// Bytes were skipped to resynchronise (or the preface was wrong): what came before may
    /// have held frames.
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the client preface: this many of its bytes seen.
    Preface(usize),
    Frames,
    /// Skipping a too-large frame's payload: bytes left.
    Skip(u64),
    /// Looking for a frame boundary; positions before `tried` were tried.
    Lost {
        tried: usize,
    },
}

/// One direction's frame reader.
#[derive(Clone, Debug)]
pub struct FrameReader {
    state: State,
    buf: Vec<u8>,
    /// TCP sequence number of `buf[0]` (wrapping), so each frame can say where it started.
    buf_seq: u32,
    max_frame: usize,
    pub frames: u64,
    pub resyncs: u64,
}

impl FrameReader {
    /// `preface`: this is the client's direction from the connection's start.
    /// `synced`: the direction's first byte is a frame (or preface) boundary.
    pub fn new(preface: bool, synced: bool, max_frame: usize) -> Self {
        let state = match (synced, preface) {
            (false, _) => State::Lost { tried: 0 },
            (true, true) => State::Preface(0),
            (true, false) => State::Frames,
        };
        FrameReader {
            state,
            buf: Vec::new(),
            buf_seq: 0,
            max_frame,
            frames: 0,
            resyncs: 0,
        }
    }

    /// Bytes were lost before the next ones.
    pub fn lose(&mut self) {
        self.buf.clear();
        self.state = State::Lost { tried: 0 };
    }

    /// Feeds bytes; each frame completed goes to `out` (payloads borrowed for the call).
    pub fn push(&mut self, bytes: &[u8], out: &mut dyn FnMut(Frame<'_>)) {
        self.push_at(bytes, 0, &mut |f, _| out(f));
    }

    /// [`Self::push`] for bytes whose first has TCP sequence number `seq`: each frame goes to
    /// `out` with the sequence number of its header's first byte (for [`Frame::Lost`], of the
    /// first byte after the loss).
    pub fn push_at(&mut self, mut bytes: &[u8], mut seq: u32, out: &mut dyn FnMut(Frame<'_>, u32)) {
        while !bytes.is_empty() {
            match self.state {
                State::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(bytes.len());
                    if bytes[..n] != PREFACE[seen..seen + n] {
                        out(Frame::Lost, seq);
                        self.state = State::Lost { tried: 0 };
                        continue;
                    }
                    bytes = &bytes[n..];
                    seq = seq.wrapping_add(n as u32);
                    self.state = if seen + n == PREFACE.len() {
                        State::Frames
                    } else {
                        State::Preface(seen + n)
                    };
                }
                State::Skip(left) => {
                    let n = left.min(bytes.len() as u64) as usize;
                    bytes = &bytes[n..];
                    seq = seq.wrapping_add(n as u32);
                    self.state = match left - n as u64 {
                        0 => State::Frames,
                        rest => State::Skip(rest),
                    };
                }
                State::Frames => {
                    let rest = self.frames_from(bytes, seq, out);
                    seq = seq.wrapping_add((bytes.len() - rest.len()) as u32);
                    bytes = rest;
                }
                State::Lost { .. } => {
                    let n = (self.max_frame + HEADER_LEN)
                        .saturating_sub(self.buf.len())
                        .min(bytes.len());
                    if self.buf.is_empty() {
                        self.buf_seq = seq;
                    }
                    self.buf.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    seq = seq.wrapping_add(n as u32);
                    self.resync(out);
                    if matches!(self.state, State::Lost { .. }) && !bytes.is_empty() {
                        // Full and still lost: drop what was tried.
                        let tried = match self.state {
                            State::Lost { tried } => tried.min(self.buf.len()),
                            _ => 0,
                        };
                        let dropped = tried.max(1);
                        self.buf.drain(..dropped);
                        self.buf_seq = self.buf_seq.wrapping_add(dropped as u32);
                        self.state = State::Lost { tried: 0 };
                    }
                }
            }
        }
    }

    /// Whole frames from the buffer and `bytes`; returns the bytes not used (none, unless the
    /// state changed to skipping).
    fn frames_from<'b>(
        &mut self,
        bytes: &'b [u8],
        seq: u32,
        out: &mut dyn FnMut(Frame<'_>, u32),
    ) -> &'b [u8] {
        if self.buf.is_empty() {
            // Fast path: frames straight from the borrowed bytes.
            let mut at = 0;
            while let Some(h) = FrameHeader::parse(&bytes[at..]) {
                let frame_seq = seq.wrapping_add(at as u32);
                if h.len as usize > self.max_frame {
                    out(Frame::TooLarge(h), frame_seq);
                    self.frames += 1;
                    self.state = State::Skip(u64::from(h.len));
                    return &bytes[at + HEADER_LEN..];
                }
                let end = at + HEADER_LEN + h.len as usize;
                let Some(payload) = bytes.get(at + HEADER_LEN..end) else {
                    break;
                };
                self.frames += 1;
                out(Frame::Whole(h, payload), frame_seq);
                at = end;
            }
            self.buf_seq = seq.wrapping_add(at as u32);
            self.buf.extend_from_slice(&bytes[at..]);
            return &[];
        }
        // A frame split over pushes: complete it in the buffer.
        let need = match FrameHeader::parse(&self.buf) {
            Some(h) => HEADER_LEN + h.len as usize,
            None => HEADER_LEN,
        };
        let n = need.saturating_sub(self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..n]);
        let rest = &bytes[n..];
        if let Some(h) = FrameHeader::parse(&self.buf) {
            if h.len as usize > self.max_frame {
                out(Frame::TooLarge(h), self.buf_seq);
                self.frames += 1;
                let had = (self.buf.len() - HEADER_LEN) as u64;
                self.buf.clear();
                self.state = State::Skip(u64::from(h.len) - had);
                return rest;
            }
            if self.buf.len() == HEADER_LEN + h.len as usize {
                self.frames += 1;
                out(Frame::Whole(h, &self.buf[HEADER_LEN..]), self.buf_seq);
                self.buf.clear();
            }
        }
        rest
    }

    /// Looks for a frame boundary in the buffer (see the module doc).
    fn resync(&mut self, out: &mut dyn FnMut(Frame<'_>, u32)) {
        let State::Lost { mut tried } = self.state else {
            return;
        };
        while tried + HEADER_LEN <= self.buf.len() {
            match chain(&self.buf[tried..]) {
                Some(true) => {
                    self.resyncs += 1;
                    let held_seq = self.buf_seq.wrapping_add(tried as u32);
                    out(Frame::Lost, held_seq);
                    let held = self.buf.split_off(tried);
                    self.buf.clear();
                    self.state = State::Frames;
                    let rest = self.frames_from(&held, held_seq, out);
                    debug_assert!(rest.is_empty() || matches!(self.state, State::Skip(_)));
                    if !rest.is_empty() {
                        let rest_seq = held_seq.wrapping_add((held.len() - rest.len()) as u32);
                        let copy = rest.to_vec();
                        self.push_at(&copy, rest_seq, out);
                    }
                    return;
                }
                Some(false) => tried += 1,
                None => break,
            }
        }
        self.state = State::Lost { tried };
    }
}

/// Whether a direction's first bytes seen are HTTP/2 frames picked up at a frame boundary:
/// plausible frame headers following each other from `b[0]` (two, or one ending exactly at
/// the end of `b`). Used to claim connections picked up mid-way; a cut inside a frame is not
/// recognised (the connection then goes to the next decoder).
pub fn starts_with_frames(b: &[u8]) -> bool {
    chain(b) == Some(true)
}

/// Whether plausible frames follow each other from the start of `b` to its end: `Some(true)`
/// yes, `Some(false)` no, `None` not known yet (the bytes end inside the first frame).
fn chain(b: &[u8]) -> Option<bool> {
    let mut at = 0;
    let mut seen = 0;
    loop {
        let Some(h) = FrameHeader::parse(&b[at..]) else {
            // The bytes end inside a header: two whole ones already, or an exact end.
            return match (seen, at == b.len()) {
                (0, _) => None,
                (1, false) => None,
                _ => Some(true),
            };
        };
        if !h.plausible() {
            return Some(false);
        }
        seen += 1;
        at += HEADER_LEN + h.len as usize;
        if at > b.len() {
            return if seen >= 2 { Some(true) } else { None };
        }
        if seen >= 2 {
            return Some(true);
        }
    }
}
