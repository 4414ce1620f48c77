//! tapspan-capture: packet sources and decoding down to TCP segments.
//!
//! Contract: a [`source::FileSource`] yields [`RawFrame`]s (timestamp, link type, borrowed bytes,
//! byte offset in the file); a [`decode::Decoder`] turns one frame into at most one
//! [`TcpSegment`] or [`UdpDatagram`], unwrapping link layers, mirror tunnels and IP fragments on the way.
//! Nothing here panics on any byte sequence: a frame that does not decode is counted in
//! [`decode::DecodeStats`] and skipped, and a damaged file is reported with its byte offset.
//! Nothing here reads the clock: all time comes from the capture.
//!
//! Unsafe code is denied crate-wide; the libpcap source ([`source::live`], feature `live`)
//! alone is allowed it, and `.ci/run` fails if any other module allows it.
#![deny(unsafe_code)]

mod bytes;
pub mod decode;
pub mod defrag;
pub mod error;
pub mod ip;
pub mod link;
#[cfg(test)]
mod proptests;
pub mod source;
pub mod tcp;
#[cfg(any(test, feature = "testutil"))]
#[doc(hidden)]
pub mod testutil;
pub mod udp;
pub mod wifi;

pub use decode::{DecodeConfig, DecodeStats, Decoded, Decoder};
pub use error::CaptureError;
pub use source::{FileSource, PacketSource};
pub use tcp::{FlowKey, TcpFlags, TcpSegment};
pub use udp::UdpDatagram;

/// Capture timestamp in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    /// Nanoseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A link-layer header type, as numbered by tcpdump.org's LINKTYPE_ registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW: LinkType = LinkType(101);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const LOOP: LinkType = LinkType(108);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const NFLOG: LinkType = LinkType(239);
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured frame, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'b> {
    pub ts: Timestamp,
    pub link_type: LinkType,
    /// Captured bytes (may be shorter than `orig_len` when a snap length cut the frame).
    pub data: &'b [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Byte offset of this frame's record in its file.
    pub offset: u64,
}
