//! The service map: services in columns by call depth, calls as edges labelled with count,
//! rate, share failed and latency.
//!
//! Layout is computed here from the analysis alone, so one analysis always draws one picture.
//! Label widths are estimated from character counts (the fonts are the reader's), on the wide
//! side. A label never sits on its own edge, its arrowhead, a node or another label: a forward
//! edge bends near its caller and runs level into its callee, at its own height on the callee's
//! side, with its label above that level run; an edge within a column arcs out to the right,
//! labelled in a free gap between the nodes it spans or else beside the arc; an edge to an
//! earlier column loops below the nodes, labelled under the loop. Labels are drawn last, on a
//! white ground, above every line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::analysis::report::html::esc;
use crate::analysis::{fmt_ns, Analysis, Edge};

const NODE_W: f64 = 190.0;
const NODE_H: f64 = 66.0;
const COL_GAP: f64 = 240.0;
const ROW_GAP: f64 = 40.0;
const MARGIN: f64 = 20.0;
/// A forward edge bends within this much of the gap after its caller's column.
const BEND: f64 = 56.0;
/// Room for the arrowhead (7 × the 1.6 px stroke) and a little air before a label.
const ARROW: f64 = 16.0;
/// Ports on a node's left side when several forward edges come in: first offset, spacing.
const PORT0: f64 = 20.0;
const PORT_GAP: f64 = 32.0;
/// Map labels: estimated width of one 11 px character, height of the two lines.
const LABEL_CH: f64 = 6.3;
const LABEL_H: f64 = 28.0;

fn pct(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Where the map's services are: columns by depth, each node as tall as its ports need.
struct Layout {
    col: Vec<usize>,
    /// Top-left corner and height of each node.
    x: Vec<f64>,
    y: Vec<f64>,
    h: Vec<f64>,
    /// The y at which each forward edge (by index in `a.edges`) enters its callee.
    port: BTreeMap<usize, f64>,
    width: f64,
    height: f64,
}

/// An axis-aligned box, for keeping labels off nodes and each other.
#[derive(Clone, Copy)]
struct Box2 {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Box2 {
    fn hits(&self, o: &Box2) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

fn layout(a: &Analysis, ends: &[Option<(usize, usize)>]) -> Layout {
    let mut columns: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, s) in a.services.iter().enumerate() {
        columns.entry(s.depth).or_default().push(i);
    }
    let n = a.services.len();
    let mut l = Layout {
        col: vec![0; n],
        x: vec![0.0; n],
        y: vec![0.0; n],
        h: vec![NODE_H; n],
        port: BTreeMap::new(),
        width: MARGIN * 2.0 + columns.len() as f64 * (NODE_W + COL_GAP) - COL_GAP,
        height: 0.0,
    };
    for (c, members) in columns.values().enumerate() {
        for &i in members {
            l.col[i] = c;
        }
    }
    // Column by column, so every forward edge's caller is placed before its callee.
    for (c, members) in columns.values().enumerate() {
        let mut y = MARGIN;
        for &i in members {
            let mut incoming: Vec<usize> = (0..ends.len())
                .filter(|&e| ends[e].is_some_and(|(f, t)| t == i && l.col[f] < c))
                .collect();
            incoming.sort_by(|&p, &q| {
                let (fp, fq) = (ends[p].unwrap().0, ends[q].unwrap().0);
                (l.y[fp], p).partial_cmp(&(l.y[fq], q)).unwrap()
            });
            let k = incoming.len();
            l.h[i] = NODE_H.max(2.0 * PORT0 + PORT_GAP * k.saturating_sub(1) as f64);
            l.x[i] = MARGIN + c as f64 * (NODE_W + COL_GAP);
            l.y[i] = y;
            for (j, &e) in incoming.iter().enumerate() {
                let py = if k == 1 {
                    y + l.h[i] / 2.0
                } else {
                    y + PORT0 + PORT_GAP * j as f64
                };
                l.port.insert(e, py);
            }
            y += l.h[i] + ROW_GAP;
            l.height = l.height.max(y - ROW_GAP + MARGIN);
        }
    }
    l
}

/// The two lines of an edge's label.
fn edge_label(e: &Edge) -> (String, String) {
    let rate = if e.per_second >= 100.0 {
        format!("{:.0}", e.per_second)
    } else {
        format!("{:.1}", e.per_second)
    };
    (
        format!(
            "{} × · {rate}/s · {:.0}% err",
            e.count,
            100.0 * e.error_rate
        ),
        format!(
            "p50 {} · p99 {}",
            fmt_ns(e.latency_ns.p50),
            fmt_ns(e.latency_ns.p99)
        ),
    )
}

fn label_width(lines: &(String, String)) -> f64 {
    lines.0.chars().count().max(lines.1.chars().count()) as f64 * LABEL_CH + 8.0
}

/// An edge's path and the box its label goes in.
fn route(
    l: &Layout,
    e: usize,
    (from, to): (usize, usize),
    w: f64,
    nth: usize,
    taken: &[Box2],
) -> (String, Box2, bool) {
    let (fx, tx) = (l.x[from], l.x[to]);
    let (fy, ty) = (l.y[from] + l.h[from] / 2.0, l.y[to] + l.h[to] / 2.0);
    if l.col[to] > l.col[from] {
        // Level (at its port) through the gap before the callee, bent near the caller.
        let py = l.port.get(&e).copied().unwrap_or(ty);
        let (x0, x1) = (fx + NODE_W, tx - COL_GAP + BEND);
        let bend = tx - COL_GAP;
        let path = format!(
            "M{x0:.1},{fy:.1} L{bend:.1},{fy:.1} C{:.1},{fy:.1} {:.1},{py:.1} {x1:.1},{py:.1} L{tx:.1},{py:.1}",
            bend + BEND / 2.0,
            bend + BEND / 2.0,
        );
        let right = tx - ARROW;
        let b = Box2 {
            x0: right - w,
            y0: py - LABEL_H - 3.0,
            x1: right,
            y1: py - 3.0,
        };
        return (path, b, false);
    }
    if l.col[to] == l.col[from] {
        return arc_within_column(l, (from, to), w, nth, taken);
    }
    // A loop below every node of the columns it passes, bottom to bottom.
    let (lo, hi) = (l.col[to], l.col[from]);
    let floor = (0..l.col.len())
        .filter(|&i| (lo..=hi).contains(&l.col[i]))
        .map(|i| l.y[i] + l.h[i])
        .fold(0.0, f64::max);
    let low = floor + 40.0 + 20.0 * nth as f64;
    let (cf, ct) = (fx + NODE_W / 2.0, tx + NODE_W / 2.0);
    let (bf, bt) = (l.y[from] + l.h[from], l.y[to] + l.h[to]);
    let path = format!("M{cf:.1},{bf:.1} C{cf:.1},{low:.1} {ct:.1},{low:.1} {ct:.1},{bt:.1}");
    let bottom = 0.75 * low + 0.125 * (bf + bt);
    let mid = (cf + ct) / 2.0;
    let b = Box2 {
        x0: mid - w / 2.0,
        y0: bottom + 4.0,
        x1: mid + w / 2.0,
        y1: bottom + 4.0 + LABEL_H,
    };
    (path, b, false)
}

/// An edge within a column: an arc out of the right side, from the caller's near half into the
/// callee's. Its label goes in a free gap between the nodes it spans (left of the arc), else
/// beside the arc, level with its middle or the nearest free height (text from its left end).
fn arc_within_column(
    l: &Layout,
    (from, to): (usize, usize),
    w: f64,
    nth: usize,
    taken: &[Box2],
) -> (String, Box2, bool) {
    let right = l.x[from] + NODE_W;
    let (fy, ty) = (l.y[from] + l.h[from] / 2.0, l.y[to] + l.h[to] / 2.0);
    let (y0, y1) = if from == to || l.y[from] > l.y[to] {
        (fy - 12.0, ty + 12.0)
    } else {
        (fy + 12.0, ty - 12.0)
    };
    let d = 40.0 + 16.0 * nth as f64;
    let path = format!(
        "M{right:.1},{y0:.1} C{:.1},{y0:.1} {:.1},{y1:.1} {right:.1},{y1:.1}",
        right + d,
        right + d
    );
    let free = |b: &Box2| !taken.iter().any(|t| t.hits(b));
    // Gaps between consecutive nodes of the column from the caller's side to the callee's.
    let (top, bottom) = (l.y[from].min(l.y[to]), l.y[from].max(l.y[to]));
    let mut column: Vec<usize> = (0..l.col.len())
        .filter(|&i| l.col[i] == l.col[from] && l.y[i] >= top && l.y[i] <= bottom)
        .collect();
    column.sort_by(|&p, &q| l.y[p].total_cmp(&l.y[q]));
    if l.y[from] > l.y[to] {
        column.reverse();
    }
    let cx = l.x[from] + NODE_W / 2.0;
    let gap = column.windows(2).map(|p| {
        let (a, b) = if l.y[p[0]] < l.y[p[1]] {
            (p[0], p[1])
        } else {
            (p[1], p[0])
        };
        let mid = (l.y[a] + l.h[a] + l.y[b]) / 2.0;
        Box2 {
            x0: cx - w / 2.0,
            y0: mid - LABEL_H / 2.0,
            x1: cx + w / 2.0,
            y1: mid + LABEL_H / 2.0,
        }
    });
    if let Some(b) = gap.take_while(|_| w <= NODE_W).find(free) {
        return (path, b, false);
    }
    let x0 = right + 0.75 * d + 6.0;
    let mid = (y0 + y1) / 2.0;
    let beside = |k: &f64| Box2 {
        x0,
        y0: mid - LABEL_H / 2.0 + 16.0 * k,
        x1: x0 + w,
        y1: mid + LABEL_H / 2.0 + 16.0 * k,
    };
    let b = [0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]
        .iter()
        .map(beside)
        .find(free)
        .unwrap_or_else(|| beside(&0.0));
    (path, b, true)
}

pub fn service_map(a: &Analysis) -> String {
    let index: BTreeMap<&str, usize> = a
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let ends: Vec<Option<(usize, usize)>> = a
        .edges
        .iter()
        .map(|e| {
            Some((
                *index.get(e.caller.as_str())?,
                *index.get(e.callee.as_str())?,
            ))
        })
        .collect();
    let mut l = layout(a, &ends);
    let mut taken: Vec<Box2> = (0..a.services.len())
        .map(|i| Box2 {
            x0: l.x[i] - 4.0,
            y0: l.y[i] - 4.0,
            x1: l.x[i] + NODE_W + 4.0,
            y1: l.y[i] + l.h[i] + 4.0,
        })
        .collect();
    // Forward edges first: their places are fixed; the others go around them.
    let mut order: Vec<usize> = (0..ends.len()).filter(|&e| ends[e].is_some()).collect();
    order.sort_by_key(|&e| {
        let (f, t) = ends[e].unwrap();
        (l.col[t] <= l.col[f], e)
    });
    let mut nth: BTreeMap<(bool, usize), usize> = BTreeMap::new();
    let (mut edges, mut labels) = (String::new(), String::new());
    for e in order {
        let (from, to) = ends[e].unwrap();
        let edge = &a.edges[e];
        let lines = edge_label(edge);
        let w = label_width(&lines);
        let key = (l.col[to] == l.col[from], l.col[from]);
        let k = *nth.entry(key).and_modify(|k| *k += 1).or_insert(0);
        let (path, b, start) = route(&l, e, (from, to), w, k, &taken);
        taken.push(b);
        if l.col[from] == l.col[to] {
            // Room for the arc out of the column's right side.
            let arc = 0.75 * (40.0 + 16.0 * k as f64);
            l.width = l.width.max(l.x[from] + NODE_W + arc + MARGIN);
        }
        l.width = l.width.max(b.x1 + MARGIN);
        l.height = l.height.max(b.y1 + MARGIN);
        edge_svg(&mut edges, &mut labels, edge, &path, (b, start), &lines);
    }

    let mut svg = String::new();
    let (width, height) = (l.width, l.height);
    // It may shrink to 80% to fit a narrow window; below that it scrolls.
    let _ = write!(
        svg,
        r#"<svg class="map" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" style="min-width:{:.0}px" role="img" aria-label="service map">"#,
        0.8 * width
    );
    svg.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#6b7280"/></marker><marker id="arrow-bad" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#dc2626"/></marker></defs>"##,
    );
    svg.push_str(&edges);
    for i in 0..a.services.len() {
        node_svg(&mut svg, a, &l, i);
    }
    svg.push_str(&labels);
    svg.push_str("</svg>");
    svg
}

/// An edge's line (into `edges`) and its label (into `labels`, drawn above everything).
fn edge_svg(
    edges: &mut String,
    labels: &mut String,
    e: &Edge,
    path: &str,
    (b, start): (Box2, bool),
    lines: &(String, String),
) {
    let bad = e.status_5xx + e.failed + e.no_response;
    let (class, marker) = if bad > 0 {
        ("edge failing", "arrow-bad")
    } else {
        ("edge", "arrow")
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
    let (answered, failed) = (e.answered, e.failed);
    // An edge of Redis, SQL, DNS or TLS calls has no HTTP statuses to list.
    let outcomes = if answered + failed > 0 && c2 + c3 + c4 + c5 == 0 {
        format!("answered {answered} · failed {failed}")
    } else {
        format!("2xx {c2} · 3xx {c3} · 4xx {c4} · 5xx {c5}")
    };
    let (p50, p99) = (e.latency_ns.p50, e.latency_ns.p99);
    let (p50_text, p99_text) = (fmt_ns(p50), fmt_ns(p99));
    let title = format!(
        "<title>{caller} → {callee}: {count} calls ({rate:.2}/s); {outcomes} · no response \
{none}; p50 {p50_text} · p99 {p99_text}</title>"
    );
    let _ = write!(
        edges,
        r#"<g class="{class}" data-caller="{caller}" data-callee="{callee}" data-count="{count}" data-per-second="{rate:.3}" data-2xx="{c2}" data-3xx="{c3}" data-4xx="{c4}" data-5xx="{c5}" data-answered="{answered}" data-failed="{failed}" data-no-response="{none}" data-p50-ns="{p50}" data-p99-ns="{p99}">{title}<path d="{path}" marker-end="url(#{marker})"/></g>"#,
    );
    let (lx, anchor) = if start {
        (b.x0 + 4.0, "start")
    } else {
        ((b.x0 + b.x1) / 2.0, "middle")
    };
    let _ = write!(
        labels,
        r#"<g class="edge-label" data-caller="{caller}" data-callee="{callee}">{title}<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{LABEL_H}" rx="3"/><text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text><text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}" class="sub">{}</text></g>"#,
        b.x0,
        b.y0,
        b.x1 - b.x0,
        b.y0 + 11.5,
        esc(&lines.0),
        b.y0 + 24.5,
        esc(&lines.1),
    );
}

fn node_svg(svg: &mut String, a: &Analysis, l: &Layout, i: usize) {
    let s = &a.services[i];
    let (x, y, h) = (l.x[i], l.y[i], l.h[i]);
    let label = if s.folded > 0 {
        format!("{} other services", s.folded)
    } else {
        s.name.clone()
    };
    let self_share = pct(s.self_ns, s.busy_ns);
    let bar = NODE_W - 20.0;
    let _ = write!(
        svg,
        r#"<g class="node" data-service="{}" data-served="{}" data-made="{}" data-busy-ns="{}" data-self-ns="{}" data-waiting-ns="{}"><title>{}: served {} calls, made {}; busy {} of which waiting on its own calls {} ({:.0}%)</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{h:.1}" rx="8"/><text x="{:.1}" y="{:.1}" class="name">{}</text><text x="{:.1}" y="{:.1}" class="sub">served {} · made {}</text>"#,
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
