//! No-panic properties for every byte-facing entry point: random bytes and random truncations
//! or bit flips of valid frames into `Decoder::decode` for every link type, and random or damaged
//! files into `FileSource`. Test-only.

use std::io::Cursor;

use proptest::prelude::*;

use crate::testutil::*;
use crate::{DecodeConfig, Decoder, FileSource, LinkType, PacketSource, RawFrame, Timestamp};

const LINK_TYPES: [u32; 18] = [
    0, 1, 12, 14, 101, 108, 113, 228, 229, 239, 276, 9, 50, 104, 105, 127, 192, 147,
];

/// Valid frames of many shapes, as (link type, bytes).
fn corpus() -> Vec<(u32, Vec<u8>)> {
    let ip = tcp4(b"GET / HTTP/1.1\r\n\r\n");
    let ip6 = tcp6(b"HTTP/1.1 200 OK\r\n\r\n");
    let eth = ether(0x0800, &ip);
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    vx.extend_from_slice(&eth);
    let mut gre = vec![0x30, 0, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 2];
    gre.extend_from_slice(&eth);
    let mut erspan3 = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
    erspan3.extend_from_slice(&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    erspan3.extend_from_slice(&[0; 8]);
    erspan3.extend_from_slice(&eth);
    let mut geneve = vec![2, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    geneve.extend_from_slice(&eth);
    let mut nflog = vec![2, 0, 0, 0];
    nflog.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
    nflog.extend_from_slice(&9u16.to_le_bytes());
    nflog.extend_from_slice(&ip);
    let mut mpls = vec![0, 1, 0x01, 64, 0, 0, 0, 0];
    mpls.extend_from_slice(&ether(0x86dd, &ip6));
    let mut pppoe = vec![0x11, 0, 0, 1, 0, 0, 0, 0x21];
    pppoe.extend_from_slice(&ip);
    let tcp = tcp_bytes(&[7u8; 64]);
    vec![
        (1, eth.clone()),
        (1, ether(0x88a8, &tag(1, 0x8100, &tag(2, 0x8864, &pppoe)))),
        (1, ether(0x8847, &mpls)),
        (101, ip6.clone()),
        (101, udp4(4789, &vx)),
        (101, udp4(6081, &geneve)),
        (101, ip4_raw(47, &gre)),
        (101, ip4_raw(47, &erspan3)),
        (239, nflog),
        (0, [&2u32.to_le_bytes()[..], &ip].concat()),
        (101, frag4(3, 0, true, &tcp[..40])),
        (101, frag4(3, 40, false, &tcp[40..])),
        (101, frag6(3, 0, true, &tcp[..40])),
        (101, frag6(3, 40, false, &tcp[40..])),
    ]
}

fn decode_all(dec: &mut Decoder, link: u32, data: &[u8], ts: u64) {
    let frame = RawFrame {
        ts: Timestamp(ts),
        link_type: LinkType(link),
        data,
        orig_len: data.len() as u32,
        offset: 0,
    };
    if let Some(seg) = dec.decode(&frame) {
        // Touch the payload: it must be a valid slice.
        let _ = seg.payload.iter().fold(0u8, |a, b| a ^ b);
    }
}

fn drain(mut src: FileSource) {
    let mut dec = Decoder::new(DecodeConfig::default());
    for _ in 0..10_000 {
        match src.next_frame() {
            Ok(Some(frame)) => {
                let _ = dec.decode(&frame);
            }
            Ok(None) => return,
            Err(_) => {
                assert!(matches!(src.next_frame(), Ok(None)));
                return;
            }
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_decoder(
        link in prop::sample::select(&LINK_TYPES[..]),
        data in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut dec = Decoder::new(DecodeConfig::default());
        decode_all(&mut dec, link, &data, 1);
        prop_assert_eq!(dec.stats().frames, 1);
    }

    #[test]
    fn damaged_valid_frames_never_panic_the_decoder(
        pick in any::<prop::sample::Index>(),
        as_link in prop::option::of(prop::sample::select(&LINK_TYPES[..])),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let corpus = corpus();
        let (link, mut data) = corpus[pick.index(corpus.len())].clone();
        for (at, mask) in flips {
            if !data.is_empty() {
                let i = at.index(data.len());
                data[i] ^= mask;
            }
        }
        let len = cut.index(data.len() + 1);
        let mut dec = Decoder::new(DecodeConfig::default());
        // Whole corpus first (fragments meet their partners), then the damaged frame.
        for (l, d) in &corpus {
            decode_all(&mut dec, *l, d, 1);
        }
        decode_all(&mut dec, as_link.unwrap_or(link), &data[..len], 2);
    }

    #[test]
    fn random_files_never_panic_the_reader(
        prefix in prop::sample::select(vec![
            vec![],
            vec![0xd4, 0xc3, 0xb2, 0xa1],
            vec![0xa1, 0xb2, 0x3c, 0x4d],
            vec![0x0a, 0x0d, 0x0d, 0x0a],
        ]),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = prefix;
        bytes.extend_from_slice(&body);
        if let Ok(src) = FileSource::from_reader("fuzz", Cursor::new(bytes)) {
            drain(src);
        }
    }

    #[test]
    fn damaged_valid_files_never_panic_the_reader(
        ng in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let frames = corpus();
        let mut bytes = if ng {
            let mut w = PcapNg::new();
            w.shb(false);
            w.idb(1, 0, Some(9), None);
            w.idb(101, 0, Some(0x80 | 20), Some(-5));
            for (i, (link, data)) in frames.iter().enumerate() {
                w.epb(u32::from(*link != 1), i as u64 * 1_000, data);
            }
            w.spb(&frames[0].1);
            w.bytes
        } else {
            let records: Vec<(u32, u32, &[u8])> =
                frames.iter().filter(|f| f.0 == 101).map(|f| (1, 2, &f.1[..])).collect();
            pcap(false, false, 101, 65535, &records)
        };
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len);
        if let Ok(src) = FileSource::from_reader("fuzz", Cursor::new(bytes)) {
            drain(src);
        }
    }
}
