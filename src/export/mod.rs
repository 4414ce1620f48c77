//! Span sinks. JSON lines is the reference format; exporters implement [`SpanSink`] and are fed
//! every span; each reports what it delivered and what it dropped, and why.
//!
//! Network exporters ([`otlp`]: OTLP over gRPC and HTTP/protobuf, [`zipkin`]: Zipkin v2 JSON)
//! share one delivery core, [`delivery`]: bounded queue, batches by count/bytes/age, retries by
//! policy, a shutdown deadline, and every lost span counted with its reason.

pub mod delivery;
mod http1;
pub mod jsonl;
pub mod otlp;
pub mod otlp_metrics;
pub mod span_json;
pub mod zipkin;

use std::fmt;

pub use jsonl::JsonlWriter;

use crate::span::Span;

/// Check an exporter URL (`http://host[:port][/path]`) for the command line.
pub fn check_url(url: &str) -> Result<String, String> {
    http1::HttpUrl::parse(url, "/").map(|_| url.to_string())
}

/// A destination for spans. `send` never blocks for long and never fails: a sink that cannot
/// deliver counts the loss and says so in its report.
pub trait SpanSink: Send {
    fn send(&mut self, span: &Span);
    /// Deliver what is queued (within the sink's deadline) and report.
    fn close(self: Box<Self>) -> SinkReport;
}

/// What a sink did, for the summary and for the exit message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub name: String,
    pub delivered: u64,
    pub dropped: u64,
    /// Why spans were dropped, with counts, e.g. "queue full: 12".
    pub drop_reasons: Vec<(String, u64)>,
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} spans delivered, {} dropped",
            self.name, self.delivered, self.dropped
        )?;
        for (why, n) in &self.drop_reasons {
            write!(f, "; {why}: {n}")?;
        }
        Ok(())
    }
}
