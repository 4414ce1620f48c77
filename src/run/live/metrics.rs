//! A minimal HTTP/1.x responder for Prometheus scrapes (`--metrics-addr`).
//!
//! Contract: [`bind`] binds the address (before privileges are dropped, so a low port works);
//! [`serve`] then answers every request on its own short-lived connection with the current
//! [`Shared::exposition`] text (the run's counters and the RED metrics) (`GET /metrics`, and `/` for convenience; other
//! paths get 404). One request per connection, `Connection: close`, requests capped at 8 KiB.
//!
//! A slow or silent client cannot stall a scrape: each connection is served on its own thread,
//! and the whole connection — reading the request and writing the answer — has one deadline
//! ([`Limits::deadline`], 5 s), not a timeout per read, so a client trickling a byte a second
//! is cut off like one sending nothing. At most [`Limits::connections`] (32) are served at
//! once; a connection beyond that is answered 503 without waiting for its request, and closed.
//! The threads are detached and end with the process.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::stats::Shared;

/// How long and how many connections are served.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// From accepting a connection to having written the answer.
    pub deadline: Duration,
    /// Connections served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            connections: 32,
        }
    }
}

/// Binds the metrics address.
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves metrics on `listener` from background threads; returns the bound address (useful
/// with port 0).
pub fn serve(listener: TcpListener, shared: Arc<Shared>, limits: Limits) -> io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("tapspan-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => accept(conn, &shared, &active, limits),
                    // Out of file descriptors, say: do not spin.
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
    Ok(bound)
}

/// Holds one of the `active` slots until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept(conn: TcpStream, shared: &Arc<Shared>, active: &Arc<AtomicUsize>, limits: Limits) {
    let deadline = Instant::now() + limits.deadline;
    if active.fetch_add(1, Ordering::AcqRel) >= limits.connections {
        active.fetch_sub(1, Ordering::AcqRel);
        busy(conn);
        return;
    }
    let slot = Slot(active.clone());
    let shared = shared.clone();
    // When the thread cannot start, the closure (its connection and slot) is dropped.
    let _ = thread::Builder::new()
        .name("tapspan-scrape".into())
        .spawn(move || {
            let _slot = slot;
            let _ = answer(conn, &shared, deadline);
        });
}

/// Too many connections: a 503 if the socket takes it at once, then close.
fn busy(mut conn: TcpStream) {
    if conn.set_nonblocking(true).is_ok() {
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
}

/// Time left before `deadline`, or a timeout error once it has passed.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "metrics connection deadline",
        ))
    } else {
        Ok(left)
    }
}

fn answer(mut conn: TcpStream, shared: &Shared, deadline: Instant) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        conn.set_read_timeout(Some(left(deadline)?))?;
        let k = conn.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..n].windows(2).any(|w| w == b"\n\n")
        {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => ("200 OK", shared.exposition()),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "use GET\n".to_string()),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(&body);
    }
    // Write by hand, not write_all: each write may wait only what is left of the deadline.
    let mut rest = resp.as_bytes();
    while !rest.is_empty() {
        conn.set_write_timeout(Some(left(deadline)?))?;
        match conn.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => rest = &rest[k..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn start(shared: Arc<Shared>, limits: Limits) -> SocketAddr {
        serve(bind("127.0.0.1:0").unwrap(), shared, limits).unwrap()
    }

    /// A scrape that gives up (and fails the test) after 3 s: generous, as it checks that the
    /// answer comes at all, not how fast.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        // A refused connection may be answered and closed before the request is sent.
        let _ = write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut s = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => s.extend_from_slice(&buf[..k]),
                // A server refusing a connection may reset it once its answer is sent.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !s.is_empty() => break,
                Err(e) => panic!(
                    "GET {path}: no answer within 3 s ({e}); got {:?}",
                    String::from_utf8_lossy(&s)
                ),
            }
        }
        String::from_utf8(s).unwrap()
    }

    /// Whether the server has closed `c` (within `wait`).
    fn closed(c: &mut TcpStream, wait: Duration) -> bool {
        c.set_read_timeout(Some(wait)).unwrap();
        match c.read(&mut [0u8; 64]) {
            Ok(0) => true,
            Ok(_) => panic!("the server answered a request that never ended"),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    #[test]
    fn serves_prometheus_text_on_loopback() {
        let shared = Arc::new(Shared::new(1));
        shared.packets.store(12, Ordering::Relaxed);
        let addr = start(shared.clone(), Limits::default());
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\ntapspan_packets_total 12\n"), "{r}");
        shared.packets.store(13, Ordering::Relaxed);
        assert!(get(addr, "/metrics").contains("\ntapspan_packets_total 13\n"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }

    /// One client sends nothing, another a byte every 200 ms and never ends its request: a
    /// scrape meanwhile is answered, while both are still connected; and both are cut off at
    /// the connection's deadline, the trickling one too (a timeout per read would never fire).
    #[test]
    fn silent_and_trickling_clients_do_not_stall_a_scrape() {
        let limits = Limits {
            deadline: Duration::from_secs(2),
            connections: 8,
        };
        let addr = start(Arc::new(Shared::new(1)), limits);
        let opened = Instant::now();
        let mut silent = TcpStream::connect(addr).unwrap();
        let mut trickle = TcpStream::connect(addr).unwrap();
        let mut writer = trickle.try_clone().unwrap();
        let trickler = thread::spawn(move || {
            let request = format!("GET /metrics HTTP/1.1\r\nX-Slow: {}", "a".repeat(100));
            for b in request.bytes() {
                if writer.write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(200));
            }
        });
        thread::sleep(Duration::from_millis(300));

        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            !closed(&mut silent, Duration::from_millis(1)),
            "the silent client was cut off before the scrape ended: it did not test anything"
        );
        assert!(!closed(&mut trickle, Duration::from_millis(1)));

        let limit = limits.deadline + Duration::from_secs(2);
        assert!(
            closed(&mut silent, limit.saturating_sub(opened.elapsed())),
            "silent client still connected after {:?}",
            opened.elapsed()
        );
        assert!(
            closed(&mut trickle, limit.saturating_sub(opened.elapsed())),
            "trickling client still connected after {:?}",
            opened.elapsed()
        );
        assert!(opened.elapsed() < limit, "{:?}", opened.elapsed());
        drop(trickle);
        trickler.join().unwrap();
    }

    /// With every slot held by silent clients, one more connection is told 503 at once (it is
    /// never queued behind them), and scrapes are answered again once a slot frees.
    #[test]
    fn beyond_the_connection_cap_a_client_is_told_503_at_once() {
        let limits = Limits {
            deadline: Duration::from_secs(2),
            connections: 2,
        };
        let addr = start(Arc::new(Shared::new(1)), limits);
        let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        thread::sleep(Duration::from_millis(200));
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        held.clear();
        let start = Instant::now();
        loop {
            let r = get(addr, "/metrics");
            if r.starts_with("HTTP/1.1 200 OK\r\n") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(3), "still {r}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}
