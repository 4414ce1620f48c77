//! Deterministic ids. The hash is fixed here and must never change: ids are stable across runs,
//! machines and versions, so two capture points (or two runs) name the same exchange alike.
//!
//! `hash64(domain, bytes)` = SplitMix64 finaliser applied to 64-bit FNV-1a over
//! `domain || 0x00 || bytes`. FNV-1a: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
//! The finaliser (Steele, Lea, Flood 2014) spreads FNV's weak low bits.

use std::net::{IpAddr, SocketAddr};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn splitmix_finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fixed 64-bit hash of `bytes` within a named domain.
pub fn hash64(domain: &str, bytes: &[u8]) -> u64 {
    hash64_of_parts(&[domain.as_bytes()], &[bytes])
}

/// [`hash64`] of a domain and bytes each given in parts, as if joined: FNV-1a reads a byte at a
/// time, so nothing needs joining (an allocation for each hash of a span's ids and routes).
pub fn hash64_of_parts(domain: &[&[u8]], bytes: &[&[u8]]) -> u64 {
    let h = domain.iter().fold(FNV_OFFSET, |h, part| fnv1a(h, part));
    let h = fnv1a(h, &[0]);
    splitmix_finalize(bytes.iter().fold(h, |h, part| fnv1a(h, part)))
}

/// 128 bits from two domains of [`hash64`].
pub fn hash128(domain: &str, bytes: &[u8]) -> u128 {
    let hi = hash64_of_parts(&[domain.as_bytes(), b"/hi"], &[bytes]) as u128;
    let lo = hash64_of_parts(&[domain.as_bytes(), b"/lo"], &[bytes]) as u128;
    (hi << 64) | lo
}

fn push_addr(buf: &mut Vec<u8>, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
    }
    buf.extend_from_slice(&a.port().to_be_bytes());
}

/// The exchange id: client address and port, server address and port, and the absolute TCP
/// sequence number of the first byte of the request (`anchored_on_request`) or, when the request
/// was not captured, of the response.
pub fn exchange_id(
    client: SocketAddr,
    server: SocketAddr,
    anchor_seq: u32,
    anchored_on_request: bool,
) -> u64 {
    let mut buf = Vec::with_capacity(40);
    push_addr(&mut buf, client);
    push_addr(&mut buf, server);
    buf.extend_from_slice(&anchor_seq.to_be_bytes());
    buf.push(anchored_on_request as u8);
    hash64("tapspan.exchange", &buf).max(1)
}

/// The anchor of an exchange carried in UDP datagrams (DNS), which have no sequence number:
/// the low 32 bits of `hash64("tapspan.udp.anchor", id (2 bytes, big-endian) || capture time of
/// the query in ns (8 bytes, big-endian))`. With the endpoints, [`exchange_id`] of it names the
/// exchange; a retransmitted query keeps the first one's. Two capture points agree only where
/// their clocks agree to the nanosecond.
pub fn udp_anchor(id: u16, query_ns: u64) -> u32 {
    let mut buf = [0u8; 10];
    buf[..2].copy_from_slice(&id.to_be_bytes());
    buf[2..].copy_from_slice(&query_ns.to_be_bytes());
    hash64("tapspan.udp.anchor", &buf) as u32
}

/// Span id of one side (`client` or `server`) of an exchange; never zero (zero is invalid in W3C).
pub fn span_id(exchange_id: u64, kind: &str) -> u64 {
    // The id then the kind, on the stack when the kind is short (it is `client` or `server`).
    let mut short = [0u8; 32];
    let long: Vec<u8>;
    let buf = match short.get_mut(..8 + kind.len()) {
        Some(buf) => {
            buf[..8].copy_from_slice(&exchange_id.to_be_bytes());
            buf[8..].copy_from_slice(kind.as_bytes());
            &*buf
        }
        None => {
            long = [&exchange_id.to_be_bytes()[..], kind.as_bytes()].concat();
            &long
        }
    };
    hash64("tapspan.span", buf).max(1)
}

/// Trace id for an exchange that is its own root.
pub fn root_trace_id(exchange_id: u64) -> u128 {
    hash128("tapspan.trace", &exchange_id.to_be_bytes()).max(1)
}

/// Trace id derived from an X-Request-ID value.
pub fn request_id_trace_id(value: &str) -> u128 {
    hash128("tapspan.x-request-id", value.trim().as_bytes()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_hash_the_id_then_the_kind() {
        let long = "a kind longer than the twenty-four bytes kept on the stack";
        for kind in ["client", "server", "", long] {
            let mut buf = 0x0123_4567_89ab_cdefu64.to_be_bytes().to_vec();
            buf.extend_from_slice(kind.as_bytes());
            let want = hash64("tapspan.span", &buf).max(1);
            assert_eq!(span_id(0x0123_4567_89ab_cdef, kind), want, "{kind}");
        }
    }

    #[test]
    fn a_hash_of_parts_is_the_hash_of_them_joined() {
        let parts: [&[u8]; 3] = [b"GET", b"\0", b"/users/{id}"];
        assert_eq!(
            hash64_of_parts(&[b"tapspan.", b"route"], &parts),
            hash64("tapspan.route", &parts.concat())
        );
        assert_eq!(
            hash128("tapspan.trace", b"x") >> 64,
            u128::from(hash64("tapspan.trace/hi", b"x"))
        );
    }

    #[test]
    fn fnv_matches_the_published_test_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (draft-eastlake-fnv test vectors).
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn ids_are_pinned() {
        // Pinned values: if this fails, ids changed for every user. Do not update casually.
        let c: SocketAddr = "10.0.0.1:51234".parse().unwrap();
        let s: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let x = exchange_id(c, s, 1_000_000, true);
        assert_eq!(x, exchange_id(c, s, 1_000_000, true));
        assert_ne!(x, exchange_id(c, s, 1_000_001, true));
        assert_ne!(span_id(x, "client"), span_id(x, "server"));
        assert_eq!(format!("{x:016x}"), PINNED_EXCHANGE_ID);
    }
    const PINNED_EXCHANGE_ID: &str = "cedb316faeaf5a63";
}
