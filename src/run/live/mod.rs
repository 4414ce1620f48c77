//! Live capture at sustained load: a sharded pipeline with bounded queues, its counters, and a
//! Prometheus endpoint. Pure Rust (the libpcap source is in `tapspan-capture`, feature `live`),
//! so the engine is tested on capture files without a network.
//!
//! Threads: the capture thread reads packets, keeps the `--write-pcap` copy and routes each frame
//! to a worker by connection ([`shard`]); each worker runs a whole [`crate::pipeline::Pipeline`]
//! for its shard ([`engine`]); the caller's thread turns exchanges into spans and feeds the
//! outputs; [`metrics`] answers scrapes. Counters live in [`stats::Shared`].

pub mod engine;
pub mod metrics;
pub mod shard;
pub mod stats;
