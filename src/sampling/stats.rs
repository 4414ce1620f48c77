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

impl SamplingStats {
    pub fn kept(&self) -> u64 {
        self.kept_head
            + self.kept_default_reservoir
            + self.kept_errors
            + self.kept_slow
            + self
                .kept_by_rule
                .iter()
                .map(|(_, rate, reservoir)| rate + reservoir)
                .sum::<u64>()
    }

    /// The `--summary` line; `forced` is the causality builder's count of exchanges decided
    /// early at its memory cap.
    pub fn render(&self, forced: u64) -> String {
        let mut why = Vec::new();
        let mut add = |what: String, n: u64| {
            if n > 0 {
                why.push(format!("{what} {n}"));
            }
        };
        add("head".into(), self.kept_head);
        add("default reservoir".into(), self.kept_default_reservoir);
        for (name, rate, reservoir) in &self.kept_by_rule {
            add(format!("rule {name:?}"), *rate);
            add(format!("rule {name:?} reservoir"), *reservoir);
        }
        add("errors".into(), self.kept_errors);
        add("slow".into(), self.kept_slow);
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
