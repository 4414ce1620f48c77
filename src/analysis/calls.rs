//! Spans back into calls: each exchange wrote a client span (the caller's side) and a server
//! span (the callee's); the analysis works on the exchange — one call, with both services, its
//! timing phases, and the call it was made for (its parent).

use std::collections::HashMap;

use serde_json::{Map, Value};

use std::borrow::Cow;

use crate::span::{Attributes, Span, SpanKind};
use crate::text;

/// What the analysis needs of one span, from a [`Span`] in memory or a JSON line.
pub struct SpanFields<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub parent_span_id: Option<&'a str>,
    pub kind: SpanKind,
    pub service: &'a str,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    pub call: CallFacts<'a>,
    pub request_end: Option<u64>,
    pub response_start: Option<u64>,
}

/// What the analysis reads of a span's attributes.
#[derive(Default)]
pub struct CallFacts<'a> {
    /// `tapspan.exchange_id`; a span without one is not analysed.
    pub exchange_id: Option<Cow<'a, str>>,
    /// An HTTP method, or a database call's operation.
    pub method: Option<&'a str>,
    /// An HTTP route, or a database call's statement template.
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
    pub query: Option<&'a str>,
    pub status: Option<u16>,
    pub error_type: Option<&'a str>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub response_chunked: bool,
    pub response_encoded: bool,
    /// A database call's arguments as a keyed hash (in memory only: JSON lines never carry it).
    pub args_hash: Option<u64>,
}

impl<'a> CallFacts<'a> {
    fn of_attributes(a: &'a Attributes) -> Self {
        let http = a.http.as_deref();
        let response = http.and_then(|h| h.response.as_ref());
        let response_has = |name: &str, want: Option<&str>| {
            response.is_some_and(|r| any_value_is(r.values(name), want))
        };
        CallFacts {
            exchange_id: Some(Cow::Owned(text::hex64(a.exchange_id))),
            method: a.operation(),
            route: a.target_template(),
            path: http.and_then(|h| h.path.as_deref()),
            query: http.and_then(|h| h.query.as_deref()),
            status: a.http_status(),
            error_type: a.error_type.as_deref(),
            request_bytes: http
                .and_then(|h| h.request.as_ref())
                .map_or(0, |m| m.body_size),
            response_bytes: response.map_or(0, |m| m.body_size),
            response_chunked: response_has("transfer-encoding", Some("chunked")),
            response_encoded: response_has("content-encoding", None),
            args_hash: a.args_hash,
        }
    }

    fn of_json(a: &'a Map<String, Value>) -> Self {
        let str_of = |k: &str| a.get(k).and_then(Value::as_str);
        let u64_of = |k: &str| a.get(k).and_then(Value::as_u64);
        let response_has = |name: &str, want: Option<&str>| {
            a.get(&format!("http.response.header.{name}"))
                .and_then(Value::as_array)
                .is_some_and(|vs| any_value_is(vs.iter().filter_map(Value::as_str), want))
        };
        CallFacts {
            exchange_id: str_of("tapspan.exchange_id").map(Cow::Borrowed),
            method: str_of("http.request.method").or(str_of("db.operation.name")),
            route: str_of("http.route").or(str_of("db.query.text")),
            path: str_of("url.path"),
            query: str_of("url.query"),
            status: u64_of("http.response.status_code").map(|s| s as u16),
            error_type: str_of("error.type"),
            request_bytes: u64_of("http.request.body.size").unwrap_or(0),
            response_bytes: u64_of("http.response.body.size").unwrap_or(0),
            response_chunked: response_has("transfer-encoding", Some("chunked")),
            response_encoded: response_has("content-encoding", None),
            args_hash: None,
        }
    }
}

/// Whether a header's values say something: any value not empty nor `identity`, and holding
/// `want` (case-insensitive) when one is asked for.
fn any_value_is<'v>(mut values: impl Iterator<Item = &'v str>, want: Option<&str>) -> bool {
    values.any(|v| {
        let v = v.trim();
        !v.is_empty()
            && !v.eq_ignore_ascii_case("identity")
            && want.is_none_or(|w| v.to_ascii_lowercase().contains(w))
    })
}

impl<'a> SpanFields<'a> {
    pub fn of_span(s: &'a Span) -> Self {
        let event = |name: &str| {
            s.events
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.time_unix_nano)
        };
        SpanFields {
            trace_id: &s.trace_id,
            span_id: &s.span_id,
            parent_span_id: s.parent_span_id.as_deref(),
            kind: s.kind,
            service: &s.service,
            start: s.start_unix_nano,
            end: s.end_unix_nano,
            error: s.status == crate::span::SpanStatus::Error,
            call: CallFacts::of_attributes(&s.attributes),
            request_end: event("request.end"),
            response_start: event("response.start"),
        }
    }

    /// A span as written in JSON lines; `None` if it lacks the fields every span has.
    pub fn of_json(v: &'a Value) -> Option<Self> {
        let kind = match v.get("kind")?.as_str()? {
            "client" => SpanKind::Client,
            "server" => SpanKind::Server,
            _ => return None,
        };
        let event = |name: &str| {
            v.get("events")?
                .as_array()?
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
                .get("time_unix_nano")?
                .as_u64()
        };
        Some(SpanFields {
            trace_id: v.get("trace_id")?.as_str()?,
            span_id: v.get("span_id")?.as_str()?,
            parent_span_id: v.get("parent_span_id").and_then(Value::as_str),
            kind,
            service: v.get("service")?.as_str()?,
            start: v.get("start_unix_nano")?.as_u64()?,
            end: v.get("end_unix_nano")?.as_u64()?,
            error: v.get("status").and_then(Value::as_str) == Some("error"),
            call: CallFacts::of_json(v.get("attributes")?.as_object()?),
            request_end: event("request.end"),
            response_start: event("response.start"),
        })
    }
}

/// Ids are only compared, so they are kept as 64-bit hashes (a span or exchange id of any
/// form, from JSON written by another version too).
fn id_key(id: &str) -> u64 {
    crate::ids::hash64("analysis-id", id.as_bytes())
}

/// A shared string: one allocation per distinct service, method or route.
pub type Name = std::sync::Arc<str>;

/// One exchange, seen from both ends.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub trace_id: String,
    pub exchange_id: String,
    /// Interned: a capture has few distinct services, methods and routes, and many calls.
    pub caller: Name,
    pub callee: Name,
    pub method: Name,
    pub route: Name,
    /// Path and (redacted) query: what "the same request" compares.
    pub target: String,
    /// A database call's arguments as a keyed hash: what "the same call" compares where there
    /// is no path (a Redis key, bound SQL values); `None` when unknown.
    pub args_hash: Option<u64>,
    pub status: Option<u16>,
    pub error_type: Option<String>,
    /// The server span's status: 5xx or cut short.
    pub server_error: bool,
    pub start: u64,
    pub end: u64,
    pub request_end: Option<u64>,
    pub response_start: Option<u64>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub response_chunked: bool,
    pub response_encoded: bool,
    /// Index of the call whose handling made this one.
    pub parent: Option<usize>,
    /// Span ids (hashed: only compared), to join parents to children.
    client_span_id: u64,
    server_span_id: u64,
    client_parent: Option<u64>,
    has_client: bool,
    has_server: bool,
}

impl Call {
    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Last request byte to first response byte: the callee's think time plus its own calls.
    pub fn ttfb(&self) -> Option<u64> {
        Some(self.response_start?.saturating_sub(self.request_end?))
    }

    /// First response byte to last.
    pub fn transfer(&self) -> Option<u64> {
        Some(self.end.saturating_sub(self.response_start?))
    }

    /// Failed as far as a caller can tell: a 5xx, or no (complete) response.
    pub fn failed(&self) -> bool {
        self.error_type.is_some() || self.status.is_some_and(|s| s >= 500)
    }

    pub fn endpoint(&self) -> (&str, &str, &str) {
        (&self.callee, &self.method, &self.route)
    }

    /// The endpoint as the report names it: `service METHOD route`.
    pub fn endpoint_name(&self) -> String {
        format!("{} {} {}", self.callee, self.method, self.route)
    }

    /// What the call asked, as far as the capture tells, for "the same call again": an HTTP
    /// call's path and query, a database call's statement template and arguments' hash.
    /// `None` for a call without either (a database call read from JSON lines): it cannot be
    /// compared.
    pub fn request_identity(&self) -> Option<(&str, &str, u64)> {
        match (self.target.as_str(), self.args_hash) {
            ("-", None) => None,
            ("-", Some(h)) => Some((&self.route, "-", h)),
            (target, h) => Some((&self.route, target, h.unwrap_or(0))),
        }
    }

    /// The endpoint as a map key (cheap clones of interned names).
    pub fn endpoint_key(&self) -> (Name, Name, Name) {
        (self.callee.clone(), self.method.clone(), self.route.clone())
    }
}

/// The calls not yet analysed, grouped by trace: a trace whose spans stopped arriving is
/// taken out whole ([`CallTable::take_settled`]), analysed, and dropped.
#[derive(Clone)]
pub struct CallTable {
    pub calls: Vec<Call>,
    /// Exchange id (hashed) → index in `calls`.
    by_exchange: HashMap<u64, usize>,
    /// Trace id (hashed) → the span count when one of its spans last arrived.
    touched: HashMap<u64, u64>,
    spans: u64,
    names: std::collections::HashSet<Name>,
    /// Calls taken in at most; later exchanges are counted, not analysed.
    max_calls: usize,
    admitted: usize,
    pub calls_left_out: u64,
}

impl CallTable {
    pub fn new(max_calls: usize) -> Self {
        CallTable {
            calls: Vec::new(),
            by_exchange: HashMap::new(),
            touched: HashMap::new(),
            spans: 0,
            names: Default::default(),
            max_calls,
            admitted: 0,
            calls_left_out: 0,
        }
    }

    /// Distinct services, methods and routes seen (interned once each).
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// Takes out the calls of every trace with no span among the last `quiet` spans (all calls
    /// if `quiet` is 0), parents resolved (see [`resolve`]); the rest stay. Spans of a trace
    /// arriving after it was taken are analysed as a request of their own.
    pub fn take_settled(&mut self, quiet: u64) -> Vec<Call> {
        let cutoff = self.spans.saturating_sub(quiet);
        let settled = |c: &Call| {
            quiet == 0
                || self
                    .touched
                    .get(&id_key(&c.trace_id))
                    .is_none_or(|&at| at <= cutoff)
        };
        let (mut out, kept): (Vec<Call>, Vec<Call>) = std::mem::take(&mut self.calls)
            .into_iter()
            .partition(settled);
        self.calls = kept;
        self.by_exchange = self
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| (id_key(&c.exchange_id), i))
            .collect();
        self.touched.retain(|_, &mut at| at > cutoff);
        if quiet == 0 {
            self.touched = HashMap::new();
        }
        resolve(&mut out);
        out
    }

    pub fn push(&mut self, s: &SpanFields<'_>) {
        let facts = &s.call;
        let Some(xid) = facts.exchange_id.as_deref() else {
            return;
        };
        let key = id_key(xid);
        self.spans += 1;
        let at = match self.by_exchange.get(&key) {
            Some(&at) => at,
            None if self.admitted >= self.max_calls => {
                // Counted once per exchange: its client span comes first.
                if s.kind == SpanKind::Client {
                    self.calls_left_out += 1;
                }
                return;
            }
            None => {
                self.admitted += 1;
                self.calls.push(Call::default());
                self.by_exchange.insert(key, self.calls.len() - 1);
                self.calls.len() - 1
            }
        };
        let names = &mut self.names;
        let mut intern = |s: &str| -> Name {
            if let Some(n) = names.get(s) {
                return n.clone();
            }
            let n: Name = s.into();
            names.insert(n.clone());
            n
        };
        self.touched.insert(id_key(s.trace_id), self.spans);
        let c = &mut self.calls[at];
        match s.kind {
            SpanKind::Client => {
                c.caller = intern(s.service);
                c.client_span_id = id_key(s.span_id);
                c.client_parent = s.parent_span_id.map(id_key);
                c.has_client = true;
            }
            SpanKind::Server => {
                c.callee = intern(s.service);
                c.server_span_id = id_key(s.span_id);
                c.server_error = s.error;
                c.has_server = true;
            }
        }
        if c.exchange_id.is_empty() {
            c.exchange_id = xid.to_string();
            c.trace_id = s.trace_id.to_string();
            // A database call's operation and statement template stand for method and route.
            c.method = intern(facts.method.unwrap_or("-"));
            c.route = intern(facts.route.unwrap_or("-"));
            c.target = match (facts.path, facts.query) {
                (Some(p), Some(q)) => format!("{p}?{q}"),
                (Some(p), None) => p.to_string(),
                _ => "-".to_string(),
            };
            c.args_hash = facts.args_hash;
            c.status = facts.status;
            c.error_type = facts.error_type.map(str::to_string);
            c.start = s.start;
            c.end = s.end;
            c.request_end = s.request_end;
            c.response_start = s.response_start;
            c.request_bytes = facts.request_bytes;
            c.response_bytes = facts.response_bytes;
            c.response_chunked = facts.response_chunked;
            c.response_encoded = facts.response_encoded;
        }
    }
}

/// Orders the calls by start time and joins each to its parent: the call whose server span its
/// client span descends from. Calls missing a side (a partial JSON file) keep what they have.
pub fn resolve(calls: &mut [Call]) {
    calls.sort_by(|a, b| (a.start, a.end, &a.exchange_id).cmp(&(b.start, b.end, &b.exchange_id)));
    let by_server: HashMap<u64, usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.has_server)
        .map(|(i, c)| (c.server_span_id, i))
        .collect();
    let parents: Vec<Option<usize>> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = *by_server.get(&c.client_parent?)?;
            (p != i).then_some(p)
        })
        .collect();
    for (c, p) in calls.iter_mut().zip(parents) {
        c.parent = p;
        if !c.has_client {
            c.caller = "?".into();
        }
        if !c.has_server {
            c.callee = "?".into();
        }
    }
}

/// Children of every call, in start order.
pub fn children(calls: &[Call]) -> Vec<Vec<usize>> {
    let mut children = vec![Vec::new(); calls.len()];
    for (i, c) in calls.iter().enumerate() {
        if let Some(p) = c.parent {
            children[p].push(i);
        }
    }
    children
}
