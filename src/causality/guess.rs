//! A first guess at a service's processing delays, before any assignment: Project5's
//! observation that a handler's delays stand out of the timing of all events at the caller, as
//! an excess over chance. EM starts from it, and keeps it in every refit while the service's
//! model has learned little (see `CausalityBuilder::assign_by_nesting`).

use super::assign::{Call, Req};
use super::nesting::{
    add_smoothed_at, bin_of, bin_starts, bin_width_ns, DelayModel, StepKey, ANY_ENDPOINT, ARRIVAL,
    BINS, BINS_PER_OCTAVE, FIRST_OCTAVE, RESPOND,
};
use crate::keyhash::KeyMap;

/// Gaps [`first_guess`] counts at most.
const FIRST_GUESS_PAIRS: usize = 20_000_000;

/// [`first_guess`] for a batch: requests arriving and calls returning, before the
/// calls; over four times the median time a request is served, so that chance dominates the far
/// gaps and can be measured there. A delay is taken to be shorter than that median (a step of a
/// handler is shorter than the whole).
/// On up to `threads` threads.
pub fn of_batch(reqs: &[Req], calls: &[Call], threads: usize) -> Option<DelayModel> {
    let mut served: Vec<u64> = reqs
        .iter()
        .map(|r| r.responds.saturating_since(r.arrived))
        .collect();
    served.sort_unstable();
    let median = *served.get(served.len() / 2)?;
    let events: Vec<GuessEvent> = reqs
        .iter()
        .map(|r| GuessEvent {
            at: r.arrived.0,
            endpoint: r.endpoint,
            prev: ARRIVAL,
        })
        .chain(calls.iter().map(|c| GuessEvent {
            at: c.made.end.0,
            endpoint: ANY_ENDPOINT,
            prev: c.made.ret,
        }))
        .collect();
    let launches: Vec<(u64, StepKey)> = calls
        .iter()
        .map(|c| (c.made.start.0, c.made.launch))
        .chain(reqs.iter().map(|r| (r.responds.0, RESPOND)))
        .collect();
    let horizon = (4 * median).clamp(1_000_000, 10_000_000_000);
    first_guess(&events, &launches, horizon, median, threads)
}

/// A first guess at the delays, before any assignment: Project5's observation that a
/// handler's delays stand out of the timing of all events, as an excess over chance.
///
/// Every event at the caller (`events`: requests arriving, calls returning) that precedes a
/// step (`launches`: calls, and responses) within `horizon_ns` gives one gap. Events of
/// other handlers fall at random, as many per nanosecond at any gap; the event each step
/// followed in its own handler adds an excess at the handler's delays. So each bin's count,
/// less what chance puts there, is the delays' histogram. Why it matters: the scale-free
/// prior favours the shortest gap, and under heavy concurrency the shortest gap is another
/// handler's, which a model fitted to that first assignment then learns as the usual delay
/// (at 32 concurrent requests on the simulator, almost every call went to a request that
/// arrived after its own).
///
/// The excess is counted per kind of step too, between a kind of event (a request to this
/// endpoint arriving, a call to that one returning) and a kind of step (this call, the
/// response), when both are common: that is the handlers' template, with each step's own
/// delay. The pooled histogram alone cannot tell a handler that calls 300 µs after arriving
/// and answers 150 µs after its last call returned from one that calls 150 µs after
/// arriving and answers 300 µs after: with many requests in flight, giving each request the
/// calls of the one that arrived just before it scores as well as the truth, and EM settled
/// there (9 % right at 64 concurrent requests on the simulator).
///
/// Only gaps up to `longest_ns` are kept: far gaps hold the echo of earlier requests from the
/// same closed-loop clients, an excess that is no handler's delay. It is a starting point for
/// EM, not a test: chance alone leaves a few bins above two standard deviations. None when
/// less than 8 gaps' worth stands out. The launches are counted in two halves on up to
/// `threads` threads (counts add up, so the guess is the same on any number).
pub fn first_guess(
    events: &[GuessEvent],
    launches: &[(u64, StepKey)],
    horizon_ns: u64,
    longest_ns: u64,
    threads: usize,
) -> Option<DelayModel> {
    let mut events = events.to_vec();
    events.sort_unstable_by_key(|e| e.at);
    let event_kinds = common_kinds(events.iter().map(|e| (e.endpoint, e.prev)));
    let launch_kinds = common_kinds(launches.iter().map(|l| l.1));
    let event_kind: Vec<Option<usize>> = events
        .iter()
        .map(|e| event_kinds.iter().position(|k| *k == (e.endpoint, e.prev)))
        .collect();
    let within: Vec<Launch> = launches
        .iter()
        .map(|&(at, next)| Launch {
            at,
            next,
            from: events.partition_point(|e| e.at.saturating_add(horizon_ns) < at),
            to: events.partition_point(|e| e.at <= at),
        })
        .collect();
    // Bounded work: beyond FIRST_GUESS_PAIRS gaps, every k-th launch stands for the rest.
    let all_pairs: usize = within.iter().map(|l| l.to - l.from).sum();
    let stride = all_pairs.div_ceil(FIRST_GUESS_PAIRS).max(1);
    let bins = (bin_of(longest_ns) + 1).min(BINS);
    let counting = Counting {
        events: &events,
        event_kind: &event_kind,
        event_kinds: event_kinds.len(),
        launch_kinds: &launch_kinds,
        first_event: events.first().map_or(0, |e| e.at),
        horizon_ns,
        bins,
        // Gaps past the last bin kept only count towards chance (`Excess::pairs`): they are
        // counted per kind of event from prefix sums instead of one by one (with the horizon at
        // four times the longest delay kept, they were three quarters of the pairs).
        far_from: bin_starts().get(bins - 1).copied().unwrap_or(u64::MAX),
        far_by_kind: KindPrefix::new(&event_kind, event_kinds.len()),
    };
    let counted: Vec<Launch> = within.into_iter().step_by(stride).collect();
    let (early, late) = counted.split_at(counted.len() / 2);
    let (mut gaps, late) = super::both(threads, || counting.count(early), || counting.count(late));
    gaps.add(late);
    let Gaps {
        pooled,
        typed,
        pooled_exposure,
        exposure_by_kind,
    } = gaps;
    let (pooled, n) = pooled.over_chance(&Exposure::new(pooled_exposure));
    if n < 8.0 {
        return None;
    }
    let exposure_by_kind: Vec<Exposure> = exposure_by_kind.into_iter().map(Exposure::new).collect();
    let mut steps = Vec::new();
    for (slot, excess) in typed.into_iter().enumerate() {
        let (counts, n) = excess.over_chance(&exposure_by_kind[slot % launch_kinds.len()]);
        if n >= 8.0 {
            let (endpoint, prev) = event_kinds[slot / launch_kinds.len()];
            steps.push((
                (endpoint, prev, launch_kinds[slot % launch_kinds.len()]),
                counts,
                n,
            ));
        }
    }
    Some(DelayModel::of_histograms((pooled, n), steps))
}

/// What [`first_guess`] counts the gaps before each launch against.
struct Counting<'a> {
    events: &'a [GuessEvent],
    event_kind: &'a [Option<usize>],
    event_kinds: usize,
    launch_kinds: &'a [StepKey],
    first_event: u64,
    horizon_ns: u64,
    bins: usize,
    far_from: u64,
    far_by_kind: KindPrefix,
}

/// A step counted by [`first_guess`], with the events within the horizon before it
/// (`from..to`).
#[derive(Clone, Copy)]
struct Launch {
    at: u64,
    next: StepKey,
    from: usize,
    to: usize,
}

/// The gaps of some launches, counted: pooled over the calls, and per (kind of event, kind
/// of step); and how far back each launch could see.
struct Gaps {
    pooled: Excess,
    typed: Vec<Excess>,
    pooled_exposure: Vec<f64>,
    exposure_by_kind: Vec<Vec<f64>>,
}

impl Gaps {
    /// `other`'s gaps, counted after these.
    fn add(&mut self, other: Gaps) {
        self.pooled.add_all(&other.pooled);
        for (a, b) in self.typed.iter_mut().zip(&other.typed) {
            a.add_all(b);
        }
        self.pooled_exposure.extend(other.pooled_exposure);
        for (a, b) in self.exposure_by_kind.iter_mut().zip(other.exposure_by_kind) {
            a.extend(b);
        }
    }
}

impl Counting<'_> {
    /// The gaps before each of `launches` (each with the events within the horizon before it).
    fn count(&self, launches: &[Launch]) -> Gaps {
        let (events, event_kind, bins) = (self.events, self.event_kind, self.bins);
        let launch_kinds = self.launch_kinds;
        let mut pooled = Excess::new(bins);
        let mut typed: Vec<Excess> = (0..self.event_kinds * launch_kinds.len())
            .map(|_| Excess::new(bins))
            .collect();
        let mut pooled_exposure = Vec::new();
        let mut exposure_by_kind = vec![Vec::new(); launch_kinds.len()];
        let starts = bin_starts();
        for &Launch { at, next, from, to } in launches {
            // How far back this step could see events: the horizon, or less near the start of
            // the batch. Without this, steps near the start see fewer far gaps than chance
            // would put there, and every near bin looks like an excess.
            let exposure = at.saturating_sub(self.first_event).min(self.horizon_ns) as f64;
            let kind = launch_kinds.iter().position(|k| *k == next);
            if next != RESPOND {
                pooled_exposure.push(exposure);
            }
            if let Some(lk) = kind {
                exposure_by_kind[lk].push(exposure);
            }
            let near =
                from.max(events.partition_point(|e| e.at.saturating_add(self.far_from) <= at));
            let near = near.min(to);
            if next != RESPOND {
                pooled.pairs += (near - from) as u64;
            }
            if let Some(lk) = kind {
                for (ek, far) in self.far_by_kind.counts(from, near).enumerate() {
                    typed[ek * launch_kinds.len() + lk].pairs += u64::from(far);
                }
            }
            // Nearest event first: the gap only grows, so its bin is found by walking up from
            // the last one ([`bin_of`] for every pair was most of the guess's time).
            let mut bin = 0;
            for (e, ek) in events[near..to].iter().zip(&event_kind[near..to]).rev() {
                let gap = at - e.at;
                while starts.get(bin).is_some_and(|&start| start <= gap) {
                    bin += 1;
                }
                if next != RESPOND {
                    pooled.add(bin);
                }
                if let (Some(ek), Some(lk)) = (ek, kind) {
                    typed[ek * launch_kinds.len() + lk].add(bin);
                }
            }
        }
        Gaps {
            pooled,
            typed,
            pooled_exposure,
            exposure_by_kind,
        }
    }
}

/// An event a step may follow, for [`first_guess`]: a request to `endpoint`
/// arriving (`prev` is [`ARRIVAL`]), or a call returning (`prev` is its return step; which
/// endpoint's handler made it is what is not known: [`ANY_ENDPOINT`]).
#[derive(Clone, Copy, Debug)]
pub struct GuessEvent {
    pub at: u64,
    pub endpoint: u64,
    pub prev: StepKey,
}

/// Kinds counted one by one in the first guess, at most per side: the rest only pooled.
const GUESS_KINDS: usize = 24;
/// A kind is counted one by one when it is at least this share of its side.
const GUESS_KIND_SHARE: f64 = 0.02;

/// The most common kinds, each at least [`GUESS_KIND_SHARE`] of all.
fn common_kinds<K: Copy + Eq + std::hash::Hash + Ord>(kinds: impl Iterator<Item = K>) -> Vec<K> {
    let mut counts: KeyMap<K, usize> = KeyMap::default();
    let mut all = 0usize;
    for k in kinds {
        *counts.entry(k).or_default() += 1;
        all += 1;
    }
    let mut common: Vec<(usize, K)> = counts
        .into_iter()
        .filter(|&(_, n)| n as f64 >= GUESS_KIND_SHARE * all as f64)
        .map(|(k, n)| (n, k))
        .collect();
    common.sort_unstable_by(|a, b| b.cmp(a));
    common.truncate(GUESS_KINDS);
    common.into_iter().map(|(_, k)| k).collect()
}

/// How far back each of a set of steps could see events, for [`first_guess`]:
/// sorted once, shared by every kind of event those steps are counted against.
struct Exposure {
    sorted: Vec<f64>,
    /// `prefix[k]`: the sum of the `k` shortest.
    prefix: Vec<f64>,
}

impl Exposure {
    fn new(mut exposures: Vec<f64>) -> Self {
        exposures.sort_unstable_by(f64::total_cmp);
        let mut prefix = vec![0.0; exposures.len() + 1];
        for (k, x) in exposures.iter().enumerate() {
            prefix[k + 1] = prefix[k] + x;
        }
        Exposure {
            sorted: exposures,
            prefix,
        }
    }

    /// Σ over the steps of min(exposure, x): how much of [0, x] they saw, together.
    fn seen_up_to(&self, x: f64) -> f64 {
        let below = self.sorted.partition_point(|&e| e < x);
        self.prefix[below] + x * (self.sorted.len() - below) as f64
    }

    fn total(&self) -> f64 {
        self.prefix[self.sorted.len()]
    }
}

/// How many events of each kind are among the first `i`, for every `i`.
struct KindPrefix {
    kinds: usize,
    /// `counts[i * kinds + k]`: events of kind `k` before the `i`-th.
    counts: Vec<u32>,
}

impl KindPrefix {
    fn new(event_kind: &[Option<usize>], kinds: usize) -> Self {
        let mut counts = vec![0u32; (event_kind.len() + 1) * kinds];
        for (i, ek) in event_kind.iter().enumerate() {
            let (before, after) = counts.split_at_mut((i + 1) * kinds);
            after[..kinds].copy_from_slice(&before[i * kinds..]);
            if let Some(k) = ek {
                after[*k] += 1;
            }
        }
        KindPrefix { kinds, counts }
    }

    /// Events of each kind among events `from..to`.
    fn counts(&self, from: usize, to: usize) -> impl Iterator<Item = u32> + '_ {
        let (a, b) = (from * self.kinds, to * self.kinds);
        self.counts[a..a + self.kinds]
            .iter()
            .zip(&self.counts[b..b + self.kinds])
            .map(|(x, y)| y - x)
    }
}

/// Gaps counted per bin: what [`first_guess`] weighs against chance. Counted in integers (a
/// float's sum of ones is the same number, below 2^53, but each add waited on the last).
struct Excess {
    counts: Vec<u64>,
    pairs: u64,
}

impl Excess {
    fn new(bins: usize) -> Self {
        Excess {
            counts: vec![0; bins],
            pairs: 0,
        }
    }

    fn add(&mut self, bin: usize) {
        self.pairs += 1;
        if let Some(c) = self.counts.get_mut(bin) {
            *c += 1;
        }
    }

    fn add_all(&mut self, other: &Excess) {
        self.pairs += other.pairs;
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Smoothed counts of what stands clear of chance in each bin, and their sum. Chance puts
    /// the same number of gaps per nanosecond of what the steps saw (`seen`), at any gap.
    fn over_chance(self, seen: &Exposure) -> (Vec<f64>, f64) {
        let per_ns = self.pairs as f64 / seen.total().max(1.0);
        let mut excess = vec![0.0; BINS];
        let mut n = 0.0;
        for (b, &c) in self.counts.iter().enumerate() {
            let lo = 2f64.powf(FIRST_OCTAVE + b as f64 / BINS_PER_OCTAVE);
            // The first bin also holds every gap below it.
            let from = if b == 0 { 0.0 } else { lo };
            let chance = per_ns * (seen.seen_up_to(lo + bin_width_ns(b)) - seen.seen_up_to(from));
            let x = c as f64 - chance;
            // Only what stands clear of chance's own noise (two standard deviations).
            if x > 2.0 * chance.sqrt() {
                add_smoothed_at(&mut excess, b, x);
                n += x;
            }
        }
        (excess, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_guess_finds_each_steps_delay_among_random_events() {
        // 2000 handlers of endpoint 7: each calls 9 300 µs (± 10 %) after its request arrived,
        // the call returns (step 10) 500 µs later, and the handler answers 150 µs (± 10 %)
        // after that. And 40 000 events of other handlers at random, so that the nearest event
        // before a step is usually not its own (on average one every 5 µs).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let span = 200_000_000; // 200 ms
        let event = |at, endpoint, prev| GuessEvent { at, endpoint, prev };
        let mut events: Vec<GuessEvent> = (0..40_000)
            .map(|k| match k % 2 {
                0 => event(next() % span, 7, ARRIVAL),
                _ => event(next() % span, ANY_ENDPOINT, 10),
            })
            .collect();
        let mut launches = Vec::new();
        for _ in 0..2000 {
            let arrived = next() % span;
            events.push(event(arrived, 7, ARRIVAL));
            let called = arrived + 270_000 + next() % 60_000;
            launches.push((called, 9));
            let returned = called + 500_000;
            events.push(event(returned, ANY_ENDPOINT, 10));
            launches.push((returned + 135_000 + next() % 30_000, RESPOND));
        }
        let guess =
            first_guess(&events, &launches, 8_000_000, 2_000_000, 2).expect("the delays stand out");
        // Pooled over the calls.
        assert!(guess.ln_density(300_000) > guess.ln_density(20_000) + 2.0);
        assert!(guess.ln_density(300_000) > guess.ln_density(900_000) + 2.0);
        // Each step its own delay: the call 300 µs after arriving, the answer 150 µs after the
        // call returned (a step of any handler, as the guess cannot know whose call it was).
        let step = |prev, next, gap| guess.ln_step(7, prev, next, gap);
        assert!(step(ARRIVAL, 9, 300_000) > step(ARRIVAL, 9, 150_000) + 2.0);
        assert!(step(10, RESPOND, 150_000) > step(10, RESPOND, 300_000) + 2.0);
        // And the template: after a call returns, the handler answers; it does not call again.
        assert!(step(10, RESPOND, 150_000) > step(10, 9, 150_000) + 2.0);
    }
}
