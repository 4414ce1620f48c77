//! The fuzz harnesses (fuzz/src/lib.rs, included here by path) run as ordinary tests over the
//! committed seed corpora (fuzz/seeds/TARGET/) and every crash input found so far
//! (fuzz/regressions/TARGET/, one file per bug, named after it).
//!
//! The seeds are made from real frames: the captures in pcaps/ and fixtures/crafted/, cut to a
//! few KiB and re-encoded in each harness's input format. `TAPSPAN_WRITE_FUZZ_SEEDS=1 cargo test
//! --test fuzz_regressions` (or `scripts/fuzz-seeds.sh`) rewrites them; otherwise a test checks
//! the committed seeds still equal what the generator makes.

mod common;
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tapspan::reassembly::{Direction, Reassembler, ReassemblyConfig, StreamEvent};
use tapspan_capture::{DecodeConfig, Decoder, FileSource, PacketSource};

type Harness = fn(&[u8]);

const TARGETS: &[(&str, Harness)] = &[
    ("capture_file", harness::capture_file),
    ("decode", harness::decode),
    ("reassembly", harness::reassembly),
    ("http", harness::http),
    ("replay", harness::replay),
    ("redis", harness::redis),
    ("postgres", harness::postgres),
    ("dns", harness::dns),
    ("tls", harness::tls),
    ("http2", harness::http2),
];

/// Seeds of capture files are cut at the first record boundary past this many bytes.
const SEED_FILE_BYTES: u64 = 6 * 1024;
/// Frames per `decode` seed, segments per `reassembly` seed.
const SEED_FRAMES: usize = 40;

fn fuzz_dir(sub: &str) -> PathBuf {
    common::repo_path("fuzz").join(sub)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    v.retain(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    v.sort();
    v
}

fn run_dir(sub: &str) -> usize {
    let mut n = 0;
    for (target, harness) in TARGETS {
        for path in files_in(&fuzz_dir(sub).join(target)) {
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| harness(&data));
            assert!(result.is_ok(), "{target} panicked on {}", path.display());
            n += 1;
        }
    }
    n
}

/// Every crash input committed so far (target/name): one that went missing fails the test, and
/// one added must be named here, so the count cannot silently drop to zero.
const REGRESSIONS: &[&str] = &[
    "http2/request-after-response-end",
    "http2/request-body-after-a-midstream-response",
    "reassembly/held-bytes-past-fin-delivered-after-it",
    "replay/exchanges-sharing-an-id",
];

#[test]
fn crash_inputs_found_by_fuzzing_stay_fixed() {
    let dir = fuzz_dir("regressions");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let mut found: Vec<String> = TARGETS
        .iter()
        .flat_map(|(target, _)| files_in(&dir.join(target)))
        .map(|p| {
            let p = p.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            p.replace(std::path::MAIN_SEPARATOR, "/")
        })
        .collect();
    found.sort();
    assert_eq!(found, REGRESSIONS, "the committed crash inputs");
    assert_eq!(run_dir("regressions"), REGRESSIONS.len());
}

#[test]
fn seed_corpora_pass_every_harness_check() {
    let n = run_dir("seeds");
    assert!(n >= 5 * 10, "only {n} seeds: run scripts/fuzz-seeds.sh");
}

/// Real captures the seeds come from.
fn source_captures() -> Vec<PathBuf> {
    let mut v = files_in(&common::repo_path("pcaps"));
    v.extend(files_in(&common::repo_path("fixtures/crafted")));
    v.retain(|p| {
        let e = p.extension().map(|e| e.to_string_lossy().to_string());
        matches!(e.as_deref(), Some("pcap") | Some("pcapng"))
    });
    v
}

fn stem(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().replace('.', "-")
}

/// The capture's first bytes, cut at a record boundary.
fn capture_prefix(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let mut src = FileSource::open(path).unwrap();
    let mut cut = bytes.len() as u64;
    while let Ok(Some(f)) = src.next_frame() {
        if f.offset > SEED_FILE_BYTES {
            cut = f.offset;
            break;
        }
    }
    bytes[..cut as usize].to_vec()
}

/// Frames of a capture: (link type, bytes).
fn frames(path: &Path, n: usize) -> Vec<(u32, Vec<u8>)> {
    let mut src = FileSource::open(path).unwrap();
    let mut v = Vec::new();
    while let Ok(Some(f)) = src.next_frame() {
        v.push((f.link_type.0, f.data.to_vec()));
        if v.len() == n {
            break;
        }
    }
    v
}

fn decode_seed(path: &Path) -> Option<Vec<u8>> {
    let fr = frames(path, SEED_FRAMES);
    let link = fr.first()?.0;
    let index = harness::LINK_TYPES.iter().position(|&l| l == link)?;
    let same: Vec<&[u8]> = fr
        .iter()
        .filter(|(l, _)| *l == link)
        .map(|(_, d)| d.as_slice())
        .collect();
    Some(harness::encode_records(index as u8, &same))
}

/// TCP segments of the capture's first connection in the reassembly harness's format: 12 header
/// bytes (flags, addressing, seq, ack, time step, length) and the payload in ≤ 255-byte pieces.
fn reassembly_seed(path: &Path) -> Option<Vec<u8>> {
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut out = Vec::new();
    let mut first: Option<(std::net::SocketAddr, std::net::SocketAddr)> = None;
    let mut last_ts = None;
    let mut n = 0;
    while let Ok(Some(f)) = src.next_frame() {
        let Some(seg) = dec.decode(&f) else { continue };
        let (a, b) = *first.get_or_insert((seg.flow.src, seg.flow.dst));
        let from_a = seg.flow.src == a && seg.flow.dst == b;
        let from_b = seg.flow.src == b && seg.flow.dst == a;
        if !(from_a || from_b) {
            continue;
        }
        // Host bit: 0 for the first sender. Ports: the first sender gets 40000, the other 80.
        let port_index = |is_a: bool| if is_a { 1u8 } else { 0u8 };
        let addr = 0x80 | (!from_a) as u8 | (port_index(from_a) << 1) | (port_index(!from_a) << 3);
        let dt = last_ts.map_or(0, |t| seg.ts.0.saturating_sub(t) / 1000);
        last_ts = Some(seg.ts.0);
        let pieces: Vec<&[u8]> = if seg.payload.is_empty() {
            vec![&[][..]]
        } else {
            seg.payload.chunks(255).collect()
        };
        let mut seq = seg.seq;
        for (i, p) in pieces.iter().enumerate() {
            let fin_here = i + 1 == pieces.len();
            let flags = if fin_here {
                seg.flags.0
            } else {
                seg.flags.0 & !0x01
            };
            out.push(flags);
            out.push(addr);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&seg.ack.to_le_bytes());
            out.push(if i == 0 { dt.min(0xef) as u8 } else { 0 });
            out.push(p.len() as u8);
            out.extend_from_slice(p);
            seq = seq.wrapping_add(p.len() as u32);
        }
        n += 1;
        if n == SEED_FRAMES {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Each connection's stream events as the http harness's ops (`harness::steps`), with whether
/// it was picked up mid-stream, in the order the connections opened.
fn conn_ops(path: &Path) -> Vec<(u8, Vec<u8>)> {
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut conns: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut sink = |ev: StreamEvent<'_>| {
        let conn = match &ev {
            StreamEvent::Open { conn, .. }
            | StreamEvent::Data { conn, .. }
            | StreamEvent::Gap { conn, .. }
            | StreamEvent::HalfClose { conn, .. }
            | StreamEvent::Close { conn, .. } => *conn,
        };
        let i = *index.entry(conn).or_insert_with(|| {
            conns.push((0, Vec::new()));
            conns.len() - 1
        });
        let (how, ops) = &mut conns[i];
        let s2c = |dir: Direction| dir == Direction::ServerToClient;
        match ev {
            StreamEvent::Open { how: h, .. } => {
                *how = (h == tapspan::reassembly::OpenHow::Midstream) as u8;
            }
            StreamEvent::Data { dir, bytes, .. } => {
                for p in bytes.chunks(255) {
                    ops.push(if s2c(dir) { 4 } else { 0 });
                    ops.push(p.len() as u8);
                    ops.extend_from_slice(p);
                }
            }
            StreamEvent::Gap { dir, len, .. } => {
                ops.push(if s2c(dir) { 0x86 } else { 6 });
                ops.push((len / 37).min(255) as u8);
            }
            StreamEvent::HalfClose { dir, .. } => {
                ops.push(if s2c(dir) { 0x87 } else { 7 });
                ops.push(0);
            }
            StreamEvent::Close { why, .. } => {
                use tapspan::reassembly::CloseReason::*;
                ops.push(0xff);
                ops.push(match why {
                    Fin => 0,
                    Rst => 1,
                    Idle => 2,
                    Evicted => 3,
                    CaptureEnd => 4,
                });
            }
        }
    };
    while let Ok(Some(f)) = src.next_frame() {
        if let Some(seg) = dec.decode(&f) {
            r.push(&seg, &mut sink);
        }
    }
    r.finish(&mut sink);
    conns.retain(|(_, ops)| !ops.is_empty());
    conns
}

/// The first ops, whole, up to about `limit` bytes (the harnesses close what is left open).
fn cut_ops(ops: &[u8], limit: usize) -> &[u8] {
    let mut cut = 0;
    let mut i = 0;
    while i + 1 < ops.len() && i < limit {
        let data = ops[i] % 8 < 6 && ops[i] != 0xff;
        i += 2 + if data { ops[i + 1] as usize } else { 0 };
        cut = i.min(ops.len());
    }
    &ops[..cut]
}

/// The first connection's stream events as the http harness's ops.
fn http_seed(path: &Path) -> Option<Vec<u8>> {
    let (how, ops) = conn_ops(path).into_iter().next()?;
    let mut seed = vec![how];
    seed.extend_from_slice(cut_ops(&ops, 8 * 1024));
    Some(seed)
}

/// Protocol recordings (pcaps/protocols/) the decoder targets' seeds come from.
const PROTOCOL_SEEDS: &[(&str, &str)] = &[
    ("redis", "redis-basic.pcap"),
    ("redis", "multitier.pcap"),
    ("postgres", "postgres-basic.pcap"),
    ("postgres", "multitier.pcap"),
    ("dns", "dns-basic.pcap"),
    ("tls", "tls-handshakes.pcap"),
    ("http2", "http2-nginx.pcap"),
    ("http2", "http2-grpc.pcap"),
    ("http2", "http2-nginx-cut.pcap"),
    ("http2", "http2-grpc-cut.pcap"),
];
/// Connections per recording made into seeds, and the ops kept of each (bytes).
const SEED_CONNS: usize = 6;
const SEED_OPS_BYTES: usize = 4 * 1024;

/// Seeds for a decoder target: the first connections of a recording that the decoder claims
/// (client's and server's bytes, a few KiB of each connection), and for DNS its first UDP
/// datagrams too.
fn protocol_seeds(target: &str, path: &Path) -> BTreeMap<String, Vec<u8>> {
    use tapspan::protocols::{http2::Http2Conn, postgres::PgConn, redis::RedisConn, tls::TlsConn};
    let claims = |first: &[u8]| match target {
        "redis" => RedisConn::sniff(first),
        "postgres" => PgConn::sniff(first),
        "tls" => TlsConn::sniff(first),
        "http2" => Http2Conn::sniff(first),
        _ => true,
    };
    let mut seeds = BTreeMap::new();
    let conns = conn_ops(path).into_iter().filter(|(how, ops)| {
        // The first op is the client's first data (a 0 kind, its length, its bytes); HTTP/2
        // connections picked up mid-way (the cut copies) have no preface to claim by.
        ops.len() > 2
            && ((target == "http2" && *how == 1)
                || (ops[0] == 0 && claims(&ops[2..2 + ops[1] as usize])))
    });
    for (i, (how, ops)) in conns.take(SEED_CONNS).enumerate() {
        // redis and postgres read byte 0 as "mid-stream"; dns as its config (pending cap 8,
        // timeout 1 s); tls has no leading byte.
        let mut seed = match target {
            "tls" => Vec::new(),
            "dns" => vec![7 | (9 << 3)],
            _ => vec![how],
        };
        seed.extend_from_slice(cut_ops(&ops, SEED_OPS_BYTES));
        seeds.insert(format!("{}-tcp{i}", stem(path)), seed);
    }
    if target == "dns" {
        seeds.insert(format!("{}-udp", stem(path)), dns_udp_seed(path));
    }
    seeds
}

/// The capture's first UDP datagrams to or from port 53 or 5353, as UDP ops of the dns harness
/// (kind 0x40: client to server, 0x44: server to client; 0x08 set for a client port other than
/// the first seen).
fn dns_udp_seed(path: &Path) -> Vec<u8> {
    let mut src = FileSource::open(path).unwrap();
    let mut seed = vec![7 | (9 << 3)];
    let mut first_client = None;
    let mut last_ts = None;
    while let Ok(Some(frame)) = src.next_frame() {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame.data) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Udp(udp)) = &p.transport else {
            continue;
        };
        let (sp, dp) = (udp.source_port(), udp.destination_port());
        let to_server = matches!(dp, 53 | 5353);
        if !to_server && !matches!(sp, 53 | 5353) {
            continue;
        }
        let client = if to_server { sp } else { dp };
        let other = *first_client.get_or_insert(client) != client;
        // Time between datagrams as idle ops of 100 ms (the harness adds 1 ms an op).
        let ts = frame.ts.as_nanos();
        let idle = last_ts.map_or(0, |t: u64| ts.saturating_sub(t) / 100_000_000);
        last_ts = Some(ts);
        if idle > 0 {
            seed.extend_from_slice(&[7, idle.min(255) as u8]);
        }
        let payload = udp.payload();
        let len = payload.len().min(255);
        let kind = 0x40 | if to_server { 0 } else { 4 } | if other { 0x08 } else { 0 };
        seed.extend_from_slice(&[kind, len as u8]);
        seed.extend_from_slice(&payload[..len]);
        if seed.len() > SEED_OPS_BYTES {
            break;
        }
    }
    seed
}

/// Every seed the generator makes: target → (file name → bytes).
fn generate_seeds() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let mut all: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for path in source_captures() {
        let name = stem(&path);
        let prefix = capture_prefix(&path);
        all.entry("capture_file")
            .or_default()
            .insert(name.clone(), prefix.clone());
        all.entry("replay")
            .or_default()
            .insert(name.clone(), prefix);
        if let Some(s) = decode_seed(&path) {
            all.entry("decode").or_default().insert(name.clone(), s);
        }
        if let Some(s) = reassembly_seed(&path) {
            all.entry("reassembly").or_default().insert(name.clone(), s);
        }
        if let Some(s) = http_seed(&path) {
            all.entry("http").or_default().insert(name.clone(), s);
        }
    }
    for &(target, file) in PROTOCOL_SEEDS {
        let path = common::repo_path("pcaps/protocols").join(file);
        all.entry(target)
            .or_default()
            .extend(protocol_seeds(target, &path));
    }
    all
}

#[test]
fn committed_seeds_equal_the_generator() {
    let seeds = generate_seeds();
    let write = std::env::var_os("TAPSPAN_WRITE_FUZZ_SEEDS").is_some();
    for (target, files) in &seeds {
        let dir = fuzz_dir("seeds").join(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, bytes) in files {
            let path = dir.join(name);
            if write {
                std::fs::write(&path, bytes).unwrap();
            } else {
                let committed = std::fs::read(&path).unwrap_or_else(|_| {
                    panic!("{} missing: run scripts/fuzz-seeds.sh", path.display())
                });
                assert!(
                    &committed == bytes,
                    "{} differs from the generator: run scripts/fuzz-seeds.sh",
                    path.display()
                );
            }
        }
    }
}
