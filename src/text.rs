//! Addresses and ids as text, the same bytes `Display` and `{:x}` write, without the
//! formatting machinery: every exchange formats several of them (span attributes, service
//! names, the keys causality hashes), and `format!` cost more than the rest of building a span.

use std::net::{IpAddr, SocketAddr};

/// `ip.to_string()`.
pub fn ip(ip: &IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// `addr.to_string()`.
pub fn socket_addr(addr: &SocketAddr) -> String {
    let mut out = String::with_capacity(21);
    push_socket_addr(&mut out, addr);
    out
}

/// Appends what `Display` writes for `ip`.
pub fn push_ip(out: &mut String, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = Ascii::<15>::default();
            text.push_v4(v4);
            out.push_str(text.as_str());
        }
        // IPv6 text has rules of its own (RFC 5952: the longest run of zeros elided, embedded
        // IPv4): left to the standard library.
        IpAddr::V6(v6) => out.push_str(&v6.to_string()),
    }
}

/// Appends what `Display` writes for `addr`: `a.b.c.d:port`, `[v6]:port`.
pub fn push_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            let mut text = Ascii::<21>::default();
            text.push_v4(v4.ip());
            text.push(b':');
            text.push_decimal(u64::from(v4.port()));
            out.push_str(text.as_str());
            return;
        }
        SocketAddr::V6(v6) if v6.scope_id() == 0 => {
            out.push('[');
            push_ip(out, &addr.ip());
            out.push(']');
        }
        SocketAddr::V6(_) => {
            out.push_str(&addr.to_string());
            return;
        }
    }
    out.push(':');
    push_decimal(out, u64::from(addr.port()));
}

/// A few ASCII bytes built on the stack, appended to a `String` at once: one capacity check and
/// one UTF-8 check for an address instead of one per part.
struct Ascii<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Ascii<N> {
    fn default() -> Self {
        Ascii {
            bytes: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Ascii<N> {
    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn push_decimal(&mut self, n: u64) {
        let digits = Decimal::of(n);
        let digits = digits.as_bytes();
        self.bytes[self.len..self.len + digits.len()].copy_from_slice(digits);
        self.len += digits.len();
    }

    fn push_v4(&mut self, ip: &std::net::Ipv4Addr) {
        for (i, &octet) in ip.octets().iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.push_octet(octet);
        }
    }

    /// An octet's one to three digits, without the general [`Decimal`].
    fn push_octet(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' + n / 100);
        }
        if n >= 10 {
            self.push(b'0' + n / 10 % 10);
        }
        self.push(b'0' + n % 10);
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ASCII")
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u64) {
    out.push_str(Decimal::of(n).as_str());
}

/// A number's decimal digits, written without allocating.
pub struct Decimal {
    digits: [u8; 20],
    from: usize,
}

/// "00" to "99": two digits per division, as itoa and the standard library do.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl Decimal {
    pub fn of(mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut from = digits.len();
        let mut pair = |from: &mut usize, p: usize| {
            *from -= 2;
            digits[*from..*from + 2].copy_from_slice(&DIGIT_PAIRS[2 * p..2 * p + 2]);
        };
        while n >= 100 {
            pair(&mut from, (n % 100) as usize);
            n /= 100;
        }
        if n >= 10 {
            pair(&mut from, n as usize);
        } else {
            from -= 1;
            digits[from] = b'0' + n as u8;
        }
        Decimal { digits, from }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.from..]
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("ASCII digits")
    }
}

/// `format!("{v:016x}")` as bytes, without allocating.
pub fn hex64_bytes(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex32_bytes((v >> 32) as u32));
    out[8..].copy_from_slice(&hex32_bytes(v as u32));
    out
}

/// Eight hex digits at once: each nibble is spread to a byte of its own, most significant
/// first in big-endian order, then made a digit: `'0' + n`, and 39 more (`'a' - '0' - 10`)
/// where `n + 6` carries into the byte's high nibble, i.e. where `n >= 10`.
fn hex32_bytes(v: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    (x + u64::from(b'0') * ONES + letters * 39).to_be_bytes()
}

/// `format!("{v:016x}")`.
pub fn hex64(v: u64) -> String {
    hex_string(&hex64_bytes(v))
}

/// `format!("{v:032x}")`: its two halves, each in 64-bit arithmetic (a digit at a time of a
/// 128-bit shift cost several times as much).
pub fn hex128(v: u128) -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&hex64_bytes((v >> 64) as u64));
    bytes[16..].copy_from_slice(&hex64_bytes(v as u64));
    hex_string(&bytes)
}

fn hex_string(digits: &[u8]) -> String {
    std::str::from_utf8(digits).expect("hex digits").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_as_display() {
        let addrs = [
            "0.0.0.0:0",
            "10.78.0.20:43600",
            "255.255.255.255:65535",
            "1.2.3.4:80",
            "[::1]:8080",
            "[2001:db8::1:0:0:1]:443",
            "[::ffff:10.0.0.1]:9",
            "[fe80::1%2]:22",
        ];
        for text in addrs {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(socket_addr(&addr), addr.to_string());
            assert_eq!(ip(&addr.ip()), addr.ip().to_string());
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 7]);
            assert_eq!(self::ip(&ip), ip.to_string());
            let addr = SocketAddr::new(ip, u16::from(octet) * 257);
            assert_eq!(socket_addr(&addr), addr.to_string());
        }
        // Every digit at every place, besides the numbers below.
        for n in 0..16u64 {
            for place in 0..16 {
                let v = n << (4 * place);
                assert_eq!(hex64(v), format!("{v:016x}"));
            }
        }
        for v in [0u64, 1, 9, 10, 99, 100, 65535, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, v);
            assert_eq!(s, v.to_string());
            assert_eq!(hex64(v), format!("{v:016x}"));
            let wide = (u128::from(v) << 64) | 0xabc;
            assert_eq!(hex128(wide), format!("{wide:032x}"));
        }
        // Every digit count, at and around each power of ten.
        for k in 0..20 {
            let p = 10u64.pow(k);
            for v in [p - 1, p, p + 1, p.saturating_mul(7).saturating_add(3)] {
                assert_eq!(Decimal::of(v).as_str(), v.to_string());
            }
        }
    }
}
