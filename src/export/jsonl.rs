//! JSON lines: one span object per line, the schema of DESIGN.md. A reader that goes away
//! (broken pipe, e.g. `| head`) ends the output quietly; that is success, not an error.

use std::io::{self, BufWriter, Write};

use crate::span::Span;

pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write>>,
    line: Vec<u8>,
    closed: bool,
    pub written: u64,
}

impl JsonlWriter {
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonlWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(1024),
            closed: false,
            written: 0,
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
        self.absorb_broken_pipe(result)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
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
