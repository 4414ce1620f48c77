//! The protocol decoders alone (Redis, PostgreSQL, DNS, TLS handshakes, HTTP/2): each recording's stream
//! bytes (reassembled once, before timing) in, exchanges out, on one thread. Throughput is in
//! bytes of payload per second.
//!
//! `cargo bench --bench protocols` (add `-- --quick` for a rough figure in seconds). The
//! recordings are issue 19's in pcaps/protocols/ (see their notes there). TCP bytes come from
//! the capture crate and the project's reassembly, as the pipeline will feed them; DNS's UDP
//! datagrams are cut from the frames here (etherparse) until the capture crate has its UDP path.

// Losses are left out here: `Piece::Gap`'s direction is for the tests.
#[allow(dead_code)]
#[path = "../tests/common/recorded.rs"]
mod recorded;

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use recorded::{pcap, udp_datagrams, Piece};
use tapspan::protocols::dns::{DnsConfig, DnsTracker, TcpFramer};
use tapspan::protocols::http2::{Http2Config, Http2Conn};
use tapspan::protocols::{postgres::PgConn, redis::RedisConn, tls::TlsConn};
use tapspan::reassembly::Direction;

/// One TCP connection's data in capture order: (direction, time, bytes); losses left out.
struct Conn {
    client: SocketAddr,
    from_start: bool,
    data: Vec<(Direction, u64, Vec<u8>)>,
}

impl Conn {
    fn bytes(conns: &[Conn]) -> u64 {
        let per = |c: &Conn| c.data.iter().map(|d| d.2.len() as u64).sum::<u64>();
        conns.iter().map(per).sum()
    }
}

/// Every TCP connection of a capture whose first client bytes `claims`.
fn tcp_conns(path: &Path, claims: fn(&[u8]) -> bool) -> Vec<Conn> {
    recorded::tcp_conns(path)
        .into_iter()
        .map(|c| Conn {
            client: c.client,
            from_start: c.from_start,
            data: c
                .pieces
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Data(dir, ts, bytes) => Some((dir, ts, bytes)),
                    Piece::Gap(_) => None,
                })
                .collect(),
        })
        .filter(|c| {
            c.data
                .iter()
                .find(|d| d.0 == Direction::ClientToServer)
                .is_some_and(|d| claims(&d.2))
        })
        .collect()
}

fn redis(conns: &[Conn]) -> usize {
    let mut out = Vec::new();
    for c in conns {
        let mut d = RedisConn::new(c.from_start);
        for (dir, ts, b) in &c.data {
            d.push(*dir, *ts, b, &mut out);
        }
        d.finish(&mut out);
    }
    out.len()
}

fn postgres(conns: &[Conn]) -> usize {
    let mut out = Vec::new();
    for c in conns {
        let mut d = PgConn::new(c.from_start);
        for (dir, ts, b) in &c.data {
            d.push(*dir, *ts, b, &mut out);
        }
        d.finish(&mut out);
    }
    out.len()
}

fn tls(conns: &[Conn]) -> usize {
    let mut out = Vec::new();
    for c in conns {
        let mut d = TlsConn::new();
        let mut last = 0;
        for (dir, ts, b) in &c.data {
            last = *ts;
            d.push(*dir, *ts, b, &mut out);
        }
        d.finish(last, &mut out);
    }
    out.len()
}

fn http2(conns: &[Conn]) -> usize {
    let mut out = Vec::new();
    for c in conns {
        let mut d = Http2Conn::new(Http2Config::default(), c.from_start);
        for (dir, ts, b) in &c.data {
            d.push(*dir, *ts, b, &mut out);
        }
        d.finish(&mut out);
    }
    out.len()
}

type Datagram = (u64, SocketAddr, SocketAddr, Vec<u8>);

fn dns(datagrams: &[Datagram], conns: &[Conn]) -> usize {
    let mut t = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    for (ts, src, dst, payload) in datagrams {
        t.advance_to(*ts, &mut out);
        t.datagram(*ts, *src, *dst, payload, &mut out);
    }
    let server = SocketAddr::from(([127, 0, 0, 1], 53));
    for c in conns {
        let mut framers = [TcpFramer::default(), TcpFramer::default()];
        for (dir, ts, b) in &c.data {
            let x = &mut out;
            let tracker = &mut t;
            let offset = framers[dir.index()].next_offset();
            framers[dir.index()].push((*ts, offset), b, &mut |when, m| {
                tracker.message(when, c.client, server, m, x)
            });
        }
    }
    t.finish(&mut out);
    out.len()
}

fn protocols(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocols");
    let all = |_: &[u8]| true;
    let redis_conns = tcp_conns(&pcap("redis-basic.pcap"), RedisConn::sniff);
    group.throughput(Throughput::Bytes(Conn::bytes(&redis_conns)));
    group.bench_function("redis-basic", |b| b.iter(|| redis(black_box(&redis_conns))));

    let pg_conns = tcp_conns(&pcap("postgres-basic.pcap"), PgConn::sniff);
    group.throughput(Throughput::Bytes(Conn::bytes(&pg_conns)));
    group.bench_function("postgres-basic", |b| {
        b.iter(|| postgres(black_box(&pg_conns)))
    });

    let dns_path = pcap("dns-basic.pcap");
    let datagrams: Vec<Datagram> = udp_datagrams(&dns_path);
    let dns_conns = tcp_conns(&dns_path, all);
    let udp_bytes: u64 = datagrams.iter().map(|d| d.3.len() as u64).sum();
    group.throughput(Throughput::Bytes(udp_bytes + Conn::bytes(&dns_conns)));
    group.bench_function("dns-basic", |b| {
        b.iter(|| dns(black_box(&datagrams), black_box(&dns_conns)))
    });

    let tls_conns = tcp_conns(&pcap("tls-handshakes.pcap"), TlsConn::sniff);
    group.throughput(Throughput::Bytes(Conn::bytes(&tls_conns)));
    group.bench_function("tls-handshakes", |b| b.iter(|| tls(black_box(&tls_conns))));

    for name in ["http2-nginx", "http2-grpc"] {
        let conns = tcp_conns(&pcap(&format!("{name}.pcap")), Http2Conn::sniff);
        group.throughput(Throughput::Bytes(Conn::bytes(&conns)));
        group.bench_function(name, |b| b.iter(|| http2(black_box(&conns))));
    }
    group.finish();
}

criterion_group!(benches, protocols);
criterion_main!(benches);
