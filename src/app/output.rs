//! Where spans go: JSON lines (the reference format), the `--summary` table, and any exporter
//! sinks (`--otlp`, `--zipkin`), fed one span at a time. Shared by every command that produces
//! spans. JSON lines go to stdout unless `--output` says otherwise or an exporter is given.
//!
//! Every span feeds the analysis (statistics, report, analysis JSON, `--summary`); sampling
//! ([`tapspan::sampling`], when asked for) stands between the analysis and the span outputs, so
//! that what is measured never depends on what is kept. The RED metrics (`--metrics-file`,
//! `--metrics-addr`) are fed there too, from every span.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::app::cli::OutputArgs;
use tapspan::analysis::{Analysis, AnalysisConfig, Analyzer};
use tapspan::export::delivery::DeliveryConfig;
use tapspan::export::otlp::{OtlpConfig, OtlpSink, Protocol};
use tapspan::export::otlp_metrics::OtlpMetricsSink;
use tapspan::export::zipkin::ZipkinSink;
use tapspan::export::{JsonlWriter, SinkReport, SpanSink};
use tapspan::metrics::{RedMetrics, SharedRed};
use tapspan::pipeline::{PipelineStats, Sink};
use tapspan::sampling::{Sampler, SamplingStats};
use tapspan::span::Span;

pub struct Outputs {
    /// Spans made (before sampling).
    spans: u64,
    /// `--summary`: the latency table, counters and findings on stderr.
    summary: bool,
    analysis: Option<AnalysisOutputs>,
    sampler: Option<Sampler>,
    /// Exchanges the causality builder decided early at its memory cap (for the sampling line).
    forced_decisions: u64,
    /// RED metrics of every span (before sampling), when asked for.
    metrics: Option<SharedRed>,
    /// `--metrics-file`: where they are written at the end.
    metrics_file: Option<PathBuf>,
    /// `--otlp`: where they are sent (at the end, and in live capture on an interval).
    metrics_exporters: Vec<OtlpMetricsSink>,
    written: SpanOutputs,
}

/// JSON lines and the exporters: what sampling keeps.
struct SpanOutputs {
    jsonl: Option<JsonlWriter>,
    sinks: Vec<Box<dyn SpanSink>>,
    write_error: Option<io::Error>,
}

impl SpanOutputs {
    fn send(&mut self, span: Span) {
        for sink in &mut self.sinks {
            sink.send(&span);
        }
        if let (None, Some(jsonl)) = (&self.write_error, &mut self.jsonl) {
            if let Err(e) = jsonl.write(span) {
                self.write_error = Some(e);
            }
        }
    }
}

/// The analysis (issue 7) and where it goes: an HTML report, JSON, findings in `--summary`.
pub struct AnalysisOutputs {
    analyzer: Analyzer,
    pub html: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub inputs: Vec<String>,
}

impl AnalysisOutputs {
    /// Wanted when any of its outputs is asked for.
    pub fn wanted(
        html: Option<&Path>,
        json: Option<&Path>,
        summary: bool,
        config: AnalysisConfig,
    ) -> Option<Self> {
        (html.is_some() || json.is_some() || summary).then(|| AnalysisOutputs {
            analyzer: Analyzer::new(config),
            html: html.map(Path::to_path_buf),
            json: json.map(Path::to_path_buf),
            inputs: Vec::new(),
        })
    }

    pub fn push_json(&mut self, value: &serde_json::Value) -> bool {
        self.analyzer.push_json(value)
    }

    /// Write the report and JSON of the analysis so far (live `--report-every`), each file
    /// replaced at once: a reader never sees half a report.
    pub fn write_so_far(&self) -> anyhow::Result<()> {
        if self.html.is_none() && self.json.is_none() {
            return Ok(());
        }
        let analysis = self.analyzer.snapshot(self.inputs.clone());
        write_analysis(&analysis, self.html.as_deref(), self.json.as_deref())
    }

    /// Analyse, and write the report and JSON.
    pub fn finish(self) -> anyhow::Result<Analysis> {
        let AnalysisOutputs {
            analyzer,
            html,
            json,
            inputs,
        } = self;
        let analysis = analyzer.finish(inputs);
        write_analysis(&analysis, html.as_deref(), json.as_deref())?;
        Ok(analysis)
    }
}

fn write_analysis(
    analysis: &Analysis,
    html: Option<&Path>,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(analysis)?;
        write_replacing(path, (text + "\n").as_bytes())?;
    }
    if let Some(path) = html {
        write_replacing(
            path,
            tapspan::analysis::report::html::render(analysis).as_bytes(),
        )?;
    }
    Ok(())
}

/// Creates (or truncates) an output file readable and writable by its owner only: spans, reports
/// and captures hold what the traced services said to each other. A file that existed with a
/// wider mode is narrowed too; a device or FIFO (`/dev/null`, a pipe) is left as it is.
pub fn create_private(path: &Path) -> io::Result<File> {
    open_private(path, true)
}

fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// An output file opened as [`create_private`] opens it, but emptied only when first written
/// or flushed: by the thread that writes it, which flushes before any span comes. Emptying a
/// file of a few megabytes (the spans of the last run) took 0.3 to 4 ms of the kernel's time,
/// before a replay could start reading.
struct EmptiedOnFirstWrite {
    file: File,
    emptied: bool,
}

impl EmptiedOnFirstWrite {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(EmptiedOnFirstWrite {
            file: open_private(path, false)?,
            emptied: false,
        })
    }

    fn empty(&mut self) -> io::Result<()> {
        if !self.emptied {
            self.emptied = true;
            // Only a regular file has a length to cut (not /dev/null or a FIFO).
            if self.file.metadata()?.is_file() {
                self.file.set_len(0)?;
            }
        }
        Ok(())
    }
}

impl Write for EmptiedOnFirstWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.empty()?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.empty()?;
        self.file.flush()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    create_private(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `bytes` to a temporary file next to `path` (owner-only), then renames it over
/// `path`: a reader (a Prometheus textfile collector, say) never sees half a file. Only a
/// regular file (or none yet) is replaced so: `/dev/null`, a FIFO or a symbolic link is written
/// through, as given, never replaced by a file of its own.
fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let replaceable = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type().is_file(),
        Err(_) => true,
    };
    if !replaceable {
        return write_private(path, bytes);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}", path.display())
    })
}

/// The delivery settings the output flags describe.
pub fn delivery_config(args: &OutputArgs) -> DeliveryConfig {
    let deadline = if args.export_deadline.is_finite() && args.export_deadline >= 0.0 {
        Duration::from_secs_f64(args.export_deadline.min(86_400.0))
    } else {
        Duration::from_secs(10)
    };
    let mut config = DeliveryConfig {
        queue_spans: args.export_queue.max(1),
        shutdown_deadline: deadline,
        ..DeliveryConfig::default()
    };
    // A request may not outlive the flush deadline by much.
    config.request_timeout = config
        .request_timeout
        .min(deadline.max(Duration::from_secs(1)));
    config
}

/// The OTLP exporter configuration of `--otlp URL` and the OTLP flags.
fn otlp_config(args: &OutputArgs, url: &str) -> OtlpConfig {
    OtlpConfig {
        endpoint: url.to_string(),
        protocol: args.otlp_protocol.as_deref().map(|p| match p {
            "http" => Protocol::HttpProtobuf,
            _ => Protocol::Grpc,
        }),
        headers: args.otlp_headers.clone(),
        gzip: args.otlp_compression == "gzip",
        delivery: delivery_config(args),
    }
}

/// The OTLP metrics exporters: one per `--otlp` collector.
fn metrics_exporters(args: &OutputArgs) -> anyhow::Result<Vec<OtlpMetricsSink>> {
    args.otlp
        .iter()
        .map(|url| {
            let mut config = otlp_config(args, url);
            // A snapshot holds every one before it: two queued are plenty, and a caller never
            // waits on a slow collector.
            config.delivery.queue_spans = 2;
            config.delivery.queue_block = Duration::ZERO;
            OtlpMetricsSink::start(config).map_err(|e| anyhow::anyhow!("--otlp {url}: {e}"))
        })
        .collect()
}

/// The exporters the output flags ask for.
pub fn exporter_sinks(args: &OutputArgs) -> anyhow::Result<Vec<Box<dyn SpanSink>>> {
    let delivery = delivery_config(args);
    let mut sinks: Vec<Box<dyn SpanSink>> = Vec::new();
    for url in &args.otlp {
        let config = otlp_config(args, url);
        let sink = OtlpSink::start(config).map_err(|e| anyhow::anyhow!("--otlp {url}: {e}"))?;
        sinks.push(Box::new(sink));
    }
    for url in &args.zipkin {
        let sink = ZipkinSink::start(url, delivery.clone())
            .map_err(|e| anyhow::anyhow!("--zipkin {url}: {e}"))?;
        sinks.push(Box::new(sink));
    }
    Ok(sinks)
}

/// The spine's sink ([`tapspan::pipeline::Spans`] drives it).
impl Sink for Outputs {
    fn span(&mut self, span: Span) {
        self.send(span);
    }
    fn settle(&mut self) {
        Outputs::settle(self);
    }
    fn advance_to(&mut self, ts: tapspan_capture::Timestamp) {
        Outputs::advance_to(self, ts.0);
    }
}

impl Outputs {
    pub fn open(args: &OutputArgs, analysis: AnalysisConfig) -> anyhow::Result<Self> {
        let exporting = !args.otlp.is_empty() || !args.zipkin.is_empty();
        let target = match &args.output {
            Some(path) => Some(path.as_str()),
            None if exporting => None,
            None => Some("-"),
        };
        let jsonl = match target {
            None => None,
            Some("-") => Some(JsonlWriter::new(Box::new(io::stdout()))),
            Some(path) => Some(JsonlWriter::new(Box::new(
                EmptiedOnFirstWrite::open(Path::new(path))
                    .with_context(|| format!("cannot create output file {path}"))?,
            ))),
        };
        // The span exporters first: a bad `--otlp` URL is reported as the user wrote it.
        let sinks = exporter_sinks(args)?;
        let metrics_exporters = metrics_exporters(args)?;
        Ok(Outputs {
            spans: 0,
            summary: args.summary,
            analysis: AnalysisOutputs::wanted(
                args.report.as_deref(),
                args.analysis_json.as_deref(),
                args.summary,
                analysis,
            ),
            sampler: None,
            forced_decisions: 0,
            metrics: None,
            metrics_file: args.metrics_file.clone(),
            metrics_exporters,
            written: SpanOutputs {
                jsonl,
                sinks,
                write_error: None,
            },
        })
    }

    /// Outputs of `tapspan report`: no spans written, only the analysis (and the summary).
    pub fn analysis_only(analysis: AnalysisOutputs, summary: bool) -> Self {
        Outputs {
            spans: 0,
            summary,
            analysis: Some(analysis),
            sampler: None,
            forced_decisions: 0,
            metrics: None,
            metrics_file: None,
            metrics_exporters: Vec::new(),
            written: SpanOutputs {
                jsonl: None,
                sinks: Vec::new(),
                write_error: None,
            },
        }
    }

    /// Sample what the span outputs get (the analysis still gets every span).
    pub fn set_sampler(&mut self, sampler: Option<Sampler>) {
        self.sampler = sampler;
    }

    /// Measure RED metrics (at most `max_series` series) from every span; the handle is
    /// shared with whoever serves them. Measured anyway when `--metrics-file` was given.
    pub fn measure(&mut self, max_series: usize) -> SharedRed {
        self.metrics
            .get_or_insert_with(|| SharedRed::new(RedMetrics::new(max_series).into()))
            .clone()
    }

    /// Whether `--metrics-file` or `--otlp` asks for the metrics.
    pub fn metrics_wanted(&self) -> bool {
        self.metrics_file.is_some() || !self.metrics_exporters.is_empty()
    }

    /// Queue the metrics so far (cumulative) to the OTLP exporters, if any.
    pub fn export_metrics(&mut self) {
        let (Some(metrics), false) = (&self.metrics, self.metrics_exporters.is_empty()) else {
            return;
        };
        let request = {
            let m = metrics.lock().unwrap_or_else(|e| e.into_inner());
            let Some((start, end)) = m.window() else {
                return;
            };
            tapspan::metrics::otlp::build_request(&m, start, end)
        };
        for e in &mut self.metrics_exporters {
            e.push(request.clone());
        }
    }

    /// Rewrite the report and the analysis JSON with the analysis so far (`live
    /// --report-every`); nothing when neither was asked for.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub fn write_analysis_so_far(&self) -> anyhow::Result<()> {
        match &self.analysis {
            Some(a) => a.write_so_far(),
            None => Ok(()),
        }
    }

    /// The sampling counters, when sampling.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub fn sampling_stats(&self) -> Option<&SamplingStats> {
        self.sampler.as_ref().map(|s| &s.stats)
    }

    /// The causality builder's count of exchanges decided early at its memory cap, reported with
    /// the sampling counters.
    pub fn set_forced_decisions(&mut self, n: u64) {
        self.forced_decisions = n;
    }

    /// Names of the inputs, for the report's title.
    pub fn set_inputs(&mut self, inputs: Vec<String>) {
        if let Some(a) = &mut self.analysis {
            a.inputs = inputs;
        }
    }

    /// A span, in the order the causality builder emitted it: to the analysis, then (if its
    /// trace is kept) to the span outputs.
    pub fn send(&mut self, span: Span) {
        self.spans += 1;
        if let Some(m) = &self.metrics {
            if let Ok(mut m) = m.lock() {
                m.push(&span);
            }
        }
        if let Some(a) = &mut self.analysis {
            a.analyzer.push(&span);
        }
        let written = &mut self.written;
        match &mut self.sampler {
            None => written.send(span),
            Some(sampler) => sampler.push(span, &mut |kept| written.send(kept)),
        }
    }

    /// The causality builder has returned: what it emitted is all it had to say for now
    /// (drivers call this after each of its calls, so that sampling knows a tree is whole).
    pub fn settle(&mut self) {
        let written = &mut self.written;
        if let Some(sampler) = &mut self.sampler {
            sampler.settle(&mut |kept| written.send(kept));
        }
    }

    /// Capture time has reached `now` on a quiet link (live capture).
    pub fn advance_to(&mut self, now_ns: u64) {
        let written = &mut self.written;
        if let Some(sampler) = &mut self.sampler {
            sampler.advance_to(now_ns, &mut |kept| written.send(kept));
        }
    }

    /// Lets buffered JSON lines out once they have waited long enough (see
    /// `export::jsonl::MAX_UNFLUSHED`); drivers call it on every tick.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub fn tick(&mut self) {
        let w = &mut self.written;
        if let (None, Some(jsonl)) = (&w.write_error, &mut w.jsonl) {
            if let Err(e) = jsonl.flush_if_due() {
                w.write_error = Some(e);
            }
        }
    }

    /// Flush everything; print the summary (with the pipeline's counters) when asked.
    /// `stats` are the capture pipeline's counters (none when the spans were read from JSON).
    /// `more` is printed with the summary, after the counters and before the findings.
    pub fn finish(mut self, stats: Option<&PipelineStats>, more: &str) -> anyhow::Result<()> {
        let written = &mut self.written;
        if let Some(sampler) = &mut self.sampler {
            sampler.finish(&mut |kept| written.send(kept));
        }
        let flushed = match &mut self.written.jsonl {
            Some(jsonl) => jsonl.flush(),
            None => Ok(()),
        };
        // Exporters flush concurrently (each within its deadline), so the wait is the longest
        // deadline, not their sum; the metrics exporters too, with the final snapshot.
        self.export_metrics();
        let (reports, metric_reports): (Vec<SinkReport>, Vec<SinkReport>) =
            std::thread::scope(|scope| {
                let spans: Vec<_> = self
                    .written
                    .sinks
                    .drain(..)
                    .map(|s| scope.spawn(move || s.close()))
                    .collect();
                let metrics: Vec<_> = self
                    .metrics_exporters
                    .drain(..)
                    .map(|e| scope.spawn(move || e.close()))
                    .collect();
                let join = |hs: Vec<std::thread::ScopedJoinHandle<'_, SinkReport>>| {
                    hs.into_iter().filter_map(|h| h.join().ok()).collect()
                };
                (join(spans), join(metrics))
            });
        let analysis = match self.analysis.take() {
            Some(a) => Some(a.finish()?),
            None => None,
        };
        if let (Some(path), Some(metrics)) = (&self.metrics_file, &self.metrics) {
            let text = match metrics.lock() {
                Ok(m) => tapspan::metrics::prometheus::to_text(&m),
                Err(poisoned) => tapspan::metrics::prometheus::to_text(&poisoned.into_inner()),
            };
            write_replacing(path, text.as_bytes())?;
        }
        if self.summary {
            if let Some(a) = &analysis {
                eprint!("{}", crate::app::summary::render_table(&a.endpoints));
            }
            if let Some(stats) = stats {
                eprint!(
                    "{}",
                    crate::app::summary::render_counters(stats, self.spans)
                );
            }
            eprint!("{more}");
            if let Some(s) = &self.sampler {
                eprint!("{}", s.stats.render(self.forced_decisions));
            }
            if let Some(a) = &analysis {
                eprint!("{}", a.render_findings());
            }
        }
        // Exporters always say what they delivered and, if anything was lost, how much and why.
        // Losing spans to a slow or absent backend is reported, not a failure (exit status 0).
        for r in &reports {
            eprintln!("tapspan: {r}");
        }
        for r in &metric_reports {
            eprintln!(
                "tapspan: {}: {} metric exports delivered, {} dropped",
                r.name, r.delivered, r.dropped
            );
        }
        if let Some(e) = self.written.write_error.take() {
            return Err(e).context("writing spans");
        }
        flushed.context("writing spans")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tapspan-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_replaced_output_holds_only_what_was_written_after() {
        let path = scratch("replaced.jsonl");
        std::fs::write(&path, "x".repeat(100_000)).unwrap();
        let mut out = EmptiedOnFirstWrite::open(&path).unwrap();
        // Opening leaves the old contents; the first flush (the writer's, before any span)
        // empties the file.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_000);
        out.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        out.write_all(b"{}\n").unwrap();
        out.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        // Written first, without a flush before: emptied all the same.
        std::fs::write(&path, "y".repeat(10)).unwrap();
        let mut out = EmptiedOnFirstWrite::open(&path).unwrap();
        out.write_all(b"ab").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ab");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_device_output_is_written_through() {
        let mut out = EmptiedOnFirstWrite::open(Path::new("/dev/null")).unwrap();
        out.flush().unwrap();
        out.write_all(b"{}\n").unwrap();
    }
}
