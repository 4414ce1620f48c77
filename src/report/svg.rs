//! The report's pictures, as inline SVG: the service map (`map`), request waterfalls
//! and per-endpoint latency histograms. Every element carries `data-*` attributes with its raw
//! numbers, so tests (and users' scripts) read facts, not pixels.

use std::fmt::Write as _;

use crate::analyze::stats::{bucket_floor, BUCKETS};
use crate::analyze::{fmt_ns, Waterfall};

use super::html::esc;

mod map;

pub use map::service_map;

/// A small bar chart of an endpoint's latency buckets (5 per decade), always 84 × 24 px: the
/// buckets shown (two decades at least, around the data) share the width.
pub fn histogram(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    // Show at least two decades around the data.
    let lo = first.saturating_sub(2);
    let hi = (last + 3).min(BUCKETS).max(lo + 10).min(BUCKETS);
    let w = 4.0;
    let mut svg = format!(
        r#"<svg class="hist" width="84" height="24" viewBox="0 0 {:.0} 26" preserveAspectRatio="none">"#,
        (hi - lo) as f64 * w
    );
    for (k, &c) in counts.iter().enumerate().take(hi).skip(lo) {
        if c == 0 {
            continue;
        }
        let h = (22.0 * (c as f64).ln_1p() / (max as f64).ln_1p()).max(1.5);
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} – {}: {c}</title></rect>"#,
            (k - lo) as f64 * w,
            24.0 - h,
            w - 0.8,
            fmt_ns(bucket_floor(k)),
            fmt_ns(bucket_floor(k + 1)),
        );
    }
    svg.push_str("</svg>");
    svg
}

const ROW_H: f64 = 19.0;
const LABEL_W: f64 = 430.0;
const BARS_W: f64 = 640.0;

pub fn waterfall(w: &Waterfall) -> String {
    let total = w.duration_ns.max(1) as f64;
    let x = |t: u64| LABEL_W + BARS_W * (t as f64 / total).min(1.0);
    let height = ROW_H * (w.rows.len() as f64 + 1.0) + 6.0;
    let mut svg = format!(
        r#"<svg class="waterfall" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}">"#,
        LABEL_W + BARS_W + 10.0,
        LABEL_W + BARS_W + 10.0
    );
    // Time axis: quarters of the root's duration.
    for q in 0..=4u64 {
        let t = (u128::from(w.duration_ns) * u128::from(q) / 4) as u64;
        let _ = write!(
            svg,
            r#"<line class="tick" x1="{:.1}" y1="0" x2="{:.1}" y2="{height:.0}"/><text class="axis" x="{:.1}" y="12">{}</text>"#,
            x(t),
            x(t),
            x(t) + 2.0,
            fmt_ns(t)
        );
    }
    for (n, r) in w.rows.iter().enumerate() {
        let y = ROW_H * (n as f64 + 1.0);
        let mut class = String::from("row");
        if r.critical {
            class.push_str(" critical");
        }
        if r.failed {
            class.push_str(" failed");
        }
        let status = match (r.status, &r.error) {
            (Some(s), None) => s.to_string(),
            (Some(s), Some(e)) => format!("{s} {e}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "-".into(),
        };
        let _ = write!(
            svg,
            r#"<g class="{class}" data-callee="{}" data-name="{}" data-start-ns="{}" data-end-ns="{}" data-critical="{}"><title>{} → {} {} ({})&#10;start +{} · duration {}&#10;request {} · first byte after {} · transfer {}</title><text x="{:.1}" y="{:.1}">{} {} · {} <tspan class="status">{}</tspan></text>"#,
            esc(&r.callee),
            esc(&r.name),
            r.start_ns,
            r.end_ns,
            r.critical,
            esc(&r.caller),
            esc(&r.callee),
            esc(&r.target),
            esc(&status),
            fmt_ns(r.start_ns),
            fmt_ns(r.end_ns.saturating_sub(r.start_ns)),
            fmt_ns(r.request_end_ns.map_or(0, |e| e.saturating_sub(r.start_ns))),
            fmt_ns(
                r.response_start_ns
                    .zip(r.request_end_ns)
                    .map_or(0, |(s, e)| s.saturating_sub(e))
            ),
            fmt_ns(
                r.response_start_ns
                    .map_or(0, |s| r.end_ns.saturating_sub(s))
            ),
            4.0 + 12.0 * r.depth.min(12) as f64,
            y + 13.0,
            esc(&r.callee),
            esc(&r.name),
            fmt_ns(r.end_ns.saturating_sub(r.start_ns)),
            esc(&status),
        );
        // Phases: sending the request, waiting for the first byte, receiving the response.
        let req_end = r.request_end_ns.unwrap_or(r.start_ns).min(r.end_ns);
        let resp_start = r
            .response_start_ns
            .unwrap_or(r.end_ns)
            .clamp(req_end, r.end_ns);
        for (class, from, to) in [
            ("send", r.start_ns, req_end),
            ("wait", req_end, resp_start),
            ("recv", resp_start, r.end_ns),
        ] {
            let (x0, x1) = (x(from), x(to));
            if to > from || class == "wait" {
                let _ = write!(
                    svg,
                    r#"<rect class="{class}" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}"/>"#,
                    y + 3.0,
                    (x1 - x0).max(1.0),
                    ROW_H - 6.0
                );
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}
