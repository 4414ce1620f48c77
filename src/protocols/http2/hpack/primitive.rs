//! HPACK's two primitive types (RFC 7541 §5): prefixed integers and string literals.
//!
//! Both read from a borrowed block and return how many bytes they used; neither allocates
//! more than the string it decodes, and neither panics. Integers are read into a `u64` and
//! refused past 2^56 ([`HpackError::IntegerOverflow`]): no field, index or length of a real
//! block comes near, and a hostile index such as 2^32 is still read exactly so that the table
//! lookup can say it is out of range (the field unknown, the block goes on).

use super::huffman::{self, HuffmanError};
use super::HpackError;

/// Continuation bytes beyond the prefix, at most: 8 × 7 bits = 56 bits.
const MAX_CONTINUATION: usize = 8;

/// An integer with an `n`-bit prefix (§5.1) at the start of `buf`: (value, bytes used).
pub fn integer(buf: &[u8], n: u8) -> Result<(u64, usize), HpackError> {
    let first = *buf.first().ok_or(HpackError::Truncated)?;
    let max = (1u16 << n) - 1;
    let prefix = u64::from(first) & u64::from(max);
    if prefix < u64::from(max) {
        return Ok((prefix, 1));
    }
    let mut value = prefix;
    for i in 0..MAX_CONTINUATION {
        let b = *buf.get(1 + i).ok_or(HpackError::Truncated)?;
        value += u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, 2 + i));
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// A string literal (§5.2) at the start of `buf`: its bytes (Huffman-decoded if its H bit is
/// set, or why they could not be) and the bytes used. A length past the block's end is
/// `Truncated`: the block cannot be read further (a declared 1 GB string never allocates).
pub fn string(buf: &[u8]) -> Result<(Result<Vec<u8>, HuffmanError>, usize), HpackError> {
    let huffman = buf.first().is_some_and(|b| b & 0x80 != 0);
    let (len, used) = integer(buf, 7)?;
    let rest = &buf[used..];
    if len > rest.len() as u64 {
        return Err(HpackError::Truncated);
    }
    let raw = &rest[..len as usize];
    let text = if huffman {
        let mut out = Vec::with_capacity(raw.len() * 8 / 5);
        huffman::decode(raw, &mut out).map(|()| out)
    } else {
        Ok(raw.to_vec())
    };
    Ok((text, used + raw.len()))
}
