//! Joint assignment of a service's outbound calls to the inbound requests that triggered them.
//!
//! Each request handler is modelled as a chain: the request arrives, the handler thinks, calls,
//! waits, thinks, calls, …, thinks, responds. Every "think" is a processing delay drawn from the
//! service's [`DelayModel`]; a call launched while another call of the same handler is still
//! running is either a parallel fan-out (launched right after its sibling) or, rarely, an async
//! handler. Calls are taken in start order and each partial assignment is scored by the
//! likelihood of its delays, including the delay from a request's last call to its response —
//! the evidence that settles a coin flip made earlier. A beam of the best partial assignments
//! is kept (`beam` wide); the best complete one wins, and a call's confidence is the share of the
//! final beam's probability mass that agrees with it.

use std::rc::Rc;

use tapspan_capture::Timestamp;

use super::nesting::DelayModel;

/// A candidate parent: an inbound request at the calling service.
#[derive(Clone, Debug)]
pub struct Req {
    /// When its request had arrived (its last byte), or its first byte.
    pub arrived: Timestamp,
    /// When it began to answer.
    pub responds: Timestamp,
    /// Calls already attributed to it (start, end), by earlier decisions.
    pub prior_calls: Vec<(Timestamp, Timestamp)>,
}

/// An outbound call and the requests that could have made it (indexes into the `Req` slice).
#[derive(Clone, Debug)]
pub struct Call {
    pub start: Timestamp,
    pub end: Timestamp,
    pub candidates: Vec<usize>,
}

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
const CONFIDENCE_TEMPER: f64 = 0.25;

fn ln_parallel(gap_ns: u64) -> f64 {
    P_PARALLEL.ln() - PARALLEL_SCALE_NS.ln() - gap_ns as f64 / PARALLEL_SCALE_NS
}

fn ln_early() -> f64 {
    P_RESPONDED_EARLY.ln() + LN_UNKNOWN_DELAY
}

#[derive(Clone)]
struct Active {
    req: usize,
    calls: Vec<(Timestamp, Timestamp)>,
}

struct Choice {
    call: usize,
    req: usize,
    prev: Option<Rc<Choice>>,
}

#[derive(Clone)]
struct State {
    score: f64,
    active: Vec<Active>,
    choices: Option<Rc<Choice>>,
}

enum Event {
    Arrive(usize),
    Call(usize),
    Respond(usize),
}

impl Active {
    /// Log-likelihood of a new event at `at` in this handler, and whether it is a parallel launch.
    fn ln_next(&self, arrived: Timestamp, at: Timestamp, model: &DelayModel) -> f64 {
        let running = self
            .calls
            .iter()
            .filter(|(s, e)| *s <= at && at < *e)
            .map(|(s, _)| *s)
            .max();
        match running {
            Some(launched) if at.saturating_since(launched) <= PARALLEL_LAUNCH_NS => {
                ln_parallel(at.saturating_since(launched))
            }
            Some(_) => P_BUSY.ln() + model.ln_density(at.saturating_since(arrived)),
            None => {
                let last = self
                    .calls
                    .iter()
                    .map(|(_, e)| *e)
                    .filter(|e| *e <= at)
                    .max()
                    .unwrap_or(arrived)
                    .max(arrived);
                (1.0 - P_PARALLEL - P_BUSY).ln() + model.ln_density(at.saturating_since(last))
            }
        }
    }
}

/// For each call, `(index of the chosen request, confidence)`, or None without candidates.
pub fn assign(
    reqs: &[Req],
    calls: &[Call],
    model: &DelayModel,
    beam: usize,
) -> Vec<Option<(usize, f64)>> {
    let mut events: Vec<(Timestamp, u8, Event)> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        events.push((r.arrived, 0, Event::Arrive(i)));
        events.push((r.responds, 2, Event::Respond(i)));
    }
    for (j, c) in calls.iter().enumerate() {
        events.push((c.start, 1, Event::Call(j)));
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));

    // For each call, the share of probability each candidate had when the call was decided,
    // before later evidence: a conservative confidence (the final beam often agrees with itself).
    let mut local_share: Vec<Vec<(usize, f64)>> = vec![Vec::new(); calls.len()];
    let mut states = vec![State {
        score: 0.0,
        active: Vec::new(),
        choices: None,
    }];
    for (at, _, ev) in events {
        match ev {
            Event::Arrive(r) => {
                for s in &mut states {
                    s.active.push(Active {
                        req: r,
                        calls: reqs[r].prior_calls.clone(),
                    });
                }
            }
            Event::Respond(r) => {
                for s in &mut states {
                    if let Some(pos) = s.active.iter().position(|a| a.req == r) {
                        let a = s.active.swap_remove(pos);
                        let still_running = a.calls.iter().any(|(_, e)| *e > at);
                        s.score += if still_running {
                            ln_early()
                        } else {
                            a.ln_next(reqs[r].arrived, at, model)
                        };
                    }
                }
            }
            Event::Call(j) => {
                let call = &calls[j];
                if call.candidates.is_empty() {
                    continue;
                }
                let mut next = Vec::with_capacity(states.len() * call.candidates.len());
                for s in &states {
                    for &r in &call.candidates {
                        // A candidate that already answered may still be streaming its response.
                        let (score, pos) = match s.active.iter().position(|a| a.req == r) {
                            Some(pos) => (
                                s.score + s.active[pos].ln_next(reqs[r].arrived, at, model),
                                Some(pos),
                            ),
                            None => (s.score + ln_early(), None),
                        };
                        next.push((score, s, r, pos));
                    }
                }
                next.sort_by(|a, b| b.0.total_cmp(&a.0));
                let top = next.first().map_or(0.0, |n| n.0);
                let mut shares: Vec<(usize, f64)> = Vec::new();
                for (score, _, r, _) in &next {
                    let w = (CONFIDENCE_TEMPER * (score - top)).exp();
                    match shares.iter_mut().find(|(k, _)| k == r) {
                        Some((_, m)) => *m += w,
                        None => shares.push((*r, w)),
                    }
                }
                let total: f64 = shares.iter().map(|(_, w)| w).sum();
                shares.iter_mut().for_each(|(_, w)| *w /= total);
                local_share[j] = shares;
                next.truncate(beam);
                states = next
                    .into_iter()
                    .map(|(score, s, r, pos)| {
                        let mut active = s.active.clone();
                        if let Some(pos) = pos {
                            active[pos].calls.push((call.start, call.end));
                        }
                        State {
                            score,
                            active,
                            choices: Some(Rc::new(Choice {
                                call: j,
                                req: r,
                                prev: s.choices.clone(),
                            })),
                        }
                    })
                    .collect();
            }
        }
    }
    // Requests still open at the end of the batch add nothing more.
    let best = states
        .iter()
        .map(|s| s.score)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = states
        .iter()
        .map(|s| (CONFIDENCE_TEMPER * (s.score - best)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let choices_of = |s: &State| {
        let mut out = vec![usize::MAX; calls.len()];
        let mut c = s.choices.as_deref();
        while let Some(ch) = c {
            out[ch.call] = ch.req;
            c = ch.prev.as_deref();
        }
        out
    };
    let all: Vec<Vec<usize>> = states.iter().map(choices_of).collect();
    let best_index = states.iter().position(|s| s.score == best).unwrap_or(0);
    (0..calls.len())
        .map(|j| {
            let chosen = *all.get(best_index)?.get(j)?;
            if chosen == usize::MAX {
                return None;
            }
            let agree: f64 = all
                .iter()
                .zip(&weights)
                .filter(|(a, _)| a[j] == chosen)
                .map(|(_, w)| w)
                .sum();
            let local = local_share[j]
                .iter()
                .find(|(k, _)| *k == chosen)
                .map_or(0.0, |(_, w)| *w);
            Some((chosen, (agree / total).min(local)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Timestamp {
        Timestamp(us * 1000)
    }

    #[test]
    fn interleaved_handlers_are_separated_by_their_delays() {
        // Two handlers, each: arrive, +300 µs call (200 µs long), +300 µs call, +300 µs respond.
        // B arrives 100 µs after A, so their calls interleave.
        let reqs = vec![
            Req {
                arrived: t(0),
                responds: t(1300),
                prior_calls: vec![],
            },
            Req {
                arrived: t(100),
                responds: t(1400),
                prior_calls: vec![],
            },
        ];
        let call = |s| Call {
            start: t(s),
            end: t(s + 200),
            candidates: vec![0, 1],
        };
        let calls = vec![call(300), call(400), call(800), call(900)];
        let mut model = DelayModel::default();
        for _ in 0..5 {
            let got = assign(&reqs, &calls, &model, 16);
            model = DelayModel::fitted(&[300_000; 20]);
            let parents: Vec<usize> = got.iter().map(|c| c.unwrap().0).collect();
            if parents == vec![0, 1, 0, 1] {
                return;
            }
        }
        panic!("never separated");
    }
}
