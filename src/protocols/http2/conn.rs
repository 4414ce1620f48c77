//! One HTTP/2 connection: both directions' frames in, one [`H2Exchange`] per stream out.
//!
//! Streams (RFC 9113 §5.1) are keyed by id, many in flight; a stream leaves as an exchange
//! when its response ends (END_STREAM from the server), when it is reset (RST_STREAM), when a
//! GOAWAY says it was not processed, when it is given up at the stream cap, or at
//! [`Http2Conn::finish`]. Every stream seen leaves exactly once.
//!
//! Header blocks are joined from HEADERS/PUSH_PROMISE and CONTINUATION frames (§6.10) up to
//! the block cap, then decoded by that direction's HPACK decoder. A block over the cap, or cut
//! by a frame that may not interrupt it, is not decoded and its direction's table is
//! forgotten (later references to it are unknown, never wrong). Request trailers, response
//! trailers and 1xx responses are told apart by the stream's state (§8.1).
//!
//! Mid-connection pickup: each direction resynchronises on frame headers ([`frame`]); a stream
//! first seen in the server's direction is an exchange whose request was not seen.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::exchange::{H2Exchange, StreamError};
use super::fields::{add_body, note_unknown, request_fields, response_head, response_trailers};
use super::frame::{self, Frame, FrameHeader, FrameReader};
use super::grpc::MessageCounter;
use super::hpack::{Block, HpackDecoder};
use super::{upgrade, Http2Config, Http2Stats};
use crate::reassembly::Direction;
use crate::redact::HeaderPolicy;

/// Recently closed stream ids remembered (see `ConnState::closed`).
const CLOSED_REMEMBERED: usize = 256;

#[derive(Clone, Debug, Default)]
struct Stream {
    x: H2Exchange,
    request_headers_seen: bool,
    response_headers_seen: bool,
    counters: [MessageCounter; 2],
    gapped: bool,
}

/// A header block being joined.
#[derive(Clone, Debug)]
struct PendingBlock {
    stream: u32,
    promised: Option<u32>,
    end_stream: bool,
    bytes: Vec<u8>,
    ts: u64,
    /// TCP sequence number of the block's first frame (its HEADERS or PUSH_PROMISE).
    seq: u32,
    over_cap: bool,
}

/// One direction's decoding state.
#[derive(Clone, Debug)]
struct Side {
    hpack: HpackDecoder,
    block: Option<PendingBlock>,
    /// An HTTP/1.1 head held while an `Upgrade: h2c` may be under way (from the start only).
    h1: Option<Vec<u8>>,
    /// TCP sequence number of `h1`'s first byte.
    h1_seq: u32,
}

/// One connection's decoder (see the module doc).
#[derive(Clone, Debug)]
pub struct Http2Conn {
    readers: [FrameReader; 2],
    /// Sequence number after the last byte fed, per direction: where [`Self::push`] goes on.
    next_seq: [u32; 2],
    state: ConnState,
}

#[derive(Clone, Debug)]
struct ConnState {
    config: Http2Config,
    sides: [Side; 2],
    streams: BTreeMap<u32, Stream>,
    /// Streams given up at the cap, emitted after the current frame.
    overflow: Vec<Stream>,
    /// Ids of the streams that left most recently: a late frame for one of them (a request's
    /// DATA after an early response, a RST_STREAM after END_STREAM) opens nothing.
    closed: VecDeque<u32>,
    /// Whether the reassembly's client is really the server (`None`: not known yet). From the
    /// start the handshake says who is who; picked up mid-way, reassembly only guesses, so the
    /// first header block with a known `:status` or `:method` decides (see `decide_roles`).
    swapped: Option<bool>,
    /// The server answered an `Upgrade: h2c` request without switching: HTTP/1.1 goes on.
    declined: bool,
    /// The server switched to h2c with a `101`.
    switched: bool,
    /// Which headers an exchange keeps, redacted (`None`: only what `H2Exchange` always has).
    policy: Option<Arc<HeaderPolicy>>,
    stats: Http2Stats,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Http2Conn {
    /// `from_start`: the connection's first bytes will be seen (the preface, or an
    /// `Upgrade: h2c` request); else both directions resynchronise on frame boundaries.
    pub fn new(config: Http2Config, from_start: bool) -> Self {
        let cap = config.max_table_bytes;
        let side = |h1| Side {
            hpack: HpackDecoder::new(from_start, cap),
            block: None,
            h1,
            h1_seq: 0,
        };
        let h1 = from_start.then(Vec::new);
        Http2Conn {
            next_seq: [0; 2],
            readers: [
                FrameReader::new(true, from_start, config.max_frame_bytes),
                FrameReader::new(false, from_start, config.max_frame_bytes),
            ],
            state: ConnState {
                config,
                sides: [side(h1.clone()), side(h1)],
                streams: BTreeMap::new(),
                overflow: Vec::new(),
                closed: VecDeque::new(),
                swapped: from_start.then_some(false),
                declined: false,
                switched: false,
                policy: None,
                stats: Http2Stats::default(),
            },
        }
    }

    /// Whether a client's first bytes are HTTP/2: the preface (or a prefix of it), or an
    /// HTTP/1.1 request asking to upgrade to h2c.
    pub fn sniff(first: &[u8]) -> bool {
        let n = first.len().min(frame::PREFACE.len());
        (n > 0 && first[..n] == frame::PREFACE[..n])
            || upgrade::head_end(first)
                .and_then(|end| upgrade::upgrade_request(&first[..end]))
                .is_some()
    }

    /// Keeps the headers `policy` captures, redacted, in each exchange's `request_headers` and
    /// `response_headers`.
    pub fn with_headers(mut self, policy: Arc<HeaderPolicy>) -> Self {
        self.state.policy = Some(policy);
        self
    }

    /// Whether the decoder found the reassembly's client to be the HTTP/2 server.
    pub fn roles_swapped(&self) -> bool {
        self.state.swapped == Some(true)
    }

    /// Whether the connection began with an `Upgrade: h2c` request the server declined (it
    /// stays HTTP/1.1: nothing more is read here).
    pub fn upgrade_declined(&self) -> bool {
        self.state.declined
    }

    /// Whether the server answered an `Upgrade: h2c` request with `101`.
    pub fn upgraded(&self) -> bool {
        self.state.switched
    }

    pub fn stats(&self) -> Http2Stats {
        let mut s = self.state.stats.clone();
        s.frames = self.readers.iter().map(|r| r.frames).sum();
        s.resyncs = self.readers.iter().map(|r| r.resyncs).sum();
        s
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.state.streams.len()
    }

    /// Bytes of one direction at capture time `ts` (ns), right after the previous ones (anchors
    /// then count from 0, each direction's first byte).
    pub fn push(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<H2Exchange>) {
        self.push_at(dir, ts, self.next_seq[side(dir)], bytes, out);
    }

    /// [`Self::push`] for bytes whose first has TCP sequence number `seq`: each exchange's
    /// `anchor_seq` is then the sequence number of the frame that opened its stream.
    pub fn push_at(
        &mut self,
        dir: Direction,
        ts: u64,
        seq: u32,
        bytes: &[u8],
        out: &mut Vec<H2Exchange>,
    ) {
        let i = side(dir);
        self.next_seq[i] = seq.wrapping_add(bytes.len() as u32);
        let state = &mut self.state;
        match state.sides[i].h1.take() {
            Some(held) => {
                if held.is_empty() {
                    state.sides[i].h1_seq = seq;
                }
                if let Some((rest, rest_seq)) = state.upgrade(dir, ts, held, bytes) {
                    self.readers[i].push_at(&rest, rest_seq, &mut |f, at| {
                        state.frame(dir, ts, at, f, out)
                    });
                }
            }
            None => {
                self.readers[i].push_at(bytes, seq, &mut |f, at| state.frame(dir, ts, at, f, out))
            }
        }
        state.flush_overflow(out);
    }

    /// Bytes of `dir` were lost.
    pub fn gap(&mut self, dir: Direction) {
        let i = side(dir);
        self.readers[i].lose();
        let s = &mut self.state;
        s.sides[i].h1 = None;
        s.sides[i].block = None;
        s.sides[i].hpack.lose();
        let r = side(s.role(dir));
        for st in s.streams.values_mut() {
            st.gapped = true;
            st.counters[r].skip();
        }
        s.stats.gaps += 1;
    }

    /// The connection (or the capture) ended: streams still open leave with their error.
    pub fn finish(&mut self, out: &mut Vec<H2Exchange>) {
        let streams = std::mem::take(&mut self.state.streams);
        for (_, st) in streams {
            let why = if st.gapped {
                StreamError::Gap
            } else {
                StreamError::NoResponse
            };
            self.state.emit(st, Some(why), out);
        }
    }
}

fn flip(dir: Direction) -> Direction {
    match dir {
        Direction::ClientToServer => Direction::ServerToClient,
        Direction::ServerToClient => Direction::ClientToServer,
    }
}

impl ConnState {
    /// The role of a direction's sender: `ClientToServer` for the HTTP/2 client.
    fn role(&self, dir: Direction) -> Direction {
        if self.swapped == Some(true) {
            flip(dir)
        } else {
            dir
        }
    }

    /// Mid-way pickups: a block with a known `:status` comes from the server, one with a known
    /// `:method` from the client (RFC 9113 §8.3). Streams opened before the decision by DATA
    /// frames are turned round if the guess was wrong (and leave if their response had ended).
    fn decide_roles(&mut self, dir: Direction, block: &Block, out: &mut Vec<H2Exchange>) {
        if self.swapped.is_some() {
            return;
        }
        let from_server = if block.get(":status").is_some() {
            true
        } else if block.get(":method").is_some() {
            false
        } else {
            return;
        };
        let swapped = from_server == (dir == Direction::ClientToServer);
        self.swapped = Some(swapped);
        if swapped {
            self.stats.roles_swapped += 1;
            for st in self.streams.values_mut() {
                let x = &mut st.x;
                std::mem::swap(&mut x.request_body_bytes, &mut x.response_body_bytes);
                std::mem::swap(&mut x.request_start, &mut x.response_start);
                std::mem::swap(&mut x.request_end, &mut x.response_end);
                st.counters.swap(0, 1);
            }
            let ended: Vec<u32> = self
                .streams
                .iter()
                .filter(|(_, st)| st.x.response_end.is_some())
                .map(|(&id, _)| id)
                .collect();
            for id in ended {
                if let Some(st) = self.streams.remove(&id) {
                    let error = st.gapped.then_some(StreamError::Gap);
                    self.emit(st, error, out);
                }
            }
        }
    }
    /// The start of a connection from its first bytes: the preface, or an HTTP/1.1 head that
    /// may upgrade. Returns the bytes to read as frames and the sequence number of their first,
    /// or `None` while a head is incomplete.
    fn upgrade(
        &mut self,
        dir: Direction,
        ts: u64,
        mut held: Vec<u8>,
        bytes: &[u8],
    ) -> Option<(Vec<u8>, u32)> {
        let i = side(dir);
        let held_seq = self.sides[i].h1_seq;
        held.extend_from_slice(bytes);
        let h1 = match dir {
            // The preface starts like a request line (`PRI * HTTP/2.0`) but is not one.
            Direction::ClientToServer if frame::PREFACE.starts_with(&held[..held.len().min(4)]) => {
                false
            }
            Direction::ClientToServer => upgrade::looks_like_request(&held),
            Direction::ServerToClient => held.starts_with(b"HTTP/1."),
        };
        if !h1 && held.len() >= 8 {
            return Some((held, held_seq));
        }
        if held.len() < 8 {
            self.sides[i].h1 = Some(held);
            return None;
        }
        let Some(end) = upgrade::head_end(&held) else {
            if held.len() <= upgrade::MAX_HEAD {
                self.sides[i].h1 = Some(held);
            }
            return None;
        };
        match dir {
            Direction::ClientToServer => {
                if let Some((method, target)) = upgrade::upgrade_request(&held[..end]) {
                    // The HTTP/1.1 request is stream 1's: anchored where HTTP/1 would anchor it.
                    let st = self.stream(1, ts, held_seq, true);
                    st.request_headers_seen = true;
                    st.x.method = Some(method);
                    st.x.path = Some(target);
                    st.x.scheme = Some("http".into());
                    st.x.request_start = Some(ts);
                    st.x.request_end = Some(ts);
                    self.stats.upgrades += 1;
                }
            }
            Direction::ServerToClient => {
                if !upgrade::switches(&held[..end]) {
                    // Declined: the connection stays HTTP/1.1, nothing more to read here.
                    self.declined = true;
                    return None;
                }
                self.switched = true;
            }
        }
        held.drain(..end);
        Some((held, held_seq.wrapping_add(end as u32)))
    }

    /// The stream with this id, created if new (then its request was seen only if `request`,
    /// and it is anchored at `seq`, the frame that opened it).
    fn stream(&mut self, id: u32, ts: u64, seq: u32, request: bool) -> &mut Stream {
        if !self.streams.contains_key(&id) && self.streams.len() >= self.config.max_streams {
            if let Some((_, oldest)) = self.streams.pop_first() {
                self.stats.streams_over_cap += 1;
                self.overflow.push(oldest);
            }
        }
        self.streams.entry(id).or_insert_with(|| {
            let mut st = Stream::default();
            st.x.stream_id = id;
            st.x.anchor_seq = seq;
            st.x.request_unseen = !request;
            st.x.request_start = request.then_some(ts);
            st
        })
    }

    fn flush_overflow(&mut self, out: &mut Vec<H2Exchange>) {
        for st in std::mem::take(&mut self.overflow) {
            self.emit(st, Some(StreamError::StreamOverflow), out);
        }
    }

    /// One frame of `dir` (or a loss the reader found).
    fn frame(
        &mut self,
        dir: Direction,
        ts: u64,
        seq: u32,
        f: Frame<'_>,
        out: &mut Vec<H2Exchange>,
    ) {
        let i = side(dir);
        let (h, payload) = match f {
            Frame::Lost => {
                self.sides[i].block = None;
                self.sides[i].hpack.lose();
                return;
            }
            Frame::TooLarge(h) => (h, None),
            Frame::Whole(h, p) => (h, Some(p)),
        };
        if self.sides[i].block.is_some() && h.kind != frame::CONTINUATION {
            // §6.10: nothing may interrupt a header block; what it would have added is lost.
            self.stats.broken_blocks += 1;
            self.abandon_block(i, out);
        }
        match h.kind {
            frame::DATA => self.data(dir, ts, seq, &h, payload, out),
            frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                self.header_fragment(dir, ts, seq, &h, payload, out)
            }
            frame::RST_STREAM => {
                let code = payload
                    .and_then(|p| p.get(..4))
                    .map_or(0, |c| u32::from_be_bytes(c.try_into().unwrap_or([0; 4])));
                if let Some(st) = self.streams.remove(&h.stream) {
                    let by_client = self.role(dir) == Direction::ClientToServer;
                    self.emit(st, Some(StreamError::Reset { code, by_client }), out);
                }
            }
            frame::GOAWAY => {
                let Some(p) = payload.filter(|p| p.len() >= 8) else {
                    return;
                };
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                // Streams the sender's peer opened above `last` were not processed (§6.8).
                let peer_parity = u32::from(self.role(dir) == Direction::ServerToClient);
                let cut: Vec<u32> = self
                    .streams
                    .range(last.saturating_add(1)..)
                    .map(|(&id, _)| id)
                    .filter(|id| id % 2 == peer_parity)
                    .collect();
                for id in cut {
                    if let Some(st) = self.streams.remove(&id) {
                        self.emit(st, Some(StreamError::GoAway { code }), out);
                    }
                }
                self.stats.goaways += 1;
            }
            // PRIORITY, SETTINGS, PING, WINDOW_UPDATE and unknown types (§5.5) carry nothing
            // an exchange needs. SETTINGS_HEADER_TABLE_SIZE only bounds the peer's table: the
            // encoder announces the size it uses with a size update (RFC 7541 §4.2).
            _ => {}
        }
    }

    fn data(
        &mut self,
        dir: Direction,
        ts: u64,
        seq: u32,
        h: &FrameHeader,
        payload: Option<&[u8]>,
        out: &mut Vec<H2Exchange>,
    ) {
        let role = self.role(dir);
        let i = side(role);
        let request = role == Direction::ClientToServer;
        if self.late(h.stream) {
            return;
        }
        let opened_here = !self.streams.contains_key(&h.stream);
        let st = self.stream(h.stream, ts, seq, false);
        if opened_here {
            // Its first DATA may have been before the capture: the messages are not whole.
            st.counters[i].skip();
        }
        match payload.map(|p| frame::content(h, p)) {
            Some(Some(body)) => {
                st.counters[i].feed(ts, body);
                add_body(&mut st.x, i, body.len() as u64);
            }
            Some(None) => st.counters[i].skip(),
            None => {
                st.counters[i].skip();
                add_body(&mut st.x, i, u64::from(h.len));
            }
        }
        if request {
            st.x.request_start.get_or_insert(ts);
        } else {
            st.x.response_start.get_or_insert(ts);
        }
        if h.flags & frame::END_STREAM != 0 {
            self.end_stream(role, h.stream, ts, out);
        }
    }

    fn header_fragment(
        &mut self,
        dir: Direction,
        ts: u64,
        seq: u32,
        h: &FrameHeader,
        payload: Option<&[u8]>,
        out: &mut Vec<H2Exchange>,
    ) {
        let i = side(dir);
        let cap = self.config.max_header_block_bytes;
        let content = payload.and_then(|p| frame::content(h, p));
        if h.kind == frame::CONTINUATION {
            let Some(b) = self.sides[i]
                .block
                .as_mut()
                .filter(|b| b.stream == h.stream)
            else {
                // A CONTINUATION without its HEADERS (picked up mid-block, or a wrong
                // stream): the block is unreadable, and it may have changed the table.
                self.stats.broken_blocks += 1;
                self.abandon_block(i, out);
                self.sides[i].hpack.lose();
                return;
            };
            match content {
                Some(c) if !b.over_cap && b.bytes.len() + c.len() <= cap => {
                    b.bytes.extend_from_slice(c)
                }
                _ => {
                    b.over_cap = true;
                    b.bytes = Vec::new();
                }
            }
        } else {
            let mut block = PendingBlock {
                stream: h.stream,
                promised: None,
                end_stream: h.kind == frame::HEADERS && h.flags & frame::END_STREAM != 0,
                bytes: Vec::new(),
                ts,
                seq,
                over_cap: true,
            };
            let mut c = content;
            if h.kind == frame::PUSH_PROMISE {
                // §6.6: the promised stream id, then the fragment.
                block.promised = c
                    .and_then(|c| c.get(..4))
                    .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
                c = c.and_then(|c| c.get(4..));
            }
            if let Some(c) = c.filter(|c| c.len() <= cap) {
                block.bytes.extend_from_slice(c);
                block.over_cap = false;
            }
            self.sides[i].block = Some(block);
        }
        if h.flags & frame::END_HEADERS != 0 {
            let b = self.sides[i].block.take();
            if let Some(b) = b {
                self.complete_block(dir, b, out);
            }
        }
    }

    /// A header block that cannot be decoded: its table effects are lost.
    fn abandon_block(&mut self, i: usize, out: &mut Vec<H2Exchange>) {
        let Some(b) = self.sides[i].block.take() else {
            return;
        };
        self.sides[i].hpack.lose();
        self.stats.blocks_lost += 1;
        let wire = if i == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        if self.role(wire) == Direction::ServerToClient {
            if let Some(st) = self.streams.remove(&b.stream) {
                self.emit(st, Some(StreamError::HeaderBlock), out);
            }
        }
    }

    fn complete_block(&mut self, dir: Direction, b: PendingBlock, out: &mut Vec<H2Exchange>) {
        let i = side(dir);
        if b.over_cap {
            self.stats.blocks_over_cap += 1;
            self.sides[i].block = Some(b);
            self.abandon_block(i, out);
            return;
        }
        let block = self.sides[i]
            .hpack
            .decode(&b.bytes, self.config.max_header_list_bytes);
        self.stats.header_blocks += 1;
        self.stats.unknown_fields += u64::from(block.unknown);
        self.stats.invalid_fields += u64::from(block.invalid);
        if block.error.is_some() {
            self.stats.blocks_lost += 1;
        }
        if self.late(b.stream) {
            return;
        }
        self.decide_roles(dir, &block, out);
        let dir = self.role(dir);
        match (dir, b.promised) {
            (Direction::ServerToClient, Some(promised)) => {
                let policy = self.policy.clone();
                let st = self.stream(promised, b.ts, b.seq, true);
                st.x.pushed = true;
                st.request_headers_seen = true;
                st.x.request_end = Some(b.ts);
                request_fields(&mut st.x, &block, policy.as_deref());
            }
            (Direction::ClientToServer, _) => {
                let policy = self.policy.clone();
                let st = self.stream(b.stream, b.ts, b.seq, true);
                st.x.request_start.get_or_insert(b.ts);
                if st.request_headers_seen {
                    note_unknown(&mut st.x.unknown_headers, &block); // request trailers
                } else {
                    st.request_headers_seen = true;
                    request_fields(&mut st.x, &block, policy.as_deref());
                }
                if b.end_stream {
                    self.end_stream(dir, b.stream, b.ts, out);
                }
            }
            (Direction::ServerToClient, None) => {
                let policy = self.policy.clone();
                let st = self.stream(b.stream, b.ts, b.seq, false);
                st.x.response_start.get_or_insert(b.ts);
                if st.response_headers_seen {
                    response_trailers(&mut st.x, &block);
                } else if response_head(&mut st.x, &block, policy.as_deref()) {
                    st.response_headers_seen = true;
                }
                if b.end_stream {
                    self.end_stream(dir, b.stream, b.ts, out);
                }
            }
        }
    }

    fn end_stream(&mut self, dir: Direction, id: u32, ts: u64, out: &mut Vec<H2Exchange>) {
        match dir {
            Direction::ClientToServer => {
                if let Some(st) = self.streams.get_mut(&id) {
                    st.x.request_end = Some(ts);
                }
            }
            Direction::ServerToClient => {
                if let Some(mut st) = self.streams.remove(&id) {
                    st.x.response_end = Some(ts);
                    let error = (st.gapped && st.x.status.is_none()).then_some(StreamError::Gap);
                    self.emit(st, error, out);
                }
            }
        }
    }

    /// Whether a frame on `id` comes after its stream left (or is on stream 0).
    fn late(&mut self, id: u32) -> bool {
        let late = id == 0 || (!self.streams.contains_key(&id) && self.closed.contains(&id));
        self.stats.late_frames += u64::from(late);
        late
    }

    fn emit(&mut self, mut st: Stream, error: Option<StreamError>, out: &mut Vec<H2Exchange>) {
        if self.closed.len() >= CLOSED_REMEMBERED {
            self.closed.pop_front();
        }
        self.closed.push_back(st.x.stream_id);
        if let Some(g) = st.x.grpc.as_mut() {
            g.request_messages = st.counters[0].messages;
            g.response_messages = st.counters[1].messages;
            g.messages_exact = st.counters.iter().all(|c| c.exact);
            g.first_response_message_at = st.counters[1].first_at;
        }
        st.x.error = error;
        self.stats.exchanges += 1;
        out.push(st.x);
    }
}
