//! The decoder's other output: one UDP datagram with its addresses.
//!
//! No checksum is verified (a tap often sees checksums a NIC fills in later). The payload is cut
//! to the UDP length; a datagram whose UDP length contradicts its IP length is never returned
//! (the decoder counts it `malformed`).

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::Timestamp;

/// One UDP datagram. The payload borrows the frame, except after IP defragmentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'b> {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Captured payload bytes (all of them unless `snapped`).
    pub payload: Cow<'b, [u8]>,
    /// Payload bytes the capture's snap length cut off after `payload`.
    pub snapped: u32,
}

impl UdpDatagram<'_> {
    /// The same datagram owning its payload.
    pub fn into_owned(self) -> UdpDatagram<'static> {
        UdpDatagram {
            payload: Cow::Owned(self.payload.into_owned()),
            ..self
        }
    }
}
