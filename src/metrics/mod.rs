//! RED metrics (rate, errors, duration) of the traced services: per span kind, service,
//! method, route template and response status, a histogram of request durations, named as
//! OpenTelemetry's HTTP metrics (`http.server.request.duration`,
//! `http.client.request.duration`) and rendered as Prometheus text ([`prometheus`]).
//!
//! Contract: fed every span the causality builder makes, before sampling, so the metrics do
//! not depend on what is kept; counts and sums are exact integers, so the same spans give the
//! same text whatever their order. Bounded: at most `max_series` series (all families
//! together); a sample for a new series beyond it goes to its family's overflow series,
//! labelled `otel_metric_overflow="true"` as OpenTelemetry's cardinality limit specifies.
//! Per span: one lookup in an ordered map of at most `max_series` entries.

pub mod histogram;
pub mod otlp;
pub mod prometheus;
pub mod series;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use histogram::Histogram;
pub use series::{Family, SeriesKey};

use crate::span::Span;

/// Series held by default (`--max-metric-series`).
pub const DEFAULT_MAX_SERIES: usize = 2000;

/// The histograms of every series.
#[derive(Clone, Debug)]
pub struct RedMetrics {
    max_series: usize,
    series: BTreeMap<(Family, SeriesKey), Histogram>,
    /// Samples that went to an overflow series.
    overflowed: u64,
    /// The earliest span start and the latest span end measured (capture time, ns).
    window: Option<(u64, u64)>,
}

/// The metrics shared by the thread that feeds them and the one that serves scrapes.
pub type SharedRed = Arc<Mutex<RedMetrics>>;

impl Default for RedMetrics {
    fn default() -> Self {
        RedMetrics::new(DEFAULT_MAX_SERIES)
    }
}

impl RedMetrics {
    /// At most `max_series` series (at least one), overflow series not counted.
    pub fn new(max_series: usize) -> Self {
        RedMetrics {
            max_series: max_series.max(1),
            series: BTreeMap::new(),
            overflowed: 0,
            window: None,
        }
    }

    /// One span (spans other than HTTP are not measured).
    pub fn push(&mut self, span: &Span) {
        let Some((family, key)) = series::classify(span) else {
            return;
        };
        let duration = span.end_unix_nano.saturating_sub(span.start_unix_nano);
        self.record(family, key, duration);
        let (start, end) = self
            .window
            .get_or_insert((span.start_unix_nano, span.end_unix_nano));
        *start = (*start).min(span.start_unix_nano);
        *end = (*end).max(span.end_unix_nano);
    }

    /// The earliest start and latest end of the spans measured (capture time, ns), the
    /// interval cumulative OTLP points cover.
    pub fn window(&self) -> Option<(u64, u64)> {
        self.window
    }

    /// One sample of `duration_ns` for a series.
    pub fn record(&mut self, family: Family, key: SeriesKey, duration_ns: u64) {
        let key = (family, key);
        if let Some(h) = self.series.get_mut(&key) {
            h.record(duration_ns);
            return;
        }
        let held = self.series.len() - self.overflow_series();
        let key = if held < self.max_series {
            key
        } else {
            self.overflowed = self.overflowed.saturating_add(1);
            (family, SeriesKey::overflow())
        };
        self.series.entry(key).or_default().record(duration_ns);
    }

    fn overflow_series(&self) -> usize {
        Family::ALL
            .iter()
            .filter(|&&f| self.series.contains_key(&(f, SeriesKey::overflow())))
            .count()
    }

    /// Samples that went to an overflow series.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Every series, by family then labels.
    pub fn series(&self) -> impl Iterator<Item = (Family, &SeriesKey, &Histogram)> {
        self.series.iter().map(|((f, k), h)| (*f, k, h))
    }

    /// The series of one family.
    pub fn family(&self, family: Family) -> impl Iterator<Item = (&SeriesKey, &Histogram)> {
        self.series()
            .filter(move |(f, _, _)| *f == family)
            .map(|(_, k, h)| (k, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(route: &str) -> SeriesKey {
        SeriesKey {
            service: "api".into(),
            method: "GET".into(),
            route: route.into(),
            status: "200".into(),
            ..SeriesKey::default()
        }
    }

    #[test]
    fn beyond_the_cap_samples_go_to_the_overflow_series() {
        let mut m = RedMetrics::new(2);
        m.record(Family::HttpServer, key("/a"), 1_000_000);
        m.record(Family::HttpServer, key("/b"), 1_000_000);
        m.record(Family::HttpServer, key("/c"), 2_000_000);
        m.record(Family::HttpClient, key("/d"), 3_000_000);
        // An existing series still counts after the cap is reached.
        m.record(Family::HttpServer, key("/a"), 1_000_000);
        m.record(Family::HttpServer, key("/e"), 4_000_000);
        assert_eq!(m.overflowed(), 3);
        let server: Vec<_> = m.family(Family::HttpServer).collect();
        assert_eq!(server.len(), 3);
        let over = server.iter().find(|(k, _)| k.overflow).unwrap();
        assert_eq!(over.1.count(), 2);
        assert_eq!(over.1.sum_ns(), 6_000_000);
        assert_eq!(
            server
                .iter()
                .find(|(k, _)| k.route == "/a")
                .unwrap()
                .1
                .count(),
            2
        );
        let client: Vec<_> = m.family(Family::HttpClient).collect();
        assert_eq!(client.len(), 1);
        assert!(client[0].0.overflow);
        let total: u64 = m.series().map(|(_, _, h)| h.count()).sum();
        assert_eq!(total, 6, "no sample is lost at the cap");
    }

    /// A span of `kind` with the example attributes (an HTTP GET of `/a`, answered 200).
    pub(crate) fn span(kind: crate::span::SpanKind, duration_ns: u64) -> Span {
        Span {
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            parent_span_id: None,
            kind,
            name: "GET /a".into(),
            service: "api".into(),
            start_unix_nano: 1_000,
            end_unix_nano: 1_000 + duration_ns,
            status: crate::span::SpanStatus::Unset,
            attributes: crate::span::Attributes::example().into(),
            events: Vec::new(),
            trace_state: None,
        }
    }

    #[test]
    fn spans_other_than_http_are_not_measured() {
        use crate::span::SpanKind;
        let mut m = RedMetrics::default();
        m.push(&span(SpanKind::Client, 3_000_000));
        m.push(&span(SpanKind::Server, 2_000_000));
        let mut db = span(SpanKind::Server, 1);
        Arc::make_mut(&mut db.attributes).http = None;
        m.push(&db);
        let all: Vec<_> = m.series().collect();
        assert_eq!(all.len(), 2);
        let (family, key, h) = all[0];
        assert_eq!(family, Family::HttpServer);
        assert_eq!(
            (key.method.as_str(), key.route.as_str(), key.status.as_str()),
            ("GET", "/a", "200")
        );
        assert_eq!((key.error_type.as_str(), h.sum_ns()), ("", 2_000_000));
    }

    #[test]
    fn labels_are_bounded_and_errors_typed() {
        use crate::span::{SpanKind, SpanStatus};
        let mut s = span(SpanKind::Server, 1);
        {
            let a = Arc::make_mut(&mut s.attributes);
            let http = a.http.as_deref_mut().unwrap();
            http.method = Some("FROB".into());
            http.status = None;
        }
        s.status = SpanStatus::Error;
        let (_, key) = series::classify(&s).unwrap();
        assert_eq!(key.method, "_OTHER");
        assert_eq!((key.status.as_str(), key.error_type.as_str()), ("", "gap"));
        Arc::make_mut(&mut s.attributes)
            .http
            .as_deref_mut()
            .unwrap()
            .status = Some(503);
        let (_, key) = series::classify(&s).unwrap();
        assert_eq!(
            (key.status.as_str(), key.error_type.as_str()),
            ("503", "503")
        );
    }
}
