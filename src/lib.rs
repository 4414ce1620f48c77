//! tapspan: a passive tracer. Packets → TCP streams → HTTP exchanges → spans.
//!
//! Stages (each a plain type in, plain type out, with `push(input, out)` and `finish(out)`):
//! [`reassembly`] turns TCP segments into ordered stream events, [`http`] frames and pairs
//! HTTP/1.x messages into exchanges, [`span`] turns exchanges into spans, [`export`] writes them.
//! No stage reads the clock: time is the capture's.

pub mod analyze;
pub mod causality;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod export;
pub mod http;
pub mod ids;
pub mod limits;
pub mod live;
pub mod output;
pub mod pipeline;
#[cfg(feature = "live")]
pub mod privileges;
pub mod reassembly;
pub mod report;
pub mod route;
pub mod span;
pub mod summary;
pub mod terminal;
