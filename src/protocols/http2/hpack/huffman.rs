//! The Huffman code of HPACK string literals (RFC 7541 §5.2, Appendix B), decoding only.
//!
//! Appendix B's code is canonical: within one code length, codes are consecutive and follow
//! the symbols' order, and each length starts where the previous one ended, shifted left by
//! one bit. So the 257 code lengths below (transcribed from the appendix's `[len]` column)
//! determine every code; the decoder walks the bits, keeping the code read so far, and knows
//! the symbol as soon as the code falls inside its length's range. Tests check the derived
//! codes against rows of the appendix and the strings of Appendix C.4 and C.6.
//!
//! Never panics: a code for EOS inside the string, padding longer than 7 bits, and padding
//! that is not a prefix of EOS (all ones) are [`HuffmanError`]s (§5.2). Output is at most
//! 8/5 of the input (the shortest code has 5 bits), so it is bounded by the caller's input.

/// Code length in bits of each symbol 0..=255 and of EOS (256): Appendix B.
#[rustfmt::skip]
const LENGTHS: [u8; 257] = [
    // 0..=31: control characters
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    // 32..=63: ' ' to '?'
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    // 64..=95: '@' to '_'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    // 96..=127: '`' to DEL
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    // 128..=255
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    // 256: EOS
    30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// The canonical code's tables: per length, the first code, how many codes, and where its
/// symbols start in `symbols` (all symbols sorted by length, then value).
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u16; MAX_LEN + 1],
    start: [u16; MAX_LEN + 1],
    symbols: [u16; 257],
}

const fn build() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        start: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut len = 1;
    let mut code = 0u32;
    let mut at = 0u16;
    while len <= MAX_LEN {
        code = (code + c.count[len - 1] as u32) << 1;
        c.first[len] = code;
        c.start[len] = at;
        at += c.count[len];
        len += 1;
    }
    let mut fill = c.start;
    let mut s = 0;
    while s < 257 {
        let l = LENGTHS[s] as usize;
        c.symbols[fill[l] as usize] = s as u16;
        fill[l] += 1;
        s += 1;
    }
    c
}

static CODE: Canonical = build();

/// Why a Huffman string could not be decoded (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appeared inside the string.
    Eos,
    /// The last bits were more than 7, or not all ones (not a prefix of EOS).
    Padding,
}

/// Decodes `input`, appending to `out`.
///
/// Bits are taken a byte at a time into a 64-bit window; each symbol is found by trying the
/// code lengths present (5 to 30 bits) on the window's next bits, shortest first.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let mut window = 0u64;
    let mut bits = 0usize;
    let mut next = input.iter();
    loop {
        while bits <= 56 {
            let Some(&b) = next.next() else { break };
            window = window << 8 | u64::from(b);
            bits += 8;
        }
        match symbol(window, bits) {
            Some((EOS, _)) => return Err(HuffmanError::Eos),
            Some((sym, len)) => {
                out.push(sym as u8);
                bits -= len;
            }
            // A complete code: 30 bits always hold a symbol (EOS is 30 ones).
            None if bits >= MAX_LEN => return Err(HuffmanError::Eos),
            None => break,
        }
    }
    // What is left is padding: at most 7 bits, all ones (a prefix of EOS).
    let mask = (1u64 << bits) - 1;
    if bits > 7 || window & mask != mask {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// The symbol whose code starts the window's `bits` low bits, and its length.
fn symbol(window: u64, bits: usize) -> Option<(u16, usize)> {
    for len in 5..=bits.min(MAX_LEN) {
        let code = (window >> (bits - len)) as u32 & ((1u32 << len) - 1);
        let offset = code.wrapping_sub(CODE.first[len]);
        if offset < u32::from(CODE.count[len]) {
            return Some((
                CODE.symbols[(CODE.start[len] as u32 + offset) as usize],
                len,
            ));
        }
    }
    None
}

#[cfg(test)]
pub(super) fn code_of(sym: usize) -> (u32, u8) {
    let len = LENGTHS[sym] as usize;
    let rank = (0..sym).filter(|&s| LENGTHS[s] as usize == len).count() as u32;
    (CODE.first[len] + rank, len as u8)
}
