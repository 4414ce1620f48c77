//! Fixed-width integers read out of byte slices: file headers (in the file's byte order) and
//! packet headers (network order). One copy of each reader for every format and layer.

/// The 16-bit integer at `at` in the given byte order. The caller has checked `b` is long enough.
pub(crate) fn rd16(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

/// The 32-bit integer at `at` in the given byte order. The caller has checked `b` is long enough.
pub(crate) fn rd32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// The network-order 16-bit integer at `at`, or `None` where `b` ends before it.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(rd16(s, 0, true))
}
