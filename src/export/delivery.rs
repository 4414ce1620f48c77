//! The delivery core shared by every network sink (OTLP gRPC, OTLP HTTP, Zipkin).
//!
//! Contract:
//! - The caller's thread only converts a span into the sink's item and puts it on a bounded queue
//!   (`queue_spans` items). When the queue is full it waits while the backend makes progress, at
//!   most `queue_block`; after that it is "stalled" and drops at once (counted as `queue full`)
//!   until the backend accepts spans again, so a dead backend never slows the replay down much.
//!   Memory is therefore bounded by the queue plus one batch in flight.
//! - One worker thread per sink (a single-threaded tokio runtime) cuts batches by count, bytes
//!   and age, encodes them and sends them one at a time.
//! - A failed send is judged by [`RetryPolicy::decide`]: connection errors, timeouts, 429 and 5xx
//!   (gRPC: UNAVAILABLE, RESOURCE_EXHAUSTED and the other transient codes) are retried with jittered
//!   exponential backoff, or after `Retry-After` when the server gives one; any other 4xx is
//!   final. A batch that is given up is counted as dropped with the reason.
//! - [`Delivery::close`] stops intake and gives the worker until `shutdown_deadline` to flush what
//!   is queued; whatever is left at the deadline is dropped and counted (`shutdown deadline`).
//!   `close` returns within the deadline plus a small grace even if the backend hangs.
//! - Every span handed to [`Delivery::push`] ends up either delivered or dropped with a reason:
//!   `delivered + dropped == accepted` in the report.
//!
//! The policy ([`RetryPolicy`]) and batching limits ([`BatchLimits`]) are plain values with pure
//! methods; they never read the clock or a random source themselves, so they are tested alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::SinkReport;

/// When to cut a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Spans per request.
    pub max_spans: usize,
    /// Estimated encoded bytes per request (before compression). Keep under the receiver's
    /// limit (the OTel Collector accepts 4 MiB per gRPC message by default).
    pub max_bytes: usize,
    /// How long the first span of a batch may wait for company.
    pub max_age: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_spans: 512,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(1),
        }
    }
}

impl BatchLimits {
    /// Whether a batch holding `spans` items of `bytes` estimated bytes is full.
    pub fn full(&self, spans: usize, bytes: usize) -> bool {
        spans >= self.max_spans.max(1) || bytes >= self.max_bytes
    }
}

/// How one attempt to send a batch ended, as the transport saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` spans were refused by the backend (OTLP partial success).
    Delivered { rejected: u64 },
    /// Worth retrying: connection error, timeout, 429, 5xx, transient gRPC codes.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying: any other 4xx, a malformed request, an unusable endpoint.
    Permanent { reason: String },
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Done,
    RetryAfter(Duration),
    /// Drop the batch, with this reason.
    GiveUp(String),
}

/// Retries with jittered exponential backoff. `attempt` counts from 1 (the first send).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per batch, the first included.
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is cut to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 8,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), with `jitter` in `[0, 1)`:
    /// "equal jitter", half the exponential step fixed and half random, so retries from many
    /// sinks spread out but never come sooner than half the step.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let step = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = jitter.clamp(0.0, 1.0);
        step.mul_f64(0.5 + 0.5 * jitter)
    }

    pub fn decide(&self, attempt: u32, outcome: &Outcome, jitter: f64) -> Decision {
        match outcome {
            Outcome::Delivered { .. } => Decision::Done,
            Outcome::Permanent { reason } => Decision::GiveUp(format!("rejected ({reason})")),
            Outcome::Transient {
                reason,
                retry_after,
            } => {
                if attempt >= self.max_attempts.max(1) {
                    return Decision::GiveUp(format!("retries exhausted ({reason})"));
                }
                match retry_after {
                    Some(d) => Decision::RetryAfter((*d).min(self.max_retry_after)),
                    None => Decision::RetryAfter(self.backoff(attempt, jitter)),
                }
            }
        }
    }
}

/// Parse an HTTP `Retry-After` value given in seconds (RFC 9110 §10.2.3). The HTTP-date form
/// is ignored (the backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Everything about one sink's delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryConfig {
    pub batch: BatchLimits,
    pub retry: RetryPolicy,
    /// Spans held between the caller and the worker.
    pub queue_spans: usize,
    /// How long the caller waits on a full queue before dropping (while stalled, it drops at once).
    pub queue_block: Duration,
    /// One request's time limit.
    pub request_timeout: Duration,
    /// How long `close` lets the worker flush.
    pub shutdown_deadline: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch: BatchLimits::default(),
            retry: RetryPolicy::default(),
            queue_spans: 8192,
            queue_block: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// A wire protocol: turns a batch of items into a request and sends it once.
pub trait Transport: Send + 'static {
    type Item: Send + 'static;
    type Request;
    fn encode(&mut self, items: Vec<Self::Item>) -> Self::Request;
    /// One attempt. The core applies the timeout and the retry policy around it.
    fn send(&mut self, request: &Self::Request) -> impl Future<Output = Outcome>;
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    dropped: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn drop_spans(&self, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut map = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason.to_string()).or_default() += n;
    }

    fn report(&self, name: &str) -> SinkReport {
        let map = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        let mut drop_reasons: Vec<(String, u64)> =
            map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        drop_reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        SinkReport {
            name: name.to_string(),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: drop_reasons.iter().map(|(_, n)| n).sum(),
            drop_reasons,
        }
    }
}

/// The caller's end of a sink: a bounded queue into a worker thread.
pub struct Delivery<I> {
    name: String,
    tx: Option<mpsc::Sender<(I, usize)>>,
    shutdown: watch::Sender<Option<Instant>>,
    counters: Arc<Counters>,
    queue_block: Duration,
    deadline: Duration,
    /// Set when a push gave up waiting on a full queue: the delivered count then. Until the
    /// worker delivers more, pushes on a full queue drop at once instead of waiting again.
    stalled_at: Option<u64>,
    done: std::sync::mpsc::Receiver<()>,
    worker: Option<thread::JoinHandle<()>>,
}

impl<I: Send + 'static> Delivery<I> {
    /// Start the worker. `make` builds the transport inside the worker's runtime (tonic channels
    /// need one); if it fails, every span is dropped with its message as the reason.
    pub fn start<T, F>(name: String, config: DeliveryConfig, make: F) -> Self
    where
        T: Transport<Item = I>,
        F: FnOnce() -> Result<T, String> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(config.queue_spans.max(1));
        let (shutdown, shutdown_rx) = watch::channel(None);
        let counters = Arc::new(Counters::default());
        let (done_tx, done) = std::sync::mpsc::channel();
        let worker_counters = Arc::clone(&counters);
        let worker_config = config.clone();
        let worker = thread::Builder::new()
            .name(format!("tapspan-export-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(async move {
                        let mut w = Worker {
                            rx,
                            shutdown: shutdown_rx,
                            counters: worker_counters,
                            config: worker_config,
                        };
                        match make() {
                            Ok(transport) => w.run(transport).await,
                            Err(why) => w.drain_all(&why).await,
                        }
                    }),
                    Err(e) => {
                        let mut rx = rx;
                        rx.close();
                        let mut n = 0;
                        while rx.try_recv().is_ok() {
                            n += 1;
                        }
                        worker_counters.drop_spans(&format!("runtime: {e}"), n);
                    }
                }
                let _ = done_tx.send(());
            })
            .ok();
        Delivery {
            name,
            tx: Some(tx),
            shutdown,
            counters,
            queue_block: config.queue_block,
            deadline: config.shutdown_deadline,
            stalled_at: None,
            done,
            worker,
        }
    }

    /// Queue one item of `bytes` estimated encoded size. Never fails; a loss is counted.
    pub fn push(&mut self, item: I, bytes: usize) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else {
            self.counters.drop_spans("exporter closed", 1);
            return;
        };
        let mut item = match tx.try_send((item, bytes)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.counters.drop_spans("exporter stopped", 1);
                return;
            }
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        let delivered = self.counters.delivered.load(Ordering::Relaxed);
        if self.stalled_at != Some(delivered) {
            // Back-pressure while the worker makes progress: poll with a growing nap.
            let started = Instant::now();
            let mut nap = Duration::from_micros(50);
            while started.elapsed() < self.queue_block {
                thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
                item = match tx.try_send(item) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.counters.drop_spans("exporter stopped", 1);
                        return;
                    }
                    Err(mpsc::error::TrySendError::Full(item)) => item,
                };
            }
            self.stalled_at = Some(self.counters.delivered.load(Ordering::Relaxed));
        }
        drop(item);
        self.counters.drop_spans("queue full", 1);
    }

    /// Stop intake, flush within the deadline, report.
    pub fn close(mut self) -> SinkReport {
        let deadline = Instant::now() + self.deadline;
        let _ = self.shutdown.send(Some(deadline));
        self.tx = None; // the worker sees the queue end once it is drained
        let grace = Duration::from_millis(500);
        let finished = self.done.recv_timeout(self.deadline + grace).is_ok();
        if finished {
            if let Some(w) = self.worker.take() {
                let _ = w.join();
            }
        }
        let mut report = self.counters.report(&self.name);
        let accepted = self.counters.accepted.load(Ordering::Relaxed);
        let unaccounted = accepted.saturating_sub(report.delivered + report.dropped);
        if unaccounted > 0 {
            // The worker did not finish (it cannot be stopped mid-call); what it holds is lost.
            report.dropped += unaccounted;
            report
                .drop_reasons
                .push(("shutdown deadline (worker stuck)".to_string(), unaccounted));
        }
        report
    }
}

struct Worker<I> {
    rx: mpsc::Receiver<(I, usize)>,
    shutdown: watch::Receiver<Option<Instant>>,
    counters: Arc<Counters>,
    config: DeliveryConfig,
}

/// Why a bounded wait ended early.
enum Cut {
    Timeout,
    Deadline,
}

/// Run `fut` for at most `limit`, and never past the shutdown deadline (which may be set while
/// waiting).
async fn bounded<F: Future>(
    shutdown: &mut watch::Receiver<Option<Instant>>,
    fut: F,
    limit: Duration,
) -> Result<F::Output, Cut> {
    let until = Instant::now() + limit;
    tokio::pin!(fut);
    let mut watching = true;
    loop {
        let deadline = *shutdown.borrow();
        let end = deadline.map_or(until, |d| d.min(until));
        let cut = if deadline.is_some_and(|d| d <= until) {
            Cut::Deadline
        } else {
            Cut::Timeout
        };
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tokio::time::sleep_until(end.into()) => return Err(cut),
            changed = shutdown.changed(), if watching && deadline.is_none() => {
                if changed.is_err() {
                    watching = false;
                }
            }
        }
    }
}

impl<I: Send + 'static> Worker<I> {
    fn deadline(&self) -> Option<Instant> {
        *self.shutdown.borrow()
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// The next batch; `None` when the queue has ended (closed and empty) or the deadline passed.
    async fn next_batch(&mut self) -> Option<Vec<I>> {
        let first = loop {
            if self.past_deadline() {
                return None;
            }
            let far = Duration::from_secs(3600);
            match bounded(&mut self.shutdown, self.rx.recv(), far).await {
                Ok(Some(item)) => break item,
                Ok(None) => return None,
                Err(_) => continue,
            }
        };
        let limits = self.config.batch.clone();
        let (mut bytes, mut batch) = (first.1, vec![first.0]);
        let age_end = Instant::now() + limits.max_age;
        while !limits.full(batch.len(), bytes) {
            match self.rx.try_recv() {
                Ok((item, b)) => {
                    bytes += b;
                    batch.push(item);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if self.deadline().is_some() {
                break; // shutting down: send what there is
            }
            let wait = age_end.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            match bounded(&mut self.shutdown, self.rx.recv(), wait).await {
                Ok(Some((item, b))) => {
                    bytes += b;
                    batch.push(item);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn run<T: Transport<Item = I>>(&mut self, mut transport: T) {
        while let Some(batch) = self.next_batch().await {
            let n = batch.len() as u64;
            let request = transport.encode(batch);
            self.deliver(&mut transport, &request, n).await;
        }
        self.drain_all("shutdown deadline").await;
    }

    async fn deliver<T: Transport<Item = I>>(
        &mut self,
        transport: &mut T,
        request: &T::Request,
        n: u64,
    ) {
        let mut attempt = 1u32;
        let mut last_error: Option<String> = None;
        let at_deadline = |last: &Option<String>| match last {
            Some(why) => format!("shutdown deadline (last error: {why})"),
            None => "shutdown deadline (request in flight)".to_string(),
        };
        loop {
            let timeout = self.config.request_timeout;
            let outcome = match bounded(&mut self.shutdown, transport.send(request), timeout).await
            {
                Ok(o) => o,
                Err(Cut::Deadline) => {
                    let why = at_deadline(&None);
                    self.counters.drop_spans(&why, n);
                    return;
                }
                Err(Cut::Timeout) => Outcome::Transient {
                    reason: "timeout".to_string(),
                    retry_after: None,
                },
            };
            if let Outcome::Transient { reason, .. } = &outcome {
                last_error = Some(reason.clone());
            }
            match self.config.retry.decide(attempt, &outcome, fastrand::f64()) {
                Decision::Done => {
                    let rejected = match outcome {
                        Outcome::Delivered { rejected } => rejected.min(n),
                        _ => 0,
                    };
                    self.counters
                        .delivered
                        .fetch_add(n - rejected, Ordering::Relaxed);
                    self.counters
                        .drop_spans("rejected by backend (partial success)", rejected);
                    return;
                }
                Decision::GiveUp(reason) => {
                    self.counters.drop_spans(&reason, n);
                    return;
                }
                Decision::RetryAfter(wait) => {
                    // Waiting past the deadline would only delay the same loss.
                    let too_late = self.deadline().is_some_and(|d| Instant::now() + wait >= d);
                    if too_late
                        || bounded(&mut self.shutdown, tokio::time::sleep(wait), wait * 2)
                            .await
                            .is_err()
                    {
                        self.counters.drop_spans(&at_deadline(&last_error), n);
                        return;
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Count everything still queued as dropped, and end.
    async fn drain_all(&mut self, reason: &str) {
        self.rx.close();
        let mut n = 0;
        while let Ok(_item) = self.rx.try_recv() {
            n += 1;
        }
        self.counters.drop_spans(reason, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_attempts: 4,
            max_retry_after: Duration::from_secs(10),
        }
    }

    fn transient(retry_after: Option<Duration>) -> Outcome {
        Outcome::Transient {
            reason: "HTTP 503".into(),
            retry_after,
        }
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_caps() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(300));
        assert_eq!(p.backoff(10, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn transient_failures_retry_until_attempts_run_out() {
        let p = policy();
        for attempt in 1..4 {
            assert!(matches!(
                p.decide(attempt, &transient(None), 0.0),
                Decision::RetryAfter(_)
            ));
        }
        assert_eq!(
            p.decide(4, &transient(None), 0.0),
            Decision::GiveUp("retries exhausted (HTTP 503)".into())
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = policy();
        assert_eq!(
            p.decide(1, &transient(Some(Duration::from_secs(3))), 0.9),
            Decision::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            p.decide(1, &transient(Some(Duration::from_secs(3600))), 0.9),
            Decision::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let p = policy();
        let out = Outcome::Permanent {
            reason: "HTTP 400".into(),
        };
        assert_eq!(
            p.decide(1, &out, 0.0),
            Decision::GiveUp("rejected (HTTP 400)".into())
        );
        assert_eq!(
            p.decide(1, &Outcome::Delivered { rejected: 0 }, 0.0),
            Decision::Done
        );
    }

    #[test]
    fn batches_are_cut_by_count_or_bytes() {
        let l = BatchLimits {
            max_spans: 3,
            max_bytes: 100,
            max_age: Duration::from_secs(1),
        };
        assert!(!l.full(2, 99));
        assert!(l.full(3, 0));
        assert!(l.full(1, 100));
    }

    /// A transport that fails `fail_first` times, then records what it got.
    struct Flaky {
        fail_first: u32,
        outcome: Outcome,
        calls: Arc<Mutex<Vec<usize>>>,
    }

    impl Transport for Flaky {
        type Item = u32;
        type Request = usize;
        fn encode(&mut self, items: Vec<u32>) -> usize {
            items.len()
        }
        async fn send(&mut self, request: &usize) -> Outcome {
            self.calls.lock().unwrap().push(*request);
            if self.fail_first > 0 {
                self.fail_first -= 1;
                return self.outcome.clone();
            }
            Outcome::Delivered { rejected: 0 }
        }
    }

    fn quick() -> DeliveryConfig {
        DeliveryConfig {
            batch: BatchLimits {
                max_spans: 10,
                max_bytes: 1 << 20,
                max_age: Duration::from_millis(20),
            },
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
                max_attempts: 3,
                max_retry_after: Duration::from_secs(1),
            },
            queue_spans: 100,
            queue_block: Duration::from_millis(200),
            request_timeout: Duration::from_millis(200),
            shutdown_deadline: Duration::from_secs(2),
        }
    }

    #[test]
    fn batches_by_count_and_retries_transient_failures() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let mut d = Delivery::start("t".into(), quick(), move || {
            Ok(Flaky {
                fail_first: 2,
                outcome: transient(None),
                calls: c,
            })
        });
        for i in 0..25 {
            d.push(i, 10);
        }
        let r = d.close();
        assert_eq!((r.delivered, r.dropped), (25, 0), "{r}");
        let calls = calls.lock().unwrap();
        assert!(calls.iter().all(|&n| n <= 10), "{calls:?}");
        assert_eq!(calls.len(), 2 + 25_usize.div_ceil(10), "{calls:?}");
    }

    #[test]
    fn permanent_failure_drops_the_batch_once() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let mut d = Delivery::start("t".into(), quick(), move || {
            Ok(Flaky {
                fail_first: 1,
                outcome: Outcome::Permanent {
                    reason: "HTTP 400".into(),
                },
                calls: c,
            })
        });
        for i in 0..10 {
            d.push(i, 10);
        }
        let r = d.close();
        assert_eq!(r.dropped + r.delivered, 10, "{r}");
        assert_eq!(r.drop_reasons[0].0, "rejected (HTTP 400)");
    }

    #[test]
    fn a_transport_that_cannot_start_drops_everything_with_its_reason() {
        let mut d: Delivery<u32> =
            Delivery::start("t".into(), quick(), || Err::<Flaky, _>("bad url".into()));
        for i in 0..5 {
            d.push(i, 1);
        }
        let r = d.close();
        assert_eq!(r.dropped, 5);
        assert_eq!(r.delivered, 0);
    }
}
