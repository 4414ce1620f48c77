//! Joint assignment of a service's outbound calls to the inbound requests that triggered them.
//!
//! Each request handler is modelled as a chain: the request arrives, the handler thinks, calls,
//! waits, thinks, calls, …, thinks, responds. Every "think" is a processing delay drawn from the
//! service's [`DelayModel`], which knows each endpoint's template (which step follows which, and
//! that step's own delay: `/checkout` calls users ~300 µs after arriving, orders ~200 µs after
//! users returned, …); a call launched while another call of the same handler is still
//! running is either a parallel fan-out (launched right after its sibling) or, rarely, an async
//! handler. Calls are taken in start order and each partial assignment is scored by the
//! likelihood of its delays, including the delay from a request's last call to its response —
//! the evidence that settles a coin flip made earlier. A beam of the best partial assignments
//! is kept (`beam` wide), and partial assignments whose open handlers hold the same calls are
//! merged (only the best is kept: what is left to score cannot tell them apart), so the beam's
//! room goes to alternatives that still matter. Partial assignments are kept by their score
//! less what their open handlers have already lost by waiting ([`Waiting`]): a handler left
//! without its next call long past its usual delay will pay for that when it finally acts, or
//! answers, often milliseconds later, and ranking by the score alone let such states crowd out
//! the right one in the meantime (a request whose handler paused 1.5 ms before its first call
//! lost all its calls to its neighbours, a cascade through five handlers). Payload tokens
//! ([`super::tokens`]) add their log-likelihood ratio to each (call, handler) scored. The best
//! complete one wins ([`assign_refined`]: then improved by local moves, [`super::refine`]), and a call's
//! confidence is the share of the final beam's probability mass that agrees with it.

use std::cell::Cell;

use tapspan_capture::Timestamp;

use super::beam::{search, Piece};
use super::nesting::{
    alongside, DelayModel, Step, StepKey, StepTable, WaitingLoss, ARRIVAL, RESPOND,
};
use super::refine::refine;
use super::reuse::{owner, reuse, Kind, Observations, PreviousOwner, ReuseModel};
use super::tokens::TokenEvidence;

/// A candidate parent: an inbound request at the calling service.
#[derive(Clone, Debug)]
pub struct Req {
    /// When its request had arrived (its last byte), or its first byte.
    pub arrived: Timestamp,
    /// When it began to answer.
    pub responds: Timestamp,
    /// Which endpoint it asked for (a key of the delay model's templates).
    pub endpoint: u64,
    /// Calls already attributed to it, by earlier decisions.
    pub prior_calls: Vec<Made>,
}

/// A call a handler made: when, and its step keys (see [`super::nesting::StepKey`]).
#[derive(Clone, Copy, Debug)]
pub struct Made {
    pub start: Timestamp,
    pub end: Timestamp,
    /// The step "call this endpoint".
    pub launch: StepKey,
    /// The step "this call returned (failed or not)".
    pub ret: StepKey,
    /// Who was called (a hash of the server's address), and on which connection (a hash of
    /// both addresses; 0 when unknown): see [`super::reuse`].
    pub callee: u64,
    pub conn: u64,
    /// Its index among the batch's calls ([`NOT_IN_BATCH`] for a call decided earlier).
    pub index: u32,
}

/// [`Made::index`] of a call decided in an earlier batch.
pub const NOT_IN_BATCH: u32 = u32::MAX;

/// An outbound call and the requests that could have made it (indexes into the `Req` slice).
#[derive(Clone, Debug)]
pub struct Call {
    pub made: Made,
    pub candidates: Vec<usize>,
    /// The call before it on the same connection, if that is one of these calls.
    pub previous_on_conn: Option<usize>,
}

/// Scorings per call the beam is narrowed to, beyond 16 candidates at full width (1024): past
/// that concurrency, nesting by timing alone is often wrong anyway, and the work would grow
/// with its square.
pub const EXPANSIONS_PER_CALL: usize = 16_384;

/// Launches closer than this to a still-running sibling are taken as parallel fan-out.
pub const PARALLEL_LAUNCH_NS: u64 = 150_000;
// Every score below is a log *density* per nanosecond, so that the alternatives compare fairly.
/// Share of calls that are parallel launches; they follow their sibling within tens of µs.
const P_PARALLEL: f64 = 0.15;
const PARALLEL_SCALE_NS: f64 = 50_000.0;
/// Share of calls launched while the handler waits on another one (async handlers).
const P_BUSY: f64 = 0.0025;
/// Share of handlers that answer before a call of theirs returned (streaming proxies).
const P_RESPONDED_EARLY: f64 = 0.05;
/// Log density of a delay nothing models: spread over about a millisecond.
const LN_UNKNOWN_DELAY: f64 = -13.815_510_557_964_274; // -ln(1e6)

/// Confidence is computed from likelihoods raised to this power: the delay model is fitted to
/// the data it scores, so raw posteriors are over-confident; tempering keeps "≥ 0.9" honest.
pub(super) const CONFIDENCE_TEMPER: f64 = 0.25;
/// What the payload tokens say of call `j` made by `r`'s handler after `calls`, on the scale of
/// the timing scores. The timing model is fitted to the assignments it scores, so it is
/// over-confident by the factor [`CONFIDENCE_TEMPER`] corrects for; token weights are counted
/// from the batch (how rare a value is, how often a kind of call carries its parent's), so
/// they enter at that factor's inverse: a confidence then gives them their own weight, and a
/// batch without tokens is scored as before. `calls_bits`: see [`TokenEvidence::ln`]
/// (`u64::MAX` where they are not kept).
pub(super) fn ln_tokens(
    tokens: &TokenEvidence,
    j: usize,
    r: usize,
    calls: &[Made],
    calls_bits: u64,
) -> f64 {
    tokens.ln(j, r, calls, calls_bits) / CONFIDENCE_TEMPER
}

/// Log density of a parallel launch's gap after its sibling, before that step has been seen.
fn ln_parallel_gap(gap_ns: u64) -> f64 {
    -PARALLEL_SCALE_NS.ln() - gap_ns as f64 / PARALLEL_SCALE_NS
}

pub(super) fn ln_early() -> f64 {
    P_RESPONDED_EARLY.ln() + LN_UNKNOWN_DELAY
}

/// How the next event of a handler follows its earlier ones.
pub(super) enum Follows {
    /// Launched while a sibling (this call) launched this long ago is running: parallel fan-out.
    Parallel { sibling: StepKey, gap_ns: u64 },
    /// Launched while another of its calls runs, not right after it (async handlers).
    Busy { since_arrival: u64 },
    /// After the last of its calls returned (or its arrival): the step, and the delay.
    Sequential { prev: StepKey, gap_ns: u64 },
}

fn follows(arrived: Timestamp, calls: &[Made], at: Timestamp) -> Follows {
    let running = calls
        .iter()
        .filter(|c| c.start <= at && at < c.end)
        .map(|c| (c.start, c.launch))
        .max();
    match running {
        Some((launched, sibling)) if at.saturating_since(launched) <= PARALLEL_LAUNCH_NS => {
            Follows::Parallel {
                sibling,
                gap_ns: at.saturating_since(launched),
            }
        }
        Some(_) => Follows::Busy {
            since_arrival: at.saturating_since(arrived),
        },
        None => {
            let (last, prev) = latest_step(arrived, calls.iter().filter(|c| c.end <= at));
            Follows::Sequential {
                prev,
                gap_ns: at.saturating_since(last),
            }
        }
    }
}

/// A handler's latest step among `ended` calls: the return that came last (of those after its
/// request arrived), or its arrival.
fn latest_step<'a>(
    arrived: Timestamp,
    ended: impl Iterator<Item = &'a Made>,
) -> (Timestamp, StepKey) {
    ended
        .filter(|c| c.end >= arrived)
        .map(|c| (c.end, c.ret))
        .max()
        .unwrap_or((arrived, ARRIVAL))
}

/// Log-likelihood of a handler of `req` taking step `next` at `at`, after `calls`.
pub(super) fn ln_next(
    req: &Req,
    calls: &[Made],
    at: Timestamp,
    next: StepKey,
    steps: &mut StepTable,
) -> f64 {
    ln_following(req, follows(req.arrived, calls, at), next, steps)
}

/// Log-likelihood of a handler of `req` taking step `next` as `how` says it follows.
pub(super) fn ln_following(req: &Req, how: Follows, next: StepKey, steps: &mut StepTable) -> f64 {
    let model = steps.model;
    match how {
        Follows::Parallel { sibling, gap_ns } => {
            P_PARALLEL.ln()
                + model.ln_parallel_step(
                    req.endpoint,
                    sibling,
                    next,
                    gap_ns,
                    ln_parallel_gap(gap_ns),
                )
        }
        Follows::Busy { since_arrival } => P_BUSY.ln() + steps.ln_density(since_arrival),
        Follows::Sequential { prev, gap_ns } => {
            (1.0 - P_PARALLEL - P_BUSY).ln() + steps.ln_step(req.endpoint, prev, next, gap_ns)
        }
    }
}

/// How long a handler has been waiting to take its next step, and what that costs it: the
/// beam ranks partial assignments by their score less what their open handlers have already
/// lost waiting (see [`search`]).
#[derive(Clone)]
pub(super) struct Waiting {
    /// Until then one of its calls runs, and it waits on that, losing nothing.
    pub(super) busy_until: Timestamp,
    /// Its last step (arrival, or the return of its latest call), and when.
    prev: StepKey,
    since: Timestamp,
    /// [`StepTable::waiting_loss`] after `prev`.
    loss: WaitingLoss,
    /// The loss last found by [`Self::lost`], and the waits that lose the same: the beam asks
    /// every open handler at every call, as time moves on by less than a bin.
    lost_in: Cell<(f64, u64, u64)>,
}

/// [`Waiting::lost_in`] before anything is found.
const NOT_LOST_YET: (f64, u64, u64) = (0.0, 1, 0);

impl Waiting {
    pub(super) fn of(req: &Req, calls: &[Made], steps: &mut StepTable) -> Self {
        let (since, prev) = latest_step(req.arrived, calls.iter());
        Waiting {
            busy_until: calls.iter().map(|c| c.end).max().unwrap_or(Timestamp(0)),
            prev,
            since,
            loss: steps.waiting_loss(req.endpoint, prev),
            lost_in: Cell::new(NOT_LOST_YET),
        }
    }

    /// After the handler also made `call` (what [`Self::of`] gives with it, at less cost).
    pub(super) fn after(&self, req: &Req, call: &Made, steps: &mut StepTable) -> Self {
        let mut w = self.clone();
        w.busy_until = w.busy_until.max(call.end);
        if call.end >= req.arrived && (call.end, call.ret) > (w.since, w.prev) {
            (w.since, w.prev) = (call.end, call.ret);
            w.loss = steps.waiting_loss(req.endpoint, call.ret);
            w.lost_in.set(NOT_LOST_YET);
        }
        w
    }

    /// [`follows`] for this handler (`calls` are its calls): its calls are scanned only while
    /// one of them runs; otherwise `follows` would find the step kept here.
    pub(super) fn follows(&self, arrived: Timestamp, calls: &[Made], at: Timestamp) -> Follows {
        if at < self.busy_until {
            follows(arrived, calls, at)
        } else {
            Follows::Sequential {
                prev: self.prev,
                gap_ns: at.saturating_since(self.since),
            }
        }
    }

    /// What it has lost waiting by `at` (≤ 0), as [`follows`] would see it: nothing while a
    /// call of its runs.
    pub(super) fn lost(&self, at: Timestamp) -> f64 {
        if at < self.busy_until {
            return 0.0;
        }
        let waited = at.saturating_since(self.since);
        let (lost, from, until) = self.lost_in.get();
        if (from..until).contains(&waited) {
            return lost;
        }
        let (lost, waits) = self.loss.after_in_bin(waited);
        self.lost_in.set((lost, waits.start, waits.end));
        lost
    }
}

/// Each request's calls under an assignment: those decided earlier, then those chosen now.
pub fn calls_per_request(
    reqs: &[Req],
    calls: &[Call],
    chosen: &[Option<(usize, f64)>],
) -> Vec<Vec<Made>> {
    // Each list made at its final size: pushing onto a copy of the earlier calls regrew it.
    let mut chosen_of = vec![0usize; reqs.len()];
    for (k, _) in chosen.iter().flatten() {
        chosen_of[*k] += 1;
    }
    let mut per_req: Vec<Vec<Made>> = reqs
        .iter()
        .zip(&chosen_of)
        .map(|(r, &n)| {
            let mut calls = Vec::with_capacity(r.prior_calls.len() + n);
            calls.extend_from_slice(&r.prior_calls);
            calls
        })
        .collect();
    for (c, choice) in calls.iter().zip(chosen) {
        if let Some((k, _)) = choice {
            per_req[*k].push(c.made);
        }
    }
    per_req
}

/// The sequential steps an assignment implies (what [`ln_next`] scores), to fit the model to.
pub fn steps(reqs: &[Req], calls: &[Call], chosen: &[Option<(usize, f64)>]) -> Vec<Step> {
    let per_req = calls_per_request(reqs, calls, chosen);
    let mut out = Vec::new();
    for (r, mut cs) in reqs.iter().zip(per_req) {
        cs.sort_by_key(|c| c.start);
        let mut step = |at: Timestamp, next: StepKey, before: &[Made]| {
            let (prev, gap_ns, parallel) = match follows(r.arrived, before, at) {
                Follows::Sequential { prev, gap_ns } => (prev, gap_ns, false),
                Follows::Parallel { sibling, gap_ns } => (alongside(sibling), gap_ns, true),
                Follows::Busy { .. } => return,
            };
            out.push(Step {
                endpoint: r.endpoint,
                prev,
                next,
                gap_ns,
                parallel,
            });
        };
        for k in 0..cs.len() {
            if cs[k].start >= r.arrived {
                step(cs[k].start, cs[k].launch, &cs[..k]);
            }
        }
        if r.responds >= r.arrived && !cs.iter().any(|c| c.end > r.responds) {
            step(r.responds, RESPOND, &cs);
        }
    }
    out
}

/// The parent an assignment gave call `p`.
fn owner_in(reqs: &[Req], chosen: &[Option<(usize, f64)>], p: usize) -> Option<PreviousOwner> {
    let (k, _) = (*chosen.get(p)?)?;
    Some(PreviousOwner {
        req: k,
        responds: reqs[k].responds,
    })
}

/// What an assignment shows of connection reuse: for each call with a chosen parent, the
/// [`Kind`] of every candidate, whether it is the chosen one, and the choice's confidence.
/// Visited where they are counted, never gathered: the front service's thousands of calls
/// times their candidates made a vector of megabytes, regrown by doubling, at every refit.
pub struct ReuseObservations<'a> {
    pub reqs: &'a [Req],
    pub calls: &'a [Call],
    pub chosen: &'a [Option<(usize, f64)>],
    /// Each call's previous call on a partner of its connection
    /// ([`super::partners::Partners::previous_calls`]).
    pub previous_on_partner: &'a [Option<usize>],
}

impl Observations for ReuseObservations<'_> {
    fn weight(&self) -> f64 {
        self.calls
            .iter()
            .zip(self.chosen)
            .filter_map(|(c, choice)| {
                choice.map(|(_, confidence)| std::iter::repeat_n(confidence, c.candidates.len()))
            })
            .flatten()
            .sum()
    }

    fn each(&self, mut observe: impl FnMut(Kind, bool, f64)) {
        let (reqs, calls, chosen) = (self.reqs, self.calls, self.chosen);
        let per_req = calls_per_request(reqs, calls, chosen);
        for (j, (c, choice)) in calls.iter().zip(chosen).enumerate() {
            let Some((k, confidence)) = choice else {
                continue;
            };
            let previous = c.previous_on_conn.and_then(|p| owner_in(reqs, chosen, p));
            let partner_previous = self
                .previous_on_partner
                .get(j)
                .copied()
                .flatten()
                .and_then(|p| owner_in(reqs, chosen, p));
            for &r in &c.candidates {
                let kind = Kind {
                    reuse: reuse(&per_req[r], c.made.start, &c.made),
                    owner: owner(r, reqs[r].arrived, previous),
                    partner: owner(r, reqs[r].arrived, partner_previous),
                };
                observe(kind, r == *k, *confidence);
            }
        }
    }
}

/// For each call, `(index of the chosen request, confidence)`, or None without candidates.
pub type Links = Vec<Option<(usize, f64)>>;

/// An assignment and its log-likelihood under the model that found it.
pub struct Assignment {
    pub links: Links,
    pub score: f64,
}

/// Log of the prior probability of any one assignment when each call is equally likely to have
/// been made by any handler running when it left: the score of [`assign`] plus this is the
/// log of the joint probability of the calls and the assignment, comparable between readings
/// of the same calls that give them more or fewer possible parents (a reading with more
/// alternatives can always fit better, and pays for it here).
pub fn ln_prior(reqs: &[Req], calls: &[Call]) -> f64 {
    calls
        .iter()
        .map(|c| {
            let running = c
                .candidates
                .iter()
                .filter(|&&r| reqs[r].arrived <= c.made.start && c.made.start < reqs[r].responds)
                .count();
            -(running.max(1) as f64).ln()
        })
        .sum()
}

/// Calls one beam search decides at most: a longer batch is cut in time into pieces of about
/// this many calls, searched side by side ([`pieces`]). The cut depends on the batch only, so
/// the result is the same on any number of threads.
pub const CALLS_PER_PIECE: usize = 1024;

/// Calls a piece goes through before those it decides, at most (see [`pieces`]).
const WARM_UP_CALLS: usize = CALLS_PER_PIECE / 2;

/// The pieces a batch's search is cut into, each with the calls it decides. A beam decides a
/// call from the handlers open when it leaves and what they did before, so a piece starts
/// earlier than the calls it decides: at the arrival of the earliest request still open at its
/// first call (at most [`WARM_UP_CALLS`] calls before it). Its beam then sees those handlers
/// whole, as the search of the whole batch would; it differs only in which alternatives for
/// earlier calls it still holds, and the calls it goes through before its own are decided by
/// the piece before. Cost: at most 1.5 times the calls searched, on as many threads as there
/// are pieces.
pub(super) fn pieces(reqs: &[Req], calls: &[Call]) -> Vec<(Piece, std::ops::Range<usize>)> {
    let n = calls.len();
    let count = n.div_ceil(CALLS_PER_PIECE).max(1);
    if count == 1 {
        return vec![(Piece::whole(calls), 0..n)];
    }
    let bounds: Vec<usize> = (0..=count).map(|k| k * n / count).collect();
    bounds
        .windows(2)
        .map(|w| {
            let decides = w[0]..w[1];
            if w[0] == 0 {
                let until = Some(calls[w[1]].made.start);
                return (
                    Piece {
                        calls: 0..w[1],
                        from: Timestamp(0),
                        until,
                    },
                    decides,
                );
            }
            let cut = calls[w[0]].made.start;
            let open_at_cut = reqs
                .iter()
                .filter(|r| r.arrived <= cut && cut < r.responds)
                .map(|r| r.arrived)
                .min()
                .unwrap_or(cut);
            let earliest = w[0].saturating_sub(WARM_UP_CALLS);
            let first = calls[earliest..w[0]].partition_point(|c| c.made.start < open_at_cut);
            let first = earliest + first;
            let from = open_at_cut.max(calls[earliest].made.start);
            let until = calls.get(w[1]).map(|c| c.made.start);
            (
                Piece {
                    calls: first..w[1],
                    from,
                    until,
                },
                decides,
            )
        })
        .collect()
}

/// The best assignment the beam finds, its pieces ([`pieces`]) searched on up to `threads`.
pub fn assign(
    reqs: &[Req],
    calls: &[Call],
    model: &DelayModel,
    reuse_model: &ReuseModel,
    tokens: &TokenEvidence,
    beam: usize,
    threads: usize,
) -> Assignment {
    let solved = super::run_side_by_side(pieces(reqs, calls), threads, |(piece, decides)| {
        let beam = search(reqs, calls, model, reuse_model, tokens, beam, piece);
        let chosen = beam.best();
        let links = beam.links(&chosen);
        (links[decides.clone()].to_vec(), beam.best_score)
    });
    let mut links = Vec::with_capacity(calls.len());
    let mut score = 0.0;
    for (piece_links, piece_score) in solved {
        links.extend(piece_links);
        score += piece_score;
    }
    Assignment { links, score }
}

/// [`assign`], then improved by local moves ([`super::refine`]): never less likely than the
/// beam's best (docs/causality.md says where that pays). A call the moves gave another parent
/// takes the beam's confidence in that parent.
pub fn assign_refined(
    reqs: &[Req],
    calls: &[Call],
    model: &DelayModel,
    reuse_model: &ReuseModel,
    tokens: &TokenEvidence,
    beam: usize,
) -> Assignment {
    let beam = search(
        reqs,
        calls,
        model,
        reuse_model,
        tokens,
        beam,
        &Piece::whole(calls),
    );
    let mut chosen = beam.best();
    let _work = refine(
        reqs,
        calls,
        &mut chosen,
        StepTable::new(model),
        reuse_model.table(calls),
        tokens,
    );
    // The score stays the beam's: the moves only ever raise it.
    Assignment {
        links: beam.links(&chosen),
        score: beam.best_score,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn t(us: u64) -> Timestamp {
        Timestamp(us * 1000)
    }

    /// `n` handlers of endpoint 7 arriving 700 µs apart, each: +300 µs a call (200 µs
    /// long), +300 µs after it returned another, +300 µs after that the response; each call's
    /// candidates are the requests open when it leaves.
    pub(in crate::causality) fn staggered_handlers(n: u64) -> (Vec<Req>, Vec<Call>, Vec<usize>) {
        let reqs: Vec<Req> = (0..n)
            .map(|k| Req {
                arrived: t(700 * k),
                responds: t(700 * k + 1300),
                endpoint: 7,
                prior_calls: vec![],
            })
            .collect();
        let mut calls: Vec<(Call, usize)> = Vec::new();
        for k in 0..n {
            for offset in [300, 800] {
                let start = t(700 * k + offset);
                let candidates = (0..n as usize)
                    .filter(|&r| reqs[r].arrived <= start && start < reqs[r].responds)
                    .collect();
                let made = Made {
                    start,
                    end: Timestamp(start.0 + 200_000),
                    launch: 9,
                    ret: 10,
                    callee: 3,
                    conn: 0,
                    index: 0,
                };
                let call = Call {
                    made,
                    candidates,
                    previous_on_conn: None,
                };
                calls.push((call, k as usize));
            }
        }
        calls.sort_by_key(|(c, _)| c.made.start);
        let truth = calls.iter().map(|(_, k)| *k).collect();
        let mut calls: Vec<Call> = calls.into_iter().map(|(c, _)| c).collect();
        for (j, c) in calls.iter_mut().enumerate() {
            c.made.index = j as u32;
        }
        (reqs, calls, truth)
    }

    #[test]
    fn a_long_batch_is_searched_in_pieces_as_if_whole() {
        let (reqs, calls, truth) = staggered_handlers(1500);
        let pieces = pieces(&reqs, &calls);
        assert_eq!(pieces.len(), calls.len().div_ceil(CALLS_PER_PIECE));
        // The pieces decide every call once, in order, each going through a few before.
        let decided: Vec<usize> = pieces.iter().flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(decided, (0..calls.len()).collect::<Vec<_>>());
        for (piece, decides) in &pieces[1..] {
            let before = decides.start - piece.calls.start;
            assert!(
                (1..=WARM_UP_CALLS).contains(&before),
                "{before} calls before"
            );
        }
        let model = DelayModel::every_step_after(7, 300_000, 7);
        let (reuse, tokens) = (ReuseModel::default(), TokenEvidence::none());
        let run = |threads| {
            let got = assign(&reqs, &calls, &model, &reuse, &tokens, 16, threads);
            got.links.iter().map(|l| l.unwrap().0).collect::<Vec<_>>()
        };
        let whole = search(
            &reqs,
            &calls,
            &model,
            &reuse,
            &tokens,
            16,
            &Piece::whole(&calls),
        );
        let whole: Vec<usize> = whole.best().iter().map(|k| k.unwrap()).collect();
        assert_eq!(whole, truth);
        assert_eq!(run(1), whole);
        assert_eq!(run(2), whole);
    }

    #[test]
    fn interleaved_handlers_are_separated_by_their_delays() {
        // Two handlers, each: arrive, +300 µs call (200 µs long), +300 µs call, +300 µs respond.
        // B arrives 100 µs after A, so their calls interleave.
        let reqs = vec![
            Req {
                arrived: t(0),
                responds: t(1300),
                endpoint: 7,
                prior_calls: vec![],
            },
            Req {
                arrived: t(100),
                responds: t(1400),
                endpoint: 7,
                prior_calls: vec![],
            },
        ];
        let call = |s| Call {
            made: Made {
                start: t(s),
                end: t(s + 200),
                launch: 9,
                ret: 10,
                callee: 3,
                conn: 0,
                index: NOT_IN_BATCH,
            },
            candidates: vec![0, 1],
            previous_on_conn: None,
        };
        let calls = vec![call(300), call(400), call(800), call(900)];
        let mut model = DelayModel::default();
        for _ in 0..5 {
            let got = assign(
                &reqs,
                &calls,
                &model,
                &ReuseModel::default(),
                &TokenEvidence::none(),
                16,
                1,
            )
            .links;
            model = DelayModel::every_step_after(7, 300_000, 7);
            let parents: Vec<usize> = got.iter().map(|c| c.unwrap().0).collect();
            if parents == vec![0, 1, 0, 1] {
                return;
            }
        }
        panic!("never separated");
    }
}
