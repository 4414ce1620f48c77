//! IPv4 and IPv6 fragment reassembly with hard caps.
//!
//! Contract: [`Defragmenter::push`] takes one fragment (its datagram key, byte offset, more-
//! fragments flag and data) and answers [`Outcome::Held`], [`Outcome::Complete`] with the
//! reassembled upper-layer payload, or [`Outcome::Dropped`] with the reason. A datagram is
//! complete when every byte from 0 to the end announced by the last fragment (MF = 0) is present.
//!
//! Invariants: the bytes held across all datagrams never exceed `max_bytes`, the datagrams held
//! never exceed `max_datagrams`, and a reassembled payload never exceeds [`MAX_DATAGRAM`]. When a
//! cap would be crossed, the datagram that was updated least recently (by capture time) is
//! evicted and counted. Time is the capture timestamp passed in: this module never reads the
//! clock, so replay behaves like live capture.
//!
//! Overlaps: for IPv6 a fragment that overlaps another (other than an exact duplicate) discards
//! the whole datagram, as RFC 5722 §4 requires (overlaps are an evasion technique and a receiver
//! would drop them too). IPv4 has no such rule; the bytes received first win (the BSD/Linux
//! behaviour for the common case, and it means later data never rewrites what an earlier stage may
//! already have accepted). Both are counted in [`DefragStats::overlaps`].
//!
//! Cost: a datagram's received ranges are kept ordered by offset, so a fragment finds the ranges
//! it touches in O(log n) and looks only at those; ranges it merges are removed once. Work per
//! fragment is O(log n + ranges it touches), whatever the order of arrival (`ranges_visited`
//! counts the ranges looked at).
//!
//! Never: it does not use etherparse's uncapped pool, does not look inside the payload, and does
//! not keep state for a datagram after it completes or is dropped.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::Timestamp;

/// Largest reassembled upper-layer payload: the IPv4 total length field is 16 bits, and IPv6
/// without jumbograms (RFC 2675 forbids fragmenting those) is bounded the same way.
pub const MAX_DATAGRAM: u32 = 65_535;

/// Identifies the datagram a fragment belongs to: (src, dst, protocol, id) for IPv4 (RFC 791),
/// (src, dst, id) for IPv6 (RFC 8200 §4.5; `protocol` is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatagramKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

impl DatagramKey {
    fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// A reassembled datagram: its upper-layer protocol and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub protocol: u8,
    pub payload: Vec<u8>,
}

/// Why a fragment did not go into a datagram (or took its datagram with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Bad length or offset, or contradicting the datagram's end.
    Malformed(&'static str),
    /// IPv6 overlapping fragments (RFC 5722): the datagram is gone.
    Overlap,
    /// The fragment alone does not fit the byte cap, or caps are zero.
    Capacity,
}

/// The answer to one fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Held,
    Complete(Reassembled),
    Dropped(DropReason),
}

/// Counters; read them with [`Defragmenter::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams dropped to respect a cap.
    pub evicted: u64,
    /// Datagrams dropped because their fragments stopped arriving.
    pub timed_out: u64,
    /// Fragments that overlapped data already held.
    pub overlaps: u64,
    /// Fragments rejected as malformed (and datagrams they invalidated).
    pub malformed: u64,
    /// Received ranges looked at while placing fragments: a work counter, linear in the
    /// fragments whatever their order.
    pub ranges_visited: u64,
}

struct Datagram {
    /// Received bytes at their offsets; holes are zero-filled. Its length is what is accounted.
    buf: Vec<u8>,
    /// Received ranges.
    have: Ranges,
    /// End of the datagram, known once the fragment with MF = 0 arrived.
    end: Option<u32>,
    /// Upper-layer protocol (IPv6: next header of the offset-0 fragment).
    protocol: Option<u8>,
    /// Position in the age index.
    age: (Timestamp, u64),
}

/// Fragment reassembly state for all datagrams in flight.
pub struct Defragmenter {
    max_bytes: usize,
    max_datagrams: usize,
    timeout_ns: u64,
    datagrams: HashMap<DatagramKey, Datagram>,
    /// (last update time, serial) → key; the first entry is the oldest datagram.
    ages: BTreeMap<(Timestamp, u64), DatagramKey>,
    serial: u64,
    held_bytes: usize,
    stats: DefragStats,
}

impl Defragmenter {
    pub fn new(max_bytes: usize, max_datagrams: usize, timeout_ns: u64) -> Self {
        Defragmenter {
            max_bytes,
            max_datagrams,
            timeout_ns,
            datagrams: HashMap::new(),
            ages: BTreeMap::new(),
            serial: 0,
            held_bytes: 0,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Bytes currently held across all datagrams.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Datagrams currently being reassembled.
    pub fn held_datagrams(&self) -> usize {
        self.datagrams.len()
    }

    /// Adds one fragment. `protocol` is the upper-layer protocol the fragment announces (for
    /// IPv6 the fragment header's next header; only the offset-0 fragment's value is used).
    pub fn push(
        &mut self,
        now: Timestamp,
        key: DatagramKey,
        offset: u32,
        more: bool,
        protocol: u8,
        data: &[u8],
    ) -> Outcome {
        self.expire(now);
        let Ok(len) = u32::try_from(data.len()) else {
            return self.reject("fragment longer than any datagram");
        };
        let end = offset.saturating_add(len);
        if end > MAX_DATAGRAM {
            return self.reject("fragment ends beyond the largest datagram");
        }
        // RFC 791 / RFC 8200 §4.5: every fragment but the last carries a multiple of 8 bytes.
        if more && (len == 0 || len % 8 != 0) {
            return self.reject("non-final fragment length not a multiple of 8");
        }

        if let Err(dropped) = self.track(now, key) {
            return dropped;
        }
        let growth = match self.check_fits(key, offset, end, more, data) {
            Ok(growth) => growth,
            Err(outcome) => return outcome,
        };

        self.serial += 1;
        let serial = self.serial;
        let Some(dg) = self.datagrams.get_mut(&key) else {
            return Outcome::Dropped(DropReason::Capacity);
        };
        if dg.buf.len() < end as usize {
            dg.buf.resize(end as usize, 0);
            self.held_bytes += growth;
        }
        // First received wins: write only the parts nobody wrote before.
        let visits = &mut self.stats.ranges_visited;
        for (s, e) in dg.have.uncovered(offset, end, visits) {
            let src = &data[(s - offset) as usize..(e - offset) as usize];
            dg.buf[s as usize..e as usize].copy_from_slice(src);
        }
        dg.have.insert(offset, end, visits);
        if !more {
            dg.end = Some(end);
        }
        if offset == 0 {
            dg.protocol = Some(protocol);
        }
        let old_age = dg.age;
        dg.age = (now, serial);
        let new_age = dg.age;
        let complete = dg.end.is_some_and(|e| dg.have.is_exactly(0, e)) && dg.protocol.is_some();
        self.ages.remove(&old_age);
        self.ages.insert(new_age, key);

        if complete {
            if let Some(mut dg) = self.remove(&key) {
                if let (Some(e), Some(protocol)) = (dg.end, dg.protocol) {
                    dg.buf.truncate(e as usize);
                    return Outcome::Complete(Reassembled {
                        protocol,
                        payload: dg.buf,
                    });
                }
            }
        }
        Outcome::Held
    }

    /// Starts tracking `key` if it is new, evicting the oldest datagrams at the count cap.
    fn track(&mut self, now: Timestamp, key: DatagramKey) -> Result<(), Outcome> {
        if self.datagrams.contains_key(&key) {
            return Ok(());
        }
        if self.max_datagrams == 0 {
            self.stats.evicted += 1;
            return Err(Outcome::Dropped(DropReason::Capacity));
        }
        while self.datagrams.len() >= self.max_datagrams {
            if !self.evict_oldest_except(None) {
                break;
            }
        }
        self.serial += 1;
        let age = (now, self.serial);
        self.ages.insert(age, key);
        self.datagrams.insert(
            key,
            Datagram {
                buf: Vec::new(),
                have: Ranges::default(),
                end: None,
                protocol: None,
                age,
            },
        );
        Ok(())
    }

    /// Whether the fragment `offset..end` agrees with what `key` holds (its end, the bytes it
    /// overlaps) and fits under the byte cap, making room if needed: the buffer growth it needs.
    fn check_fits(
        &mut self,
        key: DatagramKey,
        offset: u32,
        end: u32,
        more: bool,
        data: &[u8],
    ) -> Result<usize, Outcome> {
        let Some(dg) = self.datagrams.get(&key) else {
            return Err(Outcome::Dropped(DropReason::Capacity));
        };

        // Consistency of the datagram's end.
        let last_have = dg.have.last_end();
        let contradicts = if more {
            dg.end.is_some_and(|e| end > e)
        } else {
            dg.end.is_some_and(|e| e != end) || last_have > end
        };
        if contradicts {
            self.remove(&key);
            return Err(self.reject("fragment contradicts the datagram's end"));
        }

        // Overlap with bytes already held.
        let covered = dg.have.covered(offset, end, &mut self.stats.ranges_visited);
        if !covered.is_empty() {
            let identical = covered.iter().all(|&(s, e)| {
                dg.buf.get(s as usize..e as usize)
                    == data.get((s - offset) as usize..(e - offset) as usize)
            });
            if !identical {
                self.stats.overlaps += 1;
                if key.is_v6() {
                    self.remove(&key);
                    return Err(Outcome::Dropped(DropReason::Overlap));
                }
            }
        }

        // Make room for the growth of this datagram's buffer.
        let growth = (end as usize).saturating_sub(dg.buf.len());
        if growth > self.max_bytes {
            self.remove(&key);
            self.stats.evicted += 1;
            return Err(Outcome::Dropped(DropReason::Capacity));
        }
        while self.held_bytes + growth > self.max_bytes {
            if !self.evict_oldest_except(Some(&key)) {
                self.remove(&key);
                self.stats.evicted += 1;
                return Err(Outcome::Dropped(DropReason::Capacity));
            }
        }
        Ok(growth)
    }

    /// Drops every datagram not updated within the timeout before `now` (capture time).
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((&(ts, serial), _)) = self.ages.first_key_value() {
            if now.saturating_since(ts) <= self.timeout_ns {
                break;
            }
            if let Some(key) = self.ages.remove(&(ts, serial)) {
                if let Some(dg) = self.datagrams.remove(&key) {
                    self.held_bytes -= dg.buf.len();
                    self.stats.timed_out += 1;
                }
            }
        }
    }

    fn reject(&mut self, what: &'static str) -> Outcome {
        self.stats.malformed += 1;
        Outcome::Dropped(DropReason::Malformed(what))
    }

    fn remove(&mut self, key: &DatagramKey) -> Option<Datagram> {
        let dg = self.datagrams.remove(key)?;
        self.ages.remove(&dg.age);
        self.held_bytes -= dg.buf.len();
        Some(dg)
    }

    /// Evicts the oldest datagram other than `keep`; false if there is none.
    fn evict_oldest_except(&mut self, keep: Option<&DatagramKey>) -> bool {
        let victim = self.ages.values().find(|k| Some(*k) != keep).copied();
        match victim {
            Some(k) => {
                self.remove(&k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }
}

/// Received byte ranges of a datagram: start → end, half-open, disjoint and non-adjacent
/// (touching ranges are merged). Every operation starts at the last range beginning at or before
/// the range asked about (only that one can reach into it from the left) and stops at its end,
/// counting the ranges it looks at in `visits`.
#[derive(Default)]
struct Ranges(BTreeMap<u32, u32>);

impl Ranges {
    /// The ranges that may overlap or touch [start, end], in order.
    fn around(&self, start: u32, end: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let from = self
            .0
            .range(..=start)
            .next_back()
            .map_or(start, |(&s, _)| s);
        self.0.range(from..=end).map(|(&s, &e)| (s, e))
    }

    fn last_end(&self) -> u32 {
        self.0.last_key_value().map_or(0, |(_, &e)| e)
    }

    fn is_exactly(&self, start: u32, end: u32) -> bool {
        self.0.len() == 1 && self.0.get(&start) == Some(&end)
    }

    /// Parts of [start, end) already present.
    fn covered(&self, start: u32, end: u32, visits: &mut u64) -> Vec<(u32, u32)> {
        self.around(start, end)
            .filter_map(|(s, e)| {
                *visits += 1;
                let s = s.max(start);
                let e = e.min(end);
                (s < e).then_some((s, e))
            })
            .collect()
    }

    /// Parts of [start, end) missing.
    fn uncovered(&self, start: u32, end: u32, visits: &mut u64) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut at = start;
        for (s, e) in self.around(start, end) {
            *visits += 1;
            if e <= at {
                continue;
            }
            if s >= end {
                break;
            }
            if s > at {
                out.push((at, s.min(end)));
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// Adds [start, end), merging the ranges it overlaps or touches.
    fn insert(&mut self, start: u32, end: u32, visits: &mut u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let merged: Vec<(u32, u32)> = self
            .around(start, end)
            .filter(|&(rs, re)| {
                *visits += 1;
                re >= start && rs <= end
            })
            .collect();
        for (rs, re) in merged {
            self.0.remove(&rs);
            s = s.min(rs);
            e = e.max(re);
        }
        self.0.insert(s, e);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn key(v6: bool, id: u32) -> DatagramKey {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            )
        };
        DatagramKey {
            src,
            dst,
            protocol: if v6 { 0 } else { 6 },
            id,
        }
    }

    #[test]
    fn range_helpers() {
        let mut have = Ranges::default();
        let v = &mut 0;
        let all = |h: &Ranges| h.0.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>();
        have.insert(10, 20, v);
        have.insert(30, 40, v);
        assert_eq!(have.uncovered(0, 50, v), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(have.covered(15, 35, v), vec![(15, 20), (30, 35)]);
        assert_eq!(have.uncovered(22, 28, v), vec![(22, 28)]);
        assert!(have.covered(22, 28, v).is_empty());
        have.insert(20, 30, v);
        assert_eq!(all(&have), vec![(10, 40)]);
        have.insert(0, 5, v);
        have.insert(50, 60, v);
        assert_eq!(have.last_end(), 60);
        have.insert(4, 52, v);
        assert_eq!(all(&have), vec![(0, 60)]);
        assert!(have.is_exactly(0, 60));
        assert!(have.uncovered(10, 20, v).is_empty());
        // Touching ranges merge; a range inside another changes nothing.
        have.insert(60, 64, v);
        have.insert(8, 16, v);
        assert_eq!(all(&have), vec![(0, 64)]);
    }

    #[test]
    fn rejects_bad_fragments() {
        let mut d = Defragmenter::new(1 << 20, 16, 1_000);
        let t = Timestamp(1);
        assert!(matches!(
            d.push(t, key(false, 1), 0, true, 6, &[0; 12]),
            Outcome::Dropped(DropReason::Malformed(_))
        ));
        assert!(matches!(
            d.push(t, key(false, 1), 65_528, false, 6, &[0; 16]),
            Outcome::Dropped(DropReason::Malformed(_))
        ));
        // A second "last" fragment with another end invalidates the datagram.
        assert_eq!(
            d.push(t, key(false, 2), 8, false, 6, &[0; 8]),
            Outcome::Held
        );
        assert!(matches!(
            d.push(t, key(false, 2), 16, false, 6, &[0; 8]),
            Outcome::Dropped(DropReason::Malformed(_))
        ));
        assert_eq!(d.held_datagrams(), 0);
        assert_eq!(d.held_bytes(), 0);
        assert_eq!(d.stats().malformed, 3);
    }

    #[test]
    fn caps_hold() {
        let mut d = Defragmenter::new(64, 2, u64::MAX);
        for id in 0..10 {
            d.push(Timestamp(id.into()), key(false, id), 0, true, 6, &[1; 32]);
            assert!(d.held_bytes() <= 64);
            assert!(d.held_datagrams() <= 2);
        }
        assert_eq!(d.stats().evicted, 8);
        assert!(matches!(
            d.push(Timestamp(99), key(false, 99), 0, true, 6, &[1; 72]),
            Outcome::Dropped(DropReason::Capacity)
        ));
    }

    proptest! {
        /// Against the obvious model: any split into 8-byte-aligned pieces, in any order, with
        /// exact duplicates, rebuilds the original payload exactly once.
        #[test]
        fn any_order_rebuilds_the_payload(
            len in 9usize..3000,
            cuts in prop::collection::vec(1usize..400, 0..12),
            v6 in any::<bool>(),
            dup in prop::option::of(0usize..16),
            seed in any::<u64>(),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c * 8).filter(|&c| c < len).collect();
            // At least two pieces: a single whole piece is not a fragment.
            bounds.extend([0, 8, len]);
            bounds.sort_unstable();
            bounds.dedup();
            let mut pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            if let Some(d) = dup {
                let p = pieces[d % pieces.len()];
                pieces.push(p);
            }
            // Deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..pieces.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                pieces.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut d = Defragmenter::new(1 << 20, 16, u64::MAX);
            let mut done = Vec::new();
            for (i, &(a, b)) in pieces.iter().enumerate() {
                let out = d.push(Timestamp(i as u64), key(v6, 5), a as u32, b != len, 6, &payload[a..b]);
                if let Outcome::Complete(r) = out {
                    done.push(r);
                }
            }
            // A duplicate arriving after completion starts a new (never finished) datagram.
            prop_assert_eq!(done.len(), 1);
            prop_assert_eq!(&done[0].payload, &payload);
            prop_assert_eq!(done[0].protocol, 6);
            prop_assert_eq!(d.stats().overlaps, 0);
        }
    }
}
