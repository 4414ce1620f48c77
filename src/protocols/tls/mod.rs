//! TLS handshakes, without decryption: one connection's two byte streams in, at most one
//! [`TlsHandshake`] out — SNI, ALPN, the version and cipher chosen, how long it took, and the
//! alert that ended it if one did. The SNI becomes the span's `server.address` and, unless a
//! services map names the address, the server's service name (`causality`'s naming).
//!
//! Records (RFC 8446 §5.1) are framed per direction; handshake bytes are collected (at most
//! [`MAX_HELLO`]) only until that direction's hello is read, everything else is skipped by
//! count. The handshake starts at the ClientHello's first byte. It is complete, in TLS 1.3,
//! at the client's first encrypted record after the ServerHello (its Finished) and, in TLS
//! 1.2, at the server's first record after its ChangeCipherSpec (its Finished). A cleartext
//! alert before that ends it as an error named by the alert; a connection that ends or loses
//! bytes before that is `handshake_incomplete` or `gap`. After the handshake nothing is read.

pub mod hello;
pub mod stream;

use crate::reassembly::Direction;
use crate::span::AttrValue;
use hello::{alert_name, cipher_name, version_name, ClientHello, ServerHello};

/// Handshake bytes kept per direction to find its hello.
pub const MAX_HELLO: usize = 64 << 10;
/// RFC 8446 §5.2: a record is at most 2¹⁴ + 256 bytes (2¹⁴ + 2048 in TLS 1.2).
const MAX_RECORD: u16 = (1 << 14) + 2048;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsHandshake {
    /// Capture times (ns): ClientHello, ServerHello, completion (or the alert, or the end).
    pub start: u64,
    pub response_start: Option<u64>,
    pub end: u64,
    pub client: ClientHello,
    pub server: Option<ServerHello>,
    pub established: bool,
    /// The alert that ended it: (description, sent by the client).
    pub alert: Option<(u8, bool)>,
    /// `handshake_incomplete`, `gap`, `not_tls`.
    pub cut: Option<&'static str>,
}

impl TlsHandshake {
    /// OpenTelemetry attributes (`tls.*`); tapspan's own under `tapspan.tls.*`.
    pub fn attributes(&self) -> Vec<(&'static str, AttrValue)> {
        let mut v = vec![
            ("tls.protocol.name", AttrValue::from("tls")),
            ("tls.established", AttrValue::from(self.established)),
        ];
        if let Some(n) = &self.client.server_name {
            v.push(("tls.client.server_name", AttrValue::from(n)));
        }
        if !self.client.alpn.is_empty() {
            v.push((
                "tapspan.tls.client.alpn",
                AttrValue::from(&self.client.alpn),
            ));
        }
        if let Some(s) = &self.server {
            v.push((
                "tls.protocol.version",
                AttrValue::from(version_name(s.version)),
            ));
            v.push(("tls.cipher", AttrValue::from(cipher_name(s.cipher))));
        }
        if let Some(p) = self.next_protocol() {
            v.push(("tls.next_protocol", AttrValue::from(p)));
        }
        if let Some((d, by_client)) = self.alert {
            v.push(("tapspan.tls.alert", AttrValue::from(alert_name(d))));
            v.push((
                "tapspan.tls.alert_from",
                AttrValue::from(if by_client { "client" } else { "server" }),
            ));
            v.push(("error.type", AttrValue::from(alert_name(d))));
        } else if let Some(c) = self.cut {
            v.push(("error.type", AttrValue::from(c)));
        }
        v
    }

    /// The ALPN protocol chosen: the ServerHello's (TLS 1.2), or the client's only offer when
    /// the server accepted the handshake (TLS 1.3 hides it in EncryptedExtensions).
    pub fn next_protocol(&self) -> Option<&str> {
        let s = self.server.as_ref()?;
        match (&s.alpn, self.client.alpn.as_slice()) {
            (Some(p), _) => Some(p),
            (None, [only]) if self.established => Some(only),
            _ => None,
        }
    }
}

/// One direction's record framer.
#[derive(Clone, Debug, Default)]
struct Side {
    head: [u8; 5],
    head_len: usize,
    /// Body bytes of the current record still to come, and its type.
    left: u16,
    len: u16,
    kind: u8,
    /// Handshake bytes while looking for the hello (`None` once found or given up).
    hs: Option<Vec<u8>>,
    alert: Vec<u8>,
    /// Records since the change_cipher_spec (TLS 1.2) or the ServerHello (TLS 1.3).
    encrypted: bool,
    bad: bool,
}

#[derive(Clone, Debug)]
pub struct TlsConn {
    sides: [Side; 2],
    hs: TlsHandshake,
    seen_client_hello: bool,
    done: bool,
}

/// What a record told the connection.
enum Event {
    Hello(u8, Vec<u8>),
    Record(u8),
    Alert(u8),
}

impl Default for TlsConn {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsConn {
    pub fn new() -> Self {
        let side = || Side {
            hs: Some(Vec::new()),
            ..Side::default()
        };
        TlsConn {
            sides: [side(), side()],
            hs: TlsHandshake::default(),
            seen_client_hello: false,
            done: false,
        }
    }

    /// Whether a client's first bytes begin a TLS handshake record with a ClientHello.
    pub fn sniff(first: &[u8]) -> bool {
        matches!(first, [HANDSHAKE, 3, 0..=4, ..]) && first.get(5).is_none_or(|&t| t == 1)
    }

    /// The SNI of the connection, once its ClientHello was seen.
    pub fn server_name(&self) -> Option<&str> {
        self.hs.client.server_name.as_deref()
    }

    pub fn push(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<TlsHandshake>) {
        if self.done {
            return;
        }
        let mut events = Vec::new();
        let client = dir == Direction::ClientToServer;
        self.sides[dir.index()].push(bytes, &mut events);
        for e in events {
            self.event(client, ts, e, out);
            if self.done {
                return;
            }
        }
        if self.sides[dir.index()].bad {
            self.end(ts, Some("not_tls"), out);
        }
    }

    pub fn gap(&mut self, ts: u64, out: &mut Vec<TlsHandshake>) {
        self.end(ts, Some("gap"), out);
    }

    pub fn finish(&mut self, ts: u64, out: &mut Vec<TlsHandshake>) {
        self.end(ts, Some("handshake_incomplete"), out);
    }

    fn end(&mut self, ts: u64, cut: Option<&'static str>, out: &mut Vec<TlsHandshake>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.seen_client_hello {
            let mut hs = self.hs.clone();
            hs.end = ts;
            hs.established = cut.is_none() && hs.alert.is_none();
            hs.cut = cut;
            out.push(hs);
        }
    }

    fn event(&mut self, client: bool, ts: u64, e: Event, out: &mut Vec<TlsHandshake>) {
        let tls13 = self
            .hs
            .server
            .as_ref()
            .is_some_and(|s| s.version == 0x0304 && !s.retry);
        match e {
            Event::Hello(1, body) if client && !self.seen_client_hello => {
                self.seen_client_hello = true;
                self.hs.start = ts;
                self.hs.client = hello::client_hello(&body).unwrap_or_default();
            }
            Event::Hello(2, body) if !client => {
                let sh = hello::server_hello(&body);
                self.hs.response_start.get_or_insert(ts);
                let retry = sh.as_ref().is_some_and(|s| s.retry);
                self.hs.server = sh;
                if retry {
                    // The real ServerHello comes after the client's second ClientHello.
                    self.sides[1].hs = Some(Vec::new());
                } else if self.hs.server.as_ref().is_some_and(|s| s.version == 0x0304) {
                    self.sides[0].encrypted = true;
                    self.sides[1].encrypted = true;
                }
            }
            Event::Hello(..) => {}
            Event::Alert(d) => {
                if !client {
                    // A server's first answer may be an alert (no shared cipher, a version it
                    // does not speak): it answered, with a refusal.
                    self.hs.response_start.get_or_insert(ts);
                }
                self.hs.alert = Some((d, client));
                self.end(ts, None, out);
            }
            Event::Record(CHANGE_CIPHER_SPEC) => {
                if !tls13 {
                    self.sides[usize::from(!client)].encrypted = true;
                }
            }
            Event::Record(kind) => {
                let finished = match (tls13, client) {
                    (true, true) => kind == APPLICATION_DATA,
                    (false, false) => self.sides[1].encrypted && self.hs.server.is_some(),
                    _ => false,
                };
                if finished {
                    self.end(ts, None, out);
                }
            }
        }
    }
}

impl Side {
    /// Frames records; a malformed header marks the side `bad` and stops it.
    fn push(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        while !bytes.is_empty() && !self.bad {
            if self.left > 0 {
                let n = usize::from(self.left).min(bytes.len());
                self.body(&bytes[..n], events);
                self.left -= n as u16;
                bytes = &bytes[n..];
                if self.left == 0 {
                    self.record_end(events);
                }
                continue;
            }
            let n = (5 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            if self.head_len < 5 {
                continue;
            }
            self.head_len = 0;
            let [kind, major, _, hi, lo] = self.head;
            let len = u16::from_be_bytes([hi, lo]);
            if !(CHANGE_CIPHER_SPEC..=24).contains(&kind) || major != 3 || len > MAX_RECORD {
                self.bad = true;
                return;
            }
            (self.kind, self.left, self.len) = (kind, len, len);
            self.alert.clear();
            if len == 0 {
                self.record_end(events);
            }
        }
    }

    fn body(&mut self, b: &[u8], events: &mut Vec<Event>) {
        match self.kind {
            HANDSHAKE if !self.encrypted => {
                let Some(hs) = &mut self.hs else { return };
                hs.extend_from_slice(&b[..b.len().min(MAX_HELLO.saturating_sub(hs.len()))]);
                // The first handshake message: type, 3-byte length, body.
                if hs.len() >= 4 {
                    let len = u32::from_be_bytes([0, hs[1], hs[2], hs[3]]) as usize;
                    if hs.len() >= 4 + len || hs.len() == MAX_HELLO {
                        let body = hs[4..hs.len().min(4 + len)].to_vec();
                        events.push(Event::Hello(hs[0], body));
                        self.hs = None;
                    }
                }
            }
            ALERT if self.alert.len() < 2 => {
                self.alert
                    .extend_from_slice(&b[..b.len().min(2 - self.alert.len())]);
            }
            _ => {}
        }
    }

    fn record_end(&mut self, events: &mut Vec<Event>) {
        match self.kind {
            // A cleartext alert is two bytes; an encrypted one is longer (its AEAD tag).
            ALERT if self.len == 2 && self.alert.len() == 2 => {
                events.push(Event::Alert(self.alert[1]));
            }
            kind => events.push(Event::Record(kind)),
        }
    }
}

#[cfg(test)]
mod tests;
