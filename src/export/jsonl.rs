//! JSON lines: one span object per line, the schema of DESIGN.md ([`super::span_json`]). A
//! reader that goes away (broken pipe, e.g. `| head`) ends the output quietly; that is success,
//! not an error.
//!
//! Lines are encoded and written on a thread of their own, so that a busy capture's spans are
//! turned into text beside the work that finds them, not after it. Spans cross to it in
//! batches over a bounded channel (memory stays bounded: a writer that falls behind holds the
//! driver back); their order is kept.
//!
//! The output streams: lines are buffered for throughput, but none waits longer than
//! [`MAX_UNFLUSHED`] once the driver calls [`JsonlWriter::flush_if_due`] at least that often
//! (live capture does, on its 100 ms tick), so a span leaves at most `--trace-window` + 1 s
//! after its exchange ended (DESIGN.md "Causality").

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::span_json::SpanJsonWriter;
use crate::span::Span;

/// How long a written line may wait in the buffer.
pub const MAX_UNFLUSHED: Duration = Duration::from_millis(500);
/// Spans handed to the writing thread at once.
const BATCH: usize = 256;
/// Batches that may wait for the writing thread.
const BATCHES_QUEUED: usize = 4;
/// Written batches that may wait to be freed by the thread that made their spans.
const BATCHES_RETURNED: usize = 4;

enum Request {
    Spans(Vec<Span>),
    /// Flush, and say how writing has gone so far (when a sender is given).
    Flush(Option<SyncSender<io::Result<()>>>),
}

pub struct JsonlWriter {
    batch: Vec<Span>,
    to_writer: Option<SyncSender<Request>>,
    /// Batches written, handed back to be freed here, where their spans were made: freeing
    /// memory on another thread than the one that allocated it is the allocator's slow path,
    /// and the writing thread, which finishes last, took it for every string of every span.
    written_back: Receiver<Vec<Span>>,
    writer: Option<JoinHandle<()>>,
    pub written: u64,
    /// When the oldest span not yet flushed was written.
    unflushed_since: Option<Instant>,
}

impl JsonlWriter {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let (to_writer, requests) = sync_channel(BATCHES_QUEUED);
        let (give_back, written_back) = sync_channel(BATCHES_RETURNED);
        let writer = std::thread::Builder::new()
            .name("tapspan-jsonl".into())
            .spawn(move || write_lines(out, requests, give_back))
            .expect("the JSON lines thread starts");
        JsonlWriter {
            batch: Vec::with_capacity(BATCH),
            to_writer: Some(to_writer),
            written_back,
            writer: Some(writer),
            written: 0,
            unflushed_since: None,
        }
    }

    /// Queues `span`'s line. Write errors are reported by [`Self::flush`].
    pub fn write(&mut self, span: Span) -> io::Result<()> {
        self.batch.push(span);
        self.written += 1;
        self.unflushed_since.get_or_insert_with(Instant::now);
        if self.batch.len() >= BATCH {
            self.hand_over();
        }
        self.flush_if_due()
    }

    /// Flushes when a line has waited [`MAX_UNFLUSHED`] or longer.
    pub fn flush_if_due(&mut self) -> io::Result<()> {
        match self.unflushed_since {
            Some(since) if since.elapsed() >= MAX_UNFLUSHED => {
                self.unflushed_since = None;
                self.hand_over();
                self.request(Request::Flush(None));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes out every line, and says whether all were written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.unflushed_since = None;
        self.hand_over();
        let (answer, outcome) = sync_channel(1);
        self.request(Request::Flush(Some(answer)));
        outcome
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the JSON lines writer stopped")))
    }

    fn hand_over(&mut self) {
        if !self.batch.is_empty() {
            // A written batch, emptied here, holds the next one.
            let next = match self.written_back.try_recv() {
                Ok(mut written) => {
                    written.clear();
                    written
                }
                Err(_) => Vec::with_capacity(BATCH),
            };
            let batch = std::mem::replace(&mut self.batch, next);
            self.request(Request::Spans(batch));
        }
    }

    fn request(&mut self, request: Request) {
        if let Some(to_writer) = &self.to_writer {
            // The writer only goes away by panicking; `flush` then reports it.
            let _ = to_writer.send(request);
        }
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        self.hand_over();
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A reader gone (broken pipe) closes the output quietly; any other error is kept to be
/// reported, and nothing more is written.
fn absorb(result: io::Result<()>, closed: &mut bool, error: &mut Option<io::Error>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => *closed = true,
        Err(e) => *error = Some(e),
    }
}

/// Lines are written out once this many bytes of them wait.
const LINES_WRITTEN_AT: usize = 256 << 10;
/// Room past [`LINES_WRITTEN_AT`] for the line that reaches it (most lines are about 1 KiB).
const LINE_ROOM: usize = 4 << 10;

/// The writing thread's buffer: each span's line is encoded straight into it, and it is
/// written out in whole lines.
struct Lines {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl Lines {
    fn push(&mut self, json: &mut SpanJsonWriter, span: &Span) -> io::Result<()> {
        json.write(span, &mut self.buf);
        self.buf.push(b'\n');
        if self.buf.len() >= LINES_WRITTEN_AT {
            return self.write_out();
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.out.write_all(&self.buf);
        self.buf.clear();
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.out.flush()
    }
}

/// The writing thread: lines out in the order their spans came, until the driver hangs up.
/// Each batch written goes back through `give_back` (or is freed here when the driver has not
/// taken the last ones yet).
fn write_lines(
    out: Box<dyn Write + Send>,
    requests: Receiver<Request>,
    give_back: SyncSender<Vec<Span>>,
) {
    let mut lines = Lines {
        out,
        buf: Vec::with_capacity(LINES_WRITTEN_AT + LINE_ROOM),
    };
    let mut json = SpanJsonWriter::default();
    let mut closed = false;
    let mut error: Option<io::Error> = None;
    // Before any span comes: an output that is emptied when first flushed (the replaced file
    // of `--output`) is emptied now, while this thread has nothing else to do.
    absorb(lines.flush(), &mut closed, &mut error);
    for request in requests {
        match request {
            Request::Spans(spans) => {
                for span in &spans {
                    if closed || error.is_some() {
                        break;
                    }
                    absorb(lines.push(&mut json, span), &mut closed, &mut error);
                }
                // Never waits: a batch the driver has no room for is freed here.
                let _ = give_back.try_send(spans);
            }
            Request::Flush(answer) => {
                if !closed && error.is_none() {
                    absorb(lines.flush(), &mut closed, &mut error);
                }
                if let Some(answer) = answer {
                    let outcome = match &error {
                        None => Ok(()),
                        Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    let _ = answer.send(outcome);
                }
            }
        }
    }
    if !closed && error.is_none() {
        let _ = lines.flush();
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

    /// Fails every write, as a full disk does.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("no space left"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("no space left"))
        }
    }

    /// Takes `room` bytes, then its reader is gone (`| head`): counts the bytes taken and the
    /// writes tried after that.
    struct GoneAfter {
        room: usize,
        seen: Arc<Mutex<(usize, usize)>>,
    }

    impl Write for GoneAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut seen = self.seen.lock().unwrap();
            if seen.0 == self.room {
                seen.1 += 1;
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room - seen.0);
            seen.0 += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn span(n: u64) -> Span {
        Span {
            trace_id: "0".repeat(32),
            span_id: format!("{n:016x}"),
            parent_span_id: None,
            kind: crate::span::SpanKind::Client,
            name: "GET /".into(),
            service: "a".into(),
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: crate::span::SpanStatus::Unset,
            attributes: crate::span::Attributes::example().into(),
            events: Vec::new(),
            trace_state: None,
        }
    }

    fn text(out: &Shared) -> String {
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_line_waits_in_the_buffer_no_longer_than_the_bound() {
        let out = Shared::default();
        let mut w = JsonlWriter::new(Box::new(out.clone()));
        w.write(span(0)).unwrap();
        w.flush_if_due().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(text(&out).is_empty(), "buffered at first");
        std::thread::sleep(MAX_UNFLUSHED);
        w.flush_if_due().unwrap();
        // The writing thread flushes as soon as it is asked.
        let asked = Instant::now();
        while text(&out).is_empty() && asked.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(text(&out).lines().count(), 1, "flushed once due");
    }

    #[test]
    fn every_line_is_written_in_order() {
        let out = Shared::default();
        let mut w = JsonlWriter::new(Box::new(out.clone()));
        let n = 3 * BATCH as u64 + 7;
        for i in 0..n {
            w.write(span(i)).unwrap();
        }
        w.flush().unwrap();
        let ids: Vec<u64> = text(&out)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                u64::from_str_radix(v["span_id"].as_str().unwrap(), 16).unwrap()
            })
            .collect();
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
        assert_eq!(w.written, n);
    }

    #[test]
    fn a_write_error_is_reported_by_flush() {
        let mut w = JsonlWriter::new(Box::new(Full));
        // More than the buffer holds, so that a write reaches the failing writer.
        for i in 0..2000 {
            w.write(span(i)).unwrap();
        }
        let e = w.flush().unwrap_err();
        assert!(e.to_string().contains("no space left"), "{e}");
    }

    #[test]
    fn a_reader_gone_ends_the_output_quietly_and_nothing_more_is_tried() {
        let seen = Arc::new(Mutex::new((0, 0)));
        let out = GoneAfter {
            room: 1000,
            seen: seen.clone(),
        };
        let mut w = JsonlWriter::new(Box::new(out));
        // More than the buffer holds, so that writes reach the reader long gone.
        for i in 0..2000 {
            w.write(span(i)).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let (taken, tried_after) = *seen.lock().unwrap();
        assert_eq!(taken, 1000);
        assert_eq!(
            tried_after, 1,
            "the write that found the reader gone, and no other"
        );
    }
}
