//! The HTML report: one self-contained file (inline CSS, SVG and a little JS; nothing fetched),
//! laid out as findings first (what to fix), then the service map, the endpoint table with
//! latency histograms, waterfalls of sampled requests, and calling-context trees.
//! Its size does not grow with the capture: waterfalls are sampled and the rest is aggregated.

use std::fmt::Write as _;

use crate::analysis::{fmt_ns, Analysis, ContextNode};

use super::svg;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn utc(unix_nano: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm), to the second.
    let secs = (unix_nano / 1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn render(a: &Analysis) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("tapspan report — {}", a.inputs.join(", "));
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let span_ns = a.last_unix_nano.saturating_sub(a.first_unix_nano);
    let _ = write!(
        h,
        "<header><h1>Where the time goes</h1><p class=\"meta\">{} · {} to {} ({}) · <b>{}</b> \
calls in <b>{}</b> requests · {} services · {}</p>{}</header>",
        esc(&a.inputs.join(", ")),
        utc(a.first_unix_nano),
        utc(a.last_unix_nano),
        fmt_ns(span_ns),
        a.calls,
        a.requests,
        a.services.len(),
        esc(&a.generator),
        if a.calls_left_out > 0 {
            format!(
                "<p class=\"warn\" data-left-out=\"{}\">{} later calls were not analysed \
(the cap is --max-analysed-calls {}).</p>",
                a.calls_left_out, a.calls_left_out, a.calls
            )
        } else {
            String::new()
        }
    );
    h.push_str("<nav><a href=\"#findings\">Findings</a><a href=\"#map\">Service map</a><a href=\"#endpoints\">Endpoints</a><a href=\"#waterfalls\">Waterfalls</a><a href=\"#contexts\">Calling contexts</a></nav><main>");
    findings(&mut h, a);
    let _ = write!(
        h,
        "<section id=\"map\"><h2>Service map</h2><p class=\"hint\">Columns by call depth. Edges: \
calls, rate, share failed (5xx or no response), latency p50 · p99. Nodes: calls served and \
made; the bar splits time serving into its own work (dark) and waiting on its own calls \
(light).</p><div class=\"scroll\">{}</div></section>",
        svg::service_map(a)
    );
    endpoints(&mut h, a);
    waterfalls(&mut h, a);
    contexts(&mut h, a);
    let _ = write!(h, "</main><script>{SCRIPT}</script></body></html>");
    h
}

fn findings(h: &mut String, a: &Analysis) {
    let _ = write!(
        h,
        "<section id=\"findings\"><h2>Findings <span class=\"count\">{}</span></h2>",
        a.findings.len() as u64 + a.findings_left_out
    );
    if a.findings.is_empty() {
        h.push_str("<p class=\"none\">No performance problem found: no N+1 or sequential calls, repeated GETs, retries, errors, timeouts, slow first bytes or transfers, or large uncompressed bodies.</p></section>");
        return;
    }
    let drawn = |t: &String| a.waterfalls.iter().any(|w| &w.trace_id == t);
    if a.findings
        .iter()
        .flat_map(|f| &f.trace_ids)
        .any(|t| !drawn(t))
    {
        h.push_str(
            "<p class=\"hint\" id=\"no-waterfall\">A linked trace id opens its waterfall. \
The others (dotted) have none: only the slowest requests, those with a failed call and a \
typical request per endpoint are drawn. Double-click one to select its full id, and find its \
calls by <code>trace_id</code> in the spans (<code>tapspan replay CAPTURE -o \
spans.jsonl</code>).</p>",
        );
    }
    h.push_str("<ol class=\"findings\">");
    for f in &a.findings {
        // The whole id is in the text (the page shows its start), so selecting it copies it.
        let traces: String = f
            .trace_ids
            .iter()
            .map(|t| {
                let (d, t) = (drawn(t), esc(t));
                if d {
                    format!(
                        "<a class=\"trace\" href=\"#trace-{t}\" title=\"trace {t}: open its \
waterfall\">{t}</a>"
                    )
                } else {
                    format!(
                        "<code class=\"trace\" title=\"trace {t}: no waterfall (only the \
slowest, failing and typical requests get one); find its spans by trace_id\">{t}</code>"
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            h,
            "<li class=\"finding\" data-kind=\"{}\" data-impact-ns=\"{}\" data-occurrences=\"{}\" \
data-calls=\"{}\"><span class=\"kind\">{}</span> <b>{}</b><div class=\"impact\">costs {} over \
the capture · {} occurrences · {} calls</div><div class=\"detail\">{}</div><div \
class=\"traces\">traces: {}</div></li>",
            serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            f.impact_ns,
            f.occurrences,
            f.calls,
            esc(f.kind.label()),
            esc(&f.title),
            fmt_ns(f.impact_ns),
            f.occurrences,
            f.calls,
            esc(&f.detail),
            traces
        );
    }
    h.push_str("</ol>");
    h.push_str(&left_out(
        a.findings_left_out,
        "less costly findings are not shown",
    ));
    h.push_str("</section>");
}

/// A right-aligned cell whose `data-v` is the number the table sorts by.
fn number_cell(h: &mut String, value: u64, text: &str) {
    let _ = write!(h, "<td class=\"n\" data-v=\"{value}\">{text}</td>");
}

/// A duration's cell, its unit set smaller so that the table fits a narrow window.
fn time_cell(h: &mut String, ns: u64) {
    let text = fmt_ns(ns);
    match text.split_once(' ') {
        Some((n, unit)) => number_cell(h, ns, &format!("{n}<span class=\"u\"> {unit}</span>")),
        None => number_cell(h, ns, &text),
    }
}

/// A line saying how much a capped list left out, if anything.
fn left_out(n: u64, what: &str) -> String {
    if n == 0 {
        return String::new();
    }
    format!("<p class=\"hint\">{n} {what}.</p>")
}

fn endpoints(h: &mut String, a: &Analysis) {
    h.push_str(
        "<section id=\"endpoints\"><h2>Endpoints</h2><p class=\"hint\">Server side of every \
call, per (service, method, route). Click a heading to sort. Percentiles are nearest rank over \
every call, from a sketch within 1 % (the maximum is exact); histogram buckets are 5 per decade.</p><div class=\"scroll\"><table \
class=\"sortable endpoints\"><thead><tr><th>service</th><th>endpoint</th>\
<th class=\"n\">count</th><th class=\"n\">errors</th><th class=\"n\">p50</th><th \
class=\"n\">p75</th><th class=\"n\">p90</th><th class=\"n\">p99</th><th class=\"n\">p99.9</th>\
<th class=\"n\">max</th><th class=\"n\" title=\"time to the first byte of the response, \
median\">first byte p50</th><th class=\"n\" title=\"request bytes, all calls\">req bytes</th>\
<th class=\"n\" title=\"response bytes, all calls\">resp bytes</th><th title=\"latency \
histogram, 5 buckets per decade\">histogram</th></tr></thead><tbody>",
    );
    for e in &a.endpoints {
        let l = &e.latency_ns;
        let (service, method, route) = (esc(&e.service), esc(&e.method), esc(&e.route));
        let _ = write!(
            h,
            "<tr data-service=\"{service}\" data-method=\"{method}\" data-route=\"{route}\" \
data-count=\"{}\" data-errors=\"{}\" data-p50-ns=\"{}\" data-p75-ns=\"{}\" data-p90-ns=\"{}\" \
data-p99-ns=\"{}\" data-p999-ns=\"{}\" data-max-ns=\"{}\"><td class=\"service\">{}</td>\
<td class=\"route\"><span class=\"method\">{method}</span>&nbsp;{}</td>",
            e.count,
            e.errors,
            l.p50,
            l.p75,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            // Narrow windows may break a service after its host, a route after a slash.
            service.replace(':', ":<wbr>"),
            route
                .char_indices()
                .map(|(i, c)| match c {
                    '/' if i > 0 => "<wbr>/".to_string(),
                    c => c.to_string(),
                })
                .collect::<String>(),
        );
        number_cell(h, e.count, &e.count.to_string());
        number_cell(h, e.errors, &e.errors.to_string());
        for v in [l.p50, l.p75, l.p90, l.p99, l.p999, l.max] {
            time_cell(h, v);
        }
        match &e.ttfb_ns {
            Some(t) => time_cell(h, t.p50),
            None => h.push_str("<td class=\"n\" data-v=\"-1\">–</td>"),
        }
        number_cell(h, e.request_bytes, &e.request_bytes.to_string());
        number_cell(h, e.response_bytes, &e.response_bytes.to_string());
        let _ = write!(
            h,
            "<td class=\"hist\">{}</td></tr>",
            svg::histogram(&e.histogram)
        );
    }
    h.push_str("</tbody></table></div>");
    h.push_str(&left_out(
        a.endpoints_left_out,
        "less called endpoints are not listed",
    ));
    h.push_str("</section>");
}

fn waterfalls(h: &mut String, a: &Analysis) {
    let _ = write!(
        h,
        "<section id=\"waterfalls\"><h2>Waterfalls <span class=\"count\">{}</span></h2><p \
class=\"hint\">The slowest requests, those with a failed call, and a typical (median) request \
of each endpoint. Bars: <span class=\"key send\"></span> sending the request, <span \
class=\"key wait\"></span> waiting for the first byte, <span class=\"key recv\"></span> \
receiving the response (a phase too short to see is drawn 4 px wide; hover a bar for its \
times); the critical path is outlined in red and its labels are bold.</p>",
        a.waterfalls.len()
    );
    for w in &a.waterfalls {
        let _ = write!(
            h,
            "<details class=\"waterfall\" id=\"trace-{}\" data-trace=\"{}\" data-reason=\"{}\" \
data-rows=\"{}\" data-duration-ns=\"{}\"{}><summary><span class=\"kind\">{}</span> {} · {} · \
{} calls · trace <code>{}</code></summary><div class=\"scroll\">{}</div>{}</details>",
            esc(&w.trace_id),
            esc(&w.trace_id),
            w.reason,
            w.rows.len(),
            w.duration_ns,
            if w.reason == "slowest" && std::ptr::eq(w, &a.waterfalls[0]) {
                " open"
            } else {
                ""
            },
            w.reason,
            esc(&w.root),
            fmt_ns(w.duration_ns),
            w.calls,
            esc(&w.trace_id),
            svg::waterfall(w),
            left_out(w.rows_left_out as u64, "more calls not drawn")
        );
    }
    h.push_str("</section>");
}

fn contexts(h: &mut String, a: &Analysis) {
    h.push_str(
        "<section id=\"contexts\"><h2>Calling contexts</h2><p class=\"hint\">For each endpoint \
that starts requests: every call path below it, aggregated over all its requests — calls, \
requests reaching it, mean and total time.</p>",
    );
    for root in &a.calling_contexts {
        h.push_str("<ul class=\"cct\">");
        context_node(h, root, root.requests, 0);
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

fn context_node(h: &mut String, n: &ContextNode, root_requests: u64, depth: usize) {
    let per_request = n.count as f64 / root_requests.max(1) as f64;
    let line = format!(
        "<b>{}</b> <span class=\"sub\">{} calls in {} requests ({per_request:.1} per request) · \
mean {} · total {}</span>",
        esc(&n.name),
        n.count,
        n.requests,
        fmt_ns(n.total_ns / n.count.max(1)),
        fmt_ns(n.total_ns)
    );
    let _ = write!(
        h,
        "<li data-name=\"{}\" data-count=\"{}\"",
        esc(&n.name),
        n.count
    );
    // A leaf has nothing to open: a plain line, without the disclosure triangle.
    if n.children.is_empty() {
        let _ = write!(h, " class=\"leaf\"><div class=\"line\">{line}</div></li>");
        return;
    }
    let _ = write!(
        h,
        "><details{}><summary>{line}</summary><ul>",
        if depth < 2 { " open" } else { "" }
    );
    for c in &n.children {
        context_node(h, c, root_requests, depth + 1);
    }
    h.push_str("</ul></details></li>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000_000_000), "2023-11-14 22:13:20 UTC");
    }
}
