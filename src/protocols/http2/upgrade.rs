//! `Upgrade: h2c` (RFC 7540 §3.2; removed from RFC 9113 but still spoken): an HTTP/1.1
//! request asking to switch, answered `101 Switching Protocols`, after which both sides speak
//! HTTP/2 (the client starting with the preface) and the request becomes stream 1.
//!
//! Recognised by content only: a request head with an `Upgrade` header listing `h2c`, and a
//! response head whose status is 101. Heads are held up to [`MAX_HEAD`] octets.

/// The longest HTTP/1.1 head held while looking for an upgrade.
pub const MAX_HEAD: usize = 16 * 1024;

/// The end of the head (after its blank line) if `buf` holds it whole.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Whether the first bytes could start an HTTP/1.x request (`GET `, `OPTIONS `, …).
pub fn looks_like_request(first: &[u8]) -> bool {
    let word = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=7).contains(&word) && first.get(word) == Some(&b' ')
}

/// A request head asking for h2c: its method and target.
pub fn upgrade_request(head: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let (method, target) = (start.next()?, start.next()?);
    let asks = lines.any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("upgrade")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c"))
        })
    });
    asks.then(|| (method.to_string(), target.to_string()))
}

/// Whether a response head switches protocols.
pub fn switches(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 101")
}
