//! Send/receive nesting: which inbound request at a service caused an outbound call.
//!
//! A candidate parent of outbound call E (leaving address X) is an inbound exchange R at X that
//! encloses E: R's request arrived before E's request left, and E's response came back before
//! R's response finished (responses may stream, so R's response end, not start, bounds E).
//!
//! Among several candidates (concurrency), the score follows WAP5 / Project5's observation that a
//! service issues a call a short, service-specific processing delay after the last event of the
//! request it works on: the arrival of that request, or the return of that request's previous
//! call. For each candidate R, `gap` = E's start − R's last such event before E started; the
//! likelihood of a gap is an exponential density whose mean is learned from unambiguous cases
//! (exactly one candidate). Confidence = likelihood of the chosen candidate / sum over candidates.

/// Running estimate of a service's processing delay, learned from unambiguous links.
#[derive(Clone, Debug)]
pub struct DelayModel {
    sum_ns: f64,
    count: f64,
}

/// Prior: 1 ms mean delay, worth this many observations.
const PRIOR_MEAN_NS: f64 = 1_000_000.0;
const PRIOR_WEIGHT: f64 = 4.0;
const MIN_MEAN_NS: f64 = 5_000.0;

impl Default for DelayModel {
    fn default() -> Self {
        DelayModel {
            sum_ns: PRIOR_MEAN_NS * PRIOR_WEIGHT,
            count: PRIOR_WEIGHT,
        }
    }
}

impl DelayModel {
    pub fn mean_ns(&self) -> f64 {
        (self.sum_ns / self.count).max(MIN_MEAN_NS)
    }

    /// An unambiguous link's gap.
    pub fn observe(&mut self, gap_ns: u64) {
        self.sum_ns += gap_ns as f64;
        self.count += 1.0;
    }

    /// Relative likelihood of a gap (density up to a constant factor).
    pub fn likelihood(&self, gap_ns: u64) -> f64 {
        (-(gap_ns as f64) / self.mean_ns()).exp()
    }
}

/// Pick among candidate gaps: (index of the best, its confidence in 0..1).
pub fn choose(model: &DelayModel, gaps: &[u64]) -> Option<(usize, f64)> {
    if gaps.is_empty() {
        return None;
    }
    let min_gap = *gaps.iter().min().expect("non-empty");
    // Likelihoods relative to the smallest gap, so exp() never underflows to 0 for all of them.
    let weights: Vec<f64> = gaps.iter().map(|g| model.likelihood(g - min_gap)).collect();
    let total: f64 = weights.iter().sum();
    let (best, w) = weights
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("non-empty");
    Some((best, w / total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_preceding_event_wins_with_confidence_from_the_spread() {
        let m = DelayModel::default();
        let (i, c) = choose(&m, &[5_000_000, 100_000, 9_000_000]).unwrap();
        assert_eq!(i, 1);
        assert!(c > 0.95, "{c}");
        let (_, c) = choose(&m, &[100_000, 110_000]).unwrap();
        assert!(c < 0.6, "near-ties are uncertain: {c}");
        assert_eq!(choose(&m, &[42]).unwrap(), (0, 1.0));
    }

    #[test]
    fn the_model_learns_the_mean_delay() {
        let mut m = DelayModel::default();
        for _ in 0..1000 {
            m.observe(200_000);
        }
        assert!((m.mean_ns() - 200_000.0).abs() < 5_000.0);
    }
}
