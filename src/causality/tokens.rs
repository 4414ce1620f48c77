//! Payload-token evidence: a value of request R's (a path segment, a query value, a body
//! scalar), or of a response R's handler had already received, that reappears in a call's
//! request says R's handler made the call (DESIGN.md "Causality"; tokens are keyed hashes, see
//! `http::tokens`).
//!
//! How much a match says is learned from the batch, never a constant:
//! - **Rarity.** `f`, the share of the batch's handlers whose context (request tokens, and the
//!   responses of calls) holds the token: what a handler that did *not* make the call holds by
//!   chance. Tokens held by more than [`RARE`] of them (`1`, `true`, a static path segment) are
//!   not evidence at all.
//! - **Propagation.** `q`, per kind of call (its launch step): how often a call of that kind
//!   that carries a rare token carries one of its own parent's, refitted from each assignment
//!   (hard EM, like the delay model). A call to `/orders/{id}` made with the inbound order id
//!   learns `q` near 1; a call whose values come from elsewhere learns it near 0 and its tokens
//!   stop counting.
//!
//! Under that model a candidate holding a matching token scores `ln((q + (1-q)f) / f)` (the
//! strongest of its matches: matches are correlated, so they are not added), and one holding
//! none of the call's rare tokens scores `ln(1 - q)`. A call without rare tokens scores 0 for
//! every candidate.
//!
//! Cost: building is linear in the tokens of the batch (at most `http::tokens::MAX_TOKENS` per
//! message); scoring a (call, candidate) is a scan of that call's few matches and the
//! candidate's calls so far.

use crate::keyhash::KeyMap;

use super::assign::{calls_per_request, Call, Made, Req};
use super::nesting::StepKey;
use crate::protocols::http1::tokens::Tokens;

/// Tokens held by a larger share of handlers than this are not evidence.
pub const RARE: f64 = 0.25;
/// `q` of a kind of call nothing has been learned about yet.
const Q_UNKNOWN: f64 = 0.5;
/// `q` stays within these: no kind of call is certain to carry its parent's values, or never.
const Q_MIN: f64 = 0.02;
const Q_MAX: f64 = 0.98;
/// Earlier calls whose responses may have given a call one of its tokens, per token: the latest.
const MAX_VIA: usize = 16;

/// Per kind of call, how often it carries its parent's rare values: (calls that matched their
/// parent, calls with rare tokens), accumulated over batches.
#[derive(Clone, Debug, Default)]
pub struct Propagation {
    counts: KeyMap<StepKey, (f64, f64)>,
}

impl Propagation {
    pub fn q(&self, kind: StepKey) -> f64 {
        self.counts
            .get(&kind)
            .map_or(Q_UNKNOWN, |&(hits, n)| (hits + 1.0) / (n + 2.0))
            .clamp(Q_MIN, Q_MAX)
    }

    /// What `earlier` taught, plus what the assignment `chosen` shows.
    pub fn fitted(
        earlier: &Propagation,
        evidence: &TokenEvidence,
        calls: &[Call],
        reqs: &[Req],
        chosen: &[Option<(usize, f64)>],
    ) -> Propagation {
        let mut out = earlier.clone();
        for (j, hit) in evidence.hits(calls, reqs, chosen) {
            let e = out.counts.entry(calls[j].made.launch).or_default();
            e.0 += f64::from(u8::from(hit));
            e.1 += 1.0;
        }
        out
    }
}

/// What the tokens of one batch say, per call (indexes as in the batch's `Call` slice).
#[derive(Clone, Debug, Default)]
pub struct TokenEvidence {
    /// Candidates whose own context (request, responses of earlier batches' calls) matches the
    /// call, with the match's weight.
    direct: PerCall<(usize, f64)>,
    /// Earlier calls of the batch whose response matches the call, with the weight, by index.
    via: PerCall<(u32, f64)>,
    /// Per call, bit `i % 64` set for each index `i` in its `via`: most of a candidate's calls
    /// are in none, and this tells so without a search.
    via_mask: Vec<u64>,
    /// The score of a candidate without a match, `ln(1 - q)`.
    no_match: Vec<f64>,
    /// The call carries at least one rare token.
    informative: Vec<bool>,
    /// Where the tokens all but decide: the only candidates that can hold one of the call's
    /// rare tokens (see [`Self::candidates`]); empty where every candidate stays.
    plausible: PerCall<usize>,
}

/// A list per call, all in one allocation: EM builds a batch's evidence afresh each round,
/// and a few vectors per call were most of that work.
#[derive(Clone, Debug)]
struct PerCall<T> {
    items: Vec<T>,
    /// Where each call's items end in `items`.
    ends: Vec<usize>,
}

impl<T> Default for PerCall<T> {
    fn default() -> Self {
        PerCall {
            items: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<T> PerCall<T> {
    /// Room for `calls` lists holding `items` in all.
    fn with_capacity(calls: usize, items: usize) -> Self {
        PerCall {
            items: Vec::with_capacity(items),
            ends: Vec::with_capacity(calls),
        }
    }

    /// Closes the list of the next call: the items pushed since the last one.
    fn close(&mut self) {
        self.ends.push(self.items.len());
    }

    fn get(&self, j: usize) -> Option<&[T]> {
        let end = *self.ends.get(j)?;
        let start = if j == 0 { 0 } else { self.ends[j - 1] };
        Some(&self.items[start..end])
    }
}

/// Kinds of call that carry their parent's values at least this often have their candidates
/// narrowed to those that can hold one: any other pays at least `ln(1 - q)` = -2.3 against a
/// match's at least `ln(q / f)`, a confidence share of about 1e-3 each, and leaving them out
/// spares the search most of its work where tokens carry the batch.
const NARROW_FROM_Q: f64 = 0.9;

/// The tokens of a batch: each candidate request's context, and each call's two messages.
pub struct BatchTokens<'a> {
    pub req_context: Vec<Tokens>,
    pub call_request: Vec<&'a Tokens>,
    /// What each call's response told its handler: its tokens less those the request sent (a
    /// response that echoes `sku-7` back to whoever asked for it says nothing new).
    pub call_response: Vec<Tokens>,
}

/// Which of a batch's requests and earlier calls hold each call's rare tokens, and how rare
/// (`f`, the share of handlers holding the token, the smallest of the call's matches): all of
/// the tokens' evidence that does not depend on `q`, found once per batch however many times EM
/// weighs it.
pub struct TokenMatches {
    requests: usize,
    calls: Vec<CallMatches>,
}

struct CallMatches {
    /// Candidates whose context holds a rare token of the call, with the rarest match's `f`.
    direct: Vec<(usize, f64)>,
    /// Earlier calls of the batch whose response holds one, by index.
    via: Vec<(u32, f64)>,
    /// The call carries at least one rare token.
    informative: bool,
}

impl TokenMatches {
    /// None of `calls` calls matches anything.
    #[cfg(test)]
    pub fn none(calls: usize) -> Self {
        TokenMatches {
            requests: 0,
            calls: (0..calls)
                .map(|_| CallMatches {
                    direct: Vec::new(),
                    via: Vec::new(),
                    informative: false,
                })
                .collect(),
        }
    }

    pub fn of_batch(batch: &BatchTokens<'_>, calls: &[Call]) -> Self {
        let handlers = batch.req_context.len().max(1) as f64;
        let mut held: KeyMap<u64, u32> = KeyMap::default();
        for t in batch.req_context.iter().chain(&batch.call_response) {
            for &tok in t.as_slice() {
                *held.entry(tok).or_default() += 1;
            }
        }
        // The share of *other* handlers holding `tok` (the parent holds one of the copies), if
        // it is rare.
        let rarity = |tok: u64| -> Option<f64> {
            let n = f64::from(*held.get(&tok)?);
            if n / handlers > RARE {
                return None;
            }
            Some(((n - 1.0).max(0.5) / handlers).min(1.0))
        };
        // Which requests' contexts hold each token: a call's matches are found from its tokens'
        // holders when they are fewer than its candidates (the rare tokens that count are).
        let mut in_context: KeyMap<u64, Vec<u32>> = KeyMap::default();
        for (r, t) in batch.req_context.iter().enumerate() {
            for &tok in t.as_slice() {
                in_context.entry(tok).or_default().push(r as u32);
            }
        }
        // Which calls' responses hold each token, for matches through a received response.
        let mut in_response: KeyMap<u64, Vec<u32>> = KeyMap::default();
        for (i, t) in batch.call_response.iter().enumerate() {
            for &tok in t.as_slice() {
                in_response.entry(tok).or_default().push(i as u32);
            }
        }
        let mut is_candidate = vec![false; batch.req_context.len()];
        let mut out = Vec::with_capacity(calls.len());
        for (j, call) in calls.iter().enumerate() {
            let mut m = CallMatches {
                direct: Vec::new(),
                via: Vec::new(),
                informative: false,
            };
            for &r in &call.candidates {
                is_candidate[r] = true;
            }
            for &tok in batch.call_request[j].as_slice() {
                let Some(f) = rarity(tok) else { continue };
                m.informative = true;
                let holders = in_context.get(&tok).map_or(&[][..], Vec::as_slice);
                if holders.len() < call.candidates.len() {
                    for &r in holders.iter().filter(|&&r| is_candidate[r as usize]) {
                        keep_rarest(&mut m.direct, r as usize, f);
                    }
                } else {
                    for &r in &call.candidates {
                        if batch.req_context[r].contains(tok) {
                            keep_rarest(&mut m.direct, r, f);
                        }
                    }
                }
                // The latest few earlier calls holding it: a handler passes on what it received
                // recently, and the list stays short to scan.
                let holders = in_response.get(&tok).map_or(&[][..], Vec::as_slice);
                holders
                    .iter()
                    .rev()
                    .filter(|&&i| i as usize != j && calls[i as usize].made.end <= call.made.start)
                    .take(MAX_VIA)
                    .for_each(|&i| keep_rarest(&mut m.via, i, f));
            }
            for &r in &call.candidates {
                is_candidate[r] = false;
            }
            m.via.sort_unstable_by_key(|v| v.0);
            out.push(m);
        }
        TokenMatches {
            requests: batch.req_context.len(),
            calls: out,
        }
    }
}

impl TokenEvidence {
    /// No evidence: every candidate scores 0.
    pub fn none() -> Self {
        TokenEvidence::default()
    }

    pub fn of_batch(matches: &TokenMatches, calls: &[Call], propagation: &Propagation) -> Self {
        // Marks over the batch's requests: those marked with a call's stamp are marked for it.
        let mut reached_via = vec![0u32; matches.requests];
        // Every list made with room for all it will hold (the candidates kept: at most all of
        // those of the calls with a rare token), not regrown as it fills, at every EM round.
        let n = calls.len();
        let direct = matches.calls.iter().map(|m| m.direct.len()).sum();
        let via = matches.calls.iter().map(|m| m.via.len()).sum();
        let plausible = calls
            .iter()
            .zip(&matches.calls)
            .filter(|(_, m)| m.informative)
            .map(|(c, _)| c.candidates.len())
            .sum();
        let mut ev = TokenEvidence {
            direct: PerCall::with_capacity(n, direct),
            via: PerCall::with_capacity(n, via),
            via_mask: Vec::with_capacity(n),
            no_match: Vec::with_capacity(n),
            informative: Vec::with_capacity(n),
            plausible: PerCall::with_capacity(n, plausible),
        };
        for (stamp, (call, m)) in (1u32..).zip(calls.iter().zip(&matches.calls)) {
            let q = propagation.q(call.made.launch);
            // A match's weight falls as its token gets commoner: the rarest match is the best.
            let weight = |f: f64| ((q + (1.0 - q) * f) / f).ln();
            ev.direct
                .items
                .extend(m.direct.iter().map(|&(r, f)| (r, weight(f))));
            ev.direct.close();
            ev.via
                .items
                .extend(m.via.iter().map(|&(i, f)| (i, weight(f))));
            ev.via.close();
            ev.via_mask
                .push(m.via.iter().fold(0, |mask, &(i, _)| mask | via_bit(i)));
            if m.informative && q >= NARROW_FROM_Q {
                // Candidates whose request holds a token, or that may have made an earlier call
                // whose response did.
                for &(i, _) in &m.via {
                    for &r in &calls[i as usize].candidates {
                        reached_via[r] = stamp;
                    }
                }
                let from = ev.plausible.items.len();
                ev.plausible.items.extend(
                    call.candidates.iter().copied().filter(|r| {
                        reached_via[*r] == stamp || m.direct.iter().any(|(k, _)| k == r)
                    }),
                );
                // All of them kept: none is left out, and the list stays empty (see
                // `candidates`).
                if ev.plausible.items.len() - from == call.candidates.len() {
                    ev.plausible.items.truncate(from);
                }
            }
            ev.plausible.close();
            ev.no_match
                .push(if m.informative { (1.0 - q).ln() } else { 0.0 });
            ev.informative.push(m.informative);
        }
        ev
    }

    /// The candidates of call `j` worth scoring: those that can hold one of its rare tokens,
    /// where its kind of call carries its parent's values almost always; else all of them.
    pub fn candidates<'a>(&'a self, j: usize, all: &'a [usize]) -> &'a [usize] {
        match self.plausible.get(j) {
            Some(keep) if !keep.is_empty() => keep,
            _ => all,
        }
    }

    /// The share of calls that carry a rare token at all: the most of them a search can find
    /// matched ([`Self::matched_share`]).
    pub fn informative_share(&self) -> f64 {
        let n = self.informative.iter().filter(|&&i| i).count();
        n as f64 / self.informative.len().max(1) as f64
    }

    /// The share of `calls` whose parent in `chosen` holds one of their rare tokens.
    pub fn matched_share(
        &self,
        calls: &[Call],
        reqs: &[Req],
        chosen: &[Option<(usize, f64)>],
    ) -> f64 {
        let matched = self
            .hits(calls, reqs, chosen)
            .filter(|(_, hit)| *hit)
            .count();
        matched as f64 / calls.len().max(1) as f64
    }

    /// For each call that carries a rare token and has a parent in `chosen`: whether that
    /// parent held one of its tokens (in its request, or in a response its handler had received
    /// by the time the call left).
    fn hits<'a>(
        &'a self,
        calls: &'a [Call],
        reqs: &[Req],
        chosen: &'a [Option<(usize, f64)>],
    ) -> impl Iterator<Item = (usize, bool)> + 'a {
        let per_req_calls = calls_per_request(reqs, calls, chosen);
        chosen.iter().enumerate().filter_map(move |(j, choice)| {
            let (r, _) = (*choice)?;
            if !self.informative.get(j).copied().unwrap_or(false) {
                return None;
            }
            let start = calls[j].made.start;
            let before = per_req_calls[r].iter().filter(|c| c.end <= start);
            Some((j, self.best_match(j, r, before, u64::MAX).is_some()))
        })
    }

    /// The strongest match of call `j` with request `r`, whose handler had made `calls` before.
    fn best_match<'c>(
        &self,
        j: usize,
        r: usize,
        calls: impl Iterator<Item = &'c Made>,
        calls_bits: u64,
    ) -> Option<f64> {
        let direct = self
            .direct
            .get(j)?
            .iter()
            .find(|(k, _)| *k == r)
            .map(|m| m.1);
        // `via[j]` is sorted by call index: each of the handler's calls within its range is
        // looked up in it (most fall outside: earlier batches', or made after the via calls).
        let via_j = self.via.get(j)?;
        let via = if let (Some(first), Some(last)) = (via_j.first(), via_j.last()) {
            let (range, mask) = (first.0..=last.0, self.via_mask[j]);
            if mask & calls_bits == 0 {
                // None of the handler's calls can be one of them.
                return direct;
            }
            calls
                .filter(|c| range.contains(&c.index) && mask & via_bit(c.index) != 0)
                .filter_map(|c| {
                    let k = via_j.binary_search_by_key(&c.index, |m| m.0).ok()?;
                    Some(via_j[k].1)
                })
                .fold(None, |best: Option<f64>, w| {
                    Some(best.map_or(w, |b| b.max(w)))
                })
        } else {
            None
        };
        match (direct, via) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The log-likelihood ratio the tokens give call `j` being made by request `r`'s handler,
    /// which had made `calls` before it (0 when the batch has no token evidence).
    /// `calls_bits`: the bits of `calls`' indexes (`via_bits`), or more (`u64::MAX`: all); a
    /// handler none of whose calls can be one of `j`'s earlier calls whose response matched is
    /// not looked through.
    pub fn ln(&self, j: usize, r: usize, calls: &[Made], calls_bits: u64) -> f64 {
        if !self.informative.get(j).copied().unwrap_or(false) {
            return 0.0;
        }
        self.best_match(j, r, calls.iter(), calls_bits)
            .unwrap_or(self.no_match[j])
    }
}

/// Every bit of [`via_bit`] for `calls`' indexes: what [`TokenEvidence::ln`] is given.
pub(super) fn via_bits(calls: &[Made]) -> u64 {
    calls.iter().fold(0, |bits, c| bits | via_bit(c.index))
}

/// A call index's bit in [`TokenEvidence::via_mask`].
pub(super) fn via_bit(index: u32) -> u64 {
    1 << (index % 64)
}

fn keep_rarest<K: PartialEq + Copy>(list: &mut Vec<(K, f64)>, k: K, f: f64) {
    match list.iter_mut().find(|(x, _)| *x == k) {
        Some((_, rarest)) => *rarest = rarest.min(f),
        None => list.push((k, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::assign::NOT_IN_BATCH;
    use tapspan_capture::Timestamp;

    fn made(index: u32) -> Made {
        Made {
            start: Timestamp(0),
            end: Timestamp(0),
            launch: 9,
            ret: 10,
            callee: 1,
            conn: 1,
            index,
        }
    }

    #[test]
    fn handlers_passed_over_by_their_bits_score_as_when_looked_through() {
        // Call 0 holds a token of request 1's own context (weight 2.0), and of the responses
        // of calls 3 (1.5) and 70 (3.0) of the batch.
        let mut ev = TokenEvidence::default();
        ev.direct.items.push((1, 2.0));
        ev.direct.close();
        ev.via.items.extend([(3, 1.5), (70, 3.0)]);
        ev.via.close();
        ev.via_mask.push(via_bit(3) | via_bit(70));
        ev.no_match.push(-2.3);
        ev.informative.push(true);
        ev.plausible.close();
        // Call 6 shares call 70's bit (70 % 64), and earlier batches' calls have their own.
        let handlers: [&[Made]; 6] = [
            &[],
            &[made(3)],
            &[made(2), made(70)],
            &[made(6)],
            &[made(NOT_IN_BATCH), made(5)],
            &[made(NOT_IN_BATCH), made(3), made(70)],
        ];
        for calls in handlers {
            for r in 0..3 {
                let looked_through = ev.ln(0, r, calls, u64::MAX);
                assert_eq!(ev.ln(0, r, calls, via_bits(calls)), looked_through);
            }
        }
        assert_eq!(ev.ln(0, 0, &[], 0), -2.3);
        assert_eq!(ev.ln(0, 1, &[], 0), 2.0);
        assert_eq!(ev.ln(0, 0, &[made(6)], via_bits(&[made(6)])), -2.3);
        assert_eq!(ev.ln(0, 0, handlers[5], via_bits(handlers[5])), 3.0);
        assert_eq!(ev.ln(0, 1, handlers[1], via_bits(handlers[1])), 2.0);
    }
}
