//! pcap and pcapng files, read in pure Rust, streaming.
//!
//! Contract: [`FileSource::open`] reads the file header and detects the format by its magic:
//! pcap (both byte orders; microsecond, nanosecond and the "modified" Kuznetzov variant) or
//! pcapng (any number of sections, each with its own byte order and interfaces). Then
//! [`PacketSource::next_frame`] yields one [`RawFrame`] per packet record / packet block, in file
//! order, borrowing the frame bytes from the reader's own buffer (1 MiB, grown only for a larger
//! record and never beyond [`MAX_BLOCK`]): no allocation per packet, and the file is never loaded
//! whole. `RawFrame::offset` is the byte offset of the record or block.
//!
//! Damage is reported, never guessed around: a record longer than the sanity cap, a pcapng block
//! whose length is < 12, not a multiple of 4 or different from its trailing copy, a packet
//! referring to an interface not described, or a file ending inside a record all give
//! [`CaptureError::Damaged`] with the offset of the record where it broke. After an error the
//! source yields `Ok(None)`. Timestamps are converted exactly (integer arithmetic, u128 for
//! binary resolutions) to nanoseconds; nothing here reads the clock. This file owns the reading,
//! framing and pcap records; `pcapng.rs` interprets the contents of pcapng blocks.

use std::io::{self, Read};
use std::path::Path;

use super::pcapng::{self, Interface};
use super::PacketSource;
use crate::bytes::rd32;
use crate::{CaptureError, LinkType, RawFrame, Timestamp};

/// Size of the read buffer, which grows for a longer record. Small enough to stay in the
/// cache between reads, and for the file's header to be read quickly before a replay's
/// reading thread starts (a 1 MiB buffer, filled by that first read, took 0.6 ms there).
const READ_BUF: usize = 128 << 10;
/// Records may always be this long, whatever the snap length says (libpcap's MAXIMUM_SNAPLEN).
const MIN_RECORD_CAP: u32 = 262_144;
/// No record or block held in memory may be longer than this.
pub const MAX_BLOCK: usize = 64 << 20;

use pcapng::{
    BOM as PCAPNG_BOM, EPB as PCAPNG_EPB, IDB as PCAPNG_IDB, PB as PCAPNG_PB, SHB as PCAPNG_SHB,
    SPB as PCAPNG_SPB,
};

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// Extra per-record header bytes (8 in the Kuznetzov "modified" format).
        extra: usize,
        link: LinkType,
        cap: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// Simple Packet Blocks have no timestamp: they get the last one seen.
        last_ts: Timestamp,
    },
}

/// Where a frame sits in the buffer, decided before the buffer is borrowed.
struct FrameAt {
    start: usize,
    len: usize,
    ts: Timestamp,
    link: LinkType,
    orig_len: u32,
    offset: u64,
}

/// A pcap or pcapng file (or any reader holding one).
pub struct FileSource {
    name: String,
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`; `pos` is the file offset of `buf[start]`.
    start: usize,
    end: usize,
    pos: u64,
    eof: bool,
    failed: bool,
    total_len: Option<u64>,
    format: Format,
}

fn damaged(name: &str, offset: u64, what: String) -> CaptureError {
    CaptureError::Damaged {
        path: name.to_string(),
        offset,
        what,
    }
}

impl FileSource {
    /// Opens `path` (`-`: standard input; gzip or zstd: decompressed as it is read, see
    /// [`super::input`]) and reads its file header.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let input = super::input::open(path).map_err(|source| CaptureError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(input.name, input.reader, input.len)
    }

    /// Reads a capture from any reader (tests, pipes); `name` is used in messages.
    pub fn from_reader(
        name: &str,
        reader: impl Read + Send + 'static,
    ) -> Result<Self, CaptureError> {
        Self::new(name.to_string(), Box::new(reader), None)
    }

    fn new(
        name: String,
        reader: Box<dyn Read + Send>,
        total_len: Option<u64>,
    ) -> Result<Self, CaptureError> {
        let mut src = FileSource {
            name,
            reader,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
            failed: false,
            total_len,
            format: Format::PcapNg {
                big_endian: false,
                interfaces: Vec::new(),
                last_ts: Timestamp(0),
            },
        };
        src.read_file_header()?;
        Ok(src)
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        let avail = self.fill(4)?;
        if avail == 0 {
            return Err(self.damaged(0, "file is empty: not a pcap or pcapng capture".into()));
        }
        if avail < 4 {
            return Err(self.damaged(
                0,
                format!("file has only {avail} bytes: too short for a capture header"),
            ));
        }
        let head = &self.buf[self.start..self.start + 4];
        let magic_be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic_be == PCAPNG_SHB {
            // The section header is read as a block by next_frame; check its byte-order magic
            // now so that a file that merely starts with these 4 bytes is rejected up front.
            let avail = self.fill(12)?;
            if avail < 12 {
                return Err(self.damaged(
                    0,
                    format!("truncated section header (file ends after {avail} of 12 bytes)"),
                ));
            }
            let bom = rd32(&self.buf, self.start + 8, true);
            if bom != PCAPNG_BOM && bom.swap_bytes() != PCAPNG_BOM {
                return Err(CaptureError::NotACapture {
                    path: self.name.clone(),
                    magic: magic_be,
                });
            }
            return Ok(());
        }
        // pcap (tcpdump.org "pcap capture file format"): the magic in the writer's byte order.
        let (big_endian, nanos, extra) = match (magic_be, magic_le) {
            (_, 0xA1B2_C3D4) => (false, false, 0),
            (0xA1B2_C3D4, _) => (true, false, 0),
            (_, 0xA1B2_3C4D) => (false, true, 0),
            (0xA1B2_3C4D, _) => (true, true, 0),
            (_, 0xA1B2_CD34) => (false, false, 8),
            (0xA1B2_CD34, _) => (true, false, 8),
            _ => {
                return Err(CaptureError::NotACapture {
                    path: self.name.clone(),
                    magic: magic_be,
                })
            }
        };
        let avail = self.fill(24)?;
        if avail < 24 {
            return Err(self.damaged(
                0,
                format!("truncated pcap file header (file ends after {avail} of 24 bytes)"),
            ));
        }
        let h = &self.buf[self.start..self.start + 24];
        let snaplen = rd32(h, 16, big_endian);
        // The upper bits of the link-type field hold FCS information; the type is the low 16.
        let link = LinkType(rd32(h, 20, big_endian) & 0xFFFF);
        self.consume(24);
        self.format = Format::Pcap {
            big_endian,
            nanos,
            extra,
            link,
            cap: snaplen.max(MIN_RECORD_CAP).min(MAX_BLOCK as u32),
        };
        Ok(())
    }

    fn damaged(&self, offset: u64, what: String) -> CaptureError {
        damaged(&self.name, offset, what)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Makes `n` unconsumed bytes available if the file has them; returns how many are.
    fn fill(&mut self, n: usize) -> Result<usize, CaptureError> {
        if self.end - self.start >= n {
            return Ok(n);
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            // Never grow the buffer for bytes the file cannot have (a damaged length field).
            let left_in_file = self
                .total_len
                .map_or(u64::MAX, |t| t.saturating_sub(self.pos));
            if n > self.buf.len() && (n as u64) <= left_in_file {
                self.buf
                    .resize(n.next_power_of_two().min(MAX_BLOCK).max(n), 0);
            }
        }
        while self.end - self.start < n && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.name.clone(),
                        source,
                    })
                }
            }
        }
        Ok((self.end - self.start).min(n))
    }

    /// Consumes `n` bytes without holding them; returns how many the file had.
    fn skip(&mut self, mut n: u64) -> Result<u64, CaptureError> {
        let mut skipped = 0;
        while n > 0 {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                if self.fill(1)? == 0 {
                    break;
                }
            }
            let k = ((self.end - self.start) as u64).min(n);
            self.consume(k as usize);
            n -= k;
            skipped += k;
        }
        Ok(skipped)
    }

    fn truncated(&self, offset: u64, kind: &str, have: usize, need: u64) -> CaptureError {
        // When the file length is known it is the exact account (the buffer may not have been
        // grown for a length the file cannot hold).
        let have = self
            .total_len
            .map_or(have as u64, |t| t.saturating_sub(offset).min(need));
        self.damaged(
            offset,
            format!("truncated {kind} (file ends after {have} of {need} bytes)"),
        )
    }

    fn next_pcap(&mut self) -> Result<Option<FrameAt>, CaptureError> {
        let Format::Pcap {
            big_endian,
            nanos,
            extra,
            link,
            cap,
        } = self.format
        else {
            return Ok(None);
        };
        let offset = self.pos;
        let header_len = 16 + extra;
        let avail = self.fill(header_len)?;
        if avail == 0 {
            return Ok(None);
        }
        if avail < header_len {
            return Err(self.truncated(offset, "record", avail, header_len as u64));
        }
        let h = &self.buf[self.start..self.start + header_len];
        let secs = u64::from(rd32(h, 0, big_endian));
        let frac = u64::from(rd32(h, 4, big_endian));
        let incl_len = rd32(h, 8, big_endian);
        let orig_len = rd32(h, 12, big_endian);
        if incl_len > cap {
            return Err(self.damaged(
                offset,
                format!("record captured length {incl_len} exceeds the sanity cap {cap}"),
            ));
        }
        let total = header_len + incl_len as usize;
        let avail = self.fill(total)?;
        if avail < total {
            return Err(self.truncated(offset, "record", avail, total as u64));
        }
        let ts = secs * 1_000_000_000 + if nanos { frac } else { frac * 1_000 };
        let start = self.start + header_len;
        self.consume(total);
        Ok(Some(FrameAt {
            start,
            len: incl_len as usize,
            ts: Timestamp(ts),
            link,
            orig_len,
            offset,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<FrameAt>, CaptureError> {
        loop {
            let offset = self.pos;
            let avail = self.fill(8)?;
            if avail == 0 {
                return Ok(None);
            }
            if avail < 8 {
                return Err(self.truncated(offset, "block header", avail, 8));
            }
            let raw_type = rd32(&self.buf, self.start, true);
            if raw_type == PCAPNG_SHB {
                self.start_section(offset)?;
            }
            let Format::PcapNg { big_endian, .. } = self.format else {
                return Ok(None);
            };
            let block_type = rd32(&self.buf, self.start, big_endian);
            let block_len = rd32(&self.buf, self.start + 4, big_endian);
            let min_len = match block_type {
                PCAPNG_SHB => 28,
                PCAPNG_IDB => 20,
                PCAPNG_EPB | PCAPNG_PB => 32,
                PCAPNG_SPB => 16,
                _ => 12,
            };
            if block_len < min_len || block_len % 4 != 0 {
                return Err(self.damaged(
                    offset,
                    format!("block of type {block_type:#x} with invalid length {block_len}"),
                ));
            }
            let held = matches!(
                block_type,
                PCAPNG_SHB | PCAPNG_IDB | PCAPNG_EPB | PCAPNG_PB | PCAPNG_SPB
            );
            if !held {
                // Name resolution, statistics, custom, ...: skipped by length, never held.
                self.skip_block(offset, block_len, big_endian)?;
                continue;
            }
            let len = block_len as usize;
            if len > MAX_BLOCK {
                return Err(self.damaged(
                    offset,
                    format!("block length {block_len} exceeds the sanity cap {MAX_BLOCK}"),
                ));
            }
            let avail = self.fill(len)?;
            if avail < len {
                return Err(self.truncated(offset, "block", avail, u64::from(block_len)));
            }
            let trailer = rd32(&self.buf, self.start + len - 4, big_endian);
            if trailer != block_len {
                return Err(self.damaged(
                    offset,
                    format!("block length {block_len} differs from its trailing copy {trailer}"),
                ));
            }
            let block_start = self.start;
            self.consume(len);
            let Format::PcapNg {
                interfaces,
                last_ts,
                ..
            } = &mut self.format
            else {
                return Ok(None);
            };
            let block = &self.buf[block_start..block_start + len];
            match pcapng::packet(block_type, block, big_endian, interfaces, last_ts) {
                Ok(Some(p)) => {
                    return Ok(Some(FrameAt {
                        start: block_start + p.data_start,
                        len: p.data_len,
                        ts: p.ts,
                        link: p.link,
                        orig_len: p.orig_len,
                        offset,
                    }))
                }
                Ok(None) => {}
                Err(what) => return Err(damaged(&self.name, offset, what)),
            }
        }
    }

    /// A section header block at `offset`: its byte-order magic sets the order of everything
    /// in the section, including its own length field (pcapng spec §4.1).
    fn start_section(&mut self, offset: u64) -> Result<(), CaptureError> {
        let avail = self.fill(12)?;
        if avail < 12 {
            return Err(self.truncated(offset, "section header", avail, 12));
        }
        let bom = rd32(&self.buf, self.start + 8, true);
        let big_endian = if bom == PCAPNG_BOM {
            true
        } else if bom.swap_bytes() == PCAPNG_BOM {
            false
        } else {
            return Err(self.damaged(
                offset,
                format!("section header with bad byte-order magic {bom:08x}"),
            ));
        };
        self.format = Format::PcapNg {
            big_endian,
            interfaces: Vec::new(),
            last_ts: match self.format {
                Format::PcapNg { last_ts, .. } => last_ts,
                Format::Pcap { .. } => Timestamp(0),
            },
        };
        Ok(())
    }

    /// Skips a block tapspan does not read, by its length, checking its trailing length copy.
    fn skip_block(
        &mut self,
        offset: u64,
        block_len: u32,
        big_endian: bool,
    ) -> Result<(), CaptureError> {
        let body = u64::from(block_len) - 4;
        let skipped = self.skip(body)?;
        let avail = if skipped == body { self.fill(4)? } else { 0 };
        if avail < 4 {
            let have = skipped as usize + avail;
            return Err(self.truncated(offset, "block", have, u64::from(block_len)));
        }
        let trailer = rd32(&self.buf, self.start, big_endian);
        self.consume(4);
        if trailer != block_len {
            return Err(self.damaged(
                offset,
                format!("block length {block_len} differs from its trailing copy {trailer}"),
            ));
        }
        Ok(())
    }
}

impl PacketSource for FileSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        let result = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        let at = match result {
            Ok(Some(at)) => at,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        Ok(Some(RawFrame {
            ts: at.ts,
            link_type: at.link,
            data: &self.buf[at.start..at.start + at.len],
            orig_len: at.orig_len,
            offset: at.offset,
        }))
    }

    fn position(&self) -> u64 {
        self.pos
    }

    fn total_len(&self) -> Option<u64> {
        self.total_len
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::testutil::*;

    /// Reads everything: (ts, link, data, orig_len, offset) per frame, then the error if any.
    type Frames = Vec<(u64, u32, Vec<u8>, u32, u64)>;

    fn read_all(src: &mut FileSource) -> (Frames, Option<CaptureError>) {
        let mut out = Vec::new();
        loop {
            match src.next_frame() {
                Ok(Some(f)) => {
                    out.push((f.ts.0, f.link_type.0, f.data.to_vec(), f.orig_len, f.offset))
                }
                Ok(None) => return (out, None),
                Err(e) => {
                    assert!(matches!(src.next_frame(), Ok(None)), "after an error: None");
                    return (out, Some(e));
                }
            }
        }
    }

    fn source(bytes: Vec<u8>) -> Result<FileSource, CaptureError> {
        FileSource::from_reader("test.cap", Cursor::new(bytes))
    }

    /// A reader that hands out at most 3 bytes per call, to exercise refills.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn pcap_both_byte_orders_and_resolutions() {
        let a = tcp4(b"one");
        let b = tcp4(b"second");
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let file = pcap(
                    big_endian,
                    nanos,
                    101,
                    65535,
                    &[(1_700_000_000, 123_456, &a), (1_700_000_001, 999_999, &b)],
                );
                let mut src = source(file.clone()).expect("open");
                let (frames, err) = read_all(&mut src);
                assert!(err.is_none());
                let unit = if nanos { 1 } else { 1_000 };
                assert_eq!(frames.len(), 2);
                assert_eq!(frames[0].0, 1_700_000_000_000_000_000 + 123_456 * unit);
                assert_eq!(frames[1].0, 1_700_000_001_000_000_000 + 999_999 * unit);
                assert_eq!(
                    (frames[0].1, &frames[0].2, frames[0].3),
                    (101, &a, a.len() as u32 + 4)
                );
                assert_eq!(frames[0].4, 24);
                assert_eq!(frames[1].4, 24 + 16 + a.len() as u64);
                assert_eq!(src.position(), file.len() as u64);
                assert_eq!(src.name(), "test.cap");
            }
        }
    }

    #[test]
    fn pcap_link_type_ignores_fcs_bits() {
        let file = pcap(false, false, 0x1400_0001, 65535, &[(1, 2, &[0u8; 14])]);
        let (frames, _) = read_all(&mut source(file).expect("open"));
        assert_eq!(frames[0].1, 1);
    }

    #[test]
    fn pcap_truncated_record_is_damaged_at_its_offset() {
        let a = tcp4(b"first");
        let b = tcp4(b"cut short");
        let file = pcap(false, false, 101, 65535, &[(1, 0, &a), (2, 0, &b)]);
        let second = 24 + 16 + a.len() as u64;
        // Cut inside the second record's data, then inside its header.
        for cut in [file.len() - 5, second as usize + 7] {
            let mut src = source(file[..cut].to_vec()).expect("open");
            let (frames, err) = read_all(&mut src);
            assert_eq!(frames.len(), 1);
            let err = err.expect("damaged");
            assert_eq!(err.offset(), Some(second), "{err}");
            let text = err.to_string();
            assert!(text.contains("truncated record (file ends after"), "{text}");
        }
    }

    #[test]
    fn pcap_oversized_record_is_damaged() {
        let mut file = pcap(false, false, 1, 65535, &[(1, 0, &[0u8; 20])]);
        file[24 + 8..24 + 12].copy_from_slice(&(10_000_000u32).to_le_bytes());
        let (_, err) = read_all(&mut source(file).expect("open"));
        let err = err.expect("damaged");
        assert_eq!(err.offset(), Some(24));
        assert!(err.to_string().contains("sanity cap"), "{err}");
    }

    #[test]
    fn garbage_empty_and_short_files() {
        match source(b"GIF89a and more bytes here".to_vec()) {
            Err(CaptureError::NotACapture { magic, .. }) => assert_eq!(magic, 0x4749_4638),
            other => panic!("{:?}", other.err()),
        }
        let err = source(Vec::new()).err().expect("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let err = source(vec![0xd4, 0xc3]).err().expect("short");
        assert!(err.to_string().contains("only 2 bytes"), "{err}");
        let err = source(vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0])
            .err()
            .expect("short header");
        assert_eq!(err.offset(), Some(0));
        // pcapng magic with a bad byte-order magic is not a capture.
        let bad = [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4].to_vec();
        assert!(matches!(source(bad), Err(CaptureError::NotACapture { .. })));
    }

    #[test]
    fn pcapng_two_interfaces_resolutions_and_block_kinds() {
        let eth = ether(0x0800, &tcp4(b"eth"));
        let raw = tcp6(b"raw");
        let mut w = PcapNg::new();
        w.shb(false);
        w.idb(1, 0, None, None); // Ethernet, microseconds
        w.idb(101, 65535, Some(9), Some(10)); // raw IP, nanoseconds, +10 s
        w.idb(113, 0, Some(0x80 | 10), None); // SLL, 2^-10 s
        w.block(0x0000_0BAD, b"custom block, skipped");
        let e1 = w.epb(0, 1_700_000_000_123_456, &eth);
        let e2 = w.epb(1, 1_700_000_000_987_654_321, &raw);
        let e3 = w.epb(2, 3 * 1024 + 512, &raw);
        let s1 = w.spb(&eth);
        let p1 = w.pb(1, 5, &raw);
        let file = w.bytes.clone();
        for trickle in [false, true] {
            let mut src = if trickle {
                FileSource::from_reader("t", Trickle(Cursor::new(file.clone()))).expect("open")
            } else {
                source(file.clone()).expect("open")
            };
            let (frames, err) = read_all(&mut src);
            assert!(err.is_none(), "{err:?}");
            let got: Vec<_> = frames.iter().map(|f| (f.0, f.1, f.4)).collect();
            assert_eq!(
                got,
                vec![
                    (1_700_000_000_123_456_000, 1, e1),
                    (1_700_000_010_987_654_321, 101, e2),
                    (3_500_000_000, 113, e3),
                    (3_500_000_000, 1, s1),
                    (10_000_000_005, 101, p1),
                ]
            );
            assert_eq!(frames[0].2, eth);
            assert_eq!(frames[1].2, raw);
            assert_eq!(frames[3].2, eth);
            assert_eq!(src.position(), file.len() as u64);
        }
    }

    #[test]
    fn pcapng_sections_reset_interfaces_and_byte_order() {
        let raw = tcp4(b"x");
        let mut w = PcapNg::new();
        w.shb(false);
        w.idb(101, 0, None, None);
        w.epb(0, 1, &raw);
        w.shb(true);
        w.idb(228, 0, Some(3), None);
        w.epb(0, 7, &raw);
        let second_section_epb_on_missing_iface = w.epb(1, 7, &raw);
        let (frames, err) = read_all(&mut source(w.bytes).expect("open"));
        assert_eq!(
            frames.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            vec![(1_000, 101), (7_000_000, 228)]
        );
        let err = err.expect("unknown interface");
        assert_eq!(err.offset(), Some(second_section_epb_on_missing_iface));
        assert!(err.to_string().contains("interface 1"), "{err}");
    }

    #[test]
    fn pcapng_damage_is_reported_with_offsets() {
        let raw = tcp4(b"x");
        let mut w = PcapNg::new();
        w.shb(false);
        w.idb(101, 0, None, None);
        let epb = w.epb(0, 1, &raw);
        let good = w.bytes.clone();

        // Trailing length copy differs.
        let mut bad = good.clone();
        let last = bad.len() - 4;
        bad[last] ^= 0x04;
        let (_, err) = read_all(&mut source(bad).expect("open"));
        let err = err.expect("damaged");
        assert_eq!(err.offset(), Some(epb));
        assert!(err.to_string().contains("trailing copy"), "{err}");

        // Length not a multiple of 4, and too small.
        for len in [13u32, 8] {
            let mut bad = good.clone();
            bad[epb as usize + 4..epb as usize + 8].copy_from_slice(&len.to_le_bytes());
            let (_, err) = read_all(&mut source(bad).expect("open"));
            assert_eq!(err.expect("damaged").offset(), Some(epb));
        }

        // File ends inside the block.
        let (frames, err) = read_all(&mut source(good[..good.len() - 3].to_vec()).expect("open"));
        assert!(frames.is_empty());
        let err = err.expect("damaged");
        assert_eq!(err.offset(), Some(epb));
        assert!(
            err.to_string().contains("truncated block (file ends after"),
            "{err}"
        );

        // A skipped block that runs past the end of the file.
        let mut w = PcapNg::new();
        w.shb(false);
        let custom = w.block(0xBAD, &[0u8; 64]);
        let cut = w.bytes[..w.bytes.len() - 10].to_vec();
        let (_, err) = read_all(&mut source(cut).expect("open"));
        assert_eq!(err.expect("damaged").offset(), Some(custom));
    }

    #[test]
    fn timestamp_resolution_math_is_exact() {
        assert_eq!(pcapng::timestamp(1, 6, 0), Timestamp(1_000));
        assert_eq!(pcapng::timestamp(1, 9, 0), Timestamp(1));
        assert_eq!(
            pcapng::timestamp(123_456_789_012, 12, 0),
            Timestamp(123_456_789)
        );
        assert_eq!(
            pcapng::timestamp(1 << 30, 0x80 | 30, 0),
            Timestamp(1_000_000_000)
        );
        assert_eq!(pcapng::timestamp(3, 0x80 | 1, 0), Timestamp(1_500_000_000));
        assert_eq!(
            pcapng::timestamp(u64::MAX, 0x80 | 32, 0),
            Timestamp(4_294_967_295_999_999_999)
        );
        assert_eq!(pcapng::timestamp(5, 0, -10), Timestamp(0));
        assert_eq!(pcapng::timestamp(u64::MAX, 0, 0), Timestamp(u64::MAX));
        assert_eq!(pcapng::timestamp(u64::MAX, 127, 0), Timestamp(0));
        assert_eq!(
            pcapng::timestamp(u64::MAX, 0xff, i64::MAX),
            Timestamp(u64::MAX)
        );
    }

    #[test]
    fn large_records_grow_the_buffer_once() {
        let big = vec![0x45u8; 200_000];
        let records: Vec<(u32, u32, &[u8])> = (0..12).map(|i| (i, 0, &big[..])).collect();
        let file = pcap(false, false, 101, 262_144, &records);
        let mut src = source(file.clone()).expect("open");
        let (frames, err) = read_all(&mut src);
        assert!(err.is_none());
        assert_eq!(frames.len(), 12);
        assert!(frames.iter().all(|f| f.2.len() == 200_000));
        assert_eq!(src.position(), file.len() as u64);
    }

    #[test]
    fn open_reads_a_file_on_disk() {
        let dir = std::env::temp_dir().join(format!("tapspan-capture-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let a = tcp4(b"disk");
        let good = pcap(false, true, 101, 65535, &[(3, 4, &a)]);
        let path = dir.join("good.pcap");
        std::fs::write(&path, &good).expect("write");
        let mut src = FileSource::open(&path).expect("open");
        assert_eq!(src.total_len(), Some(good.len() as u64));
        assert_eq!(src.name(), path.display().to_string());
        let (frames, err) = read_all(&mut src);
        assert!(err.is_none());
        assert_eq!(frames[0].0, 3_000_000_004);

        // A bogus 60 MiB block length in a small file: damaged, and exact about what is there.
        let mut w = PcapNg::new();
        w.shb(false);
        w.idb(101, 0, None, None);
        let epb = w.epb(0, 1, &a);
        let mut bad = w.bytes;
        bad[epb as usize + 4..epb as usize + 8].copy_from_slice(&(60u32 << 20).to_le_bytes());
        let path = dir.join("bad.pcapng");
        std::fs::write(&path, &bad).expect("write");
        let (_, err) = read_all(&mut FileSource::open(&path).expect("open"));
        let err = err.expect("damaged");
        assert_eq!(err.offset(), Some(epb));
        let have = bad.len() as u64 - epb;
        assert!(
            err.to_string()
                .contains(&format!("file ends after {have} of {} bytes", 60u32 << 20)),
            "{err}"
        );
        assert!(matches!(
            FileSource::open(&dir.join("missing.pcap")),
            Err(CaptureError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
