//! Replay: capture files through the spine. Several files are merged in timestamp order (they
//! are views of the same time window from different points, their clocks corrected against the
//! first); the same packet seen at two points then reads as a retransmission and is decoded once.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};

use tapspan_capture::{CaptureError, FileSource, LinkType, PacketSource, RawFrame, Timestamp};

use crate::pipeline::{Back, Pipeline, PipelineConfig, PipelineStats};
use crate::protocols::Exchange;

/// What a replay saw, and the damaged files it stopped early on.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    pub stats: PipelineStats,
    /// Clock offsets of the second and later files relative to the first, as corrected.
    pub clock_offsets: Vec<super::clock::ClockOffset>,
    pub damaged: Vec<CaptureError>,
    pub input_bytes: u64,
}

/// Progress callback: (bytes consumed, total bytes).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Replay capture files through a pipeline. Opening failures are returned as errors before any
/// work; a file damaged part-way is recorded in the outcome after everything before it was
/// decoded (and the other files go on).
pub fn replay_files<B: Back>(
    paths: &[PathBuf],
    config: PipelineConfig,
    progress: Progress<'_>,
    mut back: B,
) -> Result<ReplayOutcome, CaptureError> {
    let mut sources = paths
        .iter()
        .map(|p| FileSource::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let clock_offsets = super::clock::estimate_offsets(paths)?;
    let total: u64 = sources.iter().filter_map(|s| s.total_len()).sum();
    // Two stages on two threads: frames to exchanges on one, the back (causality, spans) on
    // this one, so that a long capture's packets are decoded while earlier exchanges are
    // searched. What the back is told, and in which order, is what one thread would tell it.
    let (to_back, handed) = sync_channel(BATCHES_QUEUED);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut pipeline = Pipeline::new(config, Handoff::new(to_back));
            let outcome = read_all(&mut sources, &clock_offsets, &mut pipeline);
            ReplayOutcome {
                clock_offsets,
                ..outcome
            }
        });
        for batch in handed {
            for item in batch {
                match item {
                    Handed::Exchange(ex) => back.exchange(ex),
                    Handed::Progress(done) => progress(done, total),
                    Handed::Finish => back.finish(),
                }
            }
        }
        match reader.join() {
            Ok(outcome) => Ok(outcome),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Batches of what the reading thread hands over that may wait for the back.
const BATCHES_QUEUED: usize = 8;
/// Items per batch.
const HANDOFF_BATCH: usize = 128;

// Nearly every item is an exchange: boxing them would add an allocation to each.
#[allow(clippy::large_enum_variant)]
enum Handed {
    Exchange(Exchange),
    /// Bytes consumed so far.
    Progress(u64),
    Finish,
}

/// The reading thread's back: what a pipeline gives, passed on in order.
struct Handoff {
    batch: Vec<Handed>,
    to_back: SyncSender<Vec<Handed>>,
}

impl Handoff {
    fn new(to_back: SyncSender<Vec<Handed>>) -> Self {
        Handoff {
            batch: Vec::with_capacity(HANDOFF_BATCH),
            to_back,
        }
    }

    fn hand(&mut self, item: Handed) {
        let last = matches!(item, Handed::Finish);
        self.batch.push(item);
        if last || self.batch.len() >= HANDOFF_BATCH {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HANDOFF_BATCH));
            // The back's thread only goes away by panicking, which the join reports.
            let _ = self.to_back.send(batch);
        }
    }
}

impl Back for Handoff {
    fn exchange(&mut self, ex: Exchange) {
        self.hand(Handed::Exchange(ex));
    }

    fn finish(&mut self) {
        self.hand(Handed::Finish);
    }
}

/// Every frame of `sources` through `pipeline` (merged by time when there are several), then
/// its end.
fn read_all(
    sources: &mut [FileSource],
    clock_offsets: &[super::clock::ClockOffset],
    pipeline: &mut Pipeline<Handoff>,
) -> ReplayOutcome {
    let mut outcome = ReplayOutcome::default();
    let progress = |pipeline: &mut Pipeline<Handoff>, done: u64| {
        pipeline.back_mut().hand(Handed::Progress(done));
    };
    let mut frames: u64 = 0;
    if sources.len() == 1 {
        let source = &mut sources[0];
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => pipeline.push_frame(&frame),
                Ok(None) => break,
                Err(e) => {
                    outcome.damaged.push(e);
                    break;
                }
            }
            frames += 1;
            if frames % 8192 == 0 {
                progress(pipeline, source.position());
            }
        }
    } else {
        let corrections: Vec<i64> = std::iter::once(0)
            .chain(clock_offsets.iter().map(|c| c.offset_ns))
            .collect();
        merge_sources(sources, &corrections, pipeline, &mut outcome);
    }
    outcome.input_bytes = sources.iter().map(|s| s.position()).sum();
    progress(pipeline, outcome.input_bytes);
    pipeline.finish();
    outcome.stats = pipeline.stats();
    outcome
}

/// A frame copied out of its source, so several sources can be compared by time.
struct HeldFrame {
    ts: Timestamp,
    link_type: LinkType,
    data: Vec<u8>,
    orig_len: u32,
    offset: u64,
}

fn pull(
    source: &mut FileSource,
    correction_ns: i64,
    into: &mut Option<HeldFrame>,
    damaged: &mut Vec<CaptureError>,
) {
    let mut buf = into.take().map(|h| h.data).unwrap_or_default();
    match source.next_frame() {
        Ok(Some(f)) => {
            buf.clear();
            buf.extend_from_slice(f.data);
            *into = Some(HeldFrame {
                ts: Timestamp((f.ts.0 as i64).saturating_sub(correction_ns).max(0) as u64),
                link_type: f.link_type,
                data: buf,
                orig_len: f.orig_len,
                offset: f.offset,
            });
        }
        Ok(None) => {}
        Err(e) => damaged.push(e),
    }
}

fn merge_sources(
    sources: &mut [FileSource],
    corrections: &[i64],
    pipeline: &mut Pipeline<Handoff>,
    outcome: &mut ReplayOutcome,
) {
    let mut heads: Vec<Option<HeldFrame>> = sources.iter().map(|_| None).collect();
    for (i, (s, h)) in sources.iter_mut().zip(heads.iter_mut()).enumerate() {
        pull(s, corrections[i], h, &mut outcome.damaged);
    }
    let mut frames: u64 = 0;
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (h.ts, i)))
            .min();
        let Some((_, i)) = next else { break };
        if let Some(h) = &heads[i] {
            let frame = RawFrame {
                ts: h.ts,
                link_type: h.link_type,
                data: &h.data,
                orig_len: h.orig_len,
                offset: h.offset,
            };
            pipeline.push_frame(&frame);
        }
        pull(
            &mut sources[i],
            corrections[i],
            &mut heads[i],
            &mut outcome.damaged,
        );
        frames += 1;
        if frames % 8192 == 0 {
            let done = sources.iter().map(|s| s.position()).sum();
            pipeline.back_mut().hand(Handed::Progress(done));
        }
    }
}
