//! Where spans go: JSON lines (the reference format), the `--summary` table, and any exporter
//! sinks, fed one span at a time. Shared by every command that produces spans.

use std::fs::File;
use std::io::{self, Write};

use anyhow::Context;

use crate::cli::OutputArgs;
use crate::export::{JsonlWriter, SinkReport, SpanSink};
use crate::pipeline::PipelineStats;
use crate::span::Span;
use crate::summary::Summary;

pub struct Outputs {
    jsonl: JsonlWriter,
    summary: Option<Summary>,
    sinks: Vec<Box<dyn SpanSink>>,
    write_error: Option<io::Error>,
}

impl Outputs {
    pub fn open(args: &OutputArgs) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = if args.output == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(
                File::create(&args.output)
                    .with_context(|| format!("cannot create output file {}", args.output))?,
            )
        };
        Ok(Outputs {
            jsonl: JsonlWriter::new(out),
            summary: args.summary.then(Summary::default),
            sinks: Vec::new(),
            write_error: None,
        })
    }

    /// Add an exporter; it gets every span after this call.
    pub fn add_sink(&mut self, sink: Box<dyn SpanSink>) {
        self.sinks.push(sink);
    }

    pub fn send(&mut self, span: &Span) {
        if let Some(s) = &mut self.summary {
            s.add(span);
        }
        for sink in &mut self.sinks {
            sink.send(span);
        }
        if self.write_error.is_none() {
            if let Err(e) = self.jsonl.write(span) {
                self.write_error = Some(e);
            }
        }
    }

    /// Flush everything; print the summary (with the pipeline's counters) when asked.
    pub fn finish(mut self, stats: &PipelineStats) -> anyhow::Result<()> {
        self.jsonl.flush().context("writing spans")?;
        if let Some(e) = self.write_error.take() {
            return Err(e).context("writing spans");
        }
        let reports: Vec<SinkReport> = self.sinks.into_iter().map(|s| s.close()).collect();
        if let Some(summary) = &self.summary {
            eprint!("{}", summary.render());
            eprint!(
                "{}",
                crate::summary::render_counters(stats, self.jsonl.written)
            );
            for r in &reports {
                eprintln!("{r}");
            }
        } else {
            for r in reports.iter().filter(|r| r.dropped > 0) {
                eprintln!("tapspan: {r}");
            }
        }
        Ok(())
    }
}
