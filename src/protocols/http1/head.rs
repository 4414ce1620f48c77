//! Message heads: finding where a head ends, parsing it with `httparse` (with a lenient fallback
//! for the lower-case or oddly spaced start lines real servers accept), and keeping only what
//! framing, pairing and the span need. Header values of interest pass through [`crate::redact`].

use crate::redact::HeaderPolicy;

/// Header fields per head (httparse needs room for them up front); more is a malformed head.
const MAX_HEADERS: usize = 128;
/// Header fields most heads fit in. httparse is given room for this many first, then for
/// [`MAX_HEADERS`] if they do not fit: the room is set up for every head, and for 128 fields
/// (4 KiB) that was 6 % of parsing one.
const USUAL_HEADERS: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, target: String },
    Response { status: u16, reason: String },
}

/// The parts of a head that tapspan keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageHead {
    pub start: StartLine,
    /// Minor version of HTTP/1.x.
    pub minor_version: u8,
    /// A request line that stated no version (see [`simple_request_len`]).
    pub simple: bool,
    /// The capture's snap length cut this head: it is what was captured of it.
    pub snapped: bool,
    pub content_length: Option<u64>,
    /// Transfer-Encoding ends in `chunked`.
    pub chunked: bool,
    /// Transfer-Encoding present but not ending in chunked (a response body then runs to close).
    pub other_transfer_encoding: bool,
    pub connection_close: bool,
    pub connection_upgrade: bool,
    pub keep_alive: bool,
    /// Captured headers, lower-case names, values already redacted.
    pub headers: Vec<(String, String)>,
    /// Length of the head in bytes, including the empty line.
    pub len: usize,
}

impl MessageHead {
    /// A head of `len` bytes with its start line and no header read yet.
    pub fn bare(start: StartLine, minor_version: u8, len: usize) -> Self {
        MessageHead {
            start,
            minor_version,
            simple: false,
            snapped: false,
            content_length: None,
            chunked: false,
            other_transfer_encoding: false,
            connection_close: false,
            connection_upgrade: false,
            keep_alive: false,
            headers: Vec::new(),
            len,
        }
    }
}

const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"PURGE",
    b"MKCALENDAR",
    b"BCOPY",
    b"BMOVE",
    b"BDELETE",
    b"BPROPFIND",
    b"POLL",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"NOTIFY",
    b"M-SEARCH",
    b"RPC_IN_DATA",
    b"RPC_OUT_DATA",
];

/// Does `p` start with a known method followed by a space (case-insensitive)?
pub fn starts_like_request(p: &[u8]) -> bool {
    METHODS
        .iter()
        .any(|m| p.len() > m.len() && p[..m.len()].eq_ignore_ascii_case(m) && p[m.len()] == b' ')
}

/// Does `p` start like a status line?
pub fn starts_like_response(p: &[u8]) -> bool {
    p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"HTTP/")
}

/// Length of the HTTP/0.9 simple request (RFC 1945 §4.1) at the start of `buf`: a request line of
/// a method and a target with no version, and its line end. nginx 1.22 and Python 3.11's
/// `http.server` both take such a line as the whole request (they read no header after it, or
/// skip them) and answer with the bare body and a close, for any method (nginx answers a
/// `HEAD /a` with a bare 400 page; see pcaps/http09.md). Whether it was HTTP/0.9 is decided by
/// the answer: one that begins with a status line makes it a versionless HTTP/1.x request.
pub fn simple_request_len(buf: &[u8]) -> Option<usize> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    if !starts_like_request(buf) {
        return None;
    }
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|s| !s.is_empty());
    let (Some(_method), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    // A target is printable ASCII without spaces (RFC 9112 §3.2); anything else is not a line
    // a server took for a request.
    target
        .iter()
        .all(|b| b.is_ascii_graphic())
        .then_some(nl + 1)
}

/// Could `p` be the beginning of such a message (it may be too short to tell yet)?
pub fn could_start(p: &[u8], request: bool) -> bool {
    if request {
        // `p` against the method and the space after it, as far as `p` goes. Called for every
        // piece of a head that arrives in pieces: it must not allocate.
        METHODS.iter().any(|m| {
            let n = p.len().min(m.len() + 1);
            p[..n]
                .iter()
                .zip(m.iter().chain(b" "))
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
        })
    } else {
        let n = p.len().min(5);
        p[..n].eq_ignore_ascii_case(&b"HTTP/"[..n])
    }
}

/// Offset of the first plausible message start in `p` at a line beginning (or at 0).
pub fn find_message_start(p: &[u8], request: bool) -> Option<usize> {
    let mut i = 0;
    loop {
        let tail = &p[i..];
        if tail.is_empty() {
            return None;
        }
        let found = if request {
            starts_like_request(tail)
        } else {
            starts_like_response(tail)
        };
        if found || (tail.len() < 12 && could_start(tail, request)) {
            return Some(i);
        }
        match tail.iter().position(|&b| b == b'\n') {
            Some(nl) => i += nl + 1,
            None => return None,
        }
    }
}

/// End of the head (index after the empty line) if `buf` holds a whole head. `from` is where to
/// resume scanning (bytes before it were scanned already), so split heads cost O(n) overall.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(3);
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        // "\n\n" or "\n\r\n"
        if at + 1 < buf.len() && buf[at + 1] == b'\n' {
            return Some(at + 2);
        }
        if at + 2 < buf.len() && buf[at + 1] == b'\r' && buf[at + 2] == b'\n' {
            return Some(at + 3);
        }
        i = at + 1;
    }
    None
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed HTTP head")]
pub struct HeadError;

/// Parse a complete head (`buf[..len]` ends with the empty line).
pub fn parse_head(
    buf: &[u8],
    request: bool,
    policy: &HeaderPolicy,
) -> Result<MessageHead, HeadError> {
    let len = find_head_end(buf, 0).ok_or(HeadError)?;
    parse_head_of_len(buf, len, request, policy)
}

/// [`parse_head`] of a head whose end framing found already: `buf` is the head, up to and
/// including its empty line, so it is not scanned for that line again.
pub fn parse_whole_head(
    buf: &[u8],
    request: bool,
    policy: &HeaderPolicy,
) -> Result<MessageHead, HeadError> {
    debug_assert_eq!(find_head_end(buf, 0), Some(buf.len()));
    parse_head_of_len(buf, buf.len(), request, policy)
}

fn parse_head_of_len(
    buf: &[u8],
    len: usize,
    request: bool,
    policy: &HeaderPolicy,
) -> Result<MessageHead, HeadError> {
    // The start line is parsed by hand (httparse rejects `http/1.1` and similar forms that servers
    // accept); header lines go through httparse.
    let (start, minor, headers_at) = lenient_start_line(buf, request).ok_or(HeadError)?;
    let start = policy.redact_start(start);
    let mut head = MessageHead::bare(start, minor, len);
    let lines = &buf[headers_at..];
    let mut usual = [httparse::EMPTY_HEADER; USUAL_HEADERS];
    match httparse::parse_headers(lines, &mut usual) {
        Ok(httparse::Status::Complete((_, h))) => read_headers(&mut head, h, policy)?,
        Err(httparse::Error::TooManyHeaders) => {
            let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(lines, &mut storage) {
                Ok(httparse::Status::Complete((_, h))) => read_headers(&mut head, h, policy)?,
                _ => return Err(HeadError),
            }
        }
        _ => return Err(HeadError),
    }
    Ok(head)
}

/// What `head` keeps of its header fields: the framing headers' values, and the captured ones.
fn read_headers(
    head: &mut MessageHead,
    hdrs: &[httparse::Header<'_>],
    policy: &HeaderPolicy,
) -> Result<(), HeadError> {
    for h in hdrs {
        let name = h.name;
        // Only the framing headers' values are read here, so most values are never decoded.
        let value = || std::str::from_utf8(h.value).unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3: differing or invalid lengths make the framing unreliable.
            match value().parse::<u64>() {
                Ok(n) if head.content_length.is_none_or(|m| m == n) => {
                    head.content_length = Some(n)
                }
                _ => return Err(HeadError),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value().rsplit(',').next().unwrap_or("").trim();
            if last.eq_ignore_ascii_case("chunked") {
                head.chunked = true;
                head.other_transfer_encoding = false;
            } else {
                head.chunked = false;
                head.other_transfer_encoding = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value().split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.connection_close = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    head.connection_upgrade = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    head.keep_alive = true;
                }
            }
        }
        if let Some(kept) = policy.capture(name, h.value) {
            head.headers.push(kept);
        }
    }
    Ok(())
}

/// What can be read of a head that was cut short (by a capture gap or the end of the data): its
/// start line and every complete header line before the cut. None if the start line is not whole.
pub fn parse_partial_head(buf: &[u8], request: bool, policy: &HeaderPolicy) -> Option<MessageHead> {
    let last_nl = buf.iter().rposition(|&b| b == b'\n')?;
    let mut whole = buf[..=last_nl].to_vec();
    whole.extend_from_slice(b"\r\n");
    if let Ok(head) = parse_head(&whole, request, policy) {
        return Some(head);
    }
    let first_nl = buf.iter().position(|&b| b == b'\n')?;
    let mut line = buf[..=first_nl].to_vec();
    line.extend_from_slice(b"\r\n");
    if let Ok(head) = parse_head(&line, request, policy) {
        return Some(head);
    }
    let (start, minor_version) = loose_start_line(buf, request)?;
    Some(MessageHead::bare(
        policy.redact_start(start),
        minor_version,
        first_nl + 1,
    ))
}

/// The start line as the servers a capture meets read it. What each answered to a request line
/// of each form (probed here on Debian 12: nginx 1.22.1, Python 3.11 `http.server`, Node 20
/// `http`, Go 1.19 `net/http`), and how it is read here:
///
/// | request line | nginx | Python | Node | Go | read here as |
/// | --- | --- | --- | --- | --- | --- |
/// | `get / HTTP/1.1` | 400 | 501 | 400 | 200 | `GET /` |
/// | `GET / http/1.1` | 400 | an error page, no status line | 400 | 400 | `GET /` |
/// | `GET  /   HTTP/1.1` (extra spaces) | 200 | 200 | 200 | 400 | `GET /` |
/// | `GET /a b HTTP/1.1` | 400 | 400 | 400 | 400 | `GET /a b` |
/// | `GET / HTTP/1.` or `HTTP/1` | 400 | an error page | 400 | 400 | `GET /`, HTTP/1.0 |
/// | `GET / HTTP/2.0` | 505 | an error page | 200 | 505 | [`loose_start_line`] |
/// | `GET /x HTTP/1.1 junk` | 400 | an error page | 400 | 400 | [`loose_start_line`] |
///
/// Every one was answered, so every one is an exchange: what this reader cannot take is read by
/// [`loose_start_line`] (through [`parse_partial_head`]) and reported with what was read and
/// `error.type=malformed_request`, never as a request that was not captured. A status line may
/// lack its reason phrase (RFC 9112 §4).
///
/// Returns the line, the minor version and where the header lines begin.
fn lenient_start_line(buf: &[u8], request: bool) -> Option<(StartLine, u8, usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = crate::redact::shape::utf8_lossy(line);
    let mut parts = text.split([' ', '\t']).filter(|s| !s.is_empty());
    if request {
        let (Some(method), Some(version)) = (parts.next(), parts.next_back()) else {
            return None;
        };
        let target = joined(parts);
        if target.is_empty() || !is_token(method) {
            return None;
        }
        let minor = version_minor(version)?;
        Some((
            StartLine::Request {
                method: method.to_ascii_uppercase(),
                target,
            },
            minor,
            nl + 1,
        ))
    } else {
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return None;
        };
        let minor = version_minor(version)?;
        let status = status_code(code)?;
        let reason = joined(parts);
        Some((StartLine::Response { status, reason }, minor, nl + 1))
    }
}

/// The words (none empty) joined by single spaces, as a line's parts are read.
fn joined<'a>(mut words: impl Iterator<Item = &'a str>) -> String {
    // Most lines have one word here (a target, a reason `OK`): copied at its size.
    let mut out = words.next().map(str::to_string).unwrap_or_default();
    for word in words {
        out.push(' ');
        out.push_str(word);
    }
    out
}

/// `HTTP/1.x` (any case) to its minor version; `HTTP/1.` and `HTTP/1` as 1.0 (Apache's reading).
fn version_minor(v: &str) -> Option<u8> {
    // What follows `HTTP/1` is read as it is: upper-casing it would change no digit or dot.
    let prefix = v.get(..6).filter(|p| p.eq_ignore_ascii_case("HTTP/1"))?;
    let rest = &v[prefix.len()..];
    match rest {
        "" | "." => Some(0),
        _ => rest
            .strip_prefix('.')?
            .parse::<u8>()
            .ok()
            .filter(|m| *m <= 9),
    }
}

fn status_code(code: &str) -> Option<u16> {
    let status: u16 = code.parse().ok().filter(|_| code.len() == 3)?;
    (100..=999).contains(&status).then_some(status)
}

/// A method as RFC 9110 §5.6.2 spells a token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The loosest reading of a start line no server would accept as it is (a version of `HTTP/2.0`
/// in an HTTP/1 request, a missing target, garbage after the version): a request's method and
/// target, a response's status, as far as they can be told. For reporting what was captured
/// (with `error.type` saying it was malformed), never for framing what follows.
pub fn loose_start_line(buf: &[u8], request: bool) -> Option<(StartLine, u8)> {
    let nl = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..nl.min(8192)]);
    let mut parts = text.split_ascii_whitespace();
    if request {
        let method = parts.next().filter(|m| is_token(m) && m.len() <= 32)?;
        let target = parts.next().unwrap_or("");
        Some((
            StartLine::Request {
                method: method.to_ascii_uppercase(),
                target: target.to_string(),
            },
            1,
        ))
    } else {
        let version = parts.next()?;
        if !version.to_ascii_uppercase().starts_with("HTTP/") {
            return None;
        }
        let status = status_code(parts.next()?)?;
        Some((
            StartLine::Response {
                status,
                reason: parts.collect::<Vec<_>>().join(" "),
            },
            1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HeaderPolicy {
        HeaderPolicy::default()
    }

    #[test]
    fn heads_past_the_usual_room_are_read_whole_up_to_the_most() {
        let head_of = |fields: usize| {
            let mut raw = String::from("POST /x HTTP/1.1\r\n");
            for k in 1..fields {
                raw.push_str(&format!("X-Filler-{k}: v\r\n"));
            }
            raw.push_str("Content-Length: 7\r\nX-Request-ID: abc\r\n\r\n");
            parse_head(raw.as_bytes(), true, &policy())
        };
        for fields in [
            1,
            USUAL_HEADERS - 1,
            USUAL_HEADERS,
            USUAL_HEADERS + 5,
            MAX_HEADERS - 1,
        ] {
            let head = head_of(fields).unwrap_or_else(|_| panic!("{fields} fields"));
            assert_eq!(head.content_length, Some(7), "{fields} fields");
            let id = head.headers.iter().find(|(n, _)| n == "x-request-id");
            assert_eq!(id.map(|(_, v)| v.as_str()), Some("abc"), "{fields} fields");
        }
        assert!(head_of(MAX_HEADERS).is_err());
    }

    #[test]
    fn request_lines_are_read_as_servers_read_them() {
        let read = |line: &str| {
            let raw = format!("{line}\r\nHost: h\r\n\r\n");
            parse_head(raw.as_bytes(), true, &policy()).map(|h| (h.start, h.minor_version))
        };
        let get = |target: &str| StartLine::Request {
            method: "GET".into(),
            target: target.into(),
        };
        assert_eq!(read("get / HTTP/1.1"), Ok((get("/"), 1)));
        assert_eq!(read("GET  /   http/1.1"), Ok((get("/"), 1)));
        assert_eq!(read("GET /a b HTTP/1.1"), Ok((get("/a b"), 1)));
        assert_eq!(read("GET / HTTP/1."), Ok((get("/"), 0)));
        assert_eq!(read("GET / HTTP/1"), Ok((get("/"), 0)));
        assert_eq!(read("GET / HTTP/2.0"), Err(HeadError));
        assert_eq!(read("GET /"), Err(HeadError));
        // What no server takes as it is is still read for the report, loosely.
        let loose = |line: &str| loose_start_line(line.as_bytes(), true).map(|(s, _)| s);
        assert_eq!(loose("GET / HTTP/2.0"), Some(get("/")));
        assert_eq!(loose("GET /x HTTP/1.1 junk"), Some(get("/x")));
        assert_eq!(loose("\u{1}\u{2} /x"), None);
        assert_eq!(
            loose_start_line(b"HTTP/9 404 gone", false).map(|(s, _)| s),
            Some(StartLine::Response {
                status: 404,
                reason: "gone".into()
            })
        );
    }

    #[test]
    fn simple_requests_are_one_line_without_version() {
        assert_eq!(simple_request_len(b"GET /a\r\n"), Some(8));
        assert_eq!(simple_request_len(b"GET /a\nHost: x\r\n\r\n"), Some(7));
        assert_eq!(simple_request_len(b"head  /a \r\n"), Some(11));
        assert_eq!(simple_request_len(b"GET /a"), None);
        assert_eq!(simple_request_len(b"GET /a HTTP/1.1\r\n\r\n"), None);
        assert_eq!(simple_request_len(b"GET\r\n"), None);
        assert_eq!(simple_request_len(b"FOO /a\r\n"), None);
        assert_eq!(simple_request_len(b"GET /\x01\r\n"), None);
    }

    #[test]
    fn request_head_with_captured_and_redacted_headers() {
        let raw = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cr3t\r\nX-Request-ID: abc\r\nContent-Length: 3\r\n\r\nxyz";
        let head = parse_head(raw, true, &policy()).unwrap();
        assert_eq!(
            head.start,
            StartLine::Request {
                method: "GET".into(),
                target: "/a?x=1".into()
            }
        );
        assert_eq!(head.content_length, Some(3));
        assert_eq!(head.len, raw.len() - 3);
        assert!(head
            .headers
            .contains(&("x-request-id".into(), "abc".into())));
        let all = format!("{:?}", head.headers);
        assert!(!all.contains("s3cr3t"), "{all}");
    }

    #[test]
    fn lower_case_version_and_method_are_accepted() {
        let raw = b"get /x http/1.1\r\nhost: a\r\n\r\n";
        let head = parse_head(raw, true, &policy()).unwrap();
        assert!(matches!(head.start, StartLine::Request { ref method, .. } if method == "GET"));
    }

    #[test]
    fn status_line_without_reason() {
        let head = parse_head(b"HTTP/1.0 204\r\n\r\n", false, &policy()).unwrap();
        assert_eq!(
            head.start,
            StartLine::Response {
                status: 204,
                reason: String::new()
            }
        );
    }

    #[test]
    fn conflicting_content_lengths_are_rejected() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(parse_head(raw, false, &policy()), Err(HeadError));
    }

    #[test]
    fn head_end_found_across_resumed_scans() {
        let raw = b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
        for from in 0..raw.len() {
            assert_eq!(find_head_end(raw, from.min(20)), Some(raw.len() - 4));
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn message_start_after_garbage() {
        assert_eq!(
            find_message_start(b"junk\r\nmore\nGET / HTTP/1.1\r\n", true),
            Some(11)
        );
        assert_eq!(find_message_start(b"\x16\x03\x01\x02", true), None);
    }
}
