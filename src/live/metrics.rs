//! A minimal HTTP/1.x responder for Prometheus scrapes (`--metrics-addr`).
//!
//! Contract: [`serve`] binds the address, then answers every request on its own short-lived
//! connection with the current [`prometheus`](super::stats::prometheus) text (`GET /metrics`,
//! and `/` for convenience; other paths get 404). One request per connection, `Connection:
//! close`, reads capped at 8 KiB and 2 s, so a slow or hostile client cannot hold the thread long.
//! The thread is detached and ends with the process.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::stats::{prometheus, Shared};

/// Binds `addr` and serves metrics from a background thread; returns the bound address (useful
/// with port 0).
pub fn serve(addr: &str, shared: Arc<Shared>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    thread::Builder::new()
        .name("tapspan-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let _ = answer(conn, &shared);
            }
        })?;
    Ok(bound)
}

fn answer(mut conn: TcpStream, shared: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
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
        ("GET" | "HEAD", "/metrics" | "/") => ("200 OK", prometheus(&shared.snapshot())),
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
    conn.write_all(resp.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn serves_prometheus_text_on_loopback() {
        let shared = Arc::new(Shared::new(1));
        shared.packets.store(12, Ordering::Relaxed);
        let addr = serve("127.0.0.1:0", shared.clone()).unwrap();
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\ntapspan_packets_total 12\n"), "{r}");
        shared.packets.store(13, Ordering::Relaxed);
        assert!(get(addr, "/metrics").contains("\ntapspan_packets_total 13\n"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
