//! What a secret looks like when its name says nothing: the shape of a value.
//!
//! Two shapes are taken as credentials wherever they appear (a path segment, a query value, a
//! captured header): a JSON Web Token (RFC 7519 §7.2: three base64url parts joined by dots,
//! the first a JSON object, so `eyJ`), and a long opaque token: 32 or more characters of the
//! base64url alphabet with upper- and lower-case letters and digits all present, the shape of
//! password-reset links, signed download tokens and API keys. Hex digests, UUIDs, words and
//! slugs do not have that shape and are kept: they are identifiers, and a trace needs them.

use std::borrow::Cow;

/// Whether `s` (already percent-decoded) is shaped like a credential (see the module's doc).
pub fn is_credential(s: &str) -> bool {
    is_jwt(s) || is_opaque_token(s)
}

/// Whether `s` contains a credential-shaped word (a JWT anywhere, or an opaque token between
/// spaces, commas or quotes): for free-form header values such as `Bearer <token>`.
pub fn contains_credential(s: &str) -> bool {
    // Every credential word is a JWT (starting `eyJ`) or at least OPAQUE_MIN_LEN long: most
    // values (hosts, user agents, content types) are neither, and are let through at once.
    let has_jwt_start = contains_short(s, "eyJ");
    if s.len() < OPAQUE_MIN_LEN && !has_jwt_start {
        return false;
    }
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '=' | ':'))
        .any(is_credential)
        || has_jwt_start && s.split(|c: char| !is_jwt_char(c)).any(is_jwt)
}

/// Whether `needle` occurs in `hay`. For the short needles and header values met here, a scan
/// for the needle's first byte costs less than setting up `str::contains`'s searcher.
pub fn contains_short(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    hay.iter()
        .enumerate()
        .any(|(i, &b)| b == first && hay[i + 1..].starts_with(rest))
}

fn is_jwt_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Three (or five, for an encrypted JWT) base64url parts, the first starting `eyJ` (`{"`).
fn is_jwt(s: &str) -> bool {
    if !s.starts_with("eyJ") {
        return false;
    }
    let parts = s.split('.').count();
    (parts == 3 || parts == 5)
        && s.split('.').next().is_some_and(|first| first.len() >= 10)
        && s.split('.').all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// At least this long to be a token: shorter mixed strings are ordinary identifiers
/// (`SKU-0855-b`, `userA12`), and a 32-character token from a 62-letter alphabet is ~190 bits.
const OPAQUE_MIN_LEN: usize = 32;

fn is_opaque_token(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < OPAQUE_MIN_LEN
        || !b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'/' | b'='))
    {
        return false;
    }
    b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.iter().any(u8::is_ascii_digit)
}

/// `bytes` as text, with what is not UTF-8 as U+FFFD: `String::from_utf8_lossy`, but valid text
/// (nearly every header value and start line) is checked by `str::from_utf8`, which takes
/// ASCII a word at a time where the lossy decoder goes byte by byte.
pub fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// `s` with `%XX` escapes decoded (and `+` as a space where `plus_is_space`, as in a query):
/// names are matched after this, so `%74oken` is `token`. Invalid escapes are kept as they are;
/// bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLWhlcmUtb2s";

    #[test]
    fn jwts_and_opaque_tokens_are_credentials() {
        assert!(is_credential(JWT));
        assert!(is_credential("Zm9vYmFyQmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"));
        assert!(contains_credential(&format!("Bearer {JWT}")));
        assert!(contains_credential(&format!("x={JWT}; Path=/")));
    }

    #[test]
    fn identifiers_are_not_credentials() {
        for s in [
            "3f2b8c1e-9a4d-4e2b-8c1a-0d9e8f7a6b5c",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "SKU-0855",
            "checkout",
            "the-quick-brown-fox-jumps-over-the-lazy-dog",
            "eyJ",
        ] {
            assert!(!is_credential(s), "{s}");
        }
    }

    #[test]
    fn escapes_are_decoded_and_bad_ones_kept() {
        assert_eq!(percent_decode("%74oken", false), "token");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }
}
