//! Span sinks. JSON lines is the reference format; OTLP and Zipkin come later behind one
//! delivery core.

pub mod jsonl;

pub use jsonl::JsonlWriter;
