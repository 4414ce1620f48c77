//! RFC 7541 Appendix C, byte for byte, plus the tolerance and hostile cases.

use super::huffman::{self, HuffmanError};
use super::primitive::integer;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn pairs(b: &Block) -> Vec<(String, String)> {
    let text = |p: &Option<Vec<u8>>| {
        p.as_ref()
            .map_or("?".to_string(), |v| String::from_utf8_lossy(v).into_owned())
    };
    b.fields
        .iter()
        .map(|f| (text(&f.name), text(&f.value)))
        .collect()
}

fn table(d: &HpackDecoder) -> Vec<(String, String)> {
    pairs(&Block {
        fields: d.table().entries().cloned().collect(),
        ..Block::default()
    })
}

fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

const BIG: usize = 1 << 20;

/// Decodes each block in turn, checking its fields, the table after it, and its size.
/// One block: its bytes, the fields, the table after it (newest first), the table's size.
type Step<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    usize,
);

fn series(size: usize, steps: &[Step<'_>]) {
    let mut d = HpackDecoder::new(true, 65536);
    if size != DEFAULT_TABLE_SIZE {
        // The settings of C.5/C.6 (256 octets), as a size update: 31 + 97 + 1 × 128.
        assert_eq!(size, 256);
        d.decode(&[0x3f, 0xe1, 0x01], BIG);
    }
    for (i, (bytes, fields, dynamic, table_size)) in steps.iter().enumerate() {
        let b = d.decode(&hex(bytes), BIG);
        assert_eq!(b.error, None, "step {i}");
        assert_eq!(pairs(&b), p(fields), "step {i}");
        assert_eq!(table(&d), p(dynamic), "table after step {i}");
        assert_eq!(d.table().size(), *table_size, "size after step {i}");
        assert!(!d.table().may_have_unknown_entries());
    }
}

#[test]
fn c1_integers() {
    assert_eq!(integer(&[0b0000_1010], 5), Ok((10, 1)));
    assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Ok((1337, 3)));
    assert_eq!(integer(&[0x2a], 8), Ok((42, 1)));
}

#[test]
fn c2_literals_and_indexed() {
    let mut d = HpackDecoder::new(true, 65536);
    let b = d.decode(
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        BIG,
    );
    assert_eq!(pairs(&b), p(&[("custom-key", "custom-header")]));
    assert_eq!(table(&d), p(&[("custom-key", "custom-header")]));
    assert_eq!(d.table().size(), 55);

    let mut d = HpackDecoder::new(true, 65536);
    let b = d.decode(&hex("040c 2f73 616d 706c 652f 7061 7468"), BIG);
    assert_eq!(pairs(&b), p(&[(":path", "/sample/path")]));
    assert_eq!(d.table().size(), 0);

    let b = d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), BIG);
    assert_eq!(pairs(&b), p(&[("password", "secret")]));
    assert_eq!(d.table().size(), 0);

    let b = d.decode(&hex("82"), BIG);
    assert_eq!(pairs(&b), p(&[(":method", "GET")]));
    assert_eq!(d.table().size(), 0);
}

const AUTH: (&str, &str) = (":authority", "www.example.com");
const NO_CACHE: (&str, &str) = ("cache-control", "no-cache");
const CUSTOM: (&str, &str) = ("custom-key", "custom-value");
const GET: (&str, &str) = (":method", "GET");
const HTTP: (&str, &str) = (":scheme", "http");
const ROOT: (&str, &str) = (":path", "/");

#[test]
fn c3_requests_without_huffman() {
    series(
        4096,
        &[
            (
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                &[GET, HTTP, ROOT, AUTH],
                &[AUTH],
                57,
            ),
            (
                "8286 84be 5808 6e6f 2d63 6163 6865",
                &[GET, HTTP, ROOT, AUTH, NO_CACHE],
                &[NO_CACHE, AUTH],
                110,
            ),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                &[
                    GET,
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    AUTH,
                    CUSTOM,
                ],
                &[CUSTOM, NO_CACHE, AUTH],
                164,
            ),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    series(
        4096,
        &[
            (
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                &[GET, HTTP, ROOT, AUTH],
                &[AUTH],
                57,
            ),
            (
                "8286 84be 5886 a8eb 1064 9cbf",
                &[GET, HTTP, ROOT, AUTH, NO_CACHE],
                &[NO_CACHE, AUTH],
                110,
            ),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                &[
                    GET,
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    AUTH,
                    CUSTOM,
                ],
                &[CUSTOM, NO_CACHE, AUTH],
                164,
            ),
        ],
    );
}

const PRIVATE: (&str, &str) = ("cache-control", "private");
const DATE1: (&str, &str) = ("date", "Mon, 21 Oct 2013 20:13:21 GMT");
const DATE2: (&str, &str) = ("date", "Mon, 21 Oct 2013 20:13:22 GMT");
const LOCATION: (&str, &str) = ("location", "https://www.example.com");
const GZIP: (&str, &str) = ("content-encoding", "gzip");
const COOKIE: (&str, &str) = (
    "set-cookie",
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
);

#[test]
fn c5_responses_without_huffman_evict() {
    series(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230
                 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65
                 7861 6d70 6c65 2e63 6f6d",
                &[(":status", "302"), PRIVATE, DATE1, LOCATION],
                &[LOCATION, DATE1, PRIVATE, (":status", "302")],
                222,
            ),
            (
                "4803 3330 37c1 c0bf",
                &[(":status", "307"), PRIVATE, DATE1, LOCATION],
                &[(":status", "307"), LOCATION, DATE1, PRIVATE],
                222,
            ),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220
                 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157
                 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076
                 6572 7369 6f6e 3d31",
                &[(":status", "200"), PRIVATE, DATE2, LOCATION, GZIP, COOKIE],
                &[COOKIE, GZIP, DATE2],
                215,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman_evict() {
    series(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0
                 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                &[(":status", "302"), PRIVATE, DATE1, LOCATION],
                &[LOCATION, DATE1, PRIVATE, (":status", "302")],
                222,
            ),
            (
                "4883 640e ffc1 c0bf",
                &[(":status", "307"), PRIVATE, DATE1, LOCATION],
                &[(":status", "307"), LOCATION, DATE1, PRIVATE],
                222,
            ),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b
                 d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27
                 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                &[(":status", "200"), PRIVATE, DATE2, LOCATION, GZIP, COOKIE],
                &[COOKIE, GZIP, DATE2],
                215,
            ),
        ],
    );
}

#[test]
fn huffman_codes_match_appendix_b_rows() {
    // (symbol, code, length) rows of Appendix B: one or more per length.
    let rows: &[(usize, u32, u8)] = &[
        (0, 0x1ff8, 13),
        (1, 0x7fffd8, 23),
        (9, 0xffffea, 24),
        (10, 0x3ffffffc, 30),
        (32, 0x14, 6),
        (33, 0x3f8, 10),
        (35, 0xffa, 12),
        (38, 0xf8, 8),
        (39, 0x7fa, 11),
        (48, 0x0, 5),
        (58, 0x5c, 7),
        (60, 0x7ffc, 15),
        (92, 0x7fff0, 19),
        (94, 0x3ffc, 14),
        (116, 0x9, 5),
        (127, 0xffffffc, 28),
        (128, 0xfffe6, 20),
        (129, 0x3fffd2, 22),
        (153, 0x1fffdc, 21),
        (199, 0x1ffffec, 25),
        (192, 0x3ffffe0, 26),
        (203, 0x7ffffde, 27),
        (249, 0xffffffe, 28),
        (254, 0x7fffff0, 27),
        (255, 0x3ffffee, 26),
        (256, 0x3fffffff, 30),
    ];
    for &(sym, code, len) in rows {
        assert_eq!(huffman::code_of(sym), (code, len), "symbol {sym}");
    }
}

/// Encodes with the derived codes (test only), padding with ones.
fn encode(s: &[u8]) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for &b in s {
        let (code, len) = huffman::code_of(b as usize);
        acc = acc << len | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push((acc << (8 - bits) | (0xff >> bits)) as u8);
    }
    out
}

#[test]
fn huffman_round_trips_every_byte() {
    let all: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    huffman::decode(&encode(&all), &mut out).unwrap();
    assert_eq!(out, all);
}

#[test]
fn huffman_rejects_eos_and_bad_padding() {
    let mut out = Vec::new();
    // EOS (30 ones) then padding: an EOS inside the string.
    assert_eq!(
        huffman::decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
        Err(HuffmanError::Eos)
    );
    // 'a' (00011) then 8 bits of ones: padding longer than 7 bits.
    assert_eq!(
        huffman::decode(&[0x1f, 0xff], &mut out),
        Err(HuffmanError::Padding)
    );
    // '0' (00000) then 000: padding not made of ones.
    assert_eq!(
        huffman::decode(&[0x00], &mut out),
        Err(HuffmanError::Padding)
    );
    out.clear();
    assert_eq!(huffman::decode(&[], &mut out), Ok(()));
    assert!(out.is_empty());
}

#[test]
fn hostile_integers_and_strings_never_panic() {
    let mut d = HpackDecoder::new(true, 4096);
    // Index 2^32 (7-bit prefix): read exactly, unknown field, the block goes on.
    let mut block = vec![0xff];
    let mut v = (1u64 << 32) - 127;
    while v >= 128 {
        block.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    block.push(v as u8);
    block.push(0x82);
    let b = d.decode(&block, BIG);
    assert_eq!(b.invalid, 1);
    assert_eq!(b.error, None);
    assert_eq!(pairs(&b), p(&[("?", "?"), GET]));
    // An integer that never ends: overflow, not a wrap.
    let b = d.decode(&[0xff; 40], BIG);
    assert_eq!(b.error, Some((0, HpackError::IntegerOverflow)));
    // A 1 GB string declared in a 10-byte block.
    let b = d.decode(&[0x82, 0x00, 0x7f, 0x80, 0x80, 0x80, 0x80, 0x04, b'a'], BIG);
    assert_eq!(b.error, Some((1, HpackError::Truncated)));
    assert_eq!(pairs(&b), p(&[GET]));
    // Index 0 is never valid (§6.1).
    assert_eq!(d.decode(&[0x80], BIG).invalid, 1);
    // A table size update past the cap is clamped; later misses are unknown, not invalid.
    let b = d.decode(&[0x3f, 0xe1, 0xff, 0xff, 0xff, 0x0f, 0xbe], BIG);
    assert_eq!((b.unknown, b.invalid), (1, 0));
    // Every truncation of a real block.
    let full = hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81");
    for cut in 0..full.len() {
        HpackDecoder::new(false, 4096).decode(&full[..cut], BIG);
    }
}

#[test]
fn header_list_cap_keeps_the_table_right() {
    let mut d = HpackDecoder::new(true, 4096);
    let b = d.decode(
        &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        130,
    );
    assert!(b.list_truncated);
    assert_eq!(pairs(&b), p(&[GET, HTTP, ROOT]));
    assert_eq!(table(&d), p(&[AUTH]));
}

#[test]
fn midstream_unknown_entries_stay_unknown_and_new_ones_resolve() {
    // The capture starts before C.3's second request: the entry the first added is unknown.
    let mut d = HpackDecoder::new(false, 65536);
    let b = d.decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"), BIG);
    assert_eq!(pairs(&b), p(&[GET, HTTP, ROOT, ("?", "?"), NO_CACHE]));
    assert_eq!(b.unknown, 1);
    // The third: 0xbf (index 63) is now the unknown authority; 0x40 adds custom-key.
    let b = d.decode(
        &hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
        BIG,
    );
    assert_eq!(b.unknown, 1);
    // A fourth request refers to both new entries (62, 63) and the old one (64).
    let b = d.decode(&[0xbe, 0xbf, 0xc0], BIG);
    assert_eq!(pairs(&b), p(&[CUSTOM, NO_CACHE, ("?", "?")]));
    assert_eq!(b.invalid, 0);
    // A literal naming the unknown entry keeps its value and is indexed with a lower bound.
    let b = d.decode(&[0x40 | 0x3f, 64 - 63, 0x02, b'h', b'i', 0xbe], BIG);
    assert_eq!(pairs(&b), p(&[("?", "hi"), ("?", "hi")]));
}

#[test]
fn a_size_update_to_zero_makes_the_table_certain_again() {
    let mut d = HpackDecoder::new(false, 65536);
    assert!(d.table().may_have_unknown_entries());
    let b = d.decode(&[0x20, 0x3f, 0xe1, 0x1f, 0xbe], BIG);
    assert!(!d.table().may_have_unknown_entries());
    assert_eq!((b.unknown, b.invalid), (0, 1));
}

#[test]
fn exact_table_fills_and_evicts_the_unknown_tail() {
    // Picked up mid-stream, then told the size (256) by an update: once known entries leave
    // less than 32 octets (the smallest entry), no unknown entry can remain.
    let mut d = HpackDecoder::new(false, 65536);
    d.decode(&[0x3f, 0xe1, 0x01], BIG); // size update to 256
    assert!(d.table().may_have_unknown_entries());
    let big = format!("{:0>200}", "");
    let mut block = vec![0x40, 0x01, b'x', 0x7f, 200 - 127];
    block.extend_from_slice(big.as_bytes());
    d.decode(&block, BIG); // one entry of 1 + 200 + 32 = 233 octets: 23 left
    assert!(!d.table().may_have_unknown_entries());
    assert_eq!(d.decode(&[0xbf], BIG).invalid, 1);
}
