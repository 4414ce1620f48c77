//! RED metrics as Prometheus text (exposition format 0.0.4): for each family with series,
//! `# HELP` and `# TYPE … histogram`, then per series its cumulative `_bucket{le="…"}` lines
//! ending with `le="+Inf"`, `_sum` (seconds, exact decimal) and `_count`.
//!
//! Contract: the text is a function of the series alone (families and series in a fixed
//! order), so the same spans give the same bytes; label values are escaped as the format
//! requires (backslash, double quote, line feed), and label names are OpenTelemetry's with
//! dots turned to underscores.

use std::fmt::Write as _;

use super::{Family, Histogram, RedMetrics, SeriesKey};

/// A label value escaped for the text format: `\` → `\\`, `"` → `\"`, line feed → `\n`.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends the metrics as Prometheus text to `out`.
pub fn render(metrics: &RedMetrics, out: &mut String) {
    for family in Family::ALL {
        let mut series = metrics.family(family).peekable();
        if series.peek().is_none() {
            continue;
        }
        let name = family.prometheus_name();
        let _ = writeln!(
            out,
            "# HELP {name} {}\n# TYPE {name} histogram",
            family.help()
        );
        for (key, h) in series {
            render_series(name, key, h, out);
        }
    }
}

/// The metrics as Prometheus text.
pub fn to_text(metrics: &RedMetrics) -> String {
    let mut out = String::new();
    render(metrics, &mut out);
    out
}

fn render_series(name: &str, key: &SeriesKey, h: &Histogram, out: &mut String) {
    let mut labels = String::new();
    for (k, v) in key.otel_labels() {
        labels.push_str(&k.replace('.', "_"));
        labels.push_str("=\"");
        escape_label_value(v, &mut labels);
        labels.push_str("\",");
    }
    for (bound, n) in h.cumulative() {
        let _ = match bound {
            Some(b) => writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {n}"),
            None => writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {n}"),
        };
    }
    let labels = labels.trim_end_matches(',');
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds_text());
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value("a\\b\"c\nd/é", &mut out);
        assert_eq!(out, "a\\\\b\\\"c\\nd/é");
    }

    #[test]
    fn renders_a_histogram_and_the_overflow_series() {
        let mut m = RedMetrics::new(1);
        let key = SeriesKey {
            service: "we\"ird\n".into(),
            method: "GET".into(),
            route: "/u/{id}".into(),
            status: "200".into(),
            ..SeriesKey::default()
        };
        m.record(Family::HttpServer, key.clone(), 7_000_000);
        m.record(Family::HttpServer, key, 20_000_000_000);
        let other = SeriesKey {
            route: "/other".into(),
            ..SeriesKey::default()
        };
        m.record(Family::HttpServer, other, 1);
        let text = to_text(&m);
        let labels = "service_name=\"we\\\"ird\\n\",http_request_method=\"GET\",\
http_route=\"/u/{id}\",http_response_status_code=\"200\"";
        let n = "http_server_request_duration_seconds";
        for want in [
            format!("# TYPE {n} histogram\n"),
            format!("{n}_bucket{{{labels},le=\"0.005\"}} 0\n"),
            format!("{n}_bucket{{{labels},le=\"0.01\"}} 1\n"),
            format!("{n}_bucket{{{labels},le=\"10\"}} 1\n"),
            format!("{n}_bucket{{{labels},le=\"+Inf\"}} 2\n"),
            format!("{n}_sum{{{labels}}} 20.007000000\n"),
            format!("{n}_count{{{labels}}} 2\n"),
            format!("{n}_bucket{{otel_metric_overflow=\"true\",le=\"+Inf\"}} 1\n"),
            format!("{n}_count{{otel_metric_overflow=\"true\"}} 1\n"),
        ] {
            assert!(text.contains(&want), "{want} in\n{text}");
        }
        assert!(!text.contains("http_client"), "{text}");
        assert!(!text.contains("/other"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 1);
        assert_eq!(to_text(&RedMetrics::default()), "");
    }
}
