//! Counters of a live run, shared by its threads, and their two renderings: the `--stats` line on
//! stderr and Prometheus text for `--metrics-addr`.
//!
//! Contract: every thread writes only its own counters (atomics, or its own worker slot); readers
//! take a consistent-enough snapshot with [`Shared::snapshot`]. Counters only grow, except queue
//! depths and active connections, which are gauges. Nothing here blocks a hot path for longer
//! than one uncontended lock of a worker's slot, taken a few times a second.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tapspan_capture::DecodeStats;

use crate::counters::{Counter, Counters, Tag};
use crate::pipeline::PipelineStats;
use crate::sampling::SamplingStats;

/// What one worker last published.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    pub stats: PipelineStats,
    pub active_connections: usize,
}

#[derive(Default)]
pub struct WorkerSlot {
    /// Batches waiting in this worker's queue.
    pub queue_depth: AtomicUsize,
    pub snapshot: Mutex<WorkerSnapshot>,
}

/// Counters of the whole run.
#[derive(Default)]
pub struct Shared {
    /// Packets and captured bytes read from the interface.
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets dropped by tapspan because a worker's queue was full (shed at the front).
    pub shed_packets: AtomicU64,
    /// libpcap's counters.
    pub kernel_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
    /// Packets written to `--write-pcap`.
    pub pcap_written: AtomicU64,
    /// Exchanges and spans handed to the outputs.
    pub exchanges: AtomicU64,
    pub spans: AtomicU64,
    /// Exchange batches waiting for the output thread.
    pub output_depth: AtomicUsize,
    pub output_capacity: AtomicUsize,
    pub queue_capacity: AtomicUsize,
    /// The router's decode counters (see `shard.rs`).
    pub decode: Mutex<DecodeStats>,
    pub workers: Vec<WorkerSlot>,
    /// What sampling kept and dropped (None: not sampling), published by the output thread.
    pub sampling: Mutex<Option<SamplingStats>>,
    /// The RED metrics, fed by the output thread (None: not measured).
    pub red: Option<crate::metrics::SharedRed>,
}

/// A copy of [`Shared`] at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub packets: u64,
    pub bytes: u64,
    pub shed_packets: u64,
    pub kernel_received: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub pcap_written: u64,
    pub exchanges: u64,
    pub spans: u64,
    pub active_connections: usize,
    pub queue_depths: Vec<usize>,
    pub queue_capacity: usize,
    pub output_depth: usize,
    pub output_capacity: usize,
    pub pipeline: PipelineStats,
    pub sampling: Option<SamplingStats>,
}

impl Shared {
    pub fn new(workers: usize) -> Self {
        Shared {
            workers: (0..workers).map(|_| WorkerSlot::default()).collect(),
            ..Shared::default()
        }
    }

    /// What a scrape gets: the run's counters, then the RED metrics.
    pub fn exposition(&self) -> String {
        let mut out = prometheus(&self.snapshot());
        if let Some(red) = &self.red {
            let m = match red.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            crate::metrics::prometheus::render(&m, &mut out);
        }
        out
    }

    pub fn snapshot(&self) -> Snapshot {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut pipeline = PipelineStats {
            decode: self.decode.lock().map(|d| d.clone()).unwrap_or_default(),
            ..PipelineStats::default()
        };
        let mut active_connections = 0;
        let mut queue_depths = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            queue_depths.push(w.queue_depth.load(Ordering::Relaxed));
            if let Ok(s) = w.snapshot.lock() {
                active_connections += s.active_connections;
                // Peaks add up too: each worker's tables are separate memory.
                pipeline.reassembly.add(&s.stats.reassembly);
                pipeline.protocols.add(&s.stats.protocols);
            }
        }
        Snapshot {
            packets: ld(&self.packets),
            bytes: ld(&self.bytes),
            shed_packets: ld(&self.shed_packets),
            kernel_received: ld(&self.kernel_received),
            kernel_dropped: ld(&self.kernel_dropped),
            if_dropped: ld(&self.if_dropped),
            pcap_written: ld(&self.pcap_written),
            exchanges: ld(&self.exchanges),
            spans: ld(&self.spans),
            active_connections,
            queue_depths,
            queue_capacity: self.queue_capacity.load(Ordering::Relaxed),
            output_depth: self.output_depth.load(Ordering::Relaxed),
            output_capacity: self.output_capacity.load(Ordering::Relaxed),
            pipeline,
            sampling: self.sampling.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }
}

/// The `--stats` line: totals, and rates over `secs` since `prev`.
pub fn stats_line(now: &Snapshot, prev: &Snapshot, secs: f64) -> String {
    let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs.max(1e-3);
    let queues = now
        .queue_depths
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sampled = match &now.sampling {
        Some(s) => format!(" | sampled traces kept {} dropped {}", s.kept(), s.dropped),
        None => String::new(),
    };
    format!(
        "tapspan: packets {} ({:.0}/s, {:.1} MB/s) kernel drops {} if drops {} shed {} | \
connections {} exchanges {} spans {} ({:.0}/s) | queues [{}]/{} output {}/{}{sampled}",
        now.packets,
        rate(now.packets, prev.packets),
        rate(now.bytes, prev.bytes) / 1e6,
        now.kernel_dropped,
        now.if_dropped,
        now.shed_packets,
        now.active_connections,
        now.exchanges,
        now.spans,
        rate(now.spans, prev.spans),
        queues,
        now.queue_capacity,
        now.output_depth,
        now.output_capacity,
    )
}

/// The run's own counters as Prometheus metrics, in the order served: name, type, help, value.
fn run_metrics(s: &Snapshot) -> [(&'static str, &'static str, &'static str, u64); 10] {
    [
        (
            "tapspan_packets_total",
            "counter",
            "Packets read from the interface.",
            s.packets,
        ),
        (
            "tapspan_bytes_total",
            "counter",
            "Captured bytes read from the interface.",
            s.bytes,
        ),
        (
            "tapspan_kernel_received_total",
            "counter",
            "Packets libpcap reports the kernel delivered.",
            s.kernel_received,
        ),
        (
            "tapspan_kernel_drops_total",
            "counter",
            "Packets dropped because the capture buffer was full (libpcap ps_drop).",
            s.kernel_dropped,
        ),
        (
            "tapspan_interface_drops_total",
            "counter",
            "Packets dropped by the interface or driver (libpcap ps_ifdrop).",
            s.if_dropped,
        ),
        (
            "tapspan_shed_packets_total",
            "counter",
            "Packets tapspan dropped because a worker queue was full.",
            s.shed_packets,
        ),
        (
            "tapspan_pcap_written_packets_total",
            "counter",
            "Packets written to --write-pcap.",
            s.pcap_written,
        ),
        (
            "tapspan_active_connections",
            "gauge",
            "TCP connections being tracked.",
            s.active_connections as u64,
        ),
        (
            "tapspan_exchanges_total",
            "counter",
            "HTTP exchanges completed.",
            s.exchanges,
        ),
        (
            "tapspan_spans_total",
            "counter",
            "Spans handed to the outputs.",
            s.spans,
        ),
    ]
}

/// A set's counters tagged [`Tag::Metric`], as `tapspan_<set>_<name>_total`.
fn set_metrics<C: Counters>(set: &C) -> impl Iterator<Item = (String, Counter)> {
    set.counters()
        .into_iter()
        .filter(|c| c.has(Tag::Metric))
        .map(|c| (format!("tapspan_{}_{}_total", C::SET, c.name), c))
}

/// Prometheus text exposition format (version 0.0.4).
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    for (name, kind, help, value) in run_metrics(s) {
        metric(name, kind, help, value);
    }
    let pipeline = &s.pipeline;
    let protocols = &pipeline.protocols;
    for (name, c) in set_metrics(&protocols.http)
        .chain(set_metrics(&protocols.http2))
        .chain(set_metrics(&protocols.redis))
        .chain(set_metrics(&protocols.postgres))
        .chain(set_metrics(&protocols.tls))
        .chain(set_metrics(&pipeline.reassembly))
    {
        metric(&name, "counter", c.help, c.value);
    }
    metric(
        "tapspan_output_queue_depth",
        "gauge",
        "Exchange batches waiting for the output thread.",
        s.output_depth as u64,
    );
    let _ = writeln!(
        out,
        "# HELP tapspan_worker_queue_depth Frame batches waiting for a worker.\n\
# TYPE tapspan_worker_queue_depth gauge"
    );
    for (i, d) in s.queue_depths.iter().enumerate() {
        let _ = writeln!(out, "tapspan_worker_queue_depth{{worker=\"{i}\"}} {d}");
    }
    if let Some(sampling) = &s.sampling {
        sampling_metrics(&mut out, sampling);
    }
    out
}

/// Sampling's counters: traces by decision and by the rule that kept them, spans by decision.
fn sampling_metrics(out: &mut String, s: &SamplingStats) {
    let _ = writeln!(
        out,
        "# HELP tapspan_sampled_traces_total Traces sampling decided, by decision and by what \
kept them.\n# TYPE tapspan_sampled_traces_total counter"
    );
    let mut traces = |decision: &str, reason: &str, n: u64| {
        // Prometheus label values escape backslash, double quote and line feed.
        let label = reason
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(
            out,
            "tapspan_sampled_traces_total{{decision=\"{decision}\",reason=\"{label}\"}} {n}"
        );
    };
    for (kept, n) in s.kept_by() {
        traces("kept", &kept.label(false), n);
    }
    traces("dropped", "", s.dropped);
    let _ = writeln!(
        out,
        "# HELP tapspan_sampled_spans_total Spans sampling kept (written) and dropped.\n\
# TYPE tapspan_sampled_spans_total counter\n\
tapspan_sampled_spans_total{{decision=\"kept\"}} {}\n\
tapspan_sampled_spans_total{{decision=\"dropped\"}} {}",
        s.spans_kept, s.spans_dropped
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_prometheus() {
        let shared = Shared::new(2);
        shared.packets.store(1000, Ordering::Relaxed);
        shared.spans.store(200, Ordering::Relaxed);
        shared.workers[1].queue_depth.store(3, Ordering::Relaxed);
        shared.workers[0]
            .snapshot
            .lock()
            .unwrap()
            .active_connections = 5;
        shared.workers[1]
            .snapshot
            .lock()
            .unwrap()
            .stats
            .protocols
            .http
            .exchanges = 7;
        let now = shared.snapshot();
        assert_eq!(now.active_connections, 5);
        assert_eq!(now.pipeline.protocols.http.exchanges, 7);
        let line = stats_line(&now, &Snapshot::default(), 2.0);
        assert!(line.contains("packets 1000 (500/s"), "{line}");
        assert!(line.contains("spans 200 (100/s)"), "{line}");
        assert!(line.contains("queues [0,3]"), "{line}");
        let text = prometheus(&now);
        assert!(text.contains("\ntapspan_packets_total 1000\n"), "{text}");
        assert!(
            text.contains("tapspan_worker_queue_depth{worker=\"1\"} 3"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("tapspan_"), "{line}");
            value.parse::<u64>().unwrap();
        }
        assert!(
            !text.contains("sampled"),
            "no sampling, no sampling metrics: {text}"
        );
    }

    #[test]
    fn sampling_counters_are_published_when_sampling() {
        let shared = Shared::new(1);
        *shared.sampling.lock().unwrap() = Some(SamplingStats {
            traces: 10,
            kept_head: 2,
            kept_by_rule: vec![("check\"out".into(), 3, 1)],
            kept_errors: 1,
            dropped: 3,
            spans_kept: 70,
            spans_dropped: 30,
            ..SamplingStats::default()
        });
        let now = shared.snapshot();
        let line = stats_line(&now, &Snapshot::default(), 1.0);
        assert!(
            line.ends_with("| sampled traces kept 7 dropped 3"),
            "{line}"
        );
        let text = prometheus(&now);
        for want in [
            "tapspan_sampled_traces_total{decision=\"kept\",reason=\"head\"} 2\n",
            "tapspan_sampled_traces_total{decision=\"kept\",reason=\"rule check\\\"out\"} 3\n",
            "tapspan_sampled_traces_total{decision=\"kept\",reason=\"rule check\\\"out reservoir\"} 1\n",
            "tapspan_sampled_traces_total{decision=\"dropped\",reason=\"\"} 3\n",
            "tapspan_sampled_spans_total{decision=\"dropped\"} 30\n",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }
}
