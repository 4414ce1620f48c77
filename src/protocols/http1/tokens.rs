//! Payload tokens: the values a message carries (path segments, query values, scalar values of a
//! JSON or form body), kept only as keyed 64-bit hashes, for causality to see which inbound
//! request's values reappear in an outbound call (DESIGN.md "Causality", payload tokens).
//!
//! Contract:
//! - Never a value: a token is `hash(key, bytes)` with a key drawn once per process at random, so
//!   a hash cannot be looked up in a dictionary of guesses made elsewhere, and nothing of it is
//!   ever exported (spans, reports and errors never see [`Tokens`]).
//! - Bounded: at most [`BODY_PREFIX`] bytes of a body are read, tokens are 2 to [`MAX_TOKEN`]
//!   bytes, and a message keeps at most [`MAX_TOKENS`] distinct ones (the first seen). The work
//!   per body byte is constant; a token split across segments is carried in a fixed buffer.
//! - Values, not names: a JSON key (a token followed by `":`) and a form or query name (followed
//!   by `=`) are skipped; path segments are kept whole, static ones too (their weight is learned
//!   from how common they are, see `causality::tokens`).

use std::sync::OnceLock;

/// Distinct tokens kept per message.
pub const MAX_TOKENS: usize = 32;
/// Bytes of a body looked at.
pub const BODY_PREFIX: usize = 4096;
/// Longer runs are not identifiers anyone passes on (or are bodies of text): skipped.
pub const MAX_TOKEN: usize = 64;

/// A message's token hashes, sorted and distinct.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens(Vec<u64>);

impl Tokens {
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Tokens present in both (each sorted), in order.
    pub fn shared<'a>(&'a self, other: &'a Tokens) -> impl Iterator<Item = u64> + 'a {
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        std::iter::from_fn(move || {
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        return Some(a[i - 1]);
                    }
                }
            }
            None
        })
    }
    /// All tokens of `parts`, once each.
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a Tokens>) -> Tokens {
        let mut all: Vec<u64> = parts
            .into_iter()
            .flat_map(|t| t.0.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        Tokens(all)
    }
    /// These tokens less those of `other`.
    pub fn without(&self, other: &Tokens) -> Tokens {
        Tokens(
            self.0
                .iter()
                .copied()
                .filter(|t| !other.contains(*t))
                .collect(),
        )
    }
    pub fn contains(&self, token: u64) -> bool {
        self.0.binary_search(&token).is_ok()
    }
}

fn key() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    *KEY.get_or_init(|| fastrand::u64(..) | 1)
}

fn keyed_hash(bytes: &[u8]) -> u64 {
    // FNV-1a over the key and the bytes, then a 64-bit finaliser (splitmix64): not a MAC, but
    // the key is secret and never leaves the process, and the hashes never leave it either.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ key();
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// The bytes a token is made of, as a table: the test runs for every body byte read.
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'@' | b'+' | b'%');
        b += 1;
    }
    table
};

/// Collects the tokens of one message as its bytes arrive, in as many pieces as they come.
#[derive(Clone, Debug)]
pub struct Collector {
    tokens: Vec<u64>,
    /// The run of token bytes not yet ended (carried across pieces): its first `run_len`
    /// bytes, at most MAX_TOKEN + 1. A fixed buffer, so that no message allocates one.
    run: [u8; MAX_TOKEN + 1],
    run_len: usize,
    run_too_long: bool,
    /// A run has ended and its fate waits on the next bytes (`":` or `=` makes it a name).
    pending: Option<u64>,
    /// A `"` followed the pending run (the end of a JSON string, which a `:` makes a key).
    quote_after_pending: bool,
    body_seen: usize,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            tokens: Vec::new(),
            run: [0; MAX_TOKEN + 1],
            run_len: 0,
            run_too_long: false,
            pending: None,
            quote_after_pending: false,
            body_seen: 0,
        }
    }
}

impl Collector {
    /// The tokens of a request target: path segments and query values.
    pub fn target(&mut self, target: &str) {
        let path_and_query = match target.find("://") {
            Some(i) => target[i + 3..]
                .find('/')
                .map_or("", |p| &target[i + 3 + p..]),
            None => target,
        };
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        for segment in path.split('/') {
            // `;params` are not values passed on (and may be credentials: never kept).
            let segment = segment.split(';').next().unwrap_or("");
            self.push_token(segment.as_bytes());
        }
        for pair in query.split('&') {
            if let Some((_, value)) = pair.split_once('=') {
                self.feed_plain(value.as_bytes());
            }
        }
        self.end_run();
    }

    /// A value passed on whole (a Redis key, a bound SQL parameter): its runs of token bytes,
    /// at most [`BODY_PREFIX`] bytes of it.
    pub fn value(&mut self, bytes: &[u8]) {
        if self.tokens.len() < MAX_TOKENS {
            self.feed_plain(&bytes[..bytes.len().min(BODY_PREFIX)]);
        }
    }

    /// Body bytes, as they come; only the first [`BODY_PREFIX`] count.
    pub fn body(&mut self, bytes: &[u8]) {
        let room = BODY_PREFIX.saturating_sub(self.body_seen);
        if room == 0 || self.tokens.len() >= MAX_TOKENS {
            return;
        }
        let bytes = &bytes[..bytes.len().min(room)];
        self.body_seen += bytes.len();
        for &b in bytes {
            self.byte(b);
        }
    }

    /// The tokens collected (the collector is left empty for the next message).
    pub fn take(&mut self) -> Tokens {
        self.end_run();
        self.settle_pending(false);
        let mut tokens = std::mem::take(&mut self.tokens);
        tokens.sort_unstable();
        tokens.dedup();
        *self = Collector::default();
        Tokens(tokens)
    }

    fn feed_plain(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if is_token_byte(b) {
                self.extend_run(b);
            } else {
                self.end_run();
            }
        }
        self.end_run();
        self.settle_pending(false);
    }

    fn byte(&mut self, b: u8) {
        if is_token_byte(b) {
            if self.pending.is_some() {
                self.settle_pending(false);
            }
            self.extend_run(b);
            return;
        }
        self.end_run();
        if self.pending.is_some() {
            match b {
                b'=' | b':' => self.settle_pending(true),
                b'"' if !self.quote_after_pending => self.quote_after_pending = true,
                b' ' | b'\t' => {}
                _ => self.settle_pending(false),
            }
        }
    }

    fn extend_run(&mut self, b: u8) {
        if self.run_len > MAX_TOKEN {
            self.run_too_long = true;
        } else {
            self.run[self.run_len] = b;
            self.run_len += 1;
        }
    }

    /// Ends the current run, if there is one: called for every byte that is not a token's.
    #[inline]
    fn end_run(&mut self) {
        if self.run_len > 0 {
            self.finish_run();
        }
    }

    fn finish_run(&mut self) {
        let too_long = std::mem::take(&mut self.run_too_long) || self.run_len > MAX_TOKEN;
        if !too_long && self.run_len >= 2 {
            self.settle_pending(false);
            self.pending = Some(keyed_hash(&self.run[..self.run_len]));
            self.quote_after_pending = false;
        }
        self.run_len = 0;
    }

    /// The pending run is a name (`is_name`) and dropped, or a value and kept.
    fn settle_pending(&mut self, is_name: bool) {
        if let Some(h) = self.pending.take() {
            if !is_name && self.tokens.len() < MAX_TOKENS {
                self.tokens.push(h);
            }
        }
        self.quote_after_pending = false;
    }

    fn push_token(&mut self, bytes: &[u8]) {
        if (2..=MAX_TOKEN).contains(&bytes.len()) && self.tokens.len() < MAX_TOKENS {
            self.tokens.push(keyed_hash(bytes));
        }
    }
}

/// Whether a body with these headers is worth reading for tokens: not compressed, and JSON,
/// a form, or plain text (or unlabelled).
pub fn body_is_readable(headers: &[(String, String)]) -> bool {
    // Compared up to ASCII case where they lie: no lower-cased copy per message.
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let is = |v: &[u8], word: &str| v.eq_ignore_ascii_case(word.as_bytes());
    let starts = |v: &[u8], word: &str| v.get(..word.len()).is_some_and(|p| is(p, word));
    let contains = |v: &[u8], word: &str| (0..v.len()).any(|i| starts(&v[i..], word));
    if value("content-encoding").is_some_and(|e| !is(e.trim().as_bytes(), "identity")) {
        return false;
    }
    value("content-type").map(str::as_bytes).is_none_or(|t| {
        contains(t, "json") || contains(t, "x-www-form-urlencoded") || starts(t, "text/plain")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_body(parts: &[&[u8]]) -> Tokens {
        let mut c = Collector::default();
        for p in parts {
            c.body(p);
        }
        c.take()
    }

    fn h(s: &str) -> u64 {
        keyed_hash(s.as_bytes())
    }

    #[test]
    fn json_values_are_kept_and_keys_are_not() {
        let t = of_body(&[br#"{"order_id": 834211, "user":"u-17", "skus":["sku-3","sku-40"]}"#]);
        for v in ["834211", "u-17", "sku-3", "sku-40"] {
            assert!(t.contains(h(v)), "{v}");
        }
        for k in ["order_id", "user", "skus"] {
            assert!(!t.contains(h(k)), "{k}");
        }
    }

    #[test]
    fn a_token_split_across_segments_is_one_token() {
        let whole = of_body(&[br#"{"id":"ab12cd34"}"#]);
        let split = of_body(&[br#"{"id":"ab1"#, br#"2cd34"}"#]);
        assert_eq!(whole, split);
        assert!(split.contains(h("ab12cd34")));
    }

    #[test]
    fn path_segments_and_query_values_but_not_query_names() {
        let mut c = Collector::default();
        c.target("/checkout/834211;jsessionid=zz?user=u-17&x=1");
        let t = c.take();
        assert!(t.contains(h("checkout")) && t.contains(h("834211")) && t.contains(h("u-17")));
        assert!(!t.contains(h("user")) && !t.contains(h("jsessionid")));
        assert!(!t.contains(h("1")), "one-byte values are never tokens");
    }

    #[test]
    fn form_names_are_skipped() {
        let t = of_body(&[b"name=alice&order=99123"]);
        assert!(t.contains(h("alice")) && t.contains(h("99123")));
        assert!(!t.contains(h("name")) && !t.contains(h("order")));
    }

    #[test]
    fn bounded_by_count_and_prefix() {
        let body: String = (0..5000).map(|i| format!("v{i} ")).collect();
        let t = of_body(&[body.as_bytes()]);
        assert_eq!(t.len(), MAX_TOKENS);
        let mut late = vec![b' '; BODY_PREFIX];
        late.extend_from_slice(b"late-token");
        assert!(of_body(&[&late]).is_empty());
    }

    #[test]
    fn compressed_or_binary_bodies_are_not_read() {
        let hdr = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        assert!(body_is_readable(&hdr("content-type", "application/json")));
        assert!(!body_is_readable(&hdr("content-encoding", "gzip")));
        assert!(!body_is_readable(&hdr("content-type", "image/png")));
        assert!(body_is_readable(&[]));
    }
}
