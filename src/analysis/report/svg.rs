//! The report's pictures, as inline SVG: the service map (`map`), request waterfalls
//! (`waterfall`) and per-endpoint latency histograms. Every element carries `data-*`
//! attributes with its raw numbers, so tests (and users' scripts) read facts, not pixels.

use std::fmt::Write as _;

use crate::analysis::fmt_ns;
use crate::analysis::stats::{bucket_floor, BUCKETS};

mod map;
mod waterfall;

pub use map::service_map;
pub use waterfall::waterfall;

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
