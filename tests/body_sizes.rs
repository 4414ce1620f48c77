//! Body sizes against what the servers logged, for the recordings where sizes are the point:
//! HTTP/0.9 answers (a bare body that ends with the connection, pcaps/http09.md) and bodies a
//! snap length cut (pcaps/nginx-snaplen.md). The references are the servers' own logs (nginx's
//! `$body_bytes_sent`, http.server's request lines) and the probe's table of bytes received;
//! never an earlier output of tapspan.

mod common;

use tapspan::protocols::http1::Version;
use tapspan::protocols::Exchange;

fn exchanges_of(name: &str) -> Vec<Exchange> {
    let (exchanges, outcome) = common::replay(&[common::repo_path(&format!("pcaps/{name}.pcap"))]);
    assert!(outcome.damaged.is_empty());
    exchanges
}

fn reference(file: &str) -> String {
    std::fs::read_to_string(common::repo_path(&format!("fixtures/reference/{file}"))).unwrap()
}

/// One nginx access-log line of these recordings: `addr:port [fields…] "request" status
/// body_bytes_sent …`, `extra` fields between the address and the request.
#[derive(Debug)]
struct NginxLine {
    port: u16,
    method: String,
    target: String,
    /// The version the request line stated, if any.
    version: Option<String>,
    status: u16,
    body_bytes_sent: u64,
}

fn nginx_log(file: &str) -> Vec<NginxLine> {
    reference(file)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (before, rest) = l.split_once('"').unwrap();
            let (request, after) = rest.split_once('"').unwrap();
            let addr: std::net::SocketAddr =
                before.split_whitespace().next().unwrap().parse().unwrap();
            let words: Vec<&str> = request.split_whitespace().collect();
            let after: Vec<&str> = after.split_whitespace().collect();
            NginxLine {
                port: addr.port(),
                method: words[0].to_string(),
                target: words[1].to_string(),
                version: words.get(2).map(|v| v.to_string()),
                status: after[0].parse().unwrap(),
                body_bytes_sent: after[1].parse().unwrap(),
            }
        })
        .collect()
}

fn attrs(ex: &Exchange) -> String {
    format!("{ex:#?}")
}

#[test]
fn http09_answers_are_exchanges_sized_as_nginx_sent_them() {
    let exchanges = exchanges_of("http09");
    let nginx: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.server.port() == 18091)
        .collect();
    let log = nginx_log("http09.nginx.access.log");
    assert_eq!(log.len(), 6);
    assert_eq!(nginx.len(), log.len(), "one exchange per logged request");
    let mut http09 = 0;
    for line in &log {
        let ex = nginx
            .iter()
            .find(|e| e.client.port() == line.port)
            .unwrap_or_else(|| panic!("no exchange for {line:?}"));
        let req = ex.request().unwrap();
        let resp = ex.response().unwrap();
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            (line.method.as_str(), line.target.as_str())
        );
        assert_eq!(
            resp.body_size,
            line.body_bytes_sent,
            "{line:?}\n{}",
            attrs(ex)
        );
        assert_eq!(ex.error, None, "{line:?}");
        if line.version.is_none() {
            // No status line on the wire: nginx's logged status is its own business.
            http09 += 1;
            assert_eq!(req.version, Some(Version::Http09));
            assert_eq!((resp.version, resp.status), (Version::Http09, None));
        } else {
            assert_eq!(resp.status, Some(line.status));
            assert_eq!(req.version, Some(Version::Http1(0)));
        }
    }
    assert_eq!(http09, 5);
}

#[test]
fn http09_answers_of_python_match_its_log_and_the_bytes_received() {
    let exchanges = exchanges_of("http09");
    let mut python: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.server.port() == 18092)
        .collect();
    python.sort_by_key(|e| e.start());
    // http.server's request lines, in order (it logs no port): `"GET /a" 200 -`.
    let logged: Vec<(String, String, bool)> = reference("http09.python.access.log")
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once('"')?;
            let (request, _) = rest.split_once('"')?;
            let w: Vec<&str> = request.split_whitespace().collect();
            Some((w[0].to_string(), w[1].to_string(), w.len() == 2))
        })
        .collect();
    // The probe's table: `| python | `sent` | `begins` | bytes |`, in the same order.
    let received: Vec<u64> = reference("http09.answers.md")
        .lines()
        .filter(|l| l.starts_with("| python |"))
        .map(|l| l.split('|').nth(4).unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(logged.len(), 6);
    assert_eq!(python.len(), logged.len());
    for ((ex, (method, target, simple)), got) in python.iter().zip(&logged).zip(&received) {
        let req = ex.request().unwrap();
        let resp = ex.response().unwrap();
        assert_eq!((&req.method, &req.target), (method, target));
        assert_eq!(ex.error, None, "{}", attrs(ex));
        if *simple {
            // A bare body: all the client received.
            assert_eq!(resp.version, Version::Http09);
            assert_eq!(resp.body_size, *got, "{method} {target}");
        } else {
            assert_eq!(resp.status, Some(200));
            assert!(
                resp.body_size < *got,
                "head and body received, body counted"
            );
        }
    }
}

/// The first frame of every response and request in tshark's reading without reassembly
/// (`tcp.desegment_tcp_streams:FALSE`, pcaps/nginx-snaplen.md): (client port, method or status,
/// Content-Length as the head declared it).
fn tshark_heads(file: &str) -> Vec<(u16, String, Option<u64>)> {
    let text = reference(file);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (src, dst) = (col("tcp.srcport"), col("tcp.dstport"));
    let (method, code, length) = (
        col("http.request.method"),
        col("http.response.code"),
        col("http.content_length"),
    );
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .map(|f| {
            let request = !f[method].is_empty();
            let port = if request { f[src] } else { f[dst] };
            let what = if request { f[method] } else { f[code] };
            (
                port.parse().unwrap(),
                what.to_string(),
                f[length].parse().ok(),
            )
        })
        .collect()
}

#[test]
fn bodies_cut_by_the_snap_length_are_sized_as_nginx_sent_them() {
    let exchanges = exchanges_of("nginx-snaplen");
    let log = nginx_log("nginx-snaplen.access.log");
    assert_eq!(log.len(), 11);
    assert_eq!(
        exchanges.len(),
        log.len(),
        "one exchange per logged request"
    );
    // The log is in the order nginx finished the requests, which on each keep-alive
    // connection is the order they were sent.
    for port in [48818, 48834] {
        let logged: Vec<&NginxLine> = log.iter().filter(|l| l.port == port).collect();
        let mut ours: Vec<&Exchange> = exchanges
            .iter()
            .filter(|e| e.client.port() == port)
            .collect();
        ours.sort_by_key(|e| e.depth);
        assert_eq!(ours.len(), logged.len(), "port {port}");
        for (ex, line) in ours.iter().zip(logged) {
            let req = ex.request().expect("request");
            let resp = ex.response().expect("response");
            assert_eq!(
                (req.method.as_str(), req.target.as_str(), resp.status),
                (
                    line.method.as_str(),
                    line.target.as_str(),
                    Some(line.status)
                ),
                "{line:?}"
            );
            assert_eq!(
                resp.body_size,
                line.body_bytes_sent,
                "{line:?}\n{}",
                attrs(ex)
            );
            // Whole on the wire: no error, and no gap (nothing was lost, only cut).
            assert_eq!((ex.error, ex.gaps), (None, 0), "{line:?}");
            // Every response head (about 230 bytes) is longer than the 134 bytes captured.
            assert!(ex.snapped, "{line:?}");
        }
    }
    // The POST's 900-byte body was cut with its head, and counted from its Content-Length.
    let post = exchanges
        .iter()
        .find(|e| e.request().unwrap().method == "POST")
        .unwrap();
    assert_eq!(post.request().unwrap().body_size, 900);
}

#[test]
fn snap_cut_heads_agree_with_tshark_without_reassembly() {
    let exchanges = exchanges_of("nginx-snaplen");
    let heads = tshark_heads("nginx-snaplen.tshark-nodesegment.tsv");
    let requests: Vec<_> = heads
        .iter()
        .filter(|h| h.1.parse::<u16>().is_err())
        .collect();
    let responses: Vec<_> = heads
        .iter()
        .filter(|h| h.1.parse::<u16>().is_ok())
        .collect();
    assert_eq!((requests.len(), responses.len()), (11, 11));
    let mut ours: Vec<&Exchange> = exchanges.iter().collect();
    ours.sort_by_key(|e| (e.client.port(), e.depth));
    for ((ex, req), resp) in ours.iter().zip(&requests).zip(&responses) {
        assert_eq!(ex.client.port(), req.0);
        assert_eq!(ex.request().unwrap().method, req.1);
        let r = ex.response().unwrap();
        assert_eq!(
            r.status.map(|s| s.to_string()).as_deref(),
            Some(resp.1.as_str())
        );
        // The body is the declared length, except for HEAD, whose response has none.
        if ex.request().unwrap().method != "HEAD" {
            assert_eq!(Some(r.body_size), resp.2);
        }
    }
}

/// The same keep-alive connection, whole and cut by a snap length, in crafted frames: the cut
/// capture gives the same exchanges, sizes and instants, marked snapped.
#[test]
fn a_snap_length_changes_nothing_but_the_mark() {
    use common::craft::{ethernet_frames, Conversation, Dir};
    let bodies = [10usize, 3000, 0, 700];
    let mut conv = Conversation::new(1000, 5000);
    conv.handshake();
    for (i, n) in bodies.iter().enumerate() {
        conv.send(
            Dir::C2S,
            format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
            1460,
        );
        conv.ack(Dir::S2C);
        let pad = "p".repeat(60);
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nX-Pad: {pad}\r\n\r\n");
        resp.push_str(&"x".repeat(*n));
        conv.send(Dir::S2C, resp.as_bytes(), 1460);
        conv.ack(Dir::C2S);
    }
    conv.fin();
    let frames = ethernet_frames(&conv.segs);
    let link = tapspan_capture::LinkType::ETHERNET;
    let whole = common::run_frames(Default::default(), &frames, link).0;
    // Ethernet, IPv4 and TCP headers take 54 bytes: 40 bytes of each payload are captured,
    // every request head whole, every response head cut after its Content-Length.
    let cut: Vec<(u64, Vec<u8>)> = frames
        .iter()
        .map(|(ts, f)| (*ts, f[..f.len().min(94)].to_vec()))
        .collect();
    let snapped = common::run_frames(Default::default(), &cut, link).0;
    assert_eq!(whole.len(), bodies.len());
    assert_eq!(snapped.len(), bodies.len());
    for ((w, s), n) in whole.iter().zip(&snapped).zip(bodies) {
        assert!(!w.snapped && s.snapped);
        assert_eq!(w.response().unwrap().body_size, n as u64);
        assert_eq!(s.response().unwrap().body_size, n as u64);
        assert_eq!((s.t, s.error, s.gaps), (w.t, None, 0));
    }
}
