//! Errors of the capture front end. Each names the file and, for a damaged capture, the byte offset.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a pcap or pcapng capture (first bytes {magic:08x})")]
    NotACapture { path: String, magic: u32 },
    #[error("{path}: damaged capture at byte offset {offset}: {what}")]
    Damaged {
        path: String,
        offset: u64,
        what: String,
    },
}

impl CaptureError {
    /// Byte offset where a damaged capture broke, if that is what this error is.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Damaged { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}
