//! PostgreSQL protocol 3 framing, one direction, streaming: bytes in, one [`Msg`] per message.
//!
//! Messages are a type byte and a 4-byte length (counting itself); the client's first message
//! (startup, SSLRequest, GSSENCRequest, CancelRequest) has no type byte, and the server answers
//! SSLRequest/GSSENCRequest with a single byte. Memory is constant: of each body only the first
//! bytes the decoder reads are kept ([`keep`]), the rest is skipped by count. A length under 4
//! or over [`MAX_MESSAGE`] (2³¹ as a signed length is negative) is a protocol error; the framer
//! then waits to be restarted at a packet boundary ([`Framer::restart`]).

/// PostgreSQL's own limit on a message (`PQ_LARGE_MESSAGE_LIMIT`-like: 1 GiB).
pub const MAX_MESSAGE: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A typed message (`Q`, `P`, `C`, …).
    Typed(u8),
    /// The client's untyped first message.
    Startup,
    /// The server's one-byte answer to SSLRequest or GSSENCRequest (`S`, `N`, `G`).
    Answer(u8),
}

/// One message: its kind, body length, its first bytes, and when it was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub kind: Kind,
    pub len: u64,
    /// The body's first bytes (at most [`keep`] for its kind).
    pub body: Vec<u8>,
    pub start: u64,
    pub end: u64,
    /// Stream offset of the message's first byte (its type byte, or its length if untyped).
    pub offset: u64,
}

/// Bytes of a body kept per message kind: what the decoder reads, no more.
pub fn keep(kind: Kind, client: bool) -> usize {
    match (kind, client) {
        (Kind::Startup, _) => 1024,
        (Kind::Typed(b'Q' | b'P'), true) => 64 << 10,
        (Kind::Typed(b'B' | b'E' | b'C' | b'D'), true) => 256,
        (Kind::Typed(b'E'), false) => 512,
        (Kind::Typed(b'C'), false) => 64,
        _ => 0,
    }
}

const CLIENT_TAGS: &[u8] = b"QPBEDCHSXdcfFp";
const SERVER_TAGS: &[u8] = b"RSKZTDCEGHWINAnts123dcvV";

#[derive(Clone, Debug)]
pub struct Framer {
    client: bool,
    /// The next message is untyped (the client's first), or a one-byte answer.
    pub expect_startup: bool,
    pub expect_answer: bool,
    lost: bool,
    head: [u8; 5],
    head_len: usize,
    /// Body bytes still to come for the current message.
    need: u64,
    msg: Option<Msg>,
    /// Stream offset of the next byte pushed, and of the header being read.
    pos: u64,
    head_at: u64,
    pub errors: u64,
}

impl Framer {
    pub fn new(client: bool, from_start: bool) -> Self {
        Framer {
            client,
            expect_startup: client && from_start,
            expect_answer: false,
            lost: !from_start,
            head: [0; 5],
            head_len: 0,
            need: 0,
            msg: None,
            pos: 0,
            head_at: 0,
            errors: 0,
        }
    }

    /// The next bytes pushed begin at stream offset `offset` (bytes lost before them leave a
    /// hole in the offsets, so messages' offsets stay the stream's).
    pub fn seek(&mut self, offset: u64) {
        self.pos = offset;
    }

    /// Stream offset of the next byte [`Framer::push`] takes.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Bytes were lost: wait for a restart.
    pub fn lose(&mut self) {
        self.lost = true;
        self.head_len = 0;
        self.need = 0;
        self.msg = None;
        self.expect_startup = false;
        self.expect_answer = false;
    }

    /// A lost framer restarts at a packet starting with a plausible typed message header.
    pub fn restart(&mut self, bytes: &[u8]) -> bool {
        if !self.lost {
            return true;
        }
        let tags = if self.client {
            CLIENT_TAGS
        } else {
            SERVER_TAGS
        };
        let plausible = bytes.len() >= 5
            && tags.contains(&bytes[0])
            && (4..=1 << 20).contains(&u32::from_be_bytes([
                bytes[1], bytes[2], bytes[3], bytes[4],
            ]));
        if plausible {
            self.lost = false;
        }
        plausible
    }

    /// Feeds bytes seen at capture time `ts`, following the last ones pushed (or the offset
    /// given to [`Framer::seek`]).
    pub fn push(&mut self, ts: u64, bytes: &[u8], out: &mut impl FnMut(Msg)) {
        let end = self.pos + bytes.len() as u64;
        self.messages(ts, bytes, out);
        self.pos = end;
    }

    fn messages(&mut self, ts: u64, mut bytes: &[u8], out: &mut impl FnMut(Msg)) {
        let (base, total) = (self.pos, bytes.len());
        while !bytes.is_empty() && !self.lost {
            let at = base + (total - bytes.len()) as u64;
            if let Some(msg) = &mut self.msg {
                let n = self.need.min(bytes.len() as u64) as usize;
                let room = keep(msg.kind, self.client).saturating_sub(msg.body.len());
                msg.body.extend_from_slice(&bytes[..n.min(room)]);
                self.need -= n as u64;
                bytes = &bytes[n..];
                if self.need == 0 {
                    if let Some(mut msg) = self.msg.take() {
                        msg.end = ts;
                        out(msg);
                    }
                }
                continue;
            }
            if self.expect_answer {
                self.expect_answer = false;
                let kind = Kind::Answer(bytes[0]);
                let (start, end) = (ts, ts);
                out(Msg {
                    kind,
                    len: 0,
                    body: Vec::new(),
                    start,
                    end,
                    offset: at,
                });
                bytes = &bytes[1..];
                continue;
            }
            if self.head_len == 0 {
                self.head_at = at;
            }
            bytes = self.header(ts, bytes, out);
        }
    }

    /// Reads a header (5 bytes typed, 4 untyped), possibly across calls.
    fn header<'a>(&mut self, ts: u64, bytes: &'a [u8], out: &mut impl FnMut(Msg)) -> &'a [u8] {
        let want = if self.expect_startup { 4 } else { 5 };
        let n = (want - self.head_len).min(bytes.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
        self.head_len += n;
        let rest = &bytes[n..];
        if self.head_len < want {
            return rest;
        }
        self.head_len = 0;
        let (kind, len) = if self.expect_startup {
            self.expect_startup = false;
            let h = self.head;
            (Kind::Startup, u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
        } else {
            let h = self.head;
            (
                Kind::Typed(h[0]),
                u32::from_be_bytes([h[1], h[2], h[3], h[4]]),
            )
        };
        let len = u64::from(len);
        let tags = if self.client {
            CLIENT_TAGS
        } else {
            SERVER_TAGS
        };
        let known = match kind {
            Kind::Typed(t) => tags.contains(&t),
            _ => true,
        };
        if !(4..=MAX_MESSAGE).contains(&len) || !known {
            self.errors += 1;
            self.lose();
            return &[];
        }
        self.need = len - 4;
        let msg = Msg {
            kind,
            len: len - 4,
            body: Vec::new(),
            start: ts,
            end: ts,
            offset: self.head_at,
        };
        if self.need == 0 {
            out(msg);
        } else {
            self.msg = Some(msg);
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn messages_split_anywhere_frame_the_same() {
        let mut input = 8u32.to_be_bytes().to_vec();
        input.extend_from_slice(&80877103u32.to_be_bytes());
        input.extend(typed(b'Q', b"SELECT 1\0"));
        input.extend(typed(b'S', b""));
        for split in 0..input.len() {
            let mut f = Framer::new(true, true);
            let mut v = Vec::new();
            f.push(1, &input[..split], &mut |m| v.push(m));
            f.push(2, &input[split..], &mut |m| v.push(m));
            let kinds: Vec<Kind> = v.iter().map(|m| m.kind).collect();
            assert_eq!(kinds, [Kind::Startup, Kind::Typed(b'Q'), Kind::Typed(b'S')]);
            assert_eq!(v[1].body, b"SELECT 1\0");
        }
    }

    #[test]
    fn a_length_of_two_to_the_31_is_an_error() {
        let mut f = Framer::new(false, true);
        let mut v = Vec::new();
        f.push(1, b"C\x80\x00\x00\x00SELECT 1\0", &mut |m| v.push(m));
        assert!(v.is_empty());
        assert_eq!(f.errors, 1);
        assert!(f.is_lost());
        assert!(!f.restart(b"garbage"));
        assert!(f.restart(&typed(b'Z', b"I")));
        f.push(2, &typed(b'Z', b"I"), &mut |m| v.push(m));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_large_body_is_skipped_not_kept() {
        let mut f = Framer::new(true, false);
        let big = vec![b'x'; 1 << 19];
        let msg = typed(b'd', &big);
        assert!(f.restart(&msg));
        let mut v = Vec::new();
        for chunk in msg.chunks(1500) {
            f.push(1, chunk, &mut |m| v.push(m));
        }
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].len, 1 << 19);
        assert!(v[0].body.is_empty());
    }

    #[test]
    fn truncated_messages_wait() {
        let msg = typed(b'Q', b"SELECT 1\0");
        for cut in 0..msg.len() {
            let mut f = Framer::new(true, false);
            f.restart(&msg);
            let mut n = 0;
            f.push(1, &msg[..cut], &mut |_| n += 1);
            assert_eq!(n, 0);
        }
    }
}
