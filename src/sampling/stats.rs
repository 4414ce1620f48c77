//! What sampling decided, counted: traces by what kept them, spans written and dropped, and
//! the decisions made at a bound. Rendered on the `--summary` lines here; `live::stats` serves
//! the same counters as Prometheus metrics.

use std::fmt::Write as _;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SamplingStats {
    /// Traces decided (a trace in pieces counts once, unless a piece came after its decision
    /// was forgotten).
    pub traces: u64,
    /// Kept by the default rate.
    pub kept_head: u64,
    pub kept_default_reservoir: u64,
    /// Per rule: kept by its rate, by its reservoir.
    pub kept_by_rule: Vec<(String, u64, u64)>,
    pub kept_errors: u64,
    pub kept_slow: u64,
    pub dropped: u64,
    pub spans_kept: u64,
    pub spans_dropped: u64,
    /// Traces that may come in pieces and waited the full `wait_ns` for more.
    pub waited: u64,
    /// Traces decided before their wait was over, because held spans reached their cap.
    pub decided_at_cap: u64,
    /// Pieces that came after their trace had been decided (they followed the decision).
    pub late_pieces: u64,
    pub peak_held_spans: u64,
}

/// What kept a trace: one of [`SamplingStats`]' kept counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept<'a> {
    Head,
    DefaultReservoir,
    Rule(&'a str),
    RuleReservoir(&'a str),
    Errors,
    Slow,
}

impl Kept<'_> {
    /// How readers name it; a rule's name quoted (`rule "checkout"`) or as it is.
    pub fn label(&self, quote_rule: bool) -> String {
        let rule = |name: &str| match quote_rule {
            true => format!("rule {name:?}"),
            false => format!("rule {name}"),
        };
        match self {
            Kept::Head => "head".into(),
            Kept::DefaultReservoir => "default reservoir".into(),
            Kept::Rule(name) => rule(name),
            Kept::RuleReservoir(name) => rule(name) + " reservoir",
            Kept::Errors => "errors".into(),
            Kept::Slow => "slow".into(),
        }
    }
}

impl SamplingStats {
    /// Traces kept, by what kept them: the one list `--summary`, the live stats and
    /// Prometheus walk.
    pub fn kept_by(&self) -> Vec<(Kept<'_>, u64)> {
        let mut kept = vec![
            (Kept::Head, self.kept_head),
            (Kept::DefaultReservoir, self.kept_default_reservoir),
        ];
        for (name, rate, reservoir) in &self.kept_by_rule {
            kept.push((Kept::Rule(name), *rate));
            kept.push((Kept::RuleReservoir(name), *reservoir));
        }
        kept.push((Kept::Errors, self.kept_errors));
        kept.push((Kept::Slow, self.kept_slow));
        kept
    }

    pub fn kept(&self) -> u64 {
        self.kept_by().iter().map(|(_, n)| n).sum()
    }

    /// The `--summary` line; `forced` is the causality builder's count of exchanges decided
    /// early at its memory cap.
    pub fn render(&self, forced: u64) -> String {
        let why: Vec<String> = self
            .kept_by()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.label(true)))
            .collect();
        let mut line = format!(
            "sampling: traces {}, kept {} ({}), dropped {}; spans written {} of {}",
            self.traces,
            self.kept(),
            if why.is_empty() {
                "none".to_string()
            } else {
                why.join(", ")
            },
            self.dropped,
            self.spans_kept,
            self.spans_kept + self.spans_dropped,
        );
        let _ = write!(
            line,
            "\nsampling decided at a bound: traces that waited the full window for more pieces \
{}, decided early at the held-spans cap {} (peak held {} spans), pieces after their trace's \
decision {}; exchanges decided early by causality at its memory cap {}",
            self.waited, self.decided_at_cap, self.peak_held_spans, self.late_pieces, forced
        );
        line.push('\n');
        line
    }
}
