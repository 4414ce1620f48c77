//! HTTP/1.x framing: where messages start and end in each direction of a stream. A
//! per-direction state machine (start, head, body, resync, done, SOCKS prefix) reads the bytes
//! reassembly delivers; heads are parsed where they lie when whole and copied into a capped
//! buffer when split. What a finished head means for the exchange is [`super::pairing`]'s job.

use tapspan_capture::Timestamp;

use super::body::{BodyReader, Framing};
use super::head::{self, MessageHead};
use super::{socks, tokens, Ctx, Exchange, HttpConn, Mode, HEAD_BUFFERS_FULL};
use crate::reassembly::{Direction, OpenHow};

/// A TLS record carrying a handshake (RFC 8446 §5.1: type 22, legacy version 3.x).
pub(super) fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, 0..=4, ..])
}

#[derive(Debug)]
pub(super) enum Phase {
    /// Between messages.
    Start,
    /// Inside a head that began in an earlier event (bytes in `head_buf`).
    Head,
    Body(BodyReader),
    /// Looking for the next message start.
    Resync,
    /// Nothing more to decode in this direction.
    Done,
    /// Inside a SOCKS handshake in front of HTTP (see [`socks`]): its bytes so far.
    Socks(Vec<u8>),
    /// After a head the snap length cut (see [`HttpConn::snap_cut_head`]): the rest of the
    /// message, skipped up to the next message start. `body_len` is its declared body; `last`
    /// the time of the last of its bytes so far, when the message ends.
    SnapTail {
        body_len: u64,
        last: Timestamp,
    },
}

impl Phase {
    pub(super) fn is_start(&self) -> bool {
        matches!(self, Phase::Start)
    }
}

pub(super) struct DirState {
    pub(super) phase: Phase,
    pub(super) head_buf: Vec<u8>,
    pub(super) msg_ts: Timestamp,
    pub(super) msg_seq: u32,
    /// The head being read has its first line whole (in `head_buf`).
    pub(super) head_line_seen: bool,
    /// The message being read is a 1xx response.
    pub(super) informational: bool,
    /// A capture gap fell where message boundaries were not known: whole messages may be lost.
    pub(super) lost_sync: bool,
    pub(super) resync_scanned: u64,
    /// The current message's payload tokens, and whether its body is read for them.
    pub(super) tokens: tokens::Collector,
    pub(super) body_tokens: bool,
}

impl DirState {
    /// Appends `bytes` to the head buffer if it may grow that much within `room` (bytes left
    /// under the total cap, reduced by what it takes). Capacity doubles, up to the head cap `max`
    /// (the caller keeps `bytes` within it): a head arriving a byte at a time is copied a bounded
    /// number of times per byte, and the capacity accounted is the capacity held.
    pub(super) fn buffer_head(&mut self, bytes: &[u8], max: usize, room: &mut usize) -> bool {
        let buf = &mut self.head_buf;
        let need = buf.len() + bytes.len();
        if need > buf.capacity() {
            // Doubling where the room allows it, else just what is needed.
            let doubled = (buf.capacity() * 2).min(max).max(need);
            let cap = if doubled - buf.capacity() <= *room {
                doubled
            } else {
                need
            };
            let growth = cap - buf.capacity();
            if growth > *room {
                return false;
            }
            *room -= growth;
            buf.reserve_exact(cap - buf.len());
        }
        buf.extend_from_slice(bytes);
        true
    }

    pub(super) fn new() -> Self {
        DirState {
            phase: Phase::Start,
            head_buf: Vec::new(),
            msg_ts: Timestamp(0),
            msg_seq: 0,
            head_line_seen: false,
            informational: false,
            lost_sync: false,
            resync_scanned: 0,
            tokens: tokens::Collector::default(),
            body_tokens: false,
        }
    }
}

impl HttpConn {
    pub(super) fn data<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        seq: u32,
        bytes: &[u8],
        ctx: &mut Ctx<'_, F>,
    ) {
        if matches!(self.mode, Mode::Opaque | Mode::Tunnel) {
            return;
        }
        let request = dir == Direction::ClientToServer;
        let d = dir.index();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            match &mut self.dirs[d].phase {
                Phase::Done => return,
                Phase::Start => {
                    i += self.message_start(dir, ts, seq.wrapping_add(i as u32), rest, ctx)
                }
                Phase::Resync => match head::find_message_start(rest, request) {
                    Some(at) => {
                        i += at;
                        self.dirs[d].phase = Phase::Start;
                        self.dirs[d].resync_scanned = 0;
                    }
                    None => {
                        let st = &mut self.dirs[d];
                        st.resync_scanned += rest.len() as u64;
                        if self.mode == Mode::Unknown
                            && st.resync_scanned > ctx.config.max_resync_scan
                        {
                            self.mode = Mode::Opaque;
                            ctx.stats.non_http_connections += 1;
                        }
                        return;
                    }
                },
                Phase::SnapTail { last, .. } => match head::find_message_start(rest, request) {
                    Some(at) => {
                        if at > 0 {
                            *last = ts;
                        }
                        i += at;
                        self.end_snap_tail(dir, ctx);
                    }
                    None => {
                        *last = ts;
                        return;
                    }
                },
                Phase::Head => i += self.read_head(dir, rest, ts, ctx),
                Phase::Socks(seen) => {
                    let before = seen.len();
                    let take = rest.len().min(socks::MAX_HANDSHAKE - before);
                    seen.extend_from_slice(&rest[..take]);
                    match socks::handshake_len(seen, request) {
                        socks::Handshake::Complete(n) => {
                            i += n - before;
                            self.dirs[d].phase = Phase::Start;
                        }
                        socks::Handshake::Partial => i += take,
                        socks::Handshake::NotSocks => {
                            self.mode = Mode::Opaque;
                            ctx.stats.non_http_connections += 1;
                            return;
                        }
                    }
                }
                Phase::Body(reader) => match reader.consume(rest) {
                    Ok(n) => {
                        if self.dirs[d].body_tokens {
                            self.dirs[d].tokens.body(&rest[..n]);
                        }
                        i += n;
                        if reader.done {
                            self.message_end(dir, ts, ctx);
                        }
                    }
                    Err(_) => {
                        ctx.stats.malformed_messages += 1;
                        self.cut(dir, "malformed_message", ctx);
                    }
                },
            }
            if matches!(self.mode, Mode::Opaque | Mode::Tunnel) {
                return;
            }
        }
    }

    /// Between messages in `dir`, at `rest` (whose first byte has sequence number `seq`): skips
    /// empty lines and decides what starts here (a head, a SOCKS handshake, another protocol, or
    /// garbage to resynchronise past). Returns the bytes skipped.
    fn message_start<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        seq: u32,
        rest: &[u8],
        ctx: &mut Ctx<'_, F>,
    ) -> usize {
        let request = dir == Direction::ClientToServer;
        let d = dir.index();
        // RFC 9112 §2.2: empty lines before a message are ignored.
        let skip = rest
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(rest.len());
        let rest = &rest[skip..];
        if rest.is_empty() {
            return skip;
        }
        if !request && self.answers_simple_request(rest) {
            // HTTP/0.9: the body alone, until the server closes.
            self.bare_response(dir, ts, seq.wrapping_add(skip as u32));
            return skip;
        }
        if request
            && self.mode == Mode::Unknown
            && self.how == OpenHow::Handshake
            && socks::starts_like(rest)
        {
            // HTTP through a SOCKS proxy: both directions skip the handshake.
            self.dirs[d].phase = Phase::Socks(Vec::new());
            let proxy = &mut self.dirs[Direction::ServerToClient.index()];
            if matches!(proxy.phase, Phase::Start) {
                proxy.phase = Phase::Socks(Vec::new());
            }
            return skip;
        }
        if head::could_start(rest, request) {
            let st = &mut self.dirs[d];
            st.msg_ts = ts;
            st.msg_seq = seq.wrapping_add(skip as u32);
            st.phase = Phase::Head;
            st.head_buf.clear();
            st.head_line_seen = false;
            return skip;
        }
        if self.mode == Mode::Unknown && self.how == OpenHow::Handshake {
            // The connection's first bytes are not HTTP: another protocol.
            self.mode = Mode::Opaque;
            ctx.stats.non_http_connections += 1;
            if looks_like_tls(rest) {
                ctx.stats.tls_connections += 1;
            } else if rest.starts_with(b"PRI * HTTP/2.0") {
                ctx.stats.http2_connections += 1;
            }
            return skip;
        }
        ctx.stats.resyncs += 1;
        self.dirs[d].phase = Phase::Resync;
        skip
    }

    /// Bytes of head buffers this connection holds (their capacity: what they cost).
    pub(super) fn head_buffered(&self) -> usize {
        self.dirs.iter().map(|st| st.head_buf.capacity()).sum()
    }

    /// `rest` starts or continues the head being read in `dir`; returns how much of it the head
    /// used. A whole head is parsed where it lies; a split one is copied into the direction's
    /// head buffer, within `max_head_bytes` and the room left under `max_head_bytes_total`.
    pub(super) fn read_head<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        rest: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) -> usize {
        let d = dir.index();
        let request = dir == Direction::ClientToServer;
        let max = ctx.config.max_head_bytes;
        let before = self.dirs[d].head_buf.len();
        let used = if before == 0 {
            if let Some(line) = request.then(|| head::simple_request_len(rest)).flatten() {
                self.simple_request(&rest[..line], ts, ctx);
                return line;
            }
            if let Some(end) = head::find_head_end(rest, 0) {
                self.whole_head(dir, &rest[..end], ts, ctx);
                return end;
            }
            let keep = &rest[..rest.len().min(max)];
            if !self.dirs[d].buffer_head(keep, max, &mut ctx.head_room) {
                self.drop_head_at_total_cap(dir, keep, ctx);
                return rest.len();
            }
            rest.len()
        } else {
            let take = rest.len().min(max.saturating_sub(before));
            if !self.dirs[d].buffer_head(&rest[..take], max, &mut ctx.head_room) {
                self.drop_head_at_total_cap(dir, &[], ctx);
                // The rest of this head is skipped; what follows it is read again.
                return head::find_head_end(rest, 0).unwrap_or(take);
            }
            // The first line is looked at once, when it ends: a head arriving in pieces is
            // not rescanned from its start.
            let st = &mut self.dirs[d];
            let line_ends_here = !st.head_line_seen && rest[..take].contains(&b'\n');
            st.head_line_seen |= line_ends_here;
            let simple = (request && line_ends_here)
                .then(|| head::simple_request_len(&st.head_buf))
                .flatten();
            if let Some(line) = simple {
                let buf = std::mem::take(&mut self.dirs[d].head_buf);
                self.simple_request(&buf[..line], ts, ctx);
                return line - before;
            }
            if let Some(end) = head::find_head_end(&self.dirs[d].head_buf, before) {
                // The buffer is freed with the head: an idle connection holds none.
                let buf = std::mem::take(&mut self.dirs[d].head_buf);
                self.whole_head(dir, &buf[..end], ts, ctx);
                return end - before;
            }
            take
        };
        let st = &mut self.dirs[d];
        if st.head_buf.len() >= max {
            // Still a message: its start line is kept (salvaged by `cut`).
            ctx.stats.heads_too_large += 1;
            self.cut(dir, "header_too_large", ctx);
        } else if !head::could_start(&st.head_buf, request) {
            st.head_buf = Vec::new();
            ctx.stats.malformed_messages += 1;
            self.cut(dir, "malformed_message", ctx);
        }
        used
    }

    /// All connections' head buffers are full: the head being read in `dir` is dropped rather
    /// than buffered. Its start line is kept if it has arrived (in the buffer, or in
    /// `unbuffered`, the head's first bytes that found no room).
    pub(super) fn drop_head_at_total_cap<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        unbuffered: &[u8],
        ctx: &mut Ctx<'_, F>,
    ) {
        ctx.stats.heads_dropped_at_total_cap += 1;
        if self.dirs[dir.index()].head_buf.is_empty()
            && self.salvage_head(dir, HEAD_BUFFERS_FULL, unbuffered, ctx)
        {
            return;
        }
        self.cut(dir, HEAD_BUFFERS_FULL, ctx);
    }

    /// An HTTP/0.9 simple request (`line`, see [`head::simple_request_len`]): a request with no
    /// header and no body. What the client sends after it is no part of it (servers do not read
    /// it), and is resynchronised past.
    fn simple_request<F: FnMut(Exchange)>(
        &mut self,
        line: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let Some((start, _)) = head::loose_start_line(line, true) else {
            return;
        };
        let mut parsed = MessageHead::bare(ctx.config.headers.redact_start(start), 0, line.len());
        parsed.simple = true;
        self.on_head(Direction::ClientToServer, Ok(parsed), ts, ctx);
    }

    /// A whole head (`bytes` end with its empty line), parsed; one that does not parse is still
    /// an exchange, reported with what can be read of it (`head::loose_start_line`) and an error
    /// saying it was malformed: the server answered it, so dropping it would report its answer
    /// as a response to a request never captured. Then the decoder resynchronises.
    pub(super) fn whole_head<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let request = dir == Direction::ClientToServer;
        match head::parse_whole_head(bytes, request, &ctx.config.headers) {
            Ok(head) => self.on_head(dir, Ok(head), ts, ctx),
            Err(_) => {
                let why = if request {
                    "malformed_request"
                } else {
                    "malformed_response"
                };
                ctx.stats.malformed_messages += 1;
                if !self.salvage_head(dir, why, bytes, ctx) {
                    self.cut(dir, why, ctx);
                }
            }
        }
    }

    /// `len` bytes of `dir` were not captured: lost, or cut by the snap length (`snapped`, see
    /// [`crate::reassembly::StreamEvent::Gap`]). Inside a body of known framing both are
    /// skipped; a snapped cut marks its exchange `snapped` rather than counting a gap, and one
    /// that runs past the body's end ends the body there. A head cut by the snap length is read
    /// as far as it was captured ([`Self::snap_cut_head`]); one cut by a loss is cut short.
    pub(super) fn gap<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        len: u64,
        snapped: bool,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        if matches!(self.mode, Mode::Opaque | Mode::Tunnel) {
            return;
        }
        let d = dir.index();
        let target_depth = match dir {
            Direction::ClientToServer => self.reading_request,
            Direction::ServerToClient => self.responding.as_ref().map_or(0, |e| e.depth),
        };
        if let Some(ex) = self.find_exchange(target_depth, &mut ctx.stats.pairing_steps) {
            if snapped {
                ex.snapped = true;
            } else {
                ex.gaps += 1;
            }
        }
        // Whether the body continues after the gap, and whether some of a snapped cut was past
        // its end (then the next message's start, at least, is lost).
        if let Phase::SnapTail { last, .. } = &mut self.dirs[d].phase {
            if snapped {
                *last = ts;
                return;
            }
            // A loss: the message ended before it or in it, and the next may start in it.
            self.end_snap_tail(dir, ctx);
            self.dirs[d].phase = Phase::Resync;
            self.dirs[d].lost_sync = true;
            return;
        }
        let continues = match &mut self.dirs[d].phase {
            Phase::Body(reader) if snapped => reader
                .skip_snapped(len)
                .map(|mine| (reader.done, mine < len)),
            Phase::Body(reader) => reader.skip_gap(len).then_some((reader.done, false)),
            _ => None,
        };
        match (&self.dirs[d].phase, continues) {
            // The body's last bytes were lost but its length says it ended there.
            (Phase::Body(_), Some((true, spilled))) => {
                self.message_end(dir, ts, ctx);
                if spilled && self.dirs[d].phase.is_start() {
                    self.dirs[d].phase = Phase::Resync;
                    self.dirs[d].lost_sync = true;
                }
            }
            (Phase::Body(_), Some((false, _))) => {}
            (Phase::Head, _) if snapped => self.snap_cut_head(dir, ts, ctx),
            (Phase::Body(_) | Phase::Head, _) => {
                self.cut(dir, "capture_gap", ctx);
                self.dirs[d].lost_sync = true;
            }
            // A gap inside a SOCKS handshake: where it ended is lost, so HTTP is looked for.
            (Phase::Start | Phase::Socks(_), _) => {
                self.dirs[d].phase = Phase::Resync;
                self.dirs[d].lost_sync = true;
            }
            (Phase::Resync, _) => self.dirs[d].lost_sync = true,
            (Phase::Done | Phase::SnapTail { .. }, _) => {}
        }
    }

    /// `dir` ended. A close-delimited body is complete; anything else in flight was cut.
    pub(super) fn half_close<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        why: &'static str,
        ctx: &mut Ctx<'_, F>,
    ) {
        self.mark_closed(ts);
        let d = dir.index();
        self.end_snap_tail(dir, ctx);
        match &mut self.dirs[d].phase {
            Phase::Body(reader) if reader.framing() == Framing::UntilClose => {
                reader.close();
                self.message_end(dir, ts, ctx);
            }
            Phase::Body(_) | Phase::Head if self.mode != Mode::Tunnel => {
                self.cut(dir, why, ctx);
            }
            _ => {}
        }
        self.dirs[d].phase = Phase::Done;
    }
}

/// RFC 9112 §6.3 for requests: chunked, else Content-Length, else no body.
pub(super) fn request_framing(head: &MessageHead) -> Framing {
    if head.chunked {
        Framing::Chunked
    } else if let Some(n) = head.content_length {
        Framing::Length(n)
    } else {
        Framing::None
    }
}

/// RFC 9112 §6.3 for responses.
pub(super) fn response_framing(head: &MessageHead, status: u16, method: Option<&str>) -> Framing {
    if method == Some("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if head.chunked {
        Framing::Chunked
    } else if head.other_transfer_encoding {
        Framing::UntilClose
    } else if let Some(n) = head.content_length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }
}
