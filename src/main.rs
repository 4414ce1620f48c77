//! The `tapspan` binary: parses the command line, runs the pipeline, maps failures to exit codes
//! (0 ok, 1 runtime failure, 2 bad usage or unreadable/damaged input) in one place.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use tapspan::cli::{Cli, Command, ReplayArgs};
use tapspan::export::JsonlWriter;
use tapspan::http::redact::HeaderPolicy;
use tapspan::pipeline::{replay_files, PipelineConfig, PipelineStats};
use tapspan::span::spans_for;
use tapspan::summary::Summary;

/// Show a progress bar only for inputs at least this large.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Replay(args) => match replay(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("tapspan: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn config_from(args: &ReplayArgs) -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.reassembly.max_connections = args.max_connections.max(1);
    config.reassembly.max_held_bytes_per_direction = args.max_held_bytes;
    config.reassembly.max_held_bytes_total = args.max_held_bytes_total;
    config.reassembly.idle_timeout_ns = args.idle_timeout.saturating_mul(1_000_000_000);
    config.decode.defrag_max_bytes = args.max_fragment_bytes;
    config.http.headers = HeaderPolicy::default()
        .with_captured(&args.capture_headers)
        .with_redacted(&args.redact_headers);
    config
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let sink: Box<dyn Write> = if args.output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.output)
                .with_context(|| format!("cannot create output file {}", args.output))?,
        )
    };
    let mut writer = JsonlWriter::new(sink);
    let mut summary = Summary::default();
    let mut write_error: Option<io::Error> = None;

    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let bar: Option<ProgressBar> = None;
    let mut bar = bar;
    let mut progress = |done: u64, total: u64| {
        if !show_progress || total < PROGRESS_MIN_BYTES {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        b.set_position(done);
    };

    let result = replay_files(&args.files, config_from(args), &mut progress, &mut |ex| {
        for span in spans_for(&ex) {
            if args.summary {
                summary.add(&span);
            }
            if write_error.is_none() {
                if let Err(e) = writer.write(&span) {
                    write_error = Some(e);
                }
            }
        }
    });
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tapspan: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    writer.flush().context("writing spans")?;
    if let Some(e) = write_error {
        return Err(e).context("writing spans");
    }
    if args.summary {
        eprint!("{}", summary.render());
        eprint!("{}", render_counters(&outcome.stats, writer.written));
    }
    if outcome.damaged.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &outcome.damaged {
            eprintln!("tapspan: {e} (spans decoded before it were written)");
        }
        Ok(ExitCode::from(2))
    }
}

fn render_counters(s: &PipelineStats, spans: u64) -> String {
    let d = &s.decode;
    let r = &s.reassembly;
    let h = &s.http;
    format!(
        "\nframes {} ({} bytes), tcp segments {}, non-tcp {}, unsupported link {}, malformed {}, \
tunnels {}, fragments {} (reassembled {}, evicted {})\n\
connections {} (mid-stream {}, fin {}, rst {}, idle {}, evicted {}), retransmitted bytes {}, \
conflicting overlap bytes {}, out-of-order segments {}, gaps {} ({} bytes)\n\
http connections {} (not http {}, upgraded {}), exchanges {} (incomplete {}, responses without \
request {}), malformed messages {}, resyncs {}; spans written {}\n",
        d.frames,
        d.bytes,
        d.tcp_segments,
        d.non_tcp,
        d.unsupported_link,
        d.malformed,
        d.tunnels_unwrapped,
        d.fragments,
        d.datagrams_reassembled,
        d.defrag_evicted,
        r.connections,
        r.midstream_connections,
        r.closed_fin,
        r.closed_rst,
        r.expired_idle,
        r.evicted,
        r.retransmitted_bytes,
        r.overlap_conflict_bytes,
        r.out_of_order_segments,
        r.gaps,
        r.gap_bytes,
        h.connections,
        h.non_http_connections,
        h.upgraded_connections,
        h.exchanges,
        h.incomplete_exchanges,
        h.responses_without_request,
        h.malformed_messages,
        h.resyncs,
        spans,
    )
}
