//! RED metrics as an OTLP metrics export request (`opentelemetry-proto` `metrics/v1`): one
//! `ResourceMetrics` per service (`service.name`; the overflow series under a resource with
//! none), scope `tapspan`, and per family an explicit-bucket `Histogram` with cumulative
//! temporality whose points carry the series' other labels as attributes.
//!
//! Contract: the request is a function of the metrics and the two instants given (the start
//! of the run and now), so sending it again later only ever adds counts, as cumulative
//! temporality requires.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, Histogram as OtlpHistogram, HistogramDataPoint, Metric,
    ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::histogram::BOUNDS_SECONDS;
use super::{Family, Histogram, RedMetrics, SeriesKey};
use crate::export::otlp::{resource, SCOPE_NAME};

/// The metrics as one export request, cumulative since `start_ns`, observed at `now_ns`.
pub fn build_request(
    metrics: &RedMetrics,
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    // service → family → points.
    let mut by_service: BTreeMap<&str, BTreeMap<Family, Vec<HistogramDataPoint>>> = BTreeMap::new();
    for (family, key, h) in metrics.series() {
        by_service
            .entry(key.service.as_str())
            .or_default()
            .entry(family)
            .or_default()
            .push(point(key, h, start_ns, now_ns));
    }
    let resource_metrics = by_service
        .into_iter()
        .map(|(service, families)| ResourceMetrics {
            resource: Some(if service.is_empty() {
                Resource::default()
            } else {
                resource(service, None)
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                metrics: families
                    .into_iter()
                    .map(|(family, points)| histogram_metric(family, points))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn histogram_metric(family: Family, data_points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: family.otel_name().to_string(),
        description: family.help().to_string(),
        unit: "s".to_string(),
        data: Some(metric::Data::Histogram(OtlpHistogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

fn point(key: &SeriesKey, h: &Histogram, start_ns: u64, now_ns: u64) -> HistogramDataPoint {
    let attributes = key
        .otel_labels()
        .into_iter()
        .filter(|(k, v)| *k != "service.name" && !v.is_empty())
        .map(|(k, v)| {
            let value = match (k, v.parse::<i64>()) {
                // OpenTelemetry types the status code as an integer, overflow as a boolean.
                ("http.response.status_code", Ok(code)) => any_value::Value::IntValue(code),
                ("otel.metric.overflow", _) => any_value::Value::BoolValue(true),
                _ => any_value::Value::StringValue(v.to_string()),
            };
            KeyValue {
                key: k.to_string(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
        })
        .collect();
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns.max(start_ns),
        count: h.count(),
        sum: Some(h.sum_ns() as f64 / 1e9),
        bucket_counts: h.bucket_counts().to_vec(),
        explicit_bounds: BOUNDS_SECONDS.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn encodes_what_decodes_back() {
        let mut m = RedMetrics::new(2);
        let key = |service: &str, status: &str| SeriesKey {
            service: service.into(),
            method: "GET".into(),
            route: "/u/{id}".into(),
            status: status.into(),
            ..SeriesKey::default()
        };
        m.record(Family::HttpServer, key("users", "200"), 7_000_000);
        m.record(Family::HttpServer, key("users", "200"), 20_000_000_000);
        m.record(Family::HttpClient, key("api", "200"), 1_000);
        m.record(Family::HttpServer, key("other", "500"), 1);
        let bytes = build_request(&m, 10, 20).encode_to_vec();
        let req = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.resource_metrics.len(), 3, "overflow, api, users");
        let users = &req.resource_metrics[2];
        let name = &users.resource.as_ref().unwrap().attributes[0];
        assert_eq!(name.key, "service.name");
        let metric = &users.scope_metrics[0].metrics[0];
        assert_eq!(
            (metric.name.as_str(), metric.unit.as_str()),
            ("http.server.request.duration", "s")
        );
        let Some(metric::Data::Histogram(h)) = &metric.data else {
            panic!("not a histogram: {metric:?}");
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &h.data_points[0];
        assert_eq!(
            (p.start_time_unix_nano, p.time_unix_nano, p.count),
            (10, 20, 2)
        );
        assert_eq!(p.explicit_bounds.len() + 1, p.bucket_counts.len());
        assert_eq!(p.bucket_counts[1], 1);
        assert_eq!(p.bucket_counts[14], 1);
        assert_eq!(p.sum, Some(20.007));
        let keys: Vec<&str> = p.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.request.method",
                "http.route",
                "http.response.status_code"
            ]
        );
        assert_eq!(
            p.attributes[2].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(200))
        );
        let overflow = &req.resource_metrics[0];
        assert!(overflow.resource.as_ref().unwrap().attributes.is_empty());
        let Some(metric::Data::Histogram(h)) = &overflow.scope_metrics[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(h.data_points[0].attributes[0].key, "otel.metric.overflow");
        assert_eq!(h.data_points[0].count, 1);
    }
}
