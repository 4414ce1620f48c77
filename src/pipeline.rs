//! The spine: frames (or segments a source decoded already) and capture time in, spans out to
//! sinks. It wires the stages once — decode → reassembly → protocols → causality → sinks — and
//! every driver (replay, live, tests, fuzz harnesses) feeds it rather than re-wiring them.
//!
//! [`Pipeline`] runs the stages up to exchanges and hands each to its [`Back`]: [`Spans`]
//! (causality, then a [`Sink`]) for a whole run, or a plain collector where the exchanges
//! themselves are wanted (a live shard, whose exchanges meet the others' in one [`Spans`] on the
//! output thread; tests). Time is an input: frames carry it, and [`Pipeline::advance_to`] moves it
//! on when no packet does. Several capture files are merged in timestamp order (they are views of
//! the same time window from different points); the same packet seen at two points then reads as
//! a retransmission and is decoded once.

use std::path::PathBuf;

use tapspan_capture::{
    CaptureError, DecodeConfig, DecodeStats, Decoder, FileSource, LinkType, PacketSource, RawFrame,
    TcpSegment, Timestamp,
};

use crate::causality::CausalityBuilder;
use crate::protocols::{self, Decoders, Exchange, ProtocolConfig, ProtocolStats};
use crate::reassembly::{Reassembler, ReassemblyConfig, ReassemblyStats};
use crate::span::Span;

/// Where a pipeline's exchanges go.
pub trait Back {
    fn exchange(&mut self, ex: Exchange);
    /// Capture time reached `ts` with no exchange.
    fn advance_to(&mut self, _ts: Timestamp) {}
    /// End of input, after the last exchange.
    fn finish(&mut self) {}
}

/// Exchanges handed to a closure.
impl<F: FnMut(Exchange)> Back for F {
    fn exchange(&mut self, ex: Exchange) {
        self(ex)
    }
}

/// Exchanges kept in order (a live shard, tests).
impl Back for Vec<Exchange> {
    fn exchange(&mut self, ex: Exchange) {
        self.push(ex);
    }
}

/// Where spans go: the outputs of a run.
pub trait Sink {
    fn span(&mut self, span: Span);
    /// Causality has returned: what it emitted is all it has to say for now.
    fn settle(&mut self) {}
    /// Capture time reached `ts` on a quiet link.
    fn advance_to(&mut self, _ts: Timestamp) {}
}

/// Spans collected as they are.
impl Sink for Vec<Span> {
    fn span(&mut self, span: Span) {
        self.push(span);
    }
}

/// The back of the spine: exchanges through causality into a sink.
pub struct Spans<'a, S: ?Sized> {
    pub causality: &'a mut CausalityBuilder,
    pub sink: &'a mut S,
}

impl<'a, S: Sink + ?Sized> Spans<'a, S> {
    pub fn new(causality: &'a mut CausalityBuilder, sink: &'a mut S) -> Self {
        Spans { causality, sink }
    }
}

impl<S: Sink + ?Sized> Back for Spans<'_, S> {
    fn exchange(&mut self, ex: Exchange) {
        let sink = &mut *self.sink;
        self.causality.push(ex, &mut |span| sink.span(span));
        sink.settle();
    }

    fn advance_to(&mut self, ts: Timestamp) {
        let sink = &mut *self.sink;
        self.causality.advance_to(ts, &mut |span| sink.span(span));
        sink.advance_to(ts);
    }

    fn finish(&mut self) {
        let sink = &mut *self.sink;
        self.causality.finish(&mut |span| sink.span(span));
        sink.settle();
    }
}

#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    pub decode: DecodeConfig,
    pub reassembly: ReassemblyConfig,
    pub protocols: ProtocolConfig,
}

#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    pub decode: DecodeStats,
    pub reassembly: ReassemblyStats,
    pub protocols: ProtocolStats,
}

/// The stages from a raw frame to exchanges, handed to `B`.
pub struct Pipeline<B> {
    decoder: Decoder,
    reassembler: Reassembler,
    protocols: Decoders,
    back: B,
}

impl<B: Back> Pipeline<B> {
    pub fn new(config: PipelineConfig, back: B) -> Self {
        Pipeline {
            decoder: Decoder::new(config.decode),
            reassembler: Reassembler::with_hints(config.reassembly, protocols::role_hints()),
            protocols: Decoders::new(&config.protocols),
            back,
        }
    }

    /// A captured frame: decoded, then as [`Self::push_segment`].
    pub fn push_frame(&mut self, frame: &RawFrame<'_>) {
        if let Some(seg) = self.decoder.decode(frame) {
            self.push_segment(&seg);
        }
    }

    /// A TCP segment that a source decoded already (a live shard's router).
    pub fn push_segment(&mut self, seg: &TcpSegment<'_>) {
        let (protocols, back) = (&mut self.protocols, &mut self.back);
        self.reassembler.push(seg, &mut |ev| {
            protocols.push(ev, &mut |ex| back.exchange(ex))
        });
    }

    /// Capture time reached `ts` with no packet for this pipeline: idle connections expire and
    /// the back learns the time.
    pub fn advance_to(&mut self, ts: Timestamp) {
        let (protocols, back) = (&mut self.protocols, &mut self.back);
        self.reassembler.advance_to(ts, &mut |ev| {
            protocols.push(ev, &mut |ex| back.exchange(ex))
        });
        self.back.advance_to(ts);
    }

    /// End of input: every open connection closes with `capture_ended`, then the back finishes.
    pub fn finish(&mut self) {
        let (protocols, back) = (&mut self.protocols, &mut self.back);
        self.reassembler
            .finish(&mut |ev| protocols.push(ev, &mut |ex| back.exchange(ex)));
        self.back.finish();
    }

    pub fn back_mut(&mut self) -> &mut B {
        &mut self.back
    }

    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            decode: self.decoder.stats().clone(),
            reassembly: self.reassembler.stats.clone(),
            protocols: self.protocols.stats(),
        }
    }

    pub fn active_connections(&self) -> usize {
        self.reassembler.active_connections()
    }
}

/// What a replay saw, and the damaged files it stopped early on.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    pub stats: PipelineStats,
    /// Clock offsets of the second and later files relative to the first, as corrected.
    pub clock_offsets: Vec<crate::clock::ClockOffset>,
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
    let clock_offsets = crate::clock::estimate_offsets(paths)?;
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
