//! JSON lines: one span object per line, the schema of DESIGN.md. A reader that goes away
//! (broken pipe, e.g. `| head`) ends the output quietly; that is success, not an error.
//!
//! The output streams: lines are buffered for throughput, but none waits in the buffer longer
//! than [`MAX_UNFLUSHED`] once the driver calls [`JsonlWriter::flush_if_due`] at least that
//! often (live capture does, on its 100 ms tick), so a span leaves at most `--trace-window` +
//! 1 s after its exchange ended (DESIGN.md "Causality").

use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::span::{Span, SpanKind, SpanStatus};

pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write>>,
    line: Vec<u8>,
    closed: bool,
    pub written: u64,
    /// When the oldest line not yet flushed was written.
    unflushed_since: Option<Instant>,
}

/// How long a written line may wait in the buffer.
pub const MAX_UNFLUSHED: Duration = Duration::from_millis(500);

impl JsonlWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonlWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(1024),
            closed: false,
            written: 0,
            unflushed_since: None,
        }
    }

    pub fn write(&mut self, span: &Span) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.line.clear();
        write_span_json(span, &mut self.line);
        self.line.push(b'\n');
        let result = self.out.write_all(&self.line);
        self.written += 1;
        self.unflushed_since.get_or_insert_with(Instant::now);
        self.absorb_broken_pipe(result)?;
        self.flush_if_due()
    }

    /// Flushes when a line has waited [`MAX_UNFLUSHED`] or longer.
    pub fn flush_if_due(&mut self) -> io::Result<()> {
        match self.unflushed_since {
            Some(since) if since.elapsed() >= MAX_UNFLUSHED => self.flush(),
            _ => Ok(()),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.unflushed_since = None;
        let result = self.out.flush();
        self.absorb_broken_pipe(result)
    }

    fn absorb_broken_pipe(&mut self, result: io::Result<()>) -> io::Result<()> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// `span` as one JSON object, byte for byte what `serde_json::to_writer` writes for it (a test
/// holds that), written directly: the generic serializer spent most of its time escaping
/// strings a byte at a time, and nearly every string here needs no escape at all.
pub fn write_span_json(span: &Span, out: &mut Vec<u8>) {
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
    write_object(&span.attributes, out);
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

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(s) => write_str(s, out),
        Value::Number(n) => match n.as_u64() {
            Some(u) => write_u64(u, out),
            // Negative and fractional numbers: serde_json's own formatting (shortest
            // round-trip digits), which must not change.
            None => serde_json::to_writer(out, n).expect("a number serialises"),
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read while the JSON lines writer still holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn span() -> Span {
        Span {
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            parent_span_id: None,
            kind: crate::span::SpanKind::Client,
            name: "GET /".into(),
            service: "a".into(),
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: crate::span::SpanStatus::Unset,
            attributes: serde_json::Map::new().into(),
            events: Vec::new(),
            trace_state: None,
        }
    }

    #[test]
    fn spans_are_written_as_serde_writes_them() {
        let mut odd = span();
        odd.parent_span_id = Some("ab".repeat(8));
        odd.kind = crate::span::SpanKind::Server;
        odd.status = crate::span::SpanStatus::Error;
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
        let attributes = serde_json::json!({
            "a": "plain", "b\u{0}": "\u{1f}\"", "c": [ "x", "y\r" ], "d": 0, "e": -7,
            "f": 0.25, "g": 1e300, "h": true, "i": false, "j": null, "k": { "z": [1, 2.5] },
            "l": u64::MAX, "m": i64::MIN, "n": 0.1
        });
        odd.attributes = attributes.as_object().unwrap().clone().into();
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

    #[test]
    fn a_line_waits_in_the_buffer_no_longer_than_the_bound() {
        let out = Shared::default();
        let mut w = JsonlWriter::new(Box::new(out.clone()));
        w.write(&span()).unwrap();
        w.flush_if_due().unwrap();
        assert!(out.0.lock().unwrap().is_empty(), "buffered at first");
        std::thread::sleep(MAX_UNFLUSHED);
        w.flush_if_due().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "flushed once due: {text}");
    }
}
