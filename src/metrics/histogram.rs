//! A duration histogram with OpenTelemetry's default HTTP duration buckets, kept in integer
//! nanoseconds so that counts and sums are exact and do not depend on the order of samples.
//!
//! Contract: [`Histogram::record`] costs one pass over 14 bounds and never allocates; counts
//! saturate rather than wrap; the bucket of a duration is the first bound it does not exceed
//! (Prometheus `le`), the last bucket (`+Inf`) takes the rest.

/// Upper bounds of the buckets, seconds: OpenTelemetry's `http.server.request.duration` and
/// `http.client.request.duration` advice.
pub const BOUNDS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The same bounds in nanoseconds (compared exactly).
const BOUNDS_NS: [u64; 14] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    7_500_000_000,
    10_000_000_000,
];

/// Counts per bucket (not cumulative; the last is `+Inf`), the sum and the count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BOUNDS_NS.len() + 1],
    sum_ns: u128,
    count: u64,
}

impl Histogram {
    /// One duration, nanoseconds.
    pub fn record(&mut self, duration_ns: u64) {
        let i = BOUNDS_NS
            .iter()
            .position(|&b| duration_ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(duration_ns.into());
        self.count = self.count.saturating_add(1);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the durations, nanoseconds.
    pub fn sum_ns(&self) -> u128 {
        self.sum_ns
    }

    /// Sum of the durations in seconds, as exact decimal text (`1.250000000`).
    pub fn sum_seconds_text(&self) -> String {
        format!(
            "{}.{:09}",
            self.sum_ns / 1_000_000_000,
            self.sum_ns % 1_000_000_000
        )
    }

    /// Counts per bucket, not cumulative: one per bound, then `+Inf`.
    pub fn bucket_counts(&self) -> &[u64] {
        &self.buckets
    }

    /// Cumulative counts: `(bound, count of samples ≤ bound)`, ending with `(None, count)`
    /// for `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let bounds = BOUNDS_SECONDS.iter().map(|&b| Some(b)).chain([None]);
        bounds.zip(self.buckets.iter()).scan(0u64, |acc, (b, &n)| {
            *acc = acc.saturating_add(n);
            Some((b, *acc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree_and_le_is_inclusive() {
        for (s, ns) in BOUNDS_SECONDS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        let mut h = Histogram::default();
        for d in [
            0,
            5_000_000,
            5_000_001,
            10_000_000_000,
            10_000_000_001,
            u64::MAX,
        ] {
            h.record(d);
        }
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c[0], (Some(0.005), 2));
        assert_eq!(c[1], (Some(0.01), 3));
        assert_eq!(c[13], (Some(10.0), 4));
        assert_eq!(c[14], (None, 6));
        assert_eq!(h.count(), 6);
        let mut one = Histogram::default();
        one.record(1_250_000_000);
        assert_eq!(one.sum_seconds_text(), "1.250000000");
    }
}
