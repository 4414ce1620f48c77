//! The decoder's output: one TCP segment with its directed flow key.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::Timestamp;

/// A directed TCP flow: `src` sent this segment to `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    pub fn new(src_ip: IpAddr, src_port: u16, dst_ip: IpAddr, dst_port: u16) -> Self {
        FlowKey {
            src: SocketAddr::new(src_ip, src_port),
            dst: SocketAddr::new(dst_ip, dst_port),
        }
    }
    /// The same flow seen from the other side.
    pub fn reversed(self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// TCP header flags (the low 8 bits of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment. The payload borrows the frame, except after IP defragmentation.
#[derive(Clone, Debug)]
pub struct TcpSegment<'b> {
    pub ts: Timestamp,
    pub flow: FlowKey,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Captured payload bytes (all of them unless `snapped`).
    pub payload: Cow<'b, [u8]>,
    /// Payload bytes sent after `payload` that the capture's snap length cut off: the segment
    /// carried `payload.len() + snapped` bytes of its stream (the count comes from the IP
    /// length, so it is exact).
    pub snapped: u32,
}
