//! The processing-delay model behind send/receive nesting.
//!
//! A candidate parent of outbound call E (leaving address X) is an inbound exchange R at X that
//! encloses E: R's request arrived before E's request left, and E's response came back before
//! R's response finished (responses may stream, so R's response end, not start, bounds E).
//! Among several candidates, WAP5 / Project5's observation decides: a service issues a call a
//! short, service-specific processing delay after the last event of the request it works on (its
//! arrival, or the return of its previous call), and answers a processing delay after its last
//! call returned. [`DelayModel`] is that delay's distribution, learned per service from the data,
//! per step of each endpoint's handler where it has seen enough of them, and remembered across
//! batches ([`super::assign`] does the assignment).

use std::rc::Rc;

use crate::keyhash::KeyMap;

/// What a handler did at a step, as a key: before a delay, its request's arrival or the return
/// of one of its calls (to which endpoint, failed or not); after it, a call (to which endpoint)
/// or its response. Keys of calls are hashes ([`crate::ids::hash64`]) and never these two.
pub type StepKey = u64;
pub const ARRIVAL: StepKey = 0;
/// A step of an endpoint's handler: (endpoint, previous step, next step).
pub type TemplateStep = (u64, StepKey, StepKey);
pub const RESPOND: StepKey = 1;

/// The step before a call launched while a call to `sibling` runs, right after it: parallel
/// fan-out. Its own key, so that the template learns which calls go out together.
pub fn alongside(sibling: StepKey) -> StepKey {
    (sibling.rotate_left(17) ^ 0x9a3a_11e1_0f5e_7c3b).max(RESPOND + 1)
}

/// One processing delay of an assignment: in a handler of `endpoint`, from `prev` to `next`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub endpoint: u64,
    pub prev: StepKey,
    pub next: StepKey,
    pub gap_ns: u64,
    /// Launched alongside a running call (`prev` is [`alongside`] it): its gap is not a
    /// processing delay, and is kept out of the pooled histogram.
    pub parallel: bool,
}

/// Distribution of a service's processing delays: before any fit a scale-free prior (every
/// octave from 1 µs to 17 s equally likely, so no gap is favoured for being short); once fitted
/// to an assignment, a smoothed histogram over 1/8-octave bins, pooled over all steps.
///
/// Handlers of one endpoint repeat themselves: `/checkout` calls users, then orders, then
/// answers, with each step's delay its own. So the model also keeps, per (endpoint, previous
/// step), how often each next step follows (the handler's template) and that step's own delay
/// histogram. A step is scored by both, each backed off to the pooled estimate while it has
/// few samples: an assignment that gives a handler a call its endpoint never makes, or a delay
/// far from that step's usual one, is unlikely even where the pooled delays would allow it.
#[derive(Clone, Debug, Default)]
pub struct DelayModel {
    /// Smoothed counts per bin, pooled over all steps, and their sum.
    pooled: Option<(Vec<f64>, f64)>,
    /// Per (endpoint, prev, next): smoothed counts per bin and their sum.
    steps: KeyMap<(u64, StepKey, StepKey), (Vec<f64>, f64)>,
    /// Per (endpoint, prev): how many steps were seen.
    from: KeyMap<(u64, StepKey), f64>,
    /// Per next step, over all endpoints: how many were seen (the template's back-off).
    next_seen: KeyMap<StepKey, f64>,
    total: f64,
}

/// Delay histogram: bins of 1/8 octave from 2^10 ns (1 µs) to 2^34 ns (17 s).
pub(super) const BINS_PER_OCTAVE: f64 = 8.0;
pub(super) const FIRST_OCTAVE: f64 = 10.0;
pub(super) const BINS: usize = 24 * 8;
/// Share of probability spread evenly over all bins, so that no delay is impossible.
const UNIFORM_SHARE: f64 = 0.02;
/// Samples a step needs before its own histogram counts as much as the pooled one.
const STEP_PRIOR_SAMPLES: f64 = 4.0;
/// Weight of the back-off in a template: pseudo-samples of "any step, as often as anywhere".
const TEMPLATE_PRIOR_SAMPLES: f64 = 1.0;
/// Steps keyed separately at most; the rarest beyond are scored by the pooled model only.
const MAX_STEP_KEYS: usize = 4096;
/// Samples the model remembers across batches: older ones are scaled down to this.
const MEMORY_SAMPLES: f64 = 20_000.0;

/// The first gap of each bin but the first: `bin_starts()[i]` begins bin `i + 1`, so a gap's
/// bin is the number of these at or below it.
pub(super) fn bin_starts() -> &'static [u64] {
    static STARTS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    STARTS.get_or_init(|| (1..BINS).map(bin_start_ns).collect())
}

pub(super) fn bin_of(gap_ns: u64) -> usize {
    // A gap's bin is found from its octave (its highest bit) and the next eight bits, by table,
    // instead of by a logarithm (a tenth of the search's time) or a search of the octave's
    // edges (the hottest loop of the search after that).
    let starts = bin_starts();
    let octave = 63 - gap_ns.max(1).leading_zeros() as usize;
    let Some(above) = octave.checked_sub(FIRST_OCTAVE as usize) else {
        return 0;
    };
    // `starts[i]` begins bin i + 1; a bin's count of starts at or below the gap is its index.
    // From a bin at or below the gap's, one below the table's for the float rounding of the
    // edges, up to the first edge above the gap.
    let per_octave = BINS_PER_OCTAVE as usize;
    let eighth_bits = ((gap_ns << (63 - octave)) >> 55) as usize & 0xff;
    let mut bin = (above * per_octave + usize::from(bins_in_octave()[eighth_bits]))
        .saturating_sub(1)
        .min(starts.len());
    while starts.get(bin).is_some_and(|&start| start <= gap_ns) {
        bin += 1;
    }
    bin
}

/// For each value `m` of the eight bits after a gap's highest, the bin within its octave of a
/// gap whose bits after the highest start with `m` and are all zero after: the lowest bin of
/// such gaps (give or take the rounding of the edges).
fn bins_in_octave() -> &'static [u8; 256] {
    static BINS_IN_OCTAVE: std::sync::OnceLock<[u8; 256]> = std::sync::OnceLock::new();
    BINS_IN_OCTAVE.get_or_init(|| {
        std::array::from_fn(|m| ((1.0 + m as f64 / 256.0).log2() * BINS_PER_OCTAVE) as u8)
    })
}

/// [`bin_of`] by a search of the edges.
#[cfg(test)]
fn bin_by_search(gap_ns: u64) -> usize {
    bin_starts().partition_point(|&start| start <= gap_ns)
}

/// [`bin_of`] by its definition: eighths of an octave above 2^10 ns.
fn bin_by_log(gap_ns: u64) -> usize {
    let x = ((gap_ns.max(1) as f64).log2() - FIRST_OCTAVE) * BINS_PER_OCTAVE;
    x.clamp(0.0, (BINS - 1) as f64) as usize
}

/// The shortest gap [`bin_of`] puts in `bin` (or later), for `bin` ≥ 1.
fn bin_start_ns(bin: usize) -> u64 {
    let mut ns = 2f64
        .powf(FIRST_OCTAVE + bin as f64 / BINS_PER_OCTAVE)
        .floor() as u64;
    // Float rounding may leave the edge a nanosecond or two off either side.
    while ns > 0 && bin_by_log(ns - 1) >= bin {
        ns -= 1;
    }
    while bin_by_log(ns) < bin {
        ns += 1;
    }
    ns
}

pub(super) fn bin_width_ns(bin: usize) -> f64 {
    static WIDTHS: std::sync::OnceLock<[f64; BINS]> = std::sync::OnceLock::new();
    // Worked out once: two powers per bin were most of the cost of a row of a step's scores.
    match WIDTHS
        .get_or_init(|| std::array::from_fn(bin_width_by_pow))
        .get(bin)
    {
        Some(&width) => width,
        None => bin_width_by_pow(bin),
    }
}

/// [`bin_width_ns`] by its definition.
fn bin_width_by_pow(bin: usize) -> f64 {
    let lo = 2f64.powf(FIRST_OCTAVE + bin as f64 / BINS_PER_OCTAVE);
    lo * (2f64.powf(1.0 / BINS_PER_OCTAVE) - 1.0)
}

/// Adds one delay to smoothed bin counts (±2 bins).
fn add_smoothed(counts: &mut [f64], gap_ns: u64, weight: f64) {
    add_smoothed_at(counts, bin_of(gap_ns), weight);
}

/// Adds `weight` at `bin` to smoothed bin counts, spread over ±2 bins.
pub(super) fn add_smoothed_at(counts: &mut [f64], bin: usize, weight: f64) {
    for (k, w) in [0.1, 0.2, 0.4, 0.2, 0.1].iter().enumerate() {
        let t = bin as i64 + k as i64 - 2;
        if (0..counts.len() as i64).contains(&t) {
            counts[t as usize] += w * weight;
        }
    }
}

/// Probability mass of `bin` in smoothed counts summing to `n`.
fn mass(counts: &[f64], n: f64, bin: usize) -> f64 {
    (1.0 - UNIFORM_SHARE) * counts[bin] / n.max(1e-9) + UNIFORM_SHARE / BINS as f64
}

impl DelayModel {
    /// Log density (per nanosecond) of a processing delay, pooled over all steps.
    pub fn ln_density(&self, gap_ns: u64) -> f64 {
        self.ln_density_in_bin(bin_of(gap_ns))
    }

    /// [`Self::ln_density`] for any gap in bin `b`.
    fn ln_density_in_bin(&self, b: usize) -> f64 {
        let m = self
            .pooled
            .as_ref()
            .map_or(1.0 / BINS as f64, |(c, n)| mass(c, *n, b));
        (m / bin_width_ns(b)).ln()
    }

    /// Log-likelihood of a step: that a handler of `endpoint` did `next` after `prev` (its
    /// template), `gap_ns` later (that step's delays).
    pub fn ln_step(&self, endpoint: u64, prev: StepKey, next: StepKey, gap_ns: u64) -> f64 {
        self.ln_step_in_bin(endpoint, prev, next, bin_of(gap_ns))
    }

    /// [`Self::ln_step`] for any gap in `bin`: it depends on the gap through its bin alone.
    fn ln_step_in_bin(&self, endpoint: u64, prev: StepKey, next: StepKey, bin: usize) -> f64 {
        self.step_shape(endpoint, prev, next)
            .ln(bin, self.pooled_density(bin))
    }

    /// The pooled delays' density (per nanosecond) in `bin`.
    fn pooled_density(&self, bin: usize) -> f64 {
        let pooled = self
            .pooled
            .as_ref()
            .map_or(1.0 / BINS as f64, |(c, n)| mass(c, *n, bin));
        pooled / bin_width_ns(bin)
    }

    /// [`Self::ln_step_in_bin`] at every bin.
    fn ln_step_row(&self, endpoint: u64, prev: StepKey, next: StepKey) -> Box<[f64]> {
        let shape = self.step_shape(endpoint, prev, next);
        (0..BINS)
            .map(|b| shape.ln(b, self.pooled_density(b)))
            .collect()
    }

    /// Like [`Self::ln_step`] for a call launched alongside a running call to `sibling`: the
    /// gap's density, until that step has been seen, is `back_off_ln_density`.
    pub fn ln_parallel_step(
        &self,
        endpoint: u64,
        sibling: StepKey,
        next: StepKey,
        gap_ns: u64,
        back_off_ln_density: f64,
    ) -> f64 {
        self.ln_step_backed_by(
            endpoint,
            alongside(sibling),
            next,
            bin_of(gap_ns),
            back_off_ln_density.exp(),
        )
    }

    /// A step's template share times its delay's density in `bin`, that step's own histogram
    /// backed off to `back_off_density` (per nanosecond) while it has few samples.
    fn ln_step_backed_by(
        &self,
        endpoint: u64,
        prev: StepKey,
        next: StepKey,
        bin: usize,
        back_off_density: f64,
    ) -> f64 {
        self.step_shape(endpoint, prev, next)
            .ln(bin, back_off_density)
    }

    /// What scoring the step (endpoint, prev, next) needs of the model, looked up once: the
    /// lookups do not depend on the delay, and a table row scores the step at every bin.
    fn step_shape(&self, endpoint: u64, prev: StepKey, next: StepKey) -> StepShape<'_> {
        if self.total == 0.0 {
            return StepShape::Unfitted;
        }
        let kinds = self.next_seen.len() as f64 + 1.0;
        let back_off =
            (self.next_seen.get(&next).copied().unwrap_or(0.0) + 0.5) / (self.total + 0.5 * kinds);
        // A step of this endpoint's own where there are any from `prev`, else one of a handler
        // not known (only the first guess has those).
        let endpoint = if self.from.contains_key(&(endpoint, prev)) {
            endpoint
        } else {
            ANY_ENDPOINT
        };
        let seen_from = self.from.get(&(endpoint, prev)).copied().unwrap_or(0.0);
        let own = self.steps.get(&(endpoint, prev, next));
        let seen = own.map_or(0.0, |(_, n)| *n);
        let template =
            (seen + TEMPLATE_PRIOR_SAMPLES * back_off) / (seen_from + TEMPLATE_PRIOR_SAMPLES);
        StepShape::Fitted {
            ln_template: template.ln(),
            own: own.map(|(c, n)| (c.as_slice(), *n)),
        }
    }

    /// Samples the model has learned from (what earlier batches taught it, scaled down).
    pub fn samples(&self) -> f64 {
        self.total
    }

    /// A model of histograms counted elsewhere (the first guess, [`super::guess`]): `pooled`
    /// over all steps, and each (endpoint, prev, next) step's own, each with its sum.
    pub fn of_histograms(
        pooled: (Vec<f64>, f64),
        steps: Vec<(TemplateStep, Vec<f64>, f64)>,
    ) -> Self {
        let mut model = DelayModel {
            pooled: Some(pooled),
            ..DelayModel::default()
        };
        for ((endpoint, prev, next), counts, n) in steps {
            model.steps.insert((endpoint, prev, next), (counts, n));
            *model.from.entry((endpoint, prev)).or_default() += n;
            *model.next_seen.entry(next).or_default() += n;
            model.total += n;
        }
        model
    }

    /// The delays of a whole assignment (smoothed over ±2 bins), added to what `history`
    /// remembers of earlier batches.
    pub fn fitted(history: &DelayModel, steps: &[Step]) -> Self {
        let mut m = history.clone();
        let keep = if m.total + steps.len() as f64 > MEMORY_SAMPLES {
            (MEMORY_SAMPLES - steps.len() as f64).max(0.0) / m.total
        } else {
            1.0
        };
        if keep < 1.0 {
            m.scale(keep);
        }
        let (pooled, pooled_n) = m.pooled.get_or_insert_with(|| (vec![0.0; BINS], 0.0));
        for s in steps {
            if !s.parallel {
                add_smoothed(pooled, s.gap_ns, 1.0);
                *pooled_n += 1.0;
            }
            *m.from.entry((s.endpoint, s.prev)).or_default() += 1.0;
            *m.next_seen.entry(s.next).or_default() += 1.0;
            m.total += 1.0;
            let key = (s.endpoint, s.prev, s.next);
            if m.steps.len() < MAX_STEP_KEYS || m.steps.contains_key(&key) {
                let (c, n) = m.steps.entry(key).or_insert_with(|| (vec![0.0; BINS], 0.0));
                add_smoothed(c, s.gap_ns, 1.0);
                *n += 1.0;
            }
        }
        m
    }

    /// For tests: handlers of `endpoint` that call 9 (returning as 10) after arriving, call
    /// again after a call returned, and answer after the last returned, each step `gap_ns`
    /// after the one before, as if fitted to `samples` of each.
    #[cfg(test)]
    pub fn every_step_after(endpoint: u64, gap_ns: u64, samples: usize) -> Self {
        let steps: Vec<Step> = [(ARRIVAL, 9), (10, 9), (10, RESPOND)]
            .iter()
            .flat_map(|&(prev, next)| {
                let step = Step {
                    endpoint,
                    prev,
                    next,
                    gap_ns,
                    parallel: false,
                };
                std::iter::repeat_n(step, samples)
            })
            .collect();
        DelayModel::fitted(&DelayModel::default(), &steps)
    }

    fn scale(&mut self, k: f64) {
        if let Some((c, n)) = &mut self.pooled {
            c.iter_mut().for_each(|x| *x *= k);
            *n *= k;
        }
        for (c, n) in self.steps.values_mut() {
            c.iter_mut().for_each(|x| *x *= k);
            *n *= k;
        }
        self.steps.retain(|_, (_, n)| *n >= 0.5);
        self.from.values_mut().for_each(|n| *n *= k);
        self.next_seen.values_mut().for_each(|n| *n *= k);
        self.total *= k;
    }
}

/// One step of a [`DelayModel`], ready to score at any bin ([`DelayModel::step_shape`]).
#[derive(Clone, Copy)]
enum StepShape<'m> {
    /// Nothing fitted yet: only the back-off density counts.
    Unfitted,
    Fitted {
        /// Log of the template's share for this step.
        ln_template: f64,
        /// The step's own smoothed counts and their sum, if it has been seen.
        own: Option<(&'m [f64], f64)>,
    },
}

impl StepShape<'_> {
    /// The step's log-likelihood at a delay in `bin`, its own histogram backed off to
    /// `back_off_density` (per nanosecond) while it has few samples.
    fn ln(&self, bin: usize, back_off_density: f64) -> f64 {
        match *self {
            StepShape::Unfitted => back_off_density.ln(),
            StepShape::Fitted { ln_template, own } => {
                let density = match own {
                    Some((c, n)) => {
                        let own = n / (n + STEP_PRIOR_SAMPLES);
                        own * mass(c, n, bin) / bin_width_ns(bin) + (1.0 - own) * back_off_density
                    }
                    None => back_off_density,
                };
                ln_template + density.ln()
            }
        }
    }
}

/// The endpoint of a step whose handler is not known (see [`super::guess::GuessEvent`]): such steps stand
/// for every endpoint that has none of its own from the same previous step.
pub const ANY_ENDPOINT: u64 = 0;

/// [`DelayModel::ln_step`] by table, for a model that does not change while it is used (one
/// assignment pass): each (endpoint, prev, next) is worked out once for every bin, and then a
/// step costs one lookup. Scoring steps is most of the beam's work.
pub struct StepTable<'m> {
    pub model: &'m DelayModel,
    /// [`DelayModel::ln_density`] per bin.
    ln_density: Box<[f64]>,
    /// [`DelayModel::pooled_density`] per bin.
    pooled_density: Box<[f64]>,
    rows: KeyMap<(u64, StepKey, StepKey), Row<'m>>,
    /// Per (endpoint, prev): [`Self::waiting_loss`].
    waiting_loss: KeyMap<(u64, StepKey), WaitingLoss>,
}

/// What a handler loses by waiting for its next step (see [`StepTable::waiting_loss`]).
#[derive(Clone, Debug)]
pub struct WaitingLoss {
    per_bin: Rc<[f64]>,
    /// Waits shorter than this lose nothing (they end before the first bin that loses).
    free_ns: u64,
}

impl WaitingLoss {
    /// The loss (≤ 0) after waiting `waited_ns`.
    pub fn after(&self, waited_ns: u64) -> f64 {
        if waited_ns < self.free_ns {
            0.0
        } else {
            self.per_bin[bin_of(waited_ns)]
        }
    }

    /// [`Self::after`] `waited_ns`, and the waits `from..until` that lose the same (its bin).
    pub fn after_in_bin(&self, waited_ns: u64) -> (f64, std::ops::Range<u64>) {
        if waited_ns < self.free_ns {
            return (0.0, 0..self.free_ns);
        }
        let bin = bin_of(waited_ns);
        // `bin_starts()[i]` begins bin i + 1.
        let starts = bin_starts();
        let from = bin.checked_sub(1).map_or(0, |b| starts[b]);
        let until = starts.get(bin).copied().unwrap_or(u64::MAX);
        (self.per_bin[bin], from..until)
    }
}

/// Rows a table keeps at most (1.5 KiB each); beyond, steps are scored directly.
const MAX_TABLE_ROWS: usize = 4096;

impl<'m> StepTable<'m> {
    pub fn new(model: &'m DelayModel) -> Self {
        StepTable {
            model,
            ln_density: (0..BINS).map(|b| model.ln_density_in_bin(b)).collect(),
            pooled_density: (0..BINS).map(|b| model.pooled_density(b)).collect(),
            rows: KeyMap::default(),
            waiting_loss: KeyMap::default(),
        }
    }

    /// What a handler of `endpoint` whose last step was `prev` has lost by waiting, per bin of
    /// the time waited: how much worse than its best its next step must now score, whatever
    /// that step is (one seen from `prev`, or answering), since it can no longer come sooner.
    /// Zero until the usual delays have passed, then falling.
    pub fn waiting_loss(&mut self, endpoint: u64, prev: StepKey) -> WaitingLoss {
        let key = (endpoint, prev);
        if let Some(row) = self.waiting_loss.get(&key) {
            return row.clone();
        }
        let model = self.model;
        // The steps `ln_step` scores this handler by: its endpoint's own, or where it has none
        // from `prev`, those of a handler not known.
        let own = if model.from.contains_key(&key) {
            endpoint
        } else {
            ANY_ENDPOINT
        };
        // Looked through once per row kept (one per (endpoint, prev)).
        let seen = model
            .steps
            .keys()
            .filter(|&&(e, p, _)| (e, p) == (own, prev))
            .map(|&(_, _, next)| next);
        // The best next step at a gap in each bin, then in it or any later one.
        let mut best = vec![f64::NEG_INFINITY; BINS];
        for next in seen.chain([RESPOND]) {
            let row = model.ln_step_row(endpoint, prev, next);
            for (best, ln) in best.iter_mut().zip(row.iter()) {
                *best = best.max(*ln);
            }
        }
        for b in (0..BINS - 1).rev() {
            best[b] = best[b].max(best[b + 1]);
        }
        let per_bin: Rc<[f64]> = best.iter().map(|ln| ln - best[0]).collect();
        let free_bins = per_bin.iter().position(|&l| l < 0.0).unwrap_or(BINS);
        let loss = WaitingLoss {
            per_bin,
            free_ns: if free_bins == 0 {
                0
            } else {
                bin_start_ns(free_bins)
            },
        };
        if self.waiting_loss.len() < MAX_TABLE_ROWS {
            self.waiting_loss.insert(key, loss.clone());
        }
        loss
    }

    /// [`DelayModel::ln_density`] by table.
    pub fn ln_density(&self, gap_ns: u64) -> f64 {
        self.ln_density[bin_of(gap_ns)]
    }

    pub fn ln_step(&mut self, endpoint: u64, prev: StepKey, next: StepKey, gap_ns: u64) -> f64 {
        let bin = bin_of(gap_ns);
        let model = self.model;
        let key = (endpoint, prev, next);
        if let Some(row) = self.rows.get_mut(&key) {
            return row.at(bin, &self.pooled_density);
        }
        if self.rows.len() >= MAX_TABLE_ROWS {
            return model.ln_step_in_bin(endpoint, prev, next, bin);
        }
        let mut row = Row {
            shape: model.step_shape(endpoint, prev, next),
            ln: vec![f64::NAN; BINS].into_boxed_slice(),
        };
        let ln = row.at(bin, &self.pooled_density);
        self.rows.insert(key, row);
        ln
    }
}

/// A step's scores ([`DelayModel::ln_step_in_bin`]) per bin, each worked out when first asked
/// for: a step's delays fall in a few bins, and a whole row was most of a table's work.
struct Row<'m> {
    shape: StepShape<'m>,
    /// NaN where not worked out yet (a score never is: every density is above zero).
    ln: Box<[f64]>,
}

impl Row<'_> {
    fn at(&mut self, bin: usize, pooled_density: &[f64]) -> f64 {
        let ln = &mut self.ln[bin];
        if ln.is_nan() {
            *ln = self.shape.ln(bin, pooled_density[bin]);
        }
        *ln
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_by_table_are_bins_by_search() {
        for &start in bin_starts() {
            for g in start.saturating_sub(3)..start + 3 {
                assert_eq!(bin_of(g), bin_by_search(g), "{g}");
            }
        }
        let mut gap = 0u64;
        while gap < u64::MAX / 2 {
            assert_eq!(bin_of(gap), bin_by_search(gap), "{gap}");
            gap = gap + gap / 1000 + 1;
        }
        for g in [u64::MAX, u64::MAX - 1, 1 << 63, (1 << 34) - 1, 1 << 34] {
            assert_eq!(bin_of(g), bin_by_search(g), "{g}");
        }
    }

    #[test]
    fn bins_by_table_are_bins_by_logarithm() {
        let mut gap = 0u64;
        while gap < 1 << 40 {
            for g in [gap, gap + 1, gap.saturating_sub(1)] {
                assert_eq!(bin_of(g), bin_by_log(g), "{g}");
            }
            gap = gap * 17 / 16 + 1;
        }
        for bin in 1..BINS {
            let start = bin_start_ns(bin);
            assert_eq!(bin_of(start), bin);
            assert_eq!(bin_of(start - 1), bin - 1);
        }
    }

    #[test]
    fn the_prior_favours_no_scale_and_the_fit_finds_the_delays() {
        let prior = DelayModel::default();
        // Scale-free: equal mass per octave, so density falls as 1/gap.
        let ratio = (prior.ln_density(100_000) - prior.ln_density(200_000)).exp();
        assert!((ratio - 2.0).abs() < 0.3, "{ratio}");
        let gaps: Vec<Step> = (0..500)
            .map(|i| Step {
                endpoint: 7,
                prev: ARRIVAL,
                next: 9,
                gap_ns: 280_000 + (i % 40) * 1_000,
                parallel: false,
            })
            .collect();
        let fitted = DelayModel::fitted(&prior, &gaps);
        assert!(fitted.ln_density(300_000) > fitted.ln_density(80_000) + 2.0);
        assert!(fitted.ln_density(300_000) > fitted.ln_density(3_000_000) + 2.0);
    }

    #[test]
    fn waiting_costs_nothing_until_the_usual_delay_has_passed() {
        let model = DelayModel::every_step_after(7, 300_000, 200);
        let mut table = StepTable::new(&model);
        let loss = table.waiting_loss(7, ARRIVAL);
        let loss = |waited: u64| loss.after(waited);
        // Before and at the usual delay the next step can still come on time.
        for waited in [0, 100_000, 280_000] {
            assert_eq!(loss(waited), 0.0, "{waited}");
        }
        // Long after it, the next step is at least as unlikely as the longest gaps are.
        let late = loss(3_000_000);
        assert!(late < -5.0, "{late}");
        assert!(loss(30_000_000) <= late);
        // And it is what the best step at that gap scores, less the best step at all.
        let best_late = table.ln_step(7, ARRIVAL, 9, 3_000_000);
        let best = table.ln_step(7, ARRIVAL, 9, 300_000);
        assert!(
            (late - (best_late - best)).abs() < 1.0,
            "{late} {best_late} {best}"
        );
    }

    #[test]
    fn the_step_table_scores_as_the_model_does() {
        let steps: Vec<Step> = (0..300)
            .map(|i| Step {
                endpoint: 7,
                prev: if i % 2 == 0 { ARRIVAL } else { 11 },
                next: 9 + i % 3,
                gap_ns: 50_000 + i * 3_000,
                parallel: false,
            })
            .collect();
        let model = DelayModel::fitted(&DelayModel::default(), &steps);
        let mut table = StepTable::new(&model);
        for (prev, next) in [(ARRIVAL, 9), (11, 10), (11, RESPOND), (42, 9)] {
            for gap in [0, 999, 1_000, 70_000, 300_000, 5_000_000, u64::MAX] {
                let direct = model.ln_step(7, prev, next, gap);
                assert_eq!(
                    table.ln_step(7, prev, next, gap),
                    direct,
                    "{prev} {next} {gap}"
                );
                // And again from the row now kept.
                assert_eq!(table.ln_step(7, prev, next, gap), direct);
            }
        }
    }
}
