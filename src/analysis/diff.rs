//! Two analyses compared (`tapspan diff BEFORE.json AFTER.json`): which endpoints got slower or
//! started failing, and which findings appeared or went away — what a CI job wants to know
//! after a deploy. Works on the `--analysis-json` files, so the captures need not be at hand.
//! Endpoint names and findings came off the wire: [`Diff::render`] escapes their control
//! characters ([`crate::terminal`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::findings::FindingKind;
use super::fmt_ns;
use crate::terminal::escape;

/// Calls an endpoint needs on both sides before its latency is compared.
const MIN_CALLS: u64 = 10;

#[derive(Debug, PartialEq)]
pub struct EndpointChange {
    pub endpoint: String,
    pub count: (u64, u64),
    pub p50: (u64, u64),
    pub p99: (u64, u64),
    pub error_rate: (f64, f64),
    /// A percentile grew by more than the threshold, or errors rose by more than a point.
    pub regressed: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    pub endpoints: Vec<EndpointChange>,
    pub only_before: Vec<String>,
    pub only_after: Vec<String>,
    pub findings_gone: Vec<String>,
    pub findings_new: Vec<String>,
}

impl Diff {
    pub fn regressions(&self) -> usize {
        self.endpoints.iter().filter(|e| e.regressed).count() + self.findings_new.len()
    }
}

fn endpoints(a: &Value) -> BTreeMap<String, &Value> {
    a["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = format!(
                "{} {} {}",
                e["service"].as_str()?,
                e["method"].as_str()?,
                e["route"].as_str()?
            );
            Some((name, e))
        })
        .collect()
}

fn findings(a: &Value) -> Vec<String> {
    let mut v: Vec<String> = a["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let (kind, context, target) = (
                serde_json::from_value::<FindingKind>(f["kind"].clone()).ok()?,
                f["context"].as_str()?,
                f["target"].as_str()?,
            );
            // Named as the report and --summary name it.
            let sequential = kind == FindingKind::SequentialCalls;
            let kind = kind.label();
            // A sequential chain's exact calls vary run to run; its context identifies it.
            Some(if context == target || sequential {
                format!("[{kind}] {context}")
            } else {
                format!("[{kind}] {context} → {target}")
            })
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Compares two `--analysis-json` documents; `threshold` is the relative growth of p50 or p99
/// (0.2 = 20%) that counts as a regression.
pub fn diff(before: &Value, after: &Value, threshold: f64) -> Diff {
    let (b, a) = (endpoints(before), endpoints(after));
    let mut d = Diff::default();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let lat = |v: &Value, k: &str| v["latency_ns"][k].as_u64().unwrap_or(0);
    for (name, eb) in &b {
        let Some(ea) = a.get(name) else {
            d.only_before.push(name.clone());
            continue;
        };
        let rate = |v: &Value| n(v, "errors") as f64 / n(v, "count").max(1) as f64;
        let grew = |k: &str| lat(ea, k) as f64 > lat(eb, k) as f64 * (1.0 + threshold);
        let error_rate = (rate(eb), rate(ea));
        // Percentiles of a handful of calls are noise.
        let enough = n(eb, "count") >= MIN_CALLS && n(ea, "count") >= MIN_CALLS;
        d.endpoints.push(EndpointChange {
            endpoint: name.clone(),
            count: (n(eb, "count"), n(ea, "count")),
            p50: (lat(eb, "p50"), lat(ea, "p50")),
            p99: (lat(eb, "p99"), lat(ea, "p99")),
            error_rate,
            regressed: (enough && (grew("p50") || grew("p99")))
                || error_rate.1 > error_rate.0 + 0.01,
        });
    }
    d.only_after = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    let (fb, fa) = (findings(before), findings(after));
    d.findings_gone = fb.iter().filter(|f| !fa.contains(f)).cloned().collect();
    d.findings_new = fa.iter().filter(|f| !fb.contains(f)).cloned().collect();
    d
}

fn change(b: u64, a: u64) -> String {
    if b == 0 {
        return "new".into();
    }
    format!("{:+.0}%", 100.0 * (a as f64 - b as f64) / b as f64)
}

impl Diff {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<48} {:>13} {:>21} {:>6} {:>21} {:>6} {:>13}",
            "endpoint", "count", "p50", "", "p99", "", "errors"
        );
        for e in &self.endpoints {
            let _ = writeln!(
                s,
                "{:<48} {:>6}→{:<6} {:>10}→{:<10} {:>6} {:>10}→{:<10} {:>6} {:>5.1}→{:<5.1}%{}",
                escape(&e.endpoint),
                e.count.0,
                e.count.1,
                fmt_ns(e.p50.0),
                fmt_ns(e.p50.1),
                change(e.p50.0, e.p50.1),
                fmt_ns(e.p99.0),
                fmt_ns(e.p99.1),
                change(e.p99.0, e.p99.1),
                100.0 * e.error_rate.0,
                100.0 * e.error_rate.1,
                if e.regressed { "  REGRESSED" } else { "" }
            );
        }
        for e in &self.only_after {
            let _ = writeln!(s, "{:<48} new endpoint", escape(e));
        }
        for e in &self.only_before {
            let _ = writeln!(s, "{:<48} gone", escape(e));
        }
        for f in &self.findings_new {
            let _ = writeln!(s, "new finding: {}", escape(f));
        }
        for f in &self.findings_gone {
            let _ = writeln!(s, "finding gone: {}", escape(f));
        }
        let _ = writeln!(s, "{} regressions", self.regressions());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_names_carry_no_control_characters() {
        let d = Diff {
            only_after: vec!["svc GET /a\x1b[2J".into()],
            only_before: vec!["svc GET /b\r".into()],
            findings_new: vec!["slow /c\x1b]0;x\x07".into()],
            ..Diff::default()
        };
        let text = d.render();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("svc GET /a\\x1b[2J "), "{text}");
        assert!(text.contains("svc GET /b\\x0d "), "{text}");
        assert!(
            text.contains("new finding: slow /c\\x1b]0;x\\x07\n"),
            "{text}"
        );
    }
}
