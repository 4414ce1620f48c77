//! One direction of a TCP connection: sequence numbers in, in-order bytes out.
//!
//! Policy, chosen to reproduce what the receiving application read:
//! - **First copy wins.** Bytes already delivered are never replaced by a retransmission, and a held
//!   out-of-order segment is not replaced by a later copy of the same range (Linux's receive queue
//!   behaves this way; RFC 9293 §3.10.7.4 lets a receiver trim duplicate data). Where a later copy of
//!   a held range carries different bytes, the differing bytes are counted (`overlap_conflict_bytes`):
//!   that is either corruption or an evasion attempt, and worth a counter.
//! - **Holes are skipped, not waited on forever.** A hole is given up (a `Gap` event, then the held
//!   bytes after it) when the peer acknowledges data beyond it (the receiver got bytes the capture
//!   missed), when held data exceeds its cap, when the hole is older than `hole_timeout_ns` of
//!   capture time, or when the connection ends.
//! - **Nothing follows a FIN.** Once every byte before the FIN is delivered the direction ends;
//!   bytes held beyond the FIN's position are dropped and counted (`after_fin_bytes`).
//! - **Bytes a snap length cut are a known hole.** A segment captured short still says how many
//!   bytes it carried (`snapped`, from the IP length): when its captured bytes are delivered in
//!   order, the cut ones follow at once as a `Gap` marked `snapped`, of exact length, with that
//!   segment's time (or, for a segment held out of order, when it is released). Only where a
//!   held piece covers the end of a segment's captured bytes are its cut ones left as an
//!   ordinary hole, given up as above.
//! - Bytes released from the hold queue carry the later of their own timestamp and the timestamp of
//!   the packet that filled the hole: that is when they became readable in order.
//!
//! Cost (issue 16): held pieces are disjoint and ordered by offset, so a new segment finds the
//! pieces it overlaps in O(log n) and then looks only at those; each piece is released once. Work
//! per segment is O(log n + pieces it overlaps), and a segment of `len` bytes overlaps at most
//! `len + 1` pieces, so a capture costs linear time in its bytes whatever the order of arrival
//! (`held_pieces_visited` counts the pieces looked at). Each held piece is charged
//! [`HELD_PIECE_OVERHEAD`] bytes on top of its payload, so the held-bytes caps bound memory for
//! one-byte segments as well as for full ones.
//!
//! Never allocates for in-order data: only out-of-order segments are copied.

use std::collections::BTreeMap;

use tapspan_capture::Timestamp;

use super::seq::SeqNum;

/// Bytes of bookkeeping a held piece costs besides its payload, charged to the held-bytes caps:
/// a `BTreeMap` entry (offset, timestamp, `Vec` header) in nodes that sequential inserts leave
/// about half full, and the allocator's minimum chunk for the payload. Measured with a counting
/// allocator at 80–112 bytes a one-byte piece; without the charge, a flood of one-byte segments
/// would hold a hundred times the cap in memory.
pub const HELD_PIECE_OVERHEAD: usize = 112;

/// What holding `len` payload bytes as one piece counts against the caps.
fn charge(len: usize) -> usize {
    len + HELD_PIECE_OVERHEAD
}

/// What a half-stream hands to its connection.
#[derive(Debug, PartialEq, Eq)]
pub enum HalfEvent<'a> {
    Data {
        offset: u64,
        seq: u32,
        ts: Timestamp,
        bytes: &'a [u8],
    },
    Gap {
        offset: u64,
        len: u64,
        /// Cut by the snap length (see the module doc), not lost.
        snapped: bool,
    },
    Fin {
        ts: Timestamp,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct HalfLimits {
    pub max_held_bytes: usize,
    pub hole_timeout_ns: u64,
}

#[derive(Clone, Debug, Default)]
pub struct HalfStats {
    pub retransmitted_bytes: u64,
    pub overlap_conflict_bytes: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Bytes cut off captured segments by the snap length, delivered as snapped gaps.
    pub snapped_bytes: u64,
    /// Held bytes beyond the FIN's position, dropped when the stream ended there.
    pub after_fin_bytes: u64,
    /// Holes given up because the held bytes reached a cap (not because the peer's ACK
    /// passed them or they timed out).
    pub holes_skipped_at_cap: u64,
    /// Held pieces looked at: by new segments looking for overlaps, and when released. A work
    /// counter: linear in the segments whatever their order (tests/adversarial_cost.rs).
    pub held_pieces_visited: u64,
}

struct Held {
    ts: Timestamp,
    bytes: Vec<u8>,
    /// Bytes the snap length cut after `bytes`: a snapped gap when the piece is released.
    snapped: u64,
}

#[derive(Default)]
pub struct HalfStream {
    /// Sequence number of stream offset 0, once known.
    base: Option<SeqNum>,
    /// Offset of the next byte expected in order.
    next_offset: u64,
    /// Out-of-order pieces by offset: disjoint, never empty.
    held: BTreeMap<u64, Held>,
    /// Payload of the held pieces plus [`HELD_PIECE_OVERHEAD`] each.
    held_bytes: usize,
    /// Capture time at which the current hole was first seen.
    hole_since: Option<Timestamp>,
    fin_offset: Option<u64>,
    finished: bool,
    pub stats: HalfStats,
}

impl HalfStream {
    pub fn is_started(&self) -> bool {
        self.base.is_some()
    }
    pub fn is_finished(&self) -> bool {
        self.finished
    }
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    fn seq_at(&self, offset: u64) -> u32 {
        self.base.map_or(0, |b| b.advance(offset as u32).0)
    }

    /// Offset of `seq` relative to the stream, or None before the stream is anchored.
    fn offset_of(&self, seq: SeqNum) -> Option<i64> {
        let base = self.base?;
        // Relative to the next expected byte, so wraparound and streams > 4 GiB both work.
        let next_seq = base.advance(self.next_offset as u32);
        Some(self.next_offset as i64 + seq.diff(next_seq))
    }

    /// A SYN anchors the stream: data starts at ISN + 1.
    pub fn syn(&mut self, isn: SeqNum) {
        if self.base.is_none() {
            self.base = Some(isn.advance(1));
        }
    }

    /// One segment of this direction: `payload` as captured, then `snapped` bytes the snap
    /// length cut. `held_total` is the connection table's global count of held bytes;
    /// `global_cap` its limit.
    #[allow(clippy::too_many_arguments)]
    pub fn segment<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        ts: Timestamp,
        seq: SeqNum,
        fin: bool,
        payload: &[u8],
        snapped: u64,
        limits: HalfLimits,
        held_total: &mut usize,
        global_cap: usize,
        out: &mut F,
    ) {
        if self.finished {
            self.stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        if self.base.is_none() {
            if payload.is_empty() && snapped == 0 && !fin {
                return;
            }
            // Picked up mid-stream: the first byte seen is offset 0.
            self.base = Some(seq);
        }
        let Some(mut offset) = self.offset_of(seq) else {
            return;
        };
        let mut payload = payload;
        let mut snapped = snapped;
        if offset < 0 {
            // Starts before the first byte we anchored on: only the tail can be new.
            let before = offset.unsigned_abs();
            let skip = before.min(payload.len() as u64) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            payload = &payload[skip..];
            snapped = snapped.saturating_sub(before - skip as u64);
            offset = 0;
        }
        let offset = offset as u64;
        let end = offset + payload.len() as u64;
        // Where the segment's bytes end, counting those the snap length cut.
        let carried_end = end + snapped;
        if fin && self.fin_offset.is_none() {
            self.fin_offset = Some(carried_end);
        }

        if end <= self.next_offset {
            self.stats.retransmitted_bytes += payload.len() as u64;
        } else if offset <= self.next_offset {
            let fresh_at = self.next_offset;
            let fresh = &payload[(fresh_at - offset) as usize..];
            self.stats.retransmitted_bytes += (payload.len() - fresh.len()) as u64;
            // Held bytes inside this range arrived first and win: deliver up to them, and let
            // the rest be trimmed against them like any out-of-order copy.
            let first_held = self.held.keys().next().copied().unwrap_or(u64::MAX);
            let direct = fresh
                .len()
                .min(first_held.saturating_sub(fresh_at) as usize);
            self.deliver(ts, &fresh[..direct], out);
            if direct < fresh.len() {
                let at = fresh_at + direct as u64;
                self.hold(ts, at, &fresh[direct..], snapped, held_total);
                self.stats.out_of_order_segments -= 1;
            }
            self.release_held(Some(ts), held_total, out);
        } else {
            self.hold(ts, offset, payload, snapped, held_total);
            // Give up holes until both caps hold again: skipping the first hole releases only
            // the pieces up to the next one.
            while !self.held.is_empty()
                && (self.held_bytes > limits.max_held_bytes || *held_total > global_cap)
            {
                self.stats.holes_skipped_at_cap += 1;
                self.skip_hole(ts, held_total, out);
            }
        }
        if self.snap(end, carried_end, out) {
            self.release_held(Some(ts), held_total, out);
        }
        if let Some(since) = self.hole_since {
            if ts.saturating_since(since) > limits.hole_timeout_ns {
                self.skip_hole(ts, held_total, out);
            }
        }
        self.check_fin(ts, held_total, out);
    }

    /// The peer acknowledged `ack`: if that is beyond a hole, the capture missed those bytes.
    pub fn acked<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        ts: Timestamp,
        ack: SeqNum,
        held_total: &mut usize,
        out: &mut F,
    ) {
        if self.held.is_empty() {
            return;
        }
        if let Some(acked_offset) = self.offset_of(ack) {
            if acked_offset > self.next_offset as i64 {
                self.skip_hole(ts, held_total, out);
                self.check_fin(ts, held_total, out);
            }
        }
    }

    /// End of connection or capture: give up every hole and hand over everything held.
    pub fn flush<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        ts: Timestamp,
        held_total: &mut usize,
        out: &mut F,
    ) {
        while !self.held.is_empty() {
            self.skip_hole(ts, held_total, out);
        }
        self.check_fin(ts, held_total, out);
    }

    fn deliver<F: FnMut(HalfEvent<'_>)>(&mut self, ts: Timestamp, bytes: &[u8], out: &mut F) {
        if bytes.is_empty() {
            return;
        }
        out(HalfEvent::Data {
            offset: self.next_offset,
            seq: self.seq_at(self.next_offset),
            ts,
            bytes,
        });
        self.next_offset += bytes.len() as u64;
    }

    /// Holds `payload` (at `offset`, followed by `snapped` bytes the snap length cut) until the
    /// bytes before it arrive. The cut bytes go with the last piece kept if it ends where the
    /// payload does; if a held piece covers that end, they are left as a hole.
    /// Bytes `end..carried_end` were cut by the snap length: once every captured byte before
    /// them is delivered, they follow as a snapped gap (see the module doc). True if one was.
    fn snap<F: FnMut(HalfEvent<'_>)>(&mut self, end: u64, carried_end: u64, out: &mut F) -> bool {
        if !(end..carried_end).contains(&self.next_offset) {
            return false;
        }
        let len = carried_end - self.next_offset;
        out(HalfEvent::Gap {
            offset: self.next_offset,
            len,
            snapped: true,
        });
        self.stats.snapped_bytes += len;
        self.next_offset = carried_end;
        true
    }

    fn hold(
        &mut self,
        ts: Timestamp,
        offset: u64,
        payload: &[u8],
        snapped: u64,
        held_total: &mut usize,
    ) {
        self.stats.out_of_order_segments += 1;
        self.hole_since.get_or_insert(ts);
        // Where held data overlaps, the first copy stays (RFC 9293 §3.10.7.4 lets a receiver
        // trim what it already has): count differing bytes, keep only the uncovered parts of the
        // new segment. Held pieces are disjoint, so of those starting at or before `offset` only
        // the last can reach into the new range; the others that overlap start inside it.
        let end = offset + payload.len() as u64;
        let from = self
            .held
            .range(..=offset)
            .next_back()
            .map_or(offset, |(&k, _)| k);
        let mut cursor = offset;
        // Uncovered parts before the last overlapping piece: only an overlap allocates.
        let mut between: Vec<(u64, u64)> = Vec::new();
        for (&held_off, held) in self.held.range(from..end) {
            self.stats.held_pieces_visited += 1;
            let held_end = held_off + held.bytes.len() as u64;
            if held_end <= offset {
                continue;
            }
            let lo = held_off.max(offset);
            let hi = held_end.min(end);
            let a = &held.bytes[(lo - held_off) as usize..(hi - held_off) as usize];
            let b = &payload[(lo - offset) as usize..(hi - offset) as usize];
            self.stats.overlap_conflict_bytes +=
                a.iter().zip(b).filter(|(x, y)| x != y).count() as u64;
            self.stats.retransmitted_bytes += hi - lo;
            if lo > cursor {
                between.push((cursor, lo));
            }
            cursor = cursor.max(hi);
        }
        let last = (cursor < end).then_some((cursor, end));
        for (lo, hi) in between.into_iter().chain(last) {
            let bytes = payload[(lo - offset) as usize..(hi - offset) as usize].to_vec();
            self.held_bytes += charge(bytes.len());
            *held_total += charge(bytes.len());
            let snapped = if hi == end { snapped } else { 0 };
            self.held.insert(lo, Held { ts, bytes, snapped });
        }
    }

    /// Deliver held bytes that are now in order. `filled_at`: the capture time of the segment
    /// that filled the hole, if one did; when a hole is given up instead, each held segment keeps
    /// its own timestamp (when the capture missed the gap, the receiver did not wait for us).
    fn release_held<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        filled_at: Option<Timestamp>,
        held_total: &mut usize,
        out: &mut F,
    ) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.next_offset {
                break;
            }
            let off = *entry.key();
            let held = entry.remove();
            self.stats.held_pieces_visited += 1;
            self.held_bytes -= charge(held.bytes.len());
            *held_total -= charge(held.bytes.len());
            let skip = (self.next_offset - off) as usize;
            let at = filled_at.map_or(held.ts, |f| held.ts.max(f));
            if skip < held.bytes.len() {
                self.deliver(at, &held.bytes[skip..], out);
            } else {
                self.stats.retransmitted_bytes += held.bytes.len() as u64;
            }
            let end = off + held.bytes.len() as u64;
            self.snap(end, end + held.snapped, out);
        }
        self.hole_since = if self.held.is_empty() {
            None
        } else {
            Some(filled_at.unwrap_or(self.hole_since.unwrap_or_default()))
        };
    }

    /// Give up the first hole: report it as a gap and release what follows it.
    fn skip_hole<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        ts: Timestamp,
        held_total: &mut usize,
        out: &mut F,
    ) {
        let Some((&first, _)) = self.held.first_key_value() else {
            return;
        };
        if first > self.next_offset {
            let len = first - self.next_offset;
            out(HalfEvent::Gap {
                offset: self.next_offset,
                len,
                snapped: false,
            });
            self.stats.gaps += 1;
            self.stats.gap_bytes += len;
            self.next_offset = first;
        }
        self.release_held(None, held_total, out);
        if !self.held.is_empty() {
            self.hole_since = Some(ts);
        }
    }

    fn check_fin<F: FnMut(HalfEvent<'_>)>(
        &mut self,
        ts: Timestamp,
        held_total: &mut usize,
        out: &mut F,
    ) {
        if !self.finished && self.fin_offset.is_some_and(|f| f <= self.next_offset) {
            self.finished = true;
            // Bytes held past the FIN are not part of the stream (the receiver drops them, and
            // nothing may follow the FIN): count and drop them.
            for (_, held) in std::mem::take(&mut self.held) {
                self.stats.held_pieces_visited += 1;
                self.stats.after_fin_bytes += held.bytes.len() as u64;
                *held_total -= charge(held.bytes.len());
            }
            self.held_bytes = 0;
            self.hole_since = None;
            out(HalfEvent::Fin { ts });
        }
    }
}
