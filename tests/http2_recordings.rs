//! The HTTP/2 connection decoder (`src/protocols/http2/conn.rs`, alone) over real
//! recordings (`pcaps/protocols/http2-*.md` say how they were made), checked against the
//! servers' own logs: nginx's access log for h2c prior knowledge (h2load, nghttp), and a
//! grpcio server's log of every call. Each recording also has a copy cut mid-connection
//! (`*-cut.pcap`): there, every exchange whose response was in the capture is found with its
//! status, and no path is ever reported that the server did not serve. TCP bytes come from the
//! capture crate and the project's reassembly, as the pipeline feeds them; the whole pipeline
//! on the same recordings is `tests/http2_replay.rs`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tapspan::protocols::http2::{H2Exchange, Http2Config, Http2Conn};
use tapspan::reassembly::{OpenHow, Reassembler, ReassemblyConfig, StreamEvent};
use tapspan_capture::{DecodeConfig, Decoder, FileSource, PacketSource};

fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps/protocols")
        .join(name)
}

/// The servers' ports. A connection picked up mid-way has its roles guessed by reassembly from
/// role hints, which do not know HTTP/2 yet: the decoder turns them round itself (from the
/// first header block it reads), and the test names each exchange by the real client's port.
const SERVER_PORTS: [u16; 2] = [8080, 50051];

/// Decodes every TCP connection of a capture: (client port, exchange), and the capture's
/// first packet time (ns).
fn exchanges(name: &str) -> (Vec<(u16, H2Exchange)>, u64) {
    let mut src = FileSource::open(&pcap(name)).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut rea = Reassembler::new(ReassemblyConfig::default());
    let mut conns: HashMap<_, (SocketAddr, Http2Conn)> = HashMap::new();
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut first = None;
    let mut on = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Open {
            conn,
            client,
            server,
            how,
            ..
        } => {
            let from_start = how == OpenHow::Handshake;
            let dec = Http2Conn::new(Http2Config::default(), from_start);
            let client = if SERVER_PORTS.contains(&client.port()) {
                server
            } else {
                client
            };
            conns.insert(conn, (client, dec));
        }
        StreamEvent::Data {
            conn,
            dir,
            ts,
            bytes,
            ..
        } => {
            let (client, c) = conns.get_mut(&conn).unwrap();
            c.push(dir, ts.as_nanos(), bytes, &mut out);
            all.extend(out.drain(..).map(|x| (client.port(), x)));
        }
        StreamEvent::Gap { conn, dir, .. } => conns.get_mut(&conn).unwrap().1.gap(dir),
        StreamEvent::Close { conn, .. } => {
            if let Some((client, mut c)) = conns.remove(&conn) {
                c.finish(&mut out);
                all.extend(out.drain(..).map(|x| (client.port(), x)));
            }
        }
        _ => {}
    };
    while let Some(frame) = src.next_frame().unwrap() {
        first.get_or_insert(frame.ts.as_nanos());
        if let Some(seg) = dec.decode(&frame) {
            rea.push(&seg, &mut on);
        }
    }
    rea.finish(&mut on);
    (all, first.unwrap())
}

/// One line of nginx's access log (`scripts/http2-recording/nginx-h2c.sh`'s format).
struct NginxLine {
    msec: u64,
    port: u16,
    method: String,
    uri: String,
    status: u16,
}

fn nginx_log(name: &str) -> Vec<NginxLine> {
    let text = std::fs::read_to_string(pcap(name)).unwrap();
    text.lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            let (s, ms) = w[0].split_once('.').unwrap();
            NginxLine {
                msec: s.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap(),
                port: w[2].parse().unwrap(),
                method: w[3].to_string(),
                uri: w[4].to_string(),
                status: w[5].parse().unwrap(),
            }
        })
        .collect()
}

/// One call in the gRPC server's log (`scripts/http2-recording/grpc_server.py`).
struct GrpcLine {
    ns: u64,
    port: u16,
    path: String,
    code: String,
    sent: u32,
}

fn grpc_log(name: &str) -> Vec<GrpcLine> {
    let text = std::fs::read_to_string(pcap(name)).unwrap();
    text.lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            GrpcLine {
                ns: w[0].parse().unwrap(),
                port: w[1].rsplit(':').next().unwrap().parse().unwrap(),
                path: w[2].to_string(),
                code: w[3].to_string(),
                sent: w[4].parse().unwrap(),
            }
        })
        .collect()
}

/// How many of `want` are in `have`, as multisets.
fn found<T: std::hash::Hash + Eq + Clone>(want: &[T], have: &[T]) -> usize {
    let mut pool: HashMap<T, usize> = HashMap::new();
    for h in have {
        *pool.entry(h.clone()).or_default() += 1;
    }
    want.iter()
        .filter(|w| match pool.get_mut(*w) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

fn at_least_995(found: usize, total: usize, what: &str) {
    assert!(total > 0, "{what}: nothing in the log");
    assert!(
        found * 1000 >= total * 995,
        "{what}: {found} of {total} logged found"
    );
    println!("{what}: {found} of {total} logged found");
}

fn grpc_code(x: &H2Exchange) -> Option<String> {
    let g = x.grpc.as_ref()?;
    Some(tapspan::protocols::http2::grpc::status_name(g.status?).to_string())
}

#[test]
fn nginx_h2c_every_logged_request_is_an_exchange() {
    let log = nginx_log("http2-nginx.access.log");
    let (xs, _) = exchanges("http2-nginx.pcap");
    let want: Vec<_> = log
        .iter()
        .map(|l| (l.port, l.method.clone(), l.uri.clone(), l.status))
        .collect();
    let have: Vec<_> = xs
        .iter()
        .filter_map(|(port, x)| Some((*port, x.method.clone()?, x.path.clone()?, x.status?)))
        .collect();
    at_least_995(
        found(&want, &have),
        want.len(),
        "nginx (method, path, status)",
    );
    assert_eq!(xs.len(), log.len(), "one exchange per logged request");
    assert!(xs
        .iter()
        .all(|(_, x)| x.unknown_headers.is_empty() && !x.request_unseen));
    // h2load's POSTs carried 900 bytes each.
    let posts = xs
        .iter()
        .filter(|(_, x)| x.method.as_deref() == Some("POST"));
    assert!(
        posts.clone().count() == 200 && posts.clone().all(|(_, x)| x.request_body_bytes == 900)
    );
}

#[test]
fn nginx_h2c_cut_mid_connection_finds_statuses_and_never_a_wrong_path() {
    let log = nginx_log("http2-nginx.access.log");
    let (xs, first) = exchanges("http2-nginx-cut.pcap");
    let start_ms = first / 1_000_000;
    // Requests logged well after the cut: their responses are in the capture whole.
    let after: Vec<_> = log.iter().filter(|l| l.msec > start_ms + 50).collect();
    let want: Vec<_> = after.iter().map(|l| (l.port, l.status)).collect();
    let have: Vec<_> = xs
        .iter()
        .filter_map(|(p, x)| Some((*p, x.status?)))
        .collect();
    at_least_995(found(&want, &have), want.len(), "nginx cut (port, status)");
    let served: HashSet<_> = log
        .iter()
        .map(|l| (l.port, l.method.clone(), l.uri.clone()))
        .collect();
    let mut with_path = 0;
    for (port, x) in &xs {
        if let Some(path) = &x.path {
            with_path += 1;
            let method = x.method.clone().unwrap_or_else(|| "GET".into());
            assert!(
                served.contains(&(*port, method.clone(), path.clone())),
                "reported {method} {path} on port {port}: not in nginx's log"
            );
        }
    }
    let unknown = xs
        .iter()
        .filter(|(_, x)| !x.unknown_headers.is_empty())
        .count();
    println!(
        "nginx cut: {} exchanges, {} with their path ({:.1} %), {} with unknown headers, {} \
         logged after the cut",
        xs.len(),
        with_path,
        100.0 * with_path as f64 / xs.len() as f64,
        unknown,
        after.len()
    );
}

#[test]
fn grpc_every_logged_call_is_an_exchange_with_its_status() {
    let log = grpc_log("http2-grpc.server.log");
    let (xs, _) = exchanges("http2-grpc.pcap");
    let want: Vec<_> = log
        .iter()
        .map(|l| (l.port, l.path.clone(), l.code.clone()))
        .collect();
    let have: Vec<_> = xs
        .iter()
        .filter_map(|(port, x)| Some((*port, x.path.clone()?, grpc_code(x)?)))
        .collect();
    at_least_995(found(&want, &have), want.len(), "grpc (path, grpc-status)");
    assert_eq!(xs.len(), log.len(), "one exchange per logged call");
    // Server-streaming calls: as many response messages as the server logged sending.
    let want: Vec<_> = log
        .iter()
        .filter(|l| l.path.ends_with("ListItems"))
        .map(|l| (l.port, l.code.clone(), l.sent))
        .collect();
    let have: Vec<_> = xs
        .iter()
        .filter(|(_, x)| x.path.as_deref() == Some("/shop.Catalog/ListItems"))
        .filter_map(|(p, x)| {
            let g = x.grpc.as_ref()?;
            assert!(g.messages_exact);
            Some((*p, grpc_code(x)?, g.response_messages))
        })
        .collect();
    at_least_995(
        found(&want, &have),
        want.len(),
        "grpc streams (status, messages)",
    );
    for (_, x) in &xs {
        let g = x.grpc.as_ref().unwrap();
        assert_eq!(
            g.service.as_deref(),
            x.path.as_deref().map(|p| p.split('/').nth(1).unwrap())
        );
        assert_eq!(x.status, Some(200));
    }
}

#[test]
fn grpc_cut_mid_connection_finds_statuses_and_never_a_wrong_method() {
    let log = grpc_log("http2-grpc.server.log");
    let (xs, first) = exchanges("http2-grpc-cut.pcap");
    let after: Vec<_> = log.iter().filter(|l| l.ns > first + 50_000_000).collect();
    // `:status 200` is in the static table: every call has it. grpcio's client and server
    // index `:path`, `content-type` and `grpc-status` in their dynamic tables at first use
    // and refer to them ever after, so past the cut those are unknown: never guessed.
    let want: Vec<_> = after.iter().map(|l| (l.port, 200)).collect();
    let have: Vec<_> = xs
        .iter()
        .filter_map(|(p, x)| Some((*p, x.status?)))
        .collect();
    at_least_995(found(&want, &have), want.len(), "grpc cut (port, :status)");
    let served: HashSet<_> = log.iter().map(|l| (l.port, l.path.clone())).collect();
    let codes: HashSet<_> = log.iter().map(|l| (l.port, l.code.clone())).collect();
    let (mut with_path, mut with_code) = (0, 0);
    for (port, x) in &xs {
        if let Some(path) = &x.path {
            with_path += 1;
            assert!(
                served.contains(&(*port, path.clone())),
                "{path} on {port}: not logged"
            );
        }
        if let Some(code) = grpc_code(x) {
            with_code += 1;
            assert!(
                codes.contains(&(*port, code.clone())),
                "{code} on {port}: not logged"
            );
        }
    }
    let unknown = xs
        .iter()
        .filter(|(_, x)| !x.unknown_headers.is_empty())
        .count();
    println!(
        "grpc cut: {} exchanges ({} logged after the cut), {} with their path, {} with their \
         grpc-status, {} with unknown headers",
        xs.len(),
        after.len(),
        with_path,
        with_code,
        unknown
    );
}

/// One connection's data in order: (direction, time, bytes), as reassembly gave it.
type Pieces = Vec<(tapspan::reassembly::Direction, u64, Vec<u8>)>;

fn connection_pieces(name: &str) -> Vec<(u16, Pieces)> {
    let mut src = FileSource::open(&pcap(name)).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut rea = Reassembler::new(ReassemblyConfig::default());
    let mut conns: Vec<(u16, Pieces)> = Vec::new();
    let mut index = HashMap::new();
    let mut on = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Open { conn, client, .. } => {
            index.insert(conn, conns.len());
            conns.push((client.port(), Vec::new()));
        }
        StreamEvent::Data {
            conn,
            dir,
            ts,
            bytes,
            ..
        } => conns[index[&conn]]
            .1
            .push((dir, ts.as_nanos(), bytes.to_vec())),
        _ => {}
    };
    while let Some(frame) = src.next_frame().unwrap() {
        if let Some(seg) = dec.decode(&frame) {
            rea.push(&seg, &mut on);
        }
    }
    rea.finish(&mut on);
    conns
}

#[test]
fn nginx_picked_up_at_many_points_never_reports_a_path_not_served() {
    let log = nginx_log("http2-nginx.access.log");
    let served: HashSet<_> = log
        .iter()
        .map(|l| (l.port, l.method.clone(), l.uri.clone(), l.status))
        .collect();
    let requested: HashSet<_> = served
        .iter()
        .map(|k| (k.0, k.1.clone(), k.2.clone()))
        .collect();
    let (mut total, mut with_path, mut with_status) = (0usize, 0usize, 0usize);
    for (port, pieces) in connection_pieces("http2-nginx.pcap") {
        for start in (1..pieces.len()).step_by(97) {
            let mut c = Http2Conn::new(Http2Config::default(), false);
            let mut out = Vec::new();
            for (dir, ts, b) in &pieces[start..] {
                c.push(*dir, *ts, b, &mut out);
            }
            c.finish(&mut out);
            for x in &out {
                total += 1;
                with_status += usize::from(x.status.is_some());
                if let (Some(m), Some(p)) = (&x.method, &x.path) {
                    with_path += 1;
                    let key = (port, m.clone(), p.clone());
                    assert!(
                        requested.contains(&key),
                        "{key:?} from piece {start}: not logged"
                    );
                    if let Some(status) = x.status {
                        let key = (port, m.clone(), p.clone(), status);
                        assert!(
                            served.contains(&key),
                            "{key:?} from piece {start}: not logged"
                        );
                    }
                }
            }
        }
    }
    println!(
        "nginx picked up at many points: {total} exchanges, {with_status} with status, \
         {with_path} with method and path, all served"
    );
    assert!(with_path * 2 > total, "most paths recovered");
}

#[test]
fn grpc_picked_up_at_many_points_never_reports_a_wrong_call() {
    let log = grpc_log("http2-grpc.server.log");
    let served: HashSet<_> = log.iter().map(|l| (l.port, l.path.clone())).collect();
    let codes: HashSet<_> = log
        .iter()
        .map(|l| (l.port, l.path.clone(), l.code.clone()))
        .collect();
    let (mut total, mut with_path, mut with_code) = (0usize, 0usize, 0usize);
    for (port, pieces) in connection_pieces("http2-grpc.pcap") {
        let port = if SERVER_PORTS.contains(&port) {
            0
        } else {
            port
        };
        for start in (1..pieces.len()).step_by(97) {
            let mut c = Http2Conn::new(Http2Config::default(), false);
            let mut out = Vec::new();
            for (dir, ts, b) in &pieces[start..] {
                c.push(*dir, *ts, b, &mut out);
            }
            c.finish(&mut out);
            for x in &out {
                total += 1;
                let Some(path) = &x.path else { continue };
                with_path += 1;
                assert!(
                    served.contains(&(port, path.clone())),
                    "{path} from piece {start}"
                );
                if let Some(code) = grpc_code(x) {
                    with_code += 1;
                    let key = (port, path.clone(), code);
                    assert!(
                        codes.contains(&key),
                        "{key:?} from piece {start}: not logged"
                    );
                }
            }
        }
    }
    println!(
        "grpc picked up at many points: {total} exchanges, {with_path} with their path, \
         {with_code} with path and grpc-status, all as logged"
    );
}
