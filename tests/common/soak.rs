//! A long capture of a two-tier service, generated as a pcap stream (issue 21's soak): clients
//! call a front service, which calls two backends for each request over a pool of keep-alive
//! connections, one request after another. Every request has ids of its own (in paths and
//! queries), so routes must be templated; every 97th fails with a 500 and every 89th takes
//! 40 ms, so the analysis has errors, slow paths and findings to keep. Nothing grows but the
//! number of requests: the same endpoints, connections rotated every few hundred requests.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;

use super::craft::{self, Dir};

const CLIENTS: u8 = 8;
const POOL: u16 = 4;
/// Requests a client connection carries before it closes and the client opens the next.
const REQUESTS_PER_CLIENT_CONN: u64 = 50;
/// Calls a pooled backend connection carries before it is replaced.
const CALLS_PER_POOL_CONN: u64 = 400;

pub const FRONT: ([u8; 4], u16) = ([10, 9, 1, 1], 8080);
const ITEMS: ([u8; 4], u16) = ([10, 9, 2, 1], 9000);
const PRICES: ([u8; 4], u16) = ([10, 9, 2, 2], 9000);

fn addr((ip, port): ([u8; 4], u16)) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// One TCP connection: its ends and the next sequence number of each direction.
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    next: [u32; 2],
}

impl Flow {
    fn open(
        client: SocketAddr,
        server: SocketAddr,
        isn: u32,
        out: &mut Frames<'_>,
        ts: u64,
    ) -> Self {
        let mut flow = Flow {
            client,
            server,
            next: [isn, isn.wrapping_mul(7).wrapping_add(12_345)],
        };
        flow.segment(Dir::C2S, true, false, b"", out, ts);
        flow.segment(Dir::S2C, true, false, b"", out, ts + 20_000);
        flow
    }

    fn segment(
        &mut self,
        dir: Dir,
        syn: bool,
        fin: bool,
        payload: &[u8],
        out: &mut Frames<'_>,
        ts: u64,
    ) {
        let mut seg = craft::next_segment(&mut self.next, ts, dir, syn, fin, payload);
        if syn && dir == Dir::C2S {
            seg.ack = 0; // the opening SYN acknowledges nothing (no ACK flag)
        }
        let (src, dst) = match dir {
            Dir::C2S => (self.client, self.server),
            Dir::S2C => (self.server, self.client),
        };
        out.frame(ts, &craft::ipv4_between(&seg, src, dst));
    }

    fn close(&mut self, out: &mut Frames<'_>, ts: u64) {
        self.segment(Dir::C2S, false, true, b"", out, ts);
        self.segment(Dir::S2C, false, true, b"", out, ts + 10_000);
        self.segment(Dir::C2S, false, false, b"", out, ts + 20_000);
    }
}

/// Ethernet frames out as pcap records.
struct Frames<'a> {
    out: &'a mut dyn Write,
    packets: u64,
}

impl Frames<'_> {
    fn frame(&mut self, ts: u64, ip: &[u8]) {
        let frame = craft::ethernet(ip, &[]);
        self.out
            .write_all(&craft::pcap_record_header(
                ts,
                true,
                frame.len(),
                frame.len(),
            ))
            .and_then(|()| self.out.write_all(&frame))
            .expect("the reader takes the capture");
        self.packets += 1;
    }
}

/// An initial sequence number for the connection opened at request `k` on `side`: spread out,
/// and never one whose acknowledgment would be 0 (a SYN-ACK acknowledging 0 reads as a SYN).
fn isn(k: u64, side: u64) -> u32 {
    let mixed = (3 * k + side).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 34;
    1_000 + mixed as u32
}

fn request(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: soak/1\r\n\r\n").into_bytes()
}

fn response(status: u16, body: &str) -> Vec<u8> {
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a soak capture holds.
pub struct Soak {
    pub requests: u64,
    pub exchanges: u64,
    pub packets: u64,
    pub errors: u64,
}

/// Writes a pcap of `requests` front requests (three exchanges each) to `out`.
pub fn write(requests: u64, out: &mut dyn Write) -> Soak {
    out.write_all(&craft::pcap_header(1, true, 65_535))
        .expect("the reader takes the capture");
    let mut frames = Frames { out, packets: 0 };
    let mut clients: Vec<Option<Flow>> = (0..CLIENTS).map(|_| None).collect();
    let mut pool: Vec<[Option<Flow>; 2]> = (0..POOL).map(|_| [None, None]).collect();
    let mut next_port = [1024u16; 3];
    let mut port = |side: usize| {
        next_port[side] = if next_port[side] >= 64_000 {
            1024
        } else {
            next_port[side] + 1
        };
        next_port[side]
    };
    let mut ts = craft::T0;
    let mut errors = 0;
    for k in 0..requests {
        // Connections: a client's rotates every REQUESTS_PER_CLIENT_CONN of its requests, a
        // pooled backend connection every CALLS_PER_POOL_CONN of its calls.
        let c = (k % u64::from(CLIENTS)) as usize;
        if k % (u64::from(CLIENTS) * REQUESTS_PER_CLIENT_CONN) < u64::from(CLIENTS) {
            if let Some(mut old) = clients[c].take() {
                old.close(&mut frames, ts);
                ts += 50_000;
            }
            let client = SocketAddr::from(([10, 9, 0, c as u8 + 1], port(0)));
            clients[c] = Some(Flow::open(client, addr(FRONT), isn(k, 0), &mut frames, ts));
            ts += 50_000;
        }
        let p = (k % u64::from(POOL)) as usize;
        if k % (u64::from(POOL) * CALLS_PER_POOL_CONN) < u64::from(POOL) {
            for (b, backend) in [ITEMS, PRICES].into_iter().enumerate() {
                if let Some(mut old) = pool[p][b].take() {
                    old.close(&mut frames, ts);
                    ts += 50_000;
                }
                let local = SocketAddr::from((FRONT.0, port(1 + b)));
                pool[p][b] = Some(Flow::open(
                    local,
                    addr(backend),
                    isn(k, 1 + b as u64),
                    &mut frames,
                    ts,
                ));
                ts += 50_000;
            }
        }
        let client = clients[c].as_mut().expect("opened above");
        client.segment(
            Dir::C2S,
            false,
            false,
            &request(&format!("/orders/{k}?user={}", k % 1000), "front"),
            &mut frames,
            ts,
        );
        let [items, prices] = &mut pool[p];
        let (items, prices) = (
            items.as_mut().expect("opened"),
            prices.as_mut().expect("opened"),
        );
        let slow = if k % 89 == 0 { 40_000_000 } else { 0 };
        items.segment(
            Dir::C2S,
            false,
            false,
            &request(&format!("/items/{}?order={k}", k % 5000), "items"),
            &mut frames,
            ts + 200_000,
        );
        items.segment(
            Dir::S2C,
            false,
            false,
            &response(
                200,
                &format!("{{\"order\":{k},\"sku\":\"sku-{}\"}}", k % 5000),
            ),
            &mut frames,
            ts + 1_000_000 + slow,
        );
        prices.segment(
            Dir::C2S,
            false,
            false,
            &request(&format!("/prices/sku-{}", k % 5000), "prices"),
            &mut frames,
            ts + 1_200_000 + slow,
        );
        prices.segment(
            Dir::S2C,
            false,
            false,
            &response(200, "{\"cents\":1299}"),
            &mut frames,
            ts + 2_000_000 + slow,
        );
        let status = if k % 97 == 0 { 500 } else { 200 };
        errors += u64::from(status == 500);
        client.segment(
            Dir::S2C,
            false,
            false,
            &response(status, &format!("{{\"order\":{k}}}")),
            &mut frames,
            ts + 2_500_000 + slow,
        );
        ts += 3_000_000 + slow;
    }
    for mut flow in clients
        .into_iter()
        .chain(pool.into_iter().flatten())
        .flatten()
    {
        flow.close(&mut frames, ts);
        ts += 50_000;
    }
    frames.out.flush().expect("the reader takes the capture");
    Soak {
        requests,
        exchanges: 3 * requests,
        packets: frames.packets,
        errors,
    }
}
