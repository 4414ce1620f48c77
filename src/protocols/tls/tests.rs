use super::hello::tests::{client_body, server_body};
use super::*;
use crate::span::AttrValue;

const C: Direction = Direction::ClientToServer;
const S: Direction = Direction::ServerToClient;

fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 3, 3];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(body);
    record(HANDSHAKE, &v)
}

fn run(steps: &[(Direction, Vec<u8>)]) -> (Vec<TlsHandshake>, TlsConn) {
    let mut conn = TlsConn::new();
    let mut out = Vec::new();
    for (i, (d, b)) in steps.iter().enumerate() {
        conn.push(*d, i as u64 * 10, b, &mut out);
    }
    conn.finish(99, &mut out);
    (out, conn)
}

#[test]
fn tls13_completes_at_the_clients_finished() {
    let ch = handshake(
        1,
        &client_body("api.shop.test", &["h2", "http/1.1"], &[0x0304, 0x0303]),
    );
    assert!(TlsConn::sniff(&ch));
    let (x, conn) = run(&[
        (C, ch),
        (
            S,
            [
                handshake(2, &server_body(0x0304, 0x1302, None)),
                record(20, &[1]),
                record(23, &[0; 40]),
            ]
            .concat(),
        ),
        (C, [record(20, &[1]), record(23, &[0; 40])].concat()),
        (C, record(23, &[0; 100])),
    ]);
    assert_eq!(x.len(), 1);
    let h = &x[0];
    assert_eq!(
        (h.start, h.response_start, h.end, h.established),
        (0, Some(10), 20, true)
    );
    assert_eq!(
        conn.server_name(),
        Some("api.shop.test"),
        "kept for the connection"
    );
    let a = h.attributes();
    assert!(a.contains(&("tls.client.server_name", AttrValue::from("api.shop.test"))));
    assert!(a.contains(&("tls.protocol.version", AttrValue::from("1.3"))));
    assert!(a.contains(&("tls.cipher", AttrValue::from("TLS_AES_256_GCM_SHA384"))));
    assert!(
        !a.iter().any(|(k, _)| *k == "tls.next_protocol"),
        "two offered, none visible"
    );
}

#[test]
fn tls12_completes_at_the_servers_finished_and_shows_alpn() {
    let (x, _) = run(&[
        (
            C,
            handshake(
                1,
                &client_body("static.shop.test", &["h2", "http/1.1"], &[0x0303]),
            ),
        ),
        (
            S,
            [
                handshake(2, &server_body(0x0303, 0xc030, Some("h2"))),
                handshake(11, &[0; 300]),
            ]
            .concat(),
        ),
        (
            C,
            [
                handshake(16, &[0; 40]),
                record(20, &[1]),
                record(22, &[0; 40]),
            ]
            .concat(),
        ),
        (S, [handshake(4, &[0; 50]), record(20, &[1])].concat()),
        (S, record(22, &[0; 40])),
    ]);
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].end, x[0].established), (40, true));
    assert_eq!(x[0].next_protocol(), Some("h2"));
}

#[test]
fn alerts_end_it_as_errors() {
    let ch = || handshake(1, &client_body("api.shop.test", &["h2"], &[0x0303]));
    let (x, _) = run(&[(C, ch()), (S, record(ALERT, &[2, 40]))]);
    assert_eq!((x[0].alert, x[0].established), (Some((40, false)), false));
    assert!(x[0]
        .attributes()
        .contains(&("error.type", AttrValue::from("handshake_failure"))));
    let (x, _) = run(&[
        (C, ch()),
        (S, handshake(2, &server_body(0x0304, 0x1302, None))),
        (C, [record(20, &[1]), record(ALERT, &[2, 48])].concat()),
    ]);
    assert_eq!(x[0].alert, Some((48, true)));
    assert!(x[0]
        .attributes()
        .contains(&("tapspan.tls.alert_from", AttrValue::from("client"))));
}

#[test]
fn a_hello_split_over_records_and_packets_is_read() {
    let ch = client_body("api.shop.test", &["h2"], &[0x0304]);
    let mut msg = vec![1];
    msg.extend_from_slice(&(ch.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&ch);
    let (a, b) = msg.split_at(20);
    let stream = [record(HANDSHAKE, a), record(HANDSHAKE, b)].concat();
    let mut conn = TlsConn::new();
    let mut out = Vec::new();
    for byte in &stream {
        conn.push(C, 1, std::slice::from_ref(byte), &mut out);
    }
    assert_eq!(conn.server_name(), Some("api.shop.test"));
    conn.finish(2, &mut out);
    assert_eq!(out[0].cut, Some("handshake_incomplete"));
}

#[test]
fn garbage_and_truncations_are_harmless() {
    let (x, _) = run(&[(C, b"GET / HTTP/1.1\r\n\r\n".to_vec())]);
    assert!(x.is_empty());
    assert!(!TlsConn::sniff(b"GET /"));
    let ch = handshake(1, &client_body("api.shop.test", &["h2"], &[0x0304]));
    for cut in 0..ch.len() {
        let (x, _) = run(&[(C, ch[..cut].to_vec())]);
        assert!(x.len() <= 1);
    }
    // A record longer than TLS allows.
    let (x, _) = run(&[(C, ch.clone()), (S, vec![22, 3, 3, 0xff, 0xff])]);
    assert_eq!(x[0].cut, Some("not_tls"));
}

proptest::proptest! {
    /// Any bytes after a real ClientHello, any split, either direction: no panic, at most one
    /// handshake.
    #[test]
    fn arbitrary_input_never_panics(
        steps in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::sample::select(vec![20u8, 21, 22, 23, 3, 1, 2, 0])],
            0..64)), 0..32),
    ) {
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        conn.push(C, 0, &handshake(1, &client_body("a.test", &["h2"], &[0x0304])), &mut out);
        for (i, (client, bytes)) in steps.iter().enumerate() {
            conn.push(if *client { C } else { S }, i as u64, bytes, &mut out);
        }
        conn.finish(99, &mut out);
        proptest::prop_assert_eq!(out.len(), 1);
    }
}
