//! HTTP/2 (RFC 9113) and gRPC over it: one connection's two byte streams in, one
//! [`H2Exchange`] per stream out. [`Http2Conn`] is the pure decoder of one connection: the
//! caller feeds each direction's bytes in capture order ([`Http2Conn::push_at`]), says where
//! bytes were lost ([`Http2Conn::gap`]) and when the connection ended ([`Http2Conn::finish`]).
//! [`decoder`] is its side of the protocol seam, and [`to_exchange`] makes each stream the
//! pipeline's exchange (so a client and a server span).
//!
//! Claimed by content ([`decoder::claims_bytes`]): the client preface (prior knowledge, h2c),
//! an HTTP/1.1 request with `Upgrade: h2c` (answered 101, its request becomes stream 1), or
//! frames, on a connection picked up mid-way.
//!
//! Layout: [`frame`] cuts frames and resynchronises; [`hpack`] decodes header blocks with one
//! table per direction; [`conn`] joins header blocks and pairs frames into streams, `fields`
//! turns blocks into an exchange's fields;
//! [`grpc`] reads gRPC's names, status and message framing; [`exchange`] is the output.
//!
//! Tolerance: a connection picked up mid-way resynchronises on frame headers; header fields
//! that refer to table entries from before the capture are unknown (`None`, listed in
//! `unknown_headers`) while the rest of their block decodes, and entries added after the
//! pickup resolve exactly ([`hpack::table`] explains how). Streams cut by RST_STREAM, GOAWAY,
//! a loss or the end of the connection leave with their [`StreamError`].
//!
//! Bounded by [`Http2Config`]: streams per connection, one frame, one header block, one
//! decoded header list, and each direction's table. Never panics on any input.

pub mod conn;
pub mod decoder;
pub mod exchange;
mod fields;
pub mod frame;
pub mod grpc;
pub mod hpack;
pub mod to_exchange;
pub mod trace_bin;
pub mod upgrade;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wiring_tests;

pub use conn::Http2Conn;
pub use decoder::{Http2Decoder, PROTOCOL};
pub use exchange::{GrpcInfo, H2Exchange, StreamError};

/// Streams open on one connection; beyond it the oldest is given up (`stream_overflow`).
pub const MAX_STREAMS: usize = 1024;
/// One frame's payload held whole (SETTINGS_MAX_FRAME_SIZE's initial 16 KiB, with room for
/// peers that raise it); a larger frame is skipped and counted by its header.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// One header block (HEADERS/PUSH_PROMISE + CONTINUATIONs); beyond it the block is not decoded
/// and its direction's table is forgotten. Bounds a CONTINUATION flood.
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 * 1024;
/// Decoded fields of one block, in RFC 7541 §4.1 octets (SETTINGS_MAX_HEADER_LIST_SIZE's
/// sense); the rest are read to keep the table right but not kept.
pub const MAX_HEADER_LIST_BYTES: usize = 64 * 1024;
/// Octets of each direction's dynamic table; a peer announcing more is clamped (the entries
/// we then drop early become unknown, never wrong).
pub const MAX_TABLE_BYTES: usize = 64 * 1024;

/// The decoder's caps (see the constants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Config {
    pub max_streams: usize,
    pub max_frame_bytes: usize,
    pub max_header_block_bytes: usize,
    pub max_header_list_bytes: usize,
    pub max_table_bytes: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_streams: MAX_STREAMS,
            max_frame_bytes: MAX_FRAME_BYTES,
            max_header_block_bytes: MAX_HEADER_BLOCK_BYTES,
            max_header_list_bytes: MAX_HEADER_LIST_BYTES,
            max_table_bytes: MAX_TABLE_BYTES,
        }
    }
}

/// What happened on a connection, beyond its exchanges (and, summed by [`Http2Decoder`],
/// on all of a pipeline's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Connections claimed (the decoder's own counter; 0 in one connection's).
    pub connections: u64,
    /// `Upgrade: h2c` requests answered without switching (or never answered).
    pub upgrades_declined: u64,
    /// HTTP/1.x exchanges of those connections.
    pub http1_exchanges: u64,
    /// Exchanges emitted with an error (reset, GOAWAY, gap, no response, cap).
    pub incomplete_exchanges: u64,
    pub frames: u64,
    pub resyncs: u64,
    pub exchanges: u64,
    pub header_blocks: u64,
    /// Header fields with a part from a table entry never seen.
    pub unknown_fields: u64,
    /// Header fields with an index no entry can have.
    pub invalid_fields: u64,
    /// Header blocks not decoded, or stopped early (their table effects lost).
    pub blocks_lost: u64,
    pub blocks_over_cap: u64,
    /// Header blocks interrupted by another frame, or CONTINUATIONs without their block.
    pub broken_blocks: u64,
    pub streams_over_cap: u64,
    pub late_frames: u64,
    pub goaways: u64,
    pub gaps: u64,
    pub upgrades: u64,
    /// Connections picked up mid-way whose roles reassembly had guessed the wrong way round.
    pub roles_swapped: u64,
}

crate::counters::describe_counters!("http2", Http2Stats {
    connections: "Connections given to the HTTP/2 decoder.",
    upgrades_declined: "Upgrade: h2c requests the server did not switch for (decoded as HTTP/1.x).",
    http1_exchanges: "HTTP/1.x exchanges on connections whose h2c upgrade was declined.",
    incomplete_exchanges [Metric]: "Streams cut short (reset, GOAWAY, gap, connection end).",
    frames: "HTTP/2 frames read.",
    resyncs: "Times a direction resynchronised on frame headers (pickup or loss).",
    exchanges [Metric]: "Streams emitted as exchanges.",
    header_blocks: "Header blocks decoded.",
    unknown_fields: "Header fields referring to table entries from before the capture.",
    invalid_fields: "Header fields with an index no table entry can have.",
    blocks_lost: "Header blocks not decoded, or stopped early.",
    blocks_over_cap: "Header blocks over the header block cap.",
    broken_blocks: "Header blocks interrupted, or continuations without their block.",
    streams_over_cap: "Streams given up at the per-connection stream cap.",
    late_frames: "Frames for streams already closed.",
    goaways: "GOAWAY frames.",
    gaps: "Capture gaps inside HTTP/2 connections.",
    upgrades: "Upgrade: h2c requests seen.",
    roles_swapped: "Connections picked up mid-way whose client and server were guessed the wrong way round.",
});
