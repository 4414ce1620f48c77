//! HTTP framing and pairing, fed stream events directly: every split point of a conversation
//! must give the same exchanges, and cut-short exchanges must still come out with `error.type`.

use std::net::SocketAddr;

use tapspan::protocols::http1::{HttpConfig, HttpDecoder};
use tapspan::protocols::Exchange;
use tapspan::reassembly::{CloseReason, ConnId, Direction, OpenHow, StreamEvent};
use tapspan_capture::Timestamp;

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

struct Conv {
    dec: HttpDecoder,
    out: Vec<Exchange>,
    offsets: [u64; 2],
    ts: u64,
}

impl Conv {
    fn new(how: OpenHow) -> Self {
        let mut c = Conv {
            dec: HttpDecoder::new(HttpConfig::default()),
            out: Vec::new(),
            offsets: [0, 0],
            ts: 1_000,
        };
        let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        c.ev(StreamEvent::Open {
            conn: ConnId(1),
            client,
            server,
            how,
            ts: Timestamp(0),
        });
        c
    }
    fn ev(&mut self, ev: StreamEvent<'_>) {
        let out = &mut self.out;
        self.dec.push(ev, &mut |ex| out.push(ex));
    }
    fn data(&mut self, dir: Direction, bytes: &[u8]) {
        self.ts += 1_000;
        let offset = self.offsets[dir.index()];
        self.offsets[dir.index()] += bytes.len() as u64;
        let ts = Timestamp(self.ts);
        self.ev(StreamEvent::Data {
            conn: ConnId(1),
            dir,
            offset,
            seq: 1000 + offset as u32,
            ts,
            bytes,
        });
    }
    fn gap(&mut self, dir: Direction, len: u64) {
        self.hole(dir, len, false);
    }
    /// `len` bytes the snap length cut after the last data.
    fn snapped(&mut self, dir: Direction, len: u64) {
        self.hole(dir, len, true);
    }
    fn hole(&mut self, dir: Direction, len: u64, snapped: bool) {
        let offset = self.offsets[dir.index()];
        self.offsets[dir.index()] += len;
        self.ev(StreamEvent::Gap {
            conn: ConnId(1),
            dir,
            offset,
            len,
            snapped,
            ts: Timestamp(self.ts),
        });
    }
    fn half_close(&mut self, dir: Direction) {
        self.ev(StreamEvent::HalfClose {
            conn: ConnId(1),
            dir,
            ts: Timestamp(self.ts),
        });
    }
    fn close(mut self, why: CloseReason) -> Vec<Exchange> {
        self.ev(StreamEvent::Close {
            conn: ConnId(1),
            why,
            ts: Timestamp(self.ts),
        });
        self.out
    }
}

const CLIENT: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello\
GET /d HTTP/1.1\r\nHost: x\r\nX-Request-ID: rid-1\r\n\r\n";

const SERVER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n";

/// (method, target, status, request body, response body, 1xx codes, error)
type Summary = (
    String,
    String,
    u16,
    u64,
    u64,
    Vec<u16>,
    Option<&'static str>,
);

fn summary(exs: &[Exchange]) -> Vec<Summary> {
    exs.iter()
        .map(|e| {
            let req = e.request();
            (
                req.map_or(String::new(), |r| r.method.clone()),
                req.map_or(String::new(), |r| r.target.clone()),
                e.response().and_then(|r| r.status).unwrap_or(0),
                req.map_or(0, |r| r.body_size),
                e.response().map_or(0, |r| r.body_size),
                e.informational().iter().map(|(c, _)| *c).collect(),
                e.error,
            )
        })
        .collect()
}

fn expected() -> Vec<Summary> {
    vec![
        ("GET".into(), "/a".into(), 200, 0, 3, vec![], None),
        ("HEAD".into(), "/b".into(), 200, 0, 0, vec![], None),
        ("POST".into(), "/c".into(), 201, 5, 3, vec![100], None),
        ("GET".into(), "/d".into(), 204, 0, 0, vec![], None),
    ]
}

#[test]
fn pipelined_conversation_at_every_split_point() {
    for split in 0..=CLIENT.len().max(SERVER.len()) {
        let mut c = Conv::new(OpenHow::Handshake);
        let (a, b) = CLIENT.split_at(split.min(CLIENT.len()));
        c.data(C2S, a);
        c.data(C2S, b);
        let (a, b) = SERVER.split_at(split.min(SERVER.len()));
        c.data(S2C, a);
        c.data(S2C, b);
        let out = c.close(CloseReason::Fin);
        assert_eq!(summary(&out), expected(), "split at {split}");
        let last = &out[3];
        assert_eq!(
            last.request().unwrap().header("x-request-id"),
            Some("rid-1")
        );
    }
}

#[test]
fn byte_at_a_time() {
    let mut c = Conv::new(OpenHow::Handshake);
    for b in CLIENT {
        c.data(C2S, std::slice::from_ref(b));
    }
    for b in SERVER {
        c.data(S2C, std::slice::from_ref(b));
    }
    let out = c.close(CloseReason::Fin);
    assert_eq!(summary(&out), expected());
    // The first exchange starts at the first client byte and ends at the 3rd body byte.
    assert_eq!(out[0].t.request_start, Some(Timestamp(2_000)));
}

#[test]
fn request_without_response_is_emitted_with_the_reason() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = c.close(CloseReason::Rst);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some("connection_reset"));
    assert!(out[0].response().is_none());
}

#[test]
fn close_delimited_response_ends_with_the_fin() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET / HTTP/1.0\r\n\r\n");
    c.data(
        S2C,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
    );
    c.data(S2C, b"</html>");
    c.half_close(S2C);
    let out = c.close(CloseReason::Fin);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, None);
    assert_eq!(out[0].response().unwrap().body_size, 13);
}

#[test]
fn gap_inside_a_sized_body_keeps_the_exchange_and_the_next_one() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    c.data(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01");
    c.gap(S2C, 5);
    c.data(
        S2C,
        b"789HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    let out = c.close(CloseReason::Fin);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].gaps, 1);
    assert_eq!(out[0].error, None);
    assert_eq!(out[1].response().unwrap().status, Some(404));
}

#[test]
fn gap_in_a_head_cuts_that_exchange_and_resynchronises() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    c.data(S2C, b"HTTP/1.1 200 OK\r\nContent-Len");
    c.gap(S2C, 100);
    c.data(
        S2C,
        b"garbage tail\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    let out = c.close(CloseReason::Fin);
    let errors: Vec<_> = out.iter().map(|e| e.error).collect();
    assert_eq!(errors, vec![Some("capture_gap"), None]);
    assert_eq!(out[1].response().unwrap().status, Some(201));
}

#[test]
fn tls_is_not_http_and_yields_nothing() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(
        C2S,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
    );
    c.data(S2C, &[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02]);
    let stats_before = c.dec.stats.non_http_connections;
    let out = c.close(CloseReason::Fin);
    assert!(out.is_empty());
    assert_eq!(stats_before, 1);
}

#[test]
fn upgrade_to_websocket_stops_decoding_without_errors() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(
        C2S,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85garbage",
    );
    c.data(S2C, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello");
    c.data(C2S, b"\x88\x80more frames");
    let out = c.close(CloseReason::Fin);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].response().unwrap().status, Some(101));
    assert_eq!(out[0].error, None);
}

#[test]
fn midstream_pickup_skips_to_the_next_message() {
    let mut c = Conv::new(OpenHow::Midstream);
    c.data(C2S, b"tail of a body\r\nGET /next HTTP/1.1\r\n\r\n");
    c.data(
        S2C,
        b"dy of an earlier response\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let out = c.close(CloseReason::CaptureEnd);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].request().unwrap().target, "/next");
    assert_eq!(out[0].error, None);
}

#[test]
fn response_without_a_captured_request() {
    let mut c = Conv::new(OpenHow::Midstream);
    c.data(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let out = c.close(CloseReason::CaptureEnd);
    assert_eq!(out.len(), 1);
    assert!(out[0].request().is_none());
    assert_eq!(out[0].error, Some("request_not_captured"));
}

#[test]
fn http09_simple_request_answered_by_a_bare_body_at_every_split() {
    use tapspan::protocols::http1::Version;
    let line = b"GET /x?q=1\r\n";
    for k in 1..line.len() {
        let mut c = Conv::new(OpenHow::Handshake);
        c.data(C2S, &line[..k]);
        c.data(C2S, &line[k..]);
        c.data(S2C, b"hello ");
        c.data(S2C, b"world");
        c.half_close(S2C);
        let out = c.close(CloseReason::Fin);
        assert_eq!(out.len(), 1, "split at {k}");
        let (req, resp) = (out[0].request().unwrap(), out[0].response().unwrap());
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("GET", "/x?q=1")
        );
        assert_eq!(
            (req.version, resp.version),
            (Some(Version::Http09), Version::Http09)
        );
        assert_eq!(
            (resp.status, resp.body_size, out[0].error),
            (None, 11, None)
        );
    }
}

#[test]
fn a_versionless_request_answered_with_a_status_line_is_not_http09() {
    use tapspan::protocols::http1::Version;
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET /x\r\n");
    c.data(
        S2C,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
    );
    let out = c.close(CloseReason::Fin);
    assert_eq!(out.len(), 1);
    let resp = out[0].response().unwrap();
    assert_eq!(out[0].request().unwrap().version, None);
    assert_eq!(
        (resp.status, resp.version, resp.body_size),
        (Some(400), Version::Http1(1), 3)
    );
}

#[test]
fn a_snapped_cut_past_a_body_ends_it_and_pairing_goes_on() {
    let mut c = Conv::new(OpenHow::Handshake);
    c.data(C2S, b"GET /a HTTP/1.1\r\n\r\n");
    // The body's last 8 bytes and nothing else were cut: the exchange is whole.
    c.data(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab");
    c.snapped(S2C, 8);
    c.data(C2S, b"GET /b HTTP/1.1\r\n\r\n");
    // A head cut after its Content-Length: the body counts what it declared.
    c.data(
        S2C,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\nServer: x",
    );
    c.snapped(S2C, 1040);
    c.snapped(S2C, 300);
    c.data(C2S, b"GET /c HTTP/1.1\r\n\r\n");
    c.data(S2C, b"HTTP/1.1 204 No Content\r\n\r\n");
    let out = c.close(CloseReason::Fin);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            let r = e.response().unwrap();
            (
                e.request().unwrap().target.as_str(),
                r.status,
                r.body_size,
                e.snapped,
                e.error,
                e.gaps,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/a", Some(200), 10, true, None, 0),
            ("/b", Some(404), 1000, true, None, 0),
            ("/c", Some(204), 0, false, None, 0)
        ]
    );
}
