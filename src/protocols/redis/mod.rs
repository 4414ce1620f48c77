//! Redis (RESP2 and RESP3): one connection's two byte streams in, one [`RedisExchange`] per
//! command out. Not yet wired to the pipeline: the caller feeds each direction's bytes in
//! capture order ([`RedisConn::push`]), says where bytes were lost ([`RedisConn::gap`]) and
//! when the connection ended ([`RedisConn::finish`]).
//!
//! Pairing: replies come in the order of the commands (pipelining is just many pending
//! commands). Pushes are not replies and make no exchange: RESP3 `>` frames, and RESP2
//! pub/sub deliveries (`message`, `pmessage`, `smessage` arrays); a (un)subscribe
//! confirmation answers a pending SUBSCRIBE-family command (one per channel), else it is a
//! push. Inside MULTI each command is answered `+QUEUED`; EXEC's reply counts its nested
//! errors. An error reply (`-ERR …`, `!…`) makes the exchange an error with the reply's code.
//!
//! Tolerance: a connection picked up mid-stream, or after lost bytes, resynchronises its
//! requests on the next array of bulk strings and its replies at the first packet after a
//! command sent since (if that packet holds more replies than commands are pending, the first
//! ones answered commands sent before: they are dropped); commands pending across a loss are
//! reported with error `gap`, never paired by guess. Bounded: [`MAX_PENDING`] commands in flight (the oldest beyond it is
//! reported `pending_overflow`), and [`resp`]'s constant memory per direction.
//!
//! Privacy: values are never kept. An exchange carries the command name, the first key as a
//! template ([`key::template`]) and a `?` per other argument.

pub mod key;
pub mod resp;
pub mod stream;

use std::collections::VecDeque;

use crate::protocols::http1::tokens::{Collector, Tokens};
use crate::reassembly::Direction;
use crate::span::AttrValue;
use resp::{Frame, Mode, RespReader};

/// Commands in flight on one connection.
pub const MAX_PENDING: usize = 4096;
/// `?` written for arguments beyond the key, at most.
const MAX_PLACEHOLDERS: u64 = 8;

/// One command and its reply (or why there is none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisExchange {
    /// Capture time (ns) of the command's first and last byte, of the reply's first and last.
    pub start: u64,
    pub request_end: u64,
    pub response_start: Option<u64>,
    pub end: Option<u64>,
    /// Offset in the client's stream of the command's first byte (its anchor).
    pub request_offset: u64,
    /// `GET`, `CLIENT SETINFO`.
    pub operation: String,
    /// `SET session:{id} ?`.
    pub query: String,
    /// The reply's error code (`ERR`, `WRONGTYPE`), or why no reply: `gap`, `no_response`,
    /// `pending_overflow`.
    pub error: Option<String>,
    /// Whether the reply was an error (else `error` says why there was no reply).
    pub replied: bool,
    /// Queued inside MULTI (answered `+QUEUED`; it runs at EXEC).
    pub queued: bool,
    /// Errors inside the reply (EXEC's array).
    pub nested_errors: u32,
    /// The database index (`SELECT`), the connection's `db.namespace`.
    pub database: u32,
    pub request_size: u64,
    pub response_size: u64,
    /// The key's payload tokens (hashes, never the key; see `http1::tokens`), for causality to
    /// see which request's values it carries; moved to the exchange when it leaves the decoder.
    pub tokens: Tokens,
    /// The keyed hash of its whole key (see [`crate::protocols::args_hash`]): never exported;
    /// `None` without a key or with one longer than the decoder keeps.
    pub key_hash: Option<u64>,
}

impl RedisExchange {
    /// OpenTelemetry attributes (`db.*`); tapspan's own under `tapspan.redis.*`.
    pub fn attributes(&self) -> Vec<(&'static str, AttrValue)> {
        let mut v = vec![
            ("db.system.name", AttrValue::from("redis")),
            ("db.operation.name", AttrValue::from(&self.operation)),
            ("db.query.text", AttrValue::from(&self.query)),
            ("db.namespace", AttrValue::from(self.database.to_string())),
        ];
        if let (Some(e), true) = (&self.error, self.replied) {
            v.push(("db.response.status_code", AttrValue::from(e)));
        }
        if let Some(e) = &self.error {
            v.push(("error.type", AttrValue::from(e)));
        }
        if self.queued {
            v.push(("tapspan.redis.queued", AttrValue::from(true)));
        }
        if self.nested_errors > 0 {
            v.push((
                "tapspan.redis.nested_errors",
                AttrValue::from(self.nested_errors),
            ));
        }
        v
    }
}

/// A command waiting for its reply.
#[derive(Clone, Debug)]
struct Pending {
    exchange: RedisExchange,
    /// Confirmations a SUBSCRIBE-family command still expects (0: a plain command).
    confirmations: u64,
}

/// Counts of what was not an exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisStats {
    pub commands: u64,
    pub pushes: u64,
    /// Replies with no command pending (dropped).
    pub unmatched_replies: u64,
    pub protocol_errors: u64,
}

/// One connection's decoder.
#[derive(Clone, Debug)]
pub struct RedisConn {
    requests: RespReader,
    replies: RespReader,
    pending: VecDeque<Pending>,
    in_multi: bool,
    database: u32,
    /// Commands in flight at most (see [`RedisConn::with_max_pending`]).
    max_pending: usize,
    pub stats: RedisStats,
}

impl RedisConn {
    /// `from_start`: the connection's first bytes will be seen (its handshake was); else the
    /// decoder waits for a command boundary.
    pub fn new(from_start: bool) -> Self {
        RedisConn {
            requests: RespReader::new(true, from_start),
            replies: RespReader::new(false, from_start),
            pending: VecDeque::new(),
            in_multi: false,
            database: 0,
            max_pending: MAX_PENDING,
            stats: RedisStats::default(),
        }
    }

    /// Keeps at most `n` (at least 1, at most [`MAX_PENDING`]) commands in flight; the oldest
    /// beyond it is reported `pending_overflow`.
    pub fn with_max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.clamp(1, MAX_PENDING);
        self
    }

    /// Whether a client's first bytes look like RESP: `*N\r\n$` (or a prefix of it).
    pub fn sniff(first: &[u8]) -> bool {
        let Some(rest) = first.strip_prefix(b"*") else {
            return false;
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        (1..=7).contains(&digits)
            && matches!(
                &rest[digits..],
                [] | [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'$', ..]
            )
    }

    /// Bytes of one direction, arrived at capture time `ts` (ns), the first at stream offset
    /// `offset` in that direction.
    pub fn push_at(
        &mut self,
        dir: Direction,
        ts: u64,
        offset: u64,
        bytes: &[u8],
        out: &mut Vec<RedisExchange>,
    ) {
        match dir {
            Direction::ClientToServer => {
                let mut frames = Vec::new();
                self.requests
                    .push_at(ts, offset, bytes, &mut |f| frames.push(f));
                for f in frames {
                    self.command(f, out);
                }
            }
            Direction::ServerToClient => {
                let restart = self.replies.mode() == Mode::Lost;
                if restart {
                    let fresh = !self.pending.is_empty() && !self.replies.in_frame();
                    if !fresh || !bytes.first().is_some_and(|&b| self.replies.restart(b)) {
                        return;
                    }
                }
                let mut frames = Vec::new();
                self.replies
                    .push_at(ts, offset, bytes, &mut |f| frames.push(f));
                if restart {
                    // Replies to commands sent before the pickup may lead the packet (a
                    // pipelining client): the last replies are the ones for the commands seen.
                    let surplus = frames.len().saturating_sub(self.pending.len());
                    self.stats.unmatched_replies += surplus as u64;
                    frames.drain(..surplus);
                }
                for f in frames {
                    self.reply(f, out);
                }
            }
        }
        self.stats.protocol_errors = self.requests.errors + self.replies.errors;
    }

    /// [`RedisConn::push_at`] of bytes that follow the last ones pushed in `dir`.
    pub fn push(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<RedisExchange>) {
        let offset = match dir {
            Direction::ClientToServer => self.requests.offset(),
            Direction::ServerToClient => self.replies.offset(),
        };
        self.push_at(dir, ts, offset, bytes, out);
    }

    /// Bytes were lost in `dir`: commands in flight can no longer be paired.
    pub fn gap(&mut self, _dir: Direction, out: &mut Vec<RedisExchange>) {
        self.requests.lose();
        self.replies.lose();
        self.in_multi = false;
        self.flush("gap", out);
    }

    /// The connection ended: commands without a reply are reported.
    pub fn finish(&mut self, out: &mut Vec<RedisExchange>) {
        self.flush("no_response", out);
    }

    fn flush(&mut self, why: &str, out: &mut Vec<RedisExchange>) {
        for mut p in self.pending.drain(..) {
            p.exchange.error = Some(why.to_string());
            out.push(p.exchange);
        }
    }

    fn command(&mut self, f: Frame, out: &mut Vec<RedisExchange>) {
        if !matches!(f.kind, b'*' | b'i') || f.first.is_empty() {
            self.stats.protocol_errors += 1;
            return;
        }
        self.stats.commands += 1;
        let (operation, query, confirmations) = describe(&f);
        if operation == "SELECT" {
            if let Some(db) = std::str::from_utf8(&f.second)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                self.database = db;
            }
        }
        let queued = self.in_multi && !matches!(operation.as_str(), "EXEC" | "DISCARD");
        match operation.as_str() {
            "MULTI" => self.in_multi = true,
            "EXEC" | "DISCARD" => self.in_multi = false,
            _ => {}
        }
        if self.pending.len() >= self.max_pending {
            if let Some(mut old) = self.pending.pop_front() {
                old.exchange.error = Some("pending_overflow".into());
                out.push(old.exchange);
            }
        }
        let exchange = RedisExchange {
            start: f.start,
            request_end: f.end,
            request_offset: f.offset,
            response_start: None,
            end: None,
            operation,
            query,
            error: None,
            replied: false,
            queued,
            nested_errors: 0,
            database: self.database,
            request_size: f.size,
            response_size: 0,
            tokens: key_tokens(&f),
            key_hash: key_hash(&f),
        };
        self.pending.push_back(Pending {
            exchange,
            confirmations,
        });
    }

    fn reply(&mut self, f: Frame, out: &mut Vec<RedisExchange>) {
        let kind = pubsub_kind(&f);
        let subscribing = self.pending.front().is_some_and(|p| p.confirmations > 0);
        match kind {
            PubSub::Confirmation if subscribing => {}
            PubSub::Confirmation | PubSub::Delivery => {
                self.stats.pushes += 1;
                return;
            }
            PubSub::None if f.kind == b'>' => {
                self.stats.pushes += 1;
                return;
            }
            PubSub::None => {}
        }
        let Some(front) = self.pending.front_mut() else {
            self.stats.unmatched_replies += 1;
            return;
        };
        let x = &mut front.exchange;
        x.response_start.get_or_insert(f.start);
        x.end = Some(f.end);
        x.response_size += f.size;
        x.nested_errors += f.nested_errors;
        if !f.error.is_empty() {
            x.error = Some(String::from_utf8_lossy(&f.error).into_owned());
            x.replied = true;
        }
        if front.confirmations > 1 && kind == PubSub::Confirmation {
            front.confirmations -= 1;
            return;
        }
        if let Some(p) = self.pending.pop_front() {
            out.push(p.exchange);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PubSub {
    None,
    Confirmation,
    Delivery,
}

/// Whether a reply is a pub/sub confirmation or delivery (RESP2 arrays, RESP3 pushes).
fn pubsub_kind(f: &Frame) -> PubSub {
    if !matches!(f.kind, b'*' | b'>') || f.len < 3 {
        return PubSub::None;
    }
    match f.first.to_ascii_lowercase().as_slice() {
        b"subscribe" | b"psubscribe" | b"ssubscribe" | b"unsubscribe" | b"punsubscribe"
        | b"sunsubscribe" => PubSub::Confirmation,
        b"message" | b"pmessage" | b"smessage" => PubSub::Delivery,
        _ => PubSub::None,
    }
}

/// Commands whose first argument is a subcommand (`CLIENT SETINFO`).
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION", "LATENCY", "MEMORY", "MODULE",
    "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];
/// Commands whose arguments are not keys (all become `?`).
const KEYLESS: &[&str] = &[
    "AUTH",
    "BGSAVE",
    "DBSIZE",
    "DISCARD",
    "ECHO",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "EXEC",
    "FCALL",
    "FLUSHALL",
    "FLUSHDB",
    "HELLO",
    "INFO",
    "KEYS",
    "MONITOR",
    "MULTI",
    "PING",
    "QUIT",
    "RESET",
    "SAVE",
    "SCAN",
    "SELECT",
    "TIME",
    "UNWATCH",
    "WAIT",
];
const SUBSCRIBERS: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
];

/// The tokens of a command's key (its second element): `session:17` gives `session` and `17`.
fn key_tokens(f: &Frame) -> Tokens {
    let mut c = Collector::default();
    if f.len > 1 {
        c.value(&f.second);
    }
    c.take()
}

/// The keyed hash of a command's key (its second element), if it has one kept whole.
fn key_hash(f: &Frame) -> Option<u64> {
    let whole = f.len > 1 && f.second.len() < resp::KEEP_KEY;
    crate::protocols::args_hash::of(&f.second, whole)
}

/// Operation name, query text (key templated, other arguments `?`) and, for the
/// SUBSCRIBE family, how many confirmations the command gets.
fn describe(f: &Frame) -> (String, String, u64) {
    let name = word(&f.first);
    let args = f.len.saturating_sub(1);
    let mut query;
    let operation;
    let mut rest = args;
    if CONTAINERS.contains(&name.as_str()) && args > 0 {
        operation = format!("{name} {}", word(&f.second));
        query = operation.clone();
        rest -= 1;
    } else if KEYLESS.contains(&name.as_str()) || args == 0 {
        operation = name;
        query = operation.clone();
    } else {
        query = format!("{name} {}", key::template(&f.second));
        operation = name;
        rest -= 1;
    }
    for _ in 0..rest.min(MAX_PLACEHOLDERS) {
        query.push_str(" ?");
    }
    if rest > MAX_PLACEHOLDERS {
        query.push_str(" …");
    }
    let confirmations = match SUBSCRIBERS.contains(&operation.as_str()) {
        true => args.max(1),
        false => 0,
    };
    (operation, query, confirmations)
}

/// A command word, upper-cased; anything but letters, digits, `_`, `-` and `.` makes it `?`.
fn word(b: &[u8]) -> String {
    let ok = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    match ok {
        true => String::from_utf8_lossy(b).to_ascii_uppercase(),
        false => "?".to_string(),
    }
}

#[cfg(test)]
mod tests;
