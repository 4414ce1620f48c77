//! Request waterfalls: one row per call, labels in a column of their own and bars over the rest
//! of the width, with a time axis of round ticks from 0.
//!
//! The bars' x is in percent of their picture, so it fills whatever width the page gives it;
//! each bar draws its three phases (sending the request, waiting for the first byte, receiving
//! the response), a phase too short to see at least `PHASE_MIN_PX` wide.

use std::fmt::Write as _;

use crate::analysis::report::html::esc;
use crate::analysis::traces::Row;
use crate::analysis::{fmt_ns, Waterfall};

const ROW_H: f64 = 19.0;
/// The label column: as wide as the longest label is estimated to be (12 px, bold), within
/// these bounds; the bars take the rest of the width.
const LABEL_MIN: f64 = 200.0;
const LABEL_MAX: f64 = 440.0;
const LABEL_CH_BOLD: f64 = 7.2;
/// Phases shorter than this many pixels are drawn this wide, so each one shows.
const PHASE_MIN_PX: f64 = 4.0;

/// Round ticks (1, 2 or 5 × 10ⁿ ns apart, 3 to 6 of them after 0) over `total`, and how to
/// label them: one unit for all, as many decimals as the step needs.
fn ticks(total: u64) -> Vec<(u64, String)> {
    let total = total.max(1);
    let mut decade = 1u64;
    let step = loop {
        if let Some(s) = [1, 2, 5]
            .iter()
            .map(|m| decade.saturating_mul(*m))
            .find(|s| total / s <= 6)
        {
            break s;
        }
        decade = decade.saturating_mul(10);
    };
    let (unit, name) = match total {
        1_000_000_000.. => (1e9, "s"),
        1_000_000.. => (1e6, "ms"),
        1_000.. => (1e3, "µs"),
        _ => (1.0, "ns"),
    };
    let in_unit = step as f64 / unit;
    let decimals = [1.0, 0.1, 0.01]
        .iter()
        .position(|&d| in_unit >= d - 1e-9)
        .unwrap_or(3);
    (0..=total / step)
        .map(|k| {
            let t = k * step;
            let text = if t == 0 {
                "0".to_string()
            } else {
                format!("{:.*} {name}", decimals, t as f64 / unit)
            };
            (t, text)
        })
        .collect()
}

fn row_label(r: &Row, status: &str) -> String {
    format!(
        "{} {} · {} {status}",
        r.callee,
        r.name,
        fmt_ns(r.end_ns.saturating_sub(r.start_ns))
    )
}

fn row_status(r: &Row) -> String {
    match (r.status, &r.error) {
        (Some(s), None) => s.to_string(),
        (Some(s), Some(e)) => format!("{s} {e}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "-".into(),
    }
}

/// A waterfall: labels in a column of their own, and bars over the rest of the width (their
/// x in percent of it), so the picture fills whatever room the page gives it.
pub fn waterfall(w: &Waterfall) -> String {
    let height = ROW_H * (w.rows.len() as f64 + 1.0) + 6.0;
    let label_w = w
        .rows
        .iter()
        .map(|r| {
            let chars = row_label(r, &row_status(r)).chars().count() as f64;
            4.0 + 12.0 * r.depth.min(12) as f64 + chars * LABEL_CH_BOLD + 8.0
        })
        .fold(LABEL_MIN, f64::max)
        .min(LABEL_MAX);
    let mut labels =
        format!(r#"<svg class="wf-labels" width="{label_w:.0}" height="{height:.0}">"#);
    let mut bars = format!(r#"<svg class="wf-bars" width="100%" height="{height:.0}">"#);
    let total = w.duration_ns.max(1) as f64;
    let x = |t: u64| 100.0 * (t as f64 / total).min(1.0);
    let ticks = ticks(w.duration_ns);
    let last = ticks.len() - 1;
    for (k, (t, text)) in ticks.iter().enumerate() {
        let p = x(*t);
        // The first label starts at its tick, the last (if near the end) ends at it.
        let (anchor, dx) = match (k, p) {
            (0, _) => ("start", 2.0),
            (_, p) if k == last && p > 90.0 => ("end", -2.0),
            _ => ("middle", 0.0),
        };
        let _ = write!(
            bars,
            r#"<line class="tick" x1="{p:.3}%" y1="14" x2="{p:.3}%" y2="{height:.0}"/><text class="axis" x="{p:.3}%" dx="{dx}" y="11" text-anchor="{anchor}" data-ns="{t}">{}</text>"#,
            esc(text)
        );
    }
    for (n, r) in w.rows.iter().enumerate() {
        let y = ROW_H * (n as f64 + 1.0);
        waterfall_row(&mut labels, &mut bars, r, y, &x);
    }
    labels.push_str("</svg>");
    bars.push_str("</svg>");
    format!(
        r#"<div class="wf" style="grid-template-columns:{label_w:.0}px minmax(0,1fr);min-width:{:.0}px">{labels}{bars}</div>"#,
        label_w + 240.0
    )
}

fn waterfall_row(labels: &mut String, bars: &mut String, r: &Row, y: f64, x: &dyn Fn(u64) -> f64) {
    let mut class = String::from("row");
    if r.critical {
        class.push_str(" critical");
    }
    if r.failed {
        class.push_str(" failed");
    }
    let status = row_status(r);
    let send_ns = r.request_end_ns.map(|e| e.saturating_sub(r.start_ns));
    let wait_ns = r
        .response_start_ns
        .zip(r.request_end_ns)
        .map(|(s, e)| s.saturating_sub(e));
    let recv_ns = r.response_start_ns.map(|s| r.end_ns.saturating_sub(s));
    let title = format!(
        "<title>{} → {} {} ({})&#10;start +{} · duration {}&#10;request {} · first byte after {} · \
transfer {}</title>",
        esc(&r.caller),
        esc(&r.callee),
        esc(&r.target),
        esc(&status),
        fmt_ns(r.start_ns),
        fmt_ns(r.end_ns.saturating_sub(r.start_ns)),
        send_ns.map_or("?".into(), fmt_ns),
        wait_ns.map_or("?".into(), fmt_ns),
        recv_ns.map_or("?".into(), fmt_ns),
    );
    let _ = write!(
        labels,
        r#"<g class="{class}">{title}<text x="{:.1}" y="{:.1}">{} {} · {} <tspan class="status">{}</tspan></text></g>"#,
        4.0 + 12.0 * r.depth.min(12) as f64,
        y + 13.0,
        esc(&r.callee),
        esc(&r.name),
        fmt_ns(r.end_ns.saturating_sub(r.start_ns)),
        esc(&status),
    );
    let _ = write!(
        bars,
        r#"<g class="{class}" data-callee="{}" data-name="{}" data-start-ns="{}" data-end-ns="{}" data-critical="{}" data-phases="{}">{title}"#,
        esc(&r.callee),
        esc(&r.name),
        r.start_ns,
        r.end_ns,
        r.critical,
        match (send_ns.is_some(), recv_ns.is_some()) {
            (true, true) => "send wait recv",
            (true, false) => "send wait",
            (false, true) => "wait recv",
            (false, false) => "wait",
        },
    );
    // The whole call in the waiting colour, then sending and receiving over its two ends:
    // each at its true width, and at least PHASE_MIN_PX wide (a second rect, in pixels).
    let (x0, x1) = (x(r.start_ns), x(r.end_ns));
    let (top, h) = (y + 3.0, ROW_H - 6.0);
    let _ = write!(
        bars,
        r#"<rect class="wait" x="{x0:.3}%" y="{top:.1}" width="{:.3}%" height="{h:.1}" data-ns="{}"/>"#,
        x1 - x0,
        wait_ns.unwrap_or(r.end_ns.saturating_sub(r.start_ns)),
    );
    if let Some(ns) = send_ns {
        let to = x(r.start_ns.saturating_add(ns).min(r.end_ns));
        let _ = write!(
            bars,
            r#"<rect class="send" x="{x0:.3}%" y="{top:.1}" width="{:.3}%" height="{h:.1}" data-ns="{ns}"/><rect class="send" x="{x0:.3}%" y="{top:.1}" width="{PHASE_MIN_PX}" height="{h:.1}"/>"#,
            to - x0,
        );
    }
    if let Some(ns) = recv_ns {
        let from = x(r.end_ns.saturating_sub(ns).max(r.start_ns));
        let _ = write!(
            bars,
            r#"<rect class="recv" x="{from:.3}%" y="{top:.1}" width="{:.3}%" height="{h:.1}" data-ns="{ns}"/><rect class="recv" x="{x1:.3}%" y="{top:.1}" width="{PHASE_MIN_PX}" height="{h:.1}" transform="translate(-{PHASE_MIN_PX},0)"/>"#,
            x1 - from,
        );
    }
    let _ = write!(
        bars,
        r#"<rect class="outline" x="{x0:.3}%" y="{top:.1}" width="{:.3}%" height="{h:.1}"/></g>"#,
        x1 - x0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_start_at_zero() {
        let t = ticks(57_853_000);
        let text: Vec<&str> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(text, ["0", "10 ms", "20 ms", "30 ms", "40 ms", "50 ms"]);
        let t = ticks(3_200_000);
        assert_eq!(t[1].1, "0.5 ms");
        assert_eq!(t.last().unwrap().0, 3_000_000);
        let t = ticks(1_500_000_000);
        assert_eq!(t[1].1, "0.5 s");
        assert_eq!(ticks(0)[0].1, "0");
        assert!(ticks(u64::MAX).len() >= 2);
    }
}
