//! A pcap file writer, pure Rust, for `tapspan live --write-pcap`.
//!
//! Contract: [`PcapWriter::new`] writes a classic pcap file header in this machine's byte order,
//! with nanosecond timestamps (magic `a1b23c4d`) so that a live capture replays to exactly the
//! same instants, the given link type and snap length. [`PcapWriter::write_frame`] appends one
//! record per [`RawFrame`]: its timestamp, its captured bytes and its original length. The file
//! is readable by [`crate::FileSource`], tcpdump, tshark and Wireshark.
//!
//! Never: reorders, filters or alters frames; a frame whose captured bytes exceed the header's
//! snap length is written whole anyway (readers accept records up to 256 KiB whatever the snap
//! length says). Errors are the underlying writer's, returned as they happen.

use std::io::{self, Write};

use crate::{LinkType, RawFrame};

/// pcap magic for nanosecond timestamps, written in native byte order.
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;

pub struct PcapWriter<W: Write> {
    out: W,
    frames: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. `snaplen` is recorded as the capture's maximum record length.
    pub fn new(mut out: W, link_type: LinkType, snaplen: u32) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NANOS.to_ne_bytes());
        h[4..6].copy_from_slice(&2u16.to_ne_bytes());
        h[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay zero.
        h[16..20].copy_from_slice(&snaplen.to_ne_bytes());
        h[20..24].copy_from_slice(&link_type.0.to_ne_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            frames: 0,
            bytes: 24,
        })
    }

    /// Appends one record. The frame's link type is not checked against the header's.
    pub fn write_frame(&mut self, frame: &RawFrame<'_>) -> io::Result<()> {
        let secs = frame.ts.0 / 1_000_000_000;
        let nanos = frame.ts.0 % 1_000_000_000;
        let mut h = [0u8; 16];
        // pcap seconds are 32 bits: wraps in 2106.
        h[0..4].copy_from_slice(&(secs as u32).to_ne_bytes());
        h[4..8].copy_from_slice(&(nanos as u32).to_ne_bytes());
        let caplen = frame.data.len() as u32;
        h[8..12].copy_from_slice(&caplen.to_ne_bytes());
        h[12..16].copy_from_slice(&frame.orig_len.max(caplen).to_ne_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame.data)?;
        self.frames += 1;
        self.bytes += 16 + u64::from(caplen);
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Records written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far, the file header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileSource, PacketSource, Timestamp};

    #[test]
    fn round_trips_through_file_source_with_nanoseconds() {
        let frames: Vec<(u64, Vec<u8>, u32)> = vec![
            (1_700_000_000_123_456_789, vec![1, 2, 3, 4], 4),
            (1_700_000_001_000_000_001, vec![9; 100], 1500),
            (1_700_000_001_999_999_999, Vec::new(), 0),
        ];
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, 262_144).unwrap();
        for (ts, data, orig) in &frames {
            w.write_frame(&RawFrame {
                ts: Timestamp(*ts),
                link_type: LinkType::ETHERNET,
                data,
                orig_len: *orig,
                offset: 0,
            })
            .unwrap();
        }
        assert_eq!(w.frames(), 3);
        let bytes = w.into_inner().unwrap();
        let mut src = FileSource::from_reader("mem", io::Cursor::new(bytes)).unwrap();
        for (ts, data, orig) in &frames {
            let f = src.next_frame().unwrap().expect("a frame");
            assert_eq!(f.ts, Timestamp(*ts));
            assert_eq!(f.link_type, LinkType::ETHERNET);
            assert_eq!(f.data, &data[..]);
            assert_eq!(f.orig_len, *orig);
        }
        assert!(src.next_frame().unwrap().is_none());
    }
}
