//! Routes by rule: path segments shaped like identifiers become `{id}`, so `/users/42` and
//! `/users/43` aggregate as `/users/{id}`. Identifiers: all digits, UUIDs, hex strings of 8+
//! characters with at least one digit, codes with a run of 4+ digits (`SKU-0855`), a word and a
//! number joined by `-` or `_` (`sku-7`, `order_12`), dates (`2026-12-06…`), e-mail addresses,
//! the `REDACTED` mark of a secret, and long mixed alphanumeric tokens (24+ chars with digits).
//! Version-like segments (`v1`, `oauth2`, `api-v2`) stay. What no rule catches is left to the
//! counts of [`super::Routes`].

/// The route template of `path` (no query string).
pub fn template(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    if !path.starts_with('/') {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_identifier(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// Whether a path segment is shaped like an identifier (see the module's doc).
pub fn is_identifier(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg == crate::redact::REDACTED || seg.contains('@') || is_date(seg) || is_numbered(seg) {
        return true;
    }
    let has_digit = seg.bytes().any(|b| b.is_ascii_digit());
    if seg.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if is_uuid(seg) {
        return true;
    }
    if seg.len() >= 8 && has_digit && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let word = seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // A code with a run of 4+ digits (SKU-0855, order_12345, INV2024001), or a long token.
    let mut run = 0;
    let long_digit_run = seg.bytes().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 4
    });
    if word && long_digit_run {
        return true;
    }
    seg.len() >= 24
        && has_digit
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `word-7`, `word_12`: a word, a separator, and a number after it.
fn is_numbered(seg: &str) -> bool {
    let Some(at) = seg.rfind(['-', '_']) else {
        return false;
    };
    let (head, number) = (&seg[..at], &seg[at + 1..]);
    !head.is_empty()
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `2026-12-06`, and anything that starts like it (`2026-12-06T10:00:00Z`).
fn is_date(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn identifiers_become_placeholders() {
        assert_eq!(template("/users/42"), "/users/{id}");
        assert_eq!(
            template("/orders/3f2b8c1e-9a4d-4e2b-8c1a-0d9e8f7a6b5c/items"),
            "/orders/{id}/items"
        );
        assert_eq!(template("/blob/deadbeef01"), "/blob/{id}");
        assert_eq!(template("/static/app.css"), "/static/app.css");
        assert_eq!(template("/v1/users"), "/v1/users");
        assert_eq!(template("/stock/SKU-0855"), "/stock/{id}");
        assert_eq!(template("/hash/sha256"), "/hash/sha256");
        assert_eq!(template("/auth/oauth2/token"), "/auth/oauth2/token");
        assert_eq!(template("/"), "/");
        assert_eq!(template("*"), "*");
        assert_eq!(template("/stock/sku-7"), "/stock/{id}");
        assert_eq!(template("/orders/order_12/lines"), "/orders/{id}/lines");
        assert_eq!(template("/api-v2/report/2026-12-06"), "/api-v2/report/{id}");
        assert_eq!(template("/users/bob@example.com"), "/users/{id}");
        assert_eq!(template("/reset/REDACTED"), "/reset/{id}");
        assert_eq!(template("/static/app-min.js"), "/static/app-min.js");
    }
}
