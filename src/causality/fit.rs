//! Hard EM over one batch of a caller's calls: assign with the current models, refit the models
//! to that assignment (added to what earlier batches taught them), assign again, until few
//! calls change parent; then the final, wider assignment.
//!
//! What is learned: the delay model (each step's think time, [`DelayModel`]), the connection
//! reuse ratios ([`ReuseModel`], only where connections are evidence) and the payload tokens'
//! propagation rates ([`Propagation`]).
//!
//! Cost: at most `rounds + 2` beam searches of the batch (`rounds + 1` when EM's result is not
//! scored, see [`settle`]), each linear in its calls (times the
//! beam width and the candidates per call, both capped in `assign`), each cut in pieces searched
//! on up to [`Effort::threads`] threads (`assign::pieces`).

use super::assign::{self, Call, Links, Req};
use super::guess;
use super::nesting::DelayModel;
use super::partners::Partners;
use super::reuse::ReuseModel;
use super::tokens::{Propagation, TokenEvidence, TokenMatches};

/// How hard nesting searches (`--nesting-search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Search {
    /// A narrow beam where payload tokens carry the batch, else [`Effort::FAST`].
    #[default]
    Adaptive,
    /// [`Effort::WIDE`] for every batch.
    Wide,
}

/// A batch is left to the narrow search when at least this share of its calls carry a rare
/// value of their parent's (with that much evidence the beam has little to search; without it,
/// on pcaps/workers-c16.pcap, beam 8 finds 46 % of the parents that beam 64 finds 97 % of).
pub const TOKENS_CARRY: f64 = 0.5;

/// How hard the search works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effort {
    /// Beam width while EM refits the models: the fit needs a good assignment, not the best.
    pub em_beam: usize,
    /// Refits at most (EM stops once the assignment has settled).
    pub em_rounds: usize,
    /// Beam width of the final assignment.
    pub final_beam: usize,
    /// Local moves after the final beam ([`super::refine`]).
    pub refine: bool,
    /// Threads a search may use (`assign::pieces`; the result does not depend on it).
    pub threads: usize,
}

impl Effort {
    /// This effort on up to `threads` threads.
    pub fn on(self, threads: usize) -> Effort {
        Effort { threads, ..self }
    }
}

impl Effort {
    /// Where payload tokens carry the batch: on the causality lab's real recordings as right as
    /// the wider searches (docs/causality.md has the table), at a fraction of their time. EM is
    /// greedy here: with tokens deciding most calls, the models fitted to a greedy assignment
    /// are as good as to a beam's (the lab is as right or better at every concurrency but the
    /// event loop at 64, within a point). Without tokens ([`Self::FAST`]) they are not.
    pub const NARROW: Effort = Effort {
        em_beam: 1,
        em_rounds: 2,
        final_beam: 8,
        refine: false,
        threads: 1,
    };
    /// Where they do not: timing and connections must be searched for.
    pub const FAST: Effort = Effort {
        em_beam: 16,
        em_rounds: 4,
        final_beam: 64,
        refine: false,
        threads: 1,
    };
    /// `--nesting-search wide`: the search of the releases before payload tokens.
    pub const WIDE: Effort = Effort {
        em_beam: 128,
        em_rounds: 16,
        final_beam: 1024,
        refine: true,
        threads: 1,
    };
}

/// EM has settled once no more than one call in this many changes parent in a round. Waiting
/// for no change at all can take every round: EM may cycle between assignments a few calls
/// apart.
const SETTLED_BELOW_ONE_IN: usize = 200;

/// A service whose model has learned from fewer delays than this starts a batch from
/// [`guess::of_batch`] instead.
const FIRST_GUESS_BELOW_SAMPLES: f64 = 200.0;

/// What a caller's models know, carried from batch to batch.
#[derive(Clone, Debug, Default)]
pub struct Learned {
    pub delays: DelayModel,
    pub reuse: ReuseModel,
    pub propagation: Propagation,
}

/// A batch's assignment with the models refitted to it.
pub struct Fitted {
    pub links: Links,
    pub learned: Learned,
    /// The share of calls whose parent holds one of their rare tokens.
    pub token_share: f64,
}

/// What EM refits from: what earlier batches taught, or, while that is little, the first
/// guess from the batch itself ([`guess::of_batch`]). The guess stays in every refit: fitted
/// to a first assignment alone, the model learns that assignment's mistakes as the usual
/// delays. It depends on the requests' start times, so each reading of them has its own.
/// On up to `threads` threads.
pub fn base_model(history: &Learned, reqs: &[Req], calls: &[Call], threads: usize) -> DelayModel {
    if history.delays.samples() < FIRST_GUESS_BELOW_SAMPLES {
        if let Some(guess) = guess::of_batch(reqs, calls, threads) {
            return guess;
        }
    }
    history.delays.clone()
}

/// What EM settled on: the models as it last refitted them, and, when scored, the
/// log-likelihood of the assignment they make (found at the EM beam's width).
pub struct Settled {
    pub learned: Learned,
    evidence: TokenEvidence,
    pub score: Option<f64>,
}

/// Where EM starts: what earlier batches taught, the delay model it refits from (see
/// [`base_model`]), and the token evidence under `history`'s propagation rates.
#[derive(Clone, Copy)]
pub struct Start<'a> {
    pub history: &'a Learned,
    pub base: &'a DelayModel,
    pub evidence: &'a TokenEvidence,
}

/// Hard EM over `calls` (see the module's doc), from `start`.
/// `reuse_informs`: whether connections are evidence here (see `reuse::pool_is_shared`).
/// `scored`: whether the settled models' assignment is scored (readings of a batch are compared
/// by it); without, EM's last round refits the models and stops there.
pub fn settle(
    reqs: &[Req],
    calls: &[Call],
    tokens: &TokenMatches,
    start: Start<'_>,
    reuse_informs: bool,
    effort: Effort,
    scored: bool,
) -> Settled {
    let Start {
        history,
        base,
        evidence,
    } = start;
    let mut learned = Learned {
        delays: base.clone(),
        reuse: history.reuse.clone(),
        propagation: history.propagation.clone(),
    };
    let mut evidence = evidence.clone();
    let assign_with = |l: &Learned, ev: &TokenEvidence, beam: usize| {
        assign::assign(reqs, calls, &l.delays, &l.reuse, ev, beam, effort.threads)
    };
    let first = assign_with(&learned, &evidence, effort.em_beam);
    let (mut links, mut score) = (first.links, first.score);
    for round in 1..=effort.em_rounds {
        let steps = assign::steps(reqs, calls, &links);
        if steps.len() < 8 {
            break;
        }
        // The three models are refitted to the same assignment, each on its own.
        let refit_reuse = || {
            reuse_informs.then(|| {
                let partners = Partners::learned(calls, &links);
                let observations = assign::ReuseObservations {
                    reqs,
                    calls,
                    chosen: &links,
                    previous_on_partner: &partners.previous_calls(calls),
                };
                ReuseModel::fitted(&history.reuse, &observations, partners)
            })
        };
        let refit_tokens = || {
            let propagation =
                Propagation::fitted(&history.propagation, &evidence, calls, reqs, &links);
            let evidence = TokenEvidence::of_batch(tokens, calls, &propagation);
            (propagation, evidence)
        };
        let (reuse, (propagation, next_evidence)) =
            super::both(effort.threads, refit_reuse, refit_tokens);
        learned.delays = DelayModel::fitted(base, &steps);
        if let Some(reuse) = reuse {
            learned.reuse = reuse;
        }
        (learned.propagation, evidence) = (propagation, next_evidence);
        if round == effort.em_rounds && !scored {
            // The last round's assignment would only be scored: no other round refits from it,
            // and the final assignment is made afresh from these models.
            return Settled {
                learned,
                evidence,
                score: None,
            };
        }
        let next = assign_with(&learned, &evidence, effort.em_beam);
        let changed = next
            .links
            .iter()
            .zip(&links)
            .filter(|(a, b)| a.map(|(k, _)| k) != b.map(|(k, _)| k))
            .count();
        (links, score) = (next.links, next.score);
        if changed * SETTLED_BELOW_ONE_IN <= calls.len() {
            break;
        }
    }
    Settled {
        learned,
        evidence,
        score: scored.then_some(score),
    }
}

/// The final, wider assignment under the models EM settled on.
pub fn final_assignment(
    reqs: &[Req],
    calls: &[Call],
    history: &Learned,
    settled: Settled,
    effort: Effort,
) -> Fitted {
    let Settled {
        mut learned,
        evidence,
        ..
    } = settled;
    let last = if effort.refine {
        assign::assign_refined(
            reqs,
            calls,
            &learned.delays,
            &learned.reuse,
            &evidence,
            effort.final_beam,
        )
    } else {
        assign::assign(
            reqs,
            calls,
            &learned.delays,
            &learned.reuse,
            &evidence,
            effort.final_beam,
            effort.threads,
        )
    };
    let links = last.links;
    learned.propagation = Propagation::fitted(&history.propagation, &evidence, calls, reqs, &links);
    Fitted {
        token_share: evidence.matched_share(calls, reqs, &links),
        links,
        learned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::assign::tests::staggered_handlers;

    #[test]
    fn em_left_unscored_settles_on_the_models_scored_em_does() {
        let (reqs, calls, _) = staggered_handlers(12);
        let (history, base) = (Learned::default(), DelayModel::default());
        let evidence = TokenEvidence::none();
        let tokens = TokenMatches::none(calls.len());
        // One round: its assignment is the one left out when unscored.
        let effort = Effort {
            em_rounds: 1,
            ..Effort::FAST
        };
        let settle_with = |scored| {
            let start = Start {
                history: &history,
                base: &base,
                evidence: &evidence,
            };
            settle(&reqs, &calls, &tokens, start, true, effort, scored)
        };
        let (scored, unscored) = (settle_with(true), settle_with(false));
        assert!(scored.score.is_some_and(f64::is_finite));
        assert_eq!(unscored.score, None);
        assert_eq!(
            format!("{:?}", scored.learned),
            format!("{:?}", unscored.learned)
        );
        let last = |settled| final_assignment(&reqs, &calls, &history, settled, effort).links;
        assert_eq!(last(scored), last(unscored));
    }
}
