//! gRPC over HTTP/2 (the gRPC project's "PROTOCOL-HTTP2" wire format): which streams are
//! gRPC, the service and method named by `:path`, and the messages in DATA.
//!
//! A gRPC message is a 5-byte prefix (a compressed flag, a 4-byte big-endian length) and that
//! many bytes; messages may span DATA frames and a frame may hold several. [`MessageCounter`]
//! follows the prefixes with constant memory; a byte it could not see (a frame over the size
//! cap, a loss) makes the count a lower bound, said by `exact`.

/// `application/grpc`, `application/grpc+proto`, `application/grpc-web…` are gRPC.
pub fn is_grpc(content_type: &[u8]) -> bool {
    content_type.starts_with(b"application/grpc")
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub fn rpc(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Counts length-prefixed messages in one direction of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageCounter {
    pub messages: u32,
    /// False once bytes were skipped: `messages` is then a lower bound.
    pub exact: bool,
    /// Capture time (ns) of the frame that carried the first byte of the first message, when
    /// no byte before it was skipped.
    pub first_at: Option<u64>,
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    body_left: u64,
}

impl Default for MessageCounter {
    fn default() -> Self {
        MessageCounter {
            messages: 0,
            exact: true,
            first_at: None,
            prefix: [0; 5],
            prefix_len: 0,
            body_left: 0,
        }
    }
}

impl MessageCounter {
    /// `data` arrived in a frame captured at `ts` (ns).
    pub fn feed(&mut self, ts: u64, mut data: &[u8]) {
        if !self.exact {
            return;
        }
        if self.messages == 0 && self.prefix_len == 0 && !data.is_empty() {
            self.first_at = Some(ts);
        }
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len() as u64);
                self.body_left -= n;
                data = &data[n as usize..];
                continue;
            }
            let n = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                let p = self.prefix;
                self.body_left = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
                self.prefix_len = 0;
                self.messages = self.messages.saturating_add(1);
            }
        }
    }

    /// Bytes of this direction were not seen.
    pub fn skip(&mut self) {
        self.exact = false;
    }
}

/// `grpc-status`'s value, 0 to 16 for the codes defined; others kept as sent.
pub fn status(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The canonical name of a status code (grpc's `statuscodes.md`).
pub fn status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_and_joined_across_frames() {
        let mut c = MessageCounter::default();
        let mut bytes = vec![0, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0];
        bytes.extend([0, 0, 0, 0, 2, b'x', b'y']);
        c.feed(7, &[]);
        for (ts, chunk) in (10..).zip(bytes.chunks(2)) {
            c.feed(ts, chunk);
        }
        assert_eq!((c.messages, c.exact, c.first_at), (3, true, Some(10)));
        c.skip();
        c.feed(99, &[0, 0, 0, 0, 0]);
        assert_eq!((c.messages, c.exact), (3, false));
    }

    #[test]
    fn the_first_message_is_unknown_after_a_skip() {
        let mut c = MessageCounter::default();
        c.skip();
        c.feed(5, &[0, 0, 0, 0, 0]);
        assert_eq!(c.first_at, None);
    }

    #[test]
    fn rpc_names() {
        assert_eq!(
            rpc("/shop.Catalog/GetItem"),
            Some(("shop.Catalog", "GetItem"))
        );
        assert_eq!(rpc("/index.html"), None);
        assert_eq!(rpc("/a/b/c"), None);
        assert_eq!(status_name(5), "NOT_FOUND");
        assert_eq!(status(b"13"), Some(13));
    }
}
