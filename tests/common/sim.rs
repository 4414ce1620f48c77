//! A simulator of multi-service traffic with exact ground truth, written as a capture.
//!
//! Topology (each service on its own IP): clients → `front` (10.9.0.10:8080); `front` calls
//! `users` (10.9.0.11:9001), then `orders` (10.9.0.12:9002), and fans out to `users` and
//! `inventory` (10.9.0.13:9003) in parallel; `orders` calls `inventory` once per item (an N+1
//! loop); a share of `users` calls fail with 503 and are retried; some requests end in 500.
//! Callers keep pools of keep-alive connections per callee, reused as [`PoolModel`] says. Every handler waits a processing
//! delay before each call and before answering — each step its own base time ± 20 %, with an
//! occasional pause of up to 5× (GC, scheduling) — and the network adds a jittered one-way delay. `concurrency` closed-loop clients send requests back to back.
//!
//! The capture point sits in the middle of the network (a mirror port): a packet is stamped half
//! its one-way delay after it was sent. Receivers acknowledge every data segment. Optional loss
//! and reordering of data segments, and an optional `X-Request-ID` that every service forwards.
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
    /// How callers reuse keep-alive connections.
    pub pool: PoolModel,
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
            pool: PoolModel::SharedLifo,
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

/// How a caller picks a keep-alive connection for its next call. Real HTTP clients differ, and
/// the choice is evidence for nesting (which handler made a call), so the simulator has each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolModel {
    /// One pool per calling service, the idle connection that waited longest first: round
    /// robin, so a handler's next call rarely gets its previous connection back (Node.js's
    /// `http.Agent` before v15, OkHttp). The least evidence of the three.
    SharedFifo,
    /// One pool per calling service, the most recently returned idle connection first (Go's
    /// `net/http` Transport, Python's urllib3 `LifoQueue`, Node.js ≥ 15, Apache HttpClient): a
    /// handler's next call to the same callee often gets its own connection back, unless
    /// another handler took it in between.
    SharedLifo,
    /// Each worker (a gunicorn sync or PHP-FPM process, a thread with a thread-local session)
    /// serves one request at a time and keeps its own connections: a connection's calls all
    /// belong to the request its worker is serving.
    PerWorker,
}

/// A keep-alive connection: its ports and next sequence numbers.
#[derive(Clone)]
struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    seq: [u32; 2],
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

/// One call as the handlers made it (timing first; connections are chosen afterwards, in time
/// order, see [`World::connect`]).
struct CallRecord {
    caller_ip: [u8; 4],
    server: SocketAddr,
    parent: Option<usize>,
    request: Vec<u8>,
    response: Vec<u8>,
    /// The request leaves the caller; it has arrived `request_one_way` later.
    sent: u64,
    request_one_way: u64,
    /// The callee answers; the response is back at the caller `response_one_way` later.
    answered: u64,
    response_one_way: u64,
    back: u64,
}

struct World {
    cfg_propagate: bool,
    rng: Rng,
    calls: Vec<CallRecord>,
    packets: Vec<Packet>,
    truth: Vec<TruthExchange>,
}

/// Time to put `len` bytes on the wire in 1400-byte segments, 2 µs apart.
fn serialisation_ns(len: usize) -> u64 {
    (len / 1400) as u64 * 2_000
}

impl World {
    fn one_way(&mut self) -> u64 {
        self.rng.jittered(50_000)
    }

    fn send(
        &mut self,
        conn: &mut Conn,
        from_client: bool,
        at: u64,
        one_way_ns: u64,
        payload: &[u8],
    ) {
        let (i, src, dst) = if from_client {
            (0, conn.client, conn.server)
        } else {
            (1, conn.server, conn.client)
        };
        for (k, chunk) in payload.chunks(1400).enumerate() {
            self.packets.push(Packet {
                sent_ns: at + k as u64 * 2_000,
                one_way_ns,
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
            // The receiver acknowledges each segment as it arrives: what tells a capture that
            // a segment it missed did reach its receiver (RFC 9293, 3.4).
            self.packets.push(Packet {
                sent_ns: at + k as u64 * 2_000 + one_way_ns,
                one_way_ns,
                src: dst,
                dst: src,
                from_client: !from_client,
                seq: conn.seq[1 - i],
                ack: conn.seq[i],
                syn: false,
                fin: false,
                payload: vec![],
            });
        }
    }

    /// Opens a connection whose handshake completes just before `ready`.
    fn open(&mut self, client: SocketAddr, server: SocketAddr, ready: u64) -> Conn {
        let ow = self.one_way();
        let isn = [self.rng.next() as u32, self.rng.next() as u32];
        let syn_at = ready.saturating_sub(2 * ow + 1_000);
        for (at, src, dst, from_client, seq, ack) in [
            (syn_at, client, server, true, isn[0], 0),
            (
                syn_at + ow,
                server,
                client,
                false,
                isn[1],
                isn[0].wrapping_add(1),
            ),
        ] {
            self.packets.push(Packet {
                sent_ns: at,
                one_way_ns: ow,
                src,
                dst,
                from_client,
                seq,
                ack,
                syn: true,
                fin: false,
                payload: vec![],
            });
        }
        Conn {
            client,
            server,
            seq: [isn[0].wrapping_add(1), isn[1].wrapping_add(1)],
        }
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
        let idx = self.truth.len();
        self.truth.push(TruthExchange {
            client: SocketAddr::from((caller_ip, 0)),
            server: addr(server),
            request_seq: 0,
            parent,
            path: path.to_string(),
        });
        let header = if self.cfg_propagate {
            format!("X-Request-ID: {rid}\r\n")
        } else {
            String::new()
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: svc\r\n{header}\r\n").into_bytes();
        let request_one_way = self.one_way();
        let arrived = at + request_one_way + serialisation_ns(request.len());
        self.calls.push(CallRecord {
            caller_ip,
            server: addr(server),
            parent,
            request,
            response: Vec::new(),
            sent: at,
            request_one_way,
            answered: 0,
            response_one_way: 0,
            back: 0,
        });
        let (answered, status) = self.handle(server, path, arrived, idx, rid);
        let body_len = self.rng.range(20, 3000) as usize;
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {body_len}\r\n{header}\r\n{}",
            "x".repeat(body_len)
        )
        .into_bytes();
        let response_one_way = self.one_way();
        let back = answered + response_one_way + serialisation_ns(response.len());
        let rec = &mut self.calls[idx];
        rec.answered = answered;
        rec.response_one_way = response_one_way;
        rec.back = back;
        rec.response = response;
        (back, status)
    }

    /// Puts every call on a connection, in time order, as `pool` would, and writes its packets.
    fn connect(&mut self, pool: PoolModel) {
        // Who owns connections: the calling service (shared pools) or, per worker, a worker id.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        enum Owner {
            Service([u8; 4]),
            Worker(usize),
        }
        // (time, order at equal times: releases first, index, what)
        let mut events: Vec<(u64, u8, usize, u8)> = Vec::new();
        const RELEASE_CONN: u8 = 0;
        const FREE_WORKER: u8 = 1;
        const TAKE_WORKER: u8 = 2;
        const START: u8 = 3;
        for (i, c) in self.calls.iter().enumerate() {
            events.push((c.sent, 1, i, START));
            events.push((c.back + 1_000, 0, i, RELEASE_CONN));
            if pool == PoolModel::PerWorker {
                events.push((c.sent + c.request_one_way, 1, i, TAKE_WORKER));
                events.push((c.answered + 1, 0, i, FREE_WORKER));
            }
        }
        events.sort_unstable();
        let mut idle: HashMap<(Owner, SocketAddr), std::collections::VecDeque<Conn>> =
            HashMap::new();
        let mut in_use: HashMap<usize, (Owner, Conn)> = HashMap::new();
        let mut free_workers: HashMap<SocketAddr, Vec<usize>> = HashMap::new();
        let mut worker_of: HashMap<usize, usize> = HashMap::new();
        let mut workers = 0usize;
        let mut next_port: HashMap<[u8; 4], u16> = HashMap::new();
        for (_, _, i, what) in events {
            match what {
                TAKE_WORKER => {
                    let server = self.calls[i].server;
                    let w = free_workers
                        .entry(server)
                        .or_default()
                        .pop()
                        .unwrap_or_else(|| {
                            workers += 1;
                            workers
                        });
                    worker_of.insert(i, w);
                }
                FREE_WORKER => {
                    let w = worker_of[&i];
                    free_workers
                        .entry(self.calls[i].server)
                        .or_default()
                        .push(w);
                }
                START => {
                    let (caller_ip, server, parent) = {
                        let c = &self.calls[i];
                        (c.caller_ip, c.server, c.parent)
                    };
                    let owner = match (pool, parent) {
                        (PoolModel::PerWorker, Some(p)) => Owner::Worker(worker_of[&p]),
                        _ => Owner::Service(caller_ip),
                    };
                    let waiting = idle.entry((owner, server)).or_default();
                    let reused = match pool {
                        PoolModel::SharedFifo => waiting.pop_front(),
                        PoolModel::SharedLifo | PoolModel::PerWorker => waiting.pop_back(),
                    };
                    let mut conn = match reused {
                        Some(conn) => conn,
                        None => {
                            let port = next_port.entry(caller_ip).or_insert(20_000);
                            *port += 1;
                            let client = SocketAddr::from((caller_ip, *port));
                            self.open(client, server, self.calls[i].sent)
                        }
                    };
                    self.truth[i].client = conn.client;
                    self.truth[i].request_seq = conn.seq[0];
                    let c = &self.calls[i];
                    let (sent, req_ow, answered, resp_ow) =
                        (c.sent, c.request_one_way, c.answered, c.response_one_way);
                    let request = std::mem::take(&mut self.calls[i].request);
                    let response = std::mem::take(&mut self.calls[i].response);
                    self.send(&mut conn, true, sent, req_ow, &request);
                    self.send(&mut conn, false, answered, resp_ow, &response);
                    in_use.insert(i, (owner, conn));
                }
                _ => {
                    let (owner, conn) = in_use.remove(&i).expect("released after its start");
                    let server = conn.server;
                    idle.entry((owner, server)).or_default().push_back(conn);
                }
            }
        }
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
        calls: Vec::new(),
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
    w.connect(cfg.pool);
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
