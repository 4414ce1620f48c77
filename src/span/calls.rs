//! Span names and attributes of the protocols other than HTTP, per OpenTelemetry's database
//! and TLS conventions: a database span is named `{db.operation.name} {target}` (`GET`,
//! `SELECT users`), carries `db.*` attributes from its decoder — keys templated and literals
//! replaced by `?` there, never values — and is an error when the server answered with one
//! (`-ERR`, an ErrorResponse: `db.response.status_code`). A TLS handshake is one span,
//! `TLS handshake`, with `tls.*` attributes and the SNI as `server.address`. A DNS query is
//! `DNS {type}` (`DNS AAAA`: OpenTelemetry has no DNS span convention, and the name queried is
//! too many values for a span name) with `dns.question.name`, `network.transport`, and its
//! type, rcode and answer count under `tapspan.dns.*` (OpenTelemetry names none); an rcode
//! other than NOERROR is its `error.type` and fails both spans, as no answer does.

use crate::protocols::dns::{self, message::type_name};
use crate::protocols::postgres::PgExchange;
use crate::protocols::tls::hello::alert_name;
use crate::protocols::Call;
use crate::span::AttrValue;

/// Longest table name put in a span name or `db.collection.name`.
const MAX_TARGET: usize = 64;

/// What span mapping needs from a non-HTTP call.
pub struct CallSpan {
    pub name: String,
    /// Sorted by key, each key once.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The server said the operation failed (`error.type` when the exchange was not cut).
    pub failure: Option<String>,
    /// What `server.address` is, when better than the server's IP (a TLS server name).
    pub server_name: Option<String>,
}

/// `None` for HTTP, whose spans [`super::build_spans`] makes itself.
pub fn describe(call: &Call) -> Option<CallSpan> {
    let mut span = match call {
        Call::Http(_) => return None,
        Call::Redis(x) => CallSpan {
            name: x.operation.clone(),
            attributes: x.attributes(),
            failure: x.error.clone().filter(|_| x.replied),
            server_name: None,
        },
        Call::Postgres(x) => postgres(x),
        Call::Dns(x) => CallSpan {
            name: format!("DNS {}", type_name(x.qtype)),
            attributes: x.attributes(),
            failure: dns::stream::failure(x),
            server_name: None,
        },
        Call::Tls(hs) => CallSpan {
            name: "TLS handshake".to_string(),
            attributes: hs.attributes(),
            failure: hs.alert.map(|(d, _)| alert_name(d)),
            server_name: hs.client.server_name.clone(),
        },
    };
    // `error.type` is the span mapping's to set: a cut's reason, else the failure.
    span.attributes.retain(|(k, _)| *k != "error.type");
    // A key set twice keeps its last value, as a map would.
    span.attributes.reverse();
    span.attributes.sort_by_key(|(k, _)| *k);
    span.attributes.dedup_by_key(|(k, _)| *k);
    Some(span)
}

fn postgres(x: &PgExchange) -> CallSpan {
    let mut attributes = x.attributes();
    let target = x.query.as_deref().and_then(|q| table(q, &x.operation));
    let name = match &target {
        Some(t) => format!("{} {t}", x.operation),
        None => x.operation.clone(),
    };
    if let Some(t) = target {
        attributes.push(("db.collection.name", t.into()));
    }
    CallSpan {
        name,
        attributes,
        failure: x.sqlstate.clone(),
        server_name: None,
    }
}

/// The one table a simple statement acts on: `SELECT … FROM t`, `INSERT INTO t`, `UPDATE t`,
/// `DELETE FROM t`. None for anything else (a join, a subquery, a batch): a span name must
/// not guess.
fn table(sanitized: &str, operation: &str) -> Option<String> {
    let words: Vec<&str> = sanitized.split_whitespace().take(256).collect();
    let after = |keyword: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|i| words.get(i + 1))
    };
    let word = match operation {
        "SELECT" | "DELETE" => after("FROM"),
        "INSERT" => after("INTO"),
        "UPDATE" => words.get(1),
        _ => None,
    }?;
    let joined = words
        .iter()
        .any(|w| w.eq_ignore_ascii_case("JOIN") || starts_subquery(w));
    let name = word.trim_end_matches([';', ',', ')']);
    let plain = !name.is_empty()
        && name.len() <= MAX_TARGET
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'"'));
    (plain && !joined && !word.ends_with(',')).then(|| name.to_string())
}

fn starts_subquery(word: &str) -> bool {
    word.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("(select"))
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn a_simple_statement_names_its_table() {
        let t = |q: &str, op: &str| table(q, op);
        assert_eq!(
            t("SELECT name FROM users WHERE id = $1", "SELECT").as_deref(),
            Some("users")
        );
        assert_eq!(
            t("UPDATE users SET n = ? WHERE id = ?", "UPDATE").as_deref(),
            Some("users")
        );
        assert_eq!(
            t("INSERT INTO public.t (a) VALUES (?)", "INSERT").as_deref(),
            Some("public.t")
        );
        assert_eq!(t("DELETE FROM t;", "DELETE").as_deref(), Some("t"));
        assert_eq!(t("SELECT ?", "SELECT"), None);
        assert_eq!(t("SELECT * FROM a JOIN b ON a.x = b.x", "SELECT"), None);
        assert_eq!(t("SELECT * FROM a, b", "SELECT"), None);
        assert_eq!(t("SELECT * FROM (SELECT ?) s", "SELECT"), None);
        assert_eq!(t("BEGIN", "BEGIN"), None);
    }
}
