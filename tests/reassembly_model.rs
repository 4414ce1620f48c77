//! The reassembler against a byte-map model: random segmentation, reordering, duplication,
//! conflicting retransmissions and loss. Whatever the order, every delivered byte must be the
//! first copy of that byte offset, bytes are delivered in offset order exactly once, and every
//! offset below the end is either delivered or inside a reported gap.

use std::borrow::Cow;
use std::net::SocketAddr;

use proptest::prelude::*;
use tapspan::reassembly::{CloseReason, Direction, Reassembler, ReassemblyConfig, StreamEvent};
use tapspan_capture::{FlowKey, TcpFlags, TcpSegment, Timestamp};

fn client() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}
fn server() -> SocketAddr {
    "10.0.0.2:80".parse().unwrap()
}

fn seg(ts: u64, seq: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
    TcpSegment {
        ts: Timestamp(ts),
        flow: FlowKey {
            src: client(),
            dst: server(),
        },
        seq,
        ack: 0,
        flags: TcpFlags(flags),
        window: 1000,
        payload: Cow::Borrowed(payload),
        snapped: 0,
    }
}

#[derive(Debug, Default)]
struct Observed {
    /// (offset, bytes) in the order delivered.
    data: Vec<(u64, Vec<u8>)>,
    gaps: Vec<(u64, u64)>,
    closed: Option<CloseReason>,
}

fn run(isn: u32, segments: &[(u64, Vec<u8>)], config: ReassemblyConfig) -> Observed {
    let mut r = Reassembler::new(config);
    let mut obs = Observed::default();
    let mut sink = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Data {
            dir, offset, bytes, ..
        } => {
            assert_eq!(dir, Direction::ClientToServer);
            obs.data.push((offset, bytes.to_vec()));
        }
        StreamEvent::Gap { offset, len, .. } => obs.gaps.push((offset, len)),
        StreamEvent::Close { why, .. } => obs.closed = Some(why),
        _ => {}
    };
    r.push(&seg(0, isn, TcpFlags::SYN, &[]), &mut sink);
    for (i, (off, bytes)) in segments.iter().enumerate() {
        let seq = isn.wrapping_add(1).wrapping_add(*off as u32);
        r.push(&seg(1 + i as u64, seq, TcpFlags::ACK, bytes), &mut sink);
    }
    r.finish(&mut sink);
    obs
}

/// Split `stream` into segments, then duplicate, corrupt copies, drop and shuffle them.
/// (client ISN, the stream, segments as (offset, bytes) in arrival order, loss allowed)
type Scenario = (u32, Vec<u8>, Vec<(u64, Vec<u8>)>, bool);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 1..2000),
        prop::collection::vec(1usize..300, 1..40),
        prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..40),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(isn, stream, cuts, mutations, shuffle_seed, allow_loss)| {
            let mut segs = Vec::new();
            let mut at = 0usize;
            let mut k = 0;
            while at < stream.len() {
                let len = cuts[k % cuts.len()].min(stream.len() - at);
                segs.push((at as u64, stream[at..at + len].to_vec()));
                at += len;
                k += 1;
            }
            for (a, b, c) in mutations {
                let i = a as usize % segs.len();
                match b % 3 {
                    // A duplicate with different bytes, offset within the original.
                    0 => {
                        let (off, mut bytes) = segs[i].clone();
                        let cut = (c as usize) % bytes.len();
                        bytes.drain(..cut);
                        for x in bytes.iter_mut() {
                            *x = x.wrapping_add(1);
                        }
                        if !bytes.is_empty() {
                            segs.push((off + cut as u64, bytes));
                        }
                    }
                    1 => {
                        let s = segs[i].clone();
                        segs.push(s);
                    }
                    _ if allow_loss && segs.len() > 1 => {
                        segs.remove(i);
                    }
                    _ => {}
                }
            }
            // Deterministic shuffle from the seed.
            let mut state = shuffle_seed | 1;
            for i in (1..segs.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                segs.swap(i, (state % (i as u64 + 1)) as usize);
            }
            (isn, stream, segs, allow_loss)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reassembly_matches_byte_map_model((isn, _stream, segs, _loss) in scenario()) {
        let obs = run(isn, &segs, ReassemblyConfig::default());

        // Model: the first copy (in arrival order) of each offset wins.
        let end = segs.iter().map(|(o, b)| o + b.len() as u64).max().unwrap_or(0);
        let mut model: Vec<Option<u8>> = vec![None; end as usize];
        for (off, bytes) in &segs {
            for (i, b) in bytes.iter().enumerate() {
                let slot = &mut model[*off as usize + i];
                if slot.is_none() {
                    *slot = Some(*b);
                }
            }
        }

        // Delivered in order, each offset once, bytes equal to the model's first copy.
        let mut cursor = 0u64;
        let mut delivered: Vec<Option<u8>> = vec![None; end as usize];
        let mut events: Vec<(u64, u64, bool)> = obs.data.iter().map(|(o, b)| (*o, b.len() as u64, true)).collect();
        events.extend(obs.gaps.iter().map(|(o, l)| (*o, *l, false)));
        events.sort_by_key(|e| e.0);
        for (off, len, is_data) in &events {
            prop_assert_eq!(*off, cursor, "events must tile the stream");
            cursor += len;
            if !is_data {
                for o in *off..off + len {
                    prop_assert!(model[o as usize].is_none(), "gap over captured byte {}", o);
                }
            }
        }
        prop_assert_eq!(cursor, end, "everything up to the last captured byte is accounted for");
        for (off, bytes) in &obs.data {
            for (i, b) in bytes.iter().enumerate() {
                let o = *off as usize + i;
                prop_assert!(delivered[o].is_none());
                delivered[o] = Some(*b);
                prop_assert_eq!(Some(*b), model[o], "byte {} differs from first copy", o);
            }
        }
        let data_offsets: Vec<u64> = obs.data.iter().map(|d| d.0).collect();
        prop_assert!(data_offsets.windows(2).all(|w| w[0] < w[1]), "data delivered in order");
        prop_assert_eq!(obs.closed, Some(CloseReason::CaptureEnd));
    }
}

#[test]
fn sequence_wraparound_is_seamless() {
    let isn = u32::MAX - 5;
    let segs = vec![(0u64, b"0123456789".to_vec()), (10, b"abcdef".to_vec())];
    let obs = run(isn, &segs, ReassemblyConfig::default());
    let all: Vec<u8> = obs.data.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(all, b"0123456789abcdef");
    assert!(obs.gaps.is_empty());
}

#[test]
fn held_bytes_over_the_cap_skip_the_hole() {
    let config = ReassemblyConfig {
        max_held_bytes_per_direction: 100,
        ..ReassemblyConfig::default()
    };
    // Offset 0..10 is lost; 150 bytes arrive after the hole.
    let segs = vec![(10u64, vec![b'x'; 60]), (70, vec![b'y'; 90])];
    let mut r = Reassembler::new(config);
    let mut gaps = Vec::new();
    let mut data = 0usize;
    let mut sink = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Gap { offset, len, .. } => gaps.push((offset, len)),
        StreamEvent::Data { bytes, .. } => data += bytes.len(),
        _ => {}
    };
    r.push(&seg(0, 1000, TcpFlags::SYN, &[]), &mut sink);
    for (off, b) in &segs {
        r.push(&seg(1, 1001 + *off as u32, TcpFlags::ACK, b), &mut sink);
    }
    // The cap, not the end of the capture, released the data.
    assert_eq!(gaps, vec![(0, 10)]);
    assert_eq!(data, 150);
    assert_eq!(r.held_bytes(), 0);
}

#[test]
fn holes_are_given_up_until_the_held_bytes_fit_the_cap_again() {
    // Two holes: skipping the first releases only the piece before the second, which alone is
    // still over the cap (each piece is charged its bookkeeping too), so the second goes as well.
    let cap = 300;
    let config = ReassemblyConfig {
        max_held_bytes_per_direction: cap,
        ..ReassemblyConfig::default()
    };
    let segs = vec![(10u64, vec![b'a'; 1]), (20, vec![b'b'; 200])];
    let mut r = Reassembler::new(config);
    let mut gaps = Vec::new();
    let mut data = 0usize;
    let mut sink = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Gap { offset, len, .. } => gaps.push((offset, len)),
        StreamEvent::Data { bytes, .. } => data += bytes.len(),
        _ => {}
    };
    r.push(&seg(0, 1000, TcpFlags::SYN, &[]), &mut sink);
    for (off, b) in &segs {
        r.push(&seg(1, 1001 + *off as u32, TcpFlags::ACK, b), &mut sink);
        assert!(
            r.held_bytes() <= cap,
            "held {} over the cap",
            r.held_bytes()
        );
    }
    assert_eq!(gaps, vec![(0, 10), (11, 9)]);
    assert_eq!(data, 201);
    r.finish(&mut |_| {});
    assert_eq!(r.stats.holes_skipped_at_cap, 2);
}

#[test]
fn conflicting_retransmission_is_counted_and_first_copy_wins() {
    let segs = vec![
        (5u64, b"WORLD".to_vec()),
        (5, b"EVIL!".to_vec()),
        (0, b"HELLO".to_vec()),
    ];
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut out = Vec::new();
    let mut sink = |ev: StreamEvent<'_>| {
        if let StreamEvent::Data { bytes, .. } = ev {
            out.extend_from_slice(bytes)
        }
    };
    r.push(&seg(0, 7, TcpFlags::SYN, &[]), &mut sink);
    for (off, b) in &segs {
        r.push(&seg(1, 8 + *off as u32, TcpFlags::ACK, b), &mut sink);
    }
    r.finish(&mut sink);
    assert_eq!(out, b"HELLOWORLD");
    // W/E, O/V, R/I and D/! differ; the L matches.
    assert_eq!(r.stats.overlap_conflict_bytes, 4);
}

#[test]
fn connection_cap_evicts_and_counts() {
    let config = ReassemblyConfig {
        max_connections: 1000,
        ..ReassemblyConfig::default()
    };
    let mut r = Reassembler::new(config);
    let mut closes = 0u64;
    let mut sink = |ev: StreamEvent<'_>| {
        if let StreamEvent::Close {
            why: CloseReason::Evicted,
            ..
        } = ev
        {
            closes += 1
        }
    };
    for i in 0..100_000u32 {
        let src: SocketAddr = format!(
            "10.{}.{}.{}:{}",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255,
            1024 + (i % 50_000)
        )
        .parse()
        .unwrap();
        let s = TcpSegment {
            flow: FlowKey { src, dst: server() },
            ..seg(i as u64 * 1000, i, TcpFlags::ACK, b"GET / HTTP/1.1\r\n")
        };
        r.push(&s, &mut sink);
        assert!(r.active_connections() <= 1000);
    }
    assert_eq!(r.stats.evicted, 100_000 - r.active_connections() as u64);
    assert_eq!(closes, r.stats.evicted);
}

fn collect_closes(r: &mut Reassembler, segs: &[TcpSegment<'_>]) -> Vec<CloseReason> {
    let mut closes = Vec::new();
    for s in segs {
        r.push(s, &mut |ev| {
            if let StreamEvent::Close { why, .. } = ev {
                closes.push(why)
            }
        });
    }
    closes
}

#[test]
fn idle_connections_expire_by_capture_time() {
    let mut r = Reassembler::new(ReassemblyConfig {
        idle_timeout_ns: 60_000_000_000,
        ..ReassemblyConfig::default()
    });
    let other = TcpSegment {
        flow: FlowKey {
            src: "10.0.0.9:50000".parse().unwrap(),
            dst: server(),
        },
        ..seg(200_000_000_000, 1, TcpFlags::ACK, b"GET / HTTP/1.1\r\n")
    };
    let closes = collect_closes(
        &mut r,
        &[
            seg(1_000_000_000, 10, TcpFlags::ACK, b"GET /a HTTP/1.1\r\n"),
            other,
        ],
    );
    assert_eq!(closes, vec![CloseReason::Idle]);
    assert_eq!(r.active_connections(), 1);
}

#[test]
fn a_reset_followed_by_data_was_ignored_by_the_endpoint() {
    // RFC 5961 §3 / RFC 2385: endpoints drop RSTs that fail their checks; data goes on.
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let closes = collect_closes(
        &mut r,
        &[
            seg(0, 100, TcpFlags::SYN, b""),
            seg(1_000, 101, TcpFlags::RST | TcpFlags::ACK, b""),
            seg(2_000, 101, TcpFlags::ACK, b"GET / HTTP/1.1\r\n\r\n"),
            seg(5_000_000_000, 119, TcpFlags::ACK, b"more"),
        ],
    );
    assert!(closes.is_empty(), "{closes:?} {:?}", r.stats);
    assert_eq!(r.stats.ignored_rsts, 1);
    // A reset that nothing follows closes the connection once it has lingered.
    let closes = collect_closes(
        &mut r,
        &[
            seg(6_000_000_000, 123, TcpFlags::RST, b""),
            TcpSegment {
                flow: FlowKey {
                    src: "10.0.0.9:50000".parse().unwrap(),
                    dst: server(),
                },
                ..seg(9_000_000_000, 1, TcpFlags::ACK, b"x")
            },
        ],
    );
    assert_eq!(closes, vec![CloseReason::Rst]);
}

#[test]
fn late_retransmission_after_close_is_not_a_new_connection() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut opens = 0;
    let server_seg = |ts, seq, flags, payload| TcpSegment {
        flow: FlowKey {
            src: server(),
            dst: client(),
        },
        ..seg(ts, seq, flags, payload)
    };
    let segs = [
        seg(0, 100, TcpFlags::SYN, b""),
        server_seg(1, 500, TcpFlags::SYN | TcpFlags::ACK, b""),
        seg(2, 101, TcpFlags::ACK | TcpFlags::FIN, b""),
        server_seg(
            3,
            501,
            TcpFlags::ACK | TcpFlags::FIN,
            b"HTTP/1.1 200 OK\r\n\r\n",
        ),
        // The server's data again, a second later: the connection is gone.
        server_seg(
            1_000_000_000,
            501,
            TcpFlags::ACK,
            b"HTTP/1.1 200 OK\r\n\r\n",
        ),
    ];
    for s in &segs {
        r.push(s, &mut |ev| {
            if let StreamEvent::Open { .. } = ev {
                opens += 1
            }
        });
    }
    assert_eq!(opens, 1);
    assert_eq!(r.stats.late_segments, 1);
    assert_eq!(r.active_connections(), 0);
}

/// Found by fuzzing (fuzz/regressions/reassembly/held-bytes-past-fin-delivered-after-it): bytes
/// held beyond the FIN's position were released as a gap and data after the FIN at close.
#[test]
fn nothing_follows_a_fin_not_even_held_bytes_beyond_it() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut events = Vec::new();
    let mut sink = |ev: StreamEvent<'_>| {
        events.push(match ev {
            StreamEvent::Data { offset, bytes, .. } => format!("data {offset} {}", bytes.len()),
            StreamEvent::Gap { offset, len, .. } => format!("gap {offset} {len}"),
            StreamEvent::HalfClose { .. } => "fin".to_string(),
            StreamEvent::Close { .. } => "close".to_string(),
            StreamEvent::Open { .. } => "open".to_string(),
        })
    };
    r.push(&seg(0, 0, TcpFlags::SYN, &[]), &mut sink);
    r.push(&seg(1, 11, TcpFlags::ACK, b"0123456789"), &mut sink);
    r.push(
        &seg(2, 1, TcpFlags::ACK | TcpFlags::FIN, b"abcde"),
        &mut sink,
    );
    r.finish(&mut sink);
    assert_eq!(events, ["open", "data 0 5", "fin", "close"]);
    assert_eq!(r.stats.after_fin_bytes, 10);
    assert_eq!(r.held_bytes(), 0);
}

/// A segment the snap length cut (`snapped` bytes sent after its payload) is delivered as its
/// captured bytes and then a gap of exactly the rest, marked snapped — in order or not, and
/// before a FIN it carried.
#[test]
fn bytes_cut_by_the_snap_length_are_a_known_gap() {
    let isn = 7000u32;
    let cut = |ts, off: u32, flags, payload, snapped| TcpSegment {
        snapped,
        ..seg(ts, isn + 1 + off, flags, payload)
    };
    for reversed in [false, true] {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut events = Vec::new();
        let mut sink = |ev: StreamEvent<'_>| match ev {
            StreamEvent::Data { offset, bytes, .. } => {
                events.push(format!("data {offset} {}", String::from_utf8_lossy(bytes)))
            }
            StreamEvent::Gap {
                offset,
                len,
                snapped,
                ..
            } => events.push(format!("gap {offset} {len} {snapped}")),
            StreamEvent::HalfClose { .. } => events.push("fin".into()),
            _ => {}
        };
        r.push(&seg(0, isn, TcpFlags::SYN, &[]), &mut sink);
        let first = cut(1, 0, TcpFlags::ACK, b"abc", 5);
        let second = cut(2, 8, TcpFlags::ACK | TcpFlags::FIN, b"xyz", 4);
        if reversed {
            r.push(&second, &mut sink);
            r.push(&first, &mut sink);
        } else {
            r.push(&first, &mut sink);
            r.push(&second, &mut sink);
        }
        assert_eq!(
            events,
            [
                "data 0 abc",
                "gap 3 5 true",
                "data 8 xyz",
                "gap 11 4 true",
                "fin"
            ],
            "reversed: {reversed}"
        );
        assert_eq!(r.stats.gaps, 0);
    }
}
