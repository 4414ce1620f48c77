//! JSON lines: one span object per line, the schema of DESIGN.md. A reader that goes away
//! (broken pipe, e.g. `| head`) ends the output quietly; that is success, not an error.
//!
//! The output streams: lines are buffered for throughput, but none waits in the buffer longer
//! than [`MAX_UNFLUSHED`] once the driver calls [`JsonlWriter::flush_if_due`] at least that
//! often (live capture does, on its 100 ms tick), so a span leaves at most `--trace-window` +
//! 1 s after its exchange ended (DESIGN.md "Causality").

use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use crate::span::Span;

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
        serde_json::to_writer(&mut self.line, span).map_err(io::Error::other)?;
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
            attributes: serde_json::Map::new(),
            events: Vec::new(),
            trace_state: None,
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
