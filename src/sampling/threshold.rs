//! Consistent probability sampling as OpenTelemetry specifies it (OTEP 235, "TraceState:
//! Probability Sampling"): a trace's *randomness* R and a sampler's *rejection threshold* T are
//! both 56-bit numbers, and a trace is kept when `R >= T`. Keeping a share `p` of traces means
//! `T = (1 - p) · 2^56`.
//!
//! R is the trace's own: the `rv` value of its `ot` tracestate entry when the trace carries one
//! (explicit randomness), else the trace id's last 7 bytes (W3C Trace Context Level 2 makes those
//! random; tapspan's derived trace ids are hashes, uniform in every bit). Since R travels with
//! the trace and T is the configuration, every sampler that sees the trace decides alike, with no
//! word between them: two taps on different hosts, two runs, a tap and the application's own SDK.
//! And since a sampler at a lower rate keeps a subset of what one at a higher rate keeps, the
//! adjusted count of a kept span is `2^56 / (2^56 - T)`: backends read T from the span's
//! tracestate (`ot=th:…`, [`Threshold::tracestate`]) to count what was dropped.

/// 2^56: the number of distinct randomness values.
pub const RANGE: u64 = 1 << 56;

/// A rejection threshold: traces whose randomness is below it are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(u64);

impl Threshold {
    /// Keeps every trace.
    pub const ALWAYS: Threshold = Threshold(0);
    /// Keeps no trace (not expressible in a tracestate: nothing kept carries it).
    pub const NEVER: Threshold = Threshold(RANGE);

    /// The threshold that keeps a share `rate` (clamped to 0..=1) of traces, to within 2^-56.
    pub fn for_rate(rate: f64) -> Threshold {
        if rate.is_nan() || rate <= 0.0 {
            return Threshold::NEVER;
        }
        // The number of randomness values kept, rounded; T is what is left below them.
        let kept = (rate.min(1.0) * RANGE as f64).round() as u64;
        Threshold(RANGE - kept.min(RANGE))
    }

    /// The raw 56-bit value (2^56 for [`Threshold::NEVER`]).
    pub fn value(self) -> u64 {
        self.0
    }

    pub fn keeps(self, randomness: u64) -> bool {
        randomness >= self.0
    }

    /// The share of traces kept.
    pub fn probability(self) -> f64 {
        (RANGE - self.0) as f64 / RANGE as f64
    }

    /// The `ot` tracestate entry of a span kept at this threshold (`ot=th:e666…`): 14 hex digits
    /// with trailing zeros removed, `0` for every trace. None for [`Threshold::NEVER`].
    pub fn tracestate(self) -> Option<String> {
        if self.0 >= RANGE {
            return None;
        }
        let digits = format!("{:014x}", self.0);
        let th = digits.trim_end_matches('0');
        Some(format!("ot=th:{}", if th.is_empty() { "0" } else { th }))
    }
}

/// The randomness of a trace id written as 32 hex digits (or fewer: a 64-bit id): its last 14
/// hex digits, the 7 bytes W3C Level 2 makes random.
pub fn of_trace_id(trace_id: &str) -> Option<u64> {
    let t = trace_id.trim();
    if t.len() < 14 || !t.is_ascii() {
        return None;
    }
    u64::from_str_radix(&t[t.len() - 14..], 16).ok()
}

/// Explicit randomness from a W3C `tracestate` value: `rv:` (14 hex digits) in the `ot` entry.
pub fn of_tracestate(tracestate: &str) -> Option<u64> {
    let ot = tracestate.split(',').find_map(|member| {
        let (key, value) = member.trim().split_once('=')?;
        (key == "ot").then_some(value)
    })?;
    ot.split(';').find_map(|field| {
        let rv = field.strip_prefix("rv:")?;
        let ok = rv.len() == 14 && rv.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| u64::from_str_radix(rv, 16).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_encoded_as_otep_235_writes_them() {
        // The specification's examples: 100 % is th:0, 50 % th:8, 25 % th:c, 1/3 th:aaaa….
        assert_eq!(Threshold::for_rate(1.0).tracestate().unwrap(), "ot=th:0");
        assert_eq!(Threshold::for_rate(0.5).tracestate().unwrap(), "ot=th:8");
        assert_eq!(Threshold::for_rate(0.25).tracestate().unwrap(), "ot=th:c");
        // 2/3 of 2^56 is 0xaaaa…aa.aa: exact to the few units f64 keeps at that size.
        let third = Threshold::for_rate(1.0 / 3.0).value();
        assert!(third.abs_diff(0xaa_aaaa_aaaa_aaab) <= 4, "{third:x}");
        assert_eq!(Threshold::for_rate(0.0), Threshold::NEVER);
        assert_eq!(Threshold::NEVER.tracestate(), None);
        let tenth = Threshold::for_rate(0.1);
        assert!((tenth.probability() - 0.1).abs() < 1e-15);
        assert_eq!(tenth.tracestate().unwrap(), "ot=th:e6666666666666");
    }

    #[test]
    fn keep_means_randomness_at_or_above_the_threshold() {
        let half = Threshold::for_rate(0.5);
        assert!(!half.keeps(RANGE / 2 - 1));
        assert!(half.keeps(RANGE / 2));
        assert!(Threshold::ALWAYS.keeps(0));
        assert!(!Threshold::NEVER.keeps(RANGE - 1));
        // A lower rate keeps a subset of what a higher one keeps.
        let (low, high) = (Threshold::for_rate(0.01), Threshold::for_rate(0.1));
        assert!(low > high);
    }

    #[test]
    fn randomness_is_the_last_seven_bytes() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(of_trace_id(id), Some(0xce929d0e0e4736));
        assert_eq!(of_trace_id("00f067aa0ba902b7"), Some(0xf067aa0ba902b7));
        assert_eq!(of_trace_id("abc"), None);
        assert_eq!(
            of_tracestate("vendor=x,ot=th:8;rv:0123456789abcd"),
            Some(0x0123456789abcd)
        );
        assert_eq!(of_tracestate("ot=th:8"), None);
        assert_eq!(of_tracestate("ot=rv:0123"), None);
        assert_eq!(of_tracestate("xot=rv:0123456789abcd"), None);
    }
}
