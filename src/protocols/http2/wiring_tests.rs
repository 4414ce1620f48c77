//! HTTP/2 through the protocol seam: claims, h2c upgrades (accepted and declined), identity,
//! redaction and the spans of streams and gRPC calls, on crafted conversations.

use std::net::SocketAddr;

use serde_json::Value;

use super::frame::{self, DATA, END_HEADERS, END_STREAM, HEADERS, RST_STREAM};
use super::tests::{client_start, frame, grpc_message, lit, request, C, S};
use crate::protocols::http1::Version;
use crate::protocols::Exchange;
use crate::protocols::{Decoders, ProtocolConfig};
use crate::reassembly::{CloseReason, ConnId, Direction, OpenHow, StreamEvent};
use crate::redact::HeaderPolicy;
use crate::span::{exchange_id_of, spans_for};
use tapspan_capture::Timestamp;

const CLIENT_SEQ: u32 = 1_000_000;
const SERVER_SEQ: u32 = 7_000_000;

/// One connection through every registered decoder: each step's bytes follow the previous
/// ones of its direction. Returns the exchanges and where each direction's step began.
fn through_registry(config: &ProtocolConfig, steps: &[(Direction, Vec<u8>)]) -> Vec<Exchange> {
    through_registry_as(config, OpenHow::Handshake, steps)
}

fn through_registry_as(
    config: &ProtocolConfig,
    how: OpenHow,
    steps: &[(Direction, Vec<u8>)],
) -> Vec<Exchange> {
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    let conn = ConnId(1);
    let mut decoders = Decoders::new(config);
    let mut out = Vec::new();
    decoders.push(
        StreamEvent::Open {
            conn,
            client,
            server,
            how,
            ts: Timestamp(1),
        },
        &mut |x| out.push(x),
    );
    let mut offsets = [0u64; 2];
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        let d = dir.index();
        let base = [CLIENT_SEQ, SERVER_SEQ][d];
        decoders.push(
            StreamEvent::Data {
                conn,
                dir: *dir,
                offset: offsets[d],
                seq: base.wrapping_add(offsets[d] as u32),
                ts: Timestamp(10 + i as u64 * 10),
                bytes,
            },
            &mut |x| out.push(x),
        );
        offsets[d] += bytes.len() as u64;
    }
    decoders.push(
        StreamEvent::Close {
            conn,
            why: CloseReason::Fin,
            ts: Timestamp(1_000),
        },
        &mut |x| out.push(x),
    );
    out.sort_by_key(|x| x.depth);
    out
}

fn attrs(ex: &Exchange) -> (Value, Value, String) {
    let [client, server] = spans_for(ex);
    let json = serde_json::to_string(&client).unwrap() + &serde_json::to_string(&server).unwrap();
    (
        serde_json::to_value(&client).unwrap(),
        serde_json::to_value(&server).unwrap(),
        json,
    )
}

#[test]
fn claims_preface_upgrade_and_frames_not_http1_or_tls() {
    use super::decoder::claims_bytes;
    assert!(claims_bytes(frame::PREFACE));
    assert!(claims_bytes(&frame::PREFACE[..6]));
    assert!(claims_bytes(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n"
    ));
    // Picked up mid-way: a SETTINGS ack then a WINDOW_UPDATE.
    let mut frames = frame(frame::SETTINGS, 1, 0, &[]);
    frames.extend(frame(frame::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    assert!(claims_bytes(&frames));
    assert!(!claims_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!claims_bytes(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert!(!claims_bytes(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03
    ]));
}

#[test]
fn secrets_in_headers_and_the_path_never_reach_spans() {
    let mut config = ProtocolConfig::default();
    // Even when asked for, a credential header keeps its name, never its value.
    config.http.headers =
        HeaderPolicy::default().with_captured(&["authorization".to_string(), "cookie".to_string()]);
    let mut block = request("/login?access_token=s3cr3tTok&page=2");
    block.extend(lit("authorization", "Bearer hunter2hunter2"));
    block.extend(lit("cookie", "sid=c00kieval"));
    block.extend(lit("x-api-key", "k3yvalue"));
    block.extend(lit("user-agent", "grpc-test/1"));
    let mut c = client_start();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let mut resp = vec![0x88];
    resp.extend(lit("set-cookie", "sid=n3wc00kie"));
    let s = frame(HEADERS, END_HEADERS | END_STREAM, 1, &resp);
    let xs = through_registry(&config, &[(C, c), (S, s)]);
    assert_eq!(xs.len(), 1);
    let (client, server, json) = attrs(&xs[0]);
    for secret in ["s3cr3tTok", "hunter2", "c00kieval", "k3yvalue", "n3wc00kie"] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    let a = &server["attributes"];
    assert_eq!(a["url.path"], "/login");
    assert_eq!(a["network.protocol.version"], "2");
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["http.request.header.authorization"][0], "REDACTED");
    assert_eq!(a["user_agent.original"], "grpc-test/1");
    assert!(a["url.query"].as_str().unwrap().contains("page=2"));
    assert_eq!(client["status"], "unset");
}

#[test]
fn each_stream_is_anchored_at_its_headers_frame() {
    let mut c = client_start();
    let first_headers = c.len() as u32;
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("/a")));
    let second_headers = c.len() as u32;
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &request("/b")));
    let mut s = frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]);
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
    let xs = through_registry(&ProtocolConfig::default(), &[(C, c), (S, s)]);
    let got: Vec<_> = xs
        .iter()
        .map(|x| (x.depth, x.anchor_seq, x.request().unwrap().target.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, CLIENT_SEQ + first_headers, "/a"),
            (2, CLIENT_SEQ + second_headers, "/b")
        ]
    );
    assert_ne!(exchange_id_of(&xs[0]), exchange_id_of(&xs[1]));
}

const UPGRADE: &[u8] =
    b"GET /up?x=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";

#[test]
fn an_accepted_h2c_upgrade_is_one_http2_exchange() {
    let mut s =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(frame(frame::SETTINGS, 0, 0, &[]));
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 1, b"ok"));
    let mut c = UPGRADE.to_vec();
    c.extend(client_start());
    let xs = through_registry(&ProtocolConfig::default(), &[(C, c), (S, s)]);
    assert_eq!(xs.len(), 1, "{xs:?}");
    let x = &xs[0];
    let req = x.request().unwrap();
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("GET", "/up?x=1")
    );
    assert_eq!(req.version, Some(Version::Http2));
    assert_eq!(x.response().unwrap().status, Some(200));
    // Anchored where HTTP/1.x anchors a request: its first byte.
    assert_eq!(x.anchor_seq, CLIENT_SEQ);
    assert_eq!(x.error, None);
}

#[test]
fn a_declined_h2c_upgrade_stays_http1() {
    let mut c = UPGRADE.to_vec();
    let s1 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
    c.extend_from_slice(b"");
    let c2 = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let s2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    let xs = through_registry(
        &ProtocolConfig::default(),
        &[(C, c), (S, s1), (C, c2), (S, s2)],
    );
    let got: Vec<_> = xs
        .iter()
        .map(|x| {
            (
                x.request().unwrap().target.clone(),
                x.request().unwrap().version,
                x.response().and_then(|r| r.status),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/up?x=1".to_string(), Some(Version::Http1(1)), Some(200)),
            ("/next".to_string(), Some(Version::Http1(1)), Some(404)),
        ]
    );
}

fn grpc_call(stream: u32, method: &str, status: &str) -> [(Direction, Vec<u8>); 2] {
    let mut block = vec![0x83, 0x86, 0x04, method.len() as u8]; // POST, http, :path
    block.extend_from_slice(method.as_bytes());
    block.extend(lit("content-type", "application/grpc"));
    let mut c = frame(HEADERS, END_HEADERS, stream, &block);
    c.extend(frame(DATA, END_STREAM, stream, &grpc_message(b"id")));
    let mut head = vec![0x88];
    head.extend(lit("content-type", "application/grpc"));
    let mut s = frame(HEADERS, END_HEADERS, stream, &head);
    s.extend(frame(DATA, 0, stream, &grpc_message(b"a")));
    s.extend(frame(DATA, 0, stream, &grpc_message(b"b")));
    s.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &lit("grpc-status", status),
    ));
    [(C, c), (S, s)]
}

#[test]
fn grpc_calls_are_rpc_spans_with_status_by_side() {
    let mut steps = vec![(C, client_start())];
    steps.extend(grpc_call(1, "/shop.Catalog/GetItem", "0"));
    steps.extend(grpc_call(3, "/shop.Catalog/GetItem", "5")); // NOT_FOUND
    steps.extend(grpc_call(5, "/shop.Catalog/ListItems", "13")); // INTERNAL
    let xs = through_registry(&ProtocolConfig::default(), &steps);
    let spans: Vec<_> = xs.iter().map(attrs).collect();
    let (client, server, _) = &spans[0];
    assert_eq!(server["name"], "shop.Catalog/GetItem");
    let a = &server["attributes"];
    assert_eq!(
        (
            &a["rpc.system"],
            &a["rpc.service"],
            &a["rpc.method"],
            &a["rpc.grpc.status_code"]
        ),
        (
            &"grpc".into(),
            &"shop.Catalog".into(),
            &"GetItem".into(),
            &0.into()
        )
    );
    assert_eq!(a["tapspan.grpc.request_messages"], 1);
    assert_eq!(a["tapspan.grpc.response_messages"], 2);
    assert_eq!(
        (&client["status"], &server["status"]),
        (&"unset".into(), &"unset".into())
    );
    // NOT_FOUND: the caller's failure, not the server's.
    let (client, server, _) = &spans[1];
    assert_eq!(
        (&client["status"], &server["status"]),
        (&"error".into(), &"unset".into())
    );
    // INTERNAL: both.
    let (client, server, _) = &spans[2];
    assert_eq!(
        (&client["status"], &server["status"]),
        (&"error".into(), &"error".into())
    );
}

#[test]
fn a_reset_stream_is_an_error_span() {
    let mut c = client_start();
    c.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request("/slow"),
    ));
    c.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    let xs = through_registry(&ProtocolConfig::default(), &[(C, c)]);
    let (client, server, _) = attrs(&xs[0]);
    assert_eq!(server["attributes"]["error.type"], "reset:CANCEL");
    assert_eq!(
        (&client["status"], &server["status"]),
        (&"error".into(), &"error".into())
    );
}

#[test]
fn picked_up_mid_way_unknown_headers_are_named_never_guessed() {
    // POST, http, then a field from a table entry added before the capture (index 62).
    let c = frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x83, 0x86, 0xbe]);
    let s = frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x88]);
    let xs = through_registry_as(
        &ProtocolConfig::default(),
        OpenHow::Midstream,
        &[(C, c), (S, s)],
    );
    assert_eq!(xs.len(), 1);
    let (_, server, _) = attrs(&xs[0]);
    assert_eq!(server["name"], "POST");
    assert!(server["attributes"].get("url.path").is_none());
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(
        server["attributes"]["tapspan.headers_unknown"],
        serde_json::json!(["?"])
    );
}

#[test]
fn random_events_through_the_registry_never_panic() {
    // Starts HTTP/2 would claim, then random bytes, gaps and closes, each way.
    let starts: [&[u8]; 3] = [frame::PREFACE, UPGRADE, &[0, 0, 0, 4, 1, 0, 0, 0, 0]];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..300u64 {
        let mut steps = vec![(C, starts[(round % 3) as usize].to_vec())];
        for _ in 0..(next() % 12) {
            let dir = if next() % 2 == 0 { C } else { S };
            let mut bytes: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            if next() % 3 == 0 {
                // A plausible frame header in front, so that frames are read, not skipped.
                let kind = (next() % 10) as u8;
                let stream = (next() % 8) as u32;
                bytes = frame(kind, (next() % 64) as u8, stream, &bytes);
            }
            steps.push((dir, bytes));
        }
        let how = if round % 2 == 0 {
            OpenHow::Handshake
        } else {
            OpenHow::Midstream
        };
        for x in through_registry_as(&ProtocolConfig::default(), how, &steps) {
            let _ = attrs(&x);
        }
    }
}

#[test]
fn a_propagated_traceparent_places_the_stream_in_its_trace() {
    let mut block = request("/api");
    block.extend(lit(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    let mut c = client_start();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let s = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
    let xs = through_registry(&ProtocolConfig::default(), &[(C, c), (S, s)]);
    let (client, server, _) = attrs(&xs[0]);
    assert_eq!(client["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(client["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(server["attributes"]["tapspan.link"], "traceparent");
}

#[test]
fn an_upgrade_never_answered_stays_http1_and_bounded() {
    // 200 pipelined HTTP/1.1 requests behind the upgrade request, no answer: the HTTP/1.x
    // view gives up the oldest at its pending cap while the upgrade waits, and the wait ends
    // once more than a few are held. Every request is one HTTP/1.1 exchange.
    let mut c = UPGRADE.to_vec();
    for i in 0..200 {
        c.extend_from_slice(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    let xs = through_registry(&ProtocolConfig::default(), &[(C, c)]);
    assert_eq!(xs.len(), 201);
    assert!(xs
        .iter()
        .all(|x| x.request().unwrap().version == Some(Version::Http1(1))));
}

#[test]
fn grpc_trace_bin_places_a_call_in_its_trace() {
    let mut steps = vec![(C, client_start())];
    let [(_, mut c), s] = grpc_call(1, "/shop.Catalog/GetItem", "0");
    // The same call's HEADERS again, with OpenCensus's binary context added to its block.
    let mut block = vec![0x83, 0x86, 0x04, 21];
    block.extend_from_slice(b"/shop.Catalog/GetItem");
    block.extend(lit("content-type", "application/grpc"));
    block.extend(lit(
        "grpc-trace-bin",
        "AABL+S81d7NNpqPOkp0ODkc2AQDwZ6oLqQK3AgE",
    ));
    let headers_len = 9 + c[..3].iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
    let mut with_trace = frame(HEADERS, END_HEADERS, 1, &block);
    with_trace.extend(c.drain(headers_len..));
    steps.push((C, with_trace));
    steps.push(s);
    let xs = through_registry(&ProtocolConfig::default(), &steps);
    let (client, server, _) = attrs(&xs[0]);
    assert_eq!(client["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(client["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(server["attributes"]["tapspan.link"], "grpc-trace-bin");
}
