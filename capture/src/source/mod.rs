//! Packet sources. `file` reads pcap and pcapng in pure Rust, streaming; `live` captures from an
//! interface through libpcap (feature `live`); `writer` writes pcap files in pure Rust.

pub mod file;
pub mod input;
// unsafe: libpcap's timestamp precision (not exported by the `pcap` crate) and poll(2) are
// foreign calls.
#[cfg(feature = "live")]
#[allow(unsafe_code)]
pub mod live;
mod pcapng;
pub mod writer;

pub use file::FileSource;
#[cfg(feature = "live")]
pub use live::{LiveConfig, LiveEvent, LiveSource};
pub use writer::PcapWriter;

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
