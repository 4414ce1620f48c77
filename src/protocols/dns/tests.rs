use super::*;
use crate::span::AttrValue;

fn msg(id: u16, response: bool, rcode: u8, answers: u16, name: &str) -> Vec<u8> {
    let flags: u16 = if response {
        0x8180 | u16::from(rcode)
    } else {
        0x0100
    };
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    v.extend_from_slice(&answers.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.extend_from_slice(&[0, 0, 1, 0, 1]);
    v
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn udp_queries_pair_by_id_and_endpoints() {
    let (c, s) = (addr("127.0.0.1:45506"), addr("127.0.0.1:53"));
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    t.datagram(1, c, s, &msg(7, false, 0, 0, "api.shop.test"), &mut out);
    t.datagram(2, c, s, &msg(8, false, 0, 0, "missing.shop.test"), &mut out);
    t.datagram(3, s, c, &msg(8, true, 3, 0, "missing.shop.test"), &mut out);
    t.datagram(
        4,
        s,
        addr("127.0.0.1:1"),
        &msg(7, true, 0, 1, "api.shop.test"),
        &mut out,
    );
    t.datagram(5, s, c, &msg(7, true, 0, 1, "api.shop.test"), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].name.as_str(), out[0].error.as_deref()),
        ("missing.shop.test", Some("NXDOMAIN"))
    );
    assert_eq!((out[1].start, out[1].end, out[1].answers), (1, Some(5), 1));
    assert!(out[1].error.is_none());
    assert_eq!(t.stats.unmatched_responses, 1);
    assert!(out[0]
        .attributes()
        .contains(&("dns.question.name", AttrValue::from("missing.shop.test"))));
}

#[test]
fn names_are_as_sent_and_responses_match_them_without_case() {
    let (c, s) = (addr("10.0.0.1:40000"), addr("10.0.0.2:53"));
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    // A client randomising the case of its question (DNS 0x20).
    t.datagram(1, c, s, &msg(5, false, 0, 0, "aPi.ShOp.test"), &mut out);
    // A response with id 5 to another question is not this query's (RFC 5452 §9.1).
    t.datagram(2, s, c, &msg(5, true, 0, 1, "db.shop.test"), &mut out);
    assert!(out.is_empty());
    assert_eq!(t.stats.unmatched_responses, 1);
    // A server that lower-cases the echoed question still answers it (RFC 4343 §3).
    t.datagram(3, s, c, &msg(5, true, 0, 1, "api.shop.TEST"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].name.as_str(), out[0].end),
        ("aPi.ShOp.test", Some(3))
    );
    assert!(out[0]
        .attributes()
        .contains(&("dns.question.name", AttrValue::from("aPi.ShOp.test"))));
}

#[test]
fn unanswered_queries_time_out_by_capture_time() {
    let (c, s) = (addr("127.0.0.1:49844"), addr("127.0.0.1:5353"));
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    t.datagram(1_000, c, s, &msg(1, false, 0, 0, "api.shop.test"), &mut out);
    t.datagram(2_000, c, s, &msg(1, false, 0, 0, "api.shop.test"), &mut out);
    t.advance_to(4_000_000_000, &mut out);
    assert!(out.is_empty());
    t.advance_to(5_000_001_000, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].error.as_deref(), out[0].retransmits),
        (Some("timeout"), 1)
    );
    t.datagram(
        6_000_000_000,
        c,
        s,
        &msg(2, false, 0, 0, "db.shop.test"),
        &mut out,
    );
    t.finish(&mut out);
    assert_eq!(out[1].error.as_deref(), Some("no_response"));
}

#[test]
fn an_answered_query_does_not_time_out_a_younger_one() {
    let (c, s) = (addr("127.0.0.1:40000"), addr("127.0.0.1:53"));
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    t.datagram(0, c, s, &msg(1, false, 0, 0, "a.test"), &mut out);
    t.datagram(1, s, c, &msg(1, true, 0, 1, "a.test"), &mut out);
    t.datagram(
        2_000_000_000,
        c,
        s,
        &msg(2, false, 0, 0, "b.test"),
        &mut out,
    );
    // The answered query's entry is past the timeout; the pending one is not due yet.
    t.advance_to(6_000_000_000, &mut out);
    assert_eq!(out.len(), 1);
    t.advance_to(7_000_000_000, &mut out);
    assert_eq!(out[1].error.as_deref(), Some("timeout"));
    assert_eq!(out[1].given_up, Some(7_000_000_000));
}

#[test]
fn the_pending_table_is_capped() {
    let s = addr("127.0.0.1:53");
    let mut t = DnsTracker::new(DnsConfig {
        timeout_ns: u64::MAX,
        max_pending: 4,
        ..DnsConfig::default()
    });
    let mut out = Vec::new();
    for i in 0..10u16 {
        t.datagram(
            u64::from(i),
            addr("127.0.0.1:1000"),
            s,
            &msg(i, false, 0, 0, "a.test"),
            &mut out,
        );
    }
    assert_eq!(out.len(), 6);
    assert!(out.iter().all(|x| x.error.as_deref() == Some("evicted")));
    assert_eq!(t.pending.len(), 4);
}

#[test]
fn garbage_and_loops_are_counted_not_fatal() {
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    let mut looped = msg(1, false, 0, 0, "x");
    looped.truncate(12);
    looped.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
    for p in [&b""[..], b"\x00\x01", &looped] {
        t.datagram(1, addr("127.0.0.1:1"), addr("127.0.0.1:53"), p, &mut out);
    }
    assert_eq!(t.stats.malformed, 3);
    assert!(out.is_empty());
}

#[test]
fn tcp_framing_across_any_split() {
    let q = msg(9, false, 0, 0, "shop.test");
    let mut stream = (q.len() as u16).to_be_bytes().to_vec();
    stream.extend_from_slice(&q);
    stream.extend_from_slice(&(q.len() as u16).to_be_bytes());
    stream.extend_from_slice(&q);
    for cut in 0..stream.len() {
        let mut f = TcpFramer::default();
        let mut got = Vec::new();
        f.push((1, 0), &stream[..cut], &mut |t, m| {
            got.push((t, m.to_vec()))
        });
        f.push((2, cut as u64), &stream[cut..], &mut |t, m| {
            got.push((t, m.to_vec()))
        });
        assert_eq!(got.len(), 2, "{cut}");
        assert!(got.iter().all(|(_, m)| *m == q));
        // Each message's offset is its length prefix's, however the stream was cut.
        let offsets: Vec<u64> = got.iter().map(|((_, _, o), _)| *o).collect();
        assert_eq!(offsets, [0, 2 + q.len() as u64], "{cut}");
    }
}

proptest::proptest! {
    /// Any datagram and any TCP bytes: no panic; malformed ones are counted.
    #[test]
    fn arbitrary_messages_never_panic(
        msgs in proptest::collection::vec(proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::sample::select(vec![0u8, 1, 0xc0, 0x0c, 3, 0x3f])],
            0..80), 0..32),
    ) {
        let mut t = DnsTracker::new(DnsConfig { timeout_ns: 10, max_pending: 8, ..DnsConfig::default() });
        let mut out = Vec::new();
        let mut f = TcpFramer::default();
        let mut offset = 0;
        for (i, m) in msgs.iter().enumerate() {
            let (c, s) = (addr("127.0.0.1:1000"), addr("127.0.0.1:53"));
            let (src, dst) = if i % 2 == 0 { (c, s) } else { (s, c) };
            t.datagram(i as u64, src, dst, m, &mut out);
            f.push((i as u64, offset), m, &mut |w, b| t.message(w, c, s, b, &mut out));
            offset += m.len() as u64;
        }
        t.finish(&mut out);
        proptest::prop_assert!(t.pending.is_empty() && t.order.is_empty());
    }
}
