//! The report's pictures, as inline SVG: the service map (services in columns by call depth,
//! calls as curved edges labelled with count, rate, errors and latency), request waterfalls,
//! and per-endpoint latency histograms. Every element carries `data-*` attributes with its raw
//! numbers, so tests (and users' scripts) read facts, not pixels.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::analyze::stats::{bucket_floor, BUCKETS};
use crate::analyze::{fmt_ns, Analysis, Waterfall};

use super::html::esc;

const NODE_W: f64 = 210.0;
const NODE_H: f64 = 66.0;
const COL_GAP: f64 = 170.0;
const ROW_GAP: f64 = 34.0;
const MARGIN: f64 = 20.0;

fn pct(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

pub fn service_map(a: &Analysis) -> String {
    let mut columns: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, s) in a.services.iter().enumerate() {
        columns.entry(s.depth).or_default().push(i);
    }
    let mut pos = vec![(0.0, 0.0); a.services.len()];
    let mut height: f64 = 0.0;
    for (col, members) in columns.values().enumerate() {
        for (row, &i) in members.iter().enumerate() {
            let x = MARGIN + col as f64 * (NODE_W + COL_GAP);
            let y = MARGIN + row as f64 * (NODE_H + ROW_GAP);
            pos[i] = (x, y);
            height = height.max(y + NODE_H + MARGIN);
        }
    }
    let width = MARGIN * 2.0 + columns.len() as f64 * (NODE_W + COL_GAP) - COL_GAP;
    let index: BTreeMap<&str, usize> = a
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="map" viewBox="0 0 {width:.0} {:.0}" width="{width:.0}" height="{:.0}" role="img" aria-label="service map">"#,
        height + 30.0,
        height + 30.0
    );
    svg.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#6b7280"/></marker></defs>"##,
    );
    for e in &a.edges {
        let (Some(&from), Some(&to)) = (index.get(e.caller.as_str()), index.get(e.callee.as_str()))
        else {
            continue;
        };
        let (fx, fy) = (pos[from].0 + NODE_W, pos[from].1 + NODE_H / 2.0);
        let (tx, ty) = (pos[to].0, pos[to].1 + NODE_H / 2.0);
        // Forward edges bow gently; edges to the same or an earlier column loop below.
        let path = if tx > fx {
            let mid = (fx + tx) / 2.0;
            format!("M{fx:.1},{fy:.1} C{mid:.1},{fy:.1} {mid:.1},{ty:.1} {tx:.1},{ty:.1}")
        } else {
            let low = fy.max(ty) + NODE_H;
            format!(
                "M{fx:.1},{fy:.1} C{:.1},{low:.1} {:.1},{low:.1} {tx:.1},{ty:.1}",
                fx + 80.0,
                tx - 80.0
            )
        };
        let bad = e.status_5xx + e.no_response;
        let class = if bad > 0 { "edge failing" } else { "edge" };
        // Labels sit just before the callee, level with it, where edges no longer cross.
        let (lx, ly) = if tx > fx {
            (tx - COL_GAP / 2.0 + 8.0, ty - 14.0)
        } else {
            ((fx + tx) / 2.0, fy.max(ty) + NODE_H * 0.75 - 6.0)
        };
        let (caller, callee) = (esc(&e.caller), esc(&e.callee));
        let (count, rate) = (e.count, e.per_second);
        let (c2, c3, c4, c5, none) = (
            e.status_2xx,
            e.status_3xx,
            e.status_4xx,
            e.status_5xx,
            e.no_response,
        );
        let (p50, p99) = (e.latency_ns.p50, e.latency_ns.p99);
        let (p50_text, p99_text) = (fmt_ns(p50), fmt_ns(p99));
        let err = 100.0 * e.error_rate;
        let ly2 = ly + 13.0;
        let _ = write!(
            svg,
            r#"<g class="{class}" data-caller="{caller}" data-callee="{callee}" data-count="{count}" data-per-second="{rate:.3}" data-2xx="{c2}" data-3xx="{c3}" data-4xx="{c4}" data-5xx="{c5}" data-no-response="{none}" data-p50-ns="{p50}" data-p99-ns="{p99}"><title>{caller} → {callee}: {count} calls ({rate:.2}/s); 2xx {c2} · 3xx {c3} · 4xx {c4} · 5xx {c5} · no response {none}; p50 {p50_text} · p99 {p99_text}</title><path d="{path}" marker-end="url(#arrow)"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="middle">{count} × · {rate:.1}/s · {err:.0}% err</text><text x="{lx:.1}" y="{ly2:.1}" text-anchor="middle" class="sub">p50 {p50_text} · p99 {p99_text}</text></g>"#,
        );
    }
    for (i, s) in a.services.iter().enumerate() {
        let (x, y) = pos[i];
        let label = if s.folded > 0 {
            format!("{} other services", s.folded)
        } else {
            s.name.clone()
        };
        let self_share = pct(s.self_ns, s.busy_ns);
        let bar = NODE_W - 20.0;
        let _ = write!(
            svg,
            r#"<g class="node" data-service="{}" data-served="{}" data-made="{}" data-busy-ns="{}" data-self-ns="{}" data-waiting-ns="{}"><title>{}: served {} calls, made {}; busy {} of which waiting on its own calls {} ({:.0}%)</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="8"/><text x="{:.1}" y="{:.1}" class="name">{}</text><text x="{:.1}" y="{:.1}" class="sub">served {} · made {}</text>"#,
            esc(&s.name),
            s.served,
            s.made,
            s.busy_ns,
            s.self_ns,
            s.waiting_ns,
            esc(&s.name),
            s.served,
            s.made,
            fmt_ns(s.busy_ns),
            fmt_ns(s.waiting_ns),
            pct(s.waiting_ns, s.busy_ns),
            x + 10.0,
            y + 20.0,
            esc(&label),
            x + 10.0,
            y + 36.0,
            s.served,
            s.made,
        );
        if s.served > 0 {
            let _ = write!(
                svg,
                r#"<rect class="self" x="{:.1}" y="{:.1}" width="{:.1}" height="8"/><rect class="waiting" x="{:.1}" y="{:.1}" width="{:.1}" height="8"/><text x="{:.1}" y="{:.1}" class="sub">self {:.0}% · waiting {:.0}%</text>"#,
                x + 10.0,
                y + 44.0,
                bar * self_share / 100.0,
                x + 10.0 + bar * self_share / 100.0,
                y + 44.0,
                bar * (100.0 - self_share) / 100.0,
                x + 10.0,
                y + 63.0,
                self_share,
                100.0 - self_share,
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// A small bar chart of an endpoint's latency buckets (5 per decade).
pub fn histogram(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    // Show at least two decades around the data.
    let lo = first.saturating_sub(2);
    let hi = (last + 3).min(BUCKETS).max(lo + 10).min(BUCKETS);
    let w = 4.0;
    let mut svg = format!(
        r#"<svg class="hist" width="{:.0}" height="26" viewBox="0 0 {:.0} 26">"#,
        (hi - lo) as f64 * w,
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
