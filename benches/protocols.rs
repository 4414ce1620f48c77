//! The protocol decoders alone (Redis, PostgreSQL, DNS, TLS handshakes, HTTP/2): each recording's stream
//! bytes (reassembled once, before timing) in, exchanges out, on one thread. Throughput is in
//! bytes of payload per second.
//!
//! `cargo bench --bench protocols` (add `-- --quick` for a rough figure in seconds). The
//! recordings are issue 19's in pcaps/protocols/ (see their notes there). TCP bytes come from
//! the capture crate and the project's reassembly, as the pipeline will feed them; DNS's UDP
//! datagrams are cut from the frames here (etherparse) until the capture crate has its UDP path.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapspan::protocols::dns::{DnsConfig, DnsTracker, TcpFramer};
use tapspan::protocols::http2::{Http2Config, Http2Conn};
use tapspan::protocols::{postgres::PgConn, redis::RedisConn, tls::TlsConn};
use tapspan::reassembly::{Direction, OpenHow, Reassembler, ReassemblyConfig, StreamEvent};
use tapspan_capture::{DecodeConfig, Decoder, FileSource, PacketSource};

fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps/protocols")
        .join(name)
}

/// One TCP connection's data in capture order: (direction, time, bytes).
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
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut rea = Reassembler::new(ReassemblyConfig::default());
    let mut conns: Vec<(tapspan::reassembly::ConnId, Conn)> = Vec::new();
    let mut on = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Open {
            conn, client, how, ..
        } => conns.push((
            conn,
            Conn {
                client,
                from_start: how == OpenHow::Handshake,
                data: Vec::new(),
            },
        )),
        StreamEvent::Data {
            conn,
            dir,
            ts,
            bytes,
            ..
        } => {
            if let Some((_, c)) = conns.iter_mut().rev().find(|(id, _)| *id == conn) {
                c.data.push((dir, ts.as_nanos(), bytes.to_vec()));
            }
        }
        _ => {}
    };
    while let Some(frame) = src.next_frame().unwrap() {
        if let Some(seg) = dec.decode(&frame) {
            rea.push(&seg, &mut on);
        }
    }
    rea.finish(&mut on);
    conns
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| {
            c.data
                .iter()
                .find(|d| d.0 == Direction::ClientToServer)
                .is_some_and(|d| claims(&d.2))
        })
        .collect()
}

/// UDP datagrams of a capture: (ts, source, destination, payload).
fn udp_datagrams(path: &Path) -> Vec<(u64, SocketAddr, SocketAddr, Vec<u8>)> {
    let mut src = FileSource::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(frame) = src.next_frame().unwrap() {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame.data) else {
            continue;
        };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(udp))) =
            (&p.net, &p.transport)
        else {
            continue;
        };
        let s = SocketAddr::from((ip.header().source_addr(), udp.source_port()));
        let d = SocketAddr::from((ip.header().destination_addr(), udp.destination_port()));
        v.push((frame.ts.as_nanos(), s, d, udp.payload().to_vec()));
    }
    v
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
            framers[dir.index()].push(*ts, b, &mut |when, m| {
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
