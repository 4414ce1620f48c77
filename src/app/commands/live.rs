//! `tapspan live --interface IFACE`: capture from a network interface and write spans as they
//! complete, until SIGINT/SIGTERM (cargo feature `live`, libpcap).
//!
//! Threads: the capture thread reads packets from libpcap, writes them to `--write-pcap` when
//! asked, and routes them to the workers (see [`tapspan::run::live::engine`]); this thread makes spans,
//! feeds the outputs and prints the `--stats` line; a metrics thread answers Prometheus scrapes.
//! On SIGINT or SIGTERM: capturing stops, queued packets are processed, open connections end
//! (their unfinished exchanges become spans with `error.type` = `capture_ended`), outputs are
//! flushed, the final summary is printed, and the exit code is 0. A second signal exits at once
//! (code 1). Exit codes otherwise: 2 when the interface cannot be opened, the filter is bad or
//! `--user` is refused, 1 when privileges cannot be dropped or capturing fails part-way (after
//! everything captured was written).
//!
//! Privileges ([`tapspan::privileges`]): the capture handle is opened first, then, while this is
//! the only thread, every capability is given up (and root, for `--user`); root without
//! `--user` keeps what it has, with a warning.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use tapspan_capture::source::live::{list_interfaces, LiveConfig, LiveEvent, LiveSource};
use tapspan_capture::source::PcapWriter;
use tapspan_capture::{CaptureError, Timestamp};

use crate::app::cli::{CausalityArgs, LimitArgs, OutputArgs};
use crate::app::output::Outputs;
use tapspan::causality::CausalityBuilder;
use tapspan::pipeline::{Back, Sink, Spans};
use tapspan::privileges;
use tapspan::run::live::engine::{self, EngineConfig, Ingest, Received};
use tapspan::run::live::metrics;
use tapspan::run::live::stats::{stats_line, Shared};
use tapspan::span::Span;

use super::{Failure, Outcome};

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Network interface to capture from (see --list); `any` captures all of them (Linux).
    #[arg(short, long, value_name = "IFACE", required_unless_present = "list")]
    pub interface: Option<String>,

    /// List the interfaces libpcap can capture from, and exit.
    #[arg(long)]
    pub list: bool,

    /// Capture only packets matching this BPF expression (tcpdump syntax), e.g. "tcp port 80".
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,

    /// Bytes kept of each packet.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub snaplen: u32,

    /// Put the interface in promiscuous mode (on a mirror port you usually want this).
    #[arg(long)]
    pub promisc: bool,

    /// Kernel capture buffer, in MiB: what absorbs bursts while tapspan catches up.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    pub buffer_size: usize,

    /// Also write every captured packet to this pcap file (nanosecond timestamps), so the session
    /// can be replayed later with `tapspan replay`. It holds the raw traffic, secrets included:
    /// it is created readable by its owner only (0600).
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write_pcap: Option<PathBuf>,

    /// Print a stats line to stderr every second: packets, bytes, kernel and interface drops,
    /// packets shed, connections, exchanges, spans/s, queue depths.
    #[arg(long)]
    pub stats: bool,

    /// Serve the same counters as Prometheus text at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Rewrite the `--report` and `--analysis-json` files every DURATION (e.g. 5m) with the
    /// analysis so far, each replaced at once; they are written at exit as well.
    #[arg(long, value_name = "DURATION", value_parser = crate::app::cli::parse_duration_ns)]
    pub report_every: Option<u64>,

    /// Decode/reassembly/HTTP worker threads (connections are sharded across them).
    #[arg(long, value_name = "N", default_value_t = engine::default_workers())]
    pub workers: usize,

    /// Batches of packets each worker's queue holds; beyond it packets are shed and counted.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub queue_batches: usize,

    /// When started as root: once the capture handle is open, and before any output file is
    /// opened, switch to this user (its uid, primary group and supplementary groups) with no
    /// capabilities left, as tcpdump's -Z does. A user in group 0 is refused. Output paths must
    /// then be writable by that user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub causality: CausalityArgs,
}

pub fn run(args: &LiveArgs) -> Outcome {
    if args.list {
        return list();
    }
    check_report_every(args)?;
    let interface = args.interface.clone().unwrap_or_default();
    let (source, metrics_listener) = open_capture(args, &interface)?;
    let writer = pcap_writer(args, &source)?;
    let mut builder =
        CausalityBuilder::new(super::causality_config(&args.causality, &args.limits)?);
    let sampler = super::sampler(&args.output, &args.causality, &args.limits)?;
    let mut outputs = Outputs::open(&args.output, args.limits.memory_limits().analysis_config())?;
    outputs.set_sampler(sampler);

    let stop = source.stop_handle();
    stop_on_signals(&stop)?;

    let workers = args.workers.clamp(1, 64);
    let shared = share_counters(args, workers, &mut outputs, metrics_listener)?;
    let config = EngineConfig {
        workers,
        queue_batches: args.queue_batches.max(1),
        pipeline: args.limits.pipeline_config(args.output.header_policy()),
        ..EngineConfig::default()
    };
    let (ingest, exchanges) = engine::start(config, shared.clone());
    eprintln!(
        "tapspan: capturing on {interface} (link type {}, {} timestamps, {workers} workers); \
Ctrl-C to stop",
        source.link_type().0,
        if source.nanosecond_timestamps() {
            "ns"
        } else {
            "µs"
        }
    );
    let capture = {
        let shared = shared.clone();
        let stop = stop.clone();
        thread::Builder::new()
            .name("tapspan-capture".into())
            .spawn(move || capture_loop(source, ingest, writer, &stop, &shared))
            .context("starting the capture thread")?
    };

    let started = Instant::now();
    let report_every = args.report_every.map(Duration::from_nanos);
    deliver(
        &exchanges,
        &mut builder,
        &mut outputs,
        &shared,
        args.stats,
        report_every,
    );
    let worker_result = exchanges.join();
    let ended = match capture.join() {
        Ok(r) => r,
        Err(_) => CaptureEnd {
            error: Some("the capture thread panicked".into()),
            pcap: None,
        },
    };
    let snap = shared.snapshot();
    outputs.finish(Some(&snap.pipeline), "")?;
    eprintln!(
        "tapspan: live capture on {interface} stopped after {:.1}s: {} packets ({} bytes), \
kernel drops {}, interface drops {}, shed {}; {} exchanges ({} incomplete), {} spans written{}",
        started.elapsed().as_secs_f64(),
        snap.packets,
        snap.bytes,
        snap.kernel_dropped,
        snap.if_dropped,
        snap.shed_packets,
        snap.exchanges,
        snap.pipeline.protocols.http.incomplete_exchanges,
        snap.spans,
        match (&args.write_pcap, ended.pcap) {
            (Some(p), Some(n)) => format!("; {n} packets saved to {}", p.display()),
            _ => String::new(),
        }
    );
    let mut failed = Vec::new();
    if let Err(e) = worker_result {
        failed.push(e);
    }
    if let Some(e) = ended.error {
        failed.push(format!("{e} (spans decoded before it were written)"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Stopped(failed))
    }
}

/// SIGINT and SIGTERM set `stop`; a second one, arriving with it set, exits at once.
fn stop_on_signals(stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first: a second signal, arriving with the flag already set, exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(())
}

/// The counters the workers, the stats line and `--metrics-addr` share (with the RED metrics
/// when they are wanted), served on `listener` if there is one.
fn share_counters(
    args: &LiveArgs,
    workers: usize,
    outputs: &mut Outputs,
    listener: Option<std::net::TcpListener>,
) -> anyhow::Result<Arc<Shared>> {
    let mut shared = Shared::new(workers);
    if args.metrics_addr.is_some() || outputs.metrics_wanted() {
        shared.red = Some(outputs.measure(args.limits.max_metric_series));
    }
    let shared = Arc::new(shared);
    if let Some(listener) = listener {
        let bound = metrics::serve(listener, shared.clone(), metrics::Limits::default())
            .context("cannot serve metrics")?;
        eprintln!("tapspan: metrics at http://{bound}/metrics");
    }
    Ok(shared)
}

/// The `--write-pcap` file, created readable by its owner only.
fn pcap_writer(
    args: &LiveArgs,
    source: &LiveSource,
) -> anyhow::Result<Option<PcapWriter<BufWriter<File>>>> {
    Ok(match &args.write_pcap {
        None => None,
        Some(path) => {
            let file = crate::app::output::create_private(path)
                .with_context(|| format!("cannot create capture file {}", path.display()))?;
            Some(
                PcapWriter::new(BufWriter::new(file), source.link_type(), source.snaplen())
                    .with_context(|| format!("writing {}", path.display()))?,
            )
        }
    })
}

/// Settles whom to become, opens the interface, binds the metrics socket, and then drops every
/// privilege these needed (see the module doc).
fn open_capture(
    args: &LiveArgs,
    interface: &str,
) -> Result<(LiveSource, Option<std::net::TcpListener>), Failure> {
    let interface = interface.to_string();
    let live_config = LiveConfig {
        interface: interface.clone(),
        filter: args.filter.clone(),
        snaplen: args.snaplen.max(64),
        promisc: args.promisc,
        buffer_bytes: args.buffer_size.max(1).saturating_mul(1 << 20),
        read_timeout_ms: 50,
    };
    // Whom to become is settled before the interface is opened: a refused --user opens nothing.
    let root = privileges::is_root();
    let target = match (&args.user, root) {
        (Some(user), true) => match privileges::Target::lookup(user) {
            Ok(t) => Some(t),
            Err(e) => {
                return Err(Failure::Usage(format!("--user {user}: {e}")));
            }
        },
        (Some(user), false) => {
            eprintln!(
                "tapspan: --user {user} ignored: not running as root (capabilities are \
dropped all the same)"
            );
            None
        }
        (None, true) => {
            eprintln!(
                "tapspan: running as root; pass --user NAME to drop root once the capture is open"
            );
            None
        }
        (None, false) => None,
    };
    let source = LiveSource::open(&live_config).map_err(Failure::usage)?;
    // Bound while privileges last (a port below 1024 needs them); served from its own threads
    // once they are gone.
    let metrics_listener = match &args.metrics_addr {
        Some(addr) => {
            Some(metrics::bind(addr).with_context(|| format!("cannot serve metrics on {addr}"))?)
        }
        None => None,
    };
    // The capture handle and the metrics socket are all that needed privileges. Root without
    // --user keeps them (warned above); anyone else gives up every capability, before any other
    // thread starts.
    if !root || target.is_some() {
        if let Err(e) = privileges::drop_privileges(target.as_ref()) {
            let message = match &args.user {
                Some(user) => format!("--user {user}: {e}"),
                None => format!("dropping capabilities: {e}"),
            };
            return Err(Failure::Stopped(vec![message]));
        }
    }
    Ok((source, metrics_listener))
}

/// How often live capture sends the RED metrics over OTLP (OpenTelemetry's default export
/// interval); they are sent once more at the end.
const METRICS_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// `--report-every` rewrites files that must be asked for, at most once a second.
fn check_report_every(args: &LiveArgs) -> Result<(), Failure> {
    let Some(every) = args.report_every else {
        return Ok(());
    };
    if args.output.report.is_none() && args.output.analysis_json.is_none() {
        return Err(Failure::usage(
            "--report-every rewrites the --report or --analysis-json file: give one of them",
        ));
    }
    if every < 1_000_000_000 {
        return Err(Failure::usage("--report-every must be at least 1s"));
    }
    Ok(())
}

/// The output side of a live run, until the workers are done: exchanges into spans (the
/// spine's back, [`Spans`]), published sampling counters, and the `--stats` line.
fn deliver(
    exchanges: &engine::Exchanges,
    builder: &mut tapspan::causality::CausalityBuilder,
    outputs: &mut Outputs,
    shared: &Shared,
    stats: bool,
    report_every: Option<Duration>,
) {
    let mut prev = shared.snapshot();
    let mut prev_at = Instant::now();
    let mut exported_at = Instant::now();
    let mut reported_at = Instant::now();
    loop {
        match exchanges.recv_timeout(Duration::from_millis(100)) {
            Received::Batch(batch) => {
                shared
                    .exchanges
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let mut sink = Counted(outputs, shared);
                let mut spans = Spans::new(builder, &mut sink);
                for ex in batch {
                    spans.exchange(ex);
                }
            }
            Received::Timeout => {
                // Packet time tracks the wall clock in live capture: let finished traces out
                // on a quiet link.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let mut sink = Counted(outputs, shared);
                Spans::new(builder, &mut sink).advance_to(Timestamp(now));
            }
            Received::Done => {
                let mut sink = Counted(outputs, shared);
                Spans::new(builder, &mut sink).finish();
                outputs.set_forced_decisions(builder.stats.forced_decisions);
                break;
            }
        }
        outputs.tick();
        if exported_at.elapsed() >= METRICS_EXPORT_INTERVAL {
            outputs.export_metrics();
            exported_at = Instant::now();
        }
        if report_every.is_some_and(|every| reported_at.elapsed() >= every) {
            // A report that cannot be written now may be next time (a full disk): the tap
            // goes on, and says so.
            if let Err(e) = outputs.write_analysis_so_far() {
                eprintln!("tapspan: periodic report: {e:#}");
            }
            reported_at = Instant::now();
        }
        if let Some(sampled) = outputs.sampling_stats() {
            if let Ok(mut published) = shared.sampling.lock() {
                match &mut *published {
                    Some(p) => p.clone_from(sampled),
                    None => *published = Some(sampled.clone()),
                }
            }
        }
        if stats && prev_at.elapsed() >= Duration::from_secs(1) {
            let now = shared.snapshot();
            eprintln!(
                "{}",
                stats_line(&now, &prev, prev_at.elapsed().as_secs_f64())
            );
            prev = now;
            prev_at = Instant::now();
        }
    }
}

/// The outputs, counting the spans for `--stats` and the metrics.
struct Counted<'a>(&'a mut Outputs, &'a Shared);

impl Sink for Counted<'_> {
    fn span(&mut self, span: Span) {
        self.0.send(span);
        self.1.spans.fetch_add(1, Ordering::Relaxed);
    }
    fn settle(&mut self) {
        self.0.settle();
    }
    fn advance_to(&mut self, ts: Timestamp) {
        self.0.advance_to(ts.0);
    }
}

fn list() -> Outcome {
    let interfaces = list_interfaces().map_err(Failure::usage)?;
    let mut out = io::stdout().lock();
    for i in interfaces {
        let mut flags = Vec::new();
        if i.up {
            flags.push("up");
        }
        if i.running {
            flags.push("running");
        }
        if i.loopback {
            flags.push("loopback");
        }
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        let line = format!(
            "{}\t{}\t{}{}",
            i.name,
            flags.join(","),
            addrs.join(" "),
            i.description
                .map(|d| format!("\t({d})"))
                .unwrap_or_default()
        );
        if writeln!(out, "{}", line.trim_end()).is_err() {
            break;
        }
    }
    Ok(())
}

/// How the capture thread ended.
struct CaptureEnd {
    error: Option<String>,
    /// Packets written to `--write-pcap`.
    pcap: Option<u64>,
}

/// The capture thread: read, keep the pcap copy, route. Stops when `stop` is set or reading fails.
fn capture_loop(
    mut source: LiveSource,
    mut ingest: Ingest,
    mut writer: Option<PcapWriter<BufWriter<File>>>,
    stop: &AtomicBool,
    shared: &Shared,
) -> CaptureEnd {
    let mut error: Option<String> = None;
    let mut last_stats = Instant::now();
    let mut since_check: u32 = 0;
    let update_kernel_stats = |source: &mut LiveSource| {
        if let Ok(k) = source.stats() {
            shared.kernel_received.store(k.received, Ordering::Relaxed);
            shared.kernel_dropped.store(k.dropped, Ordering::Relaxed);
            shared.if_dropped.store(k.if_dropped, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let idle = match source.next_event() {
            Ok(LiveEvent::Frame(frame)) => {
                if let Some(w) = &mut writer {
                    match w.write_frame(&frame) {
                        Ok(()) => {
                            shared.pcap_written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("tapspan: writing the capture file failed, no longer writing it: {e}");
                            writer = None;
                        }
                    }
                }
                ingest.push(&frame);
                false
            }
            Ok(LiveEvent::Idle) => {
                // A quiet link: let capture time follow the (kernel's) wall clock, so idle
                // connections still expire.
                if let Ok(d) = SystemTime::now().duration_since(UNIX_EPOCH) {
                    ingest.advance_idle(Timestamp(d.as_nanos() as u64));
                }
                ingest.tick();
                true
            }
            Err(e) => {
                error = Some(capture_error_message(&e));
                break;
            }
        };
        since_check += 1;
        if idle || since_check >= 1024 {
            since_check = 0;
            if last_stats.elapsed() >= Duration::from_millis(500) {
                update_kernel_stats(&mut source);
                last_stats = Instant::now();
            }
        }
    }
    update_kernel_stats(&mut source);
    drop(source);
    ingest.finish();
    let pcap = writer.map(|mut w| {
        if let Err(e) = w.flush() {
            eprintln!("tapspan: writing the capture file failed: {e}");
        }
        w.frames()
    });
    CaptureEnd { error, pcap }
}

fn capture_error_message(e: &CaptureError) -> String {
    e.to_string()
}
