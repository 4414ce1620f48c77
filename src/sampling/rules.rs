//! Per-route sampling rules (`--sampling-rules FILE`, TOML), in the manner of AWS X-Ray's: each
//! rule matches a trace's root request by service, method and route, and says how much of what
//! it matches to keep; the first rule that matches wins, and a default rule takes the rest.
//!
//! ```toml
//! [[rule]]
//! name = "checkout"          # optional: how the summary counts it (default "rule N")
//! service = "front"          # glob on the service that received the root request; default *
//! method = "POST"            # exact, any case; default *
//! route = "/checkout/*"      # glob on the root's http.route or url.path; default *
//! reservoir = 2              # traces per second of capture time kept besides the rate
//! rate = 0.5                 # share of the matched traces kept
//! keep_slower_than = "800ms" # tail: keep a trace in which such a request took longer
//!
//! [default]                  # traces no rule matches (else --sample, else all of them)
//! reservoir = 1
//! rate = 0.01
//! ```
//!
//! Globs: `*` is any run of characters (`/` included), `?` one character; anything else is
//! itself. A rule's rate is consistent ([`super::threshold`]): every tap keeps the same traces.
//! Its reservoir is not (each tap counts its own seconds): it keeps the first traces of each
//! second that the rate dropped, so that rare routes are seen at all; such traces carry no
//! threshold, their adjusted count being unknown.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::threshold::Threshold;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid sampling rules: {message}")]
    Toml { path: String, message: String },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
}

/// How much of what a rule matches is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub rate: f64,
    pub threshold: Threshold,
    /// Traces per second (capture time) kept besides the rate.
    pub reservoir: u32,
}

impl Action {
    pub fn rate(rate: f64) -> Self {
        Action {
            rate,
            threshold: Threshold::for_rate(rate),
            reservoir: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub service: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub action: Action,
    /// Keep any trace in which a request this rule matches lasted longer than this.
    pub keep_slower_than_ns: Option<u64>,
}

/// The parts of a request a rule looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    pub service: &'a str,
    pub method: Option<&'a str>,
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
}

impl Rule {
    pub fn matches(&self, r: &Request<'_>) -> bool {
        let service = self.service.as_deref().is_none_or(|g| glob(g, r.service));
        let method = self
            .method
            .as_deref()
            .is_none_or(|m| m == "*" || r.method.is_some_and(|rm| rm.eq_ignore_ascii_case(m)));
        let route = self.route.as_deref().is_none_or(|g| {
            g == "*" || r.route.is_some_and(|x| glob(g, x)) || r.path.is_some_and(|x| glob(g, x))
        });
        service && method && route
    }
}

/// The rules of a file, and its default rule if it has one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub default: Option<Action>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    default: Option<ActionSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Option<String>,
    service: Option<String>,
    method: Option<String>,
    route: Option<String>,
    #[serde(default)]
    reservoir: u32,
    rate: f64,
    keep_slower_than: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    #[serde(default)]
    reservoir: u32,
    rate: f64,
}

fn action(rate: f64, reservoir: u32, path: &str, whose: &str) -> Result<Action, RulesError> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(RulesError::Invalid {
            path: path.to_string(),
            what: format!("{whose}: rate {rate} is not between 0 and 1"),
        });
    }
    Ok(Action {
        reservoir,
        ..Action::rate(rate)
    })
}

impl Rules {
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, RulesError> {
        let file: File = toml::from_str(text).map_err(|e| RulesError::Toml {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, spec) in file.rule.into_iter().enumerate() {
            let name = spec.name.unwrap_or_else(|| format!("rule {}", i + 1));
            let keep_slower_than_ns = match &spec.keep_slower_than {
                None => None,
                Some(text) => Some(
                    parse_duration(text)
                        .map_err(|what| RulesError::Invalid {
                            path: path.to_string(),
                            what: format!("{name}: keep_slower_than: {what}"),
                        })?
                        .as_nanos()
                        .min(u64::MAX as u128) as u64,
                ),
            };
            let any = |v: Option<String>| v.filter(|s| s != "*");
            rules.push(Rule {
                action: action(spec.rate, spec.reservoir, path, &name)?,
                name,
                service: any(spec.service),
                method: any(spec.method),
                route: any(spec.route),
                keep_slower_than_ns,
            });
        }
        let default = match file.default {
            Some(d) => Some(action(d.rate, d.reservoir, path, "default")?),
            None => None,
        };
        Ok(Rules { rules, default })
    }
}

/// A duration with a unit: `250us`, `20ms`, `1.5s`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (value, unit) = crate::units::number_and_unit(s)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 250ms, 1.5s)"))?;
    let seconds = match unit {
        "" | "s" => 1.0,
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ns, us, ms, s, m)")),
    };
    Duration::try_from_secs_f64(value * seconds).map_err(|_| format!("{s:?} is too large"))
}

/// Whether `text` matches `pattern`: `*` any run of characters, `?` one character. Linear in
/// practice and O(|pattern| · |text|) at worst (one backtrack point: the last star).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/checkout/*", "/checkout/{order_id}"));
        assert!(glob("/checkout/*", "/checkout/"));
        assert!(!glob("/checkout/*", "/checkout"));
        assert!(glob("*", ""));
        assert!(glob("/a/*/c", "/a/b/x/c"));
        assert!(!glob("/a/*/c", "/a/b/x/d"));
        assert!(glob("/u?ers", "/users"));
        assert!(glob("*sku*", "/stock/sku-17"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn a_file_parses_into_rules_in_order() {
        let rules = Rules::parse(
            r#"
            [[rule]]
            name = "checkout"
            service = "front"
            route = "/checkout/*"
            reservoir = 2
            rate = 1.0
            keep_slower_than = "800ms"

            [[rule]]
            method = "post"
            rate = 0.0

            [default]
            rate = 0.05
            "#,
            "r.toml",
        )
        .unwrap();
        assert_eq!(rules.rules.len(), 2);
        assert_eq!(rules.rules[0].name, "checkout");
        assert_eq!(rules.rules[0].action.reservoir, 2);
        assert_eq!(rules.rules[0].keep_slower_than_ns, Some(800_000_000));
        assert_eq!(rules.rules[1].name, "rule 2");
        assert_eq!(rules.default, Some(Action::rate(0.05)));
        let req = |service, method, route| Request {
            service,
            method: Some(method),
            route: Some(route),
            path: None,
        };
        assert!(rules.rules[0].matches(&req("front", "GET", "/checkout/{id}")));
        assert!(!rules.rules[0].matches(&req("users", "GET", "/checkout/{id}")));
        assert!(rules.rules[1].matches(&req("users", "POST", "/quote")));
        assert!(!rules.rules[1].matches(&req("users", "GET", "/quote")));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text| Rules::parse(text, "r.toml").unwrap_err().to_string();
        assert!(err("[[rule]]\nrate = 1.5\n").contains("between 0 and 1"));
        assert!(err("[[rule]]\nroute = \"/a\"\n").contains("rate"));
        assert!(err("[[rule]]\nrate = 1\nrote = \"/a\"\n").contains("rote"));
        assert!(err("[[rule]]\nrate = 1\nkeep_slower_than = \"soon\"\n").contains("soon"));
    }
}
