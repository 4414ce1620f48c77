//! The sharded pipeline of a live run: capture side → workers → exchanges.
//!
//! ```text
//! capture thread: read ─► Router (decode, IP defrag, 4-tuple hash) ─► per-worker Batch of segments
//!     │  try_send; a full queue sheds the batch, counted (never blocks the capture thread)
//!     ▼
//! worker i (one per shard): Pipeline (reassembly, protocols) ─► Vec<Exchange>
//!     │  send (blocks: backpressure reaches the worker queue, so shedding happens at the front)
//!     ▼
//! output thread (the caller): spans, causality, Outputs
//! ```
//!
//! Contract: every queue is bounded (`queue_batches` batches per worker, `output_batches`
//! exchange batches in all). Frames of one connection stay in capture order on one worker.
//! [`Ingest::finish`] flushes what is batched (blocking, so nothing captured before the stop is
//! shed), closes the worker queues; each worker then drains its queue, ends its open connections
//! (their exchanges closed as incomplete, `capture_ended`) and exits; the exchange channel closes
//! when the last worker is done. The engine reads the wall clock only to pace batch flushing and
//! stats publication, never to decide anything about the traffic.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tapspan_capture::{Decoded, RawFrame, Timestamp};

use super::shard::{Batch, Entry, Router};
use super::stats::{Shared, WorkerSnapshot};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::protocols::Exchange;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    /// Batches each worker's queue holds before the capture side sheds.
    pub queue_batches: usize,
    /// A batch is sent when it holds this many frames ...
    pub batch_frames: usize,
    /// ... or this many captured bytes ...
    pub batch_bytes: usize,
    /// ... or when it is this old.
    pub batch_age: Duration,
    /// Exchange batches waiting for the output thread.
    pub output_batches: usize,
    pub pipeline: PipelineConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            queue_batches: 256,
            batch_frames: 256,
            batch_bytes: 256 << 10,
            batch_age: Duration::from_millis(20),
            output_batches: 1024,
            pipeline: PipelineConfig::default(),
        }
    }
}

/// One worker per core beyond the capture thread, at least one, at most eight.
pub fn default_workers() -> usize {
    thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .clamp(1, 8)
}

/// The capture side: routes frames into batches and hands them to workers.
pub struct Ingest {
    router: Router,
    batches: Vec<Batch>,
    senders: Vec<SyncSender<Batch>>,
    pool: Receiver<Batch>,
    shared: Arc<Shared>,
    config: EngineConfig,
    oldest: Option<Instant>,
    since_check: u32,
    clock: Clock,
}

/// The whole capture's clock, relayed to the workers as clock steps (see [`Batch::push_tick`]).
///
/// A single-threaded pipeline's reassembler takes "now" from every segment; a worker sees only
/// its shard's. So the capture side keeps the global clock and ticks the workers: every worker
/// when the reassembler's idle sweep falls due (the same schedule as `conn_table.rs`: every
/// tenth of the idle timeout, at least every second of capture time), the worker about to get a
/// frame when its clock lags the global one by more than `TICK_LAG_NS`, and every worker at the
/// end. Sweeps, idle closes and end-of-capture stamps then match a single pipeline's.
struct Clock {
    now: u64,
    last_sweep: u64,
    sweep_every: u64,
    /// The latest capture time each worker has been given.
    known: Vec<u64>,
}

/// How far (capture time) a worker's clock may lag before it gets a tick with its next frame.
const TICK_LAG_NS: u64 = 10_000_000;

impl Clock {
    fn new(workers: usize, idle_timeout_ns: u64) -> Self {
        Clock {
            now: 0,
            last_sweep: 0,
            sweep_every: (idle_timeout_ns / 10).max(1_000_000_000),
            known: vec![0; workers],
        }
    }

    /// Time moves to `ts` (if later); returns whether every worker should be ticked (a sweep
    /// is due).
    fn advance(&mut self, ts: u64) -> bool {
        self.now = self.now.max(ts);
        if self.now.saturating_sub(self.last_sweep) >= self.sweep_every {
            self.last_sweep = self.now;
            return true;
        }
        false
    }
}

/// The output side: exchanges from all workers, in batches.
pub struct Exchanges {
    rx: Receiver<Vec<Exchange>>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

pub enum Received {
    Batch(Vec<Exchange>),
    /// Nothing within the timeout.
    Timeout,
    /// Every worker has finished.
    Done,
}

/// Starts the workers. `shared` must have one slot per worker.
pub fn start(config: EngineConfig, shared: Arc<Shared>) -> (Ingest, Exchanges) {
    let n = config.workers.max(1);
    assert_eq!(shared.workers.len(), n, "one stats slot per worker");
    shared
        .queue_capacity
        .store(config.queue_batches, Ordering::Relaxed);
    shared
        .output_capacity
        .store(config.output_batches, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::sync_channel::<Vec<Exchange>>(config.output_batches.max(1));
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Batch>(n * (config.queue_batches + 2));
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::sync_channel::<Batch>(config.queue_batches.max(1));
        senders.push(tx);
        let out_tx = out_tx.clone();
        let pool_tx = pool_tx.clone();
        let shared = shared.clone();
        let pipeline = per_worker(&config.pipeline, n);
        let h = thread::Builder::new()
            .name(format!("tapspan-worker-{i}"))
            .spawn(move || worker(i, pipeline, rx, out_tx, pool_tx, shared))
            .expect("spawn a worker thread");
        handles.push(h);
    }
    let batches = (0..n).map(|_| Batch::default()).collect();
    let clock = Clock::new(n, config.pipeline.reassembly.idle_timeout_ns);
    let ingest = Ingest {
        clock,
        router: Router::new(config.pipeline.decode.clone(), n),
        batches,
        senders,
        pool: pool_rx,
        shared: shared.clone(),
        config,
        oldest: None,
        since_check: 0,
    };
    let exchanges = Exchanges {
        rx: out_rx,
        shared,
        workers: handles,
    };
    (ingest, exchanges)
}

/// Each worker gets its share of the table caps, so the whole process keeps the configured ones.
fn per_worker(config: &PipelineConfig, workers: usize) -> PipelineConfig {
    let mut c = config.clone();
    c.reassembly.max_connections = (c.reassembly.max_connections / workers).max(1);
    c.reassembly.max_held_bytes_total = (c.reassembly.max_held_bytes_total / workers).max(1);
    c.protocols.http.max_head_bytes_total =
        (c.protocols.http.max_head_bytes_total / workers).max(1);
    // Each worker has its own table of DNS queries over UDP (a query and its response hash to
    // the same worker); per-connection caps stay whole.
    c.protocols.dns.max_pending = (c.protocols.dns.max_pending / workers).max(1);
    c
}

impl Ingest {
    /// Routes one captured frame.
    pub fn push(&mut self, frame: &RawFrame<'_>) {
        self.shared.packets.fetch_add(1, Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        let w = self.router.route(frame).map(|(w, d)| {
            self.tick_before(w, frame.ts.0);
            match d {
                Decoded::Tcp(seg) => self.batches[w].push_segment(&seg),
                Decoded::Udp(u) => self.batches[w].push_datagram(&u),
            }
            w
        });
        if let Some(w) = w {
            if self.oldest.is_none() {
                self.oldest = Some(Instant::now());
            }
            let b = &self.batches[w];
            if b.len() >= self.config.batch_frames || b.bytes() >= self.config.batch_bytes {
                self.send(w, false);
            }
        }
        // Look at the clock only every so often.
        self.since_check += 1;
        if self.since_check >= 64 {
            self.since_check = 0;
            self.tick();
        }
    }

    /// Advances the clock to `ts` for a segment about to go to worker `w`, ticking the workers
    /// that need it first.
    fn tick_before(&mut self, w: usize, ts: u64) {
        let now = if self.clock.advance(ts) {
            let now = self.clock.now;
            for (i, b) in self.batches.iter_mut().enumerate() {
                b.push_tick(Timestamp(now));
                self.clock.known[i] = now;
            }
            now
        } else {
            self.clock.now
        };
        if now.saturating_sub(self.clock.known[w]) > TICK_LAG_NS {
            self.batches[w].push_tick(Timestamp(now));
        }
        self.clock.known[w] = now;
    }

    /// Live capture with no packet for a while: when an idle sweep falls due by `ts` (wall time,
    /// on the kernel's clock), the capture clock moves to `ts` and every worker sweeps, so that
    /// idle connections still expire on a quiet link. Until a sweep is due the clock stays at the
    /// last packet, so a short pause changes nothing (a replay of the same packets gives the same
    /// spans); after a long one, idle-expiry and end-of-capture stamps follow the wall clock.
    pub fn advance_idle(&mut self, ts: Timestamp) {
        if self.clock.now == 0
            || ts.0.saturating_sub(self.clock.last_sweep) < self.clock.sweep_every
        {
            return;
        }
        if self.clock.advance(ts.0) {
            let now = self.clock.now;
            for (i, b) in self.batches.iter_mut().enumerate() {
                b.push_tick(Timestamp(now));
                self.clock.known[i] = now;
            }
            self.oldest.get_or_insert_with(Instant::now);
        }
    }

    /// Sends batches older than `batch_age`, and publishes the router's counters. Call when the
    /// capture is idle too, so a quiet link still delivers its last packets.
    pub fn tick(&mut self) {
        if let Some(t) = self.oldest {
            if t.elapsed() >= self.config.batch_age {
                self.flush(false);
            }
        }
        if let Ok(mut d) = self.shared.decode.try_lock() {
            d.clone_from(self.router.stats());
        }
    }

    /// Sends every non-empty batch.
    pub fn flush(&mut self, block: bool) {
        for w in 0..self.batches.len() {
            if !self.batches[w].is_empty() {
                self.send(w, block);
            }
        }
        self.oldest = None;
    }

    fn send(&mut self, w: usize, block: bool) {
        let fresh = self.pool.try_recv().unwrap_or_else(|_| {
            Batch::with_capacity(self.config.batch_frames, self.config.batch_bytes)
        });
        let batch = std::mem::replace(&mut self.batches[w], fresh);
        let frames = batch.len() as u64;
        let slot = &self.shared.workers[w];
        // Count first: the worker may take the batch before `send` returns.
        slot.queue_depth.fetch_add(1, Ordering::Relaxed);
        let result = if block {
            self.senders[w]
                .send(batch)
                .map_err(|e| TrySendError::Disconnected(e.0))
        } else {
            self.senders[w].try_send(batch)
        };
        if let Err(e) = result {
            slot.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.shared
                .shed_packets
                .fetch_add(frames, Ordering::Relaxed);
            let mut back = match e {
                TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
            };
            back.clear();
            self.batches[w] = back;
        }
    }

    /// End of capture: send what is batched (waiting for room: nothing captured is shed now) and
    /// close the worker queues.
    pub fn finish(mut self) {
        // Every worker ends its connections at the whole capture's last instant.
        let now = self.clock.now;
        if now > 0 {
            for (i, b) in self.batches.iter_mut().enumerate() {
                if self.clock.known[i] < now {
                    b.push_tick(Timestamp(now));
                }
            }
        }
        self.flush(true);
        if let Ok(mut d) = self.shared.decode.lock() {
            d.clone_from(self.router.stats());
        }
    }
}

fn worker(
    index: usize,
    config: PipelineConfig,
    rx: Receiver<Batch>,
    out: SyncSender<Vec<Exchange>>,
    pool: SyncSender<Batch>,
    shared: Arc<Shared>,
) {
    let mut pipeline = Pipeline::new(config, Vec::<Exchange>::new());
    let slot = &shared.workers[index];
    let mut last_publish = Instant::now();
    let publish = |p: &Pipeline<Vec<Exchange>>| {
        if let Ok(mut s) = slot.snapshot.lock() {
            *s = WorkerSnapshot {
                stats: p.stats(),
                active_connections: p.active_connections(),
            };
        }
    };
    let send = |found: &mut Vec<Exchange>| {
        if found.is_empty() {
            return true;
        }
        shared.output_depth.fetch_add(1, Ordering::Relaxed);
        if out.send(std::mem::take(found)).is_err() {
            // The output side is gone: nothing more can be delivered.
            shared.output_depth.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    };
    loop {
        let batch = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => {
                publish(&pipeline);
                last_publish = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        slot.queue_depth.fetch_sub(1, Ordering::Relaxed);
        for entry in batch.entries() {
            match entry {
                Entry::Segment(seg) => pipeline.push_segment(&seg),
                Entry::Datagram(d) => pipeline.push_datagram(&d),
                Entry::Tick(ts) => pipeline.advance_to(ts),
            }
        }
        let mut batch = batch;
        batch.clear();
        let _ = pool.try_send(batch);
        if !send(pipeline.back_mut()) {
            return;
        }
        if last_publish.elapsed() >= Duration::from_millis(250) {
            publish(&pipeline);
            last_publish = Instant::now();
        }
    }
    pipeline.finish();
    send(pipeline.back_mut());
    publish(&pipeline);
}

impl Exchanges {
    pub fn recv_timeout(&self, timeout: Duration) -> Received {
        match self.rx.recv_timeout(timeout) {
            Ok(b) => {
                self.shared.output_depth.fetch_sub(1, Ordering::Relaxed);
                Received::Batch(b)
            }
            Err(RecvTimeoutError::Timeout) => Received::Timeout,
            Err(RecvTimeoutError::Disconnected) => Received::Done,
        }
    }

    /// Waits for the worker threads (after [`Received::Done`]); a worker that panicked is
    /// reported as an error.
    pub fn join(self) -> Result<(), String> {
        let mut failed = Vec::new();
        for (i, h) in self.workers.into_iter().enumerate() {
            if h.join().is_err() {
                failed.push(i);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("worker thread(s) {failed:?} failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::live::stats::Shared;
    use crate::run::replay::replay_files;
    use crate::span::spans_for;
    use std::path::PathBuf;
    use tapspan_capture::{FileSource, PacketSource};

    fn spans_of(exchanges: &[Exchange]) -> Vec<String> {
        let mut v: Vec<String> = exchanges
            .iter()
            .flat_map(spans_for)
            .map(|s| serde_json::to_string(&s).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn workers_share_the_table_caps() {
        let mut config = PipelineConfig::default();
        config.protocols.dns.max_pending = 10;
        config.protocols.dns.max_pending_per_connection = 10;
        let c = per_worker(&config, 4);
        assert_eq!(c.protocols.dns.max_pending, 2);
        assert_eq!(c.protocols.dns.max_pending_per_connection, 10);
        assert_eq!(per_worker(&config, 20).protocols.dns.max_pending, 1);
    }

    /// The sharded engine gives the same spans as a single-threaded replay, for every capture
    /// shipped with the project and several worker counts (tiny batches and queues, so the
    /// blocking paths run too).
    #[test]
    fn sharded_equals_single_pipeline_on_bundled_captures() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        // The project's captures, and the third-party ones beside the repository when present
        // (fragments, tunnels, odd link types).
        let mut files: Vec<PathBuf> = [root.join("pcaps"), root.join("../shared/pcaps")]
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        for file in &files {
            let mut single = Vec::new();
            replay_files(
                std::slice::from_ref(file),
                PipelineConfig::default(),
                &mut |_, _| {},
                &mut |ex| single.push(ex),
            )
            .unwrap();
            for workers in [1, 3] {
                let shared = Arc::new(Shared::new(workers));
                let config = EngineConfig {
                    workers,
                    queue_batches: 2,
                    // Batches are sent by the test below, blocking, so that nothing is shed.
                    batch_frames: usize::MAX,
                    batch_bytes: usize::MAX,
                    batch_age: Duration::from_secs(3600),
                    output_batches: 2,
                    ..EngineConfig::default()
                };
                let (mut ingest, exchanges) = start(config, shared.clone());
                let collector = thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match exchanges.recv_timeout(Duration::from_millis(50)) {
                            Received::Batch(b) => got.extend(b),
                            Received::Timeout => {}
                            Received::Done => break,
                        }
                    }
                    exchanges.join().unwrap();
                    got
                });
                let mut src = FileSource::open(file).unwrap();
                while let Some(f) = src.next_frame().unwrap() {
                    ingest.push(&f);
                    // Never shed in this test: wait for room instead.
                    if ingest.batches.iter().any(|b| b.len() >= 3) {
                        ingest.flush(true);
                    }
                }
                ingest.finish();
                let got = collector.join().unwrap();
                assert_eq!(
                    shared.shed_packets.load(Ordering::Relaxed),
                    0,
                    "{}",
                    file.display()
                );
                let (a, b) = (spans_of(&got), spans_of(&single));
                let only_sharded: Vec<&String> = a.iter().filter(|s| !b.contains(s)).collect();
                let only_single: Vec<&String> = b.iter().filter(|s| !a.contains(s)).collect();
                assert!(
                    only_sharded.is_empty() && only_single.is_empty(),
                    "{} with {workers} workers: {} spans only sharded, {} only single; first:\n{:?}\n{:?}",
                    file.display(),
                    only_sharded.len(),
                    only_single.len(),
                    only_sharded.first(),
                    only_single.first(),
                );
                let snap = shared.snapshot();
                assert_eq!(snap.pipeline.protocols.http.exchanges as usize, got.len());
            }
        }
    }
}
