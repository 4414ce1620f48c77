//! URLs and request targets with their secrets replaced by [`REDACTED`]: userinfo
//! (`https://user:pw@host/`), values of parameters with secret names in the query, in the
//! fragment (where OAuth's implicit flow puts `access_token`) and after `;` in a path segment
//! (`/cart;jsessionid=…`), and credential-shaped path segments and values ([`super::shape`]).
//! Everything else is kept byte for byte, names included, so routes and queries stay readable.

use std::borrow::Cow;

use super::shape::{is_credential, percent_decode};
use super::REDACTED;

/// `url` (a request target in any form, or a URL from a header) with its secrets redacted;
/// `secret` says whether a parameter name is a credential's.
pub fn redact_url<'a>(url: &'a str, secret: &dyn Fn(&str) -> bool) -> Cow<'a, str> {
    if !may_hold_secret(url) {
        return Cow::Borrowed(url);
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (origin, path) = split_origin(before_query);
    let mut out = String::with_capacity(url.len());
    out.push_str(&redact_userinfo(origin));
    push_path(&mut out, path, secret);
    if let Some(q) = query {
        out.push('?');
        push_params(&mut out, q, secret);
    }
    if let Some(f) = fragment {
        out.push('#');
        push_params(&mut out, f, secret);
    }
    Cow::Owned(out)
}

/// Cheap test first: most targets are a short path with no query.
fn may_hold_secret(url: &str) -> bool {
    url.bytes().any(|b| matches!(b, b'?' | b'#' | b';' | b'@'))
        || url
            .split('/')
            .any(|seg| seg.len() >= 10 && maybe_shaped(seg))
}

fn maybe_shaped(seg: &str) -> bool {
    seg.contains('%') || is_credential(seg)
}

/// `scheme://authority` (or `//authority`) and the path after it; no origin for a path.
fn split_origin(s: &str) -> (&str, &str) {
    let after_scheme = match s.find("://") {
        Some(i)
            if s[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            i + 3
        }
        _ if s.starts_with("//") => 2,
        _ => return ("", s),
    };
    let path_at = s[after_scheme..]
        .find('/')
        .map_or(s.len(), |i| after_scheme + i);
    s.split_at(path_at)
}

fn redact_userinfo(origin: &str) -> Cow<'_, str> {
    let Some(at) = origin.rfind('@') else {
        return Cow::Borrowed(origin);
    };
    let start = origin.find("//").map_or(0, |i| i + 2);
    if at < start {
        return Cow::Borrowed(origin);
    }
    Cow::Owned(format!("{}{REDACTED}{}", &origin[..start], &origin[at..]))
}

fn push_path(out: &mut String, path: &str, secret: &dyn Fn(&str) -> bool) {
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let mut parts = seg.split(';');
        let value = parts.next().unwrap_or("");
        if is_credential(&percent_decode(value, false)) {
            out.push_str(REDACTED);
        } else {
            out.push_str(value);
        }
        for param in parts {
            out.push(';');
            push_param(out, param, secret);
        }
    }
}

fn push_params(out: &mut String, params: &str, secret: &dyn Fn(&str) -> bool) {
    for (i, param) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_param(out, param, secret);
    }
}

/// `name=value` (or a bare `value`): the value is redacted when the name is secret or the
/// value is credential-shaped.
fn push_param(out: &mut String, param: &str, secret: &dyn Fn(&str) -> bool) {
    match param.split_once('=') {
        Some((name, value)) => {
            out.push_str(name);
            out.push('=');
            if secret(name) || is_credential(&percent_decode(value, true)) {
                out.push_str(REDACTED);
            } else {
                out.push_str(value);
            }
        }
        None if is_credential(&percent_decode(param, true)) => out.push_str(REDACTED),
        None => out.push_str(param),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::names::is_secret;

    fn redact(url: &str) -> String {
        redact_url(url, &is_secret).into_owned()
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLWhlcmUtb2s";

    #[test]
    fn plain_paths_are_kept_as_they_are() {
        for t in [
            "/",
            "/users/42",
            "*",
            "example.com:443",
            "/a//b/",
            "/static/app.css",
        ] {
            assert!(matches!(redact_url(t, &is_secret), Cow::Borrowed(_)), "{t}");
        }
    }

    #[test]
    fn query_fragment_and_path_parameters_are_redacted_by_name() {
        assert_eq!(
            redact("/cb?%74oken=abc&page=2&code=xyz#access_token=t1&state=s"),
            "/cb?%74oken=REDACTED&page=2&code=REDACTED#access_token=REDACTED&state=s"
        );
        assert_eq!(
            redact("/cart;jsessionid=0123;v=2/items"),
            "/cart;jsessionid=REDACTED;v=2/items"
        );
        assert_eq!(redact("/p?a&b=&=c"), "/p?a&b=&=c");
    }

    #[test]
    fn credential_shaped_segments_and_values_are_redacted() {
        assert_eq!(
            redact(&format!("/reset/{JWT}/confirm")),
            "/reset/REDACTED/confirm"
        );
        assert_eq!(
            redact(&format!("/r?next=1&x={JWT}")),
            "/r?next=1&x=REDACTED"
        );
        assert_eq!(redact(&format!("/r?{JWT}")), "/r?REDACTED");
        // Escaped to hide its shape from a naive look.
        let escaped = JWT.replacen("e", "%65", 1);
        assert_eq!(redact(&format!("/reset/{escaped}")), "/reset/REDACTED");
    }

    #[test]
    fn userinfo_is_redacted_in_absolute_urls() {
        assert_eq!(
            redact("https://bob:hunter2@shop.example:8443/a?q=1"),
            "https://REDACTED@shop.example:8443/a?q=1"
        );
        assert_eq!(redact("//bob@cdn.example/x"), "//REDACTED@cdn.example/x");
        assert_eq!(
            redact("/mail/to/bob@example.com"),
            "/mail/to/bob@example.com"
        );
    }
}
