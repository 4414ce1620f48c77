//! A simulator of multi-service traffic with exact ground truth, written as a capture.
//!
//! Topology (each service on its own IP): clients → `front` (10.9.0.10:8080); `front` calls
//! `users` (10.9.0.11:9001), then `orders` (10.9.0.12:9002), and fans out to `users` and
//! `inventory` (10.9.0.13:9003) in parallel; `orders` calls `inventory` once per item (an N+1
//! loop); a share of `users` calls fail with 503 and are retried; some requests end in 500.
//! Callers keep pools of keep-alive connections per callee. Every handler waits a processing
//! delay before each call and before answering — each step its own base time ± 20 %, with an
//! occasional pause of up to 5× (GC, scheduling) — and the network adds a jittered one-way delay. `concurrency` closed-loop clients send requests back to back.
//!
//! The capture point sits in the middle of the network (a mirror port): a packet is stamped half
//! its one-way delay after it was sent. Optional loss and reordering of data segments, and an
//! optional `X-Request-ID` that every service forwards.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use super::craft;

pub struct SimConfig {
    pub seed: u64,
    pub concurrency: usize,
    pub requests: usize,
    pub propagate_request_id: bool,
    /// Probability that a data segment is lost (not captured).
    pub loss: f64,
    /// Probability that a packet is swapped with the next one.
    pub reorder: f64,
    /// Added to every timestamp of the capture (clock offset of the capture point).
    pub clock_offset_ns: i64,
    /// Also capture at a second point, whose clock is off by this much: the first point sits a
    /// quarter of the way from callers to callees, the second three quarters.
    pub second_point_skew_ns: Option<i64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            concurrency: 1,
            requests: 200,
            propagate_request_id: false,
            loss: 0.0,
            reorder: 0.0,
            clock_offset_ns: 0,
            second_point_skew_ns: None,
        }
    }
}

/// One simulated exchange and, for calls made while serving another exchange, that exchange.
#[derive(Clone, Debug)]
pub struct TruthExchange {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Absolute sequence number of the request's first byte: with the addresses, the exchange id.
    pub request_seq: u32,
    pub parent: Option<usize>,
    pub path: String,
}

pub struct Simulated {
    pub frames: Vec<(u64, Vec<u8>)>,
    /// The second capture point's frames, when asked for.
    pub frames_b: Vec<(u64, Vec<u8>)>,
    /// Largest one-way delay between the two points.
    pub max_one_way_ns: u64,
    pub truth: Vec<TruthExchange>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// Exponential with the given mean, plus a floor.
    fn delay(&mut self, floor: u64, mean: u64) -> u64 {
        floor + (-(1.0 - self.unit()).ln() * mean as f64) as u64
    }
    /// `base` ± 20 % (uniform), and one time in 50 a pause of up to 5 × `base` (GC, scheduling).
    fn jittered(&mut self, base: u64) -> u64 {
        let j = (base as f64 * (0.8 + 0.4 * self.unit())) as u64;
        if self.unit() < 0.02 {
            j + (base as f64 * 5.0 * self.unit()) as u64
        } else {
            j
        }
    }
}

const FRONT: ([u8; 4], u16) = ([10, 9, 0, 10], 8080);
const USERS: ([u8; 4], u16) = ([10, 9, 0, 11], 9001);
const ORDERS: ([u8; 4], u16) = ([10, 9, 0, 12], 9002);
const INVENTORY: ([u8; 4], u16) = ([10, 9, 0, 13], 9003);

fn addr(a: ([u8; 4], u16)) -> SocketAddr {
    SocketAddr::from(a)
}

/// A keep-alive connection: its ports and next sequence numbers.
#[derive(Clone)]
struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    seq: [u32; 2],
    busy_until: u64,
    opened: bool,
}

/// A packet before capture framing, stamped with its send time.
struct Packet {
    sent_ns: u64,
    one_way_ns: u64,
    src: SocketAddr,
    dst: SocketAddr,
    from_client: bool,
    seq: u32,
    ack: u32,
    syn: bool,
    fin: bool,
    payload: Vec<u8>,
}

struct World {
    cfg_propagate: bool,
    rng: Rng,
    pools: HashMap<(SocketAddr, SocketAddr), Vec<Conn>>,
    next_port: HashMap<[u8; 4], u16>,
    packets: Vec<Packet>,
    truth: Vec<TruthExchange>,
}

impl World {
    fn one_way(&mut self) -> u64 {
        self.rng.jittered(50_000)
    }

    /// Take a free pooled connection from `client_ip` to `server`, or open one.
    fn checkout(&mut self, client_ip: [u8; 4], server: SocketAddr, at: u64) -> Conn {
        let pool = self
            .pools
            .entry((SocketAddr::from((client_ip, 0)), server))
            .or_default();
        if let Some(i) = pool.iter().position(|c| c.busy_until <= at) {
            return pool.swap_remove(i);
        }
        let port = self.next_port.entry(client_ip).or_insert(20_000);
        *port += 1;
        let isn = self.rng.next() as u32;
        let isn_s = self.rng.next() as u32;
        Conn {
            client: SocketAddr::from((client_ip, *port)),
            server,
            seq: [isn, isn_s],
            busy_until: 0,
            opened: false,
        }
    }

    fn checkin(&mut self, mut conn: Conn, until: u64) {
        conn.busy_until = until;
        self.pools
            .entry((
                SocketAddr::from((
                    match conn.client.ip() {
                        std::net::IpAddr::V4(v4) => v4.octets(),
                        _ => unreachable!(),
                    },
                    0,
                )),
                conn.server,
            ))
            .or_default()
            .push(conn);
    }

    fn send(&mut self, conn: &mut Conn, from_client: bool, at: u64, payload: &[u8]) -> u64 {
        let ow = self.one_way();
        let (i, src, dst) = if from_client {
            (0, conn.client, conn.server)
        } else {
            (1, conn.server, conn.client)
        };
        for (k, chunk) in payload.chunks(1400).enumerate() {
            self.packets.push(Packet {
                sent_ns: at + k as u64 * 2_000,
                one_way_ns: ow,
                src,
                dst,
                from_client,
                seq: conn.seq[i],
                ack: conn.seq[1 - i],
                syn: false,
                fin: false,
                payload: chunk.to_vec(),
            });
            conn.seq[i] = conn.seq[i].wrapping_add(chunk.len() as u32);
        }
        at + ow + (payload.len() / 1400) as u64 * 2_000
    }

    fn handshake(&mut self, conn: &mut Conn, at: u64) -> u64 {
        let ow = self.one_way();
        let (c, s) = (conn.client, conn.server);
        let isn = conn.seq;
        self.packets.push(Packet {
            sent_ns: at,
            one_way_ns: ow,
            src: c,
            dst: s,
            from_client: true,
            seq: isn[0],
            ack: 0,
            syn: true,
            fin: false,
            payload: vec![],
        });
        self.packets.push(Packet {
            sent_ns: at + ow,
            one_way_ns: ow,
            src: s,
            dst: c,
            from_client: false,
            seq: isn[1],
            ack: isn[0].wrapping_add(1),
            syn: true,
            fin: false,
            payload: vec![],
        });
        conn.seq = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
        conn.opened = true;
        at + 2 * ow
    }

    /// `caller_ip` calls `server` at `at`, while serving exchange `parent`. Returns when the
    /// response has arrived back.
    fn call(
        &mut self,
        caller_ip: [u8; 4],
        server: ([u8; 4], u16),
        path: &str,
        at: u64,
        parent: Option<usize>,
        rid: &str,
    ) -> (u64, u16) {
        let mut conn = self.checkout(caller_ip, addr(server), at);
        let mut t = at;
        if !conn.opened {
            t = self.handshake(&mut conn, t);
        }
        let idx = self.truth.len();
        self.truth.push(TruthExchange {
            client: conn.client,
            server: conn.server,
            request_seq: conn.seq[0],
            parent,
            path: path.to_string(),
        });
        let header = if self.cfg_propagate {
            format!("X-Request-ID: {rid}\r\n")
        } else {
            String::new()
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: svc\r\n{header}\r\n");
        let arrived = self.send(&mut conn, true, t, req.as_bytes());
        let (done, status) = self.handle(server, path, arrived, idx, rid);
        let body_len = self.rng.range(20, 3000) as usize;
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {body_len}\r\n{header}\r\n{}",
            "x".repeat(body_len)
        );
        let back = self.send(&mut conn, false, done, resp.as_bytes());
        self.checkin(conn, back + 1_000);
        (back, status)
    }

    /// A service handling a request that arrived at `at`: returns when it answers, and how.
    fn handle(
        &mut self,
        service: ([u8; 4], u16),
        path: &str,
        at: u64,
        me: usize,
        rid: &str,
    ) -> (u64, u16) {
        let ip = service.0;
        let mut t = at;
        match service {
            FRONT => {
                t += self.rng.jittered(300_000);
                // users, retried once on 503
                let (back, status) = self.call(ip, USERS, "/users/7", t, Some(me), rid);
                t = back;
                if status == 503 {
                    t += self.rng.jittered(500_000);
                    t = self.call(ip, USERS, "/users/7", t, Some(me), rid).0;
                }
                t += self.rng.jittered(200_000);
                t = self.call(ip, ORDERS, "/orders/42", t, Some(me), rid).0;
                // parallel fan-out
                if path.ends_with("/full") {
                    t += self.rng.jittered(250_000);
                    let a = self.call(ip, USERS, "/users/9/prefs", t, Some(me), rid).0;
                    let b = self
                        .call(ip, INVENTORY, "/stock/summary", t + 20_000, Some(me), rid)
                        .0;
                    t = a.max(b);
                }
                t += self.rng.jittered(150_000);
                let status = if self.rng.unit() < 0.03 { 500 } else { 200 };
                (t, status)
            }
            ORDERS => {
                let items = self.rng.range(1, 5);
                for item in 0..items {
                    t += self.rng.jittered(120_000);
                    t = self
                        .call(ip, INVENTORY, &format!("/stock/{item}"), t, Some(me), rid)
                        .0;
                }
                (t + self.rng.jittered(90_000), 200)
            }
            _ => {
                let work = self
                    .rng
                    .jittered(if service == USERS { 400_000 } else { 300_000 });
                let status = if service == USERS && self.rng.unit() < 0.05 {
                    503
                } else {
                    200
                };
                (t + work, status)
            }
        }
    }
}

pub fn simulate(cfg: &SimConfig) -> Simulated {
    let mut w = World {
        cfg_propagate: cfg.propagate_request_id,
        rng: Rng(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        pools: HashMap::new(),
        next_port: HashMap::new(),
        packets: Vec::new(),
        truth: Vec::new(),
    };
    let start = craft::T0;
    // Closed loop: each client sends its next request shortly after its previous one returned.
    let mut clients: Vec<(u64, [u8; 4])> = (0..cfg.concurrency)
        .map(|i| (start + i as u64 * 37_000, [10, 9, 1, i as u8 + 1]))
        .collect();
    for n in 0..cfg.requests {
        let (i, _) = clients
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.0)
            .expect("clients");
        let (at, ip) = clients[i];
        let path = if n % 3 == 0 {
            "/checkout/full"
        } else {
            "/checkout"
        };
        let rid = format!("req-{:08x}-{n}", w.rng.next() as u32);
        let (back, _) = w.call(ip, FRONT, path, at, None, &rid);
        clients[i].0 = back + w.rng.delay(10_000, 300_000);
    }
    let max_one_way_ns = w.packets.iter().map(|p| p.one_way_ns).max().unwrap_or(0);
    let frames_b = match cfg.second_point_skew_ns {
        Some(skew) => w
            .packets
            .iter()
            .map(|p| {
                let at = p.sent_ns
                    + if p.from_client {
                        p.one_way_ns * 3 / 4
                    } else {
                        p.one_way_ns / 4
                    };
                ((at as i64 + skew) as u64, frame_of(p))
            })
            .collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let mut frames_b = frames_b;
    frames_b.sort_by_key(|(t, _)| *t);
    // Capture at the mirror point (half way, or a quarter of the way with a second point).
    let two_points = cfg.second_point_skew_ns.is_some();
    let mut stamped: Vec<(u64, Packet)> = w
        .packets
        .into_iter()
        .map(|p| {
            let at = if !two_points {
                p.sent_ns + p.one_way_ns / 2
            } else if p.from_client {
                p.sent_ns + p.one_way_ns / 4
            } else {
                p.sent_ns + p.one_way_ns * 3 / 4
            };
            (at, p)
        })
        .collect();
    stamped.sort_by_key(|(t, _)| *t);
    let mut frames = Vec::with_capacity(stamped.len());
    for (t, p) in stamped {
        if !p.payload.is_empty() && w.rng.unit() < cfg.loss {
            continue;
        }
        let ts = (t as i64 + cfg.clock_offset_ns) as u64;
        frames.push((ts, frame_of(&p)));
    }
    for i in 0..frames.len().saturating_sub(1) {
        if w.rng.unit() < cfg.reorder {
            frames.swap(i, i + 1);
        }
    }
    Simulated {
        frames,
        frames_b,
        max_one_way_ns,
        truth: w.truth,
    }
}

fn frame_of(p: &Packet) -> Vec<u8> {
    let seg = craft::Seg {
        ts_ns: 0,
        dir: craft::Dir::C2S,
        seq: p.seq,
        ack: p.ack,
        syn: p.syn,
        fin: p.fin,
        rst: false,
        payload: p.payload.clone(),
    };
    craft::ethernet(&craft::ipv4_between(&seg, p.src, p.dst), &[])
}
