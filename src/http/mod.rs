//! HTTP/1.x over reassembled streams: frames messages in both directions, pairs responses with
//! requests in order (pipelining), and emits one [`HttpExchange`] per request.
//!
//! - Heads are parsed from the packet bytes when whole, copied into a capped buffer when split.
//! - `100 Continue` and other 1xx are not final responses; `101` and a 2xx to `CONNECT` end HTTP
//!   decoding for that connection (what follows is another protocol).
//! - After a capture gap or garbage, decoding resynchronises at the next line that starts a
//!   message; a message cut by the gap is emitted with `error.type` = `capture_gap`.
//! - A request without a response (reset, close, idle, capture end) is emitted with `error.type`.
//! - A connection whose first bytes are not HTTP (TLS, Redis, …) is left alone: no spans, no errors.

pub mod body;
pub mod exchange;
pub mod head;
pub mod socks;
pub mod tokens;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use tapspan_capture::Timestamp;

pub use exchange::{HttpExchange, Instants, PayloadTokens, RequestInfo, ResponseInfo};

use crate::reassembly::{CloseReason, ConnId, Direction, OpenHow, StreamEvent};
use crate::redact::HeaderPolicy;
use body::{BodyReader, Framing};
use head::{MessageHead, StartLine};

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub headers: HeaderPolicy,
    /// Requests awaiting a response on one connection; beyond it the oldest is given up.
    pub max_pending_requests: usize,
    /// Bytes scanned for a message start on a connection that never showed HTTP, before giving up.
    pub max_resync_scan: u64,
    /// Bytes of one message head held while waiting for its end; a longer head is cut there,
    /// keeping its start line, with `error.type` = `header_too_large`.
    pub max_head_bytes: usize,
    /// Bytes of head buffers (heads split over segments, waiting for their end) across all
    /// connections; a head that would cross it is dropped, keeping its start line if that has
    /// arrived, with `error.type` = [`HEAD_BUFFERS_FULL`].
    pub max_head_bytes_total: usize,
}

/// `error.type` of an exchange whose head was dropped at `max_head_bytes_total`.
pub const HEAD_BUFFERS_FULL: &str = "head_buffers_full";

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            headers: HeaderPolicy::default(),
            max_pending_requests: 128,
            max_resync_scan: 256 * 1024,
            max_head_bytes: 64 * 1024,
            max_head_bytes_total: 64 << 20,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct HttpStats {
    pub connections: u64,
    pub non_http_connections: u64,
    /// Of those, the ones that began like TLS (a handshake record) or HTTP/2 (its preface):
    /// what a user who sees no spans most likely has.
    pub tls_connections: u64,
    pub http2_connections: u64,
    pub upgraded_connections: u64,
    pub exchanges: u64,
    pub incomplete_exchanges: u64,
    pub responses_without_request: u64,
    pub malformed_messages: u64,
    /// Heads longer than `max_head_bytes`, cut after their start line.
    pub heads_too_large: u64,
    /// Split heads dropped because all connections' head buffers reached
    /// `max_head_bytes_total`.
    pub heads_dropped_at_total_cap: u64,
    /// Most bytes of head buffers held at once, across connections.
    pub peak_head_bytes: u64,
    /// Requests given up unanswered because `max_pending_requests` others waited behind them.
    pub pending_requests_dropped: u64,
    pub resyncs: u64,
    /// Exchanges looked at to find the one a message belongs to: a work counter, linear in the
    /// messages however many requests wait (tests/adversarial_cost.rs).
    pub pairing_steps: u64,
}

/// Capture time running backwards by more than this is a clock step, not a reordering: held
/// bytes are released within the reassembler's hole timeout (10 s), so no ordering of real
/// packets moves a timestamp this far.
const CLOCK_STEP_NS: u64 = 60_000_000_000;

/// A TLS record carrying a handshake (RFC 8446 §5.1: type 22, legacy version 3.x).
fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, 0..=4, ..])
}

#[derive(Debug)]
enum Phase {
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
}

struct DirState {
    phase: Phase,
    head_buf: Vec<u8>,
    msg_ts: Timestamp,
    msg_seq: u32,
    /// The message being read is a 1xx response.
    informational: bool,
    /// A capture gap fell where message boundaries were not known: whole messages may be lost.
    lost_sync: bool,
    resync_scanned: u64,
    /// The current message's payload tokens, and whether its body is read for them.
    tokens: tokens::Collector,
    body_tokens: bool,
}

impl DirState {
    /// Appends `bytes` to the head buffer if it may grow that much within `room` (bytes left
    /// under the total cap, reduced by what it takes). Capacity doubles, up to the head cap `max`
    /// (the caller keeps `bytes` within it): a head arriving a byte at a time is copied a bounded
    /// number of times per byte, and the capacity accounted is the capacity held.
    fn buffer_head(&mut self, bytes: &[u8], max: usize, room: &mut usize) -> bool {
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

    fn new() -> Self {
        DirState {
            phase: Phase::Start,
            head_buf: Vec::new(),
            msg_ts: Timestamp(0),
            msg_seq: 0,
            informational: false,
            lost_sync: false,
            resync_scanned: 0,
            tokens: tokens::Collector::default(),
            body_tokens: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet.
    Unknown,
    Http,
    /// Not HTTP: ignored.
    Opaque,
    /// Switched protocols after a 101 or CONNECT.
    Tunnel,
}

struct HttpConn {
    client: SocketAddr,
    server: SocketAddr,
    how: OpenHow,
    mode: Mode,
    dirs: [DirState; 2],
    /// Requests whose final response has not begun, oldest first.
    waiting: VecDeque<HttpExchange>,
    /// The exchange whose final response is being read.
    responding: Option<HttpExchange>,
    /// Depth of the request being read in the client direction (0 when none).
    reading_request: u32,
    depth: u32,
}

pub struct HttpDecoder {
    config: HttpConfig,
    conns: HashMap<ConnId, HttpConn>,
    /// Capacity of every connection's head buffers, kept up to date after each event.
    head_bytes: usize,
    pub stats: HttpStats,
}

fn close_error(why: CloseReason) -> &'static str {
    match why {
        CloseReason::Fin => "connection_closed",
        other => other.as_str(),
    }
}

impl HttpDecoder {
    pub fn new(config: HttpConfig) -> Self {
        HttpDecoder {
            config,
            conns: HashMap::new(),
            head_bytes: 0,
            stats: HttpStats::default(),
        }
    }

    pub fn active_connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held in head buffers across connections.
    pub fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    /// Runs `f` on connection `conn` (if tracked) and accounts for its head buffers.
    fn on_conn<F: FnMut(HttpExchange)>(
        &mut self,
        conn: ConnId,
        out: &mut F,
        f: impl FnOnce(&mut HttpConn, &mut Ctx<'_, F>),
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let before = c.head_buffered();
        let mut ctx = Ctx {
            id: conn,
            config: &self.config,
            stats: &mut self.stats,
            out,
            head_room: self
                .config
                .max_head_bytes_total
                .saturating_sub(self.head_bytes),
        };
        f(c, &mut ctx);
        self.head_bytes = self.head_bytes - before + c.head_buffered();
        self.stats.peak_head_bytes = self.stats.peak_head_bytes.max(self.head_bytes as u64);
    }

    pub fn push<F: FnMut(HttpExchange)>(&mut self, ev: StreamEvent<'_>, out: &mut F) {
        match ev {
            StreamEvent::Open {
                conn,
                client,
                server,
                how,
                ..
            } => {
                self.stats.connections += 1;
                self.conns.insert(
                    conn,
                    HttpConn {
                        client,
                        server,
                        how,
                        mode: Mode::Unknown,
                        dirs: [DirState::new(), DirState::new()],
                        waiting: VecDeque::new(),
                        responding: None,
                        reading_request: 0,
                        depth: 0,
                    },
                );
            }
            StreamEvent::Data {
                conn,
                dir,
                seq,
                ts,
                bytes,
                ..
            } => self.on_conn(conn, out, |c, ctx| c.data(dir, ts, seq, bytes, ctx)),
            StreamEvent::Gap {
                conn, dir, len, ts, ..
            } => self.on_conn(conn, out, |c, ctx| c.gap(dir, len, ts, ctx)),
            StreamEvent::HalfClose { conn, dir, ts } => self.on_conn(conn, out, |c, ctx| {
                c.half_close(dir, ts, "connection_closed", ctx)
            }),
            StreamEvent::Close { conn, why, ts } => {
                self.on_conn(conn, out, |c, ctx| c.close(why, ts, ctx));
                if let Some(c) = self.conns.remove(&conn) {
                    self.head_bytes -= c.head_buffered();
                }
            }
        }
    }
}

/// What a connection needs from the decoder while it works.
struct Ctx<'a, F> {
    id: ConnId,
    config: &'a HttpConfig,
    stats: &'a mut HttpStats,
    out: &'a mut F,
    /// Bytes the head buffers of all connections may still grow by.
    head_room: usize,
}

impl<F: FnMut(HttpExchange)> Ctx<'_, F> {
    fn emit(&mut self, ex: HttpExchange) {
        self.stats.exchanges += 1;
        if ex.error.is_some() {
            self.stats.incomplete_exchanges += 1;
        }
        (self.out)(ex);
    }
}

impl HttpConn {
    fn data<F: FnMut(HttpExchange)>(
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
                    // RFC 9112 §2.2: empty lines before a message are ignored.
                    let skip = rest
                        .iter()
                        .position(|&b| b != b'\r' && b != b'\n')
                        .unwrap_or(rest.len());
                    i += skip;
                    let rest = &bytes[i..];
                    if rest.is_empty() {
                        break;
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
                        continue;
                    }
                    if head::could_start(rest, request) {
                        let st = &mut self.dirs[d];
                        st.msg_ts = ts;
                        st.msg_seq = seq.wrapping_add(i as u32);
                        st.phase = Phase::Head;
                        st.head_buf.clear();
                        continue;
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
                        return;
                    }
                    ctx.stats.resyncs += 1;
                    self.dirs[d].phase = Phase::Resync;
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

    /// Bytes of head buffers this connection holds (their capacity: what they cost).
    fn head_buffered(&self) -> usize {
        self.dirs.iter().map(|st| st.head_buf.capacity()).sum()
    }

    /// `rest` starts or continues the head being read in `dir`; returns how much of it the head
    /// used. A whole head is parsed where it lies; a split one is copied into the direction's
    /// head buffer, within `max_head_bytes` and the room left under `max_head_bytes_total`.
    fn read_head<F: FnMut(HttpExchange)>(
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
    fn drop_head_at_total_cap<F: FnMut(HttpExchange)>(
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

    /// A whole head (`bytes` end with its empty line), parsed; one that does not parse is still
    /// an exchange, reported with what can be read of it (`head::loose_start_line`) and an error
    /// saying it was malformed: the server answered it, so dropping it would report its answer
    /// as a response to a request never captured. Then the decoder resynchronises.
    fn whole_head<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let request = dir == Direction::ClientToServer;
        match head::parse_head(bytes, request, &ctx.config.headers) {
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

    /// A head was parsed (or failed to): decide its body framing and do the pairing.
    fn on_head<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        parsed: Result<MessageHead, head::HeadError>,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let d = dir.index();
        let mut head = match parsed {
            Ok(h) => h,
            Err(_) => {
                ctx.stats.malformed_messages += 1;
                self.cut(dir, "malformed_message", ctx);
                return;
            }
        };
        if self.mode == Mode::Unknown {
            self.mode = Mode::Http;
        }
        let (msg_ts, msg_seq) = (self.dirs[d].msg_ts, self.dirs[d].msg_seq);
        let start = std::mem::replace(
            &mut head.start,
            StartLine::Response {
                status: 0,
                reason: String::new(),
            },
        );
        let framing = match start {
            StartLine::Request { method, target } => {
                let framing = request_framing(&head);
                let st = &mut self.dirs[d];
                st.tokens.take();
                st.tokens.target(&target);
                st.body_tokens = tokens::body_is_readable(&head.headers);
                self.depth += 1;
                self.reading_request = self.depth;
                let ex = HttpExchange {
                    conn: ctx.id,
                    client: self.client,
                    server: self.server,
                    depth: self.depth,
                    anchor_seq: msg_seq,
                    request: Some(RequestInfo {
                        method,
                        target,
                        minor_version: head.minor_version,
                        headers: std::mem::take(&mut head.headers),
                        body_size: 0,
                        truncated: false,
                    }),
                    response: None,
                    informational: Vec::new(),
                    t: Instants {
                        request_start: Some(msg_ts),
                        ..Instants::default()
                    },
                    gaps: 0,
                    error: None,
                    tokens: PayloadTokens::default(),
                };
                if self.waiting.len() >= ctx.config.max_pending_requests {
                    if let Some(mut old) = self.waiting.pop_front() {
                        ctx.stats.pending_requests_dropped += 1;
                        old.error = Some("no_response");
                        ctx.emit(old);
                    }
                }
                self.waiting.push_back(ex);
                framing
            }
            StartLine::Response { status, reason } => {
                if (100..200).contains(&status) && status != 101 {
                    self.dirs[d].informational = true;
                    if let Some(front) = self.waiting.front_mut() {
                        front.informational.push((status, msg_ts));
                    }
                    Framing::None
                } else {
                    self.dirs[d].informational = false;
                    // A response cannot begin before its request did: if the oldest waiting request
                    // started later, this response answers a request the capture lost, and
                    // pairing it would shift every later pair on the connection. Only by less
                    // than a clock step, though: capture times run backwards that far only where
                    // the capturing host's clock stepped back (NTP), and then the stream's order
                    // is the truth (a request seen before its response is not their order).
                    let answers_front = self.waiting.front().is_some_and(|f| {
                        f.t.request_start
                            .is_none_or(|t| t <= msg_ts || t.0 > msg_ts.0 + CLOCK_STEP_NS)
                    });
                    // After a gap that may have swallowed whole responses, this one answers the
                    // latest request sent before it; the ones before that lost their responses.
                    if answers_front && std::mem::take(&mut self.dirs[d].lost_sync) {
                        while self.waiting.len() > 1
                            && self.waiting[1].t.request_start.is_some_and(|t| t <= msg_ts)
                        {
                            if let Some(mut lost) = self.waiting.pop_front() {
                                lost.error = Some("capture_gap");
                                ctx.emit(lost);
                            }
                        }
                    }
                    let waiting = if answers_front {
                        self.waiting.pop_front()
                    } else {
                        None
                    };
                    let mut ex = match waiting {
                        Some(ex) => ex,
                        None => {
                            ctx.stats.responses_without_request += 1;
                            self.depth += 1;
                            HttpExchange {
                                conn: ctx.id,
                                client: self.client,
                                server: self.server,
                                depth: self.depth,
                                anchor_seq: msg_seq,
                                request: None,
                                response: None,
                                informational: Vec::new(),
                                t: Instants::default(),
                                gaps: 0,
                                error: Some("request_not_captured"),
                                tokens: PayloadTokens::default(),
                            }
                        }
                    };
                    let method = ex.request.as_ref().map(|r| r.method.as_str());
                    let switches = status == 101
                        || (method == Some("CONNECT") && (200..300).contains(&status));
                    let framing = if switches {
                        Framing::None
                    } else {
                        response_framing(&head, status, method)
                    };
                    ex.t.response_start = Some(msg_ts);
                    let st = &mut self.dirs[d];
                    st.tokens.take();
                    st.body_tokens = tokens::body_is_readable(&head.headers);
                    ex.response = Some(ResponseInfo {
                        status,
                        reason,
                        minor_version: head.minor_version,
                        headers: std::mem::take(&mut head.headers),
                        body_size: 0,
                        truncated: false,
                    });
                    if switches {
                        ctx.stats.upgraded_connections += 1;
                        self.mode = Mode::Tunnel;
                    }
                    self.responding = Some(ex);
                    framing
                }
            }
        };
        let reader = BodyReader::new(framing);
        let done = reader.done;
        self.dirs[d].phase = Phase::Body(reader);
        if done {
            self.message_end(dir, ts, ctx);
        }
    }

    /// The current message in `dir` is complete; its last byte arrived at `ts`.
    fn message_end<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let d = dir.index();
        let body_len = match &self.dirs[d].phase {
            Phase::Body(r) => r.body_len,
            _ => 0,
        };
        self.dirs[d].phase = Phase::Start;
        match dir {
            Direction::ClientToServer => {
                let depth = std::mem::take(&mut self.reading_request);
                let tokens = self.dirs[d].tokens.take();
                if let Some(ex) = self.find_exchange(depth, &mut ctx.stats.pairing_steps) {
                    ex.t.request_end = Some(ts);
                    ex.tokens.request = tokens;
                    if let Some(r) = ex.request.as_mut() {
                        r.body_size = body_len;
                    }
                }
            }
            Direction::ServerToClient => {
                if std::mem::take(&mut self.dirs[d].informational) {
                    return;
                }
                let tokens = self.dirs[d].tokens.take();
                if let Some(mut ex) = self.responding.take() {
                    ex.t.response_end = Some(ts);
                    ex.tokens.response = tokens;
                    if let Some(r) = ex.response.as_mut() {
                        r.body_size = body_len;
                    }
                    ctx.emit(ex);
                }
            }
        }
        if self.mode == Mode::Tunnel {
            for st in &mut self.dirs {
                st.phase = Phase::Done;
            }
        }
    }

    /// The exchange of the request at `depth`. `waiting` is in order of depth (requests are
    /// queued as they are read), so this is the newest one (the usual case: the request being
    /// read) or found by bisection, never by a scan: with a large `max_pending_requests`, a scan
    /// made each pipelined request cost the length of the queue.
    fn find_exchange(&mut self, depth: u32, steps: &mut u64) -> Option<&mut HttpExchange> {
        if depth == 0 {
            return None;
        }
        *steps += 1;
        if let Some(ex) = self.responding.as_mut().filter(|e| e.depth == depth) {
            return Some(ex);
        }
        if self.waiting.back().is_some_and(|e| e.depth == depth) {
            return self.waiting.back_mut();
        }
        let at = self.waiting.partition_point(|e| {
            *steps += 1;
            e.depth < depth
        });
        self.waiting.get_mut(at).filter(|e| e.depth == depth)
    }

    /// The message being read in `dir` cannot be finished: record why and look for the next one.
    fn cut<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        why: &'static str,
        ctx: &mut Ctx<'_, F>,
    ) {
        let d = dir.index();
        if matches!(self.dirs[d].phase, Phase::Head) && self.salvage_cut_head(dir, why, ctx) {
            return;
        }
        let in_body = matches!(self.dirs[d].phase, Phase::Body(_));
        let in_head = matches!(self.dirs[d].phase, Phase::Head);
        self.dirs[d].phase = Phase::Resync;
        self.dirs[d].head_buf = Vec::new();
        ctx.stats.resyncs += 1;
        match dir {
            Direction::ClientToServer => {
                let depth = std::mem::take(&mut self.reading_request);
                if let Some(ex) = self.find_exchange(depth, &mut ctx.stats.pairing_steps) {
                    if let Some(r) = ex.request.as_mut() {
                        r.truncated = in_body;
                    }
                    ex.error.get_or_insert(why);
                }
            }
            Direction::ServerToClient => {
                self.dirs[d].informational = false;
                // A response whose head was cut still answered the oldest waiting request.
                let cut_head_answers = in_head && self.responding.is_none();
                let answered = if cut_head_answers {
                    self.waiting.pop_front().map(|mut ex| {
                        ex.t.response_start = Some(self.dirs[d].msg_ts);
                        ex
                    })
                } else {
                    None
                };
                if let Some(mut ex) = self.responding.take().or(answered) {
                    if let Some(r) = ex.response.as_mut() {
                        r.truncated = true;
                    }
                    ex.error.get_or_insert(why);
                    ctx.emit(ex);
                }
            }
        }
    }

    /// A head cut short still names its request (method, target) or response (status): keep
    /// that, as tshark and Zeek do, and mark the message as cut. True if something was salvaged.
    fn salvage_cut_head<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        why: &'static str,
        ctx: &mut Ctx<'_, F>,
    ) -> bool {
        let buf = std::mem::take(&mut self.dirs[dir.index()].head_buf);
        self.salvage_head(dir, why, &buf, ctx)
    }

    /// [`Self::salvage_cut_head`] from the head's bytes in `partial`.
    fn salvage_head<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        why: &'static str,
        partial: &[u8],
        ctx: &mut Ctx<'_, F>,
    ) -> bool {
        let d = dir.index();
        let request = dir == Direction::ClientToServer;
        let Some(mut partial) = head::parse_partial_head(partial, request, &ctx.config.headers)
        else {
            return false;
        };
        // Framing of a cut head is unknown: no body is read for it.
        partial.content_length = None;
        partial.chunked = false;
        partial.other_transfer_encoding = true;
        let ts = self.dirs[d].msg_ts;
        let informational = matches!(partial.start, StartLine::Response { status, .. } if (100..200).contains(&status) && status != 101);
        self.on_head(dir, Ok(partial), ts, ctx);
        ctx.stats.resyncs += 1;
        match dir {
            Direction::ClientToServer => {
                // The salvaged head has no body, so `on_head` has already ended it: it is the
                // newest request.
                self.reading_request = 0;
                let depth = self.depth;
                if let Some(ex) = self.find_exchange(depth, &mut ctx.stats.pairing_steps) {
                    ex.error.get_or_insert(why);
                    if let Some(r) = ex.request.as_mut() {
                        r.truncated = true;
                    }
                }
            }
            Direction::ServerToClient if !informational => {
                if let Some(mut ex) = self.responding.take() {
                    ex.error.get_or_insert(why);
                    if let Some(r) = ex.response.as_mut() {
                        r.truncated = true;
                    }
                    ctx.emit(ex);
                }
            }
            Direction::ServerToClient => self.dirs[d].informational = false,
        }
        self.dirs[d].phase = Phase::Resync;
        true
    }

    fn gap<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        len: u64,
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
            ex.gaps += 1;
        }
        let continues = match &mut self.dirs[d].phase {
            Phase::Body(reader) => reader.skip_gap(len).then_some(reader.done),
            _ => None,
        };
        match (&self.dirs[d].phase, continues) {
            // The body's last bytes were lost but its length says it ended there.
            (Phase::Body(_), Some(true)) => self.message_end(dir, ts, ctx),
            (Phase::Body(_), Some(false)) => {}
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
            (Phase::Done, _) => {}
        }
    }

    /// `dir` ended. A close-delimited body is complete; anything else in flight was cut.
    fn half_close<F: FnMut(HttpExchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        why: &'static str,
        ctx: &mut Ctx<'_, F>,
    ) {
        self.mark_closed(ts);
        let d = dir.index();
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

    /// Open exchanges learn when their connection began to close.
    fn mark_closed(&mut self, ts: Timestamp) {
        for ex in self.responding.iter_mut().chain(self.waiting.iter_mut()) {
            ex.t.closed.get_or_insert(ts);
        }
    }

    fn close<F: FnMut(HttpExchange)>(
        &mut self,
        why: CloseReason,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let err = close_error(why);
        if why == CloseReason::Rst {
            self.mark_closed(ts);
        }
        // A close-delimited response ends cleanly only with a FIN (a HalfClose, already seen).
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let d = dir.index();
            if matches!(self.dirs[d].phase, Phase::Body(_) | Phase::Head)
                && self.mode != Mode::Tunnel
            {
                self.cut(dir, err, ctx);
            }
        }
        if let Some(mut ex) = self.responding.take() {
            ex.error.get_or_insert(err);
            ctx.emit(ex);
        }
        for mut ex in self.waiting.drain(..) {
            ex.error.get_or_insert(err);
            ctx.emit(ex);
        }
        let _ = ts;
    }
}

/// RFC 9112 §6.3 for requests: chunked, else Content-Length, else no body.
fn request_framing(head: &MessageHead) -> Framing {
    if head.chunked {
        Framing::Chunked
    } else if let Some(n) = head.content_length {
        Framing::Length(n)
    } else {
        Framing::None
    }
}

/// RFC 9112 §6.3 for responses.
fn response_framing(head: &MessageHead, status: u16, method: Option<&str>) -> Framing {
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
