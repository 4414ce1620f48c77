//! Hostile input through the whole pipeline (decode → reassembly → HTTP → spans): random,
//! truncated and mutated frames, shuffled segment orders, and a flood of connections that never
//! close. Nothing may panic, and memory stays within the configured caps.

mod common;

use std::path::PathBuf;

use common::craft::{self, Conversation, Dir};
use proptest::prelude::*;
use tapspan::pipeline::PipelineConfig;
use tapspan::span::spans_for;
use tapspan_capture::LinkType;

const REQ: &[u8] = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
const RESP: &[u8] =
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!";

/// Ethernet frames of a small keep-alive conversation.
fn seed_frames() -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(77, 9999);
    c.handshake();
    for _ in 0..3 {
        c.send(Dir::C2S, REQ, 40)
            .send(Dir::S2C, RESP, 30)
            .ack(Dir::C2S);
    }
    c.fin();
    craft::ethernet_frames(&c.segs)
}

fn run_frames(frames: &[(u64, Vec<u8>)], link: LinkType) -> usize {
    let (exchanges, _) = common::run_frames(PipelineConfig::default(), frames, link);
    exchanges.iter().map(|ex| spans_for(ex).len()).sum()
}

#[test]
fn seed_conversation_decodes() {
    // Three exchanges, two spans each: the property tests below start from a working input.
    assert_eq!(run_frames(&seed_frames(), LinkType::ETHERNET), 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_frames_never_panic(
        mutations in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..64),
        truncations in prop::collection::vec((any::<usize>(), any::<usize>()), 0..8),
        order in any::<u64>(),
    ) {
        let mut frames = seed_frames();
        let n = frames.len();
        for (f, at, byte) in mutations {
            let data = &mut frames[f % n].1;
            let len = data.len();
            data[at % len] = byte;
        }
        for (f, keep) in truncations {
            let data = &mut frames[f % n].1;
            let len = data.len();
            data.truncate(keep % (len + 1));
        }
        let mut state = order | 1;
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 4 == 0 {
                frames.swap(i, (state % (i as u64 + 1)) as usize);
            }
        }
        run_frames(&frames, LinkType::ETHERNET);
    }

    #[test]
    fn random_frames_of_every_link_type_never_panic(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..50),
        link in prop::sample::select(vec![0u32, 1, 12, 101, 108, 113, 228, 229, 239, 276, 9999]),
    ) {
        let frames: Vec<(u64, Vec<u8>)> = frames.into_iter().enumerate().map(|(i, f)| (i as u64, f)).collect();
        run_frames(&frames, LinkType(link));
    }

    #[test]
    fn random_tcp_payloads_never_panic(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..30),
        seqs in prop::collection::vec(any::<u32>(), 30),
        flags in prop::collection::vec(0u8..64, 30),
    ) {
        // Real headers, hostile payloads, sequence numbers and flags.
        let mut frames = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let seg = craft::Seg {
                ts_ns: i as u64 * 1000,
                dir: if flags[i] & 32 == 0 { Dir::C2S } else { Dir::S2C },
                seq: if flags[i] & 16 == 0 { seqs[i] } else { seqs[0].wrapping_add(i as u32 * 7) },
                ack: seqs[(i + 1) % 30],
                syn: flags[i] & 1 != 0,
                fin: flags[i] & 2 != 0,
                rst: flags[i] & 4 != 0,
                payload: if flags[i] & 8 == 0 { p.clone() } else { [REQ, RESP, p].concat() },
            };
            frames.push((seg.ts_ns, craft::ethernet(&craft::ipv4_packet(&seg), &[])));
        }
        run_frames(&frames, LinkType::ETHERNET);
    }
}

/// A capture of 100 000 connections that each send a request and never close.
fn flood_capture() -> PathBuf {
    let path = std::env::temp_dir().join(format!("tapspan-flood-{}.pcap", std::process::id()));
    let mut frames = Vec::with_capacity(100_000);
    for i in 0..100_000u32 {
        let src = ([10, 50, (i >> 8) as u8, i as u8], 1024 + (i >> 16) as u16);
        let seg = craft::Seg {
            ts_ns: craft::T0 + i as u64 * 10_000,
            dir: Dir::C2S,
            seq: i,
            ack: 1,
            syn: false,
            fin: false,
            rst: false,
            payload: b"GET /never-answered HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        };
        let mut ip = craft::ipv4_packet(&seg);
        // Rewrite the client address and port (checksums are not verified by a passive tap).
        ip[12..16].copy_from_slice(&src.0);
        ip[20..22].copy_from_slice(&src.1.to_be_bytes());
        frames.push((seg.ts_ns, craft::ethernet(&ip, &[])));
    }
    std::fs::write(&path, craft::pcap(1, false, &frames)).unwrap();
    path
}

#[test]
fn a_hundred_thousand_open_connections_stay_within_the_cap() {
    let path = flood_capture();
    let mut config = PipelineConfig::default();
    config.reassembly.max_connections = 10_000;
    let (exchanges, outcome) = common::replay_with(std::slice::from_ref(&path), config);
    std::fs::remove_file(&path).ok();
    let r = &outcome.stats.reassembly;
    assert_eq!(r.connections, 100_000);
    assert!(r.peak_connections <= 10_000, "peak {}", r.peak_connections);
    // Evictions happen an eighth of the table at a time; the rest end with the capture.
    assert!(
        r.evicted >= 90_000 - 1_250 && r.evicted <= 90_000,
        "evicted {}",
        r.evicted
    );
    // Nothing is dropped silently: every request becomes an exchange saying why it ended.
    assert_eq!(exchanges.len(), 100_000);
    let evicted = exchanges
        .iter()
        .filter(|e| e.error == Some("evicted"))
        .count();
    assert_eq!(evicted as u64, r.evicted);
    assert!(exchanges
        .iter()
        .all(|e| matches!(e.error, Some("evicted") | Some("capture_ended"))));
}
