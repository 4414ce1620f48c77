//! The HTTP/2 decoder on crafted conversations: framing, streams, gRPC, hostile input.

use super::exchange::StreamError;
use super::frame::*;
use super::*;
use crate::reassembly::Direction;

pub(super) const C: Direction = Direction::ClientToServer;
pub(super) const S: Direction = Direction::ServerToClient;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.extend([kind, flags]);
    v.extend(stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A literal field without indexing, new name (RFC 7541 §6.2.2), short strings only.
pub(super) fn lit(name: &str, value: &str) -> Vec<u8> {
    let mut v = vec![0x00, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v.push(value.len() as u8);
    v.extend_from_slice(value.as_bytes());
    v
}

/// A literal with incremental indexing and a new name (§6.2.1).
fn indexed_lit(name: &str, value: &str) -> Vec<u8> {
    let mut v = lit(name, value);
    v[0] = 0x40;
    v
}

pub(super) fn request(path: &str) -> Vec<u8> {
    // :method GET, :scheme http (static 2, 6), :path literal (name index 4), :authority.
    let mut b = vec![0x82, 0x86, 0x04, path.len() as u8];
    b.extend_from_slice(path.as_bytes());
    b.extend(lit(":authority", "shop.test"));
    b
}

pub(super) fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend((body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(super) fn client_start() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    v
}

fn run_with(
    config: Http2Config,
    from_start: bool,
    steps: &[(Direction, Vec<u8>)],
) -> (Vec<H2Exchange>, Http2Conn) {
    let mut conn = Http2Conn::new(config, from_start);
    let mut out = Vec::new();
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        conn.push(*dir, i as u64 * 10, bytes, &mut out);
    }
    conn.finish(&mut out);
    out.sort_by_key(|x| x.stream_id);
    (out, conn)
}

fn run(steps: &[(Direction, Vec<u8>)]) -> Vec<H2Exchange> {
    run_with(Http2Config::default(), true, steps).0
}

fn simple_conversation() -> Vec<(Direction, Vec<u8>)> {
    let mut c = client_start();
    c.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &request("/a")));
    c.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        3,
        &request("/b?x=1"),
    ));
    let mut s = frame(SETTINGS, 0, 0, &[]);
    s.extend(frame(HEADERS, END_HEADERS, 3, &[0x8d])); // 404, stream 3 first
    s.extend(frame(DATA, END_STREAM, 3, b"nope"));
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    s.extend(frame(DATA, 0, 1, b"hello "));
    s.extend(frame(DATA, END_STREAM, 1, b"world"));
    vec![(C, c), (S, s)]
}

#[test]
fn prior_knowledge_streams_in_flight() {
    let (x, conn) = run_with(Http2Config::default(), true, &simple_conversation());
    assert_eq!(
        conn.stats().resyncs,
        0,
        "the preface is not an HTTP/1.1 request"
    );
    assert_eq!(x.len(), 2);
    assert_eq!(x[0].method.as_deref(), Some("GET"));
    assert_eq!(x[0].path.as_deref(), Some("/a"));
    assert_eq!(x[0].authority.as_deref(), Some("shop.test"));
    assert_eq!(x[0].scheme.as_deref(), Some("http"));
    assert_eq!((x[0].status, x[0].response_body_bytes), (Some(200), 11));
    assert_eq!(
        (x[1].path.as_deref(), x[1].status),
        (Some("/b?x=1"), Some(404))
    );
    assert!(x
        .iter()
        .all(|x| x.error.is_none() && x.unknown_headers.is_empty()));
    assert_eq!((x[0].request_start, x[0].response_end), (Some(0), Some(10)));
    assert!(Http2Conn::sniff(&PREFACE[..5]) && !Http2Conn::sniff(b"GET / HTTP/1.1\r\n\r\n"));
}

#[test]
fn the_same_exchanges_at_every_split() {
    let steps = simple_conversation();
    let whole = run(&steps);
    for (d, bytes) in [(0, &steps[0].1), (1, &steps[1].1)] {
        for cut in 1..bytes.len() {
            let mut split = steps.clone();
            let (a, b) = bytes.split_at(cut);
            split[d] = (split[d].0, a.to_vec());
            split.insert(d + 1, (split[d].0, b.to_vec()));
            let mut x = run(&split);
            for x in &mut x {
                (x.request_start, x.request_end) = (None, None);
                (x.response_start, x.response_end) = (None, None);
            }
            let mut w = whole.clone();
            for x in &mut w {
                (x.request_start, x.request_end) = (None, None);
                (x.response_start, x.response_end) = (None, None);
            }
            assert_eq!(x, w, "split at {cut} of direction {d}");
        }
    }
}

#[test]
fn propagation_headers_are_kept_for_causality() {
    let mut block = request("/traced");
    block.extend(lit(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    block.extend(lit("x-request-id", "6f1c"));
    block.extend(lit("x-other", "no"));
    let mut c = client_start();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let s = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
    let x = run(&[(C, c), (S, s)]);
    let names: Vec<_> = x[0].propagation.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["traceparent", "x-request-id"]);
}

#[test]
fn padding_priority_and_continuation() {
    let mut c = client_start();
    let block = request("/padded");
    let mut p = vec![3]; // pad length
    p.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    p.extend_from_slice(&block[..4]);
    p.extend([0, 0, 0]);
    c.extend(frame(HEADERS, PADDED | PRIORITY_FLAG, 1, &p));
    c.extend(frame(CONTINUATION, END_HEADERS, 1, &block[4..]));
    c.extend(frame(DATA, PADDED | END_STREAM, 1, &[2, b'a', b'b', 0, 0]));
    let s = [frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x89])].concat();
    let x = run(&[(C, c), (S, s)]);
    assert_eq!(x[0].path.as_deref(), Some("/padded"));
    assert_eq!((x[0].request_body_bytes, x[0].status), (2, Some(204)));
}

#[test]
fn grpc_trailers_trailers_only_and_messages() {
    let mut head = vec![0x83, 0x86];
    head.extend(lit(":path", "/shop.Catalog/ListItems"));
    head.extend(lit("content-type", "application/grpc"));
    let mut c = client_start();
    c.extend(frame(HEADERS, END_HEADERS, 1, &head));
    c.extend(frame(DATA, END_STREAM, 1, &grpc_message(b"3")));
    c.extend(frame(HEADERS, END_HEADERS, 3, &head));
    c.extend(frame(DATA, END_STREAM, 3, &grpc_message(b"x")));
    let mut resp = vec![0x88];
    resp.extend(lit("content-type", "application/grpc"));
    let mut msgs = grpc_message(b"row-1");
    msgs.extend(grpc_message(b"row-2"));
    msgs.extend(grpc_message(b"row-3"));
    let mut s = frame(HEADERS, END_HEADERS, 1, &resp);
    s.extend(frame(DATA, 0, 1, &msgs[..7]));
    s.extend(frame(DATA, 0, 1, &msgs[7..]));
    s.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &lit("grpc-status", "0"),
    ));
    let mut only = resp.clone();
    only.extend(lit("grpc-status", "5"));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &only));
    let x = run(&[(C, c), (S, s)]);
    let g: Vec<_> = x.iter().map(|x| x.grpc.clone().unwrap()).collect();
    assert_eq!(g[0].service.as_deref(), Some("shop.Catalog"));
    assert_eq!(g[0].method.as_deref(), Some("ListItems"));
    assert_eq!(
        (g[0].status, g[0].request_messages, g[0].response_messages),
        (Some(0), 1, 3)
    );
    assert!(g[0].messages_exact);
    assert_eq!((g[1].status, g[1].response_messages), (Some(5), 0));
    assert_eq!(x[1].status, Some(200));
}

#[test]
fn informational_responses_are_skipped() {
    let mut c = client_start();
    c.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request("/expect"),
    ));
    let mut s = frame(HEADERS, END_HEADERS, 1, &lit(":status", "100"));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
    let x = run(&[(C, c), (S, s)]);
    assert_eq!(x[0].status, Some(200));
}

#[test]
fn reset_goaway_and_unanswered_streams_are_errors() {
    let mut c = client_start();
    for id in [1, 3, 5, 7] {
        c.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &request("/r")));
    }
    c.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes())); // CANCEL
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    let mut s = frame(GOAWAY, 0, 0, &goaway);
    s.extend(frame(RST_STREAM, 0, 1, &0u32.to_be_bytes())); // late: stream 1 left already
    let x = run(&[(C, c), (S, s)]);
    let errors: Vec<_> = x.iter().map(|x| x.error.clone().unwrap().kind()).collect();
    assert_eq!(
        errors,
        [
            "reset:CANCEL",
            "no_response",
            "goaway:NO_ERROR",
            "goaway:NO_ERROR"
        ]
    );
    assert_eq!(
        x[0].error,
        Some(StreamError::Reset {
            code: 8,
            by_client: true
        })
    );
}

#[test]
fn push_promise_is_an_exchange_of_its_own() {
    let mut c = client_start();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/")));
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend(request("/style.css"));
    let mut s = frame(PUSH_PROMISE, END_HEADERS, 1, &promise);
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
    s.extend(frame(HEADERS, END_HEADERS, 2, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 2, b"body{}"));
    let x = run(&[(C, c), (S, s)]);
    assert_eq!(x.len(), 2);
    assert!(x[1].pushed);
    assert_eq!(
        (x[1].path.as_deref(), x[1].response_body_bytes),
        (Some("/style.css"), 6)
    );
}

#[test]
fn upgrade_h2c_makes_the_request_stream_1() {
    let mut c = b"GET /up HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        .to_vec();
    assert!(Http2Conn::sniff(&c));
    c.extend(client_start());
    let mut s =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(frame(SETTINGS, 0, 0, &[]));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
    let x = run(&[(C, c[..20].to_vec()), (C, c[20..].to_vec()), (S, s)]);
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].method.as_deref(), x[0].path.as_deref()),
        (Some("GET"), Some("/up"))
    );
    assert_eq!((x[0].status, &x[0].error), (Some(200), &None));
}

#[test]
fn midstream_pickup_resyncs_and_marks_unknown_headers() {
    // Before the capture: a request indexed `x-tenant: acme`. The capture starts inside a
    // DATA frame; the next request refers to the entry (unknown) and adds one (known).
    let mut before = client_start();
    let mut b1 = request("/first");
    b1.extend(indexed_lit("x-tenant", "acme"));
    before.extend(frame(HEADERS, END_HEADERS, 1, &b1));
    before.extend(frame(DATA, END_STREAM, 1, &[b'p'; 40]));
    let cut = before.len() - 20;
    let mut after = before[cut..].to_vec();
    let mut b3 = request("/second");
    b3.push(0xbe); // x-tenant: acme (dynamic 62), from before the capture
    b3.extend(indexed_lit("x-trace", "t-1"));
    after.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &b3));
    after.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &[0x82, 0x86, 0xbe, 0xbf],
    ));
    let mut s = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &[0x8d]));
    let (x, conn) = run_with(Http2Config::default(), false, &[(C, after), (S, s)]);
    assert_eq!(x.len(), 3);
    assert!(x[0].request_unseen && x[0].path.is_none() && x[0].status == Some(200));
    assert_eq!(x[1].path.as_deref(), Some("/second"));
    assert_eq!(x[1].unknown_headers, ["?"]);
    // Stream 5: 0xbe is now x-trace (known), 0xbf the old x-tenant (unknown).
    assert_eq!(x[2].unknown_headers, ["?"]);
    assert_eq!(x[2].status, Some(404));
    assert_eq!(conn.stats().resyncs, 2); // each direction once
}

#[test]
fn continuation_flood_is_bounded_and_later_streams_decode() {
    let config = Http2Config {
        max_header_block_bytes: 4096,
        ..Http2Config::default()
    };
    let mut c = client_start();
    c.extend(frame(HEADERS, 0, 1, &request("/flood")));
    let mut conn = Http2Conn::new(config, true);
    let mut out = Vec::new();
    conn.push(C, 0, &c, &mut out);
    let piece = frame(CONTINUATION, 0, 1, &[0x40; 16_000]);
    for i in 0..2000 {
        conn.push(C, i, &piece, &mut out); // 32 MB of CONTINUATION
    }
    conn.push(
        C,
        3000,
        &frame(CONTINUATION, END_HEADERS | END_STREAM, 1, &[]),
        &mut out,
    );
    conn.push(
        C,
        3001,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &request("/next")),
        &mut out,
    );
    conn.push(
        S,
        3002,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]),
        &mut out,
    );
    conn.finish(&mut out);
    assert_eq!(conn.stats().blocks_over_cap, 1);
    let next = out.iter().find(|x| x.stream_id == 3).unwrap();
    assert_eq!(
        (next.path.as_deref(), next.status),
        (Some("/next"), Some(200))
    );
}

#[test]
fn hostile_header_blocks_never_panic() {
    let mut c = client_start();
    // A header list declaring a 1 GB string.
    let mut huge = request("/huge");
    huge.extend([0x00, 0x7f, 0x80, 0x80, 0x80, 0x80, 0x04]);
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &huge));
    // Index 2^32: that field is unknown, the rest decodes.
    let mut big_index = vec![0xff, 0x81, 0xff, 0xff, 0xff, 0x0f];
    big_index.extend(request("/after-index"));
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &big_index));
    // A frame declaring 16 MB, then nothing: held to the frame cap, never allocated.
    c.extend(frame(DATA, 0, 5, &[]));
    let n = c.len();
    c[n - 9..n - 6].copy_from_slice(&[0xff, 0xff, 0xff]);
    let s = frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]);
    let x = run(&[(C, c), (S, s)]);
    assert_eq!(x[0].path.as_deref(), Some("/huge"));
    assert_eq!(x[1].path.as_deref(), Some("/after-index"));
    assert_eq!(
        (x[1].status, x[1].unknown_headers.as_slice()),
        (Some(200), &["?".to_string()][..])
    );
}

#[test]
fn the_stream_cap_gives_up_the_oldest() {
    let config = Http2Config {
        max_streams: 4,
        ..Http2Config::default()
    };
    let mut c = client_start();
    for id in (1..=11).step_by(2) {
        c.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &request("/cap"),
        ));
    }
    let (x, conn) = run_with(config, true, &[(C, c)]);
    assert_eq!(x.len(), 6);
    assert_eq!(conn.stats().streams_over_cap, 2);
    let over: Vec<_> = x
        .iter()
        .filter(|x| x.error == Some(StreamError::StreamOverflow))
        .map(|x| x.stream_id)
        .collect();
    assert_eq!(over, [1, 3]);
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = simple_conversation();
    for round in 0..300 {
        let mut steps = base.clone();
        for (_, bytes) in &mut steps {
            for _ in 0..1 + next() % 8 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
        }
        run_with(Http2Config::default(), round % 2 == 0, &steps);
    }
}

#[test]
fn midstream_roles_guessed_wrong_are_turned_round() {
    // Reassembly took the server for the client: the server's bytes come as ClientToServer.
    let mut c = frame(HEADERS, END_HEADERS | END_STREAM, 7, &request("/turned"));
    c.extend(frame(DATA, END_STREAM, 9, b"tail of a request body"));
    let mut s = frame(DATA, 0, 9, b"early"); // before any header block: a guess to undo
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 7, &[0x88]));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 9, &[0x8d]));
    let steps = [(S, c), (C, s)];
    let (x, conn) = run_with(Http2Config::default(), false, &steps);
    assert_eq!(conn.stats().roles_swapped, 1);
    assert_eq!(
        (x[0].path.as_deref(), x[0].status),
        (Some("/turned"), Some(200))
    );
    assert_eq!(
        (
            x[1].status,
            x[1].request_body_bytes,
            x[1].response_body_bytes
        ),
        (Some(404), 22, 5)
    );
}
