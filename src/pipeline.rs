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

use tapspan_capture::{
    DecodeConfig, DecodeStats, Decoded, Decoder, RawFrame, TcpSegment, Timestamp, UdpDatagram,
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

    /// A captured frame: decoded, then as [`Self::push_segment`] or [`Self::push_datagram`].
    /// Any other frame still tells datagram protocols the time (a query's timeout).
    pub fn push_frame(&mut self, frame: &RawFrame<'_>) {
        match self.decoder.decode_packet(frame) {
            Some(Decoded::Tcp(seg)) => {
                self.push_segment(&seg);
                self.tick(frame.ts);
            }
            Some(Decoded::Udp(d)) => self.push_datagram(&d),
            None => self.tick(frame.ts),
        }
    }

    /// A UDP datagram: to the protocols that take datagrams (DNS).
    pub fn push_datagram(&mut self, d: &UdpDatagram<'_>) {
        let back = &mut self.back;
        self.protocols.datagram(d, &mut |ex| back.exchange(ex));
    }

    /// Datagram protocols learn the capture time (a front-of-queue check when nothing is due).
    fn tick(&mut self, ts: Timestamp) {
        let back = &mut self.back;
        self.protocols.advance_to(ts, &mut |ex| back.exchange(ex));
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
        self.tick(ts);
        self.back.advance_to(ts);
    }

    /// End of input: every open connection closes with `capture_ended`, then the back finishes.
    pub fn finish(&mut self) {
        let (protocols, back) = (&mut self.protocols, &mut self.back);
        self.reassembler
            .finish(&mut |ev| protocols.push(ev, &mut |ex| back.exchange(ex)));
        self.protocols.finish(&mut |ex| back.exchange(ex));
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
