//! PostgreSQL (frontend/backend protocol 3): one connection's two byte streams in, one
//! [`PgExchange`] per simple query and per extended-protocol Execute out. Not yet wired: the
//! caller feeds each direction's bytes in capture order ([`PgConn::push`]), losses
//! ([`PgConn::gap`]) and the end ([`PgConn::finish`]).
//!
//! Pairing follows the protocol's own bracketing. A Query (`Q`) is answered by one
//! CommandComplete per statement (or an ErrorResponse that ends it), then ReadyForQuery: one
//! exchange, several statements (`db.operation.batch.size`), a COPY inside it is skipped (its
//! data counted, not read) but timed. Parse/Bind/Execute/Sync: each Execute is an exchange,
//! from the first Parse or Bind before it to its CommandComplete, PortalSuspended or
//! ErrorResponse; after an error the server skips to Sync, and so do the Executes still queued
//! (they ran never: no exchange). An Execute is named by the text of the Parse that prepared
//! its statement; a statement prepared before the capture began is labelled as such, never
//! guessed. SSLRequest answered `N` continues in clear; answered `S`, the connection is
//! encrypted and nothing more is decoded.
//!
//! Bounded: [`MAX_PENDING`] queries in flight, [`MAX_STATEMENTS`] prepared statements and
//! [`MAX_PORTALS`] portals per connection (the oldest forgotten), query texts sanitised and
//! capped ([`sql`]), and [`frame`]'s constant memory per direction. Privacy: only sanitised
//! texts are kept (literals are `?`, even in statements kept for later Executes); parameter
//! values, rows, error messages and COPY data are never read past their lengths.

pub mod frame;
pub mod sql;
pub mod stream;

use std::collections::VecDeque;

use crate::protocols::args_hash;
use crate::protocols::http1::tokens::{Collector, Tokens};
use crate::reassembly::Direction;
use crate::span::AttrValue;
use frame::{Framer, Kind, Msg};

pub const MAX_PENDING: usize = 4096;
pub const MAX_STATEMENTS: usize = 256;
pub const MAX_PORTALS: usize = 64;

/// Protocol 3.0, and the special request codes of the untyped first message.
const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// One query or Execute and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgExchange {
    /// Capture times (ns): request's first and last byte, response's first and last.
    pub start: u64,
    pub request_end: u64,
    pub response_start: Option<u64>,
    pub end: Option<u64>,
    /// Offset in the client's stream of the request's first byte (the Query, or the first
    /// Parse or Bind before an Execute): its anchor.
    pub request_offset: u64,
    /// First keyword (`SELECT`), `BATCH` for several statements, `EXECUTE` if unknown.
    pub operation: String,
    /// Sanitised text; `None` for a statement prepared before the capture.
    pub query: Option<String>,
    pub statements: usize,
    /// Extended protocol (an Execute) rather than a simple Query.
    pub extended: bool,
    /// SQLSTATE of an ErrorResponse.
    pub sqlstate: Option<String>,
    /// Why there is no complete response: `gap`, `no_response`, `pending_overflow`.
    pub cut: Option<String>,
    /// Rows from the CommandComplete tags (`SELECT 3`, `INSERT 0 1`).
    pub rows: u64,
    /// COPY data bytes (both ways) inside this query.
    pub copy_bytes: u64,
    pub database: Option<String>,
    /// The payload tokens of its literals or bound parameters (hashes, never the values; see
    /// `http1::tokens`), for causality; moved to the exchange when it leaves the decoder.
    pub tokens: Tokens,
    /// The keyed hash of what it was asked (see [`crate::protocols::args_hash`]): the bound
    /// parameter values of an Execute, a simple query's whole text; never exported. `None`
    /// when the decoder did not keep the message whole.
    pub args_hash: Option<u64>,
}

impl PgExchange {
    fn new(start: u64, end: u64, query: Option<String>, extended: bool) -> Self {
        let statements = query.as_deref().map_or(1, sql::statements);
        let operation = match (&query, statements) {
            (None, _) => "EXECUTE".to_string(),
            (Some(_), n) if n > 1 => "BATCH".to_string(),
            (Some(q), _) => sql::operation(q),
        };
        PgExchange {
            start,
            request_end: end,
            response_start: None,
            end: None,
            request_offset: 0,
            operation,
            query,
            statements,
            extended,
            sqlstate: None,
            cut: None,
            rows: 0,
            copy_bytes: 0,
            database: None,
            tokens: Tokens::default(),
            args_hash: None,
        }
    }

    /// OpenTelemetry attributes (`db.*`); tapspan's own under `tapspan.postgresql.*`.
    pub fn attributes(&self) -> Vec<(&'static str, AttrValue)> {
        let mut v = vec![
            ("db.system.name", AttrValue::from("postgresql")),
            ("db.operation.name", AttrValue::from(&self.operation)),
        ];
        match &self.query {
            Some(q) => v.push(("db.query.text", AttrValue::from(q))),
            None => v.push((
                "tapspan.postgresql.statement",
                AttrValue::from("prepared_before_capture"),
            )),
        }
        if let Some(db) = &self.database {
            v.push(("db.namespace", AttrValue::from(db)));
        }
        if self.statements > 1 {
            v.push(("db.operation.batch.size", AttrValue::from(self.statements)));
        }
        if let Some(s) = &self.sqlstate {
            v.push(("db.response.status_code", AttrValue::from(s)));
            v.push(("error.type", AttrValue::from(s)));
        } else if let Some(c) = &self.cut {
            v.push(("error.type", AttrValue::from(c)));
        }
        if self.end.is_some() {
            v.push(("db.response.returned_rows", AttrValue::from(self.rows)));
        }
        if self.copy_bytes > 0 {
            v.push((
                "tapspan.postgresql.copy_bytes",
                AttrValue::from(self.copy_bytes),
            ));
        }
        v
    }
}

/// What the server's next messages answer, in order.
#[derive(Clone, Debug)]
enum Unit {
    Startup,
    Query(PgExchange),
    Execute(PgExchange),
    Sync,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgStats {
    pub queries: u64,
    pub executes: u64,
    /// Executes the server skipped after an error in their batch.
    pub skipped: u64,
    pub protocol_errors: u64,
    pub encrypted: bool,
}

#[derive(Clone, Debug)]
pub struct PgConn {
    client: Framer,
    server: Framer,
    units: VecDeque<Unit>,
    /// Prepared statements: name → sanitised text, and the keyed hash of the whole text (its
    /// literals, for the Executes' `args_hash`).
    statements: VecDeque<(Vec<u8>, Statement)>,
    portals: VecDeque<(Vec<u8>, Portal)>,
    /// Capture time and stream offset of the first Parse or Bind since the last Execute or Sync.
    batch_start: Option<(u64, u64)>,
    database: Option<String>,
    /// Queries in flight at most (see [`PgConn::with_max_pending`]).
    max_pending: usize,
    pub stats: PgStats,
}

impl PgConn {
    pub fn new(from_start: bool) -> Self {
        PgConn {
            client: Framer::new(true, from_start),
            server: Framer::new(false, from_start),
            units: VecDeque::new(),
            statements: VecDeque::new(),
            portals: VecDeque::new(),
            batch_start: None,
            database: None,
            max_pending: MAX_PENDING,
            stats: PgStats::default(),
        }
    }

    /// Keeps at most `n` (at least 1, at most [`MAX_PENDING`]) queries in flight; the oldest
    /// beyond it is reported `pending_overflow`.
    pub fn with_max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.clamp(1, MAX_PENDING);
        self
    }

    /// Whether a client's first bytes are a protocol 3 startup, SSLRequest or GSSENCRequest.
    pub fn sniff(first: &[u8]) -> bool {
        let word = |i: usize| {
            first
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match (word(0), word(4)) {
            (Some(8), Some(SSL_REQUEST | GSSENC_REQUEST)) => true,
            (Some(len), Some(PROTOCOL_3)) => (9..=10_000).contains(&len),
            _ => false,
        }
    }

    /// [`PgConn::push_at`] of bytes that follow the last ones pushed in `dir`.
    pub fn push(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<PgExchange>) {
        let offset = match dir {
            Direction::ClientToServer => self.client.offset(),
            Direction::ServerToClient => self.server.offset(),
        };
        self.push_at(dir, ts, offset, bytes, out);
    }

    /// Bytes of one direction seen at capture time `ts`, the first at stream offset `offset`.
    pub fn push_at(
        &mut self,
        dir: Direction,
        ts: u64,
        offset: u64,
        bytes: &[u8],
        out: &mut Vec<PgExchange>,
    ) {
        if self.stats.encrypted {
            return;
        }
        let mut msgs = Vec::new();
        match dir {
            Direction::ClientToServer => {
                self.client.seek(offset);
                if self.client.restart(bytes) {
                    self.client.push(ts, bytes, &mut |m| msgs.push(m));
                } else {
                    self.client.seek(offset + bytes.len() as u64);
                }
                for m in msgs {
                    self.client_msg(m, out);
                }
            }
            Direction::ServerToClient => {
                let fresh = !self.units.is_empty() || !self.server.is_lost();
                self.server.seek(offset);
                if fresh && self.server.restart(bytes) {
                    self.server.push(ts, bytes, &mut |m| msgs.push(m));
                }
                for m in msgs {
                    self.server_msg(m, out);
                }
            }
        }
        self.stats.protocol_errors = self.client.errors + self.server.errors;
    }

    /// Bytes were lost: what was in flight is reported cut, and both sides restart.
    pub fn gap(&mut self, _dir: Direction, out: &mut Vec<PgExchange>) {
        self.client.lose();
        self.server.lose();
        self.batch_start = None;
        self.flush("gap", out);
    }

    pub fn finish(&mut self, out: &mut Vec<PgExchange>) {
        self.flush("no_response", out);
    }

    fn flush(&mut self, why: &str, out: &mut Vec<PgExchange>) {
        for u in self.units.drain(..) {
            if let Unit::Query(mut x) | Unit::Execute(mut x) = u {
                x.cut = Some(why.to_string());
                out.push(x);
            }
        }
    }

    fn enqueue(&mut self, unit: Unit, out: &mut Vec<PgExchange>) {
        if self.units.len() >= self.max_pending {
            // The oldest query gives way, not a Sync or the startup: those keep the pairing of
            // the server's ReadyForQuery messages in step.
            let oldest = self
                .units
                .iter()
                .position(|u| matches!(u, Unit::Query(_) | Unit::Execute(_)));
            // With none queued (a flood of Syncs), the oldest unit goes: the queue stays bounded.
            if let Some(Unit::Query(mut x) | Unit::Execute(mut x)) =
                self.units.remove(oldest.unwrap_or(0))
            {
                x.cut = Some("pending_overflow".into());
                out.push(x);
            }
        }
        self.units.push_back(unit);
    }

    fn client_msg(&mut self, m: Msg, out: &mut Vec<PgExchange>) {
        let tag = match m.kind {
            Kind::Startup => return self.startup(&m),
            Kind::Typed(t) => t,
            Kind::Answer(_) => return,
        };
        match tag {
            b'Q' => {
                self.stats.queries += 1;
                let mut literals = Collector::default();
                let text =
                    sql::sanitize_with(&String::from_utf8_lossy(cstr(&m.body, 0).0), &mut |v| {
                        literals.value(v)
                    });
                let mut x = PgExchange::new(m.start, m.end, Some(text), false);
                x.request_offset = m.offset;
                x.database = self.database.clone();
                x.tokens = literals.take();
                x.args_hash = args_hash::of(&m.body, whole(&m));
                self.enqueue(Unit::Query(x), out);
            }
            b'P' => {
                let (name, at) = cstr(&m.body, 0);
                let raw = cstr(&m.body, at).0;
                let text = sql::sanitize(&String::from_utf8_lossy(raw));
                let text_hash = args_hash::of(raw, whole(&m));
                remember(
                    &mut self.statements,
                    name.to_vec(),
                    (text, text_hash),
                    MAX_STATEMENTS,
                );
                self.batch_start.get_or_insert((m.start, m.offset));
            }
            b'B' => {
                let (portal, at) = cstr(&m.body, 0);
                let stmt = cstr(&m.body, at).0;
                let (text, text_hash) = lookup(&self.statements, stmt)
                    .cloned()
                    .map_or((None, None), |(t, h)| (Some(t), h));
                let bind = m.body.get(at..).unwrap_or_default();
                let tokens = bound_tokens(bind);
                // The statement's literals, and the values and formats after its name: the
                // same values bound to a statement prepared again under another name are the
                // same call.
                let values = bind.get(cstr(bind, 0).1..).unwrap_or_default();
                let args_hash = args_hash::pair(text_hash, args_hash::of(values, whole(&m)));
                remember(
                    &mut self.portals,
                    portal.to_vec(),
                    Portal {
                        text,
                        tokens,
                        args_hash,
                    },
                    MAX_PORTALS,
                );
                self.batch_start.get_or_insert((m.start, m.offset));
            }
            b'E' => {
                self.stats.executes += 1;
                let Portal {
                    text,
                    tokens,
                    args_hash,
                } = lookup(&self.portals, cstr(&m.body, 0).0)
                    .cloned()
                    .unwrap_or_default();
                let (start, offset) = self.batch_start.take().unwrap_or((m.start, m.offset));
                let mut x = PgExchange::new(start, m.end, text, true);
                x.request_offset = offset;
                x.tokens = tokens;
                x.args_hash = args_hash;
                x.database = self.database.clone();
                self.enqueue(Unit::Execute(x), out);
            }
            b'S' => {
                self.batch_start = None;
                self.enqueue(Unit::Sync, out);
            }
            b'C' => self.close(&m.body),
            b'd' => self.copy_data(m.len),
            _ => {}
        }
    }

    /// The untyped first message: SSLRequest (an answer byte follows) or a startup.
    fn startup(&mut self, m: &Msg) {
        let code = m
            .body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match code {
            Some(SSL_REQUEST | GSSENC_REQUEST) => {
                self.server.expect_answer = true;
                self.client.expect_startup = true;
            }
            Some(PROTOCOL_3) => {
                let mut params = m.body[4..].split(|&b| b == 0);
                let mut user = None;
                while let (Some(k), Some(v)) = (params.next(), params.next()) {
                    let v = String::from_utf8_lossy(v).into_owned();
                    match k {
                        b"database" => self.database = Some(v),
                        b"user" => user = Some(v),
                        _ => {}
                    }
                }
                if self.database.is_none() {
                    self.database = user;
                }
                self.units.push_back(Unit::Startup);
            }
            _ => {}
        }
    }

    /// Close (`C`): `S` statement or `P` portal, then its name.
    fn close(&mut self, body: &[u8]) {
        let Some((&what, name)) = body.split_first() else {
            return;
        };
        let name = cstr(name, 0).0;
        let list = match what {
            b'S' => &mut self.statements,
            _ => return self.portals.retain(|(n, _)| n != name),
        };
        list.retain(|(n, _)| n != name);
    }

    fn copy_data(&mut self, len: u64) {
        if let Some(Unit::Query(x)) = self.units.front_mut() {
            x.copy_bytes += len;
        }
    }

    fn server_msg(&mut self, m: Msg, out: &mut Vec<PgExchange>) {
        let tag = match m.kind {
            Kind::Answer(b'S' | b'G') => {
                self.stats.encrypted = true;
                return;
            }
            Kind::Answer(_) | Kind::Startup => return,
            Kind::Typed(t) => t,
        };
        if !matches!(tag, b'S' | b'N' | b'A' | b'R' | b'K' | b'Z') {
            if let Some(Unit::Query(x) | Unit::Execute(x)) = self.units.front_mut() {
                x.response_start.get_or_insert(m.start);
            }
        }
        match tag {
            b'C' | b'I' | b's' => self.complete(&m, out),
            b'E' => self.error(&m, out),
            b'd' => self.copy_data(m.len),
            b'Z' => self.ready(m.end, out),
            _ => {}
        }
    }

    /// CommandComplete, EmptyQueryResponse or PortalSuspended.
    fn complete(&mut self, m: &Msg, out: &mut Vec<PgExchange>) {
        let rows = rows_of(&m.body);
        match self.units.front_mut() {
            Some(Unit::Query(x)) => {
                x.rows += rows;
                x.end = Some(m.end);
            }
            Some(Unit::Execute(x)) => {
                x.rows += rows;
                x.end = Some(m.end);
                if let Some(Unit::Execute(x)) = self.units.pop_front() {
                    out.push(x);
                }
            }
            _ => {}
        }
    }

    fn error(&mut self, m: &Msg, out: &mut Vec<PgExchange>) {
        let code = sqlstate(&m.body);
        match self.units.front_mut() {
            Some(Unit::Query(x)) => {
                x.sqlstate.get_or_insert(code);
                x.end = Some(m.end);
            }
            Some(Unit::Execute(x)) => {
                x.sqlstate = Some(code);
                x.end = Some(m.end);
                if let Some(Unit::Execute(x)) = self.units.pop_front() {
                    out.push(x);
                }
            }
            Some(Unit::Startup) => {
                self.units.pop_front();
            }
            _ => {}
        }
    }

    /// ReadyForQuery ends a Query, a startup, or a Sync (and the Executes skipped before it).
    fn ready(&mut self, ts: u64, out: &mut Vec<PgExchange>) {
        while let Some(u) = self.units.pop_front() {
            match u {
                Unit::Query(mut x) => {
                    x.end = Some(ts);
                    out.push(x);
                    return;
                }
                Unit::Startup | Unit::Sync => return,
                Unit::Execute(_) => self.stats.skipped += 1,
            }
        }
    }
}

/// A NUL-terminated string at `at` (to the end if unterminated) and the offset after it.
fn cstr(b: &[u8], at: usize) -> (&[u8], usize) {
    let rest = b.get(at..).unwrap_or_default();
    match rest.iter().position(|&c| c == 0) {
        Some(p) => (&rest[..p], at + p + 1),
        None => (rest, b.len()),
    }
}

/// A bound portal: the sanitised text of its statement (`None`: prepared before the capture),
/// and the tokens of the values bound to it.
#[derive(Clone, Debug, Default)]
struct Portal {
    text: Option<String>,
    tokens: Tokens,
    args_hash: Option<u64>,
}

/// A prepared statement's sanitised text and the keyed hash of its whole text.
type Statement = (String, Option<u64>);

/// Whether a message's body was kept whole (the decoder keeps only the first bytes of some).
fn whole(m: &Msg) -> bool {
    m.body.len() as u64 == m.len
}

/// The tokens of a Bind's parameter values (protocol 3 §55.7, "Bind": after the portal, the
/// statement name (`bind` starts there), the parameter format codes (none: all text; one: for
/// all), then each value as a length (-1 for NULL) and its bytes). A text value gives its runs
/// of token bytes; a binary one of 2, 4 or 8 bytes is read as the integer it most often is
/// (an id), in decimal as a query string would carry it. Whatever a value really was, its
/// tokens only count where they match the caller's request, and how often such matches are
/// right is learned (`causality::tokens`).
fn bound_tokens(bind: &[u8]) -> Tokens {
    let mut c = Collector::default();
    let (_, mut at) = cstr(bind, 0);
    let be16 = |at: usize| {
        bind.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let Some(n_formats) = be16(at) else {
        return c.take();
    };
    let formats_at = at + 2;
    at = formats_at + 2 * usize::from(n_formats);
    let binary = |i: usize| match n_formats {
        0 => false,
        1 => be16(formats_at) == Some(1),
        _ => be16(formats_at + 2 * i) == Some(1),
    };
    let Some(n_params) = be16(at) else {
        return c.take();
    };
    at += 2;
    for i in 0..usize::from(n_params) {
        let Some(len) = bind
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        at += 4;
        let Ok(len) = usize::try_from(len) else {
            continue; // NULL
        };
        let Some(value) = bind.get(at..at.saturating_add(len)) else {
            break;
        };
        at += len;
        if !binary(i) {
            c.value(value);
        } else if let Some(n) = binary_integer(value) {
            c.value(n.to_string().as_bytes());
        }
    }
    c.take()
}

/// A big-endian int2, int4 or int8.
fn binary_integer(v: &[u8]) -> Option<i64> {
    match *v {
        [a, b] => Some(i64::from(i16::from_be_bytes([a, b]))),
        [a, b, c, d] => Some(i64::from(i32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Some(i64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

fn remember<T>(list: &mut VecDeque<(Vec<u8>, T)>, name: Vec<u8>, v: T, cap: usize) {
    list.retain(|(n, _)| *n != name);
    if list.len() == cap {
        list.pop_front();
    }
    list.push_back((name, v));
}

fn lookup<'a, T>(list: &'a VecDeque<(Vec<u8>, T)>, name: &[u8]) -> Option<&'a T> {
    list.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Rows from a CommandComplete tag: its last number (`INSERT 0 5` → 5, `SELECT 3` → 3).
fn rows_of(tag: &[u8]) -> u64 {
    let tag = cstr(tag, 0).0;
    let last = tag.rsplit(|&b| b == b' ').next().unwrap_or_default();
    std::str::from_utf8(last)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The `C` field of an ErrorResponse (five characters), or `?????`.
fn sqlstate(body: &[u8]) -> String {
    let mut at = 0;
    while let Some(&field) = body.get(at) {
        if field == 0 {
            break;
        }
        let (value, next) = cstr(body, at + 1);
        if field == b'C' && value.len() == 5 && value.iter().all(u8::is_ascii_alphanumeric) {
            return String::from_utf8_lossy(value).into_owned();
        }
        at = next;
    }
    "?????".into()
}

#[cfg(test)]
mod tests;
