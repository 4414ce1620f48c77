//! HTTP/1.x pairing: requests queue per connection in the order they were read (pipelining),
//! each final response answers the oldest waiting one, and every request leaves as exactly one
//! [`HttpExchange`]: answered, cut (gap, malformed, reset, close) or never answered.

use tapspan_capture::Timestamp;

use super::body::{BodyReader, Framing};
use super::framing::{request_framing, response_framing, Phase};
use super::head::{self, MessageHead, StartLine};
use super::{
    tokens, Ctx, Exchange, HttpConn, HttpExchange, Instants, Mode, PayloadTokens, RequestInfo,
    ResponseInfo, Version,
};
use crate::reassembly::{CloseReason, Direction};

/// Capture time running backwards by more than this is a clock step, not a reordering: held
/// bytes are released within the reassembler's hole timeout (10 s), so no ordering of real
/// packets moves a timestamp this far.
const CLOCK_STEP_NS: u64 = 60_000_000_000;

pub(super) fn close_error(why: CloseReason) -> &'static str {
    match why {
        CloseReason::Fin => "connection_closed",
        other => other.as_str(),
    }
}

impl HttpConn {
    /// A head was parsed (or failed to): decide its body framing and do the pairing.
    pub(super) fn on_head<F: FnMut(Exchange)>(
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
        let start = std::mem::replace(
            &mut head.start,
            StartLine::Response {
                status: 0,
                reason: String::new(),
            },
        );
        let framing = match start {
            StartLine::Request { method, target } => {
                self.on_request(d, method, target, &mut head, ctx)
            }
            StartLine::Response { status, reason } => {
                self.on_response(d, status, reason, &mut head, ctx)
            }
        };
        if head.snapped && self.mode != Mode::Tunnel {
            // Where the head ended, in the bytes cut, is unknown: the message runs on to the
            // next message start found where the capture resumes.
            let body_len = BodyReader::declared(framing).body_len;
            self.dirs[d].phase = Phase::SnapTail { body_len, last: ts };
            return;
        }
        let reader = if head.snapped {
            BodyReader::declared(framing)
        } else {
            BodyReader::new(framing)
        };
        let done = reader.done;
        self.dirs[d].phase = Phase::Body(reader);
        if done {
            self.message_end(dir, ts, ctx);
        }
    }

    /// Ends the message in `dir` whose head the snap length cut, if one is being skipped: at
    /// the last of its bytes seen.
    pub(super) fn end_snap_tail<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ctx: &mut Ctx<'_, F>,
    ) {
        if let Phase::SnapTail { last, .. } = self.dirs[dir.index()].phase {
            self.message_end(dir, last, ctx);
        }
    }

    /// A request head: queued as a new exchange, waiting for its response.
    fn on_request<F: FnMut(Exchange)>(
        &mut self,
        d: usize,
        method: String,
        target: String,
        head: &mut MessageHead,
        ctx: &mut Ctx<'_, F>,
    ) -> Framing {
        let (msg_ts, msg_seq) = (self.dirs[d].msg_ts, self.dirs[d].msg_seq);
        let framing = request_framing(head);
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
                version: (!head.simple).then_some(Version::Http1(head.minor_version)),
                headers: std::mem::take(&mut head.headers),
                body_size: 0,
                truncated: false,
                grpc: None,
                unknown_headers: Vec::new(),
            }),
            response: None,
            informational: Vec::new(),
            t: Instants {
                request_start: Some(msg_ts),
                ..Instants::default()
            },
            gaps: 0,
            snapped: head.snapped,
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

    /// A response head: a 1xx is noted on the oldest waiting request; a final one answers it
    /// (or, with none waiting, stands alone as `request_not_captured`).
    fn on_response<F: FnMut(Exchange)>(
        &mut self,
        d: usize,
        status: u16,
        reason: String,
        head: &mut MessageHead,
        ctx: &mut Ctx<'_, F>,
    ) -> Framing {
        let (msg_ts, msg_seq) = (self.dirs[d].msg_ts, self.dirs[d].msg_seq);
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
                        snapped: false,
                        error: Some("request_not_captured"),
                        tokens: PayloadTokens::default(),
                    }
                }
            };
            let method = ex.request.as_ref().map(|r| r.method.as_str());
            let switches =
                status == 101 || (method == Some("CONNECT") && (200..300).contains(&status));
            let framing = if switches {
                Framing::None
            } else {
                response_framing(head, status, method)
            };
            ex.t.response_start = Some(msg_ts);
            ex.snapped |= head.snapped;
            let st = &mut self.dirs[d];
            st.tokens.take();
            st.body_tokens = tokens::body_is_readable(&head.headers);
            ex.response = Some(ResponseInfo {
                status: Some(status),
                reason,
                version: Version::Http1(head.minor_version),
                headers: std::mem::take(&mut head.headers),
                body_size: 0,
                truncated: false,
                grpc: None,
                unknown_headers: Vec::new(),
            });
            if switches {
                ctx.stats.upgraded_connections += 1;
                self.mode = Mode::Tunnel;
            }
            self.responding = Some(ex);
            framing
        }
    }

    /// Do the server's bytes `rest`, at a message start, answer an HTTP/0.9 simple request?
    /// Only if they cannot begin a status line and the oldest waiting request stated no
    /// version: a server that took it for HTTP/1.x answers with a status line.
    pub(super) fn answers_simple_request(&self, rest: &[u8]) -> bool {
        self.responding.is_none()
            && !head::could_start(rest, false)
            && self
                .waiting
                .front()
                .and_then(|ex| ex.request.as_ref())
                .is_some_and(|r| r.version.is_none())
    }

    /// An HTTP/0.9 response begins at `ts` (see [`Self::answers_simple_request`]): it answers
    /// the oldest waiting request, and its body runs until the server closes.
    pub(super) fn bare_response(&mut self, dir: Direction, ts: Timestamp, seq: u32) {
        let Some(mut ex) = self.waiting.pop_front() else {
            return;
        };
        if let Some(r) = ex.request.as_mut() {
            r.version = Some(Version::Http09);
        }
        ex.t.response_start = Some(ts);
        ex.response = Some(ResponseInfo {
            status: None,
            reason: String::new(),
            version: Version::Http09,
            headers: Vec::new(),
            body_size: 0,
            truncated: false,
            grpc: None,
            unknown_headers: Vec::new(),
        });
        let st = &mut self.dirs[dir.index()];
        st.msg_ts = ts;
        st.msg_seq = seq;
        st.informational = false;
        st.tokens.take();
        st.body_tokens = false;
        st.phase = Phase::Body(BodyReader::new(Framing::UntilClose));
        self.responding = Some(ex);
    }

    /// The current message in `dir` is complete; its last byte arrived at `ts`.
    pub(super) fn message_end<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let d = dir.index();
        let body_len = match &self.dirs[d].phase {
            Phase::Body(r) => r.body_len,
            Phase::SnapTail { body_len, .. } => *body_len,
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
    pub(super) fn find_exchange(
        &mut self,
        depth: u32,
        steps: &mut u64,
    ) -> Option<&mut HttpExchange> {
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
    pub(super) fn cut<F: FnMut(Exchange)>(
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
    pub(super) fn salvage_cut_head<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        why: &'static str,
        ctx: &mut Ctx<'_, F>,
    ) -> bool {
        let buf = std::mem::take(&mut self.dirs[dir.index()].head_buf);
        self.salvage_head(dir, why, &buf, ctx)
    }

    /// [`Self::salvage_cut_head`] from the head's bytes in `partial`.
    pub(super) fn salvage_head<F: FnMut(Exchange)>(
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

    /// The snap length cut the head being read in `dir`, after the bytes buffered: the message
    /// is what can be read of it (start line, whole header lines), with its body counted by its
    /// declared length (a `Content-Length` among those lines; otherwise unknown, counted 0) and
    /// marked snapped, not as an error (the exchange was whole on the wire). A head cut before
    /// its start line is whole is a message cut by the capture, as for a lost segment.
    pub(super) fn snap_cut_head<F: FnMut(Exchange)>(
        &mut self,
        dir: Direction,
        ts: Timestamp,
        ctx: &mut Ctx<'_, F>,
    ) {
        let d = dir.index();
        let request = dir == Direction::ClientToServer;
        let buf = std::mem::take(&mut self.dirs[d].head_buf);
        let Some(mut partial) = head::parse_partial_head(&buf, request, &ctx.config.headers) else {
            self.dirs[d].head_buf = buf;
            self.cut(dir, "capture_gap", ctx);
            self.dirs[d].lost_sync = true;
            return;
        };
        partial.snapped = true;
        self.on_head(dir, Ok(partial), ts, ctx);
    }

    /// Open exchanges learn when their connection began to close.
    pub(super) fn mark_closed(&mut self, ts: Timestamp) {
        // A response whose head the snap length cut is not waiting for anything: it ends with
        // the last of its bytes, whenever its connection closes.
        let tail = matches!(
            self.dirs[Direction::ServerToClient.index()].phase,
            Phase::SnapTail { .. }
        );
        let responding = self.responding.iter_mut().filter(|_| !tail);
        for ex in responding.chain(self.waiting.iter_mut()) {
            ex.t.closed.get_or_insert(ts);
        }
    }

    pub(super) fn close<F: FnMut(Exchange)>(
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
            self.end_snap_tail(dir, ctx);
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
