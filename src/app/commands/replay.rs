//! `tapspan replay FILE...`: captures → spans.

use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::app::cli::{CausalityArgs, LimitArgs, ReplayArgs};
use crate::app::output::Outputs;
use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::pipeline::Spans;
use tapspan::redact::HeaderPolicy;
use tapspan::run::replay::replay_files;

use super::{Failure, Outcome};

/// Show a progress bar only for inputs at least this large.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

pub fn run(args: &ReplayArgs) -> Outcome {
    let files = args.input.files().map_err(Failure::usage)?;
    let sampler = super::sampler(&args.output, &args.causality, &args.limits)?;
    let mut outputs = Outputs::open(&args.output, args.limits.memory_limits().analysis_config())?;
    outputs.set_sampler(sampler);
    if outputs.metrics_wanted() {
        outputs.measure(args.limits.max_metric_series);
    }
    let replay = Replay {
        files: &files,
        limits: &args.limits,
        causality: &args.causality,
        headers: args.output.header_policy(),
        progress: !args.input.no_progress,
        summary: args.output.summary,
    };
    replay.run(outputs)
}

/// Why a capture with TCP connections gave no spans, if it did not: rather than an empty output
/// with no word, say what the connections were.
fn nothing_decoded(stats: &tapspan::pipeline::PipelineStats) -> Option<String> {
    let connections = stats.reassembly.connections;
    if connections == 0 || stats.protocols.exchanges() > 0 {
        return None;
    }
    let h = &stats.protocols.http;
    let mut kinds = Vec::new();
    if h.tls_connections > 0 {
        kinds.push(format!(
            "{} began a TLS handshake (encrypted: nothing to decode without the keys)",
            h.tls_connections
        ));
    }
    if h.http2_connections > 0 {
        kinds.push(format!(
            "{} began with the HTTP/2 preface",
            h.http2_connections
        ));
    }
    let other = h.non_http_connections - h.tls_connections - h.http2_connections;
    if other > 0 {
        kinds.push(format!("{other} spoke another protocol"));
    }
    let h2 = stats.protocols.http2.connections;
    if h2 > 0 {
        kinds.push(format!("{h2} spoke HTTP/2 but completed no stream"));
    }
    let unknown = connections.saturating_sub(h.non_http_connections + h2);
    if unknown > 0 {
        kinds.push(format!(
            "{unknown} carried no HTTP/1.x message (empty, or picked up mid-stream)"
        ));
    }
    Some(format!(
        "{connections} TCP connection{}, none decoded (tapspan decodes HTTP/1.x, HTTP/2, Redis, \
         PostgreSQL, DNS and TLS handshakes): {}",
        if connections == 1 { "" } else { "s" },
        kinds.join("; ")
    ))
}

/// Captures through the pipeline and the causality builder into `Outputs` (shared with
/// `tapspan report`).
pub struct Replay<'a> {
    pub files: &'a [PathBuf],
    pub limits: &'a LimitArgs,
    pub causality: &'a CausalityArgs,
    pub headers: HeaderPolicy,
    pub progress: bool,
    pub summary: bool,
}

impl Replay<'_> {
    pub fn run(self, mut outputs: Outputs) -> Outcome {
        let config = super::causality_config(self.causality, self.limits)?;
        // Offline, a capture shorter than the trace window is placed after its last packet.
        let mut builder = CausalityBuilder::new(CausalityConfig {
            draft_on_arrival: true,
            ..config
        });
        outputs.set_inputs(self.files.iter().map(|f| f.display().to_string()).collect());
        let show_progress = self.progress && io::stderr().is_terminal();
        let mut bar: Option<ProgressBar> = None;
        let mut progress = |done: u64, total: u64| {
            if !show_progress || total < PROGRESS_MIN_BYTES {
                return;
            }
            bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            })
            .set_position(done);
        };
        let config = self.limits.pipeline_config(self.headers);
        let spans = Spans::new(&mut builder, &mut outputs);
        let result = replay_files(self.files, config, &mut progress, spans);
        outputs.set_forced_decisions(builder.stats.forced_decisions);
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        let outcome = result.map_err(Failure::usage)?;
        let mut more = String::new();
        if self.summary {
            for c in &outcome.clock_offsets {
                let first = self.files[0].display();
                let _ = match c.bounds_ns {
                    Some((lo, hi)) => writeln!(
                        more,
                        "clock of {} relative to {first}: {:+.3} ms (between {:+.3} and {:+.3} \
ms; {} shared packets on {} connections), corrected",
                        c.file.display(),
                        c.offset_ns as f64 / 1e6,
                        lo as f64 / 1e6,
                        hi as f64 / 1e6,
                        c.shared_packets,
                        c.connections
                    ),
                    None => writeln!(
                        more,
                        "clock of {} relative to {first}: {:+.3} ms (no bounds: {} shared \
packets, no connection seen both ways), corrected",
                        c.file.display(),
                        c.offset_ns as f64 / 1e6,
                        c.shared_packets
                    ),
                };
            }
            more.push_str(&crate::app::summary::render_causality(&builder.stats));
        }
        outputs.finish(Some(&outcome.stats), &more)?;
        if let Some(why) = nothing_decoded(&outcome.stats) {
            eprintln!("tapspan: {why}");
        }
        if outcome.damaged.is_empty() {
            return Ok(());
        }
        Err(Failure::Damaged(
            outcome
                .damaged
                .iter()
                .map(|e| format!("{e} (spans decoded before it were written)"))
                .collect(),
        ))
    }
}
