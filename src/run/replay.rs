//! Replay: capture files through the spine. Several files are merged in timestamp order (they
//! are views of the same time window from different points, their clocks corrected against the
//! first); the same packet seen at two points then reads as a retransmission and is decoded once.

use std::path::PathBuf;

use tapspan_capture::{CaptureError, FileSource, LinkType, PacketSource, RawFrame, Timestamp};

use crate::pipeline::{Back, Pipeline, PipelineConfig, PipelineStats};

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
    back: B,
) -> Result<ReplayOutcome, CaptureError> {
    let mut sources = paths
        .iter()
        .map(|p| FileSource::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let clock_offsets = super::clock::estimate_offsets(paths)?;
    let total: u64 = sources.iter().filter_map(|s| s.total_len()).sum();
    let mut pipeline = Pipeline::new(config, back);
    let mut outcome = ReplayOutcome::default();
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
                progress(source.position(), total);
            }
        }
    } else {
        let corrections: Vec<i64> = std::iter::once(0)
            .chain(clock_offsets.iter().map(|c| c.offset_ns))
            .collect();
        merge_sources(
            &mut sources,
            &corrections,
            &mut pipeline,
            &mut outcome,
            progress,
            total,
        );
    }
    outcome.clock_offsets = clock_offsets;
    outcome.input_bytes = sources.iter().map(|s| s.position()).sum();
    progress(outcome.input_bytes, total);
    pipeline.finish();
    outcome.stats = pipeline.stats();
    Ok(outcome)
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

fn merge_sources<B: Back>(
    sources: &mut [FileSource],
    corrections: &[i64],
    pipeline: &mut Pipeline<B>,
    outcome: &mut ReplayOutcome,
    progress: Progress<'_>,
    total: u64,
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
            progress(sources.iter().map(|s| s.position()).sum(), total);
        }
    }
}
