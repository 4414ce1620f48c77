//! Packet sources. `file` reads pcap and pcapng in pure Rust, streaming.

pub mod file;
mod pcapng;

pub use file::FileSource;

use crate::{CaptureError, RawFrame};

/// Anything that yields captured frames in capture order.
pub trait PacketSource {
    /// The next frame, `Ok(None)` at a clean end, `Err` (with byte offset) for a damaged file.
    /// After an `Err` the source yields `Ok(None)`.
    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, CaptureError>;
    /// Bytes of the input consumed so far (for progress reporting).
    fn position(&self) -> u64;
    /// Total input length, when known.
    fn total_len(&self) -> Option<u64>;
    /// A name for messages: the file path.
    fn name(&self) -> &str;
}
