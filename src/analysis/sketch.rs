//! A fixed-size latency sketch: counts in log-linear buckets (HdrHistogram's layout), so that the
//! percentiles of any number of values cost a bounded amount of memory.
//!
//! Values below 128 are counted exactly. Above, each power of two is split into 64 equal
//! buckets, and a bucket is reported as its midpoint: a bucket `[lo, lo + w)` has `w <= lo / 64`,
//! so the reported value is within `w / 2 <= lo / 128` of any value in it — a relative error of
//! at most 1/128 (0.78 %), below the 1 % ([`RELATIVE_ERROR`]) the analysis promises. The maximum,
//! the count and the mean are exact; a reported percentile is also clamped to the exact minimum
//! and maximum.
//!
//! Buckets are held densely from the lowest to the highest one in use: at most [`MAX_BUCKETS`]
//! (3 776, about 30 KB) for values spanning the whole `u64` range, about 800 (6.5 KB) for
//! latencies from 100 µs to 1 s. Never more, whatever the number of values.

use super::stats::Percentiles;

/// The promised bound on a percentile's relative error; the layout gives 1/128.
pub const RELATIVE_ERROR: f64 = 0.01;

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket.
const EXACT: u64 = 2 * SUB;
/// Buckets for the whole `u64` range.
pub const MAX_BUCKETS: usize = index_of(u64::MAX) + 1;

const fn index_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let shift = e - SUB_BITS;
    (EXACT + (e - SUB_BITS - 1) as u64 * SUB + ((v >> shift) & (SUB - 1))) as usize
}

/// The value a bucket stands for: its midpoint (an exact bucket stands for itself).
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let e = (i - EXACT) / SUB + u64::from(SUB_BITS) + 1;
    let shift = e - u64::from(SUB_BITS);
    let lo = (SUB + (i - EXACT) % SUB) << shift;
    lo + (1 << (shift - 1))
}

#[derive(Clone, Debug, Default)]
pub struct Sketch {
    /// Counts of buckets `offset..offset + counts.len()`.
    counts: Vec<u64>,
    offset: usize,
    n: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Sketch {
    /// The count of bucket `i`, the held range grown to include it.
    fn slot(&mut self, i: usize) -> &mut u64 {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(0);
        } else if i < self.offset {
            let more = self.offset - i;
            self.counts.splice(0..0, std::iter::repeat_n(0, more));
            self.offset = i;
        } else if i >= self.offset + self.counts.len() {
            self.counts.resize(i - self.offset + 1, 0);
        }
        &mut self.counts[i - self.offset]
    }

    pub fn add(&mut self, v: u64) {
        let c = self.slot(index_of(v));
        *c = c.saturating_add(1);
        self.min = if self.n == 0 { v } else { self.min.min(v) };
        self.max = self.max.max(v);
        self.n += 1;
        self.sum += u128::from(v);
    }

    /// Adds every value `other` holds.
    pub fn merge(&mut self, other: &Sketch) {
        if other.n == 0 {
            return;
        }
        for (k, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                let s = self.slot(other.offset + k);
                *s = s.saturating_add(c);
            }
        }
        self.min = if self.n == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.n += other.n;
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// Buckets held: the sketch's memory, in counts of 8 bytes.
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }

    /// Nearest rank: the value at rank `ceil(q n)`, within [`RELATIVE_ERROR`].
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (k, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return value_of(self.offset + k).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn percentiles(&self) -> Percentiles {
        if self.n == 0 {
            return Percentiles::default();
        }
        Percentiles {
            p50: self.quantile(0.50),
            p75: self.quantile(0.75),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: (self.sum / u128::from(self.n)) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn exact(values: &mut [u64], q: f64) -> u64 {
        values.sort_unstable();
        let n = values.len();
        values[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
    }

    fn within(got: u64, want: u64) -> bool {
        (got as f64 - want as f64).abs() <= RELATIVE_ERROR * want as f64
    }

    #[test]
    fn every_bucket_maps_back_to_itself() {
        for i in 0..MAX_BUCKETS {
            assert_eq!(index_of(value_of(i)), i, "{i}");
        }
        assert_eq!(MAX_BUCKETS, 3776);
        for v in [0, 1, 127, 128, 129, 255, 256, 1 << 40, u64::MAX] {
            let r = value_of(index_of(v));
            assert!(
                within(r, v) && (r as f64 - v as f64).abs() <= v as f64 / 128.0,
                "{v}"
            );
        }
    }

    /// Percentiles of a few distributions against exact order statistics.
    #[test]
    fn percentiles_are_within_the_stated_error() {
        let mut rng = fastrand::Rng::with_seed(7);
        let uniform: Vec<u64> = (0..20_000).map(|_| rng.u64(1..10_000_000)).collect();
        let log_normal: Vec<u64> = (0..20_000)
            .map(|_| {
                let z: f64 = (0..12).map(|_| rng.f64()).sum::<f64>() - 6.0;
                (2e6 * (1.2 * z).exp()) as u64
            })
            .collect();
        let bimodal: Vec<u64> = (0..20_000)
            .map(|i| {
                if i % 10 == 0 {
                    rng.u64(900_000_000..1_100_000_000)
                } else {
                    rng.u64(40_000..60_000)
                }
            })
            .collect();
        let small: Vec<u64> = (0..1000).map(|_| rng.u64(0..300)).collect();
        for mut values in [uniform, log_normal, bimodal, small] {
            let mut s = Sketch::default();
            values.iter().for_each(|&v| s.add(v));
            for q in [0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
                let (got, want) = (s.quantile(q), exact(&mut values, q));
                assert!(within(got, want), "q {q}: {got} vs {want}");
            }
            let p = s.percentiles();
            assert_eq!(p.max, *values.iter().max().unwrap());
            let mean = values.iter().map(|&v| u128::from(v)).sum::<u128>() / values.len() as u128;
            assert_eq!(u128::from(p.mean), mean);
        }
    }

    proptest! {
        #[test]
        fn merged_sketches_equal_one_of_all_values(
            a in prop::collection::vec(0u64..u64::MAX, 0..50),
            b in prop::collection::vec(0u64..1_000_000, 0..50),
        ) {
            let (mut sa, mut sb, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
            a.iter().for_each(|&v| { sa.add(v); all.add(v) });
            b.iter().for_each(|&v| { sb.add(v); all.add(v) });
            sa.merge(&sb);
            prop_assert_eq!(sa.percentiles(), all.percentiles());
            prop_assert_eq!(sa.count(), all.count());
            for q in [0.1, 0.5, 0.9] {
                prop_assert_eq!(sa.quantile(q), all.quantile(q));
            }
        }
    }
}
