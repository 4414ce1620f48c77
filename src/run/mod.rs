//! Drivers of the spine: replay of capture files, and live capture (capture thread, shards,
//! stats, metrics). Each feeds [`crate::pipeline`] frames or segments and capture time; none
//! wires the stages itself.

pub mod clock;
pub mod live;
pub mod replay;
