//! Local search after the beam: moves that raise the likelihood of a whole assignment.
//!
//! The beam of [`super::assign`] decides each call when it starts, keeping the best few
//! partial assignments. Under load the evidence that settles a call often comes much later (when
//! the handlers answer, or make their next call), by which time the right partial assignment
//! may have fallen out of the beam. Measured on the simulator (shared pool, 16 concurrent
//! clients), the true assignment scored higher under the final model than the beam's best at
//! every busy service: the shortfall was the search, not the evidence.
//!
//! The likelihood is a sum over handlers, each term depending only on the calls given to that
//! handler (and, through connection ownership, on who made the previous call on each
//! connection). So a move between two handlers is scored by rescoring those two chains and
//! those of the calls that follow the moved ones on their connections. For a call and another
//! of its candidates, the moves tried, most sweeping first:
//! - swap the two handlers' futures from the call's start on (the usual confusion under load is
//!   two handlers of one endpoint whose steps interleave: moving one call alone breaks both
//!   chains, swapping the rest keeps them whole);
//! - give the call and the rest of its handler's calls to the other;
//! - swap the call with the other handler's next one;
//! - give the call alone.
//!
//! A call is only ever moved into its new handler's active time (arrived, not yet answering).
//! The beam allows a call after its parent began to answer (a streaming proxy) at a flat cost,
//! and that flat cost, cheaper than a poor delay, is what the moves would otherwise exploit:
//! on `pcaps/workers-c16.pcap`, without the rule, they put five times as many calls after
//! their parent's answer as the beam did and left fewer links right than the beam alone.
//!
//! A move is kept only if it raises the total; passes repeat until none does, at most
//! eight times (`MAX_PASSES`), so the result is never less likely than the beam's.

use super::assign::{ln_early, ln_next, ln_tokens, Call, Made, Req};
use super::nesting::{StepTable, RESPOND};
use super::reuse::{owner, reuse, Kind, PreviousOwner, RatioTable};
use super::tokens::TokenEvidence;

/// Passes over all calls; each pass is a few chain rescorings per (call, candidate).
const MAX_PASSES: usize = 8;
/// A move must gain at least this much log-likelihood (guards against float noise loops).
const MIN_GAIN: f64 = 1e-6;
/// Handlers holding more calls than this are left as the beam gave them: rescoring a chain
/// costs the square of its length (each step looks at the calls before it), and a handler
/// that makes hundreds of calls (a batch job, a long poll) is no interleaving of two.
const MAX_CHAIN_CALLS: usize = 256;
/// Work one search may do at most, counted in (step, earlier call) pairs looked at: the moves
/// stop there, keeping what they improved so far (pcaps/workers-c16.pcap uses about 1 % of it).
const MAX_WORK: u64 = 200_000_000;

struct Search<'a, 'm> {
    reqs: &'a [Req],
    calls: &'a [Call],
    tokens: &'a TokenEvidence,
    table: StepTable<'m>,
    ratios: RatioTable,
    /// The next call on the same connection, for each call.
    next_on_conn: Vec<Option<usize>>,
    /// The chosen request of each call.
    parent: Vec<Option<usize>>,
    /// For each request, its calls (indexes), in start order.
    per_req: Vec<Vec<usize>>,
    /// Each request's chain score under `parent`.
    chain: Vec<f64>,
    /// Work done so far (see [`MAX_WORK`]).
    work: u64,
}

impl Search<'_, '_> {
    /// The score [`super::assign::assign`] gives request `r`'s handler if it made `mine` (in
    /// call order): each call when it starts, then the response.
    fn chain_score(&mut self, r: usize, mine: &[usize]) -> f64 {
        let req = &self.reqs[r];
        let mut made: Vec<Made> = req.prior_calls.clone();
        let mut score = 0.0;
        for &j in mine {
            let call = &self.calls[j];
            let at = call.made.start;
            if at > req.responds || at < req.arrived {
                score += ln_early() + ln_tokens(self.tokens, j, r, &made, u64::MAX);
                continue;
            }
            let owner_of = |p: usize| {
                self.parent[p].map(|q| PreviousOwner {
                    req: q,
                    responds: self.reqs[q].responds,
                })
            };
            let previous = call.previous_on_conn.and_then(owner_of);
            let partner_previous = self.ratios.previous_on_partner(j).and_then(owner_of);
            let kind = Kind {
                reuse: reuse(&made, at, &call.made),
                owner: owner(r, req.arrived, previous),
                partner: owner(r, req.arrived, partner_previous),
            };
            score += ln_next(req, &made, at, call.made.launch, &mut self.table)
                + self.ratios.ln_ratio(kind)
                + ln_tokens(self.tokens, j, r, &made, u64::MAX);
            self.work += made.len() as u64 + 1;
            made.push(call.made);
        }
        self.work += made.len() as u64 + 1;
        let still_running = made.iter().any(|c| c.end > req.responds);
        score
            + if still_running {
                ln_early()
            } else {
                ln_next(req, &made, req.responds, RESPOND, &mut self.table)
            }
    }

    /// The moves worth trying that give call `j` to `to` instead of `from`, most sweeping
    /// first: swap the two handlers' futures from `j` on; give `j` and the rest of `from`'s
    /// calls to `to`; swap `j` with `to`'s next call; give `j` alone. Each `(call, from, to)`,
    /// and only to candidates of the call.
    fn moves_between(&self, j: usize, from: usize, to: usize) -> Vec<Vec<(usize, usize, usize)>> {
        let can = |c: &usize, r: usize| {
            let at = self.calls[*c].made.start;
            let req = &self.reqs[r];
            self.calls[*c].candidates.contains(&r) && req.arrived <= at && at <= req.responds
        };
        if !can(&j, to) {
            return Vec::new();
        }
        let mine: Vec<usize> = self.per_req[from]
            .iter()
            .copied()
            .filter(|&c| c >= j)
            .collect();
        let theirs: Vec<usize> = self.per_req[to]
            .iter()
            .copied()
            .filter(|&c| c > j)
            .collect();
        let mut out = Vec::new();
        let mine_can_go = mine.iter().all(|c| can(c, to));
        if mine_can_go && !theirs.is_empty() && theirs.iter().all(|c| can(c, from)) {
            out.push(
                give(&mine, from, to)
                    .chain(give(&theirs, to, from))
                    .collect(),
            );
        }
        if mine_can_go && mine.len() > 1 {
            out.push(give(&mine, from, to).collect());
        }
        if let Some(&k) = theirs.first().filter(|k| can(k, from)) {
            out.push(vec![(j, from, to), (k, to, from)]);
        }
        out.push(vec![(j, from, to)]);
        out
    }

    /// Tries moving `moves` (call, from, to); keeps them if the total rises.
    fn try_moves(&mut self, moves: &[(usize, usize, usize)]) -> bool {
        if self.work > MAX_WORK {
            return false;
        }
        let mut touched: Vec<usize> = Vec::new();
        for &(j, from, to) in moves {
            touched.extend([from, to]);
            if let Some(p) = self.next_on_conn[j].and_then(|n| self.parent[n]) {
                touched.push(p);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if touched
            .iter()
            .any(|&r| self.per_req[r].len() + moves.len() > MAX_CHAIN_CALLS)
        {
            return false;
        }
        let before: f64 = touched.iter().map(|&r| self.chain[r]).sum();
        let old: Vec<(usize, Vec<usize>)> = touched
            .iter()
            .map(|&r| (r, self.per_req[r].clone()))
            .collect();
        for &(j, from, to) in moves {
            self.parent[j] = Some(to);
            self.per_req[from].retain(|&c| c != j);
            let list = &mut self.per_req[to];
            let at = list.partition_point(|&c| c < j);
            list.insert(at, j);
        }
        let mut new_scores = Vec::with_capacity(touched.len());
        for &r in &touched {
            let mine = std::mem::take(&mut self.per_req[r]);
            new_scores.push(self.chain_score(r, &mine));
            self.per_req[r] = mine;
        }
        let after: f64 = new_scores.iter().sum();
        if after > before + MIN_GAIN {
            for (&r, s) in touched.iter().zip(new_scores) {
                self.chain[r] = s;
            }
            return true;
        }
        for &(j, from, _) in moves {
            self.parent[j] = Some(from);
        }
        for (r, list) in old {
            self.per_req[r] = list;
        }
        false
    }
}

/// `calls`, each moved from `from` to `to`.
fn give(
    calls: &[usize],
    from: usize,
    to: usize,
) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    calls.iter().map(move |&c| (c, from, to))
}

/// Improves `chosen` (each call's request, as [`super::assign::assign`] gave it) by local
/// moves. Returns the work done, in the units of [`MAX_WORK`].
pub fn refine(
    reqs: &[Req],
    calls: &[Call],
    chosen: &mut [Option<usize>],
    table: StepTable<'_>,
    ratios: RatioTable,
    tokens: &TokenEvidence,
) -> u64 {
    let mut next_on_conn = vec![None; calls.len()];
    for (j, c) in calls.iter().enumerate() {
        if let Some(p) = c.previous_on_conn {
            next_on_conn[p] = Some(j);
        }
    }
    let mut per_req = vec![Vec::new(); reqs.len()];
    for (j, k) in chosen.iter().enumerate() {
        if let Some(k) = k {
            per_req[*k].push(j);
        }
    }
    let mut search = Search {
        reqs,
        calls,
        tokens,
        table,
        ratios,
        next_on_conn,
        parent: chosen.to_vec(),
        per_req,
        chain: vec![0.0; reqs.len()],
        work: 0,
    };
    for r in 0..reqs.len() {
        let mine = std::mem::take(&mut search.per_req[r]);
        search.chain[r] = search.chain_score(r, &mine);
        search.per_req[r] = mine;
    }
    for _ in 0..MAX_PASSES {
        let mut improved = false;
        for (j, call) in calls.iter().enumerate() {
            for &to in &call.candidates {
                let Some(from) = search.parent[j] else { break };
                if to != from {
                    improved |= search
                        .moves_between(j, from, to)
                        .iter()
                        .any(|moves| search.try_moves(moves));
                }
            }
        }
        if !improved || search.work > MAX_WORK {
            break;
        }
    }
    chosen.copy_from_slice(&search.parent);
    search.work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::nesting::DelayModel;
    use crate::causality::reuse::ReuseModel;
    use tapspan_capture::Timestamp;

    fn t(us: u64) -> Timestamp {
        Timestamp(us * 1000)
    }

    fn req(arrived: u64, responds: u64) -> Req {
        Req {
            arrived: t(arrived),
            responds: t(responds),
            endpoint: 7,
            prior_calls: vec![],
        }
    }

    /// A call 200 µs long that any of `candidates` could have made.
    fn call(start: u64, candidates: &[usize]) -> Call {
        Call {
            made: Made {
                start: t(start),
                end: t(start + 200),
                launch: 9,
                ret: 10,
                callee: 3,
                conn: 0,
                index: crate::causality::assign::NOT_IN_BATCH,
            },
            candidates: candidates.to_vec(),
            previous_on_conn: None,
        }
    }

    /// `chosen` after the moves, under a model where handlers of endpoint 7 take every step
    /// 300 µs after the one before.
    fn refined(reqs: &[Req], calls: &[Call], chosen: Vec<Option<usize>>) -> Vec<Option<usize>> {
        refined_with_work(reqs, calls, chosen).0
    }

    /// [`refined`], and the work it took.
    fn refined_with_work(
        reqs: &[Req],
        calls: &[Call],
        mut chosen: Vec<Option<usize>>,
    ) -> (Vec<Option<usize>>, u64) {
        let model = DelayModel::every_step_after(7, 300_000, 20);
        let table = StepTable::new(&model);
        let work = refine(
            reqs,
            calls,
            &mut chosen,
            table,
            ReuseModel::default().table(calls),
            &TokenEvidence::none(),
        );
        (chosen, work)
    }

    #[test]
    fn swapped_futures_are_swapped_back() {
        // A arrives at 0, B at 100; each calls 300 µs after arriving and 300 µs after its call
        // returned, and answers 300 µs after its second call returned. Given the two handlers'
        // second calls the wrong way round, the moves put them back.
        let reqs = vec![req(0, 1300), req(100, 1400)];
        let calls: Vec<Call> = [300, 400, 800, 900]
            .iter()
            .map(|&s| call(s, &[0, 1]))
            .collect();
        let chosen = refined(&reqs, &calls, vec![Some(0), Some(1), Some(1), Some(0)]);
        assert_eq!(chosen, vec![Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn a_call_is_never_moved_to_a_handler_already_answering() {
        // A calls at 300 µs, and again at 650 (150 µs after the first returned, not the usual
        // 300), and begins to answer at 800 while that call still runs. B began answering at
        // 350 and is still sending, so it encloses the second call (a candidate): giving B the
        // call would cost only the flat "answered early" score and leave A a perfect chain,
        // but B was not working then.
        let reqs = vec![req(0, 800), req(0, 350)];
        let calls = vec![call(300, &[0]), call(650, &[0, 1])];
        assert_eq!(
            refined(&reqs, &calls, vec![Some(0), Some(0)]),
            vec![Some(0), Some(0)]
        );
    }

    #[test]
    fn a_handler_with_hundreds_of_calls_is_left_as_the_beam_gave_it() {
        // A long batch handler A makes 5000 calls, one every 500 µs, while B is open the whole
        // time. Each move would rescore A's chain (12.5 M pairs), for each of 5000 × 4 moves:
        // days of work. Every move touches A's chain, so none is tried, and the work is that
        // of scoring A once.
        let n = 5000;
        let reqs = vec![req(0, 500 * n + 1000), req(0, 500 * n + 1000)];
        let calls: Vec<Call> = (0..n).map(|k| call(300 + 500 * k, &[0, 1])).collect();
        let all_to_a = vec![Some(0); n as usize];
        let (chosen, work) = refined_with_work(&reqs, &calls, all_to_a.clone());
        assert_eq!(chosen, all_to_a);
        let once = n * (n + 1) / 2 + n + 2;
        assert!(work <= once + 1, "{work} > {once}");
    }
}
