//! A span's attributes, typed: what every exchange has (its ends, its id, how it was linked),
//! what an HTTP exchange and a gRPC call add, what only a tap sees, and each other protocol's
//! own (`db.*`, `dns.*`, `tls.*`) as its decoder names them.
//!
//! Exporters and the analysis read the fields; [`Attributes::for_each`] walks them as
//! OpenTelemetry key-value pairs in key order, the order the JSON-lines schema writes them in
//! (DESIGN.md "Span JSON lines"). Building them costs a handful of allocations per exchange,
//! where a map of JSON values cost one per key and value.

use std::cmp::Ordering;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::Link;
use crate::text;

/// An attribute value of a protocol's own: the types OpenTelemetry attributes take.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    UInt(u64),
    Int(i64),
    Bool(bool),
    Strs(Vec<String>),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<&String> for AttrValue {
    fn from(s: &String) -> Self {
        AttrValue::Str(s.clone())
    }
}
impl From<&Vec<String>> for AttrValue {
    fn from(v: &Vec<String>) -> Self {
        AttrValue::Strs(v.clone())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<u64> for AttrValue {
    fn from(n: u64) -> Self {
        AttrValue::UInt(n)
    }
}
impl From<u32> for AttrValue {
    fn from(n: u32) -> Self {
        AttrValue::UInt(n.into())
    }
}
impl From<u16> for AttrValue {
    fn from(n: u16) -> Self {
        AttrValue::UInt(n.into())
    }
}
impl From<usize> for AttrValue {
    fn from(n: usize) -> Self {
        AttrValue::UInt(n as u64)
    }
}
impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue::Int(n)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}
impl From<Vec<String>> for AttrValue {
    fn from(v: Vec<String>) -> Self {
        AttrValue::Strs(v)
    }
}

/// `server.address`: an IP, or a name the exchange gave (a TLS server name).
#[derive(Clone, Debug, PartialEq)]
pub enum Address {
    Ip(IpAddr),
    Name(String),
}

/// A request's or response's headers (names lower-case, values as sent) and body size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Sorted by name, a name's values in the order they came.
    pub headers: Vec<(String, String)>,
    pub body_size: u64,
}

impl Message {
    pub fn new(headers: &[(String, String)], body_size: u64) -> Self {
        Self::from_headers(headers.to_vec(), body_size)
    }

    /// [`Self::new`] of headers the caller gives up.
    pub fn from_headers(mut headers: Vec<(String, String)>, body_size: u64) -> Self {
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        Message { headers, body_size }
    }

    /// The values of header `name`, in order.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let from = self.headers.partition_point(|(n, _)| n.as_str() < name);
        let run = self.headers[from..]
            .iter()
            .take_while(|(n, _)| n == name)
            .count();
        self.headers[from..from + run]
            .iter()
            .map(|(_, v)| v.as_str())
    }
}

/// What OpenTelemetry's HTTP conventions say of an exchange.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Http {
    pub method: Option<String>,
    pub path: Option<String>,
    /// With secrets redacted.
    pub query: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub version: Option<&'static str>,
    pub user_agent: Option<String>,
    pub request: Option<Message>,
    pub response: Option<Message>,
}

/// `rpc.*` (OpenTelemetry's RPC and gRPC conventions), and the message counts only a tap sees.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grpc {
    pub service: Option<String>,
    pub method: Option<String>,
    pub status: Option<u32>,
    pub request_messages: Option<u32>,
    pub response_messages: Option<u32>,
    /// From the request's first byte to the first response message's.
    pub first_message_ns: Option<u64>,
}

/// What only a tap knows: timing, gaps, headers it could not name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tap {
    pub ttfb_ns: Option<u64>,
    pub informational: Vec<u16>,
    pub gaps: u32,
    pub truncated: bool,
    /// HTTP/2 headers whose table entries came before the capture, each name once.
    pub headers_unknown: Vec<String>,
}

/// The attributes an exchange's client and server spans share.
#[derive(Clone, Debug, PartialEq)]
pub struct Attributes {
    pub server_address: Address,
    pub server_port: u16,
    pub client_address: IpAddr,
    pub client_port: u16,
    pub exchange_id: u64,
    /// `tapspan.link` and `tapspan.link_confidence` (to three decimals).
    pub link: Option<(Link, f64)>,
    pub error_type: Option<String>,
    pub http: Option<Box<Http>>,
    pub grpc: Option<Box<Grpc>>,
    pub tap: Tap,
    /// A protocol's own attributes (`db.*`, `dns.*`, `tls.*`, `tapspan.redis.*`, …), sorted by
    /// key; none of them is one of the keys above.
    pub protocol: Vec<(&'static str, AttrValue)>,
    /// A database call's arguments as a keyed hash ([`crate::protocols::args_hash`]): for the
    /// analysis to tell a repeated call from an N+1 in memory. Never written anywhere.
    pub args_hash: Option<u64>,
}

/// An attribute's key: fixed, or a header's (`http.request.header.` and the name).
#[derive(Clone, Copy, Debug)]
pub enum Key<'a> {
    /// A name of the schema's, a literal in the source: never anything from the wire, and
    /// nothing in it a JSON string escapes (the JSON lines writer copies it as it is).
    Fixed(&'static str),
    Header(&'static str, &'a str),
}

impl Key<'_> {
    fn parts(&self) -> (&str, &str) {
        match *self {
            Key::Fixed(k) => (k, ""),
            Key::Header(prefix, name) => (prefix, name),
        }
    }

    pub fn to_string_key(&self) -> String {
        let (a, b) = self.parts();
        let mut key = String::with_capacity(a.len() + b.len());
        key.push_str(a);
        key.push_str(b);
        key
    }

    /// Ordered as the keys' texts are.
    pub fn cmp_text(&self, other: &Key<'_>) -> Ordering {
        let (a, b) = self.parts();
        let (c, d) = other.parts();
        a.bytes().chain(b.bytes()).cmp(c.bytes().chain(d.bytes()))
    }
}

/// An attribute's value as [`Attributes::for_each`] hands it out.
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a> {
    Str(&'a str),
    /// An address, written as text.
    Ip(IpAddr),
    /// A 64-bit id, written as 16 hex digits.
    Hex64(u64),
    UInt(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Strs(&'a [String]),
    /// The values of one header name: the run of `(name, value)` pairs holding them.
    HeaderValues(&'a [(String, String)]),
    UInts(&'a [u16]),
}

impl ValueRef<'_> {
    /// The value as JSON (how the JSON-lines schema writes it).
    pub fn to_json(self) -> Value {
        match self {
            ValueRef::Str(s) => Value::from(s),
            ValueRef::Ip(ip) => Value::from(text::ip(&ip)),
            ValueRef::Hex64(v) => Value::from(text::hex64(v)),
            ValueRef::UInt(n) => Value::from(n),
            ValueRef::Int(n) => Value::from(n),
            ValueRef::Float(f) => Value::from(f),
            ValueRef::Bool(b) => Value::from(b),
            ValueRef::Strs(v) => v.iter().map(|s| Value::from(s.as_str())).collect(),
            ValueRef::HeaderValues(run) => {
                run.iter().map(|(_, v)| Value::from(v.as_str())).collect()
            }
            ValueRef::UInts(v) => v.iter().map(|n| Value::from(*n)).collect(),
        }
    }

    /// The strings of a text value (one for a string, each for an array).
    pub fn strings(self) -> Vec<String> {
        match self {
            ValueRef::Strs(v) => v.to_vec(),
            ValueRef::HeaderValues(run) => run.iter().map(|(_, v)| v.clone()).collect(),
            ValueRef::Str(s) => vec![s.to_string()],
            other => vec![other.to_json().to_string()],
        }
    }
}

impl AttrValue {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            AttrValue::Str(s) => ValueRef::Str(s),
            AttrValue::UInt(n) => ValueRef::UInt(*n),
            AttrValue::Int(n) => ValueRef::Int(*n),
            AttrValue::Bool(b) => ValueRef::Bool(*b),
            AttrValue::Strs(v) => ValueRef::Strs(v),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Hands out the protocol's attributes merged, in key order, with the fixed ones.
struct Walk<'a, F> {
    protocol: std::slice::Iter<'a, (&'static str, AttrValue)>,
    next: Option<&'a (&'static str, AttrValue)>,
    f: F,
}

impl<'a, F: FnMut(Key<'_>, ValueRef<'_>)> Walk<'a, F> {
    fn emit(&mut self, key: Key<'_>, value: ValueRef<'_>) {
        while let Some((k, v)) = self.next {
            if Key::Fixed(k).cmp_text(&key) != Ordering::Less {
                break;
            }
            (self.f)(Key::Fixed(k), v.as_ref());
            self.next = self.protocol.next();
        }
        (self.f)(key, value);
    }

    fn rest(&mut self) {
        while let Some((k, v)) = self.next {
            (self.f)(Key::Fixed(k), v.as_ref());
            self.next = self.protocol.next();
        }
    }

    fn headers(&mut self, prefix: &'static str, message: &'a Message) {
        let mut rest = message.headers.as_slice();
        while let Some((name, _)) = rest.first() {
            let run = rest.iter().take_while(|(n, _)| n == name).count();
            self.emit(
                Key::Header(prefix, name),
                ValueRef::HeaderValues(&rest[..run]),
            );
            rest = &rest[run..];
        }
    }
}

impl Attributes {
    /// Every attribute in key order (the keys' byte order, as the JSON-lines schema writes
    /// them).
    pub fn for_each(&self, f: impl FnMut(Key<'_>, ValueRef<'_>)) {
        let mut protocol = self.protocol.iter();
        let next = protocol.next();
        let mut w = Walk { protocol, next, f };
        w.emit(
            Key::Fixed("client.address"),
            ValueRef::Ip(self.client_address),
        );
        w.emit(
            Key::Fixed("client.port"),
            ValueRef::UInt(self.client_port.into()),
        );
        if let Some(e) = &self.error_type {
            w.emit(Key::Fixed("error.type"), ValueRef::Str(e));
        }
        let http = self.http.as_deref();
        if let Some(req) = http.and_then(|h| h.request.as_ref()) {
            w.emit(
                Key::Fixed("http.request.body.size"),
                ValueRef::UInt(req.body_size),
            );
            w.headers("http.request.header.", req);
        }
        if let Some(m) = http.and_then(|h| h.method.as_deref()) {
            w.emit(Key::Fixed("http.request.method"), ValueRef::Str(m));
        }
        if let Some(resp) = http.and_then(|h| h.response.as_ref()) {
            w.emit(
                Key::Fixed("http.response.body.size"),
                ValueRef::UInt(resp.body_size),
            );
            w.headers("http.response.header.", resp);
        }
        if let Some(s) = http.and_then(|h| h.status) {
            w.emit(
                Key::Fixed("http.response.status_code"),
                ValueRef::UInt(s.into()),
            );
        }
        if let Some(r) = http.and_then(|h| h.route.as_deref()) {
            w.emit(Key::Fixed("http.route"), ValueRef::Str(r));
        }
        if let Some(v) = http.and_then(|h| h.version) {
            w.emit(Key::Fixed("network.protocol.version"), ValueRef::Str(v));
        }
        let grpc = self.grpc.as_deref();
        if let Some(g) = grpc {
            Self::rpc(&mut w, g);
        }
        match &self.server_address {
            Address::Ip(ip) => w.emit(Key::Fixed("server.address"), ValueRef::Ip(*ip)),
            Address::Name(n) => w.emit(Key::Fixed("server.address"), ValueRef::Str(n)),
        }
        w.emit(
            Key::Fixed("server.port"),
            ValueRef::UInt(self.server_port.into()),
        );
        w.emit(
            Key::Fixed("tapspan.exchange_id"),
            ValueRef::Hex64(self.exchange_id),
        );
        self.tap_part(&mut w, grpc);
        if let Some(p) = http.and_then(|h| h.path.as_deref()) {
            w.emit(Key::Fixed("url.path"), ValueRef::Str(p));
        }
        if let Some(q) = http.and_then(|h| h.query.as_deref()) {
            w.emit(Key::Fixed("url.query"), ValueRef::Str(q));
        }
        if let Some(ua) = http.and_then(|h| h.user_agent.as_deref()) {
            w.emit(Key::Fixed("user_agent.original"), ValueRef::Str(ua));
        }
        w.rest();
    }

    fn rpc<F: FnMut(Key<'_>, ValueRef<'_>)>(w: &mut Walk<'_, F>, g: &Grpc) {
        if let Some(code) = g.status {
            w.emit(
                Key::Fixed("rpc.grpc.status_code"),
                ValueRef::UInt(code.into()),
            );
        }
        if let Some(m) = g.method.as_deref() {
            w.emit(Key::Fixed("rpc.method"), ValueRef::Str(m));
        }
        if let Some(s) = g.service.as_deref() {
            w.emit(Key::Fixed("rpc.service"), ValueRef::Str(s));
        }
        w.emit(Key::Fixed("rpc.system"), ValueRef::Str("grpc"));
    }

    /// `tapspan.*` after the exchange id (which sorts first).
    fn tap_part<F: FnMut(Key<'_>, ValueRef<'_>)>(&self, w: &mut Walk<'_, F>, grpc: Option<&Grpc>) {
        let tap = &self.tap;
        if tap.gaps > 0 {
            w.emit(Key::Fixed("tapspan.gaps"), ValueRef::UInt(tap.gaps.into()));
        }
        if let Some(ns) = grpc.and_then(|g| g.first_message_ns) {
            w.emit(
                Key::Fixed("tapspan.grpc.first_message_ns"),
                ValueRef::UInt(ns),
            );
        }
        if let Some(n) = grpc.and_then(|g| g.request_messages) {
            w.emit(
                Key::Fixed("tapspan.grpc.request_messages"),
                ValueRef::UInt(n.into()),
            );
        }
        if let Some(n) = grpc.and_then(|g| g.response_messages) {
            w.emit(
                Key::Fixed("tapspan.grpc.response_messages"),
                ValueRef::UInt(n.into()),
            );
        }
        if !tap.headers_unknown.is_empty() {
            w.emit(
                Key::Fixed("tapspan.headers_unknown"),
                ValueRef::Strs(&tap.headers_unknown),
            );
        }
        if !tap.informational.is_empty() {
            w.emit(
                Key::Fixed("tapspan.informational_status_codes"),
                ValueRef::UInts(&tap.informational),
            );
        }
        if let Some((link, confidence)) = self.link {
            w.emit(Key::Fixed("tapspan.link"), ValueRef::Str(link.as_str()));
            w.emit(
                Key::Fixed("tapspan.link_confidence"),
                ValueRef::Float(confidence),
            );
        }
        if tap.truncated {
            w.emit(Key::Fixed("tapspan.truncated"), ValueRef::Bool(true));
        }
        if let Some(ns) = tap.ttfb_ns {
            w.emit(Key::Fixed("tapspan.ttfb_ns"), ValueRef::UInt(ns));
        }
    }

    /// All of them as a JSON object, as the JSON-lines schema writes them.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        self.for_each(|k, v| {
            map.insert(k.to_string_key(), v.to_json());
        });
        map
    }

    /// A protocol attribute of the decoder's own, by its key.
    pub fn protocol(&self, key: &str) -> Option<&AttrValue> {
        self.protocol
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The operation: an HTTP method, or a database call's `db.operation.name`.
    pub fn operation(&self) -> Option<&str> {
        let http = self.http.as_deref().and_then(|h| h.method.as_deref());
        http.or_else(|| self.protocol("db.operation.name")?.as_str())
    }

    /// What the operation acted on: an HTTP route, or a database call's statement template.
    pub fn target_template(&self) -> Option<&str> {
        let http = self.http.as_deref().and_then(|h| h.route.as_deref());
        http.or_else(|| self.protocol("db.query.text")?.as_str())
    }

    /// `http.response.status_code`.
    pub fn http_status(&self) -> Option<u16> {
        self.http.as_deref().and_then(|h| h.status)
    }

    /// `server.address` as text.
    pub fn server_address_text(&self) -> String {
        match &self.server_address {
            Address::Ip(ip) => text::ip(ip),
            Address::Name(n) => n.clone(),
        }
    }
}

/// `Span::attributes` as the JSON object of the schema.
pub fn serialize<S: serde::Serializer>(
    attributes: &std::sync::Arc<Attributes>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&attributes.to_json(), serializer)
}

impl Attributes {
    /// One of everything, for tests.
    #[cfg(test)]
    pub fn example() -> Attributes {
        let headers = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), format!("v-{n}")))
                .collect::<Vec<_>>()
        };
        Attributes {
            server_address: Address::Ip("10.0.0.2".parse().unwrap()),
            server_port: 80,
            client_address: "10.0.0.1".parse().unwrap(),
            client_port: 40000,
            exchange_id: 7,
            link: Some((Link::Nesting, 0.5)),
            error_type: Some("gap".into()),
            http: Some(Box::new(Http {
                method: Some("GET".into()),
                path: Some("/a".into()),
                query: Some("q=1".into()),
                route: Some("/a".into()),
                status: Some(200),
                version: Some("1.1"),
                user_agent: Some("curl".into()),
                request: Some(Message::new(&headers(&["x-b", "a", "x-b", "zz"]), 3)),
                response: Some(Message::new(&headers(&["server", "content-type"]), 4)),
            })),
            grpc: Some(Box::new(Grpc {
                service: Some("s".into()),
                method: Some("m".into()),
                status: Some(0),
                request_messages: Some(1),
                response_messages: Some(2),
                first_message_ns: Some(3),
            })),
            tap: Tap {
                ttfb_ns: Some(1),
                informational: vec![100],
                gaps: 1,
                truncated: true,
                headers_unknown: vec!["x".into()],
            },
            protocol: vec![
                ("db.system.name", "redis".into()),
                ("network.transport", "udp".into()),
                ("tapspan.dns.answers", 2u64.into()),
                ("tls.cipher", "x".into()),
            ],
            args_hash: Some(7),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich() -> Attributes {
        Attributes::example()
    }

    #[test]
    fn every_attribute_comes_once_in_key_order() {
        let mut keys = Vec::new();
        rich().for_each(|k, _| keys.push(k.to_string_key()));
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 38, "{keys:?}");
    }

    #[test]
    fn a_header_s_values_stay_in_order_under_one_key() {
        let json = rich().to_json();
        assert_eq!(
            json["http.request.header.x-b"],
            serde_json::json!(["v-x-b", "v-x-b"])
        );
        assert_eq!(json["http.request.header.a"], serde_json::json!(["v-a"]));
        let m = Message::new(
            &[
                ("b".into(), "1".into()),
                ("a".into(), "2".into()),
                ("b".into(), "3".into()),
            ],
            0,
        );
        assert_eq!(m.values("b").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(m.values("c").count(), 0);
    }
}
