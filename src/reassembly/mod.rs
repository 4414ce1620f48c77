//! TCP reassembly: segments of many connections in, ordered per-direction stream events out.
//!
//! See [`half_stream`] for the retransmission/overlap/hole policy and [`conn_table`] for
//! connection lifetime (handshake or mid-stream pickup, FIN/RST, idle expiry by capture time,
//! eviction at the connection cap).
//!
//! Reassembly knows no protocol: who is client and who is server, when no handshake says it,
//! comes from [`RoleHints`] that the protocol seam (`crate::protocols::role_hints`) supplies.

pub mod conn_table;
pub mod half_stream;
pub mod seq;

use std::net::SocketAddr;

use tapspan_capture::Timestamp;

pub use conn_table::{Reassembler, ReassemblyConfig, ReassemblyStats};

/// Which end of a connection sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// How to tell client from server on a connection picked up without its handshake. Supplied
/// by the protocols above reassembly, as plain functions so the table stays protocol-free.
#[derive(Clone, Copy, Debug)]
pub struct RoleHints {
    /// A port some protocol's servers conventionally listen on (it beats the well-known range).
    pub is_server_port: fn(u16) -> bool,
    /// Who sent a connection's first payload, if its bytes say so (a request or a response).
    pub first_payload: fn(&[u8]) -> Option<Role>,
}

impl Default for RoleHints {
    /// No protocol knowledge: roles come from the port ranges alone.
    fn default() -> Self {
        RoleHints {
            is_server_port: |_| false,
            first_payload: |_| None,
        }
    }
}

/// Identifies one connection for its lifetime in the table (a reused 4-tuple gets a new id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenHow {
    /// We saw the SYN: roles are certain.
    Handshake,
    /// Picked up mid-stream: roles guessed from ports and the first payload.
    Midstream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Fin,
    Rst,
    Idle,
    Evicted,
    CaptureEnd,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::Rst => "connection_reset",
            CloseReason::Idle => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::CaptureEnd => "capture_ended",
        }
    }
}

/// Output of reassembly. `Data` borrows the packet (or the hold queue) for the call only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    Open {
        conn: ConnId,
        client: SocketAddr,
        server: SocketAddr,
        how: OpenHow,
        ts: Timestamp,
    },
    Data {
        conn: ConnId,
        dir: Direction,
        /// Stream offset of `bytes[0]` in this direction.
        offset: u64,
        /// Absolute TCP sequence number of `bytes[0]`.
        seq: u32,
        ts: Timestamp,
        bytes: &'a [u8],
    },
    /// Bytes the capture never delivered; what follows starts at `offset + len`.
    Gap {
        conn: ConnId,
        dir: Direction,
        offset: u64,
        len: u64,
        /// The bytes were sent in a segment that was captured, and the capture's snap length cut
        /// them off its end (`len` is exact, and `ts` is that segment's); else the capture
        /// missed them (a lost segment).
        snapped: bool,
        ts: Timestamp,
    },
    /// This direction ended with a FIN (all its bytes were delivered).
    HalfClose {
        conn: ConnId,
        dir: Direction,
        ts: Timestamp,
    },
    Close {
        conn: ConnId,
        why: CloseReason,
        ts: Timestamp,
    },
}
