//! The beam search over partial assignments of one batch's calls (see [`super::assign`] for the
//! model it scores by): events in time order (requests arriving, calls leaving, requests
//! answering), every kept state extended by each candidate of each call, the best kept.

use std::rc::Rc;

use tapspan_capture::Timestamp;

use super::assign::{
    ln_early, ln_following, ln_tokens, Call, Made, Req, Waiting, CONFIDENCE_TEMPER,
    EXPANSIONS_PER_CALL,
};
use super::nesting::{DelayModel, StepTable, RESPOND};
use super::reuse::{owner, reuse, Kind, PreviousOwner, RatioTable, ReuseModel};
use super::tokens::TokenEvidence;
use crate::keyhash::KeySet;

/// The narrowest beam.
const MIN_BEAM: usize = 16;
/// Below e^-40 (4e-18) a candidate's share of the probability is left out.
const LN_NEGLIGIBLE_SHARE: f64 = -40.0;

#[derive(Clone)]
struct Active {
    req: usize,
    /// Shared between the states that have not given this handler a call since they parted:
    /// a state is cloned for each candidate it keeps, and copying every handler's calls each
    /// time was an eighth of the work (pcaps/workers-c16.pcap).
    calls: Rc<[Made]>,
    /// [`super::tokens::via_bits`] of `calls`: most handlers made none of the calls whose
    /// responses matched a call's tokens, and this tells so without looking through them.
    via_bits: u64,
    /// Identifies `req` with the calls given to it, for merging equivalent states.
    hash: u64,
    waiting: Waiting,
}

/// A call given to a request, and the choice made before it in the same state: a state's
/// choices are a path back through [`Choices`], in call order (latest first).
#[derive(Clone, Copy)]
struct Choice {
    call: usize,
    req: usize,
    prev: ChoiceId,
    /// An earlier choice on the path, further back the longer the path (skew-binary jump
    /// pointers): the choice of a given call is found in a number of steps logarithmic in how
    /// far back it is, not linear.
    jump: ChoiceId,
    /// Choices on the path up to this one.
    depth: u32,
}

/// A choice's place in [`Choices`]; [`NO_CHOICE`] (the root, which is no choice) ends a path.
type ChoiceId = u32;
const NO_CHOICE: ChoiceId = 0;

/// Every choice a search kept, shared by the states that made it: appended to (a choice per kept
/// expansion), so that a kept expansion costs no allocation of its own, and compacted to the
/// paths still held once it has doubled ([`Choices::keep_paths`]).
struct Choices(Vec<Choice>);

/// Choices held before the first compaction (512 KiB).
const FIRST_COMPACTION: usize = 1 << 14;

impl Choices {
    /// The root, with room for `n` choices in all.
    fn with_capacity(n: usize) -> Self {
        let mut choices = Vec::with_capacity(n.max(1));
        choices.push(Choice {
            call: usize::MAX,
            req: usize::MAX,
            prev: NO_CHOICE,
            jump: NO_CHOICE,
            depth: 0,
        });
        Choices(choices)
    }

    fn push(&mut self, call: usize, req: usize, prev: ChoiceId) -> ChoiceId {
        let id = ChoiceId::try_from(self.0.len()).expect("fewer choices than u32::MAX");
        let p = &self.0[prev as usize];
        let pj = &self.0[p.jump as usize];
        let pjj = &self.0[pj.jump as usize];
        let jump = if prev != NO_CHOICE && p.depth - pj.depth == pj.depth - pjj.depth {
            pj.jump
        } else {
            prev
        };
        let depth = p.depth + 1;
        self.0.push(Choice {
            call,
            req,
            prev,
            jump,
            depth,
        });
        id
    }

    /// Keeps only the choices on the paths that end at `ends`, which are rewritten to their new
    /// ids. Without it the arena held every choice of every state ever kept: a beam of width
    /// `b` over `n` calls, `b n` choices (a wide search of lab/threads-c16, 78 MB), where the
    /// paths still held share most of their length. A choice's `prev` and `jump` are earlier
    /// on its path, so earlier in the arena: moved in arena order, they are renumbered before
    /// they are needed.
    fn keep_paths(&mut self, ends: &mut [ChoiceId]) {
        let mut kept = vec![false; self.0.len()];
        kept[NO_CHOICE as usize] = true;
        for &end in ends.iter() {
            let mut id = end;
            while !kept[id as usize] {
                kept[id as usize] = true;
                id = self.0[id as usize].prev;
            }
        }
        let mut renamed = vec![NO_CHOICE; self.0.len()];
        let mut next = 0;
        for id in 0..self.0.len() {
            if !kept[id] {
                continue;
            }
            let mut c = self.0[id];
            c.prev = renamed[c.prev as usize];
            c.jump = renamed[c.jump as usize];
            self.0[next] = c;
            renamed[id] = next as ChoiceId;
            next += 1;
        }
        self.0.truncate(next);
        ends.iter_mut().for_each(|e| *e = renamed[*e as usize]);
    }

    /// The path of choices that ends at `id`, latest first.
    fn path(&self, id: ChoiceId) -> impl Iterator<Item = &Choice> {
        let at = |id: ChoiceId| (id != NO_CHOICE).then(|| &self.0[id as usize]);
        std::iter::successors(at(id), move |c| at(c.prev))
    }

    /// The latest choice on the path that ends at `id` of a call no later than `p`: calls only
    /// fall along a path, so every choice a jump passes over is of a later call than where it
    /// lands.
    fn latest_up_to(&self, mut id: ChoiceId, p: usize) -> Option<&Choice> {
        while id != NO_CHOICE {
            let c = &self.0[id as usize];
            if c.call <= p {
                return Some(c);
            }
            id = if c.jump != NO_CHOICE && self.0[c.jump as usize].call > p {
                c.jump
            } else {
                c.prev
            };
        }
        None
    }
}

struct State {
    score: f64,
    active: Vec<Active>,
    /// Sum of the actives' hashes: equal for states whose open handlers hold the same calls.
    signature: u64,
    /// Its latest choice in [`Search::choices`].
    choices: ChoiceId,
}

enum Event {
    Arrive(usize),
    Call(usize),
    Respond(usize),
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9)
}
/// The request that `state` gave call `p` (None if it gave it none), found by walking its
/// choices back: they are in call order.
fn chosen_in(choices: &Choices, state: &State, p: usize) -> Option<usize> {
    let ch = choices.latest_up_to(state.choices, p)?;
    (ch.call == p).then_some(ch.req)
}

/// Puts the `k` smallest of `items` at its front, in order; the rest after them in no order.
fn put_best_first(items: &mut [u128], k: usize) {
    if k < items.len() {
        items.select_nth_unstable(k);
    }
    items[..k].sort_unstable();
}

/// An expansion's place in the beam's ranking as one integer, smaller first: a higher `rank`
/// first (in `f64::total_cmp`'s order), ties in the order scored (`k`). Integers compare in
/// one instruction where a comparator closure took most of the ranking's time.
fn rank_key(rank: f64, k: usize) -> u128 {
    let bits = rank.to_bits() as i64;
    // `total_cmp`'s key: flipping the magnitude bits of negatives orders them as integers.
    let ordered = (bits ^ ((((bits >> 63) as u64) >> 1) as i64)) as u64 ^ (1 << 63);
    (u128::from(!ordered) << 64) | k as u128
}
/// What the beam ends with: every kept state's choices and weight, and each call's local shares.
pub(super) struct Beam {
    /// Per final state, each call's request (`usize::MAX` for none).
    choices: Vec<Vec<usize>>,
    /// Per final state, its tempered share of the probability (summing to 1).
    weights: Vec<f64>,
    best: usize,
    pub(super) best_score: f64,
    /// For each call, the share each candidate had when the call was decided.
    local_share: Shares,
}

/// For each call, the share of probability each candidate had when the call was decided: one
/// list per call, all in one allocation (a vector per call was a tenth of the search's
/// allocations).
struct Shares {
    items: Vec<(usize, f64)>,
    /// Where each call's list is in `items` (empty for a call not decided).
    of_call: Vec<std::ops::Range<u32>>,
}

impl Shares {
    fn of(&self, j: usize) -> &[(usize, f64)] {
        let range = &self.of_call[j];
        &self.items[range.start as usize..range.end as usize]
    }
}

impl Beam {
    /// The best final state's choice for each call.
    pub(super) fn best(&self) -> Vec<Option<usize>> {
        let Some(best) = self.choices.get(self.best) else {
            return vec![None; self.local_share.of_call.len()];
        };
        best.iter()
            .map(|&k| (k != usize::MAX).then_some(k))
            .collect()
    }

    /// Each chosen parent with its confidence: the share of the final beam that agrees, and
    /// no more than its share when the call was decided, before later evidence (the final beam
    /// often agrees with itself, so this keeps the confidence conservative).
    pub(super) fn links(&self, chosen: &[Option<usize>]) -> Vec<Option<(usize, f64)>> {
        chosen
            .iter()
            .enumerate()
            .map(|(j, k)| {
                let k = (*k)?;
                let agree: f64 = self
                    .choices
                    .iter()
                    .zip(&self.weights)
                    .filter(|(a, _)| a[j] == k)
                    .map(|(_, w)| w)
                    .sum();
                let local = self
                    .local_share
                    .of(j)
                    .iter()
                    .find(|(r, _)| *r == k)
                    .map_or(0.0, |(_, w)| *w);
                Some((k, agree.min(local)))
            })
            .collect()
    }
}

/// One expansion of a call: its score, what the beam keeps it by (the score less what its open
/// handlers have already lost waiting, see [`Waiting`]), the state it extends, the request given
/// the call, and that request's place in the state.
type Expansion = (f64, f64, usize, usize, Option<usize>);
/// A kept expansion: its score, state, request, slot, and the signature of the state it makes.
type Kept = (f64, usize, usize, Option<usize>, u64);

/// The search's state between events (see the module's doc).
struct Search<'a> {
    reqs: &'a [Req],
    calls: &'a [Call],
    tokens: &'a TokenEvidence,
    beam: usize,
    table: StepTable<'a>,
    reuse_ratios: RatioTable,
    reuse_says_nothing: bool,
    states: Vec<State>,
    choices: Choices,
    /// Compact [`Self::choices`] once it holds this many.
    compact_at: usize,
    /// Every state holds the same open handlers in the same order (arrivals and responses are
    /// applied to all alike, and a kept expansion copies its state's order), so a request's
    /// place among them is one lookup, not a scan per state and candidate.
    slot_of: Vec<Option<usize>>,
    /// For each call, the share of probability each candidate had when the call was decided,
    /// before later evidence: a conservative confidence (the final beam often agrees with
    /// itself).
    local_share: Shares,
    // Buffers of each call's work, reused from call to call: its expansions, their ranking,
    // the signatures kept, the expansions kept, how many each state has, the states it makes,
    // and the open handlers of states dropped (for copies of those kept).
    next: Vec<Expansion>,
    ranked: Vec<u128>,
    seen: KeySet<u64>,
    kept: Vec<Kept>,
    children: Vec<usize>,
    spare_states: Vec<State>,
    spare_active: Vec<Vec<Active>>,
}

/// The part of a batch one search goes through: the calls `calls` (indexes, in start order),
/// and the requests' arrivals and responses from `from` until before `until`. A request that
/// arrived before `from` and answers after it is open from the start, without the calls it
/// made before; one still open at `until` is left open, as at the end of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Piece {
    pub calls: std::ops::Range<usize>,
    pub from: Timestamp,
    /// None: to the end of the batch.
    pub until: Option<Timestamp>,
}

impl Piece {
    /// The whole batch.
    pub fn whole(calls: &[Call]) -> Piece {
        Piece {
            calls: 0..calls.len(),
            from: Timestamp(0),
            until: None,
        }
    }

    fn holds(&self, t: Timestamp) -> bool {
        self.from <= t && self.until.is_none_or(|until| t < until)
    }
}

/// The beam search itself (see the module's doc), over `piece` of the batch.
pub(super) fn search(
    reqs: &[Req],
    calls: &[Call],
    model: &DelayModel,
    reuse_model: &ReuseModel,
    tokens: &TokenEvidence,
    beam: usize,
    piece: &Piece,
) -> Beam {
    // What the search's lists will hold, at most: made with that room, not regrown as they fill.
    let calls_here = piece.calls.len();
    let shares: usize = piece
        .calls
        .clone()
        .map(|j| tokens.candidates(j, &calls[j].candidates).len())
        .sum();
    let mut events: Vec<(Timestamp, u8, Event)> = Vec::with_capacity(2 * reqs.len() + calls_here);
    for (i, r) in reqs.iter().enumerate() {
        // Open at some time of the piece: arrived before its end, answering after its start.
        if r.responds < piece.from || piece.until.is_some_and(|until| r.arrived >= until) {
            continue;
        }
        events.push((r.arrived, 0, Event::Arrive(i)));
        if piece.holds(r.responds) {
            events.push((r.responds, 2, Event::Respond(i)));
        }
    }
    for j in piece.calls.clone() {
        events.push((calls[j].made.start, 1, Event::Call(j)));
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));
    let reuse_ratios = reuse_model.table(calls);
    let mut search = Search {
        reqs,
        calls,
        tokens,
        beam,
        table: StepTable::new(model),
        reuse_says_nothing: reuse_ratios.is_flat(),
        reuse_ratios,
        states: vec![State {
            score: 0.0,
            active: Vec::new(),
            signature: 0,
            choices: NO_CHOICE,
        }],
        // A choice per kept expansion, compacted once it holds FIRST_COMPACTION.
        choices: Choices::with_capacity((1 + calls_here * beam).min(FIRST_COMPACTION)),
        compact_at: FIRST_COMPACTION,
        slot_of: vec![None; reqs.len()],
        local_share: Shares {
            items: Vec::with_capacity(shares),
            of_call: vec![0..0; calls.len()],
        },
        next: Vec::new(),
        ranked: Vec::new(),
        seen: KeySet::default(),
        kept: Vec::new(),
        children: Vec::new(),
        spare_states: Vec::new(),
        spare_active: Vec::new(),
    };
    for (at, _, ev) in events {
        match ev {
            Event::Arrive(r) => search.arrive(r),
            Event::Respond(r) => search.respond(r, at),
            Event::Call(j) => search.call(j, at),
        }
    }
    search.finish()
}

impl Search<'_> {
    fn arrive(&mut self, r: usize) {
        self.slot_of[r] = Some(self.states[0].active.len());
        let hash = mix(0x5eed, r as u64);
        let prior = &self.reqs[r].prior_calls;
        let waiting = Waiting::of(&self.reqs[r], prior, &mut self.table);
        let via_bits = super::tokens::via_bits(prior);
        let prior: Rc<[Made]> = Rc::from(&prior[..]);
        for s in &mut self.states {
            s.active.push(Active {
                req: r,
                calls: prior.clone(),
                via_bits,
                hash,
                waiting: waiting.clone(),
            });
            s.signature = s.signature.wrapping_add(hash);
        }
    }

    fn respond(&mut self, r: usize, at: Timestamp) {
        let Some(pos) = self.slot_of[r].take() else {
            return;
        };
        let last = self.states[0].active.last().map(|a| a.req);
        if let Some(moved) = last.filter(|&m| m != r) {
            self.slot_of[moved] = Some(pos);
        }
        let req = &self.reqs[r];
        for s in &mut self.states {
            debug_assert_eq!(s.active[pos].req, r);
            let a = s.active.swap_remove(pos);
            s.signature = s.signature.wrapping_sub(a.hash);
            let still_running = a.waiting.busy_until > at;
            s.score += if still_running {
                ln_early()
            } else {
                let how = a.waiting.follows(req.arrived, &a.calls, at);
                ln_following(req, how, RESPOND, &mut self.table)
            };
        }
    }

    fn call(&mut self, j: usize, at: Timestamp) {
        let (tokens, calls) = (self.tokens, self.calls);
        let candidates = tokens.candidates(j, &calls[j].candidates);
        if candidates.is_empty() {
            return;
        }
        self.expand(j, at, candidates);
        self.shares(j);
        // Viterbi: of states whose open handlers hold the same calls, whose futures are
        // therefore scored alike, only the best is worth keeping; the beam's room goes to
        // assignments that differ where it still matters. Many candidates narrow the beam, so
        // that a call costs at most about EXPANSIONS_PER_CALL scorings wherever concurrency is
        // high.
        let width = self
            .beam
            .min((EXPANSIONS_PER_CALL / candidates.len()).max(MIN_BEAM));
        self.keep_best(j, width);
        self.extend_kept(j);
        if self.choices.0.len() >= self.compact_at {
            let mut ends: Vec<ChoiceId> = self.states.iter().map(|s| s.choices).collect();
            self.choices.keep_paths(&mut ends);
            for (s, end) in self.states.iter_mut().zip(ends) {
                s.choices = end;
            }
            self.compact_at = (2 * self.choices.0.len()).max(FIRST_COMPACTION);
        }
    }

    /// Every kept state extended by giving call `j` to each of its candidates, into `next`.
    fn expand(&mut self, j: usize, at: Timestamp, candidates: &[usize]) {
        let (reqs, call) = (self.reqs, &self.calls[j]);
        self.next.clear();
        for (si, s) in self.states.iter().enumerate() {
            let all_lost: f64 = s.active.iter().map(|a| a.waiting.lost(at)).sum();
            // The request this state gave the previous call on the connection, and on a partner
            // of it (walking the choices back is only worth it where reuse tells something).
            let owner_of = |p: Option<usize>| {
                let q = chosen_in(&self.choices, s, p.filter(|_| !self.reuse_says_nothing)?)?;
                Some(PreviousOwner {
                    req: q,
                    responds: reqs[q].responds,
                })
            };
            let previous = owner_of(call.previous_on_conn);
            let partner_previous = owner_of(self.reuse_ratios.previous_on_partner(j));
            for &r in candidates {
                // A candidate that already answered may still be streaming its response.
                let (score, pos) = match self.slot_of[r] {
                    Some(pos) => {
                        let a = &s.active[pos];
                        let reused = if self.reuse_says_nothing {
                            0.0
                        } else {
                            self.reuse_ratios.ln_ratio(Kind {
                                reuse: reuse(&a.calls, at, &call.made),
                                owner: owner(r, reqs[r].arrived, previous),
                                partner: owner(r, reqs[r].arrived, partner_previous),
                            })
                        };
                        let how = a.waiting.follows(reqs[r].arrived, &a.calls, at);
                        let ln = ln_following(&reqs[r], how, call.made.launch, &mut self.table);
                        let tok = ln_tokens(self.tokens, j, r, &a.calls, a.via_bits);
                        (s.score + ln + reused + tok, Some(pos))
                    }
                    None => {
                        let tok = ln_tokens(self.tokens, j, r, &reqs[r].prior_calls, u64::MAX);
                        (s.score + ln_early() + tok, None)
                    }
                };
                // The handler given the call stops waiting: its loss is in `score`.
                let still_lost = pos.map_or(0.0, |p| s.active[p].waiting.lost(at));
                self.next
                    .push((score, score + all_lost - still_lost, si, r, pos));
            }
        }
    }

    /// Each candidate's share of the expansions' probability, as call `j`'s in `local_share`.
    fn shares(&mut self, j: usize) {
        let top = self
            .next
            .iter()
            .map(|n| n.0)
            .fold(f64::NEG_INFINITY, f64::max);
        let items = &mut self.local_share.items;
        let from = items.len();
        for (score, _, _, r, _) in &self.next {
            let shares = &mut items[from..];
            let ln_w = CONFIDENCE_TEMPER * (score - top);
            // Shares this small are zero to the sums (and cost an `exp` each).
            if ln_w < LN_NEGLIGIBLE_SHARE {
                continue;
            }
            let w = ln_w.exp();
            match shares.iter_mut().find(|(k, _)| k == r) {
                Some((_, m)) => *m += w,
                None => items.push((*r, w)),
            }
        }
        let shares = &mut items[from..];
        let total: f64 = shares.iter().map(|(_, w)| w).sum();
        shares.iter_mut().for_each(|(_, w)| *w /= total);
        let to = u32::try_from(items.len()).expect("fewer shares than u32::MAX");
        self.local_share.of_call[j] = from as u32..to;
    }

    /// The best `width` expansions of call `j` whose states differ, into `kept`, best first,
    /// ties in the order scored. Only the best few are ever looked at, so only they are put in
    /// order (sorting every expansion was a quarter of the time): twice the width at first,
    /// more only if many are duplicates.
    fn keep_best(&mut self, j: usize, width: usize) {
        let (ranked, next) = (&mut self.ranked, &self.next);
        ranked.clear();
        ranked.extend(next.iter().enumerate().map(|(k, n)| rank_key(n.1, k)));
        let mut sorted = (2 * width).min(ranked.len());
        if width == 1 {
            // The best alone is kept (nothing is seen before it): no order beyond it is needed.
            if let Some(best) = (0..ranked.len()).min_by_key(|&i| ranked[i]) {
                ranked.swap(0, best);
                sorted = 1;
            }
        } else {
            put_best_first(ranked, sorted);
        }
        self.seen.clear();
        self.kept.clear();
        let mut i = 0;
        while self.kept.len() < width && i < ranked.len() {
            if i == sorted {
                // Many were duplicates: put twice as many in order.
                let more = (2 * sorted).min(ranked.len());
                put_best_first(&mut ranked[sorted..], more - sorted);
                sorted = more;
            }
            let (score, _, si, r, pos) = next[ranked[i] as u64 as usize];
            let s = &self.states[si];
            i += 1;
            let signature = match pos {
                Some(pos) => {
                    let h: u64 = s.active[pos].hash;
                    s.signature.wrapping_sub(h).wrapping_add(mix(h, j as u64))
                }
                None => s.signature,
            };
            if self.seen.insert(signature) {
                self.kept.push((score, si, r, pos, signature));
            }
        }
    }

    /// The kept expansions of call `j` become the states. A state's last kept expansion takes
    /// its open handlers; the others copy them (into the vectors of states dropped earlier).
    fn extend_kept(&mut self, j: usize) {
        let call = &self.calls[j];
        let children = &mut self.children;
        children.clear();
        children.resize(self.states.len(), 0);
        for k in &self.kept {
            children[k.1] += 1;
        }
        let mut parents =
            std::mem::replace(&mut self.states, std::mem::take(&mut self.spare_states));
        let (reqs, table) = (self.reqs, &mut self.table);
        for &(score, si, r, pos, signature) in &self.kept {
            children[si] -= 1;
            let s = &mut parents[si];
            let mut active = if children[si] == 0 {
                std::mem::take(&mut s.active)
            } else {
                let mut copy = self.spare_active.pop().unwrap_or_default();
                copy.extend_from_slice(&s.active);
                copy
            };
            if let Some(pos) = pos {
                let a = &mut active[pos];
                a.calls = a.calls.iter().copied().chain([call.made]).collect();
                a.via_bits |= super::tokens::via_bit(call.made.index);
                a.waiting = a.waiting.after(&reqs[r], &call.made, table);
                a.hash = mix(a.hash, j as u64);
            }
            self.states.push(State {
                score,
                active,
                signature,
                choices: self.choices.push(j, r, s.choices),
            });
        }
        for mut s in parents.drain(..) {
            if s.active.capacity() > 0 {
                s.active.clear();
                self.spare_active.push(s.active);
            }
        }
        self.spare_states = parents;
    }

    /// What the beam ends with. Requests still open at the end of the batch add nothing more.
    fn finish(self) -> Beam {
        let states = &self.states;
        let best = states
            .iter()
            .map(|s| s.score)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut weights: Vec<f64> = states
            .iter()
            .map(|s| (CONFIDENCE_TEMPER * (s.score - best)).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let choices_of = |s: &State| {
            let mut out = vec![usize::MAX; self.calls.len()];
            for ch in self.choices.path(s.choices) {
                out[ch.call] = ch.req;
            }
            out
        };
        Beam {
            choices: states.iter().map(choices_of).collect(),
            weights,
            best: states.iter().position(|s| s.score == best).unwrap_or(0),
            best_score: best,
            local_share: self.local_share,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_find_the_choice_a_walk_back_finds() {
        // States branching at random, each extended by the next call (calls rise along a path).
        let mut choices = Choices::with_capacity(1);
        let mut ends = vec![NO_CHOICE];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for call in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = ends[x as usize % ends.len()];
            // Some calls are given to no request: skipped on the path.
            if x % 5 != 0 {
                ends.push(choices.push(call, (x % 7) as usize, from));
            }
        }
        for &end in ends.iter().step_by(37) {
            for p in (0..2000).step_by(13) {
                let walked = choices
                    .path(end)
                    .find(|c| c.call <= p)
                    .map(|c| (c.call, c.req));
                let jumped = choices.latest_up_to(end, p).map(|c| (c.call, c.req));
                assert_eq!(jumped, walked, "{end} {p}");
            }
        }
        // Compacted to the paths of a few ends: the same paths, found the same way, in less.
        let path = |choices: &Choices, end| -> Vec<(usize, usize)> {
            choices.path(end).map(|c| (c.call, c.req)).collect()
        };
        let held: Vec<ChoiceId> = ends.iter().copied().step_by(101).collect();
        let before: Vec<_> = held.iter().map(|&e| path(&choices, e)).collect();
        let mut renamed = held.clone();
        let len = choices.0.len();
        choices.keep_paths(&mut renamed);
        assert!(choices.0.len() < len / 2, "{} of {len}", choices.0.len());
        for ((&end, want), &old) in renamed.iter().zip(&before).zip(&held) {
            assert_eq!(&path(&choices, end), want, "{old}");
            for p in (0..2000).step_by(13) {
                let walked = want.iter().find(|c| c.0 <= p).copied();
                let jumped = choices.latest_up_to(end, p).map(|c| (c.call, c.req));
                assert_eq!(jumped, walked, "{old} {p}");
            }
        }
    }

    #[test]
    fn rank_keys_order_as_total_cmp_then_index() {
        let ranks = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
            -3.0,
            3.0,
        ];
        for (i, &a) in ranks.iter().enumerate() {
            for (j, &b) in ranks.iter().enumerate() {
                let want = b.total_cmp(&a).then(i.cmp(&j));
                assert_eq!(rank_key(a, i).cmp(&rank_key(b, j)), want, "{a} {b}");
            }
        }
    }
}
