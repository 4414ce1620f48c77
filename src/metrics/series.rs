//! Which series a span's duration goes to: its kind, service, method, route template and
//! response status, with OpenTelemetry's HTTP metric attributes as labels.
//!
//! Contract: only label values whose number is bounded by something other than the traffic
//! are taken — a method outside the registered ones becomes `_OTHER`, the route is the
//! templated `http.route` (else the templated target, else the operation), never a raw path
//! or a query. What stays unbounded (service names of clients, say) is held by the series cap
//! in [`super::RedMetrics`].

use crate::span::{Span, SpanKind, SpanStatus};

/// A metric family: which histogram a span feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    HttpServer,
    HttpClient,
}

impl Family {
    /// Every family, in the order they are written.
    pub const ALL: [Family; 2] = [Family::HttpServer, Family::HttpClient];

    /// The OpenTelemetry instrument name.
    pub fn otel_name(self) -> &'static str {
        match self {
            Family::HttpServer => "http.server.request.duration",
            Family::HttpClient => "http.client.request.duration",
        }
    }

    /// The name OpenTelemetry's Prometheus mapping gives it (dots to underscores, unit suffix).
    pub fn prometheus_name(self) -> &'static str {
        match self {
            Family::HttpServer => "http_server_request_duration_seconds",
            Family::HttpClient => "http_client_request_duration_seconds",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Family::HttpServer => {
                "Duration of HTTP server requests: from the request's first byte to the \
response's last, as seen on the wire."
            }
            Family::HttpClient => {
                "Duration of HTTP client requests: from the request's first byte to the \
response's last, as seen on the wire."
            }
        }
    }
}

/// A series: its family and label values (empty: not set). The overflow series of a family
/// has `overflow` set and every label empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub service: String,
    pub method: String,
    pub route: String,
    pub status: String,
    pub error_type: String,
    pub overflow: bool,
}

impl SeriesKey {
    /// The overflow series (`otel_metric_overflow="true"`).
    pub fn overflow() -> Self {
        SeriesKey {
            overflow: true,
            ..SeriesKey::default()
        }
    }

    /// Label names and values as OpenTelemetry names them, the empty ones left out.
    pub fn otel_labels(&self) -> Vec<(&'static str, &str)> {
        if self.overflow {
            return vec![("otel.metric.overflow", "true")];
        }
        let mut labels = vec![
            ("service.name", self.service.as_str()),
            ("http.request.method", self.method.as_str()),
            ("http.route", self.route.as_str()),
            ("http.response.status_code", self.status.as_str()),
        ];
        if !self.error_type.is_empty() {
            labels.push(("error.type", self.error_type.as_str()));
        }
        labels
    }
}

/// Methods OpenTelemetry knows; any other is `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// The family and series of a span, or None when it feeds no metric (not HTTP).
pub fn classify(span: &Span) -> Option<(Family, SeriesKey)> {
    let a = &span.attributes;
    let http = a.http.as_deref()?;
    let family = match span.kind {
        SpanKind::Server => Family::HttpServer,
        SpanKind::Client => Family::HttpClient,
    };
    let method = match http.method.as_deref() {
        Some(m) if KNOWN_METHODS.contains(&m) => m,
        _ => "_OTHER",
    };
    let route = http
        .route
        .as_deref()
        .or_else(|| a.target_template())
        .or_else(|| a.operation())
        .unwrap_or("");
    let status = http.status.map(|s| s.to_string()).unwrap_or_default();
    // OpenTelemetry: the error's type when there was no response, the status code when the
    // response was an error.
    let error_type = match (http.status, span.status) {
        (None, _) => a.error_type.as_deref().unwrap_or("_OTHER").to_string(),
        (Some(_), SpanStatus::Error) => status.clone(),
        (Some(_), SpanStatus::Unset) => String::new(),
    };
    Some((
        family,
        SeriesKey {
            service: span.service.clone(),
            method: method.to_string(),
            route: route.to_string(),
            status,
            error_type,
            overflow: false,
        },
    ))
}
