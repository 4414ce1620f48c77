//! Secrets seen on the wire never leave: one policy, applied where a message is parsed, so that
//! no later stage — spans, exporters, the summary, the report, the analysis JSON, error
//! messages — ever holds a raw credential.
//!
//! What is redacted, whatever flags are given (DESIGN.md "Privacy"):
//! - values of headers whose names are credentials' ([`names`]: `Authorization`, `Cookie`,
//!   `X-Vault-Token`, …), even when `--capture-header` asks for them;
//! - in request targets and in captured URL-valued headers (`Referer`, `Location`, …):
//!   userinfo, values of query, fragment and `;` path parameters with credential names, and
//!   credential-shaped path segments and values ([`url`], [`shape`]);
//! - any other captured header value that holds a credential-shaped word (`Bearer <jwt>`).
//!
//! Users add names with `--redact-header` and `--redact-query`; nothing turns redaction off.
//! Spans read back from JSON lines (`tapspan report spans.jsonl`) pass through
//! [`HeaderPolicy::redact_span_json`], so a file written by an older version, or by hand,
//! is held to the same policy.

pub mod names;
pub mod shape;
pub mod url;

use std::borrow::Cow;

use serde_json::Value;

/// Replaces a secret value wherever a name is kept but its value is not.
pub const REDACTED: &str = "REDACTED";

/// Headers captured by default: propagation ids, the few that describe the caller, and how a
/// body is encoded.
pub const DEFAULT_CAPTURED: &[&str] = &[
    "x-request-id",
    "x-correlation-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "x-amzn-trace-id",
    "host",
    "user-agent",
    "content-type",
    // How a response body travels: the report's large-body finding reads these.
    "content-encoding",
    "transfer-encoding",
    "x-forwarded-for",
];

/// Credential headers whose names the patterns of [`names`] would not all catch by themselves.
pub const DEFAULT_REDACTED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// What is captured of a message and what is redacted in it.
#[derive(Clone, Debug)]
pub struct HeaderPolicy {
    /// Header names captured (lower-case).
    captured: Vec<String>,
    /// Whether each of `captured` is a secret header, decided once: a header name matches a
    /// captured one only up to ASCII case, which [`Self::is_secret_header`] ignores too.
    captured_secret: Vec<bool>,
    /// Positions in `captured` by name length: a header name is compared only with the
    /// captured names of its length, as most header names are not captured at all.
    captured_by_len: Vec<Vec<usize>>,
    /// Header names redacted besides the credential-like ones (lower-case, exact).
    redacted: Vec<String>,
    /// Query parameter names redacted besides the credential-like ones (lower-case, exact).
    redacted_params: Vec<String>,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy {
            captured: DEFAULT_CAPTURED.iter().map(|s| s.to_string()).collect(),
            captured_secret: Vec::new(),
            captured_by_len: Vec::new(),
            redacted: DEFAULT_REDACTED.iter().map(|s| s.to_string()).collect(),
            redacted_params: Vec::new(),
        }
        .decided()
    }
}

impl HeaderPolicy {
    /// Also capture these headers (lower-cased); a redacted one keeps its name, never its value.
    pub fn with_captured(mut self, names: &[String]) -> Self {
        self.captured
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self.decided()
    }

    /// Also redact the values of these headers (exact names, case-insensitive).
    pub fn with_redacted(mut self, names: &[String]) -> Self {
        self.redacted
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self.decided()
    }

    /// With `captured_secret` and `captured_by_len` decided for the current lists.
    fn decided(mut self) -> Self {
        self.captured_secret = self
            .captured
            .iter()
            .map(|c| self.is_secret_header(c))
            .collect();
        let longest = self.captured.iter().map(String::len).max().unwrap_or(0);
        self.captured_by_len = vec![Vec::new(); longest + 1];
        for (at, name) in self.captured.iter().enumerate() {
            self.captured_by_len[name.len()].push(at);
        }
        self
    }

    /// The position in `captured` of the first name equal to `name` up to ASCII case.
    fn captured_position(&self, name: &str) -> Option<usize> {
        self.captured_by_len
            .get(name.len())?
            .iter()
            .copied()
            .find(|&at| self.captured[at].eq_ignore_ascii_case(name))
    }

    /// Also redact the values of these query parameters (exact names, case-insensitive, after
    /// percent-decoding).
    pub fn with_redacted_params(mut self, names: &[String]) -> Self {
        self.redacted_params
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self
    }

    /// Whether a query, fragment or path parameter of this name holds a secret.
    pub fn is_secret_param(&self, name: &str) -> bool {
        names::is_secret(name) || names::is_listed(name, &self.redacted_params)
    }

    /// Whether a header of this name holds a secret.
    pub fn is_secret_header(&self, name: &str) -> bool {
        names::is_secret(name) || names::is_listed(name, &self.redacted)
    }

    /// A request target (or any URL) with its secrets redacted (see [`url`]).
    pub fn redact_target(&self, target: &str) -> String {
        self.redact_url(target).into_owned()
    }

    fn redact_url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        url::redact_url(url, &|name| self.is_secret_param(name))
    }

    /// A parsed start line with its request target redacted.
    pub fn redact_start(
        &self,
        start: crate::protocols::http1::head::StartLine,
    ) -> crate::protocols::http1::head::StartLine {
        use crate::protocols::http1::head::StartLine;
        match start {
            StartLine::Request { method, target } => {
                // Most targets hold no secret: they are kept as they are, not copied.
                let target = match self.redact_url(&target) {
                    Cow::Borrowed(_) => target,
                    Cow::Owned(redacted) => redacted,
                };
                StartLine::Request { method, target }
            }
            other => other,
        }
    }

    /// The (lower-case name, value) to keep for this header, if any: see [`Self::header_value`].
    pub fn capture(&self, name: &str, value: &[u8]) -> Option<(String, String)> {
        let at = self.captured_position(name)?;
        let kept = if self.captured_secret[at] {
            REDACTED.to_string()
        } else {
            let raw = shape::utf8_lossy(value);
            self.value_of_open_header(raw.trim()).into_owned()
        };
        Some((self.captured[at].clone(), kept))
    }

    /// What may be written of header `name`'s `value`: [`REDACTED`] for a credential's header
    /// or a value holding a credential-shaped word; a URL (`Referer`, `Location`, or any value
    /// that is one) through the URL rules; else the value.
    pub fn header_value<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_secret_header(name) {
            return Cow::Borrowed(REDACTED);
        }
        self.value_of_open_header(value)
    }

    /// [`Self::header_value`] for a header whose name is not a secret's.
    fn value_of_open_header<'a>(&self, value: &'a str) -> Cow<'a, str> {
        if looks_like_url(value) {
            return self.redact_url(value);
        }
        if shape::contains_credential(value) {
            return Cow::Borrowed(REDACTED);
        }
        Cow::Borrowed(value)
    }

    /// A span read back from JSON lines, held to this policy again: its name, URL attributes
    /// and captured headers (`http.request.header.*`, `http.response.header.*`).
    pub fn redact_span_json(&self, span: &mut Value) {
        if let Some(Value::String(name)) = span.get_mut("name") {
            // "GET /route": the route part is a path.
            if let Some((method, route)) = name.split_once(' ') {
                let redacted = format!("{method} {}", self.redact_url(route));
                *name = redacted;
            }
        }
        let Some(Value::Object(attrs)) = span.get_mut("attributes") else {
            return;
        };
        for (key, value) in attrs.iter_mut() {
            let header = key
                .strip_prefix("http.request.header.")
                .or_else(|| key.strip_prefix("http.response.header."));
            match (key.as_str(), header) {
                (_, Some(header)) => redact_json_strings(value, &|s| self.header_value(header, s)),
                ("url.path" | "url.full" | "http.route" | "http.target" | "http.url", _) => {
                    redact_json_strings(value, &|s| self.redact_url(s))
                }
                ("url.query", _) => redact_json_strings(value, &|s| {
                    let redacted = self.redact_url(&format!("?{s}")).into_owned();
                    Cow::Owned(redacted[1..].to_string())
                }),
                _ => redact_json_strings(value, &|s| {
                    if shape::contains_credential(s) {
                        Cow::Borrowed(REDACTED)
                    } else {
                        Cow::Borrowed(s)
                    }
                }),
            }
        }
    }
}

/// Each string of `value` (a string, or an array of them) through `how`.
fn redact_json_strings(value: &mut Value, how: &dyn Fn(&str) -> Cow<'_, str>) {
    match value {
        Value::String(s) => {
            let changed = match how(s) {
                Cow::Owned(r) => Some(r),
                Cow::Borrowed(b) if b != s.as_str() => Some(b.to_string()),
                Cow::Borrowed(_) => None,
            };
            if let Some(r) = changed {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json_strings(v, how)),
        _ => {}
    }
}

/// Whether a header value is a URL or a path (`Location: /login?next=…`).
fn looks_like_url(value: &str) -> bool {
    value.starts_with('/') || shape::contains_short(value, "://")
}

/// The query string with the values of credential-like parameters replaced by [`REDACTED`].
pub fn redact_query(query: &str) -> String {
    let redacted = url::redact_url(&format!("?{query}"), &names::is_secret).into_owned();
    redacted[1..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLWhlcmUtb2s";

    #[test]
    fn secret_query_values_are_replaced() {
        assert_eq!(
            redact_query("a=1&access_token=abc123&API_KEY=k&page=2"),
            "a=1&access_token=REDACTED&API_KEY=REDACTED&page=2"
        );
    }

    #[test]
    fn user_named_query_parameters_are_redacted_in_targets() {
        let p = HeaderPolicy::default().with_redacted_params(&["Email".into()]);
        assert_eq!(
            p.redact_target("/u?email=a@b&sig=xyz&page=2#top"),
            "/u?email=REDACTED&sig=REDACTED&page=2#top"
        );
        assert_eq!(p.redact_target("/plain"), "/plain");
    }

    #[test]
    fn redacted_header_keeps_name_not_value() {
        let p = HeaderPolicy::default().with_captured(&["Authorization".into()]);
        assert_eq!(
            p.capture("Authorization", b"Basic dXNlcjpwYXNz"),
            Some(("authorization".into(), REDACTED.into()))
        );
        assert_eq!(HeaderPolicy::default().capture("Cookie", b"s=1"), None);
    }

    #[test]
    fn captured_headers_are_redacted_by_name_url_and_shape() {
        let p = HeaderPolicy::default().with_captured(&[
            "X-Vault-Token".into(),
            "Referer".into(),
            "X-Debug".into(),
            "X-Tenant".into(),
        ]);
        let kept = |n: &str, v: &str| p.capture(n, v.as_bytes()).unwrap().1;
        assert_eq!(kept("X-Vault-Token", "s.abc"), REDACTED);
        assert_eq!(
            kept("Referer", "https://u:p@a.example/cb?code=42&x=1"),
            "https://REDACTED@a.example/cb?code=REDACTED&x=1"
        );
        assert_eq!(kept("X-Debug", &format!("Bearer {JWT}")), REDACTED);
        assert_eq!(kept("X-Tenant", "acme"), "acme");
    }

    #[test]
    fn spans_read_back_are_redacted_again() {
        let p = HeaderPolicy::default().with_redacted_params(&["email".into()]);
        let mut span = json!({
            "name": format!("GET /reset/{JWT}"),
            "attributes": {
                "url.path": format!("/reset/{JWT}"),
                "url.query": "email=a@b&page=1",
                "http.request.header.x-access-token": ["t0ken"],
                "http.response.header.location": ["/login?session=abc"],
                "user_agent.original": "curl/8",
            }
        });
        p.redact_span_json(&mut span);
        assert_eq!(span["name"], "GET /reset/REDACTED");
        let a = &span["attributes"];
        assert_eq!(a["url.path"], "/reset/REDACTED");
        assert_eq!(a["url.query"], "email=REDACTED&page=1");
        assert_eq!(a["http.request.header.x-access-token"], json!([REDACTED]));
        assert_eq!(
            a["http.response.header.location"],
            json!(["/login?session=REDACTED"])
        );
        assert_eq!(a["user_agent.original"], "curl/8");
    }
}
