//! SOCKS handshakes in front of HTTP: a client that reaches its server through a SOCKS 4, 4a
//! or 5 proxy first negotiates with the proxy on the same connection, then speaks HTTP through
//! it. [`handshake_len`] says how many bytes of a direction the handshake takes, so that the
//! decoder can skip them and read what follows as HTTP. Nothing of the handshake is kept: the
//! SOCKS 5 user name and password (RFC 1929) are skipped like the rest.
//!
//! Client side: SOCKS 4 (`04 cmd port ip user 00`, and for 4a, where ip is `0.0.0.x`, a host name
//! and `00`); SOCKS 5 (RFC 1928): a greeting (`05 n methods`), then a user/password
//! sub-negotiation (`01 ulen user plen pass`) if the proxy chose it, then the request
//! (`05 cmd 00 atyp addr port`). Proxy side: SOCKS 4's 8-byte reply; SOCKS 5's choice
//! (`05 method`), the sub-negotiation's status (`01 status`) if it chose user/password, then the
//! reply (`05 rep 00 atyp addr port`). Each side describes itself, so each is read alone.

/// A handshake longer than this is not one (a SOCKS 4 user id and 4a host name, 255 bytes each
/// in practice; SOCKS 5 messages are shorter).
pub const MAX_HANDSHAKE: usize = 1024;

/// What the first bytes of a direction say.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The whole handshake is the first `n` bytes.
    Complete(usize),
    /// So far it is one: more bytes are needed.
    Partial,
    /// Not a SOCKS handshake.
    NotSocks,
}

/// Whether a connection's first client bytes begin a SOCKS handshake.
pub fn starts_like(first: &[u8]) -> bool {
    match first {
        // SOCKS 4: CONNECT (1) or BIND (2).
        [0x04, 0x01 | 0x02, ..] => true,
        // SOCKS 5: a greeting with 1 to 9 methods, each a known one.
        [0x05, n @ 1..=9, methods @ ..] => methods
            .iter()
            .take(usize::from(*n))
            .all(|&m| m <= 0x09 || m >= 0x80),
        _ => false,
    }
}

/// The handshake at the start of `buf`, from the client (`client`) or the proxy.
pub fn handshake_len(buf: &[u8], client: bool) -> Handshake {
    let got = match (client, buf.first()) {
        (true, Some(0x04)) => socks4_request(buf),
        (true, Some(0x05)) => socks5_client(buf),
        (false, Some(0x00)) => socks4_reply(buf),
        (false, Some(0x05)) => socks5_proxy(buf),
        (_, None) => return Handshake::Partial,
        _ => return Handshake::NotSocks,
    };
    match got {
        Read::Done(n) => Handshake::Complete(n),
        Read::More if buf.len() >= MAX_HANDSHAKE => Handshake::NotSocks,
        Read::More => Handshake::Partial,
        Read::Bad => Handshake::NotSocks,
    }
}

enum Read {
    Done(usize),
    More,
    Bad,
}

/// A NUL-terminated string starting at `at`: the index after its NUL.
fn after_nul(buf: &[u8], at: usize) -> Read {
    match buf.get(at..).and_then(|b| b.iter().position(|&c| c == 0)) {
        Some(i) => Read::Done(at + i + 1),
        None => Read::More,
    }
}

fn socks4_request(buf: &[u8]) -> Read {
    if buf.len() < 8 {
        return Read::More;
    }
    let Read::Done(end) = after_nul(buf, 8) else {
        return Read::More;
    };
    // SOCKS 4a: an address of 0.0.0.x (x ≠ 0) means a host name follows the user id.
    if buf[4..7] == [0, 0, 0] && buf[7] != 0 {
        return after_nul(buf, end);
    }
    Read::Done(end)
}

fn socks4_reply(buf: &[u8]) -> Read {
    match buf.get(1) {
        Some(0x5a..=0x5d) if buf.len() >= 8 => Read::Done(8),
        Some(0x5a..=0x5d) | None => Read::More,
        Some(_) => Read::Bad,
    }
}

fn socks5_client(buf: &[u8]) -> Read {
    let Some(&n) = buf.get(1) else {
        return Read::More;
    };
    let mut at = 2 + usize::from(n);
    // Then, if the proxy chose user/password, the sub-negotiation (version 1).
    if buf.get(at) == Some(&0x01) {
        let Some(&ulen) = buf.get(at + 1) else {
            return Read::More;
        };
        let plen_at = at + 2 + usize::from(ulen);
        let Some(&plen) = buf.get(plen_at) else {
            return Read::More;
        };
        at = plen_at + 1 + usize::from(plen);
    }
    socks5_request_or_reply(buf, at)
}

fn socks5_proxy(buf: &[u8]) -> Read {
    let Some(&method) = buf.get(1) else {
        return Read::More;
    };
    match method {
        0xff => Read::Done(2), // no acceptable method: the proxy closes
        0x02 => {
            // User/password status, then the reply.
            match buf.get(2) {
                Some(0x01) if buf.len() >= 4 => socks5_request_or_reply(buf, 4),
                Some(0x01) | None => Read::More,
                Some(_) => Read::Bad,
            }
        }
        _ => socks5_request_or_reply(buf, 2),
    }
}

/// A SOCKS 5 request or reply at `at`: `05 code 00 atyp addr port`.
fn socks5_request_or_reply(buf: &[u8], at: usize) -> Read {
    let Some(head) = buf.get(at..at + 4) else {
        return Read::More;
    };
    if head[0] != 0x05 || head[2] != 0x00 {
        return Read::Bad;
    }
    let addr_len = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => match buf.get(at + 4) {
            Some(&n) => 1 + usize::from(n),
            None => return Read::More,
        },
        _ => return Read::Bad,
    };
    let end = at + 4 + addr_len + 2;
    if buf.len() >= end {
        Read::Done(end)
    } else {
        Read::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks4_and_4a() {
        let req = b"\x04\x01\x00\x50\x0a\x00\x00\x01bob\x00GET / HTTP/1.1\r\n";
        assert!(starts_like(req));
        assert_eq!(handshake_len(req, true), Handshake::Complete(12));
        let req4a = b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00GET";
        assert_eq!(handshake_len(req4a, true), Handshake::Complete(21));
        assert_eq!(handshake_len(&req4a[..15], true), Handshake::Partial);
        let reply = b"\x00\x5a\x00\x50\x0a\x00\x00\x01HTTP/1.1 200 OK";
        assert_eq!(handshake_len(reply, false), Handshake::Complete(8));
        assert_eq!(handshake_len(b"\x00\x99", false), Handshake::NotSocks);
    }

    #[test]
    fn socks5_with_and_without_a_password() {
        // Greeting (no auth), CONNECT to a host name, then HTTP.
        let mut c = b"\x05\x01\x00\x05\x01\x00\x03\x09localhost\x1f\x90".to_vec();
        let n = c.len();
        c.extend(b"GET / HTTP/1.1\r\n");
        assert!(starts_like(&c));
        assert_eq!(handshake_len(&c, true), Handshake::Complete(n));
        for cut in 0..n {
            assert_eq!(handshake_len(&c[..cut], true), Handshake::Partial, "{cut}");
        }
        let p = b"\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38HTTP/1.1";
        assert_eq!(handshake_len(p, false), Handshake::Complete(12));
        // User/password (RFC 1929) chosen: the sub-negotiation is skipped on both sides.
        let c = b"\x05\x02\x00\x02\x01\x03bob\x06hunter\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90GET";
        assert_eq!(handshake_len(c, true), Handshake::Complete(c.len() - 3));
        let p = b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38HTTP";
        assert_eq!(handshake_len(p, false), Handshake::Complete(p.len() - 4));
    }

    #[test]
    fn what_is_not_socks_says_so() {
        assert!(!starts_like(b"GET / HTTP/1.1"));
        assert!(!starts_like(b"\x16\x03\x01"));
        assert_eq!(
            handshake_len(b"\x05\x01\x00\x09\x01\x00\x01", true),
            Handshake::NotSocks
        );
        let long = [0x04, 0x01, 0, 80, 10, 0, 0, 1]
            .into_iter()
            .chain(std::iter::repeat_n(b'a', MAX_HANDSHAKE))
            .collect::<Vec<u8>>();
        assert_eq!(handshake_len(&long, true), Handshake::NotSocks);
    }
}
