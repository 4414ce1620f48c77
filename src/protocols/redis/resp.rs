//! RESP2/RESP3 framing, one direction, streaming: bytes in, one [`Frame`] per top-level value out.
//!
//! Contract: memory is constant whatever the input — a header line is kept up to
//! [`MAX_LINE`] bytes, bulk payloads are skipped by count (only the first bytes of a request's
//! command name and key, or of a reply's first element, are looked at), nesting is capped at
//! [`MAX_DEPTH`]. Lengths beyond Redis's own limits (a bulk of 512 MiB, 2³² elements) are
//! protocol errors. After an error the reader resynchronises: a request stream on the next
//! `*N\r\n$` (an array of bulk strings: what every client sends), a reply stream only when
//! told to ([`RespReader::restart`]) at a packet boundary. Values are never kept: a frame
//! carries the command name, a key (for templating by the caller) and an error's prefix.

/// Header lines longer than this are cut (the rest is skipped up to the line's end).
pub const MAX_LINE: usize = 256;
/// Nesting deeper than this is a protocol error.
pub const MAX_DEPTH: usize = 16;
/// Redis's `proto-max-bulk-len` default: longer bulk strings are a protocol error.
pub const MAX_BULK: u64 = 512 << 20;
/// Elements of one aggregate beyond this are a protocol error.
pub const MAX_ELEMENTS: u64 = u32::MAX as u64;
/// Bytes of a command name kept; of a key; of a reply's first element.
const KEEP_NAME: usize = 32;
pub const KEEP_KEY: usize = 256;

/// What a top-level value was, as far as pairing and attributes need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Type byte of the top-level value (`*`, `+`, `-`, `>`, …; `i` for an inline command).
    pub kind: u8,
    /// Elements of a top-level aggregate (0 otherwise).
    pub len: u64,
    /// First element of a top-level aggregate if a bulk or simple string (command name, or a
    /// pub/sub reply's kind), up to `KEEP_NAME` bytes.
    pub first: Vec<u8>,
    /// Second element likewise (a key), up to `KEEP_KEY` bytes.
    pub second: Vec<u8>,
    /// The first word of a top-level error (`ERR`, `WRONGTYPE`).
    pub error: Vec<u8>,
    /// Errors nested in an aggregate (EXEC's replies).
    pub nested_errors: u32,
    /// Bytes of the value on the wire.
    pub size: u64,
    /// Capture time (ns) of the bytes carrying the value's first and last byte.
    pub start: u64,
    pub end: u64,
    /// Stream offset of the value's first byte (see [`RespReader::push_at`]).
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Frame by frame.
    Framing,
    /// Looking for `*N\r\n$` (requests).
    SeekArray,
    /// Waiting for [`RespReader::restart`] (replies).
    Lost,
}

/// A streaming reader for one direction.
#[derive(Clone, Debug)]
pub struct RespReader {
    mode: Mode,
    requests: bool,
    line: Vec<u8>,
    line_len: usize,
    /// Bulk payload bytes (with the CRLF) still to skip.
    skip: u64,
    /// Where the bulk being skipped is kept: 0 none, 1 `first`, 2 `second`, 3 `error`.
    keep: u8,
    /// Remaining elements per open aggregate; `attr` marks RESP3 attribute maps.
    stack: Vec<(u64, bool)>,
    /// Element index within the top-level aggregate of the value being read.
    index: u64,
    frame: Frame,
    started: bool,
    seek: u8,
    seek_n: u64,
    /// Stream offset of the `*` that began the array being sought.
    seek_at: u64,
    /// Stream offset of the next byte pushed.
    pos: u64,
    pub errors: u64,
}

impl RespReader {
    /// A reader for requests (`requests`: resynchronises on arrays) or replies.
    pub fn new(requests: bool, synced: bool) -> Self {
        let mode = match (synced, requests) {
            (true, _) => Mode::Framing,
            (false, true) => Mode::SeekArray,
            (false, false) => Mode::Lost,
        };
        RespReader {
            mode,
            requests,
            line: Vec::with_capacity(MAX_LINE),
            line_len: 0,
            skip: 0,
            keep: 0,
            stack: Vec::with_capacity(MAX_DEPTH),
            index: 0,
            frame: Frame::default(),
            started: false,
            seek: 0,
            seek_n: 0,
            seek_at: 0,
            pos: 0,
            errors: 0,
        }
    }

    /// Stream offset of the next byte [`RespReader::push`] takes.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Bytes were lost: drop the partial frame and look for a boundary again.
    pub fn lose(&mut self) {
        self.reset_frame();
        self.mode = if self.requests {
            Mode::SeekArray
        } else {
            Mode::Lost
        };
        self.seek = 0;
    }

    /// A reply stream that was lost restarts here (the start of a packet) if `first` can
    /// begin a value.
    pub fn restart(&mut self, first: u8) -> bool {
        if self.mode == Mode::Lost && b"+-:$*_#,(!=%~>|".contains(&first) {
            self.mode = Mode::Framing;
            self.reset_frame();
        }
        self.mode == Mode::Framing
    }

    /// Whether a value has begun and not ended.
    pub fn in_frame(&self) -> bool {
        self.started
    }

    fn reset_frame(&mut self) {
        self.line.clear();
        self.line_len = 0;
        self.skip = 0;
        self.keep = 0;
        self.stack.clear();
        self.index = 0;
        self.frame = Frame::default();
        self.started = false;
    }

    /// [`RespReader::push`] of bytes whose first is at stream offset `offset` (bytes lost
    /// before them leave a hole in the offsets, so frames' offsets stay the stream's).
    pub fn push_at(&mut self, ts: u64, offset: u64, bytes: &[u8], out: &mut impl FnMut(Frame)) {
        self.pos = offset;
        self.push(ts, bytes, out);
    }

    /// Feeds bytes that arrived at capture time `ts`, following the last ones pushed; `out`
    /// gets each completed frame. A RESP3 attribute map is not a frame: it annotates the value
    /// after it, which is.
    pub fn push(&mut self, ts: u64, bytes: &[u8], out: &mut impl FnMut(Frame)) {
        let end = self.pos + bytes.len() as u64;
        self.frames(ts, bytes, out);
        self.pos = end;
    }

    fn frames(&mut self, ts: u64, mut bytes: &[u8], out: &mut impl FnMut(Frame)) {
        let (base, total) = (self.pos, bytes.len());
        while !bytes.is_empty() {
            let at = base + (total - bytes.len()) as u64;
            match self.mode {
                Mode::Lost => return,
                Mode::SeekArray => bytes = self.seek_array(ts, at, bytes),
                Mode::Framing => {
                    if !self.started {
                        self.started = true;
                        self.frame.start = ts;
                        self.frame.offset = at;
                    }
                    let used = self.frame_bytes(bytes);
                    self.frame.size += used as u64;
                    bytes = &bytes[used..];
                    if self.started && self.stack.is_empty() && self.frame.kind != 0 && self.done()
                    {
                        let mut frame = std::mem::take(&mut self.frame);
                        self.reset_frame();
                        if frame.kind == b'|' {
                            self.started = true;
                            self.frame.start = frame.start;
                            self.frame.offset = frame.offset;
                            self.frame.size = frame.size;
                            continue;
                        }
                        if frame.kind == b'!' {
                            frame.error = first_word(&frame.error);
                        }
                        frame.end = ts;
                        out(frame);
                    }
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.skip == 0 && self.line_len == 0 && self.keep == 0
    }

    /// Scans for `*N\r\n$` (`bytes` from stream offset `at`); on a match the array is open
    /// and `$` begins its first element.
    fn seek_array<'a>(&mut self, ts: u64, at: u64, bytes: &'a [u8]) -> &'a [u8] {
        for (i, &b) in bytes.iter().enumerate() {
            self.seek = match (self.seek, b) {
                (_, b'*') => {
                    self.seek_n = 0;
                    self.seek_at = at + i as u64;
                    1
                }
                (1 | 2, b'0'..=b'9') if self.seek_n < 1 << 20 => {
                    self.seek_n = self.seek_n * 10 + u64::from(b - b'0');
                    2
                }
                (2, b'\r') => 3,
                (3, b'\n') => 4,
                (4, b'$') if self.seek_n > 0 => {
                    self.reset_frame();
                    self.mode = Mode::Framing;
                    self.started = true;
                    self.frame.start = ts;
                    self.frame.offset = self.seek_at;
                    self.frame.kind = b'*';
                    self.frame.len = self.seek_n;
                    // `*`, the digits, CRLF and `$` are the value's first bytes.
                    self.frame.size = self.seek_n.max(1).ilog10() as u64 + 5;
                    self.stack.push((self.seek_n, false));
                    self.line.push(b'$');
                    self.line_len = 1;
                    self.seek = 0;
                    return &bytes[i + 1..];
                }
                _ => 0,
            };
        }
        &[]
    }

    /// Consumes bytes of the current frame; returns how many.
    fn frame_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.skip > 0 {
            let n = (self.skip.min(bytes.len() as u64)) as usize;
            self.keep_bytes(&bytes[..n]);
            self.skip -= n as u64;
            if self.skip == 0 {
                self.keep = 0;
                self.element_done();
            }
            return n;
        }
        let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
            self.line_bytes(bytes);
            return bytes.len();
        };
        self.line_bytes(&bytes[..nl]);
        let line = std::mem::take(&mut self.line);
        self.line_len = 0;
        let ok = self.header(&line);
        self.line = line;
        self.line.clear();
        if !ok {
            self.errors += 1;
            self.lose();
            return bytes.len().min(nl + 1);
        }
        nl + 1
    }

    fn line_bytes(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.line_len += bytes.len();
    }

    /// Keeps the first bytes of a bulk payload where `keep` says (the CRLF is cut later).
    fn keep_bytes(&mut self, bytes: &[u8]) {
        let (slot, cap) = match self.keep {
            1 => (&mut self.frame.first, KEEP_NAME),
            2 => (&mut self.frame.second, KEEP_KEY),
            3 => (&mut self.frame.error, KEEP_NAME),
            _ => return,
        };
        let room = (cap + 2).saturating_sub(slot.len());
        slot.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if self.skip == bytes.len() as u64 {
            // The payload's end: drop its CRLF if it was kept, then cut to the cap.
            if slot.ends_with(b"\r\n") {
                slot.truncate(slot.len() - 2);
            }
            slot.truncate(cap);
        }
    }

    /// One header line (without its `\n`). False on a protocol error.
    fn header(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((&kind, rest)) = line.split_first() else {
            return false;
        };
        let top = self.stack.is_empty();
        if top {
            self.frame.kind = kind;
        }
        match kind {
            b'*' | b'>' | b'~' | b'%' | b'|' => self.aggregate(kind, rest, top),
            b'$' | b'=' | b'!' => self.bulk(kind, rest, top),
            b'-' => {
                if top {
                    self.frame.error = first_word(rest);
                } else {
                    self.frame.nested_errors += 1;
                }
                self.element_done();
                true
            }
            b'+' | b':' | b',' | b'#' | b'_' | b'(' => {
                if !top && self.index < 2 && kind == b'+' {
                    let slot = if self.index == 0 {
                        &mut self.frame.first
                    } else {
                        &mut self.frame.second
                    };
                    slot.extend_from_slice(&rest[..rest.len().min(KEEP_NAME)]);
                }
                self.element_done();
                true
            }
            _ if top && self.requests && kind.is_ascii_alphabetic() => self.inline(line),
            _ => false,
        }
    }

    fn aggregate(&mut self, kind: u8, rest: &[u8], top: bool) -> bool {
        let Some(n) = number(rest) else { return false };
        let n = match (n, kind) {
            (-1, b'*' | b'%' | b'~') => {
                self.element_done();
                return true;
            }
            (n, _) if n < 0 || n as u64 > MAX_ELEMENTS => return false,
            (n, b'%' | b'|') => n as u64 * 2,
            (n, _) => n as u64,
        };
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        if top {
            self.frame.len = n;
        }
        if n == 0 {
            if kind != b'|' {
                self.element_done();
            }
            return true;
        }
        self.stack.push((n, kind == b'|'));
        true
    }

    fn bulk(&mut self, kind: u8, rest: &[u8], top: bool) -> bool {
        let Some(n) = number(rest) else { return false };
        if n == -1 {
            self.element_done();
            return true;
        }
        if n < 0 || n as u64 > MAX_BULK {
            return false;
        }
        self.keep = match (top, kind, self.stack.len(), self.index) {
            (true, b'!', _, _) => 3,
            (false, _, 1, 0) => 1,
            (false, _, 1, 1) => 2,
            _ => 0,
        };
        if !top && kind == b'!' {
            self.frame.nested_errors += 1;
        }
        self.skip = n as u64 + 2;
        true
    }

    /// An inline command (`PING\r\n`): its words are the arguments.
    fn inline(&mut self, line: &[u8]) -> bool {
        self.frame.kind = b'i';
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let first = words.next().unwrap_or_default();
        self.frame.first = first[..first.len().min(KEEP_NAME)].to_vec();
        if let Some(key) = words.next() {
            self.frame.second = key[..key.len().min(KEEP_KEY)].to_vec();
        }
        self.frame.len = 2 + words.count() as u64;
        true
    }

    /// A value ended: count it against its aggregate, closing aggregates that are full.
    fn element_done(&mut self) {
        let mut depth = self.stack.len();
        while let Some((left, attr)) = self.stack.last_mut() {
            *left -= 1;
            if depth == 1 && !*attr {
                self.index += 1;
            }
            if *left > 0 {
                return;
            }
            let was_attr = *attr;
            self.stack.pop();
            depth -= 1;
            if was_attr {
                // An attribute map annotates the value that follows: it is not an element.
                return;
            }
        }
    }
}

/// A RESP length or count: an optional `-` and up to 19 digits.
fn number(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

/// An error's code: its first word if it is all capitals (`ERR`, `WRONGTYPE`), else `ERR`.
fn first_word(s: &[u8]) -> Vec<u8> {
    let w = s.split(|&b| b == b' ').next().unwrap_or_default();
    if !w.is_empty() && w.len() <= KEEP_NAME && w.iter().all(|b| b.is_ascii_uppercase()) {
        w.to_vec()
    } else {
        b"ERR".to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(requests: bool, input: &[u8]) -> Vec<Frame> {
        let mut r = RespReader::new(requests, true);
        let mut v = Vec::new();
        r.push(1, input, &mut |f| v.push(f));
        v
    }

    fn frames_split(requests: bool, input: &[u8]) -> Vec<Frame> {
        let mut r = RespReader::new(requests, true);
        let mut v = Vec::new();
        for b in input {
            r.push(1, std::slice::from_ref(b), &mut |f| v.push(f));
        }
        v
    }

    #[test]
    fn a_command_gives_its_name_and_key() {
        let input = b"*3\r\n$3\r\nSET\r\n$11\r\nsession:8f3\r\n$5\r\nvalue\r\n";
        for f in [frames(true, input), frames_split(true, input)] {
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].first, b"SET");
            assert_eq!(f[0].second, b"session:8f3");
            assert_eq!(f[0].len, 3);
            assert_eq!(f[0].size, input.len() as u64);
        }
    }

    #[test]
    fn replies_of_every_type_frame_one_by_one() {
        let input = b"+OK\r\n-WRONGTYPE Operation\r\n:5\r\n$-1\r\n*1\r\n$1\r\na\r\n*-1\r\n\
            %1\r\n+k\r\n:1\r\n~0\r\n_\r\n,1.5\r\n#t\r\n(12\r\n!9\r\nERR bad x\r\n=7\r\ntxt:abc\r\n\
            >3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n_\r\n|1\r\n+a\r\n+b\r\n:7\r\n";
        for f in [frames(false, input), frames_split(false, input)] {
            let kinds: Vec<u8> = f.iter().map(|f| f.kind).collect();
            assert_eq!(kinds, b"+-:$**%~_,#(!=>:".to_vec());
            assert_eq!(f[1].error, b"WRONGTYPE");
            assert_eq!(f[12].error, b"ERR");
            assert_eq!(f[14].first, b"invalidate");
        }
    }

    #[test]
    fn exec_counts_nested_errors() {
        let f = frames(false, b"*2\r\n+OK\r\n-WRONGTYPE no\r\n");
        assert_eq!(f[0].nested_errors, 1);
        assert!(f[0].error.is_empty());
    }

    #[test]
    fn a_bulk_of_two_to_the_63_is_an_error_not_a_wait() {
        let mut r = RespReader::new(true, true);
        let mut v = Vec::new();
        r.push(1, b"*2\r\n$9223372036854775808\r\nxx", &mut |f| v.push(f));
        assert!(v.is_empty());
        assert_eq!(r.errors, 1);
        // It resynchronises on the next command.
        r.push(1, b"garbage*1\r\n$4\r\nPING\r\n", &mut |f| v.push(f));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].first, b"PING");
    }

    #[test]
    fn huge_but_legal_counts_cost_no_memory() {
        let mut r = RespReader::new(false, true);
        let mut v = Vec::new();
        r.push(1, b"*4294967295\r\n:1\r\n", &mut |f| v.push(f));
        assert!(v.is_empty());
        assert!(r.stack.capacity() <= MAX_DEPTH);
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(b"*1\r\n");
        }
        let mut r = RespReader::new(false, true);
        r.push(1, &deep, &mut |f| v.push(f));
        assert_eq!(r.errors, 1);
    }

    #[test]
    fn a_long_line_is_cut_and_skipped() {
        let mut input = b"+".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend_from_slice(b"\r\n:1\r\n");
        let f = frames(false, &input);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn midstream_requests_start_at_the_next_array() {
        let mut r = RespReader::new(true, false);
        let mut v = Vec::new();
        r.push(1, b"alue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &mut |f| {
            v.push(f)
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].first, b"GET");
        assert_eq!(v[0].second, b"k");
    }

    #[test]
    fn inline_commands_are_commands() {
        let f = frames(true, b"PING\r\nGET key:1\r\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].first, b"GET");
        assert_eq!(f[1].second, b"key:1");
    }

    #[test]
    fn truncated_input_waits_and_never_panics() {
        let input = b"*3\r\n$3\r\nSET\r\n$11\r\nsession:8f3\r\n$5\r\nvalue\r\n";
        for cut in 0..input.len() {
            let mut r = RespReader::new(true, true);
            let mut n = 0;
            r.push(1, &input[..cut], &mut |_| n += 1);
            assert_eq!(n, 0);
        }
    }
}
