//! A span as one line of JSON, the schema of DESIGN.md, written directly: byte for byte what
//! `serde_json` writes for a [`Span`] (a test holds that), in a fraction of the time.

use std::net::IpAddr;
use std::sync::Arc;

use crate::span::attributes::{Key, ValueRef};
use crate::span::{Attributes, Span, SpanKind, SpanStatus};
use crate::text::{self, Decimal};

/// `span` as one JSON object, byte for byte what `serde_json::to_writer` writes for it (a test
/// holds that), written directly: the generic serializer spent most of its time escaping
/// strings a byte at a time, and nearly every string here needs no escape at all.
pub fn write_span_json(span: &Span, out: &mut Vec<u8>) {
    write_up_to_attributes(span, out);
    write_attributes(&span.attributes, out);
    write_after_attributes(span, out);
}

/// Writes spans as [`write_span_json`] does, and remembers the last span's attributes as JSON:
/// an exchange's client and server spans share one [`Attributes`] (the bulk of each line) and
/// come one after the other, so the second copies the first's bytes instead of walking them.
#[derive(Default)]
pub struct SpanJsonWriter {
    /// The attributes last written, held so that their address cannot be reused by others.
    last: Option<Arc<Attributes>>,
    last_json: Vec<u8>,
}

impl SpanJsonWriter {
    pub fn write(&mut self, span: &Span, out: &mut Vec<u8>) {
        write_up_to_attributes(span, out);
        let same = self
            .last
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, &span.attributes));
        if !same {
            self.last_json.clear();
            write_attributes(&span.attributes, &mut self.last_json);
            self.last = Some(Arc::clone(&span.attributes));
        }
        out.extend_from_slice(&self.last_json);
        write_after_attributes(span, out);
    }
}

fn write_up_to_attributes(span: &Span, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"trace_id\":");
    write_str(&span.trace_id, out);
    out.extend_from_slice(b",\"span_id\":");
    write_str(&span.span_id, out);
    out.extend_from_slice(b",\"parent_span_id\":");
    match &span.parent_span_id {
        Some(p) => write_str(p, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(match span.kind {
        SpanKind::Client => b",\"kind\":\"client\",\"name\":",
        SpanKind::Server => b",\"kind\":\"server\",\"name\":",
    });
    write_str(&span.name, out);
    out.extend_from_slice(b",\"service\":");
    write_str(&span.service, out);
    out.extend_from_slice(b",\"start_unix_nano\":");
    write_u64(span.start_unix_nano, out);
    out.extend_from_slice(b",\"end_unix_nano\":");
    write_u64(span.end_unix_nano, out);
    out.extend_from_slice(match span.status {
        SpanStatus::Unset => b",\"status\":\"unset\",\"attributes\":",
        SpanStatus::Error => b",\"status\":\"error\",\"attributes\":",
    });
}

fn write_after_attributes(span: &Span, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"events\":[");
    for (i, event) in span.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_str(event.name, out);
        out.extend_from_slice(b",\"time_unix_nano\":");
        write_u64(event.time_unix_nano, out);
        out.push(b'}');
    }
    out.push(b']');
    if let Some(state) = &span.trace_state {
        out.extend_from_slice(b",\"trace_state\":");
        write_str(state, out);
    }
    out.push(b'}');
}

fn write_attributes(attributes: &Attributes, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    attributes.for_each(|key, value| {
        if !first {
            out.push(b',');
        }
        first = false;
        match key {
            // The schema's own names, in the source (see `Key::Fixed`): nothing in them to
            // escape, so not looked through for it on every line.
            Key::Fixed(k) => {
                debug_assert!(!needs_escape(k.as_bytes()), "{k}");
                out.push(b'"');
                out.extend_from_slice(k.as_bytes());
                out.push(b'"');
            }
            Key::Header(prefix, name) if !needs_escape(name.as_bytes()) => {
                out.push(b'"');
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(name.as_bytes());
                out.push(b'"');
            }
            Key::Header(..) => write_str(&key.to_string_key(), out),
        }
        out.push(b':');
        write_value(value, out);
    });
    out.push(b'}');
}

fn write_value(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Str(s) => write_str(s, out),
        ValueRef::Ip(IpAddr::V4(v4)) => {
            out.push(b'"');
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(u64::from(*octet), out);
            }
            out.push(b'"');
        }
        ValueRef::Ip(ip) => write_str(&text::ip(&ip), out),
        ValueRef::Hex64(v) => {
            out.push(b'"');
            out.extend_from_slice(&text::hex64_bytes(v));
            out.push(b'"');
        }
        ValueRef::UInt(n) => write_u64(n, out),
        // Negative and fractional numbers: serde_json's own formatting (shortest round-trip
        // digits), which must not change.
        ValueRef::Int(n) => serde_json::to_writer(out, &n).expect("a number serialises"),
        ValueRef::Float(f) => serde_json::to_writer(out, &f).expect("a number serialises"),
        ValueRef::Bool(true) => out.extend_from_slice(b"true"),
        ValueRef::Bool(false) => out.extend_from_slice(b"false"),
        ValueRef::Strs(items) => write_array(items.iter().map(String::as_str), out),
        ValueRef::HeaderValues(run) => write_array(run.iter().map(|(_, v)| v.as_str()), out),
        ValueRef::UInts(items) => {
            out.push(b'[');
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_u64(u64::from(*n), out);
            }
            out.push(b']');
        }
    }
}

fn write_array<'a>(items: impl Iterator<Item = &'a str>, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(item, out);
    }
    out.push(b']');
}

fn write_u64(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(Decimal::of(n).as_bytes());
}

/// A JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped the way
/// serde_json escapes them; everything else, UTF-8 included, copied as it is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    serde_json::to_writer(out, s).expect("a string serialises");
}

/// Whether any byte of `bytes` is a control character, `"` or `\\`: eight bytes at a time, with
/// the classic test for a zero byte in a word (`(v - 0x01..) & !v & 0x80..` is non-zero exactly
/// when some byte of `v` is zero; with `0x20..` instead of `0x01..`, when some byte is below
/// 0x20).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let v = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let control = v.wrapping_sub(ONES * 0x20) & !v;
        let quote = (v ^ (ONES * b'"' as u64)).wrapping_sub(ONES) & !(v ^ (ONES * b'"' as u64));
        let slash = (v ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & !(v ^ (ONES * b'\\' as u64));
        if (control | quote | slash) & HIGHS != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            parent_span_id: None,
            kind: SpanKind::Client,
            name: "GET /".into(),
            service: "a".into(),
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: SpanStatus::Unset,
            attributes: Attributes::example().into(),
            events: Vec::new(),
            trace_state: None,
        }
    }

    #[test]
    fn spans_are_written_as_serde_writes_them() {
        let mut odd = span();
        odd.parent_span_id = Some("ab".repeat(8));
        odd.kind = SpanKind::Server;
        odd.status = SpanStatus::Error;
        odd.name = "GET /a\"b\\c\u{1}\n\t\u{7f}é→😀".into();
        odd.trace_state = Some("ot=th:8".into());
        odd.end_unix_nano = u64::MAX;
        odd.events.push(crate::span::SpanEvent {
            name: "request.end",
            time_unix_nano: 0,
        });
        odd.events.push(crate::span::SpanEvent {
            name: "response.start",
            time_unix_nano: 10,
        });
        let mut attributes = Attributes::example();
        attributes.link = Some((crate::span::Link::Nesting, 0.1));
        attributes.client_address = "::ffff:1.2.3.4".parse().unwrap();
        attributes.server_address = crate::span::Address::Name("h\u{0}\"".into());
        attributes.protocol = vec![
            ("a", "plain".into()),
            ("b", "\u{1f}\"".into()),
            ("c", vec!["x".to_string(), "y\r".to_string()].into()),
            ("d", 0u64.into()),
            ("e", (-7i64).into()),
            ("h", true.into()),
            ("i", false.into()),
            ("l", u64::MAX.into()),
            ("m", i64::MIN.into()),
        ];
        if let Some(http) = attributes.http.as_mut() {
            http.request = Some(crate::span::Message::new(
                &[
                    ("x\u{1}y".into(), "é→😀\n".into()),
                    ("a".into(), "b".into()),
                ],
                0,
            ));
        }
        odd.attributes = attributes.into();
        for s in [span(), odd] {
            let mut ours = Vec::new();
            write_span_json(&s, &mut ours);
            let theirs = serde_json::to_vec(&s).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn the_writer_reuses_shared_attributes_only() {
        let client = span();
        let mut server = span();
        server.kind = SpanKind::Server;
        server.attributes = Arc::clone(&client.attributes);
        let mut other = span();
        let mut changed = Attributes::example();
        changed.server_port = 1;
        other.attributes = changed.into();
        let mut writer = SpanJsonWriter::default();
        for s in [&client, &server, &other, &client] {
            let mut ours = Vec::new();
            writer.write(s, &mut ours);
            assert_eq!(ours, serde_json::to_vec(s).unwrap());
        }
    }

    #[test]
    fn escapes_are_found_at_every_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()), "{plain:?}");
            for at in 0..len {
                for odd in [0u8, 0x1f, b'"', b'\\'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = odd;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
                for fine in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = fine;
                    assert!(!needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
