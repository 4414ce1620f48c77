//! tapspan: a passive tracer. Packets → TCP streams → exchanges (HTTP, Redis, PostgreSQL, TLS
//! handshakes) → spans.
//!
//! Stages (each a plain type in, plain type out, with `push(input, out)` and `finish(out)`):
//! [`reassembly`] turns TCP segments into ordered stream events, [`protocols`] decode them
//! into exchanges (HTTP/1.x frames and pairs messages), [`span`] turns exchanges into spans, [`export`] writes them.
//! No stage reads the clock: time is the capture's.
//!
//! Unsafe code is denied crate-wide; [`privileges`] alone is allowed it (calls into libc with
//! no safe std wrapper), and `.ci/run` fails if any other module allows it.
#![deny(unsafe_code)]

pub mod analysis;
pub mod causality;
pub mod counters;
pub mod export;
pub mod ids;
pub mod keyhash;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod protocols;
// unsafe: set*id, getpwnam_r/getgrouplist, prctl and capget/capset have no safe wrapper in std.
#[cfg(feature = "live")]
#[allow(unsafe_code)]
pub mod privileges;
pub mod reassembly;
pub mod redact;
pub mod route;
pub mod run;
pub mod sampling;
pub mod span;
pub mod terminal;
pub mod text;
pub mod units;
