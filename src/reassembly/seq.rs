//! TCP sequence numbers as a type: comparisons use wrapping arithmetic (RFC 9293 §3.4), and a
//! half-stream turns them into a monotonically growing u64 byte offset at the first byte seen.

/// A 32-bit TCP sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `other` to `self`, valid while the two are within 2^31 of each other.
    pub fn diff(self, other: SeqNum) -> i64 {
        self.0.wrapping_sub(other.0) as i32 as i64
    }
    pub fn advance(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_across_wraparound() {
        assert_eq!(SeqNum(5).diff(SeqNum(u32::MAX - 4)), 10);
        assert_eq!(SeqNum(u32::MAX - 4).diff(SeqNum(5)), -10);
        assert_eq!(SeqNum(u32::MAX).advance(2), SeqNum(1));
    }
}
