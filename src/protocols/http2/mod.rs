//! HTTP/2 (RFC 9113) and gRPC over it: work in progress.

pub mod hpack;
