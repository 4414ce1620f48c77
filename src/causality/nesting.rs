//! The processing-delay model behind send/receive nesting.
//!
//! A candidate parent of outbound call E (leaving address X) is an inbound exchange R at X that
//! encloses E: R's request arrived before E's request left, and E's response came back before
//! R's response finished (responses may stream, so R's response end, not start, bounds E).
//! Among several candidates, WAP5 / Project5's observation decides: a service issues a call a
//! short, service-specific processing delay after the last event of the request it works on (its
//! arrival, or the return of its previous call), and answers a processing delay after its last
//! call returned. [`DelayModel`] is that delay's distribution, learned per service from the data
//! ([`super::assign`] does the assignment).

/// Distribution of a service's processing delays: before any fit a scale-free prior (every
/// octave from 1 µs to 17 s equally likely, so no gap is favoured for being short); once fitted
/// to an assignment, a smoothed histogram over 1/8-octave bins.
#[derive(Clone, Debug, Default)]
pub struct DelayModel {
    histogram: Option<Vec<f64>>,
}

/// Delay histogram: bins of 1/8 octave from 2^10 ns (1 µs) to 2^34 ns (17 s).
const BINS_PER_OCTAVE: f64 = 8.0;
const FIRST_OCTAVE: f64 = 10.0;
const BINS: usize = 24 * 8;
/// Share of probability spread evenly over all bins, so that no delay is impossible.
const UNIFORM_SHARE: f64 = 0.02;

fn bin_of(gap_ns: u64) -> usize {
    let x = ((gap_ns.max(1) as f64).log2() - FIRST_OCTAVE) * BINS_PER_OCTAVE;
    x.clamp(0.0, (BINS - 1) as f64) as usize
}

fn bin_width_ns(bin: usize) -> f64 {
    let lo = 2f64.powf(FIRST_OCTAVE + bin as f64 / BINS_PER_OCTAVE);
    lo * (2f64.powf(1.0 / BINS_PER_OCTAVE) - 1.0)
}

impl DelayModel {
    /// Log density (per nanosecond) of a processing delay.
    pub fn ln_density(&self, gap_ns: u64) -> f64 {
        let b = bin_of(gap_ns);
        let mass = self.histogram.as_ref().map_or(1.0 / BINS as f64, |h| h[b]);
        (mass / bin_width_ns(b)).ln()
    }

    /// The delays of a whole assignment, smoothed over ±2 bins.
    pub fn fitted(gaps: &[u64]) -> Self {
        if gaps.is_empty() {
            return DelayModel::default();
        }
        let mut counts = vec![0f64; BINS];
        for g in gaps {
            counts[bin_of(*g)] += 1.0;
        }
        let kernel = [0.1, 0.2, 0.4, 0.2, 0.1];
        let mut smooth = vec![0f64; BINS];
        for (b, c) in counts.iter().enumerate() {
            for (k, w) in kernel.iter().enumerate() {
                let t = b as i64 + k as i64 - 2;
                if (0..BINS as i64).contains(&t) {
                    smooth[t as usize] += c * w;
                }
            }
        }
        let n = gaps.len() as f64;
        let uniform = UNIFORM_SHARE / BINS as f64;
        DelayModel {
            histogram: Some(
                smooth
                    .iter()
                    .map(|c| (1.0 - UNIFORM_SHARE) * c / n + uniform)
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_favours_no_scale_and_the_fit_finds_the_delays() {
        let prior = DelayModel::default();
        // Scale-free: equal mass per octave, so density falls as 1/gap.
        let ratio = (prior.ln_density(100_000) - prior.ln_density(200_000)).exp();
        assert!((ratio - 2.0).abs() < 0.3, "{ratio}");
        let gaps: Vec<u64> = (0..500).map(|i| 280_000 + (i % 40) * 1_000).collect();
        let fitted = DelayModel::fitted(&gaps);
        assert!(fitted.ln_density(300_000) > fitted.ln_density(80_000) + 2.0);
        assert!(fitted.ln_density(300_000) > fitted.ln_density(3_000_000) + 2.0);
    }
}
