//! Which headers are kept, and secrets that never leave: by default `Authorization`, `Cookie`,
//! `Set-Cookie` and `Proxy-Authorization` values are never written, nor query parameters whose
//! names look like credentials (token, key, secret, password, …). Users may add names to redact
//! (`--redact-header`, `--redact-query`); there is no way to turn redaction off. Request targets
//! are redacted when their head is parsed, so no later stage ever holds a secret query value.

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

pub const DEFAULT_REDACTED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// Query parameter names containing any of these (case-insensitive) have their values redacted.
const SECRET_PARAM_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "session",
    "signature",
    "sig",
    "credential",
];

#[derive(Clone, Debug)]
pub struct HeaderPolicy {
    captured: Vec<String>,
    redacted: Vec<String>,
    /// Query parameter names redacted besides the credential-like ones (lower-case, exact).
    redacted_params: Vec<String>,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy {
            captured: DEFAULT_CAPTURED.iter().map(|s| s.to_string()).collect(),
            redacted: DEFAULT_REDACTED.iter().map(|s| s.to_string()).collect(),
            redacted_params: Vec::new(),
        }
    }
}

impl HeaderPolicy {
    /// Also capture these headers (lower-cased); a redacted one keeps its name, never its value.
    pub fn with_captured(mut self, names: &[String]) -> Self {
        self.captured
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self
    }
    pub fn with_redacted(mut self, names: &[String]) -> Self {
        self.redacted
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self
    }

    /// Also redact the values of these query parameters (exact names, case-insensitive).
    pub fn with_redacted_params(mut self, names: &[String]) -> Self {
        self.redacted_params
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self
    }

    /// The query string with credential-like and user-named parameters' values redacted.
    pub fn redact_query(&self, query: &str) -> String {
        redact_query_with(query, |name| {
            is_secret_param(name)
                || self
                    .redacted_params
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(name))
        })
    }

    /// A request target with its query redacted (path and fragment kept).
    pub fn redact_target(&self, target: &str) -> String {
        match target.split_once('?') {
            Some((path, rest)) => {
                let (query, fragment) = match rest.split_once('#') {
                    Some((q, f)) => (q, Some(f)),
                    None => (rest, None),
                };
                let mut out = format!("{path}?{}", self.redact_query(query));
                if let Some(f) = fragment {
                    out.push('#');
                    out.push_str(f);
                }
                out
            }
            None => target.to_string(),
        }
    }

    /// A parsed start line with its request target redacted.
    pub fn redact_start(&self, start: super::head::StartLine) -> super::head::StartLine {
        match start {
            super::head::StartLine::Request { method, target } => super::head::StartLine::Request {
                method,
                target: self.redact_target(&target),
            },
            other => other,
        }
    }

    fn is_redacted(&self, name: &str) -> bool {
        self.redacted.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    /// The (lower-case name, value) to keep for this header, if any.
    pub fn capture(&self, name: &str, value: &[u8]) -> Option<(String, String)> {
        if !self.captured.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return None;
        }
        let value = if self.is_redacted(name) {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(value).trim().to_string()
        };
        Some((name.to_ascii_lowercase(), value))
    }
}

/// The query string with the values of credential-like parameters replaced by [`REDACTED`].
pub fn redact_query(query: &str) -> String {
    redact_query_with(query, is_secret_param)
}

fn redact_query_with(query: &str, secret: impl Fn(&str) -> bool) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret(name) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
