//! `--summary`: a table per (service, method, route) of server spans: count, errors and latency
//! percentiles (HdrHistogram, microsecond resolution, 3 significant digits).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::span::{Span, SpanKind, SpanStatus};

struct Row {
    count: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

#[derive(Default)]
pub struct Summary {
    rows: BTreeMap<(String, String, String), Row>,
}

impl Summary {
    pub fn add(&mut self, span: &Span) {
        if span.kind != SpanKind::Server {
            return;
        }
        let attr = |k: &str| {
            span.attributes
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_string()
        };
        let key = (
            span.service.clone(),
            attr("http.request.method"),
            attr("http.route"),
        );
        let row = self.rows.entry(key).or_insert_with(|| Row {
            count: 0,
            errors: 0,
            latency_us: Histogram::new(3).expect("3 significant digits is valid"),
        });
        row.count += 1;
        if span.status == SpanStatus::Error {
            row.errors += 1;
        }
        let us = span.end_unix_nano.saturating_sub(span.start_unix_nano) / 1000;
        row.latency_us.saturating_record(us);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "service", "method", "route", "count", "errors", "p50", "p90", "p99", "max"
        );
        for ((service, method, route), row) in &self.rows {
            let h = &row.latency_us;
            let _ = writeln!(
                s,
                "{:<24} {:<8} {:<40} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}",
                service,
                method,
                truncate(route, 40),
                row.count,
                row.errors,
                fmt_us(h.value_at_quantile(0.50)),
                fmt_us(h.value_at_quantile(0.90)),
                fmt_us(h.value_at_quantile(0.99)),
                fmt_us(h.max()),
            );
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}
